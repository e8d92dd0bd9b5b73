/*
 * img_bench.c — `qemu-img bench` (qemu-img 7.2 semantics and output).
 *
 *   bench [-c count] [-d depth] [-f fmt] [--flush-interval=N] [-i aio] [-n]
 *         [--no-drain] [-o offset] [--pattern=P] [-q] [-s size] [-S step]
 *         [-t cache] [-U] [-w] [--image-opts] FILE
 *
 * Queue depth is real: `depth` threads (at most BENCH_MAX_THREADS) each
 * keep one request in flight against the block layer.  Requests take their
 * offsets in issue order exactly as qemu-img 7.2's bench_cb does (start at
 * -o, advance by -S, wrap modulo the image size), so a write run leaves
 * the same bytes in the image as qemu-img's.  With --flush-interval the
 * queue is drained (unless --no-drain) and the image flushed every N
 * completed requests.  The first failed request ends the run with qemu's
 * "Failed request: <errno text>".  -n / -i native|io_uring are accepted
 * (with qemu's cache.direct rule for native) and run on the same threads.
 * Writes to a non-raw image run in issue order (see bench_worker).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/util.h"
#include "engine/cmds_common.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

#define BENCH_MAX_THREADS 1024

typedef struct Bench {
    const BenchOpts *o;
    BlockDriverState *bs;
    int64_t image_size;
    int64_t step;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t next_offset; /* offset of the next request issued */
    int issued, completed, in_flight;
    int next_write; /* ticket of the write that may run now (see bench_worker) */
    bool flushing;  /* a drained flush is pending: issue nothing */
    int error;      /* first failure, -errno */
} Bench;

/*
 * Offset for the next request; advances like qemu-img 7.2's bench_cb:
 * modulo the image size (so a wrapped request may overrun the end and fail,
 * as it does there; later qemu wraps modulo size - bufsize).  An empty
 * image stays at 0 instead of dividing by zero.
 */
static int64_t take_offset(Bench *b)
{
    int64_t offset = b->next_offset;
    b->next_offset += b->step;
    b->next_offset = b->image_size > 0 ? b->next_offset % b->image_size : 0;
    return offset;
}

static int do_flush(Bench *b)
{
    pthread_mutex_unlock(&b->lock);
    int ret = bdrv_flush(b->bs);
    pthread_mutex_lock(&b->lock);
    return ret;
}

/* After a completion (lock held): the periodic flush. */
static void after_completion(Bench *b)
{
    int interval = b->o->flush_interval;
    if (!interval || b->completed % interval != 0 || b->error) {
        return;
    }
    if (!b->o->drain_on_flush) {
        int ret = do_flush(b);
        b->error = b->error ? b->error : ret;
        return;
    }
    b->flushing = true;
    while (b->in_flight > 0) {
        pthread_cond_wait(&b->cond, &b->lock);
    }
    int ret = do_flush(b);
    b->error = b->error ? b->error : ret;
    b->flushing = false;
    pthread_cond_broadcast(&b->cond);
}

static void *bench_worker(void *opaque)
{
    Bench *b = opaque;
    const BenchOpts *o = b->o;
    uint8_t *buf = xmemalign(4096, (size_t)MAX(o->bufsize, 1));
    memset(buf, o->pattern, (size_t)o->bufsize);
    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (b->flushing && !b->error) {
            pthread_cond_wait(&b->cond, &b->lock);
        }
        if (b->error || b->issued >= o->count) {
            break;
        }
        int64_t offset = take_offset(b);
        int ticket = b->issued++;
        b->in_flight++;
        /* Writes to a format that allocates run in issue order, one at a
         * time: qemu allocates clusters in that order, so the image's
         * layout is qemu's and the same on every run.  Raw writes and reads
         * stay parallel. */
        bool ordered = o->write && !b->bs->drv->is_raw;
        while (ordered && b->next_write != ticket) {
            pthread_cond_wait(&b->cond, &b->lock);
        }
        pthread_mutex_unlock(&b->lock);
        int ret = o->write ? bdrv_pwrite(b->bs, offset, o->bufsize, buf)
                           : bdrv_pread(b->bs, offset, o->bufsize, buf);
        pthread_mutex_lock(&b->lock);
        b->next_write += ordered;
        b->in_flight--;
        b->completed++;
        if (ret < 0 && !b->error) {
            b->error = ret;
        }
        pthread_cond_broadcast(&b->cond);
        after_completion(b);
    }
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    free(buf);
    return NULL;
}

