/* SPDX-License-Identifier: MIT */
/* crash_test.c - power cuts, torn writes and I/O errors at every write,
 * truncate and flush of a workload that allocates blocks, writes across
 * block boundaries, discards and flushes a dynamic VHDX.  After each cut
 * the file must open (its log replays), read-only and read-write opens
 * must agree, 'check' must be clean, and every byte a completed flush
 * acknowledged must read back; bytes written since the last completed
 * flush may hold old or new data, nothing else is promised for them.
 * A sample of the crashed files also goes through 'qemu-img check'.
 *
 * TM_CRASH_STRIDE=N runs every Nth point only (for quick local runs). */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io.h"
#include "vhdx.h"
#include "vhdx_testutil.h"

#define SECTOR 512u
/* The disk under test; the default is dynamic, 1 MiB blocks, 512-byte
 * sectors, with a partial last block. */
static struct {
    uint64_t vsize;
    uint32_t block;
    uint32_t logical_sector;
    bool fixed;
    unsigned stride;            /* run every stride-th point */
} geo = { (8u << 20) + 3 * SECTOR, 1u << 20, 512, false, 1 };
#define NOPS 200

struct shadow {
    uint8_t *acked;             /* state at the last completed flush */
    uint8_t *cur;               /* state with every write made */
    uint8_t *dirty;             /* per sector: touched since that flush */
};

static uint64_t
next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void
shadow_init(struct shadow *sh)
{
    sh->acked = calloc(1, geo.vsize);
    sh->cur = calloc(1, geo.vsize);
    sh->dirty = calloc(1, geo.vsize / SECTOR + 1);
    assert_non_null(sh->acked);
    assert_non_null(sh->cur);
    assert_non_null(sh->dirty);
}

static void
shadow_free(struct shadow *sh)
{
    free(sh->acked);
    free(sh->cur);
    free(sh->dirty);
}

static void
shadow_touch(struct shadow *sh, uint64_t off, uint64_t len)
{
    for (uint64_t s = off / SECTOR; s <= (off + len - 1) / SECTOR; s++)
        sh->dirty[s] = 1;
}

/* A fresh dynamic VHDX in a new memory file. */
static struct tm_io *
make_disk(void)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_io *io;
    struct tm_vhdx_create_params p = {
        .virtual_size = geo.vsize,
        .block_size = geo.block,
        .logical_sector = geo.logical_sector,
        .fixed = geo.fixed,
        .physical_sector = 4096,
    };

    assert_non_null(disk);
    assert_non_null(vd);
    io = tm_io_fault_new(disk, NULL);
    assert_non_null(io);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(io), &p), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    tm_io_close(io);
    return disk;
}

/* The workload; stops at the first failure (the cut or error fired).
 * Returns 0 when it ran to the end. */
static int
run_workload(struct tm_io *io, struct shadow *sh, uint64_t seed)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    uint8_t *buf = malloc(2 * geo.block);
    uint64_t s = seed;
    int rc;

    assert_non_null(vd);
    assert_non_null(buf);
    rc = tm_vhdx_open(vd, tm_io_borrow_new(io), 0);
    for (int i = 0; rc == 0 && i < NOPS; i++) {
        uint64_t r = next_rand(&s) % 100;
        uint64_t off, len;

        if (r < 62) {
            switch (next_rand(&s) % 3) {
            case 0:
                len = 1 + next_rand(&s) % 8192;
                break;
            case 1:
                len = 1 + next_rand(&s) % (256 * 1024);
                break;
            default:
                len = 1 + next_rand(&s) % (geo.block + geo.block / 2);
                break;
            }
            if (next_rand(&s) % 2 == 0)
                len = (len + SECTOR - 1) / SECTOR * SECTOR;
            if (len > geo.vsize)
                len = geo.vsize;
            off = next_rand(&s) % (geo.vsize - len + 1);
            if (next_rand(&s) % 2 == 0)
                off = off / SECTOR * SECTOR;
            for (uint64_t k = 0; k < len; k++)
                buf[k] = (uint8_t)(i * 31 + (off + k) / 512 + 1) | 1;
            memcpy(sh->cur + off, buf, len);
            shadow_touch(sh, off, len);
            rc = tm_vhdx_write(vd, buf, len, off);
        } else if (r < 80) {
            enum tm_vhdx_discard_mode mode =
                r < 72 ? TM_VHDX_ZERO : TM_VHDX_UNMAP;

            if (next_rand(&s) % 2 == 0) {
                off = next_rand(&s) % (geo.vsize / geo.block + 1) * geo.block;
                len = geo.block * (1 + next_rand(&s) % 2);
            } else {
                off = next_rand(&s) % geo.vsize;
                len = 1 + next_rand(&s) % (geo.block * 2);
            }
            if (off >= geo.vsize)
                off = geo.vsize - SECTOR;
            if (len > geo.vsize - off)
                len = geo.vsize - off;
            memset(sh->cur + off, 0, len);
            shadow_touch(sh, off, len);
            rc = tm_vhdx_discard(vd, off, len, mode);
        } else {
            rc = tm_vhdx_flush(vd);
            if (rc == 0) {
                memcpy(sh->acked, sh->cur, geo.vsize);
                memset(sh->dirty, 0, geo.vsize / SECTOR + 1);
            }
        }
    }
    if (rc == 0) {
        rc = tm_vhdx_close(vd);
        if (rc == 0) {
            memcpy(sh->acked, sh->cur, geo.vsize);
            memset(sh->dirty, 0, geo.vsize / SECTOR + 1);
        }
    } else {
        tm_vhdx_close(vd);
    }
    free(buf);
    return rc;
}

