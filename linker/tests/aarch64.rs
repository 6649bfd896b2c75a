//! aarch64 relocations on small objects written with `object::write`: each test states the
//! instruction, the value the AAELF64 formula gives at the addresses chosen, and the word the
//! linker must write; decoders written here (independently of the linker's encoder) check that
//! branches, pages and GOT loads land where they must.

mod common;

use dlkm_linker::{
    layout, link, ExternalKind, ExternalSymbol, LayoutOptions, LinkError, LinkOutput, Object,
};
use object::write::{self, StandardSection, Symbol, SymbolSection};
use object::{Architecture, BinaryFormat, Endianness, SymbolFlags};
use object::{SymbolKind, SymbolScope};

// Relocation numbers (AAELF64 §5.7).
const R_NONE: u32 = 0;
const R_NONE_WITHDRAWN: u32 = 256;
const R_ABS64: u32 = 257;
const R_ABS32: u32 = 258;
const R_ABS16: u32 = 259;
const R_PREL64: u32 = 260;
const R_PREL32: u32 = 261;
const R_PREL16: u32 = 262;
const R_MOVW_UABS_G0: u32 = 263;
const R_MOVW_UABS_G0_NC: u32 = 264;
const R_MOVW_UABS_G1: u32 = 265;
const R_MOVW_UABS_G1_NC: u32 = 266;
const R_MOVW_UABS_G2: u32 = 267;
const R_MOVW_UABS_G2_NC: u32 = 268;
const R_MOVW_UABS_G3: u32 = 269;
const R_MOVW_SABS_G0: u32 = 270;
const R_MOVW_SABS_G1: u32 = 271;
const R_MOVW_SABS_G2: u32 = 272;
const R_LD_PREL_LO19: u32 = 273;
const R_ADR_PREL_LO21: u32 = 274;
const R_ADR_PREL_PG_HI21: u32 = 275;
const R_ADR_PREL_PG_HI21_NC: u32 = 276;
const R_ADD_ABS_LO12_NC: u32 = 277;
const R_LDST8_ABS_LO12_NC: u32 = 278;
const R_TSTBR14: u32 = 279;
const R_CONDBR19: u32 = 280;
const R_JUMP26: u32 = 282;
const R_CALL26: u32 = 283;
const R_LDST16_ABS_LO12_NC: u32 = 284;
const R_LDST32_ABS_LO12_NC: u32 = 285;
const R_LDST64_ABS_LO12_NC: u32 = 286;
const R_MOVW_PREL_G0: u32 = 287;
const R_MOVW_PREL_G0_NC: u32 = 288;
const R_MOVW_PREL_G1: u32 = 289;
const R_MOVW_PREL_G1_NC: u32 = 290;
const R_MOVW_PREL_G2: u32 = 291;
const R_MOVW_PREL_G2_NC: u32 = 292;
const R_MOVW_PREL_G3: u32 = 293;
const R_LDST128_ABS_LO12_NC: u32 = 299;
const R_MOVW_GOTOFF_G0: u32 = 300;
const R_MOVW_GOTOFF_G0_NC: u32 = 301;
const R_MOVW_GOTOFF_G1: u32 = 302;
const R_MOVW_GOTOFF_G1_NC: u32 = 303;
const R_MOVW_GOTOFF_G2: u32 = 304;
const R_MOVW_GOTOFF_G2_NC: u32 = 305;
const R_MOVW_GOTOFF_G3: u32 = 306;
const R_GOTREL64: u32 = 307;
const R_GOTREL32: u32 = 308;
const R_GOT_LD_PREL19: u32 = 309;
const R_LD64_GOTOFF_LO15: u32 = 310;
const R_ADR_GOT_PAGE: u32 = 311;
const R_LD64_GOT_LO12_NC: u32 = 312;
const R_LD64_GOTPAGE_LO15: u32 = 313;
const R_PLT32: u32 = 314;
const R_GOTPCREL32: u32 = 315;
const R_TLSLE_ADD_TPREL_HI12: u32 = 549;
const R_TLSDESC_ADR_PAGE21: u32 = 562;
const R_GLOB_DAT: u32 = 1025;

// Instructions as the assembler leaves them before relocation (register fields as noted).
const BL: u32 = 0x9400_0000; // bl 0
const B: u32 = 0x1400_0000; // b 0
const B_EQ: u32 = 0x5400_0000; // b.eq 0
const B_NE: u32 = 0x5400_0001; // b.ne 0
const CBZ_X0: u32 = 0xb400_0000; // cbz x0, 0
const TBZ_W0_3: u32 = 0x3618_0000; // tbz w0, #3, 0
const TBNZ_X9_40: u32 = 0xb740_0009; // tbnz x9, #40, 0
const LDR_LIT_X1: u32 = 0x5800_0001; // ldr x1, 0
const ADR_X2: u32 = 0x1000_0002; // adr x2, 0
const ADRP_X0: u32 = 0x9000_0000; // adrp x0, 0
const ADD_X0: u32 = 0x9100_0000; // add x0, x0, #0
const LDRB_W1: u32 = 0x3940_0001; // ldrb w1, [x0]
const LDRH_W1: u32 = 0x7940_0001; // ldrh w1, [x0]
const LDR_W1: u32 = 0xb940_0001; // ldr w1, [x0]
const LDR_X1: u32 = 0xf940_0001; // ldr x1, [x0]
const LDR_Q1: u32 = 0x3dc0_0001; // ldr q1, [x0]
const LDR_X0_X0: u32 = 0xf940_0000; // ldr x0, [x0]
const MOVZ_G0: u32 = 0xd280_0000; // movz x0, #0
const MOVZ_G1: u32 = 0xd2a0_0000; // movz x0, #0, lsl #16
const MOVZ_G2: u32 = 0xd2c0_0000; // movz x0, #0, lsl #32
const MOVZ_G3: u32 = 0xd2e0_0000; // movz x0, #0, lsl #48
const MOVN_G2: u32 = 0x92c0_0000; // movn x0, #0, lsl #32
const MOVK_G0: u32 = 0xf280_0000; // movk x0, #0
const MOVK_G1: u32 = 0xf2a0_0000; // movk x0, #0, lsl #16
const MOVK_G2: u32 = 0xf2c0_0000; // movk x0, #0, lsl #32
const NOP: u32 = 0xd503_201f;
const RET: u32 = 0xd65f_03c0;

/// Where the images go: 64 KiB aligned, far above 4 GiB.
const BASE: u64 = 0x40_0000_0000;

/// Builds a relocatable aarch64 object with one text section (and a data section on demand).
struct Builder {
    obj: write::Object<'static>,
    text: write::SectionId,
    data: Option<write::SectionId>,
}

impl Builder {
    fn new(code: &[u32]) -> Self {
        let mut obj =
            write::Object::new(BinaryFormat::Elf, Architecture::Aarch64, Endianness::Little);
        let text = obj.section_id(StandardSection::Text);
        let bytes: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
        obj.append_section_data(text, &bytes, 16);
        Builder {
            obj,
            text,
            data: None,
        }
    }

    fn with_data(mut self, bytes: &[u8]) -> Self {
        let data = self.obj.section_id(StandardSection::Data);
        self.obj.append_section_data(data, bytes, 16);
        self.data = Some(data);
        self
    }

