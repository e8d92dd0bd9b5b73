/* json.c — see json.h. */
#include "common/json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static JVal *jnew(JsonType t)
{
    JVal *v = XNEW(JVal);
    v->type = t;
    return v;
}

JVal *json_null(void)
{
    return jnew(JSON_NULL);
}

JVal *json_bool(bool b)
{
    JVal *v = jnew(JSON_BOOL);
    v->v.b = b;
    return v;
}

JVal *json_int(int64_t i)
{
    JVal *v = jnew(JSON_INT);
    v->v.i = i;
    return v;
}

JVal *json_uint(uint64_t u)
{
    if (u <= INT64_MAX) {
        return json_int((int64_t)u);
    }
    JVal *v = jnew(JSON_UINT);
    v->v.u = u;
    return v;
}

JVal *json_double(double d)
{
    JVal *v = jnew(JSON_DOUBLE);
    v->v.d = d;
    return v;
}

JVal *json_str(const char *s)
{
    JVal *v = jnew(JSON_STRING);
    v->v.s = xstrdup(s ? s : "");
    return v;
}

JVal *json_array(void)
{
    return jnew(JSON_ARRAY);
}
JVal *json_object(void)
{
    return jnew(JSON_OBJECT);
}

void json_free(JVal *v)
{
    if (!v) {
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        json_free(v->items[i]);
        if (v->keys) {
            free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
    if (v->type == JSON_STRING) {
        free(v->v.s);
    }
    free(v);
}

static void jgrow(JVal *c)
{
    if (c->n < c->alloc) {
        return;
    }
    c->alloc = c->alloc ? c->alloc * 2 : 8;
    c->items = xrealloc(c->items, c->alloc * sizeof(*c->items));
    if (c->type == JSON_OBJECT) {
        c->keys = xrealloc(c->keys, c->alloc * sizeof(*c->keys));
    }
}

JVal *json_array_add(JVal *arr, JVal *val)
{
    jgrow(arr);
    arr->items[arr->n++] = val;
    return val;
}

JVal *json_object_add(JVal *obj, const char *key, JVal *val)
{
    jgrow(obj);
    obj->keys[obj->n] = xstrdup(key);
    obj->items[obj->n++] = val;
    return val;
}

void json_add_str(JVal *obj, const char *key, const char *s)
{
    json_object_add(obj, key, json_str(s));
}
void json_add_int(JVal *obj, const char *key, int64_t i)
{
    json_object_add(obj, key, json_int(i));
}
void json_add_bool(JVal *obj, const char *key, bool b)
{
    json_object_add(obj, key, json_bool(b));
}

JVal *json_get(const JVal *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT) {
        return NULL;
    }
    for (size_t i = obj->n; i-- > 0;) {
        if (!strcmp(obj->keys[i], key)) {
            return obj->items[i];
        }
    }
    return NULL;
}

const char *json_get_str(const JVal *obj, const char *key)
{
    JVal *v = json_get(obj, key);
    return v && v->type == JSON_STRING ? v->v.s : NULL;
}

bool json_get_int(const JVal *obj, const char *key, int64_t *out)
{
    JVal *v = json_get(obj, key);
    if (!v || v->type != JSON_INT) {
        return false;
    }
    *out = v->v.i;
    return true;
}

/* ---- printing ---- */

/* Decode one UTF-8 sequence; returns code point or -1 for invalid (1 byte eaten). */
static int32_t utf8_next(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    uint32_t c = p[0];
    int n;
    uint32_t min;
    if (c < 0x80) {
        *pp = p + 1;
        return (int32_t)c;
    } else if ((c & 0xe0) == 0xc0) {
        n = 1, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 2, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 3, c &= 0x07, min = 0x10000;
    } else {
        *pp = p + 1;
        return -1;
    }
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *pp = p + 1;
            return -1;
        }
        c = (c << 6) | (p[i] & 0x3f);
    }
    *pp = p + n + 1;
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return -1;
    }
    return (int32_t)c;
}

void json_quote(StrBuf *sb, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_addc(sb, '"');
    while (*p) {
        int32_t c = utf8_next(&p);
        switch (c) {
        case '"': sb_add(sb, "\\\""); break;
        case '\\': sb_add(sb, "\\\\"); break;
        case '\b': sb_add(sb, "\\b"); break;
        case '\f': sb_add(sb, "\\f"); break;
        case '\n': sb_add(sb, "\\n"); break;
        case '\r': sb_add(sb, "\\r"); break;
        case '\t': sb_add(sb, "\\t"); break;
        default:
            if (c < 0) {
                sb_add(sb, "\\uFFFD");
            } else if (c < 0x20 || c >= 0x7f) {
                if (c >= 0x10000) {
                    c -= 0x10000;
                    sb_addf(sb, "\\u%04X\\u%04X", 0xd800 | (c >> 10), 0xdc00 | (c & 0x3ff));
                } else {
                    sb_addf(sb, "\\u%04X", (unsigned)c);
                }
            } else {
                sb_addc(sb, (char)c);
            }
        }
    }
    sb_addc(sb, '"');
}

