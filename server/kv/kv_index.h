/* server/kv/kv_index.h - an ordered index beside the key-value map: a B-tree of opaque item
 * pointers sorted by their keys in plain byte order (memcmp on the common length, then the
 * shorter key first; keys may hold any byte, 0 and 0xff included, and may be empty). It
 * serves ordered scans: a seek costs O(log n), each next item O(1) amortized. The index
 * owns its nodes only, never the items; each item's key must stay unchanged while the item
 * is indexed. No I/O, no threads: callers serialize access. */
#ifndef RK_KV_INDEX_H
#define RK_KV_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sets *key and *key_len to the key of item. Must not change the index. */
typedef void (*kv_index_key_fn)(const void *item, const char **key, uint32_t *key_len);

struct kv_index;
struct kv_index_node;

/* The deepest a tree can be: every node but the root holds at least 10 items and every
 * inner one but the root at least 11 children (kv_index.c), so a tree of height 20 would
 * hold at least 2 * 11^18 * 10 > 2^66 items. */
#define KV_INDEX_MAX_DEPTH 19

/* A position in the index, kept by the caller (on the stack, say): the path from the root
 * to the next item, a (node, position) pair per level. Filled by kv_index_seek, advanced by
 * kv_index_next. Any kv_index_insert or kv_index_remove invalidates every iterator of the
 * index; seek again (after the last key returned) to go on. */
struct kv_index_iter {
    const struct kv_index_node *nodes[KV_INDEX_MAX_DEPTH];
    uint16_t positions[KV_INDEX_MAX_DEPTH];
    int depth;  /* levels in use; 0 once past the last item */
};

/* An empty index whose items' keys key_of gives. NULL when out of memory. */
struct kv_index *kv_index_new(kv_index_key_fn key_of);
/* Frees the index and its nodes, not the items. ix may be NULL. */
void kv_index_free(struct kv_index *ix);

/* Adds item at its key's place. RK_OK; RK_ERR_EXISTS when an item with an equal key is
 * indexed already; RK_ERR_NOMEM. On an error the index is unchanged. */
int kv_index_insert(struct kv_index *ix, const void *item);
/* Removes the item whose key is key[0..key_len). True if there was one. Never allocates. */
bool kv_index_remove(struct kv_index *ix, const char *key, uint32_t key_len);
/* The item whose key is key[0..key_len), or NULL. */
const void *kv_index_find(const struct kv_index *ix, const char *key, uint32_t key_len);

/* Positions *it before the first item whose key is >= key[0..key_len), or > it when after
 * is true. An empty key with after false positions before the first item of all. */
void kv_index_seek(const struct kv_index *ix, const char *key, uint32_t key_len, bool after,
                   struct kv_index_iter *it);
/* The item at *it, moving *it past it; NULL at the end (and from then on). Items come in
 * ascending key order. */
const void *kv_index_next(struct kv_index_iter *it);

/* How many items are indexed. */
size_t kv_index_count(const struct kv_index *ix);
/* Bytes the tree's nodes occupy as allocated (sizes asked of malloc; not its overhead, not
 * the struct kv_index itself, not the items): 0 for an empty index. */
size_t kv_index_bytes(const struct kv_index *ix);

#endif
