/* SPDX-License-Identifier: MIT */
/* vhdx_int.h - what the files of lib/vhdx share: on-disk constants, the
 * decoded forms of each structure with their decode/encode functions
 * (format.c), and the log (log.c).
 *
 * Decoders are pure functions of (buf, len): they validate every field,
 * never modify the input, and return 0 or TM_E_CORRUPT / TM_E_UNSUPPORTED
 * with a message in *err.  Encoders write canonical little-endian bytes
 * and compute the checksum. */
#ifndef TM_VHDX_INT_H
#define TM_VHDX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"

#define VHDX_MiB ((uint64_t)1024 * 1024)

/* MS-VHDX 2.1: the header section, first 1 MiB. */
#define VHDX_FTI_OFF 0x00000u
#define VHDX_FTI_BYTES 0x10000u
#define VHDX_HEADER1_OFF 0x10000u
#define VHDX_HEADER2_OFF 0x20000u
#define VHDX_HEADER_BYTES 4096u
#define VHDX_RT1_OFF 0x30000u
#define VHDX_RT2_OFF 0x40000u
#define VHDX_RT_BYTES 0x10000u
#define VHDX_HEADER_SECTION_BYTES 0x100000u
#define VHDX_MAX_REGIONS 2047u
#define VHDX_METADATA_TABLE_BYTES 0x10000u
#define VHDX_MAX_META_ENTRIES 2047u
#define VHDX_MAX_META_ITEM_BYTES 0x100000u
#define VHDX_MAX_USER_META 1024u
#define VHDX_LOG_SECTOR 4096u
#define VHDX_CREATOR_BYTES 512u         /* UTF-16LE, after "vhdxfile" */

/* BAT entry states (MS-VHDX 2.5.1). */
enum {
    VHDX_PAYLOAD_NOT_PRESENT = 0,
    VHDX_PAYLOAD_UNDEFINED = 1,
    VHDX_PAYLOAD_ZERO = 2,
    VHDX_PAYLOAD_UNMAPPED = 3,
    VHDX_PAYLOAD_UNMAPPED_V095 = 5,     /* COMPAT: 2012 draft; QEMU too */
    VHDX_PAYLOAD_FULLY_PRESENT = 6,
    VHDX_PAYLOAD_PARTIALLY_PRESENT = 7,
    VHDX_SB_NOT_PRESENT = 0,
    VHDX_SB_PRESENT = 6,
};
#define VHDX_BAT_STATE(e) ((unsigned)((e) & 7u))
#define VHDX_BAT_OFF(e) ((uint64_t)((e) & 0xFFFFFFFFFFF00000ull))
#define VHDX_BAT_RESERVED(e) ((uint64_t)((e) & 0x00000000000FFFF8ull))
#define VHDX_BAT_ENTRY(state, off) ((uint64_t)(off) | (uint64_t)(state))

/* Well-known GUIDs, in on-disk byte order (format.c). */
extern const struct tm_guid VHDX_GUID_BAT;
extern const struct tm_guid VHDX_GUID_METADATA;
extern const struct tm_guid VHDX_GUID_FILE_PARAMS;
extern const struct tm_guid VHDX_GUID_VIRTUAL_SIZE;
extern const struct tm_guid VHDX_GUID_VIRTUAL_DISK_ID;
extern const struct tm_guid VHDX_GUID_LOGICAL_SECTOR;
extern const struct tm_guid VHDX_GUID_PHYSICAL_SECTOR;
extern const struct tm_guid VHDX_GUID_PARENT_LOCATOR;
extern const struct tm_guid VHDX_GUID_LOCATOR_TYPE_VHDX;

/* ---- file type identifier (MS-VHDX 2.2.1) ------------------------------ */

/* Checks the "vhdxfile" signature; converts the UTF-16LE creator to
 * UTF-8 (lossy for unpaired surrogates) into creator[cap]. */
int vhdx_fti_decode(const uint8_t *buf, size_t len, char *creator,
                    size_t cap, struct tm_err *err);
/* Fills 64 KiB: signature and 'creator' (ASCII/UTF-8) as UTF-16LE. */
void vhdx_fti_encode(const char *creator, uint8_t *buf /* 64 KiB */);

/* ---- headers (MS-VHDX 2.2.2) ------------------------------------------- */

struct vhdx_header {
    uint64_t seq;
    struct tm_guid file_write_guid;
    struct tm_guid data_write_guid;
    struct tm_guid log_guid;
    uint16_t log_version;
    uint16_t version;
    uint32_t log_length;
    uint64_t log_offset;
};

