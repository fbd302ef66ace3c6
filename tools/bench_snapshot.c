/* tools/bench_snapshot.c - raft_bench --snapshot-targets: issue 6's four snapshot targets on a
 * cluster holding K keys (1,000,000 of 100 bytes by default): disk use against live data,
 * restart to serving, a wiped follower's catch-up, and write latency while snapshots run. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/errors.h"
#include "bench.h"

#define LEADER_WAIT_MS 20000
#define SETTLE_MS 120000        /* for every server to apply what the leader committed */
#define RESTART_LIMIT_MS 30000
#define CATCHUP_LIMIT_MS 60000
#define POLL_MS 10
#define STATUS_TIMEOUT_MS 200
#define SAMPLE_MS 100           /* disk use is sampled this often */
#define PROGRESS_EVERY_S 15
#define CONNECT_MS 2000
#define IO_MS 10000
#define MAX_FAILS_IN_A_ROW 300  /* with RETRY_PAUSE_MS: a few seconds without a leader */
#define RETRY_PAUSE_MS 10
#define KEY_PREFIX "k"          /* keys are "k%08llu": 9 bytes below 10^8 keys */
#define MAX_WINDOWS 8192
#define LOG_LINE_MAX 1024
#define MB (1024.0 * 1024.0)

/* The targets. */
#define DISK_RATIO_TARGET 3.0
#define RESTART_TARGET_MS 2000.0
#define CATCHUP_TARGET_MS 10000.0
#define STALL_SHARE_TARGET 0.5  /* target 4: no ack-free gap over half a median snapshot */

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ms_since(int64_t t0)
{
    return (double)(bench_now_ns() - t0) / 1e6;
}

static int key_of(char *out, size_t len, long long k)
{
    return snprintf(out, len, KEY_PREFIX "%08lld", k);
}

/* ================= STATUS, with the snapshot index ================= */

struct node_state {
    char role[16];
    char leader[REGISTRY_NAME_MAX + 1];
    long long term, commit, applied, snapshot;
};

static bool field_num(const char *line, const char *key, long long *out)
{
    const char *p = strstr(line, key);
    while (p != NULL && p != line && p[-1] != ' ')
        p = strstr(p + 1, key);
    if (p == NULL)
        return false;
    *out = strtoll(p + strlen(key), NULL, 10);
    return true;
}

static void field_word(const char *line, const char *key, char *out, size_t len)
{
    const char *p = strstr(line, key);
    out[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(key);
    size_t n = strcspn(p, " \r\n");
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
}

/* "name=S role=R term=N leader=S|none commit=N applied=N last=N snapshot=N" of node i. */
static int node_state_of(const struct bench_cluster *c, int i, struct node_state *s)
{
    struct bench_conn conn;
    char err[BENCH_ERR_LEN];
    memset(s, 0, sizeof(*s));
    int rc = bench_conn_open(&conn, c->nodes[i].host, c->nodes[i].port, STATUS_TIMEOUT_MS,
                             STATUS_TIMEOUT_MS, err, sizeof(err));
    if (rc != RK_OK)
        return rc;
    struct proto_buf req = { 0 };
    struct proto_client_req r = { .op = PROTO_OP_STATUS, .key = "", .val = "" };
    struct proto_client_resp resp;
    rc = proto_encode_client_req(&req, &r);
    int st = rc == RK_OK ? bench_conn_call(&conn, req.data, req.len, &resp) : rc;
    proto_buf_free(&req);
    rc = st == PROTO_ST_VALUE ? RK_OK : st < 0 ? st : RK_ERR_PROTO;
    if (rc == RK_OK) {
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(resp.body_len < 511 ? resp.body_len : 511),
                 resp.body);
        field_word(line, "role=", s->role, sizeof(s->role));
        field_word(line, "leader=", s->leader, sizeof(s->leader));
        bool ok = field_num(line, "term=", &s->term) && field_num(line, "commit=", &s->commit) &&
                  field_num(line, "applied=", &s->applied);
        field_num(line, "snapshot=", &s->snapshot);
        rc = ok ? RK_OK : RK_ERR_PROTO;
    }
    bench_conn_close(&conn);
    return rc;
}

/* Waits for a leader and for every running server to apply all it committed. The leader's
 * index, or -1 on timeout; *commit gets its commit index. */
static int settle(const struct bench_cluster *c, int timeout_ms, long long *commit)
{
    int64_t t0 = bench_now_ns();
    while (ms_since(t0) < timeout_ms) {
        int left_ms = timeout_ms - (int)ms_since(t0);
        int leader = bench_wait_leader(c, true, left_ms > 0 ? left_ms : 1);
        struct node_state ls, s;
        if (leader < 0 || node_state_of(c, leader, &ls) != RK_OK)
            continue;
        bool all = ls.applied >= ls.commit;
        for (int i = 0; all && i < c->n; i++)
            all = c->nodes[i].pid <= 0 ||
                  (node_state_of(c, i, &s) == RK_OK && s.applied >= ls.commit);
        if (all) {
            *commit = ls.commit;
            return leader;
        }
        bench_sleep_ms(50);
    }
    return -1;
}

/* ================= disk use ================= */

struct disk_use {
    long long bytes;     /* sum of the files' sizes */
    long long allocated; /* sum of their allocated blocks (du) */
    char detail[256];    /* "s1_snapshot 110.2 MB, s1_log.txt 1.3 MB" */
};

/* Every file of server `name` in dir: the ones named NAME_* (log, state, snapshot and their
 * temporaries; not NAME.err, its stderr). */
static void disk_use_of(const char *dir, const char *name, struct disk_use *u)
{
    memset(u, 0, sizeof(*u));
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    size_t nlen = strlen(name), used = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strncmp(e->d_name, name, nlen) != 0 || e->d_name[nlen] != '_' ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue; /* a file renamed or removed meanwhile is simply not counted */
        u->bytes += st.st_size;
        u->allocated += (long long)st.st_blocks * 512;
        if (used < sizeof(u->detail) - 1) {
            int w = snprintf(u->detail + used, sizeof(u->detail) - used, "%s%s %.1f MB",
                             used ? ", " : "", e->d_name, (double)st.st_size / MB);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    closedir(d);
}

/* Samples every server's disk use every SAMPLE_MS, keeping each one's peak. */
struct sampler {
    const struct bench_cluster *c;
    atomic_bool stop;
    pthread_t thread;
    struct disk_use peak[BENCH_MAX_NODES];
    long samples;
};

static void *sampler_main(void *arg)
{
    struct sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        for (int i = 0; i < s->c->n; i++) {
            struct disk_use u;
            disk_use_of(s->c->dir, s->c->nodes[i].name, &u);
            if (u.bytes > s->peak[i].bytes)
                s->peak[i] = u;
        }
        s->samples++;
        bench_sleep_ms(SAMPLE_MS);
    }
    return NULL;
}

