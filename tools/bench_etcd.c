/* tools/bench_etcd.c - etcd beside raft-kv (`make bench-etcd`): a local etcd cluster on
 * 127.0.0.1 in a temp dir (Debian's etcd-server, its default settings: fsync on every
 * commit, heartbeat 100 ms, election 1 s), the same closed-loop load through its JSON
 * gateway, the time from kill -9 of its leader to the first acknowledged put, and the
 * comparison that runs them back to back with raft-kv's rows and prints both side by side.
 * Also raft_bench --etcd URL, the load against an etcd someone else started. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "bench.h"

#define ETCD_MAX 5
#define ETCD_HEALTHY_MS 30000
#define ETCD_STOP_MS 5000
#define ETCD_IO_MS 2000
#define ETCD_PUT_PATH "/v3/kv/put"
#define ETCD_STATUS_PATH "/v3/maintenance/status"
#define ETCD_WARMUP_PUTS 50
#define ETCD_ACK_WAIT_MS 30000
#define QUIET_BUSY_PCT 15
#define INSTALL_HINT "apt-get install -y etcd-server"

/* ================= a local etcd cluster ================= */

struct etcd_member {
    char name[8];
    uint16_t client_port, peer_port;
    pid_t pid; /* 0 when not running */
};

struct etcd_cluster {
    char dir[CTL_DIR_MAX];
    struct ctl_janitor janitor;
    const char *bin;
    int n;
    struct etcd_member m[ETCD_MAX];
    pid_t pgid;
};

/* $RK_ETCD_BIN, or etcd if some directory of $PATH has it; NULL if neither. */
static const char *etcd_bin(void)
{
    const char *env = getenv("RK_ETCD_BIN");
    if (env != NULL && env[0] != '\0')
        return access(env, X_OK) == 0 ? env : NULL;
    static char path[4096];
    const char *p = getenv("PATH");
    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ":");
        snprintf(path, sizeof(path), "%.*s/etcd", (int)len, p);
        if (len > 0 && access(path, X_OK) == 0)
            return "etcd";
        p += len + (p[len] == ':');
    }
    return NULL;
}

/* etcd reads ETCD_* variables as flags: none of the caller's may change our members. */
static void clear_etcd_env(void)
{
    extern char **environ;
    for (bool found = true; found;) {
        found = false;
        for (char **e = environ; *e != NULL && !found; e++) {
            if (strncmp(*e, "ETCD_", 5) != 0)
                continue;
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
            found = unsetenv(name) == 0;
        }
    }
}

