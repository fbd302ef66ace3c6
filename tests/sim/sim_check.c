/* tests/sim/sim_check.c - the invariants checked after every step, named as in the Raft
 * paper's Figure 3, plus Figure 2's "persist before responding", acknowledged writes,
 * linearizable reads, snapshots and durability of committed entries on a majority. The
 * majorities are those of the configurations in effect (thesis §4); the invariants of
 * the configurations themselves are in sim_check_conf.c. */
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

typedef unsigned long long ull;

/* ---- fingerprints ------------------------------------------------------------------ */

uint64_t sim_check_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t sim_check_bytes(uint64_t h, const char *p, uint32_t len)
{
    uint64_t w = 0;
    if (len <= 8) {
        memcpy(&w, p, len);
        return sim_check_mix(h ^ w ^ ((uint64_t)len << 56));
    }
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return sim_check_mix(h ^ len);
}

/* Identifies an entry by term and command: equal fingerprints, equal entries. */
uint64_t sim_check_entry_fp(const struct raft_entry *e)
{
    uint64_t h = sim_check_mix(e->term * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)e->type << 40));
    h = sim_check_mix(h ^ e->client_id * 0xC2B2AE3D27D4EB4FULL ^ e->seq);
    h = sim_check_mix(h ^ e->rev * 0x165667B19E3779F9ULL);
    if (e->ttl_ms != 0)
        h = sim_check_mix(h ^ e->ttl_ms * 0x27D4EB2F165667C5ULL);
    h = sim_check_bytes(h, e->key, e->key_len);
    return sim_check_bytes(h ^ 0x5bd1e995ULL, e->val, e->val_len);
}

static uint64_t sim_check_prefix_next(uint64_t prefix, uint64_t fp)
{
    return sim_check_mix(prefix * 31 + fp);
}

/* ---- tables ------------------------------------------------------------------------ */

void sim_check_init(struct sim_checker *c)
{
    memset(c, 0, sizeof(*c));
}

void sim_check_free(struct sim_checker *c)
{
    free(c->term_leader);
    free(c->lm);
    free(c->committed);
    free(c->confs);
    sim_check_expiry_free(c);
    for (int i = 0; i < SIM_SLOTS; i++)
        free(c->votes[i]);
    memset(c, 0, sizeof(*c));
}

void sim_mirror_free(struct sim_mirror *m)
{
    free(m->id);
    free(m->term);
    free(m->fp);
    free(m->prefix);
    free(m->conf_at);
    memset(m, 0, sizeof(*m));
}

static void *sim_check_grow(void *p, size_t *cap, size_t want, size_t elem)
{
    if (want < *cap)
        return p;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 <= want)
        cap2 *= 2;
    char *grown = realloc(p, cap2 * elem);
    if (grown == NULL)
        abort();
    memset(grown + *cap * elem, 0, (cap2 - *cap) * elem);
    *cap = cap2;
    return grown;
}

static void sim_mirror_reserve(struct sim_mirror *m, raft_index_t last)
{
    size_t cap = m->cap;
    m->id = sim_check_grow(m->id, &cap, last, sizeof(*m->id));
    cap = m->cap;
    m->term = sim_check_grow(m->term, &cap, last, sizeof(*m->term));
    cap = m->cap;
    m->fp = sim_check_grow(m->fp, &cap, last, sizeof(*m->fp));
    cap = m->cap;
    m->prefix = sim_check_grow(m->prefix, &cap, last, sizeof(*m->prefix));
    cap = m->cap;
    m->conf_at = sim_check_grow(m->conf_at, &cap, last, sizeof(*m->conf_at));
    m->cap = cap;
}

static bool sim_mirror_same(const struct sim_mirror *m, raft_index_t i, const struct raft_entry *e)
{
    return m->id[i] == (uintptr_t)e->key && m->term[i] == e->term;
}

static size_t lm_hash(raft_index_t index, raft_term_t term, size_t cap)
{
    return (size_t)(sim_check_mix(index * 0x9E3779B97F4A7C15ULL + term) & (cap - 1));
}

static void lm_grow(struct sim_checker *c)
{
    size_t old_cap = c->lm_cap;
    struct sim_lm_slot *old = c->lm;
    c->lm_cap = old_cap ? old_cap * 2 : 1024;
    c->lm = calloc(c->lm_cap, sizeof(*c->lm));
    if (c->lm == NULL)
        abort();
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].index == 0)
            continue;
        size_t h = lm_hash(old[i].index, old[i].term, c->lm_cap);
        while (c->lm[h].index != 0)
            h = (h + 1) & (c->lm_cap - 1);
        c->lm[h] = old[i];
    }
    free(old);
}