    fn symbol(&mut self, name: &str, value: u64, kind: SymbolKind, section: SymbolSection) -> Sym {
        Sym(self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size: 0,
            kind,
            scope: SymbolScope::Dynamic,
            weak: false,
            section,
            flags: SymbolFlags::None,
        }))
    }

    /// A function in the text section.
    fn function(&mut self, name: &str, offset: u64) -> Sym {
        let text = SymbolSection::Section(self.text);
        self.symbol(name, offset, SymbolKind::Text, text)
    }

    /// A label in the text section (a literal pool, a branch target).
    fn label(&mut self, name: &str, offset: u64) -> Sym {
        let text = SymbolSection::Section(self.text);
        self.symbol(name, offset, SymbolKind::Label, text)
    }

    fn datum(&mut self, name: &str, offset: u64) -> Sym {
        let data = SymbolSection::Section(self.data.expect("a data section"));
        self.symbol(name, offset, SymbolKind::Data, data)
    }

    fn absolute(&mut self, name: &str, value: u64) -> Sym {
        self.symbol(name, value, SymbolKind::Data, SymbolSection::Absolute)
    }

    fn undefined(&mut self, name: &str) -> Sym {
        self.symbol(name, 0, SymbolKind::Unknown, SymbolSection::Undefined)
    }

    fn weak_undefined(&mut self, name: &str) -> Sym {
        let sym = self.undefined(name);
        self.obj.symbol_mut(sym.0).weak = true;
        sym
    }

    fn reloc(&mut self, offset: u64, symbol: Sym, addend: i64, r_type: u32) {
        self.reloc_in(self.text, offset, symbol, addend, r_type);
    }

    fn data_reloc(&mut self, offset: u64, symbol: Sym, addend: i64, r_type: u32) {
        let data = self.data.expect("a data section");
        self.reloc_in(data, offset, symbol, addend, r_type);
    }

    fn reloc_in(
        &mut self,
        section: write::SectionId,
        offset: u64,
        symbol: Sym,
        addend: i64,
        r_type: u32,
    ) {
        common::add_reloc(&mut self.obj, section, offset, symbol.0, addend, r_type);
    }

    fn bytes(&self) -> Vec<u8> {
        self.obj.write().expect("write object")
    }
}

#[derive(Clone, Copy)]
struct Sym(write::SymbolId);

type KernelTable<'a> = &'a [(&'a str, u64)];

/// The linked image and where things ended up, as absolute addresses.
struct Linked {
    image: Vec<u8>,
    layout: dlkm_linker::Layout,
    output: LinkOutput,
    text: u64,
    data: u64,
}

/// What an unexpected success shows: where things went, not the image's bytes.
impl std::fmt::Debug for Linked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linked")
            .field("text", &format_args!("{:#x}", self.text))
            .field("data", &format_args!("{:#x}", self.data))
            .field("stubs_used", &self.output.stubs_used)
            .finish_non_exhaustive()
    }
}

impl Linked {
    fn word(&self, address: u64) -> u32 {
        let at = (address - BASE) as usize;
        u32::from_le_bytes(self.image[at..at + 4].try_into().unwrap())
    }

    fn text_word(&self, offset: u64) -> u32 {
        self.word(self.text + offset)
    }

    fn u16(&self, address: u64) -> u16 {
        let at = (address - BASE) as usize;
        u16::from_le_bytes(self.image[at..at + 2].try_into().unwrap())
    }

    fn u64(&self, address: u64) -> u64 {
        let at = (address - BASE) as usize;
        u64::from_le_bytes(self.image[at..at + 8].try_into().unwrap())
    }

    fn stubs(&self) -> u64 {
        BASE + self.layout.stubs.offset
    }

    fn got(&self) -> u64 {
        BASE + self.layout.got.offset
    }

    /// The GOT slot that holds `value`.
    fn got_slot_of(&self, value: u64) -> u64 {
        (0..self.layout.got_count() as u64)
            .map(|i| self.got() + 8 * i)
            .find(|&slot| self.u64(slot) == value)
            .unwrap_or_else(|| panic!("no GOT slot holds {value:#x}"))
    }
}

fn link_at(bytes: &[u8], symbols: KernelTable<'_>) -> Result<Linked, LinkError> {
    let object = Object::parse("test.o", bytes)?;
    let layout = layout(&object, &LayoutOptions::default())?;
    let mut resolver = |name: &str| {
        symbols
            .iter()
            .find(|s| s.0 == name)
            .map(|s| ExternalSymbol {
                address: s.1,
                size: 8,
                kind: ExternalKind::Unknown,
            })
    };
    let (image, output) = link(&object, &layout, BASE, &mut resolver)?;
    let offset_of = |name: &str| {
        object
            .sections
            .iter()
            .zip(&layout.section_offsets)
            .find(|(s, _)| s.name == name)
            .and_then(|(_, o)| *o)
            .map_or(0, |o| BASE + o)
    };
    let (text, data) = (offset_of(".text"), offset_of(".data"));
    Ok(Linked {
        image,
        layout,
        output,
        text,
        data,
    })
}

fn page(address: u64) -> u64 {
    address & !0xfff
}

fn sign_extend(value: u64, bits: u32) -> i64 {
    ((value << (64 - bits)) as i64) >> (64 - bits)
}

/// Where a B/BL at `place` goes.
fn branch26_target(word: u32, place: u64) -> u64 {
    place.wrapping_add_signed(sign_extend(u64::from(word & 0x03ff_ffff) << 2, 28))
}

/// Where a B.cond/CBZ/LDR (literal) at `place` points.
fn imm19_target(word: u32, place: u64) -> u64 {
    place.wrapping_add_signed(sign_extend(u64::from((word >> 5) & 0x7ffff) << 2, 21))
}

/// ADR's/ADRP's signed 21-bit immediate.
fn adr_imm(word: u32) -> i64 {
    let imm = (u64::from((word >> 5) & 0x7ffff) << 2) | u64::from((word >> 29) & 3);
    sign_extend(imm, 21)
}

/// The page an ADRP at `place` computes.
fn adrp_target(word: u32, place: u64) -> u64 {
    page(place).wrapping_add_signed(adr_imm(word) << 12)
}

/// The unsigned offset of an LDR/STR/ADD (immediate), unscaled.
fn imm12(word: u32) -> u64 {
    u64::from((word >> 10) & 0xfff)
}

/// The 16-bit immediate of a MOVZ/MOVN/MOVK.
fn imm16(word: u32) -> u64 {
    u64::from((word >> 5) & 0xffff)
}

fn expect_out_of_range(err: LinkError, reloc: &str, symbol: &str, bounds: (i128, i128)) {
    let message = err.to_string();
    match err {
        LinkError::OutOfRange { site, min, max, .. } => {
            assert_eq!(site.reloc, reloc, "{message}");
            assert_eq!(site.symbol, symbol, "{message}");
            assert_eq!((min, max), bounds, "{message}");
        }
        other => panic!("expected OutOfRange for {reloc}, got {other:?}"),
    }
    assert!(
        message.contains(reloc) && message.contains("test.o"),
        "{message}"
    );
}

#[test]
fn call_in_reach_stays_direct() {
    // 0: bl near (CALL26); 4: b near (JUMP26); 8: bl f (f at 0); 12: ret
    let mut b = Builder::new(&[BL, B, BL, RET]);
    let f = b.function("f", 0);
    let near = b.undefined("near");
    b.reloc(0, near, 0, R_CALL26);
    b.reloc(4, near, 0, R_JUMP26);
    b.reloc(8, f, 0, R_CALL26);
    // 4 bytes short of +128 MiB from the first bl: the farthest a branch reaches.
    let target = BASE + 0x0800_0000 - 4;
    let l = link_at(&b.bytes(), &[("near", target)]).unwrap();
    assert_eq!(l.text, BASE, "text first in the image");
    // bl: 0x94000000 | imm26, imm26 = (target - P) >> 2 = 0x1ffffff.
    assert_eq!(l.text_word(0), 0x95ff_ffff);
    // b: 0x14000000 | (0x7fffff8 >> 2) = 0x15fffffe.
    assert_eq!(l.text_word(4), 0x15ff_fffe);
    // bl f: S - P = -8, imm26 = 0x3fffffe.
    assert_eq!(l.text_word(8), 0x97ff_fffe);
    assert_eq!(l.text_word(12), RET);
    assert_eq!(l.output.stubs_used, 0);
    assert_eq!(l.layout.stub_count(), 1, "counted in the worst case");
}

