/* tests/unit_membership.c - membership changes and leadership transfer in the Raft core
 * (Raft thesis §4, §3.10), driven by hand: cores in one process, a fake clock, messages
 * delivered by this file; no sockets, threads or disk. Servers are named n0, n1, ...; the
 * ids in messages are those of the configuration, as the server's handshake maps them. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"
#include "../common/membership.h"
#include "../server/core/raft.h"
#include "check_main.h"

#define EL_MIN 150
#define EL_MAX 300
#define HB 50
#define STEP_MS 10
#define NMAX 7

#define ck_assert_role(r, want)                                                    \
    ck_assert_msg(raft_role(r) == (want), "role is %s, want %s",                   \
                  raft_role_name(raft_role(r)), raft_role_name(want))

/* ---------- a cluster of cores ---------- */

struct mc {
    int n;                     /* cores n0 .. n(n-1) */
    uint64_t now;
    struct raft *node[NMAX];
    bool down[NMAX];           /* crashed: neither sends nor receives */
    bool cut[NMAX][NMAX];      /* messages a -> b are lost */
    int delay_every[NMAX];     /* > 0: a slow link: one message to node i, and one from
                                  it, get through in every N ticks (the others are lost) */
    int window_in[NMAX], window_out[NMAX]; /* the window (tick / N) of the last one */
    struct raft_result results[16];
    int n_results;
};

static void member_of(int i, enum member_role role, struct member *m)
{
    *m = (struct member){ .id = i, .role = role, .port = (uint16_t)(7000 + i) };
    snprintf(m->name, sizeof(m->name), "n%d", i);
    snprintf(m->host, sizeof(m->host), "127.0.0.1");
}

/* The cores' notices, when RK_TEST_VERBOSE is set (for reading a failure). */
static void notice(void *ctx, const char *msg)
{
    if (getenv("RK_TEST_VERBOSE") != NULL)
        fprintf(stderr, "n%d: %s\n", (int)(intptr_t)ctx, msg);
}

static struct raft *mc_core(int i, const struct membership *ms, bool pre_vote)
{
    char name[16];
    snprintf(name, sizeof(name), "n%d", i);
    struct raft_config cfg = {
        .members = ms, .self_name = name,
        .election_timeout_min_ms = EL_MIN, .election_timeout_max_ms = EL_MAX,
        .heartbeat_ms = HB, .seed = 77 + (uint64_t)i, .pre_vote = pre_vote,
        .check_quorum = pre_vote, .catchup_max_ms = 3000, .unreachable_ms = 1500,
        .log_fn = notice, .log_ctx = (void *)(intptr_t)i,
    };
    struct raft *r = raft_new(&cfg, 0, RAFT_NO_NODE, NULL, 0, 0);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* voters cores are members from the start; the other n - voters start with no
 * configuration, as a server started with --join. */
static void mc_init(struct mc *c, int n, int voters, bool pre_vote)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    struct membership *ms = calloc(1, sizeof(*ms)), *none = calloc(1, sizeof(*none));
    ck_assert(ms != NULL && none != NULL);
    for (int i = 0; i < voters; i++) {
        struct member m;
        member_of(i, MEMBER_VOTER, &m);
        ck_assert_int_eq(membership_add(ms, &m), RK_OK);
    }
    for (int i = 0; i < n; i++)
        c->node[i] = mc_core(i, i < voters ? ms : none, pre_vote);
    free(ms);
    free(none);
}

static void mc_free(struct mc *c)
{
    for (int i = 0; i < c->n; i++)
        raft_free(c->node[i]);
}

/* The core named by id in the sender's configuration (else core id). */
static int core_of(const struct raft *sender, int id)
{
    const struct member *m = membership_by_id(raft_membership(sender, NULL), id);
    int i = id;
    if (m != NULL)
        sscanf(m->name, "n%d", &i);
    return i;
}

/* The id the receiver's handshake gives core i: its id in the receiver's configuration,
 * or the one i holds in its own. */
