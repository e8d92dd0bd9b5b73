/*
 * qcow2-cache.c — write-back cache of qcow2 metadata tables (L2 tables and
 * refcount blocks), one cluster each, kept in on-disk byte order.
 *
 * Design notes (invariants):
 *  1. An entry is either free (offset 0) or holds the table stored at
 *     `offset` in the image file.  No two entries hold the same offset.
 *  2. A pinned entry (ref > 0) is never evicted or discarded; callers pin
 *     with get()/get_empty() and unpin with put(), always under s->lock.
 *  3. A dirty entry reaches the disk before its memory is reused (eviction)
 *     and on every flush.  Before any entry of cache C is written:
 *       - if C depends on cache D, D is written and the file synced first
 *         (refcount blocks before the L2 entries that use their clusters;
 *         L2 tables before the refcount blocks that free their clusters);
 *       - if C->depends_on_flush, the file is synced first (guest data
 *         before the L2 entries that point at it).
 *  4. Eviction picks the least recently used unpinned entry.
 *
 * Lookup is a linear scan starting at a hash slot; caches are small
 * (at most QCOW2_CACHE_MAX_TABLES entries).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2.h"

typedef struct Qcow2CacheEntry {
    uint64_t offset; /* 0: free */
    int ref;
    bool dirty;
    uint64_t lru;
} Qcow2CacheEntry;

struct Qcow2Cache {
    Qcow2CacheEntry *entries;
    uint8_t *tables; /* size * table_size bytes */
    int size;
    uint32_t table_size;
    uint64_t lru_counter;
    Qcow2Cache *depends;
    bool depends_on_flush;
};

static inline uint8_t *table_addr(Qcow2Cache *c, int i)
{
    return c->tables + (size_t)i * c->table_size;
}

Qcow2Cache *qcow2_cache_create(BlockDriverState *bs, int num_tables, uint32_t table_size)
{
    Qcow2Cache *c = XNEW(Qcow2Cache);
    c->size = MAX(num_tables, 2);
    c->table_size = table_size;
    c->entries = XNEWV(Qcow2CacheEntry, (size_t)c->size);
    c->tables = xmemalign(4096, (size_t)c->size * table_size);
    return c;
}

void qcow2_cache_destroy(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    free(c->tables);
    free(c->entries);
    free(c);
}

/* The file that holds metadata (never the external data file). */
static BlockFile *meta_file(BlockDriverState *bs)
{
    return bs->file;
}

static int cache_flush_dependency(BlockDriverState *bs, Qcow2Cache *c)
{
    int ret = qcow2_cache_flush(bs, c->depends);
    if (ret < 0) {
        return ret;
    }
    c->depends = NULL;
    c->depends_on_flush = false;
    return 0;
}

static int entry_flush(BlockDriverState *bs, Qcow2Cache *c, int i)
{
    Qcow2CacheEntry *e = &c->entries[i];
    if (!e->dirty || !e->offset) {
        return 0;
    }
    int ret = 0;
    if (c->depends) {
        ret = cache_flush_dependency(bs, c);
    } else if (c->depends_on_flush) {
        ret = bfile_flush(meta_file(bs));
        if (ret == 0 && qcow2_state(bs)->data_file != bs->file) {
            ret = bfile_flush(qcow2_state(bs)->data_file);
        }
        if (ret == 0) {
            c->depends_on_flush = false;
        }
    }
    if (ret < 0) {
        return ret;
    }
    ret = bfile_pwrite(meta_file(bs), (int64_t)e->offset, table_addr(c, i), c->table_size);
    if (ret < 0) {
        return ret;
    }
    e->dirty = false;
    return 0;
}

int qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c)
{
    int result = 0;
    for (int i = 0; i < c->size; i++) {
        int ret = entry_flush(bs, c, i);
        if (ret < 0 && result != -ENOSPC) {
            result = ret;
        }
    }
    return result;
}

int qcow2_cache_flush(BlockDriverState *bs, Qcow2Cache *c)
{
    int result = qcow2_cache_write(bs, c);
    if (result == 0) {
        result = bfile_flush(meta_file(bs));
    }
    return result;
}

