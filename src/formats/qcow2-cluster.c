/*
 * qcow2-cluster.c — qcow2 guest-to-host mapping: L1/L2 tables, cluster and
 * subcluster types, compressed cluster descriptors, L2 table allocation,
 * zeroing and discarding of guest clusters.
 *
 * Spec: docs/interop/qcow2.txt, "Cluster mapping" and "Extended L2 Entries".
 *
 * Design notes (invariants):
 *  1. The in-memory L1 table is authoritative.  Entries changed in memory
 *     are written back by qcow2_write_l1_dirty(), which runs only after the
 *     L2 cache has been flushed: an L1 entry never points at an L2 table
 *     that is not yet on disk.
 *  2. A new L2 table gets its refcount before it is linked; its cache entry
 *     depends on the refcount cache (see qcow2-cache.c).
 *  3. Everything read from L1/L2 entries is validated (alignment, reserved
 *     bits, v2 zero flags, compressed entries with a data file) before use;
 *     a bad entry is reported with qcow2_signal_corruption() and -EIO.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2.h"

/* ---- pure entry decoding ---- */

Qcow2ClusterType qcow2_get_cluster_type(const BDRVQcow2State *s, uint64_t l2_entry)
{
    if (l2_entry & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    if ((l2_entry & QCOW_OFLAG_ZERO) && !s->extended_l2) {
        return (l2_entry & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_ZERO_ALLOC : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    if (!(l2_entry & L2E_OFFSET_MASK)) {
        /* Host offset 0 is valid in an external data file; COPIED tells. */
        if (has_data_file(s) && (l2_entry & QCOW_OFLAG_COPIED)) {
            return QCOW2_CLUSTER_NORMAL;
        }
        return QCOW2_CLUSTER_UNALLOCATED;
    }
    return QCOW2_CLUSTER_NORMAL;
}

Qcow2SubclusterType qcow2_get_subcluster_type(const BDRVQcow2State *s, uint64_t l2_entry,
                                              uint64_t l2_bitmap, unsigned sc)
{
    Qcow2ClusterType type = qcow2_get_cluster_type(s, l2_entry);
    if (!s->extended_l2) {
        switch (type) {
        case QCOW2_CLUSTER_COMPRESSED: return QCOW2_SUBCLUSTER_COMPRESSED;
        case QCOW2_CLUSTER_ZERO_PLAIN: return QCOW2_SUBCLUSTER_ZERO_PLAIN;
        case QCOW2_CLUSTER_ZERO_ALLOC: return QCOW2_SUBCLUSTER_ZERO_ALLOC;
        case QCOW2_CLUSTER_NORMAL: return QCOW2_SUBCLUSTER_NORMAL;
        default: return QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN;
        }
    }
    uint64_t alloc = 1ULL << sc, zero = alloc << 32;
    switch (type) {
    case QCOW2_CLUSTER_COMPRESSED: return QCOW2_SUBCLUSTER_COMPRESSED;
    case QCOW2_CLUSTER_NORMAL:
        if ((l2_bitmap >> 32) & l2_bitmap) {
            return QCOW2_SUBCLUSTER_INVALID; /* allocated and zero at once */
        }
        if (l2_bitmap & zero) {
            return QCOW2_SUBCLUSTER_ZERO_ALLOC;
        }
        return (l2_bitmap & alloc) ? QCOW2_SUBCLUSTER_NORMAL : QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC;
    default: /* unallocated */
        if (l2_bitmap & QCOW_L2_BITMAP_ALL_ALLOC) {
            return QCOW2_SUBCLUSTER_INVALID; /* allocated without a host cluster */
        }
        return (l2_bitmap & zero) ? QCOW2_SUBCLUSTER_ZERO_PLAIN
                                  : QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN;
    }
}

static int csize_shift_of(int cluster_bits)
{
    return 62 - (cluster_bits - 8);
}

uint64_t qcow2_compressed_desc_encode(int cluster_bits, uint64_t host_offset, uint64_t len)
{
    uint64_t nb_csectors = ((host_offset + len - 1) >> 9) - (host_offset >> 9);
    return QCOW_OFLAG_COMPRESSED | host_offset | (nb_csectors << csize_shift_of(cluster_bits));
}

void qcow2_compressed_desc_decode(int cluster_bits, uint64_t l2_entry, uint64_t *host_offset,
                                  uint64_t *nb_bytes)
{
    int shift = csize_shift_of(cluster_bits);
    uint64_t mask = (1ULL << (cluster_bits - 8)) - 1;
    uint64_t off = l2_entry & ((1ULL << shift) - 1);
    uint64_t nb_csectors = ((l2_entry >> shift) & mask) + 1;
    *host_offset = off;
    *nb_bytes = nb_csectors * 512 - (off & 511);
}

/* ---- L1 ---- */

void qcow2_l1_mark_dirty(BDRVQcow2State *s, uint32_t index, uint32_t n)
{
    if (s->l1_dirty_hi <= s->l1_dirty_lo) {
        s->l1_dirty_lo = index;
        s->l1_dirty_hi = index + n;
        return;
    }
    s->l1_dirty_lo = MIN(s->l1_dirty_lo, index);
    s->l1_dirty_hi = MAX(s->l1_dirty_hi, index + n);
}

static int write_l1_range(BlockDriverState *bs, uint32_t lo, uint32_t hi)
{
    BDRVQcow2State *s = qcow2_state(bs);
    hi = MIN(hi, s->l1_size);
    if (lo >= hi) {
        return 0;
    }
    size_t n = hi - lo;
    uint64_t *be = XNEWV(uint64_t, n);
    for (size_t i = 0; i < n; i++) {
        st64_be(&be[i], s->l1_table[lo + i]);
    }
    int ret = bfile_pwrite(bs->file, (int64_t)(s->l1_table_offset + (uint64_t)lo * 8), be, n * 8);
    free(be);
    return ret;
}

int qcow2_write_l1_dirty(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (s->l1_dirty_hi <= s->l1_dirty_lo) {
        return 0;
    }
    int ret = write_l1_range(bs, s->l1_dirty_lo, s->l1_dirty_hi);
    if (ret == 0) {
        s->l1_dirty_lo = s->l1_dirty_hi = 0;
    }
    return ret;
}

int qcow2_write_l1_entry(BlockDriverState *bs, uint32_t index)
{
    return write_l1_range(bs, index, index + 1);
}

int qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size, bool exact_size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (min_size <= s->l1_size) {
        return 0;
    }
    uint64_t max_entries = QCOW2_MAX_L1_SIZE / 8;
    if (min_size > max_entries) {
        return -EFBIG;
    }
    uint64_t new_size = min_size;
    if (!exact_size) {
        new_size = MAX(s->l1_size, 1);
        while (new_size < min_size) {
            new_size = DIV_ROUND_UP(new_size * 3, 2);
        }
        new_size = MIN(new_size, max_entries);
    }
    /* L2 tables the new L1 will point at must be on disk first. */
    int ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    uint64_t bytes = new_size * 8;
    int64_t new_offset = qcow2_alloc_clusters(bs, bytes);
    if (new_offset < 0) {
        return (int)new_offset;
    }
    /* The new table's refcounts must be on disk before the header names it. */
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    uint64_t *table = XNEWV(uint64_t, (size_t)new_size);
    uint64_t *be = XNEWV(uint64_t, (size_t)new_size);
    if (s->l1_size) {
        memcpy(table, s->l1_table, (size_t)s->l1_size * 8);
    }
    for (uint64_t i = 0; i < new_size; i++) {
        st64_be(&be[i], table[i]);
    }
    if (ret == 0) {
        ret = bfile_pwrite(bs->file, new_offset, be, (size_t)bytes);
    }
    free(be);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret == 0) {
        uint8_t hdr[12];
        st32_be(hdr, (uint32_t)new_size);
        st64_be(hdr + 4, (uint64_t)new_offset);
        ret = bfile_pwrite(bs->file, QCOW2_HDR_L1_SIZE, hdr, sizeof(hdr));
    }
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret < 0) {
        free(table);
        qcow2_free_clusters(bs, new_offset, (int64_t)bytes, QCOW2_DISCARD_OTHER);
        return ret;
    }
    uint64_t old_offset = s->l1_table_offset;
    uint64_t old_bytes = (uint64_t)s->l1_size * 8;
    free(s->l1_table);
    s->l1_table = table;
    s->l1_size = (uint32_t)new_size;
    s->l1_table_offset = (uint64_t)new_offset;
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    if (old_offset && old_bytes) {
        qcow2_free_clusters(bs, (int64_t)old_offset, (int64_t)old_bytes, QCOW2_DISCARD_OTHER);
    }
    return 0;
}

