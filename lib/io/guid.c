/* SPDX-License-Identifier: MIT */
/* guid.c - GUIDs in the on-disk Microsoft byte order: Data1, Data2 and
 * Data3 are little-endian, the last 8 bytes are stored as printed.  So
 * the bytes 37 67 a1 ca 36 fa 43 4d b3 b6 ... print as "caa16737-fa36-
 * 4d43-b3b6-...". */
#include <errno.h>
#include <sys/random.h>

#include "io.h"

/* For each printed hex pair, left to right, the byte it shows. */
static const uint8_t print_order[16] = {
    3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15,
};

int
tm_guid_generate(struct tm_guid *g)
{
    size_t done = 0;

    while (done < sizeof(g->b)) {
        ssize_t n = getrandom(g->b + done, sizeof(g->b) - done, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = -errno;

            memset(g->b, 0, sizeof(g->b));
            return err;
        }
        done += (size_t)n;
    }
    /* RFC 4122 version 4: the version is Data3's high nibble, which the
     * little-endian Data3 keeps in byte 7; the variant is byte 8. */
    g->b[7] = (uint8_t)((g->b[7] & 0x0f) | 0x40);
    g->b[8] = (uint8_t)((g->b[8] & 0x3f) | 0x80);
    return 0;
}

bool
tm_guid_is_zero(const struct tm_guid *g)
{
    uint8_t any = 0;

    for (size_t i = 0; i < sizeof(g->b); i++)
        any |= g->b[i];
    return any == 0;
}

bool
tm_guid_equal(const struct tm_guid *a, const struct tm_guid *b)
{
    return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

void
tm_guid_format(const struct tm_guid *g, char *buf)
{
    static const char hex[] = "0123456789abcdef";
    size_t pos = 0;

    for (size_t i = 0; i < 16; i++) {
        uint8_t v = g->b[print_order[i]];

        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[pos++] = '-';
        buf[pos++] = hex[v >> 4];
        buf[pos++] = hex[v & 0x0f];
    }
    buf[pos] = '\0';
}

int
tm_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads exactly 'len' bytes of 's', which need not end in NUL. */
int
tm_guid_parse(const char *s, size_t len, struct tm_guid *g)
{
    struct tm_guid out;
    size_t pos = 0;

    if (g == NULL)
        return TM_E_INVALID;
    memset(g->b, 0, sizeof(g->b));
    if (s == NULL)
        return TM_E_INVALID;
    if (len == TM_GUID_STR_LEN + 2) {
        if (s[0] != '{' || s[len - 1] != '}')
            return TM_E_INVALID;
        s++;
        len -= 2;
    }
    if (len != TM_GUID_STR_LEN)
        return TM_E_INVALID;
    for (size_t i = 0; i < 16; i++) {
        int hi, lo;

        if (i == 4 || i == 6 || i == 8 || i == 10) {
            if (s[pos] != '-')
                return TM_E_INVALID;
            pos++;
        }
        hi = tm_hex_value(s[pos]);
        lo = tm_hex_value(s[pos + 1]);
        if (hi < 0 || lo < 0)
            return TM_E_INVALID;
        out.b[print_order[i]] = (uint8_t)(hi << 4 | lo);
        pos += 2;
    }
    *g = out;
    return 0;
}
