/* SPDX-License-Identifier: MIT */
/* crash_maint_test.c - power cuts at every write, flush, truncate, punch
 * and allocate of the maintenance verbs: Resize-VHD growing a disk whose
 * BAT must move (twice), shrinking one (blocks let go, the file
 * truncated), and Optimize-VHD moving blocks down and truncating, each
 * between data writes; and all three on a differencing disk, whose
 * partial blocks and sector bitmap move too.  After each cut the file
 * must open read-only and read-write, 'check' must be clean, and what it
 * reads must be one of the two states around the operation the cut
 * interrupted, whole: the old size with the old contents, or the new
 * size with the new contents (zeros in grown space).  Only a cut during
 * a data write may leave a mix, sector by sector, of the old and new
 * bytes of that write.  Cuts alternate between dropping every unflushed
 * write and letting a pseudo-random subset of them land, as reordering
 * disks do.  A sample of the crashed files also goes through 'qemu-img
 * check'.
 *
 * TM_CRASH_STRIDE=N runs every Nth point only (for quick local runs);
 * TM_CRASH_ONLY=<pattern> runs the matching tests only. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "io.h"
#include "vhdx.h"
#include "vhdx_testutil.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SECTOR 512u
/* 1 MiB blocks, 512-byte sectors: 31 chunks fill a 1 MiB BAT region, a
 * 32nd needs 2 MiB; 63 fill 2 MiB, a 64th needs 3 MiB. */
#define FULL1 (124 * GiB)
#define FULL2 (252 * GiB)

/* ---- the expected contents ---------------------------------------------- */

/* A write of pattern 'seed' (0: zeros) over [off, off + len); later ones
 * win.  Bytes no write covers read zeros. */
struct pat {
    uint64_t off, len;
    unsigned seed;
};

#define MAX_PATS 256

struct state {
    uint64_t size;
    struct pat p[MAX_PATS];
    size_t np;
};

/* Byte x of pattern 'seed' is (x * 131 + seed * 17 + (x >> 9)) | 1, or 0
 * for seed 0.  fill_pat writes [x, x + n) of it into buf; less its seed
 * the pattern repeats every 128 KiB, so it comes from a table. */
#define PAT_PERIOD (128u * 1024)

static void
fill_pat(uint8_t *buf, uint64_t x, uint64_t n, unsigned seed)
{
    static uint8_t base[PAT_PERIOD];
    static bool ready;
    uint8_t k = (uint8_t)(seed * 17);

    if (seed == 0) {
        memset(buf, 0, n);
        return;
    }
    if (!ready) {
        for (uint64_t i = 0; i < PAT_PERIOD; i++)
            base[i] = (uint8_t)(i * 131 + (i >> 9));
        ready = true;
    }
    while (n > 0) {
        uint64_t at = x % PAT_PERIOD;
        uint64_t m = PAT_PERIOD - at < n ? PAT_PERIOD - at : n;

        for (uint64_t i = 0; i < m; i++)
            buf[i] = (uint8_t)((uint8_t)(base[at + i] + k) | 1);
        buf += m;
        x += m;
        n -= m;
    }
}

static void
state_write(struct state *s, uint64_t off, uint64_t len, unsigned seed)
{
    assert_true(s->np < MAX_PATS);
    s->p[s->np++] = (struct pat){ off, len, seed };
}

/* A shrink drops what lies past the new end: growing again reads zeros. */
static void
state_resize(struct state *s, uint64_t size)
{
    if (size < s->size)
        for (size_t i = 0; i < s->np; i++) {
            struct pat *p = &s->p[i];

            if (p->off >= size)
                p->len = 0;
            else if (p->off + p->len > size)
                p->len = size - p->off;
        }
    s->size = size;
}

static void
expected(const struct state *s, uint8_t *buf, uint64_t off, size_t n)
{
    memset(buf, 0, n);
    for (size_t i = 0; i < s->np; i++) {
        const struct pat *p = &s->p[i];
        uint64_t a = p->off > off ? p->off : off;
        uint64_t b = p->off + p->len < off + n ? p->off + p->len : off + n;

        if (a < b)
            fill_pat(buf + (a - off), a, b - a, p->seed);
    }
}

