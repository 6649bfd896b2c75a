//! The module life cycle on real objects (corpus/ARCH/VARIANT/lifecycle/, from
//! corpus/src/lifecycle/): metadata from `.modinfo` and master files, dependencies loaded
//! first and counted, cycles, interfaces, prefixed entry points, a failing `_load` undone, a
//! vetoing `_unload`, holds. Natively on this host, and in the emulated machine for MIPS.

use std::path::{Path, PathBuf};

use dlkm_linker::ArchKind;
use dlkm_loader::machine::native::NativeMachine;
use dlkm_loader::{Arg, Kernel, KernelOptions, LoadError, Owner};
use dlkm_tests::corpus_dir;

/// The kernels the rules are checked in: this host's native one, and an emulated MIPS one.
fn kernels() -> Vec<(Kernel, PathBuf)> {
    kernels_with(KernelOptions::default())
}

fn kernels_with(options: KernelOptions) -> Vec<(Kernel, PathBuf)> {
    let mut kernels = Vec::new();
    if let Some(host) = ArchKind::host() {
        let dir = corpus_dir().join(host.name()).join("gcc-pie/lifecycle");
        let machine = Box::new(NativeMachine::new());
        kernels.push((Kernel::with_machine(machine, options.clone()), dir));
    }
    #[cfg(feature = "emulated")]
    {
        use dlkm_loader::machine::emulated::EmulatedMachine;
        let dir = corpus_dir().join("mips/gcc/lifecycle");
        let machine = EmulatedMachine::new(ArchKind::Mips { big_endian: true }).unwrap();
        kernels.push((Kernel::with_machine(Box::new(machine), options), dir));
    }
    kernels
}

fn module_names(kernel: &Kernel) -> Vec<String> {
    kernel.modules().into_iter().map(|m| m.name).collect()
}

#[test]
fn dependencies_load_first_and_are_counted() {
    for (kernel, dir) in kernels() {
        kernel.add_modpath(&dir).unwrap();
        kernel.export_interface("dlkm_test", 2);
        let user = kernel.load_path(dir.join("lc_user.o")).unwrap();
        assert_eq!(module_names(&kernel), ["lc_base", "lc_user"]);
        let info = kernel.module_info(user).unwrap();
        assert_eq!(
            (info.module_type, info.deps.clone()),
            ("driver", vec!["lc_base".to_string()])
        );
        assert!(
            info.entry_points.iter().any(|(name, _)| name == "lcu_load"),
            "{:?}",
            info.entry_points
        );
        let run = kernel.call_symbol("lc_user_run", &[Arg::Int(1)]).unwrap();
        assert_eq!(
            run as i64, 46,
            "lcu_load ran once, after lc_base was loaded"
        );

        let base = kernel.find_module("lc_base").unwrap();
        let base_info = kernel.modstat(Some(base)).unwrap().remove(0);
        assert_eq!(kernel.modstat(None).unwrap().len(), 2);
        let twice = kernel.getksym("lc_base_twice").unwrap();
        assert_eq!(twice.owner.to_string(), "module lc_base (id 1)");
        assert_eq!((base_info.refs, base_info.version), (1, 3));
        assert_eq!(base_info.users, ["lc_user"]);
        match kernel.unload(base) {
            Err(LoadError::Busy { reason, .. }) => assert!(reason.contains("lc_user"), "{reason}"),
            other => panic!("unloading a module in use: {other:?}"),
        }
        kernel.unload(user).unwrap();
        assert_eq!(kernel.module_info(base).unwrap().refs, 0);
        kernel.unload(base).unwrap();
        assert!(kernel.modules().is_empty());
    }
}

#[test]
fn a_missing_interface_refuses_the_module_before_its_dependencies_load() {
    for (kernel, dir) in kernels() {
        kernel.add_modpath(&dir).unwrap();
        kernel.export_interface("dlkm_test", 1);
        let err = kernel.load_path(dir.join("lc_user.o")).unwrap_err();
        assert!(
            matches!(
                &err,
                LoadError::Interface {
                    wanted: 2,
                    exported: Some(1),
                    ..
                }
            ),
            "{err}"
        );
        assert!(kernel.modules().is_empty(), "nothing loaded for it");
    }
}

