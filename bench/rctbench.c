/* SPDX-License-Identifier: MIT */
/* rctbench.c - one measurement of the change-tracking benchmark per run
 * (bench/rct.sh repeats them, interleaved, and takes medians).  Each verb
 * times its own work with CLOCK_MONOTONIC and prints one line of
 * key=value pairs:
 *
 *   fill <vhdx> <raw> <size_mib>
 *       a dynamic VHDX (32 MiB blocks) of size_mib with every block
 *       written, so later writes allocate nothing, and a raw file of the
 *       same size, written in full too
 *   write (on | off | vhdx | raw) <file> <pattern> <n> <write_bytes> <seed>
 *       n writes into <file>, then one flush.  pattern 'rand': 4 KiB-
 *       aligned offsets drawn from the seed; 'seq': back to back from 0
 *       (wrapping at the end).  on/off: tm_vdisk_open, tracking turned on
 *       (64 KiB granularity) or off through tm_vdisk_set_info, then the
 *       timed writes with tm_vdisk_write and tm_vdisk_flush; vhdx: the
 *       same through tm_vhdx_open_path/tm_vhdx_write/tm_vhdx_flush (no
 *       vdisk); raw: pwrite and fdatasync on a raw file.  'secs' is the
 *       writes plus the flush, 'cpu' the CPU time they took (user +
 *       system); 'first' the first write alone (which
 *       binds the tracking, and starts the VHDX log); open and close are
 *       timed apart
 *   mark <dir> <size_mib> <pattern> <n> <write_bytes> <seed>
 *       tm_rct_mark alone (tm_rct_create on sidecars in <dir>, 64 KiB
 *       granules, 1 GiB regions) for the same sequence: what tracking
 *       adds to each write, without the disk
 *   query <file> <size_gib> <changes> <repeat> <capacity>
 *       a dynamic VHDX of size_gib with nothing allocated, tracking on;
 *       seals, discards (UNMAP) <changes> single granules scattered over
 *       the disk in a shuffled order, seals again, then times <repeat>
 *       full paging loops of tm_vdisk_query_changes since the first ID
 *       (ranges[capacity]) and prints each and their median
 *   memory <file> <size_gib> <changes>
 *       for /usr/bin/time -v: creates a tracked disk of size_gib, marks
 *       <changes> scattered granules as 'query' does, seals, queries,
 *       closes, reopens, queries, closes, reopens (both .rct slots now
 *       hold every change) and closes; prints the peak and current
 *       resident set (VmHWM, VmRSS) after each phase
 *   rctinfo <size_gib>
 *       tm_rct_get_info's 'memory' for a disk of that size (in memory)
 *   memcpy <mib>
 *       user-space memcpy of mib, best of 5
 *
 * The write sequence is a function of the seed alone, so every mode
 * writes the same offsets with the same bytes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tidemark/vdisk.h"

#include "io.h"
#include "rct.h"
#include "vhdx.h"

#define BENCH_NAME "rctbench"
#include "bench_util.h"

#define KiB ((uint64_t)1 << 10)
#define GiB ((uint64_t)1 << 30)
#define FILL_CHUNK MiB

/* CPU time of this process (user + system): on a shared machine it
 * leaves out the time spent waiting for a core. */
