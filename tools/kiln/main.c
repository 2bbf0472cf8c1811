/* main.c — the `kiln` command line: dispatches subcommands. Training, evaluation and the
 * rest arrive with their issues; for now: version and info about the build. */
#include <stdio.h>
#include <string.h>

#include "kiln/kiln.h"

static int usage(FILE *f)
{
    fprintf(f,
            "usage: kiln <command> [options]\n"
            "commands:\n"
            "  version    print the version\n"
            "  help       this text\n");
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("kiln %s\n", KILN_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return usage(stdout);
    fprintf(stderr, "kiln: unknown command '%s' (try 'kiln help')\n", argv[1]);
    return 2;
}
