/*
 * test_qcow2.c — unit tests of the qcow2 core: L2 entry and subcluster
 * decoding, compressed cluster descriptors, refcount entry access for every
 * refcount width, the codecs, and cluster allocation on a real image
 * (including refcount table growth with 512-byte clusters).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "formats/qcow2.h"

static BDRVQcow2State geometry(int cluster_bits, bool extl2, bool data_file)
{
    BDRVQcow2State s;
    memset(&s, 0, sizeof(s));
    s.cluster_bits = cluster_bits;
    s.cluster_size = 1U << cluster_bits;
    s.extended_l2 = extl2;
    s.l2_entry_words = extl2 ? 2 : 1;
    s.subclusters_per_cluster = extl2 ? 32 : 1;
    s.subcluster_bits = cluster_bits - (extl2 ? 5 : 0);
    s.subcluster_size = 1U << s.subcluster_bits;
    s.l2_bits = cluster_bits - 3 - (extl2 ? 1 : 0);
    s.l2_size = 1U << s.l2_bits;
    if (data_file) {
        s.incompatible_features = QCOW2_INCOMPAT_DATA_FILE;
    }
    return s;
}

static void test_cluster_types(void **state)
{
    BDRVQcow2State s = geometry(16, false, false);
    assert_int_equal(qcow2_get_cluster_type(&s, 0), QCOW2_CLUSTER_UNALLOCATED);
    assert_int_equal(qcow2_get_cluster_type(&s, QCOW_OFLAG_ZERO), QCOW2_CLUSTER_ZERO_PLAIN);
    assert_int_equal(qcow2_get_cluster_type(&s, 0x50000 | QCOW_OFLAG_ZERO),
                     QCOW2_CLUSTER_ZERO_ALLOC);
    assert_int_equal(qcow2_get_cluster_type(&s, 0x50000 | QCOW_OFLAG_COPIED), QCOW2_CLUSTER_NORMAL);
    assert_int_equal(qcow2_get_cluster_type(&s, QCOW_OFLAG_COMPRESSED | 0x1234),
                     QCOW2_CLUSTER_COMPRESSED);
    /* offset 0 + COPIED: unallocated, except with an external data file */
    assert_int_equal(qcow2_get_cluster_type(&s, QCOW_OFLAG_COPIED), QCOW2_CLUSTER_UNALLOCATED);
    BDRVQcow2State d = geometry(16, false, true);
    assert_int_equal(qcow2_get_cluster_type(&d, QCOW_OFLAG_COPIED), QCOW2_CLUSTER_NORMAL);
}

static void test_subcluster_types(void **state)
{
    BDRVQcow2State s = geometry(16, true, false);
    uint64_t normal = 0x50000 | QCOW_OFLAG_COPIED;
    uint64_t bitmap = (1ULL << 3) | (1ULL << (32 + 5)); /* sc 3 allocated, sc 5 zero */
    assert_int_equal(qcow2_get_subcluster_type(&s, normal, bitmap, 3), QCOW2_SUBCLUSTER_NORMAL);
    assert_int_equal(qcow2_get_subcluster_type(&s, normal, bitmap, 5), QCOW2_SUBCLUSTER_ZERO_ALLOC);
    assert_int_equal(qcow2_get_subcluster_type(&s, normal, bitmap, 4),
                     QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC);
    assert_int_equal(qcow2_get_subcluster_type(&s, 0, 1ULL << 40, 8), QCOW2_SUBCLUSTER_ZERO_PLAIN);
    assert_int_equal(qcow2_get_subcluster_type(&s, 0, 0, 8), QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN);
    /* allocated bits without a host cluster, or allocated and zero at once */
    assert_int_equal(qcow2_get_subcluster_type(&s, 0, 1, 0), QCOW2_SUBCLUSTER_INVALID);
    assert_int_equal(qcow2_get_subcluster_type(&s, normal, 1 | (1ULL << 32), 7),
                     QCOW2_SUBCLUSTER_INVALID);
    /* with extended L2 the zero flag bit 0 is not a zero flag */
    assert_int_equal(qcow2_get_cluster_type(&s, normal | QCOW_OFLAG_ZERO), QCOW2_CLUSTER_NORMAL);
    /* without: the whole cluster is one subcluster */
    BDRVQcow2State p = geometry(16, false, false);
    assert_int_equal(qcow2_get_subcluster_type(&p, QCOW_OFLAG_ZERO, 0, 0),
                     QCOW2_SUBCLUSTER_ZERO_PLAIN);
}

static void test_l2_accessors(void **state)
{
    BDRVQcow2State s = geometry(16, true, false);
    uint8_t table[64] = {0};
    set_l2_entry(&s, table, 1, 0x1122334455667788ULL);
    set_l2_bitmap(&s, table, 1, 0xa5a5a5a5ULL);
    assert_true(ld64_be(table + 16) == 0x1122334455667788ULL); /* 16-byte entries */
    assert_true(get_l2_bitmap(&s, table, 1) == 0xa5a5a5a5ULL);
    BDRVQcow2State n = geometry(16, false, false);
    set_l2_entry(&n, table, 1, 42);
    assert_true(ld64_be(table + 8) == 42);
    assert_true(get_l2_bitmap(&n, table, 1) == 0);
    assert_int_equal(qcow2_sc_range_mask(0, 32), 0xffffffffU);
    assert_int_equal(qcow2_sc_range_mask(3, 2), 0x18U);
}

