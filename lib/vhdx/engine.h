/* SPDX-License-Identifier: MIT */
/* engine.h - the state of an open VHDX, shared by the engine's files:
 * open.c (open, create, close, header updates), rw.c (read, write,
 * discard, flush, the BAT, sector bitmaps), check.c (check, dump, info),
 * chain.c (paths and parents), meta.c (metadata rewrites), resize.c,
 * optimize.c and merge.c. */
#ifndef TM_VHDX_ENGINE_H
#define TM_VHDX_ENGINE_H

#include <string.h>

#include "vhdx.h"
#include "vhdx_int.h"

struct tm_vhdx {
    struct tm_err err;
    struct tm_io *io;           /* the file; owned */
    struct tm_io *rd;           /* reads: io, or overlay after RO replay */
    struct tm_io *overlay;      /* owned, or NULL */
    bool is_open;
    bool rdonly;
    bool poisoned;
    bool log_replayed;
    bool have_next_dwg;         /* the next new DataWriteGuid is next_dwg */
    struct tm_guid next_dwg;

    struct vhdx_header hdr;     /* the current header */
    unsigned hdr_slot;          /* 0 or 1: where hdr lives */
    char creator[256];
    struct vhdx_region_table *rt;
    struct vhdx_meta_table *mt;
    uint64_t bat_off;
    uint32_t bat_len;
    uint64_t meta_off;
    uint32_t meta_len;
    struct vhdx_params p;
    struct vhdx_geometry g;

    uint64_t *bat;              /* g.bat_entries_write entries */
    uint64_t bat_count;

    /* Writing. */
    bool modified;              /* FileWriteGuid renewed in this open */
    bool data_changed;          /* DataWriteGuid renewed in this open */
    bool log_ready;             /* header carries our LogGuid */
    struct vhdx_log log;
    uint64_t file_end;          /* next block goes here; 1 MiB aligned */
    uint64_t durable_size;      /* file size at the last completed flush */
    uint64_t file_size;         /* file size as we last set it */
    /* BAT sectors (4 KiB, BAT-relative index) changed in memory and not
     * yet committed through the log, sorted on commit. */
    uint64_t *dirty;
    size_t ndirty;
    size_t dirty_cap;
    /* One bit per metadata sector: already in 'dirty' (BAT sector s at
     * bit 2s, bitmap sector c * 256 + k at bit 2(c * 256 + k) + 1), so
     * random writes that keep touching the same sectors count each once
     * towards a log entry's worth. */
    uint8_t *dirty_seen;
    size_t dirty_seen_len;
    /* File ranges to punch once the BAT no longer points at them. */
    uint64_t *to_punch;
    size_t npunch;
    size_t punch_cap;

    /* Differencing. */
    char *path;                 /* from tm_vhdx_open_path; owned */
    struct tm_vhdx_locator *loc;        /* decoded locator; owned */
    struct tm_vhdx *parent;     /* attached parent; owned */
    /* Per chunk (g.bitmap_blocks of them): its sector bitmap, 1 MiB,
     * loaded on first use; NULL = not loaded.  Bits set in memory reach
     * the file through the log with the BAT (dirty entries tagged
     * DIRTY_SB). */
    uint8_t **sbm;
    uint64_t sbm_count;
};

/* A dirty entry names a 4 KiB metadata sector to commit: a BAT sector
 * (BAT-relative index) or, tagged, sector k of chunk c's bitmap
 * (c * 256 + k). */
#define VHDX_DIRTY_SB (1ull << 63)
#define VHDX_SB_SECTORS (VHDX_MiB / VHDX_LOG_SECTOR)

static inline bool
vhdx_is_sb_index(const struct vhdx_geometry *g, uint64_t idx)
{
    return (idx + 1) % (g->chunk_ratio + 1) == 0;
}

/* The file space BAT entry 'idx' references: a block for a present
 * payload block (FULLY or PARTIALLY_PRESENT, inside the disk), 1 MiB for
 * a present sector bitmap, else 0. */
static inline uint64_t
vhdx_entry_space(const struct vhdx_geometry *g, const struct vhdx_params *p,
                 uint64_t idx, uint64_t e)
{
    unsigned st = VHDX_BAT_STATE(e);

    if (vhdx_is_sb_index(g, idx))
        return p->has_parent && st == VHDX_SB_PRESENT ? VHDX_MiB : 0;
    if (idx - idx / (g->chunk_ratio + 1) >= g->payload_blocks)
        return 0;
    if (st == VHDX_PAYLOAD_FULLY_PRESENT ||
        (p->has_parent && st == VHDX_PAYLOAD_PARTIALLY_PRESENT))
        return p->block_size;
    return 0;
}

/* One metadata item to set by vhdx_meta_rewrite. */
struct vhdx_meta_item {
    struct tm_guid id;          /* a system item (IsUser = 0) */
    const uint8_t *data;        /* NULL with len 0: remove the item */
    uint32_t len;
    bool is_virtual_disk;       /* flags for an item that is new */
    bool is_required;
};

