/* server/core/election.c - leader election (Raft §5.2, §5.4.1): starting an election on
 * timeout, both sides of RequestVote, and counting votes; pre-vote (thesis §9.6) and
 * check-quorum (thesis §6.2), which keep a returning server from deposing a healthy
 * leader and a cut-off leader from lingering. */
#include <string.h>

#include "../../common/errors.h"
#include "raft_internal.h"

static bool candidate_log_ok(const struct raft *r, const struct raft_msg *m);

/* Whether we take part in elections (stand for them, grant votes and pre-votes): as a
 * voter of the configuration in effect; or (thesis §4.1, §4.2.2) removed by it while it
 * is not committed as far as we know, having been a voter of the one before: until it is
 * committed we may be needed to elect a leader (without us the others may be no
 * majority, and our log may be the only one holding it). Standing then, we do not count
 * our own vote. A learner, a joining server, and one whose removal is committed take no
 * part. */
static bool election_takes_part(const struct raft *r)
{
    if (core_self_votes(r))
        return true;
    if (r->conf_index == 0 || r->conf_index <= r->commit)
        return false;
    const struct member *m =
        membership_by_name(raft_membership_at(r, r->conf_index - 1), r->self_name);
    return m != NULL && m->role == MEMBER_VOTER;
}

/* Whether we grant votes and pre-votes (to a candidate whose log is up to date): when we
 * take part in elections, and as a learner too (thesis §4.1: a server grants its vote
 * whatever its own configuration says; the candidate's may make us a voter with an entry
 * that has not reached us yet, and without our vote its voters may have no majority left,
 * as when a leader adds a second server and loses leadership right after appending the
 * promotion). A joining server and a removed one grant none. */
static bool election_may_vote(const struct raft *r)
{
    return election_takes_part(r) || r->self != RAFT_NO_NODE;
}

/* A RequestVote (or pre-vote) to peer for term, with our last log index and term. */
static void vote_request(const struct raft *r, struct raft_msg *m, uint8_t type,
                         raft_term_t term, int peer)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->to = peer;
    m->term = term;
    m->last_log_index = r->log.last;
    m->last_log_term = core_log_term_at(&r->log, r->log.last);
}

/* Thesis §9.6: before raising its term, a server asks whether it could win. It changes
 * no state other nodes see, so a server that was cut off and comes back cannot force
 * a healthy leader out by its higher term. */
static void election_start_prevote(struct raft *r)
{
    /* A pre-candidate is a follower: a candidate whose election failed returns to
     * follower (keeping its vote for itself in this term) while it pre-votes again. */
    r->role = RAFT_FOLLOWER;
    r->pre_voting = true;
    r->leader = RAFT_NO_NODE;
    memset(r->granted, 0, sizeof(r->granted));
    if (r->self != RAFT_NO_NODE)
        r->granted[r->self] = true;
    core_reset_election_timer(r);
    if (r->prevote_noticed != r->term + 1) /* once per term: a cut-off or removed server
                                              pre-votes again and again */
        core_notice(r, "starting a pre-vote for term %llu", (unsigned long long)(r->term + 1));
    r->prevote_noticed = r->term + 1;
    for (int peer = 0; peer < RAFT_MAX_NODES; peer++) {
        if (peer == r->self || !r->is_voter[peer])
            continue;
        struct raft_msg m;
        vote_request(r, &m, RAFT_MSG_PREVOTE, r->term + 1, peer);
        core_send(r, &m);
    }
    if (r->n_voters == 1 && core_self_votes(r))
        core_election_start(r, false);
}

/* The granted votes of voters (a learner's or a stranger's never count, §4.2.1). */
static int granted_votes(const struct raft *r)
{
    int votes = 0;
    for (int i = 0; i < RAFT_MAX_NODES; i++)
        if (r->granted[i] && r->is_voter[i])
            votes++;
    return votes;
}

/* §5.2: on election timeout a follower or candidate starts a new election (after a
 * pre-vote, if configured). Only a voter does (or one being removed, see
 * election_takes_part): a learner, or a server that is not (or no longer) a member,
 * waits to hear from a leader (thesis §4.2.1, §4.2.3). */
void core_election_timeout(struct raft *r)
{
    if (!election_takes_part(r) || r->no_campaign) {
        core_reset_election_timer(r);
        return;
    }
    if (r->cfg.pre_vote)
        election_start_prevote(r);
    else
        core_election_start(r, false);
}

void raft_peer_disconnected(struct raft *r, uint64_t now_ms, int peer)
{
    if (now_ms > r->now)
        r->now = now_ms;
    if (r->role != RAFT_FOLLOWER || peer != r->leader || peer == RAFT_NO_NODE)
        return;
    core_notice(r, "lost the connection from leader %s; electing sooner",
                core_node_name(r, peer));
    r->leader = RAFT_NO_NODE;
    core_shorten_election_timer(r);
}

