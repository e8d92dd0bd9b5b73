/*
 * qcow2-io.c — the qcow2 data path: reads, allocating writes with
 * copy-on-write, zero writes, discard, flush, block status, preallocation.
 *
 * Spec: docs/interop/qcow2.txt ("Cluster mapping", "Extended L2 Entries").
 *
 * Design notes (invariants):
 *  1. Reads translate guest ranges under s->lock and read data without it,
 *     so many threads read at once.  Writes hold the lock throughout.
 *  2. An allocating write first allocates host clusters (refcount +1 in the
 *     cache), then writes the guest data together with the copy-on-write
 *     fill of partial (sub)clusters, and only then points the L2 entries at
 *     the new clusters.  The L2 cache then depends on the refcount cache and
 *     on a file sync, so after a crash an L2 entry never points at a
 *     cluster whose refcount or data is not on disk.  Old clusters are freed
 *     last.
 *  3. A cluster is written in place only if its L2 entry says NORMAL with
 *     the COPIED flag (refcount exactly 1); anything else (unallocated,
 *     zero, compressed, shared with a snapshot) gets a new cluster.
 *  4. COW granularity is the cluster, or with extended L2 the subcluster
 *     when the old cluster had no host cluster (QEMU's rule); a shared or
 *     compressed cluster is copied whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/luks.h"
#include "formats/qcow2.h"

/* ---- reads ---- */

static int read_piece(BlockDriverState *bs, uint64_t offset, uint64_t n, uint8_t *buf,
                      Qcow2SubclusterType type, uint64_t host)
{
    BDRVQcow2State *s = qcow2_state(bs);
    switch (type) {
    case QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN:
    case QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC:
        return bdrv_backing_pread(bs, (int64_t)offset, (int64_t)n, buf);
    case QCOW2_SUBCLUSTER_ZERO_PLAIN:
    case QCOW2_SUBCLUSTER_ZERO_ALLOC: memset(buf, 0, n); return 0;
    case QCOW2_SUBCLUSTER_NORMAL:
        if (!s->data_file) {
            return -EIO; /* opened without its data file (info only) */
        }
        int ret = bfile_pread(s->data_file, (int64_t)host, buf, n);
        return ret < 0 ? ret : qcow2_crypto_decrypt(s, host, buf, n); /* no-op if plain */
    case QCOW2_SUBCLUSTER_COMPRESSED: {
        uint8_t *cluster = xmalloc(s->cluster_size);
        int ret = qcow2_read_compressed_cluster(bs, host, cluster);
        if (ret == 0) {
            memcpy(buf, cluster + offset_into_cluster(s, (int64_t)offset), n);
        }
        free(cluster);
        return ret;
    }
    default: return -EIO;
    }
}

static int do_read(BlockDriverState *bs, uint64_t offset, uint64_t bytes, uint8_t *buf,
                   bool take_lock)
{
    BDRVQcow2State *s = qcow2_state(bs);
    while (bytes > 0) {
        uint64_t n = bytes, host;
        Qcow2SubclusterType type;
        if (take_lock) {
            pthread_mutex_lock(&s->lock);
        }
        int ret = qcow2_get_host_offset(bs, offset, &n, &host, &type);
        if (take_lock) {
            pthread_mutex_unlock(&s->lock);
        }
        if (ret == 0 && n == 0) {
            ret = -EIO;
        }
        if (ret == 0) {
            ret = read_piece(bs, offset, n, buf, type, host);
        }
        if (ret < 0) {
            return ret;
        }
        offset += n;
        buf += n;
        bytes -= n;
    }
    return 0;
}

int qcow2_read_locked(BlockDriverState *bs, uint64_t offset, uint64_t bytes, void *buf)
{
    return do_read(bs, offset, bytes, buf, false);
}

int qcow2_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    return do_read(bs, (uint64_t)offset, (uint64_t)bytes, buf, true);
}

/* ---- writes ---- */

