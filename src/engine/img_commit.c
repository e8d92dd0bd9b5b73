/*
 * img_commit.c — `qemu-img commit` (qemu-img 7.2 semantics).
 *
 *   commit [--object OBJ] [--image-opts] [-q] [-f FMT] [-t CACHE]
 *          [-b BASE] [-r RATE] [-d] [-p] FILE
 *
 * Copies everything the layers above BASE (default: FILE's immediate
 * backing file) allocate — data and explicit zeros, and the zeros of
 * regions past the end of a shorter intermediate layer — into BASE, growing
 * BASE first when FILE is larger.  Then, unless -d (or -b, which implies
 * -d as in qemu-img), FILE is emptied with the driver's make_empty slot (or
 * a discard of the whole image), so FILE's guest view stays the same.
 *
 * What lands in BASE is what qemu-img 7.2's commit (a mirror block job)
 * writes: data ranges verbatim, even when they hold zeros, and allocated
 * zeros as zero writes, so BASE ends with the same allocation
 * (`qemu-img map`) as after qemu-img.  The copy runs in the copy pipeline
 * (copy_pipeline.h, COPY_MODE_COMMIT): worker threads read, one writer
 * writes in address order.  The number of workers is one per CPU, or
 * IMGPIPE_THREADS from the environment (imgpipe only; qemu-img has no
 * such option): BASE's bytes do not depend on it.
 *
 * The meter (-p) counts the bytes allocated above BASE, as qemu's job
 * progress does, and moves as they are written.
 *
 * Crash safety: only BASE changes while copying and FILE still shadows
 * every range copied, so a commit killed mid-way leaves FILE's guest
 * content intact and both images consistent (the driver keeps its own
 * metadata ordered); running commit again completes it.
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

/*
 * Copy what top's layers above base allocate into base: the copy
 * pipeline's commit mode (copy_pipeline.h), so reads run in worker
 * threads while one writer writes base in address order — base gets the
 * same bytes and the same allocation whatever the thread count.
 */
static int commit_copy(const CommitOpts *o, BlockDriverState *top, BlockDriverState *base,
                       Error **errp)
{
    CopySource src = {.bs = top, .base = base, .name = o->filename, .length = -1};
    /* The writer copies as many bytes as the workers do (page cache in,
     * page cache out): it gets a CPU of its own. */
    int threads = o->threads > 0 ? o->threads : MAX(1, img_default_threads() - 1);
    CopyParams p = {
        .mode = COPY_MODE_COMMIT,
        .src = &src,
        .n_src = 1,
        .target = base,
        .target_has_backing = true, /* what base shows through stays as it is */
        .target_backing_length = -1,
        .threads = threads,
        .max_inflight = threads + 1, /* a small window stays in the CPU caches */
        .rate_limit = o->rate_limit,
        .progress = o->progress.fn,
        .progress_opaque = o->progress.opaque,
    };
    return copy_pipeline_run(&p, errp);
}

/*
 * Grow base to the overlay's size.  When base has a backing file that
 * reaches into the new area, that area is zeroed so the backing file's
 * bytes do not show through (qemu's truncate does the same).
 */
static int commit_grow_base(BlockDriverState *base, int64_t len, Error **errp)
{
    int64_t old = bdrv_getlength(base);
    if (old >= len) {
        return 0;
    }
    int ret = bdrv_truncate(base, len, false, PREALLOC_OFF, errp);
    if (ret < 0) {
        error_prepend(errp, "Could not resize the base image: ");
        return ret;
    }
    if (base->backing && bdrv_getlength(base->backing) > old) {
        int64_t end = MIN(len, bdrv_getlength(base->backing));
        ret = bdrv_pwrite_zeroes(base, old, end - old, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not zero the grown part of the base image");
        }
    }
    return ret;
}

/*
 * Swap the read-only base in top's chain for a writable one.  Both opens
 * of one file in this process would otherwise conflict on the image locks.
 */
static BlockDriverState *reopen_base_rw(BlockDriverState *top, BlockDriverState *base, int flags,
                                        Error **errp)
{
    BlockDriverState *parent = top;
    while (parent->backing != base) {
        parent = parent->backing;
    }
    char *name = xstrdup(base->filename);
    /* a probed base is probed again, so that the probed-raw rule (no
     * format header written into sector 0, CVE-2008-2004) still holds */
    char *fmt = base->probed ? NULL : xstrdup(bdrv_format_name(base));
    parent->backing = NULL;
    bdrv_unref(base);
    BlockDriverState *rw = bdrv_open(name, fmt, NULL, flags | BDRV_O_RDWR, errp);
    free(name);
    free(fmt);
    parent->backing = rw; /* may be NULL on error: top then reads zeros there */
    return rw;
}

