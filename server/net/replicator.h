/* server/net/replicator.h - one replicator thread per peer: it owns the outgoing link to
 * that peer (peer_link.h), waits on the peer's condition variable in node/ for messages,
 * takes them with the send token, and writes them, connecting and reconnecting with a
 * short backoff. It also gives node/ its way to write to an idle link without blocking
 * (n->transport), so node/ never calls net/ by name. */
#ifndef RK_REPLICATOR_H
#define RK_REPLICATOR_H

struct node;

/* After node_open, before node_start: one link and thread per peer; sets n->transport.
 * RK_OK or RK_ERR_NOMEM. */
int replicators_start(struct node *n);
/* After node_stop (no send token is held then): joins the threads, closes the links. */
void replicators_stop(struct node *n);

#endif
