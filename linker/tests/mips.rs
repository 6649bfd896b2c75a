//! MIPS32 o32 relocations on small objects written with `object::write`, in both byte orders.
//!
//! `object::write` makes REL sections for MIPS32 and writes a non-zero addend into the place
//! only for `R_MIPS_32`; every other addend is put into the instruction words here, as an
//! assembler would, and the relocation is added with addend 0. Each test states the
//! instructions and the value the psABI formula gives, and checks the words the linker wrote:
//! `lui rt, imm` = 0x3c000000 | rt << 16 | imm, `addiu rt, rs, imm` = 0x24000000 | rs << 21 |
//! rt << 16 | imm, `lw rt, imm(rs)` = 0x8c000000 | …, `jal target` = 0x0c000000 |
//! (target >> 2 & 0x3ffffff), `beq rs, rt, off` = 0x10000000 | … | (off >> 2 & 0xffff),
//! R6 `balc off` = 0xe8000000 | (off >> 2 & 0x3ffffff).

mod common;

use dlkm_linker::{
    layout, link, ArchKind, ExternalKind, ExternalSymbol, Layout, LayoutOptions, LinkError,
    LinkOutput, Object, SymbolDef,
};
use object::write::{self, StandardSection, Symbol, SymbolSection};
use object::{elf, Architecture, BinaryFormat, Endianness, SymbolFlags};
use object::{SymbolKind, SymbolScope};

const R_MIPS_PC21_S2: u32 = 60;
const R_MIPS_PC26_S2: u32 = 61;

/// The module's base: inside the 256 MiB region 0x8000_0000..0x8fff_ffff.
const BASE: u64 = 0x8010_0000;

const BOTH: [bool; 2] = [true, false];

const NOP: u32 = 0x0000_0000;
const JR_RA: u32 = 0x03e0_0008;
/// `move $s0, $a0` (`or $s0, $a0, $zero`): a delay slot the linker must leave alone.
const MOVE_S0_A0: u32 = 0x0080_8025;

/// `%hi(value)`: the upper half, rounded by the sign of the lower.
fn hi(value: u64) -> u32 {
    ((value + 0x8000) >> 16) as u32 & 0xffff
}

/// `%lo(value)`.
fn lo(value: u64) -> u32 {
    value as u32 & 0xffff
}

fn to_bytes(words: &[u32], big: bool) -> Vec<u8> {
    words
        .iter()
        .flat_map(|w| {
            if big {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            }
        })
        .collect()
}

/// Builds a relocatable MIPS32 object with one text section.
struct Builder {
    obj: write::Object<'static>,
    text: write::SectionId,
}

impl Builder {
    fn new(big: bool, code: &[u32]) -> Self {
        let endian = if big {
            Endianness::Big
        } else {
            Endianness::Little
        };
        let mut obj = write::Object::new(BinaryFormat::Elf, Architecture::Mips, endian);
        let text = obj.section_id(StandardSection::Text);
        obj.append_section_data(text, &to_bytes(code, big), 16);
        Builder { obj, text }
    }

    /// Adds `.data` holding `bytes`.
    fn data(&mut self, bytes: &[u8]) -> write::SectionId {
        let data = self.obj.section_id(StandardSection::Data);
        self.obj.append_section_data(data, bytes, 16);
        data
    }

    fn section_symbol(&mut self, section: write::SectionId) -> write::SymbolId {
        self.obj.section_symbol(section)
    }

    fn undefined(&mut self, name: &str) -> write::SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Unknown,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        })
    }

    fn reloc_in(
        &mut self,
        section: write::SectionId,
        offset: u64,
        symbol: write::SymbolId,
        addend: i64,
        r_type: u32,
    ) {
        common::add_reloc(&mut self.obj, section, offset, symbol, addend, r_type);
    }

    /// A text relocation; its addend is already in the instruction.
    fn reloc(&mut self, offset: u64, symbol: write::SymbolId, r_type: u32) {
        self.reloc_in(self.text, offset, symbol, 0, r_type);
    }

    fn bytes(&self) -> Vec<u8> {
        self.obj.write().expect("write object")
    }
}

