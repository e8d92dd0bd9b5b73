/*
 * luks-crypto.c — the algorithms behind LUKS (see luks.h), on OpenSSL EVP.
 *
 * Sector encryption follows dm-crypt / qemu's crypto/block.c: every 512-byte
 * sector is en/decrypted on its own, its IV made by the IV generator from
 * the sector number:
 *   plain    little-endian low 32 bits of the sector, zero-padded
 *   plain64  little-endian 64-bit sector, zero-padded
 *   essiv    E_salt(le64 sector, zero-padded to a block), salt = H(key),
 *            with a cipher whose key size is the digest size (dm-crypt's
 *            quirk: aes-128 + sha256 uses AES-256 for the IV)
 * ECB takes no IV.  CTR counts big-endian over the whole block (as
 * OpenSSL and nettle do).  XTS is IEEE P1619 with the tweak = the IV and
 * the key halves data|tweak.
 *
 * OpenSSL gaps filled here (both checked against OpenSSL's own modes in the
 * unit tests): XTS over any 16-byte block cipher (OpenSSL has no
 * AES-192-XTS) and CTR over any block cipher (no CAST5-CTR).  CAST5 lives
 * in OpenSSL 3's legacy provider, loaded into a private library context
 * so the default context stays untouched.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/provider.h>

#include "common/util.h"
#include "formats/luks-int.h"

/* ---- names (qemu's QAPI enum strings) ---- */

static const char *const cipher_names[LUKS_CIPHER__MAX] = {
    "aes-128",     "aes-192",     "aes-256",     "des",         "3des",        "cast5-128",
    "serpent-128", "serpent-192", "serpent-256", "twofish-128", "twofish-192", "twofish-256",
};
static const size_t cipher_key_lens[LUKS_CIPHER__MAX] = {16, 24, 32, 8,  24, 16,
                                                         16, 24, 32, 16, 24, 32};
static const char *const mode_names[LUKS_MODE__MAX] = {"ecb", "cbc", "xts", "ctr"};
static const char *const ivgen_names[LUKS_IVGEN__MAX] = {"plain", "plain64", "essiv"};
static const char *const hash_names[LUKS_HASH__MAX] = {"md5",    "sha1",   "sha224",   "sha256",
                                                       "sha384", "sha512", "ripemd160"};
static const char *const hash_ossl[LUKS_HASH__MAX] = {"MD5",    "SHA1",   "SHA224",   "SHA256",
                                                      "SHA384", "SHA512", "RIPEMD160"};
static const size_t hash_lens[LUKS_HASH__MAX] = {16, 20, 28, 32, 48, 64, 20};

static int lookup(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++) {
        if (!strcmp(names[i], name)) {
            return i;
        }
    }
    return -1;
}

const char *luks_cipher_name(LuksCipherAlg alg)
{
    return (unsigned)alg < LUKS_CIPHER__MAX ? cipher_names[alg] : "?";
}
const char *luks_mode_name(LuksMode mode)
{
    return (unsigned)mode < LUKS_MODE__MAX ? mode_names[mode] : "?";
}
const char *luks_ivgen_name(LuksIvgen ivgen)
{
    return (unsigned)ivgen < LUKS_IVGEN__MAX ? ivgen_names[ivgen] : "?";
}
const char *luks_hash_name(LuksHash hash)
{
    return (unsigned)hash < LUKS_HASH__MAX ? hash_names[hash] : "?";
}
int luks_cipher_lookup(const char *name)
{
    return lookup(cipher_names, LUKS_CIPHER__MAX, name);
}
int luks_mode_lookup(const char *name)
{
    return lookup(mode_names, LUKS_MODE__MAX, name);
}
int luks_ivgen_lookup(const char *name)
{
    return lookup(ivgen_names, LUKS_IVGEN__MAX, name);
}
int luks_hash_lookup(const char *name)
{
    return lookup(hash_names, LUKS_HASH__MAX, name);
}
size_t luks_cipher_key_len(LuksCipherAlg alg)
{
    return (unsigned)alg < LUKS_CIPHER__MAX ? cipher_key_lens[alg] : 0;
}
size_t luks_hash_digest_len(LuksHash hash)
{
    return (unsigned)hash < LUKS_HASH__MAX ? hash_lens[hash] : 0;
}

/* ---- OpenSSL objects, fetched once ---- */

static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_objs[LUKS_HASH__MAX];
static OSSL_LIB_CTX *legacy_ctx; /* CAST5; NULL when the provider is missing */

