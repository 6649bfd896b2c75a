//! Disassembly for the `dis`-style commands, through capstone, with branch targets and
//! PC-relative addresses named so a listing reads like gdb's rather than raw hex.

use capstone::arch::arm64::ArchMode as Arm64Mode;
use capstone::arch::mips::ArchMode as MipsMode;
use capstone::arch::x86::{ArchMode as X86Mode, ArchSyntax, X86OperandType, X86Reg};
use capstone::arch::{ArchOperand, BuildsCapstone, BuildsCapstoneEndian, BuildsCapstoneSyntax};
use capstone::{Capstone, Endian, Insn, InsnGroupId, InsnGroupIdInt, InsnGroupType};
use dlkm_linker::ArchKind;

/// One disassembled instruction, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub address: u64,
    pub bytes: Vec<u8>,
    pub mnemonic: String,
    /// Operands as capstone prints them, with branch/call targets and PC-relative addresses
    /// resolved: the target address is followed by ` <symbol+0xoff>` when `name_of` knows it.
    pub operands: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DisasmError {
    #[error("cannot disassemble {arch}: {reason}")]
    Capstone { arch: &'static str, reason: String },
}

/// Disassembles up to `count` instructions of `code`, which starts at `address`. Stops early at
/// bytes that do not decode (the returned lines then end there; never panics).
/// `name_of(target)` names an address (e.g. "zlib:crc32+0x10"); None if unknown.
pub fn disassemble(
    arch: ArchKind,
    code: &[u8],
    address: u64,
    count: usize,
    name_of: &dyn Fn(u64) -> Option<String>,
) -> Result<Vec<Line>, DisasmError> {
    let fail = |err: capstone::Error| DisasmError::Capstone {
        arch: arch.name(),
        reason: err.to_string(),
    };
    // capstone reads a count of 0 as "everything", and refuses it in disasm_count.
    if count == 0 || code.is_empty() {
        return Ok(Vec::new());
    }
    let cs = engine(arch).map_err(fail)?;
    let insns = cs.disasm_count(code, address, count).map_err(fail)?;
    Ok(insns
        .iter()
        .map(|insn| {
            let mut operands = insn.op_str().unwrap_or("").to_owned();
            annotate(&cs, arch, insn, name_of, &mut operands);
            Line {
                address: insn.address(),
                bytes: insn.bytes().to_vec(),
                mnemonic: insn.mnemonic().unwrap_or("").to_owned(),
                operands,
            }
        })
        .collect())
}

/// Width of the bytes column: eight bytes, so x86 lines up to that length and the 4-byte RISC
/// encodings share one layout (a `Line` does not say which architecture it came from).
const BYTES_COLUMN: usize = 8 * 3 - 1;
/// Labels such as `zlib:crc32+0x1c` fit; a listing with longer ones widens its column.
const LABEL_COLUMN: usize = 24;

/// The label column's width for a listing with these labels: every line of it lines up.
pub fn label_width<'a>(labels: impl IntoIterator<Item = &'a str>) -> usize {
    labels
        .into_iter()
        .map(str::len)
        .fold(LABEL_COLUMN, usize::max)
}

/// Formats a line as msyms prints it: address, label (padded to the width given), bytes,
/// mnemonic and operands, in aligned columns. A `None` label drops the label column, so
/// unlabelled listings are not indented by blanks.
pub fn format_line(line: &Line, label: Option<(&str, usize)>) -> String {
    let bytes = line
        .bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = format!("0x{:08x}  ", line.address);
    if let Some((label, width)) = label {
        out.push_str(&format!("{label:<width$}  "));
    }
    out.push_str(&format!("{bytes:<BYTES_COLUMN$}  {}", line.mnemonic));
    if !line.operands.is_empty() {
        out.push(' ');
        out.push_str(&line.operands);
    }
    out
}

fn engine(arch: ArchKind) -> capstone::CsResult<Capstone> {
    let mut cs = match arch {
        ArchKind::X86_64 => Capstone::new()
            .x86()
            .mode(X86Mode::Mode64)
            // gdb's default, so listings compare directly with a gdb session.
            .syntax(ArchSyntax::Att)
            .build()?,
        ArchKind::Aarch64 => Capstone::new()
            .arm64()
            .mode(Arm64Mode::Arm)
            .endian(Endian::Little)
            .build()?,
        ArchKind::Mips { big_endian } => Capstone::new()
            .mips()
            .mode(MipsMode::Mips32)
            .endian(if big_endian {
                Endian::Big
            } else {
                Endian::Little
            })
            .build()?,
    };
    // Operand details are how targets are found without parsing capstone's text.
    cs.set_detail(true)?;
    Ok(cs)
}

