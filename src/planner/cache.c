/*
 * cache.c — the build cache in SQLite (see cache.h).
 *
 * Schema (version IMGPIPE_CACHE_SCHEMA, stored in meta):
 *
 *   CREATE TABLE meta  (key TEXT PRIMARY KEY, value TEXT NOT NULL);
 *       -- "schema" = IMGPIPE_CACHE_SCHEMA
 *   CREATE TABLE nodes (
 *       name        TEXT PRIMARY KEY,  -- image name in the recipe
 *       action_key  TEXT NOT NULL,     -- hex SHA-256 of preimage
 *       preimage    TEXT NOT NULL,     -- what was hashed: kind, params, input digests
 *       output      TEXT NOT NULL,     -- project-relative output path
 *       digest      TEXT NOT NULL,     -- hex content digest of the output
 *       size, mtime_ns, ctime_ns, ino, dev, mode INTEGER NOT NULL,
 *                                      -- the output's fingerprint when recorded
 *       built_at_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL);
 *   CREATE TABLE files (
 *       path        TEXT PRIMARY KEY,  -- project-relative input file
 *       digest      TEXT NOT NULL,     -- hex content digest
 *       size, mtime_ns, ctime_ns, ino, dev, mode INTEGER NOT NULL,
 *       hashed_at_ns INTEGER NOT NULL);-- wall clock when hashing began
 *
 * A database with another schema version is dropped and recreated: every
 * node rebuilds once, which is always safe.
 *
 * Design notes — invariants:
 *
 *  1. A nodes row is written only after its output has been published
 *     (fsync'ed and renamed into place), in one BEGIN IMMEDIATE
 *     transaction.  So a row never describes an output that does not
 *     exist; a crash between rename and commit leaves an output newer than
 *     its row, which the next build sees as a fingerprint mismatch, rehashes
 *     and, key or digest differing, rebuilds.
 *  2. The row's digest is of the bytes that were renamed into place, taken
 *     after the rename, under the output's lock; the fingerprint is stat'ed
 *     before hashing.  If the file changes after that, its fingerprint
 *     changes (ctime cannot be set back), so it is rehashed.
 *  3. Readers work from a snapshot taken at open; a step that is about to
 *     run re-reads its row (cache_node_fresh) under its output lock, so two
 *     processes never build the same node twice in a row for nothing.
 *  4. A file digest is trusted only if the file's mtime is older than the
 *     start of its hashing by more than two ticks of the kernel's coarse
 *     clock: otherwise the file may have been written again within the
 *     same timestamp after we read it (git's "racily clean" entries), and
 *     the next build hashes it again.  Outputs are exempt (invariant 2:
 *     nobody but the step writes them before they are hashed).
 *  5. WAL mode and a 60 s busy timeout let two imgpipe processes share the
 *     cache; every write transaction starts with BEGIN IMMEDIATE, so a
 *     writer waits for the lock up front instead of failing to upgrade a
 *     read transaction half way.
 *  6. SQLite does not call the busy handler for a journal-mode change, so
 *     two processes opening a new cache at once could see "database is
 *     locked" from PRAGMA journal_mode=WAL.  Opening (mode, schema,
 *     snapshot) and closing (the last connection's checkpoint) therefore
 *     run under an exclusive flock on PATH.lock, and a foreign connection
 *     (the sqlite3 shell) holding the database is waited for like the busy
 *     timeout would.
 */
#include "planner/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "planner/strmap.h"

typedef struct FileRow {
    Sha256 digest;
    FileFp fp;
    int64_t hashed_at_ns;
} FileRow;

typedef struct PendingFile {
    char *path;
    FileRow row;
} PendingFile;

struct Cache {
    sqlite3 *db;
    pthread_mutex_t lock;
    StrMap nodes; /* name -> CacheNode* */
    StrMap files; /* path -> FileRow* */
    PendingFile *pending;
    size_t n_pending, alloc_pending;
    int64_t racy_ns;
    char *lock_path;
};

