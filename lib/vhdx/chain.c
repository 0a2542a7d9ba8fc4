/* SPDX-License-Identifier: MIT */
/* chain.c - differencing chains by path: opening a file with every parent
 * it reads through, creating a child, and rewriting a child's locator.
 *
 * A parent is found as MS-VHDX 2.6.2.6 orders it: relative_path (from the
 * child's directory), then absolute_win32_path ("Z:\dir\f.vhdx", Wine's
 * name for the Linux root); volume_path names a Windows volume GUID we
 * cannot map and is only kept.  A candidate that exists but has another
 * identity (DataWriteGuid) is passed over for the next one; if none fits,
 * the error names what was found.  Parents are opened read-only: shared
 * locked under a read-write child, so no writer changes them meanwhile,
 * and unlocked under a read-only one, as 'qemu-img info -U' reads. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

/* Deeper than any chain Hyper-V makes; a bound on the recursion too. */
#define MAX_CHAIN_DEPTH 256

enum lock_mode {
    LOCK_NONE,
    LOCK_SHARED,
    LOCK_EXCLUSIVE,
};

/* The files of the chain opened so far, to refuse a loop. */
struct seen {
    dev_t dev[MAX_CHAIN_DEPTH + 1];
    ino_t ino[MAX_CHAIN_DEPTH + 1];
    unsigned n;
};

static int open_chain(struct tm_vhdx *vd, const char *path, unsigned flags,
                      const struct tm_vhdx_open_opts *opts,
                      enum lock_mode lock, struct seen *seen);

static unsigned
io_flags(unsigned vflags, enum lock_mode lock)
{
    unsigned f = (vflags & TM_VHDX_RDONLY) ? TM_IO_RDONLY : 0;

    return lock == LOCK_NONE ? f : f | TM_IO_LOCK;
}

/* Where the parent may be, in the order to try: the caller's override
 * alone, or the locator's usable path forms. */
static int
candidates(struct tm_vhdx *vd, const char *child_path, const char *override,
           char *out[2], unsigned *n)
{
    const struct tm_vhdx_locator *loc = vd->loc;
    int rc;

    *n = 0;
    if (override != NULL) {
        out[0] = strdup(override);
        if (out[0] == NULL)
            return -ENOMEM;
        *n = 1;
        return 0;
    }
    if (loc->relative_path != NULL) {
        rc = vhdx_path_from_relative(child_path, loc->relative_path,
                                     &out[*n]);
        if (rc == -ENOMEM)
            return rc;
        if (rc == 0)
            (*n)++;
    }
    if (loc->absolute_win32_path != NULL) {
        rc = vhdx_path_from_absolute(loc->absolute_win32_path, &out[*n]);
        if (rc == -ENOMEM)
            return rc;
        if (rc == 0)
            (*n)++;
    }
    return 0;
}

/* Opens and attaches the parent of 'vd' (opened from 'path'). */
static int
open_parent(struct tm_vhdx *vd, const char *path,
            const struct tm_vhdx_open_opts *opts, enum lock_mode child_lock,
            struct seen *seen)
{
    struct tm_vhdx_open_opts popts;
    char *cand[2] = { NULL, NULL };
    char tried[1024] = "";
    struct tm_err first;
    unsigned n, pflags;
    enum lock_mode plock;
    int rc;

