/* SPDX-License-Identifier: MIT */
/* locator.c - the parent locator metadata item of a differencing disk
 * (MS-VHDX 2.6.2.6) and the path forms it stores.  Decode and encode are
 * pure functions of their buffers; the path functions are pure string
 * functions (chain.c does the realpath() and open() around them), so the
 * unit tests and the fuzz target need no files.
 *
 * Path forms, Windows side as Windows writes them:
 *   relative_path        ".\parent.vhdx", "..\base\p.vhdx" (always with
 *                        a leading ".\" or "..\"), relative to the
 *                        child's directory
 *   absolute_win32_path  "C:\dir\p.vhdx"; on Linux we write and read
 *                        Wine's drive Z: (the root), "Z:\dir\p.vhdx",
 *                        and also read "\\?\Z:\dir\p.vhdx"
 *   volume_path          "\\?\Volume{GUID}\dir\p.vhdx": kept, never
 *                        resolved. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define LOC_HEADER_BYTES 20u
#define LOC_ENTRY_BYTES 12u
#define GUID_TEXT_LEN (TM_GUID_STR_LEN + 2)     /* "{...}" */

/* The known keys, in the order the encoder writes them. */
enum loc_key {
    KEY_LINKAGE,
    KEY_LINKAGE2,
    KEY_RELATIVE,
    KEY_VOLUME,
    KEY_ABSOLUTE,
    KEY_COUNT,
    KEY_UNKNOWN = KEY_COUNT,
};

static const char *const key_names[KEY_COUNT] = {
    "parent_linkage",
    "parent_linkage2",
    "relative_path",
    "volume_path",
    "absolute_win32_path",
};

static char **
path_slot(struct tm_vhdx_locator *loc, enum loc_key k)
{
    switch (k) {
    case KEY_RELATIVE:
        return &loc->relative_path;
    case KEY_VOLUME:
        return &loc->volume_path;
    case KEY_ABSOLUTE:
        return &loc->absolute_win32_path;
    default:
        return NULL;
    }
}

static const char *
path_value(const struct tm_vhdx_locator *loc, enum loc_key k)
{
    switch (k) {
    case KEY_RELATIVE:
        return loc->relative_path;
    case KEY_VOLUME:
        return loc->volume_path;
    case KEY_ABSOLUTE:
        return loc->absolute_win32_path;
    default:
        return NULL;
    }
}

static bool
is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

void
vhdx_locator_free(struct tm_vhdx_locator *loc)
{
    if (loc == NULL)
        return;
    free(loc->relative_path);
    free(loc->volume_path);
    free(loc->absolute_win32_path);
    loc->relative_path = NULL;
    loc->volume_path = NULL;
    loc->absolute_win32_path = NULL;
}

/* Deep copy: 0 or -ENOMEM (then *dst is empty).  'dst' is overwritten,
 * not freed first: pass an empty one. */
int
vhdx_locator_copy(struct tm_vhdx_locator *dst,
                  const struct tm_vhdx_locator *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->linkage = src->linkage;
    dst->has_linkage2 = src->has_linkage2;
    dst->linkage2 = src->linkage2;
    for (enum loc_key k = KEY_RELATIVE; k <= KEY_ABSOLUTE; k++) {
        const char *s = path_value(src, k);
        char **d = path_slot(dst, k);

        if (s == NULL)
            continue;
        *d = strdup(s);
        if (*d == NULL) {
            vhdx_locator_free(dst);
            memset(dst, 0, sizeof(*dst));
            return -ENOMEM;
        }
    }
    return 0;
}

/* ---- UTF-16LE <-> UTF-8 ------------------------------------------------ */

/* The known key 'p[0, len)' names (UTF-16LE, case-sensitive), or
 * KEY_UNKNOWN. */
static enum loc_key
match_key(const uint8_t *p, size_t len)
{
    for (enum loc_key k = 0; k < KEY_COUNT; k++) {
        const char *name = key_names[k];
        size_t n = strlen(name);
        size_t i;

        if (len != 2 * n)
            continue;
        for (i = 0; i < n; i++)
            if (tm_le16(p + 2 * i) != (uint8_t)name[i])
                break;
        if (i == n)
            return k;
    }
    return KEY_UNKNOWN;
}

static size_t
put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Converts the path value of key 'idx' (p[0, len), UTF-16LE, len even)
 * into a new UTF-8 string.  Unlike the creator string of the file type
 * identifier, a path is not decoded lossily: a replaced character would
 * name another file. */
