/*
 * key.c — action key preimages, keys and their diff (see key.h).
 */
#include "planner/key.h"

#include <stdlib.h>
#include <string.h>

/* Append v with '\' and newlines escaped, so each entry stays one line. */
static void add_value(StrBuf *sb, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\') {
            sb_add(sb, "\\\\");
        } else if (*v == '\n') {
            sb_add(sb, "\\n");
        } else {
            sb_addc(sb, *v);
        }
    }
}

static void add_digest(StrBuf *sb, const Sha256 *d)
{
    char hex[SHA256_HEX_LEN + 1];
    sha256_to_hex(d, hex);
    sb_addf(sb, "sha256:%s", hex);
}

/* "input ROLE[.backing...] DIGEST" for an input node and its backing chain. */
static bool add_input(StrBuf *sb, const char *role, const Node *in)
{
    bool complete = true;
    StrBuf name = STRBUF_INIT;
    sb_add(&name, role);
    for (int depth = 0; in && depth < 64; depth++) {
        sb_addf(sb, "input %s ", sb_str(&name));
        if (in->digest_valid) {
            add_digest(sb, &in->digest);
        } else {
            sb_add(sb, "(will be rebuilt)");
            complete = false;
        }
        sb_addc(sb, '\n');
        in = node_backing(in);
        sb_add(&name, ".backing");
    }
    sb_release(&name);
    return complete;
}

bool key_preimage(const Node *n, int64_t epoch, StrBuf *sb)
{
    bool complete = true;
    sb_addf(sb, "imgpipe-action %d\n", IMGPIPE_ACTION_VERSION);
    sb_addf(sb, "kind %s\n", step_kind_name(n->kind));
    sb_addf(sb, "epoch %lld\n", (long long)epoch);
    sb_addf(sb, "output-format %s\n", n->format ? n->format : "(probe)");
    for (size_t i = 0; i < n->n_params; i++) {
        sb_addf(sb, "param %s ", n->params[i].key);
        add_value(sb, n->params[i].value);
        sb_addc(sb, '\n');
    }
    for (size_t i = 0; i < n->n_inputs; i++) {
        complete &= add_input(sb, n->inputs[i].role, n->inputs[i].node);
    }
    for (size_t i = 0; i < n->n_files; i++) {
        sb_add(sb, "file ");
        add_value(sb, n->files[i].path);
        sb_addc(sb, ' ');
        if (n->file_digests) {
            add_digest(sb, &n->file_digests[i]);
        } else {
            sb_add(sb, "(not hashed)");
            complete = false;
        }
        sb_addc(sb, '\n');
    }
    return complete;
}

bool key_compute(Node *n, int64_t epoch)
{
    StrBuf sb = STRBUF_INIT;
    sb_add(&sb, "");
    bool complete = key_preimage(n, epoch, &sb);
    free(n->preimage);
    n->preimage = sb_detach(&sb);
    n->key_valid = complete;
    if (complete) {
        sha256_buf(n->preimage, strlen(n->preimage), &n->key);
    }
    return complete;
}

/* ---- diff ---- */

typedef struct Line {
    const char *start;
    size_t len;    /* without '\n' */
    size_t id_len; /* length of the identity (first two words) */
} Line;

static Line *split_lines(const char *text, size_t *n)
{
    size_t alloc = 16;
    Line *lines = xcalloc(alloc, sizeof(Line));
    *n = 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *sp = memchr(p, ' ', len);
        const char *sp2 = sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - p)) : NULL;
        if (*n == alloc) {
            alloc *= 2;
            lines = xrealloc(lines, alloc * sizeof(Line));
        }
        lines[(*n)++] = (Line){p, len, sp2 ? (size_t)(sp2 - p) : len};
        p = nl ? nl + 1 : NULL;
    }
    return lines;
}

static const Line *find_line(const Line *lines, size_t n, const Line *like)
{
    for (size_t i = 0; i < n; i++) {
        if (lines[i].id_len == like->id_len && !memcmp(lines[i].start, like->start, like->id_len)) {
            return &lines[i];
        }
    }
    return NULL;
}

/* The value part of a line (after its identity and one space). */
static const char *line_value(const Line *l, int *len)
{
    size_t skip = l->id_len + (l->len > l->id_len);
    *len = (int)(l->len - skip);
    return l->start + skip;
}

static void add_change(StrBuf *out, bool brief, const Line *o, const Line *n)
{
    const Line *l = o ? o : n;
    if (brief) {
        sb_addf(out, "%.*s %s", (int)l->id_len, l->start,
                !o   ? "added"
                : !n ? "removed"
                     : "changed");
    } else if (o && n) {
        int ol, nl;
        const char *ov = line_value(o, &ol), *nv = line_value(n, &nl);
        sb_addf(out, "%.*s: %.*s -> %.*s\n", (int)l->id_len, l->start, ol, ov, nl, nv);
    } else {
        sb_addf(out, "%c %.*s\n", o ? '-' : '+', (int)l->len, l->start);
    }
}

int preimage_diff(const char *old_text, const char *new_text, bool brief, StrBuf *out)
{
    size_t no, nn;
    Line *o = split_lines(old_text, &no), *n = split_lines(new_text, &nn);
    int diffs = 0;
    for (size_t i = 0; i < no && !(brief && diffs); i++) {
        const Line *m = find_line(n, nn, &o[i]);
        if (!m || m->len != o[i].len || memcmp(m->start, o[i].start, m->len)) {
            add_change(out, brief, &o[i], m);
            diffs++;
        }
    }
    for (size_t i = 0; i < nn && !(brief && diffs); i++) {
        if (!find_line(o, no, &n[i])) {
            add_change(out, brief, NULL, &n[i]);
            diffs++;
        }
    }
    free(o);
    free(n);
    return diffs;
}
