/* SPDX-License-Identifier: MIT */
/* locator_test.c - the parent locator item (locator.c): round trips, the
 * bytes tidemark writes, items as Windows writes them, every validation
 * failure, and the four path forms. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "io_testutil.h"

static void
assert_str_or_null(const char *got, const char *want)
{
    if (want == NULL)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

/* 5f2a...: a DataWriteGuid as a parent would have it. */
static struct tm_guid
sample_guid(uint8_t seed)
{
    struct tm_guid g;

    for (int i = 0; i < 16; i++)
        g.b[i] = (uint8_t)(seed + 17 * i);
    return g;
}

static void
assert_locator_equal(const struct tm_vhdx_locator *a,
                     const struct tm_vhdx_locator *b)
{
    assert_memory_equal(a->linkage.b, b->linkage.b, 16);
    assert_int_equal(a->has_linkage2, b->has_linkage2);
    if (a->has_linkage2)
        assert_memory_equal(a->linkage2.b, b->linkage2.b, 16);
    assert_str_or_null(a->relative_path, b->relative_path);
    assert_str_or_null(a->volume_path, b->volume_path);
    assert_str_or_null(a->absolute_win32_path, b->absolute_win32_path);
}

/* ---- an item builder for hand-made (Windows-style, broken) items ------ */

struct kv {
    const char *key;            /* ASCII */
    const char *val;            /* ASCII */
};

/* Lays out header, entries, then each key and value (ASCII as UTF-16LE)
 * in the order given; returns the item length. */
static size_t
build_item(uint8_t *buf, size_t cap, const struct kv *kv, size_t n)
{
    size_t pos = 20 + 12 * n;

    memset(buf, 0, cap);
    memcpy(buf, VHDX_GUID_LOCATOR_TYPE_VHDX.b, 16);
    tm_put_le16(buf + 18, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        uint8_t *e = buf + 20 + 12 * i;
        size_t kl = strlen(kv[i].key);
        size_t vl = strlen(kv[i].val);

        assert_true(pos + 2 * (kl + vl) <= cap);
        tm_put_le32(e, (uint32_t)pos);
        tm_put_le16(e + 8, (uint16_t)(2 * kl));
        for (size_t k = 0; k < kl; k++)
            tm_put_le16(buf + pos + 2 * k, (uint8_t)kv[i].key[k]);
        pos += 2 * kl;
        tm_put_le32(e + 4, (uint32_t)pos);
        tm_put_le16(e + 10, (uint16_t)(2 * vl));
        for (size_t k = 0; k < vl; k++)
            tm_put_le16(buf + pos + 2 * k, (uint8_t)kv[i].val[k]);
        pos += 2 * vl;
    }
    return pos;
}

#define LINKAGE_TEXT "{1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d}"

static const struct tm_guid linkage_bytes = {{
    0x4d, 0x3c, 0x2b, 0x1a, 0x6f, 0x5e, 0x0b, 0x4a,
    0x9c, 0x8d, 0x7e, 0x6f, 0x5a, 0x4b, 0x3c, 0x2d }};

/* ---- round trips ------------------------------------------------------- */

static void
round_trip(const struct tm_vhdx_locator *in)
{
    struct tm_vhdx_locator out;
    struct tm_err err = { 0 };
    uint8_t *buf;
    size_t len;

    assert_int_equal(vhdx_locator_encode(in, &buf, &len), 0);
    assert_int_equal(vhdx_locator_decode(buf, len, &out, &err), 0);
    assert_locator_equal(&out, in);
    vhdx_locator_free(&out);
    free(buf);
}

static void
locator_round_trips_every_key(void **state)
{
    struct tm_vhdx_locator loc = {
        .linkage = sample_guid(3),
        .has_linkage2 = true,
        .linkage2 = sample_guid(200),
        .relative_path = ".\\base.vhdx",
        .volume_path = "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}"
                       "\\vms\\base.vhdx",
        .absolute_win32_path = "Z:\\vms\\base.vhdx",
    };

    round_trip(&loc);
}

static void
locator_round_trips_each_path_alone(void **state)
{
    struct tm_vhdx_locator loc = { .linkage = sample_guid(9) };

    loc.relative_path = "..\\base\\p.vhdx";
    round_trip(&loc);
    loc.relative_path = NULL;
    loc.volume_path = "\\\\?\\Volume{x}\\p.vhdx";
    round_trip(&loc);
    loc.volume_path = NULL;
    loc.absolute_win32_path = "C:\\p.vhdx";
    round_trip(&loc);
}

