/* SPDX-License-Identifier: MIT */
/* vhdx.h - the MS-VHDX engine: one struct tm_vhdx is one open .vhdx file
 * (fixed, dynamic or differencing).  It validates the
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
#define TM_VHDX_DEFAULT_DIFF_BLOCK_SIZE (2u << 20)

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
    /* Differencing (New-VHD -Differencing): a non-NULL parent makes a
     * child of it.  The parent is an open handle (read-only is enough);
     * its ownership passes to the child whatever the result, and it stays
     * attached to the new handle.  The child copies the parent's virtual
     * size (virtual_size 0; a larger value is allowed), sector sizes and
     * VirtualDiskId; block_size 0 means 2 MiB, as Hyper-V's default for
     * differencing disks; 'fixed' must be false.  parent_linkage is the
     * parent's current DataWriteGuid.  The path values are stored in the
     * parent locator as given (Windows form, see chain.c); at least one
     * must be non-NULL. */
    struct tm_vhdx *parent;
    const char *parent_relative_path;
    const char *parent_volume_path;
    const char *parent_absolute_path;
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

/* Makes the first user-visible change of this open now: renews
 * DataWriteGuid (MS-VHDX 2.2.2: once per open, at the first write) to
 * 'next' (NULL: a random one) and makes the header durable, so a caller
 * can announce the GUID (the change-tracking binding) before the disk
 * carries it and before any data changes.  Later writes of the same open
 * keep that GUID.  When this open has renewed it already, nothing
 * changes and 'next' is ignored: read the GUID back. */
int tm_vhdx_begin_write(struct tm_vhdx *vd, const struct tm_guid *next);

/* Where data lives, for sparse-aware copies: the length of the run that
 * starts at 'off' (up to 'len') and whether it may hold non-zero data
 * (false = reads as zeros for sure).  Returns 0 or a negative code. */
int tm_vhdx_block_status(struct tm_vhdx *vd, uint64_t off, uint64_t len,
                         uint64_t *run_len, bool *allocated);

/* ---- differencing disks and chains ------------------------------------ */

/* The parent locator of a differencing disk (MS-VHDX 2.6.2.6), values
 * converted to UTF-8 as stored (backslashes and all); NULL for a key the
 * file lacks. */
struct tm_vhdx_locator {
    struct tm_guid linkage;             /* parent_linkage */
    bool has_linkage2;
    struct tm_guid linkage2;            /* parent_linkage2 */
    char *relative_path;
    char *volume_path;
    char *absolute_win32_path;
};

/* The locator of an open differencing disk, or NULL for other kinds.
 * Valid until the handle is closed or its locator rewritten. */
const struct tm_vhdx_locator *tm_vhdx_locator(const struct tm_vhdx *vd);

/* The attached parent, or NULL. */
struct tm_vhdx *tm_vhdx_parent(const struct tm_vhdx *vd);

/* The path a handle was opened from by tm_vhdx_open_path, or NULL. */
const char *tm_vhdx_path(const struct tm_vhdx *vd);

/* Attaches an open 'parent' to a differencing disk, whose NOT_PRESENT
 * blocks and clear sector-bitmap bits then read from it; ownership of
 * 'parent' passes whatever the result.  TM_E_CHAIN when the parent's
 * DataWriteGuid is neither parent_linkage nor parent_linkage2, when the
 * logical sector sizes differ, or when the parent is larger than the
 * child (a child may be larger: reads past the parent's end give zeros);
 * TM_E_INVALID when 'vd' has no parent or one is attached already.  A
 * differencing disk without a parent opens (info, check, dump) but a
 * read that needs the parent fails with TM_E_CHAIN. */
int tm_vhdx_attach_parent(struct tm_vhdx *vd, struct tm_vhdx *parent);

/* Opening by path (chain.c).  A differencing disk's parents are found
 * through their locators, relative_path first (relative to the child's
 * directory), then absolute_win32_path ("Z:\dir\f.vhdx" and
 * "\\?\Z:\..." name the Linux root, as Wine's Z: drive does), and
 * opened read-only.  Read-write opens lock the file exclusively and its
 * parents shared, so no other writer changes a parent under a child.
 * Errors name the files: a missing parent gives -ENOENT naming every
 * path tried, a changed one TM_E_CHAIN naming both files, a loop
 * TM_E_CHAIN. */
struct tm_vhdx_open_opts {
    const char *parent_path;    /* the immediate parent is here; NULL =
                                 * resolve through the locator */
    bool no_parent;             /* open a differencing disk alone */
    unsigned rw_parents;        /* this many parents up are opened
                                 * read-write (merge); the rest read-only */
};
int tm_vhdx_open_path(struct tm_vhdx *vd, const char *path, unsigned flags,
                      const struct tm_vhdx_open_opts *opts);

/* Finds, opens (read-only, unlocked, without its own parents) and
 * attaches the parent of a differencing disk opened by path with
 * no_parent, for walking a chain one link at a time ('vhd info'). */
int tm_vhdx_open_parent(struct tm_vhdx *vd, const char *parent_path);

