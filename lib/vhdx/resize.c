/* SPDX-License-Identifier: MIT */
/* resize.c - Resize-VHD: changing the virtual size of an open VHDX, and
 * the smallest size a shrink may go to.
 *
 * The size change itself is one log entry (the Virtual Disk Size item,
 * and the region tables when the BAT moves), so a crash leaves the old
 * size with the old contents or the new size with the new contents.
 * Everything the new size needs is made durable before that entry:
 *
 *   grow    the old last block's bytes past the old size are zeroed
 *           (another writer may have left garbage there); BAT entries of
 *           the new blocks are written (old readers ignore entries past
 *           their last block): a fixed disk's new blocks FULLY_PRESENT in
 *           fresh zeroed space, a differencing disk's ZERO (its new range
 *           must read zeros, not the parent), a dynamic disk's
 *           NOT_PRESENT.  A BAT region too small for the new geometry is
 *           copied, grown, to the end of the file, flushed, and the region
 *           tables switch to it in the size-changing entry itself.
 *   shrink  refused while data lies past the new end; after the size
 *           change, the entries of the blocks past the end are cleared in
 *           later entries, their space punched, and the file truncated
 *           after its last referenced byte.
 *
 * Fixed disks (a decision, see shrink()): blocks past a shrunk end are
 * outside the geometry, so their entries are cleared (state NOT_PRESENT,
 * offset 0: MS-VHDX's FULLY_PRESENT rule covers the disk's blocks, not
 * slack entries) and their space is given back like a dynamic disk's; the
 * live blocks all stay FULLY_PRESENT. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define ZBUF_BYTES VHDX_MiB

static uint64_t
round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static bool
is_payload_index(const struct vhdx_geometry *g, uint64_t idx)
{
    return (idx + 1) % (g->chunk_ratio + 1) != 0;
}

static uint64_t
index_block(const struct vhdx_geometry *g, uint64_t idx)
{
    return idx - idx / (g->chunk_ratio + 1);
}

static bool
is_diff(const struct tm_vhdx *vd)
{
    return vd->p.has_parent;
}

static bool
is_present(uint64_t e)
{
    unsigned st = VHDX_BAT_STATE(e);

    return st == VHDX_PAYLOAD_FULLY_PRESENT ||
           st == VHDX_PAYLOAD_PARTIALLY_PRESENT;
}

/* ---- the smallest size --------------------------------------------------- */

/* The last (up to) RING allocated runs below a limit, oldest first. */
#define RING 256

struct run {
    uint64_t off, len;
};

struct runs {
    struct run r[RING];
    size_t head;                /* next slot to fill */
    size_t n;                   /* runs held, <= RING */
    bool dropped;               /* older runs were pushed out */
};

static void
runs_add(struct runs *rs, uint64_t off, uint64_t len)
{
    if (rs->n > 0) {
        struct run *last = &rs->r[(rs->head + RING - 1) % RING];

        if (last->off + last->len == off) {
            last->len += len;
            return;
        }
    }
    if (rs->n == RING)
        rs->dropped = true;
    else
        rs->n++;
    rs->r[rs->head] = (struct run){ off, len };
    rs->head = (rs->head + 1) % RING;
}

static bool
is_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Index of the last non-zero byte of p[0, n), or false.  Whole pieces
 * are tested with memcmp, which is fast, before any byte is looked at. */
static bool
last_nonzero(const uint8_t *p, size_t n, size_t *at)
{
    if (is_zero(p, n))
        return false;
    while (n > 4096 && is_zero(p + n - 4096, 4096))
        n -= 4096;
    while (n > 0) {
        if (p[n - 1] != 0) {
            *at = n - 1;
            return true;
        }
        n--;
    }
    return false;
}

/* tm_vhdx_block_status finds the runs that may hold data going forward;
 * the search for the last non-zero byte goes backwards.  So the runs below
 * 'limit' are collected keeping the last RING, read backwards, and if all
 * of those read zeros the collection repeats below the oldest of them. */
