/*
 * parallels.c — Parallels (and OpenVZ ploop) expanding disk images.
 *
 * Spec: QEMU docs/interop/parallels.txt.  A 64-byte little-endian header
 * (magic "WithoutFreeSpace" or "WithouFreSpacExt", version 2, geometry,
 * tracks = sectors per cluster, BAT entry count, size in sectors, in-use
 * flag, data_off), followed by the BAT: one 32-bit entry per cluster, in
 * sectors for "WithoutFreeSpace" images and in clusters for
 * "WithouFreSpacExt" ones (0 = unallocated).
 *
 * Supported subset, as qemu-img 7.2: create (cluster_size), read, write,
 * block status, check with repair (clusters outside the file, space leaked
 * at the end, unclean shutdown), the in-use flag (set while open
 * read-write; an image left in use cannot be opened read-write except by
 * check).  The format extension (dirty bitmaps) at ext_off is validated
 * on read-only opens as qemu does (magic, MD5, feature and bitmap headers;
 * bitmap contents are not loaded) and ignored, with a warning, read-write.
 * A backing file can be attached by the block layer (qemu's
 * supports_backing), and partial writes to new clusters copy from it.
 *
 * Design notes: clusters are appended at data_end (in sectors); the BAT is
 * cached in memory and its dirty sectors written back on flush; close
 * clears the in-use flag and cuts the file at data_end, as qemu does.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

#define PRL_FORMAT_EXT_MAGIC 0xAB234CEF23DCEA87ULL
#define PRL_MAGIC1           "WithoutFreeSpace"
#define PRL_MAGIC2           "WithouFreSpacExt"
#define PRL_VERSION          2
#define PRL_INUSE_MAGIC      0x746F6E59U
#define PRL_HEADER_SIZE      64
#define PRL_DEFAULT_CLUSTER  (1 * MiB)
#define PRL_MAX_IMAGE_FACTOR (1ULL << 32)
#define PRL_HEADS            16
#define PRL_SEC_IN_CYL       32
#define PRL_MAX_BAT_PAST_EOF (32 * MiB) /* bound for truncated images */

typedef struct BDRVParallelsState {
    uint32_t tracks;         /* sectors per cluster */
    uint32_t off_multiplier; /* BAT unit in sectors */
    uint32_t bat_size;
    uint32_t *bat; /* native order */
    uint8_t header[PRL_HEADER_SIZE];
    int64_t data_end;                 /* sectors */
    uint32_t dirty_first, dirty_last; /* BAT entries to write back */
    bool header_unclean;
    bool rw;
} BDRVParallelsState;

static uint32_t bat_entry_off(uint32_t idx)
{
    return PRL_HEADER_SIZE + 4 * idx;
}

static int parallels_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size < PRL_HEADER_SIZE) {
        return 0;
    }
    if ((!memcmp(buf, PRL_MAGIC1, 16) || !memcmp(buf, PRL_MAGIC2, 16)) &&
        ld32_le(buf + 16) == PRL_VERSION) {
        return 100;
    }
    return 0;
}

/* Host sector of guest sector, or -1 when unallocated. */
static int64_t bat2sect(const BDRVParallelsState *s, uint32_t idx)
{
    return (int64_t)s->bat[idx] * s->off_multiplier;
}

static int64_t seek_to_sector(const BDRVParallelsState *s, int64_t sector)
{
    uint64_t idx = (uint64_t)sector / s->tracks;
    if (idx >= s->bat_size || !s->bat[idx]) {
        return -1;
    }
    return bat2sect(s, (uint32_t)idx) + sector % s->tracks;
}

