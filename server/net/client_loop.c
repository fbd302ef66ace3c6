/* server/net/client_loop.c - every client connection of this server on one thread (see
 * client_loop.h). Per connection one request is served at a time, so answers keep the
 * order of the requests; a client that sends several without waiting has them served in
 * turn. The limits of node.h apply as on any connection: frame and request sizes, the
 * idle timeout, and the half-sent-frame timeout (slowloris). */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../node/node.h"
#include "client_loop.h"
#include "conn.h"
#include "event_loop.h"
#include "watch_loop.h"

#define LOOP_EVENTS 128
#define LOOP_TICK_MS 20              /* how often deadlines are checked */
#define CLIENT_SEND_TIMEOUT_MS 5000  /* an answer the client does not take for this long */
#define REFUSE_DRAIN_MS 200          /* after an ERR for a frame we will not read */
#define REFUSE_DRAIN_BYTES (64u * 1024)
#define REASON_LEN 256
/* A client must not wait for an answer that will never come: its connection is closed. */
#define NO_ANSWER "cannot encode the answer (out of memory); closing so the client retries"

struct client_conn {
    struct client_conn *prev, *next;
    int fd;
    char addr[96];
    struct frame_reader in;
    struct proto_buf out;       /* answers not yet sent: bytes [sent, len) */
    size_t sent;
    uint64_t blocked_ms;        /* the socket took no more of out since (0: it did) */
    struct node_request r;      /* the request being served (r.waiting) */
    uint64_t wait_deadline;     /* r.waiting: give up then */
    uint64_t active_ms;         /* the last frame started or answered (idle timeout) */
    uint64_t frame_started_ms;  /* part of a frame is buffered since (0: none) */
    bool readable;              /* the socket may hold bytes we have not read */
    bool hup;                   /* epoll saw the peer's close or an error: read on, to
                                   learn it, even when a read found the socket empty */
    bool draining;              /* refused: reading and dropping until drain_deadline */
    uint64_t drain_deadline;
    size_t drained;
    bool started;               /* in this round's batch */
    struct node_watcher watch;  /* a WATCH turned the connection into a stream ... */
    bool handed_over;           /* ... which the watch loop serves from now on */
    bool closing;
    char reason[REASON_LEN];    /* logged when closing ("" = a quiet close) */
};

struct client_loop {
    struct node *node;
    struct event_loop e;           /* its thread, epoll set and mailbox (adopted conns) */
    struct client_conn *conns;     /* the loop thread's */
    struct node_waiter *done;      /* under the node's mu: finished requests */
    bool woken;                    /* under mu: efd written since the loop took `done` */
};

static void wake(struct client_loop *l)
{
    event_loop_wake(&l->e);
}

static struct client_conn *conn_of(struct node_waiter *w)
{
    return (struct client_conn *)((char *)w - offsetof(struct client_conn, r.w));
}

/* The waiter's on_done, under mu, from whichever thread finished the request. */
static void request_done(void *ctx, struct node_waiter *w)
{
    struct client_loop *l = ctx;
    w->done_next = l->done;
    l->done = w;
    if (!l->woken) {
        l->woken = true;
        wake(l);
    }
}

/* ---------- closing ---------- */

/* Under mu: takes c's waiter out of the done list (it may be there). */
static void unlink_done(struct client_loop *l, struct node_waiter *w)
{
    for (struct node_waiter **p = &l->done; *p != NULL; p = &(*p)->done_next) {
        if (*p == w) {
            *p = w->done_next;
            return;
        }
    }
}

static void close_now(struct client_loop *l, struct client_conn *c)
{
    struct node *n = l->node;
    if (c->r.waiting) {
        pthread_mutex_lock(&n->mu);
        unlink_done(l, &c->r.w);
        node_waiter_remove(n, &c->r.w);
        c->r.waiting = false;
        pthread_mutex_unlock(&n->mu);
    }
    epoll_ctl(l->e.ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->handed_over) {
        watch_loop_adopt(n, c->fd, c->addr, &c->watch); /* it takes the client's slot */
    } else {
        if (c->reason[0] != '\0')
            conn_log_quietly(n, "closing connection", c->addr, c->reason);
        close(c->fd);
        atomic_fetch_sub(&n->n_clients, 1);
    }
    frame_reader_free(&c->in);
    proto_buf_free(&c->out);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
}

