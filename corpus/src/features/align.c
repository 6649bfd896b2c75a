/* 8-byte and 128-byte aligned data, initialised and zero-filled. The functions
 * report the alignment they observe, so a loader that drops a section's
 * alignment gives a different answer. */

#include <stdint.h>

long long align8_value __attribute__((aligned(8))) = 0x0102030405060708;
static char align128_data[200] __attribute__((aligned(128))) = { 1, 2, 3 };
static char align128_bss[300] __attribute__((aligned(128)));
static const char align64_ro[64] __attribute__((aligned(64))) = "sixty-four";
char align_pad_byte = 9;   /* a 1-byte item before the aligned ones in .data */

/* 1 per address that has the alignment asked for, as a bit mask. */
long align_check(void)
{
    long bits = 0;
    if (((uintptr_t)&align8_value & 7) == 0)
        bits |= 1;
    if (((uintptr_t)align128_data & 127) == 0)
        bits |= 2;
    if (((uintptr_t)align128_bss & 127) == 0)
        bits |= 4;
    if (((uintptr_t)align64_ro & 63) == 0)
        bits |= 8;
    return bits;
}

long align_sum(long x)
{
    align128_bss[299] = (char)x;
    long acc = align8_value & 0xffff;
    acc += align128_data[0] + align128_data[1] + align128_data[2] + align128_data[199];
    acc += align128_bss[299] + align128_bss[0];
    acc += align64_ro[0] + align_pad_byte;
    align128_bss[299] = 0;
    return acc;
}
