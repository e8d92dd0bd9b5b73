/*
 * qcow2-resize.c — grow and shrink a qcow2 image (qemu-img resize, and
 * snapshot apply when the snapshot's disk size differs).
 *
 * Spec: QEMU docs/interop/qcow2.txt (header "size", L1 table, refcounts).
 * Behaviour and messages follow qemu-img 7.2:
 *  - the new size must be a multiple of 512;
 *  - a version 2 image with snapshots cannot be resized (v2 snapshots do not
 *    record their disk size);
 *  - growing grows the L1 table (never shrinks it) and, with
 *    preallocation=metadata|falloc|full, allocates the new clusters;
 *  - shrinking frees every cluster past the new end, the L2 tables and
 *    refcount blocks that became unused, and truncates the file after the
 *    last used cluster.  The L1 table keeps its size, as in QEMU.
 * Divergence: falloc/full preallocation places the new data clusters like
 * metadata preallocation (L2 table, then its data run) and then
 * preallocates the file tail; QEMU puts them after a fresh refcount area.
 * Both give valid images with the same guest content.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2.h"

/* ---- shrinking ---- */

/* Zero L1 entries [new_size, l1_size) on disk, then free their L2 tables. */
static int shrink_l1_table(BlockDriverState *bs, uint32_t new_size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (new_size >= s->l1_size) {
        return 0;
    }
    int ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    ret = bfile_write_zeroes(bs->file, (int64_t)(s->l1_table_offset + (uint64_t)new_size * 8),
                             (int64_t)(s->l1_size - new_size) * 8, false);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret < 0) {
        /* the table on disk may be half-cleared: forget those L2 tables */
        memset(s->l1_table + new_size, 0, (size_t)(s->l1_size - new_size) * 8);
        return ret;
    }
    for (uint32_t i = s->l1_size; i-- > new_size;) {
        uint64_t l2_offset = s->l1_table[i] & L1E_OFFSET_MASK;
        if (!l2_offset) {
            continue;
        }
        qcow2_cache_discard_offset(s->l2_table_cache, l2_offset);
        qcow2_free_clusters(bs, (int64_t)l2_offset, s->cluster_size, QCOW2_DISCARD_ALWAYS);
        s->l1_table[i] = 0;
    }
    return 0;
}

/* True if refcount block i counts nothing but (maybe) itself. */
static int refblock_unused(BlockDriverState *bs, uint32_t i, bool *unused)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t offset = s->refcount_table[i] & REFT_OFFSET_MASK;
    void *rb;
    int ret = qcow2_cache_get(bs, s->refcount_block_cache, offset, &rb);
    if (ret < 0) {
        return ret;
    }
    uint64_t own = offset >> s->cluster_bits;
    bool self = (own >> s->refcount_block_bits) == i;
    uint64_t own_index = own & (s->refcount_block_size - 1), saved = 0;
    if (self) {
        saved = qcow2_refblock_get(rb, s->refcount_order, own_index);
        qcow2_refblock_set(rb, s->refcount_order, own_index, 0);
    }
    *unused = buffer_is_zero(rb, s->cluster_size);
    if (self) {
        qcow2_refblock_set(rb, s->refcount_order, own_index, saved);
    }
    qcow2_cache_put(s->refcount_block_cache, &rb);
    return 0;
}

