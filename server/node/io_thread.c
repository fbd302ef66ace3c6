/* server/node/io_thread.c - the log writer: takes the core's Ready batches, makes them
 * durable (hard state, truncation, entries, fdatasync) WITHOUT the lock, then hands the
 * messages that waited on that to the replicators and reports the batch done. Whatever
 * accumulates during one fsync goes into the next batch (group commit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../storage/storage.h"
#include "node.h"

#define IO_ERR_LEN 512

/* Any storage error is fatal: running on with a log in an unknown state could acknowledge
 * a write that is not durable (Raft paper Figure 2: persist before responding). */
static void persist_failed(struct node *n, const char *err)
{
    node_fatal(n, "cannot persist the log: %s; stopping so no unpersisted write is acknowledged",
               err);
}

/* Steps 1-3 of a Ready: hard state, truncation, entries, sync. Called without the lock. */
static void persist(struct node *n, const struct raft_ready *rd, const char *vote)
{
    char err[IO_ERR_LEN] = "";
    if (rd->hard_state_changed &&
        storage_save_hard_state(n->storage, rd->term, vote, err, sizeof(err)) != RK_OK)
        persist_failed(n, err);
    if (rd->truncate_from != 0 &&
        storage_truncate(n->storage, rd->truncate_from, err, sizeof(err)) != RK_OK)
        persist_failed(n, err);
    if (rd->n_entries > 0 &&
        storage_append(n->storage, rd->first_index, rd->entries, rd->n_entries, err,
                       sizeof(err)) != RK_OK)
        persist_failed(n, err);
    if ((rd->truncate_from != 0 || rd->n_entries > 0) &&
        storage_sync(n->storage, err, sizeof(err)) != RK_OK)
        persist_failed(n, err);
}

/* One batch: take under the lock, persist outside it, then under it hand over the
 * messages and report the batch durable. Entered and left with the lock held. */
static void run_batch(struct node *n)
{
    struct raft_ready rd;
    int rc = raft_ready_take(n->raft, &rd);
    if (rc != RK_OK)
        node_fatal(n, "cannot take the next batch: %s", rk_strerror(rc));
    char vote[REGISTRY_NAME_MAX + 1];
    snprintf(vote, sizeof(vote), "%s", node_name_of(n, rd.voted_for));
    pthread_mutex_unlock(&n->mu);

    persist(n, &rd, vote);

    pthread_mutex_lock(&n->mu);
    for (uint32_t i = 0; i < rd.n_msgs; i++)
        node_replicator_push(n, &rd.msgs[i]);
    raft_ready_done(n->raft, node_now_ms(), &rd);
    node_after_step(n);
    pthread_mutex_unlock(&n->mu);
    raft_ready_free(&rd);
    pthread_mutex_lock(&n->mu);
}

static void *io_main(void *arg)
{
    struct node *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->shutdown && !raft_has_ready(n->raft))
            pthread_cond_wait(&n->io_cond, &n->mu);
        if (n->shutdown)
            break;
        run_batch(n);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int node_io_start(struct node *n)
{
    if (pthread_create(&n->io_thread, NULL, io_main, n) != 0)
        return RK_ERR_NOMEM;
    n->io_started = true;
    return RK_OK;
}
