/* tests/sim/sim_member.c - membership changes and leadership transfers (Raft thesis §4,
 * §3.10) in the simulation, asked of leaders as raft_client add/remove/transfer would:
 * new servers added in the lowest id free (a brand-new slot, or one whose server was
 * removed: stopped, its disk wiped), started with no configuration to join as learners
 * that the leader's catch-up promotes (or started late, or too late: the add fails);
 * servers removed (sometimes the leader itself, sometimes by force), then stopped for
 * good; leadership handed to a random voter (sometimes a lagging or dead one, or an
 * invalid target). The outcomes the cores report are recorded and checked: an OK means
 * the change is committed in the leader's configuration, a request is answered when its
 * leader steps down, a transfer ends within an election timeout, and no write is taken
 * while one is in progress (sim_client.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "sim_internal.h"

typedef unsigned long long ull;

#define MEMBER_RETIRE_MAX_MS 1500  /* a removed server is stopped within this */
#define MEMBER_LATE_BOOT_MAX_MS 2000

/* ---- outcomes ------------------------------------------------------------------------ */

static void sim_member_record(struct sim *s, uint64_t req, int rc)
{
    if (req >= s->cap_req) {
        size_t cap = s->cap_req ? s->cap_req * 2 : 64;
        while (cap <= req)
            cap *= 2;
        int8_t *grown = realloc(s->req_rc, cap);
        if (grown == NULL)
            abort();
        memset(grown + s->cap_req, 1, cap - s->cap_req);
        s->req_rc = grown;
        s->cap_req = cap;
    }
    s->req_rc[req] = (int8_t)rc;
}

int sim_outcome(const struct sim *s, uint64_t req)
{
    return req < s->cap_req ? s->req_rc[req] : 1;
}

void sim_member_free(struct sim *s)
{
    free(s->req_rc);
    s->req_rc = NULL;
    s->cap_req = 0;
}

uint32_t sim_voters(const struct sim *s, int node)
{
    return s->node[node].raft != NULL ? s->node[node].seen_conf.voters : 0;
}

uint32_t sim_members(const struct sim *s, int node)
{
    return s->node[node].raft != NULL ? s->node[node].seen_conf.members : 0;
}

/* An OK means the change is done in n's configuration, and that configuration is
 * committed (thesis §4.1: the server answers once the entry is committed). */
static void sim_member_check_ok(struct sim *s, const struct sim_node *n)
{
    raft_index_t index;
    struct sim_conf c = sim_conf_of(s, raft_membership(n->raft, &index));
    int t = n->conf_target;
    bool voter = (c.voters >> t) & 1u, member = (c.members >> t) & 1u;
    bool done = n->conf_kind == SIM_REQ_REMOVE ? !member
              : n->conf_kind == SIM_REQ_ADD ? voter : member && !voter;
    if (!done || index > raft_commit_index(n->raft))
        sim_fail(s, "Membership Outcome", "n%d reports c%llu (%s n%d) done, but its configuration "
                 "of index %llu (commit index %llu) %s", n->id, (ull)n->conf_req,
                 n->conf_kind == SIM_REQ_REMOVE ? "remove" : "add", t, (ull)index,
                 (ull)raft_commit_index(n->raft),
                 !done ? "does not show it" : "is not committed");
}

/* After a removal: the operator stops the server removed, a little later. */
static void sim_member_plan_retire(struct sim *s, int target)
{
    struct sim_node *t = &s->node[target];
    if (!s->members_on || t->raft == NULL)
        return;
    uint64_t at = s->now + sim_below(s, MEMBER_RETIRE_MAX_MS);
    sim_push(s, at, SIM_EV_RETIRE, target, t->incarnation);
}

