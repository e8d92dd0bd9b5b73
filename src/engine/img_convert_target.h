/*
 * img_convert_target.h — atomic creation of a command's output image
 * (temporary file beside the final name, fsync, rename).  See the .c file
 * for when it falls back to writing in place.
 *
 * Use:
 *   atomic_out_begin(&a, final, true);
 *   create/open/write the image at atomic_out_path(&a);
 *   if (atomic_out_fallback_if_multifile(&a)) create again at the final name;
 *   on success atomic_out_commit(&a, errp), on failure atomic_out_abort(&a);
 *   atomic_out_release(&a).
 */
#ifndef IMGPIPE_ENGINE_IMG_CONVERT_TARGET_H
#define IMGPIPE_ENGINE_IMG_CONVERT_TARGET_H

#include <stdbool.h>

#include "blocklayer/block.h"
#include "common/error.h"

typedef struct AtomicOut {
    char *final; /* the name the user gave */
    char *tmp;   /* temporary file, or NULL when writing in place */
    int wb_fd;   /* for early write-back, -1 until used */
    int64_t wb_done;
    bool durable; /* fsync before the rename (atomic_out_set_durable) */
} AtomicOut;

/* Choose where to write.  allow_atomic false: always in place.  Never fails;
 * returns 0. */
int atomic_out_begin(AtomicOut *a, const char *final, bool allow_atomic);
/* The path to create and write (temporary or final). */
const char *atomic_out_path(const AtomicOut *a);
/*
 * Call right after the format's create(): if it made extra files named
 * after the temporary name, delete them all, switch to in-place mode and
 * return true (the caller creates again at the final name).
 */
bool atomic_out_fallback_if_multifile(AtomicOut *a);
/* Progress hook: every 32 MiB written, ask the kernel to start writing the
 * temporary file back (sync_file_range), so that commit's fsync is short. */
void atomic_out_written(void *opaque, int64_t bytes);
/*
 * Whether the commit makes the image durable (fsync file and directory)
 * before and after the rename.  Follows the target's cache mode: qemu-img
 * convert's default cache=unsafe never waits for the disk, and neither do
 * we then; the rename still guarantees that a killed run leaves nothing
 * under the final name.  Default: durable.
 */
void atomic_out_set_durable(AtomicOut *a, bool durable);
/* fsync the temporary file (when durable), rename it over the final name,
 * fsync the directory.  Refuses (qemu's lock message) if another process
 * holds the final image open for writing.  No-op in place. */
int atomic_out_commit(AtomicOut *a, Error **errp);
/* Remove the temporary file (no-op in place: qemu-img keeps a partial
 * target too). */
void atomic_out_abort(AtomicOut *a);
void atomic_out_release(AtomicOut *a);

#endif
