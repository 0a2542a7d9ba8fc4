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
 * layers above flush often, so the list stays short.
 *
 * The counter, the action and the fired/failing/dead state live in a
 * fault domain shared by every wrapper made in it, so one power cut can
 * hit several files at once (a differencing chain, a merge writing two).
 * A wrapper made by tm_io_fault_new has a domain of its own.  The domain
 * is reference-counted: its creator and each member hold one reference,
 * so a member's queries keep working after tm_fault_domain_free. */
#include <errno.h>
#include <stdlib.h>

#include "io_int.h"

struct pending {
    unsigned kind;              /* TM_IO_WRITE, _TRUNCATE, _PUNCH, _ALLOCATE */
    uint64_t off;               /* TRUNCATE: the new size */
    uint64_t len;
    uint8_t *data;              /* WRITE: 'len' bytes, owned */
};

struct fault_io;

struct tm_fault_domain {
    struct tm_fault f;
    uint64_t count;             /* operations counted so far, all members */
    bool fired;
    bool failing;               /* ERROR with 'sticky' has fired */
    bool dead;                  /* the power has been cut */
    unsigned refs;              /* the creator's, if not freed, + members */
    unsigned joined;            /* members ever made: each one's ordinal */
    struct fault_io **members;  /* open members, in no particular order */
    size_t n_members;
    size_t cap_members;
};

