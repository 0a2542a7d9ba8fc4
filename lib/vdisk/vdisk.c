/* SPDX-License-Identifier: MIT */
/* vdisk.c - a VHDX chain and its change tracking behind one handle.
 *
 * The tracking rules (docs/formats/rct.md, "Binding to the disk"): the
 * first write of a read-write open renews the disk's DataWriteGuid
 * through the engine, then persists the .rct with OPEN set and that GUID,
 * and only then marks and writes; every later write is marked (durably,
 * in the .mrt) before it is issued.  A clean close persists the map with
 * OPEN clear.  So a disk someone else wrote shows a DataWriteGuid the
 * .rct does not know, and a crash leaves OPEN set with the .mrt naming
 * every region written since the last persist.  The orders that make a
 * crash harmless are marked CRASH:. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdisk_int.h"

struct tm_vdisk {
    struct tm_vhdx *vd;
    char *path;
    bool rdonly;
    uint64_t virtual_size;      /* cached: writes check ranges against it */
    struct tm_err err;
    struct vdisk_sidecar_ops ops;

    /* Tracking: 'rct' is NULL when the disk has no sidecars; 'tracking'
     * when they exist and are not disabled. */
    struct tm_rct *rct;
    bool tracking;
    bool bound;                 /* OPEN persisted with this open's GUID */
    enum tm_vdisk_tracking_open found;

    char *parent_paths;         /* PARENT_LOCATION's multi-string */
    char untracked_why[512];    /* sidecars found but not usable by us */
    /* A reader's sidecar files under the overlays the tracker owns: an
     * overlay borrows its file, so the handle closes them, after the
     * tracker.  (Fix: they were never closed, leaking two descriptors
     * per read-only open of a tracked disk.) */
    struct tm_io *ro_files[2];
};

/* Microsoft's VIRTUAL_STORAGE_TYPE_VENDOR_MICROSOFT. */
static const char VENDOR_MICROSOFT[] = "ec984aec-a0f9-47e9-901f-71415a66345b";

/* ---- sidecars ----------------------------------------------------------- */

static int
default_open(void *user, enum vdisk_sidecar which, bool rdonly, bool create,
             struct tm_io **out)
{
    const char *path = user;
    size_t n = strlen(path) + 5;
    char *name = malloc(n);
    unsigned flags;
    int rc;

    if (name == NULL)
        return -ENOMEM;
    snprintf(name, n, "%s%s", path, which == VDISK_RCT ? ".rct" : ".mrt");
    if (create)
        flags = TM_IO_CREATE | TM_IO_TRUNC;
    else
        flags = rdonly ? TM_IO_RDONLY : 0;
    rc = tm_io_posix_open(name, flags, out);
    free(name);
    return rc;
}

static const char *
sidecar_name(enum vdisk_sidecar which)
{
    return which == VDISK_RCT ? ".rct" : ".mrt";
}

/* Opens one existing sidecar for tm_rct_open.  A missing one is an empty
 * file (created for a writer, in memory for a reader): tm_rct_open then
 * finds the pair damaged and restarts tracking.  A reader's files sit
 * under an overlay, so recovery and resets happen in memory only. */
static int
open_existing(struct tm_vdisk *d, enum vdisk_sidecar which, bool *missing,
              struct tm_io **out)
{
    int rc = d->ops.open(d->ops.user, which, d->rdonly, false, out);

    *missing = false;
    if (rc == -ENOENT) {
        *missing = true;
        if (d->rdonly) {
            *out = tm_io_mem_new();
            return *out ? 0 : -ENOMEM;
        }
        rc = d->ops.open(d->ops.user, which, false, true, out);
    }
    if (rc < 0)
        return tm_err_set(&d->err, rc, "cannot open '%s%s': %s", d->path,
                          sidecar_name(which), tm_strerror(rc));
    if (d->rdonly && !*missing) {
        struct tm_io *ov = tm_io_overlay_new(*out);

        if (ov == NULL) {
            tm_io_close(*out);
            *out = NULL;
            return tm_err_set(&d->err, -ENOMEM, "out of memory");
        }
        d->ro_files[which] = *out;
        *out = ov;
    }
    return 0;
}

/* What the tracking is bound to now. */
static int
binding_now(struct tm_vdisk *d, struct tm_rct_binding *b)
{
    struct tm_vhdx_info vi;
    int rc = tm_vhdx_get_info(d->vd, &vi);

    if (rc < 0)
        return tm_err_set(&d->err, rc, "%s", tm_vhdx_err(d->vd)->msg);
    memset(b, 0, sizeof(*b));
    b->data_write_guid = vi.data_write_guid;
    b->virtual_size = vi.virtual_size;
    return 0;
}

