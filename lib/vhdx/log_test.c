/* SPDX-License-Identifier: MIT */
/* log_test.c - the log writer and replay (log.c) against in-memory files:
 * commit then replay reproduces the updates, wrapped entries, torn and
 * foreign entries, the file-size rules of MS-VHDX 2.3.3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vhdx_int.h"
#include "io_testutil.h"

#define MiB VHDX_MiB
#define LOG_OFF (1 * MiB)
#define LOG_LEN ((uint32_t)MiB)
#define FILE_SIZE (8 * MiB)

static const struct tm_guid guid_a = {{ 0xa1, 0xa2, 0xa3, 0xa4, 5, 6, 7, 8,
                                        9, 10, 11, 12, 13, 14, 15, 16 }};
static const struct tm_guid guid_b = {{ 0xb1, 0xb2, 0xb3, 0xb4, 5, 6, 7, 8,
                                        9, 10, 11, 12, 13, 14, 15, 16 }};

/* A FILE_SIZE file whose bytes outside the log are 0xEE. */
static struct tm_io *
new_disk(void)
{
    struct tm_io *io = tm_io_mem_new();
    uint8_t *buf = malloc(FILE_SIZE);

    assert_non_null(io);
    assert_non_null(buf);
    memset(buf, 0xEE, FILE_SIZE);
    memset(buf + LOG_OFF, 0, LOG_LEN);
    assert_int_equal(tm_io_pwrite_all(io, buf, FILE_SIZE, 0), 0);
    free(buf);
    return io;
}

static struct vhdx_header
header_for(const struct tm_guid *g)
{
    struct vhdx_header h = { 0 };

    h.seq = 1;
    h.version = 1;
    h.log_guid = *g;
    h.log_offset = LOG_OFF;
    h.log_length = LOG_LEN;
    return h;
}