static double
cpu_now(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The write sequence: 'n' writes of 'wlen' bytes inside [0, size). */
struct seq {
    uint64_t size;
    size_t wlen;
    uint64_t n;
    uint64_t state;
    uint64_t i;
    bool rand;
};

static int
seq_init(struct seq *q, const char *pattern, uint64_t size, uint64_t n,
         uint64_t wlen, uint64_t seed)
{
    memset(q, 0, sizeof(*q));
    if (strcmp(pattern, "rand") == 0) {
        q->rand = true;
    } else if (strcmp(pattern, "seq") != 0) {
        fprintf(stderr, "rctbench: pattern is 'rand' or 'seq', not '%s'\n",
                pattern);
        return -1;
    }
    if (wlen == 0 || wlen % SLOT != 0 || wlen > DATA_BYTES / 2 ||
        wlen > size || size % wlen != 0) {
        fprintf(stderr, "rctbench: write size must be a multiple of 4 KiB "
                "up to 2 MiB dividing the disk size\n");
        return -1;
    }
    q->size = size;
    q->wlen = (size_t)wlen;
    q->n = n;
    q->state = seed;
    return 0;
}

static uint64_t
seq_next(struct seq *q)
{
    uint64_t off;

    if (q->rand) {
        uint64_t slots = (q->size - q->wlen) / SLOT + 1;

        off = next_rand(&q->state) % slots * SLOT;
    } else {
        off = q->i * q->wlen % q->size;
    }
    q->i++;
    return off;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The peak and current resident set of this process, in KiB. */
static void
rss_kib(uint64_t *hwm, uint64_t *rss)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");

    *hwm = *rss = 0;
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = strtoull(line + 6, NULL, 10);
        else if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtoull(line + 6, NULL, 10);
    }
    fclose(f);
}

/* ---- fill ------------------------------------------------------------- */

