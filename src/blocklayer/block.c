/*
 * block.c — driver registry, probing, open/close, the backing chain.
 *
 * Design notes (invariants):
 *  1. A BlockDriverState is fully validated by its driver before anything
 *     else sees it; the chain below it is opened afterwards, read-only.
 *  2. Backing names are resolved relative to the directory of the image that
 *     names them (path_combine), never relative to the current directory.
 *  3. A chain may not be deeper than BDRV_MAX_CHAIN_DEPTH nor contain the
 *     same host file twice (checked by device and inode).
 *  4. A format chosen by probing that turns out to be raw is never written at
 *     sector 0 with data that would make it probe as another format (raw.c).
 */
#include "blocklayer/block_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define MAX_DRIVERS    32
#define PROBE_BUF_SIZE 2048

static const BlockDriver *drivers[MAX_DRIVERS];
static int n_drivers;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

void bdrv_register(const BlockDriver *drv)
{
    pthread_mutex_lock(&registry_lock);
    bool known = false;
    for (int i = 0; i < n_drivers; i++) {
        known |= drivers[i] == drv;
    }
    if (!known && n_drivers < MAX_DRIVERS) {
        drivers[n_drivers++] = drv;
    }
    pthread_mutex_unlock(&registry_lock);
}

const BlockDriver *bdrv_find_format(const char *name)
{
    for (int i = 0; i < n_drivers; i++) {
        if (!strcmp(drivers[i]->format_name, name)) {
            return drivers[i];
        }
    }
    return NULL;
}

void bdrv_iterate_format(void (*fn)(const BlockDriver *drv, void *opaque), void *opaque)
{
    for (int i = 0; i < n_drivers; i++) {
        fn(drivers[i], opaque);
    }
}

const BlockDriver *bdrv_probe_buf(const uint8_t *buf, int len, const char *filename, int *score)
{
    const BlockDriver *best = NULL;
    int best_score = 0;
    for (int i = 0; i < n_drivers; i++) {
        if (!drivers[i]->probe) {
            continue;
        }
        int s = drivers[i]->probe(buf, len, filename);
        if (s > best_score) {
            best_score = s;
            best = drivers[i];
        }
    }
    if (score) {
        *score = best_score;
    }
    return best;
}

/* Several formats recognise these bytes: say so, the chosen one may not be
 * what the image's maker meant (a polyglot). */
static void report_polyglot(const uint8_t *buf, int len, const char *filename,
                            const BlockDriver *chosen)
{
    StrBuf others = STRBUF_INIT;
    for (int i = 0; i < n_drivers; i++) {
        if (drivers[i] != chosen && !drivers[i]->is_raw && drivers[i]->probe &&
            drivers[i]->probe(buf, len, filename) > 1) {
            sb_addf(&others, "%s%s", others.len ? ", " : "", drivers[i]->format_name);
        }
    }
    if (others.len && chosen) {
        msg_warn("'%s' also looks like %s; probing chose %s (use -f to be explicit)", filename,
                 sb_str(&others), chosen->format_name);
    }
    sb_release(&others);
}

const BlockDriver *bdrv_probe(BlockFile *file, const char *filename, Error **errp)
{
    uint8_t buf[PROBE_BUF_SIZE];
    int64_t len = bfile_getlength(file);
    if (len < 0) {
        error_setg_errno(errp, (int)-len, "Could not determine image size");
        return NULL;
    }
    /* qemu calls an empty file raw without probing */
    if (len == 0 && bdrv_find_format("raw")) {
        return bdrv_find_format("raw");
    }
    /* qemu probes a short file as if padded with zeros to the full buffer */
    int n = (int)MIN(len, (int64_t)sizeof(buf));
    memset(buf, 0, sizeof(buf));
    int ret = bfile_pread(file, 0, buf, (size_t)n);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read image for determining its format");
        return NULL;
    }
    const BlockDriver *drv = bdrv_probe_buf(buf, sizeof(buf), filename, NULL);
    report_polyglot(buf, sizeof(buf), filename, drv);
    if (!drv) {
        error_setg(errp, "Could not determine image format: No compatible driver found");
    }
    return drv;
}

