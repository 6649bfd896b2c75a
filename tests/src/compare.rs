//! One object, linked by `msyms link` and by ld.lld at the same addresses: the bytes of every
//! compared section must be the same. Fields that depend on where each linker put its own GOT
//! or global pointer are left out of the byte comparison; instead the reference must reach the
//! same target in both (through the GOT slot, or relaxed to the target itself).
//!
//! `.eh_frame` and notes are not compared: ld.lld rewrites them (merging CIEs, synthesising
//! notes). Zero-fill sections have no bytes.

use std::collections::BTreeMap;
use std::path::Path;

use dlkm_linker::{layout, ArchKind, Expr, LayoutOptions, Object, SectionKind, SymbolDef};

use crate::lld;

/// Where images go: 256 MiB aligned, so a MIPS `jal` reaches the whole region.
pub const BASE: u64 = 0x1000_0000;
/// Undefined symbols are placed from here, in reach of every kind of reference.
pub const EXTERNALS: u64 = BASE + 0x0400_0000;

/// What a comparison established.
#[derive(Debug, Default, Clone, Copy)]
pub struct Agreement {
    /// Sections whose bytes were compared.
    pub sections: usize,
    /// GOT or GP-relative references found to reach the same target in both.
    pub indirect: usize,
}

/// Symbols a static linker defines itself; the two linkers give them their own values.
pub fn linker_defined(name: &str) -> bool {
    matches!(
        name,
        "_GLOBAL_OFFSET_TABLE_" | "__dso_handle" | "_gp" | "_gp_disp"
    )
}

/// Compares `path`; `Ok(None)` when the object cannot be expressed as a linker script (two
/// loaded sections share a name). `work` is a scratch directory.
/// An address for each undefined symbol of `object` (but those the linker defines), 16 bytes
/// apart from [`EXTERNALS`]: what both linkers are given with `--defsym`.
pub fn external_addresses(object: &Object) -> BTreeMap<String, u64> {
    object
        .symbols
        .iter()
        .filter(|s| s.def == SymbolDef::Undefined && !s.name.is_empty())
        .filter(|s| !linker_defined(s.name))
        .enumerate()
        .map(|(i, s)| (s.name.to_string(), EXTERNALS + 16 * i as u64))
        .collect()
}

pub fn compare_object(path: &Path, work: &Path) -> Result<Option<Agreement>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.display().to_string();
    let object = Object::parse(&name, &bytes).map_err(|e| e.to_string())?;
    let options = LayoutOptions {
        page_size: msyms::link::LINK_PAGE_SIZE,
        ..LayoutOptions::default()
    };
    let layout = layout(&object, &options).map_err(|e| e.to_string())?;
    let defsyms = external_addresses(&object);

    let file_name = path
        .file_name()
        .ok_or("no file name")?
        .to_string_lossy()
        .into_owned();
    let Some(script) = lld::script(&object, &layout, BASE, &file_name) else {
        return Ok(None);
    };
    let image = link_with_msyms(path, &object, &layout, &defsyms, work)?;
    let theirs = lld::link(object.arch, &bytes, &file_name, &script, &defsyms, work)?;

    let ours = Linked {
        image: &image,
        got: (
            BASE + layout.got.offset,
            &image[layout.got.offset as usize..(layout.got.offset + layout.got.size) as usize],
        ),
        gp: object.arch.global_pointer(&layout, BASE),
    };
    let mut problems = Vec::new();
    let mut agreement = Agreement::default();
    for (index, offset) in layout.section_offsets.iter().enumerate() {
        let Some(offset) = *offset else { continue };
        if !compared(&object, index) {
            continue;
        }
        let section = &object.sections[index];
        let Some((address, lld_bytes)) = theirs.sections.get(&index) else {
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
        let mine = &image[offset as usize..(offset + section.size) as usize];
        if mine.len() != lld_bytes.len() {
            problems.push(format!(
                "{}: {} bytes, ld.lld {}",
                section.name,
                mine.len(),
                lld_bytes.len()
            ));
            continue;
        }
        agreement.sections += 1;
        if let Some(problem) = first_difference(&object, index, mine, lld_bytes) {
            problems.push(problem);
        }
        let lld_linked = Linked {
            image: lld_bytes,
            got: theirs
                .got
                .as_ref()
                .map_or((0, &[][..]), |(a, b)| (*a, b.as_slice())),
            gp: theirs.gp.unwrap_or(0),
        };
        let our_view = Linked {
            image: mine,
            ..ours
        };
        let targets = indirect_targets(&object, index, BASE + offset, &our_view);
        let lld_targets = indirect_targets(&object, index, BASE + offset, &lld_linked);
        for (site, target) in &targets {
            let theirs = lld_targets.get(site).copied().flatten();
            if *target != theirs || target.is_none() {
                problems.push(format!(
                    "{}+{:#x}: reference to {} reaches {target:#x?}, ld.lld's {theirs:#x?}",
                    section.name,
                    site.0,
                    object.symbol_display_name(site.1)
                ));
            } else {
                agreement.indirect += 1;
            }
        }
    }
    if problems.is_empty() {
        Ok(Some(agreement))
    } else {
        Err(problems.join("\n  "))
    }
}

