//! A debugger's view of a linked module: an ELF object whose sections sit at the addresses
//! the module was placed at, with the module's symbols and, on request, its DWARF relocated
//! there. This is what a JIT hands to gdb through its JIT interface (`__jit_debug_register_code`;
//! the loader's native machine does that for every module), and what any tool that reads ELF
//! can take to name the module's addresses.
//!
//! The object is relocatable (`ET_REL`), as the objects JIT compilers register are (LuaJIT,
//! LLVM's MCJIT): each section header's `sh_addr` is the section's load address, so a reader
//! that places sections at their addresses (gdb gives a JIT object's sections their own
//! addresses) needs no offsets; symbol values are relative to their section, as in any
//! relocatable object. Loaded sections carry no bytes (`SHT_NOBITS`: the code and data are in
//! the process, where a debugger reads them), except `.eh_frame`, whose linked bytes are
//! copied in so that a debugger can unwind through the module's frames from its call frame
//! information. The DWARF sections come from [`crate::debug_sections`], already relocated,
//! so the object has no relocation sections.

use object::elf;
use object::read::Object as _;
use object::FileFlags;

use crate::arch::ArchKind;
use crate::error::{malformed, LinkError};
use crate::input::{Object, SectionKind, SymbolType};
use crate::layout::Layout;
use crate::link::LinkOutput;
use crate::linked_symbols::LinkedSymbol;

/// An ELF object describing a linked module for debuggers; see the module documentation.
#[derive(Debug, Clone)]
pub struct DebugObject {
    /// The ELF file.
    pub bytes: Vec<u8>,
    /// Whether the module's DWARF is in it: asked for, present in the object, and every debug
    /// section relocated (a section the linker leaves out would make the rest inconsistent,
    /// so then none is included).
    pub dwarf: bool,
}

/// A section of the debug object.
struct OutSection<'a> {
    name: &'a str,
    sh_type: u32,
    flags: u32,
    address: u64,
    size: u64,
    align: u64,
    /// Contents, for the sections that have them in the file.
    bytes: Option<&'a [u8]>,
    link: u32,
    info: u32,
    entsize: u64,
}

