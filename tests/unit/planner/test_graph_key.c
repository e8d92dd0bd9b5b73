/*
 * test_graph_key.c — the DAG (closure, order) and action keys: keys are
 * deterministic across project directories, change with exactly the
 * things they cover, and their preimages diff legibly.
 */
#include "helpers.h"
#include "planner/cache.h"
#include "planner/key.h"
#include "planner/plan.h"

static const char chain_recipe[] = "version: 1\n"
                                   "vars: { size: 1M }\n"
                                   "images:\n"
                                   "  src: { source: { path: disk.raw, format: raw } }\n"
                                   "  a: { convert: { from: src, format: qcow2 } }\n"
                                   "  b: { resize: { from: a, size: \"${size}\" } }\n"
                                   "  c: { convert: { from: [a, b], format: raw } }\n"
                                   "  lone: { create: { format: raw, size: 1M } }\n";

static size_t index_of(Node **order, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(order[i]->name, name)) {
            return i;
        }
    }
    return (size_t)-1;
}

static void test_closure_order(void **state)
{
    char *dir = scratch_dir();
    write_file(dir, "disk.raw", "data");
    State s;
    assert_null(load_recipe(&s, dir, chain_recipe, NULL, 0));
    Node *c = state_lookup(&s, "c");
    size_t n;
    Node **order = state_closure(&s, &c, 1, &n);
    assert_int_equal(n, 4); /* src a b c, not lone */
    assert_true(index_of(order, n, "src") < index_of(order, n, "a"));
    assert_true(index_of(order, n, "a") < index_of(order, n, "b"));
    assert_true(index_of(order, n, "b") < index_of(order, n, "c"));
    assert_false(state_lookup(&s, "lone")->wanted);
    assert_int_equal(state_lookup(&s, "a")->n_outs, 2); /* b and c */
    free(order);
    state_release(&s);
    free(dir);
}

/* Plan dir's recipe (with defines) on a fresh in-memory cache; return c's key hex. */
static char *plan_key(const char *dir, const char *recipe, char **defs, size_t n_defs,
                      const char *node, char **preimage)
{
    State s;
    char *err = load_recipe(&s, dir, recipe, defs, n_defs);
    assert_null(err);
    Cache *cache;
    assert_int_equal(cache_open(":memory:", &cache, NULL), 0);
    Plan p;
    assert_int_equal(plan_init(&p, &s, cache, NULL, 0, 0, NULL), 0);
    Node *n = state_lookup(&s, node);
    /* nothing is built in a fresh cache, so only nodes on sources have keys */
    assert_true(n->key_valid);
    char *hex = xmalloc(SHA256_HEX_LEN + 1);
    sha256_to_hex(&n->key, hex);
    if (preimage) {
        *preimage = xstrdup(n->preimage);
    }
    plan_release(&p);
    cache_close(cache);
    state_release(&s);
    return hex;
}

static void test_key_is_location_independent(void **state)
{
    char *d1 = scratch_dir(), *d2 = scratch_dir();
    write_file(d1, "disk.raw", "same bytes");
    write_file(d2, "disk.raw", "same bytes");
    char *k1 = plan_key(d1, chain_recipe, NULL, 0, "a", NULL);
    char *k2 = plan_key(d2, chain_recipe, NULL, 0, "a", NULL);
    assert_string_equal(k1, k2);
    free(k1);
    free(k2);
    free(d1);
    free(d2);
}

static void test_key_changes_with_inputs_and_params(void **state)
{
    char *dir = scratch_dir();
    write_file(dir, "disk.raw", "v1");
    char *pre1, *pre2;
    char *k1 = plan_key(dir, chain_recipe, NULL, 0, "a", &pre1);
    write_file(dir, "disk.raw", "v2");
    char *k2 = plan_key(dir, chain_recipe, NULL, 0, "a", &pre2);
    assert_string_not_equal(k1, k2);
    StrBuf diff = STRBUF_INIT;
    assert_int_equal(preimage_diff(pre1, pre2, true, &diff), 1);
    assert_string_equal(sb_str(&diff), "input from changed");
    free(pre2);
    /* a parameter: only the changed one is reported */
    const char *other = "version: 1\nimages:\n"
                        "  src: { source: { path: disk.raw, format: raw } }\n"
                        "  a: { convert: { from: src, format: qcow2, sparse_size: 8k } }\n";
    char *k3 = plan_key(dir, other, NULL, 0, "a", &pre2);
    assert_string_not_equal(k2, k3);
    free(pre1);
    pre1 = NULL;
    char *k4 = plan_key(dir, chain_recipe, NULL, 0, "a", &pre1);
    sb_reset(&diff);
    assert_int_equal(preimage_diff(pre1, pre2, false, &diff), 1);
    assert_string_equal(sb_str(&diff), "param sparse_size: 4096 -> 8192\n");
    sb_release(&diff);
    free(k1);
    free(k2);
    free(k3);
    free(k4);
    free(pre1);
    free(pre2);
    free(dir);
}

static void test_same_meaning_same_key(void **state)
{
    char *dir = scratch_dir();
    write_file(dir, "disk.raw", "x");
    const char *r1 = "version: 1\nimages:\n  src: { source: { path: disk.raw, format: raw } }\n"
                     "  a: { convert: { from: src, format: qcow2, options: { a: 1, b: 2 } } }\n";
    const char *r2 = "version: 1\nimages:\n  src: { source: { path: ./disk.raw, format: raw } }\n"
                     "  a:\n    convert:\n      options: { b: 2, a: 1 }\n      format: qcow2\n"
                     "      sparse_size: 4k\n      from: src\n";
    char *k1 = plan_key(dir, r1, NULL, 0, "a", NULL);
    char *k2 = plan_key(dir, r2, NULL, 0, "a", NULL);
    assert_string_equal(k1, k2);
    free(k1);
    free(k2);
    free(dir);
}

static void test_diff_reports_additions(void **state)
{
    StrBuf out = STRBUF_INIT;
    assert_int_equal(
        preimage_diff("kind x\nparam a 1\n", "kind x\nparam a 1\nparam b 2\n", false, &out), 1);
    assert_string_equal(sb_str(&out), "+ param b 2\n");
    sb_reset(&out);
    assert_int_equal(preimage_diff("kind x\n", "kind x\n", false, &out), 0);
    sb_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closure_order),
        cmocka_unit_test(test_key_is_location_independent),
        cmocka_unit_test(test_key_changes_with_inputs_and_params),
        cmocka_unit_test(test_same_meaning_same_key),
        cmocka_unit_test(test_diff_reports_additions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
