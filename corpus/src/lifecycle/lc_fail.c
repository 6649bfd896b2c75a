/* A module whose _load fails with ENODEV (19): the kernel must undo the whole
 * load, its exports with it. */

long lc_fail_export(long x)
{
    return x + 1;
}

int _load(void *arg)
{
    (void)arg;
    return 19;
}
