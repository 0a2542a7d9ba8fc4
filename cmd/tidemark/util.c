/* SPDX-License-Identifier: MIT */
/* util.c - option tables to getopt_long and --help, error reporting with
 * the program's exit codes, size parsing and small output helpers. */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

#define CLI_HELP_ID 'h'
#define CLI_OPT_BASE 256            /* getopt values above any char */

/* ---- option tables ------------------------------------------------------ */

static size_t
count_opts(const struct cli_opt *opts)
{
    size_t n = 0;

    while (opts != NULL && opts[n].name != NULL)
        n++;
    return n;
}

/* The synopsis, continuing lines under the first argument. */
static void
print_usage_line(const struct cli_cmd *cmd, FILE *f)
{
    int indent = fprintf(f, "usage: %s %s ", CLI_PROG, cmd->name);
    const char *s = cmd->synopsis;

    while (*s != '\0') {
        const char *nl = strchr(s, '\n');
        size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);

        fwrite(s, 1, n, f);
        fputc('\n', f);
        s += n;
        if (*s == '\n') {
            s++;
            fprintf(f, "%*s", indent, "");
        }
    }
}

static size_t
opt_width(const struct cli_opt *o)
{
    return 2 + strlen(o->name) + (o->arg != NULL ? 1 + strlen(o->arg) : 0);
}

static void
print_opt(FILE *f, const char *name, const char *arg, const char *help,
          int width)
{
    int n = fprintf(f, "  --%s%s%s", name, arg != NULL ? " " : "",
                    arg != NULL ? arg : "");

    fprintf(f, "%*s%s\n", width + 5 - n, "", help);
}

void
cli_print_help(const struct cli_cmd *cmd, FILE *f)
{
    size_t n = count_opts(cmd->opts);
    size_t width = strlen("--help");

    for (size_t i = 0; i < n; i++) {
        if (opt_width(&cmd->opts[i]) > width)
            width = opt_width(&cmd->opts[i]);
    }
    print_usage_line(cmd, f);
    fprintf(f, "%s\n", cmd->summary);
    for (size_t i = 0; i < n; i++) {
        const struct cli_opt *o = &cmd->opts[i];

        print_opt(f, o->name, o->arg, o->help, (int)width);
    }
    print_opt(f, "help", NULL, "show this help and exit", (int)width);
    fprintf(f, "See %s.\n", cmd->man);
}

/* Reports what getopt_long refused: 'arg' is the element it stopped at. */
static int
bad_option(const struct cli_cmd *cmd, const char *arg)
{
    const char *eq = strchr(arg, '=');

    /* getopt_long sets optopt to a long flag's value when it was given
     * one (--json=yes), to an unknown short option's letter, and to 0 for
     * unknown or ambiguous long options. */
    if (optopt != 0 && strncmp(arg, "--", 2) == 0 && eq != NULL)
        return cli_usage(cmd, "option '%.*s' takes no value",
                         (int)(eq - arg), arg);
    if (optopt != 0 && optopt < CLI_OPT_BASE)
        return cli_usage(cmd, "unknown option '-%c'", optopt);
    return cli_usage(cmd, "unknown or ambiguous option '%s'", arg);
}

bool
cli_parse(const struct cli_cmd *cmd, int argc, char **argv,
          struct cli_args *a, int *status)
{
    struct option longopts[CLI_MAX_OPTS + 2];
    size_t n = count_opts(cmd->opts);
    size_t k = 0;

    memset(a, 0, sizeof(*a));
    assert(n <= CLI_MAX_OPTS);
    for (size_t i = 0; i < n; i++) {
        const struct cli_opt *o = &cmd->opts[i];

        assert(o->id >= 0 && o->id < CLI_MAX_OPTS);
        longopts[k++] = (struct option){
            o->name, o->arg != NULL ? required_argument : no_argument,
            NULL, CLI_OPT_BASE + o->id };
    }
    longopts[k++] = (struct option){ "help", no_argument, NULL,
                                     CLI_HELP_ID };
    longopts[k] = (struct option){ NULL, 0, NULL, 0 };

