/* Uses a variable and functions defined in provider.c, loaded as another
 * module first. clang's PIE code reaches shared_counter and provider_name
 * through the GOT (R_X86_64_REX_GOTPCRELX); gcc 12's PIE code, like its
 * non-PIC code, reaches them directly (R_X86_64_PC32; gcc assumes an
 * executable's copy relocations), so the loader must place the two modules
 * within 2 GiB of each other or give up. */

extern long shared_counter;
extern const char provider_name[];
extern long provider_add(long x);
extern long provider_reset(void);

/* The address of another module's function, kept in data. */
long (*consumer_hook)(long) = provider_add;

long consumer_run(long x)
{
    provider_reset();
    provider_add(x);            /* 5 + x */
    shared_counter *= 2;        /* written directly by this module */
    long r = consumer_hook(1);  /* 2 * (5 + x) + 1 */
    long n = 0;
    while (provider_name[n])
        n++;
    provider_reset();
    return r * 100 + n;
}

/* 1 when both modules see the same variable. */
long consumer_same_counter(void)
{
    provider_reset();
    shared_counter = 77;
    long seen = provider_add(0);
    provider_reset();
    return seen == 77;
}
