/* SPDX-License-Identifier: MIT */
/* fault_test.c - the fault backend: a volatile write cache that drops
 * what no flush covered at a power cut, Nth-operation errors, torn writes
 * and seeded partial persistence. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "io.h"
#include "io_testutil.h"

#define SECTOR 512u

static void
fault_reads_see_pending_writes(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, NULL);

    assert_non_null(io);
    assert_string_equal(io->ops->name, "fault");
    fill(disk, 0, 4096, 0x11);
    fill(io, 1000, 100, 0x22);
    fill(io, 5000, 10, 0x33);           /* extends, gap reads zero */
    assert_int_equal(size_of(io), 5010);
    assert_int_equal(size_of(disk), 4096);
    assert_bytes(io, 0, 1000, 0x11);
    assert_bytes(io, 1000, 100, 0x22);
    assert_bytes(io, 1100, 2996, 0x11);
    assert_bytes(io, 4096, 904, 0);
    assert_bytes(io, 5000, 10, 0x33);
    assert_bytes(disk, 1000, 100, 0x11); /* not applied yet */
    tm_io_close(io);
    tm_io_close(disk);
}

static void
fault_close_without_flush_loses_writes(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, NULL);

    fill(io, 0, 512, 0x44);
    assert_int_equal(tm_io_flush(io), 0);
    fill(io, 512, 512, 0x55);
    tm_io_close(io);
    assert_int_equal(size_of(disk), 512);
    assert_bytes(disk, 0, 512, 0x44);
    tm_io_close(disk);
}

static void
fault_power_cut_keeps_only_flushed_writes(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_WRITE, .after = 3, .action = TM_FAULT_POWER_CUT });
    uint8_t b;

    fill(io, 0, 1024, 0xa1);                              /* write 1 */
    assert_int_equal(tm_io_flush(io), 0);
    fill(io, 0, 512, 0xa2);                               /* write 2 */
    assert_int_equal(tm_io_pwrite_all(io, "x", 1, 0), -EIO); /* 3: cut */
    assert_true(tm_io_fault_fired(io));
    assert_int_equal(tm_io_fault_count(io), 3);
    /* Everything fails from now on, of any kind. */
    assert_int_equal(tm_io_pread(io, &b, 1, 0), -EIO);
    assert_int_equal(tm_io_flush(io), -EIO);
    assert_int_equal(tm_io_truncate(io, 0), -EIO);
    assert_int_equal(tm_io_size(io, &(uint64_t){ 0 }), -EIO);
    tm_io_close(io);
    assert_int_equal(size_of(disk), 1024);
    assert_bytes(disk, 0, 1024, 0xa1);
    tm_io_close(disk);
}

static void
fault_power_cut_on_flush_drops_its_writes(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_FLUSH, .after = 2, .action = TM_FAULT_POWER_CUT });

    fill(io, 0, 512, 1);
    assert_int_equal(tm_io_flush(io), 0);
    fill(io, 512, 512, 2);
    assert_int_equal(tm_io_flush(io), -EIO);
    tm_io_close(io);
    assert_int_equal(size_of(disk), 512);
    tm_io_close(disk);
}

static void
fault_nth_write_fails_once(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_WRITE, .after = 2, .action = TM_FAULT_ERROR });

    fill(io, 0, 10, 1);
    assert_false(tm_io_fault_fired(io));
    assert_int_equal(tm_io_pwrite_all(io, "zz", 2, 0), -EIO);
    assert_true(tm_io_fault_fired(io));
    assert_bytes(io, 0, 10, 1);                 /* it had no effect */
    fill(io, 10, 10, 3);                        /* not sticky */
    assert_int_equal(tm_io_flush(io), 0);
    assert_bytes(disk, 0, 10, 1);
    assert_bytes(disk, 10, 10, 3);
    assert_int_equal(tm_io_fault_count(io), 3);
    tm_io_close(io);
    tm_io_close(disk);
}

