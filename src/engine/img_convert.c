/*
 * img_convert.c — `qemu-img convert` as a library function (engine.h).
 *
 * Semantics follow qemu-img 7.2: the target's size is the sum of the
 * sources (rounded up to 512 bytes each); with -B/backing_file the target
 * gets that backing file and only what the source's top layer allocates is
 * copied; -n writes into an existing image (zeroing what reads as zero in
 * the source, unless --target-is-zero); -S sets the zero-run length that
 * becomes a hole; -c writes compressed clusters.  Messages are qemu-img's.
 *
 * The copy itself is copy_pipeline.c (parallel reads/compression, one
 * ordered writer: identical output for any thread count).  A created
 * target is written atomically (img_convert_target.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "engine/copy_pipeline.h"
#include "engine/img_common.h"
#include "engine/img_convert.h"
#include "engine/img_convert_target.h"

typedef struct ConvertState {
    const ConvertOpts *o;
    BlockDriverState **src;
    int n_src;
    int64_t total_bytes; /* sum of sources, each rounded up to 512 */
    const BlockDriver *drv;
    Opts copts; /* create options */
    const char *backing;
    bool has_backing;
    AtomicOut out;
    bool created;
    BlockDriverState *target;
    bool compress; /* -c, or a target that stores every cluster compressed */
} ConvertState;

int img_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return (int)MIN(MAX(n, 1), COPY_MAX_THREADS);
}

int img_convert_check(const ConvertOpts *o, Error **errp)
{
    if (o->skip_broken_bitmaps && !o->bitmaps) {
        error_setg(errp, "Use of --skip-broken-bitmaps requires --bitmaps");
    } else if (o->compress && o->copy_range) {
        error_setg(errp, "Cannot enable copy offloading when -c is used");
    } else if (o->sparse_size_given && o->copy_range) {
        error_setg(errp, "Cannot enable copy offloading when -S is used");
    } else if (o->copy_range && o->salvage) {
        error_setg(errp, "Cannot use copy offloading in salvaging mode");
    } else if (o->target_image_opts && !o->skip_create) {
        error_setg(errp, "--target-image-opts requires use of -n flag");
    } else if (o->skip_create && o->options) {
        error_setg(errp, "-o has no effect when skipping image creation");
    } else if (o->target_is_zero && !o->skip_create) {
        error_setg(errp, "--target-is-zero requires use of -n flag");
    } else {
        return 0;
    }
    return -EINVAL;
}

/* ---- -o help ---- */

int img_print_create_options(FILE *out, const char *filename, const char *fmt, Error **errp)
{
    const BlockDriver *drv = bdrv_find_format(fmt);
    if (!drv) {
        error_setg(errp, "Unknown file format '%s'", fmt);
        return -EINVAL;
    }
    if (!drv->create_opts) {
        error_setg(errp, "Format driver '%s' does not support image creation", fmt);
        return -ENOTSUP;
    }
    StrBuf sb = STRBUF_INIT;
    if (filename) {
        optdesc_print_help(&sb, img_create_opt_tables(drv));
        fputs(sb_str(&sb), out);
    } else {
        const OptDesc *own[] = {drv->create_opts, NULL};
        optdesc_print_help(&sb, own);
        const char *body = strchr(sb_str(&sb), '\n');
        fprintf(out, "Supported %s options:%s\n", fmt, body ? body : "\n");
        fputs("The protocol level may support further options.\n"
              "Specify the target filename to include those options.\n",
              out);
    }
    sb_release(&sb);
    return 0;
}

/* ---- -l ---- */

int snapshot_sel_parse(const char *arg, SnapshotSel *sel, Error **errp)
{
    memset(sel, 0, sizeof(*sel));
    if (!arg) {
        return 0;
    }
    if (strncmp(arg, "snapshot.", 9) != 0) {
        sel->name = xstrdup(arg);
        sel->by_id_or_name = true;
        return 0;
    }
    Opts so = OPTS_INIT;
    static const OptDesc sn_desc[] = {
        {"snapshot.id", OPT_STRING, "", NULL},
        {"snapshot.name", OPT_STRING, "", NULL},
        {NULL, 0, NULL, NULL},
    };
    const OptDesc *tables[] = {sn_desc, NULL};
    int ret = opts_parse(&so, arg, NULL, errp);
    if (ret == 0) {
        ret = opts_validate(&so, tables, errp);
    }
    if (ret < 0) {
        opts_release(&so);
        return ret;
    }
    const char *id = opts_get(&so, "snapshot.id"), *name = opts_get(&so, "snapshot.name");
    sel->id = id ? xstrdup(id) : NULL;
    sel->name = name ? xstrdup(name) : NULL;
    opts_release(&so);
    return 0;
}

