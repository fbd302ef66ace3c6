/* server/core/election.c - leader election (Raft §5.2, §5.4.1): starting an election on
 * timeout, both sides of RequestVote, and counting votes. */
#include "../../common/errors.h"
#include "raft_internal.h"

/* §5.2: on election timeout a follower or candidate starts a new election. */
void election_start(struct raft *r)
{
    raft_become_candidate(r);
    raft_notice(r, "starting an election (last index %llu, last term %llu)",
                (unsigned long long)r->log.n,
                (unsigned long long)raft_log_term_at(&r->log, r->log.n));
    for (int peer = 0; peer < r->cfg.n_nodes; peer++) {
        if (peer == r->cfg.self)
            continue;
        struct raft_msg m = {
            .type = RAFT_MSG_VOTE,
            .to = peer,
            .term = r->term,
            .last_log_index = r->log.n,
            .last_log_term = raft_log_term_at(&r->log, r->log.n),
        };
        raft_send(r, &m);
    }
    /* A one-node cluster wins once its vote for itself is durable (raft_ready_done). */
    election_check_quorum(r);
}

/* Counts granted votes. Our own vote counts only once it is durable: a server must not
 * count itself toward a majority on state it could forget in a crash. */
void election_check_quorum(struct raft *r)
{
    if (r->role != RAFT_CANDIDATE)
        return;
    int votes = 0;
    for (int i = 0; i < r->cfg.n_nodes; i++)
        if (i != r->cfg.self && r->granted[i])
            votes++;
    if (r->durable_term == r->term && r->durable_vote == r->cfg.self)
        votes++;
    if (votes >= raft_majority(r))
        raft_become_leader(r);
}

/* §5.4.1: the candidate's log is at least as up to date as ours. */
static bool candidate_log_ok(const struct raft *r, const struct raft_msg *m)
{
    raft_term_t our_last_term = raft_log_term_at(&r->log, r->log.n);
    if (m->last_log_term != our_last_term)
        return m->last_log_term > our_last_term;
    return m->last_log_index >= r->log.n;
}

/* Figure 2, RequestVote receiver. (A higher term was already adopted by raft_step.) */
void election_recv_vote(struct raft *r, const struct raft_msg *m)
{
    bool grant = false;
    if (m->term == r->term && r->role == RAFT_FOLLOWER &&
        (r->voted_for == RAFT_NO_NODE || r->voted_for == m->from) && candidate_log_ok(r, m)) {
        grant = true;
        if (r->voted_for != m->from) {
            r->voted_for = m->from;
            r->hard_state_dirty = true;
        }
        /* §5.2: granting a vote resets the election timer. */
        raft_reset_election_timer(r);
    }
    struct raft_msg resp = {
        .type = RAFT_MSG_VOTE_RESP,
        .to = m->from,
        .term = r->term,
        .vote_granted = grant,
    };
    raft_send(r, &resp);
}

void election_recv_vote_resp(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_CANDIDATE || m->term != r->term)
        return;
    if (m->vote_granted)
        r->granted[m->from] = true;
    election_check_quorum(r);
}
