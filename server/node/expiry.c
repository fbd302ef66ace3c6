/* server/node/expiry.c - the leader's side of expiring keys (the rule is in
 * server/kv/kv_expiry.c): run by the timer thread under mu, it proposes an EXPIRED entry
 * for the keys whose deadline passed on this server's clock. One such entry is in flight
 * at a time; the next is proposed as soon as it is applied, so that keys expiring by the
 * hundred thousand go in batches between client writes instead of stalling them. */
#include <stdlib.h>

#include "../../common/errors.h"
#include "../kv/kv.h"
#include "node.h"

#define EXPIRY_RETRY_MS 50u              /* after a proposal that could not be made */

/* Whether our last EXPIRED entry is still on its way: proposed in this term and not yet
 * applied (a new term means it was committed already or is lost; either way, the keys
 * still due get proposed again, and applying an entry twice deletes nothing more). */
static bool batch_in_flight(const struct node *n)
{
    return n->expiry_term == raft_term(n->raft) && n->expiry_index > n->applied;
}

uint64_t node_expiry_next(const struct node *n)
{
    if (raft_role(n->raft) != RAFT_LEADER || batch_in_flight(n))
        return UINT64_MAX;
    uint64_t next = kv_next_deadline(n->kv);
    return next > n->expiry_retry_ms ? next : n->expiry_retry_ms;
}

void node_expiry_run(struct node *n, uint64_t now_ms)
{
    if (node_expiry_next(n) > now_ms)
        return;
    kv_set_now(n->kv, now_ms);
    struct raft_entry cmd = { .type = RAFT_ENTRY_EXPIRED, .key = "" };
    uint32_t n_keys = 0;
    int rc = kv_expiry_batch(n->kv, now_ms, KV_EXPIRY_BATCH_KEYS, KV_EXPIRY_BATCH_BYTES,
                             &cmd.val, &cmd.val_len, &n_keys);
    if (rc == RK_OK && n_keys > 0)
        rc = raft_propose_entry(n->raft, &cmd, &n->expiry_index, &n->expiry_term);
    free(cmd.val);
    if (rc == RK_OK)
        return;
    /* Not now (a leadership transfer takes no writes) or out of memory: try again after
     * a while, not at every wake of the timer. */
    n->expiry_retry_ms = now_ms + EXPIRY_RETRY_MS;
    if (rc != RK_ERR_NOTLEADER)
        node_log(n, "cannot propose the deletion of %u expired keys: %s", n_keys,
                 rk_strerror(rc));
}
