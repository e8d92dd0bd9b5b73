/*
 * qcow2-bitmap-ops.c — what can be done to the persistent dirty bitmaps of
 * a qcow2 image: qemu-img bitmap's actions (the bitmap_op slot), recording
 * guest writes in enabled bitmaps, following a resize, listing them
 * (bitmap_list slot, convert --bitmaps) and measure's "bitmaps size".
 *
 * Spec: QEMU docs/interop/qcow2.txt "Bitmaps"; behaviour and messages are
 * qemu-img 7.2's (block-dirty-bitmap-* QMP commands as qemu-img drives
 * them).  Bits are kept in memory in the on-disk layout (bit i of byte j
 * covers guest chunk 8j + i), one buffer of whole clusters per bitmap;
 * qcow2-bitmap.c loads and stores them.
 *
 * Like QEMU, add/clear/enable/disable/merge change only the in-memory
 * bitmaps (written at close); remove rewrites the directory at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2.h"

#define INCONSISTENT_HINT "\nTry block-dirty-bitmap-remove to delete this bitmap from disk"

static Qcow2BitmapState *bitmap_state(BlockDriverState *bs)
{
    return (Qcow2BitmapState *)qcow2_state(bs)->bitmap_state;
}

static Qcow2Bitmap *find_bitmap(Qcow2BitmapState *st, const char *name)
{
    for (uint32_t i = 0; st && i < st->n; i++) {
        if (!strcmp(st->list[i].name, name)) {
            return &st->list[i];
        }
    }
    return NULL;
}

/* ---- bit ranges ---- */

static uint64_t bitmap_nbits(const Qcow2Bitmap *bm, uint64_t image_size)
{
    uint64_t g = 1ULL << bm->granularity_bits;
    return image_size / g + !!(image_size % g);
}

/* Set bits [first, last] (inclusive, last < nbits). */
static void set_bits(uint8_t *data, uint64_t first, uint64_t last)
{
    while (first <= last && (first & 7)) {
        data[first / 8] |= (uint8_t)(1u << (first & 7));
        first++;
    }
    if (first + 8 <= last + 1) {
        uint64_t nbytes = (last + 1 - first) / 8;
        memset(data + first / 8, 0xff, nbytes);
        first += nbytes * 8;
    }
    while (first <= last) {
        data[first / 8] |= (uint8_t)(1u << (first & 7));
        first++;
    }
}

/* Mark guest bytes [offset, offset + bytes) dirty in bm. */
static void set_range(Qcow2Bitmap *bm, uint64_t image_size, uint64_t offset, uint64_t bytes)
{
    uint64_t nbits = bitmap_nbits(bm, image_size);
    if (!bm->data || bytes == 0 || offset >= image_size) {
        return;
    }
    uint64_t first = offset >> bm->granularity_bits;
    uint64_t last = MIN((offset + bytes - 1) >> bm->granularity_bits, nbits - 1);
    set_bits(bm->data, first, last);
}

static int check_usable(const Qcow2Bitmap *bm, Error **errp)
{
    if (bm->inconsistent) {
        error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used" INCONSISTENT_HINT,
                   bm->name);
        return -EINVAL;
    }
    return 0;
}

/* ---- add ---- */

/* QEMU's constraints on a new bitmap (check_constraints_on_bitmap). */
static int check_constraints(BlockDriverState *bs, const char *name, uint32_t granularity,
                             Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int bits = __builtin_ctz(granularity);
    if (bits > QCOW2_BME_MAX_GRANULARITY_BITS) {
        error_setg(errp, "Granularity exceeds maximum (%llu bytes)",
                   1ULL << QCOW2_BME_MAX_GRANULARITY_BITS);
        return -EINVAL;
    }
    if (bits < QCOW2_BME_MIN_GRANULARITY_BITS) {
        error_setg(errp, "Granularity is under minimum (%llu bytes)",
                   1ULL << QCOW2_BME_MIN_GRANULARITY_BITS);
        return -EINVAL;
    }
    uint64_t bytes = qcow2_bitmap_bytes((uint64_t)bs->total_size, bits);
    if (bytes > QCOW2_BME_MAX_PHYS_SIZE ||
        bytes > (uint64_t)QCOW2_BME_MAX_TABLE_SIZE * s->cluster_size) {
        error_setg(errp, "Too much space will be occupied by the bitmap. Use larger granularity");
        return -EINVAL;
    }
    if (strlen(name) > QCOW2_BME_MAX_NAME_SIZE) {
        error_setg(errp, "Name length exceeds maximum (%u characters)", QCOW2_BME_MAX_NAME_SIZE);
        return -EINVAL;
    }
    return 0;
}

