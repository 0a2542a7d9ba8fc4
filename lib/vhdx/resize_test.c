/* SPDX-License-Identifier: MIT */
/* resize_test.c - the maintenance verbs on memory files: metadata
 * rewrites (order, preserved items, limits), Resize-VHD (grow and shrink
 * of dynamic and fixed disks, 512- and 4096-byte sectors, a BAT that must
 * move, refused shrinks, the smallest size) and Optimize-VHD (zero blocks
 * released, blocks moved down, the file truncated, data unchanged).
 * Crash safety is tested in tests/crash_maint_test.c; other readers'
 * views in tests/maint_test.sh. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "vhdx_testutil.h"

#define MiB (1u << 20)
#define GiB (1ull << 30)
/* Our layout for a 1 MiB log: metadata at 2 MiB, BAT at 3 MiB. */
#define META_OFF (2u * MiB)
#define BAT_OFF (3u * MiB)
/* 1 MiB blocks and 512-byte sectors: 31 chunks of 4097 entries fill a
 * 1 MiB BAT region (97 %); one more block needs a second MiB. */
#define FULL_BAT_SIZE (124 * GiB)

static void
report(void *user, const char *problem)
{
    (void)user;
    print_error("check: %s\n", problem);
}

static void
assert_clean(struct tm_vhdx *vd)
{
    assert_int_equal(tm_vhdx_check(vd, report, NULL), 0);
}

/* Reopens read-only, checks, and returns the virtual size. */
static uint64_t
reopen_size(struct tm_io *mem)
{
    struct tm_vhdx *vd = open_disk(mem, TM_VHDX_RDONLY);
    uint64_t v = vd->p.virtual_size;

    assert_clean(vd);
    tm_vhdx_close(vd);
    return v;
}

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 131 + seed * 17 + (i >> 9)) | 1);
}

static void
write_pattern(struct tm_vhdx *vd, uint64_t off, size_t len, unsigned seed)
{
    uint8_t *b = malloc(len);

    fill(b, len, seed);
    assert_int_equal(tm_vhdx_write(vd, b, len, off), 0);
    free(b);
}

static void
assert_pattern(struct tm_vhdx *vd, uint64_t off, size_t len, unsigned seed)
{
    uint8_t *b = malloc(len), *w = malloc(len);

    fill(w, len, seed);
    assert_int_equal(tm_vhdx_read(vd, b, len, off), 0);
    assert_memory_equal(b, w, len);
    free(w);
    free(b);
}

static void
assert_zeros(struct tm_vhdx *vd, uint64_t off, uint64_t len)
{
    uint8_t *b = malloc(MiB);

    while (len > 0) {
        size_t n = len < MiB ? (size_t)len : MiB;

        assert_int_equal(tm_vhdx_read(vd, b, n, off), 0);
        for (size_t i = 0; i < n; i++)
            if (b[i] != 0) {
                print_error("byte %llu is 0x%02x, not zero\n",
                            (unsigned long long)(off + i), b[i]);
                fail();
            }
        off += n;
        len -= n;
    }
    free(b);
}

static uint64_t
file_size(struct tm_io *io)
{
    uint64_t s;

    assert_int_equal(tm_io_size(io, &s), 0);
    return s;
}

/* Both region tables valid and identical; returns table 1. */
static struct vhdx_region_table *
region_tables(struct tm_io *mem)
{
    uint8_t *a = malloc(VHDX_RT_BYTES), *b = malloc(VHDX_RT_BYTES);
    struct vhdx_region_table *rt = malloc(sizeof(*rt));
    struct tm_err err;

    assert_int_equal(tm_io_pread_all(mem, a, VHDX_RT_BYTES, VHDX_RT1_OFF), 0);
    assert_int_equal(tm_io_pread_all(mem, b, VHDX_RT_BYTES, VHDX_RT2_OFF), 0);
    assert_memory_equal(a, b, VHDX_RT_BYTES);
    assert_int_equal(vhdx_region_table_decode(a, VHDX_RT_BYTES, rt, &err), 0);
    free(a);
    free(b);
    return rt;
}

static uint64_t
entry_of(struct tm_vhdx *vd, uint64_t blk)
{
    return vd->bat[vhdx_bat_index(&vd->g, blk)];
}

/* ---- metadata rewrite ------------------------------------------------- */

static const struct tm_guid user_id = { {
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01 } };
static const struct tm_guid extra_id = { {
    0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
    0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0 } };

/* Adds a user item (100 bytes at region offset 0x10100) by hand, as
 * another program might have written it. */
static void
add_user_item(struct tm_io *mem, uint8_t *payload)
{
    uint8_t *tbl = malloc(VHDX_METADATA_TABLE_BYTES);
    uint8_t *e;

    assert_int_equal(tm_io_pread_all(mem, tbl, VHDX_METADATA_TABLE_BYTES,
                                     META_OFF), 0);
    assert_int_equal(tm_le16(tbl + 10), 5);
    e = tbl + 32 + 5 * 32;
    memcpy(e, user_id.b, 16);
    tm_put_le32(e + 16, 0x10100);
    tm_put_le32(e + 20, 100);
    tm_put_le32(e + 24, 1);             /* IsUser */
    tm_put_le16(tbl + 10, 6);
    assert_int_equal(tm_io_pwrite_all(mem, tbl, VHDX_METADATA_TABLE_BYTES,
                                      META_OFF), 0);
    fill(payload, 100, 9);
    assert_int_equal(tm_io_pwrite_all(mem, payload, 100,
                                      META_OFF + 0x10100), 0);
    free(tbl);
}

