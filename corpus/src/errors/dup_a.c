/* Exports dlkm_dup_symbol; so does dup_b.c: loading both must fail. */

long dlkm_dup_symbol(long x)
{
    return x + 1;
}

long dup_a_only(void)
{
    return 1;
}