struct fault_io {
    struct tm_io io;            /* first: the table pointer */
    struct tm_io *inner;        /* borrowed */
    struct tm_fault_domain *d;  /* one reference held */
    unsigned ordinal;           /* 0 for the domain's first member */
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

/* Drops the first 'n' pending operations (they reached 'inner').  With
 * nothing pending, 'ops' may still be NULL: memmove must not see it. */
static void
pending_shift(struct fault_io *fi, size_t n)
{
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        free(fi->ops[i].data);
    if (fi->n_ops > n)
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

/* Writes the part of 'op' in [off, end) to inner. */
static void
land_range(struct fault_io *fi, const struct pending *op, uint64_t off,
           uint64_t end)
{
    if (end > off)
        (void)tm_io_pwrite_all(fi->inner, op->data + (off - op->off),
                               (size_t)(end - off), off);
}

/* Lands the sectors of write 'op' that the xorshift stream 'state'
 * picks (one draw per sector, odd = lands), in one read and one write of
 * the span from the first landed sector to the last: the sectors between
 * them that do not land are written back as they were, so 'inner' ends up
 * the same as with a write per sector, and a copy-on-write view wrapped
 * here is not fed thousands of 512-byte writes.  Out of memory, it falls
 * back to a write per sector. */
static void
land_subset(struct fault_io *fi, const struct pending *op, uint64_t *state)
{
    uint64_t end = op->off + op->len;
    uint64_t first_sec = op->off / IO_SECTOR_BYTES;
    size_t n = (size_t)((end - 1) / IO_SECTOR_BYTES - first_sec + 1);
    uint8_t *pick = malloc(n);
    uint64_t a = 0, b = 0;
    uint8_t *buf;

    for (size_t k = 0; k < n; k++) {
        uint64_t s = (first_sec + k) * IO_SECTOR_BYTES;
        uint64_t next = s + IO_SECTOR_BYTES;
        bool lands = (xorshift64(state) & 1) != 0;

        if (s < op->off)
            s = op->off;
        if (next > end)
            next = end;
        if (pick == NULL) {
            if (lands)
                land_range(fi, op, s, next);
            continue;
        }
        pick[k] = lands;
        if (lands && b == 0)
            a = s;
        if (lands)
            b = next;
    }
    if (pick == NULL || b == 0) {
        free(pick);
        return;
    }
    buf = malloc((size_t)(b - a));
    if (buf == NULL || io_read_or_zero(fi->inner, buf, (size_t)(b - a),
                                       a) < 0) {
        free(buf);
        buf = NULL;
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t s = (first_sec + k) * IO_SECTOR_BYTES;
        uint64_t next = s + IO_SECTOR_BYTES;

        if (s < op->off)
            s = op->off;
        if (next > end)
            next = end;
        if (!pick[k] || s < a || next > b)
            continue;
        if (buf != NULL)
            memcpy(buf + (s - a), op->data + (s - op->off),
                   (size_t)(next - s));
        else
            land_range(fi, op, s, next);
    }
    if (buf != NULL)
        (void)tm_io_pwrite_all(fi->inner, buf, (size_t)(b - a), a);
    free(buf);
    free(pick);
}

/* The xorshift state of member 'ordinal' for a domain seed: the seed
 * itself for the first member (so a private domain behaves as before),
 * a different non-zero stream for each later one. */
static uint64_t
member_seed(uint64_t seed, unsigned ordinal)
{
    uint64_t s = seed ^ (uint64_t)ordinal * 0x9e3779b97f4a7c15ull;

    return s != 0 ? s : seed;
}

/* The power goes out for one member: its pending list is lost, except
 * (with a seed) a random subset of the pending writes' sectors, applied
 * in order as a reordering disk might have.  'torn' is the write in
 * flight at the cut (TEAR), whose first sectors land after the rest.
 * Errors from 'inner' are ignored: the operation that cut the power
 * fails anyway. */
static void
power_cut(struct fault_io *fi, const struct pending *torn)
{
    const struct tm_fault *f = &fi->d->f;

    if (f->seed != 0) {
        uint64_t state = member_seed(f->seed, fi->ordinal);

        for (size_t i = 0; i < fi->n_ops; i++)
            if (fi->ops[i].kind == TM_IO_WRITE && fi->ops[i].len > 0)
                land_subset(fi, &fi->ops[i], &state);
    }
    if (torn != NULL && f->tear_sectors > 0) {
        uint64_t first = torn->off / IO_SECTOR_BYTES;
        uint64_t stop = (first + f->tear_sectors) * IO_SECTOR_BYTES;

        land_range(fi, torn, torn->off,
                   stop < torn->off + torn->len ? stop
                                                : torn->off + torn->len);
    }
    (void)tm_io_flush(fi->inner);
    pending_free(fi);
}

/* The power goes out for the whole domain: every open member loses what
 * no flush covered; 'fi', whose operation fired, may have a torn write. */
static void
power_cut_domain(struct fault_io *fi, const struct pending *torn)
{
    struct tm_fault_domain *d = fi->d;

    for (size_t i = 0; i < d->n_members; i++)
        power_cut(d->members[i], d->members[i] == fi ? torn : NULL);
    d->dead = true;
}

/* Called at the start of every operation.  Returns 0 to go ahead or the
 * code the operation fails with; for a write, 'torn' describes it. */
static int
fault_check(struct fault_io *fi, unsigned kind, const struct pending *torn)
{
    struct tm_fault_domain *d = fi->d;
    bool counted = (d->f.ops & kind) != 0;
    int err = d->f.err != 0 ? -d->f.err : -EIO;

    if (d->dead)
        return -EIO;
    if (!counted)
        return 0;
    d->count++;
    if (d->f.action != TM_FAULT_NONE && d->count == d->f.after &&
        !d->fired) {
        d->fired = true;
        switch (d->f.action) {
        case TM_FAULT_NONE:
            break;
        case TM_FAULT_ERROR:
            if (d->f.sticky)
                d->failing = true;
            return err;
        case TM_FAULT_TEAR:
            power_cut_domain(fi, kind == TM_IO_WRITE ? torn : NULL);
            return -EIO;
        case TM_FAULT_POWER_CUT:
            power_cut_domain(fi, NULL);
            return -EIO;
        }
    }
    if (d->failing)
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
    if (fi->d->dead)
        return -EIO;
    return fault_size_now(fi, size);
}

static void
domain_unref(struct tm_fault_domain *d)
{
    if (--d->refs > 0)
        return;
    free(d->members);
    free(d);
}

/* CRASH: closing without a flush loses the pending operations, exactly
 * as a crash would; 'inner' stays open for the test to inspect.  The
 * wrapper leaves its domain, whose later power cut no longer reaches
 * it. */
static void
fault_close(struct tm_io *io)
{
    struct fault_io *fi = to_fault(io);
    struct tm_fault_domain *d = fi->d;

    for (size_t i = 0; i < d->n_members; i++) {
        if (d->members[i] == fi) {
            d->members[i] = d->members[--d->n_members];
            break;
        }
    }
    domain_unref(d);
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

struct tm_fault_domain *
tm_fault_domain_new(const struct tm_fault *f)
{
    struct tm_fault_domain *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    if (f != NULL)
        d->f = *f;
    d->refs = 1;
    return d;
}

void
tm_fault_domain_free(struct tm_fault_domain *d)
{
    if (d != NULL)
        domain_unref(d);
}

bool
tm_fault_domain_fired(const struct tm_fault_domain *d)
{
    return d != NULL && d->fired;
}

uint64_t
tm_fault_domain_count(const struct tm_fault_domain *d)
{
    return d != NULL ? d->count : 0;
}

struct tm_io *
tm_io_fault_new_in(struct tm_io *inner, struct tm_fault_domain *d)
{
    struct fault_io *fi;

    if (inner == NULL || d == NULL)
        return NULL;
    if (d->n_members == d->cap_members) {
        size_t cap = d->cap_members == 0 ? 4 : d->cap_members * 2;
        struct fault_io **m = realloc(d->members, cap * sizeof(*m));

        if (m == NULL)
            return NULL;
        d->members = m;
        d->cap_members = cap;
    }
    fi = calloc(1, sizeof(*fi));
    if (fi == NULL)
        return NULL;
    fi->io.ops = &fault_ops;
    fi->inner = inner;
    fi->d = d;
    fi->ordinal = d->joined++;
    d->refs++;
    d->members[d->n_members++] = fi;
    return &fi->io;
}

struct tm_io *
tm_io_fault_new(struct tm_io *inner, const struct tm_fault *f)
{
    struct tm_fault_domain *d;
    struct tm_io *io;

    if (inner == NULL)
        return NULL;
    d = tm_fault_domain_new(f);
    if (d == NULL)
        return NULL;
    io = tm_io_fault_new_in(inner, d);
    tm_fault_domain_free(d);            /* the wrapper holds the last ref */
    return io;
}

bool
tm_io_fault_fired(struct tm_io *io)
{
    if (io == NULL || io->ops != &fault_ops)
        return false;
    return to_fault(io)->d->fired;
}

uint64_t
tm_io_fault_count(struct tm_io *io)
{
    if (io == NULL || io->ops != &fault_ops)
        return 0;
    return to_fault(io)->d->count;
}
