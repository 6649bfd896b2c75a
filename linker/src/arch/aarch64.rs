//! aarch64 (AAPCS64 / ELF for the Arm 64-bit Architecture, "AAELF64", RELA).
//!
//! Every static relocation of AAELF64 §5.7 that a module can carry outside thread-local storage
//! is a row of the table below (all but `R_AARCH64_GOTPCREL32`, see `classify`): its
//! formula ([`Expr`]), the field it fills, the values that fit (checked before encoding; only
//! the `_NC` kinds are unchecked, by definition) and the alignment the value must have. The semantics follow lld (`lld/ELF/Arch/AArch64.cpp`) where the
//! ABI leaves room: the sign test of `MOVW_PREL`/`MOVW_SABS` and the ranges of the data kinds.
//!
//! Instructions are little-endian 32-bit words; `encode_insn` replaces only the bits
//! of the immediate (and, for the signed `MOVW` kinds, the MOVZ/MOVN opcode bit), so the rest
//! of the instruction the compiler wrote stays as it was.

use super::{Arch, ArchKind, Expr, Field, Range, Refusal, RelocKind, StubUse};

pub(crate) struct Aarch64;

/// The ABI's name of each relocation number (AAELF64 §5.7, the PAuth ABI's two, and lld's
/// recent additions), for messages. ELF32 (ILP32) numbers are not listed: dlkm reads ELF64
/// aarch64 objects only, where those numbers are unallocated.
fn name(r_type: u32) -> Option<&'static str> {
    Some(match r_type {
        0 | 256 => "R_AARCH64_NONE",
        257 => "R_AARCH64_ABS64",
        258 => "R_AARCH64_ABS32",
        259 => "R_AARCH64_ABS16",
        260 => "R_AARCH64_PREL64",
        261 => "R_AARCH64_PREL32",
        262 => "R_AARCH64_PREL16",
        263 => "R_AARCH64_MOVW_UABS_G0",
        264 => "R_AARCH64_MOVW_UABS_G0_NC",
        265 => "R_AARCH64_MOVW_UABS_G1",
        266 => "R_AARCH64_MOVW_UABS_G1_NC",
        267 => "R_AARCH64_MOVW_UABS_G2",
        268 => "R_AARCH64_MOVW_UABS_G2_NC",
        269 => "R_AARCH64_MOVW_UABS_G3",
        270 => "R_AARCH64_MOVW_SABS_G0",
        271 => "R_AARCH64_MOVW_SABS_G1",
        272 => "R_AARCH64_MOVW_SABS_G2",
        273 => "R_AARCH64_LD_PREL_LO19",
        274 => "R_AARCH64_ADR_PREL_LO21",
        275 => "R_AARCH64_ADR_PREL_PG_HI21",
        276 => "R_AARCH64_ADR_PREL_PG_HI21_NC",
        277 => "R_AARCH64_ADD_ABS_LO12_NC",
        278 => "R_AARCH64_LDST8_ABS_LO12_NC",
        279 => "R_AARCH64_TSTBR14",
        280 => "R_AARCH64_CONDBR19",
        282 => "R_AARCH64_JUMP26",
        283 => "R_AARCH64_CALL26",
        284 => "R_AARCH64_LDST16_ABS_LO12_NC",
        285 => "R_AARCH64_LDST32_ABS_LO12_NC",
        286 => "R_AARCH64_LDST64_ABS_LO12_NC",
        287 => "R_AARCH64_MOVW_PREL_G0",
        288 => "R_AARCH64_MOVW_PREL_G0_NC",
        289 => "R_AARCH64_MOVW_PREL_G1",
        290 => "R_AARCH64_MOVW_PREL_G1_NC",
        291 => "R_AARCH64_MOVW_PREL_G2",
        292 => "R_AARCH64_MOVW_PREL_G2_NC",
        293 => "R_AARCH64_MOVW_PREL_G3",
        299 => "R_AARCH64_LDST128_ABS_LO12_NC",
        300 => "R_AARCH64_MOVW_GOTOFF_G0",
        301 => "R_AARCH64_MOVW_GOTOFF_G0_NC",
        302 => "R_AARCH64_MOVW_GOTOFF_G1",
        303 => "R_AARCH64_MOVW_GOTOFF_G1_NC",
        304 => "R_AARCH64_MOVW_GOTOFF_G2",
        305 => "R_AARCH64_MOVW_GOTOFF_G2_NC",
        306 => "R_AARCH64_MOVW_GOTOFF_G3",
        307 => "R_AARCH64_GOTREL64",
        308 => "R_AARCH64_GOTREL32",
        309 => "R_AARCH64_GOT_LD_PREL19",
        310 => "R_AARCH64_LD64_GOTOFF_LO15",
        311 => "R_AARCH64_ADR_GOT_PAGE",
        312 => "R_AARCH64_LD64_GOT_LO12_NC",
        313 => "R_AARCH64_LD64_GOTPAGE_LO15",
        314 => "R_AARCH64_PLT32",
        315 => "R_AARCH64_GOTPCREL32",
        316 => "R_AARCH64_PATCHINST",
        317 => "R_AARCH64_FUNCINIT64",
        512 => "R_AARCH64_TLSGD_ADR_PREL21",
        513 => "R_AARCH64_TLSGD_ADR_PAGE21",
        514 => "R_AARCH64_TLSGD_ADD_LO12_NC",
        515 => "R_AARCH64_TLSGD_MOVW_G1",
        516 => "R_AARCH64_TLSGD_MOVW_G0_NC",
        517 => "R_AARCH64_TLSLD_ADR_PREL21",
        518 => "R_AARCH64_TLSLD_ADR_PAGE21",
        519 => "R_AARCH64_TLSLD_ADD_LO12_NC",
        520 => "R_AARCH64_TLSLD_MOVW_G1",
        521 => "R_AARCH64_TLSLD_MOVW_G0_NC",
        522 => "R_AARCH64_TLSLD_LD_PREL19",
        523 => "R_AARCH64_TLSLD_MOVW_DTPREL_G2",
        524 => "R_AARCH64_TLSLD_MOVW_DTPREL_G1",
        525 => "R_AARCH64_TLSLD_MOVW_DTPREL_G1_NC",
        526 => "R_AARCH64_TLSLD_MOVW_DTPREL_G0",
        527 => "R_AARCH64_TLSLD_MOVW_DTPREL_G0_NC",
        528 => "R_AARCH64_TLSLD_ADD_DTPREL_HI12",
        529 => "R_AARCH64_TLSLD_ADD_DTPREL_LO12",
        530 => "R_AARCH64_TLSLD_ADD_DTPREL_LO12_NC",
        531 => "R_AARCH64_TLSLD_LDST8_DTPREL_LO12",
        532 => "R_AARCH64_TLSLD_LDST8_DTPREL_LO12_NC",
        533 => "R_AARCH64_TLSLD_LDST16_DTPREL_LO12",
        534 => "R_AARCH64_TLSLD_LDST16_DTPREL_LO12_NC",
        535 => "R_AARCH64_TLSLD_LDST32_DTPREL_LO12",
        536 => "R_AARCH64_TLSLD_LDST32_DTPREL_LO12_NC",
        537 => "R_AARCH64_TLSLD_LDST64_DTPREL_LO12",
        538 => "R_AARCH64_TLSLD_LDST64_DTPREL_LO12_NC",
        539 => "R_AARCH64_TLSIE_MOVW_GOTTPREL_G1",
        540 => "R_AARCH64_TLSIE_MOVW_GOTTPREL_G0_NC",
        541 => "R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21",
        542 => "R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC",
        543 => "R_AARCH64_TLSIE_LD_GOTTPREL_PREL19",
        544 => "R_AARCH64_TLSLE_MOVW_TPREL_G2",
        545 => "R_AARCH64_TLSLE_MOVW_TPREL_G1",
        546 => "R_AARCH64_TLSLE_MOVW_TPREL_G1_NC",
        547 => "R_AARCH64_TLSLE_MOVW_TPREL_G0",
        548 => "R_AARCH64_TLSLE_MOVW_TPREL_G0_NC",
        549 => "R_AARCH64_TLSLE_ADD_TPREL_HI12",
        550 => "R_AARCH64_TLSLE_ADD_TPREL_LO12",
        551 => "R_AARCH64_TLSLE_ADD_TPREL_LO12_NC",
        552 => "R_AARCH64_TLSLE_LDST8_TPREL_LO12",
        553 => "R_AARCH64_TLSLE_LDST8_TPREL_LO12_NC",
        554 => "R_AARCH64_TLSLE_LDST16_TPREL_LO12",
        555 => "R_AARCH64_TLSLE_LDST16_TPREL_LO12_NC",
        556 => "R_AARCH64_TLSLE_LDST32_TPREL_LO12",
        557 => "R_AARCH64_TLSLE_LDST32_TPREL_LO12_NC",
        558 => "R_AARCH64_TLSLE_LDST64_TPREL_LO12",
        559 => "R_AARCH64_TLSLE_LDST64_TPREL_LO12_NC",
        560 => "R_AARCH64_TLSDESC_LD_PREL19",
        561 => "R_AARCH64_TLSDESC_ADR_PREL21",
        562 => "R_AARCH64_TLSDESC_ADR_PAGE21",
        563 => "R_AARCH64_TLSDESC_LD64_LO12",
        564 => "R_AARCH64_TLSDESC_ADD_LO12",
        565 => "R_AARCH64_TLSDESC_OFF_G1",
        566 => "R_AARCH64_TLSDESC_OFF_G0_NC",
        567 => "R_AARCH64_TLSDESC_LDR",
        568 => "R_AARCH64_TLSDESC_ADD",
        569 => "R_AARCH64_TLSDESC_CALL",
        570 => "R_AARCH64_TLSLE_LDST128_TPREL_LO12",
        571 => "R_AARCH64_TLSLE_LDST128_TPREL_LO12_NC",
        572 => "R_AARCH64_TLSLD_LDST128_DTPREL_LO12",
        573 => "R_AARCH64_TLSLD_LDST128_DTPREL_LO12_NC",
        580 => "R_AARCH64_AUTH_ABS64",
        1024 => "R_AARCH64_COPY",
        1025 => "R_AARCH64_GLOB_DAT",
        1026 => "R_AARCH64_JUMP_SLOT",
        1027 => "R_AARCH64_RELATIVE",
        // TLS_IMPDEF1 and TLS_IMPDEF2 in the ABI; Linux's (and lld's) reading.
        1028 => "R_AARCH64_TLS_DTPMOD",
        1029 => "R_AARCH64_TLS_DTPREL",
        1030 => "R_AARCH64_TLS_TPREL",
        1031 => "R_AARCH64_TLSDESC",
        1032 => "R_AARCH64_IRELATIVE",
        1041 => "R_AARCH64_AUTH_RELATIVE",
        _ => return None,
    })
}

