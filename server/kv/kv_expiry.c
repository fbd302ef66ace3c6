/* server/kv/kv_expiry.c - keys with a deadline (setex, expire, cas --ttl): the replicated
 * part (a time to live and the entry that set it) and this server's own deadline on its
 * clock, a binary min-heap of the keys by deadline, the EXPIRED entry that a leader
 * proposes for the keys whose deadline passed, and its application.
 *
 * Why this shape (docs/architecture.md, "Expiring keys"): servers' clocks are not
 * comparable, so no deadline is ever replicated as a time. Each server counts a key's time
 * to live from when it applied the entry that set it (or loaded the key from a snapshot)
 * on its own elapsed clock. Only the leader acts on its count: it proposes an EXPIRED entry
 * naming each due key with the index of the entry that set its deadline, and every server
 * deletes, at that entry, exactly the listed keys whose deadline that entry still is. A key
 * written or given a new deadline meanwhile stays. As a leader applies a write only after
 * it accepted it, a key never goes before its time to live on that leader's clock; a new
 * leader counts from when it learned the key, so a key may live longer, never shorter. */
#include <stdlib.h>
#include <string.h>

#include "../../common/bytes.h"
#include "../../common/errors.h"
#include "../../common/grow.h"
#include "kv_internal.h"

#define RECORD_FIXED_BYTES 12u /* u32 key_len | key | u64 set_index */

/* ---------- the heap, by deadline_ms ---------- */

static uint64_t deadline_at(const struct kv *kv, size_t i)
{
    return kv->heap[i]->ttl->deadline_ms;
}

static void heap_place(struct kv *kv, size_t i, struct kv_node *n)
{
    kv->heap[i] = n;
    n->ttl->heap_pos = i;
}

static void sift_up(struct kv *kv, size_t i)
{
    struct kv_node *n = kv->heap[i];
    while (i > 0 && deadline_at(kv, (i - 1) / 2) > n->ttl->deadline_ms) {
        heap_place(kv, i, kv->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(kv, i, n);
}

static void sift_down(struct kv *kv, size_t i)
{
    struct kv_node *n = kv->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= kv->heap_len)
            break;
        if (child + 1 < kv->heap_len && deadline_at(kv, child + 1) < deadline_at(kv, child))
            child++;
        if (deadline_at(kv, child) >= n->ttl->deadline_ms)
            break;
        heap_place(kv, i, kv->heap[child]);
        i = child;
    }
    heap_place(kv, i, n);
}

static void heap_remove(struct kv *kv, struct kv_node *n)
{
    size_t i = n->ttl->heap_pos;
    struct kv_node *last = kv->heap[--kv->heap_len];
    if (last == n)
        return;
    heap_place(kv, i, last);
    sift_up(kv, i);
    sift_down(kv, last->ttl->heap_pos);
}

/* ---------- a key's deadline ---------- */

int kv_ttl_set(struct kv *kv, struct kv_node *n, uint64_t ttl_ms, uint64_t set_index)
{
    if (n->ttl == NULL) {
        if (rk_grow(&kv->heap, &kv->heap_cap, kv->heap_len + 1, sizeof(*kv->heap), 64) != RK_OK)
            return RK_ERR_NOMEM;
        n->ttl = malloc(sizeof(*n->ttl));
        if (n->ttl == NULL)
            return RK_ERR_NOMEM;
        heap_place(kv, kv->heap_len++, n);
    }
    n->ttl->ttl_ms = ttl_ms;
    n->ttl->set_index = set_index;
    n->ttl->deadline_ms = ttl_ms > UINT64_MAX - kv->now_ms ? UINT64_MAX : kv->now_ms + ttl_ms;
    sift_up(kv, n->ttl->heap_pos);
    sift_down(kv, n->ttl->heap_pos);
    return RK_OK;
}

void kv_ttl_clear(struct kv *kv, struct kv_node *n)
{
    if (n->ttl == NULL)
        return;
    heap_remove(kv, n);
    free(n->ttl);
    n->ttl = NULL;
}

void kv_expiry_free(struct kv *kv)
{
    free(kv->heap);
    kv->heap = NULL;
    kv->heap_len = kv->heap_cap = 0;
}

/* Deadlines set before the clock was first given (keys loaded from a snapshot) counted
 * from 0: they now count from now_ms. Adding the same amount to all keeps the heap order. */
static void start_clock(struct kv *kv, uint64_t now_ms)
{
    for (size_t i = 0; i < kv->heap_len; i++) {
        struct kv_ttl *t = kv->heap[i]->ttl;
        t->deadline_ms = t->deadline_ms > UINT64_MAX - now_ms ? UINT64_MAX
                                                              : t->deadline_ms + now_ms;
    }
    kv->clock_set = true;
}

