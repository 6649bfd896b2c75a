/* A driver: opened and closed by minor number through its prefixed entry
 * points (prefix=drv). Minor 7 refuses to open (ENXIO, 6). While a device is
 * open the driver is busy and is not unloaded. */

__attribute__((section(".modinfo"), used, aligned(1)))
static const char lc_drv_modinfo[] = "name=lc_drv\0type=driver\0prefix=drv\0unload_delay=1";

static long drv_open_count;

int drv_open(long minor)
{
    if (minor == 7)
        return 6;
    drv_open_count++;
    return 0;
}

int drv_close(long minor)
{
    (void)minor;
    drv_open_count--;
    return 0;
}

long drv_opened(void)
{
    return drv_open_count;
}