#[test]
fn dependency_cycles_are_named_and_load_nothing() {
    for (kernel, dir) in kernels() {
        kernel.add_modpath(&dir).unwrap();
        let err = kernel
            .load_path(dir.join("lc_cycle_a.o"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lc_cycle_a -> lc_cycle_b -> lc_cycle_a"),
            "{err}"
        );
        assert!(kernel.modules().is_empty());
    }
}

#[test]
fn a_missing_dependency_is_named_with_the_path_searched() {
    for (kernel, dir) in kernels() {
        // No module path: lc_base cannot be found.
        kernel.export_interface("dlkm_test", 2);
        let err = kernel
            .load_path(dir.join("lc_user.o"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lc_base") && err.contains("module path"),
            "{err}"
        );
        assert!(kernel.modules().is_empty());
    }
}

#[test]
fn a_failing_load_is_undone_and_reported_by_errno_name() {
    for (kernel, dir) in kernels() {
        let err = kernel.load_path(dir.join("lc_fail.o")).unwrap_err();
        match &err {
            LoadError::EntryFailed { entry, code, .. } => {
                assert_eq!((entry.as_str(), *code), ("_load", 19))
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("ENODEV"), "{err}");
        assert!(kernel.modules().is_empty());
        assert!(
            kernel.lookup("lc_fail_export").is_none(),
            "its exports withdrawn"
        );
        // And it can be tried again: nothing of the first attempt is left in the way.
        assert!(matches!(
            kernel.load_path(dir.join("lc_fail.o")),
            Err(LoadError::EntryFailed { .. })
        ));
    }
}

#[test]
fn a_vetoing_unload_leaves_the_module_loaded_and_counted() {
    for (kernel, dir) in kernels() {
        let id = kernel.load_path(dir.join("lc_veto.o")).unwrap();
        let before = kernel.module_info(id).unwrap();
        match kernel.unload(id) {
            Err(LoadError::EntryFailed { entry, code, .. }) => {
                assert_eq!((entry.as_str(), code), ("_unload", 16))
            }
            other => panic!("{other:?}"),
        }
        let after = kernel.module_info(id).expect("still loaded");
        assert_eq!((after.refs, after.holds), (before.refs, before.holds));
        assert_eq!(kernel.call_symbol("lc_veto_refused", &[]).unwrap(), 1);
        kernel.unload(id).unwrap();
        assert!(kernel.modules().is_empty());
    }
}

#[test]
fn held_modules_are_busy_until_released() {
    for (kernel, dir) in kernels() {
        let id = kernel.load_path(dir.join("lc_base.o")).unwrap();
        assert_eq!(kernel.hold(id).unwrap(), 1);
        assert_eq!(kernel.hold(id).unwrap(), 2);
        match kernel.unload(id) {
            Err(LoadError::Busy { reason, .. }) => assert!(reason.contains("held 2"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(kernel.release(id).unwrap(), 1);
        assert_eq!(kernel.release(id).unwrap(), 0);
        assert!(matches!(kernel.release(id), Err(LoadError::NotHeld(_))));
        kernel.unload(id).unwrap();
    }
}

/// A copy of `object` in a fresh directory, with `master` as its master file.
fn with_master(object: &Path, stem: &str, master: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dlkm-lifecycle-{}-{stem}-{}",
        std::process::id(),
        master.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(format!("{stem}.o"));
    std::fs::copy(object, &copy).unwrap();
    std::fs::write(dir.join(format!("{stem}.master")), master).unwrap();
    copy
}

#[test]
fn the_master_file_overrides_modinfo_and_bad_ones_are_named() {
    for (kernel, dir) in kernels() {
        let object = dir.join("lc_base.o");
        let copy = with_master(
            &object,
            "lc_base",
            "# tuned\n$version 7\n$name lc_renamed\n",
        );
        let id = kernel.load_path(&copy).unwrap();
        let info = kernel.module_info(id).unwrap();
        assert_eq!(
            (info.name.as_str(), info.version, info.module_type),
            ("lc_renamed", 7, "misc")
        );
        kernel.unload(id).unwrap();

        let bad = with_master(&object, "lc_base", "$version 2\n$colour blue\n");
        let err = kernel.load_path(&bad).unwrap_err().to_string();
        assert!(
            err.contains("lc_base.master:2") && err.contains("colour"),
            "{err}"
        );
        assert!(kernel.modules().is_empty());
    }
}

#[test]
fn the_first_open_loads_a_driver_and_open_devices_keep_it() {
    for (kernel, dir) in kernels() {
        kernel.add_modpath(&dir).unwrap();
        assert_eq!(kernel.open("lc_drv", 1).unwrap(), 1, "loaded and opened");
        let id = kernel.find_module("lc_drv").expect("loaded by open");
        assert_eq!(kernel.open("lc_drv", 2).unwrap(), 2);
        match kernel.open("lc_drv", 7) {
            Err(LoadError::EntryFailed { entry, code, .. }) => {
                assert_eq!((entry.as_str(), code), ("drv_open", 6));
            }
            other => panic!("minor 7 refuses: {other:?}"),
        }
        assert_eq!(kernel.call_symbol("drv_opened", &[]).unwrap(), 2);
        match kernel.unload(id) {
            Err(LoadError::Busy { reason, .. }) => {
                assert!(reason.contains("2 device(s) open"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(kernel.close("lc_drv", 2).unwrap(), 1);
        assert_eq!(kernel.close("lc_drv", 1).unwrap(), 0);
        assert!(matches!(
            kernel.close("lc_drv", 1),
            Err(LoadError::NotOpen(_))
        ));
        kernel.unload(id).unwrap();
        // Not a driver: lc_base has type misc.
        assert!(matches!(
            kernel.open("lc_base", 0),
            Err(LoadError::NotADriver(_))
        ));
    }
}

/// A driver the first open loaded goes away once closed and idle for its unload_delay (1 s in
/// lc_drv's .modinfo); a held one stays, and so does a module loaded on demand.
#[test]
fn idle_auto_loaded_modules_are_unloaded_by_the_auto_unloader() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    for (kernel, dir) in kernels() {
        let kernel = Arc::new(kernel);
        kernel.add_modpath(&dir).unwrap();
        Kernel::start_auto_unload(&kernel, None, Duration::from_millis(50));
        let base = kernel.load_path(dir.join("lc_base.o")).unwrap();
        kernel.open("lc_drv", 0).unwrap();
        kernel.close("lc_drv", 0).unwrap();
        let driver = kernel.find_module("lc_drv").unwrap();
        assert!(kernel.module_info(driver).unwrap().auto_loaded);
        kernel.hold(driver).unwrap();
        std::thread::sleep(Duration::from_millis(1300));
        assert!(kernel.find_module("lc_drv").is_some(), "held: stays");
        kernel.release(driver).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while kernel.find_module("lc_drv").is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(kernel.find_module("lc_drv").is_none(), "idle: unloaded");
        assert!(
            kernel.module_info(base).is_some(),
            "loaded on demand: stays"
        );
    }
}

/// A master file's checksum is the object's SHA-256: a match loads, anything else is refused
/// before the object is placed.
#[test]
fn the_master_files_checksum_guards_the_object() {
    for (kernel, dir) in kernels() {
        let object = dir.join("lc_base.o");
        let bytes = std::fs::read(&object).unwrap();
        let digest = sha256_hex(&bytes);
        let good = with_master(&object, "lc_base", &format!("$checksum {digest}\n"));
        let id = kernel.load_path(&good).unwrap();
        kernel.unload(id).unwrap();

        let wrong = format!("$checksum {}\n", "0".repeat(64));
        let bad = with_master(&object, "lc_base", &wrong);
        match kernel.load_path(&bad) {
            Err(LoadError::Checksum {
                actual, expected, ..
            }) => {
                assert_eq!((actual, expected), (digest, "0".repeat(64)));
            }
            other => panic!("{other:?}"),
        }
        assert!(kernel.modules().is_empty());
    }
}

/// SHA-256 by `sha256sum`, the second implementation the loader's must agree with.
fn sha256_hex(bytes: &[u8]) -> String {
    let file = std::env::temp_dir().join(format!("dlkm-sha-{}", std::process::id()));
    std::fs::write(&file, bytes).unwrap();
    let output = std::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    String::from_utf8(output.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_boot_list_loads_its_modules_in_order_and_names_the_line_that_fails() {
    for (kernel, dir) in kernels() {
        kernel.add_modpath(&dir).unwrap();
        let list = std::env::temp_dir().join(format!("dlkm-boot-{}.list", std::process::id()));
        let veto = dir.join("lc_veto.o");
        std::fs::write(
            &list,
            format!(
                "# modules at boot\nlc_base\n\n{}  # by path\n",
                veto.display()
            ),
        )
        .unwrap();
        let loaded = kernel.load_boot_list(&list).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(module_names(&kernel), ["lc_base", "lc_veto"]);

        std::fs::write(&list, "lc_drv\nlc_missing\n").unwrap();
        match kernel.load_boot_list(&list) {
            Err(LoadError::BootList { line, source, .. }) => {
                assert_eq!(line, 2);
                assert!(
                    matches!(*source, LoadError::NotOnModulePath { .. }),
                    "{source}"
                );
            }
            other => panic!("a boot list naming a missing module: {other:?}"),
        }
        assert_eq!(module_names(&kernel), ["lc_base", "lc_veto", "lc_drv"]);
        std::fs::remove_file(&list).unwrap();
    }
}

#[test]
fn a_module_may_shadow_a_host_symbol_only_where_the_embedder_allows_it() {
    for (kernel, dir) in kernels() {
        match kernel.load_path(dir.join("lc_shadow.o")) {
            Err(LoadError::ShadowsHost { symbol, .. }) => assert_eq!(symbol, "atoi"),
            other => panic!("a module defining atoi: {other:?}"),
        }
        assert!(kernel.modules().is_empty());
    }
    let allowing = KernelOptions {
        allow_shadowing: true,
        ..KernelOptions::default()
    };
    for (kernel, dir) in kernels_with(allowing) {
        kernel.load_path(dir.join("lc_shadow.o")).unwrap();
        let atoi = kernel.getksym("atoi").unwrap();
        assert!(matches!(atoi.owner, Owner::Module(..)), "{:?}", atoi.owner);
        let seven = kernel.call_symbol("atoi", &[Arg::Str("7".into())]).unwrap();
        assert_eq!(seven as i32, -42, "the module's atoi answers now");
    }
}

#[test]
fn a_modpath_only_kernel_loads_nothing_from_elsewhere() {
    let options = KernelOptions {
        modpath_only: true,
        ..KernelOptions::default()
    };
    for (kernel, dir) in kernels_with(options) {
        let base = dir.join("lc_base.o");
        let outside =
            |r: Result<_, LoadError>| matches!(r, Err(LoadError::OutsideModulePath { .. }));
        assert!(outside(kernel.load_path(&base)), "no module path yet");
        let bytes = std::fs::read(&base).unwrap();
        assert!(outside(kernel.load_bytes("lc_base", &bytes)));
        kernel.add_modpath(&dir).unwrap();
        kernel.load_path(&base).unwrap();

        let elsewhere = std::env::temp_dir().join(format!("dlkm-trust-{}", std::process::id()));
        std::fs::create_dir_all(&elsewhere).unwrap();
        let copy = elsewhere.join("lc_veto.o");
        std::fs::copy(dir.join("lc_veto.o"), &copy).unwrap();
        assert!(
            outside(kernel.load_path(&copy)),
            "a copy outside the module path"
        );
        // A path that starts inside the module path and climbs out of it.
        let depth = std::fs::canonicalize(&dir).unwrap().components().count() - 1;
        let climb: PathBuf = std::iter::repeat_n("..", depth).collect();
        let sneaky = dir.join(climb).join(copy.strip_prefix("/").unwrap());
        assert!(sneaky.is_file());
        assert!(outside(kernel.load_path(&sneaky)), "{}", sneaky.display());
        kernel.load_name("lc_veto").unwrap();
        std::fs::remove_dir_all(&elsewhere).unwrap();
    }
}
