/* SPDX-License-Identifier: MIT */
/* vhd.c - 'tidemark vhd <verb>': create, inspect, check, dump and do byte
 * I/O on VHDX files through lib/vhdx (convert lives in convert.c); 'vhd
 * write' goes through lib/vdisk, so change tracking records it.  The
 * verbs echo Hyper-V's New-VHD, Get-VHD and Test-VHD.  See tidemark-vhd(1).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define VHD_MAN "tidemark-vhd(1)"
#define IO_CHUNK (8u << 20)         /* bytes per read or write call */

/* Option ids of the vhd verbs (each verb uses a few). */
enum {
    OPT_SIZE,
    OPT_FIXED,
    OPT_DYNAMIC,
    OPT_BLOCK_SIZE,
    OPT_LOGICAL_SECTOR,
    OPT_PHYSICAL_SECTOR,
    OPT_LOG_SIZE,
    OPT_JSON,
    OPT_REPAIR,
    OPT_OFFSET,
    OPT_LENGTH,
    OPT_PATTERN,
    OPT_PARENT,
    OPT_UNMAP,
    OPT_INTO,
    OPT_FORCE,
};

/* ---- shared ------------------------------------------------------------- */

int
vhd_open_ex(const struct cli_cmd *cmd, const char *path, bool rw,
            const struct tm_vhdx_open_opts *opts, struct tm_vhdx **out)
{
    struct tm_vhdx *vd;
    int rc;
    int status;

    *out = NULL;
    vd = tm_vhdx_new();
    if (vd == NULL)
        return cli_fail(cmd, "cannot open '%s': %s", path,
                        tm_strerror(-ENOMEM));
    /* Writers lock the file (and share-lock its parents), so a disk a VM
     * (QEMU) has open is refused; readers do not lock. */
    rc = tm_vhdx_open_path(vd, path, rw ? 0 : TM_VHDX_RDONLY, opts);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot open '%s': %s", path,
                          cli_vhdx_msg(vd, rc));
        tm_vhdx_close(vd);
        return status;
    }
    *out = vd;
    return CLI_EXIT_OK;
}

int
vhd_open(const struct cli_cmd *cmd, const char *path, bool rw,
         struct tm_vhdx **out)
{
    return vhd_open_ex(cmd, path, rw, NULL, out);
}

/* Structure verbs (check, dump, repair) look at the one file. */
static const struct tm_vhdx_open_opts alone = { .no_parent = true };

/* Opens with the chain, or where the verb takes --parent, with the
 * immediate parent at that path. */
static int
vhd_open_args(const struct cli_cmd *cmd, const struct cli_args *a, bool rw,
              struct tm_vhdx **out)
{
    struct tm_vhdx_open_opts o = { 0 };

    o.parent_path = a->opt[OPT_PARENT];
    return vhd_open_ex(cmd, a->pos[0], rw, &o, out);
}

int
vhd_close_rw(const struct cli_cmd *cmd, const char *path, struct tm_vhdx *vd)
{
    int rc = tm_vhdx_flush(vd);

    if (rc < 0) {
        int status = cli_fail(cmd, "cannot flush '%s': %s", path,
                              cli_vhdx_msg(vd, rc));

        tm_vhdx_close(vd);
        return status;
    }
    rc = tm_vhdx_close(vd);
    if (rc < 0)
        return cli_fail(cmd, "cannot close '%s': %s", path,
                        tm_strerror(rc));
    return CLI_EXIT_OK;
}

static bool
is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

