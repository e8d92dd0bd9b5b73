/*
 * qcow2.h — private header of the qcow2 driver (shared by src/formats/qcow2*.c).
 *
 * Spec: QEMU docs/interop/qcow2.txt.  Supported: versions 2 (compat=0.10) and
 * 3 (compat=1.1); cluster sizes 512 B - 2 MiB; refcount_bits 1-64; zero
 * clusters; compressed clusters (zlib, zstd); extended L2 entries
 * (subclusters); external data files (data_file, data_file_raw); backing
 * files; internal snapshots, persistent bitmaps, check, amend and resize are
 * implemented in their own files (see the qcow2ext section at the bottom).
 * Encryption: LUKS (crypt_method 2) lives in luks-qcow2.c; AES (1) is refused.
 *
 * Files and what they own:
 *   qcow2.c           header read/validate/open/close/info/probe, header
 *                     rewrites, the driver table `bdrv_qcow2`
 *   qcow2-create.c    create (preallocation), create options, measure
 *   qcow2-io.c        the data path: read, write (COW), zeroes, discard,
 *                     flush, block status, preallocation
 *   qcow2-cluster.c   L1/L2 lookup and allocation, subclusters, zero and
 *                     compressed cluster descriptors, block status helpers
 *   qcow2-refcount.c  refcount table/blocks, cluster allocation, free
 *   qcow2-cache.c     the metadata cache (L2 tables, refcount blocks)
 *   qcow2-compress.c  zlib (raw deflate, 4 KiB window) and zstd codecs
 *   qcow2-check.c, qcow2-check-rebuild.c, qcow2-check-meta.c (private
 *                     header qcow2-check.h), qcow2-snapshot.c, qcow2-amend.c,
 *                     qcow2-bitmap.c: qcow2ext
 *   qcow2-bitmap-ops.c bitmap actions, write tracking, resize, measure
 *
 * Locking (THREAD_MODEL_PARALLEL): every function declared here expects
 * s->lock to be held by the caller unless its comment says otherwise.  The
 * data path takes the lock to translate guest offsets and to allocate, and
 * drops it around plain data reads, so several threads read at once.
 *
 * Byte order: the in-memory L1 table and refcount table are in host order;
 * tables held in the metadata cache (L2 tables, refcount blocks) stay in
 * on-disk (big-endian) order and are accessed through the inline helpers
 * below.
 */
#ifndef IMGPIPE_FORMATS_QCOW2_H
#define IMGPIPE_FORMATS_QCOW2_H

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

/* ---- on-disk constants ---- */

#define QCOW2_MAGIC 0x514649fbU /* "QFI\xfb" */

#define QCOW2_V2_HEADER_SIZE 72
#define QCOW2_V3_HEADER_SIZE 104 /* minimum header_length for version 3 */
#define QCOW2_HEADER_SIZE    112 /* what we write: v3 + compression_type + padding */

/* Byte offsets of header fields (all big-endian). */
#define QCOW2_HDR_MAGIC                   0
#define QCOW2_HDR_VERSION                 4
#define QCOW2_HDR_BACKING_FILE_OFFSET     8
#define QCOW2_HDR_BACKING_FILE_SIZE       16
#define QCOW2_HDR_CLUSTER_BITS            20
#define QCOW2_HDR_SIZE                    24
#define QCOW2_HDR_CRYPT_METHOD            32
#define QCOW2_HDR_L1_SIZE                 36
#define QCOW2_HDR_L1_TABLE_OFFSET         40
#define QCOW2_HDR_REFCOUNT_TABLE_OFFSET   48
#define QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS 56
#define QCOW2_HDR_NB_SNAPSHOTS            60
#define QCOW2_HDR_SNAPSHOTS_OFFSET        64
#define QCOW2_HDR_INCOMPATIBLE_FEATURES   72
#define QCOW2_HDR_COMPATIBLE_FEATURES     80
#define QCOW2_HDR_AUTOCLEAR_FEATURES      88
#define QCOW2_HDR_REFCOUNT_ORDER          96
#define QCOW2_HDR_HEADER_LENGTH           100
#define QCOW2_HDR_COMPRESSION_TYPE        104

/* incompatible_features */
#define QCOW2_INCOMPAT_DIRTY       (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ULL << 4)
#define QCOW2_INCOMPAT_MASK        0x1fULL
/* compatible_features */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QCOW2_COMPAT_MASK           0x1ULL
/* autoclear_features */
#define QCOW2_AUTOCLEAR_BITMAPS       (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)
#define QCOW2_AUTOCLEAR_MASK          0x3ULL

/* Header extension types */
#define QCOW2_EXT_END            0x00000000U
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acaU
#define QCOW2_EXT_FEATURE_TABLE  0x6803f857U
#define QCOW2_EXT_BITMAPS        0x23852875U
#define QCOW2_EXT_CRYPTO_HEADER  0x0537be77U
#define QCOW2_EXT_DATA_FILE      0x44415441U

/* Feature name table entry */
#define QCOW2_FEAT_TYPE_INCOMPATIBLE 0
#define QCOW2_FEAT_TYPE_COMPATIBLE   1
#define QCOW2_FEAT_TYPE_AUTOCLEAR    2
#define QCOW2_FEAT_NAME_LEN          46
#define QCOW2_FEAT_ENTRY_SIZE        48

/* crypt_method */
#define QCOW2_CRYPT_NONE 0
#define QCOW2_CRYPT_AES  1
#define QCOW2_CRYPT_LUKS 2

