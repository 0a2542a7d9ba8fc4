/* SPDX-License-Identifier: MIT */
/* guid_test.c - GUID formatting in the Microsoft byte order, parsing and
 * its refusals, generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io.h"

static const struct tm_guid sample = { {
    0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
    0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b,
} };
static const char sample_str[] = "caa16737-fa36-4d43-b3b6-33f0aa44e76b";

static void
guid_formats_data1_to_3_little_endian(void **state)
{
    char buf[TM_GUID_STR_LEN + 1];

    memset(buf, 'x', sizeof(buf));
    tm_guid_format(&sample, buf);
    assert_string_equal(buf, sample_str);
}

static void
guid_parses_plain_braced_and_upper_case(void **state)
{
    const char *forms[] = {
        "caa16737-fa36-4d43-b3b6-33f0aa44e76b",
        "{caa16737-fa36-4d43-b3b6-33f0aa44e76b}",
        "CAA16737-FA36-4D43-B3B6-33F0AA44E76B",
        "{CaA16737-fA36-4d43-B3b6-33f0AA44e76B}",
    };

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct tm_guid g;

        assert_int_equal(tm_guid_parse(forms[i], strlen(forms[i]), &g), 0);
        assert_memory_equal(g.b, sample.b, 16);
        assert_true(tm_guid_equal(&g, &sample));
    }
}

static void
guid_parse_reads_only_len_bytes(void **state)
{
    char buf[64];
    struct tm_guid g;

    memcpy(buf, sample_str, TM_GUID_STR_LEN);
    memset(buf + TM_GUID_STR_LEN, 'z', sizeof(buf) - TM_GUID_STR_LEN);
    assert_int_equal(tm_guid_parse(buf, TM_GUID_STR_LEN, &g), 0);
    assert_true(tm_guid_equal(&g, &sample));
}

static void
guid_parse_rejects_malformed_input(void **state)
{
    const char *bad[] = {
        "",
        "caa16737-fa36-4d43-b3b6-33f0aa44e76",      /* short */
        "caa16737-fa36-4d43-b3b6-33f0aa44e76b0",    /* long */
        "caa16737fa36-4d43-b3b6-33f0aa44e76b0",     /* hyphen missing */
        "caa1673-7fa36-4d43-b3b6-33f0aa44e76b",     /* hyphen moved */
        "caa16737-fa36-4d43-b3b6-33f0aa44e76g",     /* not hex */
        "caa16737-fa36-4d43-b3b6-33f0aa44e7 b",
        "caa16737-fa36-4d43-b3b6+33f0aa44e76b",
        "{caa16737-fa36-4d43-b3b6-33f0aa44e76b",    /* one brace */
        "caa16737-fa36-4d43-b3b6-33f0aa44e76b}",
        "(caa16737-fa36-4d43-b3b6-33f0aa44e76b)",
        "}caa16737-fa36-4d43-b3b6-33f0aa44e76b{",
        "{{caa16737-fa36-4d43-b3b6-33f0aa44e76b}}",
        "0xa16737-fa36-4d43-b3b6-33f0aa44e76b",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tm_guid g = sample;

        assert_int_equal(tm_guid_parse(bad[i], strlen(bad[i]), &g),
                         TM_E_INVALID);
        assert_true(tm_guid_is_zero(&g));   /* failed calls zero it */
    }
    /* An embedded NUL inside the counted length. */
    {
        char buf[TM_GUID_STR_LEN];
        struct tm_guid g;

        memcpy(buf, sample_str, TM_GUID_STR_LEN);
        buf[20] = '\0';
        assert_int_equal(tm_guid_parse(buf, sizeof(buf), &g),
                         TM_E_INVALID);
    }
    assert_int_equal(tm_guid_parse(NULL, 36, &(struct tm_guid){ { 0 } }),
                     TM_E_INVALID);
}

static void
guid_generate_is_version4_and_round_trips(void **state)
{
    struct tm_guid prev = { { 0 } };

    for (int i = 0; i < 100; i++) {
        struct tm_guid g, back;
        char buf[TM_GUID_STR_LEN + 1];

        assert_int_equal(tm_guid_generate(&g), 0);
        assert_false(tm_guid_is_zero(&g));
        assert_false(tm_guid_equal(&g, &prev));
        tm_guid_format(&g, buf);
        assert_int_equal(strlen(buf), TM_GUID_STR_LEN);
        assert_int_equal(buf[14], '4');
        assert_non_null(strchr("89ab", buf[19]));
        assert_int_equal(tm_guid_parse(buf, strlen(buf), &back), 0);
        assert_true(tm_guid_equal(&g, &back));
        prev = g;
    }
}

static void
guid_zero_and_equal(void **state)
{
    struct tm_guid z = { { 0 } };
    struct tm_guid s = sample;

    assert_true(tm_guid_is_zero(&z));
    assert_false(tm_guid_is_zero(&sample));
    assert_true(tm_guid_equal(&s, &sample));
    s.b[15] ^= 1;
    assert_false(tm_guid_equal(&s, &sample));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(guid_formats_data1_to_3_little_endian),
        cmocka_unit_test(guid_parses_plain_braced_and_upper_case),
        cmocka_unit_test(guid_parse_reads_only_len_bytes),
        cmocka_unit_test(guid_parse_rejects_malformed_input),
        cmocka_unit_test(guid_generate_is_version4_and_round_trips),
        cmocka_unit_test(guid_zero_and_equal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
