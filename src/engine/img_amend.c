/*
 * img_amend.c — `qemu-img amend` (qemu-img 7.2 semantics).
 *
 *   amend [--object OBJ] [--image-opts] [-p] [-q] [-f FMT] [-t CACHE]
 *         [--force] -o OPTIONS FILE
 *
 * The generic part: open read-write, validate -o against the driver's
 * amend table (amend_opts, or create_opts when the driver has none) — an
 * option that only the create table knows gets qemu's hint "This option is
 * only supported for image creation" — `-o help` lists the amend table
 * ("Amend options for 'FMT':"), a format without the amend slot gets
 * "Format driver 'X' does not support option amendment", and the driver's
 * progress callback drives the meter.  What each option does is the
 * driver's (qcow2: compat, refcount_bits, lazy_refcounts, size, backing...).
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

static const OptDesc *amend_table(const BlockDriver *drv)
{
    return drv->amend_opts ? drv->amend_opts : drv->create_opts;
}

/* The "Amend options for 'FMT':" listing (qemu's print_amend_option_help). */
static int print_amend_help(const char *fmt, FILE *out, Error **errp)
{
    const BlockDriver *drv = bdrv_find_format(fmt);
    if (!drv) {
        error_setg(errp, "Unknown file format '%s'", fmt);
        return -EINVAL;
    }
    if (!drv->amend || !amend_table(drv)) {
        error_setg(errp, "Format driver '%s' does not support option amendment", fmt);
        return -ENOTSUP;
    }
    const OptDesc *tables[] = {amend_table(drv), NULL};
    StrBuf sb = STRBUF_INIT;
    optdesc_print_help(&sb, tables);
    /* optdesc_print_help starts with a caption line; amend has its own */
    const char *body = strchr(sb_str(&sb), '\n');
    fprintf(out, "Amend options for '%s':\n%s", fmt, body ? body + 1 : "");
    sb_release(&sb);
    return 0;
}

/* Parse and validate -o against the amend table (qemu's texts). */
static int parse_amend_opts(const BlockDriver *drv, const char *options, Opts *opts, Error **errp)
{
    if (opts_parse(opts, options, NULL, errp) < 0) {
        return -EINVAL;
    }
    const OptDesc *amend[] = {amend_table(drv), NULL};
    Error *local = NULL;
    if (opts_validate(opts, amend, &local) == 0) {
        return 0;
    }
    const OptDesc *both[] = {amend_table(drv), drv->create_opts, NULL};
    if (drv->create_opts && opts_validate(opts, both, NULL) == 0) {
        error_setg(errp, "%s\nThis option is only supported for image creation",
                   error_get_pretty(local));
        error_free(local);
    } else {
        error_propagate(errp, local);
    }
    return -EINVAL;
}

static void amend_progress(void *opaque, int64_t done, int64_t total)
{
    const AmendOpts *o = opaque;
    if (o->progress.fn) {
        o->progress.fn(o->progress.opaque, done, total);
    }
}

static int do_amend(const AmendOpts *o, BlockDriverState *bs, Error **errp)
{
    const char *fmt = bdrv_format_name(bs);
    if (opts_has_help(o->options)) {
        return print_amend_help(fmt, o->out, errp);
    }
    if (!bs->drv->amend || !amend_table(bs->drv)) {
        error_setg(errp, "Format driver '%s' does not support option amendment", fmt);
        return -ENOTSUP;
    }
    Opts opts = OPTS_INIT;
    int ret = parse_amend_opts(bs->drv, o->options, &opts, errp);
    if (ret == 0) {
        amend_progress((void *)o, 0, 1);
        ret = bs->drv->amend(bs, &opts, o->force, amend_progress, (void *)o, errp);
    }
    if (ret == 0 && (ret = bdrv_flush(bs)) < 0) {
        error_setg_errno(errp, -ret, "Could not flush '%s'", o->filename);
    }
    if (ret == 0) {
        amend_progress((void *)o, 1, 1);
    }
    opts_release(&opts);
    return ret;
}

int img_amend(const AmendOpts *o, Error **errp)
{
    if (!o->options) {
        error_setg(errp, "Must specify options (-o)");
        return -EINVAL;
    }
    if (o->fmt && !o->image_opts && opts_has_help(o->options)) {
        return print_amend_help(o->fmt, o->out, errp);
    }
    int flags = BDRV_O_RDWR;
    if (img_parse_cache(o->cache ? o->cache : "writeback", "", &flags, errp) < 0) {
        return -EINVAL;
    }
    BlockDriverState *bs = img_open(o->filename, o->fmt, o->image_opts, flags, NULL, false, errp);
    if (!bs) {
        return -EIO;
    }
    int ret = do_amend(o, bs, errp);
    bdrv_unref(bs);
    return ret;
}

/* ---- argv front end ---- */

int qimg_amend(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, 0, QIMG_OPT_IMAGE_OPTS},
        {"force", no_argument, 0, QIMG_OPT_FORCE},
        /* qemu-img 10.x names */
        {"options", required_argument, 0, 'o'},
        {"format", required_argument, 0, 'f'},
        {"cache", required_argument, 0, 't'},
        {"progress", no_argument, 0, 'p'},
        {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0},
    };
    AmendOpts o = {.cache = "writeback", .out = stdout};
    char *options = NULL;
    bool progress = false;
    int c, ret = 1;
    while ((c = qimg_getopt(argc, argv, "ho:f:t:pq", long_options)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: ret = 0; goto out;
        case QIMG_GETOPT_ERROR: goto out;
        case 'o':
            if (qimg_accumulate_options(&options, optarg) < 0) {
                goto out;
            }
            break;
        case 'f': o.fmt = optarg; break;
        case 't': o.cache = optarg; break;
        case 'p': progress = true; break;
        case 'q': o.quiet = true; break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                goto out;
            }
            break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        case QIMG_OPT_FORCE: o.force = true; break;
        }
    }
    if (!options) {
        ret = qimg_usage("Must specify options (-o)");
        goto out;
    }
    o.options = options;
    if (o.quiet) {
        progress = false;
    }
    progress_init(progress, 1.f);
    Error *err = NULL;
    if (o.fmt && opts_has_help(options)) {
        /* with an explicit format the help needs no file */
        ret = img_amend(&o, &err) < 0;
    } else if (optind != argc - 1) {
        error_setg(&err, "Expecting one image file name");
    } else {
        o.filename = argv[argc - 1];
        o.progress = progress_engine_hook();
        ret = img_amend(&o, &err) < 0;
    }
    progress_end();
    if (err) {
        qimg_report_err(err);
        ret = 1;
    }
out:
    free(options);
    return ret;
}
