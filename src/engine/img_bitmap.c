/*
 * img_bitmap.c — `qemu-img bitmap` (qemu-img 7.2 semantics).
 *
 *   bitmap (--merge SOURCE | --add | --remove | --clear | --enable |
 *           --disable)... [-b SOURCE_FILE [-F SOURCE_FMT]] [-g GRANULARITY]
 *          [--object OBJ] [--image-opts | -f FMT] FILE BITMAP
 *
 * Actions run in command-line order on persistent dirty bitmaps, through
 * the driver's bitmap_op slot (qcow2's bitmaps extension).  This file owns
 * the generic part: qemu-img's argument rules and messages, the default
 * granularity (qemu's: the cluster size, at least 4 KiB; 64 KiB for
 * formats without clusters), the granularity check, opening FILE
 * read-write without its backing chain and the -b source read-only, and
 * "Operation OP on bitmap NAME failed: ..." around each driver error.
 * Formats without the slot answer as qemu does for them (no persistent
 * bitmaps can be stored; no bitmap can be found).
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

static const char *const action_names[] = {
    [BITMAP_ADD] = "add",       [BITMAP_REMOVE] = "remove",   [BITMAP_CLEAR] = "clear",
    [BITMAP_ENABLE] = "enable", [BITMAP_DISABLE] = "disable", [BITMAP_MERGE] = "merge",
};

/* qemu-img's checks on the argument combination, in its order. */
static int bitmap_check_args(const BitmapOpts *o, Error **errp)
{
    bool add = false, merge = false;
    for (int i = 0; i < o->n_actions; i++) {
        add |= o->actions[i].act == BITMAP_ADD;
        merge |= o->actions[i].act == BITMAP_MERGE;
    }
    if (o->n_actions == 0) {
        error_setg(errp, "Need at least one of --add, --remove, --clear, --enable, --disable, "
                         "or --merge");
    } else if (o->granularity && !add) {
        error_setg(errp, "granularity only supported with --add");
    } else if (o->src_fmt && !o->src_filename) {
        error_setg(errp, "-F only supported with -b");
    } else if (o->src_filename && !merge) {
        error_setg(errp, "Merge bitmap source file only supported with --merge");
    } else if (!o->filename || !o->bitmap) {
        error_setg(errp, "Expecting filename and bitmap name");
    } else {
        return 0;
    }
    return -EINVAL;
}

/* qemu's default granularity for a new bitmap. */
static uint32_t default_granularity(BlockDriverState *bs)
{
    int cluster = bdrv_get_cluster_size(bs);
    return cluster > 0 ? (uint32_t)MAX(cluster, 4096) : 65536;
}

/* What qemu answers for a format without persistent bitmaps. */
static int no_bitmap_support(BlockDriverState *bs, const BitmapAction *a, const char *bitmap,
                             Error **errp)
{
    if (a->act == BITMAP_ADD) {
        /* qemu names its format node "#block<N>" (N varies from run to run);
         * we have no node names and say what qcow2's message says */
        (void)bs;
        error_setg(errp, "Can't store persistent bitmaps to #block100: %s", strerror(ENOTSUP));
        return -ENOTSUP;
    }
    /* (merge looks for its target before its source) */
    error_setg(errp, "Dirty bitmap '%s' not found", bitmap);
    return -ENOENT;
}

static int run_action(const BitmapOpts *o, BlockDriverState *bs, BlockDriverState *src_bs,
                      const BitmapAction *a, Error **errp)
{
    uint32_t granularity = 0;
    if (a->act == BITMAP_ADD) {
        uint64_t g = (uint64_t)o->granularity;
        /* qemu takes a uint32: 4 GiB and up wrap to an invalid value */
        if (g && (g < 512 || g > UINT32_MAX || !IS_POWER_OF_2(g))) {
            error_setg(errp, "Granularity must be power of 2 and at least 512");
            return -EINVAL;
        }
        granularity = g ? (uint32_t)g : default_granularity(bs);
    }
    if (!bs->drv->bitmap_op) {
        return no_bitmap_support(bs, a, o->bitmap, errp);
    }
    return bs->drv->bitmap_op(bs, action_names[a->act], o->bitmap, granularity,
                              a->act == BITMAP_MERGE ? src_bs : NULL,
                              a->act == BITMAP_MERGE ? a->src : NULL, errp);
}

