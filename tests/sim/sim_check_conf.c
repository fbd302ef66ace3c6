/* tests/sim/sim_check_conf.c - the simulator's invariants for membership changes and
 * leadership transfer (Raft thesis §4, §3.10), checked after every step like those of
 * sim_check.c: the configuration a server uses is the latest in its log (§4.1); every
 * majority of a configuration meets every majority of the one before it in any log
 * (single-server changes); a server becomes a voter only as a learner first (§4.2.1); a
 * leader appends a configuration only once the previous one and an entry of its own term
 * are committed (one change at a time; Ongaro's 2015 fix); only voters campaign, vote
 * and count (commit, elections, pre-votes); a removed leader does not lead once its
 * removal is committed (§4.2.2); snapshots carry the configuration at their index; and
 * a transfer's election is one a leader asked for with TimeoutNow. A configuration is
 * kept as two bit masks (bit i: id i), ids being below SIM_SLOTS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "sim_internal.h"

typedef unsigned long long ull;

/* ---- configurations as masks ----------------------------------------------------------- */

struct sim_conf sim_conf_of(struct sim *s, const struct membership *ms)
{
    struct sim_conf c = { 0, 0 };
    for (int i = 0; i < ms->n; i++) {
        int id = ms->m[i].id;
        if (id < 0 || id >= SIM_SLOTS) {
            sim_fail(s, "Configuration", "a configuration names id %d (ids go up to %d)", id,
                     SIM_SLOTS - 1);
            continue;
        }
        c.members |= 1u << id;
        if (ms->m[i].role == MEMBER_VOTER)
            c.voters |= 1u << id;
    }
    return c;
}

struct sim_conf sim_conf_of_node(struct sim *s, const struct sim_node *n)
{
    struct sim_conf none = { 0, 0 };
    return n->raft != NULL ? sim_conf_of(s, raft_membership(n->raft, NULL)) : none;
}

bool sim_conf_of_entry(struct sim *s, const struct raft_entry *e, struct sim_conf *out)
{
    struct membership *ms = malloc(sizeof(*ms));
    char err[160];
    if (ms == NULL)
        abort();
    bool ok = membership_decode(e->val, e->val_len, ms, err, sizeof(err)) == RK_OK;
    if (ok)
        *out = sim_conf_of(s, ms);
    else
        sim_fail(s, "Configuration", "a configuration entry does not parse: %s", err);
    free(ms);
    return ok;
}

int sim_conf_majority(uint32_t voters)
{
    return __builtin_popcount(voters) / 2 + 1;
}

static bool sim_conf_has(uint32_t mask, int id)
{
    return id >= 0 && id < SIM_SLOTS && ((mask >> id) & 1u) != 0;
}

/* "{0,1,2}" */
static const char *sim_conf_list(uint32_t mask, char *buf, size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "{");
    for (int i = 0; i < SIM_SLOTS && off < len; i++)
        if (sim_conf_has(mask, i))
            off += (size_t)snprintf(buf + off, len - off, "%s%d", off > 1 ? "," : "", i);
    if (off < len)
        snprintf(buf + off, len - off, "}");
    return buf;
}

/* Thesis §4.1: whether every majority of the voters a meets every majority of the voters
 * b. Two disjoint majorities exist when each can take what it needs of the voters only
 * it has, and the shared ones cover the rest of both. */
static bool sim_conf_overlap(uint32_t a, uint32_t b)
{
    int only_a = __builtin_popcount(a & ~b), only_b = __builtin_popcount(b & ~a);
    int both = __builtin_popcount(a & b);
    int need_a = sim_conf_majority(a) - only_a, need_b = sim_conf_majority(b) - only_b;
    return (need_a > 0 ? need_a : 0) + (need_b > 0 ? need_b : 0) > both;
}

/* ---- the committed configurations ------------------------------------------------------ */

void sim_conf_boot(struct sim *s, struct membership *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < s->p.n_nodes; i++) { /* as the core's own bootstrap_members */
        struct member m = { .id = i, .role = MEMBER_VOTER, .port = (uint16_t)(1 + i) };
        snprintf(m.name, sizeof(m.name), "node%d", i);
        snprintf(m.host, sizeof(m.host), "127.0.0.1");
        membership_add(out, &m);
    }
}

struct sim_conf sim_conf_committed_at(const struct sim_checker *c, raft_index_t index)
{
    for (size_t i = c->n_confs; i > 0; i--)
        if (c->confs[i - 1].index <= index)
            return c->confs[i - 1].conf;
    return c->boot;
}

