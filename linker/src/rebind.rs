//! Re-binding a linked image to imports that moved: the image stays at its base (mapped from a
//! cache, say), and only the bytes that hold where an import is are written again. Link
//! records those places as [`ImportSite`]s; [`rebind`] recomputes them with the same encoders.

use crate::arch::{page, Arch, ArchKind, Classifier, Expr, Field, RelocKind};
use crate::error::{LinkError, RelocSite};
use crate::input::Object;
use crate::layout::Layout;
use crate::link::{check_value, encode, got_field, ExternalSymbol, Import};
use crate::with_arch;

/// A place in a linked image whose bytes depend on where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSite {
    /// Index into `LinkOutput::imports`.
    pub import: u32,
    /// Image offset of the bytes written (a stub's start, a GOT slot, a relocation's field).
    pub offset: u64,
    /// Added to the import's address S. For a stub or GOT slot, what the arch's slots include
    /// of the addend. For a relocation, its addend with what of its formula does not move
    /// folded in, so that the value is S + addend, S + addend - P (PC-relative and relaxed
    /// kinds; a relaxed instruction's bias is in the addend), Page(S + addend) - Page(P), or,
    /// for S + A - GOT and S + A - GP, S + addend - base (the GOT's or GP's offset from the
    /// base is in the addend).
    pub addend: i64,
    pub form: SiteForm,
}

/// What kind of bytes an [`ImportSite`] holds, and so how they are recomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteForm {
    /// A stub's code reaching the import (written by `Arch::write_stub`).
    Stub,
    /// A GOT slot holding the import's address (+ addend where the arch's slots include it).
    GotSlot,
    /// A relocation of ELF type `r_type` applied directly (not through a stub); `place` is
    /// the image offset of its P, which differs from `offset` where an instruction was relaxed.
    Reloc { r_type: u32, place: u64 },
}

/// The value of a relocation applied directly to an import at S, from the addend its site
/// records; `None` for kinds whose value does not follow S (GOT slots not relaxed, sizes).
/// Link records the addend so that this gives the value it encoded (the corpus tests and the
/// fuzz targets compare a rebound image with a fresh link).
pub(crate) fn site_value(
    kind: &RelocKind,
    s: i128,
    addend: i128,
    p: i128,
    base: i128,
) -> Option<i128> {
    Some(match kind.expr {
        Expr::Abs => s + addend,
        Expr::Pc => s + addend - p,
        Expr::PagePc => page(s + addend) - page(p),
        // The GOT and GP are at fixed offsets from the base, folded into the addend.
        Expr::GotOffset | Expr::GpRel => s + addend - base,
        // A GOT reference rewritten to address the import itself, PC-relative.
        expr if expr.uses_got_slot() && kind.relaxable => s + addend - p,
        _ => return None,
    })
}

/// Rewrites the import sites of an image linked at `base` so that import `old[i]` is now
/// bound to `new[i]`: for an object [`rebindable`] accepts, the bytes a fresh link at `base`
/// would write, as long as each import stays in the reach class it was linked for (a call
/// that went through a stub still cannot reach the import directly, a direct reference still
/// can, a relaxed GOT reference still fits). A copy (`Layout::copies`) is an import like any other: its `new` entry is the copy's
/// own address, as before.
///
/// Refuses, with [`LinkError::Rebind`] naming the import, when `new` and `old` differ in
/// length, an import appears or disappears, changes kind or size, or a recomputed value does
/// not fit its field (the import moved out of reach: link afresh), and when a site is not one
/// link records (outside the image, an unknown relocation type or import). Everything is
/// checked before the first byte is written, so on error the image is unchanged.
pub fn rebind(
    arch: ArchKind,
    image: &mut [u8],
    base: u64,
    sites: &[ImportSite],
    old: &[Import],
    new: &[Option<ExternalSymbol>],
) -> Result<(), LinkError> {
    with_arch!(arch, A => rebind_for::<A>(image, base, sites, old, new))
}

/// Whether `object`, laid out as `layout`, links to an image that [`rebind`] can follow: no
/// two relocations of a loaded section touch the same bytes (a field, or the opcode before it
/// that an x86_64 GOT relaxation reads and rewrites). Where two do, the later one's bytes
/// replace the earlier one's, and rewriting an import site alone would undo them. Compilers
/// write no such tables; a caller keeping an image to rebind later asks this once, when it
/// keeps it, so that links that are not kept pay nothing for it.
pub fn rebindable(object: &Object, layout: &Layout) -> bool {
    with_arch!(object.arch, A => rebindable_for::<A>(object, layout))
}

fn rebindable_for<A: Arch>(object: &Object, layout: &Layout) -> bool {
    let mut classifier = Classifier::<A>::new();
    let mut touched: Vec<(u64, u64)> = Vec::new();
    let loaded = object.sections.iter().zip(&layout.section_offsets);
    for (section, _) in loaded.filter(|(_, offset)| offset.is_some()) {
        touched.clear();
        let mut in_order = true;
        let mut slices = section.relocs.slices();
        while let Some(relocs) = slices.next() {
            for reloc in relocs {
                let Ok(kind) = classifier.classify(reloc.r_type) else {
                    return false;
                };
                if kind.expr == Expr::None {
                    continue;
                }
                let lookbehind = if kind.relaxable {
                    A::RELAX_LOOKBEHIND
                } else {
                    0
                };
                let start = reloc.place().saturating_sub(lookbehind);
                let end = reloc.place().saturating_add(kind.field.width() as u64);
                in_order &= touched.last().is_none_or(|&(last, _)| last <= start);
                touched.push((start, end));
            }
        }
        // Assemblers write most tables in order of place, and then there is nothing to sort.
        if !in_order {
            touched.sort_unstable();
        }
        if touched.windows(2).any(|pair| pair[1].0 < pair[0].1) {
            return false;
        }
    }
    true
}

/// One write [`rebind`] has checked: `at..end` lies in the image.
enum Write {
    Stub {
        at: usize,
        end: usize,
        address: u64,
        target: u64,
    },
    Field {
        at: usize,
        field: Field,
        value: i128,
    },
}

