/* server/kv/kv_image.h - the key-value state as a byte stream, for snapshots (Raft paper
 * §7): the last applied index, every pair and every client session (Raft thesis §6.3).
 * Layout (integers big-endian; version 4: with revisions and deadlines):
 *   u64 last_applied | u64 rev (the last change's) | u64 n_pairs
 *   | n_pairs x (u32 key_len | u32 val_len | u64 rev | u64 ttl_ms | u64 ttl_index
 *                | key | value)    (ttl_index: the entry that set the key's deadline, 0:
 *                                   none; version 3 had neither field)
 *   | u32 max_sessions | u32 n_sessions
 *   | n_sessions x (u64 id | u64 last_seq | u64 last_use | u8 last_result | u64 last_rev),
 *     least recently used first (so reading them back rebuilds the same expiry order). */
#ifndef RK_KV_IMAGE_H
#define RK_KV_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#define KV_IMAGE_VERSION 4u

/* Where an image goes: write all len bytes; 0, or non-zero to stop (returned as is). */
typedef int (*kv_image_put_fn)(void *ctx, const void *data, size_t len);
/* Where an image comes from: fill exactly len bytes; RK_OK or an RK_ERR_* code. */
typedef int (*kv_image_get_fn)(void *ctx, void *buf, size_t len);

/* Streams the image through put. Allocates nothing and calls nothing but put, so a
 * forked child of a threaded process may run it (with an async-signal-safe put).
 * Returns 0 or put's first non-zero result. */
int kv_image_write(const struct kv *kv, kv_image_put_fn put, void *ctx);
/* The number of bytes kv_image_write produces. */
uint64_t kv_image_size(const struct kv *kv);
/* Builds a new map from an image of version 3 or KV_IMAGE_VERSION (else RK_ERR_INVAL) of
 * exactly len bytes read through get. Deadlines count from the map's first kv_set_now.
 * A malformed image
 * is RK_ERR_CORRUPT with "image byte N: reason" in err (N counted from the image's
 * start); get's errors are passed on. *out is set only on RK_OK. */
int kv_image_read(struct kv **out, uint32_t version, uint64_t len, kv_image_get_fn get,
                  void *ctx, char *err, size_t errlen);

/* Calls fn for every pair, in no particular order, until it returns non-zero (which is
 * then returned). */
typedef int (*kv_pair_fn)(void *ctx, const char *key, uint32_t key_len, const char *val,
                          uint32_t val_len);
int kv_visit_pairs(const struct kv *kv, kv_pair_fn fn, void *ctx);
/* The same for the client sessions, least recently used first. */
typedef int (*kv_session_fn)(void *ctx, uint64_t client_id, const struct kv_session_info *s);
int kv_visit_sessions(const struct kv *kv, kv_session_fn fn, void *ctx);

#endif
