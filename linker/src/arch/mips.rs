//! MIPS32, o32 ABI (System V MIPS psABI, REL: addends live in the relocated place), in both
//! byte orders.
//!
//! Modules are compiled with `-fno-pic -mno-abicalls -G 0`: code addresses data with
//! `lui`/`addiu` pairs (`R_MIPS_HI16`/`R_MIPS_LO16`), calls with `jal` (`R_MIPS_26`, or
//! `balc`, `R_MIPS_PC26_S2`, on R6) and never goes through a GOT or `$gp`. What `-mabicalls`
//! and PIC code ask of a linker (GOT16, CALL16 and the other GOT kinds) is refused with that
//! advice.
//!
//! | type | value | field | range |
//! |---|---|---|---|
//! | `R_MIPS_32`, `R_MIPS_REL32` | S + A | word | 32 bits, either sign |
//! | `R_MIPS_26` | S + A | `jal`/`j` bits 27..2 | the 256 MiB region of the delay slot; else a stub |
//! | `R_MIPS_HI16` | S + AHL | `lui` imm = (v + 0x8000) >> 16 | 32 bits |
//! | `R_MIPS_LO16` | S + A | imm = v & 0xffff | 32 bits |
//! | `R_MIPS_GPREL16`, `R_MIPS_LITERAL` | S + A - GP | imm | signed 16 |
//! | `R_MIPS_GPREL32` | S + A - GP | word | a 32-bit difference |
//! | `R_MIPS_PC16` | S + A - P | imm = v >> 2 | signed 18, 4-aligned |
//! | `R_MIPS_PC19_S2` / `R_MIPS_PC21_S2` | S + A - P | 19 / 21 bits = v >> 2 | signed 21 / 23 |
//! | `R_MIPS_PC26_S2` | S + A' - P | 26 bits = (v - 4) >> 2 | signed 27 (see below); else a stub |
//! | `R_MIPS_PCHI16` / `R_MIPS_PCLO16` | S + A - P | as HI16 / LO16 | a 32-bit difference |
//! | `R_MIPS_PC32` | S + A - P | word | a 32-bit difference |
//!
//! Addends (read by `Arch::implicit_addends` at parse time):
//! - `R_MIPS_HI16`: AHL = (sign-extended `lui` immediate << 16) + the sign-extended immediate
//!   of its matching `R_MIPS_LO16`, which is the next LO16 against the same symbol *later in
//!   the table*, not necessarily the next entry (GNU ld's `mips_elf_next_relocation`, lld's
//!   `computeMipsAddend`). gcc lets several HI16s share one LO16 (each finds it); clang lets one
//!   HI16 feed several LO16s (the HI16 pairs with the first; every LO16 only needs its own low
//!   half). A HI16 with no matching LO16 (gcc's dead-code elimination can leave one) uses its
//!   own half alone, as GNU ld and lld do (both only warn): AHL = imm << 16. `R_MIPS_PCHI16`
//!   pairs with `R_MIPS_PCLO16` the same way. The LO16 is looked for in the next few entries,
//!   where compilers put it; a HI16 whose LO16 is further has it found by one backward pass
//!   with a map from symbol to the nearest LO16 below: O(n) per section either way.
//! - `R_MIPS_26`: the 26-bit field << 2, sign-extended from 28 bits (lld; GNU ld for every
//!   symbol but section symbols, which only differ for offsets of 128 MiB and more). The psABI's
//!   `(A << 2 | (P + 4) & 0xf0000000) + S` for local symbols gives the same field: the region
//!   bits it adds are shifted out. What the region decides is reach, checked as
//!   `Range::Region { bits: 28, pc_bias: 4 }` on S + A, as GNU ld does.
//! - `R_MIPS_PC26_S2`: stored as A' = A + 4, the offset of the target from the symbol (the
//!   assembler writes A = -4 for `balc foo`, the hardware adding P + 4). A stub then jumps to
//!   S + A', the real target, and the encoder takes the 4 back off. The shared walk checks the
//!   range on S + A' - P, 4 more than the encoded offset, so the range is halved to signed 27
//!   bits (±64 MiB) to stay exact: a target between 64 and 128 MiB away goes through a stub
//!   where the hardware could have reached it directly, never the other way round.
//! - GP-relative kinds: the psABI adds the object's GP0 (`.reginfo`'s `ri_gp_value`) to the
//!   addend of local symbols. gcc and clang write 0 there in relocatable objects (checked with
//!   gcc 12 and clang 14, `-G 0` and `-G 8`), so nothing is added.
//!
//! The module's GP is lld's `_gp`: the start of the GOT + 0x7ff0, the GOT being the area the
//! layout puts right after read-only data, just below the writable segment where small data
//! (`.sdata`, `.sbss`) lands. A `-G 0` module has no GP-relative references at all.
//!
//! Far calls go through a 16-byte stub inside the image, the jalr form of IRIX's `-jalr`:
//! `lui $t9, %hi(target); addiu $t9, $t9, %lo(target); jr $t9; nop`. `$t9` is free at a call
//! (caller-saved, and the PIC calling convention's call register anyway); the call's own delay
//! slot is left as it is.

