/* tests/sim/sim_expiry.c - expiring keys as the threaded server handles them: each node
 * counts deadlines on its own clock (kv_set_now before applying, and after loading a
 * snapshot: server/node/node.c, snapshotter.c), and a leader's timer proposes one EXPIRED
 * entry at a time for the keys due on that clock: the server's own reaper
 * (server/node/expiry.h), which the sim calls with its node's core, map and clock. */
#include <stdlib.h>

#include "../../common/errors.h"
#include "sim_internal.h"

typedef unsigned long long ull;


uint64_t sim_node_clock(const struct sim *s, const struct sim_node *n)
{
    return s->now + s->p.clock_offset_ms[n->id];
}

/* When the reaper has work (node_reaper_next, on the node's clock), in sim time;
 * UINT64_MAX: none. */
uint64_t sim_expiry_next(const struct sim *s, const struct sim_node *n)
{
    if (n->raft == NULL)
        return UINT64_MAX;
    uint64_t next = node_reaper_next(&n->reaper, n->raft, n->kv, n->applied);
    uint64_t offset = s->p.clock_offset_ms[n->id];
    if (next == UINT64_MAX)
        return UINT64_MAX;
    return next > offset ? next - offset : 0;
}

/* node_expiry_run: as leader, propose the deletion of the keys due on this node's clock,
 * with the server's own reaper. */
void sim_expiry_run(struct sim *s, struct sim_node *n)
{
    if (n->raft == NULL)
        return;
    uint32_t max_keys = s->p.expiry_batch_keys != 0 ? s->p.expiry_batch_keys : KV_EXPIRY_BATCH_KEYS;
    uint32_t n_keys = 0;
    int rc = node_reaper_run(&n->reaper, n->raft, n->kv, n->applied, sim_node_clock(s, n),
                             max_keys, &n_keys);
    if (rc == RK_OK && n_keys > 0) { /* proposed: the index and term are the reaper's */
        sim_check_proposed(s, n->reaper.index, n->reaper.term);
        sim_trace_text(s, n->id, "expired %u keys -> index %llu term %llu", n_keys,
                       (ull)n->reaper.index, (ull)n->reaper.term);
    } else if (rc != RK_OK) {
        sim_trace_text(s, n->id, "cannot propose %u expired keys: %s", n_keys, rk_strerror(rc));
    }
}
