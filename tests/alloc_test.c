/* SPDX-License-Identifier: MIT */
/* alloc_test.c - allocation failures at every malloc, calloc and realloc
 * of a workload: read-write use of a VHDX (allocating writes, flush,
 * discard, check, dump, close) and a read-only open that replays a dirty
 * log into memory.  The program links with --wrap for the three, so the
 * Nth allocation made by the libraries fails.  Each run must return
 * cleanly (no crash; ASan builds also catch misuse), free every byte it
 * took (counted here, so the plain build checks leaks too), and leave a
 * file that opens, checks clean and keeps every write a flush
 * acknowledged. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io.h"
#include "vhdx.h"

#define MiB (1u << 20)

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static struct {
    long fail_at;               /* fail the fail_at-th allocation; 0 = none */
    long count;                 /* allocations since armed */
    long live;                  /* blocks not yet freed */
    bool fired;
} al;

static bool
should_fail(void)
{
    if (al.fail_at == 0)
        return false;
    if (++al.count != al.fail_at)
        return false;
    al.fired = true;
    return true;
}

void *
__wrap_malloc(size_t n)
{
    void *p;

    if (should_fail())
        return NULL;
    p = __real_malloc(n);
    if (p != NULL)
        al.live++;
    return p;
}

void *
__wrap_calloc(size_t n, size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    p = __real_calloc(n, size);
    if (p != NULL)
        al.live++;
    return p;
}

void *
__wrap_realloc(void *old, size_t n)
{
    void *p;

    if (should_fail())
        return NULL;
    p = __real_realloc(old, n);
    if (p != NULL && old == NULL)
        al.live++;
    return p;
}

void
__wrap_free(void *p)
{
    if (p != NULL)
        al.live--;
    __real_free(p);
}

/* The disks are files in a scratch directory: a memory file would
 * allocate pages as the workload writes, which the leak count would see. */
static char dir[] = "/tmp/tm-alloc-XXXXXX";

static struct tm_io *
file(const char *name, unsigned flags)
{
    char path[256];
    struct tm_io *io = NULL;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (tm_io_posix_open(path, flags, &io) < 0)
        return NULL;
    return io;
}

static void
copy_file(const char *from, const char *to)
{
    struct tm_io *src = file(from, TM_IO_RDONLY);
    struct tm_io *dst = file(to, TM_IO_CREATE | TM_IO_TRUNC);
    uint8_t *buf = malloc(MiB);
    uint64_t size;

    assert_non_null(src);
    assert_non_null(dst);
    assert_non_null(buf);
    assert_int_equal(tm_io_size(src, &size), 0);
    for (uint64_t off = 0; off < size; off += MiB) {
        size_t n = size - off < MiB ? (size_t)(size - off) : MiB;

        assert_int_equal(tm_io_pread_all(src, buf, n, off), 0);
        assert_int_equal(tm_io_pwrite_all(dst, buf, n, off), 0);
    }
    free(buf);
    tm_io_close(src);
    tm_io_close(dst);
}

static void
ignore_line(void *user, const char *line)
{
    (void)user;
    (void)line;
}

static void
new_disk(const char *name)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .virtual_size = 16 * MiB, .block_size = MiB,
    };

    assert_int_equal(tm_vhdx_create(vd, file(name, TM_IO_CREATE |
                                                TM_IO_TRUNC), &p), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
}

/* 'dirty': a disk whose last BAT update is only in the log. */
static void
dirty_disk(void)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_io *io;
    uint8_t buf[8192], bat[4096];

    new_disk("clean");
    memset(buf, 0x3d, sizeof(buf));
    assert_int_equal(tm_vhdx_open(vd, file("clean", 0), 0), 0);
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), 0), 0);
    assert_int_equal(tm_vhdx_flush(vd), 0);
    io = file("clean", TM_IO_RDONLY);
    assert_int_equal(tm_io_pread_all(io, bat, sizeof(bat), 3 * MiB), 0);
    tm_io_close(io);
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), 9 * MiB), 0);
    assert_int_equal(tm_vhdx_flush(vd), 0);
    copy_file("clean", "dirty");
    io = file("dirty", 0);
    assert_int_equal(tm_io_pwrite_all(io, bat, sizeof(bat), 3 * MiB), 0);
    tm_io_close(io);
    tm_vhdx_close(vd);
}

