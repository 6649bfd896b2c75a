//! aarch64 in the emulated machine: AAPCS64 as Linux uses it (x0–x7 and d0–d7, variadic
//! arguments like named ones, a 32-byte `va_list`).

use dlkm_linker::ArchKind;
use unicorn_engine::unicorn_const::{uc_error, Arch, Mode};
use unicorn_engine::RegisterARM64 as R;

use super::target::{
    read_word, slot_of, write_word, ArgClass, ArgCursor, Reg, Registers, Target, Uc,
};

const INT_ARGS: [R; 8] = [R::X0, R::X1, R::X2, R::X3, R::X4, R::X5, R::X6, R::X7];
const FP_ARGS: [R; 8] = [R::D0, R::D1, R::D2, R::D3, R::D4, R::D5, R::D6, R::D7];
/// x19–x28, the frame pointer, the link register, the stack pointer, d8–d15.
const PRESERVED: [Reg; 23] = [
    R::X19 as Reg,
    R::X20 as Reg,
    R::X21 as Reg,
    R::X22 as Reg,
    R::X23 as Reg,
    R::X24 as Reg,
    R::X25 as Reg,
    R::X26 as Reg,
    R::X27 as Reg,
    R::X28 as Reg,
    R::X29 as Reg,
    R::X30 as Reg,
    R::SP as Reg,
    R::D8 as Reg,
    R::D9 as Reg,
    R::D10 as Reg,
    R::D11 as Reg,
    R::D12 as Reg,
    R::D13 as Reg,
    R::D14 as Reg,
    R::D15 as Reg,
    R::FPCR as Reg,
    R::NZCV as Reg,
];
/// CPACR_EL1.FPEN: floating point and SIMD not trapped.
const FPEN: u64 = 3 << 20;

const REGISTERS: Registers = Registers {
    pc: R::PC as Reg,
    sp: R::SP as Reg,
    link: R::X30 as Reg,
    preserved: &PRESERVED,
    named: &NAMED,
};

const NAMED: [(&str, Reg); 34] = [
    ("x0", R::X0 as Reg),
    ("x1", R::X1 as Reg),
    ("x2", R::X2 as Reg),
    ("x3", R::X3 as Reg),
    ("x4", R::X4 as Reg),
    ("x5", R::X5 as Reg),
    ("x6", R::X6 as Reg),
    ("x7", R::X7 as Reg),
    ("x8", R::X8 as Reg),
    ("x9", R::X9 as Reg),
    ("x10", R::X10 as Reg),
    ("x11", R::X11 as Reg),
    ("x12", R::X12 as Reg),
    ("x13", R::X13 as Reg),
    ("x14", R::X14 as Reg),
    ("x15", R::X15 as Reg),
    ("x16", R::X16 as Reg),
    ("x17", R::X17 as Reg),
    ("x18", R::X18 as Reg),
    ("x19", R::X19 as Reg),
    ("x20", R::X20 as Reg),
    ("x21", R::X21 as Reg),
    ("x22", R::X22 as Reg),
    ("x23", R::X23 as Reg),
    ("x24", R::X24 as Reg),
    ("x25", R::X25 as Reg),
    ("x26", R::X26 as Reg),
    ("x27", R::X27 as Reg),
    ("x28", R::X28 as Reg),
    ("fp", R::X29 as Reg),
    ("lr", R::X30 as Reg),
    ("sp", R::SP as Reg),
    ("pc", R::PC as Reg),
    ("nzcv", R::NZCV as Reg),
];

pub(super) struct Aarch64;

impl Aarch64 {
    fn stack_arg(uc: &Uc, cursor: &mut ArgCursor) -> Result<u64, uc_error> {
        let sp = uc.reg_read(R::SP)?;
        let value = read_word(uc, sp + cursor.offset, 8, false)?;
        cursor.offset += 8;
        Ok(value)
    }
}

impl Target for Aarch64 {
    fn kind(&self) -> ArchKind {
        ArchKind::Aarch64
    }

