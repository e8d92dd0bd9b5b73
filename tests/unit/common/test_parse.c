/*
 * test_parse.c — src/common's parsers against qemu-img 7.2's behaviour:
 * parse_size (qemu_strtosz: every expected value below was observed with
 * `qemu-img create -f raw x SIZE`), size_to_str (observed in `qemu-img info`),
 * opts_parse / opts_has_help / opts_validate (QemuOpts syntax and messages).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/opts.h"
#include "common/util.h"

typedef struct {
    const char *in;
    int ret;
    uint64_t val;
} SizeCase;

static const SizeCase size_cases[] = {
    {"0", 0, 0},
    {"1000", 0, 1000},
    {"1k", 0, 1024},
    {"1K", 0, 1024},
    {"1.5G", 0, 1610612736},
    {"1.5M", 0, 1572864},
    {"1.1k", 0, 1126}, /* 1126.4: rounded to nearest */
    {"0.0005k", 0, 1}, /* 0.512: rounds half up */
    {"0.0001k", 0, 0},
    {"1.0004k", 0, 1024},
    {"1.9999999999999999999k", 0, 1024}, /* fraction parses as 1.0: qemu drops it */
    {"0.9999999999999999k", 0, 1024},
    {"1.7E", 0, 1959966557831639808ULL},
    {"1.5e", 0, 1729382256910270464ULL},
    {"1.k", 0, 1024},
    {"1.", 0, 1},
    {"00.5k", 0, 512},
    {"1b", 0, 1},
    {"1B", 0, 1},
    {"1.0b", 0, 1},
    {"0x1000", 0, 4096},
    {"0X10", 0, 16},
    {"0x10b", 0, 0x10b}, /* 'b' is a hex digit */
    {"0x10k", 0, 16384}, /* deprecated but accepted */
    {"+1", 0, 1},
    {"+0x10", 0, 16},
    {" 12", 0, 12},
    {"  0x10", 0, 16},
    {"010", 0, 10},
    {"1e", 0, 1ULL << 60},
    {"1E", 0, 1ULL << 60},
    {"16383P", 0, 16383ULL << 50},
    {"18446744073709551615", 0, UINT64_MAX},
    {"0xFFFFFFFFFFFFFFFF", 0, UINT64_MAX},
    {"1.00000000000000000001G", 0, 1073741824},
    /* invalid */
    {"-1", -EINVAL, 0},
    {"-0", -EINVAL, 0},
    {"1.5", -EINVAL, 0}, /* a fraction needs a unit */
    {"0.5", -EINVAL, 0},
    {"0.5b", -EINVAL, 0},
    {"1.25kb", -EINVAL, 0},
    {".5k", -EINVAL, 0},
    {"0x", -EINVAL, 0},
    {"0xk", -EINVAL, 0},
    {"0x.5k", -EINVAL, 0},
    {"0x1p3", -EINVAL, 0},
    {"1k5", -EINVAL, 0},
    {"1kB", -EINVAL, 0},
    {"1ki", -EINVAL, 0},
    {"1e3", -EINVAL, 0},
    {"1.e3k", -EINVAL, 0},
    {"1.5e3k", -EINVAL, 0},
    {"1.5.5", -EINVAL, 0},
    {"1 k", -EINVAL, 0},
    {"1k ", -EINVAL, 0},
    {"", -EINVAL, 0},
    {"k", -EINVAL, 0},
    {"abc", -EINVAL, 0},
    {"99999999999999999999k", -EINVAL, 0}, /* trailing text after an overflow */
    /* out of range */
    {"16E", -ERANGE, 0},
    {"18446744073709551616", -ERANGE, 0},
    {"99999999999999999999", -ERANGE, 0},
    {"15.99999999999999999E", 0, 15ULL << 60}, /* the 1.0 fraction quirk again */
    {"16384P", -ERANGE, 0},
};

