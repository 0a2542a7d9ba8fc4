/* SPDX-License-Identifier: MIT */
/* rct_model_test.c - model-based test of lib/rct against a shadow of the
 * disk: random writes (unaligned, sometimes rewriting the bytes already
 * there), discards, seals, queries with random windows and tiny
 * capacities, persists, clean reopens, crashes (free + reopen: recovery)
 * and foreign-write resets.  The shadow keeps the disk's bytes in 64 KiB
 * copy-on-write pages and a snapshot of them for recent IDs (the last 20)
 * and a few old ones.  For every retained ID the checks are:
 *
 *  (a) no missed change: every byte that differs between the ID's
 *      snapshot and now lies inside a reported range (DESIGN.md inv. 1);
 *  (b) bounded over-reporting: every reported granule was written since
 *      the ID (no crash), or lies in a coarse region marked since the last
 *      persist before a crash (after a recovery);
 *  (c) ranges ascending, non-empty, merged (none touching), inside the
 *      window, granule aligned except where the window clips them;
 *  (d) paged results (capacity 1, 2, 3, going on from off + *processed)
 *      equal a one-shot query;
 *  (e) 'until' queries cover every byte that differs between two IDs.
 *
 * Plus the error contract: malformed IDs, other disks' IDs, IDs from
 * before a reset, 'until' older than 'id'.
 *
 * Two disks: a dense 64 MiB one and a sparse 1 TiB one written in 64
 * zones spread across it (the shadow holds only the zones).
 * Also: a seal right after a clean open then a crash (a regression: the
 * ID was forgotten and handed out again), renumbering past epoch 65 535.
 *
 * Seeds 1-6 are the dense disk, 7-8 the sparse ones; each prints its
 * seed.  TM_RCT_SEED=<n> runs one seed; TM_RCT_OPS=<n> sets the ops per
 * seed (10 000); TM_RCT_TRACE=1 prints every op to stderr. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "crash_util.h"

#include "io.h"
#include "rct.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)
#define PAGE (64u * 1024u)
#define MAXZ 64
#define KEEP_RECENT 20
#define KEEP_OLD 6

static int trace;
#define TRACE(...) do { if (trace) fprintf(stderr, __VA_ARGS__); } while (0)

/* ---- copy-on-write pages ------------------------------------------------ */

struct page {
    unsigned refs;
    uint8_t d[PAGE];
};

static struct page *
page_get(struct page *p)
{
    if (p != NULL)
        p->refs++;
    return p;
}

static void
page_put(struct page *p)
{
    if (p != NULL && --p->refs == 0)
        free(p);
}

/* ---- the model ---------------------------------------------------------- */

enum id_status {
    ID_LIVE,            /* answered exactly (no crash since it) */
    ID_ORPHAN,          /* sealed after the last persist, then a crash */
    ID_RESET,           /* an older lineage: must fail TM_E_RCT_RESET */
    ID_GONE,            /* an orphan the engine called missing */
};

struct idrec {
    char id[TM_RCT_ID_MAX + 1];
    uint32_t epoch;             /* model epoch the ID closed */
    uint32_t bound;             /* over-reporting allowed for gen > bound */
    struct page **snap;         /* NULL when not retained */
    enum id_status status;
    bool keeper;                /* an old ID kept for long */
    unsigned lineage_no;        /* resets before its seal */
};

struct cfg {
    const char *name;
    uint64_t vsize;
    unsigned nzones;
    uint64_t zone_bytes;        /* multiple of PAGE */
    uint32_t granularity;
    uint64_t region;
    unsigned full_check_every;  /* ops between checks of every ID */
};

struct model {
    struct cfg c;
    uint64_t seed;
    uint64_t rng;
    uint64_t zbase[MAXZ];
    uint64_t zg0[MAXZ];         /* first granule each zone touches */
    uint64_t zgn[MAXZ];
    uint32_t *gen[MAXZ];        /* model epoch of each granule's last write */
    unsigned ppz;               /* pages per zone */
    unsigned npages;
    struct page **cur;
    uint64_t nregions;
    uint32_t *region_gen;       /* regions made "changed" by a recovery */
    uint8_t *region_marked;     /* marked since the last persist */
    uint32_t epoch;
    struct idrec *ids;
    size_t nids, capids;
    size_t lineage_start;       /* first ID of the current lineage */
    size_t persisted_upto;      /* ids below this are in the .rct */
    unsigned kept_old;
    bool marked_since_seal;
    bool marked_since_persist;
    bool state_exact;           /* tm_rct_state must match exactly */
    uint32_t max_counter;
    unsigned lineage_no;
    char other_disk_id[TM_RCT_ID_MAX + 1];
    struct tm_io *rct_mem, *mrt_mem;
    struct tm_rct *t;
    struct tm_rct_binding b;
    struct tm_range *rbuf;  /* scratch for queries */
    size_t rcap;
    struct tm_range *one, *paged;
    size_t none, npaged, capone, cappaged;
    /* statistics */
    unsigned long ops, writes, seals, queries, persists, reopens, crashes,
        resets, errors_checked, full_checks, orphan_missing, split_pages;
};

static uint64_t
rnd(struct model *m, uint64_t n)
{
    return n == 0 ? 0 : next_rand(&m->rng) % n;
}

static struct tm_rct_params
params_of(const struct model *m)
{
    return (struct tm_rct_params){ .granularity = m->c.granularity,
                                   .region = m->c.region };
}

static void
model_init(struct model *m, const struct cfg *c, uint64_t seed)
{
    struct tm_rct_params p;
    struct tm_err err;
    struct tm_rct *other;
    uint64_t spacing;
    int rc;

    memset(m, 0, sizeof(*m));
    m->c = *c;
    m->seed = seed;
    m->rng = seed * 0x9E3779B97F4A7C15ull + 1;
    spacing = c->vsize / c->nzones;
    for (unsigned z = 0; z < c->nzones; z++) {
        uint64_t base = z * spacing;

        if (z > 0)
            base += (z * 12347ull * 512 + z * 3) % (spacing / 2);
        if (z == c->nzones - 1)
            base = c->vsize - c->zone_bytes;
        m->zbase[z] = base;
        m->zg0[z] = base / c->granularity;
        m->zgn[z] = (base + c->zone_bytes - 1) / c->granularity -
                    m->zg0[z] + 1;
        m->gen[z] = calloc(m->zgn[z], sizeof(uint32_t));
        assert_non_null(m->gen[z]);
    }
    m->ppz = (unsigned)(c->zone_bytes / PAGE);
    m->npages = m->ppz * c->nzones;
    m->cur = calloc(m->npages, sizeof(*m->cur));
    assert_non_null(m->cur);
    m->nregions = (c->vsize + c->region - 1) / c->region;
    m->region_gen = calloc(m->nregions, sizeof(uint32_t));
    m->region_marked = calloc(m->nregions, 1);
    assert_non_null(m->region_gen);
    assert_non_null(m->region_marked);
    m->epoch = 1;
    m->state_exact = true;
    m->rcap = 1u << 16;
    m->rbuf = malloc(m->rcap * sizeof(*m->rbuf));
    assert_non_null(m->rbuf);

    m->b.virtual_size = c->vsize;
    assert_int_equal(tm_guid_generate(&m->b.data_write_guid), 0);
    m->rct_mem = tm_io_mem_new();
    m->mrt_mem = tm_io_mem_new();
    assert_non_null(m->rct_mem);
    assert_non_null(m->mrt_mem);
    p = params_of(m);
    rc = tm_rct_create(tm_io_borrow_new(m->rct_mem),
                       tm_io_borrow_new(m->mrt_mem), &p, &m->b, &m->t, &err);
    if (rc != 0)
        die("create: %d %s", rc, err.msg);

    /* Another disk, for TM_E_RCT_OTHER_DISK. */
    {
        struct tm_io *r = tm_io_mem_new(), *mm = tm_io_mem_new();

        rc = tm_rct_create(tm_io_borrow_new(r), tm_io_borrow_new(mm), &p,
                           &m->b, &other, &err);
        if (rc != 0)
            die("create other: %d %s", rc, err.msg);
        assert_int_equal(tm_rct_mark(other, 0, 1), 0);
        assert_int_equal(tm_rct_seal(other, m->other_disk_id), 0);
        assert_int_equal(tm_rct_close(other, &m->b), 0);
        tm_io_close(r);
        tm_io_close(mm);
    }
}

