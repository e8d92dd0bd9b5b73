/*
 * vhdx_log.c — the VHDX metadata log ([MS-VHDX] section 2.3): finding the
 * active sequence of log entries and replaying it on open.
 *
 * The log is a circular buffer of 4 KiB sectors at the current header's
 * LogOffset.  An entry is a header sector (64-byte header, then 32-byte
 * descriptors, continuing into more sectors when needed) followed by one
 * data sector per data descriptor.  An entry is valid when its signature,
 * length (4 KiB multiple, within the log), non-zero sequence number, log
 * GUID (the header's), CRC-32C over the whole entry, descriptors and data
 * sectors all check.  A sequence is a run of valid entries whose sequence
 * numbers increase by one; the active sequence is the one ending with the
 * highest number.  Replaying writes each data sector (8 leading bytes and 4
 * trailing bytes come from its descriptor) and each zero range, extends
 * the file to the entry's LastFileOffset, then empties the log by clearing
 * the header's log GUID.
 *
 * As qemu: a log to replay on a read-only open is refused with its EPERM
 * message ("qemu-img check -r all" replays it).  Beyond qemu, replay never
 * writes into the file identifier, the headers or the log itself, an entry
 * is at most 32 MiB, and the log must lie inside the file.
 *
 * Design notes:
 *  1. Scanning is linear: a position inside a found sequence is never a
 *     start candidate again (as qemu's search does).
 *  2. Everything is validated before the first byte is written, so a bad
 *     entry in the middle of a sequence leaves the file untouched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "formats/crc32c.h"
#include "formats/vhdx.h"

typedef struct LogEntry {
    uint64_t pos; /* byte position inside the log */
    uint32_t length;
    uint64_t sequence;
    uint32_t desc_count;
    uint64_t flushed_file_offset;
    uint64_t last_file_offset;
    uint8_t *buf; /* the whole entry (length bytes) */
} LogEntry;

typedef struct LogScan {
    uint64_t offset; /* of the log in the file */
    uint32_t length;
    VhdxGuid guid;
} LogScan;

/* Read len bytes at log position pos, wrapping around the end. */
static int log_read(BlockDriverState *bs, const LogScan *ls, uint64_t pos, uint8_t *buf,
                    uint64_t len)
{
    while (len > 0) {
        pos %= ls->length;
        uint64_t n = MIN(len, ls->length - pos);
        int ret = bfile_pread(bs->file, (int64_t)(ls->offset + pos), buf, n);
        if (ret < 0) {
            return ret;
        }
        buf += n;
        pos += n;
        len -= n;
    }
    return 0;
}

static uint32_t desc_sectors(uint32_t count)
{
    return (uint32_t)DIV_ROUND_UP((uint64_t)count * VHDX_LOG_DESC_SIZE + VHDX_LOG_HDR_SIZE,
                                  VHDX_LOG_SECTOR_SIZE);
}

/* Descriptors and data sectors of a loaded entry. */
static bool entry_body_valid(const LogEntry *e)
{
    uint32_t dsec = desc_sectors(e->desc_count);
    uint64_t data_sectors = e->length / VHDX_LOG_SECTOR_SIZE - dsec;
    uint64_t used = 0;
    for (uint32_t i = 0; i < e->desc_count; i++) {
        const uint8_t *d = e->buf + VHDX_LOG_HDR_SIZE + (size_t)i * VHDX_LOG_DESC_SIZE;
        uint32_t sig = ld32_le(d);
        if (ld64_le(d + 24) != e->sequence || ld64_le(d + 16) % VHDX_LOG_SECTOR_SIZE) {
            return false;
        }
        if (sig == VHDX_LOG_ZERO_SIGNATURE) {
            if (ld64_le(d + 8) % VHDX_LOG_SECTOR_SIZE) {
                return false;
            }
        } else if (sig == VHDX_LOG_DESC_SIGNATURE) {
            if (used >= data_sectors) {
                return false;
            }
            const uint8_t *ds = e->buf + (size_t)(dsec + used) * VHDX_LOG_SECTOR_SIZE;
            uint64_t seq = (uint64_t)ld32_le(ds + 4) << 32 | ld32_le(ds + 4092);
            if (ld32_le(ds) != VHDX_LOG_DATA_SIGNATURE || seq != e->sequence) {
                return false;
            }
            used++;
        } else {
            return false;
        }
    }
    return true;
}

