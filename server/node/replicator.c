/* server/node/replicator.c - the outgoing side of each peer. Whoever holds a peer's
 * send token takes its whole message queue under the lock and encodes and sends it
 * without the lock (one write per batch): the peer's replicator thread, which also
 * connects and reconnects with a short backoff, or a thread that has just stepped the
 * core and sends inline without blocking while the link is up (node_replicator_flush).
 * Lost messages are fine: Raft retries (Raft paper §5.3). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../../common/net.h"
#include "../storage/snapshot.h"
#include "node.h"

#define CONNECT_TIMEOUT_MS 200
#define SEND_TIMEOUT_MS 1000
#define BACKOFF_MIN_MS 50
#define BACKOFF_SPREAD_MS 50
#define NET_ERR_LEN 256
#define DROP_LOG_MS 10000

enum link_state { LINK_NEW, LINK_UP, LINK_DOWN };

static void free_frames(struct node_frame *f)
{
    while (f != NULL) {
        struct node_frame *next = f->next;
        raft_msg_free_entries(&f->msg);
        free(f);
        f = next;
    }
}

static size_t msg_size(const struct raft_msg *m)
{
    size_t size = 96;
    if (m->type == RAFT_MSG_SNAPSHOT)
        size += NODE_SNAPSHOT_CHUNK_BYTES; /* filled in when encoded */
    for (uint32_t i = 0; i < m->n_entries; i++)
        size += 64 + m->entries[i].key_len + m->entries[i].val_len;
    return size;
}

/* Under mu, after drops: one log line per DROP_LOG_MS per peer, from here rather than
 * from the replicator, which may be stuck in a send to that very peer. */
static void note_drops(struct node *n, struct node_peer *p)
{
    uint64_t now = rk_clock_ms();
    if (p->drops_logged_ms != 0 && now - p->drops_logged_ms < DROP_LOG_MS)
        return;
    node_log(n, "dropped %llu messages for %s: queue over %zu bytes (--max-peer-queue-bytes)",
             (unsigned long long)(p->dropped_frames - p->reported_drops),
             n->reg.servers[p->id].name, n->limits.max_peer_queue_bytes);
    p->reported_drops = p->dropped_frames;
    p->drops_logged_ms = now;
}

void node_replicator_push(struct node *n, struct raft_msg *m)
{
    if (m->to < 0 || m->to >= n->reg.n || m->to == n->self) {
        raft_msg_free_entries(m);
        return;
    }
    struct node_peer *p = &n->peers[m->to];
    struct node_frame *f = malloc(sizeof(*f));
    if (f == NULL) {
        raft_msg_free_entries(m); /* dropped like a lost packet */
        return;
    }
    f->next = NULL;
    f->msg = *m;
    f->size = msg_size(m);
    m->entries = NULL;
    m->n_entries = 0;
    m->snap_data = NULL;
    m->snap_len = 0;
    if (p->tail != NULL)
        p->tail->next = f;
    else
        p->head = f;
    p->tail = f;
    p->queued_bytes += f->size;
    /* Bounded: past the limit drop the oldest messages (newer ones supersede them; Raft
     * sends again what a follower still needs, §5.3). */
    uint64_t dropped_before = p->dropped_frames;
    while (p->queued_bytes > n->limits.max_peer_queue_bytes && p->head != f) {
        struct node_frame *old = p->head;
        p->head = old->next;
        p->queued_bytes -= old->size;
        p->dropped_frames++;
        old->next = NULL;
        free_frames(old);
    }
    if (p->dropped_frames != dropped_before)
        note_drops(n, p);
    if (p->sending || !p->link_up || p->pending.len > 0 || !node_inline_mark(p->id))
        pthread_cond_signal(&p->cond);
}

static const struct registry_server *peer_addr(const struct node_peer *p)
{
    return &p->node->reg.servers[p->id];
}

/* Logs only when the link changes state, not on every retry. */
static void link_down(struct node_peer *p, struct node_link *l, const char *why)
{
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    const struct registry_server *s = peer_addr(p);
    if (l->state == LINK_UP)
        node_log(p->node, "lost connection to %s: %s", s->name, why);
    else if (l->state == LINK_NEW)
        node_log(p->node, "cannot reach %s at %s:%u: %s (will keep retrying)", s->name, s->host,
                 (unsigned)s->port, why);
    l->state = LINK_DOWN;
}

static void link_up(struct node_peer *p, struct node_link *l)
{
    const struct registry_server *s = peer_addr(p);
    if (l->state != LINK_UP)
        node_log(p->node, "connected to %s at %s:%u", s->name, s->host, (unsigned)s->port);
    l->state = LINK_UP;
}

