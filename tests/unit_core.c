/* tests/unit_core.c - unit tests of the Raft core (server/core/raft.h), driven by hand:
 * cores in one process, hand-made messages and a fake clock; no sockets, threads or disk.
 * Rules tested are those of the Raft paper's Figure 2, §5.2-§5.4 and the thesis §6.4. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"
#include "../common/raft_msg.h"
#include "../server/core/raft.h"
#include "check_main.h"

#define EL_MIN 150     /* election timeout is uniform in [EL_MIN, EL_MAX) ms */
#define EL_MAX 300
#define HB 50          /* heartbeat interval, ms */
#define STEP_MS 10     /* clock granularity of the cluster runs */
#define MAX_NODES 5
#define BIG_LOG 10000  /* entries in the catch-up tests */

#define ck_assert_role(r, want)                                                    \
    ck_assert_msg(raft_role(r) == (want), "role is %s, want %s",                   \
                  raft_role_name(raft_role(r)), raft_role_name(want))

/* ---------- building cores and logs ---------- */

static struct raft_config test_cfg(int self, int n_nodes)
{
    struct raft_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.self = self;
    cfg.n_nodes = n_nodes;
    cfg.election_timeout_min_ms = EL_MIN;
    cfg.election_timeout_max_ms = EL_MAX;
    cfg.heartbeat_ms = HB;
    cfg.seed = 1000 + (uint64_t)self;
    return cfg;
}

/* A log described as runs of equal terms: {{3, 1}, {2, 2}} is terms 1 1 1 2 2. */
struct run {
    raft_index_t count;
    raft_term_t term;
};

static void init_entry(struct raft_entry *e, raft_term_t term, raft_index_t index)
{
    char key[32];
    int len = snprintf(key, sizeof(key), "k%llu", (unsigned long long)index);
    ck_assert_int_eq(raft_entry_init(e, term, RAFT_ENTRY_SET, key, (uint32_t)len, "v", 1),
                     RK_OK);
}

static struct raft_entry *mk_log(const struct run *runs, int n_runs, raft_index_t *n_out)
{
    raft_index_t n = 0;
    for (int i = 0; i < n_runs; i++)
        n += runs[i].count;
    *n_out = n;
    if (n == 0)
        return NULL;
    struct raft_entry *log = calloc(n, sizeof(*log));
    ck_assert_ptr_nonnull(log);
    raft_index_t k = 0;
    for (int i = 0; i < n_runs; i++)
        for (raft_index_t j = 0; j < runs[i].count; j++, k++)
            init_entry(&log[k], runs[i].term, k + 1);
    return log;
}

static struct raft *new_core(const struct raft_config *cfg, raft_term_t term, int vote,
                             const struct run *runs, int n_runs, uint64_t now)
{
    raft_index_t n = 0;
    struct raft_entry *log = mk_log(runs, n_runs, &n);
    struct raft *r = raft_new(cfg, term, vote, log, n, now);
    ck_assert_ptr_nonnull(r);
    return r;
}

static struct raft *mk_core(int self, int n_nodes, raft_term_t term, int vote,
                            const struct run *runs, int n_runs, uint64_t now)
{
    struct raft_config cfg = test_cfg(self, n_nodes);
    return new_core(&cfg, term, vote, runs, n_runs, now);
}

/* ---------- readies ---------- */

/* Takes the pending ready (a zeroed one if nothing is pending). */
static void take(struct raft *r, struct raft_ready *rd)
{
    if (!raft_has_ready(r)) {
        memset(rd, 0, sizeof(*rd));
        return;
    }
    ck_assert_int_eq(raft_ready_take(r, rd), RK_OK);
}

static bool ready_is_empty(const struct raft_ready *rd)
{
    return !rd->hard_state_changed && rd->truncate_from == 0 && rd->n_entries == 0 &&
           rd->n_msgs == 0;
}

/* The caller "persisted and sent" rd. */
static void done_free(struct raft *r, uint64_t now, struct raft_ready *rd)
{
    if (!ready_is_empty(rd))
        raft_ready_done(r, now, rd);
    raft_ready_free(rd);
}

/* Makes everything pending durable and drops the messages. */
static void drain(struct raft *r, uint64_t now)
{
    for (int i = 0; i < 20 && raft_has_ready(r); i++) {
        struct raft_ready rd;
        ck_assert_int_eq(raft_ready_take(r, &rd), RK_OK);
        raft_ready_done(r, now, &rd);
        raft_ready_free(&rd);
    }
    ck_assert(!raft_has_ready(r));
}

static void step_take(struct raft *r, uint64_t now, const struct raft_msg *m,
                      struct raft_ready *rd)
{
    raft_step(r, now, m);
    take(r, rd);
}

static const struct raft_msg *find_msg(const struct raft_ready *rd, uint8_t type, int to)
{
    for (uint32_t k = 0; k < rd->n_msgs; k++)
        if (rd->msgs[k].type == type && rd->msgs[k].to == to)
            return &rd->msgs[k];
    return NULL;
}

/* find_msg that fails the test when the message is missing. */
static const struct raft_msg *must_find(const struct raft_ready *rd, uint8_t type, int to)
{
    const struct raft_msg *m = find_msg(rd, type, to);
    ck_assert_msg(m != NULL, "no %s to %d in the ready", raft_msg_type_name(type), to);
    return m;
}

static int count_msgs(const struct raft_ready *rd, uint8_t type)
{
    int n = 0;
    for (uint32_t k = 0; k < rd->n_msgs; k++)
        n += rd->msgs[k].type == type;
    return n;
}

/* ---------- hand-made messages ---------- */

static struct raft_msg mk_vote(int from, int to, raft_term_t term, raft_index_t last_index,
                               raft_term_t last_term)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE;
    m.from = from;
    m.to = to;
    m.term = term;
    m.last_log_index = last_index;
    m.last_log_term = last_term;
    return m;
}

static struct raft_msg mk_vote_resp(int from, int to, raft_term_t term, bool granted)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE_RESP;
    m.from = from;
    m.to = to;
    m.term = term;
    m.vote_granted = granted;
    return m;
}

/* An APPEND carrying entries of the given terms at prev + 1 ...; free with
 * raft_msg_free_entries(). */
static struct raft_msg mk_append(int from, int to, raft_term_t term, raft_index_t prev,
                                 raft_term_t prev_term, raft_index_t commit,
                                 const raft_term_t *terms, uint32_t n)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.from = from;
    m.to = to;
    m.term = term;
    m.prev_log_index = prev;
    m.prev_log_term = prev_term;
    m.leader_commit = commit;
    if (n > 0) {
        m.entries = calloc(n, sizeof(*m.entries));
        ck_assert_ptr_nonnull(m.entries);
        for (uint32_t i = 0; i < n; i++)
            init_entry(&m.entries[i], terms[i], prev + 1 + i);
        m.n_entries = n;
    }
    return m;
}

static struct raft_msg mk_append_ok(int from, int to, raft_term_t term, raft_index_t match)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND_RESP;
    m.from = from;
    m.to = to;
    m.term = term;
    m.success = true;
    m.match_index = match;
    return m;
}

static struct raft_msg mk_append_reject(int from, int to, raft_term_t term,
                                        raft_index_t reject_index,
                                        raft_index_t conflict_index,
                                        raft_term_t conflict_term)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND_RESP;
    m.from = from;
    m.to = to;
    m.term = term;
    m.success = false;
    m.reject_index = reject_index;
    m.conflict_index = conflict_index;
    m.conflict_term = conflict_term;
    return m;
}

/* Steps a hand-made APPEND into r, frees its entries, and takes the ready. */
static void step_append(struct raft *r, uint64_t now, struct raft_msg *m,
                        struct raft_ready *rd)
{
    step_take(r, now, m, rd);
    raft_msg_free_entries(m);
}

/* Node 0 of n_nodes, loaded with the given term and log, times out and wins the votes of
 * nodes 1 .. n_nodes/2 (hand-made). The ready holding its no-op is left pending. */
static struct raft *mk_leader(int n_nodes, raft_term_t term, const struct run *runs,
                              int n_runs, uint64_t *now)
{
    ck_assert_int_gt(n_nodes, 1);
    struct raft *r = mk_core(0, n_nodes, term, RAFT_NO_NODE, runs, n_runs, *now);
    *now += EL_MAX;
    raft_tick(r, *now);
    ck_assert_role(r, RAFT_CANDIDATE);
    drain(r, *now);
    for (int p = 1; p <= n_nodes / 2; p++) {
        struct raft_msg m = mk_vote_resp(p, 0, term + 1, true);
        raft_step(r, *now, &m);
    }
    ck_assert_role(r, RAFT_LEADER);
    ck_assert_uint_eq(raft_term(r), term + 1);
    return r;
}

/* Node 0 of n_nodes with an empty log, after its election timeout, messages dropped. */
static struct raft *mk_candidate(int n_nodes, uint64_t *now)
{
    struct raft *r = mk_core(0, n_nodes, 0, RAFT_NO_NODE, NULL, 0, *now);
    *now += EL_MAX;
    raft_tick(r, *now);
    ck_assert_role(r, RAFT_CANDIDATE);
    ck_assert_uint_eq(raft_term(r), 1);
    drain(r, *now);
    return r;
}

/* The next APPEND r sends to peer: from what is pending, else after heartbeats.
 * Copies it into *out (free with raft_msg_free_entries). */
static bool next_append_to(struct raft *r, int peer, uint64_t *now, struct raft_msg *out)
{
    for (int tries = 0; tries < 6; tries++) {
        if (!raft_has_ready(r)) {
            *now += HB;
            raft_tick(r, *now);
            continue;
        }
        struct raft_ready rd;
        take(r, &rd);
        const struct raft_msg *m = find_msg(&rd, RAFT_MSG_APPEND, peer);
        bool found = m != NULL;
        if (found)
            ck_assert_int_eq(raft_msg_copy(out, m), RK_OK);
        done_free(r, *now, &rd);
        if (found)
            return true;
    }
    return false;
}

/* ---------- a cluster of cores with a hand-driven network ---------- */

struct cluster {
    int n;
    uint64_t now;
    struct raft *node[MAX_NODES];
    bool cut[MAX_NODES][MAX_NODES];          /* cut[a][b]: messages a -> b are lost */
    uint64_t last_append_at[MAX_NODES];      /* when node i last got an APPEND */
    uint64_t appends_to[MAX_NODES];          /* APPENDs delivered to node i */
    raft_index_t min_truncate[MAX_NODES];    /* lowest truncate_from in i's readies */
};

static void cluster_init_opts(struct cluster *c, int n, uint64_t seed_base, bool pre_vote,
                              bool check_quorum)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    for (int i = 0; i < n; i++) {
        struct raft_config cfg = test_cfg(i, n);
        cfg.seed = seed_base + (uint64_t)i;
        cfg.pre_vote = pre_vote;
        cfg.check_quorum = check_quorum;
        c->node[i] = new_core(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0);
    }
}

static void cluster_init(struct cluster *c, int n, uint64_t seed_base)
{
    cluster_init_opts(c, n, seed_base, false, false);
}

static void cluster_free(struct cluster *c)
{
    for (int i = 0; i < c->n; i++)
        raft_free(c->node[i]);
}

static void cluster_isolate(struct cluster *c, int i, bool isolated)
{
    for (int j = 0; j < c->n; j++) {
        c->cut[i][j] = isolated;
        c->cut[j][i] = isolated;
    }
}

/* Delivers the messages of a ready taken from node i (the ready keeps ownership). */
static void cluster_deliver(struct cluster *c, int i, const struct raft_ready *rd)
{
    for (uint32_t k = 0; k < rd->n_msgs; k++) {
        struct raft_msg m = rd->msgs[k]; /* shallow: the core copies what it keeps */
        int to = m.to;
        ck_assert_msg(to >= 0 && to < c->n && to != i, "node %d sent to %d", i, to);
        m.from = i;                      /* as the connection handshake would */
        if (c->cut[i][to])
            continue;
        if (m.type == RAFT_MSG_APPEND) {
            c->last_append_at[to] = c->now;
            c->appends_to[to]++;
        }
        raft_step(c->node[to], c->now, &m);
    }
}

/* Takes node i's ready, makes it durable, delivers its messages. Returns whether there
 * was a ready. */
static bool cluster_flush(struct cluster *c, int i)
{
    struct raft *r = c->node[i];
    if (!raft_has_ready(r))
        return false;
    struct raft_ready rd;
    ck_assert_int_eq(raft_ready_take(r, &rd), RK_OK);
    if (rd.truncate_from != 0 &&
        (c->min_truncate[i] == 0 || rd.truncate_from < c->min_truncate[i]))
        c->min_truncate[i] = rd.truncate_from;
    raft_ready_done(r, c->now, &rd);
    cluster_deliver(c, i, &rd);
    raft_ready_free(&rd);
    return true;
}

/* Delivers messages until no node has anything pending. */
static void cluster_settle(struct cluster *c)
{
    for (int pass = 0; pass < 500; pass++) {
        bool any = false;
        for (int i = 0; i < c->n; i++)
            any |= cluster_flush(c, i);
        if (!any)
            return;
    }
    ck_abort_msg("cluster did not settle in 500 passes");
}

/* Runs the cluster for ms: every STEP_MS every node not in skip ticks, then all settle. */
static void cluster_run(struct cluster *c, uint64_t ms, int skip)
{
    for (uint64_t t = 0; t < ms; t += STEP_MS) {
        c->now += STEP_MS;
        for (int i = 0; i < c->n; i++)
            if (i != skip)
                raft_tick(c->node[i], c->now);
        cluster_settle(c);
    }
}

/* Node id times out (only it is ticked) and wins; every message is delivered. */
static void cluster_elect(struct cluster *c, int id)
{
    c->now += EL_MAX;
    raft_tick(c->node[id], c->now);
    ck_assert_role(c->node[id], RAFT_CANDIDATE);
    cluster_settle(c);
    ck_assert_role(c->node[id], RAFT_LEADER);
    for (int i = 0; i < c->n; i++)
        if (i != id && !c->cut[id][i])
            ck_assert_int_eq(raft_leader(c->node[i]), id);
}

/* ================= construction ================= */

