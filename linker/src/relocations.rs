//! A section's relocations, checked once when the object is parsed and walked by every later
//! pass.
//!
//! RELA entries carry everything a pass needs, so they are read where they lie in the file each
//! time they are walked: SQLite's 10,700 of them (257 KiB) are never copied, which a load into a
//! fresh process pays for page by page. REL entries keep their addends in the bytes they
//! relocate (and MIPS pairs HI16 with LO16 to read them), so they are read once into a vector
//! with the addends filled in.

use object::elf;
use object::read::elf::{ElfFile, FileHeader, Rel as _, Rela as RelaEntry, SectionHeader as _};
use object::{Endianness, SectionIndex};

use crate::arch::{Arch, ArchKind};
use crate::error::{malformed, LinkError};

/// One relocation entry. The offset is within its section (checked when read), so 32 bits are
/// enough: 24 bytes, as a RELA64 entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reloc {
    pub addend: i64,
    pub offset: u32,
    pub r_type: u32,
    pub symbol: u32,
    /// A REL entry: `addend` was read from the relocated place.
    pub implicit_addend: bool,
}

const _: () = assert!(std::mem::size_of::<Reloc>() == 24);

impl Reloc {
    /// The offset of the relocated place in its section.
    #[inline]
    pub fn place(&self) -> u64 {
        u64::from(self.offset)
    }
}

/// The relocations that apply to one section. Only [`Object::parse`](crate::Object::parse)
/// makes them, and it checks every entry: each offset fits in 32 bits and each symbol index is
/// inside the symbol table, so the passes can index with them.
#[derive(Debug, Clone, Default)]
pub struct Relocations<'data> {
    table: Table<'data>,
}

#[derive(Debug, Clone, Default)]
enum Table<'data> {
    #[default]
    Empty,
    /// Little-endian RELA entries, as they lie in the file.
    Rela64(&'data [elf::Rela64<Endianness>]),
    Rela32(&'data [elf::Rela32<Endianness>]),
    /// REL entries with their addends read, big-endian RELA entries, or more than one
    /// relocation section for the same target (which no compiler emits, but ELF allows).
    Read(Vec<Reloc>),
}

impl Relocations<'_> {
    pub fn len(&self) -> usize {
        match &self.table {
            Table::Empty => 0,
            Table::Rela64(entries) => entries.len(),
            Table::Rela32(entries) => entries.len(),
            Table::Read(relocs) => relocs.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The relocations in file order, a slice at a time, for the passes over every one of
    /// them: their loop is over plain `Reloc`s whatever the table's form, which is matched
    /// once per slice rather than once per entry.
    #[inline]
    pub(crate) fn slices(&self) -> Slices<'_> {
        Slices {
            table: &self.table,
            next: 0,
            buffer: [Reloc::default(); DECODED_SLICE],
        }
    }

    /// The relocations in file order, one at a time.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            entries: match &self.table {
                Table::Empty => Entries::Read([].iter()),
                Table::Rela64(entries) => Entries::Rela64(entries.iter()),
                Table::Rela32(entries) => Entries::Rela32(entries.iter()),
                Table::Read(relocs) => Entries::Read(relocs.iter()),
            },
        }
    }
}

impl<'a> IntoIterator for &'a Relocations<'_> {
    type Item = Reloc;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// How many RELA entries [`Slices`] decodes at a time: 1.5 KiB of stack, well inside the L1
/// cache.
const DECODED_SLICE: usize = 64;

/// Walks a table a slice at a time (`while let Some(relocs) = slices.next()`): a vector's
/// entries in one slice, RELA entries decoded into a buffer [`DECODED_SLICE`] at a time.
pub(crate) struct Slices<'a> {
    table: &'a Table<'a>,
    next: usize,
    buffer: [Reloc; DECODED_SLICE],
}

