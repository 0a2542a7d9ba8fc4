/* SPDX-License-Identifier: MIT */
/* crash_vdisk_test.c - power cuts, torn writes and single I/O errors at
 * every counted operation (write, flush, truncate, allocate, punch) of a
 * tracked virtual disk used through lib/vdisk: open, the first write that
 * binds the tracking to the disk's new DataWriteGuid, random writes (sub-
 * sector, sub-granule, across granules, regions and blocks), discards,
 * seals, flushes, tm_vdisk_persist_tracking, a clean close and reopen in
 * the middle, and the final close.  The .vhdx and both sidecars are
 * fault wrappers in ONE fault domain (vdisk_wrap with sidecar ops that
 * hand out members of it), so one cut hits all three files at the same
 * instant.
 *
 * The disk starts each run with history: IDs sealed in earlier opens,
 * with the shadow state of the disk at each.  After the fault, the files
 * hold what survived; the disk is opened read-only (which must write
 * nothing) and read-write, and:
 *  - it opens, and every logical sector no write touched since the last
 *    completed flush reads what it held then (acknowledged, flushed data
 *    survives);
 *  - for every ID sealed before the fault, a query covers every byte
 *    that differs between the shadow at that ID and what the disk reads
 *    now; never a missed byte, never an error: the design allows a reset
 *    answer (DESIGN.md invariant 2), but no fault of ours needs one, as
 *    the .rct announces the DataWriteGuid a bind is about to give the
 *    disk (DESIGN.md invariants 1 and 2);
 *  - a seal after recovery gives an ID never handed out before, and a
 *    clean close then reopen keeps the answers.
 *
 * Geometry A makes its sidecars through lib/rct with 256 KiB regions, so
 * recovery after a cut has regions to tell apart (vdisk keeps the region
 * size it finds); geometry B enables tracking through the vdisk API (the
 * default 1 GiB region: after a crash everything written since the last
 * persist counts as changed) on a disk with 4096-byte sectors.
 *
 * TM_CRASH_STRIDE=N runs every Nth point only (CI under ASan: 5). */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "crash_util.h"
#include "vhdx_testutil.h"

#include "io.h"
#include "rct.h"
#include "vdisk_int.h"
#include "vhdx.h"
#include "vdisk_files.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define COUNTED (TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE | TM_IO_ALLOCATE | \
                 TM_IO_PUNCH)
#define CHANGES (TM_IO_WRITE | TM_IO_TRUNCATE | TM_IO_ALLOCATE | TM_IO_PUNCH)
#define MAXIDS 64
#define ID_LEN (TM_VDISK_RCT_ID_MAX + 1)

struct geo {
    const char *name;
    uint64_t vsize;
    uint32_t lss;               /* logical sector */
    uint32_t block;             /* VHDX block size */
    uint32_t gran;
    uint64_t region;            /* 0: enable through vdisk (1 GiB) */
    uint64_t wseed;
    unsigned nops;
};

static const struct geo geo_a = {
    "4 MiB + 1536, 512-byte sectors, 4 KiB granules, 256 KiB regions",
    4 * MiB + 1536, 512, 1 << 20, 4 * KiB, 256 * KiB, 0xfeed1, 70,
};
static const struct geo geo_b = {
    "6 MiB + 8 KiB, 4096-byte sectors, 64 KiB granules, 1 GiB region",
    6 * MiB + 8 * KiB, 4096, 2 << 20, 64 * KiB, 0, 0xfeed2, 60,
};

struct sealed {
    char id[ID_LEN];
    uint8_t *snap;
    uint32_t epoch;             /* the model's epoch it closed */
    bool shared;                /* the base's snapshot, not freed */
};

/* The caller's model of the disk. */
struct model {
    const struct geo *g;
    uint8_t *cur;               /* every acknowledged write applied */
    uint8_t *flushed;           /* as of the last completed flush */
    uint8_t *dirty;             /* per logical sector: maybe written since */
    /* Per granule, the epoch of its last write (attempted or done): a
     * granule whose epoch is not above an ID's is as it was then, unless
     * the disk lost or tore a write (what the check compares 'cur' with
     * what the disk reads catches). */
    uint32_t *lastw;
    uint32_t epoch;             /* 1 + the number of seals */
    struct sealed ids[MAXIDS];
    unsigned nids;
};

/* ---- model --------------------------------------------------------------- */

