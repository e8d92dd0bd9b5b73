/*
 * qcow2-bitmap.c — persistent dirty bitmaps of qcow2: the bitmap directory
 * (decode, validate, encode), loading at open, the IN_USE protocol, storing
 * at close, check's accounting and info's "bitmaps" list.  The operations
 * (add/remove/clear/enable/disable/merge), write tracking, resize and
 * measure live in qcow2-bitmap-ops.c.
 *
 * Spec: QEMU docs/interop/qcow2.txt, "Bitmaps extension", "Bitmap
 * directory", "Bitmap table", "Bitmaps".  Supported: dirty tracking bitmaps
 * (type 1) without extra data — QEMU refuses extra data as well, with the
 * same message — within QEMU's limits (65535 bitmaps, names of 1023 bytes,
 * a 64 MiB directory, granularity 512 B - 2 GiB, 512 MiB of data and 2^27
 * table entries per bitmap).  Error texts are qemu-img 7.2's.
 *
 * Design notes (the IN_USE protocol, as QEMU runs it; observable in the
 * files it leaves):
 *  1. Read-only open: the directory and the table of every consistent
 *     bitmap are validated; data is read only when asked for (merge
 *     source, convert --bitmaps).  Nothing is written.
 *  2. Read-write open: every consistent bitmap's data is loaded, then the
 *     bitmaps are flagged IN_USE in the directory in place.  The autoclear
 *     bit is dropped while the directory is rewritten, so a crash in between
 *     leaves bitmaps that every reader ignores, never a torn directory that
 *     one trusts.
 *  3. Close: every consistent bitmap is written to new clusters with a new
 *     table, then a new directory; the header switches to it; only then are
 *     the old directory, tables and data freed.  A crash before the switch
 *     leaves the old directory with IN_USE set: inconsistent, never wrong.
 *  4. A bitmap found IN_USE at open is inconsistent: listed by info,
 *     removable, counted by check, but never used, stored or rewritten.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2.h"

/* ---- directory entries (pure) ---- */

uint64_t qcow2_bitmap_dir_entry_size(uint64_t name_size, uint64_t extra_data_size)
{
    return ROUND_UP(QCOW2_BME_ENTRY_HEADER_SIZE + name_size + extra_data_size, 8);
}

void qcow2_bitmap_dir_entry_encode(uint8_t *buf, const Qcow2BitmapDirEntry *e, const char *name)
{
    uint64_t size = qcow2_bitmap_dir_entry_size(e->name_size, e->extra_data_size);
    memset(buf, 0, size);
    st64_be(buf, e->table_offset);
    st32_be(buf + 8, e->table_size);
    st32_be(buf + 12, e->flags);
    buf[16] = e->type;
    buf[17] = e->granularity_bits;
    st16_be(buf + 18, e->name_size);
    st32_be(buf + 20, e->extra_data_size);
    /* extra data (none that we write) comes before the name */
    memcpy(buf + QCOW2_BME_ENTRY_HEADER_SIZE + e->extra_data_size, name, e->name_size);
}

void qcow2_bitmap_dir_entry_decode(const uint8_t *buf, Qcow2BitmapDirEntry *e)
{
    e->table_offset = ld64_be(buf);
    e->table_size = ld32_be(buf + 8);
    e->flags = ld32_be(buf + 12);
    e->type = buf[16];
    e->granularity_bits = buf[17];
    e->name_size = ld16_be(buf + 18);
    e->extra_data_size = ld32_be(buf + 20);
}

bool qcow2_bitmap_entry_valid(const Qcow2BitmapDirEntry *e, const Qcow2BitmapGeom *g)
{
    if (e->table_size == 0 || e->table_offset == 0 || e->table_offset % g->cluster_size ||
        e->table_size > QCOW2_BME_MAX_TABLE_SIZE ||
        e->granularity_bits > QCOW2_BME_MAX_GRANULARITY_BITS ||
        e->granularity_bits < QCOW2_BME_MIN_GRANULARITY_BITS ||
        (e->flags & QCOW2_BME_RESERVED_FLAGS) || e->name_size > QCOW2_BME_MAX_NAME_SIZE ||
        e->type != QCOW2_BME_TYPE_DIRTY_TRACKING) {
        return false;
    }
    uint64_t phys = (uint64_t)e->table_size * g->cluster_size;
    if (phys > QCOW2_BME_MAX_PHYS_SIZE) {
        return false;
    }
    /* phys * 8 <= 2^32 and granularity_bits <= 31: no overflow.  A bitmap
     * left IN_USE may be too small (e.g. not saved after a resize). */
    uint64_t covered = (phys * 8) << e->granularity_bits;
    return (e->flags & QCOW2_BME_FLAG_IN_USE) || g->image_size <= covered;
}