use std::collections::HashMap;

use object::elf;

use super::{
    read_field, Arch, ArchKind, Classifier, Expr, Field, Range, Refusal, RelocKind, StubUse,
};
use crate::relocations::Reloc;
use crate::Layout;

pub(crate) struct Mips<const BIG_ENDIAN: bool>;

/// Names by number (psABI, the R6 supplement, MIPS16 and microMIPS, GNU extensions), sorted.
const NAMES: &[(u32, &str)] = &[
    (0, "R_MIPS_NONE"),
    (1, "R_MIPS_16"),
    (2, "R_MIPS_32"),
    (3, "R_MIPS_REL32"),
    (4, "R_MIPS_26"),
    (5, "R_MIPS_HI16"),
    (6, "R_MIPS_LO16"),
    (7, "R_MIPS_GPREL16"),
    (8, "R_MIPS_LITERAL"),
    (9, "R_MIPS_GOT16"),
    (10, "R_MIPS_PC16"),
    (11, "R_MIPS_CALL16"),
    (12, "R_MIPS_GPREL32"),
    (13, "R_MIPS_UNUSED1"),
    (14, "R_MIPS_UNUSED2"),
    (15, "R_MIPS_UNUSED3"),
    (16, "R_MIPS_SHIFT5"),
    (17, "R_MIPS_SHIFT6"),
    (18, "R_MIPS_64"),
    (19, "R_MIPS_GOT_DISP"),
    (20, "R_MIPS_GOT_PAGE"),
    (21, "R_MIPS_GOT_OFST"),
    (22, "R_MIPS_GOT_HI16"),
    (23, "R_MIPS_GOT_LO16"),
    (24, "R_MIPS_SUB"),
    (25, "R_MIPS_INSERT_A"),
    (26, "R_MIPS_INSERT_B"),
    (27, "R_MIPS_DELETE"),
    (28, "R_MIPS_HIGHER"),
    (29, "R_MIPS_HIGHEST"),
    (30, "R_MIPS_CALL_HI16"),
    (31, "R_MIPS_CALL_LO16"),
    (32, "R_MIPS_SCN_DISP"),
    (33, "R_MIPS_REL16"),
    (34, "R_MIPS_ADD_IMMEDIATE"),
    (35, "R_MIPS_PJUMP"),
    (36, "R_MIPS_RELGOT"),
    (37, "R_MIPS_JALR"),
    (38, "R_MIPS_TLS_DTPMOD32"),
    (39, "R_MIPS_TLS_DTPREL32"),
    (40, "R_MIPS_TLS_DTPMOD64"),
    (41, "R_MIPS_TLS_DTPREL64"),
    (42, "R_MIPS_TLS_GD"),
    (43, "R_MIPS_TLS_LDM"),
    (44, "R_MIPS_TLS_DTPREL_HI16"),
    (45, "R_MIPS_TLS_DTPREL_LO16"),
    (46, "R_MIPS_TLS_GOTTPREL"),
    (47, "R_MIPS_TLS_TPREL32"),
    (48, "R_MIPS_TLS_TPREL64"),
    (49, "R_MIPS_TLS_TPREL_HI16"),
    (50, "R_MIPS_TLS_TPREL_LO16"),
    (51, "R_MIPS_GLOB_DAT"),
    (60, "R_MIPS_PC21_S2"),
    (61, "R_MIPS_PC26_S2"),
    (62, "R_MIPS_PC18_S3"),
    (63, "R_MIPS_PC19_S2"),
    (64, "R_MIPS_PCHI16"),
    (65, "R_MIPS_PCLO16"),
    (100, "R_MIPS16_26"),
    (101, "R_MIPS16_GPREL"),
    (102, "R_MIPS16_GOT16"),
    (103, "R_MIPS16_CALL16"),
    (104, "R_MIPS16_HI16"),
    (105, "R_MIPS16_LO16"),
    (106, "R_MIPS16_TLS_GD"),
    (107, "R_MIPS16_TLS_LDM"),
    (108, "R_MIPS16_TLS_DTPREL_HI16"),
    (109, "R_MIPS16_TLS_DTPREL_LO16"),
    (110, "R_MIPS16_TLS_GOTTPREL"),
    (111, "R_MIPS16_TLS_TPREL_HI16"),
    (112, "R_MIPS16_TLS_TPREL_LO16"),
    (126, "R_MIPS_COPY"),
    (127, "R_MIPS_JUMP_SLOT"),
    (133, "R_MICROMIPS_26_S1"),
    (134, "R_MICROMIPS_HI16"),
    (135, "R_MICROMIPS_LO16"),
    (136, "R_MICROMIPS_GPREL16"),
    (137, "R_MICROMIPS_LITERAL"),
    (138, "R_MICROMIPS_GOT16"),
    (139, "R_MICROMIPS_PC7_S1"),
    (140, "R_MICROMIPS_PC10_S1"),
    (141, "R_MICROMIPS_PC16_S1"),
    (142, "R_MICROMIPS_CALL16"),
    (145, "R_MICROMIPS_GOT_DISP"),
    (146, "R_MICROMIPS_GOT_PAGE"),
    (147, "R_MICROMIPS_GOT_OFST"),
    (148, "R_MICROMIPS_GOT_HI16"),
    (149, "R_MICROMIPS_GOT_LO16"),
    (150, "R_MICROMIPS_SUB"),
    (151, "R_MICROMIPS_HIGHER"),
    (152, "R_MICROMIPS_HIGHEST"),
    (153, "R_MICROMIPS_CALL_HI16"),
    (154, "R_MICROMIPS_CALL_LO16"),
    (155, "R_MICROMIPS_SCN_DISP"),
    (156, "R_MICROMIPS_JALR"),
    (157, "R_MICROMIPS_HI0_LO16"),
    (162, "R_MICROMIPS_TLS_GD"),
    (163, "R_MICROMIPS_TLS_LDM"),
    (164, "R_MICROMIPS_TLS_DTPREL_HI16"),
    (165, "R_MICROMIPS_TLS_DTPREL_LO16"),
    (166, "R_MICROMIPS_TLS_GOTTPREL"),
    (169, "R_MICROMIPS_TLS_TPREL_HI16"),
    (170, "R_MICROMIPS_TLS_TPREL_LO16"),
    (172, "R_MICROMIPS_GPREL7_S2"),
    (173, "R_MICROMIPS_PC23_S2"),
    (174, "R_MICROMIPS_PC21_S1"),
    (175, "R_MICROMIPS_PC26_S1"),
    (176, "R_MICROMIPS_PC18_S3"),
    (177, "R_MICROMIPS_PC19_S2"),
    (248, "R_MIPS_PC32"),
    (249, "R_MIPS_EH"),
    (250, "R_MIPS_GNU_REL16_S2"),
    (253, "R_MIPS_GNU_VTINHERIT"),
    (254, "R_MIPS_GNU_VTENTRY"),
];

