/* SPDX-License-Identifier: MIT */
/* posix.c - the backend over a real file descriptor.  pread/pwrite loop
 * over short transfers and EINTR; allocate and punch fall back to writing
 * zeros on filesystems without fallocate(2) support, keeping the results
 * (contents and size) the same. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_int.h"

struct posix_io {
    struct tm_io io;            /* first: the table pointer */
    int fd;
    bool rdonly;
};

static struct posix_io *
to_posix(struct tm_io *io)
{
    return (struct posix_io *)io;
}

static int64_t
posix_pread(struct tm_io *io, void *buf, size_t len, uint64_t off)
{
    struct posix_io *p = to_posix(io);
    uint8_t *dst = buf;
    size_t done = 0;

    if (off > IO_MAX_OFF)
        return -EINVAL;
    if (len > IO_MAX_OFF - off)
        len = (size_t)(IO_MAX_OFF - off);
    while (done < len) {
        ssize_t n = pread(p->fd, dst + done, len - done,
                          (off_t)(off + done));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;              /* end of file */
        done += (size_t)n;
    }
    return (int64_t)done;
}

static int
posix_pwrite(struct tm_io *io, const void *buf, size_t len, uint64_t off)
{
    struct posix_io *p = to_posix(io);
    const uint8_t *src = buf;
    size_t done = 0;

    if (p->rdonly)
        return TM_E_READONLY;
    if (!io_range_ok(off, len))
        return -EFBIG;
    while (done < len) {
        ssize_t n = pwrite(p->fd, src + done, len - done,
                           (off_t)(off + done));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;        /* no progress and no error: give up */
        done += (size_t)n;
    }
    return 0;
}

static int
posix_flush(struct tm_io *io)
{
    struct posix_io *p = to_posix(io);

    if (p->rdonly)
        return 0;
    /* fdatasync also covers a changed size, which is all the metadata
     * a later read needs. */
    if (fdatasync(p->fd) != 0)
        return -errno;
    return 0;
}

static int
posix_truncate(struct tm_io *io, uint64_t size)
{
    struct posix_io *p = to_posix(io);

    if (p->rdonly)
        return TM_E_READONLY;
    if (size > IO_MAX_OFF)
        return -EFBIG;
    if (ftruncate(p->fd, (off_t)size) != 0)
        return -errno;
    return 0;
}

/* sync_file_range starts write-back of the whole file and returns; it
 * promises nothing about durability (fdatasync in flush does that). */
static int
posix_start_writeback(struct tm_io *io)
{
    struct posix_io *p = to_posix(io);

    if (p->rdonly)
        return 0;
    if (sync_file_range(p->fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0)
        return -errno;
    return 0;
}

static int
posix_size(struct tm_io *io, uint64_t *size)
{
    struct posix_io *p = to_posix(io);
    struct stat st;

    if (fstat(p->fd, &st) != 0) {
        *size = 0;
        return -errno;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

static bool
is_unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL;
}

static int
posix_allocate(struct tm_io *io, uint64_t off, uint64_t len)
{
    struct posix_io *p = to_posix(io);
    uint64_t size;
    int rc;

    if (p->rdonly)
        return TM_E_READONLY;
    if (!io_range_ok(off, len))
        return -EFBIG;
    if (len == 0)
        return 0;
    if (fallocate(p->fd, 0, (off_t)off, (off_t)len) == 0)
        return 0;
    if (!is_unsupported(errno))
        return -errno;
    rc = posix_fallocate(p->fd, (off_t)off, (off_t)len);
    if (rc == 0)
        return 0;
    if (!is_unsupported(rc))
        return -rc;
    /* Last resort: zeros past the end only, never over existing data.
     * The hole-y part inside the file stays a hole. */
    rc = posix_size(io, &size);
    if (rc < 0)
        return rc;
    if (off + len <= size)
        return 0;
    if (off < size) {
        len -= size - off;
        off = size;
    }
    return io_write_zeros(io, off, len);
}

static int
posix_punch(struct tm_io *io, uint64_t off, uint64_t len)
{
    struct posix_io *p = to_posix(io);
    uint64_t size;
    int rc;

    if (p->rdonly)
        return TM_E_READONLY;
    if (!io_range_ok(off, len))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)len) == 0)
        return 0;
    if (!is_unsupported(errno))
        return -errno;
    /* No hole punching here: write zeros over the part inside the file
     * (past the end already reads as zeros, and the size must stay). */
    rc = posix_size(io, &size);
    if (rc < 0)
        return rc;
    if (off >= size)
        return 0;
    if (len > size - off)
        len = size - off;
    return io_write_zeros(io, off, len);
}

static void
posix_close(struct tm_io *io)
{
    struct posix_io *p = to_posix(io);

    /* Errors from close(2) are not actionable here: a caller that cares
     * about durability has flushed first. */
    close(p->fd);
    free(p);
}

static const struct tm_io_ops posix_ops = {
    .version = TM_IO_OPS_VERSION,
    .name = "posix",
    .pread = posix_pread,
    .pwrite = posix_pwrite,
    .flush = posix_flush,
    .truncate = posix_truncate,
    .allocate = posix_allocate,
    .punch = posix_punch,
    .size = posix_size,
    .close = posix_close,
    .start_writeback = posix_start_writeback,
};

/* An OFD lock (F_OFD_SETLK) belongs to this open file description, not
 * to the process, so two opens in one program conflict as two programs
 * do, and closing another descriptor of the file does not drop it. */
static int
lock_whole(int fd, bool shared)
{
    struct flock fl;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = shared ? F_RDLCK : F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0;                       /* to the end, however it grows */
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno == EAGAIN || errno == EACCES)
        return TM_E_LOCKED;
    return -errno;
}

int
tm_io_posix_open(const char *path, unsigned flags, struct tm_io **out)
{
    const unsigned known = TM_IO_RDONLY | TM_IO_CREATE | TM_IO_EXCL |
                           TM_IO_TRUNC | TM_IO_LOCK;
    struct posix_io *p;
    int oflags = O_CLOEXEC;
    int fd;

    if (out == NULL)
        return TM_E_INVALID;
    *out = NULL;
    if (path == NULL || (flags & ~known) != 0)
        return TM_E_INVALID;
    if ((flags & TM_IO_EXCL) && !(flags & TM_IO_CREATE))
        return TM_E_INVALID;
    if ((flags & TM_IO_RDONLY) && (flags & TM_IO_TRUNC))
        return TM_E_INVALID;
    oflags |= (flags & TM_IO_RDONLY) ? O_RDONLY : O_RDWR;
    if (flags & TM_IO_CREATE)
        oflags |= O_CREAT;
    if (flags & TM_IO_EXCL)
        oflags |= O_EXCL;
    /* With a lock, truncation waits until the lock is ours. */
    if ((flags & TM_IO_TRUNC) && !(flags & TM_IO_LOCK))
        oflags |= O_TRUNC;

    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    do {
        fd = open(path, oflags, 0666);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int err = -errno;

        free(p);
        return err;
    }
    if (flags & TM_IO_LOCK) {
        int rc = lock_whole(fd, (flags & TM_IO_RDONLY) != 0);

        if (rc == 0 && (flags & TM_IO_TRUNC) && ftruncate(fd, 0) != 0)
            rc = -errno;
        if (rc < 0) {
            close(fd);
            free(p);
            return rc;
        }
    }
    p->io.ops = &posix_ops;
    p->fd = fd;
    p->rdonly = (flags & TM_IO_RDONLY) != 0;
    *out = &p->io;
    return 0;
}
