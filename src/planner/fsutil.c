/*
 * fsutil.c — paths, fingerprints, atomic publication, copies (see fsutil.h).
 */
#include "planner/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

/* Split path into components, resolving "." and "..".  -EINVAL if ".."
 * climbs above the start. */
static int push_components(char **parts, size_t *n, char *path)
{
    for (char *save = NULL, *c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0) {
            continue;
        }
        if (strcmp(c, "..") == 0) {
            if (*n == 0) {
                return -EINVAL;
            }
            (*n)--;
            continue;
        }
        parts[(*n)++] = c;
    }
    return 0;
}

int path_normalize_project(const char *project_dir, const char *path, char **out)
{
    size_t plen = strlen(project_dir);
    const char *rel = path;
    if (path[0] == '/') {
        if (strncmp(path, project_dir, plen) != 0 || (path[plen] != '/' && path[plen])) {
            return -EINVAL;
        }
        rel = path + plen;
    }
    char *copy = xstrdup(rel);
    char **parts = xcalloc(strlen(copy) + 1, sizeof(char *));
    size_t n = 0;
    int ret = push_components(parts, &n, copy);
    if (ret == 0 && n == 0) {
        ret = -EINVAL;
    }
    if (ret == 0) {
        StrBuf sb = STRBUF_INIT;
        for (size_t i = 0; i < n; i++) {
            sb_add(&sb, i ? "/" : "");
            sb_add(&sb, parts[i]);
        }
        *out = sb_detach(&sb);
    }
    free(parts);
    free(copy);
    return ret;
}

char *path_join(const char *dir, const char *rel)
{
    if (rel[0] == '/') {
        return xstrdup(rel);
    }
    return xasprintf("%s/%s", dir, rel);
}

const char *path_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Number of components of a normalized relative path ("." or "" is 0). */
static size_t count_components(const char *p)
{
    if (!p[0] || strcmp(p, ".") == 0) {
        return 0;
    }
    size_t n = 1;
    for (; *p; p++) {
        n += *p == '/';
    }
    return n;
}

char *path_relative(const char *from_dir, const char *to)
{
    size_t n_from = count_components(from_dir);
    size_t common = 0; /* components shared */
    const char *f = from_dir, *t = to;
    while (common < n_from) {
        size_t lf = strcspn(f, "/"), lt = strcspn(t, "/");
        if (lf != lt || memcmp(f, t, lf) != 0 || !t[lt]) {
            break;
        }
        common++;
        f += lf + (f[lf] == '/');
        t += lt + 1;
    }
    StrBuf sb = STRBUF_INIT;
    for (size_t i = common; i < n_from; i++) {
        sb_add(&sb, "../");
    }
    sb_add(&sb, t);
    return sb_detach(&sb);
}

int file_fingerprint(const char *path, FileFp *fp)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        return -errno;
    }
    fp->size = st.st_size;
    fp->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    fp->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
    fp->ino = (int64_t)st.st_ino;
    fp->dev = (int64_t)st.st_dev;
    fp->mode = st.st_mode;
    return 0;
}

bool fp_equal(const FileFp *a, const FileFp *b)
{
    return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
           a->ino == b->ino && a->dev == b->dev && a->mode == b->mode;
}

int64_t wall_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mkdir_p(const char *dir, Error **errp)
{
    char *copy = xstrdup(dir);
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p) {
            continue;
        }
        char saved = *p;
        *p = '\0';
        if (mkdir(copy, 0777) < 0 && errno != EEXIST) {
            error_setg_errno(errp, errno, "cannot create directory '%s'", copy);
            free(copy);
            return -errno;
        }
        *p = saved;
        if (!saved) {
            break;
        }
    }
    free(copy);
    return 0;
}

int mkdir_parents(const char *path, Error **errp)
{
    char *dir = path_dirname(path);
    int ret = mkdir_p(dir, errp);
    free(dir);
    return ret;
}

