/*
 * vpc.c — Microsoft Virtual Hard Disk (VHD, qemu's "vpc" format).
 *
 * Spec: Microsoft "Virtual Hard Disk Image Format Specification" v1.0
 * (2006): a 512-byte big-endian footer ("conectix"), for dynamic disks a
 * copy of it at offset 0, a 1024-byte dynamic header ("cxsparse"), a Block
 * Allocation Table of 32-bit sector numbers, and per block a sector bitmap
 * followed by the block's data.
 *
 * Supported subset, as qemu-img 7.2:
 *  - fixed disks (footer only at the end; I/O passes through) and dynamic
 *    disks (create, read, write, block status);
 *  - differencing disks are read as dynamic disks: the parent locator is
 *    ignored and there is no backing file, and, as in qemu, the sector
 *    bitmaps are not consulted on read (an allocated block reads whole);
 *  - the virtual size comes from the CHS geometry for Virtual PC/qemu
 *    creators and from current_size for Hyper-V ("win "), "qem2", disk2vhd,
 *    XenServer and XenConverter creators or a maximal geometry; the runtime
 *    option force_size_calc=chs|current_size overrides;
 *  - create rounds the size up to a CHS geometry unless force_size=on
 *    (then creator "qem2" and the exact size: 1 MiB-aligned fixed VHDs for
 *    Azure).  UUID and timestamp come from repro_* (reproducible builds).
 * Writes set the whole sector bitmap of a block when it is first written in
 * a session (qemu does the same), so blocks are always fully allocated.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

#define VHD_FOOTER_SIZE    512
#define VHD_DYN_HEADER_SZ  1024
#define VHD_TIMESTAMP_BASE 946684800LL /* 2000-01-01 00:00:00 UTC */
#define VHD_BAT_UNUSED     0xffffffffU
#define VHD_BLOCK_SIZE     (2 * MiB) /* what qemu (and Hyper-V) create */

#define VHD_FIXED        2
#define VHD_DYNAMIC      3
#define VHD_DIFFERENCING 4

#define VHD_CHS_MAX_C    65535LL
#define VHD_CHS_MAX_H    16
#define VHD_CHS_MAX_S    255
#define VHD_MAX_SECTORS  0xff000000LL /* 2040 GiB */
#define VHD_MAX_GEOMETRY (VHD_CHS_MAX_C * VHD_CHS_MAX_H * VHD_CHS_MAX_S)

/* Footer field offsets (all big-endian). */
enum {
    FT_COOKIE = 0, /* "conectix" */
    FT_FEATURES = 8,
    FT_VERSION = 12,
    FT_DATA_OFFSET = 16, /* dynamic header offset, all ones for fixed */
    FT_TIMESTAMP = 24,
    FT_CREATOR_APP = 28,
    FT_CREATOR_VER = 32,
    FT_CREATOR_OS = 36,
    FT_ORIG_SIZE = 40,
    FT_CUR_SIZE = 48,
    FT_CYLS = 56,
    FT_HEADS = 58,
    FT_SECS = 59,
    FT_TYPE = 60,
    FT_CHECKSUM = 64,
    FT_UUID = 68,
};

/* Dynamic header field offsets (big-endian). */
enum {
    DH_COOKIE = 0, /* "cxsparse" */
    DH_DATA_OFFSET = 8,
    DH_TABLE_OFFSET = 16,
    DH_VERSION = 24,
    DH_MAX_ENTRIES = 28,
    DH_BLOCK_SIZE = 32,
    DH_CHECKSUM = 36,
};

/* The footer, decoded once at open (the raw bytes are kept for rewrites). */
typedef struct VhdFooter {
    uint64_t data_offset;
    uint64_t current_size;
    uint32_t type;
    uint16_t cyls;
    uint8_t heads, secs;
    char creator_app[4];
} VhdFooter;