type KernelTable<'a> = &'a [(&'a str, u64)];

struct Linked {
    image: Vec<u8>,
    layout: Layout,
    output: LinkOutput,
    big: bool,
    /// Offsets of the loaded sections by name.
    sections: Vec<(String, u64)>,
}

impl Linked {
    fn word(&self, offset: u64) -> u32 {
        let at = offset as usize;
        let bytes: [u8; 4] = self.image[at..at + 4].try_into().unwrap();
        if self.big {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    }

    fn offset_of(&self, name: &str) -> u64 {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|s| s.1)
            .unwrap_or_else(|| panic!("no section {name}"))
    }

    /// A word of `.text`, by its offset in the section.
    fn text(&self, offset: u64) -> u32 {
        self.word(self.offset_of(".text") + offset)
    }

    fn address(&self, section: &str, offset: u64) -> u64 {
        BASE + self.offset_of(section) + offset
    }

    fn stub_address(&self) -> u64 {
        BASE + self.layout.stubs.offset
    }

    /// The module's GP as the linker defines it: lld's `_gp`, GOT + 0x7ff0.
    fn gp(&self) -> u64 {
        BASE + self.layout.got.offset + 0x7ff0
    }
}

fn link_at(bytes: &[u8], base: u64, kernel: KernelTable<'_>) -> Result<Linked, LinkError> {
    let object = Object::parse("test.o", bytes)?;
    let layout = layout(&object, &LayoutOptions::default())?;
    let mut resolver = |name: &str| {
        kernel.iter().find(|s| s.0 == name).map(|s| ExternalSymbol {
            address: s.1,
            size: 4,
            kind: ExternalKind::Function,
        })
    };
    let (image, output) = link(&object, &layout, base, &mut resolver)?;
    let sections = layout
        .section_offsets
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.map(|o| (object.sections[i].name.to_string(), o)))
        .collect();
    Ok(Linked {
        image,
        layout,
        output,
        big: object.arch.big_endian(),
        sections,
    })
}

fn jal(target: u64) -> u32 {
    0x0c00_0000 | ((target >> 2) as u32 & 0x03ff_ffff)
}

/// Where the `jal` at `place` goes: the region of its delay slot, the low 28 bits from the word.
fn jal_destination(place: u64, word: u32) -> u64 {
    ((place + 4) & !0x0fff_ffff) | (u64::from(word & 0x03ff_ffff) << 2)
}

/// Where an R6 `balc`/`bc` at `place` goes.
fn balc_destination(place: u64, word: u32) -> u64 {
    let offset = (((word & 0x03ff_ffff) << 6) as i32 >> 4) as i64;
    (place as i64 + 4 + offset) as u64
}

/// The four words of a stub to `target`.
fn stub_words(target: u64) -> [u32; 4] {
    [
        0x3c19_0000 | hi(target), // lui   $t9, %hi(target)
        0x2739_0000 | lo(target), // addiu $t9, $t9, %lo(target)
        0x0320_0009,              // jr    $t9 (jalr $zero, $t9)
        NOP,
    ]
}

fn stub_at(linked: &Linked, address: u64) -> [u32; 4] {
    let offset = address - BASE;
    [0, 4, 8, 12].map(|i| linked.word(offset + i))
}

#[test]
fn hi16_pairs_with_the_next_lo16_against_its_symbol_not_the_next_entry() {
    for big in BOTH {
        let mut b = Builder::new(
            big,
            &[
                0x3c04_0000, // 0x00 lui   $a0, %hi(var+0x10)     (0x10 + 0x8000) >> 16 = 0
                0x3c05_0000, // 0x04 lui   $a1, %hi(other)
                0x24a5_0000, // 0x08 addiu $a1, $a1, %lo(other)
                0x2484_0010, // 0x0c addiu $a0, $a0, %lo(var+0x10)
                JR_RA,
                NOP,
            ],
        );
        let var = b.undefined("var");
        let other = b.undefined("other");
        // The table: HI16 var, HI16 other, LO16 other, LO16 var.
        b.reloc(0x00, var, elf::R_MIPS_HI16);
        b.reloc(0x04, other, elf::R_MIPS_HI16);
        b.reloc(0x08, other, elf::R_MIPS_LO16);
        b.reloc(0x0c, var, elf::R_MIPS_LO16);
        let (var_at, other_at) = (0x8123_7ff8, 0x8000_f234);
        let linked = link_at(&b.bytes(), BASE, &[("var", var_at), ("other", other_at)]).unwrap();
        // var + 0x10 = 0x81238008: the low half 0x8008 is negative, so %hi carries: 0x8124.
        // Had the HI16 not found its LO16 (addend 0), it would be %hi(0x81237ff8) = 0x8123.
        assert_eq!(linked.text(0x00), 0x3c04_8124, "lui $a0, 0x8124");
        assert_eq!(linked.text(0x0c), 0x2484_8008, "addiu $a0, $a0, -0x7ff8");
        // other = 0x8000f234: %hi = 0x8001, %lo = 0xf234 (-0xdcc).
        assert_eq!(linked.text(0x04), 0x3c05_8001);
        assert_eq!(linked.text(0x08), 0x24a5_f234);
    }
}

#[test]
fn local_hi16_lo16_carry_a_negative_low_half() {
    for big in BOTH {
        // lui $v0, %hi(.data+0x8010); lw $v0, %lo(.data+0x8010)($v0): the assembler wrote
        // %hi(0x8010) = 1 and %lo(0x8010) = 0x8010 (-0x7ff0): AHL = 0x10000 - 0x7ff0.
        let mut b = Builder::new(big, &[0x3c02_0001, 0x8c42_8010, JR_RA, NOP]);
        let data = b.data(&[0u8; 0x9000]);
        let data_symbol = b.section_symbol(data);
        b.reloc(0, data_symbol, elf::R_MIPS_HI16);
        b.reloc(4, data_symbol, elf::R_MIPS_LO16);
        let linked = link_at(&b.bytes(), BASE, &[]).unwrap();
        let target = linked.address(".data", 0x8010);
        assert_eq!(linked.text(0), 0x3c02_0000 | hi(target));
        assert_eq!(linked.text(4), 0x8c42_0000 | lo(target));
        let (upper, lower) = (linked.text(0) & 0xffff, linked.text(4) & 0xffff);
        assert_eq!(
            ((upper << 16) as i32).wrapping_add(lower as u16 as i16 as i32) as u32 as u64,
            target,
            "lui + lw reach .data+0x8010"
        );
    }
}

#[test]
fn one_lo16_serves_two_hi16s() {
    // gcc: the `lui` is duplicated into two paths that meet at one `lw`.
    for big in BOTH {
        let mut b = Builder::new(
            big,
            &[
                0x3c02_0000, // lui $v0, %hi(var+4)
                0x3c02_0000, // lui $v0, %hi(var+4)
                0x8c42_0004, // lw  $v0, %lo(var+4)($v0)
                JR_RA,
                NOP,
            ],
        );
        let var = b.undefined("var");
        b.reloc(0, var, elf::R_MIPS_HI16);
        b.reloc(4, var, elf::R_MIPS_HI16);
        b.reloc(8, var, elf::R_MIPS_LO16);
        let linked = link_at(&b.bytes(), BASE, &[("var", 0x8234_7ffc)]).unwrap();
        // var + 4 = 0x82348000: %hi = 0x8235, %lo = 0x8000.
        assert_eq!(linked.text(0), 0x3c02_8235);
        assert_eq!(linked.text(4), 0x3c02_8235);
        assert_eq!(linked.text(8), 0x8c42_8000);
    }
}

#[test]
fn several_lo16s_follow_one_hi16() {
    // clang: one `lui` feeds the loads of two fields.
    for big in BOTH {
        let mut b = Builder::new(
            big,
            &[
                0x3c01_0000, // lui $at, %hi(var+0x10)
                0x8c28_0010, // lw  $t0, %lo(var+0x10)($at)
                0x8c29_0014, // lw  $t1, %lo(var+0x14)($at)
                JR_RA,
                NOP,
            ],
        );
        let var = b.undefined("var");
        b.reloc(0, var, elf::R_MIPS_HI16);
        b.reloc(4, var, elf::R_MIPS_LO16);
        b.reloc(8, var, elf::R_MIPS_LO16);
        let linked = link_at(&b.bytes(), BASE, &[("var", 0x8123_7ff0)]).unwrap();
        // var + 0x10 = 0x81238000 and var + 0x14 = 0x81238004 share %hi = 0x8124.
        assert_eq!(linked.text(0), 0x3c01_8124);
        assert_eq!(linked.text(4), 0x8c28_8000);
        assert_eq!(linked.text(8), 0x8c29_8004);
    }
}

#[test]
fn hi16_without_a_lo16_uses_its_own_half() {
    // As GNU ld and lld (which warn): the addend is the HI16's immediate << 16 alone.
    let mut b = Builder::new(true, &[0x3c02_0001, JR_RA, NOP]); // lui $v0, %hi(var+0x10000)
    let var = b.undefined("var");
    b.reloc(0, var, elf::R_MIPS_HI16);
    let linked = link_at(&b.bytes(), BASE, &[("var", 0x8000_9000)]).unwrap();
    // var + 0x10000 = 0x80019000: %hi = 0x8002.
    assert_eq!(linked.text(0), 0x3c02_8002);
}

#[test]
fn a_negative_combined_addend_is_sign_extended() {
    // lui $v0, %hi(var-0x9000) = 0xffff; addiu $v0, $v0, %lo(var-0x9000) = 0x7000.
    let mut b = Builder::new(false, &[0x3c02_ffff, 0x2442_7000, JR_RA, NOP]);
    let var = b.undefined("var");
    b.reloc(0, var, elf::R_MIPS_HI16);
    b.reloc(4, var, elf::R_MIPS_LO16);
    let linked = link_at(&b.bytes(), BASE, &[("var", 0x8123_4000)]).unwrap();
    let target = 0x8123_4000 - 0x9000;
    assert_eq!(linked.text(0), 0x3c02_0000 | hi(target));
    assert_eq!(linked.text(4), 0x2442_0000 | lo(target));
}

#[test]
fn thousands_of_pairs_with_every_lo16_far_below_its_hi16() {
    // All HI16s first, then the LO16s in reverse order: the worst case for a forward scan.
    const N: u64 = 5000;
    let mut code = vec![0x3c02_0000; N as usize]; // lui $v0, %hi(sym_i)
    code.resize(2 * N as usize, 0x8c42_0000); // lw $v0, %lo(sym_i)($v0)
    let mut b = Builder::new(true, &code);
    let symbols: Vec<_> = (0..N).map(|i| b.undefined(&format!("sym{i}"))).collect();
    for (i, &s) in symbols.iter().enumerate() {
        b.reloc(4 * i as u64, s, elf::R_MIPS_HI16);
    }
    for (j, &s) in symbols.iter().enumerate().rev() {
        let slot = N + (N - 1 - j as u64);
        b.reloc(4 * slot, s, elf::R_MIPS_LO16);
    }
    let names: Vec<String> = (0..N).map(|i| format!("sym{i}")).collect();
    let kernel: Vec<(&str, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), 0x8200_7ff0 + 0x10 * i as u64))
        .collect();
    let started = std::time::Instant::now();
    let linked = link_at(&b.bytes(), BASE, &kernel).unwrap();
    for i in [0, 1, N / 2, N - 1] {
        let address = 0x8200_7ff0 + 0x10 * i;
        assert_eq!(
            linked.text(4 * i),
            0x3c02_0000 | hi(address),
            "lui of sym{i}"
        );
        let lw = 4 * (N + (N - 1 - i));
        assert_eq!(linked.text(lw), 0x8c42_0000 | lo(address), "lw of sym{i}");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "pairing must not be quadratic"
    );
}

