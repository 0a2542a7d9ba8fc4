/* SPDX-License-Identifier: MIT */
/* rct_test.c - lib/rct: the codecs of format.c (round trips and every
 * validation error), IDs, and the engine on memory files: mark, seal,
 * query and its paging, persist and reopen, resets, crash recovery,
 * renumbering, memory and speed.
 *
 * With TM_RCT_WRITE_CORPUS=<dir> in the environment it also writes the
 * seed corpus of sidecar_fuzz.c there. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "rct_int.h"
#include "io_testutil.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- a disk on memory files ------------------------------------------- */

struct disk {
    struct tm_io *rm, *mm;      /* the sidecars, kept across handles */
    struct tm_rct *t;
    struct tm_rct_binding b;
};

static struct tm_rct_binding
binding(uint8_t tag, uint64_t vs)
{
    struct tm_rct_binding b = { .virtual_size = vs };

    memset(b.data_write_guid.b, tag, 16);
    return b;
}

static void
disk_create(struct disk *d, uint64_t vs, uint32_t gran, uint64_t region)
{
    struct tm_rct_params p = { .granularity = gran, .region = region };
    struct tm_err err = { 0 };
    int rc;

    memset(d, 0, sizeof(*d));
    d->rm = tm_io_mem_new();
    d->mm = tm_io_mem_new();
    d->b = binding(0xa5, vs);
    rc = tm_rct_create(tm_io_borrow_new(d->rm), tm_io_borrow_new(d->mm), &p,
                       &d->b, &d->t, &err);
    if (rc != 0)
        fail_msg("create: %d %s", rc, err.msg);
}

static enum tm_rct_open_state
disk_reopen_with(struct disk *d, const struct tm_rct_binding *b)
{
    enum tm_rct_open_state st;
    struct tm_err err = { 0 };
    int rc;

    rc = tm_rct_open(tm_io_borrow_new(d->rm), tm_io_borrow_new(d->mm), b,
                     &d->t, &st, &err);
    if (rc != 0)
        fail_msg("open: %d %s", rc, err.msg);
    return st;
}

static void
disk_close(struct disk *d)
{
    assert_int_equal(tm_rct_close(d->t, &d->b), 0);
    d->t = NULL;
}

static void
disk_destroy(struct disk *d)
{
    tm_rct_free(d->t);
    tm_io_close(d->rm);
    tm_io_close(d->mm);
}

/* Queries 'id' over the whole disk in one call; returns the count. */
static size_t
query_all(struct tm_rct *t, const char *id, struct tm_range *r,
          size_t cap)
{
    uint64_t processed;
    size_t n = cap;
    int rc;

    rc = tm_rct_query(t, id, NULL, 0, UINT64_MAX / 2, r, &n, &processed);
    if (rc != 0)
        fail_msg("query: %d %s", rc, tm_rct_err(t)->msg);
    return n;
}

static int
query_rc(struct tm_rct *t, const char *id)
{
    struct tm_range r[4];
    uint64_t processed;
    size_t n = 4;

    return tm_rct_query(t, id, NULL, 0, 1, r, &n, &processed);
}

/* ---- codec: .rct header ------------------------------------------------ */

static struct rct_header
sample_header(void)
{
    struct rct_header h = {
        .seq = 7, .virtual_size = 10 * MiB + 512, .granularity = 64 * KiB,
        .flags = RCT_FLAG_OPEN, .body_off = 12288, .body_len = 40,
        .body_crc = 0x12345678, .epoch = 9, .next_counter = 12,
    };

    memset(h.lineage.b, 0x11, 16);
    memset(h.data_write_guid.b, 0x22, 16);
    return h;
}

static void
fix_crc(uint8_t *buf, size_t len, size_t field)
{
    tm_put_le32(buf + field, 0);
    tm_put_le32(buf + field, tm_crc32c(0, buf, len));
}

static void
header_round_trip(void **state)
{
    struct rct_header h = sample_header(), h2;
    uint8_t buf[RCT_SLOT_BYTES];
    struct tm_err err = { 0 };

    rct_header_encode(&h, buf);
    assert_memory_equal(buf, "tmrct\0\0\1", 8);
    assert_int_equal(rct_header_decode(buf, sizeof(buf), &h2, &err), 0);
    assert_memory_equal(&h, &h2, sizeof(h));
}

/* Patches 'len' bytes of field 'off' with 'v' (little-endian), fixes the
 * CRC and expects 'want' with a message starting 'prefix'. */
static void
header_bad(size_t off, size_t len, uint64_t v, int want, const char *part)
{
    struct rct_header h = sample_header(), h2;
    uint8_t buf[RCT_SLOT_BYTES];
    struct tm_err err = { 0 };
    int rc;

    rct_header_encode(&h, buf);
    for (size_t i = 0; i < len; i++)
        buf[off + i] = (uint8_t)(i < 8 ? v >> (8 * i) : 0);
    fix_crc(buf, sizeof(buf), 8);
    rc = rct_header_decode(buf, sizeof(buf), &h2, &err);
    assert_err(rc, &err, want, "rct header: ");
    assert_msg_has(&err, part);
}

static void
header_validation_errors(void **state)
{
    struct rct_header h = sample_header(), h2;
    uint8_t buf[RCT_SLOT_BYTES];
    struct tm_err err = { 0 };

    rct_header_encode(&h, buf);
    assert_err(rct_header_decode(buf, 4095, &h2, &err), &err, TM_E_CORRUPT,
               "rct header: 4095 bytes");
    buf[100] ^= 1;
    assert_err(rct_header_decode(buf, sizeof(buf), &h2, &err), &err,
               TM_E_CORRUPT, "rct header: bad checksum");
    header_bad(0, 1, 'x', TM_E_CORRUPT, "signature");
    header_bad(12, 4, 2, TM_E_UNSUPPORTED, "format version 2");
    header_bad(16, 8, 0, TM_E_CORRUPT, "sequence is 0");
    header_bad(24, 16, 0, TM_E_CORRUPT, "lineage is zero");
    header_bad(56, 8, 0, TM_E_CORRUPT, "virtual size 0");
    header_bad(56, 8, (64ull << 40) + 1, TM_E_CORRUPT, "virtual size");
    header_bad(64, 4, 3 * 4096, TM_E_CORRUPT, "granularity 12288");
    header_bad(64, 4, 2048, TM_E_CORRUPT, "granularity 2048");
    header_bad(64, 4, 4u << 20, TM_E_CORRUPT, "granularity 4194304");
    header_bad(68, 4, 4, TM_E_CORRUPT, "unknown flags 0x4");
    header_bad(72, 8, 4096, TM_E_CORRUPT, "body offset 4096");
    header_bad(72, 8, 8193, TM_E_CORRUPT, "body offset 8193");
    header_bad(80, 8, 23, TM_E_CORRUPT, "body length 23");
    header_bad(80, 8, 1ull << 40, TM_E_CORRUPT, "body length");
    header_bad(92, 2, 0, TM_E_CORRUPT, "current epoch 0");
    header_bad(92, 2, 65535, TM_E_CORRUPT, "current epoch 65535");
    header_bad(94, 4, 0, TM_E_CORRUPT, "next ID counter is 0");
}