/* The slot of (index, term): found, or an empty one to fill. */
static struct sim_lm_slot *lm_slot(struct sim_checker *c, raft_index_t index, raft_term_t term)
{
    if ((c->lm_n + 1) * 2 > c->lm_cap)
        lm_grow(c);
    size_t h = lm_hash(index, term, c->lm_cap);
    while (c->lm[h].index != 0 && (c->lm[h].index != index || c->lm[h].term != term))
        h = (h + 1) & (c->lm_cap - 1);
    return &c->lm[h];
}

/* ---- Log Matching and Leader Append-Only -------------------------------------------- */

/* Figure 3, Log Matching: two logs with an entry of the same index and term hold the
 * same command there and are identical in all entries before it. Every (index, term)
 * ever seen is remembered with its command and the hash of the log prefix up to it. */
static void sim_check_log_matching(struct sim *s, int node, raft_index_t index, raft_term_t term,
                                   uint64_t fp, uint64_t prefix)
{
    struct sim_lm_slot *slot = lm_slot(&s->chk, index, term);
    if (slot->index == 0) {
        *slot = (struct sim_lm_slot){ .index = index, .term = term, .fp = fp, .prefix = prefix };
        s->chk.lm_n++;
    } else if (slot->fp != fp) {
        sim_fail(s, "Log Matching",
                 "n%d holds a different command at index %llu term %llu than another log did",
                 node, (ull)index, (ull)term);
    } else if (slot->prefix != prefix) {
        sim_fail(s, "Log Matching",
                 "n%d agrees with another log at index %llu term %llu but not before it",
                 node, (ull)index, (ull)term);
    }
}

/* The hash of the committed log up to index (0 for index 0). */
static uint64_t sim_check_committed_prefix(const struct sim_checker *c, raft_index_t index)
{
    return index == 0 ? 0 : c->committed[index].prefix;
}

/* The core compacted its log up to base (into a snapshot checked to hold committed
 * entries): where does the mirror have to be recomputed from? */
static raft_index_t sim_mirror_rebase(struct sim *s, struct sim_node *n, raft_index_t base)
{
    struct sim_mirror *m = &n->mirror;
    if (base == m->base)
        return base + 1;
    if (base > s->chk.n_committed) {
        sim_fail(s, "Snapshot Safety", "n%d compacted its log up to %llu, beyond the committed "
                 "index %llu", n->id, (ull)base, (ull)s->chk.n_committed);
        return base + 1;
    }
    uint64_t prefix = sim_check_committed_prefix(&s->chk, base);
    bool kept = base > m->base && base <= m->n && m->prefix[base] == prefix;
    m->base = base;
    m->prefix[base] = prefix;
    m->conf_at[base] = 0; /* a configuration in the snapshot is no entry in memory */
    if (!kept)
        m->n = base; /* everything after the snapshot is new to the mirror */
    return base + 1;
}

/* Brings n's mirror up to date with its core's log; returns the first index that changed
 * (last index + 1 if none did). Checks Log Matching on every changed entry. */
static raft_index_t sim_mirror_update(struct sim *s, struct sim_node *n)
{
    struct sim_mirror *m = &n->mirror;
    const struct raft *r = n->raft;
    raft_index_t base = raft_first_index(r) - 1, last = raft_last_index(r);
    sim_mirror_reserve(m, last > base ? last : base);
    raft_index_t i = sim_mirror_rebase(s, n, base);
    raft_index_t common = last < m->n ? last : m->n;
    while (i <= common && sim_mirror_same(m, i, raft_entry_at(r, i)))
        i++;
    raft_index_t changed = i;
    if (changed > last && last == m->n)
        return changed;
    for (; i <= last && !s->failed; i++) {
        const struct raft_entry *e = raft_entry_at(r, i);
        if (i > base + 1 && e->term < raft_entry_at(r, i - 1)->term)
            sim_fail(s, "Log Matching", "n%d's log goes back from term %llu to %llu at index %llu",
                     n->id, (ull)raft_entry_at(r, i - 1)->term, (ull)e->term, (ull)i);
        m->id[i] = (uintptr_t)e->key;
        m->term[i] = e->term;
        m->fp[i] = sim_check_entry_fp(e);
        m->prefix[i] = sim_check_prefix_next(m->prefix[i - 1], m->fp[i]);
        m->conf_at[i] = e->type == RAFT_ENTRY_CONFIG ? i : m->conf_at[i - 1];
        m->n = i;
        sim_check_log_matching(s, n->id, i, e->term, m->fp[i], m->prefix[i]);
        if (e->type == RAFT_ENTRY_CONFIG)
            sim_conf_entry_seen(s, n, i, e);
    }
    m->n = last;
    return changed;
}

