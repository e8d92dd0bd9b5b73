/*
 * qcow2-snapshot.c — qcow2 internal snapshots (qemu-img snapshot, convert -l).
 *
 * Spec: QEMU docs/interop/qcow2.txt, "Snapshots".  Supported: the whole
 * snapshot table format, with the extra data fields vm_state_size_large,
 * disk_size and icount (24 bytes, what QEMU 7.2 writes); unknown extra data
 * (up to 1 KiB per entry, QEMU's limit) is kept across table rewrites.
 * Snapshots with VM state are listed and deleted, but we never write VM
 * state ourselves (qemu-img cannot either).
 *
 * Refcount model (the one `check` verifies): a host cluster's refcount is
 * the number of L1 tables (active + each snapshot) through which it is
 * reached, plus one per metadata use.  Creating a snapshot therefore adds
 * one to every L2 table and data cluster the active L1 reaches; QCOW_OFLAG_COPIED
 * marks entries whose target has refcount exactly 1 (writable in place).
 *
 * Write ordering (crash safety as in QEMU): the new L1 copy and the raised
 * refcounts reach the disk before the snapshot table that points to them;
 * the new snapshot table is written and synced before the header points at
 * it, and the old table is freed last.  A crash in between only leaks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2.h"

/* ---- table I/O ---- */

void qcow2_free_snapshots(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);

    for (uint32_t i = 0; s->snapshots && i < s->nb_snapshots; i++) {
        free(s->snapshots[i].id_str);
        free(s->snapshots[i].name);
        free(s->snapshots[i].unknown_extra_data);
    }
    free(s->snapshots);
    s->snapshots = NULL;
    s->nb_snapshots = 0;
}

static int read_bytes(BlockDriverState *bs, uint64_t offset, void *buf, size_t len, Error **errp)
{
    int ret = bfile_pread(bs->file, (int64_t)offset, buf, len);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read snapshot table");
    }
    return ret;
}

/* Read one entry at *offset (8-aligned by the caller) into sn. */
void qcow2_sn_parse_header(const uint8_t *h, QCowSnapshot *sn, uint16_t *id_len, uint16_t *name_len)
{
    sn->l1_table_offset = ld64_be(h);
    sn->l1_size = ld32_be(h + 8);
    *id_len = ld16_be(h + 12);
    *name_len = ld16_be(h + 14);
    sn->date_sec = ld32_be(h + 16);
    sn->date_nsec = ld32_be(h + 20);
    sn->vm_clock_nsec = ld64_be(h + 24);
    sn->vm_state_size = ld32_be(h + 32);
    sn->extra_data_size = ld32_be(h + 36);
}

void qcow2_sn_parse_extra(BlockDriverState *bs, QCowSnapshot *sn, const uint8_t *extra)
{
    if (sn->extra_data_size >= 8) {
        sn->vm_state_size = ld64_be(extra);
    }
    sn->disk_size = sn->extra_data_size >= 16 ? ld64_be(extra + 8) : (uint64_t)bs->total_size;
    sn->icount = sn->extra_data_size >= 24 ? ld64_be(extra + 16) : UINT64_MAX;
}

static int read_one_snapshot(BlockDriverState *bs, QCowSnapshot *sn, int index, uint64_t *offset,
                             Error **errp)
{
    uint8_t h[QCOW2_SN_HEADER_SIZE], extra[QCOW2_SN_EXTRA_KNOWN_SIZE] = {0};
    uint64_t off = *offset;
    int ret = read_bytes(bs, off, h, sizeof(h), errp);
    if (ret < 0) {
        return ret;
    }
    off += sizeof(h);
    uint16_t id_len, name_len;
    qcow2_sn_parse_header(h, sn, &id_len, &name_len);
    if (sn->extra_data_size > QCOW2_SN_MAX_EXTRA_DATA) {
        error_setg(errp, "Too much extra metadata in snapshot table entry %i", index);
        return -EFBIG;
    }
    uint32_t known = MIN(sn->extra_data_size, (uint32_t)QCOW2_SN_EXTRA_KNOWN_SIZE);
    ret = read_bytes(bs, off, extra, known, errp);
    if (ret < 0) {
        return ret;
    }
    off += known;
    qcow2_sn_parse_extra(bs, sn, extra);
    if (sn->extra_data_size > QCOW2_SN_EXTRA_KNOWN_SIZE) {
        size_t unknown = sn->extra_data_size - QCOW2_SN_EXTRA_KNOWN_SIZE;
        sn->unknown_extra_data = xmalloc(unknown);
        ret = read_bytes(bs, off, sn->unknown_extra_data, unknown, errp);
        if (ret < 0) {
            return ret;
        }
        off += unknown;
    }
    sn->id_str = xzalloc((size_t)id_len + 1);
    sn->name = xzalloc((size_t)name_len + 1);
    ret = read_bytes(bs, off, sn->id_str, id_len, errp);
    if (ret == 0) {
        ret = read_bytes(bs, off + id_len, sn->name, name_len, errp);
    }
    *offset = off + id_len + name_len;
    return ret;
}