static int
cmd_fill(const char *vpath, const char *rpath, uint64_t size_mib)
{
    struct tm_vdisk_create_params p;
    struct tm_vdisk *d;
    struct tm_err err;
    uint8_t *data = make_data();
    uint64_t size = size_mib * MiB;
    double t0, t_vhdx, t_raw;
    int fd, rc;

    if (data == NULL)
        return fail("fill", -ENOMEM, NULL);
    if (size == 0 || size % FILL_CHUNK != 0) {
        fprintf(stderr, "rctbench: size must be a whole number of MiB\n");
        return 2;
    }
    t0 = now();
    memset(&p, 0, sizeof(p));
    p.virtual_size = size;
    rc = tm_vdisk_create(vpath, &p, &d, &err);
    if (rc < 0)
        return fail(vpath, rc, &err);
    for (uint64_t o = 0; rc == 0 && o < size; o += FILL_CHUNK)
        rc = tm_vdisk_write(d, data_for(data, o / FILL_CHUNK, FILL_CHUNK),
                            FILL_CHUNK, o);
    if (rc == 0)
        rc = tm_vdisk_flush(d);
    if (rc < 0) {
        fail(vpath, rc, tm_vdisk_err(d));
        tm_vdisk_close(d);
        return 1;
    }
    rc = tm_vdisk_close(d);
    if (rc < 0)
        return fail("close", rc, NULL);
    t_vhdx = now() - t0;

    t0 = now();
    fd = open(rpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fail(rpath, -errno, NULL);
    for (uint64_t o = 0; o < size; o += FILL_CHUNK)
        if (pwrite(fd, data_for(data, o / FILL_CHUNK, FILL_CHUNK),
                   FILL_CHUNK, (off_t)o) != (ssize_t)FILL_CHUNK)
            return fail("pwrite", -errno, NULL);
    if (fdatasync(fd) < 0 || close(fd) < 0)
        return fail("fdatasync", -errno, NULL);
    t_raw = now() - t0;
    printf("vhdx=%.4f raw=%.4f\n", t_vhdx, t_raw);
    free(data);
    return 0;
}

/* ---- write -------------------------------------------------------------- */

enum mode { MODE_ON, MODE_OFF, MODE_VHDX, MODE_RAW };

/* The target of the timed writes: one of the three ways in. */
struct target {
    enum mode mode;
    struct tm_vdisk *d;
    struct tm_vhdx *vd;
    int fd;
};

static int
target_open(struct target *t, const char *path, uint64_t *size)
{
    int rc;

    if (t->mode == MODE_RAW) {
        off_t end;

        t->fd = open(path, O_RDWR);
        if (t->fd < 0)
            return fail(path, -errno, NULL);
        end = lseek(t->fd, 0, SEEK_END);
        if (end < 0)
            return fail(path, -errno, NULL);
        *size = (uint64_t)end;
        return 0;
    }
    if (t->mode == MODE_VHDX) {
        struct tm_vhdx_info vi;

        t->vd = tm_vhdx_new();
        if (t->vd == NULL)
            return fail(path, -ENOMEM, NULL);
        rc = tm_vhdx_open_path(t->vd, path, 0, NULL);
        if (rc == 0)
            rc = tm_vhdx_get_info(t->vd, &vi);
        if (rc < 0)
            return fail(path, rc, tm_vhdx_err(t->vd));
        *size = vi.virtual_size;
        return 0;
    }
    {
        struct tm_vdisk_set_info si;
        struct tm_vdisk_info info;
        struct tm_err err;

        rc = tm_vdisk_open(path, 0, NULL, &t->d, &err);
        if (rc < 0)
            return fail(path, rc, &err);
        memset(&si, 0, sizeof(si));
        si.kind = TM_VDISK_SET_CHANGE_TRACKING_STATE;
        si.change_tracking.enabled = t->mode == MODE_ON;
        rc = tm_vdisk_set_info(t->d, &si);
        if (rc < 0)
            return fail("set tracking", rc, tm_vdisk_err(t->d));
        info.kind = TM_VDISK_INFO_SIZE;
        rc = tm_vdisk_get_info(t->d, &info);
        if (rc < 0)
            return fail("info", rc, tm_vdisk_err(t->d));
        *size = info.size.virtual_size;
        info.kind = TM_VDISK_INFO_CHANGE_TRACKING_STATE;
        rc = tm_vdisk_get_info(t->d, &info);
        if (rc < 0)
            return fail("info", rc, tm_vdisk_err(t->d));
        if (info.change_tracking.enabled != (t->mode == MODE_ON)) {
            fprintf(stderr, "rctbench: tracking did not turn %s\n",
                    t->mode == MODE_ON ? "on" : "off");
            return 1;
        }
        return 0;
    }
}

static int
target_write(struct target *t, const uint8_t *buf, size_t len, uint64_t off)
{
    int rc;

    switch (t->mode) {
    case MODE_RAW:
        if (pwrite(t->fd, buf, len, (off_t)off) != (ssize_t)len)
            return fail("pwrite", -errno, NULL);
        return 0;
    case MODE_VHDX:
        rc = tm_vhdx_write(t->vd, buf, len, off);
        return rc < 0 ? fail("write", rc, tm_vhdx_err(t->vd)) : 0;
    default:
        rc = tm_vdisk_write(t->d, buf, len, off);
        return rc < 0 ? fail("write", rc, tm_vdisk_err(t->d)) : 0;
    }
}

static int
target_flush(struct target *t)
{
    int rc;

    switch (t->mode) {
    case MODE_RAW:
        return fdatasync(t->fd) < 0 ? fail("fdatasync", -errno, NULL) : 0;
    case MODE_VHDX:
        rc = tm_vhdx_flush(t->vd);
        return rc < 0 ? fail("flush", rc, tm_vhdx_err(t->vd)) : 0;
    default:
        rc = tm_vdisk_flush(t->d);
        return rc < 0 ? fail("flush", rc, tm_vdisk_err(t->d)) : 0;
    }
}

static int
target_close(struct target *t)
{
    int rc;

    switch (t->mode) {
    case MODE_RAW:
        return close(t->fd) < 0 ? fail("close", -errno, NULL) : 0;
    case MODE_VHDX:
        rc = tm_vhdx_close(t->vd);
        t->vd = NULL;
        return rc < 0 ? fail("close", rc, NULL) : 0;
    default:
        rc = tm_vdisk_close(t->d);
        t->d = NULL;
        return rc < 0 ? fail("close", rc, NULL) : 0;
    }
}

static int
parse_mode(const char *s, enum mode *m)
{
    static const char *const names[] = { "on", "off", "vhdx", "raw" };

    for (unsigned i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *m = (enum mode)i;
            return 0;
        }
    fprintf(stderr, "rctbench: mode is on, off, vhdx or raw, not '%s'\n", s);
    return -1;
}

static int
cmd_write(const char *mode, const char *path, const char *pattern,
          uint64_t n, uint64_t wlen, uint64_t seed)
{
    struct target t = { .fd = -1 };
    uint8_t *data = make_data();
    uint64_t size = 0;
    struct seq q;
    double t0, c0, t_open, t_first = 0, t_write, t_flush, t_close;

    if (data == NULL)
        return fail("write", -ENOMEM, NULL);
    if (parse_mode(mode, &t.mode) < 0)
        return 2;
    t0 = now();
    if (target_open(&t, path, &size) != 0)
        return 1;
    t_open = now() - t0;
    if (seq_init(&q, pattern, size, n, wlen, seed) < 0)
        return 2;
    c0 = cpu_now();
    t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = seq_next(&q);

        if (target_write(&t, data_for(data, i, q.wlen), q.wlen, off) != 0)
            return 1;
        if (i == 0)
            t_first = now() - t0;
    }
    t_write = now() - t0;
    t0 = now();
    if (target_flush(&t) != 0)
        return 1;
    t_flush = now() - t0;
    c0 = cpu_now() - c0;
    t0 = now();
    if (target_close(&t) != 0)
        return 1;
    t_close = now() - t0;
    printf("secs=%.4f cpu=%.4f write=%.4f first=%.6f flush=%.4f open=%.4f "
           "close=%.4f writes=%" PRIu64 " us_per_write=%.3f\n",
           t_write + t_flush, c0, t_write, t_first, t_flush, t_open, t_close,
           n,
           (t_write + t_flush) * 1e6 / (double)n);
    free(data);
    return 0;
}

