/*
 * img_convert.h — pieces of convert that its argv front end (and dd's)
 * share with the library function img_convert() (engine.h).
 */
#ifndef IMGPIPE_ENGINE_IMG_CONVERT_H
#define IMGPIPE_ENGINE_IMG_CONVERT_H

#include <stdio.h>

#include "engine/engine.h"

/*
 * The option-combination checks qemu-img convert makes before it opens
 * anything, in its order and words ("Cannot enable copy offloading when
 * -c is used", "-o has no effect when skipping image creation", ...).
 * img_convert() calls it first; the front end calls it before `-o help`.
 */
int img_convert_check(const ConvertOpts *o, Error **errp);

/*
 * `-o help` for a target format, as qemu-img prints it: without a file
 * name, "Supported FMT options:" and the format's own table followed by the
 * protocol hint; with one, "Supported options:" and the merged table.
 * Errors: "Unknown file format 'X'", "Format driver 'X' does not support
 * image creation".
 */
int img_print_create_options(FILE *out, const char *filename, const char *fmt, Error **errp);

/* A snapshot selector from -l: "snapshot.id=..,snapshot.name=.." or a
 * bare id-or-name.  Both NULL when none. */
typedef struct SnapshotSel {
    char *id;
    char *name;
    bool by_id_or_name; /* bare form: try as id, then as name */
} SnapshotSel;
int snapshot_sel_parse(const char *arg, SnapshotSel *sel, Error **errp);
void snapshot_sel_release(SnapshotSel *sel);
/* Load the snapshot into bs read-only (qemu's bdrv_snapshot_load_tmp*). */
int snapshot_sel_load(BlockDriverState *bs, const SnapshotSel *sel, Error **errp);

/* Default worker threads: online CPUs (1..COPY_MAX_THREADS). */
int img_default_threads(void);

/* ---- dd (img_dd.c) ---- */
typedef struct DdOpts {
    const char *in, *out; /* if=, of= */
    const char *fmt;      /* -f */
    const char *out_fmt;  /* -O, default raw */
    bool image_opts;      /* --image-opts (input only) */
    bool force_share;     /* -U */
    int64_t bs;           /* bs=, default 512 */
    int64_t count;        /* count=, -1: whole input */
    int64_t skip;         /* skip= (in blocks), 0 by default */
    bool no_atomic;       /* write the output in place */
    int threads;          /* 0: CPUs */
    BdrvRepro repro;
} DdOpts;
/*
 * qemu-img dd: copy the input from block `skip` (for `count` blocks from the
 * start of the input, as qemu-img counts) into a new image.  Returns 0, 1
 * when skip is past the end of the input (an empty image was made; the
 * caller prints qemu-img's "<in>: cannot skip to specified offset"), or
 * -errno with *errp set.
 */
int img_dd(const DdOpts *o, Error **errp);

#endif