struct sim_conf sim_conf_latest_committed(const struct sim_checker *c)
{
    return sim_conf_committed_at(c, c->n_committed);
}

/* Index index was applied for the first time anywhere: a configuration entry there is
 * committed. */
void sim_conf_committed(struct sim *s, raft_index_t index, const struct raft_entry *e)
{
    struct sim_checker *c = &s->chk;
    struct sim_conf conf;
    if (e->type != RAFT_ENTRY_CONFIG || !sim_conf_of_entry(s, e, &conf))
        return;
    if (c->n_confs == c->cap_confs) {
        c->cap_confs = c->cap_confs ? 2 * c->cap_confs : 16;
        c->confs = realloc(c->confs, c->cap_confs * sizeof(*c->confs));
        if (c->confs == NULL)
            abort();
    }
    c->confs[c->n_confs++] = (struct sim_conf_rec){ .index = index, .conf = conf };
}

/* ---- configurations in a log ---------------------------------------------------------- */

/* The configuration n's log holds at index (its latest entry there, else the one its
 * log starts from). base_is_cluster: at an empty prefix, the cluster's first configuration
 * rather than the server's own (a joiner starts from none). */
static bool sim_conf_in_log(struct sim *s, const struct sim_node *n, raft_index_t index,
                            bool base_is_cluster, struct sim_conf *out)
{
    raft_index_t base = raft_first_index(n->raft) - 1;
    raft_index_t at = index > base && index <= n->mirror.n ? n->mirror.conf_at[index] : 0;
    struct sim_conf none = { 0, 0 };
    if (at > base)
        return sim_conf_of_entry(s, raft_entry_at(n->raft, at), out);
    if (base > 0 || base_is_cluster || !n->disk.joiner)
        *out = sim_conf_committed_at(&s->chk, base);
    else
        *out = none;
    return true;
}

/* A configuration entry at index is new in n's log (the mirror just recorded it). */
void sim_conf_entry_seen(struct sim *s, struct sim_node *n, raft_index_t index,
                         const struct raft_entry *e)
{
    struct sim_conf prev, cur;
    char a[40], b[40];
    s->chk.conf_seen = true;
    if (!sim_conf_in_log(s, n, index - 1, true, &prev) || !sim_conf_of_entry(s, e, &cur))
        return;
    if (!sim_conf_overlap(prev.voters, cur.voters))
        sim_fail(s, "Quorum Overlap", "n%d's log changes the voters from %s to %s at index "
                 "%llu: some majorities of the two do not meet", n->id,
                 sim_conf_list(prev.voters, a, sizeof(a)), sim_conf_list(cur.voters, b, sizeof(b)),
                 (ull)index);
    else if ((cur.voters & ~prev.members) != 0)
        sim_fail(s, "Learner First", "n%d's log makes %s voters at index %llu without their "
                 "being learners first (thesis §4.2.1)", n->id,
                 sim_conf_list(cur.voters & ~prev.members, a, sizeof(a)), (ull)index);
}

/* Thesis §4.1: a server uses the latest configuration in its log, committed or not; with
 * none there, the one its log starts from (its snapshot's). */
static void sim_conf_check_effect(struct sim *s, struct sim_node *n, struct sim_conf cur)
{
    const struct raft *r = n->raft;
    raft_index_t base = raft_first_index(r) - 1, last = raft_last_index(r), have;
    raft_index_t want = last > base && last <= n->mirror.n ? n->mirror.conf_at[last] : 0;
    if (want <= base)
        want = 0;
    raft_membership(r, &have);
    /* A configuration entry inside the node's snapshot may be folded into the snapshot's
     * configuration while the log still keeps it (a snapshot installed over entries just
     * written: the log is compacted only as far as they are known durable). */
    bool folded = have == 0 && want <= raft_snapshot_index(r);
    if (have != want && !folded) {
        sim_fail(s, "Configuration in Effect", "n%d uses the configuration of index %llu, but "
                 "the latest one in its log (first index %llu, last %llu) is at %llu", n->id,
                 (ull)have, (ull)(base + 1), (ull)last, (ull)want);
        return;
    }
    uint64_t gen = raft_membership_gen(r);
    if (gen == n->seen_conf_gen && want == n->seen_conf_want && base == n->seen_conf_base)
        return;
    n->seen_conf_gen = gen;
    n->seen_conf_want = want;
    n->seen_conf_base = base;
    struct sim_conf expect;
    char a[40], b[40], c[40], d[40];
    if (!sim_conf_in_log(s, n, last, false, &expect))
        return;
    if (expect.voters != cur.voters || expect.members != cur.members)
        sim_fail(s, "Configuration in Effect", "n%d uses voters %s of members %s, but its log "
                 "(from index %llu) says voters %s of members %s", n->id,
                 sim_conf_list(cur.voters, a, sizeof(a)), sim_conf_list(cur.members, b, sizeof(b)),
                 (ull)base, sim_conf_list(expect.voters, c, sizeof(c)),
                 sim_conf_list(expect.members, d, sizeof(d)));
}

