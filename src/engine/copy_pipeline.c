/*
 * copy_pipeline.c — the threaded half of the copy pipeline (API and shape
 * in copy_pipeline.h; the walk and zero detection in copy_iter.c).
 *
 * Design notes (invariants):
 *  1. Chunks get consecutive sequence numbers in address order.  Chunk seq
 *     lives in slot seq % window; a slot is reused only after its chunk is
 *     written, so at most `window` chunks (and their buffers) exist.
 *  2. Only the calling thread walks the sources (the iterator is not
 *     shared), reports progress and writes the target.  Workers only read
 *     sources and compute (zero runs, compression) into their chunk.
 *  3. Without out_of_order the writer takes chunks strictly by sequence
 *     number, so every call into the target driver happens in the same
 *     order whatever the number of threads: same bytes out.
 *  4. A worker's read error stays in its chunk and is reported when the
 *     writer reaches that chunk, so the first failing offset is the one
 *     reported, as with a serial copy.
 *  5. `mu` guards slot states and the counters; buffers of a WORKING slot
 *     belong to its worker, those of a READY slot to the writer.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "engine/copy_pipeline.h"

typedef enum {
    RUN_DATA,    /* bdrv_pwrite */
    RUN_ZERO,    /* skip on a zero-initialised target, else write zeroes */
    RUN_CMP,     /* write_compressed() of compress()'s output */
    RUN_CMP_RAW, /* write_compressed() of raw data (driver has no compress()) */
} RunKind;

typedef struct Run {
    int64_t bytes;
    RunKind kind;
    size_t cmp_off, cmp_len; /* RUN_CMP: compressed bytes at cbuf + cmp_off */
} Run;

typedef enum { SLOT_FREE, SLOT_QUEUED, SLOT_WORKING, SLOT_READY } SlotState;

typedef struct Chunk {
    SlotState state;
    int64_t seq;
    int64_t sector, sectors; /* target range, 512-byte sectors */
    CopyStatus status;
    bool zero_fill; /* -S 0 zero range: a buffer of zeros, not a read */
    uint8_t *buf, *cbuf;
    Run *runs;
    int n_runs, runs_alloc;
    int ret; /* read or compress error, reported by the writer */
    Error *err;
} Chunk;

typedef struct Pipeline {
    const CopyParams *p;
    CopyIter it;
    BlockDriverState *target;
    int window;
    size_t chunk_max; /* bytes per chunk buffer */
    size_t cbound;    /* compressed output room per cluster */
    size_t cbuf_size; /* bytes per compressed-output buffer */
    Chunk *slots;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* workers: a chunk was queued, or stop */
    pthread_cond_t ready_cv; /* writer: a chunk became ready */
    int64_t next_seq;        /* next chunk to dispatch */
    int64_t work_seq;        /* workers look for queued chunks from here */
    int64_t write_seq;       /* oldest chunk not yet written */
    bool dispatch_done;
    bool stop;

    /* dispatcher only */
    bool have_pending;
    int64_t pend_sectors;
    CopyStatus pend_status;
    int64_t alloc_total, alloc_done; /* bytes, for progress */

    /* writer only */
    int64_t start_ns, rate_bytes; /* rate_bytes: all bytes written so far */
    int64_t target_len;
} Pipeline;

static inline Chunk *slot_of(Pipeline *pl, int64_t seq)
{
    return &pl->slots[seq % pl->window];
}

/* ---- worker: read ---- */

