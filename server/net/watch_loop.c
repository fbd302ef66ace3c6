/* server/net/watch_loop.c - every watch stream of this server on one thread (see
 * watch_loop.h). The client loop hands a connection over once its WATCH is accepted; from
 * then on this thread alone touches it: it sends the stream's answers (node/watch.c builds
 * them), its heartbeats and the ERR that ends it, and closes it when the client goes. A
 * round costs what is due, not what is open:
 *  - new changes: the prefix index (node/watch_index.c) visits the streams they concern,
 *    in rounds at most every WATCH_GAP_MS, so the changes of that time go out in one
 *    answer;
 *  - heartbeats: the streams are kept in the order of their last answer, and only the due
 *    ones at the head are looked at, paced (beat_budget);
 *  - a stream with more to send than one answer: the `more` list;
 *  - a socket that takes more again: epoll (edge-triggered).
 * An answer goes straight from the buffer the streams of a prefix share to the socket;
 * only what the socket does not take is copied into the stream's own queue. */
#include <errno.h>
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
#include "../../common/net.h"
#include "../node/node.h"
#include "conn.h"
#include "event_loop.h"
#include "watch_loop.h"

#define LOOP_EVENTS 128
#define WATCH_GAP_MS 4               /* rounds of changes at most this often */
#define IDLE_WAIT_MS 1000            /* the longest sleep with nothing due */
#define SEND_TIMEOUT_MS 5000         /* answers the client does not take for this long */
#define INPUT_READS 16               /* reads of a client's stray bytes per wake-up */
#define BEAT_FLOOR 8                 /* heartbeats a pass may always send */
#define BEAT_WINDOW_MS 10            /* the most time a pass's heartbeats are paced for */
#define REASON_LEN 160
#define NO_ANSWER "cannot queue the stream's answer (out of memory); closing so the " \
                  "client resumes elsewhere"

struct watch_conn {
    struct watch_conn *prev, *next; /* the streams open, by last answer, oldest first */
    struct watch_conn *more_next;   /* in the `more` list (in_more) */
    struct watch_conn *closing_next;/* in the `closing` list (closing) */
    bool in_more, closing;
    int fd;
    char addr[96];
    struct proto_buf out;           /* answers not yet sent: bytes [sent, len) */
    size_t sent;
    uint64_t blocked_ms;            /* the socket took no more of out since (0: it did) */
    struct node_watcher w;
    char reason[REASON_LEN];        /* logged when closing ("" = a quiet close) */
};

struct watch_loop {
    struct node *node;
    struct event_loop e;            /* its thread, epoll set and mailbox (adopted streams) */
    atomic_bool wake_pending;       /* efd written and not yet read */
    /* The loop thread's: */
    struct watch_conn *head, *tail; /* open streams, by last answer */
    struct watch_conn *more;        /* streams with more to send at the next round */
    struct watch_conn *closing;     /* to close after this turn */
    uint64_t seen;                  /* watch.applied at the last round */
    uint64_t last_round_ms;         /* and when it ran */
    uint64_t last_beat_ms;          /* the last heartbeat pass */
    bool beats_behind;              /* it left due heartbeats for the next */
};

static void wake(void *ctx)
{
    struct watch_loop *l = ctx;
    if (!atomic_exchange(&l->wake_pending, true)) /* else one is on its way already */
        event_loop_wake(&l->e);
}

static struct watch_conn *conn_of(struct node_watcher *w)
{
    return (struct watch_conn *)((char *)w - offsetof(struct watch_conn, w));
}

static size_t unsent(const struct watch_conn *c)
{
    return c->out.len - c->sent;
}

/* ---------- the list by last answer ---------- */

