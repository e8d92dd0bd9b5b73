/*
 * runner_engine.c — run pipeline steps with the engine (see runner.h for
 * the contract every step follows).
 *
 * How each kind makes job->tmp_output:
 *   create, convert   img_create / img_convert straight into tmp_output;
 *   resize, amend,    copy the input (reflink when the file system can) to
 *   snapshot, rebase  tmp_output, re-point its backing file if the copy
 *                     sits in another directory, then run the command on
 *                     the copy: an input is never modified;
 *   commit            copy the base to tmp_output and the overlay beside it,
 *                     point the overlay copy at tmp_output, commit, delete
 *                     the overlay copy;
 *   exec              exec_step_run().
 * Formats that store UUIDs or timestamps get BdrvRepro{seed = action key,
 * time = SOURCE_DATE_EPOCH}, so outputs are bit-identical across runs.
 */
#include "cli/runner_engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "engine/engine.h"
#include "planner/fsutil.h"

static BdrvRepro job_repro(const RunnerJob *j)
{
    BdrvRepro r = {.enabled = true, .time = j->epoch};
    memcpy(r.seed, j->key->b, sizeof(r.seed));
    return r;
}

static const char *param_or_null(const Node *n, const char *key)
{
    const char *v = node_param(n, key);
    return v && *v ? v : NULL;
}

static int64_t param_int(const Node *n, const char *key, int64_t def)
{
    int64_t v;
    const char *s = node_param(n, key);
    return s && parse_int64(s, &v) == 0 ? v : def;
}

static bool param_true(const Node *n, const char *key)
{
    const char *v = node_param(n, key);
    return v && !strcmp(v, "true");
}

/* The step's log, for the engine's chatter ("Formatting ..."). */
static FILE *open_log(const RunnerJob *j)
{
    FILE *f = fopen(j->log_path, "a");
    return f ? f : fopen("/dev/null", "w");
}

/* ---- create / convert ---- */

static int run_create(const RunnerJob *j, FILE *log, Error **errp)
{
    const Node *n = j->node;
    CreateOpts o = {.filename = j->tmp_output,
                    .fmt = n->format,
                    .options = param_or_null(n, "options"),
                    .size = param_int(n, "size", -1),
                    .quiet = true,
                    .repro = job_repro(j),
                    .out = log};
    if (node_input(n, "backing")) {
        /* tmp_output is beside the output: the relative path works for both */
        o.backing = node_param(n, "backing_file");
        o.backing_fmt = param_or_null(n, "backing_format");
    }
    return img_create(&o, errp);
}

/* The input format all sources share, or NULL to probe. */
static const char *common_format(const Node *n)
{
    const char *fmt = NULL;
    for (size_t i = 0; i < n->n_inputs; i++) {
        const char *f = n->inputs[i].node->format;
        if (!f || (fmt && strcmp(fmt, f))) {
            return NULL;
        }
        fmt = f;
    }
    return fmt;
}

static int run_convert(const RunnerJob *j, FILE *log, Error **errp)
{
    const Node *n = j->node;
    const char *compress = node_param(n, "compress");
    StrBuf opts = STRBUF_INIT;
    sb_add(&opts, node_param(n, "options") ? node_param(n, "options") : "");
    if (compress && !strcmp(compress, "zstd") && n->format && !strcmp(n->format, "qcow2") &&
        !strstr(sb_str(&opts), "compression_type=")) {
        sb_addf(&opts, "%scompression_type=zstd", opts.len ? "," : "");
    }
    ConvertOpts o = {.sources = j->inputs,
                     .n_sources = (int)n->n_inputs,
                     .src_fmt = common_format(n),
                     .out_filename = j->tmp_output,
                     .out_fmt = n->format,
                     .options = opts.len ? sb_str(&opts) : NULL,
                     .compress = compress && strcmp(compress, "none") != 0,
                     .min_sparse = param_int(n, "sparse_size", 4096),
                     .snapshot = param_or_null(n, "snapshot"),
                     .num_coroutines = 8,
                     .cache = "unsafe",
                     .src_cache = "writeback",
                     .quiet = true,
                     .repro = job_repro(j),
                     .progress = {.fn = j->progress, .opaque = j->progress_opaque},
                     .out = log,
                     .sparse_size_given = true,
                     /* we already write a temporary beside the output and rename it */
                     .no_atomic = true};
    int ret = img_convert(&o, errp);
    sb_release(&opts);
    return ret;
}

/* ---- copy, then modify ---- */

/*
 * Re-point the copy at path (made from input node from) to the backing
 * file the recipe gives it, if the copy's directory differs from the
 * input's: backing files are recorded relative to the image.
 */
static int fix_backing(const RunnerJob *j, const Node *from, const char *path, FILE *log,
                       Error **errp)
{
    const Node *b = node_backing(from);
    if (!b) {
        return 0;
    }
    char *from_dir = path_dirname(from->output), *to_dir = path_dirname(j->node->output);
    bool same = !strcmp(from_dir, to_dir);
    char *rel = path_relative(to_dir, b->output);
    int ret = 0;
    if (!same) {
        RebaseOpts o = {.filename = path,
                        .fmt = from->format,
                        .backing = rel,
                        .backing_fmt = b->format,
                        .unsafe = true,
                        .quiet = true,
                        .out = log};
        ret = img_rebase(&o, errp);
    }
    free(rel);
    free(from_dir);
    free(to_dir);
    return ret;
}

