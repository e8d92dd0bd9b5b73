/*
 * vmdk.c — the VMDK format driver (VMware "Virtual Disk Format 1.1"):
 * probe, open, guest reads and writes, block status, info, check.
 *
 * Supported: monolithicSparse, monolithicFlat, twoGbMaxExtentSparse,
 * twoGbMaxExtentFlat, streamOptimized (read and write; stream writes go
 * through compress()/write_compressed() so the pipeline can deflate in
 * parallel), vmfs, vmfsThin, vmfsSparse (COWD) and seSparse (read only),
 * backing (parent) images by parentFileNameHint with qemu's CID check.
 * The other files: vmdk_desc.c, vmdk_sparse.c, vmdk_stream.c,
 * vmdk_create.c (see vmdk.h).
 *
 * Behaviour follows qemu 7.2's block/vmdk.c: the CID is renewed on the
 * first write after each open; a write to an allocated stream grain fails;
 * check only verifies that grains lie inside their files and cannot repair.
 */
#include "formats/vmdk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/util.h"

static int vmdk_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size < 4) {
        return 0;
    }
    uint32_t magic = ld32_be(buf);
    if (magic == VMDK3_MAGIC || magic == VMDK4_MAGIC) {
        return 100;
    }
    /* A descriptor file: comments and blank lines, then "version=N". */
    const char *p = (const char *)buf, *end = p + buf_size;
    while (p < end) {
        if (*p == '#') {
            while (p < end && *p != '\n') {
                p++;
            }
            p++;
            continue;
        }
        if (*p == ' ') {
            while (p < end && *p == ' ') {
                p++;
            }
            if (p < end && *p == '\r') {
                p++;
            }
            if (p == end || *p != '\n') {
                return 0;
            }
            p++;
            continue;
        }
        for (int v = 1; v <= 3; v++) {
            char lf[16], crlf[16];
            int n1 = snprintf(lf, sizeof(lf), "version=%d\n", v);
            int n2 = snprintf(crlf, sizeof(crlf), "version=%d\r\n", v);
            if ((end - p >= n1 && !memcmp(p, lf, (size_t)n1)) ||
                (end - p >= n2 && !memcmp(p, crlf, (size_t)n2))) {
                return 100;
            }
        }
        return 0;
    }
    return 0;
}

/* ---- open/close ---- */

static void free_state(BDRVVmdkState *s)
{
    for (int i = 0; i < s->num_extents; i++) {
        vmdk_extent_free(&s->extents[i]);
    }
    free(s->extents);
    free(s->create_type);
    free(s->desc);
    memset(s, 0, sizeof(*s));
}

/* The descriptor embedded in a sparse file (qemu reads it at sector 1). */
static int read_embedded_desc(BlockDriverState *bs, Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    s->desc_file = bs->file;
    s->desc_offset = VMDK_SECTOR;
    s->desc_room = VMDK_EMBEDDED_DESC;
    if (s->num_extents > 0 && s->extents[0].file == bs->file) {
        uint64_t ds = ld64_le(s->extents[0].header + VMDK4_OFF_DESC_SIZE);
        uint64_t go = ld64_le(s->extents[0].header + VMDK4_OFF_GRAIN_OFFSET);
        /* never let a CID rewrite run into grains */
        if (go > 1 && (go - 1) * VMDK_SECTOR < (uint64_t)s->desc_room) {
            s->desc_room = (int64_t)(go - 1) * VMDK_SECTOR;
        }
        (void)ds;
    }
    free(s->desc);
    s->desc = vmdk_read_desc(bs->file, VMDK_SECTOR, VMDK_EMBEDDED_DESC, errp);
    return s->desc ? 0 : -EINVAL;
}

static int finish_open(BlockDriverState *bs, int flags, Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    int64_t total = 0;
    for (int i = 0; i < s->num_extents; i++) {
        VmdkExtent *e = &s->extents[i];
        if (e->sectors < 0 || ADD_OVERFLOW(total, e->sectors, &total) ||
            total > BDRV_MAX_LENGTH / VMDK_SECTOR) {
            error_setg(errp, "Image too large");
            return -EFBIG;
        }
        if (e->compressed && (flags & BDRV_O_RDWR)) {
            int ret = vmdk_stream_begin(e, errp);
            if (ret < 0) {
                return ret;
            }
            bs->request_alignment =
                (uint32_t)MAX(bs->request_alignment, e->cluster_sectors * VMDK_SECTOR);
        }
    }
    bs->total_size = total * VMDK_SECTOR;
    return vmdk_parse_desc_ids(bs, errp);
}

