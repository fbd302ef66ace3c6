/* server/net/peer_link.h - the outgoing TCP connection to one peer: connect with a
 * timeout, HELLO_PEER (our name and cluster id), blocking writes with a send timeout for
 * the replicator, non-blocking writes for a thread that has just stepped the core, and a
 * backlog of what a non-blocking write left. The peer never writes on this connection,
 * so a readable socket means it was closed. Used by one thread at a time: the holder of
 * the peer's send token (server/node/peers.c). */
#ifndef RK_PEER_LINK_H
#define RK_PEER_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/proto.h"
#include "../node/node.h"

enum peer_link_state { PEER_LINK_NEW, PEER_LINK_UP, PEER_LINK_DOWN };

struct peer_link {
    struct node *node;           /* our name, address and cluster id, logs */
    int peer;                    /* the peer's node id */
    struct node_peer_addr addr;  /* where it listens, as the send token's taker saw it */
    int fd;                      /* -1: not connected */
    enum peer_link_state state;  /* logged only when it changes */
    struct proto_buf backlog;    /* what a non-blocking write could not write */
    bool backlog_whole;          /* the backlog starts at a frame boundary; else it is the
                                    rest of a frame, which only fits the connection the
                                    frame began on */
};

/* Not connected yet; nothing is allocated. */
void peer_link_init(struct peer_link *l, struct node *n, int peer);
/* The peer's address as of now: a new one (another generation) closes the connection, to
 * reconnect there. */
void peer_link_set_addr(struct peer_link *l, const struct node_peer_addr *addr);
/* Writes the backlog, then data[0..len), blocking (each write within the send timeout),
 * connecting first if needed. A connection the peer closed is replaced, but never with
 * the rest of a frame begun on the old one: that rest is dropped. true if all of it went;
 * false if the link is down (logged when it changes), with the backlog and data lost
 * (Raft sends again, §5.3). */
bool peer_link_send(struct peer_link *l, const uint8_t *data, size_t len);
/* Writes what the socket takes now, never blocking; the rest becomes the backlog (which
 * must be empty before). true if all of it went. */
bool peer_link_send_nowait(struct peer_link *l, const uint8_t *data, size_t len);
/* Connected, as far as the last write knew. */
bool peer_link_is_up(const struct peer_link *l);
/* Closes the connection and frees the backlog. */
void peer_link_close(struct peer_link *l);

#endif
