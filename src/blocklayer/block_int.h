/*
 * block_int.h — the format driver interface (after QEMU's struct BlockDriver).
 *
 * One `const BlockDriver` per format, defined with designated initializers
 * at the bottom of the driver's file and registered by
 * formats_register_all() (src/formats/formats.h).  A NULL slot means "not
 * supported": the block layer then answers as qemu-img does (e.g. "Format
 * X does not support ...", check -> exit 63).
 *
 * Units: bytes everywhere.  Data-plane slots return 0 or -errno and never
 * print; control-plane slots take Error **errp.
 *
 * Alignment: the block layer only calls pread/pwrite/write_zeroes/discard
 * with offset and bytes multiples of bs->request_alignment (set by open;
 * default 1), doing read-modify-write for unaligned guest requests, and
 * never beyond bs->total_size.
 *
 * Backing files: a driver's pread of a range it has not allocated calls
 * bdrv_backing_pread() (zeros when there is no backing file or past its
 * end).  Its open() records the stored backing name/format in
 * bs->backing_file / bs->backing_format; the block layer opens the chain.
 */
#ifndef IMGPIPE_BLOCKLAYER_BLOCK_INT_H
#define IMGPIPE_BLOCKLAYER_BLOCK_INT_H

#include <sys/types.h>

#include "blocklayer/block.h"

typedef enum {
    THREAD_MODEL_SERIALIZE, /* block layer holds bs->lock around every call */
    THREAD_MODEL_PARALLEL,  /* driver locks for itself; calls may overlap */
} ThreadModel;

/* check() fix flags */
#define BDRV_FIX_LEAKS  0x1
#define BDRV_FIX_ERRORS 0x2

typedef struct BlockFragInfo {
    uint64_t allocated_clusters;
    uint64_t total_clusters;
    uint64_t fragmented_clusters;
    uint64_t compressed_clusters;
} BlockFragInfo;

/* What check() found; the field names follow qemu-img check --output=json. */
typedef struct BdrvCheckResult {
    int corruptions;
    int leaks;
    int check_errors;
    int corruptions_fixed;
    int leaks_fixed;
    int64_t image_end_offset; /* 0: not reported */
    BlockFragInfo bfi;        /* total_clusters 0: not reported */
} BdrvCheckResult;

/* Filled by get_info(). */
typedef struct BlockDriverInfo {
    int cluster_size; /* 0: none */
    bool is_dirty;    /* "dirty-flag" in info */
    int64_t vm_state_offset;
} BlockDriverInfo;

/* One internal snapshot, as `qemu-img snapshot -l` lists it. */
typedef struct SnapshotInfo {
    char *id_str;
    char *name;
    uint64_t vm_state_size;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount; /* UINT64_MAX: not stored */
} SnapshotInfo;

/* measure() answer (bytes). */
typedef struct BlockMeasureInfo {
    uint64_t required;
    uint64_t fully_allocated;
    bool has_bitmaps;
    uint64_t bitmaps;
} BlockMeasureInfo;

/* Environment of a create() call. */
typedef struct BdrvCreateInfo {
    const char *filename;
    const Opts *opts; /* validated against create_opts; "size" is set */
    uint64_t size;    /* the "size" option, bytes */
    int flags;        /* BDRV_O_NOCACHE etc. for the files it writes */
    BdrvRepro repro;
} BdrvCreateInfo;

/* The bfile_create()/bfile_open() flags for the files a create() writes:
 * BFILE_DIRECT under -t none (BDRV_O_NOCACHE). */
static inline int bdrv_create_file_flags(const BdrvCreateInfo *ci)
{
    return (ci->flags & BDRV_O_NOCACHE) ? BFILE_DIRECT : 0;
}

typedef void (*ProgressFn)(void *opaque, int64_t done, int64_t total);

/* One persistent dirty bitmap, as the bitmap_list slot reports it. */
typedef struct BdrvBitmapInfo {
    char *name;
    uint32_t granularity; /* bytes */
    bool enabled;         /* records writes ("auto") */
    bool inconsistent;    /* left "in-use": its bits cannot be trusted */
} BdrvBitmapInfo;

struct BlockDriver {
    const char *format_name;
    size_t instance_size; /* bytes of bs->opaque, zero-initialised */
    ThreadModel thread_model;
    bool read_only;        /* bochs, cloop, dmg: never opened for writing */
    bool supports_backing; /* may have/accept a backing file */
    bool is_raw;           /* the raw driver (probing write restriction) */

    /*
     * Score how well the first bytes (buf, buf_size <= 2048; fewer when the
     * file is smaller) and the name look like this format: 0 = not at all,
     * 100 = magic matched.  raw answers 1.  Highest score wins.
     */
    int (*probe)(const uint8_t *buf, int buf_size, const char *filename);

