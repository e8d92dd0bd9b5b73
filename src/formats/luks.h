/*
 * luks.h — the LUKS1 crypto block, shared by the luks format driver
 * (luks.c) and encrypted qcow2 (qcow2 crypt_method 2).
 *
 * Spec: "LUKS On-Disk Format Specification" version 1.2.x (cryptsetup's
 * docs/on-disk-format.pdf), with the layout qemu 7.2 writes: 8 key slots
 * of 4000 anti-forensic stripes, key material from byte 4096, each slot's
 * area rounded up to 4096 bytes, payload right after the last slot.
 *
 * Three parts:
 *   luks-crypto.c  algorithms (OpenSSL EVP): names, the checks on a
 *                  combination, hashes, PBKDF2, the anti-forensic splitter.
 *   luks-cipher.c  sector encryption (LuksCipher): block ciphers from
 *                  OpenSSL or nettle, the modes, the IV generators.
 *   luks-header.c  the header: parse/validate, unlock a key slot, create,
 *                  store and erase key slots (amend), info.
 * The caller supplies the bytes through LuksIO, so the same code reads a
 * .luks file at offset 0 and a qcow2 image's crypto header clusters.
 *
 * Supported subset: every cipher/mode/ivgen/hash qemu 7.2 offers for LUKS:
 * aes-128/192/256, serpent-128/192/256, twofish-128/192/256 (from nettle,
 * as in Debian's qemu: OpenSSL 3 has neither) with ecb, cbc, ctr, xts;
 * cast5-128 (OpenSSL's legacy provider, else nettle) with ecb, cbc, ctr;
 * ivgen plain/plain64/essiv; hashes md5/sha1/sha224/sha256/sha384/sha512/
 * ripemd160.  des and 3des are refused, as qemu refuses them for LUKS; so
 * are 192-bit ciphers outside XTS, whose key material is not a whole number
 * of sectors (qemu 7.2 aborts on an assertion there).
 * LUKS2 is not supported (qemu 7.2 has no LUKS2 either).
 */
#ifndef IMGPIPE_FORMATS_LUKS_H
#define IMGPIPE_FORMATS_LUKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocklayer/block.h"
#include "common/error.h"
#include "common/json.h"
#include "common/opts.h"

#define LUKS_SECTOR_SIZE      512
#define LUKS_NUM_SLOTS        8
#define LUKS_STRIPES          4000
#define LUKS_SALT_LEN         32
#define LUKS_DIGEST_LEN       20
#define LUKS_KEY_SLOT_OFFSET  4096 /* first key material byte, and slot alignment */
#define LUKS_HEADER_SIZE      592
#define LUKS_MIN_ITERS        1000 /* qemu's floor for slot and master key iterations */
#define LUKS_DEFAULT_ITER_MS  2000
#define LUKS_SLOT_ENABLED     0x00AC71F3u
#define LUKS_SLOT_DISABLED    0x0000DEADu
#define LUKS_MAX_KEY_BYTES    64          /* aes-256-xts: the largest key qemu can use */
#define LUKS_DEFAULT_MAX_ITER 50000000ULL /* per-slot PBKDF2 budget, see luks.c */

/* ---- algorithms (luks-crypto.c) ---- */

/* qemu's QCryptoCipherAlgorithm, in its enum order (names: luks_cipher_name) */
typedef enum {
    LUKS_CIPHER_AES_128,
    LUKS_CIPHER_AES_192,
    LUKS_CIPHER_AES_256,
    LUKS_CIPHER_DES,
    LUKS_CIPHER_3DES,
    LUKS_CIPHER_CAST5_128,
    LUKS_CIPHER_SERPENT_128,
    LUKS_CIPHER_SERPENT_192,
    LUKS_CIPHER_SERPENT_256,
    LUKS_CIPHER_TWOFISH_128,
    LUKS_CIPHER_TWOFISH_192,
    LUKS_CIPHER_TWOFISH_256,
    LUKS_CIPHER__MAX
} LuksCipherAlg;

typedef enum {
    LUKS_MODE_ECB,
    LUKS_MODE_CBC,
    LUKS_MODE_XTS,
    LUKS_MODE_CTR,
    LUKS_MODE__MAX
} LuksMode;
typedef enum { LUKS_IVGEN_PLAIN, LUKS_IVGEN_PLAIN64, LUKS_IVGEN_ESSIV, LUKS_IVGEN__MAX } LuksIvgen;
typedef enum {
    LUKS_HASH_MD5,
    LUKS_HASH_SHA1,
    LUKS_HASH_SHA224,
    LUKS_HASH_SHA256,
    LUKS_HASH_SHA384,
    LUKS_HASH_SHA512,
    LUKS_HASH_RIPEMD160,
    LUKS_HASH__MAX
} LuksHash;