static int can_store_new(BlockDriverState *bs, const char *name, uint32_t granularity, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapState *st = bitmap_state(bs);
    if (find_bitmap(st, name)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return -EEXIST;
    }
    int ret = 0;
    if (s->qcow_version < 3) {
        error_setg(errp, "Cannot store dirty bitmaps in qcow2 v2 files");
        ret = -ENOTSUP;
    } else if ((ret = check_constraints(bs, name, granularity, errp)) < 0) {
        /* message set */
    } else {
        uint64_t dir_size = qcow2_bitmap_dir_entry_size(strlen(name), 0);
        for (uint32_t i = 0; i < st->n; i++) {
            dir_size += qcow2_bitmap_dir_entry_size(strlen(st->list[i].name), 0);
        }
        if (st->n + 1 > QCOW2_MAX_BITMAPS) {
            error_setg(errp, "Maximum number of persistent bitmaps is already reached");
            ret = -EINVAL;
        } else if (dir_size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
            error_setg(errp, "Not enough space in the bitmap directory");
            ret = -EINVAL;
        }
    }
    if (ret < 0) {
        /* qemu-img names the node "#block<N>"; we have no node names */
        error_prepend(errp, "Can't make bitmap '%s' persistent in '#block%03u': ", name,
                      (unsigned)st->n + 100);
    }
    return ret;
}

static int bitmap_add(BlockDriverState *bs, const char *name, uint32_t granularity, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapState *st = bitmap_state(bs);
    if (!name[0]) {
        error_setg(errp, "Bitmap name cannot be empty");
        return -EINVAL;
    }
    int ret = can_store_new(bs, name, granularity, errp);
    if (ret < 0) {
        return ret;
    }
    if (!st->writable) {
        error_setg(errp, "No write access");
        return -EACCES;
    }
    int bits = __builtin_ctz(granularity);
    uint64_t tsize =
        DIV_ROUND_UP(qcow2_bitmap_bytes((uint64_t)bs->total_size, bits), s->cluster_size);
    st->list = xrealloc(st->list, sizeof(*st->list) * (st->n + 1));
    st->list[st->n++] = (Qcow2Bitmap){
        .name = xstrdup(name),
        .granularity_bits = (uint8_t)bits,
        .enabled = true,
        .flags = QCOW2_BME_FLAG_AUTO,
        .data_size = MAX(tsize, 1) * s->cluster_size,
        .data = xzalloc(MAX(tsize, 1) * s->cluster_size),
    };
    return 0;
}

/* ---- remove ---- */

static int bitmap_remove(BlockDriverState *bs, Qcow2Bitmap *bm, Error **errp)
{
    Qcow2BitmapState *st = bitmap_state(bs);
    Qcow2Bitmap gone = *bm;
    uint32_t idx = (uint32_t)(bm - st->list);
    memmove(&st->list[idx], &st->list[idx + 1], sizeof(*bm) * (st->n - idx - 1));
    st->n--;
    if (gone.table_offset) { /* stored: the directory on disk names it */
        int ret = qcow2_bitmap_update_dir(bs);
        if (ret < 0) {
            st->list = xrealloc(st->list, sizeof(*bm) * (st->n + 1));
            memmove(&st->list[idx + 1], &st->list[idx], sizeof(*bm) * (st->n - idx));
            st->list[idx] = gone;
            st->n++;
            error_setg_errno(errp, -ret, "Failed to update bitmap extension");
            return ret;
        }
        qcow2_bitmap_free_clusters(bs, gone.table_offset, gone.table_size);
    }
    free(gone.name);
    free(gone.data);
    return 0;
}