static void check_desc(int cluster_bits, uint64_t host, uint64_t len)
{
    uint64_t e = qcow2_compressed_desc_encode(cluster_bits, host, len);
    uint64_t off, nb;
    assert_true(e & QCOW_OFLAG_COMPRESSED);
    assert_false(e & QCOW_OFLAG_COPIED);
    qcow2_compressed_desc_decode(cluster_bits, e, &off, &nb);
    assert_true(off == host);
    /* whole sectors from the one holding host to the one holding the end */
    uint64_t want = ROUND_UP(host + len, 512) - host;
    assert_true(nb == want);
    assert_true(nb >= len && nb < len + 512);
}

static void test_compressed_desc(void **state)
{
    check_desc(16, 0x30000, 1);
    check_desc(16, 0x30000, 65535);
    check_desc(16, 0x3012f, 4000);
    check_desc(16, 0xfffffffe01ULL, 60000); /* high offset */
    check_desc(21, 0x200000, 2 * MiB - 1);
    check_desc(21, 0x4000001ff, 12345);
    check_desc(9, 0x1200, 511);
    check_desc(9, 0x12ff, 300);
    /* Known bit layout for 64 KiB clusters: sector count at bit 54. */
    uint64_t e = qcow2_compressed_desc_encode(16, 0x50000, 1024);
    assert_true(e == (QCOW_OFLAG_COMPRESSED | 0x50000 | (1ULL << 54)));
}

static void test_refblock_entries(void **state)
{
    for (int order = 0; order <= 6; order++) {
        uint8_t block[512];
        memset(block, 0, sizeof(block));
        int bits = 1 << order;
        uint64_t max = bits == 64 ? UINT64_MAX : (1ULL << bits) - 1;
        uint64_t n = 512 * 8 / (uint64_t)bits;
        for (uint64_t i = 0; i < n; i++) {
            qcow2_refblock_set(block, order, i, (i * 0x9e3779b97f4a7c15ULL) & max);
        }
        for (uint64_t i = 0; i < n; i++) {
            assert_true(qcow2_refblock_get(block, order, i) == ((i * 0x9e3779b97f4a7c15ULL) & max));
        }
        /* neighbours are untouched by a set */
        qcow2_refblock_set(block, order, 5, max);
        qcow2_refblock_set(block, order, 5, 0);
        assert_true(qcow2_refblock_get(block, order, 5) == 0);
        assert_true(qcow2_refblock_get(block, order, 4) == ((4 * 0x9e3779b97f4a7c15ULL) & max));
    }
    /* bit order: least significant first in sub-byte widths */
    uint8_t b[2] = {0, 0};
    qcow2_refblock_set(b, 0, 0, 1);
    assert_int_equal(b[0], 0x01);
    qcow2_refblock_set(b, 2, 1, 0xf);
    assert_int_equal(b[0], 0xf1);
    qcow2_refblock_set(b, 4, 0, 0x1234);
    assert_int_equal(b[0], 0x12); /* 16-bit entries are big-endian */
}

static void test_codecs(void **state)
{
    uint8_t src[65536], out[65536], back[65536];
    for (size_t i = 0; i < sizeof(src); i++) {
        src[i] = (uint8_t)(i % 251 < 100 ? 'a' : i % 7);
    }
    for (int type = 0; type <= 1; type++) {
        ssize_t n = qcow2_compress_buf(type, out, sizeof(out) - 1, src, sizeof(src));
        assert_true(n > 0 && n < 65536);
        /* trailing garbage after the stream (sector padding) is ignored */
        memset(out + n, 0xee, 100);
        assert_int_equal(qcow2_decompress_buf(type, back, sizeof(back), out, (size_t)n + 100), 0);
        assert_memory_equal(src, back, sizeof(src));
        /* truncated input cannot fill a cluster */
        assert_int_equal(qcow2_decompress_buf(type, back, sizeof(back), out, (size_t)n / 2), -EIO);
    }
    uint8_t rnd[4096];
    for (size_t i = 0; i < sizeof(rnd); i++) {
        rnd[i] = (uint8_t)(rand() >> 3);
    }
    assert_int_equal(qcow2_compress_buf(0, out, sizeof(rnd) - 1, rnd, sizeof(rnd)), -ENOSPC);
    assert_int_equal(qcow2_compress_buf(7, out, sizeof(out), src, 10), -EINVAL);
}

