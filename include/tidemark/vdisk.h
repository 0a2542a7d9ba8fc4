/* SPDX-License-Identifier: MIT */
/* vdisk.h - the virtual-disk API: one handle for a VHDX chain and its
 * resilient change tracking, as Windows' virtdisk.dll gives one HANDLE for
 * OpenVirtualDisk, Get/SetVirtualDiskInformation and
 * QueryChangesVirtualDisk.  docs/virtdisk-mapping.md maps every function,
 * information version and flag to Windows' names and numbers.
 *
 * A disk 'd.vhdx' is tracked when 'd.vhdx.rct' and 'd.vhdx.mrt' lie beside
 * it (docs/formats/rct.md).  Every write and discard through a handle is
 * recorded there before it reaches the disk, so after any crash a query
 * reports every byte that changed since an ID (never fewer), and a disk
 * written by another program is detected: its DataWriteGuid no longer
 * matches, tracking restarts under a new lineage, and older IDs fail
 * TM_E_RCT_RESET.  The tracking of a differencing disk is its own: the
 * handle tracks the top file of the chain, where the writes go.
 *
 * Functions return 0 or a negative code (tidemark/errors.h: a tm_err_code
 * or -errno); tm_vdisk_err gives the detail of the last failure and
 * tm_vdisk_win32_error the Windows code a port of virtdisk code expects.
 * Paths are UTF-8.  A handle is used by one thread at a time. */
#ifndef TIDEMARK_VDISK_H
#define TIDEMARK_VDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidemark/errors.h"
#include "tidemark/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tm_vdisk;                                /* opaque */

/* VIRTUAL_DISK_MAXIMUM_CHANGE_TRACKING_ID_LENGTH: an ID is at most this
 * many bytes, plus the NUL. */
#define TM_VDISK_RCT_ID_MAX 256

/* ---- open, create, close ------------------------------------------------ */

/* Open flags: OPEN_VIRTUAL_DISK_FLAG values where Windows has the flag,
 * and read-only at VIRTUAL_DISK_ACCESS_ATTACH_RO's value, which no open
 * flag uses. */
enum {
    /* OPEN_VIRTUAL_DISK_FLAG_NO_PARENTS: a differencing disk alone; reads
     * that need the parent fail TM_E_CHAIN. */
    TM_VDISK_OPEN_NO_PARENTS = 0x1,
    /* OPEN_VIRTUAL_DISK_PARAMETERS v2 ReadOnly: no lock is taken, so a
     * disk in use can be read and queried; tracking state is read, never
     * written. */
    TM_VDISK_OPEN_READ_ONLY = 0x10000,
};

/* The structs below may grow at their end.  'struct_size' is sizeof the
 * struct the caller was compiled with, or 0 for this header's. */

struct tm_vdisk_open_params {
    uint32_t struct_size;
    /* The immediate parent is this file instead of what the locator
     * names (OPEN_VIRTUAL_DISK_FLAG_CUSTOM_DIFF_CHAIN with one
     * AddVirtualDiskParent); NULL = follow the locator. */
    const char *parent_path;
};

/* Opens the disk at 'path' with its chain and its tracking.  'p' may be
 * NULL.  A read-write open locks the file exclusively (and its parents
 * shared): TM_E_LOCKED when another program has it open.  Tracking found
 * inconsistent is restarted, not refused (see
 * TM_VDISK_INFO_CHANGE_TRACKING_STATE for what happened).  On failure
 * *out is NULL and *err (if not NULL) names the file and the problem. */
int tm_vdisk_open(const char *path, unsigned flags,
                  const struct tm_vdisk_open_params *p, struct tm_vdisk **out,
                  struct tm_err *err);