static int
min_size_locked(struct tm_vhdx *vd, uint64_t *out)
{
    uint64_t ss = vd->p.logical_sector;
    uint64_t limit = vd->p.virtual_size;
    uint8_t *buf = malloc(ZBUF_BYTES);
    struct runs *rs = malloc(sizeof(*rs));
    int rc = 0;

    *out = ss;
    if (buf == NULL || rs == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    while (limit > 0) {
        uint64_t off = 0;

        memset(rs, 0, sizeof(*rs));
        while (off < limit) {
            uint64_t run;
            bool alloc;

            rc = tm_vhdx_block_status(vd, off, limit - off, &run, &alloc);
            if (rc < 0)
                goto out;
            if (run == 0)
                break;
            if (alloc)
                runs_add(rs, off, run);
            off += run;
        }
        for (size_t k = 0; k < rs->n; k++) {
            const struct run *r = &rs->r[(rs->head + RING - 1 - k) % RING];
            uint64_t end = r->off + r->len;

            while (end > r->off) {
                size_t n = end - r->off < ZBUF_BYTES ? (size_t)(end - r->off)
                                                     : ZBUF_BYTES;
                size_t at;

                rc = tm_vhdx_read(vd, buf, n, end - n);
                if (rc < 0)
                    goto out;
                if (last_nonzero(buf, n, &at)) {
                    *out = round_up(end - n + at + 1, ss);
                    goto out;
                }
                end -= n;
            }
        }
        if (!rs->dropped || rs->n == 0)
            break;
        limit = rs->r[rs->head % RING].off;     /* the oldest kept */
    }
out:
    free(rs);
    free(buf);
    return rc;
}

int
tm_vhdx_min_size(struct tm_vhdx *vd, uint64_t *out)
{
    int rc;

    *out = 0;
    tm_err_clear(&vd->err);
    rc = vhdx_check_usable(vd, false);
    if (rc < 0)
        return rc;
    rc = min_size_locked(vd, out);
    if (rc < 0 && vd->err.code == 0)
        tm_err_set(&vd->err, rc, "cannot find where the data ends: %s",
                   tm_strerror(rc));
    return rc;
}

/* ---- shared with optimize.c -------------------------------------------- */

/* The end of the last byte anything references: the header section, the
 * log, every region, every present block and sector bitmap. */
static uint64_t
referenced_end(const struct tm_vhdx *vd)
{
    const struct vhdx_geometry *g = &vd->g;
    uint64_t end = VHDX_HEADER_SECTION_BYTES;

    if (vd->hdr.log_length > 0 &&
        vd->hdr.log_offset + vd->hdr.log_length > end)
        end = vd->hdr.log_offset + vd->hdr.log_length;
    for (uint32_t i = 0; i < vd->rt->count; i++)
        if (vd->rt->e[i].file_off + vd->rt->e[i].len > end)
            end = vd->rt->e[i].file_off + vd->rt->e[i].len;
    for (uint64_t b = 0; b < g->payload_blocks; b++) {
        uint64_t e = vd->bat[vhdx_bat_index(g, b)];

        if (is_present(e) && VHDX_BAT_OFF(e) + vd->p.block_size > end)
            end = VHDX_BAT_OFF(e) + vd->p.block_size;
    }
    if (is_diff(vd)) {
        for (uint64_t k = 0; k < g->bitmap_blocks; k++) {
            uint64_t e = vd->bat[vhdx_sb_index(g, k)];

            if (VHDX_BAT_STATE(e) == VHDX_SB_PRESENT &&
                VHDX_BAT_OFF(e) + VHDX_MiB > end)
                end = VHDX_BAT_OFF(e) + VHDX_MiB;
        }
    }
    return round_up(end, VHDX_MiB);
}

int
vhdx_truncate_unused(struct tm_vhdx *vd)
{
    uint64_t end = referenced_end(vd);
    int rc;

    if (end >= vd->file_size)
        return 0;
    rc = vhdx_begin_modify(vd, false);
    if (rc < 0)
        return rc;
    /* CRASH: replay refuses a file shorter than the head entry's
     * FlushedFileOffset, and the last entry recorded the longer file.  An
     * empty entry recording the new size becomes the head first; it
     * changes nothing, and replaying it only extends a file to 'end'. */
    rc = vhdx_log_commit(&vd->log, NULL, 0, end, end);
    if (rc < 0)
        return vhdx_poison(vd, rc, "log write before truncating");
    rc = tm_io_truncate(vd->io, end);
    if (rc < 0)
        return vhdx_poison(vd, rc, "truncate");
    rc = tm_io_flush(vd->io);
    if (rc < 0)
        return vhdx_poison(vd, rc, "flush after truncating");
    vd->file_size = end;
    vd->durable_size = end;
    vd->file_end = end;
    return 0;
}

/* ---- resize -------------------------------------------------------------- */

/* Commits the dirty BAT sectors once they fill a log entry. */
static int
commit_if_full(struct tm_vhdx *vd)
{
    if (vd->ndirty >= vhdx_log_max_updates(&vd->log))
        return vhdx_bat_commit(vd);
    return 0;
}

/* The Virtual Disk Size item holding 'size' (its bytes in buf). */
static struct vhdx_meta_item
size_item(uint64_t size, uint8_t buf[8])
{
    tm_put_le64(buf, size);
    return (struct vhdx_meta_item){
        .id = VHDX_GUID_VIRTUAL_SIZE, .data = buf, .len = 8,
        .is_virtual_disk = true, .is_required = true,
    };
}

/* Zeros [old_size, min(new_size, end of its block)) in the old last
 * block when that block holds data of this file (or, in a differencing
 * disk, could read the parent's): old readers never looked there, so it
 * may hold anything. */
static int
zero_old_tail(struct tm_vhdx *vd, uint64_t old_size, uint64_t new_size)
{
    uint64_t bs = vd->p.block_size;
    uint64_t blk = (old_size - 1) / bs;
    uint64_t end = (blk + 1) * bs;
    unsigned st = VHDX_BAT_STATE(vd->bat[vhdx_bat_index(&vd->g, blk)]);
    uint8_t *z;
    int rc = 0;

    if (end > new_size)
        end = new_size;
    if (old_size >= end)
        return 0;
    if (st != VHDX_PAYLOAD_FULLY_PRESENT &&
        !(is_diff(vd) && (st == VHDX_PAYLOAD_NOT_PRESENT ||
                          st == VHDX_PAYLOAD_PARTIALLY_PRESENT)))
        return 0;
    z = calloc(1, ZBUF_BYTES);
    if (z == NULL)
        return -ENOMEM;
    for (uint64_t off = old_size; off < end && rc == 0;) {
        size_t n = end - off < ZBUF_BYTES ? (size_t)(end - off) : ZBUF_BYTES;

        rc = vhdx_write_at(vd, z, n, off);
        off += n;
    }
    free(z);
    return rc;
}

/* What BAT slot 'idx' of the new geometry g2 should hold when it lies at
 * or past the first slot of the old disk's first missing block: a new
 * block's entry, the old entry of a sector-bitmap slot of a chunk the old
 * disk had, or zero (slack). */
static uint64_t
grown_entry(const struct tm_vhdx *vd, const struct vhdx_geometry *g2,
            uint64_t idx, uint64_t cur, uint64_t first_new_off)
{
    const struct vhdx_geometry *g = &vd->g;
    uint64_t b;

    if (!is_payload_index(g2, idx))
        return idx / (g2->chunk_ratio + 1) < g->bitmap_blocks ? cur : 0;
    b = index_block(g2, idx);
    if (b < g->payload_blocks)
        return cur;                     /* cannot happen past first_slot */
    if (b >= g2->payload_blocks)
        return 0;
    if (vhdx_is_fixed(vd))
        return VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT,
                              first_new_off +
                              (b - g->payload_blocks) * vd->p.block_size);
    if (is_diff(vd))
        return VHDX_BAT_ENTRY(VHDX_PAYLOAD_ZERO, 0);
    return 0;
}

