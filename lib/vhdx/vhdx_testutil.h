/* SPDX-License-Identifier: MIT */
/* vhdx_testutil.h - memory-file disks the engine's tests share: make
 * one, open one (failing the test with the engine's message), copy one.
 * Include after <cmocka.h>. */
#ifndef TM_VHDX_TESTUTIL_H
#define TM_VHDX_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdx.h"

/* A new empty VHDX in a memory file. */
static inline struct tm_io *
new_disk(uint64_t vsize, uint32_t bs, uint32_t lss, bool fixed)
{
    struct tm_io *mem = tm_io_mem_new();
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .virtual_size = vsize, .block_size = bs, .logical_sector = lss,
        .fixed = fixed,
    };

    assert_non_null(mem);
    assert_int_equal(tm_vhdx_create(vd, tm_io_borrow_new(mem), &p), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    return mem;
}

static inline struct tm_vhdx *
open_disk(struct tm_io *mem, unsigned flags)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    int rc = tm_vhdx_open(vd, tm_io_borrow_new(mem), flags);

    if (rc != 0)
        print_error("open: %s\n", tm_vhdx_err(vd)->msg);
    assert_int_equal(rc, 0);
    return vd;
}

/* A new memory file holding what 'src' holds. */
static inline struct tm_io *
copy_disk(struct tm_io *src)
{
    struct tm_io *dst = tm_io_mem_new();
    uint64_t size;
    uint8_t *buf = malloc(1u << 20);

    assert_non_null(dst);
    assert_non_null(buf);
    assert_int_equal(tm_io_size(src, &size), 0);
    for (uint64_t off = 0; off < size; off += 1u << 20) {
        size_t n = size - off < (1u << 20) ? (size_t)(size - off) : 1u << 20;

        assert_int_equal(tm_io_pread_all(src, buf, n, off), 0);
        assert_int_equal(tm_io_pwrite_all(dst, buf, n, off), 0);
    }
    free(buf);
    return dst;
}

/* A digest of a file's bytes and size, to tell whether anything wrote
 * it. */
static inline uint64_t
disk_digest(struct tm_io *io)
{
    uint64_t size, h = 0;
    uint8_t *buf = malloc(1u << 20);

    assert_non_null(buf);
    assert_int_equal(tm_io_size(io, &size), 0);
    for (uint64_t off = 0; off < size; off += 1u << 20) {
        size_t n = size - off < (1u << 20) ? (size_t)(size - off) : 1u << 20;

        assert_int_equal(tm_io_pread_all(io, buf, n, off), 0);
        h = h * 31 + tm_crc32c(0, buf, n);
    }
    free(buf);
    return h ^ size;
}

/* Saves a memory file to a sparse temporary file and runs 'qemu-img
 * check' on it, an independent reader's verdict; fails the test, naming
 * 'what', if it complains.  Does nothing without qemu-img. */
static inline void
qemu_img_check(struct tm_io *disk, const char *what)
{
    char path[] = "/tmp/tm-qemu-check-XXXXXX";
    char cmd[256];
    uint64_t size;
    uint8_t *buf;
    int fd, rc;

    if (system("command -v qemu-img >/dev/null 2>&1") != 0)
        return;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(tm_io_size(disk, &size), 0);
    buf = malloc(1u << 20);
    assert_non_null(buf);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    for (uint64_t o = 0; o < size; o += 1u << 20) {
        size_t n = size - o < (1u << 20) ? (size_t)(size - o) : 1u << 20;

        assert_int_equal(tm_io_pread_all(disk, buf, n, o), 0);
        if (buf[0] == 0 && memcmp(buf, buf + 1, n - 1) == 0)
            continue;
        assert_int_equal(pwrite(fd, buf, n, (off_t)o), (ssize_t)n);
    }
    free(buf);
    close(fd);
    snprintf(cmd, sizeof(cmd), "qemu-img check -q -f vhdx %s", path);
    rc = system(cmd);
    unlink(path);
    if (rc != 0) {
        print_error("%s: qemu-img check failed (%d)\n", what, rc);
        fail();
    }
}

#endif
