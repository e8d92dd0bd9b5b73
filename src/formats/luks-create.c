/*
 * luks-create.c — writing LUKS1 volumes: create options, a new volume,
 * storing and erasing key slots (amend), and the info tree.
 * Layout and spec: see luks.h.
 *
 * Iteration counts follow qemu 7.2: measure PBKDF2 speed for the real
 * sizes, scale it to iter-time milliseconds; a slot gets that (at least
 * 1000), the master key digest an eighth of it (cryptsetup's choice, at
 * least 1000).  Counts above 2^32-1 fail as in qemu.
 *
 * Reproducible create (repro enabled): salts and the UUID come from
 * repro_random_bytes(); the master key is PBKDF2(passphrase, salt derived
 * from the seed), so it is as hard to guess as the passphrase itself and
 * never derivable from the recipe alone; the AF stripes are a SHA-256
 * stream keyed by the master key; iteration counts are fixed rather than
 * timed: slot = max(1000, iter-time * 1000), master key = max(1000,
 * iter-time * 125), i.e. the counts a machine doing 1M PBKDF2 iterations
 * a second would pick.  Make the secret part of the pipeline's inputs:
 * the same seed and passphrase give the same master key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "blocklayer/secret_store.h"
#include "common/util.h"
#include "formats/luks-int.h"

#define ERASE_PASSES 40 /* qemu overwrites an erased slot's material 40 times */

void luks_random(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1) {
        abort(); /* no CSPRNG: never write a guessable key */
    }
}

/* ---- create options ---- */

static const char *opt(const Opts *o, const char *prefix, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%s%s", prefix, name);
    return opts_get(o, key);
}

/* An enum option: qemu's "Parameter 'X' does not accept value 'Y'" (without
 * the "encrypt." prefix: qemu reports the crypto layer's own name). */
static int enum_opt(const Opts *o, const char *prefix, const char *name,
                    int (*lookup)(const char *), int def, int *out, bool *given, Error **errp)
{
    const char *v = opt(o, prefix, name);
    if (given) {
        *given = v != NULL;
    }
    *out = v ? lookup(v) : def;
    if (*out < 0) {
        error_setg(errp, "Parameter '%s' does not accept value '%s'", name, v);
        return -EINVAL;
    }
    return 0;
}

int luks_create_params_parse(const Opts *o, const char *prefix, LuksCreateParams *p, Error **errp)
{
    memset(p, 0, sizeof(*p));
    int cipher, mode, ivgen, ivhash, hash;
    bool has_ivhash;
    if (enum_opt(o, prefix, "cipher-alg", luks_cipher_lookup, LUKS_CIPHER_AES_256, &cipher, NULL,
                 errp) < 0 ||
        enum_opt(o, prefix, "cipher-mode", luks_mode_lookup, LUKS_MODE_XTS, &mode, NULL, errp) <
            0 ||
        enum_opt(o, prefix, "ivgen-alg", luks_ivgen_lookup, LUKS_IVGEN_PLAIN64, &ivgen, NULL,
                 errp) < 0 ||
        enum_opt(o, prefix, "ivgen-hash-alg", luks_hash_lookup, LUKS_HASH_SHA256, &ivhash,
                 &has_ivhash, errp) < 0 ||
        enum_opt(o, prefix, "hash-alg", luks_hash_lookup, LUKS_HASH_SHA256, &hash, NULL, errp) <
            0) {
        return -EINVAL;
    }
    const char *it = opt(o, prefix, "iter-time");
    p->iter_time = LUKS_DEFAULT_ITER_MS;
    if (it && parse_uint64(it, &p->iter_time) < 0) {
        error_setg(errp, "Parameter '%siter-time' expects a number", prefix);
        return -EINVAL;
    }
    p->algs = (LuksAlgs){.cipher = cipher, .mode = mode, .ivgen = ivgen, .hash = hash};
    /* qemu keeps an explicit ivgen hash even for plain/plain64 (dm-crypt
     * compatibility) and defaults it to sha256 for essiv */
    p->algs.has_ivgen_hash = has_ivhash || ivgen == LUKS_IVGEN_ESSIV;
    p->algs.ivgen_hash = ivhash;
    p->secret_id = opt(o, prefix, "key-secret");
    return 0;
}

static uint32_t key_bytes_for(const LuksAlgs *a)
{
    return (uint32_t)(luks_cipher_key_len(a->cipher) * (a->mode == LUKS_MODE_XTS ? 2 : 1));
}

uint64_t luks_payload_offset_for(const LuksAlgs *a)
{
    uint64_t hdr_sectors = LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR_SIZE;
    uint64_t split = luks_split_sectors(key_bytes_for(a), LUKS_STRIPES);
    return (hdr_sectors + LUKS_NUM_SLOTS * split) * LUKS_SECTOR_SIZE;
}