void qcow2_bitmap_list_free(Qcow2Bitmap *list, uint32_t n)
{
    for (uint32_t i = 0; list && i < n; i++) {
        free(list[i].name);
        free(list[i].data);
    }
    free(list);
}

uint64_t qcow2_bitmap_bytes(uint64_t size, int granularity_bits)
{
    uint64_t bits = (size >> granularity_bits) + !!(size & ((1ULL << granularity_bits) - 1));
    return DIV_ROUND_UP(bits, 8);
}

/* Append a decoded entry to *list (grown by doubling). */
static void list_append(Qcow2Bitmap **list, uint32_t *n, const Qcow2BitmapDirEntry *e,
                        const uint8_t *name)
{
    if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
        *list = xrealloc(*list, sizeof(**list) * (*n ? *n * 2 : 1));
    }
    Qcow2Bitmap *bm = &(*list)[(*n)++];
    *bm = (Qcow2Bitmap){
        .name = xstrndup((const char *)name, e->name_size),
        .table_offset = e->table_offset,
        .table_size = e->table_size,
        .flags = e->flags,
        .granularity_bits = e->granularity_bits,
        .inconsistent = (e->flags & QCOW2_BME_FLAG_IN_USE) != 0,
        .enabled = (e->flags & QCOW2_BME_FLAG_AUTO) != 0,
    };
}

int qcow2_bitmap_dir_decode(const uint8_t *dir, uint64_t size, uint32_t nb,
                            const Qcow2BitmapGeom *g, Qcow2Bitmap **list, Error **errp)
{
    Qcow2Bitmap *out = NULL;
    uint32_t n = 0;
    uint64_t pos = 0;
    *list = NULL;
    if (size == 0) {
        error_setg(errp, "Requested bitmap directory size is zero");
        return -EINVAL;
    }
    if (size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        error_setg(errp, "Requested bitmap directory size is too big");
        return -EINVAL;
    }
    while (pos < size) {
        Qcow2BitmapDirEntry e;
        if (size - pos < QCOW2_BME_ENTRY_HEADER_SIZE) {
            goto broken;
        }
        if (n >= nb) {
            error_setg(errp, "More bitmaps found than specified in header extension");
            goto fail;
        }
        qcow2_bitmap_dir_entry_decode(dir + pos, &e);
        if (e.extra_data_size != 0) { /* before the size: never sum a huge one */
            error_setg(errp, "Bitmap extra data is not supported");
            goto fail;
        }
        uint64_t esize = qcow2_bitmap_dir_entry_size(e.name_size, 0);
        if (esize > size - pos) {
            goto broken;
        }
        const uint8_t *name = dir + pos + QCOW2_BME_ENTRY_HEADER_SIZE;
        if (!qcow2_bitmap_entry_valid(&e, g)) {
            error_setg(errp, "Bitmap '%.*s' doesn't satisfy the constraints", (int)e.name_size,
                       (const char *)name);
            goto fail;
        }
        list_append(&out, &n, &e, name);
        pos += esize;
    }
    if (n != nb) {
        error_setg(errp, "Less bitmaps found than specified in header extension");
        goto fail;
    }
    *list = out;
    return 0;
broken:
    error_setg(errp, "Broken bitmap directory");
fail:
    qcow2_bitmap_list_free(out, n);
    return -EINVAL;
}

uint8_t *qcow2_bitmap_dir_encode(const Qcow2Bitmap *list, uint32_t n, uint64_t *size)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        total += qcow2_bitmap_dir_entry_size(strlen(list[i].name), 0);
    }
    if (total == 0 || total > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        return NULL;
    }
    uint8_t *dir = xzalloc(total);
    uint64_t pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        Qcow2BitmapDirEntry e = {
            .table_offset = list[i].table_offset,
            .table_size = list[i].table_size,
            .flags = list[i].flags,
            .type = QCOW2_BME_TYPE_DIRTY_TRACKING,
            .granularity_bits = list[i].granularity_bits,
            .name_size = (uint16_t)strlen(list[i].name),
        };
        qcow2_bitmap_dir_entry_encode(dir + pos, &e, list[i].name);
        pos += qcow2_bitmap_dir_entry_size(e.name_size, 0);
    }
    *size = total;
    return dir;
}