/* ---- merge ---- */

/* OR src's bits (possibly another granularity) into dst. */
static void merge_bits(Qcow2Bitmap *dst, const Qcow2Bitmap *src, uint64_t image_size)
{
    uint64_t nbytes = DIV_ROUND_UP(bitmap_nbits(src, image_size), 8);
    uint64_t g = 1ULL << src->granularity_bits;
    for (uint64_t j = 0; j < nbytes; j++) {
        if (!src->data[j]) {
            continue;
        }
        if (dst->granularity_bits == src->granularity_bits) {
            dst->data[j] |= src->data[j];
            continue;
        }
        for (int b = 0; b < 8; b++) {
            if (src->data[j] & (1u << b)) {
                set_range(dst, image_size, (j * 8 + (uint64_t)b) * g, g);
            }
        }
    }
}

static int bitmap_merge(BlockDriverState *bs, Qcow2Bitmap *dst, BlockDriverState *src_bs,
                        const char *src_name, Error **errp)
{
    if (check_usable(dst, errp) < 0) {
        return -EINVAL;
    }
    if (!src_bs || src_bs->drv != bs->drv) {
        error_setg(errp, "Dirty bitmap '%s' not found", src_name);
        return -ENOENT;
    }
    BDRVQcow2State *ss = qcow2_state(src_bs);
    pthread_mutex_lock(&ss->lock); /* recursive: src_bs may be bs */
    Qcow2Bitmap *src = find_bitmap(bitmap_state(src_bs), src_name);
    int ret = 0;
    if (!src) {
        error_setg(errp, "Dirty bitmap '%s' not found", src_name);
        ret = -ENOENT;
    } else if ((ret = check_usable(src, errp)) == 0) {
        if (src_bs->total_size != bs->total_size) {
            error_setg(errp,
                       "Bitmaps are of different sizes (destination size is %" PRId64
                       ", source size is %" PRId64 ") and can't be merged",
                       bs->total_size, src_bs->total_size);
            ret = -EINVAL;
        } else {
            ret = qcow2_bitmap_load_data(src_bs, src, errp);
        }
    }
    if (ret == 0 && dst->data) {
        merge_bits(dst, src, (uint64_t)bs->total_size);
    }
    pthread_mutex_unlock(&ss->lock);
    return ret;
}

/* ---- the bitmap_op slot ---- */

static int bitmap_op_locked(BlockDriverState *bs, const char *op, const char *name,
                            uint32_t granularity, BlockDriverState *src_bs, const char *src_name,
                            Error **errp)
{
    Qcow2BitmapState *st = bitmap_state(bs);
    if (!strcmp(op, "add")) {
        return bitmap_add(bs, name, granularity, errp);
    }
    Qcow2Bitmap *bm = find_bitmap(st, name);
    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return -ENOENT;
    }
    if (!strcmp(op, "remove")) {
        return bitmap_remove(bs, bm, errp);
    }
    if (!strcmp(op, "merge")) {
        return bitmap_merge(bs, bm, src_bs, src_name, errp);
    }
    if (check_usable(bm, errp) < 0) {
        return -EINVAL;
    }
    if (!strcmp(op, "clear")) {
        if (bm->data) {
            memset(bm->data, 0, bm->data_size);
        }
    } else if (!strcmp(op, "enable") || !strcmp(op, "disable")) {
        bm->enabled = op[0] == 'e';
    } else {
        error_setg(errp, "unknown bitmap operation '%s'", op);
        return -EINVAL;
    }
    return 0;
}

