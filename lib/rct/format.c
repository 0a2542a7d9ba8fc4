/* SPDX-License-Identifier: MIT */
/* format.c - decode and encode of the .rct header slots and body, the
 * .mrt header and bitmap sectors (docs/formats/rct.md), and of RCT IDs.
 * Pure functions of their buffers: no I/O, inputs never modified, every
 * field validated with a message that names it. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rct_int.h"

static const uint8_t RCT_SIG[8] = { 't', 'm', 'r', 'c', 't', 0, 0, 1 };
static const uint8_t MRT_SIG[8] = { 't', 'm', 'm', 'r', 't', 0, 0, 1 };

enum rct_kind
rct_sig_kind(const uint8_t p[8])
{
    static const uint8_t zero[8];

    if (memcmp(p, RCT_SIG, 5) == 0 || memcmp(p, MRT_SIG, 5) == 0)
        return RCT_KIND_OURS;
    return memcmp(p, zero, 8) == 0 ? RCT_KIND_ZERO : RCT_KIND_OTHER;
}

/* ---- .rct header slot -------------------------------------------------- */

int
rct_header_decode(const uint8_t *buf, size_t len, struct rct_header *h,
                  struct tm_err *err)
{
    uint32_t version;

    memset(h, 0, sizeof(*h));
    if (len < RCT_SLOT_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: %zu bytes, need 4096", len);
    if (memcmp(buf, RCT_SIG, sizeof(RCT_SIG)) != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: signature is not 'tmrct'");
    if (tm_le32(buf + 8) != tm_crc32c_skip(buf, RCT_SLOT_BYTES, 8))
        return tm_err_set(err, TM_E_CORRUPT, "rct header: bad checksum");
    version = tm_le32(buf + 12);
    if (version != RCT_VERSION)
        return tm_err_set(err, TM_E_UNSUPPORTED,
                          "rct header: format version %" PRIu32
                          " (this tidemark knows 1)", version);
    h->seq = tm_le64(buf + 16);
    memcpy(h->lineage.b, buf + 24, 16);
    memcpy(h->data_write_guid.b, buf + 40, 16);
    h->virtual_size = tm_le64(buf + 56);
    h->granularity = tm_le32(buf + 64);
    h->flags = tm_le32(buf + 68);
    h->body_off = tm_le64(buf + 72);
    h->body_len = tm_le64(buf + 80);
    h->body_crc = tm_le32(buf + 88);
    h->epoch = tm_le16(buf + 92);
    h->next_counter = tm_le32(buf + 94);
    memcpy(h->pending_guid.b, buf + 100, 16);

    if (h->seq == 0)
        return tm_err_set(err, TM_E_CORRUPT, "rct header: sequence is 0");
    if (tm_guid_is_zero(&h->lineage))
        return tm_err_set(err, TM_E_CORRUPT, "rct header: lineage is zero");
    if (h->virtual_size == 0 || h->virtual_size > RCT_MAX_VIRTUAL_SIZE)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: virtual size %" PRIu64
                          " outside 1..64 TiB", h->virtual_size);
    if (!rct_is_pow2(h->granularity) ||
        h->granularity < TM_RCT_MIN_GRANULARITY ||
        h->granularity > TM_RCT_MAX_GRANULARITY)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: granularity %" PRIu32
                          " is not a power of two in 4 KiB..2 MiB",
                          h->granularity);
    if ((h->flags & ~RCT_FLAGS_KNOWN) != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: unknown flags 0x%" PRIx32, h->flags);
    if (h->body_off < RCT_BODY_MIN_OFF || h->body_off % 4096 != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: body offset %" PRIu64
                          " is not a 4 KiB multiple >= 8192", h->body_off);
    if (h->body_len > rct_body_max_len(rct_div_up(h->virtual_size,
                                                  h->granularity)) ||
        h->body_len < 24)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: body length %" PRIu64
                          " impossible for the disk", h->body_len);
    if (h->epoch == 0 || h->epoch > RCT_MAX_EPOCH)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: current epoch %u outside 1..65534",
                          (unsigned)h->epoch);
    if (h->next_counter == 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: next ID counter is 0");
    if (!tm_guid_is_zero(&h->pending_guid) && !(h->flags & RCT_FLAG_OPEN))
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct header: a pending DataWriteGuid without OPEN");
    return 0;
}