/* ---- bitmap tables ---- */

static Qcow2BitmapState *bitmap_state(BlockDriverState *bs)
{
    return (Qcow2BitmapState *)qcow2_state(bs)->bitmap_state;
}

static bool table_entry_valid(uint64_t entry, uint32_t cluster_size)
{
    uint64_t offset = entry & QCOW2_BME_TABLE_OFFSET_MASK;
    if (entry & QCOW2_BME_TABLE_RESERVED_MASK) {
        return false;
    }
    /* with a data cluster, bit 0 ("all ones") is reserved */
    return offset == 0 || (!(entry & QCOW2_BME_TABLE_ALL_ONES) && offset % cluster_size == 0);
}

/*
 * Read a bitmap table (host order) and validate its entries.  table_size
 * comes from a validated entry: at most 512 MiB / 512 B = 2^20 entries.
 */
static int read_table(BlockDriverState *bs, uint64_t offset, uint32_t size, uint64_t **table)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t *t = xmalloc((size_t)size * 8);
    int ret = bfile_pread(bs->file, (int64_t)offset, t, (size_t)size * 8);
    for (uint32_t i = 0; ret == 0 && i < size; i++) {
        t[i] = ld64_be(&t[i]);
        if (!table_entry_valid(t[i], s->cluster_size)) {
            ret = -EINVAL;
        }
    }
    if (ret < 0) {
        free(t);
        return ret;
    }
    *table = t;
    return 0;
}

/* Table entries a consistent bitmap of this image must have. */
static uint64_t needed_table_size(BlockDriverState *bs, int granularity_bits)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t bytes = qcow2_bitmap_bytes((uint64_t)bs->total_size, granularity_bits);
    return DIV_ROUND_UP(bytes, s->cluster_size);
}

/*
 * Walk a table's entries in 64 KiB pieces, only the part inside the file
 * (past EOF the entries read as zero: valid and pointing nowhere), so that
 * hostile tables cost neither memory nor time beyond the file's size.
 * fn returns 0 to go on, or -errno to stop with that value.
 */
typedef int (*TableEntryFn)(void *opaque, uint64_t entry);

static int walk_table(BlockDriverState *bs, uint64_t offset, uint32_t size, TableEntryFn fn,
                      void *opaque)
{
    enum { CHUNK = 8192 };
    int64_t file_len = bfile_getlength(bs->file);
    uint64_t *t = xmalloc(CHUNK * 8);
    int ret = file_len < 0 ? (int)file_len : 0;
    for (uint64_t i = 0; ret == 0 && i < size; i += CHUNK) {
        uint64_t pos = offset + i * 8;
        uint32_t n = (uint32_t)MIN((uint64_t)CHUNK, size - i);
        if (pos >= (uint64_t)file_len) {
            break;
        }
        ret = bfile_pread(bs->file, (int64_t)pos, t, (size_t)n * 8);
        for (uint32_t j = 0; ret == 0 && j < n; j++) {
            ret = fn(opaque, ld64_be(&t[j]));
        }
    }
    free(t);
    return ret;
}

static int entry_check_fn(void *opaque, uint64_t entry)
{
    return table_entry_valid(entry, *(const uint32_t *)opaque) ? 0 : -EINVAL;
}

/* 0 if every entry of the table is valid, else -EINVAL (or an I/O error). */
static int validate_table(BlockDriverState *bs, uint64_t offset, uint32_t size)
{
    uint32_t cluster_size = qcow2_state(bs)->cluster_size;
    return walk_table(bs, offset, size, entry_check_fn, &cluster_size);
}

