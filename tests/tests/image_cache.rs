//! The image cache on real objects: a module linked once is mapped from its entry by a later
//! kernel, bound to that kernel's symbols as they are then, and computes what the natively
//! linked program computes; an entry that no longer fits (a changed object, a corrupt file,
//! a base already taken, an import of another kind) is passed over for an ordinary load.

#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use dlkm_linker::ExternalKind;
use dlkm_loader::{Kernel, KernelOptions, LoadError, ModuleId};
use dlkm_tests::{by_module_set, export_kernel_api, host_corpus_dir, read_answers, variants};

/// Kernels in these tests place modules at the same addresses, and share LOG: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static KERNEL_COUNTER: AtomicI64 = AtomicI64::new(0);

extern "C" fn log_line(line: *const c_char) {
    // SAFETY: the module passes NUL-terminated string literals.
    let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
    LOG.lock().unwrap().push(format!("first: {text}"));
}

extern "C" fn log_line_elsewhere(line: *const c_char) {
    // SAFETY: as above.
    let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
    LOG.lock().unwrap().push(format!("second: {text}"));
}

/// A fresh, empty directory for one test's cache.
fn cache_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlkm-image-cache-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cached_kernel(dir: &Path) -> Kernel {
    Kernel::native_with(KernelOptions {
        image_cache: Some(dir.to_path_buf()),
        ..KernelOptions::default()
    })
    .unwrap()
}

/// A kernel exporting `log` as `log_line` (with `kind`), and `kernel_counter`.
fn api_kernel(dir: &Path, log: extern "C" fn(*const c_char), kind: ExternalKind) -> Kernel {
    let kernel = cached_kernel(dir);
    export_kernel_api(&kernel, log as usize as u64, kind, &KERNEL_COUNTER);
    kernel
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

fn from_cache(kernel: &Kernel, id: ModuleId) -> bool {
    kernel.module_info(id).unwrap().from_image_cache
}

/// `kapi_log_twice(20)`: 42 once the constructor and `_load` have run.
fn log_twice(kernel: &Kernel, id: ModuleId) -> i64 {
    // SAFETY: `long kapi_log_twice(long)` in corpus/src/kernel/kernel_api.c.
    let f: extern "C" fn(i64) -> i64 = unsafe { kernel.function(id, "kapi_log_twice") }.unwrap();
    f(20)
}

#[test]
fn a_cached_image_is_bound_to_the_kernel_as_it_is_now() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for variant in ["gcc-pie", "clang"] {
        let dir = cache_dir(&format!("rebind-{variant}"));
        let object = host_corpus_dir().join(variant).join("kernel_api.o");

        KERNEL_COUNTER.store(40, Ordering::SeqCst);
        let first = api_kernel(&dir, log_line, ExternalKind::Function);
        let id = first.load_path(&object).unwrap();
        assert!(!from_cache(&first, id), "{variant}: the first load links");
        assert_eq!(
            entries(&dir),
            1,
            "{variant}: the first load keeps its image"
        );
        let first_base = first.module_info(id).unwrap().base;
        assert_eq!(log_twice(&first, id), 42, "{variant}");
        first.unload(id).unwrap();
        drop(first);

        // The same object in another kernel, whose log_line is another function.
        LOG.lock().unwrap().clear();
        KERNEL_COUNTER.store(40, Ordering::SeqCst);
        let second = api_kernel(&dir, log_line_elsewhere, ExternalKind::Function);
        let id = second.load_path(&object).unwrap();
        let info = second.module_info(id).unwrap();
        assert!(info.from_image_cache, "{variant}: mapped from the cache");
        assert_eq!(info.base, first_base, "{variant}");
        assert_eq!(log_twice(&second, id), 42, "{variant}");
        assert_eq!(
            *LOG.lock().unwrap(),
            [
                "second: kernel_api: loaded",
                "second: kernel_api: first",
                "second: kernel_api: second"
            ],
            "{variant}: the cached image calls the second kernel's log_line"
        );
        second.unload(id).unwrap();
        assert_eq!(
            KERNEL_COUNTER.load(Ordering::SeqCst),
            142,
            "{variant}: the destructor ran at unload"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn an_import_of_another_kind_makes_an_ordinary_load() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir("kind");
    let object = host_corpus_dir().join("gcc-pie/kernel_api.o");
    let first = api_kernel(&dir, log_line, ExternalKind::Function);
    let id = first.load_path(&object).unwrap();
    first.unload(id).unwrap();
    drop(first);
    // Data now: calls to it may not go through the stub the cached image has.
    let second = api_kernel(&dir, log_line, ExternalKind::Data);
    let id = second.load_path(&object).unwrap();
    assert!(!from_cache(&second, id));
    second.unload(id).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_changed_object_a_corrupt_entry_or_a_taken_base_makes_an_ordinary_load() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir("stale");
    let work = cache_dir("stale-objects");
    let object = work.join("zlib.o");
    std::fs::copy(host_corpus_dir().join("gcc-pie/zlib.o"), &object).unwrap();
    let load = |expect_cached: bool, what: &str| {
        let kernel = cached_kernel(&dir);
        let id = kernel.load_path(&object).unwrap();
        assert_eq!(from_cache(&kernel, id), expect_cached, "{what}");
        kernel.unload(id).unwrap();
    };
    load(false, "the first load");
    load(true, "the second load");

    // Written again (same bytes, new times): linked again, and the entry replaced.
    std::fs::write(&object, std::fs::read(&object).unwrap()).unwrap();
    load(false, "after the object changed");
    load(true, "after the entry was replaced");

    // Every way of cutting the entry short, and bytes flipped through its record.
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&entry).unwrap();
    for len in [0, 7, 31, 32, 100, 4096, good.len() / 2, good.len() - 1] {
        std::fs::write(&entry, &good[..len]).unwrap();
        load(false, &format!("an entry cut to {len} bytes"));
    }
    for at in (8..4096).step_by(97) {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        std::fs::write(&entry, &bad).unwrap();
        // A flipped byte may land where nothing reads it (padding, a name): either way the
        // load succeeds, which is what this checks.
        let kernel = cached_kernel(&dir);
        let id = kernel.load_path(&object).unwrap();
        kernel.unload(id).unwrap();
    }

    // The base is held by the module still loaded in another kernel.
    std::fs::write(&entry, &good).unwrap();
    let holder = cached_kernel(&dir);
    let held = holder.load_path(&object).unwrap();
    assert!(from_cache(&holder, held));
    load(false, "with the base taken");
    holder.unload(held).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&work);
}

