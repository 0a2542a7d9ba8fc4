/* SPDX-License-Identifier: MIT */
/* crash_util.h - what the crash and model tests share: the current
 * place ('where', set by the test) that failure messages name, a
 * xorshift generator, a clock, and the TM_CRASH_STRIDE thinning.
 * Include after <cmocka.h>. */
#ifndef TM_CRASH_UTIL_H
#define TM_CRASH_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static char where[200];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fails the test with 'where' and the message. */
static void
die(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fail_msg("%s: %s", where, msg);
}

static inline uint64_t
next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static inline double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run every stride()-th point (TM_CRASH_STRIDE, default 1). */
static inline unsigned
stride(void)
{
    const char *s = getenv("TM_CRASH_STRIDE");
    unsigned long v = s != NULL ? strtoul(s, NULL, 10) : 1;

    return v > 0 ? (unsigned)v : 1;
}

#endif
