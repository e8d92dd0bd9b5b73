/*
 * cli_pipeline_tools.c — `imgpipe graph`, `clean` and `gc`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/pipeline_common.h"
#include "common/json.h"
#include "common/util.h"
#include "planner/fsutil.h"
#include "planner/plan.h"
#include "planner/strmap.h"

static const char graph_usage[] =
    "usage: imgpipe graph [-f RECIPE] [-D NAME=VALUE]... [--format=dot|json] [TARGET...]\n"
    "Print the dependency graph, coloured by plan status ('| dot -Tsvg' renders it).\n";

static const char clean_usage[] =
    "usage: imgpipe clean [-f RECIPE] [-D NAME=VALUE]... [TARGET...]\n"
    "Remove the outputs of all (or the named) images and forget them.\n";

static const char gc_usage[] =
    "usage: imgpipe gc [-f RECIPE] [-D NAME=VALUE]...\n"
    "Forget images the recipe no longer names (removing their outputs if they are\n"
    "unchanged since built) and file digests no image reads.\n";

static const char *status_colour(const Node *n)
{
    if (n->kind == STEP_SOURCE) {
        return "#9ecae1";
    }
    return n->status == NODE_CLEAN ? "#a1d99b" : "#fdae6b";
}

static void graph_dot(const Plan *plan)
{
    printf("digraph imgpipe {\n  rankdir=LR;\n"
           "  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];\n");
    for (size_t i = 0; i < plan->n_order; i++) {
        const Node *n = plan->order[i];
        printf("  \"%s\" [label=\"%s\\n%s %s\\n%s\", fillcolor=\"%s\"];\n", n->name, n->name,
               step_kind_name(n->kind), n->format ? n->format : "", plan_status_name(n),
               status_colour(n));
    }
    for (size_t i = 0; i < plan->n_order; i++) {
        const Node *n = plan->order[i];
        for (size_t k = 0; k < n->n_inputs; k++) {
            printf("  \"%s\" -> \"%s\" [label=\"%s\"];\n", n->inputs[k].node->name, n->name,
                   n->inputs[k].role);
        }
    }
    printf("}\n");
}

static void graph_json(const Plan *plan)
{
    JVal *root = json_object(), *nodes = json_array(), *edges = json_array();
    for (size_t i = 0; i < plan->n_order; i++) {
        const Node *n = plan->order[i];
        JVal *o = json_object();
        json_add_str(o, "name", n->name);
        json_add_str(o, "kind", step_kind_name(n->kind));
        json_add_str(o, "status", plan_status_name(n));
        json_add_str(o, "reason", n->reason ? n->reason : "");
        json_add_str(o, "output", n->output);
        json_array_add(nodes, o);
        for (size_t k = 0; k < n->n_inputs; k++) {
            JVal *e = json_object();
            json_add_str(e, "from", n->inputs[k].node->name);
            json_add_str(e, "to", n->name);
            json_add_str(e, "role", n->inputs[k].role);
            json_array_add(edges, e);
        }
    }
    json_object_add(root, "nodes", nodes);
    json_object_add(root, "edges", edges);
    StrBuf sb = STRBUF_INIT;
    json_print_pretty(&sb, root, 0);
    printf("%s\n", sb_str(&sb));
    sb_release(&sb);
    json_free(root);
}

int cli_graph(int argc, char **argv)
{
    PipeArgs a;
    int pr_ret = pipe_args_parse(&a, argc, argv, PA_FORMAT, graph_usage);
    if (pr_ret != 0) {
        return pr_ret > 0 ? 0 : 2;
    }
    Project pr;
    Plan plan = {0};
    Node **targets = NULL;
    Error *err = NULL;
    int ret = project_open(&pr, &a, true, &err);
    if (ret == 0) {
        ret = project_targets(&pr, a.targets, a.n_targets, &targets, &err);
    }
    if (ret == 0) {
        ret = plan_init(&plan, &pr.state, pr.cache, targets, a.n_targets, pr.epoch, &err);
    }
    int status = ret < 0 ? report_error(err) : 0;
    if (ret == 0 && !strcmp(a.format, "json")) {
        graph_json(&plan);
    } else if (ret == 0) {
        graph_dot(&plan);
    }
    free(targets);
    plan_release(&plan);
    project_close(&pr);
    pipe_args_release(&a);
    return status;
}

/* Remove one node's output under its lock, and forget it. */
static int clean_node(Project *pr, const char *name, const char *output, Error **errp)
{
    char *lock = xasprintf("%s/.imgpipe/locks/%s.lock", pr->state.project_dir, name);
    char *abs = path_join(pr->state.project_dir, output);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        flock(fd, LOCK_EX);
    }
    remove_stale_temps(abs);
    int ret = file_remove(abs, errp);
    if (ret == 0) {
        ret = cache_forget_node(pr->cache, name, errp);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(abs);
    free(lock);
    return ret;
}

