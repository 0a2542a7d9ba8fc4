/* SPDX-License-Identifier: MIT */
/* diffbench.c - one measurement of the differencing benchmark per run
 * (bench/diff.sh repeats them and takes medians).  Each verb times its
 * own work with CLOCK_MONOTONIC and prints one line of key=value pairs:
 *
 *   parent <file> <size_mib> <fill_mib> [<logical_sector>]
 *       a dynamic VHDX (32 MiB blocks; 512-byte logical sectors unless
 *       told) with fill_mib of data written sequentially in 32 MiB
 *       extents spread evenly over it; its children take its sector size
 *   child <parent> <child> <total_mib> <write_bytes> <seed> <flush_every>
 *       creates a differencing child of <parent>, writes total_mib in
 *       random 4 KiB-aligned writes of write_bytes, flushes every
 *       flush_every writes and at the end, closes
 *   alone <parent> <total_mib> <write_bytes> <seed> <flush_every>
 *       the same writes (same seed) into <parent> itself
 *   merge <child>
 *       tm_vhdx_merge_path(child, NULL): folds it into its parent; the
 *       freeing of the child's file space is timed apart
 *   raw <file> <size_mib> <total_mib> <write_bytes> <seed> <flush_every>
 *       the same writes with pwrite into a new raw file of size_mib,
 *       fdatasync at the same points: the floor for child and alone
 *   rawcopy <src> <dst> <size_mib> <total_mib> <write_bytes> <seed>
 *       pread from <src> and pwrite into <dst> of every 4 KiB the writes
 *       touched, in ascending order, fdatasync at the end: the floor
 *       for merge (the bytes it must read and write)
 *   memcpy <mib>
 *       user-space memcpy of mib, best of 5
 *
 * The write sequence is a function of the seed alone, so child, alone
 * and raw write the same offsets.  'child' and 'alone' also report where
 * the time went (in tm_vhdx_write, in tm_vhdx_flush, in open/close) and
 * the bytes of distinct 4 KiB slots written ('unique'), which is what a
 * merge has to fold. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vhdx.h"

#define BENCH_NAME "diffbench"
#include "bench_util.h"

#define FILL_EXTENT (32 * MiB)

/* The write sequence: 'n' writes of 'wlen' bytes at 4 KiB-aligned
 * offsets inside [0, size). */
struct seq {
    uint64_t size;
    size_t wlen;
    uint64_t n;
    uint64_t state;
};

static int
seq_init(struct seq *q, uint64_t size, uint64_t total, size_t wlen,
         uint64_t seed)
{
    if (wlen == 0 || wlen % SLOT != 0 || wlen > DATA_BYTES / 2 ||
        wlen > size || total % wlen != 0) {
        fprintf(stderr, "diffbench: write size must be a multiple of 4 KiB "
                "up to 2 MiB dividing the total\n");
        return -1;
    }
    q->size = size;
    q->wlen = wlen;
    q->n = total / wlen;
    q->state = seed;
    return 0;
}

static uint64_t
seq_next(struct seq *q)
{
    uint64_t slots = (q->size - q->wlen) / SLOT + 1;

    return next_rand(&q->state) % slots * SLOT;
}

/* Bytes of the distinct 4 KiB slots the sequence touches; with 'bits'
 * non-NULL also leaves them set there (one bit per slot). */
static uint64_t
seq_unique(struct seq q, uint8_t *bits)
{
    uint64_t count = 0;

    for (uint64_t i = 0; i < q.n; i++) {
        uint64_t off = seq_next(&q);

        for (uint64_t s = off / SLOT; s < (off + q.wlen) / SLOT; s++) {
            if (!((bits[s >> 3] >> (s & 7)) & 1)) {
                bits[s >> 3] |= (uint8_t)(1u << (s & 7));
                count++;
            }
        }
    }
    return count * SLOT;
}

