/*
 * qemu_img.c — dispatch of `imgpipe run <command> ...` to the command front
 * ends, --help and --version, and the helpers every front end shares
 * (option errors, cvtnum, --output, -o accumulation).
 *
 * Messages: the text is qemu-img 7.2's, word for word, because scripts match
 * it; the program prefix is "imgpipe: " rather than "qemu-img: " because the
 * program the user ran is imgpipe (and our own warnings already say
 * "imgpipe: warning:").  Tests compare the text after the prefix.  That
 * prefix is the only difference: the usage hint stays qemu-img's own
 * "Try 'qemu-img --help' for more information" (the help it points to is
 * qemu-img's, and scripts that compare stderr after mapping the prefix
 * would otherwise see a second difference).
 *
 * The help output keeps qemu-img 7.2's layout (scripts grep "Supported
 * formats:" and the command syntax lines) but lists only the commands and
 * formats this build really has, so feature probes do not lie.
 */
#include "engine/qemu_img.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/opts.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/secrets.h"

/* Sorted by name.  Other engineers add their rows here. */
const QimgCommand qimg_commands[] = {
    {"amend", qimg_amend},
    {"bench", qimg_bench},
    {"bitmap", qimg_bitmap},
    {"check", qimg_check},
    {"commit", qimg_commit},
    {"compare", qimg_compare},
    {"convert", qimg_convert},
    {"create", qimg_create},
    {"dd", qimg_dd},
    {"info", qimg_info},
    {"map", qimg_map},
    {"measure", qimg_measure},
    {"rebase", qimg_rebase},
    {"resize", qimg_resize},
    {"snapshot", qimg_snapshot},
    {NULL, NULL},
};

#define PROG "imgpipe"

/* qemu-img 7.2's syntax line of every command, in its help order. */
static const struct {
    const char *name;
    const char *syntax;
} syntax_table[] = {
    {"amend", "amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] "
              "-o options filename"},
    {"bench", "bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] "
              "[-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] "
              "[-S step_size] [-t cache] [-w] [-U] filename"},
    {"bitmap", "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... "
               "[-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] "
               "[--image-opts | -f fmt] filename bitmap"},
    {"check", "check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] "
              "[-r [leaks | all]] [-T src_cache] [-U] filename"},
    {"commit", "commit [--object objectdef] [--image-opts] [-q] [-f fmt] [-t cache] [-b base] "
               "[-r rate_limit] [-d] [-p] filename"},
    {"compare", "compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] "
                "[-p] [-q] [-s] [-U] filename1 filename2"},
    {"convert",
     "convert [--object objectdef] [--image-opts] [--target-image-opts] [--target-is-zero] "
     "[--bitmaps] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] "
     "[-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] "
     "[-S sparse_size] [-r rate_limit] [-m num_coroutines] [-W] [--salvage] filename "
     "[filename2 [...]] output_filename"},
    {"create", "create [--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] "
               "[-u] [-o options] filename [size]"},
    {"dd", "dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] "
           "[skip=blocks] if=input of=output"},
    {"info", "info [--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] "
             "[--backing-chain] [-U] filename"},
    {"map", "map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] "
            "[--max-length=len] [--output=ofmt] [-U] filename"},
    {"measure", "measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | "
                "[--object objectdef] [--image-opts] [-f fmt] [-l snapshot_param] filename]"},
    {"snapshot", "snapshot [--object objectdef] [--image-opts] [-U] [-q] "
                 "[-l | -a snapshot | -c snapshot | -d snapshot] filename"},
    {"rebase", "rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-t cache] "
               "[-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] filename"},
    {"resize", "resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] "
               "[-q] [--shrink] filename [+ | -]size"},
};

