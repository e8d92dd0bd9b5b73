/*
 * vmdk_desc.c — the VMDK descriptor (VMware "Virtual Disk Format 1.1",
 * section "The Descriptor File"): a text file, or text embedded in a
 * hosted sparse extent at the sector its header names.
 *
 * Supported: version/CID/parentCID/createType/parentFileNameHint keys, and
 * extent lines "ACCESS SECTORS TYPE \"FILE\" [OFFSET]" of types FLAT, VMFS,
 * SPARSE, VMFSSPARSE and SESPARSE.  As qemu, only RW extents are opened;
 * other lines are ignored.  createType must be one qemu accepts for a
 * separate descriptor (monolithicFlat, vmfs, vmfsSparse, seSparse,
 * twoGbMaxExtentSparse, twoGbMaxExtentFlat) or vmfsThin (a VMFS flat disk).
 *
 * Hardening: the descriptor is read up to 1 MiB; every extent goes
 * through the untrusted-image reference policy (blocklayer/policy.c): when
 * restricted — the CLI's default — an extent must resolve (symlinks
 * included) inside the descriptor's directory or a directory the user
 * allowed, so absolute paths and ".." escapes are refused with a message
 * naming the extent.  CID, parentCID and parentFileNameHint are found as
 * qemu finds them: first occurrence in the first 10 KiB of the text.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/vmdk.h"

char *vmdk_read_desc(BlockFile *f, int64_t offset, int64_t max, Error **errp)
{
    int64_t size = bfile_getlength(f);
    if (size < 0) {
        error_setg_errno(errp, (int)-size, "Could not access file");
        return NULL;
    }
    size = MIN(size, (int64_t)VMDK_DESC_MAX - 1);
    if (max > 0) {
        size = MIN(size, max);
    }
    /* at least 4 bytes + NUL so callers may look at a magic number */
    char *buf = xzalloc((size_t)MAX(size, 4) + 1);
    int ret = bfile_pread(f, offset, buf, (size_t)size);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read from file");
        free(buf);
        return NULL;
    }
    buf[size] = '\0';
    return buf;
}

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

static const char *next_line(const char *p)
{
    const char *nl = strchr(p, '\n');
    return nl ? nl + 1 : p + strlen(p);
}

/*
 * Value of "key = value" / key="value" in the descriptor (first match at
 * the start of a line), copied without quotes and trailing blanks.  NULL if
 * absent.  *bad is set when the quotes do not close.
 */
static char *desc_get(const char *desc, const char *key, bool *bad)
{
    size_t klen = strlen(key);
    *bad = false;
    for (const char *p = desc; *p; p = next_line(p)) {
        const char *q = skip_blanks(p);
        if (strncmp(q, key, klen)) {
            continue;
        }
        q = skip_blanks(q + klen);
        if (*q != '=') {
            continue;
        }
        q = skip_blanks(q + 1);
        const char *end;
        if (*q == '"') {
            q++;
            end = q;
            while (*end && *end != '"' && *end != '\n') {
                end++;
            }
            if (*end != '"') {
                *bad = true;
                return NULL;
            }
        } else {
            end = q;
            while (*end && *end != '\n' && *end != '\r') {
                end++;
            }
            while (end > q && (end[-1] == ' ' || end[-1] == '\t')) {
                end--;
            }
        }
        return xstrndup(q, (size_t)(end - q));
    }
    return NULL;
}

/*
 * qemu's lookup: the first occurrence of key anywhere in the first
 * VMDK_EMBEDDED_DESC bytes, skip "key=", then a hex number (so a missing
 * "CID=" line finds the one inside "parentCID=").
 */
static int parse_cid(const char *desc, const char *key, uint32_t *out)
{
    char *head = xstrndup(desc, VMDK_EMBEDDED_DESC - 1);
    const char *p = strstr(head, key);
    int ret = -EINVAL;
    if (p && strlen(p) > strlen(key)) {
        p += strlen(key) + 1;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(p, &end, 16);
        if (end != p && errno == 0 && *p != '-' && *p != '+') {
            *out = (uint32_t)x; /* as sscanf %x: wider values are truncated */
            ret = 0;
        }
    }
    free(head);
    return ret;
}

