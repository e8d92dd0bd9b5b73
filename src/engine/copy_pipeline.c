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
 *  6. Chunks are byte ranges of the target.  Convert's and commit's come
 *     from the sector walk (copy_iter.c) and are whole sectors; rebase's
 *     come from its own walk and end where the backing files end.
 *  7. In the in-place modes (commit, rebase) the target is also part of
 *     what is read: commit reads top's layers above the base it writes,
 *     rebase reads the backing files below the overlay it writes.  A
 *     piece is only ever read from layers the writer does not touch, so
 *     workers and writer never meet on the same bytes.
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
    RUN_SKIP,    /* rebase: the views agree, nothing to write */
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
    int64_t offset, bytes; /* target range */
    CopyStatus status;
    bool worked;                /* a worker filled `runs`; else a ZERO or BACKING chunk */
    bool zero_fill;             /* -S 0 zero range: a buffer of zeros, not a read */
    int64_t work;               /* progress units (in-place modes: reported when written) */
    uint8_t *buf, *buf2, *cbuf; /* buf2: rebase's new view */
    Run *runs;
    int n_runs, runs_alloc;
    int ret; /* read or compress error, reported by the writer */
    Error *err;
} Chunk;

/* A piece of the walk, before it becomes (part of) a chunk. */
typedef struct Piece {
    int64_t offset, bytes;
    CopyStatus st;
} Piece;

typedef struct Pipeline {
    const CopyParams *p;
    CopyIter it; /* convert and commit */
    BlockDriverState *target;
    int window;
    size_t chunk_max; /* bytes per chunk buffer */
    size_t cbound;    /* compressed output room per cluster */
    size_t cbuf_size; /* bytes per compressed-output buffer */
    int64_t cluster;  /* target cluster size, bytes (compression) */
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
    Piece pending;
    int64_t rebase_pos, rebase_end;  /* rebase's walk, bytes */
    int64_t alloc_total, alloc_done; /* progress units */

    /* writer only */
    int64_t start_ns, rate_bytes; /* rate_bytes: all bytes written so far */
    int64_t target_len;
} Pipeline;

static inline Chunk *slot_of(Pipeline *pl, int64_t seq)
{
    return &pl->slots[seq % pl->window];
}

