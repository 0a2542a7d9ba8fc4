/* SPDX-License-Identifier: MIT */
/* open.c - opening, creating and closing a VHDX, and the header update
 * procedure.  Open validates every structure it will rely on before the
 * first read is served; a dirty log is replayed first (MS-VHDX 2.3.3):
 * into the file for read-write opens, into an in-memory overlay for
 * read-only ones, so a read-only open never refuses a crashed file and
 * never serves stale metadata. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "tidemark/version.h"

static uint64_t
round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

struct tm_vhdx *
tm_vhdx_new(void)
{
    struct tm_vhdx *vd = calloc(1, sizeof(*vd));

    if (vd != NULL)
        vd->err.file_off = UINT64_MAX;
    return vd;
}

const struct tm_err *
tm_vhdx_err(const struct tm_vhdx *vd)
{
    return &vd->err;
}

bool
vhdx_is_fixed(const struct tm_vhdx *vd)
{
    return vd->p.leave_block_allocated && !vd->p.has_parent;
}

/* LMDB's rule: once a metadata write or flush has failed, the state on
 * disk is unknown to us; refuse everything until the file is reopened,
 * when the log replays. */
int
vhdx_poison(struct tm_vhdx *vd, int rc, const char *what)
{
    vd->poisoned = true;
    return tm_err_set(&vd->err, rc, "%s failed: %s; the handle is poisoned, "
                      "reopen the file to replay its log", what,
                      tm_strerror(rc));
}

/* MS-VHDX 2.2.2.1: copy the current header, bump the sequence number,
 * renew FileWriteGuid on the first update of the open (and DataWriteGuid
 * when asked), write it over the non-current slot, flush.  Done twice, so
 * both slots carry the new generation.  CRASH: a torn header fails its
 * checksum and the other slot, one generation older, stays current. */
int
vhdx_header_update(struct tm_vhdx *vd, bool new_data_guid,
                   const struct tm_guid *log_guid)
{
    struct vhdx_header h = vd->hdr;
    uint8_t buf[VHDX_HEADER_BYTES];
    int rc;

    if (!vd->modified) {
        rc = tm_guid_generate(&h.file_write_guid);
        if (rc < 0)
            return tm_err_set(&vd->err, rc, "cannot make a GUID");
    }
    if (new_data_guid && vd->have_next_dwg) {
        h.data_write_guid = vd->next_dwg;
    } else if (new_data_guid) {
        rc = tm_guid_generate(&h.data_write_guid);
        if (rc < 0)
            return tm_err_set(&vd->err, rc, "cannot make a GUID");
    }
    h.log_guid = *log_guid;
    for (int pass = 0; pass < 2; pass++) {
        unsigned slot = vd->hdr_slot ^ 1;
        uint64_t off = slot == 0 ? VHDX_HEADER1_OFF : VHDX_HEADER2_OFF;

        h.seq = vd->hdr.seq + 1;
        vhdx_header_encode(&h, buf);
        rc = tm_io_pwrite_all(vd->io, buf, sizeof(buf), off);
        if (rc == 0)
            rc = tm_io_flush(vd->io);
        if (rc < 0)
            return vhdx_poison(vd, rc, "header update");
        vd->hdr = h;
        vd->hdr_slot = slot;
    }
    vd->modified = true;
    if (new_data_guid) {
        vd->data_changed = true;
        vd->have_next_dwg = false;
    }
    return 0;
}

int
vhdx_set_data_write_guid(struct tm_vhdx *vd, const struct tm_guid *g)
{
    int rc = vhdx_begin_modify(vd, false);

    if (rc < 0)
        return rc;
    vd->next_dwg = *g;
    vd->have_next_dwg = true;
    return vhdx_header_update(vd, true, &vd->hdr.log_guid);
}

/* Called before anything reaches the file.  The first time, it renews
 * FileWriteGuid and brings the log into use; 'user_visible' changes renew
 * DataWriteGuid once per open (MS-VHDX 2.2.2: not for relocation, log
 * replay or our own bookkeeping).
 *
 * CRASH: the header must not name a LogGuid that no valid entry carries,
 * or the next open would find the log corrupt.  So the first entry of our
 * GUID (empty: it changes nothing) is written and flushed before the
 * header names the GUID, and only then may in-place metadata writes
 * begin. */
int
vhdx_begin_modify(struct tm_vhdx *vd, bool user_visible)
{
    int rc;

    if (vd->poisoned)
        return tm_err_set(&vd->err, TM_E_POISONED,
                          "an earlier write failed; reopen the file");
    if (vd->rdonly)
        return tm_err_set(&vd->err, TM_E_READONLY, "opened read-only");
    if (!vd->log_ready) {
        struct tm_guid g;

        if (vd->hdr.log_length < 2 * VHDX_LOG_SECTOR)
            return tm_err_set(&vd->err, TM_E_UNSUPPORTED,
                              "the file has no log to write metadata "
                              "through (log length %" PRIu32 ")",
                              vd->hdr.log_length);
        rc = tm_guid_generate(&g);
        if (rc < 0)
            return tm_err_set(&vd->err, rc, "cannot make a GUID");
        vhdx_log_init(&vd->log, vd->io, vd->hdr.log_offset,
                      vd->hdr.log_length, &g);
        rc = vhdx_log_commit(&vd->log, NULL, 0, vd->durable_size,
                             vd->file_end);
        if (rc < 0)
            return vhdx_poison(vd, rc, "log write");
        rc = vhdx_header_update(vd, user_visible, &g);
        if (rc < 0)
            return rc;
        vd->log_ready = true;
        return 0;
    }
    if (user_visible && !vd->data_changed)
        return vhdx_header_update(vd, true, &vd->hdr.log_guid);
    return 0;
}

int
tm_vhdx_begin_write(struct tm_vhdx *vd, const struct tm_guid *next)
{
    if (vd == NULL || !vd->is_open)
        return TM_E_INVALID;
    tm_err_clear(&vd->err);
    if (next != NULL && !vd->data_changed) {
        vd->next_dwg = *next;
        vd->have_next_dwg = true;
    }
    return vhdx_begin_modify(vd, true);
}