void
rct_header_encode(const struct rct_header *h, uint8_t *buf)
{
    memset(buf, 0, RCT_SLOT_BYTES);
    memcpy(buf, RCT_SIG, sizeof(RCT_SIG));
    tm_put_le32(buf + 12, RCT_VERSION);
    tm_put_le64(buf + 16, h->seq);
    memcpy(buf + 24, h->lineage.b, 16);
    memcpy(buf + 40, h->data_write_guid.b, 16);
    tm_put_le64(buf + 56, h->virtual_size);
    tm_put_le32(buf + 64, h->granularity);
    tm_put_le32(buf + 68, h->flags);
    tm_put_le64(buf + 72, h->body_off);
    tm_put_le64(buf + 80, h->body_len);
    tm_put_le32(buf + 88, h->body_crc);
    tm_put_le16(buf + 92, h->epoch);
    tm_put_le32(buf + 94, h->next_counter);
    memcpy(buf + 100, h->pending_guid.b, 16);
    tm_put_le32(buf + 8, tm_crc32c(0, buf, RCT_SLOT_BYTES));
}

/* ---- .rct body --------------------------------------------------------- */

uint64_t
rct_body_max_len(uint64_t granules)
{
    return 4 + (uint64_t)RCT_MAX_HISTORY * RCT_HIST_ENTRY_BYTES + 4 +
           (uint64_t)RCT_MAX_FORMER * RCT_FORMER_ENTRY_BYTES + 16 +
           granules * RCT_RUN_BYTES;
}

/* A body moves in chunks through a callback, so neither a persist nor an
 * open holds more of it than this at once (the map itself is the
 * memory tracking costs; a copy of it as a body would double that). */
#define BODY_CHUNK (64u << 10)

struct body_in {
    rct_read_fn rd;
    void *user;
    uint64_t len;               /* the body's */
    uint64_t pos;               /* consumed so far */
    uint64_t fill;              /* read from the source so far */
    uint8_t *buf;
    size_t at, have;            /* unconsumed: buf[at .. have) */
    uint32_t crc;               /* of everything read */
};

/* Makes 'n' (<= 32) contiguous bytes available at *p and consumes them.
 * TM_E_CORRUPT when the body ends first, or the source's error. */
static int
in_take(struct body_in *in, size_t n, const uint8_t **p)
{
    if (in->have - in->at < n) {
        size_t keep = in->have - in->at;
        uint64_t want;
        int rc;

        memmove(in->buf, in->buf + in->at, keep);
        in->at = 0;
        in->have = keep;
        want = in->len - in->fill;
        if (want > BODY_CHUNK - keep)
            want = BODY_CHUNK - keep;
        if (want > 0) {
            rc = in->rd(in->user, in->buf + keep, (size_t)want, in->fill);
            if (rc < 0)
                return rc;
            in->crc = tm_crc32c(in->crc, in->buf + keep, (size_t)want);
            in->fill += want;
            in->have += (size_t)want;
        }
        if (in->have < n)
            return TM_E_CORRUPT;
    }
    *p = in->buf + in->at;
    in->at += n;
    in->pos += n;
    return 0;
}

/* Reads the whole body once for its CRC. */
static int
body_crc(rct_read_fn rd, void *user, uint64_t len, uint8_t *chunk,
         uint32_t *crc)
{
    *crc = 0;
    for (uint64_t off = 0; off < len;) {
        size_t n = len - off > BODY_CHUNK ? BODY_CHUNK : (size_t)(len - off);
        int rc = rd(user, chunk, n, off);

        if (rc < 0)
            return rc;
        *crc = tm_crc32c(*crc, chunk, n);
        off += n;
    }
    return 0;
}

int
rct_body_decode_from(rct_read_fn rd, void *user, const struct rct_header *h,
                     struct rct_body *b, uint16_t *gens, struct tm_err *err)
{
    uint64_t granules = rct_div_up(h->virtual_size, h->granularity);
    uint64_t next_granule = 0;
    struct body_in in = { .rd = rd, .user = user, .len = h->body_len };
    const uint8_t *p;
    uint32_t crc;
    int rc;

    memset(b, 0, sizeof(*b));
    in.buf = malloc(BODY_CHUNK);
    if (in.buf == NULL)
        return tm_err_set(err, -ENOMEM, "out of memory");
    /* The CRC first: no field of a damaged body is looked at. */
    rc = body_crc(rd, user, h->body_len, in.buf, &crc);
    if (rc < 0) {
        tm_err_set(err, rc, "rct body: cannot read it: %s", tm_strerror(rc));
        goto out_free;
    }
    if (crc != h->body_crc) {
        rc = tm_err_set(err, TM_E_CORRUPT, "rct body: bad checksum");
        goto out_free;
    }
    rc = TM_E_CORRUPT;