#[test]
fn call_out_of_reach_goes_through_a_veneer() {
    // 0: bl far; 4: b far; 8: bl far+16; 12: bl below
    let mut b = Builder::new(&[BL, B, BL, BL]);
    let far = b.undefined("far");
    let below = b.undefined("below");
    b.reloc(0, far, 0, R_CALL26);
    b.reloc(4, far, 0, R_JUMP26);
    b.reloc(8, far, 16, R_CALL26);
    b.reloc(12, below, 0, R_CALL26);
    // 512 MiB above (more than 128 MiB, less than 4 GiB, as the emulated kernel is) and 1 GiB
    // below.
    let target = BASE + 0x2000_0000;
    let under = BASE - 0x4000_0000;
    let l = link_at(&b.bytes(), &[("far", target), ("below", under)]).unwrap();
    assert_eq!(l.output.stubs_used, 4);
    assert_eq!(l.layout.stub_count(), 3, "one veneer per (symbol, addend)");

    let veneer_of = |offset: u64| {
        let place = l.text + offset;
        let veneer = branch26_target(l.text_word(offset), place);
        assert!(
            (l.stubs()..l.stubs() + 48).contains(&veneer),
            "branch at {offset} goes to {veneer:#x}, not a veneer"
        );
        // ldr x16, #8 = 0x58000050 (imm19 = 2, Rt = 16); br x16 = 0xd61f0200 (Rn = 16).
        assert_eq!(l.word(veneer), 0x5800_0050);
        assert_eq!(l.word(veneer + 4), 0xd61f_0200);
        assert_eq!(veneer % 8, 0, "the literal is 8-aligned");
        (veneer, l.u64(veneer + 8))
    };
    let (call, call_target) = veneer_of(0);
    let (jump, jump_target) = veneer_of(4);
    assert_eq!(call_target, target);
    assert_eq!(call, jump, "the call and the tail call share the veneer");
    assert_eq!(jump_target, target);
    let (with_addend, addend_target) = veneer_of(8);
    assert_ne!(with_addend, call);
    assert_eq!(
        addend_target,
        target + 16,
        "the veneer's target includes the addend"
    );
    assert_eq!(veneer_of(12).1, under);
    // The opcodes stay: bl, b, bl, bl.
    for (offset, opcode) in [(0, BL), (4, B), (8, BL), (12, BL)] {
        assert_eq!(l.text_word(offset) & 0xfc00_0000, opcode);
    }
}

#[test]
fn local_branches_literals_and_adr() {
    // The code; f at 0, target at 0x40, literal at 0x48.
    let mut code = vec![
        B_EQ,       // 0x00: b.eq target
        CBZ_X0,     // 0x04: cbz x0, target
        TBZ_W0_3,   // 0x08: tbz w0, #3, target
        LDR_LIT_X1, // 0x0c: ldr x1, literal
        ADR_X2,     // 0x10: adr x2, target+3
        B_NE,       // 0x14: b.ne f
        TBNZ_X9_40, // 0x18: tbnz x9, #40, f
    ];
    code.resize(0x10, NOP);
    code.extend([RET, NOP, 0, 0]); // 0x40: target: ret; 0x48: literal: .xword 0
    let mut b = Builder::new(&code);
    let f = b.function("f", 0);
    let target = b.label("target", 0x40);
    let literal = b.label("literal", 0x48);
    b.reloc(0x00, target, 0, R_CONDBR19);
    b.reloc(0x04, target, 0, R_CONDBR19);
    b.reloc(0x08, target, 0, R_TSTBR14);
    b.reloc(0x0c, literal, 0, R_LD_PREL_LO19);
    b.reloc(0x10, target, 3, R_ADR_PREL_LO21);
    b.reloc(0x14, f, 0, R_CONDBR19);
    b.reloc(0x18, f, 0, R_TSTBR14);
    let l = link_at(&b.bytes(), &[]).unwrap();
    // b.eq: X = 0x40, imm19 = 0x10 -> 0x54000000 | 0x10 << 5.
    assert_eq!(l.text_word(0x00), 0x5400_0200);
    // cbz x0: X = 0x3c, imm19 = 0xf.
    assert_eq!(l.text_word(0x04), 0xb400_01e0);
    // tbz w0, #3: X = 0x38, imm14 = 0xe -> 0x36180000 | 0xe << 5.
    assert_eq!(l.text_word(0x08), 0x3618_01c0);
    // ldr x1, literal: X = 0x3c, imm19 = 0xf.
    assert_eq!(l.text_word(0x0c), 0x5800_01e1);
    // adr x2: X = 0x40 + 3 - 0x10 = 0x33: immlo = 3 (bits 30:29), immhi = 0xc (bits 23:5).
    assert_eq!(l.text_word(0x10), 0x7000_0182);
    // b.ne f: X = -0x14, imm19 = 0x7fffb; the condition (ne = 1) stays.
    assert_eq!(l.text_word(0x14), 0x54ff_ff61);
    // tbnz x9, #40, f: X = -0x18, imm14 = 0x3ffa; b5, b40 and Rt stay.
    assert_eq!(l.text_word(0x18), 0xb747_ff49);
    assert_eq!(
        imm19_target(l.text_word(0x0c), l.text + 0x0c),
        l.text + 0x48
    );
    assert_eq!(l.output.stubs_used, 0);
}

#[test]
fn short_branches_out_of_range_are_errors() {
    // b.eq to a kernel function 2 MiB away: CONDBR19 reaches ±1 MiB and never uses a veneer.
    let mut b = Builder::new(&[B_EQ, RET]);
    let far = b.undefined("far_fn");
    b.reloc(0, far, 0, R_CONDBR19);
    let err = link_at(&b.bytes(), &[("far_fn", BASE + 0x20_0000)]).unwrap_err();
    expect_out_of_range(
        err,
        "R_AARCH64_CONDBR19",
        "far_fn",
        (-(1 << 20), (1 << 20) - 1),
    );

    // tbz to 32 KiB ahead: TSTBR14 reaches [-32 KiB, 32 KiB).
    let mut b = Builder::new(&[TBZ_W0_3, RET]);
    let far = b.undefined("far_fn");
    b.reloc(0, far, 0, R_TSTBR14);
    let err = link_at(&b.bytes(), &[("far_fn", BASE + 0x8000)]).unwrap_err();
    expect_out_of_range(
        err,
        "R_AARCH64_TSTBR14",
        "far_fn",
        (-(1 << 15), (1 << 15) - 1),
    );
    // 4 bytes less is in reach: imm14 = 0x1fff.
    let l = link_at(&b.bytes(), &[("far_fn", BASE + 0x7ffc)]).unwrap();
    assert_eq!(l.text_word(0), 0x3618_0000 | (0x1fff << 5));

    // ldr x1, literal 1 MiB away.
    let mut b = Builder::new(&[LDR_LIT_X1, RET]);
    let var = b.undefined("far_var");
    b.reloc(0, var, 0, R_LD_PREL_LO19);
    let err = link_at(&b.bytes(), &[("far_var", BASE + 0x10_0000)]).unwrap_err();
    expect_out_of_range(
        err,
        "R_AARCH64_LD_PREL_LO19",
        "far_var",
        (-(1 << 20), (1 << 20) - 1),
    );

    // adr 1 MiB back.
    let mut b = Builder::new(&[ADR_X2, RET]);
    let var = b.undefined("far_var");
    b.reloc(0, var, 0, R_ADR_PREL_LO21);
    let err = link_at(&b.bytes(), &[("far_var", BASE - 0x10_0001)]).unwrap_err();
    expect_out_of_range(
        err,
        "R_AARCH64_ADR_PREL_LO21",
        "far_var",
        (-(1 << 20), (1 << 20) - 1),
    );

    // A defined target out of reach of a bl gets no veneer (none is counted for it): the
    // error names CALL26. The module's own function sits at an absolute address 1 GiB away.
    let mut b = Builder::new(&[BL, RET]);
    let abs = b.absolute("fixed_fn", BASE + 0x4000_0000);
    b.reloc(0, abs, 0, R_CALL26);
    let err = link_at(&b.bytes(), &[]).unwrap_err();
    expect_out_of_range(
        err,
        "R_AARCH64_CALL26",
        "fixed_fn",
        (-(1 << 27), (1 << 27) - 1),
    );
}

