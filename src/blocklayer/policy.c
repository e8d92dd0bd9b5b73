/*
 * policy.c — which files an image may make us open.
 *
 * Images carry references to other files: backing files, qcow2 external
 * data files, VMDK extents.  QEMU follows them wherever they point, which
 * is how a crafted upload reads /etc/shadow through a backing file or a
 * VMDK extent (the 2015-2024 OpenStack CVEs).  When the policy is
 * restricted, a reference is followed only if
 *   - it is a plain path (no "json:" and no "proto:" prefix), and
 *   - its real path (symlinks resolved) lies inside the real directory of
 *     the image that names it, or inside a directory the user allowed.
 * The CLI restricts `imgpipe run info|check|map|measure|compare|convert`
 * by default (--trust-images restores qemu-img's behaviour); library
 * callers (the pipeline) get the permissive default.
 *
 * Also here: the per-image metadata budget (bdrv_metadata_reserve), the
 * other limit an untrusted image must not get around.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "blocklayer/block_int.h"
#include "common/util.h"

static pthread_mutex_t policy_lock = PTHREAD_MUTEX_INITIALIZER;
static bool restricted;
static char **allowed; /* realpaths, NULL-terminated */

void bdrv_set_ref_policy(bool restrict_refs, const char *const *allowed_dirs)
{
    pthread_mutex_lock(&policy_lock);
    for (char **p = allowed; p && *p; p++) {
        free(*p);
    }
    free(allowed);
    allowed = NULL;
    size_t n = 0;
    while (allowed_dirs && allowed_dirs[n]) {
        n++;
    }
    allowed = XNEWV(char *, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char *real = realpath(allowed_dirs[i], NULL);
        if (real) {
            allowed[k++] = real;
        }
    }
    restricted = restrict_refs;
    pthread_mutex_unlock(&policy_lock);
}

bool bdrv_ref_policy_restricted(void)
{
    return restricted;
}

/* Is path (a realpath) dir itself or below it? */
static bool path_inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (strncmp(path, dir, n)) {
        return false;
    }
    return path[n] == '/' || path[n] == 0 || (n == 1 && dir[0] == '/');
}

int bdrv_check_reference(const char *image, const char *kind, const char *ref, const char *resolved,
                         Error **errp)
{
    if (!restricted) {
        return 0;
    }
    static const char hint[] = "; allow it with 'imgpipe run --allow-dir DIR' or --trust-images";
    if (!strncmp(ref, "json:", 5) || (path_is_absolute(ref) && ref[0] != '/')) {
        error_setg(errp, "%s '%s' is not a plain file name, not followed%s", kind, ref, hint);
        return -EPERM;
    }
    char *real = realpath(resolved, NULL);
    if (!real) {
        return 0; /* the open itself reports the missing file, with qemu's words */
    }
    char *dir_of = path_dirname(image);
    char *real_dir = realpath(dir_of, NULL);
    free(dir_of);
    bool ok = real_dir && path_inside(real, real_dir);
    pthread_mutex_lock(&policy_lock);
    for (char **p = allowed; !ok && p && *p; p++) {
        ok = path_inside(real, *p);
    }
    pthread_mutex_unlock(&policy_lock);
    if (!ok) {
        error_setg(errp, "%s '%s' resolves to '%s', outside the directory of '%s'%s", kind, ref,
                   real, image, hint);
    }
    free(real);
    free(real_dir);
    return ok ? 0 : -EPERM;
}

/*
 * Metadata budget.  Table sizes come from the image (an L1 table, a BAT, a
 * catalog, an offset array); each is bounded by its format's own limit and
 * by the file's size, but a large hostile file could still make us hold
 * hundreds of MiB.  Drivers reserve each table they load at open against
 * one budget per image: 64 MiB by default (a 64 TiB qcow2 with 64 KiB
 * clusters needs 1 MiB of L1; a 2 TiB VHD a 4 MiB BAT), or
 * IMGPIPE_MAX_METADATA (a size: "256M").
 */
static uint64_t metadata_budget;
static pthread_once_t budget_once = PTHREAD_ONCE_INIT;

static void read_budget(void)
{
    const char *env = getenv("IMGPIPE_MAX_METADATA");
    const char *end;
    uint64_t v;
    metadata_budget = BDRV_METADATA_BUDGET;
    if (env && parse_size(env, &end, &v) == 0 && !*end && v > 0) {
        metadata_budget = v;
    }
}

int bdrv_metadata_reserve(BlockDriverState *bs, const char *what, uint64_t bytes, Error **errp)
{
    pthread_once(&budget_once, read_budget);
    uint64_t held = bs->metadata_bytes;
    if (bytes > metadata_budget || held > metadata_budget - bytes) {
        bool mib = metadata_budget % MiB == 0;
        error_setg(errp,
                   "%s of %" PRIu64 " bytes exceeds the metadata budget of %" PRIu64
                   " %s per image (%" PRIu64 " bytes already held); raise it with "
                   "IMGPIPE_MAX_METADATA=SIZE",
                   what, bytes, mib ? metadata_budget / (uint64_t)MiB : metadata_budget,
                   mib ? "MiB" : "bytes", held);
        return -EFBIG;
    }
    bs->metadata_bytes = held + bytes;
    return 0;
}
