/*
 * recipe.c — YAML recipe files: parsing with libyaml, includes, `vars:` and
 * ${name} interpolation, the top-level keys.  The per-step schema lives in
 * recipe_schema.c.
 *
 * Loading order: the top-level file, then its includes depth-first (each
 * file once; an include cycle is an error), collecting `vars:` from all of
 * them; then every file's `images:` in that order; then linking, the cycle
 * check and schema_finish().  Variables are expanded lazily, so a var may
 * use another defined in any file; -D values are taken literally.
 */
#include "planner/recipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "planner/fsutil.h"
#include "planner/recipe_int.h"

static const char *const top_keys[] = {"version", "include", "vars", "images", NULL};

/* Runtime placeholders of exec commands: never recipe variables. */
static bool is_reserved_var(const char *name, size_t len)
{
    if ((len == 3 && !memcmp(name, "out", 3)) || (len == 4 && !memcmp(name, "uuid", 4)) ||
        (len == 2 && !memcmp(name, "in", 2))) {
        return true;
    }
    if (len > 2 && !memcmp(name, "in", 2)) {
        for (size_t i = 2; i < len; i++) {
            if (name[i] < '0' || name[i] > '9') {
                return false;
            }
        }
        return true;
    }
    return false;
}

/* ---- yaml node helpers ---- */

SrcPos yn_pos(const Doc *d, const yaml_node_t *n)
{
    return (SrcPos){d->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}

yaml_node_t *yn_get(const Doc *d, int index)
{
    return yaml_document_get_node((yaml_document_t *)&d->doc, index);
}

const char *yn_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool yn_is_null(const yaml_node_t *n)
{
    const char *s = yn_scalar(n);
    return s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*s || !strcmp(s, "~") || !strcasecmp(s, "null"));
}

bool yn_bool(const char *t, bool *value)
{
    static const char *const yes[] = {"true", "yes", "on", "y"};
    static const char *const no[] = {"false", "no", "off", "n"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (!strcasecmp(t, yes[i]) || !strcasecmp(t, no[i])) {
            *value = !strcasecmp(t, yes[i]);
            return true;
        }
    }
    return false;
}

const char *yn_type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

