/* server/node/timer.c - the timer thread: ticks the core (election timeouts and
 * heartbeats, Raft paper §5.2) and sleeps until the core's next deadline, at most 50 ms. */
#include "../../common/clock.h"
#include "../../common/errors.h"
#include "node.h"

#define TIMER_MAX_SLEEP_MS 50

static void *timer_main(void *arg)
{
    struct node *n = arg;
    node_name_thread("timer", -1);
    pthread_mutex_lock(&n->mu);
    while (!n->shutdown) {
        uint64_t now = rk_clock_ms();
        /* Heartbeats go out from here, no replicator woken; the disk is left to the io
         * thread, so a slow fsync never delays a heartbeat or an election. */
        struct node_outbox ob = { .any = false };
        raft_tick(n->raft, now);
        uint64_t wake = now + TIMER_MAX_SLEEP_MS;
        uint64_t deadline = raft_next_deadline(n->raft);
        if (deadline < wake)
            wake = deadline > now ? deadline : now + 1; /* never spin */
        n->timer_wake_ms = wake; /* before after_step, so it can wake us for sooner work */
        node_after_step(n, &ob);
        node_outbox_flush(n, &ob);
        if (!n->shutdown && n->timer_wake_ms > rk_clock_ms())
            node_cond_wait_until(&n->timer_cond, &n->mu, n->timer_wake_ms);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int node_timer_start(struct node *n)
{
    if (pthread_create(&n->timer_thread, NULL, timer_main, n) != 0)
        return RK_ERR_NOMEM;
    n->timer_started = true;
    return RK_OK;
}
