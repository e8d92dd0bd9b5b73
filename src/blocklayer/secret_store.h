/*
 * secret_store.h — secrets by id, for drivers that need a passphrase.
 *
 * Layering: format drivers (LUKS, encrypted qcow2) must not call the engine,
 * yet the secrets come from the engine's `--object secret,...` parser
 * (src/engine/secrets.c).  This small process-wide registry sits between
 * them: the engine puts each secret it parses here, drivers get it by the
 * id named in "key-secret=ID".  Thread-safe.  Bytes are wiped on removal.
 */
#ifndef IMGPIPE_BLOCKLAYER_SECRET_STORE_H
#define IMGPIPE_BLOCKLAYER_SECRET_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Register (or replace) secret `id` with a copy of len bytes of data. */
void secret_store_put(const char *id, const void *data, size_t len);

/*
 * A malloc'd copy of secret `id`, NUL-terminated (*len excludes the NUL),
 * or NULL with qemu's "No secret with id 'X'".  The caller wipes and frees
 * it (secret_store_free).
 */
uint8_t *secret_store_get(const char *id, size_t *len, Error **errp);

/* Wipe and free a buffer returned by secret_store_get (NULL is fine). */
void secret_store_free(uint8_t *data, size_t len);

/* Forget every secret (wiping the bytes). */
void secret_store_clear(void);

#endif