static void
model_free(struct model *m)
{
    tm_rct_free(m->t);
    tm_io_close(m->rct_mem);
    tm_io_close(m->mrt_mem);
    for (size_t i = 0; i < m->nids; i++) {
        if (m->ids[i].snap != NULL) {
            for (unsigned p = 0; p < m->npages; p++)
                page_put(m->ids[i].snap[p]);
            free(m->ids[i].snap);
        }
    }
    free(m->ids);
    for (unsigned p = 0; p < m->npages; p++)
        page_put(m->cur[p]);
    free(m->cur);
    for (unsigned z = 0; z < m->c.nzones; z++)
        free(m->gen[z]);
    free(m->region_gen);
    free(m->region_marked);
    free(m->rbuf);
    free(m->one);
    free(m->paged);
}

/* Model epoch of granule g's last write (0: never, or outside zones). */
static uint32_t
model_gen(const struct model *m, uint64_t g)
{
    for (unsigned z = 0; z < m->c.nzones; z++)
        if (g >= m->zg0[z] && g < m->zg0[z] + m->zgn[z])
            return m->gen[z][g - m->zg0[z]];
    return 0;
}

static uint64_t
page_voff(const struct model *m, unsigned p)
{
    return m->zbase[p / m->ppz] + (uint64_t)(p % m->ppz) * PAGE;
}

/* Applies a write (data != NULL), a rewrite of the bytes already there
 * (data == NULL, zero == false) or a zeroing to the shadow, after
 * tm_rct_mark succeeded.  [off, off+len) lies in zone z. */
static void
shadow_apply(struct model *m, unsigned z, uint64_t off, uint64_t len,
             const uint8_t *data, bool zero)
{
    uint64_t lo = off - m->zbase[z];
    uint32_t G = m->c.granularity;

    for (uint64_t g = off / G; g <= (off + len - 1) / G; g++)
        m->gen[z][g - m->zg0[z]] = m->epoch;
    for (uint64_t r = off / m->c.region; r <= (off + len - 1) / m->c.region;
         r++)
        m->region_marked[r] = 1;
    m->marked_since_seal = true;
    m->marked_since_persist = true;
    if (data == NULL && !zero)
        return;                 /* same bytes: nothing differs */
    for (uint64_t done = 0; done < len;) {
        uint64_t pl = (lo + done) / PAGE;
        unsigned p = (unsigned)(z * m->ppz + pl);
        uint64_t in = (lo + done) % PAGE;
        uint64_t n = PAGE - in < len - done ? PAGE - in : len - done;
        struct page *pg = m->cur[p];

        if (pg == NULL) {
            if (zero) {
                done += n;
                continue;
            }
            pg = calloc(1, sizeof(*pg));
            assert_non_null(pg);
            pg->refs = 1;
            m->cur[p] = pg;
        } else if (pg->refs > 1) {
            struct page *cp = malloc(sizeof(*cp));

            assert_non_null(cp);
            memcpy(cp->d, pg->d, PAGE);
            cp->refs = 1;
            page_put(pg);
            m->cur[p] = pg = cp;
        }
        if (zero)
            memset(pg->d + in, 0, n);
        else
            memcpy(pg->d + in, data + done, n);
        done += n;
    }
}

static struct page **
snapshot(const struct model *m)
{
    struct page **s = malloc(m->npages * sizeof(*s));

    assert_non_null(s);
    for (unsigned p = 0; p < m->npages; p++)
        s[p] = page_get(m->cur[p]);
    return s;
}

static void
drop_snap(struct model *m, struct idrec *r)
{
    if (r->snap == NULL)
        return;
    for (unsigned p = 0; p < m->npages; p++)
        page_put(r->snap[p]);
    free(r->snap);
    r->snap = NULL;
}

/* ---- queries and their checks ------------------------------------------ */

static void
push_range(struct tm_range **v, size_t *n, size_t *cap,
           struct tm_range r, bool merge, unsigned long *splits)
{
    if (merge && *n > 0 && (*v)[*n - 1].off + (*v)[*n - 1].len == r.off) {
        (*v)[*n - 1].len += r.len;
        if (splits != NULL)
            (*splits)++;
        return;
    }
    if (*n == *cap) {
        *cap = *cap == 0 ? 256 : *cap * 2;
        *v = realloc(*v, *cap * sizeof(**v));
        assert_non_null(*v);
    }
    (*v)[(*n)++] = r;
}

/* Runs a query of [off, off+len) with capacity 'cap', going on from
 * off + *processed, checking (c) on every call; the concatenated result
 * (touching ranges across calls merged) goes to *out.  Returns the first
 * call's code (0 when all calls succeeded). */
