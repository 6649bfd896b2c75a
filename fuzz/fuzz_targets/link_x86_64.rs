#![no_main]

use dlkm_fuzz::Family;
use libfuzzer_sys::{fuzz_mutator, fuzz_target, Corpus};

fuzz_target!(|data: &[u8]| -> Corpus {
    if dlkm_fuzz::fuzz_one(data, Family::X86_64) {
        Corpus::Keep
    } else {
        Corpus::Reject
    }
});

// Rewrites relocation, symbol and section header fields half of the time (fuzz/src/mutator.rs).
fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    dlkm_fuzz::mutator::mutate(data, size, max_size, seed, libfuzzer_sys::fuzzer_mutate)
});
