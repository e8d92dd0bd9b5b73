/*
 * test_luks.c — unit tests for the LUKS crypto block (src/formats/luks-*.c):
 * PBKDF2 and AF against known answers and invariants, the modes we build on
 * ECB against OpenSSL's own, IV generators, header validation on in-memory
 * volumes, the iteration budget and reproducible creation.
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

#include "blocklayer/secret_store.h"
#include "common/util.h"
#include "formats/luks-int.h"
#include "memio.h"

static void hex(const char *h, uint8_t *out)
{
    for (size_t i = 0; h[2 * i]; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* ---- PBKDF2, AF ---- */

static void test_pbkdf2_rfc6070(void **state)
{
    uint8_t out[20], want[20];
    assert_int_equal(luks_pbkdf2(LUKS_HASH_SHA1, (const uint8_t *)"password", 8,
                                 (const uint8_t *)"salt", 4, 2, out, 20),
                     0);
    hex("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957", want);
    assert_memory_equal(out, want, 20);
    assert_int_equal(luks_pbkdf2(LUKS_HASH_SHA1, (const uint8_t *)"password", 8,
                                 (const uint8_t *)"salt", 4, 4096, out, 20),
                     0);
    hex("4b007901b765489abead49d926f721d065a429c1", want);
    assert_memory_equal(out, want, 20);
    /* 0 iterations is an error, never a call into OpenSSL with 0 */
    assert_int_equal(luks_pbkdf2(LUKS_HASH_SHA1, (const uint8_t *)"p", 1, out, 4, 0, out, 20),
                     -EINVAL);
}

static void test_af_roundtrip(void **state)
{
    static const size_t lens[] = {16, 24, 32, 48, 64, 20, 7};
    for (int h = 0; h < LUKS_HASH__MAX; h++) {
        for (size_t k = 0; k < ARRAY_SIZE(lens); k++) {
            size_t len = lens[k];
            uint8_t key[64], back[64];
            uint8_t *split = xmalloc(len * LUKS_STRIPES);
            for (size_t i = 0; i < len; i++) {
                key[i] = (uint8_t)(i * 7 + h);
            }
            luks_random(split, len * LUKS_STRIPES);
            assert_int_equal(luks_af_split(h, key, len, LUKS_STRIPES, split), 0);
            assert_int_equal(luks_af_merge(h, split, len, LUKS_STRIPES, back), 0);
            assert_memory_equal(key, back, len);
            /* one flipped bit anywhere changes the merged key */
            split[len * 1234 + 3] ^= 1;
            assert_int_equal(luks_af_merge(h, split, len, LUKS_STRIPES, back), 0);
            assert_memory_not_equal(key, back, len);
            free(split);
        }
    }
}

/* ---- ciphers ---- */

static LuksAlgs algs(LuksCipherAlg c, LuksMode m, LuksIvgen iv, LuksHash ivh)
{
    LuksAlgs a = {.cipher = c, .mode = m, .ivgen = iv, .hash = LUKS_HASH_SHA256};
    a.has_ivgen_hash = iv == LUKS_IVGEN_ESSIV;
    a.ivgen_hash = ivh;
    assert_int_equal(luks_algs_check(&a, true, NULL), 0);
    return a;
}

static void crypt_buf(const LuksAlgs *a, const uint8_t *key, uint64_t sector, uint8_t *buf,
                      size_t len, bool enc)
{
    size_t klen = luks_cipher_key_len(a->cipher) * (a->mode == LUKS_MODE_XTS ? 2 : 1);
    LuksCipher *c = luks_cipher_new(a, key, klen, NULL);
    assert_non_null(c);
    assert_int_equal(luks_cipher_crypt(c, sector, buf, len, enc), 0);
    luks_cipher_free(c);
}

