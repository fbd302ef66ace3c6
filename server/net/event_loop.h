/* server/net/event_loop.h - what the client loop and the watch loop share: a thread that
 * waits on an epoll set, woken through an eventfd (its epoll data is NULL), and a mailbox
 * through which other threads hand it connections. An item is any struct with a link
 * field; the loop says where that field is (next_off). */
#ifndef RK_EVENT_LOOP_H
#define RK_EVENT_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct event_loop {
    int ep, efd;
    pthread_t thread;
    atomic_bool stopping;
    size_t next_off;           /* an item's link field */
    pthread_mutex_t adopt_mu;
    void *adopted;             /* under adopt_mu: handed over, not yet taken */
    bool closed;               /* under adopt_mu: stopped; takes no more */
};

/* Opens the epoll set and the eventfd and starts the thread (run(arg)). RK_OK, or
 * RK_ERR_IO with nothing left open. */
int event_loop_start(struct event_loop *e, size_t next_off, void *(*run)(void *), void *arg);
/* Wakes the thread (any thread); event_loop_drain, on it, reads the wake-ups. */
void event_loop_wake(struct event_loop *e);
void event_loop_drain(struct event_loop *e);
/* Hands an item to the thread: false if it has stopped (the caller then drops the item).
 * The caller wakes it. */
bool event_loop_post(struct event_loop *e, void *item);
/* On the thread: the items handed over since the last call (a list through their links). */
void *event_loop_take(struct event_loop *e);
/* The next item of such a list. */
void *event_loop_next(const struct event_loop *e, const void *item);
/* Stops the thread (it sees `stopping` once woken) and waits for it; from then on posts
 * fail. Each item posted but never taken is given to drop(ctx, item). */
void event_loop_stop(struct event_loop *e, void (*drop)(void *ctx, void *item), void *ctx);

#endif
