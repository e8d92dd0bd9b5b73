/*
 * recipe_int.h — internals shared by recipe.c (YAML documents, includes,
 * variables) and recipe_schema.c (the per-step parameter schema).
 */
#ifndef IMGPIPE_PLANNER_RECIPE_INT_H
#define IMGPIPE_PLANNER_RECIPE_INT_H

#include <stdbool.h>
#include <yaml.h>

#include "planner/graph.h"
#include "planner/recipe.h"
#include "planner/strmap.h"

/* One parsed recipe file. */
typedef struct Doc {
    yaml_document_t doc;
    const char *file; /* interned in the State */
} Doc;

/* A `vars:` entry; value is filled on first use (expansion is lazy). */
typedef struct VarDef {
    char *raw;
    SrcPos pos;
    bool expanding; /* on the expansion stack: a self-reference is an error */
    char *value;
} VarDef;

typedef struct Loader {
    State *s;
    char *const *defines;
    size_t n_defines;
    StrMap vars; /* name -> VarDef* */
    Doc **docs;
    size_t n_docs;
    char **stack; /* absolute paths of files being included */
    size_t n_stack;
} Loader;

SrcPos yn_pos(const Doc *d, const yaml_node_t *n);
yaml_node_t *yn_get(const Doc *d, int index);
/* The scalar's text, or NULL if n is not a scalar. */
const char *yn_scalar(const yaml_node_t *n);
/* A plain scalar spelling null: "", "~", "null". */
bool yn_is_null(const yaml_node_t *n);
/* A plain scalar spelling a YAML 1.1 boolean; sets *value. */
bool yn_bool(const char *text, bool *value);
const char *yn_type_name(const yaml_node_t *n);

/*
 * The scalar n with ${var} expanded.  In exec mode the step's runtime
 * placeholders (${out}, ${in}, ${inN}, ${uuid}, $$) are kept for the runner.
 * Errors (not a scalar, undefined variable) carry n's position.
 */
int loader_expand(Loader *L, const Doc *d, const yaml_node_t *n, bool exec, char **out,
                  Error **errp);

/*
 * Fail on a duplicate key or one not in allowed (NULL-terminated); what
 * names the mapping in the message ("image 'web'").
 */
int check_keys(const Doc *d, const yaml_node_t *map, const char *const *allowed, const char *what,
               Error **errp);

/* recipe_schema.c: turn one `images:` entry into a Node. */
int schema_add_image(Loader *L, const Doc *d, const yaml_node_t *key, const yaml_node_t *value,
                     Error **errp);
/* recipe_schema.c: after linking: inherited formats, backing paths, output checks. */
int schema_finish(State *s, Error **errp);

#endif