/// Appends the names of the addresses `insn` refers to, in the form gdb uses: ` <name>` after a
/// printed target, `  # 0x<ea> <name>` for an x86 RIP-relative operand whose address is not printed.
fn annotate(
    cs: &Capstone,
    arch: ArchKind,
    insn: &Insn,
    name_of: &dyn Fn(u64) -> Option<String>,
    operands: &mut String,
) {
    let Ok(detail) = cs.insn_detail(insn) else {
        return;
    };
    let in_group = |group: InsnGroupType::Type| {
        detail
            .groups()
            .contains(&InsnGroupId(group as InsnGroupIdInt))
    };
    let branch = in_group(InsnGroupType::CS_GRP_JUMP)
        || in_group(InsnGroupType::CS_GRP_CALL)
        || in_group(InsnGroupType::CS_GRP_BRANCH_RELATIVE);
    let mnemonic = insn.mnemonic().unwrap_or("");
    let ops = detail.arch_detail().operands();
    let next = insn.address().wrapping_add(insn.len() as u64);

    // The target is the last immediate: the only one for x86 and `b`, after the register (and
    // bit number) for compare-and-branch forms, after the registers for MIPS `beq`.
    let last_imm = || {
        ops.iter().rev().find_map(|op| match op {
            ArchOperand::X86Operand(op) => match op.op_type {
                X86OperandType::Imm(v) => Some(v as u64),
                _ => None,
            },
            ArchOperand::Arm64Operand(op) => match op.op_type {
                capstone::arch::arm64::Arm64OperandType::Imm(v) => Some(v as u64),
                _ => None,
            },
            ArchOperand::MipsOperand(capstone::arch::mips::MipsOperand::Imm(v)) => Some(*v as u64),
            _ => None,
        })
    };

    let target = match arch {
        ArchKind::X86_64 => {
            if branch {
                last_imm()
            } else {
                None
            }
        }
        // adr/adrp/ldr-literal are not branches but capstone prints their absolute address
        // all the same, which is worth naming (a GOT slot, a string).
        ArchKind::Aarch64 => {
            let literal = matches!(mnemonic, "adr" | "adrp")
                || (matches!(mnemonic, "ldr" | "ldrsw" | "prfm") && !operands.contains('['));
            if branch || literal {
                last_imm()
            } else {
                None
            }
        }
        // capstone 5 leaves `jal` out of the call group; `jr`/`jalr` have no immediate.
        ArchKind::Mips { .. } => {
            if branch || mnemonic.starts_with('j') {
                // MIPS32 addresses: the sign-extended immediate names the same 32-bit address.
                last_imm().map(|v| v & 0xffff_ffff)
            } else {
                None
            }
        }
    };
    if let Some(target) = target {
        if let Some(name) = name_of(target) {
            operands.push_str(&format!(" <{name}>"));
        }
        return;
    }

    if arch == ArchKind::X86_64 {
        let rip = capstone::RegId(X86Reg::X86_REG_RIP as capstone::RegIdInt);
        let effective = ops.iter().find_map(|op| match op {
            ArchOperand::X86Operand(op) => match &op.op_type {
                X86OperandType::Mem(mem) if mem.base() == rip => {
                    Some(next.wrapping_add(mem.disp() as u64))
                }
                _ => None,
            },
            _ => None,
        });
        if let Some(ea) = effective {
            operands.push_str(&format!("  # {ea:#x}"));
            if let Some(name) = name_of(ea) {
                operands.push_str(&format!(" <{name}>"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names 0x2000 (and what follows it) as `mod:target`, the way msyms' symbol table would.
    fn names(addr: u64) -> Option<String> {
        match addr {
            0x2000 => Some("mod:target".to_owned()),
            0x2001..=0x20ff => Some(format!("mod:target+{:#x}", addr - 0x2000)),
            0x0040_0100 => Some("*stub* -> malloc".to_owned()),
            _ => None,
        }
    }

    fn dis(arch: ArchKind, code: &[u8], address: u64) -> Vec<Line> {
        disassemble(arch, code, address, 16, &names).expect("capstone opens")
    }

    const MIPS_BE: ArchKind = ArchKind::Mips { big_endian: true };
    const MIPS_LE: ArchKind = ArchKind::Mips { big_endian: false };

    #[test]
    fn x86_call_names_target() {
        // call rel32 from 0x1000: 0x1005 + 0xffb = 0x2000.
        let lines = dis(ArchKind::X86_64, &[0xe8, 0xfb, 0x0f, 0x00, 0x00], 0x1000);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].address, 0x1000);
        assert_eq!(lines[0].bytes, [0xe8, 0xfb, 0x0f, 0x00, 0x00]);
        assert_eq!(lines[0].mnemonic, "callq");
        assert_eq!(lines[0].operands, "0x2000 <mod:target>");
    }

    #[test]
    fn x86_jcc_and_unknown_target() {
        // je +0x0e from 0x1000 -> 0x1010 (unnamed), then jmp rel8 to 0x2004 from 0x2000.
        let lines = dis(ArchKind::X86_64, &[0x74, 0x0e], 0x1000);
        assert_eq!(lines[0].mnemonic, "je");
        assert_eq!(lines[0].operands, "0x1010");
        let lines = dis(ArchKind::X86_64, &[0xeb, 0x02], 0x2000);
        assert_eq!(lines[0].mnemonic, "jmp");
        assert_eq!(lines[0].operands, "0x2004 <mod:target+0x4>");
    }

    #[test]
    fn x86_rip_relative_resolves_effective_address() {
        // lea 0xff9(%rip),%rax at 0x1000: 0x1007 + 0xff9 = 0x2000.
        let lines = dis(
            ArchKind::X86_64,
            &[0x48, 0x8d, 0x05, 0xf9, 0x0f, 0x00, 0x00],
            0x1000,
        );
        assert_eq!(lines[0].mnemonic, "leaq");
        assert_eq!(
            lines[0].operands,
            "0xff9(%rip), %rax  # 0x2000 <mod:target>"
        );
        // call *0xffa(%rip) at 0x1000: 0x1006 + 0xffa = 0x2000, the slot, is named.
        let lines = dis(
            ArchKind::X86_64,
            &[0xff, 0x15, 0xfa, 0x0f, 0x00, 0x00],
            0x1000,
        );
        assert_eq!(lines[0].mnemonic, "callq");
        assert!(
            lines[0].operands.ends_with("# 0x2000 <mod:target>"),
            "{:?}",
            lines[0]
        );
    }

    #[test]
    fn x86_plain_instructions_untouched() {
        // push %rbp; mov %rsp,%rbp; ret (capstone's AT&T spells out the operand size).
        let lines = dis(ArchKind::X86_64, &[0x55, 0x48, 0x89, 0xe5, 0xc3], 0x2000);
        let text: Vec<_> = lines
            .iter()
            .map(|l| (l.mnemonic.as_str(), l.operands.as_str()))
            .collect();
        assert_eq!(
            text,
            [("pushq", "%rbp"), ("movq", "%rsp, %rbp"), ("retq", "")]
        );
    }

    #[test]
    fn x86_stops_at_undecodable_bytes() {
        // nop, then a lone 0x0f (a two-byte opcode escape with nothing after it).
        let lines = dis(ArchKind::X86_64, &[0x90, 0x0f], 0x1000);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].mnemonic, "nop");
    }

    #[test]
    fn count_limits_and_zero_is_empty() {
        let code = [0x90; 8];
        let lines = disassemble(ArchKind::X86_64, &code, 0x1000, 3, &names).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2].address, 0x1002);
        assert!(disassemble(ArchKind::X86_64, &code, 0x1000, 0, &names)
            .unwrap()
            .is_empty());
        assert!(disassemble(ArchKind::Aarch64, &[], 0x1000, 4, &names)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn aarch64_bl_names_target() {
        // bl 0x2000 from 0x1000: imm26 = 0x400.
        let lines = dis(ArchKind::Aarch64, &0x9400_0400u32.to_le_bytes(), 0x1000);
        assert_eq!(lines[0].mnemonic, "bl");
        assert_eq!(lines[0].operands, "#0x2000 <mod:target>");
    }

    #[test]
    fn aarch64_conditional_and_literal_forms() {
        let code: Vec<u8> = [
            0x5400_0800u32, // b.eq +0x100 from 0x1f00 -> 0x2000
            0xb400_07e0,    // cbz x0, +0xfc from 0x1f04 -> 0x2000
            0x3618_07c1,    // tbz w1, #3, +0xf8 from 0x1f08 -> 0x2000
            0xd000_0000,    // adrp x0, 0x3000 (page of 0x1f0c is 0x1000, +2 pages)
            0x1000_07a2,    // adr x2, +0xf4 from 0x1f10 -> 0x2004
            0x5800_0763,    // ldr x3, +0xec from 0x1f14 -> 0x2000
        ]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
        let lines = dis(ArchKind::Aarch64, &code, 0x1f00);
        let text: Vec<_> = lines
            .iter()
            .map(|l| format!("{} {}", l.mnemonic, l.operands))
            .collect();
        assert_eq!(
            text,
            [
                "b.eq #0x2000 <mod:target>",
                "cbz x0, #0x2000 <mod:target>",
                "tbz w1, #3, #0x2000 <mod:target>",
                "adrp x0, #0x3000",
                "adr x2, #0x2004 <mod:target+0x4>",
                "ldr x3, #0x2000 <mod:target>",
            ]
        );
    }

    #[test]
    fn aarch64_stops_at_undecodable_bytes() {
        // nop, then a word in an unallocated encoding space.
        let mut code = 0xd503_201fu32.to_le_bytes().to_vec();
        code.extend(0xffff_ffffu32.to_le_bytes());
        code.extend(0xd503_201fu32.to_le_bytes());
        let lines = dis(ArchKind::Aarch64, &code, 0x1000);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].mnemonic, "nop");
    }

    #[test]
    fn aarch64_zero_word_is_udf() {
        // All-zero padding decodes (as `udf #0`), so a listing runs through it rather than stopping.
        let lines = dis(ArchKind::Aarch64, &[0; 8], 0x1000);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].mnemonic.as_str(), lines[0].operands.as_str()),
            ("udf", "#0")
        );
    }

    #[test]
    fn mips_stops_at_undecodable_bytes() {
        // nop, then 0xffffffff, which capstone does not decode as MIPS32.
        for (arch, code) in [
            (
                MIPS_BE,
                [[0; 4], 0xffff_ffffu32.to_be_bytes(), [0; 4]].concat(),
            ),
            (
                MIPS_LE,
                [[0; 4], 0xffff_ffffu32.to_le_bytes(), [0; 4]].concat(),
            ),
        ] {
            let lines = dis(arch, &code, 0x1000);
            assert_eq!(lines.len(), 1, "{arch:?}");
            assert_eq!(lines[0].mnemonic, "nop", "{arch:?}");
        }
    }

    #[test]
    fn mips_jal_both_byte_orders() {
        // jal 0x400100 from 0x400000: index = 0x400100 >> 2.
        let word = 0x0c10_0040u32;
        for (arch, bytes) in [(MIPS_BE, word.to_be_bytes()), (MIPS_LE, word.to_le_bytes())] {
            let lines = dis(arch, &bytes, 0x0040_0000);
            assert_eq!(lines.len(), 1, "{arch:?}");
            assert_eq!(lines[0].mnemonic, "jal", "{arch:?}");
            assert_eq!(lines[0].operands, "0x400100 <*stub* -> malloc>", "{arch:?}");
        }
    }

    #[test]
    fn mips_conditional_branch_names_target() {
        // beq $a0, $a1, +0xc from 0x1ff0: 0x1ff4 + 0xc = 0x2000; then nop in the delay slot.
        for (arch, code) in [
            (MIPS_BE, [0x1085_0003u32.to_be_bytes(), [0; 4]].concat()),
            (MIPS_LE, [0x1085_0003u32.to_le_bytes(), [0; 4]].concat()),
        ] {
            let lines = dis(arch, &code, 0x1ff0);
            assert_eq!(lines.len(), 2, "{arch:?}");
            assert_eq!(lines[0].mnemonic, "beq", "{arch:?}");
            assert_eq!(
                lines[0].operands, "$a0, $a1, 0x2000 <mod:target>",
                "{arch:?}"
            );
            assert_eq!(lines[1].mnemonic, "nop", "{arch:?}");
        }
    }

    #[test]
    fn format_line_aligns_columns() {
        let call = Line {
            address: 0x1000,
            bytes: vec![0xe8, 0xfb, 0x0f, 0x00, 0x00],
            mnemonic: "call".to_owned(),
            operands: "0x2000 <mod:target>".to_owned(),
        };
        let ret = Line {
            address: 0x1005,
            bytes: vec![0xc3],
            mnemonic: "ret".to_owned(),
            operands: String::new(),
        };
        let width = label_width(["mod:f", "mod:f+0x5"]);
        let a = format_line(&call, Some(("mod:f", width)));
        let b = format_line(&ret, Some(("mod:f+0x5", width)));
        assert_eq!(
            a,
            "0x00001000  mod:f                     e8 fb 0f 00 00           call 0x2000 <mod:target>"
        );
        assert_eq!(
            b,
            "0x00001005  mod:f+0x5                 c3                       ret"
        );
        assert_eq!(a.find("call"), b.find("ret"));
        assert!(!a.contains('\n'));
        let bare = format_line(&ret, None);
        assert_eq!(bare, "0x00001005  c3                       ret");
        // A label past the default width widens the column for the whole listing.
        let long = "module:*stubs*+0x0 -> a_long_callee";
        let width = label_width(["mod:f", long]);
        let a = format_line(&call, Some(("mod:f", width)));
        let b = format_line(&ret, Some((long, width)));
        assert_eq!(a.find("call"), b.find("ret"));
        assert_eq!(b.find("c3"), Some(12 + long.len() + 2));
    }
}
