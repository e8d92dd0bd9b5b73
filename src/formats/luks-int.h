/*
 * luks-int.h — helpers shared by the luks-*.c files only (the users of the
 * crypto block see luks.h).  Grouped by the file that defines them.
 */
#ifndef IMGPIPE_FORMATS_LUKS_INT_H
#define IMGPIPE_FORMATS_LUKS_INT_H

#include <openssl/types.h>

#include "formats/luks.h"

/* ---- luks-header.c ---- */
/* Key material sectors of one slot, rounded up to 4096 bytes as cryptsetup. */
uint64_t luks_split_sectors(uint32_t key_bytes, uint32_t stripes);
/* "aes" for aes-*, "cast5", "serpent", "twofish" (NULL for des/3des). */
const char *luks_cipher_family(LuksCipherAlg alg);
/* Write v->hdr (592 bytes) at offset 0 of io. */
int luks_store_header(const LuksVolume *v, const LuksIO *io, Error **errp);
/* PBKDF2 digest of a candidate master key (20 bytes). */
int luks_mk_digest(const LuksVolume *v, const uint8_t *mk, uint8_t *digest, Error **errp);
/* Try slot idx with pw: 1 and mk filled if it opens, 0 if not (or the slot
 * is inactive), -errno with *errp on a hard failure (budget, I/O). */
int luks_load_key(const LuksVolume *v, const LuksIO *io, int idx, const char *pw, size_t pw_len,
                  uint8_t *mk, Error **errp);
/* Try every slot: 0 with mk, or -EACCES "Invalid password, cannot unlock any keyslot". */
int luks_find_key(const LuksVolume *v, const LuksIO *io, const char *pw, size_t pw_len, uint8_t *mk,
                  Error **errp);

/* ---- luks-crypto.c ---- */
/* OpenSSL's digest for a hash (fetched once); NULL if unavailable. */
const EVP_MD *luks_md(LuksHash hash);

/* ---- luks-cipher.c ---- */
/* Block bytes of a cipher: 8 for cast5/des/3des, 16 for the others. */
size_t luks_cipher_block_len(LuksCipherAlg alg);
/* 0 if OpenSSL or nettle implements the block cipher, else -ENOTSUP and
 * *errp naming it. */
int luks_block_cipher_check(LuksCipherAlg alg, Error **errp);
/* Tests only: build every mode on the block cipher even where OpenSSL has
 * the mode itself, so the unit tests can check the generic modes against
 * OpenSSL's own... */
extern bool luks_force_generic_modes;
/* ...and take the block cipher from nettle even where OpenSSL has it (AES,
 * CAST5), to check the nettle backend against OpenSSL.  Implies the
 * generic modes. */
extern bool luks_force_nettle;

/* dst ^= src over len bytes. */
static inline void luks_xor(uint8_t *dst, const uint8_t *src, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        dst[i] ^= src[i];
    }
}

/* ---- luks-create.c ---- */
/* Random bytes for key material: OpenSSL's CSPRNG (aborts on failure). */
void luks_random(void *buf, size_t len);
/*
 * Fill slot idx for passphrase pw with master key mk: salt, iterations
 * (timed over iter_time ms, or fixed under repro), AF split, encrypt,
 * write the material and then the header.
 */
int luks_store_key(LuksVolume *v, const LuksIO *io, int idx, const char *pw, size_t pw_len,
                   const uint8_t *mk, uint64_t iter_time, const BdrvRepro *repro, Error **errp);
/* Disable slot idx in the header, then overwrite its key material. */
int luks_erase_key(LuksVolume *v, const LuksIO *io, int idx, Error **errp);

#endif
