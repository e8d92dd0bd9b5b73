/*
 * qed.c — QEMU Enhanced Disk format.
 *
 * Spec: QEMU docs/interop/qed_spec.txt.  A little-endian header in the
 * first cluster(s) (magic "QED\0", cluster_size, table_size, header_size,
 * feature bits, l1_table_offset, image_size, optional backing file name),
 * an L1 table of L2 table offsets and L2 tables of cluster offsets, each
 * table table_size clusters long.  An L2 entry of 1 is a zero cluster.
 *
 * Supported subset, as qemu-img 7.2: create (cluster_size, table_size,
 * backing_file/backing_fmt; "raw" backing format is stored as the
 * no-probe feature), read, write (copy-on-write from the backing file for
 * partial clusters), zero clusters, block status, check and repair
 * (invalid table entries cleared; leaks are reported, never reclaimed:
 * qed has no free-space map), the need-check (dirty) bit, growing resize.
 *
 * Design notes:
 *  1. Allocation appends whole clusters at the end of the file.
 *  2. The first allocating write sets QED_F_NEED_CHECK on disk; flush
 *     writes the cached L2 tables back, then clears it.  An image left
 *     with the bit set is checked (and repaired) on read-write open, as
 *     qemu does.
 *  3. Data reaches the file before the (cached) L2 entry pointing to it; a
 *     new L2 table is written before the L1 entry that points to it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

#define QED_MAGIC              0x00444551U /* "QED\0" */
#define QED_HEADER_SIZE        64
#define QED_F_BACKING_FILE     0x01
#define QED_F_NEED_CHECK       0x02
#define QED_F_BACKING_NO_PROBE 0x04
#define QED_FEATURE_MASK       0x07
#define QED_MIN_CLUSTER_SIZE   (4 * 1024)
#define QED_MAX_CLUSTER_SIZE   (64 * 1024 * 1024)
#define QED_DEFAULT_CLUSTER    (64 * 1024)
#define QED_MIN_TABLE_SIZE     1
#define QED_MAX_TABLE_SIZE     16
#define QED_DEFAULT_TABLE_SIZE 4
#define QED_CLUSTER_ZERO       1
#define QED_L2_CACHE_SIZE      16
#define QED_MAX_BACKING_NAME   4095 /* qemu's PATH_MAX-sized buffer */

typedef struct QedHeader {
    uint32_t magic, cluster_size, table_size, header_size;
    uint64_t features, compat_features, autoclear_features;
    uint64_t l1_table_offset, image_size;
    uint32_t backing_filename_offset, backing_filename_size;
} QedHeader;

typedef struct QedL2 {
    uint64_t offset; /* 0: empty slot */
    uint64_t *table; /* native order */
    bool dirty;
    uint64_t last_use;
} QedL2;

typedef struct BDRVQEDState {
    QedHeader header;
    uint32_t table_nelems;
    int l2_shift, l1_shift;
    uint64_t *l1_table;
    QedL2 l2_cache[QED_L2_CACHE_SIZE];
    uint64_t use_counter;
    uint64_t file_size; /* cluster-aligned end of the allocated area */
} BDRVQEDState;

static void header_decode(const uint8_t *b, QedHeader *h)
{
    h->magic = ld32_le(b);
    h->cluster_size = ld32_le(b + 4);
    h->table_size = ld32_le(b + 8);
    h->header_size = ld32_le(b + 12);
    h->features = ld64_le(b + 16);
    h->compat_features = ld64_le(b + 24);
    h->autoclear_features = ld64_le(b + 32);
    h->l1_table_offset = ld64_le(b + 40);
    h->image_size = ld64_le(b + 48);
    h->backing_filename_offset = ld32_le(b + 56);
    h->backing_filename_size = ld32_le(b + 60);
}

static void header_encode(const QedHeader *h, uint8_t *b)
{
    st32_le(b, h->magic);
    st32_le(b + 4, h->cluster_size);
    st32_le(b + 8, h->table_size);
    st32_le(b + 12, h->header_size);
    st64_le(b + 16, h->features);
    st64_le(b + 24, h->compat_features);
    st64_le(b + 32, h->autoclear_features);
    st64_le(b + 40, h->l1_table_offset);
    st64_le(b + 48, h->image_size);
    st32_le(b + 56, h->backing_filename_offset);
    st32_le(b + 60, h->backing_filename_size);
}

