/* SPDX-License-Identifier: MIT */
/* vhdx_test.c - the engine's behaviour on memory files: create and open,
 * I/O across block boundaries, GUID discipline, read-only log replay,
 * header and region-table fallbacks, discards.  Interop with other
 * readers is tested in tests/ with the real tools. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vhdx.h"
#include "vhdx_int.h"
#include "vhdx_testutil.h"

#define MiB (1u << 20)

/* Our layout for a 1 MiB log: metadata at 2 MiB, BAT at 3 MiB. */
#define META_OFF (2u * MiB)
#define BAT_OFF (3u * MiB)

static int
open_rc(struct tm_io *mem, unsigned flags, char *msg, size_t cap)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    int rc = tm_vhdx_open(vd, tm_io_borrow_new(mem), flags);

    snprintf(msg, cap, "%s", tm_vhdx_err(vd)->msg);
    tm_vhdx_close(vd);
    return rc;
}

static void
fix_crc(struct tm_io *io, uint64_t off, size_t len)
{
    uint8_t *buf = malloc(len);

    assert_int_equal(tm_io_pread_all(io, buf, len, off), 0);
    memset(buf + 4, 0, 4);
    tm_put_le32(buf + 4, tm_crc32c(0, buf, len));
    assert_int_equal(tm_io_pwrite_all(io, buf, len, off), 0);
    free(buf);
}

static void
create_then_open_reads_zeros(void **state)
{
    struct tm_io *mem = new_disk(100 * MiB + 512, 8 * MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, TM_VHDX_RDONLY);
    struct tm_vhdx_info info;
    uint8_t buf[4096], zero[4096] = { 0 };

    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.type, TM_VHDX_DYNAMIC);
    assert_int_equal(info.virtual_size, 100 * MiB + 512);
    assert_int_equal(info.block_size, 8 * MiB);
    assert_int_equal(info.logical_sector, 512);
    assert_int_equal(info.physical_sector, 4096);
    assert_int_equal(info.blocks_total, 13);
    assert_int_equal(info.blocks_not_present, 13);
    assert_true(tm_guid_is_zero(&info.log_guid));
    assert_int_equal(tm_vhdx_read(vd, buf, sizeof(buf), 100 * MiB - 3584),
                     0);
    assert_memory_equal(buf, zero, sizeof(buf));
    assert_int_equal(tm_vhdx_read(vd, buf, 1024, 100 * MiB), TM_E_RANGE);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

static void
writes_cross_blocks_and_read_back(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    size_t len = 3 * MiB + 777;
    uint8_t *w = malloc(len), *r = malloc(len);

    for (size_t i = 0; i < len; i++)
        w[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(tm_vhdx_write(vd, w, len, MiB - 333), 0);
    assert_int_equal(tm_vhdx_read(vd, r, len, MiB - 333), 0);
    assert_memory_equal(w, r, len);
    assert_int_equal(tm_vhdx_close(vd), 0);

    vd = open_disk(mem, TM_VHDX_RDONLY);
    memset(r, 0, len);
    assert_int_equal(tm_vhdx_read(vd, r, len, MiB - 333), 0);
    assert_memory_equal(w, r, len);
    {
        struct tm_vhdx_info info;

        assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
        assert_int_equal(info.blocks_fully_present, 5);   /* blocks 0..4 */
    }
    tm_vhdx_close(vd);
    free(w);
    free(r);
    tm_io_close(mem);
}

static void
zero_writes_do_not_allocate(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t *z = calloc(1, 2 * MiB);
    struct tm_vhdx_info info;

    assert_int_equal(tm_vhdx_write(vd, z, 2 * MiB, 0), 0);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.blocks_fully_present, 0);
    tm_vhdx_close(vd);
    free(z);
    tm_io_close(mem);
}

