/* tools/bench_expiry.c - raft_bench --expiry-targets: writes per second while 100,000
 * keys expire in the same second, on 3 nodes. For 1 and then 64 writers (closed loop,
 * each through a client session, as bench_writers.c): K keys ("e%08d") are written with
 * setex, each with the time to live left until one moment T0 (so every server's deadline
 * for each key is T0 plus the time the write took to reach it); the writers (keys
 * "w%08d" of their own) start EX_LEAD_MS before T0; from T0 a poller asks for a scan page
 * of one key of prefix "e" until none is left (the leader deletes them in EXPIRED batches
 * of up to 500, one in flight at a time); the writers go on EX_AFTER_MS more. The writes
 * are cut into windows: the EX_LEAD_MS before T0, T0 until the last key went, the
 * EX_AFTER_MS after, and one-second windows from T0 - 2 s for the table of seconds.
 * Then the same writers for as long again with nothing expiring, as the baseline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../client/session.h"
#include "../common/clock.h"
#include "../common/errors.h"
#include "bench.h"

#define EX_SECTION_MARK "\n## Expiring keys (issue 16)\n"
#define EX_NODES 3
#define EX_KEYS_DEFAULT 100000
#define EX_KEYS_QUICK 10000
#define EX_LOAD_CLIENTS 32
#define EX_LOAD_BUDGET_MS 25000  /* T0 is this long after the load starts */
#define EX_LOAD_BUDGET_QUICK_MS 10000
#define EX_LEAD_MS 3000          /* writers before T0 */
#define EX_AFTER_MS 3000         /* writers after the last key went */
#define EX_GONE_LIMIT_MS 60000   /* give up waiting for the keys after this */
#define EX_POLL_MS 10
#define EX_WRITE_TIMEOUT_MS 10000
#define EX_WRITER_KEYS 1000
#define EX_SECONDS 12            /* the table of seconds: T0 - 2 s onwards */
#define EX_SECONDS_BEFORE 2

struct ex_phase {
    struct bench_window w;
    bool measured;
};

struct ex_run {
    int clients;
    int rc;
    char err[BENCH_ERR_LEN];
    double load_s;           /* the setex load */
    double load_late_ms;     /* > 0: the load ended after T0 - EX_LEAD_MS by this much */
    double gone_ms;          /* T0 until the poller found no key left; < 0: not in time */
    struct ex_phase before, during, after, base;
    struct ex_phase sec[EX_SECONDS];
};

struct ex_report {
    const char *command;
    int keys;
    struct ex_run runs[2];
    struct bench_run_info info;
};

static int64_t real_of_mono_ms(uint64_t mono_ms)
{
    return bench_real_ns() + ((int64_t)mono_ms - (int64_t)rk_clock_ms()) * 1000000;
}

static void ex_sleep_until(uint64_t mono_ms)
{
    while (rk_clock_ms() < mono_ms)
        usleep(5000);
}

/* The first key of prefix "e" (its name into first), or "" if none is left; false if the
 * scan got no answer. */
static bool ex_first_key(struct client_session *s, char *first, size_t len)
{
    struct client_reply r;
    char err[256];
    first[0] = '\0';
    if (client_session_call(s, PROTO_OP_SCAN, "e", 1, "1", 1, &r, err, sizeof(err)) != RK_OK)
        return false;
    uint64_t rev;
    bool more;
    uint32_t n, off = PROTO_PAGE_HEAD, klen, vlen;
    const char *key, *val;
    bool ok = r.status == PROTO_ST_VALUE &&
              proto_page_head(r.body, r.body_len, &rev, &more, &n) == RK_OK;
    if (ok && proto_page_next(r.body, r.body_len, &off, &key, &klen, &val, &vlen) == 1)
        snprintf(first, len, "%.*s", (int)klen, key);
    client_reply_free(&r);
    return ok;
}