typedef struct BDRVVPCState {
    uint8_t footer_buf[VHD_FOOTER_SIZE]; /* on-disk bytes, checksum valid */
    VhdFooter footer;
    bool fixed_io;       /* footer type is "fixed": I/O passes through */
    uint32_t block_size; /* dynamic only */
    uint32_t bitmap_size;
    uint32_t max_table_entries;
    uint32_t *bat; /* native order, VHD_BAT_UNUSED for holes */
    uint64_t bat_offset;
    uint64_t free_data_block_offset; /* where the next block (and the footer) goes */
    uint64_t last_bitmap_offset;     /* bitmap already set to all ones this session */
} BDRVVPCState;

static uint32_t vhd_checksum(const uint8_t *buf, size_t size, size_t skip_at)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < size; i++) {
        if (i < skip_at || i >= skip_at + 4) {
            sum += buf[i];
        }
    }
    return ~sum;
}

static int vpc_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return buf_size >= 8 && !memcmp(buf, "conectix", 8) ? 100 : 0;
}

static void footer_decode(const uint8_t *b, VhdFooter *f)
{
    f->data_offset = ld64_be(b + FT_DATA_OFFSET);
    f->current_size = ld64_be(b + FT_CUR_SIZE);
    f->type = ld32_be(b + FT_TYPE);
    f->cyls = ld16_be(b + FT_CYLS);
    f->heads = b[FT_HEADS];
    f->secs = b[FT_SECS];
    memcpy(f->creator_app, b + FT_CREATOR_APP, 4);
}

/* ---- geometry ---- */

/*
 * The VHD spec's CHS algorithm (appendix), extended as qemu does to allow
 * 255 sectors per track above 65535*16*63 sectors.  The geometry may cover
 * fewer sectors than asked (it rounds down).
 */
static void vhd_geometry(int64_t total_sectors, uint16_t *cyls, uint8_t *heads, uint8_t *secs)
{
    uint32_t cyls_times_heads;
    total_sectors = MIN(total_sectors, VHD_MAX_GEOMETRY);
    if (total_sectors >= 65535LL * 16 * 63) {
        *secs = 255;
        *heads = 16;
        cyls_times_heads = (uint32_t)(total_sectors / *secs);
    } else {
        *secs = 17;
        cyls_times_heads = (uint32_t)(total_sectors / *secs);
        uint32_t h = DIV_ROUND_UP(cyls_times_heads, 1024);
        h = MAX(h, 4);
        if (cyls_times_heads >= h * 1024 || h > 16) {
            *secs = 31;
            h = 16;
            cyls_times_heads = (uint32_t)(total_sectors / *secs);
        }
        if (cyls_times_heads >= h * 1024) {
            *secs = 63;
            h = 16;
            cyls_times_heads = (uint32_t)(total_sectors / *secs);
        }
        *heads = (uint8_t)h;
    }
    *cyls = (uint16_t)(cyls_times_heads / *heads);
}

/*
 * Sectors of a disk of `size` bytes (a multiple of 512): the smallest CHS
 * geometry that holds it, or with force_size (or a size past the largest
 * geometry) the size itself.  Sets the geometry to store in the footer.
 */
static int vhd_rounded_sectors(uint64_t size, bool force_size, uint16_t *cyls, uint8_t *heads,
                               uint8_t *secs, int64_t *sectors, Error **errp)
{
    *cyls = 0;
    *heads = 0;
    *secs = 0;
    if (force_size) {
        *cyls = VHD_CHS_MAX_C;
        *heads = VHD_CHS_MAX_H;
        *secs = VHD_CHS_MAX_S;
    } else {
        int64_t want = (int64_t)MIN((uint64_t)VHD_MAX_GEOMETRY, size / BDRV_SECTOR_SIZE);
        for (int64_t i = 0; want > (int64_t)*cyls * *heads * *secs; i++) {
            vhd_geometry(want + i, cyls, heads, secs);
        }
    }
    if ((int64_t)*cyls * *heads * *secs == VHD_MAX_GEOMETRY) {
        *sectors = (int64_t)(size / BDRV_SECTOR_SIZE);
        if (*sectors > VHD_MAX_SECTORS) {
            error_setg(errp, "Disk size is too large, max size is 2040 GiB");
            return -EFBIG;
        }
    } else {
        *sectors = (int64_t)*cyls * *heads * *secs;
    }
    return 0;
}

/* ---- open ---- */