/* Empty the overlay after a commit; a format that cannot is left as is. */
static int commit_empty_top(BlockDriverState *top, Error **errp)
{
    if (top->drv->make_empty) {
        int ret = top->drv->make_empty(top, errp);
        return ret == -ENOTSUP ? 0 : ret;
    }
    int ret = bdrv_pdiscard(top, 0, bdrv_getlength(top));
    if (ret < 0 && ret != -ENOTSUP) {
        error_setg_errno(errp, -ret, "Could not empty '%s'", top->filename);
        return ret;
    }
    return 0;
}

static int do_commit(const CommitOpts *o, BlockDriverState *top, int flags, Error **errp)
{
    BlockDriverState *base;
    if (o->base) {
        base = cmds_find_backing_image(top, o->base);
        if (!base) {
            error_setg(errp, "Did not find '%s' in the backing chain of '%s'", o->base,
                       o->filename);
            return -ENOENT;
        }
    } else if (!(base = top->backing)) {
        error_setg(errp, "Image does not have a backing file");
        return -ENOENT;
    }
    base = reopen_base_rw(top, base, flags, errp);
    if (!base) {
        return -EIO;
    }
    if (o->progress.fn) {
        o->progress.fn(o->progress.opaque, 0, 1);
    }
    int ret = commit_grow_base(base, bdrv_getlength(top), errp);
    if (ret == 0) {
        ret = commit_copy(o, top, base, errp);
    }
    if (ret == 0 && (ret = bdrv_flush(base)) < 0) {
        error_setg_errno(errp, -ret, "Could not flush the base image");
    }
    if (ret == 0 && !o->drop && !o->base) {
        ret = commit_empty_top(top, errp);
    }
    return ret;
}

int img_commit(const CommitOpts *o, Error **errp)
{
    int flags = BDRV_O_RDWR;
    const char *cache = o->cache ? o->cache : "writeback";
    if (img_parse_cache(cache, "", &flags, errp) < 0) {
        return -EINVAL;
    }
    BlockDriverState *top = img_open(o->filename, o->fmt, o->image_opts, flags, NULL, false, errp);
    if (!top) {
        return -EIO;
    }
    int ret = do_commit(o, top, flags & ~BDRV_O_RDWR, errp);
    bdrv_unref(top);
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

int qimg_commit(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, 0, QIMG_OPT_IMAGE_OPTS},
        /* qemu-img 10.x names */
        {"format", required_argument, 0, 'f'},
        {"cache", required_argument, 0, 't'},
        {"base", required_argument, 0, 'b'},
        {"drop", no_argument, 0, 'd'},
        {"rate-limit", required_argument, 0, 'r'},
        {"progress", no_argument, 0, 'p'},
        {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0},
    };
    CommitOpts o = {.cache = "writeback", .out = stdout};
    bool progress = false;
    int c;
    while ((c = qimg_getopt(argc, argv, "f:ht:b:dpqr:", long_options)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: return 0;
        case QIMG_GETOPT_ERROR: return 1;
        case 'f': o.fmt = optarg; break;
        case 't': o.cache = optarg; break;
        case 'b':
            o.base = optarg;
            o.drop = true;
            break; /* -b implies -d */
        case 'd': o.drop = true; break;
        case 'p': progress = true; break;
        case 'q': o.quiet = true; break;
        case 'r':
            if ((o.rate_limit = cmds_cvtnum("rate limit", optarg, 0, INT64_MAX)) < 0) {
                return 1;
            }
            break;
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
    o.filename = argv[optind];
    o.threads = qimg_env_threads();
    progress_init(progress, 1.f);
    o.progress = progress_engine_hook();
    Error *err = NULL;
    int ret = img_commit(&o, &err);
    if (ret == 0) {
        progress_set(100.f);
    }
    progress_end();
    if (ret < 0) {
        qimg_report_err(err);
        return 1;
    }
    if (!o.quiet) {
        fprintf(o.out, "Image committed.\n");
    }
    return 0;
}