#define CACHE_BUSY_TIMEOUT_MS 60000

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, action_key TEXT NOT NULL,"
    " preimage TEXT NOT NULL, output TEXT NOT NULL, digest TEXT NOT NULL,"
    " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
    " ino INTEGER NOT NULL, dev INTEGER NOT NULL, mode INTEGER NOT NULL,"
    " built_at_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, digest TEXT NOT NULL,"
    " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
    " ino INTEGER NOT NULL, dev INTEGER NOT NULL, mode INTEGER NOT NULL,"
    " hashed_at_ns INTEGER NOT NULL);";

static int db_error(Cache *c, Error **errp, const char *what)
{
    error_setg(errp, "cache: %s: %s", what, sqlite3_errmsg(c->db));
    return -EIO;
}

static int exec_sql(Cache *c, const char *sql, Error **errp)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        error_setg(errp, "cache: %s", msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

static int begin(Cache *c, Error **errp)
{
    return exec_sql(c, "BEGIN IMMEDIATE", errp);
}

static int end(Cache *c, int ret, Error **errp)
{
    if (ret == 0) {
        return exec_sql(c, "COMMIT", errp);
    }
    exec_sql(c, "ROLLBACK", NULL);
    return ret;
}

static int schema_version(Cache *c)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key='schema'", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            v = atoi((const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_finalize(st);
    }
    return v;
}

static int init_schema(Cache *c, Error **errp)
{
    if (schema_version(c) == IMGPIPE_CACHE_SCHEMA) {
        return 0; /* the common case: no write transaction at all */
    }
    int ret = begin(c, errp);
    if (ret < 0) {
        return ret;
    }
    ret = exec_sql(c, schema_sql, errp);
    int v = ret == 0 ? schema_version(c) : -1;
    if (ret == 0 && v != IMGPIPE_CACHE_SCHEMA) {
        if (v != -1) {
            ret = exec_sql(c, "DELETE FROM nodes; DELETE FROM files;", errp);
        }
        char *sql =
            xasprintf("INSERT OR REPLACE INTO meta VALUES ('schema', '%d')", IMGPIPE_CACHE_SCHEMA);
        if (ret == 0) {
            ret = exec_sql(c, sql, errp);
        }
        free(sql);
    }
    return end(c, ret, errp);
}

static void fp_from_row(sqlite3_stmt *st, int col, FileFp *fp)
{
    fp->size = sqlite3_column_int64(st, col);
    fp->mtime_ns = sqlite3_column_int64(st, col + 1);
    fp->ctime_ns = sqlite3_column_int64(st, col + 2);
    fp->ino = sqlite3_column_int64(st, col + 3);
    fp->dev = sqlite3_column_int64(st, col + 4);
    fp->mode = (uint32_t)sqlite3_column_int64(st, col + 5);
}

static void fp_bind(sqlite3_stmt *st, int col, const FileFp *fp)
{
    sqlite3_bind_int64(st, col, fp->size);
    sqlite3_bind_int64(st, col + 1, fp->mtime_ns);
    sqlite3_bind_int64(st, col + 2, fp->ctime_ns);
    sqlite3_bind_int64(st, col + 3, fp->ino);
    sqlite3_bind_int64(st, col + 4, fp->dev);
    sqlite3_bind_int64(st, col + 5, fp->mode);
}

static const char *col_text(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? s : "";
}

#define NODE_COLUMNS                                                                        \
    "name, action_key, preimage, output, digest, size, mtime_ns, ctime_ns, ino, dev, mode," \
    " built_at_ns, duration_ns"

static CacheNode *node_from_row(sqlite3_stmt *st)
{
    CacheNode *r = XNEW(CacheNode);
    r->name = xstrdup(col_text(st, 0));
    sha256_from_hex(col_text(st, 1), &r->key);
    r->preimage = xstrdup(col_text(st, 2));
    r->output = xstrdup(col_text(st, 3));
    sha256_from_hex(col_text(st, 4), &r->digest);
    fp_from_row(st, 5, &r->fp);
    r->built_at_ns = sqlite3_column_int64(st, 11);
    r->duration_ns = sqlite3_column_int64(st, 12);
    return r;
}

static void node_free(CacheNode *r)
{
    if (r) {
        cache_node_release(r);
        free(r);
    }
}