static int
path_decode(const uint8_t *p, size_t len, unsigned idx, enum loc_key k,
            char **out, struct tm_err *err)
{
    size_t units = len / 2;
    /* A unit gives at most 3 bytes; a surrogate pair (2 units) 4. */
    char *s = malloc(3 * units + 1);
    size_t pos = 0;

    *out = NULL;
    if (s == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < units; i++) {
        uint32_t cp = tm_le16(p + 2 * i);

        if (cp == 0) {
            free(s);
            return tm_err_set(err, TM_E_CORRUPT,
                              "parent locator: key %u (%s): NUL character "
                              "at unit %zu of the value", idx, key_names[k],
                              i);
        }
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < units &&
            tm_le16(p + 2 * (i + 1)) >= 0xDC00 &&
            tm_le16(p + 2 * (i + 1)) <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) +
                 (uint32_t)(tm_le16(p + 2 * (i + 1)) - 0xDC00);
            i++;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            free(s);
            return tm_err_set(err, TM_E_CORRUPT,
                              "parent locator: key %u (%s): unpaired "
                              "surrogate 0x%04" PRIx32 " at unit %zu of the "
                              "value", idx, key_names[k], cp, i);
        }
        pos += put_utf8(s + pos, cp);
    }
    s[pos] = '\0';
    *out = s;
    return 0;
}

/* Decodes one well-formed UTF-8 sequence at s[*i] and advances *i; -1
 * for bytes that are not UTF-8 (stray continuation, overlong form,
 * surrogate, above U+10FFFF, truncated sequence). */
static int32_t
utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    uint32_t min;
    size_t more;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1Fu;
        more = 1;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0Fu;
        more = 2;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07u;
        more = 3;
        min = 0x10000;
    } else {
        return -1;
    }
    if (more > n - *i - 1)
        return -1;
    for (size_t k = 1; k <= more; k++) {
        if ((s[*i + k] & 0xC0) != 0x80)
            return -1;
        cp = cp << 6 | (s[*i + k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += more + 1;
    return (int32_t)cp;
}

/* Counts the UTF-16 units of UTF-8 's' and, when 'dst' is not NULL,
 * stores them there as UTF-16LE.  TM_E_INVALID for bytes that are not
 * UTF-8. */
static int
utf16_encode(const char *s, uint8_t *dst, size_t *units)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t i = 0;
    size_t out = 0;

    while (i < n) {
        int32_t cp = utf8_next(u, n, &i);

        if (cp < 0)
            return TM_E_INVALID;
        if (cp >= 0x10000) {
            uint32_t v = (uint32_t)cp - 0x10000;

            if (dst != NULL) {
                tm_put_le16(dst + 2 * out, (uint16_t)(0xD800 | v >> 10));
                tm_put_le16(dst + 2 * out + 2,
                            (uint16_t)(0xDC00 | (v & 0x3FF)));
            }
            out += 2;
        } else {
            if (dst != NULL)
                tm_put_le16(dst + 2 * out, (uint16_t)cp);
            out++;
        }
    }
    *units = out;
    return 0;
}

/* ---- decode ------------------------------------------------------------ */

/* parent_linkage and parent_linkage2: "{guid}" text (MS-VHDX 2.6.2.6.3).
 * COMPAT: the spec says lower case with braces, its example is upper
 * case, and other writers differ, so any case, braces optional. */
static int
guid_decode(const uint8_t *p, size_t len, unsigned idx, enum loc_key k,
            struct tm_guid *g, struct tm_err *err)
{
    char text[GUID_TEXT_LEN];
    size_t units = len / 2;

    if (units != TM_GUID_STR_LEN && units != GUID_TEXT_LEN)
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator: key %u (%s): value of %zu "
                          "characters is not a GUID", idx, key_names[k],
                          units);
    for (size_t i = 0; i < units; i++) {
        uint16_t c = tm_le16(p + 2 * i);

        if (c == 0 || c >= 0x80)
            return tm_err_set(err, TM_E_CORRUPT,
                              "parent locator: key %u (%s): value is not a "
                              "GUID", idx, key_names[k]);
        text[i] = (char)c;
    }
    if (tm_guid_parse(text, units, g) != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator: key %u (%s): value '%.*s' is not "
                          "a GUID", idx, key_names[k], (int)units, text);
    return 0;
}

