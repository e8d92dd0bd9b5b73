/*
 * recipe_schema.c — the step schema of recipe version 1: which keys each
 * step kind takes, their types, defaults and normalization into Node
 * parameters; and the checks that need the whole graph (inherited formats,
 * backing paths, conflicting outputs).
 *
 * Normalized forms (what the action key hashes and the runner reads):
 *   size        decimal bytes ("20G" -> "21474836480")
 *   resize      "+N", "-N" or "N" in bytes
 *   bool        "true" / "false"
 *   options     "key=value,key=value" sorted by key; ',' in a value doubled;
 *               YAML booleans become "on"/"off"; values otherwise verbatim
 *   env         one parameter "env.NAME" per variable
 *   command     a JSON array of the argv template
 * Image references become NodeEdges (role = the key, "from[1]" for the
 * second of a list), never parameters: renaming an image does not change
 * any key.  Paths become FileDeps.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/util.h"
#include "planner/fsutil.h"
#include "planner/recipe_int.h"

typedef enum {
    PT_STR,
    PT_FORMAT,
    PT_SIZE,
    PT_RESIZE,
    PT_BOOL,
    PT_ENUM,
    PT_NODE,
    PT_NODE_OR_NONE,
    PT_NODES,
    PT_OPTS,
    PT_ENV,
    PT_ARGV,
    PT_PATHS,
    PT_PATH,
} ParamType;

typedef struct ParamSpec {
    const char *key;
    ParamType type;
    bool required;
    const char *def;     /* normalized default, or NULL */
    const char *choices; /* PT_ENUM: "a|b|c" */
} ParamSpec;

static const ParamSpec source_spec[] = {
    {"path", PT_PATH, true, NULL, NULL},
    {"format", PT_FORMAT, false, NULL, NULL},
    {NULL, 0, 0, 0, 0},
};
static const ParamSpec create_spec[] = {
    {"format", PT_FORMAT, true, NULL, NULL},
    {"size", PT_SIZE, false, NULL, NULL},
    {"options", PT_OPTS, false, "", NULL},
    {"backing", PT_NODE, false, NULL, NULL},
    {"backing_format", PT_FORMAT, false, NULL, NULL},
    {NULL, 0, 0, 0, 0},
};
static const ParamSpec convert_spec[] = {
    {"from", PT_NODES, true, NULL, NULL},
    {"format", PT_FORMAT, false, "raw", NULL},
    {"options", PT_OPTS, false, "", NULL},
    {"compress", PT_ENUM, false, "none", "none|zlib|zstd"},
    {"sparse_size", PT_SIZE, false, "4096", NULL},
    {"snapshot", PT_STR, false, "", NULL},
    {NULL, 0, 0, 0, 0},
};
static const ParamSpec resize_spec[] = {
    {"from", PT_NODE, true, NULL, NULL},
    {"size", PT_RESIZE, true, NULL, NULL},
    {"shrink", PT_BOOL, false, "false", NULL},
    {"preallocation", PT_ENUM, false, "off", "off|metadata|falloc|full"},
    {NULL, 0, 0, 0, 0},
};
static const ParamSpec amend_spec[] = {
    {"from", PT_NODE, true, NULL, NULL},
    {"options", PT_OPTS, true, NULL, NULL},
    {"force", PT_BOOL, false, "false", NULL},
    {NULL, 0, 0, 0, 0},
};
static const ParamSpec rebase_spec[] = {
    {"from", PT_NODE, true, NULL, NULL},
    {"backing", PT_NODE_OR_NONE, true, NULL, NULL},
    {"backing_format", PT_FORMAT, false, NULL, NULL},
    {"unsafe", PT_BOOL, false, "false", NULL},
    {NULL, 0, 0, 0, 0},
};
static const ParamSpec commit_spec[] = {
    {"from", PT_NODE, true, NULL, NULL},
    {"base", PT_NODE, false, NULL, NULL},
    {NULL, 0, 0, 0, 0},
};
static const ParamSpec snapshot_spec[] = {
    {"from", PT_NODE, true, NULL, NULL},
    {"create", PT_STR, false, NULL, NULL},
    {"delete", PT_STR, false, NULL, NULL},
    {NULL, 0, 0, 0, 0},
};
static const ParamSpec exec_spec[] = {
    {"command", PT_ARGV, true, NULL, NULL},    {"inputs", PT_PATHS, false, NULL, NULL},
    {"from", PT_NODES, false, NULL, NULL},     {"env", PT_ENV, false, NULL, NULL},
    {"format", PT_FORMAT, false, "raw", NULL}, {NULL, 0, 0, 0, 0},
};

