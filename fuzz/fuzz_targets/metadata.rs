#![no_main]

//! Module metadata: arbitrary `.modinfo` bytes and master-file text, split at the first
//! 0xff byte, must parse or give a `MetadataError`, never panic.

use std::path::Path;

use dlkm_loader::metadata::Metadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (modinfo, master) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let master = String::from_utf8_lossy(master);
    let path = Path::new("fuzz.master");
    if let Ok(metadata) = Metadata::parse("fuzz", "fuzz.o", Some(modinfo), Some((path, &master))) {
        assert!(!metadata.name.is_empty());
        let _ = metadata.entry_point("load");
    }
});
