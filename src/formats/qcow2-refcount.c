/*
 * qcow2-refcount.c — qcow2 host cluster reference counts: the refcount
 * table (in memory, host order), refcount blocks (through the metadata
 * cache), cluster allocation and freeing.
 *
 * Spec: docs/interop/qcow2.txt, "Host cluster management".  refcount_bits
 * 1..64; sub-byte entries are packed least significant bits first.
 *
 * Design notes (invariants):
 *  1. Every host cluster in use (header, tables, data) has refcount >= 1;
 *     a cluster covered by no refcount block has refcount 0 (free).
 *  2. Allocation searches for free clusters from free_cluster_index upwards
 *     (so freed clusters are reused first), then makes sure every refcount
 *     block covering the run exists.  Creating a refcount block (or growing
 *     the table) allocates clusters itself, so it answers -EAGAIN and the
 *     search starts over: the run found before may now be taken.
 *  3. A new refcount block is written to disk before the table entry that
 *     points at it; a new table is written and synced before the header
 *     points at it, and the old table is freed only afterwards.
 *  4. Refcount changes are validated for the whole range before any entry
 *     changes, so an overflow or underflow leaves the image as it was.
 *  5. After a decrease, the refcount cache depends on the L2 cache: the L2
 *     entries that stopped pointing at a cluster reach the disk before the
 *     cluster is recorded as free.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2.h"

/* ---- entry access ---- */

uint64_t qcow2_refblock_get(const void *refblock, int order, uint64_t index)
{
    const uint8_t *p = refblock;
    switch (order) {
    case 0: return (p[index / 8] >> (index % 8)) & 0x1;
    case 1: return (p[index / 4] >> (2 * (index % 4))) & 0x3;
    case 2: return (p[index / 2] >> (4 * (index % 2))) & 0xf;
    case 3: return p[index];
    case 4: return ld16_be(p + index * 2);
    case 5: return ld32_be(p + index * 4);
    default: return ld64_be(p + index * 8);
    }
}

void qcow2_refblock_set(void *refblock, int order, uint64_t index, uint64_t value)
{
    uint8_t *p = refblock;
    if (order <= 2) {
        int bits = 1 << order;
        uint64_t per_byte = 8 / (uint64_t)bits;
        int shift = (int)((index % per_byte) * (uint64_t)bits);
        uint8_t mask = (uint8_t)(((1 << bits) - 1) << shift);
        p[index / per_byte] = (uint8_t)((p[index / per_byte] & ~mask) | ((value << shift) & mask));
        return;
    }
    switch (order) {
    case 3: p[index] = (uint8_t)value; break;
    case 4: st16_be(p + index * 2, (uint16_t)value); break;
    case 5: st32_be(p + index * 4, (uint32_t)value); break;
    default: st64_be(p + index * 8, value); break;
    }
}

/* ---- table load/store ---- */

int qcow2_refcount_init(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    /* open() bounded refcount_table_size by QCOW2_MAX_REFTABLE_SIZE */
    size_t bytes = (size_t)s->refcount_table_size * 8;
    if (bdrv_metadata_reserve(bs, "refcount table", bytes, errp) < 0) {
        return -EFBIG;
    }
    s->refcount_table = xmalloc(MAX(bytes, 8));
    int ret = bfile_pread(bs->file, (int64_t)s->refcount_table_offset, s->refcount_table, bytes);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read refcount table");
        return ret;
    }
    s->max_refcount_table_index = 0;
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        s->refcount_table[i] = ld64_be(&s->refcount_table[i]);
        if (s->refcount_table[i]) {
            s->max_refcount_table_index = i + 1;
        }
    }
    s->free_cluster_index = 0;
    return 0;
}

void qcow2_refcount_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    free(s->refcount_table);
    s->refcount_table = NULL;
}

int qcow2_write_refcount_table(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    size_t bytes = (size_t)s->refcount_table_size * 8;
    uint64_t *be = xmalloc(MAX(bytes, 8));
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        st64_be(&be[i], s->refcount_table[i]);
    }
    int ret = bfile_pwrite(bs->file, (int64_t)s->refcount_table_offset, be, bytes);
    free(be);
    return ret;
}