/* Read [off, off+len) of one source, zero past its end; salvage per sector. */
static int read_source(Pipeline *pl, int seg, int64_t off, int64_t len, uint8_t *buf)
{
    const CopySource *src = &pl->p->src[seg];
    /* Readable bytes: up to the window's end and the image's end. */
    int64_t end = bdrv_getlength(src->bs);
    if (src->length >= 0) {
        end = MIN(end, src->offset + src->length);
    }
    off += src->offset;
    int64_t n = off < end ? MIN(len, end - off) : 0;
    if (n < len) {
        memset(buf + n, 0, (size_t)(len - n));
    }
    if (n == 0) {
        return 0;
    }
    int ret = bdrv_pread(src->bs, off, n, buf);
    if (ret >= 0 || !pl->p->salvage) {
        return ret;
    }
    for (int64_t pos = 0; pos < n; pos += 512) {
        int64_t k = MIN(512, n - pos);
        ret = bdrv_pread(src->bs, off + pos, k, buf + pos);
        if (ret < 0) {
            if (!pl->p->quiet) {
                msg_warn("error while reading offset %" PRId64 ": %s", off + pos, strerror(-ret));
            }
            memset(buf + pos, 0, (size_t)k);
        }
    }
    return 0;
}

/* Fill c->buf with the guest bytes of the chunk (may span sources). */
static int read_chunk(Pipeline *pl, Chunk *c)
{
    int64_t sector = c->sector, left = c->sectors;
    uint8_t *buf = c->buf;
    while (left > 0) {
        int64_t seg_off;
        int seg = copy_iter_segment(&pl->it, sector, &seg_off);
        int64_t n = MIN(left, seg_off + pl->it.seg_sectors[seg] - sector);
        int ret = read_source(pl, seg, (sector - seg_off) * 512, n * 512, buf);
        if (ret < 0) {
            return ret;
        }
        sector += n;
        left -= n;
        buf += n * 512;
    }
    return 0;
}

/* ---- worker: runs ---- */

static void add_run(Chunk *c, RunKind kind, int64_t bytes, size_t cmp_off, size_t cmp_len)
{
    if (c->n_runs > 0 && kind != RUN_CMP && kind != RUN_CMP_RAW &&
        c->runs[c->n_runs - 1].kind == kind) {
        c->runs[c->n_runs - 1].bytes += bytes;
        return;
    }
    if (c->n_runs == c->runs_alloc) {
        c->runs_alloc = c->runs_alloc ? 2 * c->runs_alloc : 16;
        c->runs = xrealloc(c->runs, (size_t)c->runs_alloc * sizeof(Run));
    }
    c->runs[c->n_runs++] =
        (Run){.bytes = bytes, .kind = kind, .cmp_off = cmp_off, .cmp_len = cmp_len};
}

/* Uncompressed: split into data and zero runs (qemu-img's -S rule). */
static void plan_plain(Pipeline *pl, Chunk *c)
{
    const CopyParams *p = pl->p;
    if (!p->min_sparse || p->no_zero_scan) {
        add_run(c, RUN_DATA, c->sectors * 512, 0, 0);
        return;
    }
    int64_t min = p->min_sparse / 512;
    int64_t align = 1;
    while (align * 2 <= min) {
        align *= 2;
    }
    int64_t talign = DIV_ROUND_UP((int64_t)MAX(pl->target->request_alignment, 1u), 512);
    align = MAX(align, talign);
    for (int64_t i = 0; i < c->sectors;) {
        bool data;
        int64_t n =
            copy_zero_scan(c->buf + i * 512, c->sectors - i, c->sector + i, min, align, &data);
        add_run(c, data ? RUN_DATA : RUN_ZERO, n * 512, 0, 0);
        i += n;
    }
}

