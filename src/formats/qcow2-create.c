/*
 * qcow2-create.c — qcow2 create (with preallocation), its option table and
 * measure.
 *
 * Spec: QEMU docs/interop/qcow2.txt.  Behaviour follows qemu-img 7.2: the
 * option table is in QEMU's declaration order (it drives `-o help` and the
 * "Formatting" line), option errors use QEMU's words, and an image we create
 * is byte-identical to qemu-img's: header cluster, refcount table at
 * cluster 1, refcount block at cluster 2, L1 table at cluster 3, L2 tables
 * and data after (metadata preallocation interleaves them as QEMU does).
 * measure reproduces QEMU's arithmetic exactly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/luks.h"
#include "formats/qcow2.h"

extern const BlockDriver bdrv_qcow2;

/* ---- create options ---- */

const OptDesc qcow2_create_opts[] = {
    {"encryption", OPT_BOOL,
     "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)", NULL},
    {"encrypt.format", OPT_STRING, "Encrypt the image, format choices: 'aes', 'luks'", NULL},
    {"encrypt.key-secret", OPT_STRING, "ID of secret providing qcow AES key or LUKS passphrase",
     NULL},
    {"encrypt.cipher-alg", OPT_STRING, "Name of encryption cipher algorithm", NULL},
    {"encrypt.cipher-mode", OPT_STRING, "Name of encryption cipher mode", NULL},
    {"encrypt.ivgen-alg", OPT_STRING, "Name of IV generator algorithm", NULL},
    {"encrypt.ivgen-hash-alg", OPT_STRING, "Name of IV generator hash algorithm", NULL},
    {"encrypt.hash-alg", OPT_STRING, "Name of encryption hash algorithm", NULL},
    {"encrypt.iter-time", OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL},
    {"cluster_size", OPT_SIZE, "qcow2 cluster size", "65536"},
    {"extended_l2", OPT_BOOL, "Extended L2 tables", "off"},
    {"preallocation", OPT_STRING,
     "Preallocation mode (allowed values: off, metadata, falloc, full)", NULL},
    {"compression_type", OPT_STRING, "Compression method used for image cluster compression",
     "zlib"},
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"compat", OPT_STRING, "Compatibility level (v2 [0.10] or v3 [1.1])", NULL},
    {"backing_file", OPT_STRING, "File name of a base image", NULL},
    {"backing_fmt", OPT_STRING, "Image format of the base image", NULL},
    {"data_file", OPT_STRING, "File name of an external data file", NULL},
    {"data_file_raw", OPT_BOOL, "The external data file must stay valid as a raw image", NULL},
    {"lazy_refcounts", OPT_BOOL, "Postpone refcount updates", "off"},
    {"refcount_bits", OPT_NUMBER, "Width of a reference count entry in bits", "16"},
    {NULL, 0, NULL, NULL},
};

typedef struct Qcow2CreateParams {
    uint64_t size;
    int version;
    int cluster_bits;
    int refcount_order;
    bool lazy_refcounts;
    bool extended_l2;
    PreallocMode prealloc;
    int compression_type;
    const char *backing_file;
    const char *backing_fmt;
    const char *data_file;
    bool data_file_raw;
    const char *encrypt_format;
} Qcow2CreateParams;

static int parse_version(const char *v, int *version, Error **errp)
{
    if (!v || !strcmp(v, "1.1") || !strcmp(v, "v3")) {
        *version = 3;
    } else if (!strcmp(v, "0.10") || !strcmp(v, "v2")) {
        *version = 2;
    } else {
        error_setg(errp, "Parameter 'version' does not accept value '%s'", v);
        return -EINVAL;
    }
    return 0;
}

static int parse_enums(const Opts *o, Qcow2CreateParams *p, Error **errp)
{
    const char *v = opts_get(o, "compression_type");
    if (!v || !strcmp(v, "zlib")) {
        p->compression_type = QCOW2_COMPRESSION_ZLIB;
    } else if (!strcmp(v, "zstd")) {
        p->compression_type = QCOW2_COMPRESSION_ZSTD;
    } else {
        error_setg(errp, "Parameter 'compression-type' does not accept value '%s'", v);
        return -EINVAL;
    }
    v = opts_get(o, "preallocation");
    p->prealloc = PREALLOC_OFF;
    if (v && prealloc_parse(v, &p->prealloc) < 0) {
        error_setg(errp, "Parameter 'preallocation' does not accept value '%s'", v);
        return -EINVAL;
    }
    bool enc = false;
    if (opts_get_bool(o, "encryption", false, &enc, errp) < 0) {
        return -EINVAL;
    }
    p->encrypt_format = opts_get(o, "encrypt.format");
    if (enc && !p->encrypt_format) {
        p->encrypt_format = "aes";
    }
    return 0;
}

