/* SPDX-License-Identifier: MIT */
/* rct.c - the change-tracking engine: a u16 'gen' per granule in memory,
 * the history of sealed IDs, the .mrt write-ahead region map and the
 * atomic .rct persist of docs/formats/rct.md.  The orders of writes that
 * make a crash harmless are marked CRASH:. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rct_int.h"

#define MAX_REGIONS (1ull << 26)        /* 8 MiB of .mrt bitmap at most */
#define MRT_WRITE_CHUNK 256u            /* sectors per pwrite at persist */

struct tm_rct {
    struct tm_io *rct_io;
    struct tm_io *mrt_io;
    struct tm_err err;
    bool poisoned;

    /* Geometry and binding. */
    uint32_t gran;
    unsigned gran_shift;
    uint64_t region;
    uint64_t regions;
    uint64_t granules;
    struct tm_rct_binding binding;
    uint32_t flags;             /* RCT_FLAG_DISABLED kept across persists */

    /* The model. */
    uint16_t *gens;
    struct tm_guid lineage;
    uint16_t epoch;             /* current, open */
    uint32_t next_counter;
    struct rct_hist *hist;
    uint32_t nhist;
    uint32_t hist_cap;
    struct rct_former former[RCT_MAX_FORMER];
    uint32_t nformer;
    bool newer_changes;

    /* The .rct as on disk. */
    uint64_t seq;               /* of the current header (0: none) */
    bool have_cur;              /* a valid header names cur_body_* */
    unsigned cur_slot;
    uint64_t cur_body_off, cur_body_len;
    uint64_t prev_body_end;     /* end of the body the other slot names */

    /* The .mrt: the regions durably marked since the last persist, in
     * the sector layout (region r = bit r & 7 of byte r >> 3). */
    uint8_t *durable;
    uint32_t nsectors;
    uint64_t mrt_seq;
};