bool
vhd_opt_block_size(const struct cli_cmd *cmd, const char *s, uint32_t *out,
                   int *status)
{
    uint64_t v;

    if (!cli_opt_size(cmd, "block-size", s, &v, status))
        return false;
    if (!is_pow2(v) || v < TM_VHDX_MIN_BLOCK_SIZE ||
        v > TM_VHDX_MAX_BLOCK_SIZE) {
        *status = cli_usage(cmd, "bad --block-size '%s': must be a power of "
                            "two from 1M to 256M", s);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool
opt_sector(const struct cli_cmd *cmd, const char *name, const char *s,
           uint32_t *out, int *status)
{
    uint64_t v;

    if (!cli_opt_size(cmd, name, s, &v, status))
        return false;
    if (v != 512 && v != 4096) {
        *status = cli_usage(cmd, "bad --%s '%s': must be 512 or 4096", name,
                            s);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Exactly 'want' positional arguments, named for the message. */
bool
vhd_want_args(const struct cli_cmd *cmd, const struct cli_args *a, int want,
          const char *names, int *status)
{
    if (a->npos < want) {
        *status = cli_usage(cmd, "missing %s", names);
        return false;
    }
    if (a->npos > want) {
        *status = cli_usage(cmd, "unexpected argument '%s'",
                            a->pos[want]);
        return false;
    }
    return true;
}

bool
vhd_parse_path(const struct cli_cmd *cmd, int argc, char **argv,
           struct cli_args *a, int *status)
{
    return cli_parse(cmd, argc, argv, a, status) &&
           vhd_want_args(cmd, a, 1, "<path>", status);
}

static const char *
type_name(enum tm_vhdx_type t)
{
    switch (t) {
    case TM_VHDX_FIXED:
        return "fixed";
    case TM_VHDX_DYNAMIC:
        return "dynamic";
    case TM_VHDX_DIFFERENCING:
        return "differencing";
    }
    return "unknown";
}

static int
get_info(const struct cli_cmd *cmd, const char *path, struct tm_vhdx *vd,
         struct tm_vhdx_info *info)
{
    int rc = tm_vhdx_get_info(vd, info);

    if (rc < 0)
        return cli_fail(cmd, "cannot read the headers of '%s': %s", path,
                        cli_vhdx_msg(vd, rc));
    return CLI_EXIT_OK;
}

/* ---- vhd new ------------------------------------------------------------ */

static const struct cli_opt new_opts[] = {
    { "size", "<size>", OPT_SIZE,
      "virtual size, a multiple of the logical sector" },
    { "fixed", NULL, OPT_FIXED, "allocate every block now" },
    { "dynamic", NULL, OPT_DYNAMIC,
      "allocate blocks as they are written (default)" },
    { "block-size", "<size>", OPT_BLOCK_SIZE,
      "1M..256M, a power of two (default 32M)" },
    { "logical-sector", "<n>", OPT_LOGICAL_SECTOR,
      "512 or 4096 (default 512)" },
    { "physical-sector", "<n>", OPT_PHYSICAL_SECTOR,
      "512 or 4096 (default 4096)" },
    { "log-size", "<size>", OPT_LOG_SIZE, "a multiple of 1M (default 1M)" },
    { "parent", "<path>", OPT_PARENT,
      "make a differencing disk (AVHDX) of this parent" },
    { NULL, NULL, 0, NULL },
};

/* New-VHD -Differencing: the child takes the parent's sizes unless told
 * otherwise. */
static int
new_child(const struct cli_cmd *cmd, const char *path,
          const struct cli_args *a)
{
    struct tm_vhdx_create_params p = { 0 };
    struct tm_vhdx *vd;
    uint64_t v;
    int status = CLI_EXIT_OK;
    int rc;

    if (a->opt[OPT_FIXED] != NULL)
        return cli_usage(cmd, "a differencing disk cannot be --fixed");
    if (a->opt[OPT_LOGICAL_SECTOR] != NULL)
        return cli_usage(cmd, "a differencing disk takes its parent's "
                         "logical sector size");
    if (a->opt[OPT_PHYSICAL_SECTOR] != NULL &&
        !opt_sector(cmd, "physical-sector", a->opt[OPT_PHYSICAL_SECTOR],
                    &p.physical_sector, &status))
        return status;
    if (a->opt[OPT_BLOCK_SIZE] != NULL &&
        !vhd_opt_block_size(cmd, a->opt[OPT_BLOCK_SIZE], &p.block_size,
                            &status))
        return status;
    if (a->opt[OPT_LOG_SIZE] != NULL) {
        if (!cli_opt_size(cmd, "log-size", a->opt[OPT_LOG_SIZE], &v,
                          &status))
            return status;
        if (v == 0 || v % (1u << 20) != 0 || v > UINT32_MAX)
            return cli_usage(cmd, "bad --log-size '%s': must be a non-zero "
                             "multiple of 1M below 4G", a->opt[OPT_LOG_SIZE]);
        p.log_size = (uint32_t)v;
    }
    if (a->opt[OPT_SIZE] != NULL &&
        !cli_opt_size(cmd, "size", a->opt[OPT_SIZE], &p.virtual_size,
                      &status))
        return status;
    vd = tm_vhdx_new();
    if (vd == NULL)
        return cli_fail(cmd, "cannot create '%s': %s", path,
                        tm_strerror(-ENOMEM));
    rc = tm_vhdx_create_child(vd, path, a->opt[OPT_PARENT], &p);
    if (rc < 0) {
        status = cli_fail(cmd, "%s", cli_vhdx_msg(vd, rc));
        tm_vhdx_close(vd);
        return status;
    }
    status = vhd_close_rw(cmd, path, vd);
    if (status != CLI_EXIT_OK)
        unlink(path);
    return status;
}

static int
vhd_new(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vhdx_create_params p = { 0 };
    struct cli_args a;
    struct tm_io *io = NULL;
    struct tm_vhdx *vd;
    const char *path;
    uint64_t v;
    int status = CLI_EXIT_OK;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    path = a.pos[0];
    if (a.opt[OPT_PARENT] != NULL)
        return new_child(cmd, path, &a);
    if (a.opt[OPT_SIZE] == NULL)
        return cli_usage(cmd, "missing --size");
    if (a.opt[OPT_FIXED] != NULL && a.opt[OPT_DYNAMIC] != NULL)
        return cli_usage(cmd, "--fixed and --dynamic exclude each other");
    p.fixed = a.opt[OPT_FIXED] != NULL;
    p.logical_sector = 512;
    p.physical_sector = 4096;
    if (a.opt[OPT_LOGICAL_SECTOR] != NULL &&
        !opt_sector(cmd, "logical-sector", a.opt[OPT_LOGICAL_SECTOR],
                    &p.logical_sector, &status))
        return status;
    if (a.opt[OPT_PHYSICAL_SECTOR] != NULL &&
        !opt_sector(cmd, "physical-sector", a.opt[OPT_PHYSICAL_SECTOR],
                    &p.physical_sector, &status))
        return status;
    if (a.opt[OPT_BLOCK_SIZE] != NULL &&
        !vhd_opt_block_size(cmd, a.opt[OPT_BLOCK_SIZE], &p.block_size,
                            &status))
        return status;
    if (a.opt[OPT_LOG_SIZE] != NULL) {
        if (!cli_opt_size(cmd, "log-size", a.opt[OPT_LOG_SIZE], &v, &status))
            return status;
        if (v == 0 || v % (1u << 20) != 0 || v > UINT32_MAX)
            return cli_usage(cmd, "bad --log-size '%s': must be a non-zero "
                             "multiple of 1M below 4G", a.opt[OPT_LOG_SIZE]);
        p.log_size = (uint32_t)v;
    }
    if (!cli_opt_size(cmd, "size", a.opt[OPT_SIZE], &p.virtual_size,
                      &status))
        return status;
    if (p.virtual_size == 0 || p.virtual_size > TM_VHDX_MAX_VIRTUAL_SIZE)
        return cli_usage(cmd, "bad --size '%s': must be from 1 byte to 64T",
                         a.opt[OPT_SIZE]);
    if (p.virtual_size % p.logical_sector != 0)
        return cli_usage(cmd, "bad --size '%s': not a multiple of the "
                         "logical sector (%" PRIu32 ")", a.opt[OPT_SIZE],
                         p.logical_sector);

    /* EXCL: never overwrite an existing file, as New-VHD refuses to. */
    rc = tm_io_posix_open(path, TM_IO_CREATE | TM_IO_EXCL | TM_IO_LOCK, &io);
    if (rc < 0)
        return cli_fail(cmd, "cannot create '%s': %s", path,
                        tm_strerror(rc));
    vd = tm_vhdx_new();
    if (vd == NULL) {
        tm_io_close(io);
        unlink(path);
        return cli_fail(cmd, "cannot create '%s': %s", path,
                        tm_strerror(-ENOMEM));
    }
    rc = tm_vhdx_create(vd, io, &p);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot create '%s': %s", path,
                          cli_vhdx_msg(vd, rc));
        tm_vhdx_close(vd);
        unlink(path);
        return status;
    }
    status = vhd_close_rw(cmd, path, vd);
    if (status != CLI_EXIT_OK)
        unlink(path);
    return status;
}

/* ---- vhd info ----------------------------------------------------------- */

enum field_kind {
    F_STR,
    F_U64,
    F_SIZE,                         /* bytes, shown also in human units */
    F_BOOL,
};

struct field {
    const char *key;                /* JSON key; spaces for '_' in text */
    enum field_kind kind;
    uint64_t u;
    const char *s;
};

#define MAX_FIELDS 32

struct info_text {
    char vdid[TM_GUID_STR_LEN + 1];
    char dwg[TM_GUID_STR_LEN + 1];
    char fwg[TM_GUID_STR_LEN + 1];
    char lg[TM_GUID_STR_LEN + 1];
    char creator[sizeof(((struct tm_vhdx_info *)0)->creator) + 1];
};

static size_t
add(struct field *f, size_t n, const char *key, enum field_kind kind,
    uint64_t u, const char *s)
{
    assert(n < MAX_FIELDS);
    f[n] = (struct field){ key, kind, u, s };
    return n + 1;
}

/* The facts 'vhd info' shows, in order.  The keys are an interface:
 * scripts read them from --json, so they are only ever added to. */
static size_t
info_fields(const char *path, const struct tm_vhdx_info *in,
            struct info_text *t, struct field *f)
{
    size_t n = 0;

    tm_guid_format(&in->virtual_disk_id, t->vdid);
    tm_guid_format(&in->data_write_guid, t->dwg);
    tm_guid_format(&in->file_write_guid, t->fwg);
    tm_guid_format(&in->log_guid, t->lg);
    memcpy(t->creator, in->creator, sizeof(in->creator));
    t->creator[sizeof(in->creator)] = '\0';

    n = add(f, n, "path", F_STR, 0, path);
    n = add(f, n, "type", F_STR, 0, type_name(in->type));
    n = add(f, n, "virtual_size", F_SIZE, in->virtual_size, NULL);
    n = add(f, n, "file_size", F_SIZE, in->file_size, NULL);
    n = add(f, n, "logical_sector_size", F_U64, in->logical_sector, NULL);
    n = add(f, n, "physical_sector_size", F_U64, in->physical_sector, NULL);
    n = add(f, n, "block_size", F_SIZE, in->block_size, NULL);
    n = add(f, n, "log_size", F_SIZE, in->log_size, NULL);
    n = add(f, n, "log_offset", F_U64, in->log_offset, NULL);
    n = add(f, n, "virtual_disk_id", F_STR, 0, t->vdid);
    n = add(f, n, "data_write_guid", F_STR, 0, t->dwg);
    n = add(f, n, "file_write_guid", F_STR, 0, t->fwg);
    n = add(f, n, "log_guid", F_STR, 0, t->lg);
    n = add(f, n, "creator", F_STR, 0, t->creator);
    n = add(f, n, "header_sequence", F_U64, in->header_seq, NULL);
    n = add(f, n, "has_parent", F_BOOL, in->has_parent, NULL);
    n = add(f, n, "leave_blocks_allocated", F_BOOL,
            in->leave_block_allocated, NULL);
    n = add(f, n, "log_replayed", F_BOOL, in->log_replayed, NULL);
    n = add(f, n, "blocks_total", F_U64, in->blocks_total, NULL);
    n = add(f, n, "blocks_not_present", F_U64, in->blocks_not_present, NULL);
    n = add(f, n, "blocks_zero", F_U64, in->blocks_zero, NULL);
    n = add(f, n, "blocks_unmapped", F_U64, in->blocks_unmapped, NULL);
    n = add(f, n, "blocks_fully_present", F_U64, in->blocks_fully_present,
            NULL);
    n = add(f, n, "blocks_partially_present", F_U64,
            in->blocks_partially_present, NULL);
    n = add(f, n, "blocks_undefined", F_U64, in->blocks_undefined, NULL);
    n = add(f, n, "allocated_bytes", F_SIZE, in->allocated_bytes, NULL);
    return n;
}

/* 'close' = false leaves the object open for more members. */
static void
print_json(FILE *out, const struct field *f, size_t n, bool close)
{
    fputs("{\n", out);
    for (size_t i = 0; i < n; i++) {
        fputs("  ", out);
        cli_json_str(out, f[i].key);
        fputs(": ", out);
        switch (f[i].kind) {
        case F_STR:
            cli_json_str(out, f[i].s);
            break;
        case F_U64:
        case F_SIZE:
            fprintf(out, "%" PRIu64, f[i].u);
            break;
        case F_BOOL:
            fputs(f[i].u ? "true" : "false", out);
            break;
        }
        fputs(i + 1 < n || !close ? ",\n" : "\n", out);
    }
    if (close)
        fputs("}\n", out);
}

static void
print_text(FILE *out, const struct field *f, size_t n)
{
    size_t width = 0;

    for (size_t i = 0; i < n; i++) {
        if (strlen(f[i].key) > width)
            width = strlen(f[i].key);
    }
    for (size_t i = 0; i < n; i++) {
        char human[32];
        size_t k = strlen(f[i].key);

        for (size_t j = 0; j < k; j++)
            fputc(f[i].key[j] == '_' ? ' ' : f[i].key[j], out);
        fprintf(out, ":%*s", (int)(width - k + 1), "");
        switch (f[i].kind) {
        case F_STR:
            fprintf(out, "%s\n", f[i].s);
            break;
        case F_U64:
            fprintf(out, "%" PRIu64 "\n", f[i].u);
            break;
        case F_SIZE:
            if (f[i].u < 1024) {
                fprintf(out, "%" PRIu64 "\n", f[i].u);
                break;
            }
            cli_human_size(f[i].u, human, sizeof(human));
            fprintf(out, "%" PRIu64 " (%s)\n", f[i].u, human);
            break;
        case F_BOOL:
            fputs(f[i].u ? "yes\n" : "no\n", out);
            break;
        }
    }
}

static const struct cli_opt info_opts[] = {
    { "json", NULL, OPT_JSON, "print one JSON object" },
    { NULL, NULL, 0, NULL },
};

static int
vhd_info(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vhdx_info info;
    struct info_text text;
    struct field fields[MAX_FIELDS];
    struct cli_args a;
    struct tm_vhdx *vd;
    size_t n;
    int status;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    status = vhd_open_ex(cmd, a.pos[0], false, &alone, &vd);
    if (status != CLI_EXIT_OK)
        return status;
    status = get_info(cmd, a.pos[0], vd, &info);
    if (status != CLI_EXIT_OK) {
        tm_vhdx_close(vd);
        return status;
    }
    n = info_fields(a.pos[0], &info, &text, fields);
    if (a.opt[OPT_JSON] != NULL) {
        print_json(stdout, fields, n, !info.has_parent);
        if (info.has_parent) {
            vhd_print_chain(stdout, vd, true);
            fputs("}\n", stdout);
        }
    } else {
        print_text(stdout, fields, n);
        if (info.has_parent)
            vhd_print_chain(stdout, vd, false);
    }
    tm_vhdx_close(vd);
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_fail(cmd, "cannot write to stdout: %s",
                        tm_strerror(-errno));
    return CLI_EXIT_OK;
}

/* ---- vhd check ---------------------------------------------------------- */

struct check_ctx {
    const char *path;
    unsigned problems;
};

static void
report_problem(void *user, const char *problem)
{
    struct check_ctx *c = user;

    c->problems++;
    printf("%s: %s\n", c->path, problem);
}

static void
report_repair(void *user, const char *what)
{
    printf("%s: repaired: %s\n", (const char *)user, what);
}

/* A differencing disk is only usable with its parents: one that cannot
 * be opened, or has changed, is a problem of this file's too. */
static void
check_chain(struct check_ctx *c)
{
    struct tm_vhdx *vd = tm_vhdx_new();
    int rc;

    if (vd == NULL)
        return;
    rc = tm_vhdx_open_path(vd, c->path, TM_VHDX_RDONLY, NULL);
    if (rc < 0)
        report_problem(c, tm_vhdx_err(vd)->msg);
    tm_vhdx_close(vd);
}

/* Open read-write (which replays a dirty log into the file), mend what
 * the open tolerated (a damaged header or region table copy), close;
 * says what it did on stdout. */
static int
repair(const struct cli_cmd *cmd, const char *path)
{
    struct tm_vhdx_info info;
    struct tm_vhdx *vd;
    int status;
    int rc;

    status = vhd_open_ex(cmd, path, true, &alone, &vd);
    if (status != CLI_EXIT_OK)
        return status;
    status = get_info(cmd, path, vd, &info);
    if (status != CLI_EXIT_OK) {
        tm_vhdx_close(vd);
        return status;
    }
    if (info.log_replayed)
        printf("%s: log replayed into the file\n", path);
    else
        printf("%s: log clean, nothing to replay\n", path);
    rc = tm_vhdx_repair(vd, report_repair, (void *)path);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot repair '%s': %s", path,
                          cli_vhdx_msg(vd, rc));
        tm_vhdx_close(vd);
        return status;
    }
    return vhd_close_rw(cmd, path, vd);
}