static void
fault_sticky_enospc_fails_every_later_counted_op(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_WRITE | TM_IO_ALLOCATE, .after = 2,
        .action = TM_FAULT_ERROR, .err = ENOSPC, .sticky = true });

    fill(io, 0, 10, 1);
    assert_int_equal(tm_io_allocate(io, 0, 4096), -ENOSPC);
    assert_int_equal(tm_io_pwrite_all(io, "a", 1, 0), -ENOSPC);
    assert_int_equal(tm_io_pwrite_all(io, "a", 1, 50), -ENOSPC);
    /* Kinds outside the mask still work. */
    assert_bytes(io, 0, 10, 1);
    assert_int_equal(tm_io_flush(io), 0);
    assert_int_equal(tm_io_truncate(io, 5), 0);
    assert_int_equal(size_of(io), 5);
    assert_int_equal(tm_io_fault_count(io), 4);
    tm_io_close(io);
    assert_int_equal(size_of(disk), 10);
    tm_io_close(disk);
}

static void
fault_counts_reads_when_asked(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_READ, .after = 2, .action = TM_FAULT_ERROR,
        .err = EBADMSG });
    uint8_t b[4];

    fill(io, 0, 4, 7);
    assert_int_equal(tm_io_pread(io, b, 4, 0), 4);
    assert_int_equal(tm_io_pread(io, b, 4, 0), -EBADMSG);
    assert_int_equal(tm_io_pread(io, b, 4, 0), 4);
    assert_int_equal(tm_io_fault_count(io), 3);
    tm_io_close(io);
    tm_io_close(disk);
}

static void
fault_tear_lands_exactly_n_sectors(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_WRITE, .after = 2, .action = TM_FAULT_TEAR,
        .tear_sectors = 3 });
    uint8_t buf[5 * SECTOR];

    fill(disk, 0, 8 * SECTOR, 0);
    fill(io, 7 * SECTOR, 100, 0xee);    /* unflushed: lost at the cut */
    memset(buf, 0xaa, sizeof(buf));
    assert_int_equal(tm_io_pwrite_all(io, buf, sizeof(buf), SECTOR), -EIO);
    assert_true(tm_io_fault_fired(io));
    assert_int_equal(tm_io_pwrite_all(io, "a", 1, 0), -EIO);
    tm_io_close(io);
    assert_int_equal(size_of(disk), 8 * SECTOR);
    assert_bytes(disk, 0, SECTOR, 0);
    assert_bytes(disk, SECTOR, 3 * SECTOR, 0xaa);
    assert_bytes(disk, 4 * SECTOR, 4 * SECTOR, 0);
    tm_io_close(disk);
}

/* A tear counts sectors from the file's sector boundaries: an unaligned
 * write's partial first sector is its first. */
static void
fault_tear_of_unaligned_write_stops_at_sector_boundary(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_WRITE, .after = 1, .action = TM_FAULT_TEAR,
        .tear_sectors = 2 });
    uint8_t buf[3 * SECTOR];

    memset(buf, 0xbb, sizeof(buf));
    assert_int_equal(tm_io_pwrite_all(io, buf, sizeof(buf), 100), -EIO);
    tm_io_close(io);
    assert_int_equal(size_of(disk), 2 * SECTOR);
    assert_bytes(disk, 0, 100, 0);
    assert_bytes(disk, 100, 2 * SECTOR - 100, 0xbb);
    tm_io_close(disk);
}

/* Runs 'pending' unflushed 4 KiB writes then cuts the power with 'seed';
 * returns the disk. */
static struct tm_io *
cut_with_seed(uint64_t seed)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_FLUSH, .after = 1, .action = TM_FAULT_POWER_CUT,
        .seed = seed });

    assert_non_null(io);
    fill(disk, 0, 8192, 0);
    fill(io, 0, 4096, 0x01);
    fill(io, 2048, 4096, 0x02);         /* overlaps: order matters */
    assert_int_equal(tm_io_flush(io), -EIO);
    tm_io_close(io);
    return disk;
}