pub(crate) fn reloc_name(r_type: u32) -> String {
    name(r_type)
        .map(str::to_string)
        .unwrap_or_else(|| format!("R_AARCH64_<{r_type}>"))
}

/// The instruction fields relocations fill. [`Field::Insn`] carries the number from
/// [`Insn::code`]; each variant's comment gives the instructions, the bits of the word and the
/// bits of the value X it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insn {
    /// B, BL: imm26, word bits `[25:0]` = `X[27:2]`.
    Branch26,
    /// B.cond, CBZ/CBNZ, LDR (literal): imm19, word bits `[23:5]` = `X[20:2]`.
    Imm19,
    /// TBZ/TBNZ: imm14, word bits `[18:5]` = `X[15:2]`.
    Branch14,
    /// ADR: immhi:immlo, word bits `[23:5]:[30:29]` = `X[20:0]`.
    Adr,
    /// ADRP: the same field holding `X[32:12]` (X is a difference of pages).
    Adrp,
    /// ADD (immediate), LDR/STR (unsigned offset): imm12, word bits `[21:10]` = `X[11:scale]`,
    /// `scale` being log2 of the access size (0 for ADD and byte accesses).
    Lo12 { scale: u8 },
    /// LDR (64-bit, unsigned offset) into a GOT page: imm12, word bits `[21:10]` = `X[14:3]`.
    Lo15,
    /// MOVZ/MOVK: imm16, word bits `[20:5]` = `X[shift+15:shift]`; the opcode stays.
    Movw { shift: u8 },
    /// MOVN/MOVZ: as [`Insn::Movw`], but a negative X turns MOVZ into MOVN and the field
    /// holds NOT X (AAELF64, the notes to the signed and PC-relative group tables). MOVK stays MOVK
    /// with the plain bits, as lld does for the `_NC` kinds.
    MovwSigned { shift: u8 },
}

