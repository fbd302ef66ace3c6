/* tools/raft_bench.c - the raft-kv load generator behind `make bench`: options, one load run
 * (against a cluster it starts, or one from --registry) beside the generator's ceiling, the
 * leader-failover measurement, the standard matrix written as a Markdown table, and the
 * snapshot targets (bench_snapshot.c). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../common/errors.h"
#include "bench.h"

#define LEADER_WAIT_MS 20000
#define PREFILL_CLIENTS 32
#define SNAP_KEYS 1000000       /* --snapshot-targets: the 1,000,000 keys */
#define SNAP_KEYS_QUICK 50000
#define SNAP_CLIENTS 64
#define SNAP_STEADY_S 20.0      /* the overwrite phase of target 4 */
#define SNAP_STEADY_S_QUICK 5.0

struct options {
    int nodes, clients, value_size, keys, failover;
    int matrix_writes;   /* --matrix-writes N: only the write rows of N nodes */
    int loop_threads;    /* 0: a thread per client; N: --engine loop with N loops */
    const char *etcd_url, *pidfile; /* --etcd: drive etcd's gateway there */
    long ops;
    double read_ratio, max_seconds;
    const char *registry, *server_bin, *out_path, *perf_path;
    bool ceiling_only, no_ceiling, matrix, quick, no_sessions, snapshot_targets;
    bool clients_set, keys_set, max_seconds_set; /* given on the command line */
    unsigned seed;
    const char *server_args[BENCH_MAX_SERVER_ARGS];
    int n_server_args;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: raft_bench [options]           one closed-loop run, then the ceiling run\n"
            "       raft_bench --failover K [...]  kill -9 the leader K times, time to first ack\n"
            "       raft_bench --matrix [--out F]  the standard matrix of `make bench` (Markdown)\n"
            "       raft_bench --matrix-writes N [--out F]\n"
            "                     only the matrix's write rows on N nodes (no ceiling, no reads,\n"
            "                     no failover): what tools/compare_etcd.sh runs right after\n"
            "                     etcd's rows of the same size\n"
            "       raft_bench --snapshot-targets [--keys K] [--quick] [--out F]\n"
            "                     issue 6's snapshot targets: disk use, restart to serving, a\n"
            "                     wiped follower's catch-up, writes during snapshots (K keys,\n"
            "                     default 1000000; 64 clients; 20 s of overwrites, or\n"
            "                     --max-seconds; the section also replaces the one in --out)\n"
            "  --nodes N          cluster size to start (default 3)\n"
            "  --clients N        concurrent clients, one connection each (1)\n"
            "  --engine E         threads: a thread per client, blocking (the default, like\n"
            "                     kvload.py); loop: every client on one epoll thread (less\n"
            "                     generator CPU on cores shared with the servers)\n"
            "  --loop-threads N   --engine loop with N epoll threads (1)\n"
            "  --etcd URL         drive etcd's JSON gateway at URL (http://HOST:PORT) instead:\n"
            "                     puts only, --engine loop; the same load and statistics\n"
            "  --server-pidfile F with --etcd: the servers' pids (one per line), for CPU use\n"
            "  --ops N            total measured operations (10000)\n"
            "  --max-seconds S    stop a run after S seconds even if --ops is not reached (60)\n"
            "  --value-size B     bytes per value (100)\n"
            "  --keys K           key space (1000)\n"
            "  --read-ratio R     share of GETs, 0..1 (0); keys are written once first\n"
            "  --registry FILE    drive a running cluster instead of starting one\n"
            "  --ceiling          only the ceiling: the same load on a server without Raft\n"
            "  --no-ceiling       skip the ceiling run\n"
            "  --no-sessions      writes without a client session (no REGISTER, client id 0)\n"
            "  --server-bin PATH  raft_server to start ($RK_SERVER_BIN, ./server/raft_server)\n"
            "  --server-arg ARG   pass ARG to every raft_server (repeatable)\n"
            "  --perf FILE        perf record -g the leader during the run into FILE\n"
            "  --out FILE         --matrix: also write the Markdown there\n"
            "                     (default docs/benchmarks-latest.md; - for stdout only)\n"
            "  --quick            --matrix: a short smoke run (few ops, 3 kills);\n"
            "                     --snapshot-targets: 50000 keys, 5 s of overwrites\n"
            "  --seed N           random seed (1)\n"
            "Servers run in a temp dir on free 127.0.0.1 ports and are killed on exit or ^C\n"
            "(RK_KEEP_DIR=1 keeps the dir).\n");
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

