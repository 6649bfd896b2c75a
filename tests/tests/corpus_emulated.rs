//! Every aarch64, MIPS and MIPSel corpus object, loaded into the emulated machine through the
//! library API, computes the answer its natively linked program computed under qemu-user.
//! Every kernel call of these modules is a far call through the linker's stubs.

#![cfg(feature = "emulated")]

use dlkm_linker::ArchKind;
use dlkm_loader::machine::emulated::EmulatedMachine;
use dlkm_loader::{Arg, Kernel, KernelOptions, LoadError, Stop};
use dlkm_tests::{by_module_set, read_answers, variants};

/// Runs every check of `arch/variant`, each module set in a fresh emulated kernel; returns
/// how many passed, and what went wrong.
fn run_variant(arch: &str, variant: &str) -> (usize, Vec<String>) {
    let kind = ArchKind::from_name(arch).unwrap();
    let all = variants(arch);
    let answers = all
        .get(variant)
        .unwrap_or_else(|| panic!("corpus/{arch}/{variant}/answers.txt is missing"));
    let checks = read_answers(answers).unwrap();
    let mut passed = 0;
    let mut failures = Vec::new();
    for (modules, checks) in by_module_set(checks) {
        let machine = EmulatedMachine::new(kind).unwrap();
        let kernel = Kernel::with_machine(Box::new(machine), KernelOptions::default());
        let mut loaded = true;
        for module in &modules {
            if let Err(e) = kernel.load_path(module) {
                failures.push(format!("{arch}/{variant}: load {}: {e}", module.display()));
                loaded = false;
            }
        }
        if !loaded {
            continue;
        }
        for check in checks {
            match kernel.call_symbol(&check.function, &check.args) {
                Ok(value) if value as i64 == check.expected => passed += 1,
                Ok(value) => failures.push(format!(
                    "{arch}/{variant} line {}: {} gave {}, native {}",
                    check.line,
                    check.call_command(),
                    value as i64,
                    check.expected
                )),
                Err(e) => failures.push(format!(
                    "{arch}/{variant} line {}: {}: {e}",
                    check.line,
                    check.call_command()
                )),
            }
        }
        for module in modules.iter().rev() {
            let name = module.file_stem().unwrap().to_string_lossy();
            if let Some(id) = kernel.find_module(&name) {
                if let Err(e) = kernel.unload(id) {
                    failures.push(format!("{arch}/{variant}: unload {name}: {e}"));
                }
            }
        }
    }
    (passed, failures)
}

fn check_variant(arch: &str, variant: &str) {
    let (passed, failures) = run_variant(arch, variant);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let total = read_answers(&variants(arch)[variant]).unwrap().len();
    assert_eq!(
        passed, total,
        "{arch}/{variant}: every check ran and passed"
    );
    assert!(total >= 55, "{arch}/{variant}: only {total} checks");
    eprintln!("{arch}/{variant}: {passed} checks passed");
}

#[test]
fn aarch64_gcc_nopic() {
    check_variant("aarch64", "gcc-nopic");
}

#[test]
fn aarch64_gcc_pie() {
    check_variant("aarch64", "gcc-pie");
}

#[test]
fn aarch64_clang() {
    check_variant("aarch64", "clang");
}

#[test]
fn mips_gcc() {
    check_variant("mips", "gcc");
}

#[test]
fn mips_gcc_longcalls() {
    check_variant("mips", "gcc-longcalls");
}

#[test]
fn mips_clang() {
    check_variant("mips", "clang");
}

#[test]
fn mipsel_gcc() {
    check_variant("mipsel", "gcc");
}

#[test]
fn mipsel_gcc_longcalls() {
    check_variant("mipsel", "gcc-longcalls");
}

#[test]
fn mipsel_clang() {
    check_variant("mipsel", "clang");
}