static int parse_numbers(const Opts *o, Qcow2CreateParams *p, Error **errp)
{
    uint64_t cs, rb;
    if (opts_get_size(o, "size", 0, &p->size, errp) < 0 ||
        opts_get_bool(o, "extended_l2", false, &p->extended_l2, errp) < 0 ||
        opts_get_size(o, "cluster_size", QCOW2_DEFAULT_CLUSTER_SIZE, &cs, errp) < 0 ||
        opts_get_number(o, "refcount_bits", 16, &rb, errp) < 0 ||
        opts_get_bool(o, "lazy_refcounts", false, &p->lazy_refcounts, errp) < 0 ||
        opts_get_bool(o, "data_file_raw", false, &p->data_file_raw, errp) < 0) {
        return -EINVAL;
    }
    if (!IS_POWER_OF_2(cs) || cs < 512 || cs > 2 * MiB) {
        error_setg(errp, "Cluster size must be a power of two between 512 and 2048k");
        return -EINVAL;
    }
    if (p->extended_l2 && cs < 16384) {
        error_setg(errp, "Extended L2 entries are only supported with cluster sizes of at "
                         "least 16384 bytes");
        return -EINVAL;
    }
    p->cluster_bits = __builtin_ctzll(cs);
    if (!IS_POWER_OF_2(rb) || rb > 64) {
        error_setg(errp, "Refcount width must be a power of two and may not exceed 64 bits");
        return -EINVAL;
    }
    p->refcount_order = __builtin_ctzll(rb);
    return 0;
}

/* Cross-option rules, in QEMU's order and words. */
static int check_combinations(Qcow2CreateParams *p, Error **errp)
{
    const char *need_v3 = "compatibility level 1.1 and above (use version=v3 or greater)";
    if (p->version < 3) {
        if (p->refcount_order != 4) {
            error_setg(errp, "Different refcount widths than 16 bits require compatibility "
                             "level 1.1 or above (use version=v3 or greater)");
            return -EINVAL;
        }
        if (p->lazy_refcounts) {
            error_setg(errp, "Lazy refcounts only supported with %s", need_v3);
            return -EINVAL;
        }
        if (p->data_file) {
            error_setg(errp, "External data files are only supported with %s", need_v3);
            return -EINVAL;
        }
        if (p->compression_type != QCOW2_COMPRESSION_ZLIB) {
            error_setg(errp, "Non-zlib compression type is only supported with %s", need_v3);
            return -EINVAL;
        }
        if (p->extended_l2) {
            error_setg(errp, "Extended L2 entries are only supported with %s", need_v3);
            return -EINVAL;
        }
    }
    if (p->data_file_raw && !p->data_file) {
        error_setg(errp, "data-file-raw requires data-file");
        return -EINVAL;
    }
    if (p->data_file_raw && p->backing_file) {
        error_setg(errp, "Backing file and data-file-raw cannot be used at the same time");
        return -EINVAL;
    }
    if (p->backing_fmt && !p->backing_file) {
        error_setg(errp, "Backing format cannot be used without backing file");
        return -EINVAL;
    }
    if (p->backing_file && p->prealloc != PREALLOC_OFF && !p->extended_l2) {
        error_setg(errp, "Backing file and preallocation can only be used at the same time if "
                         "extended_l2 is on");
        return -EINVAL;
    }
    return 0;
}

static int parse_create_params(const Opts *o, Qcow2CreateParams *p, Error **errp)
{
    memset(p, 0, sizeof(*p));
    if (parse_numbers(o, p, errp) < 0 || parse_version(opts_get(o, "compat"), &p->version, errp) ||
        parse_enums(o, p, errp) < 0) {
        return -EINVAL;
    }
    p->backing_file = opts_get(o, "backing_file");
    p->backing_fmt = opts_get(o, "backing_fmt");
    p->data_file = opts_get(o, "data_file");
    return check_combinations(p, errp);
}

/* ---- measure ---- */

/* Refcount table + blocks needed to count `clusters` clusters and themselves. */
static uint64_t refcount_metadata_size(uint64_t clusters, uint64_t cluster_size, int refcount_order)
{
    uint64_t per_table_cluster = cluster_size / 8;
    uint64_t per_block = cluster_size * 8 / (1ULL << refcount_order);
    uint64_t table = 0, blocks = 0, n = 0, last;
    do {
        last = n;
        blocks = DIV_ROUND_UP(clusters + table + blocks, per_block);
        table = DIV_ROUND_UP(blocks, per_table_cluster);
        n = clusters + blocks + table;
    } while (n != last);
    return (blocks + table) * cluster_size;
}