static uint64_t
granules(const struct geo *g)
{
    return (g->vsize + g->gran - 1) / g->gran;
}

static void
model_init(struct model *m, const struct geo *g)
{
    uint64_t ns = g->vsize / g->lss;

    memset(m, 0, sizeof(*m));
    m->g = g;
    m->cur = calloc(1, g->vsize);
    m->flushed = calloc(1, g->vsize);
    m->dirty = calloc(1, ns);
    m->lastw = calloc(granules(g), sizeof(*m->lastw));
    m->epoch = 1;
    assert_non_null(m->lastw);
    assert_non_null(m->cur);
    assert_non_null(m->flushed);
    assert_non_null(m->dirty);
}

static void
model_free(struct model *m)
{
    for (unsigned i = 0; i < m->nids; i++)
        if (!m->ids[i].shared)
            free(m->ids[i].snap);
    free(m->cur);
    free(m->flushed);
    free(m->dirty);
    free(m->lastw);
    memset(m, 0, sizeof(*m));
}

static void
model_copy(struct model *dst, const struct model *src)
{
    uint64_t vs = src->g->vsize;
    uint64_t ns = vs / src->g->lss;

    *dst = *src;
    dst->cur = malloc(vs);
    dst->flushed = malloc(vs);
    dst->dirty = malloc(ns);
    dst->lastw = malloc(granules(src->g) * sizeof(*dst->lastw));
    assert_non_null(dst->lastw);
    memcpy(dst->lastw, src->lastw, granules(src->g) * sizeof(*dst->lastw));
    assert_non_null(dst->cur);
    assert_non_null(dst->flushed);
    assert_non_null(dst->dirty);
    memcpy(dst->cur, src->cur, vs);
    memcpy(dst->flushed, src->flushed, vs);
    memcpy(dst->dirty, src->dirty, ns);
    for (unsigned i = 0; i < dst->nids; i++)
        dst->ids[i].shared = true;
}

/* Logical sectors [off, off + len) touches may hold new data. */
static void
model_touch(struct model *m, uint64_t off, uint64_t len)
{
    uint64_t lss = m->g->lss, gran = m->g->gran;

    if (len == 0)
        return;
    memset(m->dirty + off / lss, 1, (off + len - 1) / lss - off / lss + 1);
    for (uint64_t gi = off / gran; gi <= (off + len - 1) / gran; gi++)
        m->lastw[gi] = m->epoch;
}

/* A flush completed: what was written is durable. */
static void
model_flushed(struct model *m)
{
    uint64_t lss = m->g->lss, ns = m->g->vsize / lss;

    for (uint64_t s = 0; s < ns; s++)
        if (m->dirty[s]) {
            memcpy(m->flushed + s * lss, m->cur + s * lss, lss);
            m->dirty[s] = 0;
        }
}

static bool
id_known(const struct model *m, const char *id)
{
    for (unsigned i = 0; i < m->nids; i++)
        if (strcmp(m->ids[i].id, id) == 0)
            return true;
    return false;
}

/* A seal returned 'id': the data was flushed first. */
static void
model_sealed(struct model *m, const char *id)
{
    struct sealed *s;

    if (id_known(m, id))
        die("ID '%s' handed out twice", id);
    model_flushed(m);
    assert_true(m->nids < MAXIDS);
    s = &m->ids[m->nids++];
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->snap = malloc(m->g->vsize);
    assert_non_null(s->snap);
    memcpy(s->snap, m->cur, m->g->vsize);
    s->shared = false;
    s->epoch = m->epoch++;
}

/* The workload's data: varies by byte and by op (a window into a
 * pseudo-random table, shifted by op and offset; copying is faster than
 * computing every byte). */
#define PAT_LEN (64u << 10)
static uint8_t pat_table[2 * PAT_LEN];

static void
fill(uint8_t *buf, uint64_t len, unsigned op, uint64_t off)
{
    if (pat_table[0] == 0) {
        uint64_t st = 0x9e3779b97f4a7c15ull;

        for (size_t i = 0; i < sizeof(pat_table); i++)
            pat_table[i] = (uint8_t)(next_rand(&st) >> 56) | 1;
    }
    for (uint64_t k = 0; k < len;) {
        uint64_t at = (off + k + (uint64_t)op * 4099) % PAT_LEN;
        uint64_t n = len - k < PAT_LEN ? len - k : PAT_LEN;

        memcpy(buf + k, pat_table + at, n);
        k += n;
    }
}

