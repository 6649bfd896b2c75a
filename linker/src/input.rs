//! Parsing: one ELF relocatable object into checked, index-addressed tables.
//!
//! Nothing in the file is trusted: every index, offset and size is checked here or where it is
//! used, so that the later phases can index without panicking.

use object::elf;
use object::read::elf::{ElfFile, FileHeader, SectionHeader as _, Sym as _};
use object::read::{Object as _, ObjectSection as _};
use object::{Endianness, SectionFlags, SectionIndex, SymbolIndex};

use crate::arch::ArchKind;
use crate::error::{malformed, LinkError};
use crate::relocations::{self, Relocations};

/// Where a section goes in the image: the kinds are kept apart so each can get its own
/// protection (W^X).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SectionKind {
    Text,
    ReadOnly,
    Data,
    ZeroFill,
}

impl SectionKind {
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Text => "text",
            SectionKind::ReadOnly => "rodata",
            SectionKind::Data => "data",
            SectionKind::ZeroFill => "bss",
        }
    }
}

/// An input section. `kind` is `None` for sections that are not loaded (debug, notes that are
/// not allocated, group and symbol-table sections).
#[derive(Debug)]
pub struct Section<'data> {
    pub name: &'data str,
    pub kind: Option<SectionKind>,
    pub data: &'data [u8],
    pub size: u64,
    pub align: u64,
    pub relocs: Relocations<'data>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolDef {
    Undefined,
    Absolute,
    Common { align: u64 },
    Section(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolType {
    NoType,
    Object,
    Function,
    Section,
    File,
    Tls,
    IFunc,
    Other(u8),
}

#[derive(Debug, Clone)]
pub struct Symbol<'data> {
    pub name: &'data str,
    pub value: u64,
    pub size: u64,
    pub def: SymbolDef,
    pub global: bool,
    pub weak: bool,
    /// STV_HIDDEN or STV_INTERNAL: visible to the module's own parts only, never exported.
    pub hidden: bool,
    pub ty: SymbolType,
}

impl Symbol<'_> {
    pub(crate) fn null() -> Self {
        Symbol {
            name: "",
            value: 0,
            size: 0,
            def: SymbolDef::Undefined,
            global: false,
            weak: false,
            hidden: false,
            ty: SymbolType::NoType,
        }
    }

    /// Symbols another module or the kernel can see.
    pub fn is_exported(&self) -> bool {
        self.global
            && !self.hidden
            && !matches!(self.def, SymbolDef::Undefined)
            && !self.name.is_empty()
    }
}

/// A parsed relocatable object, ready to lay out and link.
#[derive(Debug)]
pub struct Object<'data> {
    pub name: String,
    pub arch: ArchKind,
    pub sections: Vec<Section<'data>>,
    pub symbols: Vec<Symbol<'data>>,
    /// The whole file, for what is read only on demand: the debug sections and their
    /// relocations ([`crate::debug_sections`]), which loading never looks at.
    pub file: &'data [u8],
}

impl<'data> Object<'data> {
    /// Parses `data` as an ELF relocatable object; `name` is used in error messages.
    pub fn parse(name: &str, data: &'data [u8]) -> Result<Self, LinkError> {
        let file = object::File::parse(data).map_err(|e| malformed(name, e))?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(malformed(name, "not an ELF file"));
        }
        if file.kind() != object::ObjectKind::Relocatable {
            return Err(LinkError::Unsupported {
                object: name.to_string(),
                what: format!(
                    "an ELF file of kind {:?} (only relocatable objects, ET_REL, are modules)",
                    file.kind()
                ),
            });
        }
        let e_machine = match file.flags() {
            object::FileFlags::Elf { .. } => elf_machine(data)?,
            _ => return Err(malformed(name, "no ELF header flags")),
        };
        let big_endian = file.endianness() == Endianness::Big;
        let arch = ArchKind::from_elf(e_machine, file.is_64(), big_endian).ok_or_else(|| {
            LinkError::Unsupported {
                object: name.to_string(),
                what: format!(
                    "machine {e_machine} ({}-bit, {} endian)",
                    if file.is_64() { 64 } else { 32 },
                    if big_endian { "big" } else { "little" }
                ),
            }
        })?;