#[test]
fn jal_in_region_stays_direct() {
    for big in BOTH {
        let mut b = Builder::new(big, &[jal(0), MOVE_S0_A0, JR_RA, NOP]);
        let f = b.undefined("near_func");
        b.reloc(0, f, elf::R_MIPS_26);
        let target = 0x8234_5678;
        let linked = link_at(&b.bytes(), BASE, &[("near_func", target)]).unwrap();
        // 0x82345678 >> 2 = 0x208d159e; its low 26 bits are 0x08d159e.
        assert_eq!(linked.text(0), 0x0c8d_159e, "jal 0x82345678");
        assert_eq!(linked.text(4), MOVE_S0_A0, "delay slot untouched");
        assert_eq!(linked.output.stubs_used, 0);
    }
}

#[test]
fn jal_out_of_region_goes_through_a_stub() {
    for big in BOTH {
        let mut b = Builder::new(big, &[jal(0), MOVE_S0_A0, JR_RA, NOP]);
        let f = b.undefined("far_func");
        b.reloc(0, f, elf::R_MIPS_26);
        // Another 256 MiB region; %lo is negative, so %hi carries: 0x9abd.
        let target = 0x9abc_9ff0;
        let linked = link_at(&b.bytes(), BASE, &[("far_func", target)]).unwrap();
        assert_eq!(linked.output.stubs_used, 1);
        let stub = linked.stub_address();
        assert_eq!(stub % 4, 0);
        assert_eq!(
            stub_at(&linked, stub),
            [0x3c19_9abd, 0x2739_9ff0, 0x0320_0009, NOP],
            "lui $t9, 0x9abd; addiu $t9, $t9, -0x6010; jr $t9; nop"
        );
        assert_eq!(stub_at(&linked, stub), stub_words(target));
        let first = &linked.image[linked.layout.stubs.offset as usize..][..4];
        let lui = if big {
            [0x3c, 0x19, 0x9a, 0xbd]
        } else {
            [0xbd, 0x9a, 0x19, 0x3c]
        };
        assert_eq!(first, lui, "the stub is written in the object's byte order");
        assert_eq!(linked.text(0), jal(stub), "the jal now calls the stub");
        assert_eq!(
            jal_destination(linked.address(".text", 0), linked.text(0)),
            stub
        );
        assert_eq!(linked.text(4), MOVE_S0_A0, "delay slot untouched");
    }
}

