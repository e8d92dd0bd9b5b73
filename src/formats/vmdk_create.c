/*
 * vmdk_create.c — creating VMDK images, with qemu-img 7.2's options,
 * defaults, file names and layouts:
 *
 *   monolithicSparse      one hosted sparse file, descriptor embedded
 *   monolithicFlat        NAME.vmdk descriptor + NAME-flat.vmdk
 *   twoGbMaxExtentSparse  descriptor + NAME-s001.vmdk ... (2 GiB each)
 *   twoGbMaxExtentFlat    descriptor + NAME-f001.vmdk ...
 *   streamOptimized       one compressed sparse file in stream layout:
 *                         header with GD_AT_END, descriptor, then the
 *                         directory, footer and end-of-stream marker
 *                         (qemu puts the directory first; VMware and OVA
 *                         tools expect the footer form, which qemu reads)
 *
 * Sparse extents get 64 KiB grains, 512-entry grain tables, all tables
 * preallocated after a redundant copy, grains from a 64 KiB boundary —
 * qemu's layout.  The CID is random, or derived from the pipeline's seed
 * (ci->repro).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "formats/vmdk.h"

#define VMDK_SPLIT_SIZE  0x80000000LL
#define VMDK_GRANULARITY 128
#define VMDK_NUM_GTES    512

const OptDesc vmdk_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size", NULL},
    {"adapter_type", OPT_STRING,
     "Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX", NULL},
    {"backing_file", OPT_STRING, "File name of a base image", NULL},
    {"backing_fmt", OPT_STRING, "Must be 'vmdk' if present", NULL},
    {"compat6", OPT_BOOL, "VMDK version 6 image", "off"},
    {"hwversion", OPT_STRING, "VMDK hardware version", "undefined"},
    {"toolsversion", OPT_STRING, "VMware guest tools version", NULL},
    {"subformat", OPT_STRING,
     "VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | "
     "twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} ",
     NULL},
    {"zeroed_grain", OPT_BOOL, "Enable efficient zero writes using the zeroed-grain GTE feature",
     NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct VmdkCreateParams {
    int64_t size;
    const char *subformat;
    const char *adapter;
    const char *hw_version;
    const char *tools;
    const char *backing;
    bool flat, split, compress, zeroed_grain;
    PreallocMode prealloc;
    int file_flags;
    /* created files, unlinked on failure */
    char **created;
    int n_created;
} VmdkCreateParams;

static bool one_of(const char *v, const char *const *list)
{
    for (; *list; list++) {
        if (!strcmp(v, *list)) {
            return true;
        }
    }
    return false;
}

static int parse_params(const BdrvCreateInfo *ci, VmdkCreateParams *p, Error **errp)
{
    static const char *const adapters[] = {"ide", "buslogic", "lsilogic", "legacyESX", NULL};
    static const char *const subformats[] = {"monolithicSparse",     "monolithicFlat",
                                             "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
                                             "streamOptimized",      NULL};
    const Opts *o = ci->opts;
    const char *bfmt = opts_get(o, "backing_fmt");
    if (bfmt && strcmp(bfmt, "vmdk")) {
        error_setg(errp, "backing_file must be a vmdk image");
        return -EINVAL;
    }
    p->size = (int64_t)ROUND_UP(ci->size, BDRV_SECTOR_SIZE);
    p->adapter = opts_get(o, "adapter_type") ? opts_get(o, "adapter_type") : "ide";
    p->backing = opts_get(o, "backing_file");
    p->hw_version = opts_get(o, "hwversion");
    p->tools = opts_get(o, "toolsversion") ? opts_get(o, "toolsversion") : "2147483647";
    p->subformat = opts_get(o, "subformat") ? opts_get(o, "subformat") : "monolithicSparse";
    bool compat6 = false;
    if (opts_get_bool(o, "compat6", false, &compat6, errp) < 0 ||
        opts_get_bool(o, "zeroed_grain", false, &p->zeroed_grain, errp) < 0) {
        return -EINVAL;
    }
    if (p->hw_version && !strcmp(p->hw_version, "undefined")) {
        p->hw_version = NULL;
    }
    if (!one_of(p->adapter, adapters)) {
        error_setg(errp, "invalid parameter value: %s", p->adapter);
        return -EINVAL;
    }
    if (!one_of(p->subformat, subformats)) {
        error_setg(errp, "invalid parameter value: %s", p->subformat);
        return -EINVAL;
    }
    const char *pa = opts_get(o, "preallocation");
    if (pa && (prealloc_parse(pa, &p->prealloc) < 0 || p->prealloc == PREALLOC_METADATA)) {
        error_setg(errp, "Invalid parameter '%s'", pa);
        return -EINVAL;
    }
    if (compat6) {
        if (p->hw_version) {
            error_setg(errp, "compat6 cannot be enabled with hwversion set");
            return -EINVAL;
        }
        p->hw_version = "6";
    }
    if (!p->hw_version) {
        p->hw_version = "4";
    }
    p->split = !strncmp(p->subformat, "twoGbMaxExtent", 14);
    p->flat =
        !strcmp(p->subformat, "monolithicFlat") || !strcmp(p->subformat, "twoGbMaxExtentFlat");
    p->compress = !strcmp(p->subformat, "streamOptimized");
    if (p->flat && p->backing) {
        error_setg(errp, "Flat image can't have backing file");
        return -ENOTSUP;
    }
    if (p->flat && p->zeroed_grain) {
        error_setg(errp, "Flat image can't enable zeroed grain");
        return -ENOTSUP;
    }
    p->file_flags = bdrv_create_file_flags(ci);
    return 0;
}

