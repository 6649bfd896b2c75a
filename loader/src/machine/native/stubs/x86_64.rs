//! x86_64 (System V) stub entries and the common trampoline. Preserved into the call: rdi,
//! rsi, rdx, rcx, r8, r9, rax (the vector-register count of a variadic call), r10 (the static
//! chain), xmm0–7 and the stack; out of it: rax, rdx, xmm0, xmm1 (x87 results stay on the
//! x87 stack, which the helpers do not touch).

use super::{stub_enter, stub_exit, ENTRY_SIZE};

/// `movabs r11, SLOT; jmp [rip+0]; .quad COMMON`, padded with int3.
pub(super) fn entry(slot: u64, common: u64) -> [u8; ENTRY_SIZE] {
    let mut code = [0xcc; ENTRY_SIZE];
    code[..2].copy_from_slice(&[0x49, 0xbb]);
    code[2..10].copy_from_slice(&slot.to_le_bytes());
    code[10..16].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
    code[16..24].copy_from_slice(&common.to_le_bytes());
    code
}

// On entry r11 holds the slot and [rsp] the caller's return address. The frame keeps rsp
// 16-byte aligned at both helper calls; after `add rsp, 8` the callee finds its stack
// arguments exactly where the caller put them.
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl dlkm_stub_common",
    ".hidden dlkm_stub_common",
    ".type dlkm_stub_common, @function",
    "dlkm_stub_common:",
    "push rbp",
    "mov rbp, rsp",
    "sub rsp, 192",
    "mov [rsp], rdi",
    "mov [rsp + 8], rsi",
    "mov [rsp + 16], rdx",
    "mov [rsp + 24], rcx",
    "mov [rsp + 32], r8",
    "mov [rsp + 40], r9",
    "mov [rsp + 48], rax",
    "mov [rsp + 56], r10",
    "movaps [rsp + 64], xmm0",
    "movaps [rsp + 80], xmm1",
    "movaps [rsp + 96], xmm2",
    "movaps [rsp + 112], xmm3",
    "movaps [rsp + 128], xmm4",
    "movaps [rsp + 144], xmm5",
    "movaps [rsp + 160], xmm6",
    "movaps [rsp + 176], xmm7",
    "mov rdi, r11",
    "mov rsi, [rbp + 8]",
    "call {enter}",
    "mov r11, rax",
    "mov rdi, [rsp]",
    "mov rsi, [rsp + 8]",
    "mov rdx, [rsp + 16]",
    "mov rcx, [rsp + 24]",
    "mov r8, [rsp + 32]",
    "mov r9, [rsp + 40]",
    "mov rax, [rsp + 48]",
    "mov r10, [rsp + 56]",
    "movaps xmm0, [rsp + 64]",
    "movaps xmm1, [rsp + 80]",
    "movaps xmm2, [rsp + 96]",
    "movaps xmm3, [rsp + 112]",
    "movaps xmm4, [rsp + 128]",
    "movaps xmm5, [rsp + 144]",
    "movaps xmm6, [rsp + 160]",
    "movaps xmm7, [rsp + 176]",
    "leave",
    "test r11, r11",
    "jz 2f",
    // The caller's return address is kept by stub_enter; the callee returns here.
    "add rsp, 8",
    "call r11",
    "sub rsp, 8",
    "push rax",
    "push rdx",
    "sub rsp, 40",
    "movups [rsp], xmm0",
    "movups [rsp + 16], xmm1",
    "call {exit}",
    "mov [rsp + 56], rax",
    "movups xmm0, [rsp]",
    "movups xmm1, [rsp + 16]",
    "add rsp, 40",
    "pop rdx",
    "pop rax",
    "ret",
    // The module could not be loaded: the call returns -1, errno ENOSYS.
    "2:",
    "mov rax, -1",
    "ret",
    ".size dlkm_stub_common, . - dlkm_stub_common",
    enter = sym stub_enter,
    exit = sym stub_exit,
);
