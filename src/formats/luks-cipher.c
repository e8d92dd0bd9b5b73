/*
 * luks-cipher.c — the LUKS sector cipher (LuksCipher, see luks.h): block
 * ciphers from two libraries, the block cipher modes and the IV generators.
 *
 * Block ciphers.  A BlockCipher is one keyed block cipher doing ECB over
 * whole blocks, from one of two backends:
 *   OpenSSL 3 EVP  aes-128/192/256; cast5-128 from OpenSSL's legacy
 *                  provider, loaded into a private library context so the
 *                  default context stays untouched
 *   nettle         serpent-128/192/256 and twofish-128/192/256, which
 *                  OpenSSL 3 does not have, and cast5-128 when the legacy
 *                  provider is not installed.  nettle is the library
 *                  Debian's qemu is built with, so a serpent or twofish
 *                  image means to us exactly what it means to qemu.
 * A BlockCipher is read-only once keyed and is shared by every thread;
 * a BlockRun is one call's state in one direction (OpenSSL contexts are
 * not shareable, nettle's key schedules are).
 *
 * Modes.  Where OpenSSL implements the cipher in the mode itself (AES in
 * CBC, CTR and XTS except aes-192-xts; CAST5 in CBC) its code runs
 * (IMPL_NATIVE: the fast path, AES-NI XTS and CBC).  Everything else is
 * built here on a BlockCipher (IMPL_GENERIC): ECB; CBC; CTR counting
 * big-endian over the whole block (as OpenSSL and nettle count); XTS as in
 * IEEE P1619 with the key halves data|tweak and the tweak = the IV.  ECB is
 * always the generic form: over OpenSSL's ECB that is OpenSSL's own code.
 * The unit tests check every generic mode against OpenSSL's for AES and
 * against nettle's own CBC/CTR/XTS for Serpent and Twofish, and the nettle
 * backend against OpenSSL for AES and CAST5.
 *
 * IVs follow dm-crypt / qemu's crypto/block.c: every 512-byte sector is
 * en/decrypted on its own, with an IV made from its sector number:
 *   plain    little-endian low 32 bits of the sector, zero-padded
 *   plain64  little-endian 64-bit sector, zero-padded
 *   essiv    E_salt(le64 sector, zero-padded to a block), salt = H(key),
 *            with a cipher whose key size is the digest size (dm-crypt's
 *            quirk: aes-128 + sha256 uses AES-256 for the IV)
 * ECB takes no IV.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <nettle/nettle-meta.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "common/util.h"
#include "formats/luks-int.h"

bool luks_force_generic_modes;
bool luks_force_nettle;

/* ---- the two backends ---- */

static pthread_once_t legacy_once = PTHREAD_ONCE_INIT;
static OSSL_LIB_CTX *legacy_ctx; /* CAST5; NULL when the provider is missing */

static void legacy_init(void)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    if (ctx && OSSL_PROVIDER_load(ctx, "legacy")) {
        legacy_ctx = ctx;
    } else {
        OSSL_LIB_CTX_free(ctx);
    }
}

size_t luks_cipher_block_len(LuksCipherAlg alg)
{
    switch (alg) {
    case LUKS_CIPHER_DES:
    case LUKS_CIPHER_3DES:
    case LUKS_CIPHER_CAST5_128: return 8;
    default: return 16;
    }
}

/* OpenSSL's name of the cipher ("AES-128"); NULL if OpenSSL has none. */
static const char *ossl_family(LuksCipherAlg alg)
{
    switch (alg) {
    case LUKS_CIPHER_AES_128: return "AES-128";
    case LUKS_CIPHER_AES_192: return "AES-192";
    case LUKS_CIPHER_AES_256: return "AES-256";
    case LUKS_CIPHER_CAST5_128: return "CAST5";
    default: return NULL;
    }
}

/* Fetch "<cipher>-<mode>" from OpenSSL (NULL if it lacks it).  Caller frees. */
static EVP_CIPHER *ossl_fetch(LuksCipherAlg alg, const char *mode)
{
    const char *fam = ossl_family(alg);
    OSSL_LIB_CTX *libctx = NULL;
    if (!fam) {
        return NULL;
    }
    if (alg == LUKS_CIPHER_CAST5_128) {
        pthread_once(&legacy_once, legacy_init);
        if (!legacy_ctx) {
            return NULL;
        }
        libctx = legacy_ctx;
    }
    char name[32];
    snprintf(name, sizeof(name), "%s-%s", fam, mode);
    return EVP_CIPHER_fetch(libctx, name, NULL);
}

