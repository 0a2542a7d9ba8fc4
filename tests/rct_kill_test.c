/* SPDX-License-Identifier: MIT */
/* rct_kill_test.c - a real process killed with SIGKILL in the middle of a
 * change-tracking workload, again and again (DESIGN.md invariants 1, 2).
 *
 * Each run forks a child that creates a tracked disk (tm_vdisk_create
 * with change_tracking) or reopens the disk the previous run left behind
 * (a chain of runs: recovery compounds), then loops forever: random
 * writes (sub-sector, sub-granule, multi-granule, across blocks; data
 * from a seeded PRNG), discards (zero and unmap), seals and flushes.
 * Before each write or discard the child appends an intent record {op,
 * off, len, seed} to a log with write(2); after each seal returns it
 * appends the ID, after each flush a flush record (no fsync: SIGKILL
 * keeps the page cache).  The parent kills it after 0-200 ms, reaps it
 * and checks through the library:
 *
 *  - the disk opens (VHDX log replay, tracking recovery), read-write or
 *    read-only (then the next child recovers the same crash again);
 *  - every byte that no write or discard touched since the last flush or
 *    seal still holds what the replayed log says;
 *  - for every sealed ID of the chain (this run's and earlier runs'),
 *    the state at the ID (the run's starting content plus the log
 *    replayed up to the seal, on copy-on-write pages) differs from the
 *    disk now only inside ranges tm_vdisk_query_changes(ID) returns
 *    (paged with small capacities; ascending, merged, granule aligned),
 *    and the same for query_changes_between on consecutive IDs;
 *  - never TM_E_RCT_RESET, nor an open that finds a reset: a kill in
 *    the first write or discard of an open (bind(), where the disk's
 *    DataWriteGuid is renewed) is recovered too, because the .rct
 *    announces the new GUID before the disk carries it
 *    (docs/formats/rct.md, "Binding to the disk"); any reset, error or
 *    missed byte fails;
 *  - no ID is handed out twice.
 *
 * Over-reporting is printed, not bounded: a crash makes every .mrt
 * region written since the last persist "changed".  Half the chains get
 * 1 MiB regions (sidecars made through lib/rct, which vdisk keeps), so
 * the check has bytes to tell apart; the other half the default 1 GiB,
 * which covers the whole of these small disks.  The child also persists
 * the fine map now and then (tm_vdisk_persist_tracking).
 *
 * TM_CRASH_STRIDE=N runs 60/N runs (at least 10; 60 by default);
 * TM_KILL_RUNS sets the count, TM_KILL_SEED the seed, TM_KILL_TRACE=1
 * prints every seal. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crash_util.h"

#include "tidemark/vdisk.h"
#include "io.h"
#include "rct.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define PAGE (64u * 1024u)
#define MAXW (1024u * 1024u)    /* largest write */
#define MAX_KEEP 16             /* IDs kept per chain */
#define MAX_CHAIN_IDS 4096
#define LOG_MAGIC 0x6b6c6f67u

/* ---- the intent log --------------------------------------------------- */

enum rec_type {
    REC_OPEN = 1,       /* a = found (tm_vdisk_tracking_open), b = created */
    REC_WRITE,          /* a = off, b = len, c = data seed (0: zeros) */
    REC_DISCARD,        /* a = off, b = len, c = mode */
    REC_FLUSH,          /* a flush returned */
    REC_SEAL,           /* a seal returned id */
};

struct rec {
    uint32_t magic;
    uint32_t type;
    uint64_t a, b, c;
    char id[64];
};

/* ---- copy-on-write pages ---------------------------------------------- */

struct page {
    unsigned refs;
    uint8_t d[PAGE];
};

static const uint8_t zero_page[PAGE];

struct snap {
    size_t n;
    struct page **p;            /* NULL: zeros */
};

static struct snap *
snap_new(size_t n)
{
    struct snap *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    s->n = n;
    s->p = calloc(n, sizeof(*s->p));
    assert_non_null(s->p);
    return s;
}

static struct snap *
snap_dup(const struct snap *src)
{
    struct snap *s = snap_new(src->n);

    for (size_t i = 0; i < src->n; i++) {
        s->p[i] = src->p[i];
        if (s->p[i] != NULL)
            s->p[i]->refs++;
    }
    return s;
}

static void
snap_free(struct snap *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (s->p[i] != NULL && --s->p[i]->refs == 0)
            free(s->p[i]);
    free(s->p);
    free(s);
}

static const uint8_t *
snap_rd(const struct snap *s, size_t i)
{
    return s->p[i] != NULL ? s->p[i]->d : zero_page;
}

/* A private, writable copy of page i. */
static uint8_t *
snap_wr(struct snap *s, size_t i)
{
    struct page *pg = s->p[i];

    if (pg == NULL) {
        pg = calloc(1, sizeof(*pg));
        assert_non_null(pg);
        pg->refs = 1;
        s->p[i] = pg;
    } else if (pg->refs > 1) {
        struct page *c = malloc(sizeof(*c));

        assert_non_null(c);
        memcpy(c->d, pg->d, PAGE);
        c->refs = 1;
        pg->refs--;
        s->p[i] = c;
        pg = c;
    }
    return pg->d;
}