/* Compressed: one run per cluster; compress in this (worker) thread. */
static int plan_compressed(Pipeline *pl, Chunk *c)
{
    BlockDriverState *bs = pl->target;
    int64_t cs = pl->it.cluster_sectors * 512;
    int64_t total = c->sectors * 512;
    for (int64_t off = 0; off < total; off += cs) {
        int64_t n = MIN(cs, total - off);
        const uint8_t *src = c->buf + off;
        size_t dst_off = (size_t)(off / cs) * pl->cbound;
        if (pl->p->min_sparse && buffer_is_zero(src, (size_t)n)) {
            add_run(c, RUN_ZERO, n, 0, 0);
            continue;
        }
        if (!bs->drv->compress) {
            add_run(c, RUN_CMP_RAW, n, 0, 0);
            continue;
        }
        ssize_t clen = bs->drv->compress(bs, c->cbuf + dst_off, pl->cbound, src, (size_t)n);
        if (clen == -ENOSPC) {
            add_run(c, RUN_DATA, n, 0, 0);
        } else if (clen < 0) {
            error_setg_errno(&c->err, (int)-clen, "error while compressing at byte %" PRId64,
                             c->sector * 512 + off);
            return (int)clen;
        } else {
            add_run(c, RUN_CMP, n, dst_off, (size_t)clen);
        }
    }
    return 0;
}

static void process_chunk(Pipeline *pl, Chunk *c)
{
    c->n_runs = 0;
    if (c->zero_fill) {
        memset(c->buf, 0, (size_t)(c->sectors * 512));
    } else {
        c->ret = read_chunk(pl, c);
        if (c->ret < 0) {
            error_setg(&c->err, "error while reading at byte %" PRId64 ": %s", c->sector * 512,
                       strerror(-c->ret));
            return;
        }
    }
    if (pl->p->compress) {
        c->ret = plan_compressed(pl, c);
    } else {
        plan_plain(pl, c);
    }
}

/* Next queued chunk for a worker, or NULL.  Called with mu held. */
static Chunk *take_work(Pipeline *pl)
{
    while (pl->work_seq < pl->next_seq) {
        Chunk *c = slot_of(pl, pl->work_seq);
        int64_t seq = pl->work_seq++;
        if (c->seq == seq && c->state == SLOT_QUEUED) {
            return c;
        }
    }
    return NULL;
}

