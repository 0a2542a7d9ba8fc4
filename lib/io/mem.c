/* SPDX-License-Identifier: MIT */
/* mem.c - a sparse in-memory file, for tests and for the fault backend's
 * "disk".  Bytes live in 64 KiB pages reached through a two-level table
 * (a growable top array of leaves, each leaf 4096 page pointers = 256 MiB),
 * so a file of several TiB costs memory only for the pages written.  A
 * missing page reads as zeros.
 *
 * Invariant: no byte at or past 'size' is non-zero; pages wholly past the
 * end are freed.  So growing the file (write past the end, truncate up,
 * allocate) never needs to clear anything. */
#include <errno.h>
#include <stdlib.h>

#include "io_int.h"

#define MEM_PAGE_SHIFT 16
#define MEM_PAGE_BYTES ((uint64_t)1 << MEM_PAGE_SHIFT)
#define MEM_LEAF_SHIFT 12       /* pages per leaf, log2 */
#define MEM_LEAF_PAGES ((uint64_t)1 << MEM_LEAF_SHIFT)
/* 256 TiB: bounds the top array at 2^20 pointers (8 MiB). */
#define MEM_MAX_BYTES ((uint64_t)1 << 48)

struct mem_io {
    struct tm_io io;            /* first: the table pointer */
    uint8_t ***top;             /* top[leaf][page] -> MEM_PAGE_BYTES */
    uint64_t top_len;
    uint64_t size;
};

static struct mem_io *
to_mem(struct tm_io *io)
{
    return (struct mem_io *)io;
}

/* The page with index 'pg', or NULL when it was never written. */
static uint8_t *
page_get(const struct mem_io *m, uint64_t pg)
{
    uint64_t leaf = pg >> MEM_LEAF_SHIFT;

    if (leaf >= m->top_len || m->top[leaf] == NULL)
        return NULL;
    return m->top[leaf][pg & (MEM_LEAF_PAGES - 1)];
}

/* The page with index 'pg', allocated (zeroed) when missing; NULL when
 * out of memory. */
static uint8_t *
page_make(struct mem_io *m, uint64_t pg)
{
    uint64_t leaf = pg >> MEM_LEAF_SHIFT;
    uint8_t ***slot;
    uint8_t **pages;

    if (leaf >= m->top_len) {
        uint64_t n = m->top_len == 0 ? 16 : m->top_len;
        uint8_t ***top;

        while (n <= leaf)
            n *= 2;
        top = realloc(m->top, n * sizeof(*top));
        if (top == NULL)
            return NULL;
        memset(top + m->top_len, 0, (n - m->top_len) * sizeof(*top));
        m->top = top;
        m->top_len = n;
    }
    slot = &m->top[leaf];
    if (*slot == NULL) {
        *slot = calloc(MEM_LEAF_PAGES, sizeof(**slot));
        if (*slot == NULL)
            return NULL;
    }
    pages = *slot;
    if (pages[pg & (MEM_LEAF_PAGES - 1)] == NULL)
        pages[pg & (MEM_LEAF_PAGES - 1)] = calloc(1, MEM_PAGE_BYTES);
    return pages[pg & (MEM_LEAF_PAGES - 1)];
}

/* Deallocates [off, end), zeroing partial pages; skips absent leaves
 * whole, so a huge range over a sparse file is cheap.  A leaf left empty
 * by a range covering it entirely is freed too. */
static void
mem_clear(struct mem_io *m, uint64_t off, uint64_t end)
{
    while (off < end) {
        uint64_t pg = off >> MEM_PAGE_SHIFT;
        uint64_t leaf = pg >> MEM_LEAF_SHIFT;
        uint64_t leaf_start = leaf << (MEM_LEAF_SHIFT + MEM_PAGE_SHIFT);
        uint64_t leaf_end = leaf_start + (MEM_LEAF_PAGES << MEM_PAGE_SHIFT);
        uint64_t pg_start = pg << MEM_PAGE_SHIFT;
        uint64_t pg_end = pg_start + MEM_PAGE_BYTES;
        uint8_t **pages;

        if (leaf >= m->top_len)
            return;
        pages = m->top[leaf];
        if (pages == NULL) {
            off = leaf_end;
            continue;
        }
        if (off == leaf_start && end >= leaf_end) {
            for (uint64_t i = 0; i < MEM_LEAF_PAGES; i++)
                free(pages[i]);
            free(pages);
            m->top[leaf] = NULL;
            off = leaf_end;
            continue;
        }
        uint8_t **slot = &pages[pg & (MEM_LEAF_PAGES - 1)];

        if (*slot != NULL) {
            if (off == pg_start && end >= pg_end) {
                free(*slot);
                *slot = NULL;
            } else {
                uint64_t stop = end < pg_end ? end : pg_end;

                memset(*slot + (off - pg_start), 0, (size_t)(stop - off));
            }
        }
        off = pg_end;
    }
}

