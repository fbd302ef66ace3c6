/* server/net/conn.h - one accepted connection: a HELLO frame says whether it carries a
 * peer's Raft messages or a client's requests; each runs on its own detached thread. */
#ifndef RK_CONN_H
#define RK_CONN_H

#include <sys/socket.h>

struct node;

/* Serves fd on a new detached thread (which closes it). addr is the remote address, for
 * logs. On failure closes fd and logs. */
void conn_spawn(struct node *n, int fd, const struct sockaddr *addr, socklen_t addr_len);

#endif