static int vmdk_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    char *buf = vmdk_read_desc(bs->file, 0, 0, errp);
    if (!buf) {
        return -EINVAL;
    }
    int ret;
    /* a file shorter than a magic is taken as (invalid) descriptor text, as qemu */
    uint32_t magic = bfile_getlength(bs->file) >= 4 ? ld32_be(buf) : 0;
    if (magic == VMDK3_MAGIC || magic == VMDK4_MAGIC) {
        free(buf);
        ret = vmdk_open_sparse(bs, bs->file, false, NULL, bs->filename, flags, errp);
        if (ret == 0) {
            ret = read_embedded_desc(bs, errp);
        }
    } else {
        s->desc = buf;
        ret = vmdk_open_desc_file(bs, buf, flags, errp);
    }
    if (ret == 0) {
        ret = finish_open(bs, flags, errp);
    }
    if (ret < 0) {
        free_state(s);
    }
    return ret;
}

static int vmdk_flush(BlockDriverState *bs);

static void vmdk_close(BlockDriverState *bs)
{
    BDRVVmdkState *s = bs->opaque;
    if (!bs->read_only) {
        vmdk_flush(bs);
    }
    free_state(s);
}

/* ---- extent lookup ---- */

static VmdkExtent *find_extent(BDRVVmdkState *s, int64_t offset)
{
    int64_t sector = offset / VMDK_SECTOR;
    int lo = 0, hi = s->num_extents - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        VmdkExtent *e = &s->extents[mid];
        if (sector < e->start_sector) {
            hi = mid - 1;
        } else if (sector >= e->start_sector + e->sectors) {
            lo = mid + 1;
        } else {
            return e;
        }
    }
    return NULL;
}

/* Bytes from offset to the end of its grain (or extent, for flat). */
static int64_t chunk_len(const VmdkExtent *e, int64_t offset, int64_t bytes, uint64_t *rel)
{
    *rel = (uint64_t)(offset - e->start_sector * VMDK_SECTOR);
    int64_t n = e->sectors * VMDK_SECTOR - (int64_t)*rel;
    if (!e->flat) {
        uint64_t g = e->cluster_sectors * VMDK_SECTOR;
        n = MIN(n, (int64_t)(g - *rel % g));
    }
    return MIN(n, bytes);
}

/* qemu refuses to read through a parent whose CID changed. */
static bool parent_cid_valid(BlockDriverState *bs)
{
    BDRVVmdkState *s = bs->opaque;
    if (s->cid_checked || !bs->backing) {
        return true;
    }
    if (bs->backing->drv != &bdrv_vmdk) {
        return false;
    }
    BDRVVmdkState *ps = bs->backing->opaque;
    if (ps->cid != s->parent_cid) {
        return false;
    }
    s->cid_checked = true;
    return true;
}

static int read_unallocated(BlockDriverState *bs, int lookup, int64_t offset, int64_t n,
                            uint8_t *buf)
{
    if (lookup == VMDK_UNALLOC && bs->backing) {
        if (!parent_cid_valid(bs)) {
            return -EINVAL;
        }
        return bdrv_backing_pread(bs, offset, n, buf);
    }
    memset(buf, 0, (size_t)n);
    return 0;
}

static int vmdk_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVVmdkState *s = bs->opaque;
    uint8_t *out = buf;
    while (bytes > 0) {
        VmdkExtent *e = find_extent(s, offset);
        if (!e) {
            if (offset < bs->total_size) {
                return -EIO;
            }
            memset(out, 0, (size_t)bytes); /* alignment padding past the end */
            return 0;
        }
        uint64_t rel, host = 0;
        int64_t n = chunk_len(e, offset, bytes, &rel);
        int ret;
        if (e->flat) {
            ret = bfile_pread(e->file, e->flat_start + (int64_t)rel, out, (size_t)n);
        } else if ((ret = vmdk_lookup(e, rel, &host)) != VMDK_ALLOC) {
            ret = ret < 0 ? ret : read_unallocated(bs, ret, offset, n, out);
        } else if (e->compressed) {
            ret = vmdk_read_compressed(e, host, rel % (e->cluster_sectors * VMDK_SECTOR), out,
                                       (size_t)n);
        } else {
            ret = bfile_pread(e->file,
                              (int64_t)(host * VMDK_SECTOR + rel % (e->cluster_sectors * 512)), out,
                              (size_t)n);
        }
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        out += n;
    }
    return 0;
}

/* ---- writes ---- */

