/*
 * vhdx_create.c — creating VHDX images ([MS-VHDX] v1.0), with qemu-img
 * 7.2's options, rounding rules, messages and layout:
 *
 *   0      file identifier ("vhdxfile", creator in UTF-16)
 *   64K    header 1, 128K header 2 (sequence numbers n and n+1, no log)
 *   192K   region table, 256K its copy (BAT and metadata regions)
 *   1M     the log (log_size bytes, empty)
 *   then   the BAT (1 MiB multiple), the metadata region (1 MiB), 5 MiB
 *          of room, then payload blocks (fixed: all of them, in order)
 *
 * With block_state_zero (the default) every payload BAT entry says ZERO —
 * also for fixed images, whose blocks are reserved but read as zero — as
 * qemu does.  GUIDs and the header sequence number come from
 * repro_random_bytes().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "formats/crc32c.h"
#include "formats/vhdx.h"

#define VHDX_DEFAULT_LOG_SIZE (1024 * 1024)

const OptDesc vhdx_create_opts[] = {
    {"size", OPT_SIZE, "Virtual disk size; max of 64TB.", NULL},
    {"log_size", OPT_SIZE, "Log size; min 1MB.", "1048576"},
    {"block_size", OPT_SIZE,
     "Block Size; min 1MB, max 256MB. 0 means auto-calculate based on image size.", "0"},
    {"subformat", OPT_STRING,
     "VHDX format type, can be either 'dynamic' or 'fixed'. Default is "
     "'dynamic'.",
     NULL},
    {"block_state_zero", OPT_BOOL,
     "Force use of payload blocks of type 'ZERO'. Non-standard, but default.  Do not set to 'off' "
     "when using 'qemu-img convert' with subformat=dynamic.",
     NULL},
    {NULL, 0, NULL, NULL},
};

typedef struct VhdxCreateParams {
    uint64_t size;
    uint64_t log_size;
    uint32_t block_size;
    bool fixed;
    bool zero_blocks;
} VhdxCreateParams;

static uint32_t auto_block_size(uint64_t size)
{
    if (size > 32 * TiB) {
        return 64 * MiB;
    } else if (size > 100 * GiB) {
        return 32 * MiB;
    } else if (size > 1 * GiB) {
        return 16 * MiB;
    }
    return 8 * MiB;
}

static int parse_params(const BdrvCreateInfo *ci, VhdxCreateParams *p, Error **errp)
{
    const Opts *o = ci->opts;
    uint64_t log_size, block_size;
    if (opts_get_size(o, "log_size", VHDX_DEFAULT_LOG_SIZE, &log_size, errp) < 0 ||
        opts_get_size(o, "block_size", 0, &block_size, errp) < 0 ||
        opts_get_bool(o, "block_state_zero", true, &p->zero_blocks, errp) < 0) {
        return -EINVAL;
    }
    const char *sub = opts_get(o, "subformat");
    if (sub && strcmp(sub, "dynamic") && strcmp(sub, "fixed")) {
        error_setg(errp, "Parameter 'subformat' does not accept value '%s'", sub);
        return -EINVAL;
    }
    p->fixed = sub && !strcmp(sub, "fixed");
    p->size = ROUND_UP(ci->size, BDRV_SECTOR_SIZE);
    /* qemu rounds block and log sizes up to MiB silently, then validates */
    log_size = log_size > UINT64_MAX - MiB ? UINT64_MAX : ROUND_UP(log_size, MiB);
    block_size = block_size > UINT64_MAX - MiB ? UINT64_MAX : ROUND_UP(block_size, MiB);
    block_size = MIN(block_size, (uint64_t)VHDX_BLOCK_SIZE_MAX);
    if (p->size > VHDX_MAX_IMAGE_SIZE) {
        error_setg(errp, "Image size too large; max of 64TB");
        return -EINVAL;
    }
    if (log_size > UINT32_MAX) {
        error_setg(errp, "Log size must be smaller than 4 GB");
        return -EINVAL;
    }
    if (log_size < MiB) {
        error_setg(errp, "Log size must be a multiple of 1 MB");
        return -EINVAL;
    }
    if (block_size == 0) {
        block_size = auto_block_size(p->size);
    }
    if (!IS_POWER_OF_2(block_size)) {
        error_setg(errp, "Block size must be a power of two");
        return -EINVAL;
    }
    p->log_size = log_size;
    p->block_size = (uint32_t)block_size;
    return 0;
}

