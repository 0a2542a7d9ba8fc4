/* SPDX-License-Identifier: MIT */
/* format.c - decode and encode of the fixed VHDX structures: file type
 * identifier, headers, region tables, metadata table and the system
 * metadata items, plus the BAT geometry derived from them (MS-VHDX 2.2,
 * 2.5, 2.6).  Pure functions of their buffers: nothing here does I/O, so
 * the unit tests and fuzz targets need no files. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vhdx_int.h"

/* MS-VHDX 2.2.3.2 and 2.6.2: GUIDs in on-disk (mixed-endian) byte order. */
const struct tm_guid VHDX_GUID_BAT = {{
    0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
    0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08 }};
const struct tm_guid VHDX_GUID_METADATA = {{
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
    0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e }};
const struct tm_guid VHDX_GUID_FILE_PARAMS = {{
    0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
    0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b }};
const struct tm_guid VHDX_GUID_VIRTUAL_SIZE = {{
    0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48,
    0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8 }};
const struct tm_guid VHDX_GUID_VIRTUAL_DISK_ID = {{
    0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45,
    0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46 }};
const struct tm_guid VHDX_GUID_LOGICAL_SECTOR = {{
    0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47,
    0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f }};
const struct tm_guid VHDX_GUID_PHYSICAL_SECTOR = {{
    0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44,
    0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56 }};
const struct tm_guid VHDX_GUID_PARENT_LOCATOR = {{
    0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,
    0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c }};
const struct tm_guid VHDX_GUID_LOCATOR_TYPE_VHDX = {{
    0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a,
    0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13 }};

#define MAX_VIRTUAL_SIZE (64ull << 40)  /* MS-VHDX 2.6.2.2; QEMU: 64 TiB */
#define MIN_BLOCK_SIZE (1u << 20)
#define MAX_BLOCK_SIZE (256u << 20)

static bool
is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* ---- file type identifier (MS-VHDX 2.2.1) ------------------------------ */

/* Appends code point 'cp' as UTF-8 at out[*pos] if it fits with room for
 * the final NUL; returns false (and writes nothing) when it does not. */