pub(crate) fn reloc_name(r_type: u32) -> String {
    NAMES
        .binary_search_by_key(&r_type, |&(number, _)| number)
        .map(|i| NAMES[i].1.to_string())
        .unwrap_or_else(|_| format!("R_MIPS_<{r_type}>"))
}

// Numbers the `object` crate does not name.
const R_MIPS_PC21_S2: u32 = 60;
const R_MIPS_PC26_S2: u32 = 61;
const R_MIPS_PC18_S3: u32 = 62;
const R_MIPS_PC19_S2: u32 = 63;
const R_MIPS_PCHI16: u32 = 64;
const R_MIPS_PCLO16: u32 = 65;
const R_MIPS_PC32: u32 = 248;
const R_MIPS_GNU_REL16_S2: u32 = 250;
const R_MIPS_GNU_VTINHERIT: u32 = 253;
const R_MIPS_GNU_VTENTRY: u32 = 254;

/// The instruction fields, numbered for [`Field::Insn`]: the low bits of one 32-bit word, in
/// the object's byte order.
mod insn {
    /// `lui` immediate, bits 15..0: `((v + 0x8000) >> 16)`, carrying the low half's sign.
    pub(super) const HI16: u8 = 0;
    /// 16-bit immediate, bits 15..0: `v & 0xffff` (`addiu`, loads and stores, `%gp_rel`).
    pub(super) const LO16: u8 = 1;
    /// `j`/`jal` instr_index, bits 25..0: `v >> 2` (the region's top 4 bits come from PC + 4).
    pub(super) const JUMP26: u8 = 2;
    /// Branch offset, bits 15..0: `v >> 2`.
    pub(super) const PC16: u8 = 3;
    /// R6 `lwpc`/`addiupc` offset, bits 18..0: `v >> 2`.
    pub(super) const PC19: u8 = 4;
    /// R6 `beqzc`/`bnezc`/`jic` offset, bits 20..0: `v >> 2`.
    pub(super) const PC21: u8 = 5;
    /// R6 `bc`/`balc` offset, bits 25..0: `(v - 4) >> 2`; the addend was stored 4 higher.
    pub(super) const PC26: u8 = 6;
}

