/*
 * img_create.c — `qemu-img create`: the library function img_create() and
 * its argv front end qimg_create().
 *
 * Behaviour follows qemu-img 7.2 (block.c's bdrv_img_create and
 * qemu-img.c's img_create), checked against the installed binary:
 *  - -o strings accumulate (joined with ','), are validated against the
 *    driver's create options followed by the file protocol's, in order;
 *  - the size comes from the command line or `-o size=`, never both, else
 *    from the backing file (opened relative to the new image's directory);
 *  - a backing file needs a backing format (qemu >= 6.1), also with -u;
 *  - "Formatting 'F', fmt=X k=v ..." lists every option of the merged table
 *    in table order with its value, or its default when it has one;
 *  - the size handed to the driver is rounded up to 512 bytes (qemu's
 *    drivers all do; the Formatting line shows the size as given).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/opts.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

/* True if any table in the NULL-terminated list has the option. */
static bool tables_have(const OptDesc *const *tables, const char *name)
{
    for (; *tables; tables++) {
        if (optdesc_find(*tables, name)) {
            return true;
        }
    }
    return false;
}

/* Print a string value as qemu's QemuOpts printer does (',' doubled). */
static void print_escaped(StrBuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == ',') {
            sb_addc(sb, ',');
        }
        sb_addc(sb, *s);
    }
}

/*
 * The options part of the "Formatting" line: every option of the merged
 * tables (first occurrence of a name wins), set value or default.
 */
static void format_opts_line(StrBuf *sb, const OptDesc *const *tables, const Opts *opts)
{
    const char *sep = "";
    for (const OptDesc *const *t = tables; *t; t++) {
        for (const OptDesc *d = *t; d->name; d++) {
            bool dup = false;
            for (const OptDesc *const *u = tables; u < t && !dup; u++) {
                dup = optdesc_find(*u, d->name) != NULL;
            }
            const char *set = opts_get(opts, d->name);
            const char *value = set ? set : d->def_value_str;
            if (dup || !value) {
                continue;
            }
            sb_addf(sb, "%s%s=", sep, d->name);
            uint64_t n;
            if (d->type == OPT_STRING) {
                print_escaped(sb, value);
            } else if (set && d->type == OPT_SIZE &&
                       opts_get_size(opts, d->name, 0, &n, NULL) == 0) {
                sb_addf(sb, "%lld", (long long)n);
            } else if (set && d->type == OPT_NUMBER &&
                       opts_get_number(opts, d->name, 0, &n, NULL) == 0) {
                sb_addf(sb, "%lld", (long long)n);
            } else {
                sb_add(sb, value);
            }
            sep = " ";
        }
    }
}

/* Put -b/-F into the option set, as qemu's add_old_style_options. */
static int add_backing_opts(const CreateOpts *o, const char *fmt, const OptDesc *const *tables,
                            Opts *opts, Error **errp)
{
    if (o->backing) {
        if (!tables_have(tables, "backing_file")) {
            error_setg(errp, "Backing file not supported for file format '%s'", fmt);
            return -ENOTSUP;
        }
        opts_set(opts, "backing_file", o->backing);
    }
    if (o->backing_fmt) {
        if (!tables_have(tables, "backing_fmt")) {
            error_setg(errp, "Backing file format not supported for file format '%s'", fmt);
            return -ENOTSUP;
        }
        opts_set(opts, "backing_fmt", o->backing_fmt);
    }
    return 0;
}

/*
 * Open the backing file (unless -u) to check it and, with no size given,
 * take its size.  *size is -1 on entry when unknown.
 */
