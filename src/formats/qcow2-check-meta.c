/*
 * qcow2-check-meta.c — the parts of qcow2 check that are about metadata
 * other than refcounts: the snapshot table as check reads and repairs it,
 * and the metadata overlap check that guards every repair write.
 *
 * Spec: QEMU docs/interop/qcow2.txt ("Snapshots", "Header").  Behaviour as
 * qemu-img 7.2: an image opened for check skips the snapshot table (so a
 * broken table does not prevent the check); check reads it here from the
 * header's pointer, with the table limits as findings; -r all drops
 * snapshots beyond 65,536, extra data beyond 1 KiB per entry and entries
 * past the 64 MiB table limit, then rewrites the table.
 *
 * Design notes:
 *  1. Entry parsing follows the file, not our idea of it: when an entry's
 *     extra data is cut to 1 KiB, the next entry is still read where the
 *     original size says it starts, and an entry read from garbage is kept
 *     (as qemu does), so that the repaired table qemu-img sees is the same.
 *  2. Every size that sizes an allocation is bounded first: the entry count
 *     (<= 65,536), extra data (<= 1 KiB, or cut to it), id and name
 *     (16-bit lengths), the table (<= 64 MiB).
 *  3. The overlap check is qemu's default "cached" mode: header, active L1
 *     and L2 tables, refcount table and blocks, snapshot table, snapshot L1
 *     tables, bitmap directory.  A hit is a fatal corruption: the image is
 *     marked corrupt and the repair stops, exactly where qemu's does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2-check.h"

void qcow2_check_error(const char *fmt, ...)
{
    /* qemu prints these through error_report(), with the program name;
     * ours is "imgpipe" (see src/engine/qemu_img.c) */
    va_list ap;
    va_start(ap, fmt);
    char *text = xvasprintf(fmt, ap);
    va_end(ap);
    msg_report("imgpipe: %s", text);
    free(text);
}

/* ---- metadata overlap check ---- */

static bool overlaps(int64_t a, int64_t a_size, uint64_t b, uint64_t b_size)
{
    if (b_size == 0) {
        return false;
    }
    uint64_t b_end;
    if (ADD_OVERFLOW(b, b_size, &b_end)) {
        b_end = UINT64_MAX;
    }
    return (uint64_t)a < b_end && b < (uint64_t)a + (uint64_t)a_size;
}

/* The first kind of metadata (qemu's order) that [offset, +size) hits. */
static int metadata_overlap(const BDRVQcow2State *s, int chk, int64_t offset, int64_t size)
{
    if ((chk & QCOW2_OL_MAIN_HEADER) && offset < (int64_t)s->cluster_size) {
        return QCOW2_OL_MAIN_HEADER;
    }
    /* whole clusters, as qemu compares them */
    size = (int64_t)ROUND_UP((uint64_t)offset_into_cluster(s, offset) + (uint64_t)size,
                             (uint64_t)s->cluster_size);
    offset -= offset_into_cluster(s, offset);
    if ((chk & QCOW2_OL_ACTIVE_L1) &&
        overlaps(offset, size, s->l1_table_offset, (uint64_t)s->l1_size * 8)) {
        return QCOW2_OL_ACTIVE_L1;
    }
    if ((chk & QCOW2_OL_REFCOUNT_TABLE) &&
        overlaps(offset, size, s->refcount_table_offset, (uint64_t)s->refcount_table_size * 8)) {
        return QCOW2_OL_REFCOUNT_TABLE;
    }
    if ((chk & QCOW2_OL_SNAPSHOT_TABLE) &&
        overlaps(offset, size, s->snapshots_offset, (uint64_t)s->snapshots_size)) {
        return QCOW2_OL_SNAPSHOT_TABLE;
    }
    for (uint32_t i = 0; (chk & QCOW2_OL_INACTIVE_L1) && s->snapshots && i < s->nb_snapshots; i++) {
        const QCowSnapshot *sn = &s->snapshots[i];
        if (overlaps(offset, size, sn->l1_table_offset, (uint64_t)sn->l1_size * 8)) {
            return QCOW2_OL_INACTIVE_L1;
        }
    }
    for (uint32_t i = 0; (chk & QCOW2_OL_ACTIVE_L2) && s->l1_table && i < s->l1_size; i++) {
        if (overlaps(offset, size, s->l1_table[i] & L1E_OFFSET_MASK, s->cluster_size)) {
            return QCOW2_OL_ACTIVE_L2;
        }
    }
    for (uint32_t i = 0;
         (chk & QCOW2_OL_REFCOUNT_BLOCK) && s->refcount_table && i < s->refcount_table_size; i++) {
        if (overlaps(offset, size, s->refcount_table[i] & REFT_OFFSET_MASK, s->cluster_size)) {
            return QCOW2_OL_REFCOUNT_BLOCK;
        }
    }
    if ((chk & QCOW2_OL_BITMAP_DIRECTORY) && (s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) &&
        overlaps(offset, size, s->bitmap_directory_offset, s->bitmap_directory_size)) {
        return QCOW2_OL_BITMAP_DIRECTORY;
    }
    return 0;
}