static int id_at(const struct raft *receiver, const struct mc *c, int i)
{
    char name[16];
    snprintf(name, sizeof(name), "n%d", i);
    const struct member *m = membership_by_name(raft_membership(receiver, NULL), name);
    if (m != NULL)
        return m->id;
    return raft_self(c->node[i]) != RAFT_NO_NODE ? raft_self(c->node[i]) : i;
}

/* Whether the slow link of node i lets no more through now (in or out). */
static bool slow_now(struct mc *c, int i, int tick, int *window)
{
    if (c->delay_every[i] <= 0)
        return false;
    int w = 1 + tick / c->delay_every[i];
    if (*window == w)
        return true;
    *window = w;
    return false;
}

static void mc_deliver(struct mc *c, int i, const struct raft_ready *rd, int tick)
{
    for (uint32_t k = 0; k < rd->n_msgs; k++) {
        struct raft_msg m = rd->msgs[k];
        int to = core_of(c->node[i], m.to);
        if (to < 0 || to >= c->n || to == i || c->down[to] || c->cut[i][to] ||
            slow_now(c, to, tick, &c->window_in[to]) || slow_now(c, i, tick, &c->window_out[i]))
            continue;
        m.from = id_at(c->node[to], c, i);
        raft_step(c->node[to], c->now, &m);
    }
}

static void mc_take_results(struct mc *c, int i)
{
    int room = (int)(sizeof(c->results) / sizeof(c->results[0])) - c->n_results;
    c->n_results += (int)raft_take_results(c->node[i], c->results + c->n_results,
                                           (uint32_t)room);
}

static bool mc_flush(struct mc *c, int i, int tick)
{
    struct raft *r = c->node[i];
    mc_take_results(c, i);
    if (c->down[i] || !raft_has_ready(r))
        return false;
    struct raft_ready rd;
    ck_assert_int_eq(raft_ready_take(r, &rd), RK_OK);
    raft_ready_done(r, c->now, &rd);
    mc_deliver(c, i, &rd, tick);
    raft_ready_free(&rd);
    mc_take_results(c, i);
    return true;
}

static void mc_settle(struct mc *c, int tick)
{
    for (int round = 0; round < 200; round++) {
        bool any = false;
        for (int i = 0; i < c->n; i++)
            any |= mc_flush(c, i, tick);
        if (!any)
            return;
    }
}

static void mc_run(struct mc *c, uint64_t ms)
{
    for (uint64_t t = 0; t < ms; t += STEP_MS) {
        c->now += STEP_MS;
        int tick = (int)(c->now / STEP_MS);
        for (int i = 0; i < c->n; i++)
            if (!c->down[i])
                raft_tick(c->node[i], c->now);
        mc_settle(c, tick);
    }
}

/* Runs until exactly one live core leads; returns it. */
static int mc_leader(struct mc *c)
{
    for (int tries = 0; tries < 300; tries++) {
        int leader = -1, count = 0;
        for (int i = 0; i < c->n; i++)
            if (!c->down[i] && raft_role(c->node[i]) == RAFT_LEADER) {
                leader = i;
                count++;
            }
        if (count == 1)
            return leader;
        mc_run(c, STEP_MS);
    }
    ck_abort_msg("no single leader");
    return -1;
}

/* Runs until the outcome of request id comes (or ms pass); returns its rc, or 1. */
static int mc_outcome(struct mc *c, uint64_t id, uint64_t ms)
{
    for (uint64_t t = 0; t <= ms; t += STEP_MS) {
        for (int k = 0; k < c->n_results; k++)
            if (c->results[k].id == id)
                return c->results[k].rc;
        mc_run(c, STEP_MS);
    }
    return 1;
}

static void init_set(struct raft_entry *e, raft_term_t term)
{
    ck_assert_int_eq(raft_entry_init(e, term, RAFT_ENTRY_SET, "k", 1, "v", 1), RK_OK);
}

static int voters_of(const struct raft *r)
{
    return membership_voters(raft_membership(r, NULL));
}

