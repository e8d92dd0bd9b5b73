/*
 * helpers.h — shared fixtures for the planner unit tests: a scratch
 * project directory, files in it, recipes loaded from strings.
 */
#ifndef IMGPIPE_TESTS_PLANNER_HELPERS_H
#define IMGPIPE_TESTS_PLANNER_HELPERS_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "planner/graph.h"
#include "planner/recipe.h"

/* A fresh directory under /tmp; caller frees (and may leave it). */
static inline char *scratch_dir(void)
{
    char tmpl[] = "/tmp/imgpipe-unit.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return xstrdup(d);
}

static inline void write_file(const char *dir, const char *rel, const char *content)
{
    char *path = xasprintf("%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    free(path);
}

/* Load text as <dir>/imgpipe.yaml into s; returns the error message or NULL. */
static inline char *load_recipe(State *s, const char *dir, const char *text, char **defines,
                                size_t n_defines)
{
    write_file(dir, "imgpipe.yaml", text);
    char *path = xasprintf("%s/imgpipe.yaml", dir);
    state_init(s, dir);
    Error *err = NULL;
    int ret = recipe_load(s, path, defines, n_defines, &err);
    free(path);
    if (ret < 0) {
        assert_non_null(err);
        char *msg = xstrdup(error_get_pretty(err));
        error_free(err);
        return msg;
    }
    assert_null(err);
    return NULL;
}

/* Expect loading text to fail with a message containing want (after the dir). */
static inline void expect_recipe_error(const char *text, const char *want)
{
    char *dir = scratch_dir();
    State s;
    char *msg = load_recipe(&s, dir, text, NULL, 0);
    if (!msg || !strstr(msg, want)) {
        fail_msg("expected error containing \"%s\", got \"%s\"", want, msg ? msg : "(none)");
    }
    free(msg);
    state_release(&s);
    free(dir);
}

#endif
