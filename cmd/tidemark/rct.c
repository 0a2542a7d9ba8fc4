/* SPDX-License-Identifier: MIT */
/* rct.c - 'tidemark rct <verb>': resilient change tracking of a VHDX
 * through lib/vdisk, the calls a Hyper-V backup makes: turn tracking on
 * or off (SetVirtualDiskInformation's CHANGE_TRACKING_STATE), show its
 * state (GetVirtualDiskInformation's), seal a reference point and print
 * its ID, and list what changed since one (QueryChangesVirtualDisk).  The
 * disk is always opened without its parents: tracking belongs to the one
 * file.  See tidemark-rct(1). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define RCT_MAN "tidemark-rct(1)"
#define RANGES_PER_QUERY 4096       /* ranges asked for per query call */
/* Overrides RANGES_PER_QUERY, so tests page through a few ranges. */
#define RANGES_ENV "TIDEMARK_RCT_QUERY_RANGES"
#define MIN_GRANULARITY (4u << 10)
#define MAX_GRANULARITY (2u << 20)

/* Option ids of the rct verbs. */
enum {
    ROPT_GRANULARITY,
    ROPT_JSON,
    ROPT_SINCE,
    ROPT_UNTIL,
    ROPT_OFFSET,
    ROPT_LENGTH,
};

static const unsigned OPEN_RO =
    TM_VDISK_OPEN_READ_ONLY | TM_VDISK_OPEN_NO_PARENTS;
static const unsigned OPEN_RW = TM_VDISK_OPEN_NO_PARENTS;

static int
flush_stdout(const struct cli_cmd *cmd)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_fail(cmd, "cannot write to stdout: %s",
                        tm_strerror(-errno));
    return CLI_EXIT_OK;
}

static int
get_tracking(const struct cli_cmd *cmd, const char *path, struct tm_vdisk *d,
             struct tm_vdisk_info *info)
{
    int rc;

    memset(info, 0, sizeof(*info));
    info->kind = TM_VDISK_INFO_CHANGE_TRACKING_STATE;
    rc = tm_vdisk_get_info(d, info);
    if (rc < 0)
        return cli_fail(cmd, "cannot read the change tracking state of "
                        "'%s': %s", path, cli_vdisk_msg(d, rc));
    return CLI_EXIT_OK;
}

/* How tracking was found at open: the JSON value and the text. */
static const char *
found_key(enum tm_vdisk_tracking_open f)
{
    switch (f) {
    case TM_VDISK_TRACKING_CLEAN:
        return "clean";
    case TM_VDISK_TRACKING_RECOVERED:
        return "recovered";
    case TM_VDISK_TRACKING_RESET_FOREIGN_WRITE:
        return "reset-foreign-write";
    case TM_VDISK_TRACKING_RESET_RESIZED:
        return "reset-resized";
    case TM_VDISK_TRACKING_RESET_CORRUPT:
        return "reset-corrupt";
    }
    return "unknown";
}

static const char *
found_text(enum tm_vdisk_tracking_open f)
{
    switch (f) {
    case TM_VDISK_TRACKING_CLEAN:
        return "clean";
    case TM_VDISK_TRACKING_RECOVERED:
        return "recovered after a crash";
    case TM_VDISK_TRACKING_RESET_FOREIGN_WRITE:
        return "reset: foreign write";
    case TM_VDISK_TRACKING_RESET_RESIZED:
        return "reset: resized";
    case TM_VDISK_TRACKING_RESET_CORRUPT:
        return "reset: corrupt sidecars";
    }
    return "unknown";
}

/* ---- rct enable, rct disable -------------------------------------------- */

static const struct cli_opt enable_opts[] = {
    { "granularity", "<size>", ROPT_GRANULARITY,
      "4K..2M, a power of two (default 64K)" },
    { NULL, NULL, 0, NULL },
};

static const struct cli_opt no_opts[] = {
    { NULL, NULL, 0, NULL },
};

