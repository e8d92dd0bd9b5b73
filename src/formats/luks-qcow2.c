/*
 * luks-qcow2.c — LUKS encryption inside qcow2 (crypt_method 2), on the
 * crypto block of luks.h.  Spec: QEMU docs/interop/qcow2.txt ("Full disk
 * encryption header pointer" extension 0x0537be77) and qemu 7.2's
 * behaviour:
 *  - the extension names a region of whole clusters holding a complete
 *    LUKS1 header + key material (its payload offset = the region length);
 *  - data clusters are encrypted per 512-byte sector with the IV sector
 *    number taken from the HOST offset (qemu's crypt_physical_offset;
 *    verified on images made by qemu-img), so a cluster's ciphertext
 *    changes when it moves;
 *  - runtime options "encrypt.key-secret", "encrypt.format" (must be
 *    "luks"); create options "encrypt.*" as for the luks driver;
 *  - zero clusters, unallocated clusters and the backing file are plain:
 *    only the bytes stored in data clusters are encrypted.
 * Legacy AES (crypt_method 1) is recognised (info shows it) but not read or
 * written: qemu deprecated it and it needs a different cipher block.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/luks.h"
#include "formats/qcow2.h"

#define QCOW2_CRYPTO_BOUNCE (1u << 20)

/* ---- the header region as LuksIO ---- */

static int region_check(BDRVQcow2State *s, uint64_t offset, size_t len)
{
    return offset > s->crypto_header_length || len > s->crypto_header_length - offset ? -ERANGE : 0;
}

static int region_read(void *opaque, uint64_t offset, void *buf, size_t len)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = qcow2_state(bs);
    int ret = region_check(s, offset, len);
    return ret < 0 ? ret
                   : bfile_pread(bs->file, (int64_t)(s->crypto_header_offset + offset), buf, len);
}

static int region_write(void *opaque, uint64_t offset, const void *buf, size_t len)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = qcow2_state(bs);
    int ret = region_check(s, offset, len);
    return ret < 0 ? ret
                   : bfile_pwrite(bs->file, (int64_t)(s->crypto_header_offset + offset), buf, len);
}

static LuksIO region_io(BlockDriverState *bs)
{
    return (LuksIO){region_read, region_write, bs};
}

/* ---- open ---- */

/* The "encrypt." runtime options qemu's qcow2 takes. */
static int crypto_runtime_opts(BDRVQcow2State *s, const Opts *options, const char **secret,
                               uint64_t *max_iters, Error **errp)
{
    const char *fmt = options ? opts_get(options, "encrypt.format") : NULL;
    const char *mi = options ? opts_get(options, "encrypt.max-pbkdf-iters") : NULL;
    *secret = options ? opts_get(options, "encrypt.key-secret") : NULL;
    *max_iters = 0;
    if (s->crypt_method_header == QCOW2_CRYPT_NONE && fmt) {
        error_setg(errp, "No encryption in image header, but options specified format '%s'", fmt);
        return -EINVAL;
    }
    const char *want = s->crypt_method_header == QCOW2_CRYPT_AES ? "aes" : "luks";
    if (s->crypt_method_header != QCOW2_CRYPT_NONE && fmt && strcmp(fmt, want)) {
        error_setg(errp, "Header reported '%s' encryption format but options specify '%s'", want,
                   fmt);
        return -EINVAL;
    }
    if (mi && (parse_uint64(mi, max_iters) < 0 || *max_iters == 0)) {
        error_setg(errp, "Parameter 'encrypt.max-pbkdf-iters' expects a positive number");
        return -EINVAL;
    }
    return 0;
}

int qcow2_crypto_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    const char *secret;
    uint64_t max_iters;
    int ret = crypto_runtime_opts(s, options, &secret, &max_iters, errp);
    if (ret < 0 || s->crypt_method_header == QCOW2_CRYPT_NONE) {
        return ret;
    }
    bool need_key = !(flags & BDRV_O_NO_IO);
    bs->encrypted = true;
    if (s->crypt_method_header == QCOW2_CRYPT_AES) {
        if (need_key) {
            error_setg(errp, "AES-encrypted qcow2 images are not supported (qemu deprecated "
                             "them); convert with qemu-img to a LUKS-encrypted image");
            return -ENOTSUP;
        }
        return 0;
    }
    if (!s->crypto_header_offset) {
        if (need_key) {
            error_setg(errp, "Missing CRYPTO header for crypt method %" PRIu32,
                       s->crypt_method_header);
            return -EINVAL;
        }
        return 0;
    }
    LuksVolume *vol = XNEW(LuksVolume);
    LuksIO io = region_io(bs);
    ret = luks_volume_open(vol, &io, secret, need_key, "encrypt.", max_iters, errp);
    if (ret < 0) {
        free(vol);
        return ret;
    }
    s->crypto = vol;
    bs->request_alignment = MAX(bs->request_alignment, (uint32_t)LUKS_SECTOR_SIZE);
    return 0;
}

void qcow2_crypto_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (s->crypto) {
        luks_volume_close(s->crypto);
        free(s->crypto);
        s->crypto = NULL;
    }
}

/* ---- data ---- */

/* Host offsets and lengths are whole sectors: the block layer aligns guest
 * requests to 512 and clusters are at least 512 bytes. */
static const LuksCipher *data_cipher(const BDRVQcow2State *s, uint64_t host, size_t len)
{
    const LuksVolume *vol = s->crypto;
    if (!vol || !vol->cipher || host % LUKS_SECTOR_SIZE || len % LUKS_SECTOR_SIZE) {
        return NULL;
    }
    return vol->cipher;
}

