/* server/core/membership.c - the configuration in effect (Raft thesis §4.1): the latest
 * configuration entry in the log, whether or not it is committed, else the one the log
 * starts from (the snapshot's, or the bootstrap's). A truncated configuration entry takes
 * its configuration with it; compaction folds the entries it drops into the base. From
 * the configuration come who votes, who counts toward a majority, and our own id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/grow.h"
#include "raft_internal.h"

/* ---- derived state ---------------------------------------------------------------- */

/* The leader's view of a peer that just became a member: unknown, to be probed from our
 * log's end (§5.3). */
static void progress_start(struct raft *r, int id)
{
    struct raft_progress *pr = &r->progress[id];
    memset(pr, 0, sizeof(*pr));
    pr->next = r->log.last + 1;
    pr->state = RAFT_PROBE;
    r->heard_ms[id] = 0;
}

/* Recomputes who is a member and who votes, and our id, from r->conf. */
static void refresh(struct raft *r)
{
    bool was_member[RAFT_MAX_NODES];
    memcpy(was_member, r->is_member, sizeof(was_member));
    memset(r->is_member, 0, sizeof(r->is_member));
    memset(r->is_voter, 0, sizeof(r->is_voter));
    r->n_voters = 0;
    r->self = RAFT_NO_NODE;
    for (int i = 0; i < r->conf.n; i++) {
        const struct member *m = &r->conf.m[i];
        r->is_member[m->id] = true;
        r->is_voter[m->id] = m->role == MEMBER_VOTER;
        r->n_voters += m->role == MEMBER_VOTER;
        if (strcmp(m->name, r->self_name) == 0)
            r->self = m->id;
    }
    for (int id = 0; id < RAFT_MAX_NODES; id++)
        if (r->is_member[id] && !was_member[id] && id != r->self)
            progress_start(r, id);
}

/* Makes ms (from the entry at index; 0: the base) the configuration in effect. */
static void take_effect(struct raft *r, const struct membership *ms, raft_index_t index)
{
    bool changed = !membership_equal(&r->conf, ms);
    r->conf = *ms;
    r->conf_index = index;
    if (!changed)
        return;
    r->conf_gen++;
    refresh(r);
    core_notice(r, "configuration of index %llu in effect: %d members, %d voters%s",
                (unsigned long long)index, r->conf.n, r->n_voters,
                r->self == RAFT_NO_NODE ? "; this server is not one of them"
                : r->is_voter[r->self] ? "" : "; this server is a learner");
}

/* The latest configuration entry at or below index, or NULL. */
static const struct raft_conf_entry *entry_at(const struct raft *r, raft_index_t index)
{
    for (uint32_t i = r->n_confs; i > 0; i--)
        if (r->confs[i - 1].index <= index)
            return &r->confs[i - 1];
    return NULL;
}

/* ---- the history ------------------------------------------------------------------ */

void core_conf_init(struct raft *r, const struct membership *base)
{
    r->base_conf = *base;
    r->conf = *base;
    r->conf_index = 0;
    r->conf_gen = 1;
    memset(r->is_member, 0, sizeof(r->is_member));
    refresh(r);
}

int core_conf_appended(struct raft *r, raft_index_t index, const struct raft_entry *e)
{
    if (e->type != RAFT_ENTRY_CONFIG)
        return RK_OK;
    struct membership *ms = malloc(sizeof(*ms));
    char err[128];
    int rc = ms == NULL ? RK_ERR_NOMEM : membership_decode(e->val, e->val_len, ms, err, sizeof(err));
    if (rc == RK_OK)
        rc = rk_grow(&r->confs, &r->cap_confs, (size_t)r->n_confs + 1, sizeof(*r->confs), 4);
    if (rc != RK_OK) {
        core_notice(r, "BUG: configuration entry %llu unusable (%s)", (unsigned long long)index,
                    rc == RK_ERR_CORRUPT ? err : rk_strerror(rc));
        free(ms);
        return rc;
    }
    r->confs[r->n_confs++] = (struct raft_conf_entry){ .index = index, .ms = ms };
    take_effect(r, ms, index);
    return RK_OK;
}

void core_conf_truncated(struct raft *r, raft_index_t from)
{
    bool dropped = false;
    while (r->n_confs > 0 && r->confs[r->n_confs - 1].index >= from) {
        free(r->confs[--r->n_confs].ms);
        dropped = true;
    }
    if (!dropped)
        return;
    const struct raft_conf_entry *c = entry_at(r, from);
    take_effect(r, c != NULL ? c->ms : &r->base_conf, c != NULL ? c->index : 0);
}

void core_conf_compacted(struct raft *r, raft_index_t upto)
{
    uint32_t folded = 0;
    while (folded < r->n_confs && r->confs[folded].index <= upto) {
        r->base_conf = *r->confs[folded].ms;
        free(r->confs[folded].ms);
        folded++;
    }
    if (folded == 0)
        return;
    memmove(r->confs, r->confs + folded, (r->n_confs - folded) * sizeof(*r->confs));
    r->n_confs -= folded;
    if (r->n_confs == 0)
        r->conf_index = 0; /* in effect still, now as the base */
}

void core_conf_installed(struct raft *r, raft_index_t index, const struct membership *ms)
{
    core_conf_compacted(r, index);
    if (ms != NULL)
        r->base_conf = *ms;
    if (r->n_confs == 0)
        take_effect(r, &r->base_conf, 0);
}

void core_conf_free(struct raft *r)
{
    for (uint32_t i = 0; i < r->n_confs; i++)
        free(r->confs[i].ms);
    free(r->confs);
    r->confs = NULL;
    r->n_confs = 0;
}

/* ---- questions --------------------------------------------------------------------- */

int core_majority(const struct raft *r)
{
    return r->n_voters / 2 + 1;
}

bool core_self_votes(const struct raft *r)
{
    return r->self != RAFT_NO_NODE && r->is_voter[r->self];
}

const struct membership *raft_membership(const struct raft *r, raft_index_t *index)
{
    if (index != NULL)
        *index = r->conf_index;
    return &r->conf;
}

uint64_t raft_membership_gen(const struct raft *r)
{
    return r->conf_gen;
}

bool raft_is_learner(const struct raft *r)
{
    return r->self != RAFT_NO_NODE && r->is_member[r->self] && !r->is_voter[r->self];
}

const struct membership *raft_membership_at(const struct raft *r, raft_index_t index)
{
    const struct raft_conf_entry *c = entry_at(r, index);
    return c != NULL ? c->ms : &r->base_conf;
}