int bdrv_parse_cache_mode(const char *mode, int *flags, bool *writethrough)
{
    *flags &= ~(BDRV_O_NOCACHE | BDRV_O_NO_FLUSH | BDRV_O_WRITETHROUGH);
    bool wt = false;
    if (!strcmp(mode, "off") || !strcmp(mode, "none")) {
        *flags |= BDRV_O_NOCACHE;
    } else if (!strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
        wt = true;
    } else if (!strcmp(mode, "writeback")) {
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
    } else if (!strcmp(mode, "writethrough")) {
        wt = true;
    } else {
        return -1;
    }
    if (wt) {
        *flags |= BDRV_O_WRITETHROUGH;
    }
    if (writethrough) {
        *writethrough = wt;
    }
    return 0;
}

static int bfile_flags_for(int flags)
{
    int bf = 0;
    if (flags & BDRV_O_RDWR) {
        bf |= BFILE_RDWR;
    }
    if (flags & BDRV_O_NOCACHE) {
        bf |= BFILE_DIRECT;
    }
    if (flags & BDRV_O_NO_FLUSH) {
        bf |= BFILE_NO_FLUSH;
    }
    if (flags & BDRV_O_FORCE_SHARE) {
        bf |= BFILE_SHARE_RW;
    }
    return bf;
}

/* A "proto:" prefix we do not implement; NULL when the name is a plain file. */
static char *unsupported_protocol(const char *filename)
{
    const char *colon = strchr(filename, ':');
    const char *slash = strchr(filename, '/');
    if (!colon || colon == filename || (slash && slash < colon)) {
        return NULL;
    }
    for (const char *p = filename; p < colon; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '+' || *p == '-' || *p == '.')) {
            return NULL;
        }
    }
    return xstrndup(filename, (size_t)(colon - filename));
}

static void bdrv_free(BlockDriverState *bs)
{
    if (bs->drv && bs->opaque && bs->drv->close) {
        bs->drv->close(bs);
    }
    bfile_close(bs->file);
    if (bs->backing) {
        bdrv_unref(bs->backing);
    }
    pthread_mutex_destroy(&bs->lock);
    free(bs->opaque);
    free(bs->filename);
    free(bs->backing_file);
    free(bs->backing_format);
    free(bs->backing_filename_full);
    free(bs);
}

/* Open one layer (no backing chain).  Errors are prefixed "Could not open 'F': ". */
/* The reproducibility settings of the bdrv_open_repro() call in progress on
 * this thread (pipeline steps open images on several threads at once). */
static __thread const BdrvRepro *open_repro;

