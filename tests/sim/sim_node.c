/* tests/sim/sim_node.c - drives one node's Raft core as the threaded server does (timer.c,
 * io_thread.c, node.c): ticks, one Ready in flight (persist, fdatasync, send, ready_done),
 * applying committed entries; and crash (losing or tearing the unsynced write), boot, pause. */
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "sim_internal.h"

typedef unsigned long long ull;

/* The core's notices go into the trace; one starting with "BUG" is a failure. */
static void sim_node_notice(void *ctx, const char *msg)
{
    struct sim_node *n = ctx;
    sim_trace_text(n->sim, n->id, "note: %s", msg);
    if (strncmp(msg, "BUG", 3) == 0)
        sim_fail(n->sim, "Core Self-Check", "n%d: %s", n->id, msg);
}

/* The first servers listen on port 1 + id (as the core's bootstrap configuration says);
 * one added later in a slot, on a port of its own (as in the README's tour). */
uint16_t sim_node_port(int id, uint32_t life)
{
    return (uint16_t)(1 + id + 100 * life);
}

bool sim_node_paused(const struct sim *s, const struct sim_node *n)
{
    return n->raft != NULL && s->now < n->paused_until;
}

/* node_timer_deadline: the core's next deadline, or a leader's next expiring key. */
static uint64_t sim_node_timer_deadline(const struct sim *s, const struct sim_node *n)
{
    uint64_t core = raft_next_deadline(n->raft), expiry = sim_expiry_next(s, n);
    return core < expiry ? core : expiry;
}

/* As the timer thread: wake at the next deadline (sim_node_timer_deadline), at most 50 ms
 * away, late by up to this node's jitter. */
void sim_node_schedule_tick(struct sim *s, struct sim_node *n)
{
    if (!n->ticking || n->raft == NULL)
        return;
    uint64_t now = s->now, deadline = sim_node_timer_deadline(s, n);
    uint64_t wake = now + SIM_TIMER_MAX_SLEEP_MS;
    if (deadline < wake)
        wake = deadline > now ? deadline : now + 1;
    wake += sim_below(s, s->p.tick_jitter_ms[n->id] + 1ull);
    n->tick_at = wake;
    sim_push(s, wake, SIM_EV_TICK, n->id, ++n->tick_gen);
}

/* The configuration n's log starts from: its snapshot's, else the cluster's first one,
 * or none for a server that joins (raft_server --join). */
static struct membership *sim_node_base_conf(struct sim *s, const struct sim_disk *d)
{
    struct membership *ms = calloc(1, sizeof(*ms));
    if (ms == NULL)
        abort();
    if (d->snap.index > 0) {
        if (!sim_snap_conf(&d->snap, ms))
            abort(); /* the snapshot was checked when it was taken or installed */
    } else if (!d->joiner) {
        sim_conf_boot(s, ms);
    }
    return ms;
}