/// Runs `msyms link` (the library entry the command line calls) and returns the image, after
/// checking that its map puts each section where `layout` does.
fn link_with_msyms(
    path: &Path,
    object: &Object,
    layout: &dlkm_linker::Layout,
    defsyms: &BTreeMap<String, u64>,
    work: &Path,
) -> Result<Vec<u8>, String> {
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let request = msyms::LinkRequest {
        object: path.to_path_buf(),
        arch: None,
        base: BASE,
        defsyms: defsyms.iter().map(|(n, a)| (n.clone(), *a)).collect(),
        map: work.join("msyms.map"),
        image: work.join("msyms.img"),
    };
    msyms::link_object(&request).map_err(|e| format!("msyms link: {e}"))?;
    let map = std::fs::read_to_string(&request.map).map_err(|e| e.to_string())?;
    let image = std::fs::read(&request.image).map_err(|e| e.to_string())?;
    for (index, offset) in layout.section_offsets.iter().enumerate() {
        let Some(offset) = offset else { continue };
        let section = &object.sections[index];
        let line = format!("{} {:#x} {:#x}", section.name, BASE + offset, section.size);
        if !map.lines().any(|l| l == line) {
            return Err(format!("msyms link's map has no line `{line}`"));
        }
    }
    Ok(image)
}

fn compared(object: &Object, index: usize) -> bool {
    let section = &object.sections[index];
    section.name != ".eh_frame"
        && !section.name.starts_with(".note")
        && section.kind != Some(SectionKind::ZeroFill)
}

/// The first byte that differs outside the fields each linker may fill its own way.
fn first_difference(object: &Object, index: usize, ours: &[u8], theirs: &[u8]) -> Option<String> {
    let masked = linker_dependent_ranges(object, index);
    let (at, (a, b)) = ours
        .iter()
        .zip(theirs)
        .enumerate()
        .find(|(at, (a, b))| a != b && !masked.iter().any(|r| r.contains(at)))?;
    let section = &object.sections[index];
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
    Some(format!(
        "{}+{at:#x}: dlkm {a:#04x}, ld.lld {b:#04x}{reloc}",
        section.name
    ))
}

/// Byte ranges of a section that depend on where each linker put its GOT or global pointer:
/// the fields of GOT- and GP-relative relocations and of those against linker-defined symbols
/// (and, for relaxable ones, the opcode bytes before them that a relaxation rewrites).
pub fn linker_dependent_ranges(object: &Object, section: usize) -> Vec<std::ops::Range<usize>> {
    object.sections[section]
        .relocs
        .iter()
        .filter_map(|reloc| {
            let kind = object.arch.reloc_kind(reloc.r_type)?;
            let symbol = object.symbols.get(reloc.symbol as usize)?;
            let dependent = depends_on_linker(kind.expr)
                || (symbol.def == SymbolDef::Undefined && linker_defined(symbol.name));
            dependent.then(|| {
                let start = reloc.offset as usize;
                let before = if kind.relaxable { 2 } else { 0 };
                start.saturating_sub(before)..start + kind.field.width() + before
            })
        })
        .collect()
}

fn depends_on_linker(expr: Expr) -> bool {
    matches!(
        expr,
        Expr::GotSlotPc
            | Expr::GotSlotOffset
            | Expr::GotBasePc
            | Expr::GotOffset
            | Expr::GotSlot
            | Expr::GotSlotPagePc
            | Expr::GotSlotPageOffset
            | Expr::GpRel
    )
}

/// One linker's output, as the decoders need it.
#[derive(Clone, Copy)]
struct Linked<'a> {
    /// The section's bytes (or, for `ours` before narrowing, the whole image).
    image: &'a [u8],
    /// The GOT's address and bytes.
    got: (u64, &'a [u8]),
    gp: u64,
}

impl Linked<'_> {
    fn got_entry(&self, arch: ArchKind, address: u64) -> Option<u64> {
        let (start, bytes) = self.got;
        let at = usize::try_from(address.checked_sub(start)?).ok()?;
        Some(match arch.address_bits() {
            64 => u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?),
            _ => u64::from(read_u32(arch, bytes, at)?),
        })
    }
}

fn read_u32(arch: ArchKind, bytes: &[u8], at: usize) -> Option<u32> {
    let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(if arch.big_endian() {
        u32::from_be_bytes(word)
    } else {
        u32::from_le_bytes(word)
    })
}

/// The site of an indirect reference: (offset in the section, symbol index).
type Site = (u64, u32);

