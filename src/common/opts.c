/* opts.c — see opts.h. */
#include "common/opts.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>

void opts_init(Opts *o)
{
    memset(o, 0, sizeof(*o));
}

void opts_release(Opts *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->keys[i]);
        free(o->values[i]);
    }
    free(o->keys);
    free(o->values);
    opts_init(o);
}

void opts_add(Opts *o, const char *key, const char *value)
{
    if (o->n == o->alloc) {
        o->alloc = o->alloc ? o->alloc * 2 : 8;
        o->keys = xrealloc(o->keys, o->alloc * sizeof(char *));
        o->values = xrealloc(o->values, o->alloc * sizeof(char *));
    }
    o->keys[o->n] = xstrdup(key);
    o->values[o->n] = xstrdup(value);
    o->n++;
}

void opts_copy(Opts *dst, const Opts *src)
{
    for (size_t i = 0; i < src->n; i++) {
        opts_add(dst, src->keys[i], src->values[i]);
    }
}

int opts_del(Opts *o, const char *key)
{
    size_t j = 0;
    int removed = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (!strcmp(o->keys[i], key)) {
            free(o->keys[i]);
            free(o->values[i]);
            removed++;
            continue;
        }
        o->keys[j] = o->keys[i];
        o->values[j] = o->values[i];
        j++;
    }
    o->n = j;
    return removed;
}

void opts_set(Opts *o, const char *key, const char *value)
{
    opts_del(o, key);
    opts_add(o, key, value);
}

const char *opts_get(const Opts *o, const char *key)
{
    for (size_t i = o->n; i-- > 0;) {
        if (!strcmp(o->keys[i], key)) {
            return o->values[i];
        }
    }
    return NULL;
}

/* Copy from *pp up to an unescaped delimiter (',' or, if stop_eq, '=');
 * ",," becomes ','.  Leaves *pp on the delimiter or the NUL. */
static char *get_token(const char **pp, bool stop_eq)
{
    StrBuf sb = STRBUF_INIT;
    const char *p = *pp;
    for (; *p; p++) {
        if (*p == ',') {
            if (p[1] == ',') {
                sb_addc(&sb, ',');
                p++;
                continue;
            }
            break;
        }
        if (stop_eq && *p == '=') {
            break;
        }
        sb_addc(&sb, *p);
    }
    *pp = p;
    return sb_detach(&sb);
}

int opts_parse(Opts *o, const char *str, const char *implied_key, Error **errp)
{
    Opts tmp = OPTS_INIT;
    const char *p = str;
    bool first = true;
    while (*p) {
        char *key = get_token(&p, true);
        char *value;
        if (*p == '=') {
            p++;
            value = get_token(&p, false);
        } else if (first && implied_key) {
            value = key;
            key = xstrdup(implied_key);
        } else {
            value = xstrdup("on");
        }
        if (!*key) {
            free(key);
            free(value);
            opts_release(&tmp);
            error_setg(errp, "Invalid option string '%s'", str);
            return -EINVAL;
        }
        opts_add(&tmp, key, value);
        free(key);
        free(value);
        first = false;
        if (*p == ',') {
            p++;
        }
    }
    opts_copy(o, &tmp);
    opts_release(&tmp);
    return 0;
}

bool opts_has_help(const char *str)
{
    if (!str) {
        return false;
    }
    const char *p = str;
    bool found = false;
    while (*p && !found) {
        char *tok = get_token(&p, false);
        found = !strcmp(tok, "help") || !strcmp(tok, "?");
        free(tok);
        if (*p == ',') {
            p++;
        }
    }
    return found;
}

