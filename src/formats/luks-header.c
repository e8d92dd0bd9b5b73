/*
 * luks-header.c — the LUKS1 header: decode/encode, validation, parsing of
 * the algorithm strings, unlocking a key slot, and creating a volume.
 * Spec and supported subset: see luks.h.
 *
 * Hostile headers: qemu 7.2's checks in its order, with its messages,
 * then ours.  Key bytes must name a cipher (<= 64 bytes); stripes must be
 * 4000 (as qemu 7.2 demands), so a slot's key material is <= 256000
 * bytes; slot areas are computed in 64 bits (qemu's 32-bit sums can
 * wrap); PBKDF2 iteration counts are checked against a budget
 * (LuksVolume.max_iterations) before a slot is tried, so a header cannot
 * make open spin for hours.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "blocklayer/secret_store.h"
#include "common/util.h"
#include "formats/luks-int.h"

static const uint8_t luks_magic[6] = {'L', 'U', 'K', 'S', 0xBA, 0xBE};

/* ---- on-disk layout (big-endian, 592 bytes) ---- */
#define OFF_VERSION     6
#define OFF_CIPHER_NAME 8
#define OFF_CIPHER_MODE 40
#define OFF_HASH_SPEC   72
#define OFF_PAYLOAD     104
#define OFF_KEY_BYTES   108
#define OFF_MK_DIGEST   112
#define OFF_MK_SALT     132
#define OFF_MK_ITERS    164
#define OFF_UUID        168
#define OFF_SLOTS       208
#define SLOT_SIZE       48
_Static_assert(OFF_SLOTS + LUKS_NUM_SLOTS * SLOT_SIZE == LUKS_HEADER_SIZE, "LUKS header size");

bool luks_has_format(const uint8_t *buf, size_t len)
{
    return len >= OFF_CIPHER_NAME && !memcmp(buf, luks_magic, 6) && ld16_be(buf + OFF_VERSION) == 1;
}

static void get_str(char *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
    dst[n] = 0;
}

void luks_header_decode(const uint8_t *buf, LuksHeader *h)
{
    memset(h, 0, sizeof(*h));
    h->version = ld16_be(buf + OFF_VERSION);
    get_str(h->cipher_name, buf + OFF_CIPHER_NAME, 32);
    get_str(h->cipher_mode, buf + OFF_CIPHER_MODE, 32);
    get_str(h->hash_spec, buf + OFF_HASH_SPEC, 32);
    h->payload_offset = ld32_be(buf + OFF_PAYLOAD);
    h->key_bytes = ld32_be(buf + OFF_KEY_BYTES);
    memcpy(h->mk_digest, buf + OFF_MK_DIGEST, LUKS_DIGEST_LEN);
    memcpy(h->mk_salt, buf + OFF_MK_SALT, LUKS_SALT_LEN);
    h->mk_iterations = ld32_be(buf + OFF_MK_ITERS);
    get_str(h->uuid, buf + OFF_UUID, 40);
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        const uint8_t *p = buf + OFF_SLOTS + i * SLOT_SIZE;
        LuksKeySlot *s = &h->slots[i];
        s->active = ld32_be(p);
        s->iterations = ld32_be(p + 4);
        memcpy(s->salt, p + 8, LUKS_SALT_LEN);
        s->key_offset = ld32_be(p + 40);
        s->stripes = ld32_be(p + 44);
    }
}

