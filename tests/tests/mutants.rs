//! A short run of the mutants check (`src/bin/mutants.rs`; `scripts/mutants.sh` for long
//! ones): seeded mutants of a few small corpus objects through the real `msyms link` and
//! `msyms load` binary, x86_64 loaded natively, aarch64 and MIPS emulated. Every run must end
//! with status 0, or 1 and an `error:` line: no panic, signal or hang.

#![cfg(feature = "emulated")]

use std::path::{Path, PathBuf};
use std::process::Command;

use dlkm_tests::corpus_dir;

const SEED: &str = "20240601";
const COUNT: &str = "100";

/// The msyms binary to run: `DLKM_MSYMS`, else the workspace's, built (or found up to date) by
/// the cargo running these tests; the tests crate only links msyms's library, so cargo does not
/// build the binary for it.
fn msyms_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DLKM_MSYMS") {
        return path.into();
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = !cfg!(debug_assertions);
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(&workspace)
        .args(["build", "--locked", "--quiet", "--message-format=json"])
        .args(["-p", "msyms", "--bin", "msyms"]);
    if release {
        cargo.arg("--release");
    }
    let output = cargo.output().expect("cannot run cargo to build msyms");
    assert!(
        output.status.success(),
        "cargo build -p msyms failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let messages = String::from_utf8_lossy(&output.stdout);
    messages
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let path = &l[start..start + l[start..].find('"')?];
            path.ends_with("/msyms").then(|| PathBuf::from(path))
        })
        .expect("cargo named no msyms executable")
}

#[test]
fn mutants_of_corpus_objects_end_with_status_0_or_1() {
    let corpus = corpus_dir();
    let objects = [
        corpus.join("x86_64/gcc-pie/switch.o"),
        corpus.join("x86_64/gcc-pie/funcptr.o"),
        corpus.join("aarch64/gcc-nopic/data.o"),
        corpus.join("mips/gcc/switch.o"),
    ];
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mutant-failures");
    let output = Command::new(env!("CARGO_BIN_EXE_mutants"))
        .args(["--seed", SEED, "--count", COUNT, "--timeout", "60"])
        .arg("--msyms")
        .arg(msyms_binary())
        .arg("--out")
        .arg(&out)
        .args(&objects)
        .output()
        .expect("cannot run the mutants runner");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "mutants failed ({}), kept in {}:\n{stdout}\n{}",
        output.status,
        out.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    // Every object was mutated COUNT times.
    let total = stdout
        .lines()
        .find(|l| l.starts_with("total"))
        .expect("a summary");
    let mutants: usize = total
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a mutant count");
    assert_eq!(mutants, objects.len() * COUNT.parse::<usize>().unwrap());
}
