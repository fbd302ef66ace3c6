/* tests/sim/sim_run.c - one random run per seed: parameters drawn from the seed, a random
 * fault, client and membership schedule checked after every step, then everything healed
 * and progress required (liveness); and the same in a child process, so a crash is
 * reported too. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim_internal.h"

typedef unsigned long long ull;

#define RUN_DEFAULT_BIN "build/default/sim"

/* The core's configuration, drawn per seed so that the schedules reach corners the
 * server's defaults never do: batches cut by count or by bytes down to one entry (a
 * follower then gets a prefix of what it lacks), heartbeat and election timing, pre-vote
 * and check-quorum each on or off. The core's REPLICATE window is 8 batches' worth of
 * entries; with batches cut by bytes that is 8 x max_append_entries messages in flight,
 * and on a network that reorders everything (not TCP) their stale refusals keep
 * restarting the window: so a byte limit comes with at most 4 entries a batch. */
static void run_randomize_core(struct sim *s)
{
    static const uint32_t batches[] = { 1, 1, 2, 3, 4, 8, 64, 0 };
    static const uint32_t bytes[] = { 0, 0, 0, 1, 40, 100, 300 };
    s->p.max_append_bytes = bytes[sim_below(s, 7)];
    s->p.max_append_entries = batches[sim_below(s, s->p.max_append_bytes != 0 ? 5 : 8)];
    s->p.heartbeat_ms = (uint32_t)sim_between(s, 10, 80);
    uint32_t floor = 3 * s->p.heartbeat_ms > 100 ? 3 * s->p.heartbeat_ms : 100;
    s->p.election_min_ms = (uint32_t)sim_between(s, floor, floor + 250);
    s->p.election_max_ms = s->p.election_min_ms +
                           (uint32_t)sim_between(s, s->p.election_min_ms / 4,
                                                 2ull * s->p.election_min_ms);
    s->p.pre_vote = sim_chance(s, 500);
    s->p.check_quorum = sim_chance(s, 500);
}

/* Membership changes in most runs (thesis §4): servers added, removed and leadership
 * handed over every member_gap_ms or so; the core's limits for an add short enough that
 * adds fail within a run too. The servers added later get their disk and timer. */
static void run_randomize_members(struct sim *s)
{
    s->p.random_members = sim_chance(s, 700);
    s->p.member_gap_ms = (uint32_t)sim_between(s, 150, 1500);
    s->p.catchup_max_ms = (uint32_t)sim_between(s, 4ull * s->p.election_max_ms, 5000);
    s->p.unreachable_ms = (uint32_t)sim_between(s, 2ull * s->p.election_max_ms,
                                                6ull * s->p.election_max_ms);
    for (int i = s->p.n_nodes; i < SIM_SLOTS; i++) {
        s->p.tick_jitter_ms[i] = (uint32_t)sim_below(s, 16);
        s->p.disk_extra_ms[i] = sim_chance(s, 200) ? (uint32_t)sim_between(s, 5, 40) : 0;
    }
}

/* Draws the network, disk, timer, batching and snapshot parameters of a random run; the
 * core's own configuration is drawn too (run_randomize_core). */
