/* SPDX-License-Identifier: MIT */
/* overlay_test.c - the copy-on-write view: reads merge the view's changes
 * over the file, which is never written; a random workload matches a
 * flat-array model byte for byte.  The fault backend without a fault is
 * run against the same model here, to share it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "io.h"
#include "io_testutil.h"

static void
overlay_reads_merge_and_inner_stays(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *ov;

    fill(disk, 0, 4096, 0x11);
    ov = tm_io_overlay_new(disk);
    assert_non_null(ov);
    assert_string_equal(ov->ops->name, "overlay");
    assert_int_equal(size_of(ov), 4096);
    fill(ov, 100, 50, 0x22);
    fill(ov, 120, 10, 0x33);            /* splits the first in three */
    fill(ov, 5000, 10, 0x44);
    assert_int_equal(tm_io_flush(ov), 0);
    assert_int_equal(size_of(ov), 5010);
    assert_bytes(ov, 0, 100, 0x11);
    assert_bytes(ov, 100, 20, 0x22);
    assert_bytes(ov, 120, 10, 0x33);
    assert_bytes(ov, 130, 20, 0x22);
    assert_bytes(ov, 150, 4096 - 150, 0x11);
    assert_bytes(ov, 4096, 904, 0);
    assert_bytes(ov, 5000, 10, 0x44);
    tm_io_close(ov);
    assert_int_equal(size_of(disk), 4096);
    assert_bytes(disk, 0, 4096, 0x11);
    tm_io_close(disk);
}

static void
overlay_truncate_hides_inner_bytes(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *ov;

    fill(disk, 0, 8192, 0x11);
    ov = tm_io_overlay_new(disk);
    fill(ov, 3000, 2000, 0x22);
    assert_int_equal(tm_io_truncate(ov, 4000), 0);
    assert_int_equal(size_of(ov), 4000);
    assert_int_equal(tm_io_truncate(ov, 8192), 0);
    assert_bytes(ov, 0, 3000, 0x11);
    assert_bytes(ov, 3000, 1000, 0x22);
    assert_bytes(ov, 4000, 4192, 0);
    assert_int_equal(tm_io_punch(ov, 0, 10), 0);
    assert_bytes(ov, 0, 10, 0);
    assert_bytes(ov, 10, 10, 0x11);
    assert_int_equal(tm_io_allocate(ov, 0, 10000), 0);
    assert_int_equal(size_of(ov), 10000);
    tm_io_close(ov);
    assert_int_equal(size_of(disk), 8192);
    assert_bytes(disk, 0, 8192, 0x11);
    tm_io_close(disk);
}

/* ---- random workload against a flat model --------------------------- */

#define MODEL_MAX 200000u

struct model {
    uint8_t bytes[MODEL_MAX + 70000];
    uint64_t size;
};

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void
model_check(struct tm_io *io, const struct model *m)
{
    static uint8_t buf[MODEL_MAX + 70000];

    assert_int_equal(size_of(io), m->size);
    assert_int_equal(tm_io_pread(io, buf, sizeof(buf), 0), m->size);
    assert_memory_equal(buf, m->bytes, m->size);
}

/* One random operation on both 'io' and the model. */
static void
model_step(struct tm_io *io, struct model *m, uint64_t *s)
{
    static uint8_t data[65536];
    uint64_t off = rnd(s) % MODEL_MAX;
    uint64_t len = rnd(s) % 4 == 0 ? rnd(s) % 65536 : rnd(s) % 700;
    unsigned kind = (unsigned)(rnd(s) % 10);

    if (kind < 6) {
        uint8_t v = (uint8_t)rnd(s);

        memset(data, v, (size_t)len);
        for (uint64_t i = 0; i < len; i += 97)
            data[i] = (uint8_t)(v + i);
        assert_int_equal(tm_io_pwrite_all(io, data, (size_t)len, off), 0);
        memcpy(m->bytes + off, data, (size_t)len);
        if (len > 0 && off + len > m->size)
            m->size = off + len;
    } else if (kind < 8) {
        assert_int_equal(tm_io_punch(io, off, len), 0);
        if (off < m->size) {
            uint64_t end = off + len < m->size ? off + len : m->size;

            memset(m->bytes + off, 0, (size_t)(end - off));
        }
    } else if (kind < 9) {
        assert_int_equal(tm_io_truncate(io, off), 0);
        if (off < m->size)
            memset(m->bytes + off, 0, (size_t)(m->size - off));
        m->size = off;
    } else {
        assert_int_equal(tm_io_allocate(io, off, len), 0);
        if (len > 0 && off + len > m->size)
            m->size = off + len;
    }
}