        let sections = parse_sections(name, &file)?;
        let symbols = parse_symbols(name, &file, sections.len())?;
        let mut object = Object {
            name: name.to_string(),
            arch,
            sections,
            symbols,
            file: data,
        };
        object.attach_relocations(&file)?;
        Ok(object)
    }

    fn attach_relocations(&mut self, file: &object::File<'data>) -> Result<(), LinkError> {
        for target in 0..self.sections.len() {
            if self.sections[target].kind.is_some() {
                let section = &self.sections[target];
                self.sections[target].relocs =
                    self.read_relocations(file, SectionIndex(target), section.name, section.data)?;
            }
        }
        Ok(())
    }

    /// The relocations of section `index` (named `name`, holding `data`) of the file this
    /// object was parsed from, each entry checked and REL addends read.
    pub(crate) fn read_relocations(
        &self,
        file: &object::File<'data>,
        index: SectionIndex,
        name: &str,
        data: &[u8],
    ) -> Result<Relocations<'data>, LinkError> {
        let target = relocations::Target {
            object: &self.name,
            arch: self.arch,
            name,
            data,
            symbol_count: self.symbols.len(),
        };
        match file {
            object::File::Elf32(elf) => relocations::read(&target, index, elf),
            object::File::Elf64(elf) => relocations::read(&target, index, elf),
            _ => Err(malformed(&self.name, "not an ELF file")),
        }
    }

    /// The name used for a symbol in messages: section symbols get their section's name.
    pub fn symbol_display_name(&self, index: u32) -> String {
        let Some(symbol) = self.symbols.get(index as usize) else {
            return format!("<symbol #{index}>");
        };
        match (symbol.ty, symbol.def) {
            (SymbolType::Section, SymbolDef::Section(s)) => self.sections[s].name.to_string(),
            _ if symbol.name.is_empty() && index == 0 => "<none>".to_string(),
            _ => symbol.name.to_string(),
        }
    }

    /// The symbols this object defines and lets others see.
    pub fn exported_symbols(&self) -> impl Iterator<Item = &Symbol<'data>> {
        self.symbols.iter().filter(|s| s.is_exported())
    }
}

fn elf_machine(data: &[u8]) -> Result<u16, LinkError> {
    // e_machine sits at offset 18 for ELF32 and ELF64 alike, in the file's byte order.
    let bytes = data
        .get(18..20)
        .ok_or_else(|| malformed("<input>", "truncated ELF header"))?;
    let big = data.get(5) == Some(&elf::ELFDATA2MSB);
    let raw = [bytes[0], bytes[1]];
    Ok(if big {
        u16::from_be_bytes(raw)
    } else {
        u16::from_le_bytes(raw)
    })
}

fn parse_sections<'data>(
    name: &str,
    file: &object::File<'data>,
) -> Result<Vec<Section<'data>>, LinkError> {
    let mut sections: Vec<Section<'data>> = Vec::new();
    let is_mips = matches!(
        file.architecture(),
        object::Architecture::Mips | object::Architecture::Mips64
    );
    for section in file.sections() {
        let index = section.index().0;
        while sections.len() <= index {
            sections.push(Section {
                name: "",
                kind: None,
                data: &[],
                size: 0,
                align: 1,
                relocs: Relocations::default(),
            });
        }
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            return Err(malformed(name, "section without ELF flags"));
        };
        let section_name = section.name().map_err(|e| malformed(name, e))?;
        let kind = classify_section(sh_flags, section.kind(), is_mips);
        let align = section.align().max(1);
        if !align.is_power_of_two() {
            return Err(malformed(
                name,
                format!("section {section_name} has alignment {align}, not a power of two"),
            ));
        }
        let data = match kind {
            Some(SectionKind::ZeroFill) | None => &[][..],
            Some(_) => section
                .data()
                .map_err(|e| malformed(name, format!("section {section_name}: {e}")))?,
        };
        sections[index] = Section {
            name: section_name,
            kind,
            data,
            size: section.size(),
            align,
            relocs: Relocations::default(),
        };
    }
    Ok(sections)
}