void snapshot_sel_release(SnapshotSel *sel)
{
    free(sel->id);
    free(sel->name);
    memset(sel, 0, sizeof(*sel));
}

int snapshot_sel_load(BlockDriverState *bs, const SnapshotSel *sel, Error **errp)
{
    int ret;
    if (!bs->drv->snapshot_load_tmp) {
        error_setg(errp,
                   "Failed to load snapshot: Block format '%s' used by device '' does not "
                   "support temporarily loading internal snapshots",
                   bs->drv->format_name);
        return -ENOTSUP;
    }
    if (sel->by_id_or_name) {
        Error *local = NULL;
        ret = bs->drv->snapshot_load_tmp(bs, sel->name, NULL, &local);
        if (ret == -ENOENT || ret == -EINVAL) {
            error_free(local);
            local = NULL;
            ret = bs->drv->snapshot_load_tmp(bs, NULL, sel->name, &local);
        }
        error_propagate(errp, local);
    } else {
        ret = bs->drv->snapshot_load_tmp(bs, sel->id, sel->name, errp);
    }
    if (ret < 0) {
        error_prepend(errp, "Failed to load snapshot: ");
    }
    return ret;
}

/* ---- sources ---- */

static int open_sources(ConvertState *s, Error **errp)
{
    const ConvertOpts *o = s->o;
    s->src = XNEWV(BlockDriverState *, (size_t)o->n_sources);
    for (int i = 0; i < o->n_sources; i++) {
        s->src[i] = img_open(o->sources[i], o->src_fmt, o->image_opts, 0,
                             o->src_cache ? o->src_cache : "writeback", o->force_share, errp);
        if (!s->src[i]) {
            return -EINVAL;
        }
        s->n_src++;
        int64_t len = bdrv_getlength(s->src[i]);
        if (len < 0) {
            error_setg_errno(errp, (int)-len, "Could not get size of %s", o->sources[i]);
            return (int)len;
        }
        s->total_bytes += ROUND_UP(len, 512);
    }
    if (!o->snapshot) {
        return 0;
    }
    SnapshotSel sel;
    int ret = snapshot_sel_parse(o->snapshot, &sel, errp);
    if (ret == 0 && sel.by_id_or_name && s->n_src > 1) {
        error_setg(errp, "No support for concatenating multiple snapshot");
        ret = -EINVAL;
    }
    if (ret == 0) {
        ret = snapshot_sel_load(s->src[0], &sel, errp);
    }
    snapshot_sel_release(&sel);
    return ret;
}

/* ---- target options ---- */

static bool table_has(const OptDesc *const *tables, const char *name)
{
    for (; *tables; tables++) {
        if (optdesc_find(*tables, name)) {
            return true;
        }
    }
    return false;
}

/* -B/-F into the create options (qemu's add_old_style_options). */
static int add_backing_options(ConvertState *s, const OptDesc *const *tables, Error **errp)
{
    const ConvertOpts *o = s->o;
    if (o->backing) {
        if (!table_has(tables, "backing_file")) {
            error_setg(errp, "Backing file not supported for file format '%s'", o->out_fmt);
            return -EINVAL;
        }
        opts_set(&s->copts, "backing_file", o->backing);
    }
    if (o->backing_fmt) {
        if (!table_has(tables, "backing_fmt")) {
            error_setg(errp, "Backing file format not supported for file format '%s'", o->out_fmt);
            return -EINVAL;
        }
        opts_set(&s->copts, "backing_fmt", o->backing_fmt);
    }
    return 0;
}

static int prepare_create(ConvertState *s, Error **errp)
{
    const ConvertOpts *o = s->o;
    s->drv = bdrv_find_format(o->out_fmt);
    if (!s->drv) {
        error_setg(errp, "Unknown file format '%s'", o->out_fmt);
        return -EINVAL;
    }
    if (!s->drv->create || !s->drv->create_opts) {
        error_setg(errp, "Format driver '%s' does not support image creation", o->out_fmt);
        return -ENOTSUP;
    }
    const OptDesc *const *tables = img_create_opt_tables(s->drv);
    if (o->options && (opts_parse(&s->copts, o->options, NULL, errp) < 0 ||
                       opts_validate(&s->copts, tables, errp) < 0)) {
        return -EINVAL;
    }
    char size[32];
    snprintf(size, sizeof(size), "%" PRId64, s->total_bytes);
    opts_set(&s->copts, "size", size);
    return add_backing_options(s, tables, errp);
}

