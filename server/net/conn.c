/* server/net/conn.c - one accepted connection on its own thread: reads the HELLO, then
 * either a peer's Raft messages (stepped into the core) or a client's requests (answered).
 * Anything malformed closes the connection with a log line (one per kind of problem per
 * 10 s, so a flood cannot fill the disk); nothing crashes the server.
 * The limits of node.h apply here (issue 7): frame sizes, the number of clients, idle and
 * half-sent-frame timeouts, and peer identity (a registry name and our cluster id). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../../common/frame_reader.h"
#include "../../common/net.h"
#include "../../common/rate_limit.h"
#include "../node/node.h"
#include "client_loop.h"
#include "conn.h"

#define HELLO_MAX_FRAME 1024u            /* a HELLO is at most 77 bytes */
#define REFUSE_DRAIN_MS 200              /* read what a refused client sent, so the close
                                            does not reset the connection before it reads
                                            our ERR frame */
#define REFUSE_DRAIN_BYTES (64u * 1024)
#define CONN_STACK_BYTES (512u * 1024)   /* a thousand clients are a thousand threads */
#define LOG_QUIET_MS 10000               /* one line per kind of refusal per 10 s */
#define REASON_LEN 256
#define NO_DEADLINE FRAME_READER_NO_DEADLINE
#define PEER_STEP_BATCH 16               /* buffered peer messages stepped per lock hold */

struct conn {
    struct node *node;
    int fd;
    uint64_t accepted_ms;
    char addr[96]; /* "host:port" of the remote side */
    struct frame_reader in; /* received, not consumed yet (common/frame_reader.h) */
};

/* ---- logging a flood of refusals without flooding the log ---- */

#define QUIET_SLOTS 8

/* The last few reasons logged, so that a flood of one kind (or a few kinds, interleaved)
 * of refusal gives one line per LOG_QUIET_MS each. */
struct quiet_slot {
    char why[REASON_LEN];     /* the kind of reason (quiet_kind) */
    struct rk_rate_limit limit;
};

static pthread_mutex_t quiet_mu = PTHREAD_MUTEX_INITIALIZER;
static struct quiet_slot quiet_slots[QUIET_SLOTS];

/* The kind of a reason: the reason without its digits, so that "frame length 123 over
 * the limit" and "frame length 456 over the limit" count as one. */
static void quiet_kind(const char *why, char *kind, size_t len)
{
    size_t n = 0;
    for (; *why != '\0' && n + 1 < len; why++)
        if (*why < '0' || *why > '9')
            kind[n++] = *why;
    kind[n] = '\0';
}

/* The slot of kind, or the least recently logged one (reset for kind). Under quiet_mu. */
static struct quiet_slot *quiet_slot_for(const char *kind)
{
    struct quiet_slot *oldest = &quiet_slots[0];
    for (int i = 0; i < QUIET_SLOTS; i++) {
        if (strcmp(quiet_slots[i].why, kind) == 0)
            return &quiet_slots[i];
        if (quiet_slots[i].limit.last_ms < oldest->limit.last_ms)
            oldest = &quiet_slots[i];
    }
    snprintf(oldest->why, sizeof(oldest->why), "%s", kind);
    oldest->limit = (struct rk_rate_limit){ 0 };
    return oldest;
}

/* Logs "what from ADDR: why", unless the same kind of why was logged in the last
 * LOG_QUIET_MS: then it is counted, and the next line logged for it says how many were
 * left out. */
void conn_log_quietly(struct node *n, const char *what, const char *addr, const char *why)
{
    char kind[REASON_LEN];
    quiet_kind(why, kind, sizeof(kind));
    uint64_t now = rk_clock_ms();
    pthread_mutex_lock(&quiet_mu);
    unsigned long left_out = 0;
    bool pass = rk_rate_limit_pass(&quiet_slot_for(kind)->limit, now, LOG_QUIET_MS, &left_out);
    pthread_mutex_unlock(&quiet_mu);
    if (!pass)
        return;
    if (left_out > 0)
        node_log(n, "%s from %s: %s (and %lu more like it since the last such line)", what,
                 addr, why, left_out);
    else
        node_log(n, "%s from %s: %s", what, addr, why);
}

