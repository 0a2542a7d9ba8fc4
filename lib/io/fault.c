/* SPDX-License-Identifier: MIT */
/* fault.c - the fault-injecting wrapper: a volatile write cache in front
 * of a borrowed "disk" (io.h, struct tm_fault; README.md).
 *
 * Writes, truncates, punches and allocates are kept as an ordered list of
 * pending operations and reach 'inner' only at a flush, so 'inner' always
 * holds exactly the durable state.  Reads take inner's bytes and replay
 * the pending operations over them in order.  The list is kept rather
 * than a merged map because a power cut with a seed lets an older version
 * of a sector land while a newer one is lost, as a reordering disk does.
 *
 * Replaying the whole list on each read costs O(pending operations); the
 * layers above flush often, so the list stays short. */
#include <errno.h>
#include <stdlib.h>

#include "io_int.h"

struct pending {
    unsigned kind;              /* TM_IO_WRITE, _TRUNCATE, _PUNCH, _ALLOCATE */
    uint64_t off;               /* TRUNCATE: the new size */
    uint64_t len;
    uint8_t *data;              /* WRITE: 'len' bytes, owned */
};

struct fault_io {
    struct tm_io io;            /* first: the table pointer */
    struct tm_io *inner;        /* borrowed */
    struct tm_fault f;
    uint64_t count;             /* operations counted so far */
    bool fired;
    bool failing;               /* ERROR with 'sticky' has fired */
    bool dead;                  /* the power has been cut */
    struct pending *ops;
    size_t n_ops;
    size_t cap_ops;
};

static const struct tm_io_ops fault_ops;

static struct fault_io *
to_fault(struct tm_io *io)
{
    return (struct fault_io *)io;
}

static void
pending_free(struct fault_io *fi)
{
    for (size_t i = 0; i < fi->n_ops; i++)
        free(fi->ops[i].data);
    fi->n_ops = 0;
}

/* Drops the first 'n' pending operations (they reached 'inner'). */
static void
pending_shift(struct fault_io *fi, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(fi->ops[i].data);
    memmove(fi->ops, fi->ops + n, (fi->n_ops - n) * sizeof(*fi->ops));
    fi->n_ops -= n;
}

static int
pending_add(struct fault_io *fi, unsigned kind, uint64_t off, uint64_t len,
            const void *data)
{
    struct pending *op;

    if (fi->n_ops == fi->cap_ops) {
        size_t cap = fi->cap_ops == 0 ? 16 : fi->cap_ops * 2;
        struct pending *ops = realloc(fi->ops, cap * sizeof(*ops));

        if (ops == NULL)
            return -ENOMEM;
        fi->ops = ops;
        fi->cap_ops = cap;
    }
    op = &fi->ops[fi->n_ops];
    op->kind = kind;
    op->off = off;
    op->len = len;
    op->data = NULL;
    if (data != NULL) {
        op->data = malloc((size_t)len);
        if (op->data == NULL)
            return -ENOMEM;
        memcpy(op->data, data, (size_t)len);
    }
    fi->n_ops++;
    return 0;
}

