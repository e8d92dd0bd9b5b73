/*
 * secrets.c — the process-wide secret store behind `--object secret,...`.
 * See secrets.h for the supported subset of QEMU's secret object.
 */
#include "engine/secrets.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/secret_store.h"
#include "common/opts.h"
#include "common/util.h"

#define MAX_SECRETS      64
#define MAX_SECRET_BYTES (64 * 1024) /* a password or key, never a file dump */

typedef struct Secret {
    char *id;
    uint8_t *data;
    size_t len;
} Secret;

static Secret store[MAX_SECRETS];
static int n_store;
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;

#define B64_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
static const char b64_alphabet[] = B64_CHARS;

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

uint8_t *secret_base64_decode(const char *in, size_t *out_len, Error **errp)
{
    size_t n = strlen(in);
    if (strspn(in, B64_CHARS "=") != n) {
        error_setg(errp, "Base64 data contains invalid characters");
        return NULL;
    }
    /* Lenient like glib's decoder: padding is optional, a short tail
     * group yields the bytes it completes. */
    uint8_t *out = xmalloc(n / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        acc = (acc << 6) | (uint32_t)b64_value(in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

/* Read a secret file whole (bounded). */
static uint8_t *read_secret_file(const char *path, size_t *len, Error **errp)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_setg_errno(errp, errno, "Unable to read %s: Failed to open file \"%s\"", path, path);
        return NULL;
    }
    uint8_t *buf = xmalloc(MAX_SECRET_BYTES + 1);
    size_t n = fread(buf, 1, MAX_SECRET_BYTES + 1, f);
    bool err = ferror(f);
    fclose(f);
    if (err || n > MAX_SECRET_BYTES) {
        error_setg(errp, "Unable to read %s: %s", path,
                   err ? "read error" : "secret file is larger than 64 KiB");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void wipe_free(uint8_t *p, size_t len)
{
    if (p) {
        explicit_bzero(p, len);
        free(p);
    }
}

/* The value bytes of a parsed secret object (data= or file=, decoded). */
static uint8_t *secret_value(const Opts *o, size_t *len, Error **errp)
{
    const char *data = opts_get(o, "data");
    const char *file = opts_get(o, "file");
    const char *format = opts_get(o, "format");
    if (data && file) {
        error_setg(errp, "'file' and 'data' are mutually exclusive");
        return NULL;
    }
    if (!data && !file) {
        error_setg(errp, "Either 'file' or 'data' must be provided");
        return NULL;
    }
    if (format && strcmp(format, "raw") && strcmp(format, "base64")) {
        error_setg(errp, "Parameter 'format' does not accept value '%s'", format);
        return NULL;
    }
    uint8_t *raw;
    size_t raw_len;
    if (data) {
        raw_len = strlen(data);
        raw = (uint8_t *)xstrdup(data);
    } else if (!(raw = read_secret_file(file, &raw_len, errp))) {
        return NULL;
    }
    if (!format || !strcmp(format, "raw")) {
        *len = raw_len;
        return raw;
    }
    uint8_t *dec = secret_base64_decode((const char *)raw, len, errp);
    wipe_free(raw, raw_len);
    return dec;
}

/* Validate the keys of a secret object (qemu's texts). */
static int check_secret_keys(const Opts *o, Error **errp)
{
    static const char *const known[] = {"qom-type", "id", "data", "file", "format", NULL};
    for (size_t i = 0; i < o->n; i++) {
        if (!strcmp(o->keys[i], "keyid") || !strcmp(o->keys[i], "iv")) {
            error_setg(errp, "encrypted secrets (parameter '%s') are not supported", o->keys[i]);
            return -ENOTSUP;
        }
        bool ok = false;
        for (int k = 0; known[k]; k++) {
            ok |= !strcmp(o->keys[i], known[k]);
        }
        if (!ok) {
            error_setg(errp, "Parameter '%s' is unexpected", o->keys[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_secret_object(const Opts *o, Error **errp)
{
    const char *type = opts_get(o, "qom-type");
    if (!type) {
        error_setg(errp, "Parameter 'qom-type' is missing");
        return -EINVAL;
    }
    if (strcmp(type, "secret")) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'", type);
        return -EINVAL;
    }
    const char *id = opts_get(o, "id");
    if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
        return -EINVAL;
    }
    int ret = check_secret_keys(o, errp);
    if (ret < 0) {
        return ret;
    }
    size_t len;
    uint8_t *value = secret_value(o, &len, errp);
    if (!value) {
        return -EINVAL;
    }
    pthread_mutex_lock(&store_lock);
    for (int i = 0; i < n_store; i++) {
        if (!strcmp(store[i].id, id)) {
            error_setg(errp, "attempt to add duplicate property '%s' to object (type 'container')",
                       id);
            ret = -EEXIST;
        }
    }
    if (ret == 0 && n_store >= MAX_SECRETS) {
        error_setg(errp, "too many secrets (at most %d)", MAX_SECRETS);
        ret = -ENOSPC;
    }
    if (ret == 0) {
        secret_store_put(id, value, len); /* where format drivers look */
        store[n_store++] = (Secret){xstrdup(id), value, len};
        value = NULL;
    }
    pthread_mutex_unlock(&store_lock);
    wipe_free(value, len);
    return ret;
}

int secret_add_object(const char *optarg, Error **errp)
{
    Opts o = OPTS_INIT;
    int ret = opts_parse(&o, optarg, "qom-type", errp);
    if (ret == 0) {
        ret = parse_secret_object(&o, errp);
    }
    opts_release(&o);
    return ret;
}

uint8_t *secret_lookup(const char *id, size_t *len, Error **errp)
{
    uint8_t *copy = NULL;
    pthread_mutex_lock(&store_lock);
    for (int i = 0; i < n_store && !copy; i++) {
        if (!strcmp(store[i].id, id)) {
            copy = xmalloc(store[i].len + 1);
            memcpy(copy, store[i].data, store[i].len);
            copy[store[i].len] = 0;
            *len = store[i].len;
        }
    }
    pthread_mutex_unlock(&store_lock);
    if (!copy) {
        error_setg(errp, "No secret with id '%s'", id);
    }
    return copy;
}

void secrets_clear(void)
{
    pthread_mutex_lock(&store_lock);
    for (int i = 0; i < n_store; i++) {
        free(store[i].id);
        wipe_free(store[i].data, store[i].len);
    }
    n_store = 0;
    pthread_mutex_unlock(&store_lock);
    secret_store_clear();
}
