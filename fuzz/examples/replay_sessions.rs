//! The `msyms_commands` target's sessions, replayed from its corpus in order, as the target
//! runs them (a session kept across inputs, replaced when an input changes it), and each
//! replaced session's emulated machine checked gone: its thread ended. Run under valgrind it
//! also shows that replacing sessions leaks nothing, the check the target runs without
//! (scripts/fuzz.sh says why).
//!
//! ```text
//! cargo +nightly build --release --example replay_sessions   # in fuzz/
//! valgrind --leak-check=full target/release/examples/replay_sessions corpus/msyms_commands
//! ```

use dlkm_fuzz::commands::{fingerprint, kept_session, run};

/// The process's threads: this one, and the machine thread of the session kept.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: replay_sessions CORPUS_DIR");
        std::process::exit(2);
    };
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|entry| entry.path())
        .collect();
    inputs.sort();
    let mut slot = None;
    let mut replaced = 0;
    for input in &inputs {
        let text = String::from_utf8_lossy(&std::fs::read(input).unwrap_or_default()).into_owned();
        let (session, fresh) = kept_session(&mut slot);
        run(session, &text);
        if fingerprint(session) != *fresh {
            slot = None;
            replaced += 1;
            // The old session's machine thread has ended; the next session starts its own.
            assert!(
                threads() <= 1,
                "{}: a replaced session's thread lives on",
                input.display()
            );
        }
    }
    println!(
        "{} inputs, {replaced} sessions replaced, {} threads at the end",
        inputs.len(),
        threads()
    );
}