static void run_randomize(struct sim *s)
{
    static const uint32_t chunks[] = { 64, 256, 1024, 4096 };
    run_randomize_core(s);
    sim_fault_weather(s);
    s->p.disk_min_ms = (uint32_t)sim_between(s, 0, 2);
    s->p.disk_max_ms = s->p.disk_min_ms + (uint32_t)sim_between(s, 1, 12);
    for (int i = 0; i < s->p.n_nodes; i++) {
        s->p.tick_jitter_ms[i] = (uint32_t)sim_below(s, 16);
        /* some disks are slow: more happens while a write is in flight */
        s->p.disk_extra_ms[i] = sim_chance(s, 200) ? (uint32_t)sim_between(s, 5, 40) : 0;
    }
    s->p.client_gap_ms = (uint32_t)sim_between(s, 3, 30);
    s->p.burst_permille = sim_chance(s, 500) ? 0 : (uint32_t)sim_between(s, 10, 150);
    s->p.stale_permille = sim_chance(s, 500) ? 0 : (uint32_t)sim_between(s, 20, 250);
    s->p.trim_permille = sim_chance(s, 500) ? 0 : (uint32_t)sim_between(s, 10, 200);
    s->p.early_msgs = sim_chance(s, 750);
    s->p.disconnects = sim_chance(s, 700);
    s->p.fault_gap_ms = (uint32_t)sim_between(s, 150, 1200);
    s->p.leader_crash_permille = sim_chance(s, 500) ? 0 : (uint32_t)sim_between(s, 100, 400);
    s->p.snap_every = sim_chance(s, 400) ? 0 : (uint32_t)sim_between(s, 5, 40);
    s->p.snap_lag = (uint32_t)sim_below(s, s->p.snap_every + 1ull);
    s->p.snap_chunk = chunks[sim_below(s, 4)];
    s->p.snap_max_chunks = 64; /* one chunk per round trip: keep transfers within seconds */
    /* EXPIRED entries of 1 .. 3 keys in some runs (a hash of the seed, not the PRNG) */
    uint64_t h = sim_check_mix(s->p.seed ^ 0x6578706972790000ULL);
    s->p.expiry_batch_keys = h % 4 == 0 ? (uint32_t)(1 + (h >> 8) % 3) : 0;
    s->p.random_clients = true;
    s->p.random_faults = true;
    run_randomize_members(s);
}

/* Ends every fault: links restored, no loss, paused nodes resumed, crashed ones restarted;
 * and the network is TCP again: each link keeps its order (a constant delay), and
 * AppendEntries arrive whole. The core's pipelining assumes both for its speed, not for
 * its safety, and with batches of one entry a network that keeps reordering and cutting
 * them can hold a follower's catching up back for longer than the liveness bound. */
static void run_heal_all(struct sim *s)
{
    s->faults_on = false;
    s->clients_on = false;
    s->partition_gen++;
    sim_net_heal(s);
    s->p.loss_permille = 0;
    s->p.dup_permille = 0;
    s->p.straggle_permille = 0;
    s->p.trim_permille = 0;
    s->p.delay_max_ms = s->p.delay_min_ms;
    sim_trace_text(s, -1, "heal everything; from now on a write must commit within %d ms",
                   SIM_LIVENESS_MS);
    sim_member_heal(s);
    for (int i = 0; i < s->n_slots; i++) {
        struct sim_node *n = &s->node[i];
        if (!n->present || n->retired)
            continue;
        if (n->raft == NULL) {
            sim_restart(s, i);
        } else if (sim_node_paused(s, n)) {
            n->paused_until = s->now;
            n->pause_gen++;
        }
    }
}

/* The probe write the liveness check keeps trying, or NULL. */
static const struct sim_op *run_probe(const struct sim *s)
{
    for (size_t i = 0; i < s->n_ops; i++)
        if (s->ops[i].id == s->probe_id)
            return &s->ops[i];
    return NULL;
}

/* Every server of the configuration applied the probe write. */
static bool run_converged(const struct sim *s)
{
    for (int i = 0; i < s->n_slots; i++)
        if (sim_member_counts(s, i) && s->node[i].applied < s->probe_acked)
            return false;
    return true;
}

/* Liveness: a leader takes the probe write and it is acknowledged. As the server fails a
 * write whose leader stepped down or changed term, the client then tries again on the
 * current leader. */
static bool run_live(struct sim *s)
{
    if (s->probe_acked != 0)
        return true;
    if (s->probe_id != 0) {
        const struct sim_op *op = run_probe(s);
        const struct raft *r = op ? s->node[op->node].raft : NULL;
        if (r == NULL || raft_role(r) != RAFT_LEADER || raft_term(r) != op->term)
            s->probe_id = 0;
    }
    int leader = sim_current_leader(s);
    if (s->probe_id == 0 && leader >= 0)
        sim_client_write(s, leader, SIM_OP_SET, "live", "yes", true, &s->probe_id);
    return false;
}

