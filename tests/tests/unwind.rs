//! Unwinding through native modules: each module's `.eh_frame` is registered with the
//! unwinder once it is published, so a backtrace taken in the kernel below a module frame
//! walks on through it into the caller, and C++ exceptions are thrown and caught inside a
//! module, across modules, through a kernel frame between them, and out of a module into C++
//! kernel code that catches them; unloading withdraws the registration (loads and unloads in a
//! loop, each with exceptions, keep working).

#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use std::path::PathBuf;
use std::sync::Mutex;

use dlkm_loader::Kernel;
use dlkm_tests::host_corpus_dir;

/// The host's corpus variants that have `file`.
fn variants(file: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(host_corpus_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().join(file).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no corpus variant has {file}");
    found
}

fn object(variant: &str, file: &str) -> PathBuf {
    host_corpus_dir().join(variant).join(file)
}

/// The backtrace `kernel_hook` took, resolved.
static BACKTRACE: Mutex<String> = Mutex::new(String::new());

/// The kernel function `uw_through` calls: takes a backtrace of its caller's stack.
extern "C" fn kernel_hook(x: i64) -> i64 {
    let trace = std::backtrace::Backtrace::force_capture();
    *BACKTRACE.lock().unwrap() = trace.to_string();
    x * 2
}

type Through = extern "C" fn(extern "C" fn(i64) -> i64, i64) -> i64;

/// `uw_through(hook, x)` calls `hook(x)` from a module frame; the backtrace the hook takes
/// must go on past that frame into this test. Without the module's frames registered the
/// unwinder stops at the first module frame it cannot find.
#[test]
fn a_backtrace_in_the_kernel_walks_through_module_frames() {
    for variant in variants("unwind.o") {
        let kernel = Kernel::native().unwrap();
        let id = kernel.load_path(object(&variant, "unwind.o")).unwrap();
        // SAFETY: `long uw_through(long (*)(long), long)` in corpus/src/features/unwind.c.
        let through: Through = unsafe { kernel.function(id, "uw_through") }.unwrap();
        BACKTRACE.lock().unwrap().clear();
        assert_eq!(through(kernel_hook, 20), 41, "{variant}");
        let trace = BACKTRACE.lock().unwrap().clone();
        let hook = trace.find("kernel_hook");
        let caller = trace.find("a_backtrace_in_the_kernel_walks_through_module_frames");
        assert!(
            hook.is_some() && caller.is_some() && hook < caller,
            "{variant}: the backtrace does not reach this test through the module:\n{trace}"
        );
        kernel.unload(id).unwrap();
    }
}

mod cxx {
    use super::*;

    /// A kernel function between two C++ modules: calls `f(x)`, which throws; the exception
    /// unwinds through this frame to the module that called it. `C-unwind`: a foreign
    /// exception may pass through a Rust frame only across this ABI.
    extern "C-unwind" fn kernel_via(f: extern "C-unwind" fn(i64) -> i64, x: i64) -> i64 {
        f(x) + 1000
    }

    type Via = extern "C-unwind" fn(extern "C-unwind" fn(i64) -> i64, i64) -> i64;

    /// Thrown and caught in one module; thrown in one module and caught in another, directly
    /// and through a kernel frame; the thrower's cleanups run as the exceptions pass.
    #[test]
    fn cxx_exceptions_cross_modules_and_kernel_frames() {
        for variant in variants("cxx_throw.o") {
            let kernel = Kernel::native().unwrap();
            let thrower = kernel
                .load_path(object(&variant, "cxx_throw.o"))
                .unwrap_or_else(|e| panic!("{variant}: {e}"));
            let catcher = kernel
                .load_path(object(&variant, "cxx_catch.o"))
                .unwrap_or_else(|e| panic!("{variant}: {e}"));
            // SAFETY: the extern "C" functions of corpus/src/cxx/*.cpp, with these signatures;
            // those that throw are called only from module code that catches.
            let (local, cleanups, remote, through) = unsafe {
                (
                    kernel.function::<extern "C" fn(i64) -> i64>(thrower, "cxx_catch_local"),
                    kernel.function::<extern "C" fn() -> i64>(thrower, "cxx_cleanups"),
                    kernel.function::<extern "C" fn(i64) -> i64>(catcher, "cxx_catch_remote"),
                    kernel.function::<extern "C-unwind" fn(Via, i64) -> i64>(
                        catcher,
                        "cxx_catch_through",
                    ),
                )
            };
            let (local, cleanups, remote, through) = (
                local.unwrap(),
                cleanups.unwrap(),
                remote.unwrap(),
                through.unwrap(),
            );
            // 30 from a LocalError, 1000 + 3 from a CxxError, 2 destructors.
            assert_eq!(local(3), 1035, "{variant}");
            assert_eq!(local(0), 2, "{variant}");
            assert_eq!(remote(7), 14, "{variant}");
            assert_eq!(remote(0), 0, "{variant}");
            let before = cleanups();
            // The exception skips kernel_via's + 1000.
            assert_eq!(through(kernel_via, 5), 15, "{variant}");
            assert_eq!(through(kernel_via, 0), 1000, "{variant}");
            assert_eq!(cleanups() - before, 2, "{variant}");
            kernel.unload(catcher).unwrap();
            kernel.unload(thrower).unwrap();
        }
    }

    /// Each unload withdraws the module's frames, each load registers the new image's: the
    /// unwinder never reads a frame table that is gone, and always finds the current one.
    #[test]
    fn exceptions_keep_working_across_loads_and_unloads() {
        let kernel = Kernel::native().unwrap();
        for round in 0..50 {
            let variant = if round % 2 == 0 { "gcc-pie" } else { "clang" };
            let thrower = kernel.load_path(object(variant, "cxx_throw.o")).unwrap();
            let catcher = kernel.load_path(object(variant, "cxx_catch.o")).unwrap();
            // SAFETY: `long cxx_catch_remote(long)` in corpus/src/cxx/cxx_catch.cpp.
            let remote: extern "C" fn(i64) -> i64 =
                unsafe { kernel.function(catcher, "cxx_catch_remote") }.unwrap();
            assert_eq!(remote(round), round * 2, "round {round}");
            kernel.unload(catcher).unwrap();
            kernel.unload(thrower).unwrap();
        }
    }

    /// The C++ compiler of this test binary's architecture: g++ on x86_64, and for aarch64 the
    /// triplet's name, which is the cross compiler on an x86_64 machine running the test under
    /// qemu-aarch64 (g++-aarch64-linux-gnu) and Debian's native g++ on aarch64 itself.
    const CXX: &str = if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu-g++"
    } else {
        "g++"
    };

    /// The kernel's C++ code: tests/cxx/kernel_catch.cpp built with [`CXX`] into a shared
    /// library and opened. Its symbols stay local: it defines CxxError's key function, as
    /// cxx_throw.o does, and a kernel exporting them would refuse that module for shadowing
    /// them. Needs the C++ compiler that builds the C++ corpus too.
    fn kernel_cxx_library() -> *mut libc::c_void {
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cxx/kernel_catch.cpp");
        let library = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libkernel_catch.so");
        let built = std::process::Command::new(CXX)
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("{CXX} does not run: {e}"));
        assert!(built.success(), "{CXX} failed on {}", source.display());
        let path = std::ffi::CString::new(library.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; the library has no constructors beyond the C++
        // runtime's.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!handle.is_null(), "dlopen {}", library.display());
        handle
    }

    type ModuleFn = extern "C-unwind" fn(i64) -> i64;
    type KernelCatch = extern "C" fn(ModuleFn, i64) -> i64;

    /// A kernel C++ function calls a module's function, which throws: the exception leaves the
    /// module (running its cleanups) and is caught by the kernel, by type and by `catch (...)`;
    /// and a module calling through the kernel's catcher has the kernel catch it first.
    #[test]
    fn kernel_code_catches_what_a_module_throws() {
        let library = kernel_cxx_library();
        let lookup = |name: &str| {
            let name = std::ffi::CString::new(name).unwrap();
            // SAFETY: a handle dlopen returned and a NUL-terminated name.
            let address = unsafe { libc::dlsym(library, name.as_ptr()) };
            assert!(!address.is_null(), "{name:?} not in the kernel library");
            // SAFETY: both are `long f(long (*)(long), long)` in tests/cxx/kernel_catch.cpp.
            unsafe { std::mem::transmute::<*mut libc::c_void, KernelCatch>(address) }
        };
        let (kernel_catch, kernel_catch_all) = (lookup("kernel_catch"), lookup("kernel_catch_all"));
        for variant in variants("cxx_throw.o") {
            let kernel = Kernel::native().unwrap();
            let thrower = kernel.load_path(object(&variant, "cxx_throw.o")).unwrap();
            let catcher = kernel.load_path(object(&variant, "cxx_catch.o")).unwrap();
            // SAFETY: the extern "C" functions of corpus/src/cxx/*.cpp, with these
            // signatures; cxx_throw_code throws, and is called only from C++ that catches.
            let (throw_code, cleanups, through) = unsafe {
                (
                    kernel
                        .function::<ModuleFn>(thrower, "cxx_throw_code")
                        .unwrap(),
                    kernel
                        .function::<extern "C" fn() -> i64>(thrower, "cxx_cleanups")
                        .unwrap(),
                    kernel
                        .function::<extern "C-unwind" fn(KernelCatch, i64) -> i64>(
                            catcher,
                            "cxx_catch_through",
                        )
                        .unwrap(),
                )
            };
            let before = cleanups();
            assert_eq!(kernel_catch(throw_code, 4), 20, "{variant}");
            assert_eq!(kernel_catch(throw_code, 0), 0, "{variant}");
            assert_eq!(kernel_catch_all(throw_code, 9), -1, "{variant}");
            assert_eq!(cleanups() - before, 3, "{variant}: the thrower's cleanups");
            // The module passes the kernel's catcher as its `via`: the kernel catches the
            // exception before it gets back to the module.
            assert_eq!(through(kernel_catch, 6), 30, "{variant}");
            kernel.unload(catcher).unwrap();
            kernel.unload(thrower).unwrap();
        }
    }
}
