/*
 * cmds_common.h — what the resize, amend, rebase, commit, snapshot, bench
 * and bitmap commands share beyond qemu_img.h's front-end helpers:
 * qemu-img 7.2's exact number parsing for their options and the
 * backing-chain walks of commit and rebase.
 */
#ifndef IMGPIPE_ENGINE_CMDS_COMMON_H
#define IMGPIPE_ENGINE_CMDS_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "blocklayer/block.h"
#include "common/error.h"

/* ---- argv helpers (front ends print; see qemu_img.h for the rest) ---- */

/*
 * qemu-img's cvtnum_full(): a size with suffixes in [min, max].  On error
 * prints qemu's two-line "Invalid <name> specified. You may use k, M, G..."
 * (also for a leading '-', as qemu_strtosz refuses signs) or "... Must be
 * between MIN and MAX." and returns a negative value.
 */
int64_t cmds_cvtnum(const char *name, const char *value, int64_t min, int64_t max);

/* qemu_strtoul(value, NULL, 0) with the whole string consumed and
 * result <= max; false on any error. */
bool cmds_parse_ulong(const char *value, unsigned long max, unsigned long *out);

/* ---- library helpers shared by commit and rebase ---- */

/*
 * qemu's bdrv_find_backing_image(): the image in bs's backing chain (not bs
 * itself) that `name` designates — either exactly as stored in the layer
 * above it, or, resolved relative to that layer's directory, the same host
 * file (compared by realpath).  NULL if none.
 */
BlockDriverState *cmds_find_backing_image(BlockDriverState *bs, const char *name);

/*
 * Allocation of [offset, +bytes) in the layers from top down to (not
 * including) base: BDRV_BLOCK_* with ALLOCATED set when a layer above base
 * answers (DATA and/or ZERO as that layer says), 0 when the range shows
 * base (or below) through.  A range past the end of a layer above base
 * reads as zero and counts as an allocated zero (qemu's
 * bdrv_is_allocated_above() rule).  *pnum: bytes sharing the answer.
 */
int cmds_status_above(BlockDriverState *top, BlockDriverState *base, int64_t offset, int64_t bytes,
                      int64_t *pnum);

/* Rate limiting for -r: sleep so that `done` bytes since `start_ns` do not
 * exceed `rate` bytes/s (rate 0: no limit). */
void cmds_rate_limit(int64_t start_ns, int64_t done, int64_t rate);

#endif