impl Slices<'_> {
    #[inline]
    #[allow(clippy::should_implement_trait)] // each slice borrows the walker: not an Iterator
    pub(crate) fn next(&mut self) -> Option<&[Reloc]> {
        match self.table {
            Table::Empty => None,
            Table::Rela64(entries) => decode_next(entries, &mut self.next, &mut self.buffer),
            Table::Rela32(entries) => decode_next(entries, &mut self.next, &mut self.buffer),
            Table::Read(relocs) => {
                let rest = relocs.get(self.next..).filter(|rest| !rest.is_empty())?;
                self.next = relocs.len();
                Some(rest)
            }
        }
    }
}

#[inline]
fn decode_next<'b, R: RelaEntry<Endian = Endianness>>(
    entries: &[R],
    next: &mut usize,
    buffer: &'b mut [Reloc; DECODED_SLICE],
) -> Option<&'b [Reloc]>
where
    R::Word: Into<u64>,
    R::Sword: Into<i64>,
{
    let rest = entries.get(*next..).filter(|rest| !rest.is_empty())?;
    let chunk = &rest[..rest.len().min(DECODED_SLICE)];
    for (decoded, entry) in buffer.iter_mut().zip(chunk) {
        *decoded = rela(entry);
    }
    *next += chunk.len();
    Some(&buffer[..chunk.len()])
}

/// The relocations of a section in file order, decoded one at a time.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    entries: Entries<'a>,
}

