/*
 * strmap.c — string-keyed hash map (see strmap.h).
 */
#include "planner/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void strmap_init(StrMap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->n = 0;
}

void strmap_release(StrMap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
    }
    free(m->slots);
    strmap_init(m);
}

static StrMapSlot *find_slot(const StrMap *m, const char *key)
{
    size_t mask = m->cap - 1;
    size_t i = hash_str(key) & mask;
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0) {
        i = (i + 1) & mask;
    }
    return &m->slots[i];
}

void *strmap_get(const StrMap *m, const char *key)
{
    if (!m->cap) {
        return NULL;
    }
    StrMapSlot *s = find_slot(m, key);
    return s->key ? s->value : NULL;
}

bool strmap_has(const StrMap *m, const char *key)
{
    return m->cap && find_slot(m, key)->key != NULL;
}

static void grow(StrMap *m)
{
    StrMap bigger = {xcalloc(m->cap ? m->cap * 2 : 16, sizeof(StrMapSlot)),
                     m->cap ? m->cap * 2 : 16, m->n};
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key) {
            *find_slot(&bigger, m->slots[i].key) = m->slots[i];
        }
    }
    free(m->slots);
    *m = bigger;
}

void *strmap_put(StrMap *m, const char *key, void *value)
{
    if ((m->n + 1) * 2 > m->cap) {
        grow(m);
    }
    StrMapSlot *s = find_slot(m, key);
    if (s->key) {
        void *old = s->value;
        s->value = value;
        return old;
    }
    s->key = xstrdup(key);
    s->value = value;
    m->n++;
    return NULL;
}

bool strmap_next(const StrMap *m, size_t *iter, const char **key, void **value)
{
    for (; *iter < m->cap; (*iter)++) {
        if (m->slots[*iter].key) {
            *key = m->slots[*iter].key;
            *value = m->slots[*iter].value;
            (*iter)++;
            return true;
        }
    }
    return false;
}