    fn unicorn_arch(&self) -> (Arch, Mode) {
        (Arch::ARM64, Mode::ARM)
    }

    fn prepare(&self, uc: &mut Uc) -> Result<(), uc_error> {
        let cpacr = uc.reg_read(R::CPACR_EL1)?;
        uc.reg_write(R::CPACR_EL1, cpacr | FPEN)
    }

    fn return_slot(&self) -> [u8; 16] {
        // ret; then brk: nothing runs past the return.
        let (ret, brk) = (0xd65f_03c0, 0xd420_0000);
        slot_of([ret, brk, brk, brk], false)
    }

    fn registers(&self) -> &'static Registers {
        &REGISTERS
    }

    fn set_call(
        &self,
        uc: &mut Uc,
        _entry: u64,
        args: &[u64],
        sp: u64,
        return_to: u64,
    ) -> Result<(), uc_error> {
        for (i, &value) in args.iter().enumerate() {
            match INT_ARGS.get(i) {
                Some(&reg) => uc.reg_write(reg, value)?,
                None => write_word(uc, sp + 8 * (i - INT_ARGS.len()) as u64, 8, false, value)?,
            }
        }
        uc.reg_write(R::SP, sp)?;
        uc.reg_write(R::X30, return_to)
    }

    fn next_arg(&self, uc: &Uc, cursor: &mut ArgCursor, class: ArgClass) -> Result<u64, uc_error> {
        match class {
            ArgClass::Word | ArgClass::Int64 => match INT_ARGS.get(cursor.int_regs) {
                Some(&reg) => {
                    cursor.int_regs += 1;
                    uc.reg_read(reg)
                }
                None => Self::stack_arg(uc, cursor),
            },
            ArgClass::Double => match FP_ARGS.get(cursor.fp_regs) {
                Some(&reg) => {
                    cursor.fp_regs += 1;
                    uc.reg_read(reg)
                }
                None => Self::stack_arg(uc, cursor),
            },
        }
    }

    fn va_arg(&self, uc: &mut Uc, va: &mut u64, class: ArgClass) -> Result<u64, uc_error> {
        // struct { void *stack, *gr_top, *vr_top; int gr_offs, vr_offs; }
        let list = *va;
        let (top_field, offs_field, step) = match class {
            ArgClass::Double => (16, 28, 16),
            _ => (8, 24, 8),
        };
        let offs = read_word(uc, list + offs_field, 4, false)? as u32 as i32;
        if offs < 0 {
            let top = read_word(uc, list + top_field, 8, false)?;
            let value = read_word(uc, top.wrapping_add(offs as i64 as u64), 8, false)?;
            write_word(uc, list + offs_field, 4, false, (offs + step) as u32 as u64)?;
            return Ok(value);
        }
        let stack = read_word(uc, list, 8, false)?;
        let value = read_word(uc, stack, 8, false)?;
        write_word(uc, list, 8, false, stack + 8)?;
        Ok(value)
    }

    fn set_result(&self, uc: &mut Uc, class: ArgClass, value: u64) -> Result<(), uc_error> {
        match class {
            ArgClass::Double => uc.reg_write(R::D0, value),
            _ => uc.reg_write(R::X0, value),
        }
    }

    fn int_result(&self, uc: &Uc) -> Result<u64, uc_error> {
        uc.reg_read(R::X0)
    }

    /// The pc, lr, then the frame records: x29 points at {previous x29, return address}.
    fn return_addresses(&self, uc: &Uc, stack: (u64, u64)) -> Vec<u64> {
        let read = |reg| uc.reg_read(reg).unwrap_or(0);
        let mut frames = vec![read(R::PC), read(R::X30)];
        let mut fp = read(R::X29);
        while (stack.0..stack.1 - 16).contains(&fp) && frames.len() < 64 {
            let Ok(record) = uc.mem_read_as_vec(fp, 16) else {
                break;
            };
            let next = u64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
            frames.push(u64::from_le_bytes(record[8..].try_into().expect("8 bytes")));
            if next <= fp {
                break;
            }
            fp = next;
        }
        frames
    }
}
