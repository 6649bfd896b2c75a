/* Calls lc_lib without depending on it: loaded while lc_lib is only
 * registered, its calls bind to lc_lib's stubs, and the first of them loads
 * lc_lib and goes on into it. */

__attribute__((section(".modinfo"), used, aligned(1)))
static const char lc_caller_modinfo[] = "name=lc_caller\0type=misc";

extern long lc_lib_loads(void);
extern long lc_lib_weigh(long a, long b, long c, long d, long e, long f, long g,
                         long h, long i, long j);
extern double lc_lib_mix(double x, long n, double y, double z, double w,
                         double v, double u, double t, double s, double r);
extern long lc_lib_sum(int count, ...);

long lc_caller_loads(void)
{
    return lc_lib_loads();
}

/* 385 */
long lc_caller_weigh(void)
{
    return lc_lib_weigh(1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
}

/* 4 * (0.5*4 + 1.5 + 2*2 + 3*0.25 + 4*1 + 5*0.5 + 6*2 + 7*0.75 + 8*3) = 224 */
long lc_caller_mix(void)
{
    double d = lc_lib_mix(0.5, 4, 1.5, 2.0, 0.25, 1.0, 0.5, 2.0, 0.75, 3.0);
    return (long)(d * 4);
}

/* 1 + 2 + 3 + 4 + 5 = 15 */
long lc_caller_sum(void)
{
    return lc_lib_sum(5, 1L, 2L, 3L, 4L, 5L);
}
