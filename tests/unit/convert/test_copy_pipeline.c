/*
 * test_copy_pipeline.c — the copy pipeline's logic: zero detection, the
 * dispatcher's walk (chunk boundaries, statuses, compressed clusters), and
 * the threaded engine's promises: every write reaches the target driver in
 * the same order whatever the thread count and window, the content is
 * right, zeros are skipped on zero-initialised targets, read errors are
 * reported (or salvaged) at the right offset.
 *
 * A "recorder" target driver logs every call it gets; a "badsrc" source
 * driver fails reads in one sector.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blocklayer/block_int.h"
#include "common/util.h"
#include "engine/copy_pipeline.h"
#include "engine/engine.h"

#define KB 1024
#define MB (1024 * 1024)

/* ---- recorder target ---- */

typedef struct Rec {
    char kind; /* W write, Z zeroes, C compressed */
    int64_t off, len;
    uint32_t sum;
} Rec;

#define MAX_RECS 20000
static Rec recs[MAX_RECS];
static int n_recs;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t writer_thread;
static bool wrong_thread;

static uint32_t checksum(const void *buf, size_t len)
{
    const uint8_t *b = buf;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * 16777619u;
    }
    return h;
}

static void record(char kind, int64_t off, int64_t len, uint32_t sum)
{
    pthread_mutex_lock(&rec_mu);
    if (!pthread_equal(pthread_self(), writer_thread)) {
        wrong_thread = true;
    }
    if (n_recs < MAX_RECS) {
        recs[n_recs++] = (Rec){kind, off, len, sum};
    }
    pthread_mutex_unlock(&rec_mu);
}

static int rec_open(BlockDriverState *bs, const Opts *o, int flags, Error **errp)
{
    bs->total_size = bfile_getlength(bs->file);
    return 0;
}
static void nop_close(BlockDriverState *bs) {}
static int rec_pread(BlockDriverState *bs, int64_t off, int64_t bytes, void *buf)
{
    memset(buf, 0, (size_t)bytes);
    return 0;
}
static int rec_pwrite(BlockDriverState *bs, int64_t off, int64_t bytes, const void *buf)
{
    record('W', off, bytes, checksum(buf, (size_t)bytes));
    return 0;
}
static int rec_zeroes(BlockDriverState *bs, int64_t off, int64_t bytes, int flags)
{
    record('Z', off, bytes, 0);
    return 0;
}
/* Fake codec: clusters starting with 0xff "do not compress". */
static ssize_t rec_compress(BlockDriverState *bs, void *dst, size_t dst_size, const void *src,
                            size_t bytes)
{
    if (((const uint8_t *)src)[0] == 0xff) {
        return -ENOSPC;
    }
    size_t n = bytes / 4;
    memcpy(dst, src, n);
    return (ssize_t)n;
}
static int rec_write_compressed(BlockDriverState *bs, int64_t off, const void *data, size_t len)
{
    record('C', off, (int64_t)len, checksum(data, len));
    return 0;
}
static int rec_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    bdi->cluster_size = 64 * KB;
    return 0;
}

static const BlockDriver bdrv_recorder = {
    .format_name = "recorder",
    .instance_size = 1,
    .thread_model = THREAD_MODEL_SERIALIZE,
    .open = rec_open,
    .close = nop_close,
    .pread = rec_pread,
    .pwrite = rec_pwrite,
    .write_zeroes = rec_zeroes,
    .compress = rec_compress,
    .write_compressed = rec_write_compressed,
    .get_info = rec_get_info,
};

/* ---- badsrc: a raw-like source whose reads fail in one sector ---- */

static int64_t bad_sector_off = -1;

static int bad_open(BlockDriverState *bs, const Opts *o, int flags, Error **errp)
{
    bs->total_size = bfile_getlength(bs->file);
    return 0;
}
static int bad_pread(BlockDriverState *bs, int64_t off, int64_t bytes, void *buf)
{
    if (bad_sector_off >= 0 && off < bad_sector_off + 512 && off + bytes > bad_sector_off) {
        return -EIO;
    }
    return bfile_pread(bs->file, off, buf, (size_t)bytes);
}
static const BlockDriver bdrv_badsrc = {
    .format_name = "badsrc",
    .instance_size = 1,
    .thread_model = THREAD_MODEL_PARALLEL,
    .open = bad_open,
    .close = nop_close,
    .pread = bad_pread,
};