/* Writes buf (NULL: zeros) at off. */
static void
snap_apply(struct snap *s, uint64_t off, const uint8_t *buf, uint64_t len)
{
    while (len > 0) {
        size_t i = (size_t)(off / PAGE);
        uint64_t o = off % PAGE;
        uint64_t n = PAGE - o < len ? PAGE - o : len;

        assert_true(i < s->n);
        if (buf != NULL)
            memcpy(snap_wr(s, i) + o, buf, n);
        else if (s->p[i] != NULL)
            memset(snap_wr(s, i) + o, 0, n);
        if (buf != NULL)
            buf += n;
        off += n;
        len -= n;
    }
}

/* The disk's content as pages, sharing every page of 'like' it equals. */
static struct snap *
snap_from_flat(const uint8_t *flat, const struct snap *like)
{
    struct snap *s = snap_new(like->n);

    for (size_t i = 0; i < like->n; i++) {
        const uint8_t *d = flat + (uint64_t)i * PAGE;

        if (memcmp(d, snap_rd(like, i), PAGE) == 0) {
            s->p[i] = like->p[i];
            if (s->p[i] != NULL)
                s->p[i]->refs++;
        } else if (memcmp(d, zero_page, PAGE) != 0) {
            memcpy(snap_wr(s, i), d, PAGE);
        }
    }
    return s;
}

/* ---- ranges and coverage ---------------------------------------------- */

struct rlist {
    struct tm_range *r;
    size_t n, cap;
};

static void
rlist_add(struct rlist *l, uint64_t off, uint64_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->r = realloc(l->r, l->cap * sizeof(*l->r));
        assert_non_null(l->r);
    }
    l->r[l->n].off = off;
    l->r[l->n].len = len;
    l->n++;
}

static int
range_cmp(const void *a, const void *b)
{
    const struct tm_range *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off;
}

/* Sorts and merges (touching ranges too). */
static void
rlist_normalise(struct rlist *l)
{
    size_t w = 0;

    if (l->n == 0)
        return;
    qsort(l->r, l->n, sizeof(*l->r), range_cmp);
    for (size_t i = 0; i < l->n; i++) {
        if (w > 0 && l->r[i].off <= l->r[w - 1].off + l->r[w - 1].len) {
            uint64_t e = l->r[i].off + l->r[i].len;

            if (e > l->r[w - 1].off + l->r[w - 1].len)
                l->r[w - 1].len = e - l->r[w - 1].off;
        } else {
            l->r[w++] = l->r[i];
        }
    }
    l->n = w;
}

/* Differing runs, ascending, checked against ascending ranges. */
struct cover {
    const struct tm_range *r;
    size_t n, i;
    uint64_t diff_bytes;        /* in pages scanned byte by byte */
    uint64_t covered_pages;     /* differing or not, inside one range */
    uint64_t missed;
    uint64_t first_miss;
};

static void
cover_run(struct cover *c, uint64_t a, uint64_t b)
{
    c->diff_bytes += b - a;
    while (a < b) {
        while (c->i < c->n && c->r[c->i].off + c->r[c->i].len <= a)
            c->i++;
        if (c->i == c->n || c->r[c->i].off > a) {
            uint64_t e = c->i < c->n && c->r[c->i].off < b ? c->r[c->i].off
                                                           : b;

            if (c->missed == 0)
                c->first_miss = a;
            c->missed += e - a;
            a = e;
            continue;
        }
        a = c->r[c->i].off + c->r[c->i].len < b
                ? c->r[c->i].off + c->r[c->i].len
                : b;
    }
}

/* Feeds every byte run where x and y differ to c. */
static void
diff_cover(const struct snap *x, const struct snap *y, struct cover *c)
{
    for (size_t i = 0; i < x->n; i++) {
        const uint8_t *dx, *dy;
        uint64_t base = (uint64_t)i * PAGE;
        size_t k = 0;

        if (x->p[i] == y->p[i])
            continue;
        /* A page inside one range needs no byte scan. */
        while (c->i < c->n && c->r[c->i].off + c->r[c->i].len <= base)
            c->i++;
        if (c->i < c->n && c->r[c->i].off <= base &&
            c->r[c->i].off + c->r[c->i].len >= base + PAGE) {
            c->covered_pages++;
            continue;
        }
        dx = snap_rd(x, i);
        dy = snap_rd(y, i);
        if (memcmp(dx, dy, PAGE) == 0)
            continue;
        while (k < PAGE) {
            size_t e;

            if (dx[k] == dy[k]) {
                k++;
                continue;
            }
            e = k;
            while (e < PAGE && dx[e] != dy[e])
                e++;
            cover_run(c, base + k, base + e);
            k = e;
        }
    }
}

static uint8_t
snap_byte(const struct snap *s, uint64_t off)
{
    return snap_rd(s, (size_t)(off / PAGE))[off % PAGE];
}

/* ---- the workload ------------------------------------------------------ */

struct disk_cfg {
    uint64_t vsize;
    uint32_t granularity;
    uint32_t block_size;
    uint32_t logical_sector;
    bool fixed;
};

struct child_cfg {
    const char *disk, *log;
    bool create;
    struct disk_cfg dc;
    uint64_t seed;
    uint64_t hot;               /* 8 MiB of most writes */
};

static void
gen_data(uint8_t *buf, uint64_t len, uint64_t seed)
{
    uint64_t s = seed;

    if (seed == 0) {
        memset(buf, 0, len);
        return;
    }
    for (uint64_t k = 0; k < len; k += 8) {
        uint64_t v = next_rand(&s);

        memcpy(buf + k, &v, len - k < 8 ? (size_t)(len - k) : 8);
    }
}

