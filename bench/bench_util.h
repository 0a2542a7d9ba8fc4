/* SPDX-License-Identifier: MIT */
/* bench_util.h - what the benchmark programs share: a clock, a seedable
 * generator, the never-zero data writes copy from, error and number
 * reporting, and the memcpy floor.  Define BENCH_NAME (the program's name
 * for messages) before including it. */
#ifndef TM_BENCH_UTIL_H
#define TM_BENCH_UTIL_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io.h"

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_util.h"
#endif

#define MiB ((uint64_t)1 << 20)
#define SLOT ((uint64_t)4096)           /* write alignment */
#define DATA_BYTES (4 * MiB)            /* writes take their bytes here */

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64: a fixed, seedable sequence. */
static uint64_t
next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Pseudo-random, never-zero bytes: the data every write copies from. */
static uint8_t *
make_data(void)
{
    uint8_t *d = malloc(DATA_BYTES);
    uint64_t s = 42;

    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < DATA_BYTES; i += 8) {
        uint64_t v = next_rand(&s) | 0x0101010101010101ull;

        memcpy(d + i, &v, 8);
    }
    return d;
}

/* Where write i takes its bytes from in the data buffer. */
static const uint8_t *
data_for(const uint8_t *data, uint64_t i, size_t wlen)
{
    return data + (i * 4096 * 7) % (DATA_BYTES - wlen);
}

static int
fail(const char *what, int rc, const struct tm_err *e)
{
    fprintf(stderr, BENCH_NAME ": %s: %s%s%s\n", what, tm_strerror(rc),
            e != NULL && e->msg[0] != '\0' ? ": " : "",
            e != NULL ? e->msg : "");
    return 1;
}

static int
parse_u64(const char *s, uint64_t *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0') {
        fprintf(stderr, BENCH_NAME ": not a number: '%s'\n", s);
        return -1;
    }
    return 0;
}

static int
parse_args(char **argv, int n, uint64_t *v)
{
    for (int i = 0; i < n; i++)
        if (parse_u64(argv[i], &v[i]) < 0)
            return -1;
    return 0;
}

/* The floor for copying 'mib' MiB in memory: best of 5. */
static int
cmd_memcpy(uint64_t mib)
{
    size_t n = (size_t)(mib * MiB);
    uint8_t *a = malloc(n), *b = malloc(n);
    double best = 1e9;

    if (a == NULL || b == NULL)
        return fail("memcpy", -ENOMEM, NULL);
    memset(a, 1, n);
    memset(b, 2, n);
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        double t;

        memcpy(b, a, n);
        t = now() - t0;
        if (t < best)
            best = t;
        a[r] = b[n - 1 - (size_t)r];    /* keep the copies live */
    }
    printf("secs=%.4f\n", best);
    free(a);
    free(b);
    return 0;
}

#endif
