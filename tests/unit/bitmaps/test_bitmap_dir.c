/*
 * test_bitmap_dir.c — unit tests of the qcow2 bitmap directory codec
 * (src/formats/qcow2-bitmap.c): entry sizes and padding, encode/decode
 * round trips against hand-built bytes from docs/interop/qcow2.txt, QEMU's
 * entry constraints one by one, and every way a hostile directory is
 * refused (with QEMU's message).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/qcow2.h"

static const Qcow2BitmapGeom geom = {.cluster_size = 65536, .image_size = 10 * MiB};

static Qcow2BitmapDirEntry entry(const char *name)
{
    return (Qcow2BitmapDirEntry){
        .table_offset = 0x40000,
        .table_size = 1,
        .flags = QCOW2_BME_FLAG_AUTO,
        .type = QCOW2_BME_TYPE_DIRTY_TRACKING,
        .granularity_bits = 16,
        .name_size = (uint16_t)strlen(name),
    };
}

static void test_entry_size(void **state)
{
    (void)state;
    assert_int_equal(qcow2_bitmap_dir_entry_size(0, 0), 24);
    assert_int_equal(qcow2_bitmap_dir_entry_size(1, 0), 32);
    assert_int_equal(qcow2_bitmap_dir_entry_size(8, 0), 32);
    assert_int_equal(qcow2_bitmap_dir_entry_size(9, 0), 40);
    assert_int_equal(qcow2_bitmap_dir_entry_size(2, 5), 32);
    assert_int_equal(qcow2_bitmap_dir_entry_size(1023, 0), 1048);
}

/* Bytes laid out by hand from the spec's table, big-endian. */
static void test_encode_layout(void **state)
{
    (void)state;
    Qcow2BitmapDirEntry e = entry("b1");
    e.table_offset = 0x0102030405060000ULL;
    e.table_size = 0x0a0b0c0d;
    e.flags = 3;
    uint8_t buf[32];
    memset(buf, 0xee, sizeof(buf));
    qcow2_bitmap_dir_entry_encode(buf, &e, "b1");
    static const uint8_t want[32] = {
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x00, 0x00, /* bitmap_table_offset */
        0x0a, 0x0b, 0x0c, 0x0d,                         /* bitmap_table_size */
        0x00, 0x00, 0x00, 0x03,                         /* flags */
        0x01,                                           /* type */
        0x10,                                           /* granularity_bits */
        0x00, 0x02,                                     /* name_size */
        0x00, 0x00, 0x00, 0x00,                         /* extra_data_size */
        'b',  '1',  0,    0,    0,    0,    0,    0,    /* name + padding */
    };
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_roundtrip(void **state)
{
    (void)state;
    Qcow2BitmapDirEntry e = entry("a-name"), d;
    e.extra_data_size = 0;
    uint8_t buf[64];
    qcow2_bitmap_dir_entry_encode(buf, &e, "a-name");
    qcow2_bitmap_dir_entry_decode(buf, &d);
    assert_memory_equal(&e, &d, sizeof(e));
    assert_memory_equal(buf + 24, "a-name", 6);
}

static void test_constraints(void **state)
{
    (void)state;
    Qcow2BitmapDirEntry e = entry("x");
    assert_true(qcow2_bitmap_entry_valid(&e, &geom));
#define BAD(field, value)                                  \
    do {                                                   \
        Qcow2BitmapDirEntry b = entry("x");                \
        b.field = value;                                   \
        assert_false(qcow2_bitmap_entry_valid(&b, &geom)); \
    } while (0)
    BAD(table_size, 0);
    BAD(table_offset, 0);
    BAD(table_offset, 0x40200); /* not cluster-aligned */
    BAD(table_size, QCOW2_BME_MAX_TABLE_SIZE + 1);
    BAD(granularity_bits, 8);
    BAD(granularity_bits, 32);
    BAD(flags, 4);
    BAD(flags, 0x80000000U);
    BAD(name_size, 1024);
    BAD(type, 0);
    BAD(type, 2);
    BAD(table_size, 8193); /* 8193 clusters of 64 KiB > 512 MiB of data */
#undef BAD
    /* one 64 KiB cluster at 512 B granularity covers 256 MiB */
    Qcow2BitmapGeom big = {65536, 256 * MiB};
    e.granularity_bits = 9;
    assert_true(qcow2_bitmap_entry_valid(&e, &big));
    big.image_size++;
    assert_false(qcow2_bitmap_entry_valid(&e, &big));
    /* ... unless the bitmap is IN_USE (not saved after a resize) */
    e.flags |= QCOW2_BME_FLAG_IN_USE;
    assert_true(qcow2_bitmap_entry_valid(&e, &big));
    /* the largest legal entry does not overflow the coverage check */
    Qcow2BitmapGeom huge = {512, UINT64_MAX / 2};
    Qcow2BitmapDirEntry m = entry("m");
    m.table_offset = 512;
    m.table_size = QCOW2_BME_MAX_PHYS_SIZE / 512;
    m.granularity_bits = 31;
    assert_true(qcow2_bitmap_entry_valid(&m, &huge));
}

/* Build a directory of n entries named b0, b1, ... */
static uint8_t *make_dir(uint32_t n, uint64_t *size)
{
    Qcow2Bitmap *list = calloc(n, sizeof(*list));
    for (uint32_t i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "b%u", i);
        list[i].name = strdup(name);
        list[i].table_offset = 0x10000 * (i + 1);
        list[i].table_size = 1;
        list[i].flags = i % 2 ? 0 : QCOW2_BME_FLAG_AUTO;
        list[i].granularity_bits = (uint8_t)(9 + i % 20);
    }
    uint8_t *dir = qcow2_bitmap_dir_encode(list, n, size);
    qcow2_bitmap_list_free(list, n);
    return dir;
}

