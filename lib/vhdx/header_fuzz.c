/* SPDX-License-Identifier: MIT */
/* header_fuzz.c - libFuzzer target: arbitrary bytes as a VHDX header
 * (and as a file type identifier).  A decoded header must encode back to
 * bytes that decode to the same values; the first two 4 KiB halves are
 * also offered to vhdx_header_pick.  Besides the raw bytes, each half is
 * decoded padded to 4 KiB with its checksum fixed up, so the fuzzer gets
 * past the CRC to the field checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
decode_fixed(const uint8_t *data, size_t size, struct vhdx_header *h)
{
    uint8_t buf[VHDX_HEADER_BYTES];
    uint8_t again[VHDX_HEADER_BYTES];
    struct vhdx_header h2;
    struct tm_err err = { 0 };
    int rc;

    memset(buf, 0, sizeof(buf));
    memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
    tm_put_le32(buf + 4, 0);
    tm_put_le32(buf + 4, tm_crc32c(0, buf, sizeof(buf)));
    rc = vhdx_header_decode(buf, sizeof(buf), h, &err);
    if (rc < 0) {
        if (rc != TM_E_CORRUPT && rc != TM_E_UNSUPPORTED)
            abort();
        if (err.msg[0] == '\0')
            abort();
        return rc;
    }
    vhdx_header_encode(h, again);
    if (vhdx_header_decode(again, sizeof(again), &h2, &err) != 0 ||
        memcmp(h, &h2, sizeof(h2)) != 0)
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vhdx_header h[2];
    struct tm_err err = { 0 };
    char creator[64];
    int rc[2];

    /* The raw bytes, exactly as given, with their own length. */
    (void)vhdx_header_decode(data, size, &h[0], &err);
    (void)vhdx_fti_decode(data, size, creator, sizeof(creator), &err);
    for (int i = 0; i < 2; i++) {
        size_t off = i * (size_t)VHDX_HEADER_BYTES;
        const uint8_t *p = size > off ? data + off : data;
        size_t n = size > off ? size - off : 0;

        rc[i] = decode_fixed(p, n, &h[i]);
    }
    rc[0] = vhdx_header_pick(rc[0] == 0 ? &h[0] : NULL,
                             rc[1] == 0 ? &h[1] : NULL, &err);
    if (rc[0] != 0 && rc[0] != 1 && rc[0] != TM_E_CORRUPT)
        abort();
    return 0;
}