static int parse_header(BlockDriverState *bs, Error **errp)
{
    BDRVParallelsState *s = bs->opaque;
    const uint8_t *h = s->header;
    uint64_t nb_sectors = ld64_le(h + 36);
    if (ld32_le(h + 16) != PRL_VERSION) {
        error_setg(errp, "Image not in Parallels format");
        return -EINVAL;
    }
    s->tracks = ld32_le(h + 28);
    if (!memcmp(h, PRL_MAGIC1, 16)) {
        s->off_multiplier = 1;
        nb_sectors &= 0xffffffff;
    } else if (!memcmp(h, PRL_MAGIC2, 16)) {
        s->off_multiplier = s->tracks;
    } else {
        error_setg(errp, "Image not in Parallels format");
        return -EINVAL;
    }
    if (s->tracks == 0) {
        error_setg(errp, "Invalid image: Zero sectors per track");
        return -EINVAL;
    }
    if (s->tracks > INT32_MAX / 513) {
        error_setg(errp, "Invalid image: Too big cluster");
        return -EFBIG;
    }
    if (nb_sectors > (uint64_t)BDRV_MAX_LENGTH / BDRV_SECTOR_SIZE) {
        error_setg(errp, "Invalid image: Too big size");
        return -EFBIG;
    }
    s->bat_size = ld32_le(h + 32);
    if (s->bat_size > INT32_MAX / 4) {
        error_setg(errp, "Catalog too large");
        return -EFBIG;
    }
    bs->total_size = (int64_t)nb_sectors * (int64_t)BDRV_SECTOR_SIZE;
    return 0;
}

/* First free sector: after the BAT area (data_off) and every allocated cluster. */
static void recompute_data_end(BDRVParallelsState *s)
{
    s->data_end = ld32_le(s->header + 48);
    if (s->data_end == 0) {
        s->data_end = DIV_ROUND_UP(bat_entry_off(s->bat_size), BDRV_SECTOR_SIZE);
    }
    for (uint32_t i = 0; i < s->bat_size; i++) {
        int64_t off = bat2sect(s, i);
        if (off >= s->data_end) {
            s->data_end = off + s->tracks;
        }
    }
}

static int load_bat(BlockDriverState *bs, Error **errp)
{
    BDRVParallelsState *s = bs->opaque;
    size_t bytes = (size_t)s->bat_size * 4;
    int64_t len = bfile_getlength(bs->file);
    if (len < 0) {
        error_setg_errno(errp, (int)-len, "Could not get image size");
        return (int)len;
    }
    if (bat_entry_off(s->bat_size) > (uint64_t)len && bytes > PRL_MAX_BAT_PAST_EOF) {
        error_setg(errp, "Catalog too large");
        return -EFBIG;
    }
    if (bdrv_metadata_reserve(bs, "BAT", bytes, errp) < 0) {
        return -EFBIG;
    }
    s->bat = xmalloc(MAX(bytes, 4));
    int ret = bfile_pread(bs->file, PRL_HEADER_SIZE, s->bat, bytes);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the BAT");
        return ret;
    }
    for (uint32_t i = 0; i < s->bat_size; i++) {
        s->bat[i] = ld32_le(&s->bat[i]);
    }
    recompute_data_end(s);
    s->dirty_first = UINT32_MAX;
    return 0;
}

static int write_header(BlockDriverState *bs)
{
    BDRVParallelsState *s = bs->opaque;
    int ret = bfile_pwrite(bs->file, 0, s->header, PRL_HEADER_SIZE);
    return ret == 0 ? bfile_flush(bs->file) : ret;
}

/* ---- format extension (docs/interop/parallels.txt, "Format Extension") ----
 * Read-only opens validate it as qemu 7.2 does: magic, MD5 of the rest of
 * the cluster, then a list of features (dirty bitmaps, end marker) whose
 * headers must be consistent with the disk.  Bitmap contents do not change
 * guest data and are not loaded.  Read-write opens ignore it with qemu's
 * warning (qemu cannot update it either). */
#define PRL_EXT_HEADER_SIZE 24 /* magic, MD5 */
#define PRL_FEATURE_SIZE    24 /* magic, flags, data_size, unused */
#define PRL_BITMAP_SIZE     32 /* size, id, granularity, l1_size */
#define PRL_FEATURE_END     0x0ULL
#define PRL_FEATURE_BITMAP  0x20385FAE252CB34AULL