static void test_dir_roundtrip(void **state)
{
    (void)state;
    uint64_t size = 0;
    uint8_t *dir = make_dir(3, &size);
    assert_non_null(dir);
    assert_int_equal(size, 96);
    Qcow2Bitmap *list = NULL;
    Error *err = NULL;
    assert_int_equal(qcow2_bitmap_dir_decode(dir, size, 3, &geom, &list, &err), 0);
    assert_null(err);
    assert_string_equal(list[0].name, "b0");
    assert_string_equal(list[2].name, "b2");
    assert_int_equal(list[1].table_offset, 0x20000);
    assert_int_equal(list[1].granularity_bits, 10);
    assert_true(list[0].enabled);
    assert_false(list[1].enabled);
    assert_false(list[0].inconsistent);
    qcow2_bitmap_list_free(list, 3);
    free(dir);
}

/* Decode must fail with exactly `msg`. */
static void expect_decode_error(const uint8_t *dir, uint64_t size, uint32_t nb, const char *msg)
{
    Qcow2Bitmap *list = (Qcow2Bitmap *)1;
    Error *err = NULL;
    assert_int_equal(qcow2_bitmap_dir_decode(dir, size, nb, &geom, &list, &err), -EINVAL);
    assert_null(list);
    assert_non_null(err);
    assert_string_equal(error_get_pretty(err), msg);
    error_free(err);
}

static void test_dir_hostile(void **state)
{
    (void)state;
    uint64_t size = 0;
    uint8_t *dir = make_dir(2, &size);
    expect_decode_error(dir, 0, 2, "Requested bitmap directory size is zero");
    expect_decode_error(dir, QCOW2_MAX_BITMAP_DIRECTORY_SIZE + 1ULL, 2,
                        "Requested bitmap directory size is too big");
    expect_decode_error(dir, size, 3, "Less bitmaps found than specified in header extension");
    expect_decode_error(dir, size, 1, "More bitmaps found than specified in header extension");
    expect_decode_error(dir, size - 8, 2, "Broken bitmap directory"); /* entry past the end */
    expect_decode_error(dir, 20, 2, "Broken bitmap directory");       /* header cut short */
    st16_be(dir + 18, 0xffff);                                        /* name_size huge */
    expect_decode_error(dir, size, 2, "Broken bitmap directory");
    st16_be(dir + 18, 2);
    st32_be(dir + 20, 8); /* extra data */
    expect_decode_error(dir, size + 8, 2, "Bitmap extra data is not supported");
    st32_be(dir + 20, 0);
    dir[17] = 40; /* granularity_bits */
    expect_decode_error(dir, size, 2, "Bitmap 'b0' doesn't satisfy the constraints");
    dir[17] = 16;
    st64_be(dir + 32, 0x10001); /* second entry's table unaligned */
    expect_decode_error(dir, size, 2, "Bitmap 'b1' doesn't satisfy the constraints");
    free(dir);
}

static void test_dir_limits(void **state)
{
    (void)state;
    /* 65535 entries with long names would pass 64 MiB: encode refuses */
    uint32_t n = 65535;
    Qcow2Bitmap *list = calloc(n, sizeof(*list));
    char *name = malloc(1024);
    memset(name, 'n', 1023);
    name[1023] = 0;
    for (uint32_t i = 0; i < n; i++) {
        list[i].name = name;
        list[i].table_offset = 0x10000;
        list[i].table_size = 1;
        list[i].granularity_bits = 16;
    }
    uint64_t size = 0;
    assert_null(qcow2_bitmap_dir_encode(list, n, &size));
    assert_null(qcow2_bitmap_dir_encode(list, 0, &size));
    free(name);
    free(list);
}

static void test_bitmap_bytes(void **state)
{
    (void)state;
    assert_int_equal(qcow2_bitmap_bytes(0, 16), 0);
    assert_int_equal(qcow2_bitmap_bytes(1, 16), 1);
    assert_int_equal(qcow2_bitmap_bytes(10 * MiB, 16), 20); /* 160 bits */
    assert_int_equal(qcow2_bitmap_bytes(10 * MiB + 1, 16), 21);
    assert_int_equal(qcow2_bitmap_bytes(10 * MiB, 9), 2560);
    assert_int_equal(qcow2_bitmap_bytes(UINT64_MAX / 2, 9), (1ULL << 51) + 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry_size),    cmocka_unit_test(test_encode_layout),
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_dir_roundtrip), cmocka_unit_test(test_dir_hostile),
        cmocka_unit_test(test_dir_limits),    cmocka_unit_test(test_bitmap_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