/* The per-step test above trusts an entry whose buffer and term did not change; every
 * SIM_AUDIT_STEPS steps each log is fingerprinted in full, so an entry rewritten in
 * place is caught too. */
void sim_check_audit_logs(struct sim *s)
{
    for (int k = 0; k < s->n_slots && !s->failed; k++) {
        const struct sim_node *n = &s->node[k];
        if (n->raft == NULL)
            continue;
        raft_index_t first = raft_first_index(n->raft);
        if (first < n->mirror.base + 1)
            first = n->mirror.base + 1;
        for (raft_index_t i = first; i <= n->mirror.n && i <= raft_last_index(n->raft); i++) {
            if (sim_check_entry_fp(raft_entry_at(n->raft, i)) != n->mirror.fp[i]) {
                sim_fail(s, "Log Matching", "n%d's entry at index %llu changed in place", k,
                         (ull)i);
                return;
            }
        }
    }
}

/* ---- Election Safety and Leader Completeness ---------------------------------------- */

/* Entries up to base are in the node's snapshot, which was checked to hold exactly the
 * committed entries (sim_check_snapshot). */
static bool sim_mirror_holds(const struct sim_mirror *m, raft_index_t index, uint64_t fp)
{
    return index <= m->base || (index <= m->n && m->fp[index] == fp);
}

/* Figure 3, Election Safety: at most one leader can be elected in a given term. */
static void sim_check_election_safety(struct sim *s, const struct sim_node *n, raft_term_t term)
{
    struct sim_checker *c = &s->chk;
    c->term_leader = sim_check_grow(c->term_leader, &c->term_cap, term, sizeof(*c->term_leader));
    int16_t had = c->term_leader[term];
    if (had == 0)
        c->term_leader[term] = (int16_t)(n->id + 1);
    else if (had != n->id + 1)
        sim_fail(s, "Election Safety", "n%d and n%d were both leaders of term %llu", had - 1,
                 n->id, (ull)term);
}

/* Figure 3, Leader Completeness: an entry committed in a term is in the log of every
 * leader of a higher term. Checked when a node becomes leader... */
static void sim_check_new_leader_complete(struct sim *s, const struct sim_node *n, raft_term_t term)
{
    const struct sim_checker *c = &s->chk;
    for (raft_index_t i = 1; i <= c->n_committed; i++) {
        const struct sim_committed *k = &c->committed[i];
        if (k->commit_term < term && !sim_mirror_holds(&n->mirror, i, k->fp)) {
            sim_fail(s, "Leader Completeness",
                     "n%d became leader of term %llu without index %llu (term %llu), "
                     "committed in term %llu", n->id, (ull)term, (ull)i, (ull)k->term,
                     (ull)k->commit_term);
            return;
        }
    }
}

/* ... and when an older leader commits an entry while a newer leader already leads. */
static void sim_check_leaders_hold(struct sim *s, raft_index_t index)
{
    const struct sim_committed *k = &s->chk.committed[index];
    for (int i = 0; i < s->n_slots; i++) {
        const struct sim_node *m = &s->node[i];
        if (m->raft == NULL || m->seen_role != RAFT_LEADER || m->seen_term <= k->commit_term)
            continue;
        if (!sim_mirror_holds(&m->mirror, index, k->fp))
            sim_fail(s, "Leader Completeness",
                     "index %llu (term %llu) was committed in term %llu but n%d, leader of "
                     "term %llu, does not hold it", (ull)index, (ull)k->term,
                     (ull)k->commit_term, i, (ull)m->seen_term);
    }
}

/* Figure 2 (AppendEntries arguments: leaderId): a server learns who leads its current term
 * only from that term's leader, so the leader it names won an election in its term. */