/* "m1=http://127.0.0.1:P1,m2=..." */
static void initial_cluster(const struct etcd_cluster *e, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < e->n && used < len; i++) {
        int w = snprintf(out + used, len - used, "%s%s=http://127.0.0.1:%u", i ? "," : "",
                         e->m[i].name, (unsigned)e->m[i].peer_port);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* Member i's command line, its strings kept in buf. */
static void member_argv(const struct etcd_cluster *e, int i, char *argv[], char buf[][512])
{
    const struct etcd_member *m = &e->m[i];
    snprintf(buf[0], 512, "%s/%s.etcd", e->dir, m->name);
    snprintf(buf[1], 512, "http://127.0.0.1:%u", (unsigned)m->client_port);
    snprintf(buf[2], 512, "http://127.0.0.1:%u", (unsigned)m->peer_port);
    initial_cluster(e, buf[3], 512);
    char *args[] = { (char *)e->bin, "--name", (char *)m->name, "--data-dir", buf[0],
                     "--listen-client-urls", buf[1], "--advertise-client-urls", buf[1],
                     "--listen-peer-urls", buf[2], "--initial-advertise-peer-urls", buf[2],
                     "--initial-cluster", buf[3], "--initial-cluster-token", "rk-bench",
                     "--initial-cluster-state", "new", "--logger", "zap", "--log-outputs",
                     "stderr", NULL };
    memcpy(argv, args, sizeof(args));
}

static int start_member(struct etcd_cluster *e, int i)
{
    char buf[4][512], log[CTL_PATH_MAX], *argv[32];
    member_argv(e, i, argv, buf);
    snprintf(log, sizeof(log), "%s/%s.log", e->dir, e->m[i].name);
    struct ctl_spawn sp = CTL_SPAWN(argv);
    sp.pgid = e->pgid;
    sp.out_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    pid_t pid = sp.out_fd >= 0 ? ctl_spawn(&sp) : -1;
    if (sp.out_fd >= 0)
        close(sp.out_fd);
    if (pid < 0)
        return RK_ERR_IO;
    e->m[i].pid = pid;
    if (e->pgid == 0)
        e->pgid = pid;
    return RK_OK;
}

/* One POST of body to member i. RK_OK with the answer in *a (body in buf). */
static int member_post(const struct etcd_member *m, const char *path, const char *body,
                       uint8_t *buf, size_t cap, struct bench_http_answer *a)
{
    struct proto_buf req = { 0 };
    int rc = bench_http_encode_post(&req, path, body, strlen(body));
    if (rc == RK_OK)
        rc = bench_http_call("127.0.0.1", m->client_port, &req, ETCD_IO_MS, buf, cap, a);
    proto_buf_free(&req);
    return rc;
}

/* Member i's id and the leader it knows (0: none) from its status; false if it does not
 * answer. */
static bool member_status(const struct etcd_member *m, char *id, char *leader, size_t len)
{
    uint8_t buf[4096];
    struct bench_http_answer a;
    return member_post(m, ETCD_STATUS_PATH, "{}", buf, sizeof(buf), &a) == RK_OK &&
           a.status == 200 && bench_json_string(a.body, a.body_len, "member_id", id, len) &&
           bench_json_string(a.body, a.body_len, "leader", leader, len);
}

/* The index of the member every running member names as leader, or -1. */
static int etcd_leader(const struct etcd_cluster *e)
{
    char id[ETCD_MAX][32], leader[ETCD_MAX][32];
    int first = -1;
    for (int i = 0; i < e->n; i++) {
        if (e->m[i].pid <= 0)
            continue;
        if (!member_status(&e->m[i], id[i], leader[i], sizeof(id[i])) ||
            strcmp(leader[i], "0") == 0)
            return -1;
        if (first < 0)
            first = i;
        else if (strcmp(leader[i], leader[first]) != 0)
            return -1;
    }
    for (int i = 0; first >= 0 && i < e->n; i++)
        if (e->m[i].pid > 0 && strcmp(id[i], leader[first]) == 0)
            return i;
    return -1;
}

static void etcd_stop(struct etcd_cluster *e)
{
    if (e == NULL)
        return;
    for (int i = 0; i < e->n; i++)
        if (e->m[i].pid > 0)
            kill(e->m[i].pid, SIGTERM);
    for (int i = 0; i < e->n; i++) {
        int status;
        if (e->m[i].pid > 0 && !ctl_wait_exit(e->m[i].pid, ETCD_STOP_MS, &status))
            ctl_end(e->m[i].pid, SIGKILL);
        e->m[i].pid = 0;
    }
    ctl_remove_dir(e->dir);
    ctl_janitor_dismiss(&e->janitor);
    free(e);
}

/* Starts n members and waits until they agree on a leader. NULL with err on failure. */
static struct etcd_cluster *etcd_start(int n, char *err, size_t errlen)
{
    struct etcd_cluster *e = calloc(1, sizeof(*e));
    uint16_t ports[2 * ETCD_MAX];
    if (e == NULL || n < 1 || n > ETCD_MAX || (e->bin = etcd_bin()) == NULL) {
        snprintf(err, errlen, "no etcd (%s), or a bad size", INSTALL_HINT);
        free(e);
        return NULL;
    }
    e->n = n;
    e->janitor.fd = -1;
    clear_etcd_env();
    int rc = ctl_make_dir(e->dir, sizeof(e->dir), "etcd", err, errlen);
    if (rc == RK_OK) {
        ctl_janitor_start(&e->janitor, e->dir, NULL, NULL);
        rc = ctl_free_ports(ports, 2 * n, err, errlen);
    }
    for (int i = 0; rc == RK_OK && i < n; i++) {
        snprintf(e->m[i].name, sizeof(e->m[i].name), "m%d", i + 1);
        e->m[i].client_port = ports[2 * i];
        e->m[i].peer_port = ports[2 * i + 1];
    }
    for (int i = 0; rc == RK_OK && i < n; i++)
        rc = start_member(e, i);
    uint64_t deadline = rk_clock_ms() + ETCD_HEALTHY_MS;
    while (rc == RK_OK && etcd_leader(e) < 0 && rk_clock_ms() < deadline)
        rk_sleep_ms(100);
    if (rc == RK_OK && etcd_leader(e) < 0)
        rc = rk_fail(err, errlen, RK_ERR_TIMEOUT, "etcd: no leader within %d ms (logs in %s)",
                     ETCD_HEALTHY_MS, e->dir);
    if (rc != RK_OK) {
        etcd_stop(e);
        return NULL;
    }
    return e;
}

/* ================= load ================= */

/* The load of o (writes, on the event loop) against etcd's gateway at host:port. */
static int etcd_load(const struct bench_options *o, const char *host, uint16_t port,
                     const pid_t *pids, int n_pids, struct bench_result *r, char *err,
                     size_t errlen)
{
    struct bench_options eo = *o;
    eo.loop_threads = o->loop_threads > 0 ? o->loop_threads : 1;
    eo.read_ratio = 0;
    struct bench_load_opts lo = bench_load_opts_of(&eo, host, port);
    lo.etcd_path = ETCD_PUT_PATH;
    lo.sessions = false;
    return bench_measured_load(NULL, pids, n_pids, &lo, r, err, errlen);
}

/* HOST and PORT of http://HOST:PORT[/] (or HOST:PORT). */
static bool parse_url(const char *url, char *host, size_t hostlen, uint16_t *port)
{
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    const char *colon = strrchr(url, ':');
    if (colon == NULL || colon == url || (size_t)(colon - url) >= hostlen)
        return false;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || (*end != '\0' && *end != '/') || p < 1 || p > 65535)
        return false;
    snprintf(host, hostlen, "%.*s", (int)(colon - url), url);
    *port = (uint16_t)p;
    return true;
}