/* Checks that a key or value (what = "key" or "value") at item offset
 * 'off' with 'n' bytes lies inside the item. */
static int
check_span(uint32_t off, uint16_t n, size_t len, unsigned idx,
           const char *what, struct tm_err *err)
{
    if (off == 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator: key %u: %s offset is 0", idx,
                          what);
    if (n % 2 != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator: key %u: %s length %u is odd "
                          "(UTF-16)", idx, what, (unsigned)n);
    if (off > len || n > len - off)
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator: key %u: %s runs past the end of "
                          "the item (offset %" PRIu32 ", length %u, item "
                          "%zu bytes)", idx, what, off, (unsigned)n, len);
    return 0;
}

static int
decode_entries(const uint8_t *buf, size_t len, unsigned count,
               struct tm_vhdx_locator *out, struct tm_err *err)
{
    bool seen[KEY_COUNT] = { false };

    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = buf + LOC_HEADER_BYTES + LOC_ENTRY_BYTES * i;
        uint32_t koff = tm_le32(e);
        uint32_t voff = tm_le32(e + 4);
        uint16_t klen = tm_le16(e + 8);
        uint16_t vlen = tm_le16(e + 10);
        enum loc_key k;
        int rc;

        rc = check_span(koff, klen, len, i, "key", err);
        if (rc < 0)
            return rc;
        if (klen == 0)
            return tm_err_set(err, TM_E_CORRUPT,
                              "parent locator: key %u: key is empty", i);
        rc = check_span(voff, vlen, len, i, "value", err);
        if (rc < 0)
            return rc;
        k = match_key(buf + koff, klen);
        if (k == KEY_UNKNOWN)
            continue;                   /* MS-VHDX: ignore unknown keys */
        if (seen[k])
            return tm_err_set(err, TM_E_CORRUPT,
                              "parent locator: key %u (%s): the key appears "
                              "twice", i, key_names[k]);
        seen[k] = true;
        if (k == KEY_LINKAGE) {
            rc = guid_decode(buf + voff, vlen, i, k, &out->linkage, err);
        } else if (k == KEY_LINKAGE2) {
            /* COMPAT: Windows writes parent_linkage2 as the zero GUID
             * when there is none; an empty value means the same. */
            if (vlen == 0)
                continue;
            rc = guid_decode(buf + voff, vlen, i, k, &out->linkage2, err);
            out->has_linkage2 = rc == 0 && !tm_guid_is_zero(&out->linkage2);
        } else if (vlen > 0) {          /* an empty path is absent */
            rc = path_decode(buf + voff, vlen, i, k, path_slot(out, k), err);
        }
        if (rc < 0)
            return rc;
    }
    if (!seen[KEY_LINKAGE])
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator: key parent_linkage is missing");
    if (out->relative_path == NULL && out->volume_path == NULL &&
        out->absolute_win32_path == NULL)
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator has no path (relative_path, "
                          "volume_path or absolute_win32_path)");
    return 0;
}

/* MS-VHDX 2.6.2.6: header (LocatorType, Reserved, KeyValueCount), then
 * KeyValueCount 12-byte entries whose offsets count from the start of the
 * item.  0, TM_E_UNSUPPORTED (a locator type other than VHDX), TM_E_CORRUPT
 * or -ENOMEM; on failure *out is empty.  Unknown keys are skipped; an
 * empty path and a zero (or empty) parent_linkage2 count as absent. */
