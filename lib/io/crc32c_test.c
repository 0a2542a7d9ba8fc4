/* SPDX-License-Identifier: MIT */
/* crc32c_test.c - CRC-32C: known vectors, the bitwise definition, the
 * hardware path against the software one, and chaining. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "io.h"

/* The definition, one bit at a time (reflected 0x82F63B78). */
static uint32_t
crc_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void
fill_random(uint8_t *p, size_t len, uint64_t *state)
{
    for (size_t i = 0; i < len; i++) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        p[i] = (uint8_t)*state;
    }
}

static void
crc_matches_check_string(void **state)
{
    assert_int_equal(tm_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tm_crc32c_sw(0, "123456789", 9), 0xE3069283u);
}

/* RFC 3720 B.4 vectors. */
static void
crc_matches_iscsi_vectors(void **state)
{
    uint8_t buf[32];

    memset(buf, 0, sizeof(buf));
    assert_int_equal(tm_crc32c(0, buf, 32), 0x8A9136AAu);
    assert_int_equal(tm_crc32c_sw(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(tm_crc32c(0, buf, 32), 0x62A8AB43u);
    assert_int_equal(tm_crc32c_sw(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(tm_crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    assert_int_equal(tm_crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void
crc_of_nothing_is_identity(void **state)
{
    assert_int_equal(tm_crc32c(0, NULL, 0), 0);
    assert_int_equal(tm_crc32c(0x12345678u, "", 0), 0x12345678u);
    assert_int_equal(tm_crc32c_sw(0x12345678u, "", 0), 0x12345678u);
}

static void
crc_sw_matches_bitwise_definition(void **state)
{
    uint8_t buf[300];
    uint64_t rng = 42;

    fill_random(buf, sizeof(buf), &rng);
    for (size_t len = 0; len <= sizeof(buf); len += 7)
        assert_int_equal(tm_crc32c_sw(0, buf, len),
                         crc_bitwise(0, buf, len));
}

static void
crc_hw_matches_sw_at_every_alignment(void **state)
{
    enum { MAX = 4096 };
    uint8_t *buf = malloc(MAX + 16);
    uint64_t rng = 7;

    assert_non_null(buf);
    fill_random(buf, MAX + 16, &rng);
    for (unsigned round = 0; round < 2000; round++) {
        size_t len = (size_t)(rng % (MAX + 1));
        size_t align = (size_t)((rng >> 20) % 16);
        uint32_t seed = (uint32_t)(rng >> 32);

        assert_int_equal(tm_crc32c(seed, buf + align, len),
                         tm_crc32c_sw(seed, buf + align, len));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
    }
    for (size_t len = 0; len < 64; len++)
        for (size_t align = 0; align < 8; align++)
            assert_int_equal(tm_crc32c(0, buf + align, len),
                             crc_bitwise(0, buf + align, len));
    printf("# crc32c path: %s\n", tm_crc32c_is_hw() ? "sse4.2" : "software");
    free(buf);
}

static void
crc_chains_across_any_split(void **state)
{
    uint8_t buf[1000];
    uint64_t rng = 99;
    uint32_t whole;

    fill_random(buf, sizeof(buf), &rng);
    whole = tm_crc32c(0, buf, sizeof(buf));
    for (size_t cut = 0; cut <= sizeof(buf); cut++) {
        uint32_t a = tm_crc32c(0, buf, cut);

        assert_int_equal(tm_crc32c(a, buf + cut, sizeof(buf) - cut), whole);
        a = tm_crc32c_sw(0, buf, cut);
        assert_int_equal(tm_crc32c_sw(a, buf + cut, sizeof(buf) - cut),
                         whole);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc_matches_check_string),
        cmocka_unit_test(crc_matches_iscsi_vectors),
        cmocka_unit_test(crc_of_nothing_is_identity),
        cmocka_unit_test(crc_sw_matches_bitwise_definition),
        cmocka_unit_test(crc_hw_matches_sw_at_every_alignment),
        cmocka_unit_test(crc_chains_across_any_split),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
