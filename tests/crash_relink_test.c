/* SPDX-License-Identifier: MIT */
/* crash_relink_test.c - Set-VHD -ParentPath under power cuts.  Relinking
 * rewrites a child's parent locator (through the log, one entry).  After
 * a cut at every write, truncate and flush of the relink, with all
 * unflushed writes lost and again with random survivors, the child must
 * open read-only and read-write, 'check' must be clean, and its locator
 * must be the old one or the new one as a whole: the old paths with the
 * old parent_linkage, or the new paths with the new one (a forced relink
 * to another parent), so the chain reads through exactly one of the two
 * parents, every byte.
 *
 * TM_CRASH_STRIDE=N runs every Nth point only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io.h"
#include "vhdx.h"
#include "vhdx_testutil.h"

#define MiB (1u << 20)
#define VSIZE (6u * MiB)
#define SEEDS 8

static unsigned stride = 1;

/* A dynamic parent filled with 'byte' in its first 4 MiB. */
static struct tm_io *
make_parent(uint8_t byte, uint8_t *content)
{
    struct tm_io *mem = tm_io_mem_new();
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .virtual_size = VSIZE, .block_size = MiB,
    };
    uint8_t *buf = malloc(4 * MiB);

    memset(buf, byte, 4 * MiB);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(mem), &p), 0);
    assert_int_equal(tm_vhdx_write(vd, buf, 4 * MiB, 0), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    memset(content, 0, VSIZE);
    memset(content, byte, 4 * MiB);
    free(buf);
    return mem;
}

struct fixture {
    struct tm_io *parent[2];
    uint8_t *content[2];        /* what the child reads over each parent */
    struct tm_io *child;
    struct tm_guid linkage[2];  /* each parent's DataWriteGuid */
};

static void
setup(struct fixture *f)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .block_size = MiB,
        .parent_relative_path = ".\\old\\base.vhdx",
        .parent_absolute_path = "Z:\\old\\base.vhdx",
    };
    uint8_t buf[3072];
    struct tm_vhdx_info info;

    for (int i = 0; i < 2; i++) {
        struct tm_vhdx *pa;

        f->content[i] = malloc(VSIZE);
        assert_non_null(f->content[i]);
        f->parent[i] = make_parent((uint8_t)(0x30 + i), f->content[i]);
        pa = open_disk(f->parent[i], TM_VHDX_RDONLY);
        assert_int_equal(tm_vhdx_get_info(pa, &info), 0);
        f->linkage[i] = info.data_write_guid;
        tm_vhdx_close(pa);
    }
    /* The child, made from parent 0, with a few sub-block writes. */
    f->child = tm_io_mem_new();
    p.parent = open_disk(f->parent[0], TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(f->child), &p), 0);
    memset(buf, 0x7e, sizeof(buf));
    /* Whole sectors: a partial one would take the rest of its sector
     * from parent 0 into the child. */
    for (uint64_t off = 1024; off < VSIZE; off += 1536 * 1000) {
        assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), off), 0);
        for (int i = 0; i < 2; i++)
            memcpy(f->content[i] + off, buf, sizeof(buf));
    }
    assert_int_equal(tm_vhdx_close(vd), 0);
}

static void
teardown(struct fixture *f)
{
    for (int i = 0; i < 2; i++) {
        tm_io_close(f->parent[i]);
        free(f->content[i]);
    }
    tm_io_close(f->child);
}

/* The relink: new paths, and with 'force' parent 1's identity. */
static int
relink(struct tm_io *io, const struct fixture *f, bool force)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_locator loc;
    int rc = tm_vhdx_open(vd, tm_io_borrow_new(io), 0);

    memset(&loc, 0, sizeof(loc));
    loc.linkage = f->linkage[force ? 1 : 0];
    loc.relative_path = (char *)"..\\moved\\base.vhdx";
    loc.absolute_win32_path = (char *)"Z:\\moved\\base.vhdx";
    if (rc == 0)
        rc = tm_vhdx_set_locator(vd, &loc);
    if (rc == 0)
        rc = tm_vhdx_flush(vd);
    if (rc == 0)
        return tm_vhdx_close(vd);
    tm_vhdx_close(vd);
    return rc;
}