static int
run_query(struct model *m, const char *id, const char *until, uint64_t off,
          uint64_t len, size_t cap, struct tm_range **out, size_t *nout,
          size_t *capout)
{
    uint64_t end = off + len < m->c.vsize ? off + len : m->c.vsize;
    uint64_t pos = off;
    uint32_t G = m->c.granularity;
    unsigned calls = 0;

    *nout = 0;
    assert_true(cap <= m->rcap);
    while (pos < end) {
        size_t count = cap;
        uint64_t processed = UINT64_MAX;
        int rc;

        rc = tm_rct_query(m->t, id, until, pos, off + len - pos, m->rbuf,
                          &count, &processed);
        if (rc != 0 && (count != 0 || processed != 0))
            die("failed query (%d) left count %zu, processed %" PRIu64
                ", want 0 and 0", rc, count, processed);
        if (rc != 0) {
            if (calls > 0)
                die("query failed (%d: %s) after %u successful pages", rc,
                    tm_rct_err(m->t)->msg, calls);
            return rc;
        }
        calls++;
        if (count > cap)
            die("count %zu > capacity %zu", count, cap);
        /* The engine reports the whole requested length (not clipped to
         * the virtual size) when it is done; either is fine. */
        if (processed == 0 || processed > off + len - pos)
            die("window [%" PRIu64 ", %" PRIu64 "): processed %" PRIu64
                " (capacity %zu, count %zu)", pos, end, processed, cap,
                count);
        /* rct.h: a full array ends *processed at the end of the last
         * range; otherwise it is the whole requested length. */
        if (count == cap && count > 0 &&
            processed != m->rbuf[count - 1].off + m->rbuf[count - 1].len -
                             pos)
            die("full array (%zu): processed %" PRIu64 ", want the end "
                "of the last range %" PRIu64, count, processed,
                m->rbuf[count - 1].off + m->rbuf[count - 1].len - pos);
        if (count < cap && processed != off + len - pos)
            die("array not full (%zu of %zu): processed %" PRIu64 ", want "
                "the requested %" PRIu64, count, cap, processed,
                off + len - pos);
        if (processed > end - pos)
            processed = end - pos;
        if (count < cap && processed != end - pos)
            die("array not full (%zu of %zu) but processed %" PRIu64
                " of %" PRIu64, count, cap, processed, end - pos);
        for (size_t i = 0; i < count; i++) {
            struct tm_range r = m->rbuf[i];

            if (r.len == 0)
                die("empty range at %" PRIu64, r.off);
            if (r.off < pos || r.off + r.len > pos + processed ||
                r.off + r.len < r.off)
                die("range [%" PRIu64 ", +%" PRIu64 ") outside the part "
                    "[%" PRIu64 ", %" PRIu64 ") processed", r.off, r.len,
                    pos, pos + processed);
            if (i > 0 && r.off <= m->rbuf[i - 1].off + m->rbuf[i - 1].len)
                die("range %zu at %" PRIu64 " overlaps or touches the "
                    "previous [%" PRIu64 ", +%" PRIu64 ")", i, r.off,
                    m->rbuf[i - 1].off, m->rbuf[i - 1].len);
            if (r.off % G != 0 && r.off != pos)
                die("range start %" PRIu64 " not granule aligned "
                    "(window from %" PRIu64 ")", r.off, pos);
            if ((r.off + r.len) % G != 0 && r.off + r.len != end)
                die("range end %" PRIu64 " not granule aligned (window "
                    "to %" PRIu64 ")", r.off + r.len, end);
            push_range(out, nout, capout, r, true, &m->split_pages);
        }
        pos += processed;
    }
    return 0;
}

/* Is [a, b) inside one of the (merged, sorted) ranges? */
static bool
covered(const struct tm_range *v, size_t n, uint64_t a, uint64_t b)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (v[mid].off + v[mid].len <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo].off <= a && b <= v[lo].off + v[lo].len;
}

/* (a)/(e): every byte differing between 'old' and 'now' inside
 * [wa, wb) lies in a range of v. */
static void
check_no_miss(struct model *m, struct page **old, struct page **now,
              uint64_t wa, uint64_t wb, const struct tm_range *v,
              size_t n, const char *what)
{
    static const uint8_t zeros[PAGE];

    for (unsigned p = 0; p < m->npages; p++) {
        const uint8_t *x, *y;
        uint64_t base;

        if (old[p] == now[p])
            continue;
        base = page_voff(m, p);
        if (base + PAGE <= wa || base >= wb)
            continue;
        if (covered(v, n, base < wa ? wa : base,
                    base + PAGE > wb ? wb : base + PAGE))
            continue;           /* the whole page is reported */
        x = old[p] != NULL ? old[p]->d : zeros;
        y = now[p] != NULL ? now[p]->d : zeros;
        for (unsigned i = 0; i < PAGE;) {
            unsigned j;

            if (i % 64 == 0 && memcmp(x + i, y + i, 64) == 0) {
                i += 64;
                continue;
            }
            if (x[i] == y[i]) {
                i++;
                continue;
            }
            j = i;
            while (j < PAGE && x[j] != y[j])
                j++;
            {
                uint64_t a = base + i, b = base + j;

                if (a < wa)
                    a = wa;
                if (b > wb)
                    b = wb;
                if (a < b && !covered(v, n, a, b))
                    die("MISSED CHANGE (%s): bytes [%" PRIu64 ", %" PRIu64
                        ") differ but no reported range covers them "
                        "(%zu ranges)", what, a, b, n);
            }
            i = j;
        }
    }
}

/* (b): every reported granule was written since 'bound', or lies in a
 * region a recovery counted as changed since then. */
static void
check_bound(struct model *m, uint32_t bound, const struct tm_range *v,
            size_t n, const char *what)
{
    uint32_t G = m->c.granularity;

    for (size_t i = 0; i < n; i++) {
        for (uint64_t g = v[i].off / G; g <= (v[i].off + v[i].len - 1) / G;
             g++) {
            uint64_t r = g * G / m->c.region;

            if (model_gen(m, g) > bound || m->region_gen[r] > bound)
                continue;
            die("OVER-REPORT (%s): granule %" PRIu64 " (bytes %" PRIu64
                ") in range [%" PRIu64 ", +%" PRIu64 ") not written since "
                "epoch %u (last write epoch %u, region %" PRIu64
                " recovered at %u)", what, g, g * G, v[i].off, v[i].len,
                bound, model_gen(m, g), r, m->region_gen[r]);
        }
    }
}

/* One checked query of A (until B when not NULL). */
static void
check_query(struct model *m, struct idrec *A, struct idrec *B, uint64_t off,
            uint64_t len, size_t cap)
{
    uint64_t end;
    int rc, want_err = 0;
    char what[96];

    m->queries++;
    if (A->status == ID_RESET || (B != NULL && B->status == ID_RESET))
        want_err = TM_E_RCT_RESET;
    rc = run_query(m, A->id, B != NULL ? B->id : NULL, off, len, cap,
                   &m->paged, &m->npaged, &m->cappaged);
    if (want_err != 0) {
        /* lib/rct remembers the last 16 former lineages (RCT_MAX_FORMER,
         * not in docs/formats/rct.md); older ones look like another
         * disk's: a clear error still. */
        if (rc == TM_E_RCT_OTHER_DISK &&
            m->lineage_no - A->lineage_no > 16 &&
            (B == NULL || m->lineage_no - B->lineage_no > 16))
            return;
        if (rc != want_err)
            die("query of an ID from before a reset: got %d (%s), want "
                "TM_E_RCT_RESET", rc, rc != 0 ? tm_rct_err(m->t)->msg : "");
        return;
    }
    if (rc == TM_E_RCT_MISSING &&
        (A->status == ID_ORPHAN || (B != NULL && B->status == ID_ORPHAN))) {
        m->orphan_missing++;
        if (A->status == ID_ORPHAN)
            A->status = ID_GONE;
        if (B != NULL && B->status == ID_ORPHAN)
            B->status = ID_GONE;
        return;
    }
    if (rc != 0)
        die("query %s%s%s [%" PRIu64 ", +%" PRIu64 ") cap %zu: %d (%s)",
            A->id, B != NULL ? " until " : "", B != NULL ? B->id : "", off,
            len, cap, rc, tm_rct_err(m->t)->msg);
    end = off + len < m->c.vsize ? off + len : m->c.vsize;
    snprintf(what, sizeof(what), "%s%s, window [%" PRIu64 ", %" PRIu64
             "), cap %zu", B != NULL ? "until-query of " : "query of ",
             A->id + 5 + 37, off, end, cap);
    if (A->snap != NULL)
        check_no_miss(m, A->snap, B != NULL ? B->snap : m->cur, off, end,
                      m->paged, m->npaged, what);
    check_bound(m, A->bound, m->paged, m->npaged, what);
    if (cap < 16) {
        rc = run_query(m, A->id, B != NULL ? B->id : NULL, off, len,
                       m->rcap, &m->one, &m->none, &m->capone);
        if (rc != 0)
            die("one-shot query failed after paged one worked: %d", rc);
        if (m->none != m->npaged ||
            (m->none > 0 &&
             memcmp(m->one, m->paged, m->none * sizeof(*m->one)) != 0))
            die("PAGING: %zu ranges paged (cap %zu) vs %zu in one shot",
                m->npaged, cap, m->none);
    }
}