static BlockFile *create_file(VmdkCreateParams *p, const char *path, Error **errp)
{
    BlockFile *f = bfile_create(path, p->file_flags, errp);
    if (f) {
        p->created = xrealloc(p->created, sizeof(char *) * (size_t)(p->n_created + 1));
        p->created[p->n_created++] = xstrdup(path);
    }
    return f;
}

/* Hosted sparse extent with qemu's preallocated tables. */
static int init_sparse(BlockFile *f, int64_t size, bool zeroed_grain)
{
    uint64_t capacity = (uint64_t)size / VMDK_SECTOR;
    uint64_t grains = DIV_ROUND_UP(capacity, VMDK_GRANULARITY);
    uint64_t gt_size = DIV_ROUND_UP(VMDK_NUM_GTES * 4, VMDK_SECTOR);
    uint64_t gt_count = DIV_ROUND_UP(grains, VMDK_NUM_GTES);
    uint64_t gd_sectors = DIV_ROUND_UP(gt_count * 4, VMDK_SECTOR);
    uint64_t rgd = 1 + 20;
    uint64_t gd = rgd + gd_sectors + gt_size * gt_count;
    uint64_t grain_offset = ROUND_UP(gd + gd_sectors + gt_size * gt_count, VMDK_GRANULARITY);
    if (grain_offset + grains * VMDK_GRANULARITY >= VMDK_EXTENT_MAX_SECTORS) {
        return -EFBIG;
    }
    uint8_t h[VMDK_SECTOR];
    uint32_t flags =
        VMDK4_FLAG_RGD | VMDK4_FLAG_NL_DETECT | (zeroed_grain ? VMDK4_FLAG_ZERO_GRAIN : 0);
    vmdk_build_header(h, zeroed_grain ? 2 : 1, flags, capacity, VMDK_GRANULARITY, 1, 20,
                      VMDK_NUM_GTES, rgd, gd, grain_offset, false);
    int ret = bfile_pwrite(f, 0, h, sizeof(h));
    if (ret == 0) {
        ret = bfile_truncate(f, (int64_t)(grain_offset * VMDK_SECTOR), PREALLOC_OFF, NULL);
    }
    uint8_t *dir = xzalloc(gd_sectors * VMDK_SECTOR);
    for (int pass = 0; ret == 0 && pass < 2; pass++) {
        uint64_t base = pass == 0 ? rgd : gd;
        for (uint64_t i = 0; i < gt_count; i++) {
            st32_le(dir + 4 * i, (uint32_t)(base + gd_sectors + i * gt_size));
        }
        ret = bfile_pwrite(f, (int64_t)(base * VMDK_SECTOR), dir, gd_sectors * VMDK_SECTOR);
    }
    free(dir);
    return ret;
}

/* Empty stream-optimized extent: header, then the tail at grain_offset. */
static int init_stream(BlockFile *f, int64_t size, bool zeroed_grain)
{
    uint64_t capacity = (uint64_t)size / VMDK_SECTOR;
    uint32_t flags = VMDK4_FLAG_NL_DETECT | VMDK4_FLAG_COMPRESS | VMDK4_FLAG_MARKER |
                     (zeroed_grain ? VMDK4_FLAG_ZERO_GRAIN : 0);
    VmdkExtent e = {0};
    vmdk_build_header(e.header, 3, flags, capacity, VMDK_GRANULARITY, 1, 20, VMDK_NUM_GTES, 0,
                      VMDK4_GD_AT_END, VMDK_GRANULARITY, true);
    int ret = bfile_pwrite(f, 0, e.header, VMDK_SECTOR);
    uint64_t grains = DIV_ROUND_UP(capacity, VMDK_GRANULARITY);
    e.file = f;
    e.stream = true;
    e.l2_size = VMDK_NUM_GTES;
    e.l1_size = (uint32_t)DIV_ROUND_UP(grains, VMDK_NUM_GTES);
    e.stream_gts = XNEWV(uint32_t *, e.l1_size ? e.l1_size : 1);
    e.next_cluster_sector = VMDK_GRANULARITY;
    if (ret == 0) {
        ret = vmdk_stream_finish(&e);
    }
    free(e.stream_gts);
    return ret;
}

static int create_extent(VmdkCreateParams *p, const char *path, int64_t size, Error **errp,
                         BlockFile **keep)
{
    BlockFile *f = create_file(p, path, errp);
    if (!f) {
        return -EIO;
    }
    int ret;
    if (p->flat) {
        ret = bfile_truncate(f, size, p->prealloc, errp);
    } else if (p->compress) {
        ret = init_stream(f, size, p->zeroed_grain);
    } else {
        ret = init_sparse(f, size, p->zeroed_grain);
    }
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not create extent '%s'", path);
    }
    if (keep && ret == 0) {
        *keep = f;
    } else {
        bfile_close(f);
    }
    return ret;
}

