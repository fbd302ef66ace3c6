/* server/net/watch_loop.h - the watch streams of a server, served by a thread of their own
 * with epoll, so that fanning changes out to watchers never delays the answers to
 * requests (server/net/client_loop.c) and an idle watcher costs nothing per request. */
#ifndef RK_WATCH_LOOP_H
#define RK_WATCH_LOOP_H

struct node;
struct node_watcher;

/* Creates the loop and its thread; sets n->watch_loop and the node's watch wake-up.
 * Before the client loop starts. RK_OK or RK_ERR_NOMEM/IO. */
int watch_loop_start(struct node *n);
/* Hands over a client connection whose WATCH node_watch_check accepted: the fd (still
 * counted among --max-clients) and the stream, whose prefix it takes. addr names the
 * remote side in logs. Any thread; if the loop has stopped, the stream is stopped and the
 * connection closed. */
void watch_loop_adopt(struct node *n, int fd, const char *addr, const struct node_watcher *w);
/* Stops the thread and closes every stream. After client_loop_stop. */
void watch_loop_stop(struct node *n);

#endif
