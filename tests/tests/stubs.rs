//! Registered modules and their auto-loading stubs, on real objects (corpus/src/lifecycle/
//! lc_lib.c, lc_caller.c, lc_fail.c): registering puts stubs in the kernel table; a module
//! loaded meanwhile binds to them; its first call through one loads the library and goes on
//! with every argument intact (ten integers, nine doubles, a variadic call); unloading arms
//! the stubs again; a failed auto-load makes the call return -1 and marks the module failed.
//! Natively, and in the emulated machine for aarch64, MIPS and MIPSel.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dlkm_linker::ArchKind;
use dlkm_loader::{Arg, Kernel, LoadError, ModuleState, Owner};
use dlkm_tests::corpus_dir;

/// The kernels stubs are checked in, with the lifecycle objects for each.
fn kernels() -> Vec<(Arc<Kernel>, PathBuf)> {
    let mut kernels = Vec::new();
    if let Some(host) = ArchKind::host() {
        for variant in ["gcc-pie", "clang"] {
            let dir = corpus_dir()
                .join(host.name())
                .join(variant)
                .join("lifecycle");
            kernels.push((Arc::new(Kernel::native().unwrap()), dir));
        }
    }
    #[cfg(feature = "emulated")]
    for (arch, dir) in [
        (ArchKind::Aarch64, "aarch64/gcc-nopic"),
        (ArchKind::Mips { big_endian: true }, "mips/gcc"),
        (ArchKind::Mips { big_endian: false }, "mipsel/clang"),
    ] {
        let dir = corpus_dir().join(dir).join("lifecycle");
        kernels.push((Arc::new(Kernel::emulated(arch).unwrap()), dir));
    }
    kernels
}

fn state_of(kernel: &Kernel, name: &str) -> Option<ModuleState> {
    kernel
        .modules()
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.state)
}

fn call(kernel: &Kernel, name: &str) -> i64 {
    kernel.call_symbol(name, &[]).unwrap() as i64
}

#[test]
fn the_first_call_through_a_stub_loads_the_module_and_forwards_every_argument() {
    for (kernel, dir) in kernels() {
        let lib = kernel.register(dir.join("lc_lib.o")).unwrap();
        assert_eq!(state_of(&kernel, "lc_lib"), Some(ModuleState::Registered));
        let stub = kernel.getksym("lc_lib_weigh").unwrap();
        assert_eq!(stub.owner, Owner::Stub(lib, "lc_lib".into()), "{dir:?}");

        let caller = kernel.load_path(dir.join("lc_caller.o")).unwrap();
        let info = kernel.module_info(caller).unwrap();
        assert_eq!(info.stub_deps, ["lc_lib"]);
        assert!(
            info.deps.is_empty(),
            "calling through stubs is no dependency"
        );
        assert_eq!(state_of(&kernel, "lc_lib"), Some(ModuleState::Registered));

        assert_eq!(call(&kernel, "lc_caller_weigh"), 385, "{dir:?}");
        let loaded = kernel.module_info(lib).unwrap();
        assert_eq!(
            (loaded.state, loaded.auto_loaded),
            (ModuleState::Loaded, true)
        );
        assert_eq!(call(&kernel, "lc_caller_mix"), 224, "{dir:?}");
        assert_eq!(call(&kernel, "lc_caller_sum"), 15, "{dir:?}");
        assert_eq!(call(&kernel, "lc_caller_loads"), 1, "loaded once");
        let owner = kernel.getksym("lc_lib_weigh").unwrap().owner;
        assert_eq!(owner, Owner::Module(lib, "lc_lib".into()));

        // Unloaded, it is registered again under the same number, its stubs armed: the next
        // call loads a fresh copy.
        kernel.unload(lib).unwrap();
        assert_eq!(state_of(&kernel, "lc_lib"), Some(ModuleState::Registered));
        assert_eq!(
            kernel.getksym("lc_lib_weigh").unwrap().address,
            stub.address
        );
        assert_eq!(call(&kernel, "lc_caller_loads"), 1, "a fresh copy");
        assert_eq!(kernel.find_module("lc_lib"), Some(lib));

        match kernel.unregister("lc_lib") {
            Err(LoadError::Busy { reason, .. }) => assert!(reason.contains("loaded"), "{reason}"),
            other => panic!("unregistering a loaded module: {other:?}"),
        }
        kernel.unload(lib).unwrap();
        match kernel.unregister("lc_lib") {
            Err(LoadError::Busy { reason, .. }) => {
                assert!(reason.contains("lc_caller"), "{reason}")
            }
            other => panic!("unregistering a module whose stubs are used: {other:?}"),
        }
        kernel.unload(caller).unwrap();
        kernel.unregister("lc_lib").unwrap();
        assert!(kernel.modules().is_empty());
        assert!(kernel.getksym("lc_lib_weigh").is_err());
    }
}

