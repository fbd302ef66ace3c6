/* tools/bench_writers.c - closed-loop writers that go through client/session.c, the
 * library raft_client uses: each thread keeps one client session (a kept-open connection
 * to the leader, redirects followed, other servers tried on failure, every write numbered
 * in a server-side session so a retry is applied once) and writes one key after another.
 * A write's latency runs from the call until its OK, retries and redirects included: what
 * a raft_client user waits. A write fails when the call gives up or answers other than OK.
 * Every write is kept with its start time, so that raft_bench --membership-targets can
 * cut the run into windows (before, during, after a membership change) afterwards. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/session.h"
#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/grow.h"
#include "bench.h"

#define WRITER_MAX_OPS (4L << 20)  /* per thread: bounds memory (16 bytes each) */
#define WRITER_MAX_FAILURES 256    /* kept with their times, per thread */

struct writer_failure {
    int64_t at_ns;  /* CLOCK_REALTIME when the call gave up */
    char what[BENCH_FAILURE_LEN];
};

struct writer {
    struct bench_writers *all;
    int id;
    pthread_t thread;
    bool started;
    struct bench_op *ops;
    size_t n_ops, cap_ops;
    struct writer_failure *fails;
    long n_fails;        /* every failure; the first WRITER_MAX_FAILURES are kept */
    char err[BENCH_ERR_LEN];
};

struct bench_writers {
    struct bench_writers_opts o;
    atomic_bool stop;
    atomic_long acked;
    char *value;
    struct writer w[BENCH_WRITERS_MAX];
    int n;
};

static uint64_t writer_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void writer_fail(struct writer *w, int64_t at_ns, const char *what)
{
    if (w->n_fails < WRITER_MAX_FAILURES) {
        if (w->fails == NULL)
            w->fails = calloc(WRITER_MAX_FAILURES, sizeof(*w->fails));
        if (w->fails != NULL) {
            w->fails[w->n_fails].at_ns = at_ns;
            snprintf(w->fails[w->n_fails].what, sizeof(w->fails[0].what), "%s", what);
        }
    }
    w->n_fails++;
}

/* One SET through the session: recorded if OK, else counted as failed. False when the
 * writer must stop (out of memory). */
static bool writer_one(struct writer *w, struct client_session *s, uint64_t *rng)
{
    const struct bench_writers_opts *o = &w->all->o;
    char key[96], err[BENCH_ERR_LEN], what[BENCH_FAILURE_LEN];
    int klen = snprintf(key, sizeof(key), "%s%08llu", o->key_prefix,
                        (unsigned long long)(writer_rand(rng) % (uint64_t)o->keys));
    struct client_reply reply;
    memset(&reply, 0, sizeof(reply));
    int64_t start = bench_real_ns();
    uint64_t t0 = rk_clock_ns();
    int rc = client_session_call(s, PROTO_OP_SET, key, (uint32_t)klen, w->all->value,
                                 (uint32_t)o->value_size, &reply, err, sizeof(err));
    uint64_t lat = rk_clock_ns() - t0;
    bool ok = rc == RK_OK && reply.status == PROTO_ST_OK;
    if (!ok) {
        if (rc != RK_OK)
            snprintf(what, sizeof(what), "%.150s", err);
        else
            snprintf(what, sizeof(what), "status %u: %.120s", (unsigned)reply.status,
                     reply.body != NULL ? reply.body : "");
        writer_fail(w, start + (int64_t)lat, what);
    }
    if (rc == RK_OK)
        client_reply_free(&reply);
    if (!ok)
        return true;
    if (rk_grow(&w->ops, &w->cap_ops, w->n_ops + 1, sizeof(*w->ops), 4096) != RK_OK)
        return false;
    w->ops[w->n_ops++] = (struct bench_op){ start, (int64_t)lat };
    atomic_fetch_add(&w->all->acked, 1);
    return true;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    const struct bench_writers_opts *o = &w->all->o;
    struct client_session *s = client_session_new(o->host, o->port, o->registry_path,
                                                  o->timeout_ms, false, w->err,
                                                  sizeof(w->err));
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(w->id + 1) << 32) ^ rk_clock_ns();
    uint64_t deadline = rk_clock_ns() + (uint64_t)(o->max_seconds * 1e9);
    while (s != NULL && !atomic_load(&w->all->stop) && (long)w->n_ops < WRITER_MAX_OPS &&
           rk_clock_ns() < deadline) {
        if (!writer_one(w, s, &rng)) {
            snprintf(w->err, sizeof(w->err), "writer %d: out of memory", w->id);
            break;
        }
    }
    client_session_free(s);
    return NULL;
}

struct bench_writers *bench_writers_start(const struct bench_writers_opts *o, char *err,
                                          size_t errlen)
{
    if (o->clients < 1 || o->clients > BENCH_WRITERS_MAX || o->keys < 1 ||
        o->value_size < 0 || o->timeout_ms < 1 || o->max_seconds <= 0) {
        snprintf(err, errlen, "writers: 1..%d clients, keys >= 1, a timeout and a time limit",
                 BENCH_WRITERS_MAX);
        return NULL;
    }
    struct bench_writers *ws = calloc(1, sizeof(*ws));
    char *value = malloc((size_t)o->value_size + 1);
    if (ws == NULL || value == NULL) {
        free(ws);
        free(value);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < o->value_size; i++)
        value[i] = (char)('a' + i % 26);
    value[o->value_size] = '\0';
    ws->o = *o;
    ws->value = value;
    for (ws->n = 0; ws->n < o->clients; ws->n++) {
        struct writer *w = &ws->w[ws->n];
        *w = (struct writer){ .all = ws, .id = ws->n };
        w->started = pthread_create(&w->thread, NULL, writer_main, w) == 0;
        if (!w->started) {
            snprintf(err, errlen, "cannot start writer thread %d", ws->n);
            bench_writers_stop(ws);
            bench_writers_free(ws);
            return NULL;
        }
    }
    return ws;
}

