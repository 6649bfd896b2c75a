//! Debug sections relocated for the module's address (`debug_sections`), on small objects
//! written with `object::write`: each test states the value the relocation's formula gives and
//! checks the bytes; relocations that do not belong in debug information leave their section
//! out with the reason. (`tests/tests/debug_sections.rs` compares the corpus with ld.lld.)

mod common;

use dlkm_linker::{
    debug_sections, layout, link, ExternalKind, ExternalSymbol, LayoutOptions, LinkError, Object,
};
use object::write::{self, StandardSection, Symbol, SymbolSection};
use object::{elf, Architecture, BinaryFormat, Endianness, SectionFlags};
use object::{SectionKind, SymbolFlags, SymbolKind, SymbolScope};

const BASE: u64 = 0x4000_0000;
/// Where the kernel's `ext` is.
const EXT: u64 = 0x7000_1000;

struct Builder {
    obj: write::Object<'static>,
    text: write::SectionId,
}

impl Builder {
    fn new(arch: Architecture, endian: Endianness) -> Self {
        let mut obj = write::Object::new(BinaryFormat::Elf, arch, endian);
        let text = obj.section_id(StandardSection::Text);
        obj.append_section_data(text, &[0; 32], 16);
        Builder { obj, text }
    }

    fn debug(&mut self, name: &str, bytes: &[u8]) -> write::SectionId {
        let id = self
            .obj
            .add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Debug);
        self.obj.append_section_data(id, bytes, 1);
        id
    }

    fn symbol(&mut self, name: &str, section: SymbolSection, value: u64) -> write::SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section,
            flags: SymbolFlags::None,
        })
    }

    fn function(&mut self, name: &str, value: u64) -> write::SymbolId {
        self.symbol(name, SymbolSection::Section(self.text), value)
    }

    fn reloc(
        &mut self,
        section: write::SectionId,
        offset: u64,
        symbol: write::SymbolId,
        addend: i64,
        r_type: u32,
    ) {
        common::add_reloc(&mut self.obj, section, offset, symbol, addend, r_type);
    }

    fn bytes(&self) -> Vec<u8> {
        self.obj.write().expect("write object")
    }
}

/// Links `bytes` at [`BASE`] with `ext` in the kernel, then relocates its debug sections.
fn relocate(bytes: &[u8]) -> (Object<'_>, u64, dlkm_linker::DebugSections) {
    let object = Object::parse("test.o", bytes).expect("parse");
    let layout = layout(&object, &LayoutOptions::default()).expect("layout");
    let mut kernel = |name: &str| {
        (name == "ext").then_some(ExternalSymbol {
            address: EXT,
            size: 0,
            kind: ExternalKind::Function,
        })
    };
    let (_, output) = link(&object, &layout, BASE, &mut kernel).expect("link");
    let text = object
        .sections
        .iter()
        .position(|s| s.name == ".text")
        .expect(".text");
    let text_address = BASE + layout.section_offsets[text].expect("placed");
    let debug = debug_sections(&object, &layout, BASE, &output.imports).expect("debug sections");
    (object, text_address, debug)
}

#[test]
fn x86_64_addresses_and_offsets() {
    let mut b = Builder::new(Architecture::X86_64, Endianness::Little);
    let f = b.function("f", 4);
    let text = b.text;
    let text_symbol = b.obj.section_symbol(text);
    let ext = b.symbol("ext", SymbolSection::Undefined, 0);
    // The code calls ext, so the link binds it.
    b.reloc(text, 0, ext, -4, elf::R_X86_64_PLT32);
    let strings = b.debug(".debug_str", b"hello\0world\0");
    let string_symbol = b.obj.section_symbol(strings);
    let info = b.debug(".debug_info", &[0xaa; 28]);
    b.reloc(info, 0, f, 2, elf::R_X86_64_64);
    b.reloc(info, 8, string_symbol, 6, elf::R_X86_64_32);
    b.reloc(info, 12, text_symbol, 0x10, elf::R_X86_64_64);
    b.reloc(info, 20, ext, 0, elf::R_X86_64_64);
    b.debug(".debug_line", &[0; 8]);
    let bytes = b.bytes();
    let (object, text_address, debug) = relocate(&bytes);
    assert!(object.has_line_table());
    assert!(debug.skipped.is_empty(), "{:?}", debug.skipped);
    let info = debug.get(".debug_info").expect(".debug_info");
    // S + A: f at .text+4, plus 2; "world" at .debug_str+6; .text+0x10; the import.
    assert_eq!(info[0..8], (text_address + 4 + 2).to_le_bytes());
    assert_eq!(info[8..12], 6u32.to_le_bytes());
    assert_eq!(info[12..20], (text_address + 0x10).to_le_bytes());
    assert_eq!(info[20..28], EXT.to_le_bytes());
    assert_eq!(debug.get(".debug_str"), Some(&b"hello\0world\0"[..]));
    assert_eq!(debug.get(".debug_line"), Some(&[0u8; 8][..]));
}