static void ossl_init(void)
{
    for (int i = 0; i < LUKS_HASH__MAX; i++) {
        md_objs[i] = EVP_MD_fetch(NULL, hash_ossl[i], NULL);
    }
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    if (ctx && OSSL_PROVIDER_load(ctx, "legacy")) {
        legacy_ctx = ctx;
    } else {
        OSSL_LIB_CTX_free(ctx);
    }
}

static const EVP_MD *md_get(LuksHash hash)
{
    pthread_once(&ossl_once, ossl_init);
    return (unsigned)hash < LUKS_HASH__MAX ? md_objs[hash] : NULL;
}

/* Block cipher "family" of an algorithm, as OpenSSL names it. */
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

/* Fetch "<family>-<mode>" (NULL if OpenSSL lacks it). Caller frees. */
static EVP_CIPHER *cipher_fetch(LuksCipherAlg alg, const char *mode)
{
    pthread_once(&ossl_once, ossl_init);
    const char *fam = ossl_family(alg);
    if (!fam) {
        return NULL;
    }
    char name[32];
    snprintf(name, sizeof(name), "%s-%s", fam, mode);
    bool legacy = alg == LUKS_CIPHER_CAST5_128;
    if (legacy && !legacy_ctx) {
        return NULL;
    }
    return EVP_CIPHER_fetch(legacy ? legacy_ctx : NULL, name, NULL);
}

static size_t cipher_block_len(LuksCipherAlg alg)
{
    return alg == LUKS_CIPHER_CAST5_128 ? 8 : 16;
}

/* The ESSIV cipher: same family, key size = digest size (qemu's rules). */
static int essiv_cipher(LuksCipherAlg cipher, LuksHash hash, LuksCipherAlg *out, Error **errp)
{
    size_t dlen = luks_hash_digest_len(hash);
    if (dlen == luks_cipher_key_len(cipher)) {
        *out = cipher;
        return 0;
    }
    LuksCipherAlg base;
    const char *family;
    switch (cipher) {
    case LUKS_CIPHER_AES_128:
    case LUKS_CIPHER_AES_192:
    case LUKS_CIPHER_AES_256: base = LUKS_CIPHER_AES_128, family = "AES"; break;
    case LUKS_CIPHER_SERPENT_128:
    case LUKS_CIPHER_SERPENT_192:
    case LUKS_CIPHER_SERPENT_256: base = LUKS_CIPHER_SERPENT_128, family = "Serpent"; break;
    case LUKS_CIPHER_TWOFISH_128:
    case LUKS_CIPHER_TWOFISH_192:
    case LUKS_CIPHER_TWOFISH_256: base = LUKS_CIPHER_TWOFISH_128, family = "Twofish"; break;
    default:
        error_setg(errp, "Cipher %s not supported with essiv", luks_cipher_name(cipher));
        return -ENOTSUP;
    }
    for (int i = 0; i < 3; i++) {
        if (luks_cipher_key_len(base + i) == dlen) {
            *out = base + i;
            return 0;
        }
    }
    error_setg(errp, "No %s cipher with key size %zu available", family, dlen);
    return -ENOTSUP;
}

/* Refuse what OpenSSL cannot do, naming the reason. */
static int check_available(LuksCipherAlg alg, Error **errp)
{
    if (alg >= LUKS_CIPHER_SERPENT_128 && alg <= LUKS_CIPHER_TWOFISH_256) {
        error_setg(errp,
                   "Cipher algorithm '%s' is not supported: OpenSSL provides no %s cipher "
                   "(use an aes-* cipher)",
                   luks_cipher_name(alg), alg <= LUKS_CIPHER_SERPENT_256 ? "Serpent" : "Twofish");
        return -ENOTSUP;
    }
    EVP_CIPHER *c = cipher_fetch(alg, "ECB");
    if (!c) {
        error_setg(errp,
                   "Cipher algorithm '%s' is not supported: OpenSSL's legacy provider "
                   "is not available",
                   luks_cipher_name(alg));
        return -ENOTSUP;
    }
    EVP_CIPHER_free(c);
    return 0;
}

