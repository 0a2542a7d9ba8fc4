/* SPDX-License-Identifier: MIT */
/* convert.c - 'tidemark vhd convert <src> <dst>', as Hyper-V's Convert-VHD:
 * raw to VHDX, VHDX to raw, VHDX to VHDX (new type or block size) and raw
 * to raw, keeping holes.  A name ending in .vhdx or .avhdx (any case) is a
 * VHDX; anything else is a raw image.
 *
 * Built for speed: a reader thread fills 8 MiB slots while the main
 * thread writes the previous ones.  The reader skips what the source says
 * holds no data (SEEK_DATA/SEEK_HOLE on a raw file, block status on a
 * VHDX) without reading it, maps raw files instead of copying them, and
 * finds the granules that are all zero; the writer skips those, so the
 * destination stays sparse (a new VHDX and a new raw file, truncated to
 * size, both read as zeros where nothing was written).
 *
 * Raw sources are read with plain POSIX calls (SEEK_DATA and mmap are not
 * in struct tm_io); everything written goes through lib/io or lib/vhdx.  As
 * qemu-img convert and cp do, an existing destination is replaced (it must
 * be a regular file and not the source); on failure the destination is
 * removed, since by then it holds nothing worth keeping. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define CHUNK (8u << 20)            /* bytes per buffer; aligned copies */
#define NSLOTS 3                    /* buffers in flight */
#define RAW_GRANULE 4096u           /* zero-skipping unit, raw output */
#define VHDX_GRANULE (64u << 10)    /* zero-skipping unit, VHDX output */
#define WRITEBACK_BYTES (32u << 20) /* start writeback this often */
#define MAP_ALIGN 4096u             /* mmap offsets: a page, at least */
/* Runs in a slot: at worst every other granule. */
#define MAX_RUNS (CHUNK / RAW_GRANULE / 2 + 1)

enum {
    OPT_FIXED,
    OPT_DYNAMIC,
    OPT_BLOCK_SIZE,
};

const struct cli_opt vhd_convert_opts[] = {
    { "fixed", NULL, OPT_FIXED, "make the new VHDX fixed (all blocks "
      "allocated)" },
    { "dynamic", NULL, OPT_DYNAMIC, "make the new VHDX dynamic (default "
      "from raw)" },
    { "block-size", "<size>", OPT_BLOCK_SIZE, "1M..256M, a power of two "
      "(default: the source's or 32M)" },
    { NULL, NULL, 0, NULL },
};

struct src {
    const struct cli_cmd *cmd;
    const char *path;
    struct tm_vhdx *vd;             /* a VHDX source, or NULL */
    int fd;                         /* a raw source, or -1 */
    bool seek_data;                 /* fd answers SEEK_DATA / SEEK_HOLE */
    bool can_map;                   /* fd is a regular file we may mmap */
    uint64_t data_end;              /* raw: data known to run up to here */
    uint64_t file_size;             /* raw: bytes in the file */
    uint64_t size;                  /* virtual bytes to copy */
    struct tm_vhdx_info info;       /* a VHDX source's */
    char err[640];                  /* the reader's failure, unreported */
};

struct dst {
    const struct cli_cmd *cmd;
    const char *path;
    struct tm_vhdx *vd;             /* a VHDX destination, or NULL */
    struct tm_io *io;               /* the file; vd borrows it */
    bool created;                   /* opened, truncated: ours to remove */
    size_t granule;
    bool no_writeback;              /* the file refused the hint */
    uint64_t unflushed;             /* bytes written since the last hint */
    int write_rc;                   /* the failed write's code */
    char err[640];                  /* the writer's failure, unreported */
};

/* The buffers between the reader thread and the writer, used in turn. */
struct run {
    size_t start;                   /* from the slot's first byte */
    size_t len;
};

struct slot {
    uint8_t *buf;                   /* CHUNK bytes to read into */
    const uint8_t *data;            /* the bytes: buf, or in map */
    void *map;                      /* a mapping of a raw source, or NULL */
    size_t map_len;
    uint64_t off;                   /* where data goes in the disk */
    size_t len;
    struct run *runs;               /* MAX_RUNS: the non-zero parts */
    size_t nruns;
    bool full;                      /* handed to the writer */
};

struct pipeline {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct slot slot[NSLOTS];
    bool done;                      /* the reader filled its last slot */
    bool abort;                     /* a side failed: the other stops */
    const char *first_err;          /* the message of the side that did */
    int reader_status;              /* exit code */
    struct src *src;
    size_t granule;                 /* the destination's zero-skip unit */
};

