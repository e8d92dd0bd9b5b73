/*
 * build.c — the executor (see build.h).
 *
 * Design notes — invariants:
 *
 *  1. Only the main thread reads or writes Node build state (status,
 *     pending, digest of other nodes).  A worker touches only its Job and
 *     the node's key/output paths, which are fixed before the job is
 *     queued; results come back through the done list.
 *  2. A node is queued only when every input is CLEAN, BUILT or CUTOFF, so
 *     its key is final when it runs (plan_evaluate computed it from the
 *     inputs' real digests).
 *  3. A step writes only its temporary file; the output path changes only
 *     by rename() after fsync, and the cache row is written after the
 *     rename (cache.c, invariant 1).  A failed or killed step therefore
 *     leaves the previous output and its row, consistent with each other.
 *  4. Two processes never run the same node at once: the step holds an
 *     exclusive flock() on .imgpipe/locks/NAME.lock from before it
 *     re-reads the node's row until after it records the new one; a
 *     process that waited for the lock and finds the row already matching
 *     its key adopts the other's output instead of rebuilding.
 *  5. Stale temporaries of an output (a killed build's) are removed only
 *     under that output's lock.
 *  6. Once a step has failed without keep_going, no new step starts; the
 *     queue is emptied and the running steps are waited for, so the
 *     process never exits with a worker still writing.
 */
#include "planner/build.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/util.h"
#include "planner/fsutil.h"

typedef struct Job {
    Node *node;
    char *output, *lock_path, *log_path;
    char **inputs;
    int ret;
    Error *err;
    bool adopted;
    Sha256 digest;
    int64_t bytes, duration_ns, t0;
    struct Job *next;
    struct Executor *ex;
} Job;

typedef struct Executor {
    Plan *plan;
    const BuildConfig *cfg;
    BuildStats *stats;
    pthread_mutex_t lock;
    pthread_cond_t work_cv, done_cv;
    Job **ready; /* main thread: runnable, not yet handed out */
    size_t n_ready, ready_head, alloc_ready;
    int dispatched;          /* handed to workers, not yet processed */
    Job *queue, *queue_tail; /* handed out, waiting for a worker */
    Job *done, *done_tail;   /* finished, for the main thread */
    bool shutdown;
    int outstanding; /* ready, queued or running (main thread only) */
    int done_steps;  /* atomic: read by workers for events */
    bool stop;
    Error *first_err;
    char *state_dir; /* <project>/.imgpipe */
} Executor;

static void emit(Executor *ex, BuildEvent ev)
{
    if (ex->cfg->events) {
        ev.done = __atomic_load_n(&ex->done_steps, __ATOMIC_RELAXED);
        ev.total = ex->stats->total;
        ex->cfg->events->fn(ex->cfg->events->opaque, &ev);
    }
}

static void job_free(Job *j)
{
    for (size_t i = 0; j->inputs && i < j->node->n_inputs; i++) {
        free(j->inputs[i]);
    }
    free(j->inputs);
    free(j->output);
    free(j->lock_path);
    free(j->log_path);
    error_free(j->err);
    free(j);
}

/* ---- worker side ---- */

static void job_progress(void *opaque, int64_t done, int64_t total)
{
    Job *j = opaque;
    emit(j->ex, (BuildEvent){.kind = BUILD_EV_PROGRESS,
                             .node = j->node,
                             .progress_done = done,
                             .progress_total = total});
}

/* Invariant 4: under the lock, has another process built this key already? */
static bool adopt_existing(Job *j)
{
    CacheNode row;
    bool found = false;
    if (cache_node_fresh(j->ex->plan->cache, j->node->name, &row, &found, NULL) < 0 || !found) {
        return false;
    }
    FileFp fp;
    bool same = sha256_equal(&row.key, &j->node->key) && !strcmp(row.output, j->node->output) &&
                file_fingerprint(j->output, &fp) == 0 && fp_equal(&fp, &row.fp);
    if (same) {
        j->digest = row.digest;
        j->bytes = fp.size;
    }
    cache_node_release(&row);
    return same;
}

