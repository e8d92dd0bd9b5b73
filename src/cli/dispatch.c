/*
 * dispatch.c — the imgpipe command line: a sorted table of commands (after
 * git.c and ninja's kTools[]).  Only src/cli and this file print or pick
 * exit codes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block.h"
#include "cli/cli.h"

#define IMGPIPE_VERSION "0.1.0"

typedef struct Command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} Command;

static int cmd_run(int argc, char **argv);

static const Command commands[] = {
    {"build", cli_build, "build all (or the named) targets of a recipe"},
    {"clean", cli_clean, "remove outputs and forget them"},
    {"explain", cli_explain, "say why a target would be rebuilt"},
    {"gc", cli_gc, "drop cache rows for nodes no recipe names"},
    {"graph", cli_graph, "print the DAG (dot or json)"},
    {"plan", cli_plan, "show what a build would do, and why"},
    {"run", cmd_run, "run a qemu-img command line with imgpipe's engine"},
};

/* Commands that inspect or copy an image someone else may have made: the
 * files its references name are followed only inside its directory unless
 * the user says otherwise (src/blocklayer/policy.c). */
static const char *const inspecting_commands[] = {"check", "compare", "convert",
                                                  "info",  "map",     "measure"};

/*
 * imgpipe run [--trust-images] [--allow-dir DIR]... <qemu-img command line>
 * Also from the environment: IMGPIPE_TRUST_IMAGES=1, IMGPIPE_ALLOW_DIRS=a:b.
 */
static int cmd_run(int argc, char **argv)
{
    bool trust = getenv("IMGPIPE_TRUST_IMAGES") && strcmp(getenv("IMGPIPE_TRUST_IMAGES"), "0");
    const char *dirs[64];
    int n_dirs = 0;
    char *env_dirs = getenv("IMGPIPE_ALLOW_DIRS") ? strdup(getenv("IMGPIPE_ALLOW_DIRS")) : NULL;
    for (char *save = NULL, *d = env_dirs ? strtok_r(env_dirs, ":", &save) : NULL; d && n_dirs < 63;
         d = strtok_r(NULL, ":", &save)) {
        dirs[n_dirs++] = d;
    }
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--trust-images")) {
            trust = true;
        } else if (!strcmp(argv[i], "--allow-dir") && i + 1 < argc && n_dirs < 63) {
            dirs[n_dirs++] = argv[++i];
        } else {
            break;
        }
    }
    dirs[n_dirs] = NULL;
    bool inspecting = false;
    for (size_t k = 0; i < argc && k < sizeof(inspecting_commands) / sizeof(char *); k++) {
        inspecting |= !strcmp(argv[i], inspecting_commands[k]);
    }
    bdrv_set_ref_policy(inspecting && !trust, dirs);
    /* cli_run sees "run" followed by the qemu-img command line */
    argv[i - 1] = argv[0];
    int ret = cli_run(argc - (i - 1), argv + (i - 1));
    free(env_dirs);
    return ret;
}

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
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "imgpipe: '%s' is not a command; see 'imgpipe --help'\n", argv[1]);
    return 1;
}
