/* server/core/core.c - the core's life cycle and event entry points: raft_new, raft_tick,
 * raft_step, raft_propose, the Ready hand-off, and the role changes of Raft §5.2
 * (follower, candidate, leader). The rules of each RPC live in election.c,
 * replication.c and read_index.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/grow.h"
#include "raft_internal.h"

/* ---- small helpers ---------------------------------------------------------------- */

const char *core_node_name(const struct raft *r, int id)
{
    const struct member *m = membership_by_id(&r->conf, id);
    if (m == NULL)
        m = membership_by_id(&r->base_conf, id); /* a server just removed */
    return m != NULL ? m->name : "?";
}

void core_notice(struct raft *r, const char *fmt, ...)
{
    if (r->cfg.log_fn == NULL)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->cfg.log_fn(r->cfg.log_ctx, msg);
}

/* xorshift64*: the core's own PRNG, so a seed fixes every timeout it draws. */
static uint64_t core_random(struct raft *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 2685821657736338717ULL;
}

/* Queues m for the next Ready. On allocation failure the message is dropped, which
 * Raft tolerates as a lost message. */
void core_send(struct raft *r, struct raft_msg *m)
{
    m->from = r->self;
    if (rk_grow(&r->outbox, &r->cap_out, (size_t)r->n_out + 1, sizeof(*r->outbox), 16) != RK_OK) {
        raft_msg_free_entries(m);
        return;
    }
    r->outbox[r->n_out++] = *m;
}

/* Drops queued, unsent acknowledgments of entries from index on: those entries are being
 * truncated before they were written, and Figure 2 says persist before responding. */
void core_drop_acks_from(struct raft *r, raft_index_t index)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < r->n_out; i++) {
        struct raft_msg *m = &r->outbox[i];
        if (m->type == RAFT_MSG_APPEND_RESP && m->success && m->match_index >= index) {
            raft_msg_free_entries(m);
            continue;
        }
        r->outbox[kept++] = *m;
    }
    r->n_out = kept;
}

/* §5.2: a randomized election timeout, uniform in [min, max). */
void core_reset_election_timer(struct raft *r)
{
    uint32_t span = r->cfg.election_timeout_max_ms - r->cfg.election_timeout_min_ms;
    uint64_t jitter = span ? core_random(r) % span : 0;
    r->election_deadline = r->now + r->cfg.election_timeout_min_ms + jitter;
}

/* An election within a random fraction of a heartbeat interval (randomized, so the
 * followers that noticed the same thing do not all campaign at once). */
void core_shorten_election_timer(struct raft *r)
{
    uint64_t deadline = r->now + core_random(r) % (r->cfg.heartbeat_ms + 1);
    if (deadline < r->election_deadline)
        r->election_deadline = deadline;
}

static void set_term(struct raft *r, raft_term_t term)
{
    if (term > r->term) {
        r->term = term;
        r->voted_for = RAFT_NO_NODE;
        r->hard_state_dirty = true;
    }
}

/* ---- role changes (§5.2) ----------------------------------------------------------- */

void core_become_follower(struct raft *r, raft_term_t term, int leader)
{
    bool was_leader = r->role == RAFT_LEADER;
    if (was_leader)
        core_reconfig_lost(r);
    set_term(r, term);
    r->role = RAFT_FOLLOWER;
    r->pre_voting = false;
    r->leader = leader;
    if (leader != RAFT_NO_NODE)
        r->leader_contact = r->now;
    core_reset_election_timer(r);
    if (was_leader)
        core_read_index_fail_all(r);
}

void core_become_candidate(struct raft *r)
{
    set_term(r, r->term + 1);
    r->voted_for = r->self;
    r->hard_state_dirty = true;
    r->role = RAFT_CANDIDATE;
    r->pre_voting = false;
    r->leader = RAFT_NO_NODE;
    memset(r->granted, 0, sizeof(r->granted));
    core_reset_election_timer(r);
}

/* §5.3: reinitialize nextIndex and matchIndex; §8: commit a no-op of the new term at
 * once, so entries of earlier terms get committed and ReadIndex can start. */
