/*
 * qcow2.c — the qcow2 driver: header parsing and validation, open/close,
 * header rewrites, info, probe and the driver table `bdrv_qcow2`.  The data
 * path is in qcow2-io.c, create and measure in qcow2-create.c.
 *
 * Spec: QEMU docs/interop/qcow2.txt (versions 2 and 3).  Supported subset:
 * see qcow2.h.  Behaviour (messages, create layout, measure) follows
 * qemu-img 7.2: an empty image we create is byte-identical to qemu-img's
 * (header cluster, refcount table at cluster 1, refcount block at cluster 2,
 * L1 table at cluster 3).
 *
 * Hostile headers: every field is checked against QEMU's limits before it
 * sizes an allocation or a read (L1 <= 32 MiB, refcount table <= 8 MiB,
 * <= 65536 snapshots, cluster size 512 B - 2 MiB, header extensions inside
 * the first cluster).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/luks.h"
#include "formats/qcow2.h"

/* ---- header encoding ---- */

void qcow2_header_parse(const uint8_t *buf, size_t len, Qcow2Header *h)
{
    memset(h, 0, sizeof(*h));
    h->magic = ld32_be(buf + QCOW2_HDR_MAGIC);
    h->version = ld32_be(buf + QCOW2_HDR_VERSION);
    h->backing_file_offset = ld64_be(buf + QCOW2_HDR_BACKING_FILE_OFFSET);
    h->backing_file_size = ld32_be(buf + QCOW2_HDR_BACKING_FILE_SIZE);
    h->cluster_bits = ld32_be(buf + QCOW2_HDR_CLUSTER_BITS);
    h->size = ld64_be(buf + QCOW2_HDR_SIZE);
    h->crypt_method = ld32_be(buf + QCOW2_HDR_CRYPT_METHOD);
    h->l1_size = ld32_be(buf + QCOW2_HDR_L1_SIZE);
    h->l1_table_offset = ld64_be(buf + QCOW2_HDR_L1_TABLE_OFFSET);
    h->refcount_table_offset = ld64_be(buf + QCOW2_HDR_REFCOUNT_TABLE_OFFSET);
    h->refcount_table_clusters = ld32_be(buf + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS);
    h->nb_snapshots = ld32_be(buf + QCOW2_HDR_NB_SNAPSHOTS);
    h->snapshots_offset = ld64_be(buf + QCOW2_HDR_SNAPSHOTS_OFFSET);
    if (h->version < 3 || len < QCOW2_V3_HEADER_SIZE) {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_SIZE;
        return;
    }
    h->incompatible_features = ld64_be(buf + QCOW2_HDR_INCOMPATIBLE_FEATURES);
    h->compatible_features = ld64_be(buf + QCOW2_HDR_COMPATIBLE_FEATURES);
    h->autoclear_features = ld64_be(buf + QCOW2_HDR_AUTOCLEAR_FEATURES);
    h->refcount_order = ld32_be(buf + QCOW2_HDR_REFCOUNT_ORDER);
    h->header_length = ld32_be(buf + QCOW2_HDR_HEADER_LENGTH);
    if (h->header_length > QCOW2_HDR_COMPRESSION_TYPE && len > QCOW2_HDR_COMPRESSION_TYPE) {
        h->compression_type = buf[QCOW2_HDR_COMPRESSION_TYPE];
    }
}

static const struct {
    uint8_t type, bit;
    const char *name;
} feature_names[] = {
    {QCOW2_FEAT_TYPE_INCOMPATIBLE, 0, "dirty bit"},
    {QCOW2_FEAT_TYPE_INCOMPATIBLE, 1, "corrupt bit"},
    {QCOW2_FEAT_TYPE_INCOMPATIBLE, 2, "external data file"},
    {QCOW2_FEAT_TYPE_INCOMPATIBLE, 3, "compression type"},
    {QCOW2_FEAT_TYPE_INCOMPATIBLE, 4, "extended L2 entries"},
    {QCOW2_FEAT_TYPE_COMPATIBLE, 0, "lazy refcounts"},
    {QCOW2_FEAT_TYPE_AUTOCLEAR, 0, "bitmaps"},
    {QCOW2_FEAT_TYPE_AUTOCLEAR, 1, "raw external data"},
};

/* Append one header extension (padded to 8 bytes); false if no room. */
static bool put_ext(uint8_t *buf, size_t size, size_t *pos, uint32_t magic, const void *data,
                    size_t len)
{
    size_t need = 8 + ROUND_UP(len, 8);
    if (*pos + need > size) {
        return false;
    }
    st32_be(buf + *pos, magic);
    st32_be(buf + *pos + 4, (uint32_t)len);
    if (len) {
        memcpy(buf + *pos + 8, data, len);
    }
    *pos += need;
    return true;
}

