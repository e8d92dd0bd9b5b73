/* fault_file.c — see fault_file.h. */
#include "fault_file.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

typedef struct UndoRec {
    int64_t offset;
    size_t len;
    uint8_t *old; /* previous bytes (zeros past the old EOF) */
    struct UndoRec *next;
} UndoRec;

typedef struct FaultFile {
    BlockFile *inner;
    bool match;
    int64_t flushed_len; /* length at the last flush */
    UndoRec *undo;       /* newest first */
    struct FaultFile *next_file;
} FaultFile;

static FaultSpec spec;
static bool installed;
static long counter;
static bool tripped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FaultFile *all_files;

long fault_count(void)
{
    return counter;
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

/* Power loss: roll every file back to its last flushed state (or tear). */
static void crash_now(void)
{
    uint32_t rng = spec.seed ? spec.seed : 1;
    for (FaultFile *ff = all_files; ff; ff = ff->next_file) {
        for (UndoRec *r = ff->undo; r; r = r->next) {
            for (size_t off = 0; off < r->len; off += 512) {
                size_t n = MIN((size_t)512, r->len - off);
                rng = rng * 1103515245u + 12345u;
                if (spec.kind == FAULT_CRASH_TEAR && (rng >> 16) & 1) {
                    continue; /* this sector made it to the disk */
                }
                ff->inner->ops->pwrite(ff->inner, r->offset + (int64_t)off, r->old + off, n);
            }
        }
        if (spec.kind == FAULT_CRASH_DROP &&
            ff->inner->ops->getlength(ff->inner) > ff->flushed_len) {
            ff->inner->ops->truncate(ff->inner, ff->flushed_len, PREALLOC_OFF, NULL);
        }
        ff->inner->ops->flush(ff->inner);
    }
    _exit(FAULT_CRASH_EXIT);
}

/* Returns 0 to proceed, or the injected result. Called with lock held. */
static int tick(FaultFile *ff, FaultOp op, bool *short_io)
{
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
        if (ff->match && spec.kind >= FAULT_CRASH_DROP) {
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
        if (ff->match && spec.kind >= FAULT_CRASH_DROP) {
            record_undo(ff, offset, (size_t)bytes);
        }
        ret = ff->inner->ops->write_zeroes(ff->inner, offset, bytes, may_unmap);
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

static int ff_discard(BlockFile *f, int64_t offset, int64_t bytes)
{
    FaultFile *ff = f->opaque;
    return ff->inner->ops->discard(ff->inner, offset, bytes);
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
            undo_clear(ff);
            ff->flushed_len = ff->inner->ops->getlength(ff->inner);
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
    return ff->inner->ops->truncate(ff->inner, length, prealloc, errp);
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

static void ff_close(BlockFile *f)
{
    FaultFile *ff = f->opaque;
    pthread_mutex_lock(&lock);
    for (FaultFile **pp = &all_files; *pp; pp = &(*pp)->next_file) {
        if (*pp == ff) {
            *pp = ff->next_file;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    undo_clear(ff);
    bfile_close(ff->inner);
    free(ff);
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