/* compression_type */
#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* L1/L2/refcount-table entries */
#define QCOW_OFLAG_COPIED     (1ULL << 63)
#define QCOW_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW_OFLAG_ZERO       (1ULL << 0)
#define L1E_OFFSET_MASK       0x00fffffffffffe00ULL
#define L2E_OFFSET_MASK       0x00fffffffffffe00ULL
#define REFT_OFFSET_MASK      0xfffffffffffffe00ULL
#define L1E_RESERVED_MASK     0x7f000000000001ffULL
#define L2E_STD_RESERVED_MASK 0x3f000000000001feULL

/* Extended L2: 32 subclusters per cluster, bitmap = alloc (low) | zero (high) */
#define QCOW2_EXTL2_SUBCLUSTERS  32
#define QCOW_L2_BITMAP_ALL_ALLOC 0x00000000ffffffffULL
#define QCOW_L2_BITMAP_ALL_ZERO  0xffffffff00000000ULL

/* ---- limits (QEMU's) ---- */
#define QCOW2_MIN_CLUSTER_BITS          9
#define QCOW2_MAX_CLUSTER_BITS          21
#define QCOW2_MIN_EXTL2_CLUSTER_BITS    14
#define QCOW2_MAX_L1_SIZE               (32 * MiB) /* bytes of the L1 table */
#define QCOW2_MAX_REFTABLE_SIZE         (8 * MiB)  /* bytes of the refcount table */
#define QCOW2_MAX_SNAPSHOTS             65536
#define QCOW2_MAX_SNAPSHOTS_SIZE        (1024 * 65536) /* bytes of the snapshot table */
#define QCOW2_MAX_BACKING_FILE_NAME     1023
#define QCOW2_MAX_REFCOUNT_ORDER        6
#define QCOW2_MAX_BITMAPS               65535
#define QCOW2_MAX_BITMAP_DIRECTORY_SIZE (1024 * QCOW2_MAX_BITMAPS)
#define QCOW2_MAX_HOST_OFFSET           ((1ULL << 56) - 1)
#define QCOW2_DEFAULT_CLUSTER_SIZE      65536

/* ---- in-memory structures ---- */

/* Header fields in host order (see docs/interop/qcow2.txt "Header"). */
typedef struct Qcow2Header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    /* version 3 (defaults for version 2: zero features, order 4, length 72) */
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type; /* only when header_length > 104 */
} Qcow2Header;

/* One internal snapshot table entry (owned by qcow2-snapshot.c). */
typedef struct QCowSnapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    char *id_str;
    char *name;
    uint64_t disk_size;
    uint64_t vm_state_size;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;          /* UINT64_MAX: not stored */
    uint32_t extra_data_size; /* as read; unknown extra data is preserved */
    void *unknown_extra_data; /* bytes beyond the known extra fields */
} QCowSnapshot;

/* A header extension we do not understand: preserved on header rewrites. */
typedef struct Qcow2UnknownExt {
    uint32_t magic;
    uint32_t len;
    uint8_t *data;
    struct Qcow2UnknownExt *next;
} Qcow2UnknownExt;

/* Cluster type of a standard (non-extended) view of an L2 entry. */
typedef enum Qcow2ClusterType {
    QCOW2_CLUSTER_UNALLOCATED,
    QCOW2_CLUSTER_ZERO_PLAIN, /* zero flag, no host offset */
    QCOW2_CLUSTER_ZERO_ALLOC, /* zero flag, host offset preallocated */
    QCOW2_CLUSTER_NORMAL,
    QCOW2_CLUSTER_COMPRESSED,
} Qcow2ClusterType;

/* Type of one subcluster (== cluster when extended_l2 is off). */
typedef enum Qcow2SubclusterType {
    QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN, /* no host cluster: read from backing */
    QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC, /* host cluster exists, this sc not allocated */
    QCOW2_SUBCLUSTER_ZERO_PLAIN,
    QCOW2_SUBCLUSTER_ZERO_ALLOC,
    QCOW2_SUBCLUSTER_NORMAL,
    QCOW2_SUBCLUSTER_COMPRESSED,
    QCOW2_SUBCLUSTER_INVALID, /* reserved bits / inconsistent bitmap */
} Qcow2SubclusterType;

/* Why clusters are freed (decides whether the host range is discarded). */
typedef enum Qcow2DiscardType {
    QCOW2_DISCARD_NEVER,
    QCOW2_DISCARD_ALWAYS,
    QCOW2_DISCARD_REQUEST,  /* guest discard request */
    QCOW2_DISCARD_SNAPSHOT, /* snapshot deletion */
    QCOW2_DISCARD_OTHER,    /* COW, overwritten metadata, ... */
    QCOW2_DISCARD_MAX
} Qcow2DiscardType;

typedef struct Qcow2Cache Qcow2Cache;