/* The checks qemu-img makes between parsing -o and creating. */
static int check_target_plan(ConvertState *s, Error **errp)
{
    const ConvertOpts *o = s->o;
    s->backing = o->skip_create ? o->backing : opts_get(&s->copts, "backing_file");
    s->has_backing = s->backing != NULL;
    if (o->target_is_zero && s->has_backing) {
        error_setg(errp, "Cannot use --target-is-zero when the destination image has a "
                         "backing file");
        return -EINVAL;
    }
    if (s->n_src > 1 && s->has_backing) {
        error_setg(errp, "Having a backing file for the target makes no sense when "
                         "concatenating multiple input images");
        return -EINVAL;
    }
    if (!o->skip_create && s->has_backing && !opts_get(&s->copts, "backing_fmt")) {
        error_setg(errp, "Use of backing file requires explicit backing format");
        return -EINVAL;
    }
    if (o->compress) {
        const char *prealloc = opts_get(&s->copts, "preallocation");
        bool enc = false;
        opts_get_bool(&s->copts, "encryption", false, &enc, NULL);
        if (s->drv && !s->drv->write_compressed) {
            error_setg(errp, "Compression not supported for this file format");
            return -ENOTSUP;
        }
        if (enc || opts_get(&s->copts, "encrypt.format")) {
            error_setg(errp, "Compression and encryption not supported at the same time");
            return -EINVAL;
        }
        if (prealloc && strcmp(prealloc, "off")) {
            error_setg(errp, "Compression and preallocation not supported at the same time");
            return -EINVAL;
        }
    }
    if (o->bitmaps) {
        if (s->n_src > 1) {
            error_setg(errp, "Copying bitmaps only possible with single source");
            return -EINVAL;
        }
        int ret = img_bitmaps_check_source(s->src[0], o->skip_broken_bitmaps, errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static int create_target(ConvertState *s, Error **errp)
{
    const ConvertOpts *o = s->o;
    atomic_out_begin(&s->out, o->out_filename, !o->no_atomic);
    BdrvCreateInfo ci = {.opts = &s->copts, .size = (uint64_t)s->total_bytes, .repro = o->repro};
    for (int attempt = 0; attempt < 2; attempt++) {
        ci.filename = atomic_out_path(&s->out);
        Error *local = NULL;
        int ret = s->drv->create(&ci, &local);
        if (ret < 0) {
            if (!local) {
                error_setg_errno(&local, -ret, "Could not create image");
            }
            error_propagate(errp, local);
            error_prepend(errp, "%s: error while converting %s: ", o->out_filename, o->out_fmt);
            atomic_out_abort(&s->out);
            return ret;
        }
        if (!atomic_out_fallback_if_multifile(&s->out)) {
            break;
        }
    }
    s->created = true;
    return 0;
}

/* ---- target ---- */

static int open_target(ConvertState *s, Error **errp)
{
    const ConvertOpts *o = s->o;
    int flags = BDRV_O_RDWR;
    const char *cache = o->cache ? o->cache : "unsafe";
    if (img_parse_cache(cache, "", &flags, errp) < 0) {
        return -EINVAL;
    }
    atomic_out_set_durable(&s->out, !(flags & BDRV_O_NO_FLUSH));
    if (o->skip_create) {
        s->target =
            img_open(o->out_filename, o->out_fmt, o->target_image_opts, flags, NULL, false, errp);
    } else {
        /* as qemu-img's img_add_key_secrets: open an encrypted target with
         * the key-secret it was created with */
        Opts keys = OPTS_INIT;
        static const char *const key_opts[] = {"key-secret", "encrypt.key-secret"};
        for (size_t i = 0; i < ARRAY_SIZE(key_opts); i++) {
            if (opts_get(&s->copts, key_opts[i])) {
                opts_add(&keys, key_opts[i], opts_get(&s->copts, key_opts[i]));
            }
        }
        s->target = bdrv_open_repro(atomic_out_path(&s->out), o->out_fmt, keys.n ? &keys : NULL,
                                    flags, &o->repro, errp);
        opts_release(&keys);
    }
    if (!s->target) {
        return -EIO;
    }
    BlockDriverState *t = s->target;
    if (o->bitmaps && img_bitmaps_check_target(t, o->out_fmt, errp) < 0) {
        return -ENOTSUP;
    }
    if (o->compress && !t->drv->write_compressed) {
        error_setg(errp, "Compression not supported for this file format");
        return -ENOTSUP;
    }
    s->compress = o->compress || (t->drv->needs_compressed_writes && t->drv->write_compressed &&
                                  t->drv->needs_compressed_writes(t));
    if (o->skip_create && ROUND_UP(bdrv_getlength(t), 512) < s->total_bytes) {
        error_setg(errp, "output file is smaller than input file");
        return -ENOSPC;
    }
    if (s->compress) {
        int cs = bdrv_get_cluster_size(t);
        if (cs <= 0) {
            error_setg(errp, "could not get block driver info");
            return -ENOTSUP;
        }
    }
    return 0;
}

static int run_copy(ConvertState *s, Error **errp)
{
    const ConvertOpts *o = s->o;
    CopySource *srcs = XNEWV(CopySource, (size_t)s->n_src);
    for (int i = 0; i < s->n_src; i++) {
        srcs[i].bs = s->src[i];
        srcs[i].base = s->has_backing ? s->src[i]->backing : NULL;
        srcs[i].name = o->sources[i];
        srcs[i].length = -1;
    }
    int threads = o->threads > 0 ? o->threads : img_default_threads();
    int coroutines = o->num_coroutines > 0 ? o->num_coroutines : 8;
    BlockDriverState *tb = s->target->backing;
    CopyParams p = {
        .src = srcs,
        .n_src = s->n_src,
        .target = s->target,
        .compress = s->compress,
        .min_sparse = o->min_sparse,
        .no_zero_scan = o->copy_range,
        .target_zero_init = o->target_is_zero || (s->created && o->min_sparse && !s->has_backing &&
                                                  bdrv_has_zero_init(s->target)),
        .target_has_backing = s->has_backing,
        .target_backing_length = (s->has_backing && s->created && tb) ? bdrv_getlength(tb) : -1,
        .out_of_order = o->out_of_order,
        .salvage = o->salvage,
        .quiet = o->quiet,
        .threads = threads,
        .max_inflight = MAX(coroutines, 2 * threads),
        .rate_limit = o->rate_limit,
        .progress = o->progress.fn,
        .progress_opaque = o->progress.opaque,
        .written = atomic_out_written,
        .written_opaque = &s->out,
    };
    int ret = copy_pipeline_run(&p, errp);
    free(srcs);
    return ret;
}

static int copy_bitmaps(ConvertState *s, Error **errp)
{
    return img_bitmaps_copy(s->src[0], s->target, s->o->skip_broken_bitmaps, errp);
}

static int finish_target(ConvertState *s, Error **errp)
{
    int ret = bdrv_flush(s->target);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "error while flushing '%s'", s->o->out_filename);
        return ret;
    }
    bdrv_unref(s->target);
    s->target = NULL;
    return atomic_out_commit(&s->out, errp);
}

static void convert_cleanup(ConvertState *s, int ret)
{
    if (s->target) {
        bdrv_unref(s->target);
    }
    if (ret < 0 && s->created) {
        atomic_out_abort(&s->out);
    }
    atomic_out_release(&s->out);
    for (int i = 0; i < s->n_src; i++) {
        bdrv_unref(s->src[i]);
    }
    free(s->src);
    opts_release(&s->copts);
}

static int convert_steps(ConvertState *s, Error **errp)
{
    const ConvertOpts *o = s->o;
    int ret = open_sources(s, errp);
    if (ret == 0 && !o->skip_create) {
        ret = prepare_create(s, errp);
    }
    if (ret == 0) {
        ret = check_target_plan(s, errp);
    }
    if (ret == 0 && !o->skip_create) {
        ret = create_target(s, errp);
    }
    if (ret == 0) {
        ret = open_target(s, errp);
    }
    if (ret == 0) {
        ret = run_copy(s, errp);
    }
    if (ret == 0 && o->bitmaps) {
        ret = copy_bitmaps(s, errp);
    }
    if (ret == 0) {
        ret = finish_target(s, errp);
    }
    return ret;
}

int img_convert(const ConvertOpts *o, Error **errp)
{
    engine_init();
    int ret = img_convert_check(o, errp);
    if (ret < 0) {
        return ret;
    }
    if (o->n_sources < 1 || !o->out_filename) {
        error_setg(errp, "Must specify image file name");
        return -EINVAL;
    }
    if (o->src_cache && img_parse_cache(o->src_cache, "source ", &(int){0}, errp) < 0) {
        return -EINVAL;
    }
    ConvertOpts local = *o;
    if (!local.out_fmt && !local.target_image_opts) {
        local.out_fmt = "raw";
    }
    if (o->progress.fn) {
        o->progress.fn(o->progress.opaque, 0, 1);
    }
    ConvertState s = {.o = &local, .copts = OPTS_INIT};
    ret = convert_steps(&s, errp);
    convert_cleanup(&s, ret);
    if (ret == 0 && o->progress.fn) {
        o->progress.fn(o->progress.opaque, 1, 1);
    }
    return ret;
}
