/* SPDX-License-Identifier: MIT */
/* log.c - the VHDX metadata log (MS-VHDX 2.3): replay of the active
 * sequence at open, a scan for 'vhd dump', and the writer every metadata
 * update goes through (entry, flush, apply, flush).
 *
 * The log is a circular buffer of 4 KiB sectors.  Replay reads all of it
 * into memory once (LogLength is bounded below) and addresses sectors
 * modulo its length, so entries that wrap past the end need no copies:
 * descriptors (32 bytes) and data sectors never straddle a sector. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx_int.h"

#define SECTOR VHDX_LOG_SECTOR
/* The largest log replay reads; larger ones are refused, not guessed. */
#define LOG_MAX_BYTES (256u << 20)
/* Targets past this offset or zero runs longer than this are corruption,
 * never a reason to allocate or write that much. */
#define LOG_MAX_TARGET (1ull << 48)
#define LOG_MAX_ZERO (64ull << 30)

#define ENTRY_HEADER_BYTES 64u
#define DESC_BYTES 32u

/* Descriptor sectors an entry with 'count' descriptors needs: the 64-byte
 * header and 32 bytes per descriptor, rounded up to 4 KiB (the first
 * sector holds 126 descriptors, each further one 128). */
static uint64_t
desc_sectors(uint64_t count)
{
    return (ENTRY_HEADER_BYTES + DESC_BYTES * count + SECTOR - 1) / SECTOR;
}

/* The whole log, in memory. */
struct log_buf {
    const uint8_t *b;
    uint32_t len;               /* LogLength, a multiple of 1 MiB */
    uint64_t file_off;          /* LogOffset */
};

/* Byte 'off' of the log, modulo its length; callers never cross a 4 KiB
 * boundary from the returned pointer. */
static const uint8_t *
at(const struct log_buf *lb, uint64_t off)
{
    return lb->b + off % lb->len;
}

/* An entry that passed validation. */
struct entry {
    uint32_t pos;               /* log-relative offset of its header */
    uint32_t length;
    uint32_t tail;
    uint64_t seq;
    uint32_t count;
    uint64_t nd;                /* descriptor sectors */
    struct tm_guid guid;
    uint64_t flushed;
    uint64_t last;
};

/* CRC-32C over the entry's EntryLength bytes, wrapping at the log end,
 * with the checksum field taken as zero. */
static uint32_t
entry_crc(const struct log_buf *lb, uint32_t pos, uint32_t length)
{
    static const uint8_t zero[4];
    uint64_t first = (uint64_t)lb->len - pos;
    uint32_t crc;

    if (first > length)
        first = length;
    crc = tm_crc32c(0, lb->b + pos, 4);
    crc = tm_crc32c(crc, zero, 4);
    crc = tm_crc32c(crc, lb->b + pos + 8, (size_t)first - 8);
    if (first < length)
        crc = tm_crc32c(crc, lb->b, length - (size_t)first);
    return crc;
}

/* The entry header fields, checked on their own: signature, lengths, tail,
 * sequence number and room for the descriptors.  Returns false for
 * anything that is not the start of an entry. */
static bool
entry_header_parse(const struct log_buf *lb, uint32_t pos, struct entry *e)
{
    const uint8_t *h = at(lb, pos);

    if (memcmp(h, "loge", 4) != 0)
        return false;
    e->pos = pos;
    e->length = tm_le32(h + 8);
    e->tail = tm_le32(h + 12);
    e->seq = tm_le64(h + 16);
    e->count = tm_le32(h + 24);
    memcpy(e->guid.b, h + 32, 16);
    e->flushed = tm_le64(h + 48);
    e->last = tm_le64(h + 56);
    if (e->length == 0 || e->length % SECTOR != 0 || e->length > lb->len)
        return false;
    if (e->tail % SECTOR != 0 || e->tail >= lb->len)
        return false;
    if (e->seq == 0)
        return false;
    e->nd = desc_sectors(e->count);
    return e->nd * SECTOR <= e->length;
}

static const uint8_t *
desc_at(const struct log_buf *lb, const struct entry *e, uint64_t i)
{
    return at(lb, e->pos + ENTRY_HEADER_BYTES + DESC_BYTES * i);
}

static const uint8_t *
data_at(const struct log_buf *lb, const struct entry *e, uint64_t j)
{
    return at(lb, e->pos + (e->nd + j) * SECTOR);
}

