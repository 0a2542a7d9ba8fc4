/* SPDX-License-Identifier: MIT */
/* rw.c - data I/O in virtual-disk space and the BAT behind it.
 *
 * The whole BAT lives in memory (8 bytes per block: 512 MiB at the worst,
 * a 64 TiB disk of 1 MiB blocks).  Block allocations change it in memory
 * and mark its 4 KiB sectors dirty; the dirty sectors reach the file
 * through the log at the next flush (or sooner, when there are many), so
 * one log entry covers many allocations.  CRASH: a new block is written
 * past every structure the file has ever had, so until its BAT entry is
 * committed it is an orphan nobody reads; the log commit's first flush
 * makes the block's data durable before the entry is applied in place. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define BAT_PER_SECTOR (VHDX_LOG_SECTOR / 8)

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

struct extent {
    uint64_t off;
    uint64_t len;
};

static int
cmp_extent(const void *a, const void *b)
{
    return cmp_u64(&((const struct extent *)a)->off,
                   &((const struct extent *)b)->off);
}

/* One entry's state, for the file's kind: 0 or TM_E_CORRUPT. */
static int
check_entry(struct tm_vhdx *vd, uint64_t i, uint64_t e)
{
    const struct vhdx_geometry *g = &vd->g;
    unsigned st = VHDX_BAT_STATE(e);
    uint64_t at = vd->bat_off + i * 8;

    if (vhdx_is_sb_index(g, i)) {
        if (st == VHDX_SB_NOT_PRESENT)
            return 0;
        if (st == VHDX_SB_PRESENT && vd->p.has_parent)
            return 0;
        if (st == VHDX_SB_PRESENT)
            /* Meaningless without a parent: MS-VHDX requires
             * SB_BLOCK_NOT_PRESENT in fixed and dynamic files. */
            return tm_err_set_at(&vd->err, TM_E_CORRUPT, at,
                                 "BAT entry %" PRIu64 ": sector bitmap "
                                 "block present in a disk without a "
                                 "parent", i);
        return tm_err_set_at(&vd->err, TM_E_CORRUPT, at,
                             "BAT entry %" PRIu64 ": invalid sector "
                             "bitmap state %u", i, st);
    }
    switch (st) {
    case VHDX_PAYLOAD_NOT_PRESENT:
    case VHDX_PAYLOAD_UNDEFINED:
    case VHDX_PAYLOAD_ZERO:
    case VHDX_PAYLOAD_UNMAPPED:
    case VHDX_PAYLOAD_UNMAPPED_V095:
    case VHDX_PAYLOAD_FULLY_PRESENT:
        return 0;
    case VHDX_PAYLOAD_PARTIALLY_PRESENT: {
        uint64_t chunk = (i - i / (g->chunk_ratio + 1)) / g->chunk_ratio;

        if (!vd->p.has_parent)
            return tm_err_set_at(&vd->err, TM_E_CORRUPT, at,
                                 "BAT entry %" PRIu64 ": block partially "
                                 "present in a disk without a parent", i);
        if (VHDX_BAT_STATE(vd->bat[vhdx_sb_index(g, chunk)]) !=
            VHDX_SB_PRESENT)
            return tm_err_set_at(&vd->err, TM_E_CORRUPT, at,
                                 "BAT entry %" PRIu64 ": block partially "
                                 "present but chunk %" PRIu64 " has no "
                                 "sector bitmap", i, chunk);
        return 0;
    }
    default:
        return tm_err_set_at(&vd->err, TM_E_CORRUPT, at,
                             "BAT entry %" PRIu64 ": invalid block state %u",
                             i, st);
    }
}

/* Reads the BAT and validates every entry the disk uses: states allowed
 * for this kind of file, offsets 1 MiB aligned, blocks and sector bitmaps
 * starting inside the file and overlapping neither each other nor the
 * other structures.  COMPAT: a last block that starts inside the file but
 * runs past its end is accepted (older QEMU wrote such files); reads past
 * EOF give zeros. */