/* ---- fixtures ---- */

static char dir[64];
static char src_path[128], src2_path[128], tgt_path[128], rec_path[128];
#define SRC_SIZE (9 * MB + 512 * 3) /* odd tail: not a cluster multiple */

static void write_at(const char *path, int64_t off, const void *buf, size_t len)
{
    BlockFile *f = bfile_open(path, BFILE_RDWR | BFILE_NO_LOCK, NULL);
    assert_non_null(f);
    assert_int_equal(bfile_pwrite(f, off, buf, len), 0);
    bfile_close(f);
}

/* Source layout: random data, allocated zeros, a hole, small islands,
 * an incompressible (0xff) cluster, data up to the odd end. */
static void make_source(const char *path, uint32_t seed)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(truncate(path, SRC_SIZE), 0);
    uint8_t *buf = xmalloc(MB);
    srand(seed);
    for (int i = 0; i < MB; i++) {
        buf[i] = (uint8_t)(rand() % 7 ? rand() : 0);
    }
    write_at(path, 0, buf, MB); /* [0,1M) data */
    memset(buf, 0, MB);
    write_at(path, MB, buf, MB); /* [1M,2M) allocated zeros */
    uint8_t island[512];
    memset(island, 'x', sizeof(island));
    for (int64_t off = 4 * MB; off < 5 * MB; off += 12 * KB) {
        write_at(path, off, island, sizeof(island)); /* islands in zeros */
    }
    memset(buf, 0xff, 64 * KB);
    write_at(path, 6 * MB, buf, 64 * KB); /* incompressible cluster */
    for (int i = 0; i < MB; i++) {
        buf[i] = (uint8_t)(i * 7 + seed);
    }
    write_at(path, 8 * MB, buf, MB);
    write_at(path, 9 * MB, buf, 1536); /* odd tail */
    free(buf);
}

static int setup(void **state)
{
    engine_init();
    bdrv_register(&bdrv_recorder);
    bdrv_register(&bdrv_badsrc);
    snprintf(dir, sizeof(dir), "/tmp/imgpipe-cp-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(src_path, sizeof(src_path), "%s/src.raw", dir);
    snprintf(src2_path, sizeof(src2_path), "%s/src2.raw", dir);
    snprintf(tgt_path, sizeof(tgt_path), "%s/tgt.raw", dir);
    snprintf(rec_path, sizeof(rec_path), "%s/rec.img", dir);
    make_source(src_path, 1);
    make_source(src2_path, 2);
    return 0;
}

static int teardown(void **state)
{
    unlink(src_path);
    unlink(src2_path);
    unlink(tgt_path);
    unlink(rec_path);
    rmdir(dir);
    return 0;
}

static BlockDriverState *open_img(const char *path, const char *fmt, bool rw)
{
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(path, fmt, NULL, rw ? BDRV_O_RDWR : 0, &err);
    if (!bs) {
        fail_msg("open %s: %s", path, error_get_pretty(err));
    }
    return bs;
}

static BlockDriverState *new_target(const char *path, const char *fmt, int64_t size)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(truncate(path, size), 0);
    return open_img(path, fmt, true);
}

/* ---- zero detection ---- */

static void fill_pattern(uint8_t *buf, const char *pattern)
{
    /* one char per sector: 'd' data, '0' zero */
    for (size_t i = 0; pattern[i]; i++) {
        memset(buf + i * 512, pattern[i] == 'd' ? 0x5a : 0, 512);
    }
}

