/* util/crc32c.h: CRC-32C (Castagnoli), the checksum of every spool record. */
#ifndef EA_UTIL_CRC32C_H
#define EA_UTIL_CRC32C_H
#include <stddef.h>
#include <stdint.h>
/* Continues crc over buf; start with crc = 0. crc32c("123456789") == 0xE3069283. */
uint32_t ea_crc32c(uint32_t crc, const void *buf, size_t len);
#endif
