/* SPDX-License-Identifier: MIT */
/* merge.c - Merge-VHD: folding differencing disks into an ancestor.
 *
 * CRASH: the chain must read the same through the top at every instant.
 * Two facts give that without any copy of the ancestor:
 *   1. The ancestor is written only at sectors some folded disk defines
 *      itself; reads through the top never reach the ancestor there, so
 *      those writes change nothing the chain reads until the folded files
 *      are gone.
 *   2. Writing the ancestor renews its DataWriteGuid, which would break
 *      its child's link.  So the new GUID is first stored, durably, as
 *      parent_linkage2 in the child's locator (with parent_linkage set to
 *      the ancestor's current GUID), and only then is the ancestor's
 *      header changed to it: before and after, one of the two matches.
 *      Then parent_linkage becomes the new GUID too, for readers that
 *      ignore parent_linkage2 (7-Zip).
 * A merge cut short is simply run again: every step is idempotent. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

#define MAX_LEVELS 256

/* The unit of copying: the smallest block size among the folded disks,
 * so each segment lies inside one block of each of them. */
static uint64_t
segment_size(struct tm_vhdx *const *f, unsigned levels)
{
    uint64_t s = f[0]->p.block_size;

    for (unsigned i = 1; i < levels; i++)
        if (f[i]->p.block_size < s)
            s = f[i]->p.block_size;
    return s;
}

/* Copies every sector the folded disks define, as read through the top,
 * into the ancestor. */
static int
copy_defined(struct tm_vhdx *top, struct tm_vhdx *const *f, unsigned levels,
             struct tm_vhdx *anc)
{
    uint64_t seg = segment_size(f, levels);
    uint64_t ls = top->p.logical_sector;
    uint64_t size = top->p.virtual_size;
    uint8_t *mask = malloc(seg / ls / 8 + 1);
    uint8_t *buf = malloc(seg);
    int rc = 0;

    if (mask == NULL || buf == NULL) {
        rc = tm_err_set(&top->err, -ENOMEM, "no memory to merge");
        goto out;
    }
    for (uint64_t off = 0; off < size && rc == 0; off += seg) {
        uint64_t len = size - off < seg ? size - off : seg;
        uint64_t ns = len / ls;
        uint64_t s = 0;

        memset(mask, 0, seg / ls / 8 + 1);
        for (unsigned i = 0; i < levels && rc == 0; i++) {
            if (off >= f[i]->p.virtual_size)
                continue;
            rc = vhdx_defined_mask(f[i], off,
                                   f[i]->p.virtual_size - off < len
                                   ? f[i]->p.virtual_size - off : len, mask);
            if (rc < 0)
                top->err = f[i]->err;
        }
        if (rc < 0)
            break;
        /* Runs of defined sectors, read through the top. */
        while (s < ns && rc == 0) {
            uint64_t e;

            if (!((mask[s >> 3] >> (s & 7)) & 1)) {
                s++;
                continue;
            }
            for (e = s + 1; e < ns && ((mask[e >> 3] >> (e & 7)) & 1); e++)
                ;
            rc = tm_vhdx_read(top, buf, (size_t)((e - s) * ls),
                              off + s * ls);
            if (rc == 0) {
                rc = vhdx_write_at(anc, buf, (size_t)((e - s) * ls),
                                   off + s * ls);
                if (rc < 0)
                    top->err = anc->err;
            }
            s = e;
        }
    }
out:
    free(buf);
    free(mask);
    return rc;
}

/* Rewrites the child's locator with these linkages (linkage2 NULL: none)
 * and makes it durable; errors go to top. */
