/* A C++ module that throws: its exceptions are caught inside it
 * (cxx_catch_local) and, through its exported function cxx_throw_code, by
 * another module (cxx_catch.cpp). It needs the unwinder to know the module's
 * .eh_frame, and the C++ runtime (__cxa_throw, __gxx_personality_v0, ...)
 * from the host. */
#include "cxx_error.h"

CxxError::~CxxError() {}

namespace {

/* Local to the module: its type information has internal linkage. */
struct LocalError {
    long value;
};

/* Cleanup destructors run, on return or while an exception unwinds. */
long cleanups;

struct Cleanup {
    ~Cleanup() { cleanups++; }
};

__attribute__((noinline)) long throw_local(long n)
{
    Cleanup guard;
    if (n > 0)
        throw LocalError{n * 10};
    return n;
}

} // namespace

/* Throws CxxError(code) unless code is 0. */
extern "C" __attribute__((noinline)) long cxx_throw_code(long code)
{
    Cleanup guard;
    if (code != 0)
        throw CxxError(code);
    return 0;
}

/* Throws and catches inside the module. For n > 0: n * 10 from a LocalError,
 * plus 1000 + n from a CxxError, plus the 2 destructors run while the two
 * exceptions unwound: 1035 for 3. For 0, nothing is thrown: the 2 destructors
 * run on return. */
extern "C" long cxx_catch_local(long n)
{
    long before = cleanups;
    long result;
    try {
        result = throw_local(n);
    } catch (const LocalError &e) {
        result = e.value;
    }
    try {
        cxx_throw_code(n);
    } catch (const CxxError &e) {
        result += 1000 + e.code;
    }
    return result + (cleanups - before);
}

/* Destructors run so far. */
extern "C" long cxx_cleanups(void)
{
    return cleanups;
}