long bench_writers_acked(const struct bench_writers *ws)
{
    return atomic_load(&ws->acked);
}

bool bench_writers_wait_acks(const struct bench_writers *ws, long more, int timeout_ms)
{
    long base = bench_writers_acked(ws);
    uint64_t deadline = rk_clock_ms() + (uint64_t)timeout_ms;
    while (bench_writers_acked(ws) < base + more) {
        if (rk_clock_ms() >= deadline)
            return false;
        rk_sleep_ms(5);
    }
    return true;
}

void bench_writers_stop(struct bench_writers *ws)
{
    if (ws == NULL)
        return;
    atomic_store(&ws->stop, true);
    for (int i = 0; i < BENCH_WRITERS_MAX; i++)
        if (ws->w[i].started) {
            pthread_join(ws->w[i].thread, NULL);
            ws->w[i].started = false;
        }
}

void bench_writers_free(struct bench_writers *ws)
{
    if (ws == NULL)
        return;
    for (int i = 0; i < BENCH_WRITERS_MAX; i++) {
        free(ws->w[i].ops);
        free(ws->w[i].fails);
    }
    free(ws->value);
    free(ws);
}

/* ---- windows ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The writes in flight at some point of [from, to]: their latencies into lat, their
 * acknowledgements inside the window into ends. */
static void window_collect(const struct bench_writers *ws, int64_t from, int64_t to,
                           int64_t *lat, size_t *n_lat, int64_t *ends, size_t *n_ends)
{
    *n_lat = *n_ends = 0;
    for (int i = 0; i < ws->n; i++) {
        const struct writer *w = &ws->w[i];
        for (size_t k = 0; k < w->n_ops; k++) {
            int64_t a = w->ops[k].start_ns, b = a + w->ops[k].lat_ns;
            if (a <= to && b >= from)
                lat[(*n_lat)++] = w->ops[k].lat_ns;
            if (b >= from && b <= to)
                ends[(*n_ends)++] = b;
        }
    }
}

static void window_failures(const struct bench_writers *ws, int64_t from, int64_t to,
                            struct bench_window *out)
{
    for (int i = 0; i < ws->n; i++) {
        const struct writer *w = &ws->w[i];
        long kept = w->n_fails < WRITER_MAX_FAILURES ? w->n_fails : WRITER_MAX_FAILURES;
        for (long k = 0; w->fails != NULL && k < kept; k++) {
            int64_t at = w->fails[k].at_ns;
            if (at < from || at > to)
                continue;
            if (out->failed++ == 0 || at < out->first_failure_ns) {
                out->first_failure_ns = at;
                snprintf(out->first_failure, sizeof(out->first_failure), "%s",
                         w->fails[k].what);
            }
        }
    }
}

int bench_writers_window(const struct bench_writers *ws, int64_t from, int64_t to,
                         struct bench_window *out)
{
    memset(out, 0, sizeof(*out));
    size_t total = 1;
    for (int i = 0; i < ws->n; i++)
        total += ws->w[i].n_ops;
    int64_t *lat = malloc(total * sizeof(*lat)), *ends = malloc(total * sizeof(*ends));
    if (lat == NULL || ends == NULL) {
        free(lat);
        free(ends);
        return RK_ERR_NOMEM;
    }
    size_t n_lat, n_ends;
    window_collect(ws, from, to, lat, &n_lat, ends, &n_ends);
    out->r.seconds = (double)(to - from) / 1e9;
    bench_latency_stats(lat, n_lat, &out->r);
    out->acks = (long)n_ends;
    out->acks_per_s = out->r.seconds > 0 ? (double)n_ends / out->r.seconds : 0;
    qsort(ends, n_ends, sizeof(*ends), cmp_i64);
    for (size_t k = 1; k < n_ends; k++) {
        double gap = (double)(ends[k] - ends[k - 1]) / 1e6;
        out->longest_gap_ms = gap > out->longest_gap_ms ? gap : out->longest_gap_ms;
    }
    out->first_ack_ns = n_ends > 0 ? ends[0] : 0;
    window_failures(ws, from, to, out);
    free(lat);
    free(ends);
    return RK_OK;
}

long bench_writers_failed(const struct bench_writers *ws, char *first, size_t len)
{
    struct bench_window all;
    memset(&all, 0, sizeof(all));
    window_failures(ws, INT64_MIN, INT64_MAX, &all);
    snprintf(first, len, "%s", all.first_failure);
    long failed = 0;
    for (int i = 0; i < ws->n; i++)
        failed += ws->w[i].n_fails;
    return failed;
}

const char *bench_writers_error(const struct bench_writers *ws)
{
    for (int i = 0; i < ws->n; i++)
        if (ws->w[i].err[0] != '\0')
            return ws->w[i].err;
    return NULL;
}