static int
relink(struct tm_vhdx *top, struct tm_vhdx *child,
       const struct tm_guid *linkage, const struct tm_guid *linkage2)
{
    struct tm_vhdx_locator loc;
    int rc;

    memset(&loc, 0, sizeof(loc));
    rc = vhdx_locator_copy(&loc, child->loc);
    if (rc < 0)
        return tm_err_set(&top->err, rc, "%s", tm_strerror(rc));
    loc.linkage = *linkage;
    loc.has_linkage2 = linkage2 != NULL;
    if (linkage2 != NULL)
        loc.linkage2 = *linkage2;
    rc = tm_vhdx_set_locator(child, &loc);
    vhdx_locator_free(&loc);
    if (rc == 0)
        rc = tm_vhdx_flush(child);
    if (rc < 0) {
        top->err = child->err;
        tm_err_prefix(&top->err, "setting parent_linkage%s",
                      linkage2 != NULL ? "2" : "");
    }
    return rc;
}

int
tm_vhdx_merge(struct tm_vhdx *top, unsigned levels)
{
    struct tm_vhdx *f[MAX_LEVELS + 1];
    struct tm_vhdx *anc, *child;
    struct tm_guid g;
    int rc;

    tm_err_clear(&top->err);
    if (levels == 0 || levels > MAX_LEVELS)
        return tm_err_set(&top->err, TM_E_INVALID, "cannot merge %u levels",
                          levels);
    f[0] = top;
    for (unsigned i = 0; i < levels; i++) {
        if (!f[i]->is_open || f[i]->rdonly)
            return tm_err_set(&top->err, TM_E_INVALID, "every disk from the "
                              "top to the ancestor must be open read-write");
        if (!f[i]->p.has_parent || f[i]->parent == NULL)
            return tm_err_set(&top->err, TM_E_INVALID, "the chain has fewer "
                              "than %u levels below the top", levels);
        f[i + 1] = f[i]->parent;
    }
    anc = f[levels];
    child = f[levels - 1];
    if (!anc->is_open || anc->rdonly)
        return tm_err_set(&top->err, TM_E_INVALID,
                          "the ancestor must be open read-write");
    if (top->p.virtual_size > anc->p.virtual_size &&
        child->p.virtual_size < top->p.virtual_size)
        return tm_err_set(&top->err, TM_E_UNSUPPORTED,
                          "the top (%" PRIu64 " bytes) is larger than the "
                          "ancestor's child (%" PRIu64 " bytes); resize the "
                          "chain first", top->p.virtual_size,
                          child->p.virtual_size);

    /* 2. Link the child to the ancestor's next identity first. */
    rc = tm_guid_generate(&g);
    if (rc < 0)
        return tm_err_set(&top->err, rc, "cannot make a GUID");
    rc = relink(top, child, &anc->hdr.data_write_guid, &g);
    if (rc < 0)
        return rc;
    rc = vhdx_set_data_write_guid(anc, &g);
    if (rc < 0) {
        top->err = anc->err;
        return rc;
    }
    /* Then parent_linkage itself: readers that ignore parent_linkage2
     * (7-Zip) follow the chain again while the data is copied, and after
     * a crash. */
    rc = relink(top, child, &g, NULL);
    if (rc < 0)
        return rc;

    /* The ancestor takes the top's size first: past its old end it reads
     * zeros, as the chain did there. */
    if (top->p.virtual_size > anc->p.virtual_size) {
        rc = tm_vhdx_resize(anc, top->p.virtual_size);
        if (rc < 0) {
            top->err = anc->err;
            tm_err_prefix(&top->err, "growing the ancestor");
            return rc;
        }
    }

    /* 1. The data. */
    rc = copy_defined(top, f, levels, anc);
    if (rc < 0)
        return rc;

    /* The ancestor is now the disk the top was: its identity items too
     * (MS-VHDX 2.6.1: IsVirtualDisk items are replaced on a merge). */
    if (!tm_guid_equal(&anc->p.virtual_disk_id, &top->p.virtual_disk_id) ||
        anc->p.physical_sector != top->p.physical_sector) {
        uint8_t pss[4];
        struct vhdx_meta_item set[2];

        tm_put_le32(pss, top->p.physical_sector);
        memset(set, 0, sizeof(set));
        set[0].id = VHDX_GUID_VIRTUAL_DISK_ID;
        set[0].data = top->p.virtual_disk_id.b;
        set[0].len = 16;
        set[0].is_virtual_disk = true;
        set[0].is_required = true;
        set[1].id = VHDX_GUID_PHYSICAL_SECTOR;
        set[1].data = pss;
        set[1].len = 4;
        set[1].is_virtual_disk = true;
        set[1].is_required = true;
        rc = vhdx_bat_commit(anc);
        if (rc == 0)
            rc = vhdx_meta_rewrite(anc, set, 2);
        if (rc < 0) {
            top->err = anc->err;
            return rc;
        }
    }
    rc = tm_vhdx_flush(anc);
    if (rc < 0)
        top->err = anc->err;
    return rc;
}

