/* tools/bench_failover.c - raft_bench --failover: kill -9 of the leader, then the time until
 * the first acknowledged write, seen two ways: a prober that every 10 ms sends one write to
 * each server on a fresh connection (like shared/bench/failover.py does for etcd), and a
 * writer going through client/session.c (what a raft_client user sees). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../client/session.h"
#include "../common/errors.h"
#include "bench.h"

#define PROBE_EVERY_MS 10
#define PROBE_CONNECT_MS 100
#define PROBE_IO_MS 2000
#define SESSION_TIMEOUT_MS 10000
#define HEALTHY_WAIT_MS 20000
#define ACK_WAIT_MS 30000
#define MAX_TRIALS 64

struct fo_shared {
    struct bench_cluster *c;
    atomic_bool stop;
    atomic_llong kill_ns;        /* when the current kill happened; 0 between trials */
    atomic_llong probe_ack_ns;   /* first prober ack of a write sent after kill_ns */
    atomic_llong session_ack_ns; /* first session ack of a write sent after kill_ns */
    atomic_long session_acks;    /* every session ack, to see the writer works */
    /* the session writer parks here around the kill, so its next call starts after it */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool hold, held;
};

struct prober {
    struct fo_shared *sh;
    int node;
    pthread_t thread;
};

/* Sets *slot to t if it is still 0. */
static void first_ack(atomic_llong *slot, long long t)
{
    long long zero = 0;
    atomic_compare_exchange_strong(slot, &zero, t);
}

/* One write to node i on a fresh connection: true if acknowledged. */
static bool probe_once(const struct bench_cluster *c, int i, struct proto_buf *req)
{
    struct bench_conn conn;
    char err[BENCH_ERR_LEN];
    if (bench_conn_open(&conn, c->nodes[i].host, c->nodes[i].port, PROBE_CONNECT_MS,
                        PROBE_IO_MS, err, sizeof(err)) != RK_OK)
        return false;
    int st = bench_conn_call(&conn, req->data, req->len, NULL);
    bench_conn_close(&conn);
    return st == PROTO_ST_OK;
}

static void *prober_main(void *arg)
{
    struct prober *p = arg;
    struct fo_shared *sh = p->sh;
    char key[32];
    snprintf(key, sizeof(key), "failover/probe/%d", p->node);
    struct proto_client_req r = { .op = PROTO_OP_SET, .key = key, .key_len = (uint32_t)strlen(key),
                                  .val = "x", .val_len = 1 };
    struct proto_buf req = { 0 };
    if (proto_encode_client_req(&req, &r) != RK_OK)
        return NULL;
    int64_t next = bench_now_ns();
    while (!atomic_load(&sh->stop)) {
        int64_t sent = bench_now_ns();
        long long kill_at = atomic_load(&sh->kill_ns);
        if (probe_once(sh->c, p->node, &req) && kill_at != 0 && sent >= kill_at)
            first_ack(&sh->probe_ack_ns, bench_now_ns());
        next += (int64_t)PROBE_EVERY_MS * 1000000;
        int64_t wait = next - bench_now_ns();
        if (wait > 0)
            bench_sleep_ms((int)(wait / 1000000) + 1);
        else
            next = bench_now_ns();
    }
    proto_buf_free(&req);
    return NULL;
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
    const char key[] = "failover/session", val[] = "x";
    while (!atomic_load(&sh->stop)) {
        session_park(sh);
        int64_t sent = bench_now_ns();
        long long kill_at = atomic_load(&sh->kill_ns);
        struct client_reply reply;
        int rc = client_session_call(s, PROTO_OP_SET, key, sizeof(key) - 1, val, 1, &reply, err,
                                     sizeof(err));
        if (rc != RK_OK)
            continue;
        if (reply.status == PROTO_ST_OK) {
            atomic_fetch_add(&sh->session_acks, 1);
            if (kill_at != 0 && sent >= kill_at)
                first_ack(&sh->session_ack_ns, bench_now_ns());
        }
        client_reply_free(&reply);
    }
    client_session_free(s);
    return NULL;
}

/* Waits until the session writer has had `more` acks beyond `base`; false on timeout. */
static bool wait_session_acks(struct fo_shared *sh, long base, long more, int timeout_ms)
{
    int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
    while (atomic_load(&sh->session_acks) < base + more) {
        if (bench_now_ns() >= deadline)
            return false;
        bench_sleep_ms(5);
    }
    return true;
}

/* Holds the session writer between calls, kills node i, and lets the writer go. */
static void kill_leader(struct fo_shared *sh, int i)
{
    pthread_mutex_lock(&sh->mu);
    sh->hold = true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SESSION_TIMEOUT_MS / 1000 + 5; /* the writer's call ends by then */
    while (!sh->held && pthread_cond_timedwait(&sh->cond, &sh->mu, &until) == 0) {
    }
    atomic_store(&sh->probe_ack_ns, 0);
    atomic_store(&sh->session_ack_ns, 0);
    atomic_store(&sh->kill_ns, bench_now_ns()); /* taken immediately before the kill */
    bench_cluster_kill_node(sh->c, i);
    sh->hold = false;
    pthread_cond_broadcast(&sh->cond);
    pthread_mutex_unlock(&sh->mu);
}