/* Whether [off, off + len) touches the log itself. */
static bool
hits_log(const struct log_buf *lb, uint64_t off, uint64_t len)
{
    return off < lb->file_off + lb->len && lb->file_off < off + len;
}

/* MS-VHDX 2.3.1: full validation of the entry at 'pos' against the header
 * LogGuid.  Returns 1 (valid, *e filled), 0 (not a valid entry: skip it)
 * or TM_E_CORRUPT for an entry whose checksum and GUID are right but whose
 * targets are absurd: that is damage, not a torn write, and replaying
 * around it would hide it. */
static int
entry_check(const struct log_buf *lb, uint32_t pos,
            const struct tm_guid *guid, struct entry *e, struct tm_err *err)
{
    uint64_t nd_data = 0;
    char g[TM_GUID_STR_LEN + 1];

    if (!entry_header_parse(lb, pos, e))
        return 0;
    if (!tm_guid_equal(&e->guid, guid))
        return 0;
    /* Structure before checksum: garbage fails here cheaply, and a sector
     * that passes as a descriptor or data sector cannot start another
     * entry, which bounds the checksum work of a whole scan. */
    for (uint64_t i = 0; i < e->count; i++) {
        const uint8_t *d = desc_at(lb, e, i);

        if (tm_le64(d + 24) != e->seq)
            return 0;
        if (tm_le64(d + 16) % SECTOR != 0)
            return 0;
        if (memcmp(d, "desc", 4) == 0)
            nd_data++;
        else if (memcmp(d, "zero", 4) != 0 || tm_le64(d + 8) % SECTOR != 0)
            return 0;
    }
    /* MS-VHDX 2.3.1: one data sector per data descriptor, right after the
     * descriptor sectors, and nothing else in the entry.  QEMU computes
     * its checksum over exactly these sectors, so a longer entry could not
     * have come from a writer QEMU interoperates with either. */
    if ((e->nd + nd_data) * SECTOR != e->length)
        return 0;
    for (uint64_t j = 0; j < nd_data; j++) {
        const uint8_t *s = data_at(lb, e, j);

        if (memcmp(s, "data", 4) != 0 ||
            tm_le32(s + 4) != (uint32_t)(e->seq >> 32) ||
            tm_le32(s + SECTOR - 4) != (uint32_t)e->seq)
            return 0;
    }
    if (entry_crc(lb, pos, e->length) != tm_le32(at(lb, pos) + 4))
        return 0;
    /* COMPAT: FlushedFileOffset and LastFileOffset "MUST be" 1 MiB
     * multiples, but QEMU records the raw file length; only bound them. */
    tm_guid_format(guid, g);
    if (e->flushed > LOG_MAX_TARGET || e->last > LOG_MAX_TARGET)
        return tm_err_set_at(err, TM_E_CORRUPT, lb->file_off + pos,
                             "log: entry %" PRIu64 " at log offset 0x%"
                             PRIx32 " has absurd file offsets (flushed 0x%"
                             PRIx64 ", last 0x%" PRIx64 ")", e->seq, pos,
                             e->flushed, e->last);
    for (uint64_t i = 0; i < e->count; i++) {
        const uint8_t *d = desc_at(lb, e, i);
        uint64_t off = tm_le64(d + 16);
        bool zero = memcmp(d, "zero", 4) == 0;
        uint64_t len = zero ? tm_le64(d + 8) : SECTOR;

        if (off > LOG_MAX_TARGET || len > LOG_MAX_ZERO ||
            off + len > LOG_MAX_TARGET)
            return tm_err_set_at(err, TM_E_CORRUPT, lb->file_off + pos,
                                 "log: entry %" PRIu64 " descriptor %" PRIu64
                                 " targets 0x%" PRIx64 " length 0x%" PRIx64
                                 ", beyond any sane file", e->seq, i, off,
                                 len);
        if (hits_log(lb, off, len))
            return tm_err_set_at(err, TM_E_CORRUPT, lb->file_off + pos,
                                 "log: entry %" PRIu64 " descriptor %" PRIu64
                                 " targets 0x%" PRIx64 " inside the log "
                                 "(log GUID %s)", e->seq, i, off, g);
    }
    return 1;
}

/* Validation results per 4 KiB position, so the candidate search looks at
 * each position once however often sequences are rebuilt over it. */
enum { SLOT_UNKNOWN = 0, SLOT_INVALID, SLOT_VALID };

struct log_scan {
    const struct log_buf *lb;
    const struct tm_guid *guid;
    uint8_t *state;             /* per sector */
    struct entry *cache;        /* per sector, when SLOT_VALID */
};