static void
fault_seeded_cut_is_partial_and_deterministic(void **state)
{
    uint8_t a[8192], b[8192], c[8192];
    struct tm_io *d1 = cut_with_seed(12345);
    struct tm_io *d2 = cut_with_seed(12345);
    struct tm_io *d3 = cut_with_seed(777);
    unsigned landed = 0, lost = 0;

    assert_int_equal(tm_io_pread_all(d1, a, sizeof(a), 0), 0);
    assert_int_equal(tm_io_pread_all(d2, b, sizeof(b), 0), 0);
    assert_int_equal(tm_io_pread_all(d3, c, sizeof(c), 0), 0);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    /* Whole sectors land or not; some do, some don't. */
    for (size_t s = 0; s < sizeof(a) / SECTOR; s++) {
        for (size_t i = 1; i < SECTOR; i++)
            assert_int_equal(a[s * SECTOR + i], a[s * SECTOR]);
        if (a[s * SECTOR] == 0)
            lost++;
        else
            landed++;
    }
    assert_true(landed > 0);
    assert_true(lost > 0);
    tm_io_close(d1);
    tm_io_close(d2);
    tm_io_close(d3);

    /* Seed 0 drops everything. */
    d1 = cut_with_seed(0);
    assert_bytes(d1, 0, 8192, 0);
    tm_io_close(d1);
}

/* Sectors a seeded cut does not land keep what the disk held, also
 * between landed ones and past the old end (zeros); the file grows only
 * as far as the last landed sector. */
static void
fault_seeded_cut_keeps_unlanded_sectors_as_they_were(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_FLUSH, .after = 1, .action = TM_FAULT_POWER_CUT,
        .seed = 31337 });
    uint8_t buf[64 * 1024];
    unsigned landed = 0, kept = 0;
    uint64_t size, last = 0;

    fill(disk, 0, 8192, 0x11);
    fill(io, 100, sizeof(buf) - 200, 0x22);     /* unaligned both ends */
    assert_int_equal(tm_io_flush(io), -EIO);
    tm_io_close(io);
    size = size_of(disk);
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(tm_io_pread(disk, buf, sizeof(buf), 0), (int64_t)size);
    for (size_t s = 0; s < size / SECTOR + (size % SECTOR != 0); s++) {
        for (size_t i = s * SECTOR; i < (s + 1) * SECTOR && i < size; i++) {
            uint8_t old = i < 8192 ? 0x11 : 0;
            bool written = i >= 100 && i < sizeof(buf) - 100;

            if (buf[i] == 0x22 && written) {
                landed++;
                last = i + 1;
            } else if (buf[i] == old) {
                kept++;
            } else {
                fail_msg("byte %zu is %#x", i, buf[i]);
            }
        }
        /* A sector lands whole or not at all. */
        for (size_t i = s * SECTOR + 1; i < (s + 1) * SECTOR && i < size;
             i++)
            if (i > 100 && i < sizeof(buf) - 100)
                assert_int_equal(buf[i] == 0x22, buf[i - 1] == 0x22);
    }
    assert_true(landed > 0);
    assert_true(kept > 0);
    assert_true(size == 8192 || size == last);
    assert_true(size >= last);
    tm_io_close(disk);
}

static void
fault_truncate_is_pending_until_flush(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, NULL);
    uint8_t b[16];

    fill(disk, 0, 8192, 0x11);
    assert_int_equal(tm_io_truncate(io, 4096), 0);
    assert_int_equal(size_of(io), 4096);
    assert_int_equal(size_of(disk), 8192);
    assert_int_equal(tm_io_pread(io, b, sizeof(b), 4090), 6);
    assert_int_equal(tm_io_pread(io, b, sizeof(b), 4096), 0);
    /* Extending again must not bring the old bytes back. */
    fill(io, 6000, 10, 0x22);
    assert_int_equal(size_of(io), 6010);
    assert_bytes(io, 0, 4096, 0x11);
    assert_bytes(io, 4096, 6000 - 4096, 0);
    assert_bytes(io, 6000, 10, 0x22);
    assert_int_equal(tm_io_flush(io), 0);
    assert_int_equal(size_of(disk), 6010);
    assert_bytes(disk, 4096, 6000 - 4096, 0);
    assert_bytes(disk, 6000, 10, 0x22);
    tm_io_close(io);
    tm_io_close(disk);
}