/* A random window: the whole disk, a zone, or random bounds. */
static void
random_window(struct model *m, uint64_t *off, uint64_t *len)
{
    switch (rnd(m, 4)) {
    case 0:
        *off = 0;
        *len = rnd(m, 2) ? m->c.vsize : UINT64_MAX / 2;
        break;
    case 1: {
        unsigned z = (unsigned)rnd(m, m->c.nzones);

        *off = m->zbase[z] + rnd(m, m->c.zone_bytes / 2);
        *len = 1 + rnd(m, m->c.zone_bytes);
        break;
    }
    default:
        *off = rnd(m, m->c.vsize);
        *len = 1 + rnd(m, m->c.vsize - *off + 4096);
        break;
    }
}

static size_t
random_cap(struct model *m)
{
    switch (rnd(m, 5)) {
    case 0:
        return 1;
    case 1:
        return 2;
    case 2:
        return 3;
    default:
        return m->rcap;
    }
}

static void
check_all(struct model *m)
{
    m->full_checks++;
    for (size_t i = m->nids; i-- > 0;) {
        struct idrec *r = &m->ids[i];

        if (r->status == ID_GONE)
            continue;
        if (r->snap == NULL && r->status != ID_RESET)
            continue;
        if (r->status == ID_RESET && m->nids - i > 200)
            continue;
        check_query(m, r, NULL, 0, m->c.vsize, m->rcap);
    }
}

/* ---- operations --------------------------------------------------------- */

static void
op_write(struct model *m, int kind)
{
    unsigned z = (unsigned)rnd(m, m->c.nzones);
    uint64_t lo, len, off;
    static uint8_t buf[4 * MiB];
    int rc;

    switch (rnd(m, 8)) {
    case 0:
    case 1:
    case 2:
    case 3:
        len = 1 + rnd(m, 8192);
        break;
    case 4:
    case 5:
        len = 1 + rnd(m, 256 * KiB);
        break;
    case 6:
        len = 1 + rnd(m, 2 * m->c.granularity + 1);
        break;
    default:
        len = 1 + rnd(m, 3 * MiB);
        break;
    }
    if (rnd(m, 3) == 0)
        len = (len + 511) / 512 * 512;
    if (len > m->c.zone_bytes)
        len = m->c.zone_bytes;
    lo = rnd(m, m->c.zone_bytes - len + 1);
    if (rnd(m, 3) == 0)
        lo = lo / 4096 * 4096;
    off = m->zbase[z] + lo;
    /* Edges: start or end just before, at or after a granule or region
     * boundary (in virtual offsets), and single bytes there. */
    if (rnd(m, 3) == 0) {
        uint64_t unit = rnd(m, 4) == 0 ? m->c.region : m->c.granularity;
        uint64_t e = (off + len) / unit * unit + rnd(m, 3) - 1;

        if (rnd(m, 2) == 0 && off / unit * unit + 1 >= m->zbase[z] + 1) {
            uint64_t o = off / unit * unit + rnd(m, 3);

            if (o > m->zbase[z]) {
                o--;
                len = off + len - o;
                off = o;
            }
        } else if (e > off && e <= m->zbase[z] + m->c.zone_bytes) {
            len = e - off;
        }
        if (rnd(m, 4) == 0 || len == 0)
            len = 1;
        if (off >= m->zbase[z] + m->c.zone_bytes)
            off = m->zbase[z] + m->c.zone_bytes - 1;
        if (off + len > m->zbase[z] + m->c.zone_bytes)
            len = m->zbase[z] + m->c.zone_bytes - off;
        if (len > sizeof(buf))
            len = sizeof(buf);
    }
    rc = tm_rct_mark(m->t, off, len);
    if (rc != 0)
        die("mark [%" PRIu64 ", +%" PRIu64 "): %d %s", off, len, rc,
            tm_rct_err(m->t)->msg);
    m->writes++;
    TRACE("op %lu: mark [%" PRIu64 ", +%" PRIu64 ") kind %d epoch %u\n",
          m->ops, off, len, kind, m->epoch);
    if (kind == 0) {
        uint8_t v = (uint8_t)(m->ops * 13 + 1);

        for (uint64_t k = 0; k < len; k++)
            buf[k] = (uint8_t)(v + (k >> 9));
        shadow_apply(m, z, off, len, buf, false);
    } else {
        shadow_apply(m, z, off, len, NULL, kind == 2);
    }
}

static void
release_old_snaps(struct model *m)
{
    size_t n = m->nids;

    if (n > KEEP_RECENT) {
        struct idrec *r = &m->ids[n - KEEP_RECENT - 1];

        if (r->snap != NULL && !r->keeper)
            drop_snap(m, r);
    }
}

static bool
id_used(const struct model *m, const char *id)
{
    for (size_t i = 0; i < m->nids; i++)
        if (strcmp(m->ids[i].id, id) == 0)
            return true;
    return strcmp(m->other_disk_id, id) == 0;
}

static void
op_seal(struct model *m)
{
    char id[TM_RCT_ID_MAX + 1];
    struct idrec *r;
    int rc;

    memset(id, 0x7f, sizeof(id));
    rc = tm_rct_seal(m->t, id);
    if (rc != 0)
        die("seal: %d %s", rc, tm_rct_err(m->t)->msg);
    if (memchr(id, 0, sizeof(id)) == NULL)
        die("seal: ID not NUL-terminated");
    if (strncmp(id, "rctX:", 5) != 0 || strlen(id) != 5 + 36 + 1 + 8)
        die("seal: malformed ID '%s'", id);
    if (id_used(m, id))
        die("seal: ID '%s' handed out twice", id);
    {
        uint32_t c = (uint32_t)strtoul(id + 5 + 37, NULL, 16);

        if (c > m->max_counter)
            m->max_counter = c;
    }
    if (m->nids == m->capids) {
        m->capids = m->capids == 0 ? 256 : m->capids * 2;
        m->ids = realloc(m->ids, m->capids * sizeof(*m->ids));
        assert_non_null(m->ids);
    }
    r = &m->ids[m->nids++];
    memset(r, 0, sizeof(*r));
    memcpy(r->id, id, sizeof(r->id));
    r->epoch = m->epoch;
    r->bound = m->epoch;
    r->lineage_no = m->lineage_no;
    r->status = ID_LIVE;
    r->snap = snapshot(m);
    TRACE("op %lu: seal %s epoch %u\n", m->ops, id, m->epoch);
    if (m->nids % 40 == 0 && m->kept_old < KEEP_OLD) {
        r->keeper = true;
        m->kept_old++;
    }
    m->epoch++;
    m->seals++;
    m->marked_since_seal = false;
    m->state_exact = true;
    release_old_snaps(m);
}

