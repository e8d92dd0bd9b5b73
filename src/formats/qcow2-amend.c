/*
 * qcow2-amend.c — qemu-img amend for qcow2.
 *
 * Spec: QEMU docs/interop/qcow2.txt (versions 2 and 3, feature bits,
 * refcount_order, zero clusters).  Behaviour and messages follow qemu-img
 * 7.2's amend: only options given on the command line change; upgrades run
 * first and downgrades last; a downgrade to compat=0.10 needs
 * refcount_bits=16, no data file, no incompatible features (extended L2,
 * zstd with compressed clusters, ...), no snapshot of another size, and
 * turns zero clusters into unallocated (no backing file) or zeroed data
 * clusters.  refcount_bits rebuilds the refcount structure at the new width
 * (qcow2-check.c).  encrypt.* (LUKS key slots) is handled by luks-qcow2.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/luks.h"
#include "formats/qcow2.h"

/* qemu-img amend -f qcow2 -o help: exactly these, in this order */
const OptDesc qcow2_amend_opts[] = {
    {"compat", OPT_STRING, "Compatibility level (v2 [0.10] or v3 [1.1])", NULL},
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"backing_file", OPT_STRING, "File name of a base image", NULL},
    {"backing_fmt", OPT_STRING, "Image format of the base image", NULL},
    {"data_file", OPT_STRING, "File name of an external data file", NULL},
    {"data_file_raw", OPT_BOOL, "The external data file must stay valid as a raw image", NULL},
    {"encrypt.keyslot", OPT_NUMBER, "Select a single keyslot to modify explicitly", NULL},
    {"encrypt.state", OPT_STRING, "Select new state of affected keyslots (active/inactive)", NULL},
    {"encrypt.old-secret", OPT_STRING, "Select all keyslots that match this password", NULL},
    {"encrypt.new-secret", OPT_STRING,
     "New secret to set in the matching keyslots. Empty string to erase", NULL},
    {"encrypt.iter-time", OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL},
    {"lazy_refcounts", OPT_BOOL, "Postpone refcount updates", NULL},
    {"refcount_bits", OPT_NUMBER, "Width of a reference count entry in bits", NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct AmendPlan {
    int new_version;
    uint64_t new_size; /* 0: unchanged */
    const char *backing_file, *backing_fmt, *data_file;
    bool lazy_refcounts, data_file_raw, encryption;
    uint64_t refcount_bits;
} AmendPlan;

static int parse_plan(BlockDriverState *bs, const Opts *opts, AmendPlan *p, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    const char *compat = opts_get(opts, "compat");
    *p = (AmendPlan){.new_version = s->qcow_version,
                     .lazy_refcounts = s->use_lazy_refcounts ||
                                       (s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS),
                     .data_file_raw = data_file_is_raw(s),
                     .refcount_bits = (uint64_t)s->refcount_bits};
    if (compat) {
        if (!strcmp(compat, "0.10") || !strcmp(compat, "v2")) {
            p->new_version = 2;
        } else if (!strcmp(compat, "1.1") || !strcmp(compat, "v3")) {
            p->new_version = 3;
        } else {
            error_setg(errp, "Unknown compatibility level %s", compat);
            return -EINVAL;
        }
    }
    if (opts_get_size(opts, "size", 0, &p->new_size, errp) < 0 ||
        opts_get_bool(opts, "lazy_refcounts", p->lazy_refcounts, &p->lazy_refcounts, errp) < 0 ||
        opts_get_number(opts, "refcount_bits", p->refcount_bits, &p->refcount_bits, errp) < 0 ||
        opts_get_bool(opts, "data_file_raw", p->data_file_raw, &p->data_file_raw, errp) < 0) {
        return -EINVAL;
    }
    p->backing_file = opts_get(opts, "backing_file");
    p->backing_fmt = opts_get(opts, "backing_fmt");
    for (size_t i = 0; i < opts->n; i++) {
        if (!strncmp(opts->keys[i], "encrypt.", 8)) {
            p->encryption = true;
        }
    }
    if (p->encryption) {
        if (!s->crypto) {
            error_setg(errp, "Can't amend encryption options - encryption not present");
            return -EINVAL;
        }
        if (s->crypt_method_header != QCOW2_CRYPT_LUKS) {
            error_setg(errp, "Only LUKS encryption options can be amended");
            return -ENOTSUP;
        }
    }
    if (opts_get(opts, "refcount_bits") &&
        (p->refcount_bits == 0 || p->refcount_bits > 64 || !IS_POWER_OF_2(p->refcount_bits))) {
        error_setg(errp, "Refcount width must be a power of two and may not exceed 64 bits");
        return -EINVAL;
    }
    p->data_file = opts_get(opts, "data_file");
    if (p->data_file && !has_data_file(s)) {
        error_setg(errp, "data-file can only be set for images that use an external data file");
        return -EINVAL;
    }
    if (opts_get(opts, "data_file_raw") && p->data_file_raw && !data_file_is_raw(s)) {
        error_setg(errp, "data-file-raw cannot be set on existing images");
        return -EINVAL;
    }
    return 0;
}

/* ---- version changes ---- */

static int upgrade(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if (s->snapshots[i].extra_data_size < 16) {
            /* v3 needs the disk size in every entry: rewrite the table */
            int ret = qcow2_write_snapshots(bs);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Failed to update the snapshot table");
                return ret;
            }
            break;
        }
    }
    s->qcow_version = 3;
    int ret = qcow2_update_header(bs);
    if (ret < 0) {
        s->qcow_version = 2;
        error_setg_errno(errp, -ret, "Failed to update the image header");
    }
    return ret;
}

