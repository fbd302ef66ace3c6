/* common/hash.h - 64-bit FNV-1a over bytes: the key-value map's buckets (server/kv/kv.c)
 * and the watched prefixes (server/node/watch_index.c). */
#ifndef RK_HASH_H
#define RK_HASH_H

#include <stdint.h>

static inline uint64_t rk_hash_bytes(const char *p, uint32_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (uint32_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#endif