static const struct cli_opt check_opts[] = {
    { "repair", NULL, OPT_REPAIR,
      "replay a dirty log, mend a damaged header or region table" },
    { NULL, NULL, 0, NULL },
};

static int
vhd_check(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct check_ctx c = { 0 };
    struct cli_args a;
    struct tm_vhdx *vd;
    int status;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    c.path = a.pos[0];
    if (a.opt[OPT_REPAIR] != NULL) {
        status = repair(cmd, c.path);
        if (status != CLI_EXIT_OK)
            return status;
    }
    status = vhd_open_ex(cmd, c.path, false, &alone, &vd);
    if (status != CLI_EXIT_OK)
        return status;
    rc = tm_vhdx_check(vd, report_problem, &c);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot check '%s': %s", c.path,
                          cli_vhdx_msg(vd, rc));
        tm_vhdx_close(vd);
        return status;
    }
    tm_vhdx_close(vd);
    if (rc >= 0)
        check_chain(&c);
    /* The count returned and the reports made should agree; trust the
     * larger. */
    if ((unsigned)rc > c.problems)
        c.problems = (unsigned)rc;
    if (c.problems == 0)
        printf("%s: no problems found\n", c.path);
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_fail(cmd, "cannot write to stdout: %s",
                        tm_strerror(-errno));
    if (c.problems > 0)
        return cli_fail(cmd, "'%s' has %u problem%s", c.path, c.problems,
                        c.problems == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

/* ---- vhd dump ----------------------------------------------------------- */

static void
dump_line(void *user, const char *line)
{
    (void)user;
    fputs(line, stdout);
    fputc('\n', stdout);
}

static const struct cli_opt no_opts[] = {
    { NULL, NULL, 0, NULL },
};

static int
vhd_dump(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args a;
    struct tm_vhdx *vd;
    int status;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    status = vhd_open_ex(cmd, a.pos[0], false, &alone, &vd);
    if (status != CLI_EXIT_OK)
        return status;
    rc = tm_vhdx_dump(vd, dump_line, NULL);
    if (rc < 0)
        status = cli_fail(cmd, "cannot dump '%s': %s", a.pos[0],
                          cli_vhdx_msg(vd, rc));
    tm_vhdx_close(vd);
    if (status == CLI_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout)))
        status = cli_fail(cmd, "cannot write to stdout: %s",
                          tm_strerror(-errno));
    return status;
}

