/* The operating-system layer of SQLite built with SQLITE_OS_OTHER=1, as the
 * aarch64 and MIPS modules are: a module in a kernel has no files, so this VFS
 * opens none. In-memory databases, all the drivers use, need no file (with
 * SQLITE_TEMP_STORE=3 not even for temporary tables and sorting); anything
 * else fails with SQLITE_CANTOPEN. Randomness is a fixed sequence and the
 * clock stands at 2000-01-01, so every run computes the same answers.
 * Linked into sqlite.o (ld -r), since SQLite calls sqlite3_os_init itself. */

#include <string.h>
#include "sqlite3.h"

static int memory_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                       int *out_flags)
{
    (void)vfs, (void)name, (void)flags, (void)out_flags;
    file->pMethods = 0;
    return SQLITE_CANTOPEN;
}

static int memory_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs, (void)name, (void)sync_dir;
    return SQLITE_IOERR_DELETE;
}

static int memory_access(sqlite3_vfs *vfs, const char *name, int flags, int *exists)
{
    (void)vfs, (void)name, (void)flags;
    *exists = 0;
    return SQLITE_OK;
}

static int memory_full_pathname(sqlite3_vfs *vfs, const char *name, int size, char *out)
{
    (void)vfs;
    sqlite3_snprintf(size, out, "%s", name);
    return SQLITE_OK;
}

static int memory_randomness(sqlite3_vfs *vfs, int size, char *out)
{
    (void)vfs;
    unsigned state = 0x2545f491u;
    for (int i = 0; i < size; i++) {
        state = state * 1103515245u + 12345u;
        out[i] = (char)(state >> 16);
    }
    return size;
}

static int memory_sleep(sqlite3_vfs *vfs, int microseconds)
{
    (void)vfs;
    return microseconds;
}

static int memory_current_time(sqlite3_vfs *vfs, double *julian_day)
{
    (void)vfs;
    *julian_day = 2451544.5; /* 2000-01-01 00:00 UTC */
    return SQLITE_OK;
}

static int memory_get_last_error(sqlite3_vfs *vfs, int size, char *out)
{
    (void)vfs;
    if (size > 0)
        out[0] = 0;
    return 0;
}

static sqlite3_vfs memory_vfs = {
    .iVersion = 1,
    .szOsFile = sizeof(sqlite3_file),
    .mxPathname = 512,
    .zName = "dlkm-memory",
    .xOpen = memory_open,
    .xDelete = memory_delete,
    .xAccess = memory_access,
    .xFullPathname = memory_full_pathname,
    .xRandomness = memory_randomness,
    .xSleep = memory_sleep,
    .xCurrentTime = memory_current_time,
    .xGetLastError = memory_get_last_error,
};

int sqlite3_os_init(void)
{
    return sqlite3_vfs_register(&memory_vfs, 1);
}

int sqlite3_os_end(void)
{
    return SQLITE_OK;
}