static void sim_check_leader_known(struct sim *s, const struct sim_node *n, raft_term_t term)
{
    int leader = raft_leader(n->raft);
    if (leader < 0 || leader == n->id || sim_term_leader(s, term) == leader)
        return;
    sim_fail(s, "Leader Knowledge", "n%d follows n%d as the leader of term %llu, which n%d "
             "never led", n->id, leader, (ull)term, leader);
}

/* Thesis §9.6: with pre-vote, a server becomes a candidate for term T only after a
 * majority of the voters of its configuration (itself included) granted it a pre-vote
 * for T; a learner's grant does not count. The election of a leadership transfer skips
 * the pre-vote: a TimeoutNow from the leader of T - 1 started it in this very step. */
static void sim_check_prevote_won(struct sim *s, const struct sim_node *n, raft_term_t term)
{
    uint32_t voters = n->seen_conf.voters, self = 1u << n->id;
    if (!s->p.pre_vote || voters == self || (n->tn_step == s->steps && n->tn_term + 1 == term))
        return;
    uint32_t grants = n->prevote_term == term ? n->prevote_grants & voters & ~self : 0;
    int votes = __builtin_popcount(grants) + ((voters & self) != 0);
    if (votes < sim_conf_majority(voters))
        sim_fail(s, "Pre-Vote", "n%d became a candidate for term %llu with %d pre-votes of "
                 "voters granted for that term (itself included; a majority of its %d voters "
                 "needs %d)", n->id, (ull)term, votes, __builtin_popcount(voters),
                 sim_conf_majority(voters));
}

/* Before n steps m: what the leader and pre-vote checks need to know it was sent. */
void sim_check_deliver(struct sim *s, struct sim_node *n, const struct raft_msg *m)
{
    sim_conf_deliver(s, n, m);
    if (m->term == raft_term(n->raft)) {
        n->heard_at[m->from] = s->now;
        n->heard_term[m->from] = m->term;
    }
    if (m->type != RAFT_MSG_PREVOTE_RESP || !m->vote_granted || m->term < n->prevote_term)
        return;
    if (m->term > n->prevote_term)
        n->prevote_grants = 0;
    n->prevote_term = m->term;
    n->prevote_grants |= 1u << m->from;
}

/* Thesis §6.2, check-quorum: a leader steps down if it did not hear from a majority of the
 * voters of its configuration (itself included while it is one; learners not counted)
 * within an election timeout. It checks at the first tick after each timeout, and ticks
 * come at most SIM_TIMER_MAX_SLEEP_MS + jitter apart, so one that has led for two such
 * periods, ticking all along (a pause stops the ticks, and the first check after it still
 * counts what came before), with the same voters all along, must have heard from a
 * majority of them within the last two. */
void sim_check_leader_quorum(struct sim *s, const struct sim_node *n)
{
    if (!s->p.check_quorum || n->raft == NULL || raft_role(n->raft) != RAFT_LEADER)
        return;
    uint64_t gap = s->p.election_max_ms + SIM_TIMER_MAX_SLEEP_MS + s->p.tick_jitter_ms[n->id];
    uint64_t window = 2 * gap + 1, since = n->leader_since;
    if (n->ticking_since > since)
        since = n->ticking_since;
    if (n->conf_since > since)
        since = n->conf_since;
    if (s->now < since + window)
        return;
    raft_term_t term = raft_term(n->raft);
    uint32_t voters = n->seen_conf.voters;
    int heard = (voters >> n->id) & 1u;
    for (int i = 0; i < s->n_slots; i++)
        heard += i != n->id && ((voters >> i) & 1u) && n->heard_term[i] == term &&
                 n->heard_at[i] + window > s->now;
    if (heard < sim_conf_majority(voters))
        sim_fail(s, "Check-Quorum", "n%d still leads term %llu having heard from only %d of its "
                 "%d voters (itself included) in its term in the last %llu ms", n->id,
                 (ull)term, heard, __builtin_popcount(voters), (ull)window);
}

/* Thesis §10.2.1 (and Figure 2's persistence): what the core counts as durable (a leader
 * counts itself toward a majority with it) is on its disk: the entry at its stable index
 * is the one in memory, or inside the disk's snapshot. */