/* Publish the temporary output, hash it and record it (invariant 3). */
static int finish_output(Job *j, const char *tmp, Error **errp)
{
    FileFp fp;
    if (file_fingerprint(tmp, &fp) < 0) {
        error_setg(errp, "the step did not create its output");
        return -ENOENT;
    }
    int ret = file_publish(tmp, j->output, errp);
    if (ret == 0 && (ret = file_fingerprint(j->output, &fp)) < 0) {
        error_setg_errno(errp, -ret, "cannot stat '%s'", j->output);
    }
    if (ret == 0) {
        ret = digest_file(j->output, &j->digest, &j->ex->plan->stats, errp);
    }
    if (ret == 0) {
        CacheNode row = {.name = j->node->name,
                         .key = j->node->key,
                         .preimage = j->node->preimage,
                         .output = j->node->output,
                         .digest = j->digest,
                         .fp = fp,
                         .built_at_ns = wall_clock_ns(),
                         .duration_ns = clock_ns() - j->t0};
        j->bytes = fp.size;
        ret = cache_record_node(j->ex->plan->cache, &row, errp);
    }
    return ret;
}

static int run_step(Job *j, Error **errp)
{
    Executor *ex = j->ex;
    remove_stale_temps(j->output); /* invariant 5 */
    int ret = mkdir_parents(j->output, errp);
    /* steps that write no backing file name get a temporary with the output's basename */
    bool subdir = j->node->kind == STEP_CONVERT || j->node->kind == STEP_EXEC;
    char *tmp = temp_path_for(j->output, subdir);
    emit(ex, (BuildEvent){.kind = BUILD_EV_STARTED, .node = j->node});
    if (ret == 0) {
        RunnerJob rj = {.state = ex->plan->s,
                        .node = j->node,
                        .project_dir = ex->plan->s->project_dir,
                        .output = j->output,
                        .tmp_output = tmp,
                        .inputs = (const char *const *)j->inputs,
                        .key = &j->node->key,
                        .epoch = ex->plan->epoch,
                        .log_path = j->log_path,
                        .progress = job_progress,
                        .progress_opaque = j};
        ret = ex->cfg->runner->run(ex->cfg->runner->opaque, &rj, errp);
    }
    if (ret == 0) {
        ret = finish_output(j, tmp, errp);
    }
    remove_stale_temps(j->output); /* failed: our temporary; done: its empty directory */
    free(tmp);
    return ret;
}

static void run_job(Job *j)
{
    j->t0 = clock_ns();
    int fd = open(j->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        j->ret = -errno;
        error_setg_errno(&j->err, errno, "cannot lock '%s'", j->lock_path);
    } else if (adopt_existing(j)) {
        j->adopted = true;
    } else {
        j->ret = run_step(j, &j->err);
    }
    if (fd >= 0) {
        close(fd); /* releases the flock */
    }
    j->duration_ns = clock_ns() - j->t0;
}

static void *worker(void *opaque)
{
    Executor *ex = opaque;
    pthread_mutex_lock(&ex->lock);
    for (;;) {
        while (!ex->queue && !ex->shutdown) {
            pthread_cond_wait(&ex->work_cv, &ex->lock);
        }
        if (!ex->queue) {
            break;
        }
        Job *j = ex->queue;
        ex->queue = j->next;
        pthread_mutex_unlock(&ex->lock);
        run_job(j);
        pthread_mutex_lock(&ex->lock);
        j->next = NULL;
        if (ex->done_tail) {
            ex->done_tail->next = j;
        } else {
            ex->done = j;
        }
        ex->done_tail = j;
        pthread_cond_signal(&ex->done_cv);
    }
    pthread_mutex_unlock(&ex->lock);
    return NULL;
}

/* ---- main-thread side ---- */

static void enqueue(Executor *ex, Node *n)
{
    Job *j = XNEW(Job);
    const char *dir = ex->plan->s->project_dir;
    j->ex = ex;
    j->node = n;
    j->output = path_join(dir, n->output);
    j->lock_path = xasprintf("%s/locks/%s.lock", ex->state_dir, n->name);
    j->log_path = xasprintf("%s/logs/%s.log", ex->state_dir, n->name);
    j->inputs = xcalloc(n->n_inputs + 1, sizeof(char *));
    for (size_t i = 0; i < n->n_inputs; i++) {
        j->inputs[i] = path_join(dir, n->inputs[i].node->output);
    }
    n->status = NODE_RUNNING;
    ex->outstanding++;
    if (ex->n_ready == ex->alloc_ready) {
        ex->alloc_ready = ex->alloc_ready ? 2 * ex->alloc_ready : 16;
        ex->ready = xrealloc(ex->ready, ex->alloc_ready * sizeof(Job *));
    }
    ex->ready[ex->n_ready++] = j;
}

