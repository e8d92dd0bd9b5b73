/*
 * qimg_dd.c — `imgpipe run dd ...`: qemu-img 7.2's dd command line,
 *
 *   dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size]
 *      [count=blocks] [skip=blocks] if=input of=output
 *
 * parsed into DdOpts for img_dd().  Operand errors are qemu-img's
 * ("unrecognized operand X", "Invalid bs specified. ...", "Must specify
 * both input and output files"); exit code 0 or 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/img_convert.h"
#include "engine/qemu_img.h"

enum { DD_OPT_OBJECT = QIMG_OPT_FIRST_FREE, DD_OPT_IMAGE_OPTS };

static const struct option dd_long_options[] = {
    {"help", no_argument, 0, 'h'},
    {"format", required_argument, 0, 'f'},
    {"image-opts", no_argument, 0, DD_OPT_IMAGE_OPTS},
    {"output-format", required_argument, 0, 'O'},
    {"force-share", no_argument, 0, 'U'},
    {"object", required_argument, 0, DD_OPT_OBJECT},
    {0, 0, 0, 0},
};

#define DD_IF 0x1
#define DD_OF 0x2

/* One "name=value" operand; returns 0 or 1 (error printed). */
static int dd_operand(DdOpts *o, const char *arg, unsigned *seen)
{
    const char *eq = strchr(arg, '=');
    size_t klen = eq ? (size_t)(eq - arg) : 0;
    const char *v = eq ? eq + 1 : NULL;
    int64_t n;
    if (eq && klen == 2 && !strncmp(arg, "bs", 2)) {
        if (qimg_cvtnum_full("bs", v, true, 1, INT32_MAX, &n) < 0) {
            return 1;
        }
        o->bs = n;
    } else if (eq && klen == 5 && !strncmp(arg, "count", 5)) {
        if (qimg_cvtnum("count", v, true, &n) < 0) {
            return 1;
        }
        o->count = n;
    } else if (eq && klen == 4 && !strncmp(arg, "skip", 4)) {
        if (qimg_cvtnum("skip", v, true, &n) < 0) {
            return 1;
        }
        o->skip = n;
    } else if (eq && klen == 2 && !strncmp(arg, "if", 2)) {
        o->in = v;
        *seen |= DD_IF;
    } else if (eq && klen == 2 && !strncmp(arg, "of", 2)) {
        o->out = v;
        *seen |= DD_OF;
    } else {
        qimg_error("unrecognized operand %.*s", (int)(eq ? klen : strlen(arg)), arg);
        return 1;
    }
    return 0;
}

int qimg_dd(int argc, char **argv)
{
    DdOpts o = {.out_fmt = "raw", .bs = 512, .count = -1};
    int c;
    while ((c = qimg_getopt(argc, argv, "hf:O:U", dd_long_options)) != -1) {
        if (c < -1) {
            return c == QIMG_GETOPT_HELP ? 0 : 1;
        }
        switch (c) {
        case 'f': o.fmt = optarg; break;
        case 'O': o.out_fmt = optarg; break;
        case 'U': o.force_share = true; break;
        case DD_OPT_IMAGE_OPTS: o.image_opts = true; break;
        case DD_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                return 1;
            }
            break;
        default: return 1;
        }
    }
    unsigned seen = 0;
    for (int i = optind; i < argc; i++) {
        if (dd_operand(&o, argv[i], &seen)) {
            return 1;
        }
    }
    if ((seen & (DD_IF | DD_OF)) != (DD_IF | DD_OF)) {
        qimg_error("Must specify both input and output files");
        return 1;
    }
    Error *err = NULL;
    int ret = img_dd(&o, &err);
    if (ret < 0) {
        qimg_report_err(err);
        return 1;
    }
    if (ret == 1) {
        qimg_error("%s: cannot skip to specified offset", o.in);
    }
    return 0;
}
