/*
 * test_crc32c.c — CRC-32C against published check values (RFC 3720
 * appendix B.4 test patterns and the "123456789" check value), and the
 * VHDX convention of computing with the checksum field taken as zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "formats/crc32c.h"

static void test_check_value(void **state)
{
    assert_int_equal(crc32c("123456789", 9), 0xe3069283);
    assert_int_equal(crc32c("", 0), 0);
}

static void test_rfc3720_patterns(void **state)
{
    uint8_t buf[32];
    memset(buf, 0, sizeof(buf));
    assert_int_equal(crc32c(buf, 32), 0x8a9136aa);
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(crc32c(buf, 32), 0x62a8ab43);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)i;
    }
    assert_int_equal(crc32c(buf, 32), 0x46dd794e);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)(31 - i);
    }
    assert_int_equal(crc32c(buf, 32), 0x113fdb5c);
}

/* Incremental updates at every split point equal the one-shot value. */
static void test_incremental(void **state)
{
    uint8_t buf[100];
    for (int i = 0; i < 100; i++) {
        buf[i] = (uint8_t)(i * 7 + 3);
    }
    uint32_t whole = crc32c(buf, sizeof(buf));
    for (size_t cut = 0; cut <= sizeof(buf); cut++) {
        uint32_t c = crc32c_update(0xffffffff, buf, cut);
        c = crc32c_update(c, buf + cut, sizeof(buf) - cut) ^ 0xffffffff;
        assert_int_equal(c, whole);
    }
}

static void test_with_hole(void **state)
{
    uint8_t buf[64];
    for (int i = 0; i < 64; i++) {
        buf[i] = (uint8_t)(i + 1);
    }
    uint8_t zeroed[64];
    memcpy(zeroed, buf, sizeof(buf));
    memset(zeroed + 4, 0, 4);
    assert_int_equal(crc32c_with_hole(buf, 64, 4), crc32c(zeroed, 64));
    /* a hole that does not fit is ignored */
    assert_int_equal(crc32c_with_hole(buf, 6, 4), crc32c(buf, 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_rfc3720_patterns),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_with_hole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