/* Split "dir/name.ext" into "dir/", "name" and ".ext" (qemu's rule). */
static void decompose(const char *filename, char **dir, char **prefix, char **postfix)
{
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    *dir = xstrndup(filename, (size_t)(base - filename));
    const char *dot = strrchr(base, '.');
    *prefix = dot ? xstrndup(base, (size_t)(dot - base)) : xstrdup(base);
    *postfix = xstrdup(dot ? dot : "");
}

static int parent_cid(const char *filename, const char *backing, uint32_t *cid, Error **errp)
{
    char *full = path_combine(filename, backing);
    BlockDriverState *b = bdrv_open(full, NULL, NULL, BDRV_O_NO_BACKING, errp);
    free(full);
    if (!b) {
        return -EIO;
    }
    int ret = 0;
    if (b->drv != &bdrv_vmdk) {
        error_setg(errp, "Invalid backing file format: %s. Must be vmdk", b->drv->format_name);
        ret = -EINVAL;
    } else {
        *cid = ((BDRVVmdkState *)b->opaque)->cid;
    }
    bdrv_unref(b);
    return ret;
}

/* Create the extent files; returns the descriptor's extent lines. */
static int create_extents(VmdkCreateParams *p, const char *filename, StrBuf *lines,
                          BlockFile **desc_file, Error **errp)
{
    char *dir, *prefix, *postfix;
    decompose(filename, &dir, &prefix, &postfix);
    int ret = 0;
    const char *fmt = p->flat ? "RW %" PRId64 " FLAT \"%s\" 0\n" : "RW %" PRId64 " SPARSE \"%s\"\n";
    if (!p->split && !p->flat) {
        /* the extent is the image file itself */
        ret = create_extent(p, filename, p->size, errp, desc_file);
        char *base = xasprintf("%s%s", prefix, postfix);
        sb_addf(lines, fmt, p->size / VMDK_SECTOR, base);
        free(base);
    } else {
        *desc_file = create_file(p, filename, errp);
        ret = *desc_file ? 0 : -EIO;
        int64_t extent_size = p->split ? VMDK_SPLIT_SIZE : p->size;
        int64_t done = 0;
        for (int idx = 1; ret == 0 && done < p->size; idx++) {
            int64_t cur = MIN(p->size - done, extent_size);
            char *rel = p->split
                            ? xasprintf("%s-%c%03d%s", prefix, p->flat ? 'f' : 's', idx, postfix)
                            : xasprintf("%s-flat%s", prefix, postfix);
            char *path = xasprintf("%s%s", dir, rel);
            ret = create_extent(p, path, cur, errp, NULL);
            sb_addf(lines, fmt, DIV_ROUND_UP(cur, VMDK_SECTOR), rel);
            free(path);
            free(rel);
            done += cur;
        }
    }
    free(dir);
    free(prefix);
    free(postfix);
    return ret;
}

static int write_descriptor(VmdkCreateParams *p, BlockFile *f, const char *desc, Error **errp)
{
    size_t len = strlen(desc);
    bool embedded = !p->split && !p->flat;
    if (embedded && len > VMDK_EMBEDDED_DESC) {
        error_setg(errp, "descriptor too long for the embedded descriptor area (%zu bytes)", len);
        return -EINVAL;
    }
    int ret = bfile_pwrite(f, embedded ? VMDK_SECTOR : 0, desc, len);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write description");
        return ret;
    }
    return embedded ? 0 : bfile_truncate(f, (int64_t)len, PREALLOC_OFF, errp);
}

int vmdk_create(const BdrvCreateInfo *ci, Error **errp)
{
    VmdkCreateParams p = {0};
    int ret = parse_params(ci, &p, errp);
    uint32_t pcid = 0xffffffff;
    if (ret == 0 && p.backing) {
        ret = parent_cid(ci->filename, p.backing, &pcid, errp);
    }
    StrBuf lines = STRBUF_INIT;
    BlockFile *desc_file = NULL;
    if (ret == 0) {
        ret = create_extents(&p, ci->filename, &lines, &desc_file, errp);
    }
    if (ret == 0) {
        uint32_t cid;
        repro_random_bytes(&ci->repro, "vmdk-cid", &cid, sizeof(cid));
        char *desc = vmdk_make_desc(cid, pcid, p.subformat, p.backing, sb_str(&lines), p.hw_version,
                                    p.size, !strcmp(p.adapter, "ide"), p.adapter, p.tools);
        ret = write_descriptor(&p, desc_file, desc, errp);
        free(desc);
    }
    if (desc_file) {
        bfile_close(desc_file);
    }
    for (int i = 0; i < p.n_created; i++) {
        if (ret < 0) {
            unlink(p.created[i]);
        }
        free(p.created[i]);
    }
    free(p.created);
    sb_release(&lines);
    return ret;
}