static void conn_close(struct conn *c, const char *reason)
{
    if (reason != NULL && reason[0] != '\0')
        conn_log_quietly(c->node, "closing connection", c->addr, reason);
    close(c->fd);
    frame_reader_free(&c->in);
    free(c);
}

/* ---- reading with deadlines ---- */

/* Reads exactly len bytes before deadline (rk_clock_ms; NO_DEADLINE: none). RK_OK,
 * RK_ERR_CLOSED (EOF before the first byte), RK_ERR_IO (EOF after some, or an error),
 * RK_ERR_TIMEOUT. A deadline, unlike SO_RCVTIMEO, also stops a peer that trickles one
 * byte at a time (slowloris). */
static int recv_until(int fd, uint8_t *buf, size_t len, uint64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        int wait_ms = -1;
        if (deadline != NO_DEADLINE) {
            uint64_t now = rk_clock_ms();
            if (now >= deadline)
                return RK_ERR_TIMEOUT;
            wait_ms = deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int r = poll(&pfd, 1, wait_ms);
        if (r < 0 && errno != EINTR)
            return RK_ERR_IO;
        if (r <= 0)
            continue; /* EINTR, or the deadline: checked at the top */
        ssize_t n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            return got == 0 ? RK_ERR_CLOSED : RK_ERR_IO;
        else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return RK_ERR_IO;
    }
    return RK_OK;
}

/* Whether a whole frame is buffered already (reading it will not wait). */
static bool frame_buffered(const struct conn *c)
{
    return frame_reader_buffered(&c->in);
}

/* Reads one frame; *payload points into the connection's buffer and stays valid until
 * the next read_frame. On failure fills reason (empty for a clean close between
 * frames); RK_ERR_TOOBIG means the length prefix was 0 or over rules->max (*len holds
 * it). */
static int read_frame(struct conn *c, const struct frame_reader_rules *rules,
                      uint8_t **payload, size_t *len, char *reason)
{
    return frame_reader_read(&c->in, rules, payload, len, reason, REASON_LEN);
}

/* ---- refusing a client politely ---- */

/* Sends an ERR frame (best effort, never blocking), then closes so that the client can
 * still read it: stop writing, drain what it sent for a moment, close. */
