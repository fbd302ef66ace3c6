/* tests/sim/sim.c - the simulator's life cycle and event loop: one seeded PRNG, one queue
 * of timed events (messages, timer wake-ups, fdatasync completions, clients, faults,
 * membership changes), and the scenario controls and queries of sim.h. Random runs are in
 * sim_run.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "sim_internal.h"

typedef unsigned long long ull;

/* ---- randomness (splitmix64): the only source of it ----------------------------------- */

uint64_t sim_rand(struct sim *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t sim_below(struct sim *s, uint64_t n)
{
    return n ? sim_rand(s) % n : 0;
}

uint64_t sim_between(struct sim *s, uint64_t lo, uint64_t hi)
{
    return hi <= lo ? lo : lo + sim_below(s, hi - lo + 1);
}

bool sim_chance(struct sim *s, uint32_t permille)
{
    return permille > 0 && sim_below(s, 1000) < permille;
}

/* ---- failures ------------------------------------------------------------------------ */

void sim_fail(struct sim *s, const char *invariant, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    snprintf(s->fail_inv, sizeof(s->fail_inv), "%s", invariant);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_detail, sizeof(s->fail_detail), fmt, ap);
    va_end(ap);
    snprintf(s->fail_text, sizeof(s->fail_text), "%s: %s", s->fail_inv, s->fail_detail);
    sim_trace_text(s, -1, "FAIL %s", s->fail_inv);
}

const char *sim_failure(const struct sim *s)
{
    return s->failed ? s->fail_text : NULL;
}

/* ---- construction -------------------------------------------------------------------- */

void sim_params_quiet(struct sim_params *p, int n_nodes, uint64_t seed)
{
    memset(p, 0, sizeof(*p));
    p->n_nodes = n_nodes;
    p->seed = seed;
    p->election_min_ms = 150; /* the server's defaults (server/main.c) */
    p->election_max_ms = 300;
    p->heartbeat_ms = 50;
    p->pre_vote = true; /* as server/main.c */
    p->check_quorum = true;
    p->delay_min_ms = p->delay_max_ms = 5;
    p->disk_min_ms = p->disk_max_ms = 1;
    p->client_gap_ms = 15;
    p->snap_chunk = 1024;
    p->fault_gap_ms = 700;
    p->member_gap_ms = 800;
    /* Each node's clock (CLOCK_MONOTONIC on its own machine) reads its own time: drawn
     * from the seed by a hash, not from the PRNG, so that the schedules stay as they were. */
    for (int i = 0; i < SIM_SLOTS; i++)
        p->clock_offset_ms[i] = 1000000 + sim_check_mix(seed * SIM_SLOTS + (uint64_t)i) % 1000000000;
}

struct sim *sim_new(const struct sim_params *p)
{
    if (p->n_nodes < 1 || p->n_nodes > SIM_MAX_NODES)
        return NULL;
    struct sim *s = calloc(1, sizeof(*s));
    if (s == NULL)
        abort();
    s->p = *p;
    s->rng = p->seed ^ 0x243F6A8885A308D3ULL;
    sim_queue_init(&s->q);
    sim_check_init(&s->chk);
    sim_trace_init(&s->tr, p->trace_fn, p->trace_ctx);
    for (int i = 0; i < SIM_SLOTS; i++) {
        struct sim_node *n = &s->node[i];
        n->id = i;
        snprintf(n->name, sizeof(n->name), "node%d", i);
        n->sim = s;
        n->ticking = true;
        n->present = i < p->n_nodes;
        sim_disk_init(&n->disk);
    }
    s->n_slots = p->n_nodes;
    s->chk.boot.voters = s->chk.boot.members = (1u << p->n_nodes) - 1;
    return s;
}

void sim_free(struct sim *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < SIM_SLOTS; i++)
        sim_node_free(&s->node[i]);
    sim_queue_free(&s->q);
    sim_check_free(&s->chk);
    sim_client_free(s);
    sim_member_free(s);
    free(s);
}

