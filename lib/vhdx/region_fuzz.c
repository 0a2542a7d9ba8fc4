/* SPDX-License-Identifier: MIT */
/* region_fuzz.c - libFuzzer target: arbitrary bytes as a region table.
 * The input is decoded as given, then padded to 64 KiB with its checksum
 * fixed up so the fuzzer reaches the entry checks.  A decoded table must
 * encode to bytes that decode to the same entries, and must hold the BAT
 * and metadata regions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_round_trip(const struct vhdx_region_table *rt, uint8_t *buf)
{
    static struct vhdx_region_table again;
    struct tm_err err = { 0 };

    if (vhdx_region_find(rt, &VHDX_GUID_BAT) == NULL ||
        vhdx_region_find(rt, &VHDX_GUID_METADATA) == NULL)
        abort();
    vhdx_region_table_encode(rt, buf);
    if (vhdx_region_table_decode(buf, VHDX_RT_BYTES, &again, &err) != 0 ||
        again.count != rt->count)
        abort();
    for (uint32_t i = 0; i < rt->count; i++)
        if (!tm_guid_equal(&again.e[i].guid, &rt->e[i].guid) ||
            again.e[i].file_off != rt->e[i].file_off ||
            again.e[i].len != rt->e[i].len ||
            again.e[i].required != rt->e[i].required)
            abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vhdx_region_table rt;
    static uint8_t buf[VHDX_RT_BYTES];
    struct tm_err err = { 0 };
    int rc;

    rc = vhdx_region_table_decode(data, size, &rt, &err);
    if (rc == 0)
        check_round_trip(&rt, buf);
    memset(buf, 0, sizeof(buf));
    memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
    tm_put_le32(buf + 4, 0);
    tm_put_le32(buf + 4, tm_crc32c(0, buf, sizeof(buf)));
    rc = vhdx_region_table_decode(buf, sizeof(buf), &rt, &err);
    if (rc == 0)
        check_round_trip(&rt, buf);
    else if ((rc != TM_E_CORRUPT && rc != TM_E_UNSUPPORTED) ||
             err.msg[0] == '\0')
        abort();
    return 0;
}