/* One dirty-bitmap feature header (data_size bytes at d). */
static int check_bitmap_feature(BlockDriverState *bs, const uint8_t *d, uint32_t data_size,
                                Error **errp)
{
    BDRVParallelsState *s = bs->opaque;
    if (data_size < PRL_BITMAP_SIZE) {
        error_setg(errp,
                   "Too small Bitmap Feature area in Parallels Format Extension: %" PRIu32
                   " bytes, expected at least %d bytes",
                   data_size, PRL_BITMAP_SIZE);
        return -EINVAL;
    }
    uint64_t sectors = ld64_le(d), disk = (uint64_t)bs->total_size / BDRV_SECTOR_SIZE;
    uint64_t gran = (uint64_t)ld32_le(d + 24) * BDRV_SECTOR_SIZE;
    uint32_t l1_size = ld32_le(d + 28);
    if (sectors != disk) {
        error_setg(
            errp, "Bitmap size (in sectors) %" PRIu64 " differs from disk size in sectors %" PRIu64,
            sectors, disk);
        return -EINVAL;
    }
    if (gran < BDRV_SECTOR_SIZE || gran > UINT32_MAX || !IS_POWER_OF_2(gran)) {
        /* qemu 7.2 asserts here; later versions refuse with this message */
        error_setg(errp,
                   "Invalid bitmap granularity %" PRIu64 ", expected a power of two of at "
                   "least 512 bytes",
                   gran);
        return -EINVAL;
    }
    if ((uint64_t)l1_size * 8 > data_size - PRL_BITMAP_SIZE) {
        error_setg(errp, "Bitmaps feature corrupted: l1 table exceeds extension data_size");
        return -EINVAL;
    }
    /* the bitmap is serialized in 64-bit words, one bit per granule */
    uint64_t bits = DIV_ROUND_UP((uint64_t)bs->total_size, gran);
    uint64_t bytes = DIV_ROUND_UP(bits, 64) * 8;
    uint64_t cluster = (uint64_t)s->tracks * BDRV_SECTOR_SIZE;
    uint64_t want = DIV_ROUND_UP(bytes, cluster);
    if (want != l1_size) {
        error_setg(errp,
                   "Bitmap table size %" PRIu32 " does not correspond to bitmap size and "
                   "cluster size. Expected %" PRIu64,
                   l1_size, want);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        /* qemu shifts the sector number into a signed 64-bit offset; only a
         * negative result fails its read (past the end reads zeros) */
        uint64_t entry = ld64_le(d + PRL_BITMAP_SIZE + 8 * (size_t)i);
        if (entry > 1 && (int64_t)(entry << 9) < 0) {
            error_setg_errno(errp, EIO, "Failed to read bitmap data cluster");
            return -EIO;
        }
    }
    return 0;
}

/* The features after the header: bitmaps until the end marker. */
static int walk_features(BlockDriverState *bs, const uint8_t *c, uint64_t cluster, Error **errp)
{
    uint64_t pos = PRL_EXT_HEADER_SIZE;
    for (;;) {
        if (cluster - pos < PRL_FEATURE_SIZE) {
            error_setg(errp,
                       "Can not read feature header, as remaining bytes (%" PRIu64
                       ") in Format Extension is less than Feature header size (%d)",
                       cluster - pos, PRL_FEATURE_SIZE);
            return -EINVAL;
        }
        uint64_t magic = ld64_le(c + pos), flags = ld64_le(c + pos + 8);
        uint32_t data_size = ld32_le(c + pos + 16);
        pos += PRL_FEATURE_SIZE;
        if (flags) {
            error_setg(errp, "Flags for extension feature are unsupported");
            return -EINVAL;
        }
        uint64_t padded = ((uint64_t)data_size + 7) & ~7ULL;
        if (padded > cluster - pos) {
            error_setg(errp, "Feature data_size exceedes Format Extension cluster");
            return -EINVAL;
        }
        if (magic == PRL_FEATURE_END) {
            return 0;
        }
        if (magic != PRL_FEATURE_BITMAP) {
            error_setg(errp, "Unknown feature: 0x%" PRIx64, magic);
            return -EINVAL;
        }
        int ret = check_bitmap_feature(bs, c + pos, data_size, errp);
        if (ret < 0) {
            return ret;
        }
        pos += padded;
    }
}

