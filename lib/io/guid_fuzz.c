/* SPDX-License-Identifier: MIT */
/* guid_fuzz.c - libFuzzer target: arbitrary bytes as a GUID string.  A
 * successful parse must format back to the same text (lower case, no
 * braces) and parse again to the same GUID; a failed one must leave the
 * GUID zeroed. */
#include <stdint.h>
#include <stdlib.h>

#include "io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char
lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct tm_guid g, again;
    char text[TM_GUID_STR_LEN + 1];
    size_t skip;

    if (tm_guid_parse(s, size, &g) != 0) {
        if (!tm_guid_is_zero(&g))
            abort();
        return 0;
    }
    tm_guid_format(&g, text);
    skip = size == TM_GUID_STR_LEN + 2 ? 1 : 0;
    for (size_t i = 0; i < TM_GUID_STR_LEN; i++)
        if (lower(s[skip + i]) != text[i])
            abort();
    if (tm_guid_parse(text, TM_GUID_STR_LEN, &again) != 0 ||
        !tm_guid_equal(&g, &again))
        abort();
    return 0;
}
