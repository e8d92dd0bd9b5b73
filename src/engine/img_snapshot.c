/*
 * img_snapshot.c — `qemu-img snapshot` (qemu-img 7.2 semantics).
 *
 *   snapshot [--object OBJ] [--image-opts] [-U] [-q]
 *            [-l | -a SNAPSHOT | -c SNAPSHOT | -d SNAPSHOT] FILE
 *   (also -f FMT, as qemu-img 10.x)
 *
 * The internal-snapshot work is the driver's (snapshot_* slots: qcow2).
 * This file owns what qemu's generic layer and qemu-img add: the list
 * table (block/qapi.c's bdrv_snapshot_dump layout: local-time dates,
 * "HH:MM:SS.mmm" VM clock, empty ICOUNT when not stored), lookup by name
 * (only) before delete, and qemu's error texts for formats without
 * snapshots ("-95 (Operation not supported)", "Block driver does not
 * support snapshots", "snapshot not found").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "engine/cmds_common.h"
#include "engine/engine.h"
#include "engine/img_common.h"
#include "engine/qemu_img.h"

/* One row (sn) or the header (sn NULL), without the newline. */
static void dump_snapshot(FILE *out, const SnapshotInfo *sn)
{
    if (!sn) {
        fprintf(out, "%-10s%-17s%8s%20s%13s%11s", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
                "ICOUNT");
        return;
    }
    char date[64] = "";
    time_t t = (time_t)sn->date_sec;
    struct tm tm;
    if (localtime_r(&t, &tm)) {
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    }
    uint64_t secs = sn->vm_clock_nsec / 1000000000ULL;
    char clock[64];
    snprintf(clock, sizeof(clock), "%02d:%02d:%02d.%03d", (int)(secs / 3600),
             (int)((secs / 60) % 60), (int)(secs % 60),
             (int)((sn->vm_clock_nsec / 1000000) % 1000));
    char icount[32] = "";
    if (sn->icount != UINT64_MAX) {
        snprintf(icount, sizeof(icount), "%lld", (long long)sn->icount);
    }
    char *size = size_to_str(sn->vm_state_size);
    fprintf(out, "%-9s %-16s %8s%20s%13s%11s", sn->id_str ? sn->id_str : "",
            sn->name ? sn->name : "", size, date, clock, icount);
    free(size);
}

static int snapshot_list(const SnapshotOpts *o, BlockDriverState *bs)
{
    SnapshotInfo *list = NULL;
    int n = bs->drv->snapshot_list ? bs->drv->snapshot_list(bs, &list) : -ENOTSUP;
    /* qemu-img prints nothing (and succeeds) when there is no snapshot or
     * the format has none */
    if (n > 0) {
        fprintf(o->out, "Snapshot list:\n");
        dump_snapshot(o->out, NULL);
        fprintf(o->out, "\n");
        for (int i = 0; i < n; i++) {
            dump_snapshot(o->out, &list[i]);
            fprintf(o->out, "\n");
        }
    }
    snapshot_list_free(list, n > 0 ? n : 0);
    return 0;
}

static int snapshot_create(const SnapshotOpts *o, BlockDriverState *bs, Error **errp)
{
    int64_t sec, nsec;
    repro_now_ns(&o->repro, &sec, &nsec);
    SnapshotInfo sn = {
        .name = (char *)o->name,
        .date_sec = (uint32_t)sec,
        .date_nsec = (uint32_t)(nsec / 1000 * 1000), /* qemu-img takes microseconds */
        .icount = 0,                                 /* qemu-img's zeroed struct */
    };
    int ret = -ENOTSUP;
    if (bs->drv->snapshot_create) {
        Error *local = NULL;
        ret = bs->drv->snapshot_create(bs, &sn, &local);
        error_free(local); /* qemu-img reports only the errno */
    }
    if (ret < 0) {
        error_setg(errp, "Could not create snapshot '%s': %d (%s)", o->name, ret, strerror(-ret));
    }
    return ret;
}

static int snapshot_apply(const SnapshotOpts *o, BlockDriverState *bs, Error **errp)
{
    if (!bs->drv->snapshot_goto) {
        error_setg(errp, "Could not apply snapshot '%s': Block driver does not support snapshots",
                   o->name);
        return -ENOTSUP;
    }
    Error *local = NULL;
    int ret = bs->drv->snapshot_goto(bs, o->name, &local);
    if (ret < 0) {
        /* qemu's generic layer words it, from the errno */
        error_free(local);
        error_setg(errp, "Could not apply snapshot '%s': Failed to load snapshot: %s", o->name,
                   strerror(-ret));
    }
    return ret;
}