    memset(&popts, 0, sizeof(popts));
    popts.rw_parents = opts != NULL && opts->rw_parents > 0
                       ? opts->rw_parents - 1 : 0;
    /* tm_vhdx_open_parent: one level only. */
    popts.no_parent = opts != NULL && opts->no_parent;
    pflags = opts != NULL && opts->rw_parents > 0 ? 0 : TM_VHDX_RDONLY;
    plock = pflags == 0 ? LOCK_EXCLUSIVE
            : child_lock == LOCK_NONE ? LOCK_NONE : LOCK_SHARED;
    tm_err_clear(&first);
    rc = candidates(vd, path, opts != NULL ? opts->parent_path : NULL, cand,
                    &n);
    if (rc < 0)
        return tm_err_set(&vd->err, rc, "%s", tm_strerror(rc));
    if (n == 0) {
        rc = tm_err_set(&vd->err, TM_E_CHAIN, "'%s': its parent locator has "
                        "no path this system can follow (relative_path "
                        "'%s', absolute_win32_path '%s')", path,
                        vd->loc->relative_path ? vd->loc->relative_path : "",
                        vd->loc->absolute_win32_path
                        ? vd->loc->absolute_win32_path : "");
        goto out;
    }
    rc = -ENOENT;
    for (unsigned i = 0; i < n; i++) {
        struct tm_vhdx *pa;
        struct stat st;
        size_t used = strlen(tried);
        unsigned mark = seen->n;

        snprintf(tried + used, sizeof(tried) - used, "%s'%s'",
                 used > 0 ? ", " : "", cand[i]);
        if (stat(cand[i], &st) < 0)
            continue;
        pa = tm_vhdx_new();
        if (pa == NULL) {
            rc = -ENOMEM;
            break;
        }
        rc = open_chain(pa, cand[i], pflags, &popts, plock, seen);
        if (rc < 0) {
            /* The parent's own error names its file and chain. */
            tm_err_set(&vd->err, rc, "%s", pa->err.msg);
            tm_vhdx_close(pa);
            goto out;
        }
        rc = tm_vhdx_attach_parent(vd, pa);
        if (rc == 0)
            goto out;
        tm_err_prefix(&vd->err, "parent '%s' of '%s'", cand[i], path);
        if (first.code == 0)
            first = vd->err;
        /* Another file of that name: try the next path form. */
        seen->n = mark;
    }
    if (first.code != 0)
        vd->err = first;
    else if (rc == -ENOENT)
        tm_err_set(&vd->err, -ENOENT, "the parent of '%s' is missing: "
                   "looked for %s", path, tried);
    else
        tm_err_set(&vd->err, rc, "%s", tm_strerror(rc));
out:
    free(cand[0]);
    free(cand[1]);
    return rc;
}

static int
open_chain(struct tm_vhdx *vd, const char *path, unsigned flags,
           const struct tm_vhdx_open_opts *opts, enum lock_mode lock,
           struct seen *seen)
{
    struct tm_io *io = NULL;
    struct stat st;
    int rc;

    if (seen->n >= MAX_CHAIN_DEPTH)
        return tm_err_set(&vd->err, TM_E_CHAIN, "'%s': the chain is deeper "
                          "than %d files", path, MAX_CHAIN_DEPTH);
    if (stat(path, &st) == 0) {
        for (unsigned i = 0; i < seen->n; i++)
            if (seen->dev[i] == st.st_dev && seen->ino[i] == st.st_ino)
                return tm_err_set(&vd->err, TM_E_CHAIN, "the chain loops: "
                                  "'%s' is its own ancestor", path);
    }
    rc = tm_io_posix_open(path, io_flags(flags, lock), &io);
    if (rc < 0)
        return tm_err_set(&vd->err, rc, "cannot open '%s': %s", path,
                          tm_strerror(rc));
    rc = tm_vhdx_open(vd, io, flags);
    if (rc < 0) {
        tm_err_prefix(&vd->err, "'%s'", path);
        return rc;
    }
    vd->path = strdup(path);
    if (vd->path == NULL)
        return tm_err_set(&vd->err, -ENOMEM, "%s", tm_strerror(-ENOMEM));
    seen->dev[seen->n] = st.st_dev;
    seen->ino[seen->n] = st.st_ino;
    seen->n++;
    if (!vd->p.has_parent || (opts != NULL && opts->no_parent))
        return 0;
    return open_parent(vd, path, opts, lock, seen);
}

/* The handle keeps the error of a failed open until it is closed, as
 * tm_vhdx_open's does; everything else is released. */
static int
fail_open(struct tm_vhdx *vd, int rc)
{
    struct tm_err keep = vd->err;

    vhdx_release(vd);
    vd->err = keep;
    return rc;
}

int
tm_vhdx_open_path(struct tm_vhdx *vd, const char *path, unsigned flags,
                  const struct tm_vhdx_open_opts *opts)
{
    struct seen *seen;
    int rc;

    if (vd == NULL || path == NULL)
        return TM_E_INVALID;
    tm_err_clear(&vd->err);
    seen = calloc(1, sizeof(*seen));
    if (seen == NULL)
        return tm_err_set(&vd->err, -ENOMEM, "%s", tm_strerror(-ENOMEM));
    /* Writers lock the file, so a disk a VM (QEMU) has open is refused;
     * readers do not, so a disk in use can still be inspected. */
    rc = open_chain(vd, path, flags, opts,
                    (flags & TM_VHDX_RDONLY) ? LOCK_NONE : LOCK_EXCLUSIVE,
                    seen);
    free(seen);
    return rc < 0 ? fail_open(vd, rc) : 0;
}

