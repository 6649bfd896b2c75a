//! The library side of msyms: a `Session` driven directly, as an embedder or a test would.

use msyms::{CommandError, Session, Step};

fn session() -> Session {
    Session::new(dlkm_loader::Kernel::native().expect("native kernel"))
}

fn execute(session: &mut Session, line: &str) -> (Result<(), CommandError>, String) {
    let mut out = Vec::new();
    let result = session.execute(line, &mut out);
    (result, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn execute_runs_every_command_of_a_line() {
    let mut session = session();
    let (result, out) = execute(&mut session, r#"call labs -7; call strlen "a;b""#);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(out, "= 7 (0x7)\n= 3 (0x3)\n");
}

#[test]
fn execute_stops_at_the_first_error() {
    let mut session = session();
    let (result, out) = execute(&mut session, "modulez; modules");
    match result {
        Err(CommandError::UnknownCommand { name, suggestions }) => {
            assert_eq!(name, "modulez");
            assert_eq!(suggestions.first().map(String::as_str), Some("modules"));
        }
        other => panic!("{other:?}"),
    }
    assert!(out.is_empty());
}

#[test]
fn quit_ends_a_batch() {
    let mut session = session();
    let steps = Step::from_text("call labs 1; quit; call labs 2");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(session.run_steps(steps, false, &mut out, &mut err), 0);
    assert_eq!(String::from_utf8_lossy(&out), "= 1 (0x1)\n");
    assert!(session.is_finished());
}

#[test]
fn run_steps_counts_failures_with_keep_going() {
    let mut session = session();
    let steps = Step::from_text("nope; call labs -1; unload x; modpath /no/such/dir");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(session.run_steps(steps, true, &mut out, &mut err), 3);
    let err = String::from_utf8_lossy(&err);
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 3);
    assert_eq!(String::from_utf8_lossy(&out), "= 1 (0x1)\n");
}

#[test]
fn objects_are_found_in_the_module_path() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("msyms-session-modpath");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let object = dir.join("unique_test_module.o");
    std::fs::write(&object, b"not really an object").expect("scratch file");

    let mut session = session();
    assert!(matches!(
        session.find_object("unique_test_module"),
        Err(CommandError::NotInModpath { .. })
    ));
    session.add_modpath(&dir).expect("modpath");
    assert!(session.add_modpath("/no/such/dir").is_err());
    assert_eq!(
        session.find_object("unique_test_module").ok(),
        Some(object.clone())
    );
    assert_eq!(
        session.find_object("unique_test_module.o").ok(),
        Some(object)
    );
    assert_eq!(
        session.find_object("some/dir/x.o").ok(),
        Some("some/dir/x.o".into())
    );
    // Found, but not an object: the loader's error, with the command as context.
    let (result, _) = execute(&mut session, "load unique_test_module");
    let message = result.expect_err("not an object").to_string();
    assert!(
        message.starts_with("load unique_test_module: "),
        "{message}"
    );
}