static int run_bench(Bench *b)
{
    int n = (int)MIN((int64_t)b->o->depth, (int64_t)BENCH_MAX_THREADS);
    n = MAX(1, MIN(n, MAX(b->o->count, 1)));
    pthread_t *tids = XNEWV(pthread_t, (size_t)n);
    int started = 0;
    for (; started < n; started++) {
        if (pthread_create(&tids[started], NULL, bench_worker, b) != 0) {
            break;
        }
    }
    if (started == 0) {
        bench_worker(b); /* no thread available: run inline */
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    free(tids);
    return b->error;
}

static int bench_check(const BenchOpts *o, int *flags, Error **errp)
{
    if (!o->write && o->flush_interval) {
        error_setg(errp, "--flush-interval is only available in write tests");
        return -EINVAL;
    }
    if (o->flush_interval && o->flush_interval < o->depth) {
        error_setg(errp, "Flush interval can't be smaller than depth");
        return -EINVAL;
    }
    if (o->cache && bdrv_parse_cache_mode(o->cache, flags, NULL) < 0) {
        error_setg(errp, "Invalid cache mode");
        return -EINVAL;
    }
    if (o->native_aio && !(*flags & BDRV_O_NOCACHE)) {
        error_setg(errp,
                   "Could not open '%s': aio=native was specified, but it requires "
                   "cache.direct=on, which was not specified.",
                   o->filename);
        return -EINVAL;
    }
    return 0;
}

int img_bench(const BenchOpts *o, Error **errp)
{
    int flags = o->write ? BDRV_O_RDWR : 0;
    int ret = bench_check(o, &flags, errp);
    if (ret < 0) {
        return ret;
    }
    BlockDriverState *bs =
        img_open(o->filename, o->fmt, o->image_opts, flags, NULL, o->force_share, errp);
    if (!bs) {
        return -EIO;
    }
    Bench b = {.o = o, .bs = bs, .image_size = bdrv_getlength(bs)};
    b.step = o->step ? o->step : o->bufsize;
    b.next_offset = o->offset;
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    fprintf(o->out,
            "Sending %d %s requests, %d bytes each, %d in parallel (starting at offset %lld, "
            "step size %d)\n",
            o->count, o->write ? "write" : "read", (int)o->bufsize, o->depth, (long long)o->offset,
            (int)b.step);
    if (o->flush_interval) {
        fprintf(o->out, "Sending flush every %d requests\n", o->flush_interval);
    }
    fflush(o->out);
    struct timeval t1, t2;
    gettimeofday(&t1, NULL);
    ret = run_bench(&b);
    gettimeofday(&t2, NULL);
    if (ret < 0) {
        error_setg(errp, "Failed request: %s", strerror(-ret));
    } else {
        fprintf(o->out, "Run completed in %3.3f seconds.\n",
                (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_usec - t1.tv_usec) / 1e6);
    }
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
    bdrv_unref(bs);
    return ret;
}

/* ---- argv front end ---- */

/* The options qemu parses with qemu_strtoul: count, depth, pattern, flush. */
static int bench_ulong(const char *arg, unsigned long max, const char *what, int *out)
{
    unsigned long v;
    if (!cmds_parse_ulong(arg, max, &v)) {
        qimg_error("Invalid %s specified", what);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int bench_option(BenchOpts *o, int c, const char *arg)
{
    int64_t v;
    switch (c) {
    case 'c': return bench_ulong(arg, INT32_MAX, "request count", &o->count);
    case 'd': return bench_ulong(arg, INT32_MAX, "queue depth", &o->depth);
    case QIMG_OPT_PATTERN: return bench_ulong(arg, 0xff, "pattern byte", &o->pattern);
    case QIMG_OPT_FLUSH_INTERVAL:
        return bench_ulong(arg, INT32_MAX, "flush interval", &o->flush_interval);
    case 'o':
        if ((v = cmds_cvtnum("offset", arg, 0, INT64_MAX)) < 0) {
            return -1;
        }
        o->offset = v;
        return 0;
    case 's':
    case 'S':
        v = cmds_cvtnum(c == 's' ? "buffer size" : "step_size", arg, 0, INT32_MAX);
        if (v < 0) {
            return -1;
        }
        *(c == 's' ? &o->bufsize : &o->step) = v;
        return 0;
    case 'i':
        if (strcmp(arg, "threads") && strcmp(arg, "native") && strcmp(arg, "io_uring")) {
            qimg_error("Invalid aio option: %s", arg);
            return -1;
        }
        o->native_aio = !strcmp(arg, "native");
        return 0;
    }
    return 0;
}

int qimg_bench(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"flush-interval", required_argument, 0, QIMG_OPT_FLUSH_INTERVAL},
        {"image-opts", no_argument, 0, QIMG_OPT_IMAGE_OPTS},
        {"pattern", required_argument, 0, QIMG_OPT_PATTERN},
        {"no-drain", no_argument, 0, QIMG_OPT_NO_DRAIN},
        {"force-share", no_argument, 0, 'U'},
        /* qemu-img 10.x names */
        {"count", required_argument, 0, 'c'},
        {"depth", required_argument, 0, 'd'},
        {"format", required_argument, 0, 'f'},
        {"offset", required_argument, 0, 'o'},
        {"buffer-size", required_argument, 0, 's'},
        {"step-size", required_argument, 0, 'S'},
        {"cache", required_argument, 0, 't'},
        {"write", no_argument, 0, 'w'},
        {"aio", required_argument, 0, 'i'},
        {"native", no_argument, 0, 'n'},
        {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0},
    };
    BenchOpts o = {
        .count = 75000, .depth = 64, .bufsize = 4096, .drain_on_flush = true, .out = stdout};
    int c;
    while ((c = qimg_getopt(argc, argv, "hc:d:f:ni:o:qs:S:t:wU", long_options)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: return 0;
        case QIMG_GETOPT_ERROR: return 1;
        case 'f': o.fmt = optarg; break;
        case 'n': o.native_aio = true; break;
        case 'q': o.quiet = true; break; /* qemu-img still prints its lines */
        case 't': o.cache = optarg; break;
        case 'w': o.write = true; break;
        case 'U': o.force_share = true; break;
        case QIMG_OPT_NO_DRAIN: o.drain_on_flush = false; break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        default:
            if (bench_option(&o, c, optarg) < 0) {
                return 1;
            }
        }
    }
    if (optind != argc - 1) {
        return qimg_usage("Expecting one image file name");
    }
    o.filename = argv[argc - 1];
    Error *err = NULL;
    if (img_bench(&o, &err) < 0) {
        fflush(stdout);
        qimg_report_err(err);
        return 1;
    }
    return 0;
}
