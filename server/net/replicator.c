/* server/net/replicator.c - the replicator threads (see replicator.h). Each runs
 * replicator_main: under the node lock it waits for its peer's queue or backlog, takes the
 * send token and the whole queue, and without the lock encodes it (node_peer_encode) and
 * writes it in one go, after what an earlier non-blocking write left (peer_link_send).
 * Lost messages are fine: Raft retries (Raft paper §5.3). */
#include "replicator.h"

#include <stdlib.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../node/node.h"
#include "peer_link.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_SPREAD_MS 50

struct replicator {
    struct node *node;
    int peer;
    struct peer_link link;   /* the send token holder's only */
    unsigned seed;           /* for the reconnect backoff */
    pthread_t thread;
    bool started;
};

/* Waits 50..100 ms under the lock (the wait releases it), or until shutdown. */
static void backoff(struct replicator *r, struct node_peer *p)
{
    struct node *n = r->node;
    uint64_t until = rk_clock_ms() + BACKOFF_MIN_MS + (uint64_t)(rand_r(&r->seed) % BACKOFF_SPREAD_MS);
    while (!n->shutdown && rk_clock_ms() < until)
        node_cond_wait_until(&p->cond, &n->mu, until);
}

static void *replicator_main(void *arg)
{
    struct replicator *r = arg;
    struct node *n = r->node;
    struct node_peer *p = &n->peers[r->peer];
    struct proto_buf buf = { 0 };
    node_name_thread("repl", r->peer);
    pthread_mutex_lock(&n->mu);
    while (!n->shutdown) {
        if (!node_peer_has_work(p)) {
            pthread_cond_wait(&p->cond, &n->mu);
            continue;
        }
        struct node_frame *batch = node_peer_take(p);
        pthread_mutex_unlock(&n->mu);
        node_peer_encode(n, p, batch, &buf);
        bool ok = peer_link_send(&r->link, buf.data, buf.len);
        pthread_mutex_lock(&n->mu);
        node_peer_give_back(n, p, peer_link_is_up(&r->link), false);
        if (!ok)
            backoff(r, p);
    }
    pthread_mutex_unlock(&n->mu);
    proto_buf_free(&buf);
    return NULL;
}

/* node_transport.send_nowait: ctx is the array of replicators, by peer id. */
static bool send_nowait(void *ctx, int peer, const uint8_t *data, size_t len)
{
    struct replicator *reps = ctx;
    return peer_link_send_nowait(&reps[peer].link, data, len);
}

int replicators_start(struct node *n)
{
    struct replicator *reps = calloc((size_t)n->reg.n, sizeof(*reps));
    if (reps == NULL)
        return RK_ERR_NOMEM;
    n->transport = (struct node_transport){ .send_nowait = send_nowait, .ctx = reps };
    for (int i = 0; i < n->reg.n; i++) {
        struct replicator *r = &reps[i];
        r->node = n;
        r->peer = i;
        r->seed = (unsigned)(rk_clock_ms() + (uint64_t)i);
        peer_link_init(&r->link, n, i);
        if (i == n->self)
            continue;
        if (pthread_create(&r->thread, NULL, replicator_main, r) != 0)
            return RK_ERR_NOMEM;
        r->started = true;
    }
    return RK_OK;
}

void replicators_stop(struct node *n)
{
    struct replicator *reps = n->transport.ctx;
    if (reps == NULL)
        return;
    for (int i = 0; i < n->reg.n; i++) {
        if (reps[i].started)
            pthread_join(reps[i].thread, NULL);
        peer_link_close(&reps[i].link);
    }
    n->transport = (struct node_transport){ .send_nowait = NULL, .ctx = NULL };
    free(reps);
}
