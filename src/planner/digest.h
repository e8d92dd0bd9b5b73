/*
 * digest.h — content digests of files, directories and outputs.
 *
 * The digest of a file is SHA-256 over a canonical, sparse-friendly stream:
 *
 *   "imgpipe-file-v1\0", size (8 bytes LE),
 *   then for each 64 KiB block that is not all zeros, in order:
 *   offset (8 bytes LE), the block's bytes (the last one may be short).
 *
 * All-zero blocks are implied by their absence, so the digest depends only
 * on the bytes (not on where the file system keeps holes), and a 20 GiB
 * sparse image hashes at the speed of its data, not of its size.
 *
 * A directory's digest covers, recursively and sorted by name, each
 * entry's name, type, permission bits and the digest of its content (a
 * symlink: its target), so a renamed file or a chmod is a change.
 *
 * digest_input() consults the cache's fingerprints first: an unchanged file
 * is not read (see cache.c, invariant 4).
 */
#ifndef IMGPIPE_PLANNER_DIGEST_H
#define IMGPIPE_PLANNER_DIGEST_H

#include <stdint.h>

#include "common/error.h"
#include "planner/cache.h"
#include "planner/sha256.h"

/* What hashing cost: the CLI's `-d stats` and the no-op tests read these. */
typedef struct DigestStats {
    int64_t files_hashed; /* files whose content was read */
    int64_t bytes_hashed; /* bytes read for hashing */
    int64_t files_statted;
} DigestStats;

/* Hash the file at path (absolute) as described above.  Adds to stats. */
int digest_file(const char *path, Sha256 *out, DigestStats *stats, Error **errp);

/*
 * The digest of the project-relative input rel (a file or a directory),
 * reusing cached digests of unchanged files and noting new ones in c.
 */
int digest_input(Cache *c, const char *project_dir, const char *rel, Sha256 *out,
                 DigestStats *stats, Error **errp);

#endif
