/* server/kv/kv.h - the key-value state machine: a hash map from byte-string keys to
 * byte-string values plus the client sessions that make writes exactly-once (Raft thesis
 * §6.3), changed only by applying committed log entries in order. */
#ifndef RK_KV_H
#define RK_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/raft_msg.h"

struct kv;

/* Client sessions (Raft thesis §6.3): at most this many are kept; applying a REGISTER
 * when the table is full drops the least recently used one. Expiry must be decided the
 * same way on every server, so this is a compile-time constant, not a server option. */
#define KV_MAX_SESSIONS 4096u

/* A map with the KV_MAX_SESSIONS bound. NULL when out of memory. */
struct kv *kv_new(void);
/* The same with another bound (>= 1); for tests. */
struct kv *kv_new_with_max_sessions(uint32_t max_sessions);
void kv_free(struct kv *kv);
/* Copies key and value (the key's revision becomes 0: for tests). RK_OK or RK_ERR_NOMEM. */
int kv_set(struct kv *kv, const char *key, uint32_t key_len, const char *val, uint32_t val_len);
/* Returns true if the key existed (and is now removed). */
bool kv_delete(struct kv *kv, const char *key, uint32_t key_len);
/* The value (valid until the next change), or NULL when absent. */
const char *kv_get(const struct kv *kv, const char *key, uint32_t key_len, uint32_t *val_len);
/* The same, with the key's revision: the index of the entry that last changed it. */
const char *kv_get_rev(const struct kv *kv, const char *key, uint32_t key_len,
                       uint32_t *val_len, uint64_t *rev);
/* The revision of the last change to any key (0 before the first). */
uint64_t kv_rev(const struct kv *kv);

/* One page of keys in byte order: those that start with prefix[0..prefix_len) and, if
 * after is not NULL, come after after[0..after_len); at most limit of them, and the page
 * ends once its keys and values hold max_bytes or more. fn gets each pair (and may stop
 * the page by returning non-zero). Returns how many it got; *more says whether keys that
 * match remain after them. O(log n + page), whatever the map's size. */
typedef int (*kv_scan_fn)(void *ctx, const char *key, uint32_t key_len, const char *val,
                          uint32_t val_len);
uint32_t kv_scan(const struct kv *kv, const char *prefix, uint32_t prefix_len,
                 const char *after, uint32_t after_len, uint32_t limit, uint64_t max_bytes,
                 kv_scan_fn fn, void *ctx, bool *more);
size_t kv_count(const struct kv *kv);

/* What applying one entry did (a positive code; errors are negative RK_ERR_*):
 *   NOOP, REGISTER, SET, SETEX: KV_APPLIED; DELETE: KV_APPLIED if the key existed, else
 *   KV_ABSENT; EXPIRE: KV_APPLIED if the key exists (it gets the deadline), else KV_ABSENT;
 *   CAS, CAS_TTL, CAD: KV_APPLIED if the key's revision was the entry's rev (0: the key
 *   absent), else KV_FAILED (a definite answer: nothing changed); a CAD of an absent key
 *   fails; EXPIRED: KV_APPLIED (see kv_expiry_batch).
 * Revisions: a change (SET, SETEX, a DELETE that removed a key, a CAS, CAS_TTL or CAD that
 * held, an EXPIRED that deleted keys) gets the entry's index as its revision, which
 * becomes the key's and kv_rev(). A DELETE of an absent key, a compare that failed and an
 * EXPIRE (the value stays) change no revision.
 * Deadlines: SETEX and CAS_TTL give the key one ttl_ms after the entry is applied, EXPIRE
 * gives an existing key a new one; SET and CAS remove it.
 * A command with client_id != 0 goes through its session first:
 *   no such session (never opened, or expired)  -> KV_SESSION_EXPIRED, not applied;
 *   seq == the session's last seq (a duplicate) -> that command's recorded result, not
 *                                                  applied again;
 *   seq below it, or 0                          -> KV_STALE, not applied;
 *   seq above it                                -> applied and recorded.
 * A REGISTER opens the session whose client id is the entry's index. */
enum { KV_APPLIED = 1, KV_ABSENT = 2, KV_SESSION_EXPIRED = 3, KV_STALE = 4, KV_FAILED = 5 };

/* Applies the committed entry at index (Raft paper §5.3: in log order, once each), which
 * must be kv_last_applied() + 1. Returns a KV_* code, or RK_ERR_INVAL (unknown type, or
 * an index out of order: nothing changes) or RK_ERR_NOMEM. */
