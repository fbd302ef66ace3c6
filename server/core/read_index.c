/* server/core/read_index.c - linearizable reads without a log write (ReadIndex, Raft
 * thesis §6.4): record the commit index, confirm leadership with a heartbeat round
 * answered by a majority, then the read may be served once that index is applied. */
#include <stdlib.h>

#include "../../common/errors.h"
#include "../../common/grow.h"
#include "raft_internal.h"

static void read_done(struct raft *r, uint64_t id, raft_index_t index, bool ok)
{
    if (rk_grow(&r->done_reads, &r->cap_done_reads, (size_t)r->n_done_reads + 1,
                sizeof(*r->done_reads), 16) != RK_OK)
        return; /* the waiter times out instead */
    r->done_reads[r->n_done_reads++] = (struct raft_read){ .id = id, .index = index, .ok = ok };
}

/* §6.4 step 1: a leader that has not committed an entry of its term does not yet
 * know the latest commit index. */
static bool committed_in_term(const struct raft *r)
{
    return core_log_term_at(&r->log, r->commit) == r->term;
}

/* The voters that answered heartbeat round ctx: a majority of them confirms we still
 * lead (a learner's answer confirms nothing, §4.2.1). */
static int acks_for(const struct raft *r, uint64_t ctx)
{
    int acks = core_self_votes(r) ? 1 : 0;
    for (int i = 0; i < RAFT_MAX_NODES; i++)
        if (i != r->self && r->is_voter[i] && r->progress[i].acked_ctx >= ctx)
            acks++;
    return acks;
}

int raft_read_index(struct raft *r, uint64_t read_id)
{
    if (r->role != RAFT_LEADER)
        return RK_ERR_NOTLEADER;
    if (rk_grow(&r->reads, &r->cap_reads, (size_t)r->n_reads + 1, sizeof(*r->reads), 16) !=
        RK_OK)
        return RK_ERR_NOMEM;
    r->read_ctx++;
    r->reads[r->n_reads++] = (struct raft_pending_read){
        .id = read_id,
        .ctx = r->read_ctx,
        .index = committed_in_term(r) ? r->commit : 0,
    };
    /* §6.4 step 2: a heartbeat round; every follower echoes read_ctx. */
    if (r->n_voters > 1 || !core_self_votes(r))
        core_repl_heartbeat(r);
    core_read_index_on_ack(r);
    return RK_OK;
}

/* Answers, in order, every pending read whose heartbeat round a majority answered. */
void core_read_index_on_ack(struct raft *r)
{
    if (r->role != RAFT_LEADER || r->n_reads == 0 || !committed_in_term(r))
        return;
    uint32_t served = 0;
    for (; served < r->n_reads; served++) {
        struct raft_pending_read *rd = &r->reads[served];
        if (acks_for(r, rd->ctx) < core_majority(r))
            break;
        read_done(r, rd->id, rd->index ? rd->index : r->commit, true);
    }
    for (uint32_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].index == 0)
            r->reads[i].index = r->commit;
    r->n_reads -= served;
    for (uint32_t i = 0; i < r->n_reads; i++)
        r->reads[i] = r->reads[i + served];
}

void core_read_index_fail_all(struct raft *r)
{
    for (uint32_t i = 0; i < r->n_reads; i++)
        read_done(r, r->reads[i].id, 0, false);
    r->n_reads = 0;
}