void core_become_leader(struct raft *r)
{
    r->role = RAFT_LEADER;
    r->leader = r->self;
    for (int i = 0; i < RAFT_MAX_NODES; i++) {
        struct raft_progress *pr = &r->progress[i];
        memset(pr, 0, sizeof(*pr));
        pr->next = r->log.last + 1;
        pr->state = RAFT_PROBE;
        r->heard_ms[i] = r->now; /* as good as an answer: we just won their votes */
    }
    core_notice(r, "won the election with a log of %llu entries",
                (unsigned long long)r->log.last);
    struct raft_entry noop = { .term = r->term, .type = RAFT_ENTRY_NOOP };
    if (core_log_append_copy(&r->log, &noop) != RK_OK)
        core_notice(r, "out of memory appending the leader's no-op");
    r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
    r->quorum_deadline = r->now + r->cfg.election_timeout_max_ms;
    memset(r->active, 0, sizeof(r->active));
    core_repl_broadcast(r);
    core_repl_maybe_commit(r);
}

/* ---- life cycle ------------------------------------------------------------------ */

static bool config_valid(const struct raft_config *cfg)
{
    bool members_ok = cfg->members != NULL
                          ? cfg->self_name != NULL && cfg->members->n <= RAFT_MAX_NODES
                          : cfg->n_nodes >= 1 && cfg->n_nodes <= RAFT_MAX_NODES &&
                                cfg->self >= 0 && cfg->self < cfg->n_nodes;
    return members_ok && cfg->election_timeout_min_ms > 0 &&
           cfg->election_timeout_max_ms >= cfg->election_timeout_min_ms &&
           cfg->heartbeat_ms > 0;
}

/* Without cfg->members: n_nodes voters, ids in order, named node_names or "nodeN". They
 * have no addresses: such a core (unit tests, the simulator) is told where its peers are
 * by its caller, and the placeholders only keep configuration entries well formed. */
static void bootstrap_members(const struct raft_config *cfg, struct membership *ms,
                              char *self_name, size_t len)
{
    memset(ms, 0, sizeof(*ms));
    for (int i = 0; i < cfg->n_nodes; i++) {
        struct member m = { .id = i, .role = MEMBER_VOTER, .port = (uint16_t)(1 + i) };
        if (cfg->node_names != NULL && cfg->node_names[i] != NULL)
            snprintf(m.name, sizeof(m.name), "%s", cfg->node_names[i]);
        else
            snprintf(m.name, sizeof(m.name), "node%d", i);
        snprintf(m.host, sizeof(m.host), "127.0.0.1");
        membership_add(ms, &m);
    }
    snprintf(self_name, len, "%s", ms->m[cfg->self].name);
}

/* The configuration the log starts from, then the configuration entries in it (§4.1:
 * each takes effect once in the log, committed or not). */
static int start_membership(struct raft *r, const struct raft_config *cfg)
{
    struct membership *base = malloc(sizeof(*base));
    if (base == NULL)
        return RK_ERR_NOMEM;
    if (cfg->members != NULL) {
        *base = *cfg->members;
        snprintf(r->self_name, sizeof(r->self_name), "%s", cfg->self_name);
    } else {
        bootstrap_members(cfg, base, r->self_name, sizeof(r->self_name));
    }
    core_conf_init(r, base);
    free(base);
    for (raft_index_t i = r->log.offset + 1; i <= r->log.last; i++)
        core_conf_appended(r, i, core_log_get(&r->log, i));
    return RK_OK;
}

struct raft *raft_new(const struct raft_config *cfg, raft_term_t term, int voted_for,
                      struct raft_entry *entries, raft_index_t n_entries, uint64_t now_ms)
{
    return raft_new_from_snapshot(cfg, 0, 0, term, voted_for, entries, n_entries, now_ms);
}