/* Load a table with QEMU's checks and messages (table entries, then size). */
static int load_table(BlockDriverState *bs, const Qcow2Bitmap *bm, uint64_t **table, Error **errp)
{
    int ret = read_table(bs, bm->table_offset, bm->table_size, table);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read bitmap_table table from image for bitmap '%s'",
                         bm->name);
        return ret;
    }
    if (needed_table_size(bs, bm->granularity_bits) != bm->table_size) {
        free(*table);
        *table = NULL;
        error_setg_errno(errp, EINVAL, "Could not read bitmap '%s' from image", bm->name);
        return -EINVAL;
    }
    return 0;
}

/* Clear the bits past the image end (the last byte and cluster). */
static void clear_tail(const Qcow2Bitmap *bm, uint64_t image_size)
{
    uint64_t g = 1ULL << bm->granularity_bits;
    uint64_t nbits = image_size / g + !!(image_size % g);
    uint64_t byte = nbits / 8;
    if (byte < bm->data_size) {
        bm->data[byte] &= (uint8_t)((1u << (nbits % 8)) - 1);
        memset(bm->data + byte + 1, 0, bm->data_size - byte - 1);
    }
}

int qcow2_bitmap_load_data(BlockDriverState *bs, Qcow2Bitmap *bm, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t *table = NULL;
    if (bm->data || bm->inconsistent) {
        return 0;
    }
    uint64_t size = (uint64_t)bm->table_size * s->cluster_size; /* <= 512 MiB */
    /* QEMU bounds one bitmap (512 MiB) but not their sum: 65535 hostile
     * ones must not exhaust memory, so the data shares the image's
     * metadata budget (IMGPIPE_MAX_METADATA raises it) */
    int ret = bdrv_metadata_reserve(bs, "bitmap data", size, errp);
    if (ret < 0) {
        error_prepend(errp, "Could not read bitmap '%s' from image: ", bm->name);
        return ret;
    }
    ret = load_table(bs, bm, &table, errp);
    if (ret < 0) {
        return ret;
    }
    bm->data_size = size;
    bm->data = xzalloc(bm->data_size);
    for (uint32_t i = 0; ret == 0 && i < bm->table_size; i++) {
        uint64_t off = table[i] & QCOW2_BME_TABLE_OFFSET_MASK;
        uint8_t *chunk = bm->data + (uint64_t)i * s->cluster_size;
        if (off) {
            ret = bfile_pread(bs->file, (int64_t)off, chunk, s->cluster_size);
        } else if (table[i] & QCOW2_BME_TABLE_ALL_ONES) {
            memset(chunk, 0xff, s->cluster_size);
        }
    }
    free(table);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read bitmap '%s' from image", bm->name);
        free(bm->data);
        bm->data = NULL;
        return ret;
    }
    clear_tail(bm, (uint64_t)bs->total_size);
    return 0;
}

void qcow2_bitmap_free_clusters(BlockDriverState *bs, uint64_t table_offset, uint32_t table_size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t *table = NULL;
    if (read_table(bs, table_offset, table_size, &table) < 0) {
        return; /* as QEMU: an unreadable table leaks (check -r finds it) */
    }
    for (uint32_t i = 0; i < table_size; i++) {
        uint64_t off = table[i] & QCOW2_BME_TABLE_OFFSET_MASK;
        if (off) {
            qcow2_free_clusters(bs, (int64_t)off, s->cluster_size, QCOW2_DISCARD_ALWAYS);
        }
    }
    qcow2_free_clusters(bs, (int64_t)table_offset, (int64_t)table_size * 8, QCOW2_DISCARD_OTHER);
    free(table);
}

/* ---- the directory on disk ---- */

static int read_directory(BlockDriverState *bs, Qcow2Bitmap **list, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapGeom g = {s->cluster_size, (uint64_t)bs->total_size};
    uint64_t size = s->bitmap_directory_size;
    if (size == 0 || size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        return qcow2_bitmap_dir_decode(NULL, size, s->nb_bitmaps, &g, list, errp);
    }
    uint8_t *dir = xmalloc(size); /* <= 64 MiB (checked above) */
    int ret = bfile_pread(bs->file, (int64_t)s->bitmap_directory_offset, dir, size);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read bitmap directory");
    } else {
        ret = qcow2_bitmap_dir_decode(dir, size, s->nb_bitmaps, &g, list, errp);
    }
    free(dir);
    return ret;
}