static void
locator_round_trips_unicode(void **state)
{
    /* é (2 bytes), € (3 bytes), 😀 (4 bytes: a surrogate pair). */
    struct tm_vhdx_locator loc = {
        .linkage = sample_guid(1),
        .relative_path = ".\\caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80.vhdx",
    };
    struct tm_vhdx_locator out;
    struct tm_err err = { 0 };
    uint8_t *buf;
    size_t len;
    uint32_t voff;

    round_trip(&loc);
    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), 0);
    /* The second entry is relative_path: 16 UTF-16 units. */
    voff = tm_le32(buf + 20 + 12 + 4);
    assert_int_equal(tm_le16(buf + 20 + 12 + 10), 2 * 16);
    assert_int_equal(tm_le16(buf + voff + 2 * 5), 0x00e9);
    assert_int_equal(tm_le16(buf + voff + 2 * 7), 0x20ac);
    assert_int_equal(tm_le16(buf + voff + 2 * 9), 0xd83d);
    assert_int_equal(tm_le16(buf + voff + 2 * 10), 0xde00);
    assert_int_equal(vhdx_locator_decode(buf, len, &out, &err), 0);
    vhdx_locator_free(&out);
    free(buf);
}

/* The exact bytes: header, entries in key order, then each key and value
 * packed, GUIDs as lower-case "{...}". */
static void
locator_encode_writes_canonical_layout(void **state)
{
    struct tm_vhdx_locator loc = {
        .linkage = linkage_bytes,
        .relative_path = ".\\p.vhdx",
        .volume_path = "",              /* empty: not written */
        .absolute_win32_path = "Z:\\p.vhdx",
    };
    uint8_t want[1024];
    const struct kv kv[] = {
        { "parent_linkage", LINKAGE_TEXT },
        { "relative_path", ".\\p.vhdx" },
        { "absolute_win32_path", "Z:\\p.vhdx" },
    };
    size_t want_len = build_item(want, sizeof(want), kv, 3);
    uint8_t *buf;
    size_t len;

    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), 0);
    assert_int_equal(len, want_len);
    assert_memory_equal(buf, want, len);
    assert_memory_equal(buf, VHDX_GUID_LOCATOR_TYPE_VHDX.b, 16);
    assert_int_equal(tm_le16(buf + 18), 3);
    assert_int_equal(tm_le32(buf + 20), 20 + 3 * 12);       /* first key */
    free(buf);
    /* parent_linkage2 comes second when present. */
    loc.has_linkage2 = true;
    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), 0);
    assert_int_equal(tm_le16(buf + 18), 4);
    assert_int_equal(tm_le16(buf + 20 + 12 + 8), 2 * 15);
    assert_int_equal(tm_le16(buf + tm_le32(buf + 20 + 12) + 2 * 14), '2');
    free(buf);
}

static void
locator_encode_refuses_bad_input(void **state)
{
    struct tm_vhdx_locator loc = { .linkage = sample_guid(5) };
    char *bad_utf8[] = {
        "\xc3",                         /* truncated */
        "a\x80" "b",                    /* stray continuation */
        "\xc0\xaf",                     /* overlong '/' */
        "\xed\xa0\x80",                 /* a surrogate */
        "\xf4\x90\x80\x80",             /* above U+10FFFF */
        "\xff",
    };
    char *big = malloc(70000);
    uint8_t *buf = (uint8_t *)&loc;
    size_t len = 1;

    assert_non_null(big);
    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), TM_E_INVALID);
    assert_null(buf);
    assert_int_equal(len, 0);
    loc.relative_path = "";
    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), TM_E_INVALID);
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        loc.relative_path = bad_utf8[i];
        assert_int_equal(vhdx_locator_encode(&loc, &buf, &len),
                         TM_E_INVALID);
        assert_null(buf);
    }
    /* 32767 units fit a u16 byte length, 32768 do not. */
    memset(big, 'a', 32767);
    big[32767] = '\0';
    loc.relative_path = big;
    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), 0);
    free(buf);
    big[32767] = 'a';
    big[32768] = '\0';
    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), TM_E_INVALID);
    /* 8192 four-byte characters are 16384 units: fine. */
    for (size_t i = 0; i < 8192; i++)
        memcpy(big + 4 * i, "\xf0\x9f\x98\x80", 4);
    big[4 * 8192] = '\0';
    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), 0);
    free(buf);
    /* 16384 of them are 32768 units: too long. */
    for (size_t i = 0; i < 16384; i++)
        memcpy(big + 4 * i, "\xf0\x9f\x98\x80", 4);
    big[4 * 16384] = '\0';
    assert_int_equal(vhdx_locator_encode(&loc, &buf, &len), TM_E_INVALID);
    free(big);
}

/* ---- decoding what Windows writes -------------------------------------- */

/* Hyper-V writes five keys in this order, an upper-case linkage and a
 * zero parent_linkage2; absolute_win32_path without \\?\. */
