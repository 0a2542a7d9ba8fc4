/* SPDX-License-Identifier: MIT */
/* log_fuzz.c - libFuzzer target: arbitrary bytes as the contents of a
 * 1 MiB log, replayed into a copy-on-write overlay and scanned.
 *
 *   bytes 0-1   start sector (LE, modulo 256): where the rest goes, so
 *               inputs can wrap past the log end
 *   byte 2      flags: bit 0 reseal every entry header found (checksum
 *               recomputed over its EntryLength) to get past the CRC
 *   then        up to 1 MiB of log contents
 *
 * The file is 4 MiB of zeros with the log at 1 MiB.  The header's LogGuid
 * is fixed; seeds carry entries with it.  Nothing may
 * crash, hang or leak, and errors must come with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhdx_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LOG_OFF (1u << 20)
#define LOG_LEN (1u << 20)
#define FILE_BYTES (4u << 20)

/* The GUID the seeds' entries carry (tests/corpus/log). */
static const struct tm_guid fuzz_guid = {{
    0x4c, 0x4f, 0x47, 0x46, 0x55, 0x5a, 0x5a, 0x47,
    0x55, 0x49, 0x44, 0x30, 0x31, 0x32, 0x33, 0x34 }};

static void
reseal(uint8_t *log)
{
    for (uint32_t pos = 0; pos < LOG_LEN; pos += VHDX_LOG_SECTOR) {
        uint32_t len = tm_le32(log + pos + 8);
        uint32_t crc;

        if (memcmp(log + pos, "loge", 4) != 0 || len < 8 || len > LOG_LEN)
            continue;
        tm_put_le32(log + pos + 4, 0);
        if (pos + len <= LOG_LEN) {
            crc = tm_crc32c(0, log + pos, len);
        } else {
            crc = tm_crc32c(0, log + pos, LOG_LEN - pos);
            crc = tm_crc32c(crc, log, len - (LOG_LEN - pos));
        }
        tm_put_le32(log + pos + 4, crc);
    }
}

static void
ignore_entry(void *user, const struct vhdx_log_entry_info *e)
{
    (void)user;
    (void)e;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vhdx_header h = { .seq = 1, .version = 1, .log_guid = fuzz_guid,
                             .log_offset = LOG_OFF, .log_length = LOG_LEN };
    struct vhdx_log_replay_result res;
    struct tm_err err = { 0 };
    struct tm_io *io;
    struct tm_io *ov;
    static uint8_t log[LOG_LEN];
    uint32_t start;
    int rc;

    if (size < 3)
        return 0;
    memset(log, 0, sizeof(log));
    start = (uint32_t)(tm_le16(data) % (LOG_LEN / VHDX_LOG_SECTOR)) *
            VHDX_LOG_SECTOR;
    for (size_t i = 3; i < size && i - 3 < LOG_LEN; i++)
        log[(start + (i - 3)) % LOG_LEN] = data[i];
    if (data[2] & 1)
        reseal(log);
    io = tm_io_mem_new();
    if (io == NULL || tm_io_truncate(io, FILE_BYTES) != 0 ||
        tm_io_pwrite_all(io, log, LOG_LEN, LOG_OFF) != 0)
        goto out_close;
    ov = tm_io_overlay_new(io);
    if (ov == NULL)
        goto out_close;
    rc = vhdx_log_replay(io, ov, &h, &res, &err);
    if (rc < 0 && err.msg[0] == '\0')
        abort();
    if (rc == 0 && (!res.replayed || res.entries == 0 || res.head_seq == 0))
        abort();
    (void)vhdx_log_scan(io, LOG_OFF, LOG_LEN, ignore_entry, NULL, &err);
    tm_io_close(ov);
out_close:
    tm_io_close(io);
    return 0;
}