static void put(struct mc *c, int leader, int count)
{
    for (int k = 0; k < count; k++) {
        raft_index_t index;
        raft_term_t term;
        ck_assert_int_eq(raft_propose(c->node[leader], RAFT_ENTRY_SET, "k", 1, "v", 1, &index,
                                      &term), RK_OK);
    }
    mc_settle(c, (int)(c->now / STEP_MS));
}

/* ---------- a configuration in the log ---------- */

/* A CONFIG entry of term holding the voters n0..n(voters-1) and the learners after them
 * up to n(members-1). */
static void config_entry(struct raft_entry *e, raft_term_t term, int voters, int members)
{
    struct membership ms = { .n = 0 };
    for (int i = 0; i < members; i++) {
        struct member m;
        member_of(i, i < voters ? MEMBER_VOTER : MEMBER_LEARNER, &m);
        membership_add(&ms, &m);
    }
    char text[4096];
    int len = membership_encode(&ms, text, sizeof(text));
    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(raft_entry_init(e, term, RAFT_ENTRY_CONFIG, "", 0, text, (uint32_t)len),
                     RK_OK);
}

static void step_append(struct raft *r, uint64_t now, int from, raft_term_t term,
                        raft_index_t prev, raft_term_t prev_term, struct raft_entry *e,
                        raft_index_t commit)
{
    struct raft_msg m = { .type = RAFT_MSG_APPEND, .from = from, .to = raft_self(r),
                          .term = term, .prev_log_index = prev, .prev_log_term = prev_term,
                          .leader_commit = commit, .n_entries = e != NULL, .entries = e };
    raft_step(r, now, &m);
}

/* Thesis §4.1: a configuration entry takes effect on a server as soon as it is in its
 * log, committed or not; one that is truncated takes its configuration with it. */
START_TEST(test_config_in_effect_once_in_the_log)
{
    struct mc c;
    mc_init(&c, 1, 0, false);
    struct membership three = { .n = 0 };
    for (int i = 0; i < 3; i++) {
        struct member m;
        member_of(i, MEMBER_VOTER, &m);
        membership_add(&three, &m);
    }
    raft_free(c.node[0]);
    c.node[0] = mc_core(1, &three, false); /* n1, a follower of n0 */
    struct raft *f = c.node[0];
    struct raft_entry e;
    init_set(&e, 1);
    step_append(f, 10, 0, 1, 0, 0, &e, 0);
    raft_entry_free(&e);
    config_entry(&e, 1, 3, 4); /* n3 joins as a learner: in effect before any commit */
    step_append(f, 20, 0, 1, 1, 1, &e, 1);
    raft_entry_free(&e);
    raft_index_t index;
    const struct membership *ms = raft_membership(f, &index);
    ck_assert_uint_eq(index, 2);
    ck_assert_uint_eq(raft_commit_index(f), 1);
    ck_assert_ptr_nonnull(membership_by_name(ms, "n3"));
    ck_assert_int_eq(membership_by_name(ms, "n3")->role, MEMBER_LEARNER);
    /* a new leader (n2, term 2) holds another entry at index 2: ours is truncated */
    init_set(&e, 2);
    step_append(f, 30, 2, 2, 1, 1, &e, 1);
    raft_entry_free(&e);
    ms = raft_membership(f, &index);
    ck_assert_uint_eq(index, 0);
    ck_assert_ptr_null(membership_by_name(ms, "n3"));
    ck_assert_int_eq(membership_voters(ms), 3);
    mc_free(&c);
}
END_TEST

/* §4.2.1: a learner receives the log but never campaigns and never counts toward a
 * commit or an election of a leader that knows it as a learner. */