static void unlink_conn(struct watch_loop *l, struct watch_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

static void append_conn(struct watch_loop *l, struct watch_conn *c)
{
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail != NULL)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

/* ---------- closing ---------- */

/* Out of the open list at once; closed by reap, once no list of this turn holds it. */
static void close_later(struct watch_loop *l, struct watch_conn *c, const char *reason)
{
    if (c->closing)
        return;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    c->closing = true;
    unlink_conn(l, c);
    c->closing_next = l->closing;
    l->closing = c;
}

static void close_now(struct watch_loop *l, struct watch_conn *c)
{
    struct node *n = l->node;
    node_watch_stop(n, &c->w);
    epoll_ctl(l->e.ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->reason[0] != '\0')
        conn_log_quietly(n, "closing watch stream", c->addr, c->reason);
    close(c->fd);
    proto_buf_free(&c->out);
    atomic_fetch_sub(&n->n_clients, 1);
    free(c);
}

/* Closes the streams that ended this turn, except those still in the `more` list (the
 * next round takes them out). */
static void reap(struct watch_loop *l)
{
    struct watch_conn **link = &l->closing;
    while (*link != NULL) {
        struct watch_conn *c = *link;
        if (c->in_more) {
            link = &c->closing_next;
            continue;
        }
        *link = c->closing_next;
        close_now(l, c);
    }
}

/* ---------- sending ---------- */

/* Sends bytes without blocking; false if the client went away. *took: how many went. */
static bool send_some(struct watch_conn *c, const uint8_t *data, size_t len, size_t *took)
{
    *took = 0;
    while (*took < len) {
        ssize_t w = send(c->fd, data + *took, len - *took, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            *took += (size_t)w;
            c->blocked_ms = 0;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->blocked_ms == 0)
                c->blocked_ms = rk_clock_ms();
            return true;
        } else {
            return false;
        }
    }
    return true;
}

/* Sends what is queued; the rest when epoll says the socket is writable again. */
static void flush_out(struct watch_loop *l, struct watch_conn *c)
{
    size_t took;
    if (unsent(c) == 0)
        return;
    if (!send_some(c, c->out.data + c->sent, unsent(c), &took)) {
        close_later(l, c, ""); /* the client went away */
        return;
    }
    c->sent += took;
    if (c->sent == c->out.len)
        c->out.len = c->sent = 0;
}

/* An answer the stream counts as sent: straight to the socket if nothing waits before it,
 * what the socket does not take into the queue. */
static void deliver(struct watch_loop *l, struct watch_conn *c, const struct proto_buf *a)
{
    size_t took = 0;
    if (unsent(c) == 0 && !send_some(c, a->data, a->len, &took)) {
        close_later(l, c, "");
        return;
    }
    if (took < a->len && proto_buf_append(&c->out, a->data + took, a->len - took) != RK_OK)
        close_later(l, c, NO_ANSWER); /* a part of an answer is lost: the stream cannot go on */
}

/* ---------- serving a stream ---------- */

/* What c has to say now (news, a heartbeat, its end); then, if it has more to send, it
 * is in the `more` list for the next round. Returns whether an answer went. */
static bool serve(struct watch_loop *l, struct watch_conn *c, uint64_t now)
{
    struct node *n = l->node;
    bool answered = false;
    if (c->closing)
        return false;
    node_watch_skip(n, &c->w);
    if (node_watch_due(n, &c->w, unsent(c), now)) {
        const struct proto_buf *a = node_watch_answer(n, &c->w, unsent(c), now);
        if (a != NULL) {
            answered = true;
            deliver(l, c, a);
            if (!c->closing) { /* answered now: last in the heartbeat order */
                unlink_conn(l, c);
                append_conn(l, c);
            }
        }
    }
    if (c->closing)
        return answered;
    if (c->w.ending && unsent(c) == 0) {
        close_later(l, c, "");
    } else if (!c->in_more && node_watch_due(n, &c->w, unsent(c), now)) {
        c->in_more = true;
        c->more_next = l->more;
        l->more = c;
    }
    return answered;
}

static void visit(void *ctx, struct node_watcher *w)
{
    struct watch_loop *l = ctx;
    serve(l, conn_of(w), l->last_round_ms);
}