int qcow2_read_snapshots(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint32_t n = s->nb_snapshots;

    s->snapshots = NULL;
    s->snapshots_size = 0;
    if (n == 0) {
        return 0;
    }
    if (n > QCOW2_MAX_SNAPSHOTS) {
        error_setg(errp, "Snapshot table too large");
        s->nb_snapshots = 0;
        return -EFBIG;
    }
    s->snapshots = XNEWV(QCowSnapshot, n);
    uint64_t offset = s->snapshots_offset, table_len = 0;
    for (uint32_t i = 0; i < n; i++) {
        offset = ROUND_UP(offset, 8);
        table_len = ROUND_UP(table_len, 8);
        uint64_t start = offset;
        int ret = read_one_snapshot(bs, &s->snapshots[i], (int)i, &offset, errp);
        table_len += offset - start;
        if (ret == 0 && table_len > QCOW2_MAX_SNAPSHOTS_SIZE) {
            error_setg(errp, "Snapshot table is too big");
            ret = -EFBIG;
        }
        if (ret < 0) {
            qcow2_free_snapshots(bs);
            s->nb_snapshots = 0;
            return ret;
        }
    }
    s->snapshots_size = (int)(offset - s->snapshots_offset);
    return 0;
}

/* Bytes of the serialised table (no padding after the last entry). */
static int64_t snapshot_table_size(const BDRVQcow2State *s)
{
    uint64_t size = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const QCowSnapshot *sn = &s->snapshots[i];
        size = ROUND_UP(size, 8) + QCOW2_SN_HEADER_SIZE +
               MAX(sn->extra_data_size, QCOW2_SN_EXTRA_KNOWN_SIZE) + strlen(sn->id_str) +
               strlen(sn->name);
        if (size > QCOW2_MAX_SNAPSHOTS_SIZE) {
            return -EFBIG;
        }
    }
    return (int64_t)size;
}

static void serialise_snapshot(const QCowSnapshot *sn, uint8_t *p)
{
    uint32_t extra_size = MAX(sn->extra_data_size, QCOW2_SN_EXTRA_KNOWN_SIZE);
    size_t id_len = strlen(sn->id_str), name_len = strlen(sn->name);

    st64_be(p, sn->l1_table_offset);
    st32_be(p + 8, sn->l1_size);
    st16_be(p + 12, (uint16_t)id_len);
    st16_be(p + 14, (uint16_t)name_len);
    st32_be(p + 16, sn->date_sec);
    st32_be(p + 20, sn->date_nsec);
    st64_be(p + 24, sn->vm_clock_nsec);
    /* a VM state too big for 32 bits reads as "no VM state" to old readers */
    st32_be(p + 32, sn->vm_state_size <= UINT32_MAX ? (uint32_t)sn->vm_state_size : 0);
    st32_be(p + 36, extra_size);
    p += QCOW2_SN_HEADER_SIZE;
    st64_be(p, sn->vm_state_size);
    st64_be(p + 8, sn->disk_size);
    st64_be(p + 16, sn->icount);
    p += QCOW2_SN_EXTRA_KNOWN_SIZE;
    if (extra_size > QCOW2_SN_EXTRA_KNOWN_SIZE) {
        memcpy(p, sn->unknown_extra_data, extra_size - QCOW2_SN_EXTRA_KNOWN_SIZE);
        p += extra_size - QCOW2_SN_EXTRA_KNOWN_SIZE;
    }
    memcpy(p, sn->id_str, id_len);
    memcpy(p + id_len, sn->name, name_len);
}

