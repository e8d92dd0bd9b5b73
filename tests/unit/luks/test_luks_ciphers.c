/*
 * test_luks_ciphers.c — unit tests for the LUKS sector cipher
 * (src/formats/luks-cipher.c): Serpent and Twofish against their published
 * known answers, every mode built on a block cipher against OpenSSL's own
 * modes (AES) and against nettle's own modes (Serpent, Twofish), the nettle
 * backend against OpenSSL for AES and CAST5, round trips through every
 * cipher/mode/IV generator, and whole LUKS volumes with the new ciphers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nettle/cbc.h>
#include <nettle/ctr.h>
#include <nettle/nettle-meta.h>
#include <nettle/serpent.h>
#include <nettle/sha2.h>
#include <nettle/twofish.h>
#include <nettle/xts.h>
#include <openssl/crypto.h>
#include <openssl/provider.h>

#include "blocklayer/secret_store.h"
#include "common/util.h"
#include "formats/luks-int.h"
#include "memio.h"

#define SECTORS 80 /* more than one IV batch (64 sectors) */
#define BUF     (SECTORS * LUKS_SECTOR_SIZE)

static size_t hex(const char *h, uint8_t *out)
{
    size_t n = 0;
    for (; h[2 * n]; n++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * n, "%2x", &v), 1);
        out[n] = (uint8_t)v;
    }
    return n;
}

static LuksAlgs algs(LuksCipherAlg c, LuksMode m, LuksIvgen iv, LuksHash ivh)
{
    LuksAlgs a = {.cipher = c, .mode = m, .ivgen = iv, .hash = LUKS_HASH_SHA256};
    a.has_ivgen_hash = iv == LUKS_IVGEN_ESSIV;
    a.ivgen_hash = ivh;
    assert_int_equal(luks_algs_check(&a, true, NULL), 0);
    return a;
}

static size_t key_len(const LuksAlgs *a)
{
    return luks_cipher_key_len(a->cipher) * (a->mode == LUKS_MODE_XTS ? 2 : 1);
}

static void crypt_buf(const LuksAlgs *a, const uint8_t *key, uint64_t sector, uint8_t *buf,
                      size_t len, bool enc)
{
    Error *err = NULL;
    LuksCipher *c = luks_cipher_new(a, key, key_len(a), &err);
    if (!c) {
        fail_msg("%s-%s: %s", luks_cipher_name(a->cipher), luks_mode_name(a->mode),
                 error_get_pretty(err));
    }
    assert_int_equal(luks_cipher_crypt(c, sector, buf, len, enc), 0);
    luks_cipher_free(c);
}

/* ---- known answers ---- */

typedef struct Kat {
    LuksCipherAlg alg;
    const char *key, *pt, *ct;
} Kat;

/*
 * Serpent: NESSIE's verified vectors (Serpent-{128,192,256}-128.verified.
 * test-vectors: set 1 vectors 0 and 1 / 0 and 3, set 3 vectors 1 and 2).
 * Twofish: the Twofish paper's ecb_ival.txt (the three key sizes) and
 * ecb_tbl.txt (I=2, I=3 for 128 bits, I=4 for 256 bits).
 */