/* open.c */
int vhdx_begin_modify(struct tm_vhdx *vd, bool user_visible);
int vhdx_header_update(struct tm_vhdx *vd, bool new_data_guid,
                       const struct tm_guid *log_guid);
int vhdx_poison(struct tm_vhdx *vd, int rc, const char *what);
bool vhdx_is_fixed(const struct tm_vhdx *vd);
/* Frees everything an open handle holds (parents too) without flushing;
 * the handle stays allocated, not open. */
void vhdx_release(struct tm_vhdx *vd);

/* Refuses a handle that is not open or poisoned (TM_E_INVALID,
 * TM_E_POISONED), and with 'write' one opened read-only: the opening
 * checks of every call. */
int vhdx_check_usable(struct tm_vhdx *vd, bool write);

static inline bool
vhdx_buf_is_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* rw.c */
int vhdx_bat_load(struct tm_vhdx *vd, uint64_t file_size);
/* Reads file bytes through vd->rd; past the end of the file reads zeros
 * (COMPAT: a last block that runs past EOF). */
int vhdx_read_file(struct tm_vhdx *vd, uint8_t *buf, size_t len,
                   uint64_t off);
/* Queues file space for the next vhdx_bat_commit to punch after its
 * commit, once no durable entry references it. */
int vhdx_punch_later(struct tm_vhdx *vd, uint64_t off);
int vhdx_bat_commit(struct tm_vhdx *vd);
/* Sets BAT entry 'idx' in memory and marks its sector for the next
 * commit. */
int vhdx_bat_set(struct tm_vhdx *vd, uint64_t idx, uint64_t entry);
/* tm_vhdx_write without the virtual-size check and GUID renewal: for
 * maintenance that writes inside the current geometry's blocks (the tail
 * of the last block, past the virtual size).  The caller has called
 * vhdx_begin_modify. */
int vhdx_write_at(struct tm_vhdx *vd, const void *buf, size_t len,
                  uint64_t off);

/* Sets bit i of 'mask' for every logical sector i of sector-aligned
 * [off, off + len) that this file defines itself (whatever its parent
 * holds): every sector of a disk without a parent (inside its size), and
 * in a differencing disk every sector of a block that is not NOT_PRESENT,
 * except the clear bits of a PARTIALLY_PRESENT one.  Bits are OR-ed in. */
int vhdx_defined_mask(struct tm_vhdx *vd, uint64_t off, uint64_t len,
                      uint8_t *mask);

/* open.c: gives the file DataWriteGuid 'g' now (merge: the value its
 * child's parent_linkage2 already names). */
int vhdx_set_data_write_guid(struct tm_vhdx *vd, const struct tm_guid *g);

/* meta.c: replaces the listed system items (adding those the table lacks,
 * removing those with data NULL), keeps every other item as it is,
 * re-packs the items from 64 KiB and writes table and items through the
 * log in one entry, so a crash leaves the old metadata or the new.  Then
 * re-reads vd->mt and vd->p from what was written.  TM_E_UNSUPPORTED when
 * the result does not fit the region or one log entry. */
int vhdx_meta_rewrite(struct tm_vhdx *vd, const struct vhdx_meta_item *set,
                      size_t n);

/* meta.c: vhdx_meta_rewrite, and with 'rt' non-NULL both region-table
 * copies set to 'rt' in the same log entry (resize's BAT move).  The
 * metadata region must not move.  Afterwards vd->rt, vd->bat_off and
 * vd->bat_len follow 'rt'; the caller updates what depends on the BAT
 * (vd->bat, vd->g). */
int vhdx_meta_rewrite_rt(struct tm_vhdx *vd, const struct vhdx_meta_item *set,
                         size_t n, const struct vhdx_region_table *rt);

/* resize.c: truncates the file after the last referenced byte (rounded
 * up to 1 MiB), crash safe: an empty log entry recording the new size is
 * made durable first, so a replay never finds the file shorter than its
 * log says.  Nothing may be pending (dirty BAT sectors, punches). */
int vhdx_truncate_unused(struct tm_vhdx *vd);

/* locator.c: the parent locator item and the path forms it stores. */
int vhdx_locator_decode(const uint8_t *buf, size_t len,
                        struct tm_vhdx_locator *out, struct tm_err *err);
int vhdx_locator_encode(const struct tm_vhdx_locator *loc, uint8_t **buf,
                        size_t *len);
void vhdx_locator_free(struct tm_vhdx_locator *loc);    /* the strings */
int vhdx_locator_copy(struct tm_vhdx_locator *dst,
                      const struct tm_vhdx_locator *src);
int vhdx_path_relative_win(const char *child_path, const char *parent_path,
                           char **out);
int vhdx_path_absolute_win(const char *path, char **out);
int vhdx_path_from_relative(const char *child_path, const char *rel,
                            char **out);
int vhdx_path_from_absolute(const char *abs, char **out);

#endif