/* ---- the workloads ------------------------------------------------------ */

enum op_kind {
    OP_RESIZE,          /* a = new size */
    OP_WRITE,           /* pattern 'seed' over [a, a + b), then flush */
    OP_DISCARD,         /* TM_VHDX_ZERO over [a, a + b), then flush */
    OP_OPTIMIZE,
};

struct op {
    enum op_kind k;
    uint64_t a, b;
    unsigned seed;
};

#define MAX_OPS 64

struct scenario {
    const char *name;
    uint64_t size;
    uint32_t block;
    bool fixed;
    struct state init;          /* the template's contents */
    struct op ops[MAX_OPS];
    size_t nops;
    struct state after[MAX_OPS + 1];    /* after[k]: once ops[0, k) ran */
    struct tm_io *tmpl;
    unsigned stride;
    unsigned min_points;
    bool qemu;                  /* sample crashed files with qemu-img */
};

static void
add_op(struct scenario *sc, enum op_kind k, uint64_t a, uint64_t b,
       unsigned seed)
{
    assert_true(sc->nops < MAX_OPS);
    sc->ops[sc->nops++] = (struct op){ k, a, b, seed };
}

static void
compute_states(struct scenario *sc)
{
    sc->after[0] = sc->init;
    for (size_t k = 0; k < sc->nops; k++) {
        const struct op *o = &sc->ops[k];
        struct state *s = &sc->after[k + 1];

        *s = sc->after[k];
        switch (o->k) {
        case OP_RESIZE:
            state_resize(s, o->a);
            break;
        case OP_WRITE:
            state_write(s, o->a, o->b, o->seed);
            break;
        case OP_DISCARD:
            state_write(s, o->a, o->b, 0);
            break;
        case OP_OPTIMIZE:
            break;
        }
    }
}

static void
write_pat(struct tm_vhdx *vd, uint64_t off, uint64_t len, unsigned seed)
{
    uint8_t *b = malloc(len);

    assert_non_null(b);
    fill_pat(b, off, len, seed);
    assert_int_equal(tm_vhdx_write(vd, b, len, off), 0);
    free(b);
}

/* The parent of the disk under test (a differencing scenario), opened
 * read-only beside every open of the child; never written. */
static struct tm_io *parent_file;

/* tm_vhdx_open, and the parent attached when there is one. */
static int
open_vd(struct tm_vhdx *vd, struct tm_io *io, unsigned flags)
{
    struct tm_vhdx *pa;
    int rc = tm_vhdx_open(vd, tm_io_borrow_new(io), flags);

    if (rc < 0 || parent_file == NULL)
        return rc;
    pa = tm_vhdx_new();
    assert_non_null(pa);
    assert_int_equal(tm_vhdx_open(pa, tm_io_borrow_new(parent_file),
                                  TM_VHDX_RDONLY), 0);
    rc = tm_vhdx_attach_parent(vd, pa);
    if (rc < 0)
        print_error("attach: %s\n", tm_vhdx_err(vd)->msg);
    assert_int_equal(rc, 0);
    return 0;
}

/* Runs ops in order on 'io'; *done counts those that completed. */
static int
run_ops(struct tm_io *io, const struct scenario *sc, size_t *done)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    uint8_t *buf = NULL;
    int rc;

    *done = 0;
    assert_non_null(vd);
    rc = open_vd(vd, io, 0);
    for (size_t k = 0; rc == 0 && k < sc->nops; k++) {
        const struct op *o = &sc->ops[k];
        struct tm_vhdx_optimize_stats st;

        switch (o->k) {
        case OP_RESIZE:
            rc = tm_vhdx_resize(vd, o->a);
            break;
        case OP_WRITE:
            buf = realloc(buf, o->b);
            assert_non_null(buf);
            fill_pat(buf, o->a, o->b, o->seed);
            rc = tm_vhdx_write(vd, buf, o->b, o->a);
            if (rc == 0)
                rc = tm_vhdx_flush(vd);
            break;
        case OP_DISCARD:
            rc = tm_vhdx_discard(vd, o->a, o->b, TM_VHDX_ZERO);
            if (rc == 0)
                rc = tm_vhdx_flush(vd);
            break;
        case OP_OPTIMIZE:
            rc = tm_vhdx_optimize(vd, &st);
            break;
        }
        if (rc == 0)
            (*done)++;
    }
    if (rc == 0)
        rc = tm_vhdx_close(vd);
    else
        tm_vhdx_close(vd);
    free(buf);
    return rc;
}