/* The driver state (bs->opaque). */
typedef struct BDRVQcow2State {
    pthread_mutex_t lock; /* see "Locking" above */

    /* geometry */
    int qcow_version; /* 2 or 3 */
    int cluster_bits;
    uint32_t cluster_size;
    int l2_bits;        /* log2(entries per L2 table) */
    uint32_t l2_size;   /* entries per L2 table */
    int l2_entry_words; /* 1 (8-byte entries) or 2 (extended: 16 bytes) */
    bool extended_l2;
    int subcluster_bits; /* == cluster_bits without extended L2 */
    uint32_t subcluster_size;
    uint32_t subclusters_per_cluster; /* 32 with extended L2, else 1 */
    int csize_shift;                  /* compressed descriptor layout */
    uint64_t csize_mask;
    uint64_t cluster_offset_mask;

    /* active L1 table (host order) */
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t *l1_table;                /* l1_size entries (at least one allocated) */
    uint32_t l1_vm_state_index;        /* first L1 index past the guest size */
    uint32_t l1_dirty_lo, l1_dirty_hi; /* entries not yet written: [lo, hi) */

    /* refcounts (table in host order) */
    int refcount_order; /* refcount_bits = 1 << order */
    int refcount_bits;
    uint64_t refcount_max;
    int refcount_block_bits;      /* log2(entries per refcount block) */
    uint32_t refcount_block_size; /* entries per refcount block */
    uint64_t refcount_table_offset;
    uint32_t refcount_table_size; /* entries (clusters * cluster_size / 8) */
    uint64_t *refcount_table;
    uint32_t max_refcount_table_index; /* highest index in use + 1 */
    int64_t free_cluster_index;        /* allocation search starts here */
    int64_t free_byte_offset;          /* compressed data packing: next free byte, 0 = none */

    Qcow2Cache *l2_table_cache;
    Qcow2Cache *refcount_block_cache;

    /* features */
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    bool use_lazy_refcounts; /* lazy_refcounts bit set and image writable */
    bool dirty_marked;       /* we set the dirty bit in this session */
    int compression_type;    /* QCOW2_COMPRESSION_* */
    bool discard_passthrough[QCOW2_DISCARD_MAX];
    bool metadata_preallocation_checked;
    bool metadata_preallocation;
    bool signaled_corruption;
    bool dead; /* a fatal corruption was signaled in check mode: like qemu,
                  which drops the driver then, a further check fails */

    /* header bookkeeping (for rewrites) */
    uint32_t header_length;         /* as read (72 for v2) */
    uint8_t *unknown_header_fields; /* header bytes past the known fields */
    uint32_t unknown_header_fields_size;
    Qcow2UnknownExt *unknown_exts;
    char *image_backing_file; /* stored name (also in bs->backing_file) */
    char *image_backing_format;

    /* external data file */
    BlockFile *data_file;  /* == bs->file without an external data file */
    char *image_data_file; /* name from the header extension, or NULL */

    /* encryption (luks-qcow2.c) */
    uint32_t crypt_method_header;
    uint64_t crypto_header_offset; /* QCOW2_EXT_CRYPTO_HEADER, 0 if absent */
    uint64_t crypto_header_length;
    void *crypto; /* LuksVolume * when LUKS-encrypted (luks-qcow2.c), else NULL */

    /* snapshots (qcow2-snapshot.c) */
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    int snapshots_size; /* bytes of the snapshot table on disk */
    QCowSnapshot *snapshots;

    /* bitmaps (qcow2-bitmap.c) */
    uint32_t nb_bitmaps;
    uint64_t bitmap_directory_size;
    uint64_t bitmap_directory_offset;
    void *bitmap_state;       /* private to qcow2-bitmap.c */
    bool bitmaps_ext_ignored; /* autoclear bit clear: extension dropped on RW open */

    BlockDriverState *bs;  /* back pointer (for helpers that take only s) */
    bool wrote_compressed; /* close() rounds the file up to a sector */
} BDRVQcow2State;

/* ---- small inline helpers ---- */

static inline BDRVQcow2State *qcow2_state(BlockDriverState *bs)
{
    return (BDRVQcow2State *)bs->opaque;
}

static inline bool has_data_file(const BDRVQcow2State *s)
{
    return (s->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) != 0;
}

static inline bool data_file_is_raw(const BDRVQcow2State *s)
{
    return (s->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW) != 0;
}

static inline int64_t start_of_cluster(const BDRVQcow2State *s, int64_t offset)
{
    return offset & ~(int64_t)(s->cluster_size - 1);
}

static inline int64_t offset_into_cluster(const BDRVQcow2State *s, int64_t offset)
{
    return offset & (int64_t)(s->cluster_size - 1);
}

static inline int64_t size_to_clusters(const BDRVQcow2State *s, uint64_t size)
{
    return (int64_t)((size + (s->cluster_size - 1)) >> s->cluster_bits);
}

static inline uint32_t offset_to_l1_index(const BDRVQcow2State *s, uint64_t offset)
{
    return (uint32_t)(offset >> (s->l2_bits + s->cluster_bits));
}

static inline uint32_t offset_to_l2_index(const BDRVQcow2State *s, uint64_t offset)
{
    return (uint32_t)((offset >> s->cluster_bits) & (s->l2_size - 1));
}

static inline uint32_t offset_to_sc_index(const BDRVQcow2State *s, uint64_t offset)
{
    return (uint32_t)((offset >> s->subcluster_bits) & (s->subclusters_per_cluster - 1));
}

/* L1 entries needed to map `size` guest bytes with this geometry. */
static inline uint64_t qcow2_l1_entries_for(uint64_t size, int cluster_bits, int l2_bits)
{
    int shift = cluster_bits + l2_bits;
    return (size + (1ULL << shift) - 1) >> shift;
}

/* Entry i of a cached L2 table (big-endian in the cache). */
static inline uint64_t get_l2_entry(const BDRVQcow2State *s, const void *l2, uint32_t i)
{
    return ld64_be((const uint8_t *)l2 + (size_t)i * 8 * s->l2_entry_words);
}

