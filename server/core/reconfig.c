/* server/core/reconfig.c - membership changes, one server at a time (Raft thesis §4.1):
 * adding a server as a learner that catches up before it votes (§4.2.1), removing a
 * server (a leader that removes itself steps down once that is committed, §4.2.2), and
 * the guards: one change at a time, none before the leader has committed an entry of its
 * own term (the single-server change bug Ongaro described on raft-dev in 2015), never the
 * last voter, and no removal that leaves the voters the leader hears from a minority. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/grow.h"
#include "raft_internal.h"

#define CATCHUP_MAX_MS_DEFAULT 60000u
#define UNREACHABLE_TIMEOUTS 10u /* election timeouts with no answer: not reachable */

/* ---- outcomes ---------------------------------------------------------------------- */

void core_result(struct raft *r, uint64_t id, int rc)
{
    if (rk_grow(&r->results, &r->cap_results, (size_t)r->n_results + 1, sizeof(*r->results),
                4) != RK_OK)
        return; /* the caller's request times out instead */
    r->results[r->n_results++] = (struct raft_result){ .id = id, .rc = rc };
}

uint32_t raft_take_results(struct raft *r, struct raft_result *out, uint32_t max)
{
    uint32_t n = r->n_results < max ? r->n_results : max;
    if (n == 0)
        return 0;
    memcpy(out, r->results, n * sizeof(*out));
    memmove(r->results, r->results + n, (r->n_results - n) * sizeof(*out));
    r->n_results -= n;
    return n;
}

/* The request in progress is over with rc (a caller waiting hears it). */
static void finish(struct raft *r, int rc)
{
    if (r->reconfig.has_req)
        core_result(r, r->reconfig.req, rc);
    memset(&r->reconfig, 0, sizeof(r->reconfig));
}

/* ---- proposing a configuration ------------------------------------------------------ */

bool core_reconfig_allowed(const struct raft *r)
{
    return r->role == RAFT_LEADER && !r->transfer.active && r->conf_index <= r->commit &&
           core_log_term_at(&r->log, r->commit) == r->term;
}

/* Appends a configuration entry holding ms; it takes effect at once (§4.1). */
static int propose_conf(struct raft *r, const struct membership *ms)
{
    char *text = malloc(MEMBERSHIP_TEXT_MAX);
    int len = text != NULL ? membership_encode(ms, text, MEMBERSHIP_TEXT_MAX) : -1;
    struct raft_entry e;
    int rc = len < 0 ? RK_ERR_NOMEM
                     : raft_entry_init(&e, r->term, RAFT_ENTRY_CONFIG, "", 0, text,
                                       (uint32_t)len);
    free(text);
    if (rc == RK_OK && (rc = core_log_append_owned(&r->log, &e)) != RK_OK)
        raft_entry_free(&e);
    if (rc != RK_OK)
        return rc;
    r->reconfig.index = r->log.last;
    core_conf_appended(r, r->log.last, core_log_get(&r->log, r->log.last));
    core_repl_broadcast(r);
    core_repl_maybe_commit(r);
    return RK_OK;
}

/* The configuration in effect with member id's role changed, or id removed (role < 0). */
static int propose_role(struct raft *r, int id, int role)
{
    struct membership *ms = malloc(sizeof(*ms));
    if (ms == NULL)
        return RK_ERR_NOMEM;
    *ms = r->conf;
    if (role < 0) {
        membership_remove(ms, id);
    } else {
        for (int i = 0; i < ms->n; i++)
            if (ms->m[i].id == id)
                ms->m[i].role = (enum member_role)role;
    }
    int rc = propose_conf(r, ms);
    free(ms);
    return rc;
}

/* ---- adding a server (§4.2.1) ------------------------------------------------------ */

static bool address_ok(const char *name, const char *host, uint16_t port)
{
    size_t host_len = host != NULL ? strlen(host) : 0;
    if (name == NULL || !registry_name_valid(name) || host_len == 0 ||
        host_len > REGISTRY_HOST_MAX || port == 0)
        return false;
    for (size_t i = 0; i < host_len; i++)
        if (host[i] == ' ' || host[i] == '\t' || host[i] == '\n')
            return false;
    return true;
}

