/*
 * copy_pipeline.h — the parallel copy engine behind convert, dd, commit
 * and rebase: copy the guest content of one or more source images,
 * concatenated, into a target image (or, for commit and rebase, copy
 * within a backing chain: see CopyMode).
 *
 * Shape (DESIGN.md, "Data path"):
 *
 *   dispatcher (calling thread)   walks the sources with block status and
 *                                 cuts the address space into chunks, in
 *                                 order: DATA (must be read), ZERO (reads as
 *                                 zero), BACKING (leave unallocated);
 *   workers (p->threads)          read DATA chunks, find zero runs inside
 *                                 them, compress clusters (the driver's pure
 *                                 compress() slot) — all in parallel;
 *   writer (calling thread)       writes finished chunks strictly in address
 *                                 order, so that a format's allocator hands
 *                                 out the same host offsets whatever the
 *                                 thread count: the output is bit-identical
 *                                 for any threads / max_inflight.
 *
 * Memory is bounded: at most max_inflight chunks exist at once, each with a
 * read buffer of at most COPY_CHUNK_MAX bytes (plus as much for compressed
 * output); the window shrinks if that would pass COPY_MEM_BUDGET.  Holes
 * and zero ranges that block status reports are never read.
 *
 * The chunking follows qemu-img convert's (convert_iteration_sectors in
 * qemu-img.c: same block-status splits, same source-alignment trimming,
 * same 2 MiB buffer, one cluster per compressed write), and so does the
 * zero detection inside data chunks (-S: zero runs shorter than min_sparse
 * inside data are written as data, run ends aligned to the target), so
 * the target gets the same allocation qemu-img would give it and the
 * progress meter moves in the same steps.
 *
 * Three modes share the machinery (CopyMode): convert's copy above, and
 * the two in-place copies of commit and rebase, which differ only in what
 * the dispatcher cuts, what a worker computes and what the writer is told
 * to write (see CopyMode).  In every mode the writer is the only thread
 * that writes, in address order.
 */
#ifndef IMGPIPE_ENGINE_COPY_PIPELINE_H
#define IMGPIPE_ENGINE_COPY_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "blocklayer/block_int.h"
#include "common/error.h"

#define COPY_CHUNK_MAX    (2 * 1024 * 1024)  /* qemu-img's IO_BUF_SIZE */
#define COPY_MEM_BUDGET   (40 * 1024 * 1024) /* chunk buffers, all slots together */
#define COPY_MAX_INFLIGHT 64
#define COPY_MAX_THREADS  64

/*
 * What the pipeline copies.  The default (0) is convert.
 *
 * COPY_MODE_COMMIT (qemu-img commit, whose block job is qemu's mirror):
 *   one source, src[0] = {top, base}, the target is base itself (in top's
 *   chain, opened writable, already grown to top's length).  Only what
 *   the layers above base allocate is copied: data verbatim (no zero
 *   scan: qemu's mirror writes data clusters as data even when they hold
 *   zeros), allocated zeros as write_zeroes(MAY_UNMAP); the rest is left
 *   alone.  Set target_has_backing (so that unallocated ranges are
 *   skipped) and target_backing_length = -1; min_sparse, compress,
 *   no_zero_scan and target_zero_init are ignored.  -r (rate_limit)
 *   counts data bytes only, as the mirror job's rate limit does.
 *   Progress: (bytes done, bytes allocated above base), data and zeros,
 *   reported by the writer after each chunk is written.
 *
 * COPY_MODE_REBASE (qemu-img 7.2 rebase, safe mode): one source, src[0] =
 *   the overlay, which is also the target; `rebase` names the old and new
 *   backing views.  The walk is qemu-img's loop (copy_rebase_next()): in
 *   2 MiB steps, the ranges the overlay does not allocate (and, with a
 *   prefix, that some layer between the overlay's backing and the prefix
 *   allocates), cut at the ends of the old and new backing files.  Workers
 *   read both views and compare them sector by sector (512 bytes from the
 *   start of each piece, as qemu's compare_buffers()); the writer writes
 *   the old view's differing sectors into the overlay verbatim, or as
 *   write_zeroes (flags 0) past the old backing's end.  With compress,
 *   every overlay cluster holding a differing sector that lies whole in
 *   the piece is written compressed (compressed in the worker), others
 *   plainly.  min_sparse and the like are ignored; no rate limit.
 *   Progress: (pieces compared, size / MIN(size, 2 MiB)) — qemu-img 7.2's
 *   meter, which advances one step per compared piece and is capped at
 *   100% by the caller — reported by the writer.
 *
 * In both in-place modes the errors carry qemu-img's (or imgpipe's
 * existing) texts for the command instead of convert's.
 */
typedef enum {
    COPY_MODE_CONVERT = 0,
    COPY_MODE_COMMIT,
    COPY_MODE_REBASE,
} CopyMode;

/* COPY_MODE_REBASE: the two views compared (reads past their ends give zeros). */
typedef struct CopyRebase {
    BlockDriverState *old_backing; /* the overlay's current backing, NULL: none */
    BlockDriverState *new_backing; /* NULL: none (rebase -b "") */
    /* new_backing found in the overlay's own chain, or NULL: then only
     * what a layer above it allocates can differ. */
    BlockDriverState *prefix;
} CopyRebase;

/* One source segment.  Segments are concatenated in array order. */
typedef struct CopySource {
    BlockDriverState *bs;
    /* Block status is asked above this node (NULL: the whole chain).  With
     * target_has_backing, convert passes bs->backing so that what the
     * source's own layer does not allocate stays unallocated in the target. */
    BlockDriverState *base;
    /* Name for salvage warnings (may be NULL). */
    const char *name;
    /* The window of bs that is copied: `length` bytes from byte `offset`
     * (dd's skip=/count=); length < 0 means to the end.  Bytes past the
     * end of bs read as zeros.  Convert uses {0, -1}. */
    int64_t offset;
    int64_t length;
} CopySource;