/* ---- codec: .rct body --------------------------------------------------- */

struct body_case {
    struct rct_header h;
    uint16_t gens[40];
    struct rct_hist hist[3];
    struct rct_former former[2];
    uint8_t *buf;
    size_t len;
};

static void
body_case_make(struct body_case *c)
{
    memset(c, 0, sizeof(*c));
    c->h = sample_header();
    c->h.virtual_size = 40 * 64 * KiB - 1;      /* 40 granules */
    c->h.epoch = 9;
    c->h.next_counter = 12;
    c->hist[0] = (struct rct_hist){ 5, 3 };
    c->hist[1] = (struct rct_hist){ 6, 4 };
    c->hist[2] = (struct rct_hist){ 11, 8 };
    memset(c->former[0].lineage.b, 0x33, 16);
    c->former[0].reason = TM_RCT_RESET_FOREIGN_WRITE;
    memset(c->former[1].lineage.b, 0x44, 16);
    c->former[1].reason = TM_RCT_RESET_CORRUPT;
    for (int g = 3; g < 9; g++)
        c->gens[g] = 4;
    c->gens[9] = 9;
    c->gens[39] = 1;
    assert_int_equal(rct_body_encode(c->hist, 3, c->former, 2, c->gens, 40,
                                     &c->buf, &c->len),
                     0);
    c->h.body_len = c->len;
    c->h.body_crc = tm_crc32c(0, c->buf, c->len);
}

static void
body_round_trip(void **state)
{
    struct body_case c;
    struct rct_body b;
    uint16_t gens[40] = { 0 };
    struct tm_err err = { 0 };

    body_case_make(&c);
    /* 3 runs: [3,9) gen 4, [9] gen 9, [39] gen 1. */
    assert_int_equal(c.len, 4 + 3 * 8 + 4 + 2 * 17 + 16 + 3 * 24);
    assert_int_equal(rct_body_decode(c.buf, c.len, &c.h, &b, gens, &err), 0);
    assert_memory_equal(gens, c.gens, sizeof(gens));
    assert_int_equal(b.nhist, 3);
    assert_int_equal(b.hist[2].counter, 11);
    assert_int_equal(b.hist[2].epoch, 8);
    assert_int_equal(b.nformer, 2);
    assert_memory_equal(&b.former[1], &c.former[1], sizeof(c.former[1]));
    assert_int_equal(b.granules, 40);
    assert_int_equal(b.nruns, 3);
    free(b.hist);
    free(c.buf);
}

/* Patches the body at 'off', fixes the CRC the header holds, expects
 * TM_E_CORRUPT and 'part' in the message. */
static void
body_bad(size_t off, size_t len, uint64_t v, const char *part)
{
    struct body_case c;
    struct rct_body b;
    struct tm_err err = { 0 };
    int rc;

    body_case_make(&c);
    for (size_t i = 0; i < len; i++)
        c.buf[off + i] = (uint8_t)(i < 8 ? v >> (8 * i) : 0);
    c.h.body_crc = tm_crc32c(0, c.buf, c.len);
    rc = rct_body_decode(c.buf, c.len, &c.h, &b, NULL, &err);
    assert_err(rc, &err, TM_E_CORRUPT, "rct body: ");
    assert_msg_has(&err, part);
    free(c.buf);
}

static void
body_validation_errors(void **state)
{
    const size_t hist = 4, former = 4 + 3 * 8, map = former + 4 + 2 * 17;
    const size_t runs = map + 16;
    struct body_case c;
    struct rct_body b;
    struct tm_err err = { 0 };

    body_case_make(&c);
    assert_err(rct_body_decode(c.buf, c.len - 1, &c.h, &b, NULL, &err), &err,
               TM_E_CORRUPT, "rct body: ");
    c.buf[7] ^= 1;
    assert_err(rct_body_decode(c.buf, c.len, &c.h, &b, NULL, &err), &err,
               TM_E_CORRUPT, "rct body: bad checksum");
    free(c.buf);

    body_bad(0, 4, 1000, "history count 1000");
    body_bad(hist, 4, 0, "counter 0");
    body_bad(hist + 16, 4, 12, "counter 12");
    body_bad(hist + 4, 2, 9, "not below the current epoch");
    body_bad(hist + 8, 4, 5, "not ascending");
    body_bad(hist + 12, 2, 2, "not ascending");
    body_bad(former, 4, 17, "former lineage count 17");
    body_bad(former + 4 + 16, 1, 0, "reason 0");
    body_bad(former + 4 + 16, 1, 6, "reason 6");
    body_bad(map, 8, 41, "granule count 41");
    body_bad(map + 8, 8, 2, "run count 2");
    body_bad(map + 8, 8, 4, "run count 4");
    body_bad(runs + 24, 8, 8, "overlaps");                 /* into run 0 */
    body_bad(runs + 8, 4, 0, "overlaps, is empty");
    body_bad(runs + 48, 8, 40, "passes the end");
    body_bad(runs + 48 + 8, 4, 2, "passes the end");
    body_bad(runs + 12, 2, 0, "gen 0");
    body_bad(runs + 12, 2, 10, "gen 10");
}

/* ---- codec: .mrt --------------------------------------------------------- */

static struct rct_mrt_header
sample_mrt(void)
{
    struct rct_mrt_header h = {
        .rct_seq = 5, .region = 1 * GiB, .regions = 3, .highest = 77,
    };

    memset(h.lineage.b, 0x11, 16);
    return h;
}

static void
mrt_bad(size_t off, size_t len, uint64_t v, int want, const char *part)
{
    struct rct_mrt_header h = sample_mrt(), h2;
    uint8_t buf[RCT_MRT_HDR_BYTES];
    struct tm_err err = { 0 };

    rct_mrt_header_encode(&h, buf);
    for (size_t i = 0; i < len; i++)
        buf[off + i] = (uint8_t)(i < 8 ? v >> (8 * i) : 0);
    fix_crc(buf, sizeof(buf), 8);
    assert_err(rct_mrt_header_decode(buf, sizeof(buf), &h2, &err), &err,
               want, "mrt header: ");
    assert_msg_has(&err, part);
}

