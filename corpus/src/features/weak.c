/* A weak undefined function (resolves to 0 when nothing defines it: no error),
 * and a weak definition. */

extern long maybe_missing(void) __attribute__((weak));
extern long maybe_missing_data __attribute__((weak));

long weak_probe(void)
{
    if (!maybe_missing)
        return -1;
    return maybe_missing();
}

/* -1 when the weak variable is absent too. */
long weak_data_probe(void)
{
    return &maybe_missing_data ? maybe_missing_data : -1;
}

__attribute__((weak)) long weak_default(long x)
{
    return x + 7;
}

long weak_call_default(long x)
{
    return weak_default(x) * 2;
}