use Field::{Data32, Insn};
use Range::{Either, Region, Signed, Unchecked};

/// A difference of two 32-bit addresses: MIPS32 arithmetic is modulo 2^32, so every such
/// difference works once truncated to 32 bits (the sum of the pieces wraps back to the target).
const WORD_DIFFERENCE: Range = Signed(33);

const fn aligned(kind: RelocKind, align: u64) -> RelocKind {
    RelocKind { align, ..kind }
}

const NONE: RelocKind = RelocKind::new("R_MIPS_NONE", Expr::None, Data32, Unchecked);
const ABS32: RelocKind = RelocKind::new("R_MIPS_32", Expr::Abs, Data32, Either(32));
// A dynamic relocation in the psABI; in an object, a static linker and every MIPS dynamic
// loader give S + A for a symbol (the symbol-less "add the load address" form is refused when
// the addends are read).
const REL32: RelocKind = RelocKind::new("R_MIPS_REL32", Expr::Abs, Data32, Either(32));
const JUMP26: RelocKind = aligned(
    RelocKind::new(
        "R_MIPS_26",
        Expr::Abs,
        Insn(insn::JUMP26),
        Region {
            bits: 28,
            pc_bias: 4,
        },
    )
    .stub(StubUse::Branch),
    4,
);
const HI16: RelocKind = RelocKind::new("R_MIPS_HI16", Expr::Abs, Insn(insn::HI16), Either(32));
const LO16: RelocKind = RelocKind::new("R_MIPS_LO16", Expr::Abs, Insn(insn::LO16), Either(32));
const GPREL16: RelocKind =
    RelocKind::new("R_MIPS_GPREL16", Expr::GpRel, Insn(insn::LO16), Signed(16));
// A GP-relative load from `.lit4`/`.lit8`; literal sections are not merged, so it is GPREL16
// (GNU ld does the same).
const LITERAL: RelocKind =
    RelocKind::new("R_MIPS_LITERAL", Expr::GpRel, Insn(insn::LO16), Signed(16));
const PC16: RelocKind = aligned(
    RelocKind::new("R_MIPS_PC16", Expr::Pc, Insn(insn::PC16), Signed(18)),
    4,
);
// GNU as's older name for a branch to another section's symbol: the same field as PC16.
const GNU_REL16_S2: RelocKind = aligned(
    RelocKind::new(
        "R_MIPS_GNU_REL16_S2",
        Expr::Pc,
        Insn(insn::PC16),
        Signed(18),
    ),
    4,
);
const GPREL32: RelocKind = RelocKind::new("R_MIPS_GPREL32", Expr::GpRel, Data32, WORD_DIFFERENCE);
// A hint that `jalr $t9` calls the symbol (PIC code only); nothing to write.
const JALR: RelocKind = RelocKind::new("R_MIPS_JALR", Expr::None, Data32, Unchecked);
const PC21: RelocKind = aligned(
    RelocKind::new("R_MIPS_PC21_S2", Expr::Pc, Insn(insn::PC21), Signed(23)),
    4,
);
const PC26: RelocKind = aligned(
    RelocKind::new("R_MIPS_PC26_S2", Expr::Pc, Insn(insn::PC26), Signed(27)).stub(StubUse::Branch),
    4,
);
const PC19: RelocKind = aligned(
    RelocKind::new("R_MIPS_PC19_S2", Expr::Pc, Insn(insn::PC19), Signed(21)),
    4,
);
const PCHI16: RelocKind =
    RelocKind::new("R_MIPS_PCHI16", Expr::Pc, Insn(insn::HI16), WORD_DIFFERENCE);
const PCLO16: RelocKind =
    RelocKind::new("R_MIPS_PCLO16", Expr::Pc, Insn(insn::LO16), WORD_DIFFERENCE);