/* ---- mark --------------------------------------------------------------- */

static int
open_sidecar(const char *dir, const char *name, struct tm_io **out)
{
    char path[4096];
    int rc;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
        sizeof(path))
        return fail(name, -ENAMETOOLONG, NULL);
    rc = tm_io_posix_open(path, TM_IO_CREATE | TM_IO_TRUNC, out);
    return rc < 0 ? fail(path, rc, NULL) : 0;
}

/* tm_rct_mark alone, first on a fresh .mrt (each 1 GiB region costs one
 * sector write and flush the first time) and then again over the same
 * sequence (every region already durable: the in-memory cost alone). */
static int
cmd_mark(const char *dir, uint64_t size_mib, const char *pattern, uint64_t n,
         uint64_t wlen, uint64_t seed)
{
    struct tm_rct_binding b = { .virtual_size = size_mib * MiB };
    struct tm_io *rio = NULL, *mio = NULL;
    struct tm_rct *t;
    struct tm_err err;
    struct seq q;
    double t0, t_first, t_again;
    int rc;

    if (seq_init(&q, pattern, b.virtual_size, n, wlen, seed) < 0)
        return 2;
    if (open_sidecar(dir, "mark.rct", &rio) != 0 ||
        open_sidecar(dir, "mark.mrt", &mio) != 0)
        return 1;
    rc = tm_guid_generate(&b.data_write_guid);
    if (rc < 0)
        return fail("guid", rc, NULL);
    rc = tm_rct_create(rio, mio, NULL, &b, &t, &err);
    if (rc < 0)
        return fail("tm_rct_create", rc, &err);
    t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        rc = tm_rct_mark(t, seq_next(&q), q.wlen);
        if (rc < 0)
            return fail("tm_rct_mark", rc, tm_rct_err(t));
    }
    t_first = now() - t0;
    if (seq_init(&q, pattern, b.virtual_size, n, wlen, seed) < 0)
        return 2;
    t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        rc = tm_rct_mark(t, seq_next(&q), q.wlen);
        if (rc < 0)
            return fail("tm_rct_mark", rc, tm_rct_err(t));
    }
    t_again = now() - t0;
    tm_rct_free(t);
    printf("secs=%.6f again=%.6f ns_per_mark=%.1f ns_per_mark_again=%.1f\n",
           t_first, t_again, t_first * 1e9 / (double)n,
           t_again * 1e9 / (double)n);
    return 0;
}

/* ---- query and memory ---------------------------------------------------- */

