/* SPDX-License-Identifier: MIT */
/* crash_vdisk_resize_test.c - power cuts at every step of the vdisk calls
 * that restart tracking: a resize (tm_vdisk_resize: the engine's resize,
 * then tm_rct_reset at the new size) and turning tracking off and on
 * again (tm_rct_disable, tm_rct_reset), with the disk and both sidecars
 * in one fault domain, dropping every unflushed write or landing a
 * random part of them.
 *
 * Workload on a tracked 4 MiB disk with one sealed ID: write (the bind),
 * grow to 8 MiB, write past the old end, seal, write, turn tracking
 * off, write, turn it on, seal, write, seal, close.  After each cut the files that survived
 * are opened again, and:
 *  - the disk opens, at its old size or its new one;
 *  - every ID sealed before the cut either answers with ranges covering
 *    every byte that differs between the disk then and now, or fails
 *    TM_E_RCT_RESET or TM_E_RCT_DISABLED (tracking restarted or off);
 *    never wrong ranges, never another error;
 *  - at the new size no ID sealed before the resize answers with ranges
 *    (tracking must have restarted), and at the old size no ID sealed
 *    after it exists. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crash_util.h"
#include "vhdx_testutil.h"

#include "io.h"
#include "vdisk_int.h"
#include "vdisk_files.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define OLD_SIZE (4 * MiB)
#define NEW_SIZE (8 * MiB)
#define GRAN (4 * KiB)
#define COUNTED (TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE | TM_IO_ALLOCATE | \
                 TM_IO_PUNCH)
#define MAXIDS 6

/* An ID and the disk's bytes when it was sealed. */
struct sealed {
    char id[TM_VDISK_RCT_ID_MAX + 1];
    uint8_t *snap;
    uint64_t size;
    bool after_resize;
};

struct state {
    uint8_t cur[NEW_SIZE];              /* every write applied */
    uint64_t size;
    struct sealed ids[MAXIDS];
    unsigned nids;
};

