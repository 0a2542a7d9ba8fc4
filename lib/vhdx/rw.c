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

static bool
is_payload_index(const struct vhdx_geometry *g, uint64_t idx)
{
    return (idx + 1) % (g->chunk_ratio + 1) != 0;
}

/* Reads the BAT and validates every entry the disk uses: states allowed
 * for this kind of file, offsets 1 MiB aligned, blocks starting inside
 * the file and overlapping neither each other nor the other structures.
 * COMPAT: a last block that starts inside the file but runs past its end
 * is accepted (older QEMU wrote such files); reads past EOF give zeros. */
int
vhdx_bat_load(struct tm_vhdx *vd, uint64_t file_size)
{
    const struct vhdx_geometry *g = &vd->g;
    uint64_t need_bytes = g->bat_entries_min * 8;
    uint64_t have = vd->bat_len / 8;
    uint64_t nread;
    uint64_t *offs = NULL;
    size_t noffs = 0;
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
        if (VHDX_BAT_STATE(vd->bat[i]) == VHDX_PAYLOAD_FULLY_PRESENT)
            noffs++;
    offs = malloc((noffs + 1) * sizeof(*offs));
    if (offs == NULL)
        return -ENOMEM;
    noffs = 0;
    for (uint64_t i = 0; i < nread; i++) {
        uint64_t e = vd->bat[i];
        unsigned st = VHDX_BAT_STATE(e);
        uint64_t off = VHDX_BAT_OFF(e);

        if (!is_payload_index(g, i)) {
            if (st == VHDX_SB_NOT_PRESENT)
                continue;
            if (st == VHDX_SB_PRESENT) {
                /* Meaningless without a parent; a dynamic disk must not
                 * carry one, but it does not change what we read. */
                rc = tm_err_set_at(&vd->err, TM_E_CORRUPT,
                                   vd->bat_off + i * 8,
                                   "BAT entry %" PRIu64 ": sector bitmap "
                                   "block present in a disk without a "
                                   "parent", i);
                goto out;
            }
            rc = tm_err_set_at(&vd->err, TM_E_CORRUPT, vd->bat_off + i * 8,
                               "BAT entry %" PRIu64 ": invalid sector "
                               "bitmap state %u", i, st);
            goto out;
        }
        if (i - i / (g->chunk_ratio + 1) >= g->payload_blocks)
            continue;                   /* past the last block: unused */
        switch (st) {
        case VHDX_PAYLOAD_NOT_PRESENT:
        case VHDX_PAYLOAD_UNDEFINED:
        case VHDX_PAYLOAD_ZERO:
        case VHDX_PAYLOAD_UNMAPPED:
        case VHDX_PAYLOAD_UNMAPPED_V095:
            continue;
        case VHDX_PAYLOAD_FULLY_PRESENT:
            break;
        case VHDX_PAYLOAD_PARTIALLY_PRESENT:
            rc = tm_err_set_at(&vd->err, TM_E_CORRUPT, vd->bat_off + i * 8,
                               "BAT entry %" PRIu64 ": block partially "
                               "present in a disk without a parent", i);
            goto out;
        default:
            rc = tm_err_set_at(&vd->err, TM_E_CORRUPT, vd->bat_off + i * 8,
                               "BAT entry %" PRIu64 ": invalid block state "
                               "%u", i, st);
            goto out;
        }
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
        offs[noffs++] = off;
    }

    /* No two blocks may share file space, and none may overlap the log,
     * the BAT or the metadata. */
    qsort(offs, noffs, sizeof(*offs), cmp_u64);
    for (size_t k = 0; k < noffs; k++) {
        uint64_t off = offs[k];
        uint64_t bs = vd->p.block_size;
        const char *what = NULL;

        if (k + 1 < noffs && offs[k + 1] < off + bs)
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
    free(offs);
    return rc;
}

/* Records that the BAT sector holding entry 'idx' must be committed. */
static int
mark_dirty(struct tm_vhdx *vd, uint64_t idx)
{
    uint64_t sec = idx / BAT_PER_SECTOR;

    if (vd->ndirty > 0 && vd->dirty[vd->ndirty - 1] == sec)
        return 0;
    if (vd->ndirty == vd->dirty_cap) {
        size_t cap = vd->dirty_cap ? vd->dirty_cap * 2 : 64;
        uint64_t *d = realloc(vd->dirty, cap * sizeof(*d));

        if (d == NULL)
            return -ENOMEM;
        vd->dirty = d;
        vd->dirty_cap = cap;
    }
    vd->dirty[vd->ndirty++] = sec;
    return 0;
}

/* Puts every dirty BAT sector in place through the log, then punches the
 * file space of blocks the BAT no longer references.  CRASH: the punch
 * comes after the commit, so a crash never leaves an entry pointing at a
 * hole it did not ask for. */
int
vhdx_bat_commit(struct tm_vhdx *vd)
{
    struct vhdx_log_update *u = NULL;
    uint8_t *secs = NULL;
    size_t n = 0;
    int rc = 0;

    if (vd->ndirty > 0) {
        qsort(vd->dirty, vd->ndirty, sizeof(*vd->dirty), cmp_u64);
        u = malloc(vd->ndirty * sizeof(*u));
        secs = malloc(vd->ndirty * (size_t)VHDX_LOG_SECTOR);
        if (u == NULL || secs == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < vd->ndirty; i++) {
            uint64_t sec = vd->dirty[i];
            uint8_t *p = secs + n * VHDX_LOG_SECTOR;

            if (n > 0 && vd->dirty[i - 1] == sec)
                continue;
            for (unsigned k = 0; k < BAT_PER_SECTOR; k++) {
                uint64_t idx = sec * BAT_PER_SECTOR + k;

                tm_put_le64(p + k * 8, idx < vd->bat_count ? vd->bat[idx] : 0);
            }
            u[n].file_off = vd->bat_off + sec * VHDX_LOG_SECTOR;
            u[n].len = VHDX_LOG_SECTOR;
            u[n].data = p;
            n++;
        }
        rc = vhdx_log_commit(&vd->log, u, n, vd->durable_size, vd->file_end);
        if (rc < 0) {
            rc = vhdx_poison(vd, rc, "BAT update through the log");
            goto out;
        }
        vd->durable_size = vd->file_size;
        vd->ndirty = 0;
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
    if (!vd->is_open)
        return tm_err_set(&vd->err, TM_E_INVALID, "the handle is not open");
    if (vd->poisoned)
        return tm_err_set(&vd->err, TM_E_POISONED,
                          "an earlier write failed; reopen the file");
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

/* Reads file bytes; what lies past the end of the file reads as zeros
 * (COMPAT: a last block that runs past EOF). */
static int
read_file(struct tm_vhdx *vd, uint8_t *buf, size_t len, uint64_t off)
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

int
tm_vhdx_read(struct tm_vhdx *vd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    uint64_t bs;
    int rc;

    tm_err_clear(&vd->err);
    rc = check_io(vd, off, len);
    if (rc < 0)
        return rc;
    bs = vd->p.block_size;
    while (len > 0) {
        uint64_t blk = off / bs;
        uint64_t in = off % bs;
        uint64_t e = block_entry(vd, blk);
        size_t n = bs - in < len ? (size_t)(bs - in) : len;

        if (VHDX_BAT_STATE(e) != VHDX_PAYLOAD_FULLY_PRESENT) {
            memset(p, 0, n);
        } else {
            uint64_t foff = VHDX_BAT_OFF(e) + in;

            n = contiguous_run(vd, blk, n, len);
            rc = read_file(vd, p, n, foff);
            if (rc < 0)
                return rc;
        }
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Gives block 'blk' file space at the end of the file: in memory now,
 * on disk at the next commit. */
static int
allocate_block(struct tm_vhdx *vd, uint64_t blk, uint64_t *file_off)
{
    uint64_t idx = vhdx_bat_index(&vd->g, blk);
    uint64_t off = vd->file_end;
    uint64_t end = off + vd->p.block_size;
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
    rc = mark_dirty(vd, idx);
    if (rc < 0)
        return rc;
    vd->bat[idx] = VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, off);
    vd->file_end = end;
    *file_off = off;
    return 0;
}

static bool
buf_is_zero(const uint8_t *p, size_t n)
{
    if (n == 0)
        return true;
    if (p[0] != 0)
        return false;
    return memcmp(p, p + 1, n - 1) == 0;
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

int
vhdx_write_at(struct tm_vhdx *vd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    uint64_t bs = vd->p.block_size;
    int rc;

    while (len > 0) {
        uint64_t blk = off / bs;
        uint64_t in = off % bs;
        uint64_t e = block_entry(vd, blk);
        size_t n = bs - in < len ? (size_t)(bs - in) : len;
        uint64_t foff = 0;

        if (VHDX_BAT_STATE(e) == VHDX_PAYLOAD_FULLY_PRESENT) {
            foff = VHDX_BAT_OFF(e) + in;
            n = contiguous_run(vd, blk, n, len);
        } else if (buf_is_zero(p, n)) {
            /* Zeros into a block that reads as zeros: nothing to do.
             * (UNDEFINED may read anything, and we read it as zeros.) */
            goto next;
        } else {
            rc = allocate_block(vd, blk, &foff);
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
    if (!vd->is_open)
        return tm_err_set(&vd->err, TM_E_INVALID, "the handle is not open");
    if (vd->poisoned)
        return tm_err_set(&vd->err, TM_E_POISONED,
                          "an earlier write failed; reopen the file");
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

/* Whole blocks of a dynamic disk change state (ZERO or UNMAPPED, offset
 * 0 as QEMU's notes say Hyper-V requires) and give their space back after
 * the commit; everything else that holds data gets zeros written.  A
 * fixed disk keeps its blocks (MS-VHDX 2.5.1: a writer must not move them
 * out of FULLY_PRESENT). */
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
                if (st == VHDX_PAYLOAD_FULLY_PRESENT) {
                    if (vd->npunch == vd->punch_cap) {
                        size_t cap = vd->punch_cap ? vd->punch_cap * 2 : 16;
                        uint64_t *t = realloc(vd->to_punch,
                                              cap * sizeof(*t));

                        if (t == NULL)
                            return -ENOMEM;
                        vd->to_punch = t;
                        vd->punch_cap = cap;
                    }
                    vd->to_punch[vd->npunch++] = VHDX_BAT_OFF(e);
                }
                rc = mark_dirty(vd, idx);
                if (rc < 0)
                    return rc;
                vd->bat[idx] = VHDX_BAT_ENTRY(want, 0);
                meta = true;
            }
        } else if (st == VHDX_PAYLOAD_FULLY_PRESENT) {
            rc = write_zeros_at(vd, VHDX_BAT_OFF(e) + in, n);
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

int
tm_vhdx_block_status(struct tm_vhdx *vd, uint64_t off, uint64_t len,
                     uint64_t *run_len, bool *allocated)
{
    uint64_t bs, run = 0;
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
    bs = vd->p.block_size;
    first = VHDX_BAT_STATE(block_entry(vd, off / bs)) ==
            VHDX_PAYLOAD_FULLY_PRESENT;
    while (run < len) {
        uint64_t o = off + run;
        uint64_t n = bs - o % bs;
        bool a = VHDX_BAT_STATE(block_entry(vd, o / bs)) ==
                 VHDX_PAYLOAD_FULLY_PRESENT;

        if (a != first)
            break;
        run += n;
    }
    *run_len = run < len ? run : len;
    *allocated = first;
    return 0;
}
