/*
 * vmdk_sparse.c — sparse VMDK extents (VMware "Virtual Disk Format 1.1",
 * "Hosted Sparse Extents" and "ESX Server Sparse Extents"), and ESXi's
 * seSparse (undocumented; read only, with qemu's strict header checks).
 *
 * A sparse extent maps grains through a grain directory (GD, "L1") of
 * grain-table sectors and grain tables (GT, "L2") of grain sectors.  A GT
 * entry of 0 is unallocated, 1 (with the zeroed-grain flag) reads as zero.
 * Hosted sparse extents may keep a redundant directory (RGD) whose tables
 * are written alongside the primary ones.
 *
 * Validation follows qemu's order and messages ("L1 size too big",
 * "L2 table size too big", "Invalid granularity, image may be corrupt",
 * "File truncated, expecting at least N bytes", ...); beyond qemu, a
 * directory must lie inside its file before it is loaded, and compressed
 * grains are limited to 16 MiB.
 *
 * Grain tables are cached (VMDK_GT_CACHE_SLOTS, LRU) and written back on
 * eviction and flush, after the grains they point to were written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/vmdk.h"

VmdkExtent *vmdk_add_extent(BDRVVmdkState *s)
{
    s->extents = xrealloc(s->extents, sizeof(VmdkExtent) * (size_t)(s->num_extents + 1));
    VmdkExtent *e = &s->extents[s->num_extents];
    memset(e, 0, sizeof(*e));
    e->entry_size = 4;
    e->zgrain_sector = -1;
    if (s->num_extents > 0) {
        VmdkExtent *prev = e - 1;
        e->start_sector = prev->start_sector + prev->sectors;
    }
    s->num_extents++;
    return e;
}

void vmdk_extent_free(VmdkExtent *e)
{
    for (int i = 0; i < VMDK_GT_CACHE_SLOTS; i++) {
        free(e->cache[i].table);
    }
    if (e->stream_gts) {
        for (uint32_t i = 0; i < e->l1_size; i++) {
            free(e->stream_gts[i]);
        }
        free(e->stream_gts);
    }
    free(e->l1);
    free(e->l1_backup);
    free(e->zgrain);
    free(e->filename);
    free(e->type);
    if (e->own_file) {
        bfile_close(e->file);
    }
}

static void drop_last_extent(BDRVVmdkState *s)
{
    VmdkExtent *e = &s->extents[s->num_extents - 1];
    e->own_file = false; /* the caller still owns the file on failure */
    vmdk_extent_free(e);
    s->num_extents--;
}

/* qemu's vmdk_add_extent checks, then the size sanity every caller needs. */
static int check_geometry(uint64_t cluster_sectors, uint64_t l1_size, Error **errp)
{
    if (cluster_sectors > VMDK_MAX_GRAIN_SECT || cluster_sectors == 0) {
        error_setg(errp, "Invalid granularity, image may be corrupt");
        return -EFBIG;
    }
    if (l1_size > VMDK_MAX_L1_ENTRIES) {
        error_setg(errp, "L1 size too big");
        return -EFBIG;
    }
    return 0;
}

/* Load the grain directory (and its redundant copy) of e.  Both are charged
 * to the image's metadata budget first: a header may claim a directory of
 * up to 32 Mi entries (256 MiB for seSparse), whatever the file's size. */