static const ParamSpec *const specs[STEP_KIND_COUNT] = {
    [STEP_SOURCE] = source_spec, [STEP_CREATE] = create_spec,     [STEP_CONVERT] = convert_spec,
    [STEP_RESIZE] = resize_spec, [STEP_AMEND] = amend_spec,       [STEP_REBASE] = rebase_spec,
    [STEP_COMMIT] = commit_spec, [STEP_SNAPSHOT] = snapshot_spec, [STEP_EXEC] = exec_spec,
};

/* The context of one parameter being read. */
typedef struct Ctx {
    Loader *L;
    const Doc *d;
    Node *node;
    const ParamSpec *spec;
    const yaml_node_t *val;
} Ctx;

static void ctx_error(Ctx *c, const yaml_node_t *at, Error **errp, const char *msg)
{
    error_setg_pos(errp, yn_pos(c->d, at), "image '%s': %s: %s", c->node->name, c->spec->key, msg);
}

static int need_type(Ctx *c, const yaml_node_t *n, yaml_node_type_t t, const char *what,
                     Error **errp)
{
    if (n->type == t) {
        return 0;
    }
    char *msg = xasprintf("expected %s, found %s", what, yn_type_name(n));
    ctx_error(c, n, errp, msg);
    free(msg);
    return -EINVAL;
}

static int read_size(Ctx *c, bool relative, Error **errp)
{
    char *text;
    int ret = loader_expand(c->L, c->d, c->val, false, &text, errp);
    if (ret < 0) {
        return ret;
    }
    const char *p = text;
    const char *sign = "";
    if (relative && (*p == '+' || *p == '-')) {
        sign = *p == '+' ? "+" : "-";
        p++;
    }
    uint64_t bytes;
    if (parse_size(p, NULL, &bytes) < 0 || bytes > INT64_MAX) {
        char *msg = xasprintf("invalid size '%s'", text);
        ctx_error(c, c->val, errp, msg);
        free(msg);
        free(text);
        return -EINVAL;
    }
    char *norm = xasprintf("%s%llu", sign, (unsigned long long)bytes);
    node_set_param(c->node, c->spec->key, norm);
    free(norm);
    free(text);
    return 0;
}

static int read_bool_or_enum(Ctx *c, Error **errp)
{
    char *text;
    int ret = loader_expand(c->L, c->d, c->val, false, &text, errp);
    if (ret < 0) {
        return ret;
    }
    bool b;
    const char *value = text;
    if (c->spec->type == PT_BOOL) {
        value = yn_bool(text, &b) ? (b ? "true" : "false") : NULL;
    } else if (!strcmp(c->spec->key, "compress") && yn_bool(text, &b)) {
        value = b ? "zlib" : "none"; /* compress: true means qemu's default */
    } else {
        size_t len = strlen(text);
        const char *ch = strstr(c->spec->choices, text);
        bool ok =
            len && ch && (ch == c->spec->choices || ch[-1] == '|') && (ch[len] == '|' || !ch[len]);
        value = ok ? text : NULL;
    }
    if (!value) {
        char *msg = c->spec->type == PT_BOOL
                        ? xasprintf("expected true or false, found '%s'", text)
                        : xasprintf("expected one of %s, found '%s'", c->spec->choices, text);
        ctx_error(c, c->val, errp, msg);
        free(msg);
        free(text);
        return -EINVAL;
    }
    node_set_param(c->node, c->spec->key, value);
    free(text);
    return 0;
}

