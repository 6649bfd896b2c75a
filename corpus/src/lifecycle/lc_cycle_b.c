/* See lc_cycle_a.c. */

__attribute__((section(".modinfo"), used, aligned(1)))
static const char lc_cycle_b_modinfo[] = "name=lc_cycle_b\0depend=lc_cycle_a";

long lc_cycle_b_value(void)
{
    return 2;
}
