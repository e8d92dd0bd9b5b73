/* fault_file.c — see fault_file.h. */
#include "fault_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

typedef struct UndoRec {
    int64_t offset;
    size_t len;
    uint8_t *old; /* previous bytes (zeros past the old EOF) */
    struct UndoRec *next;
} UndoRec;

typedef struct FaultFile {
    BlockFile *inner; /* NULL once closed */
    char *name;       /* to reopen a closed file at the crash */
    dev_t dev;        /* identity: a flush of any file of this inode */
    ino_t ino;        /*   makes this one's writes durable too */
    bool match;
    int64_t flushed_len; /* length at the last flush */
    UndoRec *undo;       /* newest first */
    struct FaultFile *next_file;
} FaultFile;

static FaultSpec spec;
static bool installed;
static long counter;
static long op_counts[3]; /* per FaultOp, on matching files */
static bool tripped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FaultFile *all_files;

long fault_count(void)
{
    return counter;
}

long fault_count_of(FaultOp op)
{
    return op_counts[op];
}

static void undo_clear(FaultFile *ff)
{
    while (ff->undo) {
        UndoRec *r = ff->undo;
        ff->undo = r->next;
        free(r->old);
        free(r);
    }
}

/* Roll one file back: its fd, or (closed) a new one on its name when that
 * still names the same inode (a renamed temporary was synced by its owner). */
static void crash_file(FaultFile *ff, uint32_t *rng)
{
    int fd = ff->inner ? ff->inner->fd : open(ff->name, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != ff->dev || st.st_ino != ff->ino) {
        if (fd >= 0 && !ff->inner) {
            close(fd);
        }
        return;
    }
    for (UndoRec *r = ff->undo; r; r = r->next) {
        for (size_t off = 0; off < r->len; off += 512) {
            size_t n = MIN((size_t)512, r->len - off);
            *rng = *rng * 1103515245u + 12345u;
            if (spec.kind == FAULT_CRASH_TEAR && (*rng >> 16) & 1) {
                continue; /* this sector made it to the disk */
            }
            if (pwrite(fd, r->old + off, n, r->offset + (off_t)off) < 0) {
                break;
            }
        }
    }
    if (spec.kind == FAULT_CRASH_DROP && fstat(fd, &st) == 0 && st.st_size > ff->flushed_len) {
        (void)!ftruncate(fd, ff->flushed_len);
    }
    fdatasync(fd);
    if (!ff->inner) {
        close(fd);
    }
}

/* Power loss: roll every file back to its last flushed state (or tear). */
static void crash_now(void)
{
    uint32_t rng = spec.seed ? spec.seed : 1;
    for (FaultFile *ff = all_files; ff; ff = ff->next_file) {
        if (ff->undo || (ff->inner && spec.kind == FAULT_CRASH_DROP)) {
            crash_file(ff, &rng);
        }
    }
    _exit(FAULT_CRASH_EXIT);
}

/* Returns 0 to proceed, or the injected result. Called with lock held. */
static int tick(FaultFile *ff, FaultOp op, bool *short_io)
{
    if (getenv("IMGPIPE_FAULT_TRACE") && op != FAULT_ON_READ) {
        static const char *const names[] = {"read", "write", "flush"};
        fprintf(stderr, "fault-trace: %s %s%s\n", names[op], ff->name,
                ff->match && op == spec.op ? " (counted)" : "");
    }
    if (ff->match) {
        op_counts[op]++;
    }
    if (!ff->match || op != spec.op) {
        return 0;
    }
    counter++;
    if (counter < spec.nth || (tripped && !spec.persistent) || spec.nth <= 0) {
        return 0;
    }
    if (counter > spec.nth && !spec.persistent) {
        return 0;
    }
    tripped = true;
    switch (spec.kind) {
    case FAULT_ERROR: return -spec.errnum;
    case FAULT_SHORT: *short_io = true; return -EIO;
    case FAULT_KILL: _exit(FAULT_CRASH_EXIT);
    default: crash_now(); return -EIO;
    }
}

static int ff_pread(BlockFile *f, int64_t offset, void *buf, size_t bytes)
{
    FaultFile *ff = f->opaque;
    bool shrt = false;
    pthread_mutex_lock(&lock);
    int ret = tick(ff, FAULT_ON_READ, &shrt);
    pthread_mutex_unlock(&lock);
    return ret ? ret : ff->inner->ops->pread(ff->inner, offset, buf, bytes);
}

