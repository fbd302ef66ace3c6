/* tools/bench_membership.c - raft_bench --membership-targets: the "Measured" part of issue 15,
 * on clusters on 127.0.0.1 that it starts, each under closed-loop writes through client
 * sessions (bench_writers.c):
 *   1. a rolling restart of 5 servers by SIGTERM, one at a time (target: no write fails,
 *      the longest write takes 100 ms or less);
 *   2. a server started with --join and added (ADD) to 3 servers holding 1,000,000 keys:
 *      the time until ADD answers OK (it then votes), and the writes meanwhile;
 *   3. the leader's disk stalled (the test-only server of tests/fault_io.c): the time to
 *      the first write acknowledged by the new leader, and the old one's catch-up once its
 *      disk answers again.
 * The Markdown section goes to stdout and into the --out file (docs/benchmarks-latest.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../client/session.h"
#include "../common/clock.h"
#include "../common/errors.h"
#include "bench.h"

#define MB_CLIENTS 16            /* closed-loop writers, as the matrix's middle rows */
#define MB_KEYS 1000000          /* the 1M keys for the add */
#define MB_KEYS_QUICK 50000
#define MB_SMALL_KEYS 1000       /* the key space of the restart and stall runs */
#define MB_ROLL_NODES 5
#define MB_WRITE_TIMEOUT_MS 10000 /* one write's retries before it counts as failed */
#define MB_WRITERS_MAX_S 900.0   /* writers stop by themselves after this */
#define MB_WAIT_MS 20000         /* a leader, agreement, a catch-up */
#define MB_SETTLE_MS 120000      /* every server applies the prefill */
#define MB_PREFILL_S 900.0
#define MB_PREFILL_CLIENTS 64
#define MB_PAUSE_MS 500          /* between restarts, the whole cluster up */
#define MB_BASE_MS 5000          /* writes before the change: the baseline */
#define MB_BASE_MS_QUICK 2000
#define MB_AFTER_MS 3000         /* writes after it */
#define MB_DISK_STALL_MS "2000"  /* the server's default, passed explicitly */
#define MB_STALL_LIMIT_MS 30000  /* for a new leader after the stall */
#define MB_STALL_KEEP_MS 2000    /* writes through the new leader before the disk answers */
#define MB_POLL_MS 10
#define MB_STATUS_MS 200
#define MB_FIRST_ACKS 100        /* writes must flow before a measurement starts */
#define LOG_LINE_MAX 1024

#define ROLL_TARGET_MAX_MS 100.0 /* the issue: the longest write <= 100 ms */

#define SECTION_MARK "\n## Membership targets (issue 15)\n"

struct mb_opts {
    const struct bench_options *o;
    const char *command, *fault_bin;
    int clients, keys, value_size, base_ms;
    char server_args[256]; /* the extra raft_server options, for the report */
};

struct mb_restart {
    char name[REGISTRY_NAME_MAX + 1];
    bool was_leader;
    double stop_ms; /* SIGTERM -> the process exited (cleanly) */
    double back_ms; /* started again -> caught up, and every server names one leader */
};

struct mb_roll {
    bool ran;
    int rc;
    char err[BENCH_ERR_LEN];
    int done, leaders_stopped, handoffs_logged;
    struct mb_restart r[MB_ROLL_NODES];
    long long term0, term1;
    struct bench_window before, during; /* before the first SIGTERM; the restarts */
    long failed;                        /* every failed write of the run */
    char first_failure[BENCH_FAILURE_LEN];
};

struct mb_add {
    bool ran;
    int rc;
    char err[BENCH_ERR_LEN];
    double prefill_s;
    long prefilled;
    char name[REGISTRY_NAME_MAX + 1];
    double status_ms;      /* the spare started -> it answers STATUS */
    double add_ms;         /* ADD sent -> its answer */
    char answer[160];      /* OK, or what it said */
    bool ok;
    struct ctl_status after; /* the new server's STATUS after the OK */
    bool via_snapshot;
    struct bench_window before, during, after_w;
    long failed;
    char first_failure[BENCH_FAILURE_LEN];
};

struct mb_stall {
    bool ran;
    int rc;
    char err[BENCH_ERR_LEN];
    char old_name[REGISTRY_NAME_MAX + 1], new_name[REGISTRY_NAME_MAX + 1];
    double status_ms;   /* stall -> a former follower's STATUS says role=leader */
    double probe_ms;    /* stall -> the first write acknowledged by a former follower */
    double logged_ms;   /* what the old leader logged as the stall when it handed off */
    bool handed_off;    /* it logged "handing leadership to an up-to-date follower" */
    bool answered;      /* it logged "campaigning again" after the disk answered */
    double unstall_ms;  /* stall -> the stall file removed */
    double catchup_ms;  /* the stall file removed -> its applied >= the new leader's commit */
    long long catchup_index;
    struct bench_window before, to_leader, during, after_w;
    long failed;
    char first_failure[BENCH_FAILURE_LEN];
};

struct mb_run {
    const struct mb_opts *o;
    struct bench_run_info info;
    struct mb_roll roll;
    struct mb_add add;
    struct mb_stall stall;
};

static double ms_since(uint64_t t0)
{
    return (double)(rk_clock_ns() - t0) / 1e6;
}

/* ================= clusters and writers ================= */