/* The term of n's entry at index (a compacted one: the committed entry's). */
static raft_term_t sim_conf_term_at(const struct sim *s, const struct sim_node *n,
                                    raft_index_t index)
{
    const struct raft_entry *e = raft_entry_at(n->raft, index);
    if (e != NULL)
        return e->term;
    return index > 0 && index <= s->chk.n_committed ? s->chk.committed[index].term : 0;
}

/* Thesis §4.1 and Ongaro's 2015 fix: a leader appends a configuration entry only when
 * the previous configuration in its log is committed, and it has committed an entry of
 * its own term. Entries from index from on are new this step. */
static void sim_conf_check_append(struct sim *s, struct sim_node *n, raft_index_t from)
{
    const struct raft *r = n->raft;
    raft_term_t term = raft_term(r);
    raft_index_t commit = raft_commit_index(r), base = raft_first_index(r) - 1;
    for (raft_index_t i = from > base + 1 ? from : base + 1; i <= raft_last_index(r); i++) {
        const struct raft_entry *e = raft_entry_at(r, i);
        if (e->type != RAFT_ENTRY_CONFIG || e->term != term)
            continue;
        raft_index_t prev = n->mirror.conf_at[i - 1] > base ? n->mirror.conf_at[i - 1] : 0;
        if (prev > commit)
            sim_fail(s, "Reconfiguration Rule", "n%d, leader of term %llu, appends a "
                     "configuration at index %llu while the one at %llu is not committed "
                     "(commit index %llu): one change at a time", n->id, (ull)term, (ull)i,
                     (ull)prev, (ull)commit);
        else if (sim_conf_term_at(s, n, commit) != term)
            sim_fail(s, "Reconfiguration Rule", "n%d, leader of term %llu, appends a "
                     "configuration at index %llu before committing an entry of its term "
                     "(commit index %llu, of term %llu): Ongaro's 2015 fix", n->id,
                     (ull)term, (ull)i, (ull)commit, (ull)sim_conf_term_at(s, n, commit));
    }
}

/* Thesis §4.2.2: a leader that is no voter in its configuration leads until that
 * configuration is committed, and not a step longer. */
static void sim_conf_check_removed_leader(struct sim *s, const struct sim_node *n,
                                          struct sim_conf cur)
{
    raft_index_t index;
    raft_membership(n->raft, &index);
    if (!sim_conf_has(cur.voters, n->id) && index <= raft_commit_index(n->raft))
        sim_fail(s, "Removed Leader", "n%d still leads term %llu, but the configuration "
                 "without it as a voter (index %llu) is committed (commit index %llu)", n->id,
                 (ull)raft_term(n->raft), (ull)index, (ull)raft_commit_index(n->raft));
}

/* Thesis §4.1, §4.2.2: a voter removed by a configuration it does not know to be committed
 * may still be needed to elect a leader that commits it, so it still stands (without
 * counting its own vote) and votes. */
static bool sim_conf_being_removed(struct sim *s, const struct sim_node *n)
{
    raft_index_t index;
    struct sim_conf prev;
    raft_membership(n->raft, &index);
    if (index == 0 || index <= raft_commit_index(n->raft) ||
        !sim_conf_in_log(s, n, index - 1, true, &prev))
        return false;
    return sim_conf_has(prev.voters, n->id);
}

/* Thesis §4.2.1, §4.2.3: a learner, a removed server or a joining one never campaigns (a
 * voter being removed does: sim_conf_being_removed); a removed server or a joining one
 * never grants a vote (thesis §4.1: a learner does, the configuration that makes it a
 * voter may not have reached it yet). */