static void put_fixed_header(BlockDriverState *bs, uint8_t *buf, uint32_t header_length)
{
    BDRVQcow2State *s = qcow2_state(bs);
    st32_be(buf + QCOW2_HDR_MAGIC, QCOW2_MAGIC);
    st32_be(buf + QCOW2_HDR_VERSION, (uint32_t)s->qcow_version);
    st32_be(buf + QCOW2_HDR_CLUSTER_BITS, (uint32_t)s->cluster_bits);
    st64_be(buf + QCOW2_HDR_SIZE, (uint64_t)bs->total_size);
    st32_be(buf + QCOW2_HDR_CRYPT_METHOD, s->crypt_method_header);
    st32_be(buf + QCOW2_HDR_L1_SIZE, s->l1_size);
    st64_be(buf + QCOW2_HDR_L1_TABLE_OFFSET, s->l1_table_offset);
    st64_be(buf + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, s->refcount_table_offset);
    st32_be(buf + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS,
            (uint32_t)(((uint64_t)s->refcount_table_size * 8) >> s->cluster_bits));
    st32_be(buf + QCOW2_HDR_NB_SNAPSHOTS, s->nb_snapshots);
    st64_be(buf + QCOW2_HDR_SNAPSHOTS_OFFSET, s->snapshots_offset);
    if (s->qcow_version >= 3) {
        st64_be(buf + QCOW2_HDR_INCOMPATIBLE_FEATURES, s->incompatible_features);
        st64_be(buf + QCOW2_HDR_COMPATIBLE_FEATURES, s->compatible_features);
        st64_be(buf + QCOW2_HDR_AUTOCLEAR_FEATURES, s->autoclear_features);
        st32_be(buf + QCOW2_HDR_REFCOUNT_ORDER, (uint32_t)s->refcount_order);
        st32_be(buf + QCOW2_HDR_HEADER_LENGTH, header_length);
        buf[QCOW2_HDR_COMPRESSION_TYPE] = (uint8_t)s->compression_type;
    }
}

/* Serialize the whole first cluster (header, extensions, backing name). */
int qcow2_build_header(BlockDriverState *bs, uint8_t *buf, size_t size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint32_t header_length = QCOW2_V2_HEADER_SIZE;
    if (s->qcow_version >= 3) {
        header_length = QCOW2_HEADER_SIZE + s->unknown_header_fields_size;
    }
    if (header_length > size) {
        return -ENOSPC;
    }
    memset(buf, 0, size);
    put_fixed_header(bs, buf, header_length);
    if (s->unknown_header_fields_size) {
        memcpy(buf + QCOW2_HEADER_SIZE, s->unknown_header_fields, s->unknown_header_fields_size);
    }
    size_t pos = header_length;
    bool ok = true;
    if (s->crypto_header_offset) {
        uint8_t c[16];
        st64_be(c, s->crypto_header_offset);
        st64_be(c + 8, s->crypto_header_length);
        ok &= put_ext(buf, size, &pos, QCOW2_EXT_CRYPTO_HEADER, c, sizeof(c));
    }
    if (s->image_backing_format) {
        ok &= put_ext(buf, size, &pos, QCOW2_EXT_BACKING_FORMAT, s->image_backing_format,
                      strlen(s->image_backing_format));
    }
    if (has_data_file(s) && s->image_data_file) {
        ok &= put_ext(buf, size, &pos, QCOW2_EXT_DATA_FILE, s->image_data_file,
                      strlen(s->image_data_file));
    }
    /* qemu-img 7.2 writes the table only with clusters of 8 KiB or more. */
    if (s->qcow_version >= 3 && s->cluster_size >= 8192) {
        uint8_t table[ARRAY_SIZE(feature_names) * QCOW2_FEAT_ENTRY_SIZE];
        memset(table, 0, sizeof(table));
        for (size_t i = 0; i < ARRAY_SIZE(feature_names); i++) {
            uint8_t *e = table + i * QCOW2_FEAT_ENTRY_SIZE;
            e[0] = feature_names[i].type;
            e[1] = feature_names[i].bit;
            memcpy(e + 2, feature_names[i].name, strlen(feature_names[i].name));
        }
        ok &= put_ext(buf, size, &pos, QCOW2_EXT_FEATURE_TABLE, table, sizeof(table));
    }
    if (s->nb_bitmaps > 0) {
        uint8_t b[24] = {0};
        st32_be(b, s->nb_bitmaps);
        st64_be(b + 8, s->bitmap_directory_size);
        st64_be(b + 16, s->bitmap_directory_offset);
        ok &= put_ext(buf, size, &pos, QCOW2_EXT_BITMAPS, b, sizeof(b));
    }
    for (Qcow2UnknownExt *u = s->unknown_exts; u; u = u->next) {
        ok &= put_ext(buf, size, &pos, u->magic, u->data, u->len);
    }
    ok &= put_ext(buf, size, &pos, QCOW2_EXT_END, NULL, 0);
    if (!ok) {
        return -ENOSPC;
    }
    if (s->image_backing_file) {
        size_t len = strlen(s->image_backing_file);
        if (pos + len > size || len > QCOW2_MAX_BACKING_FILE_NAME) {
            return -ENOSPC;
        }
        memcpy(buf + pos, s->image_backing_file, len);
        st64_be(buf + QCOW2_HDR_BACKING_FILE_OFFSET, pos);
        st32_be(buf + QCOW2_HDR_BACKING_FILE_SIZE, (uint32_t)len);
    }
    return 0;
}

int qcow2_update_header(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint8_t *buf = xmalloc(s->cluster_size);
    int ret = qcow2_build_header(bs, buf, s->cluster_size);
    if (ret == 0) {
        ret = bfile_pwrite(bs->file, 0, buf, s->cluster_size);
    }
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    free(buf);
    return ret;
}

static int write_incompat_features(BlockDriverState *bs, uint64_t features)
{
    uint8_t v[8];
    st64_be(v, features);
    int ret = bfile_pwrite(bs->file, QCOW2_HDR_INCOMPATIBLE_FEATURES, v, sizeof(v));
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    return ret;
}

