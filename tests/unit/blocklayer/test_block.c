/*
 * test_block.c — the block layer's generic parts, driven through small fake
 * drivers: alignment and read-modify-write, the probed-raw sector-0 rule,
 * backing-chain resolution, depth limit and loop detection, block status
 * through a chain, in-memory files, reproducible IDs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "blocklayer/block_int.h"
#include "common/util.h"
#include "formats/formats.h"

/* ---- "align4k": a driver that insists on 4 KiB-aligned requests ---- */

static int align_calls_unaligned;

static int align_open(BlockDriverState *bs, const Opts *o, int flags, Error **errp)
{
    bs->total_size = bfile_getlength(bs->file);
    bs->request_alignment = 4096;
    return 0;
}

static void nop_close(BlockDriverState *bs) {}

static int align_pread(BlockDriverState *bs, int64_t off, int64_t bytes, void *buf)
{
    if (off % 4096 || bytes % 4096) {
        align_calls_unaligned++;
    }
    return bfile_pread(bs->file, off, buf, (size_t)bytes);
}

static int align_pwrite(BlockDriverState *bs, int64_t off, int64_t bytes, const void *buf)
{
    if (off % 4096 || bytes % 4096) {
        align_calls_unaligned++;
    }
    return bfile_pwrite(bs->file, off, buf, (size_t)bytes);
}

static const BlockDriver bdrv_align4k = {
    .format_name = "align4k",
    .instance_size = 1,
    .open = align_open,
    .close = nop_close,
    .pread = align_pread,
    .pwrite = align_pwrite,
};

/* ---- "cowtest": header "COWTEST\n<backing name>\n", 4 KiB header, nothing
 * allocated: every read goes to the backing file ---- */

static int cow_probe(const uint8_t *buf, int len, const char *filename)
{
    return len >= 8 && !memcmp(buf, "COWTEST\n", 8) ? 100 : 0;
}

static int cow_open(BlockDriverState *bs, const Opts *o, int flags, Error **errp)
{
    char hdr[256] = {0};
    bfile_pread(bs->file, 0, hdr, sizeof(hdr) - 1);
    char *name = hdr + 8;
    char *nl = strchr(name, '\n');
    if (nl) {
        *nl = 0;
    }
    if (*name) {
        bs->backing_file = xstrdup(name);
    }
    bs->total_size = 1 * MiB;
    return 0;
}

static int cow_pread(BlockDriverState *bs, int64_t off, int64_t bytes, void *buf)
{
    return bdrv_backing_pread(bs, off, bytes, buf);
}

static int cow_block_status(BlockDriverState *bs, bool want_zero, int64_t off, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockFile **file)
{
    *pnum = bytes;
    return 0; /* unallocated */
}

static const BlockDriver bdrv_cowtest = {
    .format_name = "cowtest",
    .instance_size = 1,
    .supports_backing = true,
    .probe = cow_probe,
    .open = cow_open,
    .close = nop_close,
    .pread = cow_pread,
    .block_status = cow_block_status,
};

static char tmpdir[64];

static int setup(void **state)
{
    formats_register_all();
    bdrv_register(&bdrv_align4k);
    bdrv_register(&bdrv_cowtest);
    strcpy(tmpdir, "/tmp/imgpipe-blktest-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return 0;
}

static void write_file(const char *name, const char *content, size_t len)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
    free(path);
}

static void test_mem_file(void **state)
{
    BlockFile *f = bfile_new_mem("m", "abc", 3, true);
    uint8_t buf[8];
    assert_int_equal(bfile_pread(f, 0, buf, 8), 0);
    assert_memory_equal(buf, "abc\0\0\0\0\0", 8); /* past EOF reads as zero */
    assert_int_equal(bfile_pwrite(f, 10, "xy", 2), 0);
    assert_int_equal(bfile_getlength(f), 12);
    assert_int_equal(bfile_truncate(f, 2, PREALLOC_OFF, NULL), 0);
    assert_int_equal(bfile_pread(f, 0, buf, 4), 0);
    assert_memory_equal(buf, "ab\0\0", 4);
    bfile_close(f);
}

