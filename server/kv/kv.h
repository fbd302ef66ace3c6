/* server/kv/kv.h - the key-value state machine: a hash map from byte-string keys to
 * byte-string values, changed only by applying committed log entries in order. */
#ifndef RK_KV_H
#define RK_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/raft_msg.h"

struct kv;

struct kv *kv_new(void);
void kv_free(struct kv *kv);
/* Copies key and value. RK_OK or RK_ERR_NOMEM. */
int kv_set(struct kv *kv, const char *key, uint32_t key_len, const char *val, uint32_t val_len);
/* Returns true if the key existed (and is now removed). */
bool kv_delete(struct kv *kv, const char *key, uint32_t key_len);
/* The value (valid until the next change), or NULL when absent. */
const char *kv_get(const struct kv *kv, const char *key, uint32_t key_len, uint32_t *val_len);
size_t kv_count(const struct kv *kv);

/* What applying one entry did: for SET always KV_APPLIED; for DELETE KV_APPLIED if the
 * key existed, else KV_ABSENT; for NOOP KV_APPLIED. RK_ERR_NOMEM on allocation failure. */
enum { KV_APPLIED = 1, KV_ABSENT = 2 };
int kv_apply(struct kv *kv, const struct raft_entry *e);

#endif
