/*
 * file.c — the protocol layer: host files (pread/pwrite, SEEK_DATA/SEEK_HOLE,
 * fallocate, fdatasync, O_DIRECT, OFD image locks) and in-memory files.
 */
#include "blocklayer/file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#define DIRECT_ALIGN 4096

int prealloc_parse(const char *s, PreallocMode *mode)
{
    static const char *const names[] = {"off", "metadata", "falloc", "full"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (!strcmp(s, names[i])) {
            *mode = (PreallocMode)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *prealloc_name(PreallocMode mode)
{
    static const char *const names[] = {"off", "metadata", "falloc", "full"};
    return (unsigned)mode < ARRAY_SIZE(names) ? names[mode] : "?";
}

const OptDesc file_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"nocow", OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)", NULL},
    {"preallocation", OPT_STRING, "Preallocation mode (allowed values: off, falloc, full)", NULL},
    {"extent_size_hint", OPT_SIZE, "Extent size hint for the image file, 0 to disable", NULL},
    {NULL, 0, NULL, NULL},
};

/* ---- host files ---- */

/* Unaligned I/O on an O_DIRECT fd goes through an aligned bounce buffer. */
static int host_direct_rw(BlockFile *f, int64_t offset, void *buf, size_t bytes, bool write)
{
    int64_t start = ROUND_DOWN(offset, (int64_t)DIRECT_ALIGN);
    int64_t end = ROUND_UP(offset + (int64_t)bytes, (int64_t)DIRECT_ALIGN);
    size_t len = (size_t)(end - start);
    uint8_t *bounce = xmemalign(DIRECT_ALIGN, len);
    ssize_t n = pread(f->fd, bounce, len, start);
    int ret = 0;
    if (n < 0) {
        ret = -errno;
        goto out;
    }
    if ((size_t)n < len) {
        memset(bounce + n, 0, len - (size_t)n);
    }
    if (!write) {
        memcpy(buf, bounce + (offset - start), bytes);
        goto out;
    }
    memcpy(bounce + (offset - start), buf, bytes);
    /* Never extend the file past the caller's end: write aligned, then trim. */
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        ret = -errno;
        goto out;
    }
    int64_t old_len = st.st_size;
    n = pwrite(f->fd, bounce, len, start);
    if (n < 0 || (size_t)n != len) {
        ret = n < 0 ? -errno : -EIO;
        goto out;
    }
    int64_t want = MAX(old_len, offset + (int64_t)bytes);
    if (end > want && ftruncate(f->fd, want) < 0) {
        ret = -errno;
    }
out:
    free(bounce);
    return ret;
}

static int host_pread(BlockFile *f, int64_t offset, void *buf, size_t bytes)
{
    if ((f->flags & BFILE_DIRECT) &&
        (offset % DIRECT_ALIGN || bytes % DIRECT_ALIGN || (uintptr_t)buf % DIRECT_ALIGN)) {
        return host_direct_rw(f, offset, buf, bytes, false);
    }
    uint8_t *p = buf;
    while (bytes > 0) {
        ssize_t n = pread(f->fd, p, bytes, offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            memset(p, 0, bytes); /* past EOF reads as zeros */
            return 0;
        }
        p += n;
        offset += n;
        bytes -= (size_t)n;
    }
    return 0;
}