/* CREATE_VIRTUAL_DISK_PARAMETERS (v2). */
struct tm_vdisk_create_params {
    uint32_t struct_size;
    uint64_t virtual_size;      /* MaximumSize; 0 with parent_path = the
                                 * parent's */
    uint32_t block_size;        /* 0 = 32 MiB, 2 MiB for a child */
    uint32_t logical_sector;    /* SectorSizeInBytes: 512 or 4096; 0 = 512 */
    uint32_t physical_sector;   /* 512 or 4096; 0 = 4096 */
    bool fixed;                 /* CREATE_VIRTUAL_DISK_FLAG_FULL_PHYSICAL_
                                 * ALLOCATION */
    bool unique_id_set;         /* UniqueId: the VirtualDiskId; else random
                                 * (a child: the parent's) */
    struct tm_guid unique_id;
    const char *parent_path;    /* ParentPath: make a differencing disk */
    /* Turn change tracking on at once (Hyper-V does it at the first
     * backup); granularity 0 = 64 KiB. */
    bool change_tracking;
    uint32_t tracking_granularity;
};

/* Creates the disk at 'path', which must not exist, and opens it
 * read-write. */
int tm_vdisk_create(const char *path, const struct tm_vdisk_create_params *p,
                    struct tm_vdisk **out, struct tm_err *err);

/* Flushes, records the tracking state (a clean close: the next open
 * needs no recovery), closes the chain and frees.  Returns the first
 * error; frees whatever happens.  Accepts NULL. */
int tm_vdisk_close(struct tm_vdisk *d);

/* Detail of the last failed call on 'd'; valid until the next call. */
const struct tm_err *tm_vdisk_err(const struct tm_vdisk *d);

/* The Win32 error a virtdisk function would return for 'rc' (0 for 0):
 * ERROR_VHD_INVALID_CHANGE_TRACKING_ID for TM_E_RCT_INVALID_ID, and so
 * on, as docs/virtdisk-mapping.md lists. */
uint32_t tm_vdisk_win32_error(int rc);

/* ---- I/O ---------------------------------------------------------------- */

/* Byte-granular I/O in virtual-disk space ([off, off + len) inside the
 * virtual size, TM_E_RANGE otherwise).  A write is durable after the
 * next successful flush.  With tracking on, the first write of an open
 * binds the tracking to the DataWriteGuid that write gives the disk, and
 * every write and discard is marked before it is issued. */
int tm_vdisk_read(struct tm_vdisk *d, void *buf, size_t len, uint64_t off);
int tm_vdisk_write(struct tm_vdisk *d, const void *buf, size_t len,
                   uint64_t off);
int tm_vdisk_flush(struct tm_vdisk *d);

enum tm_vdisk_discard_mode {
    TM_VDISK_DISCARD_ZERO = 1,  /* reads zeros afterwards */
    TM_VDISK_DISCARD_UNMAP = 2, /* no longer needed (reads zeros too) */
};
int tm_vdisk_discard(struct tm_vdisk *d, uint64_t off, uint64_t len,
                     enum tm_vdisk_discard_mode mode);

/* ResizeVirtualDisk: grows, or shrinks down to the smallest safe size
 * (TM_E_RANGE below it).  Tracking restarts under a new lineage; older
 * IDs fail TM_E_RCT_RESET ("the disk was resized"). */
int tm_vdisk_resize(struct tm_vdisk *d, uint64_t new_size);

/* ---- GetVirtualDiskInformation ------------------------------------------ */

/* GET_VIRTUAL_DISK_INFO_VERSION: same numbers. */
enum tm_vdisk_info_kind {
    TM_VDISK_INFO_SIZE = 1,
    TM_VDISK_INFO_IDENTIFIER = 2,
    TM_VDISK_INFO_PARENT_LOCATION = 3,
    TM_VDISK_INFO_PARENT_IDENTIFIER = 4,
    TM_VDISK_INFO_VIRTUAL_STORAGE_TYPE = 6,
    TM_VDISK_INFO_PROVIDER_SUBTYPE = 7,
    TM_VDISK_INFO_IS_4K_ALIGNED = 8,
    TM_VDISK_INFO_VHD_PHYSICAL_SECTOR_SIZE = 10,
    TM_VDISK_INFO_SMALLEST_SAFE_VIRTUAL_SIZE = 11,
    TM_VDISK_INFO_VIRTUAL_DISK_ID = 14,
    TM_VDISK_INFO_CHANGE_TRACKING_STATE = 15,
};