/* New changes, or streams with more to send. */
static bool news(const struct watch_loop *l)
{
    return l->more != NULL || atomic_load(&l->node->watch.applied) != l->seen;
}

/* The streams the round's changes concern, then those with more to send. */
static void run_round(struct watch_loop *l, uint64_t now)
{
    l->seen = atomic_load(&l->node->watch.applied);
    l->last_round_ms = now;
    struct watch_conn *more = l->more;
    l->more = NULL;
    node_watch_scan(l->node, visit, l);
    while (more != NULL) {
        struct watch_conn *c = more;
        more = c->more_next;
        c->in_more = false;
        serve(l, c, now);
    }
}

/* How many heartbeats this pass may send: twice the even pace (every stream once per half
 * interval) for the time since the last pass. Streams opened together would otherwise
 * all beat together, and thousands of sends in one go hold a core for tens of ms while
 * requests wait. Paced, a heartbeat is at most half an interval late, and as a stream's
 * next is due an interval after it went, the beats are spread out after one interval. */
static uint64_t beat_budget(struct watch_loop *l, uint64_t now)
{
    uint64_t streams = atomic_load(&l->node->watch.n_watchers);
    uint64_t elapsed = now - l->last_beat_ms;
    if (elapsed > BEAT_WINDOW_MS)
        elapsed = BEAT_WINDOW_MS;
    l->last_beat_ms = now;
    return BEAT_FLOOR + streams * 2 * elapsed / PROTO_WATCH_HEARTBEAT_MS;
}

/* The streams whose last answer is PROTO_WATCH_HEARTBEAT_MS old, as many as the pace
 * allows: a heartbeat (with any news); one whose answers have not been taken for
 * SEND_TIMEOUT_MS is closed. */
static void beat(struct watch_loop *l, uint64_t now)
{
    uint64_t budget = beat_budget(l, now);
    l->beats_behind = false;
    while (l->head != NULL && now - l->head->w.last_sent_ms >= PROTO_WATCH_HEARTBEAT_MS) {
        struct watch_conn *c = l->head;
        if (budget-- == 0) {
            l->beats_behind = true;
            return;
        }
        if (c->blocked_ms != 0 && now - c->blocked_ms >= SEND_TIMEOUT_MS) {
            close_later(l, c, "answers not read for 5000 ms");
            continue;
        }
        if (c->w.ending) { /* its ERR waits for the client to read it: look again later */
            c->w.last_sent_ms = now;
            unlink_conn(l, c);
            append_conn(l, c);
            continue;
        }
        if (!serve(l, c, now)) /* no heartbeat went: out of memory */
            close_later(l, c, NO_ANSWER);
    }
}

/* ---------- events ---------- */

/* A stream takes no requests: what its client sends is read and dropped, to learn when
 * it closes. */
static void read_input(struct watch_loop *l, struct watch_conn *c)
{
    uint8_t sink[4096];
    for (int i = 0; i < INPUT_READS; i++) {
        ssize_t got = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (got > 0)
            continue;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        close_later(l, c, ""); /* closed, or reset */
        return;
    }
}

static void handle_events(struct watch_loop *l, const struct epoll_event *evs, int count,
                          uint64_t now)
{
    for (int i = 0; i < count; i++) {
        struct watch_conn *c = evs[i].data.ptr;
        if (c == NULL) {
            event_loop_drain(&l->e);
            atomic_store(&l->wake_pending, false);
            continue;
        }
        if (c->closing)
            continue;
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            read_input(l, c);
        if (!c->closing && (evs[i].events & EPOLLOUT) && unsent(c) > 0) {
            flush_out(l, c);
            serve(l, c, now); /* room again: it may have more */
        }
    }
}

