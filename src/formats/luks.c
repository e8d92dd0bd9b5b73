/*
 * luks.c — the "luks" format driver: a LUKS1 volume whose payload is the
 * guest disk (qemu's block/crypto.c).  Header, key slots and algorithms
 * are in the crypto block (luks.h, luks-*.c); this file maps the guest
 * onto the payload: guest byte N lives at payload-offset + N, encrypted
 * per 512-byte sector with IV sector number N / 512.
 *
 * As in qemu 7.2:
 *  - open needs "key-secret=ID" (--image-opts) unless the caller only
 *    reads metadata (BDRV_O_NO_IO: info), which parses the header only;
 *  - the virtual size is the file size minus the payload offset, rounded
 *    up to a sector; a file shorter than the payload offset fails with
 *    "Could not refresh total sector count: Input/output error";
 *  - sectors never written read as whatever decrypting the file's bytes
 *    gives (a fresh image is noise, not zeros); block status is "all
 *    data"; zero writes are encrypted zeros; no discard, no check;
 *  - create writes the header, slot 0 and then grows the file to
 *    payload + size with the requested preallocation.
 * Ours: "max-pbkdf-iters=N" raises the PBKDF2 budget per key slot
 * (default LUKS_DEFAULT_MAX_ITER = 50,000,000: about 10 s of SHA-256 on a
 * fast core; qemu's own 2 s default stays well below it), so a hostile
 * header cannot make open spin for hours.  A failing create never
 * deletes a file that was there before (qemu deletes it when the secret
 * lookup fails): secrets and algorithms are checked before the file is
 * touched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blocklayer/block_int.h"
#include "common/util.h"
#include "formats/luks.h"

#define LUKS_BOUNCE (1u << 20) /* bytes encrypted per write chunk */

typedef struct BDRVLuksState {
    LuksVolume vol;
} BDRVLuksState;

/* ---- LuksIO over a BlockFile at offset 0 ---- */

static int file_read(void *opaque, uint64_t offset, void *buf, size_t len)
{
    return bfile_pread(opaque, (int64_t)offset, buf, len);
}

static int file_write(void *opaque, uint64_t offset, const void *buf, size_t len)
{
    return bfile_pwrite(opaque, (int64_t)offset, buf, len);
}

static LuksIO file_io(BlockFile *f)
{
    return (LuksIO){file_read, file_write, f};
}

/* ---- probe ---- */

static int luks_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return luks_has_format(buf, (size_t)MAX(buf_size, 0)) ? 100 : 0;
}

/* ---- create ---- */

static const OptDesc luks_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"key-secret", OPT_STRING, "ID of the secret that provides the keyslot passphrase", NULL},
    {"cipher-alg", OPT_STRING, "Name of encryption cipher algorithm", NULL},
    {"cipher-mode", OPT_STRING, "Name of encryption cipher mode", NULL},
    {"ivgen-alg", OPT_STRING, "Name of IV generator algorithm", NULL},
    {"ivgen-hash-alg", OPT_STRING, "Name of IV generator hash algorithm", NULL},
    {"hash-alg", OPT_STRING, "Name of encryption hash algorithm", NULL},
    {"iter-time", OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL},
    {NULL, 0, NULL, NULL},
};

static const OptDesc luks_amend_opts[] = {
    {"state", OPT_STRING, "Select new state of affected keyslots (active/inactive)", NULL},
    {"keyslot", OPT_NUMBER, "Select a single keyslot to modify explicitly", NULL},
    {"old-secret", OPT_STRING, "Select all keyslots that match this password", NULL},
    {"new-secret", OPT_STRING, "New secret to set in the matching keyslots. Empty string to erase",
     NULL},
    {"iter-time", OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL},
    {NULL, 0, NULL, NULL},
};

/* Everything create/measure can refuse before any file or PBKDF work:
 * options, the secret (qemu's order: key-secret, then lookup), algorithms. */