static void
overlay_matches_model_under_random_ops(void **state)
{
    static struct model m;
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *ov;
    uint64_t s = 2024;
    uint8_t *orig = malloc(100000);

    assert_non_null(orig);
    for (size_t i = 0; i < 100000; i++)
        orig[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(tm_io_pwrite_all(disk, orig, 100000, 0), 0);
    memset(&m, 0, sizeof(m));
    memcpy(m.bytes, orig, 100000);
    m.size = 100000;
    ov = tm_io_overlay_new(disk);
    for (int i = 0; i < 3000; i++) {
        model_step(ov, &m, &s);
        if (i % 50 == 0)
            model_check(ov, &m);
        /* Small reads at random places, through the extent search. */
        {
            uint8_t buf[300];
            uint64_t off = rnd(&s) % (MODEL_MAX + 1000);
            int64_t n = tm_io_pread(ov, buf, sizeof(buf), off);
            uint64_t want = off >= m.size ? 0
                            : m.size - off < 300 ? m.size - off : 300;

            assert_int_equal(n, want);
            assert_memory_equal(buf, m.bytes + off, (size_t)want);
        }
    }
    model_check(ov, &m);
    tm_io_close(ov);
    {
        uint8_t *back = malloc(100000);

        assert_non_null(back);
        assert_int_equal(size_of(disk), 100000);
        assert_int_equal(tm_io_pread_all(disk, back, 100000, 0), 0);
        assert_memory_equal(back, orig, 100000);
        free(back);
    }
    free(orig);
    tm_io_close(disk);
}

/* The fault backend with no fault is the same file as long as it lives,
 * and after a flush the disk is too. */
static void
fault_without_fault_matches_model(void **state)
{
    static struct model m;
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, NULL);
    uint64_t s = 99;

    memset(&m, 0, sizeof(m));
    for (int i = 0; i < 600; i++) {
        model_step(io, &m, &s);
        if (i % 40 == 0) {
            model_check(io, &m);
            assert_int_equal(tm_io_flush(io), 0);
            model_check(disk, &m);
        }
    }
    assert_int_equal(tm_io_flush(io), 0);
    model_check(disk, &m);
    tm_io_close(io);
    tm_io_close(disk);
}

static void
overlay_sequential_writes_stay_fast(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *ov = tm_io_overlay_new(disk);
    uint8_t buf[4096];

    /* 64 MiB in 4 KiB writes, then a read of every block. */
    for (uint64_t i = 0; i < 16384; i++) {
        memset(buf, (int)(i & 0xff), sizeof(buf));
        assert_int_equal(tm_io_pwrite_all(ov, buf, sizeof(buf), i * 4096),
                         0);
    }
    for (uint64_t i = 0; i < 16384; i += 7) {
        assert_int_equal(tm_io_pread_all(ov, buf, sizeof(buf), i * 4096), 0);
        assert_int_equal(buf[0], i & 0xff);
        assert_int_equal(buf[4095], i & 0xff);
    }
    assert_int_equal(size_of(disk), 0);
    tm_io_close(ov);
    tm_io_close(disk);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(overlay_reads_merge_and_inner_stays),
        cmocka_unit_test(overlay_truncate_hides_inner_bytes),
        cmocka_unit_test(overlay_matches_model_under_random_ops),
        cmocka_unit_test(fault_without_fault_matches_model),
        cmocka_unit_test(overlay_sequential_writes_stay_fast),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
