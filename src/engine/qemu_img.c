/*
 * qemu_img.c — dispatch of `imgpipe run <command> ...` to the command front
 * ends (one file per command: qimg_<cmd>.c), plus --help and --version.
 */
#include "engine/qemu_img.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"
#include "engine/engine.h"

/* Commands are added here as their front ends land. */
const QimgCommand qimg_commands[] = {
    {NULL, NULL},
};

void qimg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qemu-img: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void print_version(void)
{
    printf("qemu-img version 7.2.0 (imgpipe)\n"
           "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n");
}

static void print_help(void)
{
    printf("usage: imgpipe run [standard options] command [command options]\n"
           "QEMU disk image utility, reimplemented by imgpipe\n\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n\n"
           "Command syntax: as qemu-img; 'imgpipe run COMMAND --help' for a command.\n\n"
           "Commands:\n");
    for (const QimgCommand *c = qimg_commands; c->name; c++) {
        printf("  %s\n", c->name);
    }
}

int cli_run(int argc, char **argv)
{
    engine_init();
    if (argc < 2) {
        qimg_error("Not enough arguments\nTry 'imgpipe run --help' for more information");
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        print_help();
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        print_version();
        return 0;
    }
    for (const QimgCommand *c = qimg_commands; c->name; c++) {
        if (!strcmp(c->name, cmd)) {
            return c->fn(argc - 1, argv + 1);
        }
    }
    qimg_error("Command not found: %s", cmd);
    return 1;
}