void sim_preload(struct sim *s, int node, raft_term_t term, int vote,
                 const raft_term_t *terms, raft_index_t n)
{
    struct sim_disk *d = &s->node[node].disk;
    d->term = term;
    d->vote = vote;
    for (raft_index_t i = 0; i < n; i++) {
        char key[24];
        int len = snprintf(key, sizeof(key), "p%llu", (ull)(i + 1));
        struct raft_entry e;
        if (raft_entry_init(&e, terms[i], RAFT_ENTRY_SET, key, (uint32_t)len, "x", 1) != RK_OK)
            abort();
        sim_disk_append_copy(d, &e);
        raft_entry_free(&e);
    }
}

void sim_push(struct sim *s, uint64_t at, uint8_t kind, int node, uint32_t gen)
{
    struct sim_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.at = at;
    ev.kind = kind;
    ev.node = (int16_t)node;
    ev.gen = gen;
    sim_queue_push(&s->q, &ev);
}

void sim_start(struct sim *s)
{
    s->started = true;
    sim_trace_text(s, -1, "start: %d nodes, seed %llu, batch %u entries and %u bytes (0 = default)",
                   s->p.n_nodes, (ull)s->p.seed, s->p.max_append_entries, s->p.max_append_bytes);
    sim_trace_text(s, -1, "start: loss %u/1000, duplicates %u/1000, delay %u..%u ms, disk %u..%u ms",
                   s->p.loss_permille, s->p.dup_permille, s->p.delay_min_ms, s->p.delay_max_ms,
                   s->p.disk_min_ms, s->p.disk_max_ms);
    for (int i = 0; i < s->p.n_nodes; i++)
        if (s->p.disk_extra_ms[i] != 0)
            sim_trace_text(s, i, "start: a slow disk, %u ms more per write", s->p.disk_extra_ms[i]);
    sim_trace_text(s, -1, "start: pre-vote %s, check-quorum %s, early appends %s, "
                   "disconnect notices %s", s->p.pre_vote ? "on" : "off",
                   s->p.check_quorum ? "on" : "off", s->p.early_msgs ? "on" : "off",
                   s->p.disconnects ? "on" : "off");
    sim_trace_text(s, -1, "start: heartbeat %u ms, election timeout %u..%u ms", s->p.heartbeat_ms,
                   s->p.election_min_ms, s->p.election_max_ms);
    sim_trace_text(s, -1, "start: trimmed appends %u/1000, client bursts %u/1000, writes to any "
                   "leader %u/1000", s->p.trim_permille, s->p.burst_permille, s->p.stale_permille);
    sim_trace_text(s, -1, "start: snapshot every %u entries (0 = never), keep %u behind, "
                   "chunks of %u bytes", s->p.snap_every, s->p.snap_lag, s->p.snap_chunk);
    if (s->p.random_members)
        sim_trace_text(s, -1, "start: a membership change or transfer every %u ms or so",
                       s->p.member_gap_ms);
    for (int i = 0; i < s->p.n_nodes; i++)
        sim_node_boot(s, &s->node[i]);
    s->clients_on = s->p.random_clients;
    s->faults_on = s->p.random_faults;
    s->members_on = s->p.random_members;
    if (s->clients_on)
        sim_push(s, s->now + sim_between(s, 1, 2ull * s->p.client_gap_ms), SIM_EV_CLIENT, -1, 0);
    if (s->faults_on)
        sim_push(s, s->now + sim_between(s, 1, 2ull * s->p.fault_gap_ms), SIM_EV_FAULT, -1, 0);
    if (s->members_on)
        sim_push(s, s->now + sim_between(s, 1, 2ull * s->p.member_gap_ms), SIM_EV_MEMBER, -1, 0);
}

/* ---- the event loop ------------------------------------------------------------------- */

int sim_pick_up_node(struct sim *s, bool unpaused)
{
    int picked = -1, seen = 0;
    for (int i = 0; i < s->n_slots; i++) {
        const struct sim_node *n = &s->node[i];
        if (n->raft == NULL || (unpaused && sim_node_paused(s, n)))
            continue;
        if (sim_below(s, (uint64_t)++seen) == 0)
            picked = i;
    }
    return picked;
}

int sim_current_leader(const struct sim *s)
{
    int best = -1;
    for (int i = 0; i < s->n_slots; i++) {
        const struct sim_node *n = &s->node[i];
        if (n->raft == NULL || sim_node_paused(s, n) || raft_role(n->raft) != RAFT_LEADER)
            continue;
        if (best < 0 || raft_term(n->raft) > raft_term(s->node[best].raft))
            best = i;
    }
    return best;
}