/* Hand ready jobs to the workers, never more than -j at once. */
static void dispatch(Executor *ex)
{
    pthread_mutex_lock(&ex->lock);
    while (!ex->stop && ex->dispatched < ex->cfg->jobs && ex->ready_head < ex->n_ready) {
        Job *j = ex->ready[ex->ready_head++];
        j->next = NULL;
        if (ex->queue) {
            ex->queue_tail->next = j;
        } else {
            ex->queue = j;
        }
        ex->queue_tail = j;
        ex->dispatched++;
        pthread_cond_signal(&ex->work_cv);
    }
    pthread_mutex_unlock(&ex->lock);
}

static bool is_done(const Node *n)
{
    return n->status == NODE_CLEAN || n->status == NODE_BUILT || n->status == NODE_CUTOFF;
}

/* Count the distinct inputs that are not done yet. */
static int count_pending(const Node *n)
{
    int pending = 0;
    for (size_t i = 0; i < n->n_inputs; i++) {
        const Node *in = n->inputs[i].node;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++) {
            seen = n->inputs[k].node == in;
        }
        pending += !seen && !is_done(in);
    }
    return pending;
}

/*
 * n became done: release its WAITING dependents, evaluating those whose
 * inputs are now all done (early cutoff), iteratively.
 */
static int release_dependents(Executor *ex, Node *done, Error **errp)
{
    size_t cap = 16, top = 0;
    Node **stack = xmalloc(cap * sizeof(Node *));
    stack[top++] = done;
    int ret = 0;
    while (top && ret == 0) {
        Node *n = stack[--top];
        for (size_t i = 0; i < n->n_outs && ret == 0; i++) {
            Node *d = n->outs[i];
            if (!d->wanted || d->status != NODE_WAITING || --d->pending > 0 || ex->stop) {
                continue;
            }
            ret = plan_evaluate(ex->plan, d, errp);
            if (ret == 0 && d->status == NODE_CLEAN) {
                d->status = NODE_CUTOFF;
                ex->stats->cutoff++;
                __atomic_add_fetch(&ex->done_steps, 1, __ATOMIC_RELAXED);
                emit(ex, (BuildEvent){.kind = BUILD_EV_CUTOFF,
                                      .node = d,
                                      .message = "inputs rebuilt with unchanged content"});
                if (top == cap) {
                    stack = xrealloc(stack, (cap *= 2) * sizeof(Node *));
                }
                stack[top++] = d;
            } else if (ret == 0) {
                enqueue(ex, d);
            }
        }
    }
    free(stack);
    return ret;
}

/* Invariant 6: drop the jobs that have not been handed to a worker. */
static void drain_queue(Executor *ex)
{
    while (ex->ready_head < ex->n_ready) {
        Job *j = ex->ready[ex->ready_head++];
        j->node->status = NODE_SKIPPED;
        ex->outstanding--;
        job_free(j);
    }
}

static void job_failed(Executor *ex, Job *j)
{
    Node *n = j->node;
    n->status = NODE_FAILED;
    ex->stats->failed++;
    __atomic_add_fetch(&ex->done_steps, 1, __ATOMIC_RELAXED);
    emit(ex, (BuildEvent){.kind = BUILD_EV_FAILED,
                          .node = n,
                          .duration_ns = j->duration_ns,
                          .message = error_get_pretty(j->err)});
    if (!ex->first_err) {
        ex->first_err = j->err;
        error_prepend(&ex->first_err, "image '%s': ", n->name);
        j->err = NULL;
    }
    if (!ex->cfg->keep_going) {
        ex->stop = true;
        drain_queue(ex);
    }
}

static int job_done(Executor *ex, Job *j, Error **errp)
{
    Node *n = j->node;
    if (j->ret < 0) {
        job_failed(ex, j);
        return 0;
    }
    n->status = j->adopted ? NODE_CLEAN : NODE_BUILT;
    n->digest = j->digest;
    n->digest_valid = true;
    n->duration_ns = j->duration_ns;
    n->bytes = j->bytes;
    ex->stats->run += !j->adopted;
    ex->stats->adopted += j->adopted;
    __atomic_add_fetch(&ex->done_steps, 1, __ATOMIC_RELAXED);
    emit(ex, (BuildEvent){.kind = BUILD_EV_FINISHED,
                          .node = n,
                          .duration_ns = j->duration_ns,
                          .bytes = j->bytes,
                          .unchanged = n->had_digest && sha256_equal(&n->old_digest, &n->digest),
                          .message = j->adopted ? "built by another imgpipe process" : NULL});
    return release_dependents(ex, n, errp);
}