/* Writes the BAT 'nb' (count entries) into a region of 'len' bytes at
 * 'off', zeros after the entries. */
static int
write_bat(struct tm_vhdx *vd, const uint64_t *nb, uint64_t count,
          uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(VHDX_MiB);
    int rc = 0;

    if (buf == NULL)
        return -ENOMEM;
    for (uint64_t pos = 0; pos < len && rc == 0; pos += VHDX_MiB) {
        uint64_t first = pos / 8;

        memset(buf, 0, VHDX_MiB);
        for (uint64_t i = 0; i < VHDX_MiB / 8 && first + i < count; i++)
            tm_put_le64(buf + i * 8, nb[first + i]);
        rc = tm_io_pwrite_all(vd->io, buf, VHDX_MiB, off + pos);
        if (rc < 0)
            tm_err_set_at(&vd->err, rc, off + pos,
                          "cannot write the new BAT: %s", tm_strerror(rc));
    }
    free(buf);
    return rc;
}

/* Grows the per-chunk sector-bitmap cache to 'count' slots (new ones
 * NULL) into a fresh array, so nothing can fail after the switch. */
static int
sbm_grown(const struct tm_vhdx *vd, uint64_t count, uint8_t ***out)
{
    *out = NULL;
    if (vd->sbm == NULL || count <= vd->sbm_count)
        return 0;
    *out = calloc(count, sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    memcpy(*out, vd->sbm, vd->sbm_count * sizeof(**out));
    return 0;
}

static void
sbm_install(struct tm_vhdx *vd, uint8_t **grown, uint64_t count)
{
    if (grown != NULL) {
        free(vd->sbm);
        vd->sbm = grown;
        vd->sbm_count = count;
        return;
    }
    if (vd->sbm == NULL)
        return;
    for (uint64_t k = count; k < vd->sbm_count; k++) {
        free(vd->sbm[k]);
        vd->sbm[k] = NULL;
    }
    if (count < vd->sbm_count) {
        uint8_t **s = realloc(vd->sbm, (count ? count : 1) * sizeof(*s));

        if (s != NULL)
            vd->sbm = s;
        vd->sbm_count = count;
    }
}

static int
grow(struct tm_vhdx *vd, uint64_t new_size)
{
    const struct vhdx_geometry g = vd->g;
    struct vhdx_params p2 = vd->p;
    struct vhdx_geometry g2;
    struct vhdx_region_table *rt2 = NULL;
    struct vhdx_meta_item item;
    uint8_t sizebuf[8];
    uint64_t *nb = NULL;
    uint8_t **sbm2 = NULL;
    uint64_t bs = vd->p.block_size;
    uint64_t old_size = vd->p.virtual_size;
    uint64_t need, first_slot, new_bat_off = 0, first_new_off = 0;
    uint64_t old_bat_off = vd->bat_off, old_bat_len = vd->bat_len;
    uint64_t nnew;
    bool relocate;
    int rc;

    p2.virtual_size = new_size;
    vhdx_geometry(&p2, &g2);
    need = round_up(g2.bat_entries_write * 8, VHDX_MiB);
    if (need > UINT32_MAX)
        return tm_err_set(&vd->err, TM_E_UNSUPPORTED,
                          "a BAT of %" PRIu64 " bytes does not fit a region",
                          need);
    relocate = need > vd->bat_len;
    nnew = g2.payload_blocks - g.payload_blocks;
    first_slot = vhdx_bat_index(&g, g.payload_blocks);

    rc = vhdx_begin_modify(vd, true);
    if (rc < 0)
        return rc;
    rc = zero_old_tail(vd, old_size, new_size);
    if (rc == 0 && (vd->ndirty > 0 || vd->npunch > 0))
        rc = vhdx_bat_commit(vd);
    if (rc < 0)
        return rc;

    /* The new in-memory BAT, holding what the file holds now. */
    nb = calloc(g2.bat_entries_write, 8);
    rt2 = malloc(sizeof(*rt2));
    if (nb == NULL || rt2 == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = sbm_grown(vd, g2.bitmap_blocks, &sbm2);
    if (rc < 0)
        goto out;
    memcpy(nb, vd->bat, (vd->bat_count < g2.bat_entries_write
                         ? vd->bat_count : g2.bat_entries_write) * 8);
    if (!relocate && g2.bat_entries_write > vd->bat_count) {
        /* Slack of the region: whatever an earlier writer left. */
        uint64_t cnt = g2.bat_entries_write - vd->bat_count;
        uint8_t *raw = (uint8_t *)(nb + vd->bat_count);

        rc = tm_io_pread_all(vd->rd, raw, cnt * 8,
                             vd->bat_off + vd->bat_count * 8);
        if (rc < 0) {
            tm_err_set(&vd->err, rc, "cannot read the BAT: %s",
                       tm_strerror(rc));
            goto out;
        }
        for (uint64_t i = 0; i < cnt; i++)
            nb[vd->bat_count + i] = tm_le64(raw + i * 8);
    }

    /* Space first: the new BAT at the end, then a fixed disk's blocks. */
    if (relocate)
        new_bat_off = vd->file_end;
    if (vhdx_is_fixed(vd) && nnew > 0) {
        uint64_t len = nnew * bs;

        first_new_off = vd->file_end + (relocate ? need : 0);
        rc = tm_io_allocate(vd->io, first_new_off, len);
        if (rc < 0) {
            uint64_t sz;

            tm_err_set(&vd->err, rc, "cannot allocate %" PRIu64 " bytes "
                       "for the new blocks: %s", len, tm_strerror(rc));
            if (tm_io_size(vd->io, &sz) == 0 && sz > vd->file_size) {
                vd->file_size = sz;
                if (round_up(sz, VHDX_MiB) > vd->file_end)
                    vd->file_end = round_up(sz, VHDX_MiB);
            }
            goto out;
        }
        if (first_new_off + len > vd->file_size)
            vd->file_size = first_new_off + len;
        vd->file_end = first_new_off + len;
    }

    if (relocate) {
        for (uint64_t i = first_slot; i < g2.bat_entries_write; i++)
            nb[i] = grown_entry(vd, &g2, i, nb[i], first_new_off);
        rc = write_bat(vd, nb, g2.bat_entries_write, new_bat_off, need);
        if (rc < 0)
            goto out;
        if (new_bat_off + need > vd->file_size)
            vd->file_size = new_bat_off + need;
        if (new_bat_off + need > vd->file_end)
            vd->file_end = new_bat_off + need;
    }
    /* CRASH: what the switch and the entries before it point at (the new
     * BAT, a fixed disk's zeroed blocks, the zeroed tail) is durable
     * before any entry names it. */
    rc = tm_io_flush(vd->io);
    if (rc < 0) {
        rc = vhdx_poison(vd, rc, "flush before resizing");
        goto out;
    }
    vd->durable_size = vd->file_size;
    if (!relocate) {
        /* The region has room: the new entries go through the log in
         * place, ahead of the switch.  The bigger array is installed now;
         * entries past the old last block mean nothing until then. */
        free(vd->bat);
        vd->bat = nb;
        vd->bat_count = g2.bat_entries_write;
        nb = NULL;
        for (uint64_t i = first_slot; i < g2.bat_entries_write; i++) {
            uint64_t want = grown_entry(vd, &g2, i, vd->bat[i],
                                        first_new_off);

            if (want == vd->bat[i])
                continue;
            rc = vhdx_bat_set(vd, i, want);
            if (rc == 0)
                rc = commit_if_full(vd);
            if (rc < 0)
                goto out;
        }
    }
    if (vd->ndirty > 0) {
        rc = vhdx_bat_commit(vd);
        if (rc < 0)
            goto out;
    }

    /* The switch: one entry. */
    item = size_item(new_size, sizebuf);
    if (relocate) {
        struct vhdx_region *r;

        memcpy(rt2, vd->rt, sizeof(*rt2));
        for (uint32_t i = 0; i < rt2->count; i++) {
            r = &rt2->e[i];
            if (tm_guid_equal(&r->guid, &VHDX_GUID_BAT)) {
                r->file_off = new_bat_off;
                r->len = (uint32_t)need;
            }
        }
        rc = vhdx_meta_rewrite_rt(vd, &item, 1, rt2);
    } else {
        rc = vhdx_meta_rewrite_rt(vd, &item, 1, NULL);
    }
    if (rc < 0)
        goto out;
    if (relocate) {
        free(vd->bat);
        vd->bat = nb;
        vd->bat_count = g2.bat_entries_write;
        nb = NULL;
        /* Best effort: nothing references the old BAT any more, and the
         * log's head entry does not target it. */
        (void)tm_io_punch(vd->io, old_bat_off, old_bat_len);
    }
    vd->g = g2;
    sbm_install(vd, sbm2, g2.bitmap_blocks);
    sbm2 = NULL;
out:
    free(sbm2);
    free(rt2);
    free(nb);
    return rc;
}

static int
shrink(struct tm_vhdx *vd, uint64_t new_size)
{
    const struct vhdx_geometry g = vd->g;
    struct vhdx_params p2 = vd->p;
    struct vhdx_geometry g2;
    struct vhdx_meta_item item;
    uint8_t sizebuf[8];
    uint64_t *sb_punch = NULL;
    size_t nsb = 0;
    uint64_t min, first_dead;
    int rc;

    p2.virtual_size = new_size;
    vhdx_geometry(&p2, &g2);
    if (is_diff(vd)) {
        if (vd->parent == NULL)
            return tm_err_set(&vd->err, TM_E_CHAIN,
                              "cannot shrink a differencing disk whose "
                              "parent is not attached");
        if (new_size < vd->parent->p.virtual_size)
            return tm_err_set(&vd->err, TM_E_RANGE,
                              "cannot shrink a differencing disk to %" PRIu64
                              " bytes, below its parent's size (%" PRIu64
                              " bytes)", new_size,
                              vd->parent->p.virtual_size);
    }
    rc = min_size_locked(vd, &min);
    if (rc < 0)
        return rc;
    if (new_size < min)
        return tm_err_set(&vd->err, TM_E_RANGE,
                          "cannot shrink to %" PRIu64 " bytes: data lies up "
                          "to %" PRIu64 "; the smallest safe size is %" PRIu64
                          " bytes", new_size, min, min);
    sb_punch = malloc((g.bitmap_blocks + 1) * sizeof(*sb_punch));
    if (sb_punch == NULL)
        return -ENOMEM;
    rc = vhdx_begin_modify(vd, true);
    if (rc == 0 && (vd->ndirty > 0 || vd->npunch > 0))
        rc = vhdx_bat_commit(vd);
    if (rc < 0)
        goto out;

    /* The switch: the disk ends at new_size from here on. */
    item = size_item(new_size, sizebuf);
    rc = vhdx_meta_rewrite_rt(vd, &item, 1, NULL);
    if (rc < 0)
        goto out;
    vd->g = g2;

    /* Then the blocks past the end let go, in later entries: until they
     * are committed, they are slack every reader ignores.  The array
     * keeps its old length until then, so every slot can be cleared. */
    first_dead = vhdx_bat_index(&g2, g2.payload_blocks);
    for (uint64_t i = first_dead; i < vd->bat_count; i++) {
        uint64_t e = vd->bat[i];

        if (e == 0)
            continue;
        if (!is_payload_index(&g2, i) &&
            i / (g2.chunk_ratio + 1) < g2.bitmap_blocks)
            continue;                   /* the last live chunk's bitmap */
        /* The entry first: a punch is never queued for space the BAT
         * still references. */
        rc = vhdx_bat_set(vd, i, 0);
        if (rc < 0)
            goto out;
        if (is_payload_index(&g2, i) && is_present(e)) {
            rc = vhdx_punch_later(vd, VHDX_BAT_OFF(e));
        } else if (!is_payload_index(&g2, i) &&
                   VHDX_BAT_STATE(e) == VHDX_SB_PRESENT) {
            sb_punch[nsb++] = VHDX_BAT_OFF(e);
        }
        if (rc == 0)
            rc = commit_if_full(vd);
        if (rc < 0)
            goto out;
    }
    if (vd->ndirty > 0 || vd->npunch > 0) {
        rc = vhdx_bat_commit(vd);
        if (rc < 0)
            goto out;
    }
    /* Sector bitmaps are 1 MiB, not a block: punched here, after the
     * commit, best effort. */
    for (size_t k = 0; k < nsb; k++)
        (void)tm_io_punch(vd->io, sb_punch[k], VHDX_MiB);
    if (g2.bat_entries_write < vd->bat_count) {
        uint64_t *t = realloc(vd->bat, g2.bat_entries_write * 8);

        if (t != NULL)
            vd->bat = t;
        vd->bat_count = g2.bat_entries_write;
    }
    sbm_install(vd, NULL, g2.bitmap_blocks);
    rc = vhdx_truncate_unused(vd);
out:
    free(sb_punch);
    return rc;
}

int
tm_vhdx_resize(struct tm_vhdx *vd, uint64_t new_size)
{
    uint32_t ss;
    int rc;

    tm_err_clear(&vd->err);
    rc = vhdx_check_usable(vd, true);
    if (rc < 0)
        return rc;
    ss = vd->p.logical_sector;
    if (new_size < ss || new_size > TM_VHDX_MAX_VIRTUAL_SIZE)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "new size %" PRIu64 " is not between one sector "
                          "(%" PRIu32 ") and 64 TiB", new_size, ss);
    if (new_size % ss != 0)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "new size %" PRIu64 " is not a multiple of the "
                          "logical sector size %" PRIu32, new_size, ss);
    if (new_size == vd->p.virtual_size)
        return 0;
    rc = new_size > vd->p.virtual_size ? grow(vd, new_size)
                                       : shrink(vd, new_size);
    if (rc < 0 && vd->err.code == 0)
        tm_err_set(&vd->err, rc, "cannot resize to %" PRIu64 " bytes: %s",
                   new_size, tm_strerror(rc));
    return rc;
}
