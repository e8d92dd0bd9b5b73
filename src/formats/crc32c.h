/*
 * crc32c.h — CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the
 * checksum of the VHDX headers, region tables, metadata and log entries
 * ([MS-VHDX] section 2.2.2 and friends).
 */
#ifndef IMGPIPE_FORMATS_CRC32C_H
#define IMGPIPE_FORMATS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continue a CRC-32C over buf.  Start with crc = 0xffffffff and xor the
 * final value with 0xffffffff (crc32c() below does both).  Thread-safe.
 */
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);

/* The standard CRC-32C of buf ("123456789" -> 0xe3069283). */
uint32_t crc32c(const void *buf, size_t len);

/*
 * CRC-32C of buf with the 4 bytes at crc_offset taken as zero, as VHDX
 * checksums are computed (the field holding the checksum is zeroed).
 */
uint32_t crc32c_with_hole(const void *buf, size_t len, size_t crc_offset);

#endif
