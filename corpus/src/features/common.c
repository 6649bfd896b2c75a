/* COMMON symbols: built with -fcommon, so these uninitialised globals are
 * SHN_COMMON symbols (no section) that the loader must allocate, zeroed, with
 * the alignment given in st_value. */

int counter;
long common_array[16];
char common_bytes[3];
double common_scale;

long common_bump(long n)
{
    for (long i = 0; i < n; i++) {
        counter++;
        common_array[i & 15] += i;
        common_bytes[i % 3]++;
    }
    common_scale = 0.5 * n;
    long acc = counter;
    for (int i = 0; i < 16; i++)
        acc = acc * 3 + common_array[i];
    acc += common_bytes[0] * 100 + common_bytes[1] * 10 + common_bytes[2];
    acc += (long)(common_scale * 4);
    /* back to zero: repeatable */
    counter = 0;
    for (int i = 0; i < 16; i++)
        common_array[i] = 0;
    common_bytes[0] = common_bytes[1] = common_bytes[2] = 0;
    return acc;
}

/* All of it must start zeroed. */
long common_is_zero(void)
{
    if (counter || common_scale != 0.0)
        return 0;
    for (int i = 0; i < 16; i++)
        if (common_array[i])
            return 0;
    return common_bytes[0] == 0 && common_bytes[1] == 0 && common_bytes[2] == 0;
}
