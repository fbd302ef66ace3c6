/* server/node/timer.c - the timer thread: ticks the core (election timeouts and
 * heartbeats, Raft paper §5.2) and sleeps until the core's next deadline, at most 50 ms.
 * It also watches the io thread's writes: a leader whose fdatasync has been outstanding
 * longer than --disk-stall-ms hands leadership to an up-to-date follower (Raft thesis
 * §3.10) and campaigns no more until its disk answers. As leader, it proposes the deletion
 * of keys whose deadline passed (expiry.c), and warns of followers far behind
 * (warnings.c). */
#include <inttypes.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "node.h"

#define TIMER_MAX_SLEEP_MS 50

/* Under mu: the write in flight has taken longer than --disk-stall-ms. */
static void check_disk(struct node *n, uint64_t now)
{
    if (n->disk_stall_ms == 0 || n->sync_started_ms == 0 || n->stall_handed_off ||
        now - n->sync_started_ms < n->disk_stall_ms)
        return;
    n->stall_handed_off = true;
    raft_set_campaign(n->raft, false);
    if (raft_role(n->raft) != RAFT_LEADER) {
        node_log(n, "the disk has not answered for %" PRIu64 " ms; not campaigning until it "
                 "does", now - n->sync_started_ms);
        return;
    }
    int rc = raft_transfer_leadership(n->raft, 0, NULL);
    node_log(n, "the disk has not answered for %" PRIu64 " ms (--disk-stall-ms %" PRIu32 "): "
             "%s; not campaigning until it does", now - n->sync_started_ms, n->disk_stall_ms,
             rc == RK_OK ? "handing leadership to an up-to-date follower"
                         : "cannot hand leadership off now");
}

void node_disk_answered(struct node *n)
{
    if (n->stall_handed_off) {
        node_log(n, "the disk answered after %" PRIu64 " ms; campaigning again",
                 rk_clock_ms() - n->sync_started_ms);
        raft_set_campaign(n->raft, true);
        n->stall_handed_off = false;
    }
    n->sync_started_ms = 0;
}

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
        check_disk(n, now);
        raft_tick(n->raft, now);
        node_expiry_run(n, now);
        node_warn_lag(n, now);
        uint64_t wake = now + TIMER_MAX_SLEEP_MS;
        uint64_t deadline = node_timer_deadline(n);
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
