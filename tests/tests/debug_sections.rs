//! The debug sections dlkm relocates for source lines (`dlkm_linker::debug_sections`) are
//! byte for byte what ld.lld makes of them when it links the same object at the same addresses:
//! every corpus object with a line table, every architecture.

use std::path::{Path, PathBuf};

use dlkm_linker::{layout, link, ExternalKind, ExternalSymbol, LayoutOptions, Object};
use dlkm_tests::compare::{external_addresses, BASE};
use dlkm_tests::{corpus_dir, lld};

/// Every `.o` under `corpus/ARCH/*/` and its subdirectories.
fn objects(arch: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "o") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&corpus_dir().join(arch), &mut found);
    found.sort();
    found
}

/// Relocates `path`'s debug sections with dlkm and with ld.lld; `Ok(None)` for an object
/// without a line table or one the comparison cannot express (objects made not to link).
fn compare(path: &Path, work: &Path) -> Result<Option<usize>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let name = path.display().to_string();
    let object = Object::parse(&name, &bytes).map_err(|e| e.to_string())?;
    if !object.has_line_table() {
        return Ok(None);
    }
    let options = LayoutOptions {
        page_size: msyms::link::LINK_PAGE_SIZE,
        ..LayoutOptions::default()
    };
    let Ok(layout) = layout(&object, &options) else {
        return Ok(None);
    };
    let defsyms = external_addresses(&object);
    let mut resolver = |name: &str| {
        defsyms.get(name).map(|&address| ExternalSymbol {
            address,
            size: 0,
            kind: ExternalKind::Unknown,
        })
    };
    let Ok((_, output)) = link(&object, &layout, BASE, &mut resolver) else {
        return Ok(None);
    };
    let ours = dlkm_linker::debug_sections(&object, &layout, BASE, &output.imports)
        .map_err(|e| e.to_string())?;
    if let Some(skipped) = ours.skipped.first() {
        return Err(format!("{} skipped: {}", skipped.name, skipped.reason));
    }
    let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
    let Some(script) = lld::script(&object, &layout, BASE, &file_name) else {
        return Ok(None);
    };
    let theirs = lld::link(object.arch, &bytes, &file_name, &script, &defsyms, work)?;
    let mut problems = Vec::new();
    for (section, mine) in &ours.sections {
        match theirs.debug.get(section) {
            None => problems.push(format!("{section}: not in ld.lld's output")),
            Some(lld_bytes) if lld_bytes != mine => {
                let at = mine
                    .iter()
                    .zip(lld_bytes)
                    .position(|(a, b)| a != b)
                    .unwrap_or(mine.len().min(lld_bytes.len()));
                problems.push(format!(
                    "{section}: differs from ld.lld's at {at:#x} ({} bytes, ld.lld {})",
                    mine.len(),
                    lld_bytes.len()
                ));
            }
            Some(_) => {}
        }
    }
    for section in theirs.debug.keys() {
        if !ours.sections.contains_key(section) {
            problems.push(format!("{section}: in ld.lld's output, not in dlkm's"));
        }
    }
    if problems.is_empty() {
        Ok(Some(ours.sections.len()))
    } else {
        Err(problems.join("; "))
    }
}

fn compare_arch(arch: &str) {
    assert!(
        lld::available(),
        "ld.lld is needed for this test (scripts/test.sh installs lld)"
    );
    let work = std::env::temp_dir().join(format!("dlkm-debug-{arch}-{}", std::process::id()));
    let (mut objects_compared, mut sections) = (0, 0);
    let mut failures = Vec::new();
    for path in objects(arch) {
        match compare(&path, &work) {
            Ok(Some(n)) => {
                objects_compared += 1;
                sections += n;
            }
            Ok(None) => {}
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{arch}: {objects_compared} objects, {sections} debug sections like ld.lld's");
    // The project's own sources are built with -g in every variant.
    assert!(objects_compared >= 30, "only {objects_compared} objects");
}

#[test]
fn x86_64_debug_sections_relocate_like_lld() {
    compare_arch("x86_64");
}

#[test]
fn aarch64_debug_sections_relocate_like_lld() {
    compare_arch("aarch64");
}

#[test]
fn mips_debug_sections_relocate_like_lld() {
    compare_arch("mips");
}

#[test]
fn mipsel_debug_sections_relocate_like_lld() {
    compare_arch("mipsel");
}