int luks_algs_check(LuksAlgs *a, bool need_impl, Error **errp)
{
    if (a->cipher == LUKS_CIPHER_DES || a->cipher == LUKS_CIPHER_3DES) {
        error_setg(errp, "Algorithm '%s' not supported", luks_cipher_name(a->cipher));
        return -ENOTSUP;
    }
    a->ivgen_cipher = a->cipher;
    if (a->ivgen == LUKS_IVGEN_ESSIV &&
        essiv_cipher(a->cipher, a->ivgen_hash, &a->ivgen_cipher, errp) < 0) {
        return -ENOTSUP;
    }
    if (a->mode == LUKS_MODE_XTS && cipher_block_len(a->cipher) != 16) {
        error_setg(errp, "Unsupported cipher mode %s", luks_mode_name(a->mode));
        return -ENOTSUP;
    }
    if (!need_impl) {
        return 0;
    }
    if (check_available(a->cipher, errp) < 0 ||
        (a->ivgen == LUKS_IVGEN_ESSIV && check_available(a->ivgen_cipher, errp) < 0)) {
        return -ENOTSUP;
    }
    if (!md_get(a->hash) || (a->has_ivgen_hash && !md_get(a->ivgen_hash))) {
        error_setg(errp, "Hash algorithm %s not supported by OpenSSL",
                   luks_hash_name(md_get(a->hash) ? a->ivgen_hash : a->hash));
        return -ENOTSUP;
    }
    return 0;
}

/* ---- hashes, PBKDF2, AF splitter ---- */

int luks_pbkdf2(LuksHash hash, const uint8_t *pass, size_t pass_len, const uint8_t *salt,
                size_t salt_len, uint64_t iterations, uint8_t *out, size_t out_len)
{
    const EVP_MD *md = md_get(hash);
    if (!md || iterations == 0 || iterations > INT32_MAX || pass_len > INT32_MAX) {
        return -EINVAL;
    }
    static const char empty[1];
    int ok = PKCS5_PBKDF2_HMAC(pass_len ? (const char *)pass : empty, (int)pass_len, salt,
                               (int)salt_len, (int)iterations, md, (int)out_len, out);
    return ok ? 0 : -EIO;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0) {
        return clock_ns();
    }
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define RATE_CACHE_BLOCKS 8
static uint64_t rate_cache[LUKS_HASH__MAX][RATE_CACHE_BLOCKS + 1];
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Like qemu's qcrypto_pbkdf2_count_iters (grow the count until a run takes
 * long enough, then scale to one second), but timed on the nanosecond
 * thread clock and for ~50 ms rather than 500 ms: the answer is as good
 * and `create` is ten times faster.  The cost depends on the hash and the
 * number of digest-sized output blocks, so that is the cache key.
 */
uint64_t luks_pbkdf2_rate(LuksHash hash, size_t pass_len, size_t out_len, Error **errp)
{
    size_t dlen = luks_hash_digest_len(hash);
    size_t blocks = dlen ? DIV_ROUND_UP(out_len, dlen) : 0;
    bool cacheable = blocks <= RATE_CACHE_BLOCKS && pass_len <= 64;
    if (cacheable) {
        pthread_mutex_lock(&rate_lock);
        uint64_t r = rate_cache[hash][blocks];
        pthread_mutex_unlock(&rate_lock);
        if (r) {
            return r;
        }
    }
    uint8_t pass[64] = {0}, salt[LUKS_SALT_LEN] = {0}, out[LUKS_MAX_KEY_BYTES * 2];
    uint64_t iters = 1024, rate = 0;
    out_len = MIN(out_len, sizeof(out));
    for (;;) {
        int64_t t0 = thread_cpu_ns();
        if (luks_pbkdf2(hash, pass, MIN(pass_len, sizeof(pass)), salt, sizeof(salt), iters, out,
                        out_len) < 0) {
            error_setg(errp, "PBKDF2 with %s failed", luks_hash_name(hash));
            return 0;
        }
        int64_t ns = thread_cpu_ns() - t0;
        if (ns >= 40 * 1000000LL || iters >= (1ULL << 30)) {
            rate = iters * 1000000000ULL / (uint64_t)MAX(ns, 1);
            break;
        }
        /* aim at ~60 ms, growing at most 16x per round */
        iters = ns < 4000000 ? iters * 16 : iters * 60000000ULL / (uint64_t)ns + 1;
    }
    if (cacheable) {
        pthread_mutex_lock(&rate_lock);
        rate_cache[hash][blocks] = rate;
        pthread_mutex_unlock(&rate_lock);
    }
    return MAX(rate, 1);
}

