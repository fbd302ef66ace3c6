/* server/net/conn.c - one accepted connection on its own thread: reads the HELLO, then
 * either a peer's Raft messages (stepped into the core) or a client's requests (answered).
 * Anything malformed closes the connection with one log line; nothing crashes the server. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../common/errors.h"
#include "../../common/net.h"
#include "../node/node.h"
#include "conn.h"

#define HELLO_TIMEOUT_MS 5000
#define CLIENT_SEND_TIMEOUT_MS 5000
#define REASON_LEN 160

struct conn {
    struct node *node;
    int fd;
    char addr[96]; /* "host:port" of the remote side */
};

static void conn_close(struct conn *c, const char *reason)
{
    if (reason != NULL)
        node_log(c->node, "closing connection from %s: %s", c->addr, reason);
    close(c->fd);
    free(c);
}

/* Reads one frame. On failure fills reason (empty for a clean close between frames). */
static int read_frame(struct conn *c, uint8_t **payload, size_t *len, char *reason)
{
    *payload = NULL;
    *len = 0;
    reason[0] = '\0';
    uint8_t hdr[4];
    int rc = net_read_full(c->fd, hdr, sizeof(hdr));
    if (rc == RK_OK) {
        uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
                     (uint32_t)hdr[3];
        if (n == 0 || n > PROTO_MAX_FRAME) {
            snprintf(reason, REASON_LEN, "length %u over the maximum %u", (unsigned)n,
                     (unsigned)PROTO_MAX_FRAME);
            if (n == 0)
                snprintf(reason, REASON_LEN, "empty frame (length 0)");
            return RK_ERR_TOOBIG;
        }
        *payload = malloc(n);
        if (*payload == NULL) {
            snprintf(reason, REASON_LEN, "out of memory for a %u-byte frame", (unsigned)n);
            return RK_ERR_NOMEM;
        }
        rc = net_read_full(c->fd, *payload, n);
        if (rc == RK_OK) {
            *len = n;
            return RK_OK;
        }
        free(*payload);
        *payload = NULL;
        if (rc == RK_ERR_CLOSED)
            rc = RK_ERR_IO;
    }
    if (rc == RK_ERR_TIMEOUT)
        snprintf(reason, REASON_LEN, "timed out waiting for a frame");
    else if (rc != RK_ERR_CLOSED)
        snprintf(reason, REASON_LEN, "connection cut mid-frame (%s)", rk_strerror(rc));
    return rc;
}

/* Steps one Raft message from peer into the core. The sender is the handshake's peer,
 * whatever the frame says. false if the node is stopping. */
static bool step_message(struct node *n, int peer, struct raft_msg *m)
{
    m->from = peer;
    m->to = n->self;
    pthread_mutex_lock(&n->mu);
    bool running = !n->shutdown;
    if (running) {
        raft_step(n->raft, node_now_ms(), m);
        node_after_step(n);
    }
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
    if (!n->shutdown) {
        raft_peer_disconnected(n->raft, node_now_ms(), peer);
        node_after_step(n);
    }
    pthread_mutex_unlock(&n->mu);
}

static void peer_loop(struct conn *c, int peer)
{
    char reason[REASON_LEN];
    for (;;) {
        uint8_t *payload;
        size_t len;
        int rc = read_frame(c, &payload, &len, reason);
        if (rc == RK_ERR_CLOSED || rc == RK_ERR_IO)
            peer_gone(c->node, peer);
        if (rc != RK_OK)
            break;
        struct raft_msg m;
        rc = decode_peer_frame(payload, len, &m, reason);
        free(payload);
        if (rc != RK_OK)
            break;
        bool running = step_message(c->node, peer, &m);
        raft_msg_free_entries(&m);
        if (!running)
            break;
    }
    conn_close(c, reason[0] != '\0' ? reason : NULL);
}