/* ---- L2 tables ---- */

static int l2_offset_of(BlockDriverState *bs, uint32_t l1_index, uint64_t *l2_offset)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t l1e = s->l1_table[l1_index];
    *l2_offset = l1e & L1E_OFFSET_MASK;
    if (*l2_offset && offset_into_cluster(s, (int64_t)*l2_offset)) {
        return qcow2_signal_corruption(
            bs, true, -1, -1, "L2 table offset %#" PRIx64 " unaligned (L1 index: %#" PRIx32 ")",
            *l2_offset, l1_index);
    }
    return 0;
}

/* Allocate a new L2 table for l1_index (a copy of the shared old one, or
 * zeroed) and link it in the in-memory L1. */
static int l2_allocate(BlockDriverState *bs, uint32_t l1_index, void **l2)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t old_offset;
    int ret = l2_offset_of(bs, l1_index, &old_offset);
    if (ret < 0) {
        return ret;
    }
    int64_t new_offset = qcow2_alloc_clusters(bs, s->cluster_size);
    if (new_offset < 0) {
        return (int)new_offset;
    }
    if (!s->use_lazy_refcounts) {
        ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
        if (ret < 0) {
            return ret;
        }
    }
    void *table;
    ret = qcow2_cache_get_empty(bs, s->l2_table_cache, (uint64_t)new_offset, &table);
    if (ret < 0) {
        return ret;
    }
    if (old_offset) {
        void *old;
        ret = qcow2_cache_get(bs, s->l2_table_cache, old_offset, &old);
        if (ret < 0) {
            qcow2_cache_put(s->l2_table_cache, &table);
            return ret;
        }
        memcpy(table, old, s->cluster_size);
        qcow2_cache_put(s->l2_table_cache, &old);
    } else {
        memset(table, 0, s->cluster_size);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, table);
    s->l1_table[l1_index] = (uint64_t)new_offset | QCOW_OFLAG_COPIED;
    qcow2_l1_mark_dirty(s, l1_index, 1);
    if (old_offset) {
        qcow2_free_clusters(bs, (int64_t)old_offset, s->cluster_size, QCOW2_DISCARD_OTHER);
    }
    *l2 = table;
    return 0;
}