static void skip_leftovers(Executor *ex)
{
    for (size_t i = 0; i < ex->plan->n_order; i++) {
        Node *n = ex->plan->order[i];
        if (n->status == NODE_WAITING || n->status == NODE_DIRTY || n->status == NODE_SKIPPED) {
            n->status = NODE_SKIPPED;
            ex->stats->skipped++;
            emit(ex, (BuildEvent){.kind = BUILD_EV_SKIPPED,
                                  .node = n,
                                  .message = ex->stop ? "the build stopped after a failure"
                                                      : "an input failed"});
        }
    }
}

/* Main loop: queue the ready nodes, then process completions. */
static int schedule(Executor *ex, Error **errp)
{
    int ret = 0;
    for (size_t i = 0; i < ex->plan->n_order; i++) {
        Node *n = ex->plan->order[i];
        if (n->status == NODE_WAITING) {
            n->pending = count_pending(n);
        } else if (n->status == NODE_DIRTY) {
            enqueue(ex, n);
        }
    }
    while (ex->outstanding > 0) {
        dispatch(ex);
        pthread_mutex_lock(&ex->lock);
        while (!ex->done) {
            pthread_cond_wait(&ex->done_cv, &ex->lock);
        }
        Job *j = ex->done;
        ex->done = j->next;
        if (!ex->done) {
            ex->done_tail = NULL;
        }
        pthread_mutex_unlock(&ex->lock);
        ex->outstanding--;
        ex->dispatched--;
        if (ret == 0) {
            ret = job_done(ex, j, errp);
            if (ret < 0) {
                ex->stop = true;
                drain_queue(ex);
            }
        }
        job_free(j);
    }
    return ret;
}

static int make_state_dirs(Executor *ex, Error **errp)
{
    char *locks = xasprintf("%s/locks", ex->state_dir);
    char *logs = xasprintf("%s/logs", ex->state_dir);
    int ret = mkdir_p(locks, errp);
    if (ret == 0) {
        ret = mkdir_p(logs, errp);
    }
    free(locks);
    free(logs);
    return ret;
}

int build_run(Plan *plan, const BuildConfig *cfg, BuildStats *stats, Error **errp)
{
    Executor ex = {.plan = plan, .cfg = cfg, .stats = stats};
    memset(stats, 0, sizeof(*stats));
    stats->total = plan->n_dirty + plan->n_waiting;
    if (stats->total == 0) {
        return 0;
    }
    ex.state_dir = xasprintf("%s/.imgpipe", plan->s->project_dir);
    int ret = make_state_dirs(&ex, errp);
    if (ret < 0) {
        free(ex.state_dir);
        return ret;
    }
    pthread_mutex_init(&ex.lock, NULL);
    pthread_cond_init(&ex.work_cv, NULL);
    pthread_cond_init(&ex.done_cv, NULL);
    int n_threads = MAX(1, MIN(cfg->jobs, stats->total));
    pthread_t *threads = xcalloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 0; i < n_threads; i++) {
        pthread_create(&threads[i], NULL, worker, &ex);
    }
    ret = schedule(&ex, errp);
    pthread_mutex_lock(&ex.lock);
    ex.shutdown = true;
    pthread_cond_broadcast(&ex.work_cv);
    pthread_mutex_unlock(&ex.lock);
    for (int i = 0; i < n_threads; i++) {
        pthread_join(threads[i], NULL);
    }
    skip_leftovers(&ex);
    if (ret == 0 && ex.first_err) {
        error_propagate(errp, ex.first_err);
        ex.first_err = NULL;
        ret = -EIO;
    }
    error_free(ex.first_err);
    free(ex.ready);
    free(threads);
    free(ex.state_dir);
    pthread_cond_destroy(&ex.work_cv);
    pthread_cond_destroy(&ex.done_cv);
    pthread_mutex_destroy(&ex.lock);
    return ret;
}