int
tm_vhdx_open_parent(struct tm_vhdx *vd, const char *parent_path)
{
    struct tm_vhdx_open_opts opts;
    struct seen *seen;
    struct stat st;
    int rc;

    tm_err_clear(&vd->err);
    if (!vd->is_open || !vd->p.has_parent || vd->loc == NULL)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "not a differencing disk: it has no parent");
    if (vd->parent != NULL)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "a parent is attached already");
    seen = calloc(1, sizeof(*seen));
    if (seen == NULL)
        return tm_err_set(&vd->err, -ENOMEM, "%s", tm_strerror(-ENOMEM));
    if (vd->path != NULL && stat(vd->path, &st) == 0) {
        seen->dev[0] = st.st_dev;
        seen->ino[0] = st.st_ino;
        seen->n = 1;
    }
    memset(&opts, 0, sizeof(opts));
    opts.parent_path = parent_path;
    opts.no_parent = true;
    rc = open_parent(vd, vd->path != NULL ? vd->path : ".", &opts,
                     LOCK_NONE, seen);
    free(seen);
    return rc;
}

/* An absolute, normalised path for a file that may not exist yet: its
 * directory resolved, its name appended. */
static int
absolute_path(const char *path, char **out)
{
    char *dir = strdup(path);
    const char *name;
    char *slash, *rdir;
    size_t len;

    *out = NULL;
    if (dir == NULL)
        return -ENOMEM;
    slash = strrchr(dir, '/');
    if (slash == NULL) {
        name = path;
        rdir = realpath(".", NULL);
    } else if (slash == dir) {
        name = path + 1;
        rdir = strdup("/");
    } else {
        *slash = '\0';
        name = path + (slash - dir) + 1;
        rdir = realpath(dir, NULL);
    }
    free(dir);
    if (rdir == NULL)
        return errno != 0 ? -errno : -ENOMEM;
    if (*name == '\0') {
        free(rdir);
        return TM_E_INVALID;
    }
    len = strlen(rdir) + strlen(name) + 2;
    *out = malloc(len);
    if (*out == NULL) {
        free(rdir);
        return -ENOMEM;
    }
    snprintf(*out, len, "%s%s%s", rdir,
             rdir[strlen(rdir) - 1] == '/' ? "" : "/", name);
    free(rdir);
    return 0;
}

int
tm_vhdx_create_child(struct tm_vhdx *vd, const char *path,
                     const char *parent_path,
                     const struct tm_vhdx_create_params *params)
{
    struct tm_vhdx_create_params p;
    struct tm_vhdx *pa = NULL;
    struct tm_io *io = NULL;
    struct seen *seen = NULL;
    char *cabs = NULL, *pabs = NULL, *rel = NULL, *abs = NULL;
    bool created = false;
    int rc;

    if (vd == NULL || path == NULL || parent_path == NULL)
        return TM_E_INVALID;
    tm_err_clear(&vd->err);
    if (params != NULL)
        p = *params;
    else
        memset(&p, 0, sizeof(p));
    pa = tm_vhdx_new();
    seen = calloc(1, sizeof(*seen));
    if (pa == NULL || seen == NULL) {
        rc = tm_err_set(&vd->err, -ENOMEM, "%s", tm_strerror(-ENOMEM));
        goto fail;
    }
    rc = open_chain(pa, parent_path, TM_VHDX_RDONLY, NULL, LOCK_SHARED,
                    seen);
    if (rc < 0) {
        vd->err = pa->err;
        goto fail;
    }
    pabs = realpath(parent_path, NULL);
    if (pabs == NULL) {
        rc = tm_err_set(&vd->err, -errno, "'%s': %s", parent_path,
                        tm_strerror(-errno));
        goto fail;
    }
    rc = absolute_path(path, &cabs);
    if (rc == 0)
        rc = vhdx_path_relative_win(cabs, pabs, &rel);
    if (rc == 0)
        rc = vhdx_path_absolute_win(pabs, &abs);
    if (rc < 0) {
        tm_err_set(&vd->err, rc, "'%s': cannot express the parent's path: "
                   "%s", path, tm_strerror(rc));
        goto fail;
    }
    rc = tm_io_posix_open(path, TM_IO_CREATE | TM_IO_EXCL | TM_IO_LOCK, &io);
    if (rc < 0) {
        tm_err_set(&vd->err, rc, "cannot create '%s': %s", path,
                   tm_strerror(rc));
        goto fail;
    }
    created = true;
    p.parent = pa;
    p.parent_relative_path = rel;
    p.parent_absolute_path = abs;
    pa = NULL;                          /* passes to the child */
    rc = tm_vhdx_create(vd, io, &p);
    if (rc < 0) {
        tm_err_prefix(&vd->err, "cannot create '%s'", path);
        goto fail;
    }
    vd->path = strdup(path);
    if (vd->path == NULL) {
        rc = -ENOMEM;
        vhdx_release(vd);
        goto fail;
    }
    goto out;
fail:
    if (created)
        (void)unlink(path);
out:
    tm_vhdx_close(pa);
    free(seen);
    free(cabs);
    free(pabs);
    free(rel);
    free(abs);
    return rc;
}

