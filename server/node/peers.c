/* server/node/peers.c - what node/ sends to each peer and when: a bounded queue of
 * messages per peer, filled under mu, and the send token that lets one thread at a time
 * take the queue, encode it and write it to the peer's link without the lock. The token
 * holder is the peer's replicator thread (net/replicator.c, which connects, blocks and
 * retries) or a thread that has just stepped the core and writes without blocking
 * (node_outbox_flush, through n->transport). Lost messages are fine: Raft retries
 * (Raft paper §5.3). */
#include <stdlib.h>
#include <string.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../storage/snapshot.h"
#include "node.h"

#define DROP_LOG_MS 10000
#define ENCODE_ERR_LEN 256

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
             node_name_of(n, p->id), n->limits.max_peer_queue_bytes);
    p->reported_drops = p->dropped_frames;
    p->drops_logged_ms = now;
}

/* A frame that takes over m's entries and snapshot bytes, or NULL (m's are freed). */
static struct node_frame *frame_of(struct raft_msg *m)
{
    struct node_frame *f = malloc(sizeof(*f));
    if (f == NULL) {
        raft_msg_free_entries(m); /* dropped like a lost packet */
        return NULL;
    }
    f->next = NULL;
    f->msg = *m;
    f->size = msg_size(m);
    m->entries = NULL;
    m->n_entries = 0;
    m->snap_data = NULL;
    m->snap_len = 0;
    return f;
}

/* Bounded: past the limit the oldest messages go (newer ones supersede them; Raft sends
 * again what a follower still needs, §5.3). The newest, f, always stays. */
static void enforce_bound(struct node *n, struct node_peer *p, const struct node_frame *f)
{
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
}

void node_peer_push(struct node *n, struct raft_msg *m, struct node_outbox *ob)
{
    if (m->to < 0 || m->to >= REGISTRY_MAX_SERVERS || m->to == raft_self(n->raft) ||
        !n->peers[m->to].known) {
        raft_msg_free_entries(m); /* nowhere to send it: lost, as Raft allows */
        return;
    }
    struct node_peer *p = &n->peers[m->to];
    struct node_frame *f = frame_of(m);
    if (f == NULL)
        return;
    if (p->tail != NULL)
        p->tail->next = f;
    else
        p->head = f;
    p->tail = f;
    p->queued_bytes += f->size;
    enforce_bound(n, p, f);
    if (ob == NULL || p->sending || !p->inline_ok) {
        pthread_cond_signal(&p->cond);
        return;
    }
    ob->peers[p->id] = true;
    ob->any = true;
}

bool node_peer_has_work(const struct node_peer *p)
{
    return !p->sending && (p->head != NULL || p->backlog);
}

struct node_frame *node_peer_take(struct node *n, struct node_peer *p,
                                  struct node_peer_addr *addr)
{
    if (addr != NULL) {
        *addr = p->addr;
        addr->self_id = raft_self(n->raft);
    }
    struct node_frame *batch = p->head;
    p->head = p->tail = NULL;
    p->queued_bytes = 0;
    p->sending = true;
    return batch;
}

void node_peer_give_back(struct node *n, struct node_peer *p, bool inline_ok, bool backlog)
{
    p->sending = false;
    p->inline_ok = inline_ok && !backlog;
    p->backlog = backlog;
    if (p->head != NULL || p->backlog || n->shutdown)
        pthread_cond_signal(&p->cond);
    if (n->shutdown)
        pthread_cond_broadcast(&n->tokens_cond);
}

/* InstallSnapshot (Raft paper Figure 13): the core names the snapshot and the offset;
 * the chunk is read from NAME_snapshot here, without the lock. If the file no longer
 * holds that snapshot (a newer one replaced it) the message is dropped: the core sends
 * the new one from offset 0 once it learns of it. */
static void encode_snapshot_chunk(struct node *n, const struct node_peer *p,
                                  const struct raft_msg *msg, struct proto_buf *buf)
{
    struct raft_msg m = *msg;
    char err[ENCODE_ERR_LEN];
    int rc = snapshot_read_chunk(n->snap.paths->file, m.snap_index, m.snap_offset,
                                 NODE_SNAPSHOT_CHUNK_BYTES, &m.snap_data, &m.snap_len,
                                 &m.snap_done, err, sizeof(err));
    if (rc != RK_OK)
        node_log(n, "not sending snapshot %llu to %s: %s", (unsigned long long)m.snap_index,
                 node_name_of(n, p->id), err);
    else if ((rc = proto_encode_raft_msg(buf, &m)) != RK_OK)
        node_log(n, "dropping a snapshot chunk to %s: %s", node_name_of(n, p->id),
                 rk_strerror(rc));
    free(m.snap_data);
}

void node_peer_encode(struct node *n, const struct node_peer *p, struct node_frame *batch,
                      struct proto_buf *buf)
{
    buf->len = 0;
    for (const struct node_frame *f = batch; f != NULL; f = f->next) {
        if (f->msg.type == RAFT_MSG_SNAPSHOT && f->msg.snap_data == NULL) {
            encode_snapshot_chunk(n, p, &f->msg, buf);
            continue;
        }
        int rc = proto_encode_raft_msg(buf, &f->msg);
        if (rc != RK_OK)
            node_log(n, "dropping a %s message to %s: %s", raft_msg_type_name(f->msg.type),
                     node_name_of(n, p->id), rk_strerror(rc));
    }
    free_frames(batch);
}

/* Under mu: takes the token and queue of each of ob's peers whose link is idle and up
 * (the others are left to their replicators). Returns how many it took. */
static int take_outbox(struct node *n, struct node_outbox *ob, struct node_peer **taken,
                       struct node_frame **batches)
{
    int count = 0;
    for (int i = 0; ob->any && !n->shutdown && i < REGISTRY_MAX_SERVERS; i++) {
        if (!ob->peers[i])
            continue;
        ob->peers[i] = false;
        struct node_peer *p = &n->peers[i];
        if (p->sending || p->head == NULL)
            continue; /* the replicator has it, and loops until the queue is empty */
        if (!p->inline_ok) {
            pthread_cond_signal(&p->cond);
            continue;
        }
        taken[count] = p;
        batches[count++] = node_peer_take(n, p, NULL); /* inline_ok: the link's address */
    }
    memset(ob, 0, sizeof(*ob)); /* left only when stopping: the replicators stop anyway */
    return count;
}

void node_outbox_flush(struct node *n, struct node_outbox *ob)
{
    struct node_peer *taken[REGISTRY_MAX_SERVERS];
    struct node_frame *batches[REGISTRY_MAX_SERVERS];
    int count = take_outbox(n, ob, taken, batches);
    if (count > 0) {
        bool sent[REGISTRY_MAX_SERVERS];
        pthread_mutex_unlock(&n->mu);
        struct proto_buf buf = { 0 };
        for (int i = 0; i < count; i++) {
            node_peer_encode(n, taken[i], batches[i], &buf);
            sent[i] = buf.len == 0 ||
                      n->transport.send_nowait(n->transport.ctx, taken[i]->id, buf.data, buf.len);
        }
        proto_buf_free(&buf);
        pthread_mutex_lock(&n->mu);
        for (int i = 0; i < count; i++)
            node_peer_give_back(n, taken[i], sent[i], !sent[i]);
    }
    if (raft_has_ready(n->raft))
        pthread_cond_signal(&n->io_cond);
}