/* A run of clusters inside one L2 table written by one step. */
typedef struct WriteRun {
    uint64_t offset, end;          /* guest data [offset, end) */
    uint64_t cstart;               /* guest start of the first cluster */
    uint32_t l2_index;             /* its L2 index */
    int64_t nb;                    /* clusters in the run */
    bool in_place;                 /* existing clusters, refcount 1 */
    uint64_t host;                 /* host offset of cstart */
    uint64_t fill_start, fill_end; /* guest range written incl. COW fills */
} WriteRun;

static bool in_place_ok(const BDRVQcow2State *s, uint64_t e)
{
    return qcow2_get_cluster_type(s, e) == QCOW2_CLUSTER_NORMAL &&
           ((e & QCOW_OFLAG_COPIED) || has_data_file(s));
}

/* Count clusters from l2_index that share the first one's class. */
static int64_t classify_run(const BDRVQcow2State *s, const void *l2, WriteRun *r, int64_t max_nb)
{
    uint64_t e0 = get_l2_entry(s, l2, r->l2_index);
    r->in_place = in_place_ok(s, e0);
    uint64_t host0 = e0 & L2E_OFFSET_MASK;
    int64_t n = 1;
    for (; n < max_nb; n++) {
        uint64_t e = get_l2_entry(s, l2, r->l2_index + (uint32_t)n);
        if (in_place_ok(s, e) != r->in_place) {
            break;
        }
        if (r->in_place && (e & L2E_OFFSET_MASK) != host0 + ((uint64_t)n << s->cluster_bits)) {
            break;
        }
    }
    r->host = host0;
    return n;
}

/* COW granularity for a new cluster replacing entry e. */
static uint64_t cow_granularity(const BDRVQcow2State *s, uint64_t e)
{
    if (s->extended_l2 && qcow2_get_cluster_type(s, e) == QCOW2_CLUSTER_UNALLOCATED) {
        return s->subcluster_size;
    }
    return s->cluster_size;
}

/* Is subcluster containing guest offset g (in cluster entry i) allocated? */
static bool sc_is_normal(const BDRVQcow2State *s, const void *l2, uint32_t i, uint64_t g)
{
    return qcow2_get_subcluster_type(s, get_l2_entry(s, l2, i), get_l2_bitmap(s, l2, i),
                                     offset_to_sc_index(s, g)) == QCOW2_SUBCLUSTER_NORMAL;
}

static void compute_fills(const BDRVQcow2State *s, const void *l2, WriteRun *r)
{
    uint32_t last = r->l2_index + (uint32_t)(r->nb - 1);
    uint64_t sc = s->subcluster_size;
    r->fill_start = r->offset;
    r->fill_end = r->end;
    if (r->in_place) {
        if (!s->extended_l2) {
            return;
        }
        if (r->offset % sc && !sc_is_normal(s, l2, r->l2_index, r->offset)) {
            r->fill_start = ROUND_DOWN(r->offset, sc);
        }
        if (r->end % sc && !sc_is_normal(s, l2, last, r->end - 1)) {
            r->fill_end = ROUND_UP(r->end, sc);
        }
        return;
    }
    r->fill_start = ROUND_DOWN(r->offset, cow_granularity(s, get_l2_entry(s, l2, r->l2_index)));
    r->fill_end = ROUND_UP(r->end, cow_granularity(s, get_l2_entry(s, l2, last)));
}

/* Write [from, to) of guest content read from the current mapping. */
static int write_fill(BlockDriverState *bs, const WriteRun *r, uint64_t from, uint64_t to)
{
    if (from >= to) {
        return 0;
    }
    uint8_t *tmp = xmalloc(to - from);
    int ret = qcow2_read_locked(bs, from, to - from, tmp);
    if (ret == 0) {
        BDRVQcow2State *s = qcow2_state(bs);
        ret = qcow2_crypto_pwrite(s, s->data_file, r->host + (from - r->cstart), tmp, to - from);
    }
    free(tmp);
    return ret;
}

static int write_run_data(BlockDriverState *bs, const WriteRun *r, const uint8_t *buf)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int ret = write_fill(bs, r, r->fill_start, r->offset);
    if (ret == 0) {
        ret = qcow2_crypto_pwrite(s, s->data_file, r->host + (r->offset - r->cstart), buf,
                                  r->end - r->offset);
    }
    if (ret == 0) {
        ret = write_fill(bs, r, r->end, r->fill_end);
    }
    return ret;
}