fn rebind_for<A: Arch>(
    image: &mut [u8],
    base: u64,
    sites: &[ImportSite],
    old: &[Import],
    new: &[Option<ExternalSymbol>],
) -> Result<(), LinkError> {
    if old.len() != new.len() {
        return Err(refuse(
            "",
            format!(
                "the image has {} imports, {} addresses were given",
                old.len(),
                new.len()
            ),
        ));
    }
    for (import, now) in old.iter().zip(new) {
        same_binding(import, now.as_ref())?;
    }
    let mut writes = Vec::with_capacity(sites.len());
    for site in sites {
        writes.push(plan::<A>(image.len(), base, site, old, new)?);
    }
    for write in writes {
        match write {
            Write::Stub {
                at,
                end,
                address,
                target,
            } => A::write_stub(&mut image[at..end], address, target),
            Write::Field { at, field, value } => encode::<A>(field, &mut image[at..], value),
        }
    }
    Ok(())
}

/// An import must keep its presence, kind and size: they decided how it was linked (a stub
/// for a function's address, a weak reference left at 0, a `@SIZE` value).
fn same_binding(import: &Import, now: Option<&ExternalSymbol>) -> Result<(), LinkError> {
    let name = &import.name;
    match (&import.symbol, now) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(refuse(name, "it is no longer found")),
        (None, Some(_)) => Err(refuse(
            name,
            "it was linked as an undefined weak symbol (address 0) and is now found",
        )),
        (Some(was), Some(now)) if was.kind != now.kind => Err(refuse(
            name,
            format!("it was linked as {:?} and is now {:?}", was.kind, now.kind),
        )),
        (Some(was), Some(now)) if was.size != now.size => Err(refuse(
            name,
            format!("its size was {:#x} and is now {:#x}", was.size, now.size),
        )),
        _ => Ok(()),
    }
}

/// Checks one site against the image and the new address, and what to write there.
fn plan<A: Arch>(
    image_len: usize,
    base: u64,
    site: &ImportSite,
    old: &[Import],
    new: &[Option<ExternalSymbol>],
) -> Result<Write, LinkError> {
    let index = site.import as usize;
    let Some(import) = old.get(index) else {
        return Err(refuse(
            "",
            format!(
                "a site at image offset {:#x} names import {index} of {}",
                site.offset,
                old.len()
            ),
        ));
    };
    let name = import.name.as_str();
    let Some(symbol) = new[index] else {
        return Err(refuse(
            name,
            format!(
                "a site at image offset {:#x} needs it, and it is not bound",
                site.offset
            ),
        ));
    };
    let target = symbol.address.wrapping_add(site.addend as u64);
    // A relocation's kind, classified once, with its type and place.
    let reloc = match site.form {
        SiteForm::Reloc { r_type, place } => {
            Some((reloc_kind::<A>(site, name, r_type)?, r_type, place))
        }
        SiteForm::Stub | SiteForm::GotSlot => None,
    };
    let width = match (site.form, reloc) {
        (_, Some((kind, ..))) => kind.field.width() as u64,
        (SiteForm::Stub, None) => A::STUB_SIZE,
        (_, None) => A::GOT_ENTRY_SIZE,
    };
    let (at, end) = site
        .offset
        .checked_add(width)
        .filter(|&end| end <= image_len as u64)
        .map(|end| (site.offset as usize, end as usize))
        .ok_or_else(|| {
            refuse(
                name,
                format!(
                    "the {width}-byte site at image offset {:#x} lies outside the image \
                     ({image_len:#x} bytes)",
                    site.offset
                ),
            )
        })?;
    let address_of = |offset: u64| {
        base.checked_add(offset).ok_or_else(|| {
            refuse(
                name,
                format!("image offset {offset:#x} at base {base:#x} is past the address space"),
            )
        })
    };
    Ok(match (site.form, reloc) {
        (SiteForm::Stub, _) => Write::Stub {
            at,
            end,
            address: address_of(site.offset)?,
            target,
        },
        (_, None) => Write::Field {
            at,
            field: got_field::<A>(),
            value: target.into(),
        },
        (_, Some((kind, r_type, place))) => {
            let p = address_of(place)?;
            let value = site_value(
                kind,
                symbol.address.into(),
                site.addend.into(),
                p.into(),
                base.into(),
            )
            .ok_or_else(|| {
                refuse(
                    name,
                    format!(
                        "the {} at image offset {:#x} does not depend on an import's address",
                        A::KIND.reloc_name(r_type),
                        site.offset
                    ),
                )
            })?;
            check_value(
                kind,
                value,
                p,
                || image_site::<A>(site, name, r_type),
                || None,
            )
            .map_err(|error| out_of_reach::<A>(error, site, name, r_type))?;
            Write::Field {
                at,
                field: kind.field,
                value,
            }
        }
    })
}

fn reloc_kind<A: Arch>(
    site: &ImportSite,
    name: &str,
    r_type: u32,
) -> Result<&'static RelocKind, LinkError> {
    A::classify(r_type).map_err(|_| {
        refuse(
            name,
            format!(
                "the site at image offset {:#x} has relocation type {r_type}, which dlkm does \
                 not apply",
                site.offset
            ),
        )
    })
}

/// The site of a relocation in the image, for `check_value`.
fn image_site<A: Arch>(site: &ImportSite, name: &str, r_type: u32) -> Box<RelocSite> {
    Box::new(RelocSite {
        object: "the image".into(),
        section: "image".into(),
        offset: site.offset,
        symbol: name.into(),
        reloc: A::KIND.reloc_name(r_type),
    })
}

/// `check_value`'s refusal, said as a rebind's.
fn out_of_reach<A: Arch>(
    error: LinkError,
    site: &ImportSite,
    name: &str,
    r_type: u32,
) -> LinkError {
    let reloc = A::KIND.reloc_name(r_type);
    let why = match error {
        LinkError::OutOfRange {
            value, min, max, ..
        } => format!("{value:#x} is out of range [{min:#x}, {max:#x}]"),
        LinkError::Misaligned { value, align, .. } => {
            format!("{value:#x} is not a multiple of {align}")
        }
        other => other.to_string(),
    };
    refuse(
        name,
        format!(
            "the {reloc} at image offset {:#x} would now be {why}: the import moved out of what \
             the image was linked for; link afresh",
            site.offset
        ),
    )
}