int qcow2_write_snapshots(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int64_t size = snapshot_table_size(s);
    if (size < 0) {
        return (int)size;
    }
    int64_t table_offset = 0;
    int ret;
    if (size > 0) {
        table_offset = qcow2_alloc_clusters(bs, (uint64_t)size);
        if (table_offset < 0) {
            return (int)table_offset;
        }
        uint8_t *buf = xzalloc((size_t)size);
        size_t pos = 0;
        for (uint32_t i = 0; i < s->nb_snapshots; i++) {
            const QCowSnapshot *sn = &s->snapshots[i];
            pos = ROUND_UP(pos, 8);
            serialise_snapshot(sn, buf + pos);
            pos += QCOW2_SN_HEADER_SIZE + MAX(sn->extra_data_size, QCOW2_SN_EXTRA_KNOWN_SIZE) +
                   strlen(sn->id_str) + strlen(sn->name);
        }
        ret = qcow2_flush_caches(bs);
        if (ret == 0) {
            /* the header does not point here yet: this must be free space */
            ret = qcow2_pre_write_overlap_check(bs, 0, table_offset, size);
        }
        if (ret == 0) {
            ret = bfile_pwrite(bs->file, table_offset, buf, (size_t)size);
        }
        free(buf);
        if (ret == 0) {
            ret = bfile_flush(bs->file);
        }
        if (ret < 0) {
            /* not on an image found corrupt meanwhile: qemu drops it then,
             * and the freeing never reaches the disk */
            if (!s->dead) {
                qcow2_free_clusters(bs, table_offset, size, QCOW2_DISCARD_NEVER);
            }
            return ret;
        }
    }
    /* nb_snapshots and snapshots_offset are adjacent: one write */
    uint8_t hdr[12];
    st32_be(hdr, s->nb_snapshots);
    st64_be(hdr + 4, (uint64_t)table_offset);
    ret = bfile_pwrite(bs->file, QCOW2_HDR_NB_SNAPSHOTS, hdr, sizeof(hdr));
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret < 0) {
        return ret;
    }
    if (s->snapshots_size > 0) {
        qcow2_free_clusters(bs, (int64_t)s->snapshots_offset, s->snapshots_size,
                            QCOW2_DISCARD_SNAPSHOT);
    }
    s->snapshots_offset = (uint64_t)table_offset;
    s->snapshots_size = (int)size;
    return 0;
}

/* ---- refcounts of a whole L1 tree ---- */

/* New refcount-derived entry value: COPIED iff refcount == 1. */
static uint64_t with_copied(uint64_t entry, uint64_t refcount)
{
    entry &= ~QCOW_OFLAG_COPIED;
    return refcount == 1 ? entry | QCOW_OFLAG_COPIED : entry;
}

/* Apply addend to one L2 entry's cluster(s); return its new value. */
static int update_l2_entry_refcount(BlockDriverState *bs, uint64_t entry, int addend,
                                    uint64_t *new_entry)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t refcount = 0;
    int ret;

    switch (qcow2_get_cluster_type(s, entry)) {
    case QCOW2_CLUSTER_COMPRESSED: {
        if (addend != 0) {
            uint64_t coffset, nb;
            qcow2_compressed_desc_decode(s->cluster_bits, entry, &coffset, &nb);
            ret = qcow2_update_refcount(bs, (int64_t)coffset, (int64_t)nb, addend,
                                        QCOW2_DISCARD_SNAPSHOT);
            if (ret < 0) {
                return ret;
            }
        }
        *new_entry = entry & ~QCOW_OFLAG_COPIED; /* never rewritten in place */
        return 0;
    }
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC: {
        uint64_t off = entry & L2E_OFFSET_MASK;
        if (has_data_file(s)) {
            *new_entry = with_copied(entry, 1);
            return 0;
        }
        if (offset_into_cluster(s, (int64_t)off) || off == 0) {
            return qcow2_signal_corruption(bs, true, -1, -1,
                                           "Cluster allocation offset %#" PRIx64 " unaligned", off);
        }
        if (addend != 0) {
            ret = qcow2_update_refcount(bs, (int64_t)off, s->cluster_size, addend,
                                        QCOW2_DISCARD_SNAPSHOT);
            if (ret < 0) {
                return ret;
            }
        }
        ret = qcow2_get_refcount(bs, (int64_t)(off >> s->cluster_bits), &refcount);
        if (ret < 0) {
            return ret;
        }
        *new_entry = with_copied(entry, refcount);
        return 0;
    }
    default: *new_entry = entry & ~QCOW_OFLAG_COPIED; return 0;
    }
}