/* Subcluster bitmap of entry i (0 without extended L2). */
static inline uint64_t get_l2_bitmap(const BDRVQcow2State *s, const void *l2, uint32_t i)
{
    if (!s->extended_l2) {
        return 0;
    }
    return ld64_be((const uint8_t *)l2 + (size_t)i * 16 + 8);
}

static inline void set_l2_entry(const BDRVQcow2State *s, void *l2, uint32_t i, uint64_t e)
{
    st64_be((uint8_t *)l2 + (size_t)i * 8 * s->l2_entry_words, e);
}

static inline void set_l2_bitmap(const BDRVQcow2State *s, void *l2, uint32_t i, uint64_t b)
{
    if (s->extended_l2) {
        st64_be((uint8_t *)l2 + (size_t)i * 16 + 8, b);
    }
}

/* Bits [first, first+n) set, for subcluster bitmaps (n <= 32). */
static inline uint32_t qcow2_sc_range_mask(int first, int n)
{
    return (uint32_t)((n >= 32 ? 0xffffffffULL : ((1ULL << n) - 1)) << first);
}

/* ---- qcow2.c ---- */

/* Parse the fixed header from buf (len bytes, at least 72).  Pure. */
void qcow2_header_parse(const uint8_t *buf, size_t len, Qcow2Header *h);
/*
 * Rewrite the whole first cluster from the in-memory state: header fields,
 * extensions (backing format, data file, crypto, bitmaps, feature table,
 * unknown ones) and the backing file name.  Returns 0 or -errno
 * (-ENOSPC if it does not fit in one cluster).
 */
int qcow2_update_header(BlockDriverState *bs);
/* Serialize the first cluster (size bytes) from the state; -ENOSPC if
 * the extensions and backing name do not fit.  Pure apart from reading s. */
int qcow2_build_header(BlockDriverState *bs, uint8_t *buf, size_t size);
/* Fill the cluster/L2/subcluster geometry fields of s. */
void qcow2_set_geometry(BDRVQcow2State *s, int cluster_bits, bool extended_l2);
/* Set/clear the dirty bit on disk (flushes as needed).  No-op for v2. */
int qcow2_mark_dirty(BlockDriverState *bs);
int qcow2_mark_clean(BlockDriverState *bs);
/* Set the corrupt bit on disk / clear it (check -r after a repair). */
int qcow2_mark_corrupt(BlockDriverState *bs);
int qcow2_mark_consistent(BlockDriverState *bs);
/*
 * Report metadata corruption found while running (QEMU's
 * qcow2_signal_corruption): warns "qcow2: Marking image as corrupt: <msg>"
 * (or "Image is corrupt: <msg>" when not fatal/read-only) and, if fatal and
 * writable, sets the corrupt bit.  Returns -EIO for the caller to pass up.
 */
int qcow2_signal_corruption(BlockDriverState *bs, bool fatal, int64_t offset, int64_t size,
                            const char *fmt, ...) IMGPIPE_PRINTF(5, 6);
/* Flush the metadata caches and dirty L1 entries in safe order (no file sync
 * at the end; bdrv_flush does that).  Used before snapshot/check/amend. */
int qcow2_flush_caches(BlockDriverState *bs);
/* Same, plus fdatasync of the image file and the data file. */
int qcow2_flush_all(BlockDriverState *bs);

/* ---- qcow2-cluster.c ---- */

/* Cluster type of an L2 entry (bitmap ignored).  Pure. */
Qcow2ClusterType qcow2_get_cluster_type(const BDRVQcow2State *s, uint64_t l2_entry);
/* Type of subcluster sc (0..31) given entry + bitmap.  Pure. */
Qcow2SubclusterType qcow2_get_subcluster_type(const BDRVQcow2State *s, uint64_t l2_entry,
                                              uint64_t l2_bitmap, unsigned sc);
/* Compressed descriptors (pure, take the geometry from cluster_bits):
 * encode a stored range [host_offset, +len); decode -> offset and the number
 * of bytes to read (whole 512-byte sectors minus the offset into the first). */
uint64_t qcow2_compressed_desc_encode(int cluster_bits, uint64_t host_offset, uint64_t len);
void qcow2_compressed_desc_decode(int cluster_bits, uint64_t l2_entry, uint64_t *host_offset,
                                  uint64_t *nb_bytes);

/*
 * Translate guest [offset, offset + *bytes): on return *bytes is clamped to
 * the run that has the same subcluster type and (for NORMAL/ALLOC types)
 * contiguous host offsets; *host_offset gets the host offset of `offset`
 * (data file offset), or for COMPRESSED the raw L2 entry.  Lock held.
 * Returns 0 or -errno (-EIO after signalling corruption).
 */
int qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                          uint64_t *host_offset, Qcow2SubclusterType *type);
/*
 * Read/modify one guest cluster's L2 entry (and bitmap; 0 without extended
 * L2).  get: *entry = 0 when no L2 table covers offset.  set: allocates the
 * L2 table (or COWs a shared one) when needed; does NOT change refcounts of
 * the data clusters involved — the caller does that.
 */
int qcow2_get_l2_entry(BlockDriverState *bs, uint64_t guest_offset, uint64_t *entry,
                       uint64_t *bitmap);
int qcow2_set_l2_entry(BlockDriverState *bs, uint64_t guest_offset, uint64_t entry,
                       uint64_t bitmap);
/*
 * Get the L2 table for guest offset into the cache, allocating (or COWing)
 * it if alloc; *l2 = NULL (return 0) when absent and !alloc.  Release with
 * qcow2_cache_put(s->l2_table_cache, l2).
 */