static int
cmd_parent(const char *path, uint64_t size_mib, uint64_t fill_mib,
           uint64_t logical_sector)
{
    struct tm_vhdx_create_params p;
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_io *io;
    uint8_t *data = make_data();
    uint64_t size = size_mib * MiB;
    uint64_t extents = fill_mib * MiB / FILL_EXTENT;
    uint64_t stride = extents ? size / extents : size;
    double t0 = now();
    int rc;

    if (vd == NULL || data == NULL)
        return fail("parent", -ENOMEM, NULL);
    rc = tm_io_posix_open(path, TM_IO_CREATE | TM_IO_TRUNC | TM_IO_LOCK,
                          &io);
    if (rc < 0)
        return fail(path, rc, NULL);
    memset(&p, 0, sizeof(p));
    p.virtual_size = size;
    p.logical_sector = (uint32_t)logical_sector;
    rc = tm_vhdx_create(vd, io, &p);
    for (uint64_t x = 0; rc == 0 && x < extents; x++)
        for (uint64_t o = 0; rc == 0 && o < FILL_EXTENT; o += MiB)
            rc = tm_vhdx_write(vd, data_for(data, o / SLOT + x, MiB), MiB,
                               x * stride + o);
    if (rc == 0)
        rc = tm_vhdx_flush(vd);
    if (rc < 0) {
        fail(path, rc, tm_vhdx_err(vd));
        tm_vhdx_close(vd);
        return 1;
    }
    rc = tm_vhdx_close(vd);
    if (rc < 0)
        return fail(path, rc, NULL);
    printf("secs=%.4f extents=%" PRIu64 " stride_mib=%" PRIu64 "\n",
           now() - t0, extents, stride / MiB);
    free(data);
    return 0;
}

/* The timed write loop shared by child and alone: writes, flushes every
 * 'flush_every' and at the end, and adds the time of each kind of call
 * to *t_write and *t_flush. */
static int
write_loop(struct tm_vhdx *vd, struct seq q, uint64_t flush_every,
           const uint8_t *data, double *t_write, double *t_flush)
{
    int rc = 0;

    for (uint64_t i = 0; i < q.n && rc == 0; i++) {
        uint64_t off = seq_next(&q);
        double a = now();

        rc = tm_vhdx_write(vd, data_for(data, i, q.wlen), q.wlen, off);
        *t_write += now() - a;
        if (rc == 0 && flush_every != 0 && (i + 1) % flush_every == 0 &&
            i + 1 < q.n) {
            a = now();
            rc = tm_vhdx_flush(vd);
            *t_flush += now() - a;
        }
    }
    if (rc == 0) {
        double a = now();

        rc = tm_vhdx_flush(vd);
        *t_flush += now() - a;
    }
    return rc;
}

/* Opens (child: creates) the disk, runs the writes, closes; prints the
 * total and where it went. */
static int
cmd_writes(const char *parent, const char *child, uint64_t total_mib,
           uint64_t wlen, uint64_t seed, uint64_t flush_every)
{
    struct tm_vhdx_info info;
    struct tm_vhdx *vd = tm_vhdx_new();
    uint8_t *data = make_data();
    uint8_t *bits = NULL;
    struct seq q;
    double t0, t_open, t_close, t_write = 0, t_flush = 0;
    uint64_t size, unique;
    int rc;

    if (vd == NULL || data == NULL)
        return fail("writes", -ENOMEM, NULL);
    t0 = now();
    if (child != NULL)
        rc = tm_vhdx_create_child(vd, child, parent, NULL);
    else
        rc = tm_vhdx_open_path(vd, parent, 0, NULL);
    t_open = now() - t0;
    if (rc == 0)
        rc = tm_vhdx_get_info(vd, &info);
    if (rc < 0) {
        fail(child != NULL ? child : parent, rc, tm_vhdx_err(vd));
        tm_vhdx_close(vd);
        return 1;
    }
    size = info.virtual_size;
    if (seq_init(&q, size, total_mib * MiB, (size_t)wlen, seed) < 0) {
        tm_vhdx_close(vd);
        return 2;
    }
    rc = write_loop(vd, q, flush_every, data, &t_write, &t_flush);
    if (rc < 0) {
        fail("write", rc, tm_vhdx_err(vd));
        tm_vhdx_close(vd);
        return 1;
    }
    rc = tm_vhdx_get_info(vd, &info);
    if (rc < 0) {
        fail("info", rc, tm_vhdx_err(vd));
        tm_vhdx_close(vd);
        return 1;
    }
    t_close = now();
    rc = tm_vhdx_close(vd);
    t_close = now() - t_close;
    if (rc < 0)
        return fail("close", rc, NULL);
    bits = calloc(size / SLOT / 8 + 1, 1);
    if (bits == NULL)
        return fail("writes", -ENOMEM, NULL);
    unique = seq_unique(q, bits);
    printf("secs=%.4f open=%.4f write=%.4f flush=%.4f close=%.4f "
           "writes=%" PRIu64 " unique=%" PRIu64 " file_mib=%.1f "
           "alloc_mib=%" PRIu64 " partial_blocks=%" PRIu64 "\n",
           t_open + t_write + t_flush + t_close, t_open, t_write, t_flush,
           t_close, q.n, unique, (double)info.file_size / MiB,
           info.allocated_bytes / MiB, info.blocks_partially_present);
    free(bits);
    free(data);
    return 0;
}

