/*
 * img_info.c — `qemu-img info`: img_info() and its front end qimg_info().
 *
 * One JSON tree per image, built with the members of qemu 7.2's QAPI
 * ImageInfo in declaration order, then reordered as qemu's QDict iterates
 * (img_json_qdict_order) — that order shows in both outputs: the JSON
 * members and the "Format specific information:" lines.  The human layout
 * is qemu's bdrv_image_info_dump(): the fixed header lines, "backing file:
 * X (actual path: Y)", the snapshot table, then the driver's
 * format-specific tree with '-' in keys shown as ' ' and 4 spaces per level.
 *
 * --backing-chain walks the chain image by image (each opened without its
 * backing file, as qemu does); a name seen twice, or the same host file
 * twice, is reported as qemu's "Backing file 'X' creates an infinite loop.".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/json.h"
#include "common/opts.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

#define INFO_MAX_CHAIN 1024 /* stops a chain of ever-new names */

static JVal *snapshot_json(const SnapshotInfo *sn)
{
    JVal *o = json_object();
    json_add_str(o, "id", sn->id_str);
    json_add_str(o, "name", sn->name);
    json_object_add(o, "vm-state-size", json_uint(sn->vm_state_size));
    json_add_int(o, "date-sec", sn->date_sec);
    json_add_int(o, "date-nsec", sn->date_nsec);
    json_object_add(o, "vm-clock-sec", json_uint(sn->vm_clock_nsec / 1000000000ULL));
    json_object_add(o, "vm-clock-nsec", json_uint(sn->vm_clock_nsec % 1000000000ULL));
    if (sn->icount != UINT64_MAX) {
        json_object_add(o, "icount", json_uint(sn->icount));
    }
    return o;
}

static int add_snapshots(BlockDriverState *bs, JVal *info, Error **errp)
{
    if (!bs->drv->snapshot_list) {
        return 0;
    }
    SnapshotInfo *list = NULL;
    int n = bs->drv->snapshot_list(bs, &list);
    if (n < 0) {
        error_setg_errno(errp, -n, "Could not list snapshots");
        return n;
    }
    if (n > 0) {
        JVal *arr = json_object_add(info, "snapshots", json_array());
        for (int i = 0; i < n; i++) {
            json_array_add(arr, snapshot_json(&list[i]));
        }
    }
    snapshot_list_free(list, n);
    return 0;
}

static void add_backing(BlockDriverState *bs, JVal *info)
{
    if (!bs->backing_file || !bs->backing_file[0]) {
        return;
    }
    json_add_str(info, "backing-filename", bs->backing_file);
    char *full = bs->backing_filename_full ? xstrdup(bs->backing_filename_full)
                                           : path_combine(bs->filename, bs->backing_file);
    json_add_str(info, "full-backing-filename", full);
    free(full);
    if (bs->backing_format && bs->backing_format[0]) {
        json_add_str(info, "backing-filename-format", bs->backing_format);
    }
}

/* qemu's bdrv_query_image_info(), as a JSON tree in QAPI member order. */
static JVal *image_info_json(BlockDriverState *bs, Error **errp)
{
    JVal *info = json_object();
    json_add_str(info, "filename", bs->filename);
    json_add_str(info, "format", bdrv_format_name(bs));
    BlockDriverInfo bdi = {0};
    bool have_bdi = bs->drv->get_info ? bs->drv->get_info(bs, &bdi) >= 0 : bs->drv->is_raw;
    if (have_bdi) {
        json_add_bool(info, "dirty-flag", bdi.is_dirty);
    }
    int64_t actual = bdrv_get_allocated_file_size(bs);
    if (actual >= 0) {
        json_add_int(info, "actual-size", actual);
    }
    json_add_int(info, "virtual-size", bdrv_getlength(bs));
    if (have_bdi && bdi.cluster_size) {
        json_add_int(info, "cluster-size", bdi.cluster_size);
    }
    if (bs->encrypted) { /* qemu sets the member only when true */
        json_add_bool(info, "encrypted", true);
    }
    add_backing(bs, info);
    if (add_snapshots(bs, info, errp) < 0) {
        json_free(info);
        return NULL;
    }
    if (bs->drv->get_specific_info) {
        Error *local = NULL;
        JVal *spec = bs->drv->get_specific_info(bs, &local);
        if (local) {
            json_free(spec);
            json_free(info);
            error_propagate(errp, local);
            return NULL;
        }
        if (spec) {
            json_object_add(info, "format-specific", spec);
        }
    }
    img_json_qdict_order(info);
    return info;
}