static void
locator_decodes_windows_form(void **state)
{
    static uint8_t buf[2048];
    const struct kv kv[] = {
        { "parent_linkage", "{1A2B3C4D-5E6F-4A0B-9C8D-7E6F5A4B3C2D}" },
        { "absolute_win32_path", "C:\\vms\\base.vhdx" },
        { "relative_path", ".\\base.vhdx" },
        { "volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-"
                         "806e6f6e6963}\\vms\\base.vhdx" },
        { "parent_linkage2", "{00000000-0000-0000-0000-000000000000}" },
    };
    size_t len = build_item(buf, sizeof(buf), kv, 5);
    struct tm_vhdx_locator out;
    struct tm_err err = { 0 };

    assert_int_equal(vhdx_locator_decode(buf, len, &out, &err), 0);
    assert_memory_equal(out.linkage.b, linkage_bytes.b, 16);
    assert_false(out.has_linkage2);
    assert_string_equal(out.relative_path, ".\\base.vhdx");
    assert_string_equal(out.absolute_win32_path, "C:\\vms\\base.vhdx");
    assert_string_equal(out.volume_path, kv[3].val);
    vhdx_locator_free(&out);
    assert_null(out.relative_path);
    assert_null(out.volume_path);
    assert_null(out.absolute_win32_path);
}

static void
locator_accepts_guid_forms_and_ignores_unknown_keys(void **state)
{
    static uint8_t buf[1024];
    const char *forms[] = {
        LINKAGE_TEXT,
        "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d",
        "{1A2B3C4D-5E6F-4A0B-9C8D-7E6F5A4B3C2D}",
        "1A2b3C4d-5E6F-4a0B-9c8D-7e6F5A4B3C2D",
    };
    struct tm_vhdx_locator out;
    struct tm_err err = { 0 };

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        const struct kv kv[] = {
            { "vendor_key", "\\\\anything" },
            { "parent_linkage", forms[i] },
            { "Relative_Path", "ignored: keys are case-sensitive" },
            { "relative_path", ".\\p.vhdx" },
            { "parent_linkage2", forms[i] },
        };
        size_t len = build_item(buf, sizeof(buf), kv, 5);

        assert_int_equal(vhdx_locator_decode(buf, len, &out, &err), 0);
        assert_memory_equal(out.linkage.b, linkage_bytes.b, 16);
        assert_true(out.has_linkage2);
        assert_memory_equal(out.linkage2.b, linkage_bytes.b, 16);
        assert_string_equal(out.relative_path, ".\\p.vhdx");
        vhdx_locator_free(&out);
    }
}

static void
locator_treats_empty_values_as_absent(void **state)
{
    static uint8_t buf[1024];
    const struct kv kv[] = {
        { "parent_linkage", LINKAGE_TEXT },
        { "parent_linkage2", "" },
        { "relative_path", "" },
        { "volume_path", "" },
        { "absolute_win32_path", "Z:\\p.vhdx" },
    };
    size_t len = build_item(buf, sizeof(buf), kv, 5);
    struct tm_vhdx_locator out;
    struct tm_err err = { 0 };

    assert_int_equal(vhdx_locator_decode(buf, len, &out, &err), 0);
    assert_false(out.has_linkage2);
    assert_null(out.relative_path);
    assert_null(out.volume_path);
    assert_string_equal(out.absolute_win32_path, "Z:\\p.vhdx");
    vhdx_locator_free(&out);
    /* Only empty paths: no path at all. */
    len = build_item(buf, sizeof(buf), kv, 4);
    assert_err(vhdx_locator_decode(buf, len, &out, &err), &err,
               TM_E_CORRUPT, "parent locator has no path");
}

/* Offsets count from the start of the item, in any order, and keys and
 * values may share bytes. */
static void
locator_accepts_any_placement(void **state)
{
    static uint8_t buf[1024];
    const struct kv kv[] = {
        { "relative_path", ".\\p.vhdx" },
        { "parent_linkage", LINKAGE_TEXT },
    };
    size_t len = build_item(buf, sizeof(buf), kv, 2);
    struct tm_vhdx_locator out;
    struct tm_err err = { 0 };

    /* A third entry, volume_path: its key after the other strings, its
     * value relative_path's value. */
    tm_put_le16(buf + 18, 3);
    memmove(buf + 20 + 36, buf + 20 + 24, len - 44);
    len += 12;
    for (int i = 0; i < 2; i++)
        tm_put_le32(buf + 20 + 12 * i, tm_le32(buf + 20 + 12 * i) + 12);
    for (int i = 0; i < 2; i++)
        tm_put_le32(buf + 24 + 12 * i, tm_le32(buf + 24 + 12 * i) + 12);
    tm_put_le32(buf + 44, len);
    tm_put_le32(buf + 48, tm_le32(buf + 24));
    tm_put_le16(buf + 52, 22);
    tm_put_le16(buf + 54, 16);
    memcpy(buf + len, "v\0o\0l\0u\0m\0e\0_\0p\0a\0t\0h\0", 22);
    len += 22;
    assert_int_equal(vhdx_locator_decode(buf, len, &out, &err), 0);
    assert_string_equal(out.relative_path, ".\\p.vhdx");
    assert_string_equal(out.volume_path, ".\\p.vhdx");
    vhdx_locator_free(&out);
}