static int send_out(struct conn *c, struct proto_buf *out)
{
    int rc = out->len > 0 ? net_write_full(c->fd, out->data, out->len) : RK_OK;
    out->len = 0;
    return rc;
}

/* Handles one client frame, appending the response to out. false = close the connection
 * (reason filled). A request with an unknown op gets an error reply and the loop goes on. */
static bool client_frame(struct conn *c, const uint8_t *payload, size_t len,
                         struct proto_buf *out, char *reason)
{
    int type = proto_frame_type(payload, len);
    if (type != PROTO_CLIENT_REQ) {
        snprintf(reason, REASON_LEN, "unexpected frame type %d on a client connection", type);
        return false;
    }
    struct proto_client_req req;
    int rc = proto_decode_client_req(payload, len, &req);
    if (rc != RK_OK && len >= 2 && (payload[1] < PROTO_OP_GET || payload[1] > PROTO_OP_REGISTER))
        return node_client_error(out, "unknown command") == RK_OK;
    if (rc != RK_OK) {
        snprintf(reason, REASON_LEN, "bad client request: %s", rk_strerror(rc));
        return false;
    }
    rc = node_client_handle(c->node, &req, out);
    if (rc != RK_OK) {
        out->len = 0;
        rc = node_client_error(out, rk_strerror(rc));
    }
    return rc == RK_OK;
}

static void client_loop(struct conn *c)
{
    struct proto_buf out = { 0 };
    char reason[REASON_LEN];
    for (;;) {
        uint8_t *payload;
        size_t len;
        if (read_frame(c, &payload, &len, reason) != RK_OK)
            break;
        bool keep = client_frame(c, payload, len, &out, reason);
        free(payload);
        if (!keep || send_out(c, &out) != RK_OK)
            break;
    }
    proto_buf_free(&out);
    conn_close(c, reason[0] != '\0' ? reason : NULL);
}

/* After the HELLO: no read timeout (idle connections just wait); bounded client sends. */
static void set_steady_timeouts(int fd, bool client)
{
    net_set_timeouts(fd, 0);
    if (client) {
        struct timeval tv = { .tv_sec = CLIENT_SEND_TIMEOUT_MS / 1000, .tv_usec = 0 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
}

/* A peer's name from its HELLO: its registry id, or -1 (unknown or our own name). */
static int peer_id(struct node *n, const char *name)
{
    int id = registry_find(&n->reg, name);
    return id == n->self ? -1 : id;
}

static void serve_hello(struct conn *c, const uint8_t *payload, size_t len)
{
    int type = 0;
    char name[64] = "";
    char reason[REASON_LEN + 64];
    int rc = proto_decode_hello(payload, len, &type, name);
    if (rc != RK_OK) {
        snprintf(reason, sizeof(reason), "bad hello: %s", rk_strerror(rc));
        conn_close(c, reason);
        return;
    }
    if (type == PROTO_HELLO_CLIENT) {
        set_steady_timeouts(c->fd, true);
        client_loop(c);
        return;
    }
    int id = peer_id(c->node, name);
    if (id < 0) {
        snprintf(reason, sizeof(reason), "peer hello from unknown server '%s'", name);
        conn_close(c, reason);
        return;
    }
    set_steady_timeouts(c->fd, false);
    peer_loop(c, id);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    char reason[REASON_LEN];
    uint8_t *payload;
    size_t len;
    net_set_timeouts(c->fd, HELLO_TIMEOUT_MS);
    if (read_frame(c, &payload, &len, reason) != RK_OK) {
        conn_close(c, reason[0] != '\0' ? reason : NULL);
        return NULL;
    }
    serve_hello(c, payload, len);
    free(payload);
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

void conn_spawn(struct node *n, int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->node = n;
    c->fd = fd;
    format_addr(addr, addr_len, c->addr, sizeof(c->addr));
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, conn_main, c) != 0) {
        node_log(n, "cannot start a thread for %s; closing it", c->addr);
        close(fd);
        free(c);
    }
    pthread_attr_destroy(&attr);
}