/* ---- human output ---- */

static void dump_value(StrBuf *sb, const JVal *v, int level);

static void dump_scalar(StrBuf *sb, const JVal *v)
{
    switch (v->type) {
    case JSON_STRING: sb_add(sb, v->v.s); break;
    case JSON_BOOL: sb_add(sb, v->v.b ? "true" : "false"); break;
    case JSON_INT: sb_addf(sb, "%lld", (long long)v->v.i); break;
    case JSON_UINT: sb_addf(sb, "%llu", (unsigned long long)v->v.u); break;
    case JSON_DOUBLE: sb_addf(sb, "%.17g", v->v.d); break;
    default: sb_add(sb, "null"); break;
    }
}

static bool is_composite(const JVal *v)
{
    return v->type == JSON_OBJECT || v->type == JSON_ARRAY;
}

/* One "key: value" or "[i]: value" line, or the key line of a nested tree. */
static void dump_member(StrBuf *sb, const char *label, const JVal *v, int level)
{
    sb_addf(sb, "%*s%s:%c", level * 4, "", label, is_composite(v) ? '\n' : ' ');
    dump_value(sb, v, level + 1);
    if (!is_composite(v)) {
        sb_addc(sb, '\n');
    }
}

static void dump_value(StrBuf *sb, const JVal *v, int level)
{
    if (!is_composite(v)) {
        dump_scalar(sb, v);
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        char *label;
        if (v->type == JSON_ARRAY) {
            label = xasprintf("[%zu]", i);
        } else {
            label = xstrdup(v->keys[i]);
            for (char *p = label; *p; p++) {
                *p = *p == '-' ? ' ' : *p;
            }
        }
        dump_member(sb, label, v->items[i], level);
        free(label);
    }
}

static int64_t get_int(const JVal *o, const char *key, int64_t def)
{
    JVal *v = json_get(o, key);
    if (v && v->type == JSON_INT) {
        return v->v.i;
    }
    return v && v->type == JSON_UINT ? (int64_t)v->v.u : def;
}

/* qemu's bdrv_snapshot_dump() for one row (or the header when sn is NULL). */
static void dump_snapshot_row(StrBuf *sb, const JVal *sn)
{
    if (!sn) {
        sb_addf(sb, "%-10s%-17s%8s%20s%13s%11s", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
                "ICOUNT");
        return;
    }
    time_t t = (time_t)get_int(sn, "date-sec", 0);
    struct tm tm;
    char date[64] = "";
    if (localtime_r(&t, &tm)) {
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    }
    uint64_t secs = (uint64_t)get_int(sn, "vm-clock-sec", 0);
    uint64_t nsec = (uint64_t)get_int(sn, "vm-clock-nsec", 0);
    char clock[128];
    snprintf(clock, sizeof(clock), "%02d:%02d:%02d.%03d", (int)(secs / 3600),
             (int)((secs / 60) % 60), (int)(secs % 60), (int)((nsec / 1000000) % 1000));
    char icount[32] = "";
    if (json_get(sn, "icount")) {
        snprintf(icount, sizeof(icount), "%lld", (long long)get_int(sn, "icount", 0));
    }
    char *size = size_to_str((uint64_t)get_int(sn, "vm-state-size", 0));
    sb_addf(sb, "%-9s %-16s %8s%20s%13s%11s", json_get_str(sn, "id"), json_get_str(sn, "name"),
            size, date, clock, icount);
    free(size);
}

