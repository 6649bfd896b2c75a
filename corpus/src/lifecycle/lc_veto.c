/* A module whose _unload vetoes once (EBUSY, 16) and then agrees: the first
 * unload must leave it loaded with its reference count unchanged. */

static int lc_veto_refusals;

int _unload(void *arg)
{
    (void)arg;
    if (lc_veto_refusals == 0) {
        lc_veto_refusals = 1;
        return 16;
    }
    return 0;
}

long lc_veto_refused(void)
{
    return lc_veto_refusals;
}