static int load_snapshot(Cache *c, Error **errp)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT " NODE_COLUMNS " FROM nodes", -1, &st, NULL) !=
        SQLITE_OK) {
        return db_error(c, errp, "cannot read nodes");
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        CacheNode *r = node_from_row(st);
        node_free(strmap_put(&c->nodes, r->name, r));
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(c->db,
                           "SELECT path, digest, size, mtime_ns, ctime_ns, ino, dev, mode,"
                           " hashed_at_ns FROM files",
                           -1, &st, NULL) != SQLITE_OK) {
        return db_error(c, errp, "cannot read files");
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        FileRow *f = XNEW(FileRow);
        sha256_from_hex(col_text(st, 1), &f->digest);
        fp_from_row(st, 2, &f->fp);
        f->hashed_at_ns = sqlite3_column_int64(st, 8);
        free(strmap_put(&c->files, col_text(st, 0), f));
    }
    sqlite3_finalize(st);
    return 0;
}

static int64_t racy_window_ns(void)
{
    struct timespec res;
    if (clock_getres(CLOCK_REALTIME_COARSE, &res) < 0) {
        return 20000000;
    }
    return 2 * ((int64_t)res.tv_sec * 1000000000 + res.tv_nsec) + 1000000;
}

/* Invariant 6: the open/close lock.  Best effort: without it (read-only
 * directory, no flock) set_wal's retry still copes. */
static int open_lock(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        while (flock(fd, LOCK_EX) < 0 && errno == EINTR) {
        }
    }
    return fd;
}

static void close_lock(int fd)
{
    if (fd >= 0) {
        close(fd); /* releases the flock */
    }
}

/* PRAGMA journal_mode=WAL, retried while the database is busy: SQLite
 * returns SQLITE_BUSY for a mode change without calling the busy handler. */
static int set_wal(Cache *c, Error **errp)
{
    const struct timespec pause = {0, 10 * 1000 * 1000};
    for (int waited_ms = 0;; waited_ms += 10) {
        int rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            break;
        }
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= CACHE_BUSY_TIMEOUT_MS) {
            return db_error(c, errp, "cannot switch to WAL mode");
        }
        nanosleep(&pause, NULL);
    }
    return exec_sql(c, "PRAGMA synchronous=NORMAL", errp);
}

