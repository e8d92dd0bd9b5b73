/*
 * test_build.c — the executor with a fake runner: no-op rebuilds run
 * nothing, a change reruns exactly what depends on it, early cutoff,
 * -j parallelism, stop-on-failure vs keep-going, and a failed step leaving
 * the previous output and cache row untouched.
 *
 * The fake runner writes, for each exec node, the value of env.CONTENT
 * followed by its inputs' bytes; env.FAIL=1 makes it fail; env.SLEEP_MS
 * makes it slow.  env.NOISE changes the key but not the output.
 */
#include "helpers.h"

#include <pthread.h>

#include "planner/build.h"
#include "planner/cache.h"
#include "planner/plan.h"

typedef struct Fake {
    pthread_mutex_t lock;
    int runs[16];
    char names[16][16];
    int n;
    int running, max_running;
} Fake;

static int fake_index(Fake *f, const char *name)
{
    for (int i = 0; i < f->n; i++) {
        if (!strcmp(f->names[i], name)) {
            return i;
        }
    }
    snprintf(f->names[f->n], sizeof(f->names[0]), "%s", name);
    return f->n++;
}

static int runs_of(Fake *f, const char *name)
{
    for (int i = 0; i < f->n; i++) {
        if (!strcmp(f->names[i], name)) {
            return f->runs[i];
        }
    }
    return 0;
}

static int fake_run(void *opaque, const RunnerJob *job, Error **errp)
{
    Fake *f = opaque;
    const Node *n = job->node;
    pthread_mutex_lock(&f->lock);
    f->runs[fake_index(f, n->name)]++;
    f->running++;
    if (f->running > f->max_running) {
        f->max_running = f->running;
    }
    pthread_mutex_unlock(&f->lock);
    const char *sleep_ms = node_param(n, "env.SLEEP_MS");
    if (sleep_ms) {
        usleep((useconds_t)atoi(sleep_ms) * 1000);
    }
    int ret = 0;
    const char *fail = node_param(n, "env.FAIL");
    if (fail && !strcmp(fail, "1")) {
        error_setg(errp, "fake failure");
        ret = -EIO;
    } else {
        FILE *out = fopen(job->tmp_output, "w");
        const char *content = node_param(n, "env.CONTENT");
        fputs(content ? content : "", out);
        for (size_t i = 0; i < n->n_inputs; i++) {
            FILE *in = fopen(job->inputs[i], "r");
            int c;
            while ((c = fgetc(in)) != EOF) {
                fputc(c, out);
            }
            fclose(in);
        }
        fclose(out);
    }
    pthread_mutex_lock(&f->lock);
    f->running--;
    pthread_mutex_unlock(&f->lock);
    return ret;
}

/* Load, plan and build recipe in dir with the fake runner. */
static int build(const char *dir, const char *recipe, Fake *f, int jobs, bool keep_going,
                 BuildStats *st)
{
    State s;
    assert_null(load_recipe(&s, dir, recipe, NULL, 0));
    char *db = xasprintf("%s/cache.db", dir);
    Cache *c;
    assert_int_equal(cache_open(db, &c, NULL), 0);
    Plan p;
    assert_int_equal(plan_init(&p, &s, c, NULL, 0, 0, NULL), 0);
    Runner r = {fake_run, f};
    BuildConfig cfg = {.jobs = jobs, .keep_going = keep_going, .runner = &r};
    Error *err = NULL;
    int ret = build_run(&p, &cfg, st, &err);
    error_free(err);
    plan_release(&p);
    cache_close(c);
    state_release(&s);
    free(db);
    return ret;
}

static char *recipe_chain(const char *content, const char *noise)
{
    return xasprintf("version: 1\nimages:\n"
                     "  a: { exec: { command: [x], env: { CONTENT: \"%s\", NOISE: \"%s\" } } }\n"
                     "  b: { exec: { command: [x], from: a, env: { CONTENT: B } } }\n"
                     "  c: { exec: { command: [x], from: b, env: { CONTENT: C } } }\n"
                     "  d: { exec: { command: [x], env: { CONTENT: D } } }\n",
                     content, noise);
}

static char *read_all(const char *dir, const char *rel)
{
    char *path = xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(path, "r");
    free(path);
    if (!f) {
        return NULL;
    }
    char buf[256] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return xstrdup(buf);
}

static void test_noop_and_change(void **state)
{
    char *dir = scratch_dir();
    Fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
    BuildStats st;
    char *r1 = recipe_chain("A", "1");
    assert_int_equal(build(dir, r1, &f, 4, false, &st), 0);
    assert_int_equal(st.run, 4);
    char *c = read_all(dir, "out/c.img");
    assert_string_equal(c, "CBA");
    free(c);
    /* nothing changed: nothing runs */
    assert_int_equal(build(dir, r1, &f, 4, false, &st), 0);
    assert_int_equal(st.total, 0);
    assert_int_equal(runs_of(&f, "a"), 1);
    /* a's content changes: a, b, c run; d does not */
    char *r2 = recipe_chain("A2", "1");
    assert_int_equal(build(dir, r2, &f, 4, false, &st), 0);
    assert_int_equal(st.run, 3);
    assert_int_equal(runs_of(&f, "c"), 2);
    assert_int_equal(runs_of(&f, "d"), 1);
    free(r1);
    free(r2);
    free(dir);
}

