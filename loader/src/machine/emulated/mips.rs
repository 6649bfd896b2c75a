//! MIPS32 in the emulated machine, both byte orders: o32 (a0–a3 then the stack, every
//! argument owning a slot of the argument area; leading doubles in $f12/$f14; 64-bit values in
//! aligned register pairs; v0/v1 and $f0 for results; `va_list` a plain pointer).

use dlkm_linker::ArchKind;
use unicorn_engine::unicorn_const::{uc_error, Arch, Mode};
use unicorn_engine::RegisterMIPS as R;

use super::target::{
    read_word, slot_of, write_word, ArgClass, ArgCursor, Reg, Registers, Target, Uc,
};

const INT_ARGS: [R; 4] = [R::A0, R::A1, R::A2, R::A3];
/// The bytes of the argument area that travel in a0–a3.
const REG_AREA: u64 = 16;
/// s0–s8, gp, sp, ra, and the callee-saved even floating-point registers of FP32 code.
const PRESERVED: [Reg; 18] = [
    R::S0 as Reg,
    R::S1 as Reg,
    R::S2 as Reg,
    R::S3 as Reg,
    R::S4 as Reg,
    R::S5 as Reg,
    R::S6 as Reg,
    R::S7 as Reg,
    R::S8 as Reg,
    R::GP as Reg,
    R::SP as Reg,
    R::RA as Reg,
    R::F20 as Reg,
    R::F22 as Reg,
    R::F24 as Reg,
    R::F26 as Reg,
    R::F28 as Reg,
    R::F30 as Reg,
];
/// Status.CU1: the floating-point unit usable.
const STATUS_CU1: u64 = 1 << 29;
/// Registers that hold a double, low word first: an even/odd pair in FP32 mode.
const DOUBLE_PAIRS: [(R, R); 3] = [(R::F12, R::F13), (R::F14, R::F15), (R::F0, R::F1)];

const REGISTERS: Registers = Registers {
    pc: R::PC as Reg,
    sp: R::SP as Reg,
    link: R::RA as Reg,
    preserved: &PRESERVED,
    named: &NAMED,
};

const NAMED: [(&str, Reg); 35] = [
    ("zero", R::ZERO as Reg),
    ("at", R::AT as Reg),
    ("v0", R::V0 as Reg),
    ("v1", R::V1 as Reg),
    ("a0", R::A0 as Reg),
    ("a1", R::A1 as Reg),
    ("a2", R::A2 as Reg),
    ("a3", R::A3 as Reg),
    ("t0", R::T0 as Reg),
    ("t1", R::T1 as Reg),
    ("t2", R::T2 as Reg),
    ("t3", R::T3 as Reg),
    ("t4", R::T4 as Reg),
    ("t5", R::T5 as Reg),
    ("t6", R::T6 as Reg),
    ("t7", R::T7 as Reg),
    ("s0", R::S0 as Reg),
    ("s1", R::S1 as Reg),
    ("s2", R::S2 as Reg),
    ("s3", R::S3 as Reg),
    ("s4", R::S4 as Reg),
    ("s5", R::S5 as Reg),
    ("s6", R::S6 as Reg),
    ("s7", R::S7 as Reg),
    ("t8", R::T8 as Reg),
    ("t9", R::T9 as Reg),
    ("k0", R::K0 as Reg),
    ("k1", R::K1 as Reg),
    ("gp", R::GP as Reg),
    ("sp", R::SP as Reg),
    ("s8", R::S8 as Reg),
    ("ra", R::RA as Reg),
    ("pc", R::PC as Reg),
    ("hi", R::HI as Reg),
    ("lo", R::LO as Reg),
];
/// How far up the stack the backtrace looks for return addresses.
const STACK_SCAN: u64 = 0x1000;

pub(super) struct Mips {
    pub big_endian: bool,
}

impl Mips {
    /// Two words (in memory or registers, in order) as one 64-bit value.
    fn join(&self, first: u64, second: u64) -> u64 {
        let (high, low) = if self.big_endian {
            (first, second)
        } else {
            (second, first)
        };
        (high & 0xffff_ffff) << 32 | (low & 0xffff_ffff)
    }

    fn split(&self, value: u64) -> (u64, u64) {
        let (high, low) = (value >> 32, value & 0xffff_ffff);
        if self.big_endian {
            (high, low)
        } else {
            (low, high)
        }
    }

    /// The word at `offset` of the argument area of the function being entered.
    fn area_word(&self, uc: &Uc, offset: u64) -> Result<u64, uc_error> {
        if offset < REG_AREA {
            return uc.reg_read(INT_ARGS[(offset / 4) as usize]);
        }
        let sp = uc.reg_read(R::SP)?;
        read_word(uc, sp + offset, 4, self.big_endian)
    }

    /// Whether `address` is where a call returns: 8 bytes after a `jal` or `jalr`.
    fn follows_call(&self, uc: &Uc, address: u64) -> bool {
        if address % 4 != 0 || address < 8 {
            return false;
        }
        let Ok(word) = read_word(uc, address - 8, 4, self.big_endian) else {
            return false;
        };
        let jal = word >> 26 == 3;
        let jalr = word >> 26 == 0 && word & 0x3f == 9;
        jal || jalr
    }

    fn read_double_pair(&self, uc: &Uc, (low, high): (R, R)) -> Result<u64, uc_error> {
        Ok((uc.reg_read(high)? & 0xffff_ffff) << 32 | (uc.reg_read(low)? & 0xffff_ffff))
    }
}