static int read_string(Ctx *c, Error **errp)
{
    char *text;
    int ret = loader_expand(c->L, c->d, c->val, false, &text, errp);
    if (ret < 0) {
        return ret;
    }
    if (c->spec->type == PT_FORMAT &&
        (!*text || strspn(text, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(text))) {
        char *msg = xasprintf("invalid format name '%s'", text);
        ctx_error(c, c->val, errp, msg);
        free(msg);
        free(text);
        return -EINVAL;
    }
    node_set_param(c->node, c->spec->key, text);
    free(text);
    return 0;
}

static bool valid_image_name(const char *s)
{
    return *s && *s != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_.-") == strlen(s);
}

static int read_ref(Ctx *c, const yaml_node_t *n, const char *role, Error **errp)
{
    char *name;
    int ret = loader_expand(c->L, c->d, n, false, &name, errp);
    if (ret == 0 && !valid_image_name(name)) {
        char *msg = xasprintf("invalid image name '%s'", name);
        ctx_error(c, n, errp, msg);
        free(msg);
        ret = -EINVAL;
    }
    if (ret == 0) {
        node_add_input(c->node, role, name, yn_pos(c->d, n));
    }
    free(name);
    return ret;
}

static int read_refs(Ctx *c, Error **errp)
{
    if (c->val->type == YAML_SCALAR_NODE) {
        return read_ref(c, c->val, c->spec->key, errp);
    }
    int ret = need_type(c, c->val, YAML_SEQUENCE_NODE, "an image name or a list", errp);
    size_t i = 0;
    for (yaml_node_item_t *it = c->val->data.sequence.items.start;
         ret == 0 && it < c->val->data.sequence.items.top; it++, i++) {
        char *role = i ? xasprintf("%s[%zu]", c->spec->key, i) : xstrdup(c->spec->key);
        ret = read_ref(c, yn_get(c->d, *it), role, errp);
        free(role);
    }
    if (ret == 0 && i == 0) {
        ctx_error(c, c->val, errp, "empty list");
        ret = -EINVAL;
    }
    return ret;
}

/* Append key=value to sb in -o syntax (',' doubled). */
static void add_opt(StrBuf *sb, const char *key, const char *value)
{
    sb_addf(sb, "%s%s=", sb->len ? "," : "", key);
    for (const char *p = value; *p; p++) {
        sb_add(sb, *p == ',' ? ",," : (char[2]){*p, 0});
    }
}

static int cmp_pairs(const void *a, const void *b)
{
    return strcmp(((char *const *)a)[0], ((char *const *)b)[0]);
}

static int read_map(Ctx *c, Error **errp)
{
    int ret = need_type(c, c->val, YAML_MAPPING_NODE, "a mapping", errp);
    if (ret == 0) {
        ret = check_keys(c->d, c->val, NULL, c->spec->key, errp);
    }
    if (ret < 0) {
        return ret; /* not a mapping: its pairs are not there to count */
    }
    size_t n = (size_t)(c->val->data.mapping.pairs.top - c->val->data.mapping.pairs.start);
    char **pairs = xcalloc(2 * n + 2, sizeof(char *));
    for (size_t i = 0; ret == 0 && i < n; i++) {
        yaml_node_pair_t *p = &c->val->data.mapping.pairs.start[i];
        const yaml_node_t *v = yn_get(c->d, p->value);
        pairs[2 * i] = xstrdup(yn_scalar(yn_get(c->d, p->key)));
        ret = loader_expand(c->L, c->d, v, false, &pairs[2 * i + 1], errp);
        bool b;
        if (ret == 0 && c->spec->type == PT_OPTS &&
            v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && yn_bool(pairs[2 * i + 1], &b)) {
            free(pairs[2 * i + 1]);
            pairs[2 * i + 1] = xstrdup(b ? "on" : "off");
        }
    }
    if (ret == 0) {
        qsort(pairs, n, 2 * sizeof(char *), cmp_pairs);
        StrBuf sb = STRBUF_INIT;
        sb_add(&sb, "");
        for (size_t i = 0; i < n; i++) {
            if (c->spec->type == PT_OPTS) {
                add_opt(&sb, pairs[2 * i], pairs[2 * i + 1]);
            } else {
                char *key = xasprintf("env.%s", pairs[2 * i]);
                node_set_param(c->node, key, pairs[2 * i + 1]);
                free(key);
            }
        }
        if (c->spec->type == PT_OPTS) {
            node_set_param(c->node, c->spec->key, sb_str(&sb));
        }
        sb_release(&sb);
    }
    for (size_t i = 0; i < 2 * n; i++) {
        free(pairs[i]);
    }
    free(pairs);
    return ret;
}

static int read_argv(Ctx *c, Error **errp)
{
    int ret = 0;
    if (c->val->type == YAML_SCALAR_NODE) {
        char *cmd;
        ret = loader_expand(c->L, c->d, c->val, true, &cmd, errp);
        if (ret == 0) {
            node_add_arg(c->node, "/bin/sh");
            node_add_arg(c->node, "-c");
            node_add_arg(c->node, cmd);
            free(cmd);
        }
    } else {
        ret = need_type(c, c->val, YAML_SEQUENCE_NODE, "a command string or an argv list", errp);
        for (yaml_node_item_t *it = c->val->data.sequence.items.start;
             ret == 0 && it < c->val->data.sequence.items.top; it++) {
            char *arg;
            ret = loader_expand(c->L, c->d, yn_get(c->d, *it), true, &arg, errp);
            if (ret == 0) {
                node_add_arg(c->node, arg);
                free(arg);
            }
        }
    }
    if (ret == 0 && c->node->argc == 0) {
        ctx_error(c, c->val, errp, "empty command");
        return -EINVAL;
    }
    JVal *arr = json_array();
    for (size_t i = 0; i < c->node->argc; i++) {
        json_array_add(arr, json_str(c->node->argv[i]));
    }
    StrBuf sb = STRBUF_INIT;
    json_print_compact(&sb, arr);
    node_set_param(c->node, "command", sb_str(&sb));
    sb_release(&sb);
    json_free(arr);
    return ret;
}

/* A project-relative path that must exist (a missing input is a recipe error). */
static int read_path(Ctx *c, const yaml_node_t *n, char **out, Error **errp)
{
    char *text, *norm = NULL;
    int ret = loader_expand(c->L, c->d, n, false, &text, errp);
    if (ret < 0) {
        return ret;
    }
    if (path_normalize_project(c->L->s->project_dir, text, &norm) < 0) {
        char *msg = xasprintf("path '%s' is outside the project directory '%s'", text,
                              c->L->s->project_dir);
        ctx_error(c, n, errp, msg);
        free(msg);
        free(text);
        return -EINVAL;
    }
    char *abs = path_join(c->L->s->project_dir, norm);
    struct stat st;
    if (stat(abs, &st) < 0) {
        char *msg = xasprintf("missing input '%s': %s", text, strerror(errno));
        ctx_error(c, n, errp, msg);
        free(msg);
        ret = -ENOENT;
    }
    free(abs);
    free(text);
    if (ret < 0) {
        free(norm);
        return ret;
    }
    node_add_file(c->node, norm, yn_pos(c->d, n));
    *out = norm;
    return 0;
}

static int read_paths(Ctx *c, Error **errp)
{
    char *p;
    if (c->val->type == YAML_SCALAR_NODE) {
        int ret = read_path(c, c->val, &p, errp);
        if (ret == 0) {
            free(p);
        }
        return ret;
    }
    int ret = need_type(c, c->val, YAML_SEQUENCE_NODE, "a path or a list of paths", errp);
    for (yaml_node_item_t *it = c->val->data.sequence.items.start;
         ret == 0 && it < c->val->data.sequence.items.top; it++) {
        ret = read_path(c, yn_get(c->d, *it), &p, errp);
        if (ret == 0) {
            free(p);
        }
    }
    return ret;
}

static int read_param(Ctx *c, Error **errp)
{
    char *p;
    int ret;
    switch (c->spec->type) {
    case PT_STR:
    case PT_FORMAT: return read_string(c, errp);
    case PT_SIZE:
    case PT_RESIZE: return read_size(c, c->spec->type == PT_RESIZE, errp);
    case PT_BOOL:
    case PT_ENUM: return read_bool_or_enum(c, errp);
    case PT_NODE_OR_NONE:
        if (yn_is_null(c->val)) {
            node_set_param(c->node, "flatten", "true");
            return 0;
        }
        /* fall through */
    case PT_NODE: return read_ref(c, c->val, c->spec->key, errp);
    case PT_NODES: return read_refs(c, errp);
    case PT_OPTS:
    case PT_ENV: return read_map(c, errp);
    case PT_ARGV: return read_argv(c, errp);
    case PT_PATHS: return read_paths(c, errp);
    case PT_PATH:
        ret = read_path(c, c->val, &p, errp);
        if (ret == 0) {
            free(c->node->output);
            c->node->output = p;
        }
        return ret;
    }
    return -EINVAL;
}

static const yaml_node_t *find_key(const Doc *d, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        if (!strcmp(yn_scalar(yn_get(d, p->key)), key)) {
            return yn_get(d, p->value);
        }
    }
    return NULL;
}

