//! Inputs the fuzzers once crashed the linker with (corpus/fuzz-regressions/, minimized), run
//! through the fuzz targets' own driver (fuzz/src/lib.rs): parse, two layouts, links at two
//! bases with three resolvers, and the invariants it asserts. Each must end in `Ok` or a
//! `LinkError`; all panics are reported together.
//!
//! `DLKM_FUZZ_INPUTS=DIR` replays another directory instead, a fuzzer's corpus say, on the
//! stable toolchain.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod driver;

use driver::Outcome;

fn inputs() -> (PathBuf, Vec<PathBuf>) {
    let dir = std::env::var_os("DLKM_FUZZ_INPUTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dlkm_tests::corpus_dir().join("fuzz-regressions"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    (dir, files)
}

#[test]
fn fuzz_regressions_end_in_ok_or_a_link_error() {
    let (dir, files) = inputs();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    // The panics are the findings: keep the default hook from printing each one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let (mut refused, mut links_ok, mut errors) = (0, 0, 0);
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match catch_unwind(AssertUnwindSafe(|| driver::run(&data, None))) {
            Ok(Outcome::Refused(error)) => {
                assert!(!error.to_string().is_empty());
                refused += 1;
            }
            Ok(Outcome::OtherFamily) => unreachable!("no family was asked for"),
            Ok(Outcome::Tried(results)) => {
                for result in results {
                    match result {
                        Ok(()) => links_ok += 1,
                        Err(error) => {
                            assert!(!error.to_string().is_empty());
                            errors += 1;
                        }
                    }
                }
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into());
                failures.push(format!("{}: {message}", path.display()));
            }
        }
    }
    std::panic::set_hook(hook);
    eprintln!(
        "{} inputs from {}: {refused} refused by the parser, {links_ok} layouts and links \
         succeeded, {errors} ended in a LinkError",
        files.len(),
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} of {} inputs panicked:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