/* XTS and CTR built on ECB give OpenSSL's bytes for AES-128/256. */
static void test_generic_modes_match_openssl(void **state)
{
    uint8_t key[64], a[8192], b[8192], plain[8192];
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)(i * 13 + 1);
    }
    luks_random(plain, sizeof(plain));
    LuksCipherAlg cs[] = {LUKS_CIPHER_AES_128, LUKS_CIPHER_AES_256};
    LuksMode ms[] = {LUKS_MODE_XTS, LUKS_MODE_CTR};
    for (int ci = 0; ci < 2; ci++) {
        for (int mi = 0; mi < 2; mi++) {
            LuksAlgs al = algs(cs[ci], ms[mi], LUKS_IVGEN_PLAIN64, 0);
            memcpy(a, plain, sizeof(a));
            memcpy(b, plain, sizeof(b));
            crypt_buf(&al, key, 77, a, sizeof(a), true);
            luks_force_generic_modes = true;
            crypt_buf(&al, key, 77, b, sizeof(b), true);
            assert_memory_equal(a, b, sizeof(a));
            crypt_buf(&al, key, 77, b, sizeof(b), false);
            luks_force_generic_modes = false;
            assert_memory_equal(b, plain, sizeof(b));
        }
    }
    /* aes-192-xts exists only in the generic form: it must round-trip */
    LuksAlgs al = algs(LUKS_CIPHER_AES_192, LUKS_MODE_XTS, LUKS_IVGEN_PLAIN64, 0);
    memcpy(a, plain, sizeof(a));
    crypt_buf(&al, key, 5, a, sizeof(a), true);
    assert_memory_not_equal(a, plain, sizeof(a));
    crypt_buf(&al, key, 5, a, sizeof(a), false);
    assert_memory_equal(a, plain, sizeof(a));
}

/* plain keeps the low 32 bits of the sector, plain64 all 64. */
static void test_ivgen_plain_wraps(void **state)
{
    uint8_t key[32] = {1, 2, 3}, s1[512], s2[512];
    for (int iv = LUKS_IVGEN_PLAIN; iv <= LUKS_IVGEN_ESSIV; iv++) {
        LuksAlgs al = algs(LUKS_CIPHER_AES_256, LUKS_MODE_CBC, iv, LUKS_HASH_SHA256);
        memset(s1, 0x42, sizeof(s1));
        memset(s2, 0x42, sizeof(s2));
        crypt_buf(&al, key, 5, s1, sizeof(s1), true);
        crypt_buf(&al, key, (1ULL << 32) + 5, s2, sizeof(s2), true);
        if (iv == LUKS_IVGEN_PLAIN) {
            assert_memory_equal(s1, s2, sizeof(s1));
        } else {
            assert_memory_not_equal(s1, s2, sizeof(s1));
        }
    }
    /* ECB ignores the sector entirely */
    LuksAlgs ecb = algs(LUKS_CIPHER_AES_256, LUKS_MODE_ECB, LUKS_IVGEN_PLAIN64, 0);
    memset(s1, 0x42, sizeof(s1));
    memset(s2, 0x42, sizeof(s2));
    crypt_buf(&ecb, key, 1, s1, sizeof(s1), true);
    crypt_buf(&ecb, key, 9, s2, sizeof(s2), true);
    assert_memory_equal(s1, s2, sizeof(s1));
}

static void test_algs_check_errors(void **state)
{
    Error *err = NULL;
    LuksAlgs a = {.cipher = LUKS_CIPHER_AES_128,
                  .mode = LUKS_MODE_CBC,
                  .ivgen = LUKS_IVGEN_ESSIV,
                  .has_ivgen_hash = true,
                  .ivgen_hash = LUKS_HASH_SHA1};
    assert_int_equal(luks_algs_check(&a, true, &err), -ENOTSUP);
    assert_string_equal(error_get_pretty(err), "No AES cipher with key size 20 available");
    error_free_and_clear(&err);
    a.ivgen_hash = LUKS_HASH_SHA256;
    assert_int_equal(luks_algs_check(&a, true, NULL), 0);
    assert_int_equal(a.ivgen_cipher, LUKS_CIPHER_AES_256); /* dm-crypt's quirk */
    a = (LuksAlgs){.cipher = LUKS_CIPHER_TWOFISH_128, .mode = LUKS_MODE_CBC};
    assert_int_equal(luks_algs_check(&a, false, NULL), 0); /* metadata only */
    assert_int_equal(luks_algs_check(&a, true, NULL), 0);  /* nettle has it */
}

