/*
 * fuzz_image.c — libFuzzer target: one format driver on an in-memory image.
 *
 * Built once per format (FUZZ_FORMAT="qcow2", ...; "probe" lets probing pick
 * the driver).  For each input: open it read-write with no backing chain,
 * walk block status and read what it reports as data (bounded), check it,
 * repair it, write into it and read the write back.  Anything but a clean
 * error is a bug: a crash, a sanitizer report, a hang, a huge allocation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "blocklayer/secret_store.h"
#include "common/util.h"
#include "engine/engine.h"

#ifndef FUZZ_FORMAT
#define FUZZ_FORMAT "probe"
#endif

#define READ_BUDGET (16 * MiB) /* guest bytes read per input */
#define CHUNK       (256 * KiB)

static void quiet(void *opaque, bool warning, const char *text) {}

static void walk_and_read(BlockDriverState *bs)
{
    int64_t len = bdrv_getlength(bs);
    int64_t budget = READ_BUDGET;
    uint8_t *buf = xmalloc(CHUNK);
    for (int64_t off = 0, steps = 0; off < len && budget > 0 && steps < 100000; steps++) {
        int64_t pnum = 0;
        int ret = bdrv_block_status(bs, true, off, len - off, &pnum, NULL, NULL);
        if (ret < 0 || pnum <= 0) {
            break;
        }
        if (ret & BDRV_BLOCK_DATA) {
            int64_t n = MIN(MIN(pnum, (int64_t)CHUNK), budget);
            bdrv_pread(bs, off, n, buf);
            budget -= n;
        }
        off += pnum;
    }
    free(buf);
}

static void write_and_verify(BlockDriverState *bs)
{
    int64_t len = bdrv_getlength(bs);
    if (len < 4096) {
        return;
    }
    uint8_t in[4096], out[4096];
    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)(i * 7 + 1);
    }
    int64_t offsets[] = {0, ROUND_DOWN(len / 2, 512), len - 4096};
    for (size_t i = 0; i < ARRAY_SIZE(offsets); i++) {
        if (bdrv_pwrite(bs, offsets[i], sizeof(in), in) == 0 &&
            bdrv_pread(bs, offsets[i], sizeof(out), out) == 0 && memcmp(in, out, sizeof(in))) {
            abort(); /* a write that succeeded must read back */
        }
    }
    bdrv_flush(bs);
}

/* LUKS without a secret stops at the header: give it one, and a PBKDF2
 * budget small enough that a key slot costs microseconds, so that inputs
 * reach the key slots, the AF merge and the payload. */
static const Opts *luks_options(void)
{
    static Opts o = OPTS_INIT;
    if (strcmp(FUZZ_FORMAT, "luks")) {
        return NULL;
    }
    if (!o.n) {
        secret_store_put("fz", "fuzz", 4);
        opts_set(&o, "key-secret", "fz");
        opts_set(&o, "max-pbkdf-iters", "10000");
    }
    return &o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    engine_init();
    msg_set_sink(quiet, NULL);
    const char *fmt = strcmp(FUZZ_FORMAT, "probe") ? FUZZ_FORMAT : NULL;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: read-only, check without repair; pass 1: repair and write */
        int flags = BDRV_O_NO_BACKING | (pass ? BDRV_O_RDWR | BDRV_O_CHECK : 0);
        BlockFile *f = bfile_new_mem("fuzz.img", data, size, pass == 1);
        Error *err = NULL;
        BlockDriverState *bs = bdrv_open_file(f, fmt, luks_options(), flags, &err);
        if (!bs) {
            error_free(err);
            continue;
        }
        if (pass == 0) {
            walk_and_read(bs);
        }
        if (bs->drv->check) {
            BdrvCheckResult res = {0};
            bs->drv->check(bs, &res, pass ? BDRV_FIX_LEAKS | BDRV_FIX_ERRORS : 0);
        }
        if (pass == 1 && !bs->drv->read_only) {
            write_and_verify(bs);
        }
        bdrv_unref(bs);
    }
    return 0;
}