/* ---- checking a crashed file ------------------------------------------ */

static void
report_problem(void *user, const char *problem)
{
    print_error("%s: check: %s\n", (const char *)user, problem);
}

struct range {
    uint64_t off, len;
};

#define SAMPLE (2 * MiB)

static int
cmp_range(const void *a, const void *b)
{
    uint64_t x = ((const struct range *)a)->off;
    uint64_t y = ((const struct range *)b)->off;

    return x < y ? -1 : x > y;
}

static void
add_range(struct range **r, size_t *n, size_t *cap, uint64_t off,
          uint64_t len, uint64_t size)
{
    if (off >= size || len == 0)
        return;
    if (len > size - off)
        len = size - off;
    if (*n == *cap) {
        *cap *= 2;
        *r = realloc(*r, *cap * sizeof(**r));
        assert_non_null(*r);
    }
    (*r)[(*n)++] = (struct range){ off, len };
}

/* The ranges worth reading: the writes of both states, the ends of both
 * sizes (grown space, old tails), and whatever the file has allocated;
 * the rest reads zeros for sure (block status).  Of a long allocated run
 * (a fixed disk is one) only both ends are read. */
static size_t
ranges_to_read(struct tm_vhdx *vd, uint64_t size, const struct state *a,
               const struct state *b, struct range **out)
{
    size_t n = 0, cap = 2 * MAX_PATS + 64;
    struct range *r = malloc(cap * sizeof(*r));
    const struct state *s[2] = { a, b };
    uint64_t off = 0;

    assert_non_null(r);
    for (int k = 0; k < 2; k++) {
        uint64_t e = s[k]->size;

        for (size_t i = 0; i < s[k]->np; i++)
            add_range(&r, &n, &cap, s[k]->p[i].off, s[k]->p[i].len, size);
        add_range(&r, &n, &cap, e > SAMPLE ? e - SAMPLE : 0, 2 * SAMPLE,
                  size);
    }
    while (off < size) {
        uint64_t run;
        bool alloc;

        assert_int_equal(tm_vhdx_block_status(vd, off, size - off, &run,
                                              &alloc), 0);
        assert_true(run > 0);
        if (alloc && run > 2 * SAMPLE) {
            add_range(&r, &n, &cap, off, SAMPLE, size);
            add_range(&r, &n, &cap, off + run - SAMPLE, SAMPLE, size);
        } else if (alloc) {
            add_range(&r, &n, &cap, off, run, size);
        }
        off += run;
    }
    /* Sorted and merged, so no byte is read twice. */
    qsort(r, n, sizeof(*r), cmp_range);
    if (n > 0) {
        size_t m = 0;

        for (size_t i = 1; i < n; i++) {
            if (r[i].off <= r[m].off + r[m].len) {
                uint64_t end = r[i].off + r[i].len;

                if (end > r[m].off + r[m].len)
                    r[m].len = end - r[m].off;
            } else {
                r[++m] = r[i];
            }
        }
        n = m + 1;
    }
    *out = r;
    return n;
}

/* The contents equal state 'a' (or, with 'b' non-NULL and 'mix', each
 * sector equals a's or b's). */
