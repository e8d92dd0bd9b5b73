/* img_common.c — see img_common.h. */
#include "engine/img_common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int img_parse_cache(const char *cache, const char *what, int *flags, Error **errp)
{
    if (!cache) {
        return 0;
    }
    if (bdrv_parse_cache_mode(cache, flags, NULL) < 0) {
        error_setg(errp, "Invalid %scache option: %s", what, cache);
        return -EINVAL;
    }
    return 0;
}

/*
 * --image-opts: qemu names the image by its option string in every open
 * error ("Could not open 'driver=qcow2,file.filename=x': <why>"), where
 * <why> is the driver's message, or the file layer's own "Could not open
 * 'x': <errno>".  A bare word is a node reference to qemu ("file=x"),
 * which qemu-img never has.
 */
static BlockDriverState *open_image_opts(const char *optstr, int flags, Error **errp)
{
    Opts o = OPTS_INIT;
    if (opts_parse(&o, optstr, "file", errp) < 0) {
        return NULL;
    }
    Error *local = NULL;
    BlockDriverState *bs = NULL;
    const char *node = opts_get(&o, "file");
    if (o.n == 0) {
        error_setg(&local, "Must specify either driver or file");
    } else if (node) {
        error_setg(&local, "Cannot find device='%s' nor node-name='%s'", node, node);
    } else {
        bs = bdrv_open_opts(&o, flags, &local);
    }
    if (!bs) {
        bdrv_name_open_error(optstr, opts_get(&o, "file.filename"), local, errp);
    }
    opts_release(&o);
    return bs;
}

BlockDriverState *img_open(const char *filename, const char *fmt, bool image_opts, int flags,
                           const char *cache, bool force_share, Error **errp)
{
    if (cache && img_parse_cache(cache, "", &flags, errp) < 0) {
        return NULL;
    }
    if (force_share) {
        if (flags & BDRV_O_RDWR) {
            error_setg(errp,
                       "Could not open '%s': force-share=on can only be used with "
                       "read-only images",
                       filename);
            return NULL;
        }
        flags |= BDRV_O_FORCE_SHARE;
    }
    if (!image_opts) {
        /* qemu-img wraps every open error in "Could not open 'F': ", the
         * file layer's own "Could not open 'F': <errno>" included; our
         * bdrv_open() already wraps the driver's and lock errors, so only
         * the file errors need it here. */
        bool has_protocol = filename[0] != '/' && path_is_absolute(filename);
        if (!has_protocol) {
            BlockFile *f = bfile_open(
                filename, BFILE_NO_LOCK | ((flags & BDRV_O_RDWR) ? BFILE_RDWR : 0), errp);
            if (!f) {
                error_prepend(errp, "Could not open '%s': ", filename);
                return NULL;
            }
            bfile_close(f);
        }
        return bdrv_open(filename, fmt, NULL, flags, errp);
    }
    if (fmt) {
        error_setg(errp, "--image-opts and --format are mutually exclusive");
        return NULL;
    }
    return open_image_opts(filename, flags, errp);
}

/* ---- create option tables ---- */

#define MAX_FORMATS 32
static struct {
    const BlockDriver *drv;
    const OptDesc *tables[3];
} opt_tables[MAX_FORMATS];
static pthread_mutex_t opt_tables_lock = PTHREAD_MUTEX_INITIALIZER;

const OptDesc *const *img_create_opt_tables(const BlockDriver *drv)
{
    pthread_mutex_lock(&opt_tables_lock);
    const OptDesc *const *res = NULL;
    for (int i = 0; i < MAX_FORMATS && !res; i++) {
        if (opt_tables[i].drv == drv) {
            res = opt_tables[i].tables;
        } else if (!opt_tables[i].drv) {
            opt_tables[i].drv = drv;
            opt_tables[i].tables[0] = drv->create_opts ? drv->create_opts : file_create_opts;
            opt_tables[i].tables[1] = drv->create_opts ? file_create_opts : NULL;
            opt_tables[i].tables[2] = NULL;
            res = opt_tables[i].tables;
        }
    }
    pthread_mutex_unlock(&opt_tables_lock);
    return res;
}

/* ---- internal snapshots (-l) ---- */

static int parse_snapshot_param(const char *param, char **id, char **name, Error **errp)
{
    Opts o = OPTS_INIT;
    static const OptDesc keys[] = {
        {"snapshot.id", OPT_STRING, "", NULL},
        {"snapshot.name", OPT_STRING, "", NULL},
        {NULL, 0, NULL, NULL},
    };
    const OptDesc *const tables[] = {keys, NULL};
    Error *local = NULL;
    if (opts_parse(&o, param, NULL, &local) < 0 || opts_validate(&o, tables, &local) < 0) {
        error_setg(errp, "%s\nFailed in parsing snapshot param '%s'", error_get_pretty(local),
                   param);
        error_free(local);
        opts_release(&o);
        return -EINVAL;
    }
    *id = xstrdup(opts_get(&o, "snapshot.id"));
    *name = xstrdup(opts_get(&o, "snapshot.name"));
    opts_release(&o);
    return 0;
}