static int check_format_extension(BlockDriverState *bs, int flags, Error **errp)
{
    BDRVParallelsState *s = bs->opaque;
    uint64_t ext_off = ld64_le(s->header + 56);
    if (ext_off == 0) {
        return 0;
    }
    if (flags & BDRV_O_RDWR) {
        msg_warn("Format Extension ignored in RW mode");
        return 0;
    }
    uint64_t cluster = (uint64_t)s->tracks * BDRV_SECTOR_SIZE; /* < 2 GiB, parse_header */
    int ret = bdrv_metadata_reserve(bs, "Format Extension cluster", cluster, errp);
    if (ret < 0) {
        return ret;
    }
    uint8_t *c = xmalloc(cluster);
    /* past the end of the file: zeros, as qemu reads */
    ret = ext_off > (uint64_t)INT64_MAX / BDRV_SECTOR_SIZE - cluster
              ? -EIO
              : bfile_pread(bs->file, (int64_t)(ext_off * BDRV_SECTOR_SIZE), c, cluster);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read Format Extension cluster");
    } else if (ld64_le(c) != PRL_FORMAT_EXT_MAGIC) {
        error_setg(errp,
                   "Wrong parallels Format Extension magic: 0x%" PRIx64 ", expected: 0x%" PRIx64,
                   ld64_le(c), (uint64_t)PRL_FORMAT_EXT_MAGIC);
        ret = -EINVAL;
    } else {
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        if (!EVP_Digest(c + PRL_EXT_HEADER_SIZE, cluster - PRL_EXT_HEADER_SIZE, md, &md_len,
                        EVP_md5(), NULL) ||
            md_len != 16 || memcmp(md, c + 8, 16)) {
            error_setg(errp, "Wrong checksum in Format Extension header. Format extension is "
                             "corrupted.");
            ret = -EINVAL;
        } else {
            ret = walk_features(bs, c, cluster, errp);
        }
    }
    free(c);
    return ret;
}

static int parallels_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVParallelsState *s = bs->opaque;
    int ret = bfile_pread(bs->file, 0, s->header, PRL_HEADER_SIZE);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the Parallels header");
        return ret;
    }
    ret = parse_header(bs, errp);
    if (ret == 0) {
        ret = check_format_extension(bs, flags, errp);
    }
    if (ret == 0) {
        ret = load_bat(bs, errp);
    }
    if (ret < 0) {
        return ret;
    }
    bs->request_alignment = BDRV_SECTOR_SIZE;
    if (ld32_le(s->header + 44) == PRL_INUSE_MAGIC) {
        s->header_unclean = true;
        if ((flags & BDRV_O_RDWR) && !(flags & BDRV_O_CHECK)) {
            error_setg(errp,
                       "parallels: Image was not closed correctly; cannot be opened read/write");
            return -EACCES;
        }
    }
    if (flags & BDRV_O_RDWR) {
        st32_le(s->header + 44, PRL_INUSE_MAGIC);
        ret = write_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update the Parallels header");
            return ret;
        }
        s->rw = true;
    }
    return 0;
}

/* Memory only: used by close and by a failed open (the block layer does
 * not call close when open fails). */
static void parallels_free(BlockDriverState *bs)
{
    BDRVParallelsState *s = bs->opaque;
    free(s->bat);
    s->bat = NULL;
}