static void
meta_rewrite_keeps_items_and_order(void **state)
{
    struct tm_io *mem = new_disk(64 * MiB, MiB, 512, false);
    uint8_t upay[100], got[100], extra[20];
    struct vhdx_meta_item it;
    struct tm_vhdx *vd;
    const struct vhdx_meta_entry *e;

    add_user_item(mem, upay);
    vd = open_disk(mem, 0);
    write_pattern(vd, 0, 4096, 1);
    memset(extra, 0x5e, sizeof(extra));
    it = (struct vhdx_meta_item){ extra_id, extra, sizeof(extra), false,
                                  false };
    assert_int_equal(vhdx_meta_rewrite(vd, &it, 1), 0);
    /* System items first, the new one after them, the user item last. */
    assert_int_equal(vd->mt->count, 7);
    assert_true(tm_guid_equal(&vd->mt->e[0].id, &VHDX_GUID_FILE_PARAMS));
    assert_true(tm_guid_equal(&vd->mt->e[5].id, &extra_id));
    assert_false(vd->mt->e[5].is_user);
    assert_true(tm_guid_equal(&vd->mt->e[6].id, &user_id));
    assert_true(vd->mt->e[6].is_user);
    for (unsigned i = 0; i < 7; i++)
        assert_int_equal(vd->mt->e[i].off % 8, 0);
    assert_int_equal(tm_vhdx_close(vd), 0);

    vd = open_disk(mem, 0);
    assert_clean(vd);
    assert_pattern(vd, 0, 4096, 1);
    e = vhdx_meta_find(vd->mt, &user_id, true);
    assert_non_null(e);
    assert_int_equal(e->len, 100);
    assert_int_equal(tm_io_pread_all(mem, got, 100, META_OFF + e->off), 0);
    assert_memory_equal(got, upay, 100);
    e = vhdx_meta_find(vd->mt, &extra_id, false);
    assert_non_null(e);
    assert_int_equal(tm_io_pread_all(mem, got, 20, META_OFF + e->off), 0);
    assert_memory_equal(got, extra, 20);
    /* Remove it again: the others keep their bytes. */
    it.data = NULL;
    it.len = 0;
    assert_int_equal(vhdx_meta_rewrite(vd, &it, 1), 0);
    assert_int_equal(vd->mt->count, 6);
    assert_null(vhdx_meta_find(vd->mt, &extra_id, false));
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    e = vhdx_meta_find(vd->mt, &user_id, true);
    assert_non_null(e);
    assert_int_equal(tm_io_pread_all(mem, got, 100, META_OFF + e->off), 0);
    assert_memory_equal(got, upay, 100);
    assert_int_equal(vd->p.virtual_size, 64 * MiB);
    assert_clean(vd);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

static void
meta_rewrite_refuses_what_does_not_fit(void **state)
{
    struct tm_io *mem = new_disk(64 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t *big = calloc(1, MiB);
    struct vhdx_meta_item it = { extra_id, big, MiB, false, false };
    uint64_t before;
    uint8_t bad[8];

    assert_int_equal(tm_vhdx_close(vd), 0);
    before = disk_digest(mem);
    vd = open_disk(mem, 0);
    big[0] = 1;
    assert_int_equal(vhdx_meta_rewrite(vd, &it, 1), TM_E_UNSUPPORTED);
    assert_non_null(strstr(tm_vhdx_err(vd)->msg, "the region holds"));
    /* A virtual size open would refuse is refused before writing. */
    tm_put_le64(bad, 1000);
    it = (struct vhdx_meta_item){ VHDX_GUID_VIRTUAL_SIZE, bad, 8, true,
                                  true };
    assert_int_equal(vhdx_meta_rewrite(vd, &it, 1), TM_E_INVALID);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_true(disk_digest(mem) == before);     /* nothing was written */
    free(big);
    tm_io_close(mem);
}

/* ---- grow -------------------------------------------------------------- */

static void
grow_dynamic_keeps_data_new_space_zero(void **state)
{
    uint64_t old = 100 * MiB + 512;
    struct tm_io *mem = new_disk(old, 8 * MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct tm_vhdx_info a, b;

    write_pattern(vd, 0, 70000, 1);
    write_pattern(vd, old - 8192, 8192, 2);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_get_info(vd, &a), 0);
    assert_int_equal(tm_vhdx_resize(vd, 300 * MiB), 0);
    assert_int_equal(tm_vhdx_get_info(vd, &b), 0);
    assert_int_equal(b.virtual_size, 300 * MiB);
    assert_int_equal(b.blocks_total, 38);
    assert_memory_not_equal(&a.data_write_guid, &b.data_write_guid, 16);
    assert_pattern(vd, 0, 70000, 1);
    assert_pattern(vd, old - 8192, 8192, 2);
    assert_zeros(vd, old, 300 * MiB - old);
    /* The new space takes writes. */
    write_pattern(vd, 300 * MiB - 4096, 4096, 3);
    assert_int_equal(tm_vhdx_close(vd), 0);

    assert_int_equal(reopen_size(mem), 300 * MiB);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_pattern(vd, 0, 70000, 1);
    assert_pattern(vd, old - 8192, 8192, 2);
    assert_pattern(vd, 300 * MiB - 4096, 4096, 3);
    assert_zeros(vd, old, 300 * MiB - 4096 - old);
    /* The BAT had room: it did not move. */
    assert_int_equal(vd->bat_off, BAT_OFF);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

/* Another writer may leave bytes past the virtual size in the last
 * block; growing must not expose them. */
static void
grow_zeroes_garbage_past_the_old_end(void **state)
{
    uint64_t old = 10 * MiB + 1536;
    struct tm_io *mem = new_disk(old, 4 * MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t junk[4096];
    uint64_t e;

    write_pattern(vd, old - 1536, 1536, 4);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    e = entry_of(vd, 2);
    assert_int_equal(VHDX_BAT_STATE(e), VHDX_PAYLOAD_FULLY_PRESENT);
    tm_vhdx_close(vd);
    memset(junk, 0xee, sizeof(junk));
    assert_int_equal(tm_io_pwrite_all(mem, junk, sizeof(junk),
                                      VHDX_BAT_OFF(e) + (old - 8 * MiB)), 0);

    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_resize(vd, 20 * MiB), 0);
    assert_pattern(vd, old - 1536, 1536, 4);
    assert_zeros(vd, old, 20 * MiB - old);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_zeros(vd, old, 20 * MiB - old);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

static void
grow_fixed_allocates_new_blocks(void **state)
{
    struct tm_io *mem = new_disk(20 * MiB, 2 * MiB, 512, true);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct tm_vhdx_info info;
    uint64_t fs = file_size(mem);

    write_pattern(vd, 0, MiB, 5);
    write_pattern(vd, 19 * MiB, MiB, 6);
    assert_int_equal(tm_vhdx_resize(vd, 33 * MiB), 0);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.type, TM_VHDX_FIXED);
    assert_int_equal(info.blocks_total, 17);
    assert_int_equal(info.blocks_fully_present, 17);
    assert_int_equal(file_size(mem), fs + 7 * 2 * MiB);
    assert_zeros(vd, 20 * MiB, 13 * MiB);
    write_pattern(vd, 32 * MiB, MiB, 7);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), 33 * MiB);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_pattern(vd, 0, MiB, 5);
    assert_pattern(vd, 19 * MiB, MiB, 6);
    assert_pattern(vd, 32 * MiB, MiB, 7);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

static void
grow_4k_sectors(void **state)
{
    struct tm_io *mem = new_disk(40 * MiB + 4096, 2 * MiB, 4096, false);
    struct tm_vhdx *vd = open_disk(mem, 0);

    write_pattern(vd, 40 * MiB, 4096, 8);
    assert_int_equal(tm_vhdx_resize(vd, 50 * MiB + 512), TM_E_INVALID);
    assert_non_null(strstr(tm_vhdx_err(vd)->msg, "logical sector size"));
    assert_int_equal(tm_vhdx_resize(vd, 50 * MiB + 8192), 0);
    assert_pattern(vd, 40 * MiB, 4096, 8);
    assert_zeros(vd, 40 * MiB + 4096, 10 * MiB + 4096);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), 50 * MiB + 8192);
    tm_io_close(mem);
}