static void
fault_truncate_and_punch_lost_at_power_cut(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_FLUSH, .after = 1, .action = TM_FAULT_POWER_CUT });

    fill(disk, 0, 8192, 0x11);
    assert_int_equal(tm_io_punch(io, 0, 1024), 0);
    assert_bytes(io, 0, 1024, 0);
    assert_int_equal(tm_io_truncate(io, 100), 0);
    assert_int_equal(tm_io_allocate(io, 0, 100000), 0);
    assert_int_equal(size_of(io), 100000);
    assert_int_equal(tm_io_flush(io), -EIO);
    tm_io_close(io);
    assert_int_equal(size_of(disk), 8192);
    assert_bytes(disk, 0, 8192, 0x11);
    tm_io_close(disk);
}

static void
fault_failed_flush_keeps_writes_pending(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
        .ops = TM_IO_FLUSH, .after = 1, .action = TM_FAULT_ERROR });

    fill(io, 0, 10, 9);
    assert_int_equal(tm_io_flush(io), -EIO);
    assert_int_equal(size_of(disk), 0);
    assert_bytes(io, 0, 10, 9);
    assert_int_equal(tm_io_flush(io), 0);
    assert_bytes(disk, 0, 10, 9);
    tm_io_close(io);
    tm_io_close(disk);
}

static void
fault_queries_on_other_backends_are_neutral(void **state)
{
    struct tm_io *disk = tm_io_mem_new();

    assert_false(tm_io_fault_fired(disk));
    assert_int_equal(tm_io_fault_count(disk), 0);
    assert_false(tm_io_fault_fired(NULL));
    assert_null(tm_io_fault_new(NULL, NULL));
    tm_io_close(disk);
}

/* ---- fault domains ------------------------------------------------------ */

/* One counter for every member: a cut fired through one member drops the
 * unflushed writes of all of them and kills all of them. */
static void
fault_domain_power_cut_hits_every_member(void **state)
{
    struct tm_io *da = tm_io_mem_new();
    struct tm_io *db = tm_io_mem_new();
    struct tm_fault_domain *d = tm_fault_domain_new(&(struct tm_fault){
        .ops = TM_IO_WRITE | TM_IO_FLUSH, .after = 5,
        .action = TM_FAULT_POWER_CUT });
    struct tm_io *a = tm_io_fault_new_in(da, d);
    struct tm_io *b = tm_io_fault_new_in(db, d);
    uint8_t c;

    assert_non_null(d);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(b->ops->name, "fault");
    fill(a, 0, 512, 0x11);                              /* 1 */
    fill(b, 0, 512, 0x21);                              /* 2 */
    assert_int_equal(tm_io_flush(b), 0);                /* 3: b only */
    fill(b, 512, 512, 0x22);                            /* 4 */
    assert_int_equal(tm_io_fault_count(a), 4);
    assert_int_equal(tm_fault_domain_count(d), 4);
    assert_false(tm_io_fault_fired(b));
    assert_int_equal(tm_io_flush(a), -EIO);             /* 5: the cut */
    assert_true(tm_io_fault_fired(a));
    assert_true(tm_io_fault_fired(b));
    assert_true(tm_fault_domain_fired(d));
    /* Both are dead, for every kind of operation. */
    assert_int_equal(tm_io_pread(b, &c, 1, 0), -EIO);
    assert_int_equal(tm_io_pwrite_all(b, "x", 1, 0), -EIO);
    assert_int_equal(tm_io_size(a, &(uint64_t){ 0 }), -EIO);
    assert_int_equal(tm_io_flush(b), -EIO);
    assert_int_equal(tm_io_fault_count(b), 5);
    tm_io_close(a);
    tm_io_close(b);
    tm_fault_domain_free(d);
    assert_int_equal(size_of(da), 0);   /* never flushed */
    assert_int_equal(size_of(db), 512); /* its flushed write only */
    assert_bytes(db, 0, 512, 0x21);
    tm_io_close(da);
    tm_io_close(db);
}