/// Where each GOT- or GP-relative reference of a section leads in one linker's output.
fn indirect_targets(
    object: &Object,
    index: usize,
    section_address: u64,
    linked: &Linked,
) -> BTreeMap<Site, Option<u64>> {
    match object.arch {
        ArchKind::X86_64 => x86_64_targets(object, index, section_address, linked),
        ArchKind::Aarch64 => aarch64_targets(object, index, section_address, linked),
        ArchKind::Mips { .. } => gp_targets(object, index, linked),
    }
}

fn x86_64_targets(
    object: &Object,
    index: usize,
    section_address: u64,
    linked: &Linked,
) -> BTreeMap<Site, Option<u64>> {
    let mut targets = BTreeMap::new();
    for reloc in &object.sections[index].relocs {
        let kind = object.arch.reloc_kind(reloc.r_type);
        if !kind.is_some_and(|k| k.expr == Expr::GotSlotPc && k.field.width() == 4) {
            continue;
        }
        let got = Some(linked.got);
        let target = lld::x86_64_got_target(
            linked.image,
            section_address,
            reloc.place() as usize,
            reloc.addend,
            got,
        );
        targets.insert((reloc.place(), reloc.symbol), target);
    }
    targets
}

/// aarch64 GOT references come in pairs (`adrp xN, :got:sym` then `ldr xN, [xN,
/// :got_lo12:sym]`): the page of the slot from every ADRP of a (symbol, addend), its low bits
/// from every LDR; all must agree, and the slot they name must hold the target.
fn aarch64_targets(
    object: &Object,
    index: usize,
    section_address: u64,
    linked: &Linked,
) -> BTreeMap<Site, Option<u64>> {
    let word = |offset: u64| read_u32(object.arch, linked.image, offset as usize);
    let mut pages: BTreeMap<(u32, i64), Vec<Option<u64>>> = BTreeMap::new();
    let mut targets = BTreeMap::new();
    // LDRs of pair-addressed slots: their site, key and slot offset within the page.
    let mut lows = Vec::new();
    for reloc in &object.sections[index].relocs {
        let Some(kind) = object.arch.reloc_kind(reloc.r_type) else {
            continue;
        };
        let key = (reloc.symbol, reloc.addend);
        let offset = reloc.place();
        let site = (offset, reloc.symbol);
        let place = section_address + offset;
        match kind.expr {
            Expr::GotSlotPagePc => pages
                .entry(key)
                .or_default()
                .push(word(offset).map(|w| adrp_target(w, place))),
            Expr::GotSlot => lows.push((site, key, word(offset).map(ldr64_offset))),
            Expr::GotSlotPageOffset => {
                // `ldr xN, [xN, #:gotpage_lo15:sym]` after `adrp xN, _GLOBAL_OFFSET_TABLE_`.
                let slot = word(offset).map(|w| (linked.got.0 & !0xfff) + ldr64_offset(w));
                let target = slot.and_then(|s| linked.got_entry(object.arch, s));
                targets.insert(site, target);
            }
            _ => {}
        }
    }
    for (site, key, low) in lows {
        let page = pages.get(&key).and_then(|p| {
            let first = *p.first()?;
            p.iter().all(|&q| q == first).then_some(first).flatten()
        });
        let slot = page.zip(low).map(|(page, low)| page + (low & 0xfff));
        targets.insert(site, slot.and_then(|s| linked.got_entry(object.arch, s)));
    }
    targets
}

/// `adrp`: the page it computes at `place`.
fn adrp_target(word: u32, place: u64) -> u64 {
    let imm = (((word >> 5) & 0x7ffff) << 2 | (word >> 29) & 0x3) as u64;
    let offset = ((imm << 43) as i64 >> 43) << 12;
    (place & !0xfff).wrapping_add(offset as u64)
}

/// `ldr xN, [xM, #imm]`: the byte offset (imm12 scaled by 8).
fn ldr64_offset(word: u32) -> u64 {
    u64::from((word >> 10) & 0xfff) * 8
}

/// MIPS GP-relative references: the field plus each linker's own `_gp` must name the same
/// address.
fn gp_targets(object: &Object, index: usize, linked: &Linked) -> BTreeMap<Site, Option<u64>> {
    let mut targets = BTreeMap::new();
    for reloc in &object.sections[index].relocs {
        let Some(kind) = object.arch.reloc_kind(reloc.r_type) else {
            continue;
        };
        if kind.expr != Expr::GpRel {
            continue;
        }
        let word = read_u32(object.arch, linked.image, reloc.place() as usize);
        let offset = word.map(|w| match kind.field.width() {
            4 if matches!(kind.field, dlkm_linker::Field::Data32) => w as i32 as i64,
            _ => w as u16 as i16 as i64,
        });
        let target = offset.map(|o| (linked.gp as i64).wrapping_add(o) as u64 & 0xffff_ffff);
        targets.insert((reloc.place(), reloc.symbol), target);
    }
    targets
}