#[derive(Debug, Clone)]
enum Entries<'a> {
    Rela64(std::slice::Iter<'a, elf::Rela64<Endianness>>),
    Rela32(std::slice::Iter<'a, elf::Rela32<Endianness>>),
    Read(std::slice::Iter<'a, Reloc>),
}

impl Iterator for Iter<'_> {
    type Item = Reloc;

    #[inline]
    fn next(&mut self) -> Option<Reloc> {
        match &mut self.entries {
            Entries::Rela64(entries) => entries.next().map(rela),
            Entries::Rela32(entries) => entries.next().map(rela),
            Entries::Read(relocs) => relocs.next().copied(),
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = match &self.entries {
            Entries::Rela64(entries) => entries.len(),
            Entries::Rela32(entries) => entries.len(),
            Entries::Read(relocs) => relocs.len(),
        };
        (len, Some(len))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// A little-endian RELA entry of a table `read` checked: the offset fits in 32 bits, so the
/// cast keeps it whole. (The byte order is a constant here, so reading a field is one load.)
#[inline]
fn rela<R: RelaEntry<Endian = Endianness>>(entry: &R) -> Reloc
where
    R::Word: Into<u64>,
    R::Sword: Into<i64>,
{
    decode_rela(entry, Endianness::Little)
}

#[inline]
fn decode_rela<R: RelaEntry<Endian = Endianness>>(entry: &R, endian: Endianness) -> Reloc
where
    R::Word: Into<u64>,
    R::Sword: Into<i64>,
{
    Reloc {
        addend: entry.r_addend(endian).into(),
        offset: entry.r_offset(endian).into() as u32,
        r_type: entry.r_type(endian, false),
        symbol: entry.r_sym(endian, false),
        implicit_addend: false,
    }
}

/// What checking a section's relocations needs to know of its object.
pub(crate) struct Target<'a> {
    pub object: &'a str,
    pub arch: ArchKind,
    /// The section relocated: its name for messages, its bytes for REL addends.
    pub name: &'a str,
    pub data: &'a [u8],
    pub symbol_count: usize,
}

/// The relocations of section `index`: every relocation section that applies to it through
/// the symbol table the object uses, each entry checked. A relocation section whose bytes lie
/// outside the file or do not divide into entries is an error, not a section without
/// relocations.
pub(crate) fn read<'data, Elf: FileHeader<Endian = Endianness>>(
    target: &Target,
    index: SectionIndex,
    elf: &ElfFile<'data, Elf>,
) -> Result<Relocations<'data>, LinkError> {
    let (endian, data) = (elf.endian(), elf.data());
    let sections = elf.elf_section_table();
    let mut found = Vec::new();
    let mut at = index;
    while let Some(next) = elf.elf_relocation_sections().get(at) {
        at = next;
        let header = sections
            .section(at)
            .map_err(|e| malformed(target.object, e))?;
        let place = |e: object::Error| {
            let name = sections.section_name(endian, header).unwrap_or(b"?");
            malformed(
                target.object,
                format!(
                    "relocation section {} (#{}): {e}",
                    String::from_utf8_lossy(name),
                    at.0
                ),
            )
        };
        let table = match header.sh_type(endian) {
            elf::SHT_RELA if Elf::is_type_64_sized() => {
                let entries: &[elf::Rela64<Endianness>] =
                    header.data_as_array(endian, data).map_err(place)?;
                rela_table(target, entries, endian, Table::Rela64)?
            }
            elf::SHT_RELA => {
                let entries: &[elf::Rela32<Endianness>] =
                    header.data_as_array(endian, data).map_err(place)?;
                rela_table(target, entries, endian, Table::Rela32)?
            }
            elf::SHT_REL => {
                let entries: &[Elf::Rel] = header.data_as_array(endian, data).map_err(place)?;
                let mut relocs = Vec::with_capacity(entries.len());
                for r in entries {
                    let symbol = r.r_sym(endian);
                    relocs.push(Reloc {
                        addend: 0,
                        offset: checked_offset(target, r.r_offset(endian).into(), symbol)?,
                        r_type: r.r_type(endian),
                        symbol,
                        implicit_addend: true,
                    });
                }
                Table::Read(relocs)
            }
            _ => continue,
        };
        found.push(Relocations { table });
    }
    let mut relocations = match found.len() {
        0 => Relocations::default(),
        1 => found.remove(0),
        _ => Relocations {
            table: Table::Read(found.iter().flat_map(Relocations::iter).collect()),
        },
    };
    if let Table::Read(relocs) = &mut relocations.table {
        read_implicit_addends(target, relocs)?;
    }
    Ok(relocations)
}

/// Checks RELA entries; big-endian ones are read into a vector, so that walking a table
/// in the file needs no byte swapping.
fn rela_table<'data, R: RelaEntry<Endian = Endianness>>(
    target: &Target,
    entries: &'data [R],
    endian: Endianness,
    in_file: fn(&'data [R]) -> Table<'data>,
) -> Result<Table<'data>, LinkError>
where
    R::Word: Into<u64>,
    R::Sword: Into<i64>,
{
    for r in entries {
        checked_offset(target, r.r_offset(endian).into(), r.r_sym(endian, false))?;
    }
    Ok(match endian {
        Endianness::Little => in_file(entries),
        Endianness::Big => Table::Read(entries.iter().map(|r| decode_rela(r, endian)).collect()),
    })
}

/// The offset of an entry whose offset fits in 32 bits and whose symbol index is inside the
/// table.
#[inline]
fn checked_offset(target: &Target, offset: u64, symbol: u32) -> Result<u32, LinkError> {
    match u32::try_from(offset) {
        Ok(offset) if (symbol as usize) < target.symbol_count => Ok(offset),
        _ => Err(bad_reloc(target, offset, symbol)),
    }
}

#[cold]
fn bad_reloc(target: &Target, offset: u64, symbol: u32) -> LinkError {
    let problem = if symbol as usize >= target.symbol_count {
        format!(
            "names symbol index {symbol}, the table has {}",
            target.symbol_count
        )
    } else {
        "lies past the end of its section".to_string()
    };
    malformed(
        target.object,
        format!("relocation at {}+{offset:#x} {problem}", target.name),
    )
}

/// REL relocations keep their addends in the bytes they relocate: reads them into `relocs`.
fn read_implicit_addends(target: &Target, relocs: &mut [Reloc]) -> Result<(), LinkError> {
    if relocs.iter().any(|r| r.implicit_addend) {
        crate::with_arch!(target.arch, A => A::implicit_addends(target.data, relocs))
            .map_err(|e| malformed(target.object, format!("section {}: {e}", target.name)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;
    use crate::Object;
    use object::read::{Object as _, ObjectSection as _};
    use object::{RelocationFlags, RelocationTarget};

    fn walked(relocations: &Relocations) -> Vec<Reloc> {
        let mut all = Vec::new();
        let mut slices = relocations.slices();
        while let Some(relocs) = slices.next() {
            assert!(!relocs.is_empty() && relocs.len() <= relocations.len().max(DECODED_SLICE));
            all.extend_from_slice(relocs);
        }
        all
    }

    fn fields(r: &Reloc) -> (u32, u32, u32, i64, bool) {
        (r.offset, r.r_type, r.symbol, r.addend, r.implicit_addend)
    }

    /// Each loaded section's relocations, walked either way, are the entries the `object`
    /// crate decodes from the file, in the same order: RELA tables read in place (x86_64,
    /// aarch64) and REL tables read into a vector (MIPS, both byte orders).
    #[test]
    fn walks_agree_with_the_object_crate_on_real_objects() {
        for (path, in_place) in [
            ("x86_64/gcc-pie/sqlite.o", true),
            ("aarch64/gcc-pie/sqlite.o", true),
            ("mips/gcc/sqlite.o", false),
            ("mipsel/gcc/sqlite.o", false),
        ] {
            let bytes = corpus(path);
            let object = Object::parse(path, &bytes).unwrap();
            let file = object::File::parse(&*bytes).unwrap();
            let mut total = 0;
            for section in file.sections() {
                let ours = &object.sections[section.index().0];
                if ours.kind.is_none() {
                    continue;
                }
                assert_eq!(
                    matches!(ours.relocs.table, Table::Rela64(_)),
                    in_place && !ours.relocs.is_empty(),
                    "{path}"
                );
                let theirs: Vec<(u32, u32, u32, i64)> = section
                    .relocations()
                    .map(|(offset, r)| {
                        let RelocationFlags::Elf { r_type } = r.flags() else {
                            panic!("not ELF")
                        };
                        let RelocationTarget::Symbol(symbol) = r.target() else {
                            panic!("{path}: a relocation without a symbol")
                        };
                        (offset as u32, r_type, symbol.0 as u32, r.addend())
                    })
                    .collect();
                let iterated: Vec<Reloc> = ours.relocs.iter().collect();
                assert_eq!(iterated.len(), ours.relocs.len());
                let walked = walked(&ours.relocs);
                assert_eq!(
                    walked.iter().map(fields).collect::<Vec<_>>(),
                    iterated.iter().map(fields).collect::<Vec<_>>(),
                    "{path} {}",
                    ours.name
                );
                let as_theirs = |r: &Reloc| {
                    // REL addends are read from the code, which `object` leaves at 0.
                    let addend = if r.implicit_addend { 0 } else { r.addend };
                    (r.offset, r.r_type, r.symbol, addend)
                };
                assert_eq!(
                    iterated.iter().map(as_theirs).collect::<Vec<_>>(),
                    theirs,
                    "{path} {}",
                    ours.name
                );
                assert!(iterated.iter().all(|r| r.implicit_addend != in_place));
                total += iterated.len();
            }
            assert!(total > 5_000, "{path}: {total} relocations");
        }
    }

    /// The slices of a table in the file cover it exactly, across the buffer's boundary.
    #[test]
    fn slices_cover_tables_of_every_length_around_the_buffer() {
        for len in [
            0,
            1,
            DECODED_SLICE - 1,
            DECODED_SLICE,
            DECODED_SLICE + 1,
            3 * DECODED_SLICE + 5,
        ] {
            let mut bytes = Vec::new();
            for i in 0..len as u64 {
                bytes.extend_from_slice(&(i * 4).to_le_bytes()); // r_offset
                bytes.extend_from_slice(&((i % 7) << 32 | 2).to_le_bytes()); // r_info
                bytes.extend_from_slice(&(-(i as i64)).to_le_bytes()); // r_addend
            }
            let (entries, _) =
                object::pod::slice_from_bytes::<elf::Rela64<Endianness>>(&bytes, len).unwrap();
            let relocations = Relocations {
                table: Table::Rela64(entries),
            };
            let walked = walked(&relocations);
            assert_eq!(walked.len(), len);
            for (i, r) in walked.iter().enumerate() {
                assert_eq!(
                    fields(r),
                    (i as u32 * 4, 2, i as u32 % 7, -(i as i64), false)
                );
            }
            assert_eq!(relocations.iter().count(), len);
        }
    }
}