/* A complete algorithm choice, as stored in a header. */
typedef struct LuksAlgs {
    LuksCipherAlg cipher;
    LuksMode mode;
    LuksIvgen ivgen;
    bool has_ivgen_hash;
    LuksHash ivgen_hash;
    LuksCipherAlg ivgen_cipher; /* the ESSIV cipher (digest-sized key), else = cipher */
    LuksHash hash;              /* PBKDF2 and AF hash */
} LuksAlgs;

const char *luks_cipher_name(LuksCipherAlg alg); /* "aes-256" */
const char *luks_mode_name(LuksMode mode);       /* "xts" */
const char *luks_ivgen_name(LuksIvgen ivgen);    /* "plain64" */
const char *luks_hash_name(LuksHash hash);       /* "sha256" */
/* Name -> enum; -1 if unknown. */
int luks_cipher_lookup(const char *name);
int luks_mode_lookup(const char *name);
int luks_ivgen_lookup(const char *name);
int luks_hash_lookup(const char *name);
/* Key bytes of a cipher (aes-256: 32); 0 for unknown. */
size_t luks_cipher_key_len(LuksCipherAlg alg);
size_t luks_hash_digest_len(LuksHash hash);

/*
 * Check the combination and pick the ESSIV cipher (qemu's errors:
 * "Unsupported cipher mode xts", "No AES cipher with key size 20
 * available", ...); with need_impl also that OpenSSL can do it (ours for
 * ciphers OpenSSL lacks).  Fills a->ivgen_cipher.  0 or -ENOTSUP.
 */
int luks_algs_check(LuksAlgs *a, bool need_impl, Error **errp);

/* PBKDF2-HMAC(hash).  0 or -EIO (OpenSSL failure). */
int luks_pbkdf2(LuksHash hash, const uint8_t *pass, size_t pass_len, const uint8_t *salt,
                size_t salt_len, uint64_t iterations, uint8_t *out, size_t out_len);
/*
 * PBKDF2 iterations per second for these sizes on this machine (measured
 * on the thread's CPU clock, cached per hash and output size).  0 and
 * *errp on failure.
 */
uint64_t luks_pbkdf2_rate(LuksHash hash, size_t pass_len, size_t out_len, Error **errp);

/* Anti-forensic split/merge (LUKS spec section 2.4): key of key_len bytes
 * <-> key_len * stripes bytes.  split takes the stripes' random material
 * in `split` (all but the last stripe) and completes it. */
int luks_af_split(LuksHash hash, const uint8_t *key, size_t key_len, uint32_t stripes,
                  uint8_t *split);
int luks_af_merge(LuksHash hash, const uint8_t *split, size_t key_len, uint32_t stripes,
                  uint8_t *key);

/*
 * A keyed sector cipher: algs + key (key_len = the header's key_bytes).
 * Thread-safe: every call uses its own OpenSSL contexts, and nettle's key
 * schedules are read-only once made.
 */
typedef struct LuksCipher LuksCipher;
LuksCipher *luks_cipher_new(const LuksAlgs *a, const uint8_t *key, size_t key_len, Error **errp);
/* En/decrypt len bytes (a multiple of 512) in place; the first 512-byte
 * sector has IV sector number `sector`.  0 or -EIO. */
int luks_cipher_crypt(const LuksCipher *c, uint64_t sector, uint8_t *buf, size_t len, bool encrypt);
void luks_cipher_free(LuksCipher *c);

/* ---- the header and the volume (luks-header.c) ---- */

typedef struct LuksKeySlot {
    uint32_t active;
    uint32_t iterations;
    uint8_t salt[LUKS_SALT_LEN];
    uint32_t key_offset; /* sectors */
    uint32_t stripes;
} LuksKeySlot;

/* Native-order copy of the 592-byte header; strings NUL-terminated. */
typedef struct LuksHeader {
    uint16_t version;
    char cipher_name[33];
    char cipher_mode[33];
    char hash_spec[33];
    uint32_t payload_offset; /* sectors */
    uint32_t key_bytes;
    uint8_t mk_digest[LUKS_DIGEST_LEN];
    uint8_t mk_salt[LUKS_SALT_LEN];
    uint32_t mk_iterations;
    char uuid[41];
    LuksKeySlot slots[LUKS_NUM_SLOTS];
} LuksHeader;

/* Where the header bytes live (offset 0 = the header's first byte). */
typedef struct LuksIO {
    int (*read)(void *opaque, uint64_t offset, void *buf, size_t len);
    int (*write)(void *opaque, uint64_t offset, const void *buf, size_t len);
    void *opaque;
} LuksIO;

