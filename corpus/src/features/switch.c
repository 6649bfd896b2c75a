/* A dense switch that compiles to a jump table: PIC code gets a table of
 * 32-bit offsets in .rodata (R_X86_64_PC32 against .text), non-PIC code a table
 * of absolute addresses (R_X86_64_64 in .rodata, R_X86_64_32S in the jmp). */

long sw_eval(long op, long x)
{
    switch (op) {
    case 0: return x + 11;
    case 1: return x * 3 - 1;
    case 2: return x ^ 0x5a5a;
    case 3: return x << 3;
    case 4: return (x >> 1) + 100;
    case 5: return x * x - 7;
    case 6: return -x + 999;
    case 7: return x % 13 + 7;
    case 8: return (x | 0x100) - 3;
    case 9: return x / 3 + 77;
    case 10: return (x & 0xff) * 5;
    case 11: return x + x + x + x + 1;
    case 12: return 123456 - x;
    case 13: return x * 1001;
    default: return -1;
    }
}

/* Every case and two defaults, combined in order. */
long sw_sum(long x)
{
    long acc = 0;
    for (long op = -1; op <= 14; op++)
        acc = acc * 7 + sw_eval(op, x);
    return acc;
}