/* The pids in a file of one pid per line, for the CPU columns; returns how many. */
static int read_pids(const char *path, pid_t *pids, int max)
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    long pid;
    int n = 0;
    while (f != NULL && n < max && fscanf(f, "%ld", &pid) == 1)
        if (pid > 0)
            pids[n++] = (pid_t)pid;
    if (f != NULL)
        fclose(f);
    return n;
}

int bench_etcd_load(const struct bench_options *o)
{
    char err[BENCH_ERR_LEN] = "", host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
    if (!parse_url(o->etcd_url, host, sizeof(host), &port)) {
        fprintf(stderr, "raft_bench: --etcd %s: expected http://HOST:PORT\n", o->etcd_url);
        return 2;
    }
    pid_t pids[CTL_MAX_SERVERS];
    int n_pids = read_pids(o->pidfile, pids, CTL_MAX_SERVERS);
    printf("raft_bench: etcd at %s:%u, %d clients, %d-byte values, %d keys, %ld puts\n", host,
           (unsigned)port, o->clients, o->value_size, o->keys, o->ops);
    struct bench_result r;
    if (etcd_load(o, host, port, pids, n_pids, &r, err, sizeof(err)) != RK_OK) {
        fprintf(stderr, "raft_bench: etcd: %s\n", err);
        return 1;
    }
    bench_print_result(stdout, "etcd", &r);
    return 0;
}

/* ================= the comparison ================= */

#define SIZES 2 /* 3 and 5 members */

struct compare {
    const struct bench_options *o;
    struct bench_row etcd[SIZES][BENCH_MATRIX_CLIENTS], raft[SIZES][BENCH_MATRIX_CLIENTS];
    struct bench_failover_result etcd_fo, raft_fo;
    int etcd_fo_rc, raft_fo_rc;
    char etcd_fo_err[BENCH_ERR_LEN], raft_fo_err[BENCH_ERR_LEN];
    int noisy_phases; /* phases that started without a quiet machine */
    char version[64];
    struct bench_run_info info;
};

static int members_of(int size)
{
    return size == 0 ? 3 : 5;
}

/* Puts per run: about 4-6 s at etcd's rates here; a run also stops at max_seconds. */
static long etcd_ops(const struct bench_options *o, int clients)
{
    long ops = clients == 1 ? 2000 : clients <= 8 ? 6000 : clients <= 32 ? 10000 : 12000;
    return o->quick ? ops / 10 : ops;
}

static void quiet(struct compare *cmp)
{
    cmp->noisy_phases += !bench_wait_quiet(QUIET_BUSY_PCT, cmp->o->quick ? 10 : 120);
}

