/*
 * block.h — the block layer's public API (what the engine uses).
 *
 * A BlockDriverState (bs) is one open image: a format driver on top of a
 * BlockFile, plus, when the image has one, its backing chain (bs->backing).
 * All offsets and lengths are in bytes (int64_t).
 *
 * Data plane (bdrv_pread/pwrite/...): returns 0 or -errno; thread-safe, with
 * the block layer serialising calls into drivers that declare
 * THREAD_MODEL_SERIALIZE.  Control plane (open/create/check/...): takes
 * `Error **errp`.
 */
#ifndef IMGPIPE_BLOCKLAYER_BLOCK_H
#define IMGPIPE_BLOCKLAYER_BLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blocklayer/file.h"
#include "common/error.h"
#include "common/json.h"
#include "common/opts.h"

typedef struct BlockDriver BlockDriver;
typedef struct BlockDriverState BlockDriverState;

/*
 * Reproducible builds: when enabled, everything a format stores that would
 * otherwise vary from run to run (UUIDs, random IDs, timestamps) is derived
 * from seed (the pipeline's action key) and time (SOURCE_DATE_EPOCH).
 * Disabled (all zero) means: behave as qemu-img (random, now).
 */
typedef struct BdrvRepro {
    bool enabled;
    uint8_t seed[32];
    int64_t time; /* seconds since the epoch */
} BdrvRepro;

/* ---- open flags ---- */
#define BDRV_O_RDWR           0x0002
#define BDRV_O_NOCACHE        0x0020  /* O_DIRECT on image files (-t none/directsync) */
#define BDRV_O_NO_FLUSH       0x0200  /* cache=unsafe */
#define BDRV_O_NO_BACKING     0x0100  /* do not open the backing chain */
#define BDRV_O_CHECK          0x1000  /* opened by `check`: tolerate corruption/dirty */
#define BDRV_O_FORCE_SHARE    0x2000  /* -U: take no locks; read-only only */
#define BDRV_O_NO_IO          0x4000  /* metadata only (info): skip data-file checks */
#define BDRV_O_UNSAFE_BACKING 0x8000  /* open even if the backing file is missing */
#define BDRV_O_WRITETHROUGH   0x10000 /* flush after every write (cache=writethrough) */

/* ---- block status bits (qemu's truth table, include/block/block-common.h) ----
 *  DATA  ZERO  meaning
 *   t     f    data is read from this layer (or below, for raw pass-through)
 *   t     t    allocated here and reads as zero
 *   f     t    reads as zero, not allocated as data
 *   f     f    unallocated: read from the backing file (or zero at the end)
 * OFFSET_VALID: *map holds the host offset in *file.
 * ALLOCATED: this layer answers for the range (DATA or ZERO set by this layer
 *            itself, not by the backing file).  Set by the block layer.
 * RECURSE: the answer is DATA|OFFSET_VALID but the block layer should ask
 *          the file (SEEK_DATA) whether the host range is a hole -> ZERO.
 * COMPRESSED: the range is stored compressed (no OFFSET_VALID).
 */
#define BDRV_BLOCK_DATA         0x01
#define BDRV_BLOCK_ZERO         0x02
#define BDRV_BLOCK_OFFSET_VALID 0x04
#define BDRV_BLOCK_RAW          0x08
#define BDRV_BLOCK_ALLOCATED    0x10
#define BDRV_BLOCK_EOF          0x20
#define BDRV_BLOCK_RECURSE      0x40
#define BDRV_BLOCK_COMPRESSED   0x80

/* ---- write flags ---- */
#define BDRV_REQ_MAY_UNMAP   0x1 /* write_zeroes may deallocate */
#define BDRV_REQ_NO_FALLBACK 0x2 /* write_zeroes: fail with -ENOTSUP rather than write a buffer */
#define BDRV_REQ_FUA         0x4

#define BDRV_MAX_CHAIN_DEPTH 16 /* default backing-chain depth limit */

/* Limits on guest sizes (qemu's BDRV_MAX_LENGTH = 2^63 - 1, aligned down) */
#define BDRV_MAX_LENGTH (INT64_MAX & ~(int64_t)((1 << 30) - 1))

/* ---- the open image ---- */
struct BlockDriverState {
    const BlockDriver *drv;
    void *opaque;    /* driver state, drv->instance_size bytes, zeroed */
    char *filename;  /* as given by the user (or resolved for backing files) */
    BlockFile *file; /* the image file itself */
    int open_flags;  /* BDRV_O_* */
    bool read_only;
    bool probed;                /* format was probed (not given with -f) */
    bool encrypted;             /* guest data is encrypted (LUKS, encrypted qcow2): info's
                                 * "encrypted: yes"; set by the driver's open() */
    int64_t total_size;         /* virtual size in bytes; drivers keep it current */
    uint32_t request_alignment; /* driver I/O granularity (1 = bytes) */

    /* Backing chain: filled in by the driver's open(); opened by the block layer. */
    char *backing_file;          /* name as stored in the image, or NULL */
    char *backing_format;        /* format as stored in the image, or NULL */
    char *backing_filename_full; /* backing_file resolved against filename */
    BlockDriverState *backing;

    BdrvRepro repro; /* reproducibility: see BdrvRepro */

    pthread_mutex_t lock; /* serialises drivers with THREAD_MODEL_SERIALIZE */
    int refcnt;
    uint64_t metadata_bytes; /* tables reserved by bdrv_metadata_reserve (policy.c) */
};