/* xorshift64: deterministic for a seed, so a failing seed reproduces. */
static uint64_t
xorshift64(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* Writes the part of 'op' in [off, end) to inner, sector by sector. */
static void
land_range(struct fault_io *fi, const struct pending *op, uint64_t off,
           uint64_t end)
{
    if (end > off)
        (void)tm_io_pwrite_all(fi->inner, op->data + (off - op->off),
                               (size_t)(end - off), off);
}

/* The power goes out: the pending list is lost, except (with a seed) a
 * random subset of the pending writes' sectors, applied in order as a
 * reordering disk might have.  'torn' is the write in flight at the cut
 * (TEAR), whose first sectors land after the rest.  Errors from 'inner'
 * are ignored: the operation that cut the power fails anyway. */
static void
power_cut(struct fault_io *fi, const struct pending *torn)
{
    if (fi->f.seed != 0) {
        uint64_t state = fi->f.seed;

        for (size_t i = 0; i < fi->n_ops; i++) {
            const struct pending *op = &fi->ops[i];
            uint64_t end = op->off + op->len;

            if (op->kind != TM_IO_WRITE)
                continue;
            for (uint64_t s = op->off; s < end;) {
                uint64_t next = (s / IO_SECTOR_BYTES + 1) * IO_SECTOR_BYTES;

                if (next > end)
                    next = end;
                if (xorshift64(&state) & 1)
                    land_range(fi, op, s, next);
                s = next;
            }
        }
    }
    if (torn != NULL && fi->f.tear_sectors > 0) {
        uint64_t first = torn->off / IO_SECTOR_BYTES;
        uint64_t stop = (first + fi->f.tear_sectors) * IO_SECTOR_BYTES;

        land_range(fi, torn, torn->off,
                   stop < torn->off + torn->len ? stop
                                                : torn->off + torn->len);
    }
    (void)tm_io_flush(fi->inner);
    pending_free(fi);
    fi->dead = true;
}

/* Called at the start of every operation.  Returns 0 to go ahead or the
 * code the operation fails with; for a write, 'torn' describes it. */
static int
fault_check(struct fault_io *fi, unsigned kind, const struct pending *torn)
{
    bool counted = (fi->f.ops & kind) != 0;
    int err = fi->f.err != 0 ? -fi->f.err : -EIO;

    if (fi->dead)
        return -EIO;
    if (!counted)
        return 0;
    fi->count++;
    if (fi->f.action != TM_FAULT_NONE && fi->count == fi->f.after &&
        !fi->fired) {
        fi->fired = true;
        switch (fi->f.action) {
        case TM_FAULT_NONE:
            break;
        case TM_FAULT_ERROR:
            if (fi->f.sticky)
                fi->failing = true;
            return err;
        case TM_FAULT_TEAR:
            power_cut(fi, kind == TM_IO_WRITE ? torn : NULL);
            return -EIO;
        case TM_FAULT_POWER_CUT:
            power_cut(fi, NULL);
            return -EIO;
        }
    }
    if (fi->failing)
        return err;
    return 0;
}

/* Replays pending operations over buf, which holds inner's bytes of
 * [off, off + len) (zeros past inner's end); returns the final size.
 * Bytes at or past the current size are zero at every step, so an
 * extension after a truncate reads zeros as it must. */
static uint64_t
replay(const struct fault_io *fi, uint8_t *buf, size_t len, uint64_t off,
       uint64_t size)
{
    uint64_t end = off + len;

    for (size_t i = 0; i < fi->n_ops; i++) {
        const struct pending *op = &fi->ops[i];
        uint64_t op_end = op->off + op->len;
        uint64_t a, b;

        switch (op->kind) {
        case TM_IO_WRITE:
        case TM_IO_PUNCH:
            a = op->off > off ? op->off : off;
            b = op_end < end ? op_end : end;
            if (a < b && buf != NULL) {
                if (op->kind == TM_IO_WRITE)
                    memcpy(buf + (a - off), op->data + (a - op->off),
                           (size_t)(b - a));
                else
                    memset(buf + (a - off), 0, (size_t)(b - a));
            }
            if (op->kind == TM_IO_WRITE && op_end > size)
                size = op_end;
            break;
        case TM_IO_ALLOCATE:
            if (op_end > size)
                size = op_end;
            break;
        case TM_IO_TRUNCATE:
            size = op->off;
            if (buf != NULL && size < end) {
                a = size > off ? size : off;
                memset(buf + (a - off), 0, (size_t)(end - a));
            }
            break;
        }
    }
    return size;
}

static int
fault_size_now(struct fault_io *fi, uint64_t *size)
{
    uint64_t inner_size;
    int rc = tm_io_size(fi->inner, &inner_size);

    if (rc < 0)
        return rc;
    *size = replay(fi, NULL, 0, 0, inner_size);
    return 0;
}

static int64_t
fault_pread(struct tm_io *io, void *buf, size_t len, uint64_t off)
{
    struct fault_io *fi = to_fault(io);
    uint64_t inner_size, size;
    int rc = fault_check(fi, TM_IO_READ, NULL);

    if (rc < 0)
        return rc;
    if (!io_range_ok(off, len))
        return -EINVAL;
    rc = tm_io_size(fi->inner, &inner_size);
    if (rc < 0)
        return rc;
    rc = io_read_or_zero(fi->inner, buf, len, off);
    if (rc < 0)
        return rc;
    size = replay(fi, buf, len, off, inner_size);
    if (off >= size)
        return 0;
    return (int64_t)(size - off < len ? size - off : len);
}

static int
fault_pwrite(struct tm_io *io, const void *buf, size_t len, uint64_t off)
{
    struct fault_io *fi = to_fault(io);
    struct pending torn = {
        .kind = TM_IO_WRITE, .off = off, .len = len, .data = (void *)buf,
    };
    int rc;

    if (!io_range_ok(off, len))
        return -EFBIG;
    rc = fault_check(fi, TM_IO_WRITE, &torn);
    if (rc < 0)
        return rc;
    if (len == 0)
        return 0;
    return pending_add(fi, TM_IO_WRITE, off, len, buf);
}

/* Applies the pending list to inner in order, then flushes inner.  On an
 * error from inner the operations already applied leave the list and the
 * rest stay pending. */
static int
fault_flush(struct tm_io *io)
{
    struct fault_io *fi = to_fault(io);
    size_t i;
    int rc = fault_check(fi, TM_IO_FLUSH, NULL);

    if (rc < 0)
        return rc;
    for (i = 0; i < fi->n_ops; i++) {
        const struct pending *op = &fi->ops[i];

        switch (op->kind) {
        case TM_IO_WRITE:
            rc = tm_io_pwrite_all(fi->inner, op->data, (size_t)op->len,
                                  op->off);
            break;
        case TM_IO_TRUNCATE:
            rc = tm_io_truncate(fi->inner, op->off);
            break;
        case TM_IO_PUNCH:
            rc = tm_io_punch(fi->inner, op->off, op->len);
            break;
        case TM_IO_ALLOCATE:
            rc = tm_io_allocate(fi->inner, op->off, op->len);
            break;
        }
        if (rc < 0)
            break;
    }
    pending_shift(fi, i);
    if (rc < 0)
        return rc;
    return tm_io_flush(fi->inner);
}

static int
fault_truncate(struct tm_io *io, uint64_t size)
{
    struct fault_io *fi = to_fault(io);
    int rc = fault_check(fi, TM_IO_TRUNCATE, NULL);

    if (rc < 0)
        return rc;
    if (size > IO_MAX_OFF)
        return -EFBIG;
    return pending_add(fi, TM_IO_TRUNCATE, size, 0, NULL);
}

static int
fault_allocate(struct tm_io *io, uint64_t off, uint64_t len)
{
    struct fault_io *fi = to_fault(io);
    int rc = fault_check(fi, TM_IO_ALLOCATE, NULL);

    if (rc < 0)
        return rc;
    if (!io_range_ok(off, len))
        return -EFBIG;
    if (len == 0)
        return 0;
    return pending_add(fi, TM_IO_ALLOCATE, off, len, NULL);
}

static int
fault_punch(struct tm_io *io, uint64_t off, uint64_t len)
{
    struct fault_io *fi = to_fault(io);
    int rc = fault_check(fi, TM_IO_PUNCH, NULL);

    if (rc < 0)
        return rc;
    if (!io_range_ok(off, len))
        return -EINVAL;
    if (len == 0)
        return 0;
    return pending_add(fi, TM_IO_PUNCH, off, len, NULL);
}

/* Not an operation kind: never counted, but dead after a power cut. */
static int
fault_size(struct tm_io *io, uint64_t *size)
{
    struct fault_io *fi = to_fault(io);

    *size = 0;
    if (fi->dead)
        return -EIO;
    return fault_size_now(fi, size);
}

/* CRASH: closing without a flush loses the pending operations, exactly
 * as a crash would; 'inner' stays open for the test to inspect. */
static void
fault_close(struct tm_io *io)
{
    struct fault_io *fi = to_fault(io);

    pending_free(fi);
    free(fi->ops);
    free(fi);
}

static const struct tm_io_ops fault_ops = {
    .version = TM_IO_OPS_VERSION,
    .name = "fault",
    .pread = fault_pread,
    .pwrite = fault_pwrite,
    .flush = fault_flush,
    .truncate = fault_truncate,
    .allocate = fault_allocate,
    .punch = fault_punch,
    .size = fault_size,
    .close = fault_close,
};

struct tm_io *
tm_io_fault_new(struct tm_io *inner, const struct tm_fault *f)
{
    struct fault_io *fi;

    if (inner == NULL)
        return NULL;
    fi = calloc(1, sizeof(*fi));
    if (fi == NULL)
        return NULL;
    fi->io.ops = &fault_ops;
    fi->inner = inner;
    if (f != NULL)
        fi->f = *f;
    return &fi->io;
}

bool
tm_io_fault_fired(struct tm_io *io)
{
    if (io == NULL || io->ops != &fault_ops)
        return false;
    return to_fault(io)->fired;
}

uint64_t
tm_io_fault_count(struct tm_io *io)
{
    if (io == NULL || io->ops != &fault_ops)
        return 0;
    return to_fault(io)->count;
}