/* Turn one L2 entry that reads as zeros into v2-compatible form. */
static int expand_entry(BlockDriverState *bs, uint64_t *entry, uint64_t l2_refcount)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2ClusterType type = qcow2_get_cluster_type(s, *entry);
    int64_t offset = (int64_t)(*entry & L2E_OFFSET_MASK);
    if (type == QCOW2_CLUSTER_ZERO_PLAIN) {
        if (!bs->backing_file) {
            *entry = 0; /* unallocated reads as zeros too */
            return 0;
        }
        offset = qcow2_alloc_clusters(bs, s->cluster_size);
        if (offset < 0) {
            return (int)offset;
        }
        if (l2_refcount > 1) {
            /* every L1 that shares this table references the new cluster */
            int ret = qcow2_update_refcount(bs, offset, s->cluster_size, (int64_t)l2_refcount - 1,
                                            QCOW2_DISCARD_OTHER);
            if (ret < 0) {
                return ret;
            }
        }
    }
    if (offset_into_cluster(s, offset)) {
        return qcow2_signal_corruption(
            bs, true, -1, -1, "Cluster allocation offset %#" PRIx64 " unaligned", (uint64_t)offset);
    }
    int ret = bfile_write_zeroes(s->data_file, offset, s->cluster_size, false);
    if (ret < 0) {
        return ret;
    }
    *entry = (uint64_t)offset | (l2_refcount == 1 ? QCOW_OFLAG_COPIED : 0);
    return 0;
}

static int expand_l2(BlockDriverState *bs, uint64_t l2_offset)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t l2_refcount;
    int ret = qcow2_get_refcount(bs, (int64_t)(l2_offset >> s->cluster_bits), &l2_refcount);
    if (ret < 0) {
        return ret;
    }
    uint8_t *l2 = xmalloc(s->cluster_size);
    bool dirty = false;
    ret = bfile_pread(bs->file, (int64_t)l2_offset, l2, s->cluster_size);
    for (uint32_t j = 0; j < s->l2_size && ret == 0; j++) {
        uint64_t entry = get_l2_entry(s, l2, j);
        Qcow2ClusterType type = qcow2_get_cluster_type(s, entry);
        if (type != QCOW2_CLUSTER_ZERO_PLAIN && type != QCOW2_CLUSTER_ZERO_ALLOC) {
            continue;
        }
        ret = expand_entry(bs, &entry, l2_refcount);
        set_l2_entry(s, l2, j, entry);
        dirty = true;
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0 && dirty) {
        /* zeroed data and refcounts first, then the entries pointing at them */
        ret = bfile_flush(bs->file);
        if (ret == 0) {
            ret = bfile_pwrite(bs->file, (int64_t)l2_offset, l2, s->cluster_size);
        }
    }
    free(l2);
    return ret;
}

