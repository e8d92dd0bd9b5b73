/*
 * qimg_convert.c — `imgpipe run convert ...`: qemu-img 7.2's convert
 * command line, parsed into ConvertOpts for img_convert().
 *
 *   convert [--object OBJDEF] [--image-opts] [--target-image-opts]
 *           [--target-is-zero] [--bitmaps [--skip-broken-bitmaps]]
 *           [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache]
 *           [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options]
 *           [-l snapshot_param] [-S sparse_size] [-r rate_limit] [-m num]
 *           [-W] [--salvage] filename [filename2 [...]] output_filename
 *
 * Argument errors, option checks, `-o help` and the exit code (0/1) are
 * qemu-img's; the long option names of later qemu-img versions
 * (--source-format, --target-format, --parallel, ...) are accepted too.
 * imgpipe extras: --threads N (worker threads; default: CPUs).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/img_common.h"
#include "engine/img_convert.h"
#include "engine/qemu_img.h"

enum {
    OPT_OBJECT = QIMG_OPT_FIRST_FREE,
    OPT_IMAGE_OPTS,
    OPT_TARGET_IMAGE_OPTS,
    OPT_SALVAGE,
    OPT_TARGET_IS_ZERO,
    OPT_BITMAPS,
    OPT_SKIP_BROKEN,
    OPT_THREADS,
};

static const struct option convert_long_options[] = {
    {"help", no_argument, 0, 'h'},
    {"object", required_argument, 0, OPT_OBJECT},
    {"image-opts", no_argument, 0, OPT_IMAGE_OPTS},
    {"target-image-opts", no_argument, 0, OPT_TARGET_IMAGE_OPTS},
    {"salvage", no_argument, 0, OPT_SALVAGE},
    {"target-is-zero", no_argument, 0, OPT_TARGET_IS_ZERO},
    {"bitmaps", no_argument, 0, OPT_BITMAPS},
    {"skip-broken-bitmaps", no_argument, 0, OPT_SKIP_BROKEN},
    /* later qemu-img names */
    {"source-format", required_argument, 0, 'f'},
    {"source-cache", required_argument, 0, 'T'},
    {"snapshot", required_argument, 0, 'l'},
    {"target-format", required_argument, 0, 'O'},
    {"target-format-options", required_argument, 0, 'o'},
    {"target-cache", required_argument, 0, 't'},
    {"backing", required_argument, 0, 'B'},
    {"backing-format", required_argument, 0, 'F'},
    {"sparse-size", required_argument, 0, 'S'},
    {"no-create", no_argument, 0, 'n'},
    {"force-share", no_argument, 0, 'U'},
    {"rate-limit", required_argument, 0, 'r'},
    {"parallel", required_argument, 0, 'm'},
    {"oob-writes", no_argument, 0, 'W'},
    {"copy-range-offloading", no_argument, 0, 'C'},
    {"progress", no_argument, 0, 'p'},
    {"quiet", no_argument, 0, 'q'},
    /* imgpipe */
    {"threads", required_argument, 0, OPT_THREADS},
    {0, 0, 0, 0},
};

typedef struct ConvertArgs {
    ConvertOpts o;
    char *options;
    bool progress;
} ConvertArgs;