/* Subclusters of cluster i (guest start ci) touched by [from, to). */
static uint64_t touched_mask(const BDRVQcow2State *s, uint64_t ci, uint64_t from, uint64_t to)
{
    uint64_t a = MAX(from, ci), b = MIN(to, ci + s->cluster_size);
    if (a >= b) {
        return 0;
    }
    int first = (int)((a - ci) >> s->subcluster_bits);
    int last = (int)((b - ci - 1) >> s->subcluster_bits);
    return qcow2_sc_range_mask(first, last - first + 1);
}

/* Point the run's L2 entries at their clusters; free what they replace. */
static int link_run(BlockDriverState *bs, void *l2, const WriteRun *r)
{
    BDRVQcow2State *s = qcow2_state(bs);
    /* The refcount blocks holding the new clusters' references must reach
     * the file before this L2 table does.  Declare that BEFORE touching the
     * table: setting a dependency may itself write the L2 cache (to honour
     * the reverse dependency of an earlier free), and it must not write
     * entries that point at clusters whose refcounts are still unwritten. */
    int ret = 0;
    if (!r->in_place && !s->use_lazy_refcounts) {
        ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
        if (ret < 0) {
            return ret;
        }
    }
    uint64_t *old = XNEWV(uint64_t, (size_t)r->nb);
    bool changed = false;
    for (int64_t i = 0; i < r->nb; i++) {
        uint32_t idx = r->l2_index + (uint32_t)i;
        uint64_t ci = r->cstart + ((uint64_t)i << s->cluster_bits);
        uint64_t e = get_l2_entry(s, l2, idx), b = get_l2_bitmap(s, l2, idx);
        uint64_t mask = touched_mask(s, ci, r->fill_start, r->fill_end);
        old[i] = 0;
        uint64_t nb_ = b;
        if (!r->in_place) {
            old[i] = e;
            if (qcow2_get_cluster_type(s, e) != QCOW2_CLUSTER_UNALLOCATED) {
                nb_ = QCOW_L2_BITMAP_ALL_ALLOC; /* copied whole */
                mask = 0;
            }
            e = (r->host + ((uint64_t)i << s->cluster_bits)) | QCOW_OFLAG_COPIED;
        }
        if (s->extended_l2) {
            nb_ = (nb_ | mask) & ~(mask << 32);
        }
        changed |= e != get_l2_entry(s, l2, idx) || nb_ != b;
        set_l2_entry(s, l2, idx, e);
        set_l2_bitmap(s, l2, idx, nb_);
    }
    /* an overwrite in place changes no entry: the table stays clean (as in
     * qemu, whose files keep the table's unwritten tail sparse) */
    if (changed) {
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        qcow2_cache_depends_on_flush(s->l2_table_cache);
    }
    for (int64_t i = 0; i < r->nb && !has_data_file(s); i++) {
        qcow2_free_any_cluster(bs, old[i], QCOW2_DISCARD_OTHER);
    }
    free(old);
    return ret;
}

/* Write part of [offset, offset+bytes) that lies in one L2 table and one
 * run; returns the bytes done or -errno. */