static const Kat kats[] = {
    {LUKS_CIPHER_SERPENT_128, "80000000000000000000000000000000",
     "00000000000000000000000000000000", "264e5481eff42a4606abda06c0bfda3d"},
    {LUKS_CIPHER_SERPENT_128, "40000000000000000000000000000000",
     "00000000000000000000000000000000", "4a231b3bc727993407ac6ec8350e8524"},
    {LUKS_CIPHER_SERPENT_192, "800000000000000000000000000000000000000000000000",
     "00000000000000000000000000000000", "9e274ead9b737bb21efcfca548602689"},
    {LUKS_CIPHER_SERPENT_192, "100000000000000000000000000000000000000000000000",
     "00000000000000000000000000000000", "bec1e37824cf721e5d87f6cb4ebfb9be"},
    {LUKS_CIPHER_SERPENT_256, "0101010101010101010101010101010101010101010101010101010101010101",
     "01010101010101010101010101010101", "ec9723b15b2a6489f84c4524fffc2748"},
    {LUKS_CIPHER_SERPENT_256, "0202020202020202020202020202020202020202020202020202020202020202",
     "02020202020202020202020202020202", "1187f485538514476184e567da0421c7"},
    {LUKS_CIPHER_TWOFISH_128, "00000000000000000000000000000000",
     "00000000000000000000000000000000", "9f589f5cf6122c32b6bfec2f2ae8c35a"},
    {LUKS_CIPHER_TWOFISH_128, "00000000000000000000000000000000",
     "9f589f5cf6122c32b6bfec2f2ae8c35a", "d491db16e7b1c39e86cb086b789f5419"},
    {LUKS_CIPHER_TWOFISH_128, "9f589f5cf6122c32b6bfec2f2ae8c35a",
     "d491db16e7b1c39e86cb086b789f5419", "019f9809de1711858faac3a3ba20fbc3"},
    {LUKS_CIPHER_TWOFISH_192, "0123456789abcdeffedcba98765432100011223344556677",
     "00000000000000000000000000000000", "cfd1d2e5a9be9cdf501f13b892bd2248"},
    {LUKS_CIPHER_TWOFISH_256, "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff",
     "00000000000000000000000000000000", "37527be0052334b89f0cfccae87cfa20"},
    {LUKS_CIPHER_TWOFISH_256, "d43bb7556ea32e46f2a282b7d45b4e0d57ff739d4dc92c1bd7fc01700cc8216f",
     "90afe91bb288544f2c32dc239b2635e6", "6cb4561c40bf0a9705931cb6d408e7fa"},
};

/* ECB over a sector of the plaintext repeated: every block is the answer. */
static void test_known_answers(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(kats); i++) {
        uint8_t key[32], pt[16], ct[16], sector[LUKS_SECTOR_SIZE];
        assert_int_equal(hex(kats[i].key, key), luks_cipher_key_len(kats[i].alg));
        hex(kats[i].pt, pt);
        hex(kats[i].ct, ct);
        for (size_t off = 0; off < sizeof(sector); off += 16) {
            memcpy(sector + off, pt, 16);
        }
        LuksAlgs a = algs(kats[i].alg, LUKS_MODE_ECB, LUKS_IVGEN_PLAIN64, 0);
        crypt_buf(&a, key, 0, sector, sizeof(sector), true);
        for (size_t off = 0; off < sizeof(sector); off += 16) {
            if (memcmp(sector + off, ct, 16)) {
                fail_msg("%s vector %zu: wrong ciphertext", luks_cipher_name(kats[i].alg), i);
            }
        }
        crypt_buf(&a, key, 0, sector, sizeof(sector), false);
        for (size_t off = 0; off < sizeof(sector); off += 16) {
            assert_memory_equal(sector + off, pt, 16);
        }
    }
}

/* ---- the generic modes and the nettle backend against OpenSSL ---- */

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 9)) ^ (i >> 3));
    }
}

/*
 * For a cipher OpenSSL has in the mode itself, the generic form (on
 * OpenSSL's ECB, and on nettle's block cipher) gives the same bytes in
 * every mode and IV generator, both ways.
 */
static void compare_forms(LuksCipherAlg c, LuksMode m, LuksIvgen iv, LuksHash ivh)
{
    static uint8_t key[64], plain[BUF], ref[BUF], other[BUF];
    fill(key, sizeof(key), c * 5 + m);
    fill(plain, sizeof(plain), 3);
    LuksAlgs a = algs(c, m, iv, ivh);
    memcpy(ref, plain, BUF);
    crypt_buf(&a, key, 4294967290ULL, ref, BUF, true); /* plain wraps inside */
    for (int form = 0; form < 2; form++) {
        luks_force_generic_modes = form == 0;
        luks_force_nettle = form == 1;
        memcpy(other, plain, BUF);
        crypt_buf(&a, key, 4294967290ULL, other, BUF, true);
        if (memcmp(ref, other, BUF)) {
            fail_msg("%s-%s-%s: %s form differs from OpenSSL's", luks_cipher_name(c),
                     luks_mode_name(m), luks_ivgen_name(iv), form ? "nettle" : "generic");
        }
        crypt_buf(&a, key, 4294967290ULL, other, BUF, false);
        luks_force_generic_modes = luks_force_nettle = false;
        assert_memory_equal(other, plain, BUF);
    }
}

