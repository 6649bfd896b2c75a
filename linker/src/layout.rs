//! Layout: where every loaded section, COMMON symbol, stub, GOT slot and data copy goes,
//! relative to the image's base. Final before any address is known, so the machine can be
//! asked for memory of exactly this size.

use std::collections::BTreeMap;

use crate::arch::{Arch, Classifier, StubUse};
use crate::error::{malformed, LinkError};
use crate::input::{Object, SectionKind, SymbolDef, SymbolType};
use crate::with_arch;

/// A kernel variable the module reaches with a 32-bit reference that cannot reach the kernel:
/// the loader asks for a copy inside the image, as a static linker's copy relocation would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub name: String,
    pub size: u64,
    pub align: u64,
}

#[derive(Debug, Clone)]
pub struct LayoutOptions {
    /// Segments with different protections start on separate pages.
    pub page_size: u64,
    pub copies: Vec<CopyRequest>,
    /// Refuse images larger than this, whatever the headers claim.
    pub max_image_size: u64,
    /// Refuse sections (and COMMON symbols) aligned more strictly than this: a header's
    /// alignment alone would otherwise blow an image up to that size.
    pub max_align: u64,
}

/// The default cap on alignment: above any page size and any alignment real code asks for.
pub const DEFAULT_MAX_ALIGN: u64 = 1 << 20;

/// The default cap on an image: far above any real module, far below what would hurt.
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 1 << 30;

impl Default for LayoutOptions {
    fn default() -> Self {
        LayoutOptions {
            page_size: 4096,
            copies: Vec::new(),
            max_image_size: DEFAULT_MAX_IMAGE_SIZE,
            max_align: DEFAULT_MAX_ALIGN,
        }
    }
}

/// The protection a segment needs once published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    Text,
    ReadOnly,
    Writable,
}

/// A page-aligned run of the image with one protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: SegmentKind,
    pub offset: u64,
    /// Rounded up to the page size.
    pub size: u64,
}

/// A stretch of the image the linker fills itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Area {
    pub offset: u64,
    pub size: u64,
}

/// Bytes of zeros the layout reserves right after each `.eh_frame` section.
///
/// An unwinder is told about a module's call frame information with the address of its
/// `.eh_frame` alone (libgcc's `__register_frame`), and walks its CIEs and FDEs until an entry
/// whose length is zero. A linked program gets that terminator from `crtend.o`, after every
/// object's `.eh_frame`; a relocatable object has none, so the layout reserves one after each
/// `.eh_frame` (the image is zero-filled, so it reads as a zero length). Copying the section
/// elsewhere with a terminator would need its PC-relative pointers relocated again, and
/// libgcc's per-FDE table interface walks each entry to a terminator just the same. The
/// sections after an `.eh_frame` move by these four bytes (and their alignment); since
/// `ld.lld` is given dlkm's addresses in the golden tests, its output moves with them.
pub const EH_FRAME_TERMINATOR: u64 = 4;

/// Identifies a stub or GOT slot: the symbol and, where the architecture folds it into the
/// target, the addend.
pub(crate) type SlotKey = (u32, i64);

#[derive(Debug, Clone)]
pub struct Layout {
    /// Offset of each input section, by section index; `None` where it is not loaded.
    pub section_offsets: Vec<Option<u64>>,
    /// Offset of each COMMON symbol, by symbol index.
    pub common_offsets: BTreeMap<u32, u64>,
    pub copies: Vec<(CopyRequest, u64)>,
    pub stubs: Area,
    pub got: Area,
    /// Each non-empty `.eh_frame` section: its offset and size. Four zero bytes follow each
    /// one in the image, the terminator an unwinder's frame registration walks to
    /// ([`EH_FRAME_TERMINATOR`]).
    pub eh_frames: Vec<Area>,
    pub segments: Vec<Segment>,
    /// End of the last allocated byte.
    pub image_size: u64,
    /// The base must be a multiple of this.
    pub align: u64,
    pub(crate) stub_slots: BTreeMap<SlotKey, u64>,
    pub(crate) got_slots: BTreeMap<SlotKey, u64>,
    pub(crate) stub_size: u64,
    pub(crate) got_entry_size: u64,
    /// Some relocation stores the module's own address in 32 bits.
    pub needs_low_address: bool,
    /// The image must lie inside one aligned block of this many bytes: MIPS `jal` reaches only
    /// within the 256 MiB region it sits in, so a module's calls to its own functions break
    /// if the module straddles two regions. The loader's placement honours it.
    pub region_size: Option<u64>,
}