/* n servers of bin started in a new temp dir; with stall, the fault seam watches the dir
 * (RK_FAULT_STALL_DIR, inherited) and --disk-stall-ms is given. The leader every server
 * names, or -1 with err (*cp then NULL or to be destroyed). */
static int mb_cluster(const struct mb_opts *mo, int n, const char *bin, bool stall,
                      struct ctl_cluster **cp, char *err, size_t errlen)
{
    struct ctl_cluster *c = ctl_cluster_new(n, "mbench", NULL, err, errlen);
    *cp = c;
    if (c == NULL)
        return -1;
    c->server_bin = bin;
    memcpy(c->server_args, mo->o->server_args, sizeof(c->server_args));
    c->n_server_args = mo->o->n_server_args;
    if (stall && c->n_server_args + 2 <= CTL_MAX_SERVER_ARGS) {
        c->server_args[c->n_server_args++] = "--disk-stall-ms";
        c->server_args[c->n_server_args++] = MB_DISK_STALL_MS;
    }
    if (stall)
        setenv("RK_FAULT_STALL_DIR", c->dir, 1);
    int rc = ctl_start_all(c);
    int leader = rc == RK_OK ? ctl_wait_agreement(c, MB_WAIT_MS) : -1;
    if (rc != RK_OK)
        snprintf(err, errlen, "cannot start the servers (%s): %s", bin, rk_strerror(rc));
    else if (leader < 0)
        snprintf(err, errlen, "no leader all servers agree on within %d ms", MB_WAIT_MS);
    return leader;
}

/* The writers on c's leader, once MB_FIRST_ACKS writes went through; NULL with err. */
static struct bench_writers *mb_writers(const struct mb_opts *mo, const struct ctl_cluster *c,
                                        int leader, int keys, char *err, size_t errlen)
{
    struct bench_writers_opts wo = {
        .host = c->servers[leader].host, .port = c->servers[leader].port,
        .registry_path = c->registry_path, .clients = mo->clients, .keys = keys,
        .value_size = mo->value_size, .key_prefix = "k", .timeout_ms = MB_WRITE_TIMEOUT_MS,
        .max_seconds = MB_WRITERS_MAX_S,
    };
    struct bench_writers *ws = bench_writers_start(&wo, err, errlen);
    if (ws != NULL && !bench_writers_wait_acks(ws, MB_FIRST_ACKS, MB_WAIT_MS)) {
        const char *why = bench_writers_error(ws);
        snprintf(err, errlen, "the writers did not get %d writes through in %d ms%s%.300s",
                 MB_FIRST_ACKS, MB_WAIT_MS, why != NULL ? ": " : "", why != NULL ? why : "");
        bench_writers_stop(ws);
        bench_writers_free(ws);
        return NULL;
    }
    return ws;
}

/* Stops the writers and takes their failures; an early stop of one is an error. */
static int mb_writers_end(struct bench_writers *ws, long *failed, char *first, size_t len,
                          char *err, size_t errlen)
{
    bench_writers_stop(ws);
    *failed = bench_writers_failed(ws, first, len);
    const char *why = bench_writers_error(ws);
    if (why == NULL)
        return RK_OK;
    snprintf(err, errlen, "a writer stopped early: %.400s", why);
    return RK_ERR_IO;
}

/* The term of the leader a majority follows (0 if none within MB_WAIT_MS). */
static long long mb_term(struct ctl_cluster *c)
{
    struct ctl_status st;
    return ctl_wait_leader(c, MB_WAIT_MS, &st) >= 0 ? st.term : 0;
}

/* Lines of server i's log (NAME.err) that contain what; *first_line gets the first one. */
static int mb_log_lines(const struct ctl_cluster *c, int i, const char *what, char *first_line,
                        size_t len)
{
    char path[CTL_PATH_MAX], line[LOG_LINE_MAX];
    ctl_server_path(c, i, ".err", path, sizeof(path));
    FILE *f = fopen(path, "r");
    int n = 0;
    for (int k = 0; f != NULL && k < 10000000 && fgets(line, sizeof(line), f) != NULL; k++) {
        if (strstr(line, what) == NULL)
            continue;
        if (n++ == 0 && first_line != NULL)
            snprintf(first_line, len, "%s", strstr(line, what));
    }
    if (f != NULL)
        fclose(f);
    return n;
}

/* ================= 1. the rolling restart ================= */

/* Server i is back: every running server names one leader, and i has applied what that
 * leader had committed. *ms from t0. */
static int mb_rejoined(struct ctl_cluster *c, int i, uint64_t t0, double *ms, char *err,
                       size_t errlen)
{
    struct ctl_status st;
    int leader = ctl_wait_agreement(c, MB_WAIT_MS);
    if (leader < 0 || ctl_status_of(c, leader, &st, MB_STATUS_MS) != RK_OK ||
        ctl_wait_applied(c, i, st.commit, MB_WAIT_MS) != RK_OK ||
        ctl_wait_agreement(c, MB_WAIT_MS) < 0) {
        snprintf(err, errlen, "%s did not catch up, or no leader all agree on, within %d ms",
                 c->servers[i].name, MB_WAIT_MS);
        return RK_ERR_TIMEOUT;
    }
    *ms = ms_since(t0);
    return RK_OK;
}