/* ---- files and handles --------------------------------------------------- */

/* Opens the disk of 'r' as a vdisk handle; 0 or the error (detail in
 * 'why'). */
static int
open_on(struct reach *r, bool rdonly, struct tm_vdisk **out, char *why,
        size_t why_len)
{
    struct tm_err err;
    int rc = files_open(r, rdonly, out, &err);

    if (rc < 0)
        snprintf(why, why_len, "%s", err.msg);
    return rc;
}

static struct tm_vdisk *
open_or_die(struct reach *r, bool rdonly, const char *what)
{
    struct tm_vdisk *d;
    char why[700];
    int rc = open_on(r, rdonly, &d, why, sizeof(why));

    if (rc != 0)
        die("%s: cannot open: %d (%s)", what, rc, why);
    return d;
}

static enum tm_vdisk_tracking_open
found_of(struct tm_vdisk *d)
{
    struct tm_vdisk_info in = { .kind = TM_VDISK_INFO_CHANGE_TRACKING_STATE };

    if (tm_vdisk_get_info(d, &in) != 0)
        die("tracking state: %s", tm_vdisk_err(d)->msg);
    if (!in.change_tracking.enabled)
        die("tracking is off after the fault");
    return in.change_tracking.found;
}

/* Which granules differ between 'a' and 'b': one byte per granule. */
static uint8_t *
diff_map(const struct geo *g, const uint8_t *a, const uint8_t *b)
{
    uint64_t ng = (g->vsize + g->gran - 1) / g->gran;
    uint8_t *map = malloc(ng);

    assert_non_null(map);
    for (uint64_t i = 0; i < ng; i++) {
        uint64_t off = i * g->gran;
        uint64_t n = g->vsize - off < g->gran ? g->vsize - off : g->gran;

        map[i] = memcmp(a + off, b + off, n) != 0;
    }
    return map;
}

/* Granules that may differ between ID i's state and what the disk
 * reads: written since the seal (the model says), or where the disk
 * reads other than the model ('dcur', a diff_map; NULL: nowhere).  A
 * superset is enough: check_gap confirms with the bytes. */
static uint8_t *
id_map(const struct model *m, unsigned i, const uint8_t *dcur)
{
    uint64_t ng = granules(m->g);
    uint8_t *map = malloc(ng);

    assert_non_null(map);
    for (uint64_t k = 0; k < ng; k++)
        map[k] = (dcur != NULL && dcur[k]) ||
                 m->lastw[k] > m->ids[i].epoch;
    return map;
}

static void
missed(const struct sealed *s, const uint8_t *now, uint64_t a, uint64_t b,
       const char *when)
{
    uint64_t x = a;

    while (x < b && s->snap[x] == now[x])
        x++;
    if (x == b)
        return;
    die("%s: MISSED CHANGE since %s: byte %" PRIu64 " differs (0x%02x "
        "then, 0x%02x now) but is in no reported range", when, s->id, x,
        s->snap[x], now[x]);
}

/* [a, b) was not reported: nothing in it may differ ('map' says which
 * granules do; partial granules are compared byte by byte). */
static void
check_gap(const struct geo *g, const struct sealed *s, const uint8_t *now,
          const uint8_t *map, uint64_t a, uint64_t b, const char *when)
{
    uint64_t x = a;

    while (x < b) {
        uint64_t gi = x / g->gran, gend = (gi + 1) * g->gran;

        if (gend > g->vsize)
            gend = g->vsize;
        if (x == gi * g->gran && gend <= b) {
            if (map[gi])
                missed(s, now, x, gend, when);
            x = gend;
        } else {
            uint64_t e = gend < b ? gend : b;

            if (memcmp(s->snap + x, now + x, e - x) != 0)
                missed(s, now, x, e, when);
            x = e;
        }
    }
}

/* Queries 'id' over the whole disk with small and large pages and checks
 * that every byte in which 'snap' and 'now' differ is covered ('map':
 * diff_map of the two).  Returns 0 or the query's error (not checked
 * here). */
