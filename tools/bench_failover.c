/* tools/bench_failover.c - raft_bench --failover: kill -9 of the leader, then the time
 * until the first acknowledged write, seen two ways: by the probers (bench_probe.c: a
 * write to every server on a fresh connection every 10 ms, as for etcd) and by a writer
 * going through client/session.c (what a raft_client user sees); the killed server is
 * restarted and caught up before the next kill. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../client/session.h"
#include "../common/clock.h"
#include "../common/errors.h"
#include "bench.h"

#define SESSION_TIMEOUT_MS 10000
#define HEALTHY_WAIT_MS 20000
#define ACK_WAIT_MS 30000

struct fo_shared {
    struct ctl_cluster *c;
    atomic_bool stop;
    atomic_ullong kill_ns;        /* when the current kill happened; 0 between trials */
    atomic_ullong session_ack_ns; /* first session ack of a write sent after kill_ns */
    atomic_long session_acks;     /* every session ack, to see the writer works */
    /* the session writer parks here around the kill, so its next call starts after it */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool hold, held;
};

/* Sets *slot to t if it is still 0. */
static void first_ack(atomic_ullong *slot, unsigned long long t)
{
    unsigned long long zero = 0;
    atomic_compare_exchange_strong(slot, &zero, t);
}

/* Parks while main holds the writer (around a kill). */
static void session_park(struct fo_shared *sh)
{
    pthread_mutex_lock(&sh->mu);
    if (sh->hold) {
        sh->held = true;
        pthread_cond_broadcast(&sh->cond);
        while (sh->hold && !atomic_load(&sh->stop))
            pthread_cond_wait(&sh->cond, &sh->mu);
        sh->held = false;
    }
    pthread_mutex_unlock(&sh->mu);
}

/* One write through the session; counts its ack. */
static void session_write(struct fo_shared *sh, struct client_session *s)
{
    const char key[] = "failover/session", val[] = "x";
    char err[BENCH_ERR_LEN];
    uint64_t sent = rk_clock_ns(), kill_at = atomic_load(&sh->kill_ns);
    struct client_reply reply;
    if (client_session_call(s, PROTO_OP_SET, key, sizeof(key) - 1, val, 1, &reply, err,
                            sizeof(err)) != RK_OK)
        return;
    if (reply.status == PROTO_ST_OK) {
        atomic_fetch_add(&sh->session_acks, 1);
        if (kill_at != 0 && sent >= kill_at)
            first_ack(&sh->session_ack_ns, rk_clock_ns());
    }
    client_reply_free(&reply);
}

static void *session_main(void *arg)
{
    struct fo_shared *sh = arg;
    char err[BENCH_ERR_LEN];
    struct client_session *s = client_session_new(NULL, 0, sh->c->registry_path,
                                                  SESSION_TIMEOUT_MS, false, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "raft_bench: failover session: %s\n", err);
        return NULL;
    }
    while (!atomic_load(&sh->stop)) {
        session_park(sh);
        session_write(sh, s);
    }
    client_session_free(s);
    return NULL;
}

/* Waits until the session writer has had `more` acks beyond `base`; false on timeout. */
static bool wait_session_acks(struct fo_shared *sh, long base, long more, int timeout_ms)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)timeout_ms;
    while (atomic_load(&sh->session_acks) < base + more) {
        if (rk_clock_ms() >= deadline)
            return false;
        rk_sleep_ms(5);
    }
    return true;
}

/* Holds the session writer between calls, kills node i, and lets the writer go. */
static void kill_leader(struct fo_shared *sh, struct bench_probers *pr, int i)
{
    pthread_mutex_lock(&sh->mu);
    sh->hold = true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SESSION_TIMEOUT_MS / 1000 + 5; /* the writer's call ends by then */
    while (!sh->held && pthread_cond_timedwait(&sh->cond, &sh->mu, &until) == 0) {
    }
    atomic_store(&sh->session_ack_ns, 0);
    bench_probers_arm(pr);
    atomic_store(&sh->kill_ns, rk_clock_ns()); /* taken immediately before the kill */
    ctl_kill(sh->c, i);
    sh->hold = false;
    pthread_cond_broadcast(&sh->cond);
    pthread_mutex_unlock(&sh->mu);
}