int
vhdx_bat_load(struct tm_vhdx *vd, uint64_t file_size)
{
    const struct vhdx_geometry *g = &vd->g;
    uint64_t need_bytes = g->bat_entries_min * 8;
    uint64_t have = vd->bat_len / 8;
    uint64_t nread;
    struct extent *ext = NULL;
    size_t next = 0;
    uint8_t *raw;
    int rc = 0;

    if (vd->bat_len < need_bytes)
        return tm_err_set(&vd->err, TM_E_CORRUPT,
                          "BAT region is %" PRIu32 " bytes, too small for "
                          "%" PRIu64 " entries", vd->bat_len,
                          g->bat_entries_min);
    vd->bat_count = g->bat_entries_write;
    vd->bat = calloc(vd->bat_count, 8);
    if (vd->bat == NULL)
        return tm_err_set(&vd->err, -ENOMEM, "no memory for a BAT of "
                          "%" PRIu64 " entries", vd->bat_count);
    nread = have < vd->bat_count ? have : vd->bat_count;
    raw = (uint8_t *)vd->bat;
    rc = tm_io_pread_all(vd->rd, raw, nread * 8, vd->bat_off);
    if (rc < 0)
        return tm_err_set_at(&vd->err, rc, vd->bat_off,
                             "cannot read the BAT: %s", tm_strerror(rc));
    for (uint64_t i = 0; i < nread; i++)
        vd->bat[i] = tm_le64(raw + i * 8);

    /* Room for the present blocks only: on a 64 TiB disk of 1 MiB blocks
     * one slot per block would cost another 512 MiB. */
    for (uint64_t i = 0; i < nread; i++)
        if (vhdx_entry_space(g, &vd->p, i, vd->bat[i]) > 0)
            next++;
    ext = malloc((next + 1) * sizeof(*ext));
    if (ext == NULL)
        return -ENOMEM;
    next = 0;
    for (uint64_t i = 0; i < nread; i++) {
        uint64_t e = vd->bat[i];
        uint64_t off = VHDX_BAT_OFF(e);
        uint64_t len;

        if (!vhdx_is_sb_index(g, i) &&
            i - i / (g->chunk_ratio + 1) >= g->payload_blocks)
            continue;                   /* past the last block: unused */
        rc = check_entry(vd, i, e);
        if (rc < 0)
            goto out;
        len = vhdx_entry_space(g, &vd->p, i, e);
        if (len == 0)
            continue;
        if (off < VHDX_HEADER_SECTION_BYTES) {
            rc = tm_err_set_at(&vd->err, TM_E_CORRUPT, vd->bat_off + i * 8,
                               "BAT entry %" PRIu64 ": present block at "
                               "offset %" PRIu64 ", inside the header "
                               "section", i, off);
            goto out;
        }
        if (off >= file_size) {
            rc = tm_err_set_at(&vd->err, TM_E_CORRUPT, vd->bat_off + i * 8,
                               "BAT entry %" PRIu64 ": block at offset "
                               "%" PRIu64 " lies past the end of the file "
                               "(%" PRIu64 " bytes)", i, off, file_size);
            goto out;
        }
        ext[next].off = off;
        ext[next].len = len;
        next++;
    }

    /* No two blocks may share file space, and none may overlap the log,
     * the BAT or the metadata. */
    qsort(ext, next, sizeof(*ext), cmp_extent);
    for (size_t k = 0; k < next; k++) {
        uint64_t off = ext[k].off;
        uint64_t bs = ext[k].len;
        const char *what = NULL;

        if (k + 1 < next && ext[k + 1].off < off + bs)
            what = "another block";
        else if (vd->hdr.log_length > 0 &&
                 off < vd->hdr.log_offset + vd->hdr.log_length &&
                 vd->hdr.log_offset < off + bs)
            what = "the log";
        else if (off < vd->bat_off + vd->bat_len && vd->bat_off < off + bs)
            what = "the BAT";
        else if (off < vd->meta_off + vd->meta_len &&
                 vd->meta_off < off + bs)
            what = "the metadata region";
        if (what != NULL) {
            rc = tm_err_set_at(&vd->err, TM_E_CORRUPT, off,
                               "BAT: the block at offset %" PRIu64
                               " overlaps %s", off, what);
            goto out;
        }
    }
out:
    free(ext);
    return rc;
}

/* Records that a metadata sector (a VHDX_DIRTY_SB-tagged bitmap sector or
 * a BAT sector) must be committed. */
static uint64_t
seen_bit(uint64_t d)
{
    return (d & VHDX_DIRTY_SB) ? (d & ~VHDX_DIRTY_SB) * 2 + 1 : d * 2;
}

static int
mark_dirty_raw(struct tm_vhdx *vd, uint64_t d)
{
    uint64_t bit = seen_bit(d);

    if (bit / 8 >= vd->dirty_seen_len) {
        size_t len = (size_t)(bit / 8) * 2 + 64;
        uint8_t *n = realloc(vd->dirty_seen, len);

        if (n == NULL)
            return -ENOMEM;
        memset(n + vd->dirty_seen_len, 0, len - vd->dirty_seen_len);
        vd->dirty_seen = n;
        vd->dirty_seen_len = len;
    }
    if (vd->dirty_seen[bit / 8] & (1u << (bit % 8)))
        return 0;
    if (vd->ndirty == vd->dirty_cap) {
        size_t cap = vd->dirty_cap ? vd->dirty_cap * 2 : 64;
        uint64_t *n = realloc(vd->dirty, cap * sizeof(*n));

        if (n == NULL)
            return -ENOMEM;
        vd->dirty = n;
        vd->dirty_cap = cap;
    }
    vd->dirty[vd->ndirty++] = d;
    vd->dirty_seen[bit / 8] |= (uint8_t)(1u << (bit % 8));
    return 0;
}

/* Forgets the dirty list (after a commit, or when a caller drops it). */
static void
dirty_clear(struct tm_vhdx *vd)
{
    for (size_t i = 0; i < vd->ndirty; i++) {
        uint64_t bit = seen_bit(vd->dirty[i]);

        vd->dirty_seen[bit / 8] &= (uint8_t)~(1u << (bit % 8));
    }
    vd->ndirty = 0;
}

/* Records that the BAT sector holding entry 'idx' must be committed. */
static int
mark_dirty(struct tm_vhdx *vd, uint64_t idx)
{
    return mark_dirty_raw(vd, idx / BAT_PER_SECTOR);
}

/* Puts every dirty BAT and sector-bitmap sector in place through the log,
 * then punches the file space of blocks the BAT no longer references.
 * CRASH: the punch comes after the commit, so a crash never leaves an
 * entry pointing at a hole it did not ask for.  A commit too big for one
 * log entry is applied entry by entry, BAT sectors first; every state a
 * crash can leave between them is one a writer could have flushed (a
 * bitmap bit not yet set reads the parent's old data). */