/* SIGTERM to server i, then its start, timed. */
static int mb_restart_one(struct ctl_cluster *c, int i, bool was_leader, struct mb_restart *r,
                          char *err, size_t errlen)
{
    snprintf(r->name, sizeof(r->name), "%s", c->servers[i].name);
    r->was_leader = was_leader;
    uint64_t t0 = rk_clock_ns();
    int rc = ctl_stop(c, i);
    r->stop_ms = ms_since(t0);
    if (rc != RK_OK) {
        snprintf(err, errlen, "%s did not exit cleanly on SIGTERM: %s", r->name,
                 rk_strerror(rc));
        return rc;
    }
    t0 = rk_clock_ns();
    rc = ctl_start(c, i);
    if (rc != RK_OK) {
        snprintf(err, errlen, "cannot start %s again: %s", r->name, rk_strerror(rc));
        return rc;
    }
    return mb_rejoined(c, i, t0, &r->back_ms, err, errlen);
}

/* The next server to restart: the leader while it was not restarted yet (the hard case,
 * a handoff), else the first one not restarted. */
static int mb_roll_pick(const bool *done, int n, int leader)
{
    if (leader >= 0 && !done[leader])
        return leader;
    for (int i = 0; i < n; i++)
        if (!done[i])
            return i;
    return -1;
}

/* Every server once, the next only when the last one is back. */
static int mb_roll_restarts(struct ctl_cluster *c, struct mb_roll *r)
{
    bool done[MB_ROLL_NODES] = { false };
    for (int k = 0; k < MB_ROLL_NODES; k++) {
        int leader = ctl_wait_agreement(c, MB_WAIT_MS);
        int i = mb_roll_pick(done, MB_ROLL_NODES, leader);
        if (leader < 0) {
            snprintf(r->err, sizeof(r->err), "no leader all agree on before restart %d", k + 1);
            return RK_ERR_TIMEOUT;
        }
        int rc = mb_restart_one(c, i, i == leader, &r->r[k], r->err, sizeof(r->err));
        done[i] = true;
        r->done = k + 1;
        r->leaders_stopped += i == leader;
        fprintf(stderr, "  restart %d/%d: %s%s: SIGTERM -> exit %.0f ms, back %.0f ms\n", k + 1,
                MB_ROLL_NODES, r->r[k].name, i == leader ? " (leader)" : "", r->r[k].stop_ms,
                r->r[k].back_ms);
        if (rc != RK_OK)
            return rc;
        rk_sleep_ms(MB_PAUSE_MS);
    }
    return RK_OK;
}

static void mb_roll_run(const struct mb_opts *mo, struct mb_roll *r)
{
    struct ctl_cluster *c = NULL;
    struct bench_writers *ws = NULL;
    r->ran = true;
    r->rc = RK_ERR_TIMEOUT;
    int leader = mb_cluster(mo, MB_ROLL_NODES, mo->o->server_bin, false, &c, r->err,
                            sizeof(r->err));
    if (leader >= 0)
        ws = mb_writers(mo, c, leader, MB_SMALL_KEYS, r->err, sizeof(r->err));
    if (ws != NULL) {
        int64_t t_base = bench_real_ns();
        rk_sleep_ms(mo->base_ms);
        r->term0 = mb_term(c);
        int64_t t0 = bench_real_ns();
        r->rc = mb_roll_restarts(c, r);
        int64_t t1 = bench_real_ns();
        r->term1 = mb_term(c);
        int rc = mb_writers_end(ws, &r->failed, r->first_failure, sizeof(r->first_failure),
                                r->err, sizeof(r->err));
        r->rc = r->rc == RK_OK ? rc : r->rc;
        bench_writers_window(ws, t_base, t0, &r->before);
        bench_writers_window(ws, t0, t1, &r->during);
        for (int i = 0; i < c->n; i++)
            r->handoffs_logged += mb_log_lines(c, i, "handing leadership off before stopping",
                                               NULL, 0);
    }
    if (r->rc != RK_OK)
        ctl_dump_logs(c, 20);
    bench_writers_free(ws);
    ctl_cluster_destroy(c);
}

/* ================= 2. adding a server to a cluster holding many keys ================= */

/* Writes every key once (64 clients, each write retried until acknowledged). */
static int mb_prefill(const struct mb_opts *mo, const struct ctl_cluster *c, int leader,
                      struct mb_add *a)
{
    struct bench_load_opts lo = {
        .host = c->servers[leader].host, .port = c->servers[leader].port,
        .clients = MB_PREFILL_CLIENTS, .ops = mo->keys, .max_seconds = MB_PREFILL_S,
        .value_size = mo->value_size, .keys = mo->keys, .sequential_keys = true,
        .seed = 1, .key_prefix = "k", .retry = true, .progress = "prefill",
    };
    struct bench_result r;
    fprintf(stderr, "  writing %d keys with %d clients\n", mo->keys, MB_PREFILL_CLIENTS);
    int rc = bench_run_load(&lo, &r, a->err, sizeof(a->err));
    a->prefill_s = r.seconds;
    a->prefilled = r.ops;
    if (rc == RK_OK && r.ops < mo->keys) {
        snprintf(a->err, sizeof(a->err), "the prefill wrote %ld of %d keys in %.0f s", r.ops,
                 mo->keys, MB_PREFILL_S);
        rc = RK_ERR_TIMEOUT;
    }
    return rc;
}