/// `.MIPS.abiflags`, which the `object` crate does not name.
const SHT_MIPS_ABIFLAGS: u32 = 0x7000_002a;

/// Allocated MIPS sections that tell a static linker about the object rather than hold
/// anything the code uses (register usage, ABI flags); a linker merges them into its own.
fn is_mips_metadata(kind: object::SectionKind) -> bool {
    matches!(
        kind,
        object::SectionKind::Elf(elf::SHT_MIPS_REGINFO | elf::SHT_MIPS_OPTIONS | SHT_MIPS_ABIFLAGS)
    )
}

fn classify_section(
    sh_flags: u64,
    kind: object::SectionKind,
    is_mips: bool,
) -> Option<SectionKind> {
    let flags = sh_flags as u32;
    if flags & elf::SHF_ALLOC == 0 || (is_mips && is_mips_metadata(kind)) {
        return None;
    }
    if flags & elf::SHF_TLS != 0 {
        // Loaded only to report a clear error if anything refers to it.
        return Some(SectionKind::Data);
    }
    Some(if flags & elf::SHF_EXECINSTR != 0 {
        SectionKind::Text
    } else if kind == object::SectionKind::UninitializedData {
        SectionKind::ZeroFill
    } else if flags & elf::SHF_WRITE != 0 {
        SectionKind::Data
    } else {
        SectionKind::ReadOnly
    })
}

fn parse_symbols<'data>(
    name: &str,
    file: &object::File<'data>,
    section_count: usize,
) -> Result<Vec<Symbol<'data>>, LinkError> {
    match file {
        object::File::Elf32(elf) => elf_symbols(name, elf, section_count),
        object::File::Elf64(elf) => elf_symbols(name, elf, section_count),
        _ => Err(malformed(name, "not an ELF file")),
    }
}