#[test]
fn jal_with_an_addend_reaches_symbol_plus_addend_through_its_stub() {
    // jal far_func+8: the field holds 8 >> 2.
    let mut b = Builder::new(true, &[jal(8), NOP, JR_RA, NOP]);
    let f = b.undefined("far_func");
    b.reloc(0, f, elf::R_MIPS_26);
    let linked = link_at(&b.bytes(), BASE, &[("far_func", 0x9000_0000)]).unwrap();
    let stub = linked.stub_address();
    assert_eq!(stub_at(&linked, stub), stub_words(0x9000_0008));
    assert_eq!(linked.text(0), jal(stub));
}

#[test]
fn a_stub_to_an_address_above_4_gib_traps() {
    let mut b = Builder::new(false, &[jal(0), NOP, JR_RA, NOP]);
    let f = b.undefined("bogus");
    b.reloc(0, f, elf::R_MIPS_26);
    let linked = link_at(&b.bytes(), BASE, &[("bogus", 0x1_0000_1000)]).unwrap();
    let stub = linked.stub_address();
    assert_eq!(
        stub_at(&linked, stub),
        [0x0000_000d; 4],
        "break; break; break; break"
    );
}

#[test]
fn jal_to_a_local_function_uses_its_section_offset() {
    // jal .text+0x10: the assembler wrote 0x10 >> 2 into the field.
    let mut b = Builder::new(false, &[jal(0x10), NOP, JR_RA, NOP, JR_RA, NOP]);
    let text = b.section_symbol(b.text);
    b.reloc(0, text, elf::R_MIPS_26);
    let linked = link_at(&b.bytes(), BASE, &[]).unwrap();
    assert_eq!(linked.text(0), jal(linked.address(".text", 0x10)));
    assert_eq!(linked.output.stubs_used, 0);
}