int qcow2_write_reftable_header(BlockDriverState *bs, uint64_t offset, uint32_t clusters)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint8_t buf[12];
    st64_be(buf, offset);
    st32_be(buf + 8, clusters);
    int ret = bfile_pwrite(bs->file, QCOW2_HDR_REFCOUNT_TABLE_OFFSET, buf, sizeof(buf));
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret == 0) {
        s->refcount_table_offset = offset;
    }
    return ret;
}

/* ---- lookups ---- */

/* Host offset of refcount block `idx` (0: none), validated. */
static int refblock_offset(BlockDriverState *bs, uint64_t idx, uint64_t *offset)
{
    BDRVQcow2State *s = qcow2_state(bs);
    *offset = 0;
    if (idx >= s->refcount_table_size) {
        return 0;
    }
    uint64_t off = s->refcount_table[idx] & REFT_OFFSET_MASK;
    if (off && offset_into_cluster(s, (int64_t)off)) {
        return qcow2_signal_corruption(
            bs, true, (int64_t)off, -1,
            "Refblock offset %#" PRIx64 " unaligned (reftable index: %#" PRIx64 ")", off, idx);
    }
    *offset = off;
    return 0;
}

int qcow2_get_refcount(BlockDriverState *bs, int64_t cluster_index, uint64_t *refcount)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t off;
    int ret = refblock_offset(bs, (uint64_t)cluster_index >> s->refcount_block_bits, &off);
    *refcount = 0;
    if (ret < 0 || !off) {
        return ret;
    }
    void *rb;
    ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &rb);
    if (ret < 0) {
        return ret;
    }
    *refcount = qcow2_refblock_get(rb, s->refcount_order,
                                   (uint64_t)cluster_index & (s->refcount_block_size - 1));
    qcow2_cache_put(s->refcount_block_cache, &rb);
    return 0;
}

/* ---- refcount table growth ---- */

static uint64_t rt_index(const BDRVQcow2State *s, uint64_t cluster)
{
    return cluster >> s->refcount_block_bits;
}

/* Lay out an area of new refcount blocks + a new table starting at cluster
 * area_start, big enough to cover itself and table index min_idx. */
static int plan_reftable_area(BDRVQcow2State *s, uint64_t area_start, uint64_t min_idx,
                              uint64_t *n_blocks, uint64_t *table_entries, uint64_t *table_clusters)
{
    uint64_t entries_per_cluster = s->cluster_size / 8;
    uint64_t blocks = 1, tclusters = 1, entries = 0;
    for (int iter = 0; iter < 64; iter++) {
        uint64_t area_end = area_start + blocks + tclusters;
        uint64_t need = MAX(min_idx + 1, rt_index(s, area_end - 1) + 1);
        need = MAX(need, (uint64_t)s->refcount_table_size + s->refcount_table_size / 2);
        entries = ROUND_UP(need, entries_per_cluster);
        uint64_t nb = rt_index(s, area_end - 1) - rt_index(s, area_start) + 1;
        uint64_t nt = entries / entries_per_cluster;
        if (nb == blocks && nt == tclusters) {
            break;
        }
        blocks = nb;
        tclusters = nt;
    }
    if (entries * 8 > QCOW2_MAX_REFTABLE_SIZE) {
        return -EFBIG;
    }
    if ((area_start + blocks + tclusters) > (QCOW2_MAX_HOST_OFFSET >> s->cluster_bits)) {
        return -EFBIG;
    }
    *n_blocks = blocks;
    *table_entries = entries;
    *table_clusters = tclusters;
    return 0;
}