/* Find the footer: a copy at offset 0 (dynamic), else the last sector (fixed). */
static int read_footer(BlockDriverState *bs, bool *at_start, Error **errp)
{
    BDRVVPCState *s = bs->opaque;
    int ret = bfile_pread(bs->file, 0, s->footer_buf, VHD_FOOTER_SIZE);
    if (ret < 0) {
        error_setg(errp, "Unable to read VHD header");
        return ret;
    }
    *at_start = !memcmp(s->footer_buf, "conectix", 8);
    if (*at_start) {
        return 0;
    }
    int64_t len = bfile_getlength(bs->file);
    if (len < 0) {
        error_setg(errp, "Invalid file size");
        return (int)len;
    }
    /* qemu looks at the last 512 bytes of the file's length rounded up to
     * whole sectors: a fixed disk with bytes appended that are not a whole
     * sector has no footer there ("invalid VPC image"), for us too */
    len = (int64_t)DIV_ROUND_UP((uint64_t)len, BDRV_SECTOR_SIZE) * BDRV_SECTOR_SIZE;
    if (len < VHD_FOOTER_SIZE) {
        error_setg(errp, "File too small for a VHD header");
        return -EINVAL;
    }
    ret = bfile_pread(bs->file, len - VHD_FOOTER_SIZE, s->footer_buf, VHD_FOOTER_SIZE);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Unable to read VHD footer");
        return ret;
    }
    /* only a fixed disk has its footer at the end alone (as qemu checks): a
     * dynamic one found there has no dynamic header to size its blocks */
    if (memcmp(s->footer_buf, "conectix", 8) || ld32_be(s->footer_buf + FT_TYPE) != VHD_FIXED) {
        error_setg(errp, "invalid VPC image");
        return -EINVAL;
    }
    return 0;
}

/* Which size the creator meant: CHS (Virtual PC, qemu) or current_size. */
static bool creator_uses_chs(const VhdFooter *f)
{
    static const char *const by_size[] = {"win ", "qem2", "d2v ", "CTXS"};
    for (size_t i = 0; i < ARRAY_SIZE(by_size); i++) {
        if (!memcmp(f->creator_app, by_size[i], 4)) {
            return false;
        }
    }
    return memcmp(f->creator_app, "tap\0", 4) != 0;
}

static int vpc_virtual_size(BlockDriverState *bs, const Opts *options, Error **errp)
{
    BDRVVPCState *s = bs->opaque;
    const VhdFooter *f = &s->footer;
    const char *calc = options ? opts_get(options, "force_size_calc") : NULL;
    bool force_chs = false, force_sz = false;
    if (calc && !strcmp(calc, "chs")) {
        force_chs = true;
    } else if (calc && !strcmp(calc, "current_size")) {
        force_sz = true;
    } else if (calc) {
        error_setg(errp, "Invalid size calculation mode: '%s'", calc);
        return -EINVAL;
    }
    int64_t sectors = (int64_t)f->cyls * f->heads * f->secs;
    bool use_chs = creator_uses_chs(f) || force_chs;
    if (!use_chs || sectors == VHD_MAX_GEOMETRY || force_sz) {
        sectors = (int64_t)(f->current_size / BDRV_SECTOR_SIZE);
    }
    if (sectors > VHD_MAX_SECTORS) {
        /* qemu's generic open failure names the file twice here */
        error_setg(errp, "Could not open '%s': %s", bs->filename, strerror(EFBIG));
        return -EFBIG;
    }
    bs->total_size = sectors * (int64_t)BDRV_SECTOR_SIZE;
    return 0;
}