START_TEST(test_learner_never_campaigns_or_counts)
{
    struct mc c;
    mc_init(&c, 4, 3, false);
    int l = mc_leader(&c);
    ck_assert_int_eq(raft_add_server(c.node[l], 7, "n3", "127.0.0.1", 7003, true), RK_OK);
    ck_assert_int_eq(mc_outcome(&c, 7, 2000), RK_OK);
    ck_assert_int_eq(voters_of(c.node[l]), 3);
    put(&c, l, 3);
    mc_run(&c, 200);
    ck_assert_uint_eq(raft_commit_index(c.node[3]), raft_commit_index(c.node[l]));
    /* two voters down: the leader and the learner alone commit nothing */
    int a = (l + 1) % 3, b = (l + 2) % 3;
    c.down[a] = c.down[b] = true;
    raft_index_t before = raft_commit_index(c.node[l]);
    put(&c, l, 1);
    mc_run(&c, 200);
    ck_assert_uint_eq(raft_commit_index(c.node[l]), before);
    /* and the learner never campaigns, however long it hears nothing */
    c.down[l] = true;
    raft_term_t term = raft_term(c.node[3]);
    mc_run(&c, 3000);
    ck_assert_role(c.node[3], RAFT_FOLLOWER);
    ck_assert_uint_eq(raft_term(c.node[3]), term);
    /* but it grants its vote to an up-to-date candidate (thesis §4.1: a server answers
     * RequestVote whatever its own configuration says; the candidate's may already make
     * it a voter, and without its vote a leader that appended the promotion and lost
     * leadership before it spread could never be elected again) */
    struct raft_msg vote = { .type = RAFT_MSG_VOTE, .from = a, .to = 3, .term = term + 5,
                             .last_log_index = 1000, .last_log_term = term + 4 };
    raft_step(c.node[3], c.now, &vote);
    struct raft_ready rd;
    ck_assert_int_eq(raft_ready_take(c.node[3], &rd), RK_OK);
    bool granted = false;
    for (uint32_t k = 0; k < rd.n_msgs; k++)
        granted |= rd.msgs[k].type == RAFT_MSG_VOTE_RESP && rd.msgs[k].vote_granted;
    ck_assert_msg(granted, "a learner denied its vote to an up-to-date candidate");
    raft_ready_free(&rd);
    mc_free(&c);
}
END_TEST


/* §4.2.1: a learner grants its vote when asked, but a candidate that knows it as a learner
 * does not count it: with two of three voters down, the voter left and the learner are
 * no majority, however often the voter stands. */
START_TEST(test_learner_vote_never_elects)
{
    struct mc c;
    mc_init(&c, 4, 3, false);
    int l = mc_leader(&c);
    ck_assert_int_eq(raft_add_server(c.node[l], 7, "n3", "127.0.0.1", 7003, true), RK_OK);
    ck_assert_int_eq(mc_outcome(&c, 7, 2000), RK_OK);
    put(&c, l, 3);
    mc_run(&c, 200);
    int v = (l + 1) % 3;
    c.down[l] = c.down[(l + 2) % 3] = true;
    raft_term_t term = raft_term(c.node[v]);
    mc_run(&c, 3000);
    ck_assert_uint_gt(raft_term(c.node[v]), term + 2); /* it stood, again and again */
    ck_assert_int_ne(raft_role(c.node[v]), RAFT_LEADER);
    ck_assert_int_ne(raft_role(c.node[3]), RAFT_LEADER);
    mc_free(&c);
}
END_TEST

/* §4.2.1: a server joins as a learner, catches up (here a log of 300 entries), and is
 * promoted once a round of replication takes less than an election timeout; then it
 * votes: with it, 3 of 4 voters are a majority, and it can be elected. */
START_TEST(test_add_catches_up_then_votes)
{
    struct mc c;
    mc_init(&c, 4, 3, false);
    int l = mc_leader(&c);
    put(&c, l, 300);
    mc_run(&c, 100);
    ck_assert_int_eq(raft_add_server(c.node[l], 9, "n3", "127.0.0.1", 7003, false), RK_OK);
    ck_assert_int_eq(raft_add_server(c.node[l], 10, "n4", "127.0.0.1", 7004, false),
                     RK_ERR_BUSY);
    ck_assert_int_eq(mc_outcome(&c, 9, 5000), RK_OK);
    const struct membership *ms = raft_membership(c.node[l], NULL);
    ck_assert_int_eq(membership_voters(ms), 4);
    ck_assert_int_eq(membership_by_name(ms, "n3")->role, MEMBER_VOTER);
    ck_assert_uint_eq(raft_last_index(c.node[3]), raft_last_index(c.node[l]));
    ck_assert_int_ne(raft_self(c.node[3]), RAFT_NO_NODE);
    /* it votes: the leader and one other down, n3 and the last are 2 of 4: no leader;
     * back up, n3 can win */
    c.down[l] = true;
    mc_run(&c, 3000);
    int l2 = mc_leader(&c);
    ck_assert_int_ne(l2, l);
    ck_assert_int_eq(raft_add_server(c.node[l2], 11, "n3", "127.0.0.1", 7003, false),
                     RK_ERR_EXISTS);
    mc_free(&c);
}
END_TEST