/// The symbol table read straight from the ELF entries, index for index (entry 0 the null
/// symbol).
fn elf_symbols<'data, Elf: FileHeader<Endian = Endianness>>(
    name: &str,
    elf: &ElfFile<'data, Elf>,
    section_count: usize,
) -> Result<Vec<Symbol<'data>>, LinkError> {
    let endian = elf.endian();
    let table = elf.elf_symbol_table();
    let names = match table.symbols() {
        [] => SymbolNames::new(&[]),
        _ => {
            let header = (elf.elf_section_table())
                .section(table.string_section())
                .map_err(|e| malformed(name, e))?;
            let bytes = (header.data(endian, elf.data()))
                .map_err(|e| malformed(name, format!("symbol names: {e}")))?;
            SymbolNames::new(bytes)
        }
    };
    let mut symbols = Vec::with_capacity(table.len().max(1));
    symbols.push(Symbol::null());
    for (index, sym) in table.symbols().iter().enumerate().skip(1) {
        let symbol_name = names
            .get(sym.st_name(endian))
            .ok_or_else(|| malformed(name, format!("symbol #{index} has no readable name")))?;
        let ty = match sym.st_type() {
            elf::STT_NOTYPE => SymbolType::NoType,
            elf::STT_OBJECT | elf::STT_COMMON => SymbolType::Object,
            elf::STT_FUNC => SymbolType::Function,
            elf::STT_SECTION => SymbolType::Section,
            elf::STT_FILE => SymbolType::File,
            elf::STT_TLS => SymbolType::Tls,
            elf::STT_GNU_IFUNC => SymbolType::IFunc,
            other => SymbolType::Other(other),
        };
        let value: u64 = sym.st_value(endian).into();
        let def = match sym.st_shndx(endian) {
            elf::SHN_UNDEF => SymbolDef::Undefined,
            // A file symbol's absolute index means no section, not an address.
            elf::SHN_ABS if ty == SymbolType::File => SymbolDef::Undefined,
            elf::SHN_ABS => SymbolDef::Absolute,
            elf::SHN_COMMON => {
                let align = value.max(1);
                if !align.is_power_of_two() {
                    return Err(malformed(
                        name,
                        format!("COMMON symbol {symbol_name} has alignment {align}"),
                    ));
                }
                SymbolDef::Common { align }
            }
            elf::SHN_XINDEX => match table.shndx(endian, SymbolIndex(index)) {
                Some(0) | None => SymbolDef::Undefined,
                Some(s) => defined_in(name, symbol_name, s as usize, section_count)?,
            },
            s if s < elf::SHN_LORESERVE => {
                defined_in(name, symbol_name, s as usize, section_count)?
            }
            // Other reserved indexes (processor-specific commons) name no section here; a
            // reference to such a symbol is resolved like any undefined one.
            _ => SymbolDef::Undefined,
        };
        symbols.push(Symbol {
            name: symbol_name,
            value,
            size: sym.st_size(endian).into(),
            def,
            global: sym.st_bind() != elf::STB_LOCAL,
            weak: sym.st_bind() == elf::STB_WEAK,
            hidden: matches!(sym.st_other() & 0x3, elf::STV_HIDDEN | elf::STV_INTERNAL),
            ty,
        });
    }
    Ok(symbols)
}

/// A string table's names as `str`s. The table is checked for UTF-8 once, whole, and a name
/// is then a slice of it; one that is not UTF-8 throughout has its names checked one by one.
struct SymbolNames<'data> {
    bytes: &'data [u8],
    text: Option<&'data str>,
}

impl<'data> SymbolNames<'data> {
    fn new(bytes: &'data [u8]) -> Self {
        SymbolNames {
            bytes,
            text: std::str::from_utf8(bytes).ok(),
        }
    }

    /// The NUL-terminated name at `offset`, if it is inside the table and UTF-8.
    fn get(&self, offset: u32) -> Option<&'data str> {
        let start = offset as usize;
        let len = memchr::memchr(0, self.bytes.get(start..)?)?;
        match self.text {
            Some(text) => text.get(start..start + len),
            None => std::str::from_utf8(&self.bytes[start..start + len]).ok(),
        }
    }
}

/// A symbol defined in section `index`, which must exist.
fn defined_in(
    object: &str,
    symbol: &str,
    index: usize,
    section_count: usize,
) -> Result<SymbolDef, LinkError> {
    if index >= section_count {
        return Err(malformed(
            object,
            format!("symbol {symbol} is in section #{index}, which does not exist"),
        ));
    }
    Ok(SymbolDef::Section(index))
}

#[cfg(test)]
mod tests {
    use super::SymbolNames;

    #[test]
    fn symbol_names_are_read_whether_or_not_the_whole_table_is_utf8() {
        let whole = SymbolNames::new(b"\0main\0caf\xc3\xa9\0");
        assert_eq!(whole.get(1), Some("main"));
        assert_eq!(whole.get(6), Some("caf\u{e9}"));
        // Into the middle of a character: not a name.
        assert_eq!(whole.get(10), None);
        assert_eq!(whole.get(11), Some(""));
        assert_eq!(whole.get(12), None);
        let broken = SymbolNames::new(b"\0main\0\xff\0tail");
        assert_eq!(broken.get(1), Some("main"));
        assert_eq!(broken.get(6), None);
        // Without its terminating NUL.
        assert_eq!(broken.get(8), None);
    }
}
