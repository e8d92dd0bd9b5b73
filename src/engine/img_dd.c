/*
 * img_dd.c — `qemu-img dd` as a library function (img_convert.h).
 *
 * qemu-img 7.2's semantics, quirks included:
 *   - the input length is counted in whole 512-byte sectors (the tail past
 *     the real end reads as zeros);
 *   - count= limits the input to count*bs bytes from its START, and skip=
 *     then starts inside that: `bs=1M count=3 skip=2` copies 1 MiB;
 *   - skip= past the end makes an empty image and is reported (not fatal);
 *   - every byte is written (no sparse detection), so image formats get
 *     the same allocation as with qemu-img.
 * The copy runs through the copy pipeline (one source window), and the
 * output is created atomically like convert's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "engine/copy_pipeline.h"
#include "engine/img_common.h"
#include "engine/img_convert.h"
#include "engine/img_convert_target.h"

typedef struct DdState {
    const DdOpts *o;
    BlockDriverState *in, *out;
    const BlockDriver *drv;
    int64_t size;   /* input bytes considered (after count=) */
    int64_t in_pos; /* first input byte copied */
    bool skip_past_end;
    AtomicOut ao;
    bool created;
} DdState;

static int dd_plan(DdState *s, Error **errp)
{
    const DdOpts *o = s->o;
    s->in = img_open(o->in, o->fmt, o->image_opts, 0, NULL, o->force_share, errp);
    if (!s->in) {
        return -EINVAL;
    }
    const char *out_fmt = o->out_fmt ? o->out_fmt : "raw";
    s->drv = bdrv_find_format(out_fmt);
    if (!s->drv) {
        error_setg(errp, "Unknown file format");
        return -EINVAL;
    }
    if (!s->drv->create || !s->drv->create_opts) {
        error_setg(errp, "Format driver '%s' does not support image creation", out_fmt);
        return -ENOTSUP;
    }
    int64_t len = bdrv_getlength(s->in);
    if (len < 0) {
        error_setg(errp, "Failed to get size for '%s'", o->in);
        return (int)len;
    }
    int64_t bs = o->bs > 0 ? o->bs : 512;
    s->size = ROUND_UP(len, 512);
    if (o->count >= 0 && o->count <= INT64_MAX / bs && o->count * bs < s->size) {
        s->size = o->count * bs;
    }
    s->skip_past_end = o->skip > INT64_MAX / bs || s->size < o->skip * bs;
    s->in_pos = s->skip_past_end ? s->size : o->skip * bs;
    return 0;
}

static int dd_create(DdState *s, Error **errp)
{
    const DdOpts *o = s->o;
    Opts copts = OPTS_INIT;
    char size[32];
    snprintf(size, sizeof(size), "%" PRId64, s->size - s->in_pos);
    opts_set(&copts, "size", size);
    atomic_out_begin(&s->ao, o->out, !o->no_atomic);
    BdrvCreateInfo ci = {
        .opts = &copts, .size = (uint64_t)(s->size - s->in_pos), .repro = o->repro};
    int ret = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        ci.filename = atomic_out_path(&s->ao);
        Error *local = NULL;
        ret = s->drv->create(&ci, &local);
        if (ret < 0) {
            if (!local) {
                error_setg_errno(&local, -ret, "Could not create image");
            }
            error_propagate(errp, local);
            error_prepend(errp, "%s: error while creating output image: ", o->out);
            atomic_out_abort(&s->ao);
            break;
        }
        if (!atomic_out_fallback_if_multifile(&s->ao)) {
            break;
        }
    }
    opts_release(&copts);
    s->created = ret == 0;
    return ret;
}

static int dd_copy(DdState *s, Error **errp)
{
    if (s->in_pos >= s->size) {
        return 0;
    }
    CopySource src = {
        .bs = s->in, .name = s->o->in, .offset = s->in_pos, .length = s->size - s->in_pos};
    int threads = s->o->threads > 0 ? s->o->threads : img_default_threads();
    CopyParams p = {
        .src = &src,
        .n_src = 1,
        .target = s->out,
        .min_sparse = 0, /* dd writes every byte */
        .threads = threads,
        .max_inflight = MAX(8, 2 * threads),
    };
    Error *local = NULL;
    int ret = copy_pipeline_run(&p, &local);
    if (ret < 0) {
        /* qemu-img dd's words for the two failure sides */
        const char *m = error_get_pretty(local);
        const char *colon = strrchr(m, ':');
        bool rd = strncmp(m, "error while reading", 19) == 0;
        error_setg(errp, "error while %s %s image file: %s", rd ? "reading from" : "writing to",
                   rd ? "input" : "output", colon ? colon + 2 : m);
        error_free(local);
    }
    return ret;
}

int img_dd(const DdOpts *o, Error **errp)
{
    engine_init();
    DdState s = {.o = o};
    int ret = dd_plan(&s, errp);
    if (ret == 0) {
        ret = dd_create(&s, errp);
    }
    if (ret == 0) {
        s.out = bdrv_open(atomic_out_path(&s.ao), o->out_fmt ? o->out_fmt : "raw", NULL,
                          BDRV_O_RDWR, errp);
        ret = s.out ? 0 : -EIO;
    }
    if (ret == 0) {
        ret = dd_copy(&s, errp);
    }
    if (s.out) {
        int fret = bdrv_flush(s.out);
        if (ret == 0 && fret < 0) {
            error_setg_errno(errp, -fret, "error while writing to output image file");
            ret = fret;
        }
        bdrv_unref(s.out);
    }
    if (ret == 0) {
        ret = atomic_out_commit(&s.ao, errp);
    } else if (s.created) {
        atomic_out_abort(&s.ao);
    }
    atomic_out_release(&s.ao);
    if (s.in) {
        bdrv_unref(s.in);
    }
    return ret < 0 ? ret : (s.skip_past_end ? 1 : 0);
}