int
tm_vhdx_set_locator(struct tm_vhdx *vd, const struct tm_vhdx_locator *loc)
{
    struct vhdx_meta_item item;
    struct tm_vhdx_locator *copy;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    tm_err_clear(&vd->err);
    if (!vd->is_open || !vd->p.has_parent || vd->loc == NULL)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "not a differencing disk: it has no locator");
    if (vd->rdonly)
        return tm_err_set(&vd->err, TM_E_READONLY, "opened read-only");
    copy = calloc(1, sizeof(*copy));
    if (copy == NULL)
        return -ENOMEM;
    rc = vhdx_locator_copy(copy, loc);
    if (rc == 0)
        rc = vhdx_locator_encode(loc, &buf, &len);
    if (rc < 0) {
        vhdx_locator_free(copy);
        free(copy);
        return tm_err_set(&vd->err, rc, "cannot encode the parent locator: "
                          "%s", tm_strerror(rc));
    }
    memset(&item, 0, sizeof(item));
    item.id = VHDX_GUID_PARENT_LOCATOR;
    item.data = buf;
    item.len = (uint32_t)len;
    item.is_required = true;
    rc = vhdx_meta_rewrite(vd, &item, 1);
    free(buf);
    if (rc < 0) {
        vhdx_locator_free(copy);
        free(copy);
        return rc;
    }
    vhdx_locator_free(vd->loc);
    free(vd->loc);
    vd->loc = copy;
    return 0;
}

/* Set-VHD -ParentPath: relinks a moved chain.  The new parent must be the
 * one the child was made from (its DataWriteGuid is parent_linkage or
 * parent_linkage2) unless 'force'; its geometry must fit in any case. */