/* ---- iteration counts ---- */

/* qemu: rate * iter_time / 1000 [/ 8], errors past 2^32-1, floor 1000. */
static int timed_iterations(LuksHash hash, size_t pass_len, size_t out_len, uint64_t iter_time,
                            bool master, const BdrvRepro *repro, uint32_t *out, Error **errp)
{
    uint64_t iters;
    if (repro && repro->enabled) {
        iters = MIN(iter_time, (uint64_t)UINT32_MAX) * 1000;
    } else {
        uint64_t rate = luks_pbkdf2_rate(hash, pass_len, out_len, errp);
        if (!rate) {
            return -EIO;
        }
        if (iter_time && rate > UINT64_MAX / iter_time) {
            error_setg_errno(errp, ERANGE, "PBKDF iterations %" PRIu64 " too large to scale", rate);
            return -ERANGE;
        }
        iters = rate * iter_time / 1000;
    }
    if (master) {
        iters /= 8;
    }
    if (iters > UINT32_MAX) {
        error_setg_errno(errp, ERANGE, "PBKDF iterations %" PRIu64 " larger than %u", iters,
                         UINT32_MAX);
        return -ERANGE;
    }
    *out = (uint32_t)MAX(iters, (uint64_t)LUKS_MIN_ITERS);
    return 0;
}

/* ---- key slots ---- */

/* Stripe material: CSPRNG, or under repro a SHA-256 stream keyed by mk. */
static void af_random(uint8_t *buf, size_t len, const uint8_t *mk, size_t mk_len, int idx,
                      const BdrvRepro *repro)
{
    if (!repro || !repro->enabled) {
        luks_random(buf, len);
        return;
    }
    uint8_t block[32], ctr[8];
    for (uint64_t i = 0, off = 0; off < len; i++, off += 32) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        st64_be(ctr, i);
        uint8_t tag[2] = {'A', (uint8_t)idx};
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
            !EVP_DigestUpdate(ctx, mk, mk_len) || !EVP_DigestUpdate(ctx, tag, 2) ||
            !EVP_DigestUpdate(ctx, ctr, 8) || !EVP_DigestFinal_ex(ctx, block, NULL)) {
            abort();
        }
        EVP_MD_CTX_free(ctx);
        memcpy(buf + off, block, MIN((size_t)32, len - off));
    }
    explicit_bzero(block, sizeof(block));
}

static void slot_salt(uint8_t *salt, int idx, const BdrvRepro *repro)
{
    if (repro && repro->enabled) {
        char label[32];
        snprintf(label, sizeof(label), "luks-slot-%d-salt", idx);
        repro_random_bytes(repro, label, salt, LUKS_SALT_LEN);
    } else {
        luks_random(salt, LUKS_SALT_LEN);
    }
}

/* Split, encrypt with the slot key and write one slot's key material. */
static int write_material(LuksVolume *v, const LuksIO *io, int idx, const uint8_t *slotkey,
                          const uint8_t *mk, const BdrvRepro *repro, Error **errp)
{
    LuksKeySlot *s = &v->hdr.slots[idx];
    size_t len = (size_t)v->hdr.key_bytes * s->stripes;
    uint8_t *split = xmalloc(len);
    af_random(split, len, mk, v->hdr.key_bytes, idx, repro);
    int ret = luks_af_split(v->algs.hash, mk, v->hdr.key_bytes, s->stripes, split);
    LuksCipher *c = ret < 0 ? NULL : luks_cipher_new(&v->algs, slotkey, v->hdr.key_bytes, errp);
    ret = c ? luks_cipher_crypt(c, 0, split, len, true) : -EIO;
    luks_cipher_free(c);
    if (ret < 0) {
        error_setg(errp, "Could not encrypt the key material of keyslot %d", idx);
    } else {
        ret = io->write(io->opaque, (uint64_t)s->key_offset * LUKS_SECTOR_SIZE, split, len);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not write key material of keyslot %d", idx);
        }
    }
    explicit_bzero(split, len);
    free(split);
    return ret;
}