static int update_l2_table_refcount(BlockDriverState *bs, uint64_t l2_offset, int addend)
{
    BDRVQcow2State *s = qcow2_state(bs);
    void *l2 = NULL;
    int ret = qcow2_cache_get(bs, s->l2_table_cache, l2_offset, &l2);
    if (ret < 0) {
        return ret;
    }
    for (uint32_t j = 0; j < s->l2_size; j++) {
        uint64_t entry = get_l2_entry(s, l2, j), new_entry = entry;
        ret = update_l2_entry_refcount(bs, entry, addend, &new_entry);
        if (ret < 0) {
            break;
        }
        if (new_entry != entry) {
            if (addend > 0) {
                /* raised refcounts must be on disk before L2 drops COPIED */
                qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
            }
            set_l2_entry(s, l2, j, new_entry);
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        }
    }
    qcow2_cache_put(s->l2_table_cache, &l2);
    return ret;
}

int qcow2_update_snapshot_refcount(BlockDriverState *bs, int64_t l1_table_offset, int l1_size,
                                   int addend)
{
    BDRVQcow2State *s = qcow2_state(bs);
    bool active = (uint64_t)l1_table_offset == s->l1_table_offset;
    uint64_t *l1 = s->l1_table;
    bool l1_modified = false;
    int ret = 0;

    if (l1_size < 0 || (size_t)l1_size > QCOW2_MAX_L1_SIZE / 8) {
        return -EFBIG;
    }
    if (!active) {
        l1 = XNEWV(uint64_t, (size_t)l1_size + 1);
        ret = bfile_pread(bs->file, l1_table_offset, l1, (size_t)l1_size * 8);
        if (ret < 0) {
            free(l1);
            return ret;
        }
        for (int i = 0; i < l1_size; i++) {
            l1[i] = ld64_be(&l1[i]);
        }
    }
    for (int i = 0; i < l1_size && ret == 0; i++) {
        uint64_t l2_offset = l1[i] & L1E_OFFSET_MASK, refcount = 0;
        if (!l2_offset) {
            continue;
        }
        if (offset_into_cluster(s, (int64_t)l2_offset)) {
            ret = qcow2_signal_corruption(bs, true, -1, -1,
                                          "L2 table offset %#" PRIx64 " unaligned (L1 index: %#x)",
                                          l2_offset, i);
            break;
        }
        ret = update_l2_table_refcount(bs, l2_offset, addend);
        if (ret == 0 && addend != 0) {
            ret = qcow2_update_refcount(bs, (int64_t)l2_offset, s->cluster_size, addend,
                                        QCOW2_DISCARD_SNAPSHOT);
        }
        if (ret == 0) {
            ret = qcow2_get_refcount(bs, (int64_t)(l2_offset >> s->cluster_bits), &refcount);
        }
        uint64_t new_entry = with_copied(l1[i], refcount);
        if (ret == 0 && new_entry != l1[i]) {
            l1[i] = new_entry;
            l1_modified = true;
        }
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    /* an L1 table about to be deleted (addend < 0) needs no rewrite */
    if (ret == 0 && addend >= 0 && l1_modified) {
        uint64_t *be = XNEWV(uint64_t, (size_t)l1_size);
        for (int i = 0; i < l1_size; i++) {
            st64_be(&be[i], l1[i]);
        }
        ret = bfile_pwrite(bs->file, l1_table_offset, be, (size_t)l1_size * 8);
        if (ret == 0) {
            ret = bfile_flush(bs->file);
        }
        free(be);
    }
    if (!active) {
        free(l1);
    }
    return ret;
}

/* ---- lookups ---- */

static int find_snapshot(const BDRVQcow2State *s, const char *id, const char *name)
{
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const QCowSnapshot *sn = &s->snapshots[i];
        if (id && strcmp(sn->id_str, id) != 0) {
            continue;
        }
        if (name && strcmp(sn->name, name) != 0) {
            continue;
        }
        if (id || name) {
            return (int)i;
        }
    }
    return -ENOENT;
}

