/*
 * img_convert_target.c — atomic outputs for commands that create their
 * target (convert, dd): the image is built under a temporary name beside
 * the final one, made durable with fsync, then renamed over the final
 * name, and the directory is synced.  A failed or killed run never leaves
 * a half-written image under the final name (a killed qemu-img convert
 * does: its target is "clean" but incomplete), and an existing file
 * there stays as it was until the new image is complete.
 *
 * When the atomic path cannot work, the target is written in place, as
 * qemu-img does:
 *   - the final name is not a regular file (a block device, /dev/null, a
 *     symlink whose target should be written through), or one we may not
 *     write (create() then fails with qemu-img's message);
 *   - the directory is not writable but the file is;
 *   - the format wrote more files than the image itself (VMDK extents,
 *     external data files): their names derive from the image's name, so a
 *     temporary name would end up recorded inside the image.  This is found
 *     out by looking, not by format: after create(), files whose names
 *     start with the temporary name mean "multi-file".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "engine/img_convert_target.h"

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/*
 * Make a fresh, empty temporary file beside final (created O_EXCL):
 * ".STEM.imgpipe-XXXXXXXX.EXT" for "STEM.EXT" — the extension stays last
 * because formats derive the names of extra files from it (VMDK:
 * "NAME-flat.vmdk"), and the unique prefix then finds those files.
 */
static char *make_temp(const char *final, int *err)
{
    char *dir = path_dirname(final);
    const char *base = base_name(final);
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) {
        dot = base + strlen(base);
    }
    for (int attempt = 0; attempt < 32; attempt++) {
        uint8_t rnd[4];
        repro_random_bytes(NULL, "tmp", rnd, sizeof(rnd));
        char *tmp = xasprintf("%s/.%.*s.imgpipe-%02x%02x%02x%02x%s", dir, (int)(dot - base), base,
                              rnd[0], rnd[1], rnd[2], rnd[3], dot);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            close(fd);
            free(dir);
            return tmp;
        }
        *err = errno;
        free(tmp);
        if (*err != EEXIST) {
            break;
        }
    }
    free(dir);
    return NULL;
}

int atomic_out_begin(AtomicOut *a, const char *final, bool allow_atomic)
{
    memset(a, 0, sizeof(*a));
    a->wb_fd = -1;
    a->durable = true;
    a->final = xstrdup(final);
    struct stat st;
    bool exists = lstat(final, &st) == 0;
    /* A file we may not write is not replaced either: in place, create()
     * then fails as qemu-img's does ("Permission denied"). */
    if (!allow_atomic || (exists && (!S_ISREG(st.st_mode) || access(final, W_OK) != 0)) ||
        path_is_absolute(final) != (final[0] == '/')) {
        return 0; /* in place; protocol prefixes ("nbd:") are never files */
    }
    int err = 0;
    a->tmp = make_temp(final, &err);
    if (!a->tmp) {
        return 0; /* e.g. read-only directory, writable file: in place */
    }
    if (exists) {
        /* Keep the permissions the user gave the existing file. */
        chmod(a->tmp, st.st_mode & 07777);
    }
    return 0;
}

const char *atomic_out_path(const AtomicOut *a)
{
    return a->tmp ? a->tmp : a->final;
}

/* Visit the other files in tmp's directory whose names start with its
 * unique part (".STEM.imgpipe-XXXXXXXX"). */
static int for_each_extra(const AtomicOut *a, bool unlink_them)
{
    char *dir = path_dirname(a->tmp);
    const char *base = base_name(a->tmp);
    const char *mark = strstr(base, ".imgpipe-");
    size_t plen = mark ? (size_t)(mark - base) + 17 : strlen(base);
    int count = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, base, plen) || !strcmp(e->d_name, base)) {
            continue;
        }
        count++;
        if (unlink_them) {
            char *p = xasprintf("%s/%s", dir, e->d_name);
            unlink(p);
            free(p);
        }
    }
    if (d) {
        closedir(d);
    }
    free(dir);
    return count;
}

bool atomic_out_fallback_if_multifile(AtomicOut *a)
{
    if (!a->tmp || for_each_extra(a, false) == 0) {
        return false;
    }
    for_each_extra(a, true);
    unlink(a->tmp);
    free(a->tmp);
    a->tmp = NULL;
    return true;
}

static int fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int ret = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    /* Some file systems cannot fsync a directory; the rename still holds. */
    return dir && (ret == -EINVAL || ret == -EBADF) ? 0 : ret;
}

void atomic_out_set_durable(AtomicOut *a, bool durable)
{
    a->durable = durable;
}

void atomic_out_written(void *opaque, int64_t bytes)
{
    AtomicOut *a = opaque;
    if (!a->tmp || !a->durable || bytes - a->wb_done < 32 * (int64_t)MiB) {
        return;
    }
    a->wb_done = bytes;
    if (a->wb_fd < 0) {
        a->wb_fd = open(a->tmp, O_RDONLY | O_CLOEXEC);
    }
    if (a->wb_fd >= 0) {
        sync_file_range(a->wb_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
}

int atomic_out_commit(AtomicOut *a, Error **errp)
{
    if (!a->tmp) {
        return 0;
    }
    int ret = a->durable ? fsync_path(a->tmp, false) : 0;
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not sync '%s'", a->final);
        return ret;
    }
    /* Never replace an image another process has open for writing. */
    struct stat st;
    if (lstat(a->final, &st) == 0 && S_ISREG(st.st_mode)) {
        BlockFile *f = bfile_open(a->final, BFILE_RDWR, NULL);
        if (f) {
            Error *local = NULL;
            ret = bfile_lock(f, true, false, &local);
            bfile_close(f);
            if (ret < 0) {
                error_propagate(errp, local);
                return ret;
            }
        }
    }
    if (rename(a->tmp, a->final) < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not rename '%s' to '%s'", a->tmp, a->final);
        return ret;
    }
    free(a->tmp);
    a->tmp = NULL;
    if (a->durable) {
        char *dir = path_dirname(a->final);
        fsync_path(dir, true);
        free(dir);
    }
    return 0;
}

void atomic_out_abort(AtomicOut *a)
{
    if (a->tmp) {
        unlink(a->tmp);
    }
}

void atomic_out_release(AtomicOut *a)
{
    if (a->final && a->wb_fd >= 0) { /* final: begin() ran, wb_fd is real */
        close(a->wb_fd);
    }
    free(a->tmp);
    free(a->final);
    memset(a, 0, sizeof(*a));
    a->wb_fd = -1;
}