static bool sim_event_stale(const struct sim *s, const struct sim_event *ev)
{
    const struct sim_node *n = ev->node >= 0 ? &s->node[ev->node] : NULL;
    switch (ev->kind) {
    case SIM_EV_TICK: return n->raft == NULL || ev->gen != n->tick_gen;
    case SIM_EV_IO: return n->raft == NULL || ev->gen != n->io_gen;
    case SIM_EV_CRASH: return n->raft == NULL || ev->gen != n->io_gen || !n->io_busy;
    case SIM_EV_DISCONNECT: return n->raft == NULL || ev->gen != n->incarnation;
    case SIM_EV_KILL: return n->raft == NULL || ev->gen != n->incarnation || !s->faults_on;
    case SIM_EV_RETIRE: return n->raft == NULL || ev->gen != n->incarnation || !s->members_on;
    case SIM_EV_MEMBER: return !s->members_on || (n != NULL && n->raft == NULL);
    case SIM_EV_RESTART: return n->raft != NULL || ev->gen != n->restart_gen;
    case SIM_EV_RESUME: return ev->gen != n->pause_gen;
    case SIM_EV_HEAL: return ev->gen != s->partition_gen;
    case SIM_EV_CLIENT: return !s->clients_on;
    case SIM_EV_FAULT: return !s->faults_on;
    }
    return false;
}

/* A paused node handles nothing until it resumes: its events wait, in order. */
static bool sim_event_deferred(const struct sim *s, const struct sim_event *ev)
{
    if (ev->node < 0 || ev->kind == SIM_EV_RESUME || ev->kind == SIM_EV_RESTART ||
        ev->kind == SIM_EV_CRASH || ev->kind == SIM_EV_KILL || ev->kind == SIM_EV_RETIRE)
        return false;
    const struct sim_node *n = &s->node[ev->node];
    return n->raft != NULL && ev->at < n->paused_until;
}

static void sim_dispatch(struct sim *s, struct sim_event *ev)
{
    struct sim_node *n = ev->node >= 0 ? &s->node[ev->node] : NULL;
    switch (ev->kind) {
    case SIM_EV_MSG: sim_net_deliver(s, ev); break;
    case SIM_EV_TICK: sim_node_tick(s, n); break;
    case SIM_EV_IO: sim_node_io_done(s, n); break;
    case SIM_EV_RESTART:
        sim_trace_text(s, n->id, "restart: term %llu, vote %d, %llu entries on disk",
                       (ull)n->disk.term, n->disk.vote, (ull)n->disk.n);
        s->stats.restarts++;
        sim_node_boot(s, n);
        break;
    case SIM_EV_RESUME:
        sim_trace_text(s, n->id, "resume");
        break;
    case SIM_EV_CRASH: sim_fault_crash_writer(s, n->id); break;
    case SIM_EV_DISCONNECT: sim_node_disconnected(s, n, ev->peer); break;
    case SIM_EV_KILL: sim_fault_kill(s, n->id); break;
    case SIM_EV_HEAL:
        sim_trace_text(s, -1, "partition healed");
        sim_net_heal(s);
        break;
    case SIM_EV_CLIENT:
        sim_client_random(s);
        sim_push(s, s->now + sim_between(s, 1, 2ull * s->p.client_gap_ms), SIM_EV_CLIENT, -1, 0);
        break;
    case SIM_EV_FAULT:
        sim_fault_random(s);
        sim_push(s, s->now + sim_between(s, s->p.fault_gap_ms / 2, 3ull * s->p.fault_gap_ms / 2),
                 SIM_EV_FAULT, -1, 0);
        break;
    case SIM_EV_MEMBER:
        sim_member_random(s, ev->node);
        if (ev->node < 0)
            sim_push(s, s->now + sim_between(s, s->p.member_gap_ms / 2,
                                             3ull * s->p.member_gap_ms / 2), SIM_EV_MEMBER, -1, 0);
        break;
    case SIM_EV_RETIRE: sim_member_retire(s, n->id); break;
    }
}