/* Read a step's parameter mapping against its spec. */
static int read_step(Loader *L, const Doc *d, Node *node, const yaml_node_t *body, Error **errp)
{
    const ParamSpec *spec = specs[node->kind];
    const char *allowed[16];
    size_t n = 0;
    for (; spec[n].key; n++) {
        allowed[n] = spec[n].key;
    }
    allowed[n] = NULL;
    char *what = xasprintf("image '%s': %s", node->name, step_kind_name(node->kind));
    int ret = check_keys(d, body, allowed, what, errp);
    free(what);
    for (size_t i = 0; ret == 0 && spec[i].key; i++) {
        Ctx c = {L, d, node, &spec[i], find_key(d, body, spec[i].key)};
        if (c.val) {
            ret = read_param(&c, errp);
        } else if (spec[i].required) {
            error_setg_pos(errp, yn_pos(d, body), "image '%s': %s: missing required key '%s'",
                           node->name, step_kind_name(node->kind), spec[i].key);
            ret = -EINVAL;
        } else if (spec[i].def) {
            node_set_param(node, spec[i].key, spec[i].def);
        }
    }
    return ret;
}

/* Per-kind checks that the generic schema cannot express. */
static int check_step(const Doc *d, Node *n, const yaml_node_t *body, Error **errp)
{
    SrcPos pos = yn_pos(d, body);
    if (n->kind == STEP_SNAPSHOT) {
        const char *cr = node_param(n, "create"), *del = node_param(n, "delete");
        if (!cr == !del) {
            error_setg_pos(errp, pos,
                           "image '%s': snapshot: give exactly one of 'create' or 'delete'",
                           n->name);
            return -EINVAL;
        }
        node_set_param(n, "action", cr ? "create" : "delete");
    }
    if (n->kind == STEP_CREATE && !node_param(n, "size") && !node_input(n, "backing")) {
        bool has_backing = false;
        for (size_t i = 0; i < n->n_inputs; i++) {
            has_backing |= !strcmp(n->inputs[i].role, "backing");
        }
        if (!has_backing) {
            error_setg_pos(errp, pos, "image '%s': create: 'size' is required without 'backing'",
                           n->name);
            return -EINVAL;
        }
    }
    const char *fmt = node_param(n, "format");
    if (fmt && n->kind != STEP_SOURCE) {
        n->format = xstrdup(fmt);
    } else if (fmt) {
        n->format = xstrdup(fmt);
    }
    return 0;
}

