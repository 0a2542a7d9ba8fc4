/* SPDX-License-Identifier: MIT */
/* types.h - the plain types the public headers share: error detail, GUIDs
 * and byte ranges.  No functions live here; lib/io declares the helpers
 * that work on them. */
#ifndef TIDEMARK_TYPES_H
#define TIDEMARK_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error detail carried by a handle until its next call: the code (a
 * tm_err_code from errors.h or -errno), a one-line message (lower case,
 * no final full stop) and, when it concerns a place in a file, that
 * offset (UINT64_MAX otherwise). */
struct tm_err {
    int code;
    uint64_t file_off;
    char msg[512];
};

/* 16 bytes in the on-disk (Microsoft mixed-endian) order. */
struct tm_guid {
    uint8_t b[16];
};
#define TM_GUID_STR_LEN 36              /* without braces or NUL */

/* A byte range, as QUERY_CHANGES_VIRTUAL_DISK_RANGE without its Reserved
 * field. */
struct tm_range {
    uint64_t off;
    uint64_t len;
};

#ifdef __cplusplus
}
#endif
#endif
