/* SPDX-License-Identifier: MIT */
/* overlay.c - a copy-on-write view over a borrowed file: writes and size
 * changes stay in memory, reads merge them over the file's bytes, and the
 * file is never written.  Read-only VHDX opens replay a dirty log into
 * one.
 *
 * The view is a sorted array of non-overlapping extents, each holding its
 * bytes or standing for zeros (a punch), found by binary search; a read
 * costs O(log n + extents touched + bytes).  Two more facts complete it:
 * the view's size, and 'inner_limit', the lowest size it was ever
 * truncated to: inner's bytes at or past it are hidden (read as zeros),
 * since a truncate then extend must not resurrect them.
 *
 * The fault backend does not use this store: it needs its pending writes
 * in order, not merged (fault.c). */
#include <errno.h>
#include <stdlib.h>

#include "io_int.h"

/* Contiguous writes are merged into one extent up to this size, so a
 * sequential writer does not build one extent per call. */
#define OVL_MERGE_MAX_BYTES ((uint64_t)1 << 20)

struct extent {
    uint64_t off;
    uint64_t len;
    uint8_t *data;              /* 'len' bytes, owned; NULL = zeros */
};

struct overlay_io {
    struct tm_io io;            /* first: the table pointer */
    struct tm_io *inner;        /* borrowed, never written */
    struct extent *ext;         /* sorted by off, non-overlapping */
    size_t n;
    size_t cap;
    bool have_size;
    uint64_t size;
    uint64_t inner_limit;
};

static struct overlay_io *
to_overlay(struct tm_io *io)
{
    return (struct overlay_io *)io;
}

static uint64_t
ext_end(const struct extent *e)
{
    return e->off + e->len;
}

