/* tests/sim/sim_expiry.c - expiring keys as the threaded server handles them: each node
 * counts deadlines on its own clock (kv_set_now before applying, and after loading a
 * snapshot: server/node/node.c, snapshotter.c), and a leader's timer proposes one EXPIRED
 * entry at a time for the keys due on that clock (server/node/expiry.c, mirrored here:
 * the sim drives the core itself, not the node shell). */
#include <stdlib.h>

#include "../../common/errors.h"
#include "sim_internal.h"

typedef unsigned long long ull;


uint64_t sim_node_clock(const struct sim *s, const struct sim_node *n)
{
    return s->now + s->p.clock_offset_ms[n->id];
}

/* Whether its last EXPIRED entry is still on its way (expiry.c batch_in_flight). */
static bool sim_expiry_in_flight(const struct sim_node *n)
{
    return n->expiry_term == raft_term(n->raft) && n->expiry_index > n->applied;
}

/* When the reaper has work (node_expiry_next), in sim time; UINT64_MAX: none. */
uint64_t sim_expiry_next(const struct sim *s, const struct sim_node *n)
{
    if (n->raft == NULL || raft_role(n->raft) != RAFT_LEADER || sim_expiry_in_flight(n))
        return UINT64_MAX;
    uint64_t next = kv_next_deadline(n->kv), offset = s->p.clock_offset_ms[n->id];
    if (next == UINT64_MAX)
        return UINT64_MAX;
    return next > offset ? next - offset : 0;
}

/* node_expiry_run: as leader, propose the deletion of the keys due on this node's clock. */
void sim_expiry_run(struct sim *s, struct sim_node *n)
{
    if (sim_expiry_next(s, n) > s->now)
        return;
    uint64_t now = sim_node_clock(s, n);
    kv_set_now(n->kv, now);
    struct raft_entry cmd = { .type = RAFT_ENTRY_EXPIRED, .key = "" };
    uint32_t n_keys = 0;
    uint32_t max_keys = s->p.expiry_batch_keys != 0 ? s->p.expiry_batch_keys : KV_EXPIRY_BATCH_KEYS;
    int rc = kv_expiry_batch(n->kv, now, max_keys, KV_EXPIRY_BATCH_BYTES, &cmd.val, &cmd.val_len,
                             &n_keys);
    raft_index_t index = 0;
    raft_term_t term = 0;
    if (rc == RK_OK && n_keys > 0)
        rc = raft_propose_entry(n->raft, &cmd, &index, &term);
    if (rc == RK_OK && n_keys > 0) {
        n->expiry_index = index;
        n->expiry_term = term;
        sim_check_proposed(s, index, term);
        sim_trace_text(s, n->id, "expired %u keys -> index %llu term %llu", n_keys, (ull)index,
                       (ull)term);
    } else if (rc != RK_OK) {
        sim_trace_text(s, n->id, "cannot propose %u expired keys: %s", n_keys, rk_strerror(rc));
    }
    free(cmd.val);
}