/* From T0: polls until no key is left (or the limit); sets the times. */
static void ex_watch(struct ctl_cluster *c, uint64_t t0, struct ex_run *run)
{
    char err[256], first[64];
    struct client_session *s = client_session_new(NULL, 0, c->registry_path,
                                                  EX_WRITE_TIMEOUT_MS, false, err, sizeof(err));
    run->gone_ms = -1;
    if (s == NULL)
        return;
    ex_sleep_until(t0);
    while (rk_clock_ms() < t0 + EX_GONE_LIMIT_MS) {
        if (ex_first_key(s, first, sizeof(first)) && first[0] == '\0') {
            run->gone_ms = (double)(rk_clock_ms() - t0);
            break;
        }
        usleep(EX_POLL_MS * 1000);
    }
    client_session_free(s);
}

static struct bench_writers *ex_writers(struct ctl_cluster *c, int leader, int clients,
                                        char *err, size_t errlen)
{
    struct bench_writers_opts wo = {
        .host = c->servers[leader].host, .port = c->servers[leader].port,
        .registry_path = c->registry_path, .clients = clients, .keys = EX_WRITER_KEYS,
        .value_size = 100, .key_prefix = "w", .timeout_ms = EX_WRITE_TIMEOUT_MS,
        .max_seconds = 600,
    };
    return bench_writers_start(&wo, err, errlen);
}

static void ex_window(struct bench_writers *ws, int64_t from, int64_t to, struct ex_phase *p)
{
    p->measured = to > from && bench_writers_window(ws, from, to, &p->w) == RK_OK;
}

/* The load of the keys with setex, all due at T0. */
static int ex_load(const struct bench_options *o, struct ctl_cluster *c, int leader, int keys,
                   uint64_t t0, struct ex_run *run)
{
    struct bench_load_opts lo = bench_load_opts_of(o, c->servers[leader].host,
                                                   c->servers[leader].port);
    lo.clients = EX_LOAD_CLIENTS;
    lo.ops = keys;
    lo.keys = keys;
    lo.read_ratio = 0;
    lo.op_kind = BENCH_OP_SETEX;
    lo.expire_at_ms = t0;
    lo.sequential_keys = true;
    lo.warmup = 0;
    lo.value_size = 100;
    lo.key_prefix = "e";
    lo.max_seconds = 600;
    struct bench_result r;
    uint64_t start = rk_clock_ms();
    int rc = bench_run_load(&lo, &r, run->err, sizeof(run->err));
    run->load_s = (double)(rk_clock_ms() - start) / 1000.0;
    uint64_t end = rk_clock_ms();
    run->load_late_ms = end + EX_LEAD_MS > t0 ? (double)(end + EX_LEAD_MS - t0) : 0;
    if (rc == RK_OK && r.ops < keys) {
        snprintf(run->err, sizeof(run->err), "only %ld of %d setex acknowledged", r.ops, keys);
        rc = RK_ERR_IO;
    }
    return rc;
}