static int load_l1(BlockDriverState *bs, VmdkExtent *e, Error **errp)
{
    size_t bytes = (size_t)e->l1_size * e->entry_size;
    int ret = bdrv_metadata_reserve(bs, "VMDK grain directory", bytes, errp);
    if (ret == 0 && e->l1_backup_offset) {
        ret = bdrv_metadata_reserve(bs, "VMDK redundant grain directory", bytes, errp);
    }
    if (ret < 0) {
        error_prepend(errp, "extent '%s': ", e->filename);
        return ret;
    }
    int64_t flen = bfile_getlength(e->file);
    if (flen < 0 || e->l1_offset > (uint64_t)flen || bytes > (uint64_t)flen - e->l1_offset ||
        (e->l1_backup_offset &&
         (e->l1_backup_offset > (uint64_t)flen || bytes > (uint64_t)flen - e->l1_backup_offset))) {
        error_setg(errp,
                   "Could not read l1 table from extent '%s': grain directory beyond the "
                   "end of the file",
                   e->filename);
        return -EINVAL;
    }
    e->l1 = xmalloc(bytes ? bytes : 1);
    ret = bfile_pread(e->file, (int64_t)e->l1_offset, e->l1, bytes);
    if (ret == 0 && e->l1_backup_offset) {
        e->l1_backup = xmalloc(bytes ? bytes : 1);
        ret = bfile_pread(e->file, (int64_t)e->l1_backup_offset, e->l1_backup, bytes);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read l1 table from extent '%s'", e->filename);
        return ret;
    }
    for (uint32_t i = 0; i < e->l1_size; i++) {
        if (e->entry_size == 8) {
            ((uint64_t *)e->l1)[i] = ld64_le((uint64_t *)e->l1 + i);
        } else {
            ((uint32_t *)e->l1)[i] = ld32_le((uint32_t *)e->l1 + i);
            if (e->l1_backup) {
                e->l1_backup[i] = ld32_le(e->l1_backup + i);
            }
        }
    }
    return 0;
}

/* Fill in the common sparse fields of a just-added extent, then load L1. */
static int setup_sparse(BlockDriverState *bs, VmdkExtent *e, int64_t flen, Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    e->l1_entry_sectors = (uint64_t)e->l2_size * e->cluster_sectors;
    uint64_t fsect = (uint64_t)flen / VMDK_SECTOR + (flen % VMDK_SECTOR != 0);
    e->next_cluster_sector = DIV_ROUND_UP(fsect, e->cluster_sectors) * e->cluster_sectors;
    int ret = load_l1(bs, e, errp);
    if (ret < 0) {
        drop_last_extent(s);
    }
    return ret;
}

static int open_cowd(BlockDriverState *bs, BlockFile *f, bool own, const char *filename,
                     Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    uint8_t h[40];
    int ret = bfile_pread(f, 4, h, sizeof(h));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read header from file '%s'", filename);
        return ret;
    }
    uint32_t disk_sectors = ld32_le(h + 8), granularity = ld32_le(h + 12);
    uint32_t l1dir_offset = ld32_le(h + 16), l1dir_size = ld32_le(h + 20);
    ret = check_geometry(granularity, l1dir_size, errp);
    if (ret < 0) {
        return ret;
    }
    int64_t flen = bfile_getlength(f);
    VmdkExtent *e = vmdk_add_extent(s);
    e->file = f;
    e->own_file = own;
    e->filename = xstrdup(filename);
    e->kind = VMDK_EXT_COWD;
    e->version = 1;
    e->sectors = disk_sectors;
    e->l1_offset = (uint64_t)l1dir_offset * VMDK_SECTOR;
    e->l1_size = l1dir_size;
    e->l2_size = 4096;
    e->cluster_sectors = granularity;
    return setup_sparse(bs, e, flen, errp);
}

/* The footer of a stream-optimized extent replaces the header (GD at end). */
static int read_footer(BlockFile *f, uint8_t *hdr, Error **errp)
{
    int64_t flen = bfile_getlength(f);
    uint8_t buf[3 * VMDK_SECTOR];
    int ret = flen < (int64_t)sizeof(buf)
                  ? -EINVAL
                  : bfile_pread(f, flen - (int64_t)sizeof(buf), buf, sizeof(buf));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read footer");
        return ret;
    }
    const uint8_t *fm = buf, *ft = buf + VMDK_SECTOR, *eos = buf + 2 * VMDK_SECTOR;
    if (ld32_be(ft) != VMDK4_MAGIC || ld32_le(fm + 8) != 0 ||
        ld32_le(fm + 12) != VMDK_MARKER_FOOTER || ld64_le(eos) != 0 || ld32_le(eos + 8) != 0 ||
        ld32_le(eos + 12) != VMDK_MARKER_EOS) {
        error_setg(errp, "Invalid footer");
        return -EINVAL;
    }
    memcpy(hdr, ft, VMDK_SECTOR);
    return 0;
}

