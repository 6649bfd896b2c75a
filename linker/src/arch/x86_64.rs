//! x86_64 (System V psABI, RELA).

use super::{Arch, ArchKind, Expr, Field, Range, Refusal, Relaxed, RelocKind, StubUse};
use object::elf;

pub(crate) struct X86_64;

/// Names by number, for messages (psABI table 4.9 and the TLS supplement).
const NAMES: [&str; 44] = [
    "R_X86_64_NONE",
    "R_X86_64_64",
    "R_X86_64_PC32",
    "R_X86_64_GOT32",
    "R_X86_64_PLT32",
    "R_X86_64_COPY",
    "R_X86_64_GLOB_DAT",
    "R_X86_64_JUMP_SLOT",
    "R_X86_64_RELATIVE",
    "R_X86_64_GOTPCREL",
    "R_X86_64_32",
    "R_X86_64_32S",
    "R_X86_64_16",
    "R_X86_64_PC16",
    "R_X86_64_8",
    "R_X86_64_PC8",
    "R_X86_64_DTPMOD64",
    "R_X86_64_DTPOFF64",
    "R_X86_64_TPOFF64",
    "R_X86_64_TLSGD",
    "R_X86_64_TLSLD",
    "R_X86_64_DTPOFF32",
    "R_X86_64_GOTTPOFF",
    "R_X86_64_TPOFF32",
    "R_X86_64_PC64",
    "R_X86_64_GOTOFF64",
    "R_X86_64_GOTPC32",
    "R_X86_64_GOT64",
    "R_X86_64_GOTPCREL64",
    "R_X86_64_GOTPC64",
    "R_X86_64_GOTPLT64",
    "R_X86_64_PLTOFF64",
    "R_X86_64_SIZE32",
    "R_X86_64_SIZE64",
    "R_X86_64_GOTPC32_TLSDESC",
    "R_X86_64_TLSDESC_CALL",
    "R_X86_64_TLSDESC",
    "R_X86_64_IRELATIVE",
    "R_X86_64_RELATIVE64",
    "R_X86_64_39",
    "R_X86_64_40",
    "R_X86_64_GOTPCRELX",
    "R_X86_64_REX_GOTPCRELX",
    "R_X86_64_CODE_4_GOTPCRELX",
];

pub(crate) fn reloc_name(r_type: u32) -> String {
    NAMES
        .get(r_type as usize)
        .map(|n| n.to_string())
        .unwrap_or_else(|| format!("R_X86_64_<{r_type}>"))
}

use Field::*;
use Range::*;

const NONE: RelocKind = RelocKind::new("R_X86_64_NONE", Expr::None, Data8, Unchecked);
const ABS64: RelocKind = RelocKind::new("R_X86_64_64", Expr::Abs, Data64, Either(64));
const PC32: RelocKind =
    RelocKind::new("R_X86_64_PC32", Expr::Pc, Data32, Signed(32)).stub(StubUse::FunctionAddress);
const PLT32: RelocKind =
    RelocKind::new("R_X86_64_PLT32", Expr::Pc, Data32, Signed(32)).stub(StubUse::Branch);
const GOTPCREL: RelocKind =
    RelocKind::new("R_X86_64_GOTPCREL", Expr::GotSlotPc, Data32, Signed(32));
const ABS32: RelocKind = RelocKind::new("R_X86_64_32", Expr::Abs, Data32, Unsigned(32))
    .stub(StubUse::FunctionAddress)
    .low_address();
const ABS32S: RelocKind = RelocKind::new("R_X86_64_32S", Expr::Abs, Data32, Signed(32))
    .stub(StubUse::FunctionAddress)
    .low_address();
const ABS16: RelocKind = RelocKind::new("R_X86_64_16", Expr::Abs, Data16, Either(16));
const PC16: RelocKind = RelocKind::new("R_X86_64_PC16", Expr::Pc, Data16, Signed(16));
const ABS8: RelocKind = RelocKind::new("R_X86_64_8", Expr::Abs, Data8, Either(8));
const PC8: RelocKind = RelocKind::new("R_X86_64_PC8", Expr::Pc, Data8, Signed(8));
const PC64: RelocKind = RelocKind::new("R_X86_64_PC64", Expr::Pc, Data64, Signed(64));
const GOTOFF64: RelocKind =
    RelocKind::new("R_X86_64_GOTOFF64", Expr::GotOffset, Data64, Signed(64));
const GOTPC32: RelocKind = RelocKind::new("R_X86_64_GOTPC32", Expr::GotBasePc, Data32, Signed(32));
const GOT64: RelocKind = RelocKind::new("R_X86_64_GOT64", Expr::GotSlotOffset, Data64, Signed(64));
const GOTPCREL64: RelocKind =
    RelocKind::new("R_X86_64_GOTPCREL64", Expr::GotSlotPc, Data64, Signed(64));
const GOTPC64: RelocKind = RelocKind::new("R_X86_64_GOTPC64", Expr::GotBasePc, Data64, Signed(64));
const GOTPLT64: RelocKind =
    RelocKind::new("R_X86_64_GOTPLT64", Expr::GotSlotOffset, Data64, Signed(64));
// L + A - GOT: with no PLT, the function's own address serves as L.
const PLTOFF64: RelocKind =
    RelocKind::new("R_X86_64_PLTOFF64", Expr::GotOffset, Data64, Signed(64));