static int
read_header_slot(struct tm_vhdx *vd, unsigned slot, struct vhdx_header *h,
                 struct tm_err *err)
{
    uint8_t buf[VHDX_HEADER_BYTES];
    uint64_t off = slot == 0 ? VHDX_HEADER1_OFF : VHDX_HEADER2_OFF;
    int rc = tm_io_pread_all(vd->io, buf, sizeof(buf), off);

    if (rc < 0)
        return tm_err_set_at(err, rc, off, "cannot read header %u: %s",
                             slot + 1, tm_strerror(rc));
    rc = vhdx_header_decode(buf, sizeof(buf), h, err);
    if (rc < 0)
        tm_err_prefix(err, "copy %u", slot + 1);
    return rc;
}

static int
read_headers(struct tm_vhdx *vd)
{
    struct vhdx_header h[2];
    struct tm_err e[2];
    bool ok[2];
    int rc;

    for (unsigned s = 0; s < 2; s++) {
        tm_err_clear(&e[s]);
        ok[s] = read_header_slot(vd, s, &h[s], &e[s]) == 0;
    }
    if (!ok[0] && !ok[1])
        return tm_err_set(&vd->err, e[0].code == TM_E_UNSUPPORTED
                          ? TM_E_UNSUPPORTED : TM_E_CORRUPT,
                          "no valid header: %s; %s", e[0].msg, e[1].msg);
    rc = vhdx_header_pick(ok[0] ? &h[0] : NULL, ok[1] ? &h[1] : NULL,
                          &vd->err);
    if (rc < 0)
        return rc;
    vd->hdr_slot = (unsigned)rc;
    vd->hdr = h[rc];
    return 0;
}