/* Validates signature and checksum over the 4 KiB (len >= 4096), Version
 * == 1, LogVersion == 0 unless LogGuid is zero, log length/offset 1 MiB
 * multiples with the log at or past 1 MiB. */
int vhdx_header_decode(const uint8_t *buf, size_t len,
                       struct vhdx_header *h, struct tm_err *err);
void vhdx_header_encode(const struct vhdx_header *h,
                        uint8_t *buf /* 4096 */);

/* Picks the current header of two (either may be NULL = invalid):
 * returns 0 or 1, or TM_E_CORRUPT when neither is valid or both are valid
 * with equal sequence numbers but different contents.  COMPAT: equal
 * sequence numbers with identical contents are accepted (Disk2vhd). */
int vhdx_header_pick(const struct vhdx_header *h0,
                     const struct vhdx_header *h1, struct tm_err *err);

/* ---- region table (MS-VHDX 2.2.3) -------------------------------------- */

struct vhdx_region {
    struct tm_guid guid;
    uint64_t file_off;
    uint32_t len;
    bool required;
};

struct vhdx_region_table {
    uint32_t count;
    struct vhdx_region e[VHDX_MAX_REGIONS];
};

/* Validates signature, checksum over 64 KiB, count <= 2047, each entry's
 * offset (1 MiB multiple, >= 1 MiB) and length (1 MiB multiple, > 0), no
 * two entries overlapping, no duplicate GUID, both BAT and metadata
 * present.  Unknown required regions give TM_E_UNSUPPORTED naming the
 * GUID. */
int vhdx_region_table_decode(const uint8_t *buf, size_t len,
                             struct vhdx_region_table *rt,
                             struct tm_err *err);
void vhdx_region_table_encode(const struct vhdx_region_table *rt,
                              uint8_t *buf /* 64 KiB */);
const struct vhdx_region *
vhdx_region_find(const struct vhdx_region_table *rt,
                 const struct tm_guid *g);

/* ---- metadata (MS-VHDX 2.6) -------------------------------------------- */

struct vhdx_meta_entry {
    struct tm_guid id;
    uint32_t off;               /* from the region start */
    uint32_t len;
    bool is_user;
    bool is_virtual_disk;
    bool is_required;
};

struct vhdx_meta_table {
    uint16_t count;
    struct vhdx_meta_entry e[VHDX_MAX_META_ENTRIES];
};

/* Validates the table (first 64 KiB of the region; region_len is the
 * region's length): signature, count <= 2047, items at region offset >=
 * 64 KiB, inside the region, <= 1 MiB, not overlapping, (id, is_user)
 * unique, offset 0 iff length 0, at most 1024 user items.  Unknown
 * required system items give TM_E_UNSUPPORTED naming the GUID. */
int vhdx_meta_table_decode(const uint8_t *buf, size_t len,
                           uint32_t region_len, struct vhdx_meta_table *mt,
                           struct tm_err *err);
void vhdx_meta_table_encode(const struct vhdx_meta_table *mt,
                            uint8_t *buf /* 64 KiB */);
const struct vhdx_meta_entry *
vhdx_meta_find(const struct vhdx_meta_table *mt, const struct tm_guid *id,
               bool is_user);

/* The system items, decoded and validated together. */
struct vhdx_params {
    uint32_t block_size;        /* power of two, 1..256 MiB */
    bool leave_block_allocated;
    bool has_parent;
    uint64_t virtual_size;      /* multiple of logical_sector, <= 64 TiB */
    struct tm_guid virtual_disk_id;
    uint32_t logical_sector;    /* 512 or 4096 */
    uint32_t physical_sector;   /* 512 or 4096 */
};

/* Item payload codecs; each takes the item's bytes. */
int vhdx_file_params_decode(const uint8_t *buf, size_t len,
                            struct vhdx_params *p, struct tm_err *err);
void vhdx_file_params_encode(const struct vhdx_params *p,
                             uint8_t *buf /* 8 */);
int vhdx_u64_item_decode(const uint8_t *buf, size_t len, uint64_t *v,
                         struct tm_err *err);   /* virtual size */
int vhdx_u32_item_decode(const uint8_t *buf, size_t len, uint32_t *v,
                         struct tm_err *err);   /* sector sizes */
/* Cross-field checks once all items are decoded. */
int vhdx_params_validate(const struct vhdx_params *p, struct tm_err *err);

/* ---- BAT geometry (MS-VHDX 2.5) ---------------------------------------- */