static void sim_member_conf_done(struct sim *s, struct sim_node *n, int rc)
{
    sim_trace_text(s, n->id, "outcome c%llu (%s n%d): %s", (ull)n->conf_req,
                   n->conf_kind == SIM_REQ_REMOVE ? "remove" : "add", n->conf_target,
                   rc == RK_OK ? "OK" : rk_strerror(rc));
    if (rc == RK_OK) {
        sim_member_check_ok(s, n);
        if (n->conf_kind == SIM_REQ_REMOVE) {
            s->stats.removes_ok++;
            sim_member_plan_retire(s, n->conf_target);
        } else {
            s->stats.adds_ok++;
        }
    }
    n->conf_req = 0;
}

/* As the server's NODE_WAIT_RESULT waiters: take the outcomes n's core reports. A request
 * to change the membership is answered, at the latest, when its leader stops leading. */
void sim_member_take_results(struct sim *s, struct sim_node *n)
{
    struct raft_result res[8];
    uint32_t got;
    while ((got = raft_take_results(n->raft, res, 8)) > 0) {
        for (uint32_t i = 0; i < got; i++) {
            sim_member_record(s, res[i].id, res[i].rc);
            if (res[i].id == n->conf_req && n->conf_req != 0) {
                sim_member_conf_done(s, n, res[i].rc);
            } else if (res[i].id == n->xfer_req && n->xfer_req != 0) {
                sim_trace_text(s, n->id, "outcome c%llu (transfer): %s", (ull)n->xfer_req,
                               res[i].rc == RK_OK ? "OK" : rk_strerror(res[i].rc));
                s->stats.transfers_ok += res[i].rc == RK_OK;
                n->xfer_req = 0;
            }
        }
    }
    if (n->conf_req != 0 && raft_role(n->raft) != RAFT_LEADER)
        sim_fail(s, "Request Outcome", "n%d stopped leading (term %llu) without an outcome for "
                 "c%llu", n->id, (ull)raft_term(n->raft), (ull)n->conf_req);
}

/* n crashed: its requests die with it (their callers see the connection close). */
void sim_member_drop_node(struct sim *s, struct sim_node *n)
{
    (void)s;
    n->conf_req = 0;
    n->xfer_req = 0;
}

/* Thesis §3.10: a transfer ends within an election timeout, and writes are taken again.
 * (Checked after each tick: the core gives up at the first tick after its deadline.) */
static void sim_member_check_transfer_bound(struct sim *s, const struct sim_node *n)
{
    if (n->xfer_req != 0 && n->raft != NULL && s->now >= n->xfer_at + s->p.election_max_ms)
        sim_fail(s, "Transfer", "n%d has had no outcome for its transfer c%llu for %llu ms "
                 "(an election timeout is %u ms)", n->id, (ull)n->xfer_req,
                 (ull)(s->now - n->xfer_at), s->p.election_max_ms);
}

/* ---- the requests ---------------------------------------------------------------------- */

static uint64_t sim_member_next_req(struct sim *s)
{
    return ++s->next_req;
}

/* Slot k gets a new server: whatever ran there is stopped, its disk wiped; the checker
 * forgets the old one (a wiped server is another server, thesis §4.2.1 "new"). */
static void sim_member_wipe(struct sim *s, int k)
{
    struct sim_node *n = &s->node[k];
    if (n->raft != NULL)
        sim_node_crash(s, n, SIM_TEAR_LOSE);
    sim_disk_free(&n->disk);
    n->disk.joiner = true;
    n->present = true;
    n->retired = false;
    n->life++;
    n->restart_gen++;      /* a restart planned for the old one is off */
    n->mirror.n = n->mirror.base = 0;
    n->seen_role = RAFT_FOLLOWER;
    n->seen_term = 0;
    n->seen_last = n->seen_commit = n->applied = 0;
    free(s->chk.votes[k]); /* One Vote per Term is per server */
    s->chk.votes[k] = NULL;
    s->chk.votes_cap[k] = 0;
    if (k >= s->n_slots)
        s->n_slots = k + 1;
    sim_trace_text(s, k, "a new server, node%d, with an empty disk", k);
}

