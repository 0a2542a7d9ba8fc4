/* SPDX-License-Identifier: MIT */
/* vhd_chain.c - the verbs of differencing chains: 'vhd discard', 'vhd
 * merge' (Merge-VHD), 'vhd set-parent' (Set-VHD -ParentPath) and the
 * chain 'vhd info' shows.  See tidemark-vhd(1). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define VHD_MAN "tidemark-vhd(1)"
#define MAX_DEPTH 256

enum {
    OPT_OFFSET,
    OPT_LENGTH,
    OPT_UNMAP,
    OPT_INTO,
    OPT_FORCE,
};

static const char *
kind_name(enum tm_vhdx_type t)
{
    return t == TM_VHDX_FIXED ? "fixed"
           : t == TM_VHDX_DYNAMIC ? "dynamic" : "differencing";
}

static void
json_str_or_null(FILE *out, const char *s)
{
    if (s == NULL)
        fputs("null", out);
    else
        cli_json_str(out, s);
}

/* ---- the chain in 'vhd info' -------------------------------------------- */

/* Walks the chain below 'vd' (opened alone, read-only) one link at a
 * time, so a broken link is shown where it breaks rather than failing
 * the whole command; prints the locator and one entry per file. */
void
vhd_print_chain(FILE *out, struct tm_vhdx *vd, bool json)
{
    const struct tm_vhdx_locator *loc = tm_vhdx_locator(vd);
    char g1[TM_GUID_STR_LEN + 1], g2[TM_GUID_STR_LEN + 1];
    struct tm_vhdx *h = vd;
    bool first = true;
    dev_t dev[MAX_DEPTH + 1];
    ino_t ino[MAX_DEPTH + 1];
    char loop[600];

    if (loc != NULL) {
        tm_guid_format(&loc->linkage, g1);
        tm_guid_format(&loc->linkage2, g2);
        if (json) {
            fputs("  \"parent_linkage\": ", out);
            cli_json_str(out, g1);
            fputs(",\n  \"parent_linkage2\": ", out);
            json_str_or_null(out, loc->has_linkage2 ? g2 : NULL);
            fputs(",\n  \"parent_paths\": {\"relative_path\": ", out);
            json_str_or_null(out, loc->relative_path);
            fputs(", \"volume_path\": ", out);
            json_str_or_null(out, loc->volume_path);
            fputs(", \"absolute_win32_path\": ", out);
            json_str_or_null(out, loc->absolute_win32_path);
            fputs("},\n", out);
        } else {
            fprintf(out, "%-26s%s\n", "parent linkage:", g1);
            if (loc->has_linkage2)
                fprintf(out, "%-26s%s\n", "parent linkage2:", g2);
            if (loc->relative_path != NULL)
                fprintf(out, "%-26s%s\n", "parent relative path:",
                        loc->relative_path);
            if (loc->volume_path != NULL)
                fprintf(out, "%-26s%s\n", "parent volume path:",
                        loc->volume_path);
            if (loc->absolute_win32_path != NULL)
                fprintf(out, "%-26s%s\n", "parent absolute path:",
                        loc->absolute_win32_path);
        }
    }
    fputs(json ? "  \"chain\": [\n" : "chain:\n", out);
    for (unsigned depth = 0; h != NULL && depth <= MAX_DEPTH; depth++) {
        struct tm_vhdx_info info;
        const char *link = "none";
        const char *why = NULL;
        int rc;

        struct stat st;
        bool stop = false;

        if (tm_vhdx_get_info(h, &info) < 0)
            break;
        dev[depth] = 0;
        ino[depth] = 0;
        if (tm_vhdx_path(h) != NULL && stat(tm_vhdx_path(h), &st) == 0) {
            dev[depth] = st.st_dev;
            ino[depth] = st.st_ino;
        }
        if (info.has_parent) {
            rc = depth >= MAX_DEPTH ? TM_E_CHAIN
                                    : tm_vhdx_open_parent(h, NULL);
            link = rc == 0 ? "ok" : rc == -ENOENT ? "missing"
                   : rc == TM_E_CHAIN ? "changed" : "error";
            if (rc < 0)
                why = depth >= MAX_DEPTH ? "the chain is too deep"
                                         : tm_vhdx_err(h)->msg;
        }
        /* A parent already listed: say so once and stop walking. */
        if (tm_vhdx_parent(h) != NULL &&
            stat(tm_vhdx_path(tm_vhdx_parent(h)), &st) == 0) {
            for (unsigned i = 0; i <= depth; i++) {
                if (dev[i] == st.st_dev && ino[i] == st.st_ino) {
                    snprintf(loop, sizeof(loop), "the chain loops: '%s' is "
                             "its own ancestor",
                             tm_vhdx_path(tm_vhdx_parent(h)));
                    link = "loop";
                    why = loop;
                    stop = true;
                    break;
                }
            }
        }
        tm_guid_format(&info.data_write_guid, g1);
        if (json) {
            fputs(first ? "    {\"path\": " : ",\n    {\"path\": ", out);
            json_str_or_null(out, tm_vhdx_path(h));
            fprintf(out, ", \"type\": \"%s\", \"data_write_guid\": \"%s\", "
                    "\"link\": \"%s\"", kind_name(info.type), g1, link);
            if (why != NULL) {
                fputs(", \"error\": ", out);
                cli_json_str(out, why);
            }
            fputc('}', out);
        } else {
            fprintf(out, "  %*s%s (%s): parent %s%s%s\n", (int)depth * 2, "",
                    tm_vhdx_path(h) ? tm_vhdx_path(h) : "?",
                    kind_name(info.type), link, why ? ": " : "",
                    why ? why : "");
        }
        first = false;
        h = stop ? NULL : tm_vhdx_parent(h);
    }
    fputs(json ? "\n  ]\n" : "", out);
}

