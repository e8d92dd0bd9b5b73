/*
 * fault_file.h — a test-only BlockFile filter that injects faults (after
 * SQLite's test_vfs.c and QEMU's blkdebug).
 *
 * Counts operations of one kind on matching files and, at the Nth:
 *   FAULT_ERROR  fail with errnum (once, or every time from then on);
 *   FAULT_SHORT  a write stores only its first half, then fails with EIO;
 *   FAULT_CRASH  "power loss": every write since the file's last flush is
 *                undone (drop) or undone sector by sector at random
 *                (tear), then the process exits with FAULT_CRASH_EXIT.
 * The power-loss model follows fdatasync: discards and truncations are
 * undone like writes; closing a file does not make its writes durable (a
 * closed file's pending writes are undone through its name at the crash,
 * if the name still holds the same inode); a flush of any descriptor of an
 * inode makes the writes of every descriptor of it durable.
 * IMGPIPE_FAULT_TRACE=1 (imgpipe-faulty) prints every write and flush.
 */
#ifndef IMGPIPE_TESTS_FAULT_FILE_H
#define IMGPIPE_TESTS_FAULT_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "blocklayer/file.h"

#define FAULT_CRASH_EXIT 99

typedef enum { FAULT_ON_READ, FAULT_ON_WRITE, FAULT_ON_FLUSH } FaultOp;
/* FAULT_KILL: the process dies at the Nth operation (before it), every earlier
 * write kept — what kill -9 does, deterministically. */
typedef enum { FAULT_ERROR, FAULT_SHORT, FAULT_CRASH_DROP, FAULT_CRASH_TEAR, FAULT_KILL } FaultKind;

typedef struct FaultSpec {
    FaultOp op;
    FaultKind kind;
    long nth;           /* 1-based count of matching operations */
    int errnum;         /* FAULT_ERROR: EIO, ENOSPC... */
    bool persistent;    /* FAULT_ERROR: keep failing after the first */
    const char *suffix; /* only files whose name ends so ("" = all) */
    uint32_t seed;      /* FAULT_CRASH_TEAR: which sectors survive */
} FaultSpec;

/* Wrap every file opened from now on (installs a bfile wrap hook). */
void fault_install(const FaultSpec *spec);
/* Parse "op=write,kind=crash-drop,nth=5,errno=ENOSPC,persistent=1,suffix=.qcow2,seed=7". */
int fault_parse(const char *str, FaultSpec *spec);
/* Operations of spec->op counted so far (to size a sweep). */
long fault_count(void);
/* Operations of any kind on matching files so far: one fault-free run sizes
 * the write and the flush sweeps together. */
long fault_count_of(FaultOp op);

#endif