static void
fixed_disk_is_fully_allocated(void **state)
{
    struct tm_io *mem = new_disk(20 * MiB, 2 * MiB, 512, true);
    struct tm_vhdx *vd = open_disk(mem, TM_VHDX_RDONLY);
    struct tm_vhdx_info info;

    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.type, TM_VHDX_FIXED);
    assert_int_equal(info.blocks_fully_present, 10);
    assert_true(info.file_size >= 20 * MiB + 4 * MiB);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

/* MS-VHDX 2.2.2: FileWriteGuid changes at the first write of an open,
 * DataWriteGuid at the first user-visible change only; an open that
 * writes nothing leaves the headers alone. */
static void
guid_discipline(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    struct tm_vhdx_info a, b, c;
    struct tm_vhdx *vd;
    uint8_t buf[512];

    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_get_info(vd, &a), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_get_info(vd, &b), 0);
    assert_int_equal(a.header_seq, b.header_seq);
    assert_memory_equal(&a.file_write_guid, &b.file_write_guid, 16);
    assert_memory_equal(&a.data_write_guid, &b.data_write_guid, 16);

    memset(buf, 1, sizeof(buf));
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), 0), 0);
    assert_int_equal(tm_vhdx_get_info(vd, &c), 0);
    assert_memory_not_equal(&a.file_write_guid, &c.file_write_guid, 16);
    assert_memory_not_equal(&a.data_write_guid, &c.data_write_guid, 16);
    assert_false(tm_guid_is_zero(&c.log_guid));
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), 4 * MiB), 0);
    assert_int_equal(tm_vhdx_get_info(vd, &b), 0);
    assert_memory_equal(&b.file_write_guid, &c.file_write_guid, 16);
    assert_memory_equal(&b.data_write_guid, &c.data_write_guid, 16);
    assert_int_equal(tm_vhdx_close(vd), 0);

    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_get_info(vd, &b), 0);
    assert_true(tm_guid_is_zero(&b.log_guid));      /* clean close */
    assert_memory_equal(&b.data_write_guid, &c.data_write_guid, 16);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

/* Leaves 'mem' as a crash would: the latest BAT update in the log, not
 * in place, and the header naming the log. */
static struct tm_io *
make_dirty(struct tm_io **clean_out, uint8_t *pattern, size_t len)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    struct tm_io *dirty;
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t bat_before[4096];

    memset(pattern, 0x77, len);
    assert_int_equal(tm_vhdx_write(vd, pattern, len, 0), 0);
    assert_int_equal(tm_vhdx_flush(vd), 0);
    assert_int_equal(tm_io_pread_all(mem, bat_before, 4096, BAT_OFF), 0);
    assert_int_equal(tm_vhdx_write(vd, pattern, len, 5 * MiB), 0);
    assert_int_equal(tm_vhdx_flush(vd), 0);
    /* The handle stays open: its header names the log. */
    dirty = copy_disk(mem);
    assert_int_equal(tm_io_pwrite_all(dirty, bat_before, 4096, BAT_OFF), 0);
    tm_vhdx_close(vd);
    *clean_out = mem;
    return dirty;
}

static void
read_only_open_replays_log_in_memory(void **state)
{
    uint8_t pat[8192], got[8192];
    struct tm_io *clean;
    struct tm_io *dirty = make_dirty(&clean, pat, sizeof(pat));
    uint64_t before = disk_digest(dirty);
    struct tm_vhdx_info info;
    struct tm_vhdx *vd = open_disk(dirty, TM_VHDX_RDONLY);

    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_true(info.log_replayed);
    assert_int_equal(tm_vhdx_read(vd, got, sizeof(got), 5 * MiB), 0);
    assert_memory_equal(got, pat, sizeof(pat));
    assert_int_equal(tm_vhdx_write(vd, pat, 512, 0), TM_E_READONLY);
    tm_vhdx_close(vd);
    assert_true(disk_digest(dirty) == before);   /* the file is untouched */
    tm_io_close(dirty);
    tm_io_close(clean);
}