static void refuse_fd(int fd, const char *msg)
{
    struct proto_buf out = { 0 };
    if (node_client_error(&out, msg) == RK_OK)
        (void)send(fd, out.data, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    proto_buf_free(&out);
    shutdown(fd, SHUT_WR);
    uint64_t deadline = rk_clock_ms() + REFUSE_DRAIN_MS;
    uint8_t sink[4096];
    for (size_t drained = 0; drained < REFUSE_DRAIN_BYTES; drained += sizeof(sink))
        if (recv_until(fd, sink, sizeof(sink), deadline) != RK_OK)
            break;
}

/* ---- peers ---- */

/* Steps Raft messages from peer into the node, all under one hold of the lock, and
 * sends what they release for idle links from this thread (answers that need nothing
 * persisted). It never writes the log: it must keep reading the leader's messages (its
 * heartbeats hold off an election) while the io thread waits on the disk, which can take
 * 100 ms and more while a snapshot is flushed. false if the node is stopping. */
static bool step_messages(struct node *n, int peer, struct raft_msg *msgs, int count)
{
    struct node_outbox ob = { .any = false };
    pthread_mutex_lock(&n->mu);
    bool running = node_step_peer_msgs(n, peer, msgs, count, &ob);
    node_outbox_flush(n, &ob);
    pthread_mutex_unlock(&n->mu);
    return running;
}

/* Decodes one peer frame into m, or fills reason. */
static int decode_peer_frame(const uint8_t *payload, size_t len, struct raft_msg *m,
                             char *reason)
{
    int type = proto_frame_type(payload, len);
    if (type != PROTO_RAFT) {
        snprintf(reason, REASON_LEN, "unexpected frame type %d on a peer connection", type);
        return RK_ERR_PROTO;
    }
    int rc = proto_decode_raft_msg(payload, len, m);
    if (rc != RK_OK)
        snprintf(reason, REASON_LEN, "bad raft message: %s", rk_strerror(rc));
    return rc;
}

/* The peer's connection closed or was reset: most likely its process died. If it was
 * our leader, the core elects sooner (issue: fast failover; pre-vote keeps a false alarm
 * harmless). */
static void peer_gone(struct node *n, int peer)
{
    pthread_mutex_lock(&n->mu);
    node_peer_gone(n, peer);
    pthread_mutex_unlock(&n->mu);
}

/* Reads and decodes the next frame into m; with wait false only if one is buffered
 * whole. RK_OK, RK_ERR_AGAIN (nothing buffered, wait false), or the error with reason
 * filled (and the peer reported gone if its connection closed). */
static int next_peer_msg(struct conn *c, int peer, const struct frame_reader_rules *rules,
                         bool wait, struct raft_msg *m, char *reason)
{
    if (!wait && !frame_buffered(c))
        return RK_ERR_AGAIN;
    uint8_t *payload;
    size_t len;
    int rc = read_frame(c, rules, &payload, &len, reason);
    if (rc == RK_ERR_CLOSED || rc == RK_ERR_IO)
        peer_gone(c->node, peer);
    if (rc == RK_OK)
        rc = decode_peer_frame(payload, len, m, reason);
    return rc;
}

/* A peer may stay silent forever (it has nothing to send), but a frame it begins must be
 * complete within the frame timeout; a batch can be as large as the protocol allows.
 * The frames that came together are stepped together. */
static void peer_loop(struct conn *c, int peer)
{
    node_name_thread("peer", peer);
    const struct node_limits *lim = &c->node->limits;
    struct frame_reader_rules rules = { .max = PROTO_MAX_FRAME, .idle_deadline = NO_DEADLINE,
                                        .frame_ms = lim->frame_timeout_ms,
                                        .hard_deadline = NO_DEADLINE };
    char reason[REASON_LEN];
    struct raft_msg msgs[PEER_STEP_BATCH];
    int rc = RK_OK;
    while (rc == RK_OK) {
        int count = 0;
        while (count < PEER_STEP_BATCH &&
               (rc = next_peer_msg(c, peer, &rules, count == 0, &msgs[count], reason)) == RK_OK)
            count++;
        if (rc == RK_ERR_AGAIN || count == PEER_STEP_BATCH)
            rc = RK_OK;
        if (count > 0 && !step_messages(c->node, peer, msgs, count))
            rc = RK_ERR_SHUTDOWN;
        for (int i = 0; i < count; i++)
            raft_msg_free_entries(&msgs[i]);
    }
    conn_close(c, reason);
}

/* ---- clients: served by the client loop (client_loop.c) ---- */

/* One of max slots counted by count (a connection of some kind), or false. */
static bool take_slot(atomic_uint *count, uint32_t max)
{
    unsigned before = atomic_fetch_add(count, 1);
    if (before < max)
        return true;
    atomic_fetch_sub(count, 1);
    return false;
}

static void too_many_clients(struct conn *c)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "too many connections (the limit is %" PRIu32
             "); try again later", c->node->limits.max_clients);
    refuse_fd(c->fd, msg);
    conn_log_quietly(c->node, "refusing a client", c->addr, msg);
    conn_close(c, NULL);
}

/* ---- the handshake ---- */

/* A peer's id if it may talk to us: same cluster id, and a member of the configuration
 * in effect or a server our configuration does not know yet (node_peer_hello). Otherwise
 * -1 with the reason (no address in it) in why. */
