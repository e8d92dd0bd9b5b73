/*
 * fsutil.h — paths and files for the planner: project-relative path
 * normalization, stat fingerprints, atomic publication of outputs,
 * reflink/sparse copies.
 *
 * Everything here is plain POSIX (plus Linux's FICLONE/copy_file_range
 * with fallbacks); nothing knows about image formats.
 */
#ifndef IMGPIPE_PLANNER_FSUTIL_H
#define IMGPIPE_PLANNER_FSUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/*
 * Normalize path (relative to the project directory, or absolute inside
 * it) to a project-relative path without "." or ".." components or a
 * trailing '/'.  Fails with -EINVAL if it is empty or lexically outside
 * the project.  Caller frees *out.
 */
int path_normalize_project(const char *project_dir, const char *path, char **out);
/* project_dir + "/" + rel (rel may be absolute: returned as is). */
char *path_join(const char *dir, const char *rel);
/* The relative path from directory from_dir to file to (both project-relative). */
char *path_relative(const char *from_dir, const char *to);
/* Last component ("a/b.img" -> "b.img"); points into path. */
const char *path_basename(const char *path);

/*
 * The identity of a file as stat() sees it.  Equal fingerprints mean "not
 * modified" (git's index rule); any difference forces a rehash.
 */
typedef struct FileFp {
    int64_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;
    int64_t ino;
    int64_t dev;
    uint32_t mode;
} FileFp;

/* lstat() into fp; -errno on failure. */
int file_fingerprint(const char *path, FileFp *fp);
bool fp_equal(const FileFp *a, const FileFp *b);
/* Current wall-clock time in nanoseconds (comparable with mtime_ns). */
int64_t wall_clock_ns(void);

/* mkdir -p of the directory that will contain path. */
int mkdir_parents(const char *path, Error **errp);
int mkdir_p(const char *dir, Error **errp);

/*
 * Copy src to dst (created or truncated): a reflink if the file system can,
 * else an extent-by-extent copy that keeps holes.  dst is fsync'ed.
 */
int file_copy(const char *src, const char *dst, Error **errp);

/*
 * Publish tmp as path: fsync tmp, rename over path, fsync the directory.
 * After success the new content is durable; on failure path is untouched.
 */
int file_publish(const char *tmp, const char *path, Error **errp);

/* Remove a file; missing is not an error. */
int file_remove(const char *path, Error **errp);

/*
 * Remove the temporaries of an output ("<dir>/.<base>.imgpipe-tmp" and the
 * directory "<dir>/.<base>.imgpipe-tmp.d/"), left by a killed build.  Call
 * with the output's lock held.
 */
void remove_stale_temps(const char *path);
/*
 * The temporary to write instead of path.  Its name is deterministic (the
 * output's lock makes it private), because some formats record their own
 * file name (a VMDK descriptor names its extent): with in_subdir the
 * temporary keeps the output's basename, in a directory beside it; without
 * it, it sits beside the output itself, so that relative backing file names
 * resolve the same from both.  in_subdir creates the directory.
 */
char *temp_path_for(const char *path, bool in_subdir);

#endif