static void close_later(struct client_conn *c, const char *reason)
{
    if (!c->closing)
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
    c->closing = true;
}

/* ---------- sending ---------- */

/* Sends what is queued without blocking; the rest goes when epoll says the socket is
 * writable again. A client that leaves an answer unread for CLIENT_SEND_TIMEOUT_MS is
 * cut off (check_deadlines): its next request is not read until the answer is sent. */
static void flush_out(struct client_conn *c)
{
    while (c->sent < c->out.len && !c->closing) {
        ssize_t w = send(c->fd, c->out.data + c->sent, c->out.len - c->sent,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            c->sent += (size_t)w;
            c->blocked_ms = 0;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->blocked_ms == 0)
                c->blocked_ms = rk_clock_ms();
            return;
        } else {
            close_later(c, ""); /* the client went away */
        }
    }
    if (c->sent == c->out.len) {
        c->out.len = c->sent = 0;
        c->blocked_ms = 0;
    }
}

/* ---------- reading ---------- */

/* A frame over --max-frame-bytes: the client gets an ERR saying so, then we stop writing
 * and drop what it sends for a moment before closing, so that it can read the ERR (its
 * stream cannot be resynchronised without reading the frame). */
static void refuse_big_frame(struct client_loop *l, struct client_conn *c, size_t len,
                             const char *reason)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "frame of %zu bytes is over this server's limit of %" PRIu32
             " bytes", len, l->node->limits.max_frame_bytes);
    node_client_error(&c->out, len == 0 ? "empty frame" : msg);
    flush_out(c);
    shutdown(c->fd, SHUT_WR);
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    c->draining = true;
    c->drain_deadline = rk_clock_ms() + REFUSE_DRAIN_MS;
    c->readable = true;
}

static void drain(struct client_conn *c)
{
    uint8_t sink[4096];
    while (c->drained < REFUSE_DRAIN_BYTES) {
        ssize_t got = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->readable = false;
            return;
        }
        if (got <= 0)
            break;
        c->drained += (size_t)got;
    }
    c->closing = true; /* reason already set */
}

/* The ERR reason for a CLIENT_REQ the decoder found over the protocol's limits (the
 * frame itself was whole, so the connection can go on). */
static void too_big_reason(const struct node_limits *lim, const uint8_t *payload, size_t len,
                           char *why, size_t whylen)
{
    uint32_t key_len = proto_client_req_key_len(payload, len);
    if (key_len > lim->max_key_bytes)
        snprintf(why, whylen, "key too long (%" PRIu32 " bytes; the limit is %" PRIu32 ")",
                 key_len, lim->max_key_bytes);
    else
        snprintf(why, whylen, "value too long (the limit is %" PRIu32 " bytes)",
                 lim->max_value_bytes);
}

/* Decodes one client frame into c->r.req: true if it is a request to start. A request
 * with an unknown op, or a key or value over the protocol's limits, gets an ERR answer
 * and the connection goes on (the frame boundary is intact); anything else malformed
 * closes it. */
static bool decode_request(struct client_loop *l, struct client_conn *c, const uint8_t *payload,
                           size_t len)
{
    int type = proto_frame_type(payload, len);
    if (type != PROTO_CLIENT_REQ) {
        char why[REASON_LEN];
        snprintf(why, sizeof(why), "unexpected frame type %d on a client connection", type);
        close_later(c, why);
        return false;
    }
    int rc = proto_decode_client_req(payload, len, &c->r.req);
    if (rc != RK_OK && len >= 2 && (payload[1] < PROTO_OP_GET || payload[1] > PROTO_OP_LAST)) {
        node_client_error(&c->out, "unknown command");
        return false;
    }
    if (rc == RK_ERR_TOOBIG) {
        char why[128];
        too_big_reason(&l->node->limits, payload, len, why, sizeof(why));
        node_client_error(&c->out, why);
        return false;
    }
    if (rc != RK_OK) {
        char why[REASON_LEN];
        snprintf(why, sizeof(why), "bad client request: %s", rk_strerror(rc));
        close_later(c, why);
        return false;
    }
    return true;
}

