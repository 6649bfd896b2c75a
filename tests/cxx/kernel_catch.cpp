/* Kernel code in C++, for tests/tests/unwind.rs: built into a shared library
 * the test opens, so that a C++ exception thrown in a module unwinds out of
 * the module into the host program and is caught there. */
#include "../../corpus/src/cxx/cxx_error.h"

/* The host's own definition of the key function, hence its own type
 * information for CxxError; the C++ runtime matches it with the module's by
 * name, as it does for any type two shared objects both define. */
CxxError::~CxxError() {}

/* f(code), or code * 5 from the CxxError f threw. */
extern "C" long kernel_catch(long (*f)(long), long code)
{
    try {
        return f(code);
    } catch (const CxxError &e) {
        return e.code * 5;
    }
}

/* f(code), or -1 from anything else f threw. */
extern "C" long kernel_catch_all(long (*f)(long), long code)
{
    try {
        return f(code);
    } catch (...) {
        return -1;
    }
}