int cli_clean(int argc, char **argv)
{
    PipeArgs a;
    int pr_ret = pipe_args_parse(&a, argc, argv, 0, clean_usage);
    if (pr_ret != 0) {
        return pr_ret > 0 ? 0 : 2;
    }
    Project pr;
    Node **targets = NULL;
    Error *err = NULL;
    int ret = project_open(&pr, &a, true, &err);
    if (ret == 0) {
        ret = project_targets(&pr, a.targets, a.n_targets, &targets, &err);
    }
    int removed = 0;
    size_t count = a.n_targets ? a.n_targets : pr.state.n_nodes;
    for (size_t i = 0; ret == 0 && i < count; i++) {
        Node *n = a.n_targets ? targets[i] : pr.state.nodes[i];
        if (n->kind == STEP_SOURCE) {
            continue; /* never remove an input */
        }
        char *abs = path_join(pr.state.project_dir, n->output);
        removed += access(abs, F_OK) == 0;
        free(abs);
        ret = clean_node(&pr, n->name, n->output, &err);
    }
    int status = ret < 0 ? report_error(err) : 0;
    if (ret == 0) {
        printf("imgpipe: removed %d output(s)\n", removed);
    }
    free(targets);
    project_close(&pr);
    pipe_args_release(&a);
    return status;
}

/* True if path is one of the recipe's file inputs or inside one. */
static bool keep_file(void *opaque, const char *path)
{
    const State *s = opaque;
    for (size_t i = 0; i < s->n_nodes; i++) {
        const Node *n = s->nodes[i];
        for (size_t k = 0; k < n->n_files; k++) {
            size_t len = strlen(n->files[k].path);
            if (!strncmp(path, n->files[k].path, len) && (!path[len] || path[len] == '/')) {
                return true;
            }
        }
    }
    return false;
}

/* Forget a node the recipe no longer names; remove its output if it is ours. */
static int gc_node(Project *pr, const CacheNode *row, StrMap *paths, int *removed, Error **errp)
{
    char *abs = path_join(pr->state.project_dir, row->output);
    FileFp fp;
    bool ours = !strmap_has(paths, row->output) && file_fingerprint(abs, &fp) == 0 &&
                fp_equal(&fp, &row->fp);
    free(abs);
    *removed += ours;
    if (ours) {
        return clean_node(pr, row->name, row->output, errp);
    }
    return cache_forget_node(pr->cache, row->name, errp);
}

int cli_gc(int argc, char **argv)
{
    PipeArgs a;
    int pr_ret = pipe_args_parse(&a, argc, argv, 0, gc_usage);
    if (pr_ret != 0) {
        return pr_ret > 0 ? 0 : 2;
    }
    Project pr;
    Error *err = NULL;
    int ret = project_open(&pr, &a, true, &err);
    int forgotten = 0, removed = 0, dropped = 0;
    StrMap paths = STRMAP_INIT;
    for (size_t i = 0; ret == 0 && i < pr.state.n_nodes; i++) {
        strmap_put(&paths, pr.state.nodes[i]->output, pr.state.nodes[i]);
    }
    size_t n_names = 0;
    const char **names = ret == 0 ? cache_node_names(pr.cache, &n_names) : NULL;
    for (size_t i = 0; ret == 0 && i < n_names; i++) {
        if (state_lookup(&pr.state, names[i])) {
            continue;
        }
        char *name = xstrdup(names[i]); /* the row is freed when forgotten */
        ret = gc_node(&pr, cache_node(pr.cache, name), &paths, &removed, &err);
        forgotten++;
        free(name);
    }
    if (ret == 0) {
        ret = cache_gc_files(pr.cache, keep_file, &pr.state, &dropped, &err);
    }
    int status = ret < 0 ? report_error(err) : 0;
    if (ret == 0) {
        printf("imgpipe: forgot %d image(s) (removed %d output(s)), %d file digest(s)\n", forgotten,
               removed, dropped);
    }
    free(names);
    strmap_release(&paths);
    project_close(&pr);
    pipe_args_release(&a);
    return status;
}
