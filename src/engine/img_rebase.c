/*
 * img_rebase.c — `qemu-img rebase` (qemu-img 7.2 semantics, plus 10.x -c).
 *
 *   rebase [--object OBJ] [--image-opts] [-U] [-q] [-f FMT] [-t CACHE]
 *          [-T SRC_CACHE] [-p] [-u] [-c] -b BACKING_FILE [-F BACKING_FMT] FILE
 *
 * Safe mode: for every range FILE does not allocate itself, compare what the
 * old backing chain and the new backing file give there, 512 bytes at a
 * time; where they differ, write the old content into FILE — verbatim, as
 * qemu-img 7.2 does (so FILE gets the same allocation), or as zero writes
 * past the old backing file's end (-c: whole clusters compressed).  Then
 * store the new backing name, exactly as given (relative names are
 * relative to FILE's directory).  `-b ""` flattens.  When the new backing
 * file is already in FILE's chain, ranges no layer above it allocates are
 * skipped (their content cannot differ).
 *
 * The walk, reads and compares run in the copy pipeline (copy_pipeline.h,
 * COPY_MODE_REBASE): worker threads read and compare, one writer writes
 * FILE in address order, so FILE's bytes do not depend on the number of
 * workers (one per CPU, or IMGPIPE_THREADS from the environment; imgpipe
 * only).  The meter (-p) moves as qemu-img 7.2's: one step of
 * 100 / (size / 2 MiB) per compared range.
 *
 * Unsafe mode (-u): only the stored name changes; the old chain is not
 * even opened.
 *
 * Crash safety: FILE's guest content equals the original at every moment
 * of the copy (it only gains copies of what showed through), and the
 * backing name changes last, in one header update by the driver.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/cmds_common.h"
#include "engine/copy_pipeline.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/img_convert.h"
#include "engine/qemu_img.h"

typedef struct RebaseJob {
    const RebaseOpts *o;
    BlockDriverState *bs;     /* the image being rebased */
    BlockDriverState *new_bs; /* new backing (NULL: none) */
    BlockDriverState *prefix; /* new backing found in bs's own chain, or NULL */
    bool new_bs_owned;        /* opened here, unref at the end */
} RebaseJob;

/*
 * Copy into bs what differs between its old and new backing views where
 * bs does not allocate: the copy pipeline's rebase mode (copy_pipeline.h),
 * workers reading and comparing both views, one writer writing bs in
 * address order.
 */
static int rebase_copy(RebaseJob *j, Error **errp)
{
    CopySource src = {.bs = j->bs, .name = j->o->filename, .length = -1};
    CopyRebase rb = {.old_backing = j->bs->backing, .new_backing = j->new_bs, .prefix = j->prefix};
    /* The writer copies as many bytes as the workers do (page cache in,
     * page cache out): it gets a CPU of its own. */
    int threads = j->o->threads > 0 ? j->o->threads : MAX(1, img_default_threads() - 1);
    CopyParams p = {
        .mode = COPY_MODE_REBASE,
        .rebase = &rb,
        .src = &src,
        .n_src = 1,
        .target = j->bs,
        .compress = j->o->compress,
        .threads = threads,
        .max_inflight = threads + 1, /* a small window stays in the CPU caches */
        .progress = j->o->progress.fn,
        .progress_opaque = j->o->progress.opaque,
    };
    return copy_pipeline_run(&p, errp);
}

/* Open (or find in bs's chain) the new backing file for safe mode. */
static int open_new_backing(RebaseJob *j, Error **errp)
{
    const RebaseOpts *o = j->o;
    if (!o->backing[0]) {
        return 0;
    }
    char *path = path_combine(j->bs->filename, o->backing);
    j->prefix = cmds_find_backing_image(j->bs, path);
    if (j->prefix) {
        j->new_bs = j->prefix;
        free(path);
        return 0;
    }
    int flags = 0;
    if (img_parse_cache(o->src_cache ? o->src_cache : "writeback", "source ", &flags, errp) < 0) {
        free(path);
        return -EINVAL;
    }
    if (o->force_share) {
        flags |= BDRV_O_FORCE_SHARE;
    }
    j->new_bs = bdrv_open(path, o->backing_fmt, NULL, flags, errp);
    free(path);
    if (!j->new_bs) {
        error_prepend(errp, "Could not open new backing file '%s': ", o->backing);
        return -EIO;
    }
    j->new_bs_owned = true;
    return 0;
}

static int change_backing(const RebaseOpts *o, BlockDriverState *bs, Error **errp)
{
    bool has = o->backing && o->backing[0];
    const char *name = o->backing ? o->backing : "";
    Error *local = NULL;
    int ret = bs->drv->change_backing_file(bs, has ? o->backing : NULL, has ? o->backing_fmt : NULL,
                                           &local);
    if (ret == 0) {
        return 0;
    }
    /* qemu-img reports the errno in its own words */
    error_free(local);
    if (ret == -ENOSPC) {
        error_setg(errp,
                   "Could not change the backing file to '%s': No space left in the file header",
                   name);
    } else {
        error_setg(errp, "Could not change the backing file to '%s': %s", name, strerror(-ret));
    }
    return ret;
}

/* The checks qemu-img makes (some of them only after copying: we make
 * them first, so a refused rebase changes nothing). */