impl Layout {
    /// Size to map: the image rounded up to whole pages.
    pub fn mapped_size(&self) -> u64 {
        self.segments.last().map(|s| s.offset + s.size).unwrap_or(0)
    }

    pub fn stub_count(&self) -> usize {
        self.stub_slots.len()
    }

    pub fn got_count(&self) -> usize {
        self.got_slots.len()
    }

    /// Each far-call stub's offset and what it jumps to (`symbol`, or `symbol+0x10` where the
    /// architecture folds the addend into the stub), in address order: a debugger names a call
    /// through a stub by its real callee.
    pub fn stub_targets(&self, object: &Object) -> Vec<(u64, String)> {
        let mut stubs: Vec<(u64, String)> = self
            .stub_slots
            .iter()
            .map(|(&(symbol, addend), &slot)| {
                let name = object.symbol_display_name(symbol);
                let target = match addend {
                    0 => name,
                    a if a > 0 => format!("{name}+{a:#x}"),
                    a => format!("{name}-{:#x}", a.unsigned_abs()),
                };
                (self.stubs.offset + slot * self.stub_size, target)
            })
            .collect();
        stubs.sort_by_key(|s| s.0);
        stubs
    }

    /// One line per placed piece, in address order: input sections by name, then the areas the
    /// linker adds (`*stubs*`, `*got*`, `*eh_frame_end*`, `*common*`, `*copy:NAME*`).
    pub fn map_entries(&self, object: &Object) -> Vec<(String, u64, u64)> {
        let mut entries: Vec<(String, u64, u64)> = self
            .section_offsets
            .iter()
            .enumerate()
            .filter_map(|(i, off)| {
                off.map(|o| {
                    (
                        object.sections[i].name.to_string(),
                        o,
                        object.sections[i].size,
                    )
                })
            })
            .collect();
        if self.stubs.size > 0 {
            entries.push(("*stubs*".into(), self.stubs.offset, self.stubs.size));
        }
        if self.got.size > 0 {
            entries.push(("*got*".into(), self.got.offset, self.got.size));
        }
        for frame in &self.eh_frames {
            entries.push((
                "*eh_frame_end*".into(),
                frame.offset + frame.size,
                EH_FRAME_TERMINATOR,
            ));
        }
        for (&symbol, &offset) in &self.common_offsets {
            let size = object.symbols[symbol as usize].size;
            entries.push(("*common*".into(), offset, size));
        }
        for (copy, offset) in &self.copies {
            entries.push((format!("*copy:{}*", copy.name), *offset, copy.size));
        }
        entries.sort_by_key(|e| e.1);
        entries
    }
}

/// Lays `object` out. Also classifies every relocation, so an unsupported one is reported
/// before any memory is asked for.
pub fn layout(object: &Object, options: &LayoutOptions) -> Result<Layout, LinkError> {
    with_arch!(object.arch, A => layout_for::<A>(object, options))
}

struct Cursor {
    offset: u64,
}

impl Cursor {
    fn place(&mut self, size: u64, align: u64) -> Result<u64, ()> {
        let start = self
            .offset
            .checked_next_multiple_of(align.max(1))
            .ok_or(())?;
        self.offset = start.checked_add(size).ok_or(())?;
        Ok(start)
    }
}

