/*
 * f1tool.c — a tiny driver-level tool for the formats1 tests (vpc, vdi,
 * qed, qcow, parallels, bochs, cloop, dmg).  It talks to the block layer
 * directly, so the drivers can be tested against qemu-img before (and
 * independently of) the engine's commands:
 *
 *   f1tool create FMT FILE SIZE [OPTS]     create an image (SIZE in bytes)
 *   f1tool cat FILE [FMT]                  guest bytes to stdout
 *   f1tool write FILE FMT RAW              copy RAW's data into the image,
 *                                          skipping all-zero 64 KiB chunks
 *   f1tool info FILE [FMT]                 "format size cluster backing"
 *   f1tool map FILE [FMT]                  one line per block-status extent
 *   f1tool check FILE FMT [leaks|all]      run the driver's check
 *   f1tool compress FILE FMT RAW           write RAW with compressed writes
 *
 * Exit 0 on success, 1 with the error on stderr otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"
#include "formats/formats.h"

#define CHUNK (1 << 20)

static int die(Error *err)
{
    fprintf(stderr, "f1tool: %s\n", err ? error_get_pretty(err) : "failed");
    error_free(err);
    return 1;
}

static int do_create(const char *fmt, const char *file, const char *size, const char *optstr)
{
    Error *err = NULL;
    const BlockDriver *drv = bdrv_find_format(fmt);
    if (!drv || !drv->create) {
        fprintf(stderr, "f1tool: no create for '%s'\n", fmt);
        return 1;
    }
    Opts o = OPTS_INIT;
    if (optstr && opts_parse(&o, optstr, NULL, &err) < 0) {
        return die(err);
    }
    opts_set(&o, "size", size);
    BdrvCreateInfo ci = {.filename = file, .opts = &o};
    if (parse_uint64(size, &ci.size) < 0) {
        fprintf(stderr, "f1tool: bad size\n");
        return 1;
    }
    const char *seed = getenv("F1_REPRO_SEED");
    if (seed) {
        ci.repro.enabled = true;
        memcpy(ci.repro.seed, seed, MIN(strlen(seed), sizeof(ci.repro.seed)));
        ci.repro.time = 1700000000;
    }
    const OptDesc *const descs[] = {drv->create_opts, file_create_opts, NULL};
    int ret = opts_validate(&o, descs, &err);
    if (ret == 0) {
        ret = drv->create(&ci, &err);
    }
    opts_release(&o);
    return ret < 0 ? die(err) : 0;
}

static BlockDriverState *open_img(const char *file, const char *fmt, bool rw)
{
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(file, fmt, NULL, rw ? BDRV_O_RDWR : 0, &err);
    if (!bs) {
        die(err);
    }
    return bs;
}

static int do_cat(const char *file, const char *fmt)
{
    BlockDriverState *bs = open_img(file, fmt, false);
    if (!bs) {
        return 1;
    }
    uint8_t *buf = xmalloc(CHUNK);
    int64_t len = bdrv_getlength(bs);
    int ret = 0;
    for (int64_t off = 0; off < len && ret == 0; off += CHUNK) {
        int64_t n = MIN(len - off, CHUNK);
        ret = bdrv_pread(bs, off, n, buf);
        if (ret == 0 && fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            ret = -EIO;
        }
    }
    free(buf);
    bdrv_unref(bs);
    if (ret < 0) {
        fprintf(stderr, "f1tool: read failed: %s\n", strerror(-ret));
    }
    return ret < 0;
}

static int do_write(const char *file, const char *fmt, const char *raw, bool compressed)
{
    FILE *in = fopen(raw, "rb");
    if (!in) {
        perror(raw);
        return 1;
    }
    BlockDriverState *bs = open_img(file, fmt, true);
    if (!bs) {
        fclose(in);
        return 1;
    }
    int64_t chunk = 64 * KiB;
    if (compressed && bdrv_get_cluster_size(bs) > 0) {
        chunk = bdrv_get_cluster_size(bs);
    }
    uint8_t *buf = xmalloc((size_t)chunk);
    int ret = 0;
    int64_t len = bdrv_getlength(bs);
    for (int64_t off = 0; off < len && ret == 0; off += chunk) {
        size_t n = fread(buf, 1, (size_t)MIN(chunk, len - off), in);
        if (n == 0) {
            break;
        }
        if (buffer_is_zero(buf, n)) {
            continue;
        }
        ret = compressed ? bdrv_pwrite_compressed(bs, off, (int64_t)n, buf)
                         : bdrv_pwrite(bs, off, (int64_t)n, buf);
    }
    free(buf);
    fclose(in);
    if (ret == 0) {
        ret = bdrv_flush(bs);
    }
    bdrv_unref(bs);
    if (ret < 0) {
        fprintf(stderr, "f1tool: write failed: %s\n", strerror(-ret));
    }
    return ret < 0;
}

static int do_info(const char *file, const char *fmt)
{
    BlockDriverState *bs = open_img(file, fmt, false);
    if (!bs) {
        return 1;
    }
    printf("%s %" PRId64 " %d %s\n", bdrv_format_name(bs), bdrv_getlength(bs),
           bdrv_get_cluster_size(bs), bs->backing_file ? bs->backing_file : "-");
    bdrv_unref(bs);
    return 0;
}

static int do_map(const char *file, const char *fmt)
{
    BlockDriverState *bs = open_img(file, fmt, false);
    if (!bs) {
        return 1;
    }
    int64_t len = bdrv_getlength(bs);
    int ret = 0;
    for (int64_t off = 0; off < len;) {
        int64_t pnum, map = 0;
        ret = bdrv_block_status_above(bs, NULL, true, off, len - off, &pnum, &map, NULL, NULL);
        if (ret < 0 || pnum <= 0) {
            break;
        }
        printf("%" PRId64 " %" PRId64 " data=%d zero=%d\n", off, pnum, !!(ret & BDRV_BLOCK_DATA),
               !!(ret & BDRV_BLOCK_ZERO));
        off += pnum;
        ret = 0;
    }
    bdrv_unref(bs);
    return ret < 0;
}

static int do_check(const char *file, const char *fmt, const char *fix)
{
    int fl = 0;
    if (fix) {
        fl = !strcmp(fix, "all") ? BDRV_FIX_LEAKS | BDRV_FIX_ERRORS : BDRV_FIX_LEAKS;
    }
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(file, fmt, NULL, BDRV_O_CHECK | (fl ? BDRV_O_RDWR : 0), &err);
    if (!bs) {
        return die(err);
    }
    if (!bs->drv->check) {
        bdrv_unref(bs);
        fprintf(stderr, "f1tool: no check\n");
        return 63;
    }
    BdrvCheckResult res = {0};
    int ret = bs->drv->check(bs, &res, fl);
    printf("corruptions=%d leaks=%d check_errors=%d fixed=%d/%d alloc=%" PRIu64 "/%" PRIu64
           " end=%" PRId64 "\n",
           res.corruptions, res.leaks, res.check_errors, res.corruptions_fixed, res.leaks_fixed,
           res.bfi.allocated_clusters, res.bfi.total_clusters, res.image_end_offset);
    bdrv_unref(bs);
    if (ret < 0) {
        return 1;
    }
    return res.corruptions ? 2 : res.leaks ? 3 : 0;
}

int main(int argc, char **argv)
{
    formats_register_all();
    if (argc < 3) {
        fprintf(stderr, "usage: see f1tool.c\n");
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "create") && argc >= 5) {
        return do_create(argv[2], argv[3], argv[4], argc > 5 ? argv[5] : NULL);
    }
    if (!strcmp(cmd, "cat")) {
        return do_cat(argv[2], argc > 3 ? argv[3] : NULL);
    }
    if (!strcmp(cmd, "write") && argc >= 5) {
        return do_write(argv[2], argv[3], argv[4], false);
    }
    if (!strcmp(cmd, "compress") && argc >= 5) {
        return do_write(argv[2], argv[3], argv[4], true);
    }
    if (!strcmp(cmd, "info")) {
        return do_info(argv[2], argc > 3 ? argv[3] : NULL);
    }
    if (!strcmp(cmd, "map")) {
        return do_map(argv[2], argc > 3 ? argv[3] : NULL);
    }
    if (!strcmp(cmd, "check") && argc >= 4) {
        return do_check(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
    }
    fprintf(stderr, "f1tool: bad command\n");
    return 1;
}