static void sim_check_stable_on_disk(struct sim *s, const struct sim_node *n)
{
    raft_index_t stable = raft_stable_index(n->raft);
    const struct sim_disk *d = &n->disk;
    if (stable <= d->snap.index || stable <= d->offset || stable < raft_first_index(n->raft))
        return;
    const struct raft_entry *mem = raft_entry_at(n->raft, stable), *disk = sim_disk_entry(d, stable);
    if (mem == NULL || disk == NULL || sim_check_entry_fp(mem) != sim_check_entry_fp(disk))
        sim_fail(s, "Durable Index", "n%d counts its log durable up to index %llu, but its disk "
                 "%s", n->id, (ull)stable, disk == NULL ? "ends before it" :
                 mem == NULL ? "has an entry its log lacks" : "holds another entry there");
}

/* Figure 2, matchIndex: the highest entry known to be replicated on the follower. A
 * follower of the leader's own term holds on its disk the leader's entry at that index
 * (only a leader of a later term could have replaced it; the follower would then be in
 * that term). Entries inside a snapshot, the leader's or the follower's, are committed. */
static void sim_check_match_on_disk(struct sim *s, const struct sim_node *n, raft_term_t term)
{
    const struct raft *r = n->raft;
    for (int i = 0; i < s->n_slots && !s->failed; i++) {
        const struct sim_disk *d = &s->node[i].disk;
        raft_index_t match = raft_peer_match(r, i);
        if (i == n->id || match == 0 || d->term != term || match < raft_first_index(r) ||
            match <= d->snap.index || match <= d->offset)
            continue;
        const struct raft_entry *mine = raft_entry_at(r, match), *theirs = sim_disk_entry(d, match);
        if (mine == NULL || theirs == NULL || sim_check_entry_fp(mine) != sim_check_entry_fp(theirs))
            sim_fail(s, "Match Index", "n%d, leader of term %llu, takes n%d to hold its entry at "
                     "index %llu, but n%d's disk %s", n->id, (ull)term, i, (ull)match, i,
                     theirs == NULL ? "ends before it" : "holds another entry there");
    }
}

/* After every step on n: role changes, and the log checks. */
void sim_check_observe(struct sim *s, struct sim_node *n)
{
    struct raft *r = n->raft;
    enum raft_role role = raft_role(r);
    raft_term_t term = raft_term(r);
    if (term < n->seen_term)
        sim_fail(s, "Term Monotonicity", "n%d's term went back from %llu to %llu", n->id,
                 (ull)n->seen_term, (ull)term);
    bool kept_lead = n->seen_role == RAFT_LEADER && role == RAFT_LEADER && term == n->seen_term;
    raft_index_t changed = sim_mirror_update(s, n);
    sim_conf_observe(s, n, changed);
    /* Figure 3, Leader Append-Only: a leader never overwrites or deletes entries. */
    if (kept_lead && changed <= n->seen_last)
        sim_fail(s, "Leader Append-Only",
                 "n%d, leader of term %llu, changed its log at index %llu (last was %llu, "
                 "now %llu)", n->id, (ull)term, (ull)changed, (ull)n->seen_last,
                 (ull)raft_last_index(r));
    if (role != n->seen_role || term != n->seen_term)
        sim_trace_role(s, n);
    if (role == RAFT_LEADER && !kept_lead) {
        s->stats.leaders++;
        n->ever_leader = true;
        n->leader_since = s->now;
        sim_check_election_safety(s, n, term);
        sim_check_new_leader_complete(s, n, term);
        sim_conf_check_elected(s, n);
    }
    if (role == RAFT_CANDIDATE && (n->seen_role != RAFT_CANDIDATE || term != n->seen_term))
        sim_check_prevote_won(s, n, term);
    sim_check_leader_known(s, n, term);
    sim_check_stable_on_disk(s, n);
    if (role == RAFT_LEADER)
        sim_check_match_on_disk(s, n, term);
    if (term > s->stats.max_term)
        s->stats.max_term = term;
    n->seen_role = role;
    n->seen_term = term;
    n->seen_last = raft_last_index(r);
}

/* ---- State Machine Safety and clients ------------------------------------------------- */

/* Figure 3, State Machine Safety: if a server has applied a log entry at a given index,
 * no other server ever applies a different log entry for the same index. */
