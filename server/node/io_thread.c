/* server/node/io_thread.c - the log writer: takes the core's Ready batches, makes them
 * durable (hard state, truncation, entries, fdatasync) WITHOUT the lock, then hands the
 * messages to the replicators and reports the batch done. Whatever accumulates during one
 * fsync goes into the next batch (group commit). */
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

/* Encodes the messages into one buffer per destination (bufs has reg.n slots). */
static void encode_msgs(struct node *n, const struct raft_ready *rd, struct proto_buf *bufs)
{
    for (uint32_t i = 0; i < rd->n_msgs; i++) {
        const struct raft_msg *m = &rd->msgs[i];
        if (m->to < 0 || m->to >= n->reg.n || m->to == n->self)
            continue;
        int rc = proto_encode_raft_msg(&bufs[m->to], m);
        if (rc != RK_OK)
            node_log(n, "dropping a %s message to %s: %s", raft_msg_type_name(m->type),
                     node_name_of(n, m->to), rk_strerror(rc));
    }
}

/* Under the lock: queue each non-empty buffer on its replicator (which takes it). */
static void push_frames(struct node *n, struct proto_buf *bufs)
{
    for (int i = 0; i < n->reg.n; i++) {
        if (bufs[i].len == 0) {
            proto_buf_free(&bufs[i]);
            continue;
        }
        node_replicator_push(&n->peers[i], bufs[i].data, bufs[i].len);
        memset(&bufs[i], 0, sizeof(bufs[i]));
    }
}

/* One batch: take under the lock, persist and encode outside it, report under it.
 * Entered and left with the lock held. */
static void run_batch(struct node *n, struct proto_buf *bufs)
{
    struct raft_ready rd;
    int rc = raft_ready_take(n->raft, &rd);
    if (rc != RK_OK)
        node_fatal(n, "cannot take the next batch: %s", rk_strerror(rc));
    char vote[REGISTRY_NAME_MAX + 1];
    snprintf(vote, sizeof(vote), "%s", node_name_of(n, rd.voted_for));
    pthread_mutex_unlock(&n->mu);

    persist(n, &rd, vote);
    encode_msgs(n, &rd, bufs);

    pthread_mutex_lock(&n->mu);
    push_frames(n, bufs);
    raft_ready_done(n->raft, node_now_ms(), &rd);
    node_after_step(n);
    pthread_mutex_unlock(&n->mu);
    raft_ready_free(&rd);
    pthread_mutex_lock(&n->mu);
}

static void *io_main(void *arg)
{
    struct node *n = arg;
    struct proto_buf *bufs = calloc((size_t)n->reg.n, sizeof(*bufs));
    if (bufs == NULL)
        node_fatal(n, "io thread: out of memory");
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->shutdown && !raft_has_ready(n->raft))
            pthread_cond_wait(&n->io_cond, &n->mu);
        if (n->shutdown)
            break;
        run_batch(n, bufs);
    }
    pthread_mutex_unlock(&n->mu);
    free(bufs);
    return NULL;
}

int node_io_start(struct node *n)
{
    if (pthread_create(&n->io_thread, NULL, io_main, n) != 0)
        return RK_ERR_NOMEM;
    n->io_started = true;
    return RK_OK;
}