struct raft *raft_new_from_snapshot(const struct raft_config *cfg, raft_index_t snap_index,
                                    raft_term_t snap_term, raft_term_t term, int voted_for,
                                    struct raft_entry *entries, raft_index_t n_entries,
                                    uint64_t now_ms)
{
    if (!config_valid(cfg) || voted_for < RAFT_NO_NODE || voted_for > RAFT_VOTE_ELSEWHERE)
        return NULL;
    struct raft *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->cfg = *cfg;
    if (r->cfg.max_append_entries == 0)
        r->cfg.max_append_entries = 1024;
    if (r->cfg.max_append_bytes == 0)
        r->cfg.max_append_bytes = 1024 * 1024;
    r->term = term;
    r->voted_for = voted_for;
    r->durable_term = term;
    r->durable_vote = voted_for;
    core_log_init(&r->log, snap_index, snap_term, entries, n_entries);
    r->commit = snap_index; /* a snapshot holds only committed entries */
    r->snap_index = snap_index;
    r->snap_term = snap_term;
    r->role = RAFT_FOLLOWER;
    r->leader = RAFT_NO_NODE;
    r->now = now_ms;
    r->rng = cfg->seed ? cfg->seed : 0x9E3779B97F4A7C15ULL;
    if (start_membership(r, cfg) != RK_OK) {
        r->log.entries = NULL; /* the caller's, on failure */
        r->log.last = r->log.offset;
        raft_free(r);
        return NULL;
    }
    r->cfg.node_names = NULL; /* copied; the caller's arrays need not outlive raft_new */
    r->cfg.members = NULL;
    r->cfg.self_name = NULL;
    core_reset_election_timer(r);
    return r;
}

static void outbox_clear(struct raft *r)
{
    for (uint32_t i = 0; i < r->n_out; i++)
        raft_msg_free_entries(&r->outbox[i]);
    r->n_out = 0;
}

void raft_free(struct raft *r)
{
    if (r == NULL)
        return;
    outbox_clear(r);
    free(r->outbox);
    free(r->reads);
    free(r->done_reads);
    free(r->results);
    core_snap_free_chunks(r);
    free(r->chunks);
    core_conf_free(r);
    core_log_free(&r->log);
    free(r);
}

/* ---- events ------------------------------------------------------------------------ */

void raft_tick(struct raft *r, uint64_t now_ms)
{
    if (now_ms > r->now)
        r->now = now_ms;
    core_transfer_tick(r);
    if (r->role == RAFT_LEADER) {
        core_reconfig_tick(r);
        if (r->cfg.check_quorum && r->now >= r->quorum_deadline) {
            core_election_check_leader_quorum(r);
            if (r->role != RAFT_LEADER)
                return;
        }
        if (r->now >= r->heartbeat_deadline) {
            r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
            core_repl_heartbeat(r);
        }
        return;
    }
    if (r->now >= r->election_deadline)
        core_election_timeout(r);
}

void raft_campaign(struct raft *r, uint64_t now_ms)
{
    if (now_ms > r->now)
        r->now = now_ms;
    if (r->role != RAFT_LEADER)
        core_election_timeout(r);
}

/* Whether a message with a higher term should make us adopt that term (Figure 2, all
 * servers), with the exceptions of thesis §9.6 (pre-votes do not change terms) and §6.2
 * (a follower that hears from its leader ignores disruptive vote requests). */
static bool step_adopts_term(const struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_PREVOTE: return false;
    case RAFT_MSG_PREVOTE_RESP: return !m->vote_granted;
    case RAFT_MSG_VOTE: /* a transfer's election was asked for by the leader (§3.10) */
        return m->transfer || !(r->cfg.check_quorum && core_election_in_lease(r));
    default: return true;
    }
}

void raft_step(struct raft *r, uint64_t now_ms, const struct raft_msg *m)
{
    if (now_ms > r->now)
        r->now = now_ms;
    if (m->from < 0 || m->from >= RAFT_MAX_NODES || m->from == r->self)
        return;
    /* Figure 2, all servers: a higher term makes us a follower of that term. */
    if (m->term > r->term) {
        if (m->type == RAFT_MSG_VOTE && !step_adopts_term(r, m)) {
            core_notice(r, "ignoring a vote request from %s for term %llu: we hear from "
                        "leader %s", core_node_name(r, m->from),
                        (unsigned long long)m->term, core_node_name(r, r->leader));
            return;
        }
        if (step_adopts_term(r, m)) {
            int leader = m->type == RAFT_MSG_APPEND ? m->from : RAFT_NO_NODE;
            core_become_follower(r, m->term, leader);
        }
    }
    if (r->role == RAFT_LEADER && m->term == r->term) {
        r->active[m->from] = true;
        r->heard_ms[m->from] = r->now;
    }
    switch (m->type) {
    case RAFT_MSG_VOTE: core_election_recv_vote(r, m); break;
    case RAFT_MSG_VOTE_RESP: core_election_recv_vote_resp(r, m); break;
    case RAFT_MSG_APPEND: core_repl_recv_append(r, m); break;
    case RAFT_MSG_APPEND_RESP: core_repl_recv_append_resp(r, m); break;
    case RAFT_MSG_PREVOTE: core_election_recv_prevote(r, m); break;
    case RAFT_MSG_PREVOTE_RESP: core_election_recv_prevote_resp(r, m); break;
    case RAFT_MSG_SNAPSHOT: core_snap_recv(r, m); break;
    case RAFT_MSG_SNAPSHOT_RESP: core_snap_recv_resp(r, m); break;
    case RAFT_MSG_TIMEOUT_NOW: core_transfer_recv_timeout_now(r, m); break;
    default: break;
    }
}

