//! x86_64 relocations on small objects written with `object::write`: each test states the
//! instruction bytes and the value the psABI formula gives, and checks what the linker wrote.

mod common;

use dlkm_linker::{layout, link, ExternalKind, ExternalSymbol, LayoutOptions, LinkError, Object};
use object::write::{self, StandardSection, Symbol, SymbolSection};
use object::{elf, Architecture, BinaryFormat, Endianness, SymbolFlags};
use object::{SymbolKind, SymbolScope};

/// Builds a relocatable x86_64 object with one text section.
struct Builder {
    obj: write::Object<'static>,
    text: write::SectionId,
}

impl Builder {
    fn new(code: &[u8]) -> Self {
        let mut obj =
            write::Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = obj.section_id(StandardSection::Text);
        obj.append_section_data(text, code, 16);
        Builder { obj, text }
    }

    fn function(&mut self, name: &str, offset: u64, size: u64) -> write::SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: offset,
            size,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(self.text),
            flags: SymbolFlags::None,
        })
    }

    fn undefined(&mut self, name: &str, weak: bool) -> write::SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Unknown,
            scope: SymbolScope::Dynamic,
            weak,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        })
    }

    fn reloc(&mut self, offset: u64, symbol: write::SymbolId, addend: i64, r_type: u32) {
        common::add_reloc(&mut self.obj, self.text, offset, symbol, addend, r_type);
    }

    fn bytes(&self) -> Vec<u8> {
        self.obj.write().expect("write object")
    }
}