/* A random retained ID, preferably with a snapshot. */
static struct idrec *
pick_id(struct model *m, bool need_snap)
{
    if (m->nids == 0)
        return NULL;
    for (int tries = 0; tries < 8; tries++) {
        size_t i = rnd(m, 4) == 0 ? rnd(m, m->nids)
                                  : m->nids - 1 -
                                        rnd(m, m->nids < 24 ? m->nids : 24);
        struct idrec *r = &m->ids[i];

        if (r->status == ID_GONE)
            continue;
        if (need_snap && (r->snap == NULL || r->status == ID_RESET))
            continue;
        return r;
    }
    return NULL;
}

static void
op_query(struct model *m)
{
    struct idrec *a = pick_id(m, false), *b = NULL;
    uint64_t off, len;

    if (a == NULL)
        return;
    if (a->snap != NULL && a->status != ID_RESET && rnd(m, 3) == 0) {
        b = pick_id(m, true);
        if (b != NULL && b->epoch < a->epoch) {
            struct idrec *t = a;

            a = b;
            b = t;
        }
        if (b == a)
            b = NULL;
    }
    random_window(m, &off, &len);
    check_query(m, a, b, off, len, random_cap(m));
}

static void
op_persist(struct model *m)
{
    int rc = tm_rct_persist(m->t, &m->b, rnd(m, 4) != 0);

    if (rc != 0)
        die("persist: %d %s", rc, tm_rct_err(m->t)->msg);
    m->persists++;
    TRACE("op %lu: persist\n", m->ops);
    m->persisted_upto = m->nids;
    m->marked_since_persist = false;
    memset(m->region_marked, 0, m->nregions);
}

static void
lineage_reset(struct model *m)
{
    for (size_t i = m->lineage_start; i < m->nids; i++) {
        m->ids[i].status = ID_RESET;
        drop_snap(m, &m->ids[i]);
    }
    m->lineage_start = m->nids;
    m->persisted_upto = m->nids;
    m->lineage_no++;
    for (unsigned z = 0; z < m->c.nzones; z++)
        memset(m->gen[z], 0, m->zgn[z] * sizeof(uint32_t));
    memset(m->region_gen, 0, m->nregions * sizeof(uint32_t));
    memset(m->region_marked, 0, m->nregions);
    m->marked_since_seal = false;
    m->marked_since_persist = false;
    m->kept_old = 0;
    m->state_exact = true;
}

/* how: 0 clean close, 1 crash (free), 2 close then a foreign write. */
static void
op_reopen(struct model *m, int how)
{
    enum tm_rct_open_state st = 99;
    struct tm_err err;
    int rc;

    if (how == 1) {
        tm_rct_free(m->t);
    } else {
        rc = tm_rct_close(m->t, &m->b);
        if (rc != 0)
            die("close: %d", rc);
        m->persisted_upto = m->nids;
        m->marked_since_persist = false;
        memset(m->region_marked, 0, m->nregions);
    }
    m->t = NULL;
    if (how == 2)
        assert_int_equal(tm_guid_generate(&m->b.data_write_guid), 0);
    memset(&err, 0, sizeof(err));
    rc = tm_rct_open(tm_io_borrow_new(m->rct_mem),
                     tm_io_borrow_new(m->mrt_mem), &m->b, &m->t, &st, &err);
    if (rc != 0)
        die("reopen (%s): %d %s", how == 0 ? "clean" : how == 1 ? "crash"
            : "foreign write", rc, err.msg);
    TRACE("op %lu: reopen how %d state %d\n", m->ops, how, (int)st);
    switch (how) {
    case 0:
        m->reopens++;
        if (st != TM_RCT_CLEAN)
            die("clean reopen: state %d, want TM_RCT_CLEAN", (int)st);
        break;
    case 1:
        m->crashes++;
        if (st != TM_RCT_RECOVERED &&
            !(st == TM_RCT_CLEAN && !m->marked_since_persist))
            die("reopen after a crash (marks since persist: %d): state "
                "%d, want TM_RCT_RECOVERED", m->marked_since_persist,
                (int)st);
        /* Recovery: every marked region counts as changed now; IDs
         * sealed after the last persist answer as the last persisted. */
        for (uint64_t r = 0; r < m->nregions; r++)
            if (m->region_marked[r])
                m->region_gen[r] = m->epoch;
        {
            /* The last ID in the .rct's history: orphans of an earlier
             * crash never enter it. */
            uint32_t b = 0;

            for (size_t i = m->persisted_upto; i-- > m->lineage_start;) {
                if (m->ids[i].status == ID_LIVE) {
                    b = m->ids[i].epoch;
                    break;
                }
            }

            for (size_t i = m->persisted_upto; i < m->nids; i++) {
                if (m->ids[i].status != ID_LIVE)
                    continue;
                m->ids[i].status = ID_ORPHAN;
                m->ids[i].bound = b;
            }
        }
        m->state_exact = false;
        break;
    default:
        m->resets++;
        if (st != TM_RCT_RESET_FOREIGN_WRITE)
            die("reopen with a new DataWriteGuid: state %d, want "
                "TM_RCT_RESET_FOREIGN_WRITE", (int)st);
        lineage_reset(m);
        break;
    }
}

static void
op_state(struct model *m)
{
    char id[TM_RCT_ID_MAX + 1];
    bool newer = false;
    int rc = tm_rct_state(m->t, id, &newer);

    if (rc != 0)
        die("state: %d %s", rc, tm_rct_err(m->t)->msg);
    if (!m->state_exact)
        return;
    if (m->nids > m->lineage_start) {
        if (strcmp(id, m->ids[m->nids - 1].id) != 0)
            die("state: ID '%s', want the last sealed '%s'", id,
                m->ids[m->nids - 1].id);
    } else if (id[0] != '\0') {
        die("state: ID '%s' before any seal of this lineage", id);
    }
    if (newer != m->marked_since_seal)
        die("state: newer_changes %d, want %d", newer,
            m->marked_since_seal);
}

static void
expect_query_err(struct model *m, const char *id, const char *until,
                 int want, const char *what)
{
    struct tm_range r[4];
    size_t count = 4;
    uint64_t processed = 0;
    int rc = tm_rct_query(m->t, id, until, 0, m->c.vsize, r, &count,
                          &processed);

    m->errors_checked++;
    if (rc != want)
        die("%s ('%s'%s%s): got %d (%s), want %d (%s)", what, id,
            until != NULL ? " until " : "", until != NULL ? until : "", rc,
            rc != 0 ? tm_rct_err(m->t)->msg : "", want, tm_strerror(want));
}