/* Write the self-describing refcount blocks of the new area. */
static int write_area_blocks(BlockDriverState *bs, uint64_t area_start, uint64_t n_blocks,
                             uint64_t area_end)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint8_t *block = xmalloc(s->cluster_size);
    int ret = 0;
    uint64_t first_idx = rt_index(s, area_start);
    for (uint64_t b = 0; b < n_blocks && ret == 0; b++) {
        memset(block, 0, s->cluster_size);
        uint64_t range_start = (first_idx + b) << s->refcount_block_bits;
        uint64_t range_end = range_start + s->refcount_block_size;
        for (uint64_t c = MAX(range_start, area_start); c < MIN(range_end, area_end); c++) {
            qcow2_refblock_set(block, s->refcount_order, c - range_start, 1);
        }
        ret = bfile_pwrite(bs->file, (int64_t)((area_start + b) << s->cluster_bits), block,
                           s->cluster_size);
    }
    free(block);
    return ret;
}

static int update_refcount_raw(BlockDriverState *bs, int64_t offset, int64_t length, int64_t addend,
                               Qcow2DiscardType type);

/*
 * Replace the refcount table by a bigger one covering table index min_idx.
 * The new blocks and table go right after the area the old table covers
 * (every cluster there is free).  Returns -EAGAIN on success.
 */
static int grow_refcount_table(BlockDriverState *bs, uint64_t min_idx)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t area_start = (uint64_t)s->refcount_table_size << s->refcount_block_bits;
    uint64_t n_blocks, entries, tclusters;
    int ret = plan_reftable_area(s, area_start, min_idx, &n_blocks, &entries, &tclusters);
    if (ret < 0) {
        return ret;
    }
    uint64_t area_end = area_start + n_blocks + tclusters;
    ret = write_area_blocks(bs, area_start, n_blocks, area_end);
    if (ret < 0) {
        return ret;
    }
    uint64_t *table = XNEWV(uint64_t, (size_t)entries);
    memcpy(table, s->refcount_table, (size_t)s->refcount_table_size * 8);
    uint64_t first_idx = rt_index(s, area_start);
    for (uint64_t b = 0; b < n_blocks; b++) {
        table[first_idx + b] = (area_start + b) << s->cluster_bits;
    }
    uint64_t table_offset = (area_start + n_blocks) << s->cluster_bits;
    uint64_t *be = XNEWV(uint64_t, (size_t)entries);
    for (uint64_t i = 0; i < entries; i++) {
        st64_be(&be[i], table[i]);
    }
    ret = bfile_pwrite(bs->file, (int64_t)table_offset, be, (size_t)entries * 8);
    free(be);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    uint64_t old_offset = s->refcount_table_offset;
    uint64_t old_bytes = (uint64_t)s->refcount_table_size * 8;
    if (ret == 0) {
        ret = qcow2_write_reftable_header(bs, table_offset, (uint32_t)tclusters);
    }
    if (ret < 0) {
        free(table);
        return ret;
    }
    free(s->refcount_table);
    s->refcount_table = table;
    s->refcount_table_size = (uint32_t)entries;
    s->max_refcount_table_index = (uint32_t)(first_idx + n_blocks);
    ret = update_refcount_raw(bs, (int64_t)old_offset, (int64_t)old_bytes, -1, QCOW2_DISCARD_OTHER);
    return ret < 0 ? ret : -EAGAIN;
}

/* ---- refcount blocks ---- */

static int64_t alloc_clusters_noref(BlockDriverState *bs, uint64_t size);

/*
 * Make sure refcount block `idx` exists.  0: it did; -EAGAIN: something was
 * allocated (the caller must search again); other -errno: failure.
 */
