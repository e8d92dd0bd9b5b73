/*
 * secret_store.c — the process-wide id -> bytes registry (see secret_store.h).
 *
 * A short list under one mutex: a qemu-img command line names a handful of
 * secrets at most, and lookups happen once per image open.
 */
#include "blocklayer/secret_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

typedef struct StoredSecret {
    char *id;
    uint8_t *data;
    size_t len;
    struct StoredSecret *next;
} StoredSecret;

static StoredSecret *secrets;
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

void secret_store_free(uint8_t *data, size_t len)
{
    if (data) {
        explicit_bzero(data, len);
        free(data);
    }
}

static void stored_free(StoredSecret *s)
{
    secret_store_free(s->data, s->len + 1);
    free(s->id);
    free(s);
}

void secret_store_put(const char *id, const void *data, size_t len)
{
    StoredSecret *s = XNEW(StoredSecret);
    s->id = xstrdup(id);
    s->data = xmalloc(len + 1);
    memcpy(s->data, data, len);
    s->data[len] = 0;
    s->len = len;
    pthread_mutex_lock(&secrets_lock);
    for (StoredSecret **p = &secrets; *p; p = &(*p)->next) {
        if (!strcmp((*p)->id, id)) {
            StoredSecret *old = *p;
            *p = old->next;
            stored_free(old);
            break;
        }
    }
    s->next = secrets;
    secrets = s;
    pthread_mutex_unlock(&secrets_lock);
}

uint8_t *secret_store_get(const char *id, size_t *len, Error **errp)
{
    uint8_t *copy = NULL;
    pthread_mutex_lock(&secrets_lock);
    for (StoredSecret *s = secrets; s; s = s->next) {
        if (!strcmp(s->id, id)) {
            copy = xmalloc(s->len + 1);
            memcpy(copy, s->data, s->len + 1);
            *len = s->len;
            break;
        }
    }
    pthread_mutex_unlock(&secrets_lock);
    if (!copy) {
        error_setg(errp, "No secret with id '%s'", id);
    }
    return copy;
}

void secret_store_clear(void)
{
    pthread_mutex_lock(&secrets_lock);
    while (secrets) {
        StoredSecret *s = secrets;
        secrets = s->next;
        stored_free(s);
    }
    pthread_mutex_unlock(&secrets_lock);
}