/* nettle's implementation of the cipher; NULL if it has none. */
static const struct nettle_cipher *nettle_impl(LuksCipherAlg alg)
{
    switch (alg) {
    case LUKS_CIPHER_AES_128: return &nettle_aes128;
    case LUKS_CIPHER_AES_192: return &nettle_aes192;
    case LUKS_CIPHER_AES_256: return &nettle_aes256;
    case LUKS_CIPHER_CAST5_128: return &nettle_cast128;
    case LUKS_CIPHER_SERPENT_128: return &nettle_serpent128;
    case LUKS_CIPHER_SERPENT_192: return &nettle_serpent192;
    case LUKS_CIPHER_SERPENT_256: return &nettle_serpent256;
    case LUKS_CIPHER_TWOFISH_128: return &nettle_twofish128;
    case LUKS_CIPHER_TWOFISH_192: return &nettle_twofish192;
    case LUKS_CIPHER_TWOFISH_256: return &nettle_twofish256;
    default: return NULL;
    }
}

int luks_block_cipher_check(LuksCipherAlg alg, Error **errp)
{
    EVP_CIPHER *evp = ossl_fetch(alg, "ECB");
    if (evp || nettle_impl(alg)) {
        EVP_CIPHER_free(evp);
        return 0;
    }
    error_setg(errp, "Cipher algorithm '%s' is not supported: neither OpenSSL nor nettle has it",
               luks_cipher_name(alg));
    return -ENOTSUP;
}

/* ---- block ciphers: ECB over whole blocks ---- */

typedef struct BlockCipher {
    size_t block;                     /* bytes: 16, or 8 for CAST5 */
    EVP_CIPHER *evp;                  /* OpenSSL: the ECB cipher ... */
    uint8_t key[32];                  /* ... and its key (contexts are per run) */
    const struct nettle_cipher *meta; /* nettle: the cipher ... */
    void *enc, *dec;                  /* ... and its two key schedules */
} BlockCipher;

/* One call's use of a BlockCipher in one direction. */
typedef struct BlockRun {
    const BlockCipher *bc;
    EVP_CIPHER_CTX *ctx; /* OpenSSL backend only */
    bool encrypt;
} BlockRun;

/* Key bc with alg's key (luks_cipher_key_len(alg) bytes): OpenSSL when it
 * has the cipher (unless luks_force_nettle), else nettle.  -ENOTSUP if
 * neither has it. */
static int bc_init(BlockCipher *bc, LuksCipherAlg alg, const uint8_t *key)
{
    size_t klen = luks_cipher_key_len(alg);
    memset(bc, 0, sizeof(*bc));
    bc->block = luks_cipher_block_len(alg);
    bc->evp = luks_force_nettle ? NULL : ossl_fetch(alg, "ECB");
    if (bc->evp) {
        memcpy(bc->key, key, MIN(klen, sizeof(bc->key)));
        return 0;
    }
    const struct nettle_cipher *m = nettle_impl(alg);
    if (!m || m->block_size != bc->block || m->key_size != klen) {
        return -ENOTSUP;
    }
    bc->meta = m;
    bc->enc = xmalloc(m->context_size);
    bc->dec = xmalloc(m->context_size);
    m->set_encrypt_key(bc->enc, key);
    m->set_decrypt_key(bc->dec, key);
    return 0;
}

static void bc_release(BlockCipher *bc)
{
    EVP_CIPHER_free(bc->evp);
    if (bc->meta) {
        explicit_bzero(bc->enc, bc->meta->context_size);
        explicit_bzero(bc->dec, bc->meta->context_size);
        free(bc->enc);
        free(bc->dec);
    }
    explicit_bzero(bc, sizeof(*bc));
}

static EVP_CIPHER_CTX *evp_ctx_new(const EVP_CIPHER *evp, const uint8_t *key, int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_CipherInit_ex2(ctx, evp, key, NULL, enc, NULL) &&
        EVP_CIPHER_CTX_set_padding(ctx, 0)) {
        return ctx;
    }
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
}

static int run_start(BlockRun *r, const BlockCipher *bc, bool encrypt)
{
    r->bc = bc;
    r->encrypt = encrypt;
    r->ctx = bc->evp ? evp_ctx_new(bc->evp, bc->key, encrypt) : NULL;
    return r->ctx || bc->meta ? 0 : -EIO;
}