static int read_output(Loader *L, const Doc *d, Node *n, const yaml_node_t *v, Error **errp)
{
    char *text = NULL, *norm = NULL;
    int ret = loader_expand(L, d, v, false, &text, errp);
    if (ret == 0 && path_normalize_project(L->s->project_dir, text, &norm) < 0) {
        error_setg_pos(errp, yn_pos(d, v),
                       "image '%s': output '%s' is outside the project directory '%s'", n->name,
                       text, L->s->project_dir);
        ret = -EINVAL;
    }
    if (ret == 0) {
        free(n->output);
        n->output = norm;
    }
    free(text);
    return ret;
}

/* Find the single step key of an image body. */
static int find_kind(const Doc *d, const char *name, const yaml_node_t *body, StepKind *kind,
                     const yaml_node_t **step, Error **errp)
{
    *step = NULL;
    for (yaml_node_pair_t *p = body->data.mapping.pairs.start; p < body->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yn_get(d, p->key);
        StepKind sk = step_kind_from_name(yn_scalar(k));
        if (sk == STEP_KIND_COUNT) {
            continue;
        }
        if (*step) {
            error_setg_pos(errp, yn_pos(d, k),
                           "image '%s': two steps ('%s' and '%s'); an image is made by one", name,
                           step_kind_name(*kind), yn_scalar(k));
            return -EINVAL;
        }
        *kind = sk;
        *step = yn_get(d, p->value);
    }
    if (!*step) {
        error_setg_pos(errp, yn_pos(d, body),
                       "image '%s': no step (expected one of: source, create, convert, resize, "
                       "amend, rebase, commit, snapshot, exec)",
                       name);
        return -EINVAL;
    }
    return 0;
}