int
vhdx_bat_commit(struct tm_vhdx *vd)
{
    struct vhdx_log_update *u = NULL;
    uint8_t *secs = NULL;
    size_t n = 0;
    int rc = 0;

    if (vd->ndirty > 0 && vd->p.has_parent) {
        /* CRASH: in a differencing disk the data must be durable before
         * the log entry that points at it can be.  A dynamic disk's new
         * block reads zeros before and after its data lands, but a
         * child's reads its parent's data before: were the entry to
         * survive a power cut without the data, the sectors would read
         * neither old nor new. */
        rc = tm_io_flush(vd->io);
        if (rc < 0)
            return vhdx_poison(vd, rc, "flush before a BAT update");
    }
    if (vd->ndirty > 0) {
        qsort(vd->dirty, vd->ndirty, sizeof(*vd->dirty), cmp_u64);
        u = malloc(vd->ndirty * sizeof(*u));
        secs = malloc(vd->ndirty * (size_t)VHDX_LOG_SECTOR);
        if (u == NULL || secs == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < vd->ndirty; i++) {
            uint64_t d = vd->dirty[i];

            if (i > 0 && vd->dirty[i - 1] == d)
                continue;
            if (d & VHDX_DIRTY_SB) {
                uint64_t c = (d & ~VHDX_DIRTY_SB) / VHDX_SB_SECTORS;
                uint64_t k = (d & ~VHDX_DIRTY_SB) % VHDX_SB_SECTORS;
                uint64_t e = vd->bat[vhdx_sb_index(&vd->g, c)];

                u[n].file_off = VHDX_BAT_OFF(e) + k * VHDX_LOG_SECTOR;
                u[n].data = vd->sbm[c] + k * VHDX_LOG_SECTOR;
            } else {
                uint8_t *q = secs + n * VHDX_LOG_SECTOR;

                for (unsigned j = 0; j < BAT_PER_SECTOR; j++) {
                    uint64_t idx = d * BAT_PER_SECTOR + j;

                    tm_put_le64(q + j * 8,
                                idx < vd->bat_count ? vd->bat[idx] : 0);
                }
                u[n].file_off = vd->bat_off + d * VHDX_LOG_SECTOR;
                u[n].data = q;
            }
            u[n].len = VHDX_LOG_SECTOR;
            n++;
        }
        rc = vhdx_log_commit(&vd->log, u, n, vd->durable_size, vd->file_end);
        if (rc < 0) {
            rc = vhdx_poison(vd, rc, "BAT update through the log");
            goto out;
        }
        vd->durable_size = vd->file_size;
        dirty_clear(vd);
    }
    for (size_t i = 0; i < vd->npunch; i++) {
        /* Best effort: the space is unreferenced whether or not it is
         * released. */
        (void)tm_io_punch(vd->io, vd->to_punch[i], vd->p.block_size);
    }
    vd->npunch = 0;
out:
    free(secs);
    free(u);
    return rc;
}

static int
check_io(struct tm_vhdx *vd, uint64_t off, uint64_t len)
{
    int rc = vhdx_check_usable(vd, false);

    if (rc < 0)
        return rc;
    if (off > vd->p.virtual_size || len > vd->p.virtual_size - off)
        return tm_err_set(&vd->err, TM_E_RANGE,
                          "range %" PRIu64 "+%" PRIu64 " lies outside the "
                          "virtual disk (%" PRIu64 " bytes)", off, len,
                          vd->p.virtual_size);
    return 0;
}

static uint64_t
block_entry(const struct tm_vhdx *vd, uint64_t blk)
{
    return vd->bat[vhdx_bat_index(&vd->g, blk)];
}

/* Whether a block in state 'st' takes its data from the parent, wholly
 * (NOT_PRESENT) or where its bitmap bits are clear (PARTIALLY_PRESENT). */
static bool
is_parent_backed(const struct tm_vhdx *vd, unsigned st)
{
    return vd->p.has_parent && (st == VHDX_PAYLOAD_NOT_PRESENT ||
                                st == VHDX_PAYLOAD_PARTIALLY_PRESENT);
}

int
vhdx_read_file(struct tm_vhdx *vd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        int64_t n = tm_io_pread(vd->rd, buf + done, len - done, off + done);

        if (n < 0)
            return tm_err_set_at(&vd->err, (int)n, off + done,
                                 "cannot read: %s", tm_strerror((int)n));
        if (n == 0) {
            memset(buf + done, 0, len - done);
            break;
        }
        done += (size_t)n;
    }
    return 0;
}

static int
no_parent(struct tm_vhdx *vd, uint64_t off)
{
    return tm_err_set(&vd->err, TM_E_CHAIN, "the parent of this "
                      "differencing disk is not open, and offset %" PRIu64
                      " reads from it", off);
}

/* Reads [off, off + len) of the parent; past the parent's end (a child
 * larger than its parent) reads zeros. */
static int
read_parent(struct tm_vhdx *vd, uint8_t *buf, size_t len, uint64_t off)
{
    struct tm_vhdx *pa = vd->parent;
    size_t n = len;
    int rc;

    if (pa == NULL)
        return no_parent(vd, off);
    if (off >= pa->p.virtual_size)
        n = 0;
    else if (len > pa->p.virtual_size - off)
        n = (size_t)(pa->p.virtual_size - off);
    if (n > 0) {
        rc = tm_vhdx_read(pa, buf, n, off);
        if (rc < 0) {
            vd->err = pa->err;
            tm_err_prefix(&vd->err, "parent '%s'",
                          pa->path != NULL ? pa->path : "(unnamed)");
            return rc;
        }
    }
    memset(buf + n, 0, len - n);
    return 0;
}