/* ---- refusals ---------------------------------------------------------- */

static size_t
valid_item(uint8_t *buf, size_t cap)
{
    const struct kv kv[] = {
        { "parent_linkage", LINKAGE_TEXT },
        { "relative_path", ".\\p.vhdx" },
        { "absolute_win32_path", "Z:\\p.vhdx" },
        { "volume_path", "\\\\?\\Volume{x}\\p.vhdx" },
    };

    return build_item(buf, cap, kv, 4);
}

/* Decodes and expects 'want' with message prefix; *out must be empty. */
static void
decode_fails(const uint8_t *buf, size_t len, int want, const char *prefix)
{
    struct tm_vhdx_locator out;
    struct tm_err err = { 0 };

    assert_err(vhdx_locator_decode(buf, len, &out, &err), &err, want,
               prefix);
    assert_null(out.relative_path);
    assert_null(out.volume_path);
    assert_null(out.absolute_win32_path);
    assert_false(out.has_linkage2);
    assert_true(tm_guid_is_zero(&out.linkage));
}

static void
locator_refuses_short_item_and_foreign_type(void **state)
{
    static uint8_t buf[1024];
    size_t len = valid_item(buf, sizeof(buf));
    struct tm_err err = { 0 };
    struct tm_vhdx_locator out;

    decode_fails(buf, 19, TM_E_CORRUPT, "parent locator: item is 19 bytes");
    decode_fails(buf, 0, TM_E_CORRUPT, "parent locator: item is 0 bytes");
    buf[3] ^= 0xff;
    decode_fails(buf, len, TM_E_UNSUPPORTED,
                 "parent locator: locator type {4f4aefb7-d19e-4a81-b789-"
                 "25b8e9445913} is not supported");
    buf[3] ^= 0xff;
    /* Four entries need 68 bytes. */
    decode_fails(buf, 67, TM_E_CORRUPT,
                 "parent locator: key-value count 4 runs past the end");
    tm_put_le16(buf + 18, 0xffff);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key-value count 65535");
    tm_put_le16(buf + 18, 0);
    assert_err(vhdx_locator_decode(buf, len, &out, &err), &err,
               TM_E_CORRUPT, "parent locator: key parent_linkage is "
               "missing");
    assert_null(out.relative_path);
    assert_msg_has(&err, "parent_linkage");
}

static void
locator_refuses_bad_entries(void **state)
{
    static uint8_t buf[1024];
    size_t len = valid_item(buf, sizeof(buf));
    uint8_t *e3 = buf + 20 + 12 * 3;
    uint8_t save[12];

    memcpy(save, e3, 12);
    tm_put_le32(e3, 0);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3: key offset is 0");
    memcpy(e3, save, 12);
    tm_put_le32(e3 + 4, 0);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3: value offset is 0");
    memcpy(e3, save, 12);
    tm_put_le16(e3 + 8, 21);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3: key length 21 is odd");
    memcpy(e3, save, 12);
    tm_put_le16(e3 + 10, 3);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3: value length 3 is odd");
    memcpy(e3, save, 12);
    tm_put_le16(e3 + 8, 0);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3: key is empty");
    memcpy(e3, save, 12);
    /* The last value ends exactly at the end of the item. */
    decode_fails(buf, len - 2, TM_E_CORRUPT,
                 "parent locator: key 3: value runs past the end of the "
                 "item");
    tm_put_le32(e3, (uint32_t)len);
    tm_put_le16(e3 + 8, 2);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3: key runs past the end of the item");
    /* Offsets near 2^32 must not wrap. */
    tm_put_le32(e3, 0xfffffffe);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3: key runs past the end");
    memcpy(e3, save, 12);
    tm_put_le32(e3 + 4, 0xffffffff);
    tm_put_le16(e3 + 10, 0xfffe);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3: value runs past the end");
    memcpy(e3, save, 12);
    /* Key 3 made a second relative_path: same offset as key 1's key. */
    memcpy(e3, buf + 20 + 12, 4);
    tm_put_le16(e3 + 8, tm_le16(buf + 20 + 12 + 8));
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 3 (relative_path): the key appears "
                 "twice");
}

