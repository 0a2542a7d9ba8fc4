/* SPDX-License-Identifier: MIT */
/* vdisk_files.h - what the vdisk crash tests share: a disk and its two
 * sidecars as memory files, reached either plainly or as members of one
 * fault domain, and a vdisk handle opened on them through vdisk_wrap.
 * Include after <cmocka.h>, "vdisk_int.h" and "vhdx_testutil.h". */
#ifndef TM_VDISK_FILES_H
#define TM_VDISK_FILES_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The three files (memory backends: the durable state). */
struct files {
    struct tm_io *disk, *rct, *mrt;
};

static inline void
files_copy(struct files *dst, const struct files *src)
{
    dst->disk = copy_disk(src->disk);
    dst->rct = copy_disk(src->rct);
    dst->mrt = copy_disk(src->mrt);
}

static inline void
files_close(struct files *f)
{
    tm_io_close(f->disk);
    tm_io_close(f->rct);
    tm_io_close(f->mrt);
    memset(f, 0, sizeof(*f));
}

/* What the sidecar ops hand out: members of 'dom', or (dom NULL) plain
 * borrowed views of the files.  With 'empty_is_absent' an empty sidecar
 * stands for a file that is not there (as before tracking was ever
 * turned on), else it exists and is empty. */
struct reach {
    struct files *f;
    struct tm_fault_domain *dom;
    bool empty_is_absent;
};

static inline struct tm_io *
wrap_io(struct reach *r, struct tm_io *inner)
{
    return r->dom != NULL ? tm_io_fault_new_in(inner, r->dom)
                          : tm_io_borrow_new(inner);
}

static inline int
sidecar_open(void *user, enum vdisk_sidecar which, bool rdonly, bool create,
             struct tm_io **out)
{
    struct reach *r = user;
    struct tm_io *inner = which == VDISK_RCT ? r->f->rct : r->f->mrt;
    int rc;

    (void)rdonly;
    if (!create && r->empty_is_absent) {
        uint64_t size;

        assert_int_equal(tm_io_size(inner, &size), 0);
        if (size == 0)
            return -ENOENT;
    }
    *out = wrap_io(r, inner);
    if (*out == NULL)
        return -ENOMEM;
    if (create) {
        rc = tm_io_truncate(*out, 0);
        if (rc < 0) {
            tm_io_close(*out);
            *out = NULL;
            return rc;
        }
    }
    return 0;
}

/* Opens the disk of 'r' as a vdisk handle; 0 or the error, with its
 * detail in *err ("vhdx open: ..." or "vdisk_wrap: ..."). */
static inline int
files_open(struct reach *r, bool rdonly, struct tm_vdisk **out,
           struct tm_err *err)
{
    struct vdisk_sidecar_ops ops = { sidecar_open, r };
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_io *io = wrap_io(r, r->f->disk);
    int rc;

    *out = NULL;
    assert_non_null(vd);
    assert_non_null(io);
    tm_err_clear(err);
    rc = tm_vhdx_open(vd, io, rdonly ? TM_VHDX_RDONLY : 0);
    if (rc < 0) {
        *err = *tm_vhdx_err(vd);
        tm_err_prefix(err, "vhdx open");
        tm_vhdx_close(vd);
        return rc;
    }
    rc = vdisk_wrap(vd, "crash.vhdx", rdonly, &ops, out, err);
    if (rc < 0)
        tm_err_prefix(err, "vdisk_wrap");
    return rc;
}

#endif