/* Starts a node from what its disk holds, like server/main.c after storage_open. */
void sim_node_boot(struct sim *s, struct sim_node *n)
{
    struct sim_disk *d = &n->disk;
    sim_disk_fit_log_to_snapshot(d);
    struct membership *ms = sim_node_base_conf(s, d);
    struct raft_config cfg = {
        .members = ms,
        .self_name = n->name,
        .election_timeout_min_ms = s->p.election_min_ms,
        .election_timeout_max_ms = s->p.election_max_ms,
        .heartbeat_ms = s->p.heartbeat_ms,
        .max_append_entries = s->p.max_append_entries,
        .max_append_bytes = s->p.max_append_bytes,
        .pre_vote = s->p.pre_vote,
        .check_quorum = s->p.check_quorum,
        .catchup_max_ms = s->p.catchup_max_ms,
        .unreachable_ms = s->p.unreachable_ms,
        .seed = sim_rand(s) | 1,
        .log_fn = sim_node_notice,
        .log_ctx = n,
    };
    n->raft = raft_new_from_snapshot(&cfg, d->snap.index, d->snap.term, d->term, d->vote,
                                     sim_disk_load(d), d->n, s->now);
    free(ms);
    n->kv = sim_snap_load_kv(&d->snap); /* the state machine starts from the snapshot */
    if (n->raft == NULL || n->kv == NULL)
        abort();
    kv_set_now(n->kv, sim_node_clock(s, n)); /* its keys' deadlines count from now */
    sim_watch_attach(n);
    n->reaper = (struct node_reaper){ 0 };
    n->applied = d->snap.index;
    n->incarnation++;
    n->io_busy = false;
    n->paused_until = 0;
    n->seen_role = RAFT_FOLLOWER;
    n->seen_term = d->term;
    n->seen_last = sim_disk_last(d);
    n->seen_commit = raft_commit_index(n->raft);
    n->mirror.n = n->mirror.base = 0;
    memset(n->heard_at, 0, sizeof(n->heard_at));
    memset(n->heard_term, 0, sizeof(n->heard_term));
    n->prevote_term = 0;
    n->prevote_grants = 0;
    n->vote_term = 0;
    n->vote_grants = 0;
    n->tn_term = 0;
    n->seen_vote = d->vote;
    n->seen_conf = sim_conf_of_node(s, n);
    n->conf_since = s->now;
    n->seen_conf_gen = 0;
    n->present = true;
    n->last_tick = 0;
    n->tick_at = UINT64_MAX;
    sim_check_loaded_state(s, n);
    sim_check_expired_gone(s, n, 1);
    sim_node_after_step(s, n);
}

/* Figure 2, all servers: apply log[lastApplied + 1] while commitIndex > lastApplied. */
static void sim_node_apply(struct sim *s, struct sim_node *n)
{
    raft_index_t commit = raft_commit_index(n->raft);
    if (commit < n->seen_commit)
        sim_fail(s, "Commit Monotonicity", "n%d's commit index went back from %llu to %llu",
                 n->id, (ull)n->seen_commit, (ull)commit);
    n->seen_commit = commit;
    if (commit > n->applied) {
        sim_trace_apply(s, n->id, n->applied + 1, commit);
        kv_set_now(n->kv, sim_node_clock(s, n)); /* deadlines count from here (node.c) */
    }
    while (n->applied < commit && !s->failed) {
        const struct raft_entry *e = raft_entry_at(n->raft, n->applied + 1);
        if (e == NULL) {
            sim_fail(s, "State Machine Safety", "n%d committed index %llu but its log ends at %llu",
                     n->id, (ull)commit, (ull)raft_last_index(n->raft));
            return;
        }
        struct sim_expiry_before *before = sim_check_expiry_before(s, n, e);
        sim_check_watch_before(s, n, e);
        int result = kv_apply(n->kv, n->applied + 1, e);
        if (result < 0) {
            free(before);
            n->watch.open = false;
            sim_fail(s, "State Machine Safety", "n%d cannot apply index %llu", n->id,
                     (ull)(n->applied + 1));
            return;
        }
        n->applied++;
        sim_check_expiry_after(s, n, n->applied, e, result, before);
        sim_check_apply(s, n, n->applied, e);
        sim_check_watch_after(s, n, n->applied, e);
        sim_client_on_apply(s, n, n->applied, e);
    }
    if (!s->failed)
        sim_snap_maybe_take(s, n);
}

/* As the io thread: take the next Ready at once if none is in flight; its fdatasync
 * returns after the disk's latency (at once when there is nothing to write). */
static void sim_node_start_io(struct sim *s, struct sim_node *n)
{
    if (n->io_busy || !raft_has_ready(n->raft))
        return;
    if (raft_ready_take(n->raft, &n->rd) != RK_OK)
        abort();
    sim_conf_check_taken(s, n, &n->rd);
    n->io_busy = true;
    uint64_t latency = 0;
    if (sim_disk_ready_ops(&n->rd) > 0)
        latency = sim_between(s, s->p.disk_min_ms, s->p.disk_max_ms) + s->p.disk_extra_ms[n->id];
    sim_push(s, s->now + latency, SIM_EV_IO, n->id, ++n->io_gen);
    if (s->crash_next_write && s->faults_on && latency > 0 && sim_disk_ready_ops(&n->rd) > 1) {
        s->crash_next_write = false; /* a crash in the middle of this write */
        sim_push(s, s->now + sim_below(s, latency), SIM_EV_CRASH, n->id, n->io_gen);
    }
}