static int qed_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return buf_size >= QED_HEADER_SIZE && ld32_le(buf) == QED_MAGIC ? 100 : 0;
}

static bool cluster_size_valid(uint64_t cs)
{
    return IS_POWER_OF_2(cs) && cs >= QED_MIN_CLUSTER_SIZE && cs <= QED_MAX_CLUSTER_SIZE;
}

static bool table_size_valid(uint64_t ts)
{
    return IS_POWER_OF_2(ts) && ts >= QED_MIN_TABLE_SIZE && ts <= QED_MAX_TABLE_SIZE;
}

/* entries^2 * cluster_size, saturated (it overflows for the largest settings) */
static uint64_t max_image_size(uint64_t cluster_size, uint64_t table_size)
{
    uint64_t entries = table_size * cluster_size / 8;
    uint64_t e2 = entries * entries; /* entries <= 2^27 */
    return e2 > UINT64_MAX / cluster_size ? UINT64_MAX : e2 * cluster_size;
}

static bool image_size_valid(uint64_t size, uint64_t cs, uint64_t ts)
{
    return size % BDRV_SECTOR_SIZE == 0 && size <= max_image_size(cs, ts);
}

/* A data cluster offset that lies in the allocated area, after the header. */
static bool cluster_offset_valid(const BDRVQEDState *s, uint64_t offset)
{
    uint64_t header_bytes = (uint64_t)s->header.header_size * s->header.cluster_size;
    return !(offset & (s->header.cluster_size - 1)) && offset >= header_bytes &&
           offset < s->file_size;
}

static bool table_offset_valid(const BDRVQEDState *s, uint64_t offset)
{
    uint64_t end = offset + (uint64_t)(s->header.table_size - 1) * s->header.cluster_size;
    /* qemu's overflow test is "end <= offset", which also refuses one-cluster
     * tables: qemu-img cannot open table_size=1 images, nor can we */
    return end > offset && cluster_offset_valid(s, offset) && cluster_offset_valid(s, end);
}

static int invalid(Error **errp, const char *what)
{
    error_setg(errp, "QED %s", what);
    return -EINVAL;
}

static int validate_header(BlockDriverState *bs, Error **errp)
{
    BDRVQEDState *s = bs->opaque;
    const QedHeader *h = &s->header;
    if (h->magic != QED_MAGIC) {
        error_setg(errp, "Image not in QED format");
        return -EINVAL;
    }
    if (h->features & ~(uint64_t)QED_FEATURE_MASK) {
        error_setg(errp, "Unsupported QED features: %" PRIx64,
                   h->features & ~(uint64_t)QED_FEATURE_MASK);
        return -ENOTSUP;
    }
    if (!cluster_size_valid(h->cluster_size)) {
        return invalid(errp, "cluster size is invalid");
    }
    int64_t len = bfile_getlength(bs->file);
    if (len < 0) {
        error_setg_errno(errp, (int)-len, "Could not get image size");
        return (int)len;
    }
    s->file_size = (uint64_t)len & ~(uint64_t)(h->cluster_size - 1);
    if (!table_size_valid(h->table_size)) {
        return invalid(errp, "table size is invalid");
    }
    if (!image_size_valid(h->image_size, h->cluster_size, h->table_size)) {
        return invalid(errp, "image size is invalid");
    }
    if (!table_offset_valid(s, h->l1_table_offset)) {
        return invalid(errp, "table offset is invalid");
    }
    if (h->header_size > UINT32_MAX / h->cluster_size) {
        return invalid(errp, "header size is too large");
    }
    return 0;
}

