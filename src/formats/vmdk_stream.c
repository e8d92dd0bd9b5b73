/*
 * vmdk_stream.c — stream-optimized VMDK extents (VMware "Virtual Disk
 * Format 1.1", "Stream-Optimized Compressed Sparse Extents").
 *
 * Reading: every allocated grain starts with a grain marker {u64 lba,
 * u32 size} followed by `size` bytes of RFC 1950 (zlib) data; the grain
 * directory may live at the end (header gdOffset = GD_AT_END), then the
 * footer (a header copy with the real gdOffset) just before the
 * end-of-stream marker.
 *
 * Writing produces the layout VMware and OVA consumers expect:
 *
 *   header (gdOffset = GD_AT_END) | descriptor | grains with markers ...
 *   | GT marker, GT | ... | GD marker, GD | footer marker, footer | EOS
 *
 * Grains are appended in the order they arrive (the convert pipeline
 * delivers them in guest order); grain tables stay in memory and the tail
 * (tables, directory, footer, end-of-stream) is written at every flush
 * after the last grain, and overwritten by the next grain, so the file is
 * complete after each flush.  Grain tables without any grain are omitted
 * (directory entry 0).  A grain is written once: rewriting an allocated
 * grain fails with -EIO, as in qemu.
 *
 * Design notes:
 *  1. compress() is pure: it only deflates; the lba is filled in by
 *     vmdk_stream_append() under the driver lock, so grains compressed in
 *     parallel are stored in exactly the order the writer calls.
 *  2. The tail is never counted in next_cluster_sector, so appends always
 *     start where the tail starts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/util.h"
#include "formats/vmdk.h"

/* zlib's default level: files of qemu's size; the pipeline parallelises. */
#define VMDK_DEFLATE_LEVEL Z_DEFAULT_COMPRESSION

static uint64_t grain_bytes(const VmdkExtent *e)
{
    return e->cluster_sectors * VMDK_SECTOR;
}

/* Inflate the grain at host_sector into e->zgrain. */
static int load_grain(VmdkExtent *e, uint64_t host_sector)
{
    uint64_t gbytes = grain_bytes(e);
    int64_t pos = (int64_t)host_sector * VMDK_SECTOR;
    uint64_t data_len = gbytes;
    if (e->has_marker) {
        uint8_t m[VMDK_GRAIN_MARKER_SIZE];
        int ret = bfile_pread(e->file, pos, m, sizeof(m));
        if (ret < 0) {
            return ret;
        }
        data_len = ld32_le(m + 8);
        pos += VMDK_GRAIN_MARKER_SIZE;
    }
    if (data_len == 0 || data_len > 2 * gbytes) {
        return -EINVAL;
    }
    uint8_t *z = xmalloc(data_len);
    int ret = bfile_pread(e->file, pos, z, data_len);
    if (!e->zgrain) {
        e->zgrain = xmalloc(gbytes);
    }
    e->zgrain_sector = -1;
    uLongf out_len = gbytes;
    if (ret == 0 && uncompress(e->zgrain, &out_len, z, data_len) != Z_OK) {
        ret = -EINVAL;
    }
    free(z);
    if (ret == 0) {
        e->zgrain_sector = (int64_t)host_sector;
        e->zgrain_len = out_len;
    }
    return ret;
}

int vmdk_read_compressed(VmdkExtent *e, uint64_t host_sector, uint64_t in_grain, void *buf,
                         size_t bytes)
{
    if (e->zgrain_sector != (int64_t)host_sector) {
        int ret = load_grain(e, host_sector);
        if (ret < 0) {
            return ret;
        }
    }
    if (in_grain + bytes > e->zgrain_len) {
        return -EINVAL;
    }
    memcpy(buf, e->zgrain + in_grain, bytes);
    return 0;
}

ssize_t vmdk_compress_grain(void *dst, size_t dst_size, const void *src, size_t bytes)
{
    if (dst_size <= VMDK_GRAIN_MARKER_SIZE) {
        return -ENOSPC;
    }
    uint8_t *d = dst;
    uLongf len = dst_size - VMDK_GRAIN_MARKER_SIZE;
    int zr = compress2(d + VMDK_GRAIN_MARKER_SIZE, &len, src, bytes, VMDK_DEFLATE_LEVEL);
    if (zr == Z_BUF_ERROR) {
        return -ENOSPC;
    }
    if (zr != Z_OK || len == 0) {
        return -EIO;
    }
    st64_le(d, 0); /* lba: set when the grain is placed */
    st32_le(d + 8, (uint32_t)len);
    return (ssize_t)(len + VMDK_GRAIN_MARKER_SIZE);
}

