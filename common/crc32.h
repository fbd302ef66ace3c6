/* common/crc32.h - CRC-32 (IEEE 802.3, the zlib polynomial) for log lines and state files. */
#ifndef RK_CRC32_H
#define RK_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* crc32_update(0, buf, len) is the CRC of buf; pass a previous result to continue. */
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);

#endif
