//! Small real objects of every corpus variant (gcc and clang output for x86_64, aarch64, MIPS
//! and MIPSel) through the pure linker alone: parse, lay out, and link with the kernel's
//! symbols near the image (must succeed) and far from it (stubs; must end in `Ok` or a
//! `LinkError`). Sized so that `scripts/sanitize.sh` can run it under Miri, where the
//! linker's own tests see only objects written by `object::write`; on the stable toolchain it
//! is one more quick check.

use std::path::PathBuf;

use dlkm_linker::{layout, link, ExternalKind, ExternalSymbol, LayoutOptions, Object};
use dlkm_tests::corpus_dir;

/// Small objects of the corpus's feature set: jump tables, data relocations, function
/// pointers, weak symbols.
const NAMES: [&str; 4] = ["switch.o", "data.o", "funcptr.o", "weak.o"];

const BASE: u64 = 0x1000_0000;

fn objects() -> Vec<PathBuf> {
    let mut objects = Vec::new();
    for arch in ["x86_64", "aarch64", "mips", "mipsel"] {
        let Ok(variants) = std::fs::read_dir(corpus_dir().join(arch)) else {
            continue;
        };
        for variant in variants.flatten() {
            for name in NAMES {
                let path = variant.path().join(name);
                if path.is_file() {
                    objects.push(path);
                }
            }
        }
    }
    objects.sort();
    objects
}

/// Parses, lays out and links `bytes` with every undefined symbol at `externals + 16 i`.
fn link_with_externals(
    name: &str,
    bytes: &[u8],
    externals: impl Fn(u64) -> u64,
) -> Result<(), String> {
    let object = Object::parse(name, bytes).map_err(|e| e.to_string())?;
    let layout = layout(&object, &LayoutOptions::default()).map_err(|e| e.to_string())?;
    let start = externals(layout.image_size);
    let mut next = 0u64;
    let mut resolver = |_: &str| {
        next += 1;
        Some(ExternalSymbol {
            address: start + 16 * next,
            size: 16,
            kind: ExternalKind::Unknown,
        })
    };
    let (image, output) = link(&object, &layout, BASE, &mut resolver).map_err(|e| e.to_string())?;
    assert_eq!(image.len() as u64, layout.image_size, "{name}");
    for &ctor in output.init_array.iter().chain(&output.fini_array) {
        assert!(
            (BASE..BASE + layout.image_size).contains(&ctor),
            "{name}: constructor {ctor:#x} outside the image"
        );
    }
    Ok(())
}

#[test]
fn small_corpus_objects_link_near_and_far() {
    let objects = objects();
    assert!(objects.len() >= 12, "too few objects: {objects:?}");
    let mut failures = Vec::new();
    for path in &objects {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Near: just after the image, in reach of every reference (and in the module's MIPS
        // 256 MiB region).
        let near = |size: u64| (BASE + size).next_multiple_of(0x1_0000) + 0x1_0000;
        if let Err(e) = link_with_externals(&name, &bytes, near) {
            failures.push(format!("{name} (near): {e}"));
        }
        // Far: out of a direct call's reach (64-bit: far above 4 GiB; MIPS: another region).
        // Either result is an answer; a panic is not.
        let far = |_: u64| {
            if name.contains("/mips") {
                0x7100_0000
            } else {
                0x7f12_3456_0000
            }
        };
        let _ = link_with_externals(&name, &bytes, far);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} objects linked near and far", objects.len());
}