static void
fill(uint8_t *buf, uint64_t len, unsigned tag)
{
    for (uint64_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(tag * 29 + i * 7 + (i >> 9) + 1);
}

/* ---- the workload ---------------------------------------------------------- */

/* One step's result: true to go on.  After the cut every call may fail;
 * before it none may. */
static bool
step(struct tm_fault_domain *dom, int rc, struct tm_vdisk *d, const char *what)
{
    if (rc == 0)
        return true;
    if (dom == NULL || !tm_fault_domain_fired(dom))
        die("%s before any fault: %d (%s)", what, rc,
            d ? tm_vdisk_err(d)->msg : "");
    return false;
}

static bool
w_write(struct tm_fault_domain *dom, struct tm_vdisk *d, struct state *s,
        uint64_t off, uint64_t len, unsigned tag)
{
    uint8_t *buf = malloc(len);
    int rc;

    assert_non_null(buf);
    fill(buf, len, tag);
    /* Applied to the model first: a write cut short may have landed. */
    memcpy(s->cur + off, buf, len);
    rc = tm_vdisk_write(d, buf, len, off);
    free(buf);
    return step(dom, rc, d, "write");
}

static bool
w_seal(struct tm_fault_domain *dom, struct tm_vdisk *d, struct state *s,
       bool after_resize)
{
    struct sealed *x = &s->ids[s->nids];
    int rc = tm_vdisk_seal(d, x->id);

    if (!step(dom, rc, d, "seal"))
        return false;
    assert_true(s->nids < MAXIDS);
    x->snap = malloc(NEW_SIZE);
    assert_non_null(x->snap);
    memcpy(x->snap, s->cur, NEW_SIZE);
    x->size = s->size;
    x->after_resize = after_resize;
    s->nids++;
    return true;
}

static bool
w_tracking(struct tm_fault_domain *dom, struct tm_vdisk *d, bool on)
{
    struct tm_vdisk_set_info si = {
        .kind = TM_VDISK_SET_CHANGE_TRACKING_STATE,
        .change_tracking = { .enabled = on, .granularity = GRAN },
    };

    return step(dom, tm_vdisk_set_info(d, &si), d, on ? "enable" : "disable");
}

/* The calls under test; stops at the first failure after the cut. */
static void
workload(struct reach *r, struct state *s)
{
    struct tm_fault_domain *dom = r->dom;
    struct tm_vdisk *d;
    struct tm_err err;
    int rc = files_open(r, false, &d, &err);

    if (!step(dom, rc, NULL, "open"))
        return;
    if (!w_write(dom, d, s, 1 * MiB + 512, 6 * KiB, 10))
        goto out;
    rc = tm_vdisk_resize(d, NEW_SIZE);
    if (!step(dom, rc, d, "resize"))
        goto out;
    s->size = NEW_SIZE;
    if (!w_write(dom, d, s, 6 * MiB, 8 * KiB, 11) ||
        !w_write(dom, d, s, 100 * KiB, 4 * KiB, 12) ||
        !w_seal(dom, d, s, true) ||
        !w_write(dom, d, s, 3 * MiB, 4 * KiB, 13) ||
        !w_tracking(dom, d, false) ||
        !w_write(dom, d, s, 5 * MiB, 4 * KiB, 14) ||
        !w_tracking(dom, d, true) ||
        !w_seal(dom, d, s, true) ||
        !w_write(dom, d, s, 7 * MiB, 12 * KiB, 15) ||
        !w_seal(dom, d, s, true))
        goto out;
    rc = tm_vdisk_close(d);
    d = NULL;
    step(dom, rc, NULL, "close");
out:
    if (d != NULL)
        tm_vdisk_close(d);             /* after the cut: fails, frees */
}

/* ---- checks ----------------------------------------------------------------- */

static void
check_id(struct tm_vdisk *d, const struct sealed *x, const uint8_t *now,
         uint64_t size)
{
    static uint8_t reported[NEW_SIZE / GRAN];
    struct tm_range r[64];
    uint64_t off = 0, lim = size < x->size ? size : x->size;

    memset(reported, 0, sizeof(reported));
    while (off < size) {
        size_t n = 64;
        uint64_t done;
        int rc = tm_vdisk_query_changes(d, x->id, off, size - off, r, &n,
                                        &done);

        if (rc == TM_E_RCT_RESET || rc == TM_E_RCT_DISABLED)
            return;
        if (rc != 0)
            die("query of %s: %d (%s), want ranges, reset or disabled",
                x->id, rc, tm_vdisk_err(d)->msg);
        if (!x->after_resize && size == NEW_SIZE)
            die("%s (sealed before the resize) answers ranges on the "
                "resized disk", x->id);
        for (size_t i = 0; i < n; i++)
            for (uint64_t g = r[i].off / GRAN;
                 g < (r[i].off + r[i].len + GRAN - 1) / GRAN; g++)
                reported[g] = 1;
        if (done == 0)
            die("query of %s made no progress", x->id);
        off += done;
    }
    for (uint64_t p = 0; p < lim; p++)
        if (now[p] != x->snap[p] && !reported[p / GRAN])
            die("MISSED CHANGE: %s: byte %" PRIu64 " is %u, was %u at the "
                "ID, and no range reports it", x->id, p, now[p],
                x->snap[p]);
}

static void
verify(struct files *f, const struct state *s)
{
    struct reach plain = { f, NULL, true };
    struct tm_vdisk_info si = { .kind = TM_VDISK_INFO_SIZE };
    struct tm_vdisk *d;
    struct tm_err err;
    uint8_t *now;
    uint64_t size;
    int rc = files_open(&plain, false, &d, &err);

    if (rc != 0)
        die("open after the cut: %d (%s)", rc, err.msg);
    assert_int_equal(tm_vdisk_get_info(d, &si), 0);
    size = si.size.virtual_size;
    if (size != OLD_SIZE && size != NEW_SIZE)
        die("virtual size %" PRIu64 " after the cut", size);
    now = calloc(1, NEW_SIZE);
    assert_non_null(now);
    assert_int_equal(tm_vdisk_read(d, now, size, 0), 0);
    for (unsigned i = 0; i < s->nids; i++) {
        if (s->ids[i].after_resize && size == OLD_SIZE)
            die("%s was sealed after the resize, but the disk has its old "
                "size", s->ids[i].id);
        check_id(d, &s->ids[i], now, size);
    }
    /* Tracking works from here on, and a clean close keeps it. */
    {
        char id[TM_VDISK_RCT_ID_MAX + 1];
        struct tm_vdisk_set_info on = {
            .kind = TM_VDISK_SET_CHANGE_TRACKING_STATE,
            .change_tracking = { .enabled = true },
        };

        assert_int_equal(tm_vdisk_set_info(d, &on), 0);
        if (tm_vdisk_seal(d, id) != 0)
            die("seal after recovery: %s", tm_vdisk_err(d)->msg);
    }
    free(now);
    assert_int_equal(tm_vdisk_close(d), 0);
}

/* ---- the sweep -------------------------------------------------------------- */

static void
make_base(struct files *f, struct state *s)
{
    struct tm_vhdx_create_params vp = {
        .virtual_size = OLD_SIZE, .block_size = 1 << 20,
    };
    struct tm_vhdx *vd = tm_vhdx_new();
    struct reach plain = { f, NULL, true };
    struct tm_vdisk *d;
    struct tm_err err;

    memset(s, 0, sizeof(*s));
    s->size = OLD_SIZE;
    f->disk = tm_io_mem_new();
    f->rct = tm_io_mem_new();
    f->mrt = tm_io_mem_new();
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(f->disk), &vp), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    /* Fresh memory sidecars exist but are empty: enabling fills them. */
    assert_int_equal(files_open(&plain, false, &d, &err), 0);
    assert_true(w_tracking(NULL, d, true));
    assert_true(w_write(NULL, d, s, 0, 64 * KiB, 1));
    assert_true(w_write(NULL, d, s, 2 * MiB, 4 * KiB, 2));
    assert_true(w_seal(NULL, d, s, false));
    assert_true(w_write(NULL, d, s, 3 * MiB + 4 * KiB, 4 * KiB, 3));
    assert_int_equal(tm_vdisk_close(d), 0);
}