/* Milliseconds from the kill to the ack in slot, or -1 if none came. */
static double since_kill_ms(struct fo_shared *sh, atomic_llong *slot)
{
    long long t = atomic_load(slot);
    return t == 0 ? -1 : (double)(t - atomic_load(&sh->kill_ns)) / 1e6;
}

/* Waits for both first acks (bounded), then fills this trial's numbers. */
static void measure_trial(struct fo_shared *sh, struct bench_failover_result *r, int t)
{
    int64_t deadline = bench_now_ns() + (int64_t)ACK_WAIT_MS * 1000000;
    while ((atomic_load(&sh->probe_ack_ns) == 0 || atomic_load(&sh->session_ack_ns) == 0) &&
           bench_now_ns() < deadline)
        bench_sleep_ms(1);
    r->probe_ms[t] = since_kill_ms(sh, &sh->probe_ack_ns);
    r->session_ms[t] = since_kill_ms(sh, &sh->session_ack_ns);
    if (r->probe_ms[t] < 0 || r->session_ms[t] < 0)
        r->failed++;
    atomic_store(&sh->kill_ns, 0);
}

/* Restarts node i and waits until every server follows one leader and i has caught up. */
static int heal(struct fo_shared *sh, int i, char *err, size_t errlen)
{
    struct bench_cluster *c = sh->c;
    int rc = bench_cluster_start_node(c, i);
    int leader = rc == RK_OK ? bench_wait_leader(c, true, HEALTHY_WAIT_MS) : -1;
    struct bench_status st;
    if (leader >= 0 && bench_status(c, leader, &st, 1000) == RK_OK &&
        bench_wait_applied(c, i, st.commit, HEALTHY_WAIT_MS) == RK_OK)
        return RK_OK;
    snprintf(err, errlen, "cluster not whole again after restarting %s", c->nodes[i].name);
    return RK_ERR_TIMEOUT;
}

static int run_trials(struct fo_shared *sh, int trials, struct bench_failover_result *r,
                      char *err, size_t errlen)
{
    unsigned seed = (unsigned)bench_now_ns();
    for (int t = 0; t < trials; t++) {
        int leader = bench_wait_leader(sh->c, true, HEALTHY_WAIT_MS);
        if (leader < 0 || !wait_session_acks(sh, atomic_load(&sh->session_acks), 3, 10000)) {
            snprintf(err, errlen, "trial %d: no healthy leader with working writes", t + 1);
            return RK_ERR_TIMEOUT;
        }
        bench_sleep_ms(200 + (int)(rand_r(&seed) % 200)); /* random phase vs heartbeats */
        kill_leader(sh, leader);
        measure_trial(sh, r, t);
        r->trials = t + 1;
        fprintf(stderr, "  failover %d/%d: killed %s: prober %.1f ms, session %.1f ms\n", t + 1,
                trials, sh->c->nodes[leader].name, r->probe_ms[t], r->session_ms[t]);
        int rc = heal(sh, leader, err, errlen);
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

/* Median and max over the trials that got an ack. */
static void summarize(const double *ms, int n, double *median, double *max)
{
    double ok[MAX_TRIALS];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (ms[i] >= 0)
            ok[k++] = ms[i];
    *median = bench_median(ok, k);
    *max = k ? ok[k - 1] : 0;
}

int bench_failover(struct bench_cluster *c, int trials, struct bench_failover_result *r,
                   char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (!c->owned || trials < 1 || trials > MAX_TRIALS) {
        snprintf(err, errlen, "failover needs a cluster raft_bench started and 1..%d kills",
                 MAX_TRIALS);
        return RK_ERR_INVAL;
    }
    struct fo_shared sh = { .c = c };
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cond, NULL);
    struct prober probers[BENCH_MAX_NODES];
    pthread_t writer;
    for (int i = 0; i < c->n; i++) {
        probers[i] = (struct prober){ .sh = &sh, .node = i };
        pthread_create(&probers[i].thread, NULL, prober_main, &probers[i]);
    }
    pthread_create(&writer, NULL, session_main, &sh);
    int rc = run_trials(&sh, trials, r, err, errlen);
    atomic_store(&sh.stop, true);
    pthread_mutex_lock(&sh.mu);
    pthread_cond_broadcast(&sh.cond);
    pthread_mutex_unlock(&sh.mu);
    pthread_join(writer, NULL);
    for (int i = 0; i < c->n; i++)
        pthread_join(probers[i].thread, NULL);
    pthread_cond_destroy(&sh.cond);
    pthread_mutex_destroy(&sh.mu);
    summarize(r->probe_ms, r->trials, &r->probe_median_ms, &r->probe_max_ms);
    summarize(r->session_ms, r->trials, &r->session_median_ms, &r->session_max_ms);
    return rc;
}
