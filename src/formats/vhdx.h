/*
 * vhdx.h — private interface of the VHDX driver ([MS-VHDX] v1.0), shared by:
 *   vhdx.c         probe, open (headers, region table, metadata, BAT),
 *                  reads, writes, info, check
 *   vhdx_log.c     finding and replaying the metadata log
 *   vhdx_create.c  create (dynamic and fixed)
 *
 * All on-disk fields are little-endian; GUIDs are kept as their 16 on-disk
 * bytes (Microsoft's mixed-endian layout) and compared with memcmp.
 */
#ifndef IMGPIPE_FORMATS_VHDX_H
#define IMGPIPE_FORMATS_VHDX_H

#include <stdbool.h>
#include <stdint.h>

#include "blocklayer/block_int.h"

#define VHDX_HEADER_BLOCK_SIZE    (64 * 1024)
#define VHDX_HEADER1_OFFSET       (64 * 1024)
#define VHDX_HEADER2_OFFSET       (128 * 1024)
#define VHDX_REGION_TABLE_OFFSET  (192 * 1024)
#define VHDX_REGION_TABLE2_OFFSET (256 * 1024)
#define VHDX_HEADER_SECTION_END   (1024 * 1024)
#define VHDX_HEADER_SIZE          4096 /* the checksummed part of a header */

#define VHDX_HEADER_SIGNATURE   0x64616568u /* "head" */
#define VHDX_REGION_SIGNATURE   0x69676572u /* "regi" */
#define VHDX_LOG_SIGNATURE      0x65676f6cu /* "loge" */
#define VHDX_LOG_DESC_SIGNATURE 0x63736564u /* "desc" */
#define VHDX_LOG_ZERO_SIGNATURE 0x6f72657au /* "zero" */
#define VHDX_LOG_DATA_SIGNATURE 0x61746164u /* "data" */

#define VHDX_LOG_SECTOR_SIZE 4096
#define VHDX_LOG_HDR_SIZE    64
#define VHDX_LOG_DESC_SIZE   32

#define VHDX_BLOCK_SIZE_MIN        (1024 * 1024)
#define VHDX_BLOCK_SIZE_MAX        (256 * 1024 * 1024)
#define VHDX_MAX_IMAGE_SIZE        ((uint64_t)64 * 1024 * 1024 * 1024 * 1024)
#define VHDX_MAX_SECTORS_PER_BLOCK (1u << 23)
#define VHDX_METADATA_TABLE_SIZE   (64 * 1024)
#define VHDX_MAX_REGION_ENTRIES    2047
#define VHDX_MAX_LOG_ENTRY         (32 * 1024 * 1024) /* ours: one entry's bytes */

/* BAT entry: state in bits 0-2, file offset (MiB units) in bits 20-63 */
#define VHDX_BAT_STATE_MASK             0x7ULL
#define VHDX_BAT_OFFSET_MASK            0xfffffffffff00000ULL
#define PAYLOAD_BLOCK_NOT_PRESENT       0
#define PAYLOAD_BLOCK_UNDEFINED         1
#define PAYLOAD_BLOCK_ZERO              2
#define PAYLOAD_BLOCK_UNMAPPED_V095     3
#define PAYLOAD_BLOCK_UNMAPPED          5
#define PAYLOAD_BLOCK_FULLY_PRESENT     6
#define PAYLOAD_BLOCK_PARTIALLY_PRESENT 7

/* File parameters flags */
#define VHDX_PARAMS_LEAVE_BLOCKS_ALLOCATED 0x1
#define VHDX_PARAMS_HAS_PARENT             0x2
/* Metadata entry flags */
#define VHDX_META_IS_USER         0x1
#define VHDX_META_IS_VIRTUAL_DISK 0x2
#define VHDX_META_IS_REQUIRED     0x4

typedef struct VhdxGuid {
    uint8_t b[16];
} VhdxGuid;

extern const VhdxGuid vhdx_bat_guid, vhdx_metadata_guid, vhdx_file_param_guid,
    vhdx_virtual_size_guid, vhdx_page83_guid, vhdx_logical_sector_guid, vhdx_phys_sector_guid,
    vhdx_parent_locator_guid;

/* One header, in native order. */
typedef struct VhdxHeader {
    uint64_t sequence;
    VhdxGuid file_write_guid;
    VhdxGuid data_write_guid;
    VhdxGuid log_guid;
    uint16_t log_version;
    uint16_t version;
    uint32_t log_length;
    uint64_t log_offset;
} VhdxHeader;

typedef struct VhdxRegion {
    uint64_t start, end;
} VhdxRegion;

typedef struct BDRVVhdxState {
    VhdxHeader headers[2];
    int curr_header;
    VhdxGuid session_guid;
    bool first_visible_write_done;
    bool log_replayed;
    uint32_t log_entries; /* BAT updates this session (see write_bat_entry) */

    uint64_t bat_offset;
    uint32_t bat_region_length;
    uint64_t metadata_offset;
    uint32_t metadata_length;
    VhdxRegion regions[8]; /* log, BAT, metadata (overlap checks) */
    int n_regions;

    uint32_t block_size;
    uint32_t params_bits;
    uint32_t logical_sector_size;
    uint32_t physical_sector_size;
    uint64_t virtual_disk_size;
    uint64_t chunk_ratio;
    uint64_t bat_entries;
    uint64_t *bat; /* native order */
} BDRVVhdxState;

/* ---- vhdx.c ---- */
void vhdx_header_encode(const VhdxHeader *h, uint8_t *buf /* VHDX_HEADER_SIZE */);
/*
 * Make the non-current header current with sequence+1 (done twice by
 * callers that want both copies fresh).  new_data_guid: the first
 * guest-visible write; log_guid: NULL keeps it.
 */
int vhdx_update_headers(BlockDriverState *bs, bool new_data_guid, const VhdxGuid *log_guid);
/* Does [start, start+len) overlap a registered region (or overflow)? */
bool vhdx_region_overlaps(const BDRVVhdxState *s, uint64_t start, uint64_t len);
/* Register [start, start+len) and refuse overlaps with earlier regions. */
int vhdx_region_add(BDRVVhdxState *s, uint64_t start, uint64_t len);
/* BAT entries for a disk of `size` bytes with this block and sector size. */
uint64_t vhdx_bat_entries(uint64_t size, uint32_t block_size, uint32_t sector_size);

/* ---- vhdx_log.c ---- */
/*
 * Find the active log sequence of the current header's log; replay it
 * (bs must be writable) and empty the log.  *replayed tells whether there
 * was one.  Read-only with a log to replay: qemu's EPERM message.
 */
int vhdx_log_replay(BlockDriverState *bs, bool *replayed, Error **errp);

/* ---- vhdx_create.c ---- */
extern const OptDesc vhdx_create_opts[];
int vhdx_create(const BdrvCreateInfo *ci, Error **errp);

#endif