/* Drop refcount blocks that no longer count anything. */
static int shrink_reftable(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    size_t n = s->refcount_table_size;
    uint64_t *new_table = XNEWV(uint64_t, n + 1), *be = XNEWV(uint64_t, n + 1);
    int ret = 0;

    for (size_t i = 0; i < n && ret == 0; i++) {
        bool unused = false;
        new_table[i] = s->refcount_table[i];
        if (new_table[i] & REFT_OFFSET_MASK) {
            ret = refblock_unused(bs, (uint32_t)i, &unused);
        }
        if (unused) {
            new_table[i] = 0;
        }
        st64_be(&be[i], new_table[i]);
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0) {
        ret = bfile_pwrite(bs->file, (int64_t)s->refcount_table_offset, be, n * 8);
    }
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    for (size_t i = 0; i < n && ret == 0; i++) {
        uint64_t offset = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (!offset || new_table[i]) {
            continue;
        }
        s->refcount_table[i] = 0;
        qcow2_cache_discard_offset(s->refcount_block_cache, offset);
        uint64_t own = offset >> s->cluster_bits;
        if ((own >> s->refcount_block_bits) != i) {
            /* counted by another block: give its cluster back there */
            ret = qcow2_update_refcount(bs, (int64_t)offset, s->cluster_size, -1,
                                        QCOW2_DISCARD_ALWAYS);
        }
        if ((int64_t)own < s->free_cluster_index) {
            s->free_cluster_index = (int64_t)own;
        }
    }
    s->max_refcount_table_index = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->refcount_table[i]) {
            s->max_refcount_table_index = (uint32_t)i + 1;
        }
    }
    free(new_table);
    free(be);
    return ret;
}

static int shrink(BlockDriverState *bs, int64_t offset, uint32_t new_l1_size, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int64_t from = ROUND_UP(offset, (int64_t)s->cluster_size);
    int ret = 0;
    if (from < bs->total_size) {
        ret = qcow2_cluster_discard(bs, (uint64_t)from, (uint64_t)(bs->total_size - from),
                                    QCOW2_DISCARD_ALWAYS, true);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to discard cropped clusters");
        return ret;
    }
    ret = shrink_l1_table(bs, new_l1_size);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to reduce the number of L2 tables");
        return ret;
    }
    ret = shrink_reftable(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to discard unused refblocks");
        return ret;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to flush the refcount block cache");
        return ret;
    }
    int64_t file_size = bfile_getlength(bs->file);
    if (file_size < 0) {
        error_setg_errno(errp, (int)-file_size, "Failed to inquire current file length");
        return (int)file_size;
    }
    int64_t end = qcow2_get_last_cluster_end(bs);
    if (end < 0) {
        error_setg_errno(errp, (int)-end, "Failed to find the last cluster");
        return (int)end;
    }
    if (end < file_size) {
        Error *err = NULL;
        if (bfile_truncate(bs->file, end, PREALLOC_OFF, &err) < 0) {
            msg_warn("Failed to truncate the tail of the image: %s", error_get_pretty(err));
            error_free(err);
        }
    }
    return 0;
}

/* ---- growing with preallocation ---- */

/* Give guest clusters [first, first+n) (all within one L2 table) host
 * clusters; returns the end of the last one, or -errno. */
static int64_t prealloc_l2_run(BlockDriverState *bs, uint64_t first, uint64_t n)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t guest = first << s->cluster_bits;
    void *l2 = NULL;
    int ret = qcow2_get_l2_table(bs, guest, true, &l2);
    if (ret < 0) {
        return ret;
    }
    int64_t host = qcow2_alloc_clusters(bs, n << s->cluster_bits);
    if (host < 0) {
        qcow2_cache_put(s->l2_table_cache, &l2);
        return host;
    }
    /* refcounts of the new clusters reach the disk before the entries */
    qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
    uint32_t idx = offset_to_l2_index(s, guest);
    for (uint64_t k = 0; k < n; k++) {
        uint64_t old = get_l2_entry(s, l2, idx + (uint32_t)k);
        if (old & L2E_OFFSET_MASK) {
            continue; /* already allocated (cannot happen past the old end) */
        }
        set_l2_entry(s, l2, idx + (uint32_t)k,
                     ((uint64_t)host + (k << s->cluster_bits)) | QCOW_OFLAG_COPIED);
        set_l2_bitmap(s, l2, idx + (uint32_t)k, QCOW_L2_BITMAP_ALL_ALLOC);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, &l2);
    return host + (int64_t)(n << s->cluster_bits);
}

