/* util.c — see util.h. */
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void oom(size_t size)
{
    fprintf(stderr, "imgpipe: out of memory allocating %zu bytes\n", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        oom(size);
    }
    return p;
}

void *xzalloc(size_t size)
{
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        oom(size);
    }
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    size_t total;
    if (MUL_OVERFLOW(n, size, &total)) {
        oom(SIZE_MAX);
    }
    return xzalloc(total);
}

void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (!p) {
        oom(size);
    }
    return p;
}

void *xmemalign(size_t align, size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : align)) {
        oom(size);
    }
    return p;
}

char *xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    char *p;
    if (vasprintf(&p, fmt, ap) < 0) {
        oom(0);
    }
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}

bool buffer_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    /* Check head bytes until aligned, then 8 words at a time. */
    while (len && ((uintptr_t)p & 7)) {
        if (*p) {
            return false;
        }
        p++;
        len--;
    }
    const uint64_t *w = (const uint64_t *)p;
    while (len >= 64) {
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) {
            return false;
        }
        w += 8;
        len -= 64;
    }
    p = (const uint8_t *)w;
    while (len--) {
        if (*p++) {
            return false;
        }
    }
    return true;
}

/* ---- StrBuf ---- */

static void sb_grow(StrBuf *sb, size_t extra)
{
    size_t need = sb->len + extra + 1;
    if (need <= sb->alloc) {
        return;
    }
    size_t n = sb->alloc ? sb->alloc : 64;
    while (n < need) {
        n *= 2;
    }
    sb->buf = xrealloc(sb->buf, n);
    sb->alloc = n;
}

void sb_init(StrBuf *sb)
{
    sb->buf = NULL;
    sb->len = sb->alloc = 0;
}

void sb_addn(StrBuf *sb, const char *s, size_t n)
{
    sb_grow(sb, n);
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = 0;
}

void sb_add(StrBuf *sb, const char *s)
{
    sb_addn(sb, s, strlen(s));
}

void sb_addc(StrBuf *sb, char c)
{
    sb_addn(sb, &c, 1);
}

void sb_vaddf(StrBuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return;
    }
    sb_grow(sb, (size_t)n);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

void sb_addf(StrBuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(sb, fmt, ap);
    va_end(ap);
}

void sb_reset(StrBuf *sb)
{
    sb->len = 0;
    if (sb->buf) {
        sb->buf[0] = 0;
    }
}

void sb_release(StrBuf *sb)
{
    free(sb->buf);
    sb_init(sb);
}

char *sb_detach(StrBuf *sb)
{
    char *s = sb->buf ? sb->buf : xstrdup("");
    sb_init(sb);
    return s;
}

const char *sb_str(const StrBuf *sb)
{
    return sb->buf ? sb->buf : "";
}

/* ---- sizes ---- */

/* Multiplier of a size suffix (qemu's suffix_mul), or 0 if c is none. */
static uint64_t suffix_mul(char c, uint64_t unit)
{
    int power;
    switch (tolower((unsigned char)c)) {
    case 'b': return 1;
    case 'k': power = 1; break;
    case 'm': power = 2; break;
    case 'g': power = 3; break;
    case 't': power = 4; break;
    case 'p': power = 5; break;
    case 'e': power = 6; break;
    default: return 0;
    }
    uint64_t mul = 1;
    while (power--) {
        mul *= unit;
    }
    return mul;
}

/* strtoull as qemu_strtou64 uses it: -EINVAL when nothing was converted. */
static int strtou64_at(const char *p, const char **ep, int base, uint64_t *val)
{
    char *e;
    errno = 0;
    *val = strtoull(p, &e, base);
    *ep = e;
    if (errno == ERANGE) {
        *val = UINT64_MAX;
        return -ERANGE;
    }
    return e == p ? -EINVAL : 0;
}

/*
 * The fraction after the '.' at *pp as a 0.64 fixed-point number, as
 * qemu's do_strtosz: no digits means "1." (no fraction, skip the '.');
 * an exponent makes the whole input invalid.
 */
static int parse_fraction(const char **pp, uint64_t *valf)
{
    const char *f = *pp;
    char *e;
    errno = 0;
    double fraction = strtod(f, &e);
    if (e == f || !isfinite(fraction)) {
        *pp = f + 1;
        return 0;
    }
    if (memchr(f, 'e', (size_t)(e - f)) || memchr(f, 'E', (size_t)(e - f))) {
        return -EINVAL;
    }
    /* 1.0 (".99999999999999999999") wraps to 0 in qemu's conversion: keep that. */
    *valf = fraction >= 1.0 ? 0 : (uint64_t)(fraction * 0x1p64);
    *pp = e;
    return 0;
}

/*
 * Shared core of the parse_size family, after qemu 7.2's do_strtosz():
 * decimal (with optional fraction) or 0x-hex integer, optional suffix
 * (powers of unit), default_mul when there is none.  The result is
 * computed exactly in 64.64 fixed point and rounded half up.
 */