int qcow2_get_l2_table(BlockDriverState *bs, uint64_t guest_offset, bool alloc, void **l2);
/* Mark L1 entries [index, index+n) for write-back at the next cache flush. */
void qcow2_l1_mark_dirty(BDRVQcow2State *s, uint32_t index, uint32_t n);
/* Write the dirty part of the L1 table now (after the L2 cache is flushed). */
int qcow2_write_l1_dirty(BlockDriverState *bs);
/* Write L1 entry `index` immediately (write-through). */
int qcow2_write_l1_entry(BlockDriverState *bs, uint32_t index);
/*
 * Grow the L1 table to at least min_size entries (exactly, if exact_size):
 * allocates a new table, writes it, points the header at it, frees the
 * old one.  Used by truncate and snapshot goto.
 */
int qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size, bool exact_size);
/* Free one L2 entry's data cluster(s) (normal or compressed), any type. */
void qcow2_free_any_cluster(BlockDriverState *bs, uint64_t l2_entry, Qcow2DiscardType type);
/*
 * Zero / discard guest clusters [offset, offset+bytes) (cluster-aligned,
 * except that the end may be the image end).  zero: make them read as zero
 * (v3 zero flag; unmap frees the host clusters).  discard: full_discard
 * leaves them unallocated, otherwise as QEMU (zero flag when a backing file
 * could show through).  Return 0 or -errno (-ENOTSUP: v2 cannot zero).
 */
int qcow2_cluster_zeroize(BlockDriverState *bs, uint64_t offset, uint64_t bytes, bool unmap);
int qcow2_cluster_discard(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                          Qcow2DiscardType type, bool full_discard);

/* ---- qcow2-refcount.c ---- */

/* Entry `index` of a refcount block (on-disk order) of width 1 << order. */
uint64_t qcow2_refblock_get(const void *refblock, int order, uint64_t index);
void qcow2_refblock_set(void *refblock, int order, uint64_t index, uint64_t value);

/* Load / free the refcount table (open/close). */
int qcow2_refcount_init(BlockDriverState *bs, Error **errp);
void qcow2_refcount_close(BlockDriverState *bs);
/* Refcount of host cluster `cluster_index` (0 beyond the table). */
int qcow2_get_refcount(BlockDriverState *bs, int64_t cluster_index, uint64_t *refcount);
/*
 * Add `addend` (+/-) to the refcount of every cluster touched by host range
 * [offset, offset+length).  A refcount reaching 0 frees the cluster (it may
 * be reused by the next allocation, and is discarded on the host when the
 * discard type passes through).  -EINVAL on under/overflow (nothing
 * changed).  Refcount blocks are allocated as needed.
 */
int qcow2_update_refcount(BlockDriverState *bs, int64_t offset, int64_t length, int64_t addend,
                          Qcow2DiscardType type);
/* Set the refcount of one cluster to an absolute value (check/repair). */
int qcow2_set_cluster_refcount(BlockDriverState *bs, int64_t cluster_index, uint64_t value);
/* Allocate `size` bytes rounded up to clusters, contiguous, refcount 1.
 * Returns the host offset or -errno. */
int64_t qcow2_alloc_clusters(BlockDriverState *bs, uint64_t size);
/* Allocate up to nb_clusters at exactly `offset` (stops at the first used
 * one).  Returns how many were allocated, or -errno. */
int64_t qcow2_alloc_clusters_at(BlockDriverState *bs, uint64_t offset, int64_t nb_clusters);
/* Allocate `size` bytes (<= cluster) for compressed data, packed after the
 * previous compressed cluster.  Returns the host offset or -errno. */
int64_t qcow2_alloc_bytes(BlockDriverState *bs, int size);
/* Drop one reference on every cluster of [offset, offset+size). */
void qcow2_free_clusters(BlockDriverState *bs, int64_t offset, int64_t size, Qcow2DiscardType type);
/* Write the whole in-memory refcount table to disk at s->refcount_table_offset. */
int qcow2_write_refcount_table(BlockDriverState *bs);
/* Point the header at a (new) refcount table: writes offset and cluster
 * count fields, then updates s.  The caller frees the old table. */
int qcow2_write_reftable_header(BlockDriverState *bs, uint64_t offset, uint32_t clusters);
/* Highest host offset in use (end of the last cluster with refcount > 0). */
int64_t qcow2_get_last_cluster_end(BlockDriverState *bs);

/* ---- qcow2-cache.c ---- */

/*
 * A write-back cache of cluster-sized tables (L2 tables, refcount blocks).
 * Tables stay in on-disk byte order.  get() pins an entry until put();
 * a pinned entry is never evicted.  A dirty entry is written back on
 * eviction or flush; if the cache depends on another one, the other is
 * flushed (and the file synced) first: the L2 cache depends on the refcount
 * cache after an allocation, so refcounts reach the disk before the L2
 * entries that use them.  With depends_on_flush the file is synced before
 * any entry is written (data before the L2 entries that point at it).
 */
