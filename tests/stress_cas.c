/* tests/stress_cas.c - compare-and-set under faults: 8 clients increment one counter on a
 * real 5-server cluster (read it with `rev`, then `cas counter REV VALUE+1`, retrying on
 * FAILED) while servers, often the leader, are killed with SIGKILL or stopped with
 * SIGSTOP and brought back. Every increment answered OK must be one of its own: no two
 * share the revision they compared or the value they wrote (a lost update), and the
 * revisions they were given grow with the value. A cas whose outcome is unknown (a
 * timeout, an error) may or may not have counted. At the end the counter holds at least
 * the OK increments and at most those plus the unknown ones; a FAILED is definite, so a
 * retried cas that had been applied must come back as its recorded OK (Raft thesis
 * §6.3), or the count comes out too high. Each `rev` read of a value an OK cas wrote must
 * give that cas's revision. */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define N_SERVERS 5
#define N_CLIENTS 8
#define MAX_ATTEMPTS 400          /* per client */
#define OP_TIMEOUT_MS 1000
#define RUN_MS 12000              /* the clients stop after this */
#define N_FAULTS 6
#define MAX_VALUE (N_CLIENTS * MAX_ATTEMPTS)
#define MIN_OK 20                 /* liveness: increments answered OK over the run */
#define KEY "counter"

/* What the clients saw. Indexed by the value a cas wrote (1..MAX_VALUE). */
struct counter_log {
    pthread_mutex_t mu;
    int ok_writer[MAX_VALUE + 1];       /* client + 1 whose cas wrote it, answered OK */
    uint64_t ok_expect[MAX_VALUE + 1];  /* the revision it compared */
    uint64_t ok_rev[MAX_VALUE + 1];     /* the revision it was given */
    int ok, unknown, failed, reads;
    char violation[512];                /* the first one */
    int violations;
};

static struct counter_log lg = { .mu = PTHREAD_MUTEX_INITIALIZER };
static atomic_bool stop_clients;

struct client {
    int id;
    struct ctl_cluster *c;
    pthread_t thread;
    struct client_session *s;
    /* the rev reads: value and revision seen (checked once every OK is known) */
    uint64_t read_val[MAX_ATTEMPTS], read_rev[MAX_ATTEMPTS];
    int n_reads;
};

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    pthread_mutex_lock(&lg.mu);
    if (lg.violations++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(lg.violation, sizeof(lg.violation), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&lg.mu);
}

/* The counter as `rev` gives it: true with its revision and value (0 and 0 if absent). */
static bool read_counter(struct client_session *s, uint64_t *rev, uint64_t *val)
{
    char out[128];
    int st = harness_call(s, PROTO_OP_REV, KEY, NULL, out, sizeof(out));
    *rev = *val = 0;
    if (st == PROTO_ST_NIL)
        return true;
    return st == PROTO_ST_VALUE && sscanf(out, "%" SCNu64 " %" SCNu64, rev, val) == 2;
}

static void record_ok(int client, uint64_t expect, uint64_t value, uint64_t new_rev)
{
    pthread_mutex_lock(&lg.mu);
    lg.ok++;
    bool twice = value == 0 || value > MAX_VALUE || lg.ok_writer[value] != 0;
    if (!twice) {
        lg.ok_writer[value] = client + 1;
        lg.ok_expect[value] = expect;
        lg.ok_rev[value] = new_rev;
    }
    pthread_mutex_unlock(&lg.mu);
    if (twice)
        violation("two increments answered OK wrote %" PRIu64 " (a lost update)", value);
}

/* One increment attempt: read, then cas. */
static void attempt(struct client *cl)
{
    uint64_t rev, val;
    if (!read_counter(cl->s, &rev, &val))
        return;
    if (cl->n_reads < MAX_ATTEMPTS) {
        cl->read_val[cl->n_reads] = val;
        cl->read_rev[cl->n_reads++] = rev;
    }
    char arg[64], out[128];
    snprintf(arg, sizeof(arg), "%" PRIu64 " %" PRIu64, rev, val + 1);
    int st = harness_call(cl->s, PROTO_OP_CAS, KEY, arg, out, sizeof(out));
    uint64_t got = 0;
    bool number = sscanf(out, "%" SCNu64, &got) == 1;
    if (st == PROTO_ST_OK && number && got > rev) {
        record_ok(cl->id, rev, val + 1, got);
    } else if (st == PROTO_ST_FAILED && number && got != rev) {
        __atomic_fetch_add(&lg.failed, 1, __ATOMIC_RELAXED);
    } else if (st == PROTO_ST_OK || st == PROTO_ST_FAILED) {
        violation("cas %s %s: status %d '%s'", KEY, arg, st, out);
    } else {
        __atomic_fetch_add(&lg.unknown, 1, __ATOMIC_RELAXED); /* may have been applied */
    }
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    for (int i = 0; i < MAX_ATTEMPTS && !atomic_load(&stop_clients); i++)
        attempt(cl);
    return NULL;
}

/* ---- faults ---- */

static void sleep_ms_unless_stopped(int ms)
{
    uint64_t until = rk_clock_ms() + (uint64_t)ms;
    while (rk_clock_ms() < until && !atomic_load(&stop_clients))
        rk_sleep_ms(20);
}

/* Faults alternate between kill -9 (of the leader every other time) with a restart, and
 * a SIGSTOP of the leader for a second. */