static int max_disk_node(const struct disk_use *u, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (u[i].bytes > u[best].bytes)
            best = i;
    return best;
}

/* ================= writers with a timeline ================= */

struct op_rec {
    int64_t start_ns; /* CLOCK_REALTIME, to line up with the servers' log lines */
    int64_t lat_ns;
};

struct timeline {
    struct op_rec *ops; /* acknowledged writes */
    size_t n;
    long errors;
    double seconds;
    int64_t t0_ns, t1_ns; /* CLOCK_REALTIME */
};

struct writer_job {
    const char *host;
    uint16_t port;
    int clients, keys, value_size;
    long ops;
    bool sequential;    /* op i writes key i % keys; else a uniformly random key */
    double max_seconds; /* 0: until ops are done */
    const char *what;   /* for progress lines */
};

struct writer_shared {
    const struct writer_job *job;
    atomic_long next_op, acked, done_threads;
    int64_t deadline; /* bench_now_ns; 0: none */
    char *value;
};

struct writer {
    struct writer_shared *sh;
    int id;
    pthread_t thread;
    struct bench_conn conn;
    char host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
    uint64_t rng;
    struct proto_buf req;
    struct op_rec *ops;
    size_t n, cap;
    long errors;
    int rc;
    char err[BENCH_ERR_LEN];
};

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int record_op(struct writer *w, int64_t start_ns, int64_t lat_ns)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        struct op_rec *a = realloc(w->ops, cap * sizeof(*a));
        if (a == NULL)
            return RK_ERR_NOMEM;
        w->ops = a;
        w->cap = cap;
    }
    w->ops[w->n++] = (struct op_rec){ start_ns, lat_ns };
    return RK_OK;
}

static int encode_set(struct writer *w, long op_no)
{
    const struct writer_job *j = w->sh->job;
    char key[32];
    long long k = j->sequential ? op_no % j->keys
                                : (long long)(next_rand(&w->rng) % (uint64_t)j->keys);
    int klen = key_of(key, sizeof(key), k);
    struct proto_client_req r = { .op = PROTO_OP_SET, .key = key, .key_len = (uint32_t)klen,
                                  .val = w->sh->value, .val_len = (uint32_t)j->value_size };
    w->req.len = 0;
    return proto_encode_client_req(&w->req, &r);
}

/* After a failed call: follow a redirect, else reconnect to the same server. */
static void after_failure(struct writer *w, int status, const struct proto_client_resp *resp)
{
    w->errors++;
    if (status == PROTO_ST_REDIRECT && resp->leader_host[0] != '\0' && resp->leader_port != 0) {
        snprintf(w->host, sizeof(w->host), "%s", resp->leader_host);
        w->port = resp->leader_port;
    }
    if (status != PROTO_ST_ERR)
        bench_conn_close(&w->conn);
    bench_sleep_ms(RETRY_PAUSE_MS);
}

/* One write of op_no, retried (the same key) until acknowledged. */
static int write_op(struct writer *w, long op_no)
{
    int rc = encode_set(w, op_no);
    for (int fails = 0; rc == RK_OK; fails++) {
        if (fails >= MAX_FAILS_IN_A_ROW ||
            (w->sh->deadline != 0 && bench_now_ns() >= w->sh->deadline)) {
            if (fails >= MAX_FAILS_IN_A_ROW)
                snprintf(w->err, sizeof(w->err), "writer %d: %d failures in a row", w->id,
                         fails);
            return fails >= MAX_FAILS_IN_A_ROW ? RK_ERR_IO : RK_OK;
        }
        if (w->conn.fd < 0 && bench_conn_open(&w->conn, w->host, w->port, CONNECT_MS, IO_MS,
                                              w->err, sizeof(w->err)) != RK_OK) {
            w->errors++;
            bench_sleep_ms(RETRY_PAUSE_MS);
            continue;
        }
        struct proto_client_resp resp;
        int64_t start = real_ns(), t0 = bench_now_ns();
        int st = bench_conn_call(&w->conn, w->req.data, w->req.len, &resp);
        int64_t lat = bench_now_ns() - t0;
        if (st == PROTO_ST_OK) {
            atomic_fetch_add(&w->sh->acked, 1);
            return record_op(w, start, lat);
        }
        after_failure(w, st, &resp);
    }
    return rc;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct writer_shared *sh = w->sh;
    w->conn.fd = -1;
    w->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(w->id + 1) * 0x100000001B3ull;
    snprintf(w->host, sizeof(w->host), "%s", sh->job->host);
    w->port = sh->job->port;
    while (w->rc == RK_OK) {
        long op = atomic_fetch_add(&sh->next_op, 1);
        if (op >= sh->job->ops || (sh->deadline != 0 && bench_now_ns() >= sh->deadline))
            break;
        w->rc = write_op(w, op);
    }
    bench_conn_close(&w->conn);
    proto_buf_free(&w->req);
    atomic_fetch_add(&sh->done_threads, 1);
    return NULL;
}

/* Waits for the writers, printing progress now and then. */
static void watch_writers(struct writer_shared *sh, int started, int64_t t0)
{
    int64_t last_print = t0;
    while (atomic_load(&sh->done_threads) < started) {
        bench_sleep_ms(100);
        if (bench_now_ns() - last_print >= (int64_t)PROGRESS_EVERY_S * 1000000000) {
            last_print = bench_now_ns();
            long acked = atomic_load(&sh->acked);
            fprintf(stderr, "  %s: %ld writes acknowledged in %.0f s (%.0f/s)\n",
                    sh->job->what, acked, ms_since(t0) / 1e3, acked / (ms_since(t0) / 1e3));
        }
    }
}

/* Moves every writer's records into tl. */
static int gather(struct writer *ws, int n, struct timeline *tl)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += ws[i].n;
    tl->ops = malloc((total ? total : 1) * sizeof(*tl->ops));
    if (tl->ops == NULL)
        return RK_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        memcpy(tl->ops + tl->n, ws[i].ops, ws[i].n * sizeof(*tl->ops));
        tl->n += ws[i].n;
        tl->errors += ws[i].errors;
    }
    return RK_OK;
}

