//! Every corpus object of this host's architecture (x86_64, or aarch64), loaded into this
//! process through the library API, computes the answer the natively linked program computed.

#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use dlkm_loader::Kernel;
use dlkm_tests::{by_module_set, read_answers, variants};

const VARIANTS: [&str; 3] = ["gcc-pie", "gcc-nopic", "clang"];

fn run_variant(variant: &str) {
    let arch = dlkm_linker::ArchKind::host().unwrap().name();
    let all = variants(arch);
    let answers = all
        .get(variant)
        .unwrap_or_else(|| panic!("corpus/{arch}/{variant}/answers.txt is missing"));
    let checks = read_answers(answers).unwrap();
    for program in ["zlib", "lua", "sqlite"] {
        assert!(
            checks.iter().any(|c| c.function.starts_with(program)),
            "{variant}: no check for {program}"
        );
    }
    let total = checks.len();
    let mut passed = 0;
    let mut failures = Vec::new();
    for (modules, checks) in by_module_set(checks) {
        let kernel = Kernel::native().unwrap();
        for module in &modules {
            if let Err(e) = kernel.load_path(module) {
                failures.push(format!("{variant}: load {}: {e}", module.display()));
            }
        }
        for check in checks {
            match kernel.call_symbol(&check.function, &check.args) {
                Ok(value) if value as i64 == check.expected => passed += 1,
                Ok(value) => failures.push(format!(
                    "{variant} line {}: {} gave {}, native {}",
                    check.line,
                    check.call_command(),
                    value as i64,
                    check.expected
                )),
                Err(e) => failures.push(format!("{variant} line {}: {e}", check.line)),
            }
        }
        for module in modules.iter().rev() {
            let name = module.file_stem().unwrap().to_string_lossy();
            if let Some(id) = kernel.find_module(&name) {
                if let Err(e) = kernel.unload(id) {
                    failures.push(format!("{variant}: unload {name}: {e}"));
                }
            }
        }
        assert!(
            kernel.modules().is_empty(),
            "{variant}: modules left loaded"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, total, "{variant}: every check ran and passed");
    eprintln!("{variant}: {passed} checks passed");
}

#[test]
fn gcc_pie_objects_compute_native_answers() {
    run_variant(VARIANTS[0]);
}

#[test]
fn gcc_nopic_objects_compute_native_answers() {
    run_variant(VARIANTS[1]);
}

#[test]
fn clang_objects_compute_native_answers() {
    run_variant(VARIANTS[2]);
}
