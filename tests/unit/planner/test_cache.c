/*
 * test_cache.c — the SQLite cache: rows persist across opens, racily
 * clean file digests are not trusted, forgetting and gc work, a schema
 * change drops old rows.
 */
#include "helpers.h"
#include "planner/cache.h"
#include "planner/digest.h"

#include <sqlite3.h>

static CacheNode make_row(const char *name, int seed)
{
    CacheNode r = {
        .name = (char *)name, .preimage = (char *)"kind exec\n", .output = (char *)"out/x.img"};
    memset(r.key.b, seed, sizeof(r.key.b));
    memset(r.digest.b, seed + 1, sizeof(r.digest.b));
    r.fp =
        (FileFp){.size = 10, .mtime_ns = 20, .ctime_ns = 30, .ino = 40, .dev = 50, .mode = 0100644};
    return r;
}

static void test_rows_persist(void **state)
{
    char *dir = scratch_dir();
    char *db = xasprintf("%s/cache.db", dir);
    Cache *c;
    assert_int_equal(cache_open(db, &c, NULL), 0);
    CacheNode row = make_row("golden", 7);
    assert_int_equal(cache_record_node(c, &row, NULL), 0);
    cache_close(c);
    assert_int_equal(cache_open(db, &c, NULL), 0);
    const CacheNode *got = cache_node(c, "golden");
    assert_non_null(got);
    assert_true(sha256_equal(&got->key, &row.key));
    assert_true(sha256_equal(&got->digest, &row.digest));
    assert_true(fp_equal(&got->fp, &row.fp));
    assert_string_equal(got->preimage, "kind exec\n");
    assert_null(cache_node(c, "other"));
    CacheNode fresh;
    bool found;
    assert_int_equal(cache_node_fresh(c, "golden", &fresh, &found, NULL), 0);
    assert_true(found);
    assert_string_equal(fresh.output, "out/x.img");
    cache_node_release(&fresh);
    assert_int_equal(cache_forget_node(c, "golden", NULL), 0);
    assert_null(cache_node(c, "golden"));
    cache_close(c);
    assert_int_equal(cache_open(db, &c, NULL), 0);
    assert_null(cache_node(c, "golden"));
    cache_close(c);
    free(db);
    free(dir);
}

static void test_racy_file_digest_not_trusted(void **state)
{
    Cache *c;
    assert_int_equal(cache_open(":memory:", &c, NULL), 0);
    FileFp fp = {.size = 3, .mtime_ns = 1000000000000LL, .ino = 1, .dev = 1, .mode = 0100644};
    Sha256 d = {{1}}, got;
    /* hashed in the same tick as the last write: must be rehashed next time */
    cache_file_note(c, "a", &fp, &d, fp.mtime_ns + 1000);
    assert_false(cache_file_lookup(c, "a", &fp, &got));
    /* hashed well after the last write: trusted */
    cache_file_note(c, "a", &fp, &d, fp.mtime_ns + 5000000000LL);
    assert_true(cache_file_lookup(c, "a", &fp, &got));
    assert_true(sha256_equal(&got, &d));
    /* any change of fingerprint: not trusted */
    FileFp touched = fp;
    touched.ctime_ns++;
    assert_false(cache_file_lookup(c, "a", &touched, &got));
    assert_int_equal(cache_flush_files(c, NULL), 0);
    cache_close(c);
}

static bool keep_b(void *opaque, const char *path)
{
    return !strcmp(path, "b");
}

static void test_gc_files(void **state)
{
    char *dir = scratch_dir();
    char *db = xasprintf("%s/cache.db", dir);
    Cache *c;
    assert_int_equal(cache_open(db, &c, NULL), 0);
    FileFp fp = {.size = 1, .mtime_ns = 1};
    Sha256 d = {{2}}, got;
    cache_file_note(c, "a", &fp, &d, 1000000000000LL);
    cache_file_note(c, "b", &fp, &d, 1000000000000LL);
    assert_int_equal(cache_flush_files(c, NULL), 0);
    int dropped;
    assert_int_equal(cache_gc_files(c, keep_b, NULL, &dropped, NULL), 0);
    assert_int_equal(dropped, 1);
    cache_close(c);
    assert_int_equal(cache_open(db, &c, NULL), 0);
    assert_false(cache_file_lookup(c, "a", &fp, &got));
    assert_true(cache_file_lookup(c, "b", &fp, &got));
    cache_close(c);
    free(db);
    free(dir);
}

static void test_schema_change_drops_rows(void **state)
{
    char *dir = scratch_dir();
    char *db = xasprintf("%s/cache.db", dir);
    Cache *c;
    assert_int_equal(cache_open(db, &c, NULL), 0);
    CacheNode row = make_row("n", 3);
    assert_int_equal(cache_record_node(c, &row, NULL), 0);
    cache_close(c);
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(raw, "UPDATE meta SET value='0' WHERE key='schema'", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(cache_open(db, &c, NULL), 0);
    assert_null(cache_node(c, "n"));
    cache_close(c);
    free(db);
    free(dir);
}

static void test_digest_ignores_hole_layout(void **state)
{
    char *dir = scratch_dir();
    char *sparse = xasprintf("%s/sparse", dir), *dense = xasprintf("%s/dense", dir);
    FILE *f = fopen(sparse, "w");
    fseek(f, 1 << 20, SEEK_SET);
    fputs("tail", f);
    fclose(f);
    f = fopen(dense, "w");
    char *zeros = xzalloc(1 << 20);
    fwrite(zeros, 1, 1 << 20, f);
    fputs("tail", f);
    fclose(f);
    Sha256 a, b;
    DigestStats st = {0};
    assert_int_equal(digest_file(sparse, &a, &st, NULL), 0);
    assert_int_equal(digest_file(dense, &b, &st, NULL), 0);
    assert_true(sha256_equal(&a, &b));
    assert_int_equal(st.files_hashed, 2);
    f = fopen(dense, "r+");
    fputc('x', f);
    fclose(f);
    assert_int_equal(digest_file(dense, &b, NULL, NULL), 0);
    assert_false(sha256_equal(&a, &b));
    free(zeros);
    free(sparse);
    free(dense);
    free(dir);
}

static void test_directory_digest_sees_names_and_modes(void **state)
{
    char *dir = scratch_dir();
    write_file(dir, "tree/a.txt", "hello");
    Cache *c;
    assert_int_equal(cache_open(":memory:", &c, NULL), 0);
    Sha256 d1, d2, d3;
    assert_int_equal(digest_input(c, dir, "tree", &d1, NULL, NULL), 0);
    char *a = xasprintf("%s/tree/a.txt", dir), *b = xasprintf("%s/tree/b.txt", dir);
    assert_int_equal(rename(a, b), 0);
    assert_int_equal(digest_input(c, dir, "tree", &d2, NULL, NULL), 0);
    assert_false(sha256_equal(&d1, &d2));
    assert_int_equal(chmod(b, 0755), 0);
    assert_int_equal(digest_input(c, dir, "tree", &d3, NULL, NULL), 0);
    assert_false(sha256_equal(&d2, &d3));
    cache_close(c);
    free(a);
    free(b);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_persist),
        cmocka_unit_test(test_racy_file_digest_not_trusted),
        cmocka_unit_test(test_gc_files),
        cmocka_unit_test(test_schema_change_drops_rows),
        cmocka_unit_test(test_digest_ignores_hole_layout),
        cmocka_unit_test(test_directory_digest_sees_names_and_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