int qcow2_mark_dirty(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (!s->use_lazy_refcounts || s->qcow_version < 3 ||
        (s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        return 0;
    }
    int ret = write_incompat_features(bs, s->incompatible_features | QCOW2_INCOMPAT_DIRTY);
    if (ret == 0) {
        s->incompatible_features |= QCOW2_INCOMPAT_DIRTY;
        s->dirty_marked = true;
    }
    return ret;
}

int qcow2_mark_clean(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (!(s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        return 0;
    }
    int ret = qcow2_flush_all(bs);
    if (ret < 0) {
        return ret;
    }
    s->incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
    s->dirty_marked = false;
    return qcow2_update_header(bs);
}

int qcow2_mark_corrupt(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    s->incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
    return write_incompat_features(bs, s->incompatible_features);
}

int qcow2_mark_consistent(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (!(s->incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
        return 0;
    }
    int ret = qcow2_flush_all(bs);
    if (ret < 0) {
        return ret;
    }
    s->incompatible_features &= ~QCOW2_INCOMPAT_CORRUPT;
    return write_incompat_features(bs, s->incompatible_features);
}

int qcow2_signal_corruption(BlockDriverState *bs, bool fatal, int64_t offset, int64_t size,
                            const char *fmt, ...)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (bs->read_only) {
        fatal = false; /* cannot mark it; just refuse the request */
    }
    if (!s->signaled_corruption) {
        char *msg;
        va_list ap;
        va_start(ap, fmt);
        msg = xvasprintf(fmt, ap);
        va_end(ap);
        /* qemu prints these lines plain (no program name, no "warning:") */
        if (fatal) {
            msg_report("qcow2: Marking image as corrupt: %s; further corruption events will be "
                       "suppressed",
                       msg);
        } else {
            msg_report("qcow2: Image is corrupt: %s; further non-fatal corruption events will "
                       "be suppressed",
                       msg);
        }
        free(msg);
        s->signaled_corruption = true;
    }
    if (fatal) {
        qcow2_mark_corrupt(bs);
        if (bs->open_flags & BDRV_O_CHECK) {
            s->dead = true; /* the running check goes on with the file, as qemu's */
        } else {
            bs->read_only = true; /* no further writes to a corrupt image */
        }
    }
    return -EIO;
}

/* ---- open: header checks ---- */

void qcow2_set_geometry(BDRVQcow2State *s, int cluster_bits, bool extended_l2)
{
    s->cluster_bits = cluster_bits;
    s->cluster_size = 1U << cluster_bits;
    s->extended_l2 = extended_l2;
    s->l2_entry_words = extended_l2 ? 2 : 1;
    s->l2_bits = cluster_bits - 3 - (extended_l2 ? 1 : 0);
    s->l2_size = 1U << s->l2_bits;
    s->subclusters_per_cluster = extended_l2 ? QCOW2_EXTL2_SUBCLUSTERS : 1;
    s->subcluster_bits = cluster_bits - (extended_l2 ? 5 : 0);
    s->subcluster_size = 1U << s->subcluster_bits;
    s->csize_shift = 62 - (cluster_bits - 8);
    s->csize_mask = (1ULL << (cluster_bits - 8)) - 1;
    s->cluster_offset_mask = (1ULL << s->csize_shift) - 1;
}

static void set_refcount_geometry(BDRVQcow2State *s, int order)
{
    s->refcount_order = order;
    s->refcount_bits = 1 << order;
    s->refcount_max = order == 6 ? UINT64_MAX : (1ULL << s->refcount_bits) - 1;
    s->refcount_block_bits = s->cluster_bits - (order - 3);
    s->refcount_block_size = 1U << s->refcount_block_bits;
}

/* QEMU's validate_table_offset(): cluster-aligned, no 64-bit overflow. */
static bool table_offset_ok(const BDRVQcow2State *s, uint64_t offset, uint64_t entries,
                            uint64_t entry_len)
{
    if (entries > (uint64_t)INT64_MAX / entry_len) {
        return false;
    }
    uint64_t size = entries * entry_len;
    if ((uint64_t)INT64_MAX - size < offset) {
        return false;
    }
    return offset_into_cluster(s, (int64_t)offset) == 0;
}

/* "Unsupported qcow2 feature(s): ..." with names from the feature table. */
static void report_unsupported(const uint8_t *table, size_t table_len, uint64_t mask, Error **errp)
{
    StrBuf sb = STRBUF_INIT;
    for (size_t off = 0; off + QCOW2_FEAT_ENTRY_SIZE <= table_len; off += QCOW2_FEAT_ENTRY_SIZE) {
        const uint8_t *e = table + off;
        if (e[0] == QCOW2_FEAT_TYPE_INCOMPATIBLE && e[1] < 64 && (mask & (1ULL << e[1]))) {
            sb_addf(&sb, "%s%.*s", sb.len ? ", " : "", QCOW2_FEAT_NAME_LEN, (const char *)e + 2);
            mask &= ~(1ULL << e[1]);
        }
    }
    if (mask) {
        sb_addf(&sb, "%sUnknown incompatible feature: %" PRIx64, sb.len ? ", " : "", mask);
    }
    error_setg(errp, "Unsupported qcow2 feature(s): %s", sb_str(&sb));
    sb_release(&sb);
}

typedef struct ExtScan {
    bool only_features; /* first pass: feature table only */
    uint8_t *feature_table;
    size_t feature_table_len;
} ExtScan;

static int read_bitmaps_ext(BlockDriverState *bs, const uint8_t *d, uint32_t len, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (len != 24) {
        error_setg(errp, "bitmaps_ext: Invalid extension length");
        return -EINVAL;
    }
    if (!(s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        /* qemu's words; its second line has no newline either */
        msg_warn("%s\nSome clusters may be leaked, run 'qemu-img check -r' on the image "
                 "file to fix.",
                 s->qcow_version < 3
                     ? "This qcow2 v2 image contains bitmaps, but they may have been modified "
                       "by a program without persistent bitmap support; so now they must all "
                       "be considered inconsistent"
                     : "a program lacking bitmap support modified this file, so all bitmaps "
                       "are now considered inconsistent");
        s->bitmaps_ext_ignored = true;
        return 0;
    }
    uint32_t nb = ld32_be(d);
    uint64_t dir_size = ld64_be(d + 8), dir_off = ld64_be(d + 16);
    if (ld32_be(d + 4) != 0) {
        error_setg(errp, "bitmaps_ext: Reserved field is not zero");
        return -EINVAL;
    }
    if (nb > QCOW2_MAX_BITMAPS) {
        error_setg(errp,
                   "bitmaps_ext: Image has %" PRIu32 " bitmaps, exceeding the QEMU supported "
                   "maximum of %d",
                   nb, QCOW2_MAX_BITMAPS);
        return -EINVAL;
    }
    if (nb == 0) {
        error_setg(errp, "found bitmaps extension with zero bitmaps");
        return -EINVAL;
    }
    if (offset_into_cluster(s, (int64_t)dir_off)) {
        error_setg(errp, "bitmaps_ext: invalid bitmap directory offset");
        return -EINVAL;
    }
    if (dir_size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        error_setg(errp,
                   "bitmaps_ext: bitmap directory size (%" PRIu64 ") exceeds the maximum "
                   "supported size (%d)",
                   dir_size, QCOW2_MAX_BITMAP_DIRECTORY_SIZE);
        return -EINVAL;
    }
    s->nb_bitmaps = nb;
    s->bitmap_directory_size = dir_size;
    s->bitmap_directory_offset = dir_off;
    return 0;
}

static int handle_ext(BlockDriverState *bs, uint32_t magic, const uint8_t *d, uint32_t len,
                      ExtScan *scan, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (scan->only_features) {
        if (magic == QCOW2_EXT_FEATURE_TABLE && !scan->feature_table) {
            scan->feature_table = xmalloc(MAX(len, 1));
            memcpy(scan->feature_table, d, len);
            scan->feature_table_len = len;
        }
        return 0;
    }
    switch (magic) {
    case QCOW2_EXT_BACKING_FORMAT:
        if (len >= 16) {
            error_setg(errp, "ERROR: ext_backing_format: len=%" PRIu32 " too large (>=16)", len);
            return -EINVAL;
        }
        free(s->image_backing_format);
        s->image_backing_format = xstrndup((const char *)d, len);
        return 0;
    case QCOW2_EXT_FEATURE_TABLE: return 0; /* regenerated on every header rewrite */
    case QCOW2_EXT_CRYPTO_HEADER:
        if (len != 16) {
            error_setg(errp, "crypto header extension size %" PRIu32 ", but expected size 16", len);
            return -EINVAL;
        }
        s->crypto_header_offset = ld64_be(d);
        s->crypto_header_length = ld64_be(d + 8);
        if (offset_into_cluster(s, (int64_t)s->crypto_header_offset)) {
            error_setg(errp,
                       "Encryption header offset '%" PRIu64 "' is not a multiple of cluster "
                       "size '%" PRIu32 "'",
                       s->crypto_header_offset, s->cluster_size);
            return -EINVAL;
        }
        return 0;
    case QCOW2_EXT_BITMAPS: return read_bitmaps_ext(bs, d, len, errp);
    case QCOW2_EXT_DATA_FILE:
        free(s->image_data_file);
        s->image_data_file = xstrndup((const char *)d, len);
        return 0;
    default: {
        Qcow2UnknownExt *u = XNEW(Qcow2UnknownExt);
        u->magic = magic;
        u->len = len;
        u->data = xmalloc(MAX(len, 1));
        memcpy(u->data, d, len);
        Qcow2UnknownExt **tail = &s->unknown_exts;
        while (*tail) {
            tail = &(*tail)->next;
        }
        *tail = u;
        return 0;
    }
    }
}

/* Walk the extensions in hdr[start, end) (hdr holds the first cluster). */
static int read_extensions(BlockDriverState *bs, const uint8_t *hdr, uint64_t start, uint64_t end,
                           ExtScan *scan, Error **errp)
{
    uint64_t off = start;
    while (off < end) {
        if (end - off < 8) {
            error_setg(errp, "qcow2_read_extension: ERROR: pread fail from offset %" PRIu64, off);
            return -EINVAL;
        }
        uint32_t magic = ld32_be(hdr + off);
        uint32_t len = ld32_be(hdr + off + 4);
        off += 8;
        if (len > end - off) {
            error_setg(errp, "Header extension too large");
            return -EINVAL;
        }
        if (magic == QCOW2_EXT_END) {
            return 0;
        }
        int ret = handle_ext(bs, magic, hdr + off, len, scan, errp);
        if (ret < 0) {
            return ret;
        }
        off += ROUND_UP((uint64_t)len, 8);
    }
    return 0;
}

/* Checks on the fixed header fields, in QEMU's order.  hdr: first cluster. */
static int check_header(BlockDriverState *bs, const Qcow2Header *h, const uint8_t *hdr, int flags,
                        Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (h->magic != QCOW2_MAGIC) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    if (h->version < 2 || h->version > 3) {
        error_setg(errp, "Unsupported qcow2 version %" PRIu32, h->version);
        return -ENOTSUP;
    }
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        error_setg(errp, "Unsupported cluster size: 2^%" PRIu32, h->cluster_bits);
        return -EINVAL;
    }
    uint32_t cs = 1U << h->cluster_bits;
    if (h->version >= 3) {
        if (h->header_length < QCOW2_V3_HEADER_SIZE) {
            error_setg(errp, "qcow2 header too short");
            return -EINVAL;
        }
        if (h->header_length > cs) {
            error_setg(errp, "qcow2 header exceeds cluster size");
            return -EINVAL;
        }
    }
    if (h->header_length > QCOW2_HDR_COMPRESSION_TYPE) {
        if (h->compression_type > QCOW2_COMPRESSION_ZSTD) {
            error_setg(errp, "qcow2: unknown compression type: %u", h->compression_type);
            return -ENOTSUP;
        }
    }
    bool compr_bit = h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION;
    if (h->compression_type == QCOW2_COMPRESSION_ZLIB && compr_bit) {
        error_setg(errp, "qcow2: Compression type incompatible feature bit must not be set");
        return -EINVAL;
    }
    if (h->compression_type != QCOW2_COMPRESSION_ZLIB && !compr_bit) {
        error_setg(errp, "qcow2: Compression type incompatible feature bit must be set");
        return -EINVAL;
    }
    if (h->backing_file_offset > cs) {
        error_setg(errp, "Invalid backing file offset");
        return -EINVAL;
    }
    if (h->incompatible_features & ~QCOW2_INCOMPAT_MASK) {
        ExtScan scan = {.only_features = true};
        uint64_t end = h->backing_file_offset ? h->backing_file_offset : cs;
        read_extensions(bs, hdr, h->header_length, end, &scan, NULL);
        report_unsupported(scan.feature_table, scan.feature_table_len,
                           h->incompatible_features & ~QCOW2_INCOMPAT_MASK, errp);
        free(scan.feature_table);
        return -ENOTSUP;
    }
    if ((h->incompatible_features & QCOW2_INCOMPAT_CORRUPT) && (flags & BDRV_O_RDWR) &&
        !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "qcow2: Image is corrupt; cannot be opened read/write");
        return -EACCES;
    }
    if ((h->incompatible_features & QCOW2_INCOMPAT_EXTL2) &&
        h->cluster_bits < QCOW2_MIN_EXTL2_CLUSTER_BITS) {
        error_setg(errp, "Unsupported cluster size for subclusters: 2^%" PRIu32, h->cluster_bits);
        return -EINVAL;
    }
    if (h->refcount_order > QCOW2_MAX_REFCOUNT_ORDER) {
        error_setg(errp, "Reference count entry width too large; may not exceed 64 bits");
        return -EINVAL;
    }
    if (h->crypt_method > QCOW2_CRYPT_LUKS) {
        error_setg(errp, "Unsupported encryption method %" PRIu32, h->crypt_method);
        return -EINVAL;
    }
    (void)s;
    return 0;
}

/* Table placement checks (refcount table, snapshots, L1). */
static int check_tables(BlockDriverState *bs, const Qcow2Header *h, int flags, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (h->refcount_table_clusters == 0 && !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "Image does not contain a reference count table");
        return -EINVAL;
    }
    if (h->refcount_table_clusters > QCOW2_MAX_REFTABLE_SIZE / s->cluster_size) {
        error_setg(errp, "Reference count table too large");
        return -EINVAL;
    }
    if (!table_offset_ok(s, h->refcount_table_offset, h->refcount_table_clusters,
                         s->cluster_size)) {
        error_setg(errp, "Reference count table offset invalid");
        return -EINVAL;
    }
    /* check mode opens without the snapshot table: check reads it itself
     * and reports what is wrong with it (qcow2-check-meta.c) */
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS && !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "Snapshot table too large");
        return -EFBIG;
    }
    if (!(flags & BDRV_O_CHECK) && !table_offset_ok(s, h->snapshots_offset, h->nb_snapshots, 40)) {
        error_setg(errp, "Snapshot table offset invalid");
        return -EINVAL;
    }
    if (h->l1_size > QCOW2_MAX_L1_SIZE / 8) {
        error_setg(errp, "Active L1 table too large");
        return -EFBIG;
    }
    if (!table_offset_ok(s, h->l1_table_offset, h->l1_size, 8)) {
        error_setg(errp, "Active L1 table offset invalid");
        return -EINVAL;
    }
    if (h->size > (uint64_t)BDRV_MAX_LENGTH) {
        error_setg(errp, "Image is too big");
        return -EFBIG;
    }
    uint64_t l1_needed = qcow2_l1_entries_for(h->size, s->cluster_bits, s->l2_bits);
    if (l1_needed > INT32_MAX) {
        error_setg(errp, "Image is too big");
        return -EFBIG;
    }
    s->l1_vm_state_index = (uint32_t)l1_needed;
    if (h->l1_size < l1_needed) {
        error_setg(errp, "L1 table is too small");
        return -EINVAL;
    }
    return 0;
}