/* Closed-loop writes: each client sends one SET and waits for the answer. */
static int run_writers(const struct writer_job *j, struct timeline *tl, char *err, size_t errlen)
{
    memset(tl, 0, sizeof(*tl));
    struct writer_shared sh = { .job = j };
    struct writer *ws = calloc((size_t)j->clients, sizeof(*ws));
    sh.value = malloc((size_t)j->value_size + 1);
    if (ws == NULL || sh.value == NULL) {
        free(ws);
        free(sh.value);
        snprintf(err, errlen, "out of memory");
        return RK_ERR_NOMEM;
    }
    for (int i = 0; i < j->value_size; i++)
        sh.value[i] = (char)('a' + i % 26);
    int64_t t0 = bench_now_ns();
    sh.deadline = j->max_seconds > 0 ? t0 + (int64_t)(j->max_seconds * 1e9) : 0;
    tl->t0_ns = real_ns();
    int started = 0;
    for (; started < j->clients; started++) {
        ws[started] = (struct writer){ .sh = &sh, .id = started };
        if (pthread_create(&ws[started].thread, NULL, writer_main, &ws[started]) != 0)
            break;
    }
    watch_writers(&sh, started, t0);
    int rc = started == j->clients ? RK_OK : RK_ERR_NOMEM;
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        if (rc == RK_OK && ws[i].rc != RK_OK) {
            rc = ws[i].rc;
            snprintf(err, errlen, "%s", ws[i].err);
        }
    }
    tl->seconds = ms_since(t0) / 1e3;
    tl->t1_ns = real_ns();
    if (gather(ws, started, tl) != RK_OK && rc == RK_OK)
        rc = RK_ERR_NOMEM;
    for (int i = 0; i < started; i++)
        free(ws[i].ops);
    free(ws);
    free(sh.value);
    return rc;
}

/* ================= snapshot windows from the servers' logs ================= */

/* From "snapshot at index N (...) started" to the later of "snapshot at index N done" and
 * "compacted the log file up to index N" (the io thread rewrites the log then). */
struct snap_window {
    int node;
    long long index;
    int64_t start_ns, end_ns; /* CLOCK_REALTIME; end 0 while not seen */
    double took_ms;           /* as the server logged it */
    double lock_us;           /* the lock hold to start it (the fork) */
    double compact_ms;        /* the io thread's log rewrite afterwards (appends wait) */
    int64_t compact_end_ns;
};

struct windows {
    struct snap_window w[MAX_WINDOWS];
    int n;
};