/* Load every grain table of a compressed extent into memory. */
static int load_stream_tables(VmdkExtent *e, int64_t flen, Error **errp)
{
    size_t gt_bytes = (size_t)e->l2_size * 4;
    uint64_t used = 0;
    for (uint32_t i = 0; i < e->l1_size; i++) {
        used += ((uint32_t *)e->l1)[i] ? gt_bytes : 0;
    }
    if (used > (uint64_t)flen) {
        error_setg(errp, "grain directory of '%s' is invalid (tables overlap)", e->filename);
        return -EINVAL;
    }
    e->stream_gts = XNEWV(uint32_t *, e->l1_size ? e->l1_size : 1);
    for (uint32_t i = 0; i < e->l1_size; i++) {
        uint32_t gt = ((uint32_t *)e->l1)[i];
        if (!gt) {
            continue;
        }
        e->stream_gts[i] = xmalloc(gt_bytes);
        int ret = bfile_pread(e->file, (int64_t)gt * VMDK_SECTOR, e->stream_gts[i], gt_bytes);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read grain table of '%s'", e->filename);
            return ret;
        }
        for (uint32_t j = 0; j < e->l2_size; j++) {
            e->stream_gts[i][j] = ld32_le(&e->stream_gts[i][j]);
        }
    }
    return 0;
}

int vmdk_stream_begin(VmdkExtent *e, Error **errp)
{
    int64_t flen = bfile_getlength(e->file);
    if (flen < 0) {
        error_setg_errno(errp, (int)-flen, "Could not access file");
        return (int)flen;
    }
    if (!e->has_marker || e->l2_size == 0) {
        error_setg(errp, "'%s': compressed grains without markers cannot be written", e->filename);
        return -ENOTSUP;
    }
    int ret = load_stream_tables(e, flen, errp);
    if (ret < 0) {
        return ret;
    }
    bool any = false;
    for (uint32_t i = 0; i < e->l1_size; i++) {
        any |= e->stream_gts[i] != NULL;
    }
    uint64_t gd_sector = e->l1_offset / VMDK_SECTOR;
    bool tail_known =
        e->gd_at_end && !any && gd_sector > ld64_le(e->header + VMDK4_OFF_GRAIN_OFFSET);
    /* An empty stream of ours: append where its tail (GD marker) starts. */
    e->next_cluster_sector = tail_known ? gd_sector - 1 : DIV_ROUND_UP((uint64_t)flen, VMDK_SECTOR);
    e->stream = true;
    uint8_t h[VMDK_SECTOR];
    memcpy(h, e->header, sizeof(h));
    st64_le(h + VMDK4_OFF_GD_OFFSET, VMDK4_GD_AT_END);
    st64_le(h + VMDK4_OFF_RGD_OFFSET, 0);
    st32_le(h + VMDK4_OFF_FLAGS, ld32_le(h + VMDK4_OFF_FLAGS) & ~VMDK4_FLAG_RGD);
    if (memcmp(h, e->header, sizeof(h))) {
        memcpy(e->header, h, sizeof(h));
        ret = bfile_pwrite(e->file, 0, h, sizeof(h));
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update the header of '%s'", e->filename);
        }
    }
    return ret;
}

int vmdk_stream_append(VmdkExtent *e, uint64_t rel, const uint8_t *payload, size_t len)
{
    uint64_t sector = rel / VMDK_SECTOR;
    uint64_t l1_index = sector / e->l1_entry_sectors;
    uint32_t l2_index = (uint32_t)((sector / e->cluster_sectors) % e->l2_size);
    if (!e->stream || l1_index >= e->l1_size || len < VMDK_GRAIN_MARKER_SIZE) {
        return -EIO;
    }
    uint32_t **gt = &e->stream_gts[l1_index];
    if (*gt && (*gt)[l2_index]) {
        return -EIO; /* a stream grain is written once */
    }
    uint64_t sectors = DIV_ROUND_UP(len, VMDK_SECTOR);
    if (e->next_cluster_sector + sectors >= VMDK_EXTENT_MAX_SECTORS) {
        return -ENOSPC;
    }
    uint8_t *buf = xmalloc(sectors * VMDK_SECTOR);
    memcpy(buf, payload, len);
    memset(buf + len, 0, sectors * VMDK_SECTOR - len);
    st64_le(buf, sector);
    int ret = bfile_pwrite(e->file, (int64_t)e->next_cluster_sector * VMDK_SECTOR, buf,
                           sectors * VMDK_SECTOR);
    free(buf);
    if (ret < 0) {
        return ret;
    }
    if (!*gt) {
        *gt = XNEWV(uint32_t, e->l2_size);
    }
    (*gt)[l2_index] = (uint32_t)e->next_cluster_sector;
    e->next_cluster_sector += sectors;
    return 0;
}

