/* SPDX-License-Identifier: MIT */
/* vdisk_test.c - lib/vdisk through its public API (include/tidemark/
 * vdisk.h) on real files, each test in a temporary directory it removes:
 * create and open in every mode, every GetVirtualDiskInformation kind
 * (checked against tm_vhdx_get_info and the parameters given), every
 * SetVirtualDiskInformation kind, change tracking (exact ranges, paging,
 * queries between IDs, enable/disable/re-enable), the ways tracking is
 * lost or kept when files are written, deleted, damaged, swapped, copied
 * or resized behind the handle's back, and the Win32 error mapping. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vdisk_int.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)

/* Not a multiple of 4 KiB: the last granule is partial. */
#define VSIZE (64 * MiB + 1536)
#define MAXR 4096

struct fx {
    char dir[512];
};

/* path() results, round robin. */
static char path_buf[4][1024];
static unsigned path_next;

/* ---- fixture and file helpers -------------------------------------------- */

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "%s/vdisk_test.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    int rc = nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

    free(fx);
    return rc == 0 ? 0 : -1;
}

/* '<dir>/<name>'; valid for the next three calls. */
static const char *
path(struct fx *fx, const char *name)
{
    char *b = path_buf[path_next++ % 4];

    snprintf(b, sizeof(path_buf[0]), "%s/%s", fx->dir, name);
    return b;
}