static void
mrt_round_trip_and_errors(void **state)
{
    struct rct_mrt_header h = sample_mrt(), h2;
    uint8_t buf[RCT_MRT_HDR_BYTES];
    uint8_t bits[4088];
    uint8_t sec[4096];
    const uint8_t *got;
    struct tm_err err = { 0 };

    rct_mrt_header_encode(&h, buf);
    assert_memory_equal(buf, "tmmrt\0\0\1", 8);
    assert_int_equal(rct_mrt_header_decode(buf, sizeof(buf), &h2, &err), 0);
    assert_memory_equal(&h, &h2, sizeof(h));
    assert_err(rct_mrt_header_decode(buf, 100, &h2, &err), &err,
               TM_E_CORRUPT, "mrt header: 100 bytes");
    buf[60] = 1;
    assert_err(rct_mrt_header_decode(buf, sizeof(buf), &h2, &err), &err,
               TM_E_CORRUPT, "mrt header: bad checksum");
    mrt_bad(1, 1, 'x', TM_E_CORRUPT, "signature");
    mrt_bad(12, 4, 9, TM_E_UNSUPPORTED, "format version 9");
    mrt_bad(16, 16, 0, TM_E_CORRUPT, "lineage is zero");
    mrt_bad(32, 8, 0, TM_E_CORRUPT, "rct sequence is 0");
    mrt_bad(40, 8, 3 * MiB, TM_E_CORRUPT, "region size");
    mrt_bad(40, 8, 2048, TM_E_CORRUPT, "region size 2048");
    mrt_bad(48, 8, 0, TM_E_CORRUPT, "region count 0");
    mrt_bad(48, 8, 1ull << 20, TM_E_CORRUPT, "region count");

    for (size_t i = 0; i < sizeof(bits); i++)
        bits[i] = (uint8_t)(i * 7);
    rct_mrt_sector_encode(3, bits, sec);
    assert_int_equal(rct_mrt_sector_decode(sec, sizeof(sec), 3, &got, &err),
                     0);
    assert_memory_equal(got, bits, sizeof(bits));
    assert_err(rct_mrt_sector_decode(sec, sizeof(sec), 4, &got, &err), &err,
               TM_E_CORRUPT, "mrt sector 4: index field says 3");
    assert_err(rct_mrt_sector_decode(sec, 4095, 3, &got, &err), &err,
               TM_E_CORRUPT, "mrt sector 3: 4095 bytes");
    sec[4000] ^= 0x80;
    assert_err(rct_mrt_sector_decode(sec, sizeof(sec), 3, &got, &err), &err,
               TM_E_CORRUPT, "mrt sector 3: bad checksum");
    rct_mrt_sector_encode(0, NULL, sec);
    assert_int_equal(rct_mrt_sector_decode(sec, sizeof(sec), 0, &got, &err),
                     0);
    for (size_t i = 0; i < sizeof(bits); i++)
        assert_int_equal(got[i], 0);
}

/* ---- IDs -------------------------------------------------------------------- */

static void
id_format_and_parse(void **state)
{
    static const char want[] =
        "rctX:5bfde23b:ce75:4303:b54f:6c18394f105c:0000002a";
    struct tm_guid g, g2;
    uint32_t c;
    char id[TM_RCT_ID_MAX + 1];
    char bad[80];

    assert_int_equal(tm_guid_parse("5BFDE23B-CE75-4303-B54F-6C18394F105C",
                                   36, &g), 0);
    rct_id_format(&g, 42, id);
    assert_string_equal(id, want);
    assert_int_equal(rct_id_parse(id, &g2, &c), 0);
    assert_true(tm_guid_equal(&g, &g2));
    assert_int_equal(c, 42);
    rct_id_format(&g, UINT32_MAX, id);
    assert_int_equal(rct_id_parse(id, &g2, &c), 0);
    assert_int_equal(c, UINT32_MAX);
    /* Upper-case hex is the same ID. */
    assert_int_equal(
        rct_id_parse("rctX:5BFDE23B:CE75:4303:B54F:6C18394F105C:0000002A",
                     &g2, &c), 0);
    assert_true(tm_guid_equal(&g, &g2));

    assert_int_equal(rct_id_parse(NULL, &g2, &c), TM_E_RCT_INVALID_ID);
    assert_int_equal(rct_id_parse("", &g2, &c), TM_E_RCT_INVALID_ID);
    assert_int_equal(rct_id_parse("rctX:", &g2, &c), TM_E_RCT_INVALID_ID);
    snprintf(bad, sizeof(bad), "%s ", want);
    assert_int_equal(rct_id_parse(bad, &g2, &c), TM_E_RCT_INVALID_ID);
    snprintf(bad, sizeof(bad), "%s0", want);
    assert_int_equal(rct_id_parse(bad, &g2, &c), TM_E_RCT_INVALID_ID);
    snprintf(bad, sizeof(bad), "%.49s", want);
    assert_int_equal(rct_id_parse(bad, &g2, &c), TM_E_RCT_INVALID_ID);
    snprintf(bad, sizeof(bad), "RCTX%s", want + 4);
    assert_int_equal(rct_id_parse(bad, &g2, &c), TM_E_RCT_INVALID_ID);
    snprintf(bad, sizeof(bad), "%s", want);
    bad[13] = '-';
    assert_int_equal(rct_id_parse(bad, &g2, &c), TM_E_RCT_INVALID_ID);
    snprintf(bad, sizeof(bad), "%s", want);
    bad[45] = 'g';
    assert_int_equal(rct_id_parse(bad, &g2, &c), TM_E_RCT_INVALID_ID);
    snprintf(bad, sizeof(bad), "%s", want);
    bad[41] = '0';
    assert_int_equal(rct_id_parse(bad, &g2, &c), TM_E_RCT_INVALID_ID);
    snprintf(bad, sizeof(bad), "%s", want);
    bad[6] = ' ';
    assert_int_equal(rct_id_parse(bad, &g2, &c), TM_E_RCT_INVALID_ID);
}

/* ---- engine ------------------------------------------------------------------ */

