/* SPDX-License-Identifier: MIT */
/* main.c - the tidemark program: 'tidemark <noun> <verb> [options] <args>'.
 * This file knows the nouns and the program-wide options; each noun's file
 * (vhd.c, rct.c) dispatches its verbs.  See tidemark(1). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tidemark/version.h"

struct noun {
    const char *name;
    const char *brief;
    int (*main)(int argc, char **argv);
};

static const struct noun nouns[] = {
    { "vhd", "VHDX files: new, info, check, dump, convert, cat, read, write",
      vhd_main },
    { "rct", "change tracking: enable, disable, status, seal, changes",
      rct_main },
};

#define N_NOUNS (sizeof(nouns) / sizeof(nouns[0]))

static int
print_help(void)
{
    printf("usage: %s <noun> <verb> [options] <args>\n"
           "       %s (--help | --version)\n"
           "Work with Hyper-V virtual disks and backups on Linux.\n",
           CLI_PROG, CLI_PROG);
    for (size_t i = 0; i < N_NOUNS; i++)
        printf("  %-12s %s\n", nouns[i].name, nouns[i].brief);
    printf("  --help       show this help and exit\n"
           "  --version    show the version and exit\n"
           "Run '%s <noun> --help' for a noun's verbs.\n"
           "See %s(1).\n",
           CLI_PROG, CLI_PROG);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int
main(int argc, char **argv)
{
    const char *word = argc > 1 ? argv[1] : NULL;

    /* Writes to a closed pipe fail with EPIPE, which commands report,
     * rather than killing the program halfway through a file update. */
    signal(SIGPIPE, SIG_IGN);

    if (word == NULL)
        return cli_usage(NULL, "missing command");
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0)
        return print_help();
    if (strcmp(word, "--version") == 0) {
        printf("%s %s\n", CLI_PROG, TM_VERSION_STRING);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    if (word[0] == '-')
        return cli_usage(NULL, "unknown option '%s'", word);
    for (size_t i = 0; i < N_NOUNS; i++) {
        if (strcmp(word, nouns[i].name) == 0)
            return nouns[i].main(argc - 1, argv + 1);
    }
    return cli_usage(NULL, "unknown command '%s'", word);
}
