//! Every corpus object of every architecture, linked by `msyms link` and by ld.lld at the same
//! addresses, gives the same bytes in every compared section, and its GOT- and GP-relative
//! references reach the same targets (see `dlkm_tests::compare`).

use std::path::PathBuf;

use dlkm_tests::{compare, corpus_dir, lld};

fn objects(arch: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(variants) = std::fs::read_dir(corpus_dir().join(arch)) else {
        return found;
    };
    for variant in variants.flatten().filter(|e| e.path().is_dir()) {
        for dir in [variant.path(), variant.path().join("errors")] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|e| e == "o") {
                    found.push(entry.path());
                }
            }
        }
    }
    found.sort();
    found
}

/// Compares every object of `arch`; returns how many indirect references agreed.
fn compare_arch(arch: &str) -> usize {
    assert!(
        lld::available(),
        "ld.lld is needed for this test (scripts/test.sh installs lld)"
    );
    let objects = objects(arch);
    assert!(!objects.is_empty(), "no {arch} corpus objects");
    let work = std::env::temp_dir().join(format!("dlkm-lld-{arch}-{}", std::process::id()));
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let (mut compared, mut sections, mut indirect) = (0, 0, 0);
    for path in &objects {
        match compare::compare_object(path, &work) {
            Ok(Some(agreement)) => {
                compared += 1;
                sections += agreement.sections;
                indirect += agreement.indirect;
            }
            Ok(None) => skipped.push(path.display().to_string()),
            // Objects made to fail to link (undefined symbols, TLS) are not comparable.
            Err(e) if path.parent().is_some_and(|p| p.ends_with("errors")) => {
                eprintln!("not compared: {}: {e}", path.display());
            }
            Err(e) => failures.push(format!("{}:\n  {e}", path.display())),
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{arch}: {compared} of {} objects ({sections} sections) byte-identical to ld.lld; \
         {indirect} GOT/GP references reach the same targets; skipped: {skipped:?}",
        objects.len()
    );
    assert!(compared * 10 >= objects.len() * 9, "too many skipped");
    indirect
}

#[test]
fn x86_64_corpus_links_like_lld() {
    let got_sites = compare_arch("x86_64");
    assert!(got_sites >= 50, "only {got_sites} GOT references compared");
}

/// gcc PIE and clang reach extern data through ADRP + LDR of a GOT slot.
#[test]
fn aarch64_corpus_links_like_lld() {
    let got_sites = compare_arch("aarch64");
    assert!(got_sites >= 50, "only {got_sites} GOT references compared");
}

/// `-mno-abicalls -G 0`: no GOT and no gp-relative data, only absolute and branch fields.
#[test]
fn mips_corpus_links_like_lld() {
    compare_arch("mips");
}

#[test]
fn mipsel_corpus_links_like_lld() {
    compare_arch("mipsel");
}