static int preallocate(BlockDriverState *bs, int64_t old_size, int64_t new_size, PreallocMode mode,
                       Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    /* a partly used last cluster may still be unallocated: start at its head */
    uint64_t first = (uint64_t)old_size >> s->cluster_bits;
    uint64_t end = DIV_ROUND_UP((uint64_t)new_size, s->cluster_size);
    int64_t host_end = 0;
    while (first < end) {
        uint64_t in_table = s->l2_size - (first & (s->l2_size - 1));
        uint64_t n = MIN(in_table, end - first);
        uint64_t entry = 0, bitmap = 0;
        int ret = qcow2_get_l2_entry(bs, first << s->cluster_bits, &entry, &bitmap);
        if (ret == 0 && (entry & L2E_OFFSET_MASK) && n > 0) {
            first++; /* the partial head cluster is already there */
            continue;
        }
        int64_t r = ret < 0 ? ret : prealloc_l2_run(bs, first, n);
        if (r < 0) {
            error_setg_errno(errp, (int)-r, "Could not allocate clusters");
            return (int)r;
        }
        host_end = MAX(host_end, r);
        first += n;
    }
    int ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush metadata");
        return ret;
    }
    int64_t file_len = bfile_getlength(bs->file);
    if (file_len >= 0 && host_end > file_len) {
        /* reads of the new clusters must not fall past the end of the file */
        return bfile_truncate(bs->file, host_end, mode == PREALLOC_METADATA ? PREALLOC_OFF : mode,
                              errp);
    }
    return file_len < 0 ? (int)file_len : 0;
}

/* ---- the slot ---- */

static int write_size_field(BlockDriverState *bs, int64_t offset, Error **errp)
{
    uint8_t buf[8];
    st64_be(buf, (uint64_t)offset);
    int ret = bfile_pwrite(bs->file, QCOW2_HDR_SIZE, buf, sizeof(buf));
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update the image size");
    }
    return ret;
}

static int truncate_locked(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                           bool shrink_allowed, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int64_t old_size = bs->total_size;
    int ret;

    if (!IS_ALIGNED(offset, BDRV_SECTOR_SIZE)) {
        error_setg(errp, "The new size must be a multiple of %u", (unsigned)BDRV_SECTOR_SIZE);
        return -EINVAL;
    }
    if (s->nb_snapshots && s->qcow_version < 3) {
        error_setg(errp, "Can't resize a v2 image which has snapshots");
        return -ENOTSUP;
    }
    /* qemu 7.2: bitmaps follow the new size unless one is inconsistent */
    ret = qcow2_truncate_bitmaps_check(bs, errp);
    if (ret < 0) {
        return ret;
    }
    uint64_t new_l1 = qcow2_l1_entries_for((uint64_t)offset, s->cluster_bits, s->l2_bits);
    if (offset < old_size) {
        if (!shrink_allowed) {
            error_setg(errp, "Use the --shrink option to perform a shrink operation.");
            return -EINVAL;
        }
        if (prealloc != PREALLOC_OFF) {
            error_setg(errp, "Preallocation can't be used for shrinking an image");
            return -EINVAL;
        }
        ret = shrink(bs, offset, (uint32_t)new_l1, errp);
    } else {
        ret = new_l1 > s->l1_size ? qcow2_grow_l1_table(bs, new_l1, true) : 0;
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to grow the L1 table");
            return ret;
        }
        if (data_file_is_raw(s) && prealloc == PREALLOC_OFF) {
            /* the raw data file must stay readable as the guest disk */
            prealloc = PREALLOC_METADATA;
        }
        if (prealloc != PREALLOC_OFF && offset > old_size) {
            ret = preallocate(bs, old_size, offset, prealloc, errp);
        } else if (has_data_file(s) && exact) {
            ret = bfile_truncate(s->data_file, offset, PREALLOC_OFF, errp);
        }
    }
    if (ret < 0) {
        return ret;
    }
    ret = write_size_field(bs, offset, errp);
    if (ret < 0) {
        return ret;
    }
    bs->total_size = offset;
    s->l1_vm_state_index = (uint32_t)new_l1;
    qcow2_bitmaps_truncate(bs, (uint64_t)offset);
    return 0;
}

int qcow2_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                   bool shrink_allowed, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    int ret = truncate_locked(bs, offset, exact, prealloc, shrink_allowed, errp);
    pthread_mutex_unlock(&s->lock);
    return ret;
}