static void dump_human(StrBuf *sb, const JVal *info)
{
    int64_t vsize = get_int(info, "virtual-size", 0);
    char *vs = size_to_str((uint64_t)vsize);
    char *ds = json_get(info, "actual-size")
                   ? size_to_str((uint64_t)get_int(info, "actual-size", 0))
                   : xstrdup("unavailable");
    sb_addf(sb, "image: %s\nfile format: %s\nvirtual size: %s (%lld bytes)\ndisk size: %s\n",
            json_get_str(info, "filename"), json_get_str(info, "format"), vs, (long long)vsize, ds);
    free(vs);
    free(ds);
    if (json_get(info, "encrypted")) {
        sb_add(sb, "encrypted: yes\n");
    }
    if (json_get(info, "cluster-size")) {
        sb_addf(sb, "cluster_size: %lld\n", (long long)get_int(info, "cluster-size", 0));
    }
    JVal *dirty = json_get(info, "dirty-flag");
    if (dirty && dirty->type == JSON_BOOL && dirty->v.b) {
        sb_add(sb, "cleanly shut down: no\n");
    }
    const char *bf = json_get_str(info, "backing-filename");
    if (bf) {
        const char *full = json_get_str(info, "full-backing-filename");
        sb_addf(sb, "backing file: %s", bf);
        if (!full) {
            sb_add(sb, " (cannot determine actual path)");
        } else if (strcmp(bf, full)) {
            sb_addf(sb, " (actual path: %s)", full);
        }
        sb_addc(sb, '\n');
        if (json_get_str(info, "backing-filename-format")) {
            sb_addf(sb, "backing file format: %s\n", json_get_str(info, "backing-filename-format"));
        }
    }
    JVal *snaps = json_get(info, "snapshots");
    if (snaps && snaps->type == JSON_ARRAY) {
        sb_add(sb, "Snapshot list:\n");
        dump_snapshot_row(sb, NULL);
        sb_addc(sb, '\n');
        for (size_t i = 0; i < snaps->n; i++) {
            dump_snapshot_row(sb, snaps->items[i]);
            sb_addc(sb, '\n');
        }
    }
    JVal *spec = json_get(info, "format-specific");
    JVal *data = spec ? json_get(spec, "data") : NULL;
    if (spec) {
        sb_add(sb, "Format specific information:\n");
        if (data && data->type == JSON_OBJECT) {
            dump_value(sb, data, 1);
        }
    }
}

/* ---- json: names ---- */

/* The order qemu's QDict iterates keys in: its hash (Samba TDB's) modulo
 * its 512 buckets.  qemu prints json: names in that order. */
static unsigned qdict_bucket(const char *key)
{
    uint32_t v = 0x238F13AFu * (uint32_t)strlen(key);
    for (size_t i = 0; key[i]; i++) {
        v += (uint32_t)(unsigned char)key[i] << (i * 5 % 24);
    }
    return (1103515243u * v + 12345u) % 512;
}

/* Driver options that change what the image reads as ("strong" in qemu):
 * an image opened with one is named by a json: string. */
static const struct {
    const char *fmt;
    const char *opts[3];
} strong_opts[] = {
    {"raw", {"offset", "size"}},
    {"luks", {"key-secret"}},
    {"qcow2", {"encrypt.key-secret"}},
    {"qcow", {"encrypt.key-secret"}},
};

typedef struct NameMember {
    const char *key;
    JVal *val;
} NameMember;

static int cmp_member(const void *a, const void *b)
{
    unsigned x = qdict_bucket(((const NameMember *)a)->key);
    unsigned y = qdict_bucket(((const NameMember *)b)->key);
    return (x > y) - (x < y);
}

/* qemu's name for an image opened with --image-opts OPTSTR, or NULL when
 * it is the plain file name. */
static char *image_opts_name(const BlockDriverState *bs, const char *optstr)
{
    Opts o = OPTS_INIT;
    const char *fmt = bdrv_format_name(bs);
    NameMember m[5];
    size_t n = 0;
    if (opts_parse(&o, optstr, "file", NULL) == 0) {
        for (size_t i = 0; i < ARRAY_SIZE(strong_opts); i++) {
            for (size_t j = 0; !strcmp(strong_opts[i].fmt, fmt) && j < 3 && strong_opts[i].opts[j];
                 j++) {
                const char *v = opts_get(&o, strong_opts[i].opts[j]);
                if (v) {
                    m[n++] = (NameMember){strong_opts[i].opts[j], json_str(v)};
                }
            }
        }
    }
    char *name = NULL;
    if (n) {
        JVal *file = json_object();
        json_add_str(file, "driver", "file");
        json_add_str(file, "filename", bs->filename);
        m[n++] = (NameMember){"driver", json_str(fmt)};
        m[n++] = (NameMember){"file", file};
        qsort(m, n, sizeof(m[0]), cmp_member);
        JVal *obj = json_object();
        for (size_t i = 0; i < n; i++) {
            json_object_add(obj, m[i].key, m[i].val);
        }
        StrBuf sb = STRBUF_INIT;
        sb_add(&sb, "json:");
        json_print_compact(&sb, obj);
        json_free(obj);
        name = sb_detach(&sb);
    }
    opts_release(&o);
    return name;
}