const SIZE32: RelocKind = RelocKind::new("R_X86_64_SIZE32", Expr::Size, Data32, Either(32));
const SIZE64: RelocKind = RelocKind::new("R_X86_64_SIZE64", Expr::Size, Data64, Either(64));
const GOTPCRELX: RelocKind =
    RelocKind::new("R_X86_64_GOTPCRELX", Expr::GotSlotPc, Data32, Signed(32)).relaxable();
const REX_GOTPCRELX: RelocKind = RelocKind::new(
    "R_X86_64_REX_GOTPCRELX",
    Expr::GotSlotPc,
    Data32,
    Signed(32),
)
.relaxable();

const TLS_HINT: &str =
    "thread-local storage is not supported in modules; keep per-thread state in the kernel";

impl Arch for X86_64 {
    const KIND: ArchKind = ArchKind::X86_64;
    const BIG_ENDIAN: bool = false;
    const STUB_SIZE: u64 = 16;
    const STUB_ALIGN: u64 = 16;
    const GOT_ENTRY_SIZE: u64 = 8;
    const SLOT_INCLUDES_ADDEND: bool = false;
    const RELAX_LOOKBEHIND: u64 = 2;

    fn classify(r_type: u32) -> Result<&'static RelocKind, Refusal> {
        Ok(match r_type {
            elf::R_X86_64_NONE => &NONE,
            elf::R_X86_64_64 => &ABS64,
            elf::R_X86_64_PC32 => &PC32,
            elf::R_X86_64_PLT32 => &PLT32,
            elf::R_X86_64_GOTPCREL => &GOTPCREL,
            elf::R_X86_64_32 => &ABS32,
            elf::R_X86_64_32S => &ABS32S,
            elf::R_X86_64_16 => &ABS16,
            elf::R_X86_64_PC16 => &PC16,
            elf::R_X86_64_8 => &ABS8,
            elf::R_X86_64_PC8 => &PC8,
            elf::R_X86_64_PC64 => &PC64,
            elf::R_X86_64_GOTOFF64 => &GOTOFF64,
            elf::R_X86_64_GOTPC32 => &GOTPC32,
            elf::R_X86_64_GOT64 => &GOT64,
            elf::R_X86_64_GOTPCREL64 => &GOTPCREL64,
            elf::R_X86_64_GOTPC64 => &GOTPC64,
            elf::R_X86_64_GOTPLT64 => &GOTPLT64,
            elf::R_X86_64_PLTOFF64 => &PLTOFF64,
            elf::R_X86_64_SIZE32 => &SIZE32,
            elf::R_X86_64_SIZE64 => &SIZE64,
            elf::R_X86_64_GOTPCRELX => &GOTPCRELX,
            elf::R_X86_64_REX_GOTPCRELX => &REX_GOTPCRELX,
            elf::R_X86_64_DTPMOD64
            | elf::R_X86_64_DTPOFF64
            | elf::R_X86_64_TPOFF64
            | elf::R_X86_64_TLSGD
            | elf::R_X86_64_TLSLD
            | elf::R_X86_64_DTPOFF32
            | elf::R_X86_64_GOTTPOFF
            | elf::R_X86_64_TPOFF32
            | elf::R_X86_64_GOTPC32_TLSDESC
            | elf::R_X86_64_TLSDESC_CALL
            | elf::R_X86_64_TLSDESC => {
                return Err(Refusal {
                    hint: Some(TLS_HINT),
                })
            }
            elf::R_X86_64_COPY
            | elf::R_X86_64_GLOB_DAT
            | elf::R_X86_64_JUMP_SLOT
            | elf::R_X86_64_RELATIVE
            | elf::R_X86_64_IRELATIVE => {
                return Err(Refusal {
                    hint: Some("a dynamic relocation; modules are relocatable objects (ET_REL)"),
                })
            }
            _ => return Err(Refusal { hint: None }),
        })
    }

    /// `jmp *0(%rip)` followed by the 8-byte target, padded with `int3`.
    fn write_stub(stub: &mut [u8], _stub_address: u64, target: u64) {
        const TEMPLATE: [u8; 16] = [
            0xff, 0x25, 0x00, 0x00, 0x00, 0x00, // jmp *0(%rip)
            0, 0, 0, 0, 0, 0, 0, 0, // .quad target
            0xcc, 0xcc, // int3; int3
        ];
        stub[..16].copy_from_slice(&TEMPLATE);
        stub[6..14].copy_from_slice(&target.to_le_bytes());
    }

    /// psABI B.2: `mov foo@GOTPCREL(%rip), %reg` becomes `lea foo(%rip), %reg`,
    /// `call *foo@GOTPCREL(%rip)` becomes `addr32 call foo`, and `jmp *foo@GOTPCREL(%rip)`
    /// becomes `jmp foo; nop`.
    fn relax_got(_kind: &RelocKind, section: &[u8], offset: usize) -> Option<Relaxed> {
        let opcode = section.get(offset.checked_sub(2)?..offset)?;
        match (opcode[0], opcode[1]) {
            (0x8b, modrm) if modrm & 0xc7 == 0x05 => Some(Relaxed {
                edits: &[(-2, 0x8d)],
                field_offset: 0,
                value_bias: 0,
            }),
            (0xff, 0x15) => Some(Relaxed {
                edits: &[(-2, 0x67), (-1, 0xe8)],
                field_offset: 0,
                value_bias: 0,
            }),
            (0xff, 0x25) if section.len() >= offset + 4 => Some(Relaxed {
                edits: &[(-2, 0xe9), (3, 0x90)],
                field_offset: -1,
                value_bias: 1,
            }),
            _ => None,
        }
    }
}