/* Rewrite the directory where it is (same size): flags change only. */
static int write_directory_in_place(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapState *st = bitmap_state(bs);
    uint64_t size = 0;
    uint8_t *dir = qcow2_bitmap_dir_encode(st->list, st->n, &size);
    if (!dir || size != s->bitmap_directory_size) {
        free(dir);
        return -EINVAL;
    }
    /* readers must not trust the directory while it is half-written */
    s->autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
    int ret = qcow2_update_header(bs);
    if (ret == 0) {
        ret = bfile_pwrite(bs->file, (int64_t)s->bitmap_directory_offset, dir, size);
    }
    if (ret == 0) {
        ret = qcow2_update_header(bs);
    }
    if (ret == 0) {
        s->autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
        ret = qcow2_update_header(bs);
    }
    free(dir);
    return ret;
}

int qcow2_bitmap_update_dir(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapState *st = bitmap_state(bs);
    uint64_t old_offset = s->bitmap_directory_offset, old_size = s->bitmap_directory_size;
    uint32_t old_nb = s->nb_bitmaps;
    uint64_t old_autoclear = s->autoclear_features;
    uint64_t new_size = 0;
    int64_t new_offset = 0;
    int ret = 0;
    /* bitmaps added in this session are not on disk yet: not listed */
    Qcow2Bitmap *stored = XNEWV(Qcow2Bitmap, MAX(st->n, 1));
    uint32_t nb = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        if (st->list[i].table_offset) {
            stored[nb++] = st->list[i];
        }
    }
    if (nb > 0) {
        uint8_t *dir = qcow2_bitmap_dir_encode(stored, nb, &new_size);
        free(stored);
        if (!dir) {
            return -EINVAL;
        }
        new_offset = qcow2_alloc_clusters(bs, new_size);
        ret = new_offset < 0 ? (int)new_offset : bfile_pwrite(bs->file, new_offset, dir, new_size);
        free(dir);
        if (ret == 0) {
            ret = qcow2_flush_caches(bs);
        }
        if (ret < 0) {
            goto fail;
        }
        s->autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
    } else {
        free(stored);
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
    }
    s->bitmap_directory_offset = (uint64_t)new_offset;
    s->bitmap_directory_size = new_size;
    s->nb_bitmaps = nb;
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        goto fail;
    }
    if (old_size > 0) {
        qcow2_free_clusters(bs, (int64_t)old_offset, (int64_t)old_size, QCOW2_DISCARD_OTHER);
    }
    return 0;
fail:
    if (new_offset > 0) {
        qcow2_free_clusters(bs, new_offset, (int64_t)new_size, QCOW2_DISCARD_OTHER);
    }
    s->bitmap_directory_offset = old_offset;
    s->bitmap_directory_size = old_size;
    s->nb_bitmaps = old_nb;
    s->autoclear_features = old_autoclear;
    return ret;
}

/* ---- open / close ---- */

/* Read-write open: load the data and flag the consistent bitmaps IN_USE. */
static int mark_in_use(BlockDriverState *bs, Error **errp)
{
    Qcow2BitmapState *st = bitmap_state(bs);
    bool update = false;
    for (uint32_t i = 0; i < st->n; i++) {
        Qcow2Bitmap *bm = &st->list[i];
        if (bm->inconsistent) {
            continue;
        }
        int ret = qcow2_bitmap_load_data(bs, bm, errp);
        if (ret < 0) {
            return ret;
        }
        bm->flags |= QCOW2_BME_FLAG_IN_USE;
        update = true;
    }
    int ret = update ? write_directory_in_place(bs) : 0;
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Can't update bitmap directory");
    }
    return ret;
}

int qcow2_load_bitmaps(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapState *st = XNEW(Qcow2BitmapState);
    *st = (Qcow2BitmapState){.writable = !bs->read_only};
    s->bitmap_state = st;
    if (s->bitmaps_ext_ignored && st->writable) {
        /* as qemu: rewrite the header without the stale extension */
        int ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            return ret;
        }
    }
    if (s->nb_bitmaps == 0) {
        return 0;
    }
    int ret = read_directory(bs, &st->list, errp);
    if (ret < 0) {
        return ret;
    }
    st->n = s->nb_bitmaps;
    for (uint32_t i = 0; i < st->n && ret == 0; i++) {
        const Qcow2Bitmap *bm = &st->list[i];
        if (bm->inconsistent) {
            continue;
        }
        ret = validate_table(bs, bm->table_offset, bm->table_size);
        if (ret < 0) {
            error_setg_errno(errp, -ret,
                             "Could not read bitmap_table table from image for bitmap '%s'",
                             bm->name);
        } else if (needed_table_size(bs, bm->granularity_bits) != bm->table_size) {
            error_setg_errno(errp, EINVAL, "Could not read bitmap '%s' from image", bm->name);
            ret = -EINVAL;
        }
    }
    if (ret == 0 && st->writable) {
        ret = mark_in_use(bs, errp);
    }
    return ret;
}

