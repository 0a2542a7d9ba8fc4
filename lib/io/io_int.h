/* SPDX-License-Identifier: MIT */
/* io_int.h - what only lib/io's own files share: range limits and the
 * "read, zero-filling past the end" helper the fault and overlay backends
 * use to read the file they wrap. */
#ifndef TM_IO_INT_H
#define TM_IO_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "io.h"

#define IO_SECTOR_BYTES 512u

/* The largest offset any backend accepts: off_t is signed. */
#define IO_MAX_OFF ((uint64_t)INT64_MAX)

/* Whether [off, off + len) neither wraps nor passes IO_MAX_OFF. */
static inline bool
io_range_ok(uint64_t off, uint64_t len)
{
    return off <= IO_MAX_OFF && len <= IO_MAX_OFF - off;
}

/* Fills buf with [off, off + len) of 'io', zeros where the file has
 * ended.  Returns 0 or a negative code. */
int io_read_or_zero(struct tm_io *io, void *buf, size_t len, uint64_t off);

/* Writes 'len' zero bytes at 'off' through the table, in bounded chunks.
 * Returns 0 or a negative code. */
int io_write_zeros(struct tm_io *io, uint64_t off, uint64_t len);

#endif