/* qemu's version/L2 checks on a hosted sparse header. */
static int check_vmdk4(const uint8_t *h, int flags, Error **errp)
{
    uint32_t version = ld32_le(h + VMDK4_OFF_VERSION);
    bool compressed = ld16_le(h + VMDK4_OFF_COMPRESS) == VMDK4_COMPRESSION_DEFLATE;
    if (version > 3) {
        error_setg(errp, "Unsupported VMDK version %" PRIu32, version);
        return -ENOTSUP;
    }
    if (version == 3 && (flags & BDRV_O_RDWR) && !compressed) {
        error_setg(errp, "VMDK version 3 must be read only");
        return -EINVAL;
    }
    if (ld32_le(h + VMDK4_OFF_NUM_GTES) > VMDK_MAX_GTES) {
        error_setg(errp, "L2 table size too big");
        return -EINVAL;
    }
    return 0;
}

/* A header whose capacity is 0 carries a descriptor of split extents. */
static int open_embedded_desc_file(BlockDriverState *bs, BlockFile *f, bool own,
                                   uint64_t desc_sector, int flags, Error **errp)
{
    if (own || desc_sector > INT64_MAX / VMDK_SECTOR) {
        error_setg(errp, "invalid VMDK image descriptor");
        return -EINVAL;
    }
    char *buf = vmdk_read_desc(f, (int64_t)desc_sector * VMDK_SECTOR, 0, errp);
    if (!buf) {
        return -EINVAL;
    }
    int ret = vmdk_open_desc_file(bs, buf, flags, errp);
    free(buf);
    return ret;
}

static int vmdk4_layout(VmdkExtent *e, const uint8_t *h, uint64_t *l1_size, Error **errp)
{
    uint64_t capacity = ld64_le(h + VMDK4_OFF_CAPACITY);
    uint64_t granularity = ld64_le(h + VMDK4_OFF_GRANULARITY);
    uint32_t gtes = ld32_le(h + VMDK4_OFF_NUM_GTES);
    uint64_t les;
    if (MUL_OVERFLOW((uint64_t)gtes, granularity, &les) || (les && les > UINT32_MAX)) {
        error_setg(errp, "Invalid granularity, image may be corrupt");
        return -EFBIG;
    }
    if (les == 0) {
        error_setg(errp, "L1 entry size is invalid");
        return -EINVAL;
    }
    *l1_size = capacity / les + (capacity % les != 0);
    int ret = check_geometry(granularity, *l1_size, errp);
    if (ret < 0) {
        return ret;
    }
    uint64_t gd = ld64_le(h + VMDK4_OFF_GD_OFFSET), rgd = ld64_le(h + VMDK4_OFF_RGD_OFFSET);
    bool has_rgd = ld32_le(h + VMDK4_OFF_FLAGS) & VMDK4_FLAG_RGD;
    if (capacity > (uint64_t)INT64_MAX / VMDK_SECTOR || gd > UINT64_MAX / VMDK_SECTOR ||
        (has_rgd && rgd > UINT64_MAX / VMDK_SECTOR)) {
        error_setg(errp, "Invalid VMDK header: capacity or table offset out of range");
        return -EINVAL;
    }
    e->sectors = (int64_t)capacity;
    e->cluster_sectors = granularity;
    e->l2_size = gtes;
    e->l1_size = (uint32_t)*l1_size;
    e->l1_offset = gd * VMDK_SECTOR;
    e->l1_backup_offset = has_rgd ? rgd * VMDK_SECTOR : 0;
    return 0;
}

