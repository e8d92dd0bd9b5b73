/*
 * json.h — a small JSON value tree: build, print (qemu's pretty layout and
 * compact), parse.
 *
 * qemu-img prints JSON with 4-space indentation, `"key": value`, members in
 * insertion order, non-ASCII escaped as \uXXXX.  json_print_pretty() produces
 * exactly that so our `--output=json` diffs clean against qemu-img's.
 *
 * Ownership: a JVal owns its children.  json_*_add() takes ownership of the
 * value passed in.  json_free() frees a whole tree.
 */
#ifndef IMGPIPE_COMMON_JSON_H
#define IMGPIPE_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/util.h"

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_INT,  /* int64 */
    JSON_UINT, /* uint64 (values above INT64_MAX) */
    JSON_DOUBLE,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} JsonType;

typedef struct JVal JVal;
struct JVal {
    JsonType type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        char *s;
    } v;
    /* ARRAY and OBJECT: children in order; OBJECT keys in keys[] */
    JVal **items;
    char **keys;
    size_t n, alloc;
};

JVal *json_null(void);
JVal *json_bool(bool b);
JVal *json_int(int64_t i);
JVal *json_uint(uint64_t u);
JVal *json_double(double d);
JVal *json_str(const char *s);
JVal *json_array(void);
JVal *json_object(void);
void json_free(JVal *v);

/* Append to an array / object (takes ownership of val). Returns val. */
JVal *json_array_add(JVal *arr, JVal *val);
JVal *json_object_add(JVal *obj, const char *key, JVal *val);
/* Convenience setters on objects. */
void json_add_str(JVal *obj, const char *key, const char *s);
void json_add_int(JVal *obj, const char *key, int64_t i);
void json_add_bool(JVal *obj, const char *key, bool b);

/* Lookup (NULL if absent or wrong type). Last duplicate key wins. */
JVal *json_get(const JVal *obj, const char *key);
const char *json_get_str(const JVal *obj, const char *key);
bool json_get_int(const JVal *obj, const char *key, int64_t *out);

/* Printing.  pretty: qemu's layout with the given base indentation level. */
void json_print_pretty(StrBuf *sb, const JVal *v, int indent_level);
/* Compact: {"a": 1, "b": [1, 2]} (qemu's compact form puts a space after : and ,) */
void json_print_compact(StrBuf *sb, const JVal *v);
/* Append a JSON string literal for s (quoted, qemu's escaping). */
void json_quote(StrBuf *sb, const char *s);

/* Parse a complete JSON document; NULL and *errp set on error. Depth-bounded. */
JVal *json_parse(const char *text, size_t len, Error **errp);

#endif