int qcow2_cache_set_dependency(BlockDriverState *bs, Qcow2Cache *c, Qcow2Cache *dependency)
{
    int ret;
    /* Dependencies never chain: resolve the other side's first. */
    if (dependency->depends) {
        ret = cache_flush_dependency(bs, dependency);
        if (ret < 0) {
            return ret;
        }
    }
    if (c->depends && c->depends != dependency) {
        ret = cache_flush_dependency(bs, c);
        if (ret < 0) {
            return ret;
        }
    }
    c->depends = dependency;
    return 0;
}

void qcow2_cache_depends_on_flush(Qcow2Cache *c)
{
    c->depends_on_flush = true;
}

int qcow2_cache_empty(BlockDriverState *bs, Qcow2Cache *c)
{
    int ret = qcow2_cache_flush(bs, c);
    if (ret < 0) {
        return ret;
    }
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].ref == 0) {
            c->entries[i].offset = 0;
            c->entries[i].lru = 0;
        }
    }
    return 0;
}

static int cache_find(Qcow2Cache *c, uint64_t offset, uint32_t cluster_bits)
{
    int start = (int)((offset >> cluster_bits) % (uint64_t)c->size);
    int i = start;
    do {
        if (c->entries[i].offset == offset) {
            return i;
        }
        if (++i == c->size) {
            i = 0;
        }
    } while (i != start);
    return -1;
}

static int cache_victim(Qcow2Cache *c)
{
    int best = -1;
    uint64_t best_lru = UINT64_MAX;
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].ref) {
            continue;
        }
        if (!c->entries[i].offset) {
            return i;
        }
        if (c->entries[i].lru < best_lru) {
            best_lru = c->entries[i].lru;
            best = i;
        }
    }
    return best;
}

static int cache_do_get(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset, void **table,
                        bool read_from_disk)
{
    BDRVQcow2State *s = qcow2_state(bs);
    if (offset == 0 || !IS_ALIGNED(offset, c->table_size)) {
        return qcow2_signal_corruption(
            bs, true, (int64_t)offset, c->table_size,
            "Cannot get entry from %s cache: offset %#" PRIx64 " is unaligned",
            c == s->l2_table_cache ? "L2 table" : "refcount block", offset);
    }
    int i = cache_find(c, offset, (uint32_t)s->cluster_bits);
    if (i < 0) {
        i = cache_victim(c);
        if (i < 0) {
            return -ENOSPC; /* every entry pinned: a caller leaks references */
        }
        int ret = entry_flush(bs, c, i);
        if (ret < 0) {
            return ret;
        }
        c->entries[i].offset = 0;
        if (read_from_disk) {
            ret = bfile_pread(meta_file(bs), (int64_t)offset, table_addr(c, i), c->table_size);
            if (ret < 0) {
                return ret;
            }
        }
        c->entries[i].offset = offset;
    }
    c->entries[i].ref++;
    c->entries[i].lru = ++c->lru_counter;
    *table = table_addr(c, i);
    return 0;
}

int qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset, void **table)
{
    return cache_do_get(bs, c, offset, table, true);
}

int qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset, void **table)
{
    return cache_do_get(bs, c, offset, table, false);
}

static int table_index(Qcow2Cache *c, const void *table)
{
    ptrdiff_t d = (const uint8_t *)table - c->tables;
    return (int)(d / (ptrdiff_t)c->table_size);
}

void qcow2_cache_put(Qcow2Cache *c, void **table)
{
    int i = table_index(c, *table);
    if (c->entries[i].ref > 0) {
        c->entries[i].ref--;
    }
    *table = NULL;
}

void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table)
{
    c->entries[table_index(c, table)].dirty = true;
}

void qcow2_cache_discard_offset(Qcow2Cache *c, uint64_t offset)
{
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].offset == offset && c->entries[i].ref == 0) {
            c->entries[i].offset = 0;
            c->entries[i].dirty = false;
            c->entries[i].lru = 0;
        }
    }
}

bool qcow2_cache_is_dirty(Qcow2Cache *c)
{
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].dirty) {
            return true;
        }
    }
    return false;
}