static void
report_problem(void *user, const char *problem)
{
    unsigned *point = user;

    print_error("point %u: check: %s\n", *point, problem);
}

/* Every clean sector must hold the acknowledged bytes. */
static void
compare(struct tm_vhdx *vd, const struct shadow *sh, unsigned point,
        const char *how)
{
    uint8_t *got = malloc(geo.vsize);

    assert_non_null(got);
    assert_int_equal(tm_vhdx_read(vd, got, geo.vsize, 0), 0);
    for (uint64_t sec = 0; sec < geo.vsize / SECTOR; sec++) {
        uint64_t o = sec * SECTOR;

        if (sh->dirty[sec])
            continue;
        if (memcmp(got + o, sh->acked + o, SECTOR) != 0) {
            print_error("point %u (%s): sector %" PRIu64 " lost a flushed "
                        "write\n", point, how, sec);
            fail();
        }
    }
    free(got);
}

/* After the fault: open read-only (replay into memory) and read-write
 * (replay into the file); both must serve the acknowledged data, the
 * check must be clean, and the repaired file must take a new write. */
static void
verify(struct tm_io *disk, const struct shadow *sh, unsigned point)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_io *io = tm_io_borrow_new(disk);
    uint8_t pat[4096];
    int rc;

    assert_non_null(vd);
    rc = tm_vhdx_open(vd, io, TM_VHDX_RDONLY);
    if (rc != 0) {
        print_error("point %u: read-only open failed: %s\n", point,
                    tm_vhdx_err(vd)->msg);
        fail();
    }
    compare(vd, sh, point, "read-only");
    tm_vhdx_close(vd);

    vd = tm_vhdx_new();
    io = tm_io_borrow_new(disk);
    rc = tm_vhdx_open(vd, io, 0);
    if (rc != 0) {
        print_error("point %u: read-write open failed: %s\n", point,
                    tm_vhdx_err(vd)->msg);
        fail();
    }
    compare(vd, sh, point, "read-write");
    rc = tm_vhdx_check(vd, report_problem, &point);
    assert_int_equal(rc, 0);
    memset(pat, 0x5a, sizeof(pat));
    assert_int_equal(tm_vhdx_write(vd, pat, sizeof(pat), geo.vsize - 4096), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);

    vd = tm_vhdx_new();
    io = tm_io_borrow_new(disk);
    assert_int_equal(tm_vhdx_open(vd, io, TM_VHDX_RDONLY), 0);
    {
        uint8_t got[4096];

        assert_int_equal(tm_vhdx_read(vd, got, sizeof(got),
                                      geo.vsize - 4096), 0);
        assert_memory_equal(got, pat, sizeof(pat));
    }
    assert_int_equal(tm_vhdx_check(vd, report_problem, &point), 0);
    tm_vhdx_close(vd);
}

/* A second power cut, during recovery: the read-write open that replays
 * the log (and its close) is cut at each of its own write/flush points,
 * on a copy of the crashed file.  Replaying a half-replayed log must
 * give the same result, so the acknowledged data must still be there. */
static unsigned recovery_points;    /* second cuts that fired */

static void
crash_during_recovery(struct tm_io *crashed, const struct shadow *sh,
                      unsigned point)
{
    for (unsigned k = 1;; k++) {
        struct tm_io *disk = copy_disk(crashed);
        struct tm_io *f = tm_io_fault_new(disk, &(struct tm_fault){
            .ops = TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE | TM_IO_PUNCH,
            .after = k, .action = TM_FAULT_POWER_CUT, .seed = k });
        struct tm_vhdx *vd = tm_vhdx_new();
        bool fired;

        assert_non_null(f);
        if (tm_vhdx_open(vd, tm_io_borrow_new(f), 0) == 0)
            (void)tm_vhdx_close(vd);
        else
            tm_vhdx_close(vd);
        fired = tm_io_fault_fired(f);
        recovery_points += fired;
        tm_io_close(f);
        verify(disk, sh, point * 1000 + k);
        tm_io_close(disk);
        if (!fired)
            break;
    }
}

static unsigned
stride(void)
{
    const char *s = getenv("TM_CRASH_STRIDE");
    unsigned long v = s != NULL ? strtoul(s, NULL, 10) : 1;

    return (v > 0 ? (unsigned)v : 1) * geo.stride;
}

/* Counts up: a fault at point 1, 2, 3 ... until the workload runs to
 * the end without the fault firing.  Returns the number of points. */
