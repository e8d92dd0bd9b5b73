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
 *     Every repair write passes the metadata overlap check first
 *     (qcow2-check-meta.c); a hit marks the image corrupt and stops the
 *     repair where qemu's stops, so that the repaired files agree.
 *  4. Image bytes never size an allocation beyond the file: the in-memory
 *     array covers the file's clusters (at most INT_MAX, as QEMU) plus the
 *     last partial cluster; references further out are reported, not
 *     counted.
 *  5. Order of a check, as qemu's: the snapshot table (check mode opens the
 *     image without it), the refcount walk and comparison, OFLAG_COPIED,
 *     then the snapshot table repair.  The rebuild of the refcount
 *     structure is in qcow2-check-rebuild.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2-check.h"

/* ---- counting ---- */

int qcow2_check_inc_refcounts(CheckCtx *c, int64_t offset, int64_t size)
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
            int ret = qcow2_check_rc_resize(c, k + 1);
            if (ret < 0) {
                c->res->check_errors++;
                return ret;
            }
        }
        uint64_t v = qcow2_check_rc_get(c, k);
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
        qcow2_check_rc_set(c, k, v + 1);
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
    int ret = qcow2_check_inc_refcounts(c, (int64_t)coffset, (int64_t)nb);
    count_frag(c, flags, 0, true);
    return ret;
}

/* Rewrite one L2 entry on disk (check repairs); the cache copy is dropped.
 * An overlap with other metadata aborts the walk (-EIO, reported); a
 * failed write is reported and counted, and the walk goes on (1). */
static int write_l2_entry_direct(CheckCtx *c, uint64_t l2_offset, uint32_t i, const uint8_t *l2,
                                 bool active)
{
    BDRVQcow2State *s = c->s;
    size_t esize = 8 * (size_t)s->l2_entry_words;
    int64_t at = (int64_t)(l2_offset + i * esize);
    int ret = qcow2_pre_write_overlap_check(
        c->bs, active ? QCOW2_OL_ACTIVE_L2 : QCOW2_OL_INACTIVE_L2, at, (int64_t)esize);
    if (ret < 0) {
        msg_report("ERROR: Overlap check failed");
        c->res->check_errors++;
        return ret;
    }
    ret = bfile_pwrite(c->bs->file, at, l2 + i * esize, esize);
    if (ret == 0) {
        ret = bfile_flush(c->bs->file);
    }
    qcow2_cache_discard_offset(s->l2_table_cache, l2_offset);
    if (ret < 0) {
        msg_report("ERROR: Failed to overwrite L2 table entry: %s", strerror(-ret));
        c->res->check_errors++;
        return 1;
    }
    return 0;
}

/* Returns 1 when the entry was repaired to a plain zero cluster (not
 * counted), 0 when it is still to be counted, or -errno. */
static int check_unaligned(CheckCtx *c, uint64_t l2_offset, uint8_t *l2, uint32_t i, uint64_t entry,
                           uint64_t bitmap, int fix, bool active)
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
    int ret = write_l2_entry_direct(c, l2_offset, i, l2, active);
    if (ret != 0) {
        return ret < 0 ? ret : 0;
    }
    c->res->corruptions--;
    c->res->corruptions_fixed++;
    return 1;
}

static int check_l2_entry(CheckCtx *c, uint64_t l2_offset, uint8_t *l2, uint32_t i, int flags,
                          int fix, bool active)
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
            int r = check_unaligned(c, l2_offset, l2, i, entry, bitmap, fix, active);
            if (r != 0) {
                return r < 0 ? r : 0;
            }
        }
        count_frag(c, flags, offset, false);
        if (!has_data_file(s)) {
            return qcow2_check_inc_refcounts(c, (int64_t)offset, s->cluster_size);
        }
        return 0;
    }
    case QCOW2_CLUSTER_UNALLOCATED:
        if (bitmap & QCOW_L2_BITMAP_ALL_ALLOC) {
            c->res->corruptions++;
            msg_report("ERROR: Unallocated cluster has non-zero subcluster allocation map");
        }
        return 0;
    default: return 0;
    }
}

static int check_l2(CheckCtx *c, uint64_t l2_offset, int flags, int fix, bool active)
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
        ret = check_l2_entry(c, l2_offset, l2, i, flags, fix, active);
    }
    free(l2);
    return ret;
}