/* ---- volumes in memory ---- */

static MemIO new_volume(const char *opts, const BdrvRepro *repro, LuksVolume *v)
{
    Opts o = OPTS_INIT;
    LuksCreateParams p;
    assert_int_equal(opts_parse(&o, opts, NULL, NULL), 0);
    assert_int_equal(luks_create_params_parse(&o, "", &p, NULL), 0);
    MemIO m = {xzalloc(luks_payload_offset_for(&p.algs)), luks_payload_offset_for(&p.algs)};
    LuksIO io = mem_io(&m);
    Error *err = NULL;
    int ret = luks_volume_create(v, &p, &io, repro, &err);
    if (err) {
        fprintf(stderr, "%s\n", error_get_pretty(err));
    }
    assert_int_equal(ret, 0);
    opts_release(&o);
    return m;
}

static int reopen(MemIO *m, const char *secret, uint64_t budget, char **msg)
{
    LuksVolume v;
    LuksIO io = mem_io(m);
    Error *err = NULL;
    int ret = luks_volume_open(&v, &io, secret, secret != NULL, "", budget, &err);
    if (ret == 0) {
        luks_volume_close(&v);
    }
    *msg = err ? xstrdup(error_get_pretty(err)) : NULL;
    error_free(err);
    return ret;
}

static void test_volume_open(void **state)
{
    LuksVolume v;
    MemIO m = new_volume("key-secret=s0,iter-time=0,cipher-mode=cbc,ivgen-alg=essiv", NULL, &v);
    assert_int_equal(v.hdr.slots[0].iterations, LUKS_MIN_ITERS);
    assert_int_equal(v.payload_offset, 1052672); /* 8 + 8 * 256 sectors for a 32-byte key */
    luks_volume_close(&v);
    char *msg;
    assert_int_equal(reopen(&m, "s0", 0, &msg), 0);
    assert_int_equal(reopen(&m, "s1", 0, &msg), -EACCES);
    assert_string_equal(msg, "Invalid password, cannot unlock any keyslot");
    free(msg);
    assert_int_equal(reopen(&m, "nosuch", 0, &msg), -EINVAL);
    assert_string_equal(msg, "No secret with id 'nosuch'");
    free(msg);
    assert_int_equal(reopen(&m, "s0", 999, &msg), -E2BIG); /* 1000 iterations > budget */
    assert_non_null(strstr(msg, "exceeds the budget of 999"));
    free(msg);
    assert_int_equal(reopen(&m, NULL, 0, &msg), 0); /* metadata only */
    free(m.buf);
}

/* Damage one field of a good header: qemu 7.2's message. */
static void expect_bad(MemIO *good, size_t off, const uint8_t *bytes, size_t n, const char *want)
{
    MemIO m = {xmalloc(good->len), good->len};
    memcpy(m.buf, good->buf, good->len);
    memcpy(m.buf + off, bytes, n);
    char *msg = NULL;
    assert_int_not_equal(reopen(&m, NULL, 0, &msg), 0);
    assert_non_null(msg);
    assert_string_equal(msg, want);
    free(msg);
    free(m.buf);
}