int vmdk_parse_desc_ids(BlockDriverState *bs, Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    /* qemu sets no message here; its generic layer names the file twice */
    if (parse_cid(s->desc, "CID", &s->cid) < 0 ||
        parse_cid(s->desc, "parentCID", &s->parent_cid) < 0) {
        error_setg(errp, "Could not open '%s': %s", bs->filename, strerror(EINVAL));
        return -EINVAL;
    }
    bool bad;
    char *hint = desc_get(s->desc, "parentFileNameHint", &bad);
    if (bad) {
        error_setg(errp, "Could not open '%s': %s", bs->filename, strerror(EINVAL));
        return -EINVAL;
    }
    if (hint) {
        free(bs->backing_file);
        free(bs->backing_format);
        bs->backing_file = hint;
        bs->backing_format = xstrdup("vmdk");
    }
    return 0;
}

typedef struct ExtentLine {
    char access[16];
    int64_t sectors;
    char type[16];
    char fname[512];
    int64_t offset;
    int matches;
} ExtentLine;

/* Copy a blank-delimited word of at most cap-1 chars; false if none. */
static bool take_word(const char **pp, char *out, size_t cap)
{
    const char *p = skip_blanks(*pp);
    size_t n = 0;
    while (p[n] && p[n] != ' ' && p[n] != '\t' && p[n] != '\n' && p[n] != '\r') {
        n++;
    }
    if (n == 0 || n >= cap) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    *pp = p + n;
    return true;
}

static bool take_int(const char **pp, int64_t *out)
{
    const char *p = skip_blanks(*pp);
    char *end;
    /* out of range saturates and still counts as a match, as with qemu's
     * sscanf: the size check then refuses the line instead of skipping it */
    long long v = strtoll(p, &end, 10);
    if (end == p) {
        return false;
    }
    *out = v;
    *pp = end;
    return true;
}

/* Split one line into the fields of an extent line; ->matches counts them. */
static void parse_extent_line(const char *p, ExtentLine *x)
{
    memset(x, 0, sizeof(*x));
    x->offset = -1;
    if (!take_word(&p, x->access, sizeof(x->access))) {
        return;
    }
    x->matches++;
    if (!take_int(&p, &x->sectors)) {
        return;
    }
    x->matches++;
    if (!take_word(&p, x->type, sizeof(x->type))) {
        return;
    }
    x->matches++;
    p = skip_blanks(p);
    if (*p != '"') {
        return;
    }
    p++;
    size_t n = strcspn(p, "\"\r\n");
    if (n == 0) {
        return;
    }
    /* like qemu's sscanf: the name counts even when too long or not closed
     * by a quote; then nothing more matches (a FLAT line is then invalid) */
    size_t kept = MIN(n, sizeof(x->fname) - 1);
    memcpy(x->fname, p, kept);
    x->fname[kept] = '\0';
    x->matches++;
    if (n != kept || p[n] != '"') {
        return;
    }
    p += n + 1;
    if (take_int(&p, &x->offset)) {
        x->matches++;
    }
}

static int invalid_line(const char *line, Error **errp)
{
    const char *end = next_line(line);
    if (end > line && end[-1] == '\n') {
        end--;
    }
    error_setg(errp, "Invalid extent line: %.*s", (int)(end - line), line);
    return -EINVAL;
}

static int add_flat(BlockDriverState *bs, BlockFile *f, const ExtentLine *x, char *path,
                    Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    if (x->offset > INT64_MAX / VMDK_SECTOR || x->sectors > INT64_MAX / VMDK_SECTOR) {
        error_setg(errp, "Invalid extent line: offset or size too large");
        return -EINVAL;
    }
    VmdkExtent *e = vmdk_add_extent(s);
    e->file = f;
    e->own_file = true;
    e->filename = path;
    e->kind = VMDK_EXT_FLAT;
    e->flat = true;
    e->sectors = x->sectors;
    e->flat_start = x->offset * VMDK_SECTOR;
    e->cluster_sectors = (uint64_t)x->sectors;
    return 0;
}