/* By id first, then by name (qemu's find_snapshot_by_id_or_name). */
static int find_snapshot_id_or_name(const BDRVQcow2State *s, const char *id_or_name)
{
    int i = find_snapshot(s, id_or_name, NULL);
    return i >= 0 ? i : find_snapshot(s, NULL, id_or_name);
}

/* A snapshot's L1 table location must be sane before we follow it. */
static int validate_snapshot_l1(const BDRVQcow2State *s, const QCowSnapshot *sn, Error **errp)
{
    uint64_t bytes = (uint64_t)sn->l1_size * 8;
    if (sn->l1_size > QCOW2_MAX_L1_SIZE / 8) {
        error_setg(errp, "Snapshot L1 table too large");
        return -EFBIG;
    }
    if ((uint64_t)INT64_MAX - bytes < sn->l1_table_offset ||
        offset_into_cluster(s, (int64_t)sn->l1_table_offset)) {
        error_setg(errp, "Snapshot L1 table offset invalid");
        return -EINVAL;
    }
    return 0;
}

static void new_snapshot_id(const BDRVQcow2State *s, char *buf, size_t len)
{
    unsigned long max = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        unsigned long id = strtoul(s->snapshots[i].id_str, NULL, 10);
        max = MAX(max, id);
    }
    snprintf(buf, len, "%lu", max + 1);
}

/* ---- driver slots ---- */

int qcow2_snapshot_list(BlockDriverState *bs, SnapshotInfo **list)
{
    BDRVQcow2State *s = qcow2_state(bs);
    SnapshotInfo *out = NULL;

    pthread_mutex_lock(&s->lock);
    if (s->nb_snapshots) {
        out = XNEWV(SnapshotInfo, s->nb_snapshots);
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const QCowSnapshot *sn = &s->snapshots[i];
        out[i] = (SnapshotInfo){
            .id_str = xstrdup(sn->id_str),
            .name = xstrdup(sn->name),
            .vm_state_size = sn->vm_state_size,
            .date_sec = sn->date_sec,
            .date_nsec = sn->date_nsec,
            .vm_clock_nsec = sn->vm_clock_nsec,
            .icount = sn->icount,
        };
    }
    int n = (int)s->nb_snapshots;
    pthread_mutex_unlock(&s->lock);
    *list = out;
    return n;
}

/* Copy the active L1 to a new cluster range; returns its offset. */
static int64_t copy_active_l1(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    size_t bytes = (size_t)s->l1_size * 8;
    if (bytes == 0) {
        return 0;
    }
    int64_t off = qcow2_alloc_clusters(bs, bytes);
    if (off < 0) {
        return off;
    }
    uint64_t *be = XNEWV(uint64_t, s->l1_size);
    for (uint32_t i = 0; i < s->l1_size; i++) {
        st64_be(&be[i], s->l1_table[i]);
    }
    int ret = bfile_pwrite(bs->file, off, be, bytes);
    free(be);
    if (ret < 0) {
        qcow2_free_clusters(bs, off, (int64_t)bytes, QCOW2_DISCARD_NEVER);
        return ret;
    }
    return off;
}