static int parallels_flush(BlockDriverState *bs)
{
    BDRVParallelsState *s = bs->opaque;
    if (s->dirty_first == UINT32_MAX) {
        return 0;
    }
    uint32_t n = s->dirty_last - s->dirty_first + 1;
    uint8_t *out = xmalloc((size_t)n * 4);
    for (uint32_t i = 0; i < n; i++) {
        st32_le(out + 4 * i, s->bat[s->dirty_first + i]);
    }
    int ret = bfile_pwrite(bs->file, bat_entry_off(s->dirty_first), out, (size_t)n * 4);
    free(out);
    if (ret == 0) {
        s->dirty_first = UINT32_MAX;
    }
    return ret;
}

static void parallels_close(BlockDriverState *bs)
{
    BDRVParallelsState *s = bs->opaque;
    if (s->rw) {
        parallels_flush(bs);
        st32_le(s->header + 44, 0);
        bfile_pwrite(bs->file, 0, s->header, PRL_HEADER_SIZE);
        bfile_truncate(bs->file, s->data_end * (int64_t)BDRV_SECTOR_SIZE, PREALLOC_OFF, NULL);
    }
    free(s->bat);
}

/* ---- data plane ---- */

static int parallels_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVParallelsState *s = bs->opaque;
    int64_t cs = (int64_t)s->tracks * BDRV_SECTOR_SIZE;
    uint8_t *p = buf;
    while (bytes > 0) {
        int64_t n = MIN(bytes, cs - offset % cs);
        int64_t sect = seek_to_sector(s, offset / BDRV_SECTOR_SIZE);
        int ret = sect < 0 ? bdrv_backing_pread(bs, offset, n, p)
                           : bfile_pread(bs->file, sect * (int64_t)BDRV_SECTOR_SIZE, p, (size_t)n);
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        p += n;
    }
    return 0;
}

static void mark_bat_dirty(BDRVParallelsState *s, uint32_t idx)
{
    if (s->dirty_first == UINT32_MAX) {
        s->dirty_first = s->dirty_last = idx;
    } else {
        s->dirty_first = MIN(s->dirty_first, idx);
        s->dirty_last = MAX(s->dirty_last, idx);
    }
}

/* Give guest cluster idx a host cluster at data_end (filled first when the
 * write will not cover it all). */
static int alloc_cluster(BlockDriverState *bs, uint32_t idx, bool partial)
{
    BDRVParallelsState *s = bs->opaque;
    int64_t cs = (int64_t)s->tracks * BDRV_SECTOR_SIZE;
    if (s->data_end % s->off_multiplier ||
        (uint64_t)s->data_end / s->off_multiplier >= UINT32_MAX) {
        return -EFBIG;
    }
    int ret = 0;
    if (partial) {
        /* the part the write leaves: backing data, or zeros over whatever
         * stale bytes the file may hold past data_end */
        uint8_t *old = xzalloc((size_t)cs);
        ret = bs->backing ? bdrv_backing_pread(bs, (int64_t)idx * cs,
                                               MIN(cs, bs->total_size - (int64_t)idx * cs), old)
                          : 0;
        if (ret == 0) {
            ret = bfile_pwrite(bs->file, s->data_end * (int64_t)BDRV_SECTOR_SIZE, old, (size_t)cs);
        }
        free(old);
    }
    if (ret == 0) {
        s->bat[idx] = (uint32_t)(s->data_end / s->off_multiplier);
        s->data_end += s->tracks;
        mark_bat_dirty(s, idx);
    }
    return ret;
}

