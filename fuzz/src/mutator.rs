//! A structure-aware mutator for the link targets' ELF objects: half of the time it finds a
//! relocation entry, a symbol or a section header in the input and rewrites one of its fields
//! in place (with a value the linker has to think about: a relocation type it applies, a symbol
//! index just past the table, an offset at the end of a section, an alignment of 2^40…); the
//! rest of the time, or when the input is not an ELF object it can walk, libFuzzer's own
//! mutations run. Bytes flipped at random rarely keep an object parseable; fields rewritten
//! like this do, and reach the layout and the relocation code behind the parser.
//!
//! Deterministic: the same input and seed give the same mutation. No dependency on
//! libfuzzer-sys (the fallback is passed in), so the regression test that includes this crate's
//! driver builds on stable.

use std::sync::OnceLock;

use dlkm_linker::ArchKind;

/// Section types (ELF gABI).
const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHT_INIT_ARRAY: u32 = 14;
const SHT_FINI_ARRAY: u32 = 15;
const SHT_GROUP: u32 = 17;
const SHT_SYMTAB_SHNDX: u32 = 18;
const SHT_MIPS_REGINFO: u32 = 0x7000_0006;

/// Section flags: WRITE, ALLOC, EXECINSTR, MERGE, STRINGS, INFO_LINK, GROUP, TLS.
const SECTION_FLAGS: [u64; 8] = [0x1, 0x2, 0x4, 0x10, 0x20, 0x40, 0x200, 0x400];

/// Special section indices of a symbol: UNDEF, ABS, COMMON, XINDEX, and MIPS's SCOMMON.
const SPECIAL_SHNDX: [u64; 5] = [0, 0xfff1, 0xfff2, 0xffff, 0xff03];

/// Mutates `data[..size]` into at most `max_size` bytes; returns the new size. `fallback` is
/// libFuzzer's own mutator (`libfuzzer_sys::fuzzer_mutate`).
pub fn mutate(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    fallback: impl FnOnce(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut rng = Rng::new(seed);
    // Asked to shrink (`cargo fuzz tmin`): rewriting a field in place does not.
    if max_size >= size && rng.below(2) == 0 {
        if let Some(elf) = Elf::read(&data[..size]) {
            if elf.mutate(&mut data[..size], &mut rng) {
                return size;
            }
        }
    }
    fallback(data, size, max_size)
}

/// splitmix64: small, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u32) -> Rng {
        Rng(u64::from(seed) ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len() as u64) as usize])
    }
}

/// A field of an ELF structure: where it is and how wide (1, 2, 4 or 8 bytes).
#[derive(Debug, Clone, Copy)]
struct Field {
    at: usize,
    width: usize,
}

/// What the mutator needs of an ELF header, the fields' layout following its class.
#[derive(Debug, Clone, Copy)]
struct Elf {
    is64: bool,
    big_endian: bool,
    arch: Option<ArchKind>,
    shoff: usize,
    shentsize: usize,
    shnum: usize,
}

/// One section header, read.
#[derive(Debug, Clone, Copy)]
struct Section {
    /// Where the header is.
    at: usize,
    kind: u32,
    offset: u64,
    size: u64,
    link: u64,
}

impl Elf {
    fn read(data: &[u8]) -> Option<Elf> {
        if data.len() < 52 || data[..4] != *b"\x7fELF" {
            return None;
        }
        let is64 = match data[4] {
            1 => false,
            2 => true,
            _ => return None,
        };
        let big_endian = match data[5] {
            1 => false,
            2 => true,
            _ => return None,
        };
        let mut elf = Elf {
            is64,
            big_endian,
            arch: None,
            shoff: 0,
            shentsize: 0,
            shnum: 0,
        };
        let machine = elf.get(data, Field { at: 18, width: 2 })?;
        elf.arch = match machine {
            62 => Some(ArchKind::X86_64),
            183 => Some(ArchKind::Aarch64),
            8 => Some(ArchKind::Mips { big_endian }),
            _ => None,
        };
        let (shoff, shentsize, shnum) = if is64 {
            (Field { at: 0x28, width: 8 }, 0x3a, 0x3c)
        } else {
            (Field { at: 0x20, width: 4 }, 0x2e, 0x30)
        };
        elf.shoff = usize::try_from(elf.get(data, shoff)?).ok()?;
        elf.shentsize = elf.get(
            data,
            Field {
                at: shentsize,
                width: 2,
            },
        )? as usize;
        elf.shnum = elf.get(
            data,
            Field {
                at: shnum,
                width: 2,
            },
        )? as usize;
        let min_entsize = if is64 { 64 } else { 40 };
        (elf.shentsize >= min_entsize && elf.shnum > 0).then_some(elf)
    }

