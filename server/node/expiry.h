/* server/node/expiry.h - the leader's reaper of expired keys as a policy with no I/O, lock
 * or clock of its own, so that the threaded server (expiry.c, on the timer thread) and the
 * simulator (tests/sim/sim_expiry.c) run the same code. The rule a batch follows is in
 * server/kv/kv_expiry.c; this is when a leader proposes one: for the keys due on its
 * clock, one EXPIRED entry in flight at a time, the next as soon as it is applied, so that
 * keys expiring by the hundred thousand go in batches between client writes instead of
 * stalling them. */
#ifndef RK_NODE_EXPIRY_H
#define RK_NODE_EXPIRY_H

#include <stdint.h>

#include "../core/raft.h"

struct kv;

#define NODE_REAPER_RETRY_MS 50u /* after a proposal that could not be made */

struct node_reaper {
    raft_index_t index; /* our last EXPIRED entry ... */
    raft_term_t term;   /* ... and its term */
    uint64_t retry_ms;  /* no new one before this (after a failed proposal) */
};

/* When node_reaper_run has work, on the clock of kv's deadlines (UINT64_MAX: none; not the
 * leader, or its last EXPIRED entry is not applied yet). */
uint64_t node_reaper_next(const struct node_reaper *r, const struct raft *raft,
                          const struct kv *kv, raft_index_t applied);
/* If due at now_ms: proposes an EXPIRED entry for at most max_keys keys due then (*n_keys
 * of them; 0: none was due). RK_OK, or why the proposal could not be made (RK_ERR_NOTLEADER
 * while a transfer takes no writes, RK_ERR_NOMEM): the next try is NODE_REAPER_RETRY_MS
 * later. */
int node_reaper_run(struct node_reaper *r, struct raft *raft, struct kv *kv, raft_index_t applied,
                    uint64_t now_ms, uint32_t max_keys, uint32_t *n_keys);

#endif