/* A write's or discard's place: mostly in the hot 8 MiB, unaligned,
 * sector or granule aligned; sub-sector, sub-granule, multi-granule or
 * up to 1 MiB long; sometimes across a block boundary. */
static void
pick_range(const struct child_cfg *c, uint64_t *s, uint64_t *off,
           uint64_t *len)
{
    const struct disk_cfg *dc = &c->dc;
    uint64_t g = dc->granularity, r = next_rand(s) % 100, o;

    if (r < 25)
        *len = 1 + next_rand(s) % 511;
    else if (r < 50)
        *len = 1 + next_rand(s) % (g - 1);
    else if (r < 75)
        *len = g + next_rand(s) % (3 * g + 1);
    else
        *len = 1 + next_rand(s) % MAXW;
    if (*len > MAXW)
        *len = MAXW;
    r = next_rand(s) % 100;
    if (r < 10) {
        /* Across a block boundary. */
        uint64_t nb = dc->vsize / dc->block_size;

        if (nb > 1) {
            o = (1 + next_rand(s) % (nb - 1)) * dc->block_size;
            o -= 1 + next_rand(s) % (*len < o ? *len : o);
        } else {
            o = next_rand(s) % dc->vsize;
        }
    } else if (r < 75) {
        o = c->hot + next_rand(s) % (8 * MiB);
    } else {
        o = next_rand(s) % dc->vsize;
    }
    switch (next_rand(s) % 3) {
    case 0:
        o -= o % 512;
        break;
    case 1:
        o -= o % g;
        break;
    default:
        break;
    }
    if (o >= dc->vsize)
        o = dc->vsize - 1;
    if (*len > dc->vsize - o)
        *len = dc->vsize - o;
    *off = o;
}

static void
child_log(int fd, uint32_t type, uint64_t a, uint64_t b, uint64_t c,
          const char *id)
{
    struct rec r;
    ssize_t n;

    memset(&r, 0, sizeof(r));
    r.magic = LOG_MAGIC;
    r.type = type;
    r.a = a;
    r.b = b;
    r.c = c;
    if (id != NULL) {
        if (strlen(id) >= sizeof(r.id)) {
            fprintf(stderr, "child: ID '%s' too long\n", id);
            _exit(3);
        }
        memcpy(r.id, id, strlen(id) + 1);
    }
    n = write(fd, &r, sizeof(r));
    if (n != (ssize_t)sizeof(r)) {
        fprintf(stderr, "child: log write: %s\n", strerror(errno));
        _exit(3);
    }
}

static void
child_fail(struct tm_vdisk *d, const char *what, int rc)
{
    fprintf(stderr, "child: %s: %d (%s): %s\n", what, rc, tm_strerror(rc),
            d != NULL ? tm_vdisk_err(d)->msg : "");
    _exit(3);
}