const PC32: RelocKind = RelocKind::new("R_MIPS_PC32", Expr::Pc, Data32, WORD_DIFFERENCE);
// C++ vtable garbage-collection markers: nothing to write.
const VTINHERIT: RelocKind = RelocKind::new("R_MIPS_GNU_VTINHERIT", Expr::None, Data32, Unchecked);
const VTENTRY: RelocKind = RelocKind::new("R_MIPS_GNU_VTENTRY", Expr::None, Data32, Unchecked);

const PIC_HINT: &str = "a relocation of -mabicalls/PIC code, which needs a GOT and $gp; \
                        compile modules with -fno-pic -mno-abicalls (and -G 0)";
const TLS_HINT: &str =
    "thread-local storage is not supported in modules; keep per-thread state in the kernel";
const DYNAMIC_HINT: &str = "a dynamic relocation; modules are relocatable objects (ET_REL)";
const WIDE_HINT: &str =
    "a relocation of 64-bit (n32/n64) code or of `.dword`; dlkm links MIPS32 o32 modules";
const MIPS16_HINT: &str = "MIPS16 code is not supported in modules; compile without -mips16";
const MICROMIPS_HINT: &str =
    "microMIPS code is not supported in modules; compile without -mmicromips";
const HALF_HINT: &str = "no assembler emits R_MIPS_16 (GNU as refuses `.half symbol`) and \
                         BFD and the psABI disagree about its field; use a 32-bit word";

/// The low 16 bits of a word, sign-extended.
fn low16(word: u32) -> i64 {
    i64::from(word as u16 as i16)
}

/// The low `bits` bits of `value`, sign-extended.
fn sign_extend(value: u32, bits: u32) -> i64 {
    let unused = 64 - bits;
    (i64::from(value) << unused) >> unused
}

impl<const BIG: bool> Mips<BIG> {
    fn load(bytes: &[u8]) -> Option<u32> {
        let word: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        Some(if BIG {
            u32::from_be_bytes(word)
        } else {
            u32::from_le_bytes(word)
        })
    }

    fn store(bytes: &mut [u8], word: u32) {
        if let Some(place) = bytes.get_mut(..4) {
            place.copy_from_slice(&if BIG {
                word.to_be_bytes()
            } else {
                word.to_le_bytes()
            });
        }
    }

    /// `%hi(value)`: the upper half, rounded so that adding the sign-extended `%lo` gives value.
    fn hi(value: u64) -> u32 {
        ((value.wrapping_add(0x8000) >> 16) & 0xffff) as u32
    }

    /// `%lo(value)`.
    fn lo(value: u64) -> u32 {
        (value & 0xffff) as u32
    }
}

impl<const BIG: bool> Arch for Mips<BIG> {
    const KIND: ArchKind = ArchKind::Mips { big_endian: BIG };
    const BIG_ENDIAN: bool = BIG;
    const STUB_SIZE: u64 = 16;
    const STUB_ALIGN: u64 = 4;
    /// Not used by `-mno-abicalls` code; a slot would hold a 32-bit address.
    const GOT_ENTRY_SIZE: u64 = 4;
    /// A stub jumps to S + A: `jal foo+8` must land on foo+8, and the branch kinds' addends
    /// are stored as the target's offset from the symbol (see the module's comment).
    const SLOT_INCLUDES_ADDEND: bool = true;

