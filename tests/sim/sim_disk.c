/* tests/sim/sim_disk.c - one node's simulated disk: durable hard state, snapshot and log,
 * and a Ready persisted step by step (log reset, hard state, truncation, appends) so that a
 * crash before fdatasync keeps any prefix of the steps (a lost or torn write). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "sim_internal.h"

typedef unsigned long long ull;

void sim_disk_init(struct sim_disk *d)
{
    memset(d, 0, sizeof(*d));
    d->vote = RAFT_NO_NODE;
}

raft_index_t sim_disk_last(const struct sim_disk *d)
{
    return d->offset + d->n;
}

const struct raft_entry *sim_disk_entry(const struct sim_disk *d, raft_index_t index)
{
    if (index <= d->offset || index > sim_disk_last(d))
        return NULL;
    return &d->log[index - d->offset - 1];
}

static void sim_disk_truncate(struct sim_disk *d, raft_index_t from)
{
    while (d->n > 0 && sim_disk_last(d) >= from)
        raft_entry_free(&d->log[--d->n]);
}

void sim_disk_free(struct sim_disk *d)
{
    sim_disk_truncate(d, 1);
    free(d->log);
    sim_snap_free(&d->snap);
    sim_disk_init(d);
}

/* Drops every entry, restarting the log after index (a snapshot's last entry). */
static void sim_disk_reset(struct sim_disk *d, raft_index_t index)
{
    sim_disk_truncate(d, 1);
    d->offset = index;
}

/* Drops the entries up to index, which a durable snapshot covers. */
void sim_disk_compact(struct sim_disk *d, raft_index_t index)
{
    if (index <= d->offset)
        return;
    raft_index_t drop = index - d->offset;
    if (drop > d->n)
        drop = d->n;
    for (raft_index_t i = 0; i < drop; i++)
        raft_entry_free(&d->log[i]);
    memmove(d->log, d->log + drop, (size_t)(d->n - drop) * sizeof(*d->log));
    d->n -= drop;
    d->offset = index;
}

int sim_disk_append_copy(struct sim_disk *d, const struct raft_entry *e)
{
    if (d->n == d->cap) {
        raft_index_t cap = d->cap ? d->cap * 2 : 64;
        struct raft_entry *grown = realloc(d->log, cap * sizeof(*grown));
        if (grown == NULL)
            abort();
        d->log = grown;
        d->cap = cap;
    }
    if (raft_entry_copy(&d->log[d->n], e) != RK_OK)
        abort();
    d->n++;
    return RK_OK;
}

uint32_t sim_disk_ready_ops(const struct raft_ready *rd)
{
    return (rd->reset_log_to != 0 ? 1u : 0u) + (rd->hard_state_changed ? 1u : 0u) +
           (rd->truncate_from != 0 ? 1u : 0u) + rd->n_entries;
}

/* As server/node/io_thread.c persist(): the log reset after an installed snapshot first,
 * then the hard state file (replaced atomically), the log file's truncation, and the
 * appends; ops bounds how many of these steps happen. */
int sim_disk_write(struct sim_disk *d, const struct raft_ready *rd, uint32_t ops, char *err,
                   size_t errlen)
{
    if (ops > 0 && rd->reset_log_to != 0) {
        sim_disk_reset(d, rd->reset_log_to);
        ops--;
    }
    if (ops > 0 && rd->hard_state_changed) {
        d->term = rd->term;
        d->vote = rd->voted_for;
        ops--;
    }
    if (ops > 0 && rd->truncate_from != 0) {
        if (rd->truncate_from <= d->offset) {
            snprintf(err, errlen, "Ready truncates from index %llu, compacted on disk (up to %llu)",
                     (ull)rd->truncate_from, (ull)d->offset);
            return RK_ERR_INVAL;
        }
        sim_disk_truncate(d, rd->truncate_from);
        ops--;
    }
    if (ops > 0 && rd->n_entries > 0 && rd->first_index != sim_disk_last(d) + 1) {
        snprintf(err, errlen, "Ready appends at index %llu but the log on disk ends at %llu",
                 (ull)rd->first_index, (ull)sim_disk_last(d));
        return RK_ERR_INVAL;
    }
    for (uint32_t i = 0; i < rd->n_entries && ops > 0; i++, ops--)
        sim_disk_append_copy(d, &rd->entries[i]);
    return RK_OK;
}

/* Figure 13, steps 6-7, at boot: the log continues the snapshot only if it holds the
 * snapshot's last entry (or was compacted right behind it); else it is discarded. */
void sim_disk_fit_log_to_snapshot(struct sim_disk *d)
{
    const struct sim_snapshot *sn = &d->snap;
    if (sn->index == 0 || d->offset == sn->index)
        return;
    const struct raft_entry *e = sim_disk_entry(d, sn->index);
    if (d->offset < sn->index && e != NULL && e->term == sn->term)
        sim_disk_compact(d, sn->index);
    else
        sim_disk_reset(d, sn->index);
}

/* A deep copy of the log after the snapshot, for raft_new_from_snapshot (NULL if empty). */
struct raft_entry *sim_disk_load(const struct sim_disk *d)
{
    if (d->n == 0)
        return NULL;
    struct raft_entry *copy = calloc(d->n, sizeof(*copy));
    if (copy == NULL)
        abort();
    for (raft_index_t i = 0; i < d->n; i++)
        if (raft_entry_copy(&copy[i], &d->log[i]) != RK_OK)
            abort();
    return copy;
}