static int64_t write_step(BlockDriverState *bs, uint64_t offset, uint64_t bytes, const uint8_t *buf)
{
    BDRVQcow2State *s = qcow2_state(bs);
    WriteRun r = {.offset = offset};
    uint64_t l2_span = 1ULL << (s->l2_bits + s->cluster_bits);
    r.end = MIN(offset + bytes, ROUND_DOWN(offset, l2_span) + l2_span);
    r.cstart = (uint64_t)start_of_cluster(s, (int64_t)offset);
    r.l2_index = offset_to_l2_index(s, offset);
    void *l2;
    int ret = qcow2_get_l2_table(bs, offset, true, &l2);
    if (ret < 0) {
        return ret;
    }
    int64_t max_nb = (int64_t)DIV_ROUND_UP(r.end - r.cstart, s->cluster_size);
    r.nb = classify_run(s, l2, &r, max_nb);
    r.end = MIN(r.end, r.cstart + ((uint64_t)r.nb << s->cluster_bits));
    compute_fills(s, l2, &r);
    if (!r.in_place) {
        int64_t host = has_data_file(s)
                           ? (int64_t)r.cstart
                           : qcow2_alloc_clusters(bs, (uint64_t)r.nb << s->cluster_bits);
        if (host < 0) {
            qcow2_cache_put(s->l2_table_cache, &l2);
            return host;
        }
        r.host = (uint64_t)host;
    }
    ret = write_run_data(bs, &r, buf);
    if (ret == 0) {
        ret = link_run(bs, l2, &r);
    } else if (!r.in_place && !has_data_file(s)) {
        qcow2_free_clusters(bs, (int64_t)r.host, r.nb << s->cluster_bits, QCOW2_DISCARD_OTHER);
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    return ret < 0 ? ret : (int64_t)(r.end - offset);
}

int qcow2_write_locked(BlockDriverState *bs, uint64_t offset, uint64_t bytes, const void *buf)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (!s->data_file) {
        return -EIO;
    }
    int ret = qcow2_mark_dirty(bs);
    const uint8_t *p = buf;
    while (ret == 0 && bytes > 0) {
        int64_t n = write_step(bs, offset, bytes, p);
        if (n < 0) {
            return (int)n;
        }
        offset += (uint64_t)n;
        p += n;
        bytes -= (uint64_t)n;
    }
    return ret;
}

int qcow2_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    int ret = qcow2_write_locked(bs, (uint64_t)offset, (uint64_t)bytes, buf);
    qcow2_bitmaps_set_dirty(bs, offset, bytes); /* enabled persistent bitmaps */
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* ---- zeroes ---- */

static int write_zero_buffer(BlockDriverState *bs, uint64_t offset, uint64_t bytes, int flags)
{
    if (flags & BDRV_REQ_NO_FALLBACK) {
        return -ENOTSUP;
    }
    size_t chunk = (size_t)MIN(bytes, 1 * MiB);
    uint8_t *zero = xzalloc(chunk);
    int ret = 0;
    while (ret == 0 && bytes > 0) {
        uint64_t n = MIN(bytes, chunk);
        ret = qcow2_write_locked(bs, offset, n, zero);
        offset += n;
        bytes -= n;
    }
    free(zero);
    return ret;
}

/* Does guest [offset, offset+bytes) (one subcluster run) read as zero already? */
static int reads_as_zero(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    while (bytes > 0) {
        uint64_t n = bytes, host;
        Qcow2SubclusterType t;
        int ret = qcow2_get_host_offset(bs, offset, &n, &host, &t);
        if (ret < 0) {
            return ret;
        }
        bool zero =
            t == QCOW2_SUBCLUSTER_ZERO_PLAIN || t == QCOW2_SUBCLUSTER_ZERO_ALLOC ||
            ((t == QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN || t == QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC) &&
             (!bs->backing || (int64_t)offset >= bdrv_getlength(bs->backing)));
        if (!zero || n == 0) {
            return 0;
        }
        offset += n;
        bytes -= n;
    }
    return 1;
}

/* Extended L2: mark subclusters [from, to) of one cluster as zero. */
static int zero_subclusters(BlockDriverState *bs, uint64_t from, uint64_t to, int flags)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t ci = (uint64_t)start_of_cluster(s, (int64_t)from);
    void *l2;
    int ret = qcow2_get_l2_table(bs, from, true, &l2);
    if (ret < 0) {
        return ret;
    }
    uint32_t idx = offset_to_l2_index(s, from);
    uint64_t e = get_l2_entry(s, l2, idx), b = get_l2_bitmap(s, l2, idx);
    if (qcow2_get_cluster_type(s, e) == QCOW2_CLUSTER_COMPRESSED) {
        qcow2_cache_put(s->l2_table_cache, &l2);
        return write_zero_buffer(bs, from, to - from, flags);
    }
    uint64_t mask = touched_mask(s, ci, from, to);
    uint64_t nb_ = (b & ~mask) | (mask << 32);
    if (nb_ != b) {
        set_l2_bitmap(s, l2, idx, nb_);
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    return 0;
}