/* Load and validate the entry at pos (0: not an entry, 1: valid, <0 error). */
static int load_entry(BlockDriverState *bs, const LogScan *ls, uint64_t pos, LogEntry *e)
{
    uint8_t h[VHDX_LOG_HDR_SIZE];
    memset(e, 0, sizeof(*e));
    int ret = log_read(bs, ls, pos, h, sizeof(h));
    if (ret < 0) {
        return ret;
    }
    e->pos = pos;
    e->length = ld32_le(h + 8);
    e->sequence = ld64_le(h + 16);
    e->desc_count = ld32_le(h + 24);
    e->flushed_file_offset = ld64_le(h + 48);
    e->last_file_offset = ld64_le(h + 56);
    if (ld32_le(h) != VHDX_LOG_SIGNATURE || e->length == 0 || e->length > ls->length ||
        e->length % VHDX_LOG_SECTOR_SIZE || e->length > VHDX_MAX_LOG_ENTRY || e->sequence == 0 ||
        memcmp(h + 32, ls->guid.b, 16) ||
        (uint64_t)desc_sectors(e->desc_count) * VHDX_LOG_SECTOR_SIZE > e->length) {
        return 0;
    }
    e->buf = xmalloc(e->length);
    ret = log_read(bs, ls, pos, e->buf, e->length);
    if (ret < 0 || ld32_le(e->buf + 4) != crc32c_with_hole(e->buf, e->length, 4) ||
        !entry_body_valid(e)) {
        free(e->buf);
        e->buf = NULL;
        return ret < 0 ? ret : 0;
    }
    return 1;
}

static void free_entries(LogEntry *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].buf);
    }
    free(v);
}

/* The run of valid entries starting at pos (*n entries; 0 if none). */
static int load_sequence(BlockDriverState *bs, const LogScan *ls, uint64_t pos, LogEntry **out,
                         int *n)
{
    LogEntry *v = NULL;
    int count = 0;
    uint64_t walked = 0;
    for (;;) {
        LogEntry e;
        int r = load_entry(bs, ls, pos, &e);
        if (r < 0) {
            free_entries(v, count);
            return r;
        }
        if (r == 0 || (count && e.sequence != v[count - 1].sequence + 1) ||
            walked + e.length > ls->length) {
            free(e.buf);
            break;
        }
        v = xrealloc(v, sizeof(LogEntry) * (size_t)(count + 1));
        v[count++] = e;
        walked += e.length;
        pos = (pos + e.length) % ls->length;
    }
    *out = v;
    *n = count;
    return 0;
}

/* Scan the whole log; keep the sequence ending with the highest number. */
static int find_active(BlockDriverState *bs, const LogScan *ls, LogEntry **best, int *nbest)
{
    *best = NULL;
    *nbest = 0;
    for (uint64_t pos = 0; pos < ls->length;) {
        LogEntry *v;
        int n;
        int ret = load_sequence(bs, ls, pos, &v, &n);
        if (ret < 0) {
            free_entries(*best, *nbest);
            return ret;
        }
        if (n == 0) {
            pos += VHDX_LOG_SECTOR_SIZE;
            continue;
        }
        uint64_t span = 0;
        for (int i = 0; i < n; i++) {
            span += v[i].length;
        }
        if (!*nbest || v[n - 1].sequence > (*best)[*nbest - 1].sequence) {
            free_entries(*best, *nbest);
            *best = v;
            *nbest = n;
        } else {
            free_entries(v, n);
        }
        pos += span;
    }
    return 0;
}

/* Where replay may write: past the headers, outside the log. */
static bool target_ok(const LogScan *ls, uint64_t off, uint64_t len, uint64_t limit)
{
    uint64_t end;
    if (ADD_OVERFLOW(off, len, &end) || off < VHDX_REGION_TABLE_OFFSET || end > limit) {
        return false;
    }
    return end <= ls->offset || off >= ls->offset + ls->length;
}

static int check_targets(const LogScan *ls, const LogEntry *v, int n, int64_t flen, Error **errp)
{
    for (int k = 0; k < n; k++) {
        const LogEntry *e = &v[k];
        if (e->flushed_file_offset > (uint64_t)flen ||
            e->last_file_offset > (uint64_t)flen + 256 * MiB) {
            error_setg(errp,
                       "Invalid VHDX image: log entry %" PRIu64
                       " refers past the end of the file (truncated image?)",
                       e->sequence);
            return -EINVAL;
        }
        uint64_t limit = MAX((uint64_t)flen, e->last_file_offset);
        for (uint32_t i = 0; i < e->desc_count; i++) {
            const uint8_t *d = e->buf + VHDX_LOG_HDR_SIZE + (size_t)i * VHDX_LOG_DESC_SIZE;
            bool zero = ld32_le(d) == VHDX_LOG_ZERO_SIGNATURE;
            uint64_t len = zero ? ld64_le(d + 8) : VHDX_LOG_SECTOR_SIZE;
            if (!target_ok(ls, ld64_le(d + 16), len, limit)) {
                error_setg(errp,
                           "Invalid VHDX image: log entry %" PRIu64
                           " writes outside the image data and metadata",
                           e->sequence);
                return -EINVAL;
            }
        }
    }
    return 0;
}