static BlockDriverState *open_one(const char *filename, const char *fmt, const Opts *options,
                                  int flags, BlockFile *file, Error **errp)
{
    char *proto = file ? NULL : unsupported_protocol(filename);
    if (proto) {
        if (!strcmp(proto, "file")) {
            filename += 5;
        } else {
            error_setg(errp, "Could not open '%s': Unknown protocol '%s'", filename, proto);
            free(proto);
            return NULL;
        }
        free(proto);
    }
    const BlockDriver *drv = NULL;
    if (fmt) {
        drv = bdrv_find_format(fmt);
        if (!drv) {
            error_setg(errp, "Could not open '%s': Unknown driver '%s'", filename, fmt);
            bfile_close(file);
            return NULL;
        }
        if (drv->read_only && (flags & BDRV_O_RDWR)) {
            error_setg(errp,
                       "Could not open '%s': Driver '%s' can only be used for read-only devices",
                       filename, fmt);
            bfile_close(file);
            return NULL;
        }
    }
    if (!file) {
        file = bfile_open(filename, bfile_flags_for(flags), errp);
    }
    if (!file) {
        return NULL;
    }
    Error *local = NULL;
    if (!drv) {
        drv = bdrv_probe(file, filename, &local);
        if (!drv) {
            error_propagate(errp, local);
            error_prepend(errp, "Could not open '%s': ", filename);
            bfile_close(file);
            return NULL;
        }
        if (drv->read_only && (flags & BDRV_O_RDWR)) {
            error_setg(errp,
                       "Could not open '%s': Driver '%s' can only be used for read-only devices",
                       filename, drv->format_name);
            bfile_close(file);
            return NULL;
        }
    }
    BlockDriverState *bs = XNEW(BlockDriverState);
    pthread_mutex_init(&bs->lock, NULL);
    bs->refcnt = 1;
    bs->drv = drv;
    bs->filename = xstrdup(filename);
    bs->file = file;
    bs->open_flags = flags;
    bs->read_only = !(flags & BDRV_O_RDWR);
    bs->probed = fmt == NULL;
    bs->request_alignment = 1;
    /* raw passes its file's permissions through and, like qemu's raw
     * format node, shares write/resize with others; other formats do not */
    if (!(flags & BDRV_O_FORCE_SHARE) &&
        bfile_lock(file, flags & BDRV_O_RDWR, drv->is_raw, &local) < 0) {
        error_propagate(errp, local);
        error_prepend(errp, "Could not open '%s': ", filename);
        bs->drv = NULL;
        bdrv_free(bs);
        return NULL;
    }
    if (open_repro) {
        bs->repro = *open_repro; /* before open(): drivers may stamp IDs there */
    }
    bs->opaque = xzalloc(drv->instance_size);
    if (drv->open(bs, options, flags, &local) < 0) {
        if (!local) {
            error_setg(&local, "driver failed to open the image");
        }
        error_propagate(errp, local);
        error_prepend(errp, "Could not open '%s': ", filename);
        if (drv->free_state) {
            drv->free_state(bs);
        }
        free(bs->opaque);
        bs->opaque = NULL;
        bdrv_free(bs);
        return NULL;
    }
    if (bs->probed && drv->is_raw && (flags & BDRV_O_RDWR)) {
        /* qemu 7.2 prints this one as a bare "WARNING: " line */
        msg_report("WARNING: Image format was not specified for '%s' and probing guessed raw.\n"
                   "         Automatically detecting the format is dangerous for raw images, "
                   "write operations on block 0 will be restricted.\n"
                   "         Specify the 'raw' format explicitly to remove the restrictions.",
                   filename);
    }
    return bs;
}

static BlockDriverState *open_chain(BlockDriverState *bs, int flags, Error **errp);

/* Is the host file of bs already in the chain from top? */
static bool chain_has_file(BlockDriverState *top, BlockFile *f)
{
    for (BlockDriverState *p = top; p; p = p->backing) {
        if (p->file && p->file->fd >= 0 && f->fd >= 0 && p->file->dev == f->dev &&
            p->file->ino == f->ino) {
            return true;
        }
    }
    return false;
}

int bdrv_open_backing(BlockDriverState *bs, Error **errp)
{
    int depth = 1;
    for (BlockDriverState *p = bs; p->backing_file && p->backing_file[0]; p = p->backing) {
        if (p->backing) {
            depth++;
            continue;
        }
        if (depth >= BDRV_MAX_CHAIN_DEPTH) {
            error_setg(
                errp, "Could not open backing file: backing chain of '%s' is deeper than %d images",
                bs->filename, BDRV_MAX_CHAIN_DEPTH);
            return -EMLINK;
        }
        /* A json: reference is a set of options, not a path: qemu uses it as
         * it stands (the policy refuses it unless images are trusted). */
        bool is_json = !strncmp(p->backing_file, "json:", 5);
        free(p->backing_filename_full);
        p->backing_filename_full =
            is_json ? xstrdup(p->backing_file) : path_combine(p->filename, p->backing_file);
        if (bdrv_check_reference(p->filename, "backing file", p->backing_file,
                                 p->backing_filename_full, errp) < 0) {
            return -EPERM;
        }
        int flags = (p->open_flags & ~(BDRV_O_RDWR | BDRV_O_CHECK)) | BDRV_O_NO_BACKING;
        Error *local = NULL;
        BlockDriverState *b =
            is_json
                ? bdrv_open(p->backing_file, p->backing_format, NULL, flags, &local)
                : open_one(p->backing_filename_full, p->backing_format, NULL, flags, NULL, &local);
        if (!b) {
            error_propagate(errp, local);
            error_prepend(errp, "Could not open backing file: ");
            return -ENOENT;
        }
        if (chain_has_file(bs, b->file)) {
            error_setg(errp,
                       "Could not open backing file: backing file '%s' creates a loop in the chain "
                       "of '%s'",
                       p->backing_file, bs->filename);
            bdrv_free(b);
            return -ELOOP;
        }
        p->backing = b;
        depth++;
    }
    return 0;
}