/* "YYYY-MM-DD HH:MM:SS.mmm " (local time, server/node/log.c) at the start of line. */
static bool log_time(const char *line, int64_t *ns)
{
    struct tm tm;
    int ms = 0;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(line, "%d-%d-%d %d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    *ns = (int64_t)t * 1000000000 + (int64_t)ms * 1000000;
    return t != (time_t)-1;
}

static struct snap_window *find_window(struct windows *ws, int node, long long index)
{
    for (int k = ws->n - 1; k >= 0; k--)
        if (ws->w[k].node == node && ws->w[k].index == index)
            return &ws->w[k];
    return NULL;
}

static void parse_log_line(struct windows *ws, int node, const char *line)
{
    int64_t t;
    long long index, ms, us;
    const char *p;
    if (!log_time(line, &t))
        return;
    if ((p = strstr(line, "snapshot at index ")) != NULL && strstr(p, ") started") != NULL &&
        sscanf(p, "snapshot at index %lld", &index) == 1 && ws->n < MAX_WINDOWS) {
        const char *held = strstr(p, "the lock was held ");
        us = held != NULL ? strtoll(held + 18, NULL, 10) : 0;
        ws->w[ws->n++] = (struct snap_window){ .node = node, .index = index,
                                               .start_ns = t - us * 1000 - 1000000,
                                               .lock_us = (double)us };
    } else if (p != NULL && sscanf(p, "snapshot at index %lld done in %lld ms", &index, &ms) == 2) {
        struct snap_window *w = find_window(ws, node, index);
        if (w != NULL) {
            w->took_ms = (double)ms;
            w->end_ns = t + 1000000 > w->end_ns ? t + 1000000 : w->end_ns;
        }
    } else if ((p = strstr(line, "compacted the log file up to index ")) != NULL &&
               sscanf(p, "compacted the log file up to index %lld in %lld ms", &index,
                      &ms) == 2) {
        struct snap_window *w = find_window(ws, node, index);
        if (w != NULL && t + 1000000 > w->end_ns)
            w->end_ns = t + 1000000;
        if (w != NULL) {
            w->compact_ms = (double)ms;
            w->compact_end_ns = t + 1000000;
        }
    }
}

/* Every snapshot every server logged (a window still open ends now). */
static void read_windows(const struct bench_cluster *c, struct windows *ws)
{
    ws->n = 0;
    for (int i = 0; i < c->n; i++) {
        char path[256], line[LOG_LINE_MAX];
        snprintf(path, sizeof(path), "%s/%s.err", c->dir, c->nodes[i].name);
        FILE *f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
            parse_log_line(ws, i, line);
        if (f != NULL)
            fclose(f);
    }
    int64_t now = real_ns();
    for (int k = 0; k < ws->n; k++)
        if (ws->w[k].end_ns == 0)
            ws->w[k].end_ns = now;
}

/* ================= latency during snapshots ================= */

struct lat_stats {
    long n;
    double p50, p99, p999, max; /* ms */
};

struct stall_report {
    int snapshots;            /* windows (any server) overlapping the run */
    int leader_snapshots;     /* of them, the leader's */
    double snap_ms_median, snap_ms_max, lock_us_median, lock_us_max, compact_ms_max;
    double share_in_snapshot; /* of the run's time, inside some window */
    struct lat_stats all, during, outside;
    double longest_gap_ms, longest_gap_during_ms; /* no write acknowledged at all */
    int64_t gap_a, gap_b;     /* the longest gap during a snapshot */
    char gap_cause[160];      /* the forks (lock holds) inside it, if any */
    double ops_per_s;
    long errors;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double rank_ms(const int64_t *v, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return (double)v[rank - 1] / 1e6;
}

/* Sorts v. */
static void stats_of(int64_t *v, size_t n, struct lat_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (n == 0)
        return;
    qsort(v, n, sizeof(*v), cmp_i64);
    *s = (struct lat_stats){ .n = (long)n, .p50 = rank_ms(v, n, 0.5),
                             .p99 = rank_ms(v, n, 0.99), .p999 = rank_ms(v, n, 0.999),
                             .max = (double)v[n - 1] / 1e6 };
}

struct span {
    int64_t a, b;
};

static int cmp_span(const void *x, const void *y)
{
    const struct span *p = x, *q = y;
    return (p->a > q->a) - (p->a < q->a);
}

/* The union of the windows overlapping [t0, t1], sorted and merged. Returns the count. */
static int merge_windows(const struct windows *ws, int64_t t0, int64_t t1, struct span *out)
{
    int n = 0;
    for (int k = 0; k < ws->n; k++)
        if (ws->w[k].start_ns < t1 && ws->w[k].end_ns > t0)
            out[n++] = (struct span){ ws->w[k].start_ns, ws->w[k].end_ns };
    qsort(out, (size_t)n, sizeof(*out), cmp_span);
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (m > 0 && out[k].a <= out[m - 1].b) {
            if (out[k].b > out[m - 1].b)
                out[m - 1].b = out[k].b;
        } else {
            out[m++] = out[k];
        }
    }
    return m;
}

/* Whether [a, b] meets one of the sorted, disjoint spans. */
static bool overlaps(const struct span *s, int n, int64_t a, int64_t b)
{
    int lo = 0, hi = n; /* the first span ending after a */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s[mid].b <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && s[lo].a < b;
}

static void window_summary(const struct windows *ws, int64_t t0, int64_t t1, int leader,
                           struct stall_report *r)
{
    static double took[MAX_WINDOWS], lock[MAX_WINDOWS]; /* main thread only */
    int n = 0;
    for (int k = 0; k < ws->n; k++) {
        const struct snap_window *w = &ws->w[k];
        if (w->start_ns >= t1 || w->end_ns <= t0)
            continue;
        took[n] = (double)(w->end_ns - w->start_ns) / 1e6;
        lock[n++] = w->lock_us;
        r->leader_snapshots += w->node == leader;
        r->compact_ms_max = w->compact_ms > r->compact_ms_max ? w->compact_ms
                                                               : r->compact_ms_max;
    }
    r->snapshots = n;
    for (int k = 0; k < n; k++) {
        r->snap_ms_max = took[k] > r->snap_ms_max ? took[k] : r->snap_ms_max;
        r->lock_us_max = lock[k] > r->lock_us_max ? lock[k] : r->lock_us_max;
    }
    r->snap_ms_median = n > 0 ? bench_median(took, n) : 0;
    r->lock_us_median = n > 0 ? bench_median(lock, n) : 0;
}

static bool meets(int64_t a, int64_t b, int64_t c, int64_t d)
{
    return a < d && c < b;
}

/* Which servers forked (held the lock to start a snapshot) or rewrote their log file
 * (appends wait) inside the longest gap. */
static void gap_cause(const struct windows *ws, struct stall_report *r)
{
    size_t used = 0, len = sizeof(r->gap_cause);
    r->gap_cause[0] = '\0';
    for (int k = 0; k < ws->n && used < len; k++) {
        const struct snap_window *w = &ws->w[k];
        int64_t fork_end = w->start_ns + (int64_t)(w->lock_us * 1e3) + 2000000;
        int n = 0;
        if (meets(w->start_ns, fork_end, r->gap_a, r->gap_b))
            n = snprintf(r->gap_cause + used, len - used, "%ss%d forked (lock held %.1f ms)",
                         used ? ", " : "", w->node + 1, w->lock_us / 1e3);
        used += n > 0 ? (size_t)n : 0;
        int64_t c0 = w->compact_end_ns - (int64_t)(w->compact_ms * 1e6) - 2000000;
        if (used < len && w->compact_end_ns != 0 &&
            meets(c0, w->compact_end_ns, r->gap_a, r->gap_b))
            n = snprintf(r->gap_cause + used, len - used, "%ss%d rewrote its log (%.0f ms)",
                         used ? ", " : "", w->node + 1, w->compact_ms);
        else
            n = 0;
        used += n > 0 ? (size_t)n : 0;
    }
    if (used == 0)
        snprintf(r->gap_cause, len, "none");
}

/* The longest time without any acknowledgement, overall and meeting a window. */
static void gaps(const struct timeline *tl, const struct span *s, int m, struct stall_report *r)
{
    int64_t *ends = malloc((tl->n + 1) * sizeof(*ends));
    if (ends == NULL)
        return;
    for (size_t k = 0; k < tl->n; k++)
        ends[k] = tl->ops[k].start_ns + tl->ops[k].lat_ns;
    qsort(ends, tl->n, sizeof(*ends), cmp_i64);
    for (size_t k = 1; k < tl->n; k++) {
        double gap = (double)(ends[k] - ends[k - 1]) / 1e6;
        if (gap > r->longest_gap_ms)
            r->longest_gap_ms = gap;
        if (gap > r->longest_gap_during_ms && overlaps(s, m, ends[k - 1], ends[k])) {
            r->longest_gap_during_ms = gap;
            r->gap_a = ends[k - 1];
            r->gap_b = ends[k];
        }
    }
    free(ends);
}

static int stall_report_of(const struct timeline *tl, const struct windows *ws, int leader,
                           struct stall_report *r)
{
    memset(r, 0, sizeof(*r));
    struct span *s = malloc(((size_t)ws->n + 1) * sizeof(*s));
    int64_t *all = malloc((tl->n + 1) * sizeof(*all));
    int64_t *in = malloc((tl->n + 1) * sizeof(*in));
    int64_t *out = malloc((tl->n + 1) * sizeof(*out));
    if (s == NULL || all == NULL || in == NULL || out == NULL) {
        free(s);
        free(all);
        free(in);
        free(out);
        return RK_ERR_NOMEM;
    }
    int m = merge_windows(ws, tl->t0_ns, tl->t1_ns, s);
    size_t n_in = 0, n_out = 0;
    for (size_t k = 0; k < tl->n; k++) {
        const struct op_rec *o = &tl->ops[k];
        all[k] = o->lat_ns;
        if (overlaps(s, m, o->start_ns, o->start_ns + o->lat_ns))
            in[n_in++] = o->lat_ns;
        else
            out[n_out++] = o->lat_ns;
    }
    int64_t covered = 0;
    for (int k = 0; k < m; k++)
        covered += (s[k].b < tl->t1_ns ? s[k].b : tl->t1_ns) - (s[k].a > tl->t0_ns ? s[k].a
                                                                                  : tl->t0_ns);
    r->share_in_snapshot = tl->t1_ns > tl->t0_ns ? (double)covered / (double)(tl->t1_ns -
                                                                              tl->t0_ns) : 0;
    gaps(tl, s, m, r);
    stats_of(all, tl->n, &r->all);
    stats_of(in, n_in, &r->during);
    stats_of(out, n_out, &r->outside);
    window_summary(ws, tl->t0_ns, tl->t1_ns, leader, r);
    gap_cause(ws, r);
    r->ops_per_s = tl->seconds > 0 ? (double)tl->n / tl->seconds : 0;
    r->errors = tl->errors;
    free(s);
    free(all);
    free(in);
    free(out);
    return RK_OK;
}

/* ================= restarts ================= */

struct restart_result {
    bool measured, ok;
    long long target;    /* the applied index it must reach: the leader's commit at the kill */
    double answer_ms;    /* restart -> first STATUS answer */
    double caught_up_ms; /* restart -> applied >= target */
    double serving_ms;   /* restart -> caught up and a SET answered (OK, or REDIRECT naming
                            the leader) */
    long long snapshot;  /* its snapshot index when serving */
    char note[160];
};

/* A SET of a key that already holds this value (live data unchanged): true if node i
 * answers OK, or REDIRECT naming a leader. */
static bool probe_serving(const struct bench_cluster *c, int i, int value_size)
{
    struct bench_conn conn;
    char err[BENCH_ERR_LEN], key[32], value[4096];
    if (bench_conn_open(&conn, c->nodes[i].host, c->nodes[i].port, STATUS_TIMEOUT_MS, 2000, err,
                        sizeof(err)) != RK_OK)
        return false;
    int vlen = value_size < (int)sizeof(value) ? value_size : (int)sizeof(value);
    for (int k = 0; k < vlen; k++)
        value[k] = (char)('a' + k % 26);
    int klen = key_of(key, sizeof(key), 0);
    struct proto_client_req r = { .op = PROTO_OP_SET, .key = key, .key_len = (uint32_t)klen,
                                  .val = value, .val_len = (uint32_t)vlen };
    struct proto_buf req = { 0 };
    struct proto_client_resp resp;
    int st = proto_encode_client_req(&req, &r) == RK_OK
                 ? bench_conn_call(&conn, req.data, req.len, &resp) : RK_ERR_NOMEM;
    bool ok = st == PROTO_ST_OK || (st == PROTO_ST_REDIRECT && resp.leader_name[0] != '\0');
    proto_buf_free(&req);
    bench_conn_close(&conn);
    return ok;
}

/* Starts node i (just killed) and times it to serving. */
static void time_restart(struct bench_cluster *c, int i, long long target, int value_size,
                         struct restart_result *r)
{
    *r = (struct restart_result){ .measured = true, .target = target, .answer_ms = -1,
                                  .caught_up_ms = -1, .serving_ms = -1 };
    int64_t t0 = bench_now_ns();
    if (bench_cluster_start_node(c, i) != RK_OK) {
        snprintf(r->note, sizeof(r->note), "cannot start %s", c->nodes[i].name);
        return;
    }
    while (ms_since(t0) < RESTART_LIMIT_MS) {
        struct node_state s;
        if (node_state_of(c, i, &s) == RK_OK) {
            if (r->answer_ms < 0)
                r->answer_ms = ms_since(t0);
            if (r->caught_up_ms < 0 && s.applied >= target)
                r->caught_up_ms = ms_since(t0);
            if (r->caught_up_ms >= 0 && probe_serving(c, i, value_size)) {
                r->serving_ms = ms_since(t0);
                r->snapshot = s.snapshot;
                r->ok = true;
                return;
            }
        }
        bench_sleep_ms(POLL_MS);
    }
    snprintf(r->note, sizeof(r->note), "not serving within %d ms", RESTART_LIMIT_MS);
}

/* kill -9 of a follower (or of the leader) once the cluster is settled, then its restart
 * at once, timed. */
static void restart_node(struct bench_cluster *c, bool leader_too, int value_size,
                         struct restart_result *r)
{
    long long commit = 0;
    int leader = settle(c, SETTLE_MS, &commit);
    memset(r, 0, sizeof(*r));
    r->measured = true;
    if (leader < 0) {
        snprintf(r->note, sizeof(r->note), "the cluster did not settle");
        return;
    }
    int victim = leader_too ? leader : (leader + 1) % c->n;
    fprintf(stderr, "  kill -9 %s (%s), restart, index %lld\n", c->nodes[victim].name,
            leader_too ? "leader" : "follower", commit);
    bench_cluster_kill_node(c, victim);
    time_restart(c, victim, commit, value_size, r);
}

struct catchup_result {
    bool measured, ok;
    long long target;
    double caught_up_ms; /* restart of the wiped follower -> applied >= target */
    double answer_ms;
    bool via_snapshot;   /* its log says it installed a snapshot */
    char note[160];
};

/* Removes every NAME_* file of server `name` from dir. */
static void wipe_files(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    size_t nlen = strlen(name);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, name, nlen) == 0 && e->d_name[nlen] == '_')
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

