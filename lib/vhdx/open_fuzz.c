/* SPDX-License-Identifier: MIT */
/* open_fuzz.c - open-and-read of hostile files.  A VHDX is at least
 * 1 MiB, too big to fuzz byte for byte, so the input patches a small
 * valid file instead:
 *
 *   byte 0        flags: bit 0 fix the checksums of headers and region
 *                 tables after patching (reaches the deeper parsers),
 *                 bit 1 also open read-write, bit 2 start from a fixed disk,
 *                 else bit 3 from a differencing child (partial blocks,
 *                 sector bitmaps, ZERO over parent data; its parent is
 *                 attached after the open)
 *   then records  u32 offset (LE, taken modulo the file size), u8 length,
 *                 that many bytes to write there
 *
 * The file is then opened read-only (and read-write on a copy), read in
 * full, checked and dumped.  Nothing may crash, hang or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx.h"
#include "vhdx_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
ignore_line(void *user, const char *line)
{
    (void)user;
    (void)line;
}

/* An 8 MiB disk of 1 MiB blocks with a few blocks written. */
static struct tm_io *
make_template(bool fixed)
{
    struct tm_io *mem = tm_io_mem_new();
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .virtual_size = 8u << 20,
        .block_size = 1u << 20,
        .fixed = fixed,
    };
    uint8_t buf[4096];

    if (mem == NULL || vd == NULL)
        abort();
    if (tm_vhdx_create(vd, tm_io_borrow_new(mem), &p) != 0)
        abort();
    memset(buf, 0xa5, sizeof(buf));
    for (uint64_t off = 0; off < (8u << 20); off += 3u << 20)
        if (tm_vhdx_write(vd, buf, sizeof(buf), off) != 0)
            abort();
    if (tm_vhdx_close(vd) != 0)
        abort();
    return mem;
}

static struct tm_io *parent_tmpl;

/* A child of a dynamic parent with data: partial and full blocks, a ZERO
 * block, sub-sector writes, so the bitmap and locator parsers run. */
static struct tm_io *
make_child_template(void)
{
    struct tm_io *mem = tm_io_mem_new();
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx *pa = tm_vhdx_new();
    struct tm_vhdx_create_params p = {
        .block_size = 1u << 20,
        .parent_relative_path = ".\\parent.vhdx",
        .parent_absolute_path = "Z:\\vms\\parent.vhdx",
    };
    uint8_t buf[4096];

    parent_tmpl = make_template(false);
    if (mem == NULL || vd == NULL || pa == NULL ||
        tm_vhdx_open(pa, tm_io_borrow_new(parent_tmpl), TM_VHDX_RDONLY) != 0)
        abort();
    p.parent = pa;
    if (tm_vhdx_create(vd, tm_io_borrow_new(mem), &p) != 0)
        abort();
    memset(buf, 0x5c, sizeof(buf));
    if (tm_vhdx_write(vd, buf, 1000, 4097) != 0 ||
        tm_vhdx_write(vd, buf, sizeof(buf), (2u << 20) + 8192) != 0 ||
        tm_vhdx_discard(vd, 3u << 20, 1u << 20, TM_VHDX_ZERO) != 0 ||
        tm_vhdx_write(vd, buf, sizeof(buf), 5u << 20) != 0)
        abort();
    for (uint64_t off = 6u << 20; off < (7u << 20); off += sizeof(buf))
        if (tm_vhdx_write(vd, buf, sizeof(buf), off) != 0)
            abort();
    if (tm_vhdx_close(vd) != 0)
        abort();
    return mem;
}

static struct tm_io *
copy_of(struct tm_io *src)
{
    struct tm_io *dst = tm_io_mem_new();
    uint64_t size;
    uint8_t *buf = malloc(1u << 20);

    if (dst == NULL || buf == NULL || tm_io_size(src, &size) != 0)
        abort();
    for (uint64_t off = 0; off < size; off += 1u << 20) {
        size_t n = size - off < (1u << 20) ? (size_t)(size - off) : 1u << 20;

        if (tm_io_pread_all(src, buf, n, off) != 0 ||
            tm_io_pwrite_all(dst, buf, n, off) != 0)
            abort();
    }
    free(buf);
    return dst;
}