/* Size of a fully allocated image (QEMU's qcow2_calc_prealloc_size). */
static uint64_t calc_prealloc_size(uint64_t size, uint64_t cs, int refcount_order, bool extl2)
{
    uint64_t l2e = extl2 ? 16 : 8;
    uint64_t aligned = ROUND_UP(size, cs);
    uint64_t meta = cs; /* header */
    uint64_t nl2e = ROUND_UP(aligned / cs, cs / l2e);
    meta += nl2e * l2e;
    uint64_t nl1e = ROUND_UP(nl2e * l2e / cs, cs / 8);
    meta += nl1e * 8;
    meta += refcount_metadata_size((meta + aligned) / cs, cs, refcount_order);
    return meta + aligned;
}

/* Bytes of in_bs that would need data clusters (QEMU's scan). */
static int measure_required(BlockDriverState *in_bs, uint64_t cs, uint64_t *required, Error **errp)
{
    int64_t ssize = bdrv_getlength(in_bs);
    int64_t pnum = 0;
    for (int64_t off = 0; off < ssize; off += pnum) {
        int ret =
            bdrv_block_status_above(in_bs, NULL, true, off, ssize - off, &pnum, NULL, NULL, NULL);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Unable to get block status");
            return ret;
        }
        if (ret & BDRV_BLOCK_ZERO) {
            continue;
        }
        if ((ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED)) ==
            (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED)) {
            pnum = (int64_t)ROUND_UP((uint64_t)(off + pnum), cs) - off;
            *required += (uint64_t)(off % (int64_t)cs) + (uint64_t)pnum;
        }
    }
    return 0;
}

int qcow2_measure(const Opts *opts, BlockDriverState *in_bs, BlockMeasureInfo *info, Error **errp)
{
    Qcow2CreateParams p;
    if (parse_create_params(opts, &p, errp) < 0) {
        return -EINVAL;
    }
    uint64_t cs = 1ULL << p.cluster_bits;
    uint64_t luks_payload = 0;
    if (qcow2_crypto_precheck(opts, p.encrypt_format, &luks_payload, errp) < 0) {
        return -EINVAL; /* luks-qcow2.c */
    }
    luks_payload = ROUND_UP(luks_payload, cs);
    uint64_t vsize = ROUND_UP(p.size, cs);
    uint64_t l2e = p.extended_l2 ? 16 : 8;
    if (DIV_ROUND_UP(vsize / cs, cs / l2e) * 8 > QCOW2_MAX_L1_SIZE) {
        error_setg(errp, "The image size is too large (try using a larger cluster size)");
        return -EFBIG;
    }
    uint64_t required = 0;
    if (in_bs) {
        vsize = ROUND_UP((uint64_t)bdrv_getlength(in_bs), cs);
        if (p.backing_file) {
            required = vsize;
        } else if (measure_required(in_bs, cs, &required, errp) < 0) {
            return -EIO;
        }
    }
    if (p.prealloc == PREALLOC_FULL || p.prealloc == PREALLOC_FALLOC) {
        required = vsize;
    }
    info->fully_allocated =
        luks_payload + calc_prealloc_size(vsize, cs, p.refcount_order, p.extended_l2);
    info->required = info->fully_allocated - vsize + required;
    info->has_bitmaps = p.version >= 3 && in_bs && in_bs->drv == &bdrv_qcow2 &&
                        qcow2_state(in_bs)->qcow_version >= 3;
    if (info->has_bitmaps) {
        info->bitmaps = qcow2_measure_bitmaps(in_bs, (uint32_t)cs);
    }
    return 0;
}

/* ---- create ---- */

/* Initial image: header cluster, refcount table (cluster 1) pointing at a
 * refcount block (cluster 2); refcounts are filled in after reopening. */
static int write_initial_image(const BdrvCreateInfo *ci, const Qcow2CreateParams *p, Error **errp)
{
    uint64_t cs = 1ULL << p->cluster_bits;
    BlockDriverState fake = {0};
    BDRVQcow2State st = {0};
    fake.opaque = &st;
    st.qcow_version = p->version;
    qcow2_set_geometry(&st, p->cluster_bits, p->extended_l2);
    st.refcount_order = p->refcount_order;
    st.refcount_table_offset = cs;
    st.refcount_table_size = (uint32_t)(cs / 8);
    st.compression_type = p->compression_type;
    if (p->lazy_refcounts) {
        st.compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
    }
    if (p->data_file) {
        st.incompatible_features |= QCOW2_INCOMPAT_DATA_FILE;
        st.image_data_file = (char *)p->data_file;
    }
    if (p->data_file_raw) {
        st.autoclear_features |= QCOW2_AUTOCLEAR_DATA_FILE_RAW;
    }
    if (p->compression_type != QCOW2_COMPRESSION_ZLIB) {
        st.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
    }
    if (p->extended_l2) {
        st.incompatible_features |= QCOW2_INCOMPAT_EXTL2;
    }
    uint8_t *buf = xzalloc(3 * cs);
    int ret = qcow2_build_header(&fake, buf, cs);
    st64_be(buf + cs, 2 * cs);
    BlockFile *f = NULL;
    if (ret == 0) {
        f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
        ret = f ? bfile_pwrite(f, 0, buf, 3 * cs) : -EIO;
        if (f && ret < 0) {
            error_setg_errno(errp, -ret, "Could not write qcow2 header");
        }
    } else {
        error_setg(errp, "Could not build qcow2 header");
    }
    if (f) {
        bfile_close(f);
    }
    free(buf);
    return ret;
}

