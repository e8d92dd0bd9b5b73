/*
 * sha256.h — SHA-256 for the planner: action keys and content digests.
 *
 * A thin wrapper over OpenSSL's EVP interface (libcrypto is already a
 * dependency of imgpipe_common), so that the rest of the planner never sees
 * OpenSSL types.  Digests travel as 32 raw bytes (Sha256) and are printed as
 * 64 lower-case hex digits.
 */
#ifndef IMGPIPE_PLANNER_SHA256_H
#define IMGPIPE_PLANNER_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN     32
#define SHA256_HEX_LEN 64

typedef struct Sha256 {
    uint8_t b[SHA256_LEN];
} Sha256;

typedef struct Sha256Ctx Sha256Ctx;

/* Start a new hash; never fails (aborts on out-of-memory like xmalloc). */
Sha256Ctx *sha256_new(void);
void sha256_update(Sha256Ctx *ctx, const void *data, size_t len);
/* Finish into *out and free ctx. */
void sha256_final(Sha256Ctx *ctx, Sha256 *out);
/* One-shot hash of a buffer. */
void sha256_buf(const void *data, size_t len, Sha256 *out);

/* hex must hold SHA256_HEX_LEN + 1 bytes. */
void sha256_to_hex(const Sha256 *d, char *hex);
/* Parse 64 hex digits; false if malformed. */
bool sha256_from_hex(const char *hex, Sha256 *out);
bool sha256_equal(const Sha256 *a, const Sha256 *b);
bool sha256_is_zero(const Sha256 *d);

#endif