static bool log_mentions(const struct bench_cluster *c, int i, const char *what)
{
    char path[256], line[LOG_LINE_MAX];
    snprintf(path, sizeof(path), "%s/%s.err", c->dir, c->nodes[i].name);
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, what) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

static void wiped_follower(struct bench_cluster *c, struct catchup_result *r)
{
    long long commit = 0;
    int leader = settle(c, SETTLE_MS, &commit);
    *r = (struct catchup_result){ .measured = true, .caught_up_ms = -1, .answer_ms = -1 };
    if (leader < 0) {
        snprintf(r->note, sizeof(r->note), "the cluster did not settle");
        return;
    }
    int f = (leader + 2) % c->n;
    r->target = commit;
    fprintf(stderr, "  kill -9 %s, wipe its files, restart; leader commit %lld\n",
            c->nodes[f].name, commit);
    bench_cluster_kill_node(c, f);
    wipe_files(c->dir, c->nodes[f].name);
    int64_t t0 = bench_now_ns();
    if (bench_cluster_start_node(c, f) != RK_OK) {
        snprintf(r->note, sizeof(r->note), "cannot start %s", c->nodes[f].name);
        return;
    }
    while (ms_since(t0) < CATCHUP_LIMIT_MS && r->caught_up_ms < 0) {
        struct node_state s;
        if (node_state_of(c, f, &s) == RK_OK) {
            if (r->answer_ms < 0)
                r->answer_ms = ms_since(t0);
            if (s.applied >= commit && s.commit >= commit)
                r->caught_up_ms = ms_since(t0);
        }
        if (r->caught_up_ms < 0)
            bench_sleep_ms(POLL_MS);
    }
    r->ok = r->caught_up_ms >= 0;
    r->via_snapshot = log_mentions(c, f, "installed snapshot");
    if (!r->ok)
        snprintf(r->note, sizeof(r->note), "not caught up within %d ms", CATCHUP_LIMIT_MS);
}