static int open_vmdk4(BlockDriverState *bs, BlockFile *f, bool own, const char *filename, int flags,
                      Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    uint8_t h[VMDK_SECTOR];
    int ret = bfile_pread(f, 0, h, sizeof(h));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read header from file '%s'", filename);
        return -EINVAL;
    }
    if (ld64_le(h + VMDK4_OFF_CAPACITY) == 0 && ld64_le(h + VMDK4_OFF_DESC_OFFSET)) {
        return open_embedded_desc_file(bs, f, own, ld64_le(h + VMDK4_OFF_DESC_OFFSET), flags, errp);
    }
    if (!s->create_type) {
        s->create_type = xstrdup("monolithicSparse");
    }
    bool gd_at_end = ld64_le(h + VMDK4_OFF_GD_OFFSET) == VMDK4_GD_AT_END;
    if (gd_at_end && (ret = read_footer(f, h, errp)) < 0) {
        return ret;
    }
    if ((ret = check_vmdk4(h, flags, errp)) < 0) {
        return ret;
    }
    int64_t flen = bfile_getlength(f);
    uint64_t grain_offset = ld64_le(h + VMDK4_OFF_GRAIN_OFFSET);
    if (flen < 0 || (uint64_t)flen / VMDK_SECTOR < grain_offset) {
        error_setg(errp, "File truncated, expecting at least %" PRId64 " bytes",
                   (int64_t)(grain_offset * VMDK_SECTOR));
        return -EINVAL;
    }
    VmdkExtent tmp = {0};
    uint64_t l1_size;
    if ((ret = vmdk4_layout(&tmp, h, &l1_size, errp)) < 0) {
        return ret;
    }
    bool compressed = ld16_le(h + VMDK4_OFF_COMPRESS) == VMDK4_COMPRESSION_DEFLATE;
    if (compressed && tmp.cluster_sectors > VMDK_MAX_ZGRAIN_SECT) {
        error_setg(errp, "Invalid granularity, image may be corrupt");
        return -EFBIG;
    }
    VmdkExtent *e = vmdk_add_extent(s);
    int64_t start = e->start_sector;
    *e = tmp;
    e->start_sector = start;
    e->entry_size = 4;
    e->zgrain_sector = -1;
    e->file = f;
    e->own_file = own;
    e->filename = xstrdup(filename);
    e->kind = VMDK_EXT_SPARSE;
    e->version = (int)ld32_le(h + VMDK4_OFF_VERSION);
    e->compressed = compressed;
    e->gd_at_end = gd_at_end;
    e->has_marker = ld32_le(h + VMDK4_OFF_FLAGS) & VMDK4_FLAG_MARKER;
    e->has_zero_grain = ld32_le(h + VMDK4_OFF_FLAGS) & VMDK4_FLAG_ZERO_GRAIN;
    memcpy(e->header, h, VMDK_SECTOR);
    if (compressed) {
        free(s->create_type);
        s->create_type = xstrdup("streamOptimized");
    }
    return setup_sparse(bs, e, flen, errp);
}

int vmdk_open_sparse(BlockDriverState *bs, BlockFile *f, bool own, const char *type,
                     const char *filename, int flags, Error **errp)
{
    uint8_t magic[4];
    int64_t flen = bfile_getlength(f);
    if (flen >= 0 && flen < 4) {
        error_setg(errp, "File is too small, not a valid image");
        return -EINVAL;
    }
    int ret = bfile_pread(f, 0, magic, sizeof(magic));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read from file");
        return ret;
    }
    switch (ld32_be(magic)) {
    case VMDK3_MAGIC: return open_cowd(bs, f, own, filename, errp);
    case VMDK4_MAGIC: return open_vmdk4(bs, f, own, filename, flags, errp);
    default: error_setg(errp, "Image not in VMDK format"); return -EINVAL;
    }
}

/* ---- seSparse ---- */