int parse_opt_bool(const char *name, const char *value, bool *out, Error **errp)
{
    static const char *const yes[] = {"on", "yes", "true", "y"};
    static const char *const no[] = {"off", "no", "false", "n"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (!strcmp(value, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(value, no[i])) {
            *out = false;
            return 0;
        }
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
    return -EINVAL;
}

int opts_get_bool(const Opts *o, const char *key, bool def, bool *out, Error **errp)
{
    const char *v = opts_get(o, key);
    if (!v) {
        *out = def;
        return 0;
    }
    return parse_opt_bool(key, v, out, errp);
}

static int parse_number(const char *key, const char *v, uint64_t *out, Error **errp)
{
    char *ep;
    errno = 0;
    if (*v == '-' || !*v) {
        goto bad;
    }
    unsigned long long n = strtoull(v, &ep, 0);
    if (*ep || errno) {
        goto bad;
    }
    *out = n;
    return 0;
bad:
    error_setg(errp, "Parameter '%s' expects a number", key);
    return -EINVAL;
}

int opts_get_number(const Opts *o, const char *key, uint64_t def, uint64_t *out, Error **errp)
{
    const char *v = opts_get(o, key);
    if (!v) {
        *out = def;
        return 0;
    }
    return parse_number(key, v, out, errp);
}

static int parse_size_opt(const char *key, const char *v, uint64_t *out, Error **errp)
{
    if (parse_size(v, NULL, out) < 0) {
        error_setg(errp,
                   "Parameter '%s' expects a non-negative number below 2^64\n"
                   "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
                   "and exabytes, respectively.",
                   key);
        return -EINVAL;
    }
    return 0;
}

int opts_get_size(const Opts *o, const char *key, uint64_t def, uint64_t *out, Error **errp)
{
    const char *v = opts_get(o, key);
    if (!v) {
        *out = def;
        return 0;
    }
    return parse_size_opt(key, v, out, errp);
}

const OptDesc *optdesc_find(const OptDesc *desc, const char *name)
{
    for (; desc && desc->name; desc++) {
        if (!strcmp(desc->name, name)) {
            return desc;
        }
    }
    return NULL;
}

static const OptDesc *descs_find(const OptDesc *const *descs, const char *name)
{
    for (; descs && *descs; descs++) {
        const OptDesc *d = optdesc_find(*descs, name);
        if (d) {
            return d;
        }
    }
    return NULL;
}

int opts_validate(const Opts *o, const OptDesc *const *descs, Error **errp)
{
    for (size_t i = 0; i < o->n; i++) {
        const OptDesc *d = descs_find(descs, o->keys[i]);
        if (!d) {
            error_setg(errp, "Invalid parameter '%s'", o->keys[i]);
            return -EINVAL;
        }
        bool b;
        uint64_t n;
        int ret = 0;
        switch (d->type) {
        case OPT_BOOL: ret = parse_opt_bool(d->name, o->values[i], &b, errp); break;
        case OPT_NUMBER: ret = parse_number(d->name, o->values[i], &n, errp); break;
        case OPT_SIZE: ret = parse_size_opt(d->name, o->values[i], &n, errp); break;
        case OPT_STRING: break;
        }
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static int desc_cmp(const void *a, const void *b)
{
    const OptDesc *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

void optdesc_print_help(StrBuf *sb, const OptDesc *const *descs)
{
    size_t n = 0;
    for (const OptDesc *const *t = descs; t && *t; t++) {
        for (const OptDesc *d = *t; d->name; d++) {
            n++;
        }
    }
    const OptDesc **all = XNEWV(const OptDesc *, n);
    size_t k = 0;
    for (const OptDesc *const *t = descs; t && *t; t++) {
        for (const OptDesc *d = *t; d->name; d++) {
            bool dup = false;
            for (size_t j = 0; j < k; j++) {
                dup |= !strcmp(all[j]->name, d->name);
            }
            if (!dup) {
                all[k++] = d;
            }
        }
    }
    qsort(all, k, sizeof(*all), desc_cmp);
    static const char *const type_names[] = {"str", "bool (on/off)", "num", "size"};
    sb_add(sb, "Supported options:\n");
    for (size_t i = 0; i < k; i++) {
        char *lhs = xasprintf("%s=<%s>", all[i]->name, type_names[all[i]->type]);
        sb_addf(sb, "  %-22s", lhs);
        if (all[i]->help) {
            sb_addf(sb, " - %s", all[i]->help);
        }
        sb_addc(sb, '\n');
        free(lhs);
    }
    free(all);
}