#[test]
fn x86_64_unsupported_kinds_leave_their_section_out() {
    let mut b = Builder::new(Architecture::X86_64, Endianness::Little);
    let f = b.function("f", 0);
    let info = b.debug(".debug_info", &[0; 8]);
    b.reloc(info, 0, f, 0, elf::R_X86_64_64);
    let line = b.debug(".debug_line", &[0; 8]);
    b.reloc(line, 0, f, 0, elf::R_X86_64_PC32);
    let frame = b.debug(".debug_frame", &[0; 8]);
    b.reloc(frame, 0, f, 0, elf::R_X86_64_DTPOFF32);
    let bytes = b.bytes();
    let (_, _, debug) = relocate(&bytes);
    assert!(debug.get(".debug_info").is_some());
    assert!(debug.get(".debug_line").is_none());
    let reasons: Vec<(&str, &LinkError)> = debug
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), &s.reason))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    let (name, reason) = reasons[0];
    assert_eq!(name, ".debug_line");
    assert!(
        matches!(reason, LinkError::UnsupportedRelocation { site, .. } if site.reloc == "R_X86_64_PC32" && site.section == ".debug_line"),
        "{reason}"
    );
    assert!(reason.to_string().contains("absolute"), "{reason}");
    // TLS is refused by the code's own table, with its advice.
    let (name, reason) = reasons[1];
    assert_eq!(name, ".debug_frame");
    assert!(reason.to_string().contains("thread-local"), "{reason}");
}

#[test]
fn undefined_symbols_only_debug_information_names_are_not_guessed() {
    let mut b = Builder::new(Architecture::X86_64, Endianness::Little);
    let nowhere = b.symbol("nowhere", SymbolSection::Undefined, 0);
    let info = b.debug(".debug_info", &[0; 8]);
    b.reloc(info, 0, nowhere, 0, elf::R_X86_64_64);
    let bytes = b.bytes();
    let (_, _, debug) = relocate(&bytes);
    assert_eq!(debug.skipped.len(), 1);
    assert!(
        matches!(&debug.skipped[0].reason, LinkError::BadRelocation { detail, .. } if detail.contains("not resolved")),
        "{}",
        debug.skipped[0].reason
    );
}

#[test]
fn fields_outside_the_section_and_values_out_of_range() {
    let mut b = Builder::new(Architecture::X86_64, Endianness::Little);
    let f = b.function("f", 0);
    let info = b.debug(".debug_info", &[0; 8]);
    b.reloc(info, 4, f, 0, elf::R_X86_64_64);
    // A 32-bit field cannot hold the module's address above 4 GiB: never a silent wrap.
    let aranges = b.debug(".debug_aranges", &[0; 4]);
    b.reloc(aranges, 0, f, 0x1_0000_0000, elf::R_X86_64_32);
    let bytes = b.bytes();
    let (_, _, debug) = relocate(&bytes);
    let reason = |name: &str| {
        &debug
            .skipped
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not skipped"))
            .reason
    };
    assert!(matches!(
        reason(".debug_info"),
        LinkError::BadRelocation { .. }
    ));
    assert!(matches!(
        reason(".debug_aranges"),
        LinkError::OutOfRange { .. }
    ));
}

#[test]
fn compressed_sections_are_left_out() {
    let mut b = Builder::new(Architecture::X86_64, Endianness::Little);
    let info = b.debug(".debug_info", &[0; 8]);
    b.obj.section_mut(info).flags = SectionFlags::Elf {
        sh_flags: u64::from(elf::SHF_COMPRESSED),
    };
    let bytes = b.bytes();
    let (_, _, debug) = relocate(&bytes);
    assert!(debug.sections.is_empty());
    assert!(debug.skipped[0].reason.to_string().contains("compressed"));
}

#[test]
fn aarch64_abs64_and_abs32() {
    let mut b = Builder::new(Architecture::Aarch64, Endianness::Little);
    let f = b.function("f", 8);
    let strings = b.debug(".debug_str", b"a\0b\0");
    let string_symbol = b.obj.section_symbol(strings);
    let info = b.debug(".debug_info", &[0; 12]);
    b.reloc(info, 0, f, 0, elf::R_AARCH64_ABS64);
    b.reloc(info, 8, string_symbol, 2, elf::R_AARCH64_ABS32);
    let bytes = b.bytes();
    let (_, text_address, debug) = relocate(&bytes);
    assert!(debug.skipped.is_empty(), "{:?}", debug.skipped);
    let info = debug.get(".debug_info").expect(".debug_info");
    assert_eq!(info[0..8], (text_address + 8).to_le_bytes());
    assert_eq!(info[8..12], 2u32.to_le_bytes());
}

/// MIPS objects are REL: the addend is in the relocated word, in the object's byte order.
#[test]
fn mips_rel_addends_in_place_both_byte_orders() {
    for endian in [Endianness::Big, Endianness::Little] {
        let mut b = Builder::new(Architecture::Mips, endian);
        let text = b.text;
        let text_symbol = b.obj.section_symbol(text);
        let strings = b.debug(".debug_str", b"x\0yz\0");
        let string_symbol = b.obj.section_symbol(strings);
        let info = b.debug(".debug_info", &[0; 8]);
        b.reloc(info, 0, text_symbol, 0x14, elf::R_MIPS_32);
        b.reloc(info, 4, string_symbol, 2, elf::R_MIPS_32);
        let bytes = b.bytes();
        let (object, text_address, debug) = relocate(&bytes);
        assert_eq!(object.arch.big_endian(), endian == Endianness::Big);
        assert!(debug.skipped.is_empty(), "{:?}", debug.skipped);
        let info = debug.get(".debug_info").expect(".debug_info");
        let word = |value: u32| match endian {
            Endianness::Big => value.to_be_bytes(),
            Endianness::Little => value.to_le_bytes(),
        };
        assert_eq!(info[0..4], word(text_address as u32 + 0x14), "{endian:?}");
        assert_eq!(info[4..8], word(2), "{endian:?}");
    }
}

#[test]
fn objects_without_a_line_table() {
    let b = Builder::new(Architecture::X86_64, Endianness::Little);
    let bytes = b.bytes();
    let (object, _, debug) = relocate(&bytes);
    assert!(!object.has_line_table());
    assert!(debug.sections.is_empty() && debug.skipped.is_empty());
}