static void
read_write_open_replays_and_keeps_data_guid(void **state)
{
    uint8_t pat[8192], got[8192];
    struct tm_io *clean;
    struct tm_io *dirty = make_dirty(&clean, pat, sizeof(pat));
    struct tm_vhdx_info before, after;
    struct tm_vhdx *vd = open_disk(dirty, TM_VHDX_RDONLY);

    assert_int_equal(tm_vhdx_get_info(vd, &before), 0);
    tm_vhdx_close(vd);
    vd = open_disk(dirty, 0);
    assert_int_equal(tm_vhdx_get_info(vd, &after), 0);
    assert_true(after.log_replayed);
    assert_true(tm_guid_is_zero(&after.log_guid));
    assert_memory_equal(&before.data_write_guid, &after.data_write_guid, 16);
    assert_memory_not_equal(&before.file_write_guid, &after.file_write_guid,
                            16);
    tm_vhdx_close(vd);
    vd = open_disk(dirty, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_get_info(vd, &after), 0);
    assert_false(after.log_replayed);
    assert_int_equal(tm_vhdx_read(vd, got, sizeof(got), 5 * MiB), 0);
    assert_memory_equal(got, pat, sizeof(pat));
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
    tm_vhdx_close(vd);
    tm_io_close(dirty);
    tm_io_close(clean);
}

static void
corrupt_current_header_falls_back(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    struct tm_vhdx *vd;
    struct tm_vhdx_info info;
    char msg[512];
    uint8_t junk = 0xff;

    /* Header 2 has the higher sequence number after create. */
    assert_int_equal(tm_io_pwrite_all(mem, &junk, 1, VHDX_HEADER2_OFF + 100),
                     0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.header_seq, 1);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 1);
    tm_vhdx_close(vd);
    assert_int_equal(tm_io_pwrite_all(mem, &junk, 1, VHDX_HEADER1_OFF + 100),
                     0);
    assert_int_equal(open_rc(mem, TM_VHDX_RDONLY, msg, sizeof(msg)),
                     TM_E_CORRUPT);
    assert_non_null(strstr(msg, "header"));
    tm_io_close(mem);
}

static void
one_bad_region_table_is_tolerated(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    uint8_t junk = 0xff;
    char msg[512];

    assert_int_equal(tm_io_pwrite_all(mem, &junk, 1, VHDX_RT1_OFF + 40), 0);
    assert_int_equal(open_rc(mem, TM_VHDX_RDONLY, msg, sizeof(msg)), 0);
    assert_int_equal(tm_io_pwrite_all(mem, &junk, 1, VHDX_RT2_OFF + 40), 0);
    assert_int_equal(open_rc(mem, TM_VHDX_RDONLY, msg, sizeof(msg)),
                     TM_E_CORRUPT);
    assert_non_null(strstr(msg, "region table"));
    tm_io_close(mem);
}

/* Adds a third region entry to both tables (at 'off', 1 MiB). */
static void
add_region(struct tm_io *mem, const uint8_t guid[16], uint64_t off,
           bool required)
{
    for (int t = 0; t < 2; t++) {
        uint64_t base = t == 0 ? VHDX_RT1_OFF : VHDX_RT2_OFF;
        uint8_t e[32], cnt[4];

        memcpy(e, guid, 16);
        tm_put_le64(e + 16, off);
        tm_put_le32(e + 24, MiB);
        tm_put_le32(e + 28, required ? 1 : 0);
        assert_int_equal(tm_io_pwrite_all(mem, e, 32, base + 16 + 2 * 32), 0);
        tm_put_le32(cnt, 3);
        assert_int_equal(tm_io_pwrite_all(mem, cnt, 4, base + 8), 0);
        fix_crc(mem, base, VHDX_RT_BYTES);
    }
}