Qcow2Cache *qcow2_cache_create(BlockDriverState *bs, int num_tables, uint32_t table_size);
void qcow2_cache_destroy(Qcow2Cache *c);
/* Pin the table at host offset, reading it from disk on a miss. */
int qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset, void **table);
/* Pin the table at offset without reading (the caller fills all of it). */
int qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset, void **table);
/* Unpin; *table becomes NULL. */
void qcow2_cache_put(Qcow2Cache *c, void **table);
void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table);
/* Make c's write-back wait for dependency's flush. */
int qcow2_cache_set_dependency(BlockDriverState *bs, Qcow2Cache *c, Qcow2Cache *dependency);
/* Make c's next write-back sync the file first. */
void qcow2_cache_depends_on_flush(Qcow2Cache *c);
/* Write back all dirty entries (honouring dependencies), no final sync. */
int qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c);
/* qcow2_cache_write + sync of the image file. */
int qcow2_cache_flush(BlockDriverState *bs, Qcow2Cache *c);
/* Write back and drop every entry (none may be pinned). */
int qcow2_cache_empty(BlockDriverState *bs, Qcow2Cache *c);
/* Forget the entry at offset without writing it (its cluster was freed). */
void qcow2_cache_discard_offset(Qcow2Cache *c, uint64_t offset);
/* True if any entry of c is dirty (tests, debugging). */
bool qcow2_cache_is_dirty(Qcow2Cache *c);

/* ---- qcow2-compress.c ---- */

/*
 * Compress src_size bytes into dst (at most dst_size bytes) with the given
 * QCOW2_COMPRESSION_* type.  zlib: raw deflate, window 4 KiB (windowBits
 * -12), as QEMU reads it.  Pure and thread-safe.  Returns the compressed
 * length, -ENOSPC if it does not fit in dst_size, or -EIO.
 */
ssize_t qcow2_compress_buf(int type, void *dst, size_t dst_size, const void *src, size_t src_size);
/* Decompress into exactly dst_size bytes (trailing input ignored).
 * Returns 0 or -EIO. */
int qcow2_decompress_buf(int type, void *dst, size_t dst_size, const void *src, size_t src_size);
/* Driver slots: compress one cluster (short tail padded with zeros),
 * store a compressed cluster at guest offset. */
ssize_t qcow2_compress(BlockDriverState *bs, void *dst, size_t dst_size, const void *src,
                       size_t bytes);
int qcow2_write_compressed(BlockDriverState *bs, int64_t offset, const void *data, size_t len);
/* Round the image file's length up to a multiple of 512 (after compressed
 * writes, as qemu-img leaves such images). */
int qcow2_align_file_end(BlockDriverState *bs);
/* Read and decompress the cluster described by a compressed L2 entry into
 * buf (cluster_size bytes).  Needs no lock. */
int qcow2_read_compressed_cluster(BlockDriverState *bs, uint64_t l2_entry, void *buf);

/* ---- qcow2-create.c ---- */

/* Create options in QEMU's order; create and measure driver slots. */
extern const OptDesc qcow2_create_opts[];
int qcow2_create(const BdrvCreateInfo *ci, Error **errp);
int qcow2_measure(const Opts *opts, BlockDriverState *in_bs, BlockMeasureInfo *info, Error **errp);

/* ---- qcow2-io.c: the data path ---- */

/* Driver slots (they take s->lock themselves; see block_int.h). */
int qcow2_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf);
int qcow2_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf);
int qcow2_write_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags);
int qcow2_discard(BlockDriverState *bs, int64_t offset, int64_t bytes);
int qcow2_flush(BlockDriverState *bs);
int qcow2_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                       int64_t *pnum, int64_t *map, BlockFile **file);
int qcow2_make_empty(BlockDriverState *bs, Error **errp);
/* Read guest bytes with s->lock held (COW fills, snapshots, check). */
int qcow2_read_locked(BlockDriverState *bs, uint64_t offset, uint64_t bytes, void *buf);
/* Write guest bytes with s->lock held (allocating as needed). */
int qcow2_write_locked(BlockDriverState *bs, uint64_t offset, uint64_t bytes, const void *buf);
/*
 * Preallocate guest range [offset, offset+bytes) (create, truncate):
 * allocates L2 tables and data clusters without writing data (with extended
 * L2 the subclusters stay unallocated, as QEMU does), then grows the file
 * that holds the data to the end of the last cluster with `mode`
 * (metadata: sparse; falloc/full: passed to the file).  Lock held.
 */
int qcow2_preallocate(BlockDriverState *bs, int64_t offset, int64_t bytes, PreallocMode mode,
                      Error **errp);

/* ---- qcow2ext: check, snapshots, amend, bitmaps, truncate ---- */
/*
 * Implemented in qcow2-check.c, qcow2-snapshot.c, qcow2-amend.c,
 * qcow2-bitmap.c.  qcow2.c calls them (open: read snapshots and bitmaps,
 * dirty-image repair; close: store bitmaps) and puts the driver slots in
 * bdrv_qcow2 once their files exist.
 */
/* Check (and with BDRV_FIX_* repair) refcounts and metadata.  Lock held. */
int qcow2_check(BlockDriverState *bs, BdrvCheckResult *res, int fix);
/* Load / free the snapshot table (s->snapshots) — called by open/close. */
int qcow2_read_snapshots(BlockDriverState *bs, Error **errp);
/* Snapshot table entries (spec: "Snapshot table"): the fixed part, the
 * extra data fields we know, and qemu's cap on extra data. */
#define QCOW2_SN_HEADER_SIZE      40
#define QCOW2_SN_EXTRA_KNOWN_SIZE 24 /* vm_state_size_large, disk_size, icount */
#define QCOW2_SN_MAX_EXTRA_DATA   1024
/* Fill sn's fixed fields from an entry's QCOW2_SN_HEADER_SIZE bytes; the
 * id and name lengths go to *id_len and *name_len. */
void qcow2_sn_parse_header(const uint8_t *h, QCowSnapshot *sn, uint16_t *id_len,
                           uint16_t *name_len);