/* Runs until killed. */
static void __attribute__((noreturn))
child_main(const struct child_cfg *c)
{
    struct tm_vdisk *d = NULL;
    struct tm_vdisk_info vi = { .kind = TM_VDISK_INFO_CHANGE_TRACKING_STATE };
    struct tm_err e;
    uint64_t s = c->seed;
    uint8_t *buf = malloc(MAXW);
    int fd, rc;

    fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
              0600);
    if (fd < 0 || buf == NULL) {
        fprintf(stderr, "child: cannot open '%s'\n", c->log);
        _exit(3);
    }
    if (c->create && (c->seed & 1)) {
        /* Tracking made through the layer below with 1 MiB coarse
         * regions, which vdisk keeps: after a kill only the regions
         * written since the last persist come back, so the check has
         * bytes to tell apart (with 1 GiB regions the whole disk does). */
        struct tm_vdisk_create_params p = {
            .virtual_size = c->dc.vsize,
            .block_size = c->dc.block_size,
            .logical_sector = c->dc.logical_sector,
            .fixed = c->dc.fixed,
        };
        struct tm_rct_params rp = { .granularity = c->dc.granularity,
                                    .region = 1u << 20 };
        struct tm_vdisk_info id = { .kind = TM_VDISK_INFO_IDENTIFIER };
        struct tm_rct_binding b = { .virtual_size = c->dc.vsize };
        struct tm_io *rio = NULL, *mio = NULL;
        struct tm_rct *t = NULL;
        char side[600];

        rc = tm_vdisk_create(c->disk, &p, &d, &e);
        if (rc == 0)
            rc = tm_vdisk_get_info(d, &id);
        if (rc == 0)
            rc = tm_vdisk_close(d);
        d = NULL;
        b.data_write_guid = id.identifier;
        snprintf(side, sizeof(side), "%s.rct", c->disk);
        if (rc == 0)
            rc = tm_io_posix_open(side, TM_IO_CREATE | TM_IO_TRUNC, &rio);
        snprintf(side, sizeof(side), "%s.mrt", c->disk);
        if (rc == 0)
            rc = tm_io_posix_open(side, TM_IO_CREATE | TM_IO_TRUNC, &mio);
        if (rc == 0)
            rc = tm_rct_create(rio, mio, &rp, &b, &t, &e);
        if (rc == 0)
            rc = tm_rct_close(t, &b);
        if (rc == 0)
            rc = tm_vdisk_open(c->disk, 0, NULL, &d, &e);
    } else if (c->create) {
        struct tm_vdisk_create_params p = {
            .virtual_size = c->dc.vsize,
            .block_size = c->dc.block_size,
            .logical_sector = c->dc.logical_sector,
            .fixed = c->dc.fixed,
            .change_tracking = true,
            .tracking_granularity = c->dc.granularity,
        };

        rc = tm_vdisk_create(c->disk, &p, &d, &e);
    } else {
        rc = tm_vdisk_open(c->disk, 0, NULL, &d, &e);
    }
    if (rc < 0) {
        fprintf(stderr, "child: %s '%s': %d (%s): %s\n",
                c->create ? "create" : "open", c->disk, rc, tm_strerror(rc),
                e.msg);
        _exit(3);
    }
    rc = tm_vdisk_get_info(d, &vi);
    if (rc < 0)
        child_fail(d, "get_info", rc);
    if (!vi.change_tracking.enabled) {
        fprintf(stderr, "child: tracking is off after open\n");
        _exit(3);
    }
    child_log(fd, REC_OPEN, (uint64_t)vi.change_tracking.found, c->create, 0,
              NULL);
    for (;;) {
        uint64_t r = next_rand(&s) % 100, off, len;
        char id[TM_VDISK_RCT_ID_MAX + 1];

        if (r < 80) {
            uint64_t seed = next_rand(&s) % 20 == 0 ? 0 : next_rand(&s) | 1;

            pick_range(c, &s, &off, &len);
            gen_data(buf, len, seed);
            child_log(fd, REC_WRITE, off, len, seed, NULL);
            rc = tm_vdisk_write(d, buf, (size_t)len, off);
            if (rc < 0)
                child_fail(d, "write", rc);
        } else if (r < 86) {
            enum tm_vdisk_discard_mode mode = next_rand(&s) % 2
                                                  ? TM_VDISK_DISCARD_ZERO
                                                  : TM_VDISK_DISCARD_UNMAP;

            if (next_rand(&s) % 2) {
                /* Whole blocks: a real unmap. */
                uint64_t nb = c->dc.vsize / c->dc.block_size;

                off = next_rand(&s) % (nb > 0 ? nb : 1) * c->dc.block_size;
                len = c->dc.block_size;
                if (len > c->dc.vsize - off)
                    len = c->dc.vsize - off;
            } else {
                pick_range(c, &s, &off, &len);
            }
            child_log(fd, REC_DISCARD, off, len, (uint64_t)mode, NULL);
            rc = tm_vdisk_discard(d, off, len, mode);
            if (rc < 0)
                child_fail(d, "discard", rc);
        } else if (r < 88) {
            /* The fine map to the .rct, the .mrt cleared: what a later
             * kill leaves to recovery starts here. */
            rc = tm_vdisk_persist_tracking(d);
            if (rc < 0)
                child_fail(d, "persist", rc);
        } else if (r < 93) {
            rc = tm_vdisk_seal(d, id);
            if (rc < 0)
                child_fail(d, "seal", rc);
            child_log(fd, REC_SEAL, 0, 0, 0, id);
        } else {
            rc = tm_vdisk_flush(d);
            if (rc < 0)
                child_fail(d, "flush", rc);
            child_log(fd, REC_FLUSH, 0, 0, 0, NULL);
        }
    }
}

/* ---- the parent's model --------------------------------------------- */

struct idrec {
    char id[64];
    struct snap *snap;          /* the disk at the seal */
    uint8_t *after;             /* granules touched since: a bitmap */
    unsigned run;
};

struct chain {
    unsigned no, runs, len;
    bool alive;
    struct disk_cfg dc;
    uint64_t granules;
    struct snap *base;          /* the disk when the next run starts */
    struct idrec *ids;
    unsigned nids, capids;
    char (*all)[64];            /* every ID handed out, for uniqueness */
    unsigned *all_run;          /* the run that handed it out */
    unsigned nall;
    int expect_child;           /* what the next child's open must find,
                                 * or -1 */
};

struct totals {
    unsigned runs, chains, killed_in_open, killed_in_create, bind_crashes;
    unsigned child_recovered, parent_recovered;
    unsigned long ops, seals, queries, between;
    uint64_t diff_bytes, covered_pages, reported_bytes, over_bytes;
    unsigned create_fail_open_ok, create_fail_open_err;
};

static int trace;               /* TM_KILL_TRACE=1: print every seal */
static char tmpdir[256];
static char disk_path[300], log_path[300];

static const char *
found_name(int f)
{
    switch (f) {
    case TM_VDISK_TRACKING_CLEAN:
        return "clean";
    case TM_VDISK_TRACKING_RECOVERED:
        return "recovered";
    case TM_VDISK_TRACKING_RESET_FOREIGN_WRITE:
        return "reset-foreign-write";
    case TM_VDISK_TRACKING_RESET_RESIZED:
        return "reset-resized";
    case TM_VDISK_TRACKING_RESET_CORRUPT:
        return "reset-corrupt";
    default:
        return "?";
    }
}

static void
remove_disk(void)
{
    char n[320];

    (void)unlink(disk_path);
    snprintf(n, sizeof(n), "%s.rct", disk_path);
    (void)unlink(n);
    snprintf(n, sizeof(n), "%s.mrt", disk_path);
    (void)unlink(n);
}