#[test]
fn a_local_jal_across_a_region_boundary_is_an_error() {
    // The module straddles 0x9000_0000: the jal at the start cannot reach .text+0x1ff0.
    let mut code = vec![NOP; 0x800];
    code[0] = jal(0x1ff0);
    let mut b = Builder::new(true, &code);
    let text = b.section_symbol(b.text);
    b.reloc(0, text, elf::R_MIPS_26);
    let bytes = b.bytes();
    let object = Object::parse("test.o", &bytes).unwrap();
    let layout = layout(&object, &LayoutOptions::default()).unwrap();
    assert_eq!(
        layout.region_size,
        Some(0x1000_0000),
        "the layout tells the loader not to do this"
    );
    let text_offset = layout
        .section_offsets
        .iter()
        .flatten()
        .next()
        .copied()
        .unwrap();
    let base = 0x9000_0000 - 0x1000 - text_offset;
    let err = link_at(&bytes, base, &[]).err().expect("out of region");
    match err {
        LinkError::OutOfRange {
            site,
            value,
            min,
            max,
            ..
        } => {
            assert_eq!(site.reloc, "R_MIPS_26");
            assert_eq!(site.section, ".text");
            assert_eq!(value, 0x9000_0ff0);
            assert_eq!((min, max), (0x8000_0000, 0x8fff_ffff));
        }
        other => panic!("expected OutOfRange, got {other}"),
    }
}