/* Starts the new server in slot k now, after ms, or (ms < 0) when told. */
static void sim_member_boot(struct sim *s, int k, int64_t ms)
{
    struct sim_node *n = &s->node[k];
    if (ms == 0)
        sim_node_boot(s, n);
    else if (ms > 0)
        sim_push(s, s->now + (uint64_t)ms, SIM_EV_RESTART, k, ++n->restart_gen);
}

static void sim_member_pending(struct sim_node *n, uint64_t req, uint8_t kind, int target)
{
    n->conf_req = req;
    n->conf_kind = kind;
    n->conf_target = (int8_t)target;
}

/* The latest configuration in the log on d (none: the snapshot's or the first one,
 * committed both, so the committed configuration says more). */
static bool sim_member_disk_conf(struct sim *s, const struct sim_disk *d, struct sim_conf *out)
{
    for (raft_index_t i = sim_disk_last(d); i > d->offset; i--) {
        const struct raft_entry *e = sim_disk_entry(d, i);
        if (e != NULL && e->type == RAFT_ENTRY_CONFIG)
            return sim_conf_of_entry(s, e, out);
    }
    return false;
}

/* Whether id k may still be a member: in the latest committed configuration, or in the
 * configuration that another server (up, or down with its log on disk) has in effect, which
 * may yet be committed. A server's own view of itself does not count: a learner whose add
 * failed and was undone is told of it by nobody. */
static bool sim_member_slot_taken(struct sim *s, int k)
{
    if ((sim_conf_latest_committed(&s->chk).members >> k) & 1u)
        return true;
    for (int i = 0; i < s->n_slots; i++) {
        const struct sim_node *n = &s->node[i];
        struct sim_conf c = { 0, 0 };
        if (i == k || !n->present || n->retired)
            continue;
        if (n->raft != NULL)
            c = sim_conf_of_node(s, n);
        else if (!sim_member_disk_conf(s, &n->disk, &c))
            continue;
        if ((c.members >> k) & 1u)
            return true;
    }
    return false;
}

int sim_add_server(struct sim *s, int node, bool learner_only, int64_t boot_after_ms,
                   int *slot, uint64_t *req)
{
    struct sim_node *n = &s->node[node];
    if (n->raft == NULL)
        return RK_ERR_NOTLEADER;
    int k = membership_free_id(raft_membership(n->raft, NULL));
    char name[16];
    if (k < 0 || k >= SIM_SLOTS || k == node)
        return RK_ERR_TOOBIG;
    /* The new server needs a slot of its own: a deposed leader's configuration may miss a
     * member of the cluster's (then the operator would start it elsewhere; here, not at all). */
    if (sim_member_slot_taken(s, k)) {
        sim_trace_text(s, node, "add skipped: id %d, free for n%d, is a member's", k, node);
        return RK_ERR_BUSY;
    }
    snprintf(name, sizeof(name), "node%d", k);
    uint64_t id = sim_member_next_req(s);
    uint16_t port = sim_node_port(k, s->node[k].life + 1); /* a new server, a new address */
    int rc = raft_add_server(n->raft, id, name, "127.0.0.1", port, learner_only);
    sim_trace_text(s, node, "request c%llu: add node%d%s (new server %s): %s", (ull)id, k,
                   learner_only ? " as learner" : "", boot_after_ms == 0 ? "up" : "not up yet",
                   rc == RK_OK ? "started" : rk_strerror(rc));
    if (slot != NULL)
        *slot = k;
    if (req != NULL)
        *req = id;
    if (rc != RK_OK)
        return rc;
    s->stats.adds++;
    sim_member_pending(n, id, learner_only ? SIM_REQ_ADD_LEARNER : SIM_REQ_ADD, k);
    sim_member_wipe(s, k);
    sim_member_boot(s, k, boot_after_ms);
    sim_node_after_step(s, n);
    return RK_OK;
}

