/* server/net/listener.h - the accept() loop of the server's listening socket; each
 * accepted socket gets its own detached connection thread (server/net/conn.h). */
#ifndef RK_LISTENER_H
#define RK_LISTENER_H

#include <pthread.h>
#include <stdatomic.h>

struct node;

struct listener {
    struct node *node;
    int fd;
    pthread_t thread;
    atomic_bool stopping;
};

/* Starts the accept thread on an already listening fd (the listener owns it).
 * RK_OK or RK_ERR_NOMEM. */
int listener_start(struct listener *l, struct node *n, int fd);
/* Stops accepting, joins the thread and closes the fd. Open connections are not touched. */
void listener_stop(struct listener *l);

#endif