/* The two threads of the copy keep their failure's message for copy() to
 * report, so that only the first of them is reported (the other side
 * often fails in sympathy).  Returns the exit code. */
__attribute__((format(printf, 2, 3))) static int
side_err(char *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, sizeof(((struct src *)0)->err), fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

/* Marks the copy as failed by one side, remembering whose message to
 * show; the caller holds the lock. */
static void
fail_locked(struct pipeline *pl, const char *err)
{
    if (!pl->abort)
        pl->first_err = err;
    pl->abort = true;
}

/* ---- the source --------------------------------------------------------- */

/* Whether [off, off + len) may hold data, as a run from off of *run bytes
 * (at most len).  Raw files without SEEK_DATA are data throughout. */
static int
raw_extent(struct src *s, uint64_t off, uint64_t len, uint64_t *run,
           bool *data)
{
    off_t d;
    off_t h;

    *run = len;
    *data = true;
    if (off >= s->file_size) {
        *data = false;              /* the padding to a whole sector */
        return 0;
    }
    if (off < s->data_end) {
        *run = s->data_end - off < len ? s->data_end - off : len;
        return 0;
    }
    if (!s->seek_data)
        return 0;
    d = lseek(s->fd, (off_t)off, SEEK_DATA);
    if (d < 0 && errno == ENXIO) {
        *data = false;              /* a hole up to the end of the file */
        return 0;
    }
    if (d < 0) {
        s->seek_data = false;       /* not supported here: read it all */
        return 0;
    }
    if ((uint64_t)d > off) {
        *data = false;
        *run = (uint64_t)d - off < len ? (uint64_t)d - off : len;
        return 0;
    }
    h = lseek(s->fd, (off_t)off, SEEK_HOLE);
    if (h < 0 || (uint64_t)h <= off) {
        s->seek_data = false;
        return 0;
    }
    s->data_end = (uint64_t)h;
    *run = (uint64_t)h - off < len ? (uint64_t)h - off : len;
    return 0;
}

static int
src_extent(struct src *s, uint64_t off, uint64_t len, uint64_t *run,
           bool *data)
{
    int rc;

    if (s->vd == NULL)
        return raw_extent(s, off, len, run, data);
    rc = tm_vhdx_block_status(s->vd, off, len, run, data);
    if (rc < 0)
        return side_err(s->err, "cannot map '%s' at %" PRIu64 ": %s",
                        s->path, off, cli_vhdx_msg(s->vd, rc));
    if (*run == 0 || *run > len)
        return side_err(s->err, "cannot map '%s' at %" PRIu64 ": block "
                        "status gave %" PRIu64 " bytes of %" PRIu64,
                        s->path, off, *run, len);
    return 0;
}

/* Reads [off, off + len), which lies inside the source (the reader never
 * asks for more); returns the exit code, reporting failures. */
static int
src_read(struct src *s, uint8_t *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    int rc;

    if (s->vd != NULL) {
        rc = tm_vhdx_read(s->vd, buf, len, off);
        if (rc < 0)
            return side_err(s->err, "cannot read '%s' at %" PRIu64 ": %s",
                            s->path, off, cli_vhdx_msg(s->vd, rc));
        return CLI_EXIT_OK;
    }
    while (got < len) {
        ssize_t n = pread(s->fd, buf + got, len - got, (off_t)(off + got));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return side_err(s->err, "cannot read '%s' at %" PRIu64 ": %s",
                            s->path, off + got, tm_strerror(-errno));
        if (n == 0)
            return side_err(s->err, "cannot read '%s' at %" PRIu64 ": the "
                            "file shrank while being copied", s->path,
                            off + got);
        got += (size_t)n;
    }
    return CLI_EXIT_OK;
}

static int
src_open(const struct cli_cmd *cmd, const char *path, struct src *s)
{
    struct stat st;
    off_t end;
    int status;
    int rc;

    memset(s, 0, sizeof(*s));
    s->cmd = cmd;
    s->path = path;
    s->fd = -1;
    if (cli_is_vhdx_path(path)) {
        status = vhd_open(cmd, path, false, &s->vd);
        if (status != CLI_EXIT_OK)
            return status;
        rc = tm_vhdx_get_info(s->vd, &s->info);
        if (rc < 0)
            return cli_fail(cmd, "cannot read the headers of '%s': %s",
                            path, cli_vhdx_msg(s->vd, rc));
        s->size = s->info.virtual_size;
        return CLI_EXIT_OK;
    }
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0)
        return cli_fail(cmd, "cannot open '%s': %s", path,
                        tm_strerror(-errno));
    if (fstat(s->fd, &st) < 0)
        return cli_fail(cmd, "cannot open '%s': %s", path,
                        tm_strerror(-errno));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return cli_fail(cmd, "cannot open '%s': not a file or block device",
                        path);
    end = lseek(s->fd, 0, SEEK_END);   /* block devices too */
    if (end < 0)
        return cli_fail(cmd, "cannot size '%s': %s", path,
                        tm_strerror(-errno));
    s->file_size = (uint64_t)end;
    s->size = s->file_size;
    s->seek_data = S_ISREG(st.st_mode);
    s->can_map = S_ISREG(st.st_mode) && sysconf(_SC_PAGESIZE) <= MAP_ALIGN;
    posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return CLI_EXIT_OK;
}