enum { OPT_NODES = 256, OPT_CLIENTS, OPT_OPS, OPT_MAXSEC, OPT_VSIZE, OPT_KEYS, OPT_READS,
       OPT_REGISTRY, OPT_CEILING, OPT_NOCEIL, OPT_FAILOVER, OPT_MATRIX, OPT_OUT, OPT_SBIN,
       OPT_SARG, OPT_PERF, OPT_QUICK, OPT_SEED, OPT_NOSESS, OPT_SNAP, OPT_MWRITES, OPT_ENGINE,
       OPT_LOOPS, OPT_ETCD, OPT_PIDFILE, OPT_HELP };

static const struct option long_opts[] = {
    { "nodes", 1, NULL, OPT_NODES },        { "clients", 1, NULL, OPT_CLIENTS },
    { "ops", 1, NULL, OPT_OPS },            { "max-seconds", 1, NULL, OPT_MAXSEC },
    { "value-size", 1, NULL, OPT_VSIZE },   { "keys", 1, NULL, OPT_KEYS },
    { "read-ratio", 1, NULL, OPT_READS },   { "registry", 1, NULL, OPT_REGISTRY },
    { "ceiling", 0, NULL, OPT_CEILING },    { "no-ceiling", 0, NULL, OPT_NOCEIL },
    { "failover", 1, NULL, OPT_FAILOVER },  { "matrix", 0, NULL, OPT_MATRIX },
    { "out", 1, NULL, OPT_OUT },            { "server-bin", 1, NULL, OPT_SBIN },
    { "server-arg", 1, NULL, OPT_SARG },    { "perf", 1, NULL, OPT_PERF },
    { "quick", 0, NULL, OPT_QUICK },        { "seed", 1, NULL, OPT_SEED },
    { "no-sessions", 0, NULL, OPT_NOSESS }, { "snapshot-targets", 0, NULL, OPT_SNAP },
    { "matrix-writes", 1, NULL, OPT_MWRITES }, { "engine", 1, NULL, OPT_ENGINE },
    { "loop-threads", 1, NULL, OPT_LOOPS },    { "etcd", 1, NULL, OPT_ETCD },
    { "server-pidfile", 1, NULL, OPT_PIDFILE },
    { "help", 0, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

/* One option; false if its value is bad. */
static bool apply_option(struct options *o, int opt, const char *arg)
{
    long v = 0;
    switch (opt) {
    case OPT_NODES: return parse_long(arg, 1, BENCH_MAX_NODES, &v) && ((o->nodes = (int)v), true);
    case OPT_CLIENTS: return parse_long(arg, 1, 4096, &v) && ((o->clients = (int)v), true);
    case OPT_OPS: return parse_long(arg, 1, 100000000, &o->ops);
    case OPT_MAXSEC: return parse_double(arg, 0, 86400, &o->max_seconds);
    case OPT_VSIZE: return parse_long(arg, 0, 4 << 20, &v) && ((o->value_size = (int)v), true);
    case OPT_KEYS: return parse_long(arg, 1, 100000000, &v) && ((o->keys = (int)v), true);
    case OPT_READS: return parse_double(arg, 0, 1, &o->read_ratio);
    case OPT_REGISTRY: o->registry = arg; return true;
    case OPT_CEILING: o->ceiling_only = true; return true;
    case OPT_NOCEIL: o->no_ceiling = true; return true;
    case OPT_FAILOVER: return parse_long(arg, 1, 64, &v) && ((o->failover = (int)v), true);
    case OPT_MATRIX: o->matrix = true; return true;
    case OPT_OUT: o->out_path = arg; return true;
    case OPT_SBIN: o->server_bin = arg; return true;
    case OPT_SARG:
        if (o->n_server_args >= BENCH_MAX_SERVER_ARGS)
            return false;
        o->server_args[o->n_server_args++] = arg;
        return true;
    case OPT_PERF: o->perf_path = arg; return true;
    case OPT_QUICK: o->quick = true; return true;
    case OPT_NOSESS: o->no_sessions = true; return true;
    case OPT_SNAP: o->snapshot_targets = true; return true;
    case OPT_ENGINE:
        if (strcmp(arg, "threads") == 0)
            o->loop_threads = 0;
        else if (strcmp(arg, "loop") == 0)
            o->loop_threads = o->loop_threads > 0 ? o->loop_threads : 1;
        else
            return false;
        return true;
    case OPT_LOOPS: return parse_long(arg, 1, 64, &v) && ((o->loop_threads = (int)v), true);
    case OPT_ETCD: o->etcd_url = arg; return true;
    case OPT_PIDFILE: o->pidfile = arg; return true;
    case OPT_MWRITES:
        o->matrix = true;
        return parse_long(arg, 1, BENCH_MAX_NODES, &v) && ((o->matrix_writes = (int)v), true);
    case OPT_SEED: return parse_long(arg, 0, 1L << 30, &v) && ((o->seed = (unsigned)v), true);
    }
    return false;
}

static void parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){ .nodes = 3, .clients = 1, .value_size = 100, .keys = 1000,
                           .ops = 10000, .max_seconds = 60, .seed = 1 };
    const char *env_bin = getenv("RK_SERVER_BIN");
    o->server_bin = env_bin != NULL && env_bin[0] != '\0' ? env_bin : "./server/raft_server";
    o->out_path = "docs/benchmarks-latest.md";
    int opt;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (opt == OPT_HELP || opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (opt == '?' || !apply_option(o, opt, optarg)) {
            if (opt != '?')
                fprintf(stderr, "raft_bench: bad value '%s' for --%s\n", optarg,
                        long_opts[opt - OPT_NODES].name);
            usage(stderr);
            exit(2);
        }
        o->clients_set |= opt == OPT_CLIENTS;
        o->keys_set |= opt == OPT_KEYS;
        o->max_seconds_set |= opt == OPT_MAXSEC;
    }
    if (optind < argc) {
        fprintf(stderr, "raft_bench: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
}

/* ---- printing ---- */

static void print_result(FILE *f, const char *what, const struct bench_result *r)
{
    fprintf(f,
            "%-8s %9.0f ops/s   p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms   "
            "(%ld ops in %.2f s, %ld errors; CPU %% of a core: generator %.0f, servers %.0f, "
            "other %.0f, of it steal %.0f)\n",
            what, r->ops_per_s, r->p50_ms, r->p90_ms, r->p99_ms, r->p999_ms, r->max_ms, r->ops,
            r->seconds, r->errors, r->gen_cpu_pct, r->server_cpu_pct, r->other_cpu_pct,
            r->steal_cpu_pct);
    if (r->errors > 0)
        fprintf(f, "         first error: %s\n", r->first_failure);
    if (r->new_terms > 0)
        fprintf(f, "         %lld new term(s) during the run: an election\n", r->new_terms);
}

/* The highest term any server reports (0 if none answers, or for no cluster). */
static long long highest_term(const struct bench_cluster *c)
{
    long long term = 0;
    for (int i = 0; c != NULL && c->dir[0] != '\0' && i < c->n; i++) {
        struct bench_status st;
        if ((!c->owned || c->nodes[i].pid > 0) && bench_status(c, i, &st, 300) == RK_OK &&
            st.term > term)
            term = st.term;
    }
    return term;
}

/* bench_run_load, with the CPU use of the generator, c's servers and the rest of the
 * machine during the run (c: NULL when the servers are not ours). */
static int measured_load(const struct bench_cluster *c, const struct bench_load_opts *lo,
                         struct bench_result *r, char *err, size_t errlen)
{
    struct bench_cpu a, b;
    long long term_before = highest_term(c);
    bench_cpu_sample(c, &a);
    int rc = bench_run_load(lo, r, err, errlen);
    bench_cpu_sample(c, &b);
    r->new_terms = highest_term(c) - term_before;
    bench_cpu_usage(&a, &b, &r->gen_cpu_pct, &r->server_cpu_pct, &r->other_cpu_pct,
                    &r->steal_cpu_pct);
    return rc;
}

static void print_failover(FILE *f, const struct bench_failover_result *r)
{
    fprintf(f, "failover: %d kills of the leader, %d without an ack\n", r->trials, r->failed);
    fprintf(f, "  prober (a fresh connection to every server every 10 ms): "
               "median %.1f, max %.1f ms\n", r->probe_median_ms, r->probe_max_ms);
    fprintf(f, "  session (client/session.c, a kept-open connection):     "
               "median %.1f, max %.1f ms\n", r->session_median_ms, r->session_max_ms);
}

/* ---- runs ---- */

static struct bench_load_opts load_opts(const struct options *o, const char *host,
                                        uint16_t port)
{
    return (struct bench_load_opts){
        .host = host, .port = port, .clients = o->clients, .ops = o->ops,
        .max_seconds = o->max_seconds, .value_size = o->value_size, .keys = o->keys,
        .read_ratio = o->read_ratio, .warmup = 5, .seed = o->seed, .key_prefix = "k",
        .sessions = !o->no_sessions, .loop_threads = o->loop_threads,
    };
}

/* Writes every key once, so that reads find values. */
static int prefill(const struct options *o, const char *host, uint16_t port, char *err,
                   size_t errlen)
{
    struct bench_load_opts lo = load_opts(o, host, port);
    lo.clients = o->keys < PREFILL_CLIENTS ? o->keys : PREFILL_CLIENTS;
    lo.ops = o->keys;
    lo.read_ratio = 0;
    lo.sequential_keys = true;
    lo.warmup = 0;
    struct bench_result r;
    return bench_run_load(&lo, &r, err, errlen);
}

/* The same load against the no-Raft server. */
static int run_ceiling(const struct options *o, struct bench_result *r, char *err,
                       size_t errlen)
{
    uint16_t port = 0;
    pid_t pid = bench_ceiling_start(o->value_size, &port, err, errlen);
    if (pid < 0)
        return RK_ERR_IO;
    struct bench_load_opts lo = load_opts(o, "127.0.0.1", port);
    struct bench_cluster srv = { .n = 1, .nodes[0] = { .pid = pid } };
    int rc = measured_load(&srv, &lo, r, err, errlen);
    bench_end_child(pid, SIGKILL);
    return rc;
}

static int exec_perf(void *arg)
{
    char **argv = arg;
    execvp(argv[0], argv);
    fprintf(stderr, "raft_bench: cannot run perf: %s\n", strerror(errno));
    return 127;
}

/* perf record of pid into path: the software clock works without hardware counters (as
 * in a VM), and DWARF unwinding finds callers through libc, which has no frame pointers. */
static pid_t start_perf(const char *path, pid_t pid)
{
    char pid_s[16];
    snprintf(pid_s, sizeof(pid_s), "%d", (int)pid);
    char *argv[] = { "perf", "record", "-q", "-e", "cpu-clock", "-F", "499",
                     "--call-graph", "dwarf,16384", "-p", pid_s, "-o", (char *)path, NULL };
    pid_t p = bench_fork(exec_perf, argv);
    bench_sleep_ms(300); /* let it attach */
    return p;
}

/* Starts (or attaches to) the cluster and returns the leader's index. */
static int open_cluster(const struct options *o, int nodes, struct bench_cluster *c,
                        char *err, size_t errlen)
{
    int rc;
    memcpy(c->server_args, o->server_args, sizeof(c->server_args));
    c->n_server_args = o->n_server_args;
    if (o->registry != NULL) {
        rc = bench_cluster_attach(c, o->registry, err, errlen);
    } else {
        if (access(o->server_bin, X_OK) != 0) {
            snprintf(err, errlen, "%s: %s (build it with make, or set RK_SERVER_BIN)",
                     o->server_bin, strerror(errno));
            return -1;
        }
        rc = bench_cluster_create(c, nodes, o->server_bin, err, errlen);
        if (rc == RK_OK)
            rc = bench_cluster_start_all(c);
    }
    if (rc != RK_OK) {
        if (err[0] == '\0')
            snprintf(err, errlen, "cannot start the cluster: %s", rk_strerror(rc));
        return -1;
    }
    int leader = bench_wait_leader(c, false, LEADER_WAIT_MS);
    if (leader < 0) {
        snprintf(err, errlen, "no leader within %d ms", LEADER_WAIT_MS);
        bench_cluster_dump_logs(c, 20);
    }
    return leader;
}

static int run_single(const struct options *o)
{
    char err[BENCH_ERR_LEN] = "";
    struct bench_result r;
    printf("raft_bench: %d clients, %d-byte values, %d keys, %.0f%% reads, %ld ops\n",
           o->clients, o->value_size, o->keys, o->read_ratio * 100, o->ops);
    if (!o->ceiling_only) {
        struct bench_cluster c = { 0 };
        int leader = open_cluster(o, o->nodes, &c, err, sizeof(err));
        int rc = leader < 0 ? RK_ERR_TIMEOUT : RK_OK;
        const struct bench_node *ln = leader >= 0 ? &c.nodes[leader] : NULL;
        if (rc == RK_OK && o->read_ratio > 0)
            rc = prefill(o, ln->host, ln->port, err, sizeof(err));
        if (rc == RK_OK) { /* the leader may have changed meanwhile (a busy machine) */
            leader = bench_wait_leader(&c, false, LEADER_WAIT_MS);
            ln = &c.nodes[leader >= 0 ? leader : 0];
        }
        pid_t perf = rc == RK_OK && o->perf_path && ln->pid > 0 ? start_perf(o->perf_path, ln->pid)
                                                                : 0;
        if (rc == RK_OK) {
            struct bench_load_opts lo = load_opts(o, ln->host, ln->port);
            rc = measured_load(&c, &lo, &r, err, sizeof(err));
        }
        bench_end_child(perf, SIGINT);
        if (rc == RK_OK) {
            char what[32];
            snprintf(what, sizeof(what), "%d nodes", c.n);
            print_result(stdout, what, &r);
        } else {
            fprintf(stderr, "raft_bench: %s\n", err);
            bench_cluster_dump_logs(&c, 20);
        }
        bench_cluster_destroy(&c);
        if (rc != RK_OK)
            return 1;
    }
    if (o->no_ceiling)
        return 0;
    struct bench_result cr;
    if (run_ceiling(o, &cr, err, sizeof(err)) != RK_OK) {
        fprintf(stderr, "raft_bench: ceiling: %s\n", err);
        return 1;
    }
    print_result(stdout, "ceiling", &cr);
    if (!o->ceiling_only && cr.ops_per_s > 0)
        printf("the cluster ran at %.0f%% of the generator's ceiling\n",
               100 * r.ops_per_s / cr.ops_per_s);
    return 0;
}

/* HOST and PORT of http://HOST:PORT[/] (or HOST:PORT). */
static bool parse_url(const char *url, char *host, size_t hostlen, uint16_t *port)
{
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    const char *colon = strrchr(url, ':');
    long p = 0;
    char digits[8];
    if (colon == NULL || colon == url || (size_t)(colon - url) >= hostlen)
        return false;
    snprintf(digits, sizeof(digits), "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
    if (!parse_long(digits, 1, 65535, &p))
        return false;
    snprintf(host, hostlen, "%.*s", (int)(colon - url), url);
    *port = (uint16_t)p;
    return true;
}

/* The pids in a file of one pid per line (etcd_cluster.sh's), for the CPU columns. */
static void read_pids(const char *path, struct bench_cluster *c)
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    long pid;
    while (f != NULL && c->n < BENCH_MAX_NODES && fscanf(f, "%ld", &pid) == 1)
        if (pid > 0)
            c->nodes[c->n++].pid = (pid_t)pid;
    if (f != NULL)
        fclose(f);
}

/* The same closed loop against etcd's gateway: puts, on the event loop. */
static int run_etcd(const struct options *o)
{
    char err[BENCH_ERR_LEN] = "", host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
    if (!parse_url(o->etcd_url, host, sizeof(host), &port)) {
        fprintf(stderr, "raft_bench: --etcd %s: expected http://HOST:PORT\n", o->etcd_url);
        return 2;
    }
    struct options eo = *o;
    eo.loop_threads = o->loop_threads > 0 ? o->loop_threads : 1;
    struct bench_load_opts lo = load_opts(&eo, host, port);
    lo.etcd_path = "/v3/kv/put";
    lo.sessions = false;
    struct bench_cluster c = { 0 }; /* no dir: nothing of ours to query or clean */
    read_pids(o->pidfile, &c);
    printf("raft_bench: etcd at %s:%u, %d clients, %d-byte values, %d keys, %ld puts\n",
           host, (unsigned)port, o->clients, o->value_size, o->keys, o->ops);
    struct bench_result r;
    int rc = measured_load(&c, &lo, &r, err, sizeof(err));
    if (rc != RK_OK) {
        fprintf(stderr, "raft_bench: etcd: %s\n", err);
        return 1;
    }
    print_result(stdout, "etcd", &r);
    return 0;
}

static int run_failover(const struct options *o)
{
    char err[BENCH_ERR_LEN] = "";
    struct bench_cluster c = { 0 };
    if (o->registry != NULL) {
        fprintf(stderr, "raft_bench: --failover kills servers: it needs its own cluster, "
                        "not --registry\n");
        return 2;
    }
    int rc = open_cluster(o, o->nodes, &c, err, sizeof(err)) < 0 ? RK_ERR_TIMEOUT : RK_OK;
    struct bench_failover_result r;
    if (rc == RK_OK)
        rc = bench_failover(&c, o->failover, &r, err, sizeof(err));
    if (rc == RK_OK || r.trials > 0)
        print_failover(stdout, &r);
    if (rc != RK_OK) {
        fprintf(stderr, "raft_bench: %s\n", err);
        bench_cluster_dump_logs(&c, 20);
    }
    bench_cluster_destroy(&c);
    return rc == RK_OK ? 0 : 1;
}

/* ---- the matrix ---- */

#define DISTURBED_STEAL_PCT 20 /* % of one core taken by other VMs during a row */

static const int matrix_clients[] = { 1, 8, 32, 64 };
static const double matrix_reads[] = { 0, 0.9 };
#define N_CLIENTS (int)(sizeof(matrix_clients) / sizeof(matrix_clients[0]))
#define N_READS (int)(sizeof(matrix_reads) / sizeof(matrix_reads[0]))

struct matrix_row {
    int nodes, clients;
    double reads;
    struct bench_result r;
    int rc;
};

struct matrix {
    struct matrix_row rows[2 * N_CLIENTS * N_READS];
    int n_rows;
    struct bench_result ceiling[N_CLIENTS][N_READS];
    struct bench_failover_result fo;
    bool fo_ran, ceiling_ran;
    int loop_threads;   /* the engine: 0 = a thread per client */
    int matrix_writes;  /* --matrix-writes N, or 0 */
    int fo_rc;
    char fo_err[BENCH_ERR_LEN];
    double load_before[3], load_after[3];
    time_t started;
    double seconds;
};

/* Ops per run: about what the targets need in a few seconds; runs also stop at
 * max_seconds, so a slow cluster still finishes in time. */
static long matrix_ops(const struct options *o, int clients)
{
    long ops = clients == 1 ? 5000 : clients <= 8 ? 20000 : 50000;
    return o->quick ? ops / 10 : ops;
}

static void matrix_cluster(const struct options *base, int nodes, int n_reads,
                           struct matrix *m)
{
    char err[BENCH_ERR_LEN] = "";
    struct bench_cluster c = { 0 };
    struct options o = *base;
    int leader = open_cluster(&o, nodes, &c, err, sizeof(err));
    const struct bench_node *ln = leader >= 0 ? &c.nodes[leader] : NULL;
    int rc = leader < 0 ? RK_ERR_TIMEOUT : prefill(&o, ln->host, ln->port, err, sizeof(err));
    for (int ci = 0; ci < N_CLIENTS; ci++) {
        for (int ri = 0; ri < n_reads; ri++) {
            struct matrix_row *row = &m->rows[m->n_rows++];
            *row = (struct matrix_row){ .nodes = nodes, .clients = matrix_clients[ci],
                                        .reads = matrix_reads[ri], .rc = rc };
            if (rc != RK_OK)
                continue;
            leader = bench_wait_leader(&c, false, LEADER_WAIT_MS); /* it may have changed */
            ln = &c.nodes[leader >= 0 ? leader : 0];
            o.clients = row->clients;
            o.read_ratio = row->reads;
            o.ops = matrix_ops(base, row->clients);
            struct bench_load_opts lo = load_opts(&o, ln->host, ln->port);
            row->rc = measured_load(&c, &lo, &row->r, err, sizeof(err));
            fprintf(stderr, "  %d nodes, %2d clients, %2.0f%% reads: ", nodes, row->clients,
                    row->reads * 100);
            if (row->rc == RK_OK)
                print_result(stderr, "", &row->r);
            else
                fprintf(stderr, "FAILED: %s\n", err);
        }
    }
    if (rc != RK_OK)
        fprintf(stderr, "raft_bench: %d nodes: %s\n", nodes, err);
    bench_cluster_destroy(&c);
}

static void matrix_ceilings(const struct options *base, struct matrix *m)
{
    char err[BENCH_ERR_LEN];
    for (int ci = 0; ci < N_CLIENTS; ci++) {
        for (int ri = 0; ri < N_READS; ri++) {
            struct options o = *base;
            o.clients = matrix_clients[ci];
            o.read_ratio = matrix_reads[ri];
            o.ops = base->quick ? 5000 : 100000; /* short runs are at the mercy of noise */
            o.max_seconds = base->quick ? 1 : 2;
            if (run_ceiling(&o, &m->ceiling[ci][ri], err, sizeof(err)) != RK_OK)
                fprintf(stderr, "raft_bench: ceiling: %s\n", err);
            fprintf(stderr, "  ceiling, %2d clients, %2.0f%% reads: ", o.clients,
                    o.read_ratio * 100);
            print_result(stderr, "", &m->ceiling[ci][ri]);
        }
    }
}

static void matrix_failover(const struct options *base, struct matrix *m)
{
    struct bench_cluster c = { 0 };
    int kills = base->failover > 0 ? base->failover : base->quick ? 3 : 10;
    m->fo_ran = true;
    m->fo_rc = open_cluster(base, 5, &c, m->fo_err, sizeof(m->fo_err)) < 0 ? RK_ERR_TIMEOUT
                                                                            : RK_OK;
    if (m->fo_rc == RK_OK)
        m->fo_rc = bench_failover(&c, kills, &m->fo, m->fo_err, sizeof(m->fo_err));
    if (m->fo_rc != RK_OK)
        fprintf(stderr, "raft_bench: failover: %s\n", m->fo_err);
    bench_cluster_destroy(&c);
}

static void write_header(FILE *f, const struct matrix *m)
{
    char when[64], cpu[128] = "unknown CPU";
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&m->started));
    FILE *ci = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (ci != NULL && fgets(line, sizeof(line), ci) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            snprintf(cpu, sizeof(cpu), "%s", colon + 2);
            cpu[strcspn(cpu, "\n")] = '\0';
            break;
        }
    }
    if (ci != NULL)
        fclose(ci);
    struct utsname u;
    uname(&u);
    fprintf(f, "# raft-kv benchmark (`make bench`)\n\n");
    char cmd[64];
    if (m->matrix_writes > 0)
        snprintf(cmd, sizeof(cmd), "--matrix-writes %d", m->matrix_writes);
    else
        snprintf(cmd, sizeof(cmd), "--matrix");
    fprintf(f, "Run %s by `tools/raft_bench %s%s` in %.0f s on %ld CPUs (%s), Linux %s.\n",
            when, cmd, m->loop_threads > 0 ? " --engine loop" : "", m->seconds,
            sysconf(_SC_NPROCESSORS_ONLN), cpu, u.release);
    fprintf(f, "Load average before: %.2f %.2f %.2f; after: %.2f %.2f %.2f.\n\n",
            m->load_before[0], m->load_before[1], m->load_before[2], m->load_after[0],
            m->load_after[1], m->load_after[2]);
    if (m->loop_threads > 0)
        fprintf(f, "Closed loop: each client (one TCP connection to the leader, all of them "
                   "served by %d epoll thread%s: `--engine loop`) sends a ", m->loop_threads,
                m->loop_threads > 1 ? "s" : "");
    else
        fprintf(f, "Closed loop: each client (one thread, one TCP connection to the leader) "
                   "sends a ");
    fprintf(f, "request and waits for its answer. 100-byte values, 1000 keys (written once "
               "before the runs), servers on 127.0.0.1 with fsync on, in a temp dir. Latency "
               "in ms, every operation recorded. *Ceiling*: the same load against a server in "
               "raft_bench that answers at once, without Raft or disk. *CPU*: %% of one core "
               "used by the generator, by the servers, and by everything else on the machine "
               "during the run: interrupts and softirqs not charged to a process, other "
               "processes, and *steal* (in brackets), the time the hypervisor gave our vCPUs "
               "to other machines. A row with %d%% or more steal is marked **disturbed**: "
               "the host, not the cluster, set its pace.\n\n", DISTURBED_STEAL_PCT);
}

