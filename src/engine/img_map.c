/*
 * img_map.c — `qemu-img map`: img_map() and its front end.
 *
 * Walks the guest range with block status (want_zero) through the backing
 * chain the way qemu 7.2's get_block_status() does: ask the top layer; if
 * it answers neither DATA nor ZERO, ask the next one down (depth + 1),
 * never for more bytes than the layers above answered for.  Neighbouring
 * answers with the same flags, depth and file, and contiguous host offsets,
 * are merged into one entry.
 *
 * Output exactly as qemu 7.2 prints it (no "compressed" member yet: that
 * came in 8.x):
 *   human: "%#-16x%#-16x%#-16x%s" rows for data ranges only, after the
 *          "Offset Length Mapped to File" header; for coalescing, ranges
 *          that are not plain data count as zero;
 *   json:  "[{ ... },\n{ ... }]" one entry per line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

typedef struct MapEntry {
    int64_t start, length;
    bool data, zero, present;
    int depth;
    bool has_offset;
    int64_t offset;
    const char *filename; /* NULL when there is no OFFSET_VALID file */
} MapEntry;

static int get_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes, MapEntry *e)
{
    int depth = 0;
    int ret;
    int64_t map = 0;
    BlockFile *file = NULL;
    for (;;) {
        ret = bdrv_block_status(bs, true, offset, bytes, &bytes, &map, &file);
        if (ret < 0) {
            return ret;
        }
        if (bytes <= 0) {
            return -EIO; /* a layer shorter than its overlay claims to be */
        }
        if (ret & (BDRV_BLOCK_ZERO | BDRV_BLOCK_DATA)) {
            break;
        }
        bs = bs->backing;
        if (!bs) {
            ret = 0;
            break;
        }
        depth++;
    }
    bool has_offset = ret & BDRV_BLOCK_OFFSET_VALID;
    *e = (MapEntry){
        .start = offset,
        .length = bytes,
        .data = ret & BDRV_BLOCK_DATA,
        .zero = ret & BDRV_BLOCK_ZERO,
        .present = ret & BDRV_BLOCK_ALLOCATED,
        .depth = depth,
        .has_offset = has_offset,
        .offset = map,
        .filename = has_offset && file ? file->filename : NULL,
    };
    return 0;
}

static bool mergeable(const MapEntry *curr, const MapEntry *next)
{
    if (curr->length == 0) {
        return false;
    }
    if (curr->zero != next->zero || curr->data != next->data || curr->depth != next->depth ||
        curr->present != next->present || !curr->filename != !next->filename ||
        curr->has_offset != next->has_offset) {
        return false;
    }
    if (curr->filename && strcmp(curr->filename, next->filename)) {
        return false;
    }
    return !curr->has_offset || curr->offset + curr->length == next->offset;
}

static const char *tf(bool b)
{
    return b ? "true" : "false";
}

static int dump_entry(FILE *out, bool json, const MapEntry *e, MapEntry *next, Error **errp)
{
    if (!json) {
        if (e->data && !e->has_offset) {
            error_setg(errp, "File contains external, encrypted or compressed clusters.");
            return -ENOTSUP;
        }
        if (e->data && !e->zero) {
            fprintf(out, "%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", (uint64_t)e->start,
                    (uint64_t)e->length, (uint64_t)(e->has_offset ? e->offset : 0),
                    e->filename ? e->filename : "");
        }
        /* The human form does not tell zero from unallocated: coalesce them. */
        if (next && (!next->data || next->zero)) {
            next->data = false;
            next->zero = true;
        }
        return 0;
    }
    fprintf(out,
            "{ \"start\": %" PRId64 ", \"length\": %" PRId64 ", \"depth\": %d, \"present\": %s, "
            "\"zero\": %s, \"data\": %s",
            e->start, e->length, e->depth, tf(e->present), tf(e->zero), tf(e->data));
    if (e->has_offset) {
        fprintf(out, ", \"offset\": %" PRId64, e->offset);
    }
    fputc('}', out);
    if (next) {
        fputs(",\n", out);
    }
    return 0;
}

static int map_image(const MapOpts *o, BlockDriverState *bs, Error **errp)
{
    FILE *out = o->out ? o->out : stdout;
    int64_t length = bdrv_getlength(bs);
    if (o->max_length >= 0 && o->max_length <= INT64_MAX - o->start_offset) {
        length = MIN(o->start_offset + o->max_length, length);
    }
    if (o->json) {
        fputc('[', out);
    } else {
        fprintf(out, "%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    }
    MapEntry curr = {.start = o->start_offset}, next;
    while (curr.start + curr.length < length) {
        int64_t offset = curr.start + curr.length;
        int ret = get_block_status(bs, offset, length - offset, &next);
        if (ret < 0) {
            error_setg(errp, "Could not read file metadata: %s", strerror(-ret));
            return ret;
        }
        if (mergeable(&curr, &next)) {
            curr.length += next.length;
            continue;
        }
        if (curr.length > 0 && (ret = dump_entry(out, o->json, &curr, &next, errp)) < 0) {
            return ret;
        }
        curr = next;
    }
    int ret = dump_entry(out, o->json, &curr, NULL, errp);
    if (o->json) {
        fputs("]\n", out);
    }
    return ret;
}

int img_map(const MapOpts *o, Error **errp)
{
    engine_init();
    BlockDriverState *bs =
        img_open(o->filename, o->fmt, o->image_opts, 0, NULL, o->force_share, errp);
    if (!bs) {
        return -EINVAL;
    }
    int ret = map_image(o, bs, errp);
    bdrv_unref(bs);
    return ret;
}

int qimg_map(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, QIMG_OPT_OUTPUT},
        {"object", required_argument, NULL, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, NULL, QIMG_OPT_IMAGE_OPTS},
        {"force-share", no_argument, NULL, 'U'},
        {"start-offset", required_argument, NULL, QIMG_OPT_START_OFFSET},
        {"max-length", required_argument, NULL, QIMG_OPT_MAX_LENGTH},
        {NULL, 0, NULL, 0},
    };
    MapOpts o = {.max_length = -1, .out = stdout};
    int c;
    while ((c = qimg_getopt(argc, argv, "f:hU", longopts)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: return 0;
        case QIMG_GETOPT_ERROR: return 1;
        case 'f': o.fmt = optarg; break;
        case 'U': o.force_share = true; break;
        case QIMG_OPT_OUTPUT:
            if (qimg_parse_output(optarg, &o.json) < 0) {
                return 1;
            }
            break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        case QIMG_OPT_START_OFFSET:
            if (qimg_cvtnum("start offset", optarg, true, &o.start_offset) < 0) {
                return 1;
            }
            break;
        case QIMG_OPT_MAX_LENGTH:
            if (qimg_cvtnum("max length", optarg, true, &o.max_length) < 0) {
                return 1;
            }
            break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                return 1;
            }
            break;
        }
    }
    if (optind != argc - 1) {
        return qimg_usage("Expecting one image file name");
    }
    o.filename = argv[optind];
    Error *err = NULL;
    if (img_map(&o, &err) < 0) {
        fflush(stdout);
        qimg_report_err(err);
        return 1;
    }
    return 0;
}
