/*
 * cli_pipeline.c — `imgpipe build`, `plan` and `explain`: the pipeline
 * commands that decide and run work.  (`graph`, `clean`, `gc` are in
 * cli_pipeline_tools.c.)
 *
 * Exit status: 0 success; 1 a failed step, a bad recipe or any other
 * error; 2 a usage error.  A bad recipe is reported before anything runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/pipeline_common.h"
#include "cli/runner_engine.h"
#include "common/json.h"
#include "common/util.h"
#include "planner/build.h"
#include "planner/key.h"
#include "planner/plan.h"

static const char build_usage[] =
    "usage: imgpipe build [-f RECIPE] [-D NAME=VALUE]... [-j N] [-k]\n"
    "                     [--progress=auto|tty|plain|json|none] [-d explain|stats] [TARGET...]\n"
    "Build all targets of RECIPE (default imgpipe.yaml), or the named ones and\n"
    "what they depend on.  -j runs N steps at once (default: the number of cores);\n"
    "-k keeps going after a failure, skipping only what depends on it.\n";

static const char plan_usage[] =
    "usage: imgpipe plan [-f RECIPE] [-D NAME=VALUE]... [--json] [TARGET...]\n"
    "Show, for each image, whether it is up to date or will run, and why.\n";

static const char explain_usage[] =
    "usage: imgpipe explain [-f RECIPE] [-D NAME=VALUE]... TARGET\n"
    "Show what changed for TARGET since it was last built: its recorded action\n"
    "key preimage diffed against the current one.\n";

/* Open the project and plan the requested targets. */
static int open_and_plan(Project *pr, Plan *plan, const PipeArgs *a, Error **errp)
{
    Node **targets = NULL;
    int ret = project_open(pr, a, true, errp);
    if (ret == 0) {
        ret = project_targets(pr, a->targets, a->n_targets, &targets, errp);
    }
    if (ret == 0) {
        ret = plan_init(plan, &pr->state, pr->cache, targets, a->n_targets, pr->epoch, errp);
    }
    free(targets);
    return ret;
}

static void print_explain(const Plan *plan)
{
    for (size_t i = 0; i < plan->n_order; i++) {
        const Node *n = plan->order[i];
        if (n->status == NODE_DIRTY || n->status == NODE_WAITING) {
            fprintf(stderr, "imgpipe explain: %s: %s\n", n->name, n->reason);
        }
    }
}

static void print_stats(const Plan *plan, const BuildStats *st, int64_t plan_ns)
{
    fprintf(stderr,
            "imgpipe stats: %zu nodes planned in %.1f ms; %d step(s) run; "
            "%lld file(s) hashed (%lld bytes)\n",
            plan->n_order, (double)plan_ns / 1e6, st->run, (long long)plan->stats.files_hashed,
            (long long)plan->stats.bytes_hashed);
}

int cli_build(int argc, char **argv)
{
    PipeArgs a;
    int pr_ret =
        pipe_args_parse(&a, argc, argv, PA_JOBS | PA_KEEP | PA_PROGRESS | PA_DEBUG, build_usage);
    if (pr_ret != 0) {
        return pr_ret > 0 ? 0 : 2;
    }
    Project pr;
    Plan plan = {0};
    Error *err = NULL;
    int64_t t0 = clock_ns();
    int ret = open_and_plan(&pr, &plan, &a, &err);
    int64_t plan_ns = clock_ns() - t0;
    BuildStats st = {0};
    if (ret == 0) {
        if (a.d_explain) {
            print_explain(&plan);
        }
        Progress prog;
        buildprog_init(&prog, a.progress, stdout);
        BuildConfig cfg = {.jobs = a.jobs,
                           .keep_going = a.keep_going,
                           .runner = runner_engine(),
                           .events = &prog.sink};
        ret = build_run(&plan, &cfg, &st, &err);
        buildprog_finish(&prog, &st, ret);
        buildprog_release(&prog);
        if (a.d_stats) {
            print_stats(&plan, &st, plan_ns);
        }
    }
    int status = 0;
    if (ret < 0 && st.failed > 0) {
        /* each failure was printed as it happened */
        fprintf(stderr, "imgpipe: build failed: %d step(s) failed\n", st.failed);
        error_free(err);
        status = 1;
    } else if (ret < 0) {
        status = report_error(err);
    }
    plan_release(&plan);
    project_close(&pr);
    pipe_args_release(&a);
    return status;
}

static JVal *plan_json(const Plan *plan)
{
    JVal *root = json_object(), *nodes = json_array();
    for (size_t i = 0; i < plan->n_order; i++) {
        const Node *n = plan->order[i];
        JVal *o = json_object(), *ins = json_array();
        json_add_str(o, "name", n->name);
        json_add_str(o, "kind", step_kind_name(n->kind));
        json_add_str(o, "status", plan_status_name(n));
        json_add_str(o, "reason", n->reason ? n->reason : "");
        json_add_str(o, "output", n->output);
        for (size_t k = 0; k < n->n_inputs; k++) {
            json_array_add(ins, json_str(n->inputs[k].node->name));
        }
        json_object_add(o, "inputs", ins);
        json_array_add(nodes, o);
    }
    json_object_add(root, "nodes", nodes);
    JVal *sum = json_object();
    json_add_int(sum, "sources", plan->n_sources);
    json_add_int(sum, "up_to_date", plan->n_clean);
    json_add_int(sum, "will_run", plan->n_dirty + plan->n_waiting);
    json_object_add(root, "summary", sum);
    return root;
}

