/* The exception the C++ modules throw across module boundaries. Its key
 * function (the destructor) is defined in cxx_throw.cpp only, so its type
 * information and vtable are defined in that module alone, and cxx_catch.o
 * binds to them when it is loaded. */
#ifndef CXX_ERROR_H
#define CXX_ERROR_H

struct CxxError {
    explicit CxxError(long c) : code(c) {}
    virtual ~CxxError();
    long code;
};

#endif
