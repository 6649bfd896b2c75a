/* A C++ module that catches what another module throws: cxx_throw_code of
 * cxx_throw.o, called directly (cxx_catch_remote) or through a function of
 * the kernel's (cxx_catch_through), so that the exception unwinds through a
 * frame of the host program on its way here. */
#include "cxx_error.h"

extern "C" long cxx_throw_code(long code);

/* code * 2 from the exception cxx_throw.o throws; 0 for code 0, which throws
 * nothing. */
extern "C" long cxx_catch_remote(long code)
{
    try {
        return cxx_throw_code(code);
    } catch (const CxxError &e) {
        return e.code * 2;
    }
}

/* via(cxx_throw_code, code), via being a kernel function that calls its first
 * argument with its second: code * 3 from the exception that unwound through
 * it. */
extern "C" long cxx_catch_through(long (*via)(long (*)(long), long), long code)
{
    try {
        return via(cxx_throw_code, code);
    } catch (const CxxError &e) {
        return e.code * 3;
    }
}