static int load_l1(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    /* l1_size <= 4 Mi entries (checked): a bounded allocation. */
    if (bdrv_metadata_reserve(bs, "L1 table", (uint64_t)s->l1_size * 8, errp) < 0) {
        return -EFBIG;
    }
    s->l1_table = XNEWV(uint64_t, MAX(s->l1_size, 1));
    if (s->l1_size == 0) {
        return 0;
    }
    int ret =
        bfile_pread(bs->file, (int64_t)s->l1_table_offset, s->l1_table, (size_t)s->l1_size * 8);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read L1 table");
        return ret;
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        s->l1_table[i] = ld64_be(&s->l1_table[i]);
    }
    return 0;
}

static void create_caches(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t max_tables = MAX(4, (32 * MiB) / s->cluster_size);
    uint64_t n = MAX(4, (uint64_t)s->l1_vm_state_index + 2);
    n = MIN(n, MIN(max_tables, 1024));
    s->l2_table_cache = qcow2_cache_create(bs, (int)n, s->cluster_size);
    s->refcount_block_cache = qcow2_cache_create(bs, (int)MAX(4, n / 4), s->cluster_size);
}

static int open_data_file(BlockDriverState *bs, int flags, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (!has_data_file(s)) {
        if (s->image_data_file) {
            error_setg(errp, "'data-file' can only be set for images with an external data file");
            return -EINVAL;
        }
        if (data_file_is_raw(s)) {
            error_setg(errp, "data-file-raw requires a data file");
            return -EINVAL;
        }
        s->data_file = bs->file;
        return 0;
    }
    if (!s->image_data_file) {
        if (flags & BDRV_O_NO_IO) {
            return 0;
        }
        error_setg(errp, "'data-file' is required for this image");
        return -EINVAL;
    }
    Error *local = NULL;
    s->data_file = bdrv_open_aux_file(bs, s->image_data_file, flags & BDRV_O_RDWR, &local);
    if (!s->data_file) {
        if (flags & BDRV_O_NO_IO) {
            error_free(local);
            return 0; /* info works without it */
        }
        error_propagate(errp, local);
        error_prepend(errp, "Could not open data file: ");
        return -EIO;
    }
    return 0;
}