    fn classify(r_type: u32) -> Result<&'static RelocKind, Refusal> {
        let refuse = |hint| Err(Refusal { hint: Some(hint) });
        Ok(match r_type {
            elf::R_MIPS_NONE => &NONE,
            elf::R_MIPS_32 => &ABS32,
            elf::R_MIPS_REL32 => &REL32,
            elf::R_MIPS_26 => &JUMP26,
            elf::R_MIPS_HI16 => &HI16,
            elf::R_MIPS_LO16 => &LO16,
            elf::R_MIPS_GPREL16 => &GPREL16,
            elf::R_MIPS_LITERAL => &LITERAL,
            elf::R_MIPS_PC16 => &PC16,
            elf::R_MIPS_GPREL32 => &GPREL32,
            elf::R_MIPS_JALR => &JALR,
            R_MIPS_PC21_S2 => &PC21,
            R_MIPS_PC26_S2 => &PC26,
            R_MIPS_PC19_S2 => &PC19,
            R_MIPS_PCHI16 => &PCHI16,
            R_MIPS_PCLO16 => &PCLO16,
            R_MIPS_PC32 => &PC32,
            R_MIPS_GNU_REL16_S2 => &GNU_REL16_S2,
            R_MIPS_GNU_VTINHERIT => &VTINHERIT,
            R_MIPS_GNU_VTENTRY => &VTENTRY,
            elf::R_MIPS_16 => return refuse(HALF_HINT),
            elf::R_MIPS_GOT16
            | elf::R_MIPS_CALL16
            | elf::R_MIPS_GOT_DISP
            | elf::R_MIPS_GOT_PAGE
            | elf::R_MIPS_GOT_OFST
            | elf::R_MIPS_GOT_HI16
            | elf::R_MIPS_GOT_LO16
            | elf::R_MIPS_CALL_HI16
            | elf::R_MIPS_CALL_LO16 => return refuse(PIC_HINT),
            elf::R_MIPS_TLS_DTPMOD32..=elf::R_MIPS_TLS_TPREL_LO16 => return refuse(TLS_HINT),
            elf::R_MIPS_GLOB_DAT | elf::R_MIPS_COPY | elf::R_MIPS_JUMP_SLOT => {
                return refuse(DYNAMIC_HINT)
            }
            elf::R_MIPS_SHIFT5
            | elf::R_MIPS_SHIFT6
            | elf::R_MIPS_64
            | elf::R_MIPS_SUB
            | elf::R_MIPS_INSERT_A
            | elf::R_MIPS_INSERT_B
            | elf::R_MIPS_DELETE
            | elf::R_MIPS_HIGHER
            | elf::R_MIPS_HIGHEST
            | R_MIPS_PC18_S3 => return refuse(WIDE_HINT),
            100..=112 => return refuse(MIPS16_HINT),
            130..=177 => return refuse(MICROMIPS_HINT),
            _ => return Err(Refusal { hint: None }),
        })
    }

    /// `lui $t9, %hi(target); addiu $t9, $t9, %lo(target); jr $t9; nop`.
    ///
    /// `jr $t9` is written as R6 encodes it, `jalr $zero, $t9` (0x03200009): R6 removed the
    /// old `jr` (0x03200008), and `jalr` with rd = $zero is the same jump on every revision.
    ///
    /// A target above 4 GiB (a resolver's mistake: MIPS32 has no such addresses) cannot be
    /// loaded by `lui`/`addiu`; the stub is then four `break`s, a trap rather than a jump to a
    /// truncated address.
    fn write_stub(stub: &mut [u8], _stub_address: u64, target: u64) {
        const BREAK: u32 = 0x0000_000d;
        let words = if target > u64::from(u32::MAX) {
            [BREAK; 4]
        } else {
            [
                0x3c19_0000 | Self::hi(target), // lui   $t9, %hi(target)
                0x2739_0000 | Self::lo(target), // addiu $t9, $t9, %lo(target)
                0x0320_0009,                    // jr    $t9  (jalr $zero, $t9)
                0x0000_0000,                    // nop        (delay slot)
            ]
        };
        for (place, word) in stub.chunks_exact_mut(4).zip(words) {
            Self::store(place, word);
        }
    }

    fn encode_insn(field: u8, place: &mut [u8], value: u64) {
        let Some(word) = Self::load(place) else {
            return;
        };
        let (mask, bits): (u32, u64) = match field {
            insn::HI16 => (0xffff, u64::from(Self::hi(value))),
            insn::LO16 => (0xffff, value),
            insn::JUMP26 => (0x03ff_ffff, value >> 2),
            insn::PC16 => (0xffff, value >> 2),
            insn::PC19 => (0x0007_ffff, value >> 2),
            insn::PC21 => (0x001f_ffff, value >> 2),
            insn::PC26 => (0x03ff_ffff, value.wrapping_sub(4) >> 2),
            _ => return,
        };
        Self::store(place, (word & !mask) | (bits as u32 & mask));
    }

    fn decode_insn(field: u8, place: &[u8]) -> i64 {
        let Some(word) = Self::load(place) else {
            return 0;
        };
        match field {
            insn::HI16 => low16(word) << 16,
            insn::LO16 => low16(word),
            insn::JUMP26 => sign_extend((word & 0x03ff_ffff) << 2, 28),
            insn::PC16 => sign_extend((word & 0xffff) << 2, 18),
            insn::PC19 => sign_extend((word & 0x0007_ffff) << 2, 21),
            insn::PC21 => sign_extend((word & 0x001f_ffff) << 2, 23),
            insn::PC26 => sign_extend((word & 0x03ff_ffff) << 2, 28) + 4,
            _ => 0,
        }
    }

    /// Each field's own addend first, then every HI16 gets the low half of its LO16: the next
    /// LO16 against the same symbol further down the table. Compilers put it a few entries
    /// on, so it is looked for in the next [`PAIR_WINDOW`] entries; a HI16 whose LO16 is
    /// further has it found by one backward pass with a map over the whole section, made only
    /// then.
    fn implicit_addends(data: &[u8], relocs: &mut [Reloc]) -> Result<(), String> {
        let mut classifier = Classifier::<Self>::new();
        for reloc in relocs.iter_mut().filter(|r| r.implicit_addend) {
            let Ok(kind) = classifier.classify(reloc.r_type) else {
                continue; // reported when the object is laid out
            };
            if kind.expr == Expr::None {
                reloc.addend = 0;
                continue;
            }
            if reloc.r_type == elf::R_MIPS_REL32 && reloc.symbol == 0 {
                return Err(format!(
                    "R_MIPS_REL32 at {:#x} has no symbol: \"add the load address\" is a \
                     dynamic relocation, not one of a relocatable object",
                    reloc.offset
                ));
            }
            reloc.addend = read_field::<Self>(data, reloc.place(), kind.field)?;
        }

        // The low halves, all read before any HI16 is changed.
        let mut far = Vec::new();
        let mut lows = Vec::new();
        for (at, reloc) in relocs.iter().enumerate() {
            let Some(low_type) = paired_low(reloc) else {
                continue;
            };
            let mut window = relocs[at + 1..].iter().take(PAIR_WINDOW);
            match window.find(|r| is_low(r, reloc.symbol, low_type)) {
                Some(low) => lows.push((at, low.addend)),
                None => far.push(at),
            }
        }
        if !far.is_empty() {
            lows.extend(far_lows(relocs, &far));
        }
        for (at, low) in lows {
            let high = &mut relocs[at];
            // AHL is a 32-bit quantity: `%hi(x + 0x7fffffff)` is 0x8000, negative alone.
            high.addend = i64::from(high.addend.wrapping_add(low) as i32);
        }
        Ok(())
    }

    /// lld's `_gp`: the GOT's start + 0x7ff0, so that signed 16-bit offsets reach the GOT and
    /// the 64 KiB after it.
    fn global_pointer(layout: &Layout, base: u64) -> u64 {
        base.wrapping_add(layout.got.offset).wrapping_add(0x7ff0)
    }
}

