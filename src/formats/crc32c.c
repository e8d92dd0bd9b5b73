/*
 * crc32c.c — CRC-32C, slicing-by-8 over tables built once at first use.
 *
 * VHDX checksums cover at most a few 64 KiB blocks per open plus every log
 * entry on replay, so a portable table implementation is fast enough; no
 * SSE4.2 dependency.
 */
#include "formats/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY_REFLECTED 0x82f63b78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
        }
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = table[t - 1][i];
            table[t][i] = (prev >> 8) ^ table[0][prev & 0xff];
        }
    }
}

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&table_once, build_tables);
    const uint8_t *p = buf;
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4); /* the host is little-endian, as util.h assumes */
        lo ^= crc;
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
              table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
              table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) {
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    }
    return crc;
}

uint32_t crc32c(const void *buf, size_t len)
{
    return crc32c_update(0xffffffffu, buf, len) ^ 0xffffffffu;
}

uint32_t crc32c_with_hole(const void *buf, size_t len, size_t crc_offset)
{
    static const uint8_t zero[4];
    const uint8_t *p = buf;
    if (crc_offset + 4 > len) {
        return crc32c(buf, len);
    }
    uint32_t crc = crc32c_update(0xffffffffu, p, crc_offset);
    crc = crc32c_update(crc, zero, 4);
    crc = crc32c_update(crc, p + crc_offset + 4, len - crc_offset - 4);
    return crc ^ 0xffffffffu;
}
