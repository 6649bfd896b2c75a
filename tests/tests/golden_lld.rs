//! Every corpus object, linked by dlkm and by ld.lld at the same addresses, gives the same bytes
//! in every compared section. GOT-dependent fields are left out of the byte comparison (the two
//! linkers lay out their GOTs independently); instead each x86_64 GOT reference must reach the
//! same target in both, through the GOT or relaxed. `.eh_frame` and notes are left out because
//! ld.lld rewrites them (merging CIEs, synthesising notes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dlkm_linker::{
    layout, link, Expr, ExternalKind, ExternalSymbol, LayoutOptions, Object, SymbolDef,
};
use dlkm_tests::{corpus_dir, lld};

/// GOT references whose targets were compared, so the check is known to have run.
static GOT_SITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Where the images go: 256 MiB aligned, so MIPS `jal` reaches the whole region.
const BASE: u64 = 0x1000_0000;
/// Undefined symbols are placed here, in reach of every kind of reference.
const EXTERNALS: u64 = BASE + 0x0400_0000;

fn objects(arch: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(variants) = std::fs::read_dir(corpus_dir().join(arch)) else {
        return found;
    };
    for variant in variants.flatten().filter(|e| e.path().is_dir()) {
        for entry in std::fs::read_dir(variant.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "o") {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Symbols a static linker defines itself; ld.lld gives them its own values.
fn linker_defined(name: &str) -> bool {
    matches!(
        name,
        "_GLOBAL_OFFSET_TABLE_" | "__dso_handle" | "_gp" | "_gp_disp"
    )
}

fn compared(object: &Object, index: usize) -> bool {
    let section = &object.sections[index];
    section.name != ".eh_frame"
        && !section.name.starts_with(".note")
        && section.kind != Some(dlkm_linker::SectionKind::ZeroFill)
}

/// Compares one object; `Ok(false)` when the object cannot be expressed as a linker script.
fn compare(path: &Path, work: &Path) -> Result<bool, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let name = path.display().to_string();
    let object = Object::parse(&name, &bytes).map_err(|e| e.to_string())?;
    let layout = layout(&object, &LayoutOptions::default()).map_err(|e| e.to_string())?;

    let defsyms: BTreeMap<String, u64> = object
        .symbols
        .iter()
        .filter(|s| s.def == SymbolDef::Undefined && !s.name.is_empty())
        .filter(|s| !linker_defined(s.name))
        .enumerate()
        .map(|(i, s)| (s.name.to_string(), EXTERNALS + 16 * i as u64))
        .collect();
    let mut resolver = |symbol: &str| {
        defsyms.get(symbol).map(|&address| ExternalSymbol {
            address,
            size: 0,
            kind: ExternalKind::Unknown,
        })
    };
    let (image, _) = link(&object, &layout, BASE, &mut resolver).map_err(|e| e.to_string())?;

    let file_name = path.file_name().unwrap().to_string_lossy();
    let Some(script) = lld::script(&object, &layout, BASE, &file_name) else {
        return Ok(false);
    };
    let lld_output = lld::link(object.arch, &bytes, &file_name, &script, &defsyms, work)?;
    let theirs = &lld_output.sections;

    let mut problems = Vec::new();
    for (index, offset) in layout.section_offsets.iter().enumerate() {
        let Some(offset) = *offset else { continue };
        if !compared(&object, index) {
            continue;
        }
        let section = &object.sections[index];
        let Some((address, lld_bytes)) = theirs.get(&index) else {
            problems.push(format!("{}: not in ld.lld's output", section.name));
            continue;
        };
        if *address != BASE + offset {
            problems.push(format!(
                "{}: ld.lld put it at {address:#x}, dlkm at {:#x}",
                section.name,
                BASE + offset
            ));
            continue;
        }
        let ours = &image[offset as usize..(offset + section.size) as usize];
        let masked = lld::got_dependent_ranges(&object, index);
        let differs = ours
            .iter()
            .zip(lld_bytes.iter())
            .enumerate()
            .find(|(at, (a, b))| a != b && !masked.iter().any(|r| r.contains(at)));
        if let Some((at, (a, b))) = differs {
            let reloc = section
                .relocs
                .iter()
                .find(|r| (r.offset as usize..r.offset as usize + 8).contains(&at))
                .map(|r| {
                    format!(
                        " (relocation {} against {})",
                        object.arch.reloc_name(r.r_type),
                        object.symbol_display_name(r.symbol)
                    )
                })
                .unwrap_or_default();
            problems.push(format!(
                "{}+{at:#x}: dlkm {a:#04x}, ld.lld {b:#04x}{reloc}",
                section.name
            ));
        }
        if object.arch == dlkm_linker::ArchKind::X86_64 {
            let our_got = Some((
                BASE + layout.got.offset,
                &image[layout.got.offset as usize..(layout.got.offset + layout.got.size) as usize],
            ));
            let lld_got = lld_output.got.as_ref().map(|(a, b)| (*a, b.as_slice()));
            for reloc in &section.relocs {
                let kind = object.arch.reloc_kind(reloc.r_type);
                if !kind.is_some_and(|k| k.expr == Expr::GotSlotPc && k.field.width() == 4) {
                    continue;
                }
                let at = reloc.offset as usize;
                GOT_SITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mine = lld::x86_64_got_target(ours, BASE + offset, at, reloc.addend, our_got);
                let lld = lld::x86_64_got_target(lld_bytes, *address, at, reloc.addend, lld_got);
                if mine != lld || mine.is_none() {
                    problems.push(format!(
                        "{}+{at:#x}: GOT reference to {} reaches {mine:#x?}, ld.lld's {lld:#x?}",
                        section.name,
                        object.symbol_display_name(reloc.symbol)
                    ));
                }
            }
        }
        if ours.len() != lld_bytes.len() {
            problems.push(format!(
                "{}: {} bytes, ld.lld {}",
                section.name,
                ours.len(),
                lld_bytes.len()
            ));
        }
    }
    if problems.is_empty() {
        Ok(true)
    } else {
        Err(problems.join("\n  "))
    }
}

fn compare_arch(arch: &str) {
    assert!(
        lld::available(),
        "ld.lld is needed for this test (scripts/test.sh installs lld)"
    );
    let objects = objects(arch);
    assert!(!objects.is_empty(), "no {arch} corpus objects");
    let work = std::env::temp_dir().join(format!("dlkm-lld-{arch}-{}", std::process::id()));
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in &objects {
        match compare(path, &work) {
            Ok(true) => compared += 1,
            Ok(false) => eprintln!("skipped {}: sections share a name", path.display()),
            Err(e) => failures.push(format!("{}:\n  {e}", path.display())),
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{arch}: {compared} of {} objects byte-identical to ld.lld",
        objects.len()
    );
    assert!(compared * 10 >= objects.len() * 9, "too many skipped");
}

#[test]
fn x86_64_corpus_links_like_lld() {
    compare_arch("x86_64");
    let sites = GOT_SITES.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("x86_64: {sites} GOT references reach the same targets");
    assert!(sites >= 50, "only {sites} GOT references compared");
}