void qcow2_free_bitmaps(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2BitmapState *st = s->bitmap_state;
    if (st) {
        qcow2_bitmap_list_free(st->list, st->n);
        free(st);
        s->bitmap_state = NULL;
    }
}

/* Write one bitmap's non-zero clusters and a new table; sets its table. */
static int store_one(BlockDriverState *bs, Qcow2Bitmap *bm, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t tsize = needed_table_size(bs, bm->granularity_bits);
    if (tsize > QCOW2_BME_MAX_TABLE_SIZE || tsize * s->cluster_size > QCOW2_BME_MAX_PHYS_SIZE ||
        tsize * s->cluster_size > bm->data_size) {
        error_setg(errp, "Bitmap '%s' is too big", bm->name);
        return -EINVAL;
    }
    uint64_t *table = xcalloc(tsize, 8);
    int ret = 0;
    for (uint64_t i = 0; i < tsize && ret == 0; i++) {
        const uint8_t *chunk = bm->data + i * s->cluster_size;
        if (buffer_is_zero(chunk, s->cluster_size)) {
            continue;
        }
        int64_t off = qcow2_alloc_clusters(bs, s->cluster_size);
        ret = off < 0 ? (int)off : bfile_pwrite(bs->file, off, chunk, s->cluster_size);
        table[i] = off < 0 ? 0 : (uint64_t)off;
    }
    int64_t toff = ret < 0 ? ret : qcow2_alloc_clusters(bs, tsize * 8);
    if (toff >= 0) {
        for (uint64_t i = 0; i < tsize; i++) {
            st64_be(&table[i], table[i]);
        }
        ret = bfile_pwrite(bs->file, toff, table, tsize * 8);
        for (uint64_t i = 0; i < tsize; i++) {
            table[i] = ld64_be(&table[i]);
        }
    } else {
        ret = (int)toff;
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write bitmap '%s' to file", bm->name);
        for (uint64_t i = 0; i < tsize; i++) {
            if (table[i]) {
                qcow2_free_clusters(bs, (int64_t)table[i], s->cluster_size, QCOW2_DISCARD_ALWAYS);
            }
        }
        if (toff > 0) {
            qcow2_free_clusters(bs, toff, (int64_t)tsize * 8, QCOW2_DISCARD_OTHER);
        }
    } else {
        bm->table_offset = (uint64_t)toff;
        bm->table_size = (uint32_t)tsize;
    }
    free(table);
    return ret;
}

/* Where a bitmap was before the store: freed after the switch, or put
 * back if the store fails. */
typedef struct OldPlacement {
    uint64_t table_offset;
    uint32_t table_size;
    uint32_t flags;
} OldPlacement;

static bool stored_at_close(const Qcow2Bitmap *bm)
{
    return !bm->inconsistent && bm->data;
}

/* After the store of bitmaps [0, done): ok frees the old placements, else
 * the new ones are freed and the old restored. */
static void settle_placements(BlockDriverState *bs, const OldPlacement *old, uint32_t done, bool ok)
{
    Qcow2BitmapState *st = bitmap_state(bs);
    for (uint32_t i = 0; i < done; i++) {
        Qcow2Bitmap *bm = &st->list[i];
        if (!stored_at_close(bm)) {
            continue;
        }
        if (ok) {
            if (old[i].table_offset) {
                qcow2_bitmap_free_clusters(bs, old[i].table_offset, old[i].table_size);
            }
            continue;
        }
        if (bm->table_offset && bm->table_offset != old[i].table_offset) {
            qcow2_bitmap_free_clusters(bs, bm->table_offset, bm->table_size);
        }
        bm->table_offset = old[i].table_offset;
        bm->table_size = old[i].table_size;
        bm->flags = old[i].flags;
    }
}