int qcow2_get_l2_table(BlockDriverState *bs, uint64_t guest_offset, bool alloc, void **l2)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint32_t l1_index = offset_to_l1_index(s, guest_offset);
    *l2 = NULL;
    if (l1_index >= s->l1_size) {
        if (!alloc) {
            return 0;
        }
        int ret = qcow2_grow_l1_table(bs, (uint64_t)l1_index + 1, false);
        if (ret < 0) {
            return ret;
        }
    }
    uint64_t l2_offset;
    int ret = l2_offset_of(bs, l1_index, &l2_offset);
    if (ret < 0) {
        return ret;
    }
    bool copied = (s->l1_table[l1_index] & QCOW_OFLAG_COPIED) != 0;
    if (l2_offset && (copied || !alloc)) {
        return qcow2_cache_get(bs, s->l2_table_cache, l2_offset, l2);
    }
    if (!alloc) {
        return 0;
    }
    return l2_allocate(bs, l1_index, l2);
}

int qcow2_get_l2_entry(BlockDriverState *bs, uint64_t guest_offset, uint64_t *entry,
                       uint64_t *bitmap)
{
    BDRVQcow2State *s = qcow2_state(bs);
    void *l2;
    *entry = 0;
    *bitmap = 0;
    int ret = qcow2_get_l2_table(bs, guest_offset, false, &l2);
    if (ret < 0 || !l2) {
        return ret;
    }
    uint32_t i = offset_to_l2_index(s, guest_offset);
    *entry = get_l2_entry(s, l2, i);
    *bitmap = get_l2_bitmap(s, l2, i);
    qcow2_cache_put(s->l2_table_cache, &l2);
    return 0;
}

