/* server/net/listener.c - the accept() loop: one detached connection thread per socket.
 * Stopped by shutdown() of the listening socket, which wakes a blocked accept(). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../common/errors.h"
#include "../node/node.h"
#include "conn.h"
#include "listener.h"

#define ACCEPT_RETRY_MS 100

static void pause_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Transient accept errors: the listener keeps going (out of fds is logged and retried). */
static void accept_failed(struct listener *l, int e, bool *logged)
{
    if (e == EINTR || e == ECONNABORTED || e == EAGAIN)
        return;
    if (!*logged) {
        char buf[128];
        node_log(l->node, "accept failed: %s (retrying)", strerror_r(e, buf, sizeof(buf)));
        *logged = true;
    }
    pause_ms(ACCEPT_RETRY_MS);
}

static void *listener_main(void *arg)
{
    struct listener *l = arg;
    node_name_thread("listen", -1);
    bool logged = false;
    while (!atomic_load(&l->stopping)) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (atomic_load(&l->stopping))
                break;
            accept_failed(l, e, &logged);
            continue;
        }
        logged = false;
        conn_spawn(l->node, fd, (struct sockaddr *)&sa, len);
    }
    return NULL;
}

int listener_start(struct listener *l, struct node *n, int fd)
{
    l->node = n;
    l->fd = fd;
    atomic_init(&l->stopping, false);
    if (pthread_create(&l->thread, NULL, listener_main, l) != 0)
        return RK_ERR_NOMEM;
    return RK_OK;
}

void listener_stop(struct listener *l)
{
    atomic_store(&l->stopping, true);
    shutdown(l->fd, SHUT_RDWR); /* wakes accept() with EINVAL on Linux */
    pthread_join(l->thread, NULL);
    close(l->fd);
    l->fd = -1;
}