/* An add whose server never answers fails "not reachable", and the learner is removed:
 * the cluster keeps its voters. */
START_TEST(test_add_unreachable_fails_and_undoes)
{
    struct mc c;
    mc_init(&c, 4, 3, false);
    int l = mc_leader(&c);
    c.down[3] = true;
    ck_assert_int_eq(raft_add_server(c.node[l], 5, "n3", "127.0.0.1", 7003, false), RK_OK);
    ck_assert_int_eq(mc_outcome(&c, 5, 4000), RK_ERR_UNREACHABLE);
    mc_run(&c, 500);
    const struct membership *ms = raft_membership(c.node[l], NULL);
    ck_assert_ptr_null(membership_by_name(ms, "n3"));
    ck_assert_int_eq(membership_voters(ms), 3);
    put(&c, l, 1); /* still a working cluster */
    mc_run(&c, 200);
    ck_assert_uint_eq(raft_commit_index(c.node[l]), raft_last_index(c.node[l]));
    ck_assert_int_eq(raft_add_server(c.node[l], 6, "n3", "127.0.0.1", 7003, true), RK_OK);
    mc_free(&c);
}
END_TEST

/* A learner whose every round of replication takes longer than an election timeout
 * never votes: the add fails "could not catch up" within catchup_max_ms. */
START_TEST(test_add_that_cannot_catch_up_fails)
{
    struct mc c;
    mc_init(&c, 4, 3, false);
    int l = mc_leader(&c);
    c.delay_every[3] = 40; /* its answers go out every 400 ms */
    ck_assert_int_eq(raft_add_server(c.node[l], 8, "n3", "127.0.0.1", 7003, false), RK_OK);
    for (int k = 0; k < 40; k++) { /* writes keep coming: each round has more to send */
        put(&c, l, 5);
        mc_run(&c, 100);
    }
    ck_assert_int_eq(mc_outcome(&c, 8, 3000), RK_ERR_BEHIND);
    mc_run(&c, 1000);
    ck_assert_ptr_null(membership_by_name(raft_membership(c.node[l], NULL), "n3"));
    mc_free(&c);
}
END_TEST

/* One change at a time (§4.1), and none before the new leader has committed an entry of
 * its own term: the fix for the single-server change bug Ongaro described on raft-dev in
 * 2015. There, a leader's change from an earlier term, never committed, and a new
 * leader's change based on an older configuration could each be committed by disjoint
 * majorities. Here: a leader elected with a log that ends in an uncommitted change of an
 * earlier term may not propose another until its no-op commits, which commits the older
 * change with it. */
START_TEST(test_single_server_change_bug_2015)
{
    struct mc c;
    mc_init(&c, 5, 4, false);
    int l = mc_leader(&c);
    mc_run(&c, 100);
    /* l adds n4 (learner) but only one follower hears it, then l crashes */
    int f = (l + 1) % 4;
    for (int i = 0; i < 5; i++)
        if (i != f)
            c.cut[l][i] = true;
    c.cut[f][l] = true;
    ck_assert_int_eq(raft_add_server(c.node[l], 1, "n4", "127.0.0.1", 7004, true), RK_OK);
    mc_run(&c, 30);
    ck_assert_ptr_nonnull(membership_by_name(raft_membership(c.node[f], NULL), "n4"));
    c.down[l] = true;
    memset(c.cut, 0, sizeof(c.cut));
    /* f has the longest log and wins; its first act may not be a change: stop right after
     * the votes, before its no-op can be acknowledged */
    raft_campaign(c.node[f], c.now);
    mc_flush(&c, f, 0);
    for (int i = 0; i < 5; i++)
        if (i != f)
            mc_flush(&c, i, 0);
    ck_assert_role(c.node[f], RAFT_LEADER);
    ck_assert_int_eq(raft_remove_server(c.node[f], 2, "n2", true), RK_ERR_BUSY);
    ck_assert_int_eq(raft_add_server(c.node[f], 3, "n4", "127.0.0.1", 7004, false),
                     RK_ERR_BUSY);
    mc_run(&c, 200); /* the no-op of its term commits, and the add with it */
    raft_index_t conf_index;
    raft_membership(c.node[f], &conf_index);
    ck_assert_uint_le(conf_index, raft_commit_index(c.node[f]));
    ck_assert_int_eq(raft_add_server(c.node[f], 4, "n4", "127.0.0.1", 7004, false), RK_OK);
    mc_free(&c);
}
END_TEST

