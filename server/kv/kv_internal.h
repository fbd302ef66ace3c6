/* server/kv/kv_internal.h - the layout of the key-value map, shared by kv.c (the map and
 * kv_apply) and kv_image.c (snapshot serialization). Not for other modules. */
#ifndef RK_KV_INTERNAL_H
#define RK_KV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "kv_index.h"
#include "sessions.h"

/* A key's deadline (kv_expiry.c). ttl_ms and set_index are the replicated state, the
 * same on every server; deadline_ms is this server's own: its clock (elapsed time, not
 * wall time) when it applied the entry at set_index (or loaded the key), plus ttl_ms. */
struct kv_ttl {
    uint64_t ttl_ms;
    uint64_t set_index;   /* the SETEX, CAS_TTL or EXPIRE entry that set it */
    uint64_t deadline_ms;
    size_t heap_pos;      /* where the key is in kv->heap */
};

struct kv_node {
    struct kv_node *next;
    struct kv_ttl *ttl; /* NULL: no deadline */
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
    /* Deadlines (kv_expiry.c): a binary min-heap of the keys that have one, by
     * deadline_ms, and this server's clock as last given by kv_set_now. */
    struct kv_node **heap;
    size_t heap_len, heap_cap;
    uint64_t now_ms;
    bool clock_set;      /* kv_set_now was called: deadlines count from its clock */
    kv_event_fn event_fn; /* told of every change kv_apply makes (NULL: nobody) */
    void *event_ctx;
};

/* Tells the event function, if any, of a change. */
void kv_emit(const struct kv *kv, uint64_t rev, enum kv_event_kind kind, const char *key,
             uint32_t key_len, const char *val, uint32_t val_len);

/* kv_set, recording rev as the key's revision (kv_image_read restores them so). */
int kv_set_at(struct kv *kv, const char *key, uint32_t key_len, const char *val,
              uint32_t val_len, uint64_t rev);
/* The node of key, or NULL. */
struct kv_node *kv_find(const struct kv *kv, const char *key, uint32_t key_len);

/* kv_expiry.c: gives n the deadline ttl_ms from now (kv->now_ms), set by the entry at
 * set_index, replacing any it had. RK_OK or RK_ERR_NOMEM (n unchanged). */
int kv_ttl_set(struct kv *kv, struct kv_node *n, uint64_t ttl_ms, uint64_t set_index);
/* Removes n's deadline, if it has one. */
void kv_ttl_clear(struct kv *kv, struct kv_node *n);
/* Frees the heap (the nodes' deadlines are freed with kv_ttl_clear or by kv_free). */
void kv_expiry_free(struct kv *kv);
/* Applies an EXPIRED entry's list at index: deletes each listed key whose deadline was
 * still set by the listed entry (an "expire" event each). Returns how many keys it deleted. A malformed list is
 * read up to its first bad record (every server reads it the same way). */
uint64_t kv_expiry_apply(struct kv *kv, raft_index_t index, const char *list, uint32_t len);

#endif