static void
locator_refuses_bad_values(void **state)
{
    static uint8_t buf[1024];
    size_t len = valid_item(buf, sizeof(buf));
    uint8_t *e0 = buf + 20;
    uint8_t *e1 = buf + 20 + 12;
    uint8_t *v0 = buf + tm_le32(e0 + 4);
    uint8_t *v1 = buf + tm_le32(e1 + 4);
    struct tm_err err = { 0 };
    struct tm_vhdx_locator out;

    tm_put_le16(v0 + 2 * 5, 'g');
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 0 (parent_linkage): value '{1a2b");
    tm_put_le16(v0 + 2 * 5, 0x0432);    /* a Cyrillic letter */
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 0 (parent_linkage): value is not a "
                 "GUID");
    tm_put_le16(v0 + 2 * 5, '3');
    tm_put_le16(e0 + 10, 2 * 37);       /* "{...": one brace */
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 0 (parent_linkage): value of 37 "
                 "characters is not a GUID");
    tm_put_le16(e0 + 10, 2 * 38);
    /* relative_path ".\p.vhdx": a lone high surrogate at the end... */
    tm_put_le16(v1 + 2 * 7, 0xd83d);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 1 (relative_path): unpaired "
                 "surrogate 0xd83d at unit 7");
    /* ...a high surrogate followed by no low one... */
    tm_put_le16(v1 + 2 * 2, 0xd83d);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 1 (relative_path): unpaired "
                 "surrogate 0xd83d at unit 2");
    /* ...a lone low one... */
    tm_put_le16(v1 + 2 * 2, 0xde00);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 1 (relative_path): unpaired "
                 "surrogate 0xde00 at unit 2");
    /* ...and a proper pair. */
    tm_put_le16(v1 + 2 * 2, 0xd83d);
    tm_put_le16(v1 + 2 * 3, 0xde00);
    tm_put_le16(v1 + 2 * 7, 'x');
    assert_int_equal(vhdx_locator_decode(buf, len, &out, &err), 0);
    assert_string_equal(out.relative_path, ".\\\xf0\x9f\x98\x80vhdx");
    vhdx_locator_free(&out);
    tm_put_le16(v1 + 2 * 4, 0);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 1 (relative_path): NUL character at "
                 "unit 4");
}

/* A failure after a path was decoded leaves nothing allocated (ASan
 * checks the leak) and *out empty. */
static void
locator_failure_frees_decoded_paths(void **state)
{
    static uint8_t buf[1024];
    const struct kv kv[] = {
        { "relative_path", ".\\p.vhdx" },
        { "volume_path", "\\\\?\\Volume{x}\\p.vhdx" },
        { "relative_path", ".\\q.vhdx" },
        { "parent_linkage", LINKAGE_TEXT },
    };
    size_t len = build_item(buf, sizeof(buf), kv, 4);

    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key 2 (relative_path): the key appears "
                 "twice");
    /* No parent_linkage at all, two paths decoded. */
    len = build_item(buf, sizeof(buf), kv, 2);
    decode_fails(buf, len, TM_E_CORRUPT,
                 "parent locator: key parent_linkage is missing");
}

/* ---- copy and free ----------------------------------------------------- */

static void
locator_copy_is_deep(void **state)
{
    char rel[] = ".\\p.vhdx";
    struct tm_vhdx_locator src = {
        .linkage = sample_guid(7),
        .has_linkage2 = true,
        .linkage2 = sample_guid(8),
        .relative_path = rel,
        .absolute_win32_path = "Z:\\p.vhdx",
    };
    struct tm_vhdx_locator dst;

    assert_int_equal(vhdx_locator_copy(&dst, &src), 0);
    assert_locator_equal(&dst, &src);
    assert_ptr_not_equal(dst.relative_path, src.relative_path);
    rel[2] = 'q';
    assert_string_equal(dst.relative_path, ".\\p.vhdx");
    vhdx_locator_free(&dst);
    assert_null(dst.relative_path);
    assert_null(dst.absolute_win32_path);
    vhdx_locator_free(&dst);            /* twice is fine */
    vhdx_locator_free(NULL);
}

/* ---- path forms -------------------------------------------------------- */

static void
rel_is(const char *child, const char *parent, const char *want)
{
    char *out = (char *)1;

    assert_int_equal(vhdx_path_relative_win(child, parent, &out), 0);
    if (strcmp(out, want) != 0)
        fail_msg("relative_win('%s', '%s') = '%s', want '%s'", child,
                 parent, out, want);
    free(out);
}

static void
rel_fails(const char *child, const char *parent, int want)
{
    char *out = (char *)1;

    assert_int_equal(vhdx_path_relative_win(child, parent, &out), want);
    assert_null(out);
}