#[test]
fn a_registered_module_loads_by_name_and_registering_twice_is_refused() {
    for (kernel, dir) in kernels() {
        let lib = kernel.register(dir.join("lc_lib.o")).unwrap();
        assert!(matches!(
            kernel.register(dir.join("lc_lib.o")),
            Err(LoadError::AlreadyRegistered(name)) if name == "lc_lib"
        ));
        // No module path: the registration says where the object is.
        assert_eq!(kernel.load_name("lc_lib").unwrap(), lib);
        assert!(!kernel.module_info(lib).unwrap().auto_loaded);
        assert_eq!(
            kernel.call_symbol("lc_lib_loads", &[]).unwrap(),
            1,
            "{dir:?}"
        );
        kernel.unload(lib).unwrap();
        kernel.unregister("lc_lib").unwrap();
        assert!(matches!(
            kernel.unregister("lc_lib"),
            Err(LoadError::NotRegistered(_))
        ));
    }
}

#[test]
fn a_failed_auto_load_fails_the_call_and_marks_the_module_failed() {
    for (kernel, dir) in kernels() {
        let id = kernel.register(dir.join("lc_fail.o")).unwrap();
        let stub = kernel.getksym("lc_fail_export").unwrap();
        let result = kernel.call(stub.address, &[Arg::Int(1)]).unwrap();
        assert_eq!(result as i64, -1, "{dir:?}: the call fails visibly");
        let info = kernel.module_info(id).unwrap();
        assert_eq!(info.state, ModuleState::Failed);
        let failure = info.failure.unwrap();
        assert!(failure.contains("ENODEV"), "{failure}");
        // Nothing of it stayed: the stub is still the table's entry.
        assert_eq!(kernel.getksym("lc_fail_export").unwrap().owner, stub.owner);
        assert_eq!(kernel.modules().len(), 1);
        kernel.unregister("lc_fail").unwrap();
    }
}

#[test]
fn a_stubs_key_limits_what_is_stubbed_and_must_name_functions() {
    let Some((kernel, dir)) = kernels().into_iter().next() else {
        return;
    };
    let work = tempdir();
    let object = work.join("lc_lib.o");
    std::fs::copy(dir.join("lc_lib.o"), &object).unwrap();
    std::fs::write(work.join("lc_lib.master"), "$stubs lc_lib_weigh\n").unwrap();
    kernel.register(&object).unwrap();
    assert!(matches!(
        kernel.getksym("lc_lib_weigh").unwrap().owner,
        Owner::Stub(..)
    ));
    assert!(kernel.getksym("lc_lib_mix").is_err());
    kernel.unregister("lc_lib").unwrap();

    std::fs::write(work.join("lc_lib.master"), "$stubs lc_lib_nothing\n").unwrap();
    match kernel.register(&object) {
        Err(LoadError::StubNotExported { symbol, .. }) => assert_eq!(symbol, "lc_lib_nothing"),
        other => panic!("a stub of an unknown symbol: {other:?}"),
    }
    assert!(kernel.modules().is_empty());
}

#[test]
fn the_auto_unloader_takes_an_idle_stub_loaded_module_away() {
    for (kernel, dir) in kernels() {
        let lib = kernel.register(dir.join("lc_lib.o")).unwrap();
        kernel.load_path(dir.join("lc_caller.o")).unwrap();
        assert_eq!(call(&kernel, "lc_caller_weigh"), 385);
        // Its unload_delay is one second.
        assert!(kernel.unload_idle(None).is_empty());
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(kernel.unload_idle(None), ["lc_lib"]);
        assert_eq!(
            kernel.module_info(lib).unwrap().state,
            ModuleState::Registered
        );
        assert_eq!(call(&kernel, "lc_caller_weigh"), 385, "loaded again");
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlkm-stubs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