/* Waits until every running server applied what the leader committed; the leader. */
static int mb_settle(struct ctl_cluster *c, char *err, size_t errlen)
{
    struct ctl_status st;
    int leader = ctl_wait_agreement(c, MB_WAIT_MS);
    bool ok = leader >= 0 && ctl_status_of(c, leader, &st, MB_STATUS_MS) == RK_OK;
    for (int i = 0; ok && i < c->n; i++)
        ok = c->servers[i].pid <= 0 || ctl_wait_applied(c, i, st.commit, MB_SETTLE_MS) == RK_OK;
    if (!ok) {
        snprintf(err, errlen, "the servers did not all apply the prefill within %d ms",
                 MB_SETTLE_MS);
        return -1;
    }
    return leader;
}

/* Until server i answers STATUS (it listens); false after MB_WAIT_MS. */
static bool mb_wait_answers(const struct ctl_cluster *c, int i)
{
    struct ctl_status st;
    uint64_t t0 = rk_clock_ns();
    while (ms_since(t0) < MB_WAIT_MS) {
        if (ctl_status_of(c, i, &st, MB_STATUS_MS) == RK_OK)
            return true;
        rk_sleep_ms(MB_POLL_MS);
    }
    return false;
}

/* ADD NAME "127.0.0.1 PORT" through a client session, as `raft_client add` sends it. */
static int mb_add_call(const struct ctl_cluster *c, int leader, int i, struct mb_add *a)
{
    char addr[64], err[BENCH_ERR_LEN];
    snprintf(addr, sizeof(addr), "%s %u", c->servers[i].host, (unsigned)c->servers[i].port);
    struct client_session *s = client_session_new(
        c->servers[leader].host, c->servers[leader].port, c->registry_path,
        MB_WRITE_TIMEOUT_MS, false, err, sizeof(err));
    if (s == NULL) {
        snprintf(a->answer, sizeof(a->answer), "no session: %.120s", err);
        return RK_ERR_IO;
    }
    struct client_reply reply;
    memset(&reply, 0, sizeof(reply));
    const char *name = c->servers[i].name;
    uint64_t t0 = rk_clock_ns();
    int rc = client_session_call(s, PROTO_OP_ADD, name, (uint32_t)strlen(name), addr,
                                 (uint32_t)strlen(addr), &reply, err, sizeof(err));
    a->add_ms = ms_since(t0);
    a->ok = rc == RK_OK && reply.status == PROTO_ST_OK;
    if (rc != RK_OK)
        snprintf(a->answer, sizeof(a->answer), "no answer: %.120s", err);
    else
        snprintf(a->answer, sizeof(a->answer), "%s%s%.120s", a->ok ? "OK" : "ERR",
                 reply.body_len > 0 ? " " : "", reply.body);
    if (rc == RK_OK)
        client_reply_free(&reply);
    client_session_free(s);
    return a->ok ? RK_OK : RK_ERR_IO;
}

/* The spare: started with --join, then added; the writers' windows around it. */
static int mb_add_spare(struct ctl_cluster *c, int leader, struct mb_add *a, int64_t *t)
{
    int i = ctl_add_spare(c, a->err, sizeof(a->err));
    if (i < 0)
        return RK_ERR_IO;
    snprintf(a->name, sizeof(a->name), "%s", c->servers[i].name);
    t[1] = bench_real_ns();
    uint64_t t0 = rk_clock_ns();
    if (ctl_start(c, i) != RK_OK || !mb_wait_answers(c, i)) {
        snprintf(a->err, sizeof(a->err), "%s (--join) did not start", a->name);
        return RK_ERR_IO;
    }
    a->status_ms = ms_since(t0);
    fprintf(stderr, "  ADD %s\n", a->name);
    t[2] = bench_real_ns();
    int rc = mb_add_call(c, leader, i, a);
    t[3] = bench_real_ns();
    fprintf(stderr, "  ADD %s answered after %.0f ms: %s\n", a->name, a->add_ms, a->answer);
    if (rc != RK_OK) {
        snprintf(a->err, sizeof(a->err), "ADD %s: %s", a->name, a->answer);
        return rc;
    }
    ctl_set_voter(c, i, true);
    ctl_status_of(c, i, &a->after, MB_STATUS_MS);
    a->via_snapshot = mb_log_lines(c, i, "installed snapshot", NULL, 0) > 0;
    return RK_OK;
}

/* Baseline, the add, and the writes after it: t[0] baseline start, t[1] spare started,
 * t[2] ADD sent, t[3] ADD answered, t[4] the end. */
static int mb_add_measure(const struct mb_opts *mo, struct ctl_cluster *c, int leader,
                          struct mb_add *a)
{
    struct bench_writers *ws = mb_writers(mo, c, leader, mo->keys, a->err, sizeof(a->err));
    if (ws == NULL)
        return RK_ERR_IO;
    int64_t t[5] = { bench_real_ns(), 0, 0, 0, 0 };
    rk_sleep_ms(mo->base_ms);
    int rc = mb_add_spare(c, leader, a, t);
    if (rc == RK_OK)
        rk_sleep_ms(MB_AFTER_MS);
    t[4] = bench_real_ns();
    char werr[BENCH_ERR_LEN];
    int wrc = mb_writers_end(ws, &a->failed, a->first_failure, sizeof(a->first_failure), werr,
                             sizeof(werr));
    if (rc == RK_OK && wrc != RK_OK) {
        snprintf(a->err, sizeof(a->err), "%s", werr);
        rc = wrc;
    }
    if (t[1] != 0)
        bench_writers_window(ws, t[0], t[1], &a->before);
    if (t[3] != 0) {
        bench_writers_window(ws, t[2], t[3], &a->during);
        bench_writers_window(ws, t[3], t[4], &a->after_w);
    }
    bench_writers_free(ws);
    return rc;
}