/* A zero request inside one cluster that does not cover it whole. */
static int zero_partial(BlockDriverState *bs, uint64_t from, uint64_t to, uint64_t visible_end,
                        int flags)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t g = s->subcluster_size;
    uint64_t a = ROUND_UP(from, g);
    uint64_t b = to >= visible_end ? ROUND_UP(to, g) : ROUND_DOWN(to, g);
    int ret = 0;
    if (s->extended_l2 && a < b) {
        ret = zero_subclusters(bs, a, b, flags);
    } else {
        a = b = from; /* no whole subcluster: all of it is an edge */
    }
    uint64_t edges[2][2] = {{from, MIN(a, to)}, {MAX(b, from), to}};
    if (a == b && a == from) {
        edges[0][1] = to;
        edges[1][0] = edges[1][1] = to;
    }
    for (int i = 0; i < 2 && ret == 0; i++) {
        uint64_t x = edges[i][0], y = edges[i][1];
        if (x >= y) {
            continue;
        }
        ret = reads_as_zero(bs, x, y - x);
        if (ret == 0) {
            ret = write_zero_buffer(bs, x, y - x, flags);
        } else if (ret > 0) {
            ret = 0;
        }
    }
    return ret;
}

/* Whole clusters [from, to): zero flags, or zero buffers where v2 cannot. */
static int zero_clusters(BlockDriverState *bs, uint64_t from, uint64_t to, int flags)
{
    int ret = qcow2_cluster_zeroize(bs, from, to - from, flags & BDRV_REQ_MAY_UNMAP);
    if (ret == -ENOTSUP) {
        ret = write_zero_buffer(bs, from, to - from, flags);
    }
    return ret;
}