static int read_backing_name(BlockDriverState *bs, const Qcow2Header *h, const uint8_t *hdr,
                             Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (!h->backing_file_offset) {
        return 0;
    }
    uint64_t room = s->cluster_size - h->backing_file_offset;
    if (h->backing_file_size > MIN(QCOW2_MAX_BACKING_FILE_NAME, room)) {
        error_setg(errp, "Backing file name too long");
        return -EINVAL;
    }
    s->image_backing_file =
        xstrndup((const char *)hdr + h->backing_file_offset, h->backing_file_size);
    bs->backing_file = xstrdup(s->image_backing_file);
    if (s->image_backing_format) {
        bs->backing_format = xstrdup(s->image_backing_format);
    }
    return 0;
}

static void init_state_from_header(BDRVQcow2State *s, const Qcow2Header *h)
{
    s->qcow_version = (int)h->version;
    qcow2_set_geometry(s, (int)h->cluster_bits, h->incompatible_features & QCOW2_INCOMPAT_EXTL2);
    set_refcount_geometry(s, (int)h->refcount_order);
    s->header_length = h->header_length;
    s->incompatible_features = h->incompatible_features;
    s->compatible_features = h->compatible_features;
    s->autoclear_features = h->autoclear_features;
    s->compression_type = h->header_length > QCOW2_HDR_COMPRESSION_TYPE ? h->compression_type : 0;
    s->crypt_method_header = h->crypt_method;
    s->l1_size = h->l1_size;
    s->l1_table_offset = h->l1_table_offset;
    s->refcount_table_offset = h->refcount_table_offset;
    s->refcount_table_size =
        (uint32_t)(((uint64_t)h->refcount_table_clusters << h->cluster_bits) / 8);
    s->nb_snapshots = h->nb_snapshots;
    s->snapshots_offset = h->snapshots_offset;
    s->discard_passthrough[QCOW2_DISCARD_ALWAYS] = true;
    s->discard_passthrough[QCOW2_DISCARD_SNAPSHOT] = true;
}