static bool
contents_match(struct tm_vhdx *vd, const struct state *a,
               const struct state *b, bool mix, const char *where,
               bool verbose)
{
    struct range *r;
    size_t n = ranges_to_read(vd, a->size, a, b != NULL ? b : a, &r);
    uint8_t *got = malloc(MiB), *ea = malloc(MiB), *eb = malloc(MiB);
    bool ok = true;

    assert_non_null(got);
    assert_non_null(ea);
    assert_non_null(eb);
    for (size_t i = 0; i < n && ok; i++) {
        for (uint64_t pos = 0; pos < r[i].len && ok; pos += MiB) {
            uint64_t off = r[i].off + pos;
            size_t len = r[i].len - pos < MiB ? (size_t)(r[i].len - pos)
                                              : MiB;

            assert_int_equal(tm_vhdx_read(vd, got, len, off), 0);
            expected(a, ea, off, len);
            if (memcmp(got, ea, len) == 0)
                continue;
            if (!mix) {
                size_t j = 0;

                while (got[j] == ea[j])
                    j++;
                if (verbose)
                    print_error("%s: byte %" PRIu64 " reads 0x%02x, "
                                "want 0x%02x\n", where, off + j, got[j],
                                ea[j]);
                ok = false;
                break;
            }
            expected(b, eb, off, len);
            for (size_t s = 0; s < len; s += SECTOR) {
                size_t m = len - s < SECTOR ? len - s : SECTOR;

                if (memcmp(got + s, ea + s, m) != 0 &&
                    memcmp(got + s, eb + s, m) != 0) {
                    if (verbose)
                        print_error("%s: sector at %" PRIu64 " is "
                                    "neither old nor new\n", where, off + s);
                    ok = false;
                    break;
                }
            }
        }
    }
    free(eb);
    free(ea);
    free(got);
    free(r);
    return ok;
}

/* Which of the two states the open file is: by its size, then by its
 * contents.  A cut during a data write may mix that write's sectors. */
static void
check_state(struct tm_vhdx *vd, const struct state *before,
            const struct state *after, bool mix, const char *where)
{
    struct tm_vhdx_info info;
    bool ok;

    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    if (info.virtual_size == after->size &&
        contents_match(vd, after, NULL, false, where, false))
        return;
    if (info.virtual_size != before->size) {
        print_error("%s: virtual size %" PRIu64 ", want %" PRIu64 " or %"
                    PRIu64 "\n", where, info.virtual_size, before->size,
                    after->size);
        fail();
    }
    ok = contents_match(vd, before, mix ? after : NULL, mix, where, true);
    if (!ok && info.virtual_size == after->size)
        (void)contents_match(vd, after, NULL, false, where, true);
    if (!ok) {
        print_error("%s: contents are neither the old nor the new state\n",
                    where);
        fail();
    }
}

static void
verify(struct tm_io *disk, const struct state *before,
       const struct state *after, bool mix, const char *where, bool again)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    int rc;

    assert_non_null(vd);
    rc = open_vd(vd, disk, TM_VHDX_RDONLY);
    if (rc != 0) {
        print_error("%s: read-only open failed: %s\n", where,
                    tm_vhdx_err(vd)->msg);
        fail();
    }
    check_state(vd, before, after, mix, where);
    tm_vhdx_close(vd);

    vd = tm_vhdx_new();
    assert_non_null(vd);
    rc = open_vd(vd, disk, 0);
    if (rc != 0) {
        print_error("%s: read-write open failed: %s\n", where,
                    tm_vhdx_err(vd)->msg);
        fail();
    }
    assert_int_equal(tm_vhdx_check(vd, report_problem, (void *)where), 0);
    check_state(vd, before, after, mix, where);
    assert_int_equal(tm_vhdx_close(vd), 0);
    if (!again)
        return;

    /* What the read-write open replayed and closed opens clean. */
    vd = tm_vhdx_new();
    assert_int_equal(open_vd(vd, disk, TM_VHDX_RDONLY), 0);
    assert_int_equal(tm_vhdx_check(vd, report_problem, (void *)where), 0);
    tm_vhdx_close(vd);
}

#define FAULT_OPS (TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE | TM_IO_PUNCH | \
                   TM_IO_ALLOCATE)

static unsigned
env_stride(void)
{
    const char *s = getenv("TM_CRASH_STRIDE");
    unsigned long v = s != NULL ? strtoul(s, NULL, 10) : 1;

    return v > 0 ? (unsigned)v : 1;
}

/* The state the template's file starts in must be what init says, and a
 * run without faults must end in the last state. */