static void
fix_crc(struct tm_io *io, uint64_t off, size_t len)
{
    uint8_t *buf = malloc(len);
    uint32_t crc;

    if (buf == NULL)
        abort();
    if (tm_io_pread_all(io, buf, len, off) == 0) {
        memset(buf + 4, 0, 4);
        crc = tm_crc32c(0, buf, len);
        tm_put_le32(buf + 4, crc);
        (void)tm_io_pwrite_all(io, buf + 4, 4, off + 4);
    }
    free(buf);
}

static void
exercise(struct tm_io *io, unsigned flags)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vhdx_info info;
    uint8_t *buf;

    if (vd == NULL)
        abort();
    if (tm_vhdx_open(vd, tm_io_borrow_new(io), flags) == 0 &&
        tm_vhdx_get_info(vd, &info) == 0) {
        if (info.has_parent && parent_tmpl != NULL) {
            struct tm_vhdx *pa = tm_vhdx_new();

            if (pa == NULL)
                abort();
            if (tm_vhdx_open(pa, tm_io_borrow_new(parent_tmpl),
                             TM_VHDX_RDONLY) == 0)
                (void)tm_vhdx_attach_parent(vd, pa);
            else
                tm_vhdx_close(pa);
        }
        /* Read everything that is allocated, bounded for speed. */
        uint64_t left = info.virtual_size < (64u << 20) ? info.virtual_size
                                                        : 64u << 20;
        uint64_t off = 0;

        buf = malloc(1u << 20);
        if (buf == NULL)
            abort();
        while (left > 0) {
            size_t n = left < (1u << 20) ? (size_t)left : 1u << 20;

            if (tm_vhdx_read(vd, buf, n, off) != 0)
                break;
            off += n;
            left -= n;
        }
        (void)tm_vhdx_check(vd, NULL, NULL);
        (void)tm_vhdx_dump(vd, ignore_line, NULL);
        if (!(flags & TM_VHDX_RDONLY)) {
            memset(buf, 0x3c, 8192);
            (void)tm_vhdx_write(vd, buf, 8192, 0);
            (void)tm_vhdx_discard(vd, 0, info.virtual_size,
                                  TM_VHDX_UNMAP);
        }
        free(buf);
    }
    tm_vhdx_close(vd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tm_io *tmpl[3];
    struct tm_io *io;
    uint64_t fsize;
    unsigned flags, kind;
    size_t i = 1;

    if (size < 1)
        return 0;
    flags = data[0];
    kind = (flags & 4) ? 1 : (flags & 8) ? 2 : 0;
    if (tmpl[kind] == NULL)
        tmpl[kind] = kind == 2 ? make_child_template()
                               : make_template(kind == 1);
    io = copy_of(tmpl[kind]);
    if (tm_io_size(io, &fsize) != 0)
        abort();
    while (i + 5 <= size) {
        uint64_t off = tm_le32(data + i) % fsize;
        size_t len = data[i + 4];

        i += 5;
        if (len > size - i)
            len = size - i;
        (void)tm_io_pwrite_all(io, data + i, len, off);
        i += len;
    }
    if (flags & 1) {
        fix_crc(io, VHDX_HEADER1_OFF, VHDX_HEADER_BYTES);
        fix_crc(io, VHDX_HEADER2_OFF, VHDX_HEADER_BYTES);
        fix_crc(io, VHDX_RT1_OFF, VHDX_RT_BYTES);
        fix_crc(io, VHDX_RT2_OFF, VHDX_RT_BYTES);
    }
    exercise(io, TM_VHDX_RDONLY);
    if (flags & 2)
        exercise(io, 0);
    tm_io_close(io);
    return 0;
}