/* Fill the fields carried in extra data (the first
 * MIN(extra_data_size, QCOW2_SN_EXTRA_KNOWN_SIZE) bytes at extra), with the
 * spec's defaults for an older, shorter entry. */
void qcow2_sn_parse_extra(BlockDriverState *bs, QCowSnapshot *sn, const uint8_t *extra);
void qcow2_free_snapshots(BlockDriverState *bs);
/* Write s->snapshots to a new table and point the header at it. */
int qcow2_write_snapshots(BlockDriverState *bs);
int qcow2_snapshot_create(BlockDriverState *bs, const SnapshotInfo *sn, Error **errp);
int qcow2_snapshot_goto(BlockDriverState *bs, const char *id_or_name, Error **errp);
int qcow2_snapshot_delete(BlockDriverState *bs, const char *id, const char *name, Error **errp);
int qcow2_snapshot_list(BlockDriverState *bs, SnapshotInfo **list);
int qcow2_snapshot_load_tmp(BlockDriverState *bs, const char *id, const char *name, Error **errp);
/* Add addend to the refcounts of an L1 table's L2 tables and clusters and
 * fix the COPIED flags (snapshot create/delete). */
int qcow2_update_snapshot_refcount(BlockDriverState *bs, int64_t l1_table_offset, int l1_size,
                                   int addend);
int qcow2_amend(BlockDriverState *bs, const Opts *opts, bool force, ProgressFn progress,
                void *progress_opaque, Error **errp);
int qcow2_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                   bool shrink_allowed, Error **errp);
/* Bitmaps: validate the extension on open; write back on close. */
int qcow2_load_bitmaps(BlockDriverState *bs, Error **errp);
int qcow2_store_bitmaps(BlockDriverState *bs, Error **errp);
void qcow2_free_bitmaps(BlockDriverState *bs);
/* "bitmaps" member of format-specific info (NULL if the image has none). */
JVal *qcow2_get_bitmap_info_list(BlockDriverState *bs, Error **errp);
/* Bytes needed to copy in_bs's persistent bitmaps into a qcow2 image with
 * this cluster size (measure's "bitmaps"). */
uint64_t qcow2_measure_bitmaps(BlockDriverState *in_bs, uint32_t cluster_size);
int qcow2_bitmap_op(BlockDriverState *bs, const char *op, const char *name, uint32_t granularity,
                    BlockDriverState *src_bs, const char *src_name, Error **errp);
/* (qcow2ext additions below; appended only) */
/* The `check` driver slot: takes s->lock and runs qcow2_check(). */
int qcow2_check_slot(BlockDriverState *bs, BdrvCheckResult *res, int fix);
/* Called by check for every host range [offset, offset+size) in use. */
typedef int (*Qcow2CountFn)(void *opaque, int64_t offset, int64_t size);
/* check: count the bitmap directory, bitmap tables and bitmap data
 * clusters through count(); findings go to res.  Lock held. */
int qcow2_check_bitmaps_refcounts(BlockDriverState *bs, BdrvCheckResult *res, Qcow2CountFn count,
                                  void *opaque);
/* amend refcount_bits: rebuild the refcount structure at width 1 << new_order
 * (qcow2-check.c's counting walk), switch the header, free the old one. */
int qcow2_change_refcount_order(BlockDriverState *bs, int new_order, Error **errp);
/* Metadata kinds of the overlap check, as qemu's QCow2MetadataOverlap bits. */
enum {
    QCOW2_OL_MAIN_HEADER = 1 << 0,
    QCOW2_OL_ACTIVE_L1 = 1 << 1,
    QCOW2_OL_ACTIVE_L2 = 1 << 2,
    QCOW2_OL_REFCOUNT_TABLE = 1 << 3,
    QCOW2_OL_REFCOUNT_BLOCK = 1 << 4,
    QCOW2_OL_SNAPSHOT_TABLE = 1 << 5,
    QCOW2_OL_INACTIVE_L1 = 1 << 6,
    QCOW2_OL_INACTIVE_L2 = 1 << 7,
    QCOW2_OL_BITMAP_DIRECTORY = 1 << 8,
};
/*
 * Before writing new metadata to host range [offset, +size) (check repairs,
 * snapshot table rewrites): 0 if it overlaps no metadata of the kinds qemu
 * checks by default ("cached": all but inactive L2 tables) other than those
 * in `ign`; otherwise the corruption is signaled (fatal: the image is marked
 * corrupt) and -EIO returned.  Implemented in qcow2-check-meta.c.  Lock held.
 */
int qcow2_pre_write_overlap_check(BlockDriverState *bs, int ign, int64_t offset, int64_t size);
/* The amend options, as `qemu-img amend -f qcow2 -o help` lists them
 * (driver slot amend_opts). */
extern const OptDesc qcow2_amend_opts[];

/* ---- qcow2-bitmap.c, qcow2-bitmap-ops.c: persistent dirty bitmaps ---- */
/* (docs/interop/qcow2.txt "Bitmaps extension"; limits are QEMU's) */
#define QCOW2_BME_ENTRY_HEADER_SIZE    24         /* fixed part of a directory entry */
#define QCOW2_BME_MAX_TABLE_SIZE       0x8000000  /* bitmap table entries */
#define QCOW2_BME_MAX_PHYS_SIZE        0x20000000 /* bytes of bitmap data */
#define QCOW2_BME_MIN_GRANULARITY_BITS 9
#define QCOW2_BME_MAX_GRANULARITY_BITS 31
#define QCOW2_BME_MAX_NAME_SIZE        1023
#define QCOW2_BME_FLAG_IN_USE          (1U << 0)
#define QCOW2_BME_FLAG_AUTO            (1U << 1)
#define QCOW2_BME_RESERVED_FLAGS       0xfffffffcU
#define QCOW2_BME_TYPE_DIRTY_TRACKING  1
#define QCOW2_BME_TABLE_RESERVED_MASK  0xff000000000001feULL
#define QCOW2_BME_TABLE_OFFSET_MASK    0x00fffffffffffe00ULL
#define QCOW2_BME_TABLE_ALL_ONES       (1ULL << 0)