static int copy_from(const RunnerJob *j, const char *role, const char *dst, FILE *log, Error **errp)
{
    const Node *n = j->node;
    for (size_t i = 0; i < n->n_inputs; i++) {
        if (!strcmp(n->inputs[i].role, role)) {
            int ret = file_copy(j->inputs[i], dst, errp);
            return ret < 0 ? ret : fix_backing(j, n->inputs[i].node, dst, log, errp);
        }
    }
    error_setg(errp, "no '%s' input", role);
    return -EINVAL;
}

static PreallocMode prealloc_mode(const char *s)
{
    if (s && !strcmp(s, "metadata")) {
        return PREALLOC_METADATA;
    }
    if (s && !strcmp(s, "falloc")) {
        return PREALLOC_FALLOC;
    }
    return s && !strcmp(s, "full") ? PREALLOC_FULL : PREALLOC_OFF;
}

static int run_modify(const RunnerJob *j, FILE *log, Error **errp)
{
    const Node *n = j->node;
    int ret = copy_from(j, "from", j->tmp_output, log, errp);
    if (ret < 0) {
        return ret;
    }
    EngineProgress prog = {.fn = j->progress, .opaque = j->progress_opaque};
    if (n->kind == STEP_RESIZE) {
        ResizeOpts o = {.filename = j->tmp_output,
                        .fmt = n->format,
                        .size_str = node_param(n, "size"),
                        .shrink = param_true(n, "shrink"),
                        .prealloc = prealloc_mode(node_param(n, "preallocation")),
                        .quiet = true,
                        .out = log};
        return img_resize(&o, errp);
    }
    if (n->kind == STEP_AMEND) {
        AmendOpts o = {.filename = j->tmp_output,
                       .fmt = n->format,
                       .options = node_param(n, "options"),
                       .force = param_true(n, "force"),
                       .quiet = true,
                       .progress = prog,
                       .out = log};
        return img_amend(&o, errp);
    }
    if (n->kind == STEP_SNAPSHOT) {
        bool create = !strcmp(node_param(n, "action"), "create");
        SnapshotOpts o = {.filename = j->tmp_output,
                          .fmt = n->format,
                          .action = create ? SNAPSHOT_CREATE : SNAPSHOT_DELETE,
                          .name = node_param(n, create ? "create" : "delete"),
                          .quiet = true,
                          .repro = job_repro(j),
                          .out = log};
        return img_snapshot(&o, errp);
    }
    /* STEP_REBASE */
    bool flatten = param_true(n, "flatten");
    RebaseOpts o = {.filename = j->tmp_output,
                    .fmt = n->format,
                    .backing = flatten ? "" : node_param(n, "backing_file"),
                    .backing_fmt = flatten ? NULL : param_or_null(n, "backing_format"),
                    .unsafe = param_true(n, "unsafe"),
                    .quiet = true,
                    .progress = prog,
                    .out = log};
    return img_rebase(&o, errp);
}

static int run_commit(const RunnerJob *j, FILE *log, Error **errp)
{
    const Node *n = j->node, *base = node_input(n, "base"), *from = node_input(n, "from");
    char *overlay = xasprintf("%s.overlay", j->tmp_output);
    int ret = copy_from(j, "base", j->tmp_output, log, errp);
    for (size_t i = 0; ret == 0 && i < n->n_inputs; i++) {
        if (!strcmp(n->inputs[i].role, "from")) {
            ret = file_copy(j->inputs[i], overlay, errp);
        }
    }
    if (ret == 0) {
        RebaseOpts r = {.filename = overlay,
                        .fmt = from->format,
                        .backing = path_basename(j->tmp_output),
                        .backing_fmt = base->format,
                        .unsafe = true,
                        .quiet = true,
                        .out = log};
        ret = img_rebase(&r, errp);
    }
    if (ret == 0) {
        CommitOpts c = {.filename = overlay,
                        .fmt = from->format,
                        .drop = true,
                        .quiet = true,
                        .progress = {.fn = j->progress, .opaque = j->progress_opaque},
                        .out = log};
        ret = img_commit(&c, errp);
    }
    unlink(overlay);
    free(overlay);
    return ret;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static int engine_run(void *opaque, const RunnerJob *j, Error **errp)
{
    pthread_once(&init_once, engine_init);
    FILE *log = j->node->kind == STEP_EXEC ? NULL : open_log(j);
    int ret;
    switch (j->node->kind) {
    case STEP_CREATE: ret = run_create(j, log, errp); break;
    case STEP_CONVERT: ret = run_convert(j, log, errp); break;
    case STEP_RESIZE:
    case STEP_AMEND:
    case STEP_SNAPSHOT:
    case STEP_REBASE: ret = run_modify(j, log, errp); break;
    case STEP_COMMIT: ret = run_commit(j, log, errp); break;
    case STEP_EXEC: ret = exec_step_run(j, errp); break;
    default: error_setg(errp, "a %s is not a step", step_kind_name(j->node->kind)); ret = -EINVAL;
    }
    if (log) {
        fclose(log);
    }
    return ret;
}

const Runner *runner_engine(void)
{
    static const Runner r = {engine_run, NULL};
    return &r;
}