static unsigned
log2u(uint64_t v)
{
    unsigned n = 0;

    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

static int
poison(struct tm_rct *t, int rc, const char *what)
{
    t->poisoned = true;
    return tm_err_set(&t->err, rc, "%s failed: %s; the handle is poisoned",
                      what, tm_strerror(rc));
}

static int
check_usable(struct tm_rct *t)
{
    tm_err_clear(&t->err);
    if (t->poisoned)
        return tm_err_set(&t->err, TM_E_POISONED,
                          "an earlier write failed: close and reopen");
    return 0;
}

/* ---- geometry and allocation ------------------------------------------- */

static int
set_geometry(struct tm_rct *t, uint32_t gran, uint64_t region, uint64_t vs)
{
    t->gran = gran;
    t->gran_shift = log2u(gran);
    t->region = region;
    t->regions = rct_div_up(vs, region);
    t->granules = rct_div_up(vs, gran);
    t->binding.virtual_size = vs;
    t->nsectors = (uint32_t)rct_div_up(t->regions, RCT_MRT_BITS_PER_SECTOR);
    free(t->gens);
    free(t->durable);
    t->gens = calloc(t->granules, sizeof(*t->gens));
    t->durable = calloc(t->nsectors, RCT_MRT_SECTOR_BYTES - 8);
    if (t->gens == NULL || t->durable == NULL)
        return -ENOMEM;
    return 0;
}

static int
hist_append(struct tm_rct *t, uint32_t counter, uint16_t epoch)
{
    if (t->nhist == RCT_MAX_HISTORY) {
        /* Full: the oldest ID ages out (queries on it: missing). */
        memmove(t->hist, t->hist + 1, (t->nhist - 1) * sizeof(*t->hist));
        t->nhist--;
    }
    if (t->nhist == t->hist_cap) {
        uint32_t cap = t->hist_cap ? t->hist_cap * 2 : 64;
        struct rct_hist *h;

        if (cap > RCT_MAX_HISTORY)
            cap = RCT_MAX_HISTORY;
        h = realloc(t->hist, cap * sizeof(*h));
        if (h == NULL)
            return -ENOMEM;
        t->hist = h;
        t->hist_cap = cap;
    }
    t->hist[t->nhist].counter = counter;
    t->hist[t->nhist].epoch = epoch;
    t->nhist++;
    return 0;
}

static void
former_push(struct tm_rct *t, const struct tm_guid *lineage, uint8_t reason)
{
    if (tm_guid_is_zero(lineage))
        return;
    if (t->nformer == RCT_MAX_FORMER) {
        memmove(t->former, t->former + 1,
                (RCT_MAX_FORMER - 1) * sizeof(t->former[0]));
        t->nformer--;
    }
    t->former[t->nformer].lineage = *lineage;
    t->former[t->nformer].reason = reason;
    t->nformer++;
}

static void
fill_gens(struct tm_rct *t, uint64_t g0, uint64_t g1, uint16_t gen)
{
    for (uint64_t g = g0; g <= g1 && g < t->granules; g++)
        t->gens[g] = gen;
}

/* ---- .mrt writes -------------------------------------------------------- */

static int
write_mrt_header(struct tm_rct *t, uint32_t highest)
{
    uint8_t buf[RCT_MRT_HDR_BYTES];
    struct rct_mrt_header h = {
        .lineage = t->lineage, .rct_seq = t->mrt_seq, .region = t->region,
        .regions = t->regions, .highest = highest,
    };

    rct_mrt_header_encode(&h, buf);
    return tm_io_pwrite_all(t->mrt_io, buf, sizeof(buf), 0);
}

static int
write_mrt_sector(struct tm_rct *t, uint32_t k)
{
    uint8_t buf[RCT_MRT_SECTOR_BYTES];

    rct_mrt_sector_encode(k, t->durable + (size_t)k * (RCT_MRT_SECTOR_BYTES - 8),
                          buf);
    return tm_io_pwrite_all(t->mrt_io, buf, sizeof(buf),
                            RCT_MRT_HDR_BYTES +
                                (uint64_t)k * RCT_MRT_SECTOR_BYTES);
}

/* The .rct as a body source or sink, from a body offset. */
struct io_at {
    struct tm_io *io;
    uint64_t off;
};

static int
io_at_read(void *user, void *buf, size_t len, uint64_t off)
{
    struct io_at *a = user;

    return tm_io_pread_all(a->io, buf, len, a->off + off);
}

static int
io_at_write(void *user, const void *buf, size_t len, uint64_t off)
{
    struct io_at *a = user;

    return tm_io_pwrite_all(a->io, buf, len, a->off + off);
}

/* ---- persist ------------------------------------------------------------ */

static uint64_t
round4k(uint64_t v)
{
    return (v + 4095) & ~(uint64_t)4095;
}

/* CRASH: body (in the area no valid header names) → flush → header in
 * the other slot → flush: until the second flush the old header is
 * current, after it the new one, whose body CRC proves it complete.
 * Only then is the .mrt cleared: clearing it first could lose marks the
 * old .rct does not contain. */
static int
persist_locked(struct tm_rct *t, bool open)
{
    struct rct_header h = { 0 };
    uint8_t hdr[RCT_SLOT_BYTES];
    uint8_t *chunk;
    uint64_t body_len;
    uint64_t off;
    uint64_t size;
    unsigned slot;
    int rc;

    body_len = rct_body_len(t->nhist, t->nformer, t->gens, t->granules);
    if (!t->have_cur)
        off = RCT_BODY_MIN_OFF;
    else if (t->cur_body_off >= RCT_BODY_MIN_OFF + round4k(body_len))
        off = RCT_BODY_MIN_OFF;
    else
        off = round4k(t->cur_body_off + t->cur_body_len);
    {
        struct io_at sink = { t->rct_io, off };
        uint64_t wrote;

        /* In chunks: a body as large as the map is never held twice. */
        rc = rct_body_write_to(io_at_write, &sink, t->hist, t->nhist,
                               t->former, t->nformer, t->gens, t->granules,
                               &wrote, &h.body_crc);
        if (rc == 0 && wrote != body_len)
            rc = -EIO;
    }
    if (rc == 0)
        rc = tm_io_flush(t->rct_io);
    if (rc < 0)
        return poison(t, rc, "rct body write");

    h.seq = t->seq + 1;
    h.lineage = t->lineage;
    h.data_write_guid = t->binding.data_write_guid;
    if (open)
        h.pending_guid = t->binding.pending_guid;
    h.virtual_size = t->binding.virtual_size;
    h.granularity = t->gran;
    h.flags = (t->flags & RCT_FLAG_DISABLED) | (open ? RCT_FLAG_OPEN : 0);
    h.body_off = off;
    h.body_len = body_len;
    h.epoch = t->epoch;
    h.next_counter = t->next_counter;
    slot = t->have_cur ? 1 - t->cur_slot : 0;
    rct_header_encode(&h, hdr);
    rc = tm_io_pwrite_all(t->rct_io, hdr, sizeof(hdr),
                          (uint64_t)slot * RCT_SLOT_BYTES);
    if (rc == 0)
        rc = tm_io_flush(t->rct_io);
    if (rc < 0)
        return poison(t, rc, "rct header write");
    t->prev_body_end = t->have_cur ? t->cur_body_off + t->cur_body_len : 0;
    t->have_cur = true;
    t->cur_slot = slot;
    t->cur_body_off = off;
    t->cur_body_len = body_len;
    t->seq = h.seq;
    t->flags = h.flags;

    /* Space past both live bodies is garbage: give it back. */
    size = off + body_len;
    if (t->prev_body_end > size)
        size = t->prev_body_end;
    {
        uint64_t fsize;

        rc = tm_io_size(t->rct_io, &fsize);
        if (rc == 0 && fsize > size)
            rc = tm_io_truncate(t->rct_io, size);
        if (rc < 0)
            return poison(t, rc, "rct truncate");
    }

    /* CRASH: the .mrt for the new sequence, bitmap zeroed (sectors with
     * valid CRCs).  A crash before the flush leaves old bits: OR-ed in at
     * the next open, over-reporting only. */
    t->mrt_seq = t->seq;
    memset(t->durable, 0, (size_t)t->nsectors * (RCT_MRT_SECTOR_BYTES - 8));
    chunk = malloc((size_t)MRT_WRITE_CHUNK * RCT_MRT_SECTOR_BYTES);
    if (chunk == NULL)
        return poison(t, -ENOMEM, "mrt clear");
    rc = write_mrt_header(t, t->next_counter - 1);
    for (uint32_t k = 0; rc == 0 && k < t->nsectors; k += MRT_WRITE_CHUNK) {
        uint32_t n = t->nsectors - k;

        if (n > MRT_WRITE_CHUNK)
            n = MRT_WRITE_CHUNK;
        for (uint32_t i = 0; i < n; i++)
            rct_mrt_sector_encode(k + i, NULL,
                                  chunk + (size_t)i * RCT_MRT_SECTOR_BYTES);
        rc = tm_io_pwrite_all(t->mrt_io, chunk,
                              (size_t)n * RCT_MRT_SECTOR_BYTES,
                              RCT_MRT_HDR_BYTES +
                                  (uint64_t)k * RCT_MRT_SECTOR_BYTES);
    }
    free(chunk);
    if (rc == 0)
        rc = tm_io_flush(t->mrt_io);
    if (rc < 0)
        return poison(t, rc, "mrt clear");
    return 0;
}

int
tm_rct_persist(struct tm_rct *t, const struct tm_rct_binding *b, bool open)
{
    int rc;

    if (t == NULL)
        return TM_E_INVALID;
    rc = check_usable(t);
    if (rc < 0)
        return rc;
    if (b != NULL) {
        if (b->virtual_size != t->binding.virtual_size)
            return tm_err_set(&t->err, TM_E_INVALID,
                              "binding size %" PRIu64 " is not the tracked "
                              "size %" PRIu64, b->virtual_size,
                              t->binding.virtual_size);
        if (!open && !tm_guid_is_zero(&b->pending_guid))
            return tm_err_set(&t->err, TM_E_INVALID,
                              "a pending DataWriteGuid needs OPEN");
        t->binding.data_write_guid = b->data_write_guid;
        t->binding.pending_guid = b->pending_guid;
    } else if (!open) {
        memset(&t->binding.pending_guid, 0, sizeof(t->binding.pending_guid));
    }
    return persist_locked(t, open);
}

/* ---- create / open -------------------------------------------------------- */

static struct tm_rct *
handle_new(struct tm_io *rct, struct tm_io *mrt)
{
    struct tm_rct *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->rct_io = rct;
    t->mrt_io = mrt;
    return t;
}

static void
handle_free(struct tm_rct *t)
{
    if (t == NULL)
        return;
    tm_io_close(t->rct_io);
    tm_io_close(t->mrt_io);
    free(t->gens);
    free(t->durable);
    free(t->hist);
    free(t);
}

static int
check_binding(const struct tm_rct_binding *b, struct tm_err *err)
{
    if (b == NULL)
        return tm_err_set(err, TM_E_INVALID, "no binding");
    if (b->virtual_size == 0 || b->virtual_size > RCT_MAX_VIRTUAL_SIZE)
        return tm_err_set(err, TM_E_INVALID,
                          "virtual size %" PRIu64 " outside 1..64 TiB",
                          b->virtual_size);
    return 0;
}

/* Puts the two sidecar files into a new handle, or, when 'rc' (the
 * caller's checks) is an error, a file is missing or memory runs out,
 * closes them: their ownership passes either way. */
static int
adopt_files(struct tm_io *rct, struct tm_io *mrt, int rc, struct tm_rct **t,
            struct tm_err *err)
{
    *t = NULL;
    if (rc == 0 && (rct == NULL || mrt == NULL))
        rc = tm_err_set(err, TM_E_INVALID, "missing sidecar file");
    if (rc == 0 && (*t = handle_new(rct, mrt)) == NULL)
        rc = tm_err_set(err, -ENOMEM, "out of memory");
    if (rc < 0) {
        tm_io_close(rct);
        tm_io_close(mrt);
    }
    return rc;
}

static int
check_geometry(uint32_t gran, uint64_t region, uint64_t vs,
               struct tm_err *err)
{
    if (!rct_is_pow2(gran) || gran < TM_RCT_MIN_GRANULARITY ||
        gran > TM_RCT_MAX_GRANULARITY)
        return tm_err_set(err, TM_E_INVALID,
                          "granularity %" PRIu32
                          " is not a power of two in 4 KiB..2 MiB", gran);
    if (!rct_is_pow2(region) || region < gran || region > RCT_MAX_REGION)
        return tm_err_set(err, TM_E_INVALID,
                          "region size %" PRIu64 " is not a power of two "
                          ">= the granularity", region);
    if (rct_div_up(vs, region) > MAX_REGIONS)
        return tm_err_set(err, TM_E_INVALID,
                          "region size %" PRIu64 " gives more than 2^26 "
                          "regions", region);
    return 0;
}

/* Starts a new lineage with nothing changed and no ID, and persists it
 * (CRASH: until the new header is durable the old state stays current;
 * opening it again resets again). */
static int
start_lineage(struct tm_rct *t, const struct tm_rct_binding *b,
              uint32_t gran, uint64_t region, uint32_t flags)
{
    int rc;

    rc = tm_guid_generate(&t->lineage);
    if (rc < 0)
        return tm_err_set(&t->err, rc, "cannot draw a lineage GUID");
    t->binding = *b;
    rc = set_geometry(t, gran, region, b->virtual_size);
    if (rc < 0)
        return tm_err_set(&t->err, rc, "cannot allocate the map");
    t->epoch = 1;
    t->next_counter = 1;
    t->nhist = 0;
    t->flags = flags & RCT_FLAG_DISABLED;
    t->newer_changes = false;
    return persist_locked(t, false);
}

int
tm_rct_create(struct tm_io *rct, struct tm_io *mrt,
              const struct tm_rct_params *p, const struct tm_rct_binding *b,
              struct tm_rct **out, struct tm_err *err)
{
    uint32_t gran = p && p->granularity ? p->granularity
                                        : TM_RCT_DEFAULT_GRANULARITY;
    uint64_t region = p && p->region ? p->region : TM_RCT_DEFAULT_REGION;
    struct tm_rct *t;
    int rc;

    *out = NULL;
    rc = check_binding(b, err);
    if (rc == 0)
        rc = check_geometry(gran, region, b->virtual_size, err);
    rc = adopt_files(rct, mrt, rc, &t, err);
    if (rc < 0)
        return rc;
    rc = tm_io_truncate(rct, 0);
    if (rc == 0)
        rc = tm_io_truncate(mrt, 0);
    if (rc < 0) {
        tm_err_set(&t->err, rc, "cannot truncate the sidecars");
        goto out_free;
    }
    rc = start_lineage(t, b, gran, region, 0);
    if (rc < 0)
        goto out_free;
    *out = t;
    return 0;

out_free:
    if (err != NULL)
        *err = t->err;
    handle_free(t);
    return rc;
}

/* A .rct slot as found: its header, and what its body says of former
 * lineages once the body is checked. */
struct slot {
    int rc;                     /* header decode result */
    struct rct_header h;
    bool valid;                 /* header and body both good */
    struct rct_former former[RCT_MAX_FORMER];
    uint32_t nformer;
};


static bool
is_damage(int rc)
{
    return rc == TM_E_CORRUPT || rc == TM_E_TRUNCATED;
}

static int
read_slot(struct tm_rct *t, unsigned i, uint64_t fsize, struct slot *s)
{
    uint8_t buf[RCT_SLOT_BYTES];
    struct rct_body b;
    int rc;

    rc = tm_io_pread_all(t->rct_io, buf, sizeof(buf),
                         (uint64_t)i * RCT_SLOT_BYTES);
    if (rc == 0)
        rc = rct_header_decode(buf, sizeof(buf), &s->h, &t->err);
    s->rc = rc;
    if (rc < 0)
        return is_damage(rc) || rc == TM_E_UNSUPPORTED ? 0 : rc;
    if (s->h.body_off > fsize || s->h.body_len > fsize - s->h.body_off)
        return 0;
    {
        struct io_at src = { t->rct_io, s->h.body_off };

        rc = rct_body_decode_from(io_at_read, &src, &s->h, &b, NULL,
                                  &t->err);
    }
    if (rc < 0)
        return is_damage(rc) ? 0 : rc;
    free(b.hist);
    memcpy(s->former, b.former, sizeof(s->former));
    s->nformer = b.nformer;
    s->valid = true;
    return 0;
}

/* Reads the .mrt bitmap into t->durable; a sector that is short, torn or
 * mislabelled counts as all ones.  Returns whether any bit is set. */
static int
read_mrt_bitmap(struct tm_rct *t, bool *any)
{
    uint8_t buf[RCT_MRT_SECTOR_BYTES];
    const size_t bytes = RCT_MRT_SECTOR_BYTES - 8;

    *any = false;
    for (uint32_t k = 0; k < t->nsectors; k++) {
        uint8_t *dst = t->durable + (size_t)k * bytes;
        const uint8_t *bits;
        int rc;

        rc = tm_io_pread_all(t->mrt_io, buf, sizeof(buf),
                             RCT_MRT_HDR_BYTES +
                                 (uint64_t)k * RCT_MRT_SECTOR_BYTES);
        if (rc == 0)
            rc = rct_mrt_sector_decode(buf, sizeof(buf), k, &bits, NULL);
        if (rc < 0 && !is_damage(rc))
            return rc;
        if (rc < 0)
            memset(dst, 0xff, bytes);
        else
            memcpy(dst, bits, bytes);
    }
    /* Bits past the last region mean nothing: drop them. */
    for (uint64_t r = t->regions;
         r < (uint64_t)t->nsectors * RCT_MRT_BITS_PER_SECTOR; r++)
        t->durable[r >> 3] &= (uint8_t)~(1u << (r & 7));
    for (size_t i = 0; i < (size_t)t->nsectors * bytes && !*any; i++)
        *any = t->durable[i] != 0;
    return 0;
}

/* Files of the same names written by another program (Hyper-V names
 * its own tracking files so): no header slot of the .rct and not the
 * .mrt start with a signature of ours, and the .rct starts with
 * something, not the zeros a create cut short leaves.  They are left as
 * they are: TM_E_UNSUPPORTED, as for a version we do not know. */
static int
foreign_files(struct tm_rct *t, struct tm_io *rct, struct tm_io *mrt,
              uint64_t fsize)
{
    uint8_t p[3][8];
    uint64_t msize;
    int rc;

    if (fsize < 8)
        return 0;
    memset(p, 0, sizeof(p));
    rc = tm_io_pread_all(rct, p[0], 8, 0);
    if (rc == 0 && fsize >= RCT_SLOT_BYTES + 8)
        rc = tm_io_pread_all(rct, p[1], 8, RCT_SLOT_BYTES);
    if (rc == 0)
        rc = tm_io_size(mrt, &msize);
    if (rc == 0 && msize >= 8)
        rc = tm_io_pread_all(mrt, p[2], 8, 0);
    if (rc < 0)
        return tm_err_set(&t->err, rc, "cannot read the sidecars: %s",
                          tm_strerror(rc));
    if (rct_sig_kind(p[0]) != RCT_KIND_OTHER ||
        rct_sig_kind(p[1]) == RCT_KIND_OURS ||
        rct_sig_kind(p[2]) == RCT_KIND_OURS)
        return 0;
    return tm_err_set(&t->err, TM_E_UNSUPPORTED, "the tracking files are "
                      "not tidemark's (another program's, such as "
                      "Hyper-V's); they are left as they are");
}

static const char *
reason_name(int reason)
{
    switch (reason) {
    case TM_RCT_RESET_FOREIGN_WRITE:
        return "the disk was written without tracking (DataWriteGuid "
               "changed)";
    case TM_RCT_RESET_RESIZED:
        return "the disk was resized";
    case TM_RCT_RESET_CORRUPT:
        return "the tracking files were corrupt or mismatched";
    case TM_RCT_RESET_RESTARTED:
        return "tracking was disabled and enabled again, or reset on "
               "request";
    default:
        return "unknown";
    }
}

int
tm_rct_open(struct tm_io *rct, struct tm_io *mrt,
            const struct tm_rct_binding *b, struct tm_rct **out,
            enum tm_rct_open_state *state, struct tm_err *err)
{
    struct slot s[2] = { { 0 }, { 0 } };
    struct slot *cur = NULL;
    struct rct_mrt_header mh;
    struct rct_body body = { 0 };
    uint8_t mbuf[RCT_MRT_HDR_BYTES];
    enum tm_rct_open_state st = TM_RCT_CLEAN;
    struct tm_guid old_lineage = { { 0 } };
    uint32_t old_flags = 0;
    bool mrt_ok;
    uint64_t fsize;
    uint64_t max_seq = 0;
    uint32_t gran = TM_RCT_DEFAULT_GRANULARITY;
    uint64_t region = TM_RCT_DEFAULT_REGION;
    struct tm_rct *t;
    int rc;

    *out = NULL;
    if (state != NULL)
        *state = TM_RCT_CLEAN;
    rc = adopt_files(rct, mrt, check_binding(b, err), &t, err);
    if (rc < 0)
        return rc;

    /* CRASH: what a read returns may be a write no flush has covered
     * yet (a flush that failed leaves it in the page cache).  Treating
     * such an .mrt bit as durable would let a write through unprotected,
     * so everything we are about to read is made durable first, or the
     * open fails.  A flush writes nothing of ours: an unknown version is
     * still left as found. */
    rc = tm_io_flush(rct);
    if (rc == 0)
        rc = tm_io_flush(mrt);
    if (rc < 0) {
        tm_err_set(&t->err, rc, "cannot flush the sidecars");
        goto out_free;
    }
    rc = tm_io_size(rct, &fsize);
    if (rc < 0) {
        tm_err_set(&t->err, rc, "cannot size the rct file");
        goto out_free;
    }
    rc = foreign_files(t, rct, mrt, fsize);
    if (rc < 0)
        goto out_free;
    for (unsigned i = 0; i < 2; i++) {
        rc = read_slot(t, i, fsize, &s[i]);
        if (rc < 0) {
            tm_err_set(&t->err, rc, "cannot read rct header %u", i);
            goto out_free;
        }
        /* Versioning: a version we do not know is left alone. */
        if (s[i].rc == TM_E_UNSUPPORTED) {
            rc = TM_E_UNSUPPORTED;
            goto out_free;
        }
        if (s[i].rc == 0 && s[i].h.seq > max_seq)
            max_seq = s[i].h.seq;
        if (s[i].valid && (cur == NULL || s[i].h.seq > cur->h.seq))
            cur = &s[i];
    }
    rc = tm_io_pread_all(mrt, mbuf, sizeof(mbuf), 0);
    if (rc == 0)
        rc = rct_mrt_header_decode(mbuf, sizeof(mbuf), &mh, &t->err);
    if (rc == TM_E_UNSUPPORTED)
        goto out_free;
    if (rc < 0 && !is_damage(rc)) {
        tm_err_set(&t->err, rc, "cannot read the mrt header");
        goto out_free;
    }
    mrt_ok = rc == 0;

    /* What we know of the old state, for the former-lineage list and the
     * geometry of a reset. */
    for (unsigned i = 0; i < 2; i++)
        if (s[i].rc == 0 && s[i].h.seq == max_seq) {
            old_lineage = s[i].h.lineage;
            gran = s[i].h.granularity;
            old_flags = s[i].h.flags;
        }
    if (max_seq == 0 && mrt_ok)
        old_lineage = mh.lineage;
    if (cur != NULL) {
        memcpy(t->former, cur->former, sizeof(t->former));
        t->nformer = cur->nformer;
        old_lineage = cur->h.lineage;
        gran = cur->h.granularity;
        old_flags = cur->h.flags;
        t->have_cur = true;
        t->cur_slot = (unsigned)(cur - s);
        t->cur_body_off = cur->h.body_off;
        t->cur_body_len = cur->h.body_len;
    }
    t->seq = max_seq;
    if (mrt_ok && mh.region >= gran && rct_is_pow2(mh.region) &&
        rct_div_up(b->virtual_size, mh.region) <= MAX_REGIONS)
        region = mh.region;
    else if (region < gran)
        region = gran;

    if (cur == NULL)
        st = TM_RCT_RESET_CORRUPT;
    else if (!tm_guid_equal(&cur->h.data_write_guid, &b->data_write_guid) &&
             !((cur->h.flags & RCT_FLAG_OPEN) &&
               !tm_guid_is_zero(&cur->h.pending_guid) &&
               tm_guid_equal(&cur->h.pending_guid, &b->data_write_guid)))
        /* Neither the recorded GUID nor the one a writer announced before
         * renewing it (and crashed, before or after the renewal). */
        st = TM_RCT_RESET_FOREIGN_WRITE;
    else if (cur->h.virtual_size != b->virtual_size)
        st = TM_RCT_RESET_RESIZED;
    else if (!mrt_ok || !tm_guid_equal(&mh.lineage, &cur->h.lineage) ||
             mh.regions != rct_div_up(b->virtual_size, mh.region) ||
             mh.region < gran || mh.rct_seq > cur->h.seq)
        /* An .mrt newer than the .rct means the .rct we found is not the
         * one the .mrt was cleared against: its marks could be missing. */
        st = TM_RCT_RESET_CORRUPT;

    if (st != TM_RCT_CLEAN) {
        former_push(t, &old_lineage, (uint8_t)st);
        /* Tracking switched off stays off: writes made meanwhile are
         * what changed the DataWriteGuid. */
        rc = start_lineage(t, b, gran, region, old_flags);
        if (rc < 0)
            goto out_free;
        tm_err_set(err, 0, "tracking reset: %s", reason_name(st));
        goto out_ok;
    }

    /* The stored state. */
    t->lineage = cur->h.lineage;
    t->binding = *b;
    t->flags = cur->h.flags;
    rc = set_geometry(t, gran, region, b->virtual_size);
    if (rc < 0) {
        tm_err_set(&t->err, rc, "cannot allocate the map");
        goto out_free;
    }
    {
        struct io_at src = { rct, cur->h.body_off };

        rc = rct_body_decode_from(io_at_read, &src, &cur->h, &body, t->gens,
                                  &t->err);
    }
    if (rc < 0)
        goto out_free;
    t->hist = body.hist;
    t->nhist = t->hist_cap = body.nhist;
    body.hist = NULL;
    t->epoch = cur->h.epoch;
    t->next_counter = cur->h.next_counter;
    t->mrt_seq = mh.rct_seq;
    for (uint64_t g = 0; g < t->granules && !t->newer_changes; g++)
        t->newer_changes = t->gens[g] == t->epoch;

    {
        bool any;

        rc = read_mrt_bitmap(t, &any);
        if (rc < 0) {
            tm_err_set(&t->err, rc, "cannot read the mrt bitmap");
            goto out_free;
        }
        if (any || (cur->h.flags & RCT_FLAG_OPEN))
            st = TM_RCT_RECOVERED;
    }
    if (st == TM_RCT_RECOVERED) {
        /* Every granule of every marked region changed in the current
         * epoch, as far as we can tell: later than every retained ID. */
        for (uint64_t r = 0; r < t->regions; r++) {
            uint64_t g0, g1;

            if (!(t->durable[r >> 3] & (1u << (r & 7))))
                continue;
            g0 = (r * t->region) >> t->gran_shift;
            g1 = ((r + 1) * t->region - 1) >> t->gran_shift;
            fill_gens(t, g0, g1, t->epoch);
            t->newer_changes = true;
        }
    }
    /* IDs sealed after the last persist and lost with memory (a crash,
     * even one with nothing marked): the counters from the persisted next
     * counter up to the .mrt's highest handed out answer as the epoch
     * before the current one (the floor rule of resolve(): they share
     * this entry), and the counter goes on past them. */
    if (mh.highest >= t->next_counter) {
        st = TM_RCT_RECOVERED;
        rc = hist_append(t, t->next_counter, (uint16_t)(t->epoch - 1));
        if (rc < 0) {
            tm_err_set(&t->err, rc, "out of memory");
            goto out_free;
        }
        t->next_counter = mh.highest == UINT32_MAX ? UINT32_MAX
                                                   : mh.highest + 1;
    }

out_ok:
    if (state != NULL)
        *state = st;
    tm_err_clear(&t->err);
    *out = t;
    return 0;

out_free:
    free(body.hist);
    if (err != NULL) {
        int code = rc;

        *err = t->err;
        err->code = code;
    }
    handle_free(t);
    return rc;
}

/* ---- mark / seal ------------------------------------------------------------ */

int
tm_rct_mark(struct tm_rct *t, uint64_t off, uint64_t len)
{
    uint32_t k0 = UINT32_MAX, k1 = 0;
    uint64_t r0, r1;
    int rc;

    if (t == NULL)
        return TM_E_INVALID;
    rc = check_usable(t);
    if (rc < 0)
        return rc;
    if (len == 0)
        return 0;
    if (off > t->binding.virtual_size ||
        len > t->binding.virtual_size - off)
        return tm_err_set(&t->err, TM_E_RANGE,
                          "mark [%" PRIu64 ", +%" PRIu64 ") passes the "
                          "virtual size %" PRIu64, off, len,
                          t->binding.virtual_size);
    r0 = off / t->region;
    r1 = (off + len - 1) / t->region;
    for (uint64_t r = r0; r <= r1; r++) {
        uint8_t bit = (uint8_t)(1u << (r & 7));
        uint32_t k = (uint32_t)(r / RCT_MRT_BITS_PER_SECTOR);

        if (t->durable[r >> 3] & bit)
            continue;
        t->durable[r >> 3] |= bit;
        if (k < k0)
            k0 = k;
        if (k > k1)
            k1 = k;
    }
    /* CRASH: the regions are durable in the .mrt before the caller's
     * write can reach the disk: one flush for the whole call. */
    if (k0 != UINT32_MAX) {
        for (uint32_t k = k0; rc == 0 && k <= k1; k++)
            rc = write_mrt_sector(t, k);
        if (rc == 0)
            rc = tm_io_flush(t->mrt_io);
        if (rc < 0)
            return poison(t, rc, "mrt mark");
    }
    fill_gens(t, off >> t->gran_shift, (off + len - 1) >> t->gran_shift,
              t->epoch);
    t->newer_changes = true;
    return 0;
}

/* Renumbering, when epoch 65535 would open: the oldest half of the
 * history goes, and epochs shift down so the oldest kept one is 1.
 * Gens at or below it become 1 (no retained ID can tell them apart). */
static void
renumber(struct tm_rct *t)
{
    uint32_t drop = t->nhist / 2;
    uint16_t base, shift;

    if (t->nhist == 0)
        return;
    base = t->hist[drop].epoch;
    if (base <= 1)
        drop = t->nhist - 1;
    base = t->hist[drop].epoch;
    if (base < 1)
        base = 1;
    shift = (uint16_t)(base - 1);
    memmove(t->hist, t->hist + drop, (t->nhist - drop) * sizeof(*t->hist));
    t->nhist -= drop;
    for (uint32_t i = 0; i < t->nhist; i++)
        if (t->hist[i].epoch != 0)
            t->hist[i].epoch = t->hist[i].epoch <= base
                                   ? 1
                                   : (uint16_t)(t->hist[i].epoch - shift);
    for (uint64_t g = 0; g < t->granules; g++) {
        uint16_t v = t->gens[g];

        if (v != 0)
            t->gens[g] = v <= base ? 1 : (uint16_t)(v - shift);
    }
    t->epoch = (uint16_t)(t->epoch - shift);
}

int
tm_rct_seal(struct tm_rct *t, char id[TM_RCT_ID_MAX + 1])
{
    uint32_t counter;
    int rc;

    if (t == NULL || id == NULL)
        return TM_E_INVALID;
    id[0] = '\0';
    rc = check_usable(t);
    if (rc < 0)
        return rc;
    counter = t->next_counter;
    if (counter == UINT32_MAX)
        return tm_err_set(&t->err, TM_E_UNSUPPORTED,
                          "the lineage has used every ID counter");
    if (t->nhist == t->hist_cap) {
        rc = hist_append(t, 0, 0);      /* grow first: no failure later */
        if (rc < 0)
            return tm_err_set(&t->err, rc, "out of memory");
        t->nhist--;
    }
    /* CRASH: the counter is durable as "highest handed out" before the
     * ID exists for anyone, so no crash can make us hand it out twice. */
    rc = write_mrt_header(t, counter);
    if (rc == 0)
        rc = tm_io_flush(t->mrt_io);
    if (rc < 0)
        return poison(t, rc, "mrt header write (seal)");
    (void)hist_append(t, counter, t->epoch);
    t->next_counter++;
    if (t->epoch == RCT_MAX_EPOCH)
        renumber(t);
    t->epoch++;
    t->newer_changes = false;
    rct_id_format(&t->lineage, counter, id);
    return 0;
}

int
tm_rct_state(struct tm_rct *t, char id[TM_RCT_ID_MAX + 1],
             bool *newer_changes)
{
    if (t == NULL || id == NULL || newer_changes == NULL)
        return TM_E_INVALID;
    tm_err_clear(&t->err);
    id[0] = '\0';
    *newer_changes = t->newer_changes;
    if (t->next_counter > 1 && t->nhist > 0)
        rct_id_format(&t->lineage, t->next_counter - 1, id);
    return 0;
}

/* ---- query ---------------------------------------------------------------- */

/* The epoch an ID of this disk names, or why there is none. */
static int
resolve(struct tm_rct *t, const char *id, uint32_t *counter, uint16_t *epoch)
{
    struct tm_guid lineage;
    uint32_t c;
    uint32_t lo, hi;

    if (rct_id_parse(id, &lineage, &c) < 0)
        return tm_err_set(&t->err, TM_E_RCT_INVALID_ID,
                          "'%.60s' is not a change tracking ID",
                          id ? id : "(null)");
    if (!tm_guid_equal(&lineage, &t->lineage)) {
        for (uint32_t i = t->nformer; i-- > 0;)
            if (tm_guid_equal(&lineage, &t->former[i].lineage))
                return tm_err_set(&t->err, TM_E_RCT_RESET,
                                  "'%s': tracking was reset since: %s", id,
                                  reason_name(t->former[i].reason));
        return tm_err_set(&t->err, TM_E_RCT_OTHER_DISK,
                          "'%s' belongs to another disk", id);
    }
    if (c == 0 || c >= t->next_counter)
        return tm_err_set(&t->err, TM_E_RCT_INVALID_ID,
                          "'%s' was never issued", id);
    if (t->nhist == 0 || c < t->hist[0].counter)
        return tm_err_set(&t->err, TM_E_RCT_MISSING,
                          "'%s' is older than the oldest retained ID", id);
    /* Floor: the last entry whose counter is <= c.  Counters are
     * consecutive except those lost in a crash, which share the entry
     * recovery made for them. */
    lo = 0;
    hi = t->nhist - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;

        if (t->hist[mid].counter <= c)
            lo = mid;
        else
            hi = mid - 1;
    }
    *counter = c;
    *epoch = t->hist[lo].epoch;
    return 0;
}

