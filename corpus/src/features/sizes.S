/* R_X86_64_SIZE64 and R_X86_64_SIZE32: the size of a symbol, resolved at link
 * time. sizes_get returns sizes_table@SIZE * 1000 + the 32-bit size stored in
 * data with an addend (sizes_blob@SIZE + 3), i.e. 40 * 1000 + 27 = 40027. */

        .text
        .globl  sizes_get
        .type   sizes_get, @function
sizes_get:
        movabsq $sizes_table@SIZE, %rax
        imulq   $1000, %rax, %rax
        movl    sizes_size32(%rip), %edx
        addq    %rdx, %rax
        ret
        .size   sizes_get, .-sizes_get

/* sizes_table@SIZE added to the first entry of the table. */
        .globl  sizes_table_first
        .type   sizes_table_first, @function
sizes_table_first:
        movabsq $sizes_table@SIZE, %rax
        addq    sizes_table(%rip), %rax
        ret
        .size   sizes_table_first, .-sizes_table_first

        .data
        .align  8
        .globl  sizes_table
        .type   sizes_table, @object
sizes_table:
        .quad   1, 2, 3, 4, 5
        .size   sizes_table, 40

        .globl  sizes_blob
        .type   sizes_blob, @object
sizes_blob:
        .zero   24
        .size   sizes_blob, 24

        .align  4
        .type   sizes_size32, @object
sizes_size32:
        .long   sizes_blob@SIZE + 3
        .size   sizes_size32, 4

        .section .note.GNU-stack,"",@progbits