/* After everything is loaded: autoclear bits, dirty-image repair. */
static int finish_open(BlockDriverState *bs, int flags, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    bool writable = (flags & BDRV_O_RDWR) != 0;
    if (writable && (s->autoclear_features & ~QCOW2_AUTOCLEAR_MASK)) {
        s->autoclear_features &= QCOW2_AUTOCLEAR_MASK;
        int ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            return ret;
        }
    }
    s->use_lazy_refcounts = writable && (s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS);
    if (writable && !(flags & BDRV_O_CHECK) && (s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        BdrvCheckResult res = {0};
        int ret = qcow2_check(bs, &res, BDRV_FIX_ERRORS | BDRV_FIX_LEAKS);
        if (ret == 0 && !res.check_errors) {
            ret = qcow2_mark_clean(bs);
        }
        if (ret < 0 || res.check_errors) {
            error_setg_errno(errp, ret < 0 ? -ret : EIO, "Could not repair dirty image");
            return ret < 0 ? ret : -EIO;
        }
    }
    return 0;
}

static int do_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint8_t first[QCOW2_HEADER_SIZE];
    int ret = bfile_pread(bs->file, 0, first, sizeof(first));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        return ret;
    }
    Qcow2Header h;
    qcow2_header_parse(first, sizeof(first), &h);
    if (h.magic == QCOW2_MAGIC && h.cluster_bits >= QCOW2_MIN_CLUSTER_BITS &&
        h.cluster_bits <= QCOW2_MAX_CLUSTER_BITS) {
        uint32_t cs = 1U << h.cluster_bits;
        uint8_t *hdr = xzalloc(cs); /* <= 2 MiB, checked */
        ret = bfile_pread(bs->file, 0, hdr, cs);
        if (ret == 0) {
            ret = check_header(bs, &h, hdr, flags, errp);
        } else {
            error_setg_errno(errp, -ret, "Could not read qcow2 header");
        }
        if (ret == 0) {
            init_state_from_header(s, &h);
            ret = check_tables(bs, &h, flags, errp);
        }
        if (ret == 0 && h.version >= 3 && h.header_length > QCOW2_HEADER_SIZE) {
            s->unknown_header_fields_size = h.header_length - QCOW2_HEADER_SIZE;
            s->unknown_header_fields = xmalloc(s->unknown_header_fields_size);
            memcpy(s->unknown_header_fields, hdr + QCOW2_HEADER_SIZE,
                   s->unknown_header_fields_size);
        }
        if (ret == 0) {
            ExtScan scan = {0};
            uint64_t end = h.backing_file_offset ? h.backing_file_offset : cs;
            ret = read_extensions(bs, hdr, h.header_length, end, &scan, errp);
        }
        if (ret == 0) {
            ret = read_backing_name(bs, &h, hdr, errp);
        }
        free(hdr);
    } else {
        ret = check_header(bs, &h, first, flags, errp);
    }
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_crypto_open(bs, options, flags, errp); /* luks-qcow2.c */
    if (ret < 0) {
        return ret;
    }
    ret = load_l1(bs, errp);
    if (ret == 0) {
        create_caches(bs);
        ret = qcow2_refcount_init(bs, errp);
    }
    if (ret == 0) {
        ret = open_data_file(bs, flags, errp);
    }
    if (ret == 0) {
        /* like qemu, whole sectors only: a size of 1 byte is an empty disk */
        bs->total_size = (int64_t)(h.size / BDRV_SECTOR_SIZE * BDRV_SECTOR_SIZE);
        if (flags & BDRV_O_CHECK) {
            s->nb_snapshots = 0;
            s->snapshots_offset = 0;
        } else {
            ret = qcow2_read_snapshots(bs, errp);
        }
    }
    if (ret == 0) {
        ret = qcow2_load_bitmaps(bs, errp);
    }
    if (ret == 0) {
        ret = finish_open(bs, flags, errp);
    }
    return ret;
}