static void
dry_run(struct scenario *sc, uint64_t *points)
{
    struct tm_io *disk = tm_io_overlay_new(sc->tmpl);
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = FAULT_OPS, .after = UINT64_MAX,
        .action = TM_FAULT_POWER_CUT });
    size_t done;
    int rc;

    assert_non_null(io);
    verify(sc->tmpl, &sc->after[0], &sc->after[0], false, "template",
           false);
    rc = run_ops(io, sc, &done);
    if (rc != 0)
        print_error("%s: dry run failed at op %zu: %d\n", sc->name, done, rc);
    assert_int_equal(rc, 0);
    *points = tm_io_fault_count(io);
    tm_io_close(io);
    verify(disk, &sc->after[sc->nops], &sc->after[sc->nops], false,
           "dry run", true);
    tm_io_close(disk);
}

static void
sweep(struct scenario *sc)
{
    unsigned step = env_stride() * sc->stride;
    uint64_t total;
    unsigned points = 0;
    clock_t t0 = clock();

    compute_states(sc);
    dry_run(sc, &total);
    for (unsigned point = 1;; point += step) {
        struct tm_io *disk = tm_io_overlay_new(sc->tmpl);
        struct tm_fault f = {
            .ops = FAULT_OPS,
            .after = point, .action = TM_FAULT_POWER_CUT,
            .seed = point % 2 ? point : 0,
        };
        struct tm_io *io = tm_io_fault_new(disk, &f);
        char where[96];
        size_t done;
        bool fired, mix, again;
        int rc;

        assert_non_null(io);
        rc = run_ops(io, sc, &done);
        fired = tm_io_fault_fired(io);
        tm_io_close(io);
        snprintf(where, sizeof(where), "%s point %u (op %zu)", sc->name,
                 point, done);
        if (rc != 0 && !fired) {
            print_error("%s: failed without a fault: %d\n", where, rc);
            fail();
        }
        again = point % 8 == 1;
        if (!fired) {
            verify(disk, &sc->after[sc->nops], &sc->after[sc->nops], false,
                   where, true);
        } else {
            /* done == nops: the cut hit the close, after every op. */
            size_t k = done < sc->nops ? done : sc->nops - 1;

            mix = done < sc->nops && sc->ops[k].k != OP_RESIZE &&
                  sc->ops[k].k != OP_OPTIMIZE;
            if (done == sc->nops)
                verify(disk, &sc->after[done], &sc->after[done], false,
                       where, again);
            else
                verify(disk, &sc->after[k], &sc->after[k + 1], mix, where,
                       again);
        }
        if (sc->qemu && point % 41 == 1)
            qemu_img_check(disk, where);
        tm_io_close(disk);
        points++;
        if (!fired)
            break;
    }
    print_message("%s: %u points of %" PRIu64 " (stride %u), %.1f s CPU\n",
                  sc->name, points, total, step,
                  (double)(clock() - t0) / CLOCKS_PER_SEC);
    assert_true(total >= sc->min_points);
    assert_true((uint64_t)points * step >= total);
}

/* ---- templates ---------------------------------------------------------- */

static void
make_template(struct scenario *sc)
{
    struct tm_io *mem = tm_io_mem_new();
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .virtual_size = sc->size, .block_size = sc->block,
        .logical_sector = 512, .physical_sector = 4096, .fixed = sc->fixed,
    };

    assert_non_null(mem);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(mem), &p), 0);
    sc->init.size = sc->size;
    for (size_t i = 0; i < sc->init.np; i++)
        write_pat(vd, sc->init.p[i].off, sc->init.p[i].len,
                  sc->init.p[i].seed);
    assert_int_equal(tm_vhdx_close(vd), 0);
    sc->tmpl = mem;
}

static struct scenario *
new_scenario(const char *name, uint64_t size, uint32_t block, bool fixed)
{
    struct scenario *sc = calloc(1, sizeof(*sc));

    assert_non_null(sc);
    sc->name = name;
    sc->size = size;
    sc->block = block;
    sc->fixed = fixed;
    sc->stride = 1;
    sc->min_points = 300;
    sc->qemu = !fixed;          /* a fixed file here is 124 GiB */
    return sc;
}

static void
free_scenario(struct scenario *sc)
{
    tm_io_close(sc->tmpl);
    free(sc);
}

/* Garbage past the virtual size in the last block, as another writer
 * may leave it: growing must not reveal it. */