/// A call that runs past the machine's instruction budget is stopped and reported where it
/// was; the machine goes on serving calls.
#[test]
fn runaway_calls_stop_at_the_instruction_budget() {
    let machine = EmulatedMachine::new(ArchKind::Aarch64).unwrap();
    machine.set_budget(100_000).unwrap();
    let kernel = Kernel::with_machine(Box::new(machine), KernelOptions::default());
    let dir = dlkm_tests::corpus_dir().join("aarch64/gcc-pie");
    kernel.load_path(dir.join("zlib.o")).unwrap();
    kernel.load_path(dir.join("zlib_driver.o")).unwrap();
    match kernel.call_symbol("zlib_selftest", &[]) {
        Err(LoadError::Stopped {
            stop: Stop::Budget { budget, .. },
            location: Some(location),
        }) => {
            assert_eq!(budget, 100_000);
            assert!(location.starts_with("zlib"), "stopped in {location}");
        }
        other => panic!("zlib_selftest with a tiny budget: {other:?}"),
    }
    let crc = kernel
        .call_symbol("zlib_crc32", &[Arg::Str("hello".into())])
        .unwrap();
    assert_eq!(crc, 907_060_870);
}

/// The answer the natively linked program gave for `function` in `arch/variant`.
fn answer(arch: &str, variant: &str, function: &str) -> i64 {
    read_answers(&variants(arch)[variant])
        .unwrap()
        .into_iter()
        .find(|c| c.function == function)
        .unwrap_or_else(|| panic!("no answer for {function}"))
        .expected
}

/// A breakpoint pauses a call where it is set: the registers show it, the backtrace names the
/// caller, steps advance it, `continue` runs to the next hit and then to the end, with the
/// native answer.
fn breakpoint_step_continue(arch: &str, variant: &str) {
    let kernel = Kernel::emulated(ArchKind::from_name(arch).unwrap()).unwrap();
    let dir = dlkm_tests::corpus_dir().join(arch).join(variant);
    kernel.load_path(dir.join("zlib.o")).unwrap();
    kernel.load_path(dir.join("zlib_driver.o")).unwrap();
    let crc32 = kernel.resolve("crc32").unwrap();
    let debugger = kernel.debugger().unwrap();
    let id = debugger.set_breakpoint(crc32).unwrap();
    assert_eq!(debugger.breakpoints(), vec![(id, crc32)]);

    let at_breakpoint = |outcome: Result<u64, LoadError>| match outcome {
        Err(LoadError::Stopped {
            stop: Stop::Breakpoint { id: hit, pc },
            location: Some(location),
        }) => {
            assert_eq!((hit, pc), (id, crc32));
            assert_eq!(location, "zlib:crc32+0x0");
        }
        other => panic!("{arch}: expected the breakpoint, got {other:?}"),
    };
    // zlib_selftest calls crc32(0, NULL, 0), then crc32 over its buffer.
    at_breakpoint(kernel.call_symbol("zlib_selftest", &[]));
    let registers = debugger.registers().unwrap();
    assert!(registers.contains(&("pc", crc32)), "{registers:?}");
    let first_argument = if arch == "aarch64" { "x0" } else { "a0" };
    assert!(registers.contains(&(first_argument, 0)), "{registers:?}");
    let frames = debugger.backtrace().unwrap();
    assert_eq!(frames[0], crc32);
    let caller = frames[1..]
        .iter()
        .filter_map(|&a| kernel.describe_address(a))
        .next()
        .expect("a frame in a module");
    assert!(caller.starts_with("zlib_driver:zlib_selftest+"), "{caller}");

    match kernel.resume(Some(3)) {
        Err(LoadError::Stopped {
            stop: Stop::Stepped { pc },
            ..
        }) => assert!(pc != crc32, "three steps moved the pc"),
        other => panic!("{arch}: expected a step, got {other:?}"),
    }
    let busy = kernel.call_symbol("zlib_selftest", &[]);
    assert!(busy.is_err(), "no new call while one is paused");
    at_breakpoint(kernel.resume(None));
    debugger.delete_breakpoint(id).unwrap();
    let expected = answer(arch, variant, "zlib_selftest");
    assert_eq!(kernel.resume(None).unwrap() as i64, expected);
    assert!(kernel.resume(None).is_err(), "nothing left to continue");
    assert_eq!(
        kernel.call_symbol("zlib_selftest", &[]).unwrap() as i64,
        expected
    );
}

#[test]
fn breakpoints_and_steps_aarch64() {
    breakpoint_step_continue("aarch64", "gcc-pie");
}

#[test]
fn breakpoints_and_steps_mips() {
    breakpoint_step_continue("mips", "gcc");
}