/* Times tm_vhdx_merge_path; the deletion of the folded file is timed
 * apart ('delete'): a second name keeps the data alive through the
 * merge's unlink, which then only drops a name, and the last name goes
 * afterwards.  On ext4 mounted with 'discard', freeing the child's space
 * costs more than folding it. */
static int
cmd_merge(const char *child)
{
    struct tm_err err;
    char keep[4096];
    double t0, t_merge;
    int rc;

    if ((size_t)snprintf(keep, sizeof(keep), "%s.keep", child) >=
        sizeof(keep))
        return fail("merge", -ENAMETOOLONG, NULL);
    (void)unlink(keep);
    if (link(child, keep) < 0)
        return fail("link", -errno, NULL);
    t0 = now();
    rc = tm_vhdx_merge_path(child, NULL, &err);
    t_merge = now() - t0;
    if (rc < 0) {
        (void)unlink(keep);
        return fail("merge", rc, &err);
    }
    t0 = now();
    if (unlink(keep) < 0)
        return fail("unlink", -errno, NULL);
    printf("secs=%.4f delete=%.4f\n", t_merge, now() - t0);
    return 0;
}

static int
cmd_raw(const char *path, uint64_t size_mib, uint64_t total_mib,
        uint64_t wlen, uint64_t seed, uint64_t flush_every)
{
    uint8_t *data = make_data();
    struct seq q;
    double t0;
    int fd;

    if (data == NULL)
        return fail("raw", -ENOMEM, NULL);
    if (seq_init(&q, size_mib * MiB, total_mib * MiB, (size_t)wlen,
                 seed) < 0)
        return 2;
    t0 = now();
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)(size_mib * MiB)) < 0)
        return fail(path, -errno, NULL);
    for (uint64_t i = 0; i < q.n; i++) {
        uint64_t off = seq_next(&q);

        if (pwrite(fd, data_for(data, i, q.wlen), q.wlen, (off_t)off) !=
            (ssize_t)q.wlen)
            return fail("pwrite", -errno, NULL);
        if (flush_every != 0 && (i + 1) % flush_every == 0 && i + 1 < q.n &&
            fdatasync(fd) < 0)
            return fail("fdatasync", -errno, NULL);
    }
    if (fdatasync(fd) < 0 || close(fd) < 0)
        return fail("fdatasync", -errno, NULL);
    printf("secs=%.4f writes=%" PRIu64 "\n", now() - t0, q.n);
    free(data);
    return 0;
}