/* ---- vhd discard -------------------------------------------------------- */

const struct cli_opt vhd_discard_opts[] = {
    { "offset", "<offset>", OPT_OFFSET, "first byte (required)" },
    { "length", "<length>", OPT_LENGTH, "bytes (required)" },
    { "unmap", NULL, OPT_UNMAP,
      "mark whole blocks UNMAPPED rather than ZERO" },
    { NULL, NULL, 0, NULL },
};

/* Through lib/vdisk, so a tracked disk records the range as changed. */
int
vhd_discard(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vdisk *d;
    struct cli_args a;
    uint64_t off, len;
    int status, rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    if (a.opt[OPT_OFFSET] == NULL || a.opt[OPT_LENGTH] == NULL)
        return cli_usage(cmd, "--offset and --length are required");
    if (!cli_opt_size(cmd, "offset", a.opt[OPT_OFFSET], &off, &status) ||
        !cli_opt_size(cmd, "length", a.opt[OPT_LENGTH], &len, &status))
        return status;
    status = cli_vdisk_open(cmd, a.pos[0], 0, NULL, &d);
    if (status != CLI_EXIT_OK)
        return status;
    rc = tm_vdisk_discard(d, off, len, a.opt[OPT_UNMAP] != NULL
                          ? TM_VDISK_DISCARD_UNMAP : TM_VDISK_DISCARD_ZERO);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot discard in '%s': %s", a.pos[0],
                          cli_vdisk_msg(d, rc));
        tm_vdisk_close(d);
        return status;
    }
    return cli_vdisk_close_rw(cmd, a.pos[0], d);
}

/* ---- vhd merge ---------------------------------------------------------- */

const struct cli_opt vhd_merge_opts[] = {
    { "into", "<ancestor>", OPT_INTO,
      "fold the chain down to this ancestor (default: the parent)" },
    { NULL, NULL, 0, NULL },
};

int
vhd_merge(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args a;
    struct tm_err err;
    int status, rc;

    if (!cli_parse(cmd, argc, argv, &a, &status) ||
        !vhd_want_args(cmd, &a, 1, "<child>", &status))
        return status;
    tm_err_clear(&err);
    rc = tm_vhdx_merge_path(a.pos[0], a.opt[OPT_INTO], &err);
    if (rc < 0)
        return cli_fail(cmd, "cannot merge '%s': %s", a.pos[0],
                        err.code != 0 ? err.msg : tm_strerror(rc));
    return CLI_EXIT_OK;
}

/* ---- vhd set-parent ----------------------------------------------------- */

const struct cli_opt vhd_set_parent_opts[] = {
    { "force", NULL, OPT_FORCE,
      "link to a parent with another identity (DataWriteGuid)" },
    { NULL, NULL, 0, NULL },
};

int
vhd_set_parent(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args a;
    struct tm_err err;
    int status, rc;

    if (!cli_parse(cmd, argc, argv, &a, &status) ||
        !vhd_want_args(cmd, &a, 2, "<child> or <parent>", &status))
        return status;
    tm_err_clear(&err);
    rc = tm_vhdx_set_parent_path(a.pos[0], a.pos[1],
                                 a.opt[OPT_FORCE] != NULL, &err);
    if (rc < 0)
        return cli_fail(cmd, "cannot set the parent of '%s': %s", a.pos[0],
                        err.code != 0 ? err.msg : tm_strerror(rc));
    return CLI_EXIT_OK;
}