/* Removing a follower: done once the configuration without it is committed. */
START_TEST(test_remove_follower)
{
    struct mc c;
    mc_init(&c, 3, 3, false);
    int l = mc_leader(&c);
    mc_run(&c, 100);
    int f = (l + 1) % 3;
    char name[8];
    snprintf(name, sizeof(name), "n%d", f);
    ck_assert_int_eq(raft_remove_server(c.node[l], 3, name, false), RK_OK);
    ck_assert_int_eq(mc_outcome(&c, 3, 1000), RK_OK);
    ck_assert_int_eq(voters_of(c.node[l]), 2);
    ck_assert_int_eq(raft_remove_server(c.node[l], 4, name, false), RK_ERR_NOTFOUND);
    put(&c, l, 1); /* two voters commit */
    ck_assert_uint_eq(raft_commit_index(c.node[l]), raft_last_index(c.node[l]));
    mc_free(&c);
}
END_TEST

/* §4.2.2: a leader that removes itself leads until the configuration without it is
 * committed (counting only the others), then steps down; the rest elect a leader. */
START_TEST(test_removed_leader_steps_down)
{
    struct mc c;
    mc_init(&c, 3, 3, false);
    int l = mc_leader(&c);
    mc_run(&c, 100);
    char name[8];
    snprintf(name, sizeof(name), "n%d", l);
    ck_assert_int_eq(raft_remove_server(c.node[l], 1, name, false), RK_OK);
    ck_assert_role(c.node[l], RAFT_LEADER);
    ck_assert_int_eq(mc_outcome(&c, 1, 1000), RK_OK);
    ck_assert_role(c.node[l], RAFT_FOLLOWER);
    mc_run(&c, 2000);
    int l2 = mc_leader(&c);
    ck_assert_int_ne(l2, l);
    ck_assert_int_eq(voters_of(c.node[l2]), 2);
    mc_free(&c);
}
END_TEST

/* No removal leaves the voters the leader hears from a minority (unless forced), and
 * never the last voter. */
START_TEST(test_remove_guards)
{
    struct mc c;
    mc_init(&c, 3, 3, false);
    int l = mc_leader(&c);
    mc_run(&c, 100);
    int a = (l + 1) % 3, b = (l + 2) % 3;
    c.down[a] = true;
    mc_run(&c, EL_MAX + 50); /* a is silent for longer than an election timeout */
    char name_b[8], name_a[8], name_l[8];
    snprintf(name_a, sizeof(name_a), "n%d", a);
    snprintf(name_b, sizeof(name_b), "n%d", b);
    snprintf(name_l, sizeof(name_l), "n%d", l);
    /* without b, the voters would be l and a, of which only l answers: refused */
    ck_assert_int_eq(raft_remove_server(c.node[l], 1, name_b, false), RK_ERR_NOQUORUM);
    /* without a, they are l and b, both answering: fine */
    ck_assert_int_eq(raft_remove_server(c.node[l], 2, name_a, false), RK_OK);
    ck_assert_int_eq(mc_outcome(&c, 2, 1000), RK_OK);
    ck_assert_int_eq(raft_remove_server(c.node[l], 3, name_b, true), RK_OK);
    ck_assert_int_eq(mc_outcome(&c, 3, 1000), RK_OK);
    ck_assert_int_eq(raft_remove_server(c.node[l], 4, name_l, true), RK_ERR_INVAL);
    ck_assert_int_eq(voters_of(c.node[l]), 1);
    put(&c, l, 1); /* a cluster of one commits alone */
    ck_assert_uint_eq(raft_commit_index(c.node[l]), raft_last_index(c.node[l]));
    mc_free(&c);
}
END_TEST