static const char help_params[] =
    "Command parameters:\n"
    "  'filename' is a disk image filename\n"
    "  'objectdef' is a QEMU user creatable object definition. See the qemu(1)\n"
    "    manual page for a description of the object properties. The most common\n"
    "    object type is a 'secret', which is used to supply passwords and/or\n"
    "    encryption keys.\n"
    "  'fmt' is the disk image format. It is guessed automatically in most cases\n"
    "  'cache' is the cache mode used to write the output disk image, the valid\n"
    "    options are: 'none', 'writeback' (default, except for convert), 'writethrough',\n"
    "    'directsync' and 'unsafe' (default for convert)\n"
    "  'src_cache' is the cache mode used to read input disk images, the valid\n"
    "    options are the same as for the 'cache' option\n"
    "  'size' is the disk image size in bytes. Optional suffixes\n"
    "    'k' or 'K' (kilobyte, 1024), 'M' (megabyte, 1024k), 'G' (gigabyte, 1024M),\n"
    "    'T' (terabyte, 1024G), 'P' (petabyte, 1024T) and 'E' (exabyte, 1024P)  are\n"
    "    supported. 'b' is ignored.\n"
    "  'output_filename' is the destination disk image filename\n"
    "  'output_fmt' is the destination format\n"
    "  'options' is a comma separated list of format specific options in a\n"
    "    name=value format. Use -o help for an overview of the options supported by\n"
    "    the used format\n"
    "  'snapshot_param' is param used for internal snapshot, format\n"
    "    is 'snapshot.id=[ID],snapshot.name=[NAME]', or\n"
    "    '[ID_OR_NAME]'\n"
    "  '-c' indicates that target image must be compressed (qcow format only)\n"
    "  '-u' allows unsafe backing chains. For rebasing, it is assumed that old and\n"
    "       new backing file match exactly. The image doesn't need a working\n"
    "       backing file before rebasing in this case (useful for renaming the\n"
    "       backing file). For image creation, allow creating without attempting\n"
    "       to open the backing file.\n"
    "  '-h' with or without a command shows this help and lists the supported formats\n"
    "  '-p' show progress of command (only certain commands)\n"
    "  '-q' use Quiet mode - do not print any output (except errors)\n"
    "  '-S' indicates the consecutive number of bytes (defaults to 4k) that must\n"
    "       contain only zeros for qemu-img to create a sparse image during\n"
    "       conversion. If the number of bytes is 0, the source will not be scanned for\n"
    "       unallocated or zero sectors, and the destination image will always be\n"
    "       fully allocated\n"
    "  '--output' takes the format in which the output must be done (human or json)\n"
    "  '-n' skips the target volume creation (useful if the volume is created\n"
    "       prior to running qemu-img)\n"
    "\n"
    "Parameters to bitmap subcommand:\n"
    "  'bitmap' is the name of the bitmap to manipulate, through one or more\n"
    "       actions from '--add', '--remove', '--clear', '--enable', '--disable',\n"
    "       or '--merge source'\n"
    "  '-g granularity' sets the granularity for '--add' actions\n"
    "  '-b source' and '-F src_fmt' tell '--merge' actions to find the source\n"
    "       bitmaps from an alternative file\n"
    "\n"
    "Parameters to check subcommand:\n"
    "  '-r' tries to repair any inconsistencies that are found during the check.\n"
    "       '-r leaks' repairs only cluster leaks, whereas '-r all' fixes all\n"
    "       kinds of errors, with a higher risk of choosing the wrong fix or\n"
    "       hiding corruption that has already occurred.\n"
    "\n"
    "Parameters to convert subcommand:\n"
    "  '--bitmaps' copies all top-level persistent bitmaps to destination\n"
    "  '-m' specifies how many coroutines work in parallel during the convert\n"
    "       process (defaults to 8)\n"
    "  '-W' allow to write to the target out of order rather than sequential\n"
    "\n"
    "Parameters to snapshot subcommand:\n"
    "  'snapshot' is the name of the snapshot to create, apply or delete\n"
    "  '-a' applies a snapshot (revert disk to saved state)\n"
    "  '-c' creates a snapshot\n"
    "  '-d' deletes a snapshot\n"
    "  '-l' lists all snapshots in the given image\n"
    "\n"
    "Parameters to compare subcommand:\n"
    "  '-f' first image format\n"
    "  '-F' second image format\n"
    "  '-s' run in Strict mode - fail on different image size or sector allocation\n"
    "\n"
    "Parameters to dd subcommand:\n"
    "  'bs=BYTES' read and write up to BYTES bytes at a time (default: 512)\n"
    "  'count=N' copy only N input blocks\n"
    "  'if=FILE' read from FILE\n"
    "  'of=FILE' write to FILE\n"
    "  'skip=N' skip N bs-sized blocks at the start of input\n";