static void test_unaligned_rmw(void **state)
{
    uint8_t *init = xzalloc(16384);
    for (int i = 0; i < 16384; i++) {
        init[i] = (uint8_t)i;
    }
    BlockFile *f = bfile_new_mem("a", init, 16384, true);
    BlockDriverState *bs = bdrv_open_file(f, "align4k", NULL, BDRV_O_RDWR, NULL);
    assert_non_null(bs);
    align_calls_unaligned = 0;
    char pattern[200];
    for (int i = 0; i < 200; i++) {
        pattern[i] = (char)('0' + i % 10);
    }
    assert_int_equal(bdrv_pwrite(bs, 4000, 200, pattern), 0);
    uint8_t buf[300];
    assert_int_equal(bdrv_pread(bs, 3990, 300, buf), 0);
    /* bytes before and after the write keep the old content */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(buf[i], (uint8_t)(3990 + i));
    }
    assert_memory_equal(buf + 10, pattern, 200);
    assert_int_equal(buf[210], (uint8_t)4200);

    /* zeroes over an unaligned range, driver has no write_zeroes slot */
    assert_int_equal(bdrv_pwrite_zeroes(bs, 8191, 4099, 0), 0);
    assert_int_equal(bdrv_pread(bs, 8190, 4102, init), 0);
    assert_int_equal(init[0], (uint8_t)8190);
    for (int i = 1; i < 4100; i++) {
        assert_int_equal(init[i], 0);
    }
    assert_int_equal(init[4100], (uint8_t)12290);
    assert_int_equal(init[4101], (uint8_t)12291);

    /* zeroes that start inside the pattern */
    assert_int_equal(bdrv_pwrite_zeroes(bs, 4095, 4099, 0), 0);
    assert_int_equal(bdrv_pread(bs, 4094, 4102, init), 0);
    assert_int_equal(init[0], '4'); /* pattern[94] */
    for (int i = 1; i < 4100; i++) {
        assert_int_equal(init[i], 0);
    }
    assert_int_equal(init[4100], 0); /* 8194: zeroed by the previous call */
    assert_int_equal(align_calls_unaligned, 0);

    /* out-of-range requests fail, they do not grow the image */
    assert_int_equal(bdrv_pread(bs, 16000, 1000, init), -EIO);
    bdrv_unref(bs);
    free(init);
}

static void test_probed_raw_sector0(void **state)
{
    char sector[512] = "hello";
    write_file("plain.img", sector, sizeof(sector));
    char *path = xasprintf("%s/plain.img", tmpdir);
    BlockDriverState *bs = bdrv_open(path, NULL, NULL, BDRV_O_RDWR, NULL);
    assert_non_null(bs);
    assert_string_equal(bdrv_format_name(bs), "raw");
    /* Writing another format's magic into sector 0 of a probed raw image is refused */
    assert_int_equal(bdrv_pwrite(bs, 0, 8, "COWTEST\n"), -EPERM);
    assert_int_equal(bdrv_pwrite(bs, 0, 5, "HELLO"), 0);
    bdrv_unref(bs);
    /* With -f raw the same write is allowed */
    bs = bdrv_open(path, "raw", NULL, BDRV_O_RDWR, NULL);
    assert_non_null(bs);
    assert_int_equal(bdrv_pwrite(bs, 0, 8, "COWTEST\n"), 0);
    bdrv_unref(bs);
    free(path);
}

static void test_backing_relative_and_status(void **state)
{
    char *sub = xasprintf("%s/sub", tmpdir);
    assert_int_equal(mkdir(sub, 0755), 0);
    free(sub);
    char data[4096];
    memset(data, 'B', sizeof(data));
    write_file("sub/base.raw", data, sizeof(data));
    write_file("sub/mid.cow", "COWTEST\nbase.raw\n", 17);
    write_file("top.cow", "COWTEST\nsub/mid.cow\n", 20);
    char *top = xasprintf("%s/top.cow", tmpdir);
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(top, NULL, NULL, 0, &err);
    assert_null(err);
    assert_non_null(bs);
    assert_int_equal(bdrv_chain_length(bs), 3);
    /* names resolve against the directory of the image that names them */
    assert_non_null(strstr(bs->backing->backing->filename, "/sub/base.raw"));
    char buf[8];
    assert_int_equal(bdrv_pread(bs, 4090, 8, buf), 0);
    assert_memory_equal(buf, "BBBBBB\0\0", 8); /* past the base's end reads zero */
    int64_t pnum;
    int depth;
    int ret = bdrv_block_status_above(bs, NULL, true, 0, 1 * MiB, &pnum, NULL, NULL, &depth);
    assert_true(ret & BDRV_BLOCK_ALLOCATED);
    assert_true(ret & BDRV_BLOCK_DATA);
    assert_int_equal(depth, 2);
    assert_int_equal(pnum, 4096);
    ret = bdrv_block_status_above(bs, NULL, true, 4096, 1 * MiB, &pnum, NULL, NULL, &depth);
    assert_false(ret & BDRV_BLOCK_DATA);
    assert_true(ret & BDRV_BLOCK_ZERO);
    bdrv_unref(bs);
    free(top);
}

static void test_backing_loop_and_depth(void **state)
{
    write_file("a.cow", "COWTEST\nb.cow\n", 14);
    write_file("b.cow", "COWTEST\na.cow\n", 14);
    char *a = xasprintf("%s/a.cow", tmpdir);
    Error *err = NULL;
    assert_null(bdrv_open(a, NULL, NULL, 0, &err));
    assert_non_null(err);
    assert_non_null(strstr(error_get_pretty(err), "loop"));
    error_free(err);
    free(a);

    /* a chain of 20 distinct files is refused at the depth limit */
    for (int i = 0; i < 20; i++) {
        char name[32], content[64];
        snprintf(name, sizeof(name), "d%d.cow", i);
        int n = snprintf(content, sizeof(content), "COWTEST\nd%d.cow\n", i + 1);
        write_file(name, content, (size_t)n);
    }
    write_file("d20.cow", "COWTEST\n\n", 9);
    char *d0 = xasprintf("%s/d0.cow", tmpdir);
    err = NULL;
    assert_null(bdrv_open(d0, NULL, NULL, 0, &err));
    assert_non_null(strstr(error_get_pretty(err), "deeper than 16"));
    error_free(err);
    /* without the chain it opens fine (qemu-img info's default) */
    BlockDriverState *bs = bdrv_open(d0, NULL, NULL, BDRV_O_NO_BACKING, NULL);
    assert_non_null(bs);
    assert_string_equal(bs->backing_file, "d1.cow");
    bdrv_unref(bs);
    free(d0);
}