static void write_table(FILE *f, const struct matrix *m)
{
    fprintf(f, "| nodes | clients | reads | ops | ops/s | p50 | p90 | p99 | p99.9 | max | "
               "errors | ceiling ops/s | of ceiling | CPU gen / servers / other (steal) |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < m->n_rows; k++) {
        const struct matrix_row *row = &m->rows[k];
        int ci = 0, ri = row->reads > 0;
        while (matrix_clients[ci] != row->clients)
            ci++;
        const struct bench_result *r = &row->r, *c = &m->ceiling[ci][ri];
        fprintf(f, "| %d | %d | %.0f%% | ", row->nodes, row->clients, row->reads * 100);
        if (row->rc != RK_OK) {
            fprintf(f, "failed: %s | | | | | | | | | | | |\n", rk_strerror(row->rc));
            continue;
        }
        fprintf(f, "%ld | %.0f | %.3f | %.3f | %.3f | %.3f | %.3f | %ld%s | ", r->ops,
                r->ops_per_s, r->p50_ms, r->p90_ms, r->p99_ms, r->p999_ms, r->max_ms,
                r->errors, r->new_terms > 0 ? " (election)" : "");
        if (m->ceiling_ran)
            fprintf(f, "%.0f | %.0f%% | ", c->ops_per_s,
                    c->ops_per_s > 0 ? 100 * r->ops_per_s / c->ops_per_s : 0);
        else
            fprintf(f, "- | - | ");
        fprintf(f, "%.0f / %.0f / %.0f (%.0f)%%%s |\n", r->gen_cpu_pct, r->server_cpu_pct,
                r->other_cpu_pct, r->steal_cpu_pct,
                r->steal_cpu_pct >= DISTURBED_STEAL_PCT ? " **disturbed**" : "");
    }
}