/* One row against etcd's leader (looked up again: it may have changed). */
static void etcd_row(struct compare *cmp, struct etcd_cluster *e, struct bench_row *row)
{
    char err[BENCH_ERR_LEN] = "no leader";
    struct bench_options o = *cmp->o;
    o.clients = row->clients;
    o.ops = etcd_ops(cmp->o, row->clients);
    o.max_seconds = o.quick ? 2 : 20;
    o.value_size = 100;
    o.keys = 1000;
    pid_t pids[ETCD_MAX];
    for (int i = 0; i < e->n; i++)
        pids[i] = e->m[i].pid;
    int leader = etcd_leader(e);
    row->rc = leader < 0 ? RK_ERR_TIMEOUT
                         : etcd_load(&o, "127.0.0.1", e->m[leader].client_port, pids, e->n,
                                     &row->r, err, sizeof(err));
    fprintf(stderr, "  etcd, %d members, %2d clients: ", e->n, row->clients);
    if (row->rc == RK_OK)
        bench_print_result(stderr, "", &row->r);
    else
        fprintf(stderr, "FAILED: %s\n", err);
}

static void etcd_rows(struct compare *cmp, int size)
{
    char err[BENCH_ERR_LEN] = "";
    fprintf(stderr, "raft_bench --compare-etcd: etcd, %d members\n", members_of(size));
    quiet(cmp);
    struct etcd_cluster *e = etcd_start(members_of(size), err, sizeof(err));
    if (e == NULL)
        fprintf(stderr, "raft_bench: %s\n", err);
    for (int ci = 0; ci < BENCH_MATRIX_CLIENTS; ci++) {
        struct bench_row *row = &cmp->etcd[size][ci];
        *row = (struct bench_row){ .nodes = members_of(size),
                                   .clients = bench_matrix_clients[ci], .rc = RK_ERR_IO };
        if (e != NULL)
            etcd_row(cmp, e, row);
    }
    etcd_stop(e);
}

static void raft_rows(struct compare *cmp, int size)
{
    struct bench_options o = *cmp->o;
    o.loop_threads = o.loop_threads > 0 ? o.loop_threads : 1; /* the generator etcd had */
    fprintf(stderr, "raft_bench --compare-etcd: raft-kv, %d nodes\n", members_of(size));
    quiet(cmp);
    bench_matrix_rows(&o, members_of(size), false, cmp->raft[size]);
}

/* 50 puts through the leader, so that the cluster has settled before the kill. */
static int warm_up(const struct etcd_member *leader)
{
    uint8_t buf[4096];
    struct bench_http_answer a;
    for (int k = 0; k < ETCD_WARMUP_PUTS; k++)
        if (member_post(leader, ETCD_PUT_PATH, "{\"key\":\"d2FybQ==\",\"value\":\"eA==\"}", buf,
                        sizeof(buf), &a) != RK_OK || !bench_http_put_ok(&a))
            return RK_ERR_IO;
    return RK_OK;
}

/* One kill of the leader of a fresh 5-member cluster: ms to the first acknowledged put,
 * -1 if none came; RK_OK unless the cluster could not be set up. */
static int etcd_failover_trial(unsigned *seed, double *ms, char *err, size_t errlen)
{
    struct etcd_cluster *e = etcd_start(ETCD_MAX, err, errlen);
    int leader = e != NULL ? etcd_leader(e) : -1;
    if (leader < 0 || warm_up(&e->m[leader]) != RK_OK) {
        if (e != NULL)
            snprintf(err, errlen, "etcd: no leader, or the warm-up puts failed");
        etcd_stop(e);
        return RK_ERR_IO;
    }
    struct bench_target t[ETCD_MAX];
    for (int i = 0; i < e->n; i++)
        t[i] = (struct bench_target){ .host = "127.0.0.1", .port = e->m[i].client_port,
                                      .etcd = true };
    struct bench_probers *p = bench_probers_start(t, e->n);
    rk_sleep_ms(200 + (int)(rand_r(seed) % 200)); /* random phase vs heartbeats */
    bench_probers_arm(p);
    ctl_end(e->m[leader].pid, SIGKILL);
    e->m[leader].pid = 0;
    *ms = bench_probers_wait(p, ETCD_ACK_WAIT_MS);
    bench_probers_stop(p);
    fprintf(stderr, "  etcd failover: killed %s: %.1f ms\n", e->m[leader].name, *ms);
    etcd_stop(e);
    return RK_OK;
}