    fn get(&self, data: &[u8], field: Field) -> Option<u64> {
        let bytes = data.get(field.at..field.at.checked_add(field.width)?)?;
        Some(bytes.iter().enumerate().fold(0u64, |value, (i, &b)| {
            let shift = if self.big_endian {
                8 * (field.width - 1 - i)
            } else {
                8 * i
            };
            value | u64::from(b) << shift
        }))
    }

    /// Writes the low `field.width` bytes of `value`; false if the field is not in `data`.
    fn set(&self, data: &mut [u8], field: Field, value: u64) -> bool {
        let Some(bytes) = field
            .at
            .checked_add(field.width)
            .and_then(|end| data.get_mut(field.at..end))
        else {
            return false;
        };
        for (i, b) in bytes.iter_mut().enumerate() {
            let shift = if self.big_endian {
                8 * (field.width - 1 - i)
            } else {
                8 * i
            };
            *b = (value >> shift) as u8;
        }
        true
    }

    /// The bytes of a word of this class: 8 or 4.
    fn word(&self) -> usize {
        if self.is64 {
            8
        } else {
            4
        }
    }

    /// A field of the section header at `at`, by name.
    fn shdr(&self, at: usize, name: &str) -> Field {
        let w = self.word();
        let (offset, width) = match (name, self.is64) {
            ("type", _) => (4, 4),
            ("flags", _) => (8, w),
            ("addr", true) => (16, 8),
            ("offset", true) => (24, 8),
            ("size", true) => (32, 8),
            ("link", true) => (40, 4),
            ("info", true) => (44, 4),
            ("addralign", true) => (48, 8),
            ("entsize", true) => (56, 8),
            ("addr", false) => (12, 4),
            ("offset", false) => (16, 4),
            ("size", false) => (20, 4),
            ("link", false) => (24, 4),
            ("info", false) => (28, 4),
            ("addralign", false) => (32, 4),
            ("entsize", false) => (36, 4),
            _ => (0, 4),
        };
        Field {
            at: at + offset,
            width,
        }
    }

    fn section(&self, data: &[u8], index: usize) -> Option<Section> {
        let at = self.shoff.checked_add(index.checked_mul(self.shentsize)?)?;
        if at.checked_add(self.shentsize)? > data.len() {
            return None;
        }
        Some(Section {
            at,
            kind: self.get(data, self.shdr(at, "type"))? as u32,
            offset: self.get(data, self.shdr(at, "offset"))?,
            size: self.get(data, self.shdr(at, "size"))?,
            link: self.get(data, self.shdr(at, "link"))?,
        })
    }

    fn sections(&self, data: &[u8]) -> Vec<Section> {
        (0..self.shnum.min(4096))
            .map_while(|i| self.section(data, i))
            .collect()
    }

    /// The size of a symbol, or of a relocation with (`rela`) or without an addend.
    fn sym_size(&self) -> usize {
        if self.is64 {
            24
        } else {
            16
        }
    }

    fn rel_size(&self, rela: bool) -> usize {
        match (self.is64, rela) {
            (true, true) => 24,
            (true, false) => 16,
            (false, true) => 12,
            (false, false) => 8,
        }
    }

    /// The entries of a table section that lie inside `data`: (start, count).
    fn entries(&self, data: &[u8], section: &Section, entry: usize) -> Option<(usize, usize)> {
        let start = usize::try_from(section.offset).ok()?;
        let size = usize::try_from(section.size).ok()?;
        let end = start.checked_add(size)?.min(data.len());
        let count = end.checked_sub(start)? / entry;
        (count > 0).then_some((start, count))
    }

    /// Rewrites one field of one structure; false if the object has none of the kind chosen.
    fn mutate(&self, data: &mut [u8], rng: &mut Rng) -> bool {
        let sections = self.sections(data);
        if sections.is_empty() {
            return false;
        }
        match rng.below(8) {
            0..=3 => self.mutate_relocation(data, &sections, rng),
            4..=5 => self.mutate_symbol(data, &sections, rng),
            _ => self.mutate_section(data, &sections, rng),
        }
    }