int img_bitmap(const BitmapOpts *o, Error **errp)
{
    int ret = bitmap_check_args(o, errp);
    if (ret < 0) {
        return ret;
    }
    /* Bitmaps live in this image alone: no need for the backing chain. */
    BlockDriverState *bs = img_open(o->filename, o->fmt, o->image_opts,
                                    BDRV_O_RDWR | BDRV_O_NO_BACKING, NULL, false, errp);
    if (!bs) {
        return -EIO;
    }
    BlockDriverState *src = NULL;
    if (o->src_filename) {
        src = img_open(o->src_filename, o->src_fmt, false, BDRV_O_NO_BACKING, NULL, false, errp);
        if (!src) {
            bdrv_unref(bs);
            return -EIO;
        }
    }
    for (int i = 0; i < o->n_actions && ret == 0; i++) {
        const BitmapAction *a = &o->actions[i];
        ret = run_action(o, bs, src ? src : bs, a, errp);
        if (ret < 0) {
            error_prepend(errp, "Operation %s on bitmap %s failed: ", action_names[a->act],
                          o->bitmap);
        }
    }
    int fret = bdrv_flush(bs);
    if (ret == 0 && fret < 0) {
        error_setg_errno(errp, -fret, "Could not flush '%s'", o->filename);
        ret = fret;
    }
    if (src) {
        bdrv_unref(src);
    }
    bdrv_unref(bs);
    return ret;
}

/* ---- argv front end ---- */

int qimg_bitmap(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, 0, QIMG_OPT_IMAGE_OPTS},
        {"add", no_argument, 0, QIMG_OPT_ADD},
        {"remove", no_argument, 0, QIMG_OPT_REMOVE},
        {"clear", no_argument, 0, QIMG_OPT_CLEAR},
        {"enable", no_argument, 0, QIMG_OPT_ENABLE},
        {"disable", no_argument, 0, QIMG_OPT_DISABLE},
        {"merge", required_argument, 0, QIMG_OPT_MERGE},
        {"granularity", required_argument, 0, 'g'},
        {"source-file", required_argument, 0, 'b'},
        {"source-format", required_argument, 0, 'F'},
        {"format", required_argument, 0, 'f'}, /* 10.x */
        {0, 0, 0, 0},
    };
    BitmapOpts o = {.out = stdout};
    /* each option adds at most one action: argc bounds them */
    BitmapAction *actions = XNEWV(BitmapAction, (size_t)argc + 1);
    int c, ret = 1;
    while ((c = qimg_getopt(argc, argv, "b:f:F:g:h", long_options)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: ret = 0; goto out;
        case QIMG_GETOPT_ERROR: goto out;
        case 'b': o.src_filename = optarg; break;
        case 'f': o.fmt = optarg; break;
        case 'F': o.src_fmt = optarg; break;
        case 'g':
            if ((o.granularity = cmds_cvtnum("granularity", optarg, 0, INT64_MAX)) < 0) {
                goto out;
            }
            break;
        case QIMG_OPT_ADD: actions[o.n_actions++].act = BITMAP_ADD; break;
        case QIMG_OPT_REMOVE: actions[o.n_actions++].act = BITMAP_REMOVE; break;
        case QIMG_OPT_CLEAR: actions[o.n_actions++].act = BITMAP_CLEAR; break;
        case QIMG_OPT_ENABLE: actions[o.n_actions++].act = BITMAP_ENABLE; break;
        case QIMG_OPT_DISABLE: actions[o.n_actions++].act = BITMAP_DISABLE; break;
        case QIMG_OPT_MERGE:
            actions[o.n_actions].act = BITMAP_MERGE;
            actions[o.n_actions++].src = optarg;
            break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                goto out;
            }
            break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        }
    }
    o.actions = actions;
    if (optind == argc - 2) {
        o.filename = argv[optind];
        o.bitmap = argv[optind + 1];
    }
    Error *err = NULL;
    if (img_bitmap(&o, &err) < 0) {
        qimg_report_err(err);
    } else {
        ret = 0;
    }
