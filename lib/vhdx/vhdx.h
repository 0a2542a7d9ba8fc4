/* SPDX-License-Identifier: MIT */
/* vhdx.h - the MS-VHDX engine: one struct tm_vhdx is one open .vhdx file
 * (fixed or dynamic; differencing comes with chains).  It validates the
 * file on open, replays a dirty log (into the file for read-write opens,
 * into memory for read-only ones), and serves reads, writes, flushes and
 * discards in virtual-disk byte space.  Every metadata update goes through
 * the log: write entry, flush, apply, flush.
 *
 * Lifecycle, as LMDB's environment: tm_vhdx_new, then tm_vhdx_open or
 * tm_vhdx_create, I/O, then tm_vhdx_close.  A failed open or create still
 * leaves the handle holding the error detail (tm_vhdx_err) until close.
 * A handle is used by one thread at a time. */
#ifndef TM_VHDX_H
#define TM_VHDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"

struct tm_vhdx;                                 /* opaque */

/* As virtdisk's VIRTUAL_STORAGE_TYPE / ProviderSubtype numbering. */
enum tm_vhdx_type {
    TM_VHDX_FIXED = 2,
    TM_VHDX_DYNAMIC = 3,
    TM_VHDX_DIFFERENCING = 4,
};

/* Limits from MS-VHDX section 2. */
#define TM_VHDX_MAX_VIRTUAL_SIZE (64ull << 40)          /* 64 TiB */
#define TM_VHDX_MIN_BLOCK_SIZE (1u << 20)
#define TM_VHDX_MAX_BLOCK_SIZE (256u << 20)
#define TM_VHDX_DEFAULT_BLOCK_SIZE (32u << 20)
#define TM_VHDX_DEFAULT_LOG_SIZE (1u << 20)

struct tm_vhdx_create_params {
    uint64_t virtual_size;      /* bytes; multiple of logical_sector */
    uint32_t block_size;        /* bytes, power of two; 0 = 32 MiB */
    uint32_t logical_sector;    /* 512 or 4096; 0 = 512 */
    uint32_t physical_sector;   /* 512 or 4096; 0 = 4096 */
    uint32_t log_size;          /* bytes, multiple of 1 MiB; 0 = 1 MiB */
    bool fixed;                 /* allocate every block now */
    bool virtual_disk_id_set;   /* else a random VirtualDiskId */
    struct tm_guid virtual_disk_id;
    const char *creator;        /* file type identifier; NULL = tidemark */
};

/* Open flags. */
enum {
    TM_VHDX_RDONLY = 1u << 0,
};

/* Discard modes. */
enum tm_vhdx_discard_mode {
    /* The range must read as zeros afterwards (BAT state ZERO for whole
     * blocks of a dynamic disk; zeros written elsewhere). */
    TM_VHDX_ZERO = 1,
    /* The caller no longer needs the range (BAT state UNMAPPED for whole
     * blocks).  tidemark still reads it as zeros afterwards. */
    TM_VHDX_UNMAP = 2,
};

/* Returns NULL when out of memory. */
struct tm_vhdx *tm_vhdx_new(void);

/* Opens the file behind 'io', whose ownership passes to the handle
 * whatever the result (tm_vhdx_close closes it).  A dirty log is replayed
 * into the file (read-write) or into memory (TM_VHDX_RDONLY).  Returns 0,
 * TM_E_CORRUPT / TM_E_TRUNCATED / TM_E_UNSUPPORTED with detail in
 * tm_vhdx_err, or -errno. */
int tm_vhdx_open(struct tm_vhdx *vd, struct tm_io *io, unsigned flags);

/* Writes a new empty VHDX into 'io', replacing whatever it held
 * (ownership passes as for open), and leaves the handle open read-write
 * on it.  TM_E_INVALID with detail for parameters MS-VHDX does not
 * allow. */
int tm_vhdx_create(struct tm_vhdx *vd, struct tm_io *io,
                   const struct tm_vhdx_create_params *p);