static int luks_precheck(const Opts *opts, LuksCreateParams *p, Error **errp)
{
    int ret = luks_create_params_parse(opts, "", p, errp);
    if (ret < 0) {
        return ret;
    }
    if (!p->secret_id) {
        error_setg(errp, "Parameter 'key-secret' is required for cipher");
        return -EINVAL;
    }
    size_t len;
    char *pw = luks_secret_get(p->secret_id, &len, errp);
    if (!pw) {
        return -EINVAL;
    }
    free(pw);
    return luks_algs_check(&p->algs, true, errp);
}

static int luks_create(const BdrvCreateInfo *ci, Error **errp)
{
    LuksCreateParams p;
    PreallocMode prealloc = PREALLOC_OFF;
    const char *pa = opts_get(ci->opts, "preallocation");
    if (pa && (prealloc_parse(pa, &prealloc) < 0 || prealloc == PREALLOC_METADATA)) {
        error_setg(errp, "Parameter 'preallocation' does not accept value '%s'", pa);
        return -EINVAL;
    }
    int ret = luks_precheck(ci->opts, &p, errp);
    if (ret < 0) {
        return ret;
    }
    BlockFile *f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    uint64_t payload = luks_payload_offset_for(&p.algs);
    LuksVolume vol;
    LuksIO io = file_io(f);
    ret = bfile_truncate(f, (int64_t)payload, PREALLOC_OFF, errp);
    if (ret == 0) {
        ret = luks_volume_create(&vol, &p, &io, &ci->repro, errp);
        if (ret == 0) {
            luks_volume_close(&vol);
        }
    }
    if (ret == 0) {
        ret = bfile_truncate(f, (int64_t)(payload + ci->size), prealloc, errp);
    }
    if (ret == 0) {
        ret = bfile_flush(f);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush '%s'", ci->filename);
        }
    }
    bfile_close(f);
    if (ret < 0) {
        unlink(ci->filename); /* a header without its key slot is no image */
    }
    return ret;
}

/* ---- open/close ---- */

static int parse_runtime_opts(const Opts *options, const char **secret, uint64_t *max_iters,
                              Error **errp)
{
    *secret = NULL;
    *max_iters = 0;
    for (size_t i = 0; options && i < options->n; i++) {
        const char *k = options->keys[i];
        if (!strcmp(k, "key-secret")) {
            *secret = options->values[i];
        } else if (!strcmp(k, "max-pbkdf-iters")) {
            if (parse_uint64(options->values[i], max_iters) < 0 || *max_iters == 0) {
                error_setg(errp, "Parameter 'max-pbkdf-iters' expects a positive number");
                return -EINVAL;
            }
        } else {
            error_setg(errp, "Block format 'luks' does not support the option '%s'", k);
            return -EINVAL;
        }
    }
    return 0;
}

static int luks_open(BlockDriverState *bs, const Opts *options, int flags, Error **errp)
{
    BDRVLuksState *s = bs->opaque;
    const char *secret;
    uint64_t max_iters;
    int ret = parse_runtime_opts(options, &secret, &max_iters, errp);
    if (ret < 0) {
        return ret;
    }
    LuksIO io = file_io(bs->file);
    bool need_key = !(flags & BDRV_O_NO_IO);
    ret = luks_volume_open(&s->vol, &io, secret, need_key, "", max_iters, errp);
    if (ret < 0) {
        return ret;
    }
    int64_t len = bfile_getlength(bs->file);
    if (len < 0 || (uint64_t)len < s->vol.payload_offset) {
        error_setg_errno(errp, len < 0 ? (int)-len : EIO, "Could not refresh total sector count");
        luks_volume_close(&s->vol);
        return len < 0 ? (int)len : -EIO;
    }
    bs->total_size = ROUND_UP(len - (int64_t)s->vol.payload_offset, (int64_t)LUKS_SECTOR_SIZE);
    bs->request_alignment = LUKS_SECTOR_SIZE;
    bs->encrypted = true;
    return 0;
}

static void luks_close(BlockDriverState *bs)
{
    BDRVLuksState *s = bs->opaque;
    luks_volume_close(&s->vol);
}

/* ---- data plane ---- */