static int
cmd_rawcopy(const char *src, const char *dst, uint64_t size_mib,
            uint64_t total_mib, uint64_t wlen, uint64_t seed)
{
    uint64_t size = size_mib * MiB;
    uint8_t *bits = calloc(size / SLOT / 8 + 1, 1);
    uint8_t buf[SLOT * 64];
    uint64_t unique;
    struct seq q;
    double t0;
    int in, out;

    if (bits == NULL)
        return fail("rawcopy", -ENOMEM, NULL);
    if (seq_init(&q, size, total_mib * MiB, (size_t)wlen, seed) < 0)
        return 2;
    unique = seq_unique(q, bits);
    t0 = now();
    in = open(src, O_RDONLY);
    out = open(dst, O_RDWR);
    if (in < 0 || out < 0)
        return fail("rawcopy: open", -errno, NULL);
    /* Runs of touched slots, as a merge copies them. */
    for (uint64_t s = 0; s < size / SLOT;) {
        uint64_t e = s;
        size_t n;

        if (!((bits[s >> 3] >> (s & 7)) & 1)) {
            s++;
            continue;
        }
        while (e < size / SLOT && e - s < 64 &&
               ((bits[e >> 3] >> (e & 7)) & 1))
            e++;
        n = (size_t)((e - s) * SLOT);
        if (pread(in, buf, n, (off_t)(s * SLOT)) != (ssize_t)n ||
            pwrite(out, buf, n, (off_t)(s * SLOT)) != (ssize_t)n)
            return fail("rawcopy", -errno, NULL);
        s = e;
    }
    if (fdatasync(out) < 0)
        return fail("fdatasync", -errno, NULL);
    close(in);
    close(out);
    printf("secs=%.4f unique=%" PRIu64 "\n", now() - t0, unique);
    free(bits);
    return 0;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: diffbench parent <file> <size_mib> <fill_mib> "
            "[<logical_sector>]\n"
            "       diffbench child <parent> <child> <total_mib> "
            "<write_bytes> <seed> <flush_every>\n"
            "       diffbench alone <parent> <total_mib> <write_bytes> "
            "<seed> <flush_every>\n"
            "       diffbench merge <child>\n"
            "       diffbench raw <file> <size_mib> <total_mib> "
            "<write_bytes> <seed> <flush_every>\n"
            "       diffbench rawcopy <src> <dst> <size_mib> <total_mib> "
            "<write_bytes> <seed>\n"
            "       diffbench memcpy <mib>\n");
}

int
main(int argc, char **argv)
{
    uint64_t v[6];
    const char *verb = argc > 1 ? argv[1] : "";

    if (strcmp(verb, "parent") == 0 && (argc == 5 || argc == 6)) {
        v[2] = 512;
        if (parse_args(argv + 3, argc - 3, v) < 0)
            return 2;
        return cmd_parent(argv[2], v[0], v[1], v[2]);
    }
    if (strcmp(verb, "child") == 0 && argc == 8) {
        if (parse_args(argv + 4, 4, v) < 0)
            return 2;
        return cmd_writes(argv[2], argv[3], v[0], v[1], v[2], v[3]);
    }
    if (strcmp(verb, "alone") == 0 && argc == 7) {
        if (parse_args(argv + 3, 4, v) < 0)
            return 2;
        return cmd_writes(argv[2], NULL, v[0], v[1], v[2], v[3]);
    }
    if (strcmp(verb, "merge") == 0 && argc == 3)
        return cmd_merge(argv[2]);
    if (strcmp(verb, "raw") == 0 && argc == 8) {
        if (parse_args(argv + 3, 5, v) < 0)
            return 2;
        return cmd_raw(argv[2], v[0], v[1], v[2], v[3], v[4]);
    }
    if (strcmp(verb, "rawcopy") == 0 && argc == 8) {
        if (parse_args(argv + 4, 4, v) < 0)
            return 2;
        return cmd_rawcopy(argv[2], argv[3], v[0], v[1], v[2], v[3]);
    }
    if (strcmp(verb, "memcpy") == 0 && argc == 3) {
        if (parse_args(argv + 2, 1, v) < 0)
            return 2;
        return cmd_memcpy(v[0]);
    }
    usage();
    return 2;
}