/* Creates a dynamic disk of 'size' with tracking on (64 KiB granules). */
static int
create_tracked(const char *path, uint64_t size, struct tm_vdisk **out)
{
    struct tm_vdisk_create_params p;
    struct tm_err err;
    int rc;

    (void)unlink(path);
    memset(&p, 0, sizeof(p));
    p.virtual_size = size;
    p.change_tracking = true;
    rc = tm_vdisk_create(path, &p, out, &err);
    return rc < 0 ? fail(path, rc, &err) : 0;
}

/* The granularity tracking uses on 'd'. */
static int
granularity(struct tm_vdisk *d, uint64_t *gran)
{
    struct tm_vdisk_info info = { .kind = TM_VDISK_INFO_CHANGE_TRACKING_STATE };
    int rc = tm_vdisk_get_info(d, &info);

    if (rc < 0)
        return fail("info", rc, tm_vdisk_err(d));
    *gran = info.change_tracking.granularity;
    return 0;
}

/* Discards (UNMAP) 'changes' single granules: granule i * stride + r_i
 * (0 <= r_i < stride - 1, so no two are adjacent and each is its own
 * extent), visited in the order i = k * P mod changes for a prime P: a
 * scattered order without a permutation array in memory. */
static int
make_changes(struct tm_vdisk *d, uint64_t size, uint64_t gran,
             uint64_t changes, double *secs)
{
    uint64_t stride = size / gran / changes;
    uint64_t p = 1000003;
    double t0 = now();

    if (stride < 2) {
        fprintf(stderr, "rctbench: at most one change per 2 granules\n");
        return 2;
    }
    if (changes % p == 0)
        p = 1;
    for (uint64_t k = 0; k < changes; k++) {
        uint64_t i = k * p % changes;
        uint64_t s = i ^ 0x5deece66dull;
        uint64_t g = i * stride + next_rand(&s) % (stride - 1);
        int rc = tm_vdisk_discard(d, g * gran, gran, TM_VDISK_DISCARD_UNMAP);

        if (rc < 0)
            return fail("discard", rc, tm_vdisk_err(d));
    }
    *secs = now() - t0;
    return 0;
}

/* One full paging loop since 'id': counts extents, bytes and calls. */
static int
query_all(struct tm_vdisk *d, const char *id, uint64_t size,
          struct tm_range *ranges, size_t cap, uint64_t *extents,
          uint64_t *bytes, uint64_t *calls)
{
    uint64_t off = 0;

    *extents = *bytes = *calls = 0;
    while (off < size) {
        size_t count = cap;
        uint64_t processed;
        int rc = tm_vdisk_query_changes(d, id, off, size - off, ranges,
                                        &count, &processed);

        if (rc < 0)
            return fail("query", rc, tm_vdisk_err(d));
        for (size_t i = 0; i < count; i++)
            *bytes += ranges[i].len;
        *extents += count;
        (*calls)++;
        if (processed == 0) {
            fprintf(stderr, "rctbench: query made no progress\n");
            return 1;
        }
        off += processed;
    }
    return 0;
}