static void run_end(BlockRun *r)
{
    EVP_CIPHER_CTX_free(r->ctx);
    r->ctx = NULL;
}

/* ECB over len bytes (whole blocks) from src to dst, which may be equal. */
static int run_blocks(BlockRun *r, uint8_t *dst, const uint8_t *src, size_t len)
{
    const BlockCipher *bc = r->bc;
    if (bc->meta) {
        if (r->encrypt) {
            bc->meta->encrypt(bc->enc, len, dst, src);
        } else {
            bc->meta->decrypt(bc->dec, len, dst, src);
        }
        return 0;
    }
    int outl;
    return len <= INT_MAX && EVP_CipherUpdate(r->ctx, dst, &outl, src, (int)len) ? 0 : -EIO;
}

/* ---- modes built on a BlockRun, one sector (len <= 512) at a time ---- */

static int cbc_sector(BlockRun *r, const uint8_t *iv, uint8_t *buf, size_t len)
{
    size_t b = r->bc->block;
    if (r->encrypt) {
        /* each block chains on the one before: one cipher call per block */
        const uint8_t *prev = iv;
        for (size_t off = 0; off < len; off += b) {
            luks_xor(buf + off, prev, b);
            int ret = run_blocks(r, buf + off, buf + off, b);
            if (ret < 0) {
                return ret;
            }
            prev = buf + off;
        }
        return 0;
    }
    /* decryption: the whole sector at once, then xor the previous ciphertext */
    uint8_t ct[LUKS_SECTOR_SIZE];
    memcpy(ct, buf, len);
    int ret = run_blocks(r, buf, buf, len);
    if (ret == 0) {
        luks_xor(buf, iv, b);
        luks_xor(buf + b, ct, len - b);
    }
    explicit_bzero(ct, sizeof(ct));
    return ret;
}

/* CTR: r always encrypts (the keystream), both directions are the same. */
static int ctr_sector(BlockRun *r, const uint8_t *iv, uint8_t *buf, size_t len)
{
    size_t b = r->bc->block;
    uint8_t ks[LUKS_SECTOR_SIZE], ctr[16];
    memcpy(ctr, iv, b);
    for (size_t off = 0; off < len; off += b) {
        memcpy(ks + off, ctr, b);
        for (size_t i = b; i-- > 0 && ++ctr[i] == 0;) {
        }
    }
    int ret = run_blocks(r, ks, ks, len);
    if (ret == 0) {
        luks_xor(buf, ks, len);
    }
    explicit_bzero(ks, sizeof(ks));
    return ret;
}

/* Multiply an XTS tweak by x in GF(2^128) (little-endian convention). */
static void xts_mult_x(uint8_t *t)
{
    unsigned carry = 0;
    for (int i = 0; i < 16; i++) {
        unsigned next = t[i] >> 7;
        t[i] = (uint8_t)((t[i] << 1) | carry);
        carry = next;
    }
    if (carry) {
        t[0] ^= 0x87;
    }
}

/* XTS (16-byte blocks): data runs key 1 in the call's direction, tweak
 * always encrypts with key 2. */
static int xts_sector(BlockRun *data, BlockRun *tweak, const uint8_t *iv, uint8_t *buf, size_t len)
{
    uint8_t t[16], tw[LUKS_SECTOR_SIZE];
    int ret = run_blocks(tweak, t, iv, 16);
    for (size_t off = 0; ret == 0 && off < len; off += 16) {
        memcpy(tw + off, t, 16);
        xts_mult_x(t);
    }
    if (ret == 0) {
        luks_xor(buf, tw, len);
        ret = run_blocks(data, buf, buf, len);
        luks_xor(buf, tw, len);
    }
    return ret;
}

/* ---- the sector cipher ---- */

typedef enum { IMPL_NATIVE, IMPL_GENERIC } CipherImpl;

struct LuksCipher {
    LuksAlgs algs;
    CipherImpl impl;
    size_t niv;                      /* IV bytes (0 for ECB) */
    EVP_CIPHER *native;              /* IMPL_NATIVE: OpenSSL's cipher in the mode */
    uint8_t key[LUKS_MAX_KEY_BYTES]; /* ... and its key */
    size_t key_len;
    BlockCipher data;  /* IMPL_GENERIC: the cipher (XTS: with key 1) */
    BlockCipher tweak; /* IMPL_GENERIC XTS: with key 2 */
    BlockCipher essiv; /* ESSIV: the IV cipher keyed with H(key) */
    bool has_essiv;
};