static int open_one_extent(BlockDriverState *bs, const ExtentLine *x, int flags, Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    char *path = path_combine(bs->filename, x->fname);
    /* the untrusted-image policy (policy.c), naming the extent */
    int ret = bdrv_check_reference(bs->filename, "extent", x->fname, path, errp);
    BlockFile *f = ret < 0 ? NULL : bdrv_open_aux_file(bs, x->fname, flags & BDRV_O_RDWR, errp);
    if (!f) {
        free(path);
        return ret < 0 ? ret : -ENOENT;
    }
    bool flat = !strcmp(x->type, "FLAT") || !strcmp(x->type, "VMFS");
    if (flat) {
        ret = add_flat(bs, f, x, path, errp);
    } else if (!strcmp(x->type, "SESPARSE")) {
        ret = vmdk_open_sesparse(bs, f, path, flags, errp);
    } else {
        ret = vmdk_open_sparse(bs, f, true, x->type, path, flags, errp);
    }
    if (ret < 0) {
        free(path); /* every opener copies the name it keeps */
        bfile_close(f);
        return ret;
    }
    if (!flat) {
        free(path);
    }
    VmdkExtent *e = &s->extents[s->num_extents - 1];
    free(e->type);
    e->type = xstrdup(x->type);
    return 0;
}

static bool known_type(const char *t)
{
    return !strcmp(t, "FLAT") || !strcmp(t, "SPARSE") || !strcmp(t, "VMFS") ||
           !strcmp(t, "VMFSSPARSE") || !strcmp(t, "SESPARSE");
}

/* Extent lines that would be opened: counted first, so that a descriptor
 * naming too many is refused before thousands of files are opened. */
static size_t count_extents(const char *desc)
{
    size_t n = 0;
    for (const char *p = desc; *p; p = next_line(p)) {
        ExtentLine x;
        parse_extent_line(p, &x);
        n += x.matches >= 4 && !strcmp(x.access, "RW") && x.sectors > 0 && known_type(x.type);
    }
    return n;
}