static void
fill_sector(uint8_t *sector, unsigned seed)
{
    for (unsigned i = 0; i < VHDX_LOG_SECTOR; i++)
        sector[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static void
assert_sector(struct tm_io *io, uint64_t off, const uint8_t *want)
{
    uint8_t got[VHDX_LOG_SECTOR];

    assert_int_equal(tm_io_pread_all(io, got, sizeof(got), off), 0);
    assert_memory_equal(got, want, sizeof(got));
}

static void
assert_filled(struct tm_io *io, uint64_t off, uint64_t len, uint8_t v)
{
    uint8_t got[VHDX_LOG_SECTOR];

    for (uint64_t o = off; o < off + len; o += sizeof(got)) {
        assert_int_equal(tm_io_pread_all(io, got, sizeof(got), o), 0);
        for (size_t i = 0; i < sizeof(got); i++)
            if (got[i] != v)
                fail_msg("byte 0x%llx is 0x%02x, want 0x%02x",
                         (unsigned long long)(o + i), got[i], v);
    }
}

/* Undoes the in-place apply of the updates: the crash happened after the
 * log flush, before the apply reached the disk. */
static void
undo(struct tm_io *io, const struct vhdx_log_update *u, size_t n)
{
    uint8_t junk[VHDX_LOG_SECTOR];

    memset(junk, 0xEE, sizeof(junk));
    for (size_t i = 0; i < n; i++)
        for (uint64_t o = 0; o < u[i].len; o += sizeof(junk))
            assert_int_equal(tm_io_pwrite_all(io, junk, sizeof(junk),
                                              u[i].file_off + o), 0);
}

/* Recomputes the checksum of the entry at log offset 'pos'. */
static void
reseal_entry(struct tm_io *io, uint32_t pos)
{
    uint8_t hdr[64];
    uint8_t *buf;
    uint32_t len;

    assert_int_equal(tm_io_pread_all(io, hdr, sizeof(hdr), LOG_OFF + pos), 0);
    len = tm_le32(hdr + 8);
    assert_true(pos + len <= LOG_LEN);
    buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(tm_io_pread_all(io, buf, len, LOG_OFF + pos), 0);
    tm_put_le32(buf + 4, 0);
    tm_put_le32(buf + 4, tm_crc32c(0, buf, len));
    assert_int_equal(tm_io_pwrite_all(io, buf, len, LOG_OFF + pos), 0);
    free(buf);
}

static void
patch_le64(struct tm_io *io, uint64_t off, uint64_t v)
{
    uint8_t b[8];

    tm_put_le64(b, v);
    assert_int_equal(tm_io_pwrite_all(io, b, 8, off), 0);
}

static void
patch_le32(struct tm_io *io, uint64_t off, uint32_t v)
{
    uint8_t b[4];

    tm_put_le32(b, v);
    assert_int_equal(tm_io_pwrite_all(io, b, 4, off), 0);
}

/* ---- tests --------------------------------------------------------------- */

static void
log_max_updates_fills_the_log(void **state)
{
    struct vhdx_log lg;

    vhdx_log_init(&lg, NULL, LOG_OFF, LOG_LEN, &guid_a);
    /* 256 sectors: 2 descriptor sectors + 254 data sectors. */
    assert_int_equal(vhdx_log_max_updates(&lg), 254);
    vhdx_log_init(&lg, NULL, LOG_OFF, 2 * LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_max_updates(&lg), 508);
}

static void
log_replays_committed_updates(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t s[3][VHDX_LOG_SECTOR];
    struct vhdx_log_update u[4] = {
        { 4 * MiB, 4096, s[0] },
        { 4 * MiB + 8192, 4096, s[1] },
        { 0x30000, 4096, s[2] },            /* a region table sector */
        { 5 * MiB, 3 * 4096, NULL },
    };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };

    for (int i = 0; i < 3; i++)
        fill_sector(s[i], (unsigned)i + 1);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, u, 4, FILE_SIZE, FILE_SIZE), 0);
    assert_int_equal(lg.next_seq, 2);
    assert_int_equal(lg.write_pos, 4 * 4096);
    /* Applied in place. */
    assert_sector(io, 4 * MiB, s[0]);
    assert_filled(io, 5 * MiB, 3 * 4096, 0);
    undo(io, u, 4);
    assert_filled(io, 5 * MiB, 3 * 4096, 0xEE);
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_true(res.replayed);
    assert_int_equal(res.head_seq, 1);
    assert_int_equal(res.entries, 1);
    assert_int_equal(res.flushed_file_off, FILE_SIZE);
    assert_int_equal(res.last_file_off, FILE_SIZE);
    for (int i = 0; i < 3; i++)
        assert_sector(io, u[i].file_off, s[i]);
    assert_filled(io, 5 * MiB, 3 * 4096, 0);
    assert_filled(io, 5 * MiB + 3 * 4096, 4096, 0xEE);
    tm_io_close(io);
}

static void
log_replays_into_a_separate_file(void **state)
{
    struct tm_io *io = new_disk();
    struct tm_io *dst = tm_io_mem_new();
    uint8_t s[VHDX_LOG_SECTOR];
    struct vhdx_log_update u = { 6 * MiB, 4096, s };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };
    uint64_t size;

    fill_sector(s, 9);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, &u, 1, FILE_SIZE, FILE_SIZE), 0);
    assert_int_equal(vhdx_log_replay(io, dst, &h, &res, &err), 0);
    assert_sector(dst, 6 * MiB, s);
    assert_int_equal(tm_io_size(dst, &size), 0);
    assert_int_equal(size, FILE_SIZE);
    tm_io_close(dst);
    tm_io_close(io);
}

static void
log_replays_wrapped_entry(void **state)
{
    struct tm_io *io = new_disk();
    enum { PER = 10, COMMITS = 24 };
    static uint8_t s[PER][VHDX_LOG_SECTOR];
    struct vhdx_log_update u[PER];
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };
    uint32_t before = 0;

    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    for (unsigned c = 0; c < COMMITS; c++) {
        for (unsigned i = 0; i < PER; i++) {
            fill_sector(s[i], c * 100 + i);
            u[i] = (struct vhdx_log_update){ 4 * MiB + (c % 3) * 65536 +
                                             i * 4096, 4096, s[i] };
        }
        before = lg.write_pos;
        assert_int_equal(vhdx_log_commit(&lg, u, PER, FILE_SIZE, FILE_SIZE),
                         0);
    }
    /* Each entry is 11 sectors: the 24th starts at sector 253 and wraps. */
    assert_int_equal(before, 253 * 4096);
    assert_true(lg.write_pos < before);
    undo(io, u, PER);
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_int_equal(res.head_seq, COMMITS);
    assert_int_equal(res.entries, 1);
    for (unsigned i = 0; i < PER; i++)
        assert_sector(io, u[i].file_off, s[i]);
    tm_io_close(io);
}