static int ensure_refblock(BlockDriverState *bs, uint64_t idx)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (idx >= s->refcount_table_size) {
        return grow_refcount_table(bs, idx);
    }
    uint64_t off;
    int ret = refblock_offset(bs, idx, &off);
    if (ret < 0 || off) {
        return ret;
    }
    int64_t saved_hint = s->free_cluster_index;
    int64_t new_block = alloc_clusters_noref(bs, s->cluster_size);
    if (new_block < 0) {
        return (int)new_block;
    }
    uint64_t new_cluster = (uint64_t)new_block >> s->cluster_bits;
    uint64_t new_idx = rt_index(s, new_cluster);
    if (new_idx != idx) {
        uint64_t other;
        ret = refblock_offset(bs, new_idx, &other);
        if (ret < 0) {
            return ret;
        }
        if (!other || new_idx >= s->refcount_table_size) {
            /* That range needs its own block first; it will describe itself. */
            s->free_cluster_index = MIN(saved_hint, (int64_t)new_cluster);
            ret = ensure_refblock(bs, new_idx);
            return ret == 0 ? -EAGAIN : ret;
        }
        ret = update_refcount_raw(bs, new_block, s->cluster_size, 1, QCOW2_DISCARD_NEVER);
        if (ret < 0) {
            return ret;
        }
    }
    void *rb;
    ret = qcow2_cache_get_empty(bs, s->refcount_block_cache, (uint64_t)new_block, &rb);
    if (ret < 0) {
        return ret;
    }
    memset(rb, 0, s->cluster_size);
    if (new_idx == idx) {
        qcow2_refblock_set(rb, s->refcount_order, new_cluster & (s->refcount_block_size - 1), 1);
    }
    qcow2_cache_entry_mark_dirty(s->refcount_block_cache, rb);
    qcow2_cache_put(s->refcount_block_cache, &rb);
    /* The block must be on disk before the table points at it. */
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        return ret;
    }
    uint8_t entry[8];
    st64_be(entry, (uint64_t)new_block);
    ret = bfile_pwrite(bs->file, (int64_t)(s->refcount_table_offset + idx * 8), entry, 8);
    if (ret < 0) {
        return ret;
    }
    s->refcount_table[idx] = (uint64_t)new_block;
    s->max_refcount_table_index = MAX(s->max_refcount_table_index, (uint32_t)idx + 1);
    return -EAGAIN;
}

/* Ensure blocks for every cluster of [offset, offset+length). */
static int ensure_refblocks(BlockDriverState *bs, int64_t offset, int64_t length)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t first = rt_index(s, (uint64_t)offset >> s->cluster_bits);
    uint64_t last = rt_index(s, (uint64_t)(offset + length - 1) >> s->cluster_bits);
    for (uint64_t idx = first; idx <= last; idx++) {
        int ret = ensure_refblock(bs, idx);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/* ---- updates ---- */

/* Cluster freed: forget cached tables there, maybe discard on the host. */
static void cluster_freed(BlockDriverState *bs, int64_t cluster, Qcow2DiscardType type)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t off = (uint64_t)cluster << s->cluster_bits;
    qcow2_cache_discard_offset(s->l2_table_cache, off);
    qcow2_cache_discard_offset(s->refcount_block_cache, off);
    if (cluster < s->free_cluster_index) {
        s->free_cluster_index = cluster;
    }
    if (s->discard_passthrough[type]) {
        bfile_discard(bs->file, (int64_t)off, s->cluster_size);
    }
}

/* Apply (apply=true) or only validate a refcount change; blocks must exist. */
static int refcount_pass(BlockDriverState *bs, int64_t first, int64_t last, int64_t addend,
                         Qcow2DiscardType type, bool apply)
{
    BDRVQcow2State *s = qcow2_state(bs);
    void *rb = NULL;
    uint64_t rb_idx = UINT64_MAX;
    int ret = 0;
    for (int64_t c = first; c <= last; c++) {
        uint64_t idx = rt_index(s, (uint64_t)c);
        if (idx != rb_idx) {
            if (rb) {
                qcow2_cache_put(s->refcount_block_cache, &rb);
            }
            uint64_t off;
            ret = refblock_offset(bs, idx, &off);
            if (ret == 0 && !off) {
                ret = -EIO; /* caller skipped ensure_refblocks */
            }
            if (ret == 0) {
                ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &rb);
            }
            if (ret < 0) {
                return ret;
            }
            rb_idx = idx;
        }
        uint64_t i = (uint64_t)c & (s->refcount_block_size - 1);
        uint64_t old = qcow2_refblock_get(rb, s->refcount_order, i);
        if ((addend < 0 && old < (uint64_t)-addend) ||
            (addend > 0 && s->refcount_max - old < (uint64_t)addend)) {
            ret = -EINVAL;
            break;
        }
        if (apply) {
            uint64_t v = old + (uint64_t)addend;
            qcow2_refblock_set(rb, s->refcount_order, i, v);
            qcow2_cache_entry_mark_dirty(s->refcount_block_cache, rb);
            if (v == 0) {
                /* Our own block may be the freed cluster: drop the pin first. */
                qcow2_cache_put(s->refcount_block_cache, &rb);
                rb_idx = UINT64_MAX;
                cluster_freed(bs, c, type);
            }
        }
    }
    if (rb) {
        qcow2_cache_put(s->refcount_block_cache, &rb);
    }
    return ret;
}