static int
check_id(struct tm_vdisk *d, const struct geo *g, const struct sealed *s,
         const uint8_t *now, const uint8_t *map, const char *when)
{
    uint64_t vsize = g->vsize;
    size_t cap = vsize / g->gran + 2;
    struct tm_range *r = malloc(cap * sizeof(*r));
    uint64_t pos = 0, gap = 0;
    unsigned calls = 0;
    int rc = 0;

    assert_non_null(r);
    while (pos < vsize) {
        size_t count = calls++ % 3 == 0 ? cap : 1 + pos % 3;
        uint64_t processed = 0;

        rc = tm_vdisk_query_changes(d, s->id, pos, vsize - pos, r, &count,
                                    &processed);
        if (rc != 0)
            break;
        if (processed == 0 || processed > vsize - pos)
            die("%s: query of %s made no progress (processed %" PRIu64
                ")", when, s->id, processed);
        for (size_t i = 0; i <= count; i++) {
            uint64_t a = gap;
            uint64_t b = i < count ? r[i].off : pos + processed;

            if (i < count && (r[i].off < gap || r[i].len == 0 ||
                              r[i].off + r[i].len > vsize))
                die("%s: bad range %" PRIu64 "+%" PRIu64, when, r[i].off,
                    r[i].len);
            if (b > a)
                check_gap(g, s, now, map, a, b, when);
            if (i < count)
                gap = r[i].off + r[i].len;
            else if (pos + processed > gap)
                gap = pos + processed;
        }
        pos += processed;
    }
    free(r);
    return rc;
}

/* ---- the workload -------------------------------------------------------- */

struct run {
    struct reach *r;
    struct model *m;
    struct tm_vdisk *d;
    bool failed;                /* an operation failed: stop */
    unsigned queries;
};

/* An operation returned 'rc': a failure ends the run (after the fault
 * every operation fails; after a single error the program gives up and
 * closes, as a caller would). */
static bool
ok(struct run *w, int rc, const char *what)
{
    if (rc == 0)
        return true;
    if (!tm_fault_domain_fired(w->r->dom))
        die("%s failed without a fault: %d (%s)", what, rc,
            w->d ? tm_vdisk_err(w->d)->msg : "");
    w->failed = true;
    return false;
}

static void
do_write(struct run *w, uint64_t off, uint64_t len, int kind, unsigned op)
{
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    if (kind == 0)
        memset(buf, 0, len);
    else if (kind == 1)
        memcpy(buf, w->m->cur + off, len);      /* the same bytes again */
    else
        fill(buf, len, op, off);
    /* Whatever the result, these sectors may now hold new data. */
    model_touch(w->m, off, len);
    if (ok(w, tm_vdisk_write(w->d, buf, len, off), "write"))
        memcpy(w->m->cur + off, buf, len);
    free(buf);
}

static void
do_discard(struct run *w, uint64_t off, uint64_t len, bool unmap)
{
    model_touch(w->m, off, len);
    if (ok(w, tm_vdisk_discard(w->d, off, len, unmap ? TM_VDISK_DISCARD_UNMAP
                                                     : TM_VDISK_DISCARD_ZERO),
           "discard"))
        memset(w->m->cur + off, 0, len);
}

static void
do_close(struct run *w)
{
    bool failed = w->failed;
    int rc = tm_vdisk_close(w->d);

    w->d = NULL;
    /* After a failed write the model no longer knows what the disk
     * holds where it wrote: those sectors stay 'maybe written'. */
    if (ok(w, rc, "close") && !failed)
        model_flushed(w->m);
}

static void
do_open(struct run *w)
{
    char why[700];
    int rc = open_on(w->r, false, &w->d, why, sizeof(why));

    if (rc != 0 && !tm_fault_domain_fired(w->r->dom))
        die("open failed without a fault: %d (%s)", rc, why);
    if (rc != 0)
        w->failed = true;
}