static int read_backing_name(BlockDriverState *bs, Error **errp)
{
    BDRVQEDState *s = bs->opaque;
    const QedHeader *h = &s->header;
    if (!(h->features & QED_F_BACKING_FILE)) {
        return 0;
    }
    if ((uint64_t)h->backing_filename_offset + h->backing_filename_size >
        (uint64_t)h->cluster_size * h->header_size) {
        return invalid(errp, "backing filename offset is invalid");
    }
    if (h->backing_filename_size > QED_MAX_BACKING_NAME) {
        error_setg(errp, "Failed to read backing filename");
        return -EINVAL;
    }
    char *name = xzalloc(h->backing_filename_size + 1);
    int ret = bfile_pread(bs->file, h->backing_filename_offset, name, h->backing_filename_size);
    if (ret < 0) {
        free(name);
        error_setg(errp, "Failed to read backing filename");
        return ret;
    }
    bs->backing_file = name;
    if (h->features & QED_F_BACKING_NO_PROBE) {
        bs->backing_format = xstrdup("raw");
    }
    return 0;
}

static size_t table_bytes(const BDRVQEDState *s)
{
    return (size_t)s->header.table_size * s->header.cluster_size;
}

static int read_table(BlockDriverState *bs, uint64_t offset, uint64_t *table)
{
    BDRVQEDState *s = bs->opaque;
    int ret = bfile_pread(bs->file, (int64_t)offset, table, table_bytes(s));
    for (uint32_t i = 0; ret == 0 && i < s->table_nelems; i++) {
        table[i] = ld64_le(&table[i]);
    }
    return ret;
}

static int write_table(BlockDriverState *bs, uint64_t offset, const uint64_t *table)
{
    BDRVQEDState *s = bs->opaque;
    uint64_t *out = xmalloc(table_bytes(s));
    for (uint32_t i = 0; i < s->table_nelems; i++) {
        st64_le(&out[i], table[i]);
    }
    int ret = bfile_pwrite(bs->file, (int64_t)offset, out, table_bytes(s));
    free(out);
    return ret;
}

static int write_header(BlockDriverState *bs)
{
    BDRVQEDState *s = bs->opaque;
    uint8_t b[QED_HEADER_SIZE];
    header_encode(&s->header, b);
    return bfile_pwrite(bs->file, 0, b, sizeof(b));
}

static int qed_check(BlockDriverState *bs, BdrvCheckResult *res, int fix);

static int qed_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVQEDState *s = bs->opaque;
    uint8_t b[QED_HEADER_SIZE];
    int ret = bfile_pread(bs->file, 0, b, sizeof(b));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the QED header");
        return ret;
    }
    header_decode(b, &s->header);
    ret = validate_header(bs, errp);
    if (ret == 0) {
        ret = read_backing_name(bs, errp);
    }
    if (ret < 0) {
        return ret;
    }
    s->table_nelems = (uint32_t)(table_bytes(s) / 8);
    s->l2_shift = __builtin_ctz(s->header.cluster_size);
    s->l1_shift = s->l2_shift + __builtin_ctz(s->table_nelems);
    bs->total_size = (int64_t)s->header.image_size;
    if (s->header.autoclear_features && !bs->read_only) {
        s->header.autoclear_features = 0; /* none known: reset them, as the spec asks */
        write_header(bs);
    }
    /* the L1 table lies inside the file (validated), which bounds this */
    if (bdrv_metadata_reserve(bs, "L1 table", table_bytes(s), errp) < 0) {
        return -EFBIG;
    }
    s->l1_table = xmalloc(table_bytes(s));
    ret = read_table(bs, s->header.l1_table_offset, s->l1_table);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the L1 table");
        return ret;
    }
    if (!(flags & BDRV_O_CHECK) && (s->header.features & QED_F_NEED_CHECK) && !bs->read_only) {
        BdrvCheckResult res = {0};
        ret = qed_check(bs, &res, BDRV_FIX_ERRORS | BDRV_FIX_LEAKS);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Image corrupted");
            return ret;
        }
    }
    return 0;
}

/* Memory only: used by close and by a failed open (the block layer does
 * not call close when open fails). */
static void qed_free(BlockDriverState *bs)
{
    BDRVQEDState *s = bs->opaque;
    free(s->l1_table);
    s->l1_table = NULL;
    for (int i = 0; i < QED_L2_CACHE_SIZE; i++) {
        free(s->l2_cache[i].table);
        s->l2_cache[i].table = NULL;
    }
}

/* ---- L2 cache ---- */

static int l2_write_back(BlockDriverState *bs, QedL2 *e)
{
    if (!e->dirty) {
        return 0;
    }
    int ret = write_table(bs, e->offset, e->table);
    e->dirty = ret < 0;
    return ret;
}