static void test_hostile_headers(void **state)
{
    LuksVolume v;
    MemIO m = new_volume("key-secret=s0,iter-time=0", NULL, &v);
    luks_volume_close(&v);
    static const uint8_t zero4[4] = {0}, ff4[4] = {0xff, 0xff, 0xff, 0xff}, v2[2] = {0, 2};
    expect_bad(&m, 0, (const uint8_t *)"XUKS", 4, "Volume is not in LUKS format");
    expect_bad(&m, 6, v2, 2, "LUKS version 2 is not supported");
    expect_bad(&m, 8, (const uint8_t *)"0123456789abcdef0123456789abcdef", 32,
               "LUKS header cipher name is not NUL terminated");
    expect_bad(&m, 104, zero4, 4, "LUKS payload is overlapping with the header");
    expect_bad(&m, 164, zero4, 4, "LUKS key iteration count is zero");
    expect_bad(&m, 208 + 48 * 3 + 44, ff4, 4, "Keyslot 3 is corrupted (stripes -1 != 4000)");
    expect_bad(&m, 208 + 4, zero4, 4, "Keyslot 0 iteration count is zero");
    expect_bad(&m, 208 + 48 * 2, ff4, 4, "Keyslot 2 state (active/disable) is corrupted");
    expect_bad(&m, 108, ff4, 4, "Keyslot 0 is overlapping with the encrypted payload");
    expect_bad(&m, 108, zero4, 4, "Algorithm 'aes' with key size 0 bytes not supported");
    expect_bad(&m, 40, (const uint8_t *)"xts\0", 4, "Unexpected cipher mode string format 'xts'");
    expect_bad(&m, 72, (const uint8_t *)"sha3\0", 5, "Hash algorithm 'sha3' not supported");
    free(m.buf);
}

static void test_repro(void **state)
{
    BdrvRepro r1 = {.enabled = true, .seed = {1}}, r2 = {.enabled = true, .seed = {2}};
    LuksVolume a, b, c;
    MemIO ma = new_volume("key-secret=s0,iter-time=1", &r1, &a);
    MemIO mb = new_volume("key-secret=s0,iter-time=1", &r1, &b);
    MemIO mc = new_volume("key-secret=s0,iter-time=1", &r2, &c);
    assert_int_equal(a.hdr.slots[0].iterations, 1000); /* fixed, not timed */
    assert_int_equal(ma.len, mb.len);
    assert_memory_equal(ma.buf, mb.buf, ma.len);
    assert_memory_not_equal(ma.buf, mc.buf, 592);
    /* the master key depends on the passphrase too, not just the seed */
    LuksVolume d;
    MemIO md = new_volume("key-secret=s1,iter-time=1", &r1, &d);
    assert_memory_not_equal(ma.buf + 112, md.buf + 112, LUKS_DIGEST_LEN);
    char *msg;
    assert_int_equal(reopen(&ma, "s0", 0, &msg), 0);
    LuksVolume *vs[] = {&a, &b, &c, &d};
    MemIO *ms[] = {&ma, &mb, &mc, &md};
    for (int i = 0; i < 4; i++) {
        luks_volume_close(vs[i]);
        free(ms[i]->buf);
    }
}

static void test_amend(void **state)
{
    LuksVolume v;
    MemIO m = new_volume("key-secret=s0,iter-time=0", NULL, &v);
    LuksIO io = mem_io(&m);
    Opts o = OPTS_INIT;
    Error *err = NULL;
    opts_parse(&o, "state=active,new-secret=s1,iter-time=0,keyslot=7", NULL, NULL);
    assert_int_equal(luks_volume_amend(&v, &io, &o, "", false, &err), 0);
    opts_release(&o);
    char *msg;
    assert_int_equal(reopen(&m, "s1", 0, &msg), 0);
    opts_parse(&o, "state=inactive,keyslot=0", NULL, NULL);
    assert_int_equal(luks_volume_amend(&v, &io, &o, "", false, &err), 0);
    opts_release(&o);
    assert_int_equal(reopen(&m, "s0", 0, &msg), -EACCES);
    free(msg);
    opts_parse(&o, "state=inactive,keyslot=7", NULL, NULL);
    assert_int_equal(luks_volume_amend(&v, &io, &o, "", false, &err), -EINVAL);
    assert_non_null(strstr(error_get_pretty(err), "only active keyslot 7"));
    error_free_and_clear(&err);
    opts_release(&o);
    luks_volume_close(&v);
    free(m.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbkdf2_rfc6070),
        cmocka_unit_test(test_af_roundtrip),
        cmocka_unit_test(test_generic_modes_match_openssl),
        cmocka_unit_test(test_ivgen_plain_wraps),
        cmocka_unit_test(test_algs_check_errors),
        cmocka_unit_test(test_volume_open),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_repro),
        cmocka_unit_test(test_amend),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