/* First granule in [g, end) with gen > e, or end.  Zero words (four
 * granules never written) are skipped eight bytes at a time. */
static uint64_t
next_changed(const uint16_t *gens, uint64_t g, uint64_t end, uint16_t e)
{
    while (g < end && (g & 3) != 0) {
        if (gens[g] > e)
            return g;
        g++;
    }
    while (g + 4 <= end) {
        uint64_t w;

        memcpy(&w, gens + g, sizeof(w));
        if (w != 0 && (gens[g] > e || gens[g + 1] > e || gens[g + 2] > e ||
                       gens[g + 3] > e))
            break;
        g += 4;
    }
    while (g < end && gens[g] <= e)
        g++;
    return g;
}

static uint64_t
next_unchanged(const uint16_t *gens, uint64_t g, uint64_t end, uint16_t e)
{
    while (g < end && gens[g] > e)
        g++;
    return g;
}

int
tm_rct_query(struct tm_rct *t, const char *id, const char *until,
             uint64_t off, uint64_t len, struct tm_range *ranges,
             size_t *count, uint64_t *processed)
{
    uint32_t c_id, c_until;
    uint16_t e, e_until;
    uint64_t lo, hi, g, gend;
    size_t cap, n = 0;
    int rc;

    if (t == NULL || count == NULL || processed == NULL)
        return TM_E_INVALID;
    cap = *count;
    *count = 0;
    *processed = 0;
    rc = check_usable(t);
    if (rc < 0)
        return rc;
    if (ranges == NULL || cap == 0)
        return tm_err_set(&t->err, TM_E_INVALID, "no room for ranges");
    if (t->flags & RCT_FLAG_DISABLED)
        return tm_err_set(&t->err, TM_E_RCT_DISABLED,
                          "change tracking is disabled for the disk");
    rc = resolve(t, id, &c_id, &e);
    if (rc < 0)
        return rc;
    if (until != NULL) {
        rc = resolve(t, until, &c_until, &e_until);
        if (rc < 0)
            return rc;
        if (c_until < c_id)
            return tm_err_set(&t->err, TM_E_INVALID,
                              "'%s' is older than '%s'", until, id);
        /* Between the two: still every gen > epoch(id), a superset. */
    }
    lo = off;
    hi = len > UINT64_MAX - off ? UINT64_MAX : off + len;
    if (hi > t->binding.virtual_size)
        hi = t->binding.virtual_size;
    if (lo >= hi) {
        *processed = len;
        return 0;
    }
    g = lo >> t->gran_shift;
    gend = ((hi - 1) >> t->gran_shift) + 1;
    for (;;) {
        uint64_t a, b, s, x;

        g = next_changed(t->gens, g, gend, e);
        if (g == gend)
            break;
        x = next_unchanged(t->gens, g, gend, e);
        a = g << t->gran_shift;
        b = x << t->gran_shift;
        s = a < lo ? lo : a;
        ranges[n].off = s;
        ranges[n].len = (b > hi ? hi : b) - s;
        n++;
        g = x;
        if (n == cap) {
            *count = n;
            *processed = ranges[n - 1].off + ranges[n - 1].len - off;
            return 0;
        }
    }
    *count = n;
    *processed = len;
    return 0;
}