/* Validate the dynamic header; sets block size, bitmap size, BAT geometry. */
static int read_dyn_header(BlockDriverState *bs, Error **errp)
{
    BDRVVPCState *s = bs->opaque;
    uint8_t h[VHD_DYN_HEADER_SZ];
    uint64_t off = s->footer.data_offset;
    if (off > (uint64_t)INT64_MAX - sizeof(h) || bfile_pread(bs->file, (int64_t)off, h, 512) < 0) {
        error_setg(errp, "Error reading dynamic VHD header");
        return -EIO;
    }
    if (memcmp(h + DH_COOKIE, "cxsparse", 8)) {
        error_setg(errp, "Invalid header magic");
        return -EINVAL;
    }
    s->block_size = ld32_be(h + DH_BLOCK_SIZE);
    if (!IS_POWER_OF_2(s->block_size) || s->block_size < BDRV_SECTOR_SIZE) {
        error_setg(errp, "Invalid block size %u", s->block_size);
        return -EINVAL;
    }
    s->bitmap_size = ROUND_UP(s->block_size / (8 * 512), 512);
    s->max_table_entries = ld32_be(h + DH_MAX_ENTRIES);
    if ((uint64_t)bs->total_size / s->block_size > 0xffffffffULL) {
        error_setg(errp, "Too many blocks");
        return -EINVAL;
    }
    if ((uint64_t)s->max_table_entries * s->block_size < (uint64_t)bs->total_size) {
        error_setg(errp, "Page table too small");
        return -EINVAL;
    }
    if (s->max_table_entries > INT32_MAX / 4) {
        error_setg(errp, "Max Table Entries too large (%d)", (int32_t)s->max_table_entries);
        return -EINVAL;
    }
    s->bat_offset = ld64_be(h + DH_TABLE_OFFSET);
    return 0;
}

static int load_bat(BlockDriverState *bs, Error **errp)
{
    BDRVVPCState *s = bs->opaque;
    uint64_t bat_bytes = (uint64_t)s->max_table_entries * 4;
    int64_t file_len = bfile_getlength(bs->file);
    if (file_len < 0) {
        error_setg_errno(errp, (int)-file_len, "Unable to learn image size");
        return (int)file_len;
    }
    /* A table past the end of the file would only read as zeros and then
     * fail the truncation check below: fail before allocating for it. */
    uint64_t bat_end;
    if (ADD_OVERFLOW(s->bat_offset, bat_bytes, &bat_end) || bat_end > (uint64_t)BDRV_MAX_LENGTH) {
        error_setg(errp, "Error reading pagetable");
        return -EINVAL;
    }
    if (ROUND_UP(bat_end, 512) > (uint64_t)file_len) {
        error_setg(errp, "block-vpc: free_data_block_offset points after the end of file. "
                         "The image has been truncated.");
        return -EINVAL;
    }
    if (bdrv_metadata_reserve(bs, "block allocation table", bat_bytes, errp) < 0) {
        return -EFBIG;
    }
    s->bat = xmalloc(MAX(bat_bytes, 1));
    int ret = bfile_pread(bs->file, (int64_t)s->bat_offset, s->bat, bat_bytes);
    if (ret < 0) {
        error_setg(errp, "Error reading pagetable");
        return ret;
    }
    s->free_data_block_offset = ROUND_UP(bat_end, 512);
    for (uint32_t i = 0; i < s->max_table_entries; i++) {
        s->bat[i] = ld32_be(&s->bat[i]);
        if (s->bat[i] != VHD_BAT_UNUSED) {
            uint64_t next = (uint64_t)s->bat[i] * 512 + s->bitmap_size + s->block_size;
            s->free_data_block_offset = MAX(s->free_data_block_offset, next);
        }
    }
    if (s->free_data_block_offset > (uint64_t)file_len) {
        error_setg(errp, "block-vpc: free_data_block_offset points after the end of file. "
                         "The image has been truncated.");
        return -EINVAL;
    }
    s->last_bitmap_offset = UINT64_MAX;
    return 0;
}

static int vpc_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVVPCState *s = bs->opaque;
    bool at_start;
    int ret = read_footer(bs, &at_start, errp);
    if (ret < 0) {
        return ret;
    }
    if (vhd_checksum(s->footer_buf, VHD_FOOTER_SIZE, FT_CHECKSUM) !=
        ld32_be(s->footer_buf + FT_CHECKSUM)) {
        error_setg(errp, "Incorrect header checksum");
        return -EINVAL;
    }
    footer_decode(s->footer_buf, &s->footer);
    s->fixed_io = s->footer.type == VHD_FIXED;
    ret = vpc_virtual_size(bs, options, errp);
    if (ret < 0 || !at_start) {
        return ret;
    }
    ret = read_dyn_header(bs, errp);
    if (ret == 0) {
        ret = load_bat(bs, errp);
    }
    return ret;
}