static bool
opt_granularity(const struct cli_cmd *cmd, const char *s, uint32_t *out,
                int *status)
{
    uint64_t v;

    if (!cli_opt_size(cmd, "granularity", s, &v, status))
        return false;
    if (v < MIN_GRANULARITY || v > MAX_GRANULARITY || (v & (v - 1)) != 0) {
        *status = cli_usage(cmd, "bad --granularity '%s': must be a power "
                            "of two from 4K to 2M", s);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static int
rct_enable(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vdisk_set_info set = {
        .kind = TM_VDISK_SET_CHANGE_TRACKING_STATE,
    };
    struct tm_vdisk_info info;
    struct cli_args a;
    struct tm_vdisk *d;
    const char *path;
    uint32_t gran = 0;
    bool was_on;
    char human[32];
    int status;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    path = a.pos[0];
    if (a.opt[ROPT_GRANULARITY] != NULL &&
        !opt_granularity(cmd, a.opt[ROPT_GRANULARITY], &gran, &status))
        return status;
    status = cli_vdisk_open(cmd, path, OPEN_RW, NULL, &d);
    if (status != CLI_EXIT_OK)
        return status;
    status = get_tracking(cmd, path, d, &info);
    if (status != CLI_EXIT_OK) {
        tm_vdisk_close(d);
        return status;
    }
    was_on = info.change_tracking.enabled;
    set.change_tracking.enabled = true;
    set.change_tracking.granularity = gran;
    rc = tm_vdisk_set_info(d, &set);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot enable change tracking on '%s': %s",
                          path, cli_vdisk_msg(d, rc));
        tm_vdisk_close(d);
        return status;
    }
    status = get_tracking(cmd, path, d, &info);
    if (status != CLI_EXIT_OK) {
        tm_vdisk_close(d);
        return status;
    }
    status = cli_vdisk_close_rw(cmd, path, d);
    if (status != CLI_EXIT_OK)
        return status;
    cli_human_size(info.change_tracking.granularity, human, sizeof(human));
    printf("change tracking %s on %s (granularity %s)\n",
           was_on ? "already enabled" : "enabled", path, human);
    return flush_stdout(cmd);
}

static int
rct_disable(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vdisk_set_info set = {
        .kind = TM_VDISK_SET_CHANGE_TRACKING_STATE,
    };
    struct tm_vdisk_info info;
    struct cli_args a;
    struct tm_vdisk *d;
    const char *path;
    int status;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    path = a.pos[0];
    status = cli_vdisk_open(cmd, path, OPEN_RW, NULL, &d);
    if (status != CLI_EXIT_OK)
        return status;
    status = get_tracking(cmd, path, d, &info);
    if (status != CLI_EXIT_OK) {
        tm_vdisk_close(d);
        return status;
    }
    set.change_tracking.enabled = false;
    rc = tm_vdisk_set_info(d, &set);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot disable change tracking on '%s': "
                          "%s", path, cli_vdisk_msg(d, rc));
        tm_vdisk_close(d);
        return status;
    }
    status = cli_vdisk_close_rw(cmd, path, d);
    if (status != CLI_EXIT_OK)
        return status;
    printf("change tracking %s on %s\n",
           info.change_tracking.enabled ? "disabled" : "already off", path);
    return flush_stdout(cmd);
}

/* ---- rct status --------------------------------------------------------- */

static const struct cli_opt status_opts[] = {
    { "json", NULL, ROPT_JSON, "print one JSON object" },
    { NULL, NULL, 0, NULL },
};

static void
print_status_json(const char *path, const struct tm_vdisk_info *info)
{
    const char *id = info->change_tracking.most_recent_id;

    fputs("{\n  \"path\": ", stdout);
    cli_json_str(stdout, path);
    printf(",\n  \"enabled\": %s,\n  \"granularity\": %" PRIu32
           ",\n  \"most_recent_id\": ",
           info->change_tracking.enabled ? "true" : "false",
           info->change_tracking.granularity);
    if (id[0] == '\0')
        fputs("null", stdout);
    else
        cli_json_str(stdout, id);
    printf(",\n  \"newer_changes\": %s,\n  \"sealed_ids\": %" PRIu32
           ",\n  \"found\": \"%s\"\n}\n",
           info->change_tracking.newer_changes ? "true" : "false",
           info->change_tracking.sealed_ids,
           found_key(info->change_tracking.found));
}