static const char *overlap_name(int kind)
{
    switch (kind) {
    case QCOW2_OL_MAIN_HEADER: return "qcow2_header";
    case QCOW2_OL_ACTIVE_L1: return "active L1 table";
    case QCOW2_OL_ACTIVE_L2: return "active L2 table";
    case QCOW2_OL_REFCOUNT_TABLE: return "refcount table";
    case QCOW2_OL_REFCOUNT_BLOCK: return "refcount block";
    case QCOW2_OL_SNAPSHOT_TABLE: return "snapshot table";
    case QCOW2_OL_INACTIVE_L1: return "inactive L1 table";
    case QCOW2_OL_INACTIVE_L2: return "inactive L2 table";
    default: return "bitmap directory";
    }
}

int qcow2_pre_write_overlap_check(BlockDriverState *bs, int ign, int64_t offset, int64_t size)
{
    BDRVQcow2State *s = qcow2_state(bs);
    const int cached = 0x1ff & ~QCOW2_OL_INACTIVE_L2;
    if (size <= 0) {
        return 0;
    }
    int kind = metadata_overlap(s, cached & ~ign, offset, size);
    if (!kind) {
        return 0;
    }
    return qcow2_signal_corruption(bs, true, offset, size,
                                   "Preventing invalid write on metadata (overlaps with %s)",
                                   overlap_name(kind));
}

/* ---- reading the snapshot table in check mode ---- */

/* What one table read found (qemu's do_read_snapshots out-parameters). */
typedef struct SnapRead {
    bool repair;
    int nb_reduced;    /* entries dropped because the table is too big */
    int extra_dropped; /* entries whose extra data was cut to 1 KiB */
    char hint[96];     /* second line of a failure, or "" */
} SnapRead;

static int sn_read(BlockDriverState *bs, uint64_t offset, void *buf, size_t len, Error **errp)
{
    int ret = bfile_pread(bs->file, (int64_t)offset, buf, len);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read snapshot table");
    }
    return ret;
}

/* The known extra data fields; a short entry keeps the defaults. */
/* One entry at *offset (8-aligned); *offset moves past it, *table_len
 * grows by its size as it will be rewritten. */