void luks_header_encode(const LuksHeader *h, uint8_t *buf)
{
    memset(buf, 0, LUKS_HEADER_SIZE);
    memcpy(buf, luks_magic, 6);
    st16_be(buf + OFF_VERSION, h->version);
    memcpy(buf + OFF_CIPHER_NAME, h->cipher_name, strnlen(h->cipher_name, 32));
    memcpy(buf + OFF_CIPHER_MODE, h->cipher_mode, strnlen(h->cipher_mode, 32));
    memcpy(buf + OFF_HASH_SPEC, h->hash_spec, strnlen(h->hash_spec, 32));
    st32_be(buf + OFF_PAYLOAD, h->payload_offset);
    st32_be(buf + OFF_KEY_BYTES, h->key_bytes);
    memcpy(buf + OFF_MK_DIGEST, h->mk_digest, LUKS_DIGEST_LEN);
    memcpy(buf + OFF_MK_SALT, h->mk_salt, LUKS_SALT_LEN);
    st32_be(buf + OFF_MK_ITERS, h->mk_iterations);
    memcpy(buf + OFF_UUID, h->uuid, strnlen(h->uuid, 40));
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        uint8_t *p = buf + OFF_SLOTS + i * SLOT_SIZE;
        const LuksKeySlot *s = &h->slots[i];
        st32_be(p, s->active);
        st32_be(p + 4, s->iterations);
        memcpy(p + 8, s->salt, LUKS_SALT_LEN);
        st32_be(p + 40, s->key_offset);
        st32_be(p + 44, s->stripes);
    }
}

int luks_store_header(const LuksVolume *v, const LuksIO *io, Error **errp)
{
    uint8_t buf[LUKS_HEADER_SIZE];
    luks_header_encode(&v->hdr, buf);
    int ret = io->write(io->opaque, 0, buf, sizeof(buf));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write LUKS header");
    }
    return ret;
}

/* ---- validation ---- */

/* Sectors a slot's key material takes, rounded up as cryptsetup does. */
uint64_t luks_split_sectors(uint32_t key_bytes, uint32_t stripes)
{
    uint64_t sectors = DIV_ROUND_UP((uint64_t)key_bytes * stripes, LUKS_SECTOR_SIZE);
    return ROUND_UP(sectors, (uint64_t)(LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR_SIZE));
}

static int check_slot(const LuksHeader *h, int i, Error **errp)
{
    const uint64_t hdr_sectors = LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR_SIZE;
    const LuksKeySlot *s = &h->slots[i];
    if (s->stripes != LUKS_STRIPES) {
        error_setg(errp, "Keyslot %d is corrupted (stripes %d != %d)", i, (int)s->stripes,
                   LUKS_STRIPES);
        return -EINVAL;
    }
    if (s->active != LUKS_SLOT_DISABLED && s->active != LUKS_SLOT_ENABLED) {
        error_setg(errp, "Keyslot %d state (active/disable) is corrupted", i);
        return -EINVAL;
    }
    if (s->active == LUKS_SLOT_ENABLED && s->iterations == 0) {
        error_setg(errp, "Keyslot %d iteration count is zero", i);
        return -EINVAL;
    }
    if (s->key_offset < hdr_sectors) {
        error_setg(errp, "Keyslot %d is overlapping with the LUKS header", i);
        return -EINVAL;
    }
    uint64_t end1 = s->key_offset + luks_split_sectors(h->key_bytes, s->stripes);
    if (end1 > h->payload_offset) {
        error_setg(errp, "Keyslot %d is overlapping with the encrypted payload", i);
        return -EINVAL;
    }
    for (int j = i + 1; j < LUKS_NUM_SLOTS; j++) {
        const LuksKeySlot *t = &h->slots[j];
        uint64_t end2 = t->key_offset + luks_split_sectors(h->key_bytes, t->stripes);
        if (end1 > t->key_offset && end2 > s->key_offset) {
            error_setg(errp, "Keyslots %d and %d are overlapping in the header", i, j);
            return -EINVAL;
        }
    }
    return 0;
}

/* qemu 7.2's checks, in its order.  Slot areas are computed in 64 bits
 * (qemu's 32-bit sums could wrap on hostile values). */