static void mb_add_run(const struct mb_opts *mo, struct mb_add *a)
{
    struct ctl_cluster *c = NULL;
    a->ran = true;
    a->rc = RK_ERR_TIMEOUT;
    int leader = mb_cluster(mo, 3, mo->o->server_bin, false, &c, a->err, sizeof(a->err));
    if (leader >= 0 && mb_prefill(mo, c, leader, a) == RK_OK &&
        (leader = mb_settle(c, a->err, sizeof(a->err))) >= 0)
        a->rc = mb_add_measure(mo, c, leader, a);
    if (a->rc != RK_OK)
        ctl_dump_logs(c, 20);
    ctl_cluster_destroy(c);
}

/* ================= 3. the leader's disk stalls ================= */

/* DIR/stall.<pid of server i>: while it exists, i's log fdatasync hangs (tests/fault_io.c). */
static void mb_stall_path(const struct ctl_cluster *c, int i, char *out, size_t len)
{
    snprintf(out, len, "%s/stall.%ld", c->dir, (long)c->servers[i].pid);
}

/* Polls the servers other than old until one says role=leader: its index, or -1. */
static int mb_new_leader(const struct ctl_cluster *c, int old, uint64_t t0)
{
    while (ms_since(t0) < MB_STALL_LIMIT_MS) {
        for (int i = 0; i < c->n; i++) {
            struct ctl_status st;
            if (i != old && ctl_status_of(c, i, &st, MB_STATUS_MS) == RK_OK &&
                strcmp(st.role, "leader") == 0)
                return i;
        }
        rk_sleep_ms(MB_POLL_MS);
    }
    return -1;
}

/* After the stall file is gone: until the old leader applied the new one's commit. */
static int mb_stall_catchup(const struct ctl_cluster *c, int old, int next, struct mb_stall *s)
{
    struct ctl_status st;
    uint64_t t0 = rk_clock_ns();
    if (ctl_status_of(c, next, &st, MB_STATUS_MS) != RK_OK ||
        ctl_wait_applied(c, old, st.commit, MB_WAIT_MS) != RK_OK) {
        snprintf(s->err, sizeof(s->err), "%s did not catch up within %d ms of its disk "
                 "answering", s->old_name, MB_WAIT_MS);
        return RK_ERR_TIMEOUT;
    }
    s->catchup_ms = ms_since(t0);
    s->catchup_index = st.commit;
    return RK_OK;
}

/* Probers (a write on a fresh connection every 10 ms) to every server but old: a follower
 * redirects, so the first acknowledgement they get comes from a new leader. */
static struct bench_probers *mb_probers(const struct ctl_cluster *c, int old)
{
    struct bench_target t[CTL_MAX_SERVERS];
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        if (i == old)
            continue;
        t[n] = (struct bench_target){ .port = c->servers[i].port };
        snprintf(t[n].host, sizeof(t[n].host), "%s", c->servers[i].host);
        n++;
    }
    return bench_probers_start(t, n);
}

/* The stall (t[1]), a new leader (t[2]), writes through it, the disk answering (t[3]). */
static int mb_stall_steps(struct ctl_cluster *c, int old, struct bench_probers *pr,
                          struct mb_stall *s, int64_t *t)
{
    char path[CTL_PATH_MAX + 32];
    mb_stall_path(c, old, path, sizeof(path));
    bench_probers_arm(pr);
    uint64_t t0 = rk_clock_ns();
    t[1] = bench_real_ns();
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(s->err, sizeof(s->err), "cannot create %s", path);
        return RK_ERR_IO;
    }
    fclose(f);
    fprintf(stderr, "  %s's disk stalls\n", s->old_name);
    int next = mb_new_leader(c, old, t0);
    s->status_ms = ms_since(t0);
    t[2] = t[1] + (int64_t)(s->status_ms * 1e6);
    int left_ms = MB_STALL_LIMIT_MS - (int)ms_since(t0);
    s->probe_ms = bench_probers_wait(pr, left_ms > 1 ? left_ms : 1);
    if (next >= 0) {
        snprintf(s->new_name, sizeof(s->new_name), "%s", c->servers[next].name);
        rk_sleep_ms(MB_STALL_KEEP_MS);
    }
    unlink(path);
    s->unstall_ms = ms_since(t0);
    t[3] = bench_real_ns();
    fprintf(stderr, "  new leader %s (STATUS %.0f ms, first ack %.1f ms); the disk answers\n",
            next >= 0 ? s->new_name : "none", s->status_ms, s->probe_ms);
    if (next < 0 || s->probe_ms < 0) {
        snprintf(s->err, sizeof(s->err), "no new leader acknowledged a write within %d ms",
                 MB_STALL_LIMIT_MS);
        return RK_ERR_TIMEOUT;
    }
    return mb_stall_catchup(c, old, next, s);
}