static void
path_relative_win_matches_windows(void **state)
{
    rel_is("/vms/child.vhdx", "/vms/parent.vhdx", ".\\parent.vhdx");
    rel_is("/vms/a/child.vhdx", "/vms/base/p.vhdx", "..\\base\\p.vhdx");
    rel_is("/vms/child.vhdx", "/vms/sub/p.vhdx", ".\\sub\\p.vhdx");
    rel_is("/vms/child.vhdx", "/vms/sub/deeper/p.vhdx",
           ".\\sub\\deeper\\p.vhdx");
    rel_is("/a/b/c/d/child.vhdx", "/a/x/y/p.vhdx",
           "..\\..\\..\\x\\y\\p.vhdx");
    rel_is("/a/b/c/d/child.vhdx", "/p.vhdx", "..\\..\\..\\..\\p.vhdx");
    /* The root directory. */
    rel_is("/child.vhdx", "/p.vhdx", ".\\p.vhdx");
    rel_is("/child.vhdx", "/vms/p.vhdx", ".\\vms\\p.vhdx");
    rel_is("/vms/child.vhdx", "/p.vhdx", "..\\p.vhdx");
    /* The same file name in different directories. */
    rel_is("/vms/a/disk.vhdx", "/vms/b/disk.vhdx", "..\\b\\disk.vhdx");
    /* A directory named like the file, and a common name prefix. */
    rel_is("/vms/ab/c.vhdx", "/vms/abc/p.vhdx", "..\\abc\\p.vhdx");
    rel_is("/vms/p.vhdx/c.vhdx", "/vms/p.vhdx", "..\\p.vhdx");
    /* Doubled slashes count as one. */
    rel_is("//vms//child.vhdx", "/vms/sub//p.vhdx", ".\\sub\\p.vhdx");
    /* 4-byte UTF-8 is kept as it is. */
    rel_is("/vms/\xf0\x9f\x98\x80/c.vhdx", "/vms/\xf0\x9f\x98\x81/p.vhdx",
           "..\\\xf0\x9f\x98\x81\\p.vhdx");
}

static void
path_relative_win_refuses_other_paths(void **state)
{
    rel_fails("vms/child.vhdx", "/vms/p.vhdx", TM_E_INVALID);
    rel_fails("/vms/child.vhdx", "p.vhdx", TM_E_INVALID);
    rel_fails("", "/p.vhdx", TM_E_INVALID);
    rel_fails("/c.vhdx", "", TM_E_INVALID);
    rel_fails("/", "/p.vhdx", TM_E_INVALID);
    rel_fails("/c.vhdx", "/", TM_E_INVALID);
    rel_fails("/vms/", "/p.vhdx", TM_E_INVALID);
    rel_fails("/c.vhdx", "/vms/p.vhdx/", TM_E_INVALID);
    rel_fails("/vms/../c.vhdx", "/p.vhdx", TM_E_INVALID);
    rel_fails("/c.vhdx", "/vms/./p.vhdx", TM_E_INVALID);
    /* A Linux name with a backslash has no Windows form. */
    rel_fails("/c.vhdx", "/vms/a\\b.vhdx", TM_E_UNSUPPORTED);
}

static void
abs_is(const char *path, const char *want)
{
    char *out = (char *)1;

    assert_int_equal(vhdx_path_absolute_win(path, &out), 0);
    assert_string_equal(out, want);
    free(out);
}

static void
abs_fails(const char *path, int want)
{
    char *out = (char *)1;

    assert_int_equal(vhdx_path_absolute_win(path, &out), want);
    assert_null(out);
}

static void
path_absolute_win_uses_drive_z(void **state)
{
    abs_is("/vms/dir/file.vhdx", "Z:\\vms\\dir\\file.vhdx");
    abs_is("/p.vhdx", "Z:\\p.vhdx");
    abs_is("//vms///p.vhdx", "Z:\\vms\\p.vhdx");
    abs_is("/v m s/\xf0\x9f\x98\x80.vhdx", "Z:\\v m s\\\xf0\x9f\x98\x80.vhdx");
    abs_fails("vms/p.vhdx", TM_E_INVALID);
    abs_fails("", TM_E_INVALID);
    abs_fails("/", TM_E_INVALID);
    abs_fails("/vms/", TM_E_INVALID);
    abs_fails("/vms/../p.vhdx", TM_E_INVALID);
    abs_fails("/a\\b.vhdx", TM_E_UNSUPPORTED);
}

static void
from_rel_is(const char *child, const char *rel, const char *want)
{
    char *out = (char *)1;

    assert_int_equal(vhdx_path_from_relative(child, rel, &out), 0);
    if (strcmp(out, want) != 0)
        fail_msg("from_relative('%s', '%s') = '%s', want '%s'", child, rel,
                 out, want);
    free(out);
}

static void
from_rel_fails(const char *child, const char *rel, int want)
{
    char *out = (char *)1;

    assert_int_equal(vhdx_path_from_relative(child, rel, &out), want);
    assert_null(out);
}