#[test]
fn pc16_branch_in_range_and_out_of_range() {
    // b ext (beq $zero, $zero, ext): the assembler wrote -1, i.e. A = -4 (the delay slot).
    let code = [0x1000_ffff, NOP, JR_RA, NOP];
    let build = || {
        let mut b = Builder::new(true, &code);
        let ext = b.undefined("ext");
        b.reloc(0, ext, elf::R_MIPS_PC16);
        b.bytes()
    };
    let probe = link_at(&build(), BASE, &[("ext", BASE)]).unwrap();
    let place = probe.address(".text", 0);
    let near = place + 4 + 0x1000;
    let linked = link_at(&build(), BASE, &[("ext", near)]).unwrap();
    assert_eq!(linked.text(0), 0x1000_0000 | (0x1000 >> 2), "b .+4+0x1000");

    let behind = place + 4 - 0x2_0000; // the farthest back a branch reaches
    let linked = link_at(&build(), BASE, &[("ext", behind)]).unwrap();
    assert_eq!(linked.text(0), 0x1000_8000);

    let err = link_at(&build(), BASE, &[("ext", place + 4 + 0x2_0000)])
        .err()
        .expect("out of range");
    match err {
        LinkError::OutOfRange { site, min, max, .. } => {
            assert_eq!(site.reloc, "R_MIPS_PC16");
            assert_eq!(site.symbol, "ext");
            assert_eq!(site.offset, 0);
            assert_eq!((min, max), (-(1 << 17), (1 << 17) - 1));
        }
        other => panic!("expected OutOfRange, got {other}"),
    }
}

#[test]
fn r6_balc_in_reach_is_direct_and_far_goes_through_a_stub() {
    for big in BOTH {
        // balc far_func: the assembler wrote -1, i.e. A = -4 (R6 branches count from PC + 4).
        let code = [0xebff_ffff, JR_RA, NOP];
        let build = |name: &str| {
            let mut b = Builder::new(big, &code);
            let f = b.undefined(name);
            b.reloc(0, f, R_MIPS_PC26_S2);
            b.bytes()
        };
        let near = BASE + 0x10_0000;
        let linked = link_at(&build("f"), BASE, &[("f", near)]).unwrap();
        let place = linked.address(".text", 0);
        let offset = near - (place + 4);
        assert_eq!(linked.text(0), 0xe800_0000 | (offset >> 2) as u32);
        assert_eq!(balc_destination(place, linked.text(0)), near);
        assert_eq!(linked.output.stubs_used, 0);

        let far = 0x9000_1000;
        let linked = link_at(&build("f"), BASE, &[("f", far)]).unwrap();
        assert_eq!(linked.output.stubs_used, 1);
        let stub = linked.stub_address();
        assert_eq!(balc_destination(place, linked.text(0)), stub);
        assert_eq!(
            stub_at(&linked, stub),
            stub_words(far),
            "the stub goes to f"
        );
    }
}

#[test]
fn r6_beqzc_pc21_is_encoded_and_checked() {
    // beqzc $a0, ext: POP66 (0x36 << 26) | rs = 4 << 21 | offset 0x1fffff (A = -4).
    let code = [0xd89f_ffff, JR_RA, NOP];
    let build = || {
        let mut b = Builder::new(false, &code);
        let ext = b.undefined("ext");
        b.reloc(0, ext, R_MIPS_PC21_S2);
        b.bytes()
    };
    let place = link_at(&build(), BASE, &[("ext", BASE)])
        .unwrap()
        .address(".text", 0);
    let linked = link_at(&build(), BASE, &[("ext", place + 4 - 0x40)]).unwrap();
    assert_eq!(
        linked.text(0),
        0xd880_0000 | (0x1f_ffff & (-0x10i32 as u32))
    );
    let err = link_at(&build(), BASE, &[("ext", place + 4 + 0x40_0000)])
        .err()
        .expect("beyond 4 MiB");
    assert!(
        matches!(&err, LinkError::OutOfRange { site, .. } if site.reloc == "R_MIPS_PC21_S2"),
        "{err}"
    );
}