/* ================= the run and its report ================= */

struct snap_run {
    const struct bench_snapshot_opts *o;
    long long live_bytes;
    struct timeline load, steady;
    struct stall_report load_stall, steady_stall;
    int load_rc, steady_rc;
    char load_err[BENCH_ERR_LEN], steady_err[BENCH_ERR_LEN];
    struct disk_use after_load[BENCH_MAX_NODES], at_end[BENCH_MAX_NODES];
    struct disk_use peak[BENCH_MAX_NODES];
    long disk_samples;
    double rss_mb[BENCH_MAX_NODES]; /* each server's resident memory after the load */
    struct restart_result follower, leader;
    struct catchup_result wiped;
    double load_before[3], load_after[3];
    double seconds;
    time_t started;
    int nodes;
};

/* VmRSS of a process in MB (0 if unknown). */
static double rss_mb_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    long long kb = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return (double)kb / 1024.0;
}

static void disk_now(const struct bench_cluster *c, struct disk_use *u)
{
    for (int i = 0; i < c->n; i++)
        disk_use_of(c->dir, c->nodes[i].name, &u[i]);
}

/* Phase 1: write every key once; phase 2: overwrite random keys for a while. */
static void write_phases(struct bench_cluster *c, struct snap_run *sr, struct windows *ws)
{
    const struct bench_snapshot_opts *o = sr->o;
    long long commit = 0;
    int leader = bench_wait_leader(c, false, LEADER_WAIT_MS);
    if (leader < 0)
        leader = 0; /* the writers follow redirects */
    struct writer_job j = { .host = c->nodes[leader].host, .port = c->nodes[leader].port,
                            .clients = o->clients, .keys = o->keys, .value_size = o->value_size,
                            .ops = o->keys, .sequential = true, .what = "load" };
    fprintf(stderr, "raft_bench --snapshot-targets: writing %d keys with %d clients\n", o->keys,
            o->clients);
    sr->load_rc = run_writers(&j, &sr->load, sr->load_err, sizeof(sr->load_err));
    leader = settle(c, SETTLE_MS, &commit);
    disk_now(c, sr->after_load);
    for (int i = 0; i < c->n; i++)
        sr->rss_mb[i] = rss_mb_of(c->nodes[i].pid);
    if (leader < 0)
        leader = 0;
    j = (struct writer_job){ .host = c->nodes[leader].host, .port = c->nodes[leader].port,
                             .clients = o->clients, .keys = o->keys, .value_size = o->value_size,
                             .ops = 1L << 40, .max_seconds = o->steady_seconds,
                             .what = "overwrites" };
    fprintf(stderr, "raft_bench --snapshot-targets: %.0f s of random overwrites\n",
            o->steady_seconds);
    sr->steady_rc = run_writers(&j, &sr->steady, sr->steady_err, sizeof(sr->steady_err));
    settle(c, SETTLE_MS, &commit);
    read_windows(c, ws);
    stall_report_of(&sr->load, ws, leader, &sr->load_stall);
    stall_report_of(&sr->steady, ws, leader, &sr->steady_stall);
}

static int run_all(struct bench_cluster *c, struct snap_run *sr)
{
    struct windows *ws = calloc(1, sizeof(*ws));
    struct sampler smp = { .c = c };
    atomic_init(&smp.stop, false);
    if (ws == NULL || pthread_create(&smp.thread, NULL, sampler_main, &smp) != 0) {
        free(ws);
        return RK_ERR_NOMEM;
    }
    write_phases(c, sr, ws);
    fprintf(stderr, "raft_bench --snapshot-targets: restarts\n");
    restart_node(c, false, sr->o->value_size, &sr->follower);
    restart_node(c, true, sr->o->value_size, &sr->leader);
    fprintf(stderr, "raft_bench --snapshot-targets: a wiped follower\n");
    wiped_follower(c, &sr->wiped);
    long long commit;
    settle(c, SETTLE_MS, &commit);
    disk_now(c, sr->at_end);
    atomic_store(&smp.stop, true);
    pthread_join(smp.thread, NULL);
    memcpy(sr->peak, smp.peak, sizeof(sr->peak));
    sr->disk_samples = smp.samples;
    free(ws);
    return RK_OK;
}

static const char *yes_no(bool measured, bool met)
{
    return !measured ? "not measured" : met ? "**yes**" : "**NO**";
}

static void write_disk_row(FILE *f, const struct snap_run *sr)
{
    int p = max_disk_node(sr->peak, sr->nodes), a = max_disk_node(sr->after_load, sr->nodes);
    int e = max_disk_node(sr->at_end, sr->nodes);
    double live = (double)sr->live_bytes;
    double peak_ratio = live > 0 ? (double)sr->peak[p].bytes / live : 0;
    fprintf(f, "| 1. disk use with %d keys of %d-byte values ≤ %.0f× live data | live data "
               "%.1f MB (keys + values); largest server: peak %.1f MB = **%.2f×** (s%d, %ld "
               "samples, every %d ms), %.1f MB = %.2f× after the load, %.1f MB = %.2f× at the "
               "end | %s |\n",
            sr->o->keys, sr->o->value_size, DISK_RATIO_TARGET, live / MB,
            (double)sr->peak[p].bytes / MB, peak_ratio, p + 1, sr->disk_samples, SAMPLE_MS,
            (double)sr->after_load[a].bytes / MB, (double)sr->after_load[a].bytes / live,
            (double)sr->at_end[e].bytes / MB, (double)sr->at_end[e].bytes / live,
            yes_no(sr->load_rc == RK_OK, peak_ratio > 0 && peak_ratio <= DISK_RATIO_TARGET));
}

static void describe_restart(char *out, size_t len, const struct restart_result *r)
{
    if (!r->ok)
        snprintf(out, len, "failed: %s", r->note);
    else
        snprintf(out, len, "**%.0f ms** (STATUS answered at %.0f ms, applied ≥ %lld at %.0f "
                 "ms)", r->serving_ms, r->answer_ms, r->target, r->caught_up_ms);
}