static void test_zero_scan(void **state)
{
    uint8_t buf[64 * 512];
    bool data;
    fill_pattern(buf, "dddddddd");
    assert_int_equal(copy_zero_scan(buf, 8, 0, 8, 8, &data), 8);
    assert_true(data);
    fill_pattern(buf, "00000000");
    assert_int_equal(copy_zero_scan(buf, 8, 0, 8, 8, &data), 8);
    assert_false(data);
    /* a short zero gap inside data is folded into the data */
    fill_pattern(buf, "dddddddd000dddddddddddddddd");
    assert_int_equal(copy_zero_scan(buf, 27, 0, 8, 8, &data), 27);
    assert_true(data);
    /* a long zero gap ends the data run, at an aligned boundary */
    fill_pattern(buf, "dddddddd0000000000000000dddddddd");
    assert_int_equal(copy_zero_scan(buf, 32, 0, 8, 8, &data), 8);
    assert_true(data);
    assert_int_equal(copy_zero_scan(buf + 8 * 512, 24, 8, 8, 8, &data), 16);
    assert_false(data);
    /* data ending off-boundary grows to the boundary; the zero run after
     * it starts there */
    fill_pattern(buf, "ddd0000000000000000000dddddddddd");
    assert_int_equal(copy_zero_scan(buf, 32, 0, 8, 8, &data), 8);
    assert_true(data);
    assert_int_equal(copy_zero_scan(buf + 8 * 512, 24, 8, 8, 8, &data), 8);
    assert_false(data);
    /* a leading zero run too short to reach a boundary is data */
    fill_pattern(buf, "00dddddd");
    assert_int_equal(copy_zero_scan(buf, 8, 0, 8, 8, &data), 8);
    assert_true(data);
    /* without alignment (1) a leading zero run is a zero run */
    assert_int_equal(copy_zero_scan(buf, 8, 0, 1, 1, &data), 2);
    assert_false(data);
}

/* ---- the walk ---- */

static void walk(const CopyParams *p, int64_t cluster, int64_t *n_data, int64_t *n_zero,
                 int64_t *max_data, int64_t *total)
{
    CopyIter it;
    Error *err = NULL;
    assert_int_equal(copy_iter_init(&it, p, cluster, &err), 0);
    CopyStatus st;
    int64_t n;
    *n_data = *n_zero = *max_data = *total = 0;
    int64_t pos = 0;
    while ((n = copy_iter_next(&it, &st, &err)) > 0) {
        if (p->compress) {
            assert_int_equal(pos % (cluster / 512), 0);
        }
        if (st == COPY_DATA) {
            *n_data += n;
            *max_data = MAX(*max_data, n);
        } else {
            assert_int_equal(st, COPY_ZERO);
            *n_zero += n;
        }
        pos += n;
    }
    assert_int_equal(n, 0);
    *total = pos;
    copy_iter_release(&it);
}

static void test_walk(void **state)
{
    BlockDriverState *bs = open_img(src_path, "raw", false);
    CopySource src = {.bs = bs, .length = -1};
    CopyParams p = {.src = &src, .n_src = 1, .min_sparse = 4096};
    int64_t nd, nz, maxd, total;
    walk(&p, 0, &nd, &nz, &maxd, &total);
    assert_int_equal(total, DIV_ROUND_UP(SRC_SIZE, 512));
    assert_true(maxd <= COPY_CHUNK_MAX / 512);
    assert_true(nz >= 2 * MB / 512); /* the hole [2M,4M) is never read */
    assert_true(nd >= 3 * MB / 512);
    /* compressed: whole clusters, DATA pieces one cluster each */
    p.compress = true;
    walk(&p, 64 * KB, &nd, &nz, &maxd, &total);
    assert_int_equal(maxd, 64 * KB / 512);
    assert_int_equal(total, DIV_ROUND_UP(SRC_SIZE, 512));
    /* a cluster size the pipeline cannot buffer is refused */
    CopyIter it;
    Error *err = NULL;
    assert_int_equal(copy_iter_init(&it, &p, 4 * MB, &err), -EINVAL);
    assert_string_equal(error_get_pretty(err), "invalid cluster size");
    error_free(err);
    bdrv_unref(bs);
}

/* ---- the engine ---- */

static int run_into_recorder(CopySource *srcs, int n, bool compress, int threads, int inflight,
                             bool zero_init, bool ooo)
{
    BlockDriverState *t = new_target(rec_path, "recorder", 2 * (SRC_SIZE + 511) / 512 * 512);
    n_recs = 0;
    wrong_thread = false;
    writer_thread = pthread_self();
    CopyParams p = {.src = srcs,
                    .n_src = n,
                    .target = t,
                    .compress = compress,
                    .min_sparse = 4096,
                    .target_zero_init = zero_init,
                    .threads = threads,
                    .max_inflight = inflight,
                    .out_of_order = ooo};
    Error *err = NULL;
    int ret = copy_pipeline_run(&p, &err);
    if (ret < 0) {
        fail_msg("pipeline: %s", error_get_pretty(err));
    }
    bdrv_unref(t);
    assert_false(wrong_thread);
    return n_recs;
}

