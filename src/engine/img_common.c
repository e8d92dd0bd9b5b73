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

BlockDriverState *img_open(const char *filename, const char *fmt, bool image_opts, int flags,
                           const char *cache, bool force_share, Error **errp)
{
    if (cache && img_parse_cache(cache, "", &flags, errp) < 0) {
        return NULL;
    }
    if (force_share) {
        if (flags & BDRV_O_RDWR) {
            error_setg(errp, "Could not open '%s': force-share=on can only be used with "
                             "read-only images",
                       filename);
            return NULL;
        }
        flags |= BDRV_O_FORCE_SHARE;
    }
    if (!image_opts) {
        return bdrv_open(filename, fmt, NULL, flags, errp);
    }
    if (fmt) {
        error_setg(errp, "--image-opts and --format are mutually exclusive");
        return NULL;
    }
    Opts o = OPTS_INIT;
    if (opts_parse(&o, filename, "file", errp) < 0) {
        return NULL;
    }
    BlockDriverState *bs = bdrv_open_opts(&o, flags, errp);
    opts_release(&o);
    return bs;
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
        struct sigaction sa = {.sa_handler = sigusr1_handler};
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
    progress_set(max == 0 ? prog.current + delta : prog.current + delta / 100 * (float)max);
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