static void
path_from_relative_resolves_against_child_dir(void **state)
{
    from_rel_is("/vms/child.vhdx", ".\\parent.vhdx", "/vms/parent.vhdx");
    from_rel_is("/vms/child.vhdx", "parent.vhdx", "/vms/parent.vhdx");
    from_rel_is("/vms/child.vhdx", "./parent.vhdx", "/vms/parent.vhdx");
    from_rel_is("/vms/a/child.vhdx", "..\\base\\p.vhdx",
                "/vms/a/../base/p.vhdx");
    from_rel_is("/vms/child.vhdx", ".\\sub\\p.vhdx", "/vms/sub/p.vhdx");
    from_rel_is("/vms/child.vhdx", "sub/deeper\\p.vhdx",
                "/vms/sub/deeper/p.vhdx");
    from_rel_is("/a/b/c/d/child.vhdx", "..\\..\\..\\x\\y\\p.vhdx",
                "/a/b/c/d/../../../x/y/p.vhdx");
    /* Doubled separators and "." components go; ".." stays. */
    from_rel_is("/vms//child.vhdx", ".\\.\\sub\\\\.\\p.vhdx",
                "/vms/sub/p.vhdx");
    /* The root and relative children. */
    from_rel_is("/child.vhdx", ".\\p.vhdx", "/p.vhdx");
    from_rel_is("//child.vhdx", "..\\p.vhdx", "/../p.vhdx");
    from_rel_is("a.vhdx", ".\\p.vhdx", "p.vhdx");
    from_rel_is("./a.vhdx", "..\\p.vhdx", "../p.vhdx");
    from_rel_is("vms/a.vhdx", ".\\p.vhdx", "vms/p.vhdx");
    from_rel_is("../vms/a.vhdx", "..\\b\\p.vhdx", "../vms/../b/p.vhdx");
    from_rel_is("/vms/\xf0\x9f\x98\x80/c.vhdx", ".\\\xf0\x9f\x98\x81.vhdx",
                "/vms/\xf0\x9f\x98\x80/\xf0\x9f\x98\x81.vhdx");
}