static uint64_t *l2_get(BlockDriverState *bs, uint64_t offset, bool dirty, int *ret)
{
    BDRVQEDState *s = bs->opaque;
    QedL2 *victim = &s->l2_cache[0];
    for (int i = 0; i < QED_L2_CACHE_SIZE; i++) {
        QedL2 *e = &s->l2_cache[i];
        if (e->table && e->offset == offset) {
            e->last_use = ++s->use_counter;
            e->dirty |= dirty;
            return e->table;
        }
        if (e->last_use < victim->last_use) {
            victim = e;
        }
    }
    *ret = l2_write_back(bs, victim);
    if (*ret < 0) {
        return NULL;
    }
    if (!victim->table) {
        victim->table = xmalloc(table_bytes(s));
    }
    victim->offset = 0;
    *ret = read_table(bs, offset, victim->table);
    if (*ret < 0) {
        return NULL;
    }
    victim->offset = offset;
    victim->dirty = dirty;
    victim->last_use = ++s->use_counter;
    return victim->table;
}

static int qed_flush(BlockDriverState *bs)
{
    BDRVQEDState *s = bs->opaque;
    for (int i = 0; i < QED_L2_CACHE_SIZE; i++) {
        int ret = l2_write_back(bs, &s->l2_cache[i]);
        if (ret < 0) {
            return ret;
        }
    }
    if (s->header.features & QED_F_NEED_CHECK) {
        int ret = bfile_flush(bs->file); /* tables on disk before the bit goes */
        s->header.features &= ~(uint64_t)QED_F_NEED_CHECK;
        if (ret == 0) {
            ret = write_header(bs);
        }
        return ret;
    }
    return 0;
}

static void qed_close(BlockDriverState *bs)
{
    BDRVQEDState *s = bs->opaque;
    if (!bs->read_only) {
        qed_flush(bs);
    }
    for (int i = 0; i < QED_L2_CACHE_SIZE; i++) {
        free(s->l2_cache[i].table);
    }
    free(s->l1_table);
}

/* ---- lookups ---- */

/* L2 entry for guest offset: 0 unallocated, 1 zero, else a validated offset. */
static int lookup(BlockDriverState *bs, uint64_t offset, uint64_t *entry)
{
    BDRVQEDState *s = bs->opaque;
    uint64_t l1 = s->l1_table[offset >> s->l1_shift];
    *entry = 0;
    if (!l1) {
        return 0;
    }
    if (!table_offset_valid(s, l1)) {
        return -EINVAL;
    }
    int ret;
    uint64_t *l2 = l2_get(bs, l1, false, &ret);
    if (!l2) {
        return ret;
    }
    *entry = l2[(offset >> s->l2_shift) & (s->table_nelems - 1)];
    if (*entry > QED_CLUSTER_ZERO && !cluster_offset_valid(s, *entry)) {
        return -EINVAL;
    }
    return 0;
}