    opterr = 0;
    optind = 0;                     /* GNU: start afresh */
    for (;;) {
        int c = getopt_long(argc, argv, ":h", longopts, NULL);

        if (c == -1)
            break;
        if (c == CLI_HELP_ID) {
            cli_print_help(cmd, stdout);
            *status = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
            return false;
        }
        if (c == ':') {
            *status = cli_usage(cmd, "option '%s' needs a value",
                                argv[optind - 1]);
            return false;
        }
        if (c == '?' || c < CLI_OPT_BASE) {
            *status = bad_option(cmd, argv[optind - 1]);
            return false;
        }
        a->opt[c - CLI_OPT_BASE] = optarg != NULL ? optarg : "";
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    return true;
}

/* ---- errors ------------------------------------------------------------- */

static void
vreport(const struct cli_cmd *cmd, const char *fmt, va_list ap,
        const char *tail)
{
    fprintf(stderr, "%s: ", CLI_PROG);
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    if (tail != NULL)
        fputs(tail, stderr);
    fputc('\n', stderr);
}

int
cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
{
    char tail[128];
    va_list ap;

    if (cmd != NULL)
        snprintf(tail, sizeof(tail), "; see '%s %s --help'", CLI_PROG,
                 cmd->name);
    else
        snprintf(tail, sizeof(tail), "; see '%s --help'", CLI_PROG);
    va_start(ap, fmt);
    vreport(cmd, fmt, ap, tail);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int
cli_fail(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(cmd, fmt, ap, NULL);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

const char *
cli_vhdx_msg(const struct tm_vhdx *vd, int rc)
{
    const struct tm_err *e = vd != NULL ? tm_vhdx_err(vd) : NULL;

    if (e != NULL && e->code != 0 && e->msg[0] != '\0')
        return e->msg;
    return tm_strerror(rc);
}

const char *
cli_vdisk_msg(const struct tm_vdisk *d, int rc)
{
    const struct tm_err *e = d != NULL ? tm_vdisk_err(d) : NULL;

    if (e != NULL && e->code != 0 && e->msg[0] != '\0')
        return e->msg;
    return tm_strerror(rc);
}

int
cli_vdisk_open(const struct cli_cmd *cmd, const char *path, unsigned flags,
               const char *parent_path, struct tm_vdisk **out)
{
    struct tm_vdisk_open_params p = { .parent_path = parent_path };
    struct tm_err err;
    int rc;

    tm_err_clear(&err);
    rc = tm_vdisk_open(path, flags, &p, out, &err);
    if (rc < 0)
        return cli_fail(cmd, "cannot open '%s': %s", path,
                        err.code != 0 && err.msg[0] != '\0'
                            ? err.msg : tm_strerror(rc));
    return CLI_EXIT_OK;
}

int
cli_vdisk_close_rw(const struct cli_cmd *cmd, const char *path,
                   struct tm_vdisk *d)
{
    int rc = tm_vdisk_flush(d);

    if (rc < 0) {
        int status = cli_fail(cmd, "cannot flush '%s': %s", path,
                              cli_vdisk_msg(d, rc));

        tm_vdisk_close(d);
        return status;
    }
    rc = tm_vdisk_close(d);
    if (rc < 0)
        return cli_fail(cmd, "cannot close '%s': %s", path,
                        tm_strerror(rc));
    return CLI_EXIT_OK;
}

/* ---- numbers ------------------------------------------------------------ */

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int
cli_parse_size(const char *s, uint64_t *out, const char **why)
{
    static const char units[] = "KMGTPE";
    const char *p = s;
    uint64_t v = 0;
    unsigned shift = 0;

    *out = 0;
    if (!is_digit(*p)) {
        *why = *p == '-' ? "must not be negative"
                         : "expected a number with an optional K, M, G, T, "
                           "P or E suffix";
        return -1;
    }
    while (is_digit(*p)) {
        unsigned d = (unsigned)(*p - '0');

        if (v > (UINT64_MAX - d) / 10) {
            *why = "too large";
            return -1;
        }
        v = v * 10 + d;
        p++;
    }
    if (*p != '\0') {
        const char *u = strchr(units, *p >= 'a' && *p <= 'z' ? *p - 32 : *p);

        if (u == NULL || *u == '\0') {
            *why = "unknown suffix (use K, M, G, T, P or E, or KiB, MiB ...)";
            return -1;
        }
        shift = 10 * (unsigned)(u - units + 1);
        p++;
        if (*p != '\0' && strcasecmp(p, "iB") != 0) {
            *why = "unknown suffix (use K, M, G, T, P or E, or KiB, MiB ...)";
            return -1;
        }
    }
    if (shift != 0 && v > UINT64_MAX >> shift) {
        *why = "too large";
        return -1;
    }
    *out = v << shift;
    return 0;
}

bool
cli_opt_size(const struct cli_cmd *cmd, const char *opt_name, const char *s,
             uint64_t *out, int *status)
{
    const char *why;

    if (cli_parse_size(s, out, &why) == 0)
        return true;
    *status = cli_usage(cmd, "bad --%s '%s': %s", opt_name, s, why);
    return false;
}

int
cli_parse_uint(const char *s, uint64_t max, uint64_t *out, const char **why)
{
    unsigned base = 10;
    const char *p = s;
    uint64_t v = 0;

    *out = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    if (*p == '\0') {
        *why = "expected a number";
        return -1;
    }
    for (; *p != '\0'; p++) {
        unsigned d;

        if (is_digit(*p))
            d = (unsigned)(*p - '0');
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a' + 10);
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = (unsigned)(*p - 'A' + 10);
        else {
            *why = *p == '-' ? "must not be negative" : "expected a number";
            return -1;
        }
        if (d > max || v > (max - d) / base) {
            *why = "too large";
            return -1;
        }
        v = v * base + d;
    }
    *out = v;
    return 0;
}

void
cli_human_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {
        "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
    };
    unsigned u = 0;

    while (u + 1 < sizeof(units) / sizeof(units[0]) &&
           bytes >= 1ull << (10 * (u + 1)))
        u++;
    if (u == 0 || bytes % (1ull << (10 * u)) == 0)
        snprintf(buf, len, "%llu %s",
                 (unsigned long long)(bytes >> (10 * u)), units[u]);
    else
        snprintf(buf, len, "%.1f %s",
                 (double)bytes / (double)(1ull << (10 * u)), units[u]);
}

/* ---- output ------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF), or 0. */
static size_t
utf8_seq_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xe0 && p[0] <= 0xef) {
        unsigned lo = p[0] == 0xe0 ? 0xa0 : 0x80;
        unsigned hi = p[0] == 0xed ? 0x9f : 0xbf;

        if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
            return 0;
        return 3;
    }
    if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        unsigned lo = p[0] == 0xf0 ? 0x90 : 0x80;
        unsigned hi = p[0] == 0xf4 ? 0x8f : 0xbf;

        if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 ||
            (p[3] & 0xc0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

void
cli_json_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    fputc('"', f);
    while (*p != '\0') {
        size_t n = utf8_seq_len(p);
        unsigned char c = *p;

        if (n == 0) {
            fputs("\\ufffd", f);
            p++;
            continue;
        }
        if (n > 1) {
            fwrite(p, 1, n, f);
            p += n;
            continue;
        }
        p++;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int
cli_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

bool
cli_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t first;

    if (len < sizeof(first)) {
        for (size_t i = 0; i < len; i++) {
            if (p[i] != 0)
                return false;
        }
        return true;
    }
    memcpy(&first, p, sizeof(first));
    if (first != 0)
        return false;
    /* Each byte equals the one 8 before it, and the first 8 are zero. */
    return memcmp(p, p + sizeof(first), len - sizeof(first)) == 0;
}

void *
cli_alloc(size_t len)
{
    void *p = NULL;

    if (posix_memalign(&p, 4096, len) != 0)
        return NULL;
    return p;
}

bool
cli_is_vhdx_path(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');

    if (dot == NULL || (slash != NULL && slash > dot))
        return false;
    return strcasecmp(dot, ".vhdx") == 0 || strcasecmp(dot, ".avhdx") == 0;
}
