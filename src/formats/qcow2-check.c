/*
 * qcow2-check.c — consistency check and repair of qcow2 images
 * (qemu-img check [-r leaks|all]).
 *
 * Spec: QEMU docs/interop/qcow2.txt ("Host cluster management", "Cluster
 * mapping", "Snapshots"); findings and repairs follow qemu-img 7.2, and are
 * told with msg_report() in its words.
 *
 * Design notes:
 *  1. The check rebuilds the reference counts in memory (an array packed
 *     exactly like an on-disk refcount block of the image's refcount width,
 *     so that a rebuild can write slices of it as refcount blocks) by walking
 *     every structure that uses host clusters: header cluster, active L1
 *     and its L2 tables and data, every snapshot's L1 tree, the snapshot
 *     table, the refcount table and blocks, the crypto header and the
 *     bitmaps.  A cluster's expected refcount is the number of such uses.
 *  2. It then compares that with the on-disk refcounts: on-disk > expected
 *     is a leak (fixable with -r leaks), on-disk < expected a corruption
 *     (fixable with -r all).  An on-disk refcount of 0 for a used cluster,
 *     or broken refcount blocks, cannot be fixed in place: the whole
 *     refcount structure is rebuilt after the existing data (-r all).
 *  3. Tables are read straight from the file after the metadata caches are
 *     flushed; anything we rewrite directly is dropped from the caches.
 *  4. Image bytes never size an allocation beyond the file: the in-memory
 *     array covers the file's clusters (at most INT_MAX, as QEMU) plus the
 *     last partial cluster; references further out are reported, not
 *     counted.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2.h"

#define CHECK_FRAG_INFO 0x2

typedef struct CheckCtx {
    BlockDriverState *bs;
    BDRVQcow2State *s;
    BdrvCheckResult *res;
    uint8_t *rc;             /* in-memory refcounts, packed like a refcount block */
    int64_t nb_clusters;     /* clusters the array covers */
    bool rebuild;            /* the refcount structure must be rebuilt */
    int order;               /* refcount width of rc (the image's, or amend's new one) */
    int block_bits;          /* log2(entries per refcount block) at that width */
    uint64_t max;            /* largest refcount at that width */
    bool amend;              /* amend mode: an overflow is an error, not a finding */
    int64_t overflow_at;     /* amend mode: first cluster that would overflow, or -1 */
    int64_t next_contiguous; /* fragmentation: where the next cluster should be */
} CheckCtx;

/* ---- the in-memory refcount array ---- */

static size_t rc_array_bytes(const CheckCtx *c, int64_t clusters)
{
    /* whole clusters, so that any refblock-sized slice is inside the array */
    const BDRVQcow2State *s = c->s;
    uint64_t bits = (uint64_t)clusters << c->order;
    uint64_t bytes = DIV_ROUND_UP(bits, 8);
    return (size_t)ROUND_UP(bytes, (uint64_t)s->cluster_size);
}

static uint64_t rc_get(const CheckCtx *c, int64_t cluster)
{
    return qcow2_refblock_get(c->rc, c->order, (uint64_t)cluster);
}

static void rc_set(CheckCtx *c, int64_t cluster, uint64_t v)
{
    qcow2_refblock_set(c->rc, c->order, (uint64_t)cluster, v);
}

static int rc_resize(CheckCtx *c, int64_t new_nb)
{
    if (new_nb > INT_MAX) {
        return -EFBIG;
    }
    size_t old_bytes = c->rc ? rc_array_bytes(c, c->nb_clusters) : 0;
    size_t new_bytes = rc_array_bytes(c, new_nb);
    if (new_bytes != old_bytes || !c->rc) {
        c->rc = xrealloc(c->rc, MAX(new_bytes, 1));
        if (new_bytes > old_bytes) {
            memset(c->rc + old_bytes, 0, new_bytes - old_bytes);
        }
    }
    c->nb_clusters = new_nb;
    return 0;
}

/* Count one use of every cluster touched by host range [offset, +size). */
static int inc_refcounts(CheckCtx *c, int64_t offset, int64_t size)
{
    BDRVQcow2State *s = c->s;
    if (size <= 0) {
        return 0;
    }
    int64_t file_len = bfile_getlength(c->bs->file);
    if (file_len < 0) {
        return (int)file_len;
    }
    /* the last cluster may be partly beyond EOF; more than that is an error */
    uint64_t end;
    if (offset < 0 || ADD_OVERFLOW((uint64_t)offset, (uint64_t)size, &end) ||
        end - (uint64_t)MIN(file_len, (int64_t)end) >= s->cluster_size) {
        msg_report("ERROR: counting reference for region exceeding the end of the file by one "
                   "cluster or more: offset 0x%" PRIx64 " size 0x%" PRIx64,
                   (uint64_t)offset, (uint64_t)size);
        c->res->corruptions++;
        return 0;
    }
    int64_t first = offset >> s->cluster_bits, last = (int64_t)((end - 1) >> s->cluster_bits);
    for (int64_t k = first; k <= last; k++) {
        if (k >= c->nb_clusters) {
            int ret = rc_resize(c, k + 1);
            if (ret < 0) {
                c->res->check_errors++;
                return ret;
            }
        }
        uint64_t v = rc_get(c, k);
        if (v == c->max && c->amend) {
            if (c->overflow_at < 0) {
                c->overflow_at = k;
            }
            continue;
        }
        if (v == c->max) {
            msg_report("ERROR: overflow cluster offset=0x%" PRIx64, (uint64_t)k << s->cluster_bits);
            msg_report("Use qemu-img amend to increase the refcount entry width or qemu-img "
                       "convert to create a clean copy if the image cannot be opened for writing");
            c->res->corruptions++;
            continue;
        }
        rc_set(c, k, v + 1);
    }
    return 0;
}