/* Reads c's next frame if it is whole (never waits). true if it holds a request to
 * start; answers, refusals and closes are set up on c. */
static bool next_request(struct client_loop *l, struct client_conn *c)
{
    const struct node_limits *lim = &l->node->limits;
    struct frame_reader_rules rules = { .max = lim->max_frame_bytes,
                                        .idle_deadline = FRAME_READER_NO_WAIT, .frame_ms = 0,
                                        .hard_deadline = FRAME_READER_NO_WAIT };
    uint8_t *payload;
    size_t len;
    char reason[REASON_LEN];
    int rc = frame_reader_read(&c->in, &rules, &payload, &len, reason, sizeof(reason));
    if (rc == RK_ERR_AGAIN) { /* not whole yet: what came stays buffered */
        c->readable = c->hup;
        if (c->in.end > c->in.start && c->frame_started_ms == 0)
            c->frame_started_ms = rk_clock_ms();
        return false;
    }
    c->frame_started_ms = 0;
    c->active_ms = rk_clock_ms();
    if (rc == RK_ERR_TOOBIG) {
        refuse_big_frame(l, c, len, reason);
        return false;
    }
    if (rc != RK_OK) {
        close_later(c, rc == RK_ERR_CLOSED ? "" : reason);
        return false;
    }
    if (c->in.emptied && !c->hup)
        c->readable = false; /* epoll (edge-triggered) tells us when more comes */
    return decode_request(l, c, payload, len);
}

/* Whether c can take its next request now: nothing pending, its answers sent. */
static bool ready_for_next(const struct client_conn *c)
{
    return !c->closing && !c->draining && !c->r.waiting && c->out.len == 0 && (c->readable || frame_reader_buffered(&c->in));
}

/* ---------- a round: read, start under one lock, finish, send ---------- */

/* A WATCH is not a request the node starts and finishes: the connection becomes a
 * stream of events, handed over to the watch loop (server/net/watch_loop.c) once the
 * stream is set up (node_watch_check; else it got its ERR). */
static void start_watch(struct client_loop *l, struct client_conn *c)
{
    if (node_watch_check(l->node, &c->watch, &c->r.req, &c->out)) {
        c->handed_over = true;
        c->closing = true;
    }
}

static bool collect(struct client_loop *l)
{
    bool any = false;
    for (struct client_conn *c = l->conns; c != NULL; c = c->next) {
        c->started = false;
        if (c->draining && c->readable && !c->closing)
            drain(c);
        else if (!ready_for_next(c) || !next_request(l, c))
            continue;
        else if (c->r.req.op == PROTO_OP_WATCH)
            start_watch(l, c);
        else
            c->started = any = true;
    }
    return any;
}

/* Under mu: answers the requests whose waiters are done. */
static void finish_done(struct client_loop *l)
{
    struct node_waiter *w = l->done;
    l->done = NULL;
    l->woken = false;
    while (w != NULL) {
        struct node_waiter *next = w->done_next;
        struct client_conn *c = conn_of(w);
        if (c->r.waiting && node_client_finish(l->node, &c->r, RK_OK, &c->out) != RK_OK)
            close_later(c, NO_ANSWER);
        w = next;
    }
}

/* Under mu: answers the requests that waited too long (the outcome of a write is then
 * unknown: a redirect if the client may retry it, else an error saying so). */
static void finish_expired(struct client_loop *l, uint64_t now)
{
    for (struct client_conn *c = l->conns; c != NULL; c = c->next) {
        if (c->r.waiting && now >= c->wait_deadline) {
            unlink_done(l, &c->r.w);
            if (node_client_finish(l->node, &c->r, c->r.w.done ? RK_OK : RK_ERR_TIMEOUT,
                                   &c->out) != RK_OK)
                close_later(c, NO_ANSWER);
        }
    }
}

