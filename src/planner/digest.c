/*
 * digest.c — file and directory digests (see digest.h for the formats).
 */
#include "planner/digest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "planner/fsutil.h"

#define DIGEST_BLOCK  (64 * 1024)
#define DIR_DEPTH_MAX 128

static void add_u64(Sha256Ctx *h, uint64_t v)
{
    uint8_t b[8];
    st64_le(b, v);
    sha256_update(h, b, 8);
}

static void stats_add(DigestStats *stats, int64_t files, int64_t bytes)
{
    if (stats) {
        __atomic_add_fetch(&stats->files_hashed, files, __ATOMIC_RELAXED);
        __atomic_add_fetch(&stats->bytes_hashed, bytes, __ATOMIC_RELAXED);
    }
}

/* Hash blocks [from, to) of fd; to is clipped to size. */
static int hash_blocks(int fd, Sha256Ctx *h, uint8_t *buf, off_t from, off_t to, off_t size,
                       int64_t *bytes)
{
    for (off_t off = from; off < to && off < size; off += DIGEST_BLOCK) {
        size_t want = (size_t)MIN((off_t)DIGEST_BLOCK, size - off);
        size_t got = 0;
        while (got < want) {
            ssize_t n = pread(fd, buf + got, want - got, off + (off_t)got);
            if (n <= 0) {
                return n == 0 ? -EIO : -errno;
            }
            got += (size_t)n;
        }
        *bytes += (int64_t)want;
        if (!buffer_is_zero(buf, want)) {
            add_u64(h, (uint64_t)off);
            sha256_update(h, buf, want);
        }
    }
    return 0;
}

static int hash_fd(int fd, off_t size, Sha256 *out, int64_t *bytes)
{
    uint8_t *buf = xmalloc(DIGEST_BLOCK);
    Sha256Ctx *h = sha256_new();
    sha256_update(h, "imgpipe-file-v1", 16);
    add_u64(h, (uint64_t)size);
    int ret = 0;
    for (off_t off = 0; off < size && ret == 0;) {
        off_t data = lseek(fd, off, SEEK_DATA);
        if (data < 0 && errno == ENXIO) {
            break; /* the rest is a hole */
        }
        if (data < 0) {
            data = off; /* SEEK_DATA unsupported: read everything */
        }
        off_t hole = lseek(fd, data, SEEK_HOLE);
        hole = hole <= data ? size : hole;
        /* whole blocks around the extent; off is always block-aligned */
        off_t start = MAX(ROUND_DOWN(data, (off_t)DIGEST_BLOCK), off);
        off_t end = ROUND_UP(hole, (off_t)DIGEST_BLOCK);
        ret = hash_blocks(fd, h, buf, start, end, size, bytes);
        off = end;
    }
    sha256_final(h, out);
    free(buf);
    return ret;
}

int digest_file(const char *path, Sha256 *out, DigestStats *stats, Error **errp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open '%s'", path);
        return -errno;
    }
    struct stat st;
    int ret = fstat(fd, &st) < 0 ? -errno : 0;
    int64_t bytes = 0;
    if (ret == 0) {
        ret = hash_fd(fd, st.st_size, out, &bytes);
    }
    close(fd);
    stats_add(stats, 1, bytes);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "cannot read '%s'", path);
    }
    return ret;
}

/*
 * A regular file, through the fingerprint cache.  A file written within the
 * racy window before we read it (just edited) is hashed a second time once
 * the window has passed, so that the digest we record is one the next build
 * can trust (cache.c, invariant 4) instead of rehashing the file then.
 */
static int digest_regular(Cache *c, const char *abs, const char *rel, const FileFp *fp, Sha256 *out,
                          DigestStats *stats, Error **errp)
{
    if (c && cache_file_lookup(c, rel, fp, out)) {
        return 0;
    }
    int64_t started = wall_clock_ns();
    int ret = digest_file(abs, out, stats, errp);
    FileFp after;
    if (ret < 0 || !c || file_fingerprint(abs, &after) < 0 || !fp_equal(fp, &after)) {
        return ret; /* changed while we read it: do not remember */
    }
    int64_t window = cache_racy_window_ns(c);
    if (fp->mtime_ns + window >= started) {
        int64_t wait = fp->mtime_ns + window + 1000000 - wall_clock_ns();
        if (wait > 0 && wait <= window + 1000000) {
            struct timespec ts = {0, (long)wait};
            nanosleep(&ts, NULL);
        }
        Sha256 again;
        started = wall_clock_ns();
        ret = digest_file(abs, &again, stats, errp);
        if (ret < 0 || file_fingerprint(abs, &after) < 0 || !fp_equal(fp, &after) ||
            !sha256_equal(&again, out)) {
            *out = again;
            return ret; /* still moving: hash it again next time */
        }
    }
    cache_file_note(c, rel, fp, out, started);
    return 0;
}