static int check_backing(const CreateOpts *o, const Opts *opts, int64_t *size, Error **errp)
{
    const char *backing = opts_get(opts, "backing_file");
    const char *backing_fmt = opts_get(opts, "backing_fmt");
    if (!backing) {
        return 0;
    }
    if (!strcmp(o->filename, backing)) {
        error_setg(errp, "Error: Trying to create an image with the same filename as the "
                         "backing file");
        return -EINVAL;
    }
    if (!backing[0]) {
        error_setg(errp, "Expected backing file name, got empty string");
        return -EINVAL;
    }
    if (o->unsafe) {
        if (!backing_fmt) {
            error_setg(errp, "Backing file specified without backing format");
            return -EINVAL;
        }
        return 0;
    }
    char *full = path_combine(o->filename, backing);
    Error *local = NULL;
    BlockDriverState *bs = bdrv_open(full, backing_fmt, NULL, BDRV_O_FORCE_SHARE, &local);
    if (!bs) {
        /* qemu says what failed without the "Could not open 'F': " that our
         * bdrv_open() puts before driver errors; the file layer's own
         * "Could not open 'F': <errno>" stays. */
        const char *msg = error_get_pretty(local);
        char *prefix = xasprintf("Could not open '%s': ", full);
        BlockFile *f = bfile_open(full, BFILE_NO_LOCK, NULL);
        if (f && !strncmp(msg, prefix, strlen(prefix))) {
            msg += strlen(prefix);
        }
        bfile_close(f);
        error_setg(errp, "%s\nCould not open backing image.", msg);
        free(prefix);
        free(full);
        error_free(local);
        return -ENOENT;
    }
    free(full);
    int ret = 0;
    if (!backing_fmt) {
        error_setg(errp, "Backing file specified without backing format\nDetected format of %s.",
                   bdrv_format_name(bs));
        ret = -EINVAL;
    } else if (*size == -1) {
        *size = bdrv_getlength(bs);
    }
    bdrv_unref(bs);
    return ret;
}

/* Validate -o and merge the size argument into it; *size is set (or -1). */
static int collect_opts(const CreateOpts *o, const char *fmt, const OptDesc *const *tables,
                        Opts *opts, int64_t *size, Error **errp)
{
    if (o->options &&
        (opts_parse(opts, o->options, NULL, errp) < 0 || opts_validate(opts, tables, errp) < 0)) {
        return -EINVAL;
    }
    *size = o->size;
    if (opts_get(opts, "size")) {
        if (o->size != -1) {
            error_setg(errp, "The image size must be specified only once");
            return -EINVAL;
        }
        uint64_t v;
        if (opts_get_size(opts, "size", 0, &v, errp) < 0) {
            return -EINVAL;
        }
        *size = v > INT64_MAX ? INT64_MAX : (int64_t)v; /* too large for any driver */
    }
    return add_backing_opts(o, fmt, tables, opts, errp);
}

/*
 * qemu creates the (empty) image file before these drivers validate their
 * options and size, and leaves it behind when they fail; the others check
 * first (qcow2 and luks remove what they made).
 */
static bool creates_file_first(const char *fmt)
{
    static const char *const names[] = {"parallels", "qcow", "qed", "vdi", "vhdx", "vpc"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (!strcmp(fmt, names[i])) {
            return true;
        }
    }
    return false;
}

/* A preallocation= the format does not know goes to qemu's file protocol,
 * which rejects a bad value before anything is created. */
static int check_protocol_prealloc(const BlockDriver *drv, const Opts *opts, Error **errp)
{
    const char *p = opts_get(opts, "preallocation");
    PreallocMode mode;
    if (!p || optdesc_find(drv->create_opts, "preallocation") || prealloc_parse(p, &mode) == 0) {
        return 0;
    }
    error_setg(errp, "invalid parameter value: %s", p);
    return -EINVAL;
}

static int do_create(const CreateOpts *o, Error **errp)
{
    const char *fmt = o->fmt ? o->fmt : "raw";
    const BlockDriver *drv = bdrv_find_format(fmt);
    if (!drv) {
        error_setg(errp, "Unknown file format '%s'", fmt);
        return -EINVAL;
    }
    if (!drv->create || !drv->create_opts) {
        error_setg(errp, "Format driver '%s' does not support image creation", fmt);
        return -ENOTSUP;
    }
    const OptDesc *const *tables = img_create_opt_tables(drv);
    Opts opts = OPTS_INIT;
    int64_t size;
    int ret = collect_opts(o, fmt, tables, &opts, &size, errp);
    if (ret == 0) {
        ret = check_backing(o, &opts, &size, errp);
    }
    if (ret == 0 && size == -1) {
        error_setg(errp, "Image creation needs a size parameter");
        ret = -EINVAL;
    }
    if (ret < 0) {
        opts_release(&opts);
        return ret;
    }
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)size);
    opts_set(&opts, "size", num);
    if (!o->quiet) {
        StrBuf sb = STRBUF_INIT;
        format_opts_line(&sb, tables, &opts);
        fprintf(o->out ? o->out : stdout, "Formatting '%s', fmt=%s %s\n", o->filename, fmt,
                sb_str(&sb));
        fflush(o->out ? o->out : stdout);
        sb_release(&sb);
    }
    BdrvCreateInfo ci = {
        .filename = o->filename,
        .opts = &opts,
        .size = (uint64_t)ROUND_UP((uint64_t)size, BDRV_SECTOR_SIZE),
        .flags = 0,
        .repro = o->repro,
    };
    Error *local = NULL;
    ret = check_protocol_prealloc(drv, &opts, &local);
    if (ret == 0) {
        ret = size > INT64_MAX - 511 ? -EFBIG : drv->create(&ci, &local);
        if (ret < 0 && creates_file_first(fmt)) {
            bfile_close(bfile_create(o->filename, 0, NULL));
        }
    }
    if (ret == -EFBIG) {
        error_free(local);
        local = NULL;
        /* qemu's hint: cluster_size set, or defaulted by the format's table */
        uint64_t cs = 0;
        for (size_t t = 0; tables[t] && !cs; t++) {
            const OptDesc *d = optdesc_find(tables[t], "cluster_size");
            if (d && d->def_value_str) {
                parse_size(d->def_value_str, NULL, &cs);
            }
        }
        opts_get_size(&opts, "cluster_size", cs, &cs, NULL);
        error_setg(&local, "The image size is too large for file format '%s'%s", fmt,
                   cs ? " (try using a larger cluster size)" : "");
    } else if (ret < 0 && !local) {
        error_setg_errno(&local, -ret, "Could not create image");
    }
    error_propagate(errp, local);
    opts_release(&opts);
    return ret < 0 ? ret : 0;
}