/* Processes the next event (one step); false if there is none. */
bool sim_step(struct sim *s)
{
    struct sim_event ev;
    for (;;) {
        if (!sim_queue_pop(&s->q, &ev))
            return false;
        if (sim_event_stale(s, &ev)) {
            raft_msg_free_entries(&ev.msg);
            continue;
        }
        if (sim_event_deferred(s, &ev)) {
            ev.at = s->node[ev.node].paused_until;
            sim_queue_push(&s->q, &ev);
            continue;
        }
        break;
    }
    if (ev.at > s->now)
        s->now = ev.at;
    s->steps++;
    sim_dispatch(s, &ev);
    if (s->steps % SIM_AUDIT_STEPS == 0) {
        sim_check_audit_logs(s);
        for (int i = 0; i < s->n_slots && !s->failed; i++)
            sim_check_expired_gone(s, &s->node[i], 1);
    }
    return true;
}

/* Runs one event due by until; false when there is none (or too many ran). */
static bool sim_step_until(struct sim *s, uint64_t until, uint64_t *budget)
{
    const struct sim_event *next = sim_queue_peek(&s->q);
    if (next == NULL || next->at > until)
        return false;
    if ((*budget)-- == 0) {
        sim_fail(s, "Liveness", "more than %d events before %llu ms: a livelock",
                 SIM_SCENARIO_MAX_STEPS, (ull)until);
        return false;
    }
    return sim_step(s);
}

void sim_run_for(struct sim *s, uint64_t ms)
{
    uint64_t until = s->now + ms, budget = SIM_SCENARIO_MAX_STEPS;
    while (!s->failed && sim_step_until(s, until, &budget))
        ;
    if (s->now < until)
        s->now = until;
}

bool sim_run_until(struct sim *s, uint64_t max_ms, bool (*pred)(struct sim *s, void *ctx),
                   void *ctx)
{
    uint64_t until = s->now + max_ms, budget = SIM_SCENARIO_MAX_STEPS;
    while (!s->failed && !pred(s, ctx)) {
        if (!sim_step_until(s, until, &budget)) {
            if (s->now < until)
                s->now = until;
            return !s->failed && pred(s, ctx);
        }
    }
    return !s->failed;
}

/* ---- scenario controls ------------------------------------------------------------------ */

void sim_campaign(struct sim *s, int node)
{
    struct sim_node *n = &s->node[node];
    if (n->raft == NULL)
        return;
    sim_trace_text(s, node, "campaign (start flag)");
    raft_campaign(n->raft, s->now);
    sim_node_after_step(s, n);
}

void sim_set_ticking(struct sim *s, int node, bool on)
{
    struct sim_node *n = &s->node[node];
    n->ticking = on;
    n->tick_gen++;
    n->tick_at = UINT64_MAX;
    if (on && n->raft != NULL)
        sim_node_schedule_tick(s, n);
}

void sim_crash(struct sim *s, int node, enum sim_tear tear)
{
    sim_node_crash(s, &s->node[node], tear);
}

void sim_restart(struct sim *s, int node)
{
    struct sim_node *n = &s->node[node];
    if (n->raft != NULL)
        return;
    n->restart_gen++;
    sim_trace_text(s, node, "restart: term %llu, vote %d, %llu entries on disk", (ull)n->disk.term,
                   n->disk.vote, (ull)n->disk.n);
    sim_node_boot(s, n);
}

void sim_isolate(struct sim *s, int node)
{
    sim_trace_text(s, -1, "partition: n%d isolated", node);
    sim_net_isolate(s, node);
}

void sim_cut(struct sim *s, int from, int to, bool cut)
{
    sim_trace_text(s, -1, "link n%d->n%d %s", from, to, cut ? "cut" : "restored");
    s->cut[from][to] = cut;
}

void sim_heal(struct sim *s)
{
    sim_trace_text(s, -1, "partition healed");
    s->partition_gen++;
    sim_net_heal(s);
}

void sim_set_link_delay(struct sim *s, int from, int to, uint32_t ms)
{
    s->link_delay[from][to] = ms;
}

void sim_set_disk_extra(struct sim *s, int node, uint32_t ms)
{
    s->p.disk_extra_ms[node] = ms;
}

void sim_set_filter(struct sim *s, bool (*keep)(void *ctx, struct raft_msg *m), void *ctx)
{
    s->filter = keep;
    s->filter_ctx = ctx;
}

