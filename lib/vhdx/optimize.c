/* SPDX-License-Identifier: MIT */
/* optimize.c - Optimize-VHD for dynamic and differencing disks: blocks
 * that hold only zeros give their space back, then the blocks highest in
 * the file move down into the holes and the file is truncated.
 *
 * CRASH: a block moves by copy, flush, then a BAT update through the log;
 * until that update is durable the old copy is the one referenced and
 * nothing has touched it.  A hole is written only when the durable BAT
 * references nothing there, and space a move frees is never reused in the
 * same pass (blocks are taken highest first, and the space they leave is
 * above every hole still to be filled), so it is reused, if ever, only
 * after the move's entry is durable.  Relocating blocks is not a
 * user-visible change (MS-VHDX 2.2.2): DataWriteGuid stays, and children
 * of this disk stay linked. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define COPY_BYTES (4u << 20)           /* copy buffer */
#define FIRST_PEEK (64u << 10)          /* first read of a zero check */
#define BATCH_MOVES 64                  /* moves per commit */
#define BATCH_BYTES (256ull << 20)      /* bytes copied per commit */

struct extent {
    uint64_t off, len;
    uint64_t idx;                       /* BAT index; UINT64_MAX: fixed */
};

static int
cmp_off(const void *a, const void *b)
{
    uint64_t x = ((const struct extent *)a)->off;
    uint64_t y = ((const struct extent *)b)->off;

    return x < y ? -1 : x > y;
}

static int
cmp_off_desc(const void *a, const void *b)
{
    return cmp_off(b, a);
}

static int
set_entry(struct tm_vhdx *vd, uint64_t idx, uint64_t e)
{
    int rc = vhdx_begin_modify(vd, false);

    if (rc == 0)
        rc = vhdx_bat_set(vd, idx, e);
    if (rc == 0 && vd->ndirty >= vhdx_log_max_updates(&vd->log))
        rc = vhdx_bat_commit(vd);
    return rc;
}

/* Step 1: FULLY_PRESENT blocks whose visible bytes are all zeros become
 * ZERO (which reads zeros in every kind of disk, a child too: exactly
 * what the block read), their space punched after the commit; entries
 * that carry an offset without data (NOT_PRESENT, ZERO, UNMAPPED ...) and
 * slack entries past the last block are cleared, so no stale offset can
 * ever point into space the compaction reuses. */
static int
zero_blocks(struct tm_vhdx *vd, struct tm_vhdx_optimize_stats *st)
{
    const struct vhdx_geometry *g = &vd->g;
    uint64_t bs = vd->p.block_size;
    size_t cap = bs < COPY_BYTES ? (size_t)bs : COPY_BYTES;
    uint8_t *buf = malloc(cap);
    int rc = 0;

    if (buf == NULL)
        return -ENOMEM;
    for (uint64_t i = 0; i < vd->bat_count && rc == 0; i++) {
        uint64_t e = vd->bat[i];
        unsigned s = VHDX_BAT_STATE(e);
        uint64_t b, vis;
        bool zero = true;

        if ((i + 1) % (g->chunk_ratio + 1) == 0) {
            /* A sector-bitmap slot: only a differencing disk's present
             * bitmaps mean anything. */
            if (e != 0 && !(vd->p.has_parent && s == VHDX_SB_PRESENT))
                rc = set_entry(vd, i, 0);
            continue;
        }
        b = i - i / (g->chunk_ratio + 1);
        if (b >= g->payload_blocks) {
            if (e != 0)
                rc = set_entry(vd, i, 0);
            continue;
        }
        if (s == VHDX_PAYLOAD_PARTIALLY_PRESENT)
            continue;
        if (s != VHDX_PAYLOAD_FULLY_PRESENT) {
            unsigned want = s == VHDX_PAYLOAD_UNMAPPED_V095
                            ? VHDX_PAYLOAD_UNMAPPED : s;

            if (e != VHDX_BAT_ENTRY(want, 0))
                rc = set_entry(vd, i, VHDX_BAT_ENTRY(want, 0));
            continue;
        }
        vis = vd->p.virtual_size - b * bs < bs ? vd->p.virtual_size - b * bs
                                               : bs;
        /* A small first read: most blocks with data show it early. */
        for (uint64_t pos = 0, step = FIRST_PEEK; pos < vis && zero;
             pos += step, step = cap) {
            size_t n = vis - pos < step ? (size_t)(vis - pos) : (size_t)step;

            rc = vhdx_read_file(vd, buf, n, VHDX_BAT_OFF(e) + pos);
            if (rc < 0)
                goto out;
            zero = vhdx_buf_is_zero(buf, n);
        }
        if (!zero)
            continue;
        /* The entry first: a punch must never be queued for a block the
         * BAT still references. */
        rc = set_entry(vd, i, VHDX_BAT_ENTRY(VHDX_PAYLOAD_ZERO, 0));
        if (rc == 0)
            rc = vhdx_punch_later(vd, VHDX_BAT_OFF(e));
        if (rc == 0)
            st->blocks_zeroed++;
    }
    if (rc == 0 && (vd->ndirty > 0 || vd->npunch > 0))
        rc = vhdx_bat_commit(vd);
out:
    free(buf);
    return rc;
}