static void *worker_main(void *opaque)
{
    Pipeline *pl = opaque;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        Chunk *c = NULL;
        while (!pl->stop && !(c = take_work(pl)) && !pl->dispatch_done) {
            pthread_cond_wait(&pl->work_cv, &pl->mu);
        }
        if (!c) {
            break;
        }
        c->state = SLOT_WORKING;
        pthread_mutex_unlock(&pl->mu);
        process_chunk(pl, c);
        pthread_mutex_lock(&pl->mu);
        c->state = SLOT_READY;
        pthread_cond_signal(&pl->ready_cv);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* ---- dispatcher ---- */

static void report_progress(Pipeline *pl, CopyStatus st, int64_t sectors)
{
    if (st == COPY_DATA || (!pl->p->min_sparse && st == COPY_ZERO)) {
        pl->alloc_done += sectors * 512;
        if (pl->p->progress && pl->alloc_total > 0) {
            pl->p->progress(pl->p->progress_opaque, pl->alloc_done, pl->alloc_total);
        }
    }
}

/* Bytes qemu-img counts as work: a dry walk, only for the progress meter. */
static int count_allocated(Pipeline *pl, Error **errp)
{
    CopyIter it;
    int ret = copy_iter_init(&it, pl->p, pl->it.cluster_sectors * 512, errp);
    if (ret < 0) {
        return ret;
    }
    CopyStatus st;
    int64_t n;
    while ((n = copy_iter_next(&it, &st, errp)) > 0) {
        if (st == COPY_DATA || (!pl->p->min_sparse && st == COPY_ZERO)) {
            pl->alloc_total += n * 512;
        }
    }
    copy_iter_release(&it);
    return n < 0 ? (int)n : 0;
}

static int next_piece(Pipeline *pl, int64_t *n, CopyStatus *st, Error **errp)
{
    if (pl->have_pending) {
        pl->have_pending = false;
        *n = pl->pend_sectors;
        *st = pl->pend_status;
        return 1;
    }
    int64_t r = copy_iter_next(&pl->it, st, errp);
    if (r <= 0) {
        return (int)r;
    }
    report_progress(pl, *st, r);
    *n = r;
    return 1;
}

/*
 * Cut the next chunk: one piece, or with compression several DATA pieces
 * (whole clusters) merged up to chunk_max so that workers get enough to
 * do per hand-off.  Returns 1, 0 at the end, or -errno.
 */
static int plan_next_chunk(Pipeline *pl, Chunk *c, Error **errp)
{
    int64_t n = 0;
    CopyStatus st = COPY_DATA;
    int ret = next_piece(pl, &n, &st, errp);
    if (ret <= 0) {
        return ret;
    }
    c->sectors = n;
    c->status = st;
    int64_t max_sectors = (int64_t)pl->chunk_max / 512;
    while (pl->p->compress && st == COPY_DATA && c->sectors < max_sectors) {
        CopyStatus st2;
        int64_t n2 = copy_iter_next(&pl->it, &st2, errp);
        if (n2 < 0) {
            return (int)n2;
        }
        if (n2 == 0) {
            break;
        }
        report_progress(pl, st2, n2);
        if (st2 != COPY_DATA || c->sectors + n2 > max_sectors) {
            pl->have_pending = true;
            pl->pend_sectors = n2;
            pl->pend_status = st2;
            break;
        }
        c->sectors += n2;
    }
    return 1;
}

/* Does the chunk need a worker (a read, zero scan or compression)? */
static bool needs_work(Pipeline *pl, Chunk *c)
{
    c->zero_fill = false;
    if (c->status == COPY_DATA) {
        return true;
    }
    if (c->status == COPY_ZERO && !pl->p->min_sparse) {
        c->zero_fill = true; /* -S 0: zeros are written as data */
        return true;
    }
    return false;
}

static void alloc_buffers(Pipeline *pl, Chunk *c)
{
    if (!c->buf) {
        c->buf = xmemalign(4096, pl->chunk_max);
    }
    if (pl->p->compress && !c->cbuf) {
        c->cbuf = xmalloc(pl->cbuf_size);
    }
}

/* Fill the window.  Called and returns with mu held. */
static int dispatch(Pipeline *pl, Error **errp)
{
    while (!pl->dispatch_done && !pl->stop && pl->next_seq - pl->write_seq < pl->window) {
        Chunk *c = slot_of(pl, pl->next_seq);
        /* The start sector is the iterator's position before the piece. */
        int64_t start = pl->it.sector;
        if (pl->have_pending) {
            start -= pl->pend_sectors;
        }
        pthread_mutex_unlock(&pl->mu);
        int ret = plan_next_chunk(pl, c, errp);
        c->sector = start;
        bool work = ret > 0 && needs_work(pl, c);
        if (work) {
            alloc_buffers(pl, c);
        }
        pthread_mutex_lock(&pl->mu);
        if (ret <= 0) {
            pl->dispatch_done = true;
            pthread_cond_broadcast(&pl->work_cv);
            return ret;
        }
        c->seq = pl->next_seq++;
        c->ret = 0;
        c->n_runs = 0;
        c->state = work ? SLOT_QUEUED : SLOT_READY;
        if (work) {
            pthread_cond_signal(&pl->work_cv);
        }
    }
    return 0;
}

/* ---- writer ---- */

static int write_compressed_cluster(BlockDriverState *bs, int64_t offset, const void *data,
                                    size_t len)
{
    /* The block layer's bdrv_pwrite_compressed() compresses too; the
     * pipeline has done that in a worker, so it calls the driver's second
     * half itself, serialised as the block layer would. */
    bool serialize = bs->drv->thread_model == THREAD_MODEL_SERIALIZE;
    if (serialize) {
        pthread_mutex_lock(&bs->lock);
    }
    int ret = bs->drv->write_compressed(bs, offset, data, len);
    if (serialize) {
        pthread_mutex_unlock(&bs->lock);
    }
    return ret;
}

static void throttle(Pipeline *pl, int64_t bytes)
{
    pl->rate_bytes += bytes;
    if (!pl->p->rate_limit || bytes <= 0) {
        return;
    }
    double due_ns = (double)pl->rate_bytes * 1e9 / (double)pl->p->rate_limit;
    int64_t wait = (int64_t)due_ns - (clock_ns() - pl->start_ns);
    if (wait > 0) {
        struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        nanosleep(&ts, NULL);
    }
}

static int write_zero_range(Pipeline *pl, int64_t offset, int64_t bytes)
{
    if (pl->p->target_zero_init) {
        return 0;
    }
    throttle(pl, bytes);
    return bdrv_pwrite_zeroes(pl->target, offset, bytes, BDRV_REQ_MAY_UNMAP);
}

static int write_run(Pipeline *pl, Chunk *c, const Run *r, int64_t pos)
{
    int64_t offset = c->sector * 512 + pos;
    /* The sector padding past a target of odd byte size is not written. */
    int64_t bytes = MIN(r->bytes, MAX(pl->target_len - offset, 0));
    if (bytes <= 0) {
        return 0;
    }
    switch (r->kind) {
    case RUN_DATA: throttle(pl, bytes); return bdrv_pwrite(pl->target, offset, bytes, c->buf + pos);
    case RUN_ZERO: return write_zero_range(pl, offset, bytes);
    case RUN_CMP:
        throttle(pl, r->bytes);
        return write_compressed_cluster(pl->target, offset, c->cbuf + r->cmp_off, r->cmp_len);
    case RUN_CMP_RAW:
        throttle(pl, r->bytes);
        return write_compressed_cluster(pl->target, offset, c->buf + pos, (size_t)r->bytes);
    }
    return -EINVAL;
}

static int write_chunk(Pipeline *pl, Chunk *c, Error **errp)
{
    if (c->ret < 0) {
        error_propagate(errp, c->err);
        c->err = NULL;
        return c->ret;
    }
    int ret = 0;
    if (c->status == COPY_ZERO && !c->zero_fill) {
        int64_t bytes = MIN(c->sectors * 512, pl->target_len - c->sector * 512);
        ret = bytes > 0 ? write_zero_range(pl, c->sector * 512, bytes) : 0;
    } else if (c->status != COPY_BACKING) {
        int64_t pos = 0;
        for (int i = 0; i < c->n_runs && ret >= 0; i++) {
            ret = write_run(pl, c, &c->runs[i], pos);
            pos += c->runs[i].bytes;
        }
    }
    if (ret < 0) {
        error_setg(errp, "error while writing at byte %" PRId64 ": %s", c->sector * 512,
                   strerror(-ret));
    } else if (pl->p->written) {
        pl->p->written(pl->p->written_opaque, pl->rate_bytes);
    }
    return ret;
}

/* The chunk to write next, or NULL if it is not ready.  mu held. */
static Chunk *pick_ready(Pipeline *pl)
{
    if (!pl->p->out_of_order) {
        Chunk *c = slot_of(pl, pl->write_seq);
        return c->seq == pl->write_seq && c->state == SLOT_READY ? c : NULL;
    }
    for (int64_t s = pl->write_seq; s < pl->next_seq; s++) {
        Chunk *c = slot_of(pl, s);
        if (c->seq == s && c->state == SLOT_READY) {
            return c;
        }
    }
    return NULL;
}

static void retire(Pipeline *pl, Chunk *c)
{
    c->state = SLOT_FREE;
    while (pl->write_seq < pl->next_seq) {
        Chunk *o = slot_of(pl, pl->write_seq);
        if (o->seq == pl->write_seq && o->state != SLOT_FREE) {
            break;
        }
        pl->write_seq++;
    }
}

static int run_loop(Pipeline *pl, Error **errp)
{
    int ret = 0;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        ret = dispatch(pl, errp);
        if (ret < 0) {
            break;
        }
        if (pl->dispatch_done && pl->write_seq == pl->next_seq) {
            break;
        }
        Chunk *c = pick_ready(pl);
        if (!c) {
            pthread_cond_wait(&pl->ready_cv, &pl->mu);
            continue;
        }
        pthread_mutex_unlock(&pl->mu);
        ret = write_chunk(pl, c, errp);
        pthread_mutex_lock(&pl->mu);
        retire(pl, c);
        if (ret < 0) {
            break;
        }
    }
    pl->stop = true;
    pthread_cond_broadcast(&pl->work_cv);
    pthread_mutex_unlock(&pl->mu);
    return ret;
}

