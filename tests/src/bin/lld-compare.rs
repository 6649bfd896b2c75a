//! `lld-compare OBJECT...`: links each object with `msyms link` and with ld.lld at the same
//! addresses and says whether every compared section is byte-identical (GOT- and GP-relative
//! references reaching the same targets). Exit status 1 if any object differs.
//!
//! `cargo run -p dlkm-tests --bin lld-compare -- path/to/*.o`

use std::process::ExitCode;

use dlkm_tests::{compare, lld};

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() || paths.iter().any(|p| p == "-h" || p == "--help") {
        eprintln!("usage: lld-compare OBJECT...");
        return ExitCode::from(2);
    }
    if !lld::available() {
        eprintln!("error: ld.lld not found (Debian: apt-get install lld)");
        return ExitCode::FAILURE;
    }
    let work = std::env::temp_dir().join(format!("dlkm-lld-compare-{}", std::process::id()));
    let mut failed = false;
    for path in &paths {
        match compare::compare_object(path.as_ref(), &work) {
            Ok(Some(a)) => println!(
                "{path}: identical ({} sections, {} GOT/GP references agree)",
                a.sections, a.indirect
            ),
            Ok(None) => println!("{path}: not comparable (two loaded sections share a name)"),
            Err(e) => {
                failed = true;
                println!("{path}: DIFFERS\n  {e}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