#define SESPARSE_CONST_MAGIC    0x00000000cafebabeULL
#define SESPARSE_VOLATILE_MAGIC 0x00000000cafecafeULL

static int check_se_const(const uint8_t *h, Error **errp)
{
    if (ld64_le(h) != SESPARSE_CONST_MAGIC) {
        error_setg(errp, "Bad const header magic: 0x%016" PRIx64, ld64_le(h));
        return -EINVAL;
    }
    if (ld64_le(h + 8) != 0x0000000200000001ULL) {
        error_setg(errp, "Unsupported version: 0x%016" PRIx64, ld64_le(h + 8));
        return -ENOTSUP;
    }
    if (ld64_le(h + 24) != 8) {
        error_setg(errp, "Unsupported grain size: %" PRIu64, ld64_le(h + 24));
        return -ENOTSUP;
    }
    if (ld64_le(h + 32) != 64) {
        error_setg(errp, "Unsupported grain table size: %" PRIu64, ld64_le(h + 32));
        return -ENOTSUP;
    }
    if (ld64_le(h + 40) != 0) {
        error_setg(errp, "Unsupported flags: 0x%016" PRIx64, ld64_le(h + 40));
        return -ENOTSUP;
    }
    if (ld64_le(h + 48) || ld64_le(h + 56) || ld64_le(h + 64) || ld64_le(h + 72)) {
        error_setg(errp,
                   "Unsupported reserved bits: 0x%016" PRIx64 " 0x%016" PRIx64 " 0x%016" PRIx64
                   " 0x%016" PRIx64,
                   ld64_le(h + 48), ld64_le(h + 56), ld64_le(h + 64), ld64_le(h + 72));
        return -ENOTSUP;
    }
    if (!buffer_is_zero(h + 208, 304)) {
        error_setg(errp, "Unsupported non-zero const header padding");
        return -ENOTSUP;
    }
    return 0;
}

static int check_se_volatile(BlockFile *f, uint64_t sector, Error **errp)
{
    uint8_t v[VMDK_SECTOR];
    int ret = sector > INT64_MAX / VMDK_SECTOR
                  ? -EINVAL
                  : bfile_pread(f, (int64_t)sector * VMDK_SECTOR, v, sizeof(v));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read volatile header");
        return ret;
    }
    if (ld64_le(v) != SESPARSE_VOLATILE_MAGIC) {
        error_setg(errp, "Bad volatile header magic: 0x%016" PRIx64, ld64_le(v));
        return -EINVAL;
    }
    if (ld64_le(v + 24)) {
        error_setg(errp, "Image is dirty, Replaying journal not supported");
        return -ENOTSUP;
    }
    if (!buffer_is_zero(v + 32, 480)) {
        error_setg(errp, "Unsupported non-zero volatile header padding");
        return -ENOTSUP;
    }
    return 0;
}

int vmdk_open_sesparse(BlockDriverState *bs, BlockFile *f, const char *filename, int flags,
                       Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    if (flags & BDRV_O_RDWR) {
        error_setg(errp, "No write support for seSparse images available");
        return -EACCES;
    }
    uint8_t h[VMDK_SECTOR];
    int ret = bfile_pread(f, 0, h, sizeof(h));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read const header from file '%s'", filename);
        return ret;
    }
    if ((ret = check_se_const(h, errp)) < 0 ||
        (ret = check_se_volatile(f, ld64_le(h + 80), errp)) < 0) {
        return ret;
    }
    uint64_t capacity = ld64_le(h + 16), gd_sector = ld64_le(h + 128), gd_size = ld64_le(h + 136);
    if (gd_size > UINT64_MAX / VMDK_SECTOR || capacity > (uint64_t)INT64_MAX / VMDK_SECTOR ||
        gd_sector > UINT64_MAX / VMDK_SECTOR) {
        error_setg(errp, "L1 size too big");
        return -EFBIG;
    }
    if ((ret = check_geometry(8, gd_size * VMDK_SECTOR / 8, errp)) < 0) {
        return ret;
    }
    VmdkExtent *e = vmdk_add_extent(s);
    e->file = f;
    e->own_file = true;
    e->filename = xstrdup(filename);
    e->kind = VMDK_EXT_SESPARSE;
    e->sectors = (int64_t)capacity;
    e->l1_offset = gd_sector * VMDK_SECTOR;
    e->l1_size = (uint32_t)(gd_size * VMDK_SECTOR / 8);
    e->l2_size = 4096;
    e->cluster_sectors = 8;
    e->entry_size = 8;
    e->se_l2_tables_sector = ld64_le(h + 144);
    e->se_clusters_sector = ld64_le(h + 192);
    return setup_sparse(bs, e, bfile_getlength(f), errp);
}

