/* server/net/conn.h - one accepted connection on its own detached thread: a HELLO frame
 * says whether it carries a peer's Raft messages (served on that thread) or a client's
 * requests (handed to the client loop, client_loop.h). */
#ifndef RK_CONN_H
#define RK_CONN_H

#include <sys/socket.h>

struct node;

/* Serves fd on a new detached thread (which closes it). addr is the remote address, for
 * logs. On failure closes fd and logs. */
void conn_spawn(struct node *n, int fd, const struct sockaddr *addr, socklen_t addr_len);
/* Logs "what from ADDR: why", unless the same kind of why (digits aside) was logged in
 * the last 10 s: then it is counted, and the next line for it says how many were left
 * out. A flood of refusals cannot fill the log. */
void conn_log_quietly(struct node *n, const char *what, const char *addr, const char *why);

#endif
