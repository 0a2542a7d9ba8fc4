/* SPDX-License-Identifier: MIT */
/* cli.h - what the files of the tidemark program share: command and option
 * tables (one table per command drives both getopt_long and --help), the
 * parsers for sizes and numbers, error reporting with the exit codes of
 * STYLE 11 (0 success, 1 failure, 2 usage error; one line on stderr), and
 * small output helpers (human-readable sizes, JSON strings, writes to
 * stdout). */
#ifndef TM_CLI_H
#define TM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tidemark/vdisk.h"
#include "vhdx.h"

#define CLI_PROG "tidemark"
#define CLI_MAX_OPTS 16             /* option ids are below this */

/* Exit codes. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,
    CLI_EXIT_USAGE = 2,
};

/* One row of a command's option table; a NULL name ends the table.
 * Every command also takes --help, which the table does not list. */
struct cli_opt {
    const char *name;               /* long name without the dashes */
    const char *arg;                /* placeholder ("<size>"); NULL = flag */
    int id;                         /* index into cli_args.opt */
    const char *help;               /* one line, lower case */
};

struct cli_cmd;
typedef int (*cli_run_fn)(const struct cli_cmd *cmd, int argc, char **argv);

/* A command: "vhd new" and what --help says about it. */
struct cli_cmd {
    const char *verb;               /* "new" */
    const char *name;               /* "vhd new", for messages */
    const char *synopsis;           /* after "usage: tidemark vhd new ";
                                     * '\n' continues on an indented line */
    const char *summary;            /* one sentence for --help */
    const char *brief;              /* a few words for the noun's list */
    const char *man;                /* "tidemark-vhd(1)" */
    const struct cli_opt *opts;
    cli_run_fn run;                 /* gets argv[0] = the verb */
};

/* What cli_parse found: each option's value by id ("" for a flag that was
 * given, NULL for one that was not; the last of repeated options wins),
 * then the positional arguments. */
struct cli_args {
    const char *opt[CLI_MAX_OPTS];
    char **pos;
    int npos;
};

/* Parses argv (argv[0] is the verb) against cmd->opts.  Returns true when
 * the command should run; false when it should exit with *status, after
 * --help (0, help printed to stdout) or a usage error (2, reported). */
bool cli_parse(const struct cli_cmd *cmd, int argc, char **argv,
               struct cli_args *a, int *status);
void cli_print_help(const struct cli_cmd *cmd, FILE *f);

/* Report on stderr as "tidemark: <cmd->name>: <message>" and return the
 * exit code: cli_usage adds "; see 'tidemark <name> --help'" and returns
 * 2, cli_fail returns 1.  'cmd' may be NULL for the program itself. */