/* Memory only: used by close and by a failed open (the block layer does
 * not call close when open fails). */
static void vpc_free(BlockDriverState *bs)
{
    BDRVVPCState *s = bs->opaque;
    free(s->bat);
    s->bat = NULL;
}

static void vpc_close(BlockDriverState *bs)
{
    BDRVVPCState *s = bs->opaque;
    free(s->bat);
    s->bat = NULL;
}

/* ---- data plane ---- */

/* Host offset of guest `offset` in a dynamic disk, or -1 when unallocated. */
static int64_t block_host_offset(BDRVVPCState *s, uint64_t offset)
{
    uint64_t index = offset / s->block_size;
    if (index >= s->max_table_entries || s->bat[index] == VHD_BAT_UNUSED) {
        return -1;
    }
    return (int64_t)((uint64_t)s->bat[index] * 512 + s->bitmap_size + offset % s->block_size);
}

static int vpc_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVVPCState *s = bs->opaque;
    if (s->fixed_io) {
        return bfile_pread(bs->file, offset, buf, (size_t)bytes);
    }
    uint8_t *p = buf;
    while (bytes > 0) {
        int64_t n = MIN(bytes, (int64_t)(s->block_size - (uint64_t)offset % s->block_size));
        int64_t host = block_host_offset(s, (uint64_t)offset);
        if (host < 0) {
            memset(p, 0, (size_t)n);
        } else {
            int ret = bfile_pread(bs->file, host, p, (size_t)n);
            if (ret < 0) {
                return ret;
            }
        }
        offset += n;
        bytes -= n;
        p += n;
    }
    return 0;
}

/* Mark every sector of the block whose bitmap is at bitmap_offset as present. */
static int set_block_bitmap(BlockDriverState *bs, uint64_t bitmap_offset)
{
    BDRVVPCState *s = bs->opaque;
    if (s->last_bitmap_offset == bitmap_offset) {
        return 0;
    }
    uint8_t *bitmap = xmalloc(s->bitmap_size);
    memset(bitmap, 0xff, s->bitmap_size);
    int ret = bfile_pwrite(bs->file, (int64_t)bitmap_offset, bitmap, s->bitmap_size);
    free(bitmap);
    if (ret == 0) {
        s->last_bitmap_offset = bitmap_offset;
    }
    return ret;
}

/*
 * Allocate the block holding guest `offset` at the end of the data area:
 * bitmap first, then the footer moved past the new block, then the BAT
 * entry, so that the BAT never points at space the file does not hold.
 */
static int alloc_block(BlockDriverState *bs, uint64_t offset)
{
    BDRVVPCState *s = bs->opaque;
    uint64_t index = offset / s->block_size;
    uint64_t start = s->free_data_block_offset;
    if (index >= s->max_table_entries || start / 512 >= VHD_BAT_UNUSED) {
        return -EFBIG;
    }
    int ret = set_block_bitmap(bs, start);
    if (ret < 0) {
        return ret;
    }
    uint64_t end = start + s->bitmap_size + s->block_size;
    ret = bfile_pwrite(bs->file, (int64_t)end, s->footer_buf, VHD_FOOTER_SIZE);
    if (ret < 0) {
        return ret;
    }
    uint8_t entry[4];
    st32_be(entry, (uint32_t)(start / 512));
    ret = bfile_pwrite(bs->file, (int64_t)(s->bat_offset + 4 * index), entry, 4);
    if (ret < 0) {
        return ret;
    }
    s->bat[index] = (uint32_t)(start / 512);
    s->free_data_block_offset = end;
    return 0;
}

static int vpc_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVVPCState *s = bs->opaque;
    if (s->fixed_io) {
        return bfile_pwrite(bs->file, offset, buf, (size_t)bytes);
    }
    const uint8_t *p = buf;
    while (bytes > 0) {
        int64_t n = MIN(bytes, (int64_t)(s->block_size - (uint64_t)offset % s->block_size));
        int64_t host = block_host_offset(s, (uint64_t)offset);
        int ret;
        if (host < 0) {
            ret = alloc_block(bs, (uint64_t)offset);
            host = block_host_offset(s, (uint64_t)offset);
        } else {
            ret = set_block_bitmap(bs, (uint64_t)host - offset % s->block_size - s->bitmap_size);
        }
        if (ret == 0) {
            ret = bfile_pwrite(bs->file, host, p, (size_t)n);
        }
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        p += n;
    }
    return 0;
}