static void
mark_seal_query_basics(void **state)
{
    struct disk d;
    struct tm_range r[8];
    char id1[TM_RCT_ID_MAX + 1], id2[TM_RCT_ID_MAX + 1];
    char cur[TM_RCT_ID_MAX + 1];
    struct tm_guid lin;
    uint32_t c;
    bool newer;
    size_t n;

    disk_create(&d, 100 * MiB, 0, 0);
    assert_int_equal(tm_rct_state(d.t, cur, &newer), 0);
    assert_string_equal(cur, "");
    assert_false(newer);
    assert_int_equal(tm_rct_mark(d.t, 0, 0), 0);          /* no-op */
    assert_int_equal(tm_rct_mark(d.t, 100 * MiB, 1), TM_E_RANGE);
    assert_int_equal(tm_rct_mark(d.t, 100 * MiB - 1, 2), TM_E_RANGE);
    assert_int_equal(tm_rct_mark(d.t, UINT64_MAX, 2), TM_E_RANGE);
    assert_int_equal(tm_rct_mark(d.t, 10, 1), 0);
    assert_int_equal(tm_rct_state(d.t, cur, &newer), 0);
    assert_true(newer);
    assert_int_equal(tm_rct_seal(d.t, id1), 0);
    assert_int_equal(rct_id_parse(id1, &lin, &c), 0);
    assert_int_equal(c, 1);
    assert_int_equal(tm_rct_state(d.t, cur, &newer), 0);
    assert_string_equal(cur, id1);
    assert_false(newer);

    n = query_all(d.t, id1, r, 8);
    assert_int_equal(n, 0);
    /* Partial granules count whole; adjacent marks merge. */
    assert_int_equal(tm_rct_mark(d.t, 64 * KiB + 1, 1), 0);
    assert_int_equal(tm_rct_mark(d.t, 128 * KiB, 64 * KiB), 0);
    assert_int_equal(tm_rct_mark(d.t, 1 * MiB, 1), 0);
    n = query_all(d.t, id1, r, 8);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].off, 64 * KiB);
    assert_int_equal(r[0].len, 128 * KiB);
    assert_int_equal(r[1].off, 1 * MiB);
    assert_int_equal(r[1].len, 64 * KiB);
    assert_int_equal(tm_rct_seal(d.t, id2), 0);
    assert_int_equal(tm_rct_mark(d.t, 50 * MiB, 1), 0);
    n = query_all(d.t, id2, r, 8);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].off, 50 * MiB);
    /* until id2: a superset, so the later write may appear, the earlier
     * ones must. */
    {
        uint64_t processed;

        n = 8;
        assert_int_equal(tm_rct_query(d.t, id1, id2, 0, 100 * MiB, r, &n,
                                      &processed), 0);
        assert_true(n >= 2);
        assert_int_equal(r[0].off, 64 * KiB);
        assert_int_equal(processed, 100 * MiB);
        n = 8;
        assert_int_equal(tm_rct_query(d.t, id2, id1, 0, 100 * MiB, r, &n,
                                      &processed), TM_E_INVALID);
        n = 0;
        assert_int_equal(tm_rct_query(d.t, id2, NULL, 0, 100 * MiB, r, &n,
                                      &processed), TM_E_INVALID);
    }
    /* IDs not issued, other disks. */
    {
        char bad[TM_RCT_ID_MAX + 1];
        struct tm_guid other;

        rct_id_format(&lin, 3, bad);
        assert_int_equal(query_rc(d.t, bad), TM_E_RCT_INVALID_ID);
        assert_err(query_rc(d.t, bad), tm_rct_err(d.t), TM_E_RCT_INVALID_ID,
                   "'rctX:");
        rct_id_format(&lin, 0, bad);
        assert_int_equal(query_rc(d.t, bad), TM_E_RCT_INVALID_ID);
        memset(other.b, 0x77, 16);
        rct_id_format(&other, 1, bad);
        assert_int_equal(query_rc(d.t, bad), TM_E_RCT_OTHER_DISK);
        assert_int_equal(query_rc(d.t, "junk"), TM_E_RCT_INVALID_ID);
    }
    disk_destroy(&d);
}

static void
paging_edge_cases(void **state)
{
    const uint64_t vs = 10 * MiB + 3000;        /* last granule short */
    struct disk d;
    struct tm_range r[4];
    char id[TM_RCT_ID_MAX + 1];
    uint64_t processed, pos;
    size_t n, total = 0;

    disk_create(&d, vs, 64 * KiB, 1 * MiB);
    assert_int_equal(tm_rct_seal(d.t, id), 0);
    for (uint64_t g = 0; g < 10; g++)
        assert_int_equal(tm_rct_mark(d.t, g * 3 * 64 * KiB, 1), 0);
    assert_int_equal(tm_rct_mark(d.t, vs - 1, 1), 0);   /* last granule */

    /* Capacity 1, going on from off + processed: every range once. */
    pos = 5;
    while (pos < vs) {
        n = 1;
        assert_int_equal(tm_rct_query(d.t, id, NULL, pos, vs - pos, r, &n,
                                      &processed), 0);
        assert_true(processed > 0 && processed <= vs - pos);
        if (n == 1) {
            assert_int_equal(r[0].off + r[0].len, pos + processed);
            if (total == 0)
                assert_int_equal(r[0].off, 5);         /* clipped start */
            total++;
        } else {
            assert_int_equal(processed, vs - pos);
        }
        pos += processed;
    }
    assert_int_equal(total, 11);

    /* A span not granule aligned, both ends clipped. */
    n = 4;
    assert_int_equal(tm_rct_query(d.t, id, NULL, 100, 64 * KiB, r, &n,
                                  &processed), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].off, 100);
    assert_int_equal(r[0].len, 64 * KiB - 100);
    assert_int_equal(processed, 64 * KiB);

    /* The end of the disk: the last range ends at the virtual size. */
    n = 4;
    assert_int_equal(tm_rct_query(d.t, id, NULL, 10 * MiB, 1 * GiB, r, &n,
                                  &processed), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].off, 10 * MiB);
    assert_int_equal(r[0].len, 3000);
    assert_int_equal(processed, 1 * GiB);
    /* A full array at the end reports up to the end of its last range. */
    n = 1;
    assert_int_equal(tm_rct_query(d.t, id, NULL, 10 * MiB, 1 * GiB, r, &n,
                                  &processed), 0);
    assert_int_equal(n, 1);
    assert_int_equal(processed, 3000);
    /* Past the end: nothing, the whole span processed. */
    n = 4;
    assert_int_equal(tm_rct_query(d.t, id, NULL, vs + 5, 100, r, &n,
                                  &processed), 0);
    assert_int_equal(n, 0);
    assert_int_equal(processed, 100);
    disk_destroy(&d);
}

static void
persist_and_reopen_clean(void **state)
{
    struct disk d;
    struct tm_range r[8], r2[8];
    char id1[TM_RCT_ID_MAX + 1], id2[TM_RCT_ID_MAX + 1];
    char cur[TM_RCT_ID_MAX + 1];
    struct tm_rct_info info;
    bool newer;
    size_t n, n2;

    disk_create(&d, 1 * GiB, 0, 0);
    assert_int_equal(tm_rct_mark(d.t, 5 * MiB, 3 * MiB), 0);
    assert_int_equal(tm_rct_seal(d.t, id1), 0);
    assert_int_equal(tm_rct_mark(d.t, 100 * MiB, 1), 0);
    assert_int_equal(tm_rct_persist(d.t, &d.b, true), 0);
    assert_int_equal(tm_rct_mark(d.t, 200 * MiB, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, id2), 0);
    assert_int_equal(tm_rct_mark(d.t, 300 * MiB, 1), 0);
    n = query_all(d.t, id1, r, 8);
    disk_close(&d);

    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_CLEAN);
    n2 = query_all(d.t, id1, r2, 8);
    assert_int_equal(n, n2);
    assert_int_equal(n, 3);
    assert_memory_equal(r, r2, n * sizeof(r[0]));
    n2 = query_all(d.t, id2, r2, 8);
    assert_int_equal(n2, 1);
    assert_int_equal(r2[0].off, 300 * MiB);
    assert_int_equal(tm_rct_state(d.t, cur, &newer), 0);
    assert_string_equal(cur, id2);
    assert_true(newer);
    assert_int_equal(tm_rct_get_info(d.t, &info), 0);
    assert_int_equal(info.sealed, 2);
    assert_int_equal(info.granularity, 64 * KiB);
    assert_int_equal(info.region, 1 * GiB);
    /* Many persists: bodies alternate, the file stays small. */
    for (int i = 0; i < 20; i++) {
        uint64_t size;

        assert_int_equal(tm_rct_mark(d.t, (uint64_t)i * 7 * MiB, 1), 0);
        assert_int_equal(tm_rct_persist(d.t, &d.b, i & 1), 0);
        assert_int_equal(tm_io_size(d.rm, &size), 0);
        assert_true(size <= 8192 + 3 * 4096);
    }
    disk_close(&d);
    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_CLEAN);
    disk_destroy(&d);
}

