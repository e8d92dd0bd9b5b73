/*
 * secrets.h — `--object secret,...` as qemu-img takes it, and lookup by id.
 *
 * Supported subset of QEMU's "secret" object (qapi/crypto.json,
 * SecretProperties): id, data= or file=, format=raw|base64.  Encrypted
 * secrets (keyid=, iv=) are refused.  Other object types are refused with
 * qemu's "Parameter 'qom-type' does not accept value 'X'".
 *
 * The store is process-wide (like qemu's object tree): the qemu-img front
 * ends add to it while parsing argv, and drivers that need a key (LUKS,
 * encrypted qcow2: "encrypt.key-secret=ID") look it up by id.  Thread-safe.
 */
#ifndef IMGPIPE_ENGINE_SECRETS_H
#define IMGPIPE_ENGINE_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/*
 * Parse one --object argument ("secret,id=s0,data=pw") and register the
 * secret.  Errors use qemu's texts ("Parameter 'id' is missing", "'file'
 * and 'data' are mutually exclusive", "Either 'file' or 'data' must be
 * provided", "attempt to add duplicate property 'X' to object (type
 * 'container')", ...).  Returns 0 or -errno.
 */
int secret_add_object(const char *optarg, Error **errp);

/*
 * Copy of the bytes of secret `id` (NUL-terminated for convenience; *len
 * gets the length without it).  Caller frees (after wiping).  Error:
 * "No secret with id 'X'" (qemu's text).
 */
uint8_t *secret_lookup(const char *id, size_t *len, Error **errp);

/* Forget every secret (wiping the bytes).  For tests and long-lived callers. */
void secrets_clear(void);

/*
 * Strict base64 decode (RFC 4648 alphabet, '=' padding, no whitespace), as
 * qemu_base64_decode: NULL with "Base64 data contains invalid characters"
 * or "Base64 data is not a multiple of 4 bytes" on bad input.
 */
uint8_t *secret_base64_decode(const char *in, size_t *out_len, Error **errp);

#endif
