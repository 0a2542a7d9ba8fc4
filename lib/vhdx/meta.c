/* SPDX-License-Identifier: MIT */
/* meta.c - rewriting the metadata region (MS-VHDX 2.6) through the log.
 *
 * The table and the packed items are rebuilt in memory, decoded and
 * validated as open would decode them, and only then written: as whole
 * 4 KiB sectors (all-zero ones as zero descriptors), all in ONE log entry,
 * so a crash leaves the old metadata or the new, never a mix.  Resize
 * also needs the region table to change in the same entry (a relocated
 * BAT and the new virtual size must become visible together), hence
 * vhdx_meta_rewrite_rt. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define SECTOR VHDX_LOG_SECTOR

static uint64_t
round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static bool
sector_is_zero(const uint8_t *p)
{
    return p[0] == 0 && memcmp(p, p + 1, SECTOR - 1) == 0;
}

/* Log updates for 'len' bytes (a 4 KiB multiple) of 'buf' destined for
 * file offset 'off': one data update per sector that holds anything, one
 * zero descriptor per run of zero sectors.  'u' has room for len / 4 KiB
 * updates. */
static size_t
sectors_to_updates(const uint8_t *buf, uint64_t len, uint64_t off,
                   struct vhdx_log_update *u)
{
    size_t n = 0;

    for (uint64_t s = 0; s < len; s += SECTOR) {
        if (!sector_is_zero(buf + s)) {
            u[n++] = (struct vhdx_log_update){ off + s, SECTOR, buf + s };
        } else if (n > 0 && u[n - 1].data == NULL &&
                   u[n - 1].file_off + u[n - 1].len == off + s) {
            u[n - 1].len += SECTOR;
        } else {
            u[n++] = (struct vhdx_log_update){ off + s, SECTOR, NULL };
        }
    }
    return n;
}

/* Whether 'n' updates go into one entry of this log (log.c's rule: the
 * 64-byte header and 32 bytes per descriptor, rounded up to sectors,
 * plus one sector per data update). */
static bool
fits_one_entry(const struct tm_vhdx *vd, const struct vhdx_log_update *u,
               size_t n)
{
    uint64_t data = 0;
    uint64_t desc = (64 + 32 * (uint64_t)n + SECTOR - 1) / SECTOR;

    for (size_t i = 0; i < n; i++)
        data += u[i].data != NULL;
    return desc + data <= vd->hdr.log_length / SECTOR;
}

static const struct vhdx_meta_item *
find_set(const struct vhdx_meta_item *set, size_t n, const struct tm_guid *id)
{
    for (size_t i = 0; i < n; i++)
        if (tm_guid_equal(&set[i].id, id))
            return &set[i];
    return NULL;
}

/* The bytes of system item 'id' in a rebuilt region image, exactly
 * 'want' long. */
static int
item_in(const struct vhdx_meta_table *mt, const uint8_t *img, uint64_t imglen,
        const struct tm_guid *id, const char *name, uint32_t want,
        const uint8_t **out, struct tm_err *err)
{
    const struct vhdx_meta_entry *e = vhdx_meta_find(mt, id, false);

    if (e == NULL)
        return tm_err_set(err, TM_E_INVALID,
                          "new metadata: required item %s is missing", name);
    if (e->len != want || (uint64_t)e->off + e->len > imglen)
        return tm_err_set(err, TM_E_INVALID,
                          "new metadata: item %s is %" PRIu32 " bytes, not %"
                          PRIu32, name, e->len, want);
    *out = img + e->off;
    return 0;
}

/* What open.c's read_metadata does, over an image in memory: the table
 * and the five system items, decoded and validated together. */
static int
decode_image(const uint8_t *img, uint64_t imglen, uint32_t region_len,
             struct vhdx_meta_table *mt, struct vhdx_params *p,
             struct tm_err *err)
{
    const uint8_t *b;
    int rc;