static int expand_l1(BlockDriverState *bs, const uint64_t *l1, uint32_t l1_size, int64_t *done,
                     int64_t total, ProgressFn progress, void *opaque)
{
    BDRVQcow2State *s = qcow2_state(bs);
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_offset = l1[i] & L1E_OFFSET_MASK;
        if (l2_offset) {
            if (offset_into_cluster(s, (int64_t)l2_offset)) {
                return qcow2_signal_corruption(bs, true, -1, -1,
                                               "L2 table offset %#" PRIx64 " unaligned", l2_offset);
            }
            int ret = expand_l2(bs, l2_offset);
            if (ret < 0) {
                return ret;
            }
        }
        (*done)++;
        if (progress) {
            progress(opaque, *done, total);
        }
    }
    return 0;
}

static int expand_zero_clusters(BlockDriverState *bs, ProgressFn progress, void *opaque)
{
    BDRVQcow2State *s = qcow2_state(bs);
    /* L2 tables are rewritten on disk directly: nothing may stay cached */
    int ret = qcow2_cache_empty(bs, s->l2_table_cache);
    int64_t total = s->l1_size, done = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        total += s->snapshots[i].l1_size;
    }
    if (ret == 0) {
        ret = expand_l1(bs, s->l1_table, s->l1_size, &done, total, progress, opaque);
    }
    for (uint32_t i = 0; i < s->nb_snapshots && ret == 0; i++) {
        const QCowSnapshot *sn = &s->snapshots[i];
        if (sn->l1_size > QCOW2_MAX_L1_SIZE / 8 ||
            offset_into_cluster(s, (int64_t)sn->l1_table_offset)) {
            return -EINVAL;
        }
        ret = qcow2_cache_empty(bs, s->l2_table_cache);
        uint64_t *l1 = XNEWV(uint64_t, (size_t)sn->l1_size + 1);
        if (ret == 0) {
            ret = bfile_pread(bs->file, (int64_t)sn->l1_table_offset, l1, (size_t)sn->l1_size * 8);
        }
        for (uint32_t j = 0; j < sn->l1_size; j++) {
            l1[j] = ld64_be(&l1[j]);
        }
        if (ret == 0) {
            ret = expand_l1(bs, l1, sn->l1_size, &done, total, progress, opaque);
        }
        free(l1);
    }
    return ret;
}

static bool has_compressed_clusters(BlockDriverState *bs)
{
    for (int64_t off = 0; off < bs->total_size;) {
        uint64_t bytes = (uint64_t)(bs->total_size - off), host;
        Qcow2SubclusterType type;
        if (qcow2_get_host_offset(bs, (uint64_t)off, &bytes, &host, &type) < 0 || !bytes) {
            return true; /* cannot tell: be safe */
        }
        if (type == QCOW2_SUBCLUSTER_COMPRESSED) {
            return true;
        }
        off += (int64_t)bytes;
    }
    return false;
}

static int downgrade(BlockDriverState *bs, ProgressFn progress, void *opaque, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (s->refcount_order != 4) {
        error_setg(errp, "compat=0.10 requires refcount_bits=16");
        return -ENOTSUP;
    }
    if (has_data_file(s)) {
        error_setg(errp, "Cannot downgrade an image with a data file");
        return -ENOTSUP;
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if (s->snapshots[i].vm_state_size > UINT32_MAX ||
            s->snapshots[i].disk_size != (uint64_t)bs->total_size) {
            error_setg(errp, "Internal snapshots prevent downgrade of image");
            return -ENOTSUP;
        }
    }
    int ret;
    if (s->incompatible_features & QCOW2_INCOMPAT_DIRTY) {
        ret = qcow2_mark_clean(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to make the image clean");
            return ret;
        }
    }
    uint64_t blocking = s->incompatible_features & ~QCOW2_INCOMPAT_COMPRESSION;
    if (blocking) {
        error_setg(errp, "Cannot downgrade an image with incompatible features %#" PRIx64 " set",
                   blocking);
        return -ENOTSUP;
    }
    s->compatible_features = 0;
    s->use_lazy_refcounts = false;
    s->autoclear_features = 0;
    ret = expand_zero_clusters(bs, progress, opaque);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to turn zero into data clusters");
        return ret;
    }
    if (s->compression_type != QCOW2_COMPRESSION_ZLIB) {
        if (has_compressed_clusters(bs)) {
            error_setg(errp, "Cannot downgrade an image with zstd compression type and existing "
                             "compressed clusters");
            return -ENOTSUP;
        }
        s->incompatible_features &= ~QCOW2_INCOMPAT_COMPRESSION;
        s->compression_type = QCOW2_COMPRESSION_ZLIB;
    }
    s->qcow_version = 2;
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        s->qcow_version = 3;
        error_setg_errno(errp, -ret, "Failed to update the image header");
    }
    return ret;
}

