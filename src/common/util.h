/*
 * util.h — small things every module needs: allocation, strings, byte order,
 * overflow-checked arithmetic, a growable string buffer, size parsing.
 *
 * Allocation helpers abort on out-of-memory (a batch tool cannot do better);
 * callers must bound every size that comes from an image or a recipe BEFORE
 * allocating with it (see STYLE.md, "Hostile input").
 */
#ifndef IMGPIPE_COMMON_UTIL_H
#define IMGPIPE_COMMON_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#define ARRAY_SIZE(x)      (sizeof(x) / sizeof((x)[0]))
#define DIV_ROUND_UP(n, d) (((n) + (d)-1) / (d))
/* d must be a power of two for the ALIGN macros. */
#define ROUND_UP(n, d)   (((n) + (d)-1) & -(0 ? (n) : (d)))
#define ROUND_DOWN(n, d) ((n) & -(0 ? (n) : (d)))
#define IS_ALIGNED(n, d) (((n) & ((d)-1)) == 0)
#define IS_POWER_OF_2(x) ((x) != 0 && (((x) & ((x)-1)) == 0))

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)
#define PiB (1ULL << 50)
#define EiB (1ULL << 60)

#define BDRV_SECTOR_BITS 9
#define BDRV_SECTOR_SIZE 512ULL

/* ---- memory ---- */
void *xmalloc(size_t size);
void *xzalloc(size_t size);
void *xcalloc(size_t n, size_t size); /* aborts on n*size overflow */
void *xrealloc(void *p, size_t size);
/* Aligned allocation (for O_DIRECT buffers); free with free(). */
void *xmemalign(size_t align, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) IMGPIPE_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap);
#define XNEW(type)     ((type *)xzalloc(sizeof(type)))
#define XNEWV(type, n) ((type *)xcalloc((n), sizeof(type)))

/* ---- byte order: load/store at any alignment ---- */
static inline uint16_t ld16_be(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint16_t ld16_le(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[1] << 8 | b[0]);
}
static inline uint32_t ld32_be(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
static inline uint32_t ld32_le(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t ld64_be(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}
static inline uint64_t ld64_le(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline void st16_be(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}
static inline void st16_le(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[1] = (uint8_t)(v >> 8);
    b[0] = (uint8_t)v;
}
static inline void st32_be(void *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}
static inline void st32_le(void *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static inline void st64_be(void *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}
static inline void st64_le(void *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* ---- overflow-checked arithmetic: true on overflow ---- */
#define ADD_OVERFLOW(a, b, res) __builtin_add_overflow((a), (b), (res))
#define MUL_OVERFLOW(a, b, res) __builtin_mul_overflow((a), (b), (res))

/* True if the whole buffer is zero (fast path for zero detection). */
bool buffer_is_zero(const void *buf, size_t len);

/* ---- string buffer (after git's strbuf) ---- */
typedef struct StrBuf {
    char *buf; /* always NUL-terminated once initialised */
    size_t len;
    size_t alloc;
} StrBuf;
#define STRBUF_INIT \
    {               \
        NULL, 0, 0  \
    }
void sb_init(StrBuf *sb);
void sb_add(StrBuf *sb, const char *s);
void sb_addn(StrBuf *sb, const char *s, size_t n);
void sb_addc(StrBuf *sb, char c);
void sb_addf(StrBuf *sb, const char *fmt, ...) IMGPIPE_PRINTF(2, 3);
void sb_vaddf(StrBuf *sb, const char *fmt, va_list ap);
void sb_reset(StrBuf *sb);            /* len = 0, keep memory */
void sb_release(StrBuf *sb);          /* free memory, back to STRBUF_INIT */
char *sb_detach(StrBuf *sb);          /* caller owns the string; sb reset */
const char *sb_str(const StrBuf *sb); /* "" when never written */

/* ---- sizes, as qemu-img parses them ---- */
/*
 * Parse a size like qemu 7.2's qemu_strtosz(): decimal or 0x-hex integer
 * (leading whitespace and '+' allowed, as strtoull), or a decimal fraction
 * ("1.5G"; rounded half up to a byte; it needs a suffix other than b/B), an
 * optional suffix b/B k/K m/M g/G t/T p/P e/E (powers of 1024); default unit
 * is bytes.  A suffix on a hex number works but warns (deprecated in qemu).
 * If end is NULL the whole string must be consumed.  Returns 0, -EINVAL (not
 * a number, negative, exponent, bad suffix, trailing garbage) or -ERANGE
 * (above 2^64-1 after scaling).
 */
int parse_size(const char *str, const char **end, uint64_t *result);
/*
 * Like qemu's qemu_strtosz_MiB(): default unit MiB when no suffix.
 */
int parse_size_mib(const char *str, const char **end, uint64_t *result);
/* qemu_strtosz_metric: suffixes are powers of 1000. */
int parse_size_metric(const char *str, const char **end, uint64_t *result);

/* Human size as qemu prints it ("1 GiB", "196 KiB", "1.5 MiB"). */
char *size_to_str(uint64_t val);

/* Parse a signed/unsigned decimal integer (whole string). 0 or -EINVAL/-ERANGE. */
int parse_int64(const char *s, int64_t *out);
int parse_uint64(const char *s, uint64_t *out);

/* Directory part of a path ("." if none); caller frees. */
char *path_dirname(const char *path);
/* True if name is absolute or has a protocol prefix ("nbd:...", "json:...") */
bool path_is_absolute(const char *name);
/* Resolve name relative to the directory of base_path, the way qemu
 * combines a backing file name with the overlay's name (no realpath). */
char *path_combine(const char *base_path, const char *name);

/* ---- message sink ----
 * Library code that must tell the user something that is not an error (a
 * warning, a `check` finding) calls msg_warn()/msg_report().  The CLI installs
 * the sink; the default writes to stderr.  Thread-safe. */
typedef void (*MsgSink)(void *opaque, bool warning, const char *text);
void msg_set_sink(MsgSink sink, void *opaque);
/* "qemu-img: warning: ..." style, delivered with warning=true */
void msg_warn(const char *fmt, ...) IMGPIPE_PRINTF(1, 2);
/* A plain line (check findings "Leaked cluster ...") to stderr-by-default */
void msg_report(const char *fmt, ...) IMGPIPE_PRINTF(1, 2);

/* Monotonic clock in nanoseconds. */
int64_t clock_ns(void);

#endif