static int
read_region_tables(struct tm_vhdx *vd)
{
    static const uint32_t offs[2] = { VHDX_RT1_OFF, VHDX_RT2_OFF };
    struct vhdx_region_table *t[2] = { NULL, NULL };
    struct tm_err e[2];
    uint8_t *buf = malloc(VHDX_RT_BYTES);
    int rc = 0;
    int good = -1;

    t[0] = malloc(sizeof(*t[0]));
    t[1] = malloc(sizeof(*t[1]));
    if (buf == NULL || t[0] == NULL || t[1] == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (int i = 1; i >= 0; i--) {
        tm_err_clear(&e[i]);
        rc = tm_io_pread_all(vd->rd, buf, VHDX_RT_BYTES, offs[i]);
        if (rc < 0)
            tm_err_set(&e[i], rc, "cannot read: %s", tm_strerror(rc));
        else
            rc = vhdx_region_table_decode(buf, VHDX_RT_BYTES, t[i], &e[i]);
        if (rc == 0)
            good = i;
        else if (rc == TM_E_UNSUPPORTED) {
            /* A required region we do not know: refuse, whatever the
             * other copy says. */
            tm_err_set(&vd->err, rc, "region table %d: %s", i + 1, e[i].msg);
            goto out;
        }
    }
    /* COMPAT: one damaged copy is tolerated, as QEMU does; 'check'
     * reports it. */
    if (good < 0) {
        rc = tm_err_set(&vd->err, TM_E_CORRUPT,
                        "no valid region table: region table 1: %s; "
                        "region table 2: %s", e[0].msg, e[1].msg);
        goto out;
    }
    rc = 0;
    vd->rt = t[good];
    t[good] = NULL;
out:
    free(t[0]);
    free(t[1]);
    free(buf);
    return rc;
}

static bool
ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

static int
read_item(struct tm_vhdx *vd, const struct tm_guid *id, const char *name,
          uint8_t *buf, uint32_t want, bool required)
{
    const struct vhdx_meta_entry *e = vhdx_meta_find(vd->mt, id, false);
    int rc;

    if (e == NULL) {
        if (!required)
            return 1;
        return tm_err_set(&vd->err, TM_E_CORRUPT,
                          "metadata: required item %s is missing", name);
    }
    if (e->len != want)
        return tm_err_set(&vd->err, TM_E_CORRUPT,
                          "metadata: item %s is %" PRIu32 " bytes, "
                          "not %" PRIu32, name, e->len, want);
    rc = tm_io_pread_all(vd->rd, buf, want, vd->meta_off + e->off);
    if (rc < 0)
        return tm_err_set_at(&vd->err, rc, vd->meta_off + e->off,
                             "metadata: cannot read item %s: %s", name,
                             tm_strerror(rc));
    return 0;
}

/* MS-VHDX 2.6.2.6: HasParent requires a parent locator (QEMU refuses the
 * file otherwise too). */
static int
read_locator(struct tm_vhdx *vd)
{
    const struct vhdx_meta_entry *e =
        vhdx_meta_find(vd->mt, &VHDX_GUID_PARENT_LOCATOR, false);
    uint8_t *buf;
    int rc;

    if (e == NULL || e->len == 0)
        return tm_err_set(&vd->err, TM_E_CORRUPT,
                          "metadata: the file is a differencing disk "
                          "(HasParent) but has no parent locator");
    buf = malloc(e->len);
    vd->loc = calloc(1, sizeof(*vd->loc));
    if (buf == NULL || vd->loc == NULL) {
        free(buf);
        return -ENOMEM;
    }
    rc = tm_io_pread_all(vd->rd, buf, e->len, vd->meta_off + e->off);
    if (rc < 0)
        tm_err_set_at(&vd->err, rc, vd->meta_off + e->off,
                      "metadata: cannot read the parent locator: %s",
                      tm_strerror(rc));
    else
        rc = vhdx_locator_decode(buf, e->len, vd->loc, &vd->err);
    if (rc < 0 && rc != -ENOMEM)
        tm_err_prefix(&vd->err, "metadata");
    free(buf);
    return rc;
}

static int
read_metadata(struct tm_vhdx *vd)
{
    uint8_t *buf = malloc(VHDX_METADATA_TABLE_BYTES);
    uint8_t item[16];
    int rc;

    vd->mt = malloc(sizeof(*vd->mt));
    if (buf == NULL || vd->mt == NULL) {
        free(buf);
        return -ENOMEM;
    }
    rc = tm_io_pread_all(vd->rd, buf, VHDX_METADATA_TABLE_BYTES,
                         vd->meta_off);
    if (rc < 0) {
        tm_err_set_at(&vd->err, rc, vd->meta_off,
                      "metadata: cannot read the table: %s", tm_strerror(rc));
        goto out;
    }
    rc = vhdx_meta_table_decode(buf, VHDX_METADATA_TABLE_BYTES, vd->meta_len,
                                vd->mt, &vd->err);
    if (rc < 0)
        goto out;

    rc = read_item(vd, &VHDX_GUID_FILE_PARAMS, "file parameters", item, 8,
                   true);
    if (rc == 0)
        rc = vhdx_file_params_decode(item, 8, &vd->p, &vd->err);
    if (rc == 0)
        rc = read_item(vd, &VHDX_GUID_VIRTUAL_SIZE, "virtual disk size",
                       item, 8, true);
    if (rc == 0)
        rc = vhdx_u64_item_decode(item, 8, &vd->p.virtual_size, &vd->err);
    if (rc == 0)
        rc = read_item(vd, &VHDX_GUID_VIRTUAL_DISK_ID, "virtual disk id",
                       item, 16, true);
    if (rc == 0)
        memcpy(vd->p.virtual_disk_id.b, item, 16);
    if (rc == 0)
        rc = read_item(vd, &VHDX_GUID_LOGICAL_SECTOR, "logical sector size",
                       item, 4, true);
    if (rc == 0)
        rc = vhdx_u32_item_decode(item, 4, &vd->p.logical_sector, &vd->err);
    if (rc == 0)
        rc = read_item(vd, &VHDX_GUID_PHYSICAL_SECTOR, "physical sector size",
                       item, 4, true);
    if (rc == 0)
        rc = vhdx_u32_item_decode(item, 4, &vd->p.physical_sector, &vd->err);
    if (rc < 0)
        goto out;
    rc = vhdx_params_validate(&vd->p, &vd->err);
    if (rc < 0)
        goto out;
    if (vd->p.has_parent)
        rc = read_locator(vd);
out:
    free(buf);
    return rc;
}

/* Where every fixed structure lies, and that none of them overlap or
 * run past the end of the file. */
static int
check_layout(struct tm_vhdx *vd, uint64_t file_size)
{
    const struct vhdx_region *bat = vhdx_region_find(vd->rt,
                                                     &VHDX_GUID_BAT);
    const struct vhdx_region *meta = vhdx_region_find(vd->rt,
                                                      &VHDX_GUID_METADATA);

    if (bat == NULL || meta == NULL)
        return tm_err_set(&vd->err, TM_E_CORRUPT,
                          "region table: the %s region is missing",
                          bat == NULL ? "BAT" : "metadata");
    vd->bat_off = bat->file_off;
    vd->bat_len = bat->len;
    vd->meta_off = meta->file_off;
    vd->meta_len = meta->len;
    if (vd->hdr.log_length > 0) {
        for (uint32_t i = 0; i < vd->rt->count; i++) {
            const struct vhdx_region *r = &vd->rt->e[i];

            if (ranges_overlap(r->file_off, r->len, vd->hdr.log_offset,
                               vd->hdr.log_length))
                return tm_err_set(&vd->err, TM_E_CORRUPT,
                                  "region table: a region at offset "
                                  "%" PRIu64 " overlaps the log at %" PRIu64,
                                  r->file_off, vd->hdr.log_offset);
        }
    }
    if (vd->bat_off + vd->bat_len > file_size)
        return tm_err_set(&vd->err, TM_E_TRUNCATED,
                          "the BAT region ends at %" PRIu64 ", past the end "
                          "of the file (%" PRIu64 " bytes): truncated file",
                          vd->bat_off + vd->bat_len, file_size);
    if (vd->meta_off + vd->meta_len > file_size)
        return tm_err_set(&vd->err, TM_E_TRUNCATED,
                          "the metadata region ends at %" PRIu64 ", past "
                          "the end of the file (%" PRIu64 " bytes): "
                          "truncated file", vd->meta_off + vd->meta_len,
                          file_size);
    if (vd->meta_len < VHDX_METADATA_TABLE_BYTES)
        return tm_err_set(&vd->err, TM_E_CORRUPT,
                          "the metadata region is %" PRIu32 " bytes, too "
                          "small for its table", vd->meta_len);
    return 0;
}

static void
release(struct tm_vhdx *vd)
{
    tm_io_close(vd->overlay);
    vd->overlay = NULL;
    tm_io_close(vd->io);
    vd->io = NULL;
    vd->rd = NULL;
    free(vd->rt);
    vd->rt = NULL;
    free(vd->mt);
    vd->mt = NULL;
    free(vd->bat);
    vd->bat = NULL;
    free(vd->dirty);
    vd->dirty = NULL;
    vd->ndirty = 0;
    free(vd->dirty_seen);
    vd->dirty_seen = NULL;
    vd->dirty_seen_len = 0;
    free(vd->to_punch);
    vd->to_punch = NULL;
    if (vd->loc != NULL) {
        vhdx_locator_free(vd->loc);
        free(vd->loc);
        vd->loc = NULL;
    }
    if (vd->sbm != NULL) {
        for (uint64_t c = 0; c < vd->sbm_count; c++)
            free(vd->sbm[c]);
        free(vd->sbm);
        vd->sbm = NULL;
    }
    vd->sbm_count = 0;
    tm_vhdx_close(vd->parent);
    vd->parent = NULL;
    free(vd->path);
    vd->path = NULL;
    vd->is_open = false;
}

int
vhdx_check_usable(struct tm_vhdx *vd, bool write)
{
    if (!vd->is_open)
        return tm_err_set(&vd->err, TM_E_INVALID, "the handle is not open");
    if (vd->poisoned)
        return tm_err_set(&vd->err, TM_E_POISONED,
                          "an earlier write failed; reopen the file");
    if (write && vd->rdonly)
        return tm_err_set(&vd->err, TM_E_READONLY, "opened read-only");
    return 0;
}

void
vhdx_release(struct tm_vhdx *vd)
{
    release(vd);
}

/* The open procedure of MS-VHDX 3.1, steps in order. */
static int
open_locked(struct tm_vhdx *vd, unsigned flags)
{
    uint8_t *fti = NULL;
    uint64_t size;
    int rc;

    vd->rdonly = (flags & TM_VHDX_RDONLY) != 0;
    vd->rd = vd->io;
    rc = tm_io_size(vd->io, &size);
    if (rc < 0)
        return tm_err_set(&vd->err, rc, "cannot get the file size: %s",
                          tm_strerror(rc));
    if (size < VHDX_HEADER_SECTION_BYTES) {
        if (size == 0)
            return tm_err_set(&vd->err, TM_E_TRUNCATED,
                              "not a VHDX file: the file is empty");
        return tm_err_set(&vd->err, TM_E_TRUNCATED,
                          "not a VHDX file: %" PRIu64 " bytes is smaller "
                          "than the 1 MiB header section (truncated?)",
                          size);
    }
    fti = malloc(VHDX_FTI_BYTES);
    if (fti == NULL)
        return -ENOMEM;
    rc = tm_io_pread_all(vd->io, fti, VHDX_FTI_BYTES, VHDX_FTI_OFF);
    if (rc == 0)
        rc = vhdx_fti_decode(fti, VHDX_FTI_BYTES, vd->creator,
                             sizeof(vd->creator), &vd->err);
    free(fti);
    if (rc < 0)
        return rc;
    rc = read_headers(vd);
    if (rc < 0)
        return rc;
    if (vd->hdr.log_length > 0 &&
        vd->hdr.log_offset + vd->hdr.log_length > size &&
        !tm_guid_is_zero(&vd->hdr.log_guid))
        return tm_err_set(&vd->err, TM_E_TRUNCATED,
                          "the log (offset %" PRIu64 ", %" PRIu32 " bytes) "
                          "runs past the end of the file (%" PRIu64
                          " bytes): truncated file", vd->hdr.log_offset,
                          vd->hdr.log_length, size);

    /* MS-VHDX 2.3.3: replay before any other structure is read. */
    if (!tm_guid_is_zero(&vd->hdr.log_guid)) {
        struct vhdx_log_replay_result res;

        memset(&res, 0, sizeof(res));
        if (vd->rdonly) {
            vd->overlay = tm_io_overlay_new(vd->io);
            if (vd->overlay == NULL)
                return -ENOMEM;
            vd->rd = vd->overlay;
            rc = vhdx_log_replay(vd->io, vd->overlay, &vd->hdr, &res,
                                 &vd->err);
            if (rc < 0)
                return rc;
        } else {
            /* A log we would refuse must leave the file untouched, so the
             * replay runs first into an overlay, where it validates every
             * entry without writing. */
            struct tm_io *dry = tm_io_overlay_new(vd->io);

            if (dry == NULL)
                return -ENOMEM;
            rc = vhdx_log_replay(vd->io, dry, &vd->hdr, &res, &vd->err);
            tm_io_close(dry);
            if (rc < 0)
                return rc;
            /* The replay is a modification: FileWriteGuid first, while
             * the header still names the log (a crash during the replay
             * replays again).  Not a user-visible one: DataWriteGuid
             * stays, so differencing children stay linked. */
            rc = vhdx_header_update(vd, false, &vd->hdr.log_guid);
            if (rc < 0)
                return rc;
            rc = vhdx_log_replay(vd->io, vd->io, &vd->hdr, &res, &vd->err);
            if (rc < 0)
                return vhdx_poison(vd, rc, "log replay");
            rc = tm_io_flush(vd->io);
            if (rc < 0)
                return vhdx_poison(vd, rc, "flush after log replay");
            rc = vhdx_header_update(vd, false,
                                    &(struct tm_guid){ { 0 } });
            if (rc < 0)
                return rc;
        }
        vd->log_replayed = res.replayed;
        rc = tm_io_size(vd->rd, &size);
        if (rc < 0)
            return rc;
    }

    rc = read_region_tables(vd);
    if (rc == 0)
        rc = check_layout(vd, size);
    if (rc == 0)
        rc = read_metadata(vd);
    if (rc < 0)
        return rc;
    vhdx_geometry(&vd->p, &vd->g);
    rc = vhdx_bat_load(vd, size);
    if (rc < 0)
        return rc;
    if (vd->p.has_parent) {
        vd->sbm_count = vd->g.bitmap_blocks;
        vd->sbm = calloc(vd->sbm_count + 1, sizeof(*vd->sbm));
        if (vd->sbm == NULL)
            return -ENOMEM;
    }

    vd->file_size = size;
    vd->durable_size = size;
    vd->file_end = round_up(size, VHDX_MiB);
    if (vd->hdr.log_length > 0 &&
        vd->hdr.log_offset + vd->hdr.log_length > vd->file_end)
        vd->file_end = vd->hdr.log_offset + vd->hdr.log_length;
    /* Every region, known or not: new blocks must never land on one. */
    for (uint32_t i = 0; i < vd->rt->count; i++) {
        uint64_t end = vd->rt->e[i].file_off + vd->rt->e[i].len;

        if (end > vd->file_end)
            vd->file_end = end;
    }
    for (uint64_t i = 0; i < vd->bat_count; i++) {
        uint64_t e = vd->bat[i];
        uint64_t len = vhdx_entry_space(&vd->g, &vd->p, i, e);
        uint64_t end = VHDX_BAT_OFF(e) + len;

        if (len > 0 && end > vd->file_end)
            vd->file_end = round_up(end, VHDX_MiB);
    }
    vd->is_open = true;
    return 0;
}

/* The start shared by open and create: takes ownership of 'io' whatever
 * happens, as vhdx.h promises. */
static int
attach(struct tm_vhdx *vd, struct tm_io *io)
{
    tm_err_clear(&vd->err);
    if (vd->is_open || vd->io != NULL) {
        tm_io_close(io);
        return tm_err_set(&vd->err, TM_E_INVALID, "handle already in use");
    }
    if (io == NULL)
        return tm_err_set(&vd->err, TM_E_INVALID, "no file given");
    vd->io = io;
    return 0;
}

/* A failed open or create frees everything but keeps the error detail. */
static int
detach_on_error(struct tm_vhdx *vd, int rc)
{
    struct tm_err keep = vd->err;

    if (rc >= 0)
        return rc;
    if (keep.code == 0)
        tm_err_set(&keep, rc, "%s", tm_strerror(rc));
    release(vd);
    vd->err = keep;
    return rc;
}

int
tm_vhdx_open(struct tm_vhdx *vd, struct tm_io *io, unsigned flags)
{
    int rc;

    if (vd == NULL) {
        tm_io_close(io);
        return TM_E_INVALID;
    }
    rc = attach(vd, io);
    if (rc < 0)
        return rc;
    return detach_on_error(vd, open_locked(vd, flags));
}

/* ---- create ------------------------------------------------------------ */

static int
validate_create(struct tm_vhdx *vd, struct tm_vhdx_create_params *p)
{
    const struct tm_vhdx *pa = p->parent;

    if (pa != NULL) {
        if (!pa->is_open)
            return tm_err_set(&vd->err, TM_E_INVALID,
                              "the parent handle is not open");
        if (p->fixed)
            return tm_err_set(&vd->err, TM_E_INVALID,
                              "a differencing disk cannot be fixed");
        if (p->parent_relative_path == NULL &&
            p->parent_volume_path == NULL &&
            p->parent_absolute_path == NULL)
            return tm_err_set(&vd->err, TM_E_INVALID,
                              "a differencing disk needs a path to its "
                              "parent");
        if (p->virtual_size == 0)
            p->virtual_size = pa->p.virtual_size;
        if (p->virtual_size < pa->p.virtual_size)
            return tm_err_set(&vd->err, TM_E_INVALID,
                              "virtual size %" PRIu64 " is smaller than "
                              "the parent's (%" PRIu64 ")", p->virtual_size,
                              pa->p.virtual_size);
        if (p->logical_sector != 0 &&
            p->logical_sector != pa->p.logical_sector)
            return tm_err_set(&vd->err, TM_E_INVALID,
                              "logical sector size %" PRIu32 " differs from "
                              "the parent's (%" PRIu32 ")", p->logical_sector,
                              pa->p.logical_sector);
        p->logical_sector = pa->p.logical_sector;
        if (p->physical_sector == 0)
            p->physical_sector = pa->p.physical_sector;
        if (!p->virtual_disk_id_set) {
            p->virtual_disk_id = pa->p.virtual_disk_id;
            p->virtual_disk_id_set = true;
        }
        if (p->block_size == 0)
            p->block_size = TM_VHDX_DEFAULT_DIFF_BLOCK_SIZE;
    }
    if (p->block_size == 0)
        p->block_size = TM_VHDX_DEFAULT_BLOCK_SIZE;
    if (p->logical_sector == 0)
        p->logical_sector = 512;
    if (p->physical_sector == 0)
        p->physical_sector = 4096;
    if (p->log_size == 0)
        p->log_size = TM_VHDX_DEFAULT_LOG_SIZE;
    if (p->block_size < TM_VHDX_MIN_BLOCK_SIZE ||
        p->block_size > TM_VHDX_MAX_BLOCK_SIZE ||
        (p->block_size & (p->block_size - 1)) != 0)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "block size %" PRIu32 " is not a power of two "
                          "from 1 MiB to 256 MiB", p->block_size);
    if (p->logical_sector != 512 && p->logical_sector != 4096)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "logical sector size %" PRIu32 " is not 512 or "
                          "4096", p->logical_sector);
    if (p->physical_sector != 512 && p->physical_sector != 4096)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "physical sector size %" PRIu32 " is not 512 or "
                          "4096", p->physical_sector);
    if (p->virtual_size == 0 || p->virtual_size > TM_VHDX_MAX_VIRTUAL_SIZE)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "virtual size %" PRIu64 " is not between one "
                          "sector and 64 TiB", p->virtual_size);
    if (p->virtual_size % p->logical_sector != 0)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "virtual size %" PRIu64 " is not a multiple of the "
                          "logical sector size %" PRIu32, p->virtual_size,
                          p->logical_sector);
    if (p->log_size % VHDX_MiB != 0)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "log size %" PRIu32 " is not a multiple of 1 MiB",
                          p->log_size);
    return 0;
}