static void plan_text(const Plan *plan)
{
    for (size_t i = 0; i < plan->n_order; i++) {
        const Node *n = plan->order[i];
        printf("%-10s %s (%s -> %s)%s%s\n", plan_status_name(n), n->name, step_kind_name(n->kind),
               n->output, n->kind == STEP_SOURCE || n->status == NODE_CLEAN ? "" : ": ",
               n->kind == STEP_SOURCE || n->status == NODE_CLEAN ? "" : n->reason);
    }
    printf("imgpipe: %d up to date, %d will run, %d source(s)\n", plan->n_clean,
           plan->n_dirty + plan->n_waiting, plan->n_sources);
}

int cli_plan(int argc, char **argv)
{
    PipeArgs a;
    int pr_ret = pipe_args_parse(&a, argc, argv, PA_JSON | PA_DEBUG, plan_usage);
    if (pr_ret != 0) {
        return pr_ret > 0 ? 0 : 2;
    }
    Project pr;
    Plan plan = {0};
    Error *err = NULL;
    int64_t t0 = clock_ns();
    int ret = open_and_plan(&pr, &plan, &a, &err);
    int status = ret < 0 ? report_error(err) : 0;
    if (ret == 0 && a.json) {
        JVal *j = plan_json(&plan);
        StrBuf sb = STRBUF_INIT;
        json_print_pretty(&sb, j, 0);
        printf("%s\n", sb_str(&sb));
        sb_release(&sb);
        json_free(j);
    } else if (ret == 0) {
        plan_text(&plan);
    }
    if (ret == 0 && a.d_stats) {
        BuildStats st = {0};
        print_stats(&plan, &st, clock_ns() - t0);
    }
    plan_release(&plan);
    project_close(&pr);
    pipe_args_release(&a);
    return status;
}

static void explain_inputs(const Node *n)
{
    for (size_t i = 0; i < n->n_inputs; i++) {
        printf("  input %s = image '%s'%s\n", n->inputs[i].role, n->inputs[i].node->name,
               n->inputs[i].node->digest_valid ? "" : " (will be rebuilt first)");
    }
}

static void explain_node(Project *pr, const Node *n)
{
    const CacheNode *row = cache_node(pr->cache, n->name);
    printf("%s: %s%s%s\n", n->name, plan_status_name(n), n->kind == STEP_SOURCE ? "" : ": ",
           n->kind == STEP_SOURCE ? "" : n->reason);
    explain_inputs(n);
    if (n->kind == STEP_SOURCE) {
        return;
    }
    if (!row) {
        printf("  no previous build recorded; current key preimage:\n");
        for (const char *p = n->preimage; p && *p;) {
            const char *nl = strchr(p, '\n');
            int len = nl ? (int)(nl - p) : (int)strlen(p);
            printf("    %.*s\n", len, p);
            p = nl ? nl + 1 : NULL;
        }
        return;
    }
    StrBuf diff = STRBUF_INIT;
    int d = preimage_diff(row->preimage, n->preimage, false, &diff);
    if (d == 0) {
        printf("  action key unchanged since the last build\n");
    } else {
        printf("  changes since the last build (recorded -> current):\n");
        for (const char *p = sb_str(&diff); *p;) {
            const char *nl = strchr(p, '\n');
            printf("    %.*s\n", (int)(nl - p), p);
            p = nl + 1;
        }
    }
    if (n->status == NODE_WAITING) {
        printf("  (inputs marked 'will be rebuilt' are decided after they run: if their\n"
               "   content comes out unchanged, %s stays up to date)\n",
               n->name);
    }
    sb_release(&diff);
}

int cli_explain(int argc, char **argv)
{
    PipeArgs a;
    int pr_ret = pipe_args_parse(&a, argc, argv, 0, explain_usage);
    if (pr_ret != 0) {
        return pr_ret > 0 ? 0 : 2;
    }
    if (a.n_targets != 1) {
        fprintf(stderr, "imgpipe: explain needs exactly one TARGET\n%s", explain_usage);
        pipe_args_release(&a);
        return 2;
    }
    Project pr;
    Plan plan = {0};
    Error *err = NULL;
    int ret = open_and_plan(&pr, &plan, &a, &err);
    int status = ret < 0 ? report_error(err) : 0;
    if (ret == 0) {
        Node **t = NULL;
        project_targets(&pr, a.targets, 1, &t, NULL);
        explain_node(&pr, t[0]);
        free(t);
    }
    plan_release(&plan);
    project_close(&pr);
    pipe_args_release(&a);
    return status;
}