static int do_parse_size(const char *str, const char **end, uint64_t *result, uint64_t default_mul,
                         uint64_t unit)
{
    const char *ep;
    uint64_t val, valf = 0, mul;
    int ret = strtou64_at(str, &ep, 10, &val);
    if (ret < 0) {
        goto out;
    }
    if (memchr(str, '-', (size_t)(ep - str))) {
        ep = str;
        ret = -EINVAL;
        goto out;
    }
    bool hex = false;
    if (val == 0 && (*ep == 'x' || *ep == 'X')) {
        ret = strtou64_at(str, &ep, 16, &val);
        if (ret < 0) {
            goto out;
        }
        if (*ep == '.') {
            ep = str;
            ret = -EINVAL;
            goto out;
        }
        hex = true;
    } else if (*ep == '.' && parse_fraction(&ep, &valf) < 0) {
        ep = str;
        ret = -EINVAL;
        goto out;
    }
    mul = suffix_mul(*ep, unit);
    if (mul) {
        if (hex) {
            msg_warn("Using a multiplier suffix on hex numbers is deprecated: %s", str);
        }
        ep++;
    } else {
        mul = default_mul;
    }
    if (mul == 1) {
        if (valf) { /* a fraction needs a scale */
            ep = str;
            ret = -EINVAL;
            goto out;
        }
    } else {
        unsigned __int128 v = (unsigned __int128)val * mul;
        unsigned __int128 f = (unsigned __int128)valf * mul;
        v += (f >> 64) + (((uint64_t)f) >> 63); /* round 0.5 up */
        if (v >> 64) {
            ret = -ERANGE;
            goto out;
        }
        val = (uint64_t)v;
    }
    ret = 0;
out:
    if (end) {
        *end = ep;
    } else if (*ep) {
        ret = -EINVAL;
    }
    if (ret == 0) {
        *result = val;
    }
    return ret;
}

int parse_size(const char *str, const char **end, uint64_t *result)
{
    return do_parse_size(str, end, result, 1, 1024);
}

int parse_size_mib(const char *str, const char **end, uint64_t *result)
{
    return do_parse_size(str, end, result, MiB, 1024);
}

int parse_size_metric(const char *str, const char **end, uint64_t *result)
{
    return do_parse_size(str, end, result, 1, 1000);
}

char *size_to_str(uint64_t val)
{
    static const char *const units[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    int exp;
    /* Switch to the next unit once the integer part would reach 1000. */
    frexp((double)val / (1000.0 / 1024.0), &exp);
    int i = (exp - 1) / 10;
    if (i < 0) {
        i = 0;
    }
    if (i > 6) {
        i = 6;
    }
    double div = (double)(1ULL << (i * 10));
    return xasprintf("%0.3g %sB", (double)val / div, units[i]);
}

int parse_int64(const char *s, int64_t *out)
{
    char *ep;
    if (!s || !*s) {
        return -EINVAL;
    }
    errno = 0;
    long long v = strtoll(s, &ep, 10);
    if (*ep) {
        return -EINVAL;
    }
    if (errno == ERANGE) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

int parse_uint64(const char *s, uint64_t *out)
{
    char *ep;
    if (!s || !*s || *s == '-') {
        return -EINVAL;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &ep, 10);
    if (*ep) {
        return -EINVAL;
    }
    if (errno == ERANGE) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

/* ---- paths ---- */

char *path_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        return xstrdup(".");
    }
    if (slash == path) {
        return xstrdup("/");
    }
    return xstrndup(path, (size_t)(slash - path));
}

bool path_is_absolute(const char *name)
{
    if (name[0] == '/') {
        return true;
    }
    /* "proto:..." with a protocol-looking prefix */
    const char *colon = strchr(name, ':');
    const char *slash = strchr(name, '/');
    if (colon && colon != name && (!slash || colon < slash)) {
        for (const char *p = name; p < colon; p++) {
            if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.') {
                return false;
            }
        }
        return true;
    }
    return false;
}

char *path_combine(const char *base_path, const char *name)
{
    if (path_is_absolute(name) || !*base_path) {
        return xstrdup(name);
    }
    const char *slash = strrchr(base_path, '/');
    if (!slash) {
        return xstrdup(name);
    }
    return xasprintf("%.*s/%s", (int)(slash - base_path), base_path, name);
}

/* ---- messages ---- */

static pthread_mutex_t msg_lock = PTHREAD_MUTEX_INITIALIZER;
static MsgSink msg_sink;
static void *msg_opaque;

void msg_set_sink(MsgSink sink, void *opaque)
{
    pthread_mutex_lock(&msg_lock);
    msg_sink = sink;
    msg_opaque = opaque;
    pthread_mutex_unlock(&msg_lock);
}

static void msg_deliver(bool warning, const char *fmt, va_list ap)
{
    char *text = xvasprintf(fmt, ap);
    pthread_mutex_lock(&msg_lock);
    if (msg_sink) {
        msg_sink(msg_opaque, warning, text);
    } else if (warning) {
        fprintf(stderr, "imgpipe: warning: %s\n", text);
    } else {
        fprintf(stderr, "%s\n", text);
    }
    pthread_mutex_unlock(&msg_lock);
    free(text);
}

void msg_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_deliver(true, fmt, ap);
    va_end(ap);
}

void msg_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_deliver(false, fmt, ap);
    va_end(ap);
}

int64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