impl Insn {
    const fn code(self) -> u8 {
        match self {
            Insn::Branch26 => 0,
            Insn::Imm19 => 1,
            Insn::Branch14 => 2,
            Insn::Adr => 3,
            Insn::Adrp => 4,
            Insn::Lo12 { scale } => 5 + scale,
            Insn::Lo15 => 10,
            Insn::Movw { shift } => 11 + shift / 16,
            Insn::MovwSigned { shift } => 15 + shift / 16,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Insn::Branch26,
            1 => Insn::Imm19,
            2 => Insn::Branch14,
            3 => Insn::Adr,
            4 => Insn::Adrp,
            5..=9 => Insn::Lo12 { scale: code - 5 },
            10 => Insn::Lo15,
            11..=14 => Insn::Movw {
                shift: (code - 11) * 16,
            },
            15..=18 => Insn::MovwSigned {
                shift: (code - 15) * 16,
            },
            _ => return None,
        })
    }

    const fn field(self) -> Field {
        Field::Insn(self.code())
    }
}

/// Bits of the MOVN/MOVZ/MOVK word: `opc` is bits `[30:29]` (00 MOVN, 10 MOVZ, 11 MOVK).
const MOVW_OPC_HIGH: u32 = 1 << 30;
const MOVW_OPC_LOW: u32 = 1 << 29;
const IMM16_MASK: u32 = 0xffff << 5;
const IMM12_MASK: u32 = 0xfff << 10;
const ADR_MASK: u32 = (0x3 << 29) | (0x7ffff << 5);

/// `value` with its bits `[msb:lsb]` moved down to bit 0.
fn bits(value: u64, msb: u32, lsb: u32) -> u32 {
    ((value >> lsb) & ((1u64 << (msb - lsb + 1)) - 1)) as u32
}

/// The low `width` bits of `value`, sign-extended.
fn sign_extend(value: u64, width: u32) -> i64 {
    let unused = 64 - width;
    ((value << unused) as i64) >> unused
}

/// The instruction `word` with `field` set to `value`.
fn patch(word: u32, field: Insn, value: u64) -> u32 {
    let replace = |mask: u32, bits: u32| (word & !mask) | (bits & mask);
    match field {
        Insn::Branch26 => replace(0x03ff_ffff, bits(value, 27, 2)),
        Insn::Imm19 => replace(0x7ffff << 5, bits(value, 20, 2) << 5),
        Insn::Branch14 => replace(0x3fff << 5, bits(value, 15, 2) << 5),
        Insn::Adr => replace(ADR_MASK, adr_bits(value)),
        Insn::Adrp => replace(ADR_MASK, adr_bits(value >> 12)),
        Insn::Lo12 { scale } => replace(IMM12_MASK, bits(value, 11, scale.into()) << 10),
        Insn::Lo15 => replace(IMM12_MASK, bits(value, 14, 3) << 10),
        Insn::Movw { shift } => replace(
            IMM16_MASK,
            bits(value, u32::from(shift) + 15, shift.into()) << 5,
        ),
        Insn::MovwSigned { shift } => {
            let chunk = value >> shift;
            let mut word = word;
            let mut imm = chunk;
            if word & MOVW_OPC_LOW == 0 {
                // MOVN or MOVZ. The sign is bit 16 of the selected chunk, which the range
                // check makes the sign of X for the checking kinds (lld's rule; for G3 the
                // chunk has no bit 16, so the top group is always a MOVZ of the raw bits).
                if chunk & 0x1_0000 != 0 {
                    imm = !chunk;
                    word &= !MOVW_OPC_HIGH;
                } else {
                    word |= MOVW_OPC_HIGH;
                }
            }
            (word & !IMM16_MASK) | (bits(imm, 15, 0) << 5)
        }
    }
}