static void record_undo(FaultFile *ff, int64_t offset, size_t bytes)
{
    UndoRec *r = XNEW(UndoRec);
    r->offset = offset;
    r->len = bytes;
    r->old = xmalloc(bytes);
    ff->inner->ops->pread(ff->inner, offset, r->old, bytes);
    r->next = ff->undo;
    ff->undo = r;
}

static int ff_pwrite(BlockFile *f, int64_t offset, const void *buf, size_t bytes)
{
    FaultFile *ff = f->opaque;
    bool shrt = false;
    pthread_mutex_lock(&lock);
    int ret = tick(ff, FAULT_ON_WRITE, &shrt);
    if (ret == 0 || shrt) {
        if (ff->match && (spec.kind == FAULT_CRASH_DROP || spec.kind == FAULT_CRASH_TEAR)) {
            record_undo(ff, offset, bytes);
        }
        int r2 = ff->inner->ops->pwrite(ff->inner, offset, buf, shrt ? bytes / 2 : bytes);
        if (!shrt) {
            ret = r2;
        }
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

static int ff_write_zeroes(BlockFile *f, int64_t offset, int64_t bytes, bool may_unmap)
{
    FaultFile *ff = f->opaque;
    bool shrt = false;
    pthread_mutex_lock(&lock);
    int ret = tick(ff, FAULT_ON_WRITE, &shrt);
    if (ret == 0) {
        if (ff->match && (spec.kind == FAULT_CRASH_DROP || spec.kind == FAULT_CRASH_TEAR)) {
            record_undo(ff, offset, (size_t)bytes);
        }
        ret = ff->inner->ops->write_zeroes(ff->inner, offset, bytes, may_unmap);
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

/* Discards and truncations are not counted as writes, but a crash undoes
 * them like writes when they were not flushed (a punched hole or a cut
 * tail is as volatile as data until the next flush). */
static void record_undo_range(FaultFile *ff, int64_t offset, int64_t bytes)
{
    int64_t len = ff->inner->ops->getlength(ff->inner);
    if (ff->match && (spec.kind == FAULT_CRASH_DROP || spec.kind == FAULT_CRASH_TEAR) &&
        offset < len && bytes > 0) {
        record_undo(ff, offset, (size_t)MIN(bytes, len - offset));
    }
}

static int ff_discard(BlockFile *f, int64_t offset, int64_t bytes)
{
    FaultFile *ff = f->opaque;
    pthread_mutex_lock(&lock);
    record_undo_range(ff, offset, bytes);
    int ret = ff->inner->ops->discard(ff->inner, offset, bytes);
    pthread_mutex_unlock(&lock);
    return ret;
}

static int ff_flush(BlockFile *f)
{
    FaultFile *ff = f->opaque;
    bool shrt = false;
    pthread_mutex_lock(&lock);
    int ret = tick(ff, FAULT_ON_FLUSH, &shrt);
    if (ret == 0) {
        ret = ff->inner->ops->flush(ff->inner);
        if (ret == 0) {
            /* fdatasync covers the inode, whichever descriptor wrote */
            int64_t len = ff->inner->ops->getlength(ff->inner);
            for (FaultFile *o = all_files; o; o = o->next_file) {
                if (o == ff || (o->dev == ff->dev && o->ino == ff->ino)) {
                    undo_clear(o);
                    o->flushed_len = len;
                }
            }
        }
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

static int64_t ff_getlength(BlockFile *f)
{
    FaultFile *ff = f->opaque;
    return ff->inner->ops->getlength(ff->inner);
}

static int ff_truncate(BlockFile *f, int64_t length, PreallocMode prealloc, Error **errp)
{
    FaultFile *ff = f->opaque;
    pthread_mutex_lock(&lock);
    record_undo_range(ff, length, INT64_MAX);
    int ret = ff->inner->ops->truncate(ff->inner, length, prealloc, errp);
    pthread_mutex_unlock(&lock);
    return ret;
}

static int ff_block_status(BlockFile *f, int64_t offset, int64_t bytes, int64_t *pnum)
{
    FaultFile *ff = f->opaque;
    return ff->inner->ops->block_status(ff->inner, offset, bytes, pnum);
}

static int64_t ff_allocated_size(BlockFile *f)
{
    FaultFile *ff = f->opaque;
    return ff->inner->ops->allocated_size(ff->inner);
}

/* Closing does not make writes durable: a file with unflushed writes stays
 * on the list (by name and inode) until a flush of its inode or the crash. */
static void ff_close(BlockFile *f)
{
    FaultFile *ff = f->opaque;
    pthread_mutex_lock(&lock);
    bool pending = ff->undo || (ff->match && spec.kind == FAULT_CRASH_DROP &&
                                ff->inner->ops->getlength(ff->inner) > ff->flushed_len);
    if (!pending) {
        for (FaultFile **pp = &all_files; *pp; pp = &(*pp)->next_file) {
            if (*pp == ff) {
                *pp = ff->next_file;
                break;
            }
        }
    }
    bfile_close(ff->inner);
    ff->inner = NULL;
    pthread_mutex_unlock(&lock);
    if (!pending) {
        free(ff->name);
        free(ff);
    }
}

static const FileOps fault_ops = {
    .pread = ff_pread,
    .pwrite = ff_pwrite,
    .write_zeroes = ff_write_zeroes,
    .discard = ff_discard,
    .flush = ff_flush,
    .getlength = ff_getlength,
    .truncate = ff_truncate,
    .block_status = ff_block_status,
    .allocated_size = ff_allocated_size,
    .close = ff_close,
};

static bool name_matches(const char *name)
{
    if (!spec.suffix || !*spec.suffix) {
        return true;
    }
    size_t n = strlen(name), s = strlen(spec.suffix);
    return n >= s && !strcmp(name + n - s, spec.suffix);
}

static BlockFile *wrap(BlockFile *inner, void *opaque)
{
    FaultFile *ff = XNEW(FaultFile);
    ff->inner = inner;
    ff->name = xstrdup(inner->filename);
    ff->dev = inner->dev;
    ff->ino = inner->ino;
    ff->match = name_matches(inner->filename);
    ff->flushed_len = inner->ops->getlength(inner);
    BlockFile *f = XNEW(BlockFile);
    *f = *inner; /* keeps fd, dev/ino (locks, loop detection) and flags */
    f->ops = &fault_ops;
    f->filename = xstrdup(inner->filename);
    f->opaque = ff;
    pthread_mutex_lock(&lock);
    ff->next_file = all_files;
    all_files = ff;
    pthread_mutex_unlock(&lock);
    return f;
}

void fault_install(const FaultSpec *s)
{
    spec = *s;
    spec.suffix = s->suffix ? xstrdup(s->suffix) : NULL;
    counter = 0;
    memset(op_counts, 0, sizeof(op_counts));
    tripped = false;
    installed = true;
    bfile_set_wrap_hook(wrap, NULL);
}

static int parse_errno(const char *v)
{
    static const struct {
        const char *name;
        int value;
    } names[] = {{"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (!strcmp(v, names[i].name)) {
            return names[i].value;
        }
    }
    return atoi(v);
}

int fault_parse(const char *str, FaultSpec *out)
{
    Opts o = OPTS_INIT;
    if (opts_parse(&o, str, NULL, NULL) < 0) {
        return -EINVAL;
    }
    FaultSpec s = {.op = FAULT_ON_WRITE, .kind = FAULT_ERROR, .nth = 1, .errnum = EIO};
    const char *v;
    int ret = 0;
    if ((v = opts_get(&o, "op"))) {
        s.op = !strcmp(v, "read")    ? FAULT_ON_READ
               : !strcmp(v, "flush") ? FAULT_ON_FLUSH
                                     : FAULT_ON_WRITE;
    }
    if ((v = opts_get(&o, "kind"))) {
        if (!strcmp(v, "error")) {
            s.kind = FAULT_ERROR;
        } else if (!strcmp(v, "short")) {
            s.kind = FAULT_SHORT;
        } else if (!strcmp(v, "crash-drop")) {
            s.kind = FAULT_CRASH_DROP;
        } else if (!strcmp(v, "crash-tear")) {
            s.kind = FAULT_CRASH_TEAR;
        } else if (!strcmp(v, "kill")) {
            s.kind = FAULT_KILL;
        } else {
            ret = -EINVAL;
        }
    }
    if ((v = opts_get(&o, "nth"))) {
        s.nth = atol(v);
    }
    if ((v = opts_get(&o, "errno"))) {
        s.errnum = parse_errno(v);
    }
    if ((v = opts_get(&o, "persistent"))) {
        s.persistent = !strcmp(v, "1") || !strcmp(v, "on");
    }
    static char suffix[256];
    if ((v = opts_get(&o, "suffix"))) {
        snprintf(suffix, sizeof(suffix), "%s", v);
        s.suffix = suffix;
    }
    if ((v = opts_get(&o, "seed"))) {
        s.seed = (uint32_t)strtoul(v, NULL, 0);
    }
    opts_release(&o);
    if (ret == 0) {
        *out = s;
    }
    return ret;
}