static unsigned
sweep(const struct tm_fault *tmpl, uint64_t workload_seed, unsigned qemu_every)
{
    unsigned points = 0;
    unsigned step = stride();

    for (unsigned point = 1;; point += step) {
        struct tm_io *disk = make_disk();
        struct tm_fault f = *tmpl;
        struct tm_io *io;
        struct shadow sh;
        bool fired;
        int rc;

        f.after = point;
        if (f.seed != 0)
            f.seed = tmpl->seed + point;
        io = tm_io_fault_new(disk, &f);
        assert_non_null(io);
        shadow_init(&sh);
        rc = run_workload(io, &sh, workload_seed);
        fired = tm_io_fault_fired(io);
        tm_io_close(io);
        if (rc != 0 && !fired) {
            print_error("point %u: workload failed without a fault: %d\n",
                        point, rc);
            fail();
        }
        if (fired && tmpl->action == TM_FAULT_POWER_CUT && point % 24 == 1)
            crash_during_recovery(disk, &sh, point);
        verify(disk, &sh, point);
        if (qemu_every != 0 && point % qemu_every == 1)
            {
                char at[32];

                snprintf(at, sizeof(at), "point %u", point);
                qemu_img_check(disk, at);
            }
        shadow_free(&sh);
        tm_io_close(disk);
        points++;
        if (!fired)
            break;
    }
    return points;
}

static void
power_cut_at_every_point(void **state)
{
    unsigned n = sweep(&(struct tm_fault){
        .ops = TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE | TM_IO_PUNCH,
        .action = TM_FAULT_POWER_CUT }, 0x9e3779b97f4a7c15ull, 25);

    print_message("power cut: %u points, %u more during recovery\n", n,
                  recovery_points);
    assert_true(recovery_points * stride() > 50);
    assert_true(n * stride() >= 500);
}

static void
power_cut_with_reordered_writes(void **state)
{
    unsigned n = sweep(&(struct tm_fault){
        .ops = TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE | TM_IO_PUNCH,
        .action = TM_FAULT_POWER_CUT, .seed = 77 }, 0x1234567ull, 40);

    print_message("power cut, random survivors: %u points\n", n);
    assert_true(n * stride() >= 500);
}

static void
torn_write_at_every_point(void **state)
{
    unsigned n = sweep(&(struct tm_fault){
        .ops = TM_IO_WRITE, .action = TM_FAULT_TEAR, .tear_sectors = 3 },
        0xdeadbeefull, 0);

    print_message("torn write: %u points\n", n);
    assert_true(n * stride() > 100);
}

static void
io_error_at_every_point(void **state)
{
    unsigned n = sweep(&(struct tm_fault){
        .ops = TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE,
        .action = TM_FAULT_ERROR, .err = EIO }, 0x5151ull, 0);

    print_message("EIO: %u points\n", n);
    assert_true(n * stride() > 100);
}

static void
enospc_at_every_point(void **state)
{
    unsigned n = sweep(&(struct tm_fault){
        .ops = TM_IO_WRITE | TM_IO_TRUNCATE, .action = TM_FAULT_ERROR,
        .err = ENOSPC, .sticky = true }, 0x7777ull, 0);

    print_message("ENOSPC: %u points\n", n);
    assert_true(n * stride() > 100);
}

/* The same power cuts on a fixed disk (no allocation: discards write
 * zeros in place) and on a dynamic disk of 4096-byte sectors and 2 MiB
 * blocks, at every third point to keep the suite short. */
static void
power_cut_fixed_disk(void **state)
{
    unsigned n;

    geo.fixed = true;
    geo.stride = 3;
    n = sweep(&(struct tm_fault){
        .ops = TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE | TM_IO_PUNCH,
        .action = TM_FAULT_POWER_CUT, .seed = 5 }, 0xf1f1ull, 30);
    geo.fixed = false;
    geo.stride = 1;
    print_message("power cut, fixed disk: %u points\n", n);
    assert_true(n > 30);
}

static void
power_cut_4k_sectors(void **state)
{
    unsigned n;

    geo.vsize = (8u << 20) + 3 * 4096;
    geo.block = 2u << 20;
    geo.logical_sector = 4096;
    geo.stride = 3;
    n = sweep(&(struct tm_fault){
        .ops = TM_IO_WRITE | TM_IO_FLUSH | TM_IO_TRUNCATE | TM_IO_PUNCH,
        .action = TM_FAULT_POWER_CUT }, 0x4444ull, 0);
    geo.vsize = (8u << 20) + 3 * SECTOR;
    geo.block = 1u << 20;
    geo.logical_sector = 512;
    geo.stride = 1;
    print_message("power cut, 4096-byte sectors: %u points\n", n);
    assert_true(n > 30);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(power_cut_at_every_point),
        cmocka_unit_test(power_cut_with_reordered_writes),
        cmocka_unit_test(torn_write_at_every_point),
        cmocka_unit_test(io_error_at_every_point),
        cmocka_unit_test(enospc_at_every_point),
        cmocka_unit_test(power_cut_fixed_disk),
        cmocka_unit_test(power_cut_4k_sectors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
