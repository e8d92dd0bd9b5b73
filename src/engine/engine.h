/*
 * engine.h — the qemu-img commands as library functions.
 *
 * Each command takes an options struct and Error **errp, so that
 * `imgpipe run <qemu-img args>` (src/engine/cmd_*.c parse argv into these
 * structs) and the planner's jobs run the very same code.
 *
 * Output: commands that print results (info, map, check, compare, measure,
 * snapshot -l, bench) write to opts->out (never to stdout directly).
 * Progress goes through opts->progress (NULL: none).  Nothing here calls
 * exit().
 *
 * Return values: 0 on success, -errno with *errp set on failure, except
 * where the command's contract says otherwise (check and compare return
 * qemu-img's exit status as a non-negative number).
 */
#ifndef IMGPIPE_ENGINE_ENGINE_H
#define IMGPIPE_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "blocklayer/block_int.h"
#include "common/error.h"

/* Register every format driver (idempotent). Call before anything else. */
void engine_init(void);

/* Progress as qemu-img shows it: done/total scaled to 0..100 by the caller. */
typedef struct EngineProgress {
    ProgressFn fn; /* may be NULL */
    void *opaque;
} EngineProgress;

/* ---- create ---- */
typedef struct CreateOpts {
    const char *filename;
    const char *fmt;         /* default "raw" */
    const char *options;     /* -o string (already joined), may be NULL */
    const char *backing;     /* -b */
    const char *backing_fmt; /* -F */
    int64_t size;            /* bytes; -1: from the backing file */
    bool unsafe;             /* -u: do not open the backing file */
    bool quiet;              /* -q: no "Formatting ..." line */
    BdrvRepro repro;
    FILE *out; /* "Formatting ..." goes here (stdout for the CLI) */
} CreateOpts;
int img_create(const CreateOpts *o, Error **errp);

/* ---- convert ---- */
typedef struct ConvertOpts {
    const char *const *sources; /* one or more; concatenated */
    int n_sources;
    const char *src_fmt; /* -f */
    bool image_opts;     /* --image-opts: sources are option strings */
    const char *out_filename;
    const char *out_fmt;      /* -O, default raw */
    bool target_image_opts;   /* --target-image-opts (requires -n) */
    const char *options;      /* -o */
    bool compress;            /* -c */
    int64_t min_sparse;       /* -S bytes; 0 disables sparse detection; default 4096 */
    bool skip_create;         /* -n */
    const char *backing;      /* -B */
    const char *backing_fmt;  /* -F */
    const char *snapshot;     /* -l (snapshot.id=..,snapshot.name=.. or a name) */
    int num_coroutines;       /* -m: parallel requests (1..16), default 8 */
    bool out_of_order;        /* -W */
    const char *cache;        /* -t, default "unsafe" as qemu-img convert */
    const char *src_cache;    /* -T, default "writeback" */
    bool copy_range;          /* -C */
    bool force_share;         /* -U */
    bool salvage;             /* --salvage */
    bool bitmaps;             /* --bitmaps */
    bool skip_broken_bitmaps; /* --skip-broken-bitmaps */
    int threads;              /* worker threads; 0 = number of cores */
    bool quiet;
    BdrvRepro repro;
    EngineProgress progress;
    FILE *out;
    bool target_is_zero;    /* --target-is-zero (requires -n) */
    int64_t rate_limit;     /* -r, bytes/s, 0 = none */
    bool sparse_size_given; /* -S was given (qemu refuses it with -C) */
    bool no_atomic;         /* write the target in place, not via a temp file + rename */
} ConvertOpts;
int img_convert(const ConvertOpts *o, Error **errp);

/* ---- info ---- */
typedef struct InfoOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    bool json; /* --output=json */
    bool backing_chain;
    bool force_share; /* -U */
    FILE *out;
} InfoOpts;
int img_info(const InfoOpts *o, Error **errp);

/* ---- check: returns qemu-img's exit status (0,1,2,3,63) or -errno ---- */
typedef struct CheckOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    bool json;
    int fix; /* BDRV_FIX_* (-r leaks|all) */
    const char *cache;
    bool force_share;
    bool quiet;
    FILE *out;
} CheckOpts;
int img_check(const CheckOpts *o, Error **errp);

/* ---- compare: returns 0 identical, 1 different, 2 error opening, 3 error
 * checking sectors, 4 error ... (qemu-img's exit codes) ---- */
typedef struct CompareOpts {
    const char *filename1, *filename2;
    const char *fmt1, *fmt2; /* -f, -F */
    bool image_opts;
    bool strict; /* -s */
    const char *cache;
    bool force_share;
    bool quiet;
    EngineProgress progress;
    FILE *out;
} CompareOpts;
int img_compare(const CompareOpts *o, Error **errp);

/* ---- map ---- */
typedef struct MapOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    bool json;
    int64_t start_offset; /* --start-offset */
    int64_t max_length;   /* --max-length, -1: to the end */
    bool force_share;
    FILE *out;
} MapOpts;
int img_map(const MapOpts *o, Error **errp);

/* ---- measure ---- */
typedef struct MeasureOpts {
    const char *filename; /* NULL: --size given */
    const char *fmt;      /* -f */
    bool image_opts;
    const char *out_fmt;  /* -O */
    const char *options;  /* -o */
    int64_t size;         /* --size, -1 if absent */
    const char *snapshot; /* -l */
    bool json;
    bool force_share;
    FILE *out;
} MeasureOpts;
int img_measure(const MeasureOpts *o, Error **errp);