/* Whether we heard from a leader within the minimum election timeout (a leader is
 * always in its own lease). Thesis §9.6: such a server denies pre-votes; with
 * check-quorum it also ignores vote requests. */
bool core_election_in_lease(const struct raft *r)
{
    if (r->role == RAFT_LEADER)
        return true;
    return r->leader != RAFT_NO_NODE &&
           r->now - r->leader_contact < r->cfg.election_timeout_min_ms;
}

/* Thesis §6.2: a leader that has not heard from a majority within an election timeout
 * steps down, so its clients go looking for the real leader. */
void core_election_check_leader_quorum(struct raft *r)
{
    int active = core_self_votes(r) ? 1 : 0;
    for (int i = 0; i < RAFT_MAX_NODES; i++)
        if (i != r->self && r->active[i] && r->is_voter[i])
            active++;
    memset(r->active, 0, sizeof(r->active));
    r->quorum_deadline = r->now + r->cfg.election_timeout_max_ms;
    if (active >= core_majority(r))
        return;
    core_notice(r, "stepping down: heard from %d of %d voters in the last %u ms", active,
                r->n_voters, r->cfg.election_timeout_max_ms);
    core_become_follower(r, r->term, RAFT_NO_NODE);
}

void core_election_recv_prevote(struct raft *r, const struct raft_msg *m)
{
    bool grant = m->term > r->term && election_may_vote(r) && !core_election_in_lease(r) &&
                 candidate_log_ok(r, m);
    struct raft_msg resp = {
        .type = RAFT_MSG_PREVOTE_RESP,
        .to = m->from,
        .term = grant ? m->term : r->term,
        .vote_granted = grant,
    };
    core_send(r, &resp);
}

void core_election_recv_prevote_resp(struct raft *r, const struct raft_msg *m)
{
    if (!r->pre_voting || r->role != RAFT_FOLLOWER || !m->vote_granted ||
        m->term != r->term + 1)
        return;
    r->granted[m->from] = true;
    if (granted_votes(r) >= core_majority(r))
        core_election_start(r, false);
}

/* §5.2: become a candidate in a new term and ask every voter for its vote. */
void core_election_start(struct raft *r, bool transfer)
{
    core_become_candidate(r);
    core_notice(r, "starting an election (last index %llu, last term %llu)",
                (unsigned long long)r->log.last,
                (unsigned long long)core_log_term_at(&r->log, r->log.last));
    for (int peer = 0; peer < RAFT_MAX_NODES; peer++) {
        if (peer == r->self || !r->is_voter[peer])
            continue;
        struct raft_msg m;
        vote_request(r, &m, RAFT_MSG_VOTE, r->term, peer);
        m.transfer = transfer;
        core_send(r, &m);
    }
    /* A one-node cluster wins once its vote for itself is durable (raft_ready_done). */
    core_election_check_quorum(r);
}

/* Counts granted votes. Our own vote counts only once it is durable: a server must not
 * count itself toward a majority on state it could forget in a crash. */
void core_election_check_quorum(struct raft *r)
{
    if (r->role != RAFT_CANDIDATE)
        return;
    int votes = 0;
    for (int i = 0; i < RAFT_MAX_NODES; i++)
        if (i != r->self && r->granted[i] && r->is_voter[i])
            votes++;
    if (core_self_votes(r) && r->durable_term == r->term && r->durable_vote == r->self)
        votes++;
    if (votes >= core_majority(r))
        core_become_leader(r);
}

/* §5.4.1: the candidate's log is at least as up to date as ours. */
static bool candidate_log_ok(const struct raft *r, const struct raft_msg *m)
{
    raft_term_t our_last_term = core_log_term_at(&r->log, r->log.last);
    if (m->last_log_term != our_last_term)
        return m->last_log_term > our_last_term;
    return m->last_log_index >= r->log.last;
}

/* Figure 2, RequestVote receiver. (A higher term was already adopted by raft_step.) */
void core_election_recv_vote(struct raft *r, const struct raft_msg *m)
{
    bool grant = false;
    if (m->term == r->term && r->role == RAFT_FOLLOWER && election_may_vote(r) &&
        (r->voted_for == RAFT_NO_NODE || r->voted_for == m->from) && candidate_log_ok(r, m)) {
        grant = true;
        if (r->voted_for != m->from) {
            r->voted_for = m->from;
            r->hard_state_dirty = true;
        }
        /* §5.2: granting a vote resets the election timer. */
        core_reset_election_timer(r);
    }
    struct raft_msg resp = {
        .type = RAFT_MSG_VOTE_RESP,
        .to = m->from,
        .term = r->term,
        .vote_granted = grant,
    };
    core_send(r, &resp);
}

void core_election_recv_vote_resp(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_CANDIDATE || m->term != r->term)
        return;
    if (m->vote_granted)
        r->granted[m->from] = true;
    core_election_check_quorum(r);
}
