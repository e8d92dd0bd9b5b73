/*
 * qemu_img.h — `imgpipe run <qemu-img command line>`: the argv front ends.
 *
 * Each qimg_<cmd>() parses argv exactly as qemu-img 7.2 does (GNU
 * getopt_long with permutation and unambiguous long-option prefixes; the
 * qemu-img 10.x long option names are accepted too), fills the engine's
 * options struct, calls img_<cmd>() and maps the result to qemu-img's exit
 * code.  argv[0] is the command name.  Errors print as
 * "qemu-img: <message>" on stderr like qemu-img, so scripts that match
 * qemu-img's messages keep working.
 */
#ifndef IMGPIPE_ENGINE_QEMU_IMG_H
#define IMGPIPE_ENGINE_QEMU_IMG_H

typedef struct QimgCommand {
    const char *name;
    int (*fn)(int argc, char **argv);
} QimgCommand;

/* Sorted table, NULL-terminated (qemu_img.c). */
extern const QimgCommand qimg_commands[];

/* Print "qemu-img: <fmt>\n" to stderr (qemu's error_report). */
void qimg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
