/* server/net/event_loop.c - the epoll thread and mailbox the client and watch loops share
 * (see event_loop.h). */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../common/errors.h"
#include "event_loop.h"

static void **link_of(const struct event_loop *e, const void *item)
{
    return (void **)((char *)item + e->next_off);
}

int event_loop_start(struct event_loop *e, size_t next_off, void *(*run)(void *), void *arg)
{
    atomic_init(&e->stopping, false);
    e->next_off = next_off;
    e->adopted = NULL;
    e->closed = false;
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (e->ep >= 0 && e->efd >= 0 && epoll_ctl(e->ep, EPOLL_CTL_ADD, e->efd, &ev) == 0 &&
        pthread_mutex_init(&e->adopt_mu, NULL) == 0) {
        if (pthread_create(&e->thread, NULL, run, arg) == 0)
            return RK_OK;
        pthread_mutex_destroy(&e->adopt_mu);
    }
    if (e->ep >= 0)
        close(e->ep);
    if (e->efd >= 0)
        close(e->efd);
    return RK_ERR_IO;
}

void event_loop_wake(struct event_loop *e)
{
    uint64_t one = 1;
    ssize_t rc = write(e->efd, &one, sizeof(one)); /* fails only if the counter is full */
    (void)rc;
}

void event_loop_drain(struct event_loop *e)
{
    uint64_t v;
    ssize_t rc = read(e->efd, &v, sizeof(v));
    (void)rc;
}

/* Checked and linked under one hold of adopt_mu: once event_loop_stop has set closed,
 * nothing is left on the list that nobody will take. */
bool event_loop_post(struct event_loop *e, void *item)
{
    pthread_mutex_lock(&e->adopt_mu);
    bool taken = !e->closed;
    if (taken) {
        *link_of(e, item) = e->adopted;
        e->adopted = item;
    }
    pthread_mutex_unlock(&e->adopt_mu);
    return taken;
}

void *event_loop_take(struct event_loop *e)
{
    pthread_mutex_lock(&e->adopt_mu);
    void *items = e->adopted;
    e->adopted = NULL;
    pthread_mutex_unlock(&e->adopt_mu);
    return items;
}

void *event_loop_next(const struct event_loop *e, const void *item)
{
    return *link_of(e, item);
}

void event_loop_stop(struct event_loop *e, void (*drop)(void *ctx, void *item), void *ctx)
{
    atomic_store(&e->stopping, true);
    event_loop_wake(e);
    pthread_join(e->thread, NULL);
    pthread_mutex_lock(&e->adopt_mu);
    e->closed = true;
    void *late = e->adopted;
    e->adopted = NULL;
    pthread_mutex_unlock(&e->adopt_mu);
    while (late != NULL) {
        void *next = event_loop_next(e, late);
        drop(ctx, late);
        late = next;
    }
}
