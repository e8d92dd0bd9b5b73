/*
 * imgcat.c — a small test tool that drives the block layer directly, for
 * the format drivers' end-to-end tests (a qemu-io in miniature).
 *
 *   imgcat [-f FMT] cat IMG              guest content to stdout
 *   imgcat [-f FMT] write IMG OFF LEN BYTE   write LEN bytes of value BYTE
 *   imgcat [-f FMT] writefile IMG OFF FILE   write FILE's bytes at OFF
 *   imgcat [-f FMT] zero IMG OFF LEN [unmap] write_zeroes
 *   imgcat [-f FMT] discard IMG OFF LEN
 *   imgcat [-f FMT] compress IMG OFF FILE    write FILE (one cluster) compressed
 *   imgcat [-f FMT] map IMG              "offset length status host" per extent
 *   imgcat [-f FMT] threads IMG N        read the image from N threads, print sha-free
 *                                        checksum (must equal `cat | cksum`'s input)
 *
 * Offsets and lengths accept size suffixes (k, M, G).  Exit 0 on success,
 * 1 with "imgcat: <error>" on stderr on failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block.h"
#include "common/util.h"
#include "engine/engine.h"

static int die(const char *what, int ret)
{
    fprintf(stderr, "imgcat: %s: %s\n", what, strerror(ret < 0 ? -ret : ret));
    return 1;
}

static int64_t num(const char *s)
{
    uint64_t v = 0;
    if (parse_size(s, NULL, &v) < 0) {
        fprintf(stderr, "imgcat: bad number '%s'\n", s);
        exit(1);
    }
    return (int64_t)v;
}

static int do_cat(BlockDriverState *bs)
{
    int64_t len = bdrv_getlength(bs);
    size_t chunk = 1 << 20;
    uint8_t *buf = xmalloc(chunk);
    for (int64_t off = 0; off < len;) {
        int64_t n = MIN((int64_t)chunk, len - off);
        int ret = bdrv_pread(bs, off, n, buf);
        if (ret < 0) {
            free(buf);
            return die("read", ret);
        }
        fwrite(buf, 1, (size_t)n, stdout);
        off += n;
    }
    free(buf);
    return 0;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    StrBuf sb = STRBUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        sb_addn(&sb, tmp, n);
    }
    fclose(f);
    *len = sb.len;
    return (uint8_t *)sb_detach(&sb);
}

static int do_map(BlockDriverState *bs)
{
    int64_t len = bdrv_getlength(bs);
    for (int64_t off = 0; off < len;) {
        int64_t pnum, map = 0;
        BlockFile *file = NULL;
        int ret = bdrv_block_status(bs, true, off, len - off, &pnum, &map, &file);
        if (ret < 0) {
            return die("block status", ret);
        }
        printf("%" PRId64 " %" PRId64 " 0x%x", off, pnum, ret & ~BDRV_BLOCK_EOF);
        if (ret & BDRV_BLOCK_OFFSET_VALID) {
            printf(" %" PRId64, map);
        }
        printf("\n");
        off += pnum;
    }
    return 0;
}

typedef struct ThreadArg {
    BlockDriverState *bs;
    int64_t start, end;
    uint8_t *out;
    int ret;
} ThreadArg;

static void *reader(void *opaque)
{
    ThreadArg *a = opaque;
    /* Small odd-sized requests so that threads interleave a lot. */
    for (int64_t off = a->start; off < a->end && a->ret == 0;) {
        int64_t n = MIN(a->end - off, 77777);
        a->ret = bdrv_pread(a->bs, off, n, a->out + (off - a->start));
        off += n;
    }
    return NULL;
}

static int do_threads(BlockDriverState *bs, int n)
{
    int64_t len = bdrv_getlength(bs);
    uint8_t *all = xmalloc((size_t)MAX(len, 1));
    ThreadArg *args = XNEWV(ThreadArg, (size_t)n);
    pthread_t *tids = XNEWV(pthread_t, (size_t)n);
    for (int i = 0; i < n; i++) {
        args[i] = (ThreadArg){bs, len * i / n, len * (i + 1) / n, all + len * i / n, 0};
        pthread_create(&tids[i], NULL, reader, &args[i]);
    }
    int ret = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(tids[i], NULL);
        ret = ret ? ret : args[i].ret;
    }
    if (ret == 0) {
        fwrite(all, 1, (size_t)len, stdout);
    }
    free(all);
    free(args);
    free(tids);
    return ret < 0 ? die("threaded read", ret) : 0;
}

static int run(BlockDriverState *bs, const char *cmd, int argc, char **argv)
{
    int ret = 0;
    if (!strcmp(cmd, "cat")) {
        return do_cat(bs);
    } else if (!strcmp(cmd, "map")) {
        return do_map(bs);
    } else if (!strcmp(cmd, "threads") && argc >= 1) {
        return do_threads(bs, (int)num(argv[0]));
    } else if (!strcmp(cmd, "write") && argc >= 3) {
        int64_t len = num(argv[1]);
        uint8_t *buf = xmalloc((size_t)MAX(len, 1));
        memset(buf, (int)num(argv[2]), (size_t)len);
        ret = bdrv_pwrite(bs, num(argv[0]), len, buf);
        free(buf);
    } else if ((!strcmp(cmd, "writefile") || !strcmp(cmd, "compress")) && argc >= 2) {
        size_t len;
        uint8_t *buf = slurp(argv[1], &len);
        if (!buf) {
            return die(argv[1], errno);
        }
        if (!strcmp(cmd, "compress")) {
            ret = bdrv_pwrite_compressed(bs, num(argv[0]), (int64_t)len, buf);
        } else {
            ret = bdrv_pwrite(bs, num(argv[0]), (int64_t)len, buf);
        }
        free(buf);
    } else if (!strcmp(cmd, "zero") && argc >= 2) {
        int flags = argc >= 3 && !strcmp(argv[2], "unmap") ? BDRV_REQ_MAY_UNMAP : 0;
        ret = bdrv_pwrite_zeroes(bs, num(argv[0]), num(argv[1]), flags);
    } else if (!strcmp(cmd, "discard") && argc >= 2) {
        ret = bdrv_pdiscard(bs, num(argv[0]), num(argv[1]));
    } else {
        fprintf(stderr, "imgcat: bad command or arguments\n");
        return 1;
    }
    if (ret == 0) {
        ret = bdrv_flush(bs);
    }
    return ret < 0 ? die(cmd, ret) : 0;
}

int main(int argc, char **argv)
{
    const char *fmt = NULL;
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "-f")) {
        fmt = argv[2];
        i = 3;
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: imgcat [-f FMT] CMD IMG [ARGS...]\n");
        return 1;
    }
    engine_init();
    const char *cmd = argv[i];
    bool rw = strcmp(cmd, "cat") && strcmp(cmd, "map") && strcmp(cmd, "threads");
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(argv[i + 1], fmt, NULL, rw ? BDRV_O_RDWR : 0, &err);
    if (!bs) {
        fprintf(stderr, "imgcat: %s\n", error_get_pretty(err));
        error_free(err);
        return 1;
    }
    int ret = run(bs, cmd, argc - i - 2, argv + i + 2);
    bdrv_unref(bs);
    return ret;
}
