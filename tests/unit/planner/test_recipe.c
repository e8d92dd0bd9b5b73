/*
 * test_recipe.c — the recipe parser: schema, normalization, variables,
 * includes, and one positioned error per kind of bad recipe.
 */
#include "helpers.h"

static void test_normalizes_params(void **state)
{
    char *dir = scratch_dir();
    write_file(dir, "base.img", "x");
    State s;
    char *err = load_recipe(&s, dir,
                            "version: 1\n"
                            "images:\n"
                            "  base: { source: { path: ./base.img, format: raw } }\n"
                            "  big:\n"
                            "    create: { format: qcow2, size: 2G, options: { lazy_refcounts: "
                            "true, cluster_size: 64k } }\n"
                            "  gold:\n"
                            "    convert: { from: base, format: qcow2, compress: zstd }\n",
                            NULL, 0);
    assert_null(err);
    Node *big = state_lookup(&s, "big");
    assert_non_null(big);
    assert_string_equal(node_param(big, "size"), "2147483648");
    assert_string_equal(node_param(big, "options"), "cluster_size=64k,lazy_refcounts=on");
    assert_string_equal(big->output, "out/big.qcow2");
    Node *gold = state_lookup(&s, "gold");
    assert_string_equal(node_param(gold, "sparse_size"), "4096");
    assert_string_equal(node_param(gold, "compress"), "zstd");
    assert_ptr_equal(node_input(gold, "from"), state_lookup(&s, "base"));
    Node *base = state_lookup(&s, "base");
    assert_string_equal(base->output, "base.img");
    assert_string_equal(base->format, "raw");
    state_release(&s);
    free(dir);
}

static void test_vars_and_defines(void **state)
{
    char *dir = scratch_dir();
    State s;
    char *defs[] = {"flavour=web"};
    char *err =
        load_recipe(&s, dir,
                    "version: 1\n"
                    "vars: { size: 1G, flavour: db, name: \"img-${flavour}\" }\n"
                    "images:\n"
                    "  a:\n"
                    "    output: out/${name}.qcow2\n"
                    "    create: { format: qcow2, size: \"${size}\" }\n"
                    "  b:\n"
                    "    exec: { command: [sh, -c, \"echo ${flavour} > ${out}; echo $$HOME\"] }\n",
                    defs, 1);
    assert_null(err);
    assert_string_equal(state_lookup(&s, "a")->output, "out/img-web.qcow2");
    assert_string_equal(node_param(state_lookup(&s, "a"), "size"), "1073741824");
    Node *b = state_lookup(&s, "b");
    assert_int_equal(b->argc, 3);
    /* runtime placeholders and $$ are kept for the exec step */
    assert_string_equal(b->argv[2], "echo web > ${out}; echo $$HOME");
    state_release(&s);
    free(dir);
}

static void test_include(void **state)
{
    char *dir = scratch_dir();
    write_file(dir, "parts/common.yaml",
               "vars: { disk: 512M }\n"
               "images:\n"
               "  empty: { create: { format: raw, size: \"${disk}\" } }\n");
    State s;
    char *err = load_recipe(&s, dir,
                            "version: 1\n"
                            "include: [parts/common.yaml]\n"
                            "images:\n"
                            "  copy: { convert: { from: empty, format: qcow2 } }\n",
                            NULL, 0);
    assert_null(err);
    assert_int_equal(s.n_nodes, 2);
    assert_string_equal(node_param(state_lookup(&s, "empty"), "size"), "536870912");
    state_release(&s);
    free(dir);
}

static void test_overlay_backing_path_is_relative(void **state)
{
    char *dir = scratch_dir();
    State s;
    char *err = load_recipe(&s, dir,
                            "version: 1\n"
                            "images:\n"
                            "  base: { create: { format: qcow2, size: 1M } }\n"
                            "  dev:\n"
                            "    output: out/flavours/dev.qcow2\n"
                            "    create: { format: qcow2, backing: base }\n"
                            "  dev40: { resize: { from: dev, size: +1M } }\n",
                            NULL, 0);
    assert_null(err);
    Node *dev = state_lookup(&s, "dev");
    assert_string_equal(node_param(dev, "backing_file"), "../base.qcow2");
    assert_string_equal(node_param(dev, "backing_format"), "qcow2");
    Node *dev40 = state_lookup(&s, "dev40");
    assert_string_equal(dev40->format, "qcow2"); /* inherited */
    assert_string_equal(node_param(dev40, "size"), "+1048576");
    assert_ptr_equal(node_backing(dev40), state_lookup(&s, "base"));
    state_release(&s);
    free(dir);
}