static void
op_errors(struct model *m)
{
    struct idrec *a = pick_id(m, false);
    char bad[TM_RCT_ID_MAX + 64];
    size_t n;

    expect_query_err(m, "", NULL, TM_E_RCT_INVALID_ID, "empty ID");
    memset(bad, 'a', 300);
    bad[300] = '\0';
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "too long");
    expect_query_err(m, "rctX:", NULL, TM_E_RCT_INVALID_ID, "prefix only");
    expect_query_err(m, m->other_disk_id, NULL, TM_E_RCT_OTHER_DISK,
                     "another disk's ID");
    if (a == NULL || a->status == ID_RESET || a->status == ID_GONE)
        return;
    n = strlen(a->id);
    memcpy(bad, a->id, n + 1);
    bad[3] = 'Y';
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "wrong prefix");
    memcpy(bad, a->id, n + 1);
    bad[n - 1] = 'g';
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "bad hex");
    memcpy(bad, a->id, n + 1);
    bad[n - 3] = ' ';
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "space in hex");
    memcpy(bad, a->id, n + 1);
    memcpy(bad + n, "x", 2);
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "trailing junk");
    memcpy(bad, a->id, n + 1);
    memcpy(bad + n, "0", 2);
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "9 hex digits");
    memcpy(bad, a->id, n + 1);
    bad[n - 1] = '\0';
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "7 hex digits");
    memcpy(bad, a->id, n + 1);
    bad[9] = '-';
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "'-' in the GUID");
    /* A counter this lineage never issued. */
    snprintf(bad, sizeof(bad), "%.*s%08x", (int)(n - 8), a->id,
             m->max_counter + 1000);
    expect_query_err(m, bad, NULL, TM_E_RCT_INVALID_ID, "never issued");
    /* A lineage nobody had: one GUID digit changed. */
    memcpy(bad, a->id, n + 1);
    bad[6] = bad[6] == '0' ? '1' : '0';
    expect_query_err(m, bad, NULL, TM_E_RCT_OTHER_DISK, "unknown lineage");
    /* 'until' older than 'id'. */
    {
        struct idrec *b = pick_id(m, false);

        if (b != NULL && b != a && b->status != ID_RESET &&
            b->status != ID_GONE && a->status == ID_LIVE &&
            b->status == ID_LIVE) {
            if (b->epoch < a->epoch)
                expect_query_err(m, a->id, b->id, TM_E_INVALID,
                                 "until older than id");
            else
                expect_query_err(m, b->id, a->id, TM_E_INVALID,
                                 "until older than id");
        }
    }
}

/* ---- the runs ------------------------------------------------------------ */

static unsigned long
env_ul(const char *name, unsigned long def)
{
    const char *s = getenv(name);

    return s != NULL && *s != '\0' ? strtoul(s, NULL, 0) : def;
}

/* Operations per seed: 10 000, or a TM_CRASH_STRIDE-th of that (at
 * least 1 000) where the suite is thinned, as under ASan in CI. */
static unsigned long
default_ops(void)
{
    unsigned long stride = env_ul("TM_CRASH_STRIDE", 1);
    unsigned long n = stride > 1 ? 10000 / stride : 10000;

    return env_ul("TM_RCT_OPS", n < 1000 ? 1000 : n);
}

static void
run_seed(const struct cfg *c, uint64_t seed, unsigned long nops)
{
    struct model m;
    double t0 = now_s();

    trace = getenv("TM_RCT_TRACE") != NULL;
    snprintf(where, sizeof(where), "%s seed %" PRIu64 " setup", c->name,
             seed);
    model_init(&m, c, seed);
    for (m.ops = 0; m.ops < nops; m.ops++) {
        uint64_t r = rnd(&m, 1000);

        snprintf(where, sizeof(where), "%s seed %" PRIu64 " (G %u, R %"
                 PRIu64 ") op %lu", c->name, seed, c->granularity, c->region,
                 m.ops);
        if (r < 440)
            op_write(&m, 0);
        else if (r < 520)
            op_write(&m, 1);            /* same bytes again */
        else if (r < 580)
            op_write(&m, 2);            /* discard / zero */
        else if (r < 650)
            op_seal(&m);
        else if (r < 820)
            op_query(&m);
        else if (r < 855)
            op_persist(&m);
        else if (r < 870)
            op_reopen(&m, 0);
        else if (r < 890)
            op_reopen(&m, 1);
        else if (r < 920)
            op_errors(&m);
        else if (r < 990)
            op_state(&m);
        else if (r < 993)
            check_all(&m);
        else if (r < 998)
            op_query(&m);
        else
            op_reopen(&m, 2);
        if (m.ops % c->full_check_every == 0 && m.ops > 0)
            check_all(&m);
    }
    snprintf(where, sizeof(where), "%s seed %" PRIu64 " end", c->name, seed);
    check_all(&m);
    op_reopen(&m, 0);
    check_all(&m);
    print_message("%s seed %" PRIu64 " (G %u, R %" PRIu64 "): %lu ops: %lu "
                  "writes, %lu seals, %lu queries, %lu persists, %lu clean "
                  "reopens, %lu crashes, %lu resets, %lu error checks, %lu "
                  "full checks, %lu orphans missing, %lu ranges split by "
                  "pages; %.1f s\n", c->name, seed, c->granularity, c->region,
                  m.ops, m.writes, m.seals, m.queries, m.persists, m.reopens,
                  m.crashes, m.resets, m.errors_checked, m.full_checks,
                  m.orphan_missing, m.split_pages, now_s() - t0);
    model_free(&m);
}

static const uint32_t grans[] = { 4 * KiB, 16 * KiB, 64 * KiB, 2 * MiB };

static void
dense_disk_model(void **state)
{
    unsigned long nops = default_ops();
    unsigned long only = env_ul("TM_RCT_SEED", 0);

    for (uint64_t seed = 1; seed <= 6; seed++) {
        struct cfg c = {
            .name = "dense 64 MiB",
            .vsize = 64 * MiB,
            .nzones = 1,
            .zone_bytes = 64 * MiB,
            .full_check_every = 250,
        };

        if (only != 0 && only != seed)
            continue;
        c.granularity = grans[(seed - 1) % 4];
        c.region = seed % 2 ? (uint64_t)c.granularity * 16
                            : (seed == 2 ? 1 * GiB : 4 * MiB);
        if (c.region < c.granularity)
            c.region = c.granularity;
        run_seed(&c, seed, nops);
    }
}

static void
sparse_disk_model(void **state)
{
    unsigned long nops = default_ops();
    unsigned long only = env_ul("TM_RCT_SEED", 0);

    for (uint64_t seed = 7; seed <= 8; seed++) {
        struct cfg c = {
            .name = seed == 7 ? "sparse 256 GiB" : "sparse 1 TiB",
            .vsize = (seed == 7 ? 256 * GiB : TiB) + 7 * 4096 + 512,
            .nzones = MAXZ,
            .zone_bytes = 1 * MiB,
            /* seed 8: 65 536 regions, a .mrt bitmap of 3 sectors */
            .granularity = seed == 7 ? 64 * KiB : 256 * KiB,
            .region = seed == 7 ? 64 * MiB : 16 * MiB,
            .full_check_every = 1000,
        };

        if (only != 0 && only != seed)
            continue;
        run_seed(&c, seed, nops);
    }
}