/* VIRTUAL_STORAGE_TYPE DeviceId values, and the provider subtypes. */
enum {
    TM_VDISK_STORAGE_TYPE_VHDX = 3,
    TM_VDISK_SUBTYPE_FIXED = 2,
    TM_VDISK_SUBTYPE_DYNAMIC = 3,
    TM_VDISK_SUBTYPE_DIFFERENCING = 4,
};

/* How tracking was found when the handle was opened. */
enum tm_vdisk_tracking_open {
    TM_VDISK_TRACKING_CLEAN = 0,        /* as closed */
    TM_VDISK_TRACKING_RECOVERED = 1,    /* after a crash, from the .mrt */
    TM_VDISK_TRACKING_RESET_FOREIGN_WRITE = 2,  /* CTLOG_VHD_CHANGED_OFFLINE */
    TM_VDISK_TRACKING_RESET_RESIZED = 3,
    TM_VDISK_TRACKING_RESET_CORRUPT = 4,        /* CTLOG_INCONSISTENT_
                                                 * TRACKING_FILE */
};

/* GET_VIRTUAL_DISK_INFO: set 'kind', call, read the member it names. */
struct tm_vdisk_info {
    uint32_t struct_size;
    enum tm_vdisk_info_kind kind;
    union {
        struct {
            uint64_t virtual_size;
            uint64_t physical_size;     /* bytes the file takes */
            uint32_t block_size;
            uint32_t sector_size;       /* logical */
        } size;
        /* IDENTIFIER: the DataWriteGuid, which a child's
         * parent_linkage names (so PARENT_IDENTIFIER of a child equals
         * IDENTIFIER of its parent). */
        struct tm_guid identifier;
        struct {
            bool resolved;      /* the parent is open through the handle */
            /* Resolved: the parent's path.  Else every path form the
             * locator holds, each NUL-terminated, then an empty string
             * (Windows' multi-string).  Owned by the handle; valid until
             * the next set_info or close (a second query returns the
             * same pointer). */
            const char *paths;
        } parent_location;
        struct {
            struct tm_guid linkage;             /* parent_linkage */
            bool has_linkage2;
            struct tm_guid linkage2;            /* during a merge */
        } parent_identifier;
        struct {
            uint32_t device_id;                 /* TM_VDISK_STORAGE_TYPE_* */
            struct tm_guid vendor_id;           /* Microsoft's */
        } virtual_storage_type;
        uint32_t provider_subtype;              /* TM_VDISK_SUBTYPE_* */
        bool is_4k_aligned;
        uint32_t vhd_physical_sector_size;
        uint64_t smallest_safe_virtual_size;
        struct tm_guid virtual_disk_id;
        struct {
            bool enabled;
            bool newer_changes;         /* written since most_recent_id */
            char most_recent_id[TM_VDISK_RCT_ID_MAX + 1];  /* "" if none */
            /* tidemark's additions. */
            uint32_t granularity;       /* bytes; 0 when never enabled */
            uint32_t sealed_ids;        /* IDs retained */
            enum tm_vdisk_tracking_open found;
        } change_tracking;
    };
};

/* TM_E_INVALID (Windows: ERROR_INVALID_PARAMETER) for a kind not listed,
 * and for PARENT_* of a disk that has no parent. */
int tm_vdisk_get_info(struct tm_vdisk *d, struct tm_vdisk_info *info);

/* ---- SetVirtualDiskInformation ------------------------------------------ */

/* SET_VIRTUAL_DISK_INFO_VERSION: same numbers. */
enum tm_vdisk_set_kind {
    TM_VDISK_SET_PARENT_PATH = 1,
    TM_VDISK_SET_PHYSICAL_SECTOR_SIZE = 4,
    TM_VDISK_SET_VIRTUAL_DISK_ID = 5,
    TM_VDISK_SET_CHANGE_TRACKING_STATE = 6,
    TM_VDISK_SET_PARENT_LOCATOR = 7,
};