/* What stays where it is: the header section, the log, every region. */
static size_t
fixed_extents(const struct tm_vhdx *vd, struct extent *x)
{
    size_t n = 0;

    x[n++] = (struct extent){ 0, VHDX_HEADER_SECTION_BYTES, UINT64_MAX };
    if (vd->hdr.log_length > 0)
        x[n++] = (struct extent){ vd->hdr.log_offset, vd->hdr.log_length,
                                  UINT64_MAX };
    for (uint32_t i = 0; i < vd->rt->count; i++)
        x[n++] = (struct extent){ vd->rt->e[i].file_off, vd->rt->e[i].len,
                                  UINT64_MAX };
    return n;
}

/* What may move: present payload blocks, and a differencing disk's
 * present sector bitmaps. */
static size_t
movable_extents(const struct tm_vhdx *vd, struct extent *x)
{
    const struct vhdx_geometry *g = &vd->g;
    size_t n = 0;

    for (uint64_t b = 0; b < g->payload_blocks; b++) {
        uint64_t idx = vhdx_bat_index(g, b);
        unsigned s = VHDX_BAT_STATE(vd->bat[idx]);

        if (s == VHDX_PAYLOAD_FULLY_PRESENT ||
            s == VHDX_PAYLOAD_PARTIALLY_PRESENT)
            x[n++] = (struct extent){ VHDX_BAT_OFF(vd->bat[idx]),
                                      vd->p.block_size, idx };
    }
    if (vd->p.has_parent) {
        for (uint64_t k = 0; k < g->bitmap_blocks; k++) {
            uint64_t idx = vhdx_sb_index(g, k);

            if (VHDX_BAT_STATE(vd->bat[idx]) == VHDX_SB_PRESENT)
                x[n++] = (struct extent){ VHDX_BAT_OFF(vd->bat[idx]),
                                          VHDX_MiB, idx };
        }
    }
    return n;
}

struct batch {
    struct extent mv[BATCH_MOVES];      /* off = the new offset */
    size_t n;
    uint64_t bytes;
};

/* Makes the batch's copies durable, then points the BAT at them. */
static int
commit_batch(struct tm_vhdx *vd, struct batch *bt,
             struct tm_vhdx_optimize_stats *st)
{
    int rc;

    if (bt->n == 0)
        return 0;
    rc = tm_io_flush(vd->io);
    if (rc < 0)
        return vhdx_poison(vd, rc, "flush after moving blocks");
    vd->durable_size = vd->file_size;
    for (size_t k = 0; k < bt->n; k++) {
        uint64_t idx = bt->mv[k].idx;

        /* The state bits stay: PARTIALLY_PRESENT stays partial. */
        rc = vhdx_bat_set(vd, idx, VHDX_BAT_ENTRY(VHDX_BAT_STATE(vd->bat[idx]),
                                                  bt->mv[k].off));
        if (rc < 0)
            return rc;
    }
    rc = vhdx_bat_commit(vd);
    if (rc < 0)
        return rc;
    st->blocks_moved += bt->n;
    bt->n = 0;
    bt->bytes = 0;
    return 0;
}

static int
copy_extent(struct tm_vhdx *vd, uint64_t from, uint64_t to, uint64_t len,
            uint8_t *buf)
{
    for (uint64_t pos = 0; pos < len; pos += COPY_BYTES) {
        size_t n = len - pos < COPY_BYTES ? (size_t)(len - pos) : COPY_BYTES;
        int rc = vhdx_read_file(vd, buf, n, from + pos);

        if (rc < 0)
            return rc;
        rc = tm_io_pwrite_all(vd->io, buf, n, to + pos);
        if (rc < 0)
            return tm_err_set_at(&vd->err, rc, to + pos,
                                 "cannot write a moved block: %s",
                                 tm_strerror(rc));
    }
    return 0;
}

/* Step 2: the highest-placed block moves into the lowest hole big enough
 * below it, and so on down. */