    fn mutate_relocation(&self, data: &mut [u8], sections: &[Section], rng: &mut Rng) -> bool {
        let tables: Vec<&Section> = sections
            .iter()
            .filter(|s| s.kind == SHT_REL || s.kind == SHT_RELA)
            .collect();
        let Some(table) = rng.pick(&tables) else {
            return false;
        };
        let rela = table.kind == SHT_RELA;
        let entry = self.rel_size(rela);
        let Some((start, count)) = self.entries(data, table, entry) else {
            return false;
        };
        let at = start + entry * rng.below(count as u64) as usize;
        let w = self.word();
        let info = Field {
            at: at + w,
            width: w,
        };
        let Some(old_info) = self.get(data, info) else {
            return false;
        };
        // r_info: symbol << 32 | type on ELF64, symbol << 8 | type on ELF32.
        let (sym_shift, type_mask) = if self.is64 {
            (32, 0xffff_ffff)
        } else {
            (8, 0xff)
        };
        let (old_sym, old_type) = (old_info >> sym_shift, old_info & type_mask);
        match rng.below(4) {
            0 => {
                // r_offset: inside, at the end of or past the section it patches, or nudged.
                let offset = Field { at, width: w };
                let old = self.get(data, offset).unwrap_or(0);
                let patched = sections
                    .get(self.get(data, self.shdr(table.at, "info")).unwrap_or(0) as usize)
                    .map_or(0, |s| s.size);
                let value = match rng.below(4) {
                    0 => rng.below(patched.max(1)) & !3,
                    1 => patched.wrapping_sub(rng.below(9)),
                    _ => nudge(old, rng),
                };
                self.set(data, offset, value)
            }
            1 => {
                // The type: one the linker applies, another entry's, or any.
                let known = self.arch.map(known_types).unwrap_or_default();
                let new_type = match rng.below(8) {
                    0..=4 => rng.pick(known).map_or(old_type, u64::from),
                    5 => self.other_type(data, start, count, entry, type_mask, rng),
                    6 => nudge(old_type, rng),
                    _ => rng.next(),
                } & type_mask;
                self.set(data, info, old_sym << sym_shift | new_type)
            }
            2 => {
                // The symbol: any of the table's, the first past it, or far past.
                let symbols = sections
                    .get(table.link as usize)
                    .map_or(0, |s| s.size / self.sym_size() as u64);
                let new_sym = match rng.below(6) {
                    0..=3 => rng.below(symbols.max(1)),
                    4 => symbols,
                    _ => nudge(old_sym, rng),
                };
                let max_sym = if self.is64 {
                    u32::MAX.into()
                } else {
                    0xff_ffff
                };
                self.set(data, info, (new_sym & max_sym) << sym_shift | old_type)
            }
            _ if rela => {
                let addend = Field {
                    at: at + 2 * w,
                    width: w,
                };
                let old = self.get(data, addend).unwrap_or(0);
                self.set(data, addend, interesting(old, w, rng))
            }
            _ => false,
        }
    }

    /// The type of another relocation entry of the same table.
    fn other_type(
        &self,
        data: &[u8],
        start: usize,
        count: usize,
        entry: usize,
        type_mask: u64,
        rng: &mut Rng,
    ) -> u64 {
        let at = start + entry * rng.below(count as u64) as usize;
        let w = self.word();
        self.get(
            data,
            Field {
                at: at + w,
                width: w,
            },
        )
        .unwrap_or(0)
            & type_mask
    }

