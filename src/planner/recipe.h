/*
 * recipe.h — load a YAML recipe (schema version 1) into a State.
 *
 * The schema, in short (docs/RECIPES.md has the whole of it):
 *
 *   version: 1                      # required in the top-level file
 *   include: [common.yaml]          # other recipe files (relative to this one)
 *   vars: { size: 20G }             # ${size} anywhere in a value; -D overrides
 *   images:
 *     NAME:
 *       output: out/NAME.qcow2      # optional, project-relative
 *       description: text           # optional, not part of the key
 *       KIND: { PARAMS }            # exactly one of: source create convert
 *                                   # resize amend rebase commit snapshot exec
 *
 * Every value is validated and normalized here (sizes to bytes, defaults
 * filled in, option keys sorted), so that two spellings of the same recipe
 * give the same action keys.  Paths in a recipe are relative to the project
 * directory (the top-level recipe's directory), whichever file names them.
 *
 * Errors: the first problem found ends the load with one message
 * "file:line:column: message" (1-based, as an editor counts).  On failure the
 * State may hold a partial graph: release it, build nothing.
 */
#ifndef IMGPIPE_PLANNER_RECIPE_H
#define IMGPIPE_PLANNER_RECIPE_H

#include <stddef.h>

#include "common/error.h"
#include "planner/graph.h"

#define RECIPE_SCHEMA_VERSION 1

/*
 * Load the recipe file at path into s (initialised with the project
 * directory), resolve names, check for cycles and conflicting outputs.
 * defines are "name=value" strings from -D; they override `vars:`.
 */
int recipe_load(State *s, const char *path, char *const *defines, size_t n_defines, Error **errp);

/* Same, from a string; display_name is used in error positions; includes
 * are resolved against the project directory. */
int recipe_load_string(State *s, const char *display_name, const char *text, char *const *defines,
                       size_t n_defines, Error **errp);

/* The file name extension used for a format's default output ("img" for raw). */
const char *format_extension(const char *format);

#endif