static int host_pwrite(BlockFile *f, int64_t offset, const void *buf, size_t bytes)
{
    if ((f->flags & BFILE_DIRECT) &&
        (offset % DIRECT_ALIGN || bytes % DIRECT_ALIGN || (uintptr_t)buf % DIRECT_ALIGN)) {
        return host_direct_rw(f, offset, (void *)buf, bytes, true);
    }
    const uint8_t *p = buf;
    while (bytes > 0) {
        ssize_t n = pwrite(f->fd, p, bytes, offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        p += n;
        offset += n;
        bytes -= (size_t)n;
    }
    return 0;
}

static int write_zero_buffer(BlockFile *f, int64_t offset, int64_t bytes)
{
    size_t chunk = (size_t)MIN(bytes, (int64_t)(1 * MiB));
    void *zero = xmemalign(DIRECT_ALIGN, chunk);
    memset(zero, 0, chunk);
    int ret = 0;
    while (bytes > 0 && ret == 0) {
        size_t n = (size_t)MIN(bytes, (int64_t)chunk);
        ret = f->ops->pwrite(f, offset, zero, n);
        offset += (int64_t)n;
        bytes -= (int64_t)n;
    }
    free(zero);
    return ret;
}

static int host_write_zeroes(BlockFile *f, int64_t offset, int64_t bytes, bool may_unmap)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        return -errno;
    }
    if (offset >= st.st_size) {
        /* Past EOF: extending the file is enough, the new bytes read as zero. */
        return ftruncate(f->fd, offset + bytes) < 0 ? -errno : 0;
    }
    int mode = may_unmap ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : FALLOC_FL_ZERO_RANGE;
    if (fallocate(f->fd, mode, offset, bytes) == 0) {
        if (offset + bytes > st.st_size && may_unmap) {
            return ftruncate(f->fd, offset + bytes) < 0 ? -errno : 0;
        }
        return 0;
    }
    if (may_unmap && fallocate(f->fd, FALLOC_FL_ZERO_RANGE, offset, bytes) == 0) {
        return 0;
    }
    return write_zero_buffer(f, offset, bytes);
}

static int host_discard(BlockFile *f, int64_t offset, int64_t bytes)
{
    if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, bytes) < 0) {
        return errno == EOPNOTSUPP ? 0 : -errno; /* discard is advisory */
    }
    return 0;
}

static int host_flush(BlockFile *f)
{
    if (f->flags & BFILE_NO_FLUSH) {
        return 0;
    }
    return fdatasync(f->fd) < 0 ? -errno : 0;
}

static int64_t host_getlength(BlockFile *f)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        return -errno;
    }
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(f->fd, 0, SEEK_END);
        return end < 0 ? -errno : end;
    }
    return st.st_size;
}

/*
 * A file grown from empty gets its first block written with zeros, as
 * qemu's file driver does (so that later alignment probing, and a
 * `du`/actual-size comparison with qemu's files, see the same allocation):
 * 4 KiB, or one sector when the file is smaller.  Failures are ignored.
 */
static void allocate_first_block(BlockFile *f, int64_t length)
{
    static const uint8_t zeros[4096] __attribute__((aligned(4096)));
    size_t n = length < (int64_t)sizeof(zeros) ? 512 : sizeof(zeros);
    ssize_t ret;
    do {
        ret = pwrite(f->fd, zeros, n, 0);
    } while (ret < 0 && errno == EINTR);
}

static int host_truncate(BlockFile *f, int64_t length, PreallocMode prealloc, Error **errp)
{
    int64_t old = host_getlength(f);
    if (old < 0) {
        error_setg_errno(errp, (int)-old, "Could not stat '%s'", f->filename);
        return (int)old;
    }
    if (prealloc == PREALLOC_METADATA) {
        error_setg(errp, "Unsupported preallocation mode: %s", prealloc_name(prealloc));
        return -ENOTSUP;
    }
    if (length < old || prealloc == PREALLOC_OFF) {
        if (ftruncate(f->fd, length) < 0) {
            int err = errno;
            error_setg_errno(errp, err, "Failed to resize file");
            return -err;
        }
        if (old == 0 && length > 0) {
            allocate_first_block(f, length);
        }
        return 0;
    }
    if (prealloc == PREALLOC_FALLOC) {
        int err = posix_fallocate(f->fd, old, length - old);
        if (err) {
            error_setg_errno(errp, err, "Could not preallocate new data");
            return -err;
        }
        return 0;
    }
    /* full: write real zeros */
    if (ftruncate(f->fd, length) < 0) {
        int err = errno;
        error_setg_errno(errp, err, "Failed to resize file");
        return -err;
    }
    int ret = write_zero_buffer(f, old, length - old);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write zeros for preallocation");
    }
    return ret;
}

static int host_block_status(BlockFile *f, int64_t offset, int64_t bytes, int64_t *pnum)
{
    int64_t len = host_getlength(f);
    if (len < 0) {
        *pnum = bytes;
        return BFILE_DATA;
    }
    if (offset >= len) {
        *pnum = bytes;
        return BFILE_ZERO;
    }
    off_t data = lseek(f->fd, offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) { /* only a hole up to EOF */
            *pnum = MIN(bytes, len - offset);
            return BFILE_ZERO;
        }
        *pnum = bytes; /* no SEEK_DATA support: all data */
        return BFILE_DATA;
    }
    if (data > offset) {
        *pnum = MIN(bytes, data - offset);
        return BFILE_ZERO;
    }
    off_t hole = lseek(f->fd, offset, SEEK_HOLE);
    if (hole < 0 || hole <= offset) {
        *pnum = bytes;
        return BFILE_DATA;
    }
    *pnum = MIN(bytes, hole - offset);
    return BFILE_DATA;
}