static int check_peer(struct node *n, const struct proto_hello *h, char *why, size_t whylen)
{
    if (h->cluster_id != n->cluster_id) {
        snprintf(why, whylen, "peer hello from '%s' with cluster id %016" PRIx64 ", ours is "
                 "%016" PRIx64 " (another cluster, or a different registry?)", h->name,
                 h->cluster_id, n->cluster_id);
        return -1;
    }
    pthread_mutex_lock(&n->mu);
    int id = node_peer_hello(n, h, why, whylen);
    pthread_mutex_unlock(&n->mu);
    return id;
}

static void serve_hello(struct conn *c, const uint8_t *payload, size_t len)
{
    struct proto_hello h;
    char reason[REASON_LEN];
    int rc = proto_decode_hello_msg(payload, len, &h);
    if (rc != RK_OK) {
        snprintf(reason, sizeof(reason), "bad hello: %s", rk_strerror(rc));
        conn_close(c, reason);
        return;
    }
    if (h.type == PROTO_HELLO_CLIENT) {
        /* At most --max-clients client connections are served. */
        if (!take_slot(&c->node->n_clients, c->node->limits.max_clients)) {
            too_many_clients(c);
            return;
        }
        client_loop_adopt(c->node, &c->in, c->addr); /* with what came after the HELLO */
        free(c);
        return;
    }
    int id = check_peer(c->node, &h, reason, sizeof(reason));
    if (id < 0) {
        conn_log_quietly(c->node, "refusing peer connection", c->addr, reason);
        conn_close(c, NULL);
        return;
    }
    peer_loop(c, id);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct node *n = c->node;
    char reason[REASON_LEN], idle_why[64];
    uint8_t *payload;
    size_t len;
    node_name_thread("conn", -1);
    /* The whole HELLO must come within the frame timeout of the accept. */
    uint64_t deadline = c->accepted_ms + n->limits.frame_timeout_ms;
    snprintf(idle_why, sizeof(idle_why), "no hello within %" PRIu32 " ms",
             n->limits.frame_timeout_ms);
    struct frame_reader_rules rules = { .max = HELLO_MAX_FRAME, .idle_deadline = deadline,
                                        .frame_ms = n->limits.frame_timeout_ms,
                                        .hard_deadline = deadline, .idle_why = idle_why };
    int rc = read_frame(c, &rules, &payload, &len, reason);
    atomic_fetch_sub(&n->n_unidentified, 1);
    if (rc != RK_OK) {
        conn_close(c, reason);
        return NULL;
    }
    serve_hello(c, payload, len);
    return NULL;
}

static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    char host[64], port[16]; /* numeric forms fit */
    if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, outlen, "?");
    else
        snprintf(out, outlen, "%s:%s", host, port);
}

static void start_thread(struct conn *c)
{
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, CONN_STACK_BYTES);
    if (pthread_create(&t, &attr, conn_main, c) != 0) {
        atomic_fetch_sub(&c->node->n_unidentified, 1);
        conn_log_quietly(c->node, "refusing a connection", c->addr, "cannot start a thread");
        refuse_fd(c->fd, "server overloaded (cannot start a thread); try again later");
        close(c->fd);
        free(c);
    }
    pthread_attr_destroy(&attr);
}

void conn_spawn(struct node *n, int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    char where[96];
    format_addr(addr, addr_len, where, sizeof(where));
    /* At most --max-clients connections may be waiting for their HELLO (each for at
     * most the frame timeout); past that a new one is refused at once, without a
     * thread. */
    if (!take_slot(&n->n_unidentified, n->limits.max_clients)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "too many connections (the limit is %" PRIu32
                 "); try again later", n->limits.max_clients);
        conn_log_quietly(n, "refusing a connection", where, msg);
        struct proto_buf out = { 0 }; /* no draining here: the listener must not wait */
        if (node_client_error(&out, msg) == RK_OK)
            (void)send(fd, out.data, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        proto_buf_free(&out);
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        atomic_fetch_sub(&n->n_unidentified, 1);
        close(fd);
        return;
    }
    c->node = n;
    c->fd = fd;
    frame_reader_init(&c->in, fd);
    c->accepted_ms = rk_clock_ms();
    snprintf(c->addr, sizeof(c->addr), "%s", where);
    start_thread(c);
}