/// The debug object of the module linked from `object` as `layout` says, at `output.base`
/// ([`crate::link()`]'s output). `eh_frames` are the linked bytes of `layout.eh_frames`, in the
/// same order (read back from the image); an `.eh_frame` without them is described like the
/// other sections, without contents. With `dwarf`, the object's `.debug_*` sections are
/// relocated to the module's addresses and included.
pub fn debug_object(
    object: &Object,
    layout: &Layout,
    output: &LinkOutput,
    eh_frames: &[&[u8]],
    dwarf: bool,
) -> Result<DebugObject, LinkError> {
    let base = output.base;
    let file = object::File::parse(object.file).map_err(|e| malformed(&object.name, e))?;
    let (os_abi, abi_version, e_flags) = match file.flags() {
        FileFlags::Elf {
            os_abi,
            abi_version,
            e_flags,
        } => (os_abi, abi_version, e_flags),
        _ => (elf::ELFOSABI_NONE, 0, 0),
    };
    let debug = if dwarf && object.has_line_table() {
        let debug = crate::debug_sections(object, layout, base, &output.imports)?;
        debug.skipped.is_empty().then_some(debug.sections)
    } else {
        None
    };

    // The sections: null, the placed ones, the DWARF, then the symbol and string tables.
    let mut sections = vec![OutSection {
        name: "",
        sh_type: elf::SHT_NULL,
        flags: 0,
        address: 0,
        size: 0,
        align: 0,
        bytes: None,
        link: 0,
        info: 0,
        entsize: 0,
    }];
    // Where each input section went among them.
    let mut placed_as = vec![None; object.sections.len()];
    for (index, offset) in layout.section_offsets.iter().enumerate() {
        let (Some(offset), Some(section)) = (offset, object.sections.get(index)) else {
            continue;
        };
        let Some(kind) = section.kind else { continue };
        placed_as[index] = Some(sections.len());
        let bytes = layout
            .eh_frames
            .iter()
            .position(|f| f.offset == *offset)
            .and_then(|i| eh_frames.get(i).copied())
            .filter(|b| b.len() as u64 == section.size);
        let flags = elf::SHF_ALLOC
            | match kind {
                SectionKind::Text => elf::SHF_EXECINSTR,
                SectionKind::Data | SectionKind::ZeroFill => elf::SHF_WRITE,
                SectionKind::ReadOnly => 0,
            };
        sections.push(OutSection {
            name: section.name,
            sh_type: match bytes {
                Some(_) if object.arch == ArchKind::X86_64 => elf::SHT_X86_64_UNWIND,
                Some(_) => elf::SHT_PROGBITS,
                None => elf::SHT_NOBITS,
            },
            flags,
            address: base.wrapping_add(*offset),
            size: section.size,
            align: section.align,
            bytes,
            link: 0,
            info: 0,
            entsize: 0,
        });
    }
    for (name, bytes) in debug.iter().flatten() {
        sections.push(OutSection {
            name,
            sh_type: elf::SHT_PROGBITS,
            flags: 0,
            address: 0,
            size: bytes.len() as u64,
            align: 1,
            bytes: Some(bytes),
            link: 0,
            info: 0,
            entsize: 0,
        });
    }
    let symtab_index = sections.len() as u32;
    if symtab_index + 3 > u32::from(elf::SHN_LORESERVE) {
        return Err(LinkError::Unsupported {
            object: object.name.clone(),
            what: format!("a debug object of {} sections", symtab_index + 3),
        });
    }

    let mut out = Out::new(object.arch);
    let (symtab, strtab, locals) = symbol_tables(object.arch, output, &sections, &placed_as);
    let word = u64::from(out.word());
    sections.push(OutSection {
        name: ".symtab",
        sh_type: elf::SHT_SYMTAB,
        flags: 0,
        address: 0,
        size: symtab.bytes.len() as u64,
        align: word,
        bytes: Some(&symtab.bytes),
        link: symtab_index + 1,
        info: locals,
        entsize: out.sym_size(),
    });
    sections.push(OutSection {
        name: ".strtab",
        sh_type: elf::SHT_STRTAB,
        flags: 0,
        address: 0,
        size: strtab.len() as u64,
        align: 1,
        bytes: Some(&strtab),
        link: 0,
        info: 0,
        entsize: 0,
    });
    let mut shstrtab = vec![0u8];
    let mut names = Vec::with_capacity(sections.len() + 1);
    for section in &sections {
        names.push(append_name(&mut shstrtab, section.name));
    }
    names.push(append_name(&mut shstrtab, ".shstrtab"));
    let shstrtab_index = sections.len() as u16;
    sections.push(OutSection {
        name: ".shstrtab",
        sh_type: elf::SHT_STRTAB,
        flags: 0,
        address: 0,
        size: shstrtab.len() as u64,
        align: 1,
        bytes: Some(&shstrtab),
        link: 0,
        info: 0,
        entsize: 0,
    });

    // The file: header, contents, section headers.
    // Room for all of it, so that the buffer is not copied as it grows (a hint: padding for
    // alignments past a page is left to growing).
    let with_bytes = sections.iter().filter(|s| s.bytes.is_some());
    let contents: usize = with_bytes
        .map(|s| s.bytes.map_or(0, <[u8]>::len) + s.align.clamp(1, 4096) as usize - 1)
        .sum();
    let headers = (sections.len() + 1) * out.section_header_size();
    out.bytes.reserve(contents + headers + out.header_size());
    out.header_placeholder();
    let mut offsets = Vec::with_capacity(sections.len());
    for section in &sections {
        match section.bytes {
            Some(bytes) => {
                out.align(section.align.max(1));
                offsets.push(out.bytes.len() as u64);
                out.bytes.extend_from_slice(bytes);
            }
            None => offsets.push(0),
        }
    }
    out.align(word);
    let shoff = out.bytes.len() as u64;
    for ((section, offset), name) in sections.iter().zip(&offsets).zip(&names) {
        out.u32(*name);
        out.u32(section.sh_type);
        out.addr(u64::from(section.flags));
        out.addr(section.address);
        out.addr(*offset);
        out.addr(section.size);
        out.u32(section.link);
        out.u32(section.info);
        out.addr(section.align);
        out.addr(section.entsize);
    }
    let header = out.header(Header {
        os_abi,
        abi_version,
        e_machine: e_machine(object.arch),
        e_flags,
        shoff,
        shnum: sections.len() as u16,
        shstrndx: shstrtab_index,
    });
    out.bytes[..header.len()].copy_from_slice(&header);
    Ok(DebugObject {
        bytes: out.bytes,
        dwarf: debug.is_some(),
    })
}

fn append_name(table: &mut Vec<u8>, name: &str) -> u32 {
    if name.is_empty() {
        return 0;
    }
    let at = table.len() as u32;
    table.extend_from_slice(name.as_bytes());
    table.push(0);
    at
}

