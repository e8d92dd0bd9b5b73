/*
 * img_common.h — what the qemu-img front ends and commands share: opening
 * images with qemu-img's semantics, the progress meter, cache options.
 */
#ifndef IMGPIPE_ENGINE_IMG_COMMON_H
#define IMGPIPE_ENGINE_IMG_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "blocklayer/block_int.h"
#include "engine/engine.h"

/*
 * Open an image as qemu-img's img_open() does.
 *   image_opts: filename is an option string ("driver=qcow2,file.filename=x").
 *   fmt: -f (NULL: probe).  flags: BDRV_O_*.  cache: -t/-T value or NULL.
 *   force_share: -U (refused with BDRV_O_RDWR, qemu's message).
 * Errors are qemu's ("Could not open 'x': ...").
 */
BlockDriverState *img_open(const char *filename, const char *fmt, bool image_opts, int flags,
                           const char *cache, bool force_share, Error **errp);

/* Parse a cache mode into flags; error text "Invalid cache option: X" with
 * the given prefix ("" or "source "). */
int img_parse_cache(const char *cache, const char *what, int *flags, Error **errp);

/*
 * The merged create-option table for a driver: the driver's own table,
 * then the file protocol's (file_create_opts), as qemu-img merges them.
 * Returns a NULL-terminated array of tables (static storage per driver).
 */
const OptDesc *const *img_create_opt_tables(const BlockDriver *drv);

/*
 * Load an internal snapshot read-only in place of the active layer, for
 * -l SNAPSHOT_PARAM of convert and measure.  param is
 * "snapshot.id=ID,snapshot.name=NAME" (either key may be missing) or a
 * plain ID_OR_NAME (tried as an ID, then as a name).  Errors: qemu's,
 * prefixed "Failed to load snapshot: " except for a malformed param
 * ("Invalid parameter 'K'" + "Failed in parsing snapshot param 'P'").
 */
int img_load_snapshot(BlockDriverState *bs, const char *param, Error **errp);

/* ---- JSON as qemu-img prints QAPI objects ---- */
/*
 * qemu-img 7.2 turns QAPI structs into a QDict and prints that, so object
 * members come out in the QDict's hash-table iteration order, not in
 * declaration order.  Reorder every object in v (recursively) that way:
 * by bucket (qemu's tdb-style string hash modulo 512), and within one bucket
 * the member added last first.  Build v in QAPI declaration order first.
 */
void img_json_qdict_order(JVal *v);
/* Order v as above, print it in qemu's pretty layout plus "\n". */
void img_print_json(FILE *out, JVal *v);

/* ---- progress (qemu-img's "    (NN.NN/100%)\r" meter) ----
 * Process-wide, like qemu-img's: init once per command.  With enabled
 * false it still prints once on SIGUSR1, as qemu-img does. */
void progress_init(bool enabled, float min_skip);
/* Advance by delta percent of a `max`-percent share (qemu_progress_print). */
void progress_print(float delta, int max);
/* Set the absolute position (0..100). */
void progress_set(float percent);
void progress_end(void);
/* An EngineProgress that drives the meter (done/total -> percent). */
EngineProgress progress_engine_hook(void);

#endif