int qcow2_set_l2_entry(BlockDriverState *bs, uint64_t guest_offset, uint64_t entry, uint64_t bitmap)
{
    BDRVQcow2State *s = qcow2_state(bs);
    void *l2;
    int ret = qcow2_get_l2_table(bs, guest_offset, true, &l2);
    if (ret < 0) {
        return ret;
    }
    uint32_t i = offset_to_l2_index(s, guest_offset);
    set_l2_entry(s, l2, i, entry);
    set_l2_bitmap(s, l2, i, bitmap);
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, &l2);
    return 0;
}

/* ---- lookup ---- */

static bool type_has_host(Qcow2SubclusterType t)
{
    return t == QCOW2_SUBCLUSTER_NORMAL || t == QCOW2_SUBCLUSTER_ZERO_ALLOC ||
           t == QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC;
}

/* Validate the entry behind a host-backed subcluster type. */
static int check_host_entry(BlockDriverState *bs, uint64_t l2_offset, uint32_t l2_index,
                            uint64_t entry, uint64_t guest_cluster)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t host = entry & L2E_OFFSET_MASK;
    if (offset_into_cluster(s, (int64_t)host)) {
        return qcow2_signal_corruption(bs, true, -1, -1,
                                       "Cluster allocation offset %#" PRIx64
                                       " unaligned (L2 offset: %#" PRIx64 ", L2 index: %#" PRIx32
                                       ")",
                                       host, l2_offset, l2_index);
    }
    if (has_data_file(s) && host != guest_cluster) {
        return qcow2_signal_corruption(bs, true, -1, -1,
                                       "External data file host cluster offset %#" PRIx64
                                       " does not match guest cluster offset: %#" PRIx64
                                       ", L2 index %#" PRIx32,
                                       host, guest_cluster, l2_index);
    }
    return 0;
}

/* Validate a subcluster type found in an L2 table. */
static int check_type(BlockDriverState *bs, Qcow2SubclusterType type, uint64_t l2_offset,
                      uint32_t l2_index)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (type == QCOW2_SUBCLUSTER_INVALID) {
        return qcow2_signal_corruption(bs, true, -1, -1,
                                       "Invalid cluster entry found  (L2 offset: %#" PRIx64
                                       ", L2 index: %#" PRIx32 ")",
                                       l2_offset, l2_index);
    }
    if (s->qcow_version < 3 &&
        (type == QCOW2_SUBCLUSTER_ZERO_PLAIN || type == QCOW2_SUBCLUSTER_ZERO_ALLOC)) {
        return qcow2_signal_corruption(
            bs, true, -1, -1,
            "Zero cluster entry found in pre-v3 image (L2 offset: %#" PRIx64 ", L2 index: %#" PRIx32
            ")",
            l2_offset, l2_index);
    }
    if (type == QCOW2_SUBCLUSTER_COMPRESSED && has_data_file(s)) {
        return qcow2_signal_corruption(bs, true, -1, -1,
                                       "Compressed cluster entry found in image with external "
                                       "data file (L2 offset: %#" PRIx64 ", L2 index: %#" PRIx32
                                       ")",
                                       l2_offset, l2_index);
    }
    return 0;
}

/*
 * Count bytes from subcluster sc of entry l2_index onward that share `type`
 * (and, for host-backed types, continue the host run).  Stops at max_bytes.
 */