static void write_failover(FILE *f, const struct matrix *m)
{
    const struct bench_failover_result *r = &m->fo;
    fprintf(f, "\n## Failover: 5 nodes, `kill -9` of the leader to the first acknowledged "
               "write\n\n");
    if (m->fo_rc != RK_OK)
        fprintf(f, "**Failed**: %s (after %d kills).\n\n", m->fo_err, r->trials);
    fprintf(f, "| measured by | kills | no ack | median ms | max ms |\n|---|---|---|---|---|\n");
    fprintf(f, "| prober: a write to every server on a fresh connection every 10 ms | %d | %d "
               "| %.1f | %.1f |\n", r->trials, r->failed, r->probe_median_ms, r->probe_max_ms);
    fprintf(f, "| client session (`client/session.c`, kept-open connection, retries) | %d | %d "
               "| %.1f | %.1f |\n", r->trials, r->failed, r->session_median_ms,
            r->session_max_ms);
    fprintf(f, "\nPer kill (prober / session, ms):");
    for (int t = 0; t < r->trials; t++)
        fprintf(f, "%s %.0f / %.0f", t ? "," : "", r->probe_ms[t], r->session_ms[t]);
    fprintf(f, "\n");
}

static void write_matrix(FILE *f, const struct matrix *m)
{
    write_header(f, m);
    write_table(f, m);
    if (m->fo_ran)
        write_failover(f, m);
}

