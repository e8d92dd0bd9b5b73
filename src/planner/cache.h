/*
 * cache.h — the build cache: what each node was built from and what it
 * produced, and the content digests of input files, in SQLite
 * (`.imgpipe/cache.db` beside the recipe).  Plays the part of ninja's
 * build log and deps log together; the schema is documented in cache.c.
 *
 * Reads come from a snapshot loaded once per command (one query per table),
 * so a no-op build of 10,000 nodes costs two queries; writes go to the
 * database at once, each in its own BEGIN IMMEDIATE transaction, so a
 * killed process leaves either the old row or the new one.
 *
 * Thread-safe: every function takes the cache's mutex.
 */
#ifndef IMGPIPE_PLANNER_CACHE_H
#define IMGPIPE_PLANNER_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "planner/fsutil.h"
#include "planner/sha256.h"

/* Bump when the meaning of stored keys or digests changes: forces rebuilds. */
#define IMGPIPE_CACHE_SCHEMA 1

typedef struct Cache Cache;

/* What the last successful build of a node recorded. */
typedef struct CacheNode {
    char *name;
    Sha256 key;     /* action key the output was built with */
    char *preimage; /* the text hashed into key (for `explain`) */
    char *output;   /* project-relative output path */
    Sha256 digest;  /* content digest of the output */
    FileFp fp;      /* fingerprint of the output when recorded */
    int64_t built_at_ns;
    int64_t duration_ns;
} CacheNode;

/*
 * Open (creating if needed) the cache at path, or an in-memory one for
 * path ":memory:"; WAL mode, busy timeout; loads the snapshot.
 */
int cache_open(const char *path, Cache **out, Error **errp);
void cache_close(Cache *c);

/* The snapshot row for name, or NULL.  Valid until the cache is closed. */
const CacheNode *cache_node(Cache *c, const char *name);
/* Names in the snapshot (for gc); caller frees the array, not the names. */
const char **cache_node_names(Cache *c, size_t *n);
/*
 * Read name's row from the database now (another process may have built
 * it since the snapshot).  *found false if there is none.  Release with
 * cache_node_release().
 */
int cache_node_fresh(Cache *c, const char *name, CacheNode *out, bool *found, Error **errp);
void cache_node_release(CacheNode *row);

/* Insert or replace a node's row (and update the snapshot). */
int cache_record_node(Cache *c, const CacheNode *row, Error **errp);
/* Update only the output fingerprint (a touched but unchanged output). */
int cache_refresh_fp(Cache *c, const char *name, const FileFp *fp, Error **errp);
/* Forget a node (clean/gc). */
int cache_forget_node(Cache *c, const char *name, Error **errp);

/*
 * A file's digest if its fingerprint is unchanged since it was hashed and
 * that hash was not racy (see cache.c, invariant 4).
 */
bool cache_file_lookup(Cache *c, const char *path, const FileFp *fp, Sha256 *digest);
/* Remember a digest computed at hashed_at_ns (written by cache_flush_files). */
void cache_file_note(Cache *c, const char *path, const FileFp *fp, const Sha256 *digest,
                     int64_t hashed_at_ns);
/* The racy window: a digest taken less than this after the file's mtime
 * is not trusted by cache_file_lookup(). */
int64_t cache_racy_window_ns(const Cache *c);
/* Write the noted file digests in one transaction. */
int cache_flush_files(Cache *c, Error **errp);
/* Drop file rows for which keep(path) is false; returns how many via *n_dropped. */
int cache_gc_files(Cache *c, bool (*keep)(void *opaque, const char *path), void *opaque,
                   int *n_dropped, Error **errp);

#endif