static void
src_close(struct src *s)
{
    tm_vhdx_close(s->vd);
    if (s->fd >= 0)
        close(s->fd);
}

/* ---- the destination ---------------------------------------------------- */

/* Asks the kernel to start writing dirty pages back every few MiB, so
 * that the disk works while we copy and the final flush has little left
 * to wait for (qemu-img convert, by default, never flushes at all).  Only
 * a hint: durability still comes from tm_vhdx_flush / tm_io_flush. */
static void
start_writeback(struct dst *d)
{
    if (d->no_writeback || d->unflushed < WRITEBACK_BYTES)
        return;
    d->unflushed = 0;
    if (tm_io_start_writeback(d->io) < 0)
        d->no_writeback = true;     /* unsupported here: stop asking */
}

/* An existing destination may be replaced only if it is a regular file
 * other than the source: the copy leaves holes where the source has
 * zeros, so it must start from an empty file. */
static int
check_dst(const struct cli_cmd *cmd, const char *path, const struct src *s)
{
    struct stat ds;
    struct stat ss;

    if (stat(path, &ds) < 0) {
        if (errno == ENOENT)
            return CLI_EXIT_OK;
        return cli_fail(cmd, "cannot create '%s': %s", path,
                        tm_strerror(-errno));
    }
    if (!S_ISREG(ds.st_mode))
        return cli_fail(cmd, "cannot replace '%s': not a regular file",
                        path);
    if (stat(s->path, &ss) == 0 && ss.st_dev == ds.st_dev &&
        ss.st_ino == ds.st_ino)
        return cli_fail(cmd, "cannot convert '%s' into itself", s->path);
    return CLI_EXIT_OK;
}

static int
dst_create(const struct cli_cmd *cmd, const char *path, struct src *s,
           const struct cli_args *a, struct dst *d)
{
    struct tm_vhdx_create_params p = { 0 };
    struct tm_io *io = NULL;
    int status;
    int rc;

    memset(d, 0, sizeof(*d));
    d->cmd = cmd;
    d->path = path;
    status = check_dst(cmd, path, s);
    if (status != CLI_EXIT_OK)
        return status;
    if (!cli_is_vhdx_path(path)) {
        d->granule = RAW_GRANULE;
        rc = tm_io_posix_open(path, TM_IO_CREATE | TM_IO_TRUNC | TM_IO_LOCK,
                              &d->io);
        if (rc < 0)
            return cli_fail(cmd, "cannot create '%s': %s", path,
                            tm_strerror(rc));
        d->created = true;
        rc = tm_io_truncate(d->io, s->size);
        if (rc < 0)
            return cli_fail(cmd, "cannot size '%s': %s", path,
                            tm_strerror(rc));
        return CLI_EXIT_OK;
    }

    d->granule = VHDX_GRANULE;
    p.virtual_size = (s->size + 511) & ~(uint64_t)511;
    if (s->vd != NULL) {
        p.virtual_size = s->size;
        p.block_size = s->info.block_size;
        p.logical_sector = s->info.logical_sector;
        p.physical_sector = s->info.physical_sector;
        p.fixed = s->info.type == TM_VHDX_FIXED;
    }
    if (a->opt[OPT_FIXED] != NULL)
        p.fixed = true;
    if (a->opt[OPT_DYNAMIC] != NULL)
        p.fixed = false;
    if (a->opt[OPT_BLOCK_SIZE] != NULL &&
        !vhd_opt_block_size(cmd, a->opt[OPT_BLOCK_SIZE], &p.block_size,
                            &status))
        return status;
    if (p.virtual_size == 0)
        return cli_fail(cmd, "cannot convert '%s': it is empty", s->path);
    if (p.virtual_size > TM_VHDX_MAX_VIRTUAL_SIZE)
        return cli_fail(cmd, "cannot convert '%s': %" PRIu64 " bytes is "
                        "more than a VHDX holds (64 TiB)", s->path,
                        p.virtual_size);

    rc = tm_io_posix_open(path, TM_IO_CREATE | TM_IO_TRUNC | TM_IO_LOCK,
                              &d->io);
    if (rc < 0)
        return cli_fail(cmd, "cannot create '%s': %s", path,
                        tm_strerror(rc));
    d->created = true;
    d->vd = tm_vhdx_new();
    /* The handle borrows the file, so the write-back hints can reach it. */
    io = tm_io_borrow_new(d->io);
    if (d->vd == NULL || io == NULL) {
        tm_io_close(io);
        return cli_fail(cmd, "cannot create '%s': %s", path,
                        tm_strerror(-ENOMEM));
    }
    rc = tm_vhdx_create(d->vd, io, &p);
    if (rc < 0)
        return cli_fail(cmd, "cannot create '%s': %s", path,
                        cli_vhdx_msg(d->vd, rc));
    return CLI_EXIT_OK;
}