void sim_check_apply(struct sim *s, struct sim_node *n, raft_index_t index,
                     const struct raft_entry *e)
{
    struct sim_checker *c = &s->chk;
    uint64_t fp = sim_check_entry_fp(e);
    uint64_t digest = kv_digest(n->kv);
    if (index <= c->n_committed) {
        const struct sim_committed *k = &c->committed[index];
        if (k->fp == fp && k->digest != digest)
            sim_fail(s, "State Machine Safety", "n%d's state after applying index %llu differs "
                     "from the state another node had there", n->id, (ull)index);
        if (k->fp != fp)
            sim_fail(s, k->acked ? "Acknowledged Write Lost" : "State Machine Safety",
                     "n%d applied a %s of term %llu at index %llu, where another command "
                     "of term %llu was applied before%s", n->id,
                     raft_entry_type_name(e->type), (ull)e->term, (ull)index, (ull)k->term,
                     k->acked ? " and acknowledged" : "");
        return;
    }
    if (index != c->n_committed + 1) {
        sim_fail(s, "State Machine Safety", "n%d applied index %llu before any node applied %llu",
                 n->id, (ull)index, (ull)(c->n_committed + 1));
        return;
    }
    size_t cap = c->committed_cap;
    c->committed = sim_check_grow(c->committed, &cap, index, sizeof(*c->committed));
    c->committed_cap = cap;
    c->committed[index] = (struct sim_committed){
        .term = e->term, .fp = fp, .commit_term = raft_term(n->raft), .digest = digest,
        .prefix = sim_check_prefix_next(sim_check_committed_prefix(c, index - 1), fp) };
    c->n_committed = index;
    s->stats.max_commit = index;
    sim_conf_committed(s, index, e);
    sim_check_leaders_hold(s, index);
}

void sim_check_ack(struct sim *s, raft_index_t index, uint64_t fp)
{
    struct sim_checker *c = &s->chk;
    if (index > c->n_committed || c->committed[index].fp != fp) {
        sim_fail(s, "Acknowledged Write Lost", "a write was acknowledged at index %llu, "
                 "which holds another command", (ull)index);
        return;
    }
    c->committed[index].acked = true;
    if (index > c->max_acked)
        c->max_acked = index;
}

/* Raft §8 / thesis §6.4: a read reflects every write acknowledged before it was sent. */
void sim_check_read(struct sim *s, const struct sim_node *n, const struct sim_op *op)
{
    if (n->applied < op->must_see)
        sim_fail(s, "Linearizable Read",
                 "read c%llu answered by n%d at applied index %llu, but index %llu was "
                 "acknowledged before the read was sent", (ull)op->id, n->id,
                 (ull)n->applied, (ull)op->must_see);
}

/* ---- the disk ------------------------------------------------------------------------- */

/* Entries in the disk's snapshot were checked to be the committed ones. */
bool sim_check_disk_holds(const struct sim_disk *d, raft_index_t index, uint64_t fp)
{
    const struct raft_entry *e = sim_disk_entry(d, index);
    return index <= d->snap.index || (e != NULL && sim_check_entry_fp(e) == fp);
}

/* How many voters of the configuration the checks count in (other than except) hold
 * committed index on disk. */
static int sim_check_disk_holders(const struct sim *s, raft_index_t index, int except,
                                  uint32_t voters)
{
    int holders = 0;
    for (int k = 0; k < s->n_slots; k++)
        if (k != except && ((voters >> k) & 1u))
            holders += sim_check_disk_holds(&s->node[k].disk, index, s->chk.committed[index].fp);
    return holders;
}

/* The disks that must keep every committed entry: every majority of the latest committed
 * configuration holds a copy (an entry committed under the next configuration, not yet
 * committed itself, is on a majority of that one, which meets every majority of this
 * one: thesis §4.1). As long as no configuration entry was ever seen, the cluster's
 * first configuration is the only one, and a majority of it holds each. */
static int sim_check_durable_need(const struct sim *s, uint32_t *voters)
{
    struct sim_conf c = sim_conf_latest_committed(&s->chk);
    int n = __builtin_popcount(c.voters), majority = sim_conf_majority(c.voters);
    *voters = c.voters;
    return s->chk.conf_seen ? n - majority + 1 : majority;
}

/* n drops its stored entries from index from on: a committed entry may go only where it
 * is not part of the majority that committed it (a follower still in an older term obeys
 * that term's leader), so a majority of disks must keep it. */