/// ADR/ADRP's split immediate: `imm[1:0]` in bits `[30:29]`, `imm[20:2]` in bits `[23:5]`.
fn adr_bits(imm: u64) -> u32 {
    (bits(imm, 1, 0) << 29) | (bits(imm, 20, 2) << 5)
}

/// The addend a REL relocation's instruction holds (AAELF64 §5.7.2: the immediate, scaled as
/// the instruction scales it, sign-extended). As in lld, the MOVW and ADRP immediates are not
/// shifted: the same addend can then be given to every instruction of a group.
fn extract(word: u32, field: Insn) -> i64 {
    let word = u64::from(word);
    match field {
        Insn::Branch26 => sign_extend((word & 0x03ff_ffff) << 2, 28),
        Insn::Imm19 => sign_extend(((word >> 5) & 0x7ffff) << 2, 21),
        Insn::Branch14 => sign_extend(((word >> 5) & 0x3fff) << 2, 16),
        Insn::Adr | Insn::Adrp => {
            sign_extend((((word >> 5) & 0x7ffff) << 2) | ((word >> 29) & 0x3), 21)
        }
        Insn::Lo12 { scale } => sign_extend(((word >> 10) & 0xfff) << scale, 12 + u32::from(scale)),
        Insn::Lo15 => sign_extend(((word >> 10) & 0xfff) << 3, 15),
        Insn::Movw { .. } | Insn::MovwSigned { .. } => sign_extend((word >> 5) & 0xffff, 16),
    }
}

use Field::*;
use Range::*;

/// A table row that also asks for the value to be a multiple of `align`.
const fn aligned(kind: RelocKind, align: u64) -> RelocKind {
    RelocKind { align, ..kind }
}

const B26: Field = Insn::Branch26.field();
const IMM19: Field = Insn::Imm19.field();
const B14: Field = Insn::Branch14.field();
const ADR: Field = Insn::Adr.field();
const ADRP: Field = Insn::Adrp.field();
const fn lo12(scale: u8) -> Field {
    Insn::Lo12 { scale }.field()
}
const LO15: Field = Insn::Lo15.field();
const fn movw(shift: u8) -> Field {
    Insn::Movw { shift }.field()
}
const fn movw_signed(shift: u8) -> Field {
    Insn::MovwSigned { shift }.field()
}

const NONE: RelocKind = RelocKind::new("R_AARCH64_NONE", Expr::None, Data8, Unchecked);

// Data relocations (AAELF64 table "Data relocations"): the 16- and 32-bit ones accept a value
// read either as signed or as unsigned, -2^(n-1) <= X < 2^n.
/// S + A. Example: `.xword sym`.
const ABS64: RelocKind = RelocKind::new("R_AARCH64_ABS64", Expr::Abs, Data64, Either(64));
/// S + A. Example: `.word sym`; the module's own addresses fit only below 4 GiB.
const ABS32: RelocKind =
    RelocKind::new("R_AARCH64_ABS32", Expr::Abs, Data32, Either(32)).low_address();
const ABS16: RelocKind = RelocKind::new("R_AARCH64_ABS16", Expr::Abs, Data16, Either(16));
/// S + A - P. The ABI checks nothing; a difference of two addresses fits 64 signed bits.
const PREL64: RelocKind = RelocKind::new("R_AARCH64_PREL64", Expr::Pc, Data64, Signed(64));
/// S + A - P. Example: `.word sym - .` in `.eh_frame`.
const PREL32: RelocKind = RelocKind::new("R_AARCH64_PREL32", Expr::Pc, Data32, Either(32));
const PREL16: RelocKind = RelocKind::new("R_AARCH64_PREL16", Expr::Pc, Data16, Either(16));
/// PLT(S) + A - P, a function's offset (relative vtables). No stub: the addend here is a
/// correction relative to the place, not an offset into the function, so a stub keyed by
/// S + A would jump to the wrong address; the function itself must be within ±2 GiB.
const PLT32: RelocKind = RelocKind::new("R_AARCH64_PLT32", Expr::Pc, Data32, Signed(32));
/// S + A - GOT.
const GOTREL64: RelocKind =
    RelocKind::new("R_AARCH64_GOTREL64", Expr::GotOffset, Data64, Signed(64));
const GOTREL32: RelocKind =
    RelocKind::new("R_AARCH64_GOTREL32", Expr::GotOffset, Data32, Signed(32));

// Group relocations for an unsigned value (MOVZ/MOVK, opcode kept). Example:
// `movz x0, #:abs_g3:sym; movk x0, #:abs_g2_nc:sym; movk x0, #:abs_g1_nc:sym;
// movk x0, #:abs_g0_nc:sym` (-mcmodel=large).
const MOVW_UABS_G0: RelocKind =
    RelocKind::new("R_AARCH64_MOVW_UABS_G0", Expr::Abs, movw(0), Unsigned(16));