struct tm_vdisk_set_info {
    uint32_t struct_size;
    enum tm_vdisk_set_kind kind;
    union {
        /* PARENT_PATH: repoint a child at its (moved) parent, which must
         * be the same disk (DataWriteGuid = parent_linkage). */
        const char *parent_path;
        uint32_t physical_sector_size;  /* 512 or 4096 */
        struct tm_guid virtual_disk_id;
        struct {
            bool enabled;
            /* 0 = 64 KiB; a power of two in 4 KiB..2 MiB.  Enabling
             * tracking already on is a no-op when this is 0 or the same,
             * else TM_E_INVALID (turn it off first). */
            uint32_t granularity;
        } change_tracking;
        /* PARENT_LOCATOR: link to a parent with another identity (a
         * restored or copied one), rewriting parent_linkage too.  The
         * linkage must be the parent's DataWriteGuid. */
        struct {
            struct tm_guid linkage;
            const char *parent_path;
        } parent_locator;
    };
};

/* Needs a read-write handle (TM_E_READONLY).  Turning tracking off keeps
 * the sidecars with the state "disabled" (queries fail
 * TM_E_RCT_DISABLED); turning it on again starts a new lineage, and IDs
 * of the old one fail TM_E_RCT_RESET. */
int tm_vdisk_set_info(struct tm_vdisk *d, const struct tm_vdisk_set_info *info);

/* ---- change tracking ---------------------------------------------------- */

/* Seals the current state of the disk and returns its ID in id[]: the
 * reference point a later query starts from (Hyper-V seals at a recovery
 * checkpoint).  Flushes the disk first, so the ID names durable data.
 * TM_E_RCT_DISABLED when tracking is off; needs a read-write handle. */
int tm_vdisk_seal(struct tm_vdisk *d, char id[TM_VDISK_RCT_ID_MAX + 1]);

/* Writes the fine map to the .rct now and clears the .mrt, so that after
 * a crash only what is written from here on is reported by whole coarse
 * regions (1 GiB).  A long-running writer (a VM's disk) calls it now and
 * then, and at checkpoints; its cost grows with the virtual size (about
 * 0.1 s per TiB), unlike a seal's.  0 when tracking is off. */
int tm_vdisk_persist_tracking(struct tm_vdisk *d);

/* QueryChangesVirtualDisk: the byte ranges inside [off, off + len)
 * (clipped to the virtual size) that changed since 'rct_id' was sealed;
 * ascending, merged, aligned to the tracking granularity (clipped at
 * the span's ends).  *count is the capacity of ranges[] on entry and the
 * number written on return; *processed how much of the span from 'off'
 * they account for: the caller goes on from off + *processed until it
 * reaches the end.  A full array is not an error.  Errors, each with its
 * Windows twin: TM_E_RCT_INVALID_ID (malformed or never issued),
 * TM_E_RCT_DISABLED (tracking off or never on), TM_E_RCT_RESET (tracking
 * restarted since the ID: foreign write, resize, damaged sidecars),
 * TM_E_RCT_MISSING (aged out of the history), TM_E_RCT_OTHER_DISK (an ID
 * of another disk), TM_E_INVALID (a capacity of 0).  On failure *count
 * and *processed are 0. */
int tm_vdisk_query_changes(struct tm_vdisk *d, const char *rct_id,
                           uint64_t off, uint64_t len,
                           struct tm_range *ranges, size_t *count,
                           uint64_t *processed);

/* The same for the changes between two sealed IDs, 'rct_id' older than
 * 'until_id' (TM_E_INVALID otherwise): what RSVD's QUERY_VIRTUAL_DISK_
 * CHANGES and WMI's GetVirtualDiskChanges answer for a VHD Set with a
 * limit (here 'rct_id') and a target snapshot (here 'until_id').  A
 * superset of what differs between the two states: granules rewritten
 * after 'until_id' are included too. */
int tm_vdisk_query_changes_between(struct tm_vdisk *d, const char *rct_id,
                                   const char *until_id, uint64_t off,
                                   uint64_t len, struct tm_range *ranges,
                                   size_t *count, uint64_t *processed);

#ifdef __cplusplus
}
#endif
#endif