/* ---- sector bitmaps ------------------------------------------------------ */

#define SECTORS_PER_CHUNK ((uint64_t)1 << 23)

static inline bool
bit_get(const uint8_t *m, uint64_t s)
{
    return (m[s >> 3] >> (s & 7)) & 1;
}

/* The number of sectors from 's' (at most 'max') whose bits equal bit s,
 * which goes to *val. */
static uint64_t
bit_run(const uint8_t *m, uint64_t s, uint64_t max, bool *val)
{
    bool v = bit_get(m, s);
    uint8_t all = v ? 0xff : 0x00;
    uint64_t n = 1;

    *val = v;
    while (n < max) {
        uint64_t t = s + n;

        if ((t & 7) == 0 && max - n >= 8 && m[t >> 3] == all) {
            n += 8;
            continue;
        }
        if (bit_get(m, t) != v)
            break;
        n++;
    }
    return n;
}

/* The bitmap of 'chunk', read on first use (zeros when the chunk has
 * none yet). */
static int
load_bitmap(struct tm_vhdx *vd, uint64_t chunk, uint8_t **out)
{
    if (vd->sbm[chunk] == NULL) {
        uint64_t e = vd->bat[vhdx_sb_index(&vd->g, chunk)];
        bool present = VHDX_BAT_STATE(e) == VHDX_SB_PRESENT;
        uint8_t *m = present ? malloc(VHDX_MiB) : calloc(1, VHDX_MiB);
        int rc;

        if (m == NULL)
            return tm_err_set(&vd->err, -ENOMEM, "no memory for a sector "
                              "bitmap");
        if (present) {
            rc = vhdx_read_file(vd, m, VHDX_MiB, VHDX_BAT_OFF(e));
            if (rc < 0) {
                free(m);
                return rc;
            }
        }
        vd->sbm[chunk] = m;
    }
    *out = vd->sbm[chunk];
    return 0;
}

/* Sets (or clears) sectors [s, s + n) of chunk 'chunk''s bitmap and marks
 * the bitmap sectors holding them dirty. */
static int
bits_set(struct tm_vhdx *vd, uint64_t chunk, uint64_t s, uint64_t n, bool v)
{
    uint8_t *m = vd->sbm[chunk];
    uint64_t first = (s / 8) / VHDX_LOG_SECTOR;
    uint64_t last = ((s + n - 1) / 8) / VHDX_LOG_SECTOR;
    int rc;

    for (uint64_t k = first; k <= last; k++) {
        rc = mark_dirty_raw(vd, VHDX_DIRTY_SB | (chunk * VHDX_SB_SECTORS + k));
        if (rc < 0)
            return rc;
    }
    while (n > 0 && (s & 7) != 0) {
        m[s >> 3] = (uint8_t)(v ? m[s >> 3] | (1u << (s & 7))
                                : m[s >> 3] & ~(1u << (s & 7)));
        s++;
        n--;
    }
    if (n >= 8) {
        memset(m + (s >> 3), v ? 0xff : 0x00, n / 8);
        s += n / 8 * 8;
        n %= 8;
    }
    while (n > 0) {
        m[s >> 3] = (uint8_t)(v ? m[s >> 3] | (1u << (s & 7))
                                : m[s >> 3] & ~(1u << (s & 7)));
        s++;
        n--;
    }
    return 0;
}

/* Where block 'blk''s sectors start in its chunk's bitmap, and how many
 * of them lie inside the disk. */
static void
block_sectors(const struct tm_vhdx *vd, uint64_t blk, uint64_t *first,
              uint64_t *count)
{
    uint64_t ls = vd->p.logical_sector;
    uint64_t bs = vd->p.block_size;
    uint64_t end = (blk + 1) * bs;

    if (end > vd->p.virtual_size)
        end = vd->p.virtual_size;
    *first = (blk % vd->g.chunk_ratio) * (bs / ls);
    *count = end > blk * bs ? (end - blk * bs) / ls : 0;
}

/* Reads [off, off + len) of PARTIALLY_PRESENT block 'blk' (entry 'e'):
 * runs of set bits from the file, clear ones from the parent. */
static int
read_partial(struct tm_vhdx *vd, uint8_t *p, size_t len, uint64_t off,
             uint64_t blk, uint64_t e)
{
    uint64_t ls = vd->p.logical_sector;
    uint64_t chunk = blk / vd->g.chunk_ratio;
    uint64_t base = chunk * SECTORS_PER_CHUNK;
    uint8_t *m;
    int rc = load_bitmap(vd, chunk, &m);

    while (rc == 0 && len > 0) {
        uint64_t in = off % ls;
        uint64_t need = (in + len + ls - 1) / ls;
        bool v;
        uint64_t run = bit_run(m, off / ls - base, need, &v);
        size_t n = run * ls - in < len ? (size_t)(run * ls - in) : len;

        if (v)
            rc = vhdx_read_file(vd, p, n,
                           VHDX_BAT_OFF(e) + off % vd->p.block_size);
        else
            rc = read_parent(vd, p, n, off);
        p += n;
        off += n;
        len -= n;
    }
    return rc;
}