static const QimgCommand *find_command(const char *name)
{
    for (const QimgCommand *c = qimg_commands; c->name; c++) {
        if (!strcmp(c->name, name)) {
            return c;
        }
    }
    return NULL;
}

static void print_version(void)
{
    printf("qemu-img version 7.2.0 (imgpipe)\n"
           "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void collect_format(const BlockDriver *drv, void *opaque)
{
    StrBuf *names = opaque;
    sb_addn(names, (const char *)&drv->format_name, sizeof(drv->format_name));
}

static void print_formats(void)
{
    StrBuf names = STRBUF_INIT; /* an array of const char * */
    bdrv_iterate_format(collect_format, &names);
    size_t n = names.len / sizeof(const char *);
    const char **v = (const char **)names.buf;
    if (n) {
        qsort(v, n, sizeof(*v), cmp_str);
    }
    printf("Supported formats:");
    for (size_t i = 0; i < n; i++) {
        printf(" %s", v[i]);
    }
    printf("\n");
    sb_release(&names);
}

void qimg_help(void)
{
    engine_init();
    print_version();
    printf("usage: " PROG " run [standard options] command [command options]\n"
           "QEMU disk image utility\n"
           "\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n"
           "\n"
           "Command syntax:\n");
    for (size_t i = 0; i < ARRAY_SIZE(syntax_table); i++) {
        if (find_command(syntax_table[i].name)) {
            printf("  %s\n", syntax_table[i].syntax);
        }
    }
    printf("\n%s\n", help_params);
    print_formats();
    printf("\nimgpipe runs these commands with its own block layer; it never executes "
           "qemu-img.\n");
}

static void vreport(bool try_help, const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (try_help) {
        fputs("Try 'qemu-img --help' for more information\n", stderr);
    }
}

void qimg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(false, fmt, ap);
    va_end(ap);
}

int qimg_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(true, fmt, ap);
    va_end(ap);
    return 1;
}

/*
 * Where qemu-img prints two error_report() lines for one failure, the engine
 * returns one Error whose second line is one of these; that line gets the
 * program prefix too.  Other continuation lines are hints, printed bare.
 */
static const char *const second_reports[] = {
    "Invalid options for file format ",
    "Failed in parsing snapshot param ",
};

/* Hints that qemu prints verbatim, without a final newline. */
static const char *const unterminated_hints[] = {
    "Detected format of ",
};

static bool is_unterminated_hint(const char *line)
{
    for (size_t i = 0; i < ARRAY_SIZE(unterminated_hints); i++) {
        if (!strncmp(line, unterminated_hints[i], strlen(unterminated_hints[i]))) {
            return true;
        }
    }
    return false;
}

static bool is_second_report(const char *line)
{
    for (size_t i = 0; i < ARRAY_SIZE(second_reports); i++) {
        if (!strncmp(line, second_reports[i], strlen(second_reports[i]))) {
            return true;
        }
    }
    return false;
}

void qimg_report_err_prefix(Error *err, const char *prefix)
{
    if (!err) {
        return;
    }
    fflush(stdout);
    fprintf(stderr, PROG ": %s", prefix ? prefix : "");
    for (const char *p = error_get_pretty(err); *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        fwrite(p, 1, len, stderr);
        if (nl || p == error_get_pretty(err) || !is_unterminated_hint(p)) {
            fputc('\n', stderr);
        }
        p += len + (nl ? 1 : 0);
        if (*p && is_second_report(p)) {
            fputs(PROG ": ", stderr);
        }
    }
    error_free(err);
}