/* ---- walking the cluster mapping ---- */

static void count_frag(CheckCtx *c, int flags, uint64_t offset, bool compressed)
{
    if (!(flags & CHECK_FRAG_INFO)) {
        return;
    }
    c->res->bfi.allocated_clusters++;
    if (compressed) {
        /* compressed clusters are fragmented by nature */
        c->res->bfi.compressed_clusters++;
        c->res->bfi.fragmented_clusters++;
        return;
    }
    if (c->next_contiguous && (int64_t)offset != c->next_contiguous) {
        c->res->bfi.fragmented_clusters++;
    }
    c->next_contiguous = (int64_t)offset + c->s->cluster_size;
}

static int check_compressed(CheckCtx *c, uint64_t *entry, uint64_t bitmap, uint32_t i, int flags)
{
    BDRVQcow2State *s = c->s;
    if (*entry & QCOW_OFLAG_COPIED) {
        msg_report("ERROR: coffset=0x%" PRIx64
                   ": copied flag must never be set for compressed clusters",
                   *entry & s->cluster_offset_mask);
        *entry &= ~QCOW_OFLAG_COPIED;
        c->res->corruptions++;
    }
    if (has_data_file(s)) {
        msg_report("ERROR compressed cluster %d with data file, entry=0x%" PRIx64, (int)i, *entry);
        c->res->corruptions++;
        return 0;
    }
    if (bitmap) {
        msg_report("ERROR compressed cluster %d with non-zero subcluster allocation bitmap, "
                   "entry=0x%" PRIx64,
                   (int)i, *entry);
        c->res->corruptions++;
        return 0;
    }
    uint64_t coffset, nb;
    qcow2_compressed_desc_decode(s->cluster_bits, *entry, &coffset, &nb);
    int ret = inc_refcounts(c, (int64_t)coffset, (int64_t)nb);
    count_frag(c, flags, 0, true);
    return ret;
}

/* Rewrite one L2 entry on disk (check repairs); the cache copy is dropped. */
static int write_l2_entry_direct(CheckCtx *c, uint64_t l2_offset, uint32_t i, const uint8_t *l2)
{
    BDRVQcow2State *s = c->s;
    size_t esize = 8 * (size_t)s->l2_entry_words;
    int ret = bfile_pwrite(c->bs->file, (int64_t)(l2_offset + i * esize), l2 + i * esize, esize);
    if (ret == 0) {
        ret = bfile_flush(c->bs->file);
    }
    qcow2_cache_discard_offset(s->l2_table_cache, l2_offset);
    return ret;
}