    /* History. */
    if (in_take(&in, 4, &p) < 0) {
        tm_err_set(err, rc, "rct body: ends in the history count");
        goto out_free;
    }
    b->nhist = tm_le32(p);
    if (b->nhist > RCT_MAX_HISTORY ||
        (uint64_t)b->nhist * RCT_HIST_ENTRY_BYTES > in.len - in.pos) {
        tm_err_set(err, rc, "rct body: history count %" PRIu32
                   " too large", b->nhist);
        goto out_free;
    }
    if (b->nhist > 0) {
        b->hist = malloc(b->nhist * sizeof(*b->hist));
        if (b->hist == NULL) {
            rc = tm_err_set(err, -ENOMEM, "out of memory");
            goto out_free;
        }
    }
    for (uint32_t i = 0; i < b->nhist; i++) {
        struct rct_hist *e = &b->hist[i];

        if (in_take(&in, RCT_HIST_ENTRY_BYTES, &p) < 0) {
            tm_err_set(err, rc, "rct body: ends in the history");
            goto out_free;
        }
        e->counter = tm_le32(p);
        e->epoch = tm_le16(p + 4);
        if (e->counter == 0 || e->counter >= h->next_counter) {
            tm_err_set(err, rc, "rct body: history entry %" PRIu32
                       " counter %" PRIu32 " outside 1..next counter %"
                       PRIu32, i, e->counter, h->next_counter);
            goto out_free;
        }
        if (e->epoch >= h->epoch) {
            tm_err_set(err, rc, "rct body: history entry %" PRIu32
                       " epoch %u not below the current epoch %u", i,
                       (unsigned)e->epoch, (unsigned)h->epoch);
            goto out_free;
        }
        if (i > 0 && (e->counter <= b->hist[i - 1].counter ||
                      e->epoch < b->hist[i - 1].epoch)) {
            tm_err_set(err, rc, "rct body: history entry %" PRIu32
                       " not ascending", i);
            goto out_free;
        }
    }

    /* Former lineages. */
    if (in_take(&in, 4, &p) < 0) {
        tm_err_set(err, rc, "rct body: ends in the former lineage count");
        goto out_free;
    }
    b->nformer = tm_le32(p);
    if (b->nformer > RCT_MAX_FORMER ||
        (uint64_t)b->nformer * RCT_FORMER_ENTRY_BYTES > in.len - in.pos) {
        tm_err_set(err, rc, "rct body: former lineage count %" PRIu32
                   " too large (at most 16)", b->nformer);
        goto out_free;
    }
    for (uint32_t i = 0; i < b->nformer; i++) {
        struct rct_former *f = &b->former[i];

        if (in_take(&in, RCT_FORMER_ENTRY_BYTES, &p) < 0) {
            tm_err_set(err, rc, "rct body: ends in the former lineages");
            goto out_free;
        }
        memcpy(f->lineage.b, p, 16);
        f->reason = p[16];
        if (f->reason < TM_RCT_RESET_FOREIGN_WRITE ||
            f->reason > TM_RCT_RESET_RESTARTED) {
            tm_err_set(err, rc, "rct body: former lineage %" PRIu32
                       " reason %u unknown", i, (unsigned)f->reason);
            goto out_free;
        }
    }