static int write_file_id(BlockFile *f)
{
    static const char creator[] = "imgpipe (qemu-img 7.2 compatible)";
    uint8_t buf[8 + 2 * sizeof(creator)];
    memcpy(buf, "vhdxfile", 8);
    for (size_t i = 0; i < sizeof(creator); i++) {
        st16_le(buf + 8 + 2 * i, (uint16_t)(unsigned char)creator[i]);
    }
    return bfile_pwrite(f, 0, buf, sizeof(buf) - 2); /* no terminating NUL */
}

static int write_headers(BlockFile *f, const BdrvCreateInfo *ci, const VhdxCreateParams *p)
{
    VhdxHeader h = {0};
    uint32_t seq;
    repro_random_bytes(&ci->repro, "vhdx-sequence", &seq, sizeof(seq));
    h.sequence = seq;
    h.version = 1;
    h.log_length = (uint32_t)p->log_size;
    h.log_offset = VHDX_HEADER_SECTION_END;
    repro_random_bytes(&ci->repro, "vhdx-file-write-guid", h.file_write_guid.b, 16);
    repro_random_bytes(&ci->repro, "vhdx-data-write-guid", h.data_write_guid.b, 16);
    uint8_t *buf = xmalloc(VHDX_HEADER_SIZE);
    vhdx_header_encode(&h, buf);
    int ret = bfile_pwrite(f, VHDX_HEADER1_OFFSET, buf, VHDX_HEADER_SIZE);
    h.sequence++;
    vhdx_header_encode(&h, buf);
    if (ret == 0) {
        ret = bfile_pwrite(f, VHDX_HEADER2_OFFSET, buf, VHDX_HEADER_SIZE);
    }
    free(buf);
    return ret;
}

static void region_entry(uint8_t *e, const VhdxGuid *g, uint64_t off, uint32_t len)
{
    memcpy(e, g->b, 16);
    st64_le(e + 16, off);
    st32_le(e + 24, len);
    st32_le(e + 28, 1); /* required */
}

static int write_region_tables(BlockFile *f, uint64_t bat_off, uint32_t bat_len, uint64_t md_off)
{
    uint8_t *buf = xzalloc(VHDX_HEADER_BLOCK_SIZE);
    st32_le(buf, VHDX_REGION_SIGNATURE);
    st32_le(buf + 8, 2);
    region_entry(buf + 16, &vhdx_bat_guid, bat_off, bat_len);
    region_entry(buf + 48, &vhdx_metadata_guid, md_off, (uint32_t)MiB);
    st32_le(buf + 4, crc32c_with_hole(buf, VHDX_HEADER_BLOCK_SIZE, 4));
    int ret = bfile_pwrite(f, VHDX_REGION_TABLE_OFFSET, buf, VHDX_HEADER_BLOCK_SIZE);
    if (ret == 0) {
        ret = bfile_pwrite(f, VHDX_REGION_TABLE2_OFFSET, buf, VHDX_HEADER_BLOCK_SIZE);
    }
    free(buf);
    return ret;
}

static int write_bat(BlockFile *f, const VhdxCreateParams *p, uint64_t bat_off, uint32_t bat_len,
                     uint64_t data_off)
{
    if (!p->fixed && !p->zero_blocks) {
        return 0; /* all NOT_PRESENT: the file is zero there already */
    }
    uint64_t chunk_ratio = (uint64_t)VHDX_MAX_SECTORS_PER_BLOCK * 512 / p->block_size;
    uint64_t blocks = DIV_ROUND_UP(p->size, p->block_size);
    uint8_t *bat = xzalloc(bat_len);
    for (uint64_t b = 0; b < blocks; b++) {
        uint64_t idx = b + b / chunk_ratio;
        uint64_t v = p->zero_blocks ? PAYLOAD_BLOCK_ZERO
                                    : ROUND_UP(data_off + b * p->block_size, (uint64_t)MiB) |
                                          PAYLOAD_BLOCK_FULLY_PRESENT;
        st64_le(bat + idx * 8, v);
    }
    int ret = bfile_pwrite(f, (int64_t)bat_off, bat, bat_len);
    free(bat);
    return ret;
}

