/* server/kv/sessions.h - the client session table of the state machine (Raft thesis §6.3),
 * used by kv.c only: sessions by client id, kept in least-recently-used order and bounded
 * in number. Everything here changes only through applied log entries. */
#ifndef RK_KV_SESSIONS_H
#define RK_KV_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/raft_msg.h"

/* One client's session. */
struct kv_session {
    uint64_t id;              /* the log index of its REGISTER entry */
    uint64_t last_seq;        /* the last seq applied (0: none yet) */
    int last_result;          /* KV_APPLIED, KV_ABSENT or KV_FAILED of that command */
    uint64_t last_rev;        /* and the revision that went with it (kv_result_rev) */
    raft_index_t last_use;    /* index of the last entry of this session */
    struct kv_session *hash_next;
    struct kv_session *older, *newer; /* the use order, oldest first */
};

struct kv_sessions;

/* A table of at most max (>= 1) sessions. NULL when out of memory or max is 0. */
struct kv_sessions *kv_sessions_new(uint32_t max);
void kv_sessions_free(struct kv_sessions *t);
/* Opens session id, last used at index; when the table is full it first drops the least
 * recently used session. RK_OK, RK_ERR_INVAL (id already open) or RK_ERR_NOMEM. */
int kv_sessions_open(struct kv_sessions *t, uint64_t id, raft_index_t index);
/* The session, or NULL if it is unknown or was dropped. */
struct kv_session *kv_sessions_find(const struct kv_sessions *t, uint64_t id);
/* Marks s used at index (greater than any earlier use): it becomes the newest. */
void kv_sessions_touch(struct kv_sessions *t, struct kv_session *s, raft_index_t index);
size_t kv_sessions_count(const struct kv_sessions *t);
/* The bound given to kv_sessions_new. */
uint32_t kv_sessions_max(const struct kv_sessions *t);
/* The sessions from least to most recently used: start with NULL, then pass the last. */
const struct kv_session *kv_sessions_next(const struct kv_sessions *t,
                                          const struct kv_session *prev);

#endif