const MOVW_UABS_G0_NC: RelocKind =
    RelocKind::new("R_AARCH64_MOVW_UABS_G0_NC", Expr::Abs, movw(0), Unchecked);
/// S + A below 4 GiB: the module's own addresses fit only there.
const MOVW_UABS_G1: RelocKind =
    RelocKind::new("R_AARCH64_MOVW_UABS_G1", Expr::Abs, movw(16), Unsigned(32)).low_address();
const MOVW_UABS_G1_NC: RelocKind =
    RelocKind::new("R_AARCH64_MOVW_UABS_G1_NC", Expr::Abs, movw(16), Unchecked);
const MOVW_UABS_G2: RelocKind =
    RelocKind::new("R_AARCH64_MOVW_UABS_G2", Expr::Abs, movw(32), Unsigned(48));
const MOVW_UABS_G2_NC: RelocKind =
    RelocKind::new("R_AARCH64_MOVW_UABS_G2_NC", Expr::Abs, movw(32), Unchecked);
/// The top group: every 64-bit value fits (the check only catches a 65-bit S + A).
const MOVW_UABS_G3: RelocKind =
    RelocKind::new("R_AARCH64_MOVW_UABS_G3", Expr::Abs, movw(48), Either(64));

// Group relocations for a signed value: MOVZ for X >= 0, MOVN of NOT X for X < 0, with
// -2^(16(n+1)) <= X < 2^(16(n+1)).
const MOVW_SABS_G0: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_SABS_G0",
    Expr::Abs,
    movw_signed(0),
    Signed(17),
);
const MOVW_SABS_G1: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_SABS_G1",
    Expr::Abs,
    movw_signed(16),
    Signed(33),
);
const MOVW_SABS_G2: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_SABS_G2",
    Expr::Abs,
    movw_signed(32),
    Signed(49),
);

// Group relocations for a PC-relative offset, S + A - P (the `_NC` ones relocate MOVK).
const MOVW_PREL_G0: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_PREL_G0",
    Expr::Pc,
    movw_signed(0),
    Signed(17),
);
const MOVW_PREL_G0_NC: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_PREL_G0_NC",
    Expr::Pc,
    movw_signed(0),
    Unchecked,
);
const MOVW_PREL_G1: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_PREL_G1",
    Expr::Pc,
    movw_signed(16),
    Signed(33),
);
const MOVW_PREL_G1_NC: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_PREL_G1_NC",
    Expr::Pc,
    movw_signed(16),
    Unchecked,
);
const MOVW_PREL_G2: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_PREL_G2",
    Expr::Pc,
    movw_signed(32),
    Signed(49),
);
const MOVW_PREL_G2_NC: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_PREL_G2_NC",
    Expr::Pc,
    movw_signed(32),
    Unchecked,
);
const MOVW_PREL_G3: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_PREL_G3",
    Expr::Pc,
    movw_signed(48),
    Signed(64),
);

// Group relocations for a GOT slot's offset from the GOT, G(GDAT(S + A)) - GOT.
const MOVW_GOTOFF_G0: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_GOTOFF_G0",
    Expr::GotSlotOffset,
    movw_signed(0),
    Signed(17),
);
const MOVW_GOTOFF_G0_NC: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_GOTOFF_G0_NC",
    Expr::GotSlotOffset,
    movw_signed(0),
    Unchecked,
);
const MOVW_GOTOFF_G1: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_GOTOFF_G1",
    Expr::GotSlotOffset,
    movw_signed(16),
    Signed(33),
);
const MOVW_GOTOFF_G1_NC: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_GOTOFF_G1_NC",
    Expr::GotSlotOffset,
    movw_signed(16),
    Unchecked,
);
const MOVW_GOTOFF_G2: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_GOTOFF_G2",
    Expr::GotSlotOffset,
    movw_signed(32),
    Signed(49),
);
const MOVW_GOTOFF_G2_NC: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_GOTOFF_G2_NC",
    Expr::GotSlotOffset,
    movw_signed(32),
    Unchecked,
);
const MOVW_GOTOFF_G3: RelocKind = RelocKind::new(
    "R_AARCH64_MOVW_GOTOFF_G3",
    Expr::GotSlotOffset,
    movw_signed(48),
    Signed(64),
);

// PC-relative addresses (AAELF64 table "Relocations to generate 19, 21 and 33 bit
// PC-relative addresses").
/// S + A - P, ±1 MiB. Example: `ldr x0, literal`.
const LD_PREL_LO19: RelocKind = aligned(
    RelocKind::new("R_AARCH64_LD_PREL_LO19", Expr::Pc, IMM19, Signed(21)),
    4,
);
/// S + A - P, ±1 MiB. Example: `adr x0, sym`.
const ADR_PREL_LO21: RelocKind =
    RelocKind::new("R_AARCH64_ADR_PREL_LO21", Expr::Pc, ADR, Signed(21));
/// Page(S + A) - Page(P), ±4 GiB. Example: `adrp x0, sym`.
const ADR_PREL_PG_HI21: RelocKind =
    RelocKind::new("R_AARCH64_ADR_PREL_PG_HI21", Expr::PagePc, ADRP, Signed(33));
