/* Depends on lc_base by .modinfo and by symbol use; its entry points carry the
 * prefix lcu_ (prefix=lcu), and it asks the kernel for interface dlkm_test
 * version 2. lcu_load records that lc_base was already there. */

__attribute__((section(".modinfo"), used, aligned(1)))
static const char lc_user_modinfo[] =
    "name=lc_user\0type=driver\0depend=lc_base\0prefix=lcu\0interface=dlkm_test=2";

extern long lc_base_twice(long x);
extern long lc_base_calls;

static long lcu_loaded;

int lcu_load(void *arg)
{
    (void)arg;
    lcu_loaded = lc_base_twice(21);
    return lcu_loaded == 42 ? 0 : 22;
}

int lcu_unload(void *arg)
{
    (void)arg;
    lcu_loaded = 0;
    return 0;
}

/* With lc_base fresh: lcu_load called it once, so lc_user_run(1) is
 * 2 + 2 + 42 = 46. */
long lc_user_run(long x)
{
    long twice = lc_base_twice(x);
    return twice + lc_base_calls + lcu_loaded;
}