static void
garbage_in_tail(struct scenario *sc)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    uint64_t bs = sc->block, last = (sc->size - 1) / bs;
    uint64_t tail = sc->size % bs;
    uint8_t junk[4096];
    uint64_t e;
    uint8_t raw[8];

    assert_true(tail != 0);
    assert_int_equal(tm_vhdx_open(vd, tm_io_borrow_new(sc->tmpl),
                                  TM_VHDX_RDONLY), 0);
    tm_vhdx_close(vd);
    /* Our layout: 1 MiB log at 1 MiB, metadata at 2 MiB, BAT at 3 MiB. */
    assert_int_equal(tm_io_pread_all(sc->tmpl, raw, 8,
                                     3 * MiB + 8 * (last + last / 4096)), 0);
    e = tm_le64(raw);
    assert_int_equal(e & 7, 6);
    memset(junk, 0xe5, sizeof(junk));
    assert_int_equal(tm_io_pwrite_all(sc->tmpl, junk, sizeof(junk),
                                      (e & ~0xFFFFFull) + tail), 0);
}

/* ---- the tests --------------------------------------------------------- */

/* A dynamic disk whose BAT region is full grows: the BAT moves, then
 * growths and a shrink that leave it where it is, between writes; then
 * it moves a second time, from 2 to 3 MiB. */
static void
power_cut_during_grow(void **state)
{
    uint64_t base = FULL1 - 1536;
    struct scenario *sc = new_scenario("grow", base, MiB, false);
    uint64_t sz = FULL1 + MiB;

    sc->init.p[sc->init.np++] = (struct pat){ 0, 5000, 1 };
    sc->init.p[sc->init.np++] = (struct pat){ 70 * GiB + 777, 20000, 2 };
    sc->init.p[sc->init.np++] = (struct pat){ base - 3000, 3000, 3 };
    make_template(sc);
    garbage_in_tail(sc);
    add_op(sc, OP_RESIZE, sz, 0, 0);                        /* BAT moves */
    add_op(sc, OP_WRITE, base - 100, 4196, 4);
    add_op(sc, OP_RESIZE, FULL1 + 40 * MiB, 0, 0);
    add_op(sc, OP_WRITE, FULL1 + 39 * MiB, 8192, 5);
    add_op(sc, OP_DISCARD, FULL1 + 39 * MiB, MiB, 0);
    add_op(sc, OP_RESIZE, FULL1 + 20 * MiB + 512, 0, 0);    /* shrink */
    add_op(sc, OP_WRITE, FULL1 + 20 * MiB, 512, 6);
    sz = FULL1 + 20 * MiB + 512;
    for (unsigned r = 0; r < 15; r++) {
        sz += (r + 1) * 3 * MiB + 512 * r;
        add_op(sc, OP_RESIZE, sz, 0, 0);
        add_op(sc, OP_WRITE, sz - 4096 - 512 * r, 4096, 8 + r);
    }
    add_op(sc, OP_RESIZE, FULL2 + 5 * MiB, 0, 0);           /* moves again */
    add_op(sc, OP_WRITE, FULL2 + 5 * MiB - 8192, 8192, 7);
    sweep(sc);
    free_scenario(sc);
}

/* The same on a fixed disk: new blocks are allocated, entries committed
 * before the switch, and a shrink truncates the file. */
static void
power_cut_during_grow_fixed(void **state)
{
    uint64_t base = FULL1 - 1536;
    struct scenario *sc = new_scenario("grow fixed", base, MiB, true);
    uint64_t sz = FULL1 + 3 * MiB;

    sc->init.p[sc->init.np++] = (struct pat){ 3 * MiB, 9000, 1 };
    sc->init.p[sc->init.np++] = (struct pat){ base - 3000, 3000, 2 };
    make_template(sc);
    garbage_in_tail(sc);
    add_op(sc, OP_RESIZE, sz, 0, 0);                        /* BAT moves */
    add_op(sc, OP_WRITE, FULL1 + MiB, 4096, 3);
    for (unsigned r = 0; r < 6; r++) {
        sz += 2 * MiB + 512;
        add_op(sc, OP_RESIZE, sz, 0, 0);
        add_op(sc, OP_WRITE, sz - 1024, 1024, 4 + r);
        add_op(sc, OP_DISCARD, sz - 1024, 1024, 0);
        sz -= MiB;
        add_op(sc, OP_RESIZE, sz, 0, 0);                    /* shrink */
    }
    sc->stride = 3;
    sc->min_points = 150;
    sweep(sc);
    free_scenario(sc);
}

