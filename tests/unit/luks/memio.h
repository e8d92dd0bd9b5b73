/*
 * memio.h — shared by the LUKS unit tests: an in-memory LuksIO (a volume
 * is a buffer; reads and writes outside it fail with -ERANGE) and the
 * group setup/teardown that provide the secrets s0 and s1.
 */
#ifndef IMGPIPE_TESTS_LUKS_MEMIO_H
#define IMGPIPE_TESTS_LUKS_MEMIO_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "blocklayer/secret_store.h"
#include "formats/luks-int.h"

typedef struct MemIO {
    uint8_t *buf;
    size_t len;
} MemIO;

static inline int mem_read(void *opaque, uint64_t off, void *buf, size_t len)
{
    MemIO *m = opaque;
    if (off > m->len || len > m->len - off) {
        return -ERANGE;
    }
    memcpy(buf, m->buf + off, len);
    return 0;
}

static inline int mem_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
    MemIO *m = opaque;
    if (off > m->len || len > m->len - off) {
        return -ERANGE;
    }
    memcpy(m->buf + off, buf, len);
    return 0;
}

static inline LuksIO mem_io(MemIO *m)
{
    return (LuksIO){mem_read, mem_write, m};
}

/* cmocka group fixtures: secrets "s0" = "abc" and "s1" = "s3cret" */
static inline int setup(void **state)
{
    (void)state;
    secret_store_put("s0", "abc", 3);
    secret_store_put("s1", "s3cret", 6);
    return 0;
}

static inline int teardown(void **state)
{
    (void)state;
    secret_store_clear();
    return 0;
}

#endif