void qimg_report_err(Error *err)
{
    qimg_report_err_prefix(err, NULL);
}

int qimg_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    char *opts = xasprintf(":%s", shortopts);
    int c = getopt_long(argc, argv, opts, longopts, NULL);
    free(opts);
    switch (c) {
    case ':':
        qimg_usage("missing argument for option '%s'", argv[optind - 1]);
        return QIMG_GETOPT_ERROR;
    case '?': qimg_usage("unrecognized option '%s'", argv[optind - 1]); return QIMG_GETOPT_ERROR;
    case 'h': qimg_help(); return QIMG_GETOPT_HELP;
    default: return c;
    }
}

int qimg_cvtnum_full(const char *name, const char *value, bool is_size, int64_t min, int64_t max,
                     int64_t *out)
{
    int ret;
    uint64_t u = 0;
    int64_t s = 0;
    if (is_size) {
        ret = parse_size(value, NULL, &u);
        s = (int64_t)u;
        if (ret == 0 && u > INT64_MAX) {
            ret = -ERANGE;
        }
    } else {
        ret = parse_int64(value, &s);
    }
    if (ret < 0 && ret != -ERANGE) {
        qimg_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", name);
        qimg_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return -1;
    }
    if (ret == -ERANGE || s < min || s > max) {
        qimg_error("Invalid %s specified. Must be between %lld and %lld.", name, (long long)min,
                   (long long)max);
        return -1;
    }
    *out = s;
    return 0;
}

int qimg_cvtnum(const char *name, const char *value, bool is_size, int64_t *out)
{
    return qimg_cvtnum_full(name, value, is_size, 0, INT64_MAX, out);
}

int qimg_parse_output(const char *arg, bool *json)
{
    if (!strcmp(arg, "json")) {
        *json = true;
    } else if (!strcmp(arg, "human")) {
        *json = false;
    } else {
        qimg_error("--output must be used with human or json as argument.");
        return -1;
    }
    return 0;
}

/* qemu's rule: not empty, not starting with ',', and an even number of
 * trailing commas (an odd one would escape the terminator). */
static bool valid_option_list(const char *arg)
{
    size_t len = strlen(arg), i;
    if (!arg[0] || arg[0] == ',') {
        return false;
    }
    for (i = len; i > 0 && arg[i - 1] == ','; i--) {
    }
    return (len - i) % 2 == 0;
}

int qimg_accumulate_options(char **options, const char *arg)
{
    if (!valid_option_list(arg)) {
        qimg_error("Invalid option list: %s", arg);
        return -1;
    }
    char *joined = *options ? xasprintf("%s,%s", *options, arg) : xstrdup(arg);
    free(*options);
    *options = joined;
    return 0;
}

int qimg_object(const char *arg)
{
    Error *err = NULL;
    if (secret_add_object(arg, &err) < 0) {
        qimg_report_err(err);
        return -1;
    }
    return 0;
}

int cli_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"trace", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    engine_init();
    optind = 0;
    int c;
    /* '+': stop at the command name, as qemu-img does */
    while ((c = getopt_long(argc, argv, "+:hVT:", longopts, NULL)) != -1) {
        switch (c) {
        case ':': return qimg_usage("missing argument for option '%s'", argv[optind - 1]);
        case '?': return qimg_usage("unrecognized option '%s'", argv[optind - 1]);
        case 'h': qimg_help(); return 0;
        case 'V': print_version(); return 0;
        case 'T': break; /* tracing: accepted and ignored */
        }
    }
    if (optind >= argc) {
        return qimg_usage("Not enough arguments");
    }
    const char *cmd = argv[optind];
    const QimgCommand *c_ent = find_command(cmd);
    if (!c_ent) {
        return qimg_usage("Command not found: %s", cmd);
    }
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* full getopt re-initialisation for the command */
    int ret = c_ent->fn(sub_argc, sub_argv);
    fflush(stdout);
    return ret;
}
