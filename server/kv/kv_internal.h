/* server/kv/kv_internal.h - the layout of the key-value map, shared by kv.c (the map and
 * kv_apply) and kv_image.c (snapshot serialization). Not for other modules. */
#ifndef RK_KV_INTERNAL_H
#define RK_KV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "kv_index.h"
#include "sessions.h"

struct kv_node {
    struct kv_node *next;
    uint64_t hash;
    uint64_t rev;       /* the revision (log index) of the key's last change */
    char *val;          /* val_len bytes + a NUL, its own allocation */
    uint32_t val_len;
    uint32_t key_len;
    char key[];         /* key_len bytes + a NUL */
};

struct kv {
    struct kv_node **buckets;
    struct kv_index *index; /* the same nodes in key order, for scans (kv_index.h) */
    size_t n_buckets;   /* a power of two */
    size_t count;
    struct kv_sessions *sessions;
    raft_index_t last_applied;
    uint64_t rev;        /* the revision of the last change to any key (0: none yet) */
    uint64_t result_rev; /* what goes with the last kv_apply's result (kv_result_rev) */
};

/* kv_set, recording rev as the key's revision (kv_image_read restores them so). */
int kv_set_at(struct kv *kv, const char *key, uint32_t key_len, const char *val,
              uint32_t val_len, uint64_t rev);

#endif