static void test_forms_match_openssl(void **state)
{
    static const LuksCipherAlg aes[] = {LUKS_CIPHER_AES_128, LUKS_CIPHER_AES_192,
                                        LUKS_CIPHER_AES_256};
    for (size_t c = 0; c < ARRAY_SIZE(aes); c++) {
        for (int m = 0; m < LUKS_MODE__MAX; m++) {
            for (int iv = 0; iv < LUKS_IVGEN__MAX; iv++) {
                compare_forms(aes[c], m, iv, LUKS_HASH_SHA256);
            }
        }
    }
    compare_forms(LUKS_CIPHER_AES_128, LUKS_MODE_CBC, LUKS_IVGEN_ESSIV, LUKS_HASH_MD5);
}

/* CAST5: OpenSSL's (legacy provider) and nettle's give the same bytes. */
static void test_cast5_backends(void **state)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *prov = ctx ? OSSL_PROVIDER_load(ctx, "legacy") : NULL;
    bool legacy = prov != NULL;
    if (prov) {
        OSSL_PROVIDER_unload(prov);
    }
    OSSL_LIB_CTX_free(ctx);
    if (!legacy) {
        print_message("OpenSSL's legacy provider is missing: CAST5 comes from nettle alone\n");
        skip();
    }
    static const LuksMode modes[] = {LUKS_MODE_ECB, LUKS_MODE_CBC, LUKS_MODE_CTR};
    for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
        compare_forms(LUKS_CIPHER_CAST5_128, modes[m], LUKS_IVGEN_PLAIN64, 0);
        compare_forms(LUKS_CIPHER_CAST5_128, modes[m], LUKS_IVGEN_ESSIV, LUKS_HASH_MD5);
    }
}

/* ---- Serpent and Twofish against nettle's own modes ---- */

static const struct {
    LuksCipherAlg alg;
    const struct nettle_cipher *meta;
} nettle_algs[] = {
    {LUKS_CIPHER_SERPENT_128, &nettle_serpent128}, {LUKS_CIPHER_SERPENT_192, &nettle_serpent192},
    {LUKS_CIPHER_SERPENT_256, &nettle_serpent256}, {LUKS_CIPHER_TWOFISH_128, &nettle_twofish128},
    {LUKS_CIPHER_TWOFISH_192, &nettle_twofish192}, {LUKS_CIPHER_TWOFISH_256, &nettle_twofish256},
};

static const struct nettle_cipher *meta_of(LuksCipherAlg alg)
{
    for (size_t i = 0; i < ARRAY_SIZE(nettle_algs); i++) {
        if (nettle_algs[i].alg == alg) {
            return nettle_algs[i].meta;
        }
    }
    fail();
    return NULL;
}

/* The IV of one sector, computed here with nettle (sha256 ESSIV only). */
static void ref_iv(const LuksAlgs *a, const uint8_t *key, size_t klen, uint64_t s, uint8_t *iv)
{
    memset(iv, 0, 16);
    st64_le(iv, a->ivgen == LUKS_IVGEN_PLAIN ? (s & 0xffffffffu) : s);
    if (a->ivgen == LUKS_IVGEN_PLAIN) {
        memset(iv + 4, 0, 4);
    }
    if (a->ivgen != LUKS_IVGEN_ESSIV) {
        return;
    }
    assert_int_equal(a->ivgen_hash, LUKS_HASH_SHA256);
    struct sha256_ctx h;
    uint8_t salt[32];
    sha256_init(&h);
    sha256_update(&h, klen, key);
    sha256_digest(&h, sizeof(salt), salt);
    const struct nettle_cipher *m = meta_of(a->ivgen_cipher);
    void *ctx = xmalloc(m->context_size);
    m->set_encrypt_key(ctx, salt);
    m->encrypt(ctx, 16, iv, iv);
    free(ctx);
}