/* §3.10: the leader brings a lagging target up to date, takes no writes meanwhile,
 * sends TimeoutNow, and the target wins at once (in the leader's lease, thanks to the
 * transfer flag of its vote requests). */
START_TEST(test_transfer_to_lagging_target)
{
    struct mc c;
    mc_init(&c, 3, 3, true);
    int l = mc_leader(&c);
    mc_run(&c, 100);
    int t = (l + 1) % 3;
    c.down[t] = true;
    put(&c, l, 50);
    c.down[t] = false;
    char name[8];
    snprintf(name, sizeof(name), "n%d", t);
    raft_term_t before = raft_term(c.node[l]);
    ck_assert_int_eq(raft_transfer_leadership(c.node[l], 12, name), RK_OK);
    raft_index_t index;
    raft_term_t term;
    ck_assert_int_eq(raft_propose(c.node[l], RAFT_ENTRY_SET, "k", 1, "v", 1, &index, &term),
                     RK_ERR_NOTLEADER);
    ck_assert_int_eq(mc_outcome(&c, 12, EL_MAX), RK_OK);
    ck_assert_role(c.node[t], RAFT_LEADER);
    /* it won its first election: the voters granted it though they heard from n<l> */
    ck_assert_uint_eq(raft_term(c.node[t]), before + 1);
    ck_assert_uint_eq(raft_last_index(c.node[t]) >= raft_last_index(c.node[l]), 1);
    mc_free(&c);
}
END_TEST

/* A target that dies mid-transfer: after an election timeout the leader takes writes
 * again. With no name, the most up-to-date voter is chosen. */
START_TEST(test_transfer_target_dies)
{
    struct mc c;
    mc_init(&c, 3, 3, true);
    int l = mc_leader(&c);
    mc_run(&c, 100);
    int t = (l + 1) % 3, o = (l + 2) % 3;
    c.down[o] = true;
    put(&c, l, 5); /* t is now the most up to date */
    c.down[o] = false;
    c.down[t] = true;
    ck_assert_int_eq(raft_transfer_leadership(c.node[l], 13, NULL), RK_OK);
    ck_assert_int_eq(mc_outcome(&c, 13, 2 * EL_MAX), RK_ERR_TIMEOUT);
    ck_assert_role(c.node[l], RAFT_LEADER);
    raft_index_t index;
    raft_term_t term;
    ck_assert_int_eq(raft_propose(c.node[l], RAFT_ENTRY_SET, "k", 1, "v", 1, &index, &term),
                     RK_OK);
    char self[8];
    snprintf(self, sizeof(self), "n%d", l);
    ck_assert_int_eq(raft_transfer_leadership(c.node[l], 14, self), RK_ERR_INVAL);
    ck_assert_int_eq(raft_transfer_leadership(c.node[l], 15, "nobody"), RK_ERR_NOTFOUND);
    mc_free(&c);
}
END_TEST

/* §4.2.3: a server removed while cut off comes back and times out again and again; it is
 * no member in its own eyes once it has the entry, and before that pre-vote and
 * check-quorum keep its elections from disturbing the cluster: the term stays. */