/* Block 'blk' is present and the I/O covers its first 'n' bytes from
 * where it starts in it; extends n over the following present blocks
 * that sit right after it in the file, up to 'len', so a sequential read
 * or write is one call. */
static size_t
contiguous_run(const struct tm_vhdx *vd, uint64_t blk, size_t n, size_t len)
{
    uint64_t bs = vd->p.block_size;
    uint64_t e = block_entry(vd, blk);

    while (n < len) {
        uint64_t e2 = block_entry(vd, blk + 1);

        if (VHDX_BAT_STATE(e2) != VHDX_PAYLOAD_FULLY_PRESENT ||
            VHDX_BAT_OFF(e2) != VHDX_BAT_OFF(e) + bs)
            break;
        n += bs < len - n ? (size_t)bs : len - n;
        blk++;
        e = e2;
    }
    return n;
}

/* Extends n over the following blocks in state 'st', up to 'len'. */
static size_t
same_state_run(const struct tm_vhdx *vd, uint64_t blk, unsigned st, size_t n,
               size_t len)
{
    uint64_t bs = vd->p.block_size;

    while (n < len && VHDX_BAT_STATE(block_entry(vd, blk + 1)) == st) {
        n += bs < len - n ? (size_t)bs : len - n;
        blk++;
    }
    return n;
}

/* tm_vhdx_read without the checks; also serves the tail of the last
 * block, past the virtual size. */