static int
entry_get(struct log_scan *ls, uint32_t pos, const struct entry **out,
          struct tm_err *err)
{
    uint32_t k = pos / SECTOR;
    int rc;

    if (ls->state[k] == SLOT_UNKNOWN) {
        rc = entry_check(ls->lb, pos, ls->guid, &ls->cache[k], err);
        if (rc < 0)
            return rc;
        ls->state[k] = rc == 1 ? SLOT_VALID : SLOT_INVALID;
    }
    *out = ls->state[k] == SLOT_VALID ? &ls->cache[k] : NULL;
    return 0;
}

struct sequence {
    bool valid;
    uint32_t tail_pos;          /* first entry to replay */
    uint32_t head_pos;
    uint64_t head_seq;
    uint64_t entries;           /* from tail to head */
    uint64_t flushed;
    uint64_t last;
};

/* MS-VHDX 2.3.3 steps 2-4 from candidate tail 'start': collects entries
 * with contiguous sequence numbers; the result is valid when the head's
 * Tail is one of the collected entries.  *span is the bytes collected. */
static int
build_sequence(struct log_scan *ls, uint32_t start, struct sequence *sq,
               uint64_t *span, struct tm_err *err)
{
    const struct log_buf *lb = ls->lb;
    const struct entry *e;
    const struct entry *head = NULL;
    uint64_t total = 0;
    uint64_t n = 0;
    uint64_t pos;
    int rc;

    memset(sq, 0, sizeof(*sq));
    *span = 0;
    for (;;) {
        pos = (start + total) % lb->len;
        rc = entry_get(ls, (uint32_t)pos, &e, err);
        if (rc < 0)
            return rc;
        if (e == NULL || (head != NULL && e->seq != head->seq + 1) ||
            total + e->length > lb->len)
            break;
        head = e;
        total += e->length;
        n++;
    }
    *span = total;
    if (head == NULL)
        return 0;
    /* Is the head's Tail one of the collected entries? */
    pos = start;
    for (uint64_t i = 0; i < n; i++) {
        rc = entry_get(ls, (uint32_t)pos, &e, err);
        if (rc < 0)
            return rc;
        if (e->pos == head->tail) {
            sq->valid = true;
            sq->tail_pos = e->pos;
            sq->head_pos = head->pos;
            sq->head_seq = head->seq;
            sq->entries = n - i;
            sq->flushed = head->flushed;
            sq->last = head->last;
            return 0;
        }
        pos = (pos + e->length) % lb->len;
    }
    return 0;
}

/* MS-VHDX 2.3.3: the active sequence, the valid one with the highest head
 * sequence number, over every 4 KiB candidate tail. */
static int
find_active(struct log_scan *ls, struct sequence *best, struct tm_err *err)
{
    uint64_t p = 0;

    memset(best, 0, sizeof(*best));
    while (p < ls->lb->len) {
        struct sequence sq;
        uint64_t span;
        int rc = build_sequence(ls, (uint32_t)p, &sq, &span, err);

        if (rc < 0)
            return rc;
        if (sq.valid && (!best->valid || sq.head_seq > best->head_seq))
            *best = sq;
        /* Past a valid sequence; by one sector otherwise.  Wrapping past
         * the log end means every candidate was seen. */
        p += sq.valid ? span : SECTOR;
    }
    return 0;
}

/* Makes [off, off + len) of 'io' read as zeros, extending the file when
 * the range ends past it.  Punch keeps memory and disk use bounded for the
 * long zero runs a log may describe. */
static int
zero_range(struct tm_io *io, uint64_t off, uint64_t len)
{
    uint64_t size;
    int rc;

    if (len == 0)
        return 0;
    rc = tm_io_size(io, &size);
    if (rc < 0)
        return rc;
    if (off + len > size) {
        rc = tm_io_truncate(io, off + len);
        if (rc < 0)
            return rc;
    }
    if (off >= size)
        return 0;               /* the extension reads as zeros */
    return tm_io_punch(io, off, (off + len > size ? size : off + len) - off);
}

/* Rebuilds the 4 KiB target sector of data descriptor 'd' from its data
 * sector 's' (MS-VHDX 2.3.1.3-4): LeadingBytes, payload, TrailingBytes. */
