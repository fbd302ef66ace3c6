/* server/net/peer_link.c - the outgoing connection to one peer (see peer_link.h). */
#include "peer_link.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/errors.h"
#include "../../common/net.h"
#include "../node/node.h"

#define CONNECT_TIMEOUT_MS 200
#define SEND_TIMEOUT_MS 1000
#define LINK_ERR_LEN 256

void peer_link_init(struct peer_link *l, struct node *n, int peer)
{
    *l = (struct peer_link){ .node = n, .peer = peer, .fd = -1, .state = PEER_LINK_NEW };
}

void peer_link_set_addr(struct peer_link *l, const struct node_peer_addr *addr)
{
    bool moved = l->addr.gen != 0 && l->addr.gen != addr->gen;
    if (moved && l->fd >= 0) {
        close(l->fd); /* the rest of a frame is dropped with it, see peer_link_send */
        l->fd = -1;
    }
    if (moved)
        l->state = PEER_LINK_NEW; /* a new address: say whether it is reachable */
    l->addr = *addr;
}


/* The connection is gone: closes it, and logs only when the link changes state, not on
 * every retry. */
static void link_down(struct peer_link *l, const char *why)
{
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    const struct node_peer_addr *s = &l->addr;
    if (l->state == PEER_LINK_UP)
        node_log(l->node, "lost connection to %s: %s", s->name, why);
    else if (l->state == PEER_LINK_NEW)
        node_log(l->node, "cannot reach %s at %s:%u: %s (will keep retrying)", s->name, s->host,
                 (unsigned)s->port, why);
    l->state = PEER_LINK_DOWN;
}

static void link_up(struct peer_link *l)
{
    const struct node_peer_addr *s = &l->addr;
    if (l->state != PEER_LINK_UP)
        node_log(l->node, "connected to %s at %s:%u", s->name, s->host, (unsigned)s->port);
    l->state = PEER_LINK_UP;
}

/* Connects and sends HELLO_PEER with our name and cluster id. */
static bool link_connect(struct peer_link *l)
{
    const struct node_peer_addr *s = &l->addr;
    char err[LINK_ERR_LEN];
    l->fd = net_connect(s->host, s->port, CONNECT_TIMEOUT_MS, err, sizeof(err));
    if (l->fd < 0) {
        link_down(l, err);
        return false;
    }
    struct proto_buf hello = { 0 };
    int rc = net_set_timeouts(l->fd, SEND_TIMEOUT_MS);
    if (rc == RK_OK)
        rc = proto_encode_hello_peer_at(&hello, l->node->name, l->node->cluster_id,
                                        l->addr.self_id, l->node->listen_host,
                                        l->node->listen_port);
    if (rc == RK_OK)
        rc = net_write_full(l->fd, hello.data, hello.len);
    proto_buf_free(&hello);
    if (rc != RK_OK) {
        link_down(l, rk_strerror(rc));
        return false;
    }
    link_up(l);
    return true;
}

/* The peer never writes on this connection, so readable means it closed (or reset). */
static bool link_stale(const struct peer_link *l)
{
    struct pollfd pfd = { .fd = l->fd, .events = POLLIN };
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    char c;
    ssize_t r = recv(l->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Closes a connection the peer closed, logging the loss. */
static void drop_if_stale(struct peer_link *l)
{
    if (l->fd >= 0 && link_stale(l))
        link_down(l, "closed by the peer");
}

static bool write_all(struct peer_link *l, const uint8_t *data, size_t len)
{
    if (len == 0)
        return true;
    int rc = net_write_full(l->fd, data, len);
    if (rc == RK_OK)
        return true;
    char err[LINK_ERR_LEN];
    int e = errno;
    link_down(l, rc == RK_ERR_TIMEOUT ? "send timed out" : strerror_r(e, err, sizeof(err)));
    return false;
}

bool peer_link_send(struct peer_link *l, const uint8_t *data, size_t len)
{
    if (len == 0 && l->backlog.len == 0)
        return true;
    drop_if_stale(l);
    if (l->fd < 0 && !l->backlog_whole)
        l->backlog.len = 0; /* the rest of a frame begun on a connection now gone */
    bool ok = l->fd >= 0 || link_connect(l);
    if (ok)
        ok = write_all(l, l->backlog.data, l->backlog.len) && write_all(l, data, len);
    l->backlog.len = 0;
    return ok;
}

/* Writes from data as much as the socket takes now; returns how much went (0 if the
 * connection failed: a new one gets everything from its start). */
static size_t write_nowait(struct peer_link *l, const uint8_t *data, size_t len)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t w = send(l->fd, data + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            char err[LINK_ERR_LEN];
            link_down(l, w == 0 ? "send wrote nothing" : strerror_r(errno, err, sizeof(err)));
            return 0;
        }
    }
    return sent;
}

bool peer_link_send_nowait(struct peer_link *l, const uint8_t *data, size_t len)
{
    drop_if_stale(l);
    size_t sent = l->fd >= 0 ? write_nowait(l, data, len) : 0;
    if (sent == len)
        return true;
    l->backlog.len = 0;
    l->backlog_whole = sent == 0;
    if (proto_buf_append(&l->backlog, data + sent, len - sent) != RK_OK)
        l->backlog.len = 0; /* dropped like a lost packet */
    return false;
}

bool peer_link_is_up(const struct peer_link *l)
{
    return l->fd >= 0 && l->state == PEER_LINK_UP;
}

void peer_link_close(struct peer_link *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    proto_buf_free(&l->backlog);
}