/* Thesis §10.2.1: what depends on nothing unpersisted (a leader's AppendEntries,
 * pre-votes) may leave before the fdatasync. */
static void sim_node_send_early(struct sim *s, struct sim_node *n)
{
    struct raft_msg *msgs = NULL;
    uint32_t count = raft_take_early_msgs(n->raft, &msgs);
    for (uint32_t i = 0; i < count; i++) {
        sim_check_early_msg(s, n, &msgs[i]);
        sim_net_send(s, n->id, &msgs[i]);
        raft_msg_free_entries(&msgs[i]);
    }
    free(msgs);
}

/* As node_after_step (server/node/node.c): check, send early messages, apply, answer reads,
 * hand work to io, re-arm the timer. */
void sim_node_after_step(struct sim *s, struct sim_node *n)
{
    bool led = n->seen_role == RAFT_LEADER;
    raft_term_t term = n->seen_term;
    sim_check_observe(s, n);
    if (n->seen_role == RAFT_LEADER && (!led || term != n->seen_term)) {
        sim_fault_new_leader(s, n);
        sim_member_new_leader(s, n);
    }
    if (s->p.early_msgs)
        sim_node_send_early(s, n);
    sim_node_apply(s, n);
    sim_client_take_reads(s, n);
    sim_member_take_results(s, n);
    sim_node_start_io(s, n);
    if (sim_node_timer_deadline(s, n) < n->tick_at)
        sim_node_schedule_tick(s, n);
}

void sim_node_tick(struct sim *s, struct sim_node *n)
{
    sim_trace_mix(&s->tr, s->now ^ ((uint64_t)n->id << 56));
    n->tick_at = UINT64_MAX; /* after_step arms the next wake-up */
    uint64_t gap = SIM_TIMER_MAX_SLEEP_MS + s->p.tick_jitter_ms[n->id];
    if (n->last_tick == 0 || s->now - n->last_tick > gap)
        n->ticking_since = s->now;
    n->last_tick = s->now;
    raft_tick(n->raft, s->now);
    sim_expiry_run(s, n);
    sim_node_after_step(s, n);
    sim_check_leader_quorum(s, n);
    sim_member_after_tick(s, n);
}

/* The in-flight Ready is durable: write it, send its messages, report it done. */
void sim_node_io_done(struct sim *s, struct sim_node *n)
{
    struct raft_ready *rd = &n->rd;
    uint32_t ops = sim_disk_ready_ops(rd);
    char err[200];
    sim_check_sync_before(s, n, rd, ops);
    if (sim_disk_write(&n->disk, rd, ops, err, sizeof(err)) != RK_OK)
        sim_fail(s, "Ready Contract", "n%d: %s", n->id, err);
    sim_snap_write_chunks(s, n, rd);
    sim_trace_sync(s, n->id, rd);
    if (n->incoming.complete && !s->failed)
        sim_snap_install(s, n); /* as the io thread: before the batch's messages leave */
    sim_check_sync_after(s, n, rd);
    for (uint32_t i = 0; i < rd->n_msgs; i++)
        sim_net_send(s, n->id, &rd->msgs[i]);
    raft_ready_done(n->raft, s->now, rd);
    raft_ready_free(rd);
    n->io_busy = false;
    sim_node_after_step(s, n);
}

static enum sim_tear sim_node_draw_tear(struct sim *s)
{
    uint64_t roll = sim_below(s, 100);
    return roll < 35 ? SIM_TEAR_LOSE : roll < 70 ? SIM_TEAR_PARTIAL : SIM_TEAR_KEEP;
}