static void
rebuild_sector(const uint8_t *d, const uint8_t *s, uint8_t *out)
{
    memcpy(out, d + 8, 8);
    memcpy(out + 8, s + 8, SECTOR - 12);
    memcpy(out + SECTOR - 4, d + 4, 4);
}

static int
apply_entry(const struct log_buf *lb, const struct entry *e,
            struct tm_io *dst, struct tm_err *err)
{
    uint8_t sector[SECTOR];
    uint64_t j = 0;
    int rc;

    for (uint64_t i = 0; i < e->count; i++) {
        const uint8_t *d = desc_at(lb, e, i);
        uint64_t off = tm_le64(d + 16);

        if (memcmp(d, "desc", 4) == 0) {
            rebuild_sector(d, data_at(lb, e, j++), sector);
            rc = tm_io_pwrite_all(dst, sector, SECTOR, off);
        } else {
            rc = zero_range(dst, off, tm_le64(d + 8));
        }
        if (rc < 0)
            return tm_err_set_at(err, rc, off,
                                 "log: cannot apply entry %" PRIu64
                                 " descriptor %" PRIu64 " at 0x%" PRIx64,
                                 e->seq, i, off);
    }
    return 0;
}

/* Reads the log described by (log_off, log_len) of 'io' into *out. */
static int
log_read(struct tm_io *io, uint64_t log_off, uint32_t log_len,
         uint8_t **out, struct tm_err *err)
{
    uint64_t size;
    uint8_t *buf;
    int rc;

    *out = NULL;
    if (log_len == 0 || log_len % VHDX_MiB != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "log: length 0x%" PRIx32 " is not a non-zero "
                          "multiple of 1 MiB", log_len);
    if (log_len > LOG_MAX_BYTES)
        return tm_err_set(err, TM_E_UNSUPPORTED,
                          "log: length %" PRIu32 " MiB exceeds the %u MiB "
                          "tidemark replays", log_len >> 20,
                          LOG_MAX_BYTES >> 20);
    rc = tm_io_size(io, &size);
    if (rc < 0)
        return tm_err_set(err, rc, "log: cannot get the file size");
    if (log_off > size || size - log_off < log_len)
        return tm_err_set_at(err, TM_E_TRUNCATED, log_off,
                             "log: file ends at 0x%" PRIx64 " before the "
                             "log end 0x%" PRIx64, size, log_off + log_len);
    buf = malloc(log_len);
    if (buf == NULL)
        return tm_err_set(err, -ENOMEM, "log: out of memory");
    rc = tm_io_pread_all(io, buf, log_len, log_off);
    if (rc < 0) {
        free(buf);
        return tm_err_set_at(err, rc, log_off, "log: cannot read the log");
    }
    *out = buf;
    return 0;
}

int
vhdx_log_replay(struct tm_io *io, struct tm_io *dst,
                const struct vhdx_header *h,
                struct vhdx_log_replay_result *res, struct tm_err *err)
{
    struct log_buf lb;
    struct log_scan ls;
    struct sequence best;
    char g[TM_GUID_STR_LEN + 1];
    uint8_t *buf;
    uint64_t size;
    uint64_t pos;
    int rc;

    memset(res, 0, sizeof(*res));
    if (tm_guid_is_zero(&h->log_guid))
        return 0;               /* stale entries are never replayed */
    tm_guid_format(&h->log_guid, g);
    rc = log_read(io, h->log_offset, h->log_length, &buf, err);
    if (rc < 0)
        return rc;
    lb.b = buf;
    lb.len = h->log_length;
    lb.file_off = h->log_offset;
    ls.lb = &lb;
    ls.guid = &h->log_guid;
    ls.state = calloc(lb.len / SECTOR, 1);
    ls.cache = calloc(lb.len / SECTOR, sizeof(*ls.cache));
    if (ls.state == NULL || ls.cache == NULL) {
        rc = tm_err_set(err, -ENOMEM, "log: out of memory");
        goto out_free;
    }
    rc = find_active(&ls, &best, err);
    if (rc < 0)
        goto out_free;
    if (!best.valid) {
        rc = tm_err_set_at(err, TM_E_CORRUPT, h->log_offset,
                           "log: no valid entry sequence for log GUID %s",
                           g);
        goto out_free;
    }
    rc = tm_io_size(io, &size);
    if (rc < 0) {
        tm_err_set(err, rc, "log: cannot get the file size");
        goto out_free;
    }
    if (size < best.flushed) {
        rc = tm_err_set(err, TM_E_TRUNCATED,
                        "log: file is 0x%" PRIx64 " bytes, shorter than the "
                        "0x%" PRIx64 " the log recorded as flushed (entry %"
                        PRIu64 "): the file was truncated", size,
                        best.flushed, best.head_seq);
        goto out_free;
    }
    /* MS-VHDX 2.3.3: every descriptor of every entry, tail to head. */
    pos = best.tail_pos;
    for (uint64_t i = 0; i < best.entries; i++) {
        const struct entry *e = &ls.cache[pos / SECTOR];

        rc = apply_entry(&lb, e, dst, err);
        if (rc < 0)
            goto out_free;
        pos = (pos + e->length) % lb.len;
    }
    rc = tm_io_size(dst, &size);
    if (rc == 0 && size < best.last)
        rc = tm_io_truncate(dst, best.last);
    if (rc < 0) {
        tm_err_set(err, rc, "log: cannot extend the file to 0x%" PRIx64,
                   best.last);
        goto out_free;
    }
    res->replayed = true;
    res->head_seq = best.head_seq;
    res->entries = best.entries;
    res->flushed_file_off = best.flushed;
    res->last_file_off = best.last;
out_free:
    free(ls.cache);
    free(ls.state);
    free(buf);
    return rc;
}