#[test]
fn gp_relative_references_use_the_module_gp() {
    for big in BOTH {
        // lw $v0, %gp_rel(.data+8)($gp): the assembler wrote the offset, 8 (GP0 is 0).
        let mut b = Builder::new(big, &[0x8f82_0008, JR_RA, NOP]);
        // .data: a word, then `.gpword .text+4` (the addend 4 written in place).
        let mut data_bytes = vec![0u8; 16];
        data_bytes[4..8].copy_from_slice(&to_bytes(&[4], big));
        let data = b.data(&data_bytes);
        let data_symbol = b.section_symbol(data);
        let text_symbol = b.section_symbol(b.text);
        b.reloc(0, data_symbol, elf::R_MIPS_GPREL16);
        b.reloc_in(data, 4, text_symbol, 0, elf::R_MIPS_GPREL32);
        let linked = link_at(&b.bytes(), BASE, &[]).unwrap();
        let gp = linked.gp();
        let offset = linked.address(".data", 8) as i64 - gp as i64;
        assert!((-0x8000..0x8000).contains(&offset), "{offset:#x}");
        assert_eq!(linked.text(0), 0x8f82_0000 | (offset as u32 & 0xffff));
        let gpword = linked.address(".text", 4) as i64 - gp as i64;
        assert_eq!(
            linked.word(linked.offset_of(".data") + 4),
            gpword as u32,
            ".gpword"
        );
    }
}

#[test]
fn r_mips_32_holds_the_address_in_the_objects_byte_order() {
    for big in BOTH {
        let mut b = Builder::new(big, &[JR_RA, NOP]);
        let data = b.data(&[0u8; 8]);
        let var = b.undefined("var");
        // object::write stores R_MIPS_32's addend in the word itself.
        b.reloc_in(data, 4, var, 12, elf::R_MIPS_32);
        let linked = link_at(&b.bytes(), BASE, &[("var", 0x8765_4320)]).unwrap();
        let at = linked.offset_of(".data") as usize + 4;
        let expected = if big {
            0x8765_432cu32.to_be_bytes()
        } else {
            0x8765_432cu32.to_le_bytes()
        };
        assert_eq!(&linked.image[at..at + 4], expected);
    }
}

fn refusal(r_type: u32, word: u32) -> (String, Option<String>, String) {
    let mut b = Builder::new(true, &[word, JR_RA, NOP]);
    let f = b.undefined("foo");
    b.reloc(0, f, r_type);
    let bytes = b.bytes();
    let object = Object::parse("pic.o", &bytes).unwrap();
    let err = layout(&object, &LayoutOptions::default()).expect_err("refused");
    let text = err.to_string();
    match err {
        LinkError::UnsupportedRelocation { site, hint } => (site.reloc, hint, text),
        other => panic!("expected UnsupportedRelocation, got {other}"),
    }
}

#[test]
fn got16_and_call16_are_refused_with_advice() {
    for (r_type, word, name) in [
        (elf::R_MIPS_CALL16, 0x8f99_0000, "R_MIPS_CALL16"), // lw $t9, %call16(foo)($gp)
        (elf::R_MIPS_GOT16, 0x8f82_0000, "R_MIPS_GOT16"),   // lw $v0, %got(foo)($gp)
        (elf::R_MIPS_GOT_DISP, 0x8f82_0000, "R_MIPS_GOT_DISP"),
    ] {
        let (reloc, hint, text) = refusal(r_type, word);
        assert_eq!(reloc, name);
        let hint = hint.expect("advice");
        assert!(hint.contains("-fno-pic -mno-abicalls"), "{hint}");
        assert!(hint.contains("-G 0"), "{hint}");
        assert!(text.contains(name) && text.contains("pic.o"), "{text}");
    }
}