/// The symbol and string tables of the module's symbols, and how many locals (the null
/// symbol included) come first, as ELF wants them. A symbol is relative to the placed section
/// it was defined in (`placed_as` maps input sections to `sections`); one outside every placed
/// section (COMMON, absolute) is absolute. Thread-local symbols are left out: they have no
/// address.
fn symbol_tables(
    arch: ArchKind,
    output: &LinkOutput,
    sections: &[OutSection],
    placed_as: &[Option<usize>],
) -> (Out, Vec<u8>, u32) {
    let count = output.symbols.len() + 1;
    let mut strtab = Vec::with_capacity(count + output.symbols.names_len());
    strtab.push(0);
    let mut symtab = Out::new(arch);
    symtab.bytes.reserve(count * symtab.sym_size() as usize);
    symtab.symbol(0, 0, 0, 0, 0);
    let mut locals = 1;
    for exported in [false, true] {
        let symbols = output.symbols.iter_with_sections();
        for (symbol, input) in symbols.filter(|(s, _)| s.exported == exported) {
            if symbol.ty == SymbolType::Tls {
                continue;
            }
            let name = strtab.len() as u32;
            strtab.extend_from_slice(symbol.name.as_bytes());
            strtab.push(0);
            let binding = if exported {
                elf::STB_GLOBAL
            } else {
                locals += 1;
                elf::STB_LOCAL
            };
            let ty = match symbol.ty {
                SymbolType::Function | SymbolType::IFunc => elf::STT_FUNC,
                SymbolType::Object => elf::STT_OBJECT,
                _ => elf::STT_NOTYPE,
            };
            let placed = placed_as.get(input).copied().flatten();
            let (shndx, value) = match placed.filter(|&i| holds(&sections[i], &symbol)) {
                Some(i) => (i as u16, symbol.address.wrapping_sub(sections[i].address)),
                None => (elf::SHN_ABS, symbol.address),
            };
            symtab.symbol(name, (binding << 4) | ty, shndx, value, symbol.size);
        }
    }
    (symtab, strtab, locals)
}

/// Whether `symbol` lies in the placed `section` (its end included, where a symbol marking
/// the end of a section sits).
fn holds(section: &OutSection, symbol: &LinkedSymbol) -> bool {
    symbol.address >= section.address && symbol.address - section.address <= section.size
}

fn e_machine(arch: ArchKind) -> u16 {
    match arch {
        ArchKind::X86_64 => elf::EM_X86_64,
        ArchKind::Aarch64 => elf::EM_AARCH64,
        ArchKind::Mips { .. } => elf::EM_MIPS,
    }
}

/// The ELF header's variable fields.
struct Header {
    os_abi: u8,
    abi_version: u8,
    e_machine: u16,
    e_flags: u32,
    shoff: u64,
    shnum: u16,
    shstrndx: u16,
}

/// ELF bytes in the class and byte order of an architecture.
struct Out {
    bytes: Vec<u8>,
    big_endian: bool,
    wide: bool,
}

impl Out {
    fn new(arch: ArchKind) -> Out {
        Out {
            bytes: Vec::new(),
            big_endian: arch.big_endian(),
            wide: arch.address_bits() == 64,
        }
    }

    fn word(&self) -> u32 {
        if self.wide {
            8
        } else {
            4
        }
    }

    fn header_size(&self) -> usize {
        if self.wide {
            64
        } else {
            52
        }
    }

    /// `Elf32_Shdr` or `Elf64_Shdr`.
    fn section_header_size(&self) -> usize {
        if self.wide {
            64
        } else {
            40
        }
    }

    fn sym_size(&self) -> u64 {
        if self.wide {
            24
        } else {
            16
        }
    }

    fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    fn u16(&mut self, v: u16) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }

    fn u64(&mut self, v: u64) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }

    /// An address or size: a word of the class.
    fn addr(&mut self, v: u64) {
        if self.wide {
            self.u64(v);
        } else {
            self.u32(v as u32);
        }
    }

    fn align(&mut self, align: u64) {
        let len = (self.bytes.len() as u64).next_multiple_of(align);
        self.bytes.resize(len as usize, 0);
    }

    fn header_placeholder(&mut self) {
        let size = self.header_size();
        self.bytes.resize(size, 0);
    }

    /// `Elf32_Sym` or `Elf64_Sym`.
    fn symbol(&mut self, name: u32, info: u8, shndx: u16, value: u64, size: u64) {
        self.u32(name);
        if self.wide {
            self.u8(info);
            self.u8(elf::STV_DEFAULT);
            self.u16(shndx);
            self.u64(value);
            self.u64(size);
        } else {
            self.u32(value as u32);
            self.u32(size as u32);
            self.u8(info);
            self.u8(elf::STV_DEFAULT);
            self.u16(shndx);
        }
    }

    /// The file header: a relocatable object without program headers.
    fn header(&self, h: Header) -> Vec<u8> {
        let mut out = Out {
            bytes: Vec::with_capacity(self.header_size()),
            big_endian: self.big_endian,
            wide: self.wide,
        };
        out.bytes.extend_from_slice(&elf::ELFMAG);
        out.u8(if self.wide {
            elf::ELFCLASS64
        } else {
            elf::ELFCLASS32
        });
        out.u8(if self.big_endian {
            elf::ELFDATA2MSB
        } else {
            elf::ELFDATA2LSB
        });
        out.u8(elf::EV_CURRENT);
        out.u8(h.os_abi);
        out.u8(h.abi_version);
        out.bytes.resize(16, 0);
        out.u16(elf::ET_REL);
        out.u16(h.e_machine);
        out.u32(u32::from(elf::EV_CURRENT));
        out.addr(0); // e_entry
        out.addr(0); // e_phoff
        out.addr(h.shoff);
        out.u32(h.e_flags);
        out.u16(self.header_size() as u16);
        out.u16(0); // e_phentsize
        out.u16(0); // e_phnum
        out.u16(if self.wide { 64 } else { 40 });
        out.u16(h.shnum);
        out.u16(h.shstrndx);
        out.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;
    use crate::{layout, link, ExternalKind, ExternalSymbol, LayoutOptions};
    use object::read::{ObjectSection as _, ObjectSymbol as _};

    /// Every architecture's debug object reads back: sections at their load addresses,
    /// symbols at theirs, `.eh_frame` with the linked bytes, the DWARF relocated.
    #[test]
    fn debug_objects_read_back_at_the_load_addresses() {
        for path in [
            "x86_64/gcc-pie/unwind.o",
            "x86_64/clang/zlib_driver.o",
            "aarch64/gcc-pie/unwind.o",
            "mips/gcc/unwind.o",
            "mipsel/clang/libc.o",
        ] {
            let bytes = corpus(path);
            let object = Object::parse(path, &bytes).unwrap();
            let layout = layout(&object, &LayoutOptions::default()).unwrap();
            let base = 0x1000_0000;
            let mut resolver = |_: &str| {
                Some(ExternalSymbol {
                    address: 0x1400_0000,
                    size: 0,
                    kind: ExternalKind::Function,
                })
            };
            let (image, output) = link(&object, &layout, base, &mut resolver).unwrap();
            let eh_frames: Vec<&[u8]> = layout
                .eh_frames
                .iter()
                .map(|f| &image[f.offset as usize..(f.offset + f.size) as usize])
                .collect();
            let debug = debug_object(&object, &layout, &output, &eh_frames, true).unwrap();
            assert!(debug.dwarf, "{path}: no DWARF");
            let file = object::File::parse(&*debug.bytes).unwrap();
            assert_eq!(file.kind(), object::ObjectKind::Relocatable, "{path}");
            assert_eq!(
                file.architecture(),
                object::File::parse(&*bytes).unwrap().architecture()
            );
            for (name, offset, size) in layout.map_entries(&object) {
                if name.starts_with('*') {
                    continue;
                }
                let section = file
                    .sections()
                    .find(|s| s.name() == Ok(name.as_str()) && s.address() == base + offset)
                    .unwrap_or_else(|| panic!("{path}: no {name} at {:#x}", base + offset));
                assert_eq!(section.size(), size, "{path}: {name}");
            }
            for frame in &layout.eh_frames {
                let section = file.section_by_name(".eh_frame").unwrap();
                assert_eq!(section.address(), base + frame.offset, "{path}");
                let data = section.data().unwrap();
                assert_eq!(
                    data,
                    &image[frame.offset as usize..(frame.offset + frame.size) as usize],
                    "{path}"
                );
            }
            let debug_info = file.section_by_name(".debug_info").unwrap();
            assert!(!debug_info.data().unwrap().is_empty(), "{path}");
            assert_eq!(file.section_by_name(".rela.debug_info").map(|_| ()), None);
            for linked in &output.symbols {
                let symbol = file
                    .symbols()
                    .find(|s| s.name() == Ok(linked.name))
                    .unwrap_or_else(|| panic!("{path}: no symbol {}", linked.name));
                // A relocatable object's values are relative to their section.
                let section = symbol
                    .section_index()
                    .and_then(|i| file.section_by_index(i).ok())
                    .map_or(0, |s| s.address());
                assert_eq!(
                    symbol.address() + section,
                    linked.address,
                    "{path}: {}",
                    linked.name
                );
                assert_eq!(
                    symbol.is_global(),
                    linked.exported,
                    "{path}: {}",
                    linked.name
                );
            }
        }
    }
}