/* Adds (again) a server that is a learner already: its catch-up and promotion. */
static int sim_member_readd(struct sim *s, int node, int k)
{
    struct sim_node *n = &s->node[node];
    char name[16];
    snprintf(name, sizeof(name), "node%d", k);
    uint64_t id = sim_member_next_req(s);
    int rc = raft_add_server(n->raft, id, name, "127.0.0.1", sim_node_port(k, s->node[k].life),
                             false);
    sim_trace_text(s, node, "request c%llu: add learner node%d as a voter: %s", (ull)id, k,
                   rc == RK_OK ? "started" : rk_strerror(rc));
    if (rc != RK_OK)
        return rc;
    s->stats.adds++;
    sim_member_pending(n, id, SIM_REQ_ADD, k);
    sim_node_after_step(s, n);
    return RK_OK;
}

int sim_remove_server(struct sim *s, int node, int target, bool force, uint64_t *req)
{
    struct sim_node *n = &s->node[node];
    if (n->raft == NULL)
        return RK_ERR_NOTLEADER;
    char name[16];
    snprintf(name, sizeof(name), "node%d", target);
    uint64_t id = sim_member_next_req(s);
    if (req != NULL)
        *req = id;
    int rc = raft_remove_server(n->raft, id, name, force);
    sim_trace_text(s, node, "request c%llu: remove node%d%s: %s", (ull)id, target,
                   force ? " (force)" : "", rc == RK_OK ? "started" : rk_strerror(rc));
    if (rc != RK_OK)
        return rc;
    s->stats.removes++;
    sim_member_pending(n, id, SIM_REQ_REMOVE, target);
    sim_node_after_step(s, n);
    return RK_OK;
}

int sim_transfer(struct sim *s, int node, int target, uint64_t *req)
{
    struct sim_node *n = &s->node[node];
    if (n->raft == NULL)
        return RK_ERR_NOTLEADER;
    char name[16];
    snprintf(name, sizeof(name), "node%d", target);
    uint64_t id = sim_member_next_req(s);
    if (req != NULL)
        *req = id;
    int rc = raft_transfer_leadership(n->raft, id, target < 0 ? NULL : name);
    sim_trace_text(s, node, "request c%llu: transfer to %s: %s", (ull)id,
                   target < 0 ? "the most up-to-date voter" : name,
                   rc == RK_OK ? "started" : rk_strerror(rc));
    if (rc != RK_OK)
        return rc;
    s->stats.transfers++;
    n->xfer_req = id;
    n->xfer_at = s->now;
    sim_node_after_step(s, n);
    return RK_OK;
}

/* ---- the random schedule ---------------------------------------------------------------- */

/* A random id of mask (other than except), or -1. */
static int sim_member_pick(struct sim *s, uint32_t mask, int except)
{
    int picked = -1, seen = 0;
    for (int i = 0; i < SIM_SLOTS; i++)
        if (((mask >> i) & 1u) && i != except && sim_below(s, (uint64_t)++seen) == 0)
            picked = i;
    return picked;
}

/* An add: a new server (up now, later, or too late to answer), now and then a learner
 * only; or the promotion of a learner already there. At most SIM_MAX_NODES voters. */
static void sim_member_random_add(struct sim *s, int node)
{
    struct sim_conf c = s->node[node].seen_conf;
    int learner = sim_member_pick(s, c.members & ~c.voters, -1);
    if (learner >= 0 && sim_chance(s, 300)) {
        sim_member_readd(s, node, learner);
        return;
    }
    if (__builtin_popcount(c.voters) >= SIM_MAX_NODES)
        return;
    uint64_t roll = sim_below(s, 100);
    int64_t boot = roll < 75 ? 0
                 : roll < 90 ? (int64_t)sim_between(s, 1, MEMBER_LATE_BOOT_MAX_MS)
                 : (int64_t)(s->p.unreachable_ms + sim_between(s, 100, 2000));
    sim_add_server(s, node, sim_chance(s, 100), boot, NULL, NULL);
}

/* A removal: the leader itself now and then, else any member; sometimes forced. Without
 * pre-vote (the server always runs it) at least three voters stay: with two whose logs
 * differ, each election of the one behind raises the term and puts off the other's,
 * and one in twenty rounds may elect a leader (longer than the liveness check waits). */