/* Steps until done(s) holds or deadline passes (or too many steps ran). */
static bool run_until(struct sim *s, bool (*done)(struct sim *s), uint64_t deadline,
                      uint64_t *budget)
{
    while (!s->failed && !done(s) && s->now <= deadline && (*budget)-- > 0 && sim_step(s))
        ;
    return !s->failed && done(s);
}

static bool run_converged_step(struct sim *s)
{
    return run_converged(s);
}

/* After every fault healed: a write commits within SIM_LIVENESS_MS, and every node
 * applies it within SIM_CONVERGE_MS (a follower may need a whole snapshot first). */
static void run_check_liveness(struct sim *s)
{
    uint64_t healed_at = s->now, budget = SIM_LIVENESS_MAX_STEPS;
    bool live = run_until(s, run_live, healed_at + SIM_LIVENESS_MS, &budget);
    if (s->failed)
        return;
    ull after = (ull)(s->now - healed_at);
    int leader = sim_current_leader(s);
    if (!live && leader < 0) {
        sim_fail(s, "Liveness", "no leader %llu ms after every fault healed", after);
    } else if (!live) {
        sim_fail(s, "Liveness", "n%d leads term %llu but no write committed %llu ms after "
                 "every fault healed", leader, (ull)raft_term(s->node[leader].raft), after);
    } else if (!run_until(s, run_converged_step, healed_at + SIM_CONVERGE_MS, &budget)) {
        if (!s->failed)
            sim_fail(s, "Liveness", "a write committed at index %llu but not every node "
                     "applied it %llu ms after every fault healed", (ull)s->probe_acked,
                     (ull)(s->now - healed_at));
    } else {
        s->stats.liveness_ms = s->now - healed_at;
    }
}

static char *run_report(uint64_t seed, const struct sim_run_opts *o, const char *invariant,
                        const char *detail, const char *where, const char *tail)
{
    size_t cap = strlen(tail) + strlen(detail) + 1024;
    char *report = malloc(cap);
    if (report == NULL)
        abort();
    snprintf(report, cap,
             "SIM FAILURE: seed %llu (%d nodes, %u steps)\n"
             "invariant: %s\n"
             "detail: %s\n"
             "%s"
             "last trace lines:\n%s"
             "replay: %s --seeds %llu..%llu --nodes %d --steps %u --trace\n",
             (ull)seed, o->n_nodes, o->steps, invariant, detail, where, tail,
             o->replay_bin ? o->replay_bin : RUN_DEFAULT_BIN, (ull)seed, (ull)seed, o->n_nodes,
             o->steps);
    return report;
}

static void run_fill_result(struct sim *s, const struct sim_run_opts *o, struct sim_result *res)
{
    res->ok = !s->failed;
    res->steps = s->steps;
    res->sim_ms = s->now;
    res->trace_hash = s->tr.hash;
    res->stats = s->stats;
    res->stats.sim_ms = s->now;
    snprintf(res->invariant, sizeof(res->invariant), "%s", s->fail_inv);
    snprintf(res->detail, sizeof(res->detail), "%s", s->fail_detail);
    if (!s->failed)
        return;
    char where[96];
    snprintf(where, sizeof(where), "at step %llu, %llu ms simulated\n", (ull)s->steps,
             (ull)s->now);
    char *tail = sim_trace_ring_tail(&s->tr, SIM_TRACE_TAIL);
    res->report = run_report(res->seed, o, s->fail_inv, s->fail_detail, where, tail);
    free(tail);
}

/* The run in progress, for the fatal-signal handler of an isolated run. */
static struct sim *run_current;