    /* Map. */
    if (in_take(&in, 16, &p) < 0) {
        tm_err_set(err, rc, "rct body: ends in the map counts");
        goto out_free;
    }
    b->granules = tm_le64(p);
    b->nruns = tm_le64(p + 8);
    if (b->granules != granules) {
        tm_err_set(err, rc, "rct body: granule count %" PRIu64
                   ", the header's disk has %" PRIu64, b->granules,
                   granules);
        goto out_free;
    }
    if (b->nruns > granules || b->nruns * RCT_RUN_BYTES != in.len - in.pos) {
        tm_err_set(err, rc, "rct body: run count %" PRIu64
                   " does not fill the body", b->nruns);
        goto out_free;
    }
    for (uint64_t i = 0; i < b->nruns; i++) {
        uint64_t first;
        uint32_t n;
        uint16_t gen;

        if (in_take(&in, RCT_RUN_BYTES, &p) < 0) {
            tm_err_set(err, rc, "rct body: ends in the runs");
            goto out_free;
        }
        first = tm_le64(p);
        n = tm_le32(p + 8);
        gen = tm_le16(p + 12);
        if (first < next_granule || n == 0 || first >= granules ||
            n > granules - first) {
            tm_err_set(err, rc, "rct body: run %" PRIu64 " (granule %"
                       PRIu64 ", %" PRIu32 ") overlaps, is empty or "
                       "passes the end", i, first, n);
            goto out_free;
        }
        if (gen == 0 || gen > h->epoch) {
            tm_err_set(err, rc, "rct body: run %" PRIu64 " gen %u outside "
                       "1..current epoch %u", i, (unsigned)gen,
                       (unsigned)h->epoch);
            goto out_free;
        }
        if (gens != NULL)
            for (uint64_t g = first; g < first + n; g++)
                gens[g] = gen;
        next_granule = first + n;
    }
    /* The source may have changed under the second pass (a reader beside
     * a writer): what was decoded must be what was checked. */
    if (in.crc != crc || in.fill != in.len) {
        tm_err_set(err, rc, "rct body: changed while it was read");
        goto out_free;
    }
    free(in.buf);
    return 0;

out_free:
    free(in.buf);
    free(b->hist);
    b->hist = NULL;
    return rc;
}

struct mem_src {
    const uint8_t *buf;
    size_t len;
};

static int
mem_read(void *user, void *buf, size_t len, uint64_t off)
{
    struct mem_src *m = user;

    if (off > m->len || len > m->len - off)
        return TM_E_CORRUPT;
    memcpy(buf, m->buf + off, len);
    return 0;
}

int
rct_body_decode(const uint8_t *buf, size_t len, const struct rct_header *h,
                struct rct_body *b, uint16_t *gens, struct tm_err *err)
{
    struct mem_src m = { buf, len };

    memset(b, 0, sizeof(*b));
    if (len != h->body_len)
        return tm_err_set(err, TM_E_CORRUPT,
                          "rct body: %zu bytes, header says %" PRIu64, len,
                          h->body_len);
    return rct_body_decode_from(mem_read, &m, h, b, gens, err);
}

struct body_out {
    rct_write_fn wr;
    void *user;
    uint8_t *buf;
    size_t at;
    uint64_t off;               /* written to the sink so far */
    uint32_t crc;
    int rc;
};

static void
out_flush(struct body_out *o)
{
    if (o->rc == 0 && o->at > 0) {
        o->crc = tm_crc32c(o->crc, o->buf, o->at);
        o->rc = o->wr(o->user, o->buf, o->at, o->off);
        o->off += o->at;
    }
    o->at = 0;
}

/* Room for 'n' (<= 32) zeroed bytes at the end of the chunk. */
static uint8_t *
out_room(struct body_out *o, size_t n)
{
    uint8_t *p;

    if (BODY_CHUNK - o->at < n)
        out_flush(o);
    p = o->buf + o->at;
    memset(p, 0, n);
    o->at += n;
    return p;
}

/* Runs of equal non-zero gen, u32 lengths at most.  Returns the index
 * past the run starting at or after 'g' (*start its first granule), or
 * 'granules' with *start == granules when none is left. */
static uint64_t
next_run(const uint16_t *gens, uint64_t g, uint64_t granules,
         uint64_t *start)
{
    while (g < granules && gens[g] == 0)
        g++;
    *start = g;
    if (g == granules)
        return g;
    while (g < granules && gens[g] == gens[*start] &&
           g - *start < UINT32_MAX)
        g++;
    return g;
}

static uint64_t
count_runs(const uint16_t *gens, uint64_t granules)
{
    uint64_t nruns = 0, start;

    for (uint64_t g = next_run(gens, 0, granules, &start); start < granules;
         g = next_run(gens, g, granules, &start))
        nruns++;
    return nruns;
}

uint64_t
rct_body_len(uint32_t nhist, uint32_t nformer, const uint16_t *gens,
             uint64_t granules)
{
    return 4 + (uint64_t)nhist * RCT_HIST_ENTRY_BYTES + 4 +
           (uint64_t)nformer * RCT_FORMER_ENTRY_BYTES + 16 +
           count_runs(gens, granules) * RCT_RUN_BYTES;
}