static void
reset_reasons(void **state)
{
    struct disk d;
    char id[TM_RCT_ID_MAX + 1];
    struct tm_rct_binding other;
    struct tm_rct_info i1, i2;
    struct tm_range r[4];

    disk_create(&d, 1 * GiB, 0, 0);
    assert_int_equal(tm_rct_mark(d.t, 0, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, id), 0);
    assert_int_equal(tm_rct_get_info(d.t, &i1), 0);
    disk_close(&d);

    /* Another DataWriteGuid: a foreign write. */
    other = binding(0x5a, 1 * GiB);
    assert_int_equal(disk_reopen_with(&d, &other), TM_RCT_RESET_FOREIGN_WRITE);
    assert_int_equal(tm_rct_get_info(d.t, &i2), 0);
    assert_false(tm_guid_equal(&i1.lineage, &i2.lineage));
    assert_int_equal(i2.sealed, 0);
    assert_err(query_rc(d.t, id), tm_rct_err(d.t), TM_E_RCT_RESET, "'rctX:");
    assert_msg_has(tm_rct_err(d.t), "DataWriteGuid");
    /* The new lineage works, and the reset survives a reopen. */
    assert_int_equal(tm_rct_mark(d.t, 0, 1), 0);
    assert_int_equal(tm_rct_close(d.t, &other), 0);
    assert_int_equal(disk_reopen_with(&d, &other), TM_RCT_CLEAN);
    assert_int_equal(query_rc(d.t, id), TM_E_RCT_RESET);
    (void)r;
    disk_destroy(&d);
}

/* The GUID a writer announces before renewing the disk's: after a crash
 * either the old or the announced one is the disk's own; a third is a
 * foreign write.  A clean persist forgets the announcement. */
static void
pending_guid_covers_the_renewal(void **state)
{
    struct disk d;
    char id[TM_RCT_ID_MAX + 1];
    struct tm_rct_binding ann, now, other;
    uint8_t tag[3] = { 0xa5, 0x3c, 0x77 };

    for (int k = 0; k < 3; k++) {
        disk_create(&d, 1 * GiB, 0, 0);
        assert_int_equal(tm_rct_seal(d.t, id), 0);
        ann = d.b;
        memset(ann.pending_guid.b, 0x3c, 16);
        /* Announcing needs OPEN. */
        assert_int_equal(tm_rct_persist(d.t, &ann, false), TM_E_INVALID);
        assert_int_equal(tm_rct_persist(d.t, &ann, true), 0);
        assert_int_equal(tm_rct_mark(d.t, 5 * MiB, 1), 0);
        tm_rct_free(d.t);               /* the crash */
        d.t = NULL;
        now = binding(tag[k], 1 * GiB);
        if (k < 2) {
            assert_int_equal(disk_reopen_with(&d, &now), TM_RCT_RECOVERED);
            assert_int_equal(query_rc(d.t, id), 0);
            /* Closed with the GUID found: the announcement is gone, and
             * the old GUID is foreign from now on. */
            assert_int_equal(tm_rct_close(d.t, &now), 0);
            other = binding(k == 0 ? 0x3c : 0xa5, 1 * GiB);
            assert_int_equal(disk_reopen_with(&d, &other),
                             TM_RCT_RESET_FOREIGN_WRITE);
        } else {
            assert_int_equal(disk_reopen_with(&d, &now),
                             TM_RCT_RESET_FOREIGN_WRITE);
            assert_int_equal(query_rc(d.t, id), TM_E_RCT_RESET);
        }
        disk_destroy(&d);
    }
}

/* Turning tracking off and on again, and a reset at open while off. */
static void
disable_and_reset(void **state)
{
    struct disk d;
    char id[TM_RCT_ID_MAX + 1], id2[TM_RCT_ID_MAX + 1];
    struct tm_rct_binding other, big;
    struct tm_rct_params p = { .granularity = 4 * KiB };
    struct tm_rct_info info;
    struct tm_range r[4];
    size_t n = 4;
    uint64_t done;

    disk_create(&d, 1 * GiB, 0, 0);
    assert_int_equal(tm_rct_mark(d.t, 0, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, id), 0);
    assert_int_equal(tm_rct_disable(d.t), 0);
    assert_int_equal(tm_rct_get_info(d.t, &info), 0);
    assert_true(info.disabled);
    assert_int_equal(tm_rct_query(d.t, id, NULL, 0, 1 * GiB, r, &n, &done),
                     TM_E_RCT_DISABLED);
    disk_close(&d);

    /* Written while off (another DataWriteGuid): a reset that stays off,
     * and stays so across a clean reopen. */
    other = binding(0x77, 1 * GiB);
    assert_int_equal(disk_reopen_with(&d, &other), TM_RCT_RESET_FOREIGN_WRITE);
    assert_int_equal(tm_rct_get_info(d.t, &info), 0);
    assert_true(info.disabled);
    assert_int_equal(query_rc(d.t, id), TM_E_RCT_DISABLED);
    assert_int_equal(tm_rct_close(d.t, &other), 0);
    assert_int_equal(disk_reopen_with(&d, &other), TM_RCT_CLEAN);
    assert_int_equal(tm_rct_get_info(d.t, &info), 0);
    assert_true(info.disabled);

    /* On again, with another granularity: a new lineage. */
    assert_int_equal(tm_rct_reset(d.t, &other, TM_RCT_RESET_RESTARTED, &p),
                     0);
    assert_int_equal(tm_rct_get_info(d.t, &info), 0);
    assert_false(info.disabled);
    assert_int_equal(info.granularity, 4 * KiB);
    assert_int_equal(tm_rct_mark(d.t, 8 * KiB, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, id2), 0);
    assert_int_equal(tm_rct_mark(d.t, 64 * KiB, 1), 0);
    n = 4;
    assert_int_equal(tm_rct_query(d.t, id2, NULL, 0, 1 * GiB, r, &n, &done),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].off, 64 * KiB);
    assert_int_equal(r[0].len, 4 * KiB);
    /* The lineage of 'id' ended twice: still "reset". */
    assert_err(query_rc(d.t, id), tm_rct_err(d.t), TM_E_RCT_RESET, "'rctX:");
    assert_int_equal(tm_rct_close(d.t, &other), 0);

    /* A reset to another size makes the map anew; a bad reason or a bad
     * granularity changes nothing. */
    assert_int_equal(disk_reopen_with(&d, &other), TM_RCT_CLEAN);
    big = binding(0x77, 3 * GiB);
    assert_int_equal(tm_rct_reset(d.t, &big, 0, NULL), TM_E_INVALID);
    p.granularity = 3000;
    assert_int_equal(tm_rct_reset(d.t, &big, TM_RCT_RESET_RESIZED, &p),
                     TM_E_INVALID);
    assert_int_equal(query_rc(d.t, id2), 0);
    assert_int_equal(tm_rct_reset(d.t, &big, TM_RCT_RESET_RESIZED, NULL), 0);
    assert_err(query_rc(d.t, id2), tm_rct_err(d.t), TM_E_RCT_RESET, "'rctX:");
    assert_msg_has(tm_rct_err(d.t), "resized");
    assert_int_equal(tm_rct_mark(d.t, 2 * GiB + 5, 1), 0);
    assert_int_equal(tm_rct_close(d.t, &big), 0);
    assert_int_equal(disk_reopen_with(&d, &big), TM_RCT_CLEAN);
    assert_int_equal(tm_rct_get_info(d.t, &info), 0);
    assert_int_equal(info.virtual_size, 3 * GiB);
    assert_int_equal(info.granularity, 4 * KiB);
    disk_destroy(&d);
}

