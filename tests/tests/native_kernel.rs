//! The native kernel on real objects: exports to modules, entry points, far calls through
//! stubs, W^X, and the errors a user meets, each leaving nothing half-loaded.

#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use dlkm_linker::{ExternalKind, LinkError};
use dlkm_loader::{Kernel, LoadError};
use dlkm_tests::{export_kernel_api, host_corpus_dir};

fn object(variant: &str, file: &str) -> std::path::PathBuf {
    host_corpus_dir().join(variant).join(file)
}

/// The linker's error inside a load error.
fn link_error(err: LoadError) -> LinkError {
    match err {
        LoadError::Link(link) => *link,
        other => panic!("expected a link error, got {other}"),
    }
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static KERNEL_COUNTER: AtomicI64 = AtomicI64::new(0);

extern "C" fn log_line(line: *const c_char) {
    // SAFETY: the module passes NUL-terminated string literals.
    let text = unsafe { CStr::from_ptr(line) }
        .to_string_lossy()
        .into_owned();
    LOG.lock().unwrap().push(text);
}

fn kernel_with_api() -> Kernel {
    let kernel = Kernel::native().unwrap();
    // As `Kernel::export` exports it: of no kind in particular.
    let log = log_line as *const u8 as u64;
    export_kernel_api(&kernel, log, ExternalKind::Unknown, &KERNEL_COUNTER);
    kernel
}

/// Tests sharing LOG and KERNEL_COUNTER run one at a time.
static API_TESTS: Mutex<()> = Mutex::new(());

#[test]
fn modules_call_kernel_exports_and_run_their_entry_points() {
    let _serial = API_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    // aarch64 -fno-pic code reaches the kernel's variables with ADRP: it loads too.
    let variants: &[&str] = if cfg!(target_arch = "aarch64") {
        &["gcc-pie", "clang", "gcc-nopic"]
    } else {
        &["gcc-pie", "clang"]
    };
    for &variant in variants {
        LOG.lock().unwrap().clear();
        KERNEL_COUNTER.store(40, Ordering::SeqCst);
        let kernel = kernel_with_api();
        let id = kernel.load_path(object(variant, "kernel_api.o")).unwrap();
        assert_eq!(*LOG.lock().unwrap(), ["kernel_api: loaded"], "{variant}");
        // SAFETY: `long kapi_log_twice(long)` in corpus/src/kernel/kernel_api.c.
        let log_twice: extern "C" fn(i64) -> i64 =
            unsafe { kernel.function(id, "kapi_log_twice") }.unwrap();
        // 2 * x, plus 1 from the constructor, plus 1 from _load.
        assert_eq!(log_twice(20), 42, "{variant}");
        assert_eq!(KERNEL_COUNTER.load(Ordering::SeqCst), 42, "{variant}");
        kernel.unload(id).unwrap();
        assert_eq!(
            LOG.lock().unwrap().last().map(String::as_str),
            Some("kernel_api: unloading")
        );
        assert_eq!(
            KERNEL_COUNTER.load(Ordering::SeqCst),
            142,
            "{variant}: the destructor ran at unload"
        );
        assert!(kernel.modules().is_empty());
    }
}

/// x86_64 only: an aarch64 -fno-pic module reaches data with ADRP (±4 GiB), so it is simply
/// placed near the kernel's variable.
#[cfg(target_arch = "x86_64")]
#[test]
fn nopic_module_writing_a_far_kernel_variable_is_refused_clearly() {
    let _serial = API_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let kernel = kernel_with_api();
    let err = kernel
        .load_path(object("gcc-nopic", "kernel_api.o"))
        .unwrap_err();
    let text = err.to_string();
    let LinkError::OutOfRange { site, .. } = link_error(err) else {
        panic!("expected an out-of-range error: {text}");
    };
    assert_eq!(site.symbol, "kernel_counter");
    assert_eq!(site.reloc, "R_X86_64_PC32");
    assert!(text.contains("-fPIE"), "{text}");
    assert!(kernel.modules().is_empty());
    assert!(
        kernel.lookup("kapi_log_twice").is_none(),
        "no export left behind"
    );
}

#[test]
fn calls_out_of_reach_go_through_stubs_and_work() {
    // zlib reaches no kernel data, so it is placed below 2 GiB; libc is terabytes away, so its
    // calls to memcpy and friends need stubs.
    let kernel = Kernel::native().unwrap();
    let zlib = kernel.load_path(object("gcc-pie", "zlib.o")).unwrap();
    kernel
        .load_path(object("gcc-pie", "zlib_driver.o"))
        .unwrap();
    let info = kernel.module_info(zlib).unwrap();
    assert!(info.stubs_used > 0, "zlib used no stub at {:#x}", info.base);
    let crc = kernel
        .call_symbol("zlib_crc32", &[dlkm_loader::Arg::Str("hello".into())])
        .unwrap();
    assert_eq!(crc, 0x3610a686, "crc32 of \"hello\"");
}

#[test]
fn duplicate_exports_are_refused_and_leave_the_first_module_intact() {
    let kernel = Kernel::native().unwrap();
    let a = kernel
        .load_path(object("gcc-pie", "errors/dup_a.o"))
        .unwrap();
    let err = kernel
        .load_path(object("gcc-pie", "errors/dup_b.o"))
        .unwrap_err();
    match &err {
        LoadError::DuplicateExport { symbol, owner, .. } => {
            assert_eq!(symbol, "dlkm_dup_symbol");
            assert!(owner.contains("dup_a"), "{owner}");
        }
        other => panic!("expected DuplicateExport, got {other}"),
    }
    assert_eq!(kernel.modules().len(), 1);
    let owner = kernel.lookup("dlkm_dup_symbol").unwrap().owner;
    assert_eq!(owner, dlkm_loader::Owner::Module(a, "dup_a".into()));
}

#[test]
fn undefined_symbols_are_all_named() {
    let kernel = Kernel::native().unwrap();
    let err = kernel
        .load_path(object("gcc-pie", "errors/undefined.o"))
        .unwrap_err();
    let LinkError::UndefinedSymbols { names, .. } = link_error(err) else {
        panic!("expected UndefinedSymbols");
    };
    assert_eq!(
        names,
        ["dlkm_missing_one", "dlkm_missing_three", "dlkm_missing_two"]
    );
    assert!(kernel.modules().is_empty());
}

#[test]
fn thread_local_storage_is_refused_with_advice() {
    let kernel = Kernel::native().unwrap();
    let err = kernel
        .load_path(object("gcc-pie", "errors/tls.o"))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("thread-local"), "{text}");
    assert!(
        matches!(link_error(err), LinkError::UnsupportedRelocation { .. }),
        "{text}"
    );
}

#[test]
fn truncated_and_corrupted_real_objects_fail_cleanly() {
    let kernel = Kernel::native().unwrap();
    let bytes = std::fs::read(object("gcc-pie", "zlib.o")).unwrap();
    for len in [
        0,
        4,
        16,
        63,
        64,
        100,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        assert!(
            kernel.load_bytes("truncated", &bytes[..len]).is_err(),
            "truncated to {len} bytes loaded"
        );
    }
    // Corrupt every 97th byte in turn; whatever happens must be an Ok or an Err.
    for at in (0..bytes.len()).step_by(97) {
        let mut bad = bytes.clone();
        bad[at] ^= 0xff;
        if let Ok(id) = kernel.load_bytes("corrupt", &bad) {
            kernel.unload(id).unwrap();
        }
    }
    assert!(kernel.modules().is_empty());
}