int
vhdx_log_scan(struct tm_io *io, uint64_t log_off, uint32_t log_len,
              void (*fn)(void *user, const struct vhdx_log_entry_info *),
              void *user, struct tm_err *err)
{
    struct log_buf lb;
    uint8_t *buf;
    int rc;

    rc = log_read(io, log_off, log_len, &buf, err);
    if (rc < 0)
        return rc;
    lb.b = buf;
    lb.len = log_len;
    lb.file_off = log_off;
    for (uint32_t pos = 0; pos < log_len; pos += SECTOR) {
        struct vhdx_log_entry_info info;
        struct entry e;

        if (!entry_header_parse(&lb, pos, &e) ||
            entry_crc(&lb, pos, e.length) != tm_le32(buf + pos + 4))
            continue;
        info.log_off = pos;
        info.seq = e.seq;
        info.entry_length = e.length;
        info.tail = e.tail;
        info.descriptor_count = e.count;
        info.log_guid = e.guid;
        info.flushed_file_off = e.flushed;
        info.last_file_off = e.last;
        fn(user, &info);
    }
    free(buf);
    return 0;
}

/* ---- the writer -------------------------------------------------------- */

void
vhdx_log_init(struct vhdx_log *lg, struct tm_io *io, uint64_t log_off,
              uint32_t log_len, const struct tm_guid *guid)
{
    lg->io = io;
    lg->log_off = log_off;
    lg->log_len = log_len;
    lg->guid = *guid;
    lg->next_seq = 1;
    lg->write_pos = 0;
}

/* An entry may fill the whole log: every earlier entry is applied and
 * flushed before the next is written, so none needs to survive. */
size_t
vhdx_log_max_updates(const struct vhdx_log *lg)
{
    uint64_t sectors = lg->log_len / SECTOR;
    uint64_t n;

    if (sectors < 2)
        return 0;
    n = sectors - 1;
    while (n > 0 && desc_sectors(n) + n > sectors)
        n--;
    return (size_t)n;
}

static uint64_t
round_up_mib(uint64_t v)
{
    return (v + VHDX_MiB - 1) / VHDX_MiB * VHDX_MiB;
}

/* Encodes updates[0, n) (which fit) as one entry into buf. */
static void
entry_encode(const struct vhdx_log *lg, const struct vhdx_log_update *u,
             size_t n, uint64_t nd, uint32_t length, uint64_t flushed,
             uint64_t last, uint8_t *buf)
{
    uint64_t seq = lg->next_seq;
    uint64_t j = 0;

    memset(buf, 0, length);
    memcpy(buf, "loge", 4);
    tm_put_le32(buf + 8, length);
    tm_put_le32(buf + 12, lg->write_pos);       /* Tail: itself */
    tm_put_le64(buf + 16, seq);
    tm_put_le32(buf + 24, (uint32_t)n);
    memcpy(buf + 32, lg->guid.b, 16);
    tm_put_le64(buf + 48, flushed);
    tm_put_le64(buf + 56, last);
    for (size_t i = 0; i < n; i++) {
        uint8_t *d = buf + ENTRY_HEADER_BYTES + DESC_BYTES * i;

        if (u[i].data != NULL) {
            uint8_t *s = buf + (nd + j++) * SECTOR;

            memcpy(d, "desc", 4);
            memcpy(d + 4, u[i].data + SECTOR - 4, 4);  /* TrailingBytes */
            memcpy(d + 8, u[i].data, 8);               /* LeadingBytes */
            memcpy(s, "data", 4);
            tm_put_le32(s + 4, (uint32_t)(seq >> 32));
            memcpy(s + 8, u[i].data + 8, SECTOR - 12);
            tm_put_le32(s + SECTOR - 4, (uint32_t)seq);
        } else {
            memcpy(d, "zero", 4);
            tm_put_le64(d + 8, u[i].len);
        }
        tm_put_le64(d + 16, u[i].file_off);
        tm_put_le64(d + 24, seq);
    }
    tm_put_le32(buf + 4, tm_crc32c(0, buf, length));
}