static void
chain_free(struct chain *ch)
{
    for (unsigned i = 0; i < ch->nids; i++) {
        snap_free(ch->ids[i].snap);
        free(ch->ids[i].after);
    }
    ch->nids = 0;
    free(ch->ids);
    ch->ids = NULL;
    ch->capids = 0;
    snap_free(ch->base);
    ch->base = NULL;
    free(ch->all);
    ch->all = NULL;
    free(ch->all_run);
    ch->all_run = NULL;
    ch->nall = 0;
    ch->alive = false;
}

static void
chain_drop_id(struct chain *ch, unsigned i)
{
    snap_free(ch->ids[i].snap);
    free(ch->ids[i].after);
    memmove(&ch->ids[i], &ch->ids[i + 1],
            (ch->nids - i - 1) * sizeof(ch->ids[0]));
    ch->nids--;
}

static void
mark_after(struct chain *ch, uint64_t off, uint64_t len)
{
    uint64_t g = ch->dc.granularity;

    if (len == 0)
        return;
    for (unsigned i = 0; i < ch->nids; i++)
        for (uint64_t k = off / g; k <= (off + len - 1) / g; k++)
            ch->ids[i].after[k / 8] |= (uint8_t)(1u << (k % 8));
}

/* A kill never resets tracking, in a bind or anywhere else. */
static void
check_found(int found, const char *who)
{
    if (found == TM_VDISK_TRACKING_CLEAN ||
        found == TM_VDISK_TRACKING_RECOVERED)
        return;
    die("%s found tracking '%s' (%d): a kill reset it", who,
        found_name(found), found);
}

/* Reads the log: *n whole records (a torn last one is an intent whose
 * operation never started). */
static struct rec *
read_log(size_t *n)
{
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    struct rec *r;
    size_t got = 0;

    *n = 0;
    if (fd < 0)
        return NULL;                    /* killed before it opened it */
    assert_int_equal(fstat(fd, &st), 0);
    r = malloc((size_t)st.st_size + 1);
    assert_non_null(r);
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, (char *)r + got, (size_t)st.st_size - got);

        assert_true(k > 0);
        got += (size_t)k;
    }
    close(fd);
    *n = got / sizeof(*r);
    for (size_t i = 0; i < *n; i++)
        if (r[i].magic != LOG_MAGIC || r[i].type < REC_OPEN ||
            r[i].type > REC_SEAL)
            die("log record %zu is damaged", i);
    return r;
}

/* All ranges changed since 'id' (until 'until'), paged with capacities
 * from 1 up; checks order, merging and alignment.  Returns the query's
 * code; *out holds the ranges on 0. */
static int
query_all(struct tm_vdisk *d, const struct chain *ch, const char *id,
          const char *until, uint64_t *rs, struct rlist *out)
{
    uint64_t vsize = ch->dc.vsize, g = ch->dc.granularity, pos = 0;
    uint64_t prev_end = 0;
    size_t capv[] = { 1, 2, 3, 7, 64, 100000 };
    size_t cap = capv[next_rand(rs) % 6];
    struct tm_range *r = malloc(cap * sizeof(*r));

    assert_non_null(r);
    out->n = 0;
    while (pos < vsize) {
        size_t count = cap;
        uint64_t processed = 0;
        int rc = until != NULL
                     ? tm_vdisk_query_changes_between(d, id, until, pos,
                                                      vsize - pos, r, &count,
                                                      &processed)
                     : tm_vdisk_query_changes(d, id, pos, vsize - pos, r,
                                              &count, &processed);

        if (rc < 0) {
            free(r);
            if (pos != 0)
                die("query of %s failed after %" PRIu64 " bytes: %d (%s)",
                    id, pos, rc, tm_vdisk_err(d)->msg);
            return rc;
        }
        if (count > cap || processed == 0 || processed > vsize - pos)
            die("query of %s at %" PRIu64 ": count %zu of %zu, processed %"
                PRIu64, id, pos, count, cap, processed);
        for (size_t i = 0; i < count; i++) {
            uint64_t e = r[i].off + r[i].len;

            if (r[i].len == 0 || r[i].off < pos || e > pos + processed ||
                r[i].off < prev_end || (i > 0 && r[i].off == prev_end))
                die("query of %s: range %" PRIu64 "+%" PRIu64 " out of "
                    "order, empty or unmerged (span %" PRIu64 "+%" PRIu64
                    ", previous end %" PRIu64 ")", id, r[i].off, r[i].len,
                    pos, processed, prev_end);
            if (r[i].off % g != 0 || (e % g != 0 && e != vsize))
                die("query of %s: range %" PRIu64 "+%" PRIu64 " is not "
                    "aligned to the granularity %" PRIu64, id, r[i].off,
                    r[i].len, g);
            rlist_add(out, r[i].off, r[i].len);
            prev_end = e;
        }
        pos += processed;
    }
    free(r);
    return 0;
}

/* Every byte where 'then' and 'now' differ lies in l. */
static void
assert_covered(const struct snap *then, const struct snap *now,
               const struct rlist *l, const char *what, const char *id,
               struct totals *t)
{
    struct cover c = { .r = l->r, .n = l->n };

    diff_cover(then, now, &c);
    t->diff_bytes += c.diff_bytes;
    t->covered_pages += c.covered_pages;
    if (c.missed != 0)
        die("MISSED CHANGE (%s %s): %" PRIu64 " differing bytes in no "
            "reported range (of %" PRIu64 " differing; %zu ranges); first "
            "at %" PRIu64 ": 0x%02x then, 0x%02x now", what, id, c.missed,
            c.diff_bytes, l->n, c.first_miss, snap_byte(then, c.first_miss),
            snap_byte(now, c.first_miss));
}