static int
cmd_query(const char *path, uint64_t size_gib, uint64_t changes,
          uint64_t repeat, uint64_t cap)
{
    char id0[TM_VDISK_RCT_ID_MAX + 1], id1[TM_VDISK_RCT_ID_MAX + 1];
    uint64_t size = size_gib * GiB, gran, extents, bytes, calls;
    struct tm_range *ranges = calloc(cap ? cap : 1, sizeof(*ranges));
    double *q = calloc(repeat ? repeat : 1, sizeof(*q));
    double t_mark, t0, t_empty, t_close;
    struct tm_vdisk *d;
    int rc;

    if (ranges == NULL || q == NULL)
        return fail("query", -ENOMEM, NULL);
    if (cap == 0 || repeat == 0 || changes == 0) {
        fprintf(stderr, "rctbench: changes, repeat and capacity must be "
                "positive\n");
        return 2;
    }
    if (create_tracked(path, size, &d) != 0)
        return 1;
    if (granularity(d, &gran) != 0)
        return 1;
    rc = tm_vdisk_seal(d, id0);
    if (rc < 0)
        return fail("seal", rc, tm_vdisk_err(d));
    rc = make_changes(d, size, gran, changes, &t_mark);
    if (rc != 0)
        return rc;
    rc = tm_vdisk_seal(d, id1);
    if (rc < 0)
        return fail("seal", rc, tm_vdisk_err(d));
    for (uint64_t r = 0; r < repeat; r++) {
        t0 = now();
        rc = query_all(d, id0, size, ranges, (size_t)cap, &extents, &bytes,
                       &calls);
        q[r] = now() - t0;
        if (rc != 0)
            return rc;
        if (extents != changes || bytes != changes * gran) {
            fprintf(stderr, "rctbench: query found %" PRIu64 " extents, %"
                    PRIu64 " bytes; %" PRIu64 " changes were made\n",
                    extents, bytes, changes);
            return 1;
        }
    }
    /* Since the second ID nothing changed: the scan alone. */
    {
        uint64_t e2, b2, c2;

        t0 = now();
        rc = query_all(d, id1, size, ranges, (size_t)cap, &e2, &b2, &c2);
        t_empty = now() - t0;
        if (rc != 0)
            return rc;
        if (e2 != 0) {
            fprintf(stderr, "rctbench: %" PRIu64 " extents since the last "
                    "ID\n", e2);
            return 1;
        }
    }
    t0 = now();
    rc = tm_vdisk_close(d);
    t_close = now() - t0;
    if (rc < 0)
        return fail("close", rc, NULL);
    printf("changes=%" PRIu64 " gran=%" PRIu64 " mark=%.4f "
           "us_per_change=%.3f calls=%" PRIu64 " empty=%.4f close=%.4f q=",
           changes, gran, t_mark, t_mark * 1e6 / (double)changes, calls,
           t_empty, t_close);
    for (uint64_t r = 0; r < repeat; r++)
        printf("%s%.4f", r ? "," : "", q[r]);
    qsort(q, (size_t)repeat, sizeof(*q), cmp_double);
    printf(" median=%.4f\n", q[(repeat - 1) / 2]);
    free(ranges);
    free(q);
    return 0;
}

static void
phase(const char *name)
{
    uint64_t hwm, rss;

    rss_kib(&hwm, &rss);
    printf("%s_hwm_kib=%" PRIu64 " %s_rss_kib=%" PRIu64 " ", name, hwm, name,
           rss);
    fflush(stdout);
}

static int
cmd_memory(const char *path, uint64_t size_gib, uint64_t changes)
{
    char id0[TM_VDISK_RCT_ID_MAX + 1];
    uint64_t size = size_gib * GiB, gran, extents, bytes, calls;
    struct tm_range ranges[4096];
    struct tm_vdisk *d;
    struct tm_err err;
    double t_mark;
    int rc;

    phase("start");
    if (create_tracked(path, size, &d) != 0)
        return 1;
    if (granularity(d, &gran) != 0)
        return 1;
    phase("created");
    rc = tm_vdisk_seal(d, id0);
    if (rc < 0)
        return fail("seal", rc, tm_vdisk_err(d));
    rc = make_changes(d, size, gran, changes, &t_mark);
    if (rc != 0)
        return rc;
    phase("marked");
    rc = query_all(d, id0, size, ranges, 4096, &extents, &bytes, &calls);
    if (rc != 0)
        return rc;
    phase("queried");
    rc = tm_vdisk_close(d);
    if (rc < 0)
        return fail("close", rc, NULL);
    phase("closed");
    rc = tm_vdisk_open(path, 0, NULL, &d, &err);
    if (rc < 0)
        return fail(path, rc, &err);
    phase("reopened");
    rc = query_all(d, id0, size, ranges, 4096, &extents, &bytes, &calls);
    if (rc != 0)
        return rc;
    if (extents != changes) {
        fprintf(stderr, "rctbench: %" PRIu64 " extents after reopening, %"
                PRIu64 " changes made\n", extents, changes);
        return 1;
    }
    phase("requeried");
    rc = tm_vdisk_close(d);
    if (rc < 0)
        return fail("close", rc, NULL);
    phase("closed2");
    /* Both .rct slots now hold a body of every change: an open reads
     * the two. */
    rc = tm_vdisk_open(path, 0, NULL, &d, &err);
    if (rc < 0)
        return fail(path, rc, &err);
    phase("reopened2");
    rc = tm_vdisk_close(d);
    if (rc < 0)
        return fail("close", rc, NULL);
    phase("end");
    printf("changes=%" PRIu64 " mark=%.3f\n", changes, t_mark);
    return 0;
}