int img_create(const CreateOpts *o, Error **errp)
{
    engine_init();
    int ret = do_create(o, errp);
    if (ret < 0) {
        error_prepend(errp, "%s: ", o->filename);
    }
    return ret;
}

/* ---- front end ---- */

/* `-o help`: the option list of the format (and protocol, with a filename). */
static int print_option_help(const char *filename, const char *fmt)
{
    const BlockDriver *drv = bdrv_find_format(fmt);
    if (!drv) {
        qimg_error("Unknown file format '%s'", fmt);
        return 1;
    }
    if (!drv->create || !drv->create_opts) {
        qimg_error("Format driver '%s' does not support image creation", fmt);
        return 1;
    }
    const OptDesc *const only_fmt[] = {drv->create_opts, NULL};
    StrBuf sb = STRBUF_INIT;
    optdesc_print_help(&sb, filename ? img_create_opt_tables(drv) : only_fmt);
    const char *body = strchr(sb_str(&sb), '\n'); /* after "Supported options:" */
    body = body ? body + 1 : "";
    if (filename) {
        printf("Supported options:\n%s", body);
    } else {
        printf("Supported %s options:\n%s", fmt, body);
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    }
    sb_release(&sb);
    return 0;
}

int qimg_create(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"object", required_argument, NULL, QIMG_OPT_OBJECT},
        {"format", required_argument, NULL, 'f'},
        {"options", required_argument, NULL, 'o'},
        {"backing", required_argument, NULL, 'b'},
        {"backing-format", required_argument, NULL, 'F'},
        {"backing-unsafe", no_argument, NULL, 'u'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    CreateOpts o = {.fmt = "raw", .size = -1, .out = stdout};
    char *options = NULL;
    int c, ret = 1;
    while ((c = qimg_getopt(argc, argv, "F:B:b:f:ho:qu", longopts)) != -1) {
        switch (c) {
        case QIMG_GETOPT_HELP: ret = 0; goto out;
        case QIMG_GETOPT_ERROR: goto out;
        case 'F':
        case 'B': o.backing_fmt = optarg; break;
        case 'b': o.backing = optarg; break;
        case 'f': o.fmt = optarg; break;
        case 'o':
            if (qimg_accumulate_options(&options, optarg) < 0) {
                goto out;
            }
            break;
        case 'q': o.quiet = true; break;
        case 'u': o.unsafe = true; break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                goto out;
            }
            break;
        }
    }
    const char *filename = optind < argc ? argv[optind] : NULL;
    if (options && opts_has_help(options)) {
        ret = print_option_help(filename, o.fmt);
        goto out;
    }
    if (!filename) {
        ret = qimg_usage("Expecting image file name");
        goto out;
    }
    optind++;
    if (optind < argc && qimg_cvtnum("image size", argv[optind++], true, &o.size) < 0) {
        goto out;
    }
    if (optind != argc) {
        ret = qimg_usage("Unexpected argument: %s", argv[optind]);
        goto out;
    }
    o.filename = filename;
    o.options = options;
    Error *err = NULL;
    if (img_create(&o, &err) < 0) {
        qimg_report_err(err);
        goto out;
    }
    ret = 0;
out:
    free(options);
    return ret;
}