/* The BAT region is as full as the stride allows: growing by one block
 * moves the BAT to the end of the file, and both region tables follow. */
static void
grow_relocates_a_full_bat(void **state)
{
    struct tm_io *mem = new_disk(FULL_BAT_SIZE, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct vhdx_region_table *rt;
    const struct vhdx_region *r;
    uint64_t new_size = FULL_BAT_SIZE + 3 * MiB;
    uint64_t run;
    bool alloc;

    assert_int_equal(vd->bat_len, MiB);
    write_pattern(vd, 0, 5000, 1);
    write_pattern(vd, 64 * GiB + 12345, 100000, 2);
    write_pattern(vd, FULL_BAT_SIZE - 4096, 4096, 3);
    assert_int_equal(tm_vhdx_resize(vd, new_size), 0);
    assert_int_equal(vd->bat_len, 2 * MiB);
    assert_true(vd->bat_off > BAT_OFF);
    assert_int_equal(vd->bat_off % MiB, 0);
    assert_pattern(vd, 0, 5000, 1);
    assert_pattern(vd, 64 * GiB + 12345, 100000, 2);
    assert_pattern(vd, FULL_BAT_SIZE - 4096, 4096, 3);
    assert_int_equal(tm_vhdx_block_status(vd, FULL_BAT_SIZE, 3 * MiB, &run,
                                          &alloc), 0);
    assert_false(alloc);
    assert_int_equal(run, 3 * MiB);
    write_pattern(vd, new_size - 512, 512, 4);
    assert_int_equal(tm_vhdx_close(vd), 0);

    rt = region_tables(mem);
    r = vhdx_region_find(rt, &VHDX_GUID_BAT);
    assert_non_null(r);
    assert_int_equal(r->len, 2 * MiB);
    assert_true(r->required);
    free(rt);
    assert_int_equal(reopen_size(mem), new_size);
    vd = open_disk(mem, 0);
    assert_pattern(vd, 0, 5000, 1);
    assert_pattern(vd, 64 * GiB + 12345, 100000, 2);
    assert_pattern(vd, FULL_BAT_SIZE - 4096, 4096, 3);
    assert_pattern(vd, new_size - 512, 512, 4);
    /* Grown again, the region has room now; shrunk back, it stays. */
    assert_int_equal(tm_vhdx_resize(vd, new_size + 64 * MiB), 0);
    assert_int_equal(vd->bat_len, 2 * MiB);
    assert_int_equal(tm_vhdx_resize(vd, new_size), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), new_size);
    tm_io_close(mem);
}