static int parse_extents(BlockDriverState *bs, const char *desc, int flags, Error **errp)
{
    BDRVVmdkState *s = bs->opaque;
    if (count_extents(desc) > VMDK_MAX_EXTENTS) {
        error_setg(errp, "too many extents (more than %d)", VMDK_MAX_EXTENTS);
        return -EFBIG;
    }
    for (const char *p = desc; *p; p = next_line(p)) {
        ExtentLine x;
        parse_extent_line(p, &x);
        if (x.matches < 4 || strcmp(x.access, "RW")) {
            continue;
        }
        if (!strcmp(x.type, "FLAT")) {
            if (x.matches != 5 || x.offset < 0) {
                return invalid_line(p, errp);
            }
        } else if (!strcmp(x.type, "VMFS")) {
            if (x.matches != 4) {
                return invalid_line(p, errp);
            }
            x.offset = 0;
        } else if (x.matches != 4) {
            return invalid_line(p, errp);
        }
        if (x.sectors <= 0 || !known_type(x.type)) {
            continue;
        }
        if (s->num_extents >= VMDK_MAX_EXTENTS) {
            error_setg(errp, "too many extents (more than %d)", VMDK_MAX_EXTENTS);
            return -EFBIG;
        }
        int ret = open_one_extent(bs, &x, flags, errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

int vmdk_open_desc_file(BlockDriverState *bs, const char *buf, int flags, Error **errp)
{
    static const char *const types[] = {
        "monolithicFlat",     "vmfs",     "vmfsSparse", "seSparse", "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat", "vmfsThin", NULL,
    };
    BDRVVmdkState *s = bs->opaque;
    bool bad;
    char *ct = desc_get(buf, "createType", &bad);
    if (!ct || strlen(ct) >= 128) {
        free(ct);
        error_setg(errp, "invalid VMDK image descriptor");
        return -EINVAL;
    }
    bool ok = false;
    for (int i = 0; types[i]; i++) {
        ok |= !strcmp(ct, types[i]);
    }
    if (!ok) {
        error_setg(errp, "Unsupported image type '%s'", ct);
        free(ct);
        return -ENOTSUP;
    }
    free(s->create_type);
    s->create_type = ct;
    s->desc_file = bs->file;
    s->desc_offset = 0;
    s->desc_room = -1;
    return parse_extents(bs, buf, flags, errp);
}

/* Replace the value of the CID line in text (caller frees the result). */
static char *desc_with_cid(const char *text, uint32_t cid)
{
    StrBuf sb = STRBUF_INIT;
    bool done = false;
    for (const char *p = text; *p;) {
        const char *nl = next_line(p);
        const char *q = skip_blanks(p);
        if (!done && !strncmp(q, "CID", 3) && *skip_blanks(q + 3) == '=') {
            sb_addf(&sb, "CID=%" PRIx32 "\n", cid);
            done = true;
        } else {
            sb_addn(&sb, p, (size_t)(nl - p));
        }
        p = nl;
    }
    return sb_detach(&sb);
}

int vmdk_write_cid(BlockDriverState *bs, uint32_t cid)
{
    BDRVVmdkState *s = bs->opaque;
    if (!s->desc || !s->desc_file) {
        return 0;
    }
    char *text = desc_with_cid(s->desc, cid);
    size_t len = strlen(text);
    int ret;
    if (s->desc_room >= 0) {
        if ((int64_t)len > s->desc_room) {
            free(text);
            return -ENOSPC;
        }
        char *room = xzalloc((size_t)s->desc_room);
        memcpy(room, text, len);
        ret = bfile_pwrite(s->desc_file, s->desc_offset, room, (size_t)s->desc_room);
        free(room);
    } else {
        /* a descriptor file is rewritten padded with NULs to whole sectors,
         * as qemu does (its files grow from 337 to 512 bytes on first write) */
        size_t padded = ROUND_UP(len, VMDK_SECTOR);
        char *room = xzalloc(padded);
        memcpy(room, text, len);
        ret = bfile_pwrite(s->desc_file, 0, room, padded);
        free(room);
        if (ret == 0) {
            ret = bfile_truncate(s->desc_file, (int64_t)padded, PREALLOC_OFF, NULL);
        }
    }
    if (ret == 0) {
        free(s->desc);
        s->desc = text;
        s->cid = cid;
    } else {
        free(text);
    }
    return ret;
}

char *vmdk_make_desc(uint32_t cid, uint32_t parent_cid, const char *create_type,
                     const char *parent_hint, const char *extent_lines, const char *hw_version,
                     int64_t size, bool ide, const char *adapter, const char *tools)
{
    /* VMware uses 255 heads for every adapter but IDE. */
    int64_t heads = ide ? 16 : 255;
    StrBuf sb = STRBUF_INIT;
    sb_addf(&sb,
            "# Disk DescriptorFile\nversion=1\nCID=%" PRIx32 "\nparentCID=%" PRIx32
            "\ncreateType=\"%s\"\n",
            cid, parent_cid, create_type);
    if (parent_hint) {
        sb_addf(&sb, "parentFileNameHint=\"%s\"", parent_hint);
    }
    sb_addf(&sb, "\n# Extent description\n%s\n# The Disk Data Base\n#DDB\n\n", extent_lines);
    sb_addf(&sb,
            "ddb.virtualHWVersion = \"%s\"\nddb.geometry.cylinders = \"%" PRId64
            "\"\nddb.geometry.heads = \"%" PRId64 "\"\nddb.geometry.sectors = \"63\"\n"
            "ddb.adapterType = \"%s\"\nddb.toolsVersion = \"%s\"\n",
            hw_version, size / (63 * heads * VMDK_SECTOR), heads, adapter, tools);
    return sb_detach(&sb);
}