static void
read_disk(struct tm_vdisk *d, uint8_t *flat, uint64_t vsize)
{
    for (uint64_t off = 0; off < vsize; off += MAXW) {
        size_t n = vsize - off < MAXW ? (size_t)(vsize - off) : MAXW;
        int rc = tm_vdisk_read(d, flat + off, n, off);

        if (rc < 0)
            die("read at %" PRIu64 " after the kill: %d (%s)", off, rc,
                tm_vdisk_err(d)->msg);
    }
}

static void
new_chain(struct chain *ch, uint64_t *rs, struct totals *t)
{
    static const uint64_t sizes[] = { 64 * MiB, 100 * MiB, 128 * MiB };
    static const uint32_t grans[] = { 4096, 16384, 65536, 262144 };
    static const uint32_t blocks[] = { 1 << 20, 2 << 20, 32 << 20 };

    chain_free(ch);
    remove_disk();
    memset(&ch->dc, 0, sizeof(ch->dc));
    ch->no = ++t->chains;
    ch->runs = 0;
    ch->len = 1 + (unsigned)(next_rand(rs) % 7);
    ch->dc.vsize = sizes[next_rand(rs) % 3];
    ch->dc.granularity = grans[next_rand(rs) % 4];
    ch->dc.block_size = blocks[next_rand(rs) % 3];
    ch->dc.logical_sector = next_rand(rs) % 3 == 0 ? 4096 : 512;
    ch->dc.fixed = next_rand(rs) % 8 == 0;
    ch->granules = (ch->dc.vsize + ch->dc.granularity - 1) /
                   ch->dc.granularity;
    ch->base = snap_new(ch->dc.vsize / PAGE);
    ch->all = calloc(MAX_CHAIN_IDS, sizeof(*ch->all));
    ch->all_run = calloc(MAX_CHAIN_IDS, sizeof(*ch->all_run));
    assert_non_null(ch->all);
    assert_non_null(ch->all_run);
    ch->expect_child = -1;
    ch->alive = true;
}

static void
record_id(struct chain *ch, const char *id, const struct snap *cur,
          unsigned run)
{
    struct idrec *x;

    for (unsigned i = 0; i < ch->nall; i++)
        if (strcmp(ch->all[i], id) == 0)
            die("ID '%s' handed out twice: by run %u (its seal number %u "
                "in the chain) and now", id, ch->all_run[i], i + 1);
    assert_true(ch->nall < MAX_CHAIN_IDS);
    ch->all_run[ch->nall] = run;
    snprintf(ch->all[ch->nall++], 64, "%s", id);
    if (ch->nids == ch->capids) {
        ch->capids = ch->capids ? 2 * ch->capids : 64;
        ch->ids = realloc(ch->ids, ch->capids * sizeof(*ch->ids));
        assert_non_null(ch->ids);
    }
    x = &ch->ids[ch->nids++];
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%s", id);
    x->snap = snap_dup(cur);
    x->after = calloc((size_t)(ch->granules + 7) / 8, 1);
    assert_non_null(x->after);
    x->run = run;
}

