/*
 * sha256.c — SHA-256 through OpenSSL EVP (see sha256.h).
 */
#include "planner/sha256.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct Sha256Ctx {
    EVP_MD_CTX *md;
};

Sha256Ctx *sha256_new(void)
{
    Sha256Ctx *ctx = malloc(sizeof(*ctx));
    if (!ctx) {
        abort();
    }
    ctx->md = EVP_MD_CTX_new();
    if (!ctx->md || EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1) {
        abort();
    }
    return ctx;
}

void sha256_update(Sha256Ctx *ctx, const void *data, size_t len)
{
    if (len && EVP_DigestUpdate(ctx->md, data, len) != 1) {
        abort();
    }
}

void sha256_final(Sha256Ctx *ctx, Sha256 *out)
{
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx->md, out->b, &n) != 1 || n != SHA256_LEN) {
        abort();
    }
    EVP_MD_CTX_free(ctx->md);
    free(ctx);
}

void sha256_buf(const void *data, size_t len, Sha256 *out)
{
    Sha256Ctx *ctx = sha256_new();
    sha256_update(ctx, data, len);
    sha256_final(ctx, out);
}

void sha256_to_hex(const Sha256 *d, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_LEN; i++) {
        hex[2 * i] = digits[d->b[i] >> 4];
        hex[2 * i + 1] = digits[d->b[i] & 15];
    }
    hex[SHA256_HEX_LEN] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool sha256_from_hex(const char *hex, Sha256 *out)
{
    if (!hex || strlen(hex) != SHA256_HEX_LEN) {
        return false;
    }
    for (int i = 0; i < SHA256_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool sha256_equal(const Sha256 *a, const Sha256 *b)
{
    return memcmp(a->b, b->b, SHA256_LEN) == 0;
}

bool sha256_is_zero(const Sha256 *d)
{
    static const Sha256 zero;
    return sha256_equal(d, &zero);
}