    fn mutate_symbol(&self, data: &mut [u8], sections: &[Section], rng: &mut Rng) -> bool {
        let tables: Vec<&Section> = sections.iter().filter(|s| s.kind == SHT_SYMTAB).collect();
        let Some(table) = rng.pick(&tables) else {
            return false;
        };
        let entry = self.sym_size();
        let Some((start, count)) = self.entries(data, table, entry) else {
            return false;
        };
        let at = start + entry * rng.below(count as u64) as usize;
        let w = self.word();
        let (value, size, info, other, shndx) = if self.is64 {
            (
                Field {
                    at: at + 8,
                    width: 8,
                },
                Field {
                    at: at + 16,
                    width: 8,
                },
                Field {
                    at: at + 4,
                    width: 1,
                },
                Field {
                    at: at + 5,
                    width: 1,
                },
                Field {
                    at: at + 6,
                    width: 2,
                },
            )
        } else {
            (
                Field {
                    at: at + 4,
                    width: 4,
                },
                Field {
                    at: at + 8,
                    width: 4,
                },
                Field {
                    at: at + 12,
                    width: 1,
                },
                Field {
                    at: at + 13,
                    width: 1,
                },
                Field {
                    at: at + 14,
                    width: 2,
                },
            )
        };
        let current = |field| self.get(data, field).unwrap_or(0);
        let (old_value, old_size, old_info, old_shndx) =
            (current(value), current(size), current(info), current(shndx));
        // The section the symbol is in, for values at and past its end.
        let section_size = sections.get(old_shndx as usize).map_or(0, |s| s.size);
        match rng.below(6) {
            0 | 1 => {
                let new = match rng.below(3) {
                    0 => section_size.wrapping_sub(rng.below(5)),
                    _ => interesting(old_value, w, rng),
                };
                self.set(data, value, new)
            }
            2 => {
                let new = match rng.below(3) {
                    0 => section_size.saturating_sub(old_value),
                    _ => interesting(old_size, w, rng),
                };
                self.set(data, size, new)
            }
            3 => {
                let new = match rng.below(3) {
                    0 => rng.pick(&SPECIAL_SHNDX).unwrap_or(0),
                    1 => self.shnum as u64 + rng.below(2),
                    _ => rng.below(self.shnum as u64),
                };
                self.set(data, shndx, new)
            }
            4 => {
                // st_info: binding LOCAL, GLOBAL, WEAK or GNU_UNIQUE; type NOTYPE to TLS or
                // GNU_IFUNC.
                let bind = rng.pick(&[0u64, 1, 2, 10]).unwrap_or(0);
                let kind = rng.pick(&[0u64, 1, 2, 3, 4, 5, 6, 10]).unwrap_or(0);
                let new = match rng.below(3) {
                    0 => bind << 4 | (old_info & 0xf),
                    1 => (old_info & 0xf0) | kind,
                    _ => bind << 4 | kind,
                };
                self.set(data, info, new)
            }
            _ => self.set(data, other, rng.below(4)),
        }
    }

    fn mutate_section(&self, data: &mut [u8], sections: &[Section], rng: &mut Rng) -> bool {
        let Some(section) = rng.pick(sections) else {
            return false;
        };
        let at = section.at;
        let field = |name| self.shdr(at, name);
        let len = data.len() as u64;
        match rng.below(10) {
            0 | 1 => {
                let new = match rng.below(4) {
                    0 => len.saturating_sub(section.size),
                    1 => rng.pick(sections).map_or(0, |s| s.offset),
                    2 => len.wrapping_sub(rng.below(8)),
                    _ => nudge(section.offset, rng),
                };
                self.set(data, field("offset"), new)
            }
            2 | 3 => {
                let new = match rng.below(5) {
                    0 => len.saturating_sub(section.offset),
                    1 => rng.pick(sections).map_or(0, |s| s.size),
                    2 => 0,
                    _ => interesting(section.size, self.word(), rng),
                };
                self.set(data, field("size"), new)
            }
            4 => {
                let new = match rng.below(4) {
                    0 => 0,
                    1 => 3 << rng.below(8),
                    _ => 1 << rng.below(41),
                };
                self.set(data, field("addralign"), new)
            }
            5 => {
                let new = match rng.below(3) {
                    0 => self.shnum as u64,
                    _ => rng.below(self.shnum as u64),
                };
                self.set(data, field("link"), new)
            }
            6 => {
                let old = self.get(data, field("info")).unwrap_or(0);
                let new = match rng.below(3) {
                    0 => self.shnum as u64,
                    1 => nudge(old, rng),
                    _ => rng.below(self.shnum as u64),
                };
                self.set(data, field("info"), new)
            }
            7 => {
                let flags = field("flags");
                let old = self.get(data, flags).unwrap_or(0);
                let flip = rng.pick(&SECTION_FLAGS).unwrap_or(0);
                self.set(data, flags, old ^ flip)
            }
            8 => {
                let kinds = [
                    SHT_PROGBITS,
                    SHT_NOBITS,
                    SHT_REL,
                    SHT_RELA,
                    SHT_SYMTAB,
                    SHT_INIT_ARRAY,
                    SHT_FINI_ARRAY,
                    SHT_GROUP,
                    SHT_SYMTAB_SHNDX,
                    SHT_MIPS_REGINFO,
                ];
                let new = rng.pick(&kinds).unwrap_or(SHT_PROGBITS);
                self.set(data, field("type"), new.into())
            }
            _ => {
                let old = self.get(data, field("entsize")).unwrap_or(0);
                let new = match rng.below(3) {
                    0 => 0,
                    1 => rng.pick(&[1u64, 4, 8, 12, 16, 24]).unwrap_or(0),
                    _ => nudge(old, rng),
                };
                self.set(data, field("entsize"), new)
            }
        }
    }
}