int kv_apply(struct kv *kv, raft_index_t index, const struct raft_entry *e);
raft_index_t kv_last_applied(const struct kv *kv);
/* The revision that goes with the last kv_apply's result (a duplicate in a session gets
 * the one recorded with it): KV_APPLIED of a SET, DELETE, CAS or CAD: the new revision;
 * KV_FAILED: the key's current revision (0: absent); anything else: 0. */
uint64_t kv_result_rev(const struct kv *kv);

/* A client session as the state machine holds it. */
struct kv_session_info {
    uint64_t last_seq;        /* 0: no command applied yet */
    int last_result;          /* KV_APPLIED, KV_ABSENT or KV_FAILED of that command (0: none) */
    uint64_t last_rev;        /* and the revision that went with it */
    raft_index_t last_use;    /* index of the session's last entry (REGISTER included) */
};
/* True and *out filled if client_id has an open session. */
bool kv_session_get(const struct kv *kv, uint64_t client_id, struct kv_session_info *out);
size_t kv_session_count(const struct kv *kv);

/* ---- Expiring keys (kv_expiry.c) ----
 * The replicated state holds each deadline as a time to live and the index of the entry
 * that set it; this server counts it on its own elapsed clock from when it applied that
 * entry (or loaded the key from a snapshot). The leader proposes an EXPIRED entry for the
 * keys due on its clock (kv_expiry_batch); applying it deletes those whose deadline is
 * still the one it names. So a key never goes before its time to live on the clock of the
 * leader that accepted the write, and may live longer after a leader change. */

/* This server's clock (ms of elapsed time) for the deadlines of entries applied from now
 * on; it never goes back. The first call also starts the deadlines of keys loaded from a
 * snapshot: they count from then. */
void kv_set_now(struct kv *kv, uint64_t now_ms);
/* The earliest deadline on this server's clock (UINT64_MAX: no key has one). */
uint64_t kv_next_deadline(const struct kv *kv);
/* false if key is absent; else *left_ms is the time to its deadline as of the last
 * kv_set_now (0: it passed), or UINT64_MAX if it has none. */
bool kv_ttl_left(const struct kv *kv, const char *key, uint32_t key_len, uint64_t *left_ms);
/* The replicated part of key's deadline: false if it has none. */
bool kv_ttl_get(const struct kv *kv, const char *key, uint32_t key_len, uint64_t *ttl_ms,
                uint64_t *set_index);
size_t kv_ttl_count(const struct kv *kv);  /* keys with a deadline */
/* What a leader puts in one EXPIRED entry: at most this many keys, in about this many
 * bytes (server/node/expiry.c; docs/benchmarks.md, "Batch size", says why). */
#define KV_EXPIRY_BATCH_KEYS 500u
#define KV_EXPIRY_BATCH_BYTES (32u * 1024)

/* The value of an EXPIRED entry for keys whose deadline is at or before now_ms: at most
 * max_keys of them, in about max_bytes (at least one key). *list is malloc'ed (free it),
 * NULL when *n_keys is 0. Each record: u32 key_len | key | u64 the deadline's set_index
 * (big-endian). RK_OK or RK_ERR_NOMEM. */
int kv_expiry_batch(const struct kv *kv, uint64_t now_ms, uint32_t max_keys,
                    uint32_t max_bytes, char **list, uint32_t *len, uint32_t *n_keys);

/* ---- Changes, for watchers (issue 17) ----
 * kv_apply tells an event function of every change it makes, in order, as it makes it:
 * the one place where events come from. A SET, SETEX, CAS or CAS_TTL that applied is a
 * "set" (with the new value), a DELETE or CAD that removed a key a "delete", and each key
 * an EXPIRED entry deletes an "expire"; the revision is the entry's index (all the keys of
 * one EXPIRED entry share it). An EXPIRE (a new deadline) changes no value: no event. The
 * values are those of enum proto_event_kind. */
enum kv_event_kind { KV_EVENT_SET = 1, KV_EVENT_DELETE = 2, KV_EVENT_EXPIRE = 3 };
typedef void (*kv_event_fn)(void *ctx, uint64_t rev, enum kv_event_kind kind, const char *key,
                            uint32_t key_len, const char *val, uint32_t val_len);
/* fn (NULL: none) gets the changes of every later kv_apply. */
void kv_set_event_fn(struct kv *kv, kv_event_fn fn, void *ctx);

/* A digest of the whole state (keys, values, revisions, deadlines as replicated, sessions,
 * last applied index), independent
 * of allocation and hashing history: equal states give equal digests. */
uint64_t kv_digest(const struct kv *kv);

#endif