static void
grow_relocates_a_full_bat_fixed(void **state)
{
    struct tm_io *mem = new_disk(FULL_BAT_SIZE, MiB, 512, true);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint64_t new_size = FULL_BAT_SIZE + 5 * MiB;
    struct tm_vhdx_info info;

    write_pattern(vd, FULL_BAT_SIZE - 3000, 3000, 6);
    assert_int_equal(tm_vhdx_resize(vd, new_size), 0);
    assert_int_equal(vd->bat_len, 2 * MiB);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.blocks_fully_present, info.blocks_total);
    assert_zeros(vd, FULL_BAT_SIZE, 5 * MiB);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), new_size);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_pattern(vd, FULL_BAT_SIZE - 3000, 3000, 6);
    assert_zeros(vd, FULL_BAT_SIZE, 5 * MiB);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

/* ---- shrink and the smallest size ------------------------------------- */

static void
min_size_is_end_of_last_nonzero_sector(void **state)
{
    struct tm_io *mem = new_disk(64 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t one = 1;
    uint8_t *z = calloc(1, MiB);
    uint64_t m;

    assert_int_equal(tm_vhdx_min_size(vd, &m), 0);
    assert_int_equal(m, 512);                   /* empty: one sector */
    assert_int_equal(tm_vhdx_write(vd, &one, 1, 10 * MiB + 700), 0);
    assert_int_equal(tm_vhdx_min_size(vd, &m), 0);
    assert_int_equal(m, 10 * MiB + 1024);
    /* An allocated block of zeros does not count. */
    write_pattern(vd, 40 * MiB, MiB, 1);
    assert_int_equal(tm_vhdx_write(vd, z, MiB, 40 * MiB), 0);
    assert_int_equal(tm_vhdx_min_size(vd, &m), 0);
    assert_int_equal(m, 10 * MiB + 1024);
    assert_int_equal(tm_vhdx_write(vd, &one, 1, 64 * MiB - 1), 0);
    assert_int_equal(tm_vhdx_min_size(vd, &m), 0);
    assert_int_equal(m, 64 * MiB);
    tm_vhdx_close(vd);
    free(z);
    tm_io_close(mem);

    /* 4096-byte sectors round to 4096. */
    mem = new_disk(64 * MiB, 2 * MiB, 4096, false);
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_min_size(vd, &m), 0);
    assert_int_equal(m, 4096);
    assert_int_equal(tm_vhdx_write(vd, &one, 1, 5 * MiB + 4096), 0);
    assert_int_equal(tm_vhdx_min_size(vd, &m), 0);
    assert_int_equal(m, 5 * MiB + 8192);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

/* More allocated runs than min_size keeps at once, all zero but the
 * first: the backward search must go back past its window. */
static void
min_size_looks_past_many_zero_runs(void **state)
{
    struct tm_io *mem = new_disk(1200 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t *z = calloc(1, 4096);
    uint8_t one = 7;
    uint64_t m;

    assert_int_equal(tm_vhdx_write(vd, &one, 1, 3 * MiB), 0);
    for (uint64_t b = 5; b < 1200; b += 2) {
        write_pattern(vd, b * MiB, 4096, 1);
        assert_int_equal(tm_vhdx_write(vd, z, 4096, b * MiB), 0);
    }
    assert_int_equal(tm_vhdx_min_size(vd, &m), 0);
    assert_int_equal(m, 3 * MiB + 512);
    tm_vhdx_close(vd);
    free(z);
    tm_io_close(mem);
}

static void
shrink_refused_names_the_smallest_size(void **state)
{
    struct tm_io *mem = new_disk(64 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint64_t before;
    char want[64];

    write_pattern(vd, 30 * MiB, 1000, 1);
    assert_int_equal(tm_vhdx_close(vd), 0);
    before = disk_digest(mem);
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_resize(vd, 20 * MiB), TM_E_RANGE);
    snprintf(want, sizeof(want), "smallest safe size is %llu",
             (unsigned long long)(30 * MiB + 1024));
    assert_non_null(strstr(tm_vhdx_err(vd)->msg, want));
    assert_int_equal(tm_vhdx_resize(vd, 30 * MiB + 512), TM_E_RANGE);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_true(disk_digest(mem) == before);     /* untouched */

    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_resize(vd, 40 * MiB), TM_E_READONLY);
    tm_vhdx_close(vd);
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_resize(vd, 0), TM_E_INVALID);
    assert_int_equal(tm_vhdx_resize(vd, 40 * MiB + 100), TM_E_INVALID);
    assert_int_equal(tm_vhdx_resize(vd, (64ull << 40) + 512), TM_E_INVALID);
    assert_int_equal(tm_vhdx_resize(vd, 30 * MiB + 1024), 0);
    assert_pattern(vd, 30 * MiB, 1000, 1);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), 30 * MiB + 1024);
    tm_io_close(mem);
}

