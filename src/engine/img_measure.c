/*
 * img_measure.c — `qemu-img measure`: img_measure() and its front end.
 *
 * The size a new image of format -O (default raw) with options -o needs:
 * either for an empty image of --size bytes, or to hold a copy of an
 * existing image (optionally one of its internal snapshots, -l).  The
 * arithmetic is the target driver's (its measure slot); this file does
 * qemu 7.2's argument checks, in qemu's order, and its output:
 *   human: "required size: N\nfully allocated size: N\n[bitmaps size: N\n]"
 *   json:  BlockMeasureInfo, members in qemu's QDict order.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/opts.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

static void print_measure(const MeasureOpts *o, const BlockMeasureInfo *info)
{
    FILE *out = o->out ? o->out : stdout;
    if (!o->json) {
        fprintf(out, "required size: %" PRIu64 "\nfully allocated size: %" PRIu64 "\n",
                info->required, info->fully_allocated);
        if (info->has_bitmaps) {
            fprintf(out, "bitmaps size: %" PRIu64 "\n", info->bitmaps);
        }
        return;
    }
    JVal *j = json_object();
    json_object_add(j, "required", json_uint(info->required));
    json_object_add(j, "fully-allocated", json_uint(info->fully_allocated));
    if (info->has_bitmaps) {
        json_object_add(j, "bitmaps", json_uint(info->bitmaps));
    }
    img_print_json(out, j);
    json_free(j);
}

/* The target format's driver and its validated options (size included). */
static const BlockDriver *target_opts(const MeasureOpts *o, Opts *opts, Error **errp)
{
    const char *out_fmt = o->out_fmt ? o->out_fmt : "raw";
    const BlockDriver *drv = bdrv_find_format(out_fmt);
    if (!drv) {
        error_setg(errp, "Unknown file format '%s'", out_fmt);
        return NULL;
    }
    if (!drv->create || !drv->create_opts) {
        error_setg(errp, "Format driver '%s' does not support image creation", out_fmt);
        return NULL;
    }
    if (o->options) {
        Error *local = NULL;
        if (opts_parse(opts, o->options, NULL, &local) < 0 ||
            opts_validate(opts, img_create_opt_tables(drv), &local) < 0) {
            error_setg(errp, "%s\nInvalid options for file format '%s'", error_get_pretty(local),
                       out_fmt);
            error_free(local);
            return NULL;
        }
    }
    if (o->size >= 0) {
        char num[32];
        snprintf(num, sizeof(num), "%" PRId64, o->size);
        opts_set(opts, "size", num);
    }
    if (!drv->measure) {
        error_setg(errp, "Block driver '%s' does not support size measurement", out_fmt);
        return NULL;
    }
    return drv;
}

static int check_args(const MeasureOpts *o, Error **errp)
{
    if (!o->filename && (o->image_opts || o->fmt || o->snapshot)) {
        error_setg(errp, "--image-opts, -f, and -l require a filename argument.");
        return -EINVAL;
    }
    if (o->filename && o->size >= 0) {
        error_setg(errp, "--size N cannot be used together with a filename.");
        return -EINVAL;
    }
    if (!o->filename && o->size < 0) {
        error_setg(errp, "Either --size N or one filename must be specified.");
        return -EINVAL;
    }
    return 0;
}

int img_measure(const MeasureOpts *o, Error **errp)
{
    engine_init();
    if (check_args(o, errp) < 0) {
        return -EINVAL;
    }
    BlockDriverState *in_bs = NULL;
    if (o->filename) {
        in_bs = img_open(o->filename, o->fmt, o->image_opts, 0, NULL, o->force_share, errp);
        if (!in_bs) {
            return -EINVAL;
        }
        if (o->snapshot && img_load_snapshot(in_bs, o->snapshot, errp) < 0) {
            bdrv_unref(in_bs);
            return -EINVAL;
        }
    }
    Opts opts = OPTS_INIT;
    int ret = -EINVAL;
    const BlockDriver *drv = target_opts(o, &opts, errp);
    if (drv) {
        BlockMeasureInfo info = {0};
        Error *local = NULL;
        ret = drv->measure(&opts, in_bs, &info, &local);
        if (ret < 0) {
            if (!local) {
                error_setg_errno(&local, -ret, "Could not measure the image");
            }
            error_propagate(errp, local);
        } else {
            print_measure(o, &info);
            ret = 0;
        }
    }
    opts_release(&opts);
    if (in_bs) {
        bdrv_unref(in_bs);
    }
    return ret;
}

int qimg_measure(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"image-opts", no_argument, NULL, QIMG_OPT_IMAGE_OPTS},
        {"object", required_argument, NULL, QIMG_OPT_OBJECT},
        {"output", required_argument, NULL, QIMG_OPT_OUTPUT},
        {"size", required_argument, NULL, QIMG_OPT_SIZE},
        {"force-share", no_argument, NULL, 'U'},
        {"format", required_argument, NULL, 'f'},
        {"target-format", required_argument, NULL, 'O'},
        {"options", required_argument, NULL, 'o'},
        {"target-format-options", required_argument, NULL, 'o'},
        {"snapshot", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    MeasureOpts o = {.size = -1, .out = stdout};
    char *options = NULL;
    int c, ret = 1;
    while ((c = qimg_getopt(argc, argv, "hf:O:o:l:U", longopts)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: ret = 0; goto out;
        case QIMG_GETOPT_ERROR: goto out;
        case 'f': o.fmt = optarg; break;
        case 'O': o.out_fmt = optarg; break;
        case 'o':
            if (qimg_accumulate_options(&options, optarg) < 0) {
                goto out;
            }
            break;
        case 'l': o.snapshot = optarg; break;
        case 'U': o.force_share = true; break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        case QIMG_OPT_OUTPUT:
            if (qimg_parse_output(optarg, &o.json) < 0) {
                goto out;
            }
            break;
        case QIMG_OPT_SIZE:
            if (qimg_cvtnum("image size", optarg, true, &o.size) < 0) {
                goto out;
            }
            break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                goto out;
            }
            break;
        }
    }
    if (argc - optind > 1) {
        qimg_error("At most one filename argument is allowed.");
        goto out;
    }
    o.filename = argc - optind == 1 ? argv[optind] : NULL;
    o.options = options;
    Error *err = NULL;
    if (img_measure(&o, &err) < 0) {
        qimg_report_err(err);
        goto out;
    }
    ret = 0;
out:
    free(options);
    return ret;
}
