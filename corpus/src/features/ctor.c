/* Constructors and destructors (.init_array / .fini_array). The constructors
 * allocate and fill a buffer through libc; the destructor frees it. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long ctor_value;
static long ctor_calls;
static char *ctor_buffer;

__attribute__((constructor)) static void ctor_first(void)
{
    ctor_calls++;
    ctor_value = 42;
    ctor_buffer = malloc(64);
    if (ctor_buffer)
        snprintf(ctor_buffer, 64, "constructed %ld", ctor_value);
}

__attribute__((constructor)) static void ctor_second(void)
{
    ctor_calls++;
    ctor_value += 1000;
}

__attribute__((destructor)) static void dtor_release(void)
{
    free(ctor_buffer);
    ctor_buffer = NULL;
    ctor_value = -1;
}

/* 1042 when both constructors ran once, in .init_array order; 0 when none did.
 * clang 14 evaluates ctor_second at compile time (its stores are already in
 * .data, only ctor_first stays in .init_array), so its object gives 42. */
long ctor_ran(void)
{
    return ctor_value * (ctor_calls == 2);
}

/* strlen("constructed 42") = 14, or -1 without the constructor. */
long ctor_message_len(void)
{
    return ctor_buffer ? (long)strlen(ctor_buffer) : -1;
}