static int
cmd_rctinfo(uint64_t size_gib)
{
    struct tm_rct_binding b = { .virtual_size = size_gib * GiB };
    struct tm_rct_info ri;
    struct tm_rct *t;
    struct tm_err err;
    struct tm_io *rio = tm_io_mem_new(), *mio = tm_io_mem_new();
    int rc;

    if (rio == NULL || mio == NULL)
        return fail("rctinfo", -ENOMEM, NULL);
    rc = tm_rct_create(rio, mio, NULL, &b, &t, &err);
    if (rc < 0)
        return fail("tm_rct_create", rc, &err);
    rc = tm_rct_get_info(t, &ri);
    if (rc < 0)
        return fail("tm_rct_get_info", rc, tm_rct_err(t));
    printf("memory=%" PRIu64 " granularity=%" PRIu32 " region=%" PRIu64
           "\n", ri.memory, ri.granularity, ri.region);
    tm_rct_free(t);
    return 0;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: rctbench fill <vhdx> <raw> <size_mib>\n"
            "       rctbench write (on | off | vhdx | raw) <file> "
            "(rand | seq) <n> <write_bytes> <seed>\n"
            "       rctbench mark <dir> <size_mib> (rand | seq) <n> "
            "<write_bytes> <seed>\n"
            "       rctbench query <file> <size_gib> <changes> <repeat> "
            "<capacity>\n"
            "       rctbench memory <file> <size_gib> <changes>\n"
            "       rctbench rctinfo <size_gib>\n"
            "       rctbench memcpy <mib>\n");
}

int
main(int argc, char **argv)
{
    uint64_t v[5];
    const char *verb = argc > 1 ? argv[1] : "";

    if (strcmp(verb, "fill") == 0 && argc == 5) {
        if (parse_args(argv + 4, 1, v) < 0)
            return 2;
        return cmd_fill(argv[2], argv[3], v[0]);
    }
    if (strcmp(verb, "write") == 0 && argc == 8) {
        if (parse_args(argv + 5, 3, v) < 0)
            return 2;
        return cmd_write(argv[2], argv[3], argv[4], v[0], v[1], v[2]);
    }
    if (strcmp(verb, "mark") == 0 && argc == 8) {
        if (parse_args(argv + 3, 1, v) < 0 ||
            parse_args(argv + 5, 3, v + 1) < 0)
            return 2;
        return cmd_mark(argv[2], v[0], argv[4], v[1], v[2], v[3]);
    }
    if (strcmp(verb, "query") == 0 && argc == 7) {
        if (parse_args(argv + 3, 4, v) < 0)
            return 2;
        return cmd_query(argv[2], v[0], v[1], v[2], v[3]);
    }
    if (strcmp(verb, "memory") == 0 && argc == 5) {
        if (parse_args(argv + 3, 2, v) < 0)
            return 2;
        return cmd_memory(argv[2], v[0], v[1]);
    }
    if (strcmp(verb, "rctinfo") == 0 && argc == 3) {
        if (parse_args(argv + 2, 1, v) < 0)
            return 2;
        return cmd_rctinfo(v[0]);
    }
    if (strcmp(verb, "memcpy") == 0 && argc == 3) {
        if (parse_args(argv + 2, 1, v) < 0)
            return 2;
        return cmd_memcpy(v[0]);
    }
    usage();
    return 2;
}