/* What the old leader logged about its disk. */
static void mb_stall_logs(const struct ctl_cluster *c, int old, struct mb_stall *s)
{
    char line[LOG_LINE_MAX] = "";
    unsigned long long ms = 0;
    if (mb_log_lines(c, old, "the disk has not answered for", line, sizeof(line)) > 0 &&
        sscanf(line, "the disk has not answered for %llu ms", &ms) == 1)
        s->logged_ms = (double)ms;
    s->handed_off = strstr(line, "handing leadership to an up-to-date follower") != NULL;
    s->answered = mb_log_lines(c, old, "campaigning again", NULL, 0) > 0;
}

static int mb_stall_measure(const struct mb_opts *mo, struct ctl_cluster *c, int old,
                            struct mb_stall *s)
{
    struct bench_writers *ws = mb_writers(mo, c, old, MB_SMALL_KEYS, s->err, sizeof(s->err));
    if (ws == NULL)
        return RK_ERR_IO;
    snprintf(s->old_name, sizeof(s->old_name), "%s", c->servers[old].name);
    int64_t t[5] = { bench_real_ns(), 0, 0, 0, 0 };
    rk_sleep_ms(mo->base_ms);
    struct bench_probers *pr = mb_probers(c, old);
    rk_sleep_ms(200); /* the probers run */
    int rc = pr != NULL ? mb_stall_steps(c, old, pr, s, t) : RK_ERR_NOMEM;
    rk_sleep_ms(rc == RK_OK ? MB_AFTER_MS : 0);
    t[4] = bench_real_ns();
    bench_probers_stop(pr);
    char werr[BENCH_ERR_LEN];
    int wrc = mb_writers_end(ws, &s->failed, s->first_failure, sizeof(s->first_failure), werr,
                             sizeof(werr));
    if (rc == RK_OK && wrc != RK_OK) {
        snprintf(s->err, sizeof(s->err), "%s", werr);
        rc = wrc;
    }
    bench_writers_window(ws, t[0], t[1] != 0 ? t[1] : t[4], &s->before);
    if (t[3] != 0) {
        bench_writers_window(ws, t[1], t[2], &s->to_leader);
        bench_writers_window(ws, t[1], t[3], &s->during);
        bench_writers_window(ws, t[3], t[4], &s->after_w);
    }
    bench_writers_free(ws);
    mb_stall_logs(c, old, s);
    return rc;
}

static void mb_stall_run(const struct mb_opts *mo, struct mb_stall *s)
{
    struct ctl_cluster *c = NULL;
    s->ran = true;
    s->rc = RK_ERR_TIMEOUT;
    if (access(mo->fault_bin, X_OK) != 0) {
        snprintf(s->err, sizeof(s->err), "%s: not there (make %s builds it)", mo->fault_bin,
                 mo->fault_bin);
        return;
    }
    int leader = mb_cluster(mo, 3, mo->fault_bin, true, &c, s->err, sizeof(s->err));
    if (leader >= 0)
        s->rc = mb_stall_measure(mo, c, leader, s);
    for (int i = 0; c != NULL && i < c->n; i++) { /* never leave a disk stalled */
        char path[CTL_PATH_MAX + 32];
        mb_stall_path(c, i, path, sizeof(path));
        unlink(path);
    }
    if (s->rc != RK_OK)
        ctl_dump_logs(c, 20);
    ctl_cluster_destroy(c);
    unsetenv("RK_FAULT_STALL_DIR");
}

/* ================= the report ================= */

static const char *mb_met(bool measured, bool met)
{
    return !measured ? "not measured" : met ? "**yes**" : "**NO**";
}

static void mb_window_row(FILE *f, const char *what, const struct bench_window *w)
{
    fprintf(f, "| %s | %.1f | %ld | %.0f | %.2f | %.2f | %.2f | %.1f | %.1f | %ld |\n", what,
            w->r.seconds, w->acks, w->acks_per_s, w->r.p50_ms, w->r.p99_ms, w->r.p999_ms,
            w->r.max_ms, w->longest_gap_ms, w->failed);
}

static void mb_window_head(FILE *f)
{
    fprintf(f, "\n| writes | s | acks | acks/s | p50 ms | p99 ms | p99.9 ms | longest ms | "
               "longest without an ack ms | failed |\n|---|---|---|---|---|---|---|---|---|---|\n");
}

static bool mb_roll_met(const struct mb_roll *r)
{
    return r->failed == 0 && r->during.r.ops > 0 && r->during.r.max_ms <= ROLL_TARGET_MAX_MS;
}

static void mb_roll_target(FILE *f, const struct mb_roll *r)
{
    bool measured = r->rc == RK_OK && r->done == MB_ROLL_NODES;
    fprintf(f, "| 1. rolling restart of %d servers by SIGTERM under writes: no write fails, the "
               "longest write ≤ %.0f ms | ", MB_ROLL_NODES, ROLL_TARGET_MAX_MS);
    if (!measured)
        fprintf(f, "failed after %d restarts: %s ", r->done, r->err);
    else
        fprintf(f, "%d restarts (%d of them of the leader; %d handoffs logged; terms %lld → "
                   "%lld%s): **%ld writes, %ld failed**, p50 %.2f ms, p99 %.2f ms, **longest "
                   "write %.1f ms**, longest time without an ack %.1f ms ", r->done,
                r->leaders_stopped, r->handoffs_logged, r->term0, r->term1,
                r->term1 - r->term0 == r->handoffs_logged ? ", one per handoff" : "",
                r->during.acks,
                r->failed, r->during.r.p50_ms, r->during.r.p99_ms, r->during.r.max_ms,
                r->during.longest_gap_ms);
    fprintf(f, "| %s |\n", mb_met(measured, mb_roll_met(r)));
}