fn layout_for<A: Arch>(object: &Object, options: &LayoutOptions) -> Result<Layout, LinkError> {
    let page = options.page_size.max(1);
    if !page.is_power_of_two() {
        return Err(LinkError::Unsupported {
            object: object.name.clone(),
            what: format!("page size {page}"),
        });
    }
    let too_big = || LinkError::Malformed {
        object: object.name.clone(),
        detail: "sections add up to more than the address space".into(),
    };
    let SlotCount {
        stubs: stub_slots,
        got: got_slots,
        needs_low_address,
        region_size,
    } = count_slots::<A>(object)?;

    let mut section_offsets = vec![None; object.sections.len()];
    let mut common_offsets = BTreeMap::new();
    let mut copies = Vec::new();
    let mut segments = Vec::new();
    let mut cursor = Cursor { offset: 0 };
    let mut align = page;
    let mut stubs = Area::default();
    let mut got = Area::default();
    let mut eh_frames = Vec::new();

    let segment_plan = [
        (SegmentKind::Text, &[SectionKind::Text][..]),
        (SegmentKind::ReadOnly, &[SectionKind::ReadOnly][..]),
        (
            SegmentKind::Writable,
            &[SectionKind::Data, SectionKind::ZeroFill][..],
        ),
    ];
    for (segment_kind, section_kinds) in segment_plan {
        let start = cursor.place(0, page).map_err(|_| too_big())?;
        for &kind in section_kinds {
            for (index, section) in object.sections.iter().enumerate() {
                if section.kind == Some(kind) {
                    if section.align > options.max_align {
                        return Err(malformed(
                            &object.name,
                            format_args!(
                                "section {} asks for alignment {:#x}, more than the {:#x} \
                                 dlkm allows",
                                section.name, section.align, options.max_align
                            ),
                        ));
                    }
                    align = align.max(section.align);
                    let at = cursor
                        .place(section.size, section.align)
                        .map_err(|_| too_big())?;
                    section_offsets[index] = Some(at);
                    if section.name == ".eh_frame"
                        && section.size > 0
                        && kind != SectionKind::ZeroFill
                    {
                        // Right after the section, whatever its size.
                        cursor
                            .place(EH_FRAME_TERMINATOR, 1)
                            .map_err(|_| too_big())?;
                        eh_frames.push(Area {
                            offset: at,
                            size: section.size,
                        });
                    }
                }
            }
            if kind == SectionKind::Data {
                for copy in &options.copies {
                    let at = cursor.place(copy.size, copy.align).map_err(|_| too_big())?;
                    copies.push((copy.clone(), at));
                }
            }
            if kind == SectionKind::ZeroFill {
                for (index, symbol) in object.symbols.iter().enumerate() {
                    if let SymbolDef::Common { align: a } = symbol.def {
                        if a > options.max_align {
                            return Err(malformed(
                                &object.name,
                                format_args!(
                                    "COMMON symbol {} asks for alignment {a:#x}, more than the \
                                     {:#x} dlkm allows",
                                    symbol.name, options.max_align
                                ),
                            ));
                        }
                        align = align.max(a);
                        let at = cursor.place(symbol.size, a).map_err(|_| too_big())?;
                        common_offsets.insert(index as u32, at);
                    }
                }
            }
        }
        match segment_kind {
            SegmentKind::Text if !stub_slots.is_empty() => {
                let size = stub_slots.len() as u64 * A::STUB_SIZE;
                stubs = Area {
                    offset: cursor.place(size, A::STUB_ALIGN).map_err(|_| too_big())?,
                    size,
                };
            }
            SegmentKind::ReadOnly => {
                let size = got_slots.len() as u64 * A::GOT_ENTRY_SIZE;
                got = Area {
                    offset: cursor
                        .place(size, A::GOT_ENTRY_SIZE)
                        .map_err(|_| too_big())?,
                    size,
                };
            }
            _ => {}
        }
        if cursor.offset > start {
            let end = cursor.place(0, page).map_err(|_| too_big())?;
            segments.push(Segment {
                kind: segment_kind,
                offset: start,
                size: end - start,
            });
            // Keep the exact end for the image; the next segment starts on a new page anyway.
            cursor.offset = end;
        }
    }
    let image_size = image_end(
        &section_offsets,
        object,
        &stubs,
        &got,
        &eh_frames,
        &common_offsets,
        &copies,
    );
    // A module that must fit one jump region cannot be larger than it.
    let limit = region_size.map_or(options.max_image_size, |r| r.min(options.max_image_size));
    if cursor.offset > limit {
        return Err(LinkError::Unsupported {
            object: object.name.clone(),
            what: format!(
                "an image of {:#x} bytes (the limit is {limit:#x})",
                cursor.offset
            ),
        });
    }

    Ok(Layout {
        section_offsets,
        common_offsets,
        copies,
        stubs,
        got,
        eh_frames,
        segments,
        image_size,
        align,
        stub_slots: number(stub_slots),
        got_slots: number(got_slots),
        stub_size: A::STUB_SIZE,
        got_entry_size: A::GOT_ENTRY_SIZE,
        needs_low_address,
        region_size,
    })
}

