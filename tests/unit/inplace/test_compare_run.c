/*
 * Unit tests for copy_compare_run() (src/engine/copy_iter.c): rebase's
 * sector-by-sector comparison of the old and new backing views, which
 * must split a piece exactly where qemu-img 7.2's compare_buffers() does
 * (512-byte sectors counted from the piece's start, a short last sector),
 * including through its fast path over equal 4 KiB blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/copy_pipeline.h"

/* The obvious definition, one sector at a time. */
static int64_t ref_run(const uint8_t *a, const uint8_t *b, int64_t n, bool *differ)
{
    bool d = memcmp(a, b, (size_t)(n < 512 ? n : 512)) != 0;
    int64_t i = 0;
    while (i < n) {
        int64_t s = n - i < 512 ? n - i : 512;
        if ((memcmp(a + i, b + i, (size_t)s) != 0) != d) {
            break;
        }
        i += s;
    }
    *differ = d;
    return i;
}

/* Walk a whole buffer with both and require the same runs. */
static void check_same_runs(const uint8_t *a, const uint8_t *b, int64_t n)
{
    int64_t pos = 0, runs = 0;
    while (pos < n) {
        bool d1, d2;
        int64_t r1 = copy_compare_run(a + pos, b + pos, n - pos, &d1);
        int64_t r2 = ref_run(a + pos, b + pos, n - pos, &d2);
        assert_int_equal(r1, r2);
        assert_int_equal(d1, d2);
        assert_true(r1 >= 1 && r1 <= n - pos);
        pos += r1;
        runs++;
    }
    assert_true(runs >= 1);
}

static void test_boundaries(void **state)
{
    (void)state;
    enum { N = 64 * 1024 + 1000 }; /* not a multiple of 512 */
    uint8_t *a = malloc(N), *b = malloc(N);
    memset(a, 0x11, N);
    memcpy(b, a, N);
    bool d;
    /* all equal: one run, the whole buffer */
    assert_int_equal(copy_compare_run(a, b, N, &d), N);
    assert_false(d);
    /* one byte differs in the last byte of sector 17 (inside a 4 KiB block
     * the fast path would skip if it were not careful) */
    b[17 * 512 + 511] = 0x99;
    assert_int_equal(copy_compare_run(a, b, N, &d), 17 * 512);
    assert_false(d);
    assert_int_equal(copy_compare_run(a + 17 * 512, b + 17 * 512, N - 17 * 512, &d), 512);
    assert_true(d);
    check_same_runs(a, b, N);
    /* the short last sector differs */
    b[N - 1] = 0x98;
    check_same_runs(a, b, N);
    int64_t last = (N / 512) * 512;
    assert_int_equal(copy_compare_run(a + last, b + last, N - last, &d), N - last);
    assert_true(d);
    /* the first sector differs, then a long equal stretch */
    memcpy(b, a, N);
    b[0] = 0;
    assert_int_equal(copy_compare_run(a, b, N, &d), 512);
    assert_true(d);
    assert_int_equal(copy_compare_run(a + 512, b + 512, N - 512, &d), N - 512);
    assert_false(d);
    free(a);
    free(b);
}

static void test_random_differences(void **state)
{
    (void)state;
    enum { N = 256 * 1024 + 300 };
    uint8_t *a = malloc(N), *b = malloc(N);
    srand(7);
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < N; i++) {
            a[i] = (uint8_t)rand();
        }
        memcpy(b, a, N);
        int k = rand() % 12;
        for (int j = 0; j < k; j++) {
            b[rand() % N] ^= (uint8_t)(1 + rand() % 255);
        }
        int64_t n = 1 + rand() % N;
        check_same_runs(a, b, n);
    }
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_random_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