static void sim_conf_check_voter_acts(struct sim *s, struct sim_node *n, struct sim_conf cur)
{
    const struct raft *r = n->raft;
    raft_term_t term = raft_term(r);
    int vote = raft_voted_for(r);
    bool new_candidate = raft_role(r) == RAFT_CANDIDATE &&
                         (n->seen_role != RAFT_CANDIDATE || term != n->seen_term);
    bool granted = vote >= 0 && vote < SIM_SLOTS && vote != n->id &&
                   !(term == n->seen_term && vote == n->seen_vote);
    if (new_candidate && !sim_conf_has(cur.voters, n->id) && !sim_conf_being_removed(s, n))
        sim_fail(s, "Non-Voter Campaign", "n%d, no voter in its configuration, stands for "
                 "term %llu", n->id, (ull)term);
    else if (granted && !sim_conf_has(cur.members, n->id) && !sim_conf_being_removed(s, n))
        sim_fail(s, "Non-Member Vote", "n%d, no member of its configuration, votes for n%d in "
                 "term %llu", n->id, vote, (ull)term);
    n->seen_vote = vote;
}

/* A leader's commit index went up: the entry there is on the disks of a majority of the
 * voters of its configuration, as it was when the step began or is now (a change may
 * take effect within the step), learners and itself (once removed) not counted. */
void sim_conf_check_commit(struct sim *s, struct sim_node *n)
{
    raft_index_t commit = raft_commit_index(n->raft);
    if (commit <= n->seen_commit || commit <= n->mirror.base || commit > n->mirror.n)
        return;
    uint64_t fp = n->mirror.fp[commit];
    uint32_t holders = 0;
    for (int k = 0; k < s->n_slots; k++)
        if (sim_check_disk_holds(&s->node[k].disk, commit, fp))
            holders |= 1u << k;
    uint32_t before = n->conf_before.voters, now = n->seen_conf.voters;
    int got_before = __builtin_popcount(holders & before), got_now = __builtin_popcount(holders & now);
    char a[40], b[40];
    if (got_before < sim_conf_majority(before) && got_now < sim_conf_majority(now))
        sim_fail(s, "Commit Quorum", "n%d, leader of term %llu, commits index %llu, which is on "
                 "the disks of %s only: no majority of its voters %s", n->id,
                 (ull)raft_term(n->raft), (ull)commit, sim_conf_list(holders, a, sizeof(a)),
                 sim_conf_list(now, b, sizeof(b)));
}

/* A leader was elected: by a majority of the voters of its configuration (a learner's
 * vote never counts). */
void sim_conf_check_elected(struct sim *s, const struct sim_node *n)
{
    raft_term_t term = raft_term(n->raft);
    uint32_t voters = n->seen_conf.voters;
    uint32_t grants = n->vote_term == term ? n->vote_grants & ~(1u << n->id) : 0;
    int votes = __builtin_popcount(grants & voters) + (sim_conf_has(voters, n->id) ? 1 : 0);
    char a[40], b[40];
    if (votes < sim_conf_majority(voters))
        sim_fail(s, "Election Quorum", "n%d leads term %llu with the votes of %s (itself %s) "
                 "of its voters %s", n->id, (ull)term, sim_conf_list(grants, a, sizeof(a)),
                 sim_conf_has(voters, n->id) ? "included" : "no voter",
                 sim_conf_list(voters, b, sizeof(b)));
}

/* After every step on n (its mirror is up to date; from: the first index that changed). */
void sim_conf_observe(struct sim *s, struct sim_node *n, raft_index_t from)
{
    struct sim_conf cur = sim_conf_of_node(s, n);
    char a[40], b[40];
    n->conf_before = n->seen_conf;
    if (cur.voters != n->seen_conf.voters || cur.members != n->seen_conf.members) {
        raft_index_t index;
        raft_membership(n->raft, &index);
        sim_trace_text(s, n->id, "configuration of index %llu: voters %s, members %s",
                       (ull)index, sim_conf_list(cur.voters, a, sizeof(a)),
                       sim_conf_list(cur.members, b, sizeof(b)));
        if (cur.voters != n->seen_conf.voters)
            n->conf_since = s->now;
    }
    n->seen_conf = cur;
    sim_conf_check_effect(s, n, cur);
    sim_conf_check_voter_acts(s, n, cur);
    if (raft_role(n->raft) != RAFT_LEADER)
        return;
    sim_conf_check_append(s, n, from > n->seen_last ? from : n->seen_last + 1);
    sim_conf_check_removed_leader(s, n, cur);
    sim_conf_check_commit(s, n);
}

/* ---- snapshots --------------------------------------------------------------------------- */