int img_load_snapshot(BlockDriverState *bs, const char *param, Error **errp)
{
    char *id = NULL, *name = NULL;
    bool by_keys = !strncmp(param, "snapshot.", 9);
    if (by_keys && parse_snapshot_param(param, &id, &name, errp) < 0) {
        return -EINVAL;
    }
    Error *local = NULL;
    int ret;
    if (!bs->drv->snapshot_load_tmp) {
        error_setg(&local,
                   "Block format '%s' used by device '' does not support temporarily "
                   "loading internal snapshots",
                   bdrv_format_name(bs));
        ret = -ENOTSUP;
    } else if (by_keys) {
        ret = bs->drv->snapshot_load_tmp(bs, id, name, &local);
    } else {
        ret = bs->drv->snapshot_load_tmp(bs, param, NULL, &local);
        if (ret == -ENOENT) {
            error_free_and_clear(&local);
            ret = bs->drv->snapshot_load_tmp(bs, NULL, param, &local);
        }
    }
    if (ret < 0) {
        if (!local) {
            error_setg_errno(&local, -ret, "Could not load snapshot");
        }
        error_propagate(errp, local);
        error_prepend(errp, "Failed to load snapshot: ");
    }
    free(id);
    free(name);
    return ret;
}

/* ---- JSON in qemu's QDict order ---- */

#define QDICT_BUCKETS 512

/* The string hash qemu's QDict uses (the classic tdb hash). */
static unsigned qdict_bucket(const char *key)
{
    uint32_t value = 0x238F13AFu * (uint32_t)strlen(key);
    for (uint32_t i = 0; key[i]; i++) {
        value += (uint32_t)(unsigned char)key[i] << (i * 5 % 24);
    }
    return (1103515243u * value + 12345u) % QDICT_BUCKETS;
}

typedef struct {
    unsigned bucket;
    size_t index;
    char *key;
    JVal *item;
} Member;

static int member_cmp(const void *a, const void *b)
{
    const Member *x = a, *y = b;
    if (x->bucket != y->bucket) {
        return x->bucket < y->bucket ? -1 : 1;
    }
    /* same bucket: qemu inserts at the list head, so later members first */
    return x->index < y->index ? 1 : -1;
}

void img_json_qdict_order(JVal *v)
{
    if (!v || (v->type != JSON_OBJECT && v->type != JSON_ARRAY)) {
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        img_json_qdict_order(v->items[i]);
    }
    if (v->type != JSON_OBJECT || v->n < 2) {
        return;
    }
    Member *m = XNEWV(Member, v->n);
    for (size_t i = 0; i < v->n; i++) {
        m[i] = (Member){qdict_bucket(v->keys[i]), i, v->keys[i], v->items[i]};
    }
    qsort(m, v->n, sizeof(*m), member_cmp);
    for (size_t i = 0; i < v->n; i++) {
        v->keys[i] = m[i].key;
        v->items[i] = m[i].item;
    }
    free(m);
}

void img_print_json(FILE *out, JVal *v)
{
    StrBuf sb = STRBUF_INIT;
    img_json_qdict_order(v);
    json_print_pretty(&sb, v, 0);
    fprintf(out, "%s\n", sb_str(&sb));
    sb_release(&sb);
}

/* ---- progress ---- */

static struct {
    bool enabled;
    float min_skip;
    float current;
    float last_print;
} prog;
static volatile sig_atomic_t print_pending;

static void progress_show(void)
{
    printf("    (%3.2f/100%%)\r", prog.current);
    fflush(stdout);
}

static void sigusr1_handler(int sig)
{
    print_pending = 1;
}

void progress_init(bool enabled, float min_skip)
{
    prog.enabled = enabled;
    prog.min_skip = min_skip;
    prog.current = 0;
    prog.last_print = 0;
    if (!enabled) {
        /* SA_RESTART: the signal must not fail an I/O call with EINTR */
        struct sigaction sa = {.sa_handler = sigusr1_handler, .sa_flags = SA_RESTART};
        sigaction(SIGUSR1, &sa, NULL);
    }
}

void progress_set(float current)
{
    if (current > 100) {
        current = 100;
    }
    prog.current = current;
    if (!prog.enabled) {
        if (print_pending) {
            print_pending = 0;
            progress_show();
        }
        return;
    }
    if (current > prog.last_print + prog.min_skip || current < prog.last_print - prog.min_skip ||
        current == 100 || current == 0) {
        prog.last_print = prog.current;
        progress_show();
    }
}

void progress_print(float delta, int max)
{
    /* qemu_progress_print(): max 0 means delta is the absolute position */
    progress_set(max == 0 ? delta : prog.current + delta / 100 * (float)max);
}

void progress_end(void)
{
    if (prog.enabled) {
        printf("\n");
        fflush(stdout);
    }
}

static void progress_hook(void *opaque, int64_t done, int64_t total)
{
    progress_set(total > 0 ? (float)((double)done * 100.0 / (double)total) : 100);
}

EngineProgress progress_engine_hook(void)
{
    EngineProgress p = {progress_hook, NULL};
    return p;
}