/* Returns whether the whole workload succeeded; 'acked' tells whether
 * the flush of the first write completed. */
static bool
workload(bool *acked)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    uint8_t *buf = malloc(3 * MiB);
    bool ok = false;
    int rc;

    *acked = false;
    if (vd == NULL || buf == NULL)
        goto out;
    memset(buf, 0xa7, 3 * MiB);
    rc = tm_vhdx_open(vd, file("disk", 0), 0);
    if (rc == 0)
        rc = tm_vhdx_write(vd, buf, 3 * MiB, MiB / 2);
    if (rc == 0)
        rc = tm_vhdx_flush(vd);
    if (rc == 0)
        *acked = true;
    if (rc == 0)
        rc = tm_vhdx_discard(vd, 8 * MiB, 2 * MiB, TM_VHDX_ZERO);
    if (rc == 0)
        rc = tm_vhdx_write(vd, buf, 4096, 12 * MiB);
    if (rc == 0)
        rc = tm_vhdx_check(vd, NULL, NULL);
    if (rc == 0)
        rc = tm_vhdx_dump(vd, ignore_line, NULL);
    if (rc == 0)
        rc = tm_vhdx_repair(vd, NULL, NULL);
    if (tm_vhdx_close(vd) != 0)
        rc = -EIO;
    vd = NULL;
    if (rc != 0)
        goto out;

    vd = tm_vhdx_new();
    if (vd == NULL)
        goto out;
    rc = tm_vhdx_open(vd, file("dirty", TM_IO_RDONLY), TM_VHDX_RDONLY);
    if (rc == 0)
        rc = tm_vhdx_read(vd, buf, 3 * MiB, 8 * MiB);
    if (rc == 0)                /* one problem: the log not yet applied */
        rc = tm_vhdx_check(vd, NULL, NULL) == 1 ? 0 : -1;
    ok = rc == 0;
out:
    tm_vhdx_close(vd);
    free(buf);
    return ok;
}

static void
fails_cleanly_at_every_allocation(void **state)
{
    long n;

    assert_non_null(mkdtemp(dir));
    dirty_disk();
    for (n = 1;; n++) {
        struct tm_vhdx *vd;
        long live_before;
        bool acked, ok;
        uint8_t got[4096];

        new_disk("disk");
        live_before = al.live;
        al.count = 0;
        al.fired = false;
        al.fail_at = n;
        ok = workload(&acked);
        al.fail_at = 0;
        if (al.live != live_before) {
            print_error("allocation %ld: %ld blocks leaked\n", n,
                        al.live - live_before);
            fail();
        }
        if (!al.fired)
            assert_true(ok);

        /* Whatever failed, the file opens, checks clean and keeps the
         * flushed write. */
        vd = tm_vhdx_new();
        assert_int_equal(tm_vhdx_open(vd, file("disk", 0), 0), 0);
        assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
        if (acked) {
            assert_int_equal(tm_vhdx_read(vd, got, sizeof(got), MiB), 0);
            for (size_t i = 0; i < sizeof(got); i++)
                assert_int_equal(got[i], 0xa7);
        }
        assert_int_equal(tm_vhdx_close(vd), 0);
        if (!al.fired)
            break;
    }
    print_message("%ld allocation points\n", n);
    for (const char *const *f = (const char *const[]){ "disk", "clean",
                                                       "dirty", NULL };
         *f != NULL; f++) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s", dir, *f);
        remove(path);
    }
    rmdir(dir);
    assert_true(n > 20);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fails_cleanly_at_every_allocation),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