/* A member made after the cut is dead from the start; one closed before
 * the cut is not touched by it (its close already dropped its pending
 * writes, as a crash of that file alone). */
static void
fault_domain_members_join_and_leave(void **state)
{
    struct tm_io *da = tm_io_mem_new();
    struct tm_io *db = tm_io_mem_new();
    struct tm_io *dc = tm_io_mem_new();
    struct tm_fault_domain *d = tm_fault_domain_new(&(struct tm_fault){
        .ops = TM_IO_FLUSH, .after = 2, .action = TM_FAULT_POWER_CUT,
        .seed = 99 });
    struct tm_io *a = tm_io_fault_new_in(da, d);
    struct tm_io *b = tm_io_fault_new_in(db, d);
    struct tm_io *c;

    fill(a, 0, 4096, 0x31);
    assert_int_equal(tm_io_flush(a), 0);                /* 1 */
    fill(a, 4096, 4096, 0x32);
    tm_io_close(a);                     /* leaves: its pending write lost */
    fill(b, 0, 4096, 0x41);
    assert_int_equal(tm_io_flush(b), -EIO);             /* 2: the cut */
    c = tm_io_fault_new_in(dc, d);
    assert_non_null(c);
    assert_true(tm_io_fault_fired(c));
    assert_int_equal(tm_io_pwrite_all(c, "x", 1, 0), -EIO);
    tm_io_close(b);
    tm_io_close(c);
    tm_fault_domain_free(d);
    assert_int_equal(size_of(da), 4096);
    assert_bytes(da, 0, 4096, 0x31);
    assert_int_equal(size_of(dc), 0);
    tm_io_close(da);
    tm_io_close(db);
    tm_io_close(dc);
}

/* Makes the same unflushed writes through three members of a seeded
 * domain and through a private wrapper with the same fault, cuts the
 * power through the last member, then the private one, and returns the
 * four disks' bytes (8 KiB each) in 'out'. */
static void
domain_cut_with_seed(uint64_t seed, uint8_t out[4][8192])
{
    const struct tm_fault cut = {
        .ops = TM_IO_FLUSH, .after = 1, .action = TM_FAULT_POWER_CUT,
        .seed = seed,
    };
    struct tm_fault_domain *d = tm_fault_domain_new(&cut);
    struct tm_io *disk[4], *io[4];

    assert_non_null(d);
    for (int i = 0; i < 4; i++) {
        disk[i] = tm_io_mem_new();
        fill(disk[i], 0, 8192, 0);
        io[i] = i < 3 ? tm_io_fault_new_in(disk[i], d)
                      : tm_io_fault_new(disk[i], &cut);
        assert_non_null(io[i]);
        fill(io[i], 0, 8192, 0x5a);
    }
    tm_fault_domain_free(d);
    assert_int_equal(tm_io_flush(io[2]), -EIO);     /* cuts io 0..2 */
    assert_int_equal(tm_io_flush(io[3]), -EIO);     /* its own domain */
    for (int i = 0; i < 4; i++) {
        tm_io_close(io[i]);
        assert_int_equal(tm_io_pread_all(disk[i], out[i], 8192, 0), 0);
        tm_io_close(disk[i]);
    }
}

/* Each member lands its own deterministic subset; the first member's is
 * what a private wrapper with that seed lands. */
static void
fault_domain_seeded_cut_is_per_member(void **state)
{
    static uint8_t x[4][8192], y[4][8192];

    domain_cut_with_seed(4242, x);
    domain_cut_with_seed(4242, y);
    assert_memory_equal(x, y, sizeof(x));
    assert_memory_equal(x[0], x[3], 8192);
    assert_memory_not_equal(x[0], x[1], 8192);
    assert_memory_not_equal(x[1], x[2], 8192);
    for (int i = 0; i < 3; i++) {
        unsigned landed = 0, lost = 0;

        for (size_t s = 0; s < 8192 / SECTOR; s++) {
            if (x[i][s * SECTOR] == 0)
                lost++;
            else
                landed++;
        }
        assert_true(landed > 0);
        assert_true(lost > 0);
    }
    /* Seed 0 drops everything in every member. */
    domain_cut_with_seed(0, x);
    for (int i = 0; i < 4; i++)
        for (size_t k = 0; k < 8192; k++)
            assert_int_equal(x[i][k], 0);
}