static int sn_read_entry(BlockDriverState *bs, QCowSnapshot *sn, int i, uint64_t *offset,
                         uint64_t *table_len, SnapRead *r, Error **errp)
{
    uint8_t h[QCOW2_SN_HEADER_SIZE], extra[QCOW2_SN_EXTRA_KNOWN_SIZE] = {0};
    int ret = sn_read(bs, *offset, h, sizeof(h), errp);
    if (ret < 0) {
        return ret;
    }
    *offset += sizeof(h);
    uint16_t id_len, name_len;
    qcow2_sn_parse_header(h, sn, &id_len, &name_len);
    bool cut = false;
    if (sn->extra_data_size > QCOW2_SN_MAX_EXTRA_DATA) {
        if (!r->repair) {
            error_setg(errp, "Too much extra metadata in snapshot table entry %i", i);
            snprintf(r->hint, sizeof(r->hint),
                     "You can force-remove this extra metadata with qemu-img check -r all");
            return -EFBIG;
        }
        msg_report("Discarding too much extra metadata in snapshot table entry %i (%" PRIu32
                   " > %u)",
                   i, sn->extra_data_size, QCOW2_SN_MAX_EXTRA_DATA);
        r->extra_dropped++;
        cut = true;
    }
    uint32_t known = MIN(sn->extra_data_size, (uint32_t)QCOW2_SN_EXTRA_KNOWN_SIZE);
    ret = sn_read(bs, *offset, extra, known, errp);
    if (ret < 0) {
        return ret;
    }
    *offset += known;
    qcow2_sn_parse_extra(bs, sn, extra);
    if (sn->extra_data_size > QCOW2_SN_EXTRA_KNOWN_SIZE) {
        /* the next field starts after the extra data as stored, even if cut */
        uint64_t end = *offset + sn->extra_data_size - QCOW2_SN_EXTRA_KNOWN_SIZE;
        if (cut) {
            sn->extra_data_size = QCOW2_SN_MAX_EXTRA_DATA;
        }
        size_t unknown = sn->extra_data_size - QCOW2_SN_EXTRA_KNOWN_SIZE; /* <= 1000 */
        sn->unknown_extra_data = xmalloc(unknown);
        ret = sn_read(bs, *offset, sn->unknown_extra_data, unknown, errp);
        if (ret < 0) {
            return ret;
        }
        *offset = end;
    }
    sn->id_str = xzalloc((size_t)id_len + 1);
    sn->name = xzalloc((size_t)name_len + 1);
    ret = sn_read(bs, *offset, sn->id_str, id_len, errp);
    if (ret == 0) {
        ret = sn_read(bs, *offset + id_len, sn->name, name_len, errp);
    }
    *offset += (uint64_t)id_len + name_len;
    *table_len += QCOW2_SN_HEADER_SIZE + sn->extra_data_size + (uint64_t)id_len + name_len;
    return ret;
}

static void free_snapshot_entry(QCowSnapshot *sn)
{
    free(sn->id_str);
    free(sn->name);
    free(sn->unknown_extra_data);
    memset(sn, 0, sizeof(*sn));
}

/* qemu's qcow2_do_read_snapshots() with its repair mode. */
static int read_table(BlockDriverState *bs, SnapRead *r, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    s->snapshots_size = 0;
    if (!s->nb_snapshots) {
        return 0;
    }
    s->snapshots = XNEWV(QCowSnapshot, s->nb_snapshots); /* <= 65,536 entries */
    uint64_t offset = s->snapshots_offset, table_len = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        uint64_t entry_start = offset;
        offset = ROUND_UP(offset, 8);
        table_len = ROUND_UP(table_len, 8);
        int ret = sn_read_entry(bs, &s->snapshots[i], (int)i, &offset, &table_len, r, errp);
        if (ret < 0) {
            return ret;
        }
        if (table_len <= QCOW2_MAX_SNAPSHOTS_SIZE && offset - s->snapshots_offset <= INT32_MAX) {
            continue;
        }
        if (!r->repair) {
            error_setg(errp, "Snapshot table is too big");
            snprintf(r->hint, sizeof(r->hint),
                     "You can force-remove all %u overhanging snapshots with qemu-img check -r all",
                     s->nb_snapshots - i);
            return -EFBIG;
        }
        msg_report("Discarding %u overhanging snapshots (snapshot table is too big)",
                   s->nb_snapshots - i);
        r->nb_reduced += (int)(s->nb_snapshots - i);
        for (uint32_t j = i; j < s->nb_snapshots; j++) {
            free_snapshot_entry(&s->snapshots[j]);
        }
        s->nb_snapshots = i;
        offset = entry_start;
        break;
    }
    s->snapshots_size = (int)(offset - s->snapshots_offset);
    return 0;
}

/* The table must lie in the file's addressable range, cluster aligned. */
static int validate_table(const BDRVQcow2State *s, BdrvCheckResult *res)
{
    const char *why = NULL;
    int ret = 0;
    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        why = "snapshot table too large";
        ret = -EFBIG;
    } else if ((uint64_t)INT64_MAX - (uint64_t)s->nb_snapshots * QCOW2_SN_HEADER_SIZE <
                   s->snapshots_offset ||
               offset_into_cluster(s, (int64_t)(s->snapshots_offset & INT64_MAX)) != 0) {
        why = "snapshot table offset invalid";
        ret = -EINVAL;
    }
    if (ret < 0) {
        res->check_errors++;
        qcow2_check_error("ERROR %s", why);
        if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
            msg_report("You can force-remove all %u overhanging snapshots with qemu-img check "
                       "-r all",
                       s->nb_snapshots - QCOW2_MAX_SNAPSHOTS);
        }
    }
    return ret;
}

