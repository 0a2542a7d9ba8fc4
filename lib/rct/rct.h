/* SPDX-License-Identifier: MIT */
/* rct.h - resilient change tracking for one virtual disk: which granules
 * changed in which epoch, the sealed IDs, and their persistence in the
 * .rct (fine map, history) and .mrt (coarse write-ahead map) sidecars of
 * docs/formats/rct.md.
 *
 * The layer knows nothing of VHDX.  Its caller (lib/vdisk) tells it the
 * disk's DataWriteGuid and virtual size (the binding), and calls
 * tm_rct_mark before every write reaches the disk: the mark is durable
 * in the .mrt first, so after any crash every changed byte lies in a
 * range a query reports (DESIGN.md invariant 1).  Over-reporting is
 * allowed, bounded by the granularity (no crash) or the coarse region
 * size (after a crash).
 *
 * Lifecycle as tm_vhdx's: create or open, mark/seal/query, then close
 * (persists) or free (does not, as a crash would).  One thread at a time
 * per handle. */
#ifndef TM_RCT_H
#define TM_RCT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"

/* VIRTUAL_DISK_MAXIMUM_CHANGE_TRACKING_ID_LENGTH. */
#define TM_RCT_ID_MAX 256
#define TM_RCT_DEFAULT_GRANULARITY (64u << 10)
#define TM_RCT_MIN_GRANULARITY (4u << 10)
#define TM_RCT_MAX_GRANULARITY (2u << 20)
#define TM_RCT_DEFAULT_REGION (1ull << 30)

struct tm_rct;                                  /* opaque */

/* What the tracking is bound to: the disk as it is now.  A writer about
 * to renew the disk's DataWriteGuid persists (with OPEN) the GUID it
 * will give it as 'pending' first; an open then accepts either, so no
 * instant of the renewal looks like a foreign write. */
struct tm_rct_binding {
    struct tm_guid data_write_guid;
    uint64_t virtual_size;
    struct tm_guid pending_guid;    /* zero: none */
};

struct tm_rct_params {
    uint32_t granularity;       /* 0 = 64 KiB; power of two, 4 KiB..2 MiB */
    uint64_t region;            /* 0 = 1 GiB; power of two >= granularity */
};

/* What tm_rct_open found. */
enum tm_rct_open_state {
    TM_RCT_CLEAN = 0,           /* closed cleanly: the map as stored */
    TM_RCT_RECOVERED,           /* after a crash: .mrt regions OR-ed in */
    TM_RCT_RESET_FOREIGN_WRITE, /* the disk's DataWriteGuid changed */
    TM_RCT_RESET_RESIZED,       /* its virtual size changed */
    TM_RCT_RESET_CORRUPT,       /* sidecars unreadable or mismatched */
    TM_RCT_RESET_RESTARTED,     /* disabled and enabled again, or reset
                                 * on request (tm_rct_reset) */
};

/* Enables tracking: writes fresh sidecars (a new lineage, nothing
 * changed, no ID sealed) into 'rct' and 'mrt', whose ownership passes to
 * the handle whatever the result.  TM_E_INVALID for bad parameters. */
int tm_rct_create(struct tm_io *rct, struct tm_io *mrt,
                  const struct tm_rct_params *p,
                  const struct tm_rct_binding *b, struct tm_rct **out,
                  struct tm_err *err);

/* Opens the sidecars of the disk described by 'b' (ownership of the ios
 * passes).  Recovery and resets follow docs/formats/rct.md; *state says
 * which.  A reset is not an error: the handle works under a new lineage
 * and every older ID fails with TM_E_RCT_RESET, naming the reason.
 * Returns TM_E_UNSUPPORTED (nothing changed on disk) for a format
 * version it does not know and for files another program wrote under
 * these names (Hyper-V's own .rct/.mrt), -errno for I/O errors.  On a reset *err (if
 * not NULL) gets code 0 and a message naming the reason; on failure the
 * error detail.  Flushes both files before reading them (a read may
 * return what a failed flush left behind), then writes only on a reset,
 * which it persists at once. */
int tm_rct_open(struct tm_io *rct, struct tm_io *mrt,
                const struct tm_rct_binding *b, struct tm_rct **out,
                enum tm_rct_open_state *state, struct tm_err *err);

/* Call before a write (or discard) of [off, off + len) reaches the disk:
 * every coarse region it touches that is not yet marked since the last
 * persist is marked durably in the .mrt (one write + flush for all of
 * them), then the granules are recorded as changed in the current epoch
 * in memory.  TM_E_RANGE outside the virtual size. */
int tm_rct_mark(struct tm_rct *t, uint64_t off, uint64_t len);