int qcow2_bitmap_op(BlockDriverState *bs, const char *op, const char *name, uint32_t granularity,
                    BlockDriverState *src_bs, const char *src_name, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    int ret = bitmap_op_locked(bs, op, name, granularity, src_bs, src_name, errp);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* ---- guest writes, resize ---- */

void qcow2_bitmaps_set_dirty(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapState *st = bitmap_state(bs);
    if (!st || st->n == 0 || offset < 0 || bytes <= 0) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < st->n; i++) {
        Qcow2Bitmap *bm = &st->list[i];
        if (bm->enabled && !bm->inconsistent) {
            set_range(bm, (uint64_t)bs->total_size, (uint64_t)offset, (uint64_t)bytes);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

int qcow2_truncate_bitmaps_check(BlockDriverState *bs, Error **errp)
{
    Qcow2BitmapState *st = bitmap_state(bs);
    for (uint32_t i = 0; st && i < st->n; i++) {
        if (check_usable(&st->list[i], errp) < 0) {
            return -ENOTSUP;
        }
    }
    return 0;
}

void qcow2_bitmaps_truncate(BlockDriverState *bs, uint64_t new_size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapState *st = bitmap_state(bs);
    for (uint32_t i = 0; st && i < st->n; i++) {
        Qcow2Bitmap *bm = &st->list[i];
        if (!bm->data) {
            continue;
        }
        uint64_t nbits = bitmap_nbits(bm, new_size);
        uint64_t size =
            MAX(DIV_ROUND_UP(DIV_ROUND_UP(nbits, 8), s->cluster_size), 1) * s->cluster_size;
        /* beyond QEMU's limits the store at close refuses it ("too big") */
        if (size > QCOW2_BME_MAX_PHYS_SIZE) {
            size = QCOW2_BME_MAX_PHYS_SIZE;
            nbits = MIN(nbits, size * 8);
        }
        if (size != bm->data_size) {
            bm->data = xrealloc(bm->data, size);
            if (size > bm->data_size) {
                memset(bm->data + bm->data_size, 0, size - bm->data_size);
            }
            bm->data_size = size;
        }
        uint64_t byte = nbits / 8; /* clear bits past the new end */
        if (byte < size) {
            bm->data[byte] &= (uint8_t)((1u << (nbits % 8)) - 1);
            memset(bm->data + byte + 1, 0, size - byte - 1);
        }
    }
}

/* ---- listing, measure ---- */

int qcow2_bitmap_list(BlockDriverState *bs, BdrvBitmapInfo **list, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    (void)errp;
    *list = NULL;
    if (s->qcow_version < 3) {
        return -ENOTSUP;
    }
    pthread_mutex_lock(&s->lock);
    Qcow2BitmapState *st = bitmap_state(bs);
    uint32_t n = st ? st->n : 0;
    BdrvBitmapInfo *out = XNEWV(BdrvBitmapInfo, MAX(n, 1));
    for (uint32_t i = 0; i < n; i++) {
        out[i] = (BdrvBitmapInfo){
            .name = xstrdup(st->list[i].name),
            .granularity = 1U << st->list[i].granularity_bits,
            .enabled = st->list[i].enabled,
            .inconsistent = st->list[i].inconsistent,
        };
    }
    pthread_mutex_unlock(&s->lock);
    *list = out;
    return (int)n;
}

uint64_t qcow2_measure_bitmaps(BlockDriverState *in_bs, uint32_t cluster_size)
{
    BDRVQcow2State *s = qcow2_state(in_bs);
    uint64_t total = 0, dir_size = 0;
    pthread_mutex_lock(&s->lock);
    Qcow2BitmapState *st = bitmap_state(in_bs);
    for (uint32_t i = 0; st && i < st->n; i++) {
        const Qcow2Bitmap *bm = &st->list[i];
        uint64_t bytes = qcow2_bitmap_bytes((uint64_t)in_bs->total_size, bm->granularity_bits);
        uint64_t clusters = DIV_ROUND_UP(bytes, cluster_size);
        /* as if every data cluster were allocated, plus the table */
        total += clusters * cluster_size + ROUND_UP(clusters * 8, (uint64_t)cluster_size);
        dir_size += qcow2_bitmap_dir_entry_size(strlen(bm->name), 0);
    }
    pthread_mutex_unlock(&s->lock);
    return total + ROUND_UP(dir_size, (uint64_t)cluster_size);
}