int raft_propose_entry(struct raft *r, const struct raft_entry *cmd, raft_index_t *index,
                       raft_term_t *term)
{
    if (r->role != RAFT_LEADER || r->transfer.active)
        return RK_ERR_NOTLEADER; /* §3.10: no new writes while handing over */
    if (raft_entry_type_name(cmd->type) == NULL || cmd->type == RAFT_ENTRY_CONFIG)
        return RK_ERR_INVAL; /* a configuration goes through raft_change_membership */
    struct raft_entry e;
    int rc = raft_entry_copy(&e, cmd);
    if (rc != RK_OK)
        return rc;
    e.term = r->term;
    rc = core_log_append_owned(&r->log, &e);
    if (rc != RK_OK) {
        raft_entry_free(&e);
        return rc;
    }
    *index = r->log.last;
    *term = r->term;
    core_repl_broadcast(r);
    core_repl_maybe_commit(r);
    return RK_OK;
}

int raft_propose(struct raft *r, uint8_t type, const char *key, uint32_t key_len,
                 const char *val, uint32_t val_len, raft_index_t *index, raft_term_t *term)
{
    struct raft_entry cmd = {
        .type = type,
        .key = (char *)key,
        .key_len = key_len,
        .val = (char *)val,
        .val_len = val_len,
    };
    return raft_propose_entry(r, &cmd, index, term);
}

/* ---- the Ready hand-off ------------------------------------------------------------ */

/* A leader's term is durable before it sends anything (it won with a durable vote), and
 * its AppendEntries carry log entries, not promises; pre-votes change no state; a
 * TimeoutNow promises nothing either, and must not wait for a disk that may be the very
 * reason for the transfer. Votes and every reply depend on what this node must persist
 * first. */
static bool msg_is_early(const struct raft_msg *m)
{
    return m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_PREVOTE ||
           m->type == RAFT_MSG_PREVOTE_RESP || m->type == RAFT_MSG_TIMEOUT_NOW;
}

uint32_t raft_take_early_msgs(struct raft *r, struct raft_msg **msgs)
{
    *msgs = NULL;
    uint32_t n_early = 0;
    for (uint32_t i = 0; i < r->n_out; i++)
        n_early += msg_is_early(&r->outbox[i]);
    if (n_early == 0)
        return 0;
    struct raft_msg *early = malloc(n_early * sizeof(*early));
    if (early == NULL)
        return 0; /* they go out with the next Ready instead */
    uint32_t e = 0, kept = 0;
    for (uint32_t i = 0; i < r->n_out; i++) {
        if (msg_is_early(&r->outbox[i]))
            early[e++] = r->outbox[i];
        else
            r->outbox[kept++] = r->outbox[i];
    }
    r->n_out = kept;
    *msgs = early;
    return n_early;
}

bool raft_has_ready(const struct raft *r)
{
    return r->hard_state_dirty || r->log.truncate_from != 0 ||
           r->log.unstable_from <= r->log.last || r->n_out > 0 || r->n_chunks > 0 ||
           r->reset_log_to != 0;
}

static int ready_copy_entries(struct raft *r, struct raft_ready *rd)
{
    raft_index_t from = r->log.unstable_from;
    if (from > r->log.last)
        return RK_OK;
    raft_index_t n = r->log.last - from + 1;
    rd->entries = calloc(n, sizeof(*rd->entries));
    if (rd->entries == NULL)
        return RK_ERR_NOMEM;
    rd->first_index = from;
    for (raft_index_t i = 0; i < n; i++) {
        if (raft_entry_copy(&rd->entries[i], core_log_get(&r->log, from + i)) != RK_OK)
            return RK_ERR_NOMEM;
        rd->n_entries = (uint32_t)(i + 1);
    }
    return RK_OK;
}