/* Writes 'len' zero bytes at 'off' in large pieces. */
static int
write_zeros(struct tm_io *io, uint64_t off, uint64_t len)
{
    size_t chunk = 1u << 20;
    uint8_t *z = calloc(1, chunk);
    int rc = 0;

    if (z == NULL)
        return -ENOMEM;
    while (len > 0 && rc == 0) {
        size_t n = len < chunk ? (size_t)len : chunk;

        rc = tm_io_pwrite_all(io, z, n, off);
        off += n;
        len -= n;
    }
    free(z);
    return rc;
}

/* A child larger than its parent: what lies past the parent's end reads
 * zeros, and readers must not look for it in the parent (7-Zip and
 * libvhdi fail there).  So the blocks wholly past it are ZERO, and the
 * block the parent's end cuts gets its own copy: the parent's part, then
 * zeros.  Written before the headers, like the rest of create. */
static int
past_parent(struct tm_vhdx *vd, const struct tm_vhdx_create_params *p,
            const struct vhdx_geometry *g, uint64_t bat_off,
            uint64_t data_off, uint64_t end)
{
    uint64_t bs = p->block_size;
    uint64_t ps = p->parent->p.virtual_size;
    uint64_t first = (ps + bs - 1) / bs;
    uint64_t idx = vhdx_bat_index(g, first);
    uint8_t *buf = calloc(1, bs > 65536 ? bs : 65536);
    int rc = 0;

    if (buf == NULL)
        return -ENOMEM;
    if (ps % bs != 0) {
        uint64_t blk = ps / bs;
        uint8_t e[8];

        rc = tm_vhdx_read(p->parent, buf, (size_t)(ps - blk * bs),
                          blk * bs);
        if (rc < 0) {
            tm_err_set(&vd->err, rc, "cannot read the parent: %s",
                       p->parent->err.msg);
            goto out;
        }
        rc = tm_io_pwrite_all(vd->io, buf, bs, end);
        tm_put_le64(e, VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, end));
        if (rc == 0)
            rc = tm_io_pwrite_all(vd->io, e, 8,
                                  bat_off + vhdx_bat_index(g, blk) * 8);
        if (rc < 0)
            goto out;
    }
    /* Entries from the first block past the parent to the BAT's end, a
     * sector-sized piece at a time; bitmap slots keep their entries. */
    while (idx < g->bat_entries_write && rc == 0) {
        size_t n = 0;
        uint64_t start = idx;

        for (; n < 65536 / 8 && idx < g->bat_entries_write; n++, idx++) {
            uint64_t v = 0;

            if (vhdx_is_sb_index(g, idx))
                v = VHDX_BAT_ENTRY(VHDX_SB_PRESENT,
                                   data_off + idx / (g->chunk_ratio + 1) *
                                              VHDX_MiB);
            else if (idx - idx / (g->chunk_ratio + 1) < g->payload_blocks)
                v = VHDX_BAT_ENTRY(VHDX_PAYLOAD_ZERO, 0);
            tm_put_le64(buf + n * 8, v);
        }
        rc = tm_io_pwrite_all(vd->io, buf, n * 8, bat_off + start * 8);
    }