/* ---- grain tables ---- */

static size_t gt_bytes(const VmdkExtent *e)
{
    return (size_t)e->l2_size * e->entry_size;
}

static int write_slot(VmdkExtent *e, VmdkGtSlot *slot)
{
    int ret =
        bfile_pwrite(e->file, (int64_t)slot->gt_sector * VMDK_SECTOR, slot->table, gt_bytes(e));
    if (ret == 0 && e->l1_backup && e->l1_backup[slot->l1_index]) {
        ret = bfile_pwrite(e->file, (int64_t)e->l1_backup[slot->l1_index] * VMDK_SECTOR,
                           slot->table, gt_bytes(e));
    }
    if (ret == 0) {
        slot->dirty = false;
    }
    return ret;
}

int vmdk_flush_tables(VmdkExtent *e)
{
    for (int i = 0; i < VMDK_GT_CACHE_SLOTS; i++) {
        if (e->cache[i].dirty) {
            int ret = write_slot(e, &e->cache[i]);
            if (ret < 0) {
                return ret;
            }
        }
    }
    return 0;
}

static int load_gt(VmdkExtent *e, uint64_t gt_sector, uint32_t l1_index, VmdkGtSlot **out)
{
    VmdkGtSlot *victim = NULL;
    for (int i = 0; i < VMDK_GT_CACHE_SLOTS; i++) {
        VmdkGtSlot *c = &e->cache[i];
        if (c->table && c->gt_sector == gt_sector) {
            c->stamp = ++e->clock;
            *out = c;
            return 0;
        }
        /* prefer an empty slot, then the least recently used one */
        if (!victim || (!c->table && victim->table) ||
            (c->table && victim->table && c->stamp < victim->stamp)) {
            victim = c;
        }
    }
    if (victim->dirty) {
        int ret = write_slot(e, victim);
        if (ret < 0) {
            return ret;
        }
    }
    if (!victim->table) {
        victim->table = xmalloc(gt_bytes(e));
    }
    victim->gt_sector = 0;
    int ret =
        gt_sector > INT64_MAX / VMDK_SECTOR
            ? -EIO
            : bfile_pread(e->file, (int64_t)gt_sector * VMDK_SECTOR, victim->table, gt_bytes(e));
    if (ret < 0) {
        return ret;
    }
    victim->gt_sector = gt_sector;
    victim->l1_index = l1_index;
    victim->stamp = ++e->clock;
    *out = victim;
    return 0;
}

/* GT sector for l1_index of a seSparse extent (0: none, -EIO: corrupt). */
static int64_t se_gt_sector(const VmdkExtent *e, uint32_t l1_index)
{
    uint64_t v = ((uint64_t *)e->l1)[l1_index];
    if (v == 0) {
        return 0;
    }
    if ((v & 0xffffffff00000000ULL) != 0x1000000000000000ULL) {
        return -EIO;
    }
    uint64_t sector = e->se_l2_tables_sector + (v & 0xffffffffULL) * gt_bytes(e) / VMDK_SECTOR;
    return sector > 0xffffffffULL ? -EIO : (int64_t)sector;
}