static int luks_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf)
{
    BDRVLuksState *s = bs->opaque;
    if (!s->vol.cipher) {
        return -EACCES; /* opened for metadata only */
    }
    int ret = bfile_pread(bs->file, (int64_t)s->vol.payload_offset + offset, buf, (size_t)bytes);
    if (ret == 0) {
        ret = luks_cipher_crypt(s->vol.cipher, (uint64_t)offset / LUKS_SECTOR_SIZE, buf,
                                (size_t)bytes, false);
    }
    return ret;
}

static int luks_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf)
{
    BDRVLuksState *s = bs->opaque;
    if (!s->vol.cipher) {
        return -EACCES;
    }
    uint8_t *bounce = xmalloc(MIN((size_t)bytes, LUKS_BOUNCE));
    int ret = 0;
    for (int64_t done = 0; ret == 0 && done < bytes;) {
        size_t n = (size_t)MIN(bytes - done, (int64_t)LUKS_BOUNCE);
        memcpy(bounce, (const uint8_t *)buf + done, n);
        ret = luks_cipher_crypt(s->vol.cipher, (uint64_t)(offset + done) / LUKS_SECTOR_SIZE, bounce,
                                n, true);
        if (ret == 0) {
            ret = bfile_pwrite(bs->file, (int64_t)s->vol.payload_offset + offset + done, bounce, n);
        }
        done += (int64_t)n;
    }
    free(bounce);
    return ret;
}

/* ---- control plane ---- */

static int luks_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                         bool shrink_allowed, Error **errp)
{
    BDRVLuksState *s = bs->opaque;
    if (offset > INT64_MAX - (int64_t)s->vol.payload_offset) {
        error_setg(errp, "The requested size is too large");
        return -EFBIG;
    }
    int ret = bfile_truncate(bs->file, offset + (int64_t)s->vol.payload_offset, prealloc, errp);
    if (ret == 0) {
        bs->total_size = ROUND_UP(offset, (int64_t)LUKS_SECTOR_SIZE);
    }
    return ret;
}

static int luks_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return 0; /* qemu reports the file's (no cluster size, not dirty) */
}

static JVal *luks_get_specific_info(BlockDriverState *bs, Error **errp)
{
    BDRVLuksState *s = bs->opaque;
    JVal *info = json_object();
    json_add_str(info, "type", "luks");
    json_object_add(info, "data", luks_volume_info(&s->vol));
    return info;
}

static int luks_measure(const Opts *opts, BlockDriverState *in_bs, BlockMeasureInfo *info,
                        Error **errp)
{
    uint64_t size;
    if (in_bs) {
        size = (uint64_t)bdrv_getlength(in_bs);
    } else if (opts_get_size(opts, "size", 0, &size, errp) < 0) {
        return -EINVAL;
    }
    LuksCreateParams p;
    int ret = luks_precheck(opts, &p, errp);
    if (ret < 0) {
        return ret;
    }
    info->required = luks_payload_offset_for(&p.algs) + size;
    info->fully_allocated = info->required;
    return 0;
}

static int luks_amend(BlockDriverState *bs, const Opts *opts, bool force, ProgressFn progress,
                      void *progress_opaque, Error **errp)
{
    BDRVLuksState *s = bs->opaque;
    LuksIO io = file_io(bs->file);
    int ret = luks_volume_amend(&s->vol, &io, opts, "", force, errp);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush the LUKS header");
        }
    }
    return ret;
}

/* Unwritten payload sectors decrypt to noise, not zeros. */
static bool luks_has_zero_init(BlockDriverState *bs)
{
    return false;
}

const BlockDriver bdrv_luks = {
    .format_name = "luks",
    .instance_size = sizeof(BDRVLuksState),
    .thread_model = THREAD_MODEL_PARALLEL,
    .probe = luks_probe,
    .create = luks_create,
    .create_opts = luks_create_opts,
    .open = luks_open,
    .close = luks_close,
    .pread = luks_pread,
    .pwrite = luks_pwrite,
    .truncate = luks_truncate,
    .get_info = luks_get_info,
    .get_specific_info = luks_get_specific_info,
    .measure = luks_measure,
    .amend = luks_amend,
    .amend_opts = luks_amend_opts,
    .has_zero_init = luks_has_zero_init,
};
