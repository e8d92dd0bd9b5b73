/*
 * img_compare.c — `qemu-img compare`: img_compare() and its front end.
 *
 * Guest content of two images (through their backing chains) is compared
 * over the common length; the longer one's tail must read as zeros (else
 * "Content mismatch"), with "Warning: Image size mismatch!" printed.  -s
 * (strict) fails on any size difference or block-status difference.
 *
 * Efficiency: block status of both chains decides each step — ranges that
 * are zero in both are skipped unread; a range allocated in only one image
 * is read from that one only and checked for zeros; ranges allocated in both
 * are read in chunks of up to 2 MiB and compared.  Mismatch offsets are
 * reported at 512-byte granularity, as qemu-img does.
 *
 * Exit statuses (qemu-img's): 0 identical, 1 different, 2 error opening an
 * image, 3 error getting block status, 4 error reading.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

#define IO_BUF_SIZE (2 * MiB)

/* The status bits that describe content; strict mode compares these. */
#define STATUS_MASK                                                                       \
    (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID | BDRV_BLOCK_ALLOCATED | \
     BDRV_BLOCK_EOF)

typedef struct Side {
    BlockDriverState *bs;
    const char *filename;
    int64_t size;
    uint8_t *buf;
} Side;

typedef struct Cmp {
    const CompareOpts *o;
    FILE *out;
    Side a, b;
    int64_t progress_base, done;
} Cmp;

static void report(Cmp *c, const char *fmt, ...) IMGPIPE_PRINTF(2, 3);
static void report(Cmp *c, const char *fmt, ...)
{
    if (c->o->quiet) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
}

static void advance(Cmp *c, int64_t bytes)
{
    c->done += bytes;
    if (c->o->progress.fn) {
        c->o->progress.fn(c->o->progress.opaque, c->done, c->progress_base);
    }
}

/* Offset (relative) of the first 512-byte sector holding a non-zero byte, or -1. */
static int64_t find_nonzero(const uint8_t *buf, int64_t n)
{
    int64_t end = ROUND_DOWN(n, (int64_t)BDRV_SECTOR_SIZE);
    int64_t i;
    for (i = 0; i < end; i += BDRV_SECTOR_SIZE) {
        if (!buffer_is_zero(buf + i, BDRV_SECTOR_SIZE)) {
            return i;
        }
    }
    return i < n && !buffer_is_zero(buf + i, (size_t)(n - end)) ? i : -1;
}

/* Bytes, in 512-byte steps, over which buf1 and buf2 agree or disagree as
 * their first sector does; returns whether that first sector differs. */
static bool compare_sectors(const uint8_t *b1, const uint8_t *b2, int64_t bytes, int64_t *pnum)
{
    int64_t i = MIN(bytes, (int64_t)BDRV_SECTOR_SIZE);
    bool differs = memcmp(b1, b2, (size_t)i) != 0;
    while (i < bytes) {
        int64_t len = MIN(bytes - i, (int64_t)BDRV_SECTOR_SIZE);
        if ((memcmp(b1 + i, b2 + i, (size_t)len) != 0) != differs) {
            break;
        }
        i += len;
    }
    *pnum = i;
    return differs;
}

static int read_side(Side *s, int64_t offset, int64_t bytes, uint8_t *buf, Error **errp)
{
    int ret = bdrv_pread(s->bs, offset, bytes, buf);
    if (ret < 0) {
        error_setg(errp, "Error while reading offset %" PRId64 " of %s: %s", offset, s->filename,
                   strerror(-ret));
        return 4;
    }
    return 0;
}

/* A range only one side has: it must read as zeros. */
static int check_empty(Cmp *c, Side *s, int64_t offset, int64_t bytes, Error **errp)
{
    int ret = read_side(s, offset, bytes, c->a.buf, errp);
    if (ret) {
        return ret;
    }
    int64_t idx = find_nonzero(c->a.buf, bytes);
    if (idx >= 0) {
        report(c, "Content mismatch at offset %" PRId64 "!\n", offset + idx);
        return 1;
    }
    return 0;
}

static int compare_both(Cmp *c, int64_t offset, int64_t chunk, Error **errp)
{
    int ret = read_side(&c->a, offset, chunk, c->a.buf, errp);
    if (ret == 0) {
        ret = read_side(&c->b, offset, chunk, c->b.buf, errp);
    }
    if (ret) {
        return ret;
    }
    int64_t pnum;
    bool differs = compare_sectors(c->a.buf, c->b.buf, chunk, &pnum);
    if (differs || pnum != chunk) {
        report(c, "Content mismatch at offset %" PRId64 "!\n", offset + (differs ? 0 : pnum));
        return 1;
    }
    return 0;
}

static int status_of(Side *s, int64_t offset, int64_t *pnum, Error **errp)
{
    int st = bdrv_block_status_above(s->bs, NULL, true, offset, s->size - offset, pnum, NULL, NULL,
                                     NULL);
    if (st < 0 || *pnum <= 0) {
        error_setg(errp, "Sector allocation test failed for %s", s->filename);
        return -1;
    }
    return st & STATUS_MASK;
}