static void sim_check_drop(struct sim *s, const struct sim_node *n, raft_index_t from)
{
    const struct sim_checker *c = &s->chk;
    raft_index_t last = sim_disk_last(&n->disk);
    raft_index_t end = last < c->n_committed ? last : c->n_committed;
    uint32_t voters;
    int need = sim_check_durable_need(s, &voters);
    for (raft_index_t i = from; i <= end; i++) {
        const struct raft_entry *e = sim_disk_entry(&n->disk, i);
        if (e == NULL || sim_check_entry_fp(e) != c->committed[i].fp || !((voters >> n->id) & 1u))
            continue;
        int left = sim_check_disk_holders(s, i, n->id, voters);
        if (left < need) {
            sim_fail(s, "Committed Entry Durability",
                     "n%d drops its log from index %llu, losing committed entry %llu, which "
                     "stays on only %d disks of voters (%d needed)", n->id, (ull)from, (ull)i,
                     left, need);
            return;
        }
    }
}

/* Before the first ops steps of rd reach n's disk: the log reset and the truncation. */
void sim_check_sync_before(struct sim *s, const struct sim_node *n, const struct raft_ready *rd,
                           uint32_t ops)
{
    uint32_t step = 0;
    if (rd->reset_log_to != 0 && ops > step++)
        sim_check_drop(s, n, rd->reset_log_to + 1);
    if (rd->hard_state_changed)
        step++;
    if (rd->truncate_from != 0 && ops > step)
        sim_check_drop(s, n, rd->truncate_from);
}

static void sim_check_vote_once(struct sim *s, int voter, raft_term_t term, int candidate)
{
    struct sim_checker *c = &s->chk;
    c->votes[voter] = sim_check_grow(c->votes[voter], &c->votes_cap[voter], term,
                                     sizeof(*c->votes[voter]));
    int16_t had = c->votes[voter][term];
    if (had == 0)
        c->votes[voter][term] = (int16_t)(candidate + 1);
    else if (had != candidate + 1)
        sim_fail(s, "One Vote per Term", "n%d granted its vote in term %llu to n%d and to n%d",
                 voter, (ull)term, had - 1, candidate);
}

/* A successful AppendEntries answer says the disk holds the leader's entries up to
 * match_index. While that leader still leads the answer's term its log is unchanged
 * (Leader Append-Only), so the entry there can be compared with the disk's. */
static void sim_check_ack_on_disk(struct sim *s, const struct sim_node *n, const struct raft_msg *m)
{
    const struct sim_disk *d = &n->disk;
    if (m->match_index > sim_disk_last(d) && m->match_index > d->snap.index) {
        sim_fail(s, "Persist Before Reply", "n%d acknowledges entries up to %llu with only "
                 "%llu on disk", n->id, (ull)m->match_index, (ull)sim_disk_last(d));
        return;
    }
    const struct sim_node *leader = &s->node[m->to];
    const struct raft_entry *e = sim_disk_entry(d, m->match_index);
    if (e == NULL || leader->raft == NULL || leader->seen_role != RAFT_LEADER ||
        leader->seen_term != m->term || m->match_index <= leader->mirror.base ||
        m->match_index > leader->mirror.n)
        return;
    if (sim_check_entry_fp(e) != leader->mirror.fp[m->match_index])
        sim_fail(s, "Persist Before Reply", "n%d acknowledges index %llu to n%d, leader of term "
                 "%llu, but holds another entry there on disk", n->id, (ull)m->match_index,
                 m->to, (ull)m->term);
}

/* Figure 2: persistent state is updated on stable storage before responding to RPCs.
 * Runs once rd is durable, just before its messages leave. */
void sim_check_sync_after(struct sim *s, const struct sim_node *n, const struct raft_ready *rd)
{
    const struct sim_disk *d = &n->disk;
    for (uint32_t i = 0; i < rd->n_msgs && !s->failed; i++) {
        const struct raft_msg *m = &rd->msgs[i];
        sim_conf_check_sent(s, n, m, false);
        if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_PREVOTE_RESP)
            continue; /* thesis §9.6: they name term + 1 and change nothing */
        if (m->term > d->term) {
            sim_fail(s, "Persist Before Reply", "n%d sends a %s of term %llu with term %llu "
                     "on disk", n->id, raft_msg_type_name(m->type), (ull)m->term, (ull)d->term);
        } else if (m->type == RAFT_MSG_VOTE_RESP && m->vote_granted) {
            if (m->term == d->term && d->vote != m->to)
                sim_fail(s, "Persist Before Reply", "n%d grants its vote in term %llu to n%d "
                         "with a vote for %d on disk", n->id, (ull)m->term, m->to, d->vote);
            sim_check_vote_once(s, n->id, m->term, m->to);
        } else if (m->type == RAFT_MSG_VOTE && m->term == d->term && d->vote != n->id &&
                   d->vote != RAFT_NO_NODE) { /* NO_NODE: a candidate being removed (thesis
                                                 §4.2.2) has no vote of its own */
            sim_fail(s, "Persist Before Reply", "n%d asks for votes in term %llu before its own "
                     "vote is on disk", n->id, (ull)m->term);
        } else if ((m->type == RAFT_MSG_APPEND_RESP || m->type == RAFT_MSG_SNAPSHOT_RESP) &&
                   m->success) {
            sim_check_ack_on_disk(s, n, m);
        }
    }
}

