/*
 * memio.h — an in-memory LuksIO for the LUKS unit tests: a volume is a
 * buffer; reads and writes outside it fail with -ERANGE.
 */
#ifndef IMGPIPE_TESTS_LUKS_MEMIO_H
#define IMGPIPE_TESTS_LUKS_MEMIO_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

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

#endif