static bool
same_file(const char *a, const struct stat *b)
{
    struct stat sa;

    return a != NULL && stat(a, &sa) == 0 && sa.st_dev == b->st_dev &&
           sa.st_ino == b->st_ino;
}

int
tm_vhdx_merge_path(const char *path, const char *ancestor_path,
                   struct tm_err *err)
{
    struct tm_vhdx_open_opts opts;
    struct tm_vhdx *vd = tm_vhdx_new();
    char *folded[MAX_LEVELS];
    unsigned levels = 0, nfolded = 0;
    struct stat ast;
    int rc;

    tm_err_clear(err);
    if (vd == NULL)
        return tm_err_set(err, -ENOMEM, "%s", tm_strerror(-ENOMEM));
    if (ancestor_path != NULL && stat(ancestor_path, &ast) < 0) {
        rc = tm_err_set(err, -errno, "'%s': %s", ancestor_path,
                        tm_strerror(-errno));
        tm_vhdx_close(vd);
        return rc;
    }
    /* Find how far down the ancestor is. */
    rc = tm_vhdx_open_path(vd, path, TM_VHDX_RDONLY, NULL);
    if (rc == 0) {
        struct tm_vhdx *h = vd;

        if (!vd->p.has_parent) {
            rc = tm_err_set(&vd->err, TM_E_INVALID, "'%s' is not a "
                            "differencing disk", path);
        } else if (ancestor_path == NULL) {
            levels = 1;
        } else {
            for (h = vd->parent, levels = 1; h != NULL;
                 h = h->parent, levels++)
                if (same_file(h->path, &ast))
                    break;
            if (h == NULL)
                rc = tm_err_set(&vd->err, TM_E_INVALID, "'%s' is not in "
                                "the chain of '%s'", ancestor_path, path);
        }
    }
    if (rc < 0) {
        *err = vd->err;
        tm_vhdx_close(vd);
        return rc;
    }
    tm_vhdx_close(vd);

    vd = tm_vhdx_new();
    if (vd == NULL)
        return tm_err_set(err, -ENOMEM, "%s", tm_strerror(-ENOMEM));
    memset(&opts, 0, sizeof(opts));
    opts.rw_parents = levels;
    rc = tm_vhdx_open_path(vd, path, 0, &opts);
    if (rc == 0) {
        struct tm_vhdx *h = vd;

        for (unsigned i = 0; i < levels && h != NULL; i++, h = h->parent) {
            folded[nfolded] = strdup(h->path);
            if (folded[nfolded] == NULL) {
                rc = tm_err_set(&vd->err, -ENOMEM, "%s",
                                tm_strerror(-ENOMEM));
                break;
            }
            nfolded++;
        }
    }
    if (rc == 0)
        rc = tm_vhdx_merge(vd, levels);
    if (rc < 0) {
        *err = vd->err;
        tm_vhdx_close(vd);
        goto out;
    }
    rc = tm_vhdx_close(vd);
    if (rc < 0) {
        tm_err_set(err, rc, "closing the chain: %s", tm_strerror(rc));
        goto out;
    }
    /* Only now, with the ancestor durable, do the folded files go. */
    for (unsigned i = 0; i < nfolded; i++) {
        if (unlink(folded[i]) < 0) {
            rc = tm_err_set(err, -errno, "merged, but cannot delete '%s': "
                            "%s", folded[i], tm_strerror(-errno));
            goto out;
        }
    }
out:
    for (unsigned i = 0; i < nfolded; i++)
        free(folded[i]);
    return rc;
}
