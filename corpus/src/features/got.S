/* GOT-relative references written by hand, the forms compilers rarely emit in
 * the small model: R_X86_64_GOTPC32 (the GOT's own address, through the
 * undefined symbol _GLOBAL_OFFSET_TABLE_), R_X86_64_GOTOFF64 (a symbol's
 * offset from the GOT), R_X86_64_REX_GOTPCRELX (relaxable mov from a GOT
 * slot) and a plain R_X86_64_GOTPCREL (a movq into %xmm0, which the assembler
 * does not mark relaxable).
 * got_probe returns 5 + 10 * 6 + 100 * 7 = 765. */

        .text
        .globl  got_probe
        .type   got_probe, @function
got_probe:
        leaq    _GLOBAL_OFFSET_TABLE_(%rip), %rcx       /* GOTPC32 */
        movabsq $got_five@GOTOFF, %rax                  /* GOTOFF64 */
        movq    (%rcx,%rax), %rax                       /* 5 */
        movq    got_six@GOTPCREL(%rip), %rdx            /* REX_GOTPCRELX */
        imulq   $10, (%rdx), %rdx
        addq    %rdx, %rax                              /* + 60 */
        movq    got_seven@GOTPCREL(%rip), %xmm0         /* GOTPCREL */
        movq    %xmm0, %rdx
        imulq   $100, (%rdx), %rdx
        addq    %rdx, %rax                              /* + 700 */
        ret
        .size   got_probe, .-got_probe

        .data
        .align  8
        .type   got_five, @object
got_five:
        .quad   5
        .size   got_five, 8
        .globl  got_six
        .type   got_six, @object
got_six:
        .quad   6
        .size   got_six, 8
        .type   got_seven, @object
got_seven:
        .quad   7
        .size   got_seven, 8

        .section .note.GNU-stack,"",@progbits