static void test_missing_backing_message(void **state)
{
    write_file("orphan.cow", "COWTEST\nnothere.raw\n", 21);
    char *p = xasprintf("%s/orphan.cow", tmpdir);
    Error *err = NULL;
    assert_null(bdrv_open(p, NULL, NULL, 0, &err));
    char *want = xasprintf("Could not open '%s': Could not open backing file: Could not open "
                           "'%s/nothere.raw': No such file or directory",
                           p, tmpdir);
    assert_string_equal(error_get_pretty(err), want);
    error_free(err);
    free(want);
    free(p);
}

static void test_unknown_protocol_and_driver(void **state)
{
    Error *err = NULL;
    assert_null(bdrv_open("nbd:localhost:1", NULL, NULL, 0, &err));
    assert_string_equal(error_get_pretty(err),
                        "Could not open 'nbd:localhost:1': Unknown protocol 'nbd'");
    error_free_and_clear(&err);
    assert_null(bdrv_open("x.img", "nosuchfmt", NULL, 0, &err));
    assert_string_equal(error_get_pretty(err),
                        "Could not open 'x.img': Unknown driver 'nosuchfmt'");
    error_free(err);
}

static void expect_open(const char *name, bool ok, const char *msg_part)
{
    char *p = xasprintf("%s/%s", tmpdir, name);
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(p, NULL, NULL, 0, &err);
    if (ok) {
        assert_null(err);
        assert_non_null(bs);
        bdrv_unref(bs);
    } else {
        assert_null(bs);
        assert_non_null(err);
        assert_non_null(strstr(error_get_pretty(err), msg_part));
        error_free(err);
    }
    free(p);
}

static void test_reference_policy(void **state)
{
    char *d = xasprintf("%s/pol", tmpdir);
    assert_int_equal(mkdir(d, 0755), 0);
    char sector[512] = {0};
    write_file("outside.raw", sector, sizeof(sector));
    write_file("pol/inside.raw", sector, sizeof(sector));
    write_file("pol/good.cow", "COWTEST\ninside.raw\n", 19);
    write_file("pol/dotdot.cow", "COWTEST\n../outside.raw\n", 24);
    write_file("pol/json.cow", "COWTEST\njson:{\"file.filename\": \"inside.raw\"}\n", 46);
    char *target = xasprintf("%s/outside.raw", tmpdir);
    char *link = xasprintf("%s/pol/link.raw", tmpdir);
    assert_int_equal(symlink(target, link), 0);
    write_file("pol/symlink.cow", "COWTEST\nlink.raw\n", 17);

    /* permissive (the library default): everything is followed */
    bdrv_set_ref_policy(false, NULL);
    expect_open("pol/dotdot.cow", true, NULL);
    expect_open("pol/symlink.cow", true, NULL);

    bdrv_set_ref_policy(true, NULL);
    expect_open("pol/good.cow", true, NULL);
    expect_open("pol/dotdot.cow", false, "outside the directory");
    expect_open("pol/symlink.cow", false, "outside the directory");
    expect_open("pol/json.cow", false, "not a plain file name");

    /* an allowed directory lifts the restriction for what lies inside it */
    const char *dirs[] = {tmpdir, NULL};
    bdrv_set_ref_policy(true, dirs);
    expect_open("pol/dotdot.cow", true, NULL);
    bdrv_set_ref_policy(false, NULL);
    free(target);
    free(link);
    free(d);
}

static void test_repro_bytes(void **state)
{
    BdrvRepro r = {.enabled = true, .time = 1234};
    memset(r.seed, 7, sizeof(r.seed));
    uint8_t a[40], b[40], c[40];
    repro_random_bytes(&r, "uuid", a, sizeof(a));
    repro_random_bytes(&r, "uuid", b, sizeof(b));
    repro_random_bytes(&r, "cid", c, sizeof(c));
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    assert_int_equal(repro_now(&r), 1234);
    BdrvRepro off = {0};
    repro_random_bytes(&off, "uuid", b, sizeof(b));
    assert_memory_not_equal(a, b, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_file),
        cmocka_unit_test(test_unaligned_rmw),
        cmocka_unit_test(test_probed_raw_sector0),
        cmocka_unit_test(test_backing_relative_and_status),
        cmocka_unit_test(test_backing_loop_and_depth),
        cmocka_unit_test(test_missing_backing_message),
        cmocka_unit_test(test_unknown_protocol_and_driver),
        cmocka_unit_test(test_reference_policy),
        cmocka_unit_test(test_repro_bytes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