/* ---- setup ---- */

static void size_window(Pipeline *pl)
{
    const CopyParams *p = pl->p;
    size_t cs = (size_t)pl->it.cluster_sectors * 512;
    pl->chunk_max = COPY_CHUNK_MAX;
    if (p->compress) {
        /* Several clusters per hand-off, at least one. */
        pl->chunk_max = MAX(cs, (size_t)1 * MiB);
        pl->chunk_max = ROUND_DOWN(pl->chunk_max, cs);
    }
    if (p->compress) {
        BlockDriverState *bs = p->target;
        pl->cbound = bs->drv->compress_bound ? bs->drv->compress_bound(bs, cs) : cs;
        pl->cbound = MAX(pl->cbound, cs);
        pl->cbuf_size = pl->chunk_max / cs * pl->cbound;
    }
    size_t per_slot = pl->chunk_max + pl->cbuf_size;
    int window = MAX(p->max_inflight, 1);
    window = MAX(window, MIN(p->threads, COPY_MAX_THREADS) + 1);
    window = MIN(window, COPY_MAX_INFLIGHT);
    window = MIN(window, (int)MAX(COPY_MEM_BUDGET / per_slot, 2));
    pl->window = window;
}

static void free_slots(Pipeline *pl)
{
    for (int i = 0; pl->slots && i < pl->window; i++) {
        free(pl->slots[i].buf);
        free(pl->slots[i].cbuf);
        free(pl->slots[i].runs);
        error_free(pl->slots[i].err);
    }
    free(pl->slots);
}