static int parallels_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVParallelsState *s = bs->opaque;
    int64_t cs = (int64_t)s->tracks * BDRV_SECTOR_SIZE;
    const uint8_t *p = buf;
    int64_t run_host = 0, run_len = 0;
    const uint8_t *run_buf = NULL;
    int ret = 0;
    while (bytes > 0 && ret == 0) {
        int64_t n = MIN(bytes, cs - offset % cs);
        uint64_t idx = (uint64_t)offset / (uint64_t)cs;
        if (idx >= s->bat_size) {
            ret = -EIO; /* size beyond the BAT: a damaged header */
            break;
        }
        if (!s->bat[idx]) {
            ret = alloc_cluster(bs, (uint32_t)idx, n < cs);
            if (ret < 0) {
                break;
            }
        }
        int64_t host = seek_to_sector(s, offset / BDRV_SECTOR_SIZE) * (int64_t)BDRV_SECTOR_SIZE +
                       offset % BDRV_SECTOR_SIZE;
        if (run_len && host != run_host + run_len) {
            ret = bfile_pwrite(bs->file, run_host, run_buf, (size_t)run_len);
            run_len = 0;
        }
        if (!run_len) {
            run_host = host;
            run_buf = p;
        }
        run_len += n;
        offset += n;
        bytes -= n;
        p += n;
    }
    if (ret == 0 && run_len) {
        ret = bfile_pwrite(bs->file, run_host, run_buf, (size_t)run_len);
    }
    return ret;
}

static int parallels_block_status(BlockDriverState *bs, bool want_zero, int64_t offset,
                                  int64_t bytes, int64_t *pnum, int64_t *map, BlockFile **file)
{
    BDRVParallelsState *s = bs->opaque;
    int64_t cs = (int64_t)s->tracks * BDRV_SECTOR_SIZE;
    int64_t start = seek_to_sector(s, offset / BDRV_SECTOR_SIZE);
    int64_t n = MIN(bytes, cs - offset % cs);
    /* extend over clusters that continue the same run */
    while (n < bytes) {
        if (start < 0 && (uint64_t)((offset + n) / BDRV_SECTOR_SIZE) / s->tracks >= s->bat_size) {
            n = bytes; /* past the BAT: a hole to the end (not 2^40 steps of one cluster) */
            break;
        }
        int64_t next = seek_to_sector(s, (offset + n) / BDRV_SECTOR_SIZE);
        if (start < 0 ? next >= 0 : next != start + n / (int64_t)BDRV_SECTOR_SIZE) {
            break;
        }
        n += MIN(bytes - n, cs);
    }
    *pnum = n;
    if (start < 0) {
        return 0;
    }
    *map = start * (int64_t)BDRV_SECTOR_SIZE;
    *file = bs->file;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
}

/* ---- check ---- */

static int parallels_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVParallelsState *s = bs->opaque;
    int64_t cs = (int64_t)s->tracks * BDRV_SECTOR_SIZE;
    int64_t size = bfile_getlength(bs->file);
    if (size < 0) {
        res->check_errors++;
        return (int)size;
    }
    if (s->header_unclean) {
        msg_report("%s image was not closed correctly",
                   fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR");
        res->corruptions++;
        if (fix & BDRV_FIX_ERRORS) {
            res->corruptions_fixed++;
            s->header_unclean = false; /* close clears the flag */
        }
    }
    res->bfi.total_clusters = s->bat_size;
    int64_t high_off = 0, prev_off = 0;
    for (uint32_t i = 0; i < s->bat_size; i++) {
        int64_t off = bat2sect(s, i) * (int64_t)BDRV_SECTOR_SIZE;
        if (off == 0) {
            prev_off = 0;
            continue;
        }
        if (off > size) {
            msg_report("%s cluster %u is outside image",
                       fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR", i);
            res->corruptions++;
            if (fix & BDRV_FIX_ERRORS) {
                prev_off = 0;
                s->bat[i] = 0;
                mark_bat_dirty(s, i);
                res->corruptions_fixed++;
                continue;
            }
        }
        res->bfi.allocated_clusters++;
        high_off = MAX(high_off, off);
        if (prev_off != 0 && prev_off + cs != off) {
            res->bfi.fragmented_clusters++;
        }
        prev_off = off;
    }
    if (res->corruptions_fixed) {
        recompute_data_end(s); /* so close does not keep a dropped cluster's space */
    }
    if (parallels_flush(bs) < 0) {
        res->check_errors++;
        return -EIO;
    }
    res->image_end_offset = high_off + cs;
    if (size > res->image_end_offset) {
        int64_t count = DIV_ROUND_UP(size - res->image_end_offset, cs);
        msg_report("%s space leaked at the end of the image %" PRId64,
                   fix & BDRV_FIX_LEAKS ? "Repairing" : "ERROR", size - res->image_end_offset);
        res->leaks += (int)count;
        if (fix & BDRV_FIX_LEAKS) {
            Error *err = NULL;
            if (bfile_truncate(bs->file, res->image_end_offset, PREALLOC_OFF, &err) < 0) {
                msg_report("%s", error_get_pretty(err));
                error_free(err);
                res->check_errors++;
                return -EIO;
            }
            s->data_end = res->image_end_offset / (int64_t)BDRV_SECTOR_SIZE;
            res->leaks_fixed += (int)count;
        }
    }
    return 0;
}

/* ---- create ---- */

static const OptDesc parallels_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"cluster_size", OPT_SIZE, "Parallels image cluster size", "1048576"},
    {NULL, 0, NULL, NULL},
};