/* ---- vhd cat, vhd read -------------------------------------------------- */

/* Writes virtual bytes [off, off + len) to stdout in large pieces; runs
 * that block_status calls unallocated are written as zeros unread. */
static int
copy_out(const struct cli_cmd *cmd, const char *path, struct tm_vhdx *vd,
         uint64_t off, uint64_t len)
{
    uint8_t *buf = cli_alloc(IO_CHUNK);
    uint8_t *zeros = calloc(1, IO_CHUNK);
    int status = CLI_EXIT_OK;
    int rc;

    if (buf == NULL || zeros == NULL) {
        status = cli_fail(cmd, "%s", tm_strerror(-ENOMEM));
        goto out_free;
    }
    while (len > 0) {
        uint64_t want = len < IO_CHUNK ? len : IO_CHUNK;
        uint64_t run = 0;
        bool allocated = true;
        const uint8_t *src = buf;

        rc = tm_vhdx_block_status(vd, off, want, &run, &allocated);
        if (rc < 0) {
            status = cli_fail(cmd, "cannot map '%s' at %" PRIu64 ": %s",
                              path, off, cli_vhdx_msg(vd, rc));
            goto out_free;
        }
        if (run == 0 || run > want) {
            status = cli_fail(cmd, "cannot map '%s' at %" PRIu64 ": bad "
                              "run length %" PRIu64, path, off, run);
            goto out_free;
        }
        if (allocated) {
            rc = tm_vhdx_read(vd, buf, (size_t)run, off);
            if (rc < 0) {
                status = cli_fail(cmd, "cannot read '%s' at %" PRIu64
                                  ": %s", path, off, cli_vhdx_msg(vd, rc));
                goto out_free;
            }
        } else {
            src = zeros;
        }
        rc = cli_write_all(STDOUT_FILENO, src, (size_t)run);
        if (rc < 0) {
            status = cli_fail(cmd, "cannot write to stdout: %s",
                              tm_strerror(rc));
            goto out_free;
        }
        off += run;
        len -= run;
    }
out_free:
    free(zeros);
    free(buf);
    return status;
}