static int
compact(struct tm_vhdx *vd, struct tm_vhdx_optimize_stats *st)
{
    const struct vhdx_geometry *g = &vd->g;
    uint64_t most = g->payload_blocks + g->bitmap_blocks + vd->rt->count + 2;
    struct extent *all = malloc(most * sizeof(*all));
    struct extent *mov = malloc(most * sizeof(*mov));
    struct extent *holes = malloc((most + 1) * sizeof(*holes));
    struct batch *bt = calloc(1, sizeof(*bt));
    uint8_t *buf = malloc(COPY_BYTES);
    size_t nall, nmov, nholes = 0, first_hole = 0;
    uint64_t cursor = 0;
    bool head_clean = false;
    int rc = 0;

    if (all == NULL || mov == NULL || holes == NULL || bt == NULL ||
        buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    nall = fixed_extents(vd, all);
    nmov = movable_extents(vd, mov);
    memcpy(all + nall, mov, nmov * sizeof(*mov));
    nall += nmov;
    qsort(all, nall, sizeof(*all), cmp_off);
    for (size_t k = 0; k < nall; k++) {
        if (all[k].off > cursor)
            holes[nholes++] = (struct extent){ cursor, all[k].off - cursor,
                                               UINT64_MAX };
        if (all[k].off + all[k].len > cursor)
            cursor = all[k].off + all[k].len;
    }
    qsort(mov, nmov, sizeof(*mov), cmp_off_desc);
    for (size_t k = 0; k < nmov; k++) {
        struct extent *m = &mov[k];
        struct extent *h = NULL;

        while (first_hole < nholes && holes[first_hole].len == 0)
            first_hole++;
        for (size_t j = first_hole; j < nholes; j++) {
            if (holes[j].off + m->len > m->off)
                break;                  /* holes are sorted: none below */
            if (holes[j].len >= m->len) {
                h = &holes[j];
                break;
            }
        }
        if (h == NULL)
            continue;
        if (!head_clean) {
            /* CRASH: the log's head entry is replayed after a crash; make
             * it one that targets nothing, so no hole we write into can
             * be overwritten by a replay of older updates. */
            rc = vhdx_begin_modify(vd, false);
            if (rc == 0) {
                rc = vhdx_log_commit(&vd->log, NULL, 0, vd->durable_size,
                                     vd->file_end);
                if (rc < 0)
                    rc = vhdx_poison(vd, rc, "log write");
            }
            if (rc < 0)
                goto out;
            head_clean = true;
        }
        rc = copy_extent(vd, m->off, h->off, m->len, buf);
        if (rc < 0)
            goto out;
        bt->mv[bt->n++] = (struct extent){ h->off, m->len, m->idx };
        bt->bytes += m->len;
        h->off += m->len;
        h->len -= m->len;
        if (bt->n == BATCH_MOVES || bt->bytes >= BATCH_BYTES) {
            rc = commit_batch(vd, bt, st);
            if (rc < 0)
                goto out;
        }
    }
    rc = commit_batch(vd, bt, st);
out:
    free(buf);
    free(bt);
    free(holes);
    free(mov);
    free(all);
    return rc;
}

int
tm_vhdx_optimize(struct tm_vhdx *vd, struct tm_vhdx_optimize_stats *st)
{
    uint64_t size;
    int rc;

    memset(st, 0, sizeof(*st));
    tm_err_clear(&vd->err);
    rc = vhdx_check_usable(vd, true);
    if (rc < 0)
        return rc;
    rc = tm_io_size(vd->io, &size);
    if (rc < 0)
        return tm_err_set(&vd->err, rc, "cannot get the file size: %s",
                          tm_strerror(rc));
    st->size_before = size;
    st->size_after = size;
    /* A fixed disk keeps every block where it is (MS-VHDX 2.5.1). */
    if (vhdx_is_fixed(vd))
        return 0;
    if (vd->ndirty > 0 || vd->npunch > 0) {
        rc = vhdx_bat_commit(vd);
        if (rc < 0)
            return rc;
    }
    rc = zero_blocks(vd, st);
    if (rc == 0)
        rc = compact(vd, st);
    if (rc == 0)
        rc = vhdx_truncate_unused(vd);
    if (rc < 0) {
        if (vd->err.code == 0)
            tm_err_set(&vd->err, rc, "cannot optimize: %s",
                       tm_strerror(rc));
        return rc;
    }
    rc = tm_io_size(vd->io, &size);
    if (rc < 0)
        return tm_err_set(&vd->err, rc, "cannot get the file size: %s",
                          tm_strerror(rc));
    st->size_after = size;
    return 0;
}