out:
    free(actions);
    return ret;
}

/* ---- convert --bitmaps ---- */

static void bitmap_infos_free(BdrvBitmapInfo *list, int n)
{
    for (int i = 0; i < n; i++) {
        free(list[i].name);
    }
    free(list);
}

/* The persistent bitmaps of bs; -ENOTSUP when it cannot hold any. */
static int list_bitmaps(BlockDriverState *bs, BdrvBitmapInfo **list, Error **errp)
{
    *list = NULL;
    if (!bs->drv->bitmap_list) {
        return -ENOTSUP;
    }
    return bs->drv->bitmap_list(bs, list, errp);
}

int img_bitmaps_check_source(BlockDriverState *src, bool skip_broken, Error **errp)
{
    BdrvBitmapInfo *list;
    int n = list_bitmaps(src, &list, errp);
    if (n == -ENOTSUP) {
        error_setg(errp, "Source lacks bitmap support");
    }
    int ret = MIN(n, 0);
    for (int i = 0; i < n && !skip_broken && ret == 0; i++) {
        if (list[i].inconsistent) {
            error_setg(errp,
                       "Cannot copy inconsistent bitmap '%s'\nTry --skip-broken-bitmaps, or "
                       "use 'qemu-img bitmap --remove' to delete it",
                       list[i].name);
            ret = -EINVAL;
        }
    }
    bitmap_infos_free(list, MAX(n, 0));
    return ret;
}

int img_bitmaps_check_target(BlockDriverState *dst, const char *fmt, Error **errp)
{
    BdrvBitmapInfo *list;
    int n = list_bitmaps(dst, &list, errp);
    if (n == -ENOTSUP) {
        error_setg(errp, "Format driver '%s' does not support bitmaps",
                   fmt ? fmt : dst->drv->format_name);
    }
    bitmap_infos_free(list, MAX(n, 0));
    return MIN(n, 0);
}

/* Add one bitmap to dst and fill it from src (qemu's convert_copy_bitmaps). */
static int copy_one_bitmap(BlockDriverState *src, BlockDriverState *dst, const BdrvBitmapInfo *b,
                           Error **errp)
{
    int ret = dst->drv->bitmap_op(dst, "add", b->name, b->granularity, NULL, NULL, errp);
    if (ret == 0 && !b->enabled) {
        ret = dst->drv->bitmap_op(dst, "disable", b->name, 0, NULL, NULL, errp);
    }
    if (ret < 0) {
        error_prepend(errp, "Failed to create bitmap %s: ", b->name);
        return ret;
    }
    ret = dst->drv->bitmap_op(dst, "merge", b->name, 0, src, b->name, errp);
    if (ret < 0) {
        error_prepend(errp, "Failed to populate bitmap %s: ", b->name);
        dst->drv->bitmap_op(dst, "remove", b->name, 0, NULL, NULL, NULL);
    }
    return ret;
}

int img_bitmaps_copy(BlockDriverState *src, BlockDriverState *dst, bool skip_broken, Error **errp)
{
    BdrvBitmapInfo *list;
    int n = list_bitmaps(src, &list, errp);
    if (n == -ENOTSUP) {
        error_setg(errp, "Source lacks bitmap support");
    }
    if (n > 0 && !dst->drv->bitmap_op) {
        error_setg(errp, "Format driver '%s' does not support bitmaps", dst->drv->format_name);
        n = -ENOTSUP;
    }
    int ret = MIN(n, 0);
    for (int i = 0; i < n && ret == 0; i++) {
        if (skip_broken && list[i].inconsistent) {
            msg_warn("Skipping inconsistent bitmap '%s'", list[i].name);
            continue;
        }
        ret = copy_one_bitmap(src, dst, &list[i], errp);
    }
    bitmap_infos_free(list, MAX(n, 0));
    return ret;
}