static void
reset_reasons_more(void **state)
{
    struct disk d;
    char id[TM_RCT_ID_MAX + 1], id2[TM_RCT_ID_MAX + 1];
    struct tm_rct_binding big;
    uint8_t junk[4096];

    disk_create(&d, 1 * GiB, 0, 0);
    assert_int_equal(tm_rct_seal(d.t, id), 0);
    disk_close(&d);
    /* The state survives: the reset was persisted. */
    big = binding(0xa5, 2 * GiB);
    assert_int_equal(disk_reopen_with(&d, &big), TM_RCT_RESET_RESIZED);
    assert_int_equal(query_rc(d.t, id), TM_E_RCT_RESET);
    assert_msg_has(tm_rct_err(d.t), "resized");
    assert_int_equal(tm_rct_seal(d.t, id2), 0);
    assert_int_equal(tm_rct_close(d.t, &big), 0);
    assert_int_equal(disk_reopen_with(&d, &big), TM_RCT_CLEAN);
    assert_int_equal(query_rc(d.t, id), TM_E_RCT_RESET);
    assert_int_equal(query_rc(d.t, id2), 0);
    assert_int_equal(tm_rct_close(d.t, &big), 0);

    /* Both .rct slots destroyed: corrupt. */
    memset(junk, 0xee, sizeof(junk));
    assert_int_equal(tm_io_pwrite_all(d.rm, junk, 4096, 0), 0);
    assert_int_equal(tm_io_pwrite_all(d.rm, junk, 4096, 4096), 0);
    assert_int_equal(disk_reopen_with(&d, &big), TM_RCT_RESET_CORRUPT);
    /* No valid header: the lineage is taken from the .mrt. */
    assert_int_equal(query_rc(d.t, id2), TM_E_RCT_RESET);
    assert_int_equal(tm_rct_seal(d.t, id), 0);
    assert_int_equal(tm_rct_close(d.t, &big), 0);

    /* A .mrt of another lineage: corrupt, old IDs "reset". */
    {
        struct disk e;

        disk_create(&e, 2 * GiB, 0, 0);
        disk_close(&e);
        {
            uint8_t m[4096];

            assert_int_equal(tm_io_pread_all(e.mm, m, 4096, 0), 0);
            assert_int_equal(tm_io_pwrite_all(d.mm, m, 4096, 0), 0);
        }
        disk_destroy(&e);
    }
    assert_int_equal(disk_reopen_with(&d, &big), TM_RCT_RESET_CORRUPT);
    assert_int_equal(query_rc(d.t, id), TM_E_RCT_RESET);
    assert_msg_has(tm_rct_err(d.t), "corrupt");
    assert_int_equal(tm_rct_close(d.t, &big), 0);

    /* The damaged current slot alone: the older one is used... but the
     * .mrt then names a newer .rct: reset, never the stale map. */
    assert_int_equal(disk_reopen_with(&d, &big), TM_RCT_CLEAN);
    assert_int_equal(tm_rct_seal(d.t, id), 0);
    assert_int_equal(tm_rct_close(d.t, &big), 0);
    {
        uint8_t s0[4096], s1[4096];

        assert_int_equal(tm_io_pread_all(d.rm, s0, 4096, 0), 0);
        assert_int_equal(tm_io_pread_all(d.rm, s1, 4096, 4096), 0);
        if (tm_le64(s0 + 16) > tm_le64(s1 + 16))
            assert_int_equal(tm_io_pwrite_all(d.rm, junk, 4096, 0), 0);
        else
            assert_int_equal(tm_io_pwrite_all(d.rm, junk, 4096, 4096), 0);
    }
    assert_int_equal(disk_reopen_with(&d, &big), TM_RCT_RESET_CORRUPT);
    assert_int_equal(query_rc(d.t, id), TM_E_RCT_RESET);
    disk_destroy(&d);
}

static void
unknown_version_is_left_alone(void **state)
{
    struct disk d;
    enum tm_rct_open_state st;
    struct tm_err err = { 0 };
    static uint8_t before[65536], after[65536];
    uint8_t slot[4096];
    uint64_t size;
    int rc;

    disk_create(&d, 1 * GiB, 0, 0);
    disk_close(&d);
    assert_int_equal(tm_io_pread_all(d.rm, slot, 4096, 0), 0);
    tm_put_le32(slot + 12, 2);
    fix_crc(slot, 4096, 8);
    assert_int_equal(tm_io_pwrite_all(d.rm, slot, 4096, 0), 0);
    assert_int_equal(tm_io_size(d.rm, &size), 0);
    assert_true(size <= sizeof(before));
    assert_int_equal(tm_io_pread_all(d.rm, before, size, 0), 0);
    rc = tm_rct_open(tm_io_borrow_new(d.rm), tm_io_borrow_new(d.mm), &d.b,
                     &d.t, &st, &err);
    assert_err(rc, &err, TM_E_UNSUPPORTED, "rct header: format version 2");
    assert_null(d.t);
    assert_int_equal(tm_io_pread_all(d.rm, after, size, 0), 0);
    assert_memory_equal(before, after, size);

    /* The same for the .mrt. */
    tm_put_le32(slot + 12, 1);
    fix_crc(slot, 4096, 8);
    assert_int_equal(tm_io_pwrite_all(d.rm, slot, 4096, 0), 0);
    assert_int_equal(tm_io_pread_all(d.mm, slot, 4096, 0), 0);
    tm_put_le32(slot + 12, 7);
    fix_crc(slot, 4096, 8);
    assert_int_equal(tm_io_pwrite_all(d.mm, slot, 4096, 0), 0);
    rc = tm_rct_open(tm_io_borrow_new(d.rm), tm_io_borrow_new(d.mm), &d.b,
                     &d.t, &st, &err);
    assert_err(rc, &err, TM_E_UNSUPPORTED, "mrt header: format version 7");
    disk_destroy(&d);
}