static int qed_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVQEDState *s = bs->opaque;
    uint8_t *p = buf;
    uint32_t cs = s->header.cluster_size;
    while (bytes > 0) {
        uint32_t in_cluster = (uint32_t)(offset & (cs - 1));
        int64_t n = MIN(bytes, (int64_t)(cs - in_cluster));
        uint64_t entry;
        int ret = lookup(bs, (uint64_t)offset, &entry);
        if (ret == 0 && entry == 0) {
            ret = bdrv_backing_pread(bs, offset, n, p);
        } else if (ret == 0 && entry == QED_CLUSTER_ZERO) {
            memset(p, 0, (size_t)n);
        } else if (ret == 0) {
            ret = bfile_pread(bs->file, (int64_t)entry + in_cluster, p, (size_t)n);
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

/* Set the need-check bit before the first metadata change of a session. */
static int mark_dirty(BlockDriverState *bs)
{
    BDRVQEDState *s = bs->opaque;
    if (s->header.features & QED_F_NEED_CHECK) {
        return 0;
    }
    s->header.features |= QED_F_NEED_CHECK;
    int ret = write_header(bs);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    return ret;
}

static uint64_t *l2_for_write(BlockDriverState *bs, uint64_t offset, int *ret)
{
    BDRVQEDState *s = bs->opaque;
    uint64_t index = offset >> s->l1_shift;
    uint64_t l1 = s->l1_table[index];
    if (l1) {
        return table_offset_valid(s, l1) ? l2_get(bs, l1, true, ret) : (*ret = -EINVAL, NULL);
    }
    uint64_t *zero = xzalloc(table_bytes(s));
    uint64_t new_off = s->file_size;
    *ret = write_table(bs, new_off, zero);
    free(zero);
    if (*ret < 0) {
        return NULL;
    }
    s->file_size += table_bytes(s);
    uint8_t le[8];
    st64_le(le, new_off);
    *ret = bfile_pwrite(bs->file, (int64_t)(s->header.l1_table_offset + 8 * index), le, 8);
    if (*ret < 0) {
        return NULL;
    }
    s->l1_table[index] = new_off;
    return l2_get(bs, new_off, true, ret);
}

/* Allocate a data cluster; a partial write fills the rest from the backing file. */
static int alloc_cluster(BlockDriverState *bs, int64_t offset, int64_t n, bool was_zero,
                         uint64_t *host)
{
    BDRVQEDState *s = bs->opaque;
    uint32_t cs = s->header.cluster_size;
    int64_t cstart = offset & ~(int64_t)(cs - 1);
    *host = s->file_size;
    int ret = 0;
    if (n < (int64_t)cs) {
        uint8_t *old = xzalloc(cs);
        if (!was_zero) {
            ret = bdrv_backing_pread(bs, cstart, MIN((int64_t)cs, bs->total_size - cstart), old);
        }
        if (ret == 0) {
            ret = bfile_pwrite(bs->file, (int64_t)*host, old, cs);
        }
        free(old);
    } else {
        /* keep the file cluster-aligned even for a short last cluster */
        ret = bfile_truncate(bs->file, (int64_t)(*host + cs), PREALLOC_OFF, NULL);
    }
    if (ret == 0) {
        s->file_size += cs;
    }
    return ret;
}

/*
 * Allocate and fill a run of unallocated clusters [offset, offset+bytes)
 * within one L2 table.  As qemu does, the data clusters come first and a
 * new L2 table after them, so that files match qemu's layout.
 */
static int write_new_run(BlockDriverState *bs, int64_t offset, int64_t bytes, const uint8_t *p)
{
    BDRVQEDState *s = bs->opaque;
    uint32_t cs = s->header.cluster_size;
    uint64_t first = 0;
    int ret = mark_dirty(bs);
    for (int64_t pos = offset; ret == 0 && pos < offset + bytes;) {
        int64_t n = MIN(offset + bytes - pos, (int64_t)(cs - (pos & (cs - 1))));
        uint64_t entry, host = 0;
        ret = lookup(bs, (uint64_t)pos, &entry);
        if (ret == 0) {
            ret = alloc_cluster(bs, pos, n, entry == QED_CLUSTER_ZERO, &host);
        }
        first = pos == offset ? host : first;
        pos += n;
    }
    uint64_t *l2 = ret == 0 ? l2_for_write(bs, (uint64_t)offset, &ret) : NULL;
    if (!l2) {
        return ret;
    }
    int64_t in_cluster = offset & (cs - 1);
    ret = bfile_pwrite(bs->file, (int64_t)first + in_cluster, p, (size_t)bytes);
    for (int64_t i = 0; ret == 0 && i * cs < in_cluster + bytes; i++) {
        uint64_t pos = (uint64_t)(offset - in_cluster) + (uint64_t)i * cs;
        l2[(pos >> s->l2_shift) & (s->table_nelems - 1)] = first + (uint64_t)i * cs;
    }
    return ret;
}

static int qed_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVQEDState *s = bs->opaque;
    const uint8_t *p = buf;
    uint32_t cs = s->header.cluster_size;
    while (bytes > 0) {
        uint32_t in_cluster = (uint32_t)(offset & (cs - 1));
        int64_t n = MIN(bytes, (int64_t)(cs - in_cluster));
        uint64_t entry;
        int ret = lookup(bs, (uint64_t)offset, &entry);
        if (ret == 0 && entry <= QED_CLUSTER_ZERO) {
            /* extend over the following unallocated clusters of this L2 table */
            uint64_t l2_end = ((uint64_t)offset | ((1ULL << s->l1_shift) - 1)) + 1;
            while (n < bytes && (uint64_t)(offset + n) < l2_end &&
                   lookup(bs, (uint64_t)(offset + n), &entry) == 0 && entry <= QED_CLUSTER_ZERO) {
                n += MIN(bytes - n, (int64_t)cs);
            }
            ret = write_new_run(bs, offset, n, p);
        } else if (ret == 0) {
            ret = bfile_pwrite(bs->file, (int64_t)entry + in_cluster, p, (size_t)n);
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

/* Whole clusters become zero clusters; anything else is written as data. */
static int qed_write_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    BDRVQEDState *s = bs->opaque;
    uint32_t cs = s->header.cluster_size;
    if ((offset | bytes) & (cs - 1)) {
        if (offset + bytes != bs->total_size || (offset & (cs - 1))) {
            return -ENOTSUP;
        }
    }
    int ret = mark_dirty(bs);
    for (int64_t pos = offset; ret == 0 && pos < offset + bytes; pos += cs) {
        uint64_t *l2 = l2_for_write(bs, (uint64_t)pos, &ret);
        if (l2) {
            l2[(pos >> s->l2_shift) & (s->table_nelems - 1)] = QED_CLUSTER_ZERO;
        }
    }
    return ret;
}

static int qed_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockFile **file)
{
    BDRVQEDState *s = bs->opaque;
    uint32_t cs = s->header.cluster_size;
    uint32_t in_cluster = (uint32_t)(offset & (cs - 1));
    uint64_t entry;
    int ret = lookup(bs, (uint64_t)offset, &entry);
    if (ret < 0) {
        return ret;
    }
    int64_t n = MIN(bytes, (int64_t)(cs - in_cluster));
    /* extend over following clusters of the same kind (contiguous for data) */
    while (n < bytes) {
        uint64_t next;
        if (lookup(bs, (uint64_t)(offset + n), &next) < 0) {
            break;
        }
        bool same =
            entry > QED_CLUSTER_ZERO ? next == entry + in_cluster + (uint64_t)n : next == entry;
        if (!same) {
            break;
        }
        n += MIN(bytes - n, (int64_t)cs);
    }
    *pnum = n;
    if (entry == 0) {
        return 0;
    }
    if (entry == QED_CLUSTER_ZERO) {
        return BDRV_BLOCK_ZERO;
    }
    *map = (int64_t)entry + in_cluster;
    *file = bs->file;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
}

static int qed_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVQEDState *s = bs->opaque;
    bdi->cluster_size = (int)s->header.cluster_size;
    bdi->is_dirty = !!(s->header.features & QED_F_NEED_CHECK);
    return 0;
}

/* ---- check ---- */

typedef struct QedCheck {
    BlockDriverState *bs;
    BdrvCheckResult *res;
    bool fix;
    uint64_t nclusters;
    uint8_t *used; /* one bit per cluster of the file */
} QedCheck;

/* Mark n clusters used; false if any was already referenced. */
static bool mark_used(QedCheck *c, uint64_t offset, uint32_t n)
{
    BDRVQEDState *s = c->bs->opaque;
    uint64_t cl = offset / s->header.cluster_size;
    int dup = 0;
    for (; n-- > 0; cl++) {
        if (cl >= c->nclusters) {
            continue;
        }
        dup += (c->used[cl / 8] >> (cl % 8)) & 1;
        c->used[cl / 8] |= (uint8_t)(1 << (cl % 8));
    }
    c->res->corruptions += dup;
    return dup == 0;
}

static void invalid_entry(QedCheck *c, uint64_t *slot)
{
    if (c->fix) {
        *slot = 0;
        c->res->corruptions_fixed++;
    } else {
        c->res->corruptions++;
    }
}

static int check_l2(QedCheck *c, uint64_t l2_offset)
{
    BDRVQEDState *s = c->bs->opaque;
    uint64_t *t = xmalloc(table_bytes(s));
    int ret = read_table(c->bs, l2_offset, t);
    int invalid_n = 0;
    uint64_t last = 0;
    for (uint32_t i = 0; ret == 0 && i < s->table_nelems; i++) {
        if (t[i] <= QED_CLUSTER_ZERO) {
            continue;
        }
        /* counted (and fragmentation measured) before validation, as qemu */
        c->res->bfi.allocated_clusters++;
        if (last && last + s->header.cluster_size != t[i]) {
            c->res->bfi.fragmented_clusters++;
        }
        last = t[i];
        if (!cluster_offset_valid(s, t[i])) {
            invalid_entry(c, &t[i]);
            invalid_n++;
            continue;
        }
        mark_used(c, t[i], 1);
    }
    if (ret == 0 && invalid_n && c->fix) {
        ret = write_table(c->bs, l2_offset, t);
    }
    free(t);
    return ret;
}

static int qed_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVQEDState *s = bs->opaque;
    int ret = qed_flush(bs);
    if (ret < 0 && !bs->read_only) {
        return ret;
    }
    QedCheck c = {.bs = bs, .res = res, .fix = fix != 0};
    c.nclusters = s->file_size / s->header.cluster_size;
    c.used = xzalloc(c.nclusters / 8 + 1);
    mark_used(&c, s->header.l1_table_offset, s->header.table_size);
    int invalid_l1 = 0, last_error = 0;
    for (uint32_t i = 0; i < s->table_nelems; i++) {
        uint64_t off = s->l1_table[i];
        if (!off) {
            continue;
        }
        if (!table_offset_valid(s, off)) {
            invalid_entry(&c, &s->l1_table[i]);
            invalid_l1++;
            continue;
        }
        if (!mark_used(&c, off, s->header.table_size)) {
            continue;
        }
        ret = check_l2(&c, off);
        if (ret < 0) {
            res->check_errors++;
            last_error = ret;
        }
    }
    if (invalid_l1 && c.fix) {
        ret = write_table(bs, s->header.l1_table_offset, s->l1_table);
        if (ret < 0) {
            res->check_errors++;
            last_error = ret;
        }
    }
    if (last_error == 0) {
        for (uint64_t i = s->header.header_size; i < c.nclusters; i++) {
            res->leaks += !((c.used[i / 8] >> (i % 8)) & 1);
        }
        if (c.fix && !bs->read_only && (s->header.features & QED_F_NEED_CHECK)) {
            s->header.features &= ~(uint64_t)QED_F_NEED_CHECK;
            write_header(bs);
        }
    }
    res->bfi.total_clusters = DIV_ROUND_UP(s->header.image_size, s->header.cluster_size);
    /* the cache may hold tables the repair rewrote */
    for (int i = 0; i < QED_L2_CACHE_SIZE; i++) {
        s->l2_cache[i].offset = 0;
        s->l2_cache[i].last_use = 0;
    }
    free(c.used);
    return last_error;
}