int
tm_vhdx_reparent(struct tm_vhdx *vd, const char *parent_path, bool force)
{
    struct tm_vhdx_locator loc;
    struct tm_vhdx *pa = NULL, *old;
    struct tm_guid saved;
    struct seen *seen = NULL;
    struct stat st;
    char *cabs = NULL, *pabs = NULL;
    int rc;

    memset(&loc, 0, sizeof(loc));
    tm_err_clear(&vd->err);
    if (!vd->is_open || !vd->p.has_parent || vd->loc == NULL)
        return tm_err_set(&vd->err, TM_E_INVALID, "'%s' is not a "
                          "differencing disk", vd->path ? vd->path : "");
    if (vd->rdonly)
        return tm_err_set(&vd->err, TM_E_READONLY, "opened read-only");
    if (vd->path == NULL)
        return tm_err_set(&vd->err, TM_E_INVALID,
                          "the disk was not opened by path");
    seen = calloc(1, sizeof(*seen));
    pa = tm_vhdx_new();
    if (seen == NULL || pa == NULL) {
        rc = tm_err_set(&vd->err, -ENOMEM, "%s", tm_strerror(-ENOMEM));
        goto out;
    }
    /* The child is part of the chain to check for loops. */
    if (stat(vd->path, &st) == 0) {
        seen->dev[0] = st.st_dev;
        seen->ino[0] = st.st_ino;
        seen->n = 1;
    }
    rc = open_chain(pa, parent_path, TM_VHDX_RDONLY, NULL, LOCK_SHARED,
                    seen);
    if (rc < 0) {
        vd->err = pa->err;
        goto out;
    }
    if (!force && !tm_guid_equal(&pa->hdr.data_write_guid,
                                 &vd->loc->linkage) &&
        !(vd->loc->has_linkage2 &&
          tm_guid_equal(&pa->hdr.data_write_guid, &vd->loc->linkage2))) {
        char want[40], have[40];

        tm_guid_format(&vd->loc->linkage, want);
        tm_guid_format(&pa->hdr.data_write_guid, have);
        rc = tm_err_set(&vd->err, TM_E_CHAIN, "'%s' is not the parent "
                        "'%s' was made from: its DataWriteGuid is %s, the "
                        "child's parent_linkage is %s (--force links it "
                        "anyway)", parent_path, vd->path, have, want);
        goto out;
    }
    pabs = realpath(parent_path, NULL);
    cabs = realpath(vd->path, NULL);
    if (pabs == NULL || cabs == NULL) {
        rc = tm_err_set(&vd->err, -errno, "%s", tm_strerror(-errno));
        goto out;
    }
    loc.linkage = pa->hdr.data_write_guid;
    rc = vhdx_path_relative_win(cabs, pabs, &loc.relative_path);
    if (rc == 0)
        rc = vhdx_path_absolute_win(pabs, &loc.absolute_win32_path);
    if (rc < 0) {
        tm_err_set(&vd->err, rc, "cannot express the parent's path: %s",
                   tm_strerror(rc));
        goto out;
    }
    /* The geometry checks of a chain open, before anything is written;
     * under 'force' the identity is already the new parent's (in memory
     * only, until the locator is rewritten). */
    old = vd->parent;
    vd->parent = NULL;
    saved = vd->loc->linkage;
    if (force)
        vd->loc->linkage = pa->hdr.data_write_guid;
    rc = tm_vhdx_attach_parent(vd, pa);
    pa = NULL;
    if (rc < 0) {
        vd->loc->linkage = saved;
        vd->parent = old;
        tm_err_prefix(&vd->err, "'%s'", parent_path);
        goto out;
    }
    /* Another parent's data shows through wherever the child defines
     * nothing: the disk's content changes, a user-visible change
     * (MS-VHDX 2.2.2), so its DataWriteGuid is renewed first.  Tracking
     * of the child then sees a disk it does not know, and its own
     * children no longer take it for the disk they were made from. */
    if (!tm_guid_equal(&saved, &loc.linkage) &&
        !(vd->loc->has_linkage2 &&
          tm_guid_equal(&vd->loc->linkage2, &loc.linkage)))
        rc = vhdx_begin_modify(vd, true);
    if (rc == 0)
        rc = tm_vhdx_set_locator(vd, &loc);
    if (rc < 0) {
        /* The locator on disk is the old one (or the handle is
         * poisoned): so is the chain the handle reads. */
        pa = vd->parent;
        vd->parent = old;
        vd->loc->linkage = saved;
        goto out;
    }
    tm_vhdx_close(old);
out:
    tm_vhdx_close(pa);
    vhdx_locator_free(&loc);
    free(seen);
    free(cabs);
    free(pabs);
    return rc;
}

int
tm_vhdx_set_parent_path(const char *path, const char *parent_path,
                        bool force, struct tm_err *err)
{
    struct tm_vhdx_open_opts alone = { .no_parent = true };
    struct tm_vhdx *vd = tm_vhdx_new();
    int rc;

    tm_err_clear(err);
    if (vd == NULL)
        return tm_err_set(err, -ENOMEM, "%s", tm_strerror(-ENOMEM));
    rc = tm_vhdx_open_path(vd, path, 0, &alone);
    if (rc == 0)
        rc = tm_vhdx_reparent(vd, parent_path, force);
    if (rc == 0)
        rc = tm_vhdx_flush(vd);
    if (rc < 0) {
        *err = vd->err;
        if (err->code == 0)
            err->code = rc;
        tm_vhdx_close(vd);
        return rc;
    }
    rc = tm_vhdx_close(vd);
    if (rc < 0)
        tm_err_set(err, rc, "cannot close '%s': %s", path, tm_strerror(rc));
    return rc;
}
