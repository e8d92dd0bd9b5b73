/*
 * img_resize.c — `qemu-img resize` (qemu-img 7.2 semantics).
 *
 *   resize [--object OBJ] [--image-opts] [-f FMT] [--preallocation=MODE]
 *          [-q] [--shrink] FILE [+|-]SIZE
 *
 * The size is always the LAST argument and is taken off argv before
 * getopt runs, as qemu-img does, so "-1G" is never mistaken for an option.
 * Relative sizes wrap like qemu's int64 arithmetic, so out-of-range input
 * gives qemu's "New image size must be positive".  The resize itself is the
 * driver's truncate slot (qcow2: L1 growth / shrink with the v2+snapshots
 * rule; raw: ftruncate / fallocate / zero-fill).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/cmds_common.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

/* Parse "[+|-]SIZE": *sign is 0 (absolute), +1 or -1. */
static int parse_resize_size(const char *s, int *sign, uint64_t *n, Error **errp)
{
    *sign = 0;
    if (*s == '+' || *s == '-') {
        *sign = *s == '+' ? 1 : -1;
        s++;
    }
    /* Same check and text as qemu's "size" option. */
    Opts o = OPTS_INIT;
    opts_add(&o, "size", s);
    int ret = opts_get_size(&o, "size", 0, n, errp);
    opts_release(&o);
    return ret;
}

/* The new size, computed as qemu-img does (two's complement wrap). */
static int64_t resize_target(int64_t current, int sign, uint64_t n)
{
    if (sign == 0) {
        return (int64_t)n;
    }
    uint64_t delta = sign > 0 ? n : (uint64_t)0 - n;
    return (int64_t)((uint64_t)current + delta);
}

static int check_resize(const ResizeOpts *o, int64_t current, int64_t total, Error **errp)
{
    if (total <= 0) {
        error_setg(errp, "New image size must be positive");
        return -EINVAL;
    }
    if (total <= current && o->prealloc != PREALLOC_OFF) {
        error_setg(errp, "Preallocation can only be used for growing images");
        return -EINVAL;
    }
    if (total < current && !o->shrink) {
        error_setg(errp, "Use the --shrink option to perform a shrink operation.");
        return -EPERM;
    }
    if (total > BDRV_MAX_LENGTH) {
        error_setg(errp, "offset(%lld) exceeds maximum(%lld)", (long long)total,
                   (long long)BDRV_MAX_LENGTH);
        return -EFBIG;
    }
    return 0;
}

int img_resize(const ResizeOpts *o, Error **errp)
{
    int sign;
    uint64_t n;
    int ret = parse_resize_size(o->size_str, &sign, &n, errp);
    if (ret < 0) {
        return ret;
    }
    BlockDriverState *bs =
        img_open(o->filename, o->fmt, o->image_opts, BDRV_O_RDWR, NULL, false, errp);
    if (!bs) {
        return -EIO;
    }
    int64_t current = bdrv_getlength(bs);
    if (current < 0) {
        error_setg(errp, "Failed to inquire current image length: %s", strerror((int)-current));
        bdrv_unref(bs);
        return (int)current;
    }
    int64_t total = resize_target(current, sign, n);
    ret = check_resize(o, current, total, errp);
    if (ret == 0) {
        ret = bdrv_truncate(bs, total, true, o->prealloc, errp);
    }
    if (ret == 0) {
        ret = bdrv_flush(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush '%s'", o->filename);
        }
    }
    bdrv_unref(bs);
    return ret;
}

/* ---- argv front end ---- */

int qimg_resize(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, 0, QIMG_OPT_IMAGE_OPTS},
        {"preallocation", required_argument, 0, QIMG_OPT_PREALLOCATION},
        {"shrink", no_argument, 0, QIMG_OPT_SHRINK},
        {"format", required_argument, 0, 'f'}, /* 10.x */
        {"quiet", no_argument, 0, 'q'},        /* 10.x */
        {0, 0, 0, 0},
    };
    ResizeOpts o = {.prealloc = PREALLOC_OFF, .out = stdout};
    if (argc < 3) {
        return qimg_usage("Not enough arguments");
    }
    /* Take the size off the end first: "-1G" must not reach getopt. */
    o.size_str = argv[--argc];
    int c;
    while ((c = qimg_getopt(argc, argv, "f:hq", long_options)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: return 0;
        case QIMG_GETOPT_ERROR: return 1;
        case 'f': o.fmt = optarg; break;
        case 'q': o.quiet = true; break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                return 1;
            }
            break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        case QIMG_OPT_SHRINK: o.shrink = true; break;
        case QIMG_OPT_PREALLOCATION:
            if (prealloc_parse(optarg, &o.prealloc) < 0) {
                qimg_error("Invalid preallocation mode '%s'", optarg);
                return 1;
            }
            break;
        }
    }
    if (optind != argc - 1) {
        return qimg_usage("Expecting image file name and size");
    }
    o.filename = argv[optind];
    Error *err = NULL;
    int ret = img_resize(&o, &err);
    if (ret < 0) {
        qimg_report_err(err);
        if (ret == -EPERM) {
            msg_warn("Shrinking an image will delete all data beyond the shrunken image's end. "
                     "Before performing such an operation, make sure there is no important data "
                     "there.");
        }
        return 1;
    }
    if (!o.quiet) {
        fprintf(o.out, "Image resized.\n");
    }
    return 0;
}