static int digest_any(Cache *c, const char *abs, const char *rel, int depth, Sha256 *out,
                      DigestStats *stats, Error **errp);

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(const char *abs, char ***out, size_t *n, Error **errp)
{
    DIR *d = opendir(abs);
    *n = 0;
    *out = NULL;
    if (!d) {
        error_setg_errno(errp, errno, "cannot read directory '%s'", abs);
        return -errno;
    }
    char **names = NULL;
    size_t alloc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        if (*n == alloc) {
            alloc = alloc ? 2 * alloc : 16;
            names = xrealloc(names, alloc * sizeof(char *));
        }
        names[(*n)++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (*n) {
        qsort(names, *n, sizeof(char *), cmp_names);
    }
    *out = names;
    return 0;
}

static int digest_dir(Cache *c, const char *abs, const char *rel, int depth, Sha256 *out,
                      DigestStats *stats, Error **errp)
{
    if (depth > DIR_DEPTH_MAX) {
        error_setg(errp, "'%s': directories nested too deeply", abs);
        return -ELOOP;
    }
    size_t n;
    char **names;
    int lret = list_dir(abs, &names, &n, errp);
    if (lret < 0) {
        return lret;
    }
    Sha256Ctx *h = sha256_new();
    sha256_update(h, "imgpipe-dir-v1", 15);
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        char *cabs = xasprintf("%s/%s", abs, names[i]);
        char *crel = xasprintf("%s/%s", rel, names[i]);
        Sha256 d;
        if (ret == 0) {
            ret = digest_any(c, cabs, crel, depth + 1, &d, stats, errp);
        }
        if (ret == 0) {
            sha256_update(h, names[i], strlen(names[i]) + 1);
            sha256_update(h, d.b, sizeof(d.b));
        }
        free(cabs);
        free(crel);
        free(names[i]);
    }
    free(names);
    sha256_final(h, out);
    return ret;
}

/* Digest of one directory entry, prefixed by its type and permission bits. */
static int digest_any(Cache *c, const char *abs, const char *rel, int depth, Sha256 *out,
                      DigestStats *stats, Error **errp)
{
    FileFp fp;
    int ret = file_fingerprint(abs, &fp);
    if (stats) {
        __atomic_add_fetch(&stats->files_statted, 1, __ATOMIC_RELAXED);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "cannot stat '%s'", abs);
        return ret;
    }
    Sha256 content = {{0}};
    char type = '?';
    if (S_ISREG(fp.mode)) {
        type = 'f';
        ret = digest_regular(c, abs, rel, &fp, &content, stats, errp);
    } else if (S_ISDIR(fp.mode)) {
        type = 'd';
        ret = digest_dir(c, abs, rel, depth, &content, stats, errp);
    } else if (S_ISLNK(fp.mode)) {
        char target[4096];
        ssize_t len = readlink(abs, target, sizeof(target));
        type = 'l';
        ret = len < 0 ? -errno : 0;
        if (ret == 0) {
            sha256_buf(target, (size_t)len, &content);
        }
    }
    Sha256Ctx *h = sha256_new();
    char head[32];
    int hl = snprintf(head, sizeof(head), "%c %04o ", type, fp.mode & 07777);
    sha256_update(h, head, (size_t)hl);
    sha256_update(h, content.b, sizeof(content.b));
    sha256_final(h, out);
    return ret;
}

int digest_input(Cache *c, const char *project_dir, const char *rel, Sha256 *out,
                 DigestStats *stats, Error **errp)
{
    char *abs = path_join(project_dir, rel);
    FileFp fp;
    int ret = file_fingerprint(abs, &fp);
    if (ret == 0 && S_ISLNK(fp.mode)) {
        /* A named input is followed (an image symlinked into the project). */
        char *real = realpath(abs, NULL);
        ret = real ? file_fingerprint(real, &fp) : -errno;
        if (real) {
            free(abs);
            abs = real;
        }
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "cannot stat '%s'", rel);
    } else if (S_ISREG(fp.mode)) {
        /* A plain file's digest is its content's: a chmod does not rebuild. */
        ret = digest_regular(c, abs, rel, &fp, out, stats, errp);
    } else {
        ret = digest_any(c, abs, rel, 0, out, stats, errp);
    }
    free(abs);
    return ret;
}