static void ex_run_one(const struct bench_options *o, struct ctl_cluster *c, int keys,
                       struct ex_run *run)
{
    int leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL);
    if (leader < 0) {
        run->rc = RK_ERR_TIMEOUT;
        snprintf(run->err, sizeof(run->err), "no leader");
        return;
    }
    uint64_t t0 = rk_clock_ms() + (o->quick ? EX_LOAD_BUDGET_QUICK_MS : EX_LOAD_BUDGET_MS);
    fprintf(stderr, "  %d writers: %d keys with setex, due in %.0f s\n", run->clients, keys,
            (double)(t0 - rk_clock_ms()) / 1000.0);
    run->rc = ex_load(o, c, leader, keys, t0, run);
    if (run->rc != RK_OK)
        return;
    fprintf(stderr, "  loaded in %.1f s%s\n", run->load_s,
            run->load_late_ms > 0 ? " (late: the writers start after T0 - lead)" : "");
    ex_sleep_until(t0 - EX_LEAD_MS);
    struct bench_writers *ws = ex_writers(c, leader, run->clients, run->err, sizeof(run->err));
    if (ws == NULL) {
        run->rc = RK_ERR_IO;
        return;
    }
    int64_t real_t0 = real_of_mono_ms(t0);
    int64_t real_start = bench_real_ns();
    ex_watch(c, t0, run);
    uint64_t gone_at = run->gone_ms >= 0 ? t0 + (uint64_t)run->gone_ms : rk_clock_ms();
    ex_sleep_until(gone_at + EX_AFTER_MS);
    bench_writers_stop(ws);
    int64_t real_gone = real_t0 + (int64_t)((gone_at - t0) * 1000000);
    ex_window(ws, real_t0 - (int64_t)EX_LEAD_MS * 1000000 > real_start
                      ? real_t0 - (int64_t)EX_LEAD_MS * 1000000 : real_start,
              real_t0, &run->before);
    ex_window(ws, real_t0, real_gone, &run->during);
    ex_window(ws, real_gone, real_gone + (int64_t)EX_AFTER_MS * 1000000, &run->after);
    for (int i = 0; i < EX_SECONDS; i++) {
        int64_t from = real_t0 + (int64_t)(i - EX_SECONDS_BEFORE) * 1000000000;
        if (from + 1000000000 <= real_gone + (int64_t)EX_AFTER_MS * 1000000)
            ex_window(ws, from, from + 1000000000, &run->sec[i]);
    }
    const char *why = bench_writers_error(ws);
    if (why != NULL) {
        snprintf(run->err, sizeof(run->err), "%s", why);
        run->rc = RK_ERR_IO;
    }
    bench_writers_free(ws);
    if (run->gone_ms < 0 && run->rc == RK_OK) {
        snprintf(run->err, sizeof(run->err), "keys left %d s after T0", EX_GONE_LIMIT_MS / 1000);
        run->rc = RK_ERR_TIMEOUT;
    }
    /* the baseline: the same writers, nothing expiring, as long as the run above */
    uint64_t span = EX_LEAD_MS + (uint64_t)(gone_at - t0) + EX_AFTER_MS;
    ws = ex_writers(c, leader, run->clients, run->err, sizeof(run->err));
    if (ws == NULL) {
        run->rc = RK_ERR_IO;
        return;
    }
    int64_t b0 = bench_real_ns();
    usleep((useconds_t)(span * 1000));
    bench_writers_stop(ws);
    ex_window(ws, b0 + 500000000, b0 + (int64_t)span * 1000000, &run->base);
    bench_writers_free(ws);
}

static void ex_phase_row(FILE *f, int clients, const char *what, const struct ex_phase *p)
{
    if (!p->measured) {
        fprintf(f, "| %d | %s | not measured | | | | |\n", clients, what);
        return;
    }
    fprintf(f, "| %d | %s | %.1f | %.0f | %.3f | %.3f | %.3f |\n", clients, what,
            p->w.r.seconds, p->w.acks_per_s, p->w.r.p50_ms, p->w.r.p99_ms, p->w.r.max_ms);
}

static void ex_print(FILE *f, const struct ex_run *run)
{
    if (run->rc != RK_OK)
        fprintf(f, "  %d writers: FAILED: %s\n", run->clients, run->err);
    fprintf(f, "  %d writers: all keys gone %.0f ms after T0; before %.0f/s p99 %.2f ms, during %.0f/s p99 %.2f ms max %.2f ms, after "
               "%.0f/s, baseline %.0f/s p99 %.2f ms; failed writes %ld + %ld + %ld, "
               "baseline %ld\n",
            run->clients, run->gone_ms, run->before.w.acks_per_s,
            run->before.w.r.p99_ms, run->during.w.acks_per_s, run->during.w.r.p99_ms,
            run->during.w.r.max_ms, run->after.w.acks_per_s, run->base.w.acks_per_s,
            run->base.w.r.p99_ms, run->before.w.failed, run->during.w.failed,
            run->after.w.failed, run->base.w.failed);
}