static void send_answers(struct client_loop *l)
{
    for (struct client_conn *c = l->conns; c != NULL; c = c->next)
        if (c->out.len > c->sent)
            flush_out(c);
}

/* Under mu: starts the requests collect() read. The leader's appends for them go out
 * from this thread (the io thread writes our own log meanwhile). */
static void start_requests(struct client_loop *l)
{
    struct node *n = l->node;
    struct node_outbox ob = { .any = false };
    uint64_t now = rk_clock_ms();
    for (struct client_conn *c = l->conns; c != NULL; c = c->next) {
        if (!c->started)
            continue;
        size_t before = c->out.len;
        if (node_client_start(n, &c->r, &c->out, &ob))
            c->wait_deadline = now + node_client_wait_ms(&c->r);
        else if (c->out.len == before) /* no answer now and none to come */
            close_later(c, NO_ANSWER);
    }
    node_outbox_flush(n, &ob);
}

/* A round: the answers that became ready go out first, so that their clients can send
 * their next requests while we start the ones that came; then the requests that arrived
 * together are started under one hold of the lock. */
static void run_round(struct client_loop *l, bool tick)
{
    struct node *n = l->node;
    pthread_mutex_lock(&n->mu);
    finish_done(l);
    if (tick)
        finish_expired(l, rk_clock_ms());
    pthread_mutex_unlock(&n->mu);
    send_answers(l);
    if (!collect(l))
        return;
    pthread_mutex_lock(&n->mu);
    start_requests(l);
    finish_done(l); /* and any that completed meanwhile */
    pthread_mutex_unlock(&n->mu);
    send_answers(l);
}

/* Idle connections, half-sent frames (slowloris) and finished refusals. */
static void check_deadlines(struct client_loop *l)
{
    const struct node_limits *lim = &l->node->limits;
    uint64_t now = rk_clock_ms(); /* after every stamp of this round: no negative ages */
    for (struct client_conn *c = l->conns; c != NULL; c = c->next) {
        char why[REASON_LEN];
        if (!c->closing && c->blocked_ms != 0 &&
            now - c->blocked_ms >= CLIENT_SEND_TIMEOUT_MS) {
            snprintf(why, sizeof(why), "answer not read for %d ms", CLIENT_SEND_TIMEOUT_MS);
            close_later(c, why);
        }
        if (c->closing || c->r.waiting)
            continue;
        if (c->draining) {
            if (now >= c->drain_deadline)
                c->closing = true;
        } else if (c->frame_started_ms != 0) {
            if (now - c->frame_started_ms >= lim->frame_timeout_ms) {
                snprintf(why, sizeof(why), "a frame was not complete within %" PRIu32
                         " ms (--frame-timeout-ms)", lim->frame_timeout_ms);
                close_later(c, why);
            }
        } else if (lim->client_idle_ms > 0 && c->out.len == 0 &&
                   now - c->active_ms >= lim->client_idle_ms) {
            snprintf(why, sizeof(why), "idle for %" PRIu32 " ms (--client-idle-timeout-ms)",
                     lim->client_idle_ms);
            close_later(c, why);
        }
    }
}

static void reap(struct client_loop *l)
{
    struct client_conn *c = l->conns;
    while (c != NULL) {
        struct client_conn *next = c->next;
        if (c->closing)
            close_now(l, c);
        c = next;
    }
}

