/*
 * img_check.c — `qemu-img check`: img_check() and its front end.
 *
 * Exit statuses as qemu-img 7.2: 0 clean, 1 check failed (internal errors),
 * 2 corruptions, 3 only leaked clusters, 63 the format has no check.  With
 * -r the image is opened read-write, repaired, and checked a second time;
 * the report is of the second pass plus the counts that were fixed.
 * Findings ("Leaked cluster ...", "ERROR ...") come from the driver through
 * msg_report() (stderr), as qemu's drivers print them.
 *
 * JSON: qemu's ImageCheck, optional members present only when non-zero,
 * members in qemu's QDict order.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

static void add_nonzero(JVal *o, const char *key, int64_t v)
{
    if (v) {
        json_add_int(o, key, v);
    }
}

/* The ImageCheck tree in QAPI declaration order. */
static JVal *check_json(const char *filename, const char *format, const BdrvCheckResult *r)
{
    JVal *o = json_object();
    json_add_str(o, "filename", filename);
    json_add_str(o, "format", format);
    json_add_int(o, "check-errors", r->check_errors);
    add_nonzero(o, "image-end-offset", r->image_end_offset);
    add_nonzero(o, "corruptions", r->corruptions);
    add_nonzero(o, "leaks", r->leaks);
    add_nonzero(o, "corruptions-fixed", r->corruptions_fixed);
    add_nonzero(o, "leaks-fixed", r->leaks_fixed);
    add_nonzero(o, "total-clusters", (int64_t)r->bfi.total_clusters);
    add_nonzero(o, "allocated-clusters", (int64_t)r->bfi.allocated_clusters);
    add_nonzero(o, "fragmented-clusters", (int64_t)r->bfi.fragmented_clusters);
    add_nonzero(o, "compressed-clusters", (int64_t)r->bfi.compressed_clusters);
    return o;
}

static void check_human(FILE *out, const BdrvCheckResult *r)
{
    if (!(r->corruptions || r->leaks || r->check_errors)) {
        fprintf(out, "No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            fprintf(out,
                    "\n%d errors were found on the image.\n"
                    "Data may be corrupted, or further writes to the image may corrupt it.\n",
                    r->corruptions);
        }
        if (r->leaks) {
            fprintf(out,
                    "\n%d leaked clusters were found on the image.\n"
                    "This means waste of disk space, but no harm to data.\n",
                    r->leaks);
        }
        if (r->check_errors) {
            fprintf(out, "\n%d internal errors have occurred during the check.\n", r->check_errors);
        }
    }
    const BlockFragInfo *b = &r->bfi;
    if (b->total_clusters != 0 && b->allocated_clusters != 0) {
        fprintf(out,
                "%llu/%llu = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed "
                "clusters\n",
                (unsigned long long)b->allocated_clusters, (unsigned long long)b->total_clusters,
                (double)b->allocated_clusters * 100.0 / (double)b->total_clusters,
                (double)b->fragmented_clusters * 100.0 / (double)b->allocated_clusters,
                (double)b->compressed_clusters * 100.0 / (double)b->allocated_clusters);
    }
    if (r->image_end_offset) {
        fprintf(out, "Image end offset: %lld\n", (long long)r->image_end_offset);
    }
}

static int run_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    /* Single-threaded here, and drivers may use bdrv_* I/O on bs while
     * checking, so bs->lock is not taken. */
    memset(res, 0, sizeof(*res));
    return bs->drv->check(bs, res, fix);
}

static void print_result(const CheckOpts *o, BlockDriverState *bs, const BdrvCheckResult *res)
{
    FILE *out = o->out ? o->out : stdout;
    if (o->quiet) {
        return;
    }
    if (o->json) {
        JVal *j = check_json(o->filename, bdrv_format_name(bs), res);
        img_print_json(out, j);
        json_free(j);
    } else {
        check_human(out, res);
    }
}

