/* SPDX-License-Identifier: MIT */
/* crc32c.c - CRC-32C (Castagnoli), as VHDX and our own formats use it.
 *
 * Two paths with identical results: the SSE4.2 'crc32' instruction on
 * x86-64 CPUs that have it, and slice-by-8 tables (crc32c_table.h, const,
 * generated) everywhere else.  The choice is made on first use and cached
 * in one atomic function pointer: the only mutable static in lib/io.  A
 * race on first use is harmless, as every thread computes and stores the
 * same value. */
#include <stdatomic.h>

#include "crc32c_table.h"
#include "io.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

typedef uint32_t (*crc32c_fn)(uint32_t crc, const uint8_t *p, size_t len);

/* The raw (un-inverted) CRC register over p[0..len). */
static uint32_t
crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint32_t lo = crc ^ tm_le32(p);
        uint32_t hi = tm_le32(p + 4);

        crc = crc32c_table[7][lo & 0xff] ^
              crc32c_table[6][(lo >> 8) & 0xff] ^
              crc32c_table[5][(lo >> 16) & 0xff] ^
              crc32c_table[4][lo >> 24] ^
              crc32c_table[3][hi & 0xff] ^
              crc32c_table[2][(hi >> 8) & 0xff] ^
              crc32c_table[1][(hi >> 16) & 0xff] ^
              crc32c_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    return crc;
}

#if defined(__x86_64__)
/* One dependent chain of 8-byte crc32 instructions (3-cycle latency):
 * several GB/s.  Interleaving three streams and combining them would
 * roughly triple that, if a profile ever asks for it. */
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;

    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;

        memcpy(&v, p, sizeof(v));
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    return (uint32_t)c;
}
#endif

static crc32c_fn
choose(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        return crc_hw;
#endif
    return crc_sw;
}

static crc32c_fn
impl(void)
{
    static _Atomic(crc32c_fn) cached;
    crc32c_fn fn = atomic_load_explicit(&cached, memory_order_relaxed);

    if (fn == NULL) {
        fn = choose();
        atomic_store_explicit(&cached, fn, memory_order_relaxed);
    }
    return fn;
}

uint32_t
tm_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~impl()(~crc, buf, len);
}

uint32_t
tm_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    return ~crc_sw(~crc, buf, len);
}

bool
tm_crc32c_is_hw(void)
{
    return impl() != crc_sw;
}

uint32_t
tm_crc32c_skip(const void *buf, size_t len, size_t field)
{
    static const uint8_t zero[4];
    const uint8_t *p = buf;
    uint32_t crc = tm_crc32c(0, p, field);

    crc = tm_crc32c(crc, zero, sizeof(zero));
    return tm_crc32c(crc, p + field + 4, len - field - 4);
}