static void
shrink_dynamic_frees_blocks_and_truncates(void **state)
{
    struct tm_io *mem = new_disk(64 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    uint8_t *z = calloc(1, MiB);
    uint64_t fs;

    for (unsigned b = 0; b < 20; b++)
        write_pattern(vd, b * MiB, MiB, b);
    /* Blocks 10..19 hold zeros now, but are still allocated. */
    for (unsigned b = 10; b < 20; b++)
        assert_int_equal(tm_vhdx_write(vd, z, MiB, b * MiB), 0);
    assert_int_equal(tm_vhdx_write(vd, z, MiB - 512, 9 * MiB + 512), 0);
    assert_int_equal(tm_vhdx_flush(vd), 0);
    fs = file_size(mem);
    assert_int_equal(tm_vhdx_resize(vd, 9 * MiB + 512), 0);
    /* Blocks 10..19 were the last ten in the file. */
    assert_int_equal(file_size(mem), fs - 10 * MiB);
    for (unsigned b = 0; b < 9; b++)
        assert_pattern(vd, b * MiB, MiB, b);
    {
        uint8_t *w = malloc(512), *r = malloc(512);

        fill(w, 512, 9);
        assert_int_equal(tm_vhdx_read(vd, r, 512, 9 * MiB), 0);
        assert_memory_equal(r, w, 512);
        free(w);
        free(r);
    }
    assert_int_equal(vd->g.payload_blocks, 10);
    assert_int_equal(vd->bat_count, vd->g.bat_entries_write);
    for (uint64_t i = 10; i < 4097; i++)
        assert_int_equal(vd->bat[i], 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), 9 * MiB + 512);
    /* Growing again reads zeros past the old end, not the old data. */
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_resize(vd, 64 * MiB), 0);
    assert_zeros(vd, 9 * MiB + 512, 55 * MiB - 512);
    assert_pattern(vd, 8 * MiB, MiB, 8);
    assert_int_equal(tm_vhdx_close(vd), 0);
    free(z);
    tm_io_close(mem);
}

/* A fixed disk keeps every live block FULLY_PRESENT; the blocks past the
 * new end lose their entries and the file ends after the last one. */
static void
shrink_fixed_truncates(void **state)
{
    struct tm_io *mem = new_disk(32 * MiB, 2 * MiB, 512, true);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct tm_vhdx_info info;
    uint64_t fs = file_size(mem);

    write_pattern(vd, 0, 3 * MiB, 1);
    assert_int_equal(tm_vhdx_resize(vd, 7 * MiB), 0);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.blocks_total, 4);
    assert_int_equal(info.blocks_fully_present, 4);
    assert_int_equal(file_size(mem), fs - 12 * 2 * MiB);
    assert_pattern(vd, 0, 3 * MiB, 1);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), 7 * MiB);
    vd = open_disk(mem, 0);
    assert_int_equal(tm_vhdx_resize(vd, 9 * MiB), 0);
    assert_int_equal(tm_vhdx_get_info(vd, &info), 0);
    assert_int_equal(info.blocks_fully_present, 5);
    assert_zeros(vd, 7 * MiB, 2 * MiB);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), 9 * MiB);
    tm_io_close(mem);
}

/* ---- optimize ------------------------------------------------------------ */

static uint8_t *
read_all(struct tm_vhdx *vd)
{
    uint8_t *b = malloc(vd->p.virtual_size);

    assert_int_equal(tm_vhdx_read(vd, b, vd->p.virtual_size, 0), 0);
    return b;
}