out:
    free(buf);
    return rc;
}

/* Layout, as Windows writes it in spirit: header section, log at 1 MiB,
 * metadata (1 MiB) after the log, BAT after the metadata, then payload.
 * Every structure is 1 MiB aligned; the BAT holds SB * (R + 1) entries,
 * so even a partial last chunk has its sector-bitmap slot.  CRASH: the
 * headers come after a flush of everything else, and the file type
 * identifier after a flush of the headers; until it lands the file is
 * not a VHDX at all, so a crash during create never leaves a half-valid
 * one. */
static int
create_locked(struct tm_vhdx *vd, struct tm_vhdx_create_params *p)
{
    struct vhdx_header h;
    struct vhdx_region_table *rt = NULL;
    struct vhdx_meta_table *mt = NULL;
    struct vhdx_params vp;
    struct vhdx_geometry g;
    uint8_t *buf = NULL;
    uint64_t log_off = VHDX_MiB;
    uint64_t meta_off = log_off + p->log_size;
    uint64_t bat_off = meta_off + VHDX_MiB;
    uint64_t bat_bytes, data_off;
    char creator[64];
    int rc;

    memset(&vp, 0, sizeof(vp));
    vp.block_size = p->block_size;
    vp.leave_block_allocated = p->fixed;
    vp.has_parent = p->parent != NULL;
    vp.virtual_size = p->virtual_size;
    vp.logical_sector = p->logical_sector;
    vp.physical_sector = p->physical_sector;
    if (p->virtual_disk_id_set) {
        vp.virtual_disk_id = p->virtual_disk_id;
    } else {
        rc = tm_guid_generate(&vp.virtual_disk_id);
        if (rc < 0)
            return tm_err_set(&vd->err, rc, "cannot make a GUID");
    }
    vhdx_geometry(&vp, &g);
    bat_bytes = round_up(g.bat_entries_write * 8, VHDX_MiB);
    if (bat_bytes > UINT32_MAX)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "the BAT would need %" PRIu64 " bytes, more than "
                          "a region can hold", bat_bytes);
    data_off = bat_off + bat_bytes;

    rc = tm_io_truncate(vd->io, 0);
    if (rc < 0)
        return tm_err_set(&vd->err, rc, "cannot truncate: %s",
                          tm_strerror(rc));
    buf = calloc(1, VHDX_FTI_BYTES);
    rt = calloc(1, sizeof(*rt));
    mt = calloc(1, sizeof(*mt));
    if (buf == NULL || rt == NULL || mt == NULL) {
        rc = -ENOMEM;
        goto out;
    }


    /* Both region tables, identical, Required = 1. */
    rt->count = 2;
    rt->e[0] = (struct vhdx_region){ VHDX_GUID_BAT, bat_off,
                                     (uint32_t)bat_bytes, true };
    rt->e[1] = (struct vhdx_region){ VHDX_GUID_METADATA, meta_off,
                                     (uint32_t)VHDX_MiB, true };
    memset(buf, 0, VHDX_RT_BYTES);
    vhdx_region_table_encode(rt, buf);
    rc = tm_io_pwrite_all(vd->io, buf, VHDX_RT_BYTES, VHDX_RT1_OFF);
    if (rc == 0)
        rc = tm_io_pwrite_all(vd->io, buf, VHDX_RT_BYTES, VHDX_RT2_OFF);
    if (rc < 0)
        goto out_io;

    /* The log area: zeros, so no stale entry of an earlier file remains. */
    rc = write_zeros(vd->io, log_off, p->log_size);
    if (rc < 0)
        goto out_io;

    /* Metadata: table, then the five system items packed from 64 KiB.
     * Flags as Windows writes them: 0x04 (required) on File Parameters,
     * 0x06 (virtual disk, required) on the four disk items. */
    {
        static const struct { uint32_t off, len; bool vdisk; } lay[5] = {
            { 0x10000, 8, false }, { 0x10008, 8, true },
            { 0x10010, 16, true }, { 0x10020, 4, true },
            { 0x10024, 4, true },
        };
        const struct tm_guid *ids[5] = {
            &VHDX_GUID_FILE_PARAMS, &VHDX_GUID_VIRTUAL_SIZE,
            &VHDX_GUID_VIRTUAL_DISK_ID, &VHDX_GUID_LOGICAL_SECTOR,
            &VHDX_GUID_PHYSICAL_SECTOR,
        };
        uint8_t *items;

        uint8_t *loc = NULL;
        size_t loc_len = 0;

        if (p->parent != NULL) {
            struct tm_vhdx_locator l;

            memset(&l, 0, sizeof(l));
            l.linkage = p->parent->hdr.data_write_guid;
            l.relative_path = (char *)p->parent_relative_path;
            l.volume_path = (char *)p->parent_volume_path;
            l.absolute_win32_path = (char *)p->parent_absolute_path;
            rc = vhdx_locator_encode(&l, &loc, &loc_len);
            if (rc < 0) {
                tm_err_set(&vd->err, rc, "cannot encode the parent "
                           "locator: %s", tm_strerror(rc));
                goto out;
            }
            if (loc_len > VHDX_MiB - 0x10028) {
                free(loc);
                rc = tm_err_set(&vd->err, TM_E_INVALID, "the parent "
                                "locator is too large (%zu bytes)", loc_len);
                goto out;
            }
        }
        memset(buf, 0, VHDX_METADATA_TABLE_BYTES);
        mt->count = 5;
        for (unsigned i = 0; i < 5; i++) {
            mt->e[i].id = *ids[i];
            mt->e[i].off = lay[i].off;
            mt->e[i].len = lay[i].len;
            mt->e[i].is_virtual_disk = lay[i].vdisk;
            mt->e[i].is_required = true;
        }
        /* The locator follows the system items, flags 0x04 as Windows
         * writes them. */
        if (loc != NULL) {
            mt->e[5].id = VHDX_GUID_PARENT_LOCATOR;
            mt->e[5].off = 0x10028;
            mt->e[5].len = (uint32_t)loc_len;
            mt->e[5].is_required = true;
            mt->count = 6;
            rc = tm_io_pwrite_all(vd->io, loc, loc_len, meta_off + 0x10028);
            free(loc);
            if (rc < 0)
                goto out_io;
        }
        vhdx_meta_table_encode(mt, buf);
        rc = tm_io_pwrite_all(vd->io, buf, VHDX_METADATA_TABLE_BYTES,
                              meta_off);
        if (rc < 0)
            goto out_io;
        memset(buf, 0, 64);
        items = buf;
        vhdx_file_params_encode(&vp, items);
        tm_put_le64(items + 8, vp.virtual_size);
        memcpy(items + 16, vp.virtual_disk_id.b, 16);
        tm_put_le32(items + 32, vp.logical_sector);
        tm_put_le32(items + 36, vp.physical_sector);
        rc = tm_io_pwrite_all(vd->io, items, 40, meta_off + 0x10000);
        if (rc < 0)
            goto out_io;
        rc = tm_io_truncate(vd->io, meta_off + VHDX_MiB);
        if (rc < 0)
            goto out_io;
    }

    /* BAT: all NOT_PRESENT for dynamic; for fixed, every payload block
     * FULLY_PRESENT at consecutive offsets, sector-bitmap slots zero. */
    if (p->fixed) {
        size_t per = VHDX_FTI_BYTES / 8;
        uint64_t done = 0;

        while (done < g.bat_entries_write) {
            size_t n = g.bat_entries_write - done < per
                       ? (size_t)(g.bat_entries_write - done) : per;

            memset(buf, 0, n * 8);
            for (size_t i = 0; i < n; i++) {
                uint64_t idx = done + i;
                uint64_t blk;

                if ((idx + 1) % (g.chunk_ratio + 1) == 0)
                    continue;           /* sector-bitmap slot */
                blk = idx - idx / (g.chunk_ratio + 1);
                if (blk >= g.payload_blocks)
                    continue;
                tm_put_le64(buf + i * 8,
                            VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT,
                                           data_off + blk * p->block_size));
            }
            rc = tm_io_pwrite_all(vd->io, buf, n * 8, bat_off + done * 8);
            if (rc < 0)
                goto out_io;
            done += n;
        }
        rc = tm_io_allocate(vd->io, bat_off,
                            data_off - bat_off +
                            g.payload_blocks * (uint64_t)p->block_size);
        if (rc < 0)
            goto out_io;
    } else if (p->parent != NULL) {
        /* COMPAT: every chunk gets its sector bitmap now, all clear (the
         * file stays sparse: 1 MiB of hole per 4 GiB of disk at 512-byte
         * sectors).  libvhdi consults the bitmap of any block that is not
         * FULLY_PRESENT and, for a chunk without one, takes the file's
         * first bytes as its bitmap. */
        uint8_t e[8];

        for (uint64_t k = 0; k < g.bitmap_blocks && rc == 0; k++) {
            tm_put_le64(e, VHDX_BAT_ENTRY(VHDX_SB_PRESENT,
                                          data_off + k * VHDX_MiB));
            rc = tm_io_pwrite_all(vd->io, e, 8,
                                  bat_off + vhdx_sb_index(&g, k) * 8);
        }
        if (rc == 0)
            rc = tm_io_truncate(vd->io, data_off +
                                g.bitmap_blocks * VHDX_MiB);
        if (rc == 0 && vp.virtual_size > p->parent->p.virtual_size)
            rc = past_parent(vd, p, &g, bat_off, data_off,
                             data_off + g.bitmap_blocks * VHDX_MiB);
        if (rc < 0)
            goto out_io;
    } else {
        rc = tm_io_truncate(vd->io, data_off);
        if (rc < 0)
            goto out_io;
    }

    rc = tm_io_flush(vd->io);
    if (rc < 0)
        goto out_io;

    /* Headers last: slot 1 then slot 2, both valid. */
    memset(&h, 0, sizeof(h));
    h.version = 1;
    h.log_length = p->log_size;
    h.log_offset = log_off;
    rc = tm_guid_generate(&h.file_write_guid);
    if (rc == 0)
        rc = tm_guid_generate(&h.data_write_guid);
    if (rc < 0)
        goto out_io;
    for (unsigned slot = 0; slot < 2; slot++) {
        uint8_t hb[VHDX_HEADER_BYTES];

        h.seq = slot + 1;
        vhdx_header_encode(&h, hb);
        rc = tm_io_pwrite_all(vd->io, hb, sizeof(hb),
                              slot == 0 ? VHDX_HEADER1_OFF
                                        : VHDX_HEADER2_OFF);
        if (rc < 0)
            goto out_io;
    }
    rc = tm_io_flush(vd->io);
    if (rc < 0)
        goto out_io;
    /* The file type identifier last: its signature is what makes the file
     * a VHDX, so a disk that reorders writes can never show a VHDX with
     * one header missing. */
    if (p->creator == NULL) {
        snprintf(creator, sizeof(creator), "tidemark %s", TM_VERSION_STRING);
        p->creator = creator;
    }
    memset(buf, 0, VHDX_FTI_BYTES);
    vhdx_fti_encode(p->creator, buf);
    rc = tm_io_pwrite_all(vd->io, buf, VHDX_FTI_BYTES, VHDX_FTI_OFF);
    if (rc == 0)
        rc = tm_io_flush(vd->io);
    if (rc < 0)
        goto out_io;
    rc = open_locked(vd, 0);
    goto out;

