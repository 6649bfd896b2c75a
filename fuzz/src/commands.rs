//! msyms' command line: the `msyms_commands` target's driver. Text goes through the parser
//! (`msyms::parse_line`), whose results are checked, and then the commands are run in a
//! [`Session`] whose kernel runs on the [`InertMachine`](super::emulated::InertMachine), with
//! three modules of the corpus loaded: every call answers 0 at once, so no module code runs.
//!
//! Commands that would touch the file system, or wait, are not run: `load` and `register` of
//! anything but a bare name (which is looked for on the module path, empty here), `modpath` of
//! a path that exists, `sleep` longer than a millisecond. Everything else runs, `call`, `x`,
//! `dis`, `break`, `unload` and `quit` included. Errors are fine; a panic is a bug.

use std::path::Path;

use dlkm_linker::ArchKind;
use msyms::commands::{self, CommandSpec};
use msyms::parse::quote;
use msyms::{parse_line, CommandError, Session, Step, Token};

use super::emulated::InertKernel;

/// The modules every session starts with: a driver (`open`/`close` reach its entry points),
/// a library with exports, and function pointers in data. Committed corpus objects.
pub const MODULES: [(&str, &[u8]); 3] = [
    (
        "lc_drv",
        include_bytes!("../../corpus/aarch64/clang/lifecycle/lc_drv.o"),
    ),
    (
        "lc_lib",
        include_bytes!("../../corpus/aarch64/clang/lifecycle/lc_lib.o"),
    ),
    (
        "funcptr",
        include_bytes!("../../corpus/aarch64/clang/funcptr.o"),
    ),
];

/// A session with [`MODULES`] loaded, on an aarch64 [`InertKernel`].
pub fn new_session() -> Session {
    let inert = InertKernel::new(ArchKind::Aarch64);
    for (name, bytes) in MODULES {
        inert
            .kernel
            .load_bytes(name, bytes)
            .unwrap_or_else(|e| panic!("corpus module {name} does not load: {e}"));
    }
    Session::new(inert.kernel)
}

/// The session kept across inputs, made when there is none, with its fingerprint when new.
pub fn kept_session(slot: &mut Option<(Session, String)>) -> &mut (Session, String) {
    slot.get_or_insert_with(|| {
        let session = new_session();
        let print = fingerprint(&session);
        (session, print)
    })
}

/// What the session looks like from outside, to tell whether a command changed it.
pub fn fingerprint(session: &Session) -> String {
    let kernel = session.kernel();
    let modules: Vec<String> = kernel
        .modules()
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {} {} {} {:#x}",
                m.id, m.name, m.state, m.refs, m.holds, m.opens, m.base
            )
        })
        .collect();
    let breakpoints = kernel
        .debugger()
        .map(|d| d.breakpoints().len())
        .unwrap_or(0);
    format!(
        "{modules:?} exports={} breakpoints={breakpoints} modpath={:?} finished={}",
        kernel.exports().len(),
        session.modpath(),
        session.is_finished()
    )
}

/// Parses `text`, checks what the parser gives, and runs the commands that are safe to run in
/// `session` (see the module's documentation). Returns how many commands ran.
pub fn run(session: &mut Session, text: &str) -> usize {
    let parsed = parse_line(text);
    check_parse(text, &parsed);
    let steps = Step::from_text(text);
    match &parsed {
        Ok(commands) => assert_eq!(steps.len(), commands.len()),
        Err(_) => assert!(steps.len() == 1 && steps[0].command.is_err()),
    }
    let Ok(commands) = parsed else {
        return 0;
    };
    let mut ran = 0;
    let mut out = Vec::new();
    for command in &commands {
        let name = command[0].text();
        let spec = commands::find(name);
        if spec.is_none() {
            // What `help NAME` and an unknown command say.
            let suggestions = commands::suggest(name);
            assert!(suggestions.iter().all(|s| commands::find(s).is_some()));
        }
        if !spec.is_none_or(|spec| is_safe(spec, &command[1..])) {
            continue;
        }
        out.clear();
        let result = session.run(command, &mut out);
        ran += 1;
        if let Err(error) = result {
            check_error(&error);
        }
        if session.is_finished() {
            break;
        }
    }
    ran
}

/// Whether running `spec` with `args` stays off the file system and does not wait.
fn is_safe(spec: &CommandSpec, args: &[Token]) -> bool {
    match spec.name {
        // A bare name is NAME.o on the module path, which stays empty; a path is read.
        "load" | "register" => args
            .iter()
            .all(|a| !a.text().contains(['/', '\\', '.']) && !a.text().is_empty()),
        "modpath" => args.iter().all(|a| !Path::new(a.text()).exists()),
        "sleep" => args.iter().all(|a| {
            a.text()
                .parse::<f64>()
                .map_or(true, |secs| !(secs.is_finite() && secs > 0.001))
        }),
        _ => true,
    }
}

/// What must hold of what `parse_line` made of `text`.
fn check_parse(text: &str, parsed: &Result<Vec<Vec<Token>>, CommandError>) {
    let commands = match parsed {
        Ok(commands) => commands,
        Err(error) => {
            assert!(
                matches!(error, CommandError::Syntax(_)),
                "the parser failed with {error:?}"
            );
            assert!(text.contains('"'), "only an unterminated string fails");
            return;
        }
    };
    for command in commands {
        assert!(!command.is_empty(), "an empty command");
        for token in command {
            if let Token::Word(word) = token {
                assert!(!word.is_empty(), "an empty bare word");
                assert!(
                    !word.contains(|c: char| c.is_whitespace() || c == ';' || c == '"'),
                    "bare word {word:?} holds a separator"
                );
                assert!(!word.starts_with('#'), "bare word {word:?} is a comment");
            }
        }
        // Quoting each word gives the command back, every word quoted.
        let line: Vec<String> = command.iter().map(|t| quote(t.text())).collect();
        let again = parse_line(&line.join(" "))
            .unwrap_or_else(|e| panic!("quoted words do not parse: {e}"));
        let expected: Vec<Token> = command
            .iter()
            .map(|t| Token::Quoted(t.text().to_string()))
            .collect();
        assert_eq!(again, vec![expected], "quoting does not round-trip");
    }
}

/// A command's error: a message, and never one the fuzzed session cannot make (the terminal).
fn check_error(error: &CommandError) {
    assert!(
        !matches!(error, CommandError::Terminal(_)),
        "a terminal error without a terminal: {error}"
    );
    let mut report = Vec::new();
    msyms::report(&mut report, Some("fuzz"), error);
    assert!(report.starts_with(b"error: fuzz: ") && report.len() > b"error: fuzz: \n".len());
}