/* Makes everything written durable and closes; returns the exit code. */
static int
dst_finish(struct dst *d)
{
    int rc;

    if (d->vd != NULL) {
        rc = tm_vhdx_flush(d->vd);
        if (rc < 0)
            return cli_fail(d->cmd, "cannot flush '%s': %s", d->path,
                            cli_vhdx_msg(d->vd, rc));
        rc = tm_vhdx_close(d->vd);
        d->vd = NULL;
        if (rc < 0)
            return cli_fail(d->cmd, "cannot close '%s': %s", d->path,
                            tm_strerror(rc));
        tm_io_close(d->io);
        d->io = NULL;
        return CLI_EXIT_OK;
    }
    rc = tm_io_flush(d->io);
    if (rc < 0)
        return cli_fail(d->cmd, "cannot flush '%s': %s", d->path,
                        tm_strerror(rc));
    tm_io_close(d->io);
    d->io = NULL;
    return CLI_EXIT_OK;
}

static void
dst_close(struct dst *d)
{
    tm_vhdx_close(d->vd);           /* first: it borrows d->io */
    tm_io_close(d->io);
    d->vd = NULL;
    d->io = NULL;
}

/* ---- the copy ----------------------------------------------------------- */

/* A raw source is mapped, not read, and a file that shrinks under a
 * mapping raises SIGBUS.  The handler says so, removes the destination
 * (unlink is async-signal-safe) and exits 1.  Set before the reader
 * starts, read only by the handler. */
static char sigbus_msg[512];
static const char *sigbus_dst;

static void
on_sigbus(int sig)
{
    ssize_t n = write(STDERR_FILENO, sigbus_msg, strlen(sigbus_msg));

    (void)sig;
    (void)n;
    unlink(sigbus_dst);
    _exit(CLI_EXIT_FAIL);
}