static void
log_torn_last_entry_falls_back_to_previous(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    uint8_t b[VHDX_LOG_SECTOR];
    struct vhdx_log_update ua = { 4 * MiB, 4096, a };
    struct vhdx_log_update ub = { 4 * MiB, 4096, b };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };
    uint8_t byte;

    fill_sector(a, 1);
    fill_sector(b, 2);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE), 0);
    assert_int_equal(vhdx_log_commit(&lg, &ub, 1, FILE_SIZE, FILE_SIZE), 0);
    /* Entry 2 starts at 8 KiB; tear a byte of its data sector. */
    assert_int_equal(tm_io_pread_all(io, &byte, 1, LOG_OFF + 12288 + 100),
                     0);
    byte ^= 0x5A;
    assert_int_equal(tm_io_pwrite_all(io, &byte, 1, LOG_OFF + 12288 + 100),
                     0);
    undo(io, &ua, 1);
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_int_equal(res.head_seq, 1);
    assert_sector(io, 4 * MiB, a);
    tm_io_close(io);
}

static void
log_replays_multi_entry_sequence(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    uint8_t b[VHDX_LOG_SECTOR];
    struct vhdx_log_update ua = { 4 * MiB, 4096, a };
    struct vhdx_log_update ub = { 5 * MiB, 4096, b };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };

    fill_sector(a, 3);
    fill_sector(b, 4);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE), 0);
    assert_int_equal(vhdx_log_commit(&lg, &ub, 1, FILE_SIZE, FILE_SIZE), 0);
    /* Entry 2's Tail points at entry 1: both are to be replayed. */
    patch_le32(io, LOG_OFF + 8192 + 12, 0);
    reseal_entry(io, 8192);
    undo(io, &ua, 1);
    undo(io, &ub, 1);
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_int_equal(res.head_seq, 2);
    assert_int_equal(res.entries, 2);
    assert_sector(io, 4 * MiB, a);
    assert_sector(io, 5 * MiB, b);
    tm_io_close(io);
}

static void
log_head_tail_outside_sequence_is_corrupt(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    uint8_t b[VHDX_LOG_SECTOR];
    struct vhdx_log_update ua = { 4 * MiB, 4096, a };
    struct vhdx_log_update ub = { 4 * MiB, 4096, b };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };

    fill_sector(a, 5);
    fill_sector(b, 6);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE), 0);
    assert_int_equal(vhdx_log_commit(&lg, &ub, 1, FILE_SIZE, FILE_SIZE), 0);
    /* Entry 2 claims a tail where nothing of its sequence is.  MS-VHDX
     * 2.3.3 extends a candidate sequence greedily, so entry 1 is never
     * judged alone: no valid sequence remains. */
    patch_le32(io, LOG_OFF + 8192 + 12, 0x80000);
    reseal_entry(io, 8192);
    assert_err(vhdx_log_replay(io, io, &h, &res, &err), &err, TM_E_CORRUPT,
               "log: no valid entry sequence");
    tm_io_close(io);
}

static void
log_ignores_entries_of_another_guid(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    uint8_t b[VHDX_LOG_SECTOR];
    struct vhdx_log_update ua = { 4 * MiB, 4096, a };
    struct vhdx_log_update ub = { 4 * MiB, 4096, b };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log stale;
    struct vhdx_log lg;
    struct tm_err err = { 0 };

    fill_sector(a, 7);
    fill_sector(b, 8);
    /* A previous open (GUID B) left three entries with higher numbers. */
    vhdx_log_init(&stale, io, LOG_OFF, LOG_LEN, &guid_b);
    stale.next_seq = 1000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(vhdx_log_commit(&stale, &ub, 1, FILE_SIZE,
                                         FILE_SIZE), 0);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    lg.write_pos = stale.write_pos;
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE), 0);
    undo(io, &ua, 1);
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_int_equal(res.head_seq, 1);
    assert_sector(io, 4 * MiB, a);
    /* Only foreign entries: corrupt. */
    h = header_for(&guid_b);
    h.log_guid.b[15] ^= 1;
    assert_err(vhdx_log_replay(io, io, &h, &res, &err), &err, TM_E_CORRUPT,
               "log: no valid entry sequence for log GUID b4b3b2b1-");
    assert_false(res.replayed);
    tm_io_close(io);
}