static void
unknown_regions_preserved_or_refused(void **state)
{
    static const uint8_t g[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                   13, 14, 15, 16 };
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    struct tm_io *req;
    uint8_t rt_before[VHDX_RT_BYTES], rt_after[VHDX_RT_BYTES];
    uint8_t buf[4096];
    struct tm_vhdx *vd;
    char msg[512];
    uint64_t size;

    /* A non-required region past the end of the file's structures. */
    assert_int_equal(tm_io_size(mem, &size), 0);
    assert_int_equal(tm_io_truncate(mem, size + MiB), 0);
    req = copy_disk(mem);
    add_region(mem, g, size, false);
    assert_int_equal(tm_io_pread_all(mem, rt_before, VHDX_RT_BYTES,
                                     VHDX_RT1_OFF), 0);
    vd = open_disk(mem, 0);
    memset(buf, 0x42, sizeof(buf));
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), 0), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(tm_io_pread_all(mem, rt_after, VHDX_RT_BYTES,
                                     VHDX_RT1_OFF), 0);
    assert_memory_equal(rt_before, rt_after, VHDX_RT_BYTES);
    /* The new block did not land on the unknown region. */
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
    tm_vhdx_close(vd);

    add_region(req, g, size, true);
    assert_int_equal(open_rc(req, TM_VHDX_RDONLY, msg, sizeof(msg)),
                     TM_E_UNSUPPORTED);
    assert_non_null(strstr(msg, "required"));
    tm_io_close(req);
    tm_io_close(mem);
}

static void
repair_mends_header_and_region_table(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    uint8_t junk = 0xff;
    uint8_t a[VHDX_RT_BYTES], b[VHDX_RT_BYTES];
    struct tm_vhdx_info before, after;
    struct tm_vhdx *vd;

    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_get_info(vd, &before), 0);
    assert_int_equal(tm_vhdx_repair(vd, NULL, NULL), 0);   /* sound */
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_get_info(vd, &after), 0);
    assert_int_equal(after.header_seq, before.header_seq);  /* untouched */
    tm_vhdx_close(vd);

    assert_int_equal(tm_io_pwrite_all(mem, &junk, 1, VHDX_HEADER1_OFF + 99),
                     0);
    assert_int_equal(tm_io_pwrite_all(mem, &junk, 1, VHDX_RT2_OFF + 99), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 3);
    assert_int_equal(tm_vhdx_repair(vd, NULL, NULL), TM_E_READONLY);
    tm_vhdx_close(vd);
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_repair(vd, NULL, NULL), 2);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
    assert_int_equal(tm_vhdx_get_info(vd, &after), 0);
    assert_memory_equal(&after.data_write_guid, &before.data_write_guid, 16);
    tm_vhdx_close(vd);
    assert_int_equal(tm_io_pread_all(mem, a, sizeof(a), VHDX_RT1_OFF), 0);
    assert_int_equal(tm_io_pread_all(mem, b, sizeof(b), VHDX_RT2_OFF), 0);
    assert_memory_equal(a, b, sizeof(a));
    tm_io_close(mem);
}

/* LMDB's rule: after a failed flush nothing more is accepted, and close
 * says the last writes may not be durable; the next open is sound. */
static void
failed_flush_poisons_the_handle(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    struct tm_io *f = tm_io_fault_new(mem, &(struct tm_fault){
        .ops = TM_IO_FLUSH, .after = 1, .action = TM_FAULT_ERROR,
        .err = EIO });
    struct tm_vhdx *vd = tm_vhdx_new();
    uint8_t buf[4096];

    memset(buf, 0x11, sizeof(buf));
    assert_int_equal(tm_vhdx_open(vd, tm_io_borrow_new(f), 0), 0);
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), 0), -EIO);
    assert_non_null(strstr(tm_vhdx_err(vd)->msg, "poisoned"));
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), 0), TM_E_POISONED);
    assert_int_equal(tm_vhdx_flush(vd), TM_E_POISONED);
    assert_int_equal(tm_vhdx_close(vd), TM_E_POISONED);
    tm_io_close(f);
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    tm_io_close(mem);
}