static void run_faults(struct ctl_cluster *c, unsigned *seed)
{
    sleep_ms_unless_stopped(500);
    for (int f = 0; f < N_FAULTS && !atomic_load(&stop_clients); f++) {
        int leader = ctl_wait_leader(c, 1000, NULL);
        int victim = f % 2 == 0 && leader >= 0 ? leader : (int)(rand_r(seed) % N_SERVERS);
        bool pause = f % 3 == 2 && leader >= 0;
        if (pause)
            victim = leader;
        fprintf(stderr, "stress_cas: fault %d: %s %s%s\n", f + 1, pause ? "SIGSTOP" : "kill -9",
                c->servers[victim].name, victim == leader ? " (the leader)" : "");
        HARNESS_ASSERT(c, (pause ? ctl_pause(c, victim) : ctl_kill(c, victim)) == RK_OK,
                       "fault on %s", c->servers[victim].name);
        sleep_ms_unless_stopped(800 + (int)(rand_r(seed) % 600));
        HARNESS_ASSERT(c, (pause ? ctl_resume(c, victim) : ctl_start(c, victim)) == RK_OK,
                       "bringing %s back", c->servers[victim].name);
        sleep_ms_unless_stopped(700);
    }
}

/* ---- checks ---- */

/* The OK increments form one chain: each compared the revision the previous OK one was
 * given (when that one is known), and revisions grow with the value. */
static void check_chain(void)
{
    uint64_t prev_rev = 0;
    for (int v = 1; v <= MAX_VALUE; v++) {
        if (lg.ok_writer[v] == 0)
            continue;
        if (lg.ok_rev[v] <= prev_rev)
            violation("the increment to %d was given revision %" PRIu64 ", not above %" PRIu64,
                      v, lg.ok_rev[v], prev_rev);
        if (v > 1 && lg.ok_writer[v - 1] != 0 && lg.ok_expect[v] != lg.ok_rev[v - 1])
            violation("the increment to %d compared revision %" PRIu64 ", but %d was written "
                      "at %" PRIu64, v, lg.ok_expect[v], v - 1, lg.ok_rev[v - 1]);
        if (v == 1 && lg.ok_expect[v] != 0)
            violation("the increment to 1 compared revision %" PRIu64 ", not 0",
                      lg.ok_expect[v]);
        prev_rev = lg.ok_rev[v];
    }
}

/* A rev read of a value an OK cas wrote gives that cas's revision. */
static void check_reads(const struct client *cl)
{
    for (int i = 0; i < cl->n_reads; i++) {
        uint64_t v = cl->read_val[i];
        if (v >= 1 && v <= MAX_VALUE && lg.ok_writer[v] != 0 && cl->read_rev[i] != lg.ok_rev[v])
            violation("client %d read %" PRIu64 " at revision %" PRIu64 ", written at %" PRIu64,
                      cl->id, v, cl->read_rev[i], lg.ok_rev[v]);
    }
}

static void check_final(struct ctl_cluster *c)
{
    struct client_session *s = harness_session(c, -1, true, 10000);
    HARNESS_ASSERT(c, s != NULL, "no session for the final read");
    uint64_t rev, val;
    HARNESS_ASSERT(c, read_counter(s, &rev, &val), "the final rev read failed");
    client_session_free(s);
    fprintf(stderr, "stress_cas: counter %" PRIu64 " at revision %" PRIu64 "; %d OK, %d unknown, "
            "%d FAILED\n", val, rev, lg.ok, lg.unknown, lg.failed);
    HARNESS_ASSERT(c, val >= (uint64_t)lg.ok && val <= (uint64_t)(lg.ok + lg.unknown),
                   "the counter is %" PRIu64 ", but %d increments were OK and %d unknown",
                   val, lg.ok, lg.unknown);
    HARNESS_ASSERT(c, val == 0 || val > MAX_VALUE || lg.ok_writer[val] == 0 ||
                          lg.ok_rev[val] == rev,
                   "the counter %" PRIu64 " is at revision %" PRIu64 ", written at %" PRIu64,
                   val, rev, val <= MAX_VALUE ? lg.ok_rev[val] : 0);
}

START_TEST(test_cas_counter_under_faults)
{
    struct ctl_cluster *c = harness_start(N_SERVERS, 10000);
    static struct client cl[N_CLIENTS];
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "stress_cas: seed %u\n", seed);
    atomic_store(&stop_clients, false);
    for (int i = 0; i < N_CLIENTS; i++) {
        cl[i] = (struct client){ .id = i, .c = c };
        cl[i].s = harness_session(c, i % N_SERVERS, i % 2 == 0, OP_TIMEOUT_MS);
        HARNESS_ASSERT(c, cl[i].s != NULL, "no client session");
        HARNESS_ASSERT(c, pthread_create(&cl[i].thread, NULL, client_main, &cl[i]) == 0,
                       "pthread_create");
    }
    uint64_t t0 = rk_clock_ms();
    run_faults(c, &seed);
    while (rk_clock_ms() - t0 < RUN_MS)
        rk_sleep_ms(50);
    atomic_store(&stop_clients, true);
    for (int i = 0; i < N_CLIENTS; i++) {
        pthread_join(cl[i].thread, NULL);
        client_session_free(cl[i].s);
    }
    HARNESS_ASSERT(c, ctl_wait_leader(c, 10000, NULL) >= 0, "no leader after the faults");
    check_chain();
    for (int i = 0; i < N_CLIENTS; i++)
        check_reads(&cl[i]);
    check_final(c);
    HARNESS_ASSERT(c, lg.violations == 0, "%d violation(s), first: %s", lg.violations,
                   lg.violation);
    HARNESS_ASSERT(c, lg.ok >= MIN_OK, "only %d increments answered OK", lg.ok);
    harness_finish(c); /* no server died on its own, no sanitizer report */
}
END_TEST

static Suite *stress_cas_suite(void)
{
    Suite *s = suite_create("stress_cas");
    TCase *tc = tcase_create("stress");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cas_counter_under_faults);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(stress_cas_suite)