int
rct_body_write_to(rct_write_fn wr, void *user, const struct rct_hist *hist,
                  uint32_t nhist, const struct rct_former *former,
                  uint32_t nformer, const uint16_t *gens, uint64_t granules,
                  uint64_t *len, uint32_t *crc)
{
    struct body_out o = { .wr = wr, .user = user };
    uint64_t start;
    uint8_t *p;

    o.buf = malloc(BODY_CHUNK);
    if (o.buf == NULL)
        return -ENOMEM;
    tm_put_le32(out_room(&o, 4), nhist);
    for (uint32_t i = 0; i < nhist; i++) {
        p = out_room(&o, RCT_HIST_ENTRY_BYTES);
        tm_put_le32(p, hist[i].counter);
        tm_put_le16(p + 4, hist[i].epoch);
    }
    tm_put_le32(out_room(&o, 4), nformer);
    for (uint32_t i = 0; i < nformer; i++) {
        p = out_room(&o, RCT_FORMER_ENTRY_BYTES);
        memcpy(p, former[i].lineage.b, 16);
        p[16] = former[i].reason;
    }
    p = out_room(&o, 16);
    tm_put_le64(p, granules);
    tm_put_le64(p + 8, count_runs(gens, granules));
    for (uint64_t g = next_run(gens, 0, granules, &start); start < granules;
         g = next_run(gens, g, granules, &start)) {
        p = out_room(&o, RCT_RUN_BYTES);
        tm_put_le64(p, start);
        tm_put_le32(p + 8, (uint32_t)(g - start));
        tm_put_le16(p + 12, gens[start]);
    }
    out_flush(&o);
    free(o.buf);
    *len = o.off;
    *crc = o.crc;
    return o.rc;
}

struct mem_sink {
    uint8_t *buf;
    size_t len;
};

static int
mem_write(void *user, const void *buf, size_t len, uint64_t off)
{
    struct mem_sink *m = user;

    if (off > m->len || len > m->len - off)
        return -EIO;
    memcpy(m->buf + off, buf, len);
    return 0;
}

int
rct_body_encode(const struct rct_hist *hist, uint32_t nhist,
                const struct rct_former *former, uint32_t nformer,
                const uint16_t *gens, uint64_t granules, uint8_t **out,
                size_t *out_len)
{
    struct mem_sink m;
    uint64_t len;
    uint32_t crc;
    int rc;

    *out = NULL;
    *out_len = 0;
    m.len = (size_t)rct_body_len(nhist, nformer, gens, granules);
    m.buf = calloc(1, m.len);
    if (m.buf == NULL)
        return -ENOMEM;
    rc = rct_body_write_to(mem_write, &m, hist, nhist, former, nformer, gens,
                           granules, &len, &crc);
    if (rc < 0) {
        free(m.buf);
        return rc;
    }
    *out = m.buf;
    *out_len = (size_t)len;
    return 0;
}

/* ---- .mrt header and bitmap sectors ------------------------------------ */

int
rct_mrt_header_decode(const uint8_t *buf, size_t len,
                      struct rct_mrt_header *h, struct tm_err *err)
{
    uint32_t version;

    memset(h, 0, sizeof(*h));
    if (len < RCT_MRT_HDR_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "mrt header: %zu bytes, need 4096", len);
    if (memcmp(buf, MRT_SIG, sizeof(MRT_SIG)) != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "mrt header: signature is not 'tmmrt'");
    if (tm_le32(buf + 8) != tm_crc32c_skip(buf, RCT_MRT_HDR_BYTES, 8))
        return tm_err_set(err, TM_E_CORRUPT, "mrt header: bad checksum");
    version = tm_le32(buf + 12);
    if (version != RCT_VERSION)
        return tm_err_set(err, TM_E_UNSUPPORTED,
                          "mrt header: format version %" PRIu32
                          " (this tidemark knows 1)", version);
    memcpy(h->lineage.b, buf + 16, 16);
    h->rct_seq = tm_le64(buf + 32);
    h->region = tm_le64(buf + 40);
    h->regions = tm_le64(buf + 48);
    h->highest = tm_le32(buf + 56);
    if (tm_guid_is_zero(&h->lineage))
        return tm_err_set(err, TM_E_CORRUPT, "mrt header: lineage is zero");
    if (h->rct_seq == 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "mrt header: rct sequence is 0");
    if (!rct_is_pow2(h->region) || h->region < RCT_MIN_REGION ||
        h->region > RCT_MAX_REGION)
        return tm_err_set(err, TM_E_CORRUPT,
                          "mrt header: region size %" PRIu64
                          " is not a power of two in 4 KiB..64 TiB",
                          h->region);
    if (h->regions == 0 ||
        h->regions > rct_div_up(RCT_MAX_VIRTUAL_SIZE, h->region))
        return tm_err_set(err, TM_E_CORRUPT,
                          "mrt header: region count %" PRIu64
                          " impossible", h->regions);
    return 0;
}