    memset(p, 0, sizeof(*p));
    rc = vhdx_meta_table_decode(img, VHDX_METADATA_TABLE_BYTES, region_len,
                                mt, err);
    if (rc < 0)
        return rc;
    rc = item_in(mt, img, imglen, &VHDX_GUID_FILE_PARAMS, "file parameters",
                 8, &b, err);
    if (rc == 0)
        rc = vhdx_file_params_decode(b, 8, p, err);
    if (rc == 0)
        rc = item_in(mt, img, imglen, &VHDX_GUID_VIRTUAL_SIZE,
                     "virtual disk size", 8, &b, err);
    if (rc == 0)
        rc = vhdx_u64_item_decode(b, 8, &p->virtual_size, err);
    if (rc == 0)
        rc = item_in(mt, img, imglen, &VHDX_GUID_VIRTUAL_DISK_ID,
                     "virtual disk id", 16, &b, err);
    if (rc == 0)
        memcpy(p->virtual_disk_id.b, b, 16);
    if (rc == 0)
        rc = item_in(mt, img, imglen, &VHDX_GUID_LOGICAL_SECTOR,
                     "logical sector size", 4, &b, err);
    if (rc == 0)
        rc = vhdx_u32_item_decode(b, 4, &p->logical_sector, err);
    if (rc == 0)
        rc = item_in(mt, img, imglen, &VHDX_GUID_PHYSICAL_SECTOR,
                     "physical sector size", 4, &b, err);
    if (rc == 0)
        rc = vhdx_u32_item_decode(b, 4, &p->physical_sector, err);
    if (rc == 0)
        rc = vhdx_params_validate(p, err);
    if (rc == 0 && p->has_parent &&
        vhdx_meta_find(mt, &VHDX_GUID_PARENT_LOCATOR, false) == NULL)
        rc = tm_err_set(err, TM_E_INVALID, "new metadata: HasParent "
                        "without a parent locator item");
    return rc;
}

/* The new table, in Windows' order: the system items first, in their
 * present order (replaced ones keep their place, new ones come after the
 * last of them), then the user items.  Offsets are filled by pack(). */
static int
build_table(const struct vhdx_meta_table *old,
            const struct vhdx_meta_item *set, size_t n,
            struct vhdx_meta_table *mt, const uint8_t **src,
            struct tm_err *err)
{
    uint16_t k = 0;

    /* src[k]: where entry k's bytes come from; NULL = read the old item. */
    for (int pass = 0; pass < 2; pass++) {
        bool user = pass == 1;

        for (uint16_t i = 0; i < old->count; i++) {
            const struct vhdx_meta_entry *e = &old->e[i];
            const struct vhdx_meta_item *s;

            if (e->is_user != user)
                continue;
            s = user ? NULL : find_set(set, n, &e->id);
            if (s != NULL && s->data == NULL)
                continue;               /* removed */
            mt->e[k] = *e;
            src[k] = NULL;
            if (s != NULL) {
                mt->e[k].len = s->len;
                src[k] = s->data;
            }
            k++;
        }
        if (user)
            break;
        /* New system items, after the last system item. */
        for (size_t j = 0; j < n; j++) {
            if (vhdx_meta_find(old, &set[j].id, false) != NULL ||
                set[j].data == NULL)
                continue;
            if (k >= VHDX_MAX_META_ENTRIES)
                return tm_err_set(err, TM_E_UNSUPPORTED,
                                  "metadata: more than %u items",
                                  VHDX_MAX_META_ENTRIES);
            mt->e[k] = (struct vhdx_meta_entry){
                .id = set[j].id, .len = set[j].len,
                .is_virtual_disk = set[j].is_virtual_disk,
                .is_required = set[j].is_required,
            };
            src[k] = set[j].data;
            k++;
        }
    }
    mt->count = k;
    return 0;
}

