/* Exports dlkm_dup_symbol, as dup_a.c does: loading both must fail. */

long dlkm_dup_symbol(long x)
{
    return x + 2;
}

long dup_b_only(void)
{
    return 2;
}