static void put_marker(uint8_t *sec, uint64_t val, uint32_t type)
{
    memset(sec, 0, VMDK_SECTOR);
    st64_le(sec, val);
    st32_le(sec + 12, type);
}

int vmdk_stream_finish(VmdkExtent *e)
{
    if (!e->stream) {
        return 0;
    }
    uint64_t gt_sectors = DIV_ROUND_UP((uint64_t)e->l2_size * 4, VMDK_SECTOR);
    uint64_t gd_sectors = DIV_ROUND_UP((uint64_t)e->l1_size * 4, VMDK_SECTOR);
    uint64_t pos = e->next_cluster_sector;
    uint8_t *gd = xzalloc(gd_sectors * VMDK_SECTOR + 3 * VMDK_SECTOR);
    uint8_t *gtbuf = xzalloc((1 + gt_sectors) * VMDK_SECTOR);
    int ret = 0;
    for (uint32_t i = 0; ret == 0 && i < e->l1_size; i++) {
        if (!e->stream_gts[i]) {
            continue;
        }
        put_marker(gtbuf, gt_sectors, VMDK_MARKER_GT);
        for (uint32_t j = 0; j < e->l2_size; j++) {
            st32_le(gtbuf + VMDK_SECTOR + 4 * j, e->stream_gts[i][j]);
        }
        ret = bfile_pwrite(e->file, (int64_t)pos * VMDK_SECTOR, gtbuf,
                           (1 + gt_sectors) * VMDK_SECTOR);
        st32_le(gd + 4 * i, (uint32_t)(pos + 1));
        pos += 1 + gt_sectors;
    }
    /* GD marker, GD, footer marker, footer, end-of-stream: one write */
    uint8_t *tail = xzalloc((gd_sectors + 4) * VMDK_SECTOR);
    put_marker(tail, gd_sectors, VMDK_MARKER_GD);
    memcpy(tail + VMDK_SECTOR, gd, gd_sectors * VMDK_SECTOR);
    uint8_t *fm = tail + (1 + gd_sectors) * VMDK_SECTOR;
    put_marker(fm, 1, VMDK_MARKER_FOOTER);
    memcpy(fm + VMDK_SECTOR, e->header, VMDK_SECTOR);
    st64_le(fm + VMDK_SECTOR + VMDK4_OFF_GD_OFFSET, pos + 1);
    put_marker(fm + 2 * VMDK_SECTOR, 0, VMDK_MARKER_EOS);
    if (ret == 0) {
        ret =
            bfile_pwrite(e->file, (int64_t)pos * VMDK_SECTOR, tail, (gd_sectors + 4) * VMDK_SECTOR);
    }
    if (ret == 0) {
        ret = bfile_truncate(e->file, (int64_t)(pos + gd_sectors + 4) * VMDK_SECTOR, PREALLOC_OFF,
                             NULL);
    }
    free(tail);
    free(gtbuf);
    free(gd);
    return ret;
}

void vmdk_build_header(uint8_t *sec, uint32_t version, uint32_t flags, uint64_t capacity,
                       uint64_t granularity, uint64_t desc_offset, uint64_t desc_size,
                       uint32_t num_gtes, uint64_t rgd_offset, uint64_t gd_offset,
                       uint64_t grain_offset, bool compressed)
{
    memset(sec, 0, VMDK_SECTOR);
    st32_be(sec, VMDK4_MAGIC);
    st32_le(sec + VMDK4_OFF_VERSION, version);
    st32_le(sec + VMDK4_OFF_FLAGS, flags);
    st64_le(sec + VMDK4_OFF_CAPACITY, capacity);
    st64_le(sec + VMDK4_OFF_GRANULARITY, granularity);
    st64_le(sec + VMDK4_OFF_DESC_OFFSET, desc_offset);
    st64_le(sec + VMDK4_OFF_DESC_SIZE, desc_size);
    st32_le(sec + VMDK4_OFF_NUM_GTES, num_gtes);
    st64_le(sec + VMDK4_OFF_RGD_OFFSET, rgd_offset);
    st64_le(sec + VMDK4_OFF_GD_OFFSET, gd_offset);
    st64_le(sec + VMDK4_OFF_GRAIN_OFFSET, grain_offset);
    /* newline-detection bytes: "\n \r\n" catches text-mode transfers */
    sec[VMDK4_OFF_CHECK_BYTES] = 0x0a;
    sec[VMDK4_OFF_CHECK_BYTES + 1] = 0x20;
    sec[VMDK4_OFF_CHECK_BYTES + 2] = 0x0d;
    sec[VMDK4_OFF_CHECK_BYTES + 3] = 0x0a;
    st16_le(sec + VMDK4_OFF_COMPRESS, compressed ? VMDK4_COMPRESSION_DEFLATE : 0);
}