/* Zeroes over unallocated blocks of a dynamic disk cost nothing: they
 * already read as zero.  Anything else is written as data by the caller. */
static int vpc_write_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    BDRVVPCState *s = bs->opaque;
    if (s->fixed_io) {
        return -ENOTSUP;
    }
    for (int64_t pos = ROUND_DOWN(offset, (int64_t)s->block_size); pos < offset + bytes;
         pos += s->block_size) {
        if (block_host_offset(s, (uint64_t)pos) >= 0) {
            return -ENOTSUP;
        }
    }
    return 0;
}

static int vpc_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockFile **file)
{
    BDRVVPCState *s = bs->opaque;
    if (s->fixed_io) {
        *pnum = bytes;
        *map = offset;
        *file = bs->file;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID | BDRV_BLOCK_RECURSE;
    }
    int64_t host = block_host_offset(s, (uint64_t)offset);
    int64_t n = MIN(bytes, (int64_t)(s->block_size - (uint64_t)offset % s->block_size));
    if (host >= 0) {
        *pnum = n;
        *map = host;
        *file = bs->file;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    /* Merge a run of unallocated blocks. */
    while (n < bytes && block_host_offset(s, (uint64_t)(offset + n)) < 0) {
        n += MIN(bytes - n, (int64_t)s->block_size);
    }
    *pnum = n;
    return BDRV_BLOCK_ZERO;
}

static int vpc_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVVPCState *s = bs->opaque;
    bdi->cluster_size = s->fixed_io ? 0 : (int)s->block_size;
    return 0;
}

/* ---- create ---- */

static const OptDesc vpc_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"subformat", OPT_STRING,
     "Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} ", NULL},
    {"force_size", OPT_BOOL,
     "Force disk size calculation to use the actual size specified, rather than using the "
     "nearest CHS-based calculation",
     NULL},
    {NULL, 0, NULL, NULL},
};

static void build_footer(const BdrvCreateInfo *ci, uint8_t *b, uint64_t size, bool dynamic,
                         bool force_size, uint16_t cyls, uint8_t heads, uint8_t secs)
{
    memset(b, 0, VHD_FOOTER_SIZE);
    memcpy(b + FT_COOKIE, "conectix", 8);
    st32_be(b + FT_FEATURES, 2);
    st32_be(b + FT_VERSION, 0x00010000);
    st64_be(b + FT_DATA_OFFSET, dynamic ? VHD_FOOTER_SIZE : UINT64_MAX);
    st32_be(b + FT_TIMESTAMP, (uint32_t)(repro_now(&ci->repro) - VHD_TIMESTAMP_BASE));
    memcpy(b + FT_CREATOR_APP, force_size ? "qem2" : "qemu", 4);
    st32_be(b + FT_CREATOR_VER, 0x00050003); /* Virtual PC 2007, as qemu */
    memcpy(b + FT_CREATOR_OS, "Wi2k", 4);
    st64_be(b + FT_ORIG_SIZE, size);
    st64_be(b + FT_CUR_SIZE, size);
    st16_be(b + FT_CYLS, cyls);
    b[FT_HEADS] = heads;
    b[FT_SECS] = secs;
    st32_be(b + FT_TYPE, dynamic ? VHD_DYNAMIC : VHD_FIXED);
    uint8_t *uuid = b + FT_UUID;
    repro_random_bytes(&ci->repro, "vpc-uuid", uuid, 16);
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* random (v4) UUID */
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
    st32_be(b + FT_CHECKSUM, vhd_checksum(b, VHD_FOOTER_SIZE, FT_CHECKSUM));
}