/// How far [`Arch::implicit_addends`] looks for a HI16's LO16 before it falls back to a map:
/// gcc and clang put it within a few entries.
const PAIR_WINDOW: usize = 8;

/// The LO type a REL HI16 pairs with.
fn paired_low(reloc: &Reloc) -> Option<u32> {
    match reloc.r_type {
        _ if !reloc.implicit_addend => None,
        elf::R_MIPS_HI16 => Some(elf::R_MIPS_LO16),
        R_MIPS_PCHI16 => Some(R_MIPS_PCLO16),
        _ => None,
    }
}

fn is_low(reloc: &Reloc, symbol: u32, low_type: u32) -> bool {
    reloc.implicit_addend && reloc.r_type == low_type && reloc.symbol == symbol
}

/// The low halves for the HI16s at `far` (ascending indices), whose LO16 is further down
/// than the window, if they have one.
fn far_lows(relocs: &[Reloc], far: &[usize]) -> Vec<(usize, i64)> {
    waiting_lows(relocs, far).unwrap_or_else(|| mapped_lows(relocs, far))
}

/// How many HI16s [`waiting_lows`] lets wait for their LO16 at once before a map is faster.
const WAITING_MAX: usize = 1024;

/// One forward pass from the first far HI16, with the HI16s still waiting for their LO16 in a
/// list (GNU ld's way), which a LO16 looks through only if a HI16 of a symbol of the same
/// residue waits; `None` if more than [`WAITING_MAX`] wait at once.
fn waiting_lows(relocs: &[Reloc], far: &[usize]) -> Option<Vec<(usize, i64)>> {
    let bucket = |symbol: u32| symbol as usize % 256;
    let mut waiting_in = [0u32; 256];
    let mut waiting: Vec<(usize, u32, u32)> = Vec::new();
    let mut found = Vec::new();
    let mut next_far = far.iter().peekable();
    let start = *far.first()?;
    for (at, reloc) in relocs.iter().enumerate().skip(start) {
        if next_far.next_if_eq(&&at).is_some() {
            if waiting.len() == WAITING_MAX {
                return None;
            }
            waiting.push((at, reloc.symbol, paired_low(reloc)?));
            waiting_in[bucket(reloc.symbol)] += 1;
        } else if reloc.implicit_addend
            && matches!(reloc.r_type, elf::R_MIPS_LO16 | R_MIPS_PCLO16)
            && waiting_in[bucket(reloc.symbol)] > 0
        {
            waiting.retain(|&(high, symbol, low_type)| {
                let pairs = symbol == reloc.symbol && low_type == reloc.r_type;
                if pairs {
                    found.push((high, reloc.addend));
                    waiting_in[bucket(symbol)] -= 1;
                }
                !pairs
            });
            if waiting.is_empty() && next_far.peek().is_none() {
                break;
            }
        }
    }
    Some(found)
}