/* An open LUKS volume. */
typedef struct LuksVolume {
    LuksHeader hdr;
    LuksAlgs algs;
    LuksCipher *cipher;      /* payload cipher; NULL when opened metadata-only */
    uint64_t payload_offset; /* bytes */
    char *secret_id;         /* the key-secret it was unlocked with (amend) */
    uint64_t max_iterations; /* PBKDF2 budget per slot (0: default) */
    const char *optprefix;   /* "" or "encrypt." for messages */
} LuksVolume;

/* Parse the 592 header bytes (no validation). */
void luks_header_decode(const uint8_t *buf, LuksHeader *h);
void luks_header_encode(const LuksHeader *h, uint8_t *buf);
/* True if buf starts with the LUKS magic and version 1 (qemu's probe). */
bool luks_has_format(const uint8_t *buf, size_t len);

/*
 * Open: read and validate the header, parse its algorithms, and, when
 * secret_id is non-NULL, unlock a key slot with that secret and set up
 * the payload cipher.  secret_id NULL with need_key: qemu's "Parameter
 * '<prefix>key-secret' is required for cipher".  Wrong passphrase:
 * "Invalid password, cannot unlock any keyslot" (-EACCES).
 */
int luks_volume_open(LuksVolume *v, const LuksIO *io, const char *secret_id, bool need_key,
                     const char *optprefix, uint64_t max_iterations, Error **errp);
void luks_volume_close(LuksVolume *v);

/* Create options (qemu's QCryptoBlockCreateOptionsLUKS), parsed. */
typedef struct LuksCreateParams {
    LuksAlgs algs;
    uint64_t iter_time; /* ms */
    const char *secret_id;
} LuksCreateParams;

/* Parse "<prefix>cipher-alg" ... "<prefix>iter-time", "<prefix>key-secret"
 * with qemu's defaults (aes-256, xts, plain64, sha256, 2000 ms). */
int luks_create_params_parse(const Opts *o, const char *prefix, LuksCreateParams *p, Error **errp);
/* Payload offset in bytes qemu lays out for these algorithms. */
uint64_t luks_payload_offset_for(const LuksAlgs *a);

/*
 * Create: make a master key and slot 0 for the secret, write header and
 * key material through io (whose region must already hold
 * luks_payload_offset_for() bytes), and leave v open with the key.
 * repro: reproducible salts/UUID/key and fixed iteration counts (see
 * luks-header.c); may be NULL.
 */
int luks_volume_create(LuksVolume *v, const LuksCreateParams *p, const LuksIO *io,
                       const BdrvRepro *repro, Error **errp);

/* The "luks" format-specific data (qemu's QCryptoBlockInfoLUKS). */
JVal *luks_volume_info(const LuksVolume *v);

/*
 * Amend key slots (qemu's QCryptoBlockAmendOptionsLUKS): o holds
 * "<prefix>state", "new-secret", "old-secret", "keyslot", "iter-time".
 */
int luks_volume_amend(LuksVolume *v, const LuksIO *io, const Opts *o, const char *prefix,
                      bool force, Error **errp);

/* Look a secret up as qemu's qcrypto_secret_lookup_as_utf8 (valid UTF-8). */
char *luks_secret_get(const char *id, size_t *len, Error **errp);

/* ---- encrypted qcow2 (luks-qcow2.c), called from the qcow2 driver ---- */
struct BDRVQcow2State;
/* On open: check the "encrypt." runtime options against the header's
 * crypt_method, unlock the LUKS region (unless BDRV_O_NO_IO), set
 * bs->encrypted and a 512-byte request alignment.  No-op without
 * encryption. */
int qcow2_crypto_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp);
void qcow2_crypto_close(BlockDriverState *bs);
/* Decrypt data read from host offset (whole sectors); 0 without encryption. */
int qcow2_crypto_decrypt(struct BDRVQcow2State *s, uint64_t host, void *buf, size_t len);
/* Write guest data to host offset of f, encrypting it when the image is. */
int qcow2_crypto_pwrite(struct BDRVQcow2State *s, BlockFile *f, uint64_t host, const void *buf,
                        size_t len);
/* The "encrypt" member of qcow2's format-specific info, or NULL. */
JVal *qcow2_crypto_info(struct BDRVQcow2State *s);
/* Before creating anything: validate "encrypt.format" and the LUKS options,
 * look the secret up; *header_len gets the LUKS region size (0: none). */
int qcow2_crypto_precheck(const Opts *opts, const char *format, uint64_t *header_len, Error **errp);
/* During create (image open, L1 in place): allocate and write the LUKS
 * region, set crypt_method 2 and the header extension. */
int qcow2_crypto_create(BlockDriverState *bs, const Opts *opts, const BdrvRepro *repro,
                        Error **errp);
/* qemu-img amend of "encrypt.*" key slot options (image opened with the key). */
int qcow2_crypto_amend(BlockDriverState *bs, const Opts *opts, bool force, Error **errp);

#endif