static int
read_at(struct tm_vhdx *vd, uint8_t *p, size_t len, uint64_t off)
{
    uint64_t bs = vd->p.block_size;
    int rc;

    while (len > 0) {
        uint64_t blk = off / bs;
        uint64_t in = off % bs;
        uint64_t e = block_entry(vd, blk);
        unsigned st = VHDX_BAT_STATE(e);
        size_t n = bs - in < len ? (size_t)(bs - in) : len;

        if (st == VHDX_PAYLOAD_FULLY_PRESENT) {
            n = contiguous_run(vd, blk, n, len);
            rc = vhdx_read_file(vd, p, n, VHDX_BAT_OFF(e) + in);
        } else if (!is_parent_backed(vd, st)) {
            memset(p, 0, n);
            rc = 0;
        } else if (st == VHDX_PAYLOAD_NOT_PRESENT) {
            n = same_state_run(vd, blk, st, n, len);
            rc = read_parent(vd, p, n, off);
        } else {
            rc = read_partial(vd, p, n, off, blk, e);
        }
        if (rc < 0)
            return rc;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

int
tm_vhdx_read(struct tm_vhdx *vd, void *buf, size_t len, uint64_t off)
{
    int rc;

    tm_err_clear(&vd->err);
    rc = check_io(vd, off, len);
    if (rc < 0)
        return rc;
    return read_at(vd, buf, len, off);
}

/* Gives 'len' bytes of new file space at the end of the file. */
static int
allocate_space(struct tm_vhdx *vd, uint64_t len, uint64_t *file_off)
{
    uint64_t off = vd->file_end;
    uint64_t end = off + len;
    int rc;

    /* The file covers the whole block at once: qemu-img check and 7-Zip
     * both refuse entries that point past the end. */
    if (end > vd->file_size) {
        rc = tm_io_truncate(vd->io, end);
        if (rc < 0)
            return tm_err_set(&vd->err, rc, "cannot extend the file: %s",
                              tm_strerror(rc));
        vd->file_size = end;
    }
    vd->file_end = end;
    *file_off = off;
    return 0;
}

/* Gives block 'blk' file space at the end of the file, in state 'st': in
 * memory now, on disk at the next commit. */
static int
allocate_block(struct tm_vhdx *vd, uint64_t blk, unsigned st,
               uint64_t *file_off)
{
    uint64_t idx = vhdx_bat_index(&vd->g, blk);
    uint64_t off;
    int rc = mark_dirty(vd, idx);

    if (rc == 0)
        rc = allocate_space(vd, vd->p.block_size, &off);
    if (rc < 0)
        return rc;
    vd->bat[idx] = VHDX_BAT_ENTRY(st, off);
    *file_off = off;
    return 0;
}

/* Gives 'chunk' a sector bitmap block if it has none.  CRASH: the new
 * SB_PRESENT entry is committed at once, before any block of the chunk
 * can become PARTIALLY_PRESENT: a commit split over several log entries
 * applies BAT sectors in index order, and the chunk's bitmap entry comes
 * after its blocks' entries. */
static int
ensure_bitmap(struct tm_vhdx *vd, uint64_t chunk, uint8_t **out)
{
    uint64_t idx = vhdx_sb_index(&vd->g, chunk);
    uint64_t off;
    int rc = load_bitmap(vd, chunk, out);

    if (rc < 0 || VHDX_BAT_STATE(vd->bat[idx]) == VHDX_SB_PRESENT)
        return rc;
    rc = allocate_space(vd, VHDX_MiB, &off);
    if (rc == 0)
        rc = vhdx_bat_set(vd, idx, VHDX_BAT_ENTRY(VHDX_SB_PRESENT, off));
    if (rc == 0)
        rc = vhdx_bat_commit(vd);
    return rc;
}

/* Writes sector-aligned [off, off + len), inside block 'blk' and short of
 * the whole block, into a differencing disk's NOT_PRESENT or
 * PARTIALLY_PRESENT block: the data goes to the block's place in the file
 * and the sectors' bits are set, so the rest of the block still reads the
 * parent.  A block whose bits are then all set becomes FULLY_PRESENT. */
static int
write_partial(struct tm_vhdx *vd, const uint8_t *p, size_t len, uint64_t off,
              uint64_t blk)
{
    uint64_t ls = vd->p.logical_sector;
    uint64_t idx = vhdx_bat_index(&vd->g, blk);
    uint64_t chunk = blk / vd->g.chunk_ratio;
    uint64_t s = off / ls - chunk * SECTORS_PER_CHUNK;
    uint64_t first, count, foff, run;
    uint8_t *m;
    bool v;
    int rc = ensure_bitmap(vd, chunk, &m);

    if (rc < 0)
        return rc;
    block_sectors(vd, blk, &first, &count);
    if (VHDX_BAT_STATE(vd->bat[idx]) == VHDX_PAYLOAD_NOT_PRESENT) {
        /* Bits a block left behind when it stopped being partial (ZERO,
         * a shrink) must not come back with it. */
        rc = bits_set(vd, chunk, first, vd->p.block_size / ls, false);
        if (rc == 0)
            rc = allocate_block(vd, blk, VHDX_PAYLOAD_PARTIALLY_PRESENT,
                                &foff);
        if (rc < 0)
            return rc;
    }
    foff = VHDX_BAT_OFF(vd->bat[idx]) + off % vd->p.block_size;
    rc = tm_io_pwrite_all(vd->io, p, len, foff);
    if (rc < 0)
        return tm_err_set_at(&vd->err, rc, foff, "cannot write: %s",
                             tm_strerror(rc));
    rc = bits_set(vd, chunk, s, len / ls, true);
    if (rc < 0 || count == 0)
        return rc;
    run = bit_run(m, first, count, &v);
    if (v && run == count)
        rc = vhdx_bat_set(vd, idx,
                          VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT,
                                         VHDX_BAT_OFF(vd->bat[idx])));
    return rc;
}

/* The start of every user-visible change of [off, off + len): checks the
 * range and the handle, and renews the GUIDs the first time.  Returns 1
 * to go ahead, 0 for an empty range, or a negative code. */
static int
begin_change(struct tm_vhdx *vd, uint64_t off, uint64_t len)
{
    int rc = check_io(vd, off, len);

    if (rc < 0)
        return rc;
    if (len == 0)
        return 0;
    rc = vhdx_begin_modify(vd, true);
    return rc < 0 ? rc : 1;
}

int
vhdx_bat_set(struct tm_vhdx *vd, uint64_t idx, uint64_t entry)
{
    int rc = mark_dirty(vd, idx);

    if (rc < 0)
        return rc;
    vd->bat[idx] = entry;
    return 0;
}

/* Writes whole logical sectors in a differencing disk, any range in
 * others. */
static int
write_blocks(struct tm_vhdx *vd, const uint8_t *p, size_t len, uint64_t off)
{
    uint64_t bs = vd->p.block_size;
    int rc;

    while (len > 0) {
        uint64_t blk = off / bs;
        uint64_t in = off % bs;
        uint64_t idx = vhdx_bat_index(&vd->g, blk);
        uint64_t e = vd->bat[idx];
        unsigned st = VHDX_BAT_STATE(e);
        size_t n = bs - in < len ? (size_t)(bs - in) : len;
        bool whole = in == 0 && (n == bs || off + n >= vd->p.virtual_size);
        uint64_t foff = 0;

        if (st == VHDX_PAYLOAD_FULLY_PRESENT) {
            foff = VHDX_BAT_OFF(e) + in;
            n = contiguous_run(vd, blk, n, len);
        } else if (is_parent_backed(vd, st) && !whole) {
            rc = write_partial(vd, p, n, off, blk);
            if (rc < 0)
                return rc;
            goto next;
        } else if (vhdx_buf_is_zero(p, n)) {
            /* Zeros into a block that reads as zeros: nothing to do
             * (UNDEFINED may read anything, and we read it as zeros).  A
             * differencing disk's whole block of zeros over the parent
             * becomes ZERO, which takes no space. */
            if (st == VHDX_PAYLOAD_NOT_PRESENT && vd->p.has_parent) {
                rc = vhdx_bat_set(vd, idx,
                                  VHDX_BAT_ENTRY(VHDX_PAYLOAD_ZERO, 0));
                if (rc < 0)
                    return rc;
            } else if (st == VHDX_PAYLOAD_PARTIALLY_PRESENT) {
                goto partial_whole;
            }
            goto next;
        } else if (st == VHDX_PAYLOAD_PARTIALLY_PRESENT) {
partial_whole:
            /* Every sector is overwritten: the block keeps its place and
             * becomes FULLY_PRESENT. */
            foff = VHDX_BAT_OFF(e);
            rc = vhdx_bat_set(vd, idx,
                              VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT,
                                             foff));
            if (rc < 0)
                return rc;
        } else {
            rc = allocate_block(vd, blk, VHDX_PAYLOAD_FULLY_PRESENT, &foff);
            if (rc < 0)
                return rc;
            foff += in;
        }
        rc = tm_io_pwrite_all(vd->io, p, n, foff);
        if (rc < 0)
            return tm_err_set_at(&vd->err, rc, foff, "cannot write: %s",
                                 tm_strerror(rc));
next:
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

int
vhdx_write_at(struct tm_vhdx *vd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    uint64_t ls = vd->p.logical_sector;
    int rc = 0;

    if (!vd->p.has_parent) {
        rc = write_blocks(vd, p, len, off);
        len = 0;
    }
    /* A differencing disk tracks whole sectors: a partial one is read
     * (through the parent where it comes from there), patched and
     * written whole. */
    while (rc == 0 && len > 0) {
        uint64_t in = off % ls;

        if (in != 0 || len < ls) {
            uint8_t sec[4096];
            size_t n = ls - in < len ? (size_t)(ls - in) : len;

            rc = read_at(vd, sec, (size_t)ls, off - in);
            if (rc < 0)
                break;
            memcpy(sec + in, p, n);
            rc = write_blocks(vd, sec, (size_t)ls, off - in);
            p += n;
            off += n;
            len -= n;
        } else {
            size_t n = len - len % ls;

            rc = write_blocks(vd, p, n, off);
            p += n;
            off += n;
            len -= n;
        }
    }
    if (rc < 0)
        return rc;
    /* Bound what a commit carries: one log entry's worth at a time. */
    if (vd->ndirty >= vhdx_log_max_updates(&vd->log))
        return vhdx_bat_commit(vd);
    return 0;
}

int
tm_vhdx_write(struct tm_vhdx *vd, const void *buf, size_t len, uint64_t off)
{
    int rc;

    tm_err_clear(&vd->err);
    rc = begin_change(vd, off, len);
    if (rc <= 0)
        return rc;
    return vhdx_write_at(vd, buf, len, off);
}

int
tm_vhdx_flush(struct tm_vhdx *vd)
{
    int rc;

    tm_err_clear(&vd->err);
    rc = vhdx_check_usable(vd, false);
    if (rc < 0)
        return rc;
    if (vd->rdonly || !vd->modified)
        return 0;
    if (vd->ndirty > 0 || vd->npunch > 0)
        return vhdx_bat_commit(vd);     /* its flushes cover the data */
    rc = tm_io_flush(vd->io);
    if (rc < 0)
        return vhdx_poison(vd, rc, "flush");
    vd->durable_size = vd->file_size;
    return 0;
}

static int
write_zeros_at(struct tm_vhdx *vd, uint64_t foff, uint64_t len)
{
    static const uint8_t zero[65536];

    while (len > 0) {
        size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);
        int rc = tm_io_pwrite_all(vd->io, zero, n, foff);

        if (rc < 0)
            return tm_err_set_at(&vd->err, rc, foff, "cannot write: %s",
                                 tm_strerror(rc));
        foff += n;
        len -= n;
    }
    return 0;
}

/* COMPAT: a block leaving the bitmap's care (ZERO, UNMAPPED) has its bits
 * cleared, so libvhdi, which consults the bitmap of every block that is
 * not FULLY_PRESENT, reads the parent there (its known deviation) rather
 * than bytes of this file.  Not needed by MS-VHDX: write_partial clears
 * them again before a block becomes partial. */
static int
clear_block_bits(struct tm_vhdx *vd, uint64_t blk)
{
    uint64_t chunk = blk / vd->g.chunk_ratio;
    uint64_t first, count;
    uint8_t *m;
    int rc;

    if (VHDX_BAT_STATE(vd->bat[vhdx_sb_index(&vd->g, chunk)]) !=
        VHDX_SB_PRESENT)
        return 0;
    rc = load_bitmap(vd, chunk, &m);
    if (rc < 0)
        return rc;
    block_sectors(vd, blk, &first, &count);
    return bits_set(vd, chunk, first,
                    vd->p.block_size / vd->p.logical_sector, false);
}

/* Zeros over a differencing disk's parent-backed range, through the
 * write path (which sets bitmap bits). */
static int
write_zero_range(struct tm_vhdx *vd, uint64_t off, uint64_t len)
{
    static const uint8_t zero[65536];

    while (len > 0) {
        size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);
        int rc = vhdx_write_at(vd, zero, n, off);

        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

int
vhdx_punch_later(struct tm_vhdx *vd, uint64_t off)
{
    if (vd->npunch == vd->punch_cap) {
        size_t cap = vd->punch_cap ? vd->punch_cap * 2 : 16;
        uint64_t *t = realloc(vd->to_punch, cap * sizeof(*t));

        if (t == NULL)
            return -ENOMEM;
        vd->to_punch = t;
        vd->punch_cap = cap;
    }
    vd->to_punch[vd->npunch++] = off;
    return 0;
}

/* Whole blocks of a dynamic or differencing disk change state (ZERO or
 * UNMAPPED, offset 0 as QEMU's notes say Hyper-V requires; both read as
 * zeros, in a child too) and give their space back after the commit;
 * everything else that holds data, or reads it from a parent, gets zeros
 * written.  A fixed disk keeps its blocks (MS-VHDX 2.5.1: a writer must
 * not move them out of FULLY_PRESENT). */
int
tm_vhdx_discard(struct tm_vhdx *vd, uint64_t off, uint64_t len,
                enum tm_vhdx_discard_mode mode)
{
    uint64_t bs;
    bool meta = false;
    int rc;

    tm_err_clear(&vd->err);
    if (mode != TM_VHDX_ZERO && mode != TM_VHDX_UNMAP)
        return tm_err_set(&vd->err, TM_E_INVALID, "unknown discard mode %d",
                          (int)mode);
    rc = begin_change(vd, off, len);
    if (rc <= 0)
        return rc;
    bs = vd->p.block_size;
    while (len > 0) {
        uint64_t blk = off / bs;
        uint64_t in = off % bs;
        uint64_t idx = vhdx_bat_index(&vd->g, blk);
        uint64_t e = vd->bat[idx];
        uint64_t n = bs - in < len ? bs - in : len;
        bool whole = in == 0 && (n == bs || off + n == vd->p.virtual_size);
        unsigned st = VHDX_BAT_STATE(e);

        if (whole && !vhdx_is_fixed(vd)) {
            unsigned want = mode == TM_VHDX_ZERO ? VHDX_PAYLOAD_ZERO
                                                 : VHDX_PAYLOAD_UNMAPPED;

            if (st != want) {
                if (st == VHDX_PAYLOAD_FULLY_PRESENT ||
                    (vd->p.has_parent &&
                     st == VHDX_PAYLOAD_PARTIALLY_PRESENT)) {
                    rc = vhdx_punch_later(vd, VHDX_BAT_OFF(e));
                    if (rc < 0)
                        return rc;
                }
                rc = vhdx_bat_set(vd, idx, VHDX_BAT_ENTRY(want, 0));
                if (rc == 0 && vd->p.has_parent)
                    rc = clear_block_bits(vd, blk);
                if (rc < 0)
                    return rc;
                meta = true;
            }
        } else if (st == VHDX_PAYLOAD_FULLY_PRESENT) {
            rc = write_zeros_at(vd, VHDX_BAT_OFF(e) + in, n);
            if (rc < 0)
                return rc;
        } else if (is_parent_backed(vd, st)) {
            rc = write_zero_range(vd, off, n);
            if (rc < 0)
                return rc;
        }
        off += n;
        len -= n;
    }
    /* The new states must be durable before their old space is punched;
     * committing now also keeps the punch list short. */
    if (meta)
        return vhdx_bat_commit(vd);
    return 0;
}

/* The status of the run at 'off' (at most 'len' bytes, inside one
 * block): its length and whether it may hold non-zero data. */
static int
status_at(struct tm_vhdx *vd, uint64_t off, uint64_t len, uint64_t *run,
          bool *allocated)
{
    uint64_t bs = vd->p.block_size;
    uint64_t n = bs - off % bs < len ? bs - off % bs : len;
    unsigned st = VHDX_BAT_STATE(block_entry(vd, off / bs));
    struct tm_vhdx *pa = vd->parent;
    int rc;

    *run = n;
    *allocated = st == VHDX_PAYLOAD_FULLY_PRESENT ||
                 st == VHDX_PAYLOAD_PARTIALLY_PRESENT;
    if (!vd->p.has_parent || st != VHDX_PAYLOAD_NOT_PRESENT)
        return 0;
    if (pa == NULL) {
        *allocated = true;              /* unknown: may hold data */
        return 0;
    }
    *allocated = false;
    if (off >= pa->p.virtual_size)
        return 0;
    if (n > pa->p.virtual_size - off)
        n = pa->p.virtual_size - off;
    rc = tm_vhdx_block_status(pa, off, n, run, allocated);
    if (rc < 0) {
        vd->err = pa->err;
        return rc;
    }
    return 0;
}

int
tm_vhdx_block_status(struct tm_vhdx *vd, uint64_t off, uint64_t len,
                     uint64_t *run_len, bool *allocated)
{
    uint64_t run = 0;
    bool first;
    int rc;

    *run_len = 0;
    *allocated = false;
    tm_err_clear(&vd->err);
    rc = check_io(vd, off, len);
    if (rc < 0)
        return rc;
    if (len == 0)
        return 0;
    rc = status_at(vd, off, len, &run, &first);
    while (rc == 0 && run < len) {
        uint64_t n;
        bool a;

        rc = status_at(vd, off + run, len - run, &n, &a);
        if (rc < 0 || a != first)
            break;
        run += n;
    }
    if (rc < 0)
        return rc;
    *run_len = run < len ? run : len;
    *allocated = first;
    return 0;
}

int
vhdx_defined_mask(struct tm_vhdx *vd, uint64_t off, uint64_t len,
                  uint8_t *mask)
{
    uint64_t ls = vd->p.logical_sector;
    uint64_t bs = vd->p.block_size;
    uint64_t i = 0;                     /* sector index into mask */

    while (len > 0) {
        uint64_t blk = off / bs;
        uint64_t n = bs - off % bs < len ? bs - off % bs : len;
        uint64_t e = blk < vd->g.payload_blocks ? block_entry(vd, blk) : 0;
        unsigned st = VHDX_BAT_STATE(e);
        uint64_t ns = n / ls;

        if (st == VHDX_PAYLOAD_PARTIALLY_PRESENT && vd->p.has_parent) {
            uint64_t chunk = blk / vd->g.chunk_ratio;
            uint64_t s = off / ls - chunk * SECTORS_PER_CHUNK;
            uint8_t *m;
            int rc = load_bitmap(vd, chunk, &m);

            if (rc < 0)
                return rc;
            for (uint64_t k = 0; k < ns; k++)
                if (bit_get(m, s + k))
                    mask[(i + k) >> 3] |= (uint8_t)(1u << ((i + k) & 7));
        } else if (st != VHDX_PAYLOAD_NOT_PRESENT ||
                   (!vd->p.has_parent && blk < vd->g.payload_blocks)) {
            for (uint64_t k = 0; k < ns; k++)
                mask[(i + k) >> 3] |= (uint8_t)(1u << ((i + k) & 7));
        }
        i += ns;
        off += n;
        len -= n;
    }
    return 0;
}
