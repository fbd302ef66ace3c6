/* server/core/replication.c - log replication (Raft §5.3, §5.4): the leader's
 * AppendEntries with batching, pipelining and fast backtracking, the follower's
 * consistency check and truncation, and the commit rule of §5.4.2 (Figure 8). */
#include <stdlib.h>

#include "../../common/errors.h"
#include "raft_internal.h"

/* How far a REPLICATE follower may run ahead of its acknowledged match index. */
#define REPLICATION_MAX_INFLIGHT_BATCHES 8

/* Copies entries next.. into m, up to the count and byte caps; returns how many. */
static uint32_t append_fill_entries(struct raft *r, struct raft_msg *m, raft_index_t next)
{
    if (next > r->log.last)
        return 0;
    raft_index_t avail = r->log.last - next + 1;
    uint32_t max = r->cfg.max_append_entries;
    uint32_t n = avail < max ? (uint32_t)avail : max;
    m->entries = calloc(n, sizeof(*m->entries));
    if (m->entries == NULL)
        return 0;
    uint64_t bytes = 0;
    uint32_t i = 0;
    for (; i < n; i++) {
        const struct raft_entry *e = core_log_get(&r->log, next + i);
        if (i > 0 && bytes + e->key_len + e->val_len > r->cfg.max_append_bytes)
            break;
        if (raft_entry_copy(&m->entries[i], e) != RK_OK)
            break;
        bytes += e->key_len + e->val_len + 32;
    }
    m->n_entries = i;
    return i;
}

/* An AppendEntries to peer with prev_log_index = its nextIndex - 1 and no entries. */
static struct raft_msg append_header(const struct raft *r, int peer)
{
    const struct raft_progress *pr = &r->progress[peer];
    struct raft_msg m = {
        .type = RAFT_MSG_APPEND,
        .to = peer,
        .term = r->term,
        .prev_log_index = pr->next - 1,
        .prev_log_term = core_log_term_at(&r->log, pr->next - 1),
        .leader_commit = r->commit,
        .read_ctx = r->read_ctx,
    };
    return m;
}

static void append_send_empty(struct raft *r, int peer)
{
    struct raft_msg m = append_header(r, peer);
    core_send(r, &m);
}

/* Sends one AppendEntries to peer starting at its nextIndex (Figure 2, leader rules). */
static void append_send_one(struct raft *r, int peer)
{
    struct raft_progress *pr = &r->progress[peer];
    if (pr->next <= r->log.offset) { /* §7: what it needs is compacted away */
        core_snap_send(r, peer);
        return;
    }
    struct raft_msg m = append_header(r, peer);
    uint32_t n = append_fill_entries(r, &m, pr->next);
    if (pr->state == RAFT_REPLICATE)
        pr->next += n; /* pipelining: assume it arrives; a rejection resets next */
    else
        pr->paused = true; /* probing: one at a time until the follower answers */
    core_send(r, &m);
}

/* REPLICATE: may more entries be sent before the follower acknowledges? */
static bool append_window_open(const struct raft *r, const struct raft_progress *pr)
{
    raft_index_t window = (raft_index_t)r->cfg.max_append_entries *
                          REPLICATION_MAX_INFLIGHT_BATCHES;
    return pr->next - 1 - pr->match < window;
}

/* Sends what peer is missing: one probe, or in REPLICATE as many batches as the
 * in-flight window allows. Sends nothing to a paused probe. */
static void replication_send_append(struct raft *r, int peer)
{
    struct raft_progress *pr = &r->progress[peer];
    if (pr->state == RAFT_SNAPSHOT) {
        if (!pr->paused)
            core_snap_send(r, peer);
        return;
    }
    if (pr->state == RAFT_PROBE) {
        if (!pr->paused)
            append_send_one(r, peer);
        return;
    }
    for (int batches = 0; batches < REPLICATION_MAX_INFLIGHT_BATCHES; batches++) {
        if (pr->next > r->log.last || !append_window_open(r, pr))
            break;
        append_send_one(r, peer);
    }
}

/* Voters and learners alike get the log; a server not in the configuration does not. */
static bool replicates_to(const struct raft *r, int peer)
{
    return peer != r->self && r->is_member[peer];
}

void core_repl_broadcast(struct raft *r)
{
    for (int peer = 0; peer < RAFT_MAX_NODES; peer++)
        if (replicates_to(r, peer))
            replication_send_append(r, peer);
}

/* §5.2: heartbeats keep followers from starting elections. A follower that is
 * caught up gets an empty AppendEntries; a paused probe is retried. */
void core_repl_heartbeat(struct raft *r)
{
    for (int peer = 0; peer < RAFT_MAX_NODES; peer++) {
        if (!replicates_to(r, peer))
            continue;
        struct raft_progress *pr = &r->progress[peer];
        pr->paused = false;
        if (pr->state == RAFT_REPLICATE && pr->next <= r->log.last && append_window_open(r, pr)) {
            replication_send_append(r, peer);
            continue;
        }
        /* Exactly one message per beat, even with a full pipeline: if batches were lost
         * the follower rejects prev = next - 1, and we fall back to probing. */
        if (pr->state == RAFT_REPLICATE && pr->next > r->log.offset)
            append_send_empty(r, peer);
        else
            append_send_one(r, peer); /* a probe, or the current snapshot chunk again */
    }
}