static const struct cli_opt cat_opts[] = {
    { "parent", "<path>", OPT_PARENT,
      "the parent is here, not where the locator says" },
    { NULL, NULL, 0, NULL },
};

static int
vhd_cat(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vhdx_info info;
    struct cli_args a;
    struct tm_vhdx *vd;
    int status;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    status = vhd_open_args(cmd, &a, false, &vd);
    if (status != CLI_EXIT_OK)
        return status;
    status = get_info(cmd, a.pos[0], vd, &info);
    if (status == CLI_EXIT_OK)
        status = copy_out(cmd, a.pos[0], vd, 0, info.virtual_size);
    tm_vhdx_close(vd);
    return status;
}

/* Checks that [off, off + len) lies inside the disk. */
static int
check_range(const struct cli_cmd *cmd, const char *path, uint64_t off,
            uint64_t len, uint64_t size)
{
    if (off > size || len > size - off)
        return cli_fail(cmd, "range %" PRIu64 "+%" PRIu64 " goes past the "
                        "end of '%s' (%" PRIu64 " bytes)", off, len, path,
                        size);
    return CLI_EXIT_OK;
}

static const struct cli_opt read_opts[] = {
    { "offset", "<offset>", OPT_OFFSET, "first byte to read (required)" },
    { "length", "<length>", OPT_LENGTH, "bytes to read (required)" },
    { "parent", "<path>", OPT_PARENT,
      "the parent is here, not where the locator says" },
    { NULL, NULL, 0, NULL },
};