static int64_t host_allocated_size(BlockFile *f)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

static void host_close(BlockFile *f)
{
    if (f->fd >= 0) {
        close(f->fd);
    }
}

static const FileOps host_ops = {
    .pread = host_pread,
    .pwrite = host_pwrite,
    .write_zeroes = host_write_zeroes,
    .discard = host_discard,
    .flush = host_flush,
    .getlength = host_getlength,
    .truncate = host_truncate,
    .block_status = host_block_status,
    .allocated_size = host_allocated_size,
    .close = host_close,
};

static BlockFile *host_open(const char *filename, int oflags, int flags, Error **errp,
                            const char *what)
{
    if (flags & BFILE_DIRECT) {
        oflags |= O_DIRECT;
    }
    int fd = open(filename, oflags | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EINVAL && (flags & BFILE_DIRECT)) {
        error_setg(errp, "Could not open '%s': filesystem does not support O_DIRECT", filename);
        return NULL;
    }
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not %s '%s'", what, filename);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
        int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
        close(fd);
        if (err == EISDIR && !strcmp(what, "open")) {
            /* qemu's file driver words it so (a read-only open() succeeds) */
            error_setg(errp, "'file' driver requires '%s' to be a regular file", filename);
        } else {
            error_setg_errno(errp, err, "Could not %s '%s'", what, filename);
        }
        return NULL;
    }
    BlockFile *f = XNEW(BlockFile);
    f->ops = &host_ops;
    f->filename = xstrdup(filename);
    f->flags = flags;
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->align = (flags & BFILE_DIRECT) ? DIRECT_ALIGN : 1;
    return f;
}

static BfileWrapHook wrap_hook;
static void *wrap_opaque;

void bfile_set_wrap_hook(BfileWrapHook hook, void *opaque)
{
    wrap_hook = hook;
    wrap_opaque = opaque;
}

static BlockFile *maybe_wrap(BlockFile *f)
{
    return f && wrap_hook ? wrap_hook(f, wrap_opaque) : f;
}

BlockFile *bfile_open(const char *filename, int flags, Error **errp)
{
    return maybe_wrap(
        host_open(filename, (flags & BFILE_RDWR) ? O_RDWR : O_RDONLY, flags, errp, "open"));
}

BlockFile *bfile_create(const char *filename, int flags, Error **errp)
{
    return maybe_wrap(
        host_open(filename, O_RDWR | O_CREAT | O_TRUNC, flags | BFILE_RDWR, errp, "create"));
}

void bfile_close(BlockFile *f)
{
    if (!f) {
        return;
    }
    f->ops->close(f);
    free(f->filename);
    free(f);
}

/* ---- in-memory files ---- */

typedef struct MemFile {
    pthread_mutex_t lock;
    uint8_t *data;
    size_t len, alloc;
} MemFile;

/* Bound growth so a hostile image cannot make a fuzzer allocate without limit. */
#define MEM_FILE_MAX (256ULL << 20) /* under the fuzzers' -malloc_limit_mb */

static int mem_reserve(MemFile *m, size_t len)
{
    if (len > MEM_FILE_MAX) {
        return -EFBIG;
    }
    if (len > m->alloc) {
        size_t n = MAX(len, m->alloc * 2);
        n = MIN(n, (size_t)MEM_FILE_MAX);
        m->data = xrealloc(m->data, n);
        memset(m->data + m->alloc, 0, n - m->alloc);
        m->alloc = n;
    }
    return 0;
}