static void test_early_cutoff(void **state)
{
    char *dir = scratch_dir();
    Fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
    BuildStats st;
    char *r1 = recipe_chain("A", "1"), *r2 = recipe_chain("A", "2");
    assert_int_equal(build(dir, r1, &f, 2, false, &st), 0);
    /* NOISE changes a's key, not its bytes: b and c are cut off */
    assert_int_equal(build(dir, r2, &f, 2, false, &st), 0);
    assert_int_equal(runs_of(&f, "a"), 2);
    assert_int_equal(runs_of(&f, "b"), 1);
    assert_int_equal(runs_of(&f, "c"), 1);
    assert_int_equal(st.run, 1);
    assert_int_equal(st.cutoff, 2);
    /* and the cutoff is stable: the next build does nothing */
    assert_int_equal(build(dir, r2, &f, 2, false, &st), 0);
    assert_int_equal(st.total, 0);
    free(r1);
    free(r2);
    free(dir);
}

static void test_parallel_jobs(void **state)
{
    char *dir = scratch_dir();
    Fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
    BuildStats st;
    const char *r = "version: 1\nimages:\n"
                    "  p1: { exec: { command: [x], env: { SLEEP_MS: 150, CONTENT: 1 } } }\n"
                    "  p2: { exec: { command: [x], env: { SLEEP_MS: 150, CONTENT: 2 } } }\n"
                    "  p3: { exec: { command: [x], env: { SLEEP_MS: 150, CONTENT: 3 } } }\n"
                    "  p4: { exec: { command: [x], env: { SLEEP_MS: 150, CONTENT: 4 } } }\n";
    assert_int_equal(build(dir, r, &f, 4, false, &st), 0);
    assert_int_equal(st.run, 4);
    assert_true(f.max_running >= 2);
    char *dir2 = scratch_dir();
    Fake g = {.lock = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(build(dir2, r, &g, 1, false, &st), 0);
    assert_int_equal(g.max_running, 1);
    free(dir);
    free(dir2);
}

static const char fail_recipe[] = "version: 1\nimages:\n"
                                  "  bad: { exec: { command: [x], env: { FAIL: 1 } } }\n"
                                  "  after: { exec: { command: [x], from: bad } }\n"
                                  "  other: { exec: { command: [x], env: { CONTENT: o } } }\n";

static void test_failure_stops_new_work(void **state)
{
    char *dir = scratch_dir();
    Fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
    BuildStats st;
    assert_int_equal(build(dir, fail_recipe, &f, 1, false, &st), -EIO);
    assert_int_equal(st.failed, 1);
    assert_int_equal(runs_of(&f, "other"), 0); /* queued behind bad with -j1: not started */
    assert_int_equal(runs_of(&f, "after"), 0);
    assert_int_equal(st.skipped, 2);
    free(dir);
}

static void test_keep_going_skips_only_dependents(void **state)
{
    char *dir = scratch_dir();
    Fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
    BuildStats st;
    assert_int_equal(build(dir, fail_recipe, &f, 1, true, &st), -EIO);
    assert_int_equal(runs_of(&f, "other"), 1);
    assert_int_equal(runs_of(&f, "after"), 0);
    assert_int_equal(st.skipped, 1);
    free(dir);
}

static void test_failed_step_keeps_previous_output(void **state)
{
    char *dir = scratch_dir();
    Fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
    BuildStats st;
    const char *ok =
        "version: 1\nimages:\n  n: { exec: { command: [x], env: { CONTENT: old } } }\n";
    const char *bad =
        "version: 1\nimages:\n  n: { exec: { command: [x], env: { CONTENT: new, FAIL: 1 } } }\n";
    assert_int_equal(build(dir, ok, &f, 1, false, &st), 0);
    assert_int_equal(build(dir, bad, &f, 1, false, &st), -EIO);
    char *n = read_all(dir, "out/n.img");
    assert_string_equal(n, "old");
    free(n);
    /* the old row still matches the old output: back to the old recipe, nothing runs */
    assert_int_equal(build(dir, ok, &f, 1, false, &st), 0);
    assert_int_equal(st.total, 0);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noop_and_change),
        cmocka_unit_test(test_early_cutoff),
        cmocka_unit_test(test_parallel_jobs),
        cmocka_unit_test(test_failure_stops_new_work),
        cmocka_unit_test(test_keep_going_skips_only_dependents),
        cmocka_unit_test(test_failed_step_keeps_previous_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