static void free_state(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    qcow2_free_bitmaps(bs);
    qcow2_free_snapshots(bs);
    qcow2_crypto_close(bs);
    qcow2_cache_destroy(s->l2_table_cache);
    qcow2_cache_destroy(s->refcount_block_cache);
    s->l2_table_cache = s->refcount_block_cache = NULL;
    qcow2_refcount_close(bs);
    free(s->l1_table);
    s->l1_table = NULL;
    if (s->data_file && s->data_file != bs->file) {
        bfile_close(s->data_file);
    }
    s->data_file = NULL;
    free(s->unknown_header_fields);
    while (s->unknown_exts) {
        Qcow2UnknownExt *u = s->unknown_exts;
        s->unknown_exts = u->next;
        free(u->data);
        free(u);
    }
    free(s->image_backing_file);
    free(s->image_backing_format);
    free(s->image_data_file);
    pthread_mutex_destroy(&s->lock);
}

static int qcow2_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    /* Recursive: qcow2ext helpers may re-enter the data path under the lock. */
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    s->bs = bs;
    pthread_mutex_lock(&s->lock);
    int ret = do_open(bs, options, flags, errp);
    pthread_mutex_unlock(&s->lock);
    if (ret < 0) {
        free_state(bs);
    }
    return ret;
}

static void qcow2_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    /* a dead image (fatal corruption during check) is left as it is, as
     * qemu, which has dropped the driver by then, does */
    if (!bs->read_only && s->l2_table_cache && !s->dead) {
        pthread_mutex_lock(&s->lock);
        Error *err = NULL;
        if (qcow2_store_bitmaps(bs, &err) < 0) {
            msg_warn("%s", error_get_pretty(err));
            error_free(err);
        }
        int ret = qcow2_flush_all(bs);
        if (ret == 0 && s->wrote_compressed) {
            ret = qcow2_align_file_end(bs);
        }
        /* qemu clears the dirty bit on every clean close; outside check
         * mode it can only be ours (a dirty image is repaired on open), in
         * check mode it is also the one the image came with */
        if (ret == 0 && (s->dirty_marked || (bs->open_flags & BDRV_O_CHECK))) {
            qcow2_mark_clean(bs);
        }
        pthread_mutex_unlock(&s->lock);
    }
    free_state(bs);
}

/* ---- probe ---- */

static int qcow2_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size >= 8 && ld32_be(buf) == QCOW2_MAGIC && ld32_be(buf + 4) >= 2) {
        return 100;
    }
    return 0;
}