/* The sectors as nettle's ECB/CBC/CTR/XTS make them. */
static void ref_crypt(const LuksAlgs *a, const uint8_t *key, uint64_t sector, uint8_t *buf)
{
    const struct nettle_cipher *m = meta_of(a->cipher);
    size_t klen = luks_cipher_key_len(a->cipher);
    void *c1 = xmalloc(m->context_size), *c2 = xmalloc(m->context_size);
    m->set_encrypt_key(c1, key);
    if (a->mode == LUKS_MODE_XTS) {
        m->set_encrypt_key(c2, key + klen);
    }
    for (size_t i = 0; i < SECTORS; i++) {
        uint8_t iv[16], *p = buf + i * LUKS_SECTOR_SIZE;
        ref_iv(a, key, key_len(a), sector + i, iv);
        switch (a->mode) {
        case LUKS_MODE_ECB: m->encrypt(c1, LUKS_SECTOR_SIZE, p, p); break;
        case LUKS_MODE_CBC: cbc_encrypt(c1, m->encrypt, 16, iv, LUKS_SECTOR_SIZE, p, p); break;
        case LUKS_MODE_CTR: ctr_crypt(c1, m->encrypt, 16, iv, LUKS_SECTOR_SIZE, p, p); break;
        case LUKS_MODE_XTS:
            xts_encrypt_message(c1, c2, m->encrypt, iv, LUKS_SECTOR_SIZE, p, p);
            break;
        default: fail();
        }
    }
    free(c1);
    free(c2);
}

static void test_modes_match_nettle(void **state)
{
    static uint8_t key[64], ours[BUF], ref[BUF];
    static const LuksIvgen ivgens[] = {LUKS_IVGEN_PLAIN, LUKS_IVGEN_PLAIN64, LUKS_IVGEN_ESSIV};
    for (size_t c = 0; c < ARRAY_SIZE(nettle_algs); c++) {
        for (int m = 0; m < LUKS_MODE__MAX; m++) {
            for (size_t v = 0; v < ARRAY_SIZE(ivgens); v++) {
                LuksAlgs a = algs(nettle_algs[c].alg, m, ivgens[v], LUKS_HASH_SHA256);
                fill(key, sizeof(key), (unsigned)(c * 16 + m * 4 + v));
                fill(ours, BUF, 9);
                memcpy(ref, ours, BUF);
                crypt_buf(&a, key, 4294967260ULL, ours, BUF, true);
                ref_crypt(&a, key, 4294967260ULL, ref);
                if (memcmp(ours, ref, BUF)) {
                    fail_msg("%s-%s-%s differs from nettle's", luks_cipher_name(a.cipher),
                             luks_mode_name(a.mode), luks_ivgen_name(a.ivgen));
                }
            }
        }
    }
}

/* ---- round trips through every cipher, mode and IV generator ---- */

static void roundtrip(const LuksAlgs *a)
{
    static uint8_t key[64], plain[BUF], whole[BUF], pieces[BUF];
    fill(key, sizeof(key), a->cipher);
    luks_random(plain, BUF);
    memcpy(plain + LUKS_SECTOR_SIZE, plain, LUKS_SECTOR_SIZE); /* sectors 0 and 1 alike */
    memcpy(whole, plain, BUF);
    crypt_buf(a, key, 1000, whole, BUF, true);
    assert_memory_not_equal(whole, plain, LUKS_SECTOR_SIZE);
    /* each sector has its own IV (ECB has none) */
    bool same = !memcmp(whole, whole + LUKS_SECTOR_SIZE, LUKS_SECTOR_SIZE);
    assert_true(same == (a->mode == LUKS_MODE_ECB));
    /* sector by sector gives the bytes of one large request */
    memcpy(pieces, plain, BUF);
    for (size_t i = 0; i < SECTORS; i += 7) {
        size_t n = MIN(7, SECTORS - i) * LUKS_SECTOR_SIZE;
        crypt_buf(a, key, 1000 + i, pieces + i * LUKS_SECTOR_SIZE, n, true);
    }
    assert_memory_equal(whole, pieces, BUF);
    crypt_buf(a, key, 1000, whole, BUF, false);
    assert_memory_equal(whole, plain, BUF);
}

