/* SPDX-License-Identifier: MIT */
/* sidecar_fuzz.c - libFuzzer target: arbitrary bytes as a disk's .rct and
 * .mrt, opened with a fixed binding, then marked, sealed, queried,
 * persisted, closed and reopened.  Nothing may crash, leak or read out of
 * bounds; an open either fails with a clean code or yields a handle that
 * works.
 *
 * Input: u32 n, then n bytes of .rct and the rest as .mrt (when n fits;
 * otherwise everything is the .rct and the .mrt is empty).  Bit 31 of n
 * asks for checksums to be fixed up first (both .rct header slots, the
 * body each names, the .mrt header and its bitmap sectors), so the fuzzer
 * gets past the CRCs to the field checks.  The seeds in
 * tests/corpus/sidecar/ are pairs written by rct_test.c
 * (TM_RCT_WRITE_CORPUS=dir), with the binding below. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rct_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tm_rct_binding
fuzz_binding(void)
{
    struct tm_rct_binding b = { .virtual_size = (8u << 20) + (5u << 10) };

    for (int i = 0; i < 16; i++)
        b.data_write_guid.b[i] = (uint8_t)(i + 1);
    return b;
}

static void
fix_crc(uint8_t *p, size_t len, size_t field)
{
    tm_put_le32(p + field, 0);
    tm_put_le32(p + field, tm_crc32c(0, p, len));
}

static void
fix_rct(uint8_t *r, size_t n)
{
    for (size_t slot = 0; slot < 2; slot++) {
        uint8_t *h = r + slot * RCT_SLOT_BYTES;
        uint64_t off, len;

        if (n < (slot + 1) * RCT_SLOT_BYTES)
            break;
        off = tm_le64(h + 72);
        len = tm_le64(h + 80);
        if (off <= n && len <= n - off)
            tm_put_le32(h + 88, tm_crc32c(0, r + off, len));
        fix_crc(h, RCT_SLOT_BYTES, 8);
    }
}

static void
fix_mrt(uint8_t *m, size_t n)
{
    if (n >= RCT_MRT_HDR_BYTES)
        fix_crc(m, RCT_MRT_HDR_BYTES, 8);
    for (size_t off = RCT_MRT_HDR_BYTES; off + 4096 <= n; off += 4096)
        fix_crc(m + off, 4096, 0);
}

static struct tm_io *
mem_with(const uint8_t *p, size_t n)
{
    struct tm_io *io = tm_io_mem_new();

    if (io == NULL)
        abort();
    if (n > 0 && tm_io_pwrite_all(io, p, n, 0) != 0)
        abort();
    return io;
}

static void
exercise(struct tm_io *rm, struct tm_io *mm, const uint8_t *data,
         size_t size)
{
    struct tm_rct_binding b = fuzz_binding();
    enum tm_rct_open_state st;
    struct tm_range r[8];
    char id[TM_RCT_ID_MAX + 1], cur[TM_RCT_ID_MAX + 1];
    struct tm_err err = { 0 };
    struct tm_rct_info info;
    struct tm_rct *t;
    uint64_t processed;
    bool newer;
    size_t n;
    int rc;

    rc = tm_rct_open(tm_io_borrow_new(rm), tm_io_borrow_new(mm), &b, &t,
                     &st, &err);
    if (rc != 0) {
        if (t != NULL || (rc != TM_E_UNSUPPORTED && rc != TM_E_CORRUPT &&
                          rc != -ENOMEM))
            abort();
        return;
    }
    if (tm_rct_state(t, cur, &newer) != 0)
        abort();
    if (cur[0] != '\0') {
        n = 8;
        rc = tm_rct_query(t, cur, NULL, 0, b.virtual_size, r, &n,
                          &processed);
        if (rc != 0 && rc != TM_E_RCT_DISABLED && rc != TM_E_RCT_MISSING)
            abort();
    }
    /* Offsets from the input, so marks land all over. */
    for (size_t i = 0; i + 8 <= size && i < 64; i += 8) {
        uint64_t off = tm_le32(data + i) % b.virtual_size;
        uint64_t len = tm_le32(data + i + 4) % (b.virtual_size - off + 1);

        if (tm_rct_mark(t, off, len) != 0)
            abort();
    }
    if (tm_rct_seal(t, id) != 0)
        abort();
    (void)tm_rct_mark(t, b.virtual_size - 1, 1);
    if (cur[0] != '\0') {
        n = 1;
        rc = tm_rct_query(t, cur, id, 4096, b.virtual_size, r, &n,
                          &processed);
        if (rc != 0 && rc != TM_E_RCT_DISABLED && rc != TM_E_RCT_MISSING)
            abort();
    }
    if (tm_rct_get_info(t, &info) != 0 ||
        tm_rct_persist(t, &b, true) != 0 || tm_rct_close(t, &b) != 0)
        abort();
    /* What we wrote must open clean and still know the ID. */
    rc = tm_rct_open(tm_io_borrow_new(rm), tm_io_borrow_new(mm), &b, &t,
                     &st, &err);
    if (rc != 0 || st != TM_RCT_CLEAN)
        abort();
    n = 8;
    rc = tm_rct_query(t, id, NULL, 0, b.virtual_size, r, &n, &processed);
    if (rc != 0 && rc != TM_E_RCT_DISABLED)
        abort();
    tm_rct_free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *rp = data, *mp = NULL;
    size_t rn = size, mn = 0;
    bool fix = false;
    uint8_t *r, *m;
    struct tm_io *rm, *mm;

    if (size >= 4) {
        uint32_t n = tm_le32(data) & 0x7fffffffu;

        fix = (tm_le32(data) >> 31) != 0;
        if (n <= size - 4) {
            rp = data + 4;
            rn = n;
            mp = data + 4 + n;
            mn = size - 4 - n;
        }
    }
    r = malloc(rn + 1);
    m = malloc(mn + 1);
    if (r == NULL || m == NULL)
        abort();
    memcpy(r, rp, rn);
    if (mn > 0)
        memcpy(m, mp, mn);
    if (fix) {
        fix_rct(r, rn);
        fix_mrt(m, mn);
    }
    rm = mem_with(r, rn);
    mm = mem_with(m, mn);
    exercise(rm, mm, data, size);
    tm_io_close(rm);
    tm_io_close(mm);
    /* The whole input as a lone .rct, no .mrt. */
    rm = mem_with(data, size);
    mm = mem_with(NULL, 0);
    exercise(rm, mm, data, size);
    tm_io_close(rm);
    tm_io_close(mm);
    free(r);
    free(m);
    return 0;
}