static void
recovery_reports_marked_regions(void **state)
{
    struct disk d;
    char id1[TM_RCT_ID_MAX + 1], cur[TM_RCT_ID_MAX + 1];
    struct tm_range r[8];
    bool newer;
    size_t n;

    disk_create(&d, 10 * GiB + 5, 64 * KiB, 1 * GiB);
    assert_int_equal(tm_rct_mark(d.t, 0, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, id1), 0);
    assert_int_equal(tm_rct_persist(d.t, &d.b, true), 0);
    assert_int_equal(tm_rct_mark(d.t, 3 * GiB + 5, 1), 0);
    assert_int_equal(tm_rct_mark(d.t, 10 * GiB, 5), 0); /* last region */
    tm_rct_free(d.t);                                   /* a crash */

    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_RECOVERED);
    n = query_all(d.t, id1, r, 8);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].off, 3 * GiB);
    assert_int_equal(r[0].len, 1 * GiB);
    assert_int_equal(r[1].off, 10 * GiB);
    assert_int_equal(r[1].len, 5);
    assert_int_equal(tm_rct_state(d.t, cur, &newer), 0);
    assert_string_equal(cur, id1);
    assert_true(newer);
    /* A second crash before any persist keeps the marks. */
    assert_int_equal(tm_rct_mark(d.t, 5 * GiB, 1), 0);
    tm_rct_free(d.t);
    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_RECOVERED);
    n = query_all(d.t, id1, r, 8);
    assert_int_equal(n, 3);
    disk_close(&d);
    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_CLEAN);
    assert_int_equal(query_all(d.t, id1, r, 8), 3);

    /* A torn bitmap sector counts as all ones. */
    assert_int_equal(tm_rct_persist(d.t, &d.b, false), 0);
    tm_rct_free(d.t);
    {
        uint8_t junk[4096];

        memset(junk, 0x33, sizeof(junk));
        assert_int_equal(tm_io_pwrite_all(d.mm, junk, 4096, 4096), 0);
    }
    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_RECOVERED);
    n = query_all(d.t, id1, r, 8);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].off, 0);
    assert_int_equal(r[0].len, 10 * GiB + 5);
    disk_destroy(&d);
}

static void
counter_never_reused_after_crash(void **state)
{
    struct disk d;
    char id[4][TM_RCT_ID_MAX + 1], again[TM_RCT_ID_MAX + 1];
    struct tm_range r[8];
    struct tm_guid lin;
    uint32_t c;
    size_t n;

    disk_create(&d, 4 * GiB, 64 * KiB, 1 * GiB);
    assert_int_equal(tm_rct_seal(d.t, id[0]), 0);
    assert_int_equal(tm_rct_persist(d.t, &d.b, true), 0);
    assert_int_equal(tm_rct_mark(d.t, 1 * GiB, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, id[1]), 0);
    assert_int_equal(tm_rct_mark(d.t, 2 * GiB, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, id[2]), 0);
    assert_int_equal(tm_rct_mark(d.t, 3 * GiB, 1), 0);
    tm_rct_free(d.t);

    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_RECOVERED);
    assert_int_equal(tm_rct_seal(d.t, again), 0);
    assert_int_equal(rct_id_parse(again, &lin, &c), 0);
    assert_int_equal(c, 4);
    /* The lost IDs answer with a superset of their changes. */
    for (int i = 1; i <= 2; i++) {
        n = query_all(d.t, id[i], r, 8);
        assert_int_equal(n, 1);
        assert_int_equal(r[0].off, 1 * GiB);
        assert_int_equal(r[0].len, 3 * GiB);
    }
    assert_int_equal(query_all(d.t, again, r, 8), 0);
    /* And after a clean close, the same. */
    disk_close(&d);
    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_CLEAN);
    assert_int_equal(query_all(d.t, id[2], r, 8), 1);
    assert_int_equal(tm_rct_seal(d.t, id[3]), 0);
    assert_int_equal(rct_id_parse(id[3], &lin, &c), 0);
    assert_int_equal(c, 5);
    disk_destroy(&d);
}

static void
renumbering_past_65535_epochs(void **state)
{
    struct disk d;
    char first[TM_RCT_ID_MAX + 1], mid[TM_RCT_ID_MAX + 1];
    char id[TM_RCT_ID_MAX + 1], last[TM_RCT_ID_MAX + 1];
    struct tm_range r[8];
    struct tm_rct_info info;
    size_t n;

    disk_create(&d, 64 * MiB, 64 * KiB, 1 * MiB);
    assert_int_equal(tm_rct_mark(d.t, 0, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, first), 0);
    assert_int_equal(tm_rct_mark(d.t, 1 * MiB, 1), 0);
    for (uint32_t i = 2; i <= 70000; i++) {
        assert_int_equal(tm_rct_seal(d.t, id), 0);
        if (i == 60000) {
            memcpy(mid, id, sizeof(id));
            assert_int_equal(tm_rct_mark(d.t, 2 * MiB, 1), 0);
        }
    }
    assert_int_equal(tm_rct_mark(d.t, 3 * MiB, 1), 0);
    assert_int_equal(tm_rct_seal(d.t, last), 0);
    assert_int_equal(tm_rct_get_info(d.t, &info), 0);
    assert_true(info.sealed >= 32767 && info.sealed < 70001);
    assert_int_equal(query_rc(d.t, first), TM_E_RCT_MISSING);
    n = query_all(d.t, mid, r, 8);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].off, 2 * MiB);
    assert_int_equal(r[1].off, 3 * MiB);
    assert_int_equal(query_all(d.t, last, r, 8), 0);
    disk_close(&d);
    assert_int_equal(disk_reopen_with(&d, &d.b), TM_RCT_CLEAN);
    assert_int_equal(query_all(d.t, mid, r, 8), 2);
    assert_int_equal(query_rc(d.t, first), TM_E_RCT_MISSING);
    disk_destroy(&d);
}

static void
memory_of_a_tebibyte(void **state)
{
    struct disk d;
    struct tm_rct_info info;

    disk_create(&d, 1 * TiB, 0, 0);
    assert_int_equal(tm_rct_get_info(d.t, &info), 0);
    assert_true(info.memory <= 32 * MiB + 64 * KiB);
    assert_true(info.memory >= 32 * MiB);
    disk_destroy(&d);
}

/* 1 TiB at 64 KiB granules, a million scattered extents: a full query
 * must take well under a second (1 s is the target; the assertion allows
 * sanitizer builds 10). */
static void
query_speed_on_a_tebibyte(void **state)
{
    struct disk d;
    char id[TM_RCT_ID_MAX + 1], id2[TM_RCT_ID_MAX + 1];
    struct tm_range *r = malloc(1100000 * sizeof(*r));
    uint64_t x = 88172645463325252ull, processed;
    double t0, t1, t2;
    size_t n;

    assert_non_null(r);
    disk_create(&d, 1 * TiB, 0, 0);
    assert_int_equal(tm_rct_seal(d.t, id), 0);
    t0 = now_s();
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        assert_int_equal(tm_rct_mark(d.t, x % (1 * TiB - 1 * MiB),
                                     4096 + x % (200 * KiB)), 0);
    }
    t1 = now_s();
    assert_int_equal(tm_rct_seal(d.t, id2), 0);
    n = 1100000;
    assert_int_equal(tm_rct_query(d.t, id, NULL, 0, 1 * TiB, r, &n,
                                  &processed), 0);
    t2 = now_s();
    print_message("1 TiB: 1M marks %.3f s (%.0f ns each, %" PRIu64
                  " regions), query %.3f s, %zu ranges\n", t1 - t0,
                  (t1 - t0) * 1e3, (uint64_t)1024, t2 - t1, n);
    assert_true(n > 500000);
    assert_true(t2 - t1 < 10.0);
    t1 = now_s();
    n = 1100000;
    assert_int_equal(tm_rct_query(d.t, id2, NULL, 0, 1 * TiB, r, &n,
                                  &processed), 0);
    t2 = now_s();
    print_message("1 TiB: query with nothing newer %.3f s\n", t2 - t1);
    assert_int_equal(n, 0);
    t1 = now_s();
    assert_int_equal(tm_rct_persist(d.t, &d.b, false), 0);
    t2 = now_s();
    print_message("1 TiB: persist %.3f s\n", t2 - t1);
    disk_destroy(&d);
    free(r);
}