/* LUKS "diffuse": hash each digest-sized piece with its big-endian index. */
static int af_diffuse(const EVP_MD *md, uint8_t *block, size_t len)
{
    size_t dlen = (size_t)EVP_MD_get_size(md);
    uint8_t digest[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ret = ctx ? 0 : -ENOMEM;
    for (size_t i = 0; ret == 0 && i * dlen < len; i++) {
        size_t n = MIN(dlen, len - i * dlen);
        uint8_t be[4];
        st32_be(be, (uint32_t)i);
        if (!EVP_DigestInit_ex(ctx, md, NULL) || !EVP_DigestUpdate(ctx, be, 4) ||
            !EVP_DigestUpdate(ctx, block + i * dlen, n) || !EVP_DigestFinal_ex(ctx, digest, NULL)) {
            ret = -EIO;
            break;
        }
        memcpy(block + i * dlen, digest, n);
    }
    EVP_MD_CTX_free(ctx);
    return ret;
}

static void xor_into(uint8_t *dst, const uint8_t *src, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        dst[i] ^= src[i];
    }
}

/* d = diffuse(...diffuse(s_0) ^ s_1 ...) over the first stripes-1 stripes. */
static int af_fold(const EVP_MD *md, const uint8_t *split, size_t key_len, uint32_t stripes,
                   uint8_t *d)
{
    memset(d, 0, key_len);
    for (uint32_t i = 0; i + 1 < stripes; i++) {
        xor_into(d, split + (size_t)i * key_len, key_len);
        int ret = af_diffuse(md, d, key_len);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

int luks_af_split(LuksHash hash, const uint8_t *key, size_t key_len, uint32_t stripes,
                  uint8_t *split)
{
    const EVP_MD *md = md_get(hash);
    uint8_t d[LUKS_MAX_KEY_BYTES];
    if (!md || stripes == 0 || key_len > sizeof(d)) {
        return -EINVAL;
    }
    int ret = af_fold(md, split, key_len, stripes, d);
    if (ret == 0) {
        uint8_t *last = split + (size_t)(stripes - 1) * key_len;
        for (size_t i = 0; i < key_len; i++) {
            last[i] = d[i] ^ key[i];
        }
    }
    explicit_bzero(d, sizeof(d));
    return ret;
}

int luks_af_merge(LuksHash hash, const uint8_t *split, size_t key_len, uint32_t stripes,
                  uint8_t *key)
{
    const EVP_MD *md = md_get(hash);
    uint8_t d[LUKS_MAX_KEY_BYTES];
    if (!md || stripes == 0 || key_len > sizeof(d)) {
        return -EINVAL;
    }
    int ret = af_fold(md, split, key_len, stripes, d);
    if (ret == 0) {
        const uint8_t *last = split + (size_t)(stripes - 1) * key_len;
        for (size_t i = 0; i < key_len; i++) {
            key[i] = d[i] ^ last[i];
        }
    }
    explicit_bzero(d, sizeof(d));
    return ret;
}

/* ---- the sector cipher ---- */

typedef enum { IMPL_NATIVE, IMPL_XTS_ON_ECB, IMPL_CTR_ON_ECB } CipherImpl;

bool luks_force_generic_modes;

struct LuksCipher {
    LuksAlgs algs;
    CipherImpl impl;
    EVP_CIPHER *evp;   /* the mode itself (NATIVE) or ECB (the generic modes) */
    EVP_CIPHER *essiv; /* ECB of the ESSIV cipher, or NULL */
    size_t niv;        /* IV bytes (0 for ECB) */
    size_t block;      /* cipher block bytes */
    uint8_t key[LUKS_MAX_KEY_BYTES];
    size_t key_len;
    uint8_t essiv_key[64];
};

static const char *mode_ossl(LuksMode m)
{
    static const char *const names[LUKS_MODE__MAX] = {"ECB", "CBC", "XTS", "CTR"};
    return names[m];
}

/* ESSIV: the IV cipher keyed with H(key), truncated to its key size. */
static int essiv_setup(LuksCipher *c, const LuksAlgs *a, const uint8_t *key, size_t key_len)
{
    const EVP_MD *md = md_get(a->ivgen_hash);
    size_t klen = luks_cipher_key_len(a->ivgen_cipher);
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    c->essiv = cipher_fetch(a->ivgen_cipher, "ECB");
    int ret = c->essiv && md && EVP_Digest(key, key_len, digest, &dlen, md, NULL) && dlen >= klen &&
                      klen <= sizeof(c->essiv_key)
                  ? 0
                  : -ENOTSUP;
    if (ret == 0) {
        memcpy(c->essiv_key, digest, klen);
    }
    explicit_bzero(digest, sizeof(digest));
    return ret;
}

LuksCipher *luks_cipher_new(const LuksAlgs *a, const uint8_t *key, size_t key_len, Error **errp)
{
    size_t want = luks_cipher_key_len(a->cipher) * (a->mode == LUKS_MODE_XTS ? 2 : 1);
    if (key_len != want || key_len > LUKS_MAX_KEY_BYTES) {
        error_setg(errp, "Cipher %s-%s needs a %zu-byte key, not %zu", luks_cipher_name(a->cipher),
                   luks_mode_name(a->mode), want, key_len);
        return NULL;
    }
    LuksCipher *c = XNEW(LuksCipher);
    c->algs = *a;
    c->key_len = key_len;
    memcpy(c->key, key, key_len);
    c->block = cipher_block_len(a->cipher);
    c->niv = a->mode == LUKS_MODE_ECB ? 0 : c->block;
    bool generic_ok = a->mode == LUKS_MODE_XTS || a->mode == LUKS_MODE_CTR;
    c->evp =
        generic_ok && luks_force_generic_modes ? NULL : cipher_fetch(a->cipher, mode_ossl(a->mode));
    if (!c->evp && generic_ok) {
        c->impl = a->mode == LUKS_MODE_XTS ? IMPL_XTS_ON_ECB : IMPL_CTR_ON_ECB;
        c->evp = cipher_fetch(a->cipher, "ECB");
    }
    if (a->ivgen == LUKS_IVGEN_ESSIV && c->niv && essiv_setup(c, a, key, key_len) < 0) {
        EVP_CIPHER_free(c->essiv);
        c->essiv = NULL;
    }
    if (!c->evp || (a->ivgen == LUKS_IVGEN_ESSIV && c->niv && !c->essiv)) {
        error_setg(errp, "Cipher %s in mode %s is not available in OpenSSL",
                   luks_cipher_name(a->cipher), luks_mode_name(a->mode));
        luks_cipher_free(c);
        return NULL;
    }
    return c;
}

void luks_cipher_free(LuksCipher *c)
{
    if (c) {
        EVP_CIPHER_free(c->evp);
        EVP_CIPHER_free(c->essiv);
        explicit_bzero(c, sizeof(*c));
        free(c);
    }
}

/* IVs for n sectors from `sector` into ivs (n * niv bytes). */
static int make_ivs(const LuksCipher *c, uint64_t sector, size_t n, uint8_t *ivs)
{
    memset(ivs, 0, n * c->niv);
    for (size_t i = 0; i < n; i++) {
        uint64_t s = sector + i;
        uint8_t le[8];
        st64_le(le, c->algs.ivgen == LUKS_IVGEN_PLAIN ? (s & 0xffffffffu) : s);
        size_t width = c->algs.ivgen == LUKS_IVGEN_PLAIN ? 4 : 8;
        memcpy(ivs + i * c->niv, le, MIN(width, c->niv));
    }
    if (c->algs.ivgen != LUKS_IVGEN_ESSIV) {
        return 0;
    }
    /* ESSIV: encrypt the (zero-padded) sector numbers; its block may be
     * larger than niv (aes ESSIV for cast5): truncate as qemu does */
    size_t eb = cipher_block_len(c->algs.ivgen_cipher);
    uint8_t *tmp = xcalloc(n, eb);
    for (size_t i = 0; i < n; i++) {
        st64_le(tmp + i * eb, sector + i);
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0;
    int ok = ctx && EVP_EncryptInit_ex2(ctx, c->essiv, c->essiv_key, NULL, NULL) &&
             EVP_CIPHER_CTX_set_padding(ctx, 0) &&
             EVP_EncryptUpdate(ctx, tmp, &outl, tmp, (int)(n * eb));
    EVP_CIPHER_CTX_free(ctx);
    for (size_t i = 0; ok && i < n; i++) {
        memcpy(ivs + i * c->niv, tmp + i * eb, MIN(eb, c->niv));
    }
    free(tmp);
    return ok ? 0 : -EIO;
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

/* One sector of XTS built on ECB contexts: data (k1) and tweak (k2). */
static int xts_sector(EVP_CIPHER_CTX *data, EVP_CIPHER_CTX *tweak, const uint8_t *iv, uint8_t *buf,
                      size_t len)
{
    uint8_t t[16], tw[LUKS_SECTOR_SIZE];
    int outl;
    if (!EVP_EncryptUpdate(tweak, t, &outl, iv, 16)) {
        return -EIO;
    }
    for (size_t off = 0; off < len; off += 16) {
        memcpy(tw + off, t, 16);
        xts_mult_x(t);
    }
    xor_into(buf, tw, len);
    if (!EVP_CipherUpdate(data, buf, &outl, buf, (int)len)) {
        return -EIO;
    }
    xor_into(buf, tw, len);
    return 0;
}

/* One sector of CTR built on an ECB encryption context. */
static int ctr_sector(EVP_CIPHER_CTX *ecb, const uint8_t *iv, size_t block, uint8_t *buf,
                      size_t len)
{
    uint8_t ks[LUKS_SECTOR_SIZE], ctr[16];
    int outl;
    memcpy(ctr, iv, block);
    for (size_t off = 0; off < len; off += block) {
        memcpy(ks + off, ctr, block);
        for (size_t i = block; i-- > 0 && ++ctr[i] == 0;) {
        }
    }
    if (!EVP_EncryptUpdate(ecb, ks, &outl, ks, (int)len)) {
        return -EIO;
    }
    xor_into(buf, ks, len);
    return 0;
}

static EVP_CIPHER_CTX *ctx_new(const EVP_CIPHER *evp, const uint8_t *key, int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx && EVP_CipherInit_ex2(ctx, evp, key, NULL, enc, NULL) &&
        EVP_CIPHER_CTX_set_padding(ctx, 0)) {
        return ctx;
    }
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
}

static int crypt_sectors(const LuksCipher *c, EVP_CIPHER_CTX *ctx, EVP_CIPHER_CTX *tweak,
                         const uint8_t *ivs, uint8_t *buf, size_t n, bool encrypt)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = buf + i * LUKS_SECTOR_SIZE;
        const uint8_t *iv = ivs + i * c->niv;
        int outl, ret = 0;
        switch (c->impl) {
        case IMPL_NATIVE:
            if (!EVP_CipherInit_ex2(ctx, NULL, NULL, iv, encrypt, NULL) ||
                !EVP_CipherUpdate(ctx, p, &outl, p, LUKS_SECTOR_SIZE)) {
                ret = -EIO;
            }
            break;
        case IMPL_XTS_ON_ECB: ret = xts_sector(ctx, tweak, iv, p, LUKS_SECTOR_SIZE); break;
        case IMPL_CTR_ON_ECB: ret = ctr_sector(ctx, iv, c->block, p, LUKS_SECTOR_SIZE); break;
        }
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

#define IV_BATCH 64 /* sectors whose IVs are made at once */

int luks_cipher_crypt(const LuksCipher *c, uint64_t sector, uint8_t *buf, size_t len, bool encrypt)
{
    if (len % LUKS_SECTOR_SIZE) {
        return -EINVAL;
    }
    size_t half = c->key_len / 2;
    /* CTR is symmetric: its generic form always encrypts the counter */
    int enc = c->impl == IMPL_CTR_ON_ECB ? 1 : encrypt;
    EVP_CIPHER_CTX *ctx = ctx_new(c->evp, c->key, enc);
    EVP_CIPHER_CTX *tweak = c->impl == IMPL_XTS_ON_ECB ? ctx_new(c->evp, c->key + half, 1) : NULL;
    int ret = ctx && (c->impl != IMPL_XTS_ON_ECB || tweak) ? 0 : -EIO;
    for (size_t done = 0; ret == 0 && c->niv == 0 && done < len;) {
        /* ECB: no IV, sectors are independent blocks anyway */
        int outl, n = (int)MIN(len - done, (size_t)1 << 20);
        ret = EVP_CipherUpdate(ctx, buf + done, &outl, buf + done, n) ? 0 : -EIO;
        done += (size_t)n;
    }
    uint8_t ivs[IV_BATCH * 16];
    for (size_t done = 0; ret == 0 && c->niv && done < len;) {
        size_t n = MIN((len - done) / LUKS_SECTOR_SIZE, IV_BATCH);
        ret = make_ivs(c, sector + done / LUKS_SECTOR_SIZE, n, ivs);
        if (ret == 0) {
            ret = crypt_sectors(c, ctx, tweak, ivs, buf + done, n, encrypt);
        }
        done += n * LUKS_SECTOR_SIZE;
    }
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_CTX_free(tweak);
    return ret;
}