/* A snapshot carries the configuration in effect at its index (thesis §4.1, §5.4). */
void sim_conf_check_snapshot(struct sim *s, const struct sim_node *n,
                             const struct sim_snapshot *sn)
{
    struct membership *ms = malloc(sizeof(*ms));
    if (ms == NULL)
        abort();
    if (!sim_snap_conf(sn, ms)) {
        sim_fail(s, "Snapshot Safety", "n%d's snapshot %llu holds no configuration", n->id,
                 (ull)sn->index);
    } else {
        struct sim_conf got = sim_conf_of(s, ms), want = sim_conf_committed_at(&s->chk, sn->index);
        char a[40], b[40];
        if (got.voters != want.voters || got.members != want.members)
            sim_fail(s, "Snapshot Safety", "n%d's snapshot %llu holds the voters %s, but the "
                     "configuration at that index has %s", n->id, (ull)sn->index,
                     sim_conf_list(got.voters, a, sizeof(a)), sim_conf_list(want.voters, b, sizeof(b)));
    }
    free(ms);
}

/* ---- messages ----------------------------------------------------------------------------- */

/* Before n steps m: votes granted to it, and a TimeoutNow from its term's leader. */
void sim_conf_deliver(struct sim *s, struct sim_node *n, const struct raft_msg *m)
{
    if (m->type == RAFT_MSG_VOTE_RESP && m->vote_granted && m->term >= n->vote_term &&
        m->from >= 0 && m->from < SIM_SLOTS) {
        if (m->term > n->vote_term)
            n->vote_grants = 0;
        n->vote_term = m->term;
        n->vote_grants |= 1u << m->from;
    }
    if (m->type == RAFT_MSG_TIMEOUT_NOW && m->term == raft_term(n->raft) &&
        sim_term_leader(s, m->term) == m->from) {
        n->tn_term = m->term;
        n->tn_step = s->steps;
    }
}

/* Thesis §3.10: a TimeoutNow goes to a target whose log holds the leader's whole log
 * (the leader takes no writes meanwhile), and only the election it starts skips the
 * pre-vote and the voters' leases. The TimeoutNow part holds when the core gives the
 * message out (taken as an early message, or in a Ready: sim_conf_check_taken), not when
 * the network sends it: a Ready's messages wait for its fdatasync, during which the
 * transfer may time out and the leader take writes again. */
static void sim_conf_check_transfer_msg(struct sim *s, const struct sim_node *n,
                                        const struct raft_msg *m, bool taken_now)
{
    const struct raft *r = n->raft;
    if (m->type == RAFT_MSG_VOTE && m->transfer && n->tn_term + 1 != m->term)
        sim_fail(s, "Transfer", "n%d asks for votes for term %llu as a leadership transfer, "
                 "but no leader of term %llu sent it TimeoutNow", n->id, (ull)m->term,
                 (ull)(m->term - 1));
    if (!taken_now || m->type != RAFT_MSG_TIMEOUT_NOW || raft_role(r) != RAFT_LEADER ||
        raft_term(r) != m->term)
        return;
    raft_index_t match = raft_peer_match(r, m->to);
    if (match < raft_last_index(r))
        sim_fail(s, "Transfer", "n%d sends TimeoutNow to n%d, which it knows to hold its log "
                 "only up to %llu of %llu", n->id, m->to, (ull)match, (ull)raft_last_index(r));
}

void sim_conf_check_taken(struct sim *s, const struct sim_node *n, const struct raft_ready *rd)
{
    for (uint32_t i = 0; i < rd->n_msgs && !s->failed; i++)
        if (rd->msgs[i].type == RAFT_MSG_TIMEOUT_NOW)
            sim_conf_check_transfer_msg(s, n, &rd->msgs[i], true);
}

/* n sends m (early: in the step that made it, before its fdatasync). */
void sim_conf_check_sent(struct sim *s, const struct sim_node *n, const struct raft_msg *m,
                         bool early)
{
    sim_conf_check_transfer_msg(s, n, m, early);
    if (!early)
        return; /* the configuration may have changed since the message was made */
    bool removing = sim_conf_being_removed(s, n);
    if (m->type == RAFT_MSG_PREVOTE && !sim_conf_has(n->seen_conf.voters, n->id) && !removing)
        sim_fail(s, "Non-Voter Campaign", "n%d, no voter in its configuration, asks for "
                 "pre-votes for term %llu", n->id, (ull)m->term);
    else if (m->type == RAFT_MSG_PREVOTE_RESP && m->vote_granted &&
             !sim_conf_has(n->seen_conf.members, n->id) && !removing)
        sim_fail(s, "Non-Member Vote", "n%d, no member of its configuration, grants n%d a "
                 "pre-vote for term %llu", n->id, m->to, (ull)m->term);
}