static void
optimize_releases_zero_blocks(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct tm_vhdx_optimize_stats st;
    struct tm_vhdx_info a, b;
    uint8_t *z = calloc(1, MiB), *before, *after;

    for (unsigned k = 0; k < 8; k++)
        write_pattern(vd, k * MiB, MiB, k);
    assert_int_equal(tm_vhdx_write(vd, z, MiB, 2 * MiB), 0);
    assert_int_equal(tm_vhdx_write(vd, z, MiB, 5 * MiB), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, 0);
    before = read_all(vd);
    assert_int_equal(tm_vhdx_get_info(vd, &a), 0);
    assert_int_equal(tm_vhdx_optimize(vd, &st), 0);
    assert_int_equal(st.blocks_zeroed, 2);
    assert_int_equal(st.blocks_moved, 2);       /* 7 and 6 fill 2 and 5 */
    assert_int_equal(st.size_after, st.size_before - 2 * MiB);
    assert_int_equal(file_size(mem), st.size_after);
    assert_int_equal(VHDX_BAT_STATE(entry_of(vd, 2)), VHDX_PAYLOAD_ZERO);
    assert_int_equal(VHDX_BAT_STATE(entry_of(vd, 5)), VHDX_PAYLOAD_ZERO);
    after = read_all(vd);
    assert_memory_equal(before, after, 16 * MiB);
    free(after);
    assert_int_equal(tm_vhdx_get_info(vd, &b), 0);
    /* Relocation is not a change of contents. */
    assert_memory_equal(&a.data_write_guid, &b.data_write_guid, 16);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), 16 * MiB);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    after = read_all(vd);
    assert_memory_equal(before, after, 16 * MiB);
    tm_vhdx_close(vd);
    free(after);
    free(before);
    free(z);
    tm_io_close(mem);
}