/// Every corpus program of this host, loaded from the cache, computes what the natively
/// linked program computed, and its image (all but what its code writes) is the one a link
/// makes.
#[test]
fn the_corpus_answers_the_same_from_the_cache() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let arch = dlkm_linker::ArchKind::host().unwrap().name();
    let all = variants(arch);
    for variant in ["gcc-pie", "gcc-nopic", "clang"] {
        let checks = read_answers(&all[variant]).unwrap();
        for (set, (modules, checks)) in by_module_set(checks).into_iter().enumerate() {
            let dir = cache_dir(&format!("corpus-{variant}-{set}"));
            let mut images = Vec::new();
            for cached in [false, true] {
                let kernel = cached_kernel(&dir);
                let ids: Vec<ModuleId> = modules
                    .iter()
                    .map(|m| kernel.load_path(m).unwrap())
                    .collect();
                let mut image = Vec::new();
                for &id in &ids {
                    let info = kernel.module_info(id).unwrap();
                    assert_eq!(info.from_image_cache, cached, "{variant} {}", info.name);
                    // What code can write (its data, its bss) may hold heap pointers that its
                    // constructors took; everything else is as linked.
                    let written = |name: &str| {
                        [".data", ".bss", "*common*"]
                            .iter()
                            .any(|p| name.starts_with(p))
                    };
                    for section in info.sections.iter().filter(|s| !written(&s.name)) {
                        let bytes = kernel.machine().read(section.address, section.size);
                        image.push((section.name.clone(), bytes.unwrap()));
                    }
                }
                images.push(image);
                for check in &checks {
                    let value = kernel.call_symbol(&check.function, &check.args).unwrap();
                    assert_eq!(
                        value as i64, check.expected,
                        "{variant} line {}",
                        check.line
                    );
                }
                for &id in ids.iter().rev() {
                    kernel.unload(id).unwrap();
                }
            }
            assert!(
                images[0] == images[1],
                "{variant} {modules:?}: images differ"
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// A module mapped from the cache answers for its source lines from its object, read when
/// first asked; once the object has changed, it refuses rather than answer from another build.
#[test]
fn a_cached_module_reads_its_lines_from_its_object_while_it_is_unchanged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir("lines");
    let work = cache_dir("lines-objects");
    let object = work.join("sizes.o");
    std::fs::copy(host_corpus_dir().join("gcc-pie/sizes.o"), &object).unwrap();
    let line_of_sizes_get = |expect_cached: bool| {
        let kernel = cached_kernel(&dir);
        let id = kernel.load_path(&object).unwrap();
        assert_eq!(from_cache(&kernel, id), expect_cached);
        assert!(kernel.has_source_lines(id));
        let address = kernel.getksym("sizes_get").unwrap().address;
        let line = kernel.source_line(address);
        kernel.unload(id).unwrap();
        line
    };
    let linked = line_of_sizes_get(false).unwrap().unwrap();
    assert!(linked.file.ends_with("sizes.S"), "{linked}");
    let kernel = cached_kernel(&dir);
    let id = kernel.load_path(&object).unwrap();
    assert!(from_cache(&kernel, id));
    let address = kernel.getksym("sizes_get").unwrap().address;
    // Changed after the load, before the first question.
    std::fs::write(&object, std::fs::read(&object).unwrap()).unwrap();
    let refused = kernel.source_line(address).unwrap_err();
    assert!(matches!(refused, LoadError::DebugInfo { .. }), "{refused}");
    assert!(refused.to_string().contains("changed since"), "{refused}");
    kernel.unload(id).unwrap();
    drop(kernel);
    // Linked again (the object changed), then mapped, and the same line either way.
    assert_eq!(line_of_sizes_get(false).unwrap().unwrap(), linked);
    assert_eq!(line_of_sizes_get(true).unwrap().unwrap(), linked);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&work);
}