/* Shrinks that let go of allocated (zero) blocks and truncate the file,
 * between writes, a growth, and a shrink back. */
static void
power_cut_during_shrink(void **state)
{
    struct scenario *sc = new_scenario("shrink", 100 * MiB + 1024, MiB,
                                       false);
    struct tm_vhdx *vd;
    uint64_t sz = 70 * MiB;

    for (unsigned b = 0; b < 24; b++)
        sc->init.p[sc->init.np++] = (struct pat){ b * MiB + 100 * b, 2000,
                                                  b + 1 };
    make_template(sc);
    /* Blocks 24..71: allocated, holding zeros. */
    vd = tm_vhdx_new();
    assert_int_equal(tm_vhdx_open(vd, tm_io_borrow_new(sc->tmpl), 0), 0);
    for (unsigned b = 24; b < 72; b++) {
        uint8_t z[512] = { 0 };

        write_pat(vd, b * MiB + 512, 512, 99);
        assert_int_equal(tm_vhdx_write(vd, z, 512, b * MiB + 512), 0);
    }
    assert_int_equal(tm_vhdx_close(vd), 0);
    add_op(sc, OP_RESIZE, sz, 0, 0);
    for (unsigned r = 0; r < 12; r++) {
        sz -= 3 * MiB + 512;
        add_op(sc, OP_RESIZE, sz, 0, 0);
        if (r % 3 == 0) {
            add_op(sc, OP_WRITE, sz - 2048, 1024, 40 + r);
            add_op(sc, OP_DISCARD, sz - 2048, 1024, 0);
        }
    }
    add_op(sc, OP_RESIZE, 25 * MiB, 0, 0);
    add_op(sc, OP_RESIZE, 90 * MiB, 0, 0);
    add_op(sc, OP_WRITE, 89 * MiB, MiB, 60);
    add_op(sc, OP_DISCARD, 89 * MiB, MiB, 0);
    add_op(sc, OP_RESIZE, 25 * MiB, 0, 0);
    sweep(sc);
    free_scenario(sc);
}

/* Optimize after discards, zero writes and new allocations: zero blocks
 * released, blocks moved down into the holes, the file truncated. */
static void
power_cut_during_optimize(void **state)
{
    struct scenario *sc = new_scenario("optimize", 64 * MiB + 512, MiB,
                                       false);
    struct tm_vhdx *vd;

    for (unsigned b = 0; b < 40; b++)
        if (b % 3 != 1)
            sc->init.p[sc->init.np++] = (struct pat){ b * MiB + 77 * b,
                                                      3000, b + 1 };
    make_template(sc);
    /* Blocks b % 3 == 1 allocated, holding zeros. */
    vd = tm_vhdx_new();
    assert_int_equal(tm_vhdx_open(vd, tm_io_borrow_new(sc->tmpl), 0), 0);
    for (unsigned b = 1; b < 40; b += 3) {
        uint8_t z[4096] = { 0 };

        write_pat(vd, b * MiB + 4096, 4096, 99);
        assert_int_equal(tm_vhdx_write(vd, z, 4096, b * MiB + 4096), 0);
    }
    assert_int_equal(tm_vhdx_close(vd), 0);
    add_op(sc, OP_OPTIMIZE, 0, 0, 0);
    for (unsigned r = 0; r < 12; r++) {
        unsigned b0 = 3 * r;

        add_op(sc, OP_DISCARD, (uint64_t)b0 * MiB, 2 * MiB, 0);
        add_op(sc, OP_WRITE, (uint64_t)(41 + 2 * r) * MiB + 5, 8192 + 9,
               100 + r);
        add_op(sc, OP_OPTIMIZE, 0, 0, 0);
    }
    sweep(sc);
    free_scenario(sc);
}

/* A differencing child: partial blocks with a sector bitmap (made with
 * the child, at the start of the payload), whole blocks, zero and
 * unmapped blocks; optimize moves blocks down; growing makes the new blocks ZERO and zeroes the old last
 * block's tail through the bitmap; shrinking stops at the parent. */