static void
path_from_relative_refuses_absolute_or_empty(void **state)
{
    from_rel_fails("/vms/c.vhdx", "", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", "\\vms\\p.vhdx", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", "/vms/p.vhdx", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", "C:\\vms\\p.vhdx", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", "z:p.vhdx", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", "\\\\?\\Z:\\p.vhdx", TM_E_INVALID);
    /* Values naming a directory. */
    from_rel_fails("/vms/c.vhdx", ".", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", ".\\", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", "..", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", "..\\base\\", TM_E_INVALID);
    from_rel_fails("/vms/c.vhdx", "base\\.", TM_E_INVALID);
    /* A child path naming a directory. */
    from_rel_fails("", ".\\p.vhdx", TM_E_INVALID);
    from_rel_fails("/vms/", ".\\p.vhdx", TM_E_INVALID);
}

static void
from_abs_is(const char *abs, const char *want)
{
    char *out = (char *)1;

    assert_int_equal(vhdx_path_from_absolute(abs, &out), 0);
    if (strcmp(out, want) != 0)
        fail_msg("from_absolute('%s') = '%s', want '%s'", abs, out, want);
    free(out);
}

static void
from_abs_fails(const char *abs, int want)
{
    char *out = (char *)1;

    assert_int_equal(vhdx_path_from_absolute(abs, &out), want);
    assert_null(out);
}

static void
path_from_absolute_maps_drive_z(void **state)
{
    from_abs_is("Z:\\vms\\dir\\file.vhdx", "/vms/dir/file.vhdx");
    from_abs_is("z:\\p.vhdx", "/p.vhdx");
    from_abs_is("\\\\?\\Z:\\vms\\p.vhdx", "/vms/p.vhdx");
    from_abs_is("\\\\?\\z:\\vms\\p.vhdx", "/vms/p.vhdx");
    from_abs_is("Z:/vms\\\\p.vhdx", "/vms/p.vhdx");
    from_abs_is("Z:\\vms\\..\\other\\.\\p.vhdx", "/vms/../other/p.vhdx");
    from_abs_is("Z:\\\xf0\x9f\x98\x80\\p.vhdx", "/\xf0\x9f\x98\x80/p.vhdx");
}

static void
path_from_absolute_refuses_other_forms(void **state)
{
    from_abs_fails("C:\\vms\\p.vhdx", TM_E_UNSUPPORTED);
    from_abs_fails("\\\\?\\d:\\path2\\sub3\\parent.vhdx", TM_E_UNSUPPORTED);
    from_abs_fails("\\\\server\\share\\p.vhdx", TM_E_UNSUPPORTED);
    from_abs_fails("\\\\?\\UNC\\server\\share\\p.vhdx", TM_E_UNSUPPORTED);
    from_abs_fails("\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}"
                   "\\p.vhdx", TM_E_UNSUPPORTED);
    from_abs_fails("\\vms\\p.vhdx", TM_E_UNSUPPORTED);
    from_abs_fails("Z:p.vhdx", TM_E_UNSUPPORTED);
    from_abs_fails("Z:", TM_E_UNSUPPORTED);
    from_abs_fails("\\\\?\\", TM_E_UNSUPPORTED);
    from_abs_fails("", TM_E_INVALID);
    from_abs_fails("vms\\p.vhdx", TM_E_INVALID);
    from_abs_fails("Z:\\", TM_E_INVALID);
    from_abs_fails("Z:\\vms\\", TM_E_INVALID);
    from_abs_fails("Z:\\vms\\..", TM_E_INVALID);
}

/* Lexical resolution of "." and "..", enough to compare paths made of
 * plain components (no symbolic links in a test's strings). */
static void
lexical_clean(char *p)
{
    char *comp[64];
    size_t n = 0;
    char *save = p;
    char buf[512];
    size_t pos = 0;

    assert_true(strlen(p) < sizeof(buf));
    memcpy(buf, p, strlen(p) + 1);
    for (char *s = buf; *s != '\0';) {
        char *start;

        while (*s == '/')
            s++;
        start = s;
        while (*s != '\0' && *s != '/')
            s++;
        if (*s == '/')
            *s++ = '\0';
        if (*start == '\0' || strcmp(start, ".") == 0)
            continue;
        if (strcmp(start, "..") == 0) {
            if (n > 0)
                n--;
            continue;
        }
        assert_true(n < 64);
        comp[n++] = start;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(comp[i]);

        save[pos++] = '/';
        memcpy(save + pos, comp[i], l);
        pos += l;
    }
    save[pos] = '\0';
}

/* What tidemark writes, tidemark reads back to the same file. */
static void
path_forms_round_trip(void **state)
{
    const char *pairs[][2] = {
        { "/vms/child.vhdx", "/vms/parent.vhdx" },
        { "/vms/a/child.vhdx", "/vms/base/p.vhdx" },
        { "/a/b/c/d/child.vhdx", "/p.vhdx" },
        { "/child.vhdx", "/x/y/z/p.vhdx" },
        { "/vms/a/disk.vhdx", "/vms/b/disk.vhdx" },
        { "/\xf0\x9f\x98\x80/c.vhdx", "/\xf0\x9f\x98\x80/d/p.vhdx" },
    };

    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char *rel, *abs, *back;

        assert_int_equal(vhdx_path_relative_win(pairs[i][0], pairs[i][1],
                                                &rel), 0);
        assert_int_equal(vhdx_path_from_relative(pairs[i][0], rel, &back),
                         0);
        lexical_clean(back);
        assert_string_equal(back, pairs[i][1]);
        free(back);
        free(rel);
        assert_int_equal(vhdx_path_absolute_win(pairs[i][1], &abs), 0);
        assert_int_equal(vhdx_path_from_absolute(abs, &back), 0);
        assert_string_equal(back, pairs[i][1]);
        free(back);
        free(abs);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(locator_round_trips_every_key),
        cmocka_unit_test(locator_round_trips_each_path_alone),
        cmocka_unit_test(locator_round_trips_unicode),
        cmocka_unit_test(locator_encode_writes_canonical_layout),
        cmocka_unit_test(locator_encode_refuses_bad_input),
        cmocka_unit_test(locator_decodes_windows_form),
        cmocka_unit_test(locator_accepts_guid_forms_and_ignores_unknown_keys),
        cmocka_unit_test(locator_treats_empty_values_as_absent),
        cmocka_unit_test(locator_accepts_any_placement),
        cmocka_unit_test(locator_refuses_short_item_and_foreign_type),
        cmocka_unit_test(locator_refuses_bad_entries),
        cmocka_unit_test(locator_refuses_bad_values),
        cmocka_unit_test(locator_failure_frees_decoded_paths),
        cmocka_unit_test(locator_copy_is_deep),
        cmocka_unit_test(path_relative_win_matches_windows),
        cmocka_unit_test(path_relative_win_refuses_other_paths),
        cmocka_unit_test(path_absolute_win_uses_drive_z),
        cmocka_unit_test(path_from_relative_resolves_against_child_dir),
        cmocka_unit_test(path_from_relative_refuses_absolute_or_empty),
        cmocka_unit_test(path_from_absolute_maps_drive_z),
        cmocka_unit_test(path_from_absolute_refuses_other_forms),
        cmocka_unit_test(path_forms_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