int check_keys(const Doc *d, const yaml_node_t *map, const char *const *allowed, const char *what,
               Error **errp)
{
    yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    size_t n = (size_t)(map->data.mapping.pairs.top - pairs);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = yn_get(d, pairs[i].key);
        const char *key = yn_scalar(k);
        if (!key) {
            error_setg_pos(errp, yn_pos(d, k), "%s: keys must be scalars", what);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(key, yn_scalar(yn_get(d, pairs[j].key)))) {
                error_setg_pos(errp, yn_pos(d, k), "%s: duplicate key '%s'", what, key);
                return -EINVAL;
            }
        }
        bool ok = !allowed;
        for (size_t j = 0; allowed && allowed[j] && !ok; j++) {
            ok = !strcmp(allowed[j], key);
        }
        if (!ok) {
            StrBuf sb = STRBUF_INIT;
            for (size_t j = 0; allowed[j]; j++) {
                sb_addf(&sb, "%s%s", j ? ", " : "", allowed[j]);
            }
            error_setg_pos(errp, yn_pos(d, k), "%s: unknown key '%s' (expected one of: %s)", what,
                           key, sb_str(&sb));
            sb_release(&sb);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- variables ---- */

static int var_value(Loader *L, const char *name, SrcPos use, const char **out, Error **errp);

/* Where the character at byte offset off of scalar n sits, if we can tell. */
static SrcPos offset_pos(const Doc *d, const yaml_node_t *n, size_t off)
{
    SrcPos pos = yn_pos(d, n);
    yaml_scalar_style_t st = n->data.scalar.style;
    if (n->start_mark.line == n->end_mark.line &&
        (st == YAML_PLAIN_SCALAR_STYLE || st == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
         st == YAML_DOUBLE_QUOTED_SCALAR_STYLE)) {
        pos.col += (int)off + (st != YAML_PLAIN_SCALAR_STYLE);
    }
    return pos;
}

/*
 * Expand ${name} in text into sb.  at(off) gives the position of an error at
 * byte off.  Returns 0 or -EINVAL.
 */
static int expand_text(Loader *L, const char *text, bool exec, const Doc *d, const yaml_node_t *n,
                       SrcPos fallback, StrBuf *sb, Error **errp)
{
    for (const char *p = text; *p;) {
        if (p[0] != '$' || (p[1] != '{' && p[1] != '$')) {
            sb_addc(sb, *p++);
            continue;
        }
        SrcPos pos = n ? offset_pos(d, n, (size_t)(p - text)) : fallback;
        if (p[1] == '$') {
            sb_add(sb, exec ? "$$" : "$");
            p += 2;
            continue;
        }
        const char *end = strchr(p + 2, '}');
        if (!end) {
            error_setg_pos(errp, pos, "unterminated '${' in '%s'", text);
            return -EINVAL;
        }
        char *name = xstrndup(p + 2, (size_t)(end - p - 2));
        if (exec && is_reserved_var(name, strlen(name))) {
            sb_addn(sb, p, (size_t)(end + 1 - p));
        } else {
            const char *value;
            int ret = var_value(L, name, pos, &value, errp);
            if (ret < 0) {
                free(name);
                return ret;
            }
            sb_add(sb, value);
        }
        free(name);
        p = end + 1;
    }
    return 0;
}

static int var_value(Loader *L, const char *name, SrcPos use, const char **out, Error **errp)
{
    size_t len = strlen(name);
    for (size_t i = L->n_defines; i-- > 0;) {
        const char *def = L->defines[i];
        if (!strncmp(def, name, len) && def[len] == '=') {
            *out = def + len + 1;
            return 0;
        }
    }
    VarDef *v = strmap_get(&L->vars, name);
    if (!v) {
        error_setg_pos(errp, use, "undefined variable '${%s}'", name);
        return -EINVAL;
    }
    if (!v->value) {
        if (v->expanding) {
            error_setg_pos(errp, v->pos, "variable '%s' refers to itself", name);
            return -ELOOP;
        }
        StrBuf sb = STRBUF_INIT;
        v->expanding = true;
        int ret = expand_text(L, v->raw, false, NULL, NULL, v->pos, &sb, errp);
        v->expanding = false;
        if (ret < 0) {
            sb_release(&sb);
            return ret;
        }
        v->value = sb_detach(&sb);
    }
    *out = v->value;
    return 0;
}

int loader_expand(Loader *L, const Doc *d, const yaml_node_t *n, bool exec, char **out,
                  Error **errp)
{
    *out = NULL; /* callers free it on every path */
    const char *text = yn_scalar(n);
    if (!text) {
        error_setg_pos(errp, yn_pos(d, n), "expected a scalar, found %s", yn_type_name(n));
        return -EINVAL;
    }
    StrBuf sb = STRBUF_INIT;
    sb_add(&sb, "");
    int ret = expand_text(L, text, exec, d, n, yn_pos(d, n), &sb, errp);
    if (ret < 0) {
        sb_release(&sb);
        return ret;
    }
    *out = sb_detach(&sb);
    return 0;
}

static bool valid_var_name(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        if (!(*s == '_' || *s == '-' || *s == '.' || (*s >= '0' && *s <= '9') ||
              (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) {
            return false;
        }
    }
    return true;
}

static int collect_vars(Loader *L, const Doc *d, const yaml_node_t *map, Error **errp)
{
    if (map->type != YAML_MAPPING_NODE) {
        error_setg_pos(errp, yn_pos(d, map), "vars: expected a mapping, found %s",
                       yn_type_name(map));
        return -EINVAL;
    }
    int ret = check_keys(d, map, NULL, "vars", errp);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         ret == 0 && p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yn_get(d, p->key), *v = yn_get(d, p->value);
        const char *name = yn_scalar(k);
        VarDef *old = strmap_get(&L->vars, name);
        if (!valid_var_name(name) || is_reserved_var(name, strlen(name))) {
            error_setg_pos(errp, yn_pos(d, k), "invalid variable name '%s'", name);
            return -EINVAL;
        }
        if (old) {
            char *where = srcpos_str(old->pos);
            error_setg_pos(errp, yn_pos(d, k), "variable '%s' already defined at %s", name, where);
            free(where);
            return -EINVAL;
        }
        if (!yn_scalar(v)) {
            error_setg_pos(errp, yn_pos(d, v), "variable '%s': expected a scalar, found %s", name,
                           yn_type_name(v));
            return -EINVAL;
        }
        VarDef *def = XNEW(VarDef);
        def->raw = xstrdup(yn_scalar(v));
        def->pos = yn_pos(d, v);
        strmap_put(&L->vars, name, def);
    }
    return ret;
}

/* ---- files and includes ---- */

static int parse_doc(Loader *L, const char *file, const char *text, size_t len, Doc **out,
                     Error **errp)
{
    yaml_parser_t parser;
    Doc *d = XNEW(Doc);
    d->file = state_intern_file(L->s, file);
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int ok = yaml_parser_load(&parser, &d->doc);
    if (!ok) {
        SrcPos pos = {d->file, (int)parser.problem_mark.line + 1,
                      (int)parser.problem_mark.column + 1};
        error_setg_pos(errp, pos, "syntax error: %s%s%s", parser.problem ? parser.problem : "",
                       parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        free(d);
        return -EINVAL;
    }
    yaml_parser_delete(&parser);
    L->docs = xrealloc(L->docs, (L->n_docs + 1) * sizeof(*L->docs));
    L->docs[L->n_docs++] = d;
    *out = d;
    return 0;
}

static char *read_file(const char *path, size_t *len, Error **errp)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_setg_errno(errp, errno, "cannot open recipe '%s'", path);
        return NULL;
    }
    StrBuf sb = STRBUF_INIT;
    char buf[8192];
    size_t n;
    sb_add(&sb, "");
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        sb_addn(&sb, buf, n);
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        error_setg(errp, "cannot read recipe '%s'", path);
        sb_release(&sb);
        return NULL;
    }
    *len = sb.len;
    return sb_detach(&sb);
}

