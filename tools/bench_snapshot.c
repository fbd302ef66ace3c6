/* tools/bench_snapshot.c - raft_bench --snapshot-targets: issue 6's four snapshot targets on a
 * cluster holding K keys (1,000,000 of 100 bytes by default): disk use against live data,
 * restart to serving, a wiped follower's catch-up, and write latency while snapshots run. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "bench.h"

#define SETTLE_MS 120000        /* for every server to apply what the leader committed */
#define RESTART_LIMIT_MS 30000
#define CATCHUP_LIMIT_MS 60000
#define POLL_MS 10
#define STATUS_TIMEOUT_MS 200
#define SAMPLE_MS 100           /* disk use is sampled this often */
#define KEY_PREFIX "k"          /* keys are "k%08llu": 9 bytes below 10^8 keys */
#define MAX_WINDOWS 8192
#define LOG_LINE_MAX 1024
#define MB (1024.0 * 1024.0)
#define SNAP_KEYS 1000000       /* the 1,000,000 keys */
#define SNAP_KEYS_QUICK 50000
#define SNAP_CLIENTS 64
#define SNAP_STEADY_S 20.0      /* the overwrite phase of target 4 */
#define SNAP_STEADY_S_QUICK 5.0

/* The targets. */
#define DISK_RATIO_TARGET 3.0
#define RESTART_TARGET_MS 2000.0
#define CATCHUP_TARGET_MS 10000.0
#define STALL_SHARE_TARGET 0.5  /* target 4: no ack-free gap over half a median snapshot */

static double ms_since(uint64_t t0)
{
    return (double)(rk_clock_ns() - t0) / 1e6;
}

static int key_of(char *out, size_t len, long long k)
{
    return snprintf(out, len, KEY_PREFIX "%08lld", k);
}

/* ================= a settled cluster ================= */

/* Waits for a leader and for every running server to apply all it committed. The leader's
 * index, or -1 on timeout; *commit gets its commit index. */