type KernelTable<'a> = &'a [(&'a str, u64, ExternalKind)];

fn kernel(symbols: KernelTable<'_>) -> impl FnMut(&str) -> Option<ExternalSymbol> + '_ {
    move |name| {
        symbols
            .iter()
            .find(|s| s.0 == name)
            .map(|s| ExternalSymbol {
                address: s.1,
                size: 8,
                kind: s.2,
            })
    }
}

type Linked = (Vec<u8>, dlkm_linker::Layout, dlkm_linker::LinkOutput);

fn link_at(bytes: &[u8], base: u64, symbols: KernelTable<'_>) -> Result<Linked, LinkError> {
    let object = Object::parse("test.o", bytes)?;
    let layout = layout(&object, &LayoutOptions::default())?;
    let (image, output) = link(&object, &layout, base, &mut kernel(symbols))?;
    Ok((image, layout, output))
}

fn le32(image: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(image[at..at + 4].try_into().unwrap())
}

fn le64(image: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

fn text_offset(layout: &dlkm_linker::Layout) -> u64 {
    layout
        .section_offsets
        .iter()
        .flatten()
        .copied()
        .next()
        .unwrap()
}

const BASE: u64 = 0x5555_0000_0000;

#[test]
fn call_in_reach_stays_direct() {
    let mut b = Builder::new(&[0xe8, 0, 0, 0, 0, 0xc3]); // call foo; ret
    let foo = b.undefined("foo", false);
    b.reloc(1, foo, -4, elf::R_X86_64_PLT32);
    let target = BASE + 0x1000_0000;
    let (image, layout, output) =
        link_at(&b.bytes(), BASE, &[("foo", target, ExternalKind::Function)]).unwrap();
    let text = text_offset(&layout);
    let place = BASE + text + 1;
    assert_eq!(
        le32(&image, (text + 1) as usize) as i64,
        target as i64 - 4 - place as i64
    );
    assert_eq!(output.stubs_used, 0);
}

#[test]
fn far_call_goes_through_a_stub() {
    let mut b = Builder::new(&[0xe8, 0, 0, 0, 0, 0xc3]);
    let foo = b.undefined("far_away", false);
    b.reloc(1, foo, -4, elf::R_X86_64_PLT32);
    let target = 0x7fff_1234_5678;
    let (image, layout, output) = link_at(
        &b.bytes(),
        BASE,
        &[("far_away", target, ExternalKind::Function)],
    )
    .unwrap();
    assert_eq!(output.stubs_used, 1);
    let stub = layout.stubs.offset as usize;
    assert_eq!(
        &image[stub..stub + 6],
        &[0xff, 0x25, 0, 0, 0, 0],
        "jmp *0(%rip)"
    );
    assert_eq!(le64(&image, stub + 6), target);
    let text = text_offset(&layout);
    let call_end = BASE + text + 5;
    let displacement = le32(&image, (text + 1) as usize) as i64;
    assert_eq!((call_end as i64 + displacement) as u64, BASE + stub as u64);
}

#[test]
fn far_data_reference_is_an_error_naming_the_site() {
    // mov far_var(%rip), %eax
    let mut b = Builder::new(&[0x8b, 0x05, 0, 0, 0, 0, 0xc3]);
    let var = b.undefined("far_var", false);
    b.reloc(2, var, -4, elf::R_X86_64_PC32);
    let err = link_at(
        &b.bytes(),
        BASE,
        &[("far_var", 0x7fff_0000_0000, ExternalKind::Data)],
    )
    .unwrap_err();
    let text = err.to_string();
    match err {
        LinkError::OutOfRange { site, min, max, .. } => {
            assert_eq!(site.reloc, "R_X86_64_PC32");
            assert_eq!(site.symbol, "far_var");
            assert_eq!(site.section, ".text");
            assert_eq!(site.offset, 2);
            assert_eq!((min, max), (-(1 << 31), (1 << 31) - 1));
        }
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert!(text.contains("test.o"), "{text}");
}

#[test]
fn absolute_32s_above_2gib_is_out_of_range() {
    // mov $me, %rax (sign-extended imm32)
    let mut b = Builder::new(&[0x48, 0xc7, 0xc0, 0, 0, 0, 0, 0xc3]);
    let me = b.function("me", 0, 8);
    b.reloc(3, me, 0, elf::R_X86_64_32S);
    let err = link_at(&b.bytes(), 0x1_0000_0000, &[]).unwrap_err();
    assert!(matches!(err, LinkError::OutOfRange { .. }), "{err}");
    let (image, layout, _) = link_at(&b.bytes(), 0x1000_0000, &[]).unwrap();
    assert!(layout.needs_low_address);
    let text = text_offset(&layout);
    assert_eq!(le32(&image, (text + 3) as usize) as u64, 0x1000_0000 + text);
}

#[test]
fn gotpcrelx_mov_is_relaxed_to_lea_when_in_reach() {
    // mov near@GOTPCREL(%rip), %rax
    let mut b = Builder::new(&[0x48, 0x8b, 0x05, 0, 0, 0, 0, 0xc3]);
    let foo = b.undefined("near", false);
    b.reloc(3, foo, -4, elf::R_X86_64_REX_GOTPCRELX);
    let target = BASE + 0x10_0000;
    let (image, layout, output) =
        link_at(&b.bytes(), BASE, &[("near", target, ExternalKind::Data)]).unwrap();
    let text = text_offset(&layout) as usize;
    assert_eq!(output.got_relaxed, 1);
    assert_eq!(image[text + 1], 0x8d, "mov became lea");
    let end = BASE as i64 + text as i64 + 7;
    assert_eq!((end + le32(&image, text + 3) as i64) as u64, target);
}

#[test]
fn gotpcrel_far_target_uses_a_got_slot() {
    let mut b = Builder::new(&[0x48, 0x8b, 0x05, 0, 0, 0, 0, 0xc3]);
    let foo = b.undefined("far", false);
    b.reloc(3, foo, -4, elf::R_X86_64_REX_GOTPCRELX);
    let target = 0x7fff_0000_1000;
    let (image, layout, output) =
        link_at(&b.bytes(), BASE, &[("far", target, ExternalKind::Data)]).unwrap();
    let text = text_offset(&layout) as usize;
    assert_eq!(output.got_relaxed, 0);
    assert_eq!(image[text + 1], 0x8b, "still a load");
    let end = BASE as i64 + text as i64 + 7;
    let slot = (end + le32(&image, text + 3) as i64) as u64;
    assert_eq!(slot, BASE + layout.got.offset);
    assert_eq!(le64(&image, layout.got.offset as usize), target);
}

#[test]
fn all_undefined_symbols_are_reported_together() {
    let mut b = Builder::new(&[0xe8, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0]);
    for (i, name) in ["missing_c", "missing_a", "present"].iter().enumerate() {
        let s = b.undefined(name, false);
        b.reloc(1 + 5 * i as u64, s, -4, elf::R_X86_64_PLT32);
    }
    let weak = b.undefined("missing_weak", true);
    b.reloc(11, weak, -4, elf::R_X86_64_PLT32);
    let err = link_at(
        &b.bytes(),
        BASE,
        &[("present", BASE, ExternalKind::Function)],
    )
    .unwrap_err();
    match err {
        LinkError::UndefinedSymbols { names, count, .. } => {
            assert_eq!(names, ["missing_a", "missing_c"]);
            assert_eq!(count, 2);
        }
        other => panic!("expected UndefinedSymbols, got {other:?}"),
    }
}

#[test]
fn undefined_weak_resolves_to_zero() {
    let mut b = Builder::new(&[0; 8]);
    let weak = b.undefined("maybe", true);
    b.reloc(0, weak, 5, elf::R_X86_64_64);
    let (image, layout, _) = link_at(&b.bytes(), BASE, &[]).unwrap();
    assert_eq!(le64(&image, text_offset(&layout) as usize), 5);
}

#[test]
fn tls_relocations_are_refused_with_a_reason() {
    let mut b = Builder::new(&[0; 8]);
    let tls = b.undefined("tls_var", false);
    b.reloc(0, tls, 0, elf::R_X86_64_GOTTPOFF);
    let err = link_at(&b.bytes(), BASE, &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LinkError::UnsupportedRelocation { .. }));
    assert!(
        text.contains("R_X86_64_GOTTPOFF") && text.contains("thread-local"),
        "{text}"
    );
}

#[test]
fn relocation_outside_its_section_is_an_error() {
    let mut b = Builder::new(&[0; 4]);
    let f = b.function("f", 0, 4);
    b.reloc(2, f, 0, elf::R_X86_64_64);
    let err = link_at(&b.bytes(), BASE, &[]).unwrap_err();
    assert!(matches!(err, LinkError::BadRelocation { .. }), "{err}");
}

/// Offsets are kept in 32 bits: one past 4 GiB cannot be inside any section of a module, and
/// is refused when read, naming where it points.
#[test]
fn a_relocation_offset_past_4_gib_is_malformed() {
    let mut b = Builder::new(&[0; 4]);
    let f = b.function("f", 0, 4);
    b.reloc(0x1_0000_0000, f, 0, elf::R_X86_64_64);
    let err = Object::parse("far.o", &b.bytes()).unwrap_err();
    assert!(matches!(err, LinkError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains(".text+0x100000000"), "{err}");
}

#[test]
fn size_relocations_give_the_symbol_size() {
    let mut b = Builder::new(&[0; 16]);
    let f = b.function("sized", 0, 0x1234);
    b.reloc(0, f, 0, elf::R_X86_64_SIZE64);
    b.reloc(8, f, 1, elf::R_X86_64_SIZE32);
    let (image, layout, _) = link_at(&b.bytes(), BASE, &[]).unwrap();
    let text = text_offset(&layout) as usize;
    assert_eq!(le64(&image, text), 0x1234);
    assert_eq!(le32(&image, text + 8), 0x1235);
}

#[test]
fn truncated_and_corrupted_objects_give_errors_not_panics() {
    let mut b = Builder::new(&[0xe8, 0, 0, 0, 0, 0xc3]);
    let foo = b.undefined("foo", false);
    b.reloc(1, foo, -4, elf::R_X86_64_PLT32);
    let bytes = b.bytes();
    let table = [("foo", BASE, ExternalKind::Function)];
    for len in 0..bytes.len() {
        assert!(
            link_at(&bytes[..len], BASE, &table).is_err(),
            "truncated at {len}"
        );
    }
    // Every single-byte corruption must end in Ok or Err, never a panic.
    for at in 0..bytes.len() {
        for value in [0x00, 0xff, 0x80, 0x7f] {
            let mut bad = bytes.clone();
            bad[at] = value;
            let _ = link_at(&bad, BASE, &table);
        }
    }
}

/// A relocation section whose bytes lie outside the file, or do not divide into entries, is a
/// malformed object naming that section: never a section quietly left without relocations.
#[test]
fn a_relocation_section_outside_the_file_is_malformed() {
    let mut b = Builder::new(&[0xe8, 0, 0, 0, 0, 0xc3]);
    let callee = b.undefined("callee", false);
    b.reloc(1, callee, -4, elf::R_X86_64_PLT32);
    let good = b.bytes();
    let file = object::File::parse(&*good).unwrap();
    let rela = object::Object::section_by_name(&file, ".rela.text").expect(".rela.text");
    let index = object::ObjectSection::index(&rela).0;
    // Elf64_Ehdr.e_shoff at 0x28; Elf64_Shdr is 64 bytes, sh_offset at 0x18, sh_size at 0x20.
    let shoff = u64::from_le_bytes(good[0x28..0x30].try_into().unwrap()) as usize;
    let header = shoff + index * 64;
    for (field, value) in [(0x18, good.len() as u64 + 0x1000), (0x20, 25)] {
        let mut bad = good.clone();
        bad[header + field..header + field + 8].copy_from_slice(&value.to_le_bytes());
        let err = Object::parse("bad.o", &bad).expect_err("malformed");
        assert!(matches!(err, LinkError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains(".rela.text"), "{err}");
    }
    assert_eq!(
        Object::parse("good.o", &good).unwrap().sections[1]
            .relocs
            .len(),
        1
    );
}