START_TEST(test_removed_server_does_not_disrupt)
{
    struct mc c;
    mc_init(&c, 4, 4, true);
    int l = mc_leader(&c);
    mc_run(&c, 200);
    int gone = (l + 1) % 4;
    c.down[gone] = true;
    char name[8];
    snprintf(name, sizeof(name), "n%d", gone);
    ck_assert_int_eq(raft_remove_server(c.node[l], 1, name, false), RK_OK);
    ck_assert_int_eq(mc_outcome(&c, 1, 1000), RK_OK);
    raft_term_t term = raft_term(c.node[l]);
    c.down[gone] = false; /* it still thinks it is a voter of 4 */
    mc_run(&c, 5000);
    ck_assert_role(c.node[l], RAFT_LEADER);
    ck_assert_uint_eq(raft_term(c.node[l]), term);
    mc_free(&c);
}
END_TEST

/* raft_set_campaign(false): never campaigns, nor takes over on TimeoutNow. */
START_TEST(test_no_campaign_while_disk_stalls)
{
    struct mc c;
    mc_init(&c, 3, 3, true);
    int l = mc_leader(&c);
    mc_run(&c, 100);
    for (int i = 0; i < 3; i++)
        if (i != l)
            raft_set_campaign(c.node[i], false);
    c.down[l] = true;
    mc_run(&c, 3000);
    for (int i = 0; i < 3; i++)
        if (i != l)
            ck_assert_role(c.node[i], RAFT_FOLLOWER);
    int a = (l + 1) % 3;
    raft_set_campaign(c.node[a], true);
    mc_run(&c, 1000);
    ck_assert_role(c.node[a], RAFT_LEADER);
    mc_free(&c);
}
END_TEST

/* The text form of a configuration, both ways, and what it refuses. */
START_TEST(test_membership_text)
{
    struct membership ms = { .n = 0 }, back;
    struct member m;
    member_of(3, MEMBER_LEARNER, &m);
    ck_assert_int_eq(membership_add(&ms, &m), RK_OK);
    member_of(0, MEMBER_VOTER, &m);
    ck_assert_int_eq(membership_add(&ms, &m), RK_OK);
    ck_assert_int_eq(membership_add(&ms, &m), RK_ERR_INVAL); /* id taken */
    ck_assert_int_eq(ms.m[0].id, 0);                          /* kept in id order */
    char text[512], err[128];
    int len = membership_encode(&ms, text, sizeof(text));
    ck_assert_str_eq(text, "0 voter n0 127.0.0.1 7000\n3 learner n3 127.0.0.1 7003\n");
    ck_assert_int_eq(membership_decode(text, (size_t)len, &back, err, sizeof(err)), RK_OK);
    ck_assert(membership_equal(&ms, &back));
    ck_assert_int_eq(membership_free_id(&ms), 1);
    const char *bad[] = { "0 voter n0 h 7000", "0 boss n0 h 1\n", "0 voter n/0 h 1\n",
                          "64 voter n0 h 1\n", "1 voter a h 1\n0 voter b h 2\n",
                          "0 voter a h 0\n", "0 voter a h 1 x\n" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(membership_decode(bad[i], strlen(bad[i]), &back, err, sizeof(err)) ==
                          RK_ERR_CORRUPT, "accepted '%s'", bad[i]);
    ck_assert_int_eq(membership_encode(&ms, text, 10), -1);
}
END_TEST

static Suite *membership_suite(void)
{
    Suite *s = suite_create("membership");
    TCase *tc = tcase_create("membership");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_membership_text);
    tcase_add_test(tc, test_config_in_effect_once_in_the_log);
    tcase_add_test(tc, test_learner_never_campaigns_or_counts);
    tcase_add_test(tc, test_learner_vote_never_elects);
    tcase_add_test(tc, test_add_catches_up_then_votes);
    tcase_add_test(tc, test_add_unreachable_fails_and_undoes);
    tcase_add_test(tc, test_add_that_cannot_catch_up_fails);
    tcase_add_test(tc, test_single_server_change_bug_2015);
    tcase_add_test(tc, test_remove_follower);
    tcase_add_test(tc, test_removed_leader_steps_down);
    tcase_add_test(tc, test_remove_guards);
    tcase_add_test(tc, test_transfer_to_lagging_target);
    tcase_add_test(tc, test_transfer_target_dies);
    tcase_add_test(tc, test_removed_server_does_not_disrupt);
    tcase_add_test(tc, test_no_campaign_while_disk_stalls);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(membership_suite)