#[test]
fn branch_to_a_misaligned_target_is_an_error() {
    let mut b = Builder::new(&[BL, RET]);
    let odd = b.undefined("odd");
    b.reloc(0, odd, 0, R_CALL26);
    let err = link_at(&b.bytes(), &[("odd", BASE + 0x1002)]).unwrap_err();
    match err {
        LinkError::Misaligned { site, align, .. } => {
            assert_eq!(site.reloc, "R_AARCH64_CALL26");
            assert_eq!(align, 4);
        }
        other => panic!("expected Misaligned, got {other:?}"),
    }
}

/// A kernel variable 2 GiB and change above the image: page distance 0x87654, low 12 bits
/// 0xab0 (a multiple of 16).
const VAR: u64 = BASE + 0x8765_4ab0;

#[test]
fn adrp_add_and_adrp_ldst_pairs() {
    let mut b = Builder::new(&[
        ADRP_X0, // 0x00: adrp x0, var
        ADD_X0,  // 0x04: add x0, x0, :lo12:var
        LDRB_W1, // 0x08: ldrb w1, [x0, :lo12:var+1]
        LDRH_W1, // 0x0c: ldrh w1, [x0, :lo12:var+2]
        LDR_W1,  // 0x10: ldr w1, [x0, :lo12:var+4]
        LDR_X1,  // 0x14: ldr x1, [x0, :lo12:var+8]
        LDR_Q1,  // 0x18: ldr q1, [x0, :lo12:var+16]
        ADRP_X0, // 0x1c: adrp x0, below (ADR_PREL_PG_HI21_NC)
        ADRP_X0, // 0x20: adrp x0, below
        RET,
    ]);
    let var = b.undefined("var");
    let below = b.undefined("below");
    b.reloc(0x00, var, 0, R_ADR_PREL_PG_HI21);
    b.reloc(0x04, var, 0, R_ADD_ABS_LO12_NC);
    b.reloc(0x08, var, 1, R_LDST8_ABS_LO12_NC);
    b.reloc(0x0c, var, 2, R_LDST16_ABS_LO12_NC);
    b.reloc(0x10, var, 4, R_LDST32_ABS_LO12_NC);
    b.reloc(0x14, var, 8, R_LDST64_ABS_LO12_NC);
    b.reloc(0x18, var, 16, R_LDST128_ABS_LO12_NC);
    b.reloc(0x1c, below, 0, R_ADR_PREL_PG_HI21_NC);
    b.reloc(0x20, below, 0, R_ADR_PREL_PG_HI21);
    // A variable 0x34567 pages below the image.
    let under = BASE - 0x3456_7000 + 0x9f8;
    let l = link_at(&b.bytes(), &[("var", VAR), ("below", under)]).unwrap();
    assert_eq!(l.text, BASE);
    // adrp: X = Page(var) - Page(P) = 0x87654000; imm21 = 0x87654: immlo = 0,
    // immhi = 0x21d95 -> 0x90000000 | 0x21d95 << 5.
    assert_eq!(l.text_word(0x00), 0x9043_b2a0);
    assert_eq!(adrp_target(l.text_word(0), l.text), page(VAR));
    // add: imm12 = 0xab0.
    assert_eq!(l.text_word(0x04), 0x912a_c000);
    // ldrb: imm12 = 0xab1.
    assert_eq!(l.text_word(0x08), 0x396a_c401);
    // ldrh: imm12 = 0xab2 >> 1 = 0x559.
    assert_eq!(l.text_word(0x0c), 0x7955_6401);
    // ldr w: imm12 = 0xab4 >> 2 = 0x2ad.
    assert_eq!(l.text_word(0x10), 0xb94a_b401);
    // ldr x: imm12 = 0xab8 >> 3 = 0x157.
    assert_eq!(l.text_word(0x14), 0xf945_5c01);
    // ldr q: imm12 = 0xac0 >> 4 = 0xac.
    assert_eq!(l.text_word(0x18), 0x3dc2_b001);
    for (offset, shift) in [(0x08, 0), (0x0c, 1), (0x10, 2), (0x14, 3), (0x18, 4)] {
        let address = page(VAR) + (imm12(l.text_word(offset)) << shift);
        assert_eq!(address, VAR + (1 << shift), "access at {offset:#x}");
    }
    // adrp below: imm21 = -0x34567 = 0x1cba99: immlo = 1, immhi = 0x72ea6.
    assert_eq!(l.text_word(0x1c), 0xb0e5_d4c0);
    assert_eq!(l.text_word(0x20), 0xb0e5_d4c0);
    assert_eq!(adrp_target(l.text_word(0x20), l.text + 0x20), page(under));
}

#[test]
fn adrp_beyond_4_gib_is_out_of_range_unless_nc() {
    let mut b = Builder::new(&[ADRP_X0, RET]);
    let var = b.undefined("remote");
    b.reloc(0, var, 0, R_ADR_PREL_PG_HI21);
    let remote = BASE + 0x1_0000_0000;
    let err = link_at(&b.bytes(), &[("remote", remote)]).unwrap_err();
    expect_out_of_range(
        err,
        "R_AARCH64_ADR_PREL_PG_HI21",
        "remote",
        (-(1 << 32), (1 << 32) - 1),
    );
    // The last page in reach.
    let l = link_at(&b.bytes(), &[("remote", remote - 0x1000)]).unwrap();
    assert_eq!(adrp_target(l.text_word(0), l.text), remote - 0x1000);
    // _NC keeps bits [32:12] of X, unchecked: X = 2^32 gives imm21 = 0x100000 (immhi bit 18,
    // 0x90800000, which the CPU reads as -4 GiB); X = 2^33 wraps to imm21 = 0.
    let mut b = Builder::new(&[ADRP_X0, RET]);
    let var = b.undefined("remote");
    b.reloc(0, var, 0, R_ADR_PREL_PG_HI21_NC);
    let l = link_at(&b.bytes(), &[("remote", remote)]).unwrap();
    assert_eq!(l.text_word(0), 0x9080_0000);
    let l = link_at(&b.bytes(), &[("remote", BASE + 0x2_0000_0000)]).unwrap();
    assert_eq!(l.text_word(0), ADRP_X0);
}