/* Thesis §10.2.1: only what depends on nothing unpersisted leaves before the fdatasync:
 * pre-votes, and AppendEntries of a leader whose term is already on disk. */
void sim_check_early_msg(struct sim *s, const struct sim_node *n, const struct raft_msg *m)
{
    sim_conf_check_sent(s, n, m, true);
    if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_PREVOTE_RESP ||
        m->type == RAFT_MSG_TIMEOUT_NOW)
        return; /* TimeoutNow promises nothing (core.c msg_is_early) */
    if (m->type != RAFT_MSG_APPEND)
        sim_fail(s, "Persist Before Reply", "n%d sends a %s before its fdatasync", n->id,
                 raft_msg_type_name(m->type));
    else if (m->term > n->disk.term)
        sim_fail(s, "Persist Before Reply", "n%d sends an append of term %llu before that "
                 "term is on disk (%llu)", n->id, (ull)m->term, (ull)n->disk.term);
}

/* ---- snapshots ------------------------------------------------------------------------ */

struct check_snap_ctx {
    struct sim *s;
    const struct sim_node *n;
    raft_index_t index;
};

static bool sim_check_snap_entry(void *ctx, raft_index_t i, const struct raft_entry *e)
{
    struct check_snap_ctx *x = ctx;
    const struct sim_checker *c = &x->s->chk;
    if (i > c->n_committed || c->committed[i].fp != sim_check_entry_fp(e)) {
        sim_fail(x->s, "Snapshot Safety", "n%d's snapshot %llu holds at index %llu an entry "
                 "that is not the committed one", x->n->id, (ull)x->index, (ull)i);
        return false;
    }
    return true;
}

/* Raft §7: a snapshot holds only committed entries, and exactly them. */
void sim_check_snapshot(struct sim *s, const struct sim_node *n, const struct sim_snapshot *sn)
{
    struct check_snap_ctx x = { .s = s, .n = n, .index = sn->index };
    if (sn->index > s->chk.n_committed)
        sim_fail(s, "Snapshot Safety", "n%d has a snapshot up to %llu, beyond the committed "
                 "index %llu", n->id, (ull)sn->index, (ull)s->chk.n_committed);
    else if (!sim_snap_decode(sn->data, sn->len, sn->index, sn->term, sim_check_snap_entry, &x) &&
             !s->failed)
        sim_fail(s, "Snapshot Safety", "n%d's snapshot %llu is not a whole image", n->id,
                 (ull)sn->index);
    else
        sim_conf_check_snapshot(s, n, sn);
}

/* State Machine Safety for a state machine loaded from a snapshot. */
void sim_check_loaded_state(struct sim *s, const struct sim_node *n)
{
    const struct sim_checker *c = &s->chk;
    if (n->applied == 0 || n->applied > c->n_committed)
        return;
    if (kv_digest(n->kv) != c->committed[n->applied].digest)
        sim_fail(s, "State Machine Safety", "n%d's state loaded from snapshot %llu differs from "
                 "the state other nodes had at that index", n->id, (ull)n->applied);
}

/* Every committed entry stays on the disks of a majority (checked after crashes): see
 * sim_check_durable_need. */
void sim_check_durable_majority(struct sim *s)
{
    const struct sim_checker *c = &s->chk;
    uint32_t voters;
    int need = sim_check_durable_need(s, &voters);
    for (raft_index_t i = 1; i <= c->n_committed; i++) {
        int holders = sim_check_disk_holders(s, i, -1, voters);
        if (holders < need) {
            sim_fail(s, "Committed Entry Durability",
                     "index %llu (term %llu) was committed%s but is on the disks of only %d of "
                     "the %d voters (%d needed)", (ull)i, (ull)c->committed[i].term,
                     c->committed[i].acked ? " and acknowledged" : "", holders,
                     __builtin_popcount(voters), need);
            return;
        }
    }
}