static uint64_t count_run(BDRVQcow2State *s, const void *l2, uint32_t l2_index, unsigned sc,
                          Qcow2SubclusterType type, uint64_t host_cluster, uint64_t max_bytes)
{
    uint64_t bytes = 0;
    for (uint32_t i = l2_index; i < s->l2_size && bytes < max_bytes; i++) {
        uint64_t e = get_l2_entry(s, l2, i);
        uint64_t b = get_l2_bitmap(s, l2, i);
        if (type_has_host(type) &&
            (e & L2E_OFFSET_MASK) != host_cluster + (uint64_t)(i - l2_index) * s->cluster_size) {
            break;
        }
        if (type == QCOW2_SUBCLUSTER_COMPRESSED && i != l2_index) {
            break; /* each compressed cluster is its own run */
        }
        for (unsigned j = (i == l2_index) ? sc : 0; j < s->subclusters_per_cluster; j++) {
            if (qcow2_get_subcluster_type(s, e, b, j) != type) {
                return bytes;
            }
            bytes += s->subcluster_size;
        }
    }
    return bytes;
}

int qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                          uint64_t *host_offset, Qcow2SubclusterType *type)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint32_t l2_index = offset_to_l2_index(s, offset);
    unsigned sc = offset_to_sc_index(s, offset);
    uint64_t in_sc = offset & (s->subcluster_size - 1);
    /* Never look past the L2 table that maps offset. */
    uint64_t l2_left = ((uint64_t)(s->l2_size - l2_index) << s->cluster_bits) -
                       ((uint64_t)sc << s->subcluster_bits) - in_sc;
    uint64_t want = MIN(*bytes, l2_left);
    *host_offset = 0;
    *type = QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN;
    void *l2;
    int ret = qcow2_get_l2_table(bs, offset, false, &l2);
    if (ret < 0) {
        return ret;
    }
    if (!l2) {
        *bytes = want;
        return 0;
    }
    uint64_t l2_offset = s->l1_table[offset_to_l1_index(s, offset)] & L1E_OFFSET_MASK;
    uint64_t e = get_l2_entry(s, l2, l2_index);
    uint64_t b = get_l2_bitmap(s, l2, l2_index);
    Qcow2SubclusterType t = qcow2_get_subcluster_type(s, e, b, sc);
    ret = check_type(bs, t, l2_offset, l2_index);
    if (ret == 0 && type_has_host(t)) {
        ret = check_host_entry(bs, l2_offset, l2_index, e,
                               (uint64_t)start_of_cluster(s, (int64_t)offset));
    }
    if (ret < 0) {
        qcow2_cache_put(s->l2_table_cache, &l2);
        return ret;
    }
    uint64_t run = count_run(s, l2, l2_index, sc, t, e & L2E_OFFSET_MASK, want + in_sc);
    qcow2_cache_put(s->l2_table_cache, &l2);
    *type = t;
    if (t == QCOW2_SUBCLUSTER_COMPRESSED) {
        *host_offset = e;
    } else if (type_has_host(t)) {
        *host_offset = (e & L2E_OFFSET_MASK) + (uint64_t)offset_into_cluster(s, (int64_t)offset);
    }
    *bytes = MIN(want, run - in_sc);
    return 0;
}

/* ---- freeing ---- */

void qcow2_free_any_cluster(BlockDriverState *bs, uint64_t l2_entry, Qcow2DiscardType type)
{
    BDRVQcow2State *s = qcow2_state(bs);
    switch (qcow2_get_cluster_type(s, l2_entry)) {
    case QCOW2_CLUSTER_COMPRESSED: {
        uint64_t off, nb;
        qcow2_compressed_desc_decode(s->cluster_bits, l2_entry, &off, &nb);
        qcow2_free_clusters(bs, (int64_t)off, (int64_t)nb, type);
        break;
    }
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC: {
        uint64_t off = l2_entry & L2E_OFFSET_MASK;
        if (has_data_file(s)) {
            if (s->discard_passthrough[type] && !data_file_is_raw(s)) {
                bfile_discard(s->data_file, (int64_t)off, s->cluster_size);
            }
        } else if (offset_into_cluster(s, (int64_t)off)) {
            qcow2_signal_corruption(bs, false, -1, -1, "Cannot free unaligned cluster %#" PRIx64,
                                    off);
        } else {
            qcow2_free_clusters(bs, (int64_t)off, s->cluster_size, type);
        }
        break;
    }
    default: break;
    }
}