/// One backward pass over the whole section with a map from (symbol, LO type) to the nearest
/// LO16 below.
fn mapped_lows(relocs: &[Reloc], far: &[usize]) -> Vec<(usize, i64)> {
    let mut next_low: HashMap<(u32, u32), i64> = HashMap::new();
    let mut found = Vec::new();
    let mut pending = far.iter().rev().peekable();
    for (at, reloc) in relocs.iter().enumerate().rev() {
        if pending.next_if_eq(&&at).is_some() {
            let low = paired_low(reloc).and_then(|t| next_low.get(&(reloc.symbol, t)));
            if let Some(&low) = low {
                found.push((at, low));
            }
        } else if reloc.implicit_addend && matches!(reloc.r_type, elf::R_MIPS_LO16 | R_MIPS_PCLO16)
        {
            next_low.insert((reloc.symbol, reloc.r_type), reloc.addend);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    type M = Mips<true>;

    /// A table of `count` REL entries of random HI16, LO16, PCHI16, PCLO16 and R_MIPS_32
    /// types against `symbols` symbols, each relocating its own random word.
    fn random_table(count: usize, symbols: u64, seed: u64) -> (Vec<u8>, Vec<Reloc>) {
        let mut state = seed;
        let mut next = move |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        let types = [
            elf::R_MIPS_HI16,
            elf::R_MIPS_HI16,
            elf::R_MIPS_LO16,
            elf::R_MIPS_LO16,
            R_MIPS_PCHI16,
            R_MIPS_PCLO16,
            elf::R_MIPS_32,
        ];
        let mut data = Vec::new();
        let mut relocs = Vec::new();
        for at in 0..count {
            data.extend_from_slice(&(next(1 << 32) as u32).to_be_bytes());
            relocs.push(Reloc {
                addend: 0,
                offset: 4 * at as u32,
                r_type: types[next(types.len() as u64) as usize],
                symbol: next(symbols) as u32 + 1,
                implicit_addend: true,
            });
        }
        (data, relocs)
    }

    /// The pairing as the psABI states it, done the slow way: each HI16 looks down the whole
    /// rest of the table for the first LO16 against its symbol.
    fn paired_by_scanning(data: &[u8], relocs: &[Reloc]) -> Vec<i64> {
        let own: Vec<i64> = relocs
            .iter()
            .map(|r| {
                read_field::<M>(data, r.place(), M::classify(r.r_type).unwrap().field).unwrap()
            })
            .collect();
        let mut addends = own.clone();
        for (at, high) in relocs.iter().enumerate() {
            let low_type = match high.r_type {
                elf::R_MIPS_HI16 => elf::R_MIPS_LO16,
                R_MIPS_PCHI16 => R_MIPS_PCLO16,
                _ => continue,
            };
            let low = (at + 1..relocs.len())
                .find(|&j| relocs[j].r_type == low_type && relocs[j].symbol == high.symbol);
            if let Some(j) = low {
                addends[at] = i64::from(own[at].wrapping_add(own[j]) as i32);
            }
        }
        addends
    }

    /// HI16s whose LO16 is in the window, further down (a few waiting at once), and so far or
    /// missing that more than `WAITING_MAX` wait and the map takes over: every one gets the
    /// addend the slow scan gives.
    #[test]
    fn hi16_pairing_agrees_with_a_full_scan_near_far_and_missing() {
        for (count, symbols, seed) in [
            (4_000, 3, 1),
            (4_000, 40, 2),
            (6_000, 5_000, 3),
            (200, 1, 4),
        ] {
            let (data, mut relocs) = random_table(count, symbols, seed);
            let expected = paired_by_scanning(&data, &relocs);
            M::implicit_addends(&data, &mut relocs).unwrap();
            let got: Vec<i64> = relocs.iter().map(|r| r.addend).collect();
            assert_eq!(
                got, expected,
                "{count} relocations against {symbols} symbols"
            );
        }
    }
}