void kv_set_now(struct kv *kv, uint64_t now_ms)
{
    if (!kv->clock_set)
        start_clock(kv, now_ms);
    if (now_ms > kv->now_ms)
        kv->now_ms = now_ms;
}

uint64_t kv_next_deadline(const struct kv *kv)
{
    return kv->heap_len == 0 ? UINT64_MAX : deadline_at(kv, 0);
}

bool kv_ttl_left(const struct kv *kv, const char *key, uint32_t key_len, uint64_t *left_ms)
{
    const struct kv_node *n = kv_find(kv, key, key_len);
    if (n == NULL)
        return false;
    if (n->ttl == NULL)
        *left_ms = UINT64_MAX;
    else
        *left_ms = n->ttl->deadline_ms > kv->now_ms ? n->ttl->deadline_ms - kv->now_ms : 0;
    return true;
}

bool kv_ttl_get(const struct kv *kv, const char *key, uint32_t key_len, uint64_t *ttl_ms,
                uint64_t *set_index)
{
    const struct kv_node *n = kv_find(kv, key, key_len);
    if (n == NULL || n->ttl == NULL)
        return false;
    *ttl_ms = n->ttl->ttl_ms;
    *set_index = n->ttl->set_index;
    return true;
}

size_t kv_ttl_count(const struct kv *kv)
{
    return kv->heap_len;
}

/* ---------- the EXPIRED entry ---------- */

static size_t record_bytes(const struct kv_node *n)
{
    return RECORD_FIXED_BYTES + n->key_len;
}

static void put_record(char *out, const struct kv_node *n)
{
    rk_put_be((uint8_t *)out, n->key_len, 4);
    memcpy(out + 4, n->key, n->key_len);
    rk_put_be((uint8_t *)out + 4 + n->key_len, n->ttl->set_index, 8);
}

/* The due keys form a subtree at the heap's root (a parent is never due later than its
 * children): a walk of it, with a stack of heap positions, visits each due key once. */
static size_t collect_due(const struct kv *kv, uint64_t now_ms, uint32_t max_keys,
                          uint32_t max_bytes, size_t *stack, char *out, uint32_t *n_keys)
{
    size_t depth = 0, len = 0;
    if (kv->heap_len > 0 && deadline_at(kv, 0) <= now_ms)
        stack[depth++] = 0;
    *n_keys = 0;
    while (depth > 0 && *n_keys < max_keys) {
        size_t i = stack[--depth];
        const struct kv_node *n = kv->heap[i];
        if (*n_keys > 0 && len + record_bytes(n) > max_bytes)
            break;
        put_record(out + len, n);
        len += record_bytes(n);
        (*n_keys)++;
        for (size_t c = 2 * i + 1; c <= 2 * i + 2 && c < kv->heap_len; c++)
            if (deadline_at(kv, c) <= now_ms)
                stack[depth++] = c;
    }
    return len;
}

int kv_expiry_batch(const struct kv *kv, uint64_t now_ms, uint32_t max_keys,
                    uint32_t max_bytes, char **list, uint32_t *len, uint32_t *n_keys)
{
    *list = NULL;
    *len = 0;
    *n_keys = 0;
    if (max_keys == 0 || kv->heap_len == 0 || deadline_at(kv, 0) > now_ms)
        return RK_OK;
    size_t first = record_bytes(kv->heap[0]); /* the first record goes in whatever its size */
    size_t cap = first > max_bytes ? first : max_bytes;
    size_t *stack = malloc(((size_t)max_keys + 2) * sizeof(*stack));
    char *out = malloc(cap);
    if (stack == NULL || out == NULL) {
        free(stack);
        free(out);
        return RK_ERR_NOMEM;
    }
    *len = (uint32_t)collect_due(kv, now_ms, max_keys, max_bytes, stack, out, n_keys);
    free(stack);
    *list = out;
    return RK_OK;
}

uint64_t kv_expiry_apply(struct kv *kv, raft_index_t index, const char *list, uint32_t len)
{
    uint64_t deleted = 0;
    uint32_t pos = 0;
    while (len - pos >= RECORD_FIXED_BYTES) {
        uint32_t key_len = rk_get_be32((const uint8_t *)list + pos);
        if (key_len > len - pos - RECORD_FIXED_BYTES)
            break; /* malformed: the rest is ignored, the same way everywhere */
        const char *key = list + pos + 4;
        uint64_t set_index = rk_get_be((const uint8_t *)key + key_len, 8);
        const struct kv_node *n = kv_find(kv, key, key_len);
        if (n != NULL && n->ttl != NULL && n->ttl->set_index == set_index &&
            kv_delete(kv, key, key_len)) {
            kv_emit(kv, index, KV_EVENT_EXPIRE, key, key_len, "", 0);
            deleted++;
        }
        pos += RECORD_FIXED_BYTES + key_len;
    }
    return deleted;
}