#[test]
fn tls_dynamic_and_unknown_types_are_refused() {
    let (reloc, hint, _) = refusal(elf::R_MIPS_TLS_GD, 0x2784_0000);
    assert_eq!(reloc, "R_MIPS_TLS_GD");
    assert!(hint.unwrap().contains("thread-local"));
    let (reloc, hint, _) = refusal(elf::R_MIPS_JUMP_SLOT, 0);
    assert_eq!(reloc, "R_MIPS_JUMP_SLOT");
    assert!(hint.unwrap().contains("dynamic"));
    let (reloc, hint, _) = refusal(elf::R_MIPS_HIGHEST, 0);
    assert_eq!(reloc, "R_MIPS_HIGHEST");
    assert!(hint.unwrap().contains("o32"));
    let (reloc, hint, _) = refusal(200, 0);
    assert_eq!(reloc, "R_MIPS_<200>");
    assert!(hint.is_none());
}

#[test]
fn every_psabi_number_has_its_name() {
    let mips = ArchKind::Mips { big_endian: true };
    for r_type in (0..=51)
        .chain(60..=65)
        .chain(100..=112)
        .chain([126, 127, 248])
    {
        let name = mips.reloc_name(r_type);
        assert!(
            name.starts_with("R_MIPS") && !name.contains('<'),
            "{r_type}: {name}"
        );
    }
    assert_eq!(mips.reloc_name(4), "R_MIPS_26");
    assert_eq!(mips.reloc_name(5), "R_MIPS_HI16");
    assert_eq!(mips.reloc_name(61), "R_MIPS_PC26_S2");
    assert_eq!(mips.reloc_name(133), "R_MICROMIPS_26_S1");
    assert_eq!(
        ArchKind::Mips { big_endian: false }.reloc_name(1000),
        "R_MIPS_<1000>"
    );
    let kind = mips.reloc_kind(elf::R_MIPS_26).unwrap();
    assert_eq!(kind.align, 4);
    assert!(mips.reloc_kind(elf::R_MIPS_CALL16).is_none());
}

#[test]
fn a_relocation_outside_its_section_is_malformed_not_a_panic() {
    let mut b = Builder::new(true, &[0x3c02_0000, NOP]);
    let var = b.undefined("var");
    b.reloc(0x100, var, elf::R_MIPS_HI16);
    b.reloc(0x6, var, elf::R_MIPS_LO16);
    let err = Object::parse("bad.o", &b.bytes()).expect_err("malformed");
    assert!(matches!(err, LinkError::Malformed { .. }), "{err}");
}

/// Every MIPS object of the corpus (`corpus/mips*/**.o`, but not the ones under `errors/`)
/// parses, lays out and links, with every undefined symbol placed just after the image, in
/// the same 256 MiB region and in reach of every branch.
#[test]
fn corpus_objects_link() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut objects = Vec::new();
    let mut pending: Vec<std::path::PathBuf> = std::fs::read_dir(&corpus)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("mips"))
        })
        .collect();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "errors") {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "o") {
                objects.push(path);
            }
        }
    }
    objects.sort();
    if objects.is_empty() {
        eprintln!("no MIPS corpus objects yet under {}", corpus.display());
        return;
    }
    let base = 0x8010_0000;
    let mut failures = Vec::new();
    for path in &objects {
        let bytes = std::fs::read(path).unwrap();
        let name = path.display().to_string();
        let result = (|| {
            let object = Object::parse(&name, &bytes)?;
            assert!(matches!(object.arch, ArchKind::Mips { .. }), "{name}");
            let layout = layout(&object, &LayoutOptions::default())?;
            let externals = base + layout.mapped_size().next_multiple_of(0x1_0000) + 0x1_0000;
            let undefined: Vec<&str> = object
                .symbols
                .iter()
                .filter(|s| s.def == SymbolDef::Undefined && !s.name.is_empty())
                .map(|s| s.name)
                .collect();
            let mut resolver = |symbol: &str| {
                let i = undefined.iter().position(|&n| n == symbol)?;
                Some(ExternalSymbol {
                    address: externals + 16 * i as u64,
                    size: 16,
                    kind: ExternalKind::Unknown,
                })
            };
            link(&object, &layout, base, &mut resolver).map(|(_, output)| output.stubs_used)
        })();
        match result {
            Ok(0) => {}
            Ok(stubs) => failures.push(format!("{name}: {stubs} stubs for targets in reach")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} MIPS corpus objects linked", objects.len());
}
