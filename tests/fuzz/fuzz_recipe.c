/*
 * fuzz_recipe.c — libFuzzer target: the planner's recipe loader
 * (src/planner/recipe.h) on arbitrary text.
 *
 * Each input is loaded as a recipe in a project directory that does not
 * exist (so `include:` finds nothing to read), with one -D define so the
 * override path runs too.  A load either succeeds or fails with a message;
 * anything else (a crash, a sanitizer report, a hang, unbounded memory) is a
 * bug.  A failed load must leave an error message with a position.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "planner/graph.h"
#include "planner/recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024) {
        return 0; /* recipes are small; keep each run fast */
    }
    char *text = malloc(size + 1);
    if (!text) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    State s;
    state_init(&s, "/nonexistent/imgpipe-fuzz-project");
    char def[] = "size=1M";
    char *defines[] = {def};
    Error *err = NULL;
    int ret = recipe_load_string(&s, "fuzz.yaml", text, defines, 1, &err);
    if (ret < 0 && (!err || !error_get_pretty(err) || !*error_get_pretty(err))) {
        abort(); /* a failure must say why */
    }
    error_free(err);
    state_release(&s);
    free(text);
    return 0;
}