int qcow2_write_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    qcow2_bitmaps_set_dirty(bs, offset, bytes); /* enabled persistent bitmaps */
    int ret = s->data_file ? qcow2_mark_dirty(bs) : -EIO;
    if (ret == 0 && data_file_is_raw(s)) {
        ret = bfile_write_zeroes(s->data_file, offset, bytes, flags & BDRV_REQ_MAY_UNMAP);
    }
    uint64_t pos = (uint64_t)offset, end = (uint64_t)(offset + bytes);
    uint64_t run_start = 0, run_end = 0; /* pending whole clusters */
    while (ret == 0 && pos < end) {
        uint64_t cstart = (uint64_t)start_of_cluster(s, (int64_t)pos);
        uint64_t cend = cstart + s->cluster_size;
        uint64_t piece_end = MIN(end, cend);
        uint64_t visible_end = MIN(cend, (uint64_t)bs->total_size);
        if (pos == cstart && piece_end >= visible_end) {
            if (run_end != pos) {
                run_start = pos;
            }
            run_end = cend;
        } else {
            if (run_end > run_start) {
                ret = zero_clusters(bs, run_start, run_end, flags);
                run_start = run_end = 0;
            }
            if (ret == 0) {
                ret = zero_partial(bs, pos, piece_end, visible_end, flags);
            }
        }
        pos = piece_end;
    }
    if (ret == 0 && run_end > run_start) {
        ret = zero_clusters(bs, run_start, run_end, flags);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* ---- discard, make_empty ---- */

int qcow2_discard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = qcow2_state(bs);
    qcow2_bitmaps_set_dirty(bs, offset, bytes); /* as qemu: the whole request */
    int64_t start = ROUND_UP(offset, (int64_t)s->cluster_size);
    int64_t end = offset + bytes;
    if (end != bs->total_size) {
        end = ROUND_DOWN(end, (int64_t)s->cluster_size);
    }
    if (start >= end) {
        return 0; /* partial clusters are ignored, as QEMU does */
    }
    if (s->qcow_version < 3 && bs->backing_file) {
        return 0; /* v2 cannot hide the backing file: qemu leaves the data */
    }
    pthread_mutex_lock(&s->lock);
    int ret = qcow2_mark_dirty(bs);
    if (ret == 0) {
        ret = qcow2_cluster_discard(bs, (uint64_t)start, (uint64_t)(end - start),
                                    QCOW2_DISCARD_REQUEST, false);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* Punch the host clusters whose refcount is 0 (advisory: errors are ignored). */
static void discard_unused_clusters(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int64_t n = bfile_getlength(bs->file) >> s->cluster_bits;
    int64_t run = 0;
    for (int64_t c = 0; c <= n; c++) {
        uint64_t rc = 1;
        if (c < n && qcow2_get_refcount(bs, c, &rc) < 0) {
            return;
        }
        if (c < n && rc == 0) {
            run++;
            continue;
        }
        if (run) {
            bfile_discard(bs->file, (c - run) << s->cluster_bits, run << s->cluster_bits);
        }
        run = 0;
    }
}

/*
 * The host clusters are punched only after the emptied L2 tables and the
 * refcounts are on disk: punched while the old L2 entries were still the
 * ones on disk, a process killed in between (commit's last step) left the
 * overlay pointing at holes, i.e. reading zeros instead of its data.
 */
/*
 * qemu resets such an image to a fresh one rather than discarding cluster
 * by cluster: v3, nothing that reserves clusters of its own (snapshots,
 * bitmaps, LUKS header, data file), and header, refcount table, one
 * refcount block and the L1 table fit in the first refcount block.  We do
 * it only where the image already has that fresh layout (what qemu-img
 * create makes: refcount table in cluster 1, its one block in cluster 2,
 * L1 from cluster 3), so that no step ever leaves more than leaks behind.
 */
static bool can_empty_completely(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t cs = s->cluster_size;
    uint64_t l1_clusters = DIV_ROUND_UP((uint64_t)s->l1_size * 8, cs);
    if (s->qcow_version < 3 || s->nb_snapshots || s->nb_bitmaps ||
        3 + l1_clusters > s->refcount_block_size || s->crypt_method_header == QCOW2_CRYPT_LUKS ||
        s->data_file != bs->file || s->refcount_table_offset != cs ||
        s->refcount_table_size != cs / 8 || s->refcount_table[0] != 2 * cs ||
        s->l1_table_offset != 3 * cs) {
        return false;
    }
    for (uint32_t i = 1; i < s->refcount_table_size; i++) {
        if (s->refcount_table[i]) {
            return false;
        }
    }
    return true;
}

/*
 * The layout qemu's make_empty leaves: header, refcount table, refcount
 * block, an empty L1 table, and the file ends there.  Steps, each safe to
 * crash after: the L1 table is zeroed (every other cluster is leaked);
 * the refcount table, block and L1 clusters are rewritten whole (a torn
 * block mixes old refcounts, leaks, with new ones); the file is cut; the
 * header cluster is rewritten as it stands.
 */
static int make_completely_empty(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t cs = s->cluster_size, l1_bytes = (uint64_t)s->l1_size * 8;
    uint64_t l1_clusters = DIV_ROUND_UP(l1_bytes, cs);
    int ret = qcow2_cache_empty(bs, s->l2_table_cache);
    if (ret == 0) {
        ret = qcow2_cache_empty(bs, s->refcount_block_cache);
    }
    if (ret == 0 && l1_bytes) {
        ret = bfile_write_zeroes(bs->file, (int64_t)s->l1_table_offset, (int64_t)l1_bytes, false);
    }
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret < 0) {
        return ret;
    }
    memset(s->l1_table, 0, l1_bytes);
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    uint8_t *buf = xzalloc(cs);
    st64_be(buf, 2 * cs);
    ret = bfile_pwrite(bs->file, (int64_t)cs, buf, cs);
    memset(buf, 0, cs);
    for (uint64_t c = 0; c < 3 + l1_clusters; c++) {
        qcow2_refblock_set(buf, s->refcount_order, c, 1);
    }
    if (ret == 0) {
        ret = bfile_pwrite(bs->file, (int64_t)(2 * cs), buf, cs);
    }
    memset(buf, 0, cs);
    for (uint64_t c = 0; ret == 0 && c < l1_clusters; c++) {
        ret = bfile_pwrite(bs->file, (int64_t)((3 + c) * cs), buf, cs);
    }
    free(buf);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret == 0) {
        ret = bfile_truncate(bs->file, (int64_t)((3 + l1_clusters) * cs), PREALLOC_OFF, NULL);
    }
    if (ret == 0) {
        ret = qcow2_update_header(bs); /* qemu ends by rewriting it (marking clean) */
    }
    s->free_cluster_index = 0;
    s->free_byte_offset = 0;
    return ret;
}