int
vhdx_locator_decode(const uint8_t *buf, size_t len,
                    struct tm_vhdx_locator *out, struct tm_err *err)
{
    char name[TM_GUID_STR_LEN + 1];
    struct tm_guid type;
    unsigned count;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len < LOC_HEADER_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator: item is %zu bytes, need at least "
                          "%u", len, LOC_HEADER_BYTES);
    memcpy(type.b, buf, 16);
    if (!tm_guid_equal(&type, &VHDX_GUID_LOCATOR_TYPE_VHDX)) {
        tm_guid_format(&type, name);
        return tm_err_set(err, TM_E_UNSUPPORTED,
                          "parent locator: locator type {%s} is not "
                          "supported (only VHDX)", name);
    }
    /* Reserved @16: COMPAT: not checked. */
    count = tm_le16(buf + 18);
    if ((size_t)count * LOC_ENTRY_BYTES > len - LOC_HEADER_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "parent locator: key-value count %u runs past the "
                          "end of the item (%zu bytes)", count, len);
    rc = decode_entries(buf, len, count, out, err);
    if (rc < 0) {
        vhdx_locator_free(out);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* ---- encode ------------------------------------------------------------ */

/* Fills a new malloc'd item (*buf, *len): entries parent_linkage,
 * parent_linkage2 (if has_linkage2), then the non-empty paths in key
 * order, strings packed after the table, GUIDs as lower-case "{...}".
 * TM_E_INVALID: no path, invalid UTF-8, a value over 32767 UTF-16 units,
 * an item over 1 MiB. */
int
vhdx_locator_encode(const struct tm_vhdx_locator *loc, uint8_t **buf,
                    size_t *len)
{
    char linkage[GUID_TEXT_LEN + 1];
    char linkage2[GUID_TEXT_LEN + 1];
    const char *val[KEY_COUNT] = { NULL };
    size_t vunits[KEY_COUNT] = { 0 };
    unsigned count = 0;
    size_t total;
    size_t pos;
    uint8_t *p;

    *buf = NULL;
    *len = 0;
    if (!is_set(loc->relative_path) && !is_set(loc->volume_path) &&
        !is_set(loc->absolute_win32_path))
        return TM_E_INVALID;
    /* tm_guid_format gives 36 lower-case characters; Windows writes the
     * braces and the spec asks for lower case. */
    linkage[0] = '{';
    tm_guid_format(&loc->linkage, linkage + 1);
    assert(strlen(linkage) == TM_GUID_STR_LEN + 1);
    linkage[GUID_TEXT_LEN - 1] = '}';
    linkage[GUID_TEXT_LEN] = '\0';
    val[KEY_LINKAGE] = linkage;
    if (loc->has_linkage2) {
        linkage2[0] = '{';
        tm_guid_format(&loc->linkage2, linkage2 + 1);
        linkage2[GUID_TEXT_LEN - 1] = '}';
        linkage2[GUID_TEXT_LEN] = '\0';
        val[KEY_LINKAGE2] = linkage2;
    }
    for (enum loc_key k = KEY_RELATIVE; k <= KEY_ABSOLUTE; k++) {
        const char *s = path_value(loc, k);

        if (is_set(s))
            val[k] = s;
    }
    total = LOC_HEADER_BYTES;
    for (enum loc_key k = 0; k < KEY_COUNT; k++) {
        if (val[k] == NULL)
            continue;
        if (utf16_encode(val[k], NULL, &vunits[k]) < 0)
            return TM_E_INVALID;
        if (vunits[k] > UINT16_MAX / 2)
            return TM_E_INVALID;
        count++;
        total += LOC_ENTRY_BYTES + 2 * strlen(key_names[k]) + 2 * vunits[k];
    }
    if (total > VHDX_MAX_META_ITEM_BYTES)
        return TM_E_INVALID;
    p = calloc(1, total);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p, VHDX_GUID_LOCATOR_TYPE_VHDX.b, 16);
    tm_put_le16(p + 18, (uint16_t)count);
    pos = LOC_HEADER_BYTES + LOC_ENTRY_BYTES * (size_t)count;
    count = 0;
    for (enum loc_key k = 0; k < KEY_COUNT; k++) {
        uint8_t *e = p + LOC_HEADER_BYTES + LOC_ENTRY_BYTES * count;
        size_t klen = strlen(key_names[k]);
        size_t units;

        if (val[k] == NULL)
            continue;
        tm_put_le32(e, (uint32_t)pos);
        tm_put_le16(e + 8, (uint16_t)(2 * klen));
        for (size_t i = 0; i < klen; i++)
            tm_put_le16(p + pos + 2 * i, (uint8_t)key_names[k][i]);
        pos += 2 * klen;
        tm_put_le32(e + 4, (uint32_t)pos);
        tm_put_le16(e + 10, (uint16_t)(2 * vunits[k]));
        utf16_encode(val[k], p + pos, &units);
        assert(units == vunits[k]);
        pos += 2 * units;
        count++;
    }
    assert(pos == total);
    *buf = p;
    *len = total;
    return 0;
}

/* ---- path forms -------------------------------------------------------- */