static int mem_pread(BlockFile *f, int64_t offset, void *buf, size_t bytes)
{
    MemFile *m = f->opaque;
    pthread_mutex_lock(&m->lock);
    size_t avail = (uint64_t)offset < m->len ? m->len - (size_t)offset : 0;
    size_t n = MIN(avail, bytes);
    if (n) {
        memcpy(buf, m->data + offset, n);
    }
    memset((uint8_t *)buf + n, 0, bytes - n);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int mem_pwrite(BlockFile *f, int64_t offset, const void *buf, size_t bytes)
{
    MemFile *m = f->opaque;
    if (!(f->flags & BFILE_RDWR)) {
        return -EBADF;
    }
    pthread_mutex_lock(&m->lock);
    int ret = mem_reserve(m, (size_t)offset + bytes);
    if (ret == 0) {
        memcpy(m->data + offset, buf, bytes);
        m->len = MAX(m->len, (size_t)offset + bytes);
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

static int mem_write_zeroes(BlockFile *f, int64_t offset, int64_t bytes, bool may_unmap)
{
    MemFile *m = f->opaque;
    if (!(f->flags & BFILE_RDWR)) {
        return -EBADF;
    }
    pthread_mutex_lock(&m->lock);
    int ret = mem_reserve(m, (size_t)(offset + bytes));
    if (ret == 0) {
        memset(m->data + offset, 0, (size_t)bytes);
        m->len = MAX(m->len, (size_t)(offset + bytes));
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

static int mem_discard(BlockFile *f, int64_t offset, int64_t bytes)
{
    return 0;
}

static int mem_flush(BlockFile *f)
{
    return 0;
}

static int64_t mem_getlength(BlockFile *f)
{
    MemFile *m = f->opaque;
    pthread_mutex_lock(&m->lock);
    int64_t len = (int64_t)m->len;
    pthread_mutex_unlock(&m->lock);
    return len;
}

static int mem_truncate(BlockFile *f, int64_t length, PreallocMode prealloc, Error **errp)
{
    MemFile *m = f->opaque;
    pthread_mutex_lock(&m->lock);
    int ret = mem_reserve(m, (size_t)length);
    if (ret == 0) {
        if ((size_t)length < m->len) {
            memset(m->data + length, 0, m->len - (size_t)length);
        }
        m->len = (size_t)length;
    }
    pthread_mutex_unlock(&m->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to resize file");
    }
    return ret;
}

static int mem_block_status(BlockFile *f, int64_t offset, int64_t bytes, int64_t *pnum)
{
    int64_t len = mem_getlength(f);
    if (offset >= len) {
        *pnum = bytes;
        return BFILE_ZERO;
    }
    *pnum = MIN(bytes, len - offset);
    return BFILE_DATA;
}

static int64_t mem_allocated_size(BlockFile *f)
{
    return mem_getlength(f);
}

static void mem_close(BlockFile *f)
{
    MemFile *m = f->opaque;
    pthread_mutex_destroy(&m->lock);
    free(m->data);
    free(m);
}

static const FileOps mem_ops = {
    .pread = mem_pread,
    .pwrite = mem_pwrite,
    .write_zeroes = mem_write_zeroes,
    .discard = mem_discard,
    .flush = mem_flush,
    .getlength = mem_getlength,
    .truncate = mem_truncate,
    .block_status = mem_block_status,
    .allocated_size = mem_allocated_size,
    .close = mem_close,
};

BlockFile *bfile_new_mem(const char *name, const void *data, size_t len, bool writable)
{
    MemFile *m = XNEW(MemFile);
    pthread_mutex_init(&m->lock, NULL);
    m->data = xmalloc(len ? len : 1);
    if (len) {
        memcpy(m->data, data, len);
    }
    m->len = m->alloc = len;
    BlockFile *f = XNEW(BlockFile);
    f->ops = &mem_ops;
    f->filename = xstrdup(name);
    f->flags = writable ? BFILE_RDWR : 0;
    f->fd = -1;
    f->align = 1;
    f->opaque = m;
    return f;
}

const void *bfile_mem_data(BlockFile *f, size_t *len)
{
    if (f->ops != &mem_ops) {
        return NULL;
    }
    MemFile *m = f->opaque;
    *len = m->len;
    return m->data;
}

/* ---- dispatchers ---- */

int bfile_pread(BlockFile *f, int64_t offset, void *buf, size_t bytes)
{
    if (offset < 0) {
        return -EINVAL;
    }
    return bytes ? f->ops->pread(f, offset, buf, bytes) : 0;
}

int bfile_pwrite(BlockFile *f, int64_t offset, const void *buf, size_t bytes)
{
    if (offset < 0) {
        return -EINVAL;
    }
    return bytes ? f->ops->pwrite(f, offset, buf, bytes) : 0;
}

int bfile_write_zeroes(BlockFile *f, int64_t offset, int64_t bytes, bool may_unmap)
{
    if (offset < 0 || bytes < 0) {
        return -EINVAL;
    }
    return bytes ? f->ops->write_zeroes(f, offset, bytes, may_unmap) : 0;
}

int bfile_discard(BlockFile *f, int64_t offset, int64_t bytes)
{
    return bytes > 0 ? f->ops->discard(f, offset, bytes) : 0;
}

int bfile_flush(BlockFile *f)
{
    return f->ops->flush(f);
}

int64_t bfile_getlength(BlockFile *f)
{
    return f->ops->getlength(f);
}

int bfile_truncate(BlockFile *f, int64_t length, PreallocMode prealloc, Error **errp)
{
    return f->ops->truncate(f, length, prealloc, errp);
}

int bfile_block_status(BlockFile *f, int64_t offset, int64_t bytes, int64_t *pnum)
{
    return f->ops->block_status(f, offset, bytes, pnum);
}

int64_t bfile_allocated_size(BlockFile *f)
{
    return f->ops->allocated_size(f);
}

/* ---- locks (qemu's protocol, block/file-posix.c: one byte per permission) ---- */

#define LOCK_PERM_BASE   100
#define LOCK_SHARED_BASE 200
enum { PERM_CONSISTENT_READ, PERM_WRITE, PERM_WRITE_UNCHANGED, PERM_RESIZE, PERM_COUNT };
static const char *const perm_names[PERM_COUNT] = {"consistent read", "write", "write unchanged",
                                                   "resize"};

static int ofd_lock(int fd, int64_t start, short type, int cmd)
{
    struct flock fl = {.l_whence = SEEK_SET, .l_start = start, .l_len = 1, .l_type = type};
    if (fcntl(fd, cmd, &fl) < 0) {
        return -errno;
    }
    return cmd == F_OFD_GETLK ? (fl.l_type != F_UNLCK ? -EAGAIN : 0) : 0;
}

int bfile_lock(BlockFile *f, bool write, bool share_write, Error **errp)
{
    if (f->fd < 0 || (f->flags & (BFILE_SHARE_RW | BFILE_NO_LOCK))) {
        return 0;
    }
    unsigned perm = 1u << PERM_CONSISTENT_READ;
    if (write) {
        perm |= 1u << PERM_WRITE | 1u << PERM_RESIZE;
    }
    unsigned shared = 1u << PERM_CONSISTENT_READ | 1u << PERM_WRITE_UNCHANGED;
    if (share_write) {
        shared |= 1u << PERM_WRITE | 1u << PERM_RESIZE;
    }
    for (int i = 0; i < PERM_COUNT; i++) {
        if ((perm & (1u << i)) && ofd_lock(f->fd, LOCK_PERM_BASE + i, F_RDLCK, F_OFD_SETLK) < 0) {
            goto busy_perm;
        }
        if (!(shared & (1u << i)) &&
            ofd_lock(f->fd, LOCK_SHARED_BASE + i, F_RDLCK, F_OFD_SETLK) < 0) {
            goto busy_perm;
        }
    }
    for (int i = 0; i < PERM_COUNT; i++) {
        if ((perm & (1u << i)) && ofd_lock(f->fd, LOCK_SHARED_BASE + i, F_WRLCK, F_OFD_GETLK) < 0) {
            error_setg(errp, "Failed to get \"%s\" lock\nIs another process using the image [%s]?",
                       perm_names[i], f->filename);
            return -EAGAIN;
        }
        if (!(shared & (1u << i)) &&
            ofd_lock(f->fd, LOCK_PERM_BASE + i, F_WRLCK, F_OFD_GETLK) < 0) {
            error_setg(errp,
                       "Failed to get shared \"%s\" lock\nIs another process using the image [%s]?",
                       perm_names[i], f->filename);
            return -EAGAIN;
        }
    }
    return 0;
busy_perm:
    error_setg(errp, "Failed to lock byte\nIs another process using the image [%s]?", f->filename);
    return -EAGAIN;
}
