/*
 * vmdk.h — private interface of the VMDK driver (VMware "Virtual Disk
 * Format 1.1"), shared by:
 *   vmdk.c         probe, open/close, guest I/O, block status, info, check
 *   vmdk_desc.c    descriptor text: parsing, extent files, CID, generation
 *   vmdk_sparse.c  sparse extents: hosted sparse (KDMV), COWD, seSparse;
 *                  grain lookup, the grain-table cache, allocation
 *   vmdk_stream.c  streamOptimized: compressed grains with markers, the
 *                  grain directory/footer/end-of-stream tail
 *   vmdk_create.c  create (every subformat qemu-img makes)
 *
 * Units: guest positions in bytes unless a name says _sector (512 bytes).
 */
#ifndef IMGPIPE_FORMATS_VMDK_H
#define IMGPIPE_FORMATS_VMDK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blocklayer/block_int.h"

#define VMDK_SECTOR 512
#define VMDK3_MAGIC 0x434f5744u /* "COWD" big-endian */
#define VMDK4_MAGIC 0x4b444d56u /* "KDMV" big-endian */

#define VMDK4_FLAG_NL_DETECT      (1u << 0)
#define VMDK4_FLAG_RGD            (1u << 1)
#define VMDK4_FLAG_ZERO_GRAIN     (1u << 2)
#define VMDK4_FLAG_COMPRESS       (1u << 16)
#define VMDK4_FLAG_MARKER         (1u << 17)
#define VMDK4_COMPRESSION_DEFLATE 1
#define VMDK4_GD_AT_END           0xffffffffffffffffULL

#define VMDK_GTE_ZEROED 1u /* grain table entry of a zeroed grain */

/* Stream markers (sector-sized, after the 12-byte {lba,size} prefix) */
#define VMDK_MARKER_EOS        0
#define VMDK_MARKER_GT         1
#define VMDK_MARKER_GD         2
#define VMDK_MARKER_FOOTER     3
#define VMDK_GRAIN_MARKER_SIZE 12 /* u64 lba, u32 size, then deflate data */

/* Limits (qemu's where it has them) */
#define VMDK_DESC_MAX           (1 << 20) /* descriptor text bytes */
#define VMDK_EMBEDDED_DESC      (20 * VMDK_SECTOR)
#define VMDK_MAX_L1_ENTRIES     (32u * 1024 * 1024)
#define VMDK_MAX_GTES           512u
#define VMDK_MAX_GRAIN_SECT     0x200000u /* 1 GiB grains: qemu's limit */
#define VMDK_MAX_ZGRAIN_SECT    0x8000u   /* compressed grains: 16 MiB (ours) */
#define VMDK_MAX_EXTENTS        16384
#define VMDK_EXTENT_MAX_SECTORS (1ULL << 32)
#define VMDK_GT_CACHE_SLOTS     32

/* Header field offsets of the hosted sparse (KDMV) header, from byte 0 */
#define VMDK4_OFF_VERSION      4
#define VMDK4_OFF_FLAGS        8
#define VMDK4_OFF_CAPACITY     12
#define VMDK4_OFF_GRANULARITY  20
#define VMDK4_OFF_DESC_OFFSET  28
#define VMDK4_OFF_DESC_SIZE    36
#define VMDK4_OFF_NUM_GTES     44
#define VMDK4_OFF_RGD_OFFSET   48
#define VMDK4_OFF_GD_OFFSET    56
#define VMDK4_OFF_GRAIN_OFFSET 64
#define VMDK4_OFF_CHECK_BYTES  73
#define VMDK4_OFF_COMPRESS     77

typedef enum {
    VMDK_EXT_FLAT,
    VMDK_EXT_SPARSE,   /* hosted sparse, "KDMV" */
    VMDK_EXT_COWD,     /* ESX sparse, "COWD" */
    VMDK_EXT_SESPARSE, /* ESXi space-efficient sparse (read only) */
} VmdkExtentKind;

typedef struct VmdkGtSlot {
    uint64_t gt_sector; /* 0: empty */
    uint32_t l1_index;
    uint32_t stamp; /* LRU clock */
    bool dirty;
    uint8_t *table; /* on-disk (little-endian) bytes */
} VmdkGtSlot;

typedef struct VmdkExtent {
    BlockFile *file;
    bool own_file;  /* false: the extent lives in bs->file */
    char *filename; /* shown by info */
    char *type;     /* descriptor type word, NULL when embedded (monolithic) */
    VmdkExtentKind kind;
    bool flat;
    bool compressed;
    bool has_marker;
    bool has_zero_grain;
    bool gd_at_end; /* the header said GD_AT_END (the footer was used) */
    int version;
    int64_t sectors;      /* guest sectors */
    int64_t start_sector; /* first guest sector */
    int64_t flat_start;   /* bytes into the file (flat extents) */

    /* sparse extents */
    uint64_t l1_offset;        /* bytes */
    uint64_t l1_backup_offset; /* bytes; 0: no redundant directory */
    uint32_t l1_size;
    uint32_t entry_size; /* 4, or 8 for seSparse */
    void *l1;            /* native order, l1_size entries */
    uint32_t *l1_backup;
    uint32_t l2_size;
    uint64_t l1_entry_sectors;
    uint64_t cluster_sectors;
    uint64_t next_cluster_sector;
    uint64_t se_l2_tables_sector;
    uint64_t se_clusters_sector;
    VmdkGtSlot cache[VMDK_GT_CACHE_SLOTS];
    uint32_t clock;

    /* streamOptimized writing: grains appended, tables kept in memory */
    bool stream;
    uint32_t **stream_gts;       /* l1_size pointers, each l2_size entries or NULL */
    uint8_t header[VMDK_SECTOR]; /* sector 0, copied into the footer */

    /* last decompressed grain (sequential small reads) */
    int64_t zgrain_sector; /* -1: none */
    uint8_t *zgrain;
    size_t zgrain_len;
} VmdkExtent;

