/*
 * luks-crypto.c — the algorithms behind LUKS (see luks.h) other than the
 * sector cipher (luks-cipher.c): qemu's algorithm names, the checks qemu
 * makes on a combination, hashes, PBKDF2 and the anti-forensic splitter,
 * all on OpenSSL EVP.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

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

/* ---- OpenSSL hashes, fetched once ---- */

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_objs[LUKS_HASH__MAX];

static void md_init(void)
{
    for (int i = 0; i < LUKS_HASH__MAX; i++) {
        md_objs[i] = EVP_MD_fetch(NULL, hash_ossl[i], NULL);
    }
}

const EVP_MD *luks_md(LuksHash hash)
{
    pthread_once(&md_once, md_init);
    return (unsigned)hash < LUKS_HASH__MAX ? md_objs[hash] : NULL;
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
    if (a->mode == LUKS_MODE_XTS && luks_cipher_block_len(a->cipher) != 16) {
        error_setg(errp, "Unsupported cipher mode %s", luks_mode_name(a->mode));
        return -ENOTSUP;
    }
    if (!need_impl) {
        return 0;
    }
    if (luks_block_cipher_check(a->cipher, errp) < 0 ||
        (a->ivgen == LUKS_IVGEN_ESSIV && luks_block_cipher_check(a->ivgen_cipher, errp) < 0)) {
        return -ENOTSUP;
    }
    if (!luks_md(a->hash) || (a->has_ivgen_hash && !luks_md(a->ivgen_hash))) {
        error_setg(errp, "Hash algorithm %s not supported by OpenSSL",
                   luks_hash_name(luks_md(a->hash) ? a->ivgen_hash : a->hash));
        return -ENOTSUP;
    }
    return 0;
}

/* ---- hashes, PBKDF2, AF splitter ---- */

int luks_pbkdf2(LuksHash hash, const uint8_t *pass, size_t pass_len, const uint8_t *salt,
                size_t salt_len, uint64_t iterations, uint8_t *out, size_t out_len)
{
    const EVP_MD *md = luks_md(hash);
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

/* d = diffuse(...diffuse(s_0) ^ s_1 ...) over the first stripes-1 stripes. */
static int af_fold(const EVP_MD *md, const uint8_t *split, size_t key_len, uint32_t stripes,
                   uint8_t *d)
{
    memset(d, 0, key_len);
    for (uint32_t i = 0; i + 1 < stripes; i++) {
        luks_xor(d, split + (size_t)i * key_len, key_len);
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
    const EVP_MD *md = luks_md(hash);
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
    const EVP_MD *md = luks_md(hash);
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