/* The fixed part of one bitmap directory entry, host order. */
typedef struct Qcow2BitmapDirEntry {
    uint64_t table_offset;
    uint32_t table_size; /* entries of the bitmap table */
    uint32_t flags;
    uint8_t type;
    uint8_t granularity_bits;
    uint16_t name_size;
    uint32_t extra_data_size;
} Qcow2BitmapDirEntry;

/* One persistent bitmap as the driver holds it (bitmap_state). */
typedef struct Qcow2Bitmap {
    char *name;
    uint64_t table_offset; /* on disk now; 0 for a bitmap not stored yet */
    uint32_t table_size;
    uint32_t flags; /* as on disk now (IN_USE, AUTO) */
    uint8_t granularity_bits;
    bool inconsistent;  /* IN_USE when opened: data unusable, never stored */
    bool enabled;       /* records guest writes (stored as AUTO) */
    uint8_t *data;      /* the bits, little-endian bit order, NULL: not loaded */
    uint64_t data_size; /* bytes allocated for data (whole clusters) */
} Qcow2Bitmap;

/* What decoding a directory needs to know about the image. */
typedef struct Qcow2BitmapGeom {
    uint32_t cluster_size;
    uint64_t image_size; /* virtual size: a consistent bitmap must cover it */
} Qcow2BitmapGeom;

/* Bytes of a directory entry with these variable parts (8-byte aligned). */
uint64_t qcow2_bitmap_dir_entry_size(uint64_t name_size, uint64_t extra_data_size);
/* Encode e (and its name, e->name_size bytes) at buf, padding included.
 * buf has qcow2_bitmap_dir_entry_size() bytes.  Pure. */
void qcow2_bitmap_dir_entry_encode(uint8_t *buf, const Qcow2BitmapDirEntry *e, const char *name);
/* Decode the fixed part at buf (24 bytes).  Pure. */
void qcow2_bitmap_dir_entry_decode(const uint8_t *buf, Qcow2BitmapDirEntry *e);
/* QEMU's constraints on an entry (table placement and size, granularity,
 * flags, type, name size, coverage of the image).  Pure. */
bool qcow2_bitmap_entry_valid(const Qcow2BitmapDirEntry *e, const Qcow2BitmapGeom *g);
/*
 * Decode a whole directory of `size` bytes that the header says holds `nb`
 * entries: bounds, counts and constraints checked with QEMU's messages.
 * On success *list gets nb bitmaps (data not loaded); free with
 * qcow2_bitmap_list_free().  Pure.  Returns 0 or -EINVAL.
 */
int qcow2_bitmap_dir_decode(const uint8_t *dir, uint64_t size, uint32_t nb,
                            const Qcow2BitmapGeom *g, Qcow2Bitmap **list, Error **errp);
/* Encode list[0..n) as a directory; *size gets its length.  NULL if the
 * directory would exceed QCOW2_MAX_BITMAP_DIRECTORY_SIZE. */
uint8_t *qcow2_bitmap_dir_encode(const Qcow2Bitmap *list, uint32_t n, uint64_t *size);
void qcow2_bitmap_list_free(Qcow2Bitmap *list, uint32_t n);
/* Bytes of bitmap data for `size` guest bytes at this granularity. */
uint64_t qcow2_bitmap_bytes(uint64_t size, int granularity_bits);

/* Private state of qcow2-bitmap*.c (s->bitmap_state). */
typedef struct Qcow2BitmapState {
    Qcow2Bitmap *list;
    uint32_t n;
    bool writable; /* marked IN_USE on disk at open: stored again at close */
} Qcow2BitmapState;
/* Read and validate bitmap `bm`'s data (no-op when loaded).  Lock held. */
int qcow2_bitmap_load_data(BlockDriverState *bs, Qcow2Bitmap *bm, Error **errp);
/* Rewrite the directory from the state (new clusters), point the header at
 * it and free the old one (QEMU's order).  Lock held. */
int qcow2_bitmap_update_dir(BlockDriverState *bs);
/* Drop one reference on a bitmap's table and data clusters. Lock held. */
void qcow2_bitmap_free_clusters(BlockDriverState *bs, uint64_t table_offset, uint32_t table_size);
/* Record a guest write [offset, offset+bytes) in every enabled bitmap.
 * Takes s->lock. */
void qcow2_bitmaps_set_dirty(BlockDriverState *bs, int64_t offset, int64_t bytes);
/* truncate: refuse when a bitmap cannot follow (QEMU 7.2: inconsistent
 * ones); then resize the bits to the new image size.  Lock held. */
int qcow2_truncate_bitmaps_check(BlockDriverState *bs, Error **errp);
void qcow2_bitmaps_truncate(BlockDriverState *bs, uint64_t new_size);
/* The bitmap_list driver slot. */
int qcow2_bitmap_list(BlockDriverState *bs, BdrvBitmapInfo **list, Error **errp);

#endif
