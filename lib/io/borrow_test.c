/* SPDX-License-Identifier: MIT */
/* borrow_test.c - a borrowed view forwards everything and leaves the
 * file open when closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "io.h"

static void
forwards_and_leaves_inner_open(void **state)
{
    struct tm_io *mem = tm_io_mem_new();
    struct tm_io *b = tm_io_borrow_new(mem);
    uint8_t buf[8] = "abcdefg", got[8];
    uint64_t size;

    assert_non_null(b);
    assert_int_equal(tm_io_pwrite_all(b, buf, 8, 4096), 0);
    assert_int_equal(tm_io_flush(b), 0);
    assert_int_equal(tm_io_size(b, &size), 0);
    assert_int_equal(size, 4104);
    assert_int_equal(tm_io_punch(b, 4096, 4), 0);
    assert_int_equal(tm_io_truncate(b, 4102), 0);
    assert_int_equal(tm_io_start_writeback(b), 0);    /* mem: no-op */
    tm_io_close(b);
    /* 'mem' is still open and saw every operation. */
    assert_int_equal(tm_io_size(mem, &size), 0);
    assert_int_equal(size, 4102);
    assert_int_equal(tm_io_pread_all(mem, got, 6, 4096), 0);
    assert_memory_equal(got, "\0\0\0\0ef", 6);
    tm_io_close(mem);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forwards_and_leaves_inner_open),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