fn image_end(
    section_offsets: &[Option<u64>],
    object: &Object,
    stubs: &Area,
    got: &Area,
    eh_frames: &[Area],
    commons: &BTreeMap<u32, u64>,
    copies: &[(CopyRequest, u64)],
) -> u64 {
    let sections = section_offsets
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.map(|o| o + object.sections[i].size));
    let common = commons
        .iter()
        .map(|(&s, &o)| o + object.symbols[s as usize].size);
    let copied = copies.iter().map(|(c, o)| o + c.size);
    let terminators = eh_frames
        .iter()
        .map(|f| f.offset + f.size + EH_FRAME_TERMINATOR);
    sections
        .chain(common)
        .chain(copied)
        .chain(terminators)
        .chain([stubs.offset + stubs.size, got.offset + got.size])
        .max()
        .unwrap_or(0)
}

fn number(keys: std::collections::BTreeSet<SlotKey>) -> BTreeMap<SlotKey, u64> {
    keys.into_iter()
        .enumerate()
        .map(|(i, k)| (k, i as u64))
        .collect()
}

struct SlotCount {
    stubs: std::collections::BTreeSet<SlotKey>,
    got: std::collections::BTreeSet<SlotKey>,
    needs_low_address: bool,
    region_size: Option<u64>,
}

/// The worst case of stubs and GOT slots (Linux's count_plts): one per distinct key a branch or
/// GOT relocation names, whether or not the target turns out to be in reach.
fn count_slots<A: Arch>(object: &Object) -> Result<SlotCount, LinkError> {
    let mut stubs = std::collections::BTreeSet::new();
    let mut got = std::collections::BTreeSet::new();
    let mut needs_low = false;
    let mut region_size = None;
    let mut classifier = Classifier::<A>::new();
    for section in object.sections.iter().filter(|s| s.kind.is_some()) {
        let mut slices = section.relocs.slices();
        while let Some(relocs) = slices.next() {
            for reloc in relocs {
                let kind = classifier.classify(reloc.r_type).map_err(|refusal| {
                    LinkError::UnsupportedRelocation {
                        site: crate::link::reloc_site(object, section.name, reloc),
                        hint: refusal.hint.map(str::to_string),
                    }
                })?;
                let symbol = &object.symbols[reloc.symbol as usize];
                needs_low |= kind.needs_low_address;
                if let crate::Range::Region { bits, .. } = kind.range {
                    region_size = Some(1u64 << bits);
                }
                if kind.stub != StubUse::Never
                    && symbol.def == SymbolDef::Undefined
                    && reloc.symbol != 0
                    && symbol.ty != SymbolType::Section
                {
                    stubs.insert(A::stub_key(reloc.symbol, reloc.addend));
                }
                if kind.expr.uses_got_slot() {
                    got.insert(A::got_key(reloc.symbol, reloc.addend));
                }
            }
        }
    }
    Ok(SlotCount {
        stubs,
        got,
        needs_low_address: needs_low,
        region_size,
    })
}

impl Object<'_> {
    /// Undefined symbols this object reaches with a 32-bit reference (or an ADRP, ±4 GiB) that
    /// no stub can serve if the symbol is data: the module goes near them, or gets copies
    /// when it must sit low.
    pub fn short_reach_imports(&self) -> Vec<&str> {
        with_arch!(self.arch, A => short_reach_imports_for::<A>(self))
    }
}

fn short_reach_imports_for<'o, A: Arch>(object: &'o Object) -> Vec<&'o str> {
    // Marked by symbol first: thousands of relocations name the same few symbols.
    let mut short = vec![false; object.symbols.len()];
    let mut classifier = Classifier::<A>::new();
    for section in object.sections.iter().filter(|s| s.kind.is_some()) {
        let mut slices = section.relocs.slices();
        while let Some(relocs) = slices.next() {
            for reloc in relocs {
                let short_field = classifier.classify(reloc.r_type).is_ok_and(|k| {
                    // 32-bit fields, and aarch64's ADRP (±4 GiB of pages).
                    k.stub != StubUse::Branch
                        && matches!(
                            k.range,
                            crate::Range::Signed(n) | crate::Range::Unsigned(n)
                                if (32..=33).contains(&n)
                        )
                });
                if short_field {
                    short[reloc.symbol as usize] = true;
                }
            }
        }
    }
    let mut names: Vec<&str> = object
        .symbols
        .iter()
        .zip(short)
        .filter(|(s, short)| *short && s.def == SymbolDef::Undefined && !s.name.is_empty())
        .map(|(s, _)| s.name)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}
