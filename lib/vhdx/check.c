/* SPDX-License-Identifier: MIT */
/* check.c - what 'vhd info', 'vhd check' and 'vhd dump' show: the census,
 * a structure check that reports every problem rather than stopping at
 * the first, and a dump of every structure as stored. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int
tm_vhdx_get_info(struct tm_vhdx *vd, struct tm_vhdx_info *out)
{
    const struct vhdx_geometry *g = &vd->g;
    int rc;

    memset(out, 0, sizeof(*out));
    tm_err_clear(&vd->err);
    if (!vd->is_open)
        return tm_err_set(&vd->err, TM_E_INVALID, "the handle is not open");
    out->type = vd->p.has_parent ? TM_VHDX_DIFFERENCING
                : vhdx_is_fixed(vd) ? TM_VHDX_FIXED : TM_VHDX_DYNAMIC;
    out->virtual_size = vd->p.virtual_size;
    rc = tm_io_size(vd->io, &out->file_size);
    if (rc < 0)
        return tm_err_set(&vd->err, rc, "cannot get the file size: %s",
                          tm_strerror(rc));
    out->block_size = vd->p.block_size;
    out->logical_sector = vd->p.logical_sector;
    out->physical_sector = vd->p.physical_sector;
    out->log_size = vd->hdr.log_length;
    out->log_offset = vd->hdr.log_offset;
    out->leave_block_allocated = vd->p.leave_block_allocated;
    out->has_parent = vd->p.has_parent;
    out->read_only = vd->rdonly;
    out->log_replayed = vd->log_replayed;
    out->virtual_disk_id = vd->p.virtual_disk_id;
    out->file_write_guid = vd->hdr.file_write_guid;
    out->data_write_guid = vd->hdr.data_write_guid;
    out->log_guid = vd->hdr.log_guid;
    out->header_seq = vd->hdr.seq;
    snprintf(out->creator, sizeof(out->creator), "%s", vd->creator);
    out->blocks_total = g->payload_blocks;
    for (uint64_t b = 0; b < g->payload_blocks; b++) {
        switch (VHDX_BAT_STATE(vd->bat[vhdx_bat_index(g, b)])) {
        case VHDX_PAYLOAD_NOT_PRESENT:
            out->blocks_not_present++;
            break;
        case VHDX_PAYLOAD_UNDEFINED:
            out->blocks_undefined++;
            break;
        case VHDX_PAYLOAD_ZERO:
            out->blocks_zero++;
            break;
        case VHDX_PAYLOAD_UNMAPPED:
        case VHDX_PAYLOAD_UNMAPPED_V095:
            out->blocks_unmapped++;
            break;
        case VHDX_PAYLOAD_FULLY_PRESENT:
            out->blocks_fully_present++;
            out->allocated_bytes += vd->p.block_size;
            break;
        case VHDX_PAYLOAD_PARTIALLY_PRESENT:
            out->blocks_partially_present++;
            out->allocated_bytes += vd->p.block_size;
            break;
        }
    }
    return 0;
}

/* ---- check ------------------------------------------------------------- */

struct reporter {
    tm_vhdx_report_fn fn;
    void *user;
    int problems;
};

