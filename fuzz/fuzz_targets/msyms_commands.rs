#![no_main]

//! msyms' command line: arbitrary text (bytes that are not UTF-8 replaced) through the
//! parser, then run in a session on the emulated machine whose calls run nothing, with three
//! corpus modules loaded (fuzz/src/commands.rs). No panic whatever the text.

use std::sync::Mutex;

use dlkm_fuzz::commands::{fingerprint, kept_session, run};
use libfuzzer_sys::fuzz_target;
use msyms::Session;

/// The session and what it looked like new. An input that changes it (unloads a module,
/// holds one, sets a breakpoint, quits) has the next input start in a new one, so every input
/// starts in the same state.
static SESSION: Mutex<Option<(Session, String)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut slot = SESSION.lock().unwrap_or_else(|e| e.into_inner());
    let (session, fresh) = kept_session(&mut slot);
    run(session, &text);
    if fingerprint(session) != *fresh {
        *slot = None;
    }
});
