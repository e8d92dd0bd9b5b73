/*
 * graph.c — State and Node: ownership, linking, cycle detection, closure.
 *
 * Traversals are iterative (an explicit stack of (node, next input)) so a
 * 10,000-node chain cannot overflow the C stack.
 */
#include "planner/graph.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static const char *const kind_names[STEP_KIND_COUNT] = {
    [STEP_SOURCE] = "source", [STEP_CREATE] = "create",     [STEP_CONVERT] = "convert",
    [STEP_RESIZE] = "resize", [STEP_AMEND] = "amend",       [STEP_REBASE] = "rebase",
    [STEP_COMMIT] = "commit", [STEP_SNAPSHOT] = "snapshot", [STEP_EXEC] = "exec",
};

const char *step_kind_name(StepKind kind)
{
    return kind < STEP_KIND_COUNT ? kind_names[kind] : "?";
}

StepKind step_kind_from_name(const char *name)
{
    for (int k = 0; k < STEP_KIND_COUNT; k++) {
        if (strcmp(kind_names[k], name) == 0) {
            return (StepKind)k;
        }
    }
    return STEP_KIND_COUNT;
}

char *srcpos_str(SrcPos pos)
{
    return xasprintf("%s:%d:%d", pos.file ? pos.file : "<recipe>", pos.line, pos.col);
}

void error_setg_pos(Error **errp, SrcPos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *where = srcpos_str(pos);
    error_setg(errp, "%s: %s", where, msg);
    free(where);
    free(msg);
}

void state_init(State *s, const char *project_dir)
{
    memset(s, 0, sizeof(*s));
    s->project_dir = xstrdup(project_dir);
    strmap_init(&s->by_name);
}

static void node_free(Node *n)
{
    for (size_t i = 0; i < n->n_params; i++) {
        free(n->params[i].key);
        free(n->params[i].value);
    }
    for (size_t i = 0; i < n->n_inputs; i++) {
        free(n->inputs[i].role);
        free(n->inputs[i].name);
    }
    for (size_t i = 0; i < n->n_files; i++) {
        free(n->files[i].path);
    }
    for (size_t i = 0; i < n->argc; i++) {
        free(n->argv[i]);
    }
    free(n->params);
    free(n->inputs);
    free(n->files);
    free(n->argv);
    free(n->outs);
    free(n->file_digests);
    free(n->preimage);
    free(n->reason);
    free(n->name);
    free(n->output);
    free(n->format);
    free(n->description);
    free(n);
}

void state_release(State *s)
{
    for (size_t i = 0; i < s->n_nodes; i++) {
        node_free(s->nodes[i]);
    }
    for (size_t i = 0; i < s->n_files; i++) {
        free(s->files[i]);
    }
    free(s->nodes);
    free(s->files);
    free(s->project_dir);
    strmap_release(&s->by_name);
    memset(s, 0, sizeof(*s));
}

const char *state_intern_file(State *s, const char *path)
{
    for (size_t i = 0; i < s->n_files; i++) {
        if (strcmp(s->files[i], path) == 0) {
            return s->files[i];
        }
    }
    s->files = xrealloc(s->files, (s->n_files + 1) * sizeof(*s->files));
    s->files[s->n_files] = xstrdup(path);
    return s->files[s->n_files++];
}

Node *state_add_node(State *s, const char *name, StepKind kind, SrcPos pos, Error **errp)
{
    Node *old = strmap_get(&s->by_name, name);
    if (old) {
        char *where = srcpos_str(old->pos);
        error_setg_pos(errp, pos, "duplicate image name '%s' (first defined at %s)", name, where);
        free(where);
        return NULL;
    }
    Node *n = XNEW(Node);
    n->name = xstrdup(name);
    n->kind = kind;
    n->pos = pos;
    n->id = (int)s->n_nodes;
    if (s->n_nodes == s->alloc_nodes) {
        s->alloc_nodes = s->alloc_nodes ? 2 * s->alloc_nodes : 64;
        s->nodes = xrealloc(s->nodes, s->alloc_nodes * sizeof(*s->nodes));
    }
    s->nodes[s->n_nodes++] = n;
    strmap_put(&s->by_name, name, n);
    return n;
}

Node *state_lookup(const State *s, const char *name)
{
    return strmap_get(&s->by_name, name);
}

void node_set_param(Node *n, const char *key, const char *value)
{
    size_t i = 0;
    while (i < n->n_params && strcmp(n->params[i].key, key) < 0) {
        i++;
    }
    if (i < n->n_params && strcmp(n->params[i].key, key) == 0) {
        free(n->params[i].value);
        n->params[i].value = xstrdup(value);
        return;
    }
    n->params = xrealloc(n->params, (n->n_params + 1) * sizeof(*n->params));
    memmove(&n->params[i + 1], &n->params[i], (n->n_params - i) * sizeof(*n->params));
    n->params[i].key = xstrdup(key);
    n->params[i].value = xstrdup(value);
    n->n_params++;
}

void node_add_input(Node *n, const char *role, const char *name, SrcPos pos)
{
    n->inputs = xrealloc(n->inputs, (n->n_inputs + 1) * sizeof(*n->inputs));
    n->inputs[n->n_inputs++] = (NodeEdge){xstrdup(role), xstrdup(name), NULL, pos};
}