/* Writes the entry at write_pos, in one run or two when it wraps. */
static int
entry_write(struct vhdx_log *lg, const uint8_t *buf, uint32_t length)
{
    uint32_t first = lg->log_len - lg->write_pos;
    int rc;

    if (first > length)
        first = length;
    rc = tm_io_pwrite_all(lg->io, buf, first, lg->log_off + lg->write_pos);
    if (rc == 0 && first < length)
        rc = tm_io_pwrite_all(lg->io, buf + first, length - first,
                              lg->log_off);
    return rc;
}

static int
apply_updates(struct tm_io *io, const struct vhdx_log_update *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = u[i].data != NULL
                     ? tm_io_pwrite_all(io, u[i].data, SECTOR, u[i].file_off)
                     : zero_range(io, u[i].file_off, u[i].len);

        if (rc < 0)
            return rc;
    }
    return 0;
}

int
vhdx_log_commit(struct vhdx_log *lg, const struct vhdx_log_update *updates,
                size_t n, uint64_t file_size, uint64_t last_file_off)
{
    uint64_t sectors = lg->log_len / SECTOR;
    /* CRASH: FlushedFileOffset promises the file is at least this long
     * after a power cut; replay refuses a shorter file as truncated.  The
     * caller's size is durable, so round it down, never up. */
    uint64_t flushed = file_size / VHDX_MiB * VHDX_MiB;
    uint64_t last = round_up_mib(last_file_off);
    size_t i = 0;

    for (size_t k = 0; k < n; k++) {
        const struct vhdx_log_update *u = &updates[k];

        if (u->file_off % SECTOR != 0 || u->len == 0 ||
            u->len % SECTOR != 0 || (u->data != NULL && u->len != SECTOR) ||
            u->file_off > LOG_MAX_TARGET || u->len > LOG_MAX_ZERO ||
            u->file_off + u->len > LOG_MAX_TARGET)
            return TM_E_INVALID;
    }
    if (last < flushed)
        last = round_up_mib(file_size);
    /* n == 0 still writes one entry, with no descriptors: the writer's
     * first entry, made durable before the header names its GUID. */
    do {
        uint64_t count = 0;
        uint64_t data = 0;
        uint64_t nd;
        uint32_t length;
        uint8_t *buf;
        int rc;

        /* As many updates as fit the log in one entry. */
        while (i + count < n) {
            uint64_t d = data + (updates[i + count].data != NULL);

            if (desc_sectors(count + 1) + d > sectors)
                break;
            count++;
            data = d;
        }
        if (count == 0 && n > 0)
            return TM_E_INVALID;        /* a log under 8 KiB */
        nd = desc_sectors(count);
        length = (uint32_t)((nd + data) * SECTOR);
        buf = malloc(length);
        if (buf == NULL)
            return -ENOMEM;
        entry_encode(lg, count > 0 ? updates + i : NULL, (size_t)count, nd,
                     length, flushed, last, buf);
        /* CRASH: the spec's order.  Until the first flush the entry may be
         * torn, and replay falls back to the previous (applied) one; after
         * it, replay redoes the updates whatever the apply left. */
        rc = entry_write(lg, buf, length);
        free(buf);
        if (rc == 0)
            rc = tm_io_flush(lg->io);
        if (rc == 0 && count > 0) {
            rc = apply_updates(lg->io, updates + i, (size_t)count);
            if (rc == 0)
                rc = tm_io_flush(lg->io);
        }
        if (rc < 0)
            return rc;
        lg->write_pos = (uint32_t)((lg->write_pos + length) % lg->log_len);
        lg->next_seq++;
        i += (size_t)count;
    } while (i < n);
    return 0;
}