static int check_header(const uint8_t *raw, const LuksHeader *h, Error **errp)
{
    static const struct {
        int off;
        const char *what;
    } strs[] = {{OFF_CIPHER_NAME, "cipher name"},
                {OFF_CIPHER_MODE, "cipher mode"},
                {OFF_HASH_SPEC, "hash spec"}};
    if (memcmp(raw, luks_magic, 6)) {
        error_setg(errp, "Volume is not in LUKS format");
        return -EINVAL;
    }
    if (h->version != 1) {
        error_setg(errp, "LUKS version %" PRIu32 " is not supported", (uint32_t)h->version);
        return -EINVAL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        if (!memchr(raw + strs[i].off, 0, 32)) {
            error_setg(errp, "LUKS header %s is not NUL terminated", strs[i].what);
            return -EINVAL;
        }
    }
    if (h->payload_offset < LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR_SIZE) {
        error_setg(errp, "LUKS payload is overlapping with the header");
        return -EINVAL;
    }
    if (h->mk_iterations == 0) {
        error_setg(errp, "LUKS key iteration count is zero");
        return -EINVAL;
    }
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        int ret = check_slot(h, i, errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/* Map the on-disk cipher name ("aes") and key size to an algorithm. */
static int cipher_from_header(const char *name, LuksMode mode, uint32_t key_bytes,
                              LuksCipherAlg *out, Error **errp)
{
    static const struct {
        const char *name;
        LuksCipherAlg first, last;
    } map[] = {
        {"aes", LUKS_CIPHER_AES_128, LUKS_CIPHER_AES_256},
        {"cast5", LUKS_CIPHER_CAST5_128, LUKS_CIPHER_CAST5_128},
        {"serpent", LUKS_CIPHER_SERPENT_128, LUKS_CIPHER_SERPENT_256},
        {"twofish", LUKS_CIPHER_TWOFISH_128, LUKS_CIPHER_TWOFISH_256},
    };
    /* qemu halves an odd XTS key size too (65 -> 32): refuse those, the
     * key buffers are sized by the cipher */
    bool odd = mode == LUKS_MODE_XTS && key_bytes % 2;
    if (mode == LUKS_MODE_XTS) {
        key_bytes /= 2;
    }
    for (size_t i = 0; !odd && i < ARRAY_SIZE(map); i++) {
        for (int a = map[i].first; !strcmp(map[i].name, name) && a <= (int)map[i].last; a++) {
            if (luks_cipher_key_len(a) == key_bytes) {
                *out = a;
                return 0;
            }
        }
    }
    error_setg(errp, "Algorithm '%s' with key size %d bytes not supported", name, (int)key_bytes);
    return -ENOTSUP;
}

/* The on-disk cipher name of an algorithm ("aes" for aes-256). */
const char *luks_cipher_family(LuksCipherAlg alg)
{
    if (alg <= LUKS_CIPHER_AES_256) {
        return "aes";
    }
    if (alg == LUKS_CIPHER_CAST5_128) {
        return "cast5";
    }
    if (alg >= LUKS_CIPHER_SERPENT_128 && alg <= LUKS_CIPHER_SERPENT_256) {
        return "serpent";
    }
    return alg >= LUKS_CIPHER_TWOFISH_128 && alg <= LUKS_CIPHER_TWOFISH_256 ? "twofish" : NULL;
}

static int lookup_or_fail(int v, const char *what, const char *name, Error **errp)
{
    if (v < 0) {
        error_setg(errp, "%s '%s' not supported", what, name);
    }
    return v;
}

/* "<mode>-<ivgen>[:<hash>]", cipher name, hash spec -> algorithms. */
static int parse_algs(const LuksHeader *h, LuksAlgs *a, bool need_impl, Error **errp)
{
    char mode[33];
    memcpy(mode, h->cipher_mode, sizeof(mode));
    char *ivgen = strchr(mode, '-');
    if (!ivgen) {
        error_setg(errp, "Unexpected cipher mode string format '%s'", h->cipher_mode);
        return -EINVAL;
    }
    *ivgen++ = 0;
    char *ivhash = strchr(ivgen, ':');
    memset(a, 0, sizeof(*a));
    if (ivhash) {
        *ivhash++ = 0;
        a->has_ivgen_hash = true;
        if (lookup_or_fail(luks_hash_lookup(ivhash), "Hash algorithm", ivhash, errp) < 0) {
            return -ENOTSUP;
        }
        a->ivgen_hash = luks_hash_lookup(ivhash);
    }
    int m = lookup_or_fail(luks_mode_lookup(mode), "Cipher mode", mode, errp);
    if (m < 0 || cipher_from_header(h->cipher_name, m, h->key_bytes, &a->cipher, errp) < 0) {
        return -ENOTSUP;
    }
    a->mode = m;
    int hash = lookup_or_fail(luks_hash_lookup(h->hash_spec), "Hash algorithm", h->hash_spec, errp);
    int iv = hash < 0 ? -1 : lookup_or_fail(luks_ivgen_lookup(ivgen), "IV generator", ivgen, errp);
    if (hash < 0 || iv < 0) {
        return -ENOTSUP;
    }
    a->hash = hash;
    a->ivgen = iv;
    if (a->ivgen == LUKS_IVGEN_ESSIV && !ivhash) {
        error_setg(errp, "Missing IV generator hash specification");
        return -EINVAL;
    }
    return luks_algs_check(a, need_impl, errp);
}

/* ---- secrets ---- */

static bool utf8_valid(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        if (n == 0 || i + n > len || (n == 2 && c < 0xc2) || (n == 4 && c > 0xf4)) {
            return false;
        }
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
        }
        i += n;
    }
    return true;
}