static void
state_free(struct state *s, unsigned keep)
{
    for (unsigned i = keep; i < s->nids; i++)
        free(s->ids[i].snap);
    s->nids = keep;
}

static void
sweep(uint64_t seed, const char *name)
{
    static struct state s0, s;          /* 8 MiB each: not on the stack */
    struct files base, f;
    unsigned step_n = stride(), points = 0, fired = 0;
    double t0 = now_s();

    make_base(&base, &s0);
    for (uint64_t n = 1;; n += step_n) {
        struct tm_fault fault = {
            .ops = COUNTED, .after = n, .action = TM_FAULT_POWER_CUT,
            .seed = seed ? seed + n : 0,
        };
        struct reach r;
        bool hit;

        snprintf(where, sizeof(where), "%s, cut at %" PRIu64, name, n);
        files_copy(&f, &base);
        s = s0;
        r.f = &f;
        r.empty_is_absent = true;
        r.dom = tm_fault_domain_new(&fault);
        assert_non_null(r.dom);
        workload(&r, &s);
        hit = tm_fault_domain_fired(r.dom);
        tm_fault_domain_free(r.dom);
        verify(&f, &s);
        state_free(&s, s0.nids);
        files_close(&f);
        points++;
        fired += hit;
        if (!hit)
            break;
    }
    print_message("%s: %u cut points (%u fired, every %u), %.1f s\n", name,
                  points, fired, step_n, now_s() - t0);
    assert_true(fired >= 50 / step_n);
    state_free(&s0, 0);
    files_close(&base);
}

static void
resize_and_restart_drop_unflushed(void **state)
{
    (void)state;
    sweep(0, "power cut");
}

static void
resize_and_restart_random_survivors(void **state)
{
    (void)state;
    sweep(0x5eed, "power cut, random survivors");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resize_and_restart_drop_unflushed),
        cmocka_unit_test(resize_and_restart_random_survivors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
