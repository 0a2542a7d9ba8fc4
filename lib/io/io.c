/* SPDX-License-Identifier: MIT */
/* io.c - the tm_io_* wrappers over a backend's table, and the helpers the
 * backends share (io_int.h). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "io_int.h"

static const struct tm_io_ops *
ops_of(struct tm_io *io)
{
    assert(io != NULL && io->ops != NULL);
    assert(io->ops->version == TM_IO_OPS_VERSION);
    return io->ops;
}

int64_t
tm_io_pread(struct tm_io *io, void *buf, size_t len, uint64_t off)
{
    if (len > (size_t)INT64_MAX)
        return -EINVAL;
    return ops_of(io)->pread(io, buf, len, off);
}

int
tm_io_pread_all(struct tm_io *io, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;

    while (len > 0) {
        int64_t n = tm_io_pread(io, p, len, off);

        if (n == -EINTR)
            continue;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return TM_E_TRUNCATED;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int
tm_io_pwrite_all(struct tm_io *io, const void *buf, size_t len,
                 uint64_t off)
{
    int rc;

    /* A backend's pwrite writes everything or fails; only EINTR is
     * worth another try. */
    do {
        rc = ops_of(io)->pwrite(io, buf, len, off);
    } while (rc == -EINTR);
    return rc;
}

int
tm_io_flush(struct tm_io *io)
{
    return ops_of(io)->flush(io);
}

int
tm_io_truncate(struct tm_io *io, uint64_t size)
{
    return ops_of(io)->truncate(io, size);
}

int
tm_io_allocate(struct tm_io *io, uint64_t off, uint64_t len)
{
    return ops_of(io)->allocate(io, off, len);
}

int
tm_io_punch(struct tm_io *io, uint64_t off, uint64_t len)
{
    return ops_of(io)->punch(io, off, len);
}

int
tm_io_size(struct tm_io *io, uint64_t *size)
{
    return ops_of(io)->size(io, size);
}

void
tm_io_close(struct tm_io *io)
{
    if (io == NULL)
        return;
    ops_of(io)->close(io);
}

int
tm_io_start_writeback(struct tm_io *io)
{
    if (ops_of(io)->start_writeback == NULL)
        return 0;
    return ops_of(io)->start_writeback(io);
}

int
io_read_or_zero(struct tm_io *io, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;

    while (len > 0) {
        int64_t n = tm_io_pread(io, p, len, off);

        if (n == -EINTR)
            continue;
        if (n < 0)
            return (int)n;
        if (n == 0) {
            memset(p, 0, len);
            return 0;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int
io_write_zeros(struct tm_io *io, uint64_t off, uint64_t len)
{
    enum { CHUNK = 1u << 20 };
    uint8_t *zeros;
    int rc = 0;

    if (len == 0)
        return 0;
    zeros = calloc(1, len < CHUNK ? (size_t)len : CHUNK);
    if (zeros == NULL)
        return -ENOMEM;
    while (len > 0) {
        size_t n = len < CHUNK ? (size_t)len : CHUNK;

        rc = tm_io_pwrite_all(io, zeros, n, off);
        if (rc < 0)
            break;
        off += n;
        len -= n;
    }
    free(zeros);
    return rc;
}
