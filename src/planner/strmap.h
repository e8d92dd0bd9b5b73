/*
 * strmap.h — an open-addressing hash map from C strings to pointers.
 *
 * The planner looks nodes up by name, cache rows by name and file
 * fingerprints by path; at 10,000 nodes a linear search would dominate the
 * no-op build, so every such lookup goes through this map (FNV-1a, linear
 * probing, grown at 50% load).  Keys are copied; values are borrowed.
 */
#ifndef IMGPIPE_PLANNER_STRMAP_H
#define IMGPIPE_PLANNER_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct StrMapSlot {
    char *key; /* NULL: empty */
    void *value;
} StrMapSlot;

typedef struct StrMap {
    StrMapSlot *slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
} StrMap;

#define STRMAP_INIT \
    {               \
        NULL, 0, 0  \
    }

void strmap_init(StrMap *m);
/* Free the keys and the table (not the values). */
void strmap_release(StrMap *m);
/* Value for key, or NULL. */
void *strmap_get(const StrMap *m, const char *key);
bool strmap_has(const StrMap *m, const char *key);
/* Insert or replace; returns the previous value (NULL if none). */
void *strmap_put(StrMap *m, const char *key, void *value);

/* Iterate: for (size_t i = 0; strmap_next(m, &i, &k, &v);) */
bool strmap_next(const StrMap *m, size_t *iter, const char **key, void **value);

#endif
