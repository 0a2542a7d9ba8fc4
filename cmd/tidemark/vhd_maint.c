/* SPDX-License-Identifier: MIT */
/* vhd_maint.c - 'tidemark vhd resize' and 'tidemark vhd optimize', the
 * maintenance verbs (Hyper-V's Resize-VHD and Optimize-VHD) over
 * lib/vdisk's tm_vdisk_resize (so change tracking sees the resize) and
 * lib/vhdx's tm_vhdx_optimize.  See tidemark-vhd(1). */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

/* Option ids of these verbs. */
enum {
    MOPT_SIZE,
    MOPT_JSON,
    MOPT_PARENT,
};

const struct cli_opt vhd_resize_opts[] = {
    { "size", "<size>", MOPT_SIZE,
      "the new virtual size, a multiple of the logical sector" },
    { "parent", "<path>", MOPT_PARENT,
      "the parent is here, not where the locator says" },
    { NULL, NULL, 0, NULL },
};

const struct cli_opt vhd_optimize_opts[] = {
    { "json", NULL, MOPT_JSON, "print the result as one JSON object" },
    { NULL, NULL, 0, NULL },
};

static int
flush_stdout(void)
{
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- vhd resize ------------------------------------------------------- */

/* Resize-VHD: grows any kind of disk (new space reads as zeros) or
 * shrinks one down to the end of its data, never below.  A differencing
 * disk opens with its chain: a shrink reads through it to find where the
 * data ends, and must not go below the parent's size. */
int
vhd_resize(const struct cli_cmd *cmd, int argc, char **argv)
{
    struct tm_vdisk_info info = { .kind = TM_VDISK_INFO_SIZE };
    struct cli_args a;
    struct tm_vdisk *d;
    const char *path;
    char h_old[32], h_new[32];
    uint64_t size;
    int status = CLI_EXIT_OK;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    path = a.pos[0];
    if (a.opt[MOPT_SIZE] == NULL)
        return cli_usage(cmd, "missing --size");
    if (!cli_opt_size(cmd, "size", a.opt[MOPT_SIZE], &size, &status))
        return status;
    if (size == 0 || size > TM_VHDX_MAX_VIRTUAL_SIZE)
        return cli_usage(cmd, "bad --size '%s': must be from one sector to "
                         "64T", a.opt[MOPT_SIZE]);
    status = cli_vdisk_open(cmd, path, 0, a.opt[MOPT_PARENT], &d);
    if (status != CLI_EXIT_OK)
        return status;
    rc = tm_vdisk_get_info(d, &info);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot read '%s': %s", path,
                          cli_vdisk_msg(d, rc));
        tm_vdisk_close(d);
        return status;
    }
    if (size % info.size.sector_size != 0) {
        tm_vdisk_close(d);
        return cli_usage(cmd, "bad --size '%s': not a multiple of the "
                         "logical sector (%" PRIu32 ")", a.opt[MOPT_SIZE],
                         info.size.sector_size);
    }
    /* Through lib/vdisk: a tracked disk restarts its tracking under a new
     * lineage (older IDs then fail "reset: resized"). */
    rc = tm_vdisk_resize(d, size);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot resize '%s': %s", path,
                          cli_vdisk_msg(d, rc));
        tm_vdisk_close(d);
        return status;
    }
    status = cli_vdisk_close_rw(cmd, path, d);
    if (status != CLI_EXIT_OK)
        return status;
    cli_human_size(info.size.virtual_size, h_old, sizeof(h_old));
    cli_human_size(size, h_new, sizeof(h_new));
    printf("resized %s: %" PRIu64 " -> %" PRIu64 " bytes (%s -> %s)\n",
           path, info.size.virtual_size, size, h_old, h_new);
    return flush_stdout();
}

/* ---- vhd optimize ----------------------------------------------------- */

/* Optimize-VHD: a dynamic or differencing disk gives back the space of
 * blocks that hold only zeros, and its blocks move down so the file can
 * end sooner.  A fixed disk is left as it is.  It reads only the file
 * itself, so a differencing disk opens without its parents (which then
 * need not be where its locator says). */
int
vhd_optimize(const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct tm_vhdx_open_opts alone = { .no_parent = true };
    struct tm_vhdx_optimize_stats st;
    struct cli_args a;
    struct tm_vhdx *vd;
    const char *path;
    char h_before[32], h_after[32];
    int status = CLI_EXIT_OK;
    int rc;

    if (!vhd_parse_path(cmd, argc, argv, &a, &status))
        return status;
    path = a.pos[0];
    status = vhd_open_ex(cmd, path, true, &alone, &vd);
    if (status != CLI_EXIT_OK)
        return status;
    rc = tm_vhdx_optimize(vd, &st);
    if (rc < 0) {
        status = cli_fail(cmd, "cannot optimize '%s': %s", path,
                          cli_vhdx_msg(vd, rc));
        tm_vhdx_close(vd);
        return status;
    }
    status = vhd_close_rw(cmd, path, vd);
    if (status != CLI_EXIT_OK)
        return status;
    if (a.opt[MOPT_JSON] != NULL) {
        printf("{\"path\": ");
        cli_json_str(stdout, path);
        printf(", \"blocks_zeroed\": %" PRIu64 ", \"blocks_moved\": %" PRIu64
               ", \"size_before\": %" PRIu64 ", \"size_after\": %" PRIu64
               "}\n", st.blocks_zeroed, st.blocks_moved, st.size_before,
               st.size_after);
        return flush_stdout();
    }
    cli_human_size(st.size_before, h_before, sizeof(h_before));
    cli_human_size(st.size_after, h_after, sizeof(h_after));
    printf("optimized %s: %" PRIu64 " zero blocks released, %" PRIu64
           " blocks moved, file %" PRIu64 " -> %" PRIu64 " bytes (%s -> %s)\n",
           path, st.blocks_zeroed, st.blocks_moved, st.size_before,
           st.size_after, h_before, h_after);
    return flush_stdout();
}
