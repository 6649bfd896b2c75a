//! gdb sees native modules: msyms, run under `gdb -batch`, loads a module whose function
//! faults and calls it; gdb's backtrace names the module's functions with their source lines
//! (the module's debug object, registered through gdb's JIT interface) and goes on through
//! them into msyms (the debug object's `.eh_frame`). The module is unloaded and loaded again
//! first, so gdb has seen an unregistration too.
//!
//! Here rather than in `tests/`: it runs the msyms binary, which cargo builds for msyms's
//! own tests only (`CARGO_BIN_EXE_msyms`). Needs gdb (`DLKM_NEED_GDB=1 scripts/deps.sh`, which
//! `scripts/test.sh` runs) and a process that may trace its children.

#![cfg(target_arch = "x86_64")]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gdb_available() -> bool {
    Command::new("gdb")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs msyms under gdb with `commands`, lets it fault, prints the backtrace; gdb's output.
fn backtrace_under_gdb(commands: &str) -> String {
    let mut child = Command::new("gdb")
        .args(["-nx", "-batch"])
        .args(["-iex", "set debuginfod enabled off"])
        .args(["-ex", "run", "-ex", "bt"])
        .arg("--args")
        .arg(env!("CARGO_BIN_EXE_msyms"))
        .args(["-c", commands])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run gdb");
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().expect("waiting for gdb").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gdb did not finish in 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut output = String::new();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        let _ = stream.read_to_string(&mut output);
    }
    output
}

#[test]
fn gdb_backtraces_name_module_functions_and_lines() {
    assert!(
        gdb_available(),
        "gdb is needed for this test (DLKM_NEED_GDB=1 scripts/deps.sh installs it)"
    );
    for variant in ["gcc-pie", "gcc-nopic", "clang"] {
        let object = format!("corpus/x86_64/{variant}/unwind.o");
        let commands = format!("load {object}; unload unwind; load {object}; call uw_fault 0");
        let output = backtrace_under_gdb(&commands);
        assert!(
            !output.contains("ptrace: Operation not permitted"),
            "this process may not trace its children:\n{output}"
        );
        assert!(
            output.contains("SIGSEGV"),
            "{variant}: no fault under gdb:\n{output}"
        );
        let frames: Vec<&str> = output.lines().filter(|l| l.starts_with('#')).collect();
        let position = |what: &str| frames.iter().position(|f| f.contains(what));
        // The faulting read, in the module's static function, then its caller: names from
        // the symbol table, files and lines from the DWARF.
        let read = position("uw_read");
        let fault = position("uw_fault");
        assert_eq!(
            read,
            Some(0),
            "{variant}: frame #0 is not uw_read:\n{output}"
        );
        assert_eq!(
            fault,
            Some(1),
            "{variant}: frame #1 is not uw_fault:\n{output}"
        );
        for frame in &frames[..2] {
            assert!(
                frame.contains("src/features/unwind.c:"),
                "{variant}: no source line in `{frame}`:\n{output}"
            );
        }
        // Unwound through the module into msyms.
        assert!(
            frames[2..].iter().any(|f| f.contains("main")),
            "{variant}: the backtrace stops in the module:\n{output}"
        );
    }
}
