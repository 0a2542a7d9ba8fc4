/* SPDX-License-Identifier: MIT */
/* mem_test.c - the in-memory backend: sparse offsets past 4 GiB, short
 * reads at the end, punch and truncate keeping "past the end is zero". */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "io.h"
#include "io_testutil.h"

#define GiB ((uint64_t)1 << 30)
#define PAGE 65536u

static int
setup(void **state)
{
    *state = tm_io_mem_new();
    return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    tm_io_close(*state);
    return 0;
}

static void
mem_starts_empty(void **state)
{
    struct tm_io *io = *state;
    uint8_t b;

    assert_string_equal(io->ops->name, "mem");
    assert_int_equal(size_of(io), 0);
    assert_int_equal(tm_io_pread(io, &b, 1, 0), 0);
    assert_int_equal(tm_io_pread_all(io, &b, 1, 0), TM_E_TRUNCATED);
    assert_int_equal(tm_io_flush(io), 0);
}

static void
mem_write_far_past_4gib_is_sparse(void **state)
{
    struct tm_io *io = *state;
    uint64_t off = 5 * GiB + 12345;
    uint64_t far = 3000 * GiB;          /* 3 TiB: needs many leaves */

    fill(io, off, 3 * PAGE, 0xab);      /* crosses page boundaries */
    assert_int_equal(size_of(io), off + 3 * PAGE);
    assert_bytes(io, off, 3 * PAGE, 0xab);
    assert_bytes(io, off - 4096, 4096, 0);
    assert_bytes(io, 4 * GiB, 4096, 0);
    fill(io, far, 10, 0xcd);
    assert_int_equal(size_of(io), far + 10);
    assert_bytes(io, far, 10, 0xcd);
    assert_bytes(io, off, 3 * PAGE, 0xab);
    assert_bytes(io, far - 100, 100, 0);
}

static void
mem_read_past_end_is_short(void **state)
{
    struct tm_io *io = *state;
    uint8_t buf[200];

    fill(io, 0, 100, 0x5a);
    assert_int_equal(tm_io_pread(io, buf, sizeof(buf), 0), 100);
    assert_int_equal(tm_io_pread(io, buf, sizeof(buf), 50), 50);
    assert_int_equal(tm_io_pread(io, buf, sizeof(buf), 100), 0);
    assert_int_equal(tm_io_pread(io, buf, sizeof(buf), 10 * GiB), 0);
    assert_int_equal(tm_io_pread_all(io, buf, sizeof(buf), 0),
                     TM_E_TRUNCATED);
    assert_int_equal(tm_io_pread_all(io, buf, 100, 0), 0);
}

static void
mem_punch_zeroes_and_keeps_size(void **state)
{
    struct tm_io *io = *state;

    fill(io, 0, 4 * PAGE, 0x11);
    /* Partial first page, two whole pages, partial last page. */
    assert_int_equal(tm_io_punch(io, 1000, 3 * PAGE), 0);
    assert_int_equal(size_of(io), 4 * PAGE);
    assert_bytes(io, 0, 1000, 0x11);
    assert_bytes(io, 1000, 3 * PAGE, 0);
    assert_bytes(io, 1000 + 3 * PAGE, PAGE - 1000, 0x11);
    /* Past the end: nothing changes. */
    assert_int_equal(tm_io_punch(io, 4 * PAGE - 10, 1000 * GiB), 0);
    assert_int_equal(size_of(io), 4 * PAGE);
    assert_bytes(io, 4 * PAGE - 10, 10, 0);
    assert_bytes(io, 1000 + 3 * PAGE, PAGE - 1010, 0x11);
    /* Writing into a punched page brings it back with zeros around. */
    fill(io, PAGE + 5, 5, 0x22);
    assert_bytes(io, PAGE, 5, 0);
    assert_bytes(io, PAGE + 5, 5, 0x22);
    assert_bytes(io, PAGE + 10, 100, 0);
}

static void
mem_truncate_then_extend_reads_zeros(void **state)
{
    struct tm_io *io = *state;

    fill(io, 0, 3 * PAGE, 0x33);
    assert_int_equal(tm_io_truncate(io, PAGE + 100), 0);
    assert_int_equal(size_of(io), PAGE + 100);
    assert_int_equal(tm_io_truncate(io, 3 * PAGE), 0);
    assert_bytes(io, 0, PAGE + 100, 0x33);
    assert_bytes(io, PAGE + 100, 2 * PAGE - 100, 0);
    /* Extending by writing past the end leaves a zero gap. */
    assert_int_equal(tm_io_truncate(io, 10), 0);
    fill(io, 2 * PAGE, 1, 0x44);
    assert_bytes(io, 0, 10, 0x33);
    assert_bytes(io, 10, 2 * PAGE - 10, 0);
    assert_bytes(io, 2 * PAGE, 1, 0x44);
}

static void
mem_huge_truncates_are_cheap(void **state)
{
    struct tm_io *io = *state;

    assert_int_equal(tm_io_truncate(io, 100000 * GiB), 0);
    fill(io, 99999 * GiB, 1, 1);
    assert_int_equal(size_of(io), 100000 * GiB);
    assert_int_equal(tm_io_truncate(io, 0), 0);
    assert_int_equal(size_of(io), 0);
    assert_int_equal(tm_io_truncate(io, (uint64_t)1 << 62), -EFBIG);
    assert_int_equal(tm_io_pwrite_all(io, "x", 1, (uint64_t)1 << 62),
                     -EFBIG);
}

static void
mem_allocate_grows_only(void **state)
{
    struct tm_io *io = *state;

    fill(io, 0, 100, 0x55);
    assert_int_equal(tm_io_allocate(io, 50, 10), 0);
    assert_int_equal(size_of(io), 100);
    assert_int_equal(tm_io_allocate(io, 50, 8 * GiB), 0);
    assert_int_equal(size_of(io), 50 + 8 * GiB);
    assert_bytes(io, 0, 100, 0x55);
    assert_bytes(io, 100, 4096, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(mem_starts_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(mem_write_far_past_4gib_is_sparse,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(mem_read_past_end_is_short, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(mem_punch_zeroes_and_keeps_size,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(mem_truncate_then_extend_reads_zeros,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(mem_huge_truncates_are_cheap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(mem_allocate_grows_only, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