int cache_open(const char *path, Cache **out, Error **errp)
{
    Cache *c = XNEW(Cache);
    pthread_mutex_init(&c->lock, NULL);
    strmap_init(&c->nodes);
    strmap_init(&c->files);
    c->racy_ns = racy_window_ns();
    c->lock_path = xasprintf("%s.lock", path);
    int lock_fd = open_lock(c->lock_path);
    int ret = 0;
    if (sqlite3_open_v2(path, &c->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        error_setg(errp, "cannot open cache '%s': %s", path,
                   c->db ? sqlite3_errmsg(c->db) : "out of memory");
        ret = -EIO;
    }
    if (ret == 0) {
        sqlite3_busy_timeout(c->db, CACHE_BUSY_TIMEOUT_MS);
        ret = set_wal(c, errp);
    }
    if (ret == 0) {
        ret = init_schema(c, errp);
    }
    if (ret == 0) {
        ret = load_snapshot(c, errp);
    }
    close_lock(lock_fd);
    if (ret < 0) {
        error_prepend(errp, "cache '%s': ", path);
        cache_close(c);
        return ret;
    }
    *out = c;
    return 0;
}

void cache_close(Cache *c)
{
    if (!c) {
        return;
    }
    const char *k;
    void *v;
    for (size_t it = 0; strmap_next(&c->nodes, &it, &k, &v);) {
        node_free(v);
    }
    for (size_t it = 0; strmap_next(&c->files, &it, &k, &v);) {
        free(v);
    }
    for (size_t i = 0; i < c->n_pending; i++) {
        free(c->pending[i].path);
    }
    free(c->pending);
    strmap_release(&c->nodes);
    strmap_release(&c->files);
    int lock_fd = open_lock(c->lock_path);
    sqlite3_close(c->db);
    close_lock(lock_fd);
    pthread_mutex_destroy(&c->lock);
    free(c->lock_path);
    free(c);
}

const CacheNode *cache_node(Cache *c, const char *name)
{
    pthread_mutex_lock(&c->lock);
    const CacheNode *r = strmap_get(&c->nodes, name);
    pthread_mutex_unlock(&c->lock);
    return r;
}

const char **cache_node_names(Cache *c, size_t *n)
{
    pthread_mutex_lock(&c->lock);
    const char **names = xcalloc(c->nodes.n + 1, sizeof(char *));
    const char *k;
    void *v;
    *n = 0;
    for (size_t it = 0; strmap_next(&c->nodes, &it, &k, &v);) {
        if (v) {
            names[(*n)++] = ((CacheNode *)v)->name;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return names;
}

void cache_node_release(CacheNode *r)
{
    free(r->name);
    free(r->preimage);
    free(r->output);
    memset(r, 0, sizeof(*r));
}

int cache_node_fresh(Cache *c, const char *name, CacheNode *out, bool *found, Error **errp)
{
    sqlite3_stmt *st;
    int ret = 0;
    *found = false;
    pthread_mutex_lock(&c->lock);
    if (sqlite3_prepare_v2(c->db, "SELECT " NODE_COLUMNS " FROM nodes WHERE name = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        ret = db_error(c, errp, "cannot read nodes");
    } else {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            CacheNode *r = node_from_row(st);
            *out = *r;
            free(r);
            *found = true;
        } else if (rc != SQLITE_DONE) {
            ret = db_error(c, errp, "cannot read nodes");
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

static CacheNode *node_dup(const CacheNode *r)
{
    CacheNode *d = XNEW(CacheNode);
    *d = *r;
    d->name = xstrdup(r->name);
    d->preimage = xstrdup(r->preimage);
    d->output = xstrdup(r->output);
    return d;
}

static int insert_node(Cache *c, const CacheNode *r, Error **errp)
{
    sqlite3_stmt *st;
    char key[SHA256_HEX_LEN + 1], dig[SHA256_HEX_LEN + 1];
    if (sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO nodes (" NODE_COLUMNS
                           ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        return db_error(c, errp, "cannot record node");
    }
    sha256_to_hex(&r->key, key);
    sha256_to_hex(&r->digest, dig);
    sqlite3_bind_text(st, 1, r->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, r->preimage, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, r->output, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, dig, -1, SQLITE_TRANSIENT);
    fp_bind(st, 6, &r->fp);
    sqlite3_bind_int64(st, 12, r->built_at_ns);
    sqlite3_bind_int64(st, 13, r->duration_ns);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_error(c, errp, "cannot record node");
}

int cache_record_node(Cache *c, const CacheNode *row, Error **errp)
{
    pthread_mutex_lock(&c->lock);
    int ret = begin(c, errp);
    if (ret == 0) {
        ret = end(c, insert_node(c, row, errp), errp);
    }
    if (ret == 0) {
        node_free(strmap_put(&c->nodes, row->name, node_dup(row)));
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

int cache_refresh_fp(Cache *c, const char *name, const FileFp *fp, Error **errp)
{
    pthread_mutex_lock(&c->lock);
    CacheNode *r = strmap_get(&c->nodes, name);
    int ret = 0;
    if (r) {
        CacheNode copy = *r;
        copy.fp = *fp;
        ret = begin(c, errp);
        if (ret == 0) {
            ret = end(c, insert_node(c, &copy, errp), errp);
        }
        if (ret == 0) {
            r->fp = *fp;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

int cache_forget_node(Cache *c, const char *name, Error **errp)
{
    sqlite3_stmt *st;
    pthread_mutex_lock(&c->lock);
    int ret = begin(c, errp);
    if (ret == 0) {
        if (sqlite3_prepare_v2(c->db, "DELETE FROM nodes WHERE name = ?", -1, &st, NULL) !=
            SQLITE_OK) {
            ret = db_error(c, errp, "cannot forget node");
        } else {
            sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
            ret = sqlite3_step(st) == SQLITE_DONE ? 0 : db_error(c, errp, "cannot forget node");
            sqlite3_finalize(st);
        }
        ret = end(c, ret, errp);
    }
    if (ret == 0) {
        CacheNode *r = strmap_get(&c->nodes, name);
        if (r) {
            /* keep the map entry (StrMap has no delete) but mark it gone */
            strmap_put(&c->nodes, name, NULL);
            node_free(r);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

bool cache_file_lookup(Cache *c, const char *path, const FileFp *fp, Sha256 *digest)
{
    pthread_mutex_lock(&c->lock);
    FileRow *f = strmap_get(&c->files, path);
    bool hit = f && fp_equal(&f->fp, fp) && fp->mtime_ns + c->racy_ns < f->hashed_at_ns;
    if (hit) {
        *digest = f->digest;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

int64_t cache_racy_window_ns(const Cache *c)
{
    return c->racy_ns;
}

void cache_file_note(Cache *c, const char *path, const FileFp *fp, const Sha256 *digest,
                     int64_t hashed_at_ns)
{
    pthread_mutex_lock(&c->lock);
    if (c->n_pending == c->alloc_pending) {
        c->alloc_pending = c->alloc_pending ? 2 * c->alloc_pending : 16;
        c->pending = xrealloc(c->pending, c->alloc_pending * sizeof(*c->pending));
    }
    PendingFile *p = &c->pending[c->n_pending++];
    p->path = xstrdup(path);
    p->row = (FileRow){*digest, *fp, hashed_at_ns};
    FileRow *f = strmap_get(&c->files, path);
    if (!f) {
        f = XNEW(FileRow);
        strmap_put(&c->files, path, f);
    }
    *f = p->row;
    pthread_mutex_unlock(&c->lock);
}

static int insert_file(Cache *c, sqlite3_stmt *st, const PendingFile *p, Error **errp)
{
    char dig[SHA256_HEX_LEN + 1];
    sha256_to_hex(&p->row.digest, dig);
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, p->path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, dig, -1, SQLITE_TRANSIENT);
    fp_bind(st, 3, &p->row.fp);
    sqlite3_bind_int64(st, 9, p->row.hashed_at_ns);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_error(c, errp, "cannot record file");
}

int cache_flush_files(Cache *c, Error **errp)
{
    pthread_mutex_lock(&c->lock);
    int ret = 0;
    sqlite3_stmt *st = NULL;
    if (c->n_pending) {
        ret = begin(c, errp);
        if (ret == 0 && sqlite3_prepare_v2(c->db,
                                           "INSERT OR REPLACE INTO files VALUES"
                                           " (?,?,?,?,?,?,?,?,?)",
                                           -1, &st, NULL) != SQLITE_OK) {
            ret = end(c, db_error(c, errp, "cannot record file"), errp);
        } else if (ret == 0) {
            for (size_t i = 0; i < c->n_pending && ret == 0; i++) {
                ret = insert_file(c, st, &c->pending[i], errp);
            }
            sqlite3_finalize(st);
            ret = end(c, ret, errp);
        }
    }
    for (size_t i = 0; i < c->n_pending; i++) {
        free(c->pending[i].path);
    }
    c->n_pending = 0;
    pthread_mutex_unlock(&c->lock);
    return ret;
}

int cache_gc_files(Cache *c, bool (*keep)(void *opaque, const char *path), void *opaque,
                   int *n_dropped, Error **errp)
{
    sqlite3_stmt *st;
    const char *k;
    void *v;
    *n_dropped = 0;
    pthread_mutex_lock(&c->lock);
    int ret = begin(c, errp);
    if (ret == 0 &&
        sqlite3_prepare_v2(c->db, "DELETE FROM files WHERE path = ?", -1, &st, NULL) != SQLITE_OK) {
        ret = end(c, db_error(c, errp, "cannot drop file"), errp);
    } else if (ret == 0) {
        for (size_t it = 0; ret == 0 && strmap_next(&c->files, &it, &k, &v);) {
            if (!v || keep(opaque, k)) {
                continue;
            }
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
            ret = sqlite3_step(st) == SQLITE_DONE ? 0 : db_error(c, errp, "cannot drop file");
            (*n_dropped)++;
        }
        sqlite3_finalize(st);
        ret = end(c, ret, errp);
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}