static void sim_member_random_remove(struct sim *s, int node)
{
    struct sim_conf c = s->node[node].seen_conf;
    int target = sim_chance(s, 250) ? node : sim_member_pick(s, c.members, -1);
    if (target < 0 || (!s->p.pre_vote && ((c.voters >> target) & 1u) &&
                       __builtin_popcount(c.voters) <= 3))
        return;
    sim_remove_server(s, node, target, sim_chance(s, 200), NULL);
}

/* A transfer: to any voter, a named one (maybe lagging or down), or an invalid target. */
static void sim_member_random_transfer(struct sim *s, int node)
{
    struct sim_conf c = s->node[node].seen_conf;
    uint64_t roll = sim_below(s, 100);
    int target = roll < 20 ? -1
               : roll < 28 ? sim_member_pick(s, c.members & ~c.voters, -1)
               : roll < 32 ? node : sim_member_pick(s, c.voters, node);
    if (roll >= 20 && target < 0)
        target = node;
    sim_transfer(s, node, target, NULL);
}

/* One random request, to node (a leader just elected: the 2015 rule keeps it from
 * changing the membership before its no-op commits), else to the leader or, now and
 * then, to a deposed leader that does not know it yet. */
void sim_member_random(struct sim *s, int node)
{
    if (node < 0 && sim_chance(s, 100))
        node = sim_pick_up_node(s, true);
    if (node < 0)
        node = sim_current_leader(s);
    if (node < 0 || s->node[node].raft == NULL || raft_role(s->node[node].raft) != RAFT_LEADER)
        return;
    uint64_t roll = sim_below(s, 100);
    if (roll < 40)
        sim_member_random_add(s, node);
    else if (roll < 70)
        sim_member_random_remove(s, node);
    else
        sim_member_random_transfer(s, node);
    struct sim_node *n = &s->node[node];
    if (n->raft != NULL && sim_chance(s, 100)) /* it may fail before the change spreads */
        sim_push(s, s->now + sim_between(s, 1, 3ull * s->p.heartbeat_ms), SIM_EV_KILL, node,
                 n->incarnation);
}

/* Now and then a request reaches a leader right after it won. */
void sim_member_new_leader(struct sim *s, struct sim_node *n)
{
    if (!s->members_on || !sim_chance(s, 150))
        return;
    sim_push(s, s->now + sim_below(s, 2ull * s->p.heartbeat_ms), SIM_EV_MEMBER, n->id, 0);
}

/* A removed server is stopped for good. */
void sim_member_retire(struct sim *s, int node)
{
    struct sim_node *n = &s->node[node];
    sim_trace_text(s, node, "stopped for good (removed)");
    if (n->raft != NULL)
        sim_node_crash(s, n, SIM_TEAR_RANDOM);
    n->retired = true;
    n->restart_gen++;
}

/* The end of a random run: no more requests, and the servers that are no member of the
 * latest committed configuration are stopped (their operator removed them). */
void sim_member_heal(struct sim *s)
{
    struct sim_conf c = sim_conf_latest_committed(&s->chk);
    s->members_on = false;
    for (int i = 0; i < s->n_slots; i++) {
        struct sim_node *n = &s->node[i];
        if (n->present && !n->retired && !((c.members >> i) & 1u)) {
            if (n->raft != NULL)
                sim_node_crash(s, n, SIM_TEAR_RANDOM);
            n->retired = true;
            n->restart_gen++;
            sim_trace_text(s, i, "stopped: no member of the committed configuration");
        }
    }
}

/* Whether node must apply what the cluster commits (liveness): a running member of the
 * latest committed configuration. */
bool sim_member_counts(const struct sim *s, int node)
{
    const struct sim_node *n = &s->node[node];
    struct sim_conf c = sim_conf_latest_committed(&s->chk);
    return n->present && !n->retired && ((c.members >> node) & 1u);
}

/* After each tick of n. */
void sim_member_after_tick(struct sim *s, const struct sim_node *n)
{
    sim_member_check_transfer_bound(s, n);
}
