/* server/core/transfer.c - leadership transfer (Raft thesis §3.10): the leader stops
 * taking writes, brings the target's log up to date, and sends it TimeoutNow; the target
 * starts an election at once, which the voters grant even while they hear from the old
 * leader. If the target has not won within an election timeout, the leader takes writes
 * again. Also raft_set_campaign: a server whose disk stalls neither campaigns nor takes
 * over. */
#include <string.h>

#include "../../common/errors.h"
#include "raft_internal.h"

/* The other voter whose log matches ours furthest, or RAFT_NO_NODE. */
static int most_up_to_date(const struct raft *r)
{
    int best = RAFT_NO_NODE;
    for (int i = 0; i < RAFT_MAX_NODES; i++) {
        if (i == r->self || !r->is_voter[i])
            continue;
        if (best == RAFT_NO_NODE || r->progress[i].match > r->progress[best].match)
            best = i;
    }
    return best;
}

static int pick_target(const struct raft *r, const char *name, int *target)
{
    if (name == NULL) {
        *target = most_up_to_date(r);
        return *target == RAFT_NO_NODE ? RK_ERR_INVAL : RK_OK;
    }
    const struct member *m = membership_by_name(&r->conf, name);
    if (m == NULL)
        return RK_ERR_NOTFOUND;
    if (m->role != MEMBER_VOTER || m->id == r->self)
        return RK_ERR_INVAL;
    *target = m->id;
    return RK_OK;
}

int raft_transfer_leadership(struct raft *r, uint64_t id, const char *name)
{
    if (r->role != RAFT_LEADER)
        return RK_ERR_NOTLEADER;
    if (r->transfer.active || r->reconfig.phase != RECONFIG_NONE)
        return RK_ERR_BUSY;
    int target;
    int rc = pick_target(r, name, &target);
    if (rc != RK_OK)
        return rc;
    r->transfer = (struct raft_transfer){ .active = true, .req = id, .target = target,
                                          .deadline = r->now + r->cfg.election_timeout_max_ms };
    core_notice(r, "handing leadership to %s", core_node_name(r, target));
    core_repl_broadcast(r);
    core_transfer_check(r);
    return RK_OK;
}

static void transfer_done(struct raft *r, int rc)
{
    core_result(r, r->transfer.req, rc);
    memset(&r->transfer, 0, sizeof(r->transfer));
}

/* Once the target holds our whole log (we take no writes meanwhile), TimeoutNow. */
void core_transfer_check(struct raft *r)
{
    struct raft_transfer *t = &r->transfer;
    if (!t->active || t->sent || r->role != RAFT_LEADER ||
        r->progress[t->target].match < r->log.last)
        return;
    struct raft_msg m = { .type = RAFT_MSG_TIMEOUT_NOW, .to = t->target, .term = r->term };
    core_send(r, &m);
    t->sent = true;
}

void core_transfer_tick(struct raft *r)
{
    if (!r->transfer.active || r->now < r->transfer.deadline)
        return;
    core_notice(r, "%s did not take over within %u ms; %s", core_node_name(r, r->transfer.target),
                r->cfg.election_timeout_max_ms,
                r->role == RAFT_LEADER ? "taking writes again" : "giving up");
    transfer_done(r, RK_ERR_TIMEOUT);
}

/* We follow a leader now: the transfer worked if it is the target. */
void core_transfer_leader_known(struct raft *r)
{
    if (!r->transfer.active || r->role == RAFT_LEADER || r->leader == RAFT_NO_NODE)
        return;
    transfer_done(r, r->leader == r->transfer.target ? RK_OK : RK_ERR_LOST);
}

/* The target: our leader asks us to take over. We do only as a voter that may campaign. */
void core_transfer_recv_timeout_now(struct raft *r, const struct raft_msg *m)
{
    if (m->term != r->term || r->role != RAFT_FOLLOWER || r->leader != m->from ||
        !core_self_votes(r) || r->no_campaign)
        return;
    core_notice(r, "%s hands leadership to us: starting an election now",
                core_node_name(r, m->from));
    core_election_start(r, true);
}

void raft_set_campaign(struct raft *r, bool allowed)
{
    r->no_campaign = !allowed;
}