/* Create an image with the real driver; open it read-write. */
static BlockDriverState *make_image(const char *path, const char *opts_str, uint64_t size)
{
    engine_init();
    const BlockDriver *drv = bdrv_find_format("qcow2");
    assert_non_null(drv);
    Opts o = OPTS_INIT;
    Error *err = NULL;
    if (opts_str) {
        assert_int_equal(opts_parse(&o, opts_str, NULL, &err), 0);
    }
    BdrvCreateInfo ci = {.filename = path, .opts = &o, .size = size};
    int ret = drv->create(&ci, &err);
    if (ret < 0) {
        fail_msg("create: %s", error_get_pretty(err));
    }
    opts_release(&o);
    BlockDriverState *bs = bdrv_open(path, "qcow2", NULL, BDRV_O_RDWR, &err);
    assert_non_null(bs);
    return bs;
}

static void test_allocation(void **state)
{
    char path[] = "/tmp/qcow2_unit_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    BlockDriverState *bs = make_image(path, "cluster_size=512,refcount_bits=64", 64 * MiB);
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t rc;
    pthread_mutex_lock(&s->lock);
    /* header, reftable, refblock, L1 (64 MiB / 32 KiB = 2048 entries = 32 clusters) */
    for (int64_t i = 0; i < 3; i++) {
        assert_int_equal(qcow2_get_refcount(bs, i, &rc), 0);
        assert_true(rc == 1);
    }
    uint32_t old_table_size = s->refcount_table_size;
    /* 64-bit refcounts, 512 B clusters: a block covers 64 clusters, the
     * first table 64 blocks = 4096 clusters.  Allocate past that. */
    int64_t first = qcow2_alloc_clusters(bs, 100 * 512);
    assert_true(first > 0 && first % 512 == 0);
    int64_t big = qcow2_alloc_clusters(bs, 5000 * 512);
    assert_true(big > first);
    assert_true(s->refcount_table_size > old_table_size);
    for (int64_t c = big / 512; c < big / 512 + 5000; c += 499) {
        assert_int_equal(qcow2_get_refcount(bs, c, &rc), 0);
        assert_true(rc == 1);
    }
    /* free and reuse: the lowest free clusters come back first */
    qcow2_free_clusters(bs, first, 100 * 512, QCOW2_DISCARD_NEVER);
    assert_int_equal(qcow2_get_refcount(bs, first / 512, &rc), 0);
    assert_true(rc == 0);
    int64_t again = qcow2_alloc_clusters(bs, 10 * 512);
    assert_true(again == first);
    /* underflow is refused without changing anything */
    assert_int_equal(qcow2_update_refcount(bs, first + 50 * 512, 512, -1, QCOW2_DISCARD_NEVER),
                     -EINVAL);
    /* compressed packing shares clusters */
    int64_t a = qcow2_alloc_bytes(bs, 100);
    int64_t b = qcow2_alloc_bytes(bs, 100);
    assert_true(b == a + 100);
    assert_int_equal(qcow2_get_refcount(bs, a / 512, &rc), 0);
    assert_true(rc == 2);
    pthread_mutex_unlock(&s->lock);
    bdrv_unref(bs);
    /* Reopen: what we wrote is consistent on disk. */
    Error *err = NULL;
    bs = bdrv_open(path, "qcow2", NULL, 0, &err);
    assert_non_null(bs);
    s = qcow2_state(bs);
    pthread_mutex_lock(&s->lock);
    assert_int_equal(qcow2_get_refcount(bs, big / 512 + 4999, &rc), 0);
    assert_true(rc == 1);
    pthread_mutex_unlock(&s->lock);
    bdrv_unref(bs);
    unlink(path);
}

static void test_write_read_cow(void **state)
{
    char path[] = "/tmp/qcow2_unit_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    BlockDriverState *bs = make_image(path, "cluster_size=65536,extended_l2=on", 4 * MiB);
    uint8_t *buf = xmalloc(200000), *back = xmalloc(200000);
    for (int i = 0; i < 200000; i++) {
        buf[i] = (uint8_t)(i * 7);
    }
    assert_int_equal(bdrv_pwrite(bs, 1000, 3000, buf), 0);
    assert_int_equal(bdrv_pwrite(bs, 70000, 200000, buf), 0);
    assert_int_equal(bdrv_pwrite_zeroes(bs, 72000, 4096, 0), 0);
    assert_int_equal(bdrv_flush(bs), 0);
    assert_int_equal(bdrv_pread(bs, 0, 4000, back), 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(back[i], 0);
    }
    assert_memory_equal(back + 1000, buf, 3000);
    assert_int_equal(bdrv_pread(bs, 70000, 200000, back), 0);
    assert_memory_equal(back, buf, 2000);
    for (int i = 2000; i < 6096; i++) {
        assert_int_equal(back[i], 0);
    }
    assert_memory_equal(back + 6096, buf + 6096, 200000 - 6096);
    free(buf);
    free(back);
    bdrv_unref(bs);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_types),    cmocka_unit_test(test_subcluster_types),
        cmocka_unit_test(test_l2_accessors),     cmocka_unit_test(test_compressed_desc),
        cmocka_unit_test(test_refblock_entries), cmocka_unit_test(test_codecs),
        cmocka_unit_test(test_allocation),       cmocka_unit_test(test_write_read_cow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