static void report(struct reporter *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
report(struct reporter *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->problems++;
    if (r->fn != NULL)
        r->fn(r->user, msg);
}

struct extent {
    uint64_t off;
    uint64_t len;
};

static int
cmp_extent(const void *a, const void *b)
{
    uint64_t x = ((const struct extent *)a)->off;
    uint64_t y = ((const struct extent *)b)->off;

    return x < y ? -1 : x > y;
}
/* Both stored copies of the header and of the region table, as check and
 * repair see them: whether each decodes (and why not), and the region
 * tables' bytes.  Headers are read from the file itself; region tables
 * through vd->rd, so a read-only open sees the log's updates. */
struct copies {
    struct tm_err hdr_err[2];       /* code 0: that header is valid */
    struct tm_err rt_err[2];        /* code 0: that region table is valid */
    uint8_t *rt_raw[2];             /* VHDX_RT_BYTES each */
};

static void
free_copies(struct copies *c)
{
    free(c->rt_raw[0]);
    free(c->rt_raw[1]);
}

static int
read_copies(struct tm_vhdx *vd, struct copies *c)
{
    static const uint32_t hdr_off[2] = { VHDX_HEADER1_OFF, VHDX_HEADER2_OFF };
    static const uint32_t rt_off[2] = { VHDX_RT1_OFF, VHDX_RT2_OFF };
    struct vhdx_region_table *rt = malloc(sizeof(*rt));
    int rc = 0;

    memset(c, 0, sizeof(*c));
    c->rt_raw[0] = malloc(VHDX_RT_BYTES);
    c->rt_raw[1] = malloc(VHDX_RT_BYTES);
    if (rt == NULL || c->rt_raw[0] == NULL || c->rt_raw[1] == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (unsigned s = 0; s < 2 && rc == 0; s++) {
        uint8_t hb[VHDX_HEADER_BYTES];
        struct vhdx_header h;

        tm_err_clear(&c->hdr_err[s]);
        tm_err_clear(&c->rt_err[s]);
        rc = tm_io_pread_all(vd->io, hb, sizeof(hb), hdr_off[s]);
        if (rc == 0)
            (void)vhdx_header_decode(hb, sizeof(hb), &h, &c->hdr_err[s]);
        if (rc == 0)
            rc = tm_io_pread_all(vd->rd, c->rt_raw[s], VHDX_RT_BYTES,
                                 rt_off[s]);
        if (rc == 0)
            (void)vhdx_region_table_decode(c->rt_raw[s], VHDX_RT_BYTES, rt,
                                           &c->rt_err[s]);
    }
out:
    free(rt);
    if (rc < 0)
        free_copies(c);
    return rc;
}

/* Open has already refused what makes the file unusable; this looks for
 * what it tolerates: one damaged header or region table, copies that
 * differ, a pending log, reserved bits, blocks running past the end. */
int
tm_vhdx_check(struct tm_vhdx *vd, tm_vhdx_report_fn fn, void *user)
{
    struct reporter r = { fn, user, 0 };
    const struct vhdx_geometry *g = &vd->g;
    struct copies c;
    uint64_t size;
    int rc;

    tm_err_clear(&vd->err);
    if (!vd->is_open)
        return tm_err_set(&vd->err, TM_E_INVALID, "the handle is not open");
    rc = tm_io_size(vd->rd, &size);
    if (rc < 0)
        return rc;
    rc = read_copies(vd, &c);
    if (rc < 0)
        return rc;
    for (unsigned s = 0; s < 2; s++)
        if (c.hdr_err[s].code != 0)
            report(&r, "header %u is not valid: %s", s + 1,
                   c.hdr_err[s].msg);
    if (!tm_guid_is_zero(&vd->hdr.log_guid) && vd->rdonly)
        report(&r, "the log holds updates not yet applied to the file "
               "(replayed in memory; 'check --repair' applies them)");
    for (unsigned s = 0; s < 2; s++)
        if (c.rt_err[s].code != 0)
            report(&r, "region table %u is not valid: %s", s + 1,
                   c.rt_err[s].msg);
    if (memcmp(c.rt_raw[0], c.rt_raw[1], VHDX_RT_BYTES) != 0)
        report(&r, "the two region tables differ");
    /* COMPAT: QEMU writes Required = 0 on the BAT and metadata regions;
     * readers accept it, and so does the check. */

    /* Every BAT entry: reserved bits, blocks and sector bitmaps past EOF,
     * overlaps (open has refused the worst of these already). */
    {
        struct extent *ext;
        size_t n = 0;

        for (uint64_t i = 0; i < vd->bat_count; i++)
            if (vhdx_entry_space(g, &vd->p, i, vd->bat[i]) > 0)
                n++;
        ext = malloc((n + 1) * sizeof(*ext));
        n = 0;

        if (ext == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        for (uint64_t i = 0; i < vd->bat_count; i++) {
            uint64_t e = vd->bat[i];
            uint64_t len = vhdx_entry_space(g, &vd->p, i, e);

            if (VHDX_BAT_RESERVED(e) != 0)
                report(&r, "BAT entry %" PRIu64 ": reserved bits set "
                       "(0x%" PRIx64 ")", i, e);
            /* The offset of an entry in any other state is reserved:
             * nothing to check (MS-VHDX 2.5.1). */
            if (len == 0)
                continue;
            if (VHDX_BAT_OFF(e) + len > size)
                report(&r, "BAT entry %" PRIu64 ": %s at %" PRIu64
                       " runs past the end of the file (%" PRIu64 ")", i,
                       vhdx_is_sb_index(g, i) ? "sector bitmap" : "block",
                       VHDX_BAT_OFF(e), size);
            ext[n].off = VHDX_BAT_OFF(e);
            ext[n].len = len;
            n++;
        }
        qsort(ext, n, sizeof(*ext), cmp_extent);
        for (size_t k = 1; k < n; k++)
            if (ext[k].off < ext[k - 1].off + ext[k - 1].len)
                report(&r, "BAT: blocks at %" PRIu64 " and %" PRIu64
                       " overlap", ext[k - 1].off, ext[k].off);
        /* COMPAT: a fixed disk may hold ZERO blocks (QEMU's
         * block_state_zero); valid per MS-VHDX, so not reported. */
        free(ext);
    }
    rc = r.problems;
out:
    free_copies(&c);
    return rc;
}

/* ---- repair ------------------------------------------------------------ */

int
tm_vhdx_repair(struct tm_vhdx *vd, tm_vhdx_report_fn fn, void *user)
{
    static const uint32_t rt_off[2] = { VHDX_RT1_OFF, VHDX_RT2_OFF };
    struct reporter r = { fn, user, 0 };
    struct copies c;
    bool rt_ok[2];
    bool rt_bad;
    bool hdr_bad;
    bool was_modified;
    int rc;

    tm_err_clear(&vd->err);
    if (!vd->is_open)
        return tm_err_set(&vd->err, TM_E_INVALID, "the handle is not open");
    if (vd->rdonly)
        return tm_err_set(&vd->err, TM_E_READONLY, "opened read-only");
    rc = read_copies(vd, &c);
    if (rc < 0)
        return rc;
    hdr_bad = c.hdr_err[0].code != 0 || c.hdr_err[1].code != 0;
    rt_ok[0] = c.rt_err[0].code == 0;
    rt_ok[1] = c.rt_err[1].code == 0;
    rt_bad = rt_ok[0] != rt_ok[1] ||
             (rt_ok[0] && memcmp(c.rt_raw[0], c.rt_raw[1], VHDX_RT_BYTES) != 0);
    if (!rt_bad && !hdr_bad) {
        rc = 0;                         /* a sound file is not touched */
        goto out;
    }
    was_modified = vd->modified;
    rc = vhdx_begin_modify(vd, false);
    if (rc < 0)
        goto out;
    if (rt_bad) {
        /* Region tables change through the log (MS-VHDX 2.2.3); the
         * first valid copy is the one open used. */
        unsigned good = rt_ok[0] ? 0 : 1;
        struct vhdx_log_update u[VHDX_RT_BYTES / VHDX_LOG_SECTOR];

        for (unsigned k = 0; k < VHDX_RT_BYTES / VHDX_LOG_SECTOR; k++) {
            u[k].file_off = rt_off[good ^ 1] + k * VHDX_LOG_SECTOR;
            u[k].len = VHDX_LOG_SECTOR;
            u[k].data = c.rt_raw[good] + k * VHDX_LOG_SECTOR;
        }
        rc = vhdx_log_commit(&vd->log, u, VHDX_RT_BYTES / VHDX_LOG_SECTOR,
                             vd->durable_size, vd->file_end);
        if (rc < 0) {
            rc = vhdx_poison(vd, rc, "region table repair through the log");
            goto out;
        }
        report(&r, "region table %u rewritten from region table %u",
               (good ^ 1) + 1, good + 1);
    }
    if (hdr_bad) {
        /* A header update writes both slots; begin_modify has made one
         * unless this open had written before. */
        if (was_modified) {
            rc = vhdx_header_update(vd, false, &vd->hdr.log_guid);
            if (rc < 0)
                goto out;
        }
        report(&r, "both headers rewritten");
    }
    rc = r.problems;
out:
    free_copies(&c);
    return rc;
}

/* ---- dump -------------------------------------------------------------- */

/* Lines go out through the same reporter as check's problems. */

static const char *
region_name(const struct tm_guid *g)
{
    if (tm_guid_equal(g, &VHDX_GUID_BAT))
        return "BAT";
    if (tm_guid_equal(g, &VHDX_GUID_METADATA))
        return "metadata";
    return "unknown";
}

static const char *
item_name(const struct tm_guid *g)
{
    static const struct {
        const struct tm_guid *g;
        const char *name;
    } names[] = {
        { &VHDX_GUID_FILE_PARAMS, "file parameters" },
        { &VHDX_GUID_VIRTUAL_SIZE, "virtual disk size" },
        { &VHDX_GUID_VIRTUAL_DISK_ID, "virtual disk id" },
        { &VHDX_GUID_LOGICAL_SECTOR, "logical sector size" },
        { &VHDX_GUID_PHYSICAL_SECTOR, "physical sector size" },
        { &VHDX_GUID_PARENT_LOCATOR, "parent locator" },
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (tm_guid_equal(g, names[i].g))
            return names[i].name;
    return "unknown";
}

static void
dump_log_entry(void *user, const struct vhdx_log_entry_info *e)
{
    struct reporter *p = user;
    char g[TM_GUID_STR_LEN + 1];

    tm_guid_format(&e->log_guid, g);
    report(p, "  entry at +%" PRIu64 ": seq %" PRIu64 ", %" PRIu32
           " bytes, tail +%" PRIu32 ", %" PRIu32 " descriptors, guid %s, "
           "flushed %" PRIu64 ", last %" PRIu64, e->log_off, e->seq,
           e->entry_length, e->tail, e->descriptor_count, g,
           e->flushed_file_off, e->last_file_off);
}

int
tm_vhdx_dump(struct tm_vhdx *vd, tm_vhdx_line_fn fn, void *user)
{
    struct reporter p = { fn, user, 0 };
    const struct vhdx_geometry *g = &vd->g;
    char a[TM_GUID_STR_LEN + 1], b[TM_GUID_STR_LEN + 1],
         c[TM_GUID_STR_LEN + 1];
    uint64_t census[8] = { 0 };
    uint64_t sb_present = 0;
    uint8_t hb[VHDX_HEADER_BYTES];
    int rc;

    tm_err_clear(&vd->err);
    if (!vd->is_open)
        return tm_err_set(&vd->err, TM_E_INVALID, "the handle is not open");
    report(&p, "file type identifier: creator \"%s\"", vd->creator);
    for (unsigned s = 0; s < 2; s++) {
        struct vhdx_header h;
        struct tm_err e;

        tm_err_clear(&e);
        rc = tm_io_pread_all(vd->io, hb, sizeof(hb),
                             s == 0 ? VHDX_HEADER1_OFF : VHDX_HEADER2_OFF);
        if (rc < 0)
            return rc;
        if (vhdx_header_decode(hb, sizeof(hb), &h, &e) < 0) {
            report(&p, "header %u: invalid: %s", s + 1, e.msg);
            continue;
        }
        tm_guid_format(&h.file_write_guid, a);
        tm_guid_format(&h.data_write_guid, b);
        tm_guid_format(&h.log_guid, c);
        report(&p, "header %u%s: seq %" PRIu64 ", version %u, log version %u, "
               "log %" PRIu32 " bytes at %" PRIu64, s + 1,
               s == vd->hdr_slot ? " (current)" : "", h.seq, h.version,
               h.log_version, h.log_length, h.log_offset);
        report(&p, "  file write guid %s", a);
        report(&p, "  data write guid %s", b);
        report(&p, "  log guid        %s", c);
    }
    report(&p, "region table (%" PRIu32 " entries):", vd->rt->count);
    for (uint32_t i = 0; i < vd->rt->count; i++) {
        const struct vhdx_region *r = &vd->rt->e[i];

        tm_guid_format(&r->guid, a);
        report(&p, "  %s %s: offset %" PRIu64 ", %" PRIu32 " bytes%s", a,
               region_name(&r->guid), r->file_off, r->len,
               r->required ? ", required" : "");
    }
    report(&p, "metadata table (%u entries) at %" PRIu64 ":",
           (unsigned)vd->mt->count, vd->meta_off);
    for (unsigned i = 0; i < vd->mt->count; i++) {
        const struct vhdx_meta_entry *e = &vd->mt->e[i];

        tm_guid_format(&e->id, a);
        report(&p, "  %s %s: offset %" PRIu32 ", %" PRIu32
               " bytes, flags%s%s%s", a, item_name(&e->id), e->off, e->len,
               e->is_user ? " user" : "", e->is_virtual_disk ? " vdisk" : "",
               e->is_required ? " required" : "");
    }
    tm_guid_format(&vd->p.virtual_disk_id, a);
    report(&p, "parameters: block size %" PRIu32 ", virtual size %" PRIu64
           ", logical sector %" PRIu32 ", physical sector %" PRIu32
           ", leave blocks allocated %s, has parent %s", vd->p.block_size,
           vd->p.virtual_size, vd->p.logical_sector, vd->p.physical_sector,
           vd->p.leave_block_allocated ? "yes" : "no",
           vd->p.has_parent ? "yes" : "no");
    report(&p, "virtual disk id: %s", a);
    for (uint64_t i = 0; i < vd->bat_count; i++) {
        if ((i + 1) % (g->chunk_ratio + 1) == 0) {
            if (VHDX_BAT_STATE(vd->bat[i]) == VHDX_SB_PRESENT)
                sb_present++;
            continue;
        }
        if (i - i / (g->chunk_ratio + 1) < g->payload_blocks)
            census[VHDX_BAT_STATE(vd->bat[i])]++;
    }
    report(&p, "BAT: %" PRIu64 " entries at %" PRIu64 " (chunk ratio %" PRIu64
           ", %" PRIu64 " payload blocks, %" PRIu64 " sector bitmap slots)",
           vd->bat_count, vd->bat_off, g->chunk_ratio, g->payload_blocks,
           g->bitmap_blocks);
    report(&p, "  not present %" PRIu64 ", undefined %" PRIu64 ", zero %" PRIu64
           ", unmapped %" PRIu64 ", fully present %" PRIu64
           ", partially present %" PRIu64 ", sector bitmaps present %" PRIu64,
           census[0], census[1], census[2], census[3] + census[5], census[6],
           census[7], sb_present);
    report(&p, "log: %" PRIu32 " bytes at %" PRIu64 "%s", vd->hdr.log_length,
           vd->hdr.log_offset, vd->log_replayed ? " (replayed at open)" : "");
    if (vd->hdr.log_length > 0) {
        struct tm_err e;

        tm_err_clear(&e);
        rc = vhdx_log_scan(vd->io, vd->hdr.log_offset, vd->hdr.log_length,
                           dump_log_entry, &p, &e);
        if (rc < 0)
            report(&p, "  cannot scan the log: %s", e.msg);
    }
    return 0;
}