static int se_decode(const VmdkExtent *e, uint64_t v, uint64_t *host_sector)
{
    switch (v & 0xf000000000000000ULL) {
    case 0: return v ? -EIO : VMDK_UNALLOC;
    case 0x1000000000000000ULL: /* unmapped: reads as zero */
    case 0x2000000000000000ULL: return VMDK_ZEROED;
    case 0x3000000000000000ULL: {
        uint64_t idx = ((v & 0x0fff000000000000ULL) >> 48) | ((v & 0x0000ffffffffffffULL) << 12);
        *host_sector = e->se_clusters_sector + idx * e->cluster_sectors;
        return VMDK_ALLOC;
    }
    default: return -EIO;
    }
}

int vmdk_lookup(VmdkExtent *e, uint64_t rel, uint64_t *host_sector)
{
    uint64_t sector = rel / VMDK_SECTOR;
    uint64_t l1_index = sector / e->l1_entry_sectors;
    uint32_t l2_index = (uint32_t)((sector / e->cluster_sectors) % e->l2_size);
    if (l1_index >= e->l1_size) {
        return -EIO;
    }
    uint32_t v;
    if (e->stream) {
        uint32_t *gt = e->stream_gts[l1_index];
        v = gt ? gt[l2_index] : 0;
    } else {
        int64_t gt_sector = e->kind == VMDK_EXT_SESPARSE ? se_gt_sector(e, (uint32_t)l1_index)
                                                         : ((uint32_t *)e->l1)[l1_index];
        if (gt_sector <= 0) {
            return gt_sector < 0 ? (int)gt_sector : VMDK_UNALLOC;
        }
        VmdkGtSlot *slot;
        int ret = load_gt(e, (uint64_t)gt_sector, (uint32_t)l1_index, &slot);
        if (ret < 0) {
            return ret;
        }
        if (e->kind == VMDK_EXT_SESPARSE) {
            return se_decode(e, ld64_le(slot->table + (size_t)l2_index * 8), host_sector);
        }
        v = ld32_le(slot->table + (size_t)l2_index * 4);
    }
    if (v == 0) {
        return VMDK_UNALLOC;
    }
    if (e->has_zero_grain && v == VMDK_GTE_ZEROED) {
        return VMDK_ZEROED;
    }
    *host_sector = v;
    return VMDK_ALLOC;
}

static int gte_status(const VmdkExtent *e, uint32_t v)
{
    if (v == 0) {
        return VMDK_UNALLOC;
    }
    return e->has_zero_grain && v == VMDK_GTE_ZEROED ? VMDK_ZEROED : VMDK_ALLOC;
}

int vmdk_lookup_run(VmdkExtent *e, uint64_t rel, uint64_t bytes, uint64_t *host_sector,
                    uint64_t *run)
{
    uint64_t grain = e->cluster_sectors * VMDK_SECTOR;
    int ret = vmdk_lookup(e, rel, host_sector);
    uint64_t n = MIN(grain - rel % grain, bytes);
    if (ret < 0 || e->stream || e->kind == VMDK_EXT_SESPARSE ||
        (ret == VMDK_ALLOC && e->compressed)) {
        *run = n;
        return ret;
    }
    uint64_t next_host = ret == VMDK_ALLOC ? *host_sector + e->cluster_sectors : 0;
    while (n < bytes) {
        uint64_t sector = (rel + n) / VMDK_SECTOR; /* grain-aligned from here on */
        uint64_t l1_index = sector / e->l1_entry_sectors;
        uint32_t l2_index = (uint32_t)((sector / e->cluster_sectors) % e->l2_size);
        if (l1_index >= e->l1_size) {
            break;
        }
        uint32_t gt_sector = ((uint32_t *)e->l1)[l1_index];
        if (gt_sector == 0) { /* no grain table: all of it unallocated */
            if (ret != VMDK_UNALLOC) {
                break;
            }
            n += (e->l2_size - l2_index) * grain;
            continue;
        }
        VmdkGtSlot *slot;
        if (load_gt(e, gt_sector, (uint32_t)l1_index, &slot) < 0) {
            break; /* the next lookup reports it */
        }
        for (; l2_index < e->l2_size && n < bytes; l2_index++) {
            uint32_t v = ld32_le(slot->table + (size_t)l2_index * 4);
            if (gte_status(e, v) != ret || (ret == VMDK_ALLOC && v != next_host)) {
                goto out;
            }
            next_host += e->cluster_sectors;
            n += grain;
        }
    }
out:
    *run = MIN(n, bytes);
    return ret;
}

