/* server/node/expiry.c - the leader's reaper of expired keys (see expiry.h), and the
 * timer thread's use of it under mu. */
#include <stdlib.h>

#include "../../common/errors.h"
#include "../kv/kv.h"
#include "expiry.h"
#include "node.h"

/* Whether our last EXPIRED entry is still on its way: proposed in this term and not yet
 * applied (a new term means it was committed already or is lost; either way, the keys
 * still due get proposed again, and applying an entry twice deletes nothing more). */
static bool batch_in_flight(const struct node_reaper *r, const struct raft *raft,
                            raft_index_t applied)
{
    return r->term == raft_term(raft) && r->index > applied;
}

uint64_t node_reaper_next(const struct node_reaper *r, const struct raft *raft,
                          const struct kv *kv, raft_index_t applied)
{
    if (raft_role(raft) != RAFT_LEADER || batch_in_flight(r, raft, applied))
        return UINT64_MAX;
    uint64_t next = kv_next_deadline(kv);
    return next > r->retry_ms ? next : r->retry_ms;
}

int node_reaper_run(struct node_reaper *r, struct raft *raft, struct kv *kv, raft_index_t applied,
                    uint64_t now_ms, uint32_t max_keys, uint32_t *n_keys)
{
    *n_keys = 0;
    if (node_reaper_next(r, raft, kv, applied) > now_ms)
        return RK_OK;
    kv_set_now(kv, now_ms);
    struct raft_entry cmd = { .type = RAFT_ENTRY_EXPIRED, .key = "" };
    int rc = kv_expiry_batch(kv, now_ms, max_keys, KV_EXPIRY_BATCH_BYTES, &cmd.val,
                             &cmd.val_len, n_keys);
    if (rc == RK_OK && *n_keys > 0)
        rc = raft_propose_entry(raft, &cmd, &r->index, &r->term);
    free(cmd.val);
    if (rc != RK_OK) /* not now, or out of memory: again after a while, not at every wake */
        r->retry_ms = now_ms + NODE_REAPER_RETRY_MS;
    return rc;
}

uint64_t node_expiry_next(const struct node *n)
{
    return node_reaper_next(&n->reaper, n->raft, n->kv, n->applied);
}

void node_expiry_run(struct node *n, uint64_t now_ms)
{
    uint32_t n_keys;
    int rc = node_reaper_run(&n->reaper, n->raft, n->kv, n->applied, now_ms,
                             KV_EXPIRY_BATCH_KEYS, &n_keys);
    if (rc != RK_OK && rc != RK_ERR_NOTLEADER)
        node_log(n, "cannot propose the deletion of %u expired keys: %s", n_keys,
                 rk_strerror(rc));
}
