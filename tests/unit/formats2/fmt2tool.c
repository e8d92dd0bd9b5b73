/*
 * fmt2tool.c — a small test driver for the vmdk and vhdx format drivers,
 * linked with the formats library only (no engine), so the e2e tests in
 * tests/e2e/formats2 can exercise create / open / read / write / info /
 * check directly and compare with qemu-img.
 *
 *   fmt2tool create FMT FILE SIZE [OPTS] [SEED]   create an image
 *   fmt2tool cat FILE [FMT] [OPENOPTS]            guest bytes to stdout
 *   fmt2tool info FILE [FMT]                      JSON: size, cluster, specific
 *   fmt2tool convert SRC FMT DST [OPTS] [c]       copy (c: compressed writes)
 *   fmt2tool write FILE OFFSET LEN BYTE [FMT]     write LEN bytes of BYTE
 *   fmt2tool zero FILE OFFSET LEN [FMT]           write_zeroes (may unmap)
 *   fmt2tool check FILE [FMT] [r]                 run the driver's check
 *
 * Exit status: 0 on success, 1 with "fmt2tool: <message>" on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"
#include "formats/formats.h"

static int fail(Error *err)
{
    fprintf(stderr, "fmt2tool: %s\n", err ? error_get_pretty(err) : "failed");
    error_free(err);
    return 1;
}

static const char *arg(int argc, char **argv, int i)
{
    return i < argc && argv[i][0] ? argv[i] : NULL;
}

static int cmd_create(int argc, char **argv)
{
    Error *err = NULL;
    const BlockDriver *drv = bdrv_find_format(argv[2]);
    uint64_t size;
    if (!drv || parse_size(argv[4], NULL, &size) < 0) {
        fprintf(stderr, "fmt2tool: bad format or size\n");
        return 1;
    }
    Opts o = OPTS_INIT;
    if (arg(argc, argv, 5) && opts_parse(&o, argv[5], NULL, &err) < 0) {
        return fail(err);
    }
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
    opts_set(&o, "size", sz);
    BdrvCreateInfo ci = {.filename = argv[3], .opts = &o, .size = size};
    if (arg(argc, argv, 6)) {
        ci.repro.enabled = true;
        memcpy(ci.repro.seed, argv[6], MIN(strlen(argv[6]), sizeof(ci.repro.seed)));
        ci.repro.time = 1700000000;
    }
    int ret = drv->create(&ci, &err);
    opts_release(&o);
    return ret < 0 ? fail(err) : 0;
}

static BlockDriverState *open_img(const char *file, const char *fmt, const char *optstr, int flags)
{
    Error *err = NULL;
    Opts o = OPTS_INIT;
    if (optstr && opts_parse(&o, optstr, NULL, &err) < 0) {
        fail(err);
        return NULL;
    }
    BlockDriverState *bs = bdrv_open(file, fmt, optstr ? &o : NULL, flags, &err);
    opts_release(&o);
    if (!bs) {
        fail(err);
    }
    return bs;
}

static int cmd_cat(int argc, char **argv)
{
    BlockDriverState *bs = open_img(argv[2], arg(argc, argv, 3), arg(argc, argv, 4), 0);
    if (!bs) {
        return 1;
    }
    const int64_t chunk = 1 << 20;
    uint8_t *buf = xmalloc((size_t)chunk);
    int ret = 0;
    for (int64_t off = 0; ret == 0 && off < bs->total_size; off += chunk) {
        int64_t n = MIN(chunk, bs->total_size - off);
        ret = bdrv_pread(bs, off, n, buf);
        if (ret == 0 && fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            ret = -EIO;
        }
    }
    free(buf);
    bdrv_unref(bs);
    if (ret < 0) {
        fprintf(stderr, "fmt2tool: read error: %s\n", strerror(-ret));
        return 1;
    }
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    BlockDriverState *bs = open_img(argv[2], arg(argc, argv, 3), NULL, BDRV_O_NO_BACKING);
    if (!bs) {
        return 1;
    }
    JVal *top = json_object();
    json_add_int(top, "virtual-size", bs->total_size);
    json_add_str(top, "format", bs->drv->format_name);
    BlockDriverInfo bdi = {0};
    if (bs->drv->get_info && bs->drv->get_info(bs, &bdi) == 0 && bdi.cluster_size) {
        json_add_int(top, "cluster-size", bdi.cluster_size);
    }
    if (bs->backing_file) {
        json_add_str(top, "backing-filename", bs->backing_file);
    }
    Error *err = NULL;
    JVal *spec = bs->drv->get_specific_info ? bs->drv->get_specific_info(bs, &err) : NULL;
    if (spec) {
        json_object_add(top, "format-specific", spec);
    }
    StrBuf sb = STRBUF_INIT;
    json_print_pretty(&sb, top, 0);
    printf("%s\n", sb_str(&sb));
    sb_release(&sb);
    json_free(top);
    bdrv_unref(bs);
    return 0;
}

static int copy_data(BlockDriverState *src, BlockDriverState *dst, bool compress)
{
    int64_t cs = compress ? bdrv_get_cluster_size(dst) : (1 << 20);
    if (cs <= 0) {
        cs = 65536;
    }
    size_t cap = (size_t)cs;
    if (compress && dst->drv->compress_bound) {
        cap = dst->drv->compress_bound(dst, (size_t)cs);
    }
    uint8_t *buf = xmalloc((size_t)cs), *z = xmalloc(cap);
    int ret = 0;
    for (int64_t off = 0; ret == 0 && off < src->total_size; off += cs) {
        int64_t n = MIN(cs, src->total_size - off);
        ret = bdrv_pread(src, off, n, buf);
        if (ret < 0 || buffer_is_zero(buf, (size_t)n)) {
            continue;
        }
        ssize_t len = compress && dst->drv->compress
                          ? dst->drv->compress(dst, z, cap, buf, (size_t)n)
                          : -ENOSPC;
        if (len >= 0) {
            ret = dst->drv->write_compressed(dst, off, z, (size_t)len);
        } else if (len == -ENOSPC) {
            ret = bdrv_pwrite(dst, off, n, buf);
        } else {
            ret = (int)len;
        }
    }
    free(buf);
    free(z);
    return ret;
}

static int cmd_convert(int argc, char **argv)
{
    BlockDriverState *src = open_img(argv[2], NULL, NULL, 0);
    if (!src) {
        return 1;
    }
    Error *err = NULL;
    const BlockDriver *drv = bdrv_find_format(argv[3]);
    Opts o = OPTS_INIT;
    if (arg(argc, argv, 5) && opts_parse(&o, argv[5], NULL, &err) < 0) {
        return fail(err);
    }
    char sz[32];
    snprintf(sz, sizeof(sz), "%lld", (long long)src->total_size);
    opts_set(&o, "size", sz);
    BdrvCreateInfo ci = {.filename = argv[4], .opts = &o, .size = (uint64_t)src->total_size};
    if (!drv || drv->create(&ci, &err) < 0) {
        return fail(err);
    }
    opts_release(&o);
    BlockDriverState *dst = open_img(argv[4], argv[3], NULL, BDRV_O_RDWR);
    if (!dst) {
        return 1;
    }
    bool compress = arg(argc, argv, 6) != NULL ||
                    (dst->drv->needs_compressed_writes && dst->drv->needs_compressed_writes(dst));
    int ret = copy_data(src, dst, compress);
    if (ret == 0) {
        ret = bdrv_flush(dst);
    }
    bdrv_unref(dst);
    bdrv_unref(src);
    if (ret < 0) {
        fprintf(stderr, "fmt2tool: copy failed: %s\n", strerror(-ret));
        return 1;
    }
    return 0;
}

static int cmd_write(int argc, char **argv, bool zero)
{
    int64_t off, len, byte = 0;
    if (parse_int64(argv[3], &off) < 0 || parse_int64(argv[4], &len) < 0 ||
        (!zero && parse_int64(argv[5], &byte) < 0)) {
        fprintf(stderr, "fmt2tool: bad numbers\n");
        return 1;
    }
    BlockDriverState *bs = open_img(argv[2], arg(argc, argv, zero ? 5 : 6), NULL, BDRV_O_RDWR);
    if (!bs) {
        return 1;
    }
    int ret;
    if (zero) {
        ret = bdrv_pwrite_zeroes(bs, off, len, BDRV_REQ_MAY_UNMAP);
    } else {
        uint8_t *buf = xmalloc((size_t)len);
        memset(buf, (int)byte, (size_t)len);
        ret = bdrv_pwrite(bs, off, len, buf);
        free(buf);
    }
    bdrv_unref(bs);
    if (ret < 0) {
        fprintf(stderr, "fmt2tool: write failed: %s\n", strerror(-ret));
        return 1;
    }
    return 0;
}

static int cmd_check(int argc, char **argv)
{
    bool fix = arg(argc, argv, 4) != NULL;
    BlockDriverState *bs =
        open_img(argv[2], arg(argc, argv, 3), NULL, BDRV_O_CHECK | (fix ? BDRV_O_RDWR : 0));
    if (!bs) {
        return 1;
    }
    BdrvCheckResult res = {0};
    int ret = bs->drv->check ? bs->drv->check(bs, &res, fix ? BDRV_FIX_LEAKS | BDRV_FIX_ERRORS : 0)
                             : -ENOTSUP;
    printf("ret=%d corruptions=%d leaks=%d fixed=%d\n", ret, res.corruptions, res.leaks,
           res.corruptions_fixed);
    bdrv_unref(bs);
    return ret < 0 || res.corruptions ? 2 : 0;
}

int main(int argc, char **argv)
{
    formats_register_all();
    const char *c = argc > 2 ? argv[1] : "";
    if (!strcmp(c, "create") && argc >= 5) {
        return cmd_create(argc, argv);
    } else if (!strcmp(c, "cat")) {
        return cmd_cat(argc, argv);
    } else if (!strcmp(c, "info")) {
        return cmd_info(argc, argv);
    } else if (!strcmp(c, "convert") && argc >= 5) {
        return cmd_convert(argc, argv);
    } else if (!strcmp(c, "write") && argc >= 6) {
        return cmd_write(argc, argv, false);
    } else if (!strcmp(c, "zero") && argc >= 5) {
        return cmd_write(argc, argv, true);
    } else if (!strcmp(c, "check")) {
        return cmd_check(argc, argv);
    }
    fprintf(stderr, "usage: fmt2tool create|cat|info|convert|write|zero|check ...\n");
    return 2;
}