static int settle(struct ctl_cluster *c, int timeout_ms, long long *commit)
{
    uint64_t t0 = rk_clock_ns();
    while (ms_since(t0) < timeout_ms) {
        int left_ms = timeout_ms - (int)ms_since(t0);
        int leader = ctl_wait_agreement(c, left_ms > 0 ? left_ms : 1);
        struct ctl_status ls, s;
        if (leader < 0 || ctl_status_of(c, leader, &ls, STATUS_TIMEOUT_MS) != RK_OK)
            continue;
        bool all = ls.applied >= ls.commit;
        for (int i = 0; all && i < c->n; i++)
            all = c->servers[i].pid <= 0 ||
                  (ctl_status_of(c, i, &s, STATUS_TIMEOUT_MS) == RK_OK && s.applied >= ls.commit);
        if (all) {
            *commit = ls.commit;
            return leader;
        }
        rk_sleep_ms(50);
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
    const struct ctl_cluster *c;
    atomic_bool stop;
    pthread_t thread;
    struct disk_use peak[CTL_MAX_SERVERS];
    long samples;
};

static void *sampler_main(void *arg)
{
    struct sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        for (int i = 0; i < s->c->n; i++) {
            struct disk_use u;
            disk_use_of(s->c->dir, s->c->servers[i].name, &u);
            if (u.bytes > s->peak[i].bytes)
                s->peak[i] = u;
        }
        s->samples++;
        rk_sleep_ms(SAMPLE_MS);
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
static void read_windows(const struct ctl_cluster *c, struct windows *ws)
{
    ws->n = 0;
    for (int i = 0; i < c->n; i++) {
        char path[CTL_PATH_MAX], line[LOG_LINE_MAX];
        ctl_server_path(c, i, ".err", path, sizeof(path));
        FILE *f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
            parse_log_line(ws, i, line);
        if (f != NULL)
            fclose(f);
    }
    int64_t now = bench_real_ns();
    for (int k = 0; k < ws->n; k++)
        if (ws->w[k].end_ns == 0)
            ws->w[k].end_ns = now;
}

/* ================= latency during snapshots ================= */

struct stall_report {
    int snapshots;            /* windows (any server) overlapping the run */
    int leader_snapshots;     /* of them, the leader's */
    double snap_ms_median, snap_ms_max, lock_us_median, lock_us_max, compact_ms_max;
    double share_in_snapshot; /* of the run's time, inside some window */
    struct bench_result all, during, outside; /* writes: all, overlapping a snapshot, not */
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
static void gaps(const struct bench_result *tl, const struct span *s, int m, struct stall_report *r)
{
    size_t n = (size_t)tl->ops;
    int64_t *ends = malloc((n + 1) * sizeof(*ends));
    if (ends == NULL)
        return;
    for (size_t k = 0; k < n; k++)
        ends[k] = tl->timeline[k].start_ns + tl->timeline[k].lat_ns;
    qsort(ends, n, sizeof(*ends), cmp_i64);
    for (size_t k = 1; k < n; k++) {
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

static int stall_report_of(const struct bench_result *tl, const struct windows *ws, int leader,
                           struct stall_report *r)
{
    memset(r, 0, sizeof(*r));
    struct span *s = malloc(((size_t)ws->n + 1) * sizeof(*s));
    size_t n = (size_t)tl->ops;
    int64_t *all = malloc((n + 1) * sizeof(*all));
    int64_t *in = malloc((n + 1) * sizeof(*in));
    int64_t *out = malloc((n + 1) * sizeof(*out));
    if (s == NULL || all == NULL || in == NULL || out == NULL) {
        free(s);
        free(all);
        free(in);
        free(out);
        return RK_ERR_NOMEM;
    }
    int m = merge_windows(ws, tl->t0_ns, tl->t1_ns, s);
    size_t n_in = 0, n_out = 0;
    for (size_t k = 0; k < n; k++) {
        const struct bench_op *o = &tl->timeline[k];
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
    bench_latency_stats(all, n, &r->all);
    bench_latency_stats(in, n_in, &r->during);
    bench_latency_stats(out, n_out, &r->outside);
    window_summary(ws, tl->t0_ns, tl->t1_ns, leader, r);
    gap_cause(ws, r);
    r->ops_per_s = tl->seconds > 0 ? (double)n / tl->seconds : 0;
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
    double caught_up_ms; /* restart -> applied (and commit) >= target */
    double serving_ms;   /* restart -> caught up and a SET answered (OK, or REDIRECT naming
                            the leader); not measured for a wiped follower */
    long long snapshot;  /* its snapshot index when serving */
    bool via_snapshot;   /* a wiped follower: its log says it installed a snapshot */
    char note[160];
};

/* A SET of a key that already holds this value (live data unchanged): true if server i
 * answers OK, or REDIRECT naming a leader. */
static bool probe_serving(const struct ctl_cluster *c, int i, int value_size)
{
    char key[32], leader[REGISTRY_NAME_MAX + 1] = "";
    key_of(key, sizeof(key), 0);
    int st = bench_set_once(c->servers[i].host, c->servers[i].port, key, value_size,
                            STATUS_TIMEOUT_MS, leader, sizeof(leader));
    return st == PROTO_ST_OK || (st == PROTO_ST_REDIRECT && leader[0] != '\0');
}

/* One STATUS of the restarted server i, t0 being the restart: true once it is done. */
static bool restart_step(const struct ctl_cluster *c, int i, uint64_t t0, bool serve,
                         int value_size, struct restart_result *r)
{
    struct ctl_status st;
    if (ctl_status_of(c, i, &st, STATUS_TIMEOUT_MS) != RK_OK)
        return false;
    if (r->answer_ms < 0)
        r->answer_ms = ms_since(t0);
    if (r->caught_up_ms < 0 && st.applied >= r->target && st.commit >= r->target)
        r->caught_up_ms = ms_since(t0);
    if (r->caught_up_ms < 0 || (serve && !probe_serving(c, i, value_size)))
        return false;
    r->serving_ms = serve ? ms_since(t0) : -1;
    r->snapshot = st.snapshot;
    return true;
}

/* Starts server i (just killed, maybe wiped) and times it to caught up and, if serve, to
 * serving. */
static void time_restart(struct ctl_cluster *c, int i, bool serve, int limit_ms,
                         int value_size, struct restart_result *r)
{
    uint64_t t0 = rk_clock_ns();
    r->answer_ms = r->caught_up_ms = r->serving_ms = -1;
    if (ctl_start(c, i) != RK_OK) {
        snprintf(r->note, sizeof(r->note), "cannot start %s", c->servers[i].name);
        return;
    }
    while (ms_since(t0) < limit_ms && !r->ok) {
        r->ok = restart_step(c, i, t0, serve, value_size, r);
        if (!r->ok)
            rk_sleep_ms(POLL_MS);
    }
    if (!r->ok)
        snprintf(r->note, sizeof(r->note), "not %s within %d ms", serve ? "serving"
                 : "caught up", limit_ms);
}

static bool log_mentions(const struct ctl_cluster *c, int i, const char *what)
{
    char path[CTL_PATH_MAX], line[LOG_LINE_MAX];
    ctl_server_path(c, i, ".err", path, sizeof(path));
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, what) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

/* Once the cluster is settled: kill -9 of a follower (or the leader; or, wiped, another
 * follower) and its restart at once, timed. */
static void restart_node(struct ctl_cluster *c, bool leader_too, bool wipe, int value_size,
                         struct restart_result *r)
{
    long long commit = 0;
    int leader = settle(c, SETTLE_MS, &commit);
    *r = (struct restart_result){ .measured = true, .target = commit };
    if (leader < 0) {
        snprintf(r->note, sizeof(r->note), "the cluster did not settle");
        return;
    }
    int victim = leader_too ? leader : (leader + (wipe ? 2 : 1)) % c->n;
    fprintf(stderr, "  kill -9 %s (%s)%s, restart; leader commit %lld\n",
            c->servers[victim].name, leader_too ? "leader" : "follower",
            wipe ? ", wipe its files" : "", commit);
    ctl_kill(c, victim);
    if (wipe)
        ctl_wipe(c, victim);
    time_restart(c, victim, !wipe, wipe ? CATCHUP_LIMIT_MS : RESTART_LIMIT_MS, value_size, r);
    r->via_snapshot = wipe && log_mentions(c, victim, "installed snapshot");
}

/* ================= the run and its report ================= */

/* What the run does: the command line's options, or the targets' defaults. */
struct snap_opts {
    const struct bench_options *o;
    int nodes, clients, keys, value_size;
    double steady_seconds;        /* the overwrite phase of target 4 */
    const char *command;          /* the command line, for the report */
    char server_args[512];        /* the extra raft_server options, for the report */
};

struct snap_run {
    const struct snap_opts *o;
    long long live_bytes;
    struct bench_result load, steady;
    struct stall_report load_stall, steady_stall;
    int load_rc, steady_rc;
    char load_err[BENCH_ERR_LEN], steady_err[BENCH_ERR_LEN];
    struct disk_use after_load[CTL_MAX_SERVERS], at_end[CTL_MAX_SERVERS];
    struct disk_use peak[CTL_MAX_SERVERS];
    long disk_samples;
    double rss_mb[CTL_MAX_SERVERS]; /* each server's resident memory after the load */
    struct restart_result follower, leader;
    struct restart_result wiped;
    struct bench_run_info info;
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

static void disk_now(const struct ctl_cluster *c, struct disk_use *u)
{
    for (int i = 0; i < c->n; i++)
        disk_use_of(c->dir, c->servers[i].name, &u[i]);
}

/* Closed-loop writes to the leader as the phase asks: each op retried until
 * acknowledged, every ack's time kept for the stall analysis, a progress line now and
 * then. */
static int write_phase_run(struct ctl_cluster *c, const struct snap_opts *so, int leader,
                           struct bench_load_opts *lo, struct bench_result *r, char *err,
                           size_t errlen)
{
    lo->host = c->servers[leader >= 0 ? leader : 0].host; /* the writers follow redirects */
    lo->port = c->servers[leader >= 0 ? leader : 0].port;
    lo->clients = so->clients;
    lo->keys = so->keys;
    lo->value_size = so->value_size;
    lo->key_prefix = KEY_PREFIX;
    lo->seed = 1;
    lo->retry = lo->timeline = true;
    return bench_run_load(lo, r, err, errlen);
}

/* Phase 1: write every key once; phase 2: overwrite random keys for a while. */
static void write_phases(struct ctl_cluster *c, struct snap_run *sr, struct windows *ws)
{
    const struct snap_opts *so = sr->o;
    long long commit = 0;
    int leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL);
    struct bench_load_opts lo = { .ops = so->keys, .sequential_keys = true,
                                  .progress = "load" };
    fprintf(stderr, "raft_bench --snapshot-targets: writing %d keys with %d clients\n",
            so->keys, so->clients);
    sr->load_rc = write_phase_run(c, so, leader, &lo, &sr->load, sr->load_err,
                                  sizeof(sr->load_err));
    leader = settle(c, SETTLE_MS, &commit);
    disk_now(c, sr->after_load);
    for (int i = 0; i < c->n; i++)
        sr->rss_mb[i] = rss_mb_of(c->servers[i].pid);
    lo = (struct bench_load_opts){ .ops = 1L << 40, .max_seconds = so->steady_seconds,
                                   .progress = "overwrites" };
    fprintf(stderr, "raft_bench --snapshot-targets: %.0f s of random overwrites\n",
            so->steady_seconds);
    sr->steady_rc = write_phase_run(c, so, leader, &lo, &sr->steady, sr->steady_err,
                                    sizeof(sr->steady_err));
    settle(c, SETTLE_MS, &commit);
    read_windows(c, ws);
    stall_report_of(&sr->load, ws, leader, &sr->load_stall);
    stall_report_of(&sr->steady, ws, leader, &sr->steady_stall);
}

static int run_all(struct ctl_cluster *c, struct snap_run *sr)
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
    restart_node(c, false, false, sr->o->value_size, &sr->follower);
    restart_node(c, true, false, sr->o->value_size, &sr->leader);
    fprintf(stderr, "raft_bench --snapshot-targets: a wiped follower\n");
    restart_node(c, false, true, sr->o->value_size, &sr->wiped);
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
    const struct restart_result *w = &sr->wiped;
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
    return s->snapshots > 0 && s->during.ops > 0 &&
           s->longest_gap_during_ms < STALL_SHARE_TARGET * s->snap_ms_median;
}

#define MIN_BASELINE_WRITES 1000

/* The p99.9 of writes outside every snapshot: from the overwrites, or, when snapshots
 * covered (nearly) all of that phase, from the load. */
static void baseline(const struct snap_run *sr, char *out, size_t len)
{
    const struct stall_report *s = &sr->steady_stall, *l = &sr->load_stall;
    if (s->outside.ops >= MIN_BASELINE_WRITES)
        snprintf(out, len, "%.1f ms outside them (%ld writes)", s->outside.p999_ms,
                 s->outside.ops);
    else if (l->outside.ops >= MIN_BASELINE_WRITES)
        snprintf(out, len, "%.1f ms for the load's writes outside them (%ld writes; the "
                 "overwrites had only %ld)", l->outside.p999_ms, l->outside.ops, s->outside.ops);
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
            s->snap_ms_median, s->snap_ms_max, 100 * s->share_in_snapshot, s->during.p999_ms,
            s->during.ops, base, s->all.p99_ms, s->all.max_ms, s->longest_gap_during_ms,
            s->lock_us_max / 1e3, s->lock_us_median / 1e3,
            yes_no(sr->steady_rc == RK_OK, stall_met(s)));
}

static void write_lat_line(FILE *f, const char *what, const struct bench_result *l)
{
    fprintf(f, "| %s | %ld | %.2f | %.2f | %.2f | %.2f |\n", what, l->ops, l->p50_ms, l->p99_ms,
            l->p999_ms, l->max_ms);
}

static void write_phase(FILE *f, const char *what, const struct bench_result *tl,
                        const struct stall_report *s, int rc, const char *err)
{
    fprintf(f, "\n%s: %ld writes in %.1f s (%.0f/s), %ld failed attempts (redirects, "
               "reconnects)%s%s; %d snapshots overlapped it (%d on the leader; median %.0f ms, "
               "max %.0f ms; %.0f%% of the time inside one); the lock was held a median %.1f "
               "ms, at most %.1f ms, to start one; the log file rewrite after one took at most "
               "%.0f ms; longest time without any ack %.1f ms (%.1f ms during a snapshot; "
               "forks or log rewrites inside that one: %s).\n\n",
            what, tl->ops, tl->seconds, s->ops_per_s, s->errors, rc == RK_OK ? "" : "; FAILED: ",
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
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&sr->info.started));
    fprintf(f, "\n## Snapshot targets (issue 6)\n\n");
    fprintf(f, "Run %s by `%s` in %.0f s: %d servers on 127.0.0.1 with fsync on, default "
               "snapshot options unless listed: `%s`. %d closed-loop writer clients (no "
               "sessions). %ld CPUs; load average before %.2f %.2f %.2f, after %.2f %.2f "
               "%.2f.\n\n",
            when, sr->o->command, sr->info.seconds, sr->nodes, sr->o->server_args,
            sr->o->clients, sysconf(_SC_NPROCESSORS_ONLN), sr->info.load_before[0],
            sr->info.load_before[1], sr->info.load_before[2], sr->info.load_after[0],
            sr->info.load_after[1], sr->info.load_after[2]);
    fprintf(f, "| target | measured | met? |\n|---|---|---|\n");
    write_disk_row(f, sr);
    write_restart_rows(f, sr);
    write_stall_row(f, sr);
    write_details(f, sr);
    write_definitions(f);
}

#define SECTION_MARK "\n## Snapshot targets (issue 6)\n"

/* The snapshot targets' own defaults where the command line gave none; false (with a
 * message) if they cannot run as asked. */
static bool snap_opts_of(const struct bench_options *o, const char *command,
                         struct snap_opts *so)
{
    if (o->registry != NULL || o->nodes < 3) {
        fprintf(stderr, "raft_bench: --snapshot-targets kills and wipes servers while a "
                        "majority serves: it needs its own cluster of --nodes 3 or more\n");
        return false;
    }
    *so = (struct snap_opts){
        .o = o, .nodes = o->nodes, .value_size = o->value_size, .command = command,
        .clients = o->clients_set ? o->clients : SNAP_CLIENTS,
        .keys = o->keys_set ? o->keys : o->quick ? SNAP_KEYS_QUICK : SNAP_KEYS,
        .steady_seconds = o->max_seconds_set ? o->max_seconds
                                             : o->quick ? SNAP_STEADY_S_QUICK : SNAP_STEADY_S,
    };
    size_t used = 0;
    for (int k = 0; k < o->n_server_args && used < sizeof(so->server_args); k++) {
        int w = snprintf(so->server_args + used, sizeof(so->server_args) - used, "%s%s",
                         k ? " " : "", o->server_args[k]);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used == 0)
        snprintf(so->server_args, sizeof(so->server_args), "none");
    return true;
}

/* The live data: the bytes of every key and its value. */
static long long live_bytes(const struct snap_opts *so)
{
    char key[32];
    long long bytes = 0;
    for (long long k = 0; k < so->keys; k++)
        bytes += key_of(key, sizeof(key), k) + so->value_size;
    return bytes;
}

static void write_section_cb(FILE *f, void *arg)
{
    write_section(f, arg);
}

/* Writes the section to stdout and into o->out_path (replacing an earlier one). */
static void report(struct snap_run *sr)
{
    bench_save_section(sr->o->o->out_path, SECTION_MARK, write_section_cb, sr);
}

int bench_snapshot_targets(const struct bench_options *o, const char *command)
{
    struct snap_opts so;
    if (!snap_opts_of(o, command, &so))
        return 2;
    struct snap_run *sr = calloc(1, sizeof(*sr));
    struct ctl_cluster *c = NULL;
    char err[BENCH_ERR_LEN] = "";
    if (sr == NULL)
        return 1;
    sr->o = &so;
    sr->nodes = so.nodes;
    sr->live_bytes = live_bytes(&so);
    bench_run_begin(&sr->info);
    int rc = bench_open_cluster(o, so.nodes, &c, err, sizeof(err)) < 0 ||
             ctl_wait_agreement(c, BENCH_LEADER_WAIT_MS) < 0 ? RK_ERR_TIMEOUT : RK_OK;
    if (rc != RK_OK)
        fprintf(stderr, "raft_bench: cannot start the cluster: %s\n", err[0] ? err : "no leader");
    if (rc == RK_OK)
        rc = run_all(c, sr);
    if (rc != RK_OK || sr->load_rc != RK_OK || sr->steady_rc != RK_OK)
        ctl_dump_logs(c, 20);
    ctl_cluster_destroy(c);
    bench_run_end(&sr->info);
    if (rc == RK_OK)
        report(sr);
    bool measured = rc == RK_OK && sr->load_rc == RK_OK && sr->steady_rc == RK_OK &&
                    sr->follower.ok && sr->leader.ok && sr->wiped.ok;
    if (!measured)
        fprintf(stderr, "raft_bench: --snapshot-targets: not every measurement was made\n");
    free(sr->load.timeline);
    free(sr->steady.timeline);
    free(sr);
    return measured ? 0 : 1;
}