out_io:
    tm_err_set(&vd->err, rc, "cannot write the new file: %s",
               tm_strerror(rc));
out:
    free(mt);
    free(rt);
    free(buf);
    return rc;
}

int
tm_vhdx_create(struct tm_vhdx *vd, struct tm_io *io,
               const struct tm_vhdx_create_params *params)
{
    struct tm_vhdx_create_params p;
    int rc;

    if (vd == NULL || params == NULL) {
        tm_io_close(io);
        if (params != NULL)
            tm_vhdx_close(params->parent);
        return TM_E_INVALID;
    }
    rc = attach(vd, io);
    if (rc < 0) {
        tm_vhdx_close(params->parent);
        return rc;
    }
    p = *params;
    rc = validate_create(vd, &p);
    if (rc == 0)
        rc = create_locked(vd, &p);
    if (rc == 0 && p.parent != NULL)
        return detach_on_error(vd, tm_vhdx_attach_parent(vd, p.parent));
    tm_vhdx_close(p.parent);
    return detach_on_error(vd, rc);
}

/* ---- parents ------------------------------------------------------------ */

const struct tm_vhdx_locator *
tm_vhdx_locator(const struct tm_vhdx *vd)
{
    return vd->is_open ? vd->loc : NULL;
}

struct tm_vhdx *
tm_vhdx_parent(const struct tm_vhdx *vd)
{
    return vd->parent;
}