/* Deterministic: the operations depend on the seed only. */
static void
run_workload(struct run *w)
{
    const struct geo *g = w->m->g;
    uint64_t s = g->wseed;
    uint64_t region = g->region ? g->region : 1 * MiB;

    do_open(w);
    for (unsigned op = 0; op < g->nops && !w->failed; op++) {
        uint64_t r = next_rand(&s) % 100;
        uint64_t off, len;

        if (op == 0 || r < 48) {
            switch (next_rand(&s) % 4) {
            case 0:
                len = 1 + next_rand(&s) % 700;          /* sub-sector */
                break;
            case 1:
                len = 1 + next_rand(&s) % g->gran;      /* sub-granule */
                break;
            case 2:
                len = 1 + next_rand(&s) % (3 * g->gran);
                break;
            default:
                len = 1 + next_rand(&s) % (2 * region + 1000);
                break;
            }
            if (len > g->vsize)
                len = g->vsize;
            off = next_rand(&s) % (g->vsize - len + 1);
            do_write(w, off, len, r % 5 == 0 ? 0 : r % 7 == 0 ? 1 : 2, op);
        } else if (r < 55) {
            /* Discards: whole blocks now and then. */
            if (next_rand(&s) % 2) {
                uint64_t nb = (g->vsize + g->block - 1) / g->block;

                off = next_rand(&s) % nb * g->block;
                len = g->block;
                if (off + len > g->vsize)
                    len = g->vsize - off;
            } else {
                len = 1 + next_rand(&s) % (2 * g->gran);
                off = next_rand(&s) % (g->vsize - len + 1);
            }
            do_discard(w, off, len, next_rand(&s) % 2);
        } else if (r < 68) {
            char id[ID_LEN];

            if (ok(w, tm_vdisk_seal(w->d, id), "seal"))
                model_sealed(w->m, id);
        } else if (r < 78) {
            if (ok(w, tm_vdisk_flush(w->d), "flush"))
                model_flushed(w->m);
        } else if (r < 83) {
            do_close(w);
            if (!w->failed)
                do_open(w);
        } else if (r < 88) {
            /* The fine map to the .rct now, the .mrt cleared. */
            (void)ok(w, tm_vdisk_persist_tracking(w->d), "persist");
        } else if (w->m->nids > 0 && w->queries < 4) {
            /* A query while running: the disk is what the model says. */
            unsigned k = (unsigned)(next_rand(&s) % w->m->nids);
            const struct sealed *x = &w->m->ids[k];
            uint8_t *map = id_map(w->m, k, NULL);
            int rc = check_id(w->d, g, x, w->m->cur, map,
                              "query while running");

            free(map);
            w->queries++;
            if (rc != 0)
                die("query of %s while running: %d (%s)", x->id, rc,
                    tm_vdisk_err(w->d)->msg);
        }
    }
    if (w->d != NULL)
        do_close(w);
}

/* ---- the base state each point starts from ------------------------------- */

struct base {
    const struct geo *g;
    struct files f;
    struct model m;
};

static void
base_write(struct run *w, uint64_t off, uint64_t len, unsigned tag)
{
    do_write(w, off, len, 2, tag);
    assert_false(w->failed);
}

static void
base_seal(struct run *w)
{
    char id[ID_LEN];

    assert_int_equal(tm_vdisk_seal(w->d, id), 0);
    model_sealed(w->m, id);
}

static void
make_base(struct base *bs, const struct geo *g)
{
    struct tm_vhdx_create_params vp = {
        .virtual_size = g->vsize, .block_size = g->block,
        .logical_sector = g->lss,
    };
    struct reach r = { &bs->f, NULL, false };
    struct run w = { &r, &bs->m, NULL, false, 0 };
    struct tm_vhdx *vd = tm_vhdx_new();
    uint8_t *now;

    memset(bs, 0, sizeof(*bs));
    bs->g = g;
    model_init(&bs->m, g);
    bs->f.disk = tm_io_mem_new();
    bs->f.rct = tm_io_mem_new();
    bs->f.mrt = tm_io_mem_new();
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(bs->f.disk), &vp),
                     0);
    if (g->region != 0) {
        /* Sidecars with small regions, made by the layer below; vdisk
         * keeps the region size it finds. */
        struct tm_rct_params p = { .granularity = g->gran,
                                   .region = g->region };
        struct tm_vhdx_info vi;
        struct tm_rct_binding b = { 0 };
        struct tm_rct *t;
        struct tm_err err;

        assert_int_equal(tm_vhdx_get_info(vd, &vi), 0);
        b.data_write_guid = vi.data_write_guid;
        b.virtual_size = vi.virtual_size;
        assert_int_equal(tm_rct_create(tm_io_borrow_new(bs->f.rct),
                                       tm_io_borrow_new(bs->f.mrt), &p, &b,
                                       &t, &err), 0);
        assert_int_equal(tm_rct_close(t, &b), 0);
        assert_int_equal(tm_vhdx_close(vd), 0);
        w.d = open_or_die(&r, false, "base");
    } else {
        struct tm_vdisk_set_info si = {
            .kind = TM_VDISK_SET_CHANGE_TRACKING_STATE,
            .change_tracking = { true, g->gran } };
        struct tm_err err;

        assert_int_equal(vdisk_wrap(vd, "base.vhdx", false,
                                    &(struct vdisk_sidecar_ops){
                                        sidecar_open, &r }, &w.d, &err), 0);
        assert_int_equal(tm_vdisk_set_info(w.d, &si), 0);
    }
    /* History over three opens. */
    base_write(&w, 1000, 5000, 1);
    base_seal(&w);
    base_write(&w, g->vsize / 2, 3 * g->gran, 2);
    base_write(&w, g->block - 100, 300, 3);
    base_seal(&w);
    assert_int_equal(tm_vdisk_close(w.d), 0);
    model_flushed(&bs->m);
    w.d = open_or_die(&r, false, "base");
    base_write(&w, g->vsize - 100, 100, 4);
    base_seal(&w);
    base_write(&w, 3 * g->gran + 17, 999, 5);          /* not sealed */
    assert_int_equal(tm_vdisk_close(w.d), 0);
    model_flushed(&bs->m);

    /* The model is right. */
    w.d = open_or_die(&r, true, "base");
    now = malloc(g->vsize);
    assert_non_null(now);
    assert_int_equal(tm_vdisk_read(w.d, now, g->vsize, 0), 0);
    assert_memory_equal(now, bs->m.cur, g->vsize);
    assert_int_equal(found_of(w.d), TM_VDISK_TRACKING_CLEAN);
    for (unsigned i = 0; i < bs->m.nids; i++) {
        uint8_t *map = id_map(&bs->m, i, NULL);

        assert_int_equal(check_id(w.d, g, &bs->m.ids[i], now, map, "base"),
                         0);
        free(map);
    }
    free(now);
    assert_int_equal(tm_vdisk_close(w.d), 0);
}

