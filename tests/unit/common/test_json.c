/*
 * test_json.c — src/common/json.c against qemu 7.2's JSON writer: string
 * escaping (quoted_str: \uXXXX for control and non-ASCII, surrogate pairs
 * beyond the BMP, U+FFFD for invalid UTF-8), the pretty layout of
 * qobject_to_json_pretty (4 spaces, "key": value, empty containers as
 * "{\n}"), the compact form, and parse/print round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/util.h"

static void expect_quote(const char *in, const char *want)
{
    StrBuf sb = STRBUF_INIT;
    json_quote(&sb, in);
    assert_string_equal(sb_str(&sb), want);
    sb_release(&sb);
}

static void test_escaping(void **state)
{
    expect_quote("plain", "\"plain\"");
    expect_quote("a\"b\\c", "\"a\\\"b\\\\c\"");
    expect_quote("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
    expect_quote("\x01\x1f\x7f", "\"\\u0001\\u001F\\u007F\"");
    expect_quote("/", "\"/\"");                             /* not escaped */
    expect_quote("\xc3\xa9", "\"\\u00E9\"");                /* é */
    expect_quote("\xe2\x82\xac", "\"\\u20AC\"");            /* € */
    expect_quote("\xf0\x9f\x98\x80", "\"\\uD83D\\uDE00\""); /* 😀: surrogates */
    expect_quote("a\xff"
                 "b",
                 "\"a\\uFFFDb\""); /* invalid byte */
    expect_quote("", "\"\"");
}

static JVal *sample(void)
{
    JVal *o = json_object();
    json_add_int(o, "n", -5);
    json_object_add(o, "big", json_uint(UINT64_MAX));
    json_add_bool(o, "t", true);
    json_add_str(o, "s", "x");
    JVal *arr = json_object_add(o, "list", json_array());
    json_array_add(arr, json_int(1));
    JVal *inner = json_array_add(arr, json_object());
    json_add_str(inner, "k", "v");
    json_object_add(o, "empty-obj", json_object());
    json_object_add(o, "empty-list", json_array());
    json_object_add(o, "nothing", json_null());
    return o;
}

static void test_pretty_layout(void **state)
{
    JVal *o = sample();
    StrBuf sb = STRBUF_INIT;
    json_print_pretty(&sb, o, 0);
    assert_string_equal(sb_str(&sb), "{\n"
                                     "    \"n\": -5,\n"
                                     "    \"big\": 18446744073709551615,\n"
                                     "    \"t\": true,\n"
                                     "    \"s\": \"x\",\n"
                                     "    \"list\": [\n"
                                     "        1,\n"
                                     "        {\n"
                                     "            \"k\": \"v\"\n"
                                     "        }\n"
                                     "    ],\n"
                                     "    \"empty-obj\": {\n"
                                     "    },\n"
                                     "    \"empty-list\": [\n"
                                     "    ],\n"
                                     "    \"nothing\": null\n"
                                     "}");
    sb_reset(&sb);
    json_print_compact(&sb, o);
    assert_string_equal(sb_str(&sb), "{\"n\": -5, \"big\": 18446744073709551615, \"t\": true, "
                                     "\"s\": \"x\", \"list\": [1, {\"k\": \"v\"}], "
                                     "\"empty-obj\": {}, \"empty-list\": [], \"nothing\": null}");
    sb_release(&sb);
    json_free(o);
}

static void test_round_trip(void **state)
{
    JVal *o = sample();
    StrBuf a = STRBUF_INIT, b = STRBUF_INIT;
    json_print_pretty(&a, o, 0);
    JVal *p = json_parse(a.buf, a.len, NULL);
    assert_non_null(p);
    json_print_pretty(&b, p, 0);
    assert_string_equal(sb_str(&a), sb_str(&b));
    int64_t n;
    assert_true(json_get_int(p, "n", &n));
    assert_int_equal(n, -5);
    assert_string_equal(json_get_str(json_get(p, "list")->items[1], "k"), "v");
    json_free(p);
    json_free(o);
    sb_release(&a);
    sb_release(&b);

    const char *esc = "{\"s\": \"\\u00e9\\uD83D\\uDE00\\n\"}";
    p = json_parse(esc, strlen(esc), NULL);
    assert_non_null(p);
    assert_string_equal(json_get_str(p, "s"), "\xc3\xa9\xf0\x9f\x98\x80\n");
    json_free(p);
}

static void test_parse_errors(void **state)
{
    static const char *bad[] = {"", "{", "{\"a\" 1}", "[1,]", "{\"a\": tru}", "\"\\x\""};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        Error *err = NULL;
        JVal *v = json_parse(bad[i], strlen(bad[i]), &err);
        if (v) {
            fail_msg("json_parse accepted \"%s\"", bad[i]);
        }
        assert_non_null(err);
        error_free(err);
    }
    /* deep nesting is refused, not a stack overflow */
    StrBuf deep = STRBUF_INIT;
    for (int i = 0; i < 100000; i++) {
        sb_addc(&deep, '[');
    }
    Error *err = NULL;
    assert_null(json_parse(deep.buf, deep.len, &err));
    error_free(err);
    sb_release(&deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_pretty_layout),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
