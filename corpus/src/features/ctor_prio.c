/* Constructors with priorities: gcc puts them in .init_array.00101 and
 * .init_array.00200 (clang too), which a linker sorts by number before the
 * plain .init_array; the answer records the order in which they ran. */

static long ctor_trace;

__attribute__((constructor(200))) static void ctor_late(void) { ctor_trace = ctor_trace * 10 + 2; }
__attribute__((constructor(101))) static void ctor_early(void) { ctor_trace = ctor_trace * 10 + 1; }
__attribute__((constructor)) static void ctor_plain(void) { ctor_trace = ctor_trace * 10 + 3; }
__attribute__((destructor(150))) static void dtor_prio(void) { ctor_trace = 0; }

/* 123: the priority 101 one, then 200, then the plain one. */
long ctor_prio_order(void)
{
    return ctor_trace;
}
