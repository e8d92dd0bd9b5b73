/*
 * qcow2-check.h — private header of the qcow2 consistency check, shared by
 * qcow2-check.c (the counting walk, refcount comparison, OFLAG_COPIED, the
 * driver entry points), qcow2-check-rebuild.c (rebuilding the refcount
 * structure, amend's refcount width change) and qcow2-check-meta.c (the
 * snapshot table as check reads and repairs it, the metadata overlap check
 * that guards every repair write, qemu-style error lines).
 *
 * Spec: QEMU docs/interop/qcow2.txt; the findings, their order and the
 * repairs follow qemu-img 7.2 (see qcow2-check.c's design notes).
 */
#ifndef IMGPIPE_FORMATS_QCOW2_CHECK_H
#define IMGPIPE_FORMATS_QCOW2_CHECK_H

#include "formats/qcow2.h"

#define CHECK_FRAG_INFO 0x2 /* check_l1() flag: count fragmentation statistics */

/* State of one counting walk over the image. */
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

/* ---- qcow2-check.c ---- */
/* Count one use of every cluster of host range [offset, +size); a range
 * ending a cluster or more past EOF is reported as a corruption instead. */
int qcow2_check_inc_refcounts(CheckCtx *c, int64_t offset, int64_t size);
/* The whole counting walk (header, L1/L2 trees, snapshots, refcount
 * structure, crypto header, bitmaps) into c->rc. */
int qcow2_check_calculate_refcounts(CheckCtx *c, int fix);

/* ---- qcow2-check-rebuild.c: the in-memory refcount array ---- */
/* Bytes of an array covering `clusters` (whole clusters, so that every
 * refblock-sized slice lies inside). */
size_t qcow2_check_rc_bytes(const CheckCtx *c, int64_t clusters);
uint64_t qcow2_check_rc_get(const CheckCtx *c, int64_t cluster);
void qcow2_check_rc_set(CheckCtx *c, int64_t cluster, uint64_t v);
/* Grow (or create) the array to new_nb clusters; -EFBIG past INT_MAX. */
int qcow2_check_rc_resize(CheckCtx *c, int64_t new_nb);
/* -r all: write a new refcount structure from c->rc after the used
 * clusters and switch the image to it (qemu's rebuild_refcount_structure);
 * failures are reported and counted in c->res->check_errors. */
int qcow2_check_rebuild_refcounts(CheckCtx *c);

/* ---- qcow2-check-meta.c ---- */
/* Print an error line as qemu's error_report() does (program prefix). */
void qcow2_check_error(const char *fmt, ...) IMGPIPE_PRINTF(1, 2);

/* Read the snapshot table from the header's pointer, as check mode opens
 * without it: limits, oversized extra data, too many snapshots (dropped
 * with BDRV_FIX_ERRORS), v3 entries without disk size.  Findings in res. */
int qcow2_check_read_snapshot_table(BlockDriverState *bs, BdrvCheckResult *res, int fix);
/* After the refcount check: rewrite the snapshot table if it had findings
 * (BDRV_FIX_ERRORS), which makes them fixed. */
int qcow2_check_fix_snapshot_table(BlockDriverState *bs, BdrvCheckResult *res, int fix);

#endif
