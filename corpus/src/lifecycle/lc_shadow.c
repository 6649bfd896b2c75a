/* Defines atoi, which the host's C library already provides: a kernel refuses
 * it unless the embedder allows modules to shadow host symbols, and then the
 * modules loaded after it bind to this one. */

__attribute__((section(".modinfo"), used, aligned(1)))
static const char lc_shadow_modinfo[] = "name=lc_shadow\0type=misc";

int atoi(const char *text)
{
    (void)text;
    return -42;
}
