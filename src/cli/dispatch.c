/*
 * dispatch.c — the imgpipe command line: a sorted table of commands (after
 * git.c and ninja's kTools[]).  Only src/cli and this file print or pick
 * exit codes.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define IMGPIPE_VERSION "0.1.0"

/* Pipeline commands land in src/cli/cli_pipeline.c; until then they are weak. */
#pragma weak cli_build
#pragma weak cli_clean
#pragma weak cli_explain
#pragma weak cli_gc
#pragma weak cli_graph
#pragma weak cli_plan

typedef struct Command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} Command;

static const Command commands[] = {
    {"build", cli_build, "build all (or the named) targets of a recipe"},
    {"clean", cli_clean, "remove outputs and forget them"},
    {"explain", cli_explain, "say why a target would be rebuilt"},
    {"gc", cli_gc, "drop cache rows for nodes no recipe names"},
    {"graph", cli_graph, "print the DAG (dot or json)"},
    {"plan", cli_plan, "show what a build would do, and why"},
    {"run", cli_run, "run a qemu-img command line with imgpipe's engine"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: imgpipe COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
    }
    fprintf(out, "\n'imgpipe COMMAND --help' for a command's options; "
                 "'imgpipe run --help' for the qemu-img commands.\n");
}

int imgpipe_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("imgpipe %s\n", IMGPIPE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            if (!commands[i].fn) {
                fprintf(stderr, "imgpipe: '%s' is not available in this build\n", argv[1]);
                return 1;
            }
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "imgpipe: '%s' is not a command; see 'imgpipe --help'\n", argv[1]);
    return 1;
}
