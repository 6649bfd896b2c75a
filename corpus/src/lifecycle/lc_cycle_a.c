/* lc_cycle_a and lc_cycle_b depend on each other: loading either is an error
 * naming the cycle. */

__attribute__((section(".modinfo"), used, aligned(1)))
static const char lc_cycle_a_modinfo[] = "name=lc_cycle_a\0depend=lc_cycle_b";

long lc_cycle_a_value(void)
{
    return 1;
}