/* Deterministic error contract: resets through a foreign write and a
 * resize, IDs of resets before that, until/id order. */
static void
resets_and_bad_ids(void **state)
{
    struct tm_io *rm = tm_io_mem_new(), *mm = tm_io_mem_new();
    struct tm_rct_binding b = { .virtual_size = 16 * MiB };
    struct tm_rct_params p = { 0 };
    struct tm_rct *t;
    struct tm_err err;
    enum tm_rct_open_state st;
    char id1[TM_RCT_ID_MAX + 1], id2[TM_RCT_ID_MAX + 1];
    char id3[TM_RCT_ID_MAX + 1], id4[TM_RCT_ID_MAX + 1];
    struct tm_range r[8];
    size_t count;
    uint64_t processed;

    snprintf(where, sizeof(where), "resets");
    assert_int_equal(tm_guid_generate(&b.data_write_guid), 0);
    assert_int_equal(tm_rct_create(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                   &p, &b, &t, &err), 0);
    assert_int_equal(tm_rct_mark(t, 4096, 10), 0);
    assert_int_equal(tm_rct_seal(t, id1), 0);
    assert_int_equal(tm_rct_mark(t, 5 * MiB, 10), 0);
    assert_int_equal(tm_rct_seal(t, id2), 0);

    count = 8;
    assert_int_equal(tm_rct_query(t, id2, id1, 0, 16 * MiB, r, &count,
                                  &processed), TM_E_INVALID);
    count = 8;
    assert_int_equal(tm_rct_query(t, id1, id2, 0, 16 * MiB, r, &count,
                                  &processed), 0);
    assert_int_equal(count, 1);
    assert_int_equal(r[0].off, 5 * MiB);
    assert_int_equal(r[0].len, 64 * KiB);
    /* A capacity of 0. */
    count = 0;
    assert_int_equal(tm_rct_query(t, id1, NULL, 0, 16 * MiB, r, &count,
                                  &processed), TM_E_INVALID);
    /* Persist: NULL keeps the binding; another size is refused. */
    assert_int_equal(tm_rct_persist(t, NULL, true), 0);
    {
        struct tm_rct_binding b2 = b;

        b2.virtual_size = 32 * MiB;
        assert_int_equal(tm_rct_persist(t, &b2, true), TM_E_INVALID);
    }
    /* Outside the disk. */
    assert_int_equal(tm_rct_mark(t, 16 * MiB - 1, 2), TM_E_RANGE);
    assert_int_equal(tm_rct_mark(t, UINT64_MAX - 1, 4), TM_E_RANGE);
    assert_int_equal(tm_rct_close(t, &b), 0);

    /* A foreign write. */
    assert_int_equal(tm_guid_generate(&b.data_write_guid), 0);
    assert_int_equal(tm_rct_open(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                 &b, &t, &st, &err), 0);
    assert_int_equal(st, TM_RCT_RESET_FOREIGN_WRITE);
    /* rct.h: on a reset *err has code 0 and names the reason. */
    assert_int_equal(err.code, 0);
    assert_true(err.msg[0] != '\0');
    count = 8;
    assert_int_equal(tm_rct_query(t, id1, NULL, 0, 16 * MiB, r, &count,
                                  &processed), TM_E_RCT_RESET);
    assert_int_equal(tm_rct_mark(t, 0, 1), 0);
    assert_int_equal(tm_rct_seal(t, id3), 0);
    assert_string_not_equal(id3, id1);
    assert_string_not_equal(id3, id2);
    assert_int_equal(tm_rct_close(t, &b), 0);

    /* A resize: every older lineage fails "reset". */
    b.virtual_size = 32 * MiB;
    assert_int_equal(tm_rct_open(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                 &b, &t, &st, &err), 0);
    assert_int_equal(st, TM_RCT_RESET_RESIZED);
    count = 8;
    assert_int_equal(tm_rct_query(t, id3, NULL, 0, 32 * MiB, r, &count,
                                  &processed), TM_E_RCT_RESET);
    count = 8;
    if (tm_rct_query(t, id1, NULL, 0, 32 * MiB, r, &count, &processed) !=
        TM_E_RCT_RESET)
        fail_msg("an ID two resets old: %s, want TM_E_RCT_RESET",
                 tm_rct_err(t)->msg);
    assert_int_equal(tm_rct_mark(t, 20 * MiB, 1), 0);
    assert_int_equal(tm_rct_seal(t, id4), 0);
    count = 8;
    assert_int_equal(tm_rct_query(t, id4, NULL, 0, 32 * MiB, r, &count,
                                  &processed), 0);
    assert_int_equal(count, 0);
    assert_int_equal(processed, 32 * MiB);
    assert_int_equal(tm_rct_close(t, &b), 0);

    /* Same binding again: clean, and the new ID still works. */
    assert_int_equal(tm_rct_open(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                 &b, &t, &st, &err), 0);
    assert_int_equal(st, TM_RCT_CLEAN);
    count = 8;
    assert_int_equal(tm_rct_query(t, id4, NULL, 0, 32 * MiB, r, &count,
                                  &processed), 0);
    assert_int_equal(count, 0);
    assert_int_equal(tm_rct_close(t, &b), 0);

    /* Bad parameters. */
    {
        struct tm_io *r2 = tm_io_mem_new(), *m2 = tm_io_mem_new();
        struct tm_rct_params bad = { .granularity = 3000 };

        assert_int_equal(tm_rct_create(tm_io_borrow_new(r2),
                                       tm_io_borrow_new(m2), &bad, &b, &t,
                                       &err), TM_E_INVALID);
        bad = (struct tm_rct_params){ .granularity = 64 * KiB,
                                      .region = 32 * KiB };
        assert_int_equal(tm_rct_create(tm_io_borrow_new(r2),
                                       tm_io_borrow_new(m2), &bad, &b, &t,
                                       &err), TM_E_INVALID);
        bad = (struct tm_rct_params){ .granularity = 4 * MiB };
        assert_int_equal(tm_rct_create(tm_io_borrow_new(r2),
                                       tm_io_borrow_new(m2), &bad, &b, &t,
                                       &err), TM_E_INVALID);
        tm_io_close(r2);
        tm_io_close(m2);
    }
    tm_io_close(rm);
    tm_io_close(mm);
}

/* Found by the model (seed 4): a seal right after a clean open, with no
 * write, then a crash.  The .mrt durably says the ID was handed out, but
 * the reopen finds the .rct OPEN flag clear and no region bit set, calls
 * it CLEAN and ignores the .mrt's "highest handed out": the ID then
 * fails "never issued" and the next seal hands out the SAME ID string for
 * a later state, so a query of it misses every write in between. */