int qcow2_store_bitmaps(BlockDriverState *bs, Error **errp)
{
    Qcow2BitmapState *st = bitmap_state(bs);
    bool need_write = false;
    for (uint32_t i = 0; st && st->writable && i < st->n; i++) {
        need_write |= stored_at_close(&st->list[i]);
    }
    if (!need_write) {
        return 0;
    }
    OldPlacement *old = XNEWV(OldPlacement, st->n);
    int ret = 0;
    uint32_t done = 0;
    for (; done < st->n && ret == 0; done++) {
        Qcow2Bitmap *bm = &st->list[done];
        old[done] = (OldPlacement){bm->table_offset, bm->table_size, bm->flags};
        if (stored_at_close(bm)) {
            ret = store_one(bs, bm, errp);
            bm->flags = bm->enabled ? QCOW2_BME_FLAG_AUTO : 0;
        }
    }
    if (ret == 0) {
        ret = qcow2_bitmap_update_dir(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to update bitmap extension");
        }
    }
    settle_placements(bs, old, done, ret == 0);
    free(old);
    return ret;
}

/* ---- info ---- */

JVal *qcow2_get_bitmap_info_list(BlockDriverState *bs, Error **errp)
{
    Qcow2BitmapState *st = bitmap_state(bs);
    (void)errp;
    if (!st || st->n == 0) {
        return NULL;
    }
    JVal *arr = json_array();
    for (uint32_t i = 0; i < st->n; i++) {
        const Qcow2Bitmap *bm = &st->list[i];
        JVal *o = json_object();
        json_add_str(o, "name", bm->name);
        json_object_add(o, "granularity", json_uint(1ULL << bm->granularity_bits));
        JVal *flags = json_array();
        if (bm->flags & QCOW2_BME_FLAG_IN_USE) {
            json_array_add(flags, json_str("in-use"));
        }
        if (bm->flags & QCOW2_BME_FLAG_AUTO) {
            json_array_add(flags, json_str("auto"));
        }
        json_object_add(o, "flags", flags);
        json_array_add(arr, o);
    }
    return arr;
}

/* ---- check ---- */

typedef struct CountCtx {
    Qcow2CountFn count;
    void *opaque;
    uint32_t cluster_size;
} CountCtx;

static int entry_count_fn(void *opaque, uint64_t entry)
{
    CountCtx *c = opaque;
    uint64_t off = entry & QCOW2_BME_TABLE_OFFSET_MASK;
    return off ? c->count(c->opaque, (int64_t)off, c->cluster_size) : 0;
}

/* Count one bitmap's table and data clusters (table read from disk). */
static int count_bitmap(BlockDriverState *bs, const Qcow2Bitmap *bm, BdrvCheckResult *res,
                        Qcow2CountFn count, void *opaque)
{
    CountCtx c = {count, opaque, qcow2_state(bs)->cluster_size};
    int ret = count(opaque, (int64_t)bm->table_offset, (int64_t)bm->table_size * 8);
    if (ret < 0) {
        return ret;
    }
    ret = validate_table(bs, bm->table_offset, bm->table_size);
    if (ret < 0) {
        res->corruptions++; /* (qemu counts it silently) */
        return ret;
    }
    return walk_table(bs, bm->table_offset, bm->table_size, entry_count_fn, &c);
}

int qcow2_check_bitmaps_refcounts(BlockDriverState *bs, BdrvCheckResult *res, Qcow2CountFn count,
                                  void *opaque)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Qcow2Bitmap *list = NULL;
    if (s->nb_bitmaps == 0) {
        return 0;
    }
    int ret = count(opaque, (int64_t)s->bitmap_directory_offset, (int64_t)s->bitmap_directory_size);
    if (ret < 0) {
        return ret;
    }
    /* what is on disk now, not what this session holds */
    Error *err = NULL;
    ret = read_directory(bs, &list, &err);
    if (ret < 0) {
        msg_report("ERROR %s", error_get_pretty(err));
        error_free(err);
        res->corruptions++;
        return ret;
    }
    for (uint32_t i = 0; i < s->nb_bitmaps && ret == 0; i++) {
        ret = count_bitmap(bs, &list[i], res, count, opaque);
    }
    qcow2_bitmap_list_free(list, s->nb_bitmaps);
    return ret;
}