/* Dynamic layout (as qemu): footer copy, dynamic header, BAT at 1536, footer. */
static int write_dynamic(BlockFile *f, const uint8_t *footer, int64_t sectors)
{
    uint32_t entries = (uint32_t)DIV_ROUND_UP(sectors, VHD_BLOCK_SIZE / 512);
    size_t bat_bytes = ROUND_UP((size_t)entries * 4, 512);
    int ret = bfile_pwrite(f, 0, footer, VHD_FOOTER_SIZE);
    if (ret == 0) {
        ret = bfile_pwrite(f, 1536 + (int64_t)bat_bytes, footer, VHD_FOOTER_SIZE);
    }
    uint8_t *bat = xmalloc(MAX(bat_bytes, 1));
    memset(bat, 0xff, bat_bytes);
    if (ret == 0 && bat_bytes) {
        ret = bfile_pwrite(f, 1536, bat, bat_bytes);
    }
    free(bat);
    uint8_t h[VHD_DYN_HEADER_SZ] = {0};
    memcpy(h + DH_COOKIE, "cxsparse", 8);
    st64_be(h + DH_DATA_OFFSET, UINT64_MAX); /* MS tools want all 64 bits set */
    st64_be(h + DH_TABLE_OFFSET, 1536);
    st32_be(h + DH_VERSION, 0x00010000);
    st32_be(h + DH_MAX_ENTRIES, entries);
    st32_be(h + DH_BLOCK_SIZE, VHD_BLOCK_SIZE);
    st32_be(h + DH_CHECKSUM, vhd_checksum(h, sizeof(h), DH_CHECKSUM));
    if (ret == 0) {
        ret = bfile_pwrite(f, 512, h, sizeof(h));
    }
    return ret;
}

static int vpc_create_opts_parse(const BdrvCreateInfo *ci, bool *dynamic, bool *force_size,
                                 Error **errp)
{
    const char *sub = opts_get(ci->opts, "subformat");
    *dynamic = true;
    if (sub && !strcmp(sub, "fixed")) {
        *dynamic = false;
    } else if (sub && strcmp(sub, "dynamic")) {
        error_setg(errp, "Parameter 'subformat' does not accept value '%s'", sub);
        return -EINVAL;
    }
    return opts_get_bool(ci->opts, "force_size", false, force_size, errp);
}

static int vpc_create(const BdrvCreateInfo *ci, Error **errp)
{
    bool dynamic, force_size;
    int ret = vpc_create_opts_parse(ci, &dynamic, &force_size, errp);
    if (ret < 0) {
        return ret;
    }
    uint64_t size = ROUND_UP(ci->size, BDRV_SECTOR_SIZE);
    uint16_t cyls;
    uint8_t heads, secs;
    int64_t sectors;
    Error *local = NULL;
    ret = vhd_rounded_sectors(size, force_size, &cyls, &heads, &secs, &sectors, &local);
    if (ret == -EFBIG) {
        error_free(local);
        error_setg(errp, "The image size is too large for file format 'vpc'");
        return ret;
    }
    size = (uint64_t)sectors * BDRV_SECTOR_SIZE; /* qemu silently rounds up */
    uint8_t footer[VHD_FOOTER_SIZE];
    build_footer(ci, footer, size, dynamic, force_size, cyls, heads, secs);
    BlockFile *f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    if (dynamic) {
        ret = write_dynamic(f, footer, sectors);
        if (ret < 0) {
            error_setg(errp, "Unable to create or write VHD header");
        }
    } else {
        ret = bfile_truncate(f, (int64_t)size + VHD_FOOTER_SIZE, PREALLOC_OFF, errp);
        if (ret == 0) {
            ret = bfile_pwrite(f, (int64_t)size, footer, VHD_FOOTER_SIZE);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Unable to write VHD header");
            }
        }
    }
    bfile_close(f);
    return ret;
}

const BlockDriver bdrv_vpc = {
    .format_name = "vpc",
    .instance_size = sizeof(BDRVVPCState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .probe = vpc_probe,
    .create = vpc_create,
    .create_opts = vpc_create_opts,
    .open = vpc_open,
    .free_state = vpc_free,
    .close = vpc_close,
    .pread = vpc_pread,
    .pwrite = vpc_pwrite,
    .write_zeroes = vpc_write_zeroes,
    .block_status = vpc_block_status,
    .get_info = vpc_get_info,
};
