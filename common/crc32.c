/* common/crc32.c - table-driven CRC-32 (reflected polynomial 0xEDB88320, as in zlib)
 * for log lines and state files. */
#include "crc32.h"

#include <pthread.h>

#define CRC32_POLY 0xEDB88320u

static uint32_t crc_table[256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 1u) ? CRC32_POLY ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

uint32_t crc32_update(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    pthread_once(&crc_table_once, crc_table_build);
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}