/* Index of the first extent ending after 'off' (n when none). */
static size_t
find_first(const struct overlay_io *o, uint64_t off)
{
    size_t lo = 0;
    size_t hi = o->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (ext_end(&o->ext[mid]) <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int
load_size(struct overlay_io *o)
{
    int rc;

    if (o->have_size)
        return 0;
    rc = tm_io_size(o->inner, &o->size);
    if (rc < 0)
        return rc;
    o->have_size = true;
    return 0;
}

static int
reserve(struct overlay_io *o, size_t more)
{
    size_t cap = o->cap == 0 ? 16 : o->cap;
    struct extent *ext;

    if (o->n + more <= o->cap)
        return 0;
    while (cap < o->n + more)
        cap *= 2;
    ext = realloc(o->ext, cap * sizeof(*ext));
    if (ext == NULL)
        return -ENOMEM;
    o->ext = ext;
    o->cap = cap;
    return 0;
}

/* Fills [a, b) of the view from inner, hiding what lies past
 * 'inner_limit'. */
static int
fill_inner(struct overlay_io *o, uint8_t *dst, uint64_t a, uint64_t b)
{
    uint64_t visible = b < o->inner_limit ? b : o->inner_limit;
    int rc;

    if (visible > a) {
        rc = io_read_or_zero(o->inner, dst, (size_t)(visible - a), a);
        if (rc < 0)
            return rc;
    } else {
        visible = a;
    }
    memset(dst + (visible - a), 0, (size_t)(b - visible));
    return 0;
}

static int64_t
overlay_pread(struct tm_io *io, void *buf, size_t len, uint64_t off)
{
    struct overlay_io *o = to_overlay(io);
    uint8_t *dst = buf;
    uint64_t end, cur;
    int rc = load_size(o);

    if (rc < 0)
        return rc;
    if (off >= o->size)
        return 0;
    end = o->size - off < len ? o->size : off + len;
    cur = off;
    for (size_t i = find_first(o, off); i < o->n && o->ext[i].off < end;
         i++) {
        const struct extent *e = &o->ext[i];
        uint64_t a = e->off > cur ? e->off : cur;
        uint64_t b = ext_end(e) < end ? ext_end(e) : end;

        if (a > cur) {
            rc = fill_inner(o, dst + (cur - off), cur, a);
            if (rc < 0)
                return rc;
        }
        if (e->data != NULL)
            memcpy(dst + (a - off), e->data + (a - e->off), (size_t)(b - a));
        else
            memset(dst + (a - off), 0, (size_t)(b - a));
        cur = b;
    }
    if (cur < end) {
        rc = fill_inner(o, dst + (cur - off), cur, end);
        if (rc < 0)
            return rc;
    }
    return (int64_t)(end - off);
}

/* Drops the first 'cut' bytes of an extent. */
static void
trim_head(struct extent *e, uint64_t cut)
{
    if (e->data != NULL)
        memmove(e->data, e->data + cut, (size_t)(e->len - cut));
    e->off += cut;
    e->len -= cut;
}

/* Makes [off, off + len) read as 'data' (copied; NULL = zeros).  Nothing
 * changes when it fails. */
static int
put(struct overlay_io *o, uint64_t off, uint64_t len, const void *data)
{
    uint64_t end = off + len;
    uint8_t *copy = NULL;
    uint8_t *tail_copy = NULL;
    size_t i, j;
    struct extent *left;

    if (reserve(o, 2) < 0)
        return -ENOMEM;
    i = find_first(o, off);
    left = i > 0 ? &o->ext[i - 1] : NULL;

    /* Append to the extent just before, when contiguous and small. */
    if (data != NULL && left != NULL && left->data != NULL &&
        ext_end(left) == off && left->len + len <= OVL_MERGE_MAX_BYTES &&
        (i == o->n || o->ext[i].off >= end)) {
        uint8_t *grown = realloc(left->data, (size_t)(left->len + len));

        if (grown == NULL)
            return -ENOMEM;
        memcpy(grown + left->len, data, (size_t)len);
        left->data = grown;
        left->len += len;
        return 0;
    }
    if (data != NULL) {
        copy = malloc((size_t)len);
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, data, (size_t)len);
    }
    /* One extent strictly containing the range splits in three. */
    if (i < o->n && o->ext[i].off < off && ext_end(&o->ext[i]) > end) {
        struct extent *e = &o->ext[i];
        uint64_t tail_len = ext_end(e) - end;

        if (e->data != NULL) {
            tail_copy = malloc((size_t)tail_len);
            if (tail_copy == NULL) {
                free(copy);
                return -ENOMEM;
            }
            memcpy(tail_copy, e->data + (end - e->off), (size_t)tail_len);
        }
        e->len = off - e->off;
        memmove(&o->ext[i + 3], &o->ext[i + 1],
                (o->n - i - 1) * sizeof(*o->ext));
        o->ext[i + 1] = (struct extent){ off, len, copy };
        o->ext[i + 2] = (struct extent){ end, tail_len, tail_copy };
        o->n += 2;
        return 0;
    }
    if (i < o->n && o->ext[i].off < off) {
        o->ext[i].len = off - o->ext[i].off;        /* keep its head */
        i++;
    }
    for (j = i; j < o->n && ext_end(&o->ext[j]) <= end; j++)
        free(o->ext[j].data);
    if (j < o->n && o->ext[j].off < end)
        trim_head(&o->ext[j], end - o->ext[j].off); /* keep its tail */
    /* Replace ext[i, j) by the new extent. */
    memmove(&o->ext[i + 1], &o->ext[j], (o->n - j) * sizeof(*o->ext));
    o->n = o->n - (j - i) + 1;
    o->ext[i] = (struct extent){ off, len, copy };
    return 0;
}

static int
overlay_pwrite(struct tm_io *io, const void *buf, size_t len, uint64_t off)
{
    struct overlay_io *o = to_overlay(io);
    int rc;

    if (!io_range_ok(off, len))
        return -EFBIG;
    if (len == 0)
        return 0;
    rc = load_size(o);
    if (rc < 0)
        return rc;
    rc = put(o, off, len, buf);
    if (rc < 0)
        return rc;
    if (off + len > o->size)
        o->size = off + len;
    return 0;
}

static int
overlay_flush(struct tm_io *io)
{
    return 0;
}

static int
overlay_truncate(struct tm_io *io, uint64_t size)
{
    struct overlay_io *o = to_overlay(io);
    size_t i;
    int rc;

    if (size > IO_MAX_OFF)
        return -EFBIG;
    rc = load_size(o);
    if (rc < 0)
        return rc;
    if (size < o->size) {
        i = find_first(o, size);
        if (i < o->n && o->ext[i].off < size) {
            o->ext[i].len = size - o->ext[i].off;
            i++;
        }
        for (size_t j = i; j < o->n; j++)
            free(o->ext[j].data);
        o->n = i;
        if (size < o->inner_limit)
            o->inner_limit = size;
    }
    o->size = size;
    return 0;
}

static int
overlay_allocate(struct tm_io *io, uint64_t off, uint64_t len)
{
    struct overlay_io *o = to_overlay(io);
    int rc;

    if (!io_range_ok(off, len))
        return -EFBIG;
    rc = load_size(o);
    if (rc < 0)
        return rc;
    if (len > 0 && off + len > o->size)
        o->size = off + len;
    return 0;
}

static int
overlay_punch(struct tm_io *io, uint64_t off, uint64_t len)
{
    struct overlay_io *o = to_overlay(io);
    int rc;

    if (!io_range_ok(off, len))
        return -EINVAL;
    rc = load_size(o);
    if (rc < 0)
        return rc;
    if (off >= o->size || len == 0)
        return 0;
    if (len > o->size - off)
        len = o->size - off;
    return put(o, off, len, NULL);
}

static int
overlay_size(struct tm_io *io, uint64_t *size)
{
    struct overlay_io *o = to_overlay(io);
    int rc = load_size(o);

    *size = rc < 0 ? 0 : o->size;
    return rc;
}

static void
overlay_close(struct tm_io *io)
{
    struct overlay_io *o = to_overlay(io);

    for (size_t i = 0; i < o->n; i++)
        free(o->ext[i].data);
    free(o->ext);
    free(o);
}

static const struct tm_io_ops overlay_ops = {
    .version = TM_IO_OPS_VERSION,
    .name = "overlay",
    .pread = overlay_pread,
    .pwrite = overlay_pwrite,
    .flush = overlay_flush,
    .truncate = overlay_truncate,
    .allocate = overlay_allocate,
    .punch = overlay_punch,
    .size = overlay_size,
    .close = overlay_close,
};

struct tm_io *
tm_io_overlay_new(struct tm_io *inner)
{
    struct overlay_io *o;

    if (inner == NULL)
        return NULL;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->io.ops = &overlay_ops;
    o->inner = inner;
    o->inner_limit = UINT64_MAX;
    return &o->io;
}