typedef struct CopyParams {
    CopyMode mode;
    const CopyRebase *rebase; /* COPY_MODE_REBASE only */
    const CopySource *src;
    int n_src;
    BlockDriverState *target;

    bool compress;         /* write DATA clusters compressed (needs write_compressed) */
    int64_t min_sparse;    /* bytes (multiple of 512); 0: -S 0, write every byte */
    bool no_zero_scan;     /* DATA chunks are written whole (copy offloading, -C) */
    bool target_zero_init; /* target reads as zero: skip writing zeros */
    bool target_has_backing;
    int64_t target_backing_length; /* bytes, < 0 if unknown */
    bool out_of_order;             /* -W: write chunks as they finish (not reproducible) */
    bool salvage;                  /* read errors become zeros, with a warning */
    bool quiet;                    /* no salvage warnings */
    int threads;                   /* worker threads, >= 1 */
    int max_inflight;              /* chunks in flight, >= 1 */
    int64_t rate_limit;            /* write bytes per second, 0: unlimited */

    /* Progress: called from the calling thread with (done, total) in bytes
     * of "allocated" data, the way qemu-img counts it (the in-place modes:
     * see CopyMode).  May be NULL. */
    ProgressFn progress;
    void *progress_opaque;
    /* Called by the writer (calling thread) after each chunk with the bytes
     * written so far; convert uses it to start write-back early so that the
     * final fsync has little left to do.  May be NULL. */
    void (*written)(void *opaque, int64_t bytes);
    void *written_opaque;
} CopyParams;

/*
 * Copy.  The sources are counted in whole 512-byte sectors (as qemu
 * does); the part of the last sector past the target's end is not
 * written, so a target of the exact byte size works too.  Returns 0, or
 * -errno with *errp set to qemu-img's text ("error while reading at byte
 * N: ...", "error while writing at byte N: ...").  Progress reaches the
 * total only on success.  Salvage warnings go through msg_warn().
 */
int copy_pipeline_run(const CopyParams *p, Error **errp);

/* ---- pure pieces, exposed for unit tests ---- */

typedef enum {
    COPY_DATA,    /* read the source, write what is not zero */
    COPY_ZERO,    /* the source reads as zero here */
    COPY_BACKING, /* leave unallocated: the target's backing file shows through */
} CopyStatus;

/*
 * The dispatcher's walk over the concatenated sources, in 512-byte
 * sectors.  copy_iter_next() returns the length in sectors of the next
 * piece (> 0) and its status in *st, 0 at the end, or -errno (block
 * status failed; *errp set).  The walk is deterministic: the same sources
 * and parameters give the same pieces.
 */
typedef struct CopyIter {
    const CopyParams *p;
    int64_t *seg_start;   /* sector where each source starts */
    int64_t *seg_sectors; /* sectors of each source */
    int *seg_align;       /* alignment in sectors of each source */
    int64_t total_sectors;
    int64_t sector;     /* start of the next piece */
    int64_t status_end; /* the cached status is valid below this sector */
    CopyStatus status;
    int64_t cluster_sectors; /* target cluster (compress), sectors */
    int64_t buf_sectors;     /* DATA pieces are at most this long */
    int64_t backing_sectors; /* target backing length, -1 if unknown */
    bool split_zero;         /* -S 0: ZERO pieces are written, cap them too */
} CopyIter;

int copy_iter_init(CopyIter *it, const CopyParams *p, int64_t cluster_size, Error **errp);
int64_t copy_iter_next(CopyIter *it, CopyStatus *st, Error **errp);
void copy_iter_release(CopyIter *it);
/* Which source segment holds sector; *seg_offset gets its first sector. */
int copy_iter_segment(const CopyIter *it, int64_t sector, int64_t *seg_offset);

/*
 * COPY_MODE_REBASE's walk (qemu-img 7.2's rebase loop), from byte `offset`
 * of the overlay p->src[0].bs (offset < its length): the length in bytes
 * of the next piece (> 0, at most COPY_CHUNK_MAX) and in *st what to do
 * there — COPY_BACKING: nothing (the overlay allocates it, or no layer
 * above the prefix does); COPY_DATA: compare the views and copy the old
 * one; COPY_ZERO: the same, but the old view lies past the old backing's
 * end (reads as zeros, copied as write_zeroes).  Returns -errno with
 * *errp set ("error while reading image metadata: ...") on failure.
 */
int64_t copy_rebase_next(const CopyParams *p, int64_t offset, CopyStatus *st, Error **errp);

/*
 * Length in bytes of the run at the start of a and b (n bytes each)
 * whose 512-byte sectors (the last one may be shorter) are all equal
 * (*differ = false) or all different (*differ = true): qemu's
 * compare_buffers().  Returns 1..n for n >= 1.
 */
int64_t copy_compare_run(const uint8_t *a, const uint8_t *b, int64_t n, bool *differ);

/*
 * Zero detection inside a DATA piece, in sectors: the length of the first
 * run of buf (n sectors, starting at guest sector `sector`) and whether it
 * must be written as data (*is_data) or may become a zero write.  Zero runs
 * shorter than min_sectors between data are folded into the data; run
 * ends are aligned to align_sectors (a power of two) where that saves a
 * read-modify-write.  Always returns 1..n for n >= 1.
 */
int64_t copy_zero_scan(const uint8_t *buf, int64_t n, int64_t sector, int64_t min_sectors,
                       int64_t align_sectors, bool *is_data);

#endif
