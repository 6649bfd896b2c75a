/* A library meant to be registered, not loaded: its exported functions are
 * stubs in the kernel table until the first call through one loads it. Its
 * functions take more arguments than fit in registers, floating-point ones
 * among them, and one is variadic, so the stubs must forward every argument
 * register and the stack intact. unload_delay=1: the auto-unloader takes it
 * away one idle second after an auto-load. */

#include <stdarg.h>

__attribute__((section(".modinfo"), used, aligned(1)))
static const char lc_lib_modinfo[] = "name=lc_lib\0type=misc\0version=2\0unload_delay=1";

static long lc_lib_load_count;

int _load(void *arg)
{
    (void)arg;
    lc_lib_load_count++;
    return 0;
}

long lc_lib_loads(void)
{
    return lc_lib_load_count;
}

/* Ten integers: some always go on the stack. (1..10) gives 385. */
long lc_lib_weigh(long a, long b, long c, long d, long e, long f, long g, long h,
                  long i, long j)
{
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i +
           10 * j;
}

/* Nine doubles around an integer: every floating-point argument register and
 * then the stack. */
double lc_lib_mix(double x, long n, double y, double z, double w, double v,
                  double u, double t, double s, double r)
{
    return x * n + y + 2 * z + 3 * w + 4 * v + 5 * u + 6 * t + 7 * s + 8 * r;
}

/* A variadic function: on x86_64 its caller passes the count of vector
 * registers used in %al, which the stub must keep. */
long lc_lib_sum(int count, ...)
{
    va_list args;
    long total = 0;
    va_start(args, count);
    for (int i = 0; i < count; i++)
        total += va_arg(args, long);
    va_end(args);
    return total;
}