    /*
     * Create an image file (ci->filename) from validated options.  Must leave
     * no half-written image claiming to be valid on failure (unlink it or
     * leave it unrecognisable).  Prints nothing.
     */
    int (*create)(const BdrvCreateInfo *ci, Error **errp);
    /* Create options in qemu-img's order (drives -o help, the Formatting
     * line and validation).  Includes "size" and backing_file/backing_fmt
     * when supports_backing. */
    const OptDesc *create_opts;

    /*
     * Open: bs->file is open (read-only unless BDRV_O_RDWR), bs->filename
     * set.  Validate the header completely before allocating anything sized
     * by it.  Set bs->total_size, bs->request_alignment (if not 1),
     * bs->backing_file/backing_format.  options: runtime driver options
     * (may be NULL).  Error messages follow qemu's where it has one.
     * On failure close() is not called: the block layer calls free_state()
     * (if set) and frees bs->opaque itself.
     */
    int (*open)(BlockDriverState *bs, const Opts *options, int flags, Error **errp);
    /*
     * Release what a failed open() allocated, without touching the image.
     * The state starts zeroed, so this must accept any partial state.
     * NULL: open() leaves nothing to free on failure.
     */
    void (*free_state)(BlockDriverState *bs);
    /* Flush metadata and free s; the block layer closes bs->file after. */
    void (*close)(BlockDriverState *bs);

    /* ---- data plane ---- */
    int (*pread)(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf);
    int (*pwrite)(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf);
    /* flags: BDRV_REQ_MAY_UNMAP, BDRV_REQ_NO_FALLBACK.  NULL: the block
     * layer writes a zero buffer. -ENOTSUP: same fallback. */
    int (*write_zeroes)(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags);
    int (*discard)(BlockDriverState *bs, int64_t offset, int64_t bytes);
    /* Metadata and data to stable storage (bdrv_flush also flushes the file). */
    int (*flush)(BlockDriverState *bs);

    /*
     * Compressed writes, in two halves so that the convert pipeline can
     * compress many clusters in parallel and write them in order:
     *   compress(): pure and thread-safe; compress `bytes` of src (one
     *     cluster, or the short tail cluster) into dst (dst_size >= bytes).
     *     Returns the stored length, or -ENOSPC if the result would not be
     *     smaller (the caller then writes the cluster uncompressed).
     *   write_compressed(): store a cluster produced by compress() at guest
     *     offset (cluster-aligned).  Serialised by the caller.
     * compress == NULL and write_compressed != NULL: write_compressed gets
     * the raw cluster and compresses itself.
     */
    ssize_t (*compress)(BlockDriverState *bs, void *dst, size_t dst_size, const void *src,
                        size_t bytes);
    int (*write_compressed)(BlockDriverState *bs, int64_t offset, const void *data, size_t len);

    /* Block status of this layer (see block.h's truth table).  Must set
     * *pnum > 0 (<= bytes).  map and file are set only with OFFSET_VALID. */
    int (*block_status)(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                        int64_t *pnum, int64_t *map, BlockFile **file);

    /* ---- control plane ---- */
    int (*truncate)(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                    bool shrink_allowed, Error **errp);
    /* Bytes on disk (default: bfile_allocated_size(bs->file)) */
    int64_t (*get_allocated_file_size)(BlockDriverState *bs);
    int (*get_info)(BlockDriverState *bs, BlockDriverInfo *bdi);
    /* The "format-specific" member: {"type": "...", "data": {...}}, or NULL. */
    JVal *(*get_specific_info)(BlockDriverState *bs, Error **errp);
    /* Check (and with fix, repair) the image.  Findings are told with
     * msg_report() in qemu-img's words ("Leaked cluster 5 refcount=1 reference=0"). */
    int (*check)(BlockDriverState *bs, BdrvCheckResult *res, int fix);
    /*
     * measure: size needed to convert in_bs (NULL: an empty image of
     * opts' size) to this format with opts.  NULL slot: qemu-img's
     * "Format driver 'X' does not support measure".
     */
    int (*measure)(const Opts *opts, BlockDriverState *in_bs, BlockMeasureInfo *info, Error **errp);
    /* Amend options in place (qemu-img amend). */
    int (*amend)(BlockDriverState *bs, const Opts *opts, bool force, ProgressFn progress,
                 void *progress_opaque, Error **errp);
    const OptDesc *amend_opts; /* NULL: same as create_opts */
    /* Change the stored backing file name/format without touching data. */
    int (*change_backing_file)(BlockDriverState *bs, const char *backing_file,
                               const char *backing_fmt, Error **errp);
    /* Make the image empty (all unallocated) after a commit; NULL: use discard. */
    int (*make_empty)(BlockDriverState *bs, Error **errp);