static int run_matrix(const struct options *base)
{
    struct options o = *base;
    o.value_size = 100;
    o.keys = 1000;
    o.max_seconds = o.quick ? 2 : 5;
    struct matrix *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 1;
    m->started = time(NULL);
    m->loop_threads = o.loop_threads;
    m->matrix_writes = o.matrix_writes;
    int64_t t0 = bench_now_ns();
    getloadavg(m->load_before, 3);
    if (o.matrix_writes > 0) {
        fprintf(stderr, "raft_bench --matrix-writes: %d nodes\n", o.matrix_writes);
        matrix_cluster(&o, o.matrix_writes, 1, m); /* matrix_reads[0] is 0: writes */
    } else {
        fprintf(stderr, "raft_bench --matrix: generator ceiling\n");
        matrix_ceilings(&o, m);
        m->ceiling_ran = true;
        for (int nodes = 3; nodes <= 5; nodes += 2) {
            fprintf(stderr, "raft_bench --matrix: %d nodes\n", nodes);
            matrix_cluster(&o, nodes, N_READS, m);
        }
        fprintf(stderr, "raft_bench --matrix: failover, 5 nodes\n");
        matrix_failover(&o, m);
    }
    getloadavg(m->load_after, 3);
    m->seconds = (double)(bench_now_ns() - t0) / 1e9;
    write_matrix(stdout, m);
    int rc = 0;
    if (strcmp(base->out_path, "-") != 0) {
        FILE *f = fopen(base->out_path, "w");
        if (f == NULL) {
            fprintf(stderr, "raft_bench: %s: %s\n", base->out_path, strerror(errno));
            rc = 1;
        } else {
            write_matrix(f, m);
            rc = fclose(f) == 0 ? 0 : 1;
            fprintf(stderr, "raft_bench: wrote %s\n", base->out_path);
        }
    }
    for (int k = 0; k < m->n_rows; k++)
        rc |= m->rows[k].rc != RK_OK;
    rc |= m->fo_ran && m->fo_rc != RK_OK;
    free(m);
    return rc;
}