static void mb_add_target(FILE *f, const struct mb_add *a, int keys)
{
    fprintf(f, "| 2. a server added to 3 holding %d keys: the time until it votes, and the "
               "writes while it catches up | ", keys);
    if (a->rc != RK_OK)
        fprintf(f, "failed: %s | not measured |\n", a->err);
    else
        fprintf(f, "ADD answered OK after **%.0f ms** (%s then said role=%s voters=%lld; %s); "
                   "writes meanwhile: p99 **%.2f ms**, longest **%.1f ms** (%ld acks, %ld "
                   "failed) against p99 %.2f ms, longest %.1f ms in the %.0f s before | no "
                   "number set; it votes: **yes** |\n",
                a->add_ms, a->name, a->after.role, a->after.voters,
                a->via_snapshot ? "through InstallSnapshot" : "no InstallSnapshot logged",
                a->during.r.p99_ms, a->during.r.max_ms, a->during.acks, a->during.failed,
                a->before.r.p99_ms, a->before.r.max_ms, a->before.r.seconds);
}

static void mb_stall_target(FILE *f, const struct mb_stall *s)
{
    fprintf(f, "| 3. the leader's disk stalls (`--disk-stall-ms %s`): the time from the stall to "
               "the first write acknowledged by the new leader | ", MB_DISK_STALL_MS);
    if (s->rc != RK_OK)
        fprintf(f, "failed: %s | not measured |\n", s->err);
    else
        fprintf(f, "**%.0f ms**, of which %s ms is the `--disk-stall-ms` wait (a write on a "
                   "fresh connection to each other server every 10 ms); %s said role=leader at "
                   "%.0f ms; %s logged the stall at %.0f ms and "
                   "%s; its disk answered at %.0f ms and it had applied the new leader's "
                   "commit index %.0f ms later | no number set; the old leader caught up: "
                   "**yes** |\n",
                s->probe_ms, MB_DISK_STALL_MS, s->new_name, s->status_ms, s->old_name,
                s->logged_ms,
                s->handed_off ? "handed leadership off" : "did **not** log a handoff",
                s->unstall_ms, s->catchup_ms);
}

static void mb_roll_details(FILE *f, const struct mb_roll *r)
{
    fprintf(f, "\n**1. Rolling restart.** 5 servers; each step sends SIGTERM to the leader if "
               "it was not restarted yet, else to the next server not restarted, starts it "
               "again at once and waits until it has applied the leader's commit index and "
               "every server names one leader, then %d ms. Per restart (SIGTERM → exit, start → "
               "back):", MB_PAUSE_MS);
    for (int k = 0; k < r->done; k++)
        fprintf(f, "%s %s%s %.0f / %.0f ms", k ? "," : "", r->r[k].name,
                r->r[k].was_leader ? " (leader)" : "", r->r[k].stop_ms, r->r[k].back_ms);
    fprintf(f, ". Failed writes in the whole run: %ld%s%s.\n", r->failed,
            r->failed ? "; the first: " : "", r->failed ? r->first_failure : "");
    mb_window_head(f);
    mb_window_row(f, "before the first SIGTERM", &r->before);
    mb_window_row(f, "the restarts", &r->during);
}

static void mb_add_details(FILE *f, const struct mb_add *a, int keys)
{
    if (a->rc != RK_OK && a->add_ms == 0)
        return;
    fprintf(f, "\n**2. Adding a server.** 3 servers; %ld of %d keys written first by %d "
               "clients in %.1f s; once every server had applied them, the writers (random "
               "overwrites of those keys) ran %.0f s, then %s was started with `--join` "
               "(STATUS answered %.0f ms after the start) and ADD `%s 127.0.0.1 PORT` was sent "
               "through a client session: `%s` after %.0f ms. Failed writes in the whole run: "
               "%ld%s%s.\n", a->prefilled, keys, MB_PREFILL_CLIENTS, a->prefill_s,
            a->before.r.seconds, a->name, a->status_ms, a->name, a->answer, a->add_ms,
            a->failed, a->failed ? "; the first: " : "", a->failed ? a->first_failure : "");
    mb_window_head(f);
    mb_window_row(f, "before the spare started", &a->before);
    mb_window_row(f, "ADD sent → OK (the catch-up)", &a->during);
    mb_window_row(f, "after the OK", &a->after_w);
}

static void mb_stall_details(FILE *f, const struct mb_stall *s)
{
    if (s->new_name[0] == '\0')
        return;
    fprintf(f, "\n**3. Leader disk stall.** 3 servers of the test-only build "
               "(`tests/fault_io.c`: while DIR/stall.PID exists, that server's log "
               "`fdatasync` hangs), `--disk-stall-ms %s`. DIR/stall.PID of the leader %s was "
               "created at 0 ms and removed at %.0f ms. %ld writes (%.0f/s) were "
               "acknowledged between the stall and the STATUS that showed %s leading (%.0f "
               "ms): until it handed off, the old leader, its own `fdatasync` hung, committed "
               "them on its followers' disks. Failed writes in the whole run: %ld%s%s. %s %s "
               "\"campaigning again\" once its disk answered.\n",
            MB_DISK_STALL_MS, s->old_name, s->unstall_ms, s->to_leader.acks,
            s->to_leader.acks_per_s, s->new_name, s->status_ms, s->failed,
            s->failed ? "; the first: " : "",
            s->failed ? s->first_failure : "", s->old_name,
            s->answered ? "logged" : "did **not** log");
    mb_window_head(f);
    mb_window_row(f, "before the stall", &s->before);
    mb_window_row(f, "stall → STATUS shows the new leader", &s->to_leader);
    mb_window_row(f, "stall → the disk answers", &s->during);
    mb_window_row(f, "after the disk answered", &s->after_w);
}