static int check_l1(CheckCtx *c, uint64_t l1_offset, uint32_t l1_size, int flags, int fix,
                    bool active)
{
    if (!l1_size) {
        return 0;
    }
    size_t bytes = (size_t)l1_size * 8;
    int ret = qcow2_check_inc_refcounts(c, (int64_t)l1_offset, (int64_t)bytes);
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
        ret = qcow2_check_inc_refcounts(c, (int64_t)l2_offset, c->s->cluster_size);
        if (ret < 0) {
            break;
        }
        if (offset_into_cluster(c->s, (int64_t)l2_offset)) {
            msg_report("ERROR l2_offset=%" PRIx64 ": Table is not cluster aligned; "
                       "L1 entry corrupted",
                       l2_offset);
            c->res->corruptions++;
        }
        ret = check_l2(c, l2_offset, flags, fix, active);
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
        int ret = check_l1(c, sn->l1_table_offset, sn->l1_size, 0, fix, false);
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
            qcow2_check_error("%s", error_get_pretty(err));
            error_free(err);
        }
    }
    if (ret == 0) {
        int64_t size = bfile_getlength(c->bs->file);
        ret = size < 0 ? (int)size : 0;
        if (ret == 0 && size_to_clusters(s, (uint64_t)size) > c->nb_clusters) {
            ret = qcow2_check_rc_resize(c, size_to_clusters(s, (uint64_t)size));
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
    return qcow2_check_inc_refcounts(c, (int64_t)offset, s->cluster_size);
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
            int ret = qcow2_check_inc_refcounts(c, (int64_t)offset, s->cluster_size);
            if (ret < 0) {
                return ret;
            }
            if (qcow2_check_rc_get(c, cluster) != 1) {
                msg_report("ERROR refcount block %" PRId64 " refcount=%" PRIu64, (int64_t)i,
                           qcow2_check_rc_get(c, cluster));
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
    return qcow2_check_inc_refcounts(opaque, offset, size);
}

int qcow2_check_calculate_refcounts(CheckCtx *c, int fix)
{
    BDRVQcow2State *s = c->s;
    int ret = qcow2_check_inc_refcounts(c, 0, s->cluster_size); /* header */
    if (ret == 0) {
        ret = check_l1(c, s->l1_table_offset, s->l1_size, CHECK_FRAG_INFO, fix, true);
    }
    if (ret == 0) {
        ret = check_snapshot_l1s(c, fix);
    }
    if (ret == 0) {
        ret = qcow2_check_inc_refcounts(c, (int64_t)s->snapshots_offset, s->snapshots_size);
    }
    if (ret == 0) {
        ret = qcow2_check_inc_refcounts(c, (int64_t)s->refcount_table_offset,
                                        (int64_t)s->refcount_table_size * 8);
    }
    if (ret == 0 && s->crypto_header_length) {
        ret = qcow2_check_inc_refcounts(c, (int64_t)s->crypto_header_offset,
                                        (int64_t)s->crypto_header_length);
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
        uint64_t on_disk, expected = qcow2_check_rc_get(c, i);
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
        ret = qcow2_pre_write_overlap_check(c->bs, QCOW2_OL_ACTIVE_L2, (int64_t)l2_offset,
                                            s->cluster_size);
        if (ret < 0) {
            msg_report("ERROR: Could not write L2 table; metadata overlap check failed: %s",
                       strerror(-ret));
            c->res->check_errors++;
            free(l2);
            return ret;
        }
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
                /* the entry is written with its 512-byte neighbourhood */
                int64_t at = (int64_t)(s->l1_table_offset + (i & ~63u) * 8ULL);
                int ret = qcow2_pre_write_overlap_check(c->bs, QCOW2_OL_ACTIVE_L1, at, 512);
                if (ret == 0) {
                    ret = qcow2_write_l1_entry(c->bs, i);
                }
                if (ret < 0) {
                    c->res->check_errors++;
                    return ret;
                }
                c->res->corruptions--;
                c->res->corruptions_fixed++;
            }
        }
        /* an unaligned table was reported by the walk; qemu still reads
         * (and may repair) what is there, and so do we */
        int ret = check_oflag_copied_l2(c, l2_offset, repair);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
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
    memset(c->rc, 0, qcow2_check_rc_bytes(c, c->nb_clusters));
    memset(&res->bfi, 0, sizeof(res->bfi));
    int ret = qcow2_check_calculate_refcounts(c, 0);
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
    int ret = qcow2_check_rc_resize(&c, size_to_clusters(s, (uint64_t)size));
    if (ret < 0) {
        res->check_errors++;
        return ret;
    }
    res->bfi.total_clusters = (uint64_t)size_to_clusters(s, (uint64_t)bs->total_size);
    ret = qcow2_check_calculate_refcounts(&c, fix);
    if (ret < 0) {
        goto out;
    }
    BdrvCheckResult pre_compare = *res;
    compare_refcounts(&c, 0, &highest);
    if (c.rebuild && (fix & BDRV_FIX_ERRORS)) {
        msg_report("Rebuilding refcount structure");
        ret = qcow2_check_rebuild_refcounts(&c);
        if (ret < 0) {
            goto out; /* reported and counted by the rebuild */
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

/* qemu's order: the snapshot table first (check mode opened the image
 * without it), then the refcounts (which count the table), then the table
 * repair, which allocates with the refcounts made right. */
int qcow2_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BdrvCheckResult sn_res = {0}, rc_res = {0};

    memset(res, 0, sizeof(*res));
    int ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        res->check_errors++;
        return ret;
    }
    ret = qcow2_check_read_snapshot_table(bs, &sn_res, fix);
    if (ret < 0) {
        add_result(res, &sn_res);
        return ret;
    }
    ret = check_refcounts(bs, &rc_res, fix);
    add_result(res, &rc_res);
    res->image_end_offset = rc_res.image_end_offset;
    res->bfi = rc_res.bfi;
    if (ret < 0) {
        add_result(res, &sn_res);
        return ret;
    }
    ret = qcow2_check_fix_snapshot_table(bs, &sn_res, fix);
    add_result(res, &sn_res);
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0 && fix && res->check_errors == 0 && res->corruptions == 0) {
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
    if (s->dead) {
        /* qemu drops the driver of an image it marked corrupt */
        return -ENOMEDIUM;
    }
    pthread_mutex_lock(&s->lock);
    int ret = qcow2_check(bs, res, fix);
    pthread_mutex_unlock(&s->lock);
    return ret;
}