fn refuse(import: &str, detail: impl std::fmt::Display) -> LinkError {
    LinkError::Rebind {
        import: import.to_string(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use object::write::{self, Relocation, StandardSection, Symbol as WriteSymbol, SymbolSection};
    use object::{elf, Architecture, BinaryFormat, Endianness, RelocationFlags};
    use object::{SymbolFlags, SymbolKind, SymbolScope};

    use super::*;
    use crate::test_support::corpus;
    use crate::{
        layout, link, CopyRequest, ExternalKind, Layout, LayoutOptions, LinkOutput, Object,
        StubUse, SymbolDef,
    };

    const BASE: u64 = 0x1000_0000;
    /// How far imports move between the two links: multiples of 16 (aarch64's 16-byte loads
    /// stay aligned) and not of a page, so ADRP pages, MIPS `%hi` carries and low bits change.
    const NEAR_SHIFT: u64 = 0x1_2340;
    const FAR_SHIFT: u64 = 0x0123_8ff0;

    /// Where the test kernel puts the functions a module calls.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Functions {
        /// Right after the image with the data: every reference direct.
        Near,
        /// Out of every branch's reach, so calls and function addresses go through stubs or
        /// the GOT, yet in reach of ADRP and 32-bit data (and on MIPS in another `jal`
        /// region, below 4 GiB).
        Far,
    }

    fn far_functions(arch: ArchKind) -> u64 {
        match arch {
            ArchKind::X86_64 => 0x2_0000_0000,
            ArchKind::Aarch64 => 0x4000_0000,
            ArchKind::Mips { .. } => 0x2000_0000,
        }
    }

    /// Addresses for the undefined symbols of one object, as the benchmarks make them: a
    /// symbol some relocation branches to is a function, any other data, each 16 bytes apart
    /// and 16 bytes long. Undefined weak symbols are left unresolved.
    fn kernel(
        object: &Object,
        layout: &Layout,
        functions: Functions,
        moved: bool,
    ) -> HashMap<String, ExternalSymbol> {
        let mut branched = vec![false; object.symbols.len()];
        for reloc in object.sections.iter().flat_map(|s| &s.relocs) {
            let kind = object.arch.reloc_kind(reloc.r_type);
            if kind.is_some_and(|k| k.stub == StubUse::Branch) {
                branched[reloc.symbol as usize] = true;
            }
        }
        let near = (BASE + layout.mapped_size()).next_multiple_of(0x1_0000);
        let far = BASE + far_functions(object.arch);
        let (near_shift, far_shift) = if moved {
            (NEAR_SHIFT, FAR_SHIFT)
        } else {
            (0, 0)
        };
        let undefined = object
            .symbols
            .iter()
            .enumerate()
            .filter(|(_, s)| s.def == SymbolDef::Undefined && !s.name.is_empty() && !s.weak);
        undefined
            .enumerate()
            .map(|(n, (index, symbol))| {
                let function = branched[index];
                let at = if function && functions == Functions::Far {
                    far + far_shift
                } else {
                    near + near_shift
                };
                let kind = if function {
                    ExternalKind::Function
                } else {
                    ExternalKind::Data
                };
                let external = ExternalSymbol {
                    address: at + 16 * n as u64,
                    size: 16,
                    kind,
                };
                (symbol.name.to_string(), external)
            })
            .collect()
    }

    /// The kinds of sites seen, to show what a run covered.
    #[derive(Debug, Default)]
    struct Seen {
        stubs: usize,
        got_slots: usize,
        direct: usize,
        relaxed: usize,
        r_types: std::collections::BTreeSet<u32>,
    }

    impl Seen {
        fn add(&mut self, arch: ArchKind, sites: &[ImportSite]) {
            for site in sites {
                match site.form {
                    SiteForm::Stub => self.stubs += 1,
                    SiteForm::GotSlot => self.got_slots += 1,
                    SiteForm::Reloc { r_type, .. } => {
                        if arch.reloc_kind(r_type).unwrap().expr.uses_got_slot() {
                            self.relaxed += 1;
                        } else {
                            self.direct += 1;
                        }
                        self.r_types.insert(r_type);
                    }
                }
            }
        }
    }

    /// Links `object` with `before` and with `after`, rebinds the first image to `after`'s
    /// imports and checks that it is the second, byte for byte; then that rebinding it to the
    /// same imports changes nothing, and back to `before`'s gives the first again. Returns the
    /// first link's output.
    fn rebinds_like_a_fresh_link(
        name: &str,
        object: &Object,
        layout: &Layout,
        before: &HashMap<String, ExternalSymbol>,
        after: &HashMap<String, ExternalSymbol>,
    ) -> LinkOutput {
        let (mut image, output) = link(object, layout, BASE, &mut |n: &str| before.get(n).copied())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (fresh, moved) = link(object, layout, BASE, &mut |n: &str| after.get(n).copied())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The same reach classes, so the same sites.
        assert_eq!(output.stubs_used, moved.stubs_used, "{name}");
        assert_eq!(output.got_relaxed, moved.got_relaxed, "{name}");
        assert_eq!(output.import_sites, moved.import_sites, "{name}");
        let names = |o: &LinkOutput| o.imports.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&output), names(&moved), "{name}");
        if output.imports.iter().any(|i| i.symbol.is_some()) {
            assert!(!output.import_sites.is_empty(), "{name}: no import sites");
            assert_ne!(image, fresh, "{name}: moving the imports changed nothing");
        }

        let new: Vec<_> = moved.imports.iter().map(|i| i.symbol).collect();
        let first = image.clone();
        rebind(
            object.arch,
            &mut image,
            BASE,
            &output.import_sites,
            &output.imports,
            &new,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same(name, &image, &fresh);

        let mut again = image.clone();
        let old = &moved.imports;
        rebind(
            object.arch,
            &mut again,
            BASE,
            &moved.import_sites,
            old,
            &new,
        )
        .unwrap();
        assert_same(name, &again, &fresh);
        let mut back = image;
        let before: Vec<_> = output.imports.iter().map(|i| i.symbol).collect();
        let sites = &moved.import_sites;
        rebind(object.arch, &mut back, BASE, sites, old, &before).unwrap();
        assert_same(name, &back, &first);
        output
    }

    fn assert_same(name: &str, got: &[u8], want: &[u8]) {
        assert_eq!(got.len(), want.len(), "{name}");
        if let Some(at) = (0..got.len()).find(|&i| got[i] != want[i]) {
            let end = (at + 8).min(got.len());
            panic!(
                "{name}: image offset {at:#x} differs: {:02x?}, a fresh link wrote {:02x?}",
                &got[at..end],
                &want[at..end]
            );
        }
    }

    /// The top-level objects of every variant of `arch` in the corpus.
    fn corpus_objects(arch: &str) -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../corpus")
            .join(arch);
        let mut paths = Vec::new();
        for variant in std::fs::read_dir(&root).unwrap() {
            let variant = variant.unwrap().path();
            if !variant.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&variant).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_some_and(|e| e == "o") {
                    let relative = file.strip_prefix(root.parent().unwrap()).unwrap();
                    paths.push(relative.to_str().unwrap().to_string());
                }
            }
        }
        paths.sort();
        paths
    }

    /// Every corpus object of `arch`, its functions near and far: rebinding gives what a fresh
    /// link gives, and the runs cover every form of site the architecture has.
    /// As a fresh link for every corpus object of `arch`, with sites of at least the
    /// relocation types `r_types` among them.
    fn corpus_rebinds(arch: &str, r_types: &[u32]) -> Seen {
        let mut seen = Seen::default();
        let paths = corpus_objects(arch);
        assert!(paths.len() >= 40, "{arch}: {} objects", paths.len());
        for path in &paths {
            let bytes = corpus(path);
            let object = Object::parse(path, &bytes).unwrap();
            let layout = layout(&object, &LayoutOptions::default()).unwrap();
            assert!(rebindable(&object, &layout), "{path}: relocations overlap");
            for functions in [Functions::Near, Functions::Far] {
                let before = kernel(&object, &layout, functions, false);
                let after = kernel(&object, &layout, functions, true);
                let name = format!("{path} ({functions:?} functions)");
                let output = rebinds_like_a_fresh_link(&name, &object, &layout, &before, &after);
                seen.add(object.arch, &output.import_sites);
            }
        }
        assert!(seen.stubs > 0 && seen.direct > 0, "{arch}: {seen:?}");
        for r_type in r_types {
            assert!(seen.r_types.contains(r_type), "{r_type}: {seen:?}");
        }
        seen
    }

    /// The inputs a fuzzer found with relocations writing over each other: not rebindable (a
    /// rebind there gave other bytes than a fresh link).
    #[test]
    fn overlapping_relocations_are_not_rebindable() {
        for arch in ["x86_64", "aarch64", "mips"] {
            let path = format!("fuzz-regressions/link_{arch}-rebind-overlapping-relocations.o");
            let bytes = corpus(&path);
            let object = Object::parse(&path, &bytes).unwrap();
            let layout = layout(&object, &LayoutOptions::default()).unwrap();
            assert!(!rebindable(&object, &layout), "{path}");
        }
    }

    #[test]
    fn x86_64_corpus_rebinds_like_a_fresh_link() {
        let seen = corpus_rebinds(
            "x86_64",
            &[
                elf::R_X86_64_64,
                elf::R_X86_64_PC32,
                elf::R_X86_64_PLT32,
                elf::R_X86_64_32,
                elf::R_X86_64_PLTOFF64,
                elf::R_X86_64_REX_GOTPCRELX,
            ],
        );
        assert!(seen.relaxed > 0, "{seen:?}");
    }

    #[test]
    fn aarch64_corpus_rebinds_like_a_fresh_link() {
        let seen = corpus_rebinds(
            "aarch64",
            &[
                elf::R_AARCH64_CALL26,
                elf::R_AARCH64_JUMP26,
                elf::R_AARCH64_ADR_PREL_PG_HI21,
                elf::R_AARCH64_ADD_ABS_LO12_NC,
                elf::R_AARCH64_LDST64_ABS_LO12_NC,
                elf::R_AARCH64_ABS64,
            ],
        );
        assert!(seen.got_slots > 0, "{seen:?}");
    }

    #[test]
    fn mips_corpus_rebinds_like_a_fresh_link() {
        corpus_rebinds(
            "mips",
            &[
                elf::R_MIPS_26,
                elf::R_MIPS_HI16,
                elf::R_MIPS_LO16,
                elf::R_MIPS_32,
            ],
        );
    }

    #[test]
    fn mipsel_corpus_rebinds_like_a_fresh_link() {
        corpus_rebinds(
            "mipsel",
            &[elf::R_MIPS_26, elf::R_MIPS_HI16, elf::R_MIPS_LO16],
        );
    }

    /// A relocation of a synthetic object: in `.data` (else `.text`), at `offset`, against the
    /// undefined symbol `symbol`.
    struct Rel {
        data: bool,
        offset: u64,
        symbol: &'static str,
        addend: i64,
        r_type: u32,
    }

    const fn text(offset: u64, symbol: &'static str, addend: i64, r_type: u32) -> Rel {
        Rel {
            data: false,
            offset,
            symbol,
            addend,
            r_type,
        }
    }

    const fn data(offset: u64, symbol: &'static str, addend: i64, r_type: u32) -> Rel {
        Rel {
            data: true,
            ..text(offset, symbol, addend, r_type)
        }
    }

    /// A relocatable object with `code` in `.text`, `bytes` in `.data` and `relocs` against
    /// undefined symbols, for the kinds of relocations the corpus has against its own symbols
    /// only.
    fn synthetic(
        arch: Architecture,
        big: bool,
        code: &[u8],
        bytes: &[u8],
        relocs: &[Rel],
    ) -> Vec<u8> {
        let endian = if big {
            Endianness::Big
        } else {
            Endianness::Little
        };
        let mut obj = write::Object::new(BinaryFormat::Elf, arch, endian);
        let text = obj.section_id(StandardSection::Text);
        obj.append_section_data(text, code, 16);
        let data = obj.section_id(StandardSection::Data);
        obj.append_section_data(data, bytes, 16);
        let mut symbols = HashMap::new();
        for rel in relocs {
            let symbol = *symbols.entry(rel.symbol).or_insert_with(|| {
                obj.add_symbol(WriteSymbol {
                    name: rel.symbol.as_bytes().to_vec(),
                    value: 0,
                    size: 0,
                    kind: SymbolKind::Unknown,
                    scope: SymbolScope::Dynamic,
                    weak: false,
                    section: SymbolSection::Undefined,
                    flags: SymbolFlags::None,
                })
            });
            let relocation = Relocation {
                offset: rel.offset,
                symbol,
                addend: rel.addend,
                flags: RelocationFlags::Elf { r_type: rel.r_type },
            };
            let section = if rel.data { data } else { text };
            obj.add_relocation(section, relocation).unwrap();
        }
        obj.write().unwrap()
    }

    /// Links a synthetic object with its imports before and after they move (`place` gives
    /// each import's address and kind), checks the rebind, and that exactly the relocation
    /// types not in `no_site` became sites.
    fn synthetic_rebinds(
        name: &str,
        bytes: &[u8],
        relocs: &[Rel],
        no_site: &[u32],
        place: impl Fn(&Object, &Layout, &str, bool) -> (u64, ExternalKind),
    ) -> LinkOutput {
        let object = Object::parse(name, bytes).unwrap();
        let layout = layout(&object, &LayoutOptions::default()).unwrap();
        let kernel = |moved: bool| -> HashMap<String, ExternalSymbol> {
            relocs
                .iter()
                .map(|r| {
                    let (address, kind) = place(&object, &layout, r.symbol, moved);
                    let symbol = ExternalSymbol {
                        address,
                        size: 16,
                        kind,
                    };
                    (r.symbol.to_string(), symbol)
                })
                .collect()
        };
        let output =
            rebinds_like_a_fresh_link(name, &object, &layout, &kernel(false), &kernel(true));
        let mut seen = Seen::default();
        seen.add(object.arch, &output.import_sites);
        let expected: std::collections::BTreeSet<u32> = relocs
            .iter()
            .map(|r| r.r_type)
            .filter(|t| !no_site.contains(t))
            .collect();
        assert_eq!(seen.r_types, expected, "{name}");
        output
    }

    /// Every x86_64 kind that follows its symbol's address, against imports: the three GOT
    /// relaxations (`mov` to `lea`, `call *` to `addr32 call`, `jmp *` to `jmp; nop`, whose
    /// field starts a byte early), `@PLTOFF` and `@GOTOFF` (S + A - GOT), and a far function
    /// reached through a stub and a GOT slot.
    #[test]
    fn x86_64_kinds_rebind_like_a_fresh_link() {
        #[rustfmt::skip]
        let code = [
            0x48, 0x8b, 0x05, 0, 0, 0, 0, // 0: mov var@GOTPCREL(%rip), %rax
            0xff, 0x15, 0, 0, 0, 0, // 7: call *func@GOTPCREL(%rip)
            0xff, 0x25, 0, 0, 0, 0, // 13: jmp *func@GOTPCREL(%rip)
            0xe8, 0, 0, 0, 0, // 19: call func
            0xe8, 0, 0, 0, 0, // 24: call far
            0xff, 0x15, 0, 0, 0, 0, // 29: call *far@GOTPCREL(%rip)
            0x48, 0x8d, 0x05, 0, 0, 0, 0, // 35: lea var+8(%rip), %rax
            0x48, 0x8d, 0x05, 0, 0, 0, 0, // 42: lea far(%rip), %rax
            0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, // 49: movabs $func@PLTOFF, %rax
            0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, // 59: movabs $var@GOTOFF+16, %rax
            0x48, 0xc7, 0xc0, 0, 0, 0, 0, // 69: mov $var, %rax
            0xc3, // 76: ret
        ];
        let relocs = [
            text(3, "var", -4, elf::R_X86_64_REX_GOTPCRELX),
            text(9, "func", -4, elf::R_X86_64_GOTPCRELX),
            text(15, "func", -4, elf::R_X86_64_GOTPCRELX),
            text(20, "func", -4, elf::R_X86_64_PLT32),
            text(25, "far", -4, elf::R_X86_64_PLT32),
            text(31, "far", -4, elf::R_X86_64_GOTPCRELX),
            text(38, "var", 4, elf::R_X86_64_PC32),
            text(45, "far", -4, elf::R_X86_64_PC32),
            text(51, "func", 0, elf::R_X86_64_PLTOFF64),
            text(61, "var", 16, elf::R_X86_64_GOTOFF64),
            text(72, "var", 0, elf::R_X86_64_32S),
            data(0, "func", 8, elf::R_X86_64_64),
            data(8, "var", 0, elf::R_X86_64_PC64),
            data(16, "var", 0, elf::R_X86_64_PC32),
            data(20, "var", 0, elf::R_X86_64_32),
            data(24, "far", 0, elf::R_X86_64_64),
            data(32, "var", 0, elf::R_X86_64_SIZE64),
            data(40, "var", 0, elf::R_X86_64_GOTPCREL),
            data(48, "var", 0, elf::R_X86_64_GOT64),
        ];
        let bytes = synthetic(Architecture::X86_64, false, &code, &[0; 56], &relocs);
        let no_site = [
            elf::R_X86_64_SIZE64,
            elf::R_X86_64_GOTPCREL,
            elf::R_X86_64_GOT64,
        ];
        let output = synthetic_rebinds(
            "x86_64",
            &bytes,
            &relocs,
            &no_site,
            |_, layout, name, moved| {
                let near = BASE + layout.mapped_size() + if moved { NEAR_SHIFT } else { 0 };
                match name {
                    "var" => (near, ExternalKind::Data),
                    "func" => (near + 0x40, ExternalKind::Function),
                    _ => (
                        BASE + 0x2_0000_0000 + if moved { FAR_SHIFT } else { 0 },
                        ExternalKind::Function,
                    ),
                }
            },
        );
        assert_eq!(output.got_relaxed, 3);
        assert_eq!(output.stubs_used, 2);
        let sites = &output.import_sites;
        let relaxed_jmp = sites.iter().find(|s| {
            s.form
                == SiteForm::Reloc {
                    r_type: elf::R_X86_64_GOTPCRELX,
                    place: 15,
                }
        });
        assert_eq!(
            relaxed_jmp.map(|s| (s.offset, s.addend)),
            Some((14, -3)),
            "{sites:?}"
        );
        assert!(sites.iter().any(|s| s.form == SiteForm::Stub));
        assert!(sites.iter().any(|s| s.form == SiteForm::GotSlot));
    }

    /// Every aarch64 kind that follows its symbol's address and fits an address near the
    /// image: the MOVW groups (which the corpus uses against its own symbols only), the short
    /// PC-relative loads and branches, the data kinds and S + A - GOT.
    #[test]
    fn aarch64_kinds_rebind_like_a_fresh_link() {
        let words: [u32; 27] = [
            0x9000_0000, // 0: adrp x0, var
            0x9100_0000, // 4: add x0, x0, :lo12:var
            0xf940_0001, // 8: ldr x1, [x0, :lo12:var+8]
            0x9400_0000, // 12: bl func
            0x1400_0000, // 16: b far
            0xd2e0_0000, // 20: movz x0, #:abs_g3:var
            0xf2c0_0000, // 24: movk x0, #:abs_g2_nc:var
            0xf2a0_0000, // 28: movk x0, #:abs_g1_nc:var
            0xf280_0000, // 32: movk x0, #:abs_g0_nc:var
            0xd2a0_0000, // 36: movz x0, #:abs_g1:var
            0xd2c0_0000, // 40: movz x0, #:abs_g2:var
            0xd2a0_0001, // 44: movz x1, #:prel_g1:var
            0xf280_0001, // 48: movk x1, #:prel_g0_nc:var
            0x9280_0002, // 52: movn x2, #:prel_g0:var
            0x5800_0003, // 56: ldr x3, var
            0x1000_0004, // 60: adr x4, var
            0x5400_0000, // 64: b.eq func
            0x3600_0000, // 68: tbz w0, #0, func
            0x9000_0005, // 72: adrp x5, :got:far
            0xf940_00a5, // 76: ldr x5, [x5, :got_lo12:far]
            0xd2a0_0006, // 80: movz x6, #:abs_g1_s:var
            0xd2c0_0007, // 84: movz x7, #:abs_g2_s:var
            0x9000_0008, // 88: adrp x8, far
            0x9100_0108, // 92: add x8, x8, :lo12:far
            0xd2a0_0009, // 96: movz x9, #:prel_g1:flip
            0xf280_0009, // 100: movk x9, #:prel_g0_nc:flip
            0xd65f_03c0, // 104: ret
        ];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let relocs = [
            text(0, "var", 0, elf::R_AARCH64_ADR_PREL_PG_HI21),
            text(4, "var", 0, elf::R_AARCH64_ADD_ABS_LO12_NC),
            text(8, "var", 8, elf::R_AARCH64_LDST64_ABS_LO12_NC),
            text(12, "func", 0, elf::R_AARCH64_CALL26),
            text(16, "far", 0, elf::R_AARCH64_JUMP26),
            text(20, "var", 0, elf::R_AARCH64_MOVW_UABS_G3),
            text(24, "var", 0, elf::R_AARCH64_MOVW_UABS_G2_NC),
            text(28, "var", 0, elf::R_AARCH64_MOVW_UABS_G1_NC),
            text(32, "var", 0, elf::R_AARCH64_MOVW_UABS_G0_NC),
            text(36, "var", 0, elf::R_AARCH64_MOVW_UABS_G1),
            text(40, "var", 0, elf::R_AARCH64_MOVW_UABS_G2),
            text(44, "var", 0, elf::R_AARCH64_MOVW_PREL_G1),
            text(48, "var", 0, elf::R_AARCH64_MOVW_PREL_G0_NC),
            text(52, "var", 0, elf::R_AARCH64_MOVW_PREL_G0),
            text(56, "var", 0, elf::R_AARCH64_LD_PREL_LO19),
            text(60, "var", 0, elf::R_AARCH64_ADR_PREL_LO21),
            text(64, "func", 0, elf::R_AARCH64_CONDBR19),
            text(68, "func", 0, elf::R_AARCH64_TSTBR14),
            text(72, "far", 0, elf::R_AARCH64_ADR_GOT_PAGE),
            text(76, "far", 0, elf::R_AARCH64_LD64_GOT_LO12_NC),
            text(80, "var", 0, elf::R_AARCH64_MOVW_SABS_G1),
            text(84, "var", 0, elf::R_AARCH64_MOVW_SABS_G2),
            text(88, "far", 0, elf::R_AARCH64_ADR_PREL_PG_HI21),
            text(92, "far", 0, elf::R_AARCH64_ADD_ABS_LO12_NC),
            text(96, "flip", 0, elf::R_AARCH64_MOVW_PREL_G1),
            text(100, "flip", 0, elf::R_AARCH64_MOVW_PREL_G0_NC),
            data(0, "func", 8, elf::R_AARCH64_ABS64),
            data(8, "var", 0, elf::R_AARCH64_PREL32),
            data(12, "var", 0, elf::R_AARCH64_PREL16),
            data(16, "var", 0, elf::R_AARCH64_PREL64),
            data(24, "var", 0, elf::R_AARCH64_GOTREL64),
            data(32, "var", 0, elf::R_AARCH64_GOTREL32),
            data(36, "var", 0, elf::R_AARCH64_ABS32),
            data(40, "func", 0, 314), // R_AARCH64_PLT32
        ];
        let bytes = synthetic(Architecture::Aarch64, false, &code, &[0; 48], &relocs);
        // The far jump goes through its stub, the GOT pair through its slot.
        let no_site = [
            elf::R_AARCH64_JUMP26,
            elf::R_AARCH64_ADR_GOT_PAGE,
            elf::R_AARCH64_LD64_GOT_LO12_NC,
        ];
        let output = synthetic_rebinds(
            "aarch64",
            &bytes,
            &relocs,
            &no_site,
            |_, layout, name, moved| {
                // Inside TBZ's ±32 KiB and MOVW_PREL_G0's ±64 KiB of the code.
                let near = BASE + layout.mapped_size() + if moved { 0x230 } else { 0x100 };
                match name {
                    "var" => (near, ExternalKind::Data),
                    "func" => (near + 0x40, ExternalKind::Function),
                    // Below the image, then above it: MOVN turns into MOVZ (and back).
                    "flip" if moved => (near + 0x80, ExternalKind::Data),
                    "flip" => (BASE - 0x1_0000, ExternalKind::Data),
                    _ => (
                        BASE + 0x4000_0000 + if moved { FAR_SHIFT } else { 0 },
                        ExternalKind::Function,
                    ),
                }
            },
        );
        assert_eq!(output.stubs_used, 1);
    }

    /// The MIPS kinds that follow their symbol's address, in both byte orders: besides the
    /// corpus's `jal`, `%hi`/`%lo` and words, the R6 PC-relative ones and the GP-relative
    /// ones (S + A - GP, with an import placed next to the GP).
    #[test]
    fn mips_kinds_rebind_like_a_fresh_link() {
        let words: [u32; 16] = [
            0x3c08_0000, // 0: lui $t0, %hi(var)
            0x2508_0000, // 4: addiu $t0, $t0, %lo(var)
            0x0c00_0000, // 8: jal func
            0x0000_0000, // 12: nop
            0x0c00_0000, // 16: jal far
            0x0000_0000, // 20: nop
            0x8f89_0000, // 24: lw $t1, %gp_rel(small)($gp)
            0xe800_0000, // 28: balc func
            0x1000_0000, // 32: b func
            0xec1e_0000, // 36: aluipc $t0, %pcrel_hi(var)
            0x2508_0000, // 40: addiu $t0, $t0, %pcrel_lo(var)
            0xec08_0000, // 44: lwpc $t0, var
            0xd800_0000, // 48: beqzc $zero, func
            0x03e0_0008, // 52: jr $ra
            0x0000_0000, // 56: nop
            0x0000_0000, // 60
        ];
        let relocs = [
            text(0, "var", 0, elf::R_MIPS_HI16),
            text(4, "var", 0, elf::R_MIPS_LO16),
            text(8, "func", 0, elf::R_MIPS_26),
            text(16, "far", 0, elf::R_MIPS_26),
            text(24, "small", 0, elf::R_MIPS_GPREL16),
            text(28, "func", 0, 61), // R_MIPS_PC26_S2
            text(32, "func", 0, elf::R_MIPS_PC16),
            text(36, "var", 0, 64),  // R_MIPS_PCHI16
            text(40, "var", 0, 65),  // R_MIPS_PCLO16
            text(44, "var", 0, 63),  // R_MIPS_PC19_S2
            text(48, "func", 0, 60), // R_MIPS_PC21_S2
            data(0, "var", 8, elf::R_MIPS_32),
            data(4, "small", 0, elf::R_MIPS_GPREL32),
            data(8, "var", 0, 248), // R_MIPS_PC32
            data(12, "func", 0, elf::R_MIPS_REL32),
        ];
        for big in [true, false] {
            let code: Vec<u8> = words
                .iter()
                .flat_map(|w| {
                    if big {
                        w.to_be_bytes()
                    } else {
                        w.to_le_bytes()
                    }
                })
                .collect();
            let bytes = synthetic(Architecture::Mips, big, &code, &[0; 16], &relocs);
            let name = if big { "mips" } else { "mipsel" };
            let output =
                synthetic_rebinds(name, &bytes, &relocs, &[], |object, layout, name, moved| {
                    let near = BASE + layout.mapped_size() + if moved { NEAR_SHIFT } else { 0x100 };
                    let gp = object.arch.global_pointer(layout, BASE);
                    match name {
                        "var" => (near, ExternalKind::Data),
                        "small" => (gp + if moved { 0x330 } else { 0x100 }, ExternalKind::Data),
                        "func" => (near + 0x40, ExternalKind::Function),
                        _ => (
                            BASE + 0x2000_0000 + if moved { FAR_SHIFT } else { 0 },
                            ExternalKind::Function,
                        ),
                    }
                });
            assert_eq!(output.stubs_used, 1);
        }
    }

    /// A copy of a kernel variable inside the image (`Layout::copies`) is an import whose
    /// sites point into the image: rebinding with the copy's own address, as before, gives a
    /// fresh link's bytes while the other imports move.
    #[test]
    fn copies_rebind_to_their_own_address() {
        let path = "x86_64/gcc-nopic/kernel_api.o";
        let bytes = corpus(path);
        let object = Object::parse(path, &bytes).unwrap();
        let options = LayoutOptions {
            copies: vec![CopyRequest {
                name: "kernel_counter".into(),
                size: 8,
                align: 8,
            }],
            ..LayoutOptions::default()
        };
        let layout = layout(&object, &options).unwrap();
        let (copy, offset) = &layout.copies[0];
        let before = kernel(&object, &layout, Functions::Far, false);
        let after = kernel(&object, &layout, Functions::Far, true);
        let output = rebinds_like_a_fresh_link(path, &object, &layout, &before, &after);
        let index = output
            .imports
            .iter()
            .position(|i| i.name == copy.name)
            .unwrap();
        assert_eq!(
            output.imports[index].symbol,
            Some(ExternalSymbol {
                address: BASE + offset,
                size: 8,
                kind: ExternalKind::Data,
            })
        );
        assert!(output
            .import_sites
            .iter()
            .any(|s| s.import == index as u32 && matches!(s.form, SiteForm::Reloc { .. })));
    }

    /// An x86_64 module, linked, with its imports and sites, for the refusals.
    struct Linked {
        image: Vec<u8>,
        output: LinkOutput,
        new: Vec<Option<ExternalSymbol>>,
    }

    impl Linked {
        fn new(path: &str) -> Self {
            let bytes = corpus(path);
            let object = Object::parse(path, &bytes).unwrap();
            let layout = layout(&object, &LayoutOptions::default()).unwrap();
            let before = kernel(&object, &layout, Functions::Far, false);
            let (image, output) = link(&object, &layout, BASE, &mut |n: &str| {
                before.get(n).copied()
            })
            .unwrap();
            let new = output.imports.iter().map(|i| i.symbol).collect();
            Linked { image, output, new }
        }

        fn index(&self, name: &str) -> usize {
            self.output
                .imports
                .iter()
                .position(|i| i.name == name)
                .unwrap()
        }

        /// Rebinds a copy of the image to `self.new` through `sites`; the image must come
        /// back unchanged from a refusal.
        fn rebind_with(&self, sites: &[ImportSite], base: u64) -> Result<(), LinkError> {
            let mut image = self.image.clone();
            let result = rebind(
                ArchKind::X86_64,
                &mut image,
                base,
                sites,
                &self.output.imports,
                &self.new,
            );
            if result.is_err() {
                assert!(image == self.image, "a refusal changed the image");
            }
            result
        }

        fn rebind(&self) -> Result<(), LinkError> {
            self.rebind_with(&self.output.import_sites, BASE)
        }
    }

    /// The refusal's import and detail, or a panic if it is not one.
    fn refusal(result: Result<(), LinkError>) -> (String, String) {
        match result {
            Err(LinkError::Rebind { import, detail }) => (import, detail),
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn rebind_refuses_what_a_fresh_link_would_do_differently() {
        let linked = Linked::new("x86_64/gcc-pie/kernel_api.o");
        let counter = linked.index("kernel_counter");
        let log = linked.index("log_line");
        assert!(linked.rebind().is_ok());

        let mut fewer = Linked::new("x86_64/gcc-pie/kernel_api.o");
        fewer.new.pop();
        let (import, detail) = refusal(fewer.rebind());
        assert_eq!(import, "");
        assert!(detail.contains("2 imports, 1 addresses"), "{detail}");

        let mut gone = Linked::new("x86_64/gcc-pie/kernel_api.o");
        gone.new[counter] = None;
        let (import, detail) = refusal(gone.rebind());
        assert_eq!(import, "kernel_counter");
        assert!(detail.contains("no longer found"), "{detail}");

        let mut kind = Linked::new("x86_64/gcc-pie/kernel_api.o");
        kind.new[log].as_mut().unwrap().kind = ExternalKind::Data;
        let (import, detail) = refusal(kind.rebind());
        assert_eq!(import, "log_line");
        assert!(
            detail.contains("Function") && detail.contains("Data"),
            "{detail}"
        );

        let mut size = Linked::new("x86_64/gcc-pie/kernel_api.o");
        size.new[counter].as_mut().unwrap().size = 8;
        let (import, detail) = refusal(size.rebind());
        assert_eq!(import, "kernel_counter");
        assert!(detail.contains("size"), "{detail}");

        // The variable, reached PC-relative in 32 bits, moves 4 GiB away.
        let mut far = Linked::new("x86_64/gcc-pie/kernel_api.o");
        far.new[counter].as_mut().unwrap().address += 0x1_0000_0000;
        let (import, detail) = refusal(far.rebind());
        assert_eq!(import, "kernel_counter");
        assert!(
            detail.contains("R_X86_64_PC32") && detail.contains("out of range"),
            "{detail}"
        );

        // A function called through its stub may move anywhere.
        let mut anywhere = Linked::new("x86_64/gcc-pie/kernel_api.o");
        anywhere.new[log].as_mut().unwrap().address = 0x7fff_1234_5670;
        assert!(anywhere.rebind().is_ok());
    }

    /// An undefined weak import left unresolved must stay so: found now, a fresh link would
    /// reference it where the image holds 0.
    #[test]
    fn rebind_refuses_a_weak_import_that_appears() {
        let mut linked = Linked::new("x86_64/gcc-pie/weak.o");
        let missing = linked.index("maybe_missing");
        assert_eq!(linked.output.imports[missing].symbol, None);
        assert!(!linked
            .output
            .import_sites
            .iter()
            .any(|s| s.import == missing as u32));
        assert!(linked.rebind().is_ok());
        linked.new[missing] = Some(ExternalSymbol {
            address: BASE - 0x1000,
            size: 0,
            kind: ExternalKind::Function,
        });
        let (import, detail) = refusal(linked.rebind());
        assert_eq!(import, "maybe_missing");
        assert!(detail.contains("undefined weak"), "{detail}");
    }

    /// Sites that link never records are refused, naming what is wrong, not a panic.
    #[test]
    fn rebind_refuses_sites_it_cannot_have_recorded() {
        let linked = Linked::new("x86_64/gcc-pie/kernel_api.o");
        let site = *linked
            .output
            .import_sites
            .iter()
            .find(|s| matches!(s.form, SiteForm::Reloc { .. }))
            .unwrap();
        let len = linked.image.len() as u64;
        let cases = [
            (
                ImportSite {
                    offset: len - 3,
                    ..site
                },
                "outside the image",
            ),
            (
                ImportSite {
                    offset: u64::MAX,
                    ..site
                },
                "outside the image",
            ),
            (
                ImportSite {
                    offset: len - 8,
                    form: SiteForm::Stub,
                    ..site
                },
                "outside the image",
            ),
            (
                ImportSite {
                    form: SiteForm::Reloc {
                        r_type: 0xffff,
                        place: 0,
                    },
                    ..site
                },
                "relocation type 65535",
            ),
            (
                ImportSite {
                    form: SiteForm::Reloc {
                        r_type: elf::R_X86_64_GOT64,
                        place: 0,
                    },
                    ..site
                },
                "does not depend",
            ),
            (ImportSite { import: 99, ..site }, "names import 99 of 2"),
            (
                ImportSite {
                    form: SiteForm::Reloc {
                        r_type: elf::R_X86_64_PC32,
                        place: u64::MAX,
                    },
                    ..site
                },
                "past the address space",
            ),
        ];
        for (bad, why) in cases {
            let (_, detail) = refusal(linked.rebind_with(&[site, bad], BASE));
            assert!(detail.contains(why), "{bad:?}: {detail}");
        }
        let (_, detail) = refusal(linked.rebind_with(&[site], u64::MAX - 4));
        assert!(detail.contains("past the address space"), "{detail}");
    }

    /// Random sites over random images, for every architecture: an answer, never a panic.
    #[test]
    fn rebind_survives_arbitrary_sites() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let imports = [
            Import {
                name: "f".into(),
                symbol: Some(ExternalSymbol {
                    address: 0x4000_1000,
                    size: 16,
                    kind: ExternalKind::Function,
                }),
            },
            Import {
                name: "w".into(),
                symbol: None,
            },
        ];
        for arch in [
            ArchKind::X86_64,
            ArchKind::Aarch64,
            ArchKind::Mips { big_endian: true },
            ArchKind::Mips { big_endian: false },
        ] {
            for _ in 0..2_000 {
                let mut image = vec![0u8; (next() % 64) as usize];
                let sites: Vec<ImportSite> = (0..4)
                    .map(|_| ImportSite {
                        import: (next() % 3) as u32,
                        offset: next() % 80,
                        addend: next() as i64 >> (next() % 64),
                        form: match next() % 3 {
                            0 => SiteForm::Stub,
                            1 => SiteForm::GotSlot,
                            _ => SiteForm::Reloc {
                                r_type: (next() % 320) as u32,
                                place: next() % 96,
                            },
                        },
                    })
                    .collect();
                let new = [
                    Some(ExternalSymbol {
                        address: next() >> (next() % 64),
                        size: 16,
                        kind: ExternalKind::Function,
                    }),
                    None,
                ];
                let base = next() >> (next() % 64);
                let _ = rebind(arch, &mut image, base, &sites, &imports, &new);
            }
        }
    }
}