char *luks_secret_get(const char *id, size_t *len, Error **errp)
{
    size_t n;
    uint8_t *data = secret_store_get(id, &n, errp);
    if (!data) {
        return NULL;
    }
    if (!utf8_valid(data, n)) {
        error_setg(errp, "Data from secret %s is not valid UTF-8", id);
        secret_store_free(data, n);
        return NULL;
    }
    *len = strlen((char *)data); /* qemu uses the string up to a NUL */
    return (char *)data;
}

/* ---- unlocking ---- */

static int check_budget(const LuksVolume *v, const char *what, uint32_t iterations, Error **errp)
{
    uint64_t budget = v->max_iterations ? v->max_iterations : LUKS_DEFAULT_MAX_ITER;
    if (iterations > budget) {
        error_setg(errp,
                   "%s: PBKDF2 iteration count %" PRIu32 " exceeds the budget of %" PRIu64
                   " iterations (open with max-pbkdf-iters=N to allow more)",
                   what, iterations, budget);
        return -E2BIG;
    }
    if (iterations == 0) {
        error_setg(errp, "%s: PBKDF2 iteration count is 0", what);
        return -EINVAL;
    }
    return 0;
}

/* Decrypt slot `idx`'s key material with the slot key; len = padded size. */
static int read_material(const LuksVolume *v, const LuksIO *io, int idx, const uint8_t *slotkey,
                         uint8_t *split, size_t len, Error **errp)
{
    int ret =
        io->read(io->opaque, (uint64_t)v->hdr.slots[idx].key_offset * LUKS_SECTOR_SIZE, split, len);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read key material of keyslot %d", idx);
        return ret;
    }
    LuksCipher *c = luks_cipher_new(&v->algs, slotkey, v->hdr.key_bytes, errp);
    if (!c) {
        return -ENOTSUP;
    }
    ret = luks_cipher_crypt(c, 0, split, len, false);
    luks_cipher_free(c);
    if (ret < 0) {
        error_setg(errp, "Could not decrypt key material of keyslot %d", idx);
    }
    return ret;
}

int luks_mk_digest(const LuksVolume *v, const uint8_t *mk, uint8_t *digest, Error **errp)
{
    int ret = luks_pbkdf2(v->algs.hash, mk, v->hdr.key_bytes, v->hdr.mk_salt, LUKS_SALT_LEN,
                          v->hdr.mk_iterations, digest, LUKS_DIGEST_LEN);
    if (ret < 0) {
        error_setg(errp, "PBKDF2 of the master key failed");
    }
    return ret;
}