/* One call's contexts. */
typedef struct CryptRuns {
    EVP_CIPHER_CTX *native;
    BlockRun data, tweak, essiv;
} CryptRuns;

static const char *mode_ossl(LuksMode m)
{
    static const char *const names[LUKS_MODE__MAX] = {"ECB", "CBC", "XTS", "CTR"};
    return names[m];
}

/* ESSIV: the IV cipher keyed with H(key), truncated to its key size. */
static int essiv_setup(LuksCipher *c, const uint8_t *key, size_t key_len)
{
    const EVP_MD *md = luks_md(c->algs.ivgen_hash);
    size_t klen = luks_cipher_key_len(c->algs.ivgen_cipher);
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    int ret = -ENOTSUP;
    if (md && EVP_Digest(key, key_len, digest, &dlen, md, NULL) && dlen >= klen) {
        ret = bc_init(&c->essiv, c->algs.ivgen_cipher, digest);
        c->has_essiv = ret == 0;
    }
    explicit_bzero(digest, sizeof(digest));
    return ret;
}

/* OpenSSL's own cipher+mode when it has one (never for ECB, see above). */
static void native_setup(LuksCipher *c, const uint8_t *key, size_t key_len)
{
    if (c->algs.mode == LUKS_MODE_ECB || luks_force_generic_modes || luks_force_nettle) {
        return;
    }
    c->native = ossl_fetch(c->algs.cipher, mode_ossl(c->algs.mode));
    if (c->native) {
        c->impl = IMPL_NATIVE;
        memcpy(c->key, key, key_len);
        c->key_len = key_len;
    }
}

static int generic_setup(LuksCipher *c, const uint8_t *key)
{
    c->impl = IMPL_GENERIC;
    int ret = bc_init(&c->data, c->algs.cipher, key);
    if (ret == 0 && c->algs.mode == LUKS_MODE_XTS) {
        ret = bc_init(&c->tweak, c->algs.cipher, key + luks_cipher_key_len(c->algs.cipher));
    }
    return ret;
}

LuksCipher *luks_cipher_new(const LuksAlgs *a, const uint8_t *key, size_t key_len, Error **errp)
{
    size_t want = luks_cipher_key_len(a->cipher) * (a->mode == LUKS_MODE_XTS ? 2 : 1);
    if (key_len != want || key_len > LUKS_MAX_KEY_BYTES || (unsigned)a->mode >= LUKS_MODE__MAX) {
        error_setg(errp, "Cipher %s-%s needs a %zu-byte key, not %zu", luks_cipher_name(a->cipher),
                   luks_mode_name(a->mode), want, key_len);
        return NULL;
    }
    if (a->mode == LUKS_MODE_XTS && luks_cipher_block_len(a->cipher) != 16) {
        error_setg(errp, "Unsupported cipher mode %s", luks_mode_name(a->mode));
        return NULL;
    }
    LuksCipher *c = XNEW(LuksCipher);
    c->algs = *a;
    c->niv = a->mode == LUKS_MODE_ECB ? 0 : luks_cipher_block_len(a->cipher);
    native_setup(c, key, key_len);
    int ret = c->native ? 0 : generic_setup(c, key);
    if (ret == 0 && a->ivgen == LUKS_IVGEN_ESSIV && c->niv) {
        ret = essiv_setup(c, key, key_len);
    }
    if (ret < 0) {
        error_setg(errp, "Cipher %s in mode %s is not available", luks_cipher_name(a->cipher),
                   luks_mode_name(a->mode));
        luks_cipher_free(c);
        return NULL;
    }
    return c;
}

void luks_cipher_free(LuksCipher *c)
{
    if (c) {
        EVP_CIPHER_free(c->native);
        bc_release(&c->data);
        bc_release(&c->tweak);
        bc_release(&c->essiv);
        explicit_bzero(c, sizeof(*c));
        free(c);
    }
}

static void runs_end(CryptRuns *r)
{
    EVP_CIPHER_CTX_free(r->native);
    run_end(&r->data);
    run_end(&r->tweak);
    run_end(&r->essiv);
}