static int rebase_precheck(const RebaseOpts *o, BlockDriverState *bs, Error **errp)
{
    const char *name = o->backing ? o->backing : "";
    if (!bs->drv->change_backing_file) {
        error_setg(errp, "Could not change the backing file to '%s': %s", name, strerror(ENOTSUP));
        return -ENOTSUP;
    }
    if (name[0] && !o->backing_fmt) {
        error_setg(errp,
                   "Could not change the backing file to '%s': backing format must be specified",
                   name);
        return -EINVAL;
    }
    if (o->compress && !bs->drv->write_compressed) {
        error_setg(errp, "Compression not supported for this file format");
        return -ENOTSUP;
    }
    return 0;
}

static int do_rebase(const RebaseOpts *o, BlockDriverState *bs, Error **errp)
{
    int ret = rebase_precheck(o, bs, errp);
    if (ret < 0 || o->unsafe) {
        return ret < 0 ? ret : change_backing(o, bs, errp);
    }
    RebaseJob j = {.o = o, .bs = bs};
    if ((ret = open_new_backing(&j, errp)) < 0) {
        return ret;
    }
    ret = rebase_copy(&j, errp);
    if (ret == 0 && (ret = bdrv_flush(bs)) < 0) {
        error_setg_errno(errp, -ret, "Could not flush '%s'", o->filename);
    }
    if (j.new_bs_owned) {
        bdrv_unref(j.new_bs);
    }
    return ret < 0 ? ret : change_backing(o, bs, errp);
}

int img_rebase(const RebaseOpts *o, Error **errp)
{
    if (!o->unsafe && !o->backing) {
        error_setg(errp, "Must specify backing file (-b) or use unsafe mode (-u)");
        return -EINVAL;
    }
    int flags = BDRV_O_RDWR | (o->unsafe ? BDRV_O_NO_BACKING : 0);
    if (img_parse_cache(o->cache ? o->cache : "writeback", "", &flags, errp) < 0) {
        return -EINVAL;
    }
    int src_flags = 0;
    if (img_parse_cache(o->src_cache ? o->src_cache : "writeback", "source ", &src_flags, errp) <
        0) {
        return -EINVAL;
    }
    BlockDriverState *bs = img_open(o->filename, o->fmt, o->image_opts, flags, NULL, false, errp);
    if (!bs) {
        return -EIO;
    }
    int ret = 0;
    if (o->backing_fmt && !bdrv_find_format(o->backing_fmt)) {
        error_setg(errp, "Invalid format name: '%s'", o->backing_fmt);
        ret = -EINVAL;
    }
    if (ret == 0) {
        if (o->progress.fn) {
            o->progress.fn(o->progress.opaque, 0, 1);
        }
        ret = do_rebase(o, bs, errp);
    }
    bdrv_unref(bs);
    return ret;
}

/* ---- argv front end ---- */

/* IMGPIPE_THREADS=N (1..COPY_MAX_THREADS): pipeline workers; else 0 (default). */
static int qimg_env_threads(void)
{
    const char *v = getenv("IMGPIPE_THREADS");
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    return v && *v && !*end && n >= 1 && n <= COPY_MAX_THREADS ? (int)n : 0;
}

int qimg_rebase(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, 0, QIMG_OPT_IMAGE_OPTS},
        {"force-share", no_argument, 0, 'U'},
        /* qemu-img 10.x names */
        {"format", required_argument, 0, 'f'},
        {"cache", required_argument, 0, 't'},
        {"source-cache", required_argument, 0, 'T'},
        {"backing", required_argument, 0, 'b'},
        {"backing-format", required_argument, 0, 'F'},
        {"backing-unsafe", no_argument, 0, 'u'},
        {"unsafe", no_argument, 0, 'u'},
        {"compress", no_argument, 0, 'c'},
        {"progress", no_argument, 0, 'p'},
        {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0},
    };
    RebaseOpts o = {.cache = "writeback", .src_cache = "writeback", .out = stdout};
    bool progress = false;
    int c;
    while ((c = qimg_getopt(argc, argv, "hf:F:b:B:upt:T:qUc", long_options)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: return 0;
        case QIMG_GETOPT_ERROR: return 1;
        case 'f': o.fmt = optarg; break;
        case 'F': o.backing_fmt = optarg; break;
        case 'b':
        case 'B': o.backing = optarg; break; /* -B: 10.x spelling */
        case 'u': o.unsafe = true; break;
        case 'p': progress = true; break;
        case 't': o.cache = optarg; break;
        case 'T': o.src_cache = optarg; break;
        case 'q': o.quiet = true; break;
        case 'U': o.force_share = true; break;
        case 'c': o.compress = true; break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                return 1;
            }
            break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        }
    }
    if (o.quiet) {
        progress = false;
    }
    if (optind != argc - 1) {
        return qimg_usage("Expecting one image file name");
    }
    if (!o.unsafe && !o.backing) {
        return qimg_usage("Must specify backing file (-b) or use unsafe mode (-u)");
    }
    o.filename = argv[optind];
    o.threads = qimg_env_threads();
    progress_init(progress, 2.f);
    o.progress = progress_engine_hook();
    Error *err = NULL;
    int ret = img_rebase(&o, &err);
    if (ret == 0) {
        progress_set(100.f);
    }
    progress_end();
    if (ret < 0) {
        qimg_report_err(err);
        return 1;
    }
    return 0;
}