int raft_ready_take(struct raft *r, struct raft_ready *rd)
{
    memset(rd, 0, sizeof(*rd));
    if (ready_copy_entries(r, rd) != RK_OK) {
        raft_ready_free(rd);
        return RK_ERR_NOMEM;
    }
    rd->hard_state_changed = r->hard_state_dirty;
    rd->term = r->term;
    rd->voted_for = r->voted_for;
    rd->truncate_from = r->log.truncate_from;
    rd->msgs = r->outbox;
    rd->n_msgs = r->n_out;
    r->outbox = NULL;
    r->n_out = r->cap_out = 0;
    rd->snap_chunks = r->chunks;
    rd->n_snap_chunks = r->n_chunks;
    r->chunks = NULL;
    r->n_chunks = r->cap_chunks = 0;
    rd->reset_log_to = r->reset_log_to;
    r->reset_log_to = 0;
    r->hard_state_dirty = false;
    r->log.truncate_from = 0;
    r->log.unstable_from = r->log.last + 1;
    return RK_OK;
}

void raft_ready_done(struct raft *r, uint64_t now_ms, const struct raft_ready *rd)
{
    if (now_ms > r->now)
        r->now = now_ms;
    if (rd->hard_state_changed) {
        r->durable_term = rd->term;
        r->durable_vote = rd->voted_for;
    }
    if (rd->n_entries > 0) {
        raft_index_t last = rd->first_index + rd->n_entries - 1;
        raft_term_t term = rd->entries[rd->n_entries - 1].term;
        /* Log Matching (§5.3): same index and term means the same entry, so the
         * entry is still ours unless a later truncation dropped it. */
        if (core_log_term_at(&r->log, last) == term && last > r->log.stable &&
            (r->log.truncate_from == 0 || r->log.truncate_from > last))
            r->log.stable = last;
    }
    if (r->role == RAFT_CANDIDATE)
        core_election_check_quorum(r);
    else if (r->role == RAFT_LEADER)
        core_repl_maybe_commit(r);
}

void raft_ready_free(struct raft_ready *rd)
{
    for (uint32_t i = 0; i < rd->n_entries; i++)
        raft_entry_free(&rd->entries[i]);
    free(rd->entries);
    for (uint32_t i = 0; i < rd->n_msgs; i++)
        raft_msg_free_entries(&rd->msgs[i]);
    free(rd->msgs);
    for (uint32_t i = 0; i < rd->n_snap_chunks; i++)
        free(rd->snap_chunks[i].data);
    free(rd->snap_chunks);
    memset(rd, 0, sizeof(*rd));
}

uint32_t raft_take_reads(struct raft *r, struct raft_read *out, uint32_t max)
{
    uint32_t n = r->n_done_reads < max ? r->n_done_reads : max;
    if (n == 0)
        return 0;
    memcpy(out, r->done_reads, n * sizeof(*out));
    memmove(r->done_reads, r->done_reads + n, (r->n_done_reads - n) * sizeof(*out));
    r->n_done_reads -= n;
    return n;
}

/* ---- queries ----------------------------------------------------------------------- */

uint64_t raft_next_deadline(const struct raft *r)
{
    return r->role == RAFT_LEADER ? r->heartbeat_deadline : r->election_deadline;
}

enum raft_role raft_role(const struct raft *r) { return r->role; }
raft_term_t raft_term(const struct raft *r) { return r->term; }
int raft_voted_for(const struct raft *r) { return r->voted_for; }
int raft_leader(const struct raft *r) { return r->leader; }
int raft_self(const struct raft *r) { return r->self; }
raft_index_t raft_commit_index(const struct raft *r) { return r->commit; }
raft_index_t raft_last_index(const struct raft *r) { return r->log.last; }
raft_term_t raft_last_term(const struct raft *r) { return core_log_term_at(&r->log, r->log.last); }
raft_index_t raft_stable_index(const struct raft *r) { return r->log.stable; }

const struct raft_entry *raft_entry_at(const struct raft *r, raft_index_t index)
{
    return core_log_get(&r->log, index);
}

raft_index_t raft_peer_match(const struct raft *r, int peer)
{
    if (r->role != RAFT_LEADER || peer < 0 || peer >= RAFT_MAX_NODES)
        return 0;
    return peer == r->self ? r->log.stable : r->progress[peer].match;
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    }
    return "unknown";
}