#[test]
fn misaligned_scaled_loads_are_errors() {
    for (insn, addend, r_type, name, align) in [
        (
            LDRH_W1,
            1,
            R_LDST16_ABS_LO12_NC,
            "R_AARCH64_LDST16_ABS_LO12_NC",
            2,
        ),
        (
            LDR_W1,
            2,
            R_LDST32_ABS_LO12_NC,
            "R_AARCH64_LDST32_ABS_LO12_NC",
            4,
        ),
        (
            LDR_X1,
            4,
            R_LDST64_ABS_LO12_NC,
            "R_AARCH64_LDST64_ABS_LO12_NC",
            8,
        ),
        (
            LDR_Q1,
            8,
            R_LDST128_ABS_LO12_NC,
            "R_AARCH64_LDST128_ABS_LO12_NC",
            16,
        ),
    ] {
        let mut b = Builder::new(&[ADRP_X0, insn, RET]);
        let var = b.undefined("var");
        b.reloc(0, var, addend, R_ADR_PREL_PG_HI21);
        b.reloc(4, var, addend, r_type);
        let err = link_at(&b.bytes(), &[("var", VAR)]).unwrap_err();
        let message = err.to_string();
        match err {
            LinkError::Misaligned {
                site,
                value,
                align: a,
            } => {
                assert_eq!(site.reloc, name);
                assert_eq!(site.offset, 4);
                assert_eq!(value, (VAR as i64 + addend) as i128);
                assert_eq!(a, align);
            }
            other => panic!("expected Misaligned for {name}, got {other:?}"),
        }
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn movw_unsigned_groups() {
    let mut b = Builder::new(&[
        MOVZ_G3,     // 0x00: movz x0, #:abs_g3:kvar
        MOVK_G2,     // 0x04: movk x0, #:abs_g2_nc:kvar
        MOVK_G1,     // 0x08: movk x0, #:abs_g1_nc:kvar
        MOVK_G0,     // 0x0c: movk x0, #:abs_g0_nc:kvar
        MOVZ_G0 | 1, // 0x10: movz x1, #:abs_g0:small
        MOVZ_G1 | 2, // 0x14: movz x2, #:abs_g1:mid
        MOVZ_G2 | 3, // 0x18: movz x3, #:abs_g2:big
        RET,
    ]);
    let kvar = b.undefined("kvar");
    let small = b.absolute("small", 0x1234);
    let mid = b.absolute("mid", 0x8765_4321);
    let big = b.absolute("big", 0x1234_5678_9abc);
    b.reloc(0x00, kvar, 0, R_MOVW_UABS_G3);
    b.reloc(0x04, kvar, 0, R_MOVW_UABS_G2_NC);
    b.reloc(0x08, kvar, 0, R_MOVW_UABS_G1_NC);
    b.reloc(0x0c, kvar, 0, R_MOVW_UABS_G0_NC);
    b.reloc(0x10, small, 0, R_MOVW_UABS_G0);
    b.reloc(0x14, mid, 0, R_MOVW_UABS_G1);
    b.reloc(0x18, big, 0, R_MOVW_UABS_G2);
    let k = 0x7654_3210_fedc_u64 | (0xa5 << 48);
    let l = link_at(&b.bytes(), &[("kvar", k)]).unwrap();
    // movz x0, #0x00a5, lsl 48.
    assert_eq!(l.text_word(0x00), 0xd2e0_14a0);
    // movk x0, #0x7654, lsl 32.
    assert_eq!(l.text_word(0x04), 0xf2ce_ca80);
    // movk x0, #0x3210, lsl 16.
    assert_eq!(l.text_word(0x08), 0xf2a6_4200);
    // movk x0, #0xfedc.
    assert_eq!(l.text_word(0x0c), 0xf29f_db80);
    let rebuilt = (0..4).fold(0u64, |v, i| v | imm16(l.text_word(4 * i)) << (48 - 16 * i));
    assert_eq!(rebuilt, k);
    // movz x1, #0x1234; movz x2, #0x8765, lsl 16; movz x3, #0x1234, lsl 32.
    assert_eq!(l.text_word(0x10), 0xd282_4681);
    assert_eq!(l.text_word(0x14), 0xd2b0_eca2);
    assert_eq!(l.text_word(0x18), 0xd2c2_4683);
    assert!(
        l.layout.needs_low_address,
        "MOVW_UABS_G1 holds a 32-bit address"
    );

    // The checking kinds refuse what their group cannot hold.
    for (insn, value, r_type, name, bits) in [
        (
            MOVZ_G0,
            0x1_0000,
            R_MOVW_UABS_G0,
            "R_AARCH64_MOVW_UABS_G0",
            16,
        ),
        (
            MOVZ_G1,
            0x1_0000_0000,
            R_MOVW_UABS_G1,
            "R_AARCH64_MOVW_UABS_G1",
            32,
        ),
        (
            MOVZ_G2,
            1 << 48,
            R_MOVW_UABS_G2,
            "R_AARCH64_MOVW_UABS_G2",
            48,
        ),
    ] {
        let mut b = Builder::new(&[insn, RET]);
        let sym = b.absolute("too_big", value);
        b.reloc(0, sym, 0, r_type);
        let err = link_at(&b.bytes(), &[]).unwrap_err();
        expect_out_of_range(err, name, "too_big", (0, (1 << bits) - 1));
    }
}

#[test]
fn movw_signed_turns_movz_into_movn() {
    let mut b = Builder::new(&[
        MOVZ_G0, // 0x00: movz x0, #:abs_g0_s:absent-5
        MOVZ_G1, // 0x04: movz x0, #:abs_g1_s:absent-0x12345
        MOVK_G0, // 0x08: movk x0, #:abs_g0_nc:absent-0x12345
        MOVN_G2, // 0x0c: movn x0, #:abs_g2_s:absent+0x123456789
        MOVZ_G0, // 0x10: movz x0, #:abs_g0_s:absent+0xffff
        RET,
    ]);
    // An undefined weak symbol resolves to 0, so S + A is the (signed) addend.
    let absent = b.weak_undefined("absent");
    b.reloc(0x00, absent, -5, R_MOVW_SABS_G0);
    b.reloc(0x04, absent, -0x12345, R_MOVW_SABS_G1);
    b.reloc(0x08, absent, -0x12345, R_MOVW_UABS_G0_NC);
    b.reloc(0x0c, absent, 0x1_2345_6789, R_MOVW_SABS_G2);
    b.reloc(0x10, absent, 0xffff, R_MOVW_SABS_G0);
    let l = link_at(&b.bytes(), &[]).unwrap();
    // X = -5 < 0: movn x0, #4 (NOT -5 = 4) = 0x92800000 | 4 << 5.
    assert_eq!(l.text_word(0x00), 0x9280_0080);
    // X = -0x12345: bits [31:16] = 0xfffe, NOT = 1: movn x0, #1, lsl 16.
    assert_eq!(l.text_word(0x04), 0x92a0_0020);
    // movk x0, #0xdcbb: with the movn, x0 = 0xffff_ffff_fffe_dcbb = -0x12345.
    assert_eq!(l.text_word(0x08), 0xf29b_9760);
    let x0 = !(imm16(l.text_word(0x04)) << 16) & !0xffff | imm16(l.text_word(0x08));
    assert_eq!(x0 as i64, -0x12345);
    // X = 0x1_2345_6789 >= 0: the movn becomes movz x0, #1, lsl 32.
    assert_eq!(l.text_word(0x0c), 0xd2c0_0020);
    // X = 0xffff fits G0's [-2^16, 2^16): movz x0, #0xffff.
    assert_eq!(l.text_word(0x10), 0xd29f_ffe0);

    for (addend, r_type, name, bits) in [
        (0x1_0000, R_MOVW_SABS_G0, "R_AARCH64_MOVW_SABS_G0", 16),
        (-0x1_0001, R_MOVW_SABS_G0, "R_AARCH64_MOVW_SABS_G0", 16),
        (-0x1_0000_0001, R_MOVW_SABS_G1, "R_AARCH64_MOVW_SABS_G1", 32),
        (1 << 48, R_MOVW_SABS_G2, "R_AARCH64_MOVW_SABS_G2", 48),
    ] {
        let mut b = Builder::new(&[MOVZ_G0, RET]);
        let absent = b.weak_undefined("absent");
        b.reloc(0, absent, addend, r_type);
        let err = link_at(&b.bytes(), &[]).unwrap_err();
        expect_out_of_range(err, name, "absent", (-(1 << bits), (1 << bits) - 1));
    }
}

#[test]
fn movw_pc_relative_groups() {
    let mut b = Builder::new(&[
        RET,         // 0x00: f
        NOP,         // 0x04
        NOP,         // 0x08
        NOP,         // 0x0c
        MOVZ_G3,     // 0x10: movz x0, #:prel_g3:f
        MOVK_G2,     // 0x14: movk x0, #:prel_g2_nc:f
        MOVK_G1,     // 0x18: movk x0, #:prel_g1_nc:f
        MOVK_G0,     // 0x1c: movk x0, #:prel_g0_nc:f
        MOVZ_G0 | 1, // 0x20: movz x1, #:prel_g0:f
        MOVZ_G1 | 2, // 0x24: movz x2, #:prel_g1:ahead
        MOVZ_G2 | 3, // 0x28: movz x3, #:prel_g2:behind
        MOVK_G2 | 4, // 0x2c: movk x4, #:prel_g2_nc:behind
        MOVK_G1 | 5, // 0x30: movk x5, #:prel_g1_nc:behind
        RET,
    ]);
    let f = b.function("f", 0);
    let ahead = b.undefined("ahead");
    let behind = b.undefined("behind");
    b.reloc(0x10, f, 0, R_MOVW_PREL_G3);
    b.reloc(0x14, f, 0, R_MOVW_PREL_G2_NC);
    b.reloc(0x18, f, 0, R_MOVW_PREL_G1_NC);
    b.reloc(0x1c, f, 0, R_MOVW_PREL_G0_NC);
    b.reloc(0x20, f, 0, R_MOVW_PREL_G0);
    b.reloc(0x24, ahead, 0, R_MOVW_PREL_G1);
    b.reloc(0x28, behind, 0, R_MOVW_PREL_G2);
    b.reloc(0x2c, behind, 0, R_MOVW_PREL_G2_NC);
    b.reloc(0x30, behind, 0, R_MOVW_PREL_G1_NC);
    let ahead_at = BASE + 0x24 + 0x2345_6789;
    let behind_at = BASE + 0x28 - 0x2_0000_0000;
    let l = link_at(&b.bytes(), &[("ahead", ahead_at), ("behind", behind_at)]).unwrap();
    assert_eq!(l.text, BASE);
    // X = -0x10: G3 is always a movz of bits [63:48]: movz x0, #0xffff, lsl 48.
    assert_eq!(l.text_word(0x10), 0xd2ff_ffe0);
    // X = -0x14, -0x18: movk #0xffff at lsl 32 and 16.
    assert_eq!(l.text_word(0x14), 0xf2df_ffe0);
    assert_eq!(l.text_word(0x18), 0xf2bf_ffe0);
    // X = -0x1c: movk x0, #0xffe4.
    assert_eq!(l.text_word(0x1c), 0xf29f_fc80);
    // X = -0x20: movn x1, #0x1f.
    assert_eq!(l.text_word(0x20), 0x9280_03e1);
    // X = 0x2345_6789: movz x2, #0x2345, lsl 16.
    assert_eq!(l.text_word(0x24), 0xd2a4_68a2);
    // X = -0x2_0000_0000: bits [47:32] = 0xfffe, NOT = 1: movn x3, #1, lsl 32.
    assert_eq!(l.text_word(0x28), 0x92c0_0023);
    // X = -0x2_0000_0004 = 0xffff_fffd_ffff_fffc: movk x4, #0xfffd, lsl 32.
    assert_eq!(l.text_word(0x2c), 0xf2df_ffa4);
    // X = -0x2_0000_0008: bits [31:16] = 0xffff: movk x5, #0xffff, lsl 16.
    assert_eq!(l.text_word(0x30), 0xf2bf_ffe5);

    // PREL_G1 holds [-2^32, 2^32).
    let mut b = Builder::new(&[MOVZ_G1, RET]);
    let ahead = b.undefined("ahead");
    b.reloc(0, ahead, 0, R_MOVW_PREL_G1);
    let err = link_at(&b.bytes(), &[("ahead", BASE + 0x1_0000_0000)]).unwrap_err();
    expect_out_of_range(
        err,
        "R_AARCH64_MOVW_PREL_G1",
        "ahead",
        (-(1 << 32), (1 << 32) - 1),
    );
}

#[test]
fn got_page_and_lo12_address_the_slot() {
    let mut b = Builder::new(&[
        ADRP_X0,          // 0x00: adrp x0, :got:remote
        LDR_X0_X0,        // 0x04: ldr x0, [x0, :got_lo12:remote]
        ADRP_X0 | 1,      // 0x08: adrp x1, :got:remote+8
        LDR_X0_X0 | 0x21, // 0x0c: ldr x1, [x1, :got_lo12:remote+8]
        LDR_LIT_X1,       // 0x10: ldr x1, :got:remote (GOT_LD_PREL19)
        ADRP_X0 | 3,      // 0x14: adrp x3, _GLOBAL_OFFSET_TABLE_
        0xf940_0063,      // 0x18: ldr x3, [x3, #:gotpage_lo15:remote]
        0xf940_0084,      // 0x1c: ldr x4, [x4, #:gotoff_lo15:remote]
        MOVZ_G0 | 5,      // 0x20: movz x5, #:gotoff_g0:remote+8
        RET,
    ]);
    let remote = b.undefined("remote");
    let got = b.undefined("_GLOBAL_OFFSET_TABLE_");
    b.reloc(0x00, remote, 0, R_ADR_GOT_PAGE);
    b.reloc(0x04, remote, 0, R_LD64_GOT_LO12_NC);
    b.reloc(0x08, remote, 8, R_ADR_GOT_PAGE);
    b.reloc(0x0c, remote, 8, R_LD64_GOT_LO12_NC);
    b.reloc(0x10, remote, 0, R_GOT_LD_PREL19);
    b.reloc(0x14, got, 0, R_ADR_PREL_PG_HI21);
    b.reloc(0x18, remote, 0, R_LD64_GOTPAGE_LO15);
    b.reloc(0x1c, remote, 0, R_LD64_GOTOFF_LO15);
    b.reloc(0x20, remote, 8, R_MOVW_GOTOFF_G0);
    // Far beyond the 4 GiB an adrp reaches: only the GOT gets there.
    let target = 0x7fff_0000_1000;
    let l = link_at(&b.bytes(), &[("remote", target)]).unwrap();
    assert_eq!(l.layout.got_count(), 2, "one slot per (symbol, addend)");
    let slot = l.got_slot_of(target);
    let slot8 = l.got_slot_of(target + 8);
    assert_eq!(slot % 8, 0);

    assert_eq!(adrp_target(l.text_word(0x00), l.text), page(slot));
    // ldr x0, [x0, #(slot & 0xfff)]: imm12 = (slot & 0xfff) >> 3; the registers stay.
    assert_eq!(
        l.text_word(0x04),
        LDR_X0_X0 | (((slot & 0xfff) as u32 >> 3) << 10)
    );
    assert_eq!(adrp_target(l.text_word(0x08), l.text + 8), page(slot8));
    assert_eq!(l.text_word(0x08) & 0x1f, 1);
    assert_eq!(page(slot8) + 8 * imm12(l.text_word(0x0c)), slot8);
    assert_eq!(l.text_word(0x0c) & 0x3ff, 0x21);
    assert_eq!(imm19_target(l.text_word(0x10), l.text + 0x10), slot);
    // The -fpic form: the GOT's page, then G - Page(GOT) scaled by 8.
    assert_eq!(adrp_target(l.text_word(0x14), l.text + 0x14), page(l.got()));
    assert_eq!(page(l.got()) + 8 * imm12(l.text_word(0x18)), slot);
    assert_eq!(l.got() + 8 * imm12(l.text_word(0x1c)), slot);
    assert_eq!(
        l.text_word(0x20),
        (MOVZ_G0 | 5) | (((slot8 - l.got()) as u32) << 5)
    );
}

#[test]
fn undefined_weak_branches_fall_through_and_pc_relatives_see_the_place() {
    // AAELF64 (and ld.lld): with the image far above 128 MiB, a branch to an absent weak
    // function continues with the next instruction, needing no veneer; other PC-relative
    // references take S = P, so they hold the bare addend.
    let code = [
        BL, B, B_EQ, TBZ_W0_3, CBZ_X0, ADR_X2, ADRP_X0, LDR_LIT_X1, RET,
    ];
    let mut b = Builder::new(&code).with_data(&[0; 8]);
    let absent = b.weak_undefined("absent");
    let kinds = [R_CALL26, R_JUMP26, R_CONDBR19, R_TSTBR14, R_CONDBR19];
    for (i, r_type) in kinds.into_iter().enumerate() {
        b.reloc(4 * i as u64, absent, 0, r_type);
    }
    b.reloc(20, absent, 8, R_ADR_PREL_LO21);
    b.reloc(24, absent, 0, R_ADR_PREL_PG_HI21);
    b.reloc(28, absent, 0, R_LD_PREL_LO19);
    b.data_reloc(0, absent, 12, R_PREL32);
    let l = link_at(&b.bytes(), &[]).unwrap();
    assert_eq!(l.output.stubs_used, 0, "no veneer to address 0");
    assert_eq!(branch26_target(l.text_word(0), l.text), l.text + 4);
    assert_eq!(branch26_target(l.text_word(4), l.text + 4), l.text + 8);
    for offset in [8, 16] {
        let place = l.text + offset;
        assert_eq!(imm19_target(l.text_word(offset), place), place + 4);
    }
    assert_eq!(
        (l.text_word(12) >> 5) & 0x3fff,
        1,
        "tbz to the next instruction"
    );
    assert_eq!(adr_imm(l.text_word(20)), 8, "adr: the addend");
    assert_eq!(adrp_target(l.text_word(24), l.text + 24), page(l.text + 24));
    assert_eq!(imm19_target(l.text_word(28), l.text + 28), l.text + 28);
    assert_eq!(l.word(l.data), 12, "PREL32: the addend");
}

#[test]
fn data_relocations() {
    let mut b = Builder::new(&[RET, RET]).with_data(&[0; 64]);
    let f = b.function("f", 4);
    let here = b.datum("here", 0);
    let kvar = b.undefined("kvar");
    let low = b.undefined("low");
    let absent = b.weak_undefined("absent");
    b.data_reloc(0, kvar, 8, R_ABS64); // .xword kvar+8
    b.data_reloc(8, kvar, 0, R_PREL64); // .xword kvar - .
    b.data_reloc(16, low, 0, R_ABS32); // .word low
    b.data_reloc(20, f, 0, R_PREL32); // .word f - .
    b.data_reloc(24, absent, -2, R_ABS16); // .hword absent-2
    b.data_reloc(26, here, 0, R_PREL16); // .hword here - .
    b.data_reloc(28, f, 0, R_PLT32); // .word f@PLT - .
    b.data_reloc(32, f, 0, R_GOTREL64); // .xword f - _GLOBAL_OFFSET_TABLE_
    b.data_reloc(40, here, 4, R_GOTREL32); // .word here+4 - _GLOBAL_OFFSET_TABLE_
    b.data_reloc(44, kvar, 0, R_NONE);
    b.data_reloc(48, kvar, 0, R_NONE_WITHDRAWN);
    let k = 0x7fff_1234_5678;
    let l = link_at(&b.bytes(), &[("kvar", k), ("low", 0xffff_f000)]).unwrap();
    let d = l.data;
    let f_at = l.text + 4;
    let got = l.got() as i64;
    assert_eq!(l.u64(d), k + 8);
    assert_eq!(l.u64(d + 8) as i64, k as i64 - (d + 8) as i64);
    assert_eq!(l.word(d + 16), 0xffff_f000, "unsigned 32 bits fit ABS32");
    assert_eq!(l.word(d + 20) as i32 as i64, f_at as i64 - (d + 20) as i64);
    assert_eq!(l.u16(d + 24), 0xfffe, "-2 fits ABS16 as signed");
    assert_eq!(l.u16(d + 26) as i16, -26);
    assert_eq!(l.word(d + 28) as i32 as i64, f_at as i64 - (d + 28) as i64);
    assert_eq!(l.u64(d + 32) as i64, f_at as i64 - got);
    assert_eq!(l.word(d + 40) as i32 as i64, (d + 4) as i64 - got);
    assert_eq!(
        &l.image[(d + 44 - BASE) as usize..][..20],
        &[0; 20],
        "NONE writes nothing"
    );
    assert!(l.layout.needs_low_address, "ABS32 holds a 32-bit address");

    for (offset, value, r_type, name, bits) in [
        (0, 0x1_0000u64, R_ABS16, "R_AARCH64_ABS16", 16),
        (0, 0x1_0000_0000, R_ABS32, "R_AARCH64_ABS32", 32),
    ] {
        let mut b = Builder::new(&[RET]).with_data(&[0; 8]);
        let sym = b.absolute("wide", value);
        b.data_reloc(offset, sym, 0, r_type);
        let err = link_at(&b.bytes(), &[]).unwrap_err();
        expect_out_of_range(err, name, "wide", (-(1 << (bits - 1)), (1 << bits) - 1));
    }
    // PREL32 from the image to a kernel variable 8 GiB away.
    let mut b = Builder::new(&[RET]).with_data(&[0; 8]);
    let kvar = b.undefined("kvar");
    b.data_reloc(0, kvar, 0, R_PREL32);
    let err = link_at(&b.bytes(), &[("kvar", BASE + 0x2_0000_0000)]).unwrap_err();
    expect_out_of_range(err, "R_AARCH64_PREL32", "kvar", (-(1 << 31), (1 << 32) - 1));
}

#[test]
fn movw_gotoff_groups() {
    let mut b = Builder::new(&[
        MOVZ_G3, // movz x0, #:gotoff_g3:remote
        MOVK_G2, // movk x0, #:gotoff_g2_nc:remote
        MOVK_G1, // movk x0, #:gotoff_g1_nc:remote
        MOVK_G0, // movk x0, #:gotoff_g0_nc:remote
        MOVZ_G1, // movz x0, #:gotoff_g1:remote
        MOVZ_G2, // movz x0, #:gotoff_g2:remote
        RET,
    ]);
    let remote = b.undefined("remote");
    for (i, r_type) in [
        R_MOVW_GOTOFF_G3,
        R_MOVW_GOTOFF_G2_NC,
        R_MOVW_GOTOFF_G1_NC,
        R_MOVW_GOTOFF_G0_NC,
        R_MOVW_GOTOFF_G1,
        R_MOVW_GOTOFF_G2,
    ]
    .into_iter()
    .enumerate()
    {
        b.reloc(4 * i as u64, remote, 0, r_type);
    }
    let l = link_at(&b.bytes(), &[("remote", 0x1234)]).unwrap();
    // One slot, the first: G - GOT = 0, so every group is 0 and the opcodes stay.
    assert_eq!(l.got_slot_of(0x1234), l.got());
    for (i, insn) in [MOVZ_G3, MOVK_G2, MOVK_G1, MOVK_G0, MOVZ_G1, MOVZ_G2]
        .into_iter()
        .enumerate()
    {
        assert_eq!(l.text_word(4 * i as u64), insn, "instruction {i}");
    }
}

#[test]
fn refused_relocations_name_themselves() {
    for (r_type, name, reason) in [
        (
            R_TLSLE_ADD_TPREL_HI12,
            "R_AARCH64_TLSLE_ADD_TPREL_HI12",
            Some("thread-local"),
        ),
        (
            R_TLSDESC_ADR_PAGE21,
            "R_AARCH64_TLSDESC_ADR_PAGE21",
            Some("thread-local"),
        ),
        (R_GLOB_DAT, "R_AARCH64_GLOB_DAT", Some("dynamic relocation")),
        (R_GOTPCREL32, "R_AARCH64_GOTPCREL32", Some("GOT")),
        (281, "R_AARCH64_<281>", None),
        (0xe000, "R_AARCH64_<57344>", None),
    ] {
        let mut b = Builder::new(&[ADD_X0, RET]);
        let sym = b.undefined("tls_var");
        b.reloc(0, sym, 0, r_type);
        let err = link_at(&b.bytes(), &[("tls_var", BASE)]).unwrap_err();
        let message = err.to_string();
        match &err {
            LinkError::UnsupportedRelocation { site, hint } => {
                assert_eq!(site.reloc, name);
                assert_eq!(hint.is_some(), reason.is_some(), "{message}");
            }
            other => panic!("expected UnsupportedRelocation for {name}, got {other:?}"),
        }
        assert!(message.contains(name), "{message}");
        if let Some(reason) = reason {
            assert!(message.contains(reason), "{message}");
        }
    }
}

#[test]
fn relocation_names_cover_the_abi() {
    let arch = dlkm_linker::ArchKind::Aarch64;
    assert_eq!(arch.reloc_name(283), "R_AARCH64_CALL26");
    assert_eq!(arch.reloc_name(256), "R_AARCH64_NONE");
    assert_eq!(arch.reloc_name(1027), "R_AARCH64_RELATIVE");
    assert_eq!(
        arch.reloc_name(573),
        "R_AARCH64_TLSLD_LDST128_DTPREL_LO12_NC"
    );
    assert!(arch.reloc_kind(549).is_none());
    let call = arch.reloc_kind(283).unwrap();
    assert_eq!(call.stub, dlkm_linker::StubUse::Branch);
    assert_eq!(call.range, dlkm_linker::Range::Signed(28));
    assert_eq!(call.align, 4);
    // Every implemented number classifies to a kind of its own name.
    for r_type in 0..2048 {
        if let Some(kind) = arch.reloc_kind(r_type) {
            assert_eq!(kind.name, arch.reloc_name(r_type), "{r_type}");
            assert!(!kind.name.contains('<'), "{r_type}");
        }
    }
}

#[test]
fn truncated_and_corrupted_objects_give_errors_not_panics() {
    let mut b = Builder::new(&[ADRP_X0, LDR_X0_X0, BL, B_EQ, MOVZ_G0, RET]);
    let foo = b.undefined("foo");
    b.reloc(0, foo, 0, R_ADR_GOT_PAGE);
    b.reloc(4, foo, 0, R_LD64_GOT_LO12_NC);
    b.reloc(8, foo, 0, R_CALL26);
    b.reloc(12, foo, 0, R_CONDBR19);
    b.reloc(16, foo, 0, R_MOVW_UABS_G0_NC);
    let bytes = b.bytes();
    let table = [("foo", BASE + 0x1000)];
    assert!(link_at(&bytes, &table).is_ok());
    for len in 0..bytes.len() {
        assert!(
            link_at(&bytes[..len], &table).is_err(),
            "truncated at {len}"
        );
    }
    for at in 0..bytes.len() {
        for value in [0x00, 0xff, 0x80, 0x7f, 0x01] {
            let mut bad = bytes.clone();
            bad[at] = value;
            let _ = link_at(&bad, &table);
        }
    }
}

/// Every real aarch64 object of the corpus (`corpus/aarch64/VARIANT/*.o`; the objects that
/// must fail to load live in `errors/` below and are not taken) links at a 64 KiB-aligned base,
/// with every undefined symbol within ±64 MiB. Passes trivially while the corpus has none.
#[test]
fn corpus_objects_link() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/aarch64");
    let mut objects = Vec::new();
    for variant in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(variant.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "o") {
                objects.push(entry.path());
            }
        }
    }
    objects.sort();
    let mut failures = Vec::new();
    for path in &objects {
        let bytes = std::fs::read(path).unwrap();
        let result = (|| {
            let object = Object::parse(&path.display().to_string(), &bytes)?;
            let layout = layout(&object, &LayoutOptions::default())?;
            let base = BASE.next_multiple_of(layout.align.max(0x1_0000));
            let mut resolver = |name: &str| {
                // A stable spread over [base - 64 MiB, base + 64 MiB), 64-byte aligned.
                let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
                    (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3)
                });
                let offset = (hash % 0x800_0000) & !0x3f;
                Some(ExternalSymbol {
                    address: base - 0x400_0000 + offset,
                    size: 64,
                    kind: ExternalKind::Unknown,
                })
            };
            link(&object, &layout, base, &mut resolver).map(|_| ())
        })();
        if let Err(e) = result {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if objects.is_empty() {
        eprintln!("no aarch64 corpus objects under {}", root.display());
    }
}