static void
free_base(struct base *bs)
{
    files_close(&bs->f);
    model_free(&bs->m);
}

/* ---- after the fault ----------------------------------------------------- */

struct tally {
    unsigned points, fired, resets, recovered, id_resets, ro_checked;
    unsigned found[TM_VDISK_TRACKING_RESET_CORRUPT + 1];
};

/* Buffers reused from point to point: [0] what the read-write open
 * reads, [1] what the read-only one does. */
static uint8_t *now_buf[2];

static uint8_t *
read_all(struct tm_vdisk *d, const struct geo *g, unsigned slot,
         const char *what)
{
    int rc;

    if (now_buf[slot] == NULL) {
        now_buf[slot] = malloc(8 * MiB);
        assert_non_null(now_buf[slot]);
    }
    assert_true(g->vsize <= 8 * MiB);
    rc = tm_vdisk_read(d, now_buf[slot], g->vsize, 0);
    if (rc != 0)
        die("%s: read: %d (%s)", what, rc, tm_vdisk_err(d)->msg);
    return now_buf[slot];
}

/* Every ID sealed: covered, or reset ('maps[i]': which granules differ
 * between ID i's state and 'now').  Returns how many were reset. */
static unsigned
check_all_ids(struct tm_vdisk *d, const struct model *m, const uint8_t *now,
              uint8_t *const *maps, const char *when)
{
    unsigned resets = 0;

    for (unsigned i = 0; i < m->nids; i++) {
        int rc = check_id(d, m->g, &m->ids[i], now, maps[i], when);

        if (rc != 0)
            die("%s: query of %s (sealed before the fault): %d (%s), want "
                "success", when, m->ids[i].id, rc, tm_vdisk_err(d)->msg);
    }
    return resets;
}

/* Acknowledged, flushed data reads back. */
static void
check_durable(const struct model *m, const uint8_t *now)
{
    uint64_t lss = m->g->lss, ns = m->g->vsize / lss;

    for (uint64_t s = 0; s < ns; s++)
        if (!m->dirty[s] && memcmp(now + s * lss, m->flushed + s * lss,
                                   lss) != 0)
            die("sector %" PRIu64 " (offset %#" PRIx64 ") reads %02x %02x, "
                "want %02x %02x: a flushed write was lost", s, s * lss,
                now[s * lss], now[s * lss + 1], m->flushed[s * lss],
                m->flushed[s * lss + 1]);
}