static BlockDriverState *open_opts(const Opts *options, const Opts *extra, int flags, Error **errp);

BlockDriverState *bdrv_open(const char *filename, const char *fmt, const Opts *options, int flags,
                            Error **errp)
{
    if (!strncmp(filename, "json:", 5)) {
        Opts o = OPTS_INIT;
        JVal *v = json_parse(filename + 5, strlen(filename + 5), errp);
        if (!v) {
            error_prepend(errp, "Could not open '%s': ", filename);
            return NULL;
        }
        int ret = bdrv_json_to_opts(v, "", &o, errp);
        json_free(v);
        BlockDriverState *bs = NULL;
        if (ret == 0) {
            if (fmt && !opts_get(&o, "driver")) {
                opts_set(&o, "driver", fmt);
            }
            Error *local = NULL;
            bs = open_opts(&o, options, flags, &local);
            if (!bs) {
                bdrv_name_open_error(filename, opts_get(&o, "file.filename"), local, errp);
            }
        }
        opts_release(&o);
        return bs;
    }
    BlockDriverState *bs = open_one(filename, fmt, options, flags, NULL, errp);
    if (!bs) {
        return NULL;
    }
    return open_chain(bs, flags, errp);
}

BlockDriverState *bdrv_open_repro(const char *filename, const char *fmt, const Opts *options,
                                  int flags, const BdrvRepro *repro, Error **errp)
{
    const BdrvRepro *saved = open_repro;
    open_repro = repro && repro->enabled ? repro : NULL;
    BlockDriverState *bs = bdrv_open(filename, fmt, options, flags, errp);
    open_repro = saved;
    return bs;
}

BlockDriverState *bdrv_open_file(BlockFile *file, const char *fmt, const Opts *options, int flags,
                                 Error **errp)
{
    BlockDriverState *bs = open_one(file->filename, fmt, options, flags, file, errp);
    if (!bs) {
        return NULL;
    }
    return open_chain(bs, flags, errp);
}

/* Open the backing chain of a freshly opened bs (per flags); frees bs on failure. */
static BlockDriverState *open_chain(BlockDriverState *bs, int flags, Error **errp)
{
    if (!(flags & BDRV_O_NO_BACKING) && bs->backing_file && bs->backing_file[0]) {
        Error *local = NULL;
        if (bdrv_open_backing(bs, &local) < 0) {
            if (flags & BDRV_O_UNSAFE_BACKING) {
                error_free(local);
            } else {
                error_propagate(errp, local);
                error_prepend(errp, "Could not open '%s': ", bs->filename);
                bdrv_unref(bs);
                return NULL;
            }
        }
    }
    if (bs->backing_file && !bs->backing_filename_full) {
        bs->backing_filename_full = path_combine(bs->filename, bs->backing_file);
    }
    return bs;
}