/// The relocation types the linker gives a meaning to on `arch`.
fn known_types(arch: ArchKind) -> &'static [u32] {
    static TYPES: OnceLock<[Vec<u32>; 4]> = OnceLock::new();
    let types = TYPES.get_or_init(|| {
        [
            ArchKind::X86_64,
            ArchKind::Aarch64,
            ArchKind::Mips { big_endian: true },
            ArchKind::Mips { big_endian: false },
        ]
        .map(|arch| {
            (0..=1100)
                .filter(|&r| arch.reloc_kind(r).is_some())
                .collect()
        })
    });
    let index = match arch {
        ArchKind::X86_64 => 0,
        ArchKind::Aarch64 => 1,
        ArchKind::Mips { big_endian: true } => 2,
        ArchKind::Mips { big_endian: false } => 3,
    };
    &types[index]
}

/// `old` moved a little: by ±1 to ±16, or by a multiple of 4 or a page.
fn nudge(old: u64, rng: &mut Rng) -> u64 {
    let delta = match rng.below(3) {
        0 => rng.below(16) + 1,
        1 => 4 * (rng.below(16) + 1),
        _ => 0x1000,
    };
    if rng.below(2) == 0 {
        old.wrapping_add(delta)
    } else {
        old.wrapping_sub(delta)
    }
}

/// A value for a `width`-byte field: a boundary (0, ±1, the signed and unsigned limits, 2^31,
/// 2^32), `old` nudged, or random.
fn interesting(old: u64, width: usize, rng: &mut Rng) -> u64 {
    let bits = 8 * width as u32;
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let sign = 1u64 << (bits - 1);
    match rng.below(4) {
        0 => rng
            .pick(&[
                0,
                1,
                max,
                max - 3,
                sign,
                sign - 1,
                0x7fff_ffff,
                0x8000_0000,
                0x1_0000_0000,
                0x8000,
                0x1_0000,
            ])
            .unwrap_or(0),
        1 | 2 => nudge(old, rng),
        _ => rng.next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_in_both_byte_orders() {
        for big_endian in [false, true] {
            let elf = Elf {
                is64: true,
                big_endian,
                arch: None,
                shoff: 0,
                shentsize: 64,
                shnum: 1,
            };
            let mut data = [0u8; 16];
            for width in [1, 2, 4, 8] {
                let field = Field { at: 3, width };
                let value = 0x1122_3344_5566_7788u64 & (u64::MAX >> (64 - 8 * width));
                assert!(elf.set(&mut data, field, value));
                assert_eq!(elf.get(&data, field), Some(value));
            }
            assert!(!elf.set(&mut data, Field { at: 12, width: 8 }, 1));
        }
    }

    #[test]
    fn mutated_objects_mostly_still_parse() {
        let object: &[u8] = include_bytes!("../../corpus/aarch64/clang/funcptr.o");
        let (mut mutated, mut parsed) = (0, 0);
        for seed in 0..400 {
            let mut data = object.to_vec();
            let size = data.len();
            let got = mutate(&mut data, size, size, seed, |_, size, _| size);
            assert_eq!(got, size);
            if data != object {
                mutated += 1;
                parsed += usize::from(dlkm_linker::Object::parse("m.o", &data).is_ok());
            }
        }
        // Half the seeds take the structured path; most of those find a field to rewrite.
        assert!(mutated > 120, "{mutated} of 400 seeds rewrote a field");
        assert!(parsed * 2 > mutated, "{parsed} of {mutated} mutants parse");
    }

    #[test]
    fn not_elf_falls_back() {
        let mut data = *b"not an object at all, not at all, no: fifty-two bytes or more";
        let size = data.len();
        for seed in 0..64 {
            let got = mutate(&mut data, size, size, seed, |_, _, _| 7);
            assert_eq!(got, 7);
        }
    }
}