/* One run: fork, kill, check. */
static void
one_run(struct chain *ch, unsigned run, uint64_t *rs, uint8_t *flat,
        uint8_t *data, struct totals *t)
{
    struct child_cfg cc = {
        .disk = disk_path, .log = log_path, .dc = ch->dc,
    };
    uint64_t delay_us, r = next_rand(rs) % 100;
    struct timespec ts;
    struct rec *log;
    size_t nlog, first_mut = SIZE_MAX;
    bool opened = false, crash_in_bind = false, rdonly;
    struct snap *cur, *dur, *now;
    struct rlist vol = { 0 }, rl = { 0 };
    struct tm_vdisk *d;
    struct tm_vdisk_info vi = { .kind = TM_VDISK_INFO_CHANGE_TRACKING_STATE };
    struct tm_err e;
    unsigned ops = 0, seals = 0, ok_ids = 0;
    int status, rc;
    pid_t pid;

    cc.create = ch->runs == 0;
    cc.seed = next_rand(rs) | 1;
    cc.hot = next_rand(rs) % (ch->dc.vsize - 8 * MiB + 1);
    delay_us = r < 8 ? next_rand(rs) % 2000
                     : 3000 + next_rand(rs) % 197000;
    ch->runs++;
    snprintf(where, sizeof(where), "run %u (chain %u, run %u of it, %s)",
             run, ch->no, ch->runs, cc.create ? "create" : "reopen");

    /* A child killed before it opens the log must leave none. */
    if (unlink(log_path) < 0 && errno != ENOENT)
        die("cannot remove '%s': %s", log_path, strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_main(&cc);
    ts.tv_sec = (time_t)(delay_us / 1000000);
    ts.tv_nsec = (long)(delay_us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    (void)kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        die("the child ended by itself (status %#x): see its message above",
            status);

    /* Replay the log onto the run's starting content. */
    log = read_log(&nlog);
    cur = snap_dup(ch->base);
    dur = snap_dup(ch->base);
    for (size_t i = 0; i < nlog; i++) {
        const struct rec *x = &log[i];

        switch (x->type) {
        case REC_OPEN:
            if (opened || i != 0)
                die("log: open record %zu not first", i);
            opened = true;
            if (trace)
                print_message("  child open found %s\n",
                              found_name((int)x->a));
            if (x->a == TM_VDISK_TRACKING_RECOVERED)
                t->child_recovered++;
            if (cc.create && x->a != TM_VDISK_TRACKING_CLEAN)
                die("a new disk's tracking found '%s'", found_name((int)x->a));
            check_found((int)x->a, "the child's open");
            /* The same files as the last check's open saw (a read-only
             * one), or a clean close (a read-write one). */
            if (!cc.create && ch->expect_child >= 0 &&
                (int)x->a != ch->expect_child)
                die("the child's open found '%s', the check before found "
                    "'%s' in the same files", found_name((int)x->a),
                    found_name(ch->expect_child));
            break;
        case REC_WRITE:
        case REC_DISCARD:
            if (x->a >= ch->dc.vsize || x->b == 0 ||
                x->b > ch->dc.vsize - x->a)
                die("log: bad range in record %zu", i);
            if (first_mut == SIZE_MAX)
                first_mut = i;
            if (x->type == REC_WRITE) {
                gen_data(data, x->b, x->c);
                snap_apply(cur, x->a, data, x->b);
            } else {
                snap_apply(cur, x->a, NULL, x->b);
            }
            rlist_add(&vol, x->a, x->b);
            mark_after(ch, x->a, x->b);
            ops++;
            break;
        case REC_FLUSH:
        case REC_SEAL:
            snap_free(dur);
            dur = snap_dup(cur);
            vol.n = 0;
            if (x->type == REC_SEAL) {
                if (trace)
                    print_message("  seal %s (after %u ops)\n", x->id, ops);
                record_id(ch, x->id, cur, run);
                seals++;
            }
            break;
        }
    }
    if (!opened && cc.create) {
        /* Killed while creating: whatever is there must open or be
         * refused with an error, never crash us. */
        rc = tm_vdisk_open(disk_path, TM_VDISK_OPEN_READ_ONLY, NULL, &d, &e);
        if (rc == 0) {
            t->create_fail_open_ok++;
            tm_vdisk_close(d);
        } else {
            t->create_fail_open_err++;
        }
        t->killed_in_create++;
        print_message("run %u: killed after %.1f ms, while creating (open "
                      "then: %s)\n", run, delay_us / 1000.0,
                      rc == 0 ? "ok" : tm_strerror(rc));
        snap_free(cur);
        snap_free(dur);
        free(log);
        free(vol.r);
        chain_free(ch);
        remove_disk();
        t->runs++;
        return;
    }
    if (!opened)
        t->killed_in_open++;
    /* Killed in the first write or discard of the open: in bind(),
     * maybe between the .rct announcing the new DataWriteGuid and the
     * disk's header carrying it.  Counted: it must recover too. */
    if (first_mut != SIZE_MAX && first_mut == nlog - 1) {
        crash_in_bind = true;
        t->bind_crashes++;
    }

    /* Reopen, as the next backup would. */
    rdonly = next_rand(rs) % 2 == 0;
    rc = tm_vdisk_open(disk_path, rdonly ? TM_VDISK_OPEN_READ_ONLY : 0, NULL,
                       &d, &e);
    if (rc < 0)
        die("%s open after the kill: %d (%s): %s",
            rdonly ? "read-only" : "read-write", rc, tm_strerror(rc), e.msg);
    rc = tm_vdisk_get_info(d, &vi);
    if (rc < 0)
        die("get_info: %d (%s)", rc, tm_vdisk_err(d)->msg);
    if (!vi.change_tracking.enabled)
        die("tracking is off after the kill");
    if (vi.change_tracking.found == TM_VDISK_TRACKING_RECOVERED)
        t->parent_recovered++;
    check_found((int)vi.change_tracking.found, "the check's open");
    /* A write or discard got past bind(): the .rct names this open's
     * DataWriteGuid with OPEN set, so the crash must be seen. */
    if (first_mut != SIZE_MAX && first_mut != nlog - 1 &&
        vi.change_tracking.found != TM_VDISK_TRACKING_RECOVERED)
        die("the check's open found '%s' after a kill that followed a "
            "completed write, want 'recovered'",
            found_name((int)vi.change_tracking.found));
    ch->expect_child = rdonly ? (int)vi.change_tracking.found
                              : TM_VDISK_TRACKING_CLEAN;

    /* Data: nothing outside the writes since the last flush changed. */
    read_disk(d, flat, ch->dc.vsize);
    now = snap_from_flat(flat, cur);
    rlist_normalise(&vol);
    {
        struct cover c = { .r = vol.r, .n = vol.n };

        diff_cover(dur, now, &c);
        if (c.missed != 0)
            die("FLUSHED DATA LOST: %" PRIu64 " bytes differ from the "
                "content at the last flush outside the writes issued since "
                "(first at %" PRIu64 ": 0x%02x flushed, 0x%02x now)",
                c.missed, c.first_miss, snap_byte(dur, c.first_miss),
                snap_byte(now, c.first_miss));
    }

    /* Tracking: every ID of the chain. */
    for (unsigned i = 0; i < ch->nids;) {
        struct idrec *x = &ch->ids[i];
        uint64_t g = ch->dc.granularity, rep = 0, over = 0;

        rc = query_all(d, ch, x->id, NULL, rs, &rl);
        t->queries++;
        if (rc < 0)
            die("query of %s (sealed in run %u): %d (%s): %s", x->id,
                x->run, rc, tm_strerror(rc), tm_vdisk_err(d)->msg);
        assert_covered(x->snap, now, &rl, "since", x->id, t);
        for (size_t k = 0; k < rl.n; k++) {
            rep += rl.r[k].len;
            for (uint64_t q = rl.r[k].off / g;
                 q <= (rl.r[k].off + rl.r[k].len - 1) / g; q++)
                if (!(x->after[q / 8] & (1u << (q % 8))))
                    over += g;
        }
        t->reported_bytes += rep;
        t->over_bytes += over;
        ok_ids++;
        i++;
    }
    /* Between consecutive IDs: what differs between their states. */
    for (unsigned i = 0; i + 1 < ch->nids; i++) {
        struct idrec *x = &ch->ids[i], *y = &ch->ids[i + 1];

        rc = query_all(d, ch, x->id, y->id, rs, &rl);
        t->between++;
        if (rc < 0)
            die("query of %s until %s: %d (%s): %s", x->id, y->id, rc,
                tm_strerror(rc), tm_vdisk_err(d)->msg);
        assert_covered(x->snap, y->snap, &rl, "between", x->id, t);
    }
    rc = tm_vdisk_close(d);
    if (rc < 0)
        die("close after the check: %d (%s)", rc, tm_strerror(rc));

    print_message("run %u (chain %u.%u, %s): killed after %.1f ms%s, "
                  "%u ops, %u seals; child found %s; check %s found %s; "
                  "%u IDs verified\n", run, ch->no, ch->runs,
                  cc.create ? "create" : "reopen", delay_us / 1000.0,
                  !opened ? " (in open)" : crash_in_bind ? " (in bind)" : "",
                  ops, seals,
                  opened ? found_name((int)log[0].a) : "-",
                  rdonly ? "ro" : "rw",
                  found_name((int)vi.change_tracking.found), ok_ids);
    t->ops += ops;
    t->seals += seals;
    t->runs++;

    snap_free(ch->base);
    ch->base = now;
    snap_free(cur);
    snap_free(dur);
    free(log);
    free(vol.r);
    free(rl.r);
    /* Keep the chain's first ID and the newest ones. */
    while (ch->nids > MAX_KEEP)
        chain_drop_id(ch, 1);
    if (ch->runs >= ch->len)
        ch->alive = false;
}

static void
kill_mid_workload(void **state)
{
    const char *e = getenv("TM_KILL_RUNS");
    const char *es = getenv("TM_KILL_SEED");
    unsigned runs = 60 / stride();
    uint64_t seed = es != NULL ? strtoull(es, NULL, 0) : 0x7e1d3a4bull;
    uint64_t rs = seed | 1;
    struct chain ch;
    struct totals t;
    uint8_t *flat = malloc(128 * MiB);
    uint8_t *data = malloc(MAXW);
    double t0 = now_s();

    (void)state;
    trace = getenv("TM_KILL_TRACE") != NULL;
    if (runs < 10)
        runs = 10;
    if (e != NULL && strtoul(e, NULL, 10) > 0)
        runs = (unsigned)strtoul(e, NULL, 10);
    assert_non_null(flat);
    assert_non_null(data);
    memset(&ch, 0, sizeof(ch));
    memset(&t, 0, sizeof(t));
    print_message("seed %#" PRIx64 ", %u runs, in %s\n", seed, runs, tmpdir);
    for (unsigned run = 1; run <= runs; run++) {
        if (!ch.alive)
            new_chain(&ch, &rs, &t);
        one_run(&ch, run, &rs, flat, data, &t);
    }
    chain_free(&ch);
    remove_disk();
    print_message("%u runs in %u chains, %.1f s: %lu ops, %lu seals; "
                  "%lu since-queries and %lu between-queries verified "
                  "(%" PRIu64 " differing bytes scanned and covered, %"
                  PRIu64 " pages inside one reported range); kills in "
                  "create %u, in open %u, in a bind %u; opens found "
                  "recovered %u (child) + %u (check)\n", t.runs, t.chains,
                  now_s() - t0, t.ops, t.seals, t.queries, t.between,
                  t.diff_bytes, t.covered_pages, t.killed_in_create,
                  t.killed_in_open,
                  t.bind_crashes, t.child_recovered, t.parent_recovered);
    print_message("over-reporting: %" PRIu64 " MiB reported, %" PRIu64
                  " MiB (%.0f%%) outside the granules written since the "
                  "ID (a crash marks whole .mrt regions, 1 MiB or 1 GiB)\n",
                  (uint64_t)(t.reported_bytes / MiB),
                  (uint64_t)(t.over_bytes / MiB),
                  t.reported_bytes ? 100.0 * (double)t.over_bytes /
                                         (double)t.reported_bytes
                                   : 0.0);
    free(flat);
    free(data);
}

static int
setup(void **state)
{
    const char *td = getenv("TMPDIR");

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmkill.XXXXXX",
             td != NULL && td[0] != '\0' ? td : "/tmp");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(disk_path, sizeof(disk_path), "%s/d.vhdx", tmpdir);
    snprintf(log_path, sizeof(log_path), "%s/intent.log", tmpdir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    remove_disk();
    (void)unlink(log_path);
    (void)rmdir(tmpdir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kill_mid_workload),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