/* A growable output string; 'failed' once an allocation failed. */
struct sbuf {
    char *s;
    size_t len;
    size_t cap;
    bool failed;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n + 1 > b->cap - b->len || b->s == NULL) {
        size_t cap = b->cap ? b->cap : 64;
        char *ns;

        while (cap - b->len < n + 1)
            cap *= 2;
        ns = realloc(b->s, cap);
        if (ns == NULL) {
            b->failed = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void
sb_adds(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Hands the string to *out: 0, or -ENOMEM. */
static int
sb_finish(struct sbuf *b, char **out)
{
    if (b->failed || b->s == NULL) {
        free(b->s);
        return -ENOMEM;
    }
    *out = b->s;
    return 0;
}

static bool
is_sep(char c)
{
    return c == '/' || c == '\\';
}

/* One path component: s[0, n). */
struct comp {
    const char *s;
    size_t n;
};

static bool
comp_is(const struct comp *c, const char *lit)
{
    return c->n == strlen(lit) && memcmp(c->s, lit, c->n) == 0;
}

/* Splits a normalised absolute Linux path into its components (runs of
 * '/' count as one).  TM_E_INVALID when it is not absolute, ends in '/'
 * (a directory), names the root or has a "." or ".." component (not what
 * realpath() returns); TM_E_UNSUPPORTED when a component holds a
 * backslash, which a Windows path cannot carry.  *out is malloc'd. */
static int
split_linux(const char *path, struct comp **out, size_t *n)
{
    size_t len = strlen(path);
    size_t cap = 1;
    struct comp *c;
    size_t i = 0;

    *out = NULL;
    *n = 0;
    if (path[0] != '/' || path[len - 1] == '/')
        return TM_E_INVALID;
    for (size_t k = 0; k < len; k++)
        if (path[k] == '/')
            cap++;
    c = malloc(cap * sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    while (i < len) {
        size_t start;

        while (i < len && path[i] == '/')
            i++;
        start = i;
        while (i < len && path[i] != '/')
            i++;
        c[*n].s = path + start;
        c[*n].n = i - start;
        if (comp_is(&c[*n], ".") || comp_is(&c[*n], "..")) {
            free(c);
            *n = 0;
            return TM_E_INVALID;
        }
        if (memchr(c[*n].s, '\\', c[*n].n) != NULL) {
            free(c);
            *n = 0;
            return TM_E_UNSUPPORTED;
        }
        (*n)++;
    }
    *out = c;
    return 0;
}

/* Windows' form of relative_path: from the child's directory to the
 * parent, '\' separators, always starting ".\" or "..\".  Both paths
 * absolute and normalised (realpath()); names are compared byte for
 * byte. */
int
vhdx_path_relative_win(const char *child_path, const char *parent_path,
                       char **out)
{
    struct comp *cc;
    struct comp *pc;
    size_t nc, np, common = 0;
    struct sbuf b = { 0 };
    int rc;

    *out = NULL;
    rc = split_linux(child_path, &cc, &nc);
    if (rc < 0)
        return rc;
    rc = split_linux(parent_path, &pc, &np);
    if (rc < 0)
        goto out_free_cc;
    /* Directories: all components but the last. */
    while (common < nc - 1 && common < np - 1 &&
           cc[common].n == pc[common].n &&
           memcmp(cc[common].s, pc[common].s, cc[common].n) == 0)
        common++;
    if (common == nc - 1)
        sb_adds(&b, ".\\");
    for (size_t i = common; i < nc - 1; i++)
        sb_adds(&b, "..\\");
    for (size_t i = common; i < np; i++) {
        sb_add(&b, pc[i].s, pc[i].n);
        if (i + 1 < np)
            sb_adds(&b, "\\");
    }
    rc = sb_finish(&b, out);
    free(pc);
out_free_cc:
    free(cc);
    return rc;
}

/* absolute_win32_path for an absolute, normalised Linux path, in Wine's
 * convention (drive Z: is the Linux root): "/d/f.vhdx" -> "Z:\d\f.vhdx",
 * without \\?\ as Windows writes it. */
int
vhdx_path_absolute_win(const char *path, char **out)
{
    struct comp *c;
    size_t n;
    struct sbuf b = { 0 };
    int rc;

    *out = NULL;
    rc = split_linux(path, &c, &n);
    if (rc < 0)
        return rc;
    sb_adds(&b, "Z:");
    for (size_t i = 0; i < n; i++) {
        sb_adds(&b, "\\");
        sb_add(&b, c[i].s, c[i].n);
    }
    free(c);
    return sb_finish(&b, out);
}

/* Appends the components of stored path 's' ('\' or '/' separators) to
 * b, each after a '/' unless b is empty and 'lead' false.  Runs of
 * separators and "." components are dropped; ".." is kept for the OS to
 * resolve (lexical resolution would be wrong across symbolic links).
 * TM_E_INVALID when the last component is empty (a trailing separator),
 * "." or "..": the value names a directory, not a file. */
static int
append_stored(struct sbuf *b, const char *s, bool lead)
{
    size_t len = strlen(s);
    size_t i = len;
    struct comp last;

    while (i > 0 && !is_sep(s[i - 1]))
        i--;
    last.s = s + i;
    last.n = len - i;
    if (last.n == 0 || comp_is(&last, ".") || comp_is(&last, ".."))
        return TM_E_INVALID;
    i = 0;
    while (i < len) {
        struct comp c;

        while (i < len && is_sep(s[i]))
            i++;
        c.s = s + i;
        while (i < len && !is_sep(s[i]))
            i++;
        c.n = (size_t)(s + i - c.s);
        if (c.n == 0 || comp_is(&c, "."))
            continue;
        if (lead || b->len > 0)
            sb_adds(b, "/");
        sb_add(b, c.s, c.n);
    }
    return 0;
}

static bool
has_drive(const char *s)
{
    return ((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')) &&
           s[1] == ':';
}

/* A stored relative_path ('\' or '/', ".\" optional, ".." kept) joined
 * to the directory of 'child_path' ("." for a bare name, when the result
 * is 'rel' alone): "/vms/a/c.vhdx" + "..\b\p.vhdx" -> "/vms/a/../b/p.vhdx".
 * TM_E_INVALID for an empty or absolute value or one naming a
 * directory. */
int
vhdx_path_from_relative(const char *child_path, const char *rel, char **out)
{
    size_t clen = strlen(child_path);
    size_t dlen;
    struct sbuf b = { 0 };
    int rc;

    *out = NULL;
    if (rel[0] == '\0' || is_sep(rel[0]) || has_drive(rel))
        return TM_E_INVALID;
    if (clen == 0 || child_path[clen - 1] == '/')
        return TM_E_INVALID;
    /* The child's directory: child_path up to its last '/', without the
     * run of '/' before the name; "." when there is no '/'. */
    dlen = clen;
    while (dlen > 0 && child_path[dlen - 1] != '/')
        dlen--;
    while (dlen > 1 && child_path[dlen - 1] == '/')
        dlen--;
    if (dlen == 1 && child_path[0] == '/') {
        rc = append_stored(&b, rel, true);      /* "/" + rel */
    } else if (dlen == 0 || (dlen == 1 && child_path[0] == '.')) {
        rc = append_stored(&b, rel, false);     /* the current directory */
    } else {
        sb_add(&b, child_path, dlen);
        rc = append_stored(&b, rel, true);
    }
    if (rc < 0) {
        free(b.s);
        return rc;
    }
    return sb_finish(&b, out);
}

/* Reads the drive-Z: forms of absolute_win32_path.  Other drives, UNC
 * paths, volume GUID paths and paths rooted on the current drive are
 * valid Windows paths we cannot map: TM_E_UNSUPPORTED, and the resolver
 * tries the next form. */
int
vhdx_path_from_absolute(const char *abs, char **out)
{
    const char *p = abs;
    struct sbuf b = { 0 };
    int rc;

    *out = NULL;
    if (abs[0] == '\0')
        return TM_E_INVALID;
    if (strncmp(p, "\\\\?\\", 4) == 0)
        p += 4;                         /* MS-VHDX writes \\?\ */
    if (!has_drive(p)) {
        if (p != abs || is_sep(abs[0]))
            return TM_E_UNSUPPORTED;    /* UNC, volume, rooted, device */
        return TM_E_INVALID;            /* a relative path */
    }
    if (p[0] != 'Z' && p[0] != 'z')
        return TM_E_UNSUPPORTED;
    if (!is_sep(p[2]))
        return TM_E_UNSUPPORTED;        /* "Z:dir": relative to Z:'s cwd */
    rc = append_stored(&b, p + 2, true);
    if (rc < 0) {
        free(b.s);
        return rc;
    }
    return sb_finish(&b, out);
}