static int update_refcount_raw(BlockDriverState *bs, int64_t offset, int64_t length, int64_t addend,
                               Qcow2DiscardType type)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (length <= 0 || addend == 0) {
        return 0;
    }
    if (addend < 0) {
        int ret = qcow2_cache_set_dependency(bs, s->refcount_block_cache, s->l2_table_cache);
        if (ret < 0) {
            return ret;
        }
    }
    int64_t first = offset >> s->cluster_bits;
    int64_t last = (offset + length - 1) >> s->cluster_bits;
    int ret = refcount_pass(bs, first, last, addend, type, false);
    if (ret == 0) {
        ret = refcount_pass(bs, first, last, addend, type, true);
    }
    return ret;
}

int qcow2_update_refcount(BlockDriverState *bs, int64_t offset, int64_t length, int64_t addend,
                          Qcow2DiscardType type)
{
    if (offset < 0 || length < 0 || offset > (int64_t)QCOW2_MAX_HOST_OFFSET) {
        return -EINVAL;
    }
    if (length == 0) {
        return 0;
    }
    int ret;
    for (int tries = 0; tries < 1024; tries++) {
        ret = ensure_refblocks(bs, offset, length);
        if (ret != -EAGAIN) {
            break;
        }
    }
    if (ret < 0) {
        return ret;
    }
    return update_refcount_raw(bs, offset, length, addend, type);
}

int qcow2_set_cluster_refcount(BlockDriverState *bs, int64_t cluster_index, uint64_t value)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t cur;
    if (value > s->refcount_max) {
        return -EINVAL;
    }
    int ret = qcow2_get_refcount(bs, cluster_index, &cur);
    if (ret < 0) {
        return ret;
    }
    int64_t delta = (int64_t)(value - cur);
    return qcow2_update_refcount(bs, cluster_index << s->cluster_bits, 1, delta,
                                 QCOW2_DISCARD_NEVER);
}

/* ---- allocation ---- */

/* Find `size` bytes of contiguous free clusters from free_cluster_index;
 * moves the hint past them.  Refcounts are not touched. */
static int64_t alloc_clusters_noref(BlockDriverState *bs, uint64_t size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int64_t nb = size_to_clusters(s, size);
    int64_t max_clusters = (int64_t)(QCOW2_MAX_HOST_OFFSET >> s->cluster_bits);
    int64_t start = s->free_cluster_index;
    int64_t i = start;
    while (i - start < nb) {
        if (i >= max_clusters) {
            return -EFBIG;
        }
        uint64_t rc;
        /* Skip whole missing refcount blocks: all their clusters are free. */
        int ret = qcow2_get_refcount(bs, i, &rc);
        if (ret < 0) {
            return ret;
        }
        i++;
        if (rc) {
            start = i;
        }
    }
    s->free_cluster_index = start + nb;
    return start << s->cluster_bits;
}

int64_t qcow2_alloc_clusters(BlockDriverState *bs, uint64_t size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (size == 0) {
        return -EINVAL;
    }
    for (int tries = 0; tries < 1024; tries++) {
        int64_t hint = s->free_cluster_index;
        int64_t offset = alloc_clusters_noref(bs, size);
        if (offset < 0) {
            return offset;
        }
        int ret = ensure_refblocks(bs, offset, (int64_t)size);
        if (ret == -EAGAIN) {
            s->free_cluster_index = MIN(hint, s->free_cluster_index);
            continue;
        }
        if (ret == 0) {
            ret = update_refcount_raw(bs, offset, (int64_t)size, 1, QCOW2_DISCARD_NEVER);
        }
        return ret < 0 ? ret : offset;
    }
    return -EIO;
}