static int create_data_file(const BdrvCreateInfo *ci, const Qcow2CreateParams *p, Error **errp)
{
    if (!p->data_file) {
        return 0;
    }
    BlockFile *f = bfile_create(p->data_file, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    bfile_close(f);
    return 0;
}

/* Steps on the reopened image: refcounts, full header, L1, size, backing. */
static int finish_create(BlockDriverState *bs, const Qcow2CreateParams *p, const BdrvCreateInfo *ci,
                         Error **errp)
{
    BDRVQcow2State *s = qcow2_state(bs);
    uint64_t cs = s->cluster_size;
    int64_t off = qcow2_alloc_clusters(bs, 3 * cs);
    int ret = off < 0 ? (int)off : 0;
    if (ret == 0 && off != 0) {
        ret = -EIO;
    }
    if (ret == 0) {
        ret = qcow2_update_header(bs);
    }
    uint64_t l1 = qcow2_l1_entries_for(p->size, s->cluster_bits, s->l2_bits);
    if (ret == 0 && l1 > QCOW2_MAX_L1_SIZE / 8) {
        error_setg(errp, "The image size is too large for file format 'qcow2' (try using a "
                         "larger cluster size)");
        return -EFBIG;
    }
    if (ret == 0) {
        ret = qcow2_grow_l1_table(bs, l1, true);
    }
    if (ret == 0 && p->encrypt_format) {
        ret = qcow2_crypto_create(bs, ci->opts, &ci->repro, errp); /* luks-qcow2.c */
    }
    if (ret == 0) {
        bs->total_size = (int64_t)p->size;
        s->l1_vm_state_index = (uint32_t)l1;
        uint8_t v[8];
        st64_be(v, p->size);
        ret = bfile_pwrite(bs->file, QCOW2_HDR_SIZE, v, sizeof(v));
    }
    if (ret == 0 && p->prealloc != PREALLOC_OFF) {
        ret = qcow2_preallocate(bs, 0, (int64_t)p->size, p->prealloc, errp);
    } else if (ret == 0 && s->data_file != bs->file) {
        ret = bfile_truncate(s->data_file, (int64_t)p->size, PREALLOC_OFF, errp);
    }
    if (ret == 0 && p->backing_file) {
        s->image_backing_file = xstrdup(p->backing_file);
        s->image_backing_format = p->backing_fmt ? xstrdup(p->backing_fmt) : NULL;
        ret = qcow2_update_header(bs);
    }
    if (ret == 0) {
        ret = qcow2_flush_all(bs);
    }
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not create qcow2 image");
    }
    return ret;
}

int qcow2_create(const BdrvCreateInfo *ci, Error **errp)
{
    Qcow2CreateParams p;
    if (parse_create_params(ci->opts, &p, errp) < 0) {
        return -EINVAL;
    }
    p.size = ROUND_UP(ci->size, BDRV_SECTOR_SIZE);
    if (p.data_file_raw && p.prealloc == PREALLOC_OFF) {
        /* A raw data file needs every L2 entry in place (qemu does this). */
        p.prealloc = PREALLOC_METADATA;
    }
    uint64_t luks_len;
    if (qcow2_crypto_precheck(ci->opts, p.encrypt_format, &luks_len, errp) < 0) {
        return -EINVAL; /* luks-qcow2.c */
    }
    int ret = create_data_file(ci, &p, errp);
    if (ret == 0) {
        ret = write_initial_image(ci, &p, errp);
    }
    BlockDriverState *bs = NULL;
    if (ret == 0) {
        bs = bdrv_open(ci->filename, "qcow2", NULL,
                       BDRV_O_RDWR | BDRV_O_NO_BACKING | (ci->flags & BDRV_O_NOCACHE), errp);
        ret = bs ? 0 : -EIO;
    }
    if (bs) {
        BDRVQcow2State *s = qcow2_state(bs);
        pthread_mutex_lock(&s->lock);
        ret = finish_create(bs, &p, ci, errp);
        pthread_mutex_unlock(&s->lock);
        bdrv_unref(bs);
    }
    if (ret < 0) {
        /* as qemu: a failed create leaves neither the image nor its data file */
        unlink(ci->filename);
        if (p.data_file) {
            unlink(p.data_file);
        }
    }
    return ret;
}