/* A sticky error fired by one member fails the counted operations of
 * all; kinds outside the mask still work everywhere. */
static void
fault_domain_sticky_error_fails_every_member(void **state)
{
    struct tm_io *da = tm_io_mem_new();
    struct tm_io *db = tm_io_mem_new();
    struct tm_fault_domain *d = tm_fault_domain_new(&(struct tm_fault){
        .ops = TM_IO_WRITE, .after = 2, .action = TM_FAULT_ERROR,
        .err = ENOSPC, .sticky = true });
    struct tm_io *a = tm_io_fault_new_in(da, d);
    struct tm_io *b = tm_io_fault_new_in(db, d);

    tm_fault_domain_free(d);            /* the members keep it alive */
    fill(a, 0, 10, 1);
    assert_int_equal(tm_io_pwrite_all(b, "b", 1, 0), -ENOSPC);
    assert_int_equal(tm_io_pwrite_all(a, "a", 1, 0), -ENOSPC);
    assert_int_equal(tm_io_pwrite_all(b, "b", 1, 0), -ENOSPC);
    assert_true(tm_io_fault_fired(a));
    assert_int_equal(tm_io_flush(a), 0);
    assert_int_equal(tm_io_flush(b), 0);
    assert_int_equal(tm_io_fault_count(b), 4);
    tm_io_close(a);
    tm_io_close(b);
    assert_bytes(da, 0, 10, 1);
    assert_int_equal(size_of(db), 0);
    tm_io_close(da);
    tm_io_close(db);
}

/* A tear lands part of the firing write only; the other members just
 * lose their unflushed writes. */
static void
fault_domain_tear_tears_only_the_firing_write(void **state)
{
    struct tm_io *da = tm_io_mem_new();
    struct tm_io *db = tm_io_mem_new();
    struct tm_fault_domain *d = tm_fault_domain_new(&(struct tm_fault){
        .ops = TM_IO_WRITE, .after = 2, .action = TM_FAULT_TEAR,
        .tear_sectors = 2 });
    struct tm_io *a = tm_io_fault_new_in(da, d);
    struct tm_io *b = tm_io_fault_new_in(db, d);
    uint8_t buf[4 * SECTOR];

    fill(a, 0, 4 * SECTOR, 0x61);                       /* 1, unflushed */
    memset(buf, 0x71, sizeof(buf));
    assert_int_equal(tm_io_pwrite_all(b, buf, sizeof(buf), 0), -EIO);
    assert_int_equal(tm_io_pwrite_all(a, buf, 1, 0), -EIO);
    tm_io_close(a);
    tm_io_close(b);
    tm_fault_domain_free(d);
    assert_int_equal(size_of(da), 0);
    assert_int_equal(size_of(db), 2 * SECTOR);
    assert_bytes(db, 0, 2 * SECTOR, 0x71);
    tm_io_close(da);
    tm_io_close(db);
}

static void
fault_domain_null_arguments(void **state)
{
    struct tm_io *disk = tm_io_mem_new();
    struct tm_fault_domain *d = tm_fault_domain_new(NULL);
    struct tm_io *io;

    assert_non_null(d);
    assert_null(tm_io_fault_new_in(NULL, d));
    assert_null(tm_io_fault_new_in(disk, NULL));
    assert_false(tm_fault_domain_fired(NULL));
    assert_int_equal(tm_fault_domain_count(NULL), 0);
    tm_fault_domain_free(NULL);
    /* No fault: a plain shared volatile cache that counts nothing. */
    io = tm_io_fault_new_in(disk, d);
    fill(io, 0, 100, 3);
    assert_int_equal(size_of(disk), 0);
    assert_int_equal(tm_io_flush(io), 0);
    assert_bytes(disk, 0, 100, 3);
    assert_false(tm_fault_domain_fired(d));
    assert_int_equal(tm_fault_domain_count(d), 0);
    tm_fault_domain_free(d);
    tm_io_close(io);
    tm_io_close(disk);
}