static void write_restart_rows(FILE *f, const struct snap_run *sr)
{
    char fo[256], le[256];
    describe_restart(fo, sizeof(fo), &sr->follower);
    describe_restart(le, sizeof(le), &sr->leader);
    fprintf(f, "| 2. restart to serving < %.0f s (follower) | kill -9 of a follower, restart: %s "
               "| %s |\n", RESTART_TARGET_MS / 1000, fo,
            yes_no(sr->follower.measured,
                   sr->follower.ok && sr->follower.serving_ms < RESTART_TARGET_MS));
    fprintf(f, "| 2. restart to serving < %.0f s (leader) | kill -9 of the leader, restart at "
               "once: %s | %s |\n", RESTART_TARGET_MS / 1000, le,
            yes_no(sr->leader.measured,
                   sr->leader.ok && sr->leader.serving_ms < RESTART_TARGET_MS));
    const struct catchup_result *w = &sr->wiped;
    fprintf(f, "| 3. a wiped follower caught up < %.0f s | ", CATCHUP_TARGET_MS / 1000);
    if (w->ok)
        fprintf(f, "**%.0f ms** to applied = commit ≥ %lld (STATUS answered at %.0f ms; %s) ",
                w->caught_up_ms, w->target, w->answer_ms,
                w->via_snapshot ? "through InstallSnapshot" : "no InstallSnapshot logged");
    else
        fprintf(f, "failed: %s ", w->note);
    fprintf(f, "| %s |\n", yes_no(w->measured, w->ok && w->caught_up_ms < CATCHUP_TARGET_MS));
}

/* Target 4 ("writes keep flowing while snapshots are taken"; the issue sets no number) is
 * met when no snapshot held writes up for a large part of its duration: the longest time
 * without any acknowledgement during snapshots is under STALL_SHARE_TARGET of the median
 * snapshot's duration. The p99.9 is reported beside it. */
static bool stall_met(const struct stall_report *s)
{
    return s->snapshots > 0 && s->during.n > 0 &&
           s->longest_gap_during_ms < STALL_SHARE_TARGET * s->snap_ms_median;
}

#define MIN_BASELINE_WRITES 1000

/* The p99.9 of writes outside every snapshot: from the overwrites, or, when snapshots
 * covered (nearly) all of that phase, from the load. */
static void baseline(const struct snap_run *sr, char *out, size_t len)
{
    const struct stall_report *s = &sr->steady_stall, *l = &sr->load_stall;
    if (s->outside.n >= MIN_BASELINE_WRITES)
        snprintf(out, len, "%.1f ms outside them (%ld writes)", s->outside.p999, s->outside.n);
    else if (l->outside.n >= MIN_BASELINE_WRITES)
        snprintf(out, len, "%.1f ms for the load's writes outside them (%ld writes; the "
                 "overwrites had only %ld)", l->outside.p999, l->outside.n, s->outside.n);
    else
        snprintf(out, len, "no baseline: under %d writes outside snapshots",
                 MIN_BASELINE_WRITES);
}

static void write_stall_row(FILE *f, const struct snap_run *sr)
{
    const struct stall_report *s = &sr->steady_stall;
    char base[192];
    baseline(sr, base, sizeof(base));
    fprintf(f, "| 4. writes flow during snapshots (stall as p99.9) | %d clients, %.0f s of "
               "overwrites, %.0f writes/s, %d snapshots (%d on the leader; median %.0f ms, "
               "max %.0f ms; %.0f%% of the time inside one): p99.9 **%.1f ms** during "
               "snapshots (%ld writes) vs %s; p99 %.1f ms; longest write %.1f ms; **longest "
               "time without any ack during a snapshot %.1f ms** (the lock is held up to %.0f "
               "ms, median %.1f ms, to fork the writer) | %s |\n",
            sr->o->clients, sr->steady.seconds, s->ops_per_s, s->snapshots, s->leader_snapshots,
            s->snap_ms_median, s->snap_ms_max, 100 * s->share_in_snapshot, s->during.p999,
            s->during.n, base, s->all.p99, s->all.max, s->longest_gap_during_ms,
            s->lock_us_max / 1e3, s->lock_us_median / 1e3,
            yes_no(sr->steady_rc == RK_OK, stall_met(s)));
}

static void write_lat_line(FILE *f, const char *what, const struct lat_stats *l)
{
    fprintf(f, "| %s | %ld | %.2f | %.2f | %.2f | %.2f |\n", what, l->n, l->p50, l->p99, l->p999,
            l->max);
}

static void write_phase(FILE *f, const char *what, const struct timeline *tl,
                        const struct stall_report *s, int rc, const char *err)
{
    fprintf(f, "\n%s: %zu writes in %.1f s (%.0f/s), %ld failed attempts (redirects, "
               "reconnects)%s%s; %d snapshots overlapped it (%d on the leader; median %.0f ms, "
               "max %.0f ms; %.0f%% of the time inside one); the lock was held a median %.1f "
               "ms, at most %.1f ms, to start one; the log file rewrite after one took at most "
               "%.0f ms; longest time without any ack %.1f ms (%.1f ms during a snapshot; "
               "forks or log rewrites inside that one: %s).\n\n",
            what, tl->n, tl->seconds, s->ops_per_s, s->errors, rc == RK_OK ? "" : "; FAILED: ",
            rc == RK_OK ? "" : err, s->snapshots, s->leader_snapshots, s->snap_ms_median,
            s->snap_ms_max, 100 * s->share_in_snapshot, s->lock_us_median / 1e3,
            s->lock_us_max / 1e3, s->compact_ms_max, s->longest_gap_ms,
            s->longest_gap_during_ms, s->gap_cause);
    fprintf(f, "| writes | n | p50 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|\n");
    write_lat_line(f, "all", &s->all);
    write_lat_line(f, "overlapping a snapshot", &s->during);
    write_lat_line(f, "outside snapshots", &s->outside);
}

