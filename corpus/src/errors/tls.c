/* Thread-local storage: R_X86_64_TPOFF32 / GOTTPOFF / TLSGD / TLSLD
 * relocations, which a module loader cannot serve (a module has no TLS block). */

__thread long tls_counter;
static __thread long tls_local = 3;

long tls_bump(long x)
{
    tls_counter += x;
    tls_local *= 2;
    return tls_counter + tls_local;
}