/* Contexts for one call; on failure the caller still calls runs_end. */
static int runs_start(const LuksCipher *c, CryptRuns *r, bool encrypt)
{
    memset(r, 0, sizeof(*r));
    if (c->has_essiv && run_start(&r->essiv, &c->essiv, true) < 0) {
        return -EIO;
    }
    if (c->impl == IMPL_NATIVE) {
        r->native = evp_ctx_new(c->native, c->key, encrypt);
        return r->native ? 0 : -EIO;
    }
    /* CTR is symmetric: its keystream is always encrypted */
    bool data_enc = c->algs.mode == LUKS_MODE_CTR ? true : encrypt;
    if (run_start(&r->data, &c->data, data_enc) < 0 ||
        (c->algs.mode == LUKS_MODE_XTS && run_start(&r->tweak, &c->tweak, true) < 0)) {
        return -EIO;
    }
    return 0;
}

#define IV_BATCH 64 /* sectors whose IVs are made at once */

/* IVs for n <= IV_BATCH sectors from `sector` into ivs (n * niv bytes). */
static int make_ivs(const LuksCipher *c, BlockRun *essiv, uint64_t sector, size_t n, uint8_t *ivs)
{
    memset(ivs, 0, n * c->niv);
    bool plain = c->algs.ivgen == LUKS_IVGEN_PLAIN;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = sector + i;
        uint8_t le[8];
        st64_le(le, plain ? (s & 0xffffffffu) : s);
        memcpy(ivs + i * c->niv, le, MIN(plain ? 4u : 8u, c->niv));
    }
    if (!c->has_essiv) {
        return 0;
    }
    /* ESSIV: encrypt the zero-padded sector numbers; the IV cipher's
     * block may be larger than niv (aes ESSIV for an 8-byte cipher):
     * truncate as qemu does */
    size_t eb = c->essiv.block;
    uint8_t tmp[IV_BATCH * 16] = {0};
    for (size_t i = 0; i < n; i++) {
        st64_le(tmp + i * eb, sector + i);
    }
    int ret = run_blocks(essiv, tmp, tmp, n * eb);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        memcpy(ivs + i * c->niv, tmp + i * eb, MIN(eb, c->niv));
    }
    return ret;
}

static int native_sector(EVP_CIPHER_CTX *ctx, const uint8_t *iv, uint8_t *p, bool encrypt)
{
    int outl;
    return EVP_CipherInit_ex2(ctx, NULL, NULL, iv, encrypt, NULL) &&
                   EVP_CipherUpdate(ctx, p, &outl, p, LUKS_SECTOR_SIZE)
               ? 0
               : -EIO;
}

static int crypt_sectors(const LuksCipher *c, CryptRuns *r, const uint8_t *ivs, uint8_t *buf,
                         size_t n, bool encrypt)
{
    int ret = 0;
    for (size_t i = 0; ret == 0 && i < n; i++) {
        uint8_t *p = buf + i * LUKS_SECTOR_SIZE;
        const uint8_t *iv = ivs + i * c->niv;
        if (c->impl == IMPL_NATIVE) {
            ret = native_sector(r->native, iv, p, encrypt);
            continue;
        }
        switch (c->algs.mode) {
        case LUKS_MODE_CBC: ret = cbc_sector(&r->data, iv, p, LUKS_SECTOR_SIZE); break;
        case LUKS_MODE_CTR: ret = ctr_sector(&r->data, iv, p, LUKS_SECTOR_SIZE); break;
        case LUKS_MODE_XTS: ret = xts_sector(&r->data, &r->tweak, iv, p, LUKS_SECTOR_SIZE); break;
        default: ret = -EINVAL; break;
        }
    }
    return ret;
}

int luks_cipher_crypt(const LuksCipher *c, uint64_t sector, uint8_t *buf, size_t len, bool encrypt)
{
    if (len % LUKS_SECTOR_SIZE) {
        return -EINVAL;
    }
    CryptRuns r;
    int ret = runs_start(c, &r, encrypt);
    for (size_t done = 0; ret == 0 && c->niv == 0 && done < len;) {
        /* ECB: no IV, and sectors are whole blocks anyway */
        size_t n = MIN(len - done, (size_t)1 << 20);
        ret = run_blocks(&r.data, buf + done, buf + done, n);
        done += n;
    }
    uint8_t ivs[IV_BATCH * 16];
    for (size_t done = 0; ret == 0 && c->niv && done < len;) {
        size_t n = MIN((len - done) / LUKS_SECTOR_SIZE, IV_BATCH);
        ret = make_ivs(c, &r.essiv, sector + done / LUKS_SECTOR_SIZE, n, ivs);
        if (ret == 0) {
            ret = crypt_sectors(c, &r, ivs, buf + done, n, encrypt);
        }
        done += n * LUKS_SECTOR_SIZE;
    }
    runs_end(&r);
    return ret;
}