/* The invariant after a cut; returns which locator the child has. */
static int
verify(struct tm_io *mem, const struct fixture *f, bool done)
{
    struct tm_vhdx *vd;
    const struct tm_vhdx_locator *loc;
    uint8_t *buf = malloc(VSIZE);
    int which;

    assert_non_null(buf);
    /* Read-write first: it replays a pending log into the file. */
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
    loc = tm_vhdx_locator(vd);
    assert_non_null(loc);
    assert_non_null(loc->relative_path);
    if (strcmp(loc->relative_path, ".\\old\\base.vhdx") == 0) {
        assert_false(done);
        assert_string_equal(loc->absolute_win32_path, "Z:\\old\\base.vhdx");
        assert_true(tm_guid_equal(&loc->linkage, &f->linkage[0]));
        which = 0;
    } else {
        assert_string_equal(loc->relative_path, "..\\moved\\base.vhdx");
        assert_string_equal(loc->absolute_win32_path,
                            "Z:\\moved\\base.vhdx");
        which = tm_guid_equal(&loc->linkage, &f->linkage[1]) ? 1 : 0;
        assert_true(tm_guid_equal(&loc->linkage, &f->linkage[which]));
        which |= 2;
    }
    assert_int_equal(tm_vhdx_attach_parent(vd, open_disk(f->parent[which & 1],
                                                        TM_VHDX_RDONLY)), 0);
    assert_int_equal(tm_vhdx_read(vd, buf, VSIZE, 0), 0);
    assert_memory_equal(buf, f->content[which & 1], VSIZE);
    assert_int_equal(tm_vhdx_close(vd), 0);
    free(buf);
    return which;
}

static void
sweep(bool force)
{
    struct fixture f;
    struct tm_io *mem, *io;
    struct tm_fault none = { .ops = TM_IO_WRITE | TM_IO_FLUSH |
                                    TM_IO_TRUNCATE | TM_IO_PUNCH,
                             .after = UINT64_MAX };
    uint64_t points;
    unsigned runs = 0, olds = 0, news = 0;

    setup(&f);
    /* Count the points with a fault that never fires. */
    mem = copy_disk(f.child);
    io = tm_io_fault_new(mem, &none);
    assert_int_equal(relink(io, &f, force), 0);
    points = tm_io_fault_count(io);
    tm_io_close(io);
    assert_int_equal(verify(mem, &f, true), force ? 3 : 2);
    tm_io_close(mem);

    for (uint64_t k = 1; k <= points; k++) {
        for (uint64_t seed = 0; seed < SEEDS; seed++) {
            struct tm_fault cut = none;
            int rc, which;

            if ((k * SEEDS + seed) % stride != 0)
                continue;
            cut.after = k;
            cut.action = TM_FAULT_POWER_CUT;
            cut.seed = seed;
            mem = copy_disk(f.child);
            io = tm_io_fault_new(mem, &cut);
            rc = relink(io, &f, force);
            assert_true(tm_io_fault_fired(io) || rc == 0);
            tm_io_close(io);
            which = verify(mem, &f, rc == 0 && !tm_io_fault_fired(io));
            if (which & 2)
                news++;
            else
                olds++;
            tm_io_close(mem);
            runs++;
        }
    }
    print_message("relink%s: %llu points x %d seeds: %u runs, %u old "
                  "locators, %u new\n", force ? " --force" : "",
                  (unsigned long long)points, SEEDS, runs, olds, news);
    assert_true(olds > 0 && news > 0);
    teardown(&f);
}

static void
relink_paths(void **state)
{
    (void)state;
    sweep(false);
}

static void
relink_forced_to_another_parent(void **state)
{
    (void)state;
    sweep(true);
}

int
main(void)
{
    const char *s = getenv("TM_CRASH_STRIDE");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relink_paths),
        cmocka_unit_test(relink_forced_to_another_parent),
    };

    if (s != NULL && atoi(s) > 0)
        stride = (unsigned)atoi(s);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