static void indent(StrBuf *sb, int level)
{
    for (int i = 0; i < level; i++) {
        sb_add(sb, "    ");
    }
}

static void print_scalar(StrBuf *sb, const JVal *v)
{
    switch (v->type) {
    case JSON_NULL: sb_add(sb, "null"); break;
    case JSON_BOOL: sb_add(sb, v->v.b ? "true" : "false"); break;
    case JSON_INT: sb_addf(sb, "%lld", (long long)v->v.i); break;
    case JSON_UINT: sb_addf(sb, "%llu", (unsigned long long)v->v.u); break;
    case JSON_DOUBLE: sb_addf(sb, "%.17g", v->v.d); break;
    case JSON_STRING: json_quote(sb, v->v.s); break;
    default: break;
    }
}

static void print_pretty(StrBuf *sb, const JVal *v, int level)
{
    if (v->type != JSON_ARRAY && v->type != JSON_OBJECT) {
        print_scalar(sb, v);
        return;
    }
    bool obj = v->type == JSON_OBJECT;
    sb_addc(sb, obj ? '{' : '[');
    for (size_t i = 0; i < v->n; i++) {
        sb_add(sb, i ? ",\n" : "\n");
        indent(sb, level + 1);
        if (obj) {
            json_quote(sb, v->keys[i]);
            sb_add(sb, ": ");
        }
        print_pretty(sb, v->items[i], level + 1);
    }
    sb_addc(sb, '\n');
    indent(sb, level);
    sb_addc(sb, obj ? '}' : ']');
}

void json_print_pretty(StrBuf *sb, const JVal *v, int indent_level)
{
    print_pretty(sb, v, indent_level);
}

void json_print_compact(StrBuf *sb, const JVal *v)
{
    if (v->type != JSON_ARRAY && v->type != JSON_OBJECT) {
        print_scalar(sb, v);
        return;
    }
    bool obj = v->type == JSON_OBJECT;
    sb_addc(sb, obj ? '{' : '[');
    for (size_t i = 0; i < v->n; i++) {
        if (i) {
            sb_add(sb, ", ");
        }
        if (obj) {
            json_quote(sb, v->keys[i]);
            sb_add(sb, ": ");
        }
        json_print_compact(sb, v->items[i]);
    }
    sb_addc(sb, obj ? '}' : ']');
}

/* ---- parsing ---- */

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *p, *end;
    Error **errp;
    bool failed;
} JParser;

static void jp_fail(JParser *jp, const char *what)
{
    if (!jp->failed) {
        error_setg(jp->errp, "JSON parse error, %s", what);
        jp->failed = true;
    }
}

static void jp_ws(JParser *jp)
{
    while (jp->p < jp->end && isspace((unsigned char)*jp->p)) {
        jp->p++;
    }
}

static void put_utf8(StrBuf *sb, uint32_t c)
{
    char b[4];
    if (c < 0x80) {
        sb_addc(sb, (char)c);
    } else if (c < 0x800) {
        b[0] = (char)(0xc0 | (c >> 6));
        b[1] = (char)(0x80 | (c & 0x3f));
        sb_addn(sb, b, 2);
    } else if (c < 0x10000) {
        b[0] = (char)(0xe0 | (c >> 12));
        b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        b[2] = (char)(0x80 | (c & 0x3f));
        sb_addn(sb, b, 3);
    } else {
        b[0] = (char)(0xf0 | (c >> 18));
        b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
        b[3] = (char)(0x80 | (c & 0x3f));
        sb_addn(sb, b, 4);
    }
}

