/*
 * qemu_img.h — `imgpipe run <qemu-img command line>`: the argv front ends.
 *
 * Each qimg_<cmd>() parses argv exactly as qemu-img 7.2 does (GNU
 * getopt_long with permutation and unambiguous long-option prefixes; the
 * qemu-img 10.x long option names are accepted too), fills the engine's
 * options struct, calls img_<cmd>() and maps the result to qemu-img's exit
 * code.  argv[0] is the command name; getopt's state has been reset by the
 * dispatcher (optind = 0) before a front end runs.
 *
 * Messages: qemu-img's text, prefixed "imgpipe: " (see the note at the top
 * of qemu_img.c for why).
 *
 * Adding a command: write `int qimg_<name>(int argc, char **argv)`, declare
 * it below, add `{"<name>", qimg_<name>},` to the sorted table in
 * qemu_img.c.  Its syntax line for `--help` is already in qemu_img.c's
 * syntax table (all qemu-img 7.2 commands are there; help lists only the
 * registered ones).
 */
#ifndef IMGPIPE_ENGINE_QEMU_IMG_H
#define IMGPIPE_ENGINE_QEMU_IMG_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef struct QimgCommand {
    const char *name;
    int (*fn)(int argc, char **argv);
} QimgCommand;

/* Sorted table, NULL-terminated (qemu_img.c). */
extern const QimgCommand qimg_commands[];

/* ---- front ends ---- */
int qimg_check(int argc, char **argv);
int qimg_compare(int argc, char **argv);
int qimg_create(int argc, char **argv);
int qimg_convert(int argc, char **argv); /* qimg_convert.c */
int qimg_dd(int argc, char **argv);      /* qimg_dd.c */
int qimg_info(int argc, char **argv);
int qimg_map(int argc, char **argv);
int qimg_measure(int argc, char **argv);
/* resize, amend, rebase, commit, snapshot, bench, bitmap: src/engine/img_<cmd>.c */
int qimg_amend(int argc, char **argv);
int qimg_bench(int argc, char **argv);
int qimg_bitmap(int argc, char **argv);
int qimg_commit(int argc, char **argv);
int qimg_rebase(int argc, char **argv);
int qimg_resize(int argc, char **argv);
int qimg_snapshot(int argc, char **argv);

/* ---- helpers shared by the front ends ---- */

/* Long-option values for options without a short letter (qemu's OPTION_*). */
enum {
    QIMG_OPT_OUTPUT = 256,
    QIMG_OPT_BACKING_CHAIN,
    QIMG_OPT_OBJECT,
    QIMG_OPT_IMAGE_OPTS,
    QIMG_OPT_PATTERN,
    QIMG_OPT_FLUSH_INTERVAL,
    QIMG_OPT_NO_DRAIN,
    QIMG_OPT_TARGET_IMAGE_OPTS,
    QIMG_OPT_SIZE,
    QIMG_OPT_PREALLOCATION,
    QIMG_OPT_SHRINK,
    QIMG_OPT_SALVAGE,
    QIMG_OPT_TARGET_IS_ZERO,
    QIMG_OPT_ADD,
    QIMG_OPT_REMOVE,
    QIMG_OPT_CLEAR,
    QIMG_OPT_ENABLE,
    QIMG_OPT_DISABLE,
    QIMG_OPT_MERGE,
    QIMG_OPT_BITMAPS,
    QIMG_OPT_FORCE,
    QIMG_OPT_SKIP_BROKEN,
    QIMG_OPT_START_OFFSET,
    QIMG_OPT_MAX_LENGTH,
    QIMG_OPT_LIMITS,
    QIMG_OPT_FIRST_FREE = 400, /* front ends may use values from here on */
};

/* qimg_getopt() results besides getopt's own */
#define QIMG_GETOPT_HELP  (-2) /* -h/--help: help printed, exit 0 */
#define QIMG_GETOPT_ERROR (-3) /* bad option: message printed, exit 1 */

/*
 * getopt_long() with qemu-img's reporting: an unknown option prints
 * "unrecognized option 'X'", a missing argument "missing argument for
 * option 'X'" (both followed by the "Try ... --help" line) and returns
 * QIMG_GETOPT_ERROR; -h/--help prints the help and returns QIMG_GETOPT_HELP.
 * shortopts must not start with ':' (added here).  Front ends loop:
 *     while ((c = qimg_getopt(argc, argv, "f:hq", longopts)) != -1) {
 *         if (c < -1) return c == QIMG_GETOPT_HELP ? 0 : 1;
 *         switch (c) { ... }
 *     }
 */
int qimg_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Print "imgpipe: <fmt>\n" to stderr (qemu's error_report). */
void qimg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* qemu's error_exit(): the message plus "Try 'qemu-img --help' for more
 * information"; returns 1 (the exit status) for `return qimg_usage(...)`. */
int qimg_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print an Error with qimg_error() (each line of a multi-line message keeps
 * qemu's layout: only the first line is prefixed) and free it. */
void qimg_report_err(Error *err);
/* Same, with a "<prefix>" before the message (qemu's error_reportf_err). */
void qimg_report_err_prefix(Error *err, const char *prefix);

/* Print qemu-img's full help (also for `CMD --help`). */
void qimg_help(void);

/*
 * qemu-img's cvtnum(): parse a size (is_size) or a plain integer in
 * [min, max]; on error print qemu's two-line "Invalid <name> specified. You
 * may use k, M, G, ..." or "Invalid <name> specified. Must be between MIN and
 * MAX." and return -1.  Otherwise 0 and *out.
 */
int qimg_cvtnum_full(const char *name, const char *value, bool is_size, int64_t min, int64_t max,
                     int64_t *out);
int qimg_cvtnum(const char *name, const char *value, bool is_size, int64_t *out);

/* --output=human|json; prints qemu's error and returns -1 on anything else. */
int qimg_parse_output(const char *arg, bool *json);

/*
 * Append a -o argument to *options (joined with ','), after qemu's
 * validity check ("Invalid option list: X").  Returns -1 on error.
 * *options is malloc'd; free it when done.
 */
int qimg_accumulate_options(char **options, const char *arg);

/* --object OBJDEF: registers a secret (engine/secrets.h) for drivers that
 * need keys.  Returns -1 (message printed) on a bad definition. */
int qimg_object(const char *arg);

#endif