static inline bool in_place(const CopyParams *p)
{
    return p->mode != COPY_MODE_CONVERT;
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
    int64_t sector = c->offset / 512, left = c->bytes / 512;
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

/* Rebase: [off, +len) of a backing view (NULL: none), zeros past its end. */
static int read_view(BlockDriverState *bs, int64_t off, int64_t len, uint8_t *buf)
{
    int64_t end = bs ? bdrv_getlength(bs) : 0;
    int64_t n = off < end ? MIN(len, end - off) : 0;
    memset(buf + n, 0, (size_t)(len - n));
    return n > 0 ? bdrv_pread(bs, off, n, buf) : 0;
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
    if (!p->min_sparse || p->no_zero_scan || p->mode == COPY_MODE_COMMIT) {
        add_run(c, RUN_DATA, c->bytes, 0, 0);
        return;
    }
    int64_t min = p->min_sparse / 512;
    int64_t align = 1;
    while (align * 2 <= min) {
        align *= 2;
    }
    int64_t talign = DIV_ROUND_UP((int64_t)MAX(pl->target->request_alignment, 1u), 512);
    align = MAX(align, talign);
    int64_t sectors = c->bytes / 512;
    for (int64_t i = 0; i < sectors;) {
        bool data;
        int64_t n =
            copy_zero_scan(c->buf + i * 512, sectors - i, c->offset / 512 + i, min, align, &data);
        add_run(c, data ? RUN_DATA : RUN_ZERO, n * 512, 0, 0);
        i += n;
    }
}

/*
 * One cluster (or its tail at the image's end) compressed into cbuf at
 * dst_off: a RUN_CMP, or RUN_DATA when it does not shrink, or RUN_CMP_RAW
 * when the driver compresses in write_compressed() itself.
 */
static int compress_run(Pipeline *pl, Chunk *c, const uint8_t *src, int64_t n, size_t dst_off)
{
    BlockDriverState *bs = pl->target;
    if (!bs->drv->compress) {
        add_run(c, RUN_CMP_RAW, n, 0, 0);
        return 0;
    }
    ssize_t clen = bs->drv->compress(bs, c->cbuf + dst_off, pl->cbound, src, (size_t)n);
    if (clen == -ENOSPC) {
        add_run(c, RUN_DATA, n, 0, 0);
        return 0;
    }
    if (clen < 0) {
        return (int)clen;
    }
    add_run(c, RUN_CMP, n, dst_off, (size_t)clen);
    return 0;
}

/* Compressed: one run per cluster; compress in this (worker) thread. */
static int plan_compressed(Pipeline *pl, Chunk *c)
{
    int64_t cs = pl->cluster;
    for (int64_t off = 0; off < c->bytes; off += cs) {
        int64_t n = MIN(cs, c->bytes - off);
        const uint8_t *src = c->buf + off;
        if (pl->p->min_sparse && buffer_is_zero(src, (size_t)n)) {
            add_run(c, RUN_ZERO, n, 0, 0);
            continue;
        }
        int ret = compress_run(pl, c, src, n, (size_t)(off / cs) * pl->cbound);
        if (ret < 0) {
            error_setg_errno(&c->err, -ret, "error while compressing at byte %" PRId64,
                             c->offset + off);
            return ret;
        }
    }
    return 0;
}

/* Rebase: write the old view's sectors that differ from the new view's. */
static void plan_rebase(Chunk *c)
{
    RunKind write = c->status == COPY_ZERO ? RUN_ZERO : RUN_DATA;
    for (int64_t pos = 0; pos < c->bytes;) {
        bool differ;
        int64_t n = copy_compare_run(c->buf + pos, c->buf2 + pos, c->bytes - pos, &differ);
        add_run(c, differ ? write : RUN_SKIP, n, 0, 0);
        pos += n;
    }
}

/*
 * Rebase -c: every target cluster the piece touches that holds a
 * differing sector is written — compressed when it lies whole in the
 * piece (or ends at the image's end) and is not all zeros, else plainly
 * (zeros as write_zeroes).
 */
static int plan_rebase_compressed(Pipeline *pl, Chunk *c)
{
    int64_t cs = pl->cluster, end = c->offset + c->bytes;
    size_t slot = 0;
    for (int64_t cl = ROUND_DOWN(c->offset, cs); cl < end; cl += cs) {
        int64_t s = MAX(cl, c->offset), e = MIN(cl + cs, end);
        const uint8_t *data = c->buf + (s - c->offset);
        int64_t n = e - s;
        if (!memcmp(data, c->buf2 + (s - c->offset), (size_t)n)) {
            add_run(c, RUN_SKIP, n, 0, 0);
            continue;
        }
        bool whole = s == cl && (e == cl + cs || e == pl->target_len);
        bool zero = buffer_is_zero(data, (size_t)n);
        if (!whole || zero) {
            add_run(c, zero ? RUN_ZERO : RUN_DATA, n, 0, 0);
            continue;
        }
        int ret = compress_run(pl, c, data, n, slot++ * pl->cbound);
        if (ret < 0) {
            error_setg_errno(&c->err, -ret, "Error while writing to COW image");
            return ret;
        }
    }
    return 0;
}

static void process_rebase(Pipeline *pl, Chunk *c)
{
    const CopyRebase *rb = pl->p->rebase;
    int ret = 0;
    if (c->status == COPY_ZERO) {
        memset(c->buf, 0, (size_t)c->bytes); /* past the old backing's end */
    } else {
        ret = read_view(rb->old_backing, c->offset, c->bytes, c->buf);
    }
    if (ret < 0) {
        error_setg(&c->err, "error while reading from old backing file");
        c->ret = ret;
        return;
    }
    if ((ret = read_view(rb->new_backing, c->offset, c->bytes, c->buf2)) < 0) {
        error_setg(&c->err, "error while reading from new backing file");
        c->ret = ret;
        return;
    }
    if (pl->p->compress) {
        c->ret = plan_rebase_compressed(pl, c);
    } else {
        plan_rebase(c);
    }
}

static void process_chunk(Pipeline *pl, Chunk *c)
{
    c->n_runs = 0;
    if (pl->p->mode == COPY_MODE_REBASE) {
        process_rebase(pl, c);
        return;
    }
    if (c->zero_fill) {
        memset(c->buf, 0, (size_t)c->bytes);
    } else {
        c->ret = read_chunk(pl, c);
        if (c->ret < 0) {
            if (pl->p->mode == COPY_MODE_COMMIT) {
                error_setg_errno(&c->err, -c->ret, "Could not read from '%s'",
                                 pl->p->src[0].bs->filename);
            } else {
                error_setg(&c->err, "error while reading at byte %" PRId64 ": %s", c->offset,
                           strerror(-c->ret));
            }
            return;
        }
    }
    if (pl->p->compress && pl->p->mode == COPY_MODE_CONVERT) {
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

/* Progress units of a piece (see CopyMode for what each mode counts). */
static int64_t piece_work(const CopyParams *p, CopyStatus st, int64_t bytes)
{
    switch (p->mode) {
    case COPY_MODE_REBASE: return st != COPY_BACKING;
    case COPY_MODE_COMMIT: return st != COPY_BACKING ? bytes : 0;
    case COPY_MODE_CONVERT: break;
    }
    return st == COPY_DATA || (!p->min_sparse && st == COPY_ZERO) ? bytes : 0;
}

static void report_progress(Pipeline *pl, int64_t work)
{
    pl->alloc_done += work;
    if (work > 0 && pl->p->progress && pl->alloc_total > 0) {
        pl->p->progress(pl->p->progress_opaque, pl->alloc_done, pl->alloc_total);
    }
}

/* The total for the progress meter; for convert and commit a dry walk. */
static int count_work(Pipeline *pl, Error **errp)
{
    if (pl->p->mode == COPY_MODE_REBASE) {
        /* qemu-img 7.2: 100% / (size / MIN(size, IO_BUF_SIZE)) per step */
        int64_t size = pl->rebase_end;
        pl->alloc_total = size > 0 ? size / MIN(size, (int64_t)COPY_CHUNK_MAX) : 0;
        return 0;
    }
    CopyIter it;
    int ret = copy_iter_init(&it, pl->p, pl->it.cluster_sectors * 512, errp);
    if (ret < 0) {
        return ret;
    }
    CopyStatus st;
    int64_t n;
    while ((n = copy_iter_next(&it, &st, errp)) > 0) {
        pl->alloc_total += piece_work(pl->p, st, n * 512);
    }
    copy_iter_release(&it);
    return n < 0 ? (int)n : 0;
}

/* The next piece of the walk: 1, 0 at the end, or -errno. */
static int pull_piece(Pipeline *pl, Piece *pc, Error **errp)
{
    if (pl->p->mode == COPY_MODE_REBASE) {
        if (pl->rebase_pos >= pl->rebase_end) {
            return 0;
        }
        int64_t n = copy_rebase_next(pl->p, pl->rebase_pos, &pc->st, errp);
        if (n < 0) {
            return (int)n;
        }
        pc->offset = pl->rebase_pos;
        pc->bytes = n;
        pl->rebase_pos += n;
        return 1;
    }
    pc->offset = pl->it.sector * 512;
    int64_t r = copy_iter_next(&pl->it, &pc->st, errp);
    if (r <= 0) {
        return (int)r;
    }
    pc->bytes = r * 512;
    if (!in_place(pl->p)) {
        report_progress(pl, piece_work(pl->p, pc->st, pc->bytes)); /* as it is cut */
    }
    return 1;
}

/*
 * Cut the next chunk: one piece, or with convert's compression several
 * DATA pieces (whole clusters) merged up to chunk_max so that workers get
 * enough to do per hand-off.  Returns 1, 0 at the end, or -errno.
 */
static int plan_next_chunk(Pipeline *pl, Chunk *c, Error **errp)
{
    Piece pc;
    if (pl->have_pending) {
        pl->have_pending = false;
        pc = pl->pending;
    } else {
        int ret = pull_piece(pl, &pc, errp);
        if (ret <= 0) {
            return ret;
        }
    }
    c->offset = pc.offset;
    c->bytes = pc.bytes;
    c->status = pc.st;
    bool merge = pl->p->compress && pl->p->mode == COPY_MODE_CONVERT;
    while (merge && c->status == COPY_DATA && c->bytes < (int64_t)pl->chunk_max) {
        Piece nx;
        int ret = pull_piece(pl, &nx, errp);
        if (ret < 0) {
            return ret;
        }
        if (ret == 0) {
            break;
        }
        if (nx.st != COPY_DATA || c->bytes + nx.bytes > (int64_t)pl->chunk_max) {
            pl->have_pending = true;
            pl->pending = nx;
            break;
        }
        c->bytes += nx.bytes;
    }
    c->work = piece_work(pl->p, c->status, c->bytes);
    return 1;
}

/* Does the chunk need a worker (a read, zero scan, compare or compression)? */
static bool needs_work(Pipeline *pl, Chunk *c)
{
    c->zero_fill = false;
    switch (pl->p->mode) {
    case COPY_MODE_REBASE: return c->status != COPY_BACKING;
    case COPY_MODE_COMMIT: return c->status == COPY_DATA;
    case COPY_MODE_CONVERT: break;
    }
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
    if (pl->p->mode == COPY_MODE_REBASE && !c->buf2) {
        c->buf2 = xmemalign(4096, pl->chunk_max);
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
        pthread_mutex_unlock(&pl->mu);
        int ret = plan_next_chunk(pl, c, errp);
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
        c->worked = work;
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
    switch (pl->p->mode) {
    case COPY_MODE_COMMIT: /* the mirror job's rate limit ignores zeros */
        return bdrv_pwrite_zeroes(pl->target, offset, bytes, BDRV_REQ_MAY_UNMAP);
    case COPY_MODE_REBASE: /* qemu-img rebase zeroes without unmapping */
        return bdrv_pwrite_zeroes(pl->target, offset, bytes, 0);
    case COPY_MODE_CONVERT: break;
    }
    if (pl->p->target_zero_init) {
        return 0;
    }
    throttle(pl, bytes);
    return bdrv_pwrite_zeroes(pl->target, offset, bytes, BDRV_REQ_MAY_UNMAP);
}

static int write_run(Pipeline *pl, Chunk *c, const Run *r, int64_t pos)
{
    int64_t offset = c->offset + pos;
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
    case RUN_SKIP: return 0;
    }
    return -EINVAL;
}

/* The command's words for a failed write of a run of `kind`. */
static void write_error(Pipeline *pl, const Chunk *c, RunKind kind, int ret, Error **errp)
{
    switch (pl->p->mode) {
    case COPY_MODE_COMMIT:
        error_setg_errno(errp, -ret,
                         kind == RUN_ZERO ? "Could not write zeroes to the base image"
                                          : "Could not write to the base image");
        return;
    case COPY_MODE_REBASE: error_setg_errno(errp, -ret, "Error while writing to COW image"); return;
    case COPY_MODE_CONVERT: break;
    }
    error_setg(errp, "error while writing at byte %" PRId64 ": %s", c->offset, strerror(-ret));
}

static int write_chunk(Pipeline *pl, Chunk *c, Error **errp)
{
    if (c->ret < 0) {
        error_propagate(errp, c->err);
        c->err = NULL;
        return c->ret;
    }
    int ret = 0;
    RunKind kind = RUN_ZERO;
    if (c->status == COPY_ZERO && !c->worked) {
        int64_t bytes = MIN(c->bytes, pl->target_len - c->offset);
        ret = bytes > 0 ? write_zero_range(pl, c->offset, bytes) : 0;
    } else if (c->status != COPY_BACKING) {
        int64_t pos = 0;
        for (int i = 0; i < c->n_runs && ret >= 0; i++) {
            kind = c->runs[i].kind;
            ret = write_run(pl, c, &c->runs[i], pos);
            pos += c->runs[i].bytes;
        }
    }
    if (ret < 0) {
        write_error(pl, c, kind, ret, errp);
        return ret;
    }
    if (pl->p->written) {
        pl->p->written(pl->p->written_opaque, pl->rate_bytes);
    }
    if (in_place(pl->p)) {
        report_progress(pl, c->work); /* as it is written */
    }
    return 0;
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
    size_t cs = (size_t)pl->cluster;
    pl->chunk_max = COPY_CHUNK_MAX;
    if (p->compress && p->mode == COPY_MODE_CONVERT) {
        /* Several clusters per hand-off, at least one. */
        pl->chunk_max = MAX(cs, (size_t)1 * MiB);
        pl->chunk_max = ROUND_DOWN(pl->chunk_max, cs);
    }
    size_t per_slot = pl->chunk_max;
    if (p->compress) {
        BlockDriverState *bs = p->target;
        pl->cbound = bs->drv->compress_bound ? bs->drv->compress_bound(bs, cs) : cs;
        pl->cbound = MAX(pl->cbound, cs);
        /* a rebase piece need not start on a cluster: one more */
        size_t clusters = pl->chunk_max / cs + (p->mode == COPY_MODE_REBASE ? 2 : 0);
        pl->cbuf_size = clusters * pl->cbound;
        per_slot += pl->cbuf_size;
    }
    if (p->mode == COPY_MODE_REBASE) {
        per_slot += pl->chunk_max; /* the new view */
    }
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
        free(pl->slots[i].buf2);
        free(pl->slots[i].cbuf);
        free(pl->slots[i].runs);
        error_free(pl->slots[i].err);
    }
    free(pl->slots);
}

/* The walk's state and the target cluster size for compression. */
static int pipeline_init(Pipeline *pl, Error **errp)
{
    const CopyParams *p = pl->p;
    int64_t cs = p->compress ? bdrv_get_cluster_size(p->target) : 0;
    if (p->mode == COPY_MODE_REBASE) {
        if (p->n_src != 1 || !p->rebase) {
            error_setg(errp, "rebase copy needs one source and its backing views");
            return -EINVAL;
        }
        /* no sector walk: copy_rebase_next() cuts the pieces */
        pl->rebase_end = bdrv_getlength(p->src[0].bs);
        pl->cluster = cs > 0 ? cs : 65536;
        return 0;
    }
    pl->cluster = cs;
    return copy_iter_init(&pl->it, p, cs, errp);
}

static int start_and_run(Pipeline *pl, Error **errp)
{
    int nthreads = MIN(MAX(pl->p->threads, 1), COPY_MAX_THREADS);
    nthreads = MIN(nthreads, pl->window);
    pthread_t *tids = XNEWV(pthread_t, (size_t)nthreads);
    int started = 0, ret;
    for (; started < nthreads; started++) {
        if (pthread_create(&tids[started], NULL, worker_main, pl) != 0) {
            break;
        }
    }
    if (started == 0) {
        error_setg(errp, "cannot start worker threads");
        ret = -EAGAIN;
    } else {
        ret = run_loop(pl, errp);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    free(tids);
    return ret;
}

int copy_pipeline_run(const CopyParams *p, Error **errp)
{
    Pipeline pl = {.p = p, .target = p->target};
    int ret = pipeline_init(&pl, errp);
    if (ret < 0) {
        return ret;
    }
    if (p->progress && (ret = count_work(&pl, errp)) < 0) {
        copy_iter_release(&pl.it);
        return ret;
    }
    pl.it.split_zero = p->mode == COPY_MODE_CONVERT && !p->min_sparse;
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
    ret = start_and_run(&pl, errp);
    pthread_cond_destroy(&pl.ready_cv);
    pthread_cond_destroy(&pl.work_cv);
    pthread_mutex_destroy(&pl.mu);
    free_slots(&pl);
    copy_iter_release(&pl.it);
    return ret;
}
