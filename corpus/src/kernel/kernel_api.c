/* A module that uses what its kernel exports: the function log_line and the
 * variable kernel_counter (both provided by the embedding program, not by
 * libc), has a .modinfo section, a constructor, and the _load/_unload entry
 * points. Used by tests/tests/native_kernel.rs and loader/examples/embed.rs,
 * not by answers.txt (a plain native kernel exports neither symbol).
 *
 * With kernel_counter at 40 before loading: the constructor and _load add one
 * each (42), and kapi_log_twice(20) logs twice and returns 2 * 20 + 1 + 1 = 42.
 * At unload the destructor adds 100, so the kernel sees its destructors ran. */

extern void log_line(const char *line);
extern long kernel_counter;

__attribute__((section(".modinfo"), used, aligned(1)))
static const char kapi_modinfo[] = "name=kernel_api\0type=misc\0version=1";

static long kapi_constructed;
static long kapi_loaded;

__attribute__((constructor)) static void kapi_init(void)
{
    kapi_constructed = 1;
    kernel_counter++;
}

__attribute__((destructor)) static void kapi_fini(void)
{
    kernel_counter += 100;
}

int _load(void *arg)
{
    (void)arg;
    kapi_loaded = 1;
    kernel_counter++;
    log_line("kernel_api: loaded");
    return 0;
}

int _unload(void *arg)
{
    (void)arg;
    log_line("kernel_api: unloading");
    kapi_loaded = 0;
    return 0;
}

long kapi_log_twice(long x)
{
    log_line("kernel_api: first");
    log_line("kernel_api: second");
    return 2 * x + kapi_constructed + kapi_loaded;
}