static void
print_status_text(const char *path, const struct tm_vdisk_info *info)
{
    const char *id = info->change_tracking.most_recent_id;
    uint32_t gran = info->change_tracking.granularity;
    char human[32];

    printf("%-16s%s\n", "path:", path);
    printf("%-16s%s\n", "enabled:",
           info->change_tracking.enabled ? "yes" : "no");
    if (gran == 0) {
        printf("%-16s%s\n", "granularity:", "none (never enabled)");
    } else {
        cli_human_size(gran, human, sizeof(human));
        printf("%-16s%" PRIu32 " (%s)\n", "granularity:", gran, human);
    }
    printf("%-16s%s\n", "most recent id:", id[0] != '\0' ? id : "none");
    printf("%-16s%s\n", "newer changes:",
           info->change_tracking.newer_changes ? "yes" : "no");
    printf("%-16s%" PRIu32 "\n", "sealed ids:",
           info->change_tracking.sealed_ids);
    printf("%-16s%s\n", "found:", found_text(info->change_tracking.found));
}

/* Read-only and without a lock, so it works while a writer has the disk;
 * what it shows of a disk open elsewhere is as of the files now (a
 * writer's tracking shows as recovered). */
static int
rct_status(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vdisk_info info;
    struct cli_args a;
    struct tm_vdisk *d;
    int status;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    status = cli_vdisk_open(cmd, a.pos[0], OPEN_RO, NULL, &d);
    if (status != CLI_EXIT_OK)
        return status;
    status = get_tracking(cmd, a.pos[0], d, &info);
    tm_vdisk_close(d);
    if (status != CLI_EXIT_OK)
        return status;
    if (a.opt[ROPT_JSON] != NULL)
        print_status_json(a.pos[0], &info);
    else
        print_status_text(a.pos[0], &info);
    return flush_stdout(cmd);
}

/* ---- rct seal ----------------------------------------------------------- */

static int
rct_seal(const struct cli_cmd *cmd, int argc, char **argv)
{
    char id[TM_VDISK_RCT_ID_MAX + 1];
    struct cli_args a;
    struct tm_vdisk *d;
    const char *path;
    int status;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    path = a.pos[0];
    status = cli_vdisk_open(cmd, path, OPEN_RW, NULL, &d);
    if (status != CLI_EXIT_OK)
        return status;
    rc = tm_vdisk_seal(d, id);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot seal '%s': %s", path,
                          cli_vdisk_msg(d, rc));
        tm_vdisk_close(d);
        return status;
    }
    /* The ID is printed only once the close recorded it. */
    status = cli_vdisk_close_rw(cmd, path, d);
    if (status != CLI_EXIT_OK)
        return status;
    printf("%s\n", id);
    return flush_stdout(cmd);
}

/* ---- rct changes -------------------------------------------------------- */

static const struct cli_opt changes_opts[] = {
    { "since", "<id>", ROPT_SINCE,
      "list what changed since this ID was sealed (required)" },
    { "until", "<id>", ROPT_UNTIL,
      "only up to this later ID (a superset: see the man page)" },
    { "offset", "<offset>", ROPT_OFFSET,
      "first byte of the span to look at (default 0)" },
    { "length", "<length>", ROPT_LENGTH,
      "bytes of the span (default: to the end of the disk)" },
    { "json", NULL, ROPT_JSON, "print one JSON object" },
    { NULL, NULL, 0, NULL },
};

/* The output of 'rct changes', fed one range at a time.  Ranges that
 * touch are joined, so what is printed does not depend on where one
 * query call stopped and the next began. */
struct changes_out {
    bool json;
    bool started;               /* the JSON head is out */
    bool any;                   /* a range has been printed */
    struct tm_range pending;    /* len 0 = none */
    uint64_t changed_bytes;
};

static void
emit(struct changes_out *o, const struct tm_range *r)
{
    if (o->json) {
        printf("%s    {\"offset\": %" PRIu64 ", \"length\": %" PRIu64 "}",
               o->any ? ",\n" : "\n", r->off, r->len);
    } else {
        printf("%" PRIu64 " %" PRIu64 "\n", r->off, r->len);
    }
    o->any = true;
    o->changed_bytes += r->len;
}