static void
bad_arguments(void **state)
{
    struct tm_rct *t;
    struct tm_err err = { 0 };
    struct tm_rct_binding b = binding(1, 1 * GiB);
    struct tm_rct_params p = { .granularity = 3000 };
    int rc;

    rc = tm_rct_create(tm_io_mem_new(), tm_io_mem_new(), &p, &b, &t, &err);
    assert_err(rc, &err, TM_E_INVALID, "granularity 3000");
    p = (struct tm_rct_params){ .granularity = 1 * MiB, .region = 64 * KiB };
    rc = tm_rct_create(tm_io_mem_new(), tm_io_mem_new(), &p, &b, &t, &err);
    assert_err(rc, &err, TM_E_INVALID, "region size 65536");
    b.virtual_size = 0;
    rc = tm_rct_create(tm_io_mem_new(), tm_io_mem_new(), NULL, &b, &t, &err);
    assert_err(rc, &err, TM_E_INVALID, "virtual size 0");
    assert_int_equal(tm_rct_close(NULL, NULL), 0);
    tm_rct_free(NULL);
}

static void
write_failure_poisons(void **state)
{
    struct tm_io *rm = tm_io_mem_new(), *mm = tm_io_mem_new();
    struct tm_io *fm = tm_io_fault_new(mm, &(struct tm_fault){
        .ops = TM_IO_FLUSH, .after = 2, .action = TM_FAULT_ERROR });
    struct tm_rct_binding b = binding(1, 1 * GiB);
    char id[TM_RCT_ID_MAX + 1];
    struct tm_err err = { 0 };
    struct tm_rct *t;

    /* Flush 1: create's .mrt; flush 2: the mark. */
    assert_int_equal(tm_rct_create(tm_io_borrow_new(rm), fm, NULL, &b, &t,
                                   &err), 0);
    assert_int_equal(tm_rct_mark(t, 0, 1), -EIO);
    assert_err(tm_rct_seal(t, id), tm_rct_err(t), TM_E_POISONED,
               "an earlier write failed");
    assert_int_equal(tm_rct_close(t, &b), TM_E_POISONED);
    tm_io_close(rm);
    tm_io_close(mm);
}

/* ---- seed corpus for sidecar_fuzz.c ------------------------------------ */

/* The fuzzer's fixed binding (sidecar_fuzz.c has the same). */
static struct tm_rct_binding
fuzz_binding(void)
{
    struct tm_rct_binding b = { .virtual_size = 8 * MiB + 5 * KiB };

    for (int i = 0; i < 16; i++)
        b.data_write_guid.b[i] = (uint8_t)(i + 1);
    return b;
}

static void
dump_pair(const char *dir, const char *name, struct tm_io *rm,
          struct tm_io *mm)
{
    uint64_t rs, ms;
    uint8_t *buf;
    char path[512];
    FILE *f;

    assert_int_equal(tm_io_size(rm, &rs), 0);
    assert_int_equal(tm_io_size(mm, &ms), 0);
    buf = malloc(4 + rs + ms);
    assert_non_null(buf);
    tm_put_le32(buf, (uint32_t)rs);
    assert_int_equal(tm_io_pread_all(rm, buf + 4, rs, 0), 0);
    assert_int_equal(tm_io_pread_all(mm, buf + 4 + rs, ms, 0), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, 4 + rs + ms, f), 4 + rs + ms);
    fclose(f);
    free(buf);
}

static void
write_seed_corpus(void **state)
{
    const char *dir = getenv("TM_RCT_WRITE_CORPUS");
    struct tm_rct_binding b = fuzz_binding();
    struct tm_rct_params p = { .granularity = 4096, .region = 1 * MiB };
    struct tm_io *rm, *mm;
    char id[TM_RCT_ID_MAX + 1];
    struct tm_err err = { 0 };
    struct tm_rct *t;

    if (dir == NULL)
        skip();
    rm = tm_io_mem_new();
    mm = tm_io_mem_new();
    assert_int_equal(tm_rct_create(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                   &p, &b, &t, &err), 0);
    dump_pair(dir, "fresh", rm, mm);
    assert_int_equal(tm_rct_mark(t, 0, 10000), 0);
    assert_int_equal(tm_rct_seal(t, id), 0);
    assert_int_equal(tm_rct_mark(t, 3 * MiB, 70000), 0);
    assert_int_equal(tm_rct_seal(t, id), 0);
    assert_int_equal(tm_rct_mark(t, 8 * MiB, 5 * KiB), 0);
    assert_int_equal(tm_rct_persist(t, &b, true), 0);
    dump_pair(dir, "open_persisted", rm, mm);
    assert_int_equal(tm_rct_mark(t, 5 * MiB, 1), 0);
    assert_int_equal(tm_rct_seal(t, id), 0);
    dump_pair(dir, "crashed", rm, mm);
    assert_int_equal(tm_rct_close(t, &b), 0);
    dump_pair(dir, "clean", rm, mm);
    tm_io_close(rm);
    tm_io_close(mm);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trip),
        cmocka_unit_test(header_validation_errors),
        cmocka_unit_test(body_round_trip),
        cmocka_unit_test(body_validation_errors),
        cmocka_unit_test(mrt_round_trip_and_errors),
        cmocka_unit_test(id_format_and_parse),
        cmocka_unit_test(mark_seal_query_basics),
        cmocka_unit_test(paging_edge_cases),
        cmocka_unit_test(persist_and_reopen_clean),
        cmocka_unit_test(reset_reasons),
        cmocka_unit_test(reset_reasons_more),
        cmocka_unit_test(disable_and_reset),
        cmocka_unit_test(pending_guid_covers_the_renewal),
        cmocka_unit_test(unknown_version_is_left_alone),
        cmocka_unit_test(recovery_reports_marked_regions),
        cmocka_unit_test(counter_never_reused_after_crash),
        cmocka_unit_test(renumbering_past_65535_epochs),
        cmocka_unit_test(memory_of_a_tebibyte),
        cmocka_unit_test(query_speed_on_a_tebibyte),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(write_failure_poisons),
        cmocka_unit_test(write_seed_corpus),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