int qcow2_crypto_decrypt(BDRVQcow2State *s, uint64_t host, void *buf, size_t len)
{
    if (!s->crypto && s->crypt_method_header == QCOW2_CRYPT_NONE) {
        return 0;
    }
    const LuksCipher *c = data_cipher(s, host, len);
    return c ? luks_cipher_crypt(c, host / LUKS_SECTOR_SIZE, buf, len, false) : -EIO;
}

int qcow2_crypto_pwrite(BDRVQcow2State *s, BlockFile *f, uint64_t host, const void *buf, size_t len)
{
    if (!s->crypto && s->crypt_method_header == QCOW2_CRYPT_NONE) {
        return bfile_pwrite(f, (int64_t)host, buf, len);
    }
    const LuksCipher *c = data_cipher(s, host, len);
    if (!c) {
        return -EIO;
    }
    uint8_t *bounce = xmalloc(MIN(len, (size_t)QCOW2_CRYPTO_BOUNCE));
    int ret = 0;
    for (size_t done = 0; ret == 0 && done < len;) {
        size_t n = MIN(len - done, (size_t)QCOW2_CRYPTO_BOUNCE);
        memcpy(bounce, (const uint8_t *)buf + done, n);
        ret = luks_cipher_crypt(c, (host + done) / LUKS_SECTOR_SIZE, bounce, n, true);
        if (ret == 0) {
            ret = bfile_pwrite(f, (int64_t)(host + done), bounce, n);
        }
        done += n;
    }
    free(bounce);
    return ret;
}

/* ---- info ---- */

JVal *qcow2_crypto_info(BDRVQcow2State *s)
{
    if (s->crypt_method_header == QCOW2_CRYPT_NONE) {
        return NULL;
    }
    const LuksVolume *vol = s->crypto;
    JVal *e = json_object();
    json_add_str(e, "format", s->crypt_method_header == QCOW2_CRYPT_AES ? "aes" : "luks");
    if (vol) {
        JVal *d = luks_volume_info(vol);
        for (size_t i = 0; i < d->n; i++) {
            json_object_add(e, d->keys[i], d->items[i]);
            d->items[i] = NULL;
        }
        json_free(d);
    }
    return e;
}

/* ---- create ---- */

int qcow2_crypto_precheck(const Opts *opts, const char *format, uint64_t *header_len, Error **errp)
{
    *header_len = 0;
    if (!format) {
        return 0;
    }
    if (!strcmp(format, "aes")) {
        error_setg(errp, "AES-encrypted qcow2 images are not supported (qemu deprecated them); "
                         "use encrypt.format=luks");
        return -ENOTSUP;
    }
    if (strcmp(format, "luks")) {
        error_setg(errp, "Parameter 'encrypt.format' does not accept value '%s'", format);
        return -EINVAL;
    }
    LuksCreateParams p;
    int ret = luks_create_params_parse(opts, "encrypt.", &p, errp);
    if (ret < 0) {
        return ret;
    }
    if (!p.secret_id) {
        error_setg(errp, "Parameter 'encrypt.key-secret' is required for cipher");
        return -EINVAL;
    }
    size_t len;
    char *pw = luks_secret_get(p.secret_id, &len, errp);
    if (!pw) {
        return -EINVAL;
    }
    explicit_bzero(pw, len);
    free(pw);
    ret = luks_algs_check(&p.algs, true, errp);
    *header_len = luks_payload_offset_for(&p.algs);
    return ret;
}

int qcow2_crypto_create(BlockDriverState *bs, const Opts *opts, const BdrvRepro *repro,
                        Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    LuksCreateParams p;
    int ret = luks_create_params_parse(opts, "encrypt.", &p, errp);
    if (ret < 0) {
        return ret;
    }
    uint64_t len = luks_payload_offset_for(&p.algs);
    int64_t off = qcow2_alloc_clusters(bs, len);
    if (off < 0) {
        error_setg_errno(errp, (int)-off, "Cannot allocate cluster for LUKS header size %" PRIu64,
                         len);
        return (int)off;
    }
    /* real zeros, as qemu: unused key slots read as zeros and the region
     * is allocated on disk like qemu's */
    size_t zlen = ROUND_UP(len, s->cluster_size);
    void *zeros = xzalloc(zlen); /* len <= 2 MiB (luks_payload_offset_for) */
    ret = bfile_pwrite(bs->file, off, zeros, zlen);
    free(zeros);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not zero fill encryption header");
        return ret;
    }
    s->crypto_header_offset = (uint64_t)off;
    s->crypto_header_length = len;
    LuksVolume *vol = XNEW(LuksVolume);
    LuksIO io = region_io(bs);
    ret = luks_volume_create(vol, &p, &io, repro, errp);
    if (ret < 0) {
        free(vol);
        return ret;
    }
    vol->optprefix = "encrypt.";
    s->crypto = vol;
    s->crypt_method_header = QCOW2_CRYPT_LUKS;
    bs->encrypted = true;
    bs->request_alignment = MAX(bs->request_alignment, (uint32_t)LUKS_SECTOR_SIZE);
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not update qcow2 header");
    }
    return ret;
}

/* ---- amend ---- */

int qcow2_crypto_amend(BlockDriverState *bs, const Opts *opts, bool force, Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    LuksIO io = region_io(bs);
    pthread_mutex_lock(&s->lock);
    int ret = luks_volume_amend(s->crypto, &io, opts, "encrypt.", force, errp);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush the encryption header");
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}