static void
seal_after_clean_open_then_crash(void **state)
{
    struct tm_io *rm = tm_io_mem_new(), *mm = tm_io_mem_new();
    struct tm_rct_binding b = { .virtual_size = 16 * MiB };
    struct tm_rct_params p = { 0 };
    struct tm_rct *t;
    struct tm_err err;
    enum tm_rct_open_state st;
    char id1[TM_RCT_ID_MAX + 1], id2[TM_RCT_ID_MAX + 1];
    struct tm_range r[8];
    size_t count = 8;
    uint64_t processed;
    int rc;

    assert_int_equal(tm_guid_generate(&b.data_write_guid), 0);
    assert_int_equal(tm_rct_create(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                   &p, &b, &t, &err), 0);
    assert_int_equal(tm_rct_close(t, &b), 0);
    assert_int_equal(tm_rct_open(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                 &b, &t, &st, &err), 0);
    assert_int_equal(tm_rct_seal(t, id1), 0);   /* durable, handed out */
    tm_rct_free(t);                             /* crash */
    assert_int_equal(tm_rct_open(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                 &b, &t, &st, &err), 0);
    /* The caller writes 1 MiB at 8 MiB, then seals. */
    assert_int_equal(tm_rct_mark(t, 8 * MiB, MiB), 0);
    assert_int_equal(tm_rct_seal(t, id2), 0);
    if (strcmp(id1, id2) == 0)
        fail_msg("ID '%s' handed out twice, for two different states", id1);
    rc = tm_rct_query(t, id1, NULL, 0, 16 * MiB, r, &count, &processed);
    if (rc == 0 && count == 0)
        fail_msg("MISSED CHANGE: [8 MiB, 9 MiB) written after '%s' was "
                 "sealed, not reported", id1);
    if (rc != 0 && rc != TM_E_RCT_MISSING && rc != TM_E_RCT_RESET)
        fail_msg("query of '%s', handed out before the crash: %d (%s)",
                 id1, rc, tm_rct_err(t)->msg);
    tm_rct_free(t);
    tm_io_close(rm);
    tm_io_close(mm);
}

/* Past epoch 65 535 the history is renumbered (docs/formats/rct.md):
 * old IDs fail "missing", retained ones still report every change, across
 * a persist and reopen too.  Model: the seal index of each granule's last
 * write. */
#define RN_GRANULES 256u
static void
check_renumbered(struct tm_rct *t, const char (*ids)[TM_RCT_ID_MAX + 1],
                 uint32_t nseals, const uint32_t *gen, uint32_t i)
{
    struct tm_range r[RN_GRANULES];
    size_t count = RN_GRANULES;
    uint64_t processed;
    int rc = tm_rct_query(t, ids[i], NULL, 0, RN_GRANULES * 64 * KiB, r,
                          &count, &processed);

    if (rc == TM_E_RCT_MISSING) {
        /* at least 32 767 newest IDs must be retained */
        if (nseals - i < 32767)
            fail_msg("ID %u of %u (%s) missing: fewer than half retained",
                     i, nseals, ids[i]);
        return;
    }
    if (rc != 0)
        fail_msg("query of ID %u of %u: %d (%s)", i, nseals, rc,
                 tm_rct_err(t)->msg);
    for (uint32_t g = 0; g < RN_GRANULES; g++) {
        bool rep = false;

        for (size_t k = 0; k < count; k++)
            if (r[k].off <= g * 64 * KiB && g * 64 * KiB < r[k].off + r[k].len)
                rep = true;
        /* gen[g] - 1: the iteration of the last write, made before
         * that iteration's seal. */
        if (gen[g] > i + 1 && !rep)
            fail_msg("MISSED CHANGE after renumbering: granule %u written "
                     "just before seal %u, not reported for ID %u (%s)", g,
                     gen[g] - 1, i, ids[i]);
        if (gen[g] <= i + 1 && rep)
            fail_msg("over-report after renumbering: granule %u last "
                     "written before seal %u, reported for ID %u (%s)", g,
                     gen[g] - 1, i, ids[i]);
    }
}

static void
renumbering_keeps_changes(void **state)
{
    const uint32_t nseals = 70000;
    struct tm_io *rm = tm_io_mem_new(), *mm = tm_io_mem_new();
    struct tm_rct_binding b = { .virtual_size = RN_GRANULES * 64 * KiB };
    struct tm_rct_params p = { 0 };
    char (*ids)[TM_RCT_ID_MAX + 1] = calloc(nseals, TM_RCT_ID_MAX + 1);
    uint32_t gen[RN_GRANULES] = { 0 };  /* seal count before the write + 1 */
    uint64_t rs = 42;
    struct tm_rct *t;
    struct tm_err err;
    enum tm_rct_open_state st;
    double t0 = now_s();

    assert_non_null(ids);
    assert_int_equal(tm_guid_generate(&b.data_write_guid), 0);
    assert_int_equal(tm_rct_create(tm_io_borrow_new(rm), tm_io_borrow_new(mm),
                                   &p, &b, &t, &err), 0);
    for (uint32_t i = 0; i < nseals; i++) {
        /* Write granule g: changed since every seal < i + 1. */
        uint32_t g = (uint32_t)(next_rand(&rs) % RN_GRANULES);

        /* Some granules are written rarely, so old gens survive. */
        if (g < 32 || next_rand(&rs) % 64 == 0) {
            assert_int_equal(tm_rct_mark(t, g * 64 * KiB + 7, 100), 0);
            gen[g] = i + 1;
        }
        assert_int_equal(tm_rct_seal(t, ids[i]), 0);
        if (i % 9973 == 0 || (i > 65500 && i < 65560) || i == nseals - 1) {
            for (uint32_t k = 0; k < 6; k++)
                check_renumbered(t, ids, i + 1, gen,
                                 i - (uint32_t)(next_rand(&rs) % (i + 1)));
            check_renumbered(t, ids, i + 1, gen, i);
        }
        if (i == 66000) {
            assert_int_equal(tm_rct_close(t, &b), 0);
            assert_int_equal(tm_rct_open(tm_io_borrow_new(rm),
                                         tm_io_borrow_new(mm), &b, &t, &st,
                                         &err), 0);
            assert_int_equal(st, TM_RCT_CLEAN);
            for (uint32_t k = 0; k < 20; k++)
                check_renumbered(t, ids, i + 1, gen,
                                 i - (uint32_t)(next_rand(&rs) % (i + 1)));
        }
    }
    for (uint32_t i = nseals - 30000; i < nseals; i += 997)
        check_renumbered(t, ids, nseals, gen, i);
    {
        /* The oldest IDs fail "missing", not "invalid" or success. */
        struct tm_range r[4];
        size_t count = 4;
        uint64_t processed;
        int rc = tm_rct_query(t, ids[0], NULL, 0, b.virtual_size, r, &count,
                              &processed);

        if (rc != TM_E_RCT_MISSING)
            fail_msg("the first ID after renumbering: %d (%s), want "
                     "TM_E_RCT_MISSING", rc, tm_rct_err(t)->msg);
    }
    assert_int_equal(tm_rct_close(t, &b), 0);
    print_message("renumbering: %u seals; %.1f s\n", nseals, now_s() - t0);
    free(ids);
    tm_io_close(rm);
    tm_io_close(mm);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resets_and_bad_ids),
        cmocka_unit_test(seal_after_clean_open_then_crash),
        cmocka_unit_test(renumbering_keeps_changes),
        cmocka_unit_test(dense_disk_model),
        cmocka_unit_test(sparse_disk_model),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
