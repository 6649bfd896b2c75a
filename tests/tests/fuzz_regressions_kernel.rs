//! What the kernel-level fuzz targets (load_emulated, msyms_commands) once found, replayed:
//! each input minimized in corpus/fuzz-regressions/load_emulated/ or rebuilt from the corpus.

#![cfg(feature = "emulated")]

use dlkm_linker::ArchKind;
use dlkm_loader::{Kernel, LoadError, ModuleState};
use dlkm_tests::corpus_dir;

/// A symbol whose size reaches past 2^64 (lc_base.o with `$x`'s size set to -4): describing
/// an address in the module overflowed.
#[test]
fn a_symbol_size_past_the_address_space_is_described_without_overflow() {
    let path = corpus_dir().join("fuzz-regressions/load_emulated/symbol-size-overflow.o");
    let kernel = Kernel::emulated(ArchKind::Aarch64).unwrap();
    let id = kernel.load_path(&path).unwrap();
    for symbol in &kernel.module_symbols(id).unwrap() {
        let described = kernel.describe_address(symbol.address).unwrap_or_default();
        assert!(described.starts_with("lc_base"), "{described}");
    }
    kernel.unload(id).unwrap();
}

/// A destructor that stops (here: the instruction budget runs out in it) fails the unload and
/// leaves the module loaded, not `unloading` for good; the next unload succeeds.
#[test]
fn a_destructor_that_stops_leaves_the_module_loaded() {
    let kernel = Kernel::emulated(ArchKind::Aarch64).unwrap();
    let id = kernel
        .load_path(corpus_dir().join("aarch64/clang/ctor.o"))
        .unwrap();
    let debugger = kernel.debugger().unwrap();
    debugger.set_budget(1).unwrap();
    match kernel.unload(id) {
        Err(LoadError::Stopped { .. }) => {}
        other => panic!("an unload whose destructor stops: {other:?}"),
    }
    assert_eq!(kernel.module_info(id).unwrap().state, ModuleState::Loaded);
    debugger
        .set_budget(dlkm_loader::machine::emulated::DEFAULT_BUDGET)
        .unwrap();
    kernel.unload(id).unwrap();
    assert!(kernel.modules().is_empty());
}