int qcow2_make_empty(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    if (can_empty_completely(bs)) {
        int ret = make_completely_empty(bs);
        pthread_mutex_unlock(&s->lock);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not empty the image");
        }
        return ret;
    }
    int ret = qcow2_mark_dirty(bs);
    uint64_t total = (uint64_t)bs->total_size;
    uint64_t step = 1ULL << (s->l2_bits + s->cluster_bits);
    bool punch = s->discard_passthrough[QCOW2_DISCARD_SNAPSHOT];
    s->discard_passthrough[QCOW2_DISCARD_SNAPSHOT] = false;
    for (uint64_t off = 0; ret == 0 && off < total; off += step) {
        ret = qcow2_cluster_discard(bs, off, MIN(step, total - off), QCOW2_DISCARD_SNAPSHOT, true);
    }
    s->discard_passthrough[QCOW2_DISCARD_SNAPSHOT] = punch;
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0 && punch && s->data_file == bs->file && (ret = bfile_flush(bs->file)) == 0) {
        discard_unused_clusters(bs);
    }
    pthread_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not empty the image");
    }
    return ret;
}

/* ---- flush ---- */

int qcow2_flush_caches(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int ret = qcow2_cache_write(bs, s->l2_table_cache);
    if (ret == 0) {
        ret = qcow2_cache_write(bs, s->refcount_block_cache);
    }
    if (ret == 0 && s->l1_dirty_hi > s->l1_dirty_lo) {
        /* The L2 tables the new L1 entries point at must be durable first. */
        ret = bfile_flush(bs->file);
        if (ret == 0) {
            ret = qcow2_write_l1_dirty(bs);
        }
    }
    return ret;
}

int qcow2_flush_all(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int ret = qcow2_flush_caches(bs);
    if (ret == 0 && s->data_file && s->data_file != bs->file) {
        ret = bfile_flush(s->data_file);
    }
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    return ret;
}