static int parallels_create(const BdrvCreateInfo *ci, Error **errp)
{
    uint64_t cl_size;
    if (opts_get_size(ci->opts, "cluster_size", PRL_DEFAULT_CLUSTER, &cl_size, errp) < 0) {
        return -EINVAL;
    }
    uint64_t total = ROUND_UP(ci->size, BDRV_SECTOR_SIZE);
    cl_size = ROUND_UP(cl_size, BDRV_SECTOR_SIZE);
    if (cl_size >= INT64_MAX / PRL_MAX_IMAGE_FACTOR) {
        error_setg(errp, "Cluster size is too large");
        return -EINVAL;
    }
    if (cl_size == 0 || total >= PRL_MAX_IMAGE_FACTOR * cl_size) {
        error_setg(errp, "Image size is too large for this cluster size");
        return -E2BIG;
    }
    uint32_t bat_entries = (uint32_t)DIV_ROUND_UP(total, cl_size);
    uint64_t bat_bytes = ROUND_UP((uint64_t)bat_entry_off(bat_entries), cl_size);
    uint8_t h[PRL_HEADER_SIZE] = {0};
    memcpy(h, PRL_MAGIC2, 16);
    st32_le(h + 16, PRL_VERSION);
    st32_le(h + 20, PRL_HEADS);
    st32_le(h + 24, (uint32_t)(total / BDRV_SECTOR_SIZE / PRL_HEADS / PRL_SEC_IN_CYL));
    st32_le(h + 28, (uint32_t)(cl_size / BDRV_SECTOR_SIZE));
    st32_le(h + 32, bat_entries);
    st64_le(h + 36, total / BDRV_SECTOR_SIZE);
    st32_le(h + 48, (uint32_t)(bat_bytes / BDRV_SECTOR_SIZE));
    BlockFile *f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    int ret = bfile_truncate(f, (int64_t)bat_bytes, PREALLOC_OFF, errp);
    if (ret == 0) {
        ret = bfile_pwrite(f, 0, h, sizeof(h));
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to create Parallels image");
        }
    }
    bfile_close(f);
    return ret;
}

const BlockDriver bdrv_parallels = {
    .format_name = "parallels",
    .instance_size = sizeof(BDRVParallelsState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .supports_backing = true,
    .probe = parallels_probe,
    .create = parallels_create,
    .create_opts = parallels_create_opts,
    .open = parallels_open,
    .free_state = parallels_free,
    .close = parallels_close,
    .pread = parallels_pread,
    .pwrite = parallels_pwrite,
    .flush = parallels_flush,
    .block_status = parallels_block_status,
    .check = parallels_check,
};