/* A new round of catch-up replication: it ends when the learner holds our last index. */
static void start_round(struct raft *r)
{
    r->reconfig.round_start_ms = r->now;
    r->reconfig.round_target = r->log.last;
}

static void begin(struct raft *r, uint64_t req, int id, enum raft_reconfig_phase phase)
{
    r->reconfig = (struct raft_reconfig){ .phase = phase, .has_req = true, .req = req,
                                          .id = id, .started_ms = r->now };
    start_round(r);
}

static int add_learner(struct raft *r, uint64_t req, const char *name, const char *host,
                       uint16_t port)
{
    struct member m = { .id = membership_free_id(&r->conf), .role = MEMBER_LEARNER,
                        .port = port };
    if (m.id < 0)
        return RK_ERR_TOOBIG;
    snprintf(m.name, sizeof(m.name), "%s", name);
    snprintf(m.host, sizeof(m.host), "%s", host);
    struct membership *ms = malloc(sizeof(*ms));
    if (ms == NULL)
        return RK_ERR_NOMEM;
    *ms = r->conf;
    int rc = membership_add(ms, &m);
    if (rc == RK_OK)
        rc = propose_conf(r, ms);
    free(ms);
    if (rc == RK_OK) {
        raft_index_t index = r->reconfig.index;
        begin(r, req, m.id, RECONFIG_ADDING);
        r->reconfig.index = index;
        core_notice(r, "adding %s (%s:%u) as learner %d", name, host, (unsigned)port, m.id);
    }
    return rc;
}

int raft_add_server(struct raft *r, uint64_t id, const char *name, const char *host,
                    uint16_t port, bool learner_only)
{
    if (r->role != RAFT_LEADER)
        return RK_ERR_NOTLEADER;
    if (!address_ok(name, host, port))
        return RK_ERR_INVAL;
    if (r->reconfig.phase != RECONFIG_NONE || !core_reconfig_allowed(r))
        return RK_ERR_BUSY;
    const struct member *m = membership_by_name(&r->conf, name);
    if (m != NULL && (m->role == MEMBER_VOTER || learner_only))
        return RK_ERR_EXISTS;
    if (m != NULL) { /* a learner already: on to its catch-up */
        begin(r, id, m->id, RECONFIG_CATCHING_UP);
        return RK_OK;
    }
    int rc = add_learner(r, id, name, host, port);
    if (rc == RK_OK)
        r->reconfig.learner_only = learner_only;
    return rc;
}

/* Promotes the learner once it caught up and its own entry is committed. */
static void maybe_promote(struct raft *r)
{
    struct raft_reconfig *rc = &r->reconfig;
    if (rc->phase != RECONFIG_CATCHING_UP || !rc->caught_up || !core_reconfig_allowed(r))
        return;
    if (propose_role(r, rc->id, MEMBER_VOTER) != RK_OK)
        return; /* out of memory: tried again at the next tick */
    rc->phase = RECONFIG_PROMOTING;
    core_notice(r, "%s caught up: making it a voter", core_node_name(r, rc->id));
}

/* Removes the learner of a failed add once no other change is in flight. */
static void maybe_undo(struct raft *r)
{
    struct raft_reconfig *rc = &r->reconfig;
    if (rc->phase != RECONFIG_UNDOING || rc->index != 0 || !core_reconfig_allowed(r))
        return;
    if (!r->is_member[rc->id] || propose_role(r, rc->id, -1) != RK_OK)
        memset(rc, 0, sizeof(*rc)); /* nothing to remove (or no memory: leave it) */
}

static void fail_add(struct raft *r, int why)
{
    core_notice(r, "adding %s failed: %s; removing it", core_node_name(r, r->reconfig.id),
                rk_strerror(why));
    if (r->reconfig.has_req)
        core_result(r, r->reconfig.req, why);
    r->reconfig.has_req = false;
    r->reconfig.phase = RECONFIG_UNDOING;
    r->reconfig.index = 0;
    maybe_undo(r);
}

/* §4.2.1: replication to the learner goes in rounds; a round that takes less than an
 * election timeout means it is close enough to vote without slowing commits. */
