/* SPDX-License-Identifier: MIT */
/* locator_fuzz.c - libFuzzer target: arbitrary bytes as a parent locator
 * item, decoded as they are and again with the VHDX locator type written
 * over the first 16 bytes, so the fuzzer gets past the type check to the
 * entries.  A decoded locator must encode, and decode to the same values;
 * its path values go through the path functions, whose results must
 * convert back (drive Z: both ways, relative forms to the same file). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ITEM (VHDX_MAX_META_ITEM_BYTES + 64)
#define CHILD "/vms/a/child.vhdx"

static bool
str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool
locator_equal(const struct tm_vhdx_locator *a,
              const struct tm_vhdx_locator *b)
{
    return tm_guid_equal(&a->linkage, &b->linkage) &&
           a->has_linkage2 == b->has_linkage2 &&
           (!a->has_linkage2 || tm_guid_equal(&a->linkage2, &b->linkage2)) &&
           str_equal(a->relative_path, b->relative_path) &&
           str_equal(a->volume_path, b->volume_path) &&
           str_equal(a->absolute_win32_path, b->absolute_win32_path);
}

/* Whether 'p' (absolute, no doubled '/') has a "." or ".." component. */
static bool
has_dot_component(const char *p)
{
    for (const char *s = p; *s != '\0'; s++) {
        if (s[0] != '/' || s[1] != '.')
            continue;
        if (s[2] == '/' || s[2] == '\0')
            return true;
        if (s[2] == '.' && (s[3] == '/' || s[3] == '\0'))
            return true;
    }
    return false;
}

/* Resolves "." and ".." in absolute 'p' in place, as the OS would
 * without symbolic links. */
static void
lexical_clean(char *p)
{
    size_t w = 0;                       /* p[0, w) is the result so far */
    size_t r = 0;

    while (p[r] != '\0') {
        size_t start;
        size_t n;

        while (p[r] == '/')
            r++;
        start = r;
        while (p[r] != '\0' && p[r] != '/')
            r++;
        n = r - start;
        if (n == 0 || (n == 1 && p[start] == '.'))
            continue;
        if (n == 2 && p[start] == '.' && p[start + 1] == '.') {
            while (w > 0 && p[w - 1] != '/')
                w--;
            if (w > 0)
                w--;                    /* the '/' before it */
            continue;
        }
        p[w++] = '/';
        memmove(p + w, p + start, n);
        w += n;
    }
    if (w == 0)
        p[w++] = '/';
    p[w] = '\0';
}

/* Only the codes the contract allows; output only on success. */
static void
check_rc(int rc, const char *out)
{
    if (rc == 0 ? out == NULL : out != NULL)
        abort();
    if (rc != 0 && rc != -ENOMEM && rc != TM_E_INVALID &&
        rc != TM_E_UNSUPPORTED)
        abort();
}

/* relative_path: resolves against a child; when it gives an absolute
 * path without dot components, tidemark's own relative form of it must
 * resolve to the same string. */
static void
fuzz_relative(const char *rel)
{
    char *path = NULL;
    char *win = NULL;
    char *back = NULL;
    int rc;

    rc = vhdx_path_from_relative("child.vhdx", rel, &path);
    check_rc(rc, path);
    free(path);
    path = NULL;
    rc = vhdx_path_from_relative(CHILD, rel, &path);
    check_rc(rc, path);
    if (rc != 0)
        return;
    if (path[0] != '/')
        abort();
    if (!has_dot_component(path) && strchr(path, '\\') == NULL) {
        if (vhdx_path_relative_win(CHILD, path, &win) != 0)
            abort();
        if (strncmp(win, ".\\", 2) != 0 && strncmp(win, "..\\", 3) != 0)
            abort();
        if (vhdx_path_from_relative("/vms/a/other.vhdx", win, &back) != 0)
            abort();
        lexical_clean(back);
        if (strcmp(back, path) != 0)
            abort();
        free(back);
        free(win);
    }
    free(path);
}

/* absolute_win32_path: a drive-Z: path must map back to itself. */
static void
fuzz_absolute(const char *abs)
{
    char *path = NULL;
    char *win = NULL;
    char *back = NULL;
    int rc;

    rc = vhdx_path_from_absolute(abs, &path);
    check_rc(rc, path);
    if (rc != 0)
        return;
    if (path[0] != '/' || strstr(path, "//") != NULL ||
        strchr(path, '\\') != NULL)
        abort();
    rc = vhdx_path_absolute_win(path, &win);
    check_rc(rc, win);
    if (rc == 0) {
        if (vhdx_path_from_absolute(win, &back) != 0 ||
            strcmp(back, path) != 0)
            abort();
        free(back);
        free(win);
    } else if (rc != -ENOMEM &&
               (rc != TM_E_INVALID || !has_dot_component(path))) {
        abort();
    }
    free(path);
}

static void
fuzz_one(const uint8_t *buf, size_t len)
{
    struct tm_vhdx_locator loc;
    struct tm_vhdx_locator again;
    struct tm_vhdx_locator copy;
    struct tm_err err = { 0 };
    uint8_t *enc;
    size_t enc_len;
    int rc;

    rc = vhdx_locator_decode(buf, len, &loc, &err);
    if (rc < 0) {
        if ((rc != TM_E_CORRUPT && rc != TM_E_UNSUPPORTED &&
             rc != -ENOMEM) || err.msg[0] == '\0')
            abort();
        if (loc.relative_path != NULL || loc.volume_path != NULL ||
            loc.absolute_win32_path != NULL)
            abort();
        return;
    }
    rc = vhdx_locator_encode(&loc, &enc, &enc_len);
    if (rc == -ENOMEM)
        goto out_free_loc;
    if (rc != 0)
        abort();
    if (vhdx_locator_decode(enc, enc_len, &again, &err) != 0 ||
        !locator_equal(&loc, &again))
        abort();
    vhdx_locator_free(&again);
    free(enc);
    if (vhdx_locator_copy(&copy, &loc) == 0) {
        if (!locator_equal(&loc, &copy))
            abort();
        vhdx_locator_free(&copy);
    }
    if (loc.relative_path != NULL)
        fuzz_relative(loc.relative_path);
    if (loc.absolute_win32_path != NULL)
        fuzz_absolute(loc.absolute_win32_path);
    if (loc.volume_path != NULL) {
        fuzz_absolute(loc.volume_path);
        fuzz_relative(loc.volume_path);
    }
out_free_loc:
    vhdx_locator_free(&loc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf;

    if (size > MAX_ITEM)
        return 0;
    /* An exact-size copy, so ASan sees any read past the item. */
    buf = malloc(size > 0 ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    fuzz_one(buf, size);
    if (size >= 16 &&
        memcmp(buf, VHDX_GUID_LOCATOR_TYPE_VHDX.b, 16) != 0) {
        memcpy(buf, VHDX_GUID_LOCATOR_TYPE_VHDX.b, 16);
        fuzz_one(buf, size);
    }
    free(buf);
    return 0;
}