START_TEST(test_new_rejects_bad_config)
{
    struct raft_config cfg = test_cfg(0, 0);
    ck_assert_ptr_null(raft_new(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0));
    cfg = test_cfg(0, 65);
    ck_assert_ptr_null(raft_new(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0));
    cfg = test_cfg(-1, 3);
    ck_assert_ptr_null(raft_new(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0));
    cfg = test_cfg(3, 3);
    ck_assert_ptr_null(raft_new(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0));

    struct run log[] = {{2, 1}, {1, 3}};
    struct raft *r = mk_core(2, 3, 4, 1, log, 2, 0);
    ck_assert_int_eq(raft_self(r), 2);
    ck_assert_uint_eq(raft_term(r), 4);
    ck_assert_int_eq(raft_voted_for(r), 1);
    ck_assert_uint_eq(raft_last_index(r), 3);
    ck_assert_uint_eq(raft_last_term(r), 3);
    ck_assert_uint_eq(raft_stable_index(r), 3);
    ck_assert_uint_eq(raft_commit_index(r), 0);
    ck_assert_role(r, RAFT_FOLLOWER);
    ck_assert_int_eq(raft_leader(r), RAFT_NO_NODE);
    ck_assert_uint_eq(raft_entry_at(r, 2)->term, 1);
    ck_assert_str_eq(raft_entry_at(r, 3)->key, "k3");
    ck_assert_ptr_null(raft_entry_at(r, 0));
    ck_assert_ptr_null(raft_entry_at(r, 4));
    raft_free(r);
}
END_TEST

/* ================= elections (§5.2, Figure 2 RequestVote) ================= */

