#![no_main]

//! An object loaded into the emulated machine and unloaded, no module code run (calls answer
//! at once): placing, linking, publishing, rollback and unloading through the Machine trait
//! (fuzz/src/emulated.rs). Objects the emulated machine does not run (x86_64, not ELF) are
//! kept out of the corpus.

use std::sync::Mutex;

use dlkm_fuzz::emulated::{arch_of, load_then_unload, InertKernel};
use dlkm_linker::ArchKind;
use libfuzzer_sys::{fuzz_mutator, fuzz_target, Corpus};

/// A kernel per architecture (aarch64, MIPS, MIPSel), kept while the inputs leave it clean
/// (the driver checks they do), since starting Unicorn costs more than a load.
static KERNELS: Mutex<[Option<InertKernel>; 3]> = Mutex::new([None, None, None]);

fuzz_target!(|data: &[u8]| -> Corpus {
    let Some(arch) = arch_of(data) else {
        return Corpus::Reject;
    };
    let index = match arch {
        ArchKind::Aarch64 => 0,
        ArchKind::Mips { big_endian: true } => 1,
        _ => 2,
    };
    let mut kernels = KERNELS.lock().unwrap_or_else(|e| e.into_inner());
    let inert = kernels[index].get_or_insert_with(|| InertKernel::new(arch));
    load_then_unload(inert, data);
    Corpus::Keep
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    dlkm_fuzz::mutator::mutate(data, size, max_size, seed, libfuzzer_sys::fuzzer_mutate)
});