int sim_client_set(struct sim *s, int node, const char *key, const char *val, uint64_t *op_id)
{
    if (s->node[node].raft == NULL)
        return RK_ERR_NOTLEADER;
    return sim_client_write(s, node, SIM_OP_SET, key, val, false, op_id);
}

int sim_client_get(struct sim *s, int node, const char *key, uint64_t *op_id)
{
    if (s->node[node].raft == NULL)
        return RK_ERR_NOTLEADER;
    return sim_client_read(s, node, key, op_id);
}

int sim_client_setex(struct sim *s, int node, const char *key, const char *val,
                     uint64_t ttl_ms, uint64_t *op_id)
{
    if (s->node[node].raft == NULL)
        return RK_ERR_NOTLEADER;
    return sim_client_write_ttl(s, node, SIM_OP_SETEX, key, val, ttl_ms, false, op_id);
}

int sim_client_expire(struct sim *s, int node, const char *key, uint64_t ttl_ms,
                      uint64_t *op_id)
{
    if (s->node[node].raft == NULL)
        return RK_ERR_NOTLEADER;
    return sim_client_write_ttl(s, node, SIM_OP_EXPIRE, key, "", ttl_ms, false, op_id);
}

bool sim_has_key(const struct sim *s, int node, const char *key)
{
    const struct sim_node *n = &s->node[node];
    return n->kv != NULL && n->raft != NULL &&
           kv_get(n->kv, key, (uint32_t)strlen(key), NULL) != NULL;
}

bool sim_ttl_left(struct sim *s, int node, const char *key, uint64_t *left_ms)
{
    struct sim_node *n = &s->node[node];
    if (n->kv == NULL || n->raft == NULL)
        return false;
    kv_set_now(n->kv, sim_node_clock(s, n)); /* as the server's TTL command */
    return kv_ttl_left(n->kv, key, (uint32_t)strlen(key), left_ms);
}

uint64_t sim_expired_at(struct sim *s, const char *key)
{
    const struct sim_checker *c = &s->chk;
    for (size_t i = c->expired_n; i > 0; i--) {
        const struct sim_expired_rec *r = &c->expired[i - 1];
        if (strcmp(r->key, key) != 0)
            continue;
        uint64_t at = 0;
        sim_check_proposed_at(s, r->index, c->committed[r->index].term, &at);
        return at;
    }
    return 0;
}

enum sim_op_state sim_op_state(const struct sim *s, uint64_t op_id)
{
    return op_id < s->hist.n ? (enum sim_op_state)s->hist.state[op_id] : SIM_OP_UNKNOWN;
}

/* ---- queries ---------------------------------------------------------------------------- */

const struct raft *sim_core(const struct sim *s, int node) { return s->node[node].raft; }
raft_index_t sim_applied(const struct sim *s, int node) { return s->node[node].applied; }
int sim_leader(const struct sim *s) { return sim_current_leader(s); }
bool sim_ever_leader(const struct sim *s, int node) { return s->node[node].ever_leader; }
raft_index_t sim_max_applied(const struct sim *s) { return s->chk.n_committed; }
uint64_t sim_now(const struct sim *s) { return s->now; }
const struct sim_stats *sim_stats(const struct sim *s) { return &s->stats; }
char *sim_trace_tail(const struct sim *s, int n) { return sim_trace_ring_tail(&s->tr, n); }

int sim_term_leader(const struct sim *s, raft_term_t term)
{
    if (term >= s->chk.term_cap)
        return -1;
    return s->chk.term_leader[term] - 1;
}

bool sim_logs_equal(const struct sim *s, int a, int b)
{
    const struct raft *ra = s->node[a].raft, *rb = s->node[b].raft;
    if (ra == NULL || rb == NULL || raft_last_index(ra) != raft_last_index(rb))
        return false;
    raft_index_t first = raft_first_index(ra) > raft_first_index(rb) ? raft_first_index(ra)
                                                                     : raft_first_index(rb);
    for (raft_index_t i = first; i <= raft_last_index(ra); i++)
        if (sim_check_entry_fp(raft_entry_at(ra, i)) != sim_check_entry_fp(raft_entry_at(rb, i)))
            return false;
    return true;
}