/* ---- create ---- */

static const OptDesc qed_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"backing_file", OPT_STRING, "File name of a base image", NULL},
    {"backing_fmt", OPT_STRING, "Image format of the base image", NULL},
    {"cluster_size", OPT_SIZE, "Cluster size (in bytes)", "65536"},
    {"table_size", OPT_SIZE, "L1/L2 table size (in clusters)", NULL},
    {NULL, 0, NULL, NULL},
};

static int qed_create_params(const BdrvCreateInfo *ci, QedHeader *h, Error **errp)
{
    uint64_t cs, ts;
    if (opts_get_size(ci->opts, "cluster_size", QED_DEFAULT_CLUSTER, &cs, errp) < 0 ||
        opts_get_size(ci->opts, "table_size", QED_DEFAULT_TABLE_SIZE, &ts, errp) < 0) {
        return -EINVAL;
    }
    if (!cluster_size_valid(cs)) {
        error_setg(errp, "QED cluster size must be within range [%u, %u] and power of 2",
                   QED_MIN_CLUSTER_SIZE, QED_MAX_CLUSTER_SIZE);
        return -EINVAL;
    }
    if (!table_size_valid(ts)) {
        error_setg(errp, "QED table size must be within range [%u, %u] and power of 2",
                   QED_MIN_TABLE_SIZE, QED_MAX_TABLE_SIZE);
        return -EINVAL;
    }
    uint64_t size = ROUND_UP(ci->size, BDRV_SECTOR_SIZE);
    if (size < ci->size || !image_size_valid(size, cs, ts)) {
        error_setg(errp,
                   "QED image size must be a non-zero multiple of cluster size and less than "
                   "%" PRIu64 " bytes",
                   max_image_size(cs, ts));
        return -EINVAL;
    }
    *h = (QedHeader){
        .magic = QED_MAGIC,
        .cluster_size = (uint32_t)cs,
        .table_size = (uint32_t)ts,
        .header_size = 1,
        .l1_table_offset = cs,
        .image_size = size,
    };
    return 0;
}