/* Flushes (when open read-write and not poisoned), clears the log GUID,
 * closes the io and frees the handle.  Accepts NULL.  Returns the first
 * error met, TM_E_POISONED for a poisoned handle (its last writes may not
 * be durable; the next open replays the log); the handle is freed
 * whatever happens. */
int tm_vhdx_close(struct tm_vhdx *vd);

/* Detail of the last failed call; valid until the next call. */
const struct tm_err *tm_vhdx_err(const struct tm_vhdx *vd);

/* Byte-granular I/O in virtual-disk space; [off, off+len) must lie inside
 * the virtual size (TM_E_RANGE otherwise).  Reads of unallocated, ZERO
 * and UNMAPPED blocks return zeros without file I/O.  A write is durable
 * after the next successful tm_vhdx_flush.  A failed metadata write
 * poisons the handle: later calls return TM_E_POISONED. */
int tm_vhdx_read(struct tm_vhdx *vd, void *buf, size_t len, uint64_t off);
int tm_vhdx_write(struct tm_vhdx *vd, const void *buf, size_t len,
                  uint64_t off);
int tm_vhdx_flush(struct tm_vhdx *vd);
int tm_vhdx_discard(struct tm_vhdx *vd, uint64_t off, uint64_t len,
                    enum tm_vhdx_discard_mode mode);

/* Where data lives, for sparse-aware copies: the length of the run that
 * starts at 'off' (up to 'len') and whether it may hold non-zero data
 * (false = reads as zeros for sure).  Returns 0 or a negative code. */
int tm_vhdx_block_status(struct tm_vhdx *vd, uint64_t off, uint64_t len,
                         uint64_t *run_len, bool *allocated);

/* What 'vhd info' shows. */
struct tm_vhdx_info {
    enum tm_vhdx_type type;
    uint64_t virtual_size;
    uint64_t file_size;
    uint32_t block_size;
    uint32_t logical_sector;
    uint32_t physical_sector;
    uint32_t log_size;
    uint64_t log_offset;
    bool leave_block_allocated;
    bool has_parent;
    bool read_only;
    bool log_replayed;          /* a dirty log was found at open */
    struct tm_guid virtual_disk_id;
    struct tm_guid file_write_guid;
    struct tm_guid data_write_guid;
    struct tm_guid log_guid;
    uint64_t header_seq;
    char creator[256];          /* UTF-8 from the file type identifier */
    /* BAT census of payload blocks by state. */
    uint64_t blocks_total;
    uint64_t blocks_not_present;
    uint64_t blocks_undefined;
    uint64_t blocks_zero;
    uint64_t blocks_unmapped;
    uint64_t blocks_fully_present;
    uint64_t blocks_partially_present;
    uint64_t allocated_bytes;   /* payload blocks with file space */
};
int tm_vhdx_get_info(struct tm_vhdx *vd, struct tm_vhdx_info *out);

/* Structure check (read-only): headers, region tables, metadata, every
 * BAT entry's state and offset (inside the file, aligned, no overlaps with
 * each other or with the log/regions).  Calls 'report' once per problem
 * found; returns the number of problems (0 = clean) or a negative code if
 * the check could not run. */
typedef void (*tm_vhdx_report_fn)(void *user, const char *problem);
int tm_vhdx_check(struct tm_vhdx *vd, tm_vhdx_report_fn report, void *user);

/* Mends what open tolerates, on a read-write handle: a damaged or
 * differing region table copy is rewritten from the good one through the
 * log, and a damaged header slot is rewritten by a header update (a dirty
 * log was already replayed by the open).  Not a user-visible change:
 * DataWriteGuid stays.  Calls 'report' once per repair made; returns how
 * many, or a negative code. */
int tm_vhdx_repair(struct tm_vhdx *vd, tm_vhdx_report_fn report, void *user);

/* Writes a human-readable dump of every structure (headers, region tables,
 * metadata table and items, BAT census, log entries found) through 'out',
 * called once per line without the newline. */
typedef void (*tm_vhdx_line_fn)(void *user, const char *line);
int tm_vhdx_dump(struct tm_vhdx *vd, tm_vhdx_line_fn out, void *user);

#endif