static void test_parse_size_table(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(size_cases); i++) {
        const SizeCase *c = &size_cases[i];
        uint64_t v = 12345;
        int ret = parse_size(c->in, NULL, &v);
        if (ret != c->ret || (ret == 0 && v != c->val)) {
            fail_msg("parse_size(\"%s\") = %d, %llu; expected %d, %llu", c->in, ret,
                     (unsigned long long)v, c->ret, (unsigned long long)c->val);
        }
        if (ret < 0) {
            assert_int_equal(v, 12345); /* untouched on error */
        }
    }
}

static void test_parse_size_end(void **state)
{
    const char *end = NULL;
    uint64_t v;
    assert_int_equal(parse_size("1k,foo", &end, &v), 0);
    assert_int_equal(v, 1024);
    assert_string_equal(end, ",foo");
    assert_int_equal(parse_size("12 ", &end, &v), 0);
    assert_string_equal(end, " ");
    /* an invalid fraction leaves end at the start, like qemu */
    const char *s = "1.5x";
    assert_int_equal(parse_size(s, &end, &v), -EINVAL);
    assert_ptr_equal(end, s);
}

static void test_parse_size_units(void **state)
{
    uint64_t v;
    assert_int_equal(parse_size_mib("2", NULL, &v), 0);
    assert_int_equal(v, 2 * MiB);
    assert_int_equal(parse_size_mib("1.5", NULL, &v), 0); /* default unit MiB: fraction ok */
    assert_int_equal(v, 3 * MiB / 2);
    assert_int_equal(parse_size_mib("4k", NULL, &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(parse_size_metric("1k", NULL, &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(parse_size_metric("1.5M", NULL, &v), 0);
    assert_int_equal(v, 1500000);
    assert_int_equal(parse_size_metric("20E", NULL, &v), -ERANGE);
}

static void test_size_to_str(void **state)
{
    static const struct {
        uint64_t v;
        const char *s;
    } cases[] = {
        {0, "0 B"},
        {512, "512 B"},
        {1024, "1 KiB"},
        {1536, "1.5 KiB"},
        {1023488, "1e+03 KiB"},
        {1024000, "0.977 MiB"},
        {1000448, "977 KiB"},
        {1048576, "1 MiB"},
        {123457024, "118 MiB"},
        {5000000000ULL, "4.66 GiB"},
        {1099511627776ULL, "1 TiB"},
        {UINT64_MAX, "16 EiB"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *s = size_to_str(cases[i].v);
        assert_string_equal(s, cases[i].s);
        free(s);
    }
}

static void test_opts_parse_syntax(void **state)
{
    Opts o = OPTS_INIT;
    assert_int_equal(opts_parse(&o, "a=1,,2,b,c=x=y,d,,e=3", NULL, NULL), 0);
    assert_int_equal(o.n, 4);
    assert_string_equal(opts_get(&o, "a"), "1,2"); /* ",," is a literal comma */
    assert_string_equal(opts_get(&o, "b"), "on");  /* bare key */
    assert_string_equal(opts_get(&o, "c"), "x=y"); /* value keeps '=' */
    assert_string_equal(opts_get(&o, "d,e"), "3"); /* escaped comma in a key */
    opts_release(&o);

    /* implied key: only the first element */
    assert_int_equal(opts_parse(&o, "secret,id=s0,data", "qom-type", NULL), 0);
    assert_string_equal(opts_get(&o, "qom-type"), "secret");
    assert_string_equal(opts_get(&o, "id"), "s0");
    assert_string_equal(opts_get(&o, "data"), "on");
    opts_release(&o);

    /* accumulation: later occurrences win, both are kept */
    assert_int_equal(opts_parse(&o, "size=1k", NULL, NULL), 0);
    assert_int_equal(opts_parse(&o, "cluster_size=4k,size=2k", NULL, NULL), 0);
    assert_int_equal(o.n, 3);
    assert_string_equal(opts_get(&o, "size"), "2k");
    opts_release(&o);

    /* empty key: error, and o keeps what it had */
    Error *err = NULL;
    assert_int_equal(opts_parse(&o, "a=1", NULL, NULL), 0);
    assert_true(opts_parse(&o, "b=2,=3", NULL, &err) < 0);
    assert_non_null(err);
    error_free(err);
    assert_int_equal(o.n, 1);
    assert_null(opts_get(&o, "b"));
    opts_release(&o);
}

static void test_opts_has_help(void **state)
{
    assert_true(opts_has_help("help"));
    assert_true(opts_has_help("?"));
    assert_true(opts_has_help("size=1k,help"));
    assert_true(opts_has_help("size=1k,?,x=y"));
    assert_false(opts_has_help("a=help"));
    assert_false(opts_has_help("x,,help")); /* one element "x,help" */
    assert_false(opts_has_help("helper"));
    assert_false(opts_has_help(""));
    assert_false(opts_has_help(NULL));
}

static const OptDesc t1[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"lazy", OPT_BOOL, "Postpone", "off"},
    {"bits", OPT_NUMBER, "Width", "16"},
    {"name", OPT_STRING, "A name", NULL},
    {NULL, 0, NULL, NULL},
};
static const OptDesc t2[] = {
    {"size", OPT_SIZE, "Duplicate: the first table wins", NULL},
    {"nocow", OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)", NULL},
    {NULL, 0, NULL, NULL},
};

static void expect_invalid(const char *str, const char *msg)
{
    const OptDesc *const tables[] = {t1, t2, NULL};
    Opts o = OPTS_INIT;
    Error *err = NULL;
    assert_int_equal(opts_parse(&o, str, NULL, NULL), 0);
    assert_true(opts_validate(&o, tables, &err) < 0);
    assert_non_null(err);
    if (strncmp(error_get_pretty(err), msg, strlen(msg))) {
        fail_msg("validate(\"%s\"): got \"%s\", want \"%s\"", str, error_get_pretty(err), msg);
    }
    error_free(err);
    opts_release(&o);
}

static void test_opts_validate(void **state)
{
    const OptDesc *const tables[] = {t1, t2, NULL};
    Opts o = OPTS_INIT;
    assert_int_equal(opts_parse(&o, "size=1.5k,lazy=yes,bits=0x10,name=a,,b,nocow", NULL, NULL), 0);
    assert_int_equal(opts_validate(&o, tables, NULL), 0);
    uint64_t n;
    bool b;
    assert_int_equal(opts_get_size(&o, "size", 0, &n, NULL), 0);
    assert_int_equal(n, 1536);
    assert_int_equal(opts_get_number(&o, "bits", 0, &n, NULL), 0);
    assert_int_equal(n, 16);
    assert_int_equal(opts_get_bool(&o, "lazy", false, &b, NULL), 0);
    assert_true(b);
    assert_int_equal(opts_get_bool(&o, "absent", true, &b, NULL), 0);
    assert_true(b);
    opts_release(&o);

    expect_invalid("foo=1", "Invalid parameter 'foo'");
    expect_invalid("size=1k,foo", "Invalid parameter 'foo'");
    expect_invalid("lazy=maybe", "Parameter 'lazy' expects 'on' or 'off'");
    expect_invalid("bits=x", "Parameter 'bits' expects a number");
    expect_invalid("bits=-1", "Parameter 'bits' expects a number");
    expect_invalid("size=-1", "Parameter 'size' expects a non-negative number below 2^64");
    expect_invalid("size=1.5", "Parameter 'size' expects a non-negative number below 2^64");
}

static void test_optdesc_help(void **state)
{
    const OptDesc *const tables[] = {t1, t2, NULL};
    StrBuf sb = STRBUF_INIT;
    optdesc_print_help(&sb, tables);
    assert_string_equal(sb_str(&sb),
                        "Supported options:\n"
                        "  bits=<num>             - Width\n"
                        "  lazy=<bool (on/off)>   - Postpone\n"
                        "  name=<str>             - A name\n"
                        "  nocow=<bool (on/off)>  - Turn off copy-on-write (valid only on btrfs)\n"
                        "  size=<size>            - Virtual disk size\n");
    sb_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size_table),  cmocka_unit_test(test_parse_size_end),
        cmocka_unit_test(test_parse_size_units),  cmocka_unit_test(test_size_to_str),
        cmocka_unit_test(test_opts_parse_syntax), cmocka_unit_test(test_opts_has_help),
        cmocka_unit_test(test_opts_validate),     cmocka_unit_test(test_optdesc_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
