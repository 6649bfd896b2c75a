/* Frames for debuggers and unwinders: a call chain that faults on a bad pointer
 * (uw_fault), and a call into the kernel that returns through this module's
 * frame (uw_through). Loading a module registers its .eh_frame with the
 * unwinder and its symbols and DWARF with gdb: tests/tests/unwind.rs takes a
 * backtrace in the kernel below uw_through and finds its own caller above it;
 * tests/tests/gdb.rs runs msyms under gdb, calls uw_fault 0, and finds both
 * functions, with their lines, in gdb's backtrace. No checks: one takes a
 * function pointer, the other faults. */

/* Reads *p: uw_fault(0) faults here, two module frames deep. */
__attribute__((noinline)) static long uw_read(const volatile long *p)
{
    return *p + 1;
}

long uw_fault(long address)
{
    return uw_read((const volatile long *)address) * 2;
}

/* hook(x) + 1: not a tail call, so this frame stays on the stack while the
 * kernel's hook runs. */
long uw_through(long (*hook)(long), long x)
{
    return hook(x) + 1;
}