/* ---- the slot ---- */

static int set_lazy_refcounts(BlockDriverState *bs, const AmendPlan *p, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    bool cur = (s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0;
    if (cur == p->lazy_refcounts) {
        return 0;
    }
    if (p->lazy_refcounts && p->new_version < 3) {
        error_setg(errp, "Lazy refcounts only supported with compatibility level 1.1 and above "
                         "(use compat=1.1 or greater)");
        return -EINVAL;
    }
    if (!p->lazy_refcounts) {
        int ret = qcow2_mark_clean(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to make the image clean");
            return ret;
        }
    }
    s->compatible_features ^= QCOW2_COMPAT_LAZY_REFCOUNTS;
    int ret = qcow2_update_header(bs);
    if (ret < 0) {
        s->compatible_features ^= QCOW2_COMPAT_LAZY_REFCOUNTS;
        error_setg_errno(errp, -ret, "Failed to update the image header");
        return ret;
    }
    s->use_lazy_refcounts = p->lazy_refcounts && !bs->read_only;
    return 0;
}

/* Everything before the resize; lock held. */
static int amend_first_part(BlockDriverState *bs, const AmendPlan *p, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int ret;
    if (p->new_version > s->qcow_version && (ret = upgrade(bs, errp)) < 0) {
        return ret;
    }
    if (p->refcount_bits != (uint64_t)s->refcount_bits) {
        if (p->new_version < 3 && p->refcount_bits != 16) {
            error_setg(errp, "Refcount widths other than 16 bits require compatibility level 1.1 "
                             "or above (use compat=1.1 or greater)");
            return -EINVAL;
        }
        ret = qcow2_change_refcount_order(bs, __builtin_ctzll(p->refcount_bits), errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (p->data_file_raw) {
        s->autoclear_features |= QCOW2_AUTOCLEAR_DATA_FILE_RAW;
    } else {
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_DATA_FILE_RAW;
    }
    if (p->data_file) {
        free(s->image_data_file);
        s->image_data_file = *p->data_file ? xstrdup(p->data_file) : NULL;
    }
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update the image header");
    }
    return ret;
}

/* Equal names, NULL equal only to NULL */
static bool same_name(const char *a, const char *b)
{
    return a && b ? !strcmp(a, b) : a == b;
}

int qcow2_amend(BlockDriverState *bs, const Opts *opts, bool force, ProgressFn progress,
                void *progress_opaque, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    AmendPlan p;
    (void)force;

    int ret = parse_plan(bs, opts, &p, errp);
    if (ret < 0) {
        return ret;
    }
    pthread_mutex_lock(&s->lock);
    ret = amend_first_part(bs, &p, errp);
    pthread_mutex_unlock(&s->lock);
    if (ret == 0 && p.encryption) {
        ret = qcow2_crypto_amend(bs, opts, force, errp); /* luks-qcow2.c: key slots */
    }
    /* qemu 7.2 no longer changes the backing file here: both names must be
     * given and equal to the current ones (a no-op), or amend fails */
    if (ret == 0 && (p.backing_file || p.backing_fmt) &&
        (!same_name(p.backing_file, s->image_backing_file) ||
         !same_name(p.backing_fmt, s->image_backing_format))) {
        error_setg(errp, "Cannot amend the backing file\nYou can use 'qemu-img rebase' instead.");
        ret = -EINVAL;
    }
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        ret = set_lazy_refcounts(bs, &p, errp);
        pthread_mutex_unlock(&s->lock);
    }
    if (ret == 0 && p.new_size) {
        ret = qcow2_truncate(bs, (int64_t)p.new_size, true, PREALLOC_OFF, true, errp);
    }
    if (ret == 0 && p.new_version < s->qcow_version) {
        pthread_mutex_lock(&s->lock);
        ret = downgrade(bs, progress, progress_opaque, errp);
        pthread_mutex_unlock(&s->lock);
    }
    return ret;
}