static int write_metadata(BlockFile *f, const BdrvCreateInfo *ci, const VhdxCreateParams *p,
                          uint64_t md_off)
{
    static const struct {
        const VhdxGuid *g;
        uint32_t len, flags;
    } items[] = {
        {&vhdx_file_param_guid, 8, VHDX_META_IS_REQUIRED},
        {&vhdx_virtual_size_guid, 8, VHDX_META_IS_REQUIRED | VHDX_META_IS_VIRTUAL_DISK},
        {&vhdx_page83_guid, 16, VHDX_META_IS_REQUIRED | VHDX_META_IS_VIRTUAL_DISK},
        {&vhdx_logical_sector_guid, 4, VHDX_META_IS_REQUIRED | VHDX_META_IS_VIRTUAL_DISK},
        {&vhdx_phys_sector_guid, 4, VHDX_META_IS_REQUIRED | VHDX_META_IS_VIRTUAL_DISK},
    };
    uint8_t *buf = xzalloc(VHDX_HEADER_BLOCK_SIZE + 64);
    memcpy(buf, "metadata", 8);
    st16_le(buf + 10, (uint16_t)ARRAY_SIZE(items));
    uint32_t off = VHDX_HEADER_BLOCK_SIZE;
    for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
        uint8_t *e = buf + 32 + 32 * i;
        memcpy(e, items[i].g->b, 16);
        st32_le(e + 16, off);
        st32_le(e + 20, items[i].len);
        st32_le(e + 24, items[i].flags);
        off += items[i].len;
    }
    uint8_t *d = buf + VHDX_HEADER_BLOCK_SIZE;
    st32_le(d, p->block_size);
    st32_le(d + 4, p->fixed ? VHDX_PARAMS_LEAVE_BLOCKS_ALLOCATED : 0);
    st64_le(d + 8, p->size);
    repro_random_bytes(&ci->repro, "vhdx-page83", d + 16, 16);
    st32_le(d + 32, 512);
    st32_le(d + 36, 512);
    int ret = bfile_pwrite(f, (int64_t)md_off, buf, VHDX_HEADER_BLOCK_SIZE + 40);
    free(buf);
    return ret;
}

static int write_image(BlockFile *f, const BdrvCreateInfo *ci, const VhdxCreateParams *p)
{
    uint64_t entries = vhdx_bat_entries(p->size, p->block_size, 512);
    uint64_t bat_off = ROUND_UP(VHDX_HEADER_SECTION_END + p->log_size, (uint64_t)MiB);
    uint64_t bat_len = ROUND_UP(entries * 8, (uint64_t)MiB);
    uint64_t md_off = ROUND_UP(bat_off + bat_len, (uint64_t)MiB);
    uint64_t data_off = bat_off + bat_len + 5 * MiB;
    if (bat_len > UINT32_MAX) {
        return -EFBIG;
    }
    int ret = bfile_truncate(f, (int64_t)(data_off + (p->fixed ? p->size : 0)), PREALLOC_OFF, NULL);
    if (ret == 0) {
        ret = write_file_id(f);
    }
    if (ret == 0) {
        ret = write_headers(f, ci, p);
    }
    if (ret == 0) {
        ret = write_bat(f, p, bat_off, (uint32_t)bat_len, data_off);
    }
    if (ret == 0) {
        ret = write_region_tables(f, bat_off, (uint32_t)bat_len, md_off);
    }
    if (ret == 0) {
        ret = write_metadata(f, ci, p, md_off);
    }
    return ret;
}

int vhdx_create(const BdrvCreateInfo *ci, Error **errp)
{
    VhdxCreateParams p = {0};
    int ret = parse_params(ci, &p, errp);
    if (ret < 0) {
        return ret;
    }
    BlockFile *f = bfile_create(ci->filename, bdrv_create_file_flags(ci), errp);
    if (!f) {
        return -EIO;
    }
    ret = write_image(f, ci, &p);
    if (ret == 0) {
        ret = bfile_flush(f);
    }
    bfile_close(f);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to create the VHDX image");
        unlink(ci->filename);
    }
    return ret;
}
