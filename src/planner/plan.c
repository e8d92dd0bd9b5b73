/*
 * plan.c — up-to-date checks and reasons (see plan.h).
 */
#include "planner/plan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "planner/fsutil.h"
#include "planner/key.h"

static void set_reason(Node *n, NodeStatus status, const char *fmt, ...) IMGPIPE_PRINTF(3, 4);

static void set_reason(Node *n, NodeStatus status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(n->reason);
    n->reason = xvasprintf(fmt, ap);
    va_end(ap);
    n->status = status;
}

const char *plan_status_name(const Node *n)
{
    if (n->kind == STEP_SOURCE) {
        return "source";
    }
    switch (n->status) {
    case NODE_CLEAN: return "up-to-date";
    case NODE_DIRTY:
    case NODE_WAITING: return "will-run";
    case NODE_RUNNING: return "running";
    case NODE_BUILT: return "built";
    case NODE_CUTOFF: return "up-to-date";
    case NODE_FAILED: return "failed";
    case NODE_SKIPPED: return "skipped";
    default: return "unknown";
    }
}

static int hash_files(Plan *p, Node *n, Error **errp)
{
    if (!n->n_files || n->file_digests) {
        return 0;
    }
    n->file_digests = xcalloc(n->n_files, sizeof(Sha256));
    for (size_t i = 0; i < n->n_files; i++) {
        int ret = digest_input(p->cache, p->s->project_dir, n->files[i].path, &n->file_digests[i],
                               &p->stats, errp);
        if (ret < 0) {
            char *where = srcpos_str(n->files[i].pos);
            error_prepend(errp, "%s: image '%s': ", where, n->name);
            free(where);
            return ret;
        }
    }
    return 0;
}

/* Compare the recorded output with the file on disk. */
static int check_output(Plan *p, Node *n, const CacheNode *row, Error **errp)
{
    char *abs = path_join(p->s->project_dir, n->output);
    FileFp fp;
    int ret = 0;
    if (file_fingerprint(abs, &fp) < 0) {
        set_reason(n, NODE_DIRTY, "output '%s' is missing", n->output);
    } else if (fp_equal(&fp, &row->fp)) {
        set_reason(n, NODE_CLEAN, "up to date");
    } else {
        Sha256 now;
        ret = digest_file(abs, &now, &p->stats, errp);
        if (ret == 0 && sha256_equal(&now, &row->digest)) {
            set_reason(n, NODE_CLEAN, "up to date (output touched, content unchanged)");
            ret = cache_refresh_fp(p->cache, n->name, &fp, errp);
        } else if (ret == 0) {
            set_reason(n, NODE_DIRTY, "output '%s' was modified outside imgpipe", n->output);
        }
    }
    if (n->status == NODE_CLEAN) {
        n->digest = row->digest;
        n->digest_valid = true;
    }
    free(abs);
    return ret;
}

int plan_evaluate(Plan *p, Node *n, Error **errp)
{
    const CacheNode *row = cache_node(p->cache, n->name);
    n->had_digest = row != NULL;
    if (row) {
        n->old_digest = row->digest;
    }
    if (!key_compute(n, p->epoch)) {
        error_setg(errp, "image '%s': an input digest is unknown", n->name);
        return -EINVAL;
    }
    if (!row) {
        set_reason(n, NODE_DIRTY, "never built");
        return 0;
    }
    if (!sha256_equal(&row->key, &n->key)) {
        StrBuf why = STRBUF_INIT;
        preimage_diff(row->preimage, n->preimage, true, &why);
        set_reason(n, NODE_DIRTY, "action key changed (%s)", sb_str(&why));
        sb_release(&why);
        return 0;
    }
    if (strcmp(row->output, n->output) != 0) {
        set_reason(n, NODE_DIRTY, "output path changed from '%s'", row->output);
        return 0;
    }
    return check_output(p, n, row, errp);
}

/* The first wanted input that has no digest yet, or NULL. */
static Node *unknown_input(const Node *n)
{
    for (size_t i = 0; i < n->n_inputs; i++) {
        if (!n->inputs[i].node->digest_valid) {
            return n->inputs[i].node;
        }
    }
    return NULL;
}

static int plan_node(Plan *p, Node *n, Error **errp)
{
    int ret = hash_files(p, n, errp);
    if (ret < 0) {
        return ret;
    }
    if (n->kind == STEP_SOURCE) {
        n->digest = n->file_digests[0];
        n->digest_valid = true;
        set_reason(n, NODE_CLEAN, "source");
        p->n_sources++;
        return 0;
    }
    Node *in = unknown_input(n);
    if (in) {
        set_reason(n, NODE_WAITING, "input '%s' will be rebuilt", in->name);
        key_compute(n, p->epoch);
    } else {
        ret = plan_evaluate(p, n, errp);
    }
    p->n_clean += n->status == NODE_CLEAN;
    p->n_dirty += n->status == NODE_DIRTY;
    p->n_waiting += n->status == NODE_WAITING;
    return ret;
}

int plan_init(Plan *p, State *s, Cache *c, Node *const *targets, size_t n_targets, int64_t epoch,
              Error **errp)
{
    memset(p, 0, sizeof(*p));
    p->s = s;
    p->cache = c;
    p->epoch = epoch;
    p->order = state_closure(s, targets, n_targets, &p->n_order);
    int ret = 0;
    for (size_t i = 0; i < p->n_order && ret == 0; i++) {
        ret = plan_node(p, p->order[i], errp);
    }
    Error *flush_err = NULL;
    int fret = cache_flush_files(c, &flush_err);
    if (ret == 0 && fret < 0) {
        error_propagate(errp, flush_err);
        return fret;
    }
    error_free(flush_err);
    return ret;
}

void plan_release(Plan *p)
{
    free(p->order);
    p->order = NULL;
}