/* Forget the table (it could not be read): nothing refers to it then. */
static void drop_table(BDRVQcow2State *s)
{
    qcow2_free_snapshots(s->bs);
    s->snapshots_offset = 0;
    s->snapshots_size = 0;
}

static int write_snapshot_count(BlockDriverState *bs, BdrvCheckResult *res)
{
    uint8_t be[4];
    st32_be(be, qcow2_state(bs)->nb_snapshots);
    int ret = bfile_pwrite(bs->file, QCOW2_HDR_NB_SNAPSHOTS, be, sizeof(be));
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret < 0) {
        res->check_errors++;
        msg_report("ERROR failed to update the snapshot count in the image header: %s",
                   strerror(-ret));
    }
    return ret;
}

int qcow2_check_read_snapshot_table(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint8_t ptr[12]; /* nb_snapshots, snapshots_offset: adjacent in the header */
    int ret = bfile_pread(bs->file, QCOW2_HDR_NB_SNAPSHOTS, ptr, sizeof(ptr));
    if (ret < 0) {
        res->check_errors++;
        msg_report("ERROR failed to read the snapshot table pointer from the image header: %s",
                   strerror(-ret));
        return ret;
    }
    qcow2_free_snapshots(bs);
    s->nb_snapshots = ld32_be(ptr);
    s->snapshots_offset = ld64_be(ptr + 4);
    SnapRead r = {.repair = (fix & BDRV_FIX_ERRORS) != 0};
    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS && r.repair) {
        /* dropped like entries past the table size limit: the header count
         * is rewritten below */
        msg_report("Discarding %u overhanging snapshots", s->nb_snapshots - QCOW2_MAX_SNAPSHOTS);
        r.nb_reduced = (int)(s->nb_snapshots - QCOW2_MAX_SNAPSHOTS);
        s->nb_snapshots = QCOW2_MAX_SNAPSHOTS;
    }
    ret = validate_table(s, res);
    if (ret < 0) {
        drop_table(s);
        return ret;
    }

    Error *err = NULL;
    ret = read_table(bs, &r, &err);
    if (ret < 0) {
        res->check_errors++;
        qcow2_check_error("ERROR failed to read the snapshot table: %s", error_get_pretty(err));
        if (r.hint[0]) {
            msg_report("%s", r.hint);
        }
        error_free(err);
        drop_table(s);
        return ret;
    }
    res->corruptions += r.nb_reduced + r.extra_dropped;
    if (r.nb_reduced) {
        /* the refcount walk must see the header's count; what the dropped
         * entries used becomes leaks that it fixes */
        ret = write_snapshot_count(bs, res);
        if (ret < 0) {
            return ret;
        }
        res->corruptions_fixed += r.nb_reduced;
        res->corruptions -= r.nb_reduced;
    }
    /* version 3 entries must carry the disk size */
    for (uint32_t i = 0; s->qcow_version >= 3 && i < s->nb_snapshots; i++) {
        if (s->snapshots[i].extra_data_size < 16) {
            res->corruptions++;
            msg_report("%s snapshot table entry %u is incomplete",
                       fix & BDRV_FIX_ERRORS ? "Repairing" : "ERROR", i);
        }
    }
    return 0;
}

int qcow2_check_fix_snapshot_table(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (!res->corruptions || !(fix & BDRV_FIX_ERRORS)) {
        return 0;
    }
    int ret = qcow2_write_snapshots(bs);
    if (ret < 0) {
        res->check_errors++;
        msg_report("ERROR failed to update snapshot table: %s", strerror(-ret));
        return ret;
    }
    /* what was written is complete: every entry got the known extra data */
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        s->snapshots[i].extra_data_size =
            MAX(s->snapshots[i].extra_data_size, (uint32_t)QCOW2_SN_EXTRA_KNOWN_SIZE);
    }
    res->corruptions_fixed += res->corruptions;
    res->corruptions = 0;
    return 0;
}