typedef struct BDRVVmdkState {
    VmdkExtent *extents;
    int num_extents;
    char *create_type;
    uint32_t cid;
    uint32_t parent_cid;
    bool cid_updated;
    bool cid_checked;
    /* where the descriptor text lives (for the CID update on first write) */
    BlockFile *desc_file;
    int64_t desc_offset;
    int64_t desc_room; /* bytes available when embedded; -1: separate file */
    char *desc;        /* descriptor text, NUL-terminated */
} BDRVVmdkState;

/* ---- vmdk_desc.c ---- */
/* Read at most VMDK_DESC_MAX-1 bytes at offset as NUL-terminated text. */
char *vmdk_read_desc(BlockFile *f, int64_t offset, int64_t max, Error **errp);
/* Parse CID / parentCID / parentFileNameHint from s->desc into s and bs. */
int vmdk_parse_desc_ids(BlockDriverState *bs, Error **errp);
/* Open a descriptor file (text in buf): createType and the extent lines. */
int vmdk_open_desc_file(BlockDriverState *bs, const char *buf, int flags, Error **errp);
/* Rewrite the CID in the stored descriptor. */
int vmdk_write_cid(BlockDriverState *bs, uint32_t cid);
/* Descriptor text qemu-img writes (caller frees). */
char *vmdk_make_desc(uint32_t cid, uint32_t parent_cid, const char *create_type,
                     const char *parent_hint, const char *extent_lines, const char *hw_version,
                     int64_t size, bool ide, const char *adapter, const char *tools);

/* ---- vmdk_sparse.c ---- */
/* Open the sparse extent in f (magic already read: KDMV/COWD). */
int vmdk_open_sparse(BlockDriverState *bs, BlockFile *f, bool own, const char *type,
                     const char *filename, int flags, Error **errp);
int vmdk_open_sesparse(BlockDriverState *bs, BlockFile *f, const char *filename, int flags,
                       Error **errp);
/* Append a new extent to s (zeroed), return it. */
VmdkExtent *vmdk_add_extent(BDRVVmdkState *s);
void vmdk_extent_free(VmdkExtent *e);

/* Grain lookup results */
#define VMDK_UNALLOC 0
#define VMDK_ZEROED  1
#define VMDK_ALLOC   2
/*
 * Where the grain holding extent-relative byte rel lives: *host_sector is
 * its file sector (ALLOC).  Returns VMDK_UNALLOC/ZEROED/ALLOC or -errno.
 */
int vmdk_lookup(VmdkExtent *e, uint64_t rel, uint64_t *host_sector);
/* vmdk_lookup() of the grain at rel, and in *run how many bytes from rel (at
 * most bytes) have the same status: unallocated, zeroed, or allocated at
 * consecutive host sectors (one grain for compressed and seSparse extents). */
int vmdk_lookup_run(VmdkExtent *e, uint64_t rel, uint64_t bytes, uint64_t *host_sector,
                    uint64_t *run);
/* Set the grain table entry for rel (allocating a grain table if needed). */
int vmdk_set_gte(VmdkExtent *e, uint64_t rel, uint32_t value);
/* Reserve a new grain at the end of the extent file (*host_sector). */
int vmdk_alloc_grain(VmdkExtent *e, uint64_t *host_sector);
/* Write back dirty grain tables. */
int vmdk_flush_tables(VmdkExtent *e);

/* ---- vmdk_stream.c ---- */
/* Read guest bytes of a compressed grain at host_sector (offset in grain). */
int vmdk_read_compressed(VmdkExtent *e, uint64_t host_sector, uint64_t in_grain, void *buf,
                         size_t bytes);
/* Switch a compressed extent to append mode (rw open). */
int vmdk_stream_begin(VmdkExtent *e, Error **errp);
/* Store one compressed payload (from vmdk_compress_grain) for extent-relative rel. */
int vmdk_stream_append(VmdkExtent *e, uint64_t rel, const uint8_t *payload, size_t len);
/* Deflate a grain into marker+data form; returns length or -ENOSPC. */
ssize_t vmdk_compress_grain(void *dst, size_t dst_size, const void *src, size_t bytes);
/* Write GTs, GD, footer and end-of-stream marker after the last grain. */
int vmdk_stream_finish(VmdkExtent *e);
/* Build the 512-byte hosted sparse header. */
void vmdk_build_header(uint8_t *sec, uint32_t version, uint32_t flags, uint64_t capacity,
                       uint64_t granularity, uint64_t desc_offset, uint64_t desc_size,
                       uint32_t num_gtes, uint64_t rgd_offset, uint64_t gd_offset,
                       uint64_t grain_offset, bool compressed);

/* ---- vmdk_create.c ---- */
extern const OptDesc vmdk_create_opts[];
int vmdk_create(const BdrvCreateInfo *ci, Error **errp);

extern const BlockDriver bdrv_vmdk;

#endif