int schema_add_image(Loader *L, const Doc *d, const yaml_node_t *key, const yaml_node_t *body,
                     Error **errp)
{
    static const char *const image_keys[] = {"output",  "description", "source", "create",
                                             "convert", "resize",      "amend",  "rebase",
                                             "commit",  "snapshot",    "exec",   NULL};
    const char *name = yn_scalar(key);
    if (!name || !valid_image_name(name)) {
        error_setg_pos(errp, yn_pos(d, key),
                       "invalid image name '%s' (letters, digits, '_', '-', '.')",
                       name ? name : "?");
        return -EINVAL;
    }
    if (body->type != YAML_MAPPING_NODE) {
        error_setg_pos(errp, yn_pos(d, body), "image '%s': expected a mapping, found %s", name,
                       yn_type_name(body));
        return -EINVAL;
    }
    char *what = xasprintf("image '%s'", name);
    int ret = check_keys(d, body, image_keys, what, errp);
    free(what);
    StepKind kind = STEP_KIND_COUNT;
    const yaml_node_t *step;
    if (ret == 0) {
        ret = find_kind(d, name, body, &kind, &step, errp);
    }
    Node *n = ret == 0 ? state_add_node(L->s, name, kind, yn_pos(d, key), errp) : NULL;
    if (!n) {
        return ret < 0 ? ret : -EEXIST;
    }
    if (kind == STEP_SOURCE && step->type == YAML_SCALAR_NODE) {
        Ctx c = {L, d, n, &source_spec[0], step};
        ret = read_param(&c, errp);
    } else if (step->type != YAML_MAPPING_NODE) {
        error_setg_pos(errp, yn_pos(d, step), "image '%s': %s: expected a mapping, found %s", name,
                       step_kind_name(kind), yn_type_name(step));
        return -EINVAL;
    } else {
        ret = read_step(L, d, n, step, errp);
    }
    if (ret == 0 && kind != STEP_SOURCE) {
        ret = check_step(d, n, step, errp);
    } else if (ret == 0 && node_param(n, "format")) {
        n->format = xstrdup(node_param(n, "format"));
    }
    const yaml_node_t *out = find_key(d, body, "output");
    if (ret == 0 && out && kind == STEP_SOURCE) {
        error_setg_pos(errp, yn_pos(d, out), "image '%s': a source has no output (it is 'path')",
                       name);
        ret = -EINVAL;
    } else if (ret == 0 && out) {
        ret = read_output(L, d, n, out, errp);
    }
    const yaml_node_t *desc = find_key(d, body, "description");
    if (ret == 0 && desc) {
        ret = loader_expand(L, d, desc, false, &n->description, errp);
    }
    return ret;
}

