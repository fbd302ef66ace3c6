/* common/crc32.c - CRC-32 (reflected polynomial 0xEDB88320, as in zlib) for log lines,
 * state files and snapshots, eight bytes per step ("slicing-by-8": eight 256-entry
 * tables, each a byte further along, so eight lookups replace eight dependent ones). */
#include "crc32.h"

#include <pthread.h>

#define CRC32_POLY 0xEDB88320u

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 1u) ? CRC32_POLY ^ (c >> 1) : c >> 1;
        crc_table[0][n] = c;
    }
    /* crc_table[k][n]: the CRC of byte n followed by k zero bytes. */
    for (int k = 1; k < 8; k++)
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t prev = crc_table[k - 1][n];
            crc_table[k][n] = (prev >> 8) ^ crc_table[0][prev & 0xFFu];
        }
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint32_t crc32_update(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    pthread_once(&crc_table_once, crc_table_build);
    crc = ~crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint32_t lo = load_le32(p) ^ crc;
        uint32_t hi = load_le32(p + 4);
        crc = crc_table[7][lo & 0xFFu] ^ crc_table[6][(lo >> 8) & 0xFFu] ^
              crc_table[5][(lo >> 16) & 0xFFu] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xFFu] ^ crc_table[2][(hi >> 8) & 0xFFu] ^
              crc_table[1][(hi >> 16) & 0xFFu] ^ crc_table[0][hi >> 24];
    }
    for (; len > 0; p++, len--)
        crc = crc_table[0][(crc ^ *p) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}