static int
vhd_read(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vhdx_info info;
    struct cli_args a;
    struct tm_vhdx *vd;
    uint64_t off;
    uint64_t len;
    int status;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    if (a.opt[OPT_OFFSET] == NULL)
        return cli_usage(cmd, "missing --offset");
    if (a.opt[OPT_LENGTH] == NULL)
        return cli_usage(cmd, "missing --length");
    if (!cli_opt_size(cmd, "offset", a.opt[OPT_OFFSET], &off, &status) ||
        !cli_opt_size(cmd, "length", a.opt[OPT_LENGTH], &len, &status))
        return status;
    status = vhd_open_args(cmd, &a, false, &vd);
    if (status != CLI_EXIT_OK)
        return status;
    status = get_info(cmd, a.pos[0], vd, &info);
    if (status == CLI_EXIT_OK)
        status = check_range(cmd, a.pos[0], off, len, info.virtual_size);
    if (status == CLI_EXIT_OK)
        status = copy_out(cmd, a.pos[0], vd, off, len);
    tm_vhdx_close(vd);
    return status;
}

/* ---- vhd write ---------------------------------------------------------- */

/* Writes go through lib/vdisk, so a disk with change tracking on has
 * every write recorded (tidemark-rct(1)); without it they are plain VHDX
 * writes. */
static int
write_at(const struct cli_cmd *cmd, const char *path, struct tm_vdisk *d,
         const void *buf, size_t len, uint64_t off)
{
    int rc = tm_vdisk_write(d, buf, len, off);

    if (rc < 0)
        return cli_fail(cmd, "cannot write '%s' at %" PRIu64 ": %s", path,
                        off, cli_vdisk_msg(d, rc));
    return CLI_EXIT_OK;
}