/* Growing only: the new size is stored in the header (qemu's rules). */
static int qed_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                        bool shrink_allowed, Error **errp)
{
    BDRVQEDState *s = bs->opaque;
    if (prealloc != PREALLOC_OFF) {
        error_setg(errp, "Unsupported preallocation mode '%s'", prealloc_name(prealloc));
        return -ENOTSUP;
    }
    if (offset <= 0 ||
        !image_size_valid((uint64_t)offset, s->header.cluster_size, s->header.table_size)) {
        error_setg(errp, "Invalid image size specified");
        return -EINVAL;
    }
    if ((uint64_t)offset < s->header.image_size) {
        error_setg(errp, "Shrinking images is currently not supported");
        return -ENOTSUP;
    }
    uint64_t old = s->header.image_size;
    s->header.image_size = (uint64_t)offset;
    int ret = write_header(bs);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret < 0) {
        s->header.image_size = old;
        error_setg_errno(errp, -ret, "Failed to update the image size");
        return ret;
    }
    bs->total_size = offset;
    return 0;
}

static int qed_create(const BdrvCreateInfo *ci, Error **errp)
{
    QedHeader h;
    int ret = qed_create_params(ci, &h, errp);
    if (ret < 0) {
        return ret;
    }
    const char *backing = opts_get(ci->opts, "backing_file");
    const char *bfmt = opts_get(ci->opts, "backing_fmt");
    size_t blen = backing ? strlen(backing) : 0;
    if (backing) {
        if (blen > h.cluster_size - QED_HEADER_SIZE) {
            error_setg(errp, "Backing file name too long");
            return -EINVAL;
        }
        h.features |= QED_F_BACKING_FILE;
        h.backing_filename_offset = QED_HEADER_SIZE;
        h.backing_filename_size = (uint32_t)blen;
        if (bfmt && !strcmp(bfmt, "raw")) {
            h.features |= QED_F_BACKING_NO_PROBE;
        }
    }
    BlockFile *f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    uint8_t b[QED_HEADER_SIZE];
    header_encode(&h, b);
    /* the header, then an L1 table written as zeros (as qemu: allocated) */
    ret = bfile_pwrite(f, 0, b, sizeof(b));
    if (ret == 0) {
        static const uint8_t zeros[65536];
        uint64_t l1_bytes = (uint64_t)h.table_size * h.cluster_size;
        for (uint64_t done = 0; ret == 0 && done < l1_bytes; done += sizeof(zeros)) {
            ret = bfile_pwrite(f, (int64_t)(h.l1_table_offset + done), zeros,
                               (size_t)MIN(sizeof(zeros), l1_bytes - done));
        }
    }
    if (ret == 0 && backing) {
        ret = bfile_pwrite(f, QED_HEADER_SIZE, backing, blen);
    }
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not write the QED image");
    }
    bfile_close(f);
    return ret;
}

const BlockDriver bdrv_qed = {
    .format_name = "qed",
    .instance_size = sizeof(BDRVQEDState),
    .thread_model = THREAD_MODEL_SERIALIZE,
    .supports_backing = true,
    .probe = qed_probe,
    .create = qed_create,
    .create_opts = qed_create_opts,
    .open = qed_open,
    .free_state = qed_free,
    .close = qed_close,
    .pread = qed_pread,
    .pwrite = qed_pwrite,
    .write_zeroes = qed_write_zeroes,
    .flush = qed_flush,
    .truncate = qed_truncate,
    .block_status = qed_block_status,
    .get_info = qed_get_info,
    .check = qed_check,
};