struct vhdx_geometry {
    uint64_t chunk_ratio;       /* R: payload blocks per sector bitmap */
    uint64_t payload_blocks;    /* PB */
    uint64_t bitmap_blocks;     /* SB */
    uint64_t bat_entries_write; /* SB * (R + 1): what we write */
    uint64_t bat_entries_min;   /* PB + (PB - 1) / R: what we accept */
};

void vhdx_geometry(const struct vhdx_params *p, struct vhdx_geometry *g);

static inline uint64_t
vhdx_bat_index(const struct vhdx_geometry *g, uint64_t block)
{
    return block + block / g->chunk_ratio;
}

static inline uint64_t
vhdx_sb_index(const struct vhdx_geometry *g, uint64_t chunk)
{
    return chunk * (g->chunk_ratio + 1) + g->chunk_ratio;
}

/* ---- the log (MS-VHDX 2.3) --------------------------------------------- */

/* One 4 KiB sector to put in place through the log (a data descriptor),
 * or, with data == NULL, a run of zeros of 'len' bytes (a zero
 * descriptor; len a multiple of 4 KiB). */
struct vhdx_log_update {
    uint64_t file_off;          /* multiple of 4 KiB */
    uint64_t len;               /* 4096 for data; any 4 KiB multiple */
    const uint8_t *data;        /* 4096 bytes, or NULL for zeros */
};

/* What a replay found: whether there was an active sequence, its head
 * and length, and the file sizes its head entry recorded. */
struct vhdx_log_replay_result {
    bool replayed;              /* an active sequence was found */
    uint64_t head_seq;
    uint64_t entries;           /* entries in the active sequence */
    uint64_t flushed_file_off;
    uint64_t last_file_off;
};

/* MS-VHDX 2.3.3: finds the active sequence of the log described by *h
 * (LogGuid zero => nothing to do, returns 0 with replayed = false) in
 * 'io' and applies it to 'dst' (which may be 'io' itself for a read-write
 * open, or an overlay over it for a read-only one), extending dst to
 * LastFileOffset; does not flush.  TM_E_CORRUPT when LogGuid is non-zero
 * and no valid sequence exists; TM_E_TRUNCATED when the file is shorter
 * than FlushedFileOffset. */
int vhdx_log_replay(struct tm_io *io, struct tm_io *dst,
                    const struct vhdx_header *h,
                    struct vhdx_log_replay_result *res, struct tm_err *err);

/* Calls 'fn' for every entry whose signature and checksum are valid, for
 * 'vhd dump' (whatever its GUID). */
struct vhdx_log_entry_info {
    uint64_t log_off;           /* log-relative */
    uint64_t seq;
    uint32_t entry_length;
    uint32_t tail;
    uint32_t descriptor_count;
    struct tm_guid log_guid;
    uint64_t flushed_file_off;
    uint64_t last_file_off;
};
int vhdx_log_scan(struct tm_io *io, uint64_t log_off, uint32_t log_len,
                  void (*fn)(void *user, const struct vhdx_log_entry_info *),
                  void *user, struct tm_err *err);

/* The writer.  One per read-write open, after the header has been given
 * a fresh non-zero LogGuid. */
struct vhdx_log {
    struct tm_io *io;
    uint64_t log_off;           /* file offset of the log */
    uint32_t log_len;
    struct tm_guid guid;        /* = the header's LogGuid */
    uint64_t next_seq;
    uint32_t write_pos;         /* log-relative, 4 KiB multiple */
};

void vhdx_log_init(struct vhdx_log *lg, struct tm_io *io, uint64_t log_off,
                   uint32_t log_len, const struct tm_guid *guid);

/* Largest number of data updates one entry may hold for this log. */
size_t vhdx_log_max_updates(const struct vhdx_log *lg);

/* CRASH: the spec's order.  Writes one entry holding 'updates' (each
 * entry's Tail is itself: all earlier entries are already applied and
 * flushed), flushes, applies the updates in place, flushes.  'file_size'
 * is a file size known to be durable (FlushedFileOffset, rounded down to
 * 1 MiB: replay refuses a file shorter than it) and 'last_file_off' the
 * size covering every allocated structure (LastFileOffset, rounded up to
 * 1 MiB).  More updates than fit one entry are split over several, each
 * committed in turn; n == 0 writes one entry without descriptors.
 * TM_E_INVALID for an update that is not 4 KiB aligned (data: exactly
 * 4096 bytes).  Returns 0 or the first error (the caller must poison its
 * handle). */
int vhdx_log_commit(struct vhdx_log *lg,
                    const struct vhdx_log_update *updates, size_t n,
                    uint64_t file_size, uint64_t last_file_off);

#endif