/* Creates a differencing disk at 'path' (which must not exist) whose
 * parent is the VHDX at 'parent_path', opened with its chain; the locator
 * gets relative_path and absolute_win32_path computed from the two paths.
 * 'p' supplies the other creation parameters (may be NULL).  Leaves the
 * handle open read-write with the parent attached. */
int tm_vhdx_create_child(struct tm_vhdx *vd, const char *path,
                         const char *parent_path,
                         const struct tm_vhdx_create_params *p);

/* Rewrites the locator of an open (read-write) differencing disk through
 * the log; not a user-visible change (DataWriteGuid stays).  A parent
 * attached before stays attached. */
int tm_vhdx_set_locator(struct tm_vhdx *vd, const struct tm_vhdx_locator *loc);

/* Points an open read-write differencing disk (opened by path) at the
 * parent at 'parent_path', as tm_vhdx_set_parent_path below, and attaches
 * that parent (opened read-only with its chain) in place of the old one.
 * A parent of another identity ('force') changes what the disk reads, so
 * its DataWriteGuid is renewed (once per open, as for a write).  On
 * failure the handle reads through the parent it had. */
int tm_vhdx_reparent(struct tm_vhdx *vd, const char *parent_path,
                     bool force);

/* Set-VHD -ParentPath: points the differencing disk at 'path' to the
 * parent at 'parent_path' (a moved or renamed chain): rewrites its
 * locator's paths, and with 'force' also its parent_linkage, which is
 * needed when the parent has another identity (TM_E_CHAIN otherwise;
 * with it, the disk's DataWriteGuid is renewed too).
 * Sector and virtual sizes must fit whatever 'force' says. */
int tm_vhdx_set_parent_path(const char *path, const char *parent_path,
                            bool force, struct tm_err *err);

/* Rewrites the VirtualDiskId or the physical sector size (512 or 4096)
 * metadata item of a read-write handle through the log (Set-VHD
 * -PhysicalSectorSizeBytes, SetVirtualDiskInformation VIRTUAL_DISK_ID):
 * not a change of the data, so DataWriteGuid stays. */
int tm_vhdx_set_virtual_disk_id(struct tm_vhdx *vd, const struct tm_guid *id);
int tm_vhdx_set_physical_sector(struct tm_vhdx *vd, uint32_t bytes);

/* ---- maintenance (resize.c, optimize.c, merge.c) ------------------------ */

/* The smallest virtual size a shrink may go to without losing data: the
 * end of the last logical sector that reads non-zero (through the chain),
 * at least one sector. */
int tm_vhdx_min_size(struct tm_vhdx *vd, uint64_t *out);

/* Changes the virtual size (Resize-VHD) of a read-write handle, crash
 * safe: until the size change is durable the file reads as before.
 * Growing works for every kind (a fixed disk gets its new blocks
 * allocated; new space reads as zeros, also in a differencing disk).
 * Shrinking is refused with TM_E_RANGE, naming tm_vhdx_min_size, when
 * data lies past the new end, and for a differencing disk below its
 * parent's size.  'new_size' must be a multiple of the logical sector
 * size (TM_E_INVALID). */
int tm_vhdx_resize(struct tm_vhdx *vd, uint64_t new_size);

/* Optimize-VHD for dynamic and differencing disks: blocks whose data is
 * all zeros become ZERO (in a differencing disk only where that reads the
 * same), ZERO/UNMAPPED blocks' space is released, and the remaining
 * blocks are moved down into the holes so the file can be truncated.
 * Crash safe: each block move is committed through the log after its
 * copy is durable.  A fixed disk is left as it is (returns 0). */
struct tm_vhdx_optimize_stats {
    uint64_t blocks_zeroed;     /* data blocks found all zeros */
    uint64_t blocks_moved;
    uint64_t size_before;       /* file bytes */
    uint64_t size_after;
};
int tm_vhdx_optimize(struct tm_vhdx *vd, struct tm_vhdx_optimize_stats *st);

/* Merge-VHD: folds the differencing disks from 'top' down to its
 * ancestor 'levels' parents up (1 = the parent) into that ancestor, which
 * then reads what 'top' reads (its virtual size and VirtualDiskId become
 * top's).  Every handle from 'top' to the ancestor must be open
 * read-write.  Crash safe: the ancestor's new DataWriteGuid is first
 * stored as parent_linkage2 in its child's locator, and only the sectors
 * the folded disks define are written into the ancestor, which they
 * shadow; so at every instant the chain opens and reads through 'top'
 * exactly as before.  The folded files are left in place (their data
 * unchanged) for the caller to delete. */
int tm_vhdx_merge(struct tm_vhdx *top, unsigned levels);

/* Merges the chain from 'path' into 'ancestor_path' (NULL = the parent;
 * it must be in the chain, TM_E_INVALID otherwise), then deletes the
 * folded files, top first.  Detail of a failure goes to *err. */
int tm_vhdx_merge_path(const char *path, const char *ancestor_path,
                       struct tm_err *err);

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