static int load_doc(Loader *L, const char *file, const char *text, size_t len, bool top,
                    Error **errp);

static int load_include(Loader *L, const Doc *from, const yaml_node_t *n, Error **errp)
{
    char *rel = NULL;
    int ret = loader_expand(L, from, n, false, &rel, errp);
    if (ret < 0) {
        return ret;
    }
    char *dir = path_dirname(from->file);
    char *path = rel[0] == '/' ? xstrdup(rel) : path_combine(from->file, rel);
    char *abs = realpath(path, NULL);
    free(dir);
    if (!abs) {
        error_setg_pos(errp, yn_pos(from, n), "cannot include '%s': %s", rel, strerror(errno));
        ret = -ENOENT;
        goto out;
    }
    for (size_t i = 0; i < L->n_stack; i++) {
        if (!strcmp(L->stack[i], abs)) {
            error_setg_pos(errp, yn_pos(from, n), "include cycle: '%s' includes itself", rel);
            ret = -ELOOP;
            goto out;
        }
    }
    for (size_t i = 0; i < L->n_docs; i++) {
        char *seen = realpath(L->docs[i]->file, NULL);
        bool dup = seen && !strcmp(seen, abs);
        free(seen);
        if (dup) {
            goto out; /* included twice (a diamond): load once */
        }
    }
    size_t len;
    char *text = read_file(path, &len, errp);
    if (!text) {
        error_prepend(errp, "%s:%d:%d: ", from->file, yn_pos(from, n).line, yn_pos(from, n).col);
        ret = -ENOENT;
        goto out;
    }
    L->stack = xrealloc(L->stack, (L->n_stack + 1) * sizeof(*L->stack));
    L->stack[L->n_stack++] = xstrdup(abs);
    ret = load_doc(L, path, text, len, false, errp);
    free(L->stack[--L->n_stack]);
    free(text);
out:
    free(abs);
    free(path);
    free(rel);
    return ret;
}

static const yaml_node_t *map_get(const Doc *d, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = yn_scalar(yn_get(d, p->key));
        if (k && !strcmp(k, key)) {
            return yn_get(d, p->value);
        }
    }
    return NULL;
}

static int check_version(const Doc *d, const yaml_node_t *root, bool top, Error **errp)
{
    const yaml_node_t *v = map_get(d, root, "version");
    if (!v) {
        if (top) {
            error_setg_pos(errp, yn_pos(d, root), "missing 'version: %d'", RECIPE_SCHEMA_VERSION);
            return -EINVAL;
        }
        return 0;
    }
    int64_t ver;
    if (!yn_scalar(v) || parse_int64(yn_scalar(v), &ver) < 0 || ver != RECIPE_SCHEMA_VERSION) {
        error_setg_pos(errp, yn_pos(d, v),
                       "unsupported recipe version '%s' (this imgpipe reads version %d)",
                       yn_scalar(v) ? yn_scalar(v) : "?", RECIPE_SCHEMA_VERSION);
        return -EINVAL;
    }
    return 0;
}