static uint8_t *
slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    uint8_t *buf;
    long n;

    if (f == NULL)
        fail_msg("cannot open '%s': %s", p, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void
spit(const char *p, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(p, "wb");

    if (f == NULL)
        fail_msg("cannot create '%s': %s", p, strerror(errno));
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void
copy_file(const char *src, const char *dst)
{
    size_t len;
    uint8_t *buf = slurp(src, &len);

    spit(dst, buf, len);
    free(buf);
}

static bool
exists(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0;
}

/* Flips byte 'off' of file 'p'. */
static void
flip_byte(const char *p, uint64_t off)
{
    int fd = open(p, O_RDWR);
    uint8_t b;

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* ---- disk helpers -------------------------------------------------------- */

static void
assert_ok(int rc, struct tm_vdisk *d, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %d (%s)", what, rc,
                 d != NULL ? tm_vdisk_err(d)->msg : tm_strerror(rc));
}

/* A new dynamic disk at 'p' (1 MiB blocks); tracking with 'gran' when
 * 'gran' is not 0 (1 = the default). */
static struct tm_vdisk *
create_disk(const char *p, uint64_t vsize, uint32_t gran)
{
    struct tm_vdisk_create_params cp = {
        .virtual_size = vsize, .block_size = 1 << 20,
        .change_tracking = gran != 0,
        .tracking_granularity = gran == 1 ? 0 : gran,
    };
    struct tm_vdisk *d = NULL;
    struct tm_err err;
    int rc = tm_vdisk_create(p, &cp, &d, &err);

    if (rc != 0)
        fail_msg("create '%s': %d (%s)", p, rc, err.msg);
    assert_non_null(d);
    return d;
}

static struct tm_vdisk *
open_disk(const char *p, unsigned flags)
{
    struct tm_vdisk *d = NULL;
    struct tm_err err;
    int rc = tm_vdisk_open(p, flags, NULL, &d, &err);

    if (rc != 0)
        fail_msg("open '%s': %d (%s)", p, rc, err.msg);
    assert_non_null(d);
    return d;
}

static uint8_t
pat(unsigned tag, uint64_t pos)
{
    return (uint8_t)((tag * 37 + pos * 7 + (pos >> 9)) | 1);
}

static void
write_pat(struct tm_vdisk *d, uint64_t off, size_t len, unsigned tag)
{
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = pat(tag, off + i);
    assert_ok(tm_vdisk_write(d, buf, len, off), d, "write");
    free(buf);
}

static void
expect_pat(struct tm_vdisk *d, uint64_t off, size_t len, unsigned tag)
{
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    assert_ok(tm_vdisk_read(d, buf, len, off), d, "read");
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pat(tag, off + i))
            fail_msg("byte %#" PRIx64 " reads %#x, want %#x", off + i,
                     buf[i], pat(tag, off + i));
    free(buf);
}

static struct tm_vdisk_info
info_of(struct tm_vdisk *d, enum tm_vdisk_info_kind kind)
{
    struct tm_vdisk_info in;

    memset(&in, 0xa5, sizeof(in));
    in.struct_size = sizeof(in);
    in.kind = kind;
    assert_ok(tm_vdisk_get_info(d, &in), d, "get_info");
    assert_int_equal(in.kind, kind);
    return in;
}

static struct tm_vhdx_info
vhdx_info_of(struct tm_vdisk *d)
{
    struct tm_vhdx_info vi;

    assert_int_equal(tm_vhdx_get_info(vdisk_vhdx(d), &vi), 0);
    return vi;
}

static void
assert_guid_eq(struct tm_guid a, struct tm_guid b)
{
    if (!tm_guid_equal(&a, &b)) {
        char x[40], y[40];

        tm_guid_format(&a, x);
        tm_guid_format(&b, y);
        fail_msg("GUID %s != %s", x, y);
    }
}

static void
seal(struct tm_vdisk *d, char id[TM_VDISK_RCT_ID_MAX + 1])
{
    assert_ok(tm_vdisk_seal(d, id), d, "seal");
    assert_int_equal(strlen(id), 50);
}

/* Every range changed since 'id' in [off, off + len) with one big call;
 * the return code of the query. */
static int
query_all(struct tm_vdisk *d, const char *id, const char *limit,
          uint64_t off, uint64_t len, struct tm_range *r, size_t *n)
{
    uint64_t processed = 12345;
    int rc;

    *n = MAXR;
    if (limit != NULL)
        rc = tm_vdisk_query_changes_between(d, id, limit, off, len, r, n,
                                            &processed);
    else
        rc = tm_vdisk_query_changes(d, id, off, len, r, n, &processed);
    if (rc == 0) {
        assert_true(*n < MAXR);
        assert_int_equal(processed, len);
    } else {
        assert_int_equal(*n, 0);
        assert_int_equal(processed, 0);
    }
    return rc;
}

static int
query_rc(struct tm_vdisk *d, const char *id)
{
    struct tm_range r[4];
    size_t n = 4;
    uint64_t processed;

    return tm_vdisk_query_changes(d, id, 0, UINT64_MAX, r, &n, &processed);
}

/* The whole disk since 'id' must be exactly the ranges given (pairs of
 * offset, length; 'nwant' pairs). */
static void
expect_ranges(struct tm_vdisk *d, const char *id, size_t nwant, ...)
{
    struct tm_range *r = malloc(MAXR * sizeof(*r));
    size_t n;
    va_list ap;
    int rc;

    assert_non_null(r);
    rc = query_all(d, id, NULL, 0, VSIZE, r, &n);
    if (rc != 0)
        fail_msg("query %s: %d (%s)", id, rc, tm_vdisk_err(d)->msg);
    va_start(ap, nwant);
    for (size_t i = 0; i < nwant; i++) {
        uint64_t off = va_arg(ap, uint64_t);
        uint64_t len = va_arg(ap, uint64_t);

        if (i >= n)
            fail_msg("%zu ranges, want %zu", n, nwant);
        if (r[i].off != off || r[i].len != len)
            fail_msg("range %zu is %#" PRIx64 "+%#" PRIx64 ", want %#" PRIx64
                     "+%#" PRIx64, i, r[i].off, r[i].len, off, len);
    }
    va_end(ap);
    if (n != nwant)
        fail_msg("%zu ranges, want %zu (extra %#" PRIx64 "+%#" PRIx64 ")", n,
                 nwant, r[nwant].off, r[nwant].len);
    free(r);
}

static void
assert_err_rc(int rc, struct tm_vdisk *d, int want, const char *part)
{
    if (rc != want)
        fail_msg("got %d (%s), want %d (%s)", rc,
                 d ? tm_vdisk_err(d)->msg : "", want, tm_strerror(want));
    if (d != NULL && part != NULL &&
        strstr(tm_vdisk_err(d)->msg, part) == NULL)
        fail_msg("message '%s' lacks '%s'", tm_vdisk_err(d)->msg, part);
    if (d != NULL)
        assert_int_equal(tm_vdisk_err(d)->code, want);
}

static struct tm_vdisk_info
tracking_of(struct tm_vdisk *d)
{
    return info_of(d, TM_VDISK_INFO_CHANGE_TRACKING_STATE);
}

/* ---- create, open, information ------------------------------------------- */

static void
create_plain_reports_every_info_kind(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk_create_params cp = {
        .virtual_size = VSIZE, .block_size = 2 << 20, .logical_sector = 512,
        .physical_sector = 512, .unique_id_set = true,
    };
    struct tm_vdisk *d;
    struct tm_vdisk_info in;
    struct tm_vhdx_info vi;
    struct tm_guid ms, before;
    struct tm_err err;
    char s[40];

    assert_int_equal(tm_guid_generate(&cp.unique_id), 0);
    assert_ok(tm_vdisk_create(path(fx, "a.vhdx"), &cp, &d, &err), NULL,
              "create");
    vi = vhdx_info_of(d);

    in = info_of(d, TM_VDISK_INFO_SIZE);
    assert_int_equal(in.size.virtual_size, VSIZE);
    assert_int_equal(in.size.block_size, 2 << 20);
    assert_int_equal(in.size.sector_size, 512);
    assert_int_equal(in.size.physical_size, vi.file_size);
    assert_true(in.size.physical_size > 0);
    assert_true(in.size.physical_size < VSIZE);         /* dynamic */

    in = info_of(d, TM_VDISK_INFO_IDENTIFIER);
    assert_guid_eq(in.identifier, vi.data_write_guid);
    before = in.identifier;

    in = info_of(d, TM_VDISK_INFO_VIRTUAL_STORAGE_TYPE);
    assert_int_equal(in.virtual_storage_type.device_id, 3);
    assert_int_equal(tm_guid_parse("ec984aec-a0f9-47e9-901f-71415a66345b",
                                   36, &ms), 0);
    assert_guid_eq(in.virtual_storage_type.vendor_id, ms);
    tm_guid_format(&in.virtual_storage_type.vendor_id, s);
    assert_string_equal(s, "ec984aec-a0f9-47e9-901f-71415a66345b");

    in = info_of(d, TM_VDISK_INFO_PROVIDER_SUBTYPE);
    assert_int_equal(in.provider_subtype, TM_VDISK_SUBTYPE_DYNAMIC);
    assert_int_equal(in.provider_subtype, 3);
    in = info_of(d, TM_VDISK_INFO_IS_4K_ALIGNED);
    assert_true(in.is_4k_aligned);
    in = info_of(d, TM_VDISK_INFO_VHD_PHYSICAL_SECTOR_SIZE);
    assert_int_equal(in.vhd_physical_sector_size, 512);
    in = info_of(d, TM_VDISK_INFO_SMALLEST_SAFE_VIRTUAL_SIZE);
    assert_int_equal(in.smallest_safe_virtual_size, 512);  /* one sector */
    in = info_of(d, TM_VDISK_INFO_VIRTUAL_DISK_ID);
    assert_guid_eq(in.virtual_disk_id, cp.unique_id);
    assert_guid_eq(in.virtual_disk_id, vi.virtual_disk_id);

    in = info_of(d, TM_VDISK_INFO_CHANGE_TRACKING_STATE);
    assert_false(in.change_tracking.enabled);
    assert_false(in.change_tracking.newer_changes);
    assert_string_equal(in.change_tracking.most_recent_id, "");
    assert_int_equal(in.change_tracking.granularity, 0);
    assert_int_equal(in.change_tracking.sealed_ids, 0);
    assert_int_equal(in.change_tracking.found, TM_VDISK_TRACKING_CLEAN);

    /* Not a differencing disk: ERROR_INVALID_PARAMETER. */
    in.kind = TM_VDISK_INFO_PARENT_LOCATION;
    assert_err_rc(tm_vdisk_get_info(d, &in), d, TM_E_INVALID,
                  "not a differencing disk");
    in.kind = TM_VDISK_INFO_PARENT_IDENTIFIER;
    assert_err_rc(tm_vdisk_get_info(d, &in), d, TM_E_INVALID,
                  "not a differencing disk");

    /* The first write of an open renews IDENTIFIER once, the DataWriteGuid
     * the engine shows; later writes keep it. */
    write_pat(d, 0, 4096, 1);
    in = info_of(d, TM_VDISK_INFO_IDENTIFIER);
    assert_false(tm_guid_equal(&in.identifier, &before));
    assert_guid_eq(in.identifier, vhdx_info_of(d).data_write_guid);
    before = in.identifier;
    write_pat(d, 8192, 4096, 2);
    in = info_of(d, TM_VDISK_INFO_IDENTIFIER);
    assert_guid_eq(in.identifier, before);
    assert_ok(tm_vdisk_close(d), NULL, "close");

    /* Reopened read-only: the same facts, the same identifier. */
    d = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    in = info_of(d, TM_VDISK_INFO_IDENTIFIER);
    assert_guid_eq(in.identifier, before);
    in = info_of(d, TM_VDISK_INFO_VIRTUAL_DISK_ID);
    assert_guid_eq(in.virtual_disk_id, cp.unique_id);
    in = info_of(d, TM_VDISK_INFO_SIZE);
    assert_int_equal(in.size.virtual_size, VSIZE);
    expect_pat(d, 0, 4096, 1);
    expect_pat(d, 8192, 4096, 2);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
unknown_info_kind_is_invalid(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 0);
    static const int bad[] = { 0, 5, 9, 12, 13, 16, 99, -1 };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tm_vdisk_info in = { .kind = (enum tm_vdisk_info_kind)bad[i] };

        assert_err_rc(tm_vdisk_get_info(d, &in), d, TM_E_INVALID,
                      "unknown");
    }
    assert_int_equal(tm_vdisk_get_info(d, NULL), TM_E_INVALID);
    /* A struct smaller than this header's is refused; 0 means ours. */
    {
        struct tm_vdisk_info in = { .struct_size = 8,
                                    .kind = TM_VDISK_INFO_SIZE };

        assert_err_rc(tm_vdisk_get_info(d, &in), d, TM_E_INVALID, "size");
        in.struct_size = 0;
        assert_ok(tm_vdisk_get_info(d, &in), d, "get_info");
        assert_int_equal(in.struct_size, sizeof(in));
        assert_int_equal(in.size.virtual_size, VSIZE);
    }
    assert_int_equal(tm_vdisk_get_info(NULL, &(struct tm_vdisk_info){
                         .kind = TM_VDISK_INFO_SIZE }), TM_E_INVALID);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
create_fixed_is_fixed(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk_create_params cp = {
        .virtual_size = 8 * MiB, .block_size = 1 << 20, .fixed = true,
        .logical_sector = 4096,
    };
    struct tm_vdisk *d;
    struct tm_vdisk_info in;
    struct tm_err err;

    assert_ok(tm_vdisk_create(path(fx, "f.vhdx"), &cp, &d, &err), NULL,
              "create");
    in = info_of(d, TM_VDISK_INFO_PROVIDER_SUBTYPE);
    assert_int_equal(in.provider_subtype, TM_VDISK_SUBTYPE_FIXED);
    in = info_of(d, TM_VDISK_INFO_SIZE);
    assert_int_equal(in.size.virtual_size, 8 * MiB);
    assert_int_equal(in.size.sector_size, 4096);
    assert_true(in.size.physical_size >= 8 * MiB);
    in = info_of(d, TM_VDISK_INFO_VHD_PHYSICAL_SECTOR_SIZE);
    assert_int_equal(in.vhd_physical_sector_size, 4096);       /* default */
    assert_ok(tm_vdisk_close(d), NULL, "close");

    /* An existing path is refused, and left alone. */
    assert_int_equal(tm_vdisk_create(path(fx, "f.vhdx"), &cp, &d, &err),
                     -EEXIST);
    assert_null(d);
    d = open_disk(path(fx, "f.vhdx"), 0);
    in = info_of(d, TM_VDISK_INFO_PROVIDER_SUBTYPE);
    assert_int_equal(in.provider_subtype, 2);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
smallest_safe_size_follows_the_last_data(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 0);
    struct tm_vdisk_info in;
    uint8_t one = 0x77;

    assert_ok(tm_vdisk_write(d, &one, 1, 40 * MiB + 700), d, "write");
    in = info_of(d, TM_VDISK_INFO_SMALLEST_SAFE_VIRTUAL_SIZE);
    assert_int_equal(in.smallest_safe_virtual_size, 40 * MiB + 1024);
    assert_ok(tm_vdisk_write(d, &one, 1, VSIZE - 1000), d, "write");
    in = info_of(d, TM_VDISK_INFO_SMALLEST_SAFE_VIRTUAL_SIZE);
    assert_int_equal(in.smallest_safe_virtual_size, VSIZE - 512);
    /* Below it a shrink is refused; at it, it works. */
    assert_err_rc(tm_vdisk_resize(d, VSIZE - 1024), d, TM_E_RANGE, NULL);
    assert_ok(tm_vdisk_resize(d, VSIZE - 512), d, "resize");
    in = info_of(d, TM_VDISK_INFO_SIZE);
    assert_int_equal(in.size.virtual_size, VSIZE - 512);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

/* A parent with data and a child of it; returns the parent's
 * IDENTIFIER. */
static struct tm_guid
make_chain(struct fx *fx, const char *parent, const char *child)
{
    struct tm_vdisk_create_params cp = { .parent_path = NULL };
    struct tm_vdisk *d = create_disk(path(fx, parent), VSIZE, 0);
    struct tm_guid pid;
    struct tm_err err;

    write_pat(d, 0, 128 * KiB, 10);
    write_pat(d, 20 * MiB, 64 * KiB, 11);
    pid = info_of(d, TM_VDISK_INFO_IDENTIFIER).identifier;
    assert_ok(tm_vdisk_close(d), NULL, "close parent");
    cp.parent_path = path(fx, parent);
    assert_ok(tm_vdisk_create(path(fx, child), &cp, &d, &err), NULL,
              "create child");
    write_pat(d, 64 * KiB, 4096, 12);
    assert_ok(tm_vdisk_close(d), NULL, "close child");
    return pid;
}

static void
child_names_its_parent(void **state)
{
    struct fx *fx = *state;
    struct tm_guid pid = make_chain(fx, "p.vhdx", "c.avhdx");
    struct tm_vdisk *d, *p;
    struct tm_vdisk_info in;
    char *want, *got;

    /* The parent kept its identity: the child was made read-only on it. */
    p = open_disk(path(fx, "p.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_guid_eq(info_of(p, TM_VDISK_INFO_IDENTIFIER).identifier, pid);

    d = open_disk(path(fx, "c.avhdx"), 0);
    in = info_of(d, TM_VDISK_INFO_PROVIDER_SUBTYPE);
    assert_int_equal(in.provider_subtype, TM_VDISK_SUBTYPE_DIFFERENCING);
    assert_int_equal(in.provider_subtype, 4);
    in = info_of(d, TM_VDISK_INFO_SIZE);
    assert_int_equal(in.size.virtual_size, VSIZE);
    assert_int_equal(in.size.block_size, 2 << 20);   /* a child's default */
    in = info_of(d, TM_VDISK_INFO_PARENT_IDENTIFIER);
    assert_guid_eq(in.parent_identifier.linkage, pid);
    assert_false(in.parent_identifier.has_linkage2);
    /* The child's own identity is another, its VirtualDiskId the
     * parent's. */
    in = info_of(d, TM_VDISK_INFO_IDENTIFIER);
    assert_false(tm_guid_equal(&in.identifier, &pid));
    assert_guid_eq(info_of(d, TM_VDISK_INFO_VIRTUAL_DISK_ID).virtual_disk_id,
                   info_of(p, TM_VDISK_INFO_VIRTUAL_DISK_ID).virtual_disk_id);
    in = info_of(d, TM_VDISK_INFO_PARENT_LOCATION);
    assert_true(in.parent_location.resolved);
    assert_non_null(in.parent_location.paths);
    /* Resolved: one path, then the empty string. */
    assert_int_equal(in.parent_location.paths[strlen(
                         in.parent_location.paths) + 1], '\0');
    want = realpath(path(fx, "p.vhdx"), NULL);
    got = realpath(in.parent_location.paths, NULL);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(want);
    free(got);
    /* A second query returns the same string; the first stays valid. */
    {
        const char *first = in.parent_location.paths;

        in = info_of(d, TM_VDISK_INFO_PARENT_LOCATION);
        assert_ptr_equal(in.parent_location.paths, first);
    }

    /* Reads go through to the parent where the child has nothing. */
    expect_pat(d, 0, 64 * KiB, 10);
    expect_pat(d, 64 * KiB, 4096, 12);
    expect_pat(d, 20 * MiB, 64 * KiB, 11);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_ok(tm_vdisk_close(p), NULL, "close");
}

static void
no_parents_open_lists_the_locator(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d;
    struct tm_vdisk_info in;
    const char *s;
    char *abs, *winabs;
    uint8_t buf[512];
    unsigned n = 0;
    bool rel = false, wabs = false;

    (void)make_chain(fx, "p.vhdx", "c.avhdx");
    abs = realpath(path(fx, "p.vhdx"), NULL);
    assert_non_null(abs);
    winabs = malloc(strlen(abs) + 3);
    assert_non_null(winabs);
    snprintf(winabs, strlen(abs) + 3, "Z:%s", abs);
    for (char *c = winabs; *c; c++)
        if (*c == '/')
            *c = '\\';

    d = open_disk(path(fx, "c.avhdx"), TM_VDISK_OPEN_NO_PARENTS);
    in = info_of(d, TM_VDISK_INFO_PARENT_LOCATION);
    assert_false(in.parent_location.resolved);
    for (s = in.parent_location.paths; *s != '\0'; s += strlen(s) + 1) {
        n++;
        rel |= strcmp(s, ".\\p.vhdx") == 0;
        wabs |= strcmp(s, winabs) == 0;
    }
    if (!rel || !wabs)
        fail_msg("locator paths lack '.\\p.vhdx' or '%s'", winabs);
    assert_int_equal(n, 2);
    /* PARENT_IDENTIFIER needs no parent. */
    in = info_of(d, TM_VDISK_INFO_PARENT_IDENTIFIER);
    assert_false(tm_guid_is_zero(&in.parent_identifier.linkage));
    /* What the child has reads; what needs the parent does not. */
    assert_ok(tm_vdisk_read(d, buf, sizeof(buf), 64 * KiB), d, "read");
    assert_err_rc(tm_vdisk_read(d, buf, sizeof(buf), 0), d, TM_E_CHAIN,
                  NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    free(abs);
    free(winabs);
}

static void
open_modes_and_refusals(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d, *r, *x = (struct tm_vdisk *)1;
    struct tm_err err;
    uint8_t buf[4096] = { 1 };

    d = create_disk(path(fx, "a.vhdx"), VSIZE, 0);
    write_pat(d, 0, 4096, 3);
    assert_ok(tm_vdisk_flush(d), d, "flush");

    /* A second writer is refused; a reader is let in and sees flushed
     * data. */
    assert_int_equal(tm_vdisk_open(path(fx, "a.vhdx"), 0, NULL, &x, &err),
                     TM_E_LOCKED);
    assert_null(x);
    assert_int_equal(err.code, TM_E_LOCKED);
    r = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    expect_pat(r, 0, 4096, 3);
    assert_err_rc(tm_vdisk_write(r, buf, sizeof(buf), 0), r, TM_E_READONLY,
                  "read-only");
    assert_err_rc(tm_vdisk_discard(r, 0, 4096, TM_VDISK_DISCARD_ZERO), r,
                  TM_E_READONLY, NULL);
    assert_err_rc(tm_vdisk_resize(r, 2 * VSIZE), r, TM_E_READONLY, NULL);
    assert_ok(tm_vdisk_close(r), NULL, "close");
    assert_ok(tm_vdisk_close(d), NULL, "close");

    /* Ranges outside the disk. */
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_err_rc(tm_vdisk_write(d, buf, 2, VSIZE - 1), d, TM_E_RANGE,
                  "outside");
    assert_int_equal(tm_vdisk_read(d, buf, 2, VSIZE - 1), TM_E_RANGE);
    assert_ok(tm_vdisk_close(d), NULL, "close");

    x = (struct tm_vdisk *)1;
    assert_int_equal(tm_vdisk_open(path(fx, "missing.vhdx"), 0, NULL, &x,
                                   &err), -ENOENT);
    assert_null(x);
    assert_true(strstr(err.msg, "missing.vhdx") != NULL);
    assert_int_equal(tm_vdisk_open(path(fx, "a.vhdx"), 1u << 7, NULL, &x,
                                   &err), TM_E_INVALID);
    assert_int_equal(tm_vdisk_open(NULL, 0, NULL, &x, &err), TM_E_INVALID);
    assert_int_equal(tm_vdisk_close(NULL), 0);
}

/* ---- SetVirtualDiskInformation ------------------------------------------- */

static void
set_ids_persist_and_keep_identity_and_tracking(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    struct tm_vdisk_set_info si;
    struct tm_guid vid, ident;
    char a[TM_VDISK_RCT_ID_MAX + 1];

    seal(d, a);
    write_pat(d, 5 * MiB, 100, 1);
    ident = info_of(d, TM_VDISK_INFO_IDENTIFIER).identifier;
    assert_int_equal(tm_guid_generate(&vid), 0);
    si.kind = TM_VDISK_SET_VIRTUAL_DISK_ID;
    si.virtual_disk_id = vid;
    assert_ok(tm_vdisk_set_info(d, &si), d, "set id");
    si.kind = TM_VDISK_SET_PHYSICAL_SECTOR_SIZE;
    si.physical_sector_size = 512;
    assert_ok(tm_vdisk_set_info(d, &si), d, "set sector");
    si.physical_sector_size = 1000;
    assert_int_equal(tm_vdisk_set_info(d, &si), TM_E_INVALID);
    assert_guid_eq(info_of(d, TM_VDISK_INFO_IDENTIFIER).identifier, ident);
    assert_guid_eq(info_of(d, TM_VDISK_INFO_VIRTUAL_DISK_ID).virtual_disk_id,
                   vid);
    expect_ranges(d, a, 1, 5 * MiB, 4096ull);
    assert_ok(tm_vdisk_close(d), NULL, "close");

    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_guid_eq(info_of(d, TM_VDISK_INFO_VIRTUAL_DISK_ID).virtual_disk_id,
                   vid);
    assert_int_equal(info_of(d, TM_VDISK_INFO_VHD_PHYSICAL_SECTOR_SIZE)
                         .vhd_physical_sector_size, 512);
    assert_guid_eq(info_of(d, TM_VDISK_INFO_IDENTIFIER).identifier, ident);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    expect_ranges(d, a, 1, 5 * MiB, 4096ull);

    /* The same before the first write of an open (nothing bound yet). */
    assert_int_equal(tm_guid_generate(&vid), 0);
    si.kind = TM_VDISK_SET_VIRTUAL_DISK_ID;
    si.virtual_disk_id = vid;
    assert_ok(tm_vdisk_set_info(d, &si), d, "set id");
    si.kind = TM_VDISK_SET_PHYSICAL_SECTOR_SIZE;
    si.physical_sector_size = 4096;
    assert_ok(tm_vdisk_set_info(d, &si), d, "set sector");
    assert_guid_eq(info_of(d, TM_VDISK_INFO_IDENTIFIER).identifier, ident);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    assert_guid_eq(info_of(d, TM_VDISK_INFO_VIRTUAL_DISK_ID).virtual_disk_id,
                   vid);
    assert_int_equal(info_of(d, TM_VDISK_INFO_VHD_PHYSICAL_SECTOR_SIZE)
                         .vhd_physical_sector_size, 4096);
    assert_guid_eq(info_of(d, TM_VDISK_INFO_IDENTIFIER).identifier, ident);
    expect_ranges(d, a, 1, 5 * MiB, 4096ull);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
set_parent_path_follows_a_moved_parent(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = (struct tm_vdisk *)1;
    struct tm_vdisk_set_info si = { .kind = TM_VDISK_SET_PARENT_PATH };
    struct tm_vdisk_info in;
    struct tm_err err;
    struct tm_guid pid = make_chain(fx, "p.vhdx", "c.avhdx");
    char *want, *got;

    assert_int_equal(rename(path(fx, "p.vhdx"), path(fx, "moved.vhdx")), 0);
    assert_int_equal(tm_vdisk_open(path(fx, "c.avhdx"), 0, NULL, &d, &err),
                     -ENOENT);
    d = open_disk(path(fx, "c.avhdx"), TM_VDISK_OPEN_NO_PARENTS);
    /* Not the parent: refused, nothing changed. */
    {
        struct tm_vdisk *o = create_disk(path(fx, "other.vhdx"), VSIZE, 0);

        assert_ok(tm_vdisk_close(o), NULL, "close");
        si.parent_path = path(fx, "other.vhdx");
        assert_err_rc(tm_vdisk_set_info(d, &si), d, TM_E_CHAIN, NULL);
    }
    si.parent_path = path(fx, "moved.vhdx");
    assert_ok(tm_vdisk_set_info(d, &si), d, "set parent path");
    in = info_of(d, TM_VDISK_INFO_PARENT_LOCATION);
    assert_true(in.parent_location.resolved);
    want = realpath(path(fx, "moved.vhdx"), NULL);
    got = realpath(in.parent_location.paths, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    assert_guid_eq(info_of(d, TM_VDISK_INFO_PARENT_IDENTIFIER)
                        .parent_identifier.linkage, pid);
    expect_pat(d, 0, 64 * KiB, 10);
    expect_pat(d, 64 * KiB, 4096, 12);
    assert_ok(tm_vdisk_close(d), NULL, "close");

    /* The locator was rewritten: a plain open finds the parent. */
    d = open_disk(path(fx, "c.avhdx"), TM_VDISK_OPEN_READ_ONLY);
    expect_pat(d, 20 * MiB, 64 * KiB, 11);
    in = info_of(d, TM_VDISK_INFO_PARENT_LOCATION);
    got = realpath(in.parent_location.paths, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    free(want);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

/* A tracked child relinked to a parent of other content: every byte the
 * child does not define reads differently, so tracking reports the whole
 * disk since older IDs.  Relinked behind vdisk's back (the engine, as
 * 'vhd set-parent --force' does), the child's DataWriteGuid changes and
 * its tracking resets. */
static void
relink_to_other_content_is_a_change(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk_set_info on = {
        .kind = TM_VDISK_SET_CHANGE_TRACKING_STATE,
        .change_tracking = { .enabled = true },
    };
    struct tm_vdisk_set_info si = { .kind = TM_VDISK_SET_PARENT_LOCATOR };
    char id[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_range *r = calloc(MAXR, sizeof(*r));
    struct tm_vdisk *d, *p;
    struct tm_guid oid;
    struct tm_err err;
    size_t n;

    assert_non_null(r);
    make_chain(fx, "p.vhdx", "c.avhdx");
    p = create_disk(path(fx, "o.vhdx"), VSIZE, 0);
    write_pat(p, 0, 128 * KiB, 40);             /* other content */
    oid = info_of(p, TM_VDISK_INFO_IDENTIFIER).identifier;
    assert_ok(tm_vdisk_close(p), NULL, "close");

    d = open_disk(path(fx, "c.avhdx"), 0);
    assert_ok(tm_vdisk_set_info(d, &on), d, "enable");
    assert_ok(tm_vdisk_seal(d, id), d, "seal");
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "c.avhdx"), 0);
    si.parent_locator.parent_path = path(fx, "o.vhdx");
    si.parent_locator.linkage = oid;
    assert_ok(tm_vdisk_set_info(d, &si), d, "relink");
    expect_pat(d, 0, 64 * KiB, 40);             /* the new parent shows */
    assert_int_equal(query_all(d, id, NULL, 0, VSIZE, r, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].off, 0);
    assert_int_equal(r[0].len, VSIZE);
    assert_ok(tm_vdisk_close(d), NULL, "close");

    /* The same through the engine alone: a reset, never silence. */
    assert_int_equal(tm_vhdx_set_parent_path(path(fx, "c.avhdx"),
                                             path(fx, "p.vhdx"), true, &err),
                     0);
    d = open_disk(path(fx, "c.avhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_RESET_FOREIGN_WRITE);
    assert_err_rc(query_rc(d, id), d, TM_E_RCT_RESET, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    free(r);
}

static void
set_parent_locator_checks_the_linkage(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d, *p;
    struct tm_vdisk_set_info si = { .kind = TM_VDISK_SET_PARENT_LOCATOR };
    struct tm_guid pid = make_chain(fx, "p.vhdx", "c.avhdx");
    struct tm_guid newid;

    /* A restored parent: the same data, another identity (written). */
    copy_file(path(fx, "p.vhdx"), path(fx, "r.vhdx"));
    p = open_disk(path(fx, "r.vhdx"), 0);
    write_pat(p, 0, 512, 10);           /* the same bytes again */
    newid = info_of(p, TM_VDISK_INFO_IDENTIFIER).identifier;
    assert_false(tm_guid_equal(&newid, &pid));
    assert_ok(tm_vdisk_close(p), NULL, "close");

    d = open_disk(path(fx, "c.avhdx"), 0);
    si.parent_locator.parent_path = path(fx, "r.vhdx");
    si.parent_locator.linkage = pid;            /* wrong: r's is newid */
    assert_err_rc(tm_vdisk_set_info(d, &si), d, TM_E_CHAIN, "linkage");
    assert_guid_eq(info_of(d, TM_VDISK_INFO_PARENT_IDENTIFIER)
                        .parent_identifier.linkage, pid);
    /* PARENT_PATH refuses another identity too. */
    {
        struct tm_vdisk_set_info sp = { .kind = TM_VDISK_SET_PARENT_PATH,
                                        .parent_path = path(fx, "r.vhdx") };

        assert_err_rc(tm_vdisk_set_info(d, &sp), d, TM_E_CHAIN, NULL);
    }
    si.parent_locator.linkage = newid;
    assert_ok(tm_vdisk_set_info(d, &si), d, "set locator");
    assert_guid_eq(info_of(d, TM_VDISK_INFO_PARENT_IDENTIFIER)
                        .parent_identifier.linkage, newid);
    expect_pat(d, 0, 64 * KiB, 10);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "c.avhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_guid_eq(info_of(d, TM_VDISK_INFO_PARENT_IDENTIFIER)
                        .parent_identifier.linkage, newid);
    expect_pat(d, 20 * MiB, 64 * KiB, 11);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
set_needs_a_writer(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d;
    struct tm_vdisk_set_info si;
    char id[TM_VDISK_RCT_ID_MAX + 1];
    static const int kinds[] = {
        TM_VDISK_SET_PARENT_PATH, TM_VDISK_SET_PHYSICAL_SECTOR_SIZE,
        TM_VDISK_SET_VIRTUAL_DISK_ID, TM_VDISK_SET_CHANGE_TRACKING_STATE,
        TM_VDISK_SET_PARENT_LOCATOR,
    };

    d = create_disk(path(fx, "a.vhdx"), VSIZE, 1);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        memset(&si, 0, sizeof(si));
        si.kind = (enum tm_vdisk_set_kind)kinds[i];
        si.physical_sector_size = 512;
        assert_err_rc(tm_vdisk_set_info(d, &si), d, TM_E_READONLY,
                      "read-only");
    }
    assert_err_rc(tm_vdisk_seal(d, id), d, TM_E_READONLY, NULL);
    assert_string_equal(id, "");
    assert_ok(tm_vdisk_close(d), NULL, "close");

    d = open_disk(path(fx, "a.vhdx"), 0);
    si.kind = (enum tm_vdisk_set_kind)3;
    assert_err_rc(tm_vdisk_set_info(d, &si), d, TM_E_INVALID, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

/* ---- change tracking ----------------------------------------------------- */

static void
exact_ranges(struct fx *fx, uint32_t g)
{
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE,
                                     g == 64 * KiB ? 1 : g);
    struct tm_vdisk_info in;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    const uint64_t last = (VSIZE - 1) / g * g;

    in = tracking_of(d);
    assert_true(in.change_tracking.enabled);
    assert_int_equal(in.change_tracking.granularity, g);
    assert_string_equal(in.change_tracking.most_recent_id, "");
    assert_int_equal(in.change_tracking.found, TM_VDISK_TRACKING_CLEAN);
    seal(d, a);
    in = tracking_of(d);
    assert_string_equal(in.change_tracking.most_recent_id, a);
    assert_false(in.change_tracking.newer_changes);
    assert_int_equal(in.change_tracking.sealed_ids, 1);
    expect_ranges(d, a, 0);

    write_pat(d, g + 5, 100, 1);                        /* sub-granule */
    write_pat(d, 8 * MiB - 10, 20, 2);                  /* spans two */
    write_pat(d, VSIZE - 1, 1, 3);                      /* the partial end */
    assert_ok(tm_vdisk_discard(d, 32 * MiB, 2 * MiB, TM_VDISK_DISCARD_ZERO),
              d, "discard");
    assert_true(tracking_of(d).change_tracking.newer_changes);
    expect_ranges(d, a, 4, (uint64_t)g, (uint64_t)g, 8 * MiB - g, 2ull * g,
                  32 * MiB, 2 * MiB, last, VSIZE - last);
    seal(d, b);
    expect_ranges(d, b, 0);
    write_pat(d, 0, 1, 4);
    expect_ranges(d, b, 1, 0ull, (uint64_t)g);
    expect_ranges(d, a, 4, 0ull, 2ull * g, 8 * MiB - g, 2ull * g, 32 * MiB,
                  2 * MiB, last, VSIZE - last);
    in = tracking_of(d);
    assert_string_equal(in.change_tracking.most_recent_id, b);
    assert_int_equal(in.change_tracking.sealed_ids, 2);
    /* A span inside the disk is clipped at its ends. */
    {
        struct tm_range r[8];
        size_t n = 8;
        uint64_t processed;

        assert_ok(tm_vdisk_query_changes(d, a, 8 * MiB - 3, 1000, r, &n,
                                         &processed), d, "query");
        assert_int_equal(n, 1);
        assert_int_equal(r[0].off, 8 * MiB - 3);
        assert_int_equal(r[0].len, 1000);
        assert_int_equal(processed, 1000);
        /* Past the end: nothing, and the whole span processed. */
        n = 8;
        assert_ok(tm_vdisk_query_changes(d, a, VSIZE, 5000, r, &n,
                                         &processed), d, "query");
        assert_int_equal(n, 0);
        assert_int_equal(processed, 5000);
    }
    assert_ok(tm_vdisk_close(d), NULL, "close");

    /* A clean close and reopen: the same answers. */
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    assert_true(tracking_of(d).change_tracking.newer_changes);
    expect_ranges(d, b, 1, 0ull, (uint64_t)g);
    expect_ranges(d, a, 4, 0ull, 2ull * g, 8 * MiB - g, 2ull * g, 32 * MiB,
                  2 * MiB, last, VSIZE - last);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
tracking_exact_ranges_4k(void **state)
{
    exact_ranges(*state, 4 * KiB);
}

static void
tracking_exact_ranges_64k(void **state)
{
    exact_ranges(*state, 64 * KiB);
}

static void
query_paging_resumes_exactly(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    struct tm_range *all = malloc(MAXR * sizeof(*all));
    struct tm_range *got = malloc(MAXR * sizeof(*got));
    char a[TM_VDISK_RCT_ID_MAX + 1];
    size_t nall, ngot;
    static const uint64_t starts[] = { 0, 12345, 3 * MiB + 1 };
    uint64_t s = 0x1234567;
    uint8_t byte = 0x42;

    assert_non_null(all);
    assert_non_null(got);
    seal(d, a);
    /* 200 scattered writes: many separate ranges, some merged. */
    for (unsigned i = 0; i < 200; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        assert_ok(tm_vdisk_write(d, &byte, 1, (s >> 20) % VSIZE), d,
                  "write");
    }
    for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
        uint64_t off = starts[k], len = UINT64_MAX - off;

        assert_ok(query_all(d, a, NULL, off, len, all, &nall), d, "query");
        assert_true(nall > 100);
        for (size_t cap = 1; cap <= 7; cap += 3) {
            uint64_t pos = off;
            unsigned calls = 0;

            ngot = 0;
            for (;;) {
                size_t n = cap;
                uint64_t processed = 0;

                assert_ok(tm_vdisk_query_changes(d, a, pos, UINT64_MAX - pos,
                                                 got + ngot, &n, &processed),
                          d, "query page");
                calls++;
                assert_true(n <= cap);
                assert_true(processed > 0);
                if (n == cap) {
                    /* Full: processed ends with the last range. */
                    assert_int_equal(pos + processed,
                                     got[ngot + n - 1].off +
                                         got[ngot + n - 1].len);
                } else {
                    assert_int_equal(processed, UINT64_MAX - pos);
                }
                ngot += n;
                assert_true(ngot < MAXR);
                if (n < cap)
                    break;
                pos += processed;
            }
            /* A range may be cut where a full page ended; merge those
             * before comparing. */
            {
                size_t m = 0;

                for (size_t i = 0; i < ngot; i++) {
                    if (m > 0 && got[m - 1].off + got[m - 1].len ==
                                     got[i].off)
                        got[m - 1].len += got[i].len;
                    else
                        got[m++] = got[i];
                }
                ngot = m;
            }
            assert_int_equal(ngot, nall);
            for (size_t i = 0; i < nall; i++) {
                assert_int_equal(got[i].off, all[i].off);
                assert_int_equal(got[i].len, all[i].len);
            }
            assert_true(calls >= nall / cap);
        }
    }
    /* A capacity of 0 is refused. */
    {
        size_t n = 0;
        uint64_t processed = 1;

        assert_err_rc(tm_vdisk_query_changes(d, a, 0, VSIZE, got, &n,
                                             &processed), d, TM_E_INVALID,
                      NULL);
        assert_int_equal(processed, 0);
    }
    free(all);
    free(got);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static bool
covers(const struct tm_range *r, size_t n, uint64_t off, uint64_t len)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].off <= off && off + len <= r[i].off + r[i].len)
            return true;
    return false;
}

static void
query_between_two_ids(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    struct tm_range *r = malloc(MAXR * sizeof(*r));
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    char c[TM_VDISK_RCT_ID_MAX + 1];
    size_t n;

    assert_non_null(r);
    write_pat(d, 0, 4096, 1);
    seal(d, a);
    write_pat(d, 1 * MiB, 8192, 2);             /* X: between a and b */
    seal(d, b);
    write_pat(d, 9 * MiB, 4096, 3);             /* Y: after b */
    seal(d, c);
    assert_ok(query_all(d, a, b, 0, VSIZE, r, &n), d, "between");
    assert_true(covers(r, n, 1 * MiB, 8192));
    assert_false(covers(r, n, 0, 4096));        /* before a */
    for (size_t i = 0; i < n; i++)              /* a subset of X and Y */
        assert_true((r[i].off >= 1 * MiB && r[i].off + r[i].len <=
                     1 * MiB + 8192) ||
                    (r[i].off >= 9 * MiB && r[i].off + r[i].len <=
                     9 * MiB + 4096));
    assert_ok(query_all(d, b, c, 0, VSIZE, r, &n), d, "between");
    assert_true(covers(r, n, 9 * MiB, 4096));
    assert_false(covers(r, n, 1 * MiB, 4096));
    assert_ok(query_all(d, a, a, 0, VSIZE, r, &n), d, "between");
    assert_ok(query_all(d, a, c, 0, VSIZE, r, &n), d, "between");
    assert_true(covers(r, n, 1 * MiB, 8192) && covers(r, n, 9 * MiB, 4096));
    /* The limit older than the start, no limit, or a bad one. */
    assert_err_rc(query_all(d, b, a, 0, VSIZE, r, &n), d, TM_E_INVALID,
                  NULL);
    n = MAXR;
    {
        uint64_t processed;

        assert_int_equal(tm_vdisk_query_changes_between(d, a, NULL, 0, VSIZE,
                                                        r, &n, &processed),
                         TM_E_INVALID);
    }
    assert_err_rc(query_all(d, a, "rctX:junk", 0, VSIZE, r, &n), d,
                  TM_E_RCT_INVALID_ID, NULL);
    free(r);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
enable_when_already_enabled(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    struct tm_vdisk_set_info si = { .kind =
                                        TM_VDISK_SET_CHANGE_TRACKING_STATE };
    char a[TM_VDISK_RCT_ID_MAX + 1];

    seal(d, a);
    write_pat(d, 0, 10, 1);
    si.change_tracking.enabled = true;
    si.change_tracking.granularity = 4096;
    assert_ok(tm_vdisk_set_info(d, &si), d, "enable again");
    si.change_tracking.granularity = 0;
    assert_ok(tm_vdisk_set_info(d, &si), d, "enable again, 0");
    si.change_tracking.granularity = 64 * KiB;
    assert_err_rc(tm_vdisk_set_info(d, &si), d, TM_E_INVALID, "turn it off");
    /* Nothing was reset by any of these. */
    expect_ranges(d, a, 1, 0ull, 4096ull);
    assert_int_equal(tracking_of(d).change_tracking.granularity, 4096);
    assert_ok(tm_vdisk_close(d), NULL, "close");

    /* Bad granularities when turning it on. */
    d = create_disk(path(fx, "b.vhdx"), VSIZE, 0);
    si.change_tracking.granularity = 3000;
    assert_int_equal(tm_vdisk_set_info(d, &si), TM_E_INVALID);
    si.change_tracking.granularity = 4 * MiB;
    assert_int_equal(tm_vdisk_set_info(d, &si), TM_E_INVALID);
    assert_false(tracking_of(d).change_tracking.enabled);
    si.change_tracking.granularity = 0;
    assert_ok(tm_vdisk_set_info(d, &si), d, "enable");
    assert_int_equal(tracking_of(d).change_tracking.granularity, 64 * KiB);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
disable_then_enable_again(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    struct tm_vdisk_set_info si = { .kind =
                                        TM_VDISK_SET_CHANGE_TRACKING_STATE };
    struct tm_vdisk_info in;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];

    write_pat(d, 0, 10, 1);
    seal(d, a);
    write_pat(d, 4096, 10, 2);
    si.change_tracking.enabled = false;
    assert_ok(tm_vdisk_set_info(d, &si), d, "disable");
    assert_ok(tm_vdisk_set_info(d, &si), d, "disable twice");
    in = tracking_of(d);
    assert_false(in.change_tracking.enabled);
    assert_string_equal(in.change_tracking.most_recent_id, "");
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_DISABLED, "disabled");
    assert_err_rc(tm_vdisk_seal(d, b), d, TM_E_RCT_DISABLED, NULL);
    write_pat(d, 8192, 10, 3);                  /* untracked */
    assert_true(exists(path(fx, "a.vhdx.rct")));
    assert_true(exists(path(fx, "a.vhdx.mrt")));

    si.change_tracking.enabled = true;
    si.change_tracking.granularity = 64 * KiB;  /* may change now */
    assert_ok(tm_vdisk_set_info(d, &si), d, "enable");
    in = tracking_of(d);
    assert_true(in.change_tracking.enabled);
    assert_int_equal(in.change_tracking.granularity, 64 * KiB);
    assert_string_equal(in.change_tracking.most_recent_id, "");
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, "enabled again");
    seal(d, b);
    assert_true(strcmp(a, b) != 0);
    expect_ranges(d, b, 0);
    write_pat(d, 3 * MiB, 10, 4);
    expect_ranges(d, b, 1, 3 * MiB, 64 * KiB);
    assert_ok(tm_vdisk_close(d), NULL, "close");

    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, NULL);
    expect_ranges(d, b, 1, 3 * MiB, 64 * KiB);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
disabled_stays_disabled_across_writes_and_reopen(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    struct tm_vdisk_set_info si = { .kind =
                                        TM_VDISK_SET_CHANGE_TRACKING_STATE };
    struct tm_vdisk_info in;
    char a[TM_VDISK_RCT_ID_MAX + 1];

    seal(d, a);
    si.change_tracking.enabled = false;
    assert_ok(tm_vdisk_set_info(d, &si), d, "disable");
    assert_ok(tm_vdisk_close(d), NULL, "close");

    /* Written while off (the DataWriteGuid changes): still off. */
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_false(tracking_of(d).change_tracking.enabled);
    write_pat(d, 0, 4096, 1);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    for (int ro = 0; ro < 2; ro++) {
        d = open_disk(path(fx, "a.vhdx"), ro ? TM_VDISK_OPEN_READ_ONLY : 0);
        in = tracking_of(d);
        assert_false(in.change_tracking.enabled);
        assert_err_rc(query_rc(d, a), d, TM_E_RCT_DISABLED, NULL);
        assert_ok(tm_vdisk_close(d), NULL, "close");
    }
    /* Written while off behind our back too. */
    {
        struct tm_vhdx *vd = tm_vhdx_new();
        uint8_t x = 9;

        assert_int_equal(tm_vhdx_open_path(vd, path(fx, "a.vhdx"), 0, NULL),
                         0);
        assert_int_equal(tm_vhdx_write(vd, &x, 1, 0), 0);
        assert_int_equal(tm_vhdx_close(vd), 0);
    }
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_false(tracking_of(d).change_tracking.enabled);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_DISABLED, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
untracked_disk_reports_disabled(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 0);
    struct tm_vdisk *t = create_disk(path(fx, "t.vhdx"), VSIZE, 1);
    struct tm_vdisk_info in;
    char a[TM_VDISK_RCT_ID_MAX + 1], x[TM_VDISK_RCT_ID_MAX + 1];

    seal(t, a);
    write_pat(d, 0, 100, 1);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_DISABLED, "not enabled");
    assert_err_rc(tm_vdisk_seal(d, x), d, TM_E_RCT_DISABLED, NULL);
    in = tracking_of(d);
    assert_false(in.change_tracking.enabled);
    assert_int_equal(in.change_tracking.granularity, 0);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_ok(tm_vdisk_close(t), NULL, "close");
    /* Nothing appeared beside it. */
    assert_false(exists(path(fx, "a.vhdx.rct")));
    assert_false(exists(path(fx, "a.vhdx.mrt")));
    d = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_DISABLED, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
read_only_open_queries_and_leaves_sidecars_alone(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    struct tm_vdisk *r;
    char a[TM_VDISK_RCT_ID_MAX + 1];
    static const char *const names[] = { "a.vhdx", "a.vhdx.rct",
                                         "a.vhdx.mrt" };
    uint8_t *before[3], *after;
    size_t blen[3], alen;

    seal(d, a);
    write_pat(d, 2 * MiB, 4096, 1);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    for (unsigned i = 0; i < 3; i++)
        before[i] = slurp(path(fx, names[i]), &blen[i]);
    r = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_true(tracking_of(r).change_tracking.enabled);
    expect_ranges(r, a, 1, 2 * MiB, 4096ull);
    assert_ok(tm_vdisk_close(r), NULL, "close");
    for (unsigned i = 0; i < 3; i++) {
        after = slurp(path(fx, names[i]), &alen);
        if (alen != blen[i] || memcmp(after, before[i], alen) != 0)
            fail_msg("a read-only open changed '%s'", names[i]);
        free(after);
        free(before[i]);
    }

    /* A crashed writer's files (copied while it has the disk open): a
     * reader recovers in memory and changes nothing either. */
    assert_int_equal(mkdir(path(fx, "crash"), 0700), 0);
    d = open_disk(path(fx, "a.vhdx"), 0);
    write_pat(d, 7 * MiB, 100, 2);
    assert_ok(tm_vdisk_flush(d), d, "flush");
    for (unsigned i = 0; i < 3; i++) {
        char dst[PATH_MAX];

        snprintf(dst, sizeof(dst), "%s/crash/%s", fx->dir, names[i]);
        copy_file(path(fx, names[i]), dst);
    }
    assert_ok(tm_vdisk_close(d), NULL, "close");
    for (unsigned i = 0; i < 3; i++) {
        char p[PATH_MAX];

        snprintf(p, sizeof(p), "%s/crash/%s", fx->dir, names[i]);
        before[i] = slurp(p, &blen[i]);
    }
    r = open_disk(path(fx, "crash/a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_int_equal(tracking_of(r).change_tracking.found,
                     TM_VDISK_TRACKING_RECOVERED);
    {
        struct tm_range *rr = malloc(MAXR * sizeof(*rr));
        size_t n;

        assert_non_null(rr);
        assert_ok(query_all(r, a, NULL, 0, VSIZE, rr, &n), r, "query");
        assert_true(covers(rr, n, 2 * MiB, 4096));
        assert_true(covers(rr, n, 7 * MiB, 100));
        free(rr);
    }
    expect_pat(r, 7 * MiB, 100, 2);
    assert_ok(tm_vdisk_close(r), NULL, "close");
    for (unsigned i = 0; i < 3; i++) {
        char p[PATH_MAX];

        snprintf(p, sizeof(p), "%s/crash/%s", fx->dir, names[i]);
        after = slurp(p, &alen);
        if (alen != blen[i] || memcmp(after, before[i], alen) != 0)
            fail_msg("a read-only open of a crashed disk changed '%s'",
                     names[i]);
        free(after);
        free(before[i]);
    }
    /* A writer then recovers for real, and keeps the IDs. */
    d = open_disk(path(fx, "crash/a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_RECOVERED);
    assert_ok(query_rc(d, a), d, "query");
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "crash/a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    assert_ok(query_rc(d, a), d, "query");
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
ids_of_another_disk_and_garbage(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 1);
    struct tm_vdisk *e = create_disk(path(fx, "b.vhdx"), VSIZE, 1);
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    char x[TM_VDISK_RCT_ID_MAX + 1];
    static const char *const junk[] = {
        "", "hello", "rctX:", "RCTX:5bfde23b:ce75:4303:b54f:6c18394f105c:"
        "0000002a", "rctX:5bfde23b-ce75-4303-b54f-6c18394f105c:0000002a",
        "rctX:5bfde23b:ce75:4303:b54f:6c18394f105c:0000002", 
        "rctX:5bfde23b:ce75:4303:b54f:6c18394f105c:0000002az",
        "rctX:5bfde23b:ce75:4303:b54f:6c18394f105g:0000002a",
    };

    seal(d, a);
    seal(e, b);
    assert_err_rc(query_rc(d, b), d, TM_E_RCT_OTHER_DISK, "another disk");
    assert_err_rc(query_rc(e, a), e, TM_E_RCT_OTHER_DISK, NULL);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_err_rc(query_rc(d, junk[i]), d, TM_E_RCT_INVALID_ID, NULL);
    assert_err_rc(query_rc(d, NULL), d, TM_E_RCT_INVALID_ID, NULL);
    /* This lineage, but never issued (counter 0, or not yet). */
    memcpy(x, a, sizeof(x));
    memcpy(x + 42, "00000000", 8);
    assert_err_rc(query_rc(d, x), d, TM_E_RCT_INVALID_ID, "never issued");
    memcpy(x + 42, "00000002", 8);
    assert_err_rc(query_rc(d, x), d, TM_E_RCT_INVALID_ID, "never issued");
    /* Upper-case hex names the same ID. */
    memcpy(x, a, sizeof(x));
    for (char *c = x + 5; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    assert_ok(query_rc(d, x), d, "upper-case ID");
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_ok(tm_vdisk_close(e), NULL, "close");
}

/* ---- tracking versus the files ------------------------------------------- */

/* A tracked disk 'a.vhdx' (4 KiB granules) with two IDs: 'a' before a
 * write at 1 MiB, 'b' after it; closed cleanly. */
static void
tracked_with_history(struct fx *fx, char a[TM_VDISK_RCT_ID_MAX + 1],
                     char b[TM_VDISK_RCT_ID_MAX + 1])
{
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);

    write_pat(d, 0, 4096, 1);
    seal(d, a);
    write_pat(d, 1 * MiB, 4096, 2);
    seal(d, b);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

/* After a reset: old IDs fail RESET, a new one works (at the
 * granularity kept, or 64 KiB when no header told it). */
static void
expect_restarted(struct tm_vdisk *d, const char *a, const char *b)
{
    char c[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk_info in = tracking_of(d);
    uint64_t g = in.change_tracking.granularity;

    assert_true(in.change_tracking.enabled);
    assert_string_equal(in.change_tracking.most_recent_id, "");
    assert_int_equal(in.change_tracking.sealed_ids, 0);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, "reset");
    assert_err_rc(query_rc(d, b), d, TM_E_RCT_RESET, "reset");
    seal(d, c);
    expect_ranges(d, c, 0);
    assert_true(g == 4096 || g == 64 * KiB);
    write_pat(d, 5 * MiB, 1, 3);
    expect_ranges(d, c, 1, 5 * MiB, g);
}

static void
foreign_write_resets(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vdisk *d;
    uint8_t x = 0xee;

    tracked_with_history(fx, a, b);
    assert_int_equal(tm_vhdx_open_path(vd, path(fx, "a.vhdx"), 0, NULL), 0);
    assert_int_equal(tm_vhdx_write(vd, &x, 1, 3 * MiB), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);

    d = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_RESET_FOREIGN_WRITE);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, "without tracking");
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_RESET_FOREIGN_WRITE);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, "without tracking");
    expect_restarted(d, a, b);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    /* The reset is durable and the next open clean. */
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    assert_err_rc(query_rc(d, b), d, TM_E_RCT_RESET, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
deleted_sidecars_mean_disabled(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk *d;

    tracked_with_history(fx, a, b);
    assert_int_equal(unlink(path(fx, "a.vhdx.rct")), 0);
    assert_int_equal(unlink(path(fx, "a.vhdx.mrt")), 0);
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_false(tracking_of(d).change_tracking.enabled);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_DISABLED, NULL);
    write_pat(d, 0, 1, 1);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_false(exists(path(fx, "a.vhdx.rct")));
    assert_false(exists(path(fx, "a.vhdx.mrt")));
}

/* Files of the same names that are not ours (Hyper-V keeps its own
 * .rct/.mrt beside a disk): left untouched by opens and writes, the disk
 * untracked, until tracking is turned on, which replaces them. */
static void
foreign_sidecars_are_left_alone(void **state)
{
    struct fx *fx = *state;
    uint8_t junk[3 * 4096];
    uint8_t *r1, *m1;
    size_t rl, ml;
    char id[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk *d;
    struct tm_vdisk_set_info on = {
        .kind = TM_VDISK_SET_CHANGE_TRACKING_STATE,
        .change_tracking = { .enabled = true },
    };

    d = create_disk(path(fx, "h.vhdx"), VSIZE, 0);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    memcpy(junk, "RCTfile", 7);
    spit(path(fx, "h.vhdx.rct"), junk, sizeof(junk));
    memcpy(junk, "MRTfile", 7);
    spit(path(fx, "h.vhdx.mrt"), junk, 4096);
    r1 = slurp(path(fx, "h.vhdx.rct"), &rl);
    m1 = slurp(path(fx, "h.vhdx.mrt"), &ml);
    for (int ro = 1; ro >= 0; ro--) {
        d = open_disk(path(fx, "h.vhdx"), ro ? TM_VDISK_OPEN_READ_ONLY : 0);
        assert_false(tracking_of(d).change_tracking.enabled);
        assert_err_rc(query_rc(d, "rctX:5bfde23b:ce75:4303:b54f:"
                                  "6c18394f105c:00000001"),
                      d, TM_E_RCT_DISABLED, "not tidemark's");
        if (!ro)
            write_pat(d, 0, 4096, 3);
        assert_ok(tm_vdisk_close(d), NULL, "close");
    }
    {
        size_t l2;
        uint8_t *r2 = slurp(path(fx, "h.vhdx.rct"), &l2);
        uint8_t *m2;

        assert_int_equal(l2, rl);
        assert_memory_equal(r1, r2, rl);
        free(r2);
        m2 = slurp(path(fx, "h.vhdx.mrt"), &l2);
        assert_int_equal(l2, ml);
        assert_memory_equal(m1, m2, ml);
        free(m2);
    }
    free(r1);
    free(m1);
    /* Turning tracking on replaces them. */
    d = open_disk(path(fx, "h.vhdx"), 0);
    assert_ok(tm_vdisk_set_info(d, &on), d, "enable");
    assert_true(tracking_of(d).change_tracking.enabled);
    assert_ok(tm_vdisk_seal(d, id), d, "seal");
    write_pat(d, 64 * KiB, 1, 4);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "h.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_int_equal(query_rc(d, id), 0);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
corrupt_rct_headers_reset(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk *d;

    tracked_with_history(fx, a, b);
    flip_byte(path(fx, "a.vhdx.rct"), 30);
    flip_byte(path(fx, "a.vhdx.rct"), 4096 + 30);
    for (int ro = 1; ro >= 0; ro--) {
        d = open_disk(path(fx, "a.vhdx"), ro ? TM_VDISK_OPEN_READ_ONLY : 0);
        assert_int_equal(tracking_of(d).change_tracking.found,
                         TM_VDISK_TRACKING_RESET_CORRUPT);
        assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, "corrupt");
        if (!ro)
            expect_restarted(d, a, b);
        assert_ok(tm_vdisk_close(d), NULL, "close");
    }
}

static void
one_corrupt_rct_header_is_survived(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk *d;

    /* The older slot damaged: the current one still answers. */
    tracked_with_history(fx, a, b);
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    {
        size_t len;
        uint8_t *buf = slurp(path(fx, "a.vhdx.rct"), &len);
        uint64_t s0 = tm_le64(buf + 16), s1 = tm_le64(buf + 4096 + 16);

        free(buf);
        flip_byte(path(fx, "a.vhdx.rct"), s0 < s1 ? 30 : 4096 + 30);
    }
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    expect_ranges(d, a, 1, 1 * MiB, 4096ull);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
sidecars_of_another_disk_reset(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    char o[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk *d = create_disk(path(fx, "o.vhdx"), VSIZE, 4096);
    int rc;

    write_pat(d, 1 * MiB, 4096, 2);
    seal(d, o);
    write_pat(d, 6 * MiB, 4096, 2);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    tracked_with_history(fx, a, b);
    copy_file(path(fx, "o.vhdx.rct"), path(fx, "a.vhdx.rct"));
    copy_file(path(fx, "o.vhdx.mrt"), path(fx, "a.vhdx.mrt"));
    for (int ro = 1; ro >= 0; ro--) {
        d = open_disk(path(fx, "a.vhdx"), ro ? TM_VDISK_OPEN_READ_ONLY : 0);
        assert_true(tracking_of(d).change_tracking.found >=
                    TM_VDISK_TRACKING_RESET_FOREIGN_WRITE);
        /* Never ranges: the other disk's ID is reset, ours unknown. */
        assert_err_rc(query_rc(d, o), d, TM_E_RCT_RESET, NULL);
        rc = query_rc(d, a);
        assert_true(rc == TM_E_RCT_RESET || rc == TM_E_RCT_OTHER_DISK);
        if (!ro)
            expect_restarted(d, o, o);
        assert_ok(tm_vdisk_close(d), NULL, "close");
    }
}

static void
deleted_mrt_resets(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk *d;

    tracked_with_history(fx, a, b);
    assert_int_equal(unlink(path(fx, "a.vhdx.mrt")), 0);
    d = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_RESET_CORRUPT);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_false(exists(path(fx, "a.vhdx.mrt")));       /* a reader */
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_RESET_CORRUPT);
    expect_restarted(d, a, b);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_true(exists(path(fx, "a.vhdx.mrt")));
}

static void
deleted_rct_resets(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk *d;

    tracked_with_history(fx, a, b);
    assert_int_equal(unlink(path(fx, "a.vhdx.rct")), 0);
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_RESET_CORRUPT);
    expect_restarted(d, a, b);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
copied_disk_keeps_tracking(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    static const char *const names[] = { "a.vhdx", "a.vhdx.rct",
                                         "a.vhdx.mrt" };
    struct tm_vdisk *d;

    tracked_with_history(fx, a, b);
    assert_int_equal(mkdir(path(fx, "copy"), 0700), 0);
    for (unsigned i = 0; i < 3; i++) {
        char dst[PATH_MAX];

        snprintf(dst, sizeof(dst), "%s/copy/%s", fx->dir, names[i]);
        copy_file(path(fx, names[i]), dst);
    }
    d = open_disk(path(fx, "copy/a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    expect_ranges(d, a, 1, 1 * MiB, 4096ull);
    expect_ranges(d, b, 0);
    write_pat(d, 2 * MiB, 1, 5);
    expect_ranges(d, b, 1, 2 * MiB, 4096ull);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    /* The original is its own: unchanged by the copy's life. */
    d = open_disk(path(fx, "a.vhdx"), 0);
    expect_ranges(d, b, 0);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
vdisk_resize_restarts_tracking(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    char c[TM_VDISK_RCT_ID_MAX + 1];
    const uint64_t big = VSIZE + 32 * MiB;
    struct tm_range *r = malloc(MAXR * sizeof(*r));
    struct tm_vdisk *d;
    size_t n;

    assert_non_null(r);
    tracked_with_history(fx, a, b);
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_ok(tm_vdisk_resize(d, big), d, "resize");
    assert_int_equal(info_of(d, TM_VDISK_INFO_SIZE).size.virtual_size, big);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, "resized");
    assert_err_rc(query_rc(d, b), d, TM_E_RCT_RESET, "resized");
    assert_true(tracking_of(d).change_tracking.enabled);
    assert_int_equal(tracking_of(d).change_tracking.granularity, 4096);
    seal(d, c);
    write_pat(d, big - 10, 10, 6);
    assert_ok(query_all(d, c, NULL, 0, big, r, &n), d, "query");
    assert_int_equal(n, 1);
    assert_int_equal(r[0].off, (big - 10) / 4096 * 4096);
    assert_int_equal(r[0].off + r[0].len, big);
    assert_ok(tm_vdisk_close(d), NULL, "close");

    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, "resized");
    assert_ok(query_all(d, c, NULL, 0, big, r, &n), d, "query");
    assert_int_equal(n, 1);
    assert_int_equal(r[0].off + r[0].len, big);
    expect_pat(d, big - 10, 10, 6);
    /* Shrinking back (the data at the end is in the way, then not). */
    assert_err_rc(tm_vdisk_resize(d, VSIZE), d, TM_E_RANGE, NULL);
    assert_ok(tm_vdisk_discard(d, big - 4096, 4096, TM_VDISK_DISCARD_ZERO),
              d, "discard");
    assert_ok(tm_vdisk_resize(d, VSIZE), d, "shrink");
    assert_err_rc(query_rc(d, c), d, TM_E_RCT_RESET, "resized");
    assert_ok(tm_vdisk_close(d), NULL, "close");
    free(r);

    /* A resize with tracking off keeps it off. */
    d = open_disk(path(fx, "a.vhdx"), 0);
    {
        struct tm_vdisk_set_info si = {
            .kind = TM_VDISK_SET_CHANGE_TRACKING_STATE };

        assert_ok(tm_vdisk_set_info(d, &si), d, "disable");
    }
    assert_ok(tm_vdisk_resize(d, big), d, "resize");
    assert_false(tracking_of(d).change_tracking.enabled);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "a.vhdx"), 0);
    assert_false(tracking_of(d).change_tracking.enabled);
    assert_err_rc(query_rc(d, c), d, TM_E_RCT_DISABLED, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
resize_behind_the_back_resets(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vhdx *vd = tm_vhdx_new();
    struct tm_vdisk *d;
    enum tm_vdisk_tracking_open found;

    tracked_with_history(fx, a, b);
    assert_int_equal(tm_vhdx_open_path(vd, path(fx, "a.vhdx"), 0, NULL), 0);
    assert_int_equal(tm_vhdx_resize(vd, VSIZE + 4 * MiB), 0);
    assert_int_equal(tm_vhdx_close(vd), 0);
    d = open_disk(path(fx, "a.vhdx"), 0);
    found = tracking_of(d).change_tracking.found;
    assert_true(found == TM_VDISK_TRACKING_RESET_FOREIGN_WRITE ||
                found == TM_VDISK_TRACKING_RESET_RESIZED);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_RESET, NULL);
    expect_restarted(d, a, b);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
child_tracks_its_own_writes(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk_create_params cp = { .change_tracking = true,
                                         .tracking_granularity = 4096 };
    struct tm_vdisk *d;
    struct tm_err err;
    char a[TM_VDISK_RCT_ID_MAX + 1];

    (void)make_chain(fx, "p.vhdx", "c.avhdx");
    cp.parent_path = path(fx, "p.vhdx");
    assert_ok(tm_vdisk_create(path(fx, "t.avhdx"), &cp, &d, &err), NULL,
              "create tracked child");
    seal(d, a);
    expect_ranges(d, a, 0);     /* the parent's data is not a change */
    write_pat(d, 10 * MiB, 10, 7);
    expect_ranges(d, a, 1, 10 * MiB, 4096ull);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_true(exists(path(fx, "t.avhdx.rct")));
    assert_false(exists(path(fx, "p.vhdx.rct")));
    d = open_disk(path(fx, "t.avhdx"), 0);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    expect_ranges(d, a, 1, 10 * MiB, 4096ull);
    expect_pat(d, 0, 64 * KiB, 10);
    assert_ok(tm_vdisk_close(d), NULL, "close");
}

static void
stale_sidecars_of_a_deleted_disk_are_dropped(void **state)
{
    struct fx *fx = *state;
    char a[TM_VDISK_RCT_ID_MAX + 1], b[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_vdisk *d;

    tracked_with_history(fx, a, b);
    assert_int_equal(unlink(path(fx, "a.vhdx")), 0);
    d = create_disk(path(fx, "a.vhdx"), VSIZE, 0);
    assert_false(tracking_of(d).change_tracking.enabled);
    assert_err_rc(query_rc(d, a), d, TM_E_RCT_DISABLED, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_false(exists(path(fx, "a.vhdx.rct")));
}

static int
count_fds(void)
{
    char p[64];
    int n = 0;

    for (int fd = 0; fd < 1024; fd++) {
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        n += access(p, F_OK) == 0;
    }
    return n;
}

static void
read_only_opens_keep_no_descriptors(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    char a[TM_VDISK_RCT_ID_MAX + 1];
    int before;

    seal(d, a);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    before = count_fds();
    for (int i = 0; i < 20; i++) {
        d = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
        assert_ok(query_rc(d, a), d, "query");
        assert_ok(tm_vdisk_close(d), NULL, "close");
        d = open_disk(path(fx, "a.vhdx"), 0);
        assert_ok(tm_vdisk_close(d), NULL, "close");
    }
    assert_int_equal(count_fds(), before);
}

static void
persist_tracking_bounds_crash_reports(void **state)
{
    struct fx *fx = *state;
    struct tm_vdisk *d = create_disk(path(fx, "a.vhdx"), VSIZE, 4096);
    struct tm_vdisk *r;
    struct tm_range *rr = malloc(MAXR * sizeof(*rr));
    static const char *const names[] = { "a.vhdx", "a.vhdx.rct",
                                         "a.vhdx.mrt" };
    char a[TM_VDISK_RCT_ID_MAX + 1];
    struct tm_guid ident;
    size_t n;

    assert_non_null(rr);
    seal(d, a);
    /* A zero-length write neither binds nor changes the identity. */
    ident = info_of(d, TM_VDISK_INFO_IDENTIFIER).identifier;
    assert_ok(tm_vdisk_write(d, "", 0, 0), d, "empty write");
    assert_guid_eq(info_of(d, TM_VDISK_INFO_IDENTIFIER).identifier, ident);
    assert_ok(tm_vdisk_persist_tracking(d), d, "persist before a write");
    write_pat(d, 1 * MiB, 4096, 1);
    assert_ok(tm_vdisk_persist_tracking(d), d, "persist");
    assert_ok(tm_vdisk_flush(d), d, "flush");
    /* A crash now (the files copied while the writer has them): only
     * what was marked is reported, not the whole coarse region. */
    assert_int_equal(mkdir(path(fx, "crash"), 0700), 0);
    for (unsigned i = 0; i < 3; i++) {
        char dst[PATH_MAX];

        snprintf(dst, sizeof(dst), "%s/crash/%s", fx->dir, names[i]);
        copy_file(path(fx, names[i]), dst);
    }
    r = open_disk(path(fx, "crash/a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_int_equal(tracking_of(r).change_tracking.found,
                     TM_VDISK_TRACKING_RECOVERED);
    expect_ranges(r, a, 1, 1 * MiB, 4096ull);
    assert_ok(tm_vdisk_close(r), NULL, "close");
    /* Written after the persist: the region (here the whole disk). */
    write_pat(d, 9 * MiB, 10, 2);
    assert_ok(tm_vdisk_flush(d), d, "flush");
    assert_int_equal(mkdir(path(fx, "crash2"), 0700), 0);
    for (unsigned i = 0; i < 3; i++) {
        char dst[PATH_MAX];

        snprintf(dst, sizeof(dst), "%s/crash2/%s", fx->dir, names[i]);
        copy_file(path(fx, names[i]), dst);
    }
    r = open_disk(path(fx, "crash2/a.vhdx"), 0);
    assert_int_equal(tracking_of(r).change_tracking.found,
                     TM_VDISK_TRACKING_RECOVERED);
    assert_ok(query_all(r, a, NULL, 0, VSIZE, rr, &n), r, "query");
    assert_true(covers(rr, n, 1 * MiB, 4096));
    assert_true(covers(rr, n, 9 * MiB, 10));
    assert_ok(tm_vdisk_close(r), NULL, "close");
    /* The writer itself still answers exactly, and closes cleanly. */
    expect_ranges(d, a, 2, 1 * MiB, 4096ull, 9 * MiB, 4096ull);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    d = open_disk(path(fx, "a.vhdx"), TM_VDISK_OPEN_READ_ONLY);
    assert_int_equal(tracking_of(d).change_tracking.found,
                     TM_VDISK_TRACKING_CLEAN);
    expect_ranges(d, a, 2, 1 * MiB, 4096ull, 9 * MiB, 4096ull);
    assert_err_rc(tm_vdisk_persist_tracking(d), d, TM_E_READONLY, NULL);
    assert_ok(tm_vdisk_close(d), NULL, "close");
    /* Untracked: nothing to do. */
    d = create_disk(path(fx, "u.vhdx"), VSIZE, 0);
    assert_ok(tm_vdisk_persist_tracking(d), d, "persist untracked");
    assert_ok(tm_vdisk_close(d), NULL, "close");
    assert_false(exists(path(fx, "u.vhdx.rct")));
    free(rr);
}

/* ---- Windows error codes ------------------------------------------------- */

static void
win32_errors_match_virtdisk(void **state)
{
    (void)state;
    assert_int_equal(tm_vdisk_win32_error(0), 0);
    assert_int_equal(tm_vdisk_win32_error(TM_E_RCT_INVALID_ID), 0xC03A0029);
    assert_int_equal(tm_vdisk_win32_error(TM_E_RCT_OTHER_DISK), 0xC03A0029);
    assert_int_equal(tm_vdisk_win32_error(TM_E_RCT_DISABLED), 0xC03A002A);
    assert_int_equal(tm_vdisk_win32_error(TM_E_RCT_MISSING), 0xC03A0030);
    assert_int_equal(tm_vdisk_win32_error(TM_E_RCT_RESET), 0xC03A0030);
    assert_int_equal(tm_vdisk_win32_error(TM_E_RCT_FOREIGN_WRITE),
                     0xC03A0022);
    assert_int_equal(tm_vdisk_win32_error(TM_E_INVALID), 87);
    assert_int_equal(tm_vdisk_win32_error(TM_E_RANGE), 87);
    assert_int_equal(tm_vdisk_win32_error(-EINVAL), 87);
    assert_int_equal(tm_vdisk_win32_error(TM_E_READONLY), 5);
    assert_int_equal(tm_vdisk_win32_error(TM_E_LOCKED), 32);
    assert_int_equal(tm_vdisk_win32_error(TM_E_CHAIN), 0xC03A000E);
    assert_int_equal(tm_vdisk_win32_error(TM_E_CORRUPT), 1392);
    assert_int_equal(tm_vdisk_win32_error(-ENOENT), 2);
    assert_int_equal(tm_vdisk_win32_error(-ENOSPC), 112);
    assert_int_equal(tm_vdisk_win32_error(-EIO), 1117);
    assert_int_equal(tm_vdisk_win32_error(TM_E_POISONED), 1117);
    /* Every project code maps to something. */
    for (int c = TM_E_RCT_OTHER_DISK; c <= TM_E_CORRUPT; c++)
        assert_int_not_equal(tm_vdisk_win32_error(c), 0);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(create_plain_reports_every_info_kind),
        T(unknown_info_kind_is_invalid),
        T(create_fixed_is_fixed),
        T(smallest_safe_size_follows_the_last_data),
        T(child_names_its_parent),
        T(no_parents_open_lists_the_locator),
        T(open_modes_and_refusals),
        T(set_ids_persist_and_keep_identity_and_tracking),
        T(set_parent_path_follows_a_moved_parent),
        T(set_parent_locator_checks_the_linkage),
        T(set_needs_a_writer),
        T(tracking_exact_ranges_4k),
        T(tracking_exact_ranges_64k),
        T(query_paging_resumes_exactly),
        T(query_between_two_ids),
        T(enable_when_already_enabled),
        T(disable_then_enable_again),
        T(disabled_stays_disabled_across_writes_and_reopen),
        T(untracked_disk_reports_disabled),
        T(read_only_open_queries_and_leaves_sidecars_alone),
        T(ids_of_another_disk_and_garbage),
        T(foreign_write_resets),
        T(deleted_sidecars_mean_disabled),
        T(relink_to_other_content_is_a_change),
        T(foreign_sidecars_are_left_alone),
        T(corrupt_rct_headers_reset),
        T(one_corrupt_rct_header_is_survived),
        T(sidecars_of_another_disk_reset),
        T(deleted_mrt_resets),
        T(deleted_rct_resets),
        T(copied_disk_keeps_tracking),
        T(vdisk_resize_restarts_tracking),
        T(resize_behind_the_back_resets),
        T(child_tracks_its_own_writes),
        T(stale_sidecars_of_a_deleted_disk_are_dropped),
        T(read_only_opens_keep_no_descriptors),
        T(persist_tracking_bounds_crash_reports),
        T(win32_errors_match_virtdisk),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
