/* SPDX-License-Identifier: MIT */
/* borrow.c - a view that forwards every operation to a borrowed file and
 * leaves it open on close.  It lets a caller hand a file to a layer that
 * takes ownership of what it is given (tm_vhdx_open) and keep using the
 * file afterwards: a fault wrapper asked whether its fault fired, a
 * memory file reopened after a simulated crash. */
#include <stdlib.h>

#include "io_int.h"

struct borrow_io {
    struct tm_io io;            /* first: the table pointer */
    struct tm_io *inner;
};

static struct tm_io *
inner_of(struct tm_io *io)
{
    return ((struct borrow_io *)io)->inner;
}

static int64_t
borrow_pread(struct tm_io *io, void *buf, size_t len, uint64_t off)
{
    struct tm_io *in = inner_of(io);

    return in->ops->pread(in, buf, len, off);
}

static int
borrow_pwrite(struct tm_io *io, const void *buf, size_t len, uint64_t off)
{
    struct tm_io *in = inner_of(io);

    return in->ops->pwrite(in, buf, len, off);
}

static int
borrow_flush(struct tm_io *io)
{
    return tm_io_flush(inner_of(io));
}

static int
borrow_truncate(struct tm_io *io, uint64_t size)
{
    return tm_io_truncate(inner_of(io), size);
}

static int
borrow_allocate(struct tm_io *io, uint64_t off, uint64_t len)
{
    return tm_io_allocate(inner_of(io), off, len);
}

static int
borrow_punch(struct tm_io *io, uint64_t off, uint64_t len)
{
    return tm_io_punch(inner_of(io), off, len);
}

static int
borrow_size(struct tm_io *io, uint64_t *size)
{
    return tm_io_size(inner_of(io), size);
}

static int
borrow_start_writeback(struct tm_io *io)
{
    return tm_io_start_writeback(inner_of(io));
}

static void
borrow_close(struct tm_io *io)
{
    free(io);
}

static const struct tm_io_ops borrow_ops = {
    .version = TM_IO_OPS_VERSION,
    .name = "borrow",
    .pread = borrow_pread,
    .pwrite = borrow_pwrite,
    .flush = borrow_flush,
    .truncate = borrow_truncate,
    .allocate = borrow_allocate,
    .punch = borrow_punch,
    .size = borrow_size,
    .close = borrow_close,
    .start_writeback = borrow_start_writeback,
};

struct tm_io *
tm_io_borrow_new(struct tm_io *inner)
{
    struct borrow_io *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->io.ops = &borrow_ops;
    b->inner = inner;
    return &b->io;
}