void
rct_mrt_header_encode(const struct rct_mrt_header *h, uint8_t *buf)
{
    memset(buf, 0, RCT_MRT_HDR_BYTES);
    memcpy(buf, MRT_SIG, sizeof(MRT_SIG));
    tm_put_le32(buf + 12, RCT_VERSION);
    memcpy(buf + 16, h->lineage.b, 16);
    tm_put_le64(buf + 32, h->rct_seq);
    tm_put_le64(buf + 40, h->region);
    tm_put_le64(buf + 48, h->regions);
    tm_put_le32(buf + 56, h->highest);
    tm_put_le32(buf + 8, tm_crc32c(0, buf, RCT_MRT_HDR_BYTES));
}

int
rct_mrt_sector_decode(const uint8_t *buf, size_t len, uint32_t k,
                      const uint8_t **bits, struct tm_err *err)
{
    *bits = NULL;
    if (len < RCT_MRT_SECTOR_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "mrt sector %" PRIu32 ": %zu bytes, need 4096", k,
                          len);
    if (tm_le32(buf) != tm_crc32c_skip(buf, RCT_MRT_SECTOR_BYTES, 0))
        return tm_err_set(err, TM_E_CORRUPT,
                          "mrt sector %" PRIu32 ": bad checksum", k);
    if (tm_le32(buf + 4) != k)
        return tm_err_set(err, TM_E_CORRUPT,
                          "mrt sector %" PRIu32 ": index field says %"
                          PRIu32, k, tm_le32(buf + 4));
    *bits = buf + 8;
    return 0;
}

void
rct_mrt_sector_encode(uint32_t k, const uint8_t *bits, uint8_t *buf)
{
    tm_put_le32(buf, 0);
    tm_put_le32(buf + 4, k);
    if (bits != NULL)
        memcpy(buf + 8, bits, RCT_MRT_SECTOR_BYTES - 8);
    else
        memset(buf + 8, 0, RCT_MRT_SECTOR_BYTES - 8);
    tm_put_le32(buf, tm_crc32c(0, buf, RCT_MRT_SECTOR_BYTES));
}

/* ---- IDs ----------------------------------------------------------------- */

void
rct_id_format(const struct tm_guid *lineage, uint32_t counter, char *id)
{
    static const char hex[] = "0123456789abcdef";
    char g[TM_GUID_STR_LEN + 1];

    tm_guid_format(lineage, g);
    memcpy(id, "rctX:", 5);
    for (size_t i = 0; i < TM_GUID_STR_LEN; i++) {
        char c = g[i];

        if (c == '-')
            c = ':';
        else if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        id[5 + i] = c;
    }
    id[41] = ':';
    for (int i = 0; i < 8; i++)
        id[42 + i] = hex[(counter >> (28 - 4 * i)) & 0xf];
    id[50] = '\0';
}

int
rct_id_parse(const char *id, struct tm_guid *lineage, uint32_t *counter)
{
    static const size_t colons[] = { 13, 18, 23, 28, 41 };
    char g[TM_GUID_STR_LEN + 1];
    uint32_t c = 0;
    size_t n;

    if (id == NULL)
        return TM_E_RCT_INVALID_ID;
    n = strnlen(id, RCT_ID_LEN + 1);
    if (n != RCT_ID_LEN || memcmp(id, "rctX:", 5) != 0)
        return TM_E_RCT_INVALID_ID;
    for (size_t i = 5; i < RCT_ID_LEN; i++) {
        bool colon = false;

        for (size_t j = 0; j < sizeof(colons) / sizeof(colons[0]); j++)
            colon |= i == colons[j];
        if (colon ? id[i] != ':' : tm_hex_value(id[i]) < 0)
            return TM_E_RCT_INVALID_ID;
    }
    for (size_t i = 0; i < TM_GUID_STR_LEN; i++)
        g[i] = id[5 + i] == ':' ? '-' : id[5 + i];
    g[TM_GUID_STR_LEN] = '\0';
    if (tm_guid_parse(g, TM_GUID_STR_LEN, lineage) != 0)
        return TM_E_RCT_INVALID_ID;
    for (size_t i = 42; i < RCT_ID_LEN; i++)
        c = c << 4 | (uint32_t)tm_hex_value(id[i]);
    *counter = c;
    return 0;
}
