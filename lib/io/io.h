/* SPDX-License-Identifier: MIT */
/* io.h - the bottom layer: file I/O behind a table of operations, so tests
 * can swap the POSIX backend for an in-memory one or for a fault-injecting
 * wrapper (fail the Nth write, tear it, cut the power), as SQLite's VFS
 * does.  Also the small utilities every layer needs: error detail, CRC-32C,
 * GUIDs and little-endian access.
 *
 * Every persistent byte tidemark writes goes through a struct tm_io.  A
 * handle is used by one thread at a time; the layer above serialises. */
#ifndef TM_IO_H
#define TM_IO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tidemark/errors.h"
#include "tidemark/types.h"

/* ---- error detail ------------------------------------------------------ */

/* struct tm_err (tidemark/types.h) is the error detail a handle carries
 * until its next call. */

/* Sets *e to 'code' and the formatted message; returns 'code' so callers
 * can write 'return tm_err_set(...)'.  A NULL 'e' is allowed. */
int tm_err_set(struct tm_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, and records the file offset the error concerns. */
int tm_err_set_at(struct tm_err *e, int code, uint64_t file_off,
                  const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefixes the existing message with more context ("header 2: ..."). */
void tm_err_prefix(struct tm_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tm_err_clear(struct tm_err *e);

/* ---- the I/O table ----------------------------------------------------- */

/* Operation kinds, as a mask for struct tm_fault. */
enum {
    TM_IO_READ = 1u << 0,
    TM_IO_WRITE = 1u << 1,
    TM_IO_FLUSH = 1u << 2,
    TM_IO_TRUNCATE = 1u << 3,
    TM_IO_ALLOCATE = 1u << 4,
    TM_IO_PUNCH = 1u << 5,
};

struct tm_io;

/* A backend fills this table.  Each operation returns 0 or -errno, except
 * pread, which returns the number of bytes read (short only at end of
 * file) or -errno.  Writes past the end extend the file (the gap reads as
 * zeros).  'flush' makes every earlier write and size change durable. */
struct tm_io_ops {
    unsigned version;           /* TM_IO_OPS_VERSION */
    const char *name;           /* "posix", "mem", "fault" */
    int64_t (*pread)(struct tm_io *io, void *buf, size_t len, uint64_t off);
    int (*pwrite)(struct tm_io *io, const void *buf, size_t len,
                  uint64_t off);
    int (*flush)(struct tm_io *io);
    int (*truncate)(struct tm_io *io, uint64_t size);
    /* Make [off, off+len) allocated (the file grows if needed). */
    int (*allocate)(struct tm_io *io, uint64_t off, uint64_t len);
    /* Deallocate [off, off+len) so it reads as zeros; size is kept. */
    int (*punch)(struct tm_io *io, uint64_t off, uint64_t len);
    int (*size)(struct tm_io *io, uint64_t *size);
    void (*close)(struct tm_io *io);
    /* Optional (NULL = nothing to do): start writing dirty data back to
     * stable storage without waiting, so a later flush has less to do.
     * A hint only: it makes nothing durable. */
    int (*start_writeback)(struct tm_io *io);
};
#define TM_IO_OPS_VERSION 1

/* Every backend's handle begins with this. */
struct tm_io {
    const struct tm_io_ops *ops;
};

/* Thin wrappers over the table.  pread_all/pwrite_all loop over short
 * transfers and EINTR; pread_all returns TM_E_TRUNCATED when the file ends
 * before 'len' bytes.  All return 0 or a negative code. */
int64_t tm_io_pread(struct tm_io *io, void *buf, size_t len, uint64_t off);
int tm_io_pread_all(struct tm_io *io, void *buf, size_t len, uint64_t off);
int tm_io_pwrite_all(struct tm_io *io, const void *buf, size_t len,
                     uint64_t off);
int tm_io_flush(struct tm_io *io);
int tm_io_truncate(struct tm_io *io, uint64_t size);
int tm_io_allocate(struct tm_io *io, uint64_t off, uint64_t len);
int tm_io_punch(struct tm_io *io, uint64_t off, uint64_t len);
int tm_io_size(struct tm_io *io, uint64_t *size);
void tm_io_close(struct tm_io *io);     /* accepts NULL */
/* The start_writeback hint; 0 when the backend has none. */
int tm_io_start_writeback(struct tm_io *io);

/* ---- backends ---------------------------------------------------------- */

enum {
    TM_IO_RDONLY = 1u << 0,
    TM_IO_CREATE = 1u << 1,     /* create if missing */
    TM_IO_EXCL = 1u << 2,       /* with CREATE: fail if it exists */
    TM_IO_TRUNC = 1u << 3,
    /* Take an open-file-description lock on the whole file before
     * anything else touches it (before TRUNC too): exclusive, or shared
     * with RDONLY.  QEMU takes such locks on the images it has open, so a
     * file a running VM uses gives TM_E_LOCKED instead of two writers. */
    TM_IO_LOCK = 1u << 4,
};

/* Opens 'path' with the TM_IO_* flags.  On success *out owns the fd. */
int tm_io_posix_open(const char *path, unsigned flags, struct tm_io **out);

/* A sparse in-memory file, empty at first.  Returns NULL when out of
 * memory.  'flush' is a no-op: everything written is durable. */
struct tm_io *tm_io_mem_new(void);

/* What the fault backend does when its counter reaches 'after'. */
enum tm_fault_action {
    TM_FAULT_NONE = 0,
    /* The operation fails with -err and has no effect.  With 'sticky',
     * every later counted operation fails too. */
    TM_FAULT_ERROR,
    /* A write: only its first 'tear_sectors' 512-byte sectors land, then
     * the power is cut as below.  Other kinds: plain power cut. */
    TM_FAULT_TEAR,
    /* The power is cut before the operation: every write, truncate and
     * punch no completed flush covered is lost (with 'seed' non-zero, a
     * pseudo-random subset of the lost sectors lands anyway, as disks
     * reorder), and every later operation fails with -EIO. */
    TM_FAULT_POWER_CUT,
};

struct tm_fault {
    unsigned ops;               /* TM_IO_* kinds that count */
    uint64_t after;             /* fire at the after-th counted op, from 1 */
    enum tm_fault_action action;
    int err;                    /* ERROR: positive errno, EIO if 0 */
    bool sticky;                /* ERROR: keep failing afterwards */
    unsigned tear_sectors;      /* TEAR: sectors of the write that land */
    uint64_t seed;              /* POWER_CUT/TEAR: 0 = drop all unflushed */
};

/* Wraps 'inner', which it borrows: 'inner' must outlive the wrapper and
 * is not closed with it.  Writes are held back from 'inner' until a flush
 * (reads see them), so that a power cut can drop them; after a cut,
 * 'inner' holds exactly the durable state.  Returns NULL when out of
 * memory.  The wrapper has a fault domain of its own (below). */
struct tm_io *tm_io_fault_new(struct tm_io *inner, const struct tm_fault *f);

/* A fault domain: one counter and one struct tm_fault shared by several
 * fault wrappers, for faults that hit several files at once (a chain is
 * several files; a merge writes two).  Every counted operation of any
 * member advances the one counter; when it reaches 'after' the action
 * fires once for the domain.  A POWER_CUT (or TEAR) cuts every member
 * open at that moment: each drops what no flush of its own covered (with
 * a seed, each lands its own pseudo-random subset: the first member uses
 * 'seed' as a private wrapper does, later ones streams derived from it
 * and their order of creation), only the firing write is torn, and every
 * later operation of every member, including one made afterwards, fails
 * with -EIO.  A sticky ERROR fails every later counted operation of every
 * member.  A flush still makes durable only its own member's writes.
 *
 * tm_fault_domain_new copies *f (NULL: no fault, a plain shared volatile
 * cache) and returns the caller's reference, or NULL when out of memory.
 * tm_fault_domain_free drops that reference (accepts NULL); each member
 * holds one too, so the domain lives until its last member is closed and
 * tm_io_fault_fired/count keep working on members meanwhile. */
struct tm_fault_domain;
struct tm_fault_domain *tm_fault_domain_new(const struct tm_fault *f);
void tm_fault_domain_free(struct tm_fault_domain *d);
/* Wraps 'inner' (borrowed, as tm_io_fault_new) as a new member of 'd'.
 * Returns NULL when out of memory or when 'inner' or 'd' is NULL. */
struct tm_io *tm_io_fault_new_in(struct tm_io *inner,
                                 struct tm_fault_domain *d);
/* Whether the domain's fault has fired, and how many operations its
 * members counted.  A NULL domain: false and 0. */
bool tm_fault_domain_fired(const struct tm_fault_domain *d);
uint64_t tm_fault_domain_count(const struct tm_fault_domain *d);

/* A copy-on-write view over 'inner' (borrowed, never written): writes
 * and size changes stay in memory and reads see them; flush is a no-op.
 * Read-only VHDX opens replay a dirty log into one.  NULL when out of
 * memory. */
struct tm_io *tm_io_overlay_new(struct tm_io *inner);

/* Forwards every operation to 'inner' (borrowed) and leaves it open on
 * close: hand a file to a layer that takes ownership (tm_vhdx_open) and
 * keep it.  NULL when out of memory. */
struct tm_io *tm_io_borrow_new(struct tm_io *inner);

/* Whether the fault has fired, and how many operations were counted, in
 * the domain of fault wrapper 'io' (all members agree); false and 0 for
 * other backends. */
bool tm_io_fault_fired(struct tm_io *io);
uint64_t tm_io_fault_count(struct tm_io *io);

/* ---- CRC-32C (Castagnoli) ---------------------------------------------- */

/* Continues a CRC over 'buf': start with crc = 0 for a fresh checksum.
 * Uses the SSE4.2 instruction where the CPU has it; the results of the
 * software path are the same. */
uint32_t tm_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t tm_crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* The checksum of buf[0, len) as if the 4 bytes at 'field' (where the
 * checksum itself is stored) were zero, without touching the buffer:
 * how VHDX headers and tidemark's sidecars are checked. */
uint32_t tm_crc32c_skip(const void *buf, size_t len, size_t field);
bool tm_crc32c_is_hw(void);

/* ---- GUIDs ------------------------------------------------------------- */

/* struct tm_guid (tidemark/types.h): 16 bytes in the on-disk order. */

/* Fills *g with random bytes (getrandom) marked as an RFC 4122 version-4
 * GUID in the Microsoft byte order.  Returns 0 or -errno. */
int tm_guid_generate(struct tm_guid *g);
bool tm_guid_is_zero(const struct tm_guid *g);
bool tm_guid_equal(const struct tm_guid *a, const struct tm_guid *b);
/* Writes "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (Data1..3 little-endian
 * as Windows prints) into buf, which holds at least 37 bytes. */
void tm_guid_format(const struct tm_guid *g, char *buf);
/* Parses that form, with or without braces, any case.  Returns 0 or
 * TM_E_INVALID. */
int tm_guid_parse(const char *s, size_t len, struct tm_guid *g);
/* The value of one hex digit, either case, or -1. */
int tm_hex_value(char c);

/* ---- little-endian access ---------------------------------------------- */

static inline uint16_t
tm_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t
tm_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t
tm_le64(const uint8_t *p)
{
    return (uint64_t)tm_le32(p) | (uint64_t)tm_le32(p + 4) << 32;
}

static inline void
tm_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void
tm_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void
tm_put_le64(uint8_t *p, uint64_t v)
{
    tm_put_le32(p, (uint32_t)v);
    tm_put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
