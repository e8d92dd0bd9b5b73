/* cmds_common.c — see cmds_common.h. */
#include "engine/cmds_common.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "engine/qemu_img.h"

int64_t cmds_cvtnum(const char *name, const char *value, int64_t min, int64_t max)
{
    uint64_t res = 0;
    const char *p = value;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    /* qemu_strtosz refuses a sign outright (-EINVAL, not -ERANGE) */
    int err = *p == '-' ? -EINVAL : parse_size(value, NULL, &res);
    if (err < 0 && err != -ERANGE) {
        qimg_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", name);
        qimg_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return err;
    }
    if (err == -ERANGE || res > (uint64_t)max || (int64_t)res < min) {
        qimg_error("Invalid %s specified. Must be between %lld and %lld.", name, (long long)min,
                   (long long)max);
        return -ERANGE;
    }
    return (int64_t)res;
}

bool cmds_parse_ulong(const char *value, unsigned long max, unsigned long *out)
{
    if (!value || !*value) {
        return false;
    }
    /* qemu_strtoul accepts a leading '-' (negating, strtoul-style); the
     * result then exceeds any max we use, so treat it as invalid. */
    const char *p = value;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p == '-') {
        return false;
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 0);
    if (errno || end == value || *end || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* ---- library helpers ---- */

static bool same_file(const char *a, const char *b)
{
    char *ra = realpath(a, NULL);
    char *rb = realpath(b, NULL);
    bool same = ra && rb && !strcmp(ra, rb);
    free(ra);
    free(rb);
    return same;
}

BlockDriverState *cmds_find_backing_image(BlockDriverState *bs, const char *name)
{
    for (BlockDriverState *p = bs; p && p->backing; p = p->backing) {
        if (p->backing_file && !strcmp(p->backing_file, name)) {
            return p->backing;
        }
        char *wanted = path_combine(p->filename, name);
        bool same = same_file(wanted, p->backing->filename);
        free(wanted);
        if (same) {
            return p->backing;
        }
    }
    return NULL;
}

void cmds_rate_limit(int64_t start_ns, int64_t done, int64_t rate)
{
    if (rate <= 0) {
        return;
    }
    /* when `done` bytes are due at `rate` bytes/s */
    int64_t due_ns = (int64_t)((double)done / (double)rate * 1e9);
    int64_t wait_ns = start_ns + due_ns - clock_ns();
    if (wait_ns > 0) {
        struct timespec ts = {wait_ns / 1000000000, wait_ns % 1000000000};
        nanosleep(&ts, NULL);
    }
}

/* See cmds_common.h; the commit job and rebase's prefix check use it. */
int cmds_status_above(BlockDriverState *top, BlockDriverState *base, int64_t offset, int64_t bytes,
                      int64_t *pnum)
{
    int64_t n = bytes;
    for (BlockDriverState *p = top; p && p != base; p = p->backing) {
        if (offset >= bdrv_getlength(p)) {
            *pnum = n;
            return BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
        }
        int64_t pn;
        int ret = bdrv_block_status(p, true, offset, n, &pn, NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        n = MIN(n, pn);
        if (ret & BDRV_BLOCK_ALLOCATED) {
            *pnum = n;
            return ret;
        }
    }
    *pnum = n;
    return 0;
}