bool sim_run_seed(uint64_t seed, const struct sim_run_opts *o, struct sim_result *res)
{
    memset(res, 0, sizeof(*res));
    res->seed = seed;
    res->n_nodes = o->n_nodes;
    struct sim_params p;
    sim_params_quiet(&p, o->n_nodes, seed);
    p.trace_fn = o->trace_fn;
    p.trace_ctx = o->trace_ctx;
    struct sim *s = sim_new(&p);
    if (s == NULL) {
        snprintf(res->invariant, sizeof(res->invariant), "Configuration");
        snprintf(res->detail, sizeof(res->detail), "bad node count %d", o->n_nodes);
        return false;
    }
    run_current = s;
    run_randomize(s);
    sim_start(s);
    while (!s->failed && s->steps < o->steps && sim_step(s))
        ;
    if (!s->failed)
        sim_check_durable_majority(s);
    if (!s->failed) {
        run_heal_all(s);
        run_check_liveness(s);
    }
    run_fill_result(s, o, res);
    run_current = NULL;
    sim_free(s);
    return res->ok;
}

void sim_result_free(struct sim_result *res)
{
    free(res->report);
    res->report = NULL;
}

/* ---- isolated runs: a child process per seed ------------------------------------------ */

static const struct sim_run_opts *run_child_opts;
static int run_child_fd = -1;

static void run_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* The result, then the report's text, through the pipe to the parent. */
static void run_send_result(int fd, const struct sim_result *res)
{
    run_write_all(fd, res, sizeof(*res));
    if (res->report != NULL)
        run_write_all(fd, res->report, strlen(res->report));
}

/* The core crashed inside a step: report it like a broken invariant, trace included. */
static void run_on_fatal_signal(int sig)
{
    struct sim *s = run_current;
    if (s != NULL && run_child_fd >= 0) {
        s->failed = false;
        sim_fail(s, "Crash", "the process died of signal %d (%s) in step %llu", sig,
                 strsignal(sig), (ull)s->steps);
        struct sim_result res;
        memset(&res, 0, sizeof(res));
        res.seed = s->p.seed;
        res.n_nodes = s->p.n_nodes;
        run_fill_result(s, run_child_opts, &res);
        run_send_result(run_child_fd, &res);
    }
    fflush(stdout);
    _exit(3);
}

static void run_child(uint64_t seed, const struct sim_run_opts *o, int fd)
{
    static char alt_stack[1 << 16];
    stack_t ss = { .ss_sp = alt_stack, .ss_size = sizeof(alt_stack) };
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = run_on_fatal_signal;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    run_child_opts = o;
    run_child_fd = fd;
    if (o->timeout_s != 0)
        alarm(o->timeout_s); /* its default action ends the child: see run_lost_child */
    struct sim_result res;
    sim_run_seed(seed, o, &res);
    run_send_result(fd, &res);
    fflush(stdout);
    _exit(0);
}

static bool run_read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

/* Everything left in the pipe, as a string (NULL if nothing). */
static char *run_read_text(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            abort();
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            continue;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (len == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The child died without a word (killed, a sanitizer ended it, or its alarm rang: a run
 * that never ends, such as a livelock inside the core, is a failure too). */
static void run_lost_child(uint64_t seed, const struct sim_run_opts *o, int status,
                           struct sim_result *res)
{
    memset(res, 0, sizeof(*res));
    res->seed = seed;
    res->n_nodes = o->n_nodes;
    if (o->timeout_s != 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        snprintf(res->invariant, sizeof(res->invariant), "Timeout");
        snprintf(res->detail, sizeof(res->detail), "the run took longer than %u s",
                 o->timeout_s);
    } else {
        snprintf(res->invariant, sizeof(res->invariant), "Crash");
        snprintf(res->detail, sizeof(res->detail), "the run ended without a result (%s %d)",
                 WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    res->report = run_report(seed, o, res->invariant, res->detail, "", "(none)\n");
}

bool sim_run_seed_isolated(uint64_t seed, const struct sim_run_opts *o, struct sim_result *res)
{
    int p[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(p) != 0)
        return sim_run_seed(seed, o, res);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return sim_run_seed(seed, o, res);
    }
    if (pid == 0) {
        close(p[0]);
        run_child(seed, o, p[1]);
    }
    close(p[1]);
    bool whole = run_read_all(p[0], res, sizeof(*res));
    char *text = run_read_text(p[0]);
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!whole) {
        free(text);
        run_lost_child(seed, o, status, res);
        return false;
    }
    res->report = text; /* the child's pointer meant nothing here */
    return res->ok;
}