static int
write_pattern(const struct cli_cmd *cmd, const char *path,
              struct tm_vdisk *d, uint8_t byte, uint64_t off, uint64_t len)
{
    size_t n = len < IO_CHUNK ? (size_t)len : IO_CHUNK;
    uint8_t *buf = cli_alloc(n > 0 ? n : 1);
    int status = CLI_EXIT_OK;

    if (buf == NULL)
        return cli_fail(cmd, "%s", tm_strerror(-ENOMEM));
    memset(buf, byte, n);
    while (len > 0 && status == CLI_EXIT_OK) {
        size_t k = len < n ? (size_t)len : n;

        status = write_at(cmd, path, d, buf, k, off);
        off += k;
        len -= k;
    }
    free(buf);
    return status;
}

/* Fills buf from stdin; *got < len only at end of input. */
static int
read_stdin(uint8_t *buf, size_t len, size_t *got)
{
    *got = 0;
    while (*got < len) {
        ssize_t n = read(STDIN_FILENO, buf + *got, len - *got);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

static int
write_stdin(const struct cli_cmd *cmd, const char *path, struct tm_vdisk *d,
            uint64_t off, uint64_t size)
{
    uint8_t *buf;
    int status = CLI_EXIT_OK;
    struct stat st;
    off_t pos;

    /* A file on stdin: refuse before writing anything if it won't fit. */
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
        pos = lseek(STDIN_FILENO, 0, SEEK_CUR);
        if (pos >= 0 && pos <= st.st_size) {
            status = check_range(cmd, path, off,
                                 (uint64_t)(st.st_size - pos), size);
            if (status != CLI_EXIT_OK)
                return status;
        }
    }
    buf = cli_alloc(IO_CHUNK);
    if (buf == NULL)
        return cli_fail(cmd, "%s", tm_strerror(-ENOMEM));
    for (;;) {
        size_t got;
        int rc = read_stdin(buf, IO_CHUNK, &got);

        if (rc < 0) {
            status = cli_fail(cmd, "cannot read stdin: %s", tm_strerror(rc));
            break;
        }
        if (got == 0)
            break;
        status = check_range(cmd, path, off, got, size);
        if (status != CLI_EXIT_OK)
            break;
        status = write_at(cmd, path, d, buf, got, off);
        if (status != CLI_EXIT_OK)
            break;
        off += got;
        if (got < IO_CHUNK)
            break;
    }
    free(buf);
    return status;
}

static const struct cli_opt write_opts[] = {
    { "offset", "<offset>", OPT_OFFSET, "first byte to write (required)" },
    { "pattern", "<byte>", OPT_PATTERN,
      "write this byte (0..255, 0x00..0xff), not stdin" },
    { "length", "<length>", OPT_LENGTH, "bytes of --pattern to write" },
    { "parent", "<path>", OPT_PARENT,
      "the parent is here, not where the locator says" },
    { NULL, NULL, 0, NULL },
};

static int
vhd_write(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vdisk_info info = { .kind = TM_VDISK_INFO_SIZE };
    struct cli_args a;
    struct tm_vdisk *d;
    uint64_t off;
    uint64_t len = 0;
    uint64_t byte = 0;
    const char *why;
    int status;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    if (a.opt[OPT_OFFSET] == NULL)
        return cli_usage(cmd, "missing --offset");
    if (!cli_opt_size(cmd, "offset", a.opt[OPT_OFFSET], &off, &status))
        return status;
    if ((a.opt[OPT_PATTERN] == NULL) != (a.opt[OPT_LENGTH] == NULL))
        return cli_usage(cmd, "--pattern and --length go together");
    if (a.opt[OPT_PATTERN] != NULL) {
        if (cli_parse_uint(a.opt[OPT_PATTERN], 255, &byte, &why) < 0)
            return cli_usage(cmd, "bad --pattern '%s': %s (0..255)",
                             a.opt[OPT_PATTERN], why);
        if (!cli_opt_size(cmd, "length", a.opt[OPT_LENGTH], &len, &status))
            return status;
    } else if (isatty(STDIN_FILENO)) {
        return cli_usage(cmd, "stdin is a terminal; redirect it or give "
                         "--pattern");
    }
    status = cli_vdisk_open(cmd, a.pos[0], 0, a.opt[OPT_PARENT], &d);
    if (status != CLI_EXIT_OK)
        return status;
    rc = tm_vdisk_get_info(d, &info);
    if (rc < 0)
        status = cli_fail(cmd, "cannot read the headers of '%s': %s",
                          a.pos[0], cli_vdisk_msg(d, rc));
    if (status == CLI_EXIT_OK && a.opt[OPT_PATTERN] != NULL) {
        status = check_range(cmd, a.pos[0], off, len,
                             info.size.virtual_size);
        if (status == CLI_EXIT_OK)
            status = write_pattern(cmd, a.pos[0], d, (uint8_t)byte, off,
                                   len);
    } else if (status == CLI_EXIT_OK) {
        status = write_stdin(cmd, a.pos[0], d, off, info.size.virtual_size);
    }
    if (status != CLI_EXIT_OK) {
        tm_vdisk_close(d);
        return status;
    }
    return cli_vdisk_close_rw(cmd, a.pos[0], d);
}

/* ---- the noun ----------------------------------------------------------- */

static const struct cli_cmd vhd_cmds[] = {
    { "new", "vhd new",
      "<path> --size <size> [--fixed | --dynamic]\n"
      "[--block-size <size>] [--logical-sector <n>]\n"
      "[--physical-sector <n>] [--log-size <size>]",
      "Create an empty VHDX; an existing file is never overwritten.",
      "create an empty VHDX or a child of one", VHD_MAN, new_opts,
      vhd_new },
    { "info", "vhd info", "[--json] <path>",
      "Show a VHDX's type, sizes, identifiers and block allocation.",
      "show type, sizes, GUIDs and allocation", VHD_MAN, info_opts,
      vhd_info },
    { "check", "vhd check", "[--repair] <path>",
      "Check a VHDX's structures; exit 1 if there are problems.",
      "check structures (and replay the log)", VHD_MAN, check_opts,
      vhd_check },
    { "dump", "vhd dump", "<path>",
      "Print every on-disk structure of a VHDX, for debugging.",
      "print every on-disk structure", VHD_MAN, no_opts, vhd_dump },
    { "convert", "vhd convert",
      "[--fixed | --dynamic] [--block-size <size>]\n<src> <dst>",
      "Copy a raw image into a VHDX or a VHDX into a raw image, keeping "
      "holes.",
      "copy between raw images and VHDX", VHD_MAN, vhd_convert_opts,
      vhd_convert },
    { "cat", "vhd cat", "[--parent <path>] <path>",
      "Write every virtual byte of a VHDX (through its chain) to stdout.",
      "write the whole disk to stdout", VHD_MAN, cat_opts, vhd_cat },
    { "read", "vhd read", "<path> --offset <offset> --length <length>",
      "Write a range of a VHDX's virtual bytes to stdout.",
      "write a range to stdout", VHD_MAN, read_opts, vhd_read },
    { "discard", "vhd discard",
      "<path> --offset <offset> --length <length> [--unmap]",
      "Make a range read as zeros, releasing whole blocks' space.",
      "zero a range, freeing whole blocks", VHD_MAN, vhd_discard_opts,
      vhd_discard },
    { "merge", "vhd merge", "<child> [--into <ancestor>]",
      "Fold a differencing disk (down to an ancestor) into that ancestor.",
      "fold a child into its parent", VHD_MAN, vhd_merge_opts, vhd_merge },
    { "set-parent", "vhd set-parent", "[--force] <child> <parent>",
      "Point a differencing disk at its parent's new location.",
      "relink a moved chain", VHD_MAN, vhd_set_parent_opts,
      vhd_set_parent },
    { "resize", "vhd resize", "<path> --size <size> [--parent <path>]",
      "Change a VHDX's virtual size; shrinking keeps every byte of data.",
      "grow or shrink the virtual size", VHD_MAN, vhd_resize_opts,
      vhd_resize },
    { "optimize", "vhd optimize", "[--json] <path>",
      "Release zero blocks and compact a dynamic or differencing VHDX.",
      "release zero blocks, compact the file", VHD_MAN, vhd_optimize_opts,
      vhd_optimize },
    { "write", "vhd write",
      "<path> --offset <offset>\n"
      "(--pattern <byte> --length <length> | <stdin>)",
      "Write a repeated byte, or all of stdin, into a VHDX at an offset.",
      "write stdin or a pattern at an offset", VHD_MAN, write_opts,
      vhd_write },
    { NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL },
};

static int
print_noun_help(void)
{
    printf("usage: %s vhd <verb> [options] <args>\n"
           "Create, inspect, check, convert and merge VHDX files and "
           "chains.\n", CLI_PROG);
    for (const struct cli_cmd *c = vhd_cmds; c->verb != NULL; c++)
        printf("  %-12s %s\n", c->verb, c->brief);
    printf("  --help       show this help and exit\n"
           "Run '%s vhd <verb> --help' for a verb's options.\n"
           "See %s.\n", CLI_PROG, VHD_MAN);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* The noun itself, for messages about it. */
static const struct cli_cmd vhd_noun = {
    "", "vhd", "", "", "", VHD_MAN, no_opts, NULL,
};

int
vhd_main(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : NULL;

    if (verb == NULL)
        return cli_usage(&vhd_noun, "missing verb");
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)
        return print_noun_help();
    for (const struct cli_cmd *c = vhd_cmds; c->verb != NULL; c++) {
        if (strcmp(verb, c->verb) == 0)
            return c->run(c, argc - 1, argv + 1);
    }
    if (verb[0] == '-')
        return cli_usage(&vhd_noun, "unknown option '%s'", verb);
    return cli_usage(&vhd_noun, "unknown verb '%s'", verb);
}