void core_reconfig_progress(struct raft *r, int peer)
{
    struct raft_reconfig *rc = &r->reconfig;
    if ((rc->phase != RECONFIG_ADDING && rc->phase != RECONFIG_CATCHING_UP) || peer != rc->id)
        return;
    rc->heard = true;
    if (r->progress[peer].match < rc->round_target)
        return;
    if (r->now - rc->round_start_ms < r->cfg.election_timeout_min_ms)
        rc->caught_up = true;
    start_round(r);
    maybe_promote(r);
}

void core_reconfig_tick(struct raft *r)
{
    struct raft_reconfig *rc = &r->reconfig;
    uint64_t waited = r->now - rc->started_ms;
    uint32_t unreachable = r->cfg.unreachable_ms
                               ? r->cfg.unreachable_ms
                               : UNREACHABLE_TIMEOUTS * r->cfg.election_timeout_max_ms;
    uint32_t catchup = r->cfg.catchup_max_ms ? r->cfg.catchup_max_ms : CATCHUP_MAX_MS_DEFAULT;
    if (rc->phase == RECONFIG_ADDING || rc->phase == RECONFIG_CATCHING_UP) {
        if (!rc->heard && waited >= unreachable)
            fail_add(r, RK_ERR_UNREACHABLE);
        else if (!rc->caught_up && waited >= catchup)
            fail_add(r, RK_ERR_BEHIND);
    }
    maybe_promote(r);
    maybe_undo(r);
}

/* ---- removing a server (§4.2.2, §4.2.3) --------------------------------------------- */

/* Whether the voters left without id, counting those we heard from within an election
 * timeout, would still be a majority of the voters left. */
static bool reachable_majority_without(const struct raft *r, int id)
{
    int left = 0, reachable = 0;
    for (int i = 0; i < RAFT_MAX_NODES; i++) {
        if (!r->is_voter[i] || i == id)
            continue;
        left++;
        if (i == r->self || r->now - r->heard_ms[i] < r->cfg.election_timeout_max_ms)
            reachable++;
    }
    return reachable >= left / 2 + 1;
}

int raft_remove_server(struct raft *r, uint64_t id, const char *name, bool force)
{
    if (r->role != RAFT_LEADER)
        return RK_ERR_NOTLEADER;
    const struct member *m = name != NULL ? membership_by_name(&r->conf, name) : NULL;
    if (m == NULL)
        return RK_ERR_NOTFOUND;
    if (m->role == MEMBER_VOTER && r->n_voters == 1)
        return RK_ERR_INVAL;
    if (r->reconfig.phase != RECONFIG_NONE || !core_reconfig_allowed(r))
        return RK_ERR_BUSY;
    if (!force && m->role == MEMBER_VOTER && !reachable_majority_without(r, m->id))
        return RK_ERR_NOQUORUM;
    int target = m->id;
    core_notice(r, "removing %s", m->name);
    int rc = propose_role(r, target, -1);
    if (rc == RK_OK) {
        raft_index_t index = r->reconfig.index;
        begin(r, id, target, RECONFIG_REMOVING);
        r->reconfig.index = index;
    }
    return rc;
}

/* ---- commit and leadership ----------------------------------------------------------- */

void core_reconfig_committed(struct raft *r)
{
    struct raft_reconfig *rc = &r->reconfig;
    bool done = rc->index != 0 && r->commit >= rc->index;
    if (done && rc->phase == RECONFIG_ADDING) {
        if (rc->learner_only)
            finish(r, RK_OK);
        else
            rc->phase = RECONFIG_CATCHING_UP;
    } else if (done && (rc->phase == RECONFIG_PROMOTING || rc->phase == RECONFIG_REMOVING)) {
        finish(r, RK_OK);
    } else if (done && rc->phase == RECONFIG_UNDOING) {
        memset(rc, 0, sizeof(*rc));
    }
    maybe_promote(r);
    maybe_undo(r);
    /* §4.2.2: a leader that is no longer a voter leads until the configuration without
     * it is committed, then steps down. */
    if (r->role == RAFT_LEADER && !core_self_votes(r) && r->conf_index <= r->commit) {
        core_notice(r, "stepping down: the committed configuration has this server as "
                    "no voter");
        core_become_follower(r, r->term, RAFT_NO_NODE);
    }
}

void core_reconfig_lost(struct raft *r)
{
    if (r->reconfig.phase != RECONFIG_NONE)
        finish(r, RK_ERR_LOST);
}
