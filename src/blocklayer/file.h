/*
 * file.h — the protocol layer: bytes in a host file.
 *
 * Every image byte goes through a BlockFile.  A BlockFile is a small object
 * with an ops table, so the test-only fault-injection filter and the
 * in-memory files used by fuzzers stand in for a real file without any
 * driver knowing.
 *
 * Data plane (pread/pwrite/zeroes/discard/block_status) returns 0 or -errno
 * and is thread-safe: concurrent calls on one BlockFile are allowed (pread
 * and pwrite are positional).  Short reads past EOF are filled with zeros;
 * a read that fails or a short write returns -errno (-EIO for short I/O).
 */
#ifndef IMGPIPE_BLOCKLAYER_FILE_H
#define IMGPIPE_BLOCKLAYER_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

typedef enum {
    PREALLOC_OFF,
    PREALLOC_METADATA,
    PREALLOC_FALLOC,
    PREALLOC_FULL,
} PreallocMode;

/* "off"/"metadata"/"falloc"/"full" -> mode; -EINVAL on anything else. */
int prealloc_parse(const char *s, PreallocMode *mode);
const char *prealloc_name(PreallocMode mode);

/* bfile_open() flags */
#define BFILE_RDWR     0x1
#define BFILE_DIRECT   0x2  /* O_DIRECT (cache=none/directsync) */
#define BFILE_NO_FLUSH 0x4  /* cache=unsafe: flush is a no-op */
#define BFILE_SHARE_RW 0x8  /* -U / force-share: take no locks */
#define BFILE_NO_LOCK  0x10 /* never lock (scratch/temp files) */

/* bfile_block_status() results (same bits as BDRV_BLOCK_DATA/ZERO) */
#define BFILE_DATA 0x1
#define BFILE_ZERO 0x2

typedef struct BlockFile BlockFile;

/*
 * Create options of the file protocol, appended after every format's own
 * table (as qemu appends the protocol driver's options): size, nocow,
 * preallocation, extent_size_hint.  Duplicates defer to the format's entry.
 */
#include "common/opts.h"
extern const OptDesc file_create_opts[];

typedef struct FileOps {
    int (*pread)(BlockFile *f, int64_t offset, void *buf, size_t bytes);
    int (*pwrite)(BlockFile *f, int64_t offset, const void *buf, size_t bytes);
    /* Write zeros; may_unmap allows punching a hole. */
    int (*write_zeroes)(BlockFile *f, int64_t offset, int64_t bytes, bool may_unmap);
    int (*discard)(BlockFile *f, int64_t offset, int64_t bytes);
    int (*flush)(BlockFile *f);
    int64_t (*getlength)(BlockFile *f);
    /* Set the length; growth honours prealloc (falloc/full). */
    int (*truncate)(BlockFile *f, int64_t length, PreallocMode prealloc, Error **errp);
    /* DATA or ZERO for [offset, offset+*pnum); *pnum <= bytes, > 0. */
    int (*block_status)(BlockFile *f, int64_t offset, int64_t bytes, int64_t *pnum);
    /* Bytes the file uses on disk (st_blocks * 512), or -errno. */
    int64_t (*allocated_size)(BlockFile *f);
    void (*close)(BlockFile *f);
} FileOps;

struct BlockFile {
    const FileOps *ops;
    char *filename;
    int flags; /* BFILE_* */
    int fd;    /* -1 when not a host file */
    dev_t dev; /* identity, for backing-loop detection */
    ino_t ino;
    uint32_t align; /* request alignment for O_DIRECT (1 otherwise) */
    void *opaque;   /* ops-private */
};

/* Open an existing host file.  Errors name the file ("Could not open 'x': ..."). */
BlockFile *bfile_open(const char *filename, int flags, Error **errp);
/*
 * Create (or truncate to 0) a host file and return it open read-write,
 * like qemu's file protocol create.  Mode 0644 minus umask.
 */
BlockFile *bfile_create(const char *filename, int flags, Error **errp);
/* Wrap an in-memory buffer (copied; grows on write).  For fuzzers and tests. */
BlockFile *bfile_new_mem(const char *name, const void *data, size_t len, bool writable);
/* Bytes of a mem file (NULL for others) */
const void *bfile_mem_data(BlockFile *f, size_t *len);
void bfile_close(BlockFile *f);

/*
 * Test hook: when set, every file that bfile_open()/bfile_create() returns
 * is passed through hook, which may wrap it (tests/support/fault_file.c:
 * the fault-injection filter).  NULL restores plain files.  Not for
 * product code paths.
 */
typedef BlockFile *(*BfileWrapHook)(BlockFile *f, void *opaque);
void bfile_set_wrap_hook(BfileWrapHook hook, void *opaque);

/* Thin dispatchers (see FileOps for contracts). */
int bfile_pread(BlockFile *f, int64_t offset, void *buf, size_t bytes);
int bfile_pwrite(BlockFile *f, int64_t offset, const void *buf, size_t bytes);
int bfile_write_zeroes(BlockFile *f, int64_t offset, int64_t bytes, bool may_unmap);
int bfile_discard(BlockFile *f, int64_t offset, int64_t bytes);
int bfile_flush(BlockFile *f);
int64_t bfile_getlength(BlockFile *f);
int bfile_truncate(BlockFile *f, int64_t length, PreallocMode prealloc, Error **errp);
int bfile_block_status(BlockFile *f, int64_t offset, int64_t bytes, int64_t *pnum);
int64_t bfile_allocated_size(BlockFile *f);

/*
 * Image locking (qemu's OFD-lock protocol on byte ranges of the file, so
 * qemu and imgpipe see each other's locks).  Called by the block layer on
 * open; exposed for tests.  Returns 0 or -EAGAIN with qemu's message:
 * 'Failed to get "write" lock' / 'Is another process using the image [X]?'.
 */
int bfile_lock(BlockFile *f, bool write, bool share_write, Error **errp);

#endif