static int cmp_index_desc(const void *a, const void *b)
{
    raft_index_t x = *(const raft_index_t *)a, y = *(const raft_index_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* §5.3, §5.4.2 (Figure 8): commit the highest index stored on a majority of the voters
 * in effect (thesis §4.1), but only if it holds an entry of the current term. The leader
 * counts only its durable log, and itself only while it is a voter (§4.2.2). */
void core_repl_maybe_commit(struct raft *r)
{
    if (r->role != RAFT_LEADER || r->n_voters == 0)
        return;
    raft_index_t match[RAFT_MAX_NODES];
    int n_voters = 0;
    for (int i = 0; i < RAFT_MAX_NODES; i++)
        if (r->is_voter[i])
            match[n_voters++] = i == r->self ? r->log.stable : r->progress[i].match;
    qsort(match, (size_t)n_voters, sizeof(match[0]), cmp_index_desc);
    raft_index_t n = match[core_majority(r) - 1];
    if (n > r->commit && core_log_term_at(&r->log, n) == r->term) {
        r->commit = n;
        core_read_index_on_ack(r);
        core_reconfig_committed(r);
    }
}

/* ---- follower side --------------------------------------------------------------- */

static void append_reply(struct raft *r, const struct raft_msg *m, struct raft_msg *resp)
{
    resp->type = RAFT_MSG_APPEND_RESP;
    resp->to = m->from;
    resp->term = r->term;
    resp->reject_index = m->prev_log_index;
    resp->read_ctx = m->read_ctx;
    core_send(r, resp);
}

/* The rejection hint that lets the leader skip a whole term at a time: the term we
 * hold at prev_log_index and the first index of that term, or our log's end. */
static void append_reject_hint(const struct raft *r, const struct raft_msg *m,
                               struct raft_msg *resp)
{
    if (m->prev_log_index > r->log.last) {
        resp->conflict_index = r->log.last + 1;
        resp->conflict_term = 0;
        return;
    }
    resp->conflict_term = core_log_term_at(&r->log, m->prev_log_index);
    resp->conflict_index = core_log_first_of_term(&r->log, m->prev_log_index);
    if (resp->conflict_index <= r->commit)
        resp->conflict_index = r->commit + 1; /* committed entries always match */
}

/* Figure 2, AppendEntries receiver steps 3-4: skip entries we already hold, truncate at
 * the first conflict, append the rest. Never truncates on a stale, shorter message. */
static int append_merge(struct raft *r, const struct raft_msg *m)
{
    for (uint32_t i = 0; i < m->n_entries; i++) {
        raft_index_t index = m->prev_log_index + 1 + i;
        const struct raft_entry *e = &m->entries[i];
        if (index <= r->log.offset)
            continue; /* in our snapshot: committed, so it matches */
        if (index <= r->log.last) {
            if (core_log_term_at(&r->log, index) == e->term)
                continue;
            if (index <= r->commit) {
                core_notice(r, "BUG: leader %s conflicts with committed index %llu; ignored",
                            core_node_name(r, m->from), (unsigned long long)index);
                return RK_ERR_INVAL;
            }
            core_drop_acks_from(r, index);
            core_log_truncate(&r->log, index);
            core_conf_truncated(r, index);
        }
        int rc = core_log_append_copy(&r->log, e);
        if (rc != RK_OK)
            return rc;
        core_conf_appended(r, index, e);
    }
    return RK_OK;
}

/* A message from the leader of our term: follow it, and hold off elections (§5.2). */
void core_repl_follow(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
        core_become_follower(r, m->term, m->from);
        core_transfer_leader_known(r);
    }
    r->pre_voting = false;
    r->leader_contact = r->now;
    core_reset_election_timer(r);
}

/* Figure 2, AppendEntries receiver. (A higher term was already adopted by raft_step.) */
void core_repl_recv_append(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg resp = { 0 };
    if (m->term < r->term) { /* step 1: a stale leader; our term tells it to step down */
        /* No hint and no heartbeat round: our term may be one the sender now leads
         * (it restarted and won), and this must not pass for an answer to it. */
        resp.type = RAFT_MSG_APPEND_RESP;
        resp.to = m->from;
        resp.term = r->term;
        resp.reject_index = m->prev_log_index;
        core_send(r, &resp);
        return;
    }
    if (r->role == RAFT_LEADER) {
        core_notice(r, "BUG: two leaders in term %llu (%s)",
                    (unsigned long long)r->term, core_node_name(r, m->from));
        return;
    }
    core_repl_follow(r, m);
    /* Entries in our snapshot are committed, so they match the leader's. */
    bool prev_ok = m->prev_log_index <= r->log.offset ||
                   (m->prev_log_index <= r->log.last &&
                    core_log_term_at(&r->log, m->prev_log_index) == m->prev_log_term);
    if (!prev_ok) { /* step 2 */
        append_reject_hint(r, m, &resp);
        append_reply(r, m, &resp);
        return;
    }
    if (append_merge(r, m) != RK_OK) {
        append_reply(r, m, &resp);
        return;
    }
    raft_index_t match = m->prev_log_index + m->n_entries;
    /* step 5: commit up to what the leader committed and we hold from it */
    raft_index_t can_commit = m->leader_commit < match ? m->leader_commit : match;
    if (can_commit > r->commit)
        r->commit = can_commit;
    resp.success = true;
    resp.match_index = match;
    append_reply(r, m, &resp);
}

/* ---- leader side: replies -------------------------------------------------------- */

/* Where to probe next after a rejection, from the follower's hint (§5.3, the
 * "optimization" paragraph): skip the whole conflicting term at once. */
static raft_index_t append_next_from_hint(const struct raft *r, const struct raft_msg *m)
{
    raft_index_t next = m->conflict_index;
    if (m->conflict_term != 0) {
        raft_index_t ours = core_log_last_of_term(&r->log, m->conflict_term, m->reject_index);
        if (ours != 0)
            next = ours + 1;
    }
    if (next > m->reject_index)
        next = m->reject_index; /* the rejected prev index itself must be retried */
    return next;
}

static void append_rejected(struct raft *r, int peer, const struct raft_msg *m)
{
    struct raft_progress *pr = &r->progress[peer];
    if (pr->state == RAFT_PROBE && m->reject_index != pr->next - 1)
        return; /* stale: an answer to an older probe */
    /* Its log ends before what it confirmed: either it restarted with its files lost, or
     * this refusal is older than the acknowledgment (reordered, or of a batch the
     * follower got only in part). Only the answer to the current probe tells them apart:
     * in REPLICATE we probe at match first, and a refusal there is the answer. */
    bool ends_before_match = m->conflict_term == 0 && m->conflict_index <= pr->match;
    if (ends_before_match && pr->state == RAFT_PROBE) {
        core_notice(r, "follower %s lost its log after index %llu; resending from there",
                    core_node_name(r, peer), (unsigned long long)(m->conflict_index - 1));
        pr->match = m->conflict_index - 1;
    } else if (m->reject_index < pr->match ||
               (m->reject_index == pr->match && !ends_before_match)) {
        return; /* stale: we already know it matches there */
    }
    raft_index_t next = append_next_from_hint(r, m);
    if (next < pr->match + 1)
        next = pr->match + 1;
    if (next < 1)
        next = 1;
    if (r->log.last + 1 - next > r->cfg.max_append_entries)
        core_notice(r, "catching up follower %s: probing from index %llu (leader last %llu)",
                    core_node_name(r, peer), (unsigned long long)next, (unsigned long long)r->log.last);
    pr->next = next;
    pr->state = RAFT_PROBE;
    pr->paused = false;
    replication_send_append(r, peer);
}

/* The follower's log matches ours up to match (an AppendEntries or snapshot reply). */
void core_repl_accepted(struct raft *r, int peer, raft_index_t match)
{
    struct raft_progress *pr = &r->progress[peer];
    if (match > r->log.last)
        return; /* cannot be: it matches entries we do not have */
    if (match > pr->match)
        pr->match = match;
    if (pr->next < pr->match + 1)
        pr->next = pr->match + 1;
    if (pr->state == RAFT_SNAPSHOT && pr->match >= r->log.offset) {
        pr->state = RAFT_PROBE; /* it has what we compacted: back to entries */
        pr->next = pr->match + 1;
    }
    if (pr->state == RAFT_PROBE && match + 1 >= pr->next) {
        pr->state = RAFT_REPLICATE; /* the probe found where our logs agree */
        pr->next = pr->match + 1;
        if (r->log.last - pr->match > r->cfg.max_append_entries)
            core_notice(r, "catching up follower %s: %llu entries behind",
                        core_node_name(r, peer), (unsigned long long)(r->log.last - pr->match));
    }
    pr->paused = false;
    core_repl_maybe_commit(r);
    core_reconfig_progress(r, peer);
    core_transfer_check(r);
    replication_send_append(r, peer);
}

void core_repl_recv_append_resp(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER || m->term != r->term)
        return;
    if (!m->success && m->conflict_index == 0)
        return; /* an answer to an older term's message, carrying our term */
    struct raft_progress *pr = &r->progress[m->from];
    if (m->read_ctx > pr->acked_ctx)
        pr->acked_ctx = m->read_ctx;
    if (m->success)
        core_repl_accepted(r, m->from, m->match_index);
    else if (pr->state != RAFT_SNAPSHOT)
        append_rejected(r, m->from, m);
    core_read_index_on_ack(r);
}
