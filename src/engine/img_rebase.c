/*
 * img_rebase.c — `qemu-img rebase` (qemu-img 7.2 semantics, plus 10.x -c).
 *
 *   rebase [--object OBJ] [--image-opts] [-U] [-q] [-f FMT] [-t CACHE]
 *          [-T SRC_CACHE] [-p] [-u] [-c] -b BACKING_FILE [-F BACKING_FMT] FILE
 *
 * Safe mode: for every range FILE does not allocate itself, compare what the
 * old backing chain and the new backing file give there; where they differ,
 * write the old content into FILE (zeroes as zero writes, -c: whole
 * clusters compressed).  Then store the new backing name, exactly as given
 * (relative names are relative to FILE's directory).  `-b ""` flattens.
 * When the new backing file is already in FILE's chain, ranges no layer
 * above it allocates are skipped (their content cannot differ).
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
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

#define REBASE_CHUNK ((int64_t)2 * 1024 * 1024) /* qemu-img's IO_BUF_SIZE */
#define SECTOR       512

typedef struct RebaseJob {
    const RebaseOpts *o;
    BlockDriverState *bs;     /* the image being rebased */
    BlockDriverState *new_bs; /* new backing (NULL: none) */
    BlockDriverState *prefix; /* new backing found in bs's own chain, or NULL */
    bool new_bs_owned;        /* opened here, unref at the end */
    int64_t cluster;          /* bs's cluster size (for -c) */
    uint8_t *buf_old, *buf_new;
} RebaseJob;

/* Guest bytes [offset, +n) of the chain below bs, or of new (zeros past the end). */
static int read_below(BlockDriverState *b, int64_t offset, int64_t n, uint8_t *buf)
{
    int64_t len = b ? bdrv_getlength(b) : 0;
    int64_t avail = offset < len ? MIN(n, len - offset) : 0;
    memset(buf + avail, 0, (size_t)(n - avail));
    return avail > 0 ? bdrv_pread(b, offset, avail, buf) : 0;
}

/* Length of the run of sectors from buf that are equal (want_same) or differ. */
static int64_t sector_run(const uint8_t *a, const uint8_t *b, int64_t n, bool want_same)
{
    int64_t i = 0;
    while (i < n) {
        int64_t s = MIN(SECTOR, n - i);
        bool same = !memcmp(a + i, b + i, (size_t)s);
        if (same != want_same) {
            break;
        }
        i += s;
    }
    return i;
}

static int write_old(RebaseJob *j, int64_t offset, int64_t n, const uint8_t *data, Error **errp)
{
    int ret = buffer_is_zero(data, (size_t)n) ? bdrv_pwrite_zeroes(j->bs, offset, n, 0)
                                              : bdrv_pwrite(j->bs, offset, n, data);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Error while writing to COW image");
    }
    return ret;
}

/*
 * -c: write the whole clusters of [start, end) that hold a differing
 * sector, compressed.  [start, end) is unallocated in bs and lies in one
 * chunk; clusters not wholly inside it fall back to plain writes.
 */
static int write_compressed_clusters(RebaseJob *j, int64_t chunk_off, int64_t start, int64_t end,
                                     Error **errp)
{
    int64_t len = bdrv_getlength(j->bs);
    for (int64_t c = ROUND_DOWN(start, j->cluster); c < end; c += j->cluster) {
        int64_t cs = MAX(c, start), ce = MIN(c + j->cluster, end);
        int64_t n = ce - cs;
        if (sector_run(j->buf_old + (cs - chunk_off), j->buf_new + (cs - chunk_off), n, true) ==
            n) {
            continue; /* nothing differs in this cluster */
        }
        const uint8_t *data = j->buf_old + (cs - chunk_off);
        bool whole = cs == c && (ce == c + j->cluster || ce == len);
        int ret;
        if (whole && !buffer_is_zero(data, (size_t)n)) {
            ret = bdrv_pwrite_compressed(j->bs, cs, n, data);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Error while writing to COW image");
                return ret;
            }
        } else if ((ret = write_old(j, cs, n, data, errp)) < 0) {
            return ret;
        }
    }
    return 0;
}

/* Copy into bs what differs between old and new backing in [offset, +n). */
static int rebase_range(RebaseJob *j, int64_t offset, int64_t n, Error **errp)
{
    if (read_below(j->bs->backing, offset, n, j->buf_old) < 0) {
        error_setg(errp, "error while reading from old backing file");
        return -EIO;
    }
    if (read_below(j->new_bs, offset, n, j->buf_new) < 0) {
        error_setg(errp, "error while reading from new backing file");
        return -EIO;
    }
    if (j->o->compress) {
        return write_compressed_clusters(j, offset, offset, offset + n, errp);
    }
    for (int64_t done = 0; done < n;) {
        uint8_t *a = j->buf_old + done, *b = j->buf_new + done;
        int64_t same = sector_run(a, b, n - done, true);
        done += same;
        if (done >= n) {
            break;
        }
        int64_t diff = sector_run(j->buf_old + done, j->buf_new + done, n - done, false);
        int ret = write_old(j, offset + done, diff, j->buf_old + done, errp);
        if (ret < 0) {
            return ret;
        }
        done += diff;
    }
    return 0;
}

static int rebase_copy(RebaseJob *j, Error **errp)
{
    int64_t size = bdrv_getlength(j->bs);
    for (int64_t offset = 0; offset < size;) {
        int64_t n = MIN(REBASE_CHUNK, size - offset);
        int st = bdrv_block_status(j->bs, false, offset, n, &n, NULL, NULL);
        int ret = st;
        if (st >= 0 && !(st & BDRV_BLOCK_ALLOCATED) && j->prefix) {
            /* unchanged since the new backing: nothing can differ */
            ret = cmds_status_above(j->bs->backing, j->prefix, offset, n, &n);
            ret = ret < 0 ? ret : !!(ret & BDRV_BLOCK_ALLOCATED);
        }
        if (ret < 0) {
            error_setg(errp, "error while reading image metadata: %s", strerror(-ret));
            return ret;
        }
        bool todo = !(st & BDRV_BLOCK_ALLOCATED) && (!j->prefix || ret > 0);
        if (todo && (ret = rebase_range(j, offset, n, errp)) < 0) {
            return ret;
        }
        offset += n;
        if (j->o->progress.fn) {
            j->o->progress.fn(j->o->progress.opaque, offset, size);
        }
    }
    return 0;
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
    j.cluster = bdrv_get_cluster_size(bs);
    if (j.cluster <= 0) {
        j.cluster = 65536;
    }
    j.buf_old = xmemalign(4096, REBASE_CHUNK);
    j.buf_new = xmemalign(4096, REBASE_CHUNK);
    ret = rebase_copy(&j, errp);
    free(j.buf_old);
    free(j.buf_new);
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
