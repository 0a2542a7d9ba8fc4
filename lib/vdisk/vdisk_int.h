/* SPDX-License-Identifier: MIT */
/* vdisk_int.h - lib/vdisk inside: how a handle is put together from an
 * open VHDX chain and its sidecar files, so tests can hand it files behind
 * the fault-injecting backend instead of paths. */
#ifndef TM_VDISK_INT_H
#define TM_VDISK_INT_H

#include "tidemark/vdisk.h"

#include "io.h"
#include "rct.h"
#include "vhdx.h"

enum vdisk_sidecar {
    VDISK_RCT = 0,
    VDISK_MRT = 1,
};

/* How the sidecars are reached.  open: the existing file (-ENOENT when
 * there is none; read-only when 'rdonly'), or with 'create' a new empty
 * one replacing any.  The default opens '<path>.rct' and '<path>.mrt'
 * with the posix backend. */
struct vdisk_sidecar_ops {
    int (*open)(void *user, enum vdisk_sidecar which, bool rdonly,
                bool create, struct tm_io **out);
    void *user;
};

/* Makes a handle of the open chain 'vd' (ownership passes, whatever the
 * result), opening its tracking through 'ops' ('path' names the disk in
 * messages and for the default ops; 'ops' NULL = the default). */
int vdisk_wrap(struct tm_vhdx *vd, const char *path, bool rdonly,
               const struct vdisk_sidecar_ops *ops, struct tm_vdisk **out,
               struct tm_err *err);

/* The chain under the handle, for tests that write behind its back. */
struct tm_vhdx *vdisk_vhdx(struct tm_vdisk *d);

#endif