/* ---- the snapshot targets ---- */

/* The words of argv joined by spaces into out (cut if too long). */
static void join_words(char *out, size_t len, int argc, char **argv)
{
    size_t used = 0;
    out[0] = '\0';
    for (int k = 0; k < argc && used < len; k++) {
        int w = snprintf(out + used, len - used, "%s%s", k ? " " : "", argv[k]);
        used += w > 0 ? (size_t)w : 0;
    }
}

static int run_snapshot_targets(const struct options *o, int argc, char **argv)
{
    if (o->registry != NULL) {
        fprintf(stderr, "raft_bench: --snapshot-targets kills and wipes servers: it needs its "
                        "own cluster, not --registry\n");
        return 2;
    }
    if (o->nodes < 3) {
        fprintf(stderr, "raft_bench: --snapshot-targets needs --nodes 3 or more (it restarts "
                        "followers while a majority serves)\n");
        return 2;
    }
    if (access(o->server_bin, X_OK) != 0) {
        fprintf(stderr, "raft_bench: %s: %s (build it with make, or set RK_SERVER_BIN)\n",
                o->server_bin, strerror(errno));
        return 1;
    }
    static char command[1024], server_args[512];
    join_words(command, sizeof(command), argc, argv);
    join_words(server_args, sizeof(server_args), o->n_server_args, (char **)o->server_args);
    struct bench_snapshot_opts so = {
        .server_bin = o->server_bin, .n_server_args = o->n_server_args,
        .server_args_text = o->n_server_args > 0 ? server_args : "none",
        .nodes = o->nodes, .value_size = o->value_size, .out_path = o->out_path,
        .command = command,
        .clients = o->clients_set ? o->clients : SNAP_CLIENTS,
        .keys = o->keys_set ? o->keys : o->quick ? SNAP_KEYS_QUICK : SNAP_KEYS,
        .steady_seconds = o->max_seconds_set ? o->max_seconds
                                             : o->quick ? SNAP_STEADY_S_QUICK : SNAP_STEADY_S,
    };
    memcpy(so.server_args, o->server_args, sizeof(so.server_args));
    int rc = bench_snapshot_targets(&so);
    if (rc != RK_OK)
        fprintf(stderr, "raft_bench: --snapshot-targets: not every measurement was made (%s)\n",
                rk_strerror(rc));
    return rc == RK_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], BENCH_CEILING_OPTION) == 0) /* see bench_ceiling_start */
        return bench_ceiling_serve(atoi(argv[2]), atoi(argv[3]));
    struct options o;
    parse_args(argc, argv, &o);
    bench_install_cleanup();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (o.etcd_url != NULL)
        return run_etcd(&o);
    if (o.matrix)
        return run_matrix(&o);
    if (o.snapshot_targets)
        return run_snapshot_targets(&o, argc, argv);
    if (o.failover > 0)
        return run_failover(&o);
    return run_single(&o);
}