static void mb_definitions(FILE *f)
{
    fprintf(f, "\n*Definitions.* A write is a SET through `client/session.c` (what `raft_client` "
               "uses: one kept-open connection, redirects followed, other servers tried, a "
               "server-side session so that a retry is applied once); its latency runs from the "
               "call to its OK, retries and redirects included; it *fails* when the call gives "
               "up (%d s) or answers other than OK. A window's latencies are those of every "
               "write in flight at some point of it; its acks are the acknowledgements inside "
               "it. *First write acknowledged by the new leader*: probers start a SET on a "
               "fresh connection to every server but the stalled leader every 10 ms; a "
               "follower answers REDIRECT, so the first OK to a write started after the stall "
               "comes from the new leader (resolution 10 ms; the time is when that OK "
               "arrived).\n", MB_WRITE_TIMEOUT_MS / 1000);
}

static void mb_write_section(FILE *f, void *arg)
{
    const struct mb_run *m = arg;
    const struct mb_opts *mo = m->o;
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&m->info.started));
    fprintf(f, "%s\n", SECTION_MARK);
    fprintf(f, "Run %s by `%s` in %.0f s: servers on 127.0.0.1 with fsync on, a new temp dir "
               "per cluster, extra raft_server options: `%s`. %d closed-loop writers, each a "
               "client session, %d-byte values. %ld CPUs; load average before %.2f %.2f %.2f, "
               "after %.2f %.2f %.2f.\n\n",
            when, mo->command, m->info.seconds, mo->server_args, mo->clients, mo->value_size,
            sysconf(_SC_NPROCESSORS_ONLN), m->info.load_before[0], m->info.load_before[1],
            m->info.load_before[2], m->info.load_after[0], m->info.load_after[1],
            m->info.load_after[2]);
    fprintf(f, "| target | measured | met? |\n|---|---|---|\n");
    mb_roll_target(f, &m->roll);
    mb_add_target(f, &m->add, mo->keys);
    mb_stall_target(f, &m->stall);
    mb_roll_details(f, &m->roll);
    mb_add_details(f, &m->add, mo->keys);
    mb_stall_details(f, &m->stall);
    mb_definitions(f);
}

/* ================= the entry point ================= */

/* The targets' own defaults where the command line gave none; false (with a message) if
 * they cannot run as asked. */
static bool mb_opts_of(const struct bench_options *o, const char *command, struct mb_opts *mo)
{
    if (o->registry != NULL) {
        fprintf(stderr, "raft_bench: --membership-targets restarts, adds and stalls servers: "
                        "it needs clusters of its own, not --registry\n");
        return false;
    }
    *mo = (struct mb_opts){
        .o = o, .command = command, .fault_bin = o->fault_server_bin,
        .clients = o->clients_set ? o->clients : MB_CLIENTS,
        .keys = o->keys_set ? o->keys : o->quick ? MB_KEYS_QUICK : MB_KEYS,
        .value_size = o->value_size, .base_ms = o->quick ? MB_BASE_MS_QUICK : MB_BASE_MS,
    };
    if (mo->clients > BENCH_WRITERS_MAX) {
        fprintf(stderr, "raft_bench: --membership-targets: at most %d clients\n",
                BENCH_WRITERS_MAX);
        return false;
    }
    size_t used = 0;
    for (int k = 0; k < o->n_server_args && used < sizeof(mo->server_args); k++) {
        int w = snprintf(mo->server_args + used, sizeof(mo->server_args) - used, "%s%s",
                         k ? " " : "", o->server_args[k]);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used == 0)
        snprintf(mo->server_args, sizeof(mo->server_args), "none");
    return true;
}

int bench_membership_targets(const struct bench_options *o, const char *command)
{
    struct mb_opts mo;
    if (!mb_opts_of(o, command, &mo))
        return 2;
    struct mb_run *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 1;
    m->o = &mo;
    bench_run_begin(&m->info);
    fprintf(stderr, "raft_bench --membership-targets: 1. a rolling restart of %d servers\n",
            MB_ROLL_NODES);
    mb_roll_run(&mo, &m->roll);
    fprintf(stderr, "raft_bench --membership-targets: 2. a server added to 3 holding %d keys\n",
            mo.keys);
    mb_add_run(&mo, &m->add);
    fprintf(stderr, "raft_bench --membership-targets: 3. the leader's disk stalls\n");
    mb_stall_run(&mo, &m->stall);
    bench_run_end(&m->info);
    bench_save_section(o->out_path, SECTION_MARK, mb_write_section, m);
    bool measured = m->roll.rc == RK_OK && m->add.rc == RK_OK && m->stall.rc == RK_OK;
    if (!measured)
        fprintf(stderr, "raft_bench: --membership-targets: not every measurement was made\n");
    free(m);
    return measured ? 0 : 1;
}