/* ---- disable / reset -------------------------------------------------------- */

int
tm_rct_disable(struct tm_rct *t)
{
    int rc;

    if (t == NULL)
        return TM_E_INVALID;
    rc = check_usable(t);
    if (rc < 0)
        return rc;
    t->flags |= RCT_FLAG_DISABLED;
    return persist_locked(t, false);
}

int
tm_rct_reset(struct tm_rct *t, const struct tm_rct_binding *b,
             enum tm_rct_open_state reason, const struct tm_rct_params *p)
{
    uint32_t gran;
    uint64_t region;
    int rc;

    if (t == NULL)
        return TM_E_INVALID;
    rc = check_usable(t);
    if (rc < 0)
        return rc;
    if (reason < TM_RCT_RESET_FOREIGN_WRITE ||
        reason > TM_RCT_RESET_RESTARTED)
        return tm_err_set(&t->err, TM_E_INVALID, "reset reason %d unknown",
                          (int)reason);
    gran = p && p->granularity ? p->granularity : t->gran;
    region = p && p->region ? p->region : t->region;
    if (region < gran)
        region = gran;
    rc = check_binding(b, &t->err);
    if (rc == 0)
        rc = check_geometry(gran, region, b->virtual_size, &t->err);
    if (rc < 0)
        return rc;
    /* CRASH: start_lineage persists; until its header is durable the old
     * lineage is current (its IDs still answer, correctly). */
    former_push(t, &t->lineage, (uint8_t)reason);
    return start_lineage(t, b, gran, region, 0);
}

/* ---- close / free / info ---------------------------------------------------- */

int
tm_rct_close(struct tm_rct *t, const struct tm_rct_binding *b)
{
    int rc;

    if (t == NULL)
        return 0;
    rc = tm_rct_persist(t, b, false);
    handle_free(t);
    return rc;
}

void
tm_rct_free(struct tm_rct *t)
{
    handle_free(t);
}

const struct tm_err *
tm_rct_err(const struct tm_rct *t)
{
    return t ? &t->err : NULL;
}

int
tm_rct_get_info(struct tm_rct *t, struct tm_rct_info *out)
{
    if (t == NULL || out == NULL)
        return TM_E_INVALID;
    memset(out, 0, sizeof(*out));
    out->granularity = t->gran;
    out->region = t->region;
    out->virtual_size = t->binding.virtual_size;
    out->lineage = t->lineage;
    out->sealed = t->nhist;
    out->disabled = (t->flags & RCT_FLAG_DISABLED) != 0;
    out->memory = t->granules * sizeof(*t->gens) +
                  (uint64_t)t->nsectors * (RCT_MRT_SECTOR_BYTES - 8) +
                  (uint64_t)t->hist_cap * sizeof(*t->hist) + sizeof(*t);
    return 0;
}