/* One option; returns 0, or 1 for "stop with exit code 1". */
static int parse_one(ConvertArgs *a, int c, char **argv)
{
    ConvertOpts *o = &a->o;
    int64_t v;
    switch (c) {
    case 'f': o->src_fmt = optarg; break;
    case 'O': o->out_fmt = optarg; break;
    case 'B': o->backing = optarg; break;
    case 'F': o->backing_fmt = optarg; break;
    case 'C': o->copy_range = true; break;
    case 'c': o->compress = true; break;
    case 'o': return qimg_accumulate_options(&a->options, optarg) < 0 ? 1 : 0;
    case 'l': {
        SnapshotSel sel;
        Error *err = NULL;
        if (snapshot_sel_parse(optarg, &sel, &err) < 0) {
            qimg_report_err(err);
            qimg_error("Failed in parsing snapshot param '%s'", optarg);
            return 1;
        }
        snapshot_sel_release(&sel);
        o->snapshot = optarg;
        break;
    }
    case 'S':
        if (qimg_cvtnum("buffer size for sparse output", optarg, true, &v) < 0) {
            return 1;
        }
        if (v % 512 || v / 512 > 32768) {
            qimg_error("Invalid buffer size for sparse output specified. Valid sizes are "
                       "multiples of 512 up to 16777216. Select 0 to disable sparse detection "
                       "(fully allocates output).");
            return 1;
        }
        o->min_sparse = v;
        o->sparse_size_given = true;
        break;
    case 'p': a->progress = true; break;
    case 't': o->cache = optarg; break;
    case 'T': o->src_cache = optarg; break;
    case 'q': o->quiet = true; break;
    case 'n': o->skip_create = true; break;
    case 'm': {
        long m = strtol(optarg, NULL, 10);
        if (m < 1 || m > 16) {
            qimg_error("Invalid number of coroutines. Allowed number of coroutines is between "
                       "1 and 16");
            return 1;
        }
        o->num_coroutines = (int)m;
        break;
    }
    case 'W': o->out_of_order = true; break;
    case 'U': o->force_share = true; break;
    case 'r':
        if (qimg_cvtnum("rate limit", optarg, true, &v) < 0) {
            return 1;
        }
        o->rate_limit = v;
        break;
    case OPT_OBJECT: return qimg_object(optarg) < 0 ? 1 : 0;
    case OPT_IMAGE_OPTS: o->image_opts = true; break;
    case OPT_TARGET_IMAGE_OPTS: o->target_image_opts = true; break;
    case OPT_SALVAGE: o->salvage = true; break;
    case OPT_TARGET_IS_ZERO: o->target_is_zero = true; break;
    case OPT_BITMAPS: o->bitmaps = true; break;
    case OPT_SKIP_BROKEN: o->skip_broken_bitmaps = true; break;
    case OPT_THREADS:
        if (qimg_cvtnum_full("thread count", optarg, false, 1, 64, &v) < 0) {
            return 1;
        }
        o->threads = (int)v;
        break;
    default: return 1;
    }
    return 0;
}

static int run_convert(ConvertArgs *a)
{
    ConvertOpts *o = &a->o;
    Error *err = NULL;
    o->options = a->options;
    if (img_convert_check(o, &err) < 0) {
        goto fail;
    }
    if (a->options && opts_has_help(a->options)) {
        if (!o->out_fmt) {
            error_setg(&err, "Option help requires a format be specified");
            goto fail;
        }
        const char *fname = o->n_sources >= 1 ? o->out_filename : NULL;
        if (img_print_create_options(stdout, fname, o->out_fmt, &err) < 0) {
            goto fail;
        }
        return 0;
    }
    if (o->n_sources < 1) {
        error_setg(&err, "Must specify image file name");
        goto fail;
    }
    if (o->src_cache && img_parse_cache(o->src_cache, "source ", &(int){0}, &err) < 0) {
        goto fail;
    }
    progress_init(a->progress && !o->quiet, 1.0f);
    if (a->progress && !o->quiet) {
        o->progress = progress_engine_hook();
    }
    int ret = img_convert(o, &err);
    progress_end();
    if (ret < 0) {
        goto fail;
    }
    return 0;
fail:
    qimg_report_err(err);
    return 1;
}

int qimg_convert(int argc, char **argv)
{
    ConvertArgs a = {.o = {.min_sparse = 4096, .num_coroutines = 8, .cache = "unsafe"}};
    int c, ret = 0;
    while ((c = qimg_getopt(argc, argv, "hf:O:B:F:Cco:l:S:pt:T:qnm:WUr:", convert_long_options)) !=
           -1) {
        ret = c < -1 ? (c == QIMG_GETOPT_HELP ? 2 : 1) : parse_one(&a, c, argv);
        if (ret) {
            free(a.options);
            return ret == 2 ? 0 : 1;
        }
    }
    if (!a.o.out_fmt && !a.o.target_image_opts) {
        a.o.out_fmt = "raw";
    }
    int n_src = argc - optind - 1;
    a.o.n_sources = MAX(n_src, 0);
    a.o.sources = (const char *const *)(argv + optind);
    a.o.out_filename = n_src >= 1 ? argv[argc - 1] : NULL;
    ret = run_convert(&a);
    free(a.options);
    return ret;
}
