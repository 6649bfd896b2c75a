/* Calls into libc: strlen, snprintf into a buffer, qsort with a callback (libc
 * calls back into the module), malloc/free, memcpy/memset, strtol, strcmp. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long libc_strlen(const char *s)
{
    return (long)strlen(s);
}

/* Formats x several ways and sums the bytes of the result. */
long libc_format(long x)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%ld|%lx|%s|%5.2f|%c", x, (unsigned long)x * 3,
                     "text", (double)x / 8.0, 'A' + (int)(x % 26));
    long acc = n;
    for (int i = 0; i < n; i++)
        acc = acc * 31 + (unsigned char)buf[i];
    return acc & 0x7fffffffffff;
}

static int cmp_long_desc(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

/* Fills a malloc'd array with a pseudo-random sequence, qsorts it descending
 * through a module callback, and returns a position-weighted checksum. */
long libc_qsort(long seed)
{
    enum { N = 257 };
    long *v = malloc(N * sizeof *v);
    if (!v)
        return -1;
    unsigned long long s = (unsigned long long)seed;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        v[i] = (long)(s >> 40);
    }
    qsort(v, N, sizeof *v, cmp_long_desc);
    long acc = 0;
    for (int i = 0; i < N; i++) {
        if (i && v[i - 1] < v[i]) {
            free(v);
            return -2;
        }
        acc = acc * 3 + v[i] % 1000;
    }
    free(v);
    return acc & 0x7fffffffffff;
}

/* malloc, memset, memcpy, realloc, strtol, strcmp, free. */
long libc_memory(long n)
{
    char *p = malloc((size_t)n + 1);
    if (!p)
        return -1;
    memset(p, '7', (size_t)n);
    p[n] = 0;
    char *q = realloc(p, (size_t)n * 2 + 1);
    if (!q) {
        free(p);
        return -1;
    }
    memcpy(q + n, q, (size_t)n);
    q[2 * n] = 0;
    long len = (long)strlen(q);
    long head = strtol(q + len - 3, NULL, 10);
    int same = strcmp(q, q) == 0;
    free(q);
    return len * 1000 + head + same;
}
