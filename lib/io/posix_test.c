/* SPDX-License-Identifier: MIT */
/* posix_test.c - the POSIX backend on real files in a private directory
 * under /tmp, removed afterwards. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "io.h"
#include "io_testutil.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int
setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/tm-io-test-XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/file", fx->dir);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;

    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void
posix_open_honours_create_and_excl(void **state)
{
    struct fixture *fx = *state;
    struct tm_io *io = (struct tm_io *)1;

    assert_int_equal(tm_io_posix_open(fx->path, 0, &io), -ENOENT);
    assert_null(io);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_CREATE | TM_IO_EXCL,
                                      &io), 0);
    assert_string_equal(io->ops->name, "posix");
    assert_int_equal(size_of(io), 0);
    tm_io_close(io);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_CREATE | TM_IO_EXCL,
                                      &io), -EEXIST);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_EXCL, &io),
                     TM_E_INVALID);
    assert_int_equal(tm_io_posix_open(fx->path, 1u << 20, &io),
                     TM_E_INVALID);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_RDONLY | TM_IO_TRUNC,
                                      &io), TM_E_INVALID);
    tm_io_close(NULL);
}

static void
posix_writes_read_back_and_reads_stop_at_end(void **state)
{
    struct fixture *fx = *state;
    struct tm_io *io;
    uint8_t buf[100];

    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_CREATE, &io), 0);
    memset(buf, 0x5a, sizeof(buf));
    assert_int_equal(tm_io_pwrite_all(io, buf, sizeof(buf), 1000), 0);
    assert_int_equal(tm_io_flush(io), 0);
    assert_int_equal(size_of(io), 1100);
    assert_bytes(io, 0, 1000, 0);
    assert_bytes(io, 1000, 100, 0x5a);
    assert_int_equal(tm_io_pread(io, buf, sizeof(buf), 1050), 50);
    assert_int_equal(tm_io_pread(io, buf, sizeof(buf), 1100), 0);
    assert_int_equal(tm_io_pread_all(io, buf, sizeof(buf), 1050),
                     TM_E_TRUNCATED);
    tm_io_close(io);

    /* TRUNC empties it; RDONLY refuses every change. */
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_RDONLY, &io), 0);
    assert_int_equal(size_of(io), 1100);
    assert_int_equal(tm_io_pwrite_all(io, buf, 1, 0), TM_E_READONLY);
    assert_int_equal(tm_io_truncate(io, 0), TM_E_READONLY);
    assert_int_equal(tm_io_punch(io, 0, 1), TM_E_READONLY);
    assert_int_equal(tm_io_allocate(io, 0, 1), TM_E_READONLY);
    assert_int_equal(tm_io_flush(io), 0);
    tm_io_close(io);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_TRUNC, &io), 0);
    assert_int_equal(size_of(io), 0);
    tm_io_close(io);
}

static void
posix_truncate_punch_allocate(void **state)
{
    struct fixture *fx = *state;
    struct tm_io *io;
    uint8_t *buf = malloc(65536);
    struct stat st;

    assert_non_null(buf);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_CREATE, &io), 0);
    memset(buf, 0x77, 65536);
    assert_int_equal(tm_io_pwrite_all(io, buf, 65536, 0), 0);
    assert_int_equal(tm_io_punch(io, 4096, 8192), 0);
    assert_int_equal(size_of(io), 65536);
    assert_bytes(io, 0, 4096, 0x77);
    assert_bytes(io, 4096, 8192, 0);
    assert_bytes(io, 12288, 65536 - 12288, 0x77);
    assert_int_equal(tm_io_truncate(io, 5000), 0);
    assert_int_equal(size_of(io), 5000);
    assert_int_equal(tm_io_allocate(io, 0, 1 << 20), 0);
    assert_int_equal(size_of(io), 1 << 20);
    assert_bytes(io, 0, 4096, 0x77);
    assert_bytes(io, 5000, 60000, 0);
    assert_int_equal(stat(fx->path, &st), 0);
    assert_true((uint64_t)st.st_blocks * 512 >= (1u << 20) - 8192);
    assert_int_equal(tm_io_truncate(io, (uint64_t)1 << 63), -EFBIG);
    assert_int_equal(tm_io_flush(io), 0);
    tm_io_close(io);
    free(buf);
}

/* Two lockers conflict even inside one process (OFD locks); a reader
 * without the flag is never refused; TRUNC waits for the lock. */
static void
posix_lock_refuses_second_writer(void **state)
{
    struct fixture *fx = *state;
    struct tm_io *a = NULL, *b = NULL, *r = NULL;
    uint8_t byte = 0x42;

    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_CREATE | TM_IO_LOCK,
                                      &a), 0);
    assert_int_equal(tm_io_pwrite_all(a, &byte, 1, 0), 0);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_LOCK, &b),
                     TM_E_LOCKED);
    assert_null(b);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_LOCK | TM_IO_RDONLY,
                                      &b), TM_E_LOCKED);
    /* A locked-out TRUNC must not have truncated. */
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_LOCK | TM_IO_TRUNC,
                                      &b), TM_E_LOCKED);
    assert_int_equal(size_of(a), 1);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_RDONLY, &r), 0);
    assert_bytes(r, 0, 1, 0x42);
    tm_io_close(r);
    tm_io_close(a);
    assert_int_equal(tm_io_posix_open(fx->path, TM_IO_LOCK | TM_IO_TRUNC,
                                      &b), 0);
    assert_int_equal(size_of(b), 0);
    tm_io_close(b);
    assert_string_equal(tm_strerror(TM_E_LOCKED),
                        "file is in use by another program (locked)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(posix_open_honours_create_and_excl,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            posix_writes_read_back_and_reads_stop_at_end, setup, teardown),
        cmocka_unit_test_setup_teardown(posix_truncate_punch_allocate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(posix_lock_refuses_second_writer,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