static int rec_cmp(const void *a, const void *b)
{
    const Rec *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static void test_order_independent_of_threads(void **state)
{
    BlockDriverState *a = open_img(src_path, "raw", false), *b = open_img(src2_path, "raw", false);
    CopySource srcs[2] = {{.bs = a, .length = -1}, {.bs = b, .length = -1}};
    static Rec ref[MAX_RECS];
    for (int compress = 0; compress < 2; compress++) {
        int nref = run_into_recorder(srcs, 2, compress, 1, 1, false, false);
        assert_true(nref > 10 && nref < MAX_RECS);
        memcpy(ref, recs, sizeof(Rec) * (size_t)nref);
        /* in address order, non-overlapping */
        for (int i = 1; i < nref; i++) {
            assert_true(ref[i].off >=
                        ref[i - 1].off + (compress && ref[i - 1].kind == 'C' ? 1 : ref[i - 1].len));
        }
        const int configs[][2] = {{2, 4}, {8, 16}, {16, 64}, {3, 2}};
        for (size_t c = 0; c < ARRAY_SIZE(configs); c++) {
            int n =
                run_into_recorder(srcs, 2, compress, configs[c][0], configs[c][1], false, false);
            assert_int_equal(n, nref);
            assert_memory_equal(recs, ref, sizeof(Rec) * (size_t)n);
        }
        /* out of order: the same writes, maybe in another order */
        int n = run_into_recorder(srcs, 2, compress, 8, 16, false, true);
        assert_int_equal(n, nref);
        qsort(recs, (size_t)n, sizeof(Rec), rec_cmp);
        assert_memory_equal(recs, ref, sizeof(Rec) * (size_t)n);
        /* compressed: the 0xff cluster went in uncompressed, others compressed */
        if (compress) {
            bool saw_raw = false, saw_cmp = false;
            for (int i = 0; i < nref; i++) {
                saw_raw |= ref[i].kind == 'W' && ref[i].off == 6 * MB && ref[i].len == 64 * KB;
                saw_cmp |= ref[i].kind == 'C';
                assert_int_equal(ref[i].off % (64 * KB), 0);
            }
            assert_true(saw_raw && saw_cmp);
        }
    }
    /* zero-initialised target: no zero writes at all */
    int n = run_into_recorder(srcs, 2, false, 2, 8, true, false);
    for (int i = 0; i < n; i++) {
        assert_int_not_equal(recs[i].kind, 'Z');
    }
    bdrv_unref(a);
    bdrv_unref(b);
}

/* Concatenated sources through the engine into a raw file: same bytes. */
static void test_content(void **state)
{
    BlockDriverState *a = open_img(src_path, "raw", false), *b = open_img(src2_path, "raw", false);
    CopySource srcs[2] = {{.bs = a, .length = -1}, {.bs = b, .length = -1}};
    int64_t seg = ROUND_UP((int64_t)SRC_SIZE, 512);
    BlockDriverState *t = new_target(tgt_path, "raw", 2 * seg);
    CopyParams p = {.src = srcs,
                    .n_src = 2,
                    .target = t,
                    .min_sparse = 4096,
                    .target_zero_init = true,
                    .threads = 4,
                    .max_inflight = 8};
    Error *err = NULL;
    assert_int_equal(copy_pipeline_run(&p, &err), 0);
    uint8_t *x = xmalloc(MB), *y = xmalloc(MB);
    for (int i = 0; i < 2; i++) {
        BlockDriverState *s = i ? b : a;
        for (int64_t soff = 0; soff < seg; soff += MB) {
            int64_t n = MIN(MB, seg - soff);
            int64_t sn = MIN(n, MAX(bdrv_getlength(s) - soff, 0));
            memset(x, 0, (size_t)n);
            assert_int_equal(bdrv_pread(s, soff, sn, x), 0);
            assert_int_equal(bdrv_pread(t, i * seg + soff, n, y), 0);
            assert_memory_equal(x, y, (size_t)n);
        }
    }
    free(x);
    free(y);
    bdrv_unref(t);
    bdrv_unref(a);
    bdrv_unref(b);
}

static int64_t last_done, last_total, calls;
static void progress_cb(void *opaque, int64_t done, int64_t total)
{
    assert_true(done >= last_done);
    assert_true(done <= total);
    last_done = done;
    last_total = total;
    calls++;
}

static void test_progress_and_window(void **state)
{
    BlockDriverState *a = open_img(src_path, "raw", false);
    CopySource src = {.bs = a, .length = -1};
    BlockDriverState *t = new_target(tgt_path, "raw", ROUND_UP((int64_t)SRC_SIZE, 512));
    last_done = last_total = calls = 0;
    CopyParams p = {.src = &src,
                    .n_src = 1,
                    .target = t,
                    .min_sparse = 4096,
                    .target_zero_init = true,
                    .threads = 2,
                    .max_inflight = 1000,
                    .progress = progress_cb};
    Error *err = NULL;
    assert_int_equal(copy_pipeline_run(&p, &err), 0);
    assert_true(calls > 2);
    assert_int_equal(last_done, last_total);
    bdrv_unref(t);
    bdrv_unref(a);
}

static void test_read_error_and_salvage(void **state)
{
    BlockDriverState *a = open_img(src_path, "badsrc", false);
    CopySource src = {.bs = a, .length = -1};
    BlockDriverState *t = new_target(tgt_path, "raw", ROUND_UP((int64_t)SRC_SIZE, 512));
    bad_sector_off = 8 * MB + 4096;
    CopyParams p = {.src = &src,
                    .n_src = 1,
                    .target = t,
                    .min_sparse = 4096,
                    .target_zero_init = true,
                    .threads = 4,
                    .max_inflight = 8,
                    .quiet = true};
    Error *err = NULL;
    assert_int_equal(copy_pipeline_run(&p, &err), -EIO);
    /* the chunk holding the bad sector; no status, so 2 MiB chunks */
    assert_string_equal(error_get_pretty(err),
                        "error while reading at byte 8388608: Input/output error");
    error_free(err);
    err = NULL;
    p.salvage = true;
    assert_int_equal(copy_pipeline_run(&p, &err), 0);
    uint8_t got[1024], want[1024];
    assert_int_equal(bdrv_pread(t, 8 * MB + 3584, 1024, got), 0);
    bad_sector_off = -1;
    assert_int_equal(bdrv_pread(a, 8 * MB + 3584, 1024, want), 0);
    assert_memory_equal(got, want, 512);
    uint8_t zero[512] = {0};
    assert_memory_equal(got + 512, zero, 512); /* the unreadable sector */
    bdrv_unref(t);
    bdrv_unref(a);
}

/* dd's use: a window of the source, -S 0, a target of odd byte size:
 * every byte written once, nothing past the target's end. */
static void test_window_odd_target(void **state)
{
    BlockDriverState *a = open_img(src_path, "raw", false);
    CopySource src = {.bs = a, .offset = 300, .length = 5000};
    BlockDriverState *t = new_target(rec_path, "recorder", 5000);
    assert_int_equal(bdrv_getlength(t), 5000);
    n_recs = 0;
    writer_thread = pthread_self();
    CopyParams p = {.src = &src, .n_src = 1, .target = t, .threads = 2, .max_inflight = 4};
    Error *err = NULL;
    assert_int_equal(copy_pipeline_run(&p, &err), 0);
    int64_t pos = 0;
    uint8_t x[5000];
    assert_int_equal(bdrv_pread(a, 300, 5000, x), 0);
    for (int i = 0; i < n_recs; i++) {
        assert_int_equal(recs[i].kind, 'W');
        assert_int_equal(recs[i].off, pos);
        assert_int_equal(recs[i].sum, checksum(x + pos, (size_t)recs[i].len));
        pos += recs[i].len;
    }
    assert_int_equal(pos, 5000);
    bdrv_unref(t);
    bdrv_unref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_scan),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_order_independent_of_threads),
        cmocka_unit_test(test_content),
        cmocka_unit_test(test_progress_and_window),
        cmocka_unit_test(test_read_error_and_salvage),
        cmocka_unit_test(test_window_odd_target),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
