//! What the emulated machine needs to know of an architecture: its registers and its C calling
//! convention. The engine and the runtime are written once against [`Target`]; each
//! architecture's file only fills it in.

use dlkm_linker::ArchKind;
use unicorn_engine::unicorn_const::{uc_error, Arch, Mode};
use unicorn_engine::Unicorn;

use super::engine::EngineData;

pub(super) type Uc<'a> = Unicorn<'a, EngineData>;

/// One argument's or result's C type class, as the calling conventions tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArgClass {
    /// An integer or pointer no wider than a register word (`int`, `long`, `size_t`, `void *`).
    Word,
    /// A 64-bit integer (`long long`): a register pair on 32-bit targets.
    Int64,
    /// A `double`.
    Double,
}

/// Where the next argument of a call comes from: the registers used so far and the offset into
/// the stack arguments. A fresh cursor reads the first argument.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ArgCursor {
    pub int_regs: usize,
    pub fp_regs: usize,
    /// Bytes of the argument area consumed (o32 counts register arguments here too).
    pub offset: u64,
    /// Whether only floating-point arguments have been read so far (o32 passes leading doubles
    /// in floating-point registers, and no others).
    pub not_only_fp: bool,
    /// Whether the arguments are the variadic part of a call (o32 passes those in integer
    /// registers and on the stack only).
    pub variadic: bool,
}

/// A register of the target, by Unicorn's number.
pub(super) type Reg = i32;

/// The registers the engine and the runtime name.
pub(super) struct Registers {
    pub pc: Reg,
    pub sp: Reg,
    /// The register a call leaves its return address in.
    pub link: Reg,
    /// Registers a call must find unchanged when it returns (setjmp saves them), the stack
    /// pointer and the link register included.
    pub preserved: &'static [Reg],
    /// What the debugger's `regs` shows, by the names the ABI gives them.
    pub named: &'static [(&'static str, Reg)],
}

pub(super) trait Target: Send + Sync + 'static {
    fn kind(&self) -> ArchKind;

    fn unicorn_arch(&self) -> (Arch, Mode);

    /// Puts the CPU in the state modules expect (floating point on, the right CPU model).
    fn prepare(&self, uc: &mut Uc) -> Result<(), uc_error>;

    /// The bytes of an instruction that returns to the caller, padded to a kernel slot
    /// (16 bytes): a runtime function's hook runs at its slot, then this returns.
    fn return_slot(&self) -> [u8; 16];

    fn registers(&self) -> &'static Registers;

    /// Sets up a call: integer arguments, the stack pointer (already aligned, with room below
    /// it), and where the callee returns to.
    fn set_call(
        &self,
        uc: &mut Uc,
        entry: u64,
        args: &[u64],
        sp: u64,
        return_to: u64,
    ) -> Result<(), uc_error>;

    /// Reads the next argument of class `class`.
    fn next_arg(&self, uc: &Uc, cursor: &mut ArgCursor, class: ArgClass) -> Result<u64, uc_error>;

    /// Reads the next argument of class `class` through a C `va_list` as the callee received
    /// it (o32: the pointer to the next argument, advanced here; aarch64: the address of the
    /// `va_list` object, updated in memory).
    fn va_arg(&self, uc: &mut Uc, va: &mut u64, class: ArgClass) -> Result<u64, uc_error>;

    /// Sets the result of a function returning class `class` (doubles as their bits).
    fn set_result(&self, uc: &mut Uc, class: ArgClass, value: u64) -> Result<(), uc_error>;

    /// The code addresses of the stopped call's frames, innermost first: the pc, the return
    /// address in the link register, then those found in the stack (`stack`: its bounds).
    fn return_addresses(&self, uc: &Uc, stack: (u64, u64)) -> Vec<u64>;

    /// The integer result of a call that has returned, sign-extended to 64 bits from the
    /// register width.
    fn int_result(&self, uc: &Uc) -> Result<u64, uc_error>;

    /// Continues the current call at `target`, as a jump from a stub: every argument register
    /// as it is.
    fn jump(&self, uc: &mut Uc, target: u64) -> Result<(), uc_error> {
        uc.reg_write(self.registers().pc, target)
    }
}

/// Reads a little- or big-endian word of `bytes` bytes at `address`.
pub(super) fn read_word(
    uc: &Uc,
    address: u64,
    bytes: u64,
    big_endian: bool,
) -> Result<u64, uc_error> {
    let mut buf = [0u8; 8];
    let buf = &mut buf[..bytes as usize];
    uc.mem_read(address, buf)?;
    let mut value = 0u64;
    for i in 0..buf.len() {
        let byte = if big_endian {
            buf[i]
        } else {
            buf[buf.len() - 1 - i]
        };
        value = (value << 8) | u64::from(byte);
    }
    Ok(value)
}

/// Writes `value` as a word of `bytes` bytes at `address`.
pub(super) fn write_word(
    uc: &mut Uc,
    address: u64,
    bytes: u64,
    big_endian: bool,
    value: u64,
) -> Result<(), uc_error> {
    let le = value.to_le_bytes();
    let mut buf = le[..bytes as usize].to_vec();
    if big_endian {
        buf.reverse();
    }
    uc.mem_write(address, &buf)
}

/// A kernel slot of four instruction words in the target's byte order.
pub(super) fn slot_of(words: [u32; 4], big_endian: bool) -> [u8; 16] {
    let mut slot = [0u8; 16];
    for (bytes, word) in slot.chunks_exact_mut(4).zip(words) {
        bytes.copy_from_slice(&if big_endian {
            word.to_be_bytes()
        } else {
            word.to_le_bytes()
        });
    }
    slot
}
