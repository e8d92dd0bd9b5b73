/* Unit tests for src/engine/secrets.c: --object secret parsing and lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/secrets.h"

/* Add an object; return the error text (static buffer) or NULL on success. */
static const char *add(const char *arg)
{
    static char msg[512];
    Error *err = NULL;
    if (secret_add_object(arg, &err) == 0) {
        assert_null(err);
        return NULL;
    }
    assert_non_null(err);
    snprintf(msg, sizeof(msg), "%s", error_get_pretty(err));
    error_free(err);
    return msg;
}

static void expect_secret(const char *id, const char *want, size_t want_len)
{
    size_t len = 0;
    Error *err = NULL;
    uint8_t *v = secret_lookup(id, &len, &err);
    assert_non_null(v);
    assert_int_equal(len, want_len);
    assert_memory_equal(v, want, want_len);
    assert_int_equal(v[len], 0);
    free(v);
}

static void test_data_raw_and_base64(void **state)
{
    secrets_clear();
    assert_null(add("secret,id=s0,data=hunter2"));
    assert_null(add("secret,id=s1,data=YWJj,format=base64"));
    assert_null(add("secret,id=s2,data=a,,b"));       /* ",," is a literal comma */
    assert_null(add("qom-type=secret,id=s3,data=x")); /* explicit key */
    expect_secret("s0", "hunter2", 7);
    expect_secret("s1", "abc", 3);
    expect_secret("s2", "a,b", 3);
    expect_secret("s3", "x", 1);
    secrets_clear();
}

static void test_file(void **state)
{
    secrets_clear();
    char path[] = "/tmp/imgpipe-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "pw\0x", 4), 4); /* binary-safe */
    close(fd);
    char *arg = NULL;
    assert_true(asprintf(&arg, "secret,id=f,file=%s", path) > 0);
    assert_null(add(arg));
    expect_secret("f", "pw\0x", 4);
    free(arg);
    unlink(path);
    const char *e = add("secret,id=g,file=/nonexistent/secret");
    assert_non_null(e);
    assert_non_null(strstr(e, "Unable to read /nonexistent/secret"));
    secrets_clear();
}

/* qemu's texts for every malformed definition */
static void test_errors(void **state)
{
    secrets_clear();
    assert_string_equal(add("secret,id=s0"), "Either 'file' or 'data' must be provided");
    assert_string_equal(add("secret,data=abc"), "Parameter 'id' is missing");
    assert_string_equal(add("secret,id=s0,data=a,file=/etc/hostname"),
                        "'file' and 'data' are mutually exclusive");
    assert_string_equal(add("foo,id=s0"), "Parameter 'qom-type' does not accept value 'foo'");
    assert_string_equal(add("id=s0,data=x"), "Parameter 'qom-type' is missing");
    assert_string_equal(add("secret,id=s0,data=%%%,format=base64"),
                        "Base64 data contains invalid characters");
    assert_string_equal(add("secret,id=s0,data=abc,format=xx"),
                        "Parameter 'format' does not accept value 'xx'");
    assert_string_equal(add("secret,id=s0,data=abc,bogus=1"), "Parameter 'bogus' is unexpected");
    assert_non_null(add("secret,id=s0,data=abc,keyid=k"));
    /* nothing was registered by the failures */
    Error *err = NULL;
    size_t len;
    assert_null(secret_lookup("s0", &len, &err));
    assert_string_equal(error_get_pretty(err), "No secret with id 's0'");
    error_free(err);
    assert_null(add("secret,id=s0,data=a"));
    assert_string_equal(add("secret,id=s0,data=b"),
                        "attempt to add duplicate property 's0' to object (type 'container')");
    expect_secret("s0", "a", 1);
    secrets_clear();
}

static void test_base64(void **state)
{
    static const struct {
        const char *in, *out;
        size_t len;
    } cases[] = {
        {"", "", 0},        {"YQ==", "a", 1},        {"YWI=", "ab", 2},
        {"YWJj", "abc", 3}, {"YWJjZA==", "abcd", 4}, {"AAEC", "\x00\x01\x02", 3},
        {"YWJ", "ab", 2}, /* padding optional, as glib */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = 99;
        Error *err = NULL;
        uint8_t *v = secret_base64_decode(cases[i].in, &len, &err);
        assert_non_null(v);
        assert_int_equal(len, cases[i].len);
        assert_memory_equal(v, cases[i].out, cases[i].len);
        free(v);
    }
    Error *err = NULL;
    size_t len;
    assert_null(secret_base64_decode("ab$c", &len, &err));
    assert_string_equal(error_get_pretty(err), "Base64 data contains invalid characters");
    error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_raw_and_base64),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
