/* The module others depend on: exports a counter and a function. Loaded first
 * when lc_user is loaded (lc_user's .modinfo says depend=lc_base), and busy
 * while lc_user is loaded. */

__attribute__((section(".modinfo"), used, aligned(1)))
static const char lc_base_modinfo[] = "name=lc_base\0type=misc\0version=3";

long lc_base_calls;

long lc_base_twice(long x)
{
    lc_base_calls++;
    return 2 * x;
}
