/* SPDX-License-Identifier: MIT */
/* format_test.c - round trips and validation of every fixed VHDX structure
 * (format.c), the known GUIDs, header selection and BAT geometry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "vhdx_int.h"
#include "io_testutil.h"

#define MiB VHDX_MiB

/* ---- GUIDs --------------------------------------------------------------- */

static void
guid_text_is(const struct tm_guid *g, const char *want)
{
    char buf[TM_GUID_STR_LEN + 1];

    tm_guid_format(g, buf);
    if (strcasecmp(buf, want) != 0)
        fail_msg("guid %s, want %s", buf, want);
}

static void
known_guids_match_spec(void **state)
{
    static const uint8_t bat[16] = { 0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6,
        0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08 };
    static const uint8_t lsec[16] = { 0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9,
        0x09, 0x47, 0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f };

    assert_memory_equal(VHDX_GUID_BAT.b, bat, 16);
    assert_memory_equal(VHDX_GUID_LOGICAL_SECTOR.b, lsec, 16);
    guid_text_is(&VHDX_GUID_BAT, "2DC27766-F623-4200-9D64-115E9BFD4A08");
    guid_text_is(&VHDX_GUID_METADATA, "8B7CA206-4790-4B9A-B8FE-575F050F886E");
    guid_text_is(&VHDX_GUID_FILE_PARAMS,
                 "CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
    guid_text_is(&VHDX_GUID_VIRTUAL_SIZE,
                 "2FA54224-CD1B-4876-B211-5DBED83BF4B8");
    guid_text_is(&VHDX_GUID_VIRTUAL_DISK_ID,
                 "BECA12AB-B2E6-4523-93EF-C309E000C746");
    guid_text_is(&VHDX_GUID_LOGICAL_SECTOR,
                 "8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
    guid_text_is(&VHDX_GUID_PHYSICAL_SECTOR,
                 "CDA348C7-445D-4471-9CC9-E9885251C556");
    guid_text_is(&VHDX_GUID_PARENT_LOCATOR,
                 "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
    guid_text_is(&VHDX_GUID_LOCATOR_TYPE_VHDX,
                 "B04AEFB7-D19E-4A81-B789-25B8E9445913");
}

/* ---- file type identifier ---------------------------------------------- */

static void
fti_round_trips_ascii_and_unicode(void **state)
{
    static uint8_t buf[VHDX_FTI_BYTES];
    const char *names[] = { "QEMU v7.2.22", "d2v",
                            "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac", "" };
    char out[256];
    struct tm_err err = { 0 };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        vhdx_fti_encode(names[i], buf);
        assert_memory_equal(buf, "vhdxfile", 8);
        assert_int_equal(vhdx_fti_decode(buf, sizeof(buf), out, sizeof(out),
                                         &err), 0);
        assert_string_equal(out, names[i]);
    }
    /* UTF-16LE on disk: 'Q' then 0. */
    vhdx_fti_encode("Q", buf);
    assert_int_equal(buf[8], 'Q');
    assert_int_equal(buf[9], 0);
}

static void
fti_truncates_and_replaces_bad_units(void **state)
{
    static uint8_t buf[VHDX_FTI_BYTES];
    char out[8];
    char big[600];
    struct tm_err err = { 0 };

    vhdx_fti_encode("abcdefghijk", buf);
    assert_int_equal(vhdx_fti_decode(buf, sizeof(buf), out, sizeof(out),
                                     &err), 0);
    assert_string_equal(out, "abcdefg");
    /* An unpaired high surrogate becomes U+FFFD. */
    memset(buf + 8, 0, 16);
    tm_put_le16(buf + 8, 0xD800);
    tm_put_le16(buf + 10, 'x');
    assert_int_equal(vhdx_fti_decode(buf, sizeof(buf), out, sizeof(out),
                                     &err), 0);
    assert_string_equal(out, "\xef\xbf\xbdx");
    /* A creator longer than the field is cut, keeping a terminator. */
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    vhdx_fti_encode(big, buf);
    assert_int_equal(tm_le16(buf + 8 + 2 * 254), 'z');
    assert_int_equal(tm_le16(buf + 8 + 2 * 255), 0);
}

static void
fti_refuses_bad_signature(void **state)
{
    static uint8_t buf[VHDX_FTI_BYTES];
    char out[16];
    struct tm_err err = { 0 };

    vhdx_fti_encode("x", buf);
    buf[0] = 'V';
    assert_err(vhdx_fti_decode(buf, sizeof(buf), out, sizeof(out), &err),
               &err, TM_E_CORRUPT, "file type identifier: signature");
    assert_err(vhdx_fti_decode(buf, 4, out, sizeof(out), &err), &err,
               TM_E_CORRUPT, "file type identifier:");
}

/* ---- headers ------------------------------------------------------------- */

static struct vhdx_header
sample_header(uint64_t seq)
{
    struct vhdx_header h = { 0 };

    h.seq = seq;
    for (int i = 0; i < 16; i++) {
        h.file_write_guid.b[i] = (uint8_t)(i + 1);
        h.data_write_guid.b[i] = (uint8_t)(0x40 + i);
    }
    h.version = 1;
    h.log_length = 1 * MiB;
    h.log_offset = 1 * MiB;
    return h;
}

static void
header_round_trips(void **state)
{
    uint8_t buf[VHDX_HEADER_BYTES];
    uint8_t copy[VHDX_HEADER_BYTES];
    struct vhdx_header h = sample_header(7);
    struct vhdx_header d;
    struct tm_err err = { 0 };

    h.log_guid.b[3] = 9;
    vhdx_header_encode(&h, buf);
    assert_memory_equal(buf, "head", 4);
    memcpy(copy, buf, sizeof(buf));
    assert_int_equal(vhdx_header_decode(buf, sizeof(buf), &d, &err), 0);
    assert_memory_equal(buf, copy, sizeof(buf));        /* not modified */
    assert_memory_equal(&d, &h, sizeof(h));
}

static void
header_refuses_bad_checksum(void **state)
{
    uint8_t buf[VHDX_HEADER_BYTES];
    struct vhdx_header h = sample_header(1);
    struct vhdx_header d;
    struct tm_err err = { 0 };

    vhdx_header_encode(&h, buf);
    buf[4000] ^= 1;
    assert_err(vhdx_header_decode(buf, sizeof(buf), &d, &err), &err,
               TM_E_CORRUPT, "header: checksum");
    buf[4000] ^= 1;
    buf[1] = 'E';
    assert_err(vhdx_header_decode(buf, sizeof(buf), &d, &err), &err,
               TM_E_CORRUPT, "header: signature");
    assert_err(vhdx_header_decode(buf, 100, &d, &err), &err, TM_E_CORRUPT,
               "header:");
}

static void
header_refuses_unknown_versions(void **state)
{
    uint8_t buf[VHDX_HEADER_BYTES];
    struct vhdx_header h = sample_header(1);
    struct vhdx_header d;
    struct tm_err err = { 0 };

    h.version = 2;
    vhdx_header_encode(&h, buf);
    assert_err(vhdx_header_decode(buf, sizeof(buf), &d, &err), &err,
               TM_E_UNSUPPORTED, "header: version 2");
    h.version = 1;
    h.log_version = 1;                  /* empty log: acceptable */
    vhdx_header_encode(&h, buf);
    assert_int_equal(vhdx_header_decode(buf, sizeof(buf), &d, &err), 0);
    h.log_guid.b[0] = 1;
    vhdx_header_encode(&h, buf);
    assert_err(vhdx_header_decode(buf, sizeof(buf), &d, &err), &err,
               TM_E_UNSUPPORTED, "header: log version 1");
}

static void
header_refuses_misplaced_log(void **state)
{
    uint8_t buf[VHDX_HEADER_BYTES];
    struct vhdx_header h = sample_header(1);
    struct vhdx_header d;
    struct tm_err err = { 0 };

    h.log_offset = MiB + 4096;
    vhdx_header_encode(&h, buf);
    assert_err(vhdx_header_decode(buf, sizeof(buf), &d, &err), &err,
               TM_E_CORRUPT, "header: log offset 0x101000 is not a multiple");
    h.log_offset = 0;
    vhdx_header_encode(&h, buf);
    assert_err(vhdx_header_decode(buf, sizeof(buf), &d, &err), &err,
               TM_E_CORRUPT, "header: log offset 0x0 lies in the header");
    h.log_offset = MiB;
    h.log_length = 4096;
    vhdx_header_encode(&h, buf);
    assert_err(vhdx_header_decode(buf, sizeof(buf), &d, &err), &err,
               TM_E_CORRUPT, "header: log length 0x1000");
}

static void
header_pick_prefers_higher_sequence(void **state)
{
    struct vhdx_header a = sample_header(5);
    struct vhdx_header b = sample_header(6);
    struct tm_err err = { 0 };

    assert_int_equal(vhdx_header_pick(&a, &b, &err), 1);
    assert_int_equal(vhdx_header_pick(&b, &a, &err), 0);
}

static void
header_pick_falls_back_to_the_valid_one(void **state)
{
    uint8_t buf[VHDX_HEADER_BYTES];
    struct vhdx_header h0 = sample_header(9);
    struct vhdx_header h1 = sample_header(3);
    struct vhdx_header d0;
    struct vhdx_header d1;
    struct tm_err err = { 0 };
    int rc0;
    int rc1;

    vhdx_header_encode(&h0, buf);
    buf[200] ^= 0x80;                   /* the newer one is torn */
    rc0 = vhdx_header_decode(buf, sizeof(buf), &d0, &err);
    vhdx_header_encode(&h1, buf);
    rc1 = vhdx_header_decode(buf, sizeof(buf), &d1, &err);
    assert_int_equal(rc0, TM_E_CORRUPT);
    assert_int_equal(rc1, 0);
    assert_int_equal(vhdx_header_pick(rc0 == 0 ? &d0 : NULL,
                                      rc1 == 0 ? &d1 : NULL, &err), 1);
    assert_int_equal(vhdx_header_pick(&d1, NULL, &err), 0);
    assert_err(vhdx_header_pick(NULL, NULL, &err), &err, TM_E_CORRUPT,
               "headers: neither");
}

static void
header_pick_accepts_identical_tie_only(void **state)
{
    struct vhdx_header a = sample_header(1);
    struct vhdx_header b = sample_header(1);
    struct tm_err err = { 0 };

    assert_int_equal(vhdx_header_pick(&a, &b, &err), 0);
    b.data_write_guid.b[0] ^= 1;
    assert_err(vhdx_header_pick(&a, &b, &err), &err, TM_E_CORRUPT,
               "headers: both have sequence number 1");
}

/* ---- region table -------------------------------------------------------- */

static struct vhdx_region_table *
sample_regions(void)
{
    struct vhdx_region_table *rt = calloc(1, sizeof(*rt));

    assert_non_null(rt);
    rt->count = 2;
    rt->e[0] = (struct vhdx_region){ VHDX_GUID_BAT, 2 * MiB, MiB, true };
    rt->e[1] = (struct vhdx_region){ VHDX_GUID_METADATA, 3 * MiB, MiB,
                                     true };
    return rt;
}

static int
region_decode(struct vhdx_region_table *rt, struct tm_err *err)
{
    static uint8_t buf[VHDX_RT_BYTES];
    struct vhdx_region_table *out = calloc(1, sizeof(*out));
    int rc;

    assert_non_null(out);
    vhdx_region_table_encode(rt, buf);
    rc = vhdx_region_table_decode(buf, sizeof(buf), out, err);
    if (rc == 0) {
        assert_int_equal(out->count, rt->count);
        for (uint32_t i = 0; i < rt->count; i++) {
            assert_true(tm_guid_equal(&out->e[i].guid, &rt->e[i].guid));
            assert_int_equal(out->e[i].file_off, rt->e[i].file_off);
            assert_int_equal(out->e[i].len, rt->e[i].len);
            assert_int_equal(out->e[i].required, rt->e[i].required);
        }
    }
    free(out);
    return rc;
}

static void
region_table_round_trips_with_unknown_optional(void **state)
{
    struct vhdx_region_table *rt = sample_regions();
    struct tm_err err = { 0 };

    rt->count = 3;
    rt->e[2] = (struct vhdx_region){ {{ 1, 2, 3 }}, 8 * MiB, 2 * MiB, false };
    assert_int_equal(region_decode(rt, &err), 0);
    assert_non_null(vhdx_region_find(rt, &VHDX_GUID_METADATA));
    assert_ptr_equal(vhdx_region_find(rt, &VHDX_GUID_BAT), &rt->e[0]);
    free(rt);
}

static void
region_table_refuses_misaligned_entry(void **state)
{
    struct vhdx_region_table *rt = sample_regions();
    struct tm_err err = { 0 };

    rt->e[0].file_off = 0x201000;
    assert_err(region_decode(rt, &err), &err, TM_E_CORRUPT,
               "region table: entry 0 (BAT) offset 0x201000 is not a "
               "multiple of 1 MiB");
    rt->e[0].file_off = 2 * MiB;
    rt->e[1].len = 4096;
    assert_err(region_decode(rt, &err), &err, TM_E_CORRUPT,
               "region table: entry 1 (metadata) length 0x1000");
    rt->e[1].len = MiB;
    rt->e[1].file_off = 0x30000;
    assert_err(region_decode(rt, &err), &err, TM_E_CORRUPT,
               "region table: entry 1 (metadata) offset 0x30000");
    free(rt);
}

static void
region_table_refuses_overlap(void **state)
{
    struct vhdx_region_table *rt = sample_regions();
    struct tm_err err = { 0 };

    rt->e[0].len = 2 * MiB;
    assert_err(region_decode(rt, &err), &err, TM_E_CORRUPT,
               "region table: entry 1 (metadata) at 0x300000 overlaps "
               "entry 0 (BAT)");
    free(rt);
}

static void
region_table_refuses_unknown_required(void **state)
{
    struct vhdx_region_table *rt = sample_regions();
    struct tm_err err = { 0 };

    rt->count = 3;
    rt->e[2] = (struct vhdx_region){ {{ 0x78, 0x56, 0x34, 0x12 }}, 8 * MiB,
                                     MiB, true };
    assert_err(region_decode(rt, &err), &err, TM_E_UNSUPPORTED,
               "region table: entry 2 is an unknown required region");
    assert_msg_has(&err, "12345678-0000-0000");
    free(rt);
}

static void
region_table_refuses_missing_or_duplicate(void **state)
{
    struct vhdx_region_table *rt = sample_regions();
    struct tm_err err = { 0 };

    rt->count = 1;
    assert_err(region_decode(rt, &err), &err, TM_E_CORRUPT,
               "region table: no metadata region");
    rt->count = 2;
    rt->e[1].guid = VHDX_GUID_BAT;
    assert_err(region_decode(rt, &err), &err, TM_E_CORRUPT,
               "region table: entries 0 and 1 are both BAT");
    free(rt);
}

static void
region_table_refuses_bad_checksum_and_count(void **state)
{
    static uint8_t buf[VHDX_RT_BYTES];
    struct vhdx_region_table *rt = sample_regions();
    struct vhdx_region_table *out = calloc(1, sizeof(*out));
    struct tm_err err = { 0 };

    assert_non_null(out);
    vhdx_region_table_encode(rt, buf);
    buf[VHDX_RT_BYTES - 1] = 1;
    assert_err(vhdx_region_table_decode(buf, sizeof(buf), out, &err), &err,
               TM_E_CORRUPT, "region table: checksum");
    rt->count = 2048;
    vhdx_region_table_encode(rt, buf);
    tm_put_le32(buf + 8, 2048);
    tm_put_le32(buf + 4, 0);
    tm_put_le32(buf + 4, tm_crc32c(0, buf, sizeof(buf)));
    assert_err(vhdx_region_table_decode(buf, sizeof(buf), out, &err), &err,
               TM_E_CORRUPT, "region table: entry count 2048");
    free(out);
    free(rt);
}

/* ---- metadata table ------------------------------------------------------ */

static struct vhdx_meta_table *
sample_meta(void)
{
    struct vhdx_meta_table *mt = calloc(1, sizeof(*mt));

    assert_non_null(mt);
    mt->count = 5;
    mt->e[0] = (struct vhdx_meta_entry){ VHDX_GUID_FILE_PARAMS, 0x10000, 8,
                                         false, false, true };
    mt->e[1] = (struct vhdx_meta_entry){ VHDX_GUID_VIRTUAL_SIZE, 0x10008, 8,
                                         false, true, true };
    mt->e[2] = (struct vhdx_meta_entry){ VHDX_GUID_VIRTUAL_DISK_ID, 0x10010,
                                         16, false, true, true };
    mt->e[3] = (struct vhdx_meta_entry){ VHDX_GUID_LOGICAL_SECTOR, 0x10020, 4,
                                         false, true, true };
    mt->e[4] = (struct vhdx_meta_entry){ VHDX_GUID_PHYSICAL_SECTOR, 0x10024,
                                         4, false, true, true };
    return mt;
}

static int
meta_decode(struct vhdx_meta_table *mt, uint32_t region_len,
            struct tm_err *err)
{
    static uint8_t buf[VHDX_METADATA_TABLE_BYTES];
    struct vhdx_meta_table *out = calloc(1, sizeof(*out));
    int rc;

    assert_non_null(out);
    vhdx_meta_table_encode(mt, buf);
    rc = vhdx_meta_table_decode(buf, sizeof(buf), region_len, out, err);
    if (rc == 0) {
        assert_int_equal(out->count, mt->count);
        for (uint16_t i = 0; i < mt->count; i++) {
            assert_true(tm_guid_equal(&out->e[i].id, &mt->e[i].id));
            assert_int_equal(out->e[i].off, mt->e[i].off);
            assert_int_equal(out->e[i].len, mt->e[i].len);
            assert_int_equal(out->e[i].is_user, mt->e[i].is_user);
            assert_int_equal(out->e[i].is_virtual_disk,
                             mt->e[i].is_virtual_disk);
            assert_int_equal(out->e[i].is_required, mt->e[i].is_required);
        }
    }
    free(out);
    return rc;
}

static void
meta_table_round_trips_with_user_items(void **state)
{
    struct vhdx_meta_table *mt = sample_meta();
    struct tm_err err = { 0 };
    const struct vhdx_meta_entry *e;

    mt->count = 8;
    /* Same GUID as a system item, but a user item: distinct. */
    mt->e[5] = (struct vhdx_meta_entry){ VHDX_GUID_FILE_PARAMS, 0x20000, 100,
                                         true, false, false };
    /* Unknown required user item and empty present item: both kept. */
    mt->e[6] = (struct vhdx_meta_entry){ {{ 9 }}, 0x30000, 0x100000, true,
                                         false, true };
    mt->e[7] = (struct vhdx_meta_entry){ {{ 10 }}, 0, 0, false, false,
                                         false };
    assert_int_equal(meta_decode(mt, 2 * MiB, &err), 0);
    e = vhdx_meta_find(mt, &VHDX_GUID_FILE_PARAMS, true);
    assert_ptr_equal(e, &mt->e[5]);
    e = vhdx_meta_find(mt, &VHDX_GUID_FILE_PARAMS, false);
    assert_ptr_equal(e, &mt->e[0]);
    assert_null(vhdx_meta_find(mt, &VHDX_GUID_PARENT_LOCATOR, false));
    free(mt);
}

static void
meta_table_refuses_overlap(void **state)
{
    struct vhdx_meta_table *mt = sample_meta();
    struct tm_err err = { 0 };

    mt->e[1].off = 0x10004;
    assert_err(meta_decode(mt, MiB, &err), &err, TM_E_CORRUPT,
               "metadata table: entry 1 (virtual disk size) at 0x10004 "
               "overlaps entry 0 (file parameters)");
    free(mt);
}

static void
meta_table_refuses_oversize_and_outside(void **state)
{
    struct vhdx_meta_table *mt = sample_meta();
    struct tm_err err = { 0 };

    mt->e[4].off = 0x100000;
    mt->e[4].len = 0x100001;
    assert_err(meta_decode(mt, 4 * MiB, &err), &err, TM_E_CORRUPT,
               "metadata table: entry 4 (physical sector size) length "
               "0x100001 exceeds 1 MiB");
    mt->e[4].len = 8;
    mt->e[4].off = MiB - 4;
    assert_err(meta_decode(mt, MiB, &err), &err, TM_E_CORRUPT,
               "metadata table: entry 4 (physical sector size) at 0xffffc "
               "length 0x8 ends past the region");
    mt->e[4].off = 0x100;
    assert_err(meta_decode(mt, MiB, &err), &err, TM_E_CORRUPT,
               "metadata table: entry 4 (physical sector size) offset 0x100 "
               "lies inside the table");
    mt->e[4].off = 0x10024;
    mt->e[4].len = 0;
    assert_err(meta_decode(mt, MiB, &err), &err, TM_E_CORRUPT,
               "metadata table: entry 4 (physical sector size) has length 0");
    free(mt);
}

static void
meta_table_refuses_duplicate(void **state)
{
    struct vhdx_meta_table *mt = sample_meta();
    struct tm_err err = { 0 };

    mt->e[4].id = VHDX_GUID_LOGICAL_SECTOR;
    assert_err(meta_decode(mt, MiB, &err), &err, TM_E_CORRUPT,
               "metadata table: entries 3 and 4 are both system item "
               "logical sector size");
    free(mt);
}

static void
meta_table_refuses_unknown_required_system_item(void **state)
{
    struct vhdx_meta_table *mt = sample_meta();
    struct tm_err err = { 0 };

    mt->count = 6;
    mt->e[5] = (struct vhdx_meta_entry){ {{ 0xef, 0xbe, 0xad, 0xde }},
                                         0x20000, 4, false, false, true };
    assert_err(meta_decode(mt, MiB, &err), &err, TM_E_UNSUPPORTED,
               "metadata table: entry 5 is an unknown required item");
    assert_msg_has(&err, "deadbeef-0000");
    mt->e[5].is_required = false;       /* optional: kept */
    assert_int_equal(meta_decode(mt, MiB, &err), 0);
    free(mt);
}

static void
meta_table_refuses_bad_signature_count_region(void **state)
{
    static uint8_t buf[VHDX_METADATA_TABLE_BYTES];
    struct vhdx_meta_table *mt = sample_meta();
    struct vhdx_meta_table *out = calloc(1, sizeof(*out));
    struct tm_err err = { 0 };

    assert_non_null(out);
    vhdx_meta_table_encode(mt, buf);
    assert_err(vhdx_meta_table_decode(buf, sizeof(buf), 0x8000, out, &err),
               &err, TM_E_CORRUPT, "metadata table: region length 0x8000");
    tm_put_le16(buf + 10, 2048);
    assert_err(vhdx_meta_table_decode(buf, sizeof(buf), MiB, out, &err),
               &err, TM_E_CORRUPT, "metadata table: entry count 2048");
    buf[0] = 'M';
    assert_err(vhdx_meta_table_decode(buf, sizeof(buf), MiB, out, &err),
               &err, TM_E_CORRUPT, "metadata table: signature");
    free(out);
    free(mt);
}

/* ---- items and parameters ------------------------------------------------ */

static void
file_params_round_trip(void **state)
{
    uint8_t buf[8];
    struct vhdx_params p = { .block_size = 32 * MiB,
                             .leave_block_allocated = true };
    struct vhdx_params d = { 0 };
    struct tm_err err = { 0 };

    vhdx_file_params_encode(&p, buf);
    assert_int_equal(tm_le32(buf + 4), 1);
    assert_int_equal(vhdx_file_params_decode(buf, 8, &d, &err), 0);
    assert_int_equal(d.block_size, 32 * MiB);
    assert_true(d.leave_block_allocated);
    assert_false(d.has_parent);
    p.leave_block_allocated = false;
    p.has_parent = true;
    vhdx_file_params_encode(&p, buf);
    assert_int_equal(vhdx_file_params_decode(buf, 8, &d, &err), 0);
    assert_true(d.has_parent);
    assert_false(d.leave_block_allocated);
    tm_put_le32(buf, 3 * MiB);
    assert_err(vhdx_file_params_decode(buf, 8, &d, &err), &err, TM_E_CORRUPT,
               "file parameters: block size 3145728");
    tm_put_le32(buf, 512 * MiB);
    assert_err(vhdx_file_params_decode(buf, 8, &d, &err), &err, TM_E_CORRUPT,
               "file parameters: block size");
    assert_err(vhdx_file_params_decode(buf, 4, &d, &err), &err, TM_E_CORRUPT,
               "file parameters: item is 4 bytes");
}

static void
scalar_items_decode(void **state)
{
    uint8_t buf[8];
    uint64_t v64;
    uint32_t v32;
    struct tm_err err = { 0 };

    tm_put_le64(buf, 0x123456789ull);
    assert_int_equal(vhdx_u64_item_decode(buf, 8, &v64, &err), 0);
    assert_int_equal(v64, 0x123456789ull);
    assert_int_equal(vhdx_u32_item_decode(buf, 4, &v32, &err), 0);
    assert_int_equal(v32, 0x23456789u);
    assert_err(vhdx_u64_item_decode(buf, 4, &v64, &err), &err, TM_E_CORRUPT,
               "metadata item: 4 bytes, expected 8");
    assert_err(vhdx_u32_item_decode(buf, 8, &v32, &err), &err, TM_E_CORRUPT,
               "metadata item: 8 bytes, expected 4");
}

static void
params_validate_checks_every_field(void **state)
{
    struct vhdx_params p = { .block_size = MiB, .virtual_size = 1ull << 30,
                             .logical_sector = 512, .physical_sector = 4096 };
    struct vhdx_params q;
    struct tm_err err = { 0 };

    assert_int_equal(vhdx_params_validate(&p, &err), 0);
    q = p;
    q.logical_sector = 1024;
    assert_err(vhdx_params_validate(&q, &err), &err, TM_E_CORRUPT,
               "metadata: logical sector size 1024");
    q = p;
    q.physical_sector = 0;
    assert_err(vhdx_params_validate(&q, &err), &err, TM_E_CORRUPT,
               "metadata: physical sector size 0");
    q = p;
    q.virtual_size = 0;
    assert_err(vhdx_params_validate(&q, &err), &err, TM_E_CORRUPT,
               "metadata: virtual disk size is 0");
    q = p;
    q.virtual_size = 1000;
    assert_err(vhdx_params_validate(&q, &err), &err, TM_E_CORRUPT,
               "metadata: virtual disk size 1000 is not a multiple");
    q = p;
    q.virtual_size = (64ull << 40) + 512;
    assert_err(vhdx_params_validate(&q, &err), &err, TM_E_CORRUPT,
               "metadata: virtual disk size 70368744178176 exceeds");
    q.virtual_size = 64ull << 40;
    assert_int_equal(vhdx_params_validate(&q, &err), 0);
    q = p;
    q.block_size = 0;
    assert_err(vhdx_params_validate(&q, &err), &err, TM_E_CORRUPT,
               "file parameters: block size 0");
}

/* ---- geometry ------------------------------------------------------------ */

static void
geometry_chunk_ratios_match_spec_table(void **state)
{
    static const struct { uint32_t bs, r512, r4096; } t[] = {
        { 1, 4096, 32768 }, { 2, 2048, 16384 }, { 8, 512, 4096 },
        { 32, 128, 1024 }, { 256, 16, 128 },
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct vhdx_params p = { .block_size = t[i].bs * (uint32_t)MiB,
                                 .virtual_size = 1ull << 30,
                                 .logical_sector = 512,
                                 .physical_sector = 512 };
        struct vhdx_geometry g;

        vhdx_geometry(&p, &g);
        assert_int_equal(g.chunk_ratio, t[i].r512);
        p.logical_sector = 4096;
        vhdx_geometry(&p, &g);
        assert_int_equal(g.chunk_ratio, t[i].r4096);
    }
}

static void
geometry_counts_blocks_and_entries(void **state)
{
    /* 256 MiB blocks at 512 B: R = 16.  5 GiB + 1 sector: PB = 21. */
    struct vhdx_params p = { .block_size = 256 * MiB,
                             .virtual_size = (5ull << 30) + 512,
                             .logical_sector = 512,
                             .physical_sector = 512 };
    struct vhdx_geometry g;

    vhdx_geometry(&p, &g);
    assert_int_equal(g.chunk_ratio, 16);
    assert_int_equal(g.payload_blocks, 21);
    assert_int_equal(g.bitmap_blocks, 2);
    assert_int_equal(g.bat_entries_write, 34);
    assert_int_equal(g.bat_entries_min, 21 + 20 / 16);
    /* MS-VHDX 2.5 example: block 17 -> index 18; chunk 0's SB -> 16. */
    assert_int_equal(vhdx_bat_index(&g, 17), 18);
    assert_int_equal(vhdx_sb_index(&g, 0), 16);
    assert_int_equal(vhdx_sb_index(&g, 1), 33);
    assert_int_equal(vhdx_bat_index(&g, 16), 17);
    assert_int_equal(vhdx_bat_index(&g, 15), 15);
    /* Exactly one chunk: PB = R, no SB slot needed for the minimum. */
    p.virtual_size = 4ull << 30;
    vhdx_geometry(&p, &g);
    assert_int_equal(g.payload_blocks, 16);
    assert_int_equal(g.bitmap_blocks, 1);
    assert_int_equal(g.bat_entries_write, 17);
    assert_int_equal(g.bat_entries_min, 16);
    /* 64 TiB with 1 MiB blocks: 2^26 + 2^14 entries. */
    p.block_size = MiB;
    p.virtual_size = 64ull << 40;
    vhdx_geometry(&p, &g);
    assert_int_equal(g.bat_entries_write, (1ull << 26) + (1ull << 14));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_guids_match_spec),
        cmocka_unit_test(fti_round_trips_ascii_and_unicode),
        cmocka_unit_test(fti_truncates_and_replaces_bad_units),
        cmocka_unit_test(fti_refuses_bad_signature),
        cmocka_unit_test(header_round_trips),
        cmocka_unit_test(header_refuses_bad_checksum),
        cmocka_unit_test(header_refuses_unknown_versions),
        cmocka_unit_test(header_refuses_misplaced_log),
        cmocka_unit_test(header_pick_prefers_higher_sequence),
        cmocka_unit_test(header_pick_falls_back_to_the_valid_one),
        cmocka_unit_test(header_pick_accepts_identical_tie_only),
        cmocka_unit_test(region_table_round_trips_with_unknown_optional),
        cmocka_unit_test(region_table_refuses_misaligned_entry),
        cmocka_unit_test(region_table_refuses_overlap),
        cmocka_unit_test(region_table_refuses_unknown_required),
        cmocka_unit_test(region_table_refuses_missing_or_duplicate),
        cmocka_unit_test(region_table_refuses_bad_checksum_and_count),
        cmocka_unit_test(meta_table_round_trips_with_user_items),
        cmocka_unit_test(meta_table_refuses_overlap),
        cmocka_unit_test(meta_table_refuses_oversize_and_outside),
        cmocka_unit_test(meta_table_refuses_duplicate),
        cmocka_unit_test(meta_table_refuses_unknown_required_system_item),
        cmocka_unit_test(meta_table_refuses_bad_signature_count_region),
        cmocka_unit_test(file_params_round_trip),
        cmocka_unit_test(scalar_items_decode),
        cmocka_unit_test(params_validate_checks_every_field),
        cmocka_unit_test(geometry_chunk_ratios_match_spec_table),
        cmocka_unit_test(geometry_counts_blocks_and_entries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