static int check_open_image(const CheckOpts *o, BlockDriverState *bs, Error **errp)
{
    FILE *out = o->out ? o->out : stdout;
    if (!bs->drv->check) {
        error_setg(errp, "This image format does not support checks");
        return 63;
    }
    BdrvCheckResult res;
    int ret = run_check(bs, &res, o->fix);
    if (ret == 0 && (res.corruptions_fixed || res.leaks_fixed)) {
        int leaks_fixed = res.leaks_fixed, corruptions_fixed = res.corruptions_fixed;
        if (!o->json && !o->quiet) {
            fprintf(out,
                    "The following inconsistencies were found and repaired:\n\n"
                    "    %d leaked clusters\n"
                    "    %d corruptions\n\n"
                    "Double checking the fixed image now...\n",
                    leaks_fixed, corruptions_fixed);
            fflush(out);
        }
        ret = run_check(bs, &res, 0);
        res.leaks_fixed = leaks_fixed;
        res.corruptions_fixed = corruptions_fixed;
    }
    if (ret == -ENOTSUP) {
        error_setg(errp, "This image format does not support checks");
        return 63;
    }
    if (ret == 0) {
        print_result(o, bs, &res);
    }
    if (ret < 0 || res.check_errors) {
        if (ret < 0) {
            error_setg(errp, "Check failed: %s", strerror(-ret));
        } else {
            error_setg(errp, "Check failed");
        }
        return 1;
    }
    return res.corruptions ? 2 : res.leaks ? 3 : 0;
}

/*
 * Returns qemu-img's exit status (0, 1, 2, 3, 63) — with *errp set when a
 * message must be printed (63, 1) — or -errno when the image cannot be
 * opened.
 */
int img_check(const CheckOpts *o, Error **errp)
{
    engine_init();
    int flags = BDRV_O_CHECK | (o->fix ? BDRV_O_RDWR : 0);
    const char *cache = o->cache ? o->cache : "writeback";
    int dummy = 0;
    if (bdrv_parse_cache_mode(cache, &dummy, NULL) < 0) {
        error_setg(errp, "Invalid source cache option: %s", cache);
        return -EINVAL;
    }
    BlockDriverState *bs =
        img_open(o->filename, o->fmt, o->image_opts, flags, cache, o->force_share, errp);
    if (!bs) {
        return -EINVAL;
    }
    int ret = check_open_image(o, bs, errp);
    bdrv_unref(bs);
    return ret;
}

int qimg_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"object", required_argument, NULL, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, NULL, QIMG_OPT_IMAGE_OPTS},
        {"force-share", no_argument, NULL, 'U'},
        {"output", required_argument, NULL, QIMG_OPT_OUTPUT},
        {"format", required_argument, NULL, 'f'},
        {"cache", required_argument, NULL, 'T'},
        {"repair", required_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    CheckOpts o = {.out = stdout};
    int c;
    while ((c = qimg_getopt(argc, argv, "hf:r:T:qU", longopts)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: return 0;
        case QIMG_GETOPT_ERROR: return 1;
        case 'f': o.fmt = optarg; break;
        case 'r':
            if (!strcmp(optarg, "leaks")) {
                o.fix = BDRV_FIX_LEAKS;
            } else if (!strcmp(optarg, "all")) {
                o.fix = BDRV_FIX_LEAKS | BDRV_FIX_ERRORS;
            } else {
                return qimg_usage("Unknown option value for -r "
                                  "(expecting 'leaks' or 'all'): %s",
                                  optarg);
            }
            break;
        case 'T': o.cache = optarg; break;
        case 'q': o.quiet = true; break;
        case 'U': o.force_share = true; break;
        case QIMG_OPT_OUTPUT:
            if (qimg_parse_output(optarg, &o.json) < 0) {
                return 1;
            }
            break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                return 1;
            }
            break;
        }
    }
    if (optind != argc - 1) {
        return qimg_usage("Expecting one image file name");
    }
    o.filename = argv[optind];
    Error *err = NULL;
    int ret = img_check(&o, &err);
    qimg_report_err(err);
    return ret < 0 ? 1 : ret;
}
