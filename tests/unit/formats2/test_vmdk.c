/*
 * test_vmdk.c — unit tests of the VMDK driver's pure pieces and of header
 * validation on in-memory files: extent path rules, descriptor generation
 * and parsing, probing, grain compression round trips and hostile grain
 * markers, and qemu's messages for hostile hosted-sparse headers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "formats/formats.h"
#include "formats/vmdk.h"

/* Extents go through the reference policy and name the extent. */
static void test_extent_policy(void **state)
{
    char dir[] = "/tmp/test_vmdk_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *desc = xasprintf("%s/d.vmdk", dir);
    FILE *f = fopen(desc, "w");
    fprintf(f, "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n"
               "createType=\"monolithicFlat\"\nRW 8 FLAT \"/etc/hostname\" 0\n");
    fclose(f);
    bdrv_set_ref_policy(true, NULL);
    Error *err = NULL;
    BlockDriverState *bs = bdrv_open(desc, "vmdk", NULL, 0, &err);
    assert_null(bs);
    assert_non_null(strstr(error_get_pretty(err), "extent '/etc/hostname'"));
    error_free_and_clear(&err);
    bdrv_set_ref_policy(false, NULL);
    bs = bdrv_open(desc, "vmdk", NULL, 0, &err);
    if (bs) { /* /etc/hostname may be missing in a container */
        assert_int_equal(bs->total_size, 8 * 512);
        bdrv_unref(bs);
    }
    error_free(err);
    unlink(desc);
    rmdir(dir);
    free(desc);
}

static void test_desc_roundtrip(void **state)
{
    char *d =
        vmdk_make_desc(0x1234abcd, 0xffffffff, "monolithicFlat", "base.vmdk",
                       "RW 2048 FLAT \"x-flat.vmdk\" 0\n", "4", 1048576, true, "ide", "2147483647");
    assert_non_null(strstr(d, "CID=1234abcd\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
                              "parentFileNameHint=\"base.vmdk\"\n# Extent description\n"));
    assert_non_null(strstr(d, "ddb.geometry.heads = \"16\""));
    BlockDriverState bs = {0};
    BDRVVmdkState s = {0};
    bs.opaque = &s;
    s.desc = d;
    assert_int_equal(vmdk_parse_desc_ids(&bs, NULL), 0);
    assert_int_equal(s.cid, 0x1234abcd);
    assert_int_equal(s.parent_cid, 0xffffffff);
    assert_string_equal(bs.backing_file, "base.vmdk");
    assert_string_equal(bs.backing_format, "vmdk");
    free(bs.backing_file);
    free(bs.backing_format);
    /* no parentCID: qemu refuses the image */
    s.desc = "version=1\nCID=12\n";
    assert_int_equal(vmdk_parse_desc_ids(&bs, NULL), -EINVAL);
    /* an unterminated parentFileNameHint too */
    s.desc = "CID=1\nparentCID=2\nparentFileNameHint=\"abc\n";
    assert_int_equal(vmdk_parse_desc_ids(&bs, NULL), -EINVAL);
    free(d);
}

static void test_probe(void **state)
{
    const char *desc = "# Disk DescriptorFile\n  \nversion=1\nCID=1\n";
    assert_int_equal(bdrv_vmdk.probe((const uint8_t *)desc, (int)strlen(desc), "x"), 100);
    /* qemu only skips blank lines made of spaces: an empty line ends the probe */
    const char *empty_line = "# Disk DescriptorFile\n\nversion=1\n";
    assert_int_equal(bdrv_vmdk.probe((const uint8_t *)empty_line, (int)strlen(empty_line), "x"), 0);
    assert_int_equal(bdrv_vmdk.probe((const uint8_t *)"KDMV....", 8, "x"), 100);
    assert_int_equal(bdrv_vmdk.probe((const uint8_t *)"COWD....", 8, "x"), 100);
    assert_int_equal(bdrv_vmdk.probe((const uint8_t *)"hello world\n", 12, "x.vmdk"), 0);
    assert_int_equal(bdrv_vmdk.probe((const uint8_t *)"KD", 2, "x"), 0);
}

