/* SPDX-License-Identifier: MIT */
/* rct_int.h - what lib/rct's files share: the on-disk constants of
 * docs/formats/rct.md, the decoded structures and their codecs (format.c),
 * and the ID codec. */
#ifndef TM_RCT_INT_H
#define TM_RCT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "rct.h"

#define RCT_VERSION 1
#define RCT_SLOT_BYTES 4096u
#define RCT_BODY_MIN_OFF 8192u
#define RCT_MRT_HDR_BYTES 4096u
#define RCT_MRT_SECTOR_BYTES 4096u
#define RCT_MRT_BITS_PER_SECTOR ((4096u - 8u) * 8u)        /* 32704 */
#define RCT_MAX_VIRTUAL_SIZE (64ull << 40)
#define RCT_MAX_EPOCH 65534u            /* epoch 65535 is never opened */
#define RCT_MAX_HISTORY RCT_MAX_EPOCH
#define RCT_MAX_FORMER 16u
#define RCT_MIN_REGION 4096ull
#define RCT_MAX_REGION (1ull << 46)

#define RCT_FLAG_OPEN 1u
#define RCT_FLAG_DISABLED 2u
#define RCT_FLAGS_KNOWN (RCT_FLAG_OPEN | RCT_FLAG_DISABLED)

/* Body sizes (docs/formats/rct.md "Body"). */
#define RCT_HIST_ENTRY_BYTES 8u
#define RCT_FORMER_ENTRY_BYTES 17u
#define RCT_RUN_BYTES 24u

/* The length of a well-formed ID: "rctX:" 36 ":" 8. */
#define RCT_ID_LEN (5u + 36u + 1u + 8u)

struct rct_header {
    uint64_t seq;
    struct tm_guid lineage;
    struct tm_guid data_write_guid;
    struct tm_guid pending_guid;    /* zero, or (with OPEN) the next one */
    uint64_t virtual_size;
    uint32_t granularity;
    uint32_t flags;
    uint64_t body_off;
    uint64_t body_len;
    uint32_t body_crc;
    uint16_t epoch;             /* current, open */
    uint32_t next_counter;
};

struct rct_hist {
    uint32_t counter;
    uint16_t epoch;
};

struct rct_former {
    struct tm_guid lineage;
    uint8_t reason;             /* enum tm_rct_open_state, a RESET_* */
};

/* The body without the runs (those go straight into the map). */
struct rct_body {
    uint32_t nhist;
    struct rct_hist *hist;      /* malloc'd, nhist entries (NULL if 0) */
    uint32_t nformer;
    struct rct_former former[RCT_MAX_FORMER];
    uint64_t granules;
    uint64_t nruns;
};

struct rct_mrt_header {
    struct tm_guid lineage;
    uint64_t rct_seq;
    uint64_t region;
    uint64_t regions;
    uint32_t highest;           /* highest ID counter handed out */
};

static inline uint64_t
rct_div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static inline bool
rct_is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* .rct header slot: decode checks signature, CRC, version (UNSUPPORTED),
 * then every field; 'len' must be >= 4096.  encode fills 4096 bytes. */
int rct_header_decode(const uint8_t *buf, size_t len, struct rct_header *h,
                      struct tm_err *err);
void rct_header_encode(const struct rct_header *h, uint8_t *buf);

/* Upper bound of a body's length for a header (for allocation checks). */
uint64_t rct_body_max_len(uint64_t granules);

/* Body: checks its CRC against h->body_crc, then every field against 'h'.
 * With 'gens' non-NULL (h's granule count of u16, zeroed by the caller)
 * the runs are stored into it; otherwise they are only validated.  On
 * success b->hist is allocated (free it). */
int rct_body_decode(const uint8_t *buf, size_t len,
                    const struct rct_header *h, struct rct_body *b,
                    uint16_t *gens, struct tm_err *err);
/* The same, reading the body (h->body_len bytes) through 'rd' in chunks
 * of 64 KiB: once for the CRC, once to decode, so memory stays at a
 * chunk whatever the body's size.  Read errors are returned as they
 * are (-errno), not as damage. */
typedef int (*rct_read_fn)(void *user, void *buf, size_t len, uint64_t off);
int rct_body_decode_from(rct_read_fn rd, void *user,
                         const struct rct_header *h, struct rct_body *b,
                         uint16_t *gens, struct tm_err *err);

/* Writes the body through 'wr' in chunks of 64 KiB from offset 0 of the
 * sink, and returns its length and CRC-32C. */
typedef int (*rct_write_fn)(void *user, const void *buf, size_t len,
                            uint64_t off);
int rct_body_write_to(rct_write_fn wr, void *user,
                      const struct rct_hist *hist, uint32_t nhist,
                      const struct rct_former *former, uint32_t nformer,
                      const uint16_t *gens, uint64_t granules, uint64_t *len,
                      uint32_t *crc);
/* The length rct_body_write_to will produce. */
uint64_t rct_body_len(uint32_t nhist, uint32_t nformer, const uint16_t *gens,
                      uint64_t granules);

/* Encodes history, former lineages and the runs of 'gens' into a new
 * malloc'd buffer (*out, *out_len).  Returns 0 or -ENOMEM. */
int rct_body_encode(const struct rct_hist *hist, uint32_t nhist,
                    const struct rct_former *former, uint32_t nformer,
                    const uint16_t *gens, uint64_t granules, uint8_t **out,
                    size_t *out_len);

int rct_mrt_header_decode(const uint8_t *buf, size_t len,
                          struct rct_mrt_header *h, struct tm_err *err);
void rct_mrt_header_encode(const struct rct_mrt_header *h, uint8_t *buf);

/* Bitmap sector k: decode checks CRC and index and returns the pointer to
 * its 4088 bit bytes in *bits; encode writes CRC and index around 'bits'
 * (4088 bytes, NULL = zeros). */
int rct_mrt_sector_decode(const uint8_t *buf, size_t len, uint32_t k,
                          const uint8_t **bits, struct tm_err *err);
void rct_mrt_sector_encode(uint32_t k, const uint8_t *bits, uint8_t *buf);

/* IDs: "rctX:<lineage>:<8 hex>", NUL-terminated into id[] (>= 51 bytes).
 * parse: TM_E_RCT_INVALID_ID for anything else (length, junk, counter 0
 * is allowed here; the engine decides). */
void rct_id_format(const struct tm_guid *lineage, uint32_t counter,
                   char *id);
/* Whether the 8 bytes at 'p' begin a structure of ours ('tmrct' or
 * 'tmmrt', any version), are all zero (a file we were creating), or are
 * something else entirely. */
enum rct_kind { RCT_KIND_OURS, RCT_KIND_ZERO, RCT_KIND_OTHER };
enum rct_kind rct_sig_kind(const uint8_t p[8]);

int rct_id_parse(const char *id, struct tm_guid *lineage,
                 uint32_t *counter);

#endif