/* Copy [off, off+len) from in to out, preferring copy_file_range. */
static int copy_range(int in, int out, off_t off, off_t len)
{
    static char buf[1 << 16];
    static pthread_mutex_t buf_lock = PTHREAD_MUTEX_INITIALIZER;
    while (len > 0) {
        loff_t ioff = off, ooff = off;
        ssize_t n = copy_file_range(in, &ioff, out, &ooff, (size_t)len, 0);
        if (n > 0) {
            off += n;
            len -= n;
            continue;
        }
        if (n == 0) {
            return -EIO; /* source shrank under us */
        }
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
            return -errno;
        }
        pthread_mutex_lock(&buf_lock);
        ssize_t r = pread(in, buf, (size_t)MIN(len, (off_t)sizeof(buf)), off);
        ssize_t w = r > 0 ? pwrite(out, buf, (size_t)r, off) : r;
        pthread_mutex_unlock(&buf_lock);
        if (r <= 0 || w != r) {
            return r == 0 ? -EIO : -errno;
        }
        off += r;
        len -= r;
    }
    return 0;
}

/* Copy the data extents of in to out; holes stay holes. */
static int copy_sparse(int in, int out, off_t size)
{
    off_t off = 0;
    while (off < size) {
        off_t data = lseek(in, off, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) {
                break; /* only a hole remains */
            }
            data = off; /* SEEK_DATA unsupported: copy everything */
        }
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0) {
            hole = size;
        }
        int ret = copy_range(in, out, data, hole - data);
        if (ret < 0) {
            return ret;
        }
        off = hole;
    }
    return ftruncate(out, size) < 0 ? -errno : 0;
}

int file_copy(const char *src, const char *dst, Error **errp)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        error_setg_errno(errp, errno, "cannot open '%s'", src);
        return -errno;
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int ret = -errno;
        error_setg_errno(errp, errno, "cannot create '%s'", dst);
        close(in);
        return ret;
    }
    struct stat st;
    int ret = fstat(in, &st) < 0 ? -errno : 0;
    if (ret == 0 && ioctl(out, FICLONE, in) < 0) {
        ret = copy_sparse(in, out, st.st_size);
    }
    if (ret == 0 && fsync(out) < 0) {
        ret = -errno;
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "cannot copy '%s' to '%s'", src, dst);
    }
    close(in);
    close(out);
    return ret;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int ret = fsync(fd) < 0 && errno != EINVAL ? -errno : 0;
    close(fd);
    return ret;
}

int file_publish(const char *tmp, const char *path, Error **errp)
{
    int ret = fsync_path(tmp, O_RDONLY);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "cannot sync '%s'", tmp);
        return ret;
    }
    if (rename(tmp, path) < 0) {
        ret = -errno;
        error_setg_errno(errp, errno, "cannot rename '%s' to '%s'", tmp, path);
        return ret;
    }
    char *dir = path_dirname(path);
    ret = fsync_path(dir, O_RDONLY | O_DIRECTORY);
    free(dir);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "cannot sync the directory of '%s'", path);
    }
    return ret;
}

int file_remove(const char *path, Error **errp)
{
    if (unlink(path) < 0 && errno != ENOENT) {
        int ret = -errno;
        error_setg_errno(errp, errno, "cannot remove '%s'", path);
        return ret;
    }
    return 0;
}

char *temp_path_for(const char *path, bool in_subdir)
{
    char *dir = path_dirname(path);
    char *tmp;
    if (in_subdir) {
        char *sub = xasprintf("%s/.%s.imgpipe-tmp.d", dir, path_basename(path));
        mkdir(sub, 0755);
        tmp = xasprintf("%s/%s", sub, path_basename(path));
        free(sub);
    } else {
        tmp = xasprintf("%s/.%s.imgpipe-tmp", dir, path_basename(path));
    }
    free(dir);
    return tmp;
}

/* Remove a directory and the files in it (temporaries are flat). */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            char *victim = xasprintf("%s/%s", dir, e->d_name);
            unlink(victim);
            free(victim);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(dir);
}

void remove_stale_temps(const char *path)
{
    char *dir = path_dirname(path);
    char *prefix = xasprintf(".%s.imgpipe-tmp", path_basename(path));
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            char *victim = xasprintf("%s/%s", dir, e->d_name);
            if (unlink(victim) < 0 && (errno == EISDIR || errno == EPERM)) {
                remove_flat_dir(victim);
            }
            free(victim);
        }
    }
    if (d) {
        closedir(d);
    }
    free(prefix);
    free(dir);
}