int luks_store_key(LuksVolume *v, const LuksIO *io, int idx, const char *pw, size_t pw_len,
                   const uint8_t *mk, uint64_t iter_time, const BdrvRepro *repro, Error **errp)
{
    LuksKeySlot *s = &v->hdr.slots[idx];
    slot_salt(s->salt, idx, repro);
    int ret = timed_iterations(v->algs.hash, pw_len, v->hdr.key_bytes, iter_time, false, repro,
                               &s->iterations, errp);
    if (ret < 0) {
        return ret;
    }
    uint8_t slotkey[LUKS_MAX_KEY_BYTES];
    ret = luks_pbkdf2(v->algs.hash, (const uint8_t *)pw, pw_len, s->salt, LUKS_SALT_LEN,
                      s->iterations, slotkey, v->hdr.key_bytes);
    if (ret < 0) {
        error_setg(errp, "PBKDF2 of the passphrase failed");
    } else {
        ret = write_material(v, io, idx, slotkey, mk, repro, errp);
    }
    explicit_bzero(slotkey, sizeof(slotkey));
    if (ret == 0) {
        s->active = LUKS_SLOT_ENABLED;
        ret = luks_store_header(v, io, errp);
    }
    return ret;
}

int luks_erase_key(LuksVolume *v, const LuksIO *io, int idx, Error **errp)
{
    LuksKeySlot *s = &v->hdr.slots[idx];
    memset(s->salt, 0, LUKS_SALT_LEN);
    s->iterations = 0;
    s->active = LUKS_SLOT_DISABLED;
    int ret = luks_store_header(v, io, errp);
    /* wipe the material even if the header update failed (as qemu) */
    size_t len = (size_t)v->hdr.key_bytes * s->stripes;
    uint8_t *garbage = xmalloc(len);
    for (int pass = 0; pass < ERASE_PASSES; pass++) {
        luks_random(garbage, len);
        int r = io->write(io->opaque, (uint64_t)s->key_offset * LUKS_SECTOR_SIZE, garbage, len);
        if (r < 0) {
            error_setg_errno(errp, -r, "Could not erase keyslot %d", idx);
            ret = ret < 0 ? ret : r;
            break;
        }
    }
    free(garbage);
    return ret;
}

/* ---- create ---- */