static int update_cid_once(BlockDriverState *bs)
{
    BDRVVmdkState *s = bs->opaque;
    if (s->cid_updated) {
        return 0;
    }
    uint32_t cid;
    repro_random_bytes(&bs->repro, "vmdk-cid-on-write", &cid, sizeof(cid));
    s->cid_updated = true;
    return vmdk_write_cid(bs, cid);
}

/* First write into an unallocated grain: the whole grain, with COW. */
static int write_new_grain(BlockDriverState *bs, VmdkExtent *e, int lookup, int64_t offset,
                           uint64_t rel, int64_t n, const uint8_t *data)
{
    uint64_t g = e->cluster_sectors * VMDK_SECTOR;
    uint64_t in_grain = rel % g;
    uint8_t *grain = NULL;
    const uint8_t *src = data;
    int ret = 0;
    if ((uint64_t)n != g) {
        grain = xmalloc(g);
        ret = read_unallocated(bs, lookup, offset - (int64_t)in_grain, (int64_t)g, grain);
        memcpy(grain + in_grain, data, (size_t)n);
        src = grain;
    }
    uint64_t host;
    if (ret == 0) {
        ret = vmdk_alloc_grain(e, &host);
    }
    if (ret == 0) {
        ret = bfile_pwrite(e->file, (int64_t)(host * VMDK_SECTOR), src, g);
    }
    if (ret == 0) {
        ret = vmdk_set_gte(e, rel, (uint32_t)host);
    }
    free(grain);
    return ret;
}

static int write_stream_grain(VmdkExtent *e, uint64_t rel, int64_t n, const uint8_t *data)
{
    uint64_t g = e->cluster_sectors * VMDK_SECTOR;
    if (rel % g || ((uint64_t)n != g && rel + (uint64_t)n != (uint64_t)e->sectors * VMDK_SECTOR)) {
        return -EINVAL; /* only whole grains can be compressed */
    }
    size_t cap = VMDK_GRAIN_MARKER_SIZE + compressBound((uLong)n);
    uint8_t *z = xmalloc(cap);
    ssize_t len = vmdk_compress_grain(z, cap, data, (size_t)n);
    int ret = len < 0 ? (int)len : vmdk_stream_append(e, rel, z, (size_t)len);
    free(z);
    return ret;
}

static int write_chunk(BlockDriverState *bs, VmdkExtent *e, int64_t offset, uint64_t rel, int64_t n,
                       const uint8_t *data)
{
    if (e->flat) {
        return bfile_pwrite(e->file, e->flat_start + (int64_t)rel, data, (size_t)n);
    }
    if (e->kind == VMDK_EXT_SESPARSE) {
        return -ENOTSUP;
    }
    if (e->compressed) {
        return write_stream_grain(e, rel, n, data);
    }
    uint64_t host;
    int ret = vmdk_lookup(e, rel, &host);
    if (ret == VMDK_ALLOC) {
        uint64_t g = e->cluster_sectors * VMDK_SECTOR;
        return bfile_pwrite(e->file, (int64_t)(host * VMDK_SECTOR + rel % g), data, (size_t)n);
    }
    return ret < 0 ? ret : write_new_grain(bs, e, ret, offset, rel, n, data);
}

static int vmdk_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVVmdkState *s = bs->opaque;
    const uint8_t *in = buf;
    int ret = update_cid_once(bs);
    while (ret == 0 && bytes > 0) {
        VmdkExtent *e = find_extent(s, offset);
        if (!e) {
            return -EIO;
        }
        uint64_t rel;
        int64_t n = chunk_len(e, offset, bytes, &rel);
        ret = write_chunk(bs, e, offset, rel, n, in);
        offset += n;
        bytes -= n;
        in += n;
    }
    return ret;
}

/* Can [offset, +bytes) be zeroed without writing data?  apply: do it. */
static int zero_pass(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags, bool apply)
{
    BDRVVmdkState *s = bs->opaque;
    while (bytes > 0) {
        VmdkExtent *e = find_extent(s, offset);
        if (!e) {
            return -EIO;
        }
        uint64_t rel, host;
        int64_t n = chunk_len(e, offset, bytes, &rel);
        uint64_t g = e->cluster_sectors * VMDK_SECTOR;
        int ret = 0;
        if (e->flat) {
            ret = apply ? bfile_write_zeroes(e->file, e->flat_start + (int64_t)rel, n,
                                             flags & BDRV_REQ_MAY_UNMAP)
                        : 0;
        } else if (e->compressed || e->kind == VMDK_EXT_SESPARSE) {
            return -ENOTSUP;
        } else if (e->has_zero_grain && rel % g == 0 && (uint64_t)n == g) {
            ret = apply ? vmdk_set_gte(e, rel, VMDK_GTE_ZEROED) : 0;
        } else if ((ret = vmdk_lookup(e, rel, &host)) < 0) {
            return ret;
        } else if (!(ret == VMDK_ZEROED || (ret == VMDK_UNALLOC && !bs->backing))) {
            return -ENOTSUP; /* data would have to be written */
        } else {
            ret = 0; /* already reads as zero */
        }
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
    }
    return 0;
}

