/* SPDX-License-Identifier: MIT */
/* io_testutil.h - assertions the io layer's tests share; include after
 * <cmocka.h> and "io.h". */
#ifndef TM_IO_TESTUTIL_H
#define TM_IO_TESTUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Writes 'len' bytes of 'v' at 'off'. */
static inline void
fill(struct tm_io *io, uint64_t off, size_t len, uint8_t v)
{
    uint8_t *buf = malloc(len > 0 ? len : 1);

    assert_non_null(buf);
    memset(buf, v, len);
    assert_int_equal(tm_io_pwrite_all(io, buf, len, off), 0);
    free(buf);
}

/* Fails unless [off, off + len) reads back as 'want' throughout. */
static inline void
assert_bytes(struct tm_io *io, uint64_t off, size_t len, uint8_t want)
{
    uint8_t *buf = malloc(len > 0 ? len : 1);

    assert_non_null(buf);
    assert_int_equal(tm_io_pread_all(io, buf, len, off), 0);
    for (size_t i = 0; i < len; i++)
        if (buf[i] != want)
            fail_msg("byte %zu at %#llx is %#x, want %#x", i,
                     (unsigned long long)off, buf[i], want);
    free(buf);
}

static inline uint64_t
size_of(struct tm_io *io)
{
    uint64_t size = 1234;

    assert_int_equal(tm_io_size(io, &size), 0);
    return size;
}

/* A failed call's code and the start of its message. */
static inline void
assert_err(int rc, const struct tm_err *err, int want, const char *prefix)
{
    assert_int_equal(rc, want);
    if (strncmp(err->msg, prefix, strlen(prefix)) != 0)
        fail_msg("message '%s' does not start with '%s'", err->msg, prefix);
}

static inline void
assert_msg_has(const struct tm_err *err, const char *part)
{
    if (strstr(err->msg, part) == NULL)
        fail_msg("message '%s' lacks '%s'", err->msg, part);
}

#endif