START_TEST(test_election_timeout_starts_election)
{
    struct run log[] = {{2, 1}, {1, 2}};
    struct raft *r = mk_core(0, 3, 2, RAFT_NO_NODE, log, 2, 1000);
    uint64_t d = raft_next_deadline(r);
    ck_assert_uint_ge(d, 1000 + EL_MIN);
    ck_assert_uint_lt(d, 1000 + EL_MAX);

    raft_tick(r, d - 1);
    ck_assert_role(r, RAFT_FOLLOWER);
    ck_assert(!raft_has_ready(r));

    raft_tick(r, d);
    ck_assert_role(r, RAFT_CANDIDATE);
    ck_assert_uint_eq(raft_term(r), 3);
    ck_assert_int_eq(raft_voted_for(r), 0);

    /* The vote for itself is in the same ready as the VOTE requests (persisted first). */
    struct raft_ready rd;
    take(r, &rd);
    ck_assert(rd.hard_state_changed);
    ck_assert_uint_eq(rd.term, 3);
    ck_assert_int_eq(rd.voted_for, 0);
    ck_assert_int_eq(count_msgs(&rd, RAFT_MSG_VOTE), 2);
    for (int p = 1; p <= 2; p++) {
        const struct raft_msg *m = find_msg(&rd, RAFT_MSG_VOTE, p);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(m->term, 3);
        ck_assert_uint_eq(m->last_log_index, 3);
        ck_assert_uint_eq(m->last_log_term, 2);
    }
    done_free(r, d, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_vote_granted_and_persisted)
{
    struct raft *r = mk_core(1, 3, 0, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_msg m = mk_vote(0, 1, 1, 0, 0);
    struct raft_ready rd;
    step_take(r, 10, &m, &rd);
    ck_assert(rd.hard_state_changed);
    ck_assert_uint_eq(rd.term, 1);
    ck_assert_int_eq(rd.voted_for, 0);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->vote_granted);
    ck_assert_uint_eq(resp->term, 1);
    ck_assert_role(r, RAFT_FOLLOWER);
    ck_assert_uint_eq(raft_term(r), 1);
    ck_assert_int_eq(raft_voted_for(r), 0);
    done_free(r, 10, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_vote_denied_stale_last_term)
{
    struct run log[] = {{2, 1}, {1, 2}}; /* last = 3, term 2 */
    struct raft *r = mk_core(1, 5, 2, RAFT_NO_NODE, log, 2, 0);
    struct raft_ready rd;

    /* Longer log but older last term: not up to date (§5.4.1). */
    struct raft_msg m = mk_vote(0, 1, 3, 5, 1);
    step_take(r, 10, &m, &rd);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(!resp->vote_granted);
    ck_assert_uint_eq(resp->term, 3);
    ck_assert(rd.hard_state_changed); /* the higher term is adopted, with no vote */
    ck_assert_uint_eq(rd.term, 3);
    ck_assert_int_eq(rd.voted_for, RAFT_NO_NODE);
    ck_assert_int_eq(raft_voted_for(r), RAFT_NO_NODE);
    ck_assert_uint_eq(raft_term(r), 3);
    done_free(r, 10, &rd);

    /* Shorter log but a higher last term: up to date. */
    m = mk_vote(2, 1, 4, 1, 3);
    step_take(r, 20, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 2);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->vote_granted);
    ck_assert_uint_eq(raft_term(r), 4);
    ck_assert_int_eq(raft_voted_for(r), 2);
    done_free(r, 20, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_vote_denied_same_term_shorter_log)
{
    struct run log[] = {{2, 1}, {1, 2}}; /* last = 3, term 2 */
    struct raft *r = mk_core(1, 5, 2, RAFT_NO_NODE, log, 2, 0);
    struct raft_ready rd;

    struct raft_msg m = mk_vote(0, 1, 3, 2, 2); /* same last term, shorter */
    step_take(r, 10, &m, &rd);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(!resp->vote_granted);
    ck_assert_int_eq(raft_voted_for(r), RAFT_NO_NODE);
    done_free(r, 10, &rd);

    m = mk_vote(2, 1, 3, 3, 2); /* same last term, same length: granted */
    step_take(r, 20, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 2);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->vote_granted);
    ck_assert(rd.hard_state_changed);
    ck_assert_int_eq(rd.voted_for, 2);
    done_free(r, 20, &rd);

    m = mk_vote(3, 1, 4, 4, 2); /* same last term, longer, next term: granted */
    step_take(r, 30, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 3);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->vote_granted);
    ck_assert_uint_eq(raft_term(r), 4);
    ck_assert_int_eq(raft_voted_for(r), 3);
    done_free(r, 30, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_vote_denied_already_voted_other)
{
    struct raft *r = mk_core(1, 3, 0, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_ready rd;
    struct raft_msg m = mk_vote(0, 1, 1, 0, 0);
    step_take(r, 10, &m, &rd);
    ck_assert(must_find(&rd, RAFT_MSG_VOTE_RESP, 0)->vote_granted);
    done_free(r, 10, &rd);

    m = mk_vote(2, 1, 1, 5, 1); /* better log, same term: one vote per term */
    step_take(r, 20, &m, &rd);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 2);
    ck_assert_ptr_nonnull(resp);
    ck_assert(!resp->vote_granted);
    ck_assert_uint_eq(resp->term, 1);
    ck_assert(!rd.hard_state_changed);
    ck_assert_int_eq(raft_voted_for(r), 0);
    done_free(r, 20, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_vote_same_candidate_twice)
{
    struct raft *r = mk_core(1, 3, 0, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_ready rd;
    struct raft_msg m = mk_vote(0, 1, 1, 0, 0);
    step_take(r, 10, &m, &rd);
    ck_assert(must_find(&rd, RAFT_MSG_VOTE_RESP, 0)->vote_granted);
    done_free(r, 10, &rd);

    step_take(r, 20, &m, &rd); /* a retransmitted request: granted again */
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->vote_granted);
    ck_assert_int_eq(raft_voted_for(r), 0);
    done_free(r, 20, &rd);
    raft_free(r);

    /* After a restart, the persisted vote still binds. */
    r = mk_core(1, 3, 1, 0, NULL, 0, 0);
    m = mk_vote(2, 1, 1, 0, 0);
    step_take(r, 10, &m, &rd);
    ck_assert(!must_find(&rd, RAFT_MSG_VOTE_RESP, 2)->vote_granted);
    done_free(r, 10, &rd);
    m = mk_vote(0, 1, 1, 0, 0);
    step_take(r, 20, &m, &rd);
    ck_assert(must_find(&rd, RAFT_MSG_VOTE_RESP, 0)->vote_granted);
    done_free(r, 20, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_vote_lower_term_denied)
{
    struct raft *r = mk_core(1, 3, 5, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_msg m = mk_vote(0, 1, 4, 10, 4);
    struct raft_ready rd;
    step_take(r, 10, &m, &rd);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 0);
    ck_assert_ptr_nonnull(resp); /* Figure 2: reply false if term < currentTerm */
    ck_assert(!resp->vote_granted);
    ck_assert_uint_eq(resp->term, 5);
    ck_assert(!rd.hard_state_changed);
    ck_assert_uint_eq(raft_term(r), 5);
    ck_assert_int_eq(raft_voted_for(r), RAFT_NO_NODE);
    done_free(r, 10, &rd);
    raft_free(r);
}
END_TEST

/* ================= stepping down on a higher term (Figure 2, all servers) ========= */

START_TEST(test_step_down_on_vote)
{
    uint64_t now = 0;
    struct raft *r = mk_leader(3, 0, NULL, 0, &now);
    drain(r, now);
    struct raft_msg m = mk_vote(2, 0, 5, 0, 0); /* stale log: denied, but term adopted */
    struct raft_ready rd;
    step_take(r, now, &m, &rd);
    ck_assert_role(r, RAFT_FOLLOWER);
    ck_assert_uint_eq(raft_term(r), 5);
    ck_assert_int_eq(raft_voted_for(r), RAFT_NO_NODE);
    ck_assert_int_ne(raft_leader(r), 0);
    ck_assert(rd.hard_state_changed);
    ck_assert_uint_eq(rd.term, 5);
    ck_assert_int_eq(rd.voted_for, RAFT_NO_NODE);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_VOTE_RESP, 2);
    ck_assert_ptr_nonnull(resp);
    ck_assert(!resp->vote_granted);
    ck_assert_uint_eq(resp->term, 5);
    done_free(r, now, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_step_down_on_vote_resp)
{
    uint64_t now = 0;
    struct raft *r = mk_candidate(3, &now);
    struct raft_msg m = mk_vote_resp(1, 0, 3, false);
    struct raft_ready rd;
    step_take(r, now, &m, &rd);
    ck_assert_role(r, RAFT_FOLLOWER);
    ck_assert_uint_eq(raft_term(r), 3);
    ck_assert_int_eq(raft_voted_for(r), RAFT_NO_NODE);
    ck_assert(rd.hard_state_changed);
    ck_assert_uint_eq(rd.term, 3);
    ck_assert_int_eq(rd.voted_for, RAFT_NO_NODE);
    done_free(r, now, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_step_down_on_append)
{
    uint64_t now = 0;
    struct raft *r = mk_leader(3, 0, NULL, 0, &now);
    drain(r, now); /* log: no-op at 1, term 1 */
    struct raft_msg m = mk_append(1, 0, 2, 0, 0, 0, NULL, 0);
    struct raft_ready rd;
    step_append(r, now, &m, &rd);
    ck_assert_role(r, RAFT_FOLLOWER);
    ck_assert_uint_eq(raft_term(r), 2);
    ck_assert_int_eq(raft_leader(r), 1);
    ck_assert_int_eq(raft_voted_for(r), RAFT_NO_NODE);
    ck_assert(rd.hard_state_changed);
    ck_assert_uint_eq(rd.term, 2);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 1);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->success);
    ck_assert_uint_eq(resp->term, 2);
    ck_assert_uint_eq(resp->match_index, 0);
    ck_assert_uint_eq(rd.truncate_from, 0); /* an empty append drops nothing */
    ck_assert_uint_eq(raft_last_index(r), 1);
    done_free(r, now, &rd);
    raft_free(r);

    /* A candidate that hears from a leader of its own term steps down (§5.2). */
    now = 0;
    r = mk_candidate(3, &now);
    m = mk_append(2, 0, 1, 0, 0, 0, NULL, 0);
    step_append(r, now, &m, &rd);
    ck_assert_role(r, RAFT_FOLLOWER);
    ck_assert_uint_eq(raft_term(r), 1);
    ck_assert_int_eq(raft_leader(r), 2);
    ck_assert_int_eq(raft_voted_for(r), 0); /* the vote of this term stays */
    ck_assert(must_find(&rd, RAFT_MSG_APPEND_RESP, 2)->success);
    done_free(r, now, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_step_down_on_append_resp)
{
    uint64_t now = 0;
    struct raft *r = mk_leader(3, 0, NULL, 0, &now);
    drain(r, now);
    struct raft_msg m = mk_append_reject(2, 0, 3, 1, 1, 0);
    struct raft_ready rd;
    step_take(r, now, &m, &rd);
    ck_assert_role(r, RAFT_FOLLOWER);
    ck_assert_uint_eq(raft_term(r), 3);
    ck_assert_int_eq(raft_voted_for(r), RAFT_NO_NODE);
    ck_assert_int_eq(raft_leader(r), RAFT_NO_NODE);
    ck_assert(rd.hard_state_changed);
    ck_assert_uint_eq(rd.term, 3);
    done_free(r, now, &rd);
    raft_free(r);
}
END_TEST

/* ================= winning elections ================= */

START_TEST(test_candidate_wins_with_majority)
{
    uint64_t now = 0;
    struct raft *r = mk_candidate(5, &now);
    struct raft_msg m = mk_vote_resp(1, 0, 1, true);
    raft_step(r, now, &m);
    ck_assert_role(r, RAFT_CANDIDATE); /* 2 of 5 */
    m = mk_vote_resp(2, 0, 1, true);
    raft_step(r, now, &m);
    ck_assert_role(r, RAFT_LEADER);    /* 3 of 5 */
    ck_assert_int_eq(raft_leader(r), 0);
    ck_assert_uint_eq(raft_term(r), 1);

    /* §8: a no-op of the new term, and AppendEntries to every peer. */
    ck_assert_uint_eq(raft_last_index(r), 1);
    ck_assert_int_eq(raft_entry_at(r, 1)->type, RAFT_ENTRY_NOOP);
    ck_assert_uint_eq(raft_entry_at(r, 1)->term, 1);
    int appends[MAX_NODES] = {0};
    for (int i = 0; i < 2 && raft_has_ready(r); i++) {
        struct raft_ready rd;
        take(r, &rd);
        for (int p = 1; p < 5; p++) {
            const struct raft_msg *a = find_msg(&rd, RAFT_MSG_APPEND, p);
            if (a != NULL) {
                ck_assert_uint_eq(a->term, 1);
                appends[p]++;
            }
        }
        done_free(r, now, &rd);
    }
    for (int p = 1; p < 5; p++)
        ck_assert_msg(appends[p] > 0, "no APPEND to peer %d", p);
    raft_free(r);
}
END_TEST

START_TEST(test_candidate_not_with_minority)
{
    uint64_t now = 0;
    struct raft *r = mk_candidate(5, &now);
    struct raft_msg m = mk_vote_resp(1, 0, 1, true);
    raft_step(r, now, &m);
    raft_step(r, now, &m); /* a duplicate vote counts once */
    for (int p = 2; p < 5; p++) {
        m = mk_vote_resp(p, 0, 1, false);
        raft_step(r, now, &m);
    }
    ck_assert_role(r, RAFT_CANDIDATE);
    drain(r, now);

    /* Next election: votes from the old term do not count. */
    uint64_t d = raft_next_deadline(r);
    ck_assert_uint_gt(d, now);
    now = d;
    raft_tick(r, now);
    ck_assert_role(r, RAFT_CANDIDATE);
    ck_assert_uint_eq(raft_term(r), 2);
    drain(r, now);
    for (int p = 3; p < 5; p++) {
        m = mk_vote_resp(p, 0, 1, true);
        raft_step(r, now, &m);
    }
    ck_assert_role(r, RAFT_CANDIDATE);
    m = mk_vote_resp(1, 0, 2, true);
    raft_step(r, now, &m);
    ck_assert_role(r, RAFT_CANDIDATE);
    m = mk_vote_resp(2, 0, 2, true);
    raft_step(r, now, &m);
    ck_assert_role(r, RAFT_LEADER);
    drain(r, now);
    raft_free(r);
}
END_TEST

START_TEST(test_split_vote_new_election)
{
    struct cluster c;
    cluster_init(&c, 4, 1);
    c.cut[0][3] = true; /* 0 reaches 1, 2; 1 reaches 0, 3 */
    c.cut[1][2] = true;
    c.now = EL_MAX;
    raft_tick(c.node[0], c.now);
    raft_tick(c.node[1], c.now);
    ck_assert_role(c.node[0], RAFT_CANDIDATE);
    ck_assert_role(c.node[1], RAFT_CANDIDATE);
    cluster_settle(&c);
    /* 0 has votes {0, 2}, 1 has {1, 3}: 2 of 4 each, no leader. */
    for (int i = 0; i < 2; i++) {
        ck_assert_role(c.node[i], RAFT_CANDIDATE);
        ck_assert_uint_eq(raft_term(c.node[i]), 1);
    }
    ck_assert_int_eq(raft_voted_for(c.node[2]), 0);
    ck_assert_int_eq(raft_voted_for(c.node[3]), 1);

    c.cut[0][3] = c.cut[1][2] = false;
    uint64_t d = raft_next_deadline(c.node[0]);
    ck_assert_uint_ge(d, c.now + EL_MIN);
    ck_assert_uint_lt(d, c.now + EL_MAX);
    raft_tick(c.node[0], d - 1);
    ck_assert_uint_eq(raft_term(c.node[0]), 1);
    c.now = d;
    raft_tick(c.node[0], c.now);
    ck_assert_role(c.node[0], RAFT_CANDIDATE);
    ck_assert_uint_eq(raft_term(c.node[0]), 2);
    cluster_settle(&c);
    ck_assert_role(c.node[0], RAFT_LEADER);
    for (int i = 1; i < 4; i++) {
        ck_assert_role(c.node[i], RAFT_FOLLOWER);
        ck_assert_uint_eq(raft_term(c.node[i]), 2);
    }
    cluster_free(&c);
}
END_TEST

START_TEST(test_single_node_leader_after_durable)
{
    struct raft *r = mk_core(0, 1, 0, RAFT_NO_NODE, NULL, 0, 0);
    raft_tick(r, EL_MAX);
    ck_assert_uint_eq(raft_term(r), 1);
    ck_assert_int_ne(raft_role(r), RAFT_LEADER); /* its own vote is not yet durable */
    struct raft_ready rd;
    take(r, &rd);
    ck_assert(rd.hard_state_changed);
    ck_assert_uint_eq(rd.term, 1);
    ck_assert_int_eq(rd.voted_for, 0);
    ck_assert_uint_eq(rd.n_msgs, 0);
    done_free(r, EL_MAX, &rd);
    ck_assert_role(r, RAFT_LEADER);

    take(r, &rd);
    ck_assert_uint_eq(rd.first_index, 1);
    ck_assert_uint_eq(rd.n_entries, 1);
    ck_assert_int_eq(rd.entries[0].type, RAFT_ENTRY_NOOP);
    ck_assert_uint_eq(raft_commit_index(r), 0); /* not durable yet */
    done_free(r, EL_MAX, &rd);
    ck_assert_uint_eq(raft_commit_index(r), 1);

    raft_index_t idx = 0;
    raft_term_t term = 0;
    ck_assert_int_eq(raft_propose(r, RAFT_ENTRY_SET, "a", 1, "1", 1, &idx, &term), RK_OK);
    ck_assert_uint_eq(idx, 2);
    ck_assert_uint_eq(term, 1);
    ck_assert_uint_eq(raft_commit_index(r), 1);
    drain(r, EL_MAX);
    ck_assert_uint_eq(raft_commit_index(r), 2);
    raft_free(r);
}
END_TEST

/* ================= AppendEntries receiver (Figure 2) ================= */

START_TEST(test_append_consistency_check)
{
    struct run log[] = {{2, 1}, {1, 2}}; /* terms 1 1 2 */
    struct raft *r = mk_core(1, 3, 2, RAFT_NO_NODE, log, 2, 0);
    struct raft_ready rd;

    /* prev beyond our log: hint = last + 1, term 0. */
    struct raft_msg m = mk_append(0, 1, 2, 5, 2, 0, NULL, 0);
    m.read_ctx = 77;
    step_append(r, 10, &m, &rd);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(!resp->success);
    ck_assert_uint_eq(resp->term, 2);
    ck_assert_uint_eq(resp->reject_index, 5);
    ck_assert_uint_eq(resp->conflict_index, 4);
    ck_assert_uint_eq(resp->conflict_term, 0);
    ck_assert_uint_eq(resp->read_ctx, 77);
    ck_assert_uint_eq(rd.n_entries, 0);
    done_free(r, 10, &rd);

    /* Term mismatch at prev: hint = that term and its first index. */
    raft_term_t t3[] = {3};
    m = mk_append(0, 1, 3, 3, 3, 0, t3, 1);
    step_append(r, 20, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(!resp->success);
    ck_assert_uint_eq(resp->term, 3);
    ck_assert_uint_eq(resp->reject_index, 3);
    ck_assert_uint_eq(resp->conflict_term, 2);
    ck_assert_uint_eq(resp->conflict_index, 3);
    ck_assert_uint_eq(rd.n_entries, 0);
    ck_assert_uint_eq(rd.truncate_from, 0);
    ck_assert_uint_eq(raft_last_index(r), 3);
    ck_assert_uint_eq(raft_entry_at(r, 3)->term, 2);
    done_free(r, 20, &rd);

    /* A stale leader is refused with our term. */
    m = mk_append(2, 1, 1, 0, 0, 0, t3, 1);
    step_append(r, 30, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 2);
    ck_assert_ptr_nonnull(resp);
    ck_assert(!resp->success);
    ck_assert_uint_eq(resp->term, 3);
    ck_assert_uint_eq(rd.n_entries, 0);
    ck_assert_uint_eq(raft_last_index(r), 3);
    ck_assert_int_eq(raft_leader(r), 0);
    done_free(r, 30, &rd);

    /* Matching prev: appended after it. */
    raft_term_t t33[] = {3, 3};
    m = mk_append(0, 1, 3, 3, 2, 0, t33, 2);
    m.read_ctx = 78;
    step_append(r, 40, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->success);
    ck_assert_uint_eq(resp->match_index, 5);
    ck_assert_uint_eq(resp->read_ctx, 78);
    ck_assert_uint_eq(rd.truncate_from, 0);
    ck_assert_uint_eq(rd.first_index, 4);
    ck_assert_uint_eq(rd.n_entries, 2);
    ck_assert_uint_eq(raft_last_index(r), 5);
    done_free(r, 40, &rd);
    ck_assert_uint_eq(raft_stable_index(r), 5);
    raft_free(r);

    /* The hint names the first index of the conflicting term. */
    struct run log2[] = {{1, 1}, {3, 2}, {1, 3}}; /* terms 1 2 2 2 3 */
    r = mk_core(1, 3, 3, RAFT_NO_NODE, log2, 3, 0);
    m = mk_append(0, 1, 4, 4, 3, 0, NULL, 0);
    step_append(r, 10, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(!resp->success);
    ck_assert_uint_eq(resp->conflict_term, 2);
    ck_assert_uint_eq(resp->conflict_index, 2);
    ck_assert_uint_eq(resp->reject_index, 4);
    done_free(r, 10, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_append_truncates_conflicting_suffix)
{
    struct run log[] = {{2, 1}, {2, 2}}; /* terms 1 1 2 2 */
    struct raft *r = mk_core(1, 3, 2, RAFT_NO_NODE, log, 2, 0);
    struct raft_ready rd;
    /* Entry 2 matches (term 1), entry 3 conflicts: drop from 3 only. */
    raft_term_t terms[] = {1, 3, 3};
    struct raft_msg m = mk_append(0, 1, 3, 1, 1, 0, terms, 3);
    step_append(r, 10, &m, &rd);
    ck_assert_uint_eq(rd.truncate_from, 3);
    ck_assert_uint_eq(rd.first_index, 3);
    ck_assert_uint_eq(rd.n_entries, 2);
    ck_assert_uint_eq(rd.entries[0].term, 3);
    ck_assert_uint_eq(rd.entries[1].term, 3);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert_ptr_nonnull(resp); /* same ready as the entries: sent after they are durable */
    ck_assert(resp->success);
    ck_assert_uint_eq(resp->match_index, 4);
    done_free(r, 10, &rd);
    ck_assert_uint_eq(raft_last_index(r), 4);
    ck_assert_uint_eq(raft_entry_at(r, 2)->term, 1);
    ck_assert_uint_eq(raft_entry_at(r, 3)->term, 3);
    ck_assert_uint_eq(raft_entry_at(r, 4)->term, 3);
    ck_assert_ptr_null(raft_entry_at(r, 5));
    raft_free(r);

    /* A shorter replacement also drops the old tail beyond it. */
    r = mk_core(1, 3, 2, RAFT_NO_NODE, log, 2, 0);
    raft_term_t t3[] = {3};
    m = mk_append(0, 1, 3, 2, 1, 0, t3, 1);
    step_append(r, 10, &m, &rd);
    ck_assert_uint_eq(rd.truncate_from, 3);
    ck_assert_uint_eq(must_find(&rd, RAFT_MSG_APPEND_RESP, 0)->match_index, 3);
    done_free(r, 10, &rd);
    ck_assert_uint_eq(raft_last_index(r), 3);
    ck_assert_uint_eq(raft_last_term(r), 3);
    raft_free(r);
}
END_TEST

START_TEST(test_append_stale_shorter_no_truncation)
{
    struct raft *r = mk_core(1, 3, 1, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_ready rd;
    raft_term_t t111[] = {1, 1, 1};
    struct raft_msg m = mk_append(0, 1, 1, 0, 0, 0, t111, 3);
    step_append(r, 10, &m, &rd);
    ck_assert(must_find(&rd, RAFT_MSG_APPEND_RESP, 0)->success);
    done_free(r, 10, &rd);
    ck_assert_uint_eq(raft_last_index(r), 3);

    /* An older, shorter append arrives late: nothing may be dropped. */
    m = mk_append(0, 1, 1, 0, 0, 0, t111, 1);
    step_append(r, 20, &m, &rd);
    const struct raft_msg *resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->success);
    ck_assert_uint_eq(resp->match_index, 1);
    ck_assert_uint_eq(rd.truncate_from, 0);
    ck_assert_uint_eq(rd.n_entries, 0);
    done_free(r, 20, &rd);
    ck_assert_uint_eq(raft_last_index(r), 3);

    m = mk_append(0, 1, 1, 1, 1, 0, t111, 2); /* entries 2..3, already held */
    step_append(r, 30, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert_ptr_nonnull(resp);
    ck_assert(resp->success);
    ck_assert_uint_eq(resp->match_index, 3);
    ck_assert_uint_eq(rd.truncate_from, 0);
    ck_assert_uint_eq(rd.n_entries, 0);
    done_free(r, 30, &rd);

    m = mk_append(0, 1, 1, 0, 0, 0, NULL, 0); /* an old heartbeat */
    step_append(r, 40, &m, &rd);
    resp = find_msg(&rd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert(resp->success);
    ck_assert_uint_eq(resp->match_index, 0);
    ck_assert_uint_eq(rd.truncate_from, 0);
    done_free(r, 40, &rd);
    ck_assert_uint_eq(raft_last_index(r), 3);

    m = mk_append(0, 1, 1, 1, 1, 0, t111, 3); /* entries 2..4: only 4 is new */
    step_append(r, 50, &m, &rd);
    ck_assert_uint_eq(rd.truncate_from, 0);
    ck_assert_uint_eq(rd.first_index, 4);
    ck_assert_uint_eq(rd.n_entries, 1);
    ck_assert_uint_eq(must_find(&rd, RAFT_MSG_APPEND_RESP, 0)->match_index, 4);
    done_free(r, 50, &rd);
    ck_assert_uint_eq(raft_last_index(r), 4);
    raft_free(r);
}
END_TEST

START_TEST(test_follower_commit_from_leader_commit)
{
    struct raft *r = mk_core(1, 3, 1, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_ready rd;
    raft_term_t t111[] = {1, 1, 1};
    /* commit = min(leader_commit, index of last new entry) */
    struct raft_msg m = mk_append(0, 1, 1, 0, 0, 3, t111, 1);
    step_append(r, 10, &m, &rd);
    done_free(r, 10, &rd);
    ck_assert_uint_eq(raft_commit_index(r), 1);

    m = mk_append(0, 1, 1, 1, 1, 2, t111, 2);
    step_append(r, 20, &m, &rd);
    done_free(r, 20, &rd);
    ck_assert_uint_eq(raft_commit_index(r), 2);

    m = mk_append(0, 1, 1, 3, 1, 5, NULL, 0);
    step_append(r, 30, &m, &rd);
    done_free(r, 30, &rd);
    ck_assert_uint_eq(raft_commit_index(r), 3);

    m = mk_append(0, 1, 1, 3, 1, 1, NULL, 0); /* never goes back */
    step_append(r, 40, &m, &rd);
    done_free(r, 40, &rd);
    ck_assert_uint_eq(raft_commit_index(r), 3);

    m = mk_append(0, 1, 1, 1, 1, 3, NULL, 0);
    step_append(r, 50, &m, &rd);
    done_free(r, 50, &rd);
    ck_assert_uint_eq(raft_commit_index(r), 3);

    m = mk_append(0, 1, 1, 9, 1, 9, NULL, 0); /* a rejected append moves nothing */
    step_append(r, 60, &m, &rd);
    ck_assert(!must_find(&rd, RAFT_MSG_APPEND_RESP, 0)->success);
    done_free(r, 60, &rd);
    ck_assert_uint_eq(raft_commit_index(r), 3);
    raft_free(r);
}
END_TEST

/* ================= leader ================= */

START_TEST(test_leader_noop_at_term_start)
{
    uint64_t now = 0;
    struct run log[] = {{2, 1}};
    struct raft *r = mk_leader(3, 1, log, 1, &now);
    ck_assert_uint_eq(raft_term(r), 2);
    ck_assert_uint_eq(raft_last_index(r), 3);
    ck_assert_uint_eq(raft_last_term(r), 2);
    ck_assert_int_eq(raft_entry_at(r, 3)->type, RAFT_ENTRY_NOOP);
    ck_assert_uint_eq(raft_commit_index(r), 0);

    struct raft_ready rd;
    take(r, &rd);
    ck_assert_uint_eq(rd.first_index, 3);
    ck_assert_uint_eq(rd.n_entries, 1);
    ck_assert_int_eq(rd.entries[0].type, RAFT_ENTRY_NOOP);
    ck_assert_uint_eq(rd.entries[0].term, 2);
    for (int p = 1; p <= 2; p++) {
        const struct raft_msg *a = find_msg(&rd, RAFT_MSG_APPEND, p);
        if (a == NULL)
            continue; /* may come once the no-op is durable: checked below */
        ck_assert_uint_eq(a->term, 2);
        ck_assert_uint_eq(a->prev_log_index + a->n_entries, 3);
        ck_assert_uint_eq(a->prev_log_term, raft_entry_at(r, a->prev_log_index)->term);
        ck_assert_uint_eq(a->leader_commit, 0);
    }
    done_free(r, now, &rd);
    for (int p = 1; p <= 2; p++) {
        struct raft_msg a;
        ck_assert(next_append_to(r, p, &now, &a));
        ck_assert_uint_eq(a.term, 2);
        raft_msg_free_entries(&a);
    }
    raft_free(r);
}
END_TEST

/* Figure 2, volatile state on leaders, reinitialized after election: nextIndex to the
 * leader's last index + 1, matchIndex to 0. What a follower acknowledged in an earlier
 * leadership may since have been replaced by another leader. */
START_TEST(test_leader_state_reset_on_election)
{
    uint64_t now = 0;
    struct run log[] = {{6, 1}};
    struct raft *r = mk_leader(3, 1, log, 1, &now); /* term 2, no-op at 7 */
    drain(r, now);
    struct raft_msg m = mk_append_ok(1, 0, 2, 7);
    raft_step(r, now, &m);
    ck_assert_uint_eq(raft_peer_match(r, 1), 7);
    struct raft_msg v = mk_vote(2, 0, 3, 7, 2);   /* node 2 campaigns in term 3 ... */
    raft_step(r, now, &v);
    ck_assert_role(r, RAFT_FOLLOWER);
    drain(r, now);
    now += EL_MAX;                                /* ... and loses; node 0 wins term 4 */
    raft_tick(r, now);
    ck_assert_role(r, RAFT_CANDIDATE);
    drain(r, now);
    struct raft_msg g = mk_vote_resp(2, 0, raft_term(r), true);
    raft_step(r, now, &g);
    ck_assert_role(r, RAFT_LEADER);
    ck_assert_uint_eq(raft_peer_match(r, 1), 0);
    ck_assert_uint_eq(raft_peer_match(r, 2), 0);
    struct raft_msg a;
    ck_assert(next_append_to(r, 1, &now, &a));
    ck_assert_uint_eq(a.prev_log_index, 7); /* from its last index, not from the old match */
    raft_msg_free_entries(&a);
    raft_free(r);
}
END_TEST

START_TEST(test_propose_not_leader)
{
    raft_index_t idx = 0;
    raft_term_t term = 0;
    struct raft *r = mk_core(1, 3, 0, RAFT_NO_NODE, NULL, 0, 0);
    ck_assert_int_eq(raft_propose(r, RAFT_ENTRY_SET, "a", 1, "1", 1, &idx, &term),
                     RK_ERR_NOTLEADER);
    ck_assert_int_eq(raft_read_index(r, 1), RK_ERR_NOTLEADER);
    ck_assert_uint_eq(raft_last_index(r), 0);
    raft_free(r);

    uint64_t now = 0;
    r = mk_candidate(3, &now);
    ck_assert_int_eq(raft_propose(r, RAFT_ENTRY_SET, "a", 1, "1", 1, &idx, &term),
                     RK_ERR_NOTLEADER);
    ck_assert_int_eq(raft_read_index(r, 1), RK_ERR_NOTLEADER);
    ck_assert_uint_eq(raft_last_index(r), 0);
    raft_free(r);

    now = 0;
    r = mk_leader(3, 0, NULL, 0, &now);
    drain(r, now);
    ck_assert_int_eq(raft_propose(r, RAFT_ENTRY_SET, "key", 3, "val\0x", 5, &idx, &term),
                     RK_OK);
    ck_assert_uint_eq(idx, 2);
    ck_assert_uint_eq(term, 1);
    const struct raft_entry *e = raft_entry_at(r, 2);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->type, RAFT_ENTRY_SET);
    ck_assert_uint_eq(e->key_len, 3);
    ck_assert_uint_eq(e->val_len, 5);
    ck_assert_int_eq(memcmp(e->key, "key", 3), 0);
    ck_assert_int_eq(memcmp(e->val, "val\0x", 5), 0);
    struct raft_ready rd;
    take(r, &rd);
    ck_assert_uint_eq(rd.first_index, 2);
    ck_assert_uint_eq(rd.n_entries, 1);
    ck_assert_uint_eq(rd.entries[0].val_len, 5);
    done_free(r, now, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_propose_replicates_and_commits)
{
    struct cluster c;
    cluster_init(&c, 3, 1);
    cluster_elect(&c, 0);
    raft_index_t idx = 0;
    raft_term_t term = 0;
    ck_assert_int_eq(raft_propose(c.node[0], RAFT_ENTRY_SET, "a", 1, "1", 1, &idx, &term),
                     RK_OK);
    ck_assert_uint_eq(idx, 2);
    cluster_run(&c, 2 * HB, -1);
    ck_assert_uint_eq(raft_commit_index(c.node[0]), 2);
    for (int i = 1; i < 3; i++) {
        ck_assert_uint_eq(raft_last_index(c.node[i]), 2);
        ck_assert_uint_eq(raft_commit_index(c.node[i]), 2);
        ck_assert_str_eq(raft_entry_at(c.node[i], 2)->key, "a");
        ck_assert_str_eq(raft_entry_at(c.node[i], 2)->val, "1");
        ck_assert_uint_eq(raft_peer_match(c.node[0], i), 2);
    }
    cluster_free(&c);
}
END_TEST

/* ================= commit rule (§5.3, §5.4.2, Figure 8) ================= */

START_TEST(test_leader_counts_self_only_when_durable)
{
    uint64_t now = 0;
    struct raft *r = mk_leader(3, 0, NULL, 0, &now);
    drain(r, now);
    struct raft_msg m = mk_append_ok(1, 0, 1, 1);
    raft_step(r, now, &m);
    drain(r, now);
    ck_assert_uint_eq(raft_commit_index(r), 1);

    raft_index_t idx = 0;
    raft_term_t term = 0;
    ck_assert_int_eq(raft_propose(r, RAFT_ENTRY_SET, "a", 1, "1", 1, &idx, &term), RK_OK);
    ck_assert_uint_eq(idx, 2);
    struct raft_ready rd;
    take(r, &rd); /* being written, not yet durable */
    ck_assert_uint_eq(rd.first_index, 2);
    ck_assert_uint_eq(raft_stable_index(r), 1);
    m = mk_append_ok(1, 0, 1, 2);
    raft_step(r, now, &m);
    ck_assert_uint_eq(raft_peer_match(r, 1), 2);
    ck_assert_uint_eq(raft_commit_index(r), 1); /* one durable copy of 3 */
    done_free(r, now, &rd);
    ck_assert_uint_eq(raft_stable_index(r), 2);
    ck_assert_uint_eq(raft_commit_index(r), 2);
    raft_free(r);
}
END_TEST

START_TEST(test_figure8_commit_only_current_term)
{
    /* The leader of term 4 holds an entry of term 2 at index 2 (Figure 8 (c)). */
    uint64_t now = 0;
    struct run log[] = {{1, 1}, {1, 2}};
    struct raft *r = mk_leader(5, 3, log, 2, &now);
    ck_assert_uint_eq(raft_term(r), 4);
    ck_assert_uint_eq(raft_last_index(r), 3);
    ck_assert_uint_eq(raft_entry_at(r, 3)->term, 4);
    drain(r, now);

    for (int p = 1; p <= 2; p++) {
        struct raft_msg m = mk_append_ok(p, 0, 4, 2);
        raft_step(r, now, &m);
    }
    drain(r, now);
    ck_assert_uint_eq(raft_peer_match(r, 1), 2);
    ck_assert_uint_eq(raft_peer_match(r, 2), 2);
    /* Index 2 is on 3 of 5, but it is of term 2: not committed by counting. */
    ck_assert_uint_eq(raft_commit_index(r), 0);
    now += HB;
    raft_tick(r, now);
    drain(r, now);
    ck_assert_uint_eq(raft_commit_index(r), 0);

    struct raft_msg m = mk_append_ok(1, 0, 4, 3);
    raft_step(r, now, &m);
    drain(r, now);
    ck_assert_uint_eq(raft_commit_index(r), 0); /* index 3 on 2 of 5 */

    m = mk_append_ok(2, 0, 4, 3);
    raft_step(r, now, &m);
    ck_assert_uint_eq(raft_commit_index(r), 3); /* term-4 entry on 3 of 5: 1..3 commit */

    /* The followers learn it. */
    struct raft_msg a;
    ck_assert(next_append_to(r, 1, &now, &a));
    ck_assert_uint_eq(a.leader_commit, 3);
    raft_msg_free_entries(&a);
    raft_free(r);
}
END_TEST

/* ================= leader backtracking (§5.3 optimization) ================= */

START_TEST(test_backtrack_hints)
{
    uint64_t now = 0;
    struct run log[] = {{3, 1}, {3, 3}}; /* terms 1 1 1 3 3 3; no-op of term 4 at 7 */
    struct raft *r = mk_leader(5, 3, log, 2, &now);
    ck_assert_uint_eq(raft_last_index(r), 7);
    struct raft_msg a;
    raft_index_t prev[MAX_NODES] = {0};
    for (int p = 1; p <= 3; p++) {
        ck_assert(next_append_to(r, p, &now, &a));
        prev[p] = a.prev_log_index;
        ck_assert_msg(prev[p] == 6 || prev[p] == 7, "first prev %llu",
                      (unsigned long long)prev[p]);
        raft_msg_free_entries(&a);
    }
    /* Peer 1's log has term 1 there; the leader has term 1 up to 3: resume at 4. */
    struct raft_msg m = mk_append_reject(1, 0, 4, prev[1], 1, 1);
    raft_step(r, now, &m);
    ck_assert(next_append_to(r, 1, &now, &a));
    ck_assert_uint_eq(a.prev_log_index, 3);
    ck_assert_uint_eq(a.prev_log_term, 1);
    if (a.n_entries > 0)
        ck_assert_uint_eq(a.entries[0].term, 3);
    raft_msg_free_entries(&a);

    /* Peer 2's log has term 2 from 3; the leader has no term 2: resume at 3. */
    m = mk_append_reject(2, 0, 4, prev[2], 3, 2);
    raft_step(r, now, &m);
    ck_assert(next_append_to(r, 2, &now, &a));
    ck_assert_uint_eq(a.prev_log_index, 2);
    ck_assert_uint_eq(a.prev_log_term, 1);
    if (a.n_entries > 0)
        ck_assert_uint_eq(a.entries[0].term, 1);
    raft_msg_free_entries(&a);

    /* Peer 3's log is short (last = 1): resume at 2. */
    m = mk_append_reject(3, 0, 4, prev[3], 2, 0);
    raft_step(r, now, &m);
    ck_assert(next_append_to(r, 3, &now, &a));
    ck_assert_uint_eq(a.prev_log_index, 1);
    ck_assert_uint_eq(a.prev_log_term, 1);
    raft_msg_free_entries(&a);

    /* A success moves peer 3 on. */
    m = mk_append_ok(3, 0, 4, 7);
    raft_step(r, now, &m);
    ck_assert_uint_eq(raft_peer_match(r, 3), 7);
    raft_free(r);
}
END_TEST

/* Figure 2: matchIndex only increases. A refusal overtaken by an acknowledgment (the
 * follower's log was shorter when it refused: the messages were reordered, or it got a
 * batch only in part) says "my log ends at 2" of a follower known to hold 7. That is stale,
 * not a follower whose files were lost: only the answer to a probe at the match says so. */
START_TEST(test_stale_refusal_keeps_match)
{
    uint64_t now = 0;
    struct run log[] = {{6, 1}}; /* the no-op of term 2 at 7 */
    struct raft *r = mk_leader(3, 1, log, 1, &now);
    drain(r, now);
    struct raft_msg m = mk_append_ok(1, 0, 2, 7);
    raft_step(r, now, &m);
    ck_assert_uint_eq(raft_peer_match(r, 1), 7);
    raft_index_t idx;
    raft_term_t term;
    for (int i = 0; i < 3; i++) /* 8 .. 10, pipelined to node 1 */
        ck_assert_int_eq(raft_propose(r, RAFT_ENTRY_SET, "k", 1, "v", 1, &idx, &term), RK_OK);
    drain(r, now);
    m = mk_append_reject(1, 0, 2, 10, 3, 0); /* stale: of prev 10, when its log ended at 2 */
    raft_step(r, now, &m);
    ck_assert_uint_eq(raft_peer_match(r, 1), 7);
    struct raft_msg a;
    ck_assert(next_append_to(r, 1, &now, &a));
    ck_assert_uint_eq(a.prev_log_index, 7); /* it probes at the match */
    raft_msg_free_entries(&a);
    /* A follower that did lose its files refuses that probe too: start over from 3. */
    m = mk_append_reject(1, 0, 2, 7, 3, 0);
    raft_step(r, now, &m);
    ck_assert_uint_eq(raft_peer_match(r, 1), 2);
    ck_assert(next_append_to(r, 1, &now, &a));
    ck_assert_uint_eq(a.prev_log_index, 2);
    raft_msg_free_entries(&a);
    raft_free(r);
}
END_TEST

/* A leader (node 0) and one follower (node 1) of 3; node 2 is unreachable. Config allows
 * a whole log per append, so only backtracking decides the number of round trips. */
static void big_pair(struct cluster *c, raft_term_t leader_term, const struct run *lead_log,
                     int n_lead, raft_term_t follower_term, const struct run *fol_log,
                     int n_fol)
{
    memset(c, 0, sizeof(*c));
    c->n = 3;
    for (int i = 0; i < 3; i++) {
        struct raft_config cfg = test_cfg(i, 3);
        cfg.max_append_entries = 4 * BIG_LOG;
        cfg.max_append_bytes = 64u << 20;
        if (i == 0)
            c->node[i] = new_core(&cfg, leader_term, RAFT_NO_NODE, lead_log, n_lead, 0);
        else if (i == 1)
            c->node[i] = new_core(&cfg, follower_term, RAFT_NO_NODE, fol_log, n_fol, 0);
        else
            c->node[i] = new_core(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0);
    }
    cluster_isolate(c, 2, true);
}

static bool pair_caught_up(struct cluster *c)
{
    struct raft *l = c->node[0], *f = c->node[1];
    raft_index_t last = raft_last_index(l);
    return raft_role(l) == RAFT_LEADER && raft_last_index(f) == last &&
           raft_peer_match(l, 1) == last && raft_commit_index(l) == last;
}

/* Node 0 wins an election with node 1's vote, then the two exchange messages until node 1
 * has the leader's log. Returns the number of rounds in which the leader sent APPENDs. */
static int big_pair_catch_up(struct cluster *c)
{
    c->now = EL_MAX;
    raft_tick(c->node[0], c->now);
    ck_assert_role(c->node[0], RAFT_CANDIDATE);
    cluster_flush(c, 0);
    cluster_flush(c, 1);
    ck_assert_role(c->node[0], RAFT_LEADER);
    int rounds = 0;
    for (int iter = 0; iter < 40 && !pair_caught_up(c); iter++) {
        uint64_t before = c->appends_to[1];
        if (!raft_has_ready(c->node[0]) && !raft_has_ready(c->node[1])) {
            c->now += HB; /* nothing in flight: the next heartbeat */
            raft_tick(c->node[0], c->now);
        }
        cluster_flush(c, 0);
        if (c->appends_to[1] > before)
            rounds++;
        cluster_flush(c, 1);
    }
    ck_assert_msg(pair_caught_up(c), "follower at %llu, leader at %llu after %d rounds",
                  (unsigned long long)raft_last_index(c->node[1]),
                  (unsigned long long)raft_last_index(c->node[0]), rounds);
    for (raft_index_t i = 1; i <= raft_last_index(c->node[0]); i++)
        ck_assert_uint_eq(raft_entry_at(c->node[1], i)->term,
                          raft_entry_at(c->node[0], i)->term);
    return rounds;
}

START_TEST(test_catch_up_missing_10000)
{
    struct cluster c;
    struct run lead[] = {{BIG_LOG, 1}};
    big_pair(&c, 1, lead, 1, 1, NULL, 0);
    int rounds = big_pair_catch_up(&c);
    ck_assert_msg(rounds <= 5, "took %d append rounds", rounds);
    ck_assert_uint_eq(raft_last_index(c.node[1]), BIG_LOG + 1);
    ck_assert_uint_eq(c.min_truncate[1], 0);
    cluster_free(&c);
}
END_TEST

START_TEST(test_catch_up_conflicting_10000)
{
    /* The follower's 10,000 entries of term 2 after index 5 are all wrong; the leader has
     * no term 2, so one hint jumps straight to index 6. */
    struct cluster c;
    struct run lead[] = {{5, 1}, {BIG_LOG, 3}};
    struct run fol[] = {{5, 1}, {BIG_LOG, 2}};
    big_pair(&c, 3, lead, 2, 2, fol, 2);
    int rounds = big_pair_catch_up(&c);
    ck_assert_msg(rounds <= 5, "took %d append rounds", rounds);
    ck_assert_uint_eq(c.min_truncate[1], 6);
    ck_assert_uint_eq(raft_last_index(c.node[1]), BIG_LOG + 6);
    cluster_free(&c);

    /* Now the leader also has term 2 (indexes 6-7): the hint jumps to 8, and the two
     * matching term-2 entries are kept. */
    struct run lead2[] = {{5, 1}, {2, 2}, {BIG_LOG, 3}};
    big_pair(&c, 3, lead2, 3, 2, fol, 2);
    rounds = big_pair_catch_up(&c);
    ck_assert_msg(rounds <= 5, "took %d append rounds", rounds);
    ck_assert_uint_eq(c.min_truncate[1], 8);
    ck_assert_uint_eq(raft_last_index(c.node[1]), BIG_LOG + 8);
    cluster_free(&c);
}
END_TEST

/* ================= timing (§5.2) ================= */

START_TEST(test_heartbeat_timing)
{
    struct cluster c;
    cluster_init(&c, 3, 1);
    cluster_elect(&c, 0);
    struct raft *l = c.node[0];
    uint64_t t0 = c.now;
    ck_assert(!raft_has_ready(l));
    ck_assert_uint_le(raft_next_deadline(l), t0 + HB);

    for (int beat = 1; beat <= 3; beat++) {
        uint64_t due = t0 + (uint64_t)beat * HB;
        raft_tick(l, due - 1);
        struct raft_ready rd;
        take(l, &rd);
        ck_assert_int_eq(count_msgs(&rd, RAFT_MSG_APPEND), 0);
        done_free(l, due - 1, &rd);

        c.now = due;
        raft_tick(l, c.now);
        take(l, &rd);
        for (int p = 1; p <= 2; p++) {
            const struct raft_msg *a = find_msg(&rd, RAFT_MSG_APPEND, p);
            ck_assert_msg(a != NULL, "no heartbeat to %d at beat %d", p, beat);
            ck_assert_uint_eq(a->term, 1);
            ck_assert_uint_eq(a->leader_commit, raft_commit_index(l));
        }
        raft_ready_done(l, c.now, &rd);
        cluster_deliver(&c, 0, &rd);
        raft_ready_free(&rd);
        cluster_settle(&c);
    }
    /* The no-op's commit reached the followers through the heartbeats. */
    ck_assert_uint_eq(raft_commit_index(l), 1);
    for (int i = 1; i <= 2; i++)
        ck_assert_uint_eq(raft_commit_index(c.node[i]), 1);
    cluster_free(&c);
}
END_TEST

START_TEST(test_heartbeat_after_lost_batches)
{
    /* Batches of one entry, so 20 proposals fill the leader's pipeline to node 1; all of
     * them are lost. Heartbeats must still reach node 1 (and lead to its catching up)
     * before it times out and disturbs the cluster. */
    struct cluster c;
    memset(&c, 0, sizeof(c));
    c.n = 3;
    for (int i = 0; i < 3; i++) {
        struct raft_config cfg = test_cfg(i, 3);
        cfg.max_append_entries = 1;
        c.node[i] = new_core(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0);
    }
    cluster_elect(&c, 0);
    cluster_run(&c, HB, -1);
    struct raft *l = c.node[0];
    c.cut[0][1] = true;
    for (int k = 0; k < 20; k++) {
        raft_index_t idx = 0;
        raft_term_t term = 0;
        ck_assert_int_eq(raft_propose(l, RAFT_ENTRY_SET, "k", 1, "v", 1, &idx, &term), RK_OK);
        cluster_settle(&c);
    }
    ck_assert_uint_eq(raft_commit_index(l), 21); /* with node 2 */
    c.cut[0][1] = false;

    uint64_t before = c.appends_to[1];
    for (int beat = 0; beat < 3; beat++) { /* 150 ms: node 1 cannot time out yet */
        c.now += HB;
        raft_tick(l, c.now);
        cluster_settle(&c);
    }
    ck_assert_msg(c.appends_to[1] > before,
                  "3 heartbeats, but no APPEND reached node 1 (its pipeline is full)");
    cluster_run(&c, 1000, -1);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(raft_term(c.node[i]), 1);
    ck_assert_uint_eq(raft_last_index(c.node[1]), 21);
    cluster_free(&c);
}
END_TEST

START_TEST(test_heartbeats_prevent_elections)
{
    struct cluster c;
    cluster_init(&c, 3, 1);
    cluster_elect(&c, 0);
    for (int step = 0; step < 500; step++) { /* 5 s of heartbeats */
        cluster_run(&c, STEP_MS, -1);
        for (int i = 1; i < 3; i++) {
            ck_assert_role(c.node[i], RAFT_FOLLOWER);
            ck_assert_uint_eq(raft_term(c.node[i]), 1);
            ck_assert_int_eq(raft_leader(c.node[i]), 0);
        }
    }
    ck_assert_role(c.node[0], RAFT_LEADER);
    ck_assert_uint_eq(raft_commit_index(c.node[1]), 1);

    /* The leader dies: a follower stands within [min, max) of its last heartbeat. */
    cluster_isolate(&c, 0, true);
    uint64_t last_beat[MAX_NODES];
    memcpy(last_beat, c.last_append_at, sizeof(last_beat));
    int first = -1; /* the follower that stood for election */
    for (int step = 0; step < 100 && first < 0; step++) {
        cluster_run(&c, STEP_MS, 0);
        for (int i = 1; i < 3 && first < 0; i++)
            if (raft_term(c.node[i]) > 1 && raft_voted_for(c.node[i]) == i)
                first = i;
    }
    ck_assert_int_ge(first, 1);
    uint64_t waited = c.now - last_beat[first];
    ck_assert_uint_ge(waited, EL_MIN);
    ck_assert_uint_lt(waited, EL_MAX + STEP_MS);
    cluster_free(&c);
}
END_TEST

START_TEST(test_election_timer_reset)
{
    /* A valid AppendEntries from the current leader restarts the timer. */
    struct raft *r = mk_core(1, 3, 1, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_ready rd;
    uint64_t d = raft_next_deadline(r);
    struct raft_msg m = mk_append(0, 1, 1, 0, 0, 0, NULL, 0);
    step_append(r, d - 1, &m, &rd);
    done_free(r, d - 1, &rd);
    raft_tick(r, d);
    ck_assert_role(r, RAFT_FOLLOWER);
    raft_tick(r, d - 1 + EL_MAX);
    ck_assert_role(r, RAFT_CANDIDATE);
    raft_free(r);

    /* So does granting a vote (in our own term: no term change to hide behind). */
    r = mk_core(1, 3, 2, RAFT_NO_NODE, NULL, 0, 0);
    d = raft_next_deadline(r);
    m = mk_vote(2, 1, 2, 0, 0);
    step_take(r, d - 1, &m, &rd);
    ck_assert(must_find(&rd, RAFT_MSG_VOTE_RESP, 2)->vote_granted);
    done_free(r, d - 1, &rd);
    raft_tick(r, d);
    ck_assert_role(r, RAFT_FOLLOWER);
    raft_tick(r, d - 1 + EL_MAX);
    ck_assert_role(r, RAFT_CANDIDATE);
    ck_assert_uint_eq(raft_term(r), 3);
    raft_free(r);

    /* An append from a stale leader does not. */
    r = mk_core(1, 3, 5, RAFT_NO_NODE, NULL, 0, 0);
    d = raft_next_deadline(r);
    m = mk_append(0, 1, 3, 0, 0, 0, NULL, 0);
    step_append(r, d - 1, &m, &rd);
    ck_assert(!must_find(&rd, RAFT_MSG_APPEND_RESP, 0)->success);
    done_free(r, d - 1, &rd);
    raft_tick(r, d);
    ck_assert_role(r, RAFT_CANDIDATE);
    ck_assert_uint_eq(raft_term(r), 6);
    raft_free(r);
}
END_TEST

/* ================= ready ordering: persist before send ================= */

/* Takes up to 3 readies from r (each made durable); checks that the first ready holding a
 * message of type `type` to `to` is no earlier than the first one for which
 * dependency(rd) holds. Returns whether the message was seen. */
static bool msg_not_before(struct raft *r, uint64_t now, uint8_t type, int to,
                           bool (*dependency)(const struct raft_ready *))
{
    bool dep_seen = false;
    for (int i = 0; i < 3 && raft_has_ready(r); i++) {
        struct raft_ready rd;
        take(r, &rd);
        dep_seen |= dependency(&rd);
        bool msg_here = find_msg(&rd, type, to) != NULL;
        done_free(r, now, &rd);
        if (msg_here) {
            ck_assert_msg(dep_seen, "%s to %d came before what it depends on",
                          raft_msg_type_name(type), to);
            return true;
        }
    }
    return false;
}

static bool has_vote_for_0(const struct raft_ready *rd)
{
    return rd->hard_state_changed && rd->voted_for == 0 && rd->term == 1;
}

static bool has_entries_1_2(const struct raft_ready *rd)
{
    return rd->n_entries == 2 && rd->first_index == 1;
}

static bool has_term_5(const struct raft_ready *rd)
{
    return rd->hard_state_changed && rd->term == 5;
}

static bool has_self_vote_term_2(const struct raft_ready *rd)
{
    return rd->hard_state_changed && rd->term == 2 && rd->voted_for == 1;
}

START_TEST(test_ready_orders_resp_after_persist)
{
    struct raft *r = mk_core(1, 3, 0, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_msg m = mk_vote(0, 1, 1, 0, 0);
    raft_step(r, 10, &m);
    ck_assert(msg_not_before(r, 10, RAFT_MSG_VOTE_RESP, 0, has_vote_for_0));

    raft_term_t t11[] = {1, 1};
    m = mk_append(0, 1, 1, 0, 0, 0, t11, 2);
    raft_step(r, 20, &m);
    raft_msg_free_entries(&m);
    ck_assert(msg_not_before(r, 20, RAFT_MSG_APPEND_RESP, 0, has_entries_1_2));

    m = mk_vote(2, 1, 5, 0, 0); /* higher term, stale log: denied under term 5 */
    raft_step(r, 30, &m);
    ck_assert(msg_not_before(r, 30, RAFT_MSG_VOTE_RESP, 2, has_term_5));
    raft_free(r);

    /* A candidate's requests follow its durable self-vote. */
    r = mk_core(1, 3, 1, RAFT_NO_NODE, NULL, 0, 0);
    raft_tick(r, EL_MAX);
    ck_assert(msg_not_before(r, EL_MAX, RAFT_MSG_VOTE, 0, has_self_vote_term_2));
    raft_free(r);
}
END_TEST

/* ================= ReadIndex (thesis §6.4) ================= */

START_TEST(test_read_index_basic)
{
    struct cluster c;
    cluster_init(&c, 5, 1);
    cluster_elect(&c, 0);
    cluster_run(&c, HB, -1);
    struct raft *l = c.node[0];
    ck_assert_uint_eq(raft_commit_index(l), 1);
    for (int i = 2; i < 5; i++) { /* only node 1 still hears the leader */
        c.cut[0][i] = c.cut[i][0] = true;
    }
    ck_assert_int_eq(raft_read_index(l, 42), RK_OK);
    struct raft_read reads[4];
    cluster_settle(&c);
    ck_assert_uint_eq(raft_take_reads(l, reads, 4), 0);
    c.now += HB;
    raft_tick(l, c.now);
    cluster_settle(&c);
    ck_assert_uint_eq(raft_take_reads(l, reads, 4), 0); /* 2 of 5 */

    c.cut[0][2] = c.cut[2][0] = false;
    uint32_t got = 0;
    for (int k = 0; k < 3 && got == 0; k++) {
        c.now += HB;
        raft_tick(l, c.now);
        cluster_settle(&c);
        got = raft_take_reads(l, reads, 4);
    }
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_eq(reads[0].id, 42);
    ck_assert(reads[0].ok);
    ck_assert_uint_ge(reads[0].index, 1);
    ck_assert_uint_le(reads[0].index, raft_commit_index(l));
    ck_assert_uint_eq(raft_take_reads(l, reads, 4), 0);
    cluster_free(&c);
}
END_TEST

START_TEST(test_read_index_waits_for_own_term_commit)
{
    /* Node 0 (log 1 1) becomes leader of term 2 with node 1 (empty log); its no-op at 3
     * needs node 1 to catch up first. No read may be answered before index 3 commits,
     * and the answer must cover entries 1-2 of the earlier term. */
    struct cluster c;
    memset(&c, 0, sizeof(c));
    c.n = 3;
    struct run log[] = {{2, 1}};
    c.node[0] = mk_core(0, 3, 1, RAFT_NO_NODE, log, 1, 0);
    c.node[1] = mk_core(1, 3, 1, RAFT_NO_NODE, NULL, 0, 0);
    c.node[2] = mk_core(2, 3, 1, RAFT_NO_NODE, NULL, 0, 0);
    cluster_isolate(&c, 2, true);
    struct raft *l = c.node[0];
    c.now = EL_MAX;
    raft_tick(l, c.now);
    cluster_flush(&c, 0);
    cluster_flush(&c, 1);
    ck_assert_role(l, RAFT_LEADER);
    ck_assert_int_eq(raft_read_index(l, 7), RK_OK);

    struct raft_read reads[4];
    uint32_t got = 0;
    for (int iter = 0; iter < 20 && got == 0; iter++) {
        bool any = cluster_flush(&c, 0);
        got = raft_take_reads(l, reads, 4);
        if (got == 0) {
            any |= cluster_flush(&c, 1);
            got = raft_take_reads(l, reads, 4);
        }
        if (got > 0)
            ck_assert_uint_ge(raft_commit_index(l), 3);
        if (!any && got == 0) {
            c.now += HB;
            raft_tick(l, c.now);
        }
    }
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_eq(reads[0].id, 7);
    ck_assert(reads[0].ok);
    ck_assert_uint_ge(reads[0].index, 3);
    cluster_free(&c);
}
END_TEST

START_TEST(test_read_index_lost_leadership)
{
    struct cluster c;
    cluster_init(&c, 3, 1);
    cluster_elect(&c, 0);
    struct raft *l = c.node[0];
    ck_assert_int_eq(raft_read_index(l, 9), RK_OK);
    struct raft_read reads[4];
    ck_assert_uint_eq(raft_take_reads(l, reads, 4), 0);
    struct raft_msg m = mk_append(1, 0, 5, 0, 0, 0, NULL, 0); /* a newer leader */
    raft_step(l, c.now, &m);
    ck_assert_role(l, RAFT_FOLLOWER);
    ck_assert_uint_eq(raft_take_reads(l, reads, 4), 1);
    ck_assert_uint_eq(reads[0].id, 9);
    ck_assert(!reads[0].ok);
    ck_assert_int_eq(raft_read_index(l, 10), RK_ERR_NOTLEADER);
    ck_assert_uint_eq(raft_take_reads(l, reads, 4), 0);
    drain(l, c.now);
    cluster_free(&c);
}
END_TEST

START_TEST(test_read_index_single_node)
{
    struct raft *r = mk_core(0, 1, 0, RAFT_NO_NODE, NULL, 0, 0);
    uint64_t now = EL_MAX;
    raft_tick(r, now);
    drain(r, now);
    ck_assert_role(r, RAFT_LEADER);
    ck_assert_uint_eq(raft_commit_index(r), 1);
    ck_assert_int_eq(raft_read_index(r, 5), RK_OK);
    struct raft_read reads[2];
    uint32_t got = raft_take_reads(r, reads, 2);
    for (int k = 0; k < 3 && got == 0; k++) {
        now += HB;
        raft_tick(r, now);
        drain(r, now);
        got = raft_take_reads(r, reads, 2);
    }
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_eq(reads[0].id, 5);
    ck_assert(reads[0].ok);
    ck_assert_uint_eq(reads[0].index, 1);
    raft_free(r);
}
END_TEST

/* ================= determinism and randomized timeouts ================= */

/* The election timeouts one core draws over n successive elections nobody answers. */
static void election_timeouts(uint64_t seed, uint64_t *out, int n)
{
    struct raft_config cfg = test_cfg(0, 3);
    cfg.seed = seed;
    struct raft *r = new_core(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0);
    uint64_t now = 0;
    for (int i = 0; i < n; i++) {
        uint64_t d = raft_next_deadline(r);
        ck_assert_uint_ge(d, now + EL_MIN);
        ck_assert_uint_lt(d, now + EL_MAX);
        out[i] = d - now;
        now = d;
        raft_tick(r, now);
        ck_assert_role(r, RAFT_CANDIDATE);
        ck_assert_uint_eq(raft_term(r), (raft_term_t)i + 1);
        drain(r, now);
    }
    raft_free(r);
}

START_TEST(test_timeouts_randomized)
{
    enum { N = 20 };
    uint64_t a[N], b[N], c[N];
    election_timeouts(7, a, N);
    election_timeouts(7, b, N);
    election_timeouts(8, c, N);
    bool varied = false, differs = false;
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(a[i], b[i]);
        varied |= a[i] != a[0];
        differs |= a[i] != c[i];
    }
    ck_assert_msg(varied, "timeouts are not randomized");
    ck_assert_msg(differs, "the seed does not change the timeouts");
}
END_TEST

struct trace_ev {
    uint64_t t;
    int node;
    int role;
    raft_term_t term;
};

/* A 3-node cluster for 4 s: the leader is cut off at 1.5 s and comes back at 3 s.
 * Records every role or term change. Returns the number of events. */
static int run_trace(uint64_t seed_base, struct trace_ev *ev, int max)
{
    struct cluster c;
    cluster_init(&c, 3, seed_base);
    int n = 0, role[MAX_NODES];
    raft_term_t term[MAX_NODES];
    for (int i = 0; i < 3; i++) {
        role[i] = -1;
        term[i] = 0;
    }
    int cut = -1;
    for (int step = 0; step < 400; step++) {
        cluster_run(&c, STEP_MS, -1);
        if (c.now == 1500)
            for (int i = 0; i < 3; i++)
                if (raft_role(c.node[i]) == RAFT_LEADER && cut < 0)
                    cut = i;
        if (c.now == 1500 && cut >= 0)
            cluster_isolate(&c, cut, true);
        if (c.now == 3000 && cut >= 0)
            cluster_isolate(&c, cut, false);
        for (int i = 0; i < 3; i++) {
            int ro = (int)raft_role(c.node[i]);
            raft_term_t te = raft_term(c.node[i]);
            if (ro == role[i] && te == term[i])
                continue;
            ck_assert_int_lt(n, max);
            ev[n].t = c.now;
            ev[n].node = i;
            ev[n].role = role[i] = ro;
            ev[n].term = term[i] = te;
            n++;
        }
    }
    ck_assert_int_ge(cut, 0);
    cluster_free(&c);
    return n;
}

START_TEST(test_determinism_same_seed)
{
    struct raft_config cfg = test_cfg(1, 5);
    struct raft *a = new_core(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0);
    struct raft *b = new_core(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0);
    ck_assert_uint_eq(raft_next_deadline(a), raft_next_deadline(b));
    raft_free(a);
    raft_free(b);

    enum { MAX_EV = 400 };
    static struct trace_ev x[MAX_EV], y[MAX_EV];
    int nx = run_trace(100, x, MAX_EV);
    int ny = run_trace(100, y, MAX_EV);
    ck_assert_int_ge(nx, 6); /* two elections at least */
    ck_assert_int_eq(nx, ny);
    for (int i = 0; i < nx; i++) {
        ck_assert_uint_eq(x[i].t, y[i].t);
        ck_assert_int_eq(x[i].node, y[i].node);
        ck_assert_int_eq(x[i].role, y[i].role);
        ck_assert_uint_eq(x[i].term, y[i].term);
    }
    /* A leader was elected again after the cut. */
    bool second_leader = false;
    for (int i = 0; i < nx; i++)
        second_leader |= x[i].role == RAFT_LEADER && x[i].term >= 2 && x[i].t > 1500;
    ck_assert(second_leader);
}
END_TEST

/* ================= pre-vote (thesis §9.6) and check-quorum (thesis §6.2) ================= */

START_TEST(test_prevote_keeps_term)
{
    struct raft_config cfg = test_cfg(0, 3);
    cfg.pre_vote = true;
    struct raft *r = new_core(&cfg, 4, RAFT_NO_NODE, NULL, 0, 0);
    drain(r, 0);
    raft_tick(r, EL_MAX);
    struct raft_ready rd;
    take(r, &rd);
    ck_assert(!rd.hard_state_changed);         /* nothing to persist: no term, no vote */
    ck_assert_uint_eq(raft_term(r), 4);
    ck_assert_role(r, RAFT_FOLLOWER);
    for (int peer = 1; peer <= 2; peer++) {
        const struct raft_msg *m = must_find(&rd, RAFT_MSG_PREVOTE, peer);
        ck_assert_uint_eq(m->term, 5);         /* the term it would campaign in */
    }
    ck_assert_int_eq(count_msgs(&rd, RAFT_MSG_VOTE), 0);
    done_free(r, EL_MAX, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_prevote_then_election)
{
    struct cluster c;
    cluster_init_opts(&c, 3, 77, true, true);
    c.now += EL_MAX;
    raft_tick(c.node[0], c.now);
    ck_assert_role(c.node[0], RAFT_FOLLOWER);  /* pre-voting */
    cluster_settle(&c);
    ck_assert_role(c.node[0], RAFT_LEADER);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(raft_term(c.node[i]), 1);
    cluster_free(&c);
}
END_TEST

/* Node 2 is cut off for 2 s, so it times out again and again, then comes back. */
static raft_term_t rejoin_after_isolation(bool pre_vote)
{
    struct cluster c;
    cluster_init_opts(&c, 3, 91, pre_vote, pre_vote);
    c.now += EL_MAX;
    raft_tick(c.node[0], c.now);
    cluster_settle(&c);
    ck_assert_role(c.node[0], RAFT_LEADER);
    cluster_isolate(&c, 2, true);
    cluster_run(&c, 2000, -1);
    cluster_isolate(&c, 2, false);
    cluster_run(&c, 1000, -1);
    raft_term_t term = raft_term(c.node[0]);
    if (pre_vote) {
        ck_assert_role(c.node[0], RAFT_LEADER);
        for (int i = 0; i < 3; i++) {
            ck_assert_uint_eq(raft_term(c.node[i]), 1);
            ck_assert_int_eq(raft_leader(c.node[i]), 0);
        }
    }
    cluster_free(&c);
    return term;
}

START_TEST(test_prevote_rejoining_node_does_not_disrupt)
{
    /* Without pre-vote the returning node's higher term forces a new election: the
     * scenario does exercise the disruption that pre-vote prevents. */
    ck_assert_uint_gt(rejoin_after_isolation(false), 1);
    ck_assert_uint_eq(rejoin_after_isolation(true), 1);
}
END_TEST

START_TEST(test_prevote_denied_in_lease)
{
    struct raft_config cfg = test_cfg(1, 3);
    cfg.pre_vote = true;
    struct raft *r = new_core(&cfg, 1, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_msg hb = mk_append(0, 1, 1, 0, 0, 0, NULL, 0);
    raft_step(r, 100, &hb);
    drain(r, 100);
    ck_assert_int_eq(raft_leader(r), 0);

    struct raft_msg pv = mk_vote(2, 1, 2, 0, 0);
    pv.type = RAFT_MSG_PREVOTE;
    struct raft_ready rd;
    step_take(r, 100 + EL_MIN - 1, &pv, &rd);  /* heard from leader 0 just now */
    const struct raft_msg *resp = must_find(&rd, RAFT_MSG_PREVOTE_RESP, 2);
    ck_assert(!resp->vote_granted);
    ck_assert(!rd.hard_state_changed);
    done_free(r, 100 + EL_MIN - 1, &rd);

    step_take(r, 100 + EL_MIN, &pv, &rd);      /* the lease has run out */
    resp = must_find(&rd, RAFT_MSG_PREVOTE_RESP, 2);
    ck_assert(resp->vote_granted);
    ck_assert(!rd.hard_state_changed);         /* a pre-vote changes neither term nor vote */
    ck_assert_uint_eq(raft_term(r), 1);
    ck_assert_int_eq(raft_voted_for(r), RAFT_NO_NODE);
    done_free(r, 100 + EL_MIN, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_check_quorum_leader_steps_down)
{
    struct cluster c;
    cluster_init_opts(&c, 3, 5, true, true);
    c.now += EL_MAX;
    raft_tick(c.node[0], c.now);
    cluster_settle(&c);
    ck_assert_role(c.node[0], RAFT_LEADER);
    cluster_isolate(&c, 0, true);
    cluster_run(&c, 2 * EL_MAX + STEP_MS, 1); /* node 1 does not tick: 2 stays follower */
    ck_assert_role(c.node[0], RAFT_FOLLOWER);
    ck_assert_int_eq(raft_leader(c.node[0]), RAFT_NO_NODE);
    ck_assert_uint_eq(raft_term(c.node[0]), 1); /* stepping down does not raise the term */
    cluster_free(&c);
}
END_TEST

START_TEST(test_check_quorum_leader_stays_with_majority)
{
    struct cluster c;
    cluster_init_opts(&c, 3, 5, true, true);
    c.now += EL_MAX;
    raft_tick(c.node[0], c.now);
    cluster_settle(&c);
    cluster_isolate(&c, 2, true);
    cluster_run(&c, 5 * EL_MAX, 2);
    ck_assert_role(c.node[0], RAFT_LEADER);
    ck_assert_uint_eq(raft_term(c.node[0]), 1);
    cluster_free(&c);
}
END_TEST

/* Thesis §6.2: only messages of its own term show a leader that a follower follows it.
 * Node 0 leads term 2 with node 2's vote; node 2 then falls silent, while node 1, which
 * never heard of term 2 (the link from node 0 is down), keeps sending heartbeats of term 1
 * as the old leader. Node 0 hears from no majority in its term: it steps down. */
START_TEST(test_check_quorum_counts_only_current_term)
{
    struct raft_config cfg = test_cfg(0, 3);
    cfg.check_quorum = true;
    struct raft *r = new_core(&cfg, 1, RAFT_NO_NODE, NULL, 0, 0);
    uint64_t now = EL_MAX;
    raft_tick(r, now);
    drain(r, now);
    struct raft_msg g = mk_vote_resp(2, 0, 2, true);
    raft_step(r, now, &g);
    ck_assert_role(r, RAFT_LEADER);
    drain(r, now);
    uint64_t until = now + 2 * EL_MAX + HB;
    for (uint64_t t = now + HB; t <= until && raft_role(r) == RAFT_LEADER; t += HB) {
        struct raft_msg hb = mk_append(1, 0, 1, 0, 0, 0, NULL, 0);
        raft_step(r, t, &hb);
        raft_tick(r, t);
        drain(r, t);
    }
    ck_assert_int_ne(raft_role(r), RAFT_LEADER);
    raft_free(r);
}
END_TEST

START_TEST(test_check_quorum_ignores_vote_in_lease)
{
    struct raft_config cfg = test_cfg(1, 3);
    cfg.check_quorum = true;
    struct raft *r = new_core(&cfg, 1, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_msg hb = mk_append(0, 1, 1, 0, 0, 0, NULL, 0);
    raft_step(r, 100, &hb);
    drain(r, 100);

    struct raft_msg v = mk_vote(2, 1, 2, 0, 0);
    raft_step(r, 120, &v);
    ck_assert_uint_eq(raft_term(r), 1);        /* ignored: we hear from leader 0 */
    ck_assert(!raft_has_ready(r));

    struct raft_ready rd;
    step_take(r, 100 + EL_MIN, &v, &rd);       /* lease over: an ordinary vote */
    ck_assert_uint_eq(raft_term(r), 2);
    ck_assert(must_find(&rd, RAFT_MSG_VOTE_RESP, 2)->vote_granted);
    done_free(r, 100 + EL_MIN, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_early_msgs_leader_appends_only)
{
    struct cluster c;
    cluster_init(&c, 3, 11);
    cluster_elect(&c, 0);
    cluster_settle(&c);
    struct raft *l = c.node[0];
    raft_index_t idx = 0;
    raft_term_t term = 0;
    ck_assert_int_eq(raft_propose(l, RAFT_ENTRY_SET, "k", 1, "v", 1, &idx, &term), RK_OK);

    struct raft_msg *early = NULL;
    uint32_t n = raft_take_early_msgs(l, &early);
    ck_assert_uint_eq(n, 2); /* the new entry, to each follower, before it is durable */
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_int_eq(early[i].type, RAFT_MSG_APPEND);
        ck_assert_uint_eq(early[i].n_entries, 1);
    }
    ck_assert_uint_eq(raft_stable_index(l), idx - 1);
    struct raft_ready rd;
    take(l, &rd);
    ck_assert_uint_eq(rd.n_entries, 1);        /* still to persist */
    ck_assert_int_eq(count_msgs(&rd, RAFT_MSG_APPEND), 0);

    /* The follower's reply depends on its persisting the entry: never early. */
    struct raft_msg m = early[0];
    m.from = 0;
    raft_step(c.node[m.to], c.now, &m);
    struct raft_msg *f_early = NULL;
    ck_assert_uint_eq(raft_take_early_msgs(c.node[m.to], &f_early), 0);
    ck_assert_ptr_null(f_early);
    struct raft_ready frd;
    take(c.node[m.to], &frd);
    must_find(&frd, RAFT_MSG_APPEND_RESP, 0);
    ck_assert_uint_eq(frd.n_entries, 1);
    done_free(c.node[m.to], c.now, &frd);

    for (uint32_t i = 0; i < n; i++)
        raft_msg_free_entries(&early[i]);
    free(early);
    done_free(l, c.now, &rd);
    cluster_free(&c);
}
END_TEST

START_TEST(test_leader_disconnect_elects_sooner)
{
    struct cluster c;
    cluster_init_opts(&c, 3, 21, true, true);
    c.now += EL_MAX;
    raft_tick(c.node[0], c.now);
    cluster_settle(&c);
    ck_assert_role(c.node[0], RAFT_LEADER);
    cluster_run(&c, HB, -1);
    /* A disconnect from a non-leader changes nothing. */
    uint64_t before = raft_next_deadline(c.node[2]);
    raft_peer_disconnected(c.node[2], c.now, 1);
    ck_assert_uint_eq(raft_next_deadline(c.node[2]), before);
    ck_assert_int_eq(raft_leader(c.node[2]), 0);
    /* The leader dies: both followers see its connection close. */
    cluster_isolate(&c, 0, true);
    uint64_t died = c.now;
    for (int i = 1; i <= 2; i++) {
        raft_peer_disconnected(c.node[i], c.now, 0);
        ck_assert_int_eq(raft_leader(c.node[i]), RAFT_NO_NODE);
        ck_assert_uint_le(raft_next_deadline(c.node[i]), died + HB);
    }
    /* A new leader within about a heartbeat, not an election timeout (EL_MIN..EL_MAX). */
    for (int i = 0; i < 100 && raft_leader(c.node[1]) == RAFT_NO_NODE; i++)
        cluster_run(&c, STEP_MS, 0);
    ck_assert_int_ne(raft_leader(c.node[1]), RAFT_NO_NODE);
    ck_assert_uint_lt(c.now - died, EL_MIN);
    cluster_free(&c);
}
END_TEST

/* A candidate whose election failed pre-votes again, and a granted pre-vote must make it
 * campaign again (it was once ignored because the pre-voter was still a candidate). */
START_TEST(test_failed_candidate_prevotes_again)
{
    struct cluster c;
    cluster_init_opts(&c, 3, 31, true, true);
    c.now += EL_MAX;
    raft_tick(c.node[0], c.now);
    cluster_settle(&c);
    ck_assert_role(c.node[0], RAFT_LEADER);
    /* The leader dies; nodes 1 and 2 both campaign in the same term: a split vote. */
    cluster_isolate(&c, 0, true);
    c.now += EL_MAX;
    raft_peer_disconnected(c.node[1], c.now, 0);
    raft_peer_disconnected(c.node[2], c.now, 0);
    struct raft_msg pv1 = { .type = RAFT_MSG_PREVOTE_RESP, .from = 2, .to = 1, .term = 2,
                            .vote_granted = true };
    struct raft_msg pv2 = pv1;
    pv2.from = 1;
    pv2.to = 2;
    raft_tick(c.node[1], c.now);
    raft_tick(c.node[2], c.now);
    raft_step(c.node[1], c.now, &pv1);
    raft_step(c.node[2], c.now, &pv2);
    ck_assert_role(c.node[1], RAFT_CANDIDATE);
    ck_assert_role(c.node[2], RAFT_CANDIDATE);
    cluster_settle(&c); /* each denies the other: both voted for themselves in term 2 */
    ck_assert_role(c.node[1], RAFT_CANDIDATE);
    ck_assert_role(c.node[2], RAFT_CANDIDATE);
    /* Only node 1 times out next: its pre-vote is granted and it wins term 3. */
    c.now += EL_MAX;
    raft_tick(c.node[1], c.now);
    cluster_settle(&c);
    ck_assert_role(c.node[1], RAFT_LEADER);
    ck_assert_uint_eq(raft_term(c.node[1]), 3);
    cluster_free(&c);
}
END_TEST

/* ================= snapshots and InstallSnapshot (§7, Figure 13) ================= */

#define IMAGE_LEN 25   /* the fake snapshot image the tests "store" */
#define CHUNK_LEN 10   /* so it takes three chunks */

/* Plays the caller's part for a leader's SNAPSHOT message: fills in the chunk of a fake
 * image at the message's offset, as the real replicator reads it from the file. */
static void fill_chunk(struct raft_msg *m, const uint8_t *image)
{
    uint64_t left = IMAGE_LEN - m->snap_offset;
    m->snap_len = (uint32_t)(left < CHUNK_LEN ? left : CHUNK_LEN);
    m->snap_data = malloc(m->snap_len);
    ck_assert_ptr_nonnull(m->snap_data);
    memcpy(m->snap_data, image + m->snap_offset, m->snap_len);
    m->snap_done = m->snap_offset + m->snap_len == IMAGE_LEN;
}

/* A leader of term 2 whose log 1..30 is committed everywhere but compacted up to 20
 * (its snapshot), and a follower with `follower` as its log. */
static void snap_pair(struct cluster *c, const struct run *follower, int n_runs)
{
    memset(c, 0, sizeof(*c));
    c->n = 2;
    struct run lead_log[] = { { 30, 1 } };
    struct raft_config cfg = test_cfg(0, 2);
    c->node[0] = new_core(&cfg, 2, 0, lead_log, 1, 0);
    cfg = test_cfg(1, 2);
    c->node[1] = new_core(&cfg, 2, 0, follower, n_runs, 0);
    struct raft *l = c->node[0];
    c->now = EL_MAX;
    /* Make node 0 leader of term 3 by hand: node 1 grants the vote. */
    raft_tick(l, c->now);
    struct raft_ready rd;
    take(l, &rd);
    done_free(l, c->now, &rd);
    struct raft_msg grant = mk_vote_resp(1, 0, 3, true);
    raft_step(l, c->now, &grant);
    ck_assert_role(l, RAFT_LEADER);
    drain(l, c->now);
    raft_snapshot_saved(l, 20, 1);
    raft_compact(l, 20);
    ck_assert_uint_eq(raft_first_index(l), 21);
}

/* Shuttles messages between the pair, filling snapshot chunks; returns the number of
 * SNAPSHOT messages the leader sent. Installs (ok or not, per `verify`) when asked. */
static int snap_shuttle(struct cluster *c, const uint8_t *image, bool verify, int rounds)
{
    int chunks_sent = 0;
    c->now += HB; /* a heartbeat starts it: the follower's log is too short */
    raft_tick(c->node[0], c->now);
    for (int round = 0; round < rounds; round++) {
        bool any = false;
        for (int i = 0; i < 2; i++) {
            struct raft *r = c->node[i];
            if (!raft_has_ready(r))
                continue;
            any = true;
            struct raft_ready rd;
            take(r, &rd);
            for (uint32_t k = 0; k < rd.n_snap_chunks; k++) {
                struct raft_snap_chunk *ch = &rd.snap_chunks[k];
                ck_assert_int_eq(memcmp(ch->data, image + ch->offset, ch->len), 0);
                if (ch->done) { /* as the io thread: verify and install, then done */
                    bool load = raft_snapshot_installed(r, c->now, ch->index, ch->term, verify, NULL);
                    ck_assert(load == verify);
                    verify = true; /* a retried transfer verifies */
                }
            }
            raft_ready_done(r, c->now, &rd);
            for (uint32_t k = 0; k < rd.n_msgs; k++) {
                struct raft_msg m = rd.msgs[k];
                m.from = i;
                if (m.type == RAFT_MSG_SNAPSHOT) {
                    chunks_sent++;
                    fill_chunk(&m, image);
                }
                raft_step(c->node[m.to], c->now, &m);
                if (m.type == RAFT_MSG_SNAPSHOT)
                    free(m.snap_data);
            }
            raft_ready_free(&rd);
        }
        if (!any)
            break;
    }
    return chunks_sent;
}

static uint8_t test_image[IMAGE_LEN];

START_TEST(test_compact_keeps_terms_and_appends)
{
    struct run log[] = { { 10, 1 }, { 5, 2 } };
    uint64_t now = 0;
    struct raft *r = mk_leader(3, 3, log, 2, &now);
    raft_index_t last = raft_last_index(r);
    raft_compact(r, 12);                      /* no snapshot saved yet: nothing dropped */
    ck_assert_uint_eq(raft_first_index(r), 1);
    raft_snapshot_saved(r, 12, 2);
    raft_compact(r, 14);                      /* clamped to the snapshot */
    ck_assert_uint_eq(raft_first_index(r), 13);
    ck_assert_ptr_null(raft_entry_at(r, 12));
    ck_assert_uint_eq(raft_entry_at(r, 13)->term, 2);
    ck_assert_uint_eq(raft_last_index(r), last);
    raft_index_t idx = 0;
    raft_term_t term = 0;
    ck_assert_int_eq(raft_propose(r, RAFT_ENTRY_SET, "k", 1, "v", 1, &idx, &term), RK_OK);
    ck_assert_uint_eq(idx, last + 1);
    raft_free(r);
}
END_TEST

START_TEST(test_new_from_snapshot)
{
    struct raft_config cfg = test_cfg(0, 3);
    struct raft_entry *e = calloc(2, sizeof(*e));
    init_entry(&e[0], 4, 101);
    init_entry(&e[1], 4, 102);
    struct raft *r = raft_new_from_snapshot(&cfg, 100, 3, 4, RAFT_NO_NODE, e, 2, 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(raft_commit_index(r), 100);
    ck_assert_uint_eq(raft_first_index(r), 101);
    ck_assert_uint_eq(raft_last_index(r), 102);
    ck_assert_uint_eq(raft_snapshot_index(r), 100);
    /* A vote request is judged by the log's real last entry. */
    struct raft_msg v = mk_vote(1, 0, 5, 102, 4);
    struct raft_ready rd;
    step_take(r, 10, &v, &rd);
    ck_assert(must_find(&rd, RAFT_MSG_VOTE_RESP, 1)->vote_granted);
    done_free(r, 10, &rd);
    raft_free(r);
}
END_TEST

START_TEST(test_install_snapshot_empty_follower)
{
    for (int i = 0; i < IMAGE_LEN; i++)
        test_image[i] = (uint8_t)(i * 7 + 1);
    struct cluster c;
    snap_pair(&c, NULL, 0);
    int chunks = snap_shuttle(&c, test_image, true, 200);
    ck_assert_int_eq(chunks, 3); /* 25 bytes in chunks of 10, no resends */
    struct raft *f = c.node[1];
    ck_assert_uint_eq(raft_snapshot_index(f), 20);
    ck_assert_uint_eq(raft_first_index(f), 21);
    /* Then the entries after the snapshot, and the leader's no-op. */
    ck_assert_uint_eq(raft_last_index(f), raft_last_index(c.node[0]));
    ck_assert_uint_eq(raft_peer_match(c.node[0], 1), raft_last_index(c.node[0]));
    cluster_free(&c);
}
END_TEST

START_TEST(test_install_snapshot_bad_image_restarts)
{
    struct cluster c;
    snap_pair(&c, NULL, 0);
    int chunks = snap_shuttle(&c, test_image, false, 200); /* first install fails */
    ck_assert_int_eq(chunks, 6);                           /* sent twice over */
    ck_assert_uint_eq(raft_snapshot_index(c.node[1]), 20);
    ck_assert_uint_eq(raft_last_index(c.node[1]), raft_last_index(c.node[0]));
    cluster_free(&c);
}
END_TEST

START_TEST(test_install_snapshot_keeps_matching_suffix)
{
    /* Figure 13 step 6: the follower holds entry 20 with the snapshot's term, and more. */
    struct run flog[] = { { 25, 1 } };
    struct raft_config cfg = test_cfg(1, 2);
    struct raft *f = new_core(&cfg, 2, RAFT_NO_NODE, flog, 1, 0);
    struct raft_msg m = { .type = RAFT_MSG_SNAPSHOT, .from = 0, .to = 1, .term = 2,
                          .snap_index = 20, .snap_term = 1 };
    fill_chunk(&m, test_image);
    m.snap_offset = 0;
    m.snap_done = true; /* one chunk will do here */
    raft_step(f, 10, &m);
    free(m.snap_data);
    struct raft_ready rd;
    take(f, &rd);
    ck_assert_uint_eq(rd.n_snap_chunks, 1);
    done_free(f, 10, &rd);
    ck_assert(raft_snapshot_installed(f, 10, 20, 1, true, NULL));
    take(f, &rd);
    ck_assert_uint_eq(rd.reset_log_to, 0);    /* the log is kept */
    const struct raft_msg *resp = must_find(&rd, RAFT_MSG_SNAPSHOT_RESP, 0);
    ck_assert(resp->success);
    ck_assert_uint_eq(resp->match_index, 20);
    done_free(f, 10, &rd);
    ck_assert_uint_eq(raft_last_index(f), 25);
    ck_assert_uint_eq(raft_commit_index(f), 20);
    raft_free(f);
}
END_TEST

START_TEST(test_install_snapshot_discards_conflicting_log)
{
    /* Figure 13 step 7: entry 20 has another term: the whole log goes. */
    struct run flog[] = { { 15, 1 }, { 10, 2 } };
    struct raft_config cfg = test_cfg(1, 2);
    struct raft *f = new_core(&cfg, 3, RAFT_NO_NODE, flog, 2, 0);
    struct raft_msg m = { .type = RAFT_MSG_SNAPSHOT, .from = 0, .to = 1, .term = 3,
                          .snap_index = 20, .snap_term = 3 };
    fill_chunk(&m, test_image);
    m.snap_done = true;
    raft_step(f, 10, &m);
    free(m.snap_data);
    drain(f, 10);
    ck_assert(raft_snapshot_installed(f, 10, 20, 3, true, NULL));
    struct raft_ready rd;
    take(f, &rd);
    ck_assert_uint_eq(rd.reset_log_to, 20);
    done_free(f, 10, &rd);
    ck_assert_uint_eq(raft_last_index(f), 20);
    ck_assert_uint_eq(raft_last_term(f), 3);
    ck_assert_uint_eq(raft_commit_index(f), 20);
    raft_free(f);
}
END_TEST

/* Thesis §10.2.1, the Ready contract across Figure 13 step 7: the io thread writes a batch
 * (entries of an old leader, and the last chunk of a snapshot from the new one), installs
 * the snapshot, which discards the log, and only then reports the batch durable. Those
 * entries are gone from the log: none of them may count as durable in it. */
START_TEST(test_install_discards_entries_being_written)
{
    struct run flog[] = { { 5, 1 } };
    struct raft_config cfg = test_cfg(2, 3);
    struct raft *f = new_core(&cfg, 2, RAFT_NO_NODE, flog, 1, 0);
    raft_term_t t2[] = { 2, 2, 2 };
    struct raft_msg a = mk_append(0, 2, 2, 5, 1, 0, t2, 3); /* 6..8 from node 0, term 2 */
    struct raft_ready rd;
    step_append(f, 10, &a, &rd);
    done_free(f, 10, &rd);
    ck_assert_uint_eq(raft_stable_index(f), 8);
    a = mk_append(0, 2, 2, 8, 2, 0, t2, 2);                 /* 9..10, not yet written */
    raft_step(f, 11, &a);
    raft_msg_free_entries(&a);
    struct raft_msg m = { .type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 3,
                          .snap_index = 7, .snap_term = 3 };  /* node 1 leads term 3 */
    fill_chunk(&m, test_image);
    m.snap_done = true;
    raft_step(f, 12, &m);
    free(m.snap_data);
    take(f, &rd);                                           /* 9..10 and the chunk */
    ck_assert_uint_eq(rd.n_entries, 2);
    ck_assert_uint_eq(rd.n_snap_chunks, 1);
    ck_assert(raft_snapshot_installed(f, 13, 7, 3, true, NULL)); /* entry 7 has term 2: reset */
    done_free(f, 13, &rd);
    ck_assert_uint_eq(raft_last_index(f), 7);
    ck_assert_uint_eq(raft_stable_index(f), 7);
    take(f, &rd);
    ck_assert_uint_eq(rd.reset_log_to, 7);
    done_free(f, 14, &rd);
    ck_assert_uint_eq(raft_stable_index(f), 7);
    raft_free(f);
}
END_TEST

START_TEST(test_snapshot_chunks_in_order_only)
{
    struct raft_config cfg = test_cfg(1, 2);
    struct raft *f = new_core(&cfg, 2, RAFT_NO_NODE, NULL, 0, 0);
    struct raft_msg m = { .type = RAFT_MSG_SNAPSHOT, .from = 0, .to = 1, .term = 2,
                          .snap_index = 20, .snap_term = 1, .snap_offset = 10 };
    fill_chunk(&m, test_image);
    struct raft_ready rd;
    step_take(f, 10, &m, &rd); /* no transfer started: must begin at 0 */
    ck_assert_uint_eq(rd.n_snap_chunks, 0);
    ck_assert_uint_eq(must_find(&rd, RAFT_MSG_SNAPSHOT_RESP, 0)->snap_offset, 0);
    done_free(f, 10, &rd);
    free(m.snap_data);
    m.snap_offset = 0;
    fill_chunk(&m, test_image);
    step_take(f, 10, &m, &rd);
    ck_assert_uint_eq(rd.n_snap_chunks, 1);
    ck_assert_uint_eq(must_find(&rd, RAFT_MSG_SNAPSHOT_RESP, 0)->snap_offset, CHUNK_LEN);
    done_free(f, 10, &rd);
    step_take(f, 10, &m, &rd); /* a duplicate of chunk 0: not written twice */
    ck_assert_uint_eq(rd.n_snap_chunks, 0);
    ck_assert_uint_eq(must_find(&rd, RAFT_MSG_SNAPSHOT_RESP, 0)->snap_offset, CHUNK_LEN);
    done_free(f, 10, &rd);
    free(m.snap_data);
    raft_free(f);
}
END_TEST

START_TEST(test_snapshot_older_than_commit_answered_at_once)
{
    struct run flog[] = { { 30, 1 } };
    struct raft_config cfg = test_cfg(1, 2);
    struct raft *f = new_core(&cfg, 2, RAFT_NO_NODE, flog, 1, 0);
    struct raft_msg hb = mk_append(0, 1, 2, 30, 1, 30, NULL, 0); /* commit 30 */
    raft_step(f, 5, &hb);
    drain(f, 5);
    ck_assert_uint_eq(raft_commit_index(f), 30);
    struct raft_msg m = { .type = RAFT_MSG_SNAPSHOT, .from = 0, .to = 1, .term = 2,
                          .snap_index = 20, .snap_term = 1 };
    struct raft_ready rd;
    step_take(f, 10, &m, &rd);
    ck_assert_uint_eq(rd.n_snap_chunks, 0);
    const struct raft_msg *resp = must_find(&rd, RAFT_MSG_SNAPSHOT_RESP, 0);
    ck_assert(resp->success);
    ck_assert_uint_eq(resp->match_index, 30);
    done_free(f, 10, &rd);
    raft_free(f);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("elections");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_new_rejects_bad_config);
    tcase_add_test(tc, test_election_timeout_starts_election);
    tcase_add_test(tc, test_vote_granted_and_persisted);
    tcase_add_test(tc, test_vote_denied_stale_last_term);
    tcase_add_test(tc, test_vote_denied_same_term_shorter_log);
    tcase_add_test(tc, test_vote_denied_already_voted_other);
    tcase_add_test(tc, test_vote_same_candidate_twice);
    tcase_add_test(tc, test_vote_lower_term_denied);
    tcase_add_test(tc, test_step_down_on_vote);
    tcase_add_test(tc, test_step_down_on_vote_resp);
    tcase_add_test(tc, test_step_down_on_append);
    tcase_add_test(tc, test_step_down_on_append_resp);
    tcase_add_test(tc, test_candidate_wins_with_majority);
    tcase_add_test(tc, test_candidate_not_with_minority);
    tcase_add_test(tc, test_split_vote_new_election);
    tcase_add_test(tc, test_single_node_leader_after_durable);
    suite_add_tcase(s, tc);

    tc = tcase_create("replication");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_append_consistency_check);
    tcase_add_test(tc, test_append_truncates_conflicting_suffix);
    tcase_add_test(tc, test_append_stale_shorter_no_truncation);
    tcase_add_test(tc, test_follower_commit_from_leader_commit);
    tcase_add_test(tc, test_leader_noop_at_term_start);
    tcase_add_test(tc, test_leader_state_reset_on_election);
    tcase_add_test(tc, test_propose_not_leader);
    tcase_add_test(tc, test_propose_replicates_and_commits);
    tcase_add_test(tc, test_leader_counts_self_only_when_durable);
    tcase_add_test(tc, test_figure8_commit_only_current_term);
    tcase_add_test(tc, test_backtrack_hints);
    tcase_add_test(tc, test_stale_refusal_keeps_match);
    tcase_add_test(tc, test_catch_up_missing_10000);
    tcase_add_test(tc, test_catch_up_conflicting_10000);
    tcase_add_test(tc, test_ready_orders_resp_after_persist);
    tcase_add_test(tc, test_early_msgs_leader_appends_only);
    suite_add_tcase(s, tc);

    tc = tcase_create("timing");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_heartbeat_timing);
    tcase_add_test(tc, test_heartbeat_after_lost_batches);
    tcase_add_test(tc, test_heartbeats_prevent_elections);
    tcase_add_test(tc, test_election_timer_reset);
    tcase_add_test(tc, test_timeouts_randomized);
    tcase_add_test(tc, test_determinism_same_seed);
    suite_add_tcase(s, tc);

    tc = tcase_create("readindex");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_read_index_basic);
    tcase_add_test(tc, test_read_index_waits_for_own_term_commit);
    tcase_add_test(tc, test_read_index_lost_leadership);
    tcase_add_test(tc, test_read_index_single_node);
    suite_add_tcase(s, tc);

    tc = tcase_create("prevote");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_prevote_keeps_term);
    tcase_add_test(tc, test_prevote_then_election);
    tcase_add_test(tc, test_prevote_rejoining_node_does_not_disrupt);
    tcase_add_test(tc, test_prevote_denied_in_lease);
    tcase_add_test(tc, test_check_quorum_leader_steps_down);
    tcase_add_test(tc, test_check_quorum_leader_stays_with_majority);
    tcase_add_test(tc, test_check_quorum_counts_only_current_term);
    tcase_add_test(tc, test_check_quorum_ignores_vote_in_lease);
    tcase_add_test(tc, test_leader_disconnect_elects_sooner);
    tcase_add_test(tc, test_failed_candidate_prevotes_again);
    suite_add_tcase(s, tc);

    tc = tcase_create("snapshot");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_compact_keeps_terms_and_appends);
    tcase_add_test(tc, test_new_from_snapshot);
    tcase_add_test(tc, test_install_snapshot_empty_follower);
    tcase_add_test(tc, test_install_snapshot_bad_image_restarts);
    tcase_add_test(tc, test_install_snapshot_keeps_matching_suffix);
    tcase_add_test(tc, test_install_snapshot_discards_conflicting_log);
    tcase_add_test(tc, test_install_discards_entries_being_written);
    tcase_add_test(tc, test_snapshot_chunks_in_order_only);
    tcase_add_test(tc, test_snapshot_older_than_commit_answered_at_once);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(core_suite)