int copy_pipeline_run(const CopyParams *p, Error **errp)
{
    Pipeline pl = {.p = p, .target = p->target};
    int cs = p->compress ? bdrv_get_cluster_size(p->target) : 0;
    int ret = copy_iter_init(&pl.it, p, cs, errp);
    if (ret < 0) {
        return ret;
    }
    if (p->progress && (ret = count_allocated(&pl, errp)) < 0) {
        copy_iter_release(&pl.it);
        return ret;
    }
    pl.it.split_zero = !p->min_sparse;
    size_window(&pl);
    pl.slots = XNEWV(Chunk, (size_t)pl.window);
    for (int i = 0; i < pl.window; i++) {
        pl.slots[i].seq = -1;
    }
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.work_cv, NULL);
    pthread_cond_init(&pl.ready_cv, NULL);
    pl.start_ns = clock_ns();
    pl.target_len = bdrv_getlength(p->target);

    int nthreads = MIN(MAX(p->threads, 1), COPY_MAX_THREADS);
    nthreads = MIN(nthreads, pl.window);
    pthread_t *tids = XNEWV(pthread_t, (size_t)nthreads);
    int started = 0;
    for (; started < nthreads; started++) {
        if (pthread_create(&tids[started], NULL, worker_main, &pl) != 0) {
            break;
        }
    }
    if (started == 0) {
        error_setg(errp, "cannot start worker threads");
        ret = -EAGAIN;
    } else {
        ret = run_loop(&pl, errp);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    free(tids);
    pthread_cond_destroy(&pl.ready_cv);
    pthread_cond_destroy(&pl.work_cv);
    pthread_mutex_destroy(&pl.mu);
    free_slots(&pl);
    copy_iter_release(&pl.it);
    return ret;
}