static void test_roundtrips(void **state)
{
    static const LuksCipherAlg ciphers[] = {
        LUKS_CIPHER_AES_128,     LUKS_CIPHER_AES_192,     LUKS_CIPHER_AES_256,
        LUKS_CIPHER_CAST5_128,   LUKS_CIPHER_SERPENT_128, LUKS_CIPHER_SERPENT_192,
        LUKS_CIPHER_SERPENT_256, LUKS_CIPHER_TWOFISH_128, LUKS_CIPHER_TWOFISH_192,
        LUKS_CIPHER_TWOFISH_256,
    };
    int n = 0;
    for (size_t c = 0; c < ARRAY_SIZE(ciphers); c++) {
        for (int m = 0; m < LUKS_MODE__MAX; m++) {
            for (int iv = 0; iv < LUKS_IVGEN__MAX; iv++) {
                for (int h = 0; h < LUKS_HASH__MAX; h++) {
                    LuksAlgs a = {.cipher = ciphers[c], .mode = m, .ivgen = iv};
                    a.has_ivgen_hash = iv == LUKS_IVGEN_ESSIV;
                    a.ivgen_hash = h;
                    if ((iv != LUKS_IVGEN_ESSIV && h) || luks_algs_check(&a, true, NULL) < 0) {
                        continue; /* one pass without ESSIV; no invalid ESSIV pair */
                    }
                    roundtrip(&a);
                    n++;
                }
            }
        }
    }
    /* every cipher but CAST5 in 4 modes, CAST5 in 3, each with plain,
     * plain64 and its valid ESSIV hashes */
    assert_true(n > 100);
}

/* ---- algorithm checks (qemu's messages) ---- */

static void expect_algs(LuksCipherAlg c, LuksMode m, LuksIvgen iv, LuksHash h, const char *msg)
{
    LuksAlgs a = {.cipher = c, .mode = m, .ivgen = iv, .has_ivgen_hash = true, .ivgen_hash = h};
    Error *err = NULL;
    int ret = luks_algs_check(&a, true, &err);
    if (!msg) {
        assert_int_equal(ret, 0);
        return;
    }
    assert_int_equal(ret, -ENOTSUP);
    assert_string_equal(error_get_pretty(err), msg);
    error_free(err);
}

static void test_algs_check(void **state)
{
    expect_algs(LUKS_CIPHER_SERPENT_128, LUKS_MODE_CBC, LUKS_IVGEN_ESSIV, LUKS_HASH_SHA1,
                "No Serpent cipher with key size 20 available");
    expect_algs(LUKS_CIPHER_TWOFISH_256, LUKS_MODE_XTS, LUKS_IVGEN_ESSIV, LUKS_HASH_SHA512,
                "No Twofish cipher with key size 64 available");
    expect_algs(LUKS_CIPHER_CAST5_128, LUKS_MODE_CBC, LUKS_IVGEN_ESSIV, LUKS_HASH_SHA256,
                "Cipher cast5-128 not supported with essiv");
    expect_algs(LUKS_CIPHER_CAST5_128, LUKS_MODE_XTS, LUKS_IVGEN_PLAIN64, 0,
                "Unsupported cipher mode xts");
    expect_algs(LUKS_CIPHER_DES, LUKS_MODE_CBC, LUKS_IVGEN_PLAIN64, 0,
                "Algorithm 'des' not supported");
    expect_algs(LUKS_CIPHER_3DES, LUKS_MODE_CBC, LUKS_IVGEN_PLAIN64, 0,
                "Algorithm '3des' not supported");
    expect_algs(LUKS_CIPHER_TWOFISH_128, LUKS_MODE_CBC, LUKS_IVGEN_ESSIV, LUKS_HASH_SHA256, NULL);
    LuksAlgs a = {.cipher = LUKS_CIPHER_SERPENT_192,
                  .mode = LUKS_MODE_CBC,
                  .ivgen = LUKS_IVGEN_ESSIV,
                  .has_ivgen_hash = true,
                  .ivgen_hash = LUKS_HASH_MD5};
    assert_int_equal(luks_algs_check(&a, true, NULL), 0);
    assert_int_equal(a.ivgen_cipher, LUKS_CIPHER_SERPENT_128); /* key size = digest size */
    /* a wrong key size for the cipher is refused, never read past */
    uint8_t key[64] = {0};
    Error *err = NULL;
    a = algs(LUKS_CIPHER_TWOFISH_256, LUKS_MODE_XTS, LUKS_IVGEN_PLAIN64, 0);
    assert_null(luks_cipher_new(&a, key, 32, &err));
    assert_non_null(strstr(error_get_pretty(err), "needs a 64-byte key"));
    error_free(err);
}

