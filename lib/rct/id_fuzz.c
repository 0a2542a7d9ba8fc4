/* SPDX-License-Identifier: MIT */
/* id_fuzz.c - libFuzzer target: arbitrary bytes as an RCT ID, the string
 * a client hands in ('rct changes --since', later the API and NBD).  The
 * parser must accept exactly the 50-character form, give back what
 * formats to the same ID (hex case aside), and a query with the string on
 * a tracker must answer or fail with one of the ID errors, never crash.
 * Seeds: tests/corpus/id/. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rct_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One tracker for every input: one lineage, IDs 1 and 2 sealed. */
static struct tm_rct *
tracker(void)
{
    static struct tm_rct *t;
    struct tm_rct_binding b = { .virtual_size = 1u << 20 };
    char id[TM_RCT_ID_MAX + 1];
    struct tm_err err;

    if (t != NULL)
        return t;
    if (tm_rct_create(tm_io_mem_new(), tm_io_mem_new(), NULL, &b, &t,
                      &err) != 0 ||
        tm_rct_seal(t, id) != 0 || tm_rct_mark(t, 0, 1) != 0 ||
        tm_rct_seal(t, id) != 0)
        abort();
    return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[TM_RCT_ID_MAX + 2], back[TM_RCT_ID_MAX + 1];
    struct tm_guid lineage;
    struct tm_range r[4];
    uint64_t processed;
    uint32_t counter;
    size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
    int rc;

    memcpy(s, data, n);
    s[n] = '\0';
    if (rct_id_parse(s, &lineage, &counter) == 0) {
        rct_id_format(&lineage, counter, back);
        if (strlen(back) != strlen(s))
            abort();
        for (size_t i = 0; back[i] != '\0'; i++)
            if (tolower((unsigned char)back[i]) !=
                tolower((unsigned char)s[i]))
                abort();
    }
    n = 4;
    rc = tm_rct_query(tracker(), s, NULL, 0, 1u << 20, r, &n, &processed);
    if (rc != 0 && rc != TM_E_RCT_INVALID_ID && rc != TM_E_RCT_OTHER_DISK &&
        rc != TM_E_RCT_RESET && rc != TM_E_RCT_MISSING)
        abort();
    return 0;
}