int bdrv_json_to_opts(const JVal *v, const char *prefix, Opts *o, Error **errp)
{
    if (v->type != JSON_OBJECT) {
        error_setg(errp, "Invalid JSON object given");
        return -EINVAL;
    }
    for (size_t i = 0; i < v->n; i++) {
        char *key = xasprintf("%s%s", prefix, v->keys[i]);
        const JVal *c = v->items[i];
        int ret = 0;
        switch (c->type) {
        case JSON_OBJECT: {
            char *sub = xasprintf("%s.", key);
            ret = bdrv_json_to_opts(c, sub, o, errp);
            free(sub);
            break;
        }
        case JSON_STRING: opts_add(o, key, c->v.s); break;
        case JSON_BOOL: opts_add(o, key, c->v.b ? "on" : "off"); break;
        case JSON_INT: {
            char *n = xasprintf("%lld", (long long)c->v.i);
            opts_add(o, key, n);
            free(n);
            break;
        }
        case JSON_UINT: {
            char *n = xasprintf("%llu", (unsigned long long)c->v.u);
            opts_add(o, key, n);
            free(n);
            break;
        }
        default: error_setg(errp, "Invalid value for option '%s'", key); ret = -EINVAL;
        }
        free(key);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/*
 * Runtime options of --image-opts and json: names, as qemu 7.2 takes them:
 * the block layer's own (any node), the file protocol's (file.*), and each
 * format's.  An entry ending in ".*" takes every key under that prefix.  Keys
 * qemu accepts but that change nothing here (cache sizes, discard passing,
 * overlap checks) are accepted and ignored; an unknown key is refused with
 * qemu's message instead of being dropped without a word.
 */
static const char *const generic_runtime_opts[] = {
    "node-name",   "read-only",    "auto-read-only", "discard", "detect-zeroes",
    "force-share", "cache.direct", "cache.no-flush", NULL,
};
static const char *const file_runtime_opts[] = {
    "filename", "driver",     "aio",        "aio-max-batch",
    "locking",  "pr-manager", "drop-cache", "x-check-cache-dropped",
    NULL,
};
static const char *const raw_runtime_opts[] = {"offset", "size", NULL};
static const char *const qcow2_runtime_opts[] = {
    "lazy-refcounts",      "pass-discard-request", "pass-discard-snapshot",
    "pass-discard-other",  "overlap-check",        "overlap-check.*",
    "cache-size",          "l2-cache-size",        "l2-cache-entry-size",
    "refcount-cache-size", "cache-clean-interval", "encrypt.*",
    "data-file",           "data-file.*",          NULL,
};
static const char *const qcow_runtime_opts[] = {"encrypt.*", NULL};
static const char *const luks_runtime_opts[] = {"key-secret", "max-pbkdf-iters", NULL};
static const char *const vpc_runtime_opts[] = {"force_size_calc", NULL};
static const char *const no_runtime_opts[] = {NULL};

static const struct {
    const char *format;
    const char *const *opts;
} format_runtime_opts[] = {
    {"raw", raw_runtime_opts},   {"qcow2", qcow2_runtime_opts}, {"qcow", qcow_runtime_opts},
    {"luks", luks_runtime_opts}, {"vpc", vpc_runtime_opts},
};

static bool opt_listed(const char *const *list, const char *key)
{
    for (; *list; list++) {
        size_t n = strlen(*list);
        if (n >= 2 && !strcmp(*list + n - 2, ".*") ? !strncmp(key, *list, n - 1)
                                                   : !strcmp(key, *list)) {
            return true;
        }
    }
    return false;
}

static const char *const *runtime_opts_of(const char *format)
{
    for (size_t i = 0; i < sizeof(format_runtime_opts) / sizeof(format_runtime_opts[0]); i++) {
        if (!strcmp(format_runtime_opts[i].format, format)) {
            return format_runtime_opts[i].opts;
        }
    }
    return no_runtime_opts;
}

/* Open from an option set; the keys of `options` are the user's and are
 * checked, those of `extra` (a caller's secrets) go to the driver as they are. */
static BlockDriverState *open_opts(const Opts *options, const Opts *extra, int flags, Error **errp)
{
    const char *filename = opts_get(options, "file.filename");
    if (!filename) {
        filename = opts_get(options, "file");
    }
    if (!filename) {
        filename = opts_get(options, "filename");
    }
    if (!filename) {
        error_setg(errp, "A block device must be specified for \"file\"");
        return NULL;
    }
    const char *proto = opts_get(options, "file.driver");
    if (proto && strcmp(proto, "file")) {
        error_setg(errp, "Could not open '%s': Unknown protocol '%s'", filename, proto);
        return NULL;
    }
    for (size_t i = 0; i < options->n; i++) {
        const char *k = options->keys[i];
        if (!strncmp(k, "file.", 5) && !opt_listed(file_runtime_opts, k + 5) &&
            !opt_listed(generic_runtime_opts, k + 5)) {
            error_setg(errp, "Block protocol 'file' doesn't support the option '%s'", k + 5);
            return NULL;
        }
    }
    const char *fmt = opts_get(options, "driver");
    Opts drv_opts = OPTS_INIT;
    for (size_t i = 0; i < options->n; i++) {
        const char *k = options->keys[i];
        if (strcmp(k, "driver") && strcmp(k, "file") && strcmp(k, "filename") &&
            strncmp(k, "file.", 5) && !opt_listed(generic_runtime_opts, k)) {
            opts_add(&drv_opts, k, options->values[i]);
        }
    }
    size_t user_keys = drv_opts.n;
    if (extra) {
        opts_copy(&drv_opts, extra);
    }
    BlockDriverState *bs = bdrv_open(filename, fmt, &drv_opts, flags, errp);
    if (bs) {
        /* qemu, too, opens first and then refuses what no one consumed;
         * "backing" is consumed only by an image that has one */
        const char *const *known = runtime_opts_of(bdrv_format_name(bs));
        for (size_t i = 0; i < user_keys; i++) {
            const char *k = drv_opts.keys[i];
            bool backing = !strcmp(k, "backing") || !strncmp(k, "backing.", 8);
            if (backing ? !bs->backing_file : !opt_listed(known, k)) {
                error_setg(errp, "Block format '%s' does not support the option '%s'",
                           bdrv_format_name(bs), k);
                bdrv_unref(bs);
                bs = NULL;
                break;
            }
        }
    }
    opts_release(&drv_opts);
    return bs;
}

void bdrv_name_open_error(const char *name, const char *filename, Error *local, Error **errp)
{
    const char *msg = error_get_pretty(local);
    char *prefix = filename ? xasprintf("Could not open '%s': ", filename) : NULL;
    BlockFile *f = prefix ? bfile_open(filename, BFILE_NO_LOCK, NULL) : NULL;
    if (f && !strncmp(msg, prefix, strlen(prefix))) {
        msg += strlen(prefix); /* a driver's error, not the file's */
    }
    bfile_close(f);
    error_setg(errp, "Could not open '%s': %s", name, msg);
    free(prefix);
    error_free(local);
}

BlockDriverState *bdrv_open_opts(const Opts *options, int flags, Error **errp)
{
    return open_opts(options, NULL, flags, errp);
}

void bdrv_ref(BlockDriverState *bs)
{
    __atomic_add_fetch(&bs->refcnt, 1, __ATOMIC_SEQ_CST);
}

void bdrv_unref(BlockDriverState *bs)
{
    if (bs && __atomic_sub_fetch(&bs->refcnt, 1, __ATOMIC_SEQ_CST) == 0) {
        if (!bs->read_only && bs->drv) {
            bdrv_flush(bs);
        }
        bdrv_free(bs);
    }
}

BlockFile *bdrv_open_aux_file(BlockDriverState *bs, const char *name, bool write, Error **errp)
{
    char *path = path_combine(bs->filename, name);
    if (bdrv_check_reference(bs->filename, "file", name, path, errp) < 0) {
        free(path);
        return NULL;
    }
    int flags = bs->open_flags & ~BDRV_O_RDWR;
    if (write) {
        flags |= BDRV_O_RDWR;
    }
    BlockFile *f = bfile_open(path, bfile_flags_for(flags), errp);
    free(path);
    return f;
}

void snapshot_list_free(SnapshotInfo *list, int n)
{
    for (int i = 0; list && i < n; i++) {
        free(list[i].id_str);
        free(list[i].name);
    }
    free(list);
}

int bdrv_chain_length(BlockDriverState *bs)
{
    int n = 0;
    for (; bs; bs = bs->backing) {
        n++;
    }
    return n;
}

const char *bdrv_format_name(const BlockDriverState *bs)
{
    return bs->drv->format_name;
}

bool bdrv_has_zero_init(BlockDriverState *bs)
{
    return !bs->drv->has_zero_init || bs->drv->has_zero_init(bs);
}

int bdrv_get_cluster_size(BlockDriverState *bs)
{
    BlockDriverInfo bdi = {0};
    if (bs->drv->get_info && bs->drv->get_info(bs, &bdi) == 0) {
        return bdi.cluster_size;
    }
    return 0;
}