static bool
put_utf8(char *out, size_t cap, size_t *pos, uint32_t cp)
{
    uint8_t tmp[4];
    size_t n;

    if (cp < 0x80) {
        tmp[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (uint8_t)(0xC0 | cp >> 6);
        tmp[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (uint8_t)(0xE0 | cp >> 12);
        tmp[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        tmp[0] = (uint8_t)(0xF0 | cp >> 18);
        tmp[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        tmp[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (*pos + n >= cap)
        return false;
    memcpy(out + *pos, tmp, n);
    *pos += n;
    return true;
}

int
vhdx_fti_decode(const uint8_t *buf, size_t len, char *creator, size_t cap,
                struct tm_err *err)
{
    size_t units;
    size_t pos = 0;

    if (creator != NULL && cap > 0)
        creator[0] = '\0';
    if (len < 8)
        return tm_err_set(err, TM_E_CORRUPT,
                          "file type identifier: %zu bytes, need 8", len);
    if (memcmp(buf, "vhdxfile", 8) != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "file type identifier: signature is not "
                          "'vhdxfile'");
    if (creator == NULL || cap == 0)
        return 0;
    /* The creator is diagnostic only: decode what is there, never fail. */
    units = (len - 8 < VHDX_CREATOR_BYTES ? len - 8 : VHDX_CREATOR_BYTES) / 2;
    for (size_t i = 0; i < units; i++) {
        uint32_t cp = tm_le16(buf + 8 + 2 * i);

        if (cp == 0)
            break;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < units) {
            uint32_t lo = tm_le16(buf + 8 + 2 * (i + 1));

            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i++;
            } else {
                cp = 0xFFFD;
            }
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;                /* unpaired surrogate */
        }
        if (!put_utf8(creator, cap, &pos, cp))
            break;
    }
    creator[pos] = '\0';
    return 0;
}

/* Decodes one UTF-8 sequence at s[*i]; invalid bytes give U+FFFD. */
static uint32_t
next_utf8(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    size_t more;
    uint32_t min;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F;
        more = 1;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F;
        more = 2;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07;
        more = 3;
        min = 0x10000;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    if (*i + more >= n) {              /* truncated sequence */
        *i = n;
        return 0xFFFD;
    }
    for (size_t k = 1; k <= more; k++) {
        if ((s[*i + k] & 0xC0) != 0x80) {
            *i += k;
            return 0xFFFD;
        }
        cp = cp << 6 | (s[*i + k] & 0x3F);
    }
    *i += more + 1;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0xFFFD;
    return cp;
}

void
vhdx_fti_encode(const char *creator, uint8_t *buf)
{
    const unsigned char *s = (const unsigned char *)creator;
    size_t n = creator != NULL ? strlen(creator) : 0;
    size_t i = 0;
    size_t units = 0;
    /* Keep one NUL unit at the end of the 256-unit field. */
    const size_t max_units = VHDX_CREATOR_BYTES / 2 - 1;

    memset(buf, 0, VHDX_FTI_BYTES);
    memcpy(buf, "vhdxfile", 8);
    while (i < n) {
        uint32_t cp = next_utf8(s, n, &i);

        if (cp >= 0x10000) {
            if (units + 2 > max_units)
                break;
            cp -= 0x10000;
            tm_put_le16(buf + 8 + 2 * units++, (uint16_t)(0xD800 | cp >> 10));
            tm_put_le16(buf + 8 + 2 * units++,
                        (uint16_t)(0xDC00 | (cp & 0x3FF)));
        } else {
            if (units + 1 > max_units)
                break;
            tm_put_le16(buf + 8 + 2 * units++, (uint16_t)cp);
        }
    }
}

/* ---- headers (MS-VHDX 2.2.2) ------------------------------------------- */

int
vhdx_header_decode(const uint8_t *buf, size_t len, struct vhdx_header *h,
                   struct tm_err *err)
{
    uint32_t crc;

    memset(h, 0, sizeof(*h));
    if (len < VHDX_HEADER_BYTES)
        return tm_err_set(err, TM_E_CORRUPT, "header: %zu bytes, need %u",
                          len, VHDX_HEADER_BYTES);
    if (memcmp(buf, "head", 4) != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "header: signature is not 'head'");
    crc = tm_crc32c_skip(buf, VHDX_HEADER_BYTES, 4);
    if (crc != tm_le32(buf + 4))
        return tm_err_set(err, TM_E_CORRUPT,
                          "header: checksum 0x%08" PRIx32 " does not match "
                          "the contents (0x%08" PRIx32 ")",
                          tm_le32(buf + 4), crc);
    h->seq = tm_le64(buf + 8);
    memcpy(h->file_write_guid.b, buf + 16, 16);
    memcpy(h->data_write_guid.b, buf + 32, 16);
    memcpy(h->log_guid.b, buf + 48, 16);
    h->log_version = tm_le16(buf + 64);
    h->version = tm_le16(buf + 66);
    h->log_length = tm_le32(buf + 68);
    h->log_offset = tm_le64(buf + 72);
    /* COMPAT: the 4016 reserved bytes are not checked; no reader does. */
    if (h->version != 1)
        return tm_err_set(err, TM_E_UNSUPPORTED,
                          "header: version %u is not supported (only 1)",
                          (unsigned)h->version);
    if (h->log_version != 0 && !tm_guid_is_zero(&h->log_guid))
        return tm_err_set(err, TM_E_UNSUPPORTED,
                          "header: log version %u is not supported (only 0) "
                          "and the log is not empty",
                          (unsigned)h->log_version);
    if (h->log_length % VHDX_MiB != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "header: log length 0x%" PRIx32 " is not a "
                          "multiple of 1 MiB", h->log_length);
    if (h->log_offset % VHDX_MiB != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "header: log offset 0x%" PRIx64 " is not a "
                          "multiple of 1 MiB", h->log_offset);
    if (h->log_offset < VHDX_HEADER_SECTION_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "header: log offset 0x%" PRIx64 " lies in the "
                          "header section", h->log_offset);
    if (h->log_offset > (1ull << 62))
        return tm_err_set(err, TM_E_CORRUPT,
                          "header: log offset 0x%" PRIx64 " is beyond any "
                          "possible file size", h->log_offset);
    if (h->log_length == 0 && !tm_guid_is_zero(&h->log_guid))
        return tm_err_set(err, TM_E_CORRUPT,
                          "header: log length is 0 but the log GUID is set");
    return 0;
}

void
vhdx_header_encode(const struct vhdx_header *h, uint8_t *buf)
{
    memset(buf, 0, VHDX_HEADER_BYTES);
    memcpy(buf, "head", 4);
    tm_put_le64(buf + 8, h->seq);
    memcpy(buf + 16, h->file_write_guid.b, 16);
    memcpy(buf + 32, h->data_write_guid.b, 16);
    memcpy(buf + 48, h->log_guid.b, 16);
    tm_put_le16(buf + 64, h->log_version);
    tm_put_le16(buf + 66, h->version);
    tm_put_le32(buf + 68, h->log_length);
    tm_put_le64(buf + 72, h->log_offset);
    tm_put_le32(buf + 4, tm_crc32c(0, buf, VHDX_HEADER_BYTES));
}

static bool
header_equal(const struct vhdx_header *a, const struct vhdx_header *b)
{
    return a->seq == b->seq &&
           tm_guid_equal(&a->file_write_guid, &b->file_write_guid) &&
           tm_guid_equal(&a->data_write_guid, &b->data_write_guid) &&
           tm_guid_equal(&a->log_guid, &b->log_guid) &&
           a->log_version == b->log_version && a->version == b->version &&
           a->log_length == b->log_length && a->log_offset == b->log_offset;
}

int
vhdx_header_pick(const struct vhdx_header *h0, const struct vhdx_header *h1,
                 struct tm_err *err)
{
    if (h0 == NULL && h1 == NULL)
        return tm_err_set(err, TM_E_CORRUPT,
                          "headers: neither header is valid");
    if (h1 == NULL)
        return 0;
    if (h0 == NULL)
        return 1;
    if (h0->seq > h1->seq)
        return 0;
    if (h1->seq > h0->seq)
        return 1;
    /* COMPAT: Disk2vhd writes two identical headers with equal sequence
     * numbers; QEMU accepts a tie only when the headers are identical. */
    if (header_equal(h0, h1))
        return 0;
    return tm_err_set(err, TM_E_CORRUPT,
                      "headers: both have sequence number %" PRIu64
                      " but different contents", h0->seq);
}

/* ---- region table (MS-VHDX 2.2.3) -------------------------------------- */

static const char *
region_name(const struct tm_guid *g, char *buf /* 37 */)
{
    if (tm_guid_equal(g, &VHDX_GUID_BAT))
        return "BAT";
    if (tm_guid_equal(g, &VHDX_GUID_METADATA))
        return "metadata";
    tm_guid_format(g, buf);
    return buf;
}

int
vhdx_region_table_decode(const uint8_t *buf, size_t len,
                         struct vhdx_region_table *rt, struct tm_err *err)
{
    char name[TM_GUID_STR_LEN + 1];
    char other[TM_GUID_STR_LEN + 1];
    uint32_t crc;
    uint32_t count;

    rt->count = 0;
    if (len < VHDX_RT_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "region table: %zu bytes, need %u", len,
                          VHDX_RT_BYTES);
    if (memcmp(buf, "regi", 4) != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "region table: signature is not 'regi'");
    crc = tm_crc32c_skip(buf, VHDX_RT_BYTES, 4);
    if (crc != tm_le32(buf + 4))
        return tm_err_set(err, TM_E_CORRUPT,
                          "region table: checksum 0x%08" PRIx32 " does not "
                          "match the contents (0x%08" PRIx32 ")",
                          tm_le32(buf + 4), crc);
    count = tm_le32(buf + 8);
    if (count > VHDX_MAX_REGIONS)
        return tm_err_set(err, TM_E_CORRUPT,
                          "region table: entry count %" PRIu32 " exceeds %u",
                          count, VHDX_MAX_REGIONS);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *p = buf + 16 + 32 * (size_t)i;
        struct vhdx_region *r = &rt->e[i];
        const char *nm;

        memcpy(r->guid.b, p, 16);
        r->file_off = tm_le64(p + 16);
        r->len = tm_le32(p + 24);
        /* Bits 1..31 are reserved; COMPAT: not checked. */
        r->required = (tm_le32(p + 28) & 1u) != 0;
        nm = region_name(&r->guid, name);
        if (r->file_off % VHDX_MiB != 0)
            return tm_err_set(err, TM_E_CORRUPT,
                              "region table: entry %" PRIu32 " (%s) offset "
                              "0x%" PRIx64 " is not a multiple of 1 MiB",
                              i, nm, r->file_off);
        if (r->file_off < VHDX_HEADER_SECTION_BYTES)
            return tm_err_set(err, TM_E_CORRUPT,
                              "region table: entry %" PRIu32 " (%s) offset "
                              "0x%" PRIx64 " lies in the header section",
                              i, nm, r->file_off);
        if (r->file_off > (1ull << 62))
            return tm_err_set(err, TM_E_CORRUPT,
                              "region table: entry %" PRIu32 " (%s) offset "
                              "0x%" PRIx64 " is beyond any possible file "
                              "size", i, nm, r->file_off);
        if (r->len == 0 || r->len % VHDX_MiB != 0)
            return tm_err_set(err, TM_E_CORRUPT,
                              "region table: entry %" PRIu32 " (%s) length "
                              "0x%" PRIx32 " is not a non-zero multiple of "
                              "1 MiB", i, nm, r->len);
        for (uint32_t j = 0; j < i; j++) {
            const struct vhdx_region *o = &rt->e[j];

            if (tm_guid_equal(&o->guid, &r->guid))
                return tm_err_set(err, TM_E_CORRUPT,
                                  "region table: entries %" PRIu32 " and %"
                                  PRIu32 " are both %s", j, i, nm);
            if (r->file_off < o->file_off + o->len &&
                o->file_off < r->file_off + r->len)
                return tm_err_set(err, TM_E_CORRUPT,
                                  "region table: entry %" PRIu32 " (%s) at "
                                  "0x%" PRIx64 " overlaps entry %" PRIu32
                                  " (%s) at 0x%" PRIx64, i, nm, r->file_off,
                                  j, region_name(&o->guid, other),
                                  o->file_off);
        }
        if (r->required && !tm_guid_equal(&r->guid, &VHDX_GUID_BAT) &&
            !tm_guid_equal(&r->guid, &VHDX_GUID_METADATA))
            return tm_err_set(err, TM_E_UNSUPPORTED,
                              "region table: entry %" PRIu32 " is an "
                              "unknown required region {%s}", i, nm);
        rt->count = i + 1;
    }
    if (vhdx_region_find(rt, &VHDX_GUID_BAT) == NULL)
        return tm_err_set(err, TM_E_CORRUPT,
                          "region table: no BAT region");
    if (vhdx_region_find(rt, &VHDX_GUID_METADATA) == NULL)
        return tm_err_set(err, TM_E_CORRUPT,
                          "region table: no metadata region");
    return 0;
}

void
vhdx_region_table_encode(const struct vhdx_region_table *rt, uint8_t *buf)
{
    memset(buf, 0, VHDX_RT_BYTES);
    memcpy(buf, "regi", 4);
    tm_put_le32(buf + 8, rt->count);
    for (uint32_t i = 0; i < rt->count && i < VHDX_MAX_REGIONS; i++) {
        uint8_t *p = buf + 16 + 32 * (size_t)i;

        memcpy(p, rt->e[i].guid.b, 16);
        tm_put_le64(p + 16, rt->e[i].file_off);
        tm_put_le32(p + 24, rt->e[i].len);
        tm_put_le32(p + 28, rt->e[i].required ? 1u : 0u);
    }
    tm_put_le32(buf + 4, tm_crc32c(0, buf, VHDX_RT_BYTES));
}

const struct vhdx_region *
vhdx_region_find(const struct vhdx_region_table *rt, const struct tm_guid *g)
{
    for (uint32_t i = 0; i < rt->count; i++)
        if (tm_guid_equal(&rt->e[i].guid, g))
            return &rt->e[i];
    return NULL;
}

/* ---- metadata (MS-VHDX 2.6) -------------------------------------------- */

static const char *
item_name(const struct tm_guid *g, char *buf /* 37 */)
{
    if (tm_guid_equal(g, &VHDX_GUID_FILE_PARAMS))
        return "file parameters";
    if (tm_guid_equal(g, &VHDX_GUID_VIRTUAL_SIZE))
        return "virtual disk size";
    if (tm_guid_equal(g, &VHDX_GUID_VIRTUAL_DISK_ID))
        return "virtual disk id";
    if (tm_guid_equal(g, &VHDX_GUID_LOGICAL_SECTOR))
        return "logical sector size";
    if (tm_guid_equal(g, &VHDX_GUID_PHYSICAL_SECTOR))
        return "physical sector size";
    if (tm_guid_equal(g, &VHDX_GUID_PARENT_LOCATOR))
        return "parent locator";
    tm_guid_format(g, buf);
    return buf;
}

static bool
is_known_system_item(const struct tm_guid *g)
{
    return tm_guid_equal(g, &VHDX_GUID_FILE_PARAMS) ||
           tm_guid_equal(g, &VHDX_GUID_VIRTUAL_SIZE) ||
           tm_guid_equal(g, &VHDX_GUID_VIRTUAL_DISK_ID) ||
           tm_guid_equal(g, &VHDX_GUID_LOGICAL_SECTOR) ||
           tm_guid_equal(g, &VHDX_GUID_PHYSICAL_SECTOR) ||
           tm_guid_equal(g, &VHDX_GUID_PARENT_LOCATOR);
}

int
vhdx_meta_table_decode(const uint8_t *buf, size_t len, uint32_t region_len,
                       struct vhdx_meta_table *mt, struct tm_err *err)
{
    char name[TM_GUID_STR_LEN + 1];
    char other[TM_GUID_STR_LEN + 1];
    uint16_t count;
    unsigned users = 0;

    mt->count = 0;
    if (len < VHDX_METADATA_TABLE_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata table: %zu bytes, need %u", len,
                          VHDX_METADATA_TABLE_BYTES);
    if (region_len < VHDX_METADATA_TABLE_BYTES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata table: region length 0x%" PRIx32
                          " cannot hold the 64 KiB table", region_len);
    if (memcmp(buf, "metadata", 8) != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata table: signature is not 'metadata'");
    count = tm_le16(buf + 10);
    if (count > VHDX_MAX_META_ENTRIES)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata table: entry count %u exceeds %u",
                          (unsigned)count, VHDX_MAX_META_ENTRIES);
    for (uint16_t i = 0; i < count; i++) {
        const uint8_t *p = buf + 32 + 32 * (size_t)i;
        struct vhdx_meta_entry *m = &mt->e[i];
        uint32_t flags;
        const char *nm;

        memcpy(m->id.b, p, 16);
        m->off = tm_le32(p + 16);
        m->len = tm_le32(p + 20);
        flags = tm_le32(p + 24);
        m->is_user = (flags & 1u) != 0;
        m->is_virtual_disk = (flags & 2u) != 0;
        m->is_required = (flags & 4u) != 0;
        nm = item_name(&m->id, name);
        if (m->len == 0 && m->off != 0)
            return tm_err_set(err, TM_E_CORRUPT,
                              "metadata table: entry %u (%s) has length 0 "
                              "but offset 0x%" PRIx32, (unsigned)i, nm,
                              m->off);
        if (m->len != 0) {
            if (m->off < VHDX_METADATA_TABLE_BYTES)
                return tm_err_set(err, TM_E_CORRUPT,
                                  "metadata table: entry %u (%s) offset 0x%"
                                  PRIx32 " lies inside the table",
                                  (unsigned)i, nm, m->off);
            if (m->len > VHDX_MAX_META_ITEM_BYTES)
                return tm_err_set(err, TM_E_CORRUPT,
                                  "metadata table: entry %u (%s) length 0x%"
                                  PRIx32 " exceeds 1 MiB", (unsigned)i, nm,
                                  m->len);
            if ((uint64_t)m->off + m->len > region_len)
                return tm_err_set(err, TM_E_CORRUPT,
                                  "metadata table: entry %u (%s) at 0x%"
                                  PRIx32 " length 0x%" PRIx32 " ends past "
                                  "the region (0x%" PRIx32 " bytes)",
                                  (unsigned)i, nm, m->off, m->len,
                                  region_len);
        }
        for (uint16_t j = 0; j < i; j++) {
            const struct vhdx_meta_entry *o = &mt->e[j];

            if (tm_guid_equal(&o->id, &m->id) && o->is_user == m->is_user)
                return tm_err_set(err, TM_E_CORRUPT,
                                  "metadata table: entries %u and %u are "
                                  "both %s item %s", (unsigned)j,
                                  (unsigned)i, m->is_user ? "user" :
                                  "system", nm);
            if (m->len != 0 && o->len != 0 &&
                m->off < (uint64_t)o->off + o->len &&
                o->off < (uint64_t)m->off + m->len)
                return tm_err_set(err, TM_E_CORRUPT,
                                  "metadata table: entry %u (%s) at 0x%"
                                  PRIx32 " overlaps entry %u (%s) at 0x%"
                                  PRIx32, (unsigned)i, nm, m->off,
                                  (unsigned)j, item_name(&o->id, other),
                                  o->off);
        }
        if (m->is_user && ++users > VHDX_MAX_USER_META)
            return tm_err_set(err, TM_E_CORRUPT,
                              "metadata table: more than %u user items",
                              VHDX_MAX_USER_META);
        if (!m->is_user && m->is_required && !is_known_system_item(&m->id))
            return tm_err_set(err, TM_E_UNSUPPORTED,
                              "metadata table: entry %u is an unknown "
                              "required item {%s}", (unsigned)i, nm);
        mt->count = (uint16_t)(i + 1);
    }
    return 0;
}

void
vhdx_meta_table_encode(const struct vhdx_meta_table *mt, uint8_t *buf)
{
    memset(buf, 0, VHDX_METADATA_TABLE_BYTES);
    memcpy(buf, "metadata", 8);
    tm_put_le16(buf + 10, mt->count);
    for (uint16_t i = 0; i < mt->count && i < VHDX_MAX_META_ENTRIES; i++) {
        const struct vhdx_meta_entry *m = &mt->e[i];
        uint8_t *p = buf + 32 + 32 * (size_t)i;

        memcpy(p, m->id.b, 16);
        tm_put_le32(p + 16, m->off);
        tm_put_le32(p + 20, m->len);
        tm_put_le32(p + 24, (m->is_user ? 1u : 0u) |
                            (m->is_virtual_disk ? 2u : 0u) |
                            (m->is_required ? 4u : 0u));
    }
}

const struct vhdx_meta_entry *
vhdx_meta_find(const struct vhdx_meta_table *mt, const struct tm_guid *id,
               bool is_user)
{
    for (uint16_t i = 0; i < mt->count; i++)
        if (mt->e[i].is_user == is_user && tm_guid_equal(&mt->e[i].id, id))
            return &mt->e[i];
    return NULL;
}

static int
check_block_size(uint32_t bs, struct tm_err *err)
{
    if (!is_pow2(bs) || bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE)
        return tm_err_set(err, TM_E_CORRUPT,
                          "file parameters: block size %" PRIu32 " is not a "
                          "power of two from 1 MiB to 256 MiB", bs);
    return 0;
}

int
vhdx_file_params_decode(const uint8_t *buf, size_t len,
                        struct vhdx_params *p, struct tm_err *err)
{
    uint32_t bs;
    uint32_t flags;
    int rc;

    if (len != 8)
        return tm_err_set(err, TM_E_CORRUPT,
                          "file parameters: item is %zu bytes, expected 8",
                          len);
    bs = tm_le32(buf);
    flags = tm_le32(buf + 4);
    rc = check_block_size(bs, err);
    if (rc < 0)
        return rc;
    /* Bits 2..31 are reserved; COMPAT: not checked. */
    p->block_size = bs;
    p->leave_block_allocated = (flags & 1u) != 0;
    p->has_parent = (flags & 2u) != 0;
    return 0;
}

void
vhdx_file_params_encode(const struct vhdx_params *p, uint8_t *buf)
{
    tm_put_le32(buf, p->block_size);
    tm_put_le32(buf + 4, (p->leave_block_allocated ? 1u : 0u) |
                         (p->has_parent ? 2u : 0u));
}

int
vhdx_u64_item_decode(const uint8_t *buf, size_t len, uint64_t *v,
                     struct tm_err *err)
{
    *v = 0;
    if (len != 8)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata item: %zu bytes, expected 8", len);
    *v = tm_le64(buf);
    return 0;
}

int
vhdx_u32_item_decode(const uint8_t *buf, size_t len, uint32_t *v,
                     struct tm_err *err)
{
    *v = 0;
    if (len != 4)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata item: %zu bytes, expected 4", len);
    *v = tm_le32(buf);
    return 0;
}

int
vhdx_params_validate(const struct vhdx_params *p, struct tm_err *err)
{
    int rc = check_block_size(p->block_size, err);

    if (rc < 0)
        return rc;
    if (p->logical_sector != 512 && p->logical_sector != 4096)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata: logical sector size %" PRIu32
                          " is neither 512 nor 4096", p->logical_sector);
    if (p->physical_sector != 512 && p->physical_sector != 4096)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata: physical sector size %" PRIu32
                          " is neither 512 nor 4096", p->physical_sector);
    if (p->virtual_size == 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata: virtual disk size is 0");
    if (p->virtual_size % p->logical_sector != 0)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata: virtual disk size %" PRIu64 " is not a "
                          "multiple of the logical sector size %" PRIu32,
                          p->virtual_size, p->logical_sector);
    if (p->virtual_size > MAX_VIRTUAL_SIZE)
        return tm_err_set(err, TM_E_CORRUPT,
                          "metadata: virtual disk size %" PRIu64 " exceeds "
                          "64 TiB", p->virtual_size);
    return 0;
}

/* ---- BAT geometry (MS-VHDX 2.5) ---------------------------------------- */

/* Expects validated parameters (vhdx_params_validate). */
void
vhdx_geometry(const struct vhdx_params *p, struct vhdx_geometry *g)
{
    uint64_t r = ((uint64_t)1 << 23) * p->logical_sector / p->block_size;
    uint64_t pb = (p->virtual_size + p->block_size - 1) / p->block_size;
    uint64_t sb = (pb + r - 1) / r;

    g->chunk_ratio = r;
    g->payload_blocks = pb;
    g->bitmap_blocks = sb;
    g->bat_entries_write = sb * (r + 1);
    g->bat_entries_min = pb == 0 ? 0 : pb + (pb - 1) / r;
}