static void
catch_sigbus(const struct src *s, const struct dst *d)
{
    struct sigaction sa;

    snprintf(sigbus_msg, sizeof(sigbus_msg), "%s: %s: cannot read '%s': "
             "the file shrank while being copied\n", CLI_PROG,
             s->cmd->name, s->path);
    sigbus_dst = d->path;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

/* Fills the slot with [off, off + len) of the source.  A raw file is
 * mapped rather than read, so the writer copies straight from the page
 * cache: one copy fewer, the largest saving there is for raw sources. */
static int
src_fill(struct src *s, struct slot *sl, size_t len, uint64_t off)
{
    uint64_t start = off & ~(uint64_t)(MAP_ALIGN - 1);
    size_t n = (size_t)(off + len - start);
    void *m;

    sl->map = NULL;
    sl->data = sl->buf;
    if (s->vd == NULL && s->can_map) {
        m = mmap(NULL, n, PROT_READ, MAP_SHARED | MAP_POPULATE, s->fd,
                 (off_t)start);
        if (m != MAP_FAILED) {
            sl->map = m;
            sl->map_len = n;
            sl->data = (const uint8_t *)m + (off - start);
            return CLI_EXIT_OK;
        }
        s->can_map = false;         /* read it instead from now on */
    }
    return src_read(s, sl->buf, len, off);
}

/* Splits the slot into runs of granules that are not all zero (granules
 * aligned to the destination's offsets); only those are written. */
static void
find_runs(struct slot *sl, size_t g)
{
    const uint8_t *p = sl->data;
    size_t len = sl->len;
    size_t i = 0;

    sl->nruns = 0;
    while (i < len) {
        size_t start;

        for (;;) {
            size_t n = g - (size_t)((sl->off + i) % g);

            n = n < len - i ? n : len - i;
            if (i == len || !cli_is_zero(p + i, n))
                break;
            i += n;
        }
        start = i;
        for (;;) {
            size_t n = g - (size_t)((sl->off + i) % g);

            n = n < len - i ? n : len - i;
            if (i == len || cli_is_zero(p + i, n))
                break;
            i += n;
        }
        if (i > start) {
            assert(sl->nruns < MAX_RUNS);
            sl->runs[sl->nruns].start = start;
            sl->runs[sl->nruns].len = i - start;
            sl->nruns++;
        }
    }
}

/* Writes the slot's runs; returns the exit code. */
static int
dst_write(struct dst *d, const struct slot *sl)
{
    for (size_t k = 0; k < sl->nruns; k++) {
        const uint8_t *buf = sl->data + sl->runs[k].start;
        size_t len = sl->runs[k].len;
        uint64_t off = sl->off + sl->runs[k].start;
        int rc;

        if (d->vd != NULL)
            rc = tm_vhdx_write(d->vd, buf, len, off);
        else
            rc = tm_io_pwrite_all(d->io, buf, len, off);
        d->write_rc = rc;
        if (rc < 0)
            return side_err(d->err, "cannot write '%s' at %" PRIu64 ": %s",
                            d->path, off,
                            d->vd != NULL ? cli_vhdx_msg(d->vd, rc)
                                          : tm_strerror(rc));
        d->unflushed += len;
    }
    start_writeback(d);
    return CLI_EXIT_OK;
}

/* Waits until slot i is empty; false when the writer gave up. */
static bool
wait_empty(struct pipeline *pl, unsigned i)
{
    bool ok;

    pthread_mutex_lock(&pl->lock);
    while (pl->slot[i].full && !pl->abort)
        pthread_cond_wait(&pl->cond, &pl->lock);
    ok = !pl->abort;
    pthread_mutex_unlock(&pl->lock);
    return ok;
}

/* The reader thread: finds the source's data, reads (or maps) it and
 * finds its non-zero runs, one slot after another. */
static void *
reader_main(void *arg)
{
    struct pipeline *pl = arg;
    struct src *s = pl->src;
    uint64_t off = 0;
    unsigned i = 0;
    int status = CLI_EXIT_OK;

    while (off < s->size) {
        uint64_t run;
        bool data;
        struct slot *sl = &pl->slot[i];

        status = src_extent(s, off, s->size - off, &run, &data);
        if (status != CLI_EXIT_OK)
            break;
        if (!data) {
            off += run;
            continue;
        }
        /* Data runs stop at the next CHUNK boundary, so that writes
         * line up with VHDX blocks. */
        if (run > CHUNK - off % CHUNK)
            run = CHUNK - off % CHUNK;
        if (!wait_empty(pl, i))
            break;
        status = src_fill(s, sl, (size_t)run, off);
        if (status != CLI_EXIT_OK)
            break;
        sl->off = off;
        sl->len = (size_t)run;
        find_runs(sl, pl->granule);
        pthread_mutex_lock(&pl->lock);
        sl->full = true;
        pthread_cond_broadcast(&pl->cond);
        pthread_mutex_unlock(&pl->lock);
        off += run;
        i = (i + 1) % NSLOTS;
    }
    pthread_mutex_lock(&pl->lock);
    pl->done = true;
    pl->reader_status = status;
    if (status != CLI_EXIT_OK)
        fail_locked(pl, s->err);
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* Runs the reader thread and writes what it hands over; reports the first
 * failure and returns the exit code. */
static int
copy(const struct cli_cmd *cmd, struct src *s, struct dst *d)
{
    struct pipeline pl = { .src = s, .granule = d->granule };
    pthread_t reader;
    unsigned i = 0;
    int status = CLI_EXIT_OK;
    int rc;

    for (unsigned k = 0; k < NSLOTS; k++) {
        pl.slot[k].buf = cli_alloc(CHUNK);
        pl.slot[k].runs = calloc(MAX_RUNS, sizeof(*pl.slot[k].runs));
        if (pl.slot[k].buf == NULL || pl.slot[k].runs == NULL) {
            status = cli_fail(cmd, "%s", tm_strerror(-ENOMEM));
            goto out_free;
        }
    }
    if (s->can_map)
        catch_sigbus(s, d);
    pthread_mutex_init(&pl.lock, NULL);
    pthread_cond_init(&pl.cond, NULL);
    rc = pthread_create(&reader, NULL, reader_main, &pl);
    if (rc != 0) {
        status = cli_fail(cmd, "cannot start a thread: %s",
                          tm_strerror(-rc));
        goto out_destroy;
    }
    for (;;) {
        struct slot *sl = &pl.slot[i];

        pthread_mutex_lock(&pl.lock);
        while (!sl->full && !pl.done)
            pthread_cond_wait(&pl.cond, &pl.lock);
        if (!sl->full || pl.abort) {
            pthread_mutex_unlock(&pl.lock);
            break;
        }
        pthread_mutex_unlock(&pl.lock);

        status = dst_write(d, sl);
        if (status != CLI_EXIT_OK && sl->map != NULL &&
            d->write_rc == -EFAULT)
            side_err(d->err, "cannot read '%s': the file shrank while "
                     "being copied", s->path);
        if (sl->map != NULL)
            munmap(sl->map, sl->map_len);
        sl->map = NULL;

        pthread_mutex_lock(&pl.lock);
        sl->full = false;
        if (status != CLI_EXIT_OK)
            fail_locked(&pl, d->err);
        pthread_cond_broadcast(&pl.cond);
        pthread_mutex_unlock(&pl.lock);
        if (status != CLI_EXIT_OK)
            break;
        i = (i + 1) % NSLOTS;
    }
    pthread_join(reader, NULL);
    if (status == CLI_EXIT_OK)
        status = pl.reader_status;
    if (status != CLI_EXIT_OK && pl.first_err != NULL)
        cli_fail(cmd, "%s", pl.first_err);
out_destroy:
    pthread_cond_destroy(&pl.cond);
    pthread_mutex_destroy(&pl.lock);
out_free:
    for (unsigned k = 0; k < NSLOTS; k++) {
        if (pl.slot[k].map != NULL)
            munmap(pl.slot[k].map, pl.slot[k].map_len);
        free(pl.slot[k].runs);
        free(pl.slot[k].buf);
    }
    return status;
}

int
vhd_convert(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args a;
    struct src s;
    struct dst d;
    const char *src_path;
    const char *dst_path;
    int status;

    if (!cli_parse(cmd, argc, argv, &a, &status))
        return status;
    if (a.npos < 2)
        return cli_usage(cmd, a.npos == 0 ? "missing <src> and <dst>"
                                          : "missing <dst>");
    if (a.npos > 2)
        return cli_usage(cmd, "unexpected argument '%s'", a.pos[2]);
    src_path = a.pos[0];
    dst_path = a.pos[1];
    if (a.opt[OPT_FIXED] != NULL && a.opt[OPT_DYNAMIC] != NULL)
        return cli_usage(cmd, "--fixed and --dynamic exclude each other");
    if (!cli_is_vhdx_path(dst_path) &&
        (a.opt[OPT_FIXED] != NULL || a.opt[OPT_DYNAMIC] != NULL ||
         a.opt[OPT_BLOCK_SIZE] != NULL))
        return cli_usage(cmd, "--fixed, --dynamic and --block-size need a "
                         "VHDX destination (.vhdx)");
    if (a.opt[OPT_BLOCK_SIZE] != NULL) {
        uint32_t bs;

        if (!vhd_opt_block_size(cmd, a.opt[OPT_BLOCK_SIZE], &bs, &status))
            return status;
    }

    status = src_open(cmd, src_path, &s);
    if (status != CLI_EXIT_OK)
        goto out_close_src;
    /* Once dst is opened (and truncated) it is ours: remove it on any
     * failure. */
    status = dst_create(cmd, dst_path, &s, &a, &d);
    if (status != CLI_EXIT_OK) {
        dst_close(&d);
        if (d.created)
            unlink(dst_path);
        goto out_close_src;
    }
    status = copy(cmd, &s, &d);
    if (status == CLI_EXIT_OK)
        status = dst_finish(&d);
    dst_close(&d);
    if (status != CLI_EXIT_OK)
        unlink(dst_path);
out_close_src:
    src_close(&s);
    return status;
}
