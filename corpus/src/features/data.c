/* Static and global data, read-only and writable, zero-filled (.bss), string
 * literals (.rodata.str1.1), and pointers to data and strings held in data
 * (R_X86_64_64 in .data.rel / .data.rel.local). */

long data_global = 1000;              /* .data, exported */
static long data_static = 7;          /* .data, local */
long data_zero;                       /* .bss (not COMMON: gcc 12 defaults to -fno-common) */
static long data_static_zero[64];     /* .bss, local */
const long data_const[4] = { 2, 3, 5, 7 };       /* .rodata */
static const char data_greeting[] = "hello, module";

/* Pointers held in data. */
const char *data_words[] = { "alpha", "beta", "gamma", "delta", "epsilon" };
static long *const data_ptrs[] = { &data_global, &data_static, &data_zero, &data_static_zero[10] };
static const char *data_greeting_ptr = data_greeting + 7;   /* "module" */

static long str_len(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    return n;
}

/* Writes through every pointer and reads everything back. */
long data_mix(long x)
{
    *data_ptrs[0] += x;
    *data_ptrs[1] *= 2;
    *data_ptrs[2] = x * 3;
    *data_ptrs[3] = x + 1;
    long acc = data_global + data_static + data_zero + data_static_zero[10];
    for (int i = 0; i < 4; i++)
        acc = acc * 3 + data_const[i];
    /* restore, so the answer does not depend on how often it ran */
    data_global -= x;
    data_static /= 2;
    return acc;
}

/* Sum of the lengths and first letters of the string table, plus the literal. */
long data_strings(long k)
{
    long acc = 0;
    for (int i = 0; i < 5; i++)
        acc = acc * 10 + str_len(data_words[i]) + (data_words[i][0] - 'a');
    acc += str_len(data_greeting_ptr) * 1000000;
    acc += str_len("a literal in the function") * k;
    return acc;
}

/* A zero-filled area must be zero after loading. */
long data_bss_is_zero(void)
{
    for (int i = 0; i < 64; i++)
        if (i != 10 && data_static_zero[i] != 0)
            return 0;
    return 1;
}