/* A crash before fdatasync returned keeps some prefix of the write's steps. */
static void sim_node_tear_write(struct sim *s, struct sim_node *n, enum sim_tear tear)
{
    uint32_t total = sim_disk_ready_ops(&n->rd), keep = 0;
    if (tear == SIM_TEAR_RANDOM)
        tear = sim_node_draw_tear(s);
    if (tear == SIM_TEAR_KEEP)
        keep = total;
    else if (tear == SIM_TEAR_PARTIAL && total > 1)
        keep = (uint32_t)sim_between(s, 1, total - 1);
    else if (tear == SIM_TEAR_PARTIAL)
        keep = (uint32_t)sim_below(s, total + 1);
    sim_trace_text(s, n->id, "crash with an unsynced write: %u of %u steps reach the disk "
                   "(reset=%llu hs=%d trunc>=%llu append=%llu+%u)", keep, total,
                   (ull)n->rd.reset_log_to, n->rd.hard_state_changed, (ull)n->rd.truncate_from,
                   (ull)n->rd.first_index, n->rd.n_entries);
    if (keep == 0)
        s->stats.lost_writes++;
    else if (keep < total)
        s->stats.torn_writes++;
    sim_check_sync_before(s, n, &n->rd, keep);
    char err[200];
    if (sim_disk_write(&n->disk, &n->rd, keep, err, sizeof(err)) != RK_OK)
        sim_fail(s, "Ready Contract", "n%d: %s", n->id, err);
    raft_ready_free(&n->rd);
    n->io_busy = false;
}

/* The connection from peer closed: its process died. */
void sim_node_disconnected(struct sim *s, struct sim_node *n, int peer)
{
    sim_trace_text(s, n->id, "connection from n%d closed", peer);
    raft_peer_disconnected(n->raft, s->now, peer);
    sim_node_after_step(s, n);
}

/* A crash closes the node's connections; each peer notices within a few ms. */
static void sim_node_close_connections(struct sim *s, const struct sim_node *n)
{
    for (int i = 0; i < s->n_slots; i++) {
        if (i == n->id || s->node[i].raft == NULL)
            continue;
        struct sim_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.kind = SIM_EV_DISCONNECT;
        ev.node = (int16_t)i;
        ev.peer = (int16_t)n->id;
        ev.gen = s->node[i].incarnation;
        ev.at = s->now + sim_below(s, 4);
        sim_queue_push(&s->q, &ev);
    }
}

void sim_node_crash(struct sim *s, struct sim_node *n, enum sim_tear tear)
{
    if (n->raft == NULL)
        return;
    if (n->io_busy)
        sim_node_tear_write(s, n, tear);
    else
        sim_trace_text(s, n->id, "crash (no unsynced write)");
    raft_free(n->raft);
    n->raft = NULL;
    kv_free(n->kv);
    n->kv = NULL;
    free(n->incoming.data); /* a half-received snapshot is started over */
    memset(&n->incoming, 0, sizeof(n->incoming));
    n->tick_gen++;
    n->io_gen++;
    n->pause_gen++;
    n->paused_until = 0;
    sim_client_drop_node(s, n->id);
    sim_member_drop_node(s, n);
    if (s->p.disconnects)
        sim_node_close_connections(s, n);
    s->stats.crashes++;
    sim_check_durable_majority(s);
}

/* Like SIGSTOP: no ticks, deliveries or io until then; messages to it queue up. */
void sim_node_pause(struct sim *s, struct sim_node *n, uint64_t ms)
{
    n->paused_until = s->now + ms;
    sim_push(s, n->paused_until, SIM_EV_RESUME, n->id, ++n->pause_gen);
    s->stats.pauses++;
    sim_trace_text(s, n->id, "pause for %llums", (ull)ms);
}

void sim_node_free(struct sim_node *n)
{
    if (n->io_busy)
        raft_ready_free(&n->rd);
    raft_free(n->raft);
    kv_free(n->kv);
    free(n->incoming.data);
    sim_disk_free(&n->disk);
    sim_mirror_free(&n->mirror);
    sim_watch_free(&n->watch);
    n->raft = NULL;
    n->kv = NULL;
    n->io_busy = false;
}