static int vmdk_write_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    int ret = zero_pass(bs, offset, bytes, flags, false);
    if (ret == 0) {
        ret = update_cid_once(bs);
    }
    return ret == 0 ? zero_pass(bs, offset, bytes, flags, true) : ret;
}

static int vmdk_flush(BlockDriverState *bs)
{
    BDRVVmdkState *s = bs->opaque;
    int ret = 0;
    for (int i = 0; ret == 0 && i < s->num_extents; i++) {
        VmdkExtent *e = &s->extents[i];
        ret = e->stream ? vmdk_stream_finish(e) : vmdk_flush_tables(e);
        if (ret == 0 && e->own_file) {
            ret = bfile_flush(e->file);
        }
    }
    return ret;
}

/* ---- compressed writes (pipeline) ---- */

static bool has_stream_extent(BDRVVmdkState *s)
{
    for (int i = 0; i < s->num_extents; i++) {
        if (s->extents[i].compressed) {
            return true;
        }
    }
    return false;
}

static ssize_t vmdk_compress(BlockDriverState *bs, void *dst, size_t dst_size, const void *src,
                             size_t bytes)
{
    if (!has_stream_extent(bs->opaque)) {
        return -ENOSPC; /* qemu stores -c data uncompressed in other subformats */
    }
    return vmdk_compress_grain(dst, dst_size, src, bytes);
}

static size_t vmdk_compress_bound(BlockDriverState *bs, size_t bytes)
{
    return VMDK_GRAIN_MARKER_SIZE + compressBound((uLong)bytes);
}

static bool vmdk_needs_compressed_writes(BlockDriverState *bs)
{
    return has_stream_extent(bs->opaque);
}

static int vmdk_write_compressed(BlockDriverState *bs, int64_t offset, const void *data, size_t len)
{
    VmdkExtent *e = find_extent(bs->opaque, offset);
    if (!e || !e->compressed) {
        return -EIO;
    }
    int ret = update_cid_once(bs);
    if (ret < 0) {
        return ret;
    }
    uint64_t rel = (uint64_t)(offset - e->start_sector * VMDK_SECTOR);
    if (rel % (e->cluster_sectors * VMDK_SECTOR)) {
        return -EINVAL;
    }
    return vmdk_stream_append(e, rel, data, len);
}

/* ---- status and info ---- */

static int vmdk_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                             int64_t *pnum, int64_t *map, BlockFile **file)
{
    VmdkExtent *e = find_extent(bs->opaque, offset);
    if (!e) {
        return -EIO;
    }
    uint64_t rel, host = 0, run = 0;
    *pnum = chunk_len(e, offset, bytes, &rel);
    if (e->flat) {
        *map = e->flat_start + (int64_t)rel;
        *file = e->file;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID | BDRV_BLOCK_RECURSE;
    }
    /* a run of grains alike in one answer: a sparse 1 TiB extent is 16 M grains */
    uint64_t left = (uint64_t)MIN(bytes, e->sectors * VMDK_SECTOR - (int64_t)rel);
    int ret = vmdk_lookup_run(e, rel, left, &host, &run);
    *pnum = (int64_t)run;
    switch (ret) {
    case VMDK_UNALLOC: return 0;
    case VMDK_ZEROED: return BDRV_BLOCK_ZERO;
    case VMDK_ALLOC:
        if (e->compressed) {
            return BDRV_BLOCK_DATA | BDRV_BLOCK_COMPRESSED;
        }
        *map = (int64_t)(host * VMDK_SECTOR + rel % (e->cluster_sectors * VMDK_SECTOR));
        *file = e->file;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    default: return ret;
    }
}

static int64_t vmdk_allocated_size(BlockDriverState *bs)
{
    BDRVVmdkState *s = bs->opaque;
    int64_t total = bfile_allocated_size(bs->file);
    for (int i = 0; total >= 0 && i < s->num_extents; i++) {
        if (s->extents[i].own_file) {
            int64_t r = bfile_allocated_size(s->extents[i].file);
            total = r < 0 ? r : total + r;
        }
    }
    return total;
}