static void
add_range(struct changes_out *o, const struct tm_range *r)
{
    if (r->len == 0)
        return;
    if (o->pending.len != 0 && o->pending.off + o->pending.len == r->off) {
        o->pending.len += r->len;
        return;
    }
    if (o->pending.len != 0)
        emit(o, &o->pending);
    o->pending = *r;
}

static void
json_head(const char *path, const struct cli_args *a, uint64_t off,
          uint64_t len)
{
    fputs("{\n  \"path\": ", stdout);
    cli_json_str(stdout, path);
    fputs(",\n  \"since\": ", stdout);
    cli_json_str(stdout, a->opt[ROPT_SINCE]);
    fputs(",\n  \"until\": ", stdout);
    if (a->opt[ROPT_UNTIL] != NULL)
        cli_json_str(stdout, a->opt[ROPT_UNTIL]);
    else
        fputs("null", stdout);
    printf(",\n  \"offset\": %" PRIu64 ",\n  \"length\": %" PRIu64
           ",\n  \"ranges\": [", off, len);
}

/* How many ranges each query call may return. */
static bool
ranges_per_query(const struct cli_cmd *cmd, size_t *out, int *status)
{
    const char *s = getenv(RANGES_ENV);
    const char *why = "must be at least 1";
    uint64_t v;

    *out = RANGES_PER_QUERY;
    if (s == NULL)
        return true;
    if (cli_parse_uint(s, 1u << 20, &v, &why) < 0 || v == 0) {
        *status = cli_usage(cmd, "bad %s '%s': %s (1..1048576)", RANGES_ENV,
                            s, why);
        return false;
    }
    *out = (size_t)v;
    return true;
}

/* Runs the queries over [off, off + len), each going on from where the
 * last one stopped, and prints the ranges as they come.  Nothing is
 * printed before the first query succeeds, so a bad ID leaves stdout
 * empty. */
static int
list_changes(const struct cli_cmd *cmd, const char *path, struct tm_vdisk *d,
             const struct cli_args *a, uint64_t off, uint64_t len,
             size_t cap)
{
    struct tm_range *ranges = calloc(cap, sizeof(*ranges));
    struct changes_out o = { .json = a->opt[ROPT_JSON] != NULL };
    const char *since = a->opt[ROPT_SINCE];
    const char *until = a->opt[ROPT_UNTIL];
    uint64_t pos = off, end = off + len;
    int status = CLI_EXIT_OK;

    if (ranges == NULL)
        return cli_fail(cmd, "%s", tm_strerror(-ENOMEM));
    do {
        size_t count = cap;
        uint64_t processed = 0;
        int rc;

        if (until != NULL)
            rc = tm_vdisk_query_changes_between(d, since, until, pos,
                                                end - pos, ranges, &count,
                                                &processed);
        else
            rc = tm_vdisk_query_changes(d, since, pos, end - pos, ranges,
                                        &count, &processed);
        if (rc < 0) {
            status = cli_fail(cmd, "cannot query the changes of '%s': %s",
                              path, cli_vdisk_msg(d, rc));
            break;
        }
        /* A query that neither ends the span nor moves on would loop
         * forever: refuse it rather than trust it. */
        if (processed > end - pos || (processed == 0 && pos < end) ||
            count > cap) {
            status = cli_fail(cmd, "cannot query the changes of '%s': "
                              "the query of %" PRIu64 "+%" PRIu64
                              " returned %zu ranges covering %" PRIu64
                              " bytes", path, pos, end - pos, count,
                              processed);
            break;
        }
        if (o.json && !o.started)
            json_head(path, a, off, len);
        o.started = true;
        for (size_t i = 0; i < count; i++)
            add_range(&o, &ranges[i]);
        pos += processed;
    } while (pos < end);
    free(ranges);
    if (status != CLI_EXIT_OK) {
        fflush(stdout);
        return status;
    }
    if (o.pending.len != 0)
        emit(&o, &o.pending);
    if (o.json)
        printf("%s],\n  \"changed_bytes\": %" PRIu64 "\n}\n",
               o.any ? "\n  " : "", o.changed_bytes);
    return flush_stdout(cmd);
}