static int load_includes(Loader *L, const Doc *d, const yaml_node_t *inc, Error **errp)
{
    if (inc->type == YAML_SCALAR_NODE) {
        return load_include(L, d, inc, errp);
    }
    if (inc->type != YAML_SEQUENCE_NODE) {
        error_setg_pos(errp, yn_pos(d, inc), "include: expected a file name or a list");
        return -EINVAL;
    }
    for (yaml_node_item_t *it = inc->data.sequence.items.start; it < inc->data.sequence.items.top;
         it++) {
        int ret = load_include(L, d, yn_get(d, *it), errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static int load_doc(Loader *L, const char *file, const char *text, size_t len, bool top,
                    Error **errp)
{
    Doc *d;
    int ret = parse_doc(L, file, text, len, &d, errp);
    if (ret < 0) {
        return ret;
    }
    yaml_node_t *root = yaml_document_get_root_node(&d->doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        SrcPos pos = root ? yn_pos(d, root) : (SrcPos){d->file, 1, 1};
        error_setg_pos(errp, pos, "a recipe must be a mapping with 'version' and 'images'");
        return -EINVAL;
    }
    ret = check_keys(d, root, top_keys, "recipe", errp);
    if (ret == 0) {
        ret = check_version(d, root, top, errp);
    }
    const yaml_node_t *vars = map_get(d, root, "vars");
    if (ret == 0 && vars && !yn_is_null(vars)) {
        ret = collect_vars(L, d, vars, errp);
    }
    const yaml_node_t *inc = map_get(d, root, "include");
    if (ret == 0 && inc && !yn_is_null(inc)) {
        ret = load_includes(L, d, inc, errp);
    }
    return ret;
}

static int load_images(Loader *L, const Doc *d, Error **errp)
{
    yaml_node_t *root = yaml_document_get_root_node((yaml_document_t *)&d->doc);
    const yaml_node_t *images = map_get(d, root, "images");
    if (!images || yn_is_null(images)) {
        return 0;
    }
    if (images->type != YAML_MAPPING_NODE) {
        error_setg_pos(errp, yn_pos(d, images), "images: expected a mapping, found %s",
                       yn_type_name(images));
        return -EINVAL;
    }
    for (yaml_node_pair_t *p = images->data.mapping.pairs.start; p < images->data.mapping.pairs.top;
         p++) {
        int ret = schema_add_image(L, d, yn_get(d, p->key), yn_get(d, p->value), errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static void loader_release(Loader *L)
{
    const char *k;
    void *v;
    for (size_t it = 0; strmap_next(&L->vars, &it, &k, &v);) {
        VarDef *def = v;
        free(def->raw);
        free(def->value);
        free(def);
    }
    strmap_release(&L->vars);
    for (size_t i = 0; i < L->n_docs; i++) {
        yaml_document_delete(&L->docs[i]->doc);
        free(L->docs[i]);
    }
    free(L->docs);
    free(L->stack);
}

static int check_defines(char *const *defines, size_t n, Error **errp)
{
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(defines[i], '=');
        char *name = eq ? xstrndup(defines[i], (size_t)(eq - defines[i])) : NULL;
        bool ok = name && valid_var_name(name) && !is_reserved_var(name, strlen(name));
        free(name);
        if (!ok) {
            error_setg(errp, "-D '%s': expected NAME=VALUE", defines[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static int load_all(State *s, const char *file, const char *text, size_t len, char *const *defines,
                    size_t n_defines, Error **errp)
{
    Loader L = {.s = s, .defines = defines, .n_defines = n_defines};
    strmap_init(&L.vars);
    int ret = check_defines(defines, n_defines, errp);
    char *abs = realpath(file, NULL);
    if (abs) {
        L.stack = xmalloc(sizeof(char *));
        L.stack[L.n_stack++] = abs;
    }
    if (ret == 0) {
        ret = load_doc(&L, file, text, len, true, errp);
    }
    for (size_t i = 0; ret == 0 && i < L.n_docs; i++) {
        ret = load_images(&L, L.docs[i], errp);
    }
    if (ret == 0) {
        ret = state_link(s, errp);
    }
    if (ret == 0) {
        ret = state_check_cycles(s, errp);
    }
    if (ret == 0) {
        ret = schema_finish(s, errp);
    }
    free(abs);
    L.n_stack = 0;
    loader_release(&L);
    return ret;
}

int recipe_load(State *s, const char *path, char *const *defines, size_t n_defines, Error **errp)
{
    size_t len;
    char *text = read_file(path, &len, errp);
    if (!text) {
        return -ENOENT;
    }
    int ret = load_all(s, path, text, len, defines, n_defines, errp);
    free(text);
    return ret;
}

int recipe_load_string(State *s, const char *display_name, const char *text, char *const *defines,
                       size_t n_defines, Error **errp)
{
    return load_all(s, display_name, text, strlen(text), defines, n_defines, errp);
}

const char *format_extension(const char *format)
{
    static const char *const map[][2] = {
        {"raw", "img"},
        {"vpc", "vhd"},
        {"file", "img"},
    };
    for (size_t i = 0; format && i < ARRAY_SIZE(map); i++) {
        if (!strcmp(format, map[i][0])) {
            return map[i][1];
        }
    }
    return format ? format : "img";
}