/* ---- driver registry ---- */
/* Register a format driver (the formats module calls this for each driver). */
void bdrv_register(const BlockDriver *drv);
const BlockDriver *bdrv_find_format(const char *name);
/* Visit all drivers in registration order. */
void bdrv_iterate_format(void (*fn)(const BlockDriver *drv, void *opaque), void *opaque);
/* Pick the format for a file by probing its first bytes (qemu's scoring). */
const BlockDriver *bdrv_probe(BlockFile *file, const char *filename, Error **errp);

/* ---- open/close ---- */
/*
 * Open an image.  fmt NULL means probe (a probed raw image can never be
 * written at sector 0, and qemu-img's warning is issued on write-open).
 * options: extra driver options (from --image-opts/json:, may be NULL).
 * The backing chain is opened unless BDRV_O_NO_BACKING; backing files are
 * read-only and resolved relative to the image that names them.
 */
BlockDriverState *bdrv_open(const char *filename, const char *fmt, const Opts *options, int flags,
                            Error **errp);
/* bdrv_open() for an image whose stored IDs and timestamps must be
 * reproducible: bs->repro is set before the driver's open() runs. */
BlockDriverState *bdrv_open_repro(const char *filename, const char *fmt, const Opts *options,
                                  int flags, const BdrvRepro *repro, Error **errp);
/* Open an image on an already open BlockFile (in-memory images for fuzzers,
 * test filters).  Takes ownership of file (closed on failure too). */
BlockDriverState *bdrv_open_file(BlockFile *file, const char *fmt, const Opts *options, int flags,
                                 Error **errp);
/* Open with a json:{...} or --image-opts option set ("driver", "file.filename", ...). */
BlockDriverState *bdrv_open_opts(const Opts *options, int flags, Error **errp);
/* The error of an open by option set, named as qemu names it: "Could not
 * open 'NAME': <why>", <why> being the driver's message, or the file layer's
 * own "Could not open 'FILENAME': <errno>" when the file itself failed.
 * Takes local. */
void bdrv_name_open_error(const char *name, const char *filename, Error *local, Error **errp);
/* Flatten a json:{...} object into dotted option keys ("file.filename"). */
int bdrv_json_to_opts(const JVal *v, const char *prefix, Opts *o, Error **errp);
/* Open (or replace) the backing chain of bs explicitly (rebase/commit use it). */
int bdrv_open_backing(BlockDriverState *bs, Error **errp);
void bdrv_ref(BlockDriverState *bs);
/* Drop a reference; the last one flushes and closes the image and its chain. */
void bdrv_unref(BlockDriverState *bs);

/*
 * Untrusted-image policy (see policy.c): when restricted, backing files,
 * data files and extents are followed only inside the naming image's
 * directory or one of allowed_dirs (NULL-terminated); json: and protocol
 * references are refused.  Process-wide; default permissive.
 */
void bdrv_set_ref_policy(bool restrict_refs, const char *const *allowed_dirs);
bool bdrv_ref_policy_restricted(void);

/* Parse a -t/-T cache mode into BDRV_O_* flags (qemu's bdrv_parse_cache_mode). */
int bdrv_parse_cache_mode(const char *mode, int *flags, bool *writethrough);

/* ---- data plane: guest content, through the backing chain ---- */
int bdrv_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf);
int bdrv_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf);
int bdrv_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags);
int bdrv_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes);
int bdrv_flush(BlockDriverState *bs);
/* Write one compressed cluster (offset/bytes cluster-aligned; a short last
 * cluster at the end of the image is allowed).  -ENOTSUP if the format
 * cannot. */
int bdrv_pwrite_compressed(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf);
int64_t bdrv_getlength(BlockDriverState *bs);
/* Host bytes used by the image (and its extra files), or -errno. */
int64_t bdrv_get_allocated_file_size(BlockDriverState *bs);
int bdrv_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                  Error **errp);

/*
 * Block status of this layer only (see the truth table above).  *pnum is
 * how many bytes from offset share the answer (> 0 unless offset is at the
 * end).  map/file may be NULL.  want_zero: spend effort to report ZERO.
 */
int bdrv_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockFile **file);
/*
 * Block status through the chain from bs down to (not including) base.
 * Adds BDRV_BLOCK_ALLOCATED when some layer answers; *depth (may be NULL)
 * gets the index of the answering layer (0 = bs), or the chain length when
 * nothing in it is allocated.
 */
int bdrv_block_status_above(BlockDriverState *bs, BlockDriverState *base, bool want_zero,
                            int64_t offset, int64_t bytes, int64_t *pnum, int64_t *map,
                            BlockFile **file, int *depth);
/* 1 if [offset, +*pnum) is allocated in bs or its chain above base, 0 if not. */
int bdrv_is_allocated_above(BlockDriverState *bs, BlockDriverState *base, int64_t offset,
                            int64_t bytes, int64_t *pnum);

/* Whether a freshly created image reads as zeros (the driver's has_zero_init). */
bool bdrv_has_zero_init(BlockDriverState *bs);
/* Cluster size for conversions (0 if the format has none). */
int bdrv_get_cluster_size(BlockDriverState *bs);
/* Chain length including bs. */
int bdrv_chain_length(BlockDriverState *bs);
const char *bdrv_format_name(const BlockDriverState *bs);

/*
 * Fill buf with bytes for a UUID, CID or salt: real randomness, or, when
 * repro is enabled, SHA-256(seed || label) stretched to len.  repro may be
 * NULL (random).  Drivers use one distinct label per stored field.
 */
void repro_random_bytes(const BdrvRepro *repro, const char *label, void *buf, size_t len);
/* "now" for stored timestamps: repro->time when enabled, else time(NULL). */
int64_t repro_now(const BdrvRepro *repro);
/* Same "now" with nanoseconds (qemu snapshot dates): 0 ns when enabled. */
void repro_now_ns(const BdrvRepro *repro, int64_t *sec, int64_t *nsec);

#endif
