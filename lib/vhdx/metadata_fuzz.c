/* SPDX-License-Identifier: MIT */
/* metadata_fuzz.c - libFuzzer target: arbitrary bytes as a metadata
 * region (the 64 KiB table, then the items; shorter inputs are padded with
 * zeros, the region length is the padded input's).  Every item the table
 * accepts is decoded with the codec for its GUID; when all system items
 * decode, the parameters are validated and the geometry computed.  A
 * decoded table must encode and decode to the same entries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REGION (4u << 20)

static int
decode_item(const uint8_t *region, const struct vhdx_meta_table *mt,
            const struct tm_guid *id, struct vhdx_params *p)
{
    const struct vhdx_meta_entry *e = vhdx_meta_find(mt, id, false);
    struct tm_err err = { 0 };
    uint64_t v64;
    uint32_t v32;
    int rc;

    if (e == NULL)
        return -1;
    if (id == &VHDX_GUID_FILE_PARAMS)
        return vhdx_file_params_decode(region + e->off, e->len, p, &err);
    if (id == &VHDX_GUID_VIRTUAL_SIZE) {
        rc = vhdx_u64_item_decode(region + e->off, e->len, &v64, &err);
        p->virtual_size = v64;
        return rc;
    }
    if (id == &VHDX_GUID_VIRTUAL_DISK_ID) {
        if (e->len != 16)
            return -1;
        memcpy(p->virtual_disk_id.b, region + e->off, 16);
        return 0;
    }
    rc = vhdx_u32_item_decode(region + e->off, e->len, &v32, &err);
    if (id == &VHDX_GUID_LOGICAL_SECTOR)
        p->logical_sector = v32;
    else
        p->physical_sector = v32;
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vhdx_meta_table mt;
    static struct vhdx_meta_table again;
    static uint8_t table[VHDX_METADATA_TABLE_BYTES];
    const struct tm_guid *ids[] = {
        &VHDX_GUID_FILE_PARAMS, &VHDX_GUID_VIRTUAL_SIZE,
        &VHDX_GUID_VIRTUAL_DISK_ID, &VHDX_GUID_LOGICAL_SECTOR,
        &VHDX_GUID_PHYSICAL_SECTOR,
    };
    struct vhdx_params p = { 0 };
    struct vhdx_geometry g;
    struct tm_err err = { 0 };
    uint8_t *region;
    size_t len;
    bool all = true;
    int rc;

    if (size > MAX_REGION)
        return 0;
    len = size < VHDX_METADATA_TABLE_BYTES ? VHDX_METADATA_TABLE_BYTES : size;
    region = calloc(1, len);
    if (region == NULL)
        return 0;
    memcpy(region, data, size);
    rc = vhdx_meta_table_decode(region, len, (uint32_t)len, &mt, &err);
    if (rc < 0) {
        if ((rc != TM_E_CORRUPT && rc != TM_E_UNSUPPORTED) ||
            err.msg[0] == '\0')
            abort();
        goto out_free;
    }
    vhdx_meta_table_encode(&mt, table);
    if (vhdx_meta_table_decode(table, sizeof(table), (uint32_t)len, &again,
                               &err) != 0 || again.count != mt.count)
        abort();
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (decode_item(region, &mt, ids[i], &p) != 0)
            all = false;
    if (all && vhdx_params_validate(&p, &err) == 0) {
        vhdx_geometry(&p, &g);
        if (g.chunk_ratio == 0 || g.payload_blocks == 0 ||
            g.bat_entries_write < g.bat_entries_min ||
            vhdx_bat_index(&g, g.payload_blocks - 1) >= g.bat_entries_min)
            abort();
    }
out_free:
    free(region);
    return 0;
}