static int snapshot_create_locked(BlockDriverState *bs, const SnapshotInfo *info)
{
    BDRVQcow2State *s = qcow2_state(bs);
    char id_buf[32];
    const char *id = info->id_str;

    if (has_data_file(s)) {
        return -ENOTSUP;
    }
    if (s->nb_snapshots >= QCOW2_MAX_SNAPSHOTS) {
        return -EFBIG;
    }
    if (!id || !*id) {
        new_snapshot_id(s, id_buf, sizeof(id_buf));
        id = id_buf;
    }
    if (find_snapshot(s, id, NULL) >= 0) {
        return -EEXIST;
    }
    const char *name = info->name ? info->name : "";
    if (strlen(id) > UINT16_MAX || strlen(name) > UINT16_MAX) {
        return -EINVAL;
    }
    int ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    int64_t l1_offset = copy_active_l1(bs);
    if (l1_offset < 0) {
        return (int)l1_offset;
    }
    ret = qcow2_update_snapshot_refcount(bs, (int64_t)s->l1_table_offset, (int)s->l1_size, 1);
    if (ret < 0) {
        return ret; /* leaks only; check -r repairs */
    }
    QCowSnapshot sn = {
        .l1_table_offset = (uint64_t)l1_offset,
        .l1_size = s->l1_size,
        .id_str = xstrdup(id),
        .name = xstrdup(name),
        .disk_size = (uint64_t)bs->total_size,
        .vm_state_size = info->vm_state_size,
        .date_sec = info->date_sec,
        .date_nsec = info->date_nsec,
        .vm_clock_nsec = info->vm_clock_nsec,
        .icount = info->icount,
        .extra_data_size = QCOW2_SN_EXTRA_KNOWN_SIZE,
    };
    s->snapshots = xrealloc(s->snapshots, sizeof(QCowSnapshot) * (s->nb_snapshots + 1));
    s->snapshots[s->nb_snapshots++] = sn;
    ret = qcow2_write_snapshots(bs);
    if (ret < 0) {
        s->nb_snapshots--;
        free(sn.id_str);
        free(sn.name);
    }
    return ret;
}

int qcow2_snapshot_create(BlockDriverState *bs, const SnapshotInfo *sn, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    int ret = snapshot_create_locked(bs, sn);
    pthread_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not create snapshot '%s'", sn->name ? sn->name : "");
    }
    return ret;
}

/* Remove entry idx from the in-memory table, handing it to *out. */
static void take_snapshot(BDRVQcow2State *s, int idx, QCowSnapshot *out)
{
    *out = s->snapshots[idx];
    memmove(&s->snapshots[idx], &s->snapshots[idx + 1],
            sizeof(QCowSnapshot) * (s->nb_snapshots - (uint32_t)idx - 1));
    s->nb_snapshots--;
}

static int snapshot_delete_locked(BlockDriverState *bs, const char *id, const char *name,
                                  Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int idx = find_snapshot(s, id, name);
    if (idx < 0) {
        error_setg(errp, "Can't find the snapshot");
        return -ENOENT;
    }
    int ret = validate_snapshot_l1(s, &s->snapshots[idx], errp);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to remove snapshot from snapshot list");
        return ret;
    }
    QCowSnapshot sn;
    take_snapshot(s, idx, &sn);
    ret = qcow2_write_snapshots(bs);
    if (ret < 0) {
        /* put it back where it was */
        s->snapshots = xrealloc(s->snapshots, sizeof(QCowSnapshot) * (s->nb_snapshots + 1));
        memmove(&s->snapshots[idx + 1], &s->snapshots[idx],
                sizeof(QCowSnapshot) * (s->nb_snapshots - (uint32_t)idx));
        s->snapshots[idx] = sn;
        s->nb_snapshots++;
        error_setg_errno(errp, -ret, "Failed to remove snapshot from snapshot list");
        return ret;
    }
    free(sn.id_str);
    free(sn.name);
    free(sn.unknown_extra_data);
    /* From here on a failure only leaks clusters. */
    ret = qcow2_update_snapshot_refcount(bs, (int64_t)sn.l1_table_offset, (int)sn.l1_size, -1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to free the cluster and L1 table");
        return ret;
    }
    if (sn.l1_size) {
        qcow2_free_clusters(bs, (int64_t)sn.l1_table_offset, (int64_t)sn.l1_size * 8,
                            QCOW2_DISCARD_SNAPSHOT);
    }
    /* clusters now referenced only by the active layer become COPIED */
    ret = qcow2_update_snapshot_refcount(bs, (int64_t)s->l1_table_offset, (int)s->l1_size, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update snapshot status in disk");
    }
    return ret;
}