static void test_error_syntax(void **state)
{
    expect_recipe_error("version: 1\nimages:\n  a: { create: [\n",
                        "imgpipe.yaml:4:1: syntax error");
}

static void test_error_unknown_key(void **state)
{
    expect_recipe_error(
        "version: 1\nimages:\n  a:\n    create: { format: raw, size: 1M, sise: 2 }\n",
        "imgpipe.yaml:4:38: image 'a': create: unknown key 'sise'");
    expect_recipe_error("version: 1\nimagez: {}\n",
                        "imgpipe.yaml:2:1: recipe: unknown key 'imagez'");
}

static void test_error_duplicate_name(void **state)
{
    expect_recipe_error("version: 1\nimages:\n  a: { create: { format: raw, size: 1M } }\n"
                        "  a: { create: { format: raw, size: 2M } }\n",
                        "imgpipe.yaml:4:3: duplicate image name 'a' (first defined at");
}

static void test_error_missing_input(void **state)
{
    expect_recipe_error("version: 1\nimages:\n  b: { convert: { from: nothere } }\n",
                        "imgpipe.yaml:3:25: image 'b': from: unknown image 'nothere'");
    expect_recipe_error("version: 1\nimages:\n  s: { source: { path: missing.img } }\n",
                        "imgpipe.yaml:3:24: image 's': path: missing input 'missing.img'");
}

static void test_error_cycle_prints_whole_cycle(void **state)
{
    expect_recipe_error(
        "version: 1\nimages:\n"
        "  a: { convert: { from: c } }\n"
        "  b: { convert: { from: a } }\n"
        "  c: { convert: { from: b } }\n",
        "imgpipe.yaml:3:3: dependency cycle: a -> c -> b -> a (each image reads the next)");
}

static void test_error_two_writers(void **state)
{
    expect_recipe_error("version: 1\nimages:\n"
                        "  a: { output: x.img, create: { format: raw, size: 1M } }\n"
                        "  b: { output: ./x.img, create: { format: raw, size: 1M } }\n",
                        "imgpipe.yaml:4:3: images 'b' and 'a' (");
}

static void test_error_output_outside_project(void **state)
{
    expect_recipe_error(
        "version: 1\nimages:\n"
        "  a: { output: ../escape.img, create: { format: raw, size: 1M } }\n",
        "imgpipe.yaml:3:16: image 'a': output '../escape.img' is outside the project");
    expect_recipe_error("version: 1\nimages:\n"
                        "  a: { output: /etc/x.img, create: { format: raw, size: 1M } }\n",
                        "is outside the project");
}

static void test_error_undefined_var(void **state)
{
    expect_recipe_error("version: 1\nimages:\n"
                        "  a: { create: { format: raw, size: \"${nosuch}\" } }\n",
                        "imgpipe.yaml:3:38: undefined variable '${nosuch}'");
}

static void test_error_schema_misc(void **state)
{
    expect_recipe_error("images: {}\n", "missing 'version: 1'");
    expect_recipe_error("version: 2\nimages: {}\n", "unsupported recipe version '2'");
    expect_recipe_error("version: 1\nimages:\n  a: { create: { format: raw } }\n",
                        "'size' is required without 'backing'");
    expect_recipe_error("version: 1\nimages:\n  a: { create: { format: raw, size: 1Q } }\n",
                        "invalid size '1Q'");
    expect_recipe_error(
        "version: 1\nimages:\n  a: { create: {format: raw, size: 1M}, convert: {from: a} }\n",
        "two steps");
    expect_recipe_error("version: 1\nimages:\n  b: { create: {format: raw, size: 1M} }\n"
                        "  a: { convert: { from: b, compress: lz4 } }\n",
                        "expected one of none|zlib|zstd, found 'lz4'");
    expect_recipe_error("version: 1\nvars: { a: \"${b}\", b: \"${a}\" }\nimages:\n"
                        "  x: { create: { format: raw, size: \"${a}\" } }\n",
                        "refers to itself");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalizes_params),
        cmocka_unit_test(test_vars_and_defines),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_overlay_backing_path_is_relative),
        cmocka_unit_test(test_error_syntax),
        cmocka_unit_test(test_error_unknown_key),
        cmocka_unit_test(test_error_duplicate_name),
        cmocka_unit_test(test_error_missing_input),
        cmocka_unit_test(test_error_cycle_prints_whole_cycle),
        cmocka_unit_test(test_error_two_writers),
        cmocka_unit_test(test_error_output_outside_project),
        cmocka_unit_test(test_error_undefined_var),
        cmocka_unit_test(test_error_schema_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