static void
log_zero_guid_means_no_replay(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    struct vhdx_log_update ua = { 4 * MiB, 4096, a };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };

    fill_sector(a, 1);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE), 0);
    undo(io, &ua, 1);
    memset(&h.log_guid, 0, sizeof(h.log_guid));
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_false(res.replayed);
    assert_filled(io, 4 * MiB, 4096, 0xEE);
    tm_io_close(io);
}

static void
log_refuses_file_shorter_than_flushed_offset(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    struct vhdx_log_update ua = { 2 * MiB, 4096, a };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };

    fill_sector(a, 1);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    /* 8 MiB + 5 bytes: FlushedFileOffset rounds down to 8 MiB. */
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE + 5, FILE_SIZE),
                     0);
    assert_int_equal(tm_io_truncate(io, FILE_SIZE), 0);
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_int_equal(res.flushed_file_off, FILE_SIZE);
    assert_int_equal(tm_io_truncate(io, 3 * MiB), 0);
    assert_err(vhdx_log_replay(io, io, &h, &res, &err), &err,
               TM_E_TRUNCATED, "log: file is 0x300000 bytes, shorter");
    assert_int_equal(tm_io_truncate(io, MiB + 4096), 0);
    assert_err(vhdx_log_replay(io, io, &h, &res, &err), &err,
               TM_E_TRUNCATED, "log: file ends at 0x101000 before the log");
    tm_io_close(io);
}

static void
log_extends_file_to_last_offset(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    struct vhdx_log_update u[2] = {
        { 4 * MiB, 4096, a },
        { 9 * MiB, 2 * MiB, NULL },     /* zeros past the end */
    };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };
    uint64_t size;

    fill_sector(a, 1);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, u, 2, FILE_SIZE,
                                     20 * MiB + 5), 0);
    /* The crash lost the growth: back to the old size. */
    assert_int_equal(tm_io_truncate(io, FILE_SIZE), 0);
    undo(io, u, 1);
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_int_equal(res.last_file_off, 21 * MiB);
    assert_int_equal(tm_io_size(io, &size), 0);
    assert_int_equal(size, 21 * MiB);
    assert_sector(io, 4 * MiB, a);
    assert_filled(io, 9 * MiB, 2 * MiB, 0);
    tm_io_close(io);
}

static void
log_commit_splits_large_update_sets(void **state)
{
    struct tm_io *io = new_disk();
    enum { N = 300 };
    static uint8_t s[N][VHDX_LOG_SECTOR];
    static struct vhdx_log_update u[N];
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };

    for (unsigned i = 0; i < N; i++) {
        fill_sector(s[i], i);
        u[i] = (struct vhdx_log_update){ 2 * MiB + i * 4096ull, 4096, s[i] };
    }
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, u, N, FILE_SIZE, FILE_SIZE), 0);
    assert_int_equal(lg.next_seq, 3);
    for (unsigned i = 0; i < N; i++)
        assert_sector(io, u[i].file_off, s[i]);
    /* Only the last entry (updates 254..299) is still pending. */
    undo(io, u, N);
    assert_int_equal(vhdx_log_replay(io, io, &h, &res, &err), 0);
    assert_int_equal(res.head_seq, 2);
    assert_filled(io, u[253].file_off, 4096, 0xEE);
    for (unsigned i = 254; i < N; i++)
        assert_sector(io, u[i].file_off, s[i]);
    tm_io_close(io);
}

static void
log_commit_refuses_bad_updates(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR] = { 0 };
    struct vhdx_log_update bad[] = {
        { 4 * MiB + 512, 4096, a },
        { 4 * MiB, 8192, a },
        { 4 * MiB, 100, NULL },
        { 4 * MiB, 0, NULL },
        { 1ull << 50, 4096, a },
    };
    struct vhdx_log lg;

    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vhdx_log_commit(&lg, &bad[i], 1, FILE_SIZE,
                                         FILE_SIZE), TM_E_INVALID);
    assert_int_equal(lg.next_seq, 1);
    tm_io_close(io);
}