int64_t qcow2_alloc_clusters_at(BlockDriverState *bs, uint64_t offset, int64_t nb_clusters)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (nb_clusters <= 0) {
        return 0;
    }
    for (int tries = 0; tries < 1024; tries++) {
        int64_t first = (int64_t)(offset >> s->cluster_bits);
        int64_t n = 0;
        while (n < nb_clusters) {
            uint64_t rc;
            int ret = qcow2_get_refcount(bs, first + n, &rc);
            if (ret < 0) {
                return ret;
            }
            if (rc) {
                break;
            }
            n++;
        }
        if (n == 0) {
            return 0;
        }
        int ret = ensure_refblocks(bs, (int64_t)offset, n << s->cluster_bits);
        if (ret == -EAGAIN) {
            continue;
        }
        if (ret == 0) {
            ret = update_refcount_raw(bs, (int64_t)offset, n << s->cluster_bits, 1,
                                      QCOW2_DISCARD_NEVER);
        }
        return ret < 0 ? ret : n;
    }
    return -EIO;
}

int64_t qcow2_alloc_bytes(BlockDriverState *bs, int size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (size <= 0 || (uint32_t)size > s->cluster_size) {
        return -EINVAL;
    }
    int64_t offset = s->free_byte_offset;
    if (offset) {
        uint64_t rc;
        int ret = qcow2_get_refcount(bs, offset >> s->cluster_bits, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc >= s->refcount_max) {
            offset = 0; /* that cluster cannot take another reference */
        }
    }
    int64_t room = offset ? (int64_t)s->cluster_size - offset_into_cluster(s, offset) : 0;
    int ret;
    for (int tries = 0; tries < 1024; tries++) {
        if (!offset || room < size) {
            int64_t hint = s->free_cluster_index;
            int64_t c = alloc_clusters_noref(bs, s->cluster_size);
            if (c < 0) {
                return c;
            }
            if (!offset || ROUND_UP(offset, (int64_t)s->cluster_size) != c) {
                offset = c;
                room = s->cluster_size;
            } else {
                room += s->cluster_size; /* continues into the next cluster */
            }
            ret = ensure_refblocks(bs, offset, size);
            if (ret == -EAGAIN) {
                s->free_cluster_index = MIN(hint, s->free_cluster_index);
                offset = 0;
                continue;
            }
        } else {
            ret = ensure_refblocks(bs, offset, size);
            if (ret == -EAGAIN) {
                continue;
            }
        }
        if (ret == 0) {
            ret = update_refcount_raw(bs, offset, size, 1, QCOW2_DISCARD_NEVER);
        }
        if (ret < 0) {
            return ret;
        }
        s->free_byte_offset = offset + size;
        if (!offset_into_cluster(s, s->free_byte_offset)) {
            s->free_byte_offset = 0;
        }
        return offset;
    }
    return -EIO;
}

void qcow2_free_clusters(BlockDriverState *bs, int64_t offset, int64_t size, Qcow2DiscardType type)
{
    int ret = qcow2_update_refcount(bs, offset, size, -1, type);
    if (ret < 0) {
        /* qemu prints this one plain: no program name, no "warning:" */
        msg_report("qcow2_free_clusters failed: %s", strerror(-ret));
    }
}

int64_t qcow2_get_last_cluster_end(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    for (int64_t idx = (int64_t)s->max_refcount_table_index - 1; idx >= 0; idx--) {
        uint64_t off;
        int ret = refblock_offset(bs, (uint64_t)idx, &off);
        if (ret < 0) {
            return ret;
        }
        if (!off) {
            continue;
        }
        void *rb;
        ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &rb);
        if (ret < 0) {
            return ret;
        }
        for (int64_t i = (int64_t)s->refcount_block_size - 1; i >= 0; i--) {
            if (qcow2_refblock_get(rb, s->refcount_order, (uint64_t)i)) {
                qcow2_cache_put(s->refcount_block_cache, &rb);
                return ((idx << s->refcount_block_bits) + i + 1) << s->cluster_bits;
            }
        }
        qcow2_cache_put(s->refcount_block_cache, &rb);
    }
    return 0;
}
