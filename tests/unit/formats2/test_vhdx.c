/*
 * test_vhdx.c — unit tests of the VHDX driver: BAT sizing, header
 * encoding, and open-time validation of hostile images built in memory
 * from a freshly created image (headers, region table, metadata, BAT).
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
#include "formats/crc32c.h"
#include "formats/formats.h"
#include "formats/vhdx.h"

extern const BlockDriver bdrv_vhdx;

static uint8_t *image;
static size_t image_len;

/* A 16 MiB dynamic image with 1 MiB blocks, made by vhdx_create. */
static int setup(void **state)
{
    char path[] = "/tmp/test_vhdx_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    Opts o = OPTS_INIT;
    opts_set(&o, "block_size", "1M");
    BdrvCreateInfo ci = {.filename = path, .opts = &o, .size = 16 * MiB};
    ci.repro.enabled = true;
    assert_int_equal(vhdx_create(&ci, NULL), 0);
    opts_release(&o);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    image_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    image = xmalloc(image_len);
    assert_int_equal(fread(image, 1, image_len, f), image_len);
    fclose(f);
    unlink(path);
    return 0;
}

static int teardown(void **state)
{
    free(image);
    return 0;
}

/* Open a (modified) copy of the image; NULL on success, else the message. */
static char *try_open(uint8_t *img, size_t len, int flags)
{
    BlockDriverState bs = {0};
    bs.file = bfile_new_mem("t.vhdx", img, len, true);
    bs.filename = "t.vhdx";
    bs.read_only = !(flags & BDRV_O_RDWR);
    bs.opaque = xzalloc(bdrv_vhdx.instance_size);
    Error *err = NULL;
    int ret = bdrv_vhdx.open(&bs, NULL, flags, &err);
    char *msg = ret < 0 ? xstrdup(err ? error_get_pretty(err) : "?") : NULL;
    if (ret == 0) {
        assert_int_equal(bs.total_size, 16 * MiB);
        bdrv_vhdx.close(&bs);
    }
    error_free(err);
    free(bs.opaque);
    bfile_close(bs.file);
    return msg;
}

static uint8_t *copy(void)
{
    uint8_t *c = xmalloc(image_len);
    memcpy(c, image, image_len);
    return c;
}

static void expect_len(uint8_t *img, size_t len, const char *want)
{
    char *msg = try_open(img, len, 0);
    free(img);
    if (!want) {
        assert_null(msg);
        return;
    }
    assert_non_null(msg);
    if (!strstr(msg, want)) {
        fail_msg("got [%s], want [%s]", msg, want);
    }
    free(msg);
}

static void expect(uint8_t *img, const char *want)
{
    expect_len(img, image_len, want);
}

static void test_bat_entries(void **state)
{
    /* 1 MiB blocks, 512-byte sectors: chunk ratio 4096 */
    assert_int_equal(vhdx_bat_entries(16 * MiB, MiB, 512), 16);
    assert_int_equal(vhdx_bat_entries(4096 * MiB, MiB, 512), 4096);
    assert_int_equal(vhdx_bat_entries(4097 * MiB, MiB, 512), 4097 + 1);
    assert_int_equal(vhdx_bat_entries(0, MiB, 512), 0);
    assert_int_equal(vhdx_bat_entries(1, 8 * MiB, 512), 1);
}

static void test_valid(void **state)
{
    expect(copy(), NULL);
}

static void test_headers(void **state)
{
    uint8_t *c = copy();
    c[VHDX_HEADER1_OFFSET + 100] ^= 1; /* header 1 broken: header 2 is used */
    expect(c, NULL);
    c = copy();
    c[VHDX_HEADER1_OFFSET + 100] ^= 1;
    c[VHDX_HEADER2_OFFSET + 100] ^= 1;
    expect(c, "No valid VHDX header found");
}

static void test_region_table(void **state)
{
    uint8_t *c = copy();
    c[VHDX_REGION_TABLE_OFFSET + 40] ^= 1;
    expect(c, "bad region table checksum");
    c = copy();
    st32_le(c + VHDX_REGION_TABLE_OFFSET + 8, 5000); /* entry count */
    st32_le(c + VHDX_REGION_TABLE_OFFSET + 4,
            crc32c_with_hole(c + VHDX_REGION_TABLE_OFFSET, VHDX_HEADER_BLOCK_SIZE, 4));
    expect(c, "too many region table entries");
    c = copy();
    /* metadata region placed on top of the BAT */
    uint64_t bat = ld64_le(c + VHDX_REGION_TABLE_OFFSET + 16 + 16);
    st64_le(c + VHDX_REGION_TABLE_OFFSET + 48 + 16, bat);
    st32_le(c + VHDX_REGION_TABLE_OFFSET + 4,
            crc32c_with_hole(c + VHDX_REGION_TABLE_OFFSET, VHDX_HEADER_BLOCK_SIZE, 4));
    expect(c, "overlapping regions");
}

static uint64_t metadata_offset(const uint8_t *c)
{
    return ld64_le(c + VHDX_REGION_TABLE_OFFSET + 48 + 16);
}

static void test_metadata(void **state)
{
    uint8_t *c = copy();
    uint64_t md = metadata_offset(c);
    st32_le(c + md + 65536, 3 * MiB); /* block size not a power of two */
    expect(c, "bad block size");
    c = copy();
    md = metadata_offset(c);
    st32_le(c + md + 65536 + 32, 1000); /* logical sector size */
    expect(c, "bad logical sector size");
    c = copy();
    md = metadata_offset(c);
    st32_le(c + md + 32 + 16, 0xfffff000); /* file parameters offset far outside */
    expect(c, "metadata item outside the metadata region");
    c = copy();
    md = metadata_offset(c);
    st32_le(c + md + 65536 + 4, VHDX_PARAMS_HAS_PARENT);
    expect(c, "differencing");
    c = copy();
    md = metadata_offset(c);
    st64_le(c + md + 65536 + 8, 1ULL << 60); /* virtual size */
    expect(c, "bad virtual disk size");
}

static void test_bat(void **state)
{
    uint8_t *c = copy();
    uint64_t bat = ld64_le(c + VHDX_REGION_TABLE_OFFSET + 16 + 16);
    st64_le(c + bat, (1ULL << 40) | PAYLOAD_BLOCK_FULLY_PRESENT);
    expect(c, "VHDX BAT entry 0 start offset 1099511627776 points after end of file");
    c = copy();
    st64_le(c + bat + 8, (image_len - MiB) | PAYLOAD_BLOCK_FULLY_PRESENT);
    expect_len(c, image_len - 4096, "end offset"); /* the file lost its last 4 KiB */
    c = copy();
    st64_le(c + bat, 2 * MiB | PAYLOAD_BLOCK_FULLY_PRESENT); /* a block on the BAT itself */
    expect(c, "overlaps the image metadata");
}

int main(void)
{
    formats_register_all();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bat_entries), cmocka_unit_test(test_valid),
        cmocka_unit_test(test_headers),     cmocka_unit_test(test_region_table),
        cmocka_unit_test(test_metadata),    cmocka_unit_test(test_bat),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