/* Seals the current epoch and returns its ID in id[] (NUL-terminated,
 * "rctX:<lineage>:<8 hex>").  O(1): durable (the .mrt header) before it
 * returns.  A new epoch starts. */
int tm_rct_seal(struct tm_rct *t, char id[TM_RCT_ID_MAX + 1]);

/* GET_VIRTUAL_DISK_INFO_CHANGE_TRACKING_STATE: the most recent sealed ID
 * ("" before the first) and whether anything was marked since it. */
int tm_rct_state(struct tm_rct *t, char id[TM_RCT_ID_MAX + 1],
                 bool *newer_changes);

/* QueryChangesVirtualDisk: byte ranges inside [off, off + len) (clipped
 * to the virtual size) changed since 'id' was sealed, or with 'until'
 * non-NULL changed between 'id' and the later 'until' (a superset: it
 * may include granules rewritten after 'until').  Ranges are ascending,
 * merged and granule aligned (clipped at the ends).  *count is the
 * capacity on entry and the number written on return; *processed is how
 * much of the span, from 'off', the ranges account for: the caller goes
 * on from off + *processed.  A full array is never an error.  Exactly:
 * when the array fills (*count == capacity on return) *processed ends at
 * the end of the last range written, even if nothing changed after it;
 * otherwise it is 'len' (the whole span, also past the virtual size), so
 * a caller's loop ends.  A capacity of 0 is TM_E_INVALID.  On failure
 * *count and *processed are 0.  Errors:
 * TM_E_RCT_INVALID_ID (malformed, or not an ID this lineage issued),
 * TM_E_RCT_RESET (an older lineage of this disk), TM_E_RCT_OTHER_DISK
 * (a lineage this disk never had), TM_E_RCT_MISSING (aged out of the
 * history), TM_E_INVALID ('until' older than 'id'), TM_E_RCT_DISABLED
 * (the .rct has its DISABLED flag set). */
int tm_rct_query(struct tm_rct *t, const char *id, const char *until,
                 uint64_t off, uint64_t len, struct tm_range *ranges,
                 size_t *count, uint64_t *processed);

/* Writes the map and history to the .rct atomically, recording 'b' as
 * the disk's binding (a pending GUID only with 'open'); 'open' sets the
 * OPEN flag (writes may follow, the .mrt covers them).  Then clears the .mrt.  'b' NULL keeps the recorded
 * binding; a 'b' with another virtual size is TM_E_INVALID (the map has
 * the old size).  A failed write or flush (here, in mark or seal)
 * poisons the handle: later calls fail TM_E_POISONED; free or close it
 * (close then writes nothing) and reopen. */
int tm_rct_persist(struct tm_rct *t, const struct tm_rct_binding *b,
                   bool open);

/* A clean close: persists with 'b' (OPEN clear; NULL keeps the recorded
 * binding), closes the ios, frees.  Returns the first error; frees
 * whatever happens.  Accepts NULL. */
int tm_rct_close(struct tm_rct *t, const struct tm_rct_binding *b);

/* SetVirtualDiskInformation(CHANGE_TRACKING_STATE, FALSE): sets the
 * DISABLED flag and persists.  Queries then fail TM_E_RCT_DISABLED; the
 * caller stops marking.  A reset at open keeps the flag (writes made
 * while disabled change the DataWriteGuid), so tracking stays off until
 * tm_rct_reset turns it on again under a new lineage. */
int tm_rct_disable(struct tm_rct *t);

/* Starts a new lineage for the disk 'b' describes (its size may differ:
 * the map is made anew), with nothing changed and no ID, the DISABLED
 * flag clear, and the lineage it ends remembered with 'reason' (a
 * TM_RCT_RESET_*), so its IDs fail TM_E_RCT_RESET.  'p' NULL keeps the
 * granularity and region size.  Persisted before it returns (a crash
 * leaves the old state, or the new). */
int tm_rct_reset(struct tm_rct *t, const struct tm_rct_binding *b,
                 enum tm_rct_open_state reason,
                 const struct tm_rct_params *p);

/* Frees without persisting, as a crash would leave things. */
void tm_rct_free(struct tm_rct *t);

/* Detail of the last failed call. */
const struct tm_err *tm_rct_err(const struct tm_rct *t);

/* Facts for status output. */
struct tm_rct_info {
    uint32_t granularity;
    uint64_t region;
    uint64_t virtual_size;
    struct tm_guid lineage;
    uint32_t sealed;            /* IDs retained */
    bool disabled;              /* the DISABLED flag is set */
    uint64_t memory;            /* bytes the map holds in memory */
};
int tm_rct_get_info(struct tm_rct *t, struct tm_rct_info *out);

#endif