static void ex_write_section(FILE *f, void *arg)
{
    const struct ex_report *m = arg;
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&m->info.started));
    fprintf(f, "%s\n", EX_SECTION_MARK);
    fprintf(f, "Run %s by `%s` in %.0f s: %d servers on 127.0.0.1 with fsync on, 100-byte "
               "values; %d keys written with setex (%d clients), each with the time to live "
               "left until one moment T0; writers through client sessions on %d keys of "
               "their own from %d s before T0 until %d s after the last key went. %ld CPUs; "
               "load average before %.2f %.2f %.2f, after %.2f %.2f %.2f.\n\n",
            when, m->command, m->info.seconds, EX_NODES, m->keys, EX_LOAD_CLIENTS,
            EX_WRITER_KEYS, EX_LEAD_MS / 1000, EX_AFTER_MS / 1000,
            sysconf(_SC_NPROCESSORS_ONLN), m->info.load_before[0], m->info.load_before[1],
            m->info.load_before[2], m->info.load_after[0], m->info.load_after[1],
            m->info.load_after[2]);
    fprintf(f, "| writers | window | s | writes/s | p50 ms | p99 ms | max ms |\n"
               "|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < 2; i++) {
        const struct ex_run *r = &m->runs[i];
        if (r->rc != RK_OK && !r->before.measured) {
            fprintf(f, "| %d | not measured: %s | | | | | |\n", r->clients, r->err);
            continue;
        }
        ex_phase_row(f, r->clients, "before T0", &r->before);
        ex_phase_row(f, r->clients, "T0 until the last key went", &r->during);
        ex_phase_row(f, r->clients, "after", &r->after);
        ex_phase_row(f, r->clients, "baseline: nothing expiring", &r->base);
    }
    fprintf(f, "\n| writers | setex load | all %d keys gone |\n|---|---|---|\n", m->keys);
    for (int i = 0; i < 2; i++) {
        const struct ex_run *r = &m->runs[i];
        fprintf(f, "| %d | %.1f s%s | T0 + %.0f ms%s%s |\n", r->clients, r->load_s,
                r->load_late_ms > 0 ? " (ended after T0 - lead)" : "", r->gone_ms,
                r->rc != RK_OK ? ": " : "", r->rc != RK_OK ? r->err : "");
    }
    fprintf(f, "\nSecond by second (writes acknowledged in the second / p99 ms / max ms), "
               "from T0 - %d s:\n\n| writers |", EX_SECONDS_BEFORE);
    for (int s = 0; s < EX_SECONDS; s++)
        fprintf(f, " %+d s |", s - EX_SECONDS_BEFORE);
    fprintf(f, "\n|---|");
    for (int s = 0; s < EX_SECONDS; s++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (int i = 0; i < 2; i++) {
        const struct ex_run *r = &m->runs[i];
        fprintf(f, "| %d |", r->clients);
        for (int s = 0; s < EX_SECONDS; s++) {
            if (r->sec[s].measured)
                fprintf(f, " %ld / %.1f / %.1f |", r->sec[s].w.acks, r->sec[s].w.r.p99_ms,
                        r->sec[s].w.r.max_ms);
            else
                fprintf(f, " |");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\nAll gone: the first poll from T0 (a scan page of one key of the prefix, "
               "every %d ms) that found none. A server counts a key's time to live from when "
               "it applied the setex, which asked for the time left until T0 when it was "
               "sent: every deadline falls a write's latency after T0.\n", EX_POLL_MS);
}

int bench_expiry_targets(const struct bench_options *o, const char *command)
{
    struct ex_report *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 1;
    m->command = command;
    m->keys = o->keys_set ? o->keys : o->quick ? EX_KEYS_QUICK : EX_KEYS_DEFAULT;
    m->runs[0].clients = 1;
    m->runs[1].clients = o->clients_set ? o->clients : 64;
    bench_run_begin(&m->info);
    struct ctl_cluster *c = NULL;
    char err[BENCH_ERR_LEN] = "";
    struct bench_options base = *o;
    int leader = bench_open_cluster(&base, EX_NODES, &c, err, sizeof(err));
    for (int i = 0; i < 2; i++) {
        if (leader < 0) {
            m->runs[i].rc = RK_ERR_TIMEOUT;
            snprintf(m->runs[i].err, sizeof(m->runs[i].err), "%s", err);
            continue;
        }
        ex_run_one(&base, c, m->keys, &m->runs[i]);
        ex_print(stderr, &m->runs[i]);
    }
    ctl_cluster_destroy(c);
    bench_run_end(&m->info);
    bench_save_section(o->out_path, EX_SECTION_MARK, ex_write_section, m);
    bool measured = m->runs[0].rc == RK_OK && m->runs[1].rc == RK_OK;
    free(m);
    return measured ? 0 : 1;
}