/* ---- whole volumes in memory ---- */

/* Create a volume with opts, encrypt a sector, reopen it by passphrase and
 * decrypt the sector with the key found in the slot. */
static void volume_roundtrip(const char *opts, const char *want_cipher, const char *want_mode)
{
    Opts o = OPTS_INIT;
    LuksCreateParams p;
    assert_int_equal(opts_parse(&o, opts, NULL, NULL), 0);
    assert_int_equal(luks_create_params_parse(&o, "", &p, NULL), 0);
    size_t len = luks_payload_offset_for(&p.algs);
    MemIO m = {xzalloc(len), len};
    LuksIO io = mem_io(&m);
    LuksVolume v, w;
    Error *err = NULL;
    if (luks_volume_create(&v, &p, &io, NULL, &err) < 0) {
        fail_msg("%s: %s", opts, error_get_pretty(err));
    }
    assert_string_equal(v.hdr.cipher_name, want_cipher);
    assert_string_equal(v.hdr.cipher_mode, want_mode);
    uint8_t plain[LUKS_SECTOR_SIZE], sec[LUKS_SECTOR_SIZE];
    fill(plain, sizeof(plain), 1);
    memcpy(sec, plain, sizeof(sec));
    assert_int_equal(luks_cipher_crypt(v.cipher, 42, sec, sizeof(sec), true), 0);
    assert_int_equal(luks_volume_open(&w, &io, "s1", true, "", 0, &err), -EACCES);
    error_free_and_clear(&err);
    assert_int_equal(luks_volume_open(&w, &io, "s0", true, "", 0, NULL), 0);
    assert_int_equal(luks_cipher_crypt(w.cipher, 42, sec, sizeof(sec), false), 0);
    assert_memory_equal(sec, plain, sizeof(sec));
    luks_volume_close(&v);
    luks_volume_close(&w);
    opts_release(&o);
    free(m.buf);
}

static void test_volumes(void **state)
{
    volume_roundtrip("key-secret=s0,iter-time=0,cipher-alg=twofish-256", "twofish", "xts-plain64");
    volume_roundtrip("key-secret=s0,iter-time=0,cipher-alg=serpent-128,cipher-mode=cbc,"
                     "ivgen-alg=essiv,ivgen-hash-alg=sha256",
                     "serpent", "cbc-essiv:sha256");
    volume_roundtrip("key-secret=s0,iter-time=0,cipher-alg=serpent-192,hash-alg=sha512", "serpent",
                     "xts-plain64");
    volume_roundtrip("key-secret=s0,iter-time=0,cipher-alg=twofish-128,cipher-mode=ctr,"
                     "ivgen-alg=plain",
                     "twofish", "ctr-plain");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),  cmocka_unit_test(test_forms_match_openssl),
        cmocka_unit_test(test_cast5_backends), cmocka_unit_test(test_modes_match_nettle),
        cmocka_unit_test(test_roundtrips),     cmocka_unit_test(test_algs_check),
        cmocka_unit_test(test_volumes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