static int
rct_changes(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vdisk_info info = { .kind = TM_VDISK_INFO_SIZE };
    struct cli_args a;
    struct tm_vdisk *d;
    const char *path;
    uint64_t off = 0, len = 0, size;
    size_t cap;
    int status = CLI_EXIT_OK;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    path = a.pos[0];
    if (a.opt[ROPT_SINCE] == NULL)
        return cli_usage(cmd, "missing --since");
    if (!ranges_per_query(cmd, &cap, &status))
        return status;
    if (a.opt[ROPT_OFFSET] != NULL &&
        !cli_opt_size(cmd, "offset", a.opt[ROPT_OFFSET], &off, &status))
        return status;
    if (a.opt[ROPT_LENGTH] != NULL &&
        !cli_opt_size(cmd, "length", a.opt[ROPT_LENGTH], &len, &status))
        return status;
    status = cli_vdisk_open(cmd, path, OPEN_RO, NULL, &d);
    if (status != CLI_EXIT_OK)
        return status;
    rc = tm_vdisk_get_info(d, &info);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot read the size of '%s': %s", path,
                          cli_vdisk_msg(d, rc));
        goto out_close;
    }
    size = info.size.virtual_size;
    if (a.opt[ROPT_LENGTH] == NULL)
        len = off < size ? size - off : 0;
    if (off > size || len > size - off) {
        status = cli_fail(cmd, "range %" PRIu64 "+%" PRIu64 " goes past "
                          "the end of '%s' (%" PRIu64 " bytes)", off, len,
                          path, size);
        goto out_close;
    }
    status = list_changes(cmd, path, d, &a, off, len, cap);
out_close:
    tm_vdisk_close(d);
    return status;
}

/* ---- the noun ----------------------------------------------------------- */

static const struct cli_cmd rct_cmds[] = {
    { "enable", "rct enable", "<path> [--granularity <size>]",
      "Turn change tracking on for a VHDX (new .rct and .mrt beside it).",
      "turn change tracking on", RCT_MAN, enable_opts, rct_enable },
    { "disable", "rct disable", "<path>",
      "Turn change tracking off; IDs sealed so far stop working.",
      "turn change tracking off", RCT_MAN, no_opts, rct_disable },
    { "status", "rct status", "[--json] <path>",
      "Show whether a VHDX is tracked, its latest ID and how tracking "
      "was found.",
      "show the tracking state", RCT_MAN, status_opts, rct_status },
    { "seal", "rct seal", "<path>",
      "Seal the disk's current state and print its change tracking ID.",
      "seal a reference point, print its ID", RCT_MAN, no_opts, rct_seal },
    { "changes", "rct changes",
      "<path> --since <id> [--until <id>]\n"
      "[--offset <offset>] [--length <length>] [--json]",
      "List the byte ranges that changed since a sealed ID.",
      "list ranges changed since an ID", RCT_MAN, changes_opts,
      rct_changes },
    { NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL },
};

static int
print_noun_help(void)
{
    printf("usage: %s rct <verb> [options] <args>\n"
           "Resilient change tracking of VHDX files: what changed since a "
           "sealed ID.\n", CLI_PROG);
    for (const struct cli_cmd *c = rct_cmds; c->verb != NULL; c++)
        printf("  %-12s %s\n", c->verb, c->brief);
    printf("  --help       show this help and exit\n"
           "Run '%s rct <verb> --help' for a verb's options.\n"
           "See %s.\n", CLI_PROG, RCT_MAN);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* The noun itself, for messages about it. */
static const struct cli_cmd rct_noun = {
    "", "rct", "", "", "", RCT_MAN, no_opts, NULL,
};

int
rct_main(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : NULL;

    if (verb == NULL)
        return cli_usage(&rct_noun, "missing verb");
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)
        return print_noun_help();
    for (const struct cli_cmd *c = rct_cmds; c->verb != NULL; c++) {
        if (strcmp(verb, c->verb) == 0)
            return c->run(c, argc - 1, argv + 1);
    }
    if (verb[0] == '-')
        return cli_usage(&rct_noun, "unknown option '%s'", verb);
    return cli_usage(&rct_noun, "unknown verb '%s'", verb);
}