static void test_grain_roundtrip(void **state)
{
    enum { G = 65536 };
    uint8_t *src = xmalloc(G), *dst = xmalloc(G + 4096), *back = xmalloc(G);
    for (int i = 0; i < G; i++) {
        src[i] = (uint8_t)(i / 100);
    }
    ssize_t len = vmdk_compress_grain(dst, G + 4096, src, G);
    assert_true(len > VMDK_GRAIN_MARKER_SIZE && len < G);
    assert_int_equal(ld32_le(dst + 8), (uint32_t)(len - VMDK_GRAIN_MARKER_SIZE));
    assert_int_equal(vmdk_compress_grain(dst, 16, src, G), -ENOSPC);

    BlockFile *f = bfile_new_mem("g", NULL, 0, true);
    assert_int_equal(bfile_pwrite(f, 10 * 512, dst, (size_t)len), 0);
    VmdkExtent e = {.file = f, .cluster_sectors = 128, .has_marker = true, .zgrain_sector = -1};
    assert_int_equal(vmdk_read_compressed(&e, 10, 0, back, G), 0);
    assert_memory_equal(back, src, G);
    assert_int_equal(vmdk_read_compressed(&e, 10, 1000, back, 500), 0);
    assert_memory_equal(back, src + 1000, 500);
    /* hostile markers: size 0, size beyond two grains, garbage data */
    uint8_t m[12] = {0};
    assert_int_equal(bfile_pwrite(f, 200 * 512, m, 12), 0);
    assert_int_equal(vmdk_read_compressed(&e, 200, 0, back, 512), -EINVAL);
    st32_le(m + 8, 3 * G);
    assert_int_equal(bfile_pwrite(f, 201 * 512, m, 12), 0);
    assert_int_equal(vmdk_read_compressed(&e, 201, 0, back, 512), -EINVAL);
    st32_le(m + 8, 100);
    assert_int_equal(bfile_pwrite(f, 202 * 512, m, 12), 0);
    assert_int_equal(vmdk_read_compressed(&e, 202, 0, back, 512), -EINVAL);
    free(e.zgrain);
    bfile_close(f);
    free(src);
    free(dst);
    free(back);
}

/* Open a one-sector-header sparse image held in memory; returns the error text. */
static char *open_header(uint32_t version, uint64_t capacity, uint64_t granularity, uint32_t gtes,
                         uint64_t gd, uint64_t grain_offset, size_t file_len)
{
    uint8_t *img = xzalloc(file_len);
    vmdk_build_header(img, version, VMDK4_FLAG_NL_DETECT, capacity, granularity, 1, 20, gtes, 0, gd,
                      grain_offset, false);
    memcpy(img + 512, "CID=1\nparentCID=ffffffff\n", 25);
    BlockDriverState bs = {0};
    bs.file = bfile_new_mem("h.vmdk", img, file_len, false);
    bs.filename = "h.vmdk";
    bs.opaque = xzalloc(bdrv_vmdk.instance_size);
    bs.request_alignment = 1;
    Error *err = NULL;
    int ret = bdrv_vmdk.open(&bs, NULL, 0, &err);
    char *msg = ret < 0 ? xstrdup(err ? error_get_pretty(err) : "?") : NULL;
    if (ret == 0) {
        bdrv_vmdk.close(&bs);
    }
    error_free(err);
    free(bs.opaque);
    free(bs.backing_file);
    free(bs.backing_format);
    bfile_close(bs.file);
    free(img);
    return msg;
}

static void expect_open_error(char *msg, const char *want)
{
    assert_non_null(msg);
    assert_non_null(strstr(msg, want));
    free(msg);
}

static void test_hostile_headers(void **state)
{
    assert_null(open_header(1, 2048, 128, 512, 21, 128, 128 * 512));
    expect_open_error(open_header(4, 2048, 128, 512, 21, 128, 65536), "Unsupported VMDK version 4");
    expect_open_error(open_header(1, 2048, 128, 513, 21, 128, 65536), "L2 table size too big");
    expect_open_error(open_header(1, 2048, 0, 512, 21, 128, 65536), "L1 entry size is invalid");
    expect_open_error(open_header(1, 1ULL << 40, 1, 1, 21, 128, 65536), "L1 size too big");
    expect_open_error(open_header(1, 2048, 0x400000, 512, 21, 128, 65536),
                      "Invalid granularity, image may be corrupt");
    expect_open_error(open_header(1, 2048, 128, 512, 21, 4096, 65536), "File truncated");
    expect_open_error(open_header(1, 1ULL << 30, 128, 512, 1ULL << 40, 128, 65536),
                      "grain directory beyond the end of the file");
    expect_open_error(open_header(1, 1ULL << 62, 128, 512, 21, 128, 65536), "L1 size too big");
    expect_open_error(open_header(1, 2048, 128, 512, VMDK4_GD_AT_END, 128, 65536),
                      "Invalid footer");
}

int main(void)
{
    formats_register_all();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extent_policy),   cmocka_unit_test(test_desc_roundtrip),
        cmocka_unit_test(test_probe),           cmocka_unit_test(test_grain_roundtrip),
        cmocka_unit_test(test_hostile_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