static void
discard_whole_and_partial_blocks(void **state)
{
    struct tm_io *mem = new_disk(8 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t *buf = malloc(4 * MiB), *got = malloc(4 * MiB);
    struct tm_vhdx_info info;

    memset(buf, 0x99, 4 * MiB);
    assert_int_equal(tm_vhdx_write(vd, buf, 4 * MiB, 0), 0);
    assert_int_equal(tm_vhdx_discard(vd, MiB, MiB, TM_VHDX_ZERO), 0);
    assert_int_equal(tm_vhdx_discard(vd, 2 * MiB, MiB, TM_VHDX_UNMAP), 0);
    assert_int_equal(tm_vhdx_discard(vd, 3 * MiB + 512, 1024,
                                     TM_VHDX_UNMAP), 0);
    memset(buf + MiB, 0, 2 * MiB);
    memset(buf + 3 * MiB + 512, 0, 1024);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_read(vd, got, 4 * MiB, 0), 0);
    assert_memory_equal(got, buf, 4 * MiB);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.blocks_zero, 1);
    assert_int_equal(info.blocks_unmapped, 1);
    assert_int_equal(info.blocks_fully_present, 2);
    assert_int_equal(tm_vhdx_check(vd, NULL, NULL), 0);
    tm_vhdx_close(vd);
    free(buf);
    free(got);
    tm_io_close(mem);
}

static void
sector_4k_disk(void **state)
{
    struct tm_io *mem = new_disk(64 * MiB, 32 * MiB, 4096, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct tm_vhdx_info info;
    uint8_t buf[4096], got[4096];

    memset(buf, 0x4b, sizeof(buf));
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf), 40 * MiB), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.logical_sector, 4096);
    assert_int_equal(tm_vhdx_read(vd, got, sizeof(got), 40 * MiB), 0);
    assert_memory_equal(got, buf, sizeof(buf));
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

static void
create_refuses_bad_parameters(void **state)
{
    static const struct tm_vhdx_create_params bad[] = {
        { .virtual_size = 0 },
        { .virtual_size = (64ull << 40) + 512 },
        { .virtual_size = 1000 },
        { .virtual_size = MiB, .block_size = 3 * MiB },
        { .virtual_size = MiB, .block_size = 512 * MiB },
        { .virtual_size = MiB, .logical_sector = 1024 },
        { .virtual_size = MiB, .physical_sector = 2048 },
        { .virtual_size = MiB, .log_size = 1000 },
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tm_vhdx *vd = tm_vhdx_new();

        assert_int_equal(tm_vhdx_create(vd, tm_io_mem_new(), &bad[i]),
                         TM_E_INVALID);
        assert_true(strlen(tm_vhdx_err(vd)->msg) > 0);
        tm_vhdx_close(vd);
    }
}

static void
largest_disk_is_sparse(void **state)
{
    struct tm_io *mem = new_disk(64ull << 40, 256 * MiB, 4096, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t buf[4096], got[4096];

    memset(buf, 0x64, sizeof(buf));
    assert_int_equal(tm_vhdx_write(vd, buf, sizeof(buf),
                                   (64ull << 40) - 4096), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_read(vd, got, sizeof(got), (64ull << 40) - 4096),
                     0);
    assert_memory_equal(got, buf, sizeof(buf));
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_then_open_reads_zeros),
        cmocka_unit_test(writes_cross_blocks_and_read_back),
        cmocka_unit_test(zero_writes_do_not_allocate),
        cmocka_unit_test(fixed_disk_is_fully_allocated),
        cmocka_unit_test(guid_discipline),
        cmocka_unit_test(read_only_open_replays_log_in_memory),
        cmocka_unit_test(read_write_open_replays_and_keeps_data_guid),
        cmocka_unit_test(corrupt_current_header_falls_back),
        cmocka_unit_test(one_bad_region_table_is_tolerated),
        cmocka_unit_test(unknown_regions_preserved_or_refused),
        cmocka_unit_test(repair_mends_header_and_region_table),
        cmocka_unit_test(failed_flush_poisons_the_handle),
        cmocka_unit_test(discard_whole_and_partial_blocks),
        cmocka_unit_test(sector_4k_disk),
        cmocka_unit_test(create_refuses_bad_parameters),
        cmocka_unit_test(largest_disk_is_sparse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