/* Waits for both first acks (bounded), then fills trial t's numbers. */
static void measure_trial(struct fo_shared *sh, struct bench_probers *pr,
                          struct bench_failover_result *r, int t)
{
    r->probe_ms[t] = bench_probers_wait(pr, ACK_WAIT_MS);
    uint64_t deadline = rk_clock_ms() + ACK_WAIT_MS;
    while (atomic_load(&sh->session_ack_ns) == 0 && rk_clock_ms() < deadline)
        rk_sleep_ms(1);
    unsigned long long ack = atomic_load(&sh->session_ack_ns);
    r->session_ms[t] = ack == 0 ? -1 : (double)(ack - atomic_load(&sh->kill_ns)) / 1e6;
    if (r->probe_ms[t] < 0 || r->session_ms[t] < 0)
        r->failed++;
    atomic_store(&sh->kill_ns, 0);
}

/* Restarts node i and waits until every server follows one leader and i has caught up. */
static int heal(struct ctl_cluster *c, int i, char *err, size_t errlen)
{
    int rc = ctl_start(c, i);
    int leader = rc == RK_OK ? ctl_wait_agreement(c, HEALTHY_WAIT_MS) : -1;
    struct ctl_status st;
    if (leader >= 0 && ctl_status_of(c, leader, &st, 1000) == RK_OK &&
        ctl_wait_applied(c, i, st.commit, HEALTHY_WAIT_MS) == RK_OK)
        return RK_OK;
    snprintf(err, errlen, "cluster not whole again after restarting %s", c->servers[i].name);
    return RK_ERR_TIMEOUT;
}

static int run_trials(struct fo_shared *sh, struct bench_probers *pr, int trials,
                      struct bench_failover_result *r, char *err, size_t errlen)
{
    unsigned seed = (unsigned)rk_clock_ns();
    for (int t = 0; t < trials; t++) {
        int leader = ctl_wait_agreement(sh->c, HEALTHY_WAIT_MS);
        if (leader < 0 || !wait_session_acks(sh, atomic_load(&sh->session_acks), 3, 10000)) {
            snprintf(err, errlen, "trial %d: no healthy leader with working writes", t + 1);
            return RK_ERR_TIMEOUT;
        }
        rk_sleep_ms(200 + (int)(rand_r(&seed) % 200)); /* random phase vs heartbeats */
        kill_leader(sh, pr, leader);
        measure_trial(sh, pr, r, t);
        r->trials = t + 1;
        fprintf(stderr, "  failover %d/%d: killed %s: prober %.1f ms, session %.1f ms\n", t + 1,
                trials, sh->c->servers[leader].name, r->probe_ms[t], r->session_ms[t]);
        int rc = heal(sh->c, leader, err, errlen);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

double bench_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_failover_summary(const double *ms, int n, double *median, double *max)
{
    double ok[BENCH_MAX_TRIALS];
    int k = 0;
    for (int i = 0; i < n && k < BENCH_MAX_TRIALS; i++)
        if (ms[i] >= 0)
            ok[k++] = ms[i];
    *median = bench_median(ok, k);
    *max = k ? ok[k - 1] : 0;
}

int bench_failover(struct ctl_cluster *c, int trials, struct bench_failover_result *r,
                   char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (!c->owned || trials < 1 || trials > BENCH_MAX_TRIALS) {
        snprintf(err, errlen, "failover needs a cluster raft_bench started and 1..%d kills",
                 BENCH_MAX_TRIALS);
        return RK_ERR_INVAL;
    }
    struct fo_shared sh = { .c = c };
    struct bench_target targets[CTL_MAX_SERVERS];
    for (int i = 0; i < c->n; i++) {
        targets[i] = (struct bench_target){ .port = c->servers[i].port };
        snprintf(targets[i].host, sizeof(targets[i].host), "%s", c->servers[i].host);
    }
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cond, NULL);
    struct bench_probers *pr = bench_probers_start(targets, c->n);
    pthread_t writer;
    bool writing = pr != NULL && pthread_create(&writer, NULL, session_main, &sh) == 0;
    int rc = writing ? run_trials(&sh, pr, trials, r, err, errlen) : RK_ERR_NOMEM;
    atomic_store(&sh.stop, true);
    pthread_mutex_lock(&sh.mu);
    pthread_cond_broadcast(&sh.cond);
    pthread_mutex_unlock(&sh.mu);
    if (writing)
        pthread_join(writer, NULL);
    bench_probers_stop(pr);
    pthread_cond_destroy(&sh.cond);
    pthread_mutex_destroy(&sh.mu);
    bench_failover_summary(r->probe_ms, r->trials, &r->probe_median_ms, &r->probe_max_ms);
    bench_failover_summary(r->session_ms, r->trials, &r->session_median_ms,
                           &r->session_max_ms);
    return rc;
}