static int hex4(const char *p, const char *end, uint32_t *out)
{
    uint32_t v = 0;
    if (end - p < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (uint32_t)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

static char *jp_string(JParser *jp)
{
    StrBuf sb = STRBUF_INIT;
    char quote = *jp->p++; /* qemu also accepts single quotes */
    while (jp->p < jp->end && *jp->p != quote) {
        char c = *jp->p++;
        if (c != '\\') {
            sb_addc(&sb, c);
            continue;
        }
        if (jp->p >= jp->end) {
            break;
        }
        c = *jp->p++;
        switch (c) {
        case 'b': sb_addc(&sb, '\b'); break;
        case 'f': sb_addc(&sb, '\f'); break;
        case 'n': sb_addc(&sb, '\n'); break;
        case 'r': sb_addc(&sb, '\r'); break;
        case 't': sb_addc(&sb, '\t'); break;
        case 'u': {
            uint32_t cp;
            if (hex4(jp->p, jp->end, &cp)) {
                jp_fail(jp, "bad \\u escape");
                sb_release(&sb);
                return NULL;
            }
            jp->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && jp->end - jp->p >= 6 && jp->p[0] == '\\' &&
                jp->p[1] == 'u') {
                uint32_t lo;
                if (!hex4(jp->p + 2, jp->end, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    jp->p += 6;
                }
            }
            if (cp == 0) {
                jp_fail(jp, "\\u0000 not allowed");
                sb_release(&sb);
                return NULL;
            }
            put_utf8(&sb, cp);
            break;
        }
        case '"':
        case '\'':
        case '\\':
        case '/': sb_addc(&sb, c); break;
        default: /* qemu's lexer rejects any other escape */
            jp_fail(jp, "invalid escape sequence in string");
            sb_release(&sb);
            return NULL;
        }
    }
    if (jp->p >= jp->end) {
        jp_fail(jp, "unterminated string");
        sb_release(&sb);
        return NULL;
    }
    jp->p++;
    return sb_detach(&sb);
}

static JVal *jp_value(JParser *jp, int depth);

static JVal *jp_container(JParser *jp, int depth, bool obj)
{
    JVal *c = obj ? json_object() : json_array();
    jp->p++;
    jp_ws(jp);
    if (jp->p < jp->end && *jp->p == (obj ? '}' : ']')) {
        jp->p++;
        return c;
    }
    for (;;) {
        char *key = NULL;
        jp_ws(jp);
        if (obj) {
            if (jp->p >= jp->end || (*jp->p != '"' && *jp->p != '\'')) {
                jp_fail(jp, "expected object key");
                goto fail;
            }
            key = jp_string(jp);
            if (!key) {
                goto fail;
            }
            jp_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                jp_fail(jp, "expected ':'");
                goto fail;
            }
            jp->p++;
        }
        JVal *item = jp_value(jp, depth + 1);
        if (!item) {
            free(key);
            goto fail;
        }
        if (obj) {
            json_object_add(c, key, item);
            free(key);
        } else {
            json_array_add(c, item);
        }
        jp_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == (obj ? '}' : ']')) {
            jp->p++;
            return c;
        }
        jp_fail(jp, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        goto fail;
    }
fail:
    json_free(c);
    return NULL;
}

static JVal *jp_number(JParser *jp)
{
    const char *s = jp->p;
    bool is_float = false;
    if (*jp->p == '-') {
        jp->p++;
    }
    while (jp->p < jp->end && (isdigit((unsigned char)*jp->p) || strchr(".eE+-", *jp->p))) {
        if (!isdigit((unsigned char)*jp->p)) {
            is_float = true;
        }
        jp->p++;
    }
    char *tmp = xstrndup(s, (size_t)(jp->p - s));
    JVal *v = NULL;
    char *ep;
    errno = 0;
    if (!is_float) {
        if (tmp[0] == '-') {
            long long ll = strtoll(tmp, &ep, 10);
            v = (!*ep && errno != ERANGE) ? json_int(ll) : NULL;
        } else {
            unsigned long long ull = strtoull(tmp, &ep, 10);
            v = (!*ep && errno != ERANGE) ? json_uint(ull) : NULL;
        }
    }
    if (!v) {
        errno = 0;
        double d = strtod(tmp, &ep);
        if (*ep || ep == tmp) {
            jp_fail(jp, "bad number");
        } else {
            v = json_double(d);
        }
    }
    free(tmp);
    return v;
}

static JVal *jp_value(JParser *jp, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        jp_fail(jp, "nesting too deep");
        return NULL;
    }
    jp_ws(jp);
    if (jp->p >= jp->end) {
        jp_fail(jp, "unexpected end of input");
        return NULL;
    }
    char c = *jp->p;
    if (c == '{' || c == '[') {
        return jp_container(jp, depth, c == '{');
    }
    if (c == '"' || c == '\'') {
        char *s = jp_string(jp);
        if (!s) {
            return NULL;
        }
        JVal *v = jnew(JSON_STRING);
        v->v.s = s;
        return v;
    }
    if (c == '-' || isdigit((unsigned char)c)) {
        return jp_number(jp);
    }
    static const struct {
        const char *word;
        int kind;
    } words[] = {{"true", 1}, {"false", 0}, {"null", 2}};
    for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
        size_t len = strlen(words[i].word);
        if ((size_t)(jp->end - jp->p) >= len && !memcmp(jp->p, words[i].word, len)) {
            jp->p += len;
            return words[i].kind == 2 ? json_null() : json_bool(words[i].kind);
        }
    }
    jp_fail(jp, "unexpected character");
    return NULL;
}

JVal *json_parse(const char *text, size_t len, Error **errp)
{
    JParser jp = {text, text + len, errp, false};
    JVal *v = jp_value(&jp, 0);
    if (!v) {
        if (!jp.failed) {
            jp_fail(&jp, "invalid input");
        }
        return NULL;
    }
    jp_ws(&jp);
    if (jp.p != jp.end) {
        json_free(v);
        jp_fail(&jp, "trailing characters");
        return NULL;
    }
    return v;
}
