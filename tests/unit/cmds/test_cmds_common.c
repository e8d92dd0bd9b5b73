/* Unit tests for src/engine/cmds_common.c: qemu-img's number parsing rules. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "engine/cmds_common.h"

static void test_cvtnum(void **state)
{
    assert_int_equal(cmds_cvtnum("offset", "0", 0, INT64_MAX), 0);
    assert_int_equal(cmds_cvtnum("offset", "4k", 0, INT64_MAX), 4096);
    assert_int_equal(cmds_cvtnum("offset", "1.5M", 0, INT64_MAX), 1572864);
    assert_int_equal(cmds_cvtnum("offset", "0x10", 0, INT64_MAX), 16);
    /* qemu_strtosz refuses a sign: -EINVAL ("You may use k, M, ..."), not a range error */
    assert_int_equal(cmds_cvtnum("offset", "-1", 0, INT64_MAX), -EINVAL);
    assert_int_equal(cmds_cvtnum("offset", " -1", 0, INT64_MAX), -EINVAL);
    assert_int_equal(cmds_cvtnum("rate limit", "1x", 0, INT64_MAX), -EINVAL);
    assert_int_equal(cmds_cvtnum("rate limit", "", 0, INT64_MAX), -EINVAL);
    /* range: "Must be between MIN and MAX." */
    assert_int_equal(cmds_cvtnum("buffer size", "3G", 0, INT32_MAX), -ERANGE);
    assert_int_equal(cmds_cvtnum("buffer size", "2147483647", 0, INT32_MAX), INT32_MAX);
    assert_int_equal(cmds_cvtnum("x", "16E", 0, INT64_MAX), -ERANGE);
    assert_int_equal(cmds_cvtnum("x", "8E", 0, INT64_MAX), -ERANGE);
    assert_int_equal(cmds_cvtnum("x", "1k", 2048, INT64_MAX), -ERANGE);
}

static void test_parse_ulong(void **state)
{
    unsigned long v = 0;
    assert_true(cmds_parse_ulong("75000", INT32_MAX, &v));
    assert_int_equal(v, 75000);
    assert_true(cmds_parse_ulong("0xff", 0xff, &v));
    assert_int_equal(v, 255);
    assert_true(cmds_parse_ulong("010", 0xff, &v)); /* base 0: octal, as strtoul */
    assert_int_equal(v, 8);
    assert_false(cmds_parse_ulong("256", 0xff, &v));
    assert_false(cmds_parse_ulong("-1", INT32_MAX, &v));
    assert_false(cmds_parse_ulong("12x", INT32_MAX, &v));
    assert_false(cmds_parse_ulong("", INT32_MAX, &v));
    assert_false(cmds_parse_ulong(NULL, INT32_MAX, &v));
    assert_false(cmds_parse_ulong("99999999999999999999999", INT32_MAX, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cvtnum),
        cmocka_unit_test(test_parse_ulong),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
