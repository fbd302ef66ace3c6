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
        struct node_peer_addr addr;
        struct node_frame *batch = node_peer_take(n, p, &addr);
        pthread_mutex_unlock(&n->mu);
        peer_link_set_addr(&r->link, &addr);
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

/* node_transport.peer_changed, under mu: a peer's replicator starts once it is known
 * (a member, or a leader that said hello to a server joining); its link learns a new
 * address when it next takes the queue. A thread that cannot be started is logged and
 * tried again at the next change. */
static void peer_changed(void *ctx, int peer)
{
    struct replicator *r = &((struct replicator *)ctx)[peer];
    if (r->started || r->node->shutdown || peer == raft_self(r->node->raft))
        return;
    if (pthread_create(&r->thread, NULL, replicator_main, r) != 0) {
        node_log(r->node, "cannot start a replicator thread for %s", node_name_of(r->node, peer));
        return;
    }
    r->started = true;
}

int replicators_start(struct node *n)
{
    struct replicator *reps = calloc(REGISTRY_MAX_SERVERS, sizeof(*reps));
    if (reps == NULL)
        return RK_ERR_NOMEM;
    for (int i = 0; i < REGISTRY_MAX_SERVERS; i++) {
        struct replicator *r = &reps[i];
        r->node = n;
        r->peer = i;
        r->seed = (unsigned)(rk_clock_ms() + (uint64_t)i);
        peer_link_init(&r->link, n, i);
    }
    pthread_mutex_lock(&n->mu);
    n->transport = (struct node_transport){ .send_nowait = send_nowait,
                                            .peer_changed = peer_changed, .ctx = reps };
    int self = raft_self(n->raft);
    for (int i = 0; i < REGISTRY_MAX_SERVERS; i++)
        if (n->peers[i].known && i != self)
            peer_changed(reps, i);
    pthread_mutex_unlock(&n->mu);
    return RK_OK;
}

void replicators_stop(struct node *n)
{
    struct replicator *reps = n->transport.ctx;
    if (reps == NULL)
        return;
    for (int i = 0; i < REGISTRY_MAX_SERVERS; i++) {
        if (reps[i].started)
            pthread_join(reps[i].thread, NULL);
        peer_link_close(&reps[i].link);
    }
    n->transport = (struct node_transport){ .send_nowait = NULL, .ctx = NULL };
    free(reps);
}