/* Reserve whole grains at the end of the extent file. */
static uint64_t reserve(VmdkExtent *e, uint64_t sectors)
{
    uint64_t at = e->next_cluster_sector;
    e->next_cluster_sector += DIV_ROUND_UP(sectors, e->cluster_sectors) * e->cluster_sectors;
    return at;
}

/* Give l1_index a zeroed grain table (and a redundant one). */
static int alloc_gt(VmdkExtent *e, uint32_t l1_index)
{
    uint64_t gt_sectors = DIV_ROUND_UP(gt_bytes(e), VMDK_SECTOR);
    if (e->next_cluster_sector + 2 * gt_sectors + e->cluster_sectors >= VMDK_EXTENT_MAX_SECTORS) {
        return -ENOSPC;
    }
    uint8_t *zero = xzalloc(gt_sectors * VMDK_SECTOR);
    uint64_t at = reserve(e, gt_sectors);
    uint64_t backup = e->l1_backup ? reserve(e, gt_sectors) : 0;
    int ret = bfile_pwrite(e->file, (int64_t)at * VMDK_SECTOR, zero, gt_sectors * VMDK_SECTOR);
    if (ret == 0 && backup) {
        ret = bfile_pwrite(e->file, (int64_t)backup * VMDK_SECTOR, zero, gt_sectors * VMDK_SECTOR);
    }
    free(zero);
    uint8_t le[4];
    st32_le(le, (uint32_t)at);
    if (ret == 0) {
        ret = bfile_pwrite(e->file, (int64_t)(e->l1_offset + 4ULL * l1_index), le, 4);
    }
    if (ret == 0 && backup) {
        st32_le(le, (uint32_t)backup);
        ret = bfile_pwrite(e->file, (int64_t)(e->l1_backup_offset + 4ULL * l1_index), le, 4);
    }
    if (ret == 0) {
        ((uint32_t *)e->l1)[l1_index] = (uint32_t)at;
        if (backup) {
            e->l1_backup[l1_index] = (uint32_t)backup;
        }
    }
    return ret;
}

int vmdk_set_gte(VmdkExtent *e, uint64_t rel, uint32_t value)
{
    uint64_t sector = rel / VMDK_SECTOR;
    uint64_t l1_index = sector / e->l1_entry_sectors;
    uint32_t l2_index = (uint32_t)((sector / e->cluster_sectors) % e->l2_size);
    if (l1_index >= e->l1_size || e->kind == VMDK_EXT_SESPARSE) {
        return -EIO;
    }
    if (((uint32_t *)e->l1)[l1_index] == 0) {
        int ret = alloc_gt(e, (uint32_t)l1_index);
        if (ret < 0) {
            return ret;
        }
    }
    VmdkGtSlot *slot;
    int ret = load_gt(e, ((uint32_t *)e->l1)[l1_index], (uint32_t)l1_index, &slot);
    if (ret < 0) {
        return ret;
    }
    st32_le(slot->table + (size_t)l2_index * 4, value);
    slot->dirty = true;
    return 0;
}

int vmdk_alloc_grain(VmdkExtent *e, uint64_t *host_sector)
{
    if (e->next_cluster_sector + e->cluster_sectors >= VMDK_EXTENT_MAX_SECTORS) {
        return -ENOSPC;
    }
    *host_sector = reserve(e, e->cluster_sectors);
    return 0;
}