impl Target for Mips {
    fn kind(&self) -> ArchKind {
        ArchKind::Mips {
            big_endian: self.big_endian,
        }
    }

    fn unicorn_arch(&self) -> (Arch, Mode) {
        let order = if self.big_endian {
            Mode::BIG_ENDIAN
        } else {
            Mode::LITTLE_ENDIAN
        };
        (Arch::MIPS, Mode::MIPS32 | order)
    }

    fn prepare(&self, uc: &mut Uc) -> Result<(), uc_error> {
        let status = uc.reg_read(R::CP0_STATUS)?;
        uc.reg_write(R::CP0_STATUS, status | STATUS_CU1)
    }

    fn return_slot(&self) -> [u8; 16] {
        // jr $ra; nop; then break: nothing runs past the return.
        slot_of([0x03e0_0008, 0, 0x0000_000d, 0x0000_000d], self.big_endian)
    }

    fn registers(&self) -> &'static Registers {
        &REGISTERS
    }

    fn jump(&self, uc: &mut Uc, target: u64) -> Result<(), uc_error> {
        // Position-independent code finds its $gp from $t9, the address it was called at.
        uc.reg_write(R::T9, target)?;
        uc.reg_write(R::PC, target)
    }

    fn set_call(
        &self,
        uc: &mut Uc,
        entry: u64,
        args: &[u64],
        sp: u64,
        return_to: u64,
    ) -> Result<(), uc_error> {
        for (i, &value) in args.iter().enumerate() {
            match INT_ARGS.get(i) {
                Some(&reg) => uc.reg_write(reg, value & 0xffff_ffff)?,
                None => write_word(uc, sp + 4 * i as u64, 4, self.big_endian, value)?,
            }
        }
        uc.reg_write(R::SP, sp)?;
        // Position-independent callers leave the callee's address in $t9; do the same.
        uc.reg_write(R::T9, entry)?;
        uc.reg_write(R::RA, return_to)
    }

    fn next_arg(&self, uc: &Uc, cursor: &mut ArgCursor, class: ArgClass) -> Result<u64, uc_error> {
        match class {
            ArgClass::Word => {
                cursor.not_only_fp = true;
                let value = self.area_word(uc, cursor.offset)?;
                cursor.offset += 4;
                Ok(value)
            }
            ArgClass::Int64 | ArgClass::Double => {
                cursor.offset = cursor.offset.next_multiple_of(8);
                let in_fp_register = class == ArgClass::Double
                    && !cursor.variadic
                    && !cursor.not_only_fp
                    && cursor.fp_regs < 2;
                let value = if in_fp_register {
                    self.read_double_pair(uc, DOUBLE_PAIRS[cursor.fp_regs])?
                } else {
                    let first = self.area_word(uc, cursor.offset)?;
                    let second = self.area_word(uc, cursor.offset + 4)?;
                    self.join(first, second)
                };
                if class == ArgClass::Double {
                    cursor.fp_regs += 1;
                } else {
                    cursor.not_only_fp = true;
                }
                cursor.offset += 8;
                Ok(value)
            }
        }
    }

    fn va_arg(&self, uc: &mut Uc, va: &mut u64, class: ArgClass) -> Result<u64, uc_error> {
        if class == ArgClass::Word {
            let value = read_word(uc, *va, 4, self.big_endian)?;
            *va += 4;
            return Ok(value);
        }
        let at = va.next_multiple_of(8);
        let first = read_word(uc, at, 4, self.big_endian)?;
        let second = read_word(uc, at + 4, 4, self.big_endian)?;
        *va = at + 8;
        Ok(self.join(first, second))
    }

    fn set_result(&self, uc: &mut Uc, class: ArgClass, value: u64) -> Result<(), uc_error> {
        match class {
            ArgClass::Word => uc.reg_write(R::V0, value & 0xffff_ffff),
            ArgClass::Int64 => {
                let (first, second) = self.split(value);
                uc.reg_write(R::V0, first)?;
                uc.reg_write(R::V1, second)
            }
            ArgClass::Double => {
                let (low, high) = DOUBLE_PAIRS[2];
                uc.reg_write(low, value & 0xffff_ffff)?;
                uc.reg_write(high, value >> 32)
            }
        }
    }

    /// o32 code keeps no frame chain: after the pc and ra, words on the stack that point just
    /// past a `jal`/`jalr` and its delay slot are taken for saved return addresses.
    fn return_addresses(&self, uc: &Uc, stack: (u64, u64)) -> Vec<u64> {
        let read = |reg| uc.reg_read(reg).unwrap_or(0) & 0xffff_ffff;
        let mut frames = vec![read(R::PC), read(R::RA)];
        let sp = read(R::SP);
        let end = stack.1.min(sp + STACK_SCAN);
        let mut at = sp;
        while (stack.0..end).contains(&at) {
            if let Ok(word) = read_word(uc, at, 4, self.big_endian) {
                if word != frames[1] && self.follows_call(uc, word) {
                    frames.push(word);
                }
            }
            at += 4;
        }
        frames
    }

    /// v0, sign-extended: a C `int` or `long` result as the host reads it.
    fn int_result(&self, uc: &Uc) -> Result<u64, uc_error> {
        Ok(uc.reg_read(R::V0)? as u32 as i32 as i64 as u64)
    }
}