static int
rct_fail(struct tm_vdisk *d, int rc)
{
    d->err = *tm_rct_err(d->rct);
    d->err.code = rc;
    return rc;
}

static int
vhdx_fail(struct tm_vdisk *d, int rc)
{
    d->err = *tm_vhdx_err(d->vd);
    d->err.code = rc;
    if (d->err.msg[0] == '\0')
        snprintf(d->err.msg, sizeof(d->err.msg), "%s", tm_strerror(rc));
    return rc;
}

static int
open_tracking(struct tm_vdisk *d)
{
    struct tm_io *rio = NULL, *mio = NULL;
    struct tm_rct_binding b;
    struct tm_rct_info ri;
    enum tm_rct_open_state st;
    struct tm_err e;
    bool rmiss, mmiss;
    int rc;

    rc = d->ops.open(d->ops.user, VDISK_RCT, true, false, &rio);
    if (rc == -ENOENT) {
        rc = d->ops.open(d->ops.user, VDISK_MRT, true, false, &mio);
        if (rc == -ENOENT)
            return 0;                   /* never enabled */
        if (rc < 0)
            return tm_err_set(&d->err, rc, "cannot open '%s.mrt': %s",
                              d->path, tm_strerror(rc));
    } else if (rc < 0) {
        return tm_err_set(&d->err, rc, "cannot open '%s.rct': %s", d->path,
                          tm_strerror(rc));
    }
    tm_io_close(rio);
    tm_io_close(mio);
    rio = mio = NULL;

    rc = binding_now(d, &b);
    if (rc < 0)
        return rc;
    rc = open_existing(d, VDISK_RCT, &rmiss, &rio);
    if (rc == 0)
        rc = open_existing(d, VDISK_MRT, &mmiss, &mio);
    if (rc < 0) {
        tm_io_close(rio);
        return rc;
    }
    tm_err_clear(&e);
    rc = tm_rct_open(rio, mio, &b, &d->rct, &st, &e);
    if (rc == TM_E_UNSUPPORTED) {
        /* Another program's files, or a newer format: left as found, and
         * the disk is untracked for us (its writes then change the
         * DataWriteGuid, which the owner of the files will notice). */
        snprintf(d->untracked_why, sizeof(d->untracked_why), "%s", e.msg);
        d->rct = NULL;
        return 0;
    }
    if (rc < 0) {
        d->err = e;
        d->err.code = rc;
        tm_err_prefix(&d->err, "'%s.rct'", d->path);
        return rc;
    }
    d->found = (enum tm_vdisk_tracking_open)st;
    rc = tm_rct_get_info(d->rct, &ri);
    if (rc < 0)
        return rct_fail(d, rc);
    d->tracking = !ri.disabled;
    return 0;
}

/* CRASH: the .rct (OPEN) names the GUID the disk is about to get as
 * pending, durably, before the engine renews it; the header with the new
 * GUID is durable before any mark or data.  A cut anywhere leaves the
 * disk with the recorded GUID or the pending one, and the next open
 * recovers either; only a third GUID is a foreign write.  (If this open
 * renewed the GUID already, before tracking was turned on, it stays and
 * is the one recorded.) */
static int
bind(struct tm_vdisk *d)
{
    struct tm_rct_binding b;
    int rc;

    rc = binding_now(d, &b);
    if (rc < 0)
        return rc;
    rc = tm_guid_generate(&b.pending_guid);
    if (rc < 0)
        return tm_err_set(&d->err, rc, "cannot make a GUID");
    rc = tm_rct_persist(d->rct, &b, true);
    if (rc < 0)
        return rct_fail(d, rc);
    rc = tm_vhdx_begin_write(d->vd, &b.pending_guid);
    if (rc < 0)
        return vhdx_fail(d, rc);
    d->bound = true;
    return 0;
}

static int
refuse_reader(struct tm_vdisk *d)
{
    return tm_err_set(&d->err, TM_E_READONLY, "'%s' is opened read-only",
                      d->path);
}

static int
check_range(struct tm_vdisk *d, uint64_t off, uint64_t len)
{
    if (off > d->virtual_size || len > d->virtual_size - off)
        return tm_err_set(&d->err, TM_E_RANGE, "range %" PRIu64 "+%" PRIu64
                          " lies outside the virtual disk (%" PRIu64
                          " bytes)", off, len, d->virtual_size);
    return 0;
}

/* Called before a change of [off, off + len) is issued. */
static int
track(struct tm_vdisk *d, uint64_t off, uint64_t len)
{
    int rc;

    if (d->rdonly)
        return refuse_reader(d);
    if (!d->tracking || len == 0)
        return 0;
    if (!d->bound) {
        rc = bind(d);
        if (rc < 0)
            return rc;
    }
    rc = tm_rct_mark(d->rct, off, len);
    if (rc < 0)
        return rct_fail(d, rc);
    return 0;
}

