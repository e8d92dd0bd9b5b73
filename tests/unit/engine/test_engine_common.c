/*
 * test_engine_common.c — engine helpers whose output format matters:
 * img_json_qdict_order() must reproduce the member order qemu-img 7.2
 * prints (observed with `qemu-img info/check/measure --output=json`), and
 * the front-end helpers qimg_accumulate_options() / qimg_cvtnum() follow
 * qemu-img's rules.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

/* Build an object with keys (values = their index), order it, compare. */
static void expect_order(const char *const *in, size_t n, const char *const *want)
{
    JVal *o = json_object();
    for (size_t i = 0; i < n; i++) {
        json_add_int(o, in[i], (int64_t)i);
    }
    img_json_qdict_order(o);
    assert_int_equal(o->n, n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(o->keys[i], want[i])) {
            fail_msg("position %zu: got %s, want %s", i, o->keys[i], want[i]);
        }
    }
    json_free(o);
}

static void test_image_info_order(void **state)
{
    /* QAPI ImageInfo declaration order in, qemu-img info's order out */
    static const char *const in[] = {
        "filename",
        "format",
        "dirty-flag",
        "actual-size",
        "virtual-size",
        "cluster-size",
        "backing-filename",
        "full-backing-filename",
        "backing-filename-format",
        "snapshots",
        "format-specific",
    };
    static const char *const want[] = {
        "backing-filename-format",
        "snapshots",
        "virtual-size",
        "filename",
        "cluster-size",
        "format",
        "actual-size",
        "format-specific",
        "full-backing-filename",
        "backing-filename",
        "dirty-flag",
    };
    expect_order(in, ARRAY_SIZE(in), want);
}

static void test_check_and_measure_order(void **state)
{
    static const char *const check_in[] = {"filename", "format", "check-errors", "image-end-offset",
                                           "total-clusters"};
    static const char *const check_want[] = {"image-end-offset", "total-clusters", "check-errors",
                                             "filename", "format"};
    expect_order(check_in, ARRAY_SIZE(check_in), check_want);
    static const char *const m_in[] = {"required", "fully-allocated", "bitmaps"};
    static const char *const m_want[] = {"bitmaps", "required", "fully-allocated"};
    expect_order(m_in, ARRAY_SIZE(m_in), m_want);
    /* qcow2's format-specific data and snapshot members */
    static const char *const q_in[] = {"compat",  "lazy-refcounts", "refcount-bits",
                                       "corrupt", "extended-l2",    "compression-type"};
    static const char *const q_want[] = {"compat",        "compression-type", "lazy-refcounts",
                                         "refcount-bits", "corrupt",          "extended-l2"};
    expect_order(q_in, ARRAY_SIZE(q_in), q_want);
    static const char *const s_in[] = {"id",        "name",         "vm-state-size", "date-sec",
                                       "date-nsec", "vm-clock-sec", "vm-clock-nsec", "icount"};
    static const char *const s_want[] = {"icount",    "vm-clock-nsec", "name", "date-sec",
                                         "date-nsec", "vm-clock-sec",  "id",   "vm-state-size"};
    expect_order(s_in, ARRAY_SIZE(s_in), s_want);
}

static void test_order_is_recursive(void **state)
{
    JVal *o = json_object();
    JVal *arr = json_object_add(o, "list", json_array());
    JVal *inner = json_array_add(arr, json_object());
    json_add_int(inner, "fully-allocated", 1);
    json_add_int(inner, "required", 2);
    img_json_qdict_order(o);
    assert_string_equal(inner->keys[0], "required");
    assert_string_equal(inner->keys[1], "fully-allocated");
    json_free(o);
}

static void test_accumulate_options(void **state)
{
    char *opts = NULL;
    assert_int_equal(qimg_accumulate_options(&opts, "a=1"), 0);
    assert_int_equal(qimg_accumulate_options(&opts, "b=2,,x"), 0);
    assert_string_equal(opts, "a=1,b=2,,x");
    assert_int_equal(qimg_accumulate_options(&opts, "c=3,,"), 0); /* even trailing commas */
    assert_string_equal(opts, "a=1,b=2,,x,c=3,,");
    /* refused (message on stderr), opts unchanged */
    assert_int_equal(qimg_accumulate_options(&opts, ""), -1);
    assert_int_equal(qimg_accumulate_options(&opts, ",a"), -1);
    assert_int_equal(qimg_accumulate_options(&opts, "a=1,"), -1);
    assert_int_equal(qimg_accumulate_options(&opts, "a=1,,,"), -1);
    assert_string_equal(opts, "a=1,b=2,,x,c=3,,");
    free(opts);
}

static void test_cvtnum(void **state)
{
    int64_t v = 0;
    assert_int_equal(qimg_cvtnum("image size", "1.5G", true, &v), 0);
    assert_int_equal(v, 1610612736);
    assert_int_equal(qimg_cvtnum("image size", "8E", true, &v), -1); /* > INT64_MAX */
    assert_int_equal(qimg_cvtnum("image size", "-1", true, &v), -1);
    assert_int_equal(qimg_cvtnum("rate limit", "12", false, &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(qimg_cvtnum("rate limit", "1k", false, &v), -1); /* not a size */
    assert_int_equal(qimg_cvtnum_full("count", "5", false, 1, 4, &v), -1);
    assert_int_equal(qimg_cvtnum_full("count", "4", false, 1, 4, &v), 0);
    assert_int_equal(v, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_info_order),
        cmocka_unit_test(test_check_and_measure_order),
        cmocka_unit_test(test_order_is_recursive),
        cmocka_unit_test(test_accumulate_options),
        cmocka_unit_test(test_cvtnum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
