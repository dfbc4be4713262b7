/*
 * util/crc32c.c: CRC-32C, slicing-by-8 in portable C (the same code on amd64 and arm64).
 * Hand-written because zlib only has CRC-32 (IEEE) and pulling in a library for 40 lines would
 * grow the static binary; CRC-32C is what the spool format names (better error detection, and
 * hardware-accelerated on both targets should it ever be needed). Tables are built once, lazily.
 */
#include "util/crc32c.h"

static uint32_t table[8][256];
static int table_ready;

static void build_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
    table_ready = 1;
}

uint32_t ea_crc32c(uint32_t crc, const void *buf, size_t len)
{
    if (!table_ready)
        build_tables();
    const unsigned char *p = buf;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
              table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}