static int replay_entry(BlockDriverState *bs, const LogEntry *e)
{
    uint32_t dsec = desc_sectors(e->desc_count);
    uint32_t data_idx = 0;
    uint8_t sector[VHDX_LOG_SECTOR_SIZE];
    int ret = 0;
    for (uint32_t i = 0; ret == 0 && i < e->desc_count; i++) {
        const uint8_t *d = e->buf + VHDX_LOG_HDR_SIZE + (size_t)i * VHDX_LOG_DESC_SIZE;
        int64_t off = (int64_t)ld64_le(d + 16);
        if (ld32_le(d) == VHDX_LOG_ZERO_SIGNATURE) {
            ret = bfile_write_zeroes(bs->file, off, (int64_t)ld64_le(d + 8), false);
            continue;
        }
        const uint8_t *ds = e->buf + (size_t)(dsec + data_idx++) * VHDX_LOG_SECTOR_SIZE;
        memcpy(sector, d + 8, 8);         /* leading bytes */
        memcpy(sector + 8, ds + 8, 4084); /* the data sector's middle */
        memcpy(sector + 4092, d + 4, 4);  /* trailing bytes */
        ret = bfile_pwrite(bs->file, off, sector, sizeof(sector));
    }
    int64_t flen = bfile_getlength(bs->file);
    if (ret == 0 && flen >= 0 && (uint64_t)flen < e->last_file_offset) {
        ret = bfile_truncate(bs->file, (int64_t)ROUND_UP(e->last_file_offset, (uint64_t)MiB),
                             PREALLOC_OFF, NULL);
    }
    return ret;
}

static int validate_log_location(const VhdxHeader *h, int64_t flen, Error **errp)
{
    if (h->log_offset < VHDX_HEADER_SECTION_END || h->log_offset % VHDX_HEADER_SECTION_END ||
        h->log_version != 0 || h->log_length % VHDX_HEADER_SECTION_END) {
        error_setg(errp, "Invalid VHDX image: bad log location or version");
        return -EINVAL;
    }
    if (h->log_offset + h->log_length > (uint64_t)flen) {
        error_setg(errp, "Invalid VHDX image: log beyond the end of the file");
        return -EINVAL;
    }
    return 0;
}

int vhdx_log_replay(BlockDriverState *bs, bool *replayed, Error **errp)
{
    BDRVVhdxState *s = bs->opaque;
    const VhdxHeader *h = &s->headers[s->curr_header];
    static const VhdxGuid zero_guid;
    *replayed = false;
    int64_t flen = bfile_getlength(bs->file);
    if (flen < 0) {
        error_setg_errno(errp, (int)-flen, "Could not get image size");
        return (int)flen;
    }
    if (!memcmp(h->log_guid.b, zero_guid.b, 16) || h->log_length == 0) {
        /* no log to replay; still refuse a log region that makes no sense */
        if (h->log_offset < VHDX_HEADER_SECTION_END || h->log_offset % MiB || h->log_version) {
            error_setg(errp, "Invalid VHDX image: bad log location or version");
            return -EINVAL;
        }
        return 0;
    }
    int ret = validate_log_location(h, flen, errp);
    if (ret < 0) {
        return ret;
    }
    LogScan ls = {.offset = h->log_offset, .length = h->log_length, .guid = h->log_guid};
    LogEntry *v;
    int n;
    if ((ret = find_active(bs, &ls, &v, &n)) < 0) {
        error_setg_errno(errp, -ret, "Could not read the VHDX log");
        return ret;
    }
    if (n == 0) {
        return 0;
    }
    if (bs->read_only) {
        error_setg(errp,
                   "VHDX image file '%s' opened read-only, but contains a log that needs to be "
                   "replayed\nTo replay the log, run:\nqemu-img check -r all '%s'",
                   bs->filename, bs->filename);
        free_entries(v, n);
        return -EPERM;
    }
    ret = check_targets(&ls, v, n, flen, errp);
    for (int i = 0; ret == 0 && i < n; i++) {
        ret = replay_entry(bs, &v[i]);
    }
    free_entries(v, n);
    if (ret == 0) {
        ret = bfile_flush(bs->file);
    }
    if (ret == 0) {
        s->first_visible_write_done = true;
        ret = vhdx_update_headers(bs, true, &zero_guid);
    }
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not replay the VHDX log");
    }
    *replayed = ret == 0;
    return ret;
}