int
vhdx_meta_rewrite_rt(struct tm_vhdx *vd, const struct vhdx_meta_item *set,
                     size_t n, const struct vhdx_region_table *rt)
{
    static const uint32_t rt_off[2] = { VHDX_RT1_OFF, VHDX_RT2_OFF };
    struct vhdx_meta_table *mt = NULL, *chk = NULL;
    const uint8_t **src = NULL;
    struct vhdx_log_update *u = NULL;
    struct vhdx_params p;
    uint8_t *img = NULL, *rtbuf = NULL;
    uint64_t end = VHDX_METADATA_TABLE_BYTES;
    uint64_t old_end = VHDX_METADATA_TABLE_BYTES;
    uint64_t imglen, maxu;
    size_t nu = 0;
    int rc;

    rc = vhdx_check_usable(vd, true);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (set[i].len > VHDX_MAX_META_ITEM_BYTES ||
            (set[i].data == NULL && set[i].len != 0))
            return tm_err_set(&vd->err, TM_E_INVALID,
                              "metadata item %zu: bad length %" PRIu32, i,
                              set[i].len);
    if (rt != NULL) {
        const struct vhdx_region *m = vhdx_region_find(rt,
                                                       &VHDX_GUID_METADATA);
        const struct vhdx_region *b = vhdx_region_find(rt, &VHDX_GUID_BAT);

        if (m == NULL || b == NULL || m->file_off != vd->meta_off ||
            m->len != vd->meta_len)
            return tm_err_set(&vd->err, TM_E_INVALID,
                              "new region table: the metadata region must "
                              "stay where it is");
    }
    mt = malloc(sizeof(*mt));
    chk = malloc(sizeof(*chk));
    src = calloc(VHDX_MAX_META_ENTRIES, sizeof(*src));
    if (mt == NULL || chk == NULL || src == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = build_table(vd->mt, set, n, mt, src, &vd->err);
    if (rc < 0)
        goto out;
    /* Pack from 64 KiB, 8-byte aligned; empty items have offset 0. */
    for (uint16_t i = 0; i < mt->count; i++) {
        if (mt->e[i].len == 0) {
            mt->e[i].off = 0;
            continue;
        }
        end = round_up(end, 8);
        mt->e[i].off = (uint32_t)(end < UINT32_MAX ? end : UINT32_MAX);
        end += mt->e[i].len;
    }
    if (end > vd->meta_len) {
        rc = tm_err_set(&vd->err, TM_E_UNSUPPORTED,
                        "metadata: the items need %" PRIu64 " bytes, the "
                        "region holds %" PRIu32, end, vd->meta_len);
        goto out;
    }
    for (uint16_t i = 0; i < vd->mt->count; i++) {
        const struct vhdx_meta_entry *e = &vd->mt->e[i];

        if (e->len != 0 && (uint64_t)e->off + e->len > old_end)
            old_end = (uint64_t)e->off + e->len;
    }
    imglen = round_up(end, SECTOR);
    old_end = round_up(old_end, SECTOR);
    if (old_end > vd->meta_len)
        old_end = vd->meta_len;
    img = calloc(1, imglen);
    if (img == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    vhdx_meta_table_encode(mt, img);
    /* Old item bytes are read before anything is written: a source and
     * its new place may overlap. */
    for (uint16_t i = 0; i < mt->count; i++) {
        const struct vhdx_meta_entry *e = &mt->e[i];
        const struct vhdx_meta_entry *o;

        if (e->len == 0)
            continue;
        if (src[i] != NULL) {
            memcpy(img + e->off, src[i], e->len);
            continue;
        }
        o = vhdx_meta_find(vd->mt, &e->id, e->is_user);
        rc = tm_io_pread_all(vd->rd, img + e->off, e->len,
                             vd->meta_off + o->off);
        if (rc < 0) {
            tm_err_set_at(&vd->err, rc, vd->meta_off + o->off,
                          "metadata: cannot read an item: %s",
                          tm_strerror(rc));
            goto out;
        }
    }
    /* What open would decode from it, checked before it is written. */
    rc = decode_image(img, imglen, vd->meta_len, chk, &p, &vd->err);
    if (rc < 0) {
        if (rc == TM_E_CORRUPT) {
            vd->err.code = TM_E_INVALID;
            rc = TM_E_INVALID;
        }
        goto out;
    }

    maxu = imglen / SECTOR + 1 + (rt != NULL ? 2 * VHDX_RT_BYTES / SECTOR : 0);
    u = malloc(maxu * sizeof(*u));
    if (u == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (rt != NULL) {
        rtbuf = calloc(1, VHDX_RT_BYTES);
        if (rtbuf == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        vhdx_region_table_encode(rt, rtbuf);
        for (int c = 0; c < 2; c++)
            nu += sectors_to_updates(rtbuf, VHDX_RT_BYTES, rt_off[c],
                                     u + nu);
    }
    nu += sectors_to_updates(img, imglen, vd->meta_off, u + nu);
    /* Sectors the old items used and the new ones do not: zeros, so no
     * stale item bytes linger in the region. */
    if (old_end > imglen)
        u[nu++] = (struct vhdx_log_update){ vd->meta_off + imglen,
                                            old_end - imglen, NULL };
    /* CRASH: one entry or nothing; vhdx_log_commit would split a bigger
     * list over several entries, and a crash between them would leave a
     * table that names items not yet written. */
    if (!fits_one_entry(vd, u, nu)) {
        rc = tm_err_set(&vd->err, TM_E_UNSUPPORTED,
                        "metadata: the rewrite (%zu sectors) does not fit "
                        "one entry of the %" PRIu32 "-byte log", nu,
                        vd->hdr.log_length);
        goto out;
    }
    /* Everything is built and checked: now the file changes.  Pending
     * BAT changes go first, in their own entries. */
    rc = vhdx_begin_modify(vd, false);
    if (rc == 0 && (vd->ndirty > 0 || vd->npunch > 0))
        rc = vhdx_bat_commit(vd);
    if (rc < 0)
        goto out;
    rc = vhdx_log_commit(&vd->log, u, nu, vd->durable_size, vd->file_end);
    if (rc < 0) {
        rc = vhdx_poison(vd, rc, rt != NULL ? "region table and metadata "
                         "update through the log" : "metadata update "
                         "through the log");
        goto out;
    }
    vd->durable_size = vd->file_size;
    memcpy(vd->mt, chk, sizeof(*chk));
    vd->p = p;
    if (rt != NULL) {
        const struct vhdx_region *b = vhdx_region_find(rt, &VHDX_GUID_BAT);

        vd->bat_off = b->file_off;
        vd->bat_len = b->len;
        memcpy(vd->rt, rt, sizeof(*rt));
    }
out:
    free(rtbuf);
    free(u);
    free(img);
    free(src);
    free(chk);
    free(mt);
    return rc;
}

int
vhdx_meta_rewrite(struct tm_vhdx *vd, const struct vhdx_meta_item *set,
                  size_t n)
{
    return vhdx_meta_rewrite_rt(vd, set, n, NULL);
}

/* One identity item, replaced through the log. */
static int
set_item(struct tm_vhdx *vd, const struct tm_guid *id, const uint8_t *data,
         uint32_t len)
{
    struct vhdx_meta_item item;
    int rc;

    if (vd == NULL || !vd->is_open)
        return TM_E_INVALID;
    rc = vhdx_check_usable(vd, true);
    if (rc < 0)
        return rc;
    memset(&item, 0, sizeof(item));
    item.id = *id;
    item.data = data;
    item.len = len;
    item.is_virtual_disk = true;
    item.is_required = true;
    rc = vhdx_bat_commit(vd);
    if (rc == 0)
        rc = vhdx_meta_rewrite(vd, &item, 1);
    return rc;
}

int
tm_vhdx_set_virtual_disk_id(struct tm_vhdx *vd, const struct tm_guid *id)
{
    if (id == NULL)
        return TM_E_INVALID;
    return set_item(vd, &VHDX_GUID_VIRTUAL_DISK_ID, id->b, 16);
}

int
tm_vhdx_set_physical_sector(struct tm_vhdx *vd, uint32_t bytes)
{
    uint8_t buf[4];

    if (vd == NULL)
        return TM_E_INVALID;
    if (bytes != 512 && bytes != 4096)
        return tm_err_set(&vd->err, TM_E_INVALID, "physical sector size "
                          "%" PRIu32 " is neither 512 nor 4096", bytes);
    tm_put_le32(buf, bytes);
    return set_item(vd, &VHDX_GUID_PHYSICAL_SECTOR, buf, 4);
}