/* Returns 1 when the entry was repaired to a plain zero cluster (not counted). */
static int check_unaligned(CheckCtx *c, uint64_t l2_offset, uint8_t *l2, uint32_t i, uint64_t entry,
                           uint64_t bitmap, int fix)
{
    BDRVQcow2State *s = c->s;
    uint64_t offset = entry & L2E_OFFSET_MASK;
    bool has_data =
        s->extended_l2 ? (bitmap & QCOW_L2_BITMAP_ALL_ALLOC) != 0 : !(entry & QCOW_OFLAG_ZERO);
    c->res->corruptions++;
    if (has_data) {
        msg_report("ERROR offset=%" PRIx64 ": Data cluster is not properly aligned; "
                   "L2 entry corrupted.",
                   offset);
        return 0;
    }
    msg_report("%s offset=%" PRIx64 ": Preallocated cluster is not properly aligned; "
               "L2 entry corrupted.",
               fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR", offset);
    if (!(fix & BDRV_FIX_ERRORS)) {
        return 0;
    }
    set_l2_entry(s, l2, i, s->extended_l2 ? 0 : QCOW_OFLAG_ZERO);
    int ret = write_l2_entry_direct(c, l2_offset, i, l2);
    if (ret < 0) {
        msg_report("ERROR: Failed to overwrite L2 table entry: %s", strerror(-ret));
        c->res->check_errors++;
        return ret;
    }
    c->res->corruptions--;
    c->res->corruptions_fixed++;
    return 1;
}

static int check_l2_entry(CheckCtx *c, uint64_t l2_offset, uint8_t *l2, uint32_t i, int flags,
                          int fix)
{
    BDRVQcow2State *s = c->s;
    uint64_t entry = get_l2_entry(s, l2, i);
    uint64_t bitmap = get_l2_bitmap(s, l2, i);
    Qcow2ClusterType type = qcow2_get_cluster_type(s, entry);

    if (type != QCOW2_CLUSTER_COMPRESSED && (entry & L2E_STD_RESERVED_MASK)) {
        msg_report("ERROR found l2 entry with reserved bits set: %" PRIx64, entry);
        c->res->corruptions++;
    }
    switch (type) {
    case QCOW2_CLUSTER_COMPRESSED: return check_compressed(c, &entry, bitmap, i, flags);
    case QCOW2_CLUSTER_ZERO_ALLOC:
    case QCOW2_CLUSTER_NORMAL: {
        uint64_t offset = entry & L2E_OFFSET_MASK;
        if ((bitmap >> 32) & bitmap) {
            c->res->corruptions++;
            msg_report("ERROR offset=%" PRIx64
                       ": Allocated cluster has corrupted subcluster allocation bitmap",
                       offset);
        }
        if (offset_into_cluster(s, (int64_t)offset)) {
            int r = check_unaligned(c, l2_offset, l2, i, entry, bitmap, fix);
            if (r != 0) {
                return r < 0 ? r : 0;
            }
        }
        count_frag(c, flags, offset, false);
        if (!has_data_file(s)) {
            return inc_refcounts(c, (int64_t)offset, s->cluster_size);
        }
        return 0;
    }
    case QCOW2_CLUSTER_UNALLOCATED:
        if (bitmap & QCOW_L2_BITMAP_ALL_ALLOC) {
            c->res->corruptions++;
            msg_report("ERROR: Unallocated cluster has non-zero subcluster allocation bitmap");
        }
        return 0;
    default: return 0;
    }
}

static int check_l2(CheckCtx *c, uint64_t l2_offset, int flags, int fix)
{
    BDRVQcow2State *s = c->s;
    uint8_t *l2 = xmalloc(s->cluster_size);
    int ret = bfile_pread(c->bs->file, (int64_t)l2_offset, l2, s->cluster_size);
    if (ret < 0) {
        msg_report("ERROR: I/O error in check_refcounts_l2");
        c->res->check_errors++;
        free(l2);
        return ret;
    }
    c->next_contiguous = 0; /* as QEMU, contiguity is judged within one table */
    for (uint32_t i = 0; i < s->l2_size && ret == 0; i++) {
        ret = check_l2_entry(c, l2_offset, l2, i, flags, fix);
    }
    free(l2);
    return ret;
}

static int check_l1(CheckCtx *c, uint64_t l1_offset, uint32_t l1_size, int flags, int fix)
{
    if (!l1_size) {
        return 0;
    }
    size_t bytes = (size_t)l1_size * 8;
    int ret = inc_refcounts(c, (int64_t)l1_offset, (int64_t)bytes);
    if (ret < 0) {
        return ret;
    }
    uint64_t *l1 = xmalloc(bytes);
    ret = bfile_pread(c->bs->file, (int64_t)l1_offset, l1, bytes);
    if (ret < 0) {
        msg_report("ERROR: I/O error in check_refcounts_l1");
        c->res->check_errors++;
        free(l1);
        return ret;
    }
    for (uint32_t i = 0; i < l1_size && ret == 0; i++) {
        uint64_t e = ld64_be(&l1[i]);
        if (!e) {
            continue;
        }
        if (e & L1E_RESERVED_MASK) {
            msg_report("ERROR found L1 entry with reserved bits set: %" PRIx64, e);
            c->res->corruptions++;
        }
        uint64_t l2_offset = e & L1E_OFFSET_MASK;
        ret = inc_refcounts(c, (int64_t)l2_offset, c->s->cluster_size);
        if (ret < 0) {
            break;
        }
        if (offset_into_cluster(c->s, (int64_t)l2_offset)) {
            msg_report("ERROR l2_offset=%" PRIx64 ": Table is not cluster aligned; "
                       "L1 entry corrupted",
                       l2_offset);
            c->res->corruptions++;
        }
        ret = check_l2(c, l2_offset, flags, fix);
    }
    free(l1);
    return ret;
}

static int check_snapshot_l1s(CheckCtx *c, int fix)
{
    BDRVQcow2State *s = c->s;
    if (has_data_file(s) && s->nb_snapshots) {
        msg_report("ERROR %d snapshots in image with data file", (int)s->nb_snapshots);
        c->res->corruptions++;
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const QCowSnapshot *sn = &s->snapshots[i];
        if (offset_into_cluster(s, (int64_t)sn->l1_table_offset)) {
            msg_report("ERROR snapshot %s (%s) l1_offset=%#" PRIx64 ": L1 table is not cluster "
                       "aligned; snapshot table entry corrupted",
                       sn->id_str, sn->name, sn->l1_table_offset);
            c->res->corruptions++;
            continue;
        }
        if (sn->l1_size > QCOW2_MAX_L1_SIZE / 8) {
            msg_report("ERROR snapshot %s (%s) l1_size=%#" PRIx32 ": L1 table is too large; "
                       "snapshot table entry corrupted",
                       sn->id_str, sn->name, sn->l1_size);
            c->res->corruptions++;
            continue;
        }
        int ret = check_l1(c, sn->l1_table_offset, sn->l1_size, 0, fix);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/* ---- refcount structure ---- */

/* Grow the file so that refcount block i (outside it) is inside (-r all). */
static int repair_refblock_outside(CheckCtx *c, uint64_t offset)
{
    BDRVQcow2State *s = c->s;
    int ret = -EINVAL;
    if (offset <= (uint64_t)INT64_MAX - s->cluster_size) {
        Error *err = NULL;
        ret = bfile_truncate(c->bs->file, (int64_t)(offset + s->cluster_size), PREALLOC_OFF, &err);
        if (ret < 0) {
            msg_report("%s", error_get_pretty(err));
            error_free(err);
        }
    }
    if (ret == 0) {
        int64_t size = bfile_getlength(c->bs->file);
        ret = size < 0 ? (int)size : 0;
        if (ret == 0 && size_to_clusters(s, (uint64_t)size) > c->nb_clusters) {
            ret = rc_resize(c, size_to_clusters(s, (uint64_t)size));
            if (ret < 0) {
                c->res->check_errors++;
                return ret;
            }
        }
        if (ret == 0 && (int64_t)(offset >> s->cluster_bits) >= c->nb_clusters) {
            ret = -EINVAL;
        }
    }
    if (ret < 0) {
        c->rebuild = true;
        msg_report("ERROR could not resize image: %s", strerror(-ret));
        return 0;
    }
    c->res->corruptions--;
    c->res->corruptions_fixed++;
    return inc_refcounts(c, (int64_t)offset, s->cluster_size);
}

static int check_refblocks(CheckCtx *c, int fix)
{
    BDRVQcow2State *s = c->s;
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t entry = s->refcount_table[i];
        uint64_t offset = entry & REFT_OFFSET_MASK;
        int64_t cluster = (int64_t)(offset >> s->cluster_bits);
        if (entry & ~REFT_OFFSET_MASK) {
            msg_report("ERROR refcount table entry %" PRId64 " has reserved bits set", (int64_t)i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (offset_into_cluster(s, (int64_t)offset)) {
            msg_report("ERROR refcount block %" PRId64 " is not cluster aligned; refcount table "
                       "entry corrupted",
                       (int64_t)i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (cluster >= c->nb_clusters) {
            c->res->corruptions++;
            msg_report("%s refcount block %" PRId64 " is outside image",
                       fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR", (int64_t)i);
            if (fix & BDRV_FIX_ERRORS) {
                int ret = repair_refblock_outside(c, offset);
                if (ret < 0) {
                    return ret;
                }
            }
            continue;
        }
        if (offset != 0) {
            int ret = inc_refcounts(c, (int64_t)offset, s->cluster_size);
            if (ret < 0) {
                return ret;
            }
            if (rc_get(c, cluster) != 1) {
                msg_report("ERROR refcount block %" PRId64 " refcount=%" PRIu64, (int64_t)i,
                           rc_get(c, cluster));
                c->res->corruptions++;
                c->rebuild = true;
            }
        }
    }
    return 0;
}

/* Lets qcow2-bitmap.c count its clusters without seeing CheckCtx. */
static int count_cb(void *opaque, int64_t offset, int64_t size)
{
    return inc_refcounts(opaque, offset, size);
}

static int calculate_refcounts(CheckCtx *c, int fix)
{
    BDRVQcow2State *s = c->s;
    int ret = inc_refcounts(c, 0, s->cluster_size); /* header */
    if (ret == 0) {
        ret = check_l1(c, s->l1_table_offset, s->l1_size, CHECK_FRAG_INFO, fix);
    }
    if (ret == 0) {
        ret = check_snapshot_l1s(c, fix);
    }
    if (ret == 0) {
        ret = inc_refcounts(c, (int64_t)s->snapshots_offset, s->snapshots_size);
    }
    if (ret == 0) {
        ret = inc_refcounts(c, (int64_t)s->refcount_table_offset,
                            (int64_t)s->refcount_table_size * 8);
    }
    if (ret == 0 && s->crypto_header_length) {
        ret = inc_refcounts(c, (int64_t)s->crypto_header_offset, (int64_t)s->crypto_header_length);
    }
    if (ret == 0) {
        ret = qcow2_check_bitmaps_refcounts(c->bs, c->res, count_cb, c);
    }
    if (ret == 0) {
        ret = check_refblocks(c, fix);
    }
    return ret;
}

static void compare_refcounts(CheckCtx *c, int fix, int64_t *highest)
{
    BDRVQcow2State *s = c->s;
    *highest = 0;
    for (int64_t i = 0; i < c->nb_clusters; i++) {
        uint64_t on_disk, expected = rc_get(c, i);
        int ret = qcow2_get_refcount(c->bs, i, &on_disk);
        if (ret < 0) {
            msg_report("Can't get refcount for cluster %" PRId64 ": %s", i, strerror(-ret));
            c->res->check_errors++;
            continue;
        }
        if (on_disk > 0 || expected > 0) {
            *highest = i;
        }
        if (on_disk == expected) {
            continue;
        }
        int *num_fixed = NULL;
        if (on_disk == 0) {
            c->rebuild = true;
        } else if (on_disk > expected && (fix & BDRV_FIX_LEAKS)) {
            num_fixed = &c->res->leaks_fixed;
        } else if (on_disk < expected && (fix & BDRV_FIX_ERRORS)) {
            num_fixed = &c->res->corruptions_fixed;
        }
        msg_report("%s cluster %" PRId64 " refcount=%" PRIu64 " reference=%" PRIu64,
                   num_fixed            ? "Repairing"
                   : on_disk < expected ? "ERROR"
                                        : "Leaked",
                   i, on_disk, expected);
        if (num_fixed) {
            ret = qcow2_update_refcount(c->bs, i << s->cluster_bits, 1,
                                        (int64_t)(expected - on_disk), QCOW2_DISCARD_ALWAYS);
            if (ret >= 0) {
                (*num_fixed)++;
                continue;
            }
        }
        if (on_disk < expected) {
            c->res->corruptions++;
        } else {
            c->res->leaks++;
        }
    }
}

/* ---- OFLAG_COPIED ---- */

static uint64_t copied_fixed(uint64_t entry, uint64_t refcount)
{
    return refcount == 1 ? entry | QCOW_OFLAG_COPIED : entry & ~QCOW_OFLAG_COPIED;
}

/* Check the COPIED flags of one active L2 table; returns entries repaired or -errno. */
static int check_oflag_copied_l2(CheckCtx *c, uint64_t l2_offset, bool repair)
{
    BDRVQcow2State *s = c->s;
    uint8_t *l2 = xmalloc(s->cluster_size);
    int dirty = 0;
    int ret = bfile_pread(c->bs->file, (int64_t)l2_offset, l2, s->cluster_size);
    if (ret < 0) {
        msg_report("ERROR: Could not read L2 table: %s", strerror(-ret));
        c->res->check_errors++;
        free(l2);
        return ret;
    }
    for (uint32_t j = 0; j < s->l2_size; j++) {
        uint64_t entry = get_l2_entry(s, l2, j), refcount = 1;
        Qcow2ClusterType type = qcow2_get_cluster_type(s, entry);
        if (type != QCOW2_CLUSTER_NORMAL && type != QCOW2_CLUSTER_ZERO_ALLOC) {
            continue;
        }
        if (!has_data_file(s) &&
            qcow2_get_refcount(c->bs, (int64_t)((entry & L2E_OFFSET_MASK) >> s->cluster_bits),
                               &refcount) < 0) {
            continue; /* as QEMU: neither reported nor counted */
        }
        if ((refcount == 1) != ((entry & QCOW_OFLAG_COPIED) != 0)) {
            c->res->corruptions++;
            msg_report("%s OFLAG_COPIED data cluster: l2_entry=%" PRIx64 " refcount=%" PRIu64,
                       repair ? "Repairing" : "ERROR", entry, refcount);
            if (repair) {
                set_l2_entry(s, l2, j, copied_fixed(entry, refcount));
                dirty++;
            }
        }
    }
    if (dirty) {
        ret = bfile_pwrite(c->bs->file, (int64_t)l2_offset, l2, s->cluster_size);
        if (ret == 0) {
            ret = bfile_flush(c->bs->file);
        }
        qcow2_cache_discard_offset(s->l2_table_cache, l2_offset);
        if (ret < 0) {
            msg_report("ERROR: Could not write L2 table: %s", strerror(-ret));
            c->res->check_errors++;
            free(l2);
            return ret;
        }
        c->res->corruptions -= dirty;
        c->res->corruptions_fixed += dirty;
    }
    free(l2);
    return 0;
}

static int check_oflag_copied(CheckCtx *c, int fix)
{
    BDRVQcow2State *s = c->s;
    bool repair;
    if (fix & BDRV_FIX_ERRORS) {
        repair = true;
    } else if (fix & BDRV_FIX_LEAKS) {
        /* only safe when the refcounts were found (or made) right */
        repair = !c->res->check_errors && !c->res->corruptions && !c->res->leaks;
    } else {
        repair = false;
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l1e = s->l1_table[i], l2_offset = l1e & L1E_OFFSET_MASK, refcount;
        if (!l2_offset) {
            continue;
        }
        if (qcow2_get_refcount(c->bs, (int64_t)(l2_offset >> s->cluster_bits), &refcount) < 0) {
            continue;
        }
        if ((refcount == 1) != ((l1e & QCOW_OFLAG_COPIED) != 0)) {
            c->res->corruptions++;
            msg_report("%s OFLAG_COPIED L2 cluster: l1_index=%d l1_entry=%" PRIx64
                       " refcount=%" PRIu64,
                       repair ? "Repairing" : "ERROR", (int)i, l1e, refcount);
            if (repair) {
                s->l1_table[i] = copied_fixed(l1e, refcount);
                int ret = qcow2_write_l1_entry(c->bs, i);
                if (ret < 0) {
                    c->res->check_errors++;
                    return ret;
                }
                c->res->corruptions--;
                c->res->corruptions_fixed++;
            }
        }
        if (offset_into_cluster(s, (int64_t)l2_offset)) {
            continue; /* reported by the L1 walk */
        }
        int ret = check_oflag_copied_l2(c, l2_offset, repair);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/* ---- rebuilding the refcount structure (-r all) ---- */

/* Take `count` free clusters in the in-memory array (growing it past the
 * end when needed), searching from *first_free; returns the host offset. */
static int64_t alloc_clusters_imrt(CheckCtx *c, int64_t count, int64_t *first_free)
{
    int64_t cluster = *first_free, contiguous = 0;
    bool first_gap = true;
    for (; cluster < c->nb_clusters && contiguous < count; cluster++) {
        if (!rc_get(c, cluster)) {
            contiguous++;
            if (first_gap) {
                *first_free = cluster;
                first_gap = false;
            }
        } else {
            contiguous = 0;
        }
    }
    if (contiguous < count) {
        int ret = rc_resize(c, cluster + count - contiguous);
        if (ret < 0) {
            return ret;
        }
    }
    cluster -= contiguous;
    for (int64_t i = 0; i < count; i++) {
        rc_set(c, cluster + i, 1);
    }
    return cluster << c->s->cluster_bits;
}

typedef struct NewReftable {
    uint64_t *entries; /* host order */
    uint32_t n;
} NewReftable;

/*
 * Write a refcount block for every block-sized group of clusters in
 * [first, end) that has a used cluster, allocating blocks as needed.
 * Returns 1 if the table had to grow, 0 if not, or -errno.
 */
static int write_refblocks(CheckCtx *c, int64_t first, int64_t end, NewReftable *rt)
{
    BDRVQcow2State *s = c->s;
    int64_t first_free = 0;
    int grown = 0;
    for (int64_t cluster = first; cluster < end; cluster++) {
        if (!rc_get(c, cluster)) {
            continue;
        }
        uint64_t idx = (uint64_t)cluster >> c->block_bits;
        int64_t block_start = (int64_t)(idx << c->block_bits);
        if (idx >= rt->n || !rt->entries[idx]) {
            first_free = MAX(first_free, block_start);
            int64_t off = alloc_clusters_imrt(c, 1, &first_free);
            if (off < 0) {
                msg_report("ERROR allocating refblock: %s", strerror((int)-off));
                return (int)off;
            }
            end = MAX(end, (off >> s->cluster_bits) + 1);
            if (idx >= rt->n) {
                uint64_t bytes = ROUND_UP((idx + 1) * 8, (uint64_t)s->cluster_size);
                if (bytes > QCOW2_MAX_REFTABLE_SIZE) {
                    msg_report("ERROR refcount table would be too large");
                    return -EFBIG;
                }
                rt->entries = xrealloc(rt->entries, bytes);
                memset(rt->entries + rt->n, 0, bytes - (size_t)rt->n * 8);
                rt->n = (uint32_t)(bytes / 8);
                grown = 1;
            }
            rt->entries[idx] = (uint64_t)off;
        }
        /* the block is the matching slice of the in-memory array */
        const uint8_t *slice = c->rc + idx * s->cluster_size;
        int ret = bfile_pwrite(c->bs->file, (int64_t)rt->entries[idx], slice, s->cluster_size);
        if (ret < 0) {
            msg_report("ERROR writing refblock: %s", strerror(-ret));
            return ret;
        }
        cluster = block_start + ((int64_t)1 << c->block_bits) - 1;
    }
    return grown;
}

static int install_reftable(CheckCtx *c, NewReftable *rt, int64_t offset, uint32_t clusters)
{
    BDRVQcow2State *s = c->s;
    size_t bytes = (size_t)rt->n * 8;
    uint64_t *be = xmalloc(MAX(bytes, 8));
    for (uint32_t i = 0; i < rt->n; i++) {
        st64_be(&be[i], rt->entries[i]);
    }
    int ret = bfile_pwrite(c->bs->file, offset, be, bytes);
    free(be);
    if (ret == 0) {
        ret = bfile_flush(c->bs->file);
    }
    if (ret == 0) {
        ret = qcow2_write_reftable_header(c->bs, (uint64_t)offset, clusters);
    }
    if (ret < 0) {
        msg_report("ERROR writing reftable: %s", strerror(-ret));
        return ret;
    }
    free(s->refcount_table);
    s->refcount_table = rt->entries;
    s->refcount_table_size = rt->n;
    s->refcount_table_offset = (uint64_t)offset;
    s->max_refcount_table_index = 0;
    for (uint32_t i = 0; i < rt->n; i++) {
        if (rt->entries[i]) {
            s->max_refcount_table_index = i + 1;
        }
    }
    s->free_cluster_index = 0;
    rt->entries = NULL;
    return 0;
}

/* Write refcount blocks for everything counted in c->rc and a table for
 * them after the used clusters; rt_offset and rt_clusters locate the table. */
static int build_refcount_structure(CheckCtx *c, NewReftable *rt, int64_t *rt_offset,
                                    uint32_t *rt_clusters)
{
    BDRVQcow2State *s = c->s;
    int64_t offset = -1;
    uint32_t clusters = 0;

    int ret = qcow2_cache_empty(c->bs, s->refcount_block_cache);
    if (ret == 0) {
        ret = write_refblocks(c, 0, c->nb_clusters, rt);
    }
    /* placing the table may need new blocks, which may grow the table... */
    while (ret > 0) {
        int64_t first_free = 0;
        clusters = (uint32_t)size_to_clusters(s, (uint64_t)rt->n * 8);
        offset = alloc_clusters_imrt(c, clusters, &first_free);
        if (offset < 0) {
            msg_report("ERROR allocating reftable: %s", strerror((int)-offset));
            ret = (int)offset;
            break;
        }
        int64_t start = offset >> s->cluster_bits;
        ret = write_refblocks(c, start, start + clusters, rt);
    }
    if (ret == 0 && offset < 0) {
        ret = -EIO; /* an image always has used clusters: cannot happen */
    }
    *rt_offset = offset;
    *rt_clusters = clusters;
    return ret;
}

static int rebuild_refcount_structure(CheckCtx *c)
{
    NewReftable rt = {NULL, 0};
    int64_t offset;
    uint32_t clusters;
    int ret = build_refcount_structure(c, &rt, &offset, &clusters);
    if (ret == 0) {
        ret = install_reftable(c, &rt, offset, clusters);
    }
    free(rt.entries);
    return ret;
}

/* ---- amend: a new refcount width ---- */

/* Switch s to the new structure and point the header at it. */
static int switch_refcount_structure(CheckCtx *c, NewReftable *rt, int64_t offset, Error **errp)
{
    BDRVQcow2State *s = c->s;
    size_t bytes = (size_t)rt->n * 8;
    uint64_t *be = xmalloc(MAX(bytes, 8));
    for (uint32_t i = 0; i < rt->n; i++) {
        st64_be(&be[i], rt->entries[i]);
    }
    int ret = bfile_pwrite(c->bs->file, offset, be, bytes);
    free(be);
    if (ret == 0) {
        ret = bfile_flush(c->bs->file);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write the new reftable");
        return ret;
    }
    BDRVQcow2State old = *s;
    s->refcount_order = c->order;
    s->refcount_bits = 1 << c->order;
    s->refcount_max = c->max;
    s->refcount_block_bits = c->block_bits;
    s->refcount_block_size = 1u << c->block_bits;
    s->refcount_table = rt->entries;
    s->refcount_table_size = rt->n;
    s->refcount_table_offset = (uint64_t)offset;
    s->free_cluster_index = 0;
    s->max_refcount_table_index = 0;
    for (uint32_t i = 0; i < rt->n; i++) {
        if (rt->entries[i]) {
            s->max_refcount_table_index = i + 1;
        }
    }
    ret = qcow2_update_header(c->bs);
    if (ret < 0) {
        *s = old;
        error_setg_errno(errp, -ret, "Failed to update the image header");
        return ret;
    }
    rt->entries = NULL;
    /* the old structure is now unused; the new one still counts it */
    for (uint32_t i = 0; i < old.refcount_table_size; i++) {
        uint64_t off = old.refcount_table[i] & REFT_OFFSET_MASK;
        if (off && !offset_into_cluster(s, (int64_t)off)) {
            qcow2_update_refcount(c->bs, (int64_t)off, s->cluster_size, -1, QCOW2_DISCARD_OTHER);
        }
    }
    qcow2_update_refcount(c->bs, (int64_t)old.refcount_table_offset,
                          (int64_t)old.refcount_table_size * 8, -1, QCOW2_DISCARD_OTHER);
    free(old.refcount_table);
    return qcow2_flush_caches(c->bs);
}

int qcow2_change_refcount_order(BlockDriverState *bs, int new_order, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    BdrvCheckResult res = {0};
    CheckCtx c = {.bs = bs,
                  .s = s,
                  .res = &res,
                  .order = new_order,
                  .block_bits = s->cluster_bits + 3 - new_order,
                  .max = new_order == 6 ? UINT64_MAX : (1ULL << (1 << new_order)) - 1,
                  .amend = true,
                  .overflow_at = -1};
    NewReftable rt = {NULL, 0};
    int64_t offset;
    uint32_t clusters;

    int ret = qcow2_flush_caches(bs);
    int64_t size = ret < 0 ? ret : bfile_getlength(bs->file);
    ret = size < 0 ? (int)size : rc_resize(&c, size_to_clusters(s, (uint64_t)size));
    if (ret == 0) {
        ret = calculate_refcounts(&c, 0);
    }
    if (ret == 0 && (res.corruptions || res.check_errors)) {
        ret = -EIO;
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to count the references of the image");
        goto out;
    }
    if (c.overflow_at >= 0) {
        uint64_t rc = 0;
        qcow2_get_refcount(bs, c.overflow_at, &rc);
        error_setg(errp,
                   "Cannot decrease refcount entry width to %i bits: Cluster at offset %#" PRIx64
                   " has a refcount of %" PRIu64,
                   1 << new_order, (uint64_t)c.overflow_at << s->cluster_bits, rc);
        ret = -EINVAL;
        goto out;
    }
    ret = build_refcount_structure(&c, &rt, &offset, &clusters);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write the new refcount structure");
        goto out;
    }
    ret = switch_refcount_structure(&c, &rt, offset, errp);
out:
    free(rt.entries);
    free(c.rc);
    return ret;
}

/* ---- top level ---- */

static void add_result(BdrvCheckResult *out, const BdrvCheckResult *in)
{
    out->corruptions += in->corruptions;
    out->leaks += in->leaks;
    out->check_errors += in->check_errors;
    out->corruptions_fixed += in->corruptions_fixed;
    out->leaks_fixed += in->leaks_fixed;
}

/* After a rebuild: recount against the new structure and drop (as leaks)
 * what the old structure left behind. */
static int recheck_after_rebuild(CheckCtx *c, int fix, int64_t *highest)
{
    BdrvCheckResult *res = c->res;
    BdrvCheckResult old = *res;
    int fresh_leaks = 0;

    res->corruptions = 0;
    res->leaks = 0;
    c->rebuild = false;
    memset(c->rc, 0, rc_array_bytes(c, c->nb_clusters));
    memset(&res->bfi, 0, sizeof(res->bfi));
    int ret = calculate_refcounts(c, 0);
    if (ret < 0) {
        return ret;
    }
    if (fix & BDRV_FIX_LEAKS) {
        BdrvCheckResult scratch = {0};
        c->res = &scratch;
        compare_refcounts(c, BDRV_FIX_LEAKS, highest);
        c->res = res;
        if (c->rebuild) {
            msg_report("ERROR rebuilt refcount structure is still broken");
        }
        /* leaks left now were made by the rebuild itself */
        fresh_leaks = scratch.leaks;
    }
    if (res->corruptions < old.corruptions) {
        res->corruptions_fixed += old.corruptions - res->corruptions;
    }
    if (res->leaks < old.leaks) {
        res->leaks_fixed += old.leaks - res->leaks;
    }
    res->leaks += fresh_leaks;
    return 0;
}

static int check_refcounts(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVQcow2State *s = qcow2_state(bs);
    CheckCtx c = {.bs = bs,
                  .s = s,
                  .res = res,
                  .order = s->refcount_order,
                  .block_bits = s->refcount_block_bits,
                  .max = s->refcount_max,
                  .overflow_at = -1};
    int64_t highest = 0;

    int64_t size = bfile_getlength(bs->file);
    if (size < 0) {
        res->check_errors++;
        return (int)size;
    }
    int ret = rc_resize(&c, size_to_clusters(s, (uint64_t)size));
    if (ret < 0) {
        res->check_errors++;
        return ret;
    }
    res->bfi.total_clusters = (uint64_t)size_to_clusters(s, (uint64_t)bs->total_size);
    ret = calculate_refcounts(&c, fix);
    if (ret < 0) {
        goto out;
    }
    BdrvCheckResult pre_compare = *res;
    compare_refcounts(&c, 0, &highest);
    if (c.rebuild && (fix & BDRV_FIX_ERRORS)) {
        msg_report("Rebuilding refcount structure");
        ret = rebuild_refcount_structure(&c);
        if (ret < 0) {
            res->check_errors++;
            goto out;
        }
        ret = recheck_after_rebuild(&c, fix, &highest);
        if (ret < 0) {
            goto out;
        }
    } else if (fix) {
        if (c.rebuild) {
            msg_report("ERROR need to rebuild refcount structures");
            res->check_errors++;
            ret = -EIO;
            goto out;
        }
        if (res->leaks || res->corruptions) {
            *res = pre_compare;
            compare_refcounts(&c, fix, &highest);
        }
    }
    ret = check_oflag_copied(&c, fix);
    if (ret == 0) {
        res->image_end_offset = (highest + 1) * (int64_t)s->cluster_size;
    }
out:
    free(c.rc);
    return ret;
}

/*
 * Snapshot table findings that the refcount walk cannot see: version 3
 * requires the disk size in every entry's extra data.
 */
static int check_snapshot_table(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int incomplete = 0;
    if (s->qcow_version < 3) {
        return 0;
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if (s->snapshots[i].extra_data_size < 16) {
            res->corruptions++;
            incomplete++;
            msg_report("%s snapshot table entry %u is incomplete",
                       fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR", i);
        }
    }
    if (incomplete && (fix & BDRV_FIX_ERRORS)) {
        /* rewriting the table stores the full extra data of every entry */
        int ret = qcow2_write_snapshots(bs);
        if (ret < 0) {
            res->check_errors++;
            msg_report("ERROR failed to update snapshot table: %s", strerror(-ret));
            return ret;
        }
        for (uint32_t i = 0; i < s->nb_snapshots; i++) {
            s->snapshots[i].extra_data_size = MAX(s->snapshots[i].extra_data_size, 24u);
        }
        res->corruptions -= incomplete;
        res->corruptions_fixed += incomplete;
    }
    return 0;
}

int qcow2_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BdrvCheckResult sn_res = {0}, rc_res = {0};

    memset(res, 0, sizeof(*res));
    int ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        res->check_errors++;
        return ret;
    }
    ret = check_refcounts(bs, &rc_res, fix);
    add_result(res, &rc_res);
    res->image_end_offset = rc_res.image_end_offset;
    res->bfi = rc_res.bfi;
    if (ret < 0) {
        return ret;
    }
    ret = check_snapshot_table(bs, &sn_res, fix);
    add_result(res, &sn_res);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    if (fix && res->check_errors == 0 && res->corruptions == 0) {
        ret = qcow2_mark_clean(bs);
        if (ret == 0) {
            ret = qcow2_mark_consistent(bs);
        }
    }
    return ret;
}

int qcow2_check_slot(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    int ret = qcow2_check(bs, res, fix);
    pthread_mutex_unlock(&s->lock);
    return ret;
}