static void
log_refuses_absurd_target(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    struct vhdx_log_update ua = { 4 * MiB, 4096, a };
    struct vhdx_log_update uz = { 4 * MiB, 4096, NULL };
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct vhdx_log lg;
    struct tm_err err = { 0 };

    fill_sector(a, 1);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE), 0);
    patch_le64(io, LOG_OFF + 64 + 16, 1ull << 50);
    reseal_entry(io, 0);
    assert_err(vhdx_log_replay(io, io, &h, &res, &err), &err, TM_E_CORRUPT,
               "log: entry 1 descriptor 0 targets 0x4000000000000");
    /* A zero run of 1 TiB. */
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, &uz, 1, FILE_SIZE, FILE_SIZE), 0);
    patch_le64(io, LOG_OFF + 64 + 8, 1ull << 40);
    reseal_entry(io, 0);
    assert_err(vhdx_log_replay(io, io, &h, &res, &err), &err, TM_E_CORRUPT,
               "log: entry 1 descriptor 0 targets 0x400000 length");
    /* A target inside the log itself. */
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE), 0);
    patch_le64(io, LOG_OFF + 64 + 16, LOG_OFF + 8192);
    reseal_entry(io, 0);
    assert_err(vhdx_log_replay(io, io, &h, &res, &err), &err, TM_E_CORRUPT,
               "log: entry 1 descriptor 0 targets 0x102000 inside the log");
    tm_io_close(io);
}

static void
log_refuses_oversized_log(void **state)
{
    struct tm_io *io = new_disk();
    struct vhdx_header h = header_for(&guid_a);
    struct vhdx_log_replay_result res;
    struct tm_err err = { 0 };

    h.log_length = 512u << 20;
    assert_err(vhdx_log_replay(io, io, &h, &res, &err), &err,
               TM_E_UNSUPPORTED, "log: length 512 MiB exceeds");
    tm_io_close(io);
}

struct scan_count {
    unsigned n;
    uint64_t max_seq;
};

static void
count_entry(void *user, const struct vhdx_log_entry_info *e)
{
    struct scan_count *c = user;

    c->n++;
    if (e->seq > c->max_seq)
        c->max_seq = e->seq;
}

static void
log_scan_reports_every_sealed_entry(void **state)
{
    struct tm_io *io = new_disk();
    uint8_t a[VHDX_LOG_SECTOR];
    struct vhdx_log_update ua = { 4 * MiB, 4096, a };
    struct vhdx_log lg;
    struct tm_err err = { 0 };
    struct scan_count c = { 0 };

    fill_sector(a, 1);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_a);
    for (int i = 0; i < 5; i++)
        assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE),
                         0);
    vhdx_log_init(&lg, io, LOG_OFF, LOG_LEN, &guid_b);
    lg.write_pos = 5 * 8192;
    assert_int_equal(vhdx_log_commit(&lg, &ua, 1, FILE_SIZE, FILE_SIZE), 0);
    assert_int_equal(vhdx_log_scan(io, LOG_OFF, LOG_LEN, count_entry, &c,
                                   &err), 0);
    assert_int_equal(c.n, 6);
    assert_int_equal(c.max_seq, 5);
    tm_io_close(io);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_max_updates_fills_the_log),
        cmocka_unit_test(log_replays_committed_updates),
        cmocka_unit_test(log_replays_into_a_separate_file),
        cmocka_unit_test(log_replays_wrapped_entry),
        cmocka_unit_test(log_torn_last_entry_falls_back_to_previous),
        cmocka_unit_test(log_replays_multi_entry_sequence),
        cmocka_unit_test(log_head_tail_outside_sequence_is_corrupt),
        cmocka_unit_test(log_ignores_entries_of_another_guid),
        cmocka_unit_test(log_zero_guid_means_no_replay),
        cmocka_unit_test(log_refuses_file_shorter_than_flushed_offset),
        cmocka_unit_test(log_extends_file_to_last_offset),
        cmocka_unit_test(log_commit_splits_large_update_sets),
        cmocka_unit_test(log_commit_refuses_bad_updates),
        cmocka_unit_test(log_refuses_absurd_target),
        cmocka_unit_test(log_refuses_oversized_log),
        cmocka_unit_test(log_scan_reports_every_sealed_entry),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
