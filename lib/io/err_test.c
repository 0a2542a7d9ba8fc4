/* SPDX-License-Identifier: MIT */
/* err_test.c - error detail (struct tm_err) and tm_strerror. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io.h"

static void
err_set_formats_and_returns_code(void **state)
{
    struct tm_err e;

    assert_int_equal(tm_err_set(&e, TM_E_CORRUPT, "header %u bad", 2),
                     TM_E_CORRUPT);
    assert_int_equal(e.code, TM_E_CORRUPT);
    assert_string_equal(e.msg, "header 2 bad");
    assert_true(e.file_off == UINT64_MAX);
    assert_int_equal(tm_err_set_at(&e, -EIO, 65536, "read %s", "failed"),
                     -EIO);
    assert_true(e.file_off == 65536);
    assert_string_equal(e.msg, "read failed");
    assert_int_equal(tm_err_set(NULL, -ENOMEM, "x"), -ENOMEM);
    assert_int_equal(tm_err_set_at(NULL, -ENOMEM, 1, "x"), -ENOMEM);
    tm_err_prefix(NULL, "x");
    tm_err_clear(NULL);
}

static void
err_prefix_adds_context_and_truncates_safely(void **state)
{
    struct tm_err e;
    char big[600];

    tm_err_set(&e, TM_E_CORRUPT, "bad checksum");
    tm_err_prefix(&e, "header %d", 2);
    assert_string_equal(e.msg, "header 2: bad checksum");
    tm_err_clear(&e);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.msg, "");
    tm_err_prefix(&e, "only");
    assert_string_equal(e.msg, "only");

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tm_err_set(&e, TM_E_CORRUPT, "%s", big);
    assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
    tm_err_prefix(&e, "outer");
    assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
    assert_memory_equal(e.msg, "outer: aaa", 10);
}

static void
strerror_names_every_code(void **state)
{
    for (int code = TM_E_RCT_OTHER_DISK; code <= TM_E_CORRUPT; code++) {
        const char *s = tm_strerror(code);

        assert_non_null(s);
        assert_string_not_equal(s, "unknown tidemark error");
    }
    assert_string_equal(tm_strerror(TM_E_CORRUPT),
                        "structure fails validation");
    assert_string_equal(tm_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(tm_strerror(0), "success");
    assert_non_null(tm_strerror(-4000));
    assert_non_null(tm_strerror(-99999));
    assert_non_null(tm_strerror(INT32_MIN));
    assert_non_null(tm_strerror(5));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(err_set_formats_and_returns_code),
        cmocka_unit_test(err_prefix_adds_context_and_truncates_safely),
        cmocka_unit_test(strerror_names_every_code),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