/* ---- resize ---- */
typedef struct ResizeOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    const char *size_str; /* "[+|-]SIZE" as typed */
    bool shrink;
    PreallocMode prealloc;
    bool quiet;
    FILE *out;
} ResizeOpts;
/* -EPERM: a shrink without o->shrink (qemu-img then also warns that
 * shrinking deletes data; the front end prints that warning). */
int img_resize(const ResizeOpts *o, Error **errp);

/* ---- amend ---- */
typedef struct AmendOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    const char *options; /* -o */
    const char *cache;
    bool force; /* --force */
    bool quiet;
    EngineProgress progress;
    FILE *out;
} AmendOpts;
int img_amend(const AmendOpts *o, Error **errp);

/* ---- rebase ---- */
typedef struct RebaseOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    const char *backing;     /* -b; "" flattens */
    const char *backing_fmt; /* -F */
    bool unsafe;             /* -u */
    bool compress;           /* -c */
    const char *cache, *src_cache;
    bool force_share;
    bool quiet;
    int threads; /* copy pipeline workers; 0 = number of cores */
    EngineProgress progress;
    FILE *out;
} RebaseOpts;
int img_rebase(const RebaseOpts *o, Error **errp);

/* ---- commit ---- */
typedef struct CommitOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    const char *base; /* -b: a file in the chain; NULL = immediate backing */
    bool drop;        /* -d: do not empty the overlay */
    const char *cache;
    int64_t rate_limit; /* -r, bytes/s, 0 = none */
    bool quiet;
    int threads; /* copy pipeline workers; 0 = number of cores */
    EngineProgress progress;
    FILE *out;
} CommitOpts;
int img_commit(const CommitOpts *o, Error **errp);

/* ---- snapshot ---- */
typedef enum { SNAPSHOT_LIST, SNAPSHOT_CREATE, SNAPSHOT_APPLY, SNAPSHOT_DELETE } SnapshotAction;
typedef struct SnapshotOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    SnapshotAction action;
    const char *name;
    bool force_share;
    bool quiet;
    BdrvRepro repro; /* date/clock fields of created snapshots */
    FILE *out;
} SnapshotOpts;
int img_snapshot(const SnapshotOpts *o, Error **errp);

/* ---- bench: prints qemu-img's two lines to o->out ---- */
typedef struct BenchOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    int count;           /* -c, default 75000 */
    int depth;           /* -d: requests in flight (threads), default 64 */
    int64_t offset;      /* -o: first request's offset */
    int64_t bufsize;     /* -s, default 4096 */
    int64_t step;        /* -S, 0: bufsize */
    bool write;          /* -w */
    int pattern;         /* --pattern byte for writes */
    int flush_interval;  /* --flush-interval, 0: none (write tests only) */
    bool drain_on_flush; /* default true; --no-drain clears it */
    const char *cache;   /* -t */
    bool native_aio;     /* -n / -i native: needs a direct (O_DIRECT) cache mode */
    bool force_share;    /* -U */
    bool quiet;          /* -q: accepted; qemu-img prints the lines anyway */
    FILE *out;
} BenchOpts;
int img_bench(const BenchOpts *o, Error **errp);

/* ---- bitmap: persistent dirty bitmaps (qcow2) ---- */
typedef enum {
    BITMAP_ADD,
    BITMAP_REMOVE,
    BITMAP_CLEAR,
    BITMAP_ENABLE,
    BITMAP_DISABLE,
    BITMAP_MERGE,
} BitmapActionKind;
typedef struct BitmapAction {
    BitmapActionKind act;
    const char *src; /* BITMAP_MERGE: the source bitmap's name */
} BitmapAction;
typedef struct BitmapOpts {
    const char *filename;
    const char *fmt;
    bool image_opts;
    const char *bitmap;          /* the bitmap acted on */
    const BitmapAction *actions; /* run in order */
    int n_actions;
    const char *src_filename; /* -b: image holding merge sources (default: filename) */
    const char *src_fmt;      /* -F */
    int64_t granularity;      /* -g, bytes; 0: the format's default (--add only) */
    FILE *out;
} BitmapOpts;
int img_bitmap(const BitmapOpts *o, Error **errp);
/*
 * convert --bitmaps (qemu-img 7.2), in three steps:
 *  img_bitmaps_check_source: before the target exists — src can hold
 *    persistent bitmaps ("Source lacks bitmap support") and none is
 *    inconsistent unless skip_broken ("Cannot copy inconsistent bitmap ...").
 *  img_bitmaps_check_target: once the target is open — it can hold them
 *    ("Format driver 'FMT' does not support bitmaps").
 *  img_bitmaps_copy: after the data copy — add each bitmap to dst with the
 *    same name, granularity and enabled state, and merge src's bits into it
 *    (inconsistent ones skipped with a warning when skip_broken).
 * Return 0 or -errno with *errp set.
 */
int img_bitmaps_check_source(BlockDriverState *src, bool skip_broken, Error **errp);
int img_bitmaps_check_target(BlockDriverState *dst, const char *fmt, Error **errp);
int img_bitmaps_copy(BlockDriverState *src, BlockDriverState *dst, bool skip_broken, Error **errp);

#endif