const char *
tm_vhdx_path(const struct tm_vhdx *vd)
{
    return vd->path;
}

/* MS-VHDX 2.6.2.6: the parent is the one the child was made from while
 * its DataWriteGuid is parent_linkage, or parent_linkage2 (set during a
 * merge before the parent changes). */
int
tm_vhdx_attach_parent(struct tm_vhdx *vd, struct tm_vhdx *parent)
{
    char want[40], have[40];
    const struct tm_guid *dwg;
    int rc = 0;

    tm_err_clear(&vd->err);
    if (parent == NULL || !parent->is_open)
        rc = tm_err_set(&vd->err, TM_E_INVALID, "no open parent given");
    else if (!vd->is_open || !vd->p.has_parent || vd->loc == NULL)
        rc = tm_err_set(&vd->err, TM_E_INVALID,
                        "not a differencing disk: it has no parent");
    else if (vd->parent != NULL)
        rc = tm_err_set(&vd->err, TM_E_INVALID,
                        "a parent is attached already");
    if (rc < 0)
        goto fail;
    dwg = &parent->hdr.data_write_guid;
    if (!tm_guid_equal(dwg, &vd->loc->linkage) &&
        !(vd->loc->has_linkage2 && tm_guid_equal(dwg, &vd->loc->linkage2))) {
        tm_guid_format(&vd->loc->linkage, want);
        tm_guid_format(dwg, have);
        rc = tm_err_set(&vd->err, TM_E_CHAIN,
                        "the parent has changed since the child was made: "
                        "its DataWriteGuid is %s, the child's "
                        "parent_linkage is %s", have, want);
        goto fail;
    }
    if (parent->p.logical_sector != vd->p.logical_sector) {
        rc = tm_err_set(&vd->err, TM_E_CHAIN,
                        "the parent's logical sector size (%" PRIu32 ") "
                        "differs from the child's (%" PRIu32 ")",
                        parent->p.logical_sector, vd->p.logical_sector);
        goto fail;
    }
    if (parent->p.virtual_size > vd->p.virtual_size) {
        rc = tm_err_set(&vd->err, TM_E_CHAIN,
                        "the parent (%" PRIu64 " bytes) is larger than the "
                        "child (%" PRIu64 " bytes)", parent->p.virtual_size,
                        vd->p.virtual_size);
        goto fail;
    }
    vd->parent = parent;
    return 0;
fail:
    tm_vhdx_close(parent);
    return rc;
}

/* ---- close ------------------------------------------------------------- */

/* Commits what is pending, flushes, and clears the header's LogGuid so
 * the next open has nothing to replay (QEMU does the same). */
int
tm_vhdx_close(struct tm_vhdx *vd)
{
    int rc = 0;

    if (vd == NULL)
        return 0;
    if (vd->is_open && !vd->rdonly && !vd->poisoned) {
        rc = tm_vhdx_flush(vd);
        if (rc == 0 && vd->log_ready)
            rc = vhdx_header_update(vd, false, &(struct tm_guid){ { 0 } });
    } else if (vd->is_open && vd->poisoned) {
        rc = TM_E_POISONED;     /* what was written may not be durable */
    }
    release(vd);
    free(vd);
    return rc;
}