/* qemu 7.2's bdrv_snapshot_find(): the first snapshot with that NAME (an
 * id is not looked up: `-d 2` deletes a snapshot named "2").  Index or -1. */
static int find_snapshot(const SnapshotInfo *list, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (list[i].name && !strcmp(list[i].name, name)) {
            return i;
        }
    }
    return -1;
}

static int snapshot_delete(const SnapshotOpts *o, BlockDriverState *bs, Error **errp)
{
    SnapshotInfo *list = NULL;
    int n = bs->drv->snapshot_list ? bs->drv->snapshot_list(bs, &list) : -ENOTSUP;
    int i = n > 0 ? find_snapshot(list, n, o->name) : -1;
    int ret;
    if (i < 0) {
        error_setg(errp, "Could not delete snapshot '%s': snapshot not found", o->name);
        ret = -ENOENT;
    } else if (!bs->drv->snapshot_delete) {
        error_setg(errp,
                   "Could not delete snapshot '%s': Block format '%s' used by device '' does not "
                   "support internal snapshot deletion",
                   o->name, bdrv_format_name(bs));
        ret = -ENOTSUP;
    } else {
        ret = bs->drv->snapshot_delete(bs, list[i].id_str, list[i].name, errp);
        if (ret < 0) {
            error_prepend(errp, "Could not delete snapshot '%s': ", o->name);
        }
    }
    snapshot_list_free(list, n > 0 ? n : 0);
    return ret;
}

int img_snapshot(const SnapshotOpts *o, Error **errp)
{
    int flags = o->action == SNAPSHOT_LIST ? 0 : BDRV_O_RDWR;
    BlockDriverState *bs =
        img_open(o->filename, o->fmt, o->image_opts, flags, NULL, o->force_share, errp);
    if (!bs) {
        return -EIO;
    }
    int ret;
    switch (o->action) {
    case SNAPSHOT_LIST: ret = snapshot_list(o, bs); break;
    case SNAPSHOT_CREATE: ret = snapshot_create(o, bs, errp); break;
    case SNAPSHOT_APPLY: ret = snapshot_apply(o, bs, errp); break;
    case SNAPSHOT_DELETE: ret = snapshot_delete(o, bs, errp); break;
    default: ret = 0; /* qemu-img: no action opens the image and does nothing */
    }
    if (ret == 0 && flags) {
        ret = bdrv_flush(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush '%s'", o->filename);
        }
    }
    bdrv_unref(bs);
    return ret;
}

/* ---- argv front end ---- */

int qimg_snapshot(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, 0, 'h'},
        {"object", required_argument, 0, QIMG_OPT_OBJECT},
        {"image-opts", no_argument, 0, QIMG_OPT_IMAGE_OPTS},
        {"force-share", no_argument, 0, 'U'},
        /* qemu-img 10.x names */
        {"format", required_argument, 0, 'f'},
        {"list", no_argument, 0, 'l'},
        {"apply", required_argument, 0, 'a'},
        {"create", required_argument, 0, 'c'},
        {"delete", required_argument, 0, 'd'},
        {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0},
    };
    SnapshotOpts o = {.action = (SnapshotAction)-1, .out = stdout};
    bool have_action = false;
    int c;
    while ((c = qimg_getopt(argc, argv, "la:c:d:f:hqU", long_options)) != -1) {
        SnapshotAction act;
        switch (c) {
        case QIMG_GETOPT_HELP: return 0;
        case QIMG_GETOPT_ERROR: return 1;
        case 'l':
        case 'a':
        case 'c':
        case 'd':
            act = c == 'l'   ? SNAPSHOT_LIST
                  : c == 'a' ? SNAPSHOT_APPLY
                  : c == 'c' ? SNAPSHOT_CREATE
                             : SNAPSHOT_DELETE;
            if (have_action) {
                return qimg_usage("Cannot mix '-l', '-a', '-c', '-d'");
            }
            have_action = true;
            o.action = act;
            o.name = c == 'l' ? NULL : optarg;
            break;
        case 'f': o.fmt = optarg; break;
        case 'q': o.quiet = true; break;
        case 'U': o.force_share = true; break;
        case QIMG_OPT_OBJECT:
            if (qimg_object(optarg) < 0) {
                return 1;
            }
            break;
        case QIMG_OPT_IMAGE_OPTS: o.image_opts = true; break;
        }
    }
    if (optind != argc - 1) {
        return qimg_usage("Expecting one image file name");
    }
    o.filename = argv[optind];
    Error *err = NULL;
    if (img_snapshot(&o, &err) < 0) {
        qimg_report_err(err);
        return 1;
    }
    return 0;
}