int qcow2_snapshot_delete(BlockDriverState *bs, const char *id, const char *name, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    int ret = snapshot_delete_locked(bs, id, name, errp);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* Read a snapshot's L1 into a zeroed table of `entries` (>= its l1_size). */
static uint64_t *read_snapshot_l1(BlockDriverState *bs, const QCowSnapshot *sn, uint32_t entries,
                                  int *ret)
{
    uint64_t *l1 = XNEWV(uint64_t, (size_t)entries + 1);
    *ret = 0;
    if (sn->l1_size) {
        *ret = bfile_pread(bs->file, (int64_t)sn->l1_table_offset, l1, (size_t)sn->l1_size * 8);
    }
    if (*ret < 0) {
        free(l1);
        return NULL;
    }
    return l1; /* big-endian */
}

static int snapshot_goto_locked(BlockDriverState *bs, const char *id_or_name, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int idx = find_snapshot_id_or_name(s, id_or_name);
    if (idx < 0) {
        return -ENOENT;
    }
    QCowSnapshot *sn = &s->snapshots[idx];
    int ret = validate_snapshot_l1(s, sn, errp);
    if (ret < 0) {
        return ret;
    }
    if (sn->disk_size != (uint64_t)bs->total_size) {
        pthread_mutex_unlock(&s->lock);
        ret = qcow2_truncate(bs, (int64_t)sn->disk_size, true, PREALLOC_OFF, true, errp);
        pthread_mutex_lock(&s->lock);
        if (ret < 0) {
            return ret;
        }
        sn = &s->snapshots[idx];
    }
    ret = qcow2_grow_l1_table(bs, sn->l1_size, true);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    uint32_t cur = s->l1_size;
    uint64_t *sn_l1 = read_snapshot_l1(bs, sn, cur, &ret);
    if (!sn_l1) {
        return ret;
    }
    /* reference the snapshot's clusters before the active L1 points at them */
    ret = qcow2_update_snapshot_refcount(bs, (int64_t)sn->l1_table_offset, (int)sn->l1_size, 1);
    if (ret == 0) {
        ret = bfile_pwrite(bs->file, (int64_t)s->l1_table_offset, sn_l1, (size_t)cur * 8);
    }
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret < 0) {
        free(sn_l1);
        return ret;
    }
    /* drop the old active tree (the in-memory L1 still describes it) */
    ret = qcow2_update_snapshot_refcount(bs, (int64_t)s->l1_table_offset, (int)cur, -1);
    for (uint32_t i = 0; i < cur; i++) {
        s->l1_table[i] = ld64_be(&sn_l1[i]);
    }
    free(sn_l1);
    if (ret < 0) {
        return ret;
    }
    return qcow2_update_snapshot_refcount(bs, (int64_t)s->l1_table_offset, (int)cur, 0);
}

int qcow2_snapshot_goto(BlockDriverState *bs, const char *id_or_name, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    Error *local_err = NULL;
    pthread_mutex_lock(&s->lock);
    int ret = snapshot_goto_locked(bs, id_or_name, &local_err);
    pthread_mutex_unlock(&s->lock);
    if (ret < 0) {
        if (local_err) {
            error_propagate(errp, local_err);
        } else {
            error_setg_errno(errp, -ret, "Could not apply snapshot '%s'", id_or_name);
        }
    }
    return ret;
}

int qcow2_snapshot_load_tmp(BlockDriverState *bs, const char *id, const char *name, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    int ret;

    if (!bs->read_only) {
        error_setg(errp, "load an internal snapshot need bs to be read-only");
        return -EINVAL;
    }
    pthread_mutex_lock(&s->lock);
    int idx = find_snapshot(s, id, name);
    if (idx < 0) {
        pthread_mutex_unlock(&s->lock);
        error_setg(errp, "Can't find snapshot");
        return -ENOENT;
    }
    QCowSnapshot *sn = &s->snapshots[idx];
    ret = validate_snapshot_l1(s, sn, errp);
    if (ret < 0) {
        pthread_mutex_unlock(&s->lock);
        return ret;
    }
    uint64_t *l1 = read_snapshot_l1(bs, sn, sn->l1_size, &ret);
    if (!l1) {
        pthread_mutex_unlock(&s->lock);
        error_setg_errno(errp, -ret, "Failed to load l1 table for snapshot");
        return ret;
    }
    for (uint32_t i = 0; i < sn->l1_size; i++) {
        l1[i] = ld64_be(&l1[i]);
    }
    /* the snapshot becomes the (read-only) active layer */
    free(s->l1_table);
    s->l1_table = l1;
    s->l1_size = sn->l1_size;
    s->l1_table_offset = sn->l1_table_offset;
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    /* like QEMU, the guest size stays the active layer's */
    pthread_mutex_unlock(&s->lock);
    return 0;
}