/* ---- whole-graph checks (after state_link and the cycle check) ---- */

static int finish_commit(Node *n, Error **errp)
{
    Node *from = node_input(n, "from");
    Node *base = node_input(n, "base");
    if (!base) {
        base = node_backing(from);
        if (!base) {
            error_setg_pos(errp, n->pos,
                           "image '%s': commit: '%s' has no backing image in this recipe; "
                           "name one with 'base:'",
                           n->name, from->name);
            return -EINVAL;
        }
        node_add_input(n, "base", base->name, n->pos);
        n->inputs[n->n_inputs - 1].node = base;
        node_link_input(n, base);
    }
    free(n->format);
    n->format = base->format ? xstrdup(base->format) : NULL;
    return 0;
}

/* backing_format default and the relative backing path of an overlay. */
static void finish_backing(Node *n)
{
    Node *b = node_input(n, "backing");
    if (!b) {
        return;
    }
    if (!node_param(n, "backing_format") && b->format) {
        node_set_param(n, "backing_format", b->format);
    }
    char *dir = path_dirname(n->output);
    char *rel = path_relative(dir, b->output);
    node_set_param(n, "backing_file", rel);
    free(rel);
    free(dir);
}

static int finish_node(Node *n, Error **errp)
{
    Node *from = node_input(n, "from");
    switch (n->kind) {
    case STEP_RESIZE:
    case STEP_AMEND:
    case STEP_REBASE:
    case STEP_SNAPSHOT:
        free(n->format);
        n->format = from->format ? xstrdup(from->format) : NULL;
        break;
    case STEP_COMMIT: return finish_commit(n, errp);
    default: break;
    }
    return 0;
}

static int check_outputs(State *s, Error **errp)
{
    StrMap writers = STRMAP_INIT, inputs = STRMAP_INIT;
    int ret = 0;
    for (size_t i = 0; i < s->n_nodes; i++) {
        for (size_t j = 0; j < s->nodes[i]->n_files; j++) {
            strmap_put(&inputs, s->nodes[i]->files[j].path, s->nodes[i]);
        }
    }
    for (size_t i = 0; i < s->n_nodes && ret == 0; i++) {
        Node *n = s->nodes[i];
        if (n->kind == STEP_SOURCE) {
            continue;
        }
        Node *other = strmap_get(&writers, n->output);
        Node *reader = strmap_get(&inputs, n->output);
        if (other) {
            char *where = srcpos_str(other->pos);
            error_setg_pos(errp, n->pos, "images '%s' and '%s' (%s) both write '%s'", n->name,
                           other->name, where, n->output);
            free(where);
            ret = -EEXIST;
        } else if (reader) {
            error_setg_pos(errp, n->pos, "image '%s' writes '%s', an input of image '%s'", n->name,
                           n->output, reader->name);
            ret = -EEXIST;
        } else if (!strncmp(n->output, ".imgpipe/", 9) || !strcmp(n->output, ".imgpipe")) {
            error_setg_pos(errp, n->pos, "image '%s': output '%s' is inside the cache directory",
                           n->name, n->output);
            ret = -EINVAL;
        }
        strmap_put(&writers, n->output, n);
    }
    strmap_release(&writers);
    strmap_release(&inputs);
    return ret;
}

int schema_finish(State *s, Error **errp)
{
    size_t n_order;
    Node **order = state_closure(s, NULL, 0, &n_order);
    int ret = 0;
    for (size_t i = 0; i < n_order && ret == 0; i++) {
        Node *n = order[i];
        ret = finish_node(n, errp);
        if (!n->output) {
            n->output = xasprintf("out/%s.%s", n->name, format_extension(n->format));
        }
    }
    for (size_t i = 0; i < n_order && ret == 0; i++) {
        finish_backing(order[i]);
    }
    free(order);
    return ret == 0 ? check_outputs(s, errp) : ret;
}