    /* ---- internal snapshots ----
     * snapshot_create stores sn's date and clock fields as given: the caller
     * takes them from repro_now_ns(), so 0 (the epoch of a reproducible
     * build) is a valid date. */
    int (*snapshot_create)(BlockDriverState *bs, const SnapshotInfo *sn, Error **errp);
    int (*snapshot_goto)(BlockDriverState *bs, const char *id_or_name, Error **errp);
    int (*snapshot_delete)(BlockDriverState *bs, const char *id, const char *name, Error **errp);
    /* *list gets a malloc'd array (free with snapshot_list_free); returns count or -errno */
    int (*snapshot_list)(BlockDriverState *bs, SnapshotInfo **list);
    /* Open the snapshot's content read-only in place of the active layer (convert -l). */
    int (*snapshot_load_tmp)(BlockDriverState *bs, const char *id, const char *name, Error **errp);

    /* ---- persistent dirty bitmaps (qcow2) ----
     * op: "add", "remove", "clear", "enable", "disable", "merge". */
    int (*bitmap_op)(BlockDriverState *bs, const char *op, const char *name, uint32_t granularity,
                     BlockDriverState *src_bs, const char *src_name, Error **errp);
    /* Additional slots go here, each with its contract comment. */

    /*
     * has_zero_init: does a newly created image read as zeros everywhere?
     * convert skips writing zero ranges into a target it created only when
     * this holds.  NULL: true (unallocated ranges read as zero).  LUKS says
     * false: its unwritten payload decrypts to noise.
     */
    bool (*has_zero_init)(BlockDriverState *bs);

    /*
     * compress_bound: the largest output compress() may produce for `bytes`
     * of input.  Formats whose every cluster must be stored compressed
     * (VMDK streamOptimized: marker + zlib, possibly larger than the
     * cluster) return more than `bytes`; callers of compress() should size
     * dst with it so incompressible clusters need no serial fallback.
     * NULL: bytes (compress() then answers -ENOSPC when it does not fit).
     */
    size_t (*compress_bound)(BlockDriverState *bs, size_t bytes);
    /*
     * needs_compressed_writes: true when every data write of this image
     * should go through compress()/write_compressed() (qemu's
     * BlockDriverInfo.needs_compressed_writes: VMDK streamOptimized), so
     * that `convert` compresses in parallel even without -c.  NULL: false.
     */
    bool (*needs_compressed_writes)(BlockDriverState *bs);
    /*
     * bitmap_list: the image's persistent dirty bitmaps in directory order
     * (convert --bitmaps, measure).  *list gets a malloc'd array (free each
     * name, then the array); returns the count, or -ENOTSUP when this image
     * cannot hold persistent bitmaps (qcow2 v2), or -errno with *errp set.
     * NULL: the format has no persistent bitmaps.
     */
    int (*bitmap_list)(BlockDriverState *bs, BdrvBitmapInfo **list, Error **errp);
};

void snapshot_list_free(SnapshotInfo *list, int n);

/* ---- helpers for drivers ---- */
/* Read guest bytes from the backing chain (zeros if none / past its end). */
int bdrv_backing_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf);
/*
 * Open another file that an image names (VMDK extent, external data file),
 * resolved relative to the directory of bs->filename, with bs's cache and
 * read/write mode.
 */
BlockFile *bdrv_open_aux_file(BlockDriverState *bs, const char *name, bool write, Error **errp);
/* Best-scoring driver for a probe buffer (*score gets its score; may be NULL). */
const BlockDriver *bdrv_probe_buf(const uint8_t *buf, int len, const char *filename, int *score);
/*
 * Metadata budget (policy.c): call before allocating a table whose size
 * comes from the image (L1, BAT, catalog, offsets) at open.  The tables of
 * one image may total BDRV_METADATA_BUDGET (or IMGPIPE_MAX_METADATA).
 * 0, or -EFBIG with *errp naming `what` and the budget.
 */
#define BDRV_METADATA_BUDGET (64 * MiB)
int bdrv_metadata_reserve(BlockDriverState *bs, const char *what, uint64_t bytes, Error **errp);
/*
 * Reference policy (policy.c).  bdrv_check_reference() says whether `image`
 * may make us open `ref` (as stored; `resolved` = ref combined with the
 * image's directory).  kind names the reference in the error ("backing
 * file", "extent", "data file").  0, or -EPERM with *errp set.
 */
int bdrv_check_reference(const char *image, const char *kind, const char *ref, const char *resolved,
                         Error **errp);

/* Generic default for drivers that keep no metadata: defer to the file. */
int bdrv_file_block_status(BlockFile *file, int64_t offset, int64_t bytes, int64_t *pnum);

#endif