/* Connects and sends HELLO_PEER with our name and cluster id. */
static int link_connect(struct node_peer *p, struct node_link *l)
{
    const struct registry_server *s = peer_addr(p);
    char err[NET_ERR_LEN];
    l->fd = net_connect(s->host, s->port, CONNECT_TIMEOUT_MS, err, sizeof(err));
    if (l->fd < 0) {
        link_down(p, l, err);
        return RK_ERR_IO;
    }
    struct proto_buf hello = { 0 };
    int rc = net_set_timeouts(l->fd, SEND_TIMEOUT_MS);
    if (rc == RK_OK)
        rc = proto_encode_hello_peer(&hello, p->node->name, p->node->cluster_id);
    if (rc == RK_OK)
        rc = net_write_full(l->fd, hello.data, hello.len);
    proto_buf_free(&hello);
    if (rc != RK_OK) {
        link_down(p, l, rk_strerror(rc));
        return rc;
    }
    link_up(p, l);
    return RK_OK;
}

/* The peer never writes on this connection, so readable means it closed (or reset):
 * reconnect before sending instead of losing the batch. */
static bool link_stale(const struct node_link *l)
{
    struct pollfd pfd = { .fd = l->fd, .events = POLLIN };
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    char c;
    ssize_t r = recv(l->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* InstallSnapshot (Raft paper Figure 13): the core names the snapshot and the offset;
 * the chunk is read from NAME_snapshot here, without the lock. If the file no longer
 * holds that snapshot (a newer one replaced it) the message is dropped: the core sends
 * the new one from offset 0 once it learns of it. */
static void encode_snapshot_chunk(struct node_peer *p, const struct raft_msg *msg,
                                  struct proto_buf *buf)
{
    struct raft_msg m = *msg;
    char err[NET_ERR_LEN];
    int rc = snapshot_read_chunk(p->node->snap.paths->file, m.snap_index, m.snap_offset,
                                 NODE_SNAPSHOT_CHUNK_BYTES, &m.snap_data, &m.snap_len,
                                 &m.snap_done, err, sizeof(err));
    if (rc != RK_OK)
        node_log(p->node, "not sending snapshot %llu to %s: %s",
                 (unsigned long long)m.snap_index, peer_addr(p)->name, err);
    else if ((rc = proto_encode_raft_msg(buf, &m)) != RK_OK)
        node_log(p->node, "dropping a snapshot chunk to %s: %s", peer_addr(p)->name,
                 rk_strerror(rc));
    free(m.snap_data);
}

/* Encodes the batch into buf (reused between batches). A message that cannot be
 * encoded is dropped, like a lost packet. */
static void encode_batch(struct node_peer *p, const struct node_frame *batch,
                         struct proto_buf *buf)
{
    buf->len = 0;
    for (const struct node_frame *f = batch; f != NULL; f = f->next) {
        if (f->msg.type == RAFT_MSG_SNAPSHOT && f->msg.snap_data == NULL) {
            encode_snapshot_chunk(p, &f->msg, buf);
            continue;
        }
        int rc = proto_encode_raft_msg(buf, &f->msg);
        if (rc != RK_OK)
            node_log(p->node, "dropping a %s message to %s: %s",
                     raft_msg_type_name(f->msg.type), peer_addr(p)->name, rk_strerror(rc));
    }
}

/* Sends the encoded batch, connecting first if needed. Without the lock. false on
 * failure. */
static bool send_batch(struct node_peer *p, struct node_link *l, const struct proto_buf *buf)
{
    if (buf->len == 0)
        return true;
    if (l->fd >= 0 && link_stale(l)) {
        close(l->fd);
        l->fd = -1;
    }
    if (l->fd < 0 && link_connect(p, l) != RK_OK)
        return false;
    int rc = net_write_full(l->fd, buf->data, buf->len);
    if (rc != RK_OK) {
        char err[NET_ERR_LEN];
        int e = errno;
        link_down(p, l, rc == RK_ERR_TIMEOUT ? "send timed out" : strerror_r(e, err, sizeof(err)));
        return false;
    }
    return true;
}

/* Waits 50..100 ms under the lock (cond wait releases it), or until shutdown. */
static void backoff(struct node_peer *p, struct node_link *l)
{
    struct node *n = p->node;
    uint64_t until = rk_clock_ms() + BACKOFF_MIN_MS +
                     (uint64_t)(rand_r(&l->seed) % BACKOFF_SPREAD_MS);
    while (!n->shutdown && rk_clock_ms() < until)
        node_cond_wait_until(&p->cond, &n->mu, until);
}

/* Under mu: takes the send token and the queue. */
static struct node_frame *take_queue(struct node_peer *p)
{
    struct node_frame *batch = p->head;
    p->head = p->tail = NULL;
    p->queued_bytes = 0;
    p->sending = true;
    return batch;
}

/* Under mu: gives the token back; the replicator takes over what is left. */
static void give_back(struct node_peer *p)
{
    p->sending = false;
    p->link_up = p->link.state == LINK_UP && p->link.fd >= 0;
    if (p->head != NULL || p->pending.len > 0 || p->node->shutdown)
        pthread_cond_signal(&p->cond);
}

/* Token holder, blocking: what an inline send left. The rest of a frame only makes
 * sense on the connection it started on. */
static bool send_pending(struct node_peer *p)
{
    struct node_link *l = &p->link;
    bool ok = true;
    if (l->fd < 0 && !p->pending_whole)
        p->pending.len = 0;
    else if (p->pending.len > 0)
        ok = send_batch(p, l, &p->pending);
    p->pending.len = 0;
    return ok;
}

/* Token holder, never blocking: writes what the socket takes now and keeps the rest in
 * p->pending for the replicator. A link the peer closed gets the whole batch kept. */
static void send_inline(struct node_peer *p, const struct proto_buf *buf)
{
    struct node_link *l = &p->link;
    if (buf->len == 0)
        return;
    size_t sent = 0;
    if (l->fd >= 0 && !link_stale(l)) {
        while (sent < buf->len) {
            ssize_t w = send(l->fd, buf->data + sent, buf->len - sent,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                sent += (size_t)w;
            } else if (w < 0 && errno == EINTR) {
                continue;
            } else {
                if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                    char err[NET_ERR_LEN];
                    link_down(p, l, strerror_r(errno, err, sizeof(err)));
                    sent = 0; /* a new connection gets the batch from its start */
                }
                break;
            }
        }
    } else if (l->fd >= 0) {
        close(l->fd); /* reconnected by the replicator, which sends the batch */
        l->fd = -1;
    }
    if (sent < buf->len) {
        p->pending_whole = sent == 0;
        if (proto_buf_append(&p->pending, buf->data + sent, buf->len - sent) != RK_OK)
            p->pending.len = 0; /* dropped like a lost packet */
    }
}

void node_replicator_flush(struct node *n, uint64_t *mask)
{
    struct node_peer *taken[REGISTRY_MAX_SERVERS];
    struct node_frame *batches[REGISTRY_MAX_SERVERS];
    int count = 0;
    for (int i = 0; !n->shutdown && i < n->reg.n && i < 64; i++) {
        if ((*mask & ((uint64_t)1 << i)) == 0)
            continue;
        struct node_peer *p = &n->peers[i];
        if (p->sending || p->head == NULL)
            continue; /* the replicator has it, and loops until the queue is empty */
        if (!p->link_up || p->pending.len > 0) {
            pthread_cond_signal(&p->cond);
            continue;
        }
        taken[count] = p;
        batches[count++] = take_queue(p);
    }
    *mask = 0;
    if (count == 0)
        return;
    pthread_mutex_unlock(&n->mu);
    struct proto_buf buf = { 0 };
    for (int i = 0; i < count; i++) {
        encode_batch(taken[i], batches[i], &buf);
        free_frames(batches[i]);
        send_inline(taken[i], &buf);
    }
    proto_buf_free(&buf);
    pthread_mutex_lock(&n->mu);
    for (int i = 0; i < count; i++)
        give_back(taken[i]);
}

static void *replicator_main(void *arg)
{
    struct node_peer *p = arg;
    node_name_thread("repl", p->id);
    struct node *n = p->node;
    struct proto_buf buf = { 0 };
    pthread_mutex_lock(&n->mu);
    while (!n->shutdown) {
        if (p->sending || (p->head == NULL && p->pending.len == 0)) {
            pthread_cond_wait(&p->cond, &n->mu);
            continue;
        }
        struct node_frame *batch = take_queue(p);
        pthread_mutex_unlock(&n->mu);
        bool ok = send_pending(p);
        encode_batch(p, batch, &buf);
        free_frames(batch);
        if (ok)
            ok = send_batch(p, &p->link, &buf);
        pthread_mutex_lock(&n->mu);
        p->sending = false;
        p->link_up = p->link.state == LINK_UP && p->link.fd >= 0;
        if (!ok)
            backoff(p, &p->link);
    }
    /* An inline sender may still be writing to the link: it gives the token back soon,
     * since its sends never block (bounded anyway: 10 s). */
    for (int i = 0; p->sending && i < 1000; i++)
        node_cond_wait_until(&p->cond, &n->mu, rk_clock_ms() + 10);
    free_frames(p->head);
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&n->mu);
    proto_buf_free(&buf);
    proto_buf_free(&p->pending);
    if (p->link.fd >= 0)
        close(p->link.fd);
    return NULL;
}

int node_replicator_start(struct node_peer *p)
{
    p->link = (struct node_link){ .fd = -1, .state = LINK_NEW,
                             .seed = (unsigned)(rk_clock_ms() + (uint64_t)p->id) };
    if (pthread_create(&p->thread, NULL, replicator_main, p) != 0)
        return RK_ERR_NOMEM;
    p->started = true;
    return RK_OK;
}