static bool cluster_type_is_allocated(Qcow2ClusterType t)
{
    return t == QCOW2_CLUSTER_COMPRESSED || t == QCOW2_CLUSTER_NORMAL ||
           t == QCOW2_CLUSTER_ZERO_ALLOC;
}

/* New entry/bitmap for a zeroed cluster. */
static void zero_entry(BDRVQcow2State *s, uint64_t old, uint64_t old_bitmap, bool unmap,
                       uint64_t *e, uint64_t *b)
{
    Qcow2ClusterType t = qcow2_get_cluster_type(s, old);
    bool free_it = t == QCOW2_CLUSTER_COMPRESSED || (unmap && cluster_type_is_allocated(t));
    *e = free_it ? 0 : old;
    *b = old_bitmap;
    if (s->extended_l2) {
        *b = QCOW_L2_BITMAP_ALL_ZERO;
    } else {
        *e |= QCOW_OFLAG_ZERO;
    }
}

/* New entry/bitmap for a discarded cluster (QEMU's rules). */
static void discard_entry(BlockDriverState *bs, uint64_t old, uint64_t old_bitmap, bool full,
                          uint64_t *e, uint64_t *b)
{
    BDRVQcow2State *s = qcow2_state(bs);
    *e = old;
    *b = old_bitmap;
    if (full) {
        *e = *b = 0;
    } else if (bs->backing_file || cluster_type_is_allocated(qcow2_get_cluster_type(s, old))) {
        if (s->extended_l2) {
            *e = 0;
            *b = QCOW_L2_BITMAP_ALL_ZERO;
        } else {
            *e = s->qcow_version >= 3 ? QCOW_OFLAG_ZERO : 0;
            *b = 0;
        }
    }
}

/* Apply zero (mode 0) or discard (mode 1/2 = full) to clusters in one L2 table. */
static int64_t change_in_l2(BlockDriverState *bs, uint64_t offset, int64_t nb_clusters, int mode,
                            bool unmap, Qcow2DiscardType dtype)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint32_t l2_index = offset_to_l2_index(s, offset);
    int64_t n = MIN(nb_clusters, (int64_t)(s->l2_size - l2_index));
    void *l2;
    int ret = qcow2_get_l2_table(bs, offset, true, &l2);
    if (ret < 0) {
        return ret;
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t idx = l2_index + (uint32_t)i;
        uint64_t old = get_l2_entry(s, l2, idx), old_b = get_l2_bitmap(s, l2, idx);
        uint64_t e, b;
        if (mode == 0) {
            zero_entry(s, old, old_b, unmap, &e, &b);
        } else {
            discard_entry(bs, old, old_b, mode == 2, &e, &b);
        }
        if (e == old && b == old_b) {
            continue;
        }
        set_l2_entry(s, l2, idx, e);
        set_l2_bitmap(s, l2, idx, b);
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        if ((e & L2E_OFFSET_MASK) != (old & L2E_OFFSET_MASK) || (old & QCOW_OFLAG_COMPRESSED)) {
            qcow2_free_any_cluster(bs, old, dtype);
        }
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    return n;
}

static int change_range(BlockDriverState *bs, uint64_t offset, uint64_t bytes, int mode, bool unmap,
                        Qcow2DiscardType dtype)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int64_t nb = size_to_clusters(s, bytes);
    while (nb > 0) {
        int64_t done = change_in_l2(bs, offset, nb, mode, unmap, dtype);
        if (done < 0) {
            return (int)done;
        }
        nb -= done;
        offset += (uint64_t)done << s->cluster_bits;
    }
    return 0;
}

int qcow2_cluster_zeroize(BlockDriverState *bs, uint64_t offset, uint64_t bytes, bool unmap)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (s->qcow_version < 3) {
        if (!bs->backing_file) {
            return qcow2_cluster_discard(bs, offset, bytes, QCOW2_DISCARD_REQUEST, false);
        }
        return -ENOTSUP;
    }
    return change_range(bs, offset, bytes, 0, unmap, QCOW2_DISCARD_REQUEST);
}

int qcow2_cluster_discard(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                          Qcow2DiscardType type, bool full_discard)
{
    return change_range(bs, offset, bytes, full_discard ? 2 : 1, false, type);
}