static void write_details(FILE *f, const struct snap_run *sr)
{
    int p = max_disk_node(sr->peak, sr->nodes);
    fprintf(f, "\nLargest disk use seen (s%d): %s.\n", p + 1, sr->peak[p].detail);
    fprintf(f, "Each server, peak / after the load / at the end (MB):");
    for (int i = 0; i < sr->nodes; i++)
        fprintf(f, "%s s%d %.1f / %.1f / %.1f", i ? "," : "", i + 1,
                (double)sr->peak[i].bytes / MB, (double)sr->after_load[i].bytes / MB,
                (double)sr->at_end[i].bytes / MB);
    fprintf(f, " (allocated blocks at the end, largest: %.1f MB).\n",
            (double)sr->at_end[max_disk_node(sr->at_end, sr->nodes)].allocated / MB);
    fprintf(f, "Resident memory after the load (MB; a fork copies its page tables):");
    for (int i = 0; i < sr->nodes; i++)
        fprintf(f, "%s s%d %.0f", i ? "," : "", i + 1, sr->rss_mb[i]);
    fprintf(f, ".\n");
    write_phase(f, "The load (every key written once)", &sr->load, &sr->load_stall,
                sr->load_rc, sr->load_err);
    write_phase(f, "The overwrites (target 4)", &sr->steady, &sr->steady_stall, sr->steady_rc,
                sr->steady_err);
}

static void write_definitions(FILE *f)
{
    fprintf(f, "\n*Definitions.* Disk use: the sum of the sizes of a server's files (NAME_log.txt, "
               "NAME_state, NAME_snapshot and their temporaries; not its stderr log), sampled "
               "every %d ms through the whole run; the target uses the largest server's peak. "
               "Serving: from the restart (fork/exec) until STATUS answers, its applied index "
               "reaches the leader's commit index at the kill, and a SET is answered (OK, or "
               "REDIRECT naming the leader). Caught up: from the restart of the wiped follower "
               "until its applied and commit indexes reach the leader's commit index (no writes "
               "meanwhile). A write overlaps a snapshot when it was in flight at any point "
               "between a server's \"snapshot ... started\" log line (minus the lock hold) and "
               "the later of its \"done\" and \"compacted the log file\" lines, on any server. "
               "Target 4 (the issue sets no number) counts as met when, during snapshots, no "
               "time without any acknowledgement lasted %.0f%% of the median snapshot or "
               "longer: writes were not held up for a snapshot's duration.\n",
            SAMPLE_MS, 100 * STALL_SHARE_TARGET);
}

static void write_section(FILE *f, const struct snap_run *sr)
{
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&sr->started));
    fprintf(f, "\n## Snapshot targets (issue 6)\n\n");
    fprintf(f, "Run %s by `%s` in %.0f s: %d servers on 127.0.0.1 with fsync on, default "
               "snapshot options unless listed: `%s`. %d closed-loop writer clients (no "
               "sessions). %ld CPUs; load average before %.2f %.2f %.2f, after %.2f %.2f "
               "%.2f.\n\n",
            when, sr->o->command, sr->seconds, sr->nodes, sr->o->server_args_text, sr->o->clients,
            sysconf(_SC_NPROCESSORS_ONLN), sr->load_before[0], sr->load_before[1],
            sr->load_before[2], sr->load_after[0], sr->load_after[1], sr->load_after[2]);
    fprintf(f, "| target | measured | met? |\n|---|---|---|\n");
    write_disk_row(f, sr);
    write_restart_rows(f, sr);
    write_stall_row(f, sr);
    write_details(f, sr);
    write_definitions(f);
}

#define SECTION_MARK "\n## Snapshot targets (issue 6)\n"

/* Replaces the section in path (or appends it): a rerun does not pile sections up. */
static int save_section(const char *path, const struct snap_run *sr)
{
    FILE *f = fopen(path, "r");
    char *old = NULL;
    size_t len = 0;
    if (f != NULL) {
        FILE *mem = open_memstream(&old, &len);
        char buf[8192];
        size_t n;
        while (mem != NULL && (n = fread(buf, 1, sizeof(buf), f)) > 0)
            fwrite(buf, 1, n, mem);
        if (mem != NULL)
            fclose(mem);
        fclose(f);
    }
    char *mark = old != NULL ? strstr(old, SECTION_MARK) : NULL;
    if (mark != NULL)
        *mark = '\0';
    f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "raft_bench: %s: %s\n", path, strerror(errno));
        free(old);
        return RK_ERR_IO;
    }
    if (old != NULL)
        fputs(old, f);
    write_section(f, sr);
    free(old);
    return fclose(f) == 0 ? RK_OK : RK_ERR_IO;
}

static int start_cluster(const struct bench_snapshot_opts *o, struct bench_cluster *c)
{
    char err[BENCH_ERR_LEN] = "";
    memcpy(c->server_args, o->server_args, sizeof(c->server_args));
    c->n_server_args = o->n_server_args;
    int rc = bench_cluster_create(c, o->nodes, o->server_bin, err, sizeof(err));
    if (rc == RK_OK)
        rc = bench_cluster_start_all(c);
    if (rc == RK_OK && bench_wait_leader(c, true, LEADER_WAIT_MS) < 0)
        rc = RK_ERR_TIMEOUT;
    if (rc != RK_OK) {
        fprintf(stderr, "raft_bench: cannot start the cluster: %s\n",
                err[0] ? err : rk_strerror(rc));
        bench_cluster_dump_logs(c, 20);
    }
    return rc;
}

int bench_snapshot_targets(const struct bench_snapshot_opts *o)
{
    struct snap_run *sr = calloc(1, sizeof(*sr));
    struct bench_cluster c = { 0 };
    if (sr == NULL)
        return RK_ERR_NOMEM;
    sr->o = o;
    sr->nodes = o->nodes;
    sr->started = time(NULL);
    char key[32];
    sr->live_bytes = 0;
    for (long long k = 0; k < o->keys; k++)
        sr->live_bytes += key_of(key, sizeof(key), k) + o->value_size;
    getloadavg(sr->load_before, 3);
    int64_t t0 = bench_now_ns();
    int rc = start_cluster(o, &c);
    if (rc == RK_OK)
        rc = run_all(&c, sr);
    if (sr->load_rc != RK_OK || sr->steady_rc != RK_OK)
        bench_cluster_dump_logs(&c, 20);
    bench_cluster_destroy(&c);
    sr->seconds = ms_since(t0) / 1e3;
    getloadavg(sr->load_after, 3);
    if (rc == RK_OK) {
        write_section(stdout, sr);
        if (strcmp(o->out_path, "-") != 0 && save_section(o->out_path, sr) == RK_OK)
            fprintf(stderr, "raft_bench: wrote the snapshot section of %s\n", o->out_path);
    }
    bool measured = rc == RK_OK && sr->load_rc == RK_OK && sr->steady_rc == RK_OK &&
                    sr->follower.ok && sr->leader.ok && sr->wiped.ok;
    free(sr->load.ops);
    free(sr->steady.ops);
    free(sr);
    return rc != RK_OK ? rc : measured ? RK_OK : RK_ERR_TIMEOUT;
}
