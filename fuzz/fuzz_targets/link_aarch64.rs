#![no_main]

use dlkm_fuzz::Family;
use libfuzzer_sys::{fuzz_target, Corpus};

fuzz_target!(|data: &[u8]| -> Corpus {
    if dlkm_fuzz::fuzz_one(data, Family::Aarch64) {
        Corpus::Keep
    } else {
        Corpus::Reject
    }
});