/* One step over the common range; *chunk gets how far it went. */
static int compare_step(Cmp *c, int64_t offset, int64_t *chunk, Error **errp)
{
    int64_t pnum1, pnum2;
    int st1 = status_of(&c->a, offset, &pnum1, errp);
    if (st1 < 0) {
        return 3;
    }
    int st2 = status_of(&c->b, offset, &pnum2, errp);
    if (st2 < 0) {
        return 3;
    }
    bool alloc1 = st1 & BDRV_BLOCK_ALLOCATED, alloc2 = st2 & BDRV_BLOCK_ALLOCATED;
    *chunk = MIN(pnum1, pnum2);
    if (c->o->strict && st1 != st2) {
        report(c, "Strict mode: Offset %" PRId64 " block status mismatch!\n", offset);
        return 1;
    }
    if ((st1 & BDRV_BLOCK_ZERO) && (st2 & BDRV_BLOCK_ZERO)) {
        return 0;
    }
    *chunk = MIN(*chunk, (int64_t)IO_BUF_SIZE);
    if (alloc1 == alloc2) {
        return alloc1 ? compare_both(c, offset, *chunk, errp) : 0;
    }
    return check_empty(c, alloc1 ? &c->a : &c->b, offset, *chunk, errp);
}

/* The tail of the longer image must be unallocated or read as zeros. */
static int compare_tail(Cmp *c, int64_t offset, Error **errp)
{
    Side *s = c->a.size > c->b.size ? &c->a : &c->b;
    report(c, "Warning: Image size mismatch!\n");
    while (offset < s->size) {
        int64_t chunk;
        int st = status_of(s, offset, &chunk, errp);
        if (st < 0) {
            return 3;
        }
        if ((st & BDRV_BLOCK_ALLOCATED) && !(st & BDRV_BLOCK_ZERO)) {
            chunk = MIN(chunk, (int64_t)IO_BUF_SIZE);
            int ret = check_empty(c, s, offset, chunk, errp);
            if (ret) {
                return ret;
            }
        }
        offset += chunk;
        advance(c, chunk);
    }
    return 0;
}

static int compare_images(Cmp *c, Error **errp)
{
    int64_t total = MIN(c->a.size, c->b.size);
    c->progress_base = MAX(c->a.size, c->b.size);
    advance(c, 0);
    if (c->o->strict && c->a.size != c->b.size) {
        report(c, "Strict mode: Image size mismatch!\n");
        return 1;
    }
    int64_t offset = 0;
    while (offset < total) {
        int64_t chunk;
        int ret = compare_step(c, offset, &chunk, errp);
        if (ret) {
            return ret;
        }
        offset += chunk;
        advance(c, chunk);
    }
    if (c->a.size != c->b.size) {
        int ret = compare_tail(c, offset, errp);
        if (ret) {
            return ret;
        }
    }
    report(c, "Images are identical.\n");
    return 0;
}

static int open_side(Side *s, const CompareOpts *o, const char *filename, const char *fmt,
                     Error **errp)
{
    s->filename = filename;
    s->bs = img_open(filename, fmt, o->image_opts, 0, o->cache ? o->cache : "writeback",
                     o->force_share, errp);
    if (!s->bs) {
        return -1;
    }
    s->size = bdrv_getlength(s->bs);
    s->buf = xmemalign(4096, IO_BUF_SIZE);
    return 0;
}

int img_compare(const CompareOpts *o, Error **errp)
{
    engine_init();
    const char *cache = o->cache ? o->cache : "writeback";
    int dummy = 0;
    if (bdrv_parse_cache_mode(cache, &dummy, NULL) < 0) {
        error_setg(errp, "Invalid source cache option: %s", cache);
        return 2;
    }
    Cmp c = {.o = o, .out = o->out ? o->out : stdout};
    int ret = 2;
    if (open_side(&c.a, o, o->filename1, o->fmt1, errp) == 0 &&
        open_side(&c.b, o, o->filename2, o->fmt2, errp) == 0) {
        ret = compare_images(&c, errp);
    }
    free(c.a.buf);
    free(c.b.buf);
    if (c.b.bs) {
        bdrv_unref(c.b.bs);
    }
    if (c.a.bs) {
        bdrv_unref(c.a.bs);
    }
    return ret;
}

int qimg_compare(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"object", required_argument, NULL, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, NULL, QIMG_OPT_IMAGE_OPTS},
        {"force-share", no_argument, NULL, 'U'},
        {"a-format", required_argument, NULL, 'f'},
        {"b-format", required_argument, NULL, 'F'},
        {"source-cache", required_argument, NULL, 'T'},
        {"progress", no_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"strict", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    CompareOpts o = {.out = stdout};
    bool progress = false;
    int c;
    while ((c = qimg_getopt(argc, argv, "hf:F:T:pqsU", longopts)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: return 0;
        case QIMG_GETOPT_ERROR: return 1;
        case 'f': o.fmt1 = optarg; break;
        case 'F': o.fmt2 = optarg; break;
        case 'T': o.cache = optarg; break;
        case 'p': progress = true; break;
        case 'q': o.quiet = true; break;
        case 's': o.strict = true; break;
        case 'U': o.force_share = true; break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                return 1;
            }
            break;
        }
    }
    if (o.quiet) {
        progress = false; /* no progress in quiet mode */
    }
    if (optind != argc - 2) {
        return qimg_usage("Expecting two image file names");
    }
    o.filename1 = argv[optind];
    o.filename2 = argv[optind + 1];
    progress_init(progress, 2.0);
    if (progress) {
        o.progress = progress_engine_hook();
    }
    Error *err = NULL;
    int ret = img_compare(&o, &err);
    progress_end();
    fflush(stdout);
    qimg_report_err(err);
    return ret;
}