/* ---- info ---- */

static int qcow2_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVQcow2State *s = qcow2_state(bs);
    bdi->cluster_size = (int)s->cluster_size;
    bdi->is_dirty = (s->incompatible_features & QCOW2_INCOMPAT_DIRTY) != 0;
    bdi->vm_state_offset = (int64_t)s->l1_vm_state_index << (s->cluster_bits + s->l2_bits);
    return 0;
}

/* "encrypt": qemu's ImageInfoSpecificQCow2Encryption (luks-qcow2.c) */
static void add_encrypt_info(BDRVQcow2State *s, JVal *data)
{
    JVal *enc = qcow2_crypto_info(s);
    if (enc) {
        json_object_add(data, "encrypt", enc);
    }
}

static JVal *qcow2_get_specific_info(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    JVal *data = json_object();
    const char *ctype = s->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib";
    if (s->qcow_version == 2) {
        json_add_str(data, "compat", "0.10");
        json_add_int(data, "refcount-bits", s->refcount_bits);
        add_encrypt_info(s, data);
        json_add_str(data, "compression-type", ctype);
    } else {
        json_add_str(data, "compat", "1.1");
        if (s->image_data_file) {
            json_add_str(data, "data-file", s->image_data_file);
        }
        if (has_data_file(s)) {
            json_add_bool(data, "data-file-raw", data_file_is_raw(s));
        }
        json_add_bool(data, "extended-l2", s->extended_l2);
        json_add_bool(data, "lazy-refcounts",
                      (s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0);
        json_add_bool(data, "corrupt", (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) != 0);
        json_add_int(data, "refcount-bits", s->refcount_bits);
        add_encrypt_info(s, data);
        pthread_mutex_lock(&s->lock);
        JVal *bitmaps = qcow2_get_bitmap_info_list(bs, NULL);
        pthread_mutex_unlock(&s->lock);
        if (bitmaps) {
            json_object_add(data, "bitmaps", bitmaps);
        }
        json_add_str(data, "compression-type", ctype);
    }
    JVal *info = json_object();
    json_add_str(info, "type", "qcow2");
    json_object_add(info, "data", data);
    return info;
}

static int64_t qcow2_get_allocated_file_size(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int64_t size = bfile_allocated_size(bs->file);
    if (size >= 0 && s->data_file && s->data_file != bs->file) {
        int64_t d = bfile_allocated_size(s->data_file);
        size = d < 0 ? d : size + d;
    }
    return size;
}

/* ---- backing file change ---- */

static int qcow2_change_backing_file(BlockDriverState *bs, const char *backing_file,
                                     const char *backing_fmt, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (backing_file && strlen(backing_file) > QCOW2_MAX_BACKING_FILE_NAME) {
        error_setg(errp, "Backing file name too long");
        return -EINVAL;
    }
    if (backing_file && data_file_is_raw(s)) {
        error_setg(errp, "Cannot use a backing file with a raw external data file");
        return -EINVAL;
    }
    pthread_mutex_lock(&s->lock);
    char *old_file = s->image_backing_file, *old_fmt = s->image_backing_format;
    s->image_backing_file = backing_file && *backing_file ? xstrdup(backing_file) : NULL;
    s->image_backing_format = backing_fmt && s->image_backing_file ? xstrdup(backing_fmt) : NULL;
    int ret = qcow2_update_header(bs);
    if (ret < 0) {
        free(s->image_backing_file);
        free(s->image_backing_format);
        s->image_backing_file = old_file;
        s->image_backing_format = old_fmt;
        error_setg_errno(errp, -ret, "Could not update the backing file");
    } else {
        free(old_file);
        free(old_fmt);
        free(bs->backing_file);
        free(bs->backing_format);
        bs->backing_file = s->image_backing_file ? xstrdup(s->image_backing_file) : NULL;
        bs->backing_format = s->image_backing_format ? xstrdup(s->image_backing_format) : NULL;
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

const BlockDriver bdrv_qcow2 = {
    .format_name = "qcow2",
    .instance_size = sizeof(BDRVQcow2State),
    .thread_model = THREAD_MODEL_PARALLEL,
    .supports_backing = true,
    .probe = qcow2_probe,
    .create = qcow2_create,
    .create_opts = qcow2_create_opts,
    .open = qcow2_open,
    .close = qcow2_close,
    .pread = qcow2_pread,
    .pwrite = qcow2_pwrite,
    .write_zeroes = qcow2_write_zeroes,
    .discard = qcow2_discard,
    .flush = qcow2_flush,
    .compress = qcow2_compress,
    .write_compressed = qcow2_write_compressed,
    .block_status = qcow2_block_status,
    .truncate = qcow2_truncate,
    .get_allocated_file_size = qcow2_get_allocated_file_size,
    .get_info = qcow2_get_info,
    .get_specific_info = qcow2_get_specific_info,
    .check = qcow2_check_slot,
    .measure = qcow2_measure,
    .amend = qcow2_amend,
    .amend_opts = qcow2_amend_opts,
    .change_backing_file = qcow2_change_backing_file,
    .make_empty = qcow2_make_empty,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_goto = qcow2_snapshot_goto,
    .snapshot_delete = qcow2_snapshot_delete,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_load_tmp = qcow2_snapshot_load_tmp,
    .bitmap_op = qcow2_bitmap_op,
    .bitmap_list = qcow2_bitmap_list,
};