static void
verify(struct files *f, struct model *m, bool fired, bool check_ro,
       struct tally *t)
{
    const struct geo *g = m->g;
    struct reach plain = { f, NULL, false };
    struct tm_vdisk *d;
    enum tm_vdisk_tracking_open found;
    uint8_t *maps[MAXIDS] = { NULL };
    uint8_t *dcur;
    char id[ID_LEN];
    uint8_t *now, *now_ro = NULL;
    uint64_t poke = g->vsize / 3;
    unsigned resets;
    int rc;

    /* A reader first: it recovers in memory and writes nothing. */
    if (check_ro) {
        struct tm_fault_domain *cd = tm_fault_domain_new(&(struct tm_fault){
            .ops = CHANGES });
        struct reach counting = { f, cd, false };

        assert_non_null(cd);
        d = open_or_die(&counting, true, "read-only open after the fault");
        now_ro = read_all(d, g, 1, "read-only");
        check_durable(m, now_ro);
        dcur = diff_map(g, m->cur, now_ro);
        for (unsigned i = 0; i < m->nids; i++)
            maps[i] = id_map(m, i, dcur);
        free(dcur);
        (void)check_all_ids(d, m, now_ro, maps,
                            "read-only open after the fault");
        assert_int_equal(tm_vdisk_close(d), 0);
        if (tm_fault_domain_count(cd) != 0)
            die("a read-only open wrote %" PRIu64 " times",
                tm_fault_domain_count(cd));
        tm_fault_domain_free(cd);
        t->ro_checked++;
    }

    d = open_or_die(&plain, false, "open after the fault");
    found = found_of(d);
    t->found[found]++;
    /* The .rct announces the GUID a bind is about to give the disk, so
     * no cut of ours looks like a foreign write, or any other reset. */
    if (found != TM_VDISK_TRACKING_CLEAN &&
        found != TM_VDISK_TRACKING_RECOVERED)
        die("tracking was reset (found %d) by a fault of our own", found);
    now = read_all(d, g, 0, "after the fault");
    if (now_ro != NULL && memcmp(now, now_ro, g->vsize) != 0)
        die("the read-only and the read-write open read different data");
    check_durable(m, now);
    if (now_ro == NULL) {
        dcur = diff_map(g, m->cur, now);
        for (unsigned i = 0; i < m->nids; i++)
            maps[i] = id_map(m, i, dcur);
        free(dcur);
    }
    resets = check_all_ids(d, m, now, maps, "after the fault");
    t->id_resets += resets;
    if (!fired && (found != TM_VDISK_TRACKING_CLEAN || resets != 0))
        die("no fault, yet tracking was found %d with %u IDs reset",
            (int)found, resets);

    /* The disk goes on: a write, a seal never handed out before. */
    memcpy(m->cur, now, g->vsize);
    memset(m->dirty, 0, g->vsize / g->lss);
    m->cur[poke] ^= 0x5a;
    rc = tm_vdisk_write(d, m->cur + poke, 1, poke);
    if (rc != 0)
        die("write after the fault: %d (%s)", rc, tm_vdisk_err(d)->msg);
    rc = tm_vdisk_seal(d, id);
    if (rc != 0)
        die("seal after the fault: %d (%s)", rc, tm_vdisk_err(d)->msg);
    if (id_known(m, id))
        die("seal after the fault gave '%s' again: an ID handed out before "
            "the fault, now naming another state", id);
    for (unsigned i = 0; i < m->nids; i++)
        maps[i][poke / g->gran] = 1;
    model_sealed(m, id);
    maps[m->nids - 1] = calloc(1, granules(g));
    assert_non_null(maps[m->nids - 1]);
    rc = tm_vdisk_close(d);
    if (rc != 0)
        die("close after the fault: %d", rc);

    /* A clean reopen keeps every answer. */
    d = open_or_die(&plain, false, "second open");
    if (found_of(d) != TM_VDISK_TRACKING_CLEAN)
        die("second open after a clean close found %d", (int)found_of(d));
    now = read_all(d, g, 0, "second open");
    if (memcmp(now, m->cur, g->vsize) != 0)
        die("second open reads other data than the first left");
    if (check_all_ids(d, m, now, maps, "second open") != resets)
        die("second open: another number of IDs reset");
    assert_int_equal(tm_vdisk_close(d), 0);
    for (unsigned i = 0; i < m->nids; i++)
        free(maps[i]);
}

/* ---- sweeps -------------------------------------------------------------- */

/* Counts up from point 1 (by 'every' × stride) until the workload runs
 * to its end without the fault firing. */