/* A model workload: numbered 512-byte records, a flush after every third.
 * 'flushed' counts the records a completed flush covered. */
static int
workload(struct tm_io *io, unsigned *flushed)
{
    uint8_t rec[SECTOR];
    int rc;

    for (unsigned i = 0; i < 20; i++) {
        memset(rec, (int)(i + 1), sizeof(rec));
        rc = tm_io_pwrite_all(io, rec, sizeof(rec), (uint64_t)i * SECTOR);
        if (rc < 0)
            return rc;
        if (i % 3 == 2) {
            rc = tm_io_flush(io);
            if (rc < 0)
                return rc;
            *flushed = i + 1;
        }
    }
    rc = tm_io_flush(io);
    if (rc == 0)
        *flushed = 20;
    return rc;
}

/* The standard loop of STYLE.md §8, run over seeds too: every flushed
 * record survives a cut at any write or flush; any later record is
 * either intact or absent, sector by sector. */
static void
fault_crash_at_every_point_keeps_flushed_records(void **state)
{
    for (uint64_t seed = 0; seed < 4; seed++) {
        unsigned point;

        for (point = 1;; point++) {
            struct tm_io *disk = tm_io_mem_new();
            struct tm_io *io = tm_io_fault_new(disk, &(struct tm_fault){
                .ops = TM_IO_WRITE | TM_IO_FLUSH, .after = point,
                .action = TM_FAULT_POWER_CUT, .seed = seed });
            unsigned flushed = 0;
            int rc = workload(io, &flushed);
            bool cut = tm_io_fault_fired(io);
            uint8_t rec[SECTOR];

            tm_io_close(io);
            assert_true(rc == 0 || cut);
            for (unsigned i = 0; i < 20; i++) {
                int64_t n = tm_io_pread(disk, rec, sizeof(rec),
                                        (uint64_t)i * SECTOR);

                if (i < flushed) {
                    assert_int_equal(n, SECTOR);
                    assert_int_equal(rec[0], i + 1);
                } else if (n == SECTOR) {
                    assert_true(rec[0] == 0 || rec[0] == i + 1);
                }
            }
            tm_io_close(disk);
            if (!cut)
                break;
        }
        /* 20 writes + 7 flushes; the next point fires nothing. */
        assert_int_equal(point, 20 + 7 + 1);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fault_reads_see_pending_writes),
        cmocka_unit_test(fault_close_without_flush_loses_writes),
        cmocka_unit_test(fault_power_cut_keeps_only_flushed_writes),
        cmocka_unit_test(fault_power_cut_on_flush_drops_its_writes),
        cmocka_unit_test(fault_nth_write_fails_once),
        cmocka_unit_test(fault_sticky_enospc_fails_every_later_counted_op),
        cmocka_unit_test(fault_counts_reads_when_asked),
        cmocka_unit_test(fault_tear_lands_exactly_n_sectors),
        cmocka_unit_test(
            fault_tear_of_unaligned_write_stops_at_sector_boundary),
        cmocka_unit_test(fault_seeded_cut_is_partial_and_deterministic),
        cmocka_unit_test(
            fault_seeded_cut_keeps_unlanded_sectors_as_they_were),
        cmocka_unit_test(fault_truncate_is_pending_until_flush),
        cmocka_unit_test(fault_truncate_and_punch_lost_at_power_cut),
        cmocka_unit_test(fault_failed_flush_keeps_writes_pending),
        cmocka_unit_test(fault_queries_on_other_backends_are_neutral),
        cmocka_unit_test(fault_crash_at_every_point_keeps_flushed_records),
        cmocka_unit_test(fault_domain_power_cut_hits_every_member),
        cmocka_unit_test(fault_domain_members_join_and_leave),
        cmocka_unit_test(fault_domain_seeded_cut_is_per_member),
        cmocka_unit_test(fault_domain_sticky_error_fails_every_member),
        cmocka_unit_test(fault_domain_tear_tears_only_the_firing_write),
        cmocka_unit_test(fault_domain_null_arguments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