static bool same_kind(const VmdkExtent *a, const VmdkExtent *b)
{
    return a->flat == b->flat && a->compressed == b->compressed &&
           (a->flat || a->cluster_sectors == b->cluster_sectors);
}

static int vmdk_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVVmdkState *s = bs->opaque;
    for (int i = 1; i < s->num_extents; i++) {
        if (!same_kind(&s->extents[0], &s->extents[i])) {
            return -ENOTSUP;
        }
    }
    if (s->num_extents && !s->extents[0].flat) {
        bdi->cluster_size = (int)(s->extents[0].cluster_sectors * VMDK_SECTOR);
    }
    return 0;
}

static JVal *extent_info(const VmdkExtent *e)
{
    JVal *o = json_object();
    if (e->compressed) {
        json_add_bool(o, "compressed", true);
    }
    json_add_int(o, "virtual-size", e->sectors * VMDK_SECTOR);
    json_add_str(o, "filename", e->filename);
    if (!e->flat) {
        json_add_int(o, "cluster-size", (int64_t)(e->cluster_sectors * VMDK_SECTOR));
    }
    json_add_str(o, "format", e->type ? e->type : "");
    return o;
}

static JVal *vmdk_get_specific_info(BlockDriverState *bs, Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    JVal *data = json_object();
    json_add_int(data, "cid", s->cid);
    json_add_int(data, "parent-cid", s->parent_cid);
    json_add_str(data, "create-type", s->create_type ? s->create_type : "");
    JVal *list = json_object_add(data, "extents", json_array());
    for (int i = 0; i < s->num_extents; i++) {
        json_array_add(list, extent_info(&s->extents[i]));
    }
    JVal *top = json_object();
    json_add_str(top, "type", "vmdk");
    json_object_add(top, "data", data);
    return top;
}

/* qemu's check: every allocated grain must start inside its file.  The
 * first bad grain ends the walk with an error, as qemu 7.2 does: EPERM for
 * an entry that cannot be decoded (qemu returns its VMDK_ERROR, -1), EINVAL
 * for a grain past the end, so `check` says "Check failed: ..." and exits 1. */
static int vmdk_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVVmdkState *s = bs->opaque;
    if (fix) {
        return -ENOTSUP;
    }
    int64_t total_sectors = bs->total_size / VMDK_SECTOR;
    for (int64_t sector = 0; sector < total_sectors;) {
        VmdkExtent *e = find_extent(s, sector * VMDK_SECTOR);
        if (!e) {
            msg_report("ERROR: could not find extent for sector %lld", (long long)sector);
            res->corruptions++;
            return -EINVAL;
        }
        uint64_t host;
        int ret = e->flat ? VMDK_ALLOC
                          : vmdk_lookup(e, (uint64_t)(sector - e->start_sector) * 512, &host);
        if (ret < 0) {
            msg_report("ERROR: could not get cluster_offset for sector %lld", (long long)sector);
            res->corruptions++;
            return -EPERM;
        }
        int64_t flen = bfile_getlength(e->file);
        int64_t host_off = e->flat ? e->flat_start : (int64_t)(host * VMDK_SECTOR);
        if (ret == VMDK_ALLOC && host_off >= flen) {
            msg_report("ERROR: cluster offset for sector %lld points after EOF", (long long)sector);
            res->corruptions++;
            return -EINVAL;
        }
        sector += (int64_t)e->cluster_sectors;
    }
    return 0;
}

const BlockDriver bdrv_vmdk = {
    .format_name = "vmdk",
    .instance_size = sizeof(BDRVVmdkState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .supports_backing = true,
    .probe = vmdk_probe,
    .create = vmdk_create,
    .create_opts = vmdk_create_opts,
    .open = vmdk_open,
    .close = vmdk_close,
    .pread = vmdk_pread,
    .pwrite = vmdk_pwrite,
    .write_zeroes = vmdk_write_zeroes,
    .flush = vmdk_flush,
    .compress = vmdk_compress,
    .compress_bound = vmdk_compress_bound,
    .write_compressed = vmdk_write_compressed,
    .needs_compressed_writes = vmdk_needs_compressed_writes,
    .block_status = vmdk_block_status,
    .get_allocated_file_size = vmdk_allocated_size,
    .get_info = vmdk_get_info,
    .get_specific_info = vmdk_get_specific_info,
    .check = vmdk_check,
};