static struct tally
sweep(const char *name, const struct geo *g, const struct tm_fault *tmpl,
      unsigned every)
{
    struct tally t = { 0 };
    struct base bs;
    unsigned step = stride() * every;
    double t0 = now_s();

    make_base(&bs, g);
    for (unsigned point = 1;; point += step) {
        struct tm_fault f = *tmpl;
        struct files files;
        struct reach r;
        struct model m;
        struct run w;
        bool fired;

        snprintf(where, sizeof(where), "%s [%s] point %u", name, g->name,
                 point);
        f.after = point;
        if (f.seed != 0)
            f.seed = tmpl->seed + point;
        if (f.action == TM_FAULT_TEAR)
            f.tear_sectors = 1 + point % 7;
        files_copy(&files, &bs.f);
        model_copy(&m, &bs.m);
        r.f = &files;
        r.dom = tm_fault_domain_new(&f);
        assert_non_null(r.dom);
        memset(&w, 0, sizeof(w));
        w.r = &r;
        w.m = &m;
        run_workload(&w);
        fired = tm_fault_domain_fired(r.dom);
        tm_fault_domain_free(r.dom);
        if (!fired && w.failed)
            die("the workload failed without a fault");
        verify(&files, &m, fired, point % 3 == 1 || !fired, &t);
        model_free(&m);
        files_close(&files);
        t.points++;
        t.fired += fired;
        if (!fired)
            break;
    }
    free_base(&bs);
    print_message("%s [%s]: %u points (%u fired, every %u), %u read-only "
                  "checks; found clean %u, recovered %u, reset (foreign %u, "
                  "resized %u, corrupt %u); %u ID queries reset; %.1f s\n",
                  name, g->name, t.points, t.fired, step, t.ro_checked,
                  t.found[TM_VDISK_TRACKING_CLEAN],
                  t.found[TM_VDISK_TRACKING_RECOVERED],
                  t.found[TM_VDISK_TRACKING_RESET_FOREIGN_WRITE],
                  t.found[TM_VDISK_TRACKING_RESET_RESIZED],
                  t.found[TM_VDISK_TRACKING_RESET_CORRUPT], t.id_resets,
                  now_s() - t0);
    return t;
}

static unsigned total_points;

static void
power_cut_drop_unflushed(void **state)
{
    struct tm_fault f = { .ops = COUNTED, .action = TM_FAULT_POWER_CUT };
    struct tally a = sweep("power cut", &geo_a, &f, 1);
    struct tally b = sweep("power cut", &geo_b, &f, 1);

    (void)state;
    total_points += a.fired + b.fired;
    /* Cuts land before, inside and after the binding: some opens must
     * have recovered rather than reset. */
    assert_true(a.found[TM_VDISK_TRACKING_RECOVERED] > 0);
}

static void
power_cut_random_survivors(void **state)
{
    struct tm_fault f = { .ops = COUNTED, .action = TM_FAULT_POWER_CUT,
                          .seed = 1000 };
    struct tally a = sweep("power cut, random survivors", &geo_a, &f, 1);
    struct tally b = sweep("power cut, random survivors", &geo_b, &f, 2);

    (void)state;
    total_points += a.fired + b.fired;
}

static void
torn_writes(void **state)
{
    struct tm_fault f = { .ops = TM_IO_WRITE, .action = TM_FAULT_TEAR };
    struct tally a = sweep("torn write", &geo_a, &f, 1);

    (void)state;
    f.seed = 4242;
    {
        struct tally b = sweep("torn write, random survivors", &geo_b, &f,
                               1);

        total_points += b.fired;
    }
    total_points += a.fired;
}

static void
one_eio_then_close(void **state)
{
    struct tm_fault f = { .ops = COUNTED, .action = TM_FAULT_ERROR,
                          .err = EIO };
    struct tally a = sweep("one EIO, then close", &geo_a, &f, 2);

    (void)state;
    total_points += a.fired;
    print_message("cut/fault points in total: %u (stride %u)\n",
                  total_points, stride());
    assert_true(total_points * stride() >= 1000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(power_cut_drop_unflushed),
        cmocka_unit_test(power_cut_random_survivors),
        cmocka_unit_test(torn_writes),
        cmocka_unit_test(one_eio_then_close),
    };
    int rc;

    /* Keep freed snapshots in the heap: no mmap/munmap per point. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(now_buf[0]);
    free(now_buf[1]);
    return rc;
}