static void
power_cut_during_diff_maintenance(void **state)
{
    uint64_t psize = 20 * MiB + 1024;
    struct scenario *sc = new_scenario("differencing", psize, 2 * MiB,
                                       false);
    struct tm_io *base = tm_io_mem_new();
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .virtual_size = psize, .block_size = MiB,
        .logical_sector = 512, .physical_sector = 4096,
    };
    struct tm_vhdx_create_params c = {
        .parent_relative_path = ".\\base.vhdx",
    };

    /* The base: data in most of its blocks, the last one included. */
    assert_non_null(base);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(base), &p), 0);
    sc->init.size = psize;
    for (unsigned b = 0; b < 20; b += 2)
        sc->init.p[sc->init.np++] = (struct pat){ b * MiB + 300, 5000,
                                                  200 + b };
    sc->init.p[sc->init.np++] = (struct pat){ psize - 700, 700, 230 };
    for (size_t i = 0; i < sc->init.np; i++)
        write_pat(vd, sc->init.p[i].off, sc->init.p[i].len,
                  sc->init.p[i].seed);
    assert_int_equal(tm_vhdx_close(vd), 0);
    /* The child, empty. */
    c.parent = tm_vhdx_new();
    assert_int_equal(tm_vhdx_open(c.parent, tm_io_borrow_new(base),
                                  TM_VHDX_RDONLY), 0);
    sc->tmpl = tm_io_mem_new();
    vd = tm_vhdx_new();
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(sc->tmpl), &c), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    parent_file = base;

    add_op(sc, OP_WRITE, 2 * MiB, 6 * MiB, 1);              /* 1..3 whole */
    add_op(sc, OP_WRITE, 9 * MiB + 512, 1024, 2);           /* 4 partial */
    add_op(sc, OP_WRITE, 15 * MiB + 7, 3000, 3);            /* 7 partial */
    add_op(sc, OP_WRITE, 2 * MiB, 2 * MiB, 0);              /* 1: zeros */
    add_op(sc, OP_DISCARD, 4 * MiB, 4 * MiB, 0);            /* 2, 3 */
    add_op(sc, OP_OPTIMIZE, 0, 0, 0);
    add_op(sc, OP_WRITE, 12 * MiB, 2 * MiB, 4);             /* 6 whole */
    add_op(sc, OP_RESIZE, 30 * MiB, 0, 0);
    add_op(sc, OP_WRITE, 29 * MiB, 4096, 5);
    add_op(sc, OP_DISCARD, 9 * MiB, MiB, 0);
    add_op(sc, OP_OPTIMIZE, 0, 0, 0);
    add_op(sc, OP_DISCARD, 29 * MiB, 4096, 0);
    add_op(sc, OP_RESIZE, psize + 3 * MiB, 0, 0);           /* shrink */
    add_op(sc, OP_OPTIMIZE, 0, 0, 0);
    add_op(sc, OP_RESIZE, psize + 9 * MiB + 512, 0, 0);
    add_op(sc, OP_WRITE, 17 * MiB + 100, 2000, 6);          /* 8 partial */
    add_op(sc, OP_WRITE, 21 * MiB, 1536, 7);                /* grown part */
    add_op(sc, OP_DISCARD, 15 * MiB, MiB, 0);               /* 7: ZERO */
    add_op(sc, OP_OPTIMIZE, 0, 0, 0);
    sc->qemu = false;               /* QEMU has no differencing disks */
    sc->stride = 2;
    sc->min_points = 150;
    sweep(sc);
    parent_file = NULL;
    free_scenario(sc);
    tm_io_close(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(power_cut_during_grow),
        cmocka_unit_test(power_cut_during_grow_fixed),
        cmocka_unit_test(power_cut_during_shrink),
        cmocka_unit_test(power_cut_during_optimize),
        cmocka_unit_test(power_cut_during_diff_maintenance),
    };

    /* TM_CRASH_ONLY=<pattern>: run the matching tests only. */
    if (getenv("TM_CRASH_ONLY") != NULL)
        cmocka_set_test_filter(getenv("TM_CRASH_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