const ADR_PREL_PG_HI21_NC: RelocKind = RelocKind::new(
    "R_AARCH64_ADR_PREL_PG_HI21_NC",
    Expr::PagePc,
    ADRP,
    Unchecked,
);
/// S + A, low 12 bits. Example: `add x0, x0, :lo12:sym` after an `adrp`.
const ADD_ABS_LO12_NC: RelocKind =
    RelocKind::new("R_AARCH64_ADD_ABS_LO12_NC", Expr::Abs, lo12(0), Unchecked);
// S + A, low 12 bits scaled by the access size, which must divide them (a page is a multiple
// of every access size, so checking the whole S + A checks the low bits). Example:
// `ldr x1, [x0, :lo12:sym]`.
const LDST8_ABS_LO12_NC: RelocKind =
    RelocKind::new("R_AARCH64_LDST8_ABS_LO12_NC", Expr::Abs, lo12(0), Unchecked);
const LDST16_ABS_LO12_NC: RelocKind = aligned(
    RelocKind::new(
        "R_AARCH64_LDST16_ABS_LO12_NC",
        Expr::Abs,
        lo12(1),
        Unchecked,
    ),
    2,
);
const LDST32_ABS_LO12_NC: RelocKind = aligned(
    RelocKind::new(
        "R_AARCH64_LDST32_ABS_LO12_NC",
        Expr::Abs,
        lo12(2),
        Unchecked,
    ),
    4,
);
const LDST64_ABS_LO12_NC: RelocKind = aligned(
    RelocKind::new(
        "R_AARCH64_LDST64_ABS_LO12_NC",
        Expr::Abs,
        lo12(3),
        Unchecked,
    ),
    8,
);
const LDST128_ABS_LO12_NC: RelocKind = aligned(
    RelocKind::new(
        "R_AARCH64_LDST128_ABS_LO12_NC",
        Expr::Abs,
        lo12(4),
        Unchecked,
    ),
    16,
);

// Control flow (AAELF64 "Relocations for control-flow instructions"). Only B and BL may go
// through a veneer (AAELF64 "Call and Jump relocations").
/// S + A - P, ±32 KiB. Example: `tbz w0, #3, label`.
const TSTBR14: RelocKind = aligned(
    RelocKind::new("R_AARCH64_TSTBR14", Expr::Pc, B14, Signed(16)),
    4,
);
/// S + A - P, ±1 MiB. Example: `b.eq label`, `cbz x0, label`.
const CONDBR19: RelocKind = aligned(
    RelocKind::new("R_AARCH64_CONDBR19", Expr::Pc, IMM19, Signed(21)),
    4,
);
/// S + A - P, ±128 MiB, else through a veneer. Example: `b sym` (a tail call).
const JUMP26: RelocKind = aligned(
    RelocKind::new("R_AARCH64_JUMP26", Expr::Pc, B26, Signed(28)).stub(StubUse::Branch),
    4,
);
/// S + A - P, ±128 MiB, else through a veneer. Example: `bl sym`.
const CALL26: RelocKind = aligned(
    RelocKind::new("R_AARCH64_CALL26", Expr::Pc, B26, Signed(28)).stub(StubUse::Branch),
    4,
);

// GOT-relative instructions (AAELF64 "GOT-relative instruction relocations"). The slots hold
// S + A, so G here is G(GDAT(S + A)).
/// G - P, ±1 MiB. Example: `ldr x0, :got:sym`.
const GOT_LD_PREL19: RelocKind = aligned(
    RelocKind::new(
        "R_AARCH64_GOT_LD_PREL19",
        Expr::GotSlotPc,
        IMM19,
        Signed(21),
    ),
    4,
);
/// G - GOT, 0 <= X < 32 KiB.
const LD64_GOTOFF_LO15: RelocKind = aligned(
    RelocKind::new(
        "R_AARCH64_LD64_GOTOFF_LO15",
        Expr::GotSlotOffset,
        LO15,
        Unsigned(15),
    ),
    8,
);
/// Page(G) - Page(P), ±4 GiB. Example: `adrp x0, :got:sym`.
const ADR_GOT_PAGE: RelocKind = RelocKind::new(
    "R_AARCH64_ADR_GOT_PAGE",
    Expr::GotSlotPagePc,
    ADRP,
    Signed(33),
);
/// G, low 12 bits scaled by 8. Example: `ldr x0, [x0, :got_lo12:sym]`.
const LD64_GOT_LO12_NC: RelocKind = aligned(
    RelocKind::new(
        "R_AARCH64_LD64_GOT_LO12_NC",
        Expr::GotSlot,
        lo12(3),
        Unchecked,
    ),
    8,
);
/// G - Page(GOT), 0 <= X < 32 KiB. Example (-fpic): `adrp x0, _GLOBAL_OFFSET_TABLE_;
/// ldr x0, [x0, #:gotpage_lo15:sym]`.
const LD64_GOTPAGE_LO15: RelocKind = aligned(
    RelocKind::new(
        "R_AARCH64_LD64_GOTPAGE_LO15",
        Expr::GotSlotPageOffset,
        LO15,
        Unsigned(15),
    ),
    8,
);

const TLS_HINT: &str =
    "thread-local storage is not supported in modules; keep per-thread state in the kernel";
const DYNAMIC_HINT: &str = "a dynamic relocation; modules are relocatable objects (ET_REL)";

