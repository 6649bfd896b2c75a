/* Compiled with -mcmodel=large: with -fPIC every reference goes through the
 * GOT base (R_X86_64_GOTPC64 for the base, R_X86_64_GOTOFF64 for local data,
 * R_X86_64_GOT64 for global data, R_X86_64_PLTOFF64 for calls); without PIC,
 * every address is a 64-bit immediate (R_X86_64_64). */

#include <stdio.h>
#include <string.h>

static long large_static = 40;
long large_global = 2;
static char large_text[32] = "large model";
long large_table[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

__attribute__((noinline)) static long large_helper(long x)
{
    large_static++;
    return x * 3 + large_static;
}

long large_exported_helper(long x)
{
    return x - 1;
}

static long (*const large_fns[])(long) = { large_helper, large_exported_helper };

long large_run(long x)
{
    large_static = 40;
    long acc = large_helper(x) + large_exported_helper(x) + large_global;
    char buf[48];
    int n = snprintf(buf, sizeof buf, "%s/%ld", large_text, x);   /* libc calls */
    acc += n * 100 + (long)strlen(buf);
    for (int i = 0; i < 8; i++)
        acc += large_table[i] * i;
    for (int i = 0; i < 2; i++)
        acc = acc * 10 + large_fns[i](x);
    large_text[0] ^= 0x20;  /* "Large model", then back */
    acc += large_text[0];
    large_text[0] ^= 0x20;
    return acc;
}
