/*
 * qcow2-check-rebuild.c — the in-memory refcount array of qcow2 check, and
 * what is built from it: a whole new refcount structure when check -r all
 * finds the old one unusable, and a structure of another refcount width
 * for `qemu-img amend -o refcount_bits=N`.
 *
 * Spec: QEMU docs/interop/qcow2.txt ("Host cluster management").  The
 * rebuild places blocks and table as qemu-img 7.2 does (first free
 * clusters of the in-memory array, a refblock never placed inside a group
 * already written), so that the rebuilt image qemu-img checks is the same.
 *
 * Design notes:
 *  1. The array is packed exactly like refcount blocks of the target width,
 *     so a refblock is written as a slice of it, never assembled.
 *  2. Placing the table can need new refblocks, which can grow the table:
 *     placement repeats until the table stops growing (it converges, as
 *     every table cluster describes many clusters).
 *  3. Every write goes through the metadata overlap check first (the old
 *     structure is still what the image points to): a rebuild that would
 *     overwrite live metadata stops with the image marked corrupt, as
 *     qemu's does.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2-check.h"

/* ---- the in-memory refcount array ---- */

size_t qcow2_check_rc_bytes(const CheckCtx *c, int64_t clusters)
{
    /* whole clusters, so that any refblock-sized slice is inside the array */
    const BDRVQcow2State *s = c->s;
    uint64_t bits = (uint64_t)clusters << c->order;
    uint64_t bytes = DIV_ROUND_UP(bits, 8);
    return (size_t)ROUND_UP(bytes, (uint64_t)s->cluster_size);
}

uint64_t qcow2_check_rc_get(const CheckCtx *c, int64_t cluster)
{
    return qcow2_refblock_get(c->rc, c->order, (uint64_t)cluster);
}

void qcow2_check_rc_set(CheckCtx *c, int64_t cluster, uint64_t v)
{
    qcow2_refblock_set(c->rc, c->order, (uint64_t)cluster, v);
}

int qcow2_check_rc_resize(CheckCtx *c, int64_t new_nb)
{
    if (new_nb > INT_MAX) {
        return -EFBIG;
    }
    size_t old_bytes = c->rc ? qcow2_check_rc_bytes(c, c->nb_clusters) : 0;
    size_t new_bytes = qcow2_check_rc_bytes(c, new_nb);
    if (new_bytes != old_bytes || !c->rc) {
        c->rc = xrealloc(c->rc, MAX(new_bytes, 1));
        if (new_bytes > old_bytes) {
            memset(c->rc + old_bytes, 0, new_bytes - old_bytes);
        }
    }
    c->nb_clusters = new_nb;
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
        if (!qcow2_check_rc_get(c, cluster)) {
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
        int ret = qcow2_check_rc_resize(c, cluster + count - contiguous);
        if (ret < 0) {
            return ret;
        }
    }
    cluster -= contiguous;
    for (int64_t i = 0; i < count; i++) {
        qcow2_check_rc_set(c, cluster + i, 1);
    }
    return cluster << c->s->cluster_bits;
}

/* A rebuild step failed: say so as qemu does (amend reports through errp). */
static int rebuild_failed(CheckCtx *c, const char *what, int ret)
{
    if (!c->amend) {
        qcow2_check_error("%s: %s", what, strerror(-ret));
        c->res->check_errors++;
    }
    return ret;
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
        if (!qcow2_check_rc_get(c, cluster)) {
            continue;
        }
        uint64_t idx = (uint64_t)cluster >> c->block_bits;
        int64_t block_start = (int64_t)(idx << c->block_bits);
        if (idx >= rt->n || !rt->entries[idx]) {
            first_free = MAX(first_free, block_start);
            int64_t off = alloc_clusters_imrt(c, 1, &first_free);
            if (off < 0) {
                return rebuild_failed(c, "ERROR allocating refblock", (int)off);
            }
            end = MAX(end, (off >> s->cluster_bits) + 1);
            if (idx >= rt->n) {
                uint64_t bytes = ROUND_UP((idx + 1) * 8, (uint64_t)s->cluster_size);
                if (bytes > QCOW2_MAX_REFTABLE_SIZE) {
                    return rebuild_failed(c, "ERROR allocating reftable memory", -EFBIG);
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
        int64_t at = (int64_t)rt->entries[idx];
        int ret = qcow2_pre_write_overlap_check(c->bs, 0, at, s->cluster_size);
        if (ret == 0) {
            ret = bfile_pwrite(c->bs->file, at, slice, s->cluster_size);
        }
        if (ret < 0) {
            return rebuild_failed(c, "ERROR writing refblock", ret);
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
    int ret = qcow2_pre_write_overlap_check(c->bs, 0, offset, (int64_t)bytes);
    if (ret == 0) {
        ret = bfile_pwrite(c->bs->file, offset, be, bytes);
    }
    free(be);
    if (ret == 0) {
        ret = bfile_flush(c->bs->file);
    }
    if (ret < 0) {
        qcow2_check_error("ERROR writing reftable: %s", strerror(-ret));
        return ret;
    }
    ret = qcow2_write_reftable_header(c->bs, (uint64_t)offset, clusters);
    if (ret < 0) {
        qcow2_check_error("ERROR setting reftable: %s", strerror(-ret));
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
            ret = rebuild_failed(c, "ERROR allocating reftable", (int)offset);
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

int qcow2_check_rebuild_refcounts(CheckCtx *c)
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
    ret = size < 0 ? (int)size : qcow2_check_rc_resize(&c, size_to_clusters(s, (uint64_t)size));
    if (ret == 0) {
        ret = qcow2_check_calculate_refcounts(&c, 0);
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