static void etcd_failover(struct compare *cmp)
{
    struct bench_failover_result *r = &cmp->etcd_fo;
    int trials = cmp->o->etcd_trials > 0 ? cmp->o->etcd_trials : cmp->o->quick ? 2 : 5;
    unsigned seed = (unsigned)rk_clock_ns();
    fprintf(stderr, "raft_bench --compare-etcd: etcd failover, %d kills\n", trials);
    quiet(cmp);
    for (int t = 0; t < trials && cmp->etcd_fo_rc == RK_OK; t++) {
        cmp->etcd_fo_rc = etcd_failover_trial(&seed, &r->probe_ms[t], cmp->etcd_fo_err,
                                              sizeof(cmp->etcd_fo_err));
        r->trials += cmp->etcd_fo_rc == RK_OK;
        r->failed += cmp->etcd_fo_rc == RK_OK && r->probe_ms[t] < 0;
    }
    bench_failover_summary(r->probe_ms, r->trials, &r->probe_median_ms, &r->probe_max_ms);
}

/* "etcd 3.4.23", from the "etcd Version: 3.4.23" line of etcd --version. */
static void etcd_version(const char *bin, char *out, size_t len)
{
    char cmd[512], line[128] = "";
    snprintf(cmd, sizeof(cmd), "'%s' --version 2>/dev/null", bin);
    FILE *p = popen(cmd, "r");
    while (p != NULL && fgets(line, sizeof(line), p) != NULL &&
           strncmp(line, "etcd Version: ", 14) != 0) {
    }
    if (p != NULL)
        pclose(p);
    if (strncmp(line, "etcd Version: ", 14) == 0)
        snprintf(out, len, "etcd %.*s", (int)strcspn(line + 14, "\n"), line + 14);
    else
        snprintf(out, len, "etcd (version unknown)");
}

/* ---- the report ---- */

/* CPU of the servers per acknowledged write, in µs. */
static double cpu_us_per_op(const struct bench_result *r)
{
    return r->ops_per_s > 0 ? r->server_cpu_pct / 100 * 1e6 / r->ops_per_s : 0;
}

static void write_pair(FILE *f, const struct bench_row *e, const struct bench_row *k)
{
    fprintf(f, "| %d | %d | ", e->nodes, e->clients);
    if (e->rc == RK_OK)
        fprintf(f, "%.0f | %.2f | %.2f | ", e->r.ops_per_s, e->r.p50_ms, e->r.p99_ms);
    else
        fprintf(f, "failed: %s | | | ", rk_strerror(e->rc));
    if (k->rc == RK_OK)
        fprintf(f, "%.0f | %.3f | %.3f | ", k->r.ops_per_s, k->r.p50_ms, k->r.p99_ms);
    else
        fprintf(f, "failed: %s | | | ", rk_strerror(k->rc));
    bool both = e->rc == RK_OK && k->rc == RK_OK && e->r.ops_per_s > 0;
    if (both)
        fprintf(f, "%.1fx | %.0f / %.0f | %.0f%s / %.0f%s |\n", k->r.ops_per_s / e->r.ops_per_s,
                cpu_us_per_op(&e->r), cpu_us_per_op(&k->r), e->r.steal_cpu_pct,
                bench_disturbed(&e->r), k->r.steal_cpu_pct, bench_disturbed(&k->r));
    else
        fprintf(f, "- | | |\n");
}

static void write_fo_row(FILE *f, const char *what, int trials, int failed, double median,
                         double max, const double *ms)
{
    fprintf(f, "| %s | %d | %d | %.1f | %.1f | ", what, trials, failed, median, max);
    for (int t = 0; t < trials; t++)
        fprintf(f, "%s%.0f", t ? ", " : "", ms[t]);
    fprintf(f, " |\n");
}

static void write_compare_failover(FILE *f, const struct compare *cmp)
{
    const struct bench_failover_result *e = &cmp->etcd_fo, *k = &cmp->raft_fo;
    fprintf(f, "\n## Failover, 5 members: `kill -9` of the leader to the first acknowledged "
               "write\n\n");
    if (cmp->etcd_fo_rc != RK_OK)
        fprintf(f, "etcd: **failed**: %s.\n\n", cmp->etcd_fo_err);
    if (cmp->raft_fo_rc != RK_OK)
        fprintf(f, "raft-kv: **failed**: %s.\n\n", cmp->raft_fo_err);
    fprintf(f, "| store, measured by | kills | no ack | median ms | max ms | per kill, ms |\n"
               "|---|---|---|---|---|---|\n");
    write_fo_row(f, "etcd: a put to every member on a fresh connection every 10 ms (a fresh "
                    "cluster per kill)", e->trials, e->failed, e->probe_median_ms,
                 e->probe_max_ms, e->probe_ms);
    write_fo_row(f, "raft-kv: the same prober, a SET (the killed server restarted and caught "
                    "up between kills)", k->trials, k->failed, k->probe_median_ms,
                 k->probe_max_ms, k->probe_ms);
    write_fo_row(f, "raft-kv: a writer through `client/session.c`", k->trials, k->failed,
                 k->session_median_ms, k->session_max_ms, k->session_ms);
}