static void
optimize_compacts_and_truncates(void **state)
{
    struct tm_io *mem = new_disk(40 * MiB + 512, 2 * MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct tm_vhdx_optimize_stats st;
    uint8_t *before, *after;
    uint64_t hi = 0;

    for (unsigned k = 0; k < 21; k++)
        write_pattern(vd, k * 2 * MiB, k == 20 ? 512 : 2 * MiB, k);
    /* Holes low in the file. */
    assert_int_equal(tm_vhdx_discard(vd, 2 * MiB, 4 * MiB, TM_VHDX_ZERO), 0);
    assert_int_equal(tm_vhdx_discard(vd, 10 * MiB, 2 * MiB, TM_VHDX_UNMAP),
                     0);
    before = read_all(vd);
    assert_int_equal(tm_vhdx_optimize(vd, &st), 0);
    assert_int_equal(st.blocks_zeroed, 0);
    assert_int_equal(st.blocks_moved, 3);
    assert_int_equal(st.size_after, st.size_before - 6 * MiB);
    after = read_all(vd);
    assert_memory_equal(before, after, vd->p.virtual_size);
    free(after);
    assert_clean(vd);
    /* Nothing stays above the new end. */
    for (uint64_t b = 0; b < vd->g.payload_blocks; b++) {
        uint64_t e = entry_of(vd, b);

        if (VHDX_BAT_STATE(e) == VHDX_PAYLOAD_FULLY_PRESENT &&
            VHDX_BAT_OFF(e) + 2 * MiB > hi)
            hi = VHDX_BAT_OFF(e) + 2 * MiB;
    }
    assert_int_equal(hi, file_size(mem));
    /* A second pass has nothing to do. */
    assert_int_equal(tm_vhdx_optimize(vd, &st), 0);
    assert_int_equal(st.blocks_moved, 0);
    assert_int_equal(st.size_after, st.size_before);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    after = read_all(vd);
    assert_memory_equal(before, after, vd->p.virtual_size);
    assert_clean(vd);
    tm_vhdx_close(vd);
    free(after);
    free(before);
    tm_io_close(mem);
}

/* After a BAT relocation the old region is a 1 MiB hole near the start:
 * the highest 1 MiB block moves into it. */
static void
optimize_fills_the_old_bat_region(void **state)
{
    struct tm_io *mem = new_disk(FULL_BAT_SIZE, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct tm_vhdx_optimize_stats st;
    uint64_t new_size = FULL_BAT_SIZE + MiB;

    write_pattern(vd, 0, MiB, 1);
    write_pattern(vd, 100 * GiB, MiB, 2);
    assert_int_equal(tm_vhdx_resize(vd, new_size), 0);
    write_pattern(vd, FULL_BAT_SIZE, MiB, 3);       /* after the new BAT */
    assert_int_equal(tm_vhdx_optimize(vd, &st), 0);
    assert_int_equal(st.blocks_moved, 1);
    assert_int_equal(VHDX_BAT_OFF(entry_of(vd, FULL_BAT_SIZE / MiB)),
                     BAT_OFF);
    assert_true(st.size_after < st.size_before);
    assert_pattern(vd, 0, MiB, 1);
    assert_pattern(vd, 100 * GiB, MiB, 2);
    assert_pattern(vd, FULL_BAT_SIZE, MiB, 3);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_int_equal(reopen_size(mem), new_size);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_pattern(vd, FULL_BAT_SIZE, MiB, 3);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

static void
optimize_leaves_fixed_disks_alone(void **state)
{
    struct tm_io *mem = new_disk(16 * MiB, MiB, 512, true);
    struct tm_vhdx *vd = open_disk(mem, 0);
    struct tm_vhdx_optimize_stats st;
    uint64_t before = disk_digest(mem);

    assert_int_equal(tm_vhdx_optimize(vd, &st), 0);
    assert_int_equal(st.blocks_zeroed, 0);
    assert_int_equal(st.blocks_moved, 0);
    assert_int_equal(st.size_after, st.size_before);
    assert_int_equal(tm_vhdx_close(vd), 0);
    assert_true(disk_digest(mem) == before);
    vd = open_disk(mem, TM_VHDX_RDONLY);
    assert_int_equal(tm_vhdx_optimize(vd, &st), TM_E_READONLY);
    tm_vhdx_close(vd);
    tm_io_close(mem);
}

/* ---- differencing disks ------------------------------------------------- */

/* A base of 'size' with a pattern at its start, and a child of it (2 MiB
 * blocks) in *child_mem; returns the base's file. */
static struct tm_io *
new_chain(uint64_t size, struct tm_io **child_mem)
{
    struct tm_io *base = new_disk(size, MiB, 512, false);
    struct tm_vhdx *vd = open_disk(base, 0);
    struct tm_vhdx_create_params p = {
        .parent_relative_path = ".\\base.vhdx",
    };
    struct tm_vhdx *child = tm_vhdx_new();
    int rc;

    write_pattern(vd, 0, size, 50);         /* every byte from the base */
    assert_int_equal(tm_vhdx_close(vd), 0);
    p.parent = open_disk(base, TM_VHDX_RDONLY);
    *child_mem = tm_io_mem_new();
    rc = tm_vhdx_create(child, tm_io_borrow_new(*child_mem), &p);
    if (rc != 0)
        print_error("create: %s\n", tm_vhdx_err(child)->msg);
    assert_int_equal(rc, 0);
    assert_int_equal(tm_vhdx_close(child), 0);
    return base;
}

static struct tm_vhdx *
open_child(struct tm_io *child_mem, struct tm_io *base, unsigned flags)
{
    struct tm_vhdx *vd = open_disk(child_mem, flags);
    int rc = tm_vhdx_attach_parent(vd, open_disk(base, TM_VHDX_RDONLY));

    if (rc != 0)
        print_error("attach: %s\n", tm_vhdx_err(vd)->msg);
    assert_int_equal(rc, 0);
    return vd;
}

/* The new range of a grown child reads zeros, not its parent, and its
 * whole new blocks are ZERO. */
static void
diff_grow_reads_zeros(void **state)
{
    uint64_t old = 9 * MiB + 1024;
    struct tm_io *cm;
    struct tm_io *base = new_chain(old, &cm);
    struct tm_vhdx *vd = open_child(cm, base, 0);
    uint8_t *want = malloc(old);

    write_pattern(vd, MiB + 512, 3000, 51);
    assert_int_equal(tm_vhdx_read(vd, want, old, 0), 0);
    assert_int_equal(tm_vhdx_resize(vd, 20 * MiB), 0);
    assert_pattern(vd, MiB + 512, 3000, 51);
    assert_zeros(vd, old, 20 * MiB - old);
    for (uint64_t b = 5; b < 10; b++)
        assert_int_equal(VHDX_BAT_STATE(entry_of(vd, b)), VHDX_PAYLOAD_ZERO);
    assert_clean(vd);
    write_pattern(vd, 19 * MiB, 4096, 52);
    assert_int_equal(tm_vhdx_close(vd), 0);

    vd = open_child(cm, base, TM_VHDX_RDONLY);
    assert_int_equal(vd->p.virtual_size, 20 * MiB);
    {
        uint8_t *got = malloc(old);

        assert_int_equal(tm_vhdx_read(vd, got, old, 0), 0);
        assert_memory_equal(got, want, old);
        free(got);
    }
    assert_zeros(vd, old, 10 * MiB - old);
    assert_pattern(vd, 19 * MiB, 4096, 52);
    assert_clean(vd);
    tm_vhdx_close(vd);
    free(want);
    tm_io_close(cm);
    tm_io_close(base);
}

static void
diff_shrink_stops_at_the_parent(void **state)
{
    struct tm_io *cm;
    struct tm_io *base = new_chain(8 * MiB, &cm);
    struct tm_vhdx *vd = open_child(cm, base, 0);

    assert_int_equal(tm_vhdx_resize(vd, 6 * MiB), TM_E_RANGE);
    assert_non_null(strstr(tm_vhdx_err(vd)->msg, "parent's size"));
    assert_int_equal(tm_vhdx_resize(vd, 30 * MiB), 0);
    write_pattern(vd, 29 * MiB, 512, 53);
    assert_int_equal(tm_vhdx_resize(vd, 8 * MiB), TM_E_RANGE);
    assert_non_null(strstr(tm_vhdx_err(vd)->msg, "smallest safe size"));
    assert_int_equal(tm_vhdx_discard(vd, 29 * MiB, 512, TM_VHDX_ZERO), 0);
    assert_int_equal(tm_vhdx_resize(vd, 8 * MiB), 0);
    assert_pattern(vd, 0, 8 * MiB, 50);
    assert_clean(vd);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_child(cm, base, TM_VHDX_RDONLY);
    assert_int_equal(vd->p.virtual_size, 8 * MiB);
    assert_pattern(vd, 0, 8 * MiB, 50);
    tm_vhdx_close(vd);
    /* Without its parent, a child cannot tell what a shrink would lose. */
    vd = open_disk(cm, 0);
    assert_int_equal(tm_vhdx_resize(vd, 8 * MiB - 512), TM_E_CHAIN);
    tm_vhdx_close(vd);
    tm_io_close(cm);
    tm_io_close(base);
}

/* A child's zero block becomes ZERO (it read zeros, not the parent);
 * partial blocks move down, still partial.  (Bitmaps made lazily, in
 * chunks a resize added, move too: crash_maint_test.) */
static void
diff_optimize_moves_partial_blocks_and_bitmaps(void **state)
{
    uint64_t size = 40 * MiB;
    struct tm_io *cm;
    struct tm_io *base = new_chain(size, &cm);
    struct tm_vhdx *vd = open_child(cm, base, 0);
    struct tm_vhdx_optimize_stats st;
    uint8_t *z = calloc(1, 2 * MiB), *before, *after;
    unsigned partial = 0;

    /* Layout: chunk 0's bitmap at 4 MiB (made with the child), then
     * 2 MiB blocks: 1, 2, 3 whole at 5, 7 and 9 MiB; partial blocks 4 and
     * 15 at 11 and 13. */
    write_pattern(vd, 2 * MiB, 6 * MiB, 54);
    write_pattern(vd, 9 * MiB + 512, 1024, 56);
    write_pattern(vd, 30 * MiB, 4096, 57);
    assert_int_equal(VHDX_BAT_OFF(vd->bat[vhdx_sb_index(&vd->g, 0)]),
                     4 * MiB);
    assert_int_equal(VHDX_BAT_OFF(entry_of(vd, 15)), 13 * MiB);
    /* Block 1 zeros, blocks 2 and 3 unmapped: 6 MiB of holes at 5. */
    assert_int_equal(tm_vhdx_write(vd, z, 2 * MiB, 2 * MiB), 0);
    assert_int_equal(tm_vhdx_discard(vd, 4 * MiB, 4 * MiB, TM_VHDX_UNMAP),
                     0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_child(cm, base, 0);
    before = read_all(vd);
    assert_int_equal(tm_vhdx_optimize(vd, &st), 0);
    assert_int_equal(st.blocks_zeroed, 1);
    assert_int_equal(VHDX_BAT_STATE(entry_of(vd, 1)), VHDX_PAYLOAD_ZERO);
    assert_int_equal(st.blocks_moved, 2);
    assert_int_equal(st.size_after, 9 * MiB);
    assert_int_equal(vd->bat[vhdx_sb_index(&vd->g, 0)],
                     VHDX_BAT_ENTRY(VHDX_SB_PRESENT, 4 * MiB));
    assert_int_equal(entry_of(vd, 15),
                     VHDX_BAT_ENTRY(VHDX_PAYLOAD_PARTIALLY_PRESENT, 5 * MiB));
    assert_int_equal(entry_of(vd, 4),
                     VHDX_BAT_ENTRY(VHDX_PAYLOAD_PARTIALLY_PRESENT, 7 * MiB));
    for (uint64_t b = 0; b < vd->g.payload_blocks; b++)
        partial += VHDX_BAT_STATE(entry_of(vd, b)) ==
                   VHDX_PAYLOAD_PARTIALLY_PRESENT;
    assert_int_equal(partial, 2);
    after = read_all(vd);
    assert_memory_equal(before, after, size);
    free(after);
    assert_clean(vd);
    assert_int_equal(tm_vhdx_close(vd), 0);
    vd = open_child(cm, base, TM_VHDX_RDONLY);
    after = read_all(vd);
    assert_memory_equal(before, after, size);
    assert_clean(vd);
    tm_vhdx_close(vd);
    free(after);
    free(before);
    free(z);
    tm_io_close(cm);
    tm_io_close(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meta_rewrite_keeps_items_and_order),
        cmocka_unit_test(meta_rewrite_refuses_what_does_not_fit),
        cmocka_unit_test(grow_dynamic_keeps_data_new_space_zero),
        cmocka_unit_test(grow_zeroes_garbage_past_the_old_end),
        cmocka_unit_test(grow_fixed_allocates_new_blocks),
        cmocka_unit_test(grow_4k_sectors),
        cmocka_unit_test(grow_relocates_a_full_bat),
        cmocka_unit_test(grow_relocates_a_full_bat_fixed),
        cmocka_unit_test(min_size_is_end_of_last_nonzero_sector),
        cmocka_unit_test(min_size_looks_past_many_zero_runs),
        cmocka_unit_test(shrink_refused_names_the_smallest_size),
        cmocka_unit_test(shrink_dynamic_frees_blocks_and_truncates),
        cmocka_unit_test(shrink_fixed_truncates),
        cmocka_unit_test(optimize_releases_zero_blocks),
        cmocka_unit_test(optimize_compacts_and_truncates),
        cmocka_unit_test(optimize_fills_the_old_bat_region),
        cmocka_unit_test(optimize_leaves_fixed_disks_alone),
        cmocka_unit_test(diff_grow_reads_zeros),
        cmocka_unit_test(diff_shrink_stops_at_the_parent),
        cmocka_unit_test(diff_optimize_moves_partial_blocks_and_bitmaps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