/// The direct (no GOT, no veneer) relocations of an object assembled by llvm-mc, linked by
/// dlkm and by ld.lld at the same addresses, give the same bytes. Optional: skipped unless both
/// tools are installed (the project-wide comparison of corpus objects lives in `tests/`).
#[test]
fn direct_relocations_match_ld_lld() {
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("llvm-mc") || !have("ld.lld") {
        eprintln!("llvm-mc or ld.lld not installed: skipping the ld.lld comparison");
        return;
    }
    const SOURCE: &str = "
        .text
        .globl f, local, lit
    f:  bl near
        b near
        b.eq local
        cbz x0, local
        tbz w0, #3, local
        ldr x1, lit
        adr x2, local+3
        adrp x0, var
        add x0, x0, :lo12:var
        ldrb w1, [x0, :lo12:var+1]
        ldrh w1, [x0, :lo12:var+2]
        ldr w1, [x0, :lo12:var+4]
        ldr x1, [x0, :lo12:var+8]
        ldr q1, [x0, :lo12:var+16]
        adrp x0, below
        adrp x3, :pg_hi21_nc:var
        movz x0, #:abs_g3:kvar
        movk x0, #:abs_g2_nc:kvar
        movk x0, #:abs_g1_nc:kvar
        movk x0, #:abs_g0_nc:kvar
        movz x1, #:abs_g0:small
        movz x2, #:abs_g1:mid
        movz x3, #:abs_g2:big
        movz x4, #:abs_g0_s:zero-5
        movz x4, #:abs_g1_s:zero-0x12345
        movn x4, #:abs_g2_s:zero+0x123456789
        movz x5, #:prel_g3:f
        movk x5, #:prel_g2_nc:f
        movk x5, #:prel_g1_nc:f
        movk x5, #:prel_g0_nc:f
        movz x6, #:prel_g0:f
        movz x6, #:prel_g1:ahead
        movz x6, #:prel_g2:behind
        movk x6, #:prel_g2_nc:behind
        movk x6, #:prel_g1_nc:behind
    local:
        ret
        .p2align 3
    lit:
        .xword 0
        .data
        .xword kvar+8
        .xword kvar - .
        .word low
        .word f - .
        .hword zero - 2
        .hword f - .
    ";
    let symbols: &[(&str, u64)] = &[
        ("near", BASE + 0x7ff_f000),
        ("var", VAR),
        ("below", BASE - 0x3456_7000 + 0x9f8),
        ("kvar", 0x00a5_7654_3210_fedc),
        ("small", 0x1234),
        ("mid", 0x8765_4321),
        ("big", 0x1234_5678_9abc),
        ("zero", 0),
        ("ahead", BASE + 0x2000_0000),
        ("behind", BASE - 0x2_0000_0000),
        ("low", 0xffff_f000),
    ];
    let work = std::env::temp_dir().join(format!("dlkm-aarch64-lld-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let run = |command: &mut std::process::Command| {
        let out = command.current_dir(&work).output().unwrap();
        assert!(
            out.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(work.join("t.s"), SOURCE).unwrap();
    run(std::process::Command::new("llvm-mc").args([
        "-triple=aarch64-linux-gnu",
        "-filetype=obj",
        "-o",
        "t.o",
        "t.s",
    ]));
    let bytes = std::fs::read(work.join("t.o")).unwrap();
    let l = link_at(&bytes, symbols).unwrap();
    assert_eq!(
        l.output.stubs_used, 0,
        "only direct relocations are compared"
    );

    std::fs::write(
        work.join("t.ld"),
        format!(
            "SECTIONS {{\n  .text {:#x} : {{ t.o(.text) }}\n  .data {:#x} : {{ t.o(.data) }}\n  \
             /DISCARD/ : {{ *(.note.GNU-stack) *(.comment) }}\n}}\n",
            l.text, l.data
        ),
    )
    .unwrap();
    let mut lld = std::process::Command::new("ld.lld");
    lld.args(["-m", "aarch64linux", "-T", "t.ld", "-o", "t.out", "t.o"]);
    for (name, address) in symbols {
        lld.arg(format!("--defsym={name}={address:#x}"));
    }
    run(&mut lld);
    let linked = std::fs::read(work.join("t.out")).unwrap();
    let _ = std::fs::remove_dir_all(&work);

    use object::read::{Object as _, ObjectSection as _};
    let file = object::File::parse(&*linked).unwrap();
    for (name, address) in [(".text", l.text), (".data", l.data)] {
        let section = file.section_by_name(name).unwrap();
        assert_eq!(section.address(), address, "{name}");
        let theirs = section.data().unwrap();
        let at = (address - BASE) as usize;
        let ours = &l.image[at..at + theirs.len()];
        for (i, (a, b)) in ours.chunks(4).zip(theirs.chunks(4)).enumerate() {
            assert_eq!(a, b, "{name}+{:#x}: dlkm {a:02x?}, ld.lld {b:02x?}", 4 * i);
        }
    }
}

/// A header's alignment alone must not blow an image up: the fuzzers found an object whose
/// string section asks for 128 MiB alignment, which made every layout 128 MiB.
#[test]
fn alignment_beyond_the_limit_is_refused() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../corpus/fuzz-regressions/link_aarch64-timeout-huge-section-alignment.o"
    ))
    .unwrap();
    let object = dlkm_linker::Object::parse("huge-align.o", &bytes).unwrap();
    let err = dlkm_linker::layout(&object, &dlkm_linker::LayoutOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(".rodata.str1.8") && text.contains("alignment 0x8000000"),
        "{text}"
    );
}