/* ---- collecting the chain ---- */

typedef struct SeenFile {
    char *name;
    dev_t dev;
    ino_t ino;
} SeenFile;

static bool seen_before(const SeenFile *seen, int n, const char *name, const struct stat *st)
{
    for (int i = 0; i < n; i++) {
        if (!strcmp(seen[i].name, name) ||
            (st && seen[i].ino == st->st_ino && seen[i].dev == st->st_dev && st->st_ino)) {
            return true;
        }
    }
    return false;
}

static JVal *collect_chain(const InfoOpts *o, Error **errp)
{
    JVal *list = json_array();
    SeenFile seen[64];
    int n_seen = 0;
    char *filename = xstrdup(o->filename);
    char *fmt = o->fmt ? xstrdup(o->fmt) : NULL;
    bool image_opts = o->image_opts;
    for (int depth = 0; filename; depth++) {
        struct stat st;
        bool have_st = !image_opts && stat(filename, &st) == 0;
        if (depth >= INFO_MAX_CHAIN ||
            seen_before(seen, MIN(n_seen, 64), filename, have_st ? &st : NULL)) {
            error_setg(errp, "Backing file '%s' creates an infinite loop.", filename);
            goto fail;
        }
        if (n_seen < 64) {
            seen[n_seen++] =
                (SeenFile){xstrdup(filename), have_st ? st.st_dev : 0, have_st ? st.st_ino : 0};
        }
        BlockDriverState *bs = img_open(filename, fmt, image_opts, BDRV_O_NO_BACKING | BDRV_O_NO_IO,
                                        NULL, o->force_share, errp);
        if (!bs) {
            goto fail;
        }
        char *json_name = image_opts ? image_opts_name(bs, filename) : NULL;
        if (json_name) {
            free(bs->filename);
            bs->filename = json_name;
        }
        JVal *info = image_info_json(bs, errp);
        bdrv_unref(bs);
        if (!info) {
            goto fail;
        }
        json_array_add(list, info);
        free(filename);
        free(fmt);
        filename = fmt = NULL;
        image_opts = false;
        if (o->backing_chain && json_get_str(info, "full-backing-filename")) {
            const char *name = json_get_str(info, "filename");
            const char *full = json_get_str(info, "full-backing-filename");
            /* The untrusted-image policy applies to the chain walk too. */
            if (bdrv_check_reference(name, "backing file", json_get_str(info, "backing-filename"),
                                     full, errp) < 0) {
                error_prepend(errp, "Could not open '%s': ", name);
                goto fail;
            }
            filename = xstrdup(full);
            fmt = xstrdup(json_get_str(info, "backing-filename-format"));
        }
    }
    for (int i = 0; i < n_seen; i++) {
        free(seen[i].name);
    }
    return list;
fail:
    for (int i = 0; i < n_seen; i++) {
        free(seen[i].name);
    }
    free(filename);
    free(fmt);
    json_free(list);
    return NULL;
}

int img_info(const InfoOpts *o, Error **errp)
{
    engine_init();
    JVal *list = collect_chain(o, errp);
    if (!list) {
        return -EINVAL;
    }
    FILE *out = o->out ? o->out : stdout;
    if (o->json) {
        img_print_json(out, o->backing_chain ? list : list->items[0]);
    } else {
        StrBuf sb = STRBUF_INIT;
        for (size_t i = 0; i < list->n; i++) {
            if (i) {
                sb_addc(&sb, '\n');
            }
            dump_human(&sb, list->items[i]);
        }
        fputs(sb_str(&sb), out);
        sb_release(&sb);
    }
    json_free(list);
    return 0;
}

int qimg_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, QIMG_OPT_OUTPUT},
        {"backing-chain", no_argument, NULL, QIMG_OPT_BACKING_CHAIN},
        {"object", required_argument, NULL, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, NULL, QIMG_OPT_IMAGE_OPTS},
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    InfoOpts o = {.out = stdout};
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
        case QIMG_OPT_BACKING_CHAIN: o.backing_chain = true; break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
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
    if (img_info(&o, &err) < 0) {
        qimg_report_err(err);
        return 1;
    }
    return 0;
}
