/* Driver module for zlib.o: calls zlib's exported API, resolved at load time
 * against the zlib module. */

#include <string.h>
#include "zlib.h"

/* crc32 and adler32 of a fixed 4 KiB buffer, and a compress2/uncompress round
 * trip; -1 if the round trip fails, else crc << 32 | adler, xored with the
 * compressed length (and the halves folded together where long has 32 bits). */
long zlib_selftest(void)
{
    static unsigned char src[4096];
    static unsigned char packed[8192];
    static unsigned char back[4096];
    const char *text = "dlkm loads modules; zlib compresses them. ";
    size_t tlen = strlen(text);
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(text[i % tlen] + (i / 512));

    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, src, sizeof src);
    uLong adler = adler32(1L, src, sizeof src);

    uLongf plen = sizeof packed;
    if (compress2(packed, &plen, src, sizeof src, 9) != Z_OK)
        return -1;
    uLongf blen = sizeof back;
    if (uncompress(back, &blen, packed, plen) != Z_OK)
        return -1;
    if (blen != sizeof src || memcmp(back, src, sizeof src) != 0)
        return -1;
    unsigned long long mix = (unsigned long long)(crc & 0xffffffffUL) << 32 | (adler & 0xffffffffUL);
    mix ^= plen;
    /* A 32-bit long keeps both checksums by folding the halves together. */
    return sizeof(long) >= sizeof mix ? (long)mix : (long)(mix ^ (mix >> 32));
}

/* crc32 of a NUL-terminated string: zlib_crc32("hello") = 0x3610a686. */
long zlib_crc32(const char *s)
{
    return (long)crc32(0L, (const Bytef *)s, (uInt)strlen(s));
}

/* Deflate a string repeated n times with a z_stream, inflate it back, return
 * the compressed size (or -1 when the data does not come back). */
long zlib_stream(const char *s, long n)
{
    static unsigned char in[65536], out[70000], back[65536];
    size_t len = strlen(s), total = 0;
    if (len == 0 || n <= 0)
        return 0;
    while (n-- > 0 && total + len <= sizeof in) {
        memcpy(in + total, s, len);
        total += len;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit(&zs, Z_DEFAULT_COMPRESSION) != Z_OK)
        return -1;
    zs.next_in = in;
    zs.avail_in = (uInt)total;
    zs.next_out = out;
    zs.avail_out = sizeof out;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        return -1;
    long packed = (long)zs.total_out;
    deflateEnd(&zs);

    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return -1;
    zs.next_in = out;
    zs.avail_in = (uInt)packed;
    zs.next_out = back;
    zs.avail_out = sizeof back;
    int rc = inflate(&zs, Z_FINISH);
    size_t got = zs.total_out;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || got != total || memcmp(in, back, total) != 0)
        return -1;
    return packed;
}