static void write_compare(FILE *f, void *arg)
{
    const struct compare *cmp = arg;
    fprintf(f, "# raft-kv beside etcd (`make bench-etcd`)\n\n");
    bench_write_run_line(f, &cmp->info, cmp->o->quick ? "--compare-etcd --quick"
                                                      : "--compare-etcd");
    fprintf(f, "%s, its default settings (fsync on every commit, heartbeat 100 ms, election "
               "1 s). For 3 and then 5 members: etcd's rows, then raft-kv's of the same size "
               "a minute later, each phase after `sync` and a wait for an idle machine (%d "
               "phase%s started without one). One generator for both: raft_bench's event "
               "loop (one epoll thread, one TCP connection per client to the leader), closed "
               "loop, writes of 100-byte values to 1000 keys: etcd's put through its JSON "
               "gateway (`%s`), raft-kv's SET in a client session. Everything on 127.0.0.1. "
               "*CPU*: the servers' CPU time per acknowledged write. *Steal*: %% of one core "
               "the hypervisor gave to other machines during the run; **disturbed** rows "
               "were paced by the host.\n\n", cmp->version, cmp->noisy_phases,
            cmp->noisy_phases == 1 ? "" : "s", ETCD_PUT_PATH);
    fprintf(f, "| members | clients | etcd puts/s | etcd p50 ms | etcd p99 ms | raft-kv "
               "writes/s | raft-kv p50 ms | raft-kv p99 ms | ratio | CPU µs/write, etcd / "
               "raft-kv | steal %%, etcd / raft-kv |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int size = 0; size < SIZES; size++)
        for (int ci = 0; ci < BENCH_MATRIX_CLIENTS; ci++)
            write_pair(f, &cmp->etcd[size][ci], &cmp->raft[size][ci]);
    write_compare_failover(f, cmp);
}

/* The exit status: 0 if every row and every kill was measured. */
static int compare_status(const struct compare *cmp)
{
    int rc = cmp->etcd_fo_rc != RK_OK || cmp->raft_fo_rc != RK_OK;
    for (int size = 0; size < SIZES; size++)
        for (int ci = 0; ci < BENCH_MATRIX_CLIENTS; ci++)
            rc |= cmp->etcd[size][ci].rc != RK_OK || cmp->raft[size][ci].rc != RK_OK;
    return rc;
}

int bench_compare_etcd(const struct bench_options *o)
{
    const char *bin = etcd_bin();
    if (bin == NULL) {
        fprintf(stderr, "raft_bench --compare-etcd needs etcd, from Debian's etcd-server:\n"
                        "    " INSTALL_HINT "\n(or set RK_ETCD_BIN to an etcd program)\n");
        return 1;
    }
    struct compare *cmp = calloc(1, sizeof(*cmp));
    if (cmp == NULL)
        return 1;
    cmp->o = o;
    etcd_version(bin, cmp->version, sizeof(cmp->version));
    bench_run_begin(&cmp->info);
    for (int size = 0; size < SIZES; size++) {
        etcd_rows(cmp, size);
        raft_rows(cmp, size);
    }
    etcd_failover(cmp);
    fprintf(stderr, "raft_bench --compare-etcd: raft-kv failover, 5 nodes\n");
    quiet(cmp);
    cmp->raft_fo_rc = bench_failover_run(o, &cmp->raft_fo, cmp->raft_fo_err,
                                         sizeof(cmp->raft_fo_err));
    bench_run_end(&cmp->info);
    const char *out = o->out_set ? o->out_path : "docs/benchmarks-etcd-latest.md";
    int rc = bench_write_report(out, write_compare, cmp) | compare_status(cmp);
    free(cmp);
    return rc;
}
