//! aarch64 (AAPCS64) stub entries and the common trampoline. Preserved into the call: x0–x7,
//! x8 (the indirect result address), q0–q7 and the stack; out of it: x0–x7 and q0–q3. The
//! entries use only x16 and x17, the intra-procedure-call registers veneers may clobber.

use super::{stub_enter, stub_exit, ENTRY_SIZE};

/// `ldr x17, =SLOT; ldr x16, =COMMON; br x16; brk #0; .quad SLOT, COMMON`.
pub(super) fn entry(slot: u64, common: u64) -> [u8; ENTRY_SIZE] {
    const LDR_X17_PLUS_16: u32 = 0x5800_0000 | (4 << 5) | 17;
    const LDR_X16_PLUS_20: u32 = 0x5800_0000 | (5 << 5) | 16;
    const BR_X16: u32 = 0xd61f_0200;
    const BRK_0: u32 = 0xd420_0000;
    let mut code = [0u8; ENTRY_SIZE];
    for (i, word) in [LDR_X17_PLUS_16, LDR_X16_PLUS_20, BR_X16, BRK_0]
        .iter()
        .enumerate()
    {
        code[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    code[16..24].copy_from_slice(&slot.to_le_bytes());
    code[24..32].copy_from_slice(&common.to_le_bytes());
    code
}

// On entry x17 holds the slot and x30 the caller's return address.
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl dlkm_stub_common",
    ".hidden dlkm_stub_common",
    ".type dlkm_stub_common, %function",
    "dlkm_stub_common:",
    "hint #34",
    "stp x29, x30, [sp, #-224]!",
    "mov x29, sp",
    "stp x0, x1, [sp, #16]",
    "stp x2, x3, [sp, #32]",
    "stp x4, x5, [sp, #48]",
    "stp x6, x7, [sp, #64]",
    "str x8, [sp, #80]",
    "stp q0, q1, [sp, #96]",
    "stp q2, q3, [sp, #128]",
    "stp q4, q5, [sp, #160]",
    "stp q6, q7, [sp, #192]",
    "mov x0, x17",
    "mov x1, x30",
    "bl {enter}",
    "mov x16, x0",
    "ldp x0, x1, [sp, #16]",
    "ldp x2, x3, [sp, #32]",
    "ldp x4, x5, [sp, #48]",
    "ldp x6, x7, [sp, #64]",
    "ldr x8, [sp, #80]",
    "ldp q0, q1, [sp, #96]",
    "ldp q2, q3, [sp, #128]",
    "ldp q4, q5, [sp, #160]",
    "ldp q6, q7, [sp, #192]",
    "ldp x29, x30, [sp], #224",
    "cbz x16, 2f",
    // The caller's return address is kept by stub_enter; the callee returns here.
    "blr x16",
    "stp x0, x1, [sp, #-128]!",
    "stp x2, x3, [sp, #16]",
    "stp x4, x5, [sp, #32]",
    "stp x6, x7, [sp, #48]",
    "stp q0, q1, [sp, #64]",
    "stp q2, q3, [sp, #96]",
    "bl {exit}",
    "mov x30, x0",
    "ldp x2, x3, [sp, #16]",
    "ldp x4, x5, [sp, #32]",
    "ldp x6, x7, [sp, #48]",
    "ldp q0, q1, [sp, #64]",
    "ldp q2, q3, [sp, #96]",
    "ldp x0, x1, [sp], #128",
    "ret",
    // The module could not be loaded: the call returns -1, errno ENOSYS.
    "2:",
    "mov x0, #-1",
    "ret",
    ".size dlkm_stub_common, . - dlkm_stub_common",
    enter = sym stub_enter,
    exit = sym stub_exit,
);