impl Arch for Aarch64 {
    const KIND: ArchKind = ArchKind::Aarch64;
    const BIG_ENDIAN: bool = false;
    const STUB_SIZE: u64 = 16;
    /// The veneer's literal is 8-aligned this way.
    const STUB_ALIGN: u64 = 8;
    const GOT_ENTRY_SIZE: u64 = 8;
    const SLOT_INCLUDES_ADDEND: bool = true;

    fn classify(r_type: u32) -> Result<&'static RelocKind, Refusal> {
        Ok(match r_type {
            0 | 256 => &NONE,
            257 => &ABS64,
            258 => &ABS32,
            259 => &ABS16,
            260 => &PREL64,
            261 => &PREL32,
            262 => &PREL16,
            263 => &MOVW_UABS_G0,
            264 => &MOVW_UABS_G0_NC,
            265 => &MOVW_UABS_G1,
            266 => &MOVW_UABS_G1_NC,
            267 => &MOVW_UABS_G2,
            268 => &MOVW_UABS_G2_NC,
            269 => &MOVW_UABS_G3,
            270 => &MOVW_SABS_G0,
            271 => &MOVW_SABS_G1,
            272 => &MOVW_SABS_G2,
            273 => &LD_PREL_LO19,
            274 => &ADR_PREL_LO21,
            275 => &ADR_PREL_PG_HI21,
            276 => &ADR_PREL_PG_HI21_NC,
            277 => &ADD_ABS_LO12_NC,
            278 => &LDST8_ABS_LO12_NC,
            279 => &TSTBR14,
            280 => &CONDBR19,
            282 => &JUMP26,
            283 => &CALL26,
            284 => &LDST16_ABS_LO12_NC,
            285 => &LDST32_ABS_LO12_NC,
            286 => &LDST64_ABS_LO12_NC,
            287 => &MOVW_PREL_G0,
            288 => &MOVW_PREL_G0_NC,
            289 => &MOVW_PREL_G1,
            290 => &MOVW_PREL_G1_NC,
            291 => &MOVW_PREL_G2,
            292 => &MOVW_PREL_G2_NC,
            293 => &MOVW_PREL_G3,
            299 => &LDST128_ABS_LO12_NC,
            300 => &MOVW_GOTOFF_G0,
            301 => &MOVW_GOTOFF_G0_NC,
            302 => &MOVW_GOTOFF_G1,
            303 => &MOVW_GOTOFF_G1_NC,
            304 => &MOVW_GOTOFF_G2,
            305 => &MOVW_GOTOFF_G2_NC,
            306 => &MOVW_GOTOFF_G3,
            307 => &GOTREL64,
            308 => &GOTREL32,
            309 => &GOT_LD_PREL19,
            310 => &LD64_GOTOFF_LO15,
            311 => &ADR_GOT_PAGE,
            312 => &LD64_GOT_LO12_NC,
            313 => &LD64_GOTPAGE_LO15,
            314 => &PLT32,
            315 => {
                return Err(Refusal {
                    hint: Some(
                        "G(GDAT(S)) + A - P adds the addend after the GOT slot, and dlkm's \
                         aarch64 GOT slots hold S + A; use an R_AARCH64_ADR_GOT_PAGE / \
                         R_AARCH64_LD64_GOT_LO12_NC pair",
                    ),
                })
            }
            512..=573 | 1028..=1031 => {
                return Err(Refusal {
                    hint: Some(TLS_HINT),
                })
            }
            580 | 1041 => {
                return Err(Refusal {
                    hint: Some(
                        "signed pointers of the PAuth ABI are not supported in modules; \
                         build without -mabi=pauthtest",
                    ),
                })
            }
            1024..=1027 | 1032 => {
                return Err(Refusal {
                    hint: Some(DYNAMIC_HINT),
                })
            }
            _ => return Err(Refusal { hint: None }),
        })
    }

    /// The veneer: loads the 64-bit target from its own literal into IP0 (x16, which
    /// AAPCS64 lets a veneer clobber and BTI accepts for `bti c` landing pads) and branches
    /// there. Position independent; reaches any address.
    fn write_stub(stub: &mut [u8], _stub_address: u64, target: u64) {
        const TEMPLATE: [u8; 16] = [
            0x50, 0x00, 0x00, 0x58, // ldr x16, #8
            0x00, 0x02, 0x1f, 0xd6, // br  x16
            0, 0, 0, 0, 0, 0, 0, 0, // .xword target
        ];
        if let Some(slot) = stub.first_chunk_mut::<16>() {
            *slot = TEMPLATE;
            slot[8..].copy_from_slice(&target.to_le_bytes());
        }
    }

    /// AAELF64 §5.7.10 (as lld): B, BL, B.cond and TBZ to an undefined weak symbol continue
    /// with the next instruction; other PC-relative references see S = P.
    fn undefined_weak_address(kind: &RelocKind, place: u64) -> Option<u64> {
        let branches = [&CALL26, &JUMP26, &CONDBR19, &TSTBR14];
        Some(if branches.iter().any(|b| b.name == kind.name) {
            place.wrapping_add(4)
        } else {
            place
        })
    }

    fn encode_insn(field: u8, place: &mut [u8], value: u64) {
        let (Some(field), Some(bytes)) = (Insn::from_code(field), place.first_chunk_mut::<4>())
        else {
            return;
        };
        *bytes = patch(u32::from_le_bytes(*bytes), field, value).to_le_bytes();
    }

    fn decode_insn(field: u8, place: &[u8]) -> i64 {
        match (Insn::from_code(field), place.first_chunk::<4>()) {
            (Some(field), Some(bytes)) => extract(u32::from_le_bytes(*bytes), field),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(kind: &RelocKind, word: u32, value: i128) -> u32 {
        let Field::Insn(code) = kind.field else {
            panic!("{} is not an instruction relocation", kind.name)
        };
        let mut bytes = word.to_le_bytes();
        Aarch64::encode_insn(code, &mut bytes, value as u64);
        u32::from_le_bytes(bytes)
    }

    #[test]
    fn every_kind_is_named_by_its_number() {
        for r_type in 0..0x1_0000 {
            if let Ok(kind) = Aarch64::classify(r_type) {
                assert_eq!(kind.name, reloc_name(r_type), "{r_type}");
            }
        }
        assert_eq!(reloc_name(569), "R_AARCH64_TLSDESC_CALL");
        assert_eq!(reloc_name(281), "R_AARCH64_<281>");
    }

    #[test]
    fn field_codes_round_trip() {
        for code in 0..=u8::MAX {
            if let Some(field) = Insn::from_code(code) {
                assert_eq!(field.code(), code);
            }
        }
        assert_eq!(Insn::from_code(19), None);
    }

    #[test]
    fn encoders_write_only_their_bits() {
        // bl with every bit outside imm26 set stays a bl.
        assert_eq!(encode(&CALL26, 0x9400_0000, -4), 0x97ff_ffff);
        assert_eq!(encode(&CALL26, 0x97ff_ffff, 8), 0x9400_0002);
        // b.ne (cond 0001) keeps its condition; cbnz x3 keeps its register.
        assert_eq!(encode(&CONDBR19, 0x5400_0001, 0x100), 0x5400_0801);
        assert_eq!(encode(&CONDBR19, 0xb500_0003, -4), 0xb5ff_ffe3);
        // tbnz x9, #40 keeps b5 and b40.
        assert_eq!(encode(&TSTBR14, 0xb740_0009, 0x20), 0xb740_0109);
        // adr x2: immlo = 1, immhi = 0x40 for 0x101.
        assert_eq!(encode(&ADR_PREL_LO21, 0x1000_0002, 0x101), 0x3000_0802);
        // adrp x0 of -1 page: imm21 all ones.
        assert_eq!(encode(&ADR_PREL_PG_HI21, 0x9000_0000, -4096), 0xf0ff_ffe0);
        // ldr x1, [x0, #0xff8] -> imm12 0x1ff.
        assert_eq!(
            encode(&LDST64_ABS_LO12_NC, 0xf940_0001, 0x1234_5ff8),
            0xf947_fc01
        );
        // ldr q1, [x0, #0x10] -> imm12 1.
        assert_eq!(encode(&LDST128_ABS_LO12_NC, 0x3dc0_0001, 0x10), 0x3dc0_0401);
        // movk x0, #:abs_g2_nc: -> bits [47:32].
        assert_eq!(
            encode(&MOVW_UABS_G2_NC, 0xf2c0_0000, 0x1234_5678_9abc_def0),
            0xf2ca_cf00
        );
    }

    #[test]
    fn signed_movw_picks_movz_or_movn() {
        // movz x0, #0 with X = -5: movn x0, #4.
        assert_eq!(encode(&MOVW_SABS_G0, 0xd280_0000, -5), 0x9280_0080);
        // movn x0, #0 with X = 5: movz x0, #5.
        assert_eq!(encode(&MOVW_SABS_G0, 0x9280_0000, 5), 0xd280_00a0);
        // movk keeps its opcode and takes the plain bits.
        assert_eq!(encode(&MOVW_PREL_G0_NC, 0xf280_0000, -5), 0xf29f_ff60);
        // G3: the top group is always a MOVZ of the raw bits.
        assert_eq!(encode(&MOVW_PREL_G3, 0x92e0_0000, -0x10), 0xd2ff_ffe0);
    }

    #[test]
    fn rel_addends_are_read_back() {
        for (kind, word, addend) in [
            (&CALL26, 0x97ff_ffffu32, -4i64),
            (&CONDBR19, 0x5400_0801, 0x100),
            (&TSTBR14, 0x3607_ffe0, -4),
            (&ADR_PREL_LO21, 0x3000_0802, 0x101),
            (&ADD_ABS_LO12_NC, 0x9100_2000, 8),
            (&LDST64_ABS_LO12_NC, 0xf940_0401, 8),
            (&MOVW_UABS_G0_NC, 0xf29f_ff60, -5),
        ] {
            let Field::Insn(code) = kind.field else {
                unreachable!()
            };
            assert_eq!(
                Aarch64::decode_insn(code, &word.to_le_bytes()),
                addend,
                "{}",
                kind.name
            );
        }
        assert_eq!(Aarch64::decode_insn(0, &[0, 0]), 0, "short place");
    }

    #[test]
    fn short_places_are_left_alone() {
        let mut short = [0u8; 3];
        Aarch64::encode_insn(Insn::Branch26.code(), &mut short, 8);
        assert_eq!(short, [0; 3]);
        let mut stub = [0u8; 8];
        Aarch64::write_stub(&mut stub, 0, 0x1234);
        assert_eq!(stub, [0; 8]);
    }
}