static int64_t
mem_pread(struct tm_io *io, void *buf, size_t len, uint64_t off)
{
    struct mem_io *m = to_mem(io);
    uint8_t *dst = buf;
    uint64_t n;

    if (off >= m->size)
        return 0;
    n = m->size - off < len ? m->size - off : len;
    for (uint64_t done = 0; done < n;) {
        uint64_t pos = off + done;
        uint64_t in_pg = pos & (MEM_PAGE_BYTES - 1);
        uint64_t chunk = MEM_PAGE_BYTES - in_pg;
        const uint8_t *page = page_get(m, pos >> MEM_PAGE_SHIFT);

        if (chunk > n - done)
            chunk = n - done;
        if (page == NULL)
            memset(dst + done, 0, (size_t)chunk);
        else
            memcpy(dst + done, page + in_pg, (size_t)chunk);
        done += chunk;
    }
    return (int64_t)n;
}

/* On running out of memory part of the write may have landed, as on a
 * real disk; the size covers what did. */
static int
mem_pwrite(struct tm_io *io, const void *buf, size_t len, uint64_t off)
{
    struct mem_io *m = to_mem(io);
    const uint8_t *src = buf;

    if (len == 0)
        return 0;
    if (off >= MEM_MAX_BYTES || len > MEM_MAX_BYTES - off)
        return -EFBIG;
    for (uint64_t done = 0; done < len;) {
        uint64_t pos = off + done;
        uint64_t in_pg = pos & (MEM_PAGE_BYTES - 1);
        uint64_t chunk = MEM_PAGE_BYTES - in_pg;
        uint8_t *page = page_make(m, pos >> MEM_PAGE_SHIFT);

        if (page == NULL)
            return -ENOMEM;
        if (chunk > len - done)
            chunk = len - done;
        memcpy(page + in_pg, src + done, (size_t)chunk);
        done += chunk;
        if (pos + chunk > m->size)
            m->size = pos + chunk;
    }
    return 0;
}

static int
mem_flush(struct tm_io *io)
{
    return 0;
}

static int
mem_truncate(struct tm_io *io, uint64_t size)
{
    struct mem_io *m = to_mem(io);

    if (size > MEM_MAX_BYTES)
        return -EFBIG;
    if (size < m->size)
        mem_clear(m, size, m->size);
    m->size = size;
    return 0;
}

/* Memory is not reserved ahead: this backend has no ENOSPC to avoid. */
static int
mem_allocate(struct tm_io *io, uint64_t off, uint64_t len)
{
    struct mem_io *m = to_mem(io);

    if (off > MEM_MAX_BYTES || len > MEM_MAX_BYTES - off)
        return -EFBIG;
    if (len > 0 && off + len > m->size)
        m->size = off + len;
    return 0;
}

static int
mem_punch(struct tm_io *io, uint64_t off, uint64_t len)
{
    struct mem_io *m = to_mem(io);
    uint64_t end;

    if (!io_range_ok(off, len))
        return -EINVAL;
    if (off >= m->size)
        return 0;
    end = off + len < m->size ? off + len : m->size;
    mem_clear(m, off, end);
    return 0;
}

static int
mem_size(struct tm_io *io, uint64_t *size)
{
    *size = to_mem(io)->size;
    return 0;
}

static void
mem_close(struct tm_io *io)
{
    struct mem_io *m = to_mem(io);

    for (uint64_t leaf = 0; leaf < m->top_len; leaf++) {
        if (m->top[leaf] == NULL)
            continue;
        for (uint64_t i = 0; i < MEM_LEAF_PAGES; i++)
            free(m->top[leaf][i]);
        free(m->top[leaf]);
    }
    free(m->top);
    free(m);
}

static const struct tm_io_ops mem_ops = {
    .version = TM_IO_OPS_VERSION,
    .name = "mem",
    .pread = mem_pread,
    .pwrite = mem_pwrite,
    .flush = mem_flush,
    .truncate = mem_truncate,
    .allocate = mem_allocate,
    .punch = mem_punch,
    .size = mem_size,
    .close = mem_close,
};

struct tm_io *
tm_io_mem_new(void)
{
    struct mem_io *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->io.ops = &mem_ops;
    return &m->io;
}