/* New connections from the connection threads. */
static void take_adopted(struct client_loop *l)
{
    struct client_conn *c = event_loop_take(&l->e);
    while (c != NULL) {
        struct client_conn *next = event_loop_next(&l->e, c);
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                  .data.ptr = c };
        c->prev = NULL;
        c->next = l->conns;
        if (l->conns != NULL)
            l->conns->prev = c;
        l->conns = c;
        if (epoll_ctl(l->e.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            close_later(c, "cannot watch the connection (epoll)");
        c = next;
    }
}

static bool any_ready(const struct client_loop *l)
{
    for (const struct client_conn *c = l->conns; c != NULL; c = c->next)
        if (ready_for_next(c) || c->closing || (c->draining && c->readable))
            return true;
    return false;
}

static void handle_events(struct client_loop *l, const struct epoll_event *evs, int count)
{
    for (int i = 0; i < count; i++) {
        struct client_conn *c = evs[i].data.ptr;
        if (c == NULL) {
            event_loop_drain(&l->e);
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            c->readable = true;
        if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            c->hup = true;
        if ((evs[i].events & EPOLLOUT) && c->out.len > c->sent)
            flush_out(c);
    }
}

/* On stop: every pending request gets its answer (shutting down), best effort. */
static void close_all(struct client_loop *l)
{
    struct node *n = l->node;
    take_adopted(l);
    pthread_mutex_lock(&n->mu);
    for (struct client_conn *c = l->conns; c != NULL; c = c->next) {
        if (c->r.waiting) {
            unlink_done(l, &c->r.w);
            node_client_finish(n, &c->r, c->r.w.done ? RK_OK : RK_ERR_SHUTDOWN, &c->out);
        }
    }
    pthread_mutex_unlock(&n->mu);
    while (l->conns != NULL) {
        flush_out(l->conns);
        l->conns->reason[0] = '\0';
        close_now(l, l->conns);
    }
}

static void *loop_main(void *arg)
{
    struct client_loop *l = arg;
    node_name_thread("clients", -1);
    struct epoll_event evs[LOOP_EVENTS];
    uint64_t next_tick = rk_clock_ms() + LOOP_TICK_MS;
    while (!atomic_load(&l->e.stopping)) {
        int timeout = any_ready(l) ? 0 : LOOP_TICK_MS;
        int count = epoll_wait(l->e.ep, evs, LOOP_EVENTS, timeout);
        if (count > 0)
            handle_events(l, evs, count);
        take_adopted(l);
        uint64_t now = rk_clock_ms();
        bool tick = now >= next_tick;
        run_round(l, tick);
        if (tick) {
            check_deadlines(l);
            next_tick = now + LOOP_TICK_MS;
        }
        reap(l);
    }
    close_all(l);
    return NULL;
}

/* ---------- the API ---------- */

int client_loop_start(struct node *n)
{
    struct client_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return RK_ERR_NOMEM;
    l->node = n;
    if (event_loop_start(&l->e, offsetof(struct client_conn, next), loop_main, l) != RK_OK) {
        free(l);
        return RK_ERR_IO;
    }
    n->client_loop = l;
    return RK_OK;
}

/* A connection the loop will not serve: closed, and its client slot given back. */
static void drop_unserved(struct node *n, int fd, struct frame_reader *in)
{
    close(fd);
    frame_reader_free(in);
    atomic_fetch_sub(&n->n_clients, 1);
}

/* A connection handed over as the loop stopped. */
static void drop_late(void *ctx, void *item)
{
    struct client_conn *c = item;
    drop_unserved(ctx, c->fd, &c->in);
    free(c);
}

/* A connection record for the loop, taking over the reader (and its fd). */
static struct client_conn *conn_new(struct client_loop *l, struct frame_reader *in,
                                    const char *addr)
{
    struct client_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->fd = in->fd;
    c->in = *in;
    *in = (struct frame_reader){ .fd = -1 };
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->active_ms = rk_clock_ms();
    c->readable = true;
    c->r.w.on_done = request_done;
    c->r.w.on_done_ctx = l;
    return c;
}

void client_loop_adopt(struct node *n, struct frame_reader *in, const char *addr)
{
    struct client_loop *l = n->client_loop;
    struct client_conn *c = l != NULL ? conn_new(l, in, addr) : NULL;
    if (c == NULL) {
        drop_unserved(n, in->fd, in);
        return;
    }
    if (event_loop_post(&l->e, c))
        wake(l);
    else
        drop_late(n, c);
}

void client_loop_stop(struct node *n)
{
    struct client_loop *l = n->client_loop;
    if (l == NULL)
        return;
    /* l stays allocated (and n->client_loop set): a connection thread finishing its
     * HELLO now finds it closed and closes its connection itself. */
    event_loop_stop(&l->e, drop_late, n);
}