int qcow2_flush(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    int ret = qcow2_flush_caches(bs);
    if (ret == 0 && s->data_file && s->data_file != bs->file) {
        ret = bfile_flush(s->data_file);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* ---- block status ---- */

/* QEMU's heuristic: far more clusters in use than the file really holds
 * means metadata preallocation (ask the file where the holes are). */
static int detect_metadata_preallocation(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int64_t file_length = bfile_getlength(bs->file);
    int64_t real = bfile_allocated_size(bs->file);
    if (file_length < 0 || real < 0) {
        return 0;
    }
    int64_t real_clusters = real / s->cluster_size;
    int64_t threshold = MAX(real_clusters * 10 / 9, real_clusters + 2);
    int64_t end = size_to_clusters(s, (uint64_t)file_length);
    int64_t count = 0;
    for (int64_t i = 0; i < end && count <= threshold; i++) {
        uint64_t rc;
        if (qcow2_get_refcount(bs, i, &rc) < 0) {
            return 0;
        }
        count += rc != 0;
    }
    return count > threshold;
}

int qcow2_block_status(BlockDriverState *bs, bool want_zero, int64_t offset, int64_t bytes,
                       int64_t *pnum, int64_t *map, BlockFile **file)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t n = (uint64_t)bytes, host;
    Qcow2SubclusterType t;
    pthread_mutex_lock(&s->lock);
    if (!s->metadata_preallocation_checked) {
        s->metadata_preallocation = detect_metadata_preallocation(bs) == 1;
        s->metadata_preallocation_checked = true;
    }
    int ret = qcow2_get_host_offset(bs, (uint64_t)offset, &n, &host, &t);
    pthread_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    *pnum = (int64_t)n;
    int status = 0;
    if ((t == QCOW2_SUBCLUSTER_NORMAL || t == QCOW2_SUBCLUSTER_ZERO_ALLOC ||
         t == QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC) &&
        !s->crypto && s->data_file) {
        *map = (int64_t)host;
        *file = s->data_file;
        status |= BDRV_BLOCK_OFFSET_VALID;
    }
    if (t == QCOW2_SUBCLUSTER_ZERO_PLAIN || t == QCOW2_SUBCLUSTER_ZERO_ALLOC) {
        status |= BDRV_BLOCK_ZERO;
    } else if (t == QCOW2_SUBCLUSTER_COMPRESSED) {
        status |= BDRV_BLOCK_DATA | BDRV_BLOCK_COMPRESSED;
    } else if (t == QCOW2_SUBCLUSTER_NORMAL) {
        status |= BDRV_BLOCK_DATA;
    }
    if (s->metadata_preallocation && (status & BDRV_BLOCK_DATA) &&
        (status & BDRV_BLOCK_OFFSET_VALID)) {
        status |= BDRV_BLOCK_RECURSE;
    }
    return status;
}

/* ---- preallocation ---- */

/* Allocate the unallocated clusters of one L2 table's part of the range. */
static int64_t prealloc_step(BlockDriverState *bs, uint64_t offset, uint64_t end,
                             uint64_t *host_end)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t l2_span = 1ULL << (s->l2_bits + s->cluster_bits);
    uint64_t stop = MIN(end, ROUND_DOWN(offset, l2_span) + l2_span);
    void *l2;
    int ret = qcow2_get_l2_table(bs, offset, true, &l2);
    if (ret < 0) {
        return ret;
    }
    uint32_t first = offset_to_l2_index(s, offset);
    int64_t nb = (int64_t)DIV_ROUND_UP(stop - (uint64_t)start_of_cluster(s, (int64_t)offset),
                                       s->cluster_size);
    if (!s->use_lazy_refcounts) {
        /* before the table changes: see link_run() */
        ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
    }
    int64_t i = 0;
    while (ret == 0 && i < nb) {
        int64_t j = i;
        while (j < nb && qcow2_get_cluster_type(s, get_l2_entry(s, l2, first + (uint32_t)j)) ==
                             QCOW2_CLUSTER_UNALLOCATED) {
            j++;
        }
        if (j > i) {
            uint64_t guest =
                (uint64_t)start_of_cluster(s, (int64_t)offset) + ((uint64_t)i << s->cluster_bits);
            int64_t host = has_data_file(s)
                               ? (int64_t)guest
                               : qcow2_alloc_clusters(bs, (uint64_t)(j - i) << s->cluster_bits);
            if (host < 0) {
                ret = (int)host;
                break;
            }
            for (int64_t k = i; k < j; k++) {
                uint64_t h = (uint64_t)host + ((uint64_t)(k - i) << s->cluster_bits);
                set_l2_entry(s, l2, first + (uint32_t)k, h | QCOW_OFLAG_COPIED);
            }
            *host_end = MAX(*host_end, (uint64_t)host + ((uint64_t)(j - i) << s->cluster_bits));
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        }
        i = j + 1;
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    return ret < 0 ? ret : (int64_t)(stop - offset);
}

int qcow2_preallocate(BlockDriverState *bs, int64_t offset, int64_t bytes, PreallocMode mode,
                      Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t pos = (uint64_t)offset, end = (uint64_t)(offset + bytes), host_end = 0;
    while (pos < end) {
        int64_t n = prealloc_step(bs, pos, end, &host_end);
        if (n < 0) {
            error_setg_errno(errp, (int)-n, "Could not preallocate metadata");
            return (int)n;
        }
        pos += (uint64_t)n;
    }
    int ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not preallocate metadata");
        return ret;
    }
    PreallocMode fmode = mode == PREALLOC_METADATA ? PREALLOC_OFF : mode;
    BlockFile *f = s->data_file ? s->data_file : bs->file;
    int64_t want = has_data_file(s) ? offset + bytes : (int64_t)host_end;
    int64_t len = bfile_getlength(f);
    if (len >= 0 && want > len) {
        return bfile_truncate(f, want, fmode, errp);
    }
    return len < 0 ? (int)len : 0;
}