static void make_uuid(char *out, const BdrvRepro *repro)
{
    uint8_t u[16];
    if (repro && repro->enabled) {
        repro_random_bytes(repro, "luks-uuid", u, sizeof(u));
    } else {
        luks_random(u, sizeof(u));
    }
    u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
    u[8] = (u[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    snprintf(out, 41, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
             u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
             u[14], u[15]);
}

/* Fill everything but the slots' salts/iterations/material. */
static int init_header(LuksVolume *v, const LuksCreateParams *p, const BdrvRepro *repro,
                       Error **errp)
{
    LuksHeader *h = &v->hdr;
    const LuksAlgs *a = &p->algs;
    h->version = 1;
    make_uuid(h->uuid, repro);
    snprintf(h->cipher_name, sizeof(h->cipher_name), "%s", luks_cipher_family(a->cipher));
    int n = a->has_ivgen_hash ? snprintf(h->cipher_mode, sizeof(h->cipher_mode), "%s-%s:%s",
                                         luks_mode_name(a->mode), luks_ivgen_name(a->ivgen),
                                         luks_hash_name(a->ivgen_hash))
                              : snprintf(h->cipher_mode, sizeof(h->cipher_mode), "%s-%s",
                                         luks_mode_name(a->mode), luks_ivgen_name(a->ivgen));
    if (n >= 32) {
        error_setg(errp, "Cipher mode '%s' is too long for LUKS header", h->cipher_mode);
        return -EINVAL;
    }
    snprintf(h->hash_spec, sizeof(h->hash_spec), "%s", luks_hash_name(a->hash));
    h->key_bytes = key_bytes_for(a);
    if ((uint64_t)h->key_bytes * LUKS_STRIPES % LUKS_SECTOR_SIZE) {
        /* qemu 7.2 aborts on such key material (aes-192 outside xts) */
        error_setg(errp,
                   "Cipher %s in mode %s is not supported: its key material (%" PRIu32
                   " bytes x %d stripes) is not a whole number of sectors",
                   luks_cipher_name(a->cipher), luks_mode_name(a->mode), h->key_bytes,
                   LUKS_STRIPES);
        return -ENOTSUP;
    }
    uint64_t split = luks_split_sectors(h->key_bytes, LUKS_STRIPES);
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        h->slots[i].active = LUKS_SLOT_DISABLED;
        h->slots[i].stripes = LUKS_STRIPES;
        h->slots[i].key_offset = (uint32_t)(LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR_SIZE + i * split);
    }
    h->payload_offset = (uint32_t)(luks_payload_offset_for(a) / LUKS_SECTOR_SIZE);
    v->payload_offset = luks_payload_offset_for(a);
    return 0;
}

/* The master key: CSPRNG, or under repro PBKDF2(passphrase, seed salt). */
static int make_master_key(LuksVolume *v, const char *pw, size_t pw_len, uint64_t iter_time,
                           const BdrvRepro *repro, uint8_t *mk, Error **errp)
{
    if (!repro || !repro->enabled) {
        luks_random(mk, v->hdr.key_bytes);
        luks_random(v->hdr.mk_salt, LUKS_SALT_LEN);
        return 0;
    }
    repro_random_bytes(repro, "luks-mk-salt", v->hdr.mk_salt, LUKS_SALT_LEN);
    uint8_t salt[LUKS_SALT_LEN];
    uint32_t iters;
    repro_random_bytes(repro, "luks-master-key", salt, sizeof(salt));
    int ret = timed_iterations(v->algs.hash, pw_len, v->hdr.key_bytes, iter_time, false, repro,
                               &iters, errp);
    if (ret == 0 && luks_pbkdf2(v->algs.hash, (const uint8_t *)pw, pw_len, salt, sizeof(salt),
                                iters, mk, v->hdr.key_bytes) < 0) {
        error_setg(errp, "PBKDF2 of the passphrase failed");
        ret = -EIO;
    }
    return ret;
}

static int create_with_key(LuksVolume *v, const LuksCreateParams *p, const LuksIO *io,
                           const char *pw, size_t pw_len, const BdrvRepro *repro, Error **errp)
{
    uint8_t mk[LUKS_MAX_KEY_BYTES];
    int ret = make_master_key(v, pw, pw_len, p->iter_time, repro, mk, errp);
    if (ret == 0) {
        ret = timed_iterations(v->algs.hash, v->hdr.key_bytes, LUKS_DIGEST_LEN, p->iter_time, true,
                               repro, &v->hdr.mk_iterations, errp);
    }
    if (ret == 0) {
        ret = luks_mk_digest(v, mk, v->hdr.mk_digest, errp);
    }
    if (ret == 0) {
        ret = luks_store_key(v, io, 0, pw, pw_len, mk, p->iter_time, repro, errp);
    }
    if (ret == 0 && !(v->cipher = luks_cipher_new(&v->algs, mk, v->hdr.key_bytes, errp))) {
        ret = -ENOTSUP;
    }
    explicit_bzero(mk, sizeof(mk));
    return ret;
}

int luks_volume_create(LuksVolume *v, const LuksCreateParams *p, const LuksIO *io,
                       const BdrvRepro *repro, Error **errp)
{
    memset(v, 0, sizeof(*v));
    v->optprefix = "";
    v->algs = p->algs;
    size_t pw_len = 0;
    char *pw = p->secret_id ? luks_secret_get(p->secret_id, &pw_len, errp) : NULL;
    if (!pw) {
        return -EINVAL;
    }
    int ret = luks_algs_check(&v->algs, true, errp);
    if (ret == 0) {
        ret = init_header(v, p, repro, errp);
    }
    if (ret == 0) {
        ret = create_with_key(v, p, io, pw, pw_len, repro, errp);
    }
    secret_store_free((uint8_t *)pw, pw_len);
    if (ret == 0) {
        v->secret_id = xstrdup(p->secret_id);
    } else {
        luks_volume_close(v);
    }
    return ret;
}

/* ---- info ---- */

JVal *luks_volume_info(const LuksVolume *v)
{
    /* qemu's QCryptoBlockInfoLUKS members in declaration order; the engine
     * reorders them as qemu's QDict does */
    JVal *d = json_object();
    json_add_str(d, "cipher-alg", luks_cipher_name(v->algs.cipher));
    json_add_str(d, "cipher-mode", luks_mode_name(v->algs.mode));
    json_add_str(d, "ivgen-alg", luks_ivgen_name(v->algs.ivgen));
    if (v->algs.ivgen == LUKS_IVGEN_ESSIV) {
        json_add_str(d, "ivgen-hash-alg", luks_hash_name(v->algs.ivgen_hash));
    }
    json_add_str(d, "hash-alg", luks_hash_name(v->algs.hash));
    json_add_int(d, "payload-offset", (int64_t)v->payload_offset);
    json_add_int(d, "master-key-iters", v->hdr.mk_iterations);
    char uuid[41];
    memcpy(uuid, v->hdr.uuid, sizeof(uuid));
    json_add_str(d, "uuid", uuid);
    JVal *slots = json_object_add(d, "slots", json_array());
    for (int i = 0; i < LUKS_NUM_SLOTS; i++) {
        const LuksKeySlot *s = &v->hdr.slots[i];
        JVal *o = json_array_add(slots, json_object());
        bool active = s->active == LUKS_SLOT_ENABLED;
        json_add_bool(o, "active", active);
        if (active) {
            json_add_int(o, "iters", s->iterations);
            json_add_int(o, "stripes", s->stripes);
        }
        json_add_int(o, "key-offset", (int64_t)s->key_offset * LUKS_SECTOR_SIZE);
    }
    return d;
}
