/* common/bytes.h - big-endian (network order) integers in byte buffers: the wire
 * protocol, the snapshot file and the state machine's image all use these. */
#ifndef RK_BYTES_H
#define RK_BYTES_H

#include <stdint.h>

/* Writes the low `bytes` bytes of v (1..8) at p, most significant first. */
static inline void rk_put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xFFu);
        v >>= 8;
    }
}

/* Reads a `bytes`-byte (1..8) big-endian integer at p. */
static inline uint64_t rk_get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static inline uint32_t rk_get_be32(const uint8_t *p)
{
    return (uint32_t)rk_get_be(p, 4);
}

#endif
