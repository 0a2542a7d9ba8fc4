/* SPDX-License-Identifier: MIT */
/* engine.h - the state of an open VHDX, shared by the engine's files:
 * open.c (open, create, close, header updates), rw.c (read, write,
 * discard, flush, the BAT), check.c (check, dump, info). */
#ifndef TM_VHDX_ENGINE_H
#define TM_VHDX_ENGINE_H

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
    /* File ranges to punch once the BAT no longer points at them. */
    uint64_t *to_punch;
    size_t npunch;
    size_t punch_cap;
};

/* open.c */
int vhdx_begin_modify(struct tm_vhdx *vd, bool user_visible);
int vhdx_header_update(struct tm_vhdx *vd, bool new_data_guid,
                       const struct tm_guid *log_guid);
int vhdx_poison(struct tm_vhdx *vd, int rc, const char *what);
bool vhdx_is_fixed(const struct tm_vhdx *vd);

/* rw.c */
int vhdx_bat_load(struct tm_vhdx *vd, uint64_t file_size);
int vhdx_bat_commit(struct tm_vhdx *vd);

#endif