void node_add_file(Node *n, const char *path, SrcPos pos)
{
    n->files = xrealloc(n->files, (n->n_files + 1) * sizeof(*n->files));
    n->files[n->n_files++] = (FileDep){xstrdup(path), pos};
}

void node_add_arg(Node *n, const char *arg)
{
    n->argv = xrealloc(n->argv, (n->argc + 1) * sizeof(*n->argv));
    n->argv[n->argc++] = xstrdup(arg);
}

const char *node_param(const Node *n, const char *key)
{
    for (size_t i = 0; i < n->n_params; i++) {
        if (strcmp(n->params[i].key, key) == 0) {
            return n->params[i].value;
        }
    }
    return NULL;
}

Node *node_input(const Node *n, const char *role)
{
    for (size_t i = 0; i < n->n_inputs; i++) {
        if (strcmp(n->inputs[i].role, role) == 0) {
            return n->inputs[i].node;
        }
    }
    return NULL;
}

Node *node_backing(const Node *n)
{
    for (int depth = 0; n && depth < 1000; depth++) {
        switch (n->kind) {
        case STEP_CREATE:
        case STEP_REBASE: return node_input(n, "backing");
        case STEP_RESIZE:
        case STEP_AMEND:
        case STEP_SNAPSHOT: n = node_input(n, "from"); break;
        case STEP_COMMIT: n = node_input(n, "base"); break;
        default: return NULL;
        }
    }
    return NULL;
}

static void add_out(Node *from, Node *to)
{
    for (size_t i = 0; i < from->n_outs; i++) {
        if (from->outs[i] == to) {
            return;
        }
    }
    if (from->n_outs == from->alloc_outs) {
        from->alloc_outs = from->alloc_outs ? 2 * from->alloc_outs : 4;
        from->outs = xrealloc(from->outs, from->alloc_outs * sizeof(*from->outs));
    }
    from->outs[from->n_outs++] = to;
}

void node_link_input(Node *n, Node *target)
{
    add_out(target, n);
}

int state_link(State *s, Error **errp)
{
    for (size_t i = 0; i < s->n_nodes; i++) {
        Node *n = s->nodes[i];
        for (size_t j = 0; j < n->n_inputs; j++) {
            NodeEdge *e = &n->inputs[j];
            e->node = state_lookup(s, e->name);
            if (!e->node) {
                error_setg_pos(errp, e->pos, "image '%s': %s: unknown image '%s'", n->name, e->role,
                               e->name);
                return -ENOENT;
            }
            add_out(e->node, n);
        }
    }
    return 0;
}

/* DFS colours */
enum { WHITE, GREY, BLACK };

typedef struct Frame {
    Node *node;
    size_t next;
} Frame;

static void report_cycle(Frame *stack, size_t depth, Node *again, Error **errp)
{
    size_t start = 0;
    while (stack[start].node != again) {
        start++;
    }
    StrBuf sb = STRBUF_INIT;
    for (size_t i = start; i < depth; i++) {
        sb_addf(&sb, "%s -> ", stack[i].node->name);
    }
    sb_add(&sb, again->name);
    error_setg_pos(errp, again->pos, "dependency cycle: %s (each image reads the next)",
                   sb_str(&sb));
    sb_release(&sb);
}

/*
 * Depth-first walk over inputs from root.  Appends nodes in post-order to
 * order (if non-NULL); detects cycles via GREY marks.
 */
static int dfs(Node *root, char *colour, Frame *stack, Node **order, size_t *n_order, Error **errp)
{
    size_t depth = 0;
    if (colour[root->id] != WHITE) {
        return 0;
    }
    colour[root->id] = GREY;
    stack[depth++] = (Frame){root, 0};
    while (depth) {
        Frame *f = &stack[depth - 1];
        if (f->next < f->node->n_inputs) {
            Node *in = f->node->inputs[f->next++].node;
            if (colour[in->id] == GREY) {
                report_cycle(stack, depth, in, errp);
                return -ELOOP;
            }
            if (colour[in->id] == WHITE) {
                colour[in->id] = GREY;
                stack[depth++] = (Frame){in, 0};
            }
            continue;
        }
        colour[f->node->id] = BLACK;
        if (order) {
            order[(*n_order)++] = f->node;
        }
        depth--;
    }
    return 0;
}

int state_check_cycles(State *s, Error **errp)
{
    char *colour = xzalloc(s->n_nodes + 1);
    Frame *stack = xcalloc(s->n_nodes + 1, sizeof(Frame));
    int ret = 0;
    for (size_t i = 0; i < s->n_nodes && ret == 0; i++) {
        ret = dfs(s->nodes[i], colour, stack, NULL, NULL, errp);
    }
    free(stack);
    free(colour);
    return ret;
}

Node **state_closure(State *s, Node *const *targets, size_t n_targets, size_t *n_out)
{
    char *colour = xzalloc(s->n_nodes + 1);
    Frame *stack = xcalloc(s->n_nodes + 1, sizeof(Frame));
    Node **order = xcalloc(s->n_nodes + 1, sizeof(Node *));
    size_t n = 0;
    size_t count = n_targets ? n_targets : s->n_nodes;
    for (size_t i = 0; i < count; i++) {
        dfs(n_targets ? targets[i] : s->nodes[i], colour, stack, order, &n, NULL);
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        s->nodes[i]->wanted = false;
    }
    for (size_t i = 0; i < n; i++) {
        order[i]->wanted = true;
    }
    free(stack);
    free(colour);
    *n_out = n;
    return order;
}