/* ---- open / create / close --------------------------------------------- */

int
vdisk_wrap(struct tm_vhdx *vd, const char *path, bool rdonly,
           const struct vdisk_sidecar_ops *ops, struct tm_vdisk **out,
           struct tm_err *err)
{
    struct tm_vdisk *d = calloc(1, sizeof(*d));
    int rc;

    *out = NULL;
    if (d == NULL || (d->path = strdup(path)) == NULL) {
        free(d);
        tm_vhdx_close(vd);
        return tm_err_set(err, -ENOMEM, "out of memory");
    }
    d->vd = vd;
    d->rdonly = rdonly;
    {
        struct tm_vhdx_info vi;

        if (tm_vhdx_get_info(vd, &vi) == 0)
            d->virtual_size = vi.virtual_size;
    }
    if (ops != NULL) {
        d->ops = *ops;
    } else {
        d->ops.open = default_open;
        d->ops.user = d->path;
    }
    rc = open_tracking(d);
    if (rc < 0) {
        if (err != NULL)
            *err = d->err;
        tm_rct_free(d->rct);
        d->rct = NULL;
        tm_vdisk_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

struct tm_vhdx *
vdisk_vhdx(struct tm_vdisk *d)
{
    return d->vd;
}

/* A caller's struct: 'size' 0 or at least this header's (no older
 * layout exists yet). */
static bool
size_ok(uint32_t size, size_t ours)
{
    return size == 0 || size >= ours;
}

int
tm_vdisk_open(const char *path, unsigned flags,
              const struct tm_vdisk_open_params *p, struct tm_vdisk **out,
              struct tm_err *err)
{
    struct tm_vhdx_open_opts opts = { 0 };
    struct tm_vhdx *vd;
    bool rdonly = (flags & TM_VDISK_OPEN_READ_ONLY) != 0;
    int rc;

    tm_err_clear(err);
    *out = NULL;
    if (path == NULL)
        return tm_err_set(err, TM_E_INVALID, "no path given");
    if (flags & ~(unsigned)(TM_VDISK_OPEN_READ_ONLY | TM_VDISK_OPEN_NO_PARENTS))
        return tm_err_set(err, TM_E_INVALID, "unknown open flags %#x", flags);
    if (p != NULL && !size_ok(p->struct_size, sizeof(*p)))
        return tm_err_set(err, TM_E_INVALID, "open parameters of size %"
                          PRIu32 " unknown", p->struct_size);
    vd = tm_vhdx_new();
    if (vd == NULL)
        return tm_err_set(err, -ENOMEM, "out of memory");
    opts.parent_path = p ? p->parent_path : NULL;
    opts.no_parent = (flags & TM_VDISK_OPEN_NO_PARENTS) != 0;
    rc = tm_vhdx_open_path(vd, path, rdonly ? TM_VHDX_RDONLY : 0, &opts);
    if (rc < 0) {
        if (err != NULL) {
            *err = *tm_vhdx_err(vd);
            err->code = rc;
        }
        tm_vhdx_close(vd);
        return rc;
    }
    return vdisk_wrap(vd, path, rdonly, NULL, out, err);
}

static int
enable_tracking(struct tm_vdisk *d, uint32_t granularity);


static void
unlink_sidecars(const char *path)
{
    size_t n = strlen(path) + 5;
    char *name = malloc(n);

    if (name == NULL)
        return;
    snprintf(name, n, "%s.rct", path);
    (void)unlink(name);
    snprintf(name, n, "%s.mrt", path);
    (void)unlink(name);
    free(name);
}

int
tm_vdisk_create(const char *path, const struct tm_vdisk_create_params *p,
                struct tm_vdisk **out, struct tm_err *err)
{
    struct tm_vhdx_create_params vp = { 0 };
    struct tm_vhdx *vd;
    struct tm_io *io = NULL;
    int rc;

    tm_err_clear(err);
    *out = NULL;
    if (path == NULL || p == NULL)
        return tm_err_set(err, TM_E_INVALID, "no path or parameters given");
    if (!size_ok(p->struct_size, sizeof(*p)))
        return tm_err_set(err, TM_E_INVALID, "create parameters of size %"
                          PRIu32 " unknown", p->struct_size);
    vp.virtual_size = p->virtual_size;
    vp.block_size = p->block_size;
    vp.logical_sector = p->logical_sector;
    vp.physical_sector = p->physical_sector;
    vp.fixed = p->fixed;
    vp.virtual_disk_id_set = p->unique_id_set;
    vp.virtual_disk_id = p->unique_id;
    vd = tm_vhdx_new();
    if (vd == NULL)
        return tm_err_set(err, -ENOMEM, "out of memory");
    if (p->parent_path != NULL) {
        rc = tm_vhdx_create_child(vd, path, p->parent_path, &vp);
    } else {
        rc = tm_io_posix_open(path, TM_IO_CREATE | TM_IO_EXCL | TM_IO_LOCK,
                              &io);
        if (rc < 0) {
            tm_vhdx_close(vd);
            return tm_err_set(err, rc, "cannot create '%s': %s", path,
                              tm_strerror(rc));
        }
        rc = tm_vhdx_create(vd, io, &vp);
        if (rc < 0)
            (void)unlink(path);
    }
    if (rc < 0) {
        if (err != NULL) {
            *err = *tm_vhdx_err(vd);
            err->code = rc;
            if (p->parent_path == NULL)
                tm_err_prefix(err, "cannot create '%s'", path);
        }
        tm_vhdx_close(vd);
        return rc;
    }
    /* A new disk has no tracking.  Sidecars found beside it were left by
     * a deleted disk of the same name: they describe nothing now. */
    unlink_sidecars(path);
    rc = vdisk_wrap(vd, path, false, NULL, out, err);
    if (rc < 0)
        return rc;
    if (p->change_tracking) {
        rc = enable_tracking(*out, p->tracking_granularity);
        if (rc < 0) {
            if (err != NULL)
                *err = (*out)->err;
            tm_vdisk_close(*out);
            *out = NULL;
            return rc;
        }
    }
    return 0;
}

int
tm_vdisk_close(struct tm_vdisk *d)
{
    int rc = 0, rc2;

    if (d == NULL)
        return 0;
    if (!d->rdonly && d->vd != NULL)
        rc = tm_vhdx_flush(d->vd);
    if (d->rct != NULL) {
        struct tm_rct_binding b;

        /* CRASH: the data is flushed before the map that no longer has
         * OPEN set; a failed flush leaves the tracking as a crash would
         * (the .mrt covers every write). */
        if (!d->rdonly && rc == 0)
            rc = binding_now(d, &b);
        if (d->rdonly || rc < 0) {
            tm_rct_free(d->rct);
        } else {
            rc2 = tm_rct_close(d->rct, &b);
            if (rc == 0)
                rc = rc2;
        }
    }
    rc2 = tm_vhdx_close(d->vd);
    if (rc == 0)
        rc = rc2;
    /* After the tracker: its overlays read these until they close. */
    tm_io_close(d->ro_files[VDISK_RCT]);
    tm_io_close(d->ro_files[VDISK_MRT]);
    free(d->parent_paths);
    free(d->path);
    free(d);
    return rc;
}

const struct tm_err *
tm_vdisk_err(const struct tm_vdisk *d)
{
    return d ? &d->err : NULL;
}

/* ---- I/O ---------------------------------------------------------------- */

int
tm_vdisk_read(struct tm_vdisk *d, void *buf, size_t len, uint64_t off)
{
    int rc;

    if (d == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    rc = tm_vhdx_read(d->vd, buf, len, off);
    return rc < 0 ? vhdx_fail(d, rc) : 0;
}

int
tm_vdisk_write(struct tm_vdisk *d, const void *buf, size_t len, uint64_t off)
{
    int rc;

    if (d == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    rc = check_range(d, off, len);
    if (rc == 0)
        rc = track(d, off, len);
    if (rc < 0)
        return rc;
    rc = tm_vhdx_write(d->vd, buf, len, off);
    return rc < 0 ? vhdx_fail(d, rc) : 0;
}

int
tm_vdisk_flush(struct tm_vdisk *d)
{
    int rc;

    if (d == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    rc = tm_vhdx_flush(d->vd);
    return rc < 0 ? vhdx_fail(d, rc) : 0;
}

int
tm_vdisk_discard(struct tm_vdisk *d, uint64_t off, uint64_t len,
                 enum tm_vdisk_discard_mode mode)
{
    int rc;

    if (d == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    if (mode != TM_VDISK_DISCARD_ZERO && mode != TM_VDISK_DISCARD_UNMAP)
        return tm_err_set(&d->err, TM_E_INVALID, "discard mode %d unknown",
                          (int)mode);
    rc = check_range(d, off, len);
    if (rc == 0)
        rc = track(d, off, len);
    if (rc < 0)
        return rc;
    rc = tm_vhdx_discard(d->vd, off, len, mode == TM_VDISK_DISCARD_ZERO
                                                  ? TM_VHDX_ZERO
                                                  : TM_VHDX_UNMAP);
    return rc < 0 ? vhdx_fail(d, rc) : 0;
}

int
tm_vdisk_resize(struct tm_vdisk *d, uint64_t new_size)
{
    struct tm_rct_binding b;
    struct tm_rct_info ri;
    int rc;

    if (d == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    if (d->rdonly)
        return refuse_reader(d);
    /* CRASH: bound first, so a cut before the new size is durable
     * recovers the old lineage (nothing changed); after it, the size no
     * longer matches and the next open resets. */
    if (d->tracking && !d->bound) {
        rc = bind(d);
        if (rc < 0)
            return rc;
    }
    rc = tm_vhdx_resize(d->vd, new_size);
    if (rc < 0)
        return vhdx_fail(d, rc);
    d->virtual_size = new_size;
    if (d->rct == NULL)
        return 0;
    rc = binding_now(d, &b);
    if (rc < 0)
        return rc;
    rc = tm_rct_get_info(d->rct, &ri);
    if (rc == 0 && ri.virtual_size == b.virtual_size)
        return 0;
    if (rc == 0)
        rc = tm_rct_reset(d->rct, &b, TM_RCT_RESET_RESIZED, NULL);
    if (rc == 0 && ri.disabled)
        rc = tm_rct_disable(d->rct);
    if (rc < 0)
        return rct_fail(d, rc);
    d->bound = false;
    return 0;
}

/* ---- information ---------------------------------------------------------- */

static int
parent_paths(struct tm_vdisk *d, const char **out)
{
    const struct tm_vhdx_locator *loc = tm_vhdx_locator(d->vd);
    struct tm_vhdx *pa = tm_vhdx_parent(d->vd);
    const char *forms[3];
    size_t n = 1, nf = 0;
    char *buf, *w;

    if (loc == NULL)
        return tm_err_set(&d->err, TM_E_INVALID, "'%s' is not a "
                          "differencing disk", d->path);
    if (d->parent_paths != NULL) {
        *out = d->parent_paths;
        return 0;
    }
    if (pa != NULL && tm_vhdx_path(pa) != NULL) {
        forms[nf++] = tm_vhdx_path(pa);
    } else {
        if (loc->relative_path)
            forms[nf++] = loc->relative_path;
        if (loc->absolute_win32_path)
            forms[nf++] = loc->absolute_win32_path;
        if (loc->volume_path)
            forms[nf++] = loc->volume_path;
    }
    for (size_t i = 0; i < nf; i++)
        n += strlen(forms[i]) + 1;
    buf = malloc(n);
    if (buf == NULL)
        return tm_err_set(&d->err, -ENOMEM, "out of memory");
    w = buf;
    for (size_t i = 0; i < nf; i++) {
        size_t l = strlen(forms[i]) + 1;

        memcpy(w, forms[i], l);
        w += l;
    }
    *w = '\0';
    d->parent_paths = buf;
    *out = buf;
    return 0;
}

int
tm_vdisk_get_info(struct tm_vdisk *d, struct tm_vdisk_info *info)
{
    struct tm_vhdx_info vi;
    const struct tm_vhdx_locator *loc;
    enum tm_vdisk_info_kind kind;
    int rc;

    if (d == NULL || info == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    if (!size_ok(info->struct_size, sizeof(*info)))
        return tm_err_set(&d->err, TM_E_INVALID, "information struct of "
                          "size %" PRIu32 " unknown", info->struct_size);
    kind = info->kind;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    info->kind = kind;
    rc = tm_vhdx_get_info(d->vd, &vi);
    if (rc < 0)
        return vhdx_fail(d, rc);
    loc = tm_vhdx_locator(d->vd);
    switch (kind) {
    case TM_VDISK_INFO_SIZE:
        info->size.virtual_size = vi.virtual_size;
        info->size.physical_size = vi.file_size;
        info->size.block_size = vi.block_size;
        info->size.sector_size = vi.logical_sector;
        return 0;
    case TM_VDISK_INFO_IDENTIFIER:
        info->identifier = vi.data_write_guid;
        return 0;
    case TM_VDISK_INFO_PARENT_LOCATION:
        info->parent_location.resolved = tm_vhdx_parent(d->vd) != NULL;
        return parent_paths(d, &info->parent_location.paths);
    case TM_VDISK_INFO_PARENT_IDENTIFIER:
        if (loc == NULL)
            return tm_err_set(&d->err, TM_E_INVALID, "'%s' is not a "
                              "differencing disk", d->path);
        info->parent_identifier.linkage = loc->linkage;
        info->parent_identifier.has_linkage2 = loc->has_linkage2;
        info->parent_identifier.linkage2 = loc->linkage2;
        return 0;
    case TM_VDISK_INFO_VIRTUAL_STORAGE_TYPE:
        info->virtual_storage_type.device_id = TM_VDISK_STORAGE_TYPE_VHDX;
        return tm_guid_parse(VENDOR_MICROSOFT, strlen(VENDOR_MICROSOFT),
                             &info->virtual_storage_type.vendor_id);
    case TM_VDISK_INFO_PROVIDER_SUBTYPE:
        info->provider_subtype = (uint32_t)vi.type;
        return 0;
    case TM_VDISK_INFO_IS_4K_ALIGNED:
        /* VHDX places every block and structure on 1 MiB boundaries. */
        info->is_4k_aligned = true;
        return 0;
    case TM_VDISK_INFO_VHD_PHYSICAL_SECTOR_SIZE:
        info->vhd_physical_sector_size = vi.physical_sector;
        return 0;
    case TM_VDISK_INFO_SMALLEST_SAFE_VIRTUAL_SIZE:
        rc = tm_vhdx_min_size(d->vd, &info->smallest_safe_virtual_size);
        return rc < 0 ? vhdx_fail(d, rc) : 0;
    case TM_VDISK_INFO_VIRTUAL_DISK_ID:
        info->virtual_disk_id = vi.virtual_disk_id;
        return 0;
    case TM_VDISK_INFO_CHANGE_TRACKING_STATE: {
        struct tm_rct_info ri;
        bool newer;

        info->change_tracking.enabled = d->tracking;
        info->change_tracking.found = d->found;
        if (d->rct == NULL)
            return 0;
        rc = tm_rct_get_info(d->rct, &ri);
        if (rc == 0 && d->tracking)
            rc = tm_rct_state(d->rct, info->change_tracking.most_recent_id,
                              &newer);
        if (rc < 0)
            return rct_fail(d, rc);
        info->change_tracking.granularity = ri.granularity;
        if (d->tracking) {
            info->change_tracking.newer_changes = newer;
            info->change_tracking.sealed_ids = ri.sealed;
        }
        return 0;
    }
    }
    return tm_err_set(&d->err, TM_E_INVALID, "information kind %d unknown",
                      (int)kind);
}

/* ---- set information --------------------------------------------------- */

static int
enable_tracking(struct tm_vdisk *d, uint32_t granularity)
{
    struct tm_rct_params p = { .granularity = granularity };
    struct tm_rct_binding b;
    struct tm_rct_info ri;
    struct tm_io *rio = NULL, *mio = NULL;
    struct tm_err e;
    int rc;

    if (d->tracking) {
        rc = tm_rct_get_info(d->rct, &ri);
        if (rc < 0)
            return rct_fail(d, rc);
        if (granularity == 0 || granularity == ri.granularity)
            return 0;
        return tm_err_set(&d->err, TM_E_INVALID, "change tracking is on "
                          "with granularity %" PRIu32 "; turn it off "
                          "before choosing %" PRIu32, ri.granularity,
                          granularity);
    }
    rc = binding_now(d, &b);
    if (rc < 0)
        return rc;
    if (d->rct != NULL) {
        /* Disabled: what was written meanwhile was never recorded. */
        rc = tm_rct_reset(d->rct, &b, TM_RCT_RESET_RESTARTED,
                          granularity ? &p : NULL);
        if (rc < 0)
            return rct_fail(d, rc);
    } else {
        rc = d->ops.open(d->ops.user, VDISK_RCT, false, true, &rio);
        if (rc == 0)
            rc = d->ops.open(d->ops.user, VDISK_MRT, false, true, &mio);
        if (rc < 0) {
            tm_io_close(rio);
            return tm_err_set(&d->err, rc, "cannot create the tracking "
                              "files of '%s': %s", d->path, tm_strerror(rc));
        }
        tm_err_clear(&e);
        rc = tm_rct_create(rio, mio, &p, &b, &d->rct, &e);
        if (rc < 0) {
            d->err = e;
            d->err.code = rc;
            return rc;
        }
        d->found = TM_VDISK_TRACKING_CLEAN;
    }
    d->tracking = true;
    d->bound = false;
    d->untracked_why[0] = '\0';
    return 0;
}

static int
disable_tracking(struct tm_vdisk *d)
{
    int rc;

    if (!d->tracking)
        return 0;
    rc = tm_rct_disable(d->rct);
    if (rc < 0)
        return rct_fail(d, rc);
    d->tracking = false;
    return 0;
}

int
tm_vdisk_set_info(struct tm_vdisk *d, const struct tm_vdisk_set_info *info)
{
    int rc;

    if (d == NULL || info == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    if (!size_ok(info->struct_size, sizeof(*info)))
        return tm_err_set(&d->err, TM_E_INVALID, "information struct of "
                          "size %" PRIu32 " unknown", info->struct_size);
    if (d->rdonly)
        return refuse_reader(d);
    /* PARENT_LOCATION's answer may change: callers were told it lives
     * until the next set_info. */
    free(d->parent_paths);
    d->parent_paths = NULL;
    switch (info->kind) {
    case TM_VDISK_SET_PARENT_PATH:
        if (info->parent_path == NULL)
            return tm_err_set(&d->err, TM_E_INVALID, "no parent path");
        rc = tm_vhdx_reparent(d->vd, info->parent_path, false);
        break;
    case TM_VDISK_SET_PARENT_LOCATOR: {
        struct tm_vdisk_open_params op = { 0 };
        struct tm_vdisk *probe;
        struct tm_vdisk_info pi = { .kind = TM_VDISK_INFO_IDENTIFIER };
        struct tm_err e;

        if (info->parent_locator.parent_path == NULL)
            return tm_err_set(&d->err, TM_E_INVALID, "no parent path");
        /* The linkage given must be the parent's identity: check it
         * before anything is written. */
        rc = tm_vdisk_open(info->parent_locator.parent_path,
                           TM_VDISK_OPEN_READ_ONLY | TM_VDISK_OPEN_NO_PARENTS,
                           &op, &probe, &e);
        if (rc < 0) {
            d->err = e;
            return rc;
        }
        rc = tm_vdisk_get_info(probe, &pi);
        tm_vdisk_close(probe);
        if (rc < 0)
            return tm_err_set(&d->err, rc, "cannot read '%s'",
                              info->parent_locator.parent_path);
        if (!tm_guid_equal(&pi.identifier, &info->parent_locator.linkage)) {
            char want[40], have[40];

            tm_guid_format(&info->parent_locator.linkage, want);
            tm_guid_format(&pi.identifier, have);
            return tm_err_set(&d->err, TM_E_CHAIN, "'%s' has identifier "
                              "%s, not the linkage %s given",
                              info->parent_locator.parent_path, have, want);
        }
        /* Another parent's data now shows through wherever the child
         * defines nothing: as far as tracking knows, every byte. */
        if (d->tracking) {
            const struct tm_vhdx_locator *loc = tm_vhdx_locator(d->vd);

            if (loc != NULL &&
                !tm_guid_equal(&loc->linkage, &pi.identifier) &&
                !(loc->has_linkage2 &&
                  tm_guid_equal(&loc->linkage2, &pi.identifier))) {
                rc = track(d, 0, d->virtual_size);
                if (rc < 0)
                    return rc;
            }
        }
        rc = tm_vhdx_reparent(d->vd, info->parent_locator.parent_path,
                              true);
        break;
    }
    case TM_VDISK_SET_PHYSICAL_SECTOR_SIZE:
        rc = tm_vhdx_set_physical_sector(d->vd, info->physical_sector_size);
        break;
    case TM_VDISK_SET_VIRTUAL_DISK_ID:
        rc = tm_vhdx_set_virtual_disk_id(d->vd, &info->virtual_disk_id);
        break;
    case TM_VDISK_SET_CHANGE_TRACKING_STATE:
        return info->change_tracking.enabled
                   ? enable_tracking(d, info->change_tracking.granularity)
                   : disable_tracking(d);
    default:
        return tm_err_set(&d->err, TM_E_INVALID, "information kind %d "
                          "cannot be set", (int)info->kind);
    }
    if (rc == 0)
        rc = tm_vhdx_flush(d->vd);
    return rc < 0 ? vhdx_fail(d, rc) : 0;
}

/* ---- change tracking ------------------------------------------------------ */

static int
need_tracking(struct tm_vdisk *d)
{
    if (d->rct == NULL && d->untracked_why[0] != '\0')
        return tm_err_set(&d->err, TM_E_RCT_DISABLED, "change tracking is "
                          "not enabled for '%s': %s", d->path,
                          d->untracked_why);
    if (d->rct == NULL)
        return tm_err_set(&d->err, TM_E_RCT_DISABLED, "change tracking is "
                          "not enabled for '%s' (no '%s.rct')", d->path,
                          d->path);
    return 0;
}

int
tm_vdisk_seal(struct tm_vdisk *d, char id[TM_VDISK_RCT_ID_MAX + 1])
{
    int rc;

    if (d == NULL || id == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    id[0] = '\0';
    if (d->rdonly)
        return refuse_reader(d);
    rc = need_tracking(d);
    if (rc < 0)
        return rc;
    if (!d->tracking)
        return tm_err_set(&d->err, TM_E_RCT_DISABLED, "change tracking is "
                          "disabled for '%s'", d->path);
    /* CRASH: the data the ID stands for is durable before the ID is: a
     * write lost after the seal would otherwise differ from the sealed
     * state where the map says nothing changed. */
    rc = tm_vhdx_flush(d->vd);
    if (rc < 0)
        return vhdx_fail(d, rc);
    rc = tm_rct_seal(d->rct, id);
    return rc < 0 ? rct_fail(d, rc) : 0;
}

int
tm_vdisk_persist_tracking(struct tm_vdisk *d)
{
    struct tm_rct_binding b;
    int rc;

    if (d == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    if (d->rdonly)
        return refuse_reader(d);
    if (!d->tracking)
        return 0;
    rc = binding_now(d, &b);
    if (rc < 0)
        return rc;
    /* OPEN stays set once this open has written: later writes are
     * covered by the .mrt again, as before. */
    rc = tm_rct_persist(d->rct, &b, d->bound);
    return rc < 0 ? rct_fail(d, rc) : 0;
}

static int
query(struct tm_vdisk *d, const char *id, const char *until, uint64_t off,
      uint64_t len, struct tm_range *ranges, size_t *count,
      uint64_t *processed)
{
    int rc;

    if (d == NULL || count == NULL || processed == NULL)
        return TM_E_INVALID;
    tm_err_clear(&d->err);
    rc = need_tracking(d);
    if (rc < 0) {
        *count = 0;
        *processed = 0;
        return rc;
    }
    rc = tm_rct_query(d->rct, id, until, off, len, ranges, count, processed);
    return rc < 0 ? rct_fail(d, rc) : 0;
}

int
tm_vdisk_query_changes(struct tm_vdisk *d, const char *rct_id, uint64_t off,
                       uint64_t len, struct tm_range *ranges, size_t *count,
                       uint64_t *processed)
{
    return query(d, rct_id, NULL, off, len, ranges, count, processed);
}

int
tm_vdisk_query_changes_between(struct tm_vdisk *d, const char *rct_id,
                               const char *until_id, uint64_t off,
                               uint64_t len, struct tm_range *ranges,
                               size_t *count, uint64_t *processed)
{
    if (d != NULL && until_id == NULL) {
        if (count != NULL)
            *count = 0;
        if (processed != NULL)
            *processed = 0;
        return tm_err_set(&d->err, TM_E_INVALID, "no later ID given");
    }
    return query(d, rct_id, until_id, off, len, ranges, count, processed);
}

/* ---- Windows error codes ------------------------------------------------- */

uint32_t
tm_vdisk_win32_error(int rc)
{
    switch (rc) {
    case 0:
        return 0;                       /* ERROR_SUCCESS */
    case TM_E_RCT_INVALID_ID:
    case TM_E_RCT_OTHER_DISK:
        return 0xC03A0029;      /* ERROR_VHD_INVALID_CHANGE_TRACKING_ID */
    case TM_E_RCT_DISABLED:
        return 0xC03A002A;      /* ERROR_VHD_CHANGE_TRACKING_DISABLED */
    case TM_E_RCT_MISSING:
    case TM_E_RCT_RESET:
        return 0xC03A0030;      /* ERROR_VHD_MISSING_CHANGE_TRACKING_
                                 * INFORMATION */
    case TM_E_RCT_FOREIGN_WRITE:
        return 0xC03A0022;      /* ERROR_CTLOG_VHD_CHANGED_OFFLINE */
    case TM_E_CORRUPT:
        return 1392;                    /* ERROR_FILE_CORRUPT */
    case TM_E_TRUNCATED:
        return 0xC03A0013;              /* ERROR_VHD_INVALID_FILE_SIZE */
    case TM_E_UNSUPPORTED:
        return 0xC03A0005;      /* ERROR_VHD_FORMAT_UNSUPPORTED_VERSION */
    case TM_E_CHAIN:
        return 0xC03A000E;      /* ERROR_VHD_CHILD_PARENT_ID_MISMATCH */
    case TM_E_RANGE:
    case TM_E_INVALID:
    case -EINVAL:
        return 87;                      /* ERROR_INVALID_PARAMETER */
    case TM_E_READONLY:
    case -EACCES:
    case -EPERM:
    case -EROFS:
        return 5;                       /* ERROR_ACCESS_DENIED */
    case TM_E_LOCKED:
        return 32;                      /* ERROR_SHARING_VIOLATION */
    case TM_E_POISONED:
    case -EIO:
        return 1117;                    /* ERROR_IO_DEVICE */
    case -ENOENT:
        return 2;                       /* ERROR_FILE_NOT_FOUND */
    case -EEXIST:
        return 80;                      /* ERROR_FILE_EXISTS */
    case -ENOSPC:
        return 112;                     /* ERROR_DISK_FULL */
    case -ENOMEM:
        return 8;                       /* ERROR_NOT_ENOUGH_MEMORY */
    default:
        return 31;                      /* ERROR_GEN_FAILURE */
    }
}