int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cli_fail(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The best description of a failed call's 'rc': the handle's detail when
 * it has one, else tm_strerror(rc).  'vd' may be NULL. */
const char *cli_vhdx_msg(const struct tm_vhdx *vd, int rc);

/* The same for a vdisk handle ('d' may be NULL). */
const char *cli_vdisk_msg(const struct tm_vdisk *d, int rc);

/* Opens the disk at 'path' through lib/vdisk (tm_vdisk_open with 'flags'
 * and, when not NULL, the immediate parent at 'parent_path'); on failure
 * reports "cannot open '<path>': <why>" and returns the exit code (1).
 * Returns 0 with *out owning the handle.  cli_vdisk_close_rw flushes
 * (with detail on failure) and closes a read-write handle, recording its
 * change tracking, and returns the exit code. */
int cli_vdisk_open(const struct cli_cmd *cmd, const char *path,
                   unsigned flags, const char *parent_path,
                   struct tm_vdisk **out);
int cli_vdisk_close_rw(const struct cli_cmd *cmd, const char *path,
                       struct tm_vdisk *d);

/* Sizes: digits, then optionally K, M, G, T, P or E (binary; also spelled
 * KiB, MiB ...; any case).  Returns 0, or -1 with *why a static reason. */
int cli_parse_size(const char *s, uint64_t *out, const char **why);
/* An option's size value, with the usage error (exit 2) reported; returns
 * true when it parsed. */
bool cli_opt_size(const struct cli_cmd *cmd, const char *opt_name,
                  const char *s, uint64_t *out, int *status);
/* An integer in decimal or 0x-prefixed hexadecimal, at most 'max'. */
int cli_parse_uint(const char *s, uint64_t max, uint64_t *out,
                   const char **why);

/* "10 GiB", "1.5 MiB", "512 B" into buf (at least 32 bytes). */
void cli_human_size(uint64_t bytes, char *buf, size_t len);

/* Writes s as a JSON string (quoted, escaped; invalid UTF-8 bytes become
 * U+FFFD). */
void cli_json_str(FILE *f, const char *s);

/* Writes all of buf to fd, looping over short writes and EINTR.  Returns
 * 0 or -errno (-EPIPE when the reader went away: SIGPIPE is ignored). */
int cli_write_all(int fd, const void *buf, size_t len);

/* Whether buf holds only zero bytes. */
bool cli_is_zero(const void *buf, size_t len);

/* A page-aligned buffer of len bytes (free with free()), or NULL. */
void *cli_alloc(size_t len);

/* Whether the path names a VHDX by its extension (.vhdx or .avhdx, any
 * case). */
bool cli_is_vhdx_path(const char *path);

/* ---- the rct noun (rct.c) ---------------------------------------------- */

/* Entry point, with argv[0] = "rct". */
int rct_main(int argc, char **argv);

/* ---- the vhd noun (vhd.c, convert.c) ------------------------------------ */

/* Entry point, with argv[0] = "vhd". */
int vhd_main(int argc, char **argv);

/* Opens an existing VHDX (read-only unless 'rw'); on failure reports it
 * and returns the exit code (1).  Returns 0 with *out owning the handle. */
/* vhd.c, shared by the verbs' files.  vhd_want_args checks for exactly
 * 'want' positional arguments (usage error naming 'names' otherwise);
 * vhd_parse_path parses the options and the one <path> most verbs take;
 * vhd_close_rw flushes (with detail on failure) and closes a handle
 * opened read-write, returning the exit code. */
bool vhd_want_args(const struct cli_cmd *cmd, const struct cli_args *a,
                   int want, const char *names, int *status);
bool vhd_parse_path(const struct cli_cmd *cmd, int argc, char **argv,
                    struct cli_args *a, int *status);
int vhd_close_rw(const struct cli_cmd *cmd, const char *path,
                 struct tm_vhdx *vd);
int vhd_open_ex(const struct cli_cmd *cmd, const char *path, bool rw,
                const struct tm_vhdx_open_opts *opts, struct tm_vhdx **out);
int vhd_open(const struct cli_cmd *cmd, const char *path, bool rw,
             struct tm_vhdx **out);

/* The value of --block-size: a power of two between the VHDX limits.  On
 * failure reports the usage error and sets *status. */
bool vhd_opt_block_size(const struct cli_cmd *cmd, const char *s,
                        uint32_t *out, int *status);

/* 'vhd convert', its options and synopsis (convert.c). */
extern const struct cli_opt vhd_convert_opts[];
int vhd_convert(const struct cli_cmd *cmd, int argc, char **argv);

/* vhd_chain.c: the chain part of 'vhd info', and the chain verbs. */
void vhd_print_chain(FILE *out, struct tm_vhdx *vd, bool json);
extern const struct cli_opt vhd_discard_opts[];
extern const struct cli_opt vhd_merge_opts[];
extern const struct cli_opt vhd_set_parent_opts[];
int vhd_discard(const struct cli_cmd *cmd, int argc, char **argv);
int vhd_merge(const struct cli_cmd *cmd, int argc, char **argv);
int vhd_set_parent(const struct cli_cmd *cmd, int argc, char **argv);

/* vhd_maint.c: Resize-VHD and Optimize-VHD. */
extern const struct cli_opt vhd_resize_opts[];
extern const struct cli_opt vhd_optimize_opts[];
int vhd_resize(const struct cli_cmd *cmd, int argc, char **argv);
int vhd_optimize(const struct cli_cmd *cmd, int argc, char **argv);

#endif