/* The streams handed over since the last call: indexed, and their first answer sent. */
static void take_adopted(struct watch_loop *l, uint64_t now)
{
    struct watch_conn *c = event_loop_take(&l->e);
    while (c != NULL) {
        struct watch_conn *next = event_loop_next(&l->e, c);
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                  .data.ptr = c };
        node_watch_open(l->node, &c->w);
        append_conn(l, c);
        if (epoll_ctl(l->e.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            close_later(l, c, "cannot watch the connection (epoll)");
        serve(l, c, now);
        c = next;
    }
}

/* How long epoll may wait: until the next round if changes wait, else until the next
 * heartbeat is due. */
static int wait_ms(const struct watch_loop *l, uint64_t now)
{
    uint64_t until = now + IDLE_WAIT_MS;
    if (news(l) && l->last_round_ms + WATCH_GAP_MS < until)
        until = l->last_round_ms + WATCH_GAP_MS;
    if (l->head != NULL) {
        uint64_t beat_at = l->head->w.last_sent_ms + PROTO_WATCH_HEARTBEAT_MS;
        if (l->beats_behind && beat_at < now + 1)
            beat_at = now + 1; /* paced: the next pass in a ms */
        if (beat_at < until)
            until = beat_at;
    }
    return until <= now ? 0 : (int)(until - now);
}

static void close_all(struct watch_loop *l)
{
    while (l->head != NULL)
        close_later(l, l->head, "");
    for (struct watch_conn *c = l->more; c != NULL; c = c->more_next)
        c->in_more = false;
    l->more = NULL;
    reap(l);
}

static void *loop_main(void *arg)
{
    struct watch_loop *l = arg;
    node_name_thread("watchers", -1);
    struct epoll_event evs[LOOP_EVENTS];
    while (!atomic_load(&l->e.stopping)) {
        int count = epoll_wait(l->e.ep, evs, LOOP_EVENTS, wait_ms(l, rk_clock_ms()));
        uint64_t now = rk_clock_ms();
        if (count > 0)
            handle_events(l, evs, count, now);
        take_adopted(l, now);
        if (news(l) && now >= l->last_round_ms + WATCH_GAP_MS)
            run_round(l, now);
        beat(l, now);
        reap(l);
    }
    close_all(l);
    return NULL;
}

/* ---------- the API ---------- */

int watch_loop_start(struct node *n)
{
    struct watch_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return RK_ERR_NOMEM;
    l->node = n;
    atomic_init(&l->wake_pending, false);
    l->seen = atomic_load(&n->watch.applied);
    n->watch.wake_ctx = l; /* before the thread and the client loop: they wake it */
    n->watch.wake = wake;
    if (event_loop_start(&l->e, offsetof(struct watch_conn, next), loop_main, l) != RK_OK) {
        n->watch.wake = NULL;
        free(l);
        return RK_ERR_IO;
    }
    n->watch_loop = l;
    return RK_OK;
}

/* A stream the loop will not serve: stopped, its connection closed, its slot given back. */
static void drop_unserved(struct node *n, int fd, struct node_watcher *w)
{
    node_watch_stop(n, w);
    close(fd);
    atomic_fetch_sub(&n->n_clients, 1);
}

/* A stream handed over as the loop stopped. */
static void drop_late(void *ctx, void *item)
{
    struct watch_conn *c = item;
    drop_unserved(ctx, c->fd, &c->w);
    free(c);
}

void watch_loop_adopt(struct node *n, int fd, const char *addr, const struct node_watcher *w)
{
    struct watch_loop *l = n->watch_loop;
    struct watch_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        struct node_watcher copy = *w;
        drop_unserved(n, fd, &copy);
        return;
    }
    c->fd = fd;
    c->w = *w;
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    net_set_nodelay(fd); /* a one-way stream: Nagle would hold each answer for the
                            watcher's delayed ACK of the last */
    if (event_loop_post(&l->e, c))
        wake(l);
    else
        drop_late(n, c);
}

void watch_loop_stop(struct node *n)
{
    struct watch_loop *l = n->watch_loop;
    if (l == NULL)
        return;
    event_loop_stop(&l->e, drop_late, n);
}