int luks_load_key(const LuksVolume *v, const LuksIO *io, int idx, const char *pw, size_t pw_len,
                  uint8_t *mk, Error **errp)
{
    const LuksKeySlot *s = &v->hdr.slots[idx];
    if (s->active != LUKS_SLOT_ENABLED) {
        return 0;
    }
    char what[32];
    snprintf(what, sizeof(what), "keyslot %d", idx);
    if (check_budget(v, what, s->iterations, errp) < 0 ||
        check_budget(v, "master key digest", v->hdr.mk_iterations, errp) < 0) {
        return -E2BIG;
    }
    size_t key_bytes = v->hdr.key_bytes;
    size_t split_len = key_bytes * s->stripes; /* <= 64 * 4000 (check_slot) */
    size_t padded = ROUND_UP(split_len, (size_t)LUKS_SECTOR_SIZE);
    uint8_t slotkey[LUKS_MAX_KEY_BYTES], digest[LUKS_DIGEST_LEN];
    uint8_t *split = xmalloc(padded);
    int ret = luks_pbkdf2(v->algs.hash, (const uint8_t *)pw, pw_len, s->salt, LUKS_SALT_LEN,
                          s->iterations, slotkey, key_bytes);
    if (ret < 0) {
        error_setg(errp, "PBKDF2 of the passphrase failed");
    } else {
        ret = read_material(v, io, idx, slotkey, split, padded, errp);
    }
    if (ret == 0) {
        ret = luks_af_merge(v->algs.hash, split, key_bytes, s->stripes, mk);
        if (ret < 0) {
            error_setg(errp, "Anti-forensic merge of keyslot %d failed", idx);
        }
    }
    if (ret == 0) {
        ret = luks_mk_digest(v, mk, digest, errp);
    }
    if (ret == 0) {
        ret = CRYPTO_memcmp(digest, v->hdr.mk_digest, LUKS_DIGEST_LEN) == 0 ? 1 : 0;
    }
    explicit_bzero(slotkey, sizeof(slotkey));
    explicit_bzero(split, padded);
    free(split);
    return ret;
}

/* Try every slot; 0 with mk filled, or -EACCES with qemu's message. */
int luks_find_key(const LuksVolume *v, const LuksIO *io, const char *pw, size_t pw_len, uint8_t *mk,
                  Error **errp)
{
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        int ret = luks_load_key(v, io, i, pw, pw_len, mk, errp);
        if (ret < 0) {
            return ret;
        }
        if (ret == 1) {
            return 0;
        }
    }
    error_setg(errp, "Invalid password, cannot unlock any keyslot");
    return -EACCES;
}

static int read_header(LuksVolume *v, const LuksIO *io, bool need_impl, Error **errp)
{
    uint8_t raw[LUKS_HEADER_SIZE];
    int ret = io->read(io->opaque, 0, raw, sizeof(raw));
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read LUKS header");
        return ret;
    }
    luks_header_decode(raw, &v->hdr);
    ret = check_header(raw, &v->hdr, errp);
    if (ret == 0) {
        ret = parse_algs(&v->hdr, &v->algs, need_impl, errp);
    }
    v->payload_offset = (uint64_t)v->hdr.payload_offset * LUKS_SECTOR_SIZE;
    return ret;
}

int luks_volume_open(LuksVolume *v, const LuksIO *io, const char *secret_id, bool need_key,
                     const char *optprefix, uint64_t max_iterations, Error **errp)
{
    memset(v, 0, sizeof(*v));
    v->optprefix = optprefix ? optprefix : "";
    v->max_iterations = max_iterations;
    if (need_key && !secret_id) {
        error_setg(errp, "Parameter '%skey-secret' is required for cipher", v->optprefix);
        return -EINVAL;
    }
    size_t pw_len = 0;
    char *pw = need_key ? luks_secret_get(secret_id, &pw_len, errp) : NULL;
    if (need_key && !pw) {
        return -EINVAL;
    }
    int ret = read_header(v, io, need_key, errp);
    uint8_t mk[LUKS_MAX_KEY_BYTES];
    if (ret == 0 && need_key) {
        ret = luks_find_key(v, io, pw, pw_len, mk, errp);
        if (ret == 0 && !(v->cipher = luks_cipher_new(&v->algs, mk, v->hdr.key_bytes, errp))) {
            ret = -ENOTSUP;
        }
        v->secret_id = xstrdup(secret_id);
    }
    explicit_bzero(mk, sizeof(mk));
    secret_store_free((uint8_t *)pw, pw_len);
    if (ret < 0) {
        luks_volume_close(v);
    }
    return ret;
}

void luks_volume_close(LuksVolume *v)
{
    luks_cipher_free(v->cipher);
    free(v->secret_id);
    v->cipher = NULL;
    v->secret_id = NULL;
}
