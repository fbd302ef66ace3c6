/* server/net/client_loop.h - the client connections of a server, served by one thread
 * with epoll: it reads the requests that arrived together, starts them all under one
 * hold of the node lock, and answers each once its entry is applied (or its read is
 * ready). A completed request is queued by whichever thread completed it, and the loop is
 * woken once per batch through an eventfd, so a write costs no thread switch of its own. */
#ifndef RK_CLIENT_LOOP_H
#define RK_CLIENT_LOOP_H

#include <stdint.h>

#include "../../common/frame_reader.h"

struct node;
struct client_loop;

/* Creates the loop and its thread; sets n->client_loop. RK_OK or RK_ERR_NOMEM/IO. */
int client_loop_start(struct node *n);
/* Hands a client connection (its HELLO read, its slot among --max-clients taken) to the
 * loop, with whatever the reader already holds past the HELLO. Takes the fd and the
 * reader's buffer. addr names the remote side in logs. */
void client_loop_adopt(struct node *n, struct frame_reader *in, const char *addr);
/* Stops the thread: pending requests are answered "shutting down" (or with a redirect
 * where retrying is safe), connections closed. Before node_stop. */
void client_loop_stop(struct node *n);

#endif
