/* tools/raft_bench.c - the raft-kv load generator behind `make bench` and `make bench-etcd`:
 * the command line, one load run (against a cluster it starts, or one from --registry)
 * beside the generator's ceiling, the leader-failover measurement, and the entry points of
 * the matrix (bench_matrix.c), etcd (bench_etcd.c), the snapshot targets
 * (bench_snapshot.c) and the membership targets (bench_membership.c). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "bench.h"

#define PREFILL_CLIENTS 32
#define STATUS_MS 300

/* ---- the command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: raft_bench [options]           one closed-loop run, then the ceiling run\n"
            "       raft_bench --failover K [...]  kill -9 the leader K times, time to first ack\n"
            "       raft_bench --matrix [--out F]  the standard matrix of `make bench` (Markdown)\n"
            "       raft_bench --matrix-writes N [--out F]\n"
            "                     only the matrix's write rows on N nodes (no ceiling, no reads,\n"
            "                     no failover)\n"
            "       raft_bench --compare-etcd [--quick] [--etcd-trials K] [--out F]\n"
            "                     `make bench-etcd`: a local etcd cluster (Debian's etcd-server)\n"
            "                     and raft-kv back to back, 3 then 5 members, 1-64 clients of\n"
            "                     writes, one generator (--engine loop) for both, then leader\n"
            "                     failover of each; Markdown side by side (default --out\n"
            "                     docs/benchmarks-etcd-latest.md)\n"
            "       raft_bench --snapshot-targets [--keys K] [--quick] [--out F]\n"
            "                     issue 6's snapshot targets: disk use, restart to serving, a\n"
            "                     wiped follower's catch-up, writes during snapshots (K keys,\n"
            "                     default 1000000; 64 clients; 20 s of overwrites, or\n"
            "                     --max-seconds; the section also replaces the one in --out)\n"
            "       raft_bench --membership-targets [--keys K] [--clients N] [--quick] [--out F]\n"
            "                     issue 15's measurements, under N closed-loop writers through\n"
            "                     client sessions (16): a rolling restart of 5 servers by\n"
            "                     SIGTERM; a server added to 3 holding K keys (1000000); the\n"
            "                     leader's disk stalled (--fault-server-bin); a section of --out\n"
            "       raft_bench --coord-targets [--keys K] [--quick] [--out F]\n"
            "                     issue 16's measurements on 3 nodes: cas beside set at 1 and\n"
            "                     64 clients, a scan page of 100 keys of K (1000000); a\n"
"                     section of --out\n"
            "       raft_bench --expiry-targets [--keys K] [--clients N] [--quick] [--out F]\n"
            "                     writes per second while K keys (100000) expire in the same\n"
            "                     second, 3 nodes, 1 and N (64) writers, beside the same\n"
            "                     writers with nothing expiring; a section of --out\n"
            "       raft_bench --watch-targets [--clients N] [--quick] [--out F]\n"
            "                     issue 17's measurements on 3 nodes: 64 writers with 0 and 100\n"
            "                     watchers (delay to delivery, every event seen); N idle\n"
            "                     watchers (9880) on the leader: memory, CPU, writes/s beside\n"
            "                     none; a section of --out\n"
            "  --nodes N          cluster size to start (default 3)\n"
            "  --clients N        concurrent clients, one connection each (1)\n"
            "  --engine E         threads: a thread per client, blocking (the default); loop:\n"
            "                     every client on one epoll thread (less generator CPU on\n"
            "                     cores shared with the servers)\n"
            "  --loop-threads N   --engine loop with N epoll threads (1)\n"
            "  --etcd URL         drive etcd's JSON gateway at URL (http://HOST:PORT) instead:\n"
            "                     puts only, --engine loop; the same load and statistics\n"
            "  --server-pidfile F with --etcd: the servers' pids (one per line), for CPU use\n"
            "  --ops N            total measured operations (10000)\n"
            "  --max-seconds S    stop a run after S seconds even if --ops is not reached (60)\n"
            "  --value-size B     bytes per value (100)\n"
            "  --keys K           key space (1000)\n"
            "  --read-ratio R     share of GETs, 0..1 (0); keys are written once first\n"
            "  --op KIND          set (the default: sets, and gets by --read-ratio); cas: a\n"
            "                     compare-and-set each, every client on a key of its own;\n"
            "                     scan: a page of 100 of the --keys keys, written first\n"
            "  --registry FILE    drive a running cluster instead of starting one\n"
            "  --ceiling          only the ceiling: the same load on a server without Raft\n"
            "  --no-ceiling       skip the ceiling run\n"
            "  --no-sessions      writes without a client session (no REGISTER, client id 0)\n"
            "  --server-bin PATH  raft_server to start ($RK_SERVER_BIN, ./server/raft_server)\n"
            "  --server-arg ARG   pass ARG to every raft_server (repeatable)\n"
            "  --fault-server-bin PATH  the test-only server with the disk fault seam, for\n"
            "                     --membership-targets ($RK_FAULT_SERVER_BIN,\n"
            "                     build/default/tests/raft_server_faults; `make tests` builds it)\n"
            "  --perf FILE        perf record -g the leader during the run into FILE\n"
            "  --out FILE         --matrix: also write the Markdown there; --snapshot-targets,\n"
            "                     --membership-targets: replace their section there\n"
            "                     (default docs/benchmarks-latest.md; - for stdout only)\n"
            "  --quick            --matrix, --compare-etcd: a short smoke run (few ops, 3 kills,\n"
            "                     2 of etcd's); --snapshot-targets: 50000 keys, 5 s of overwrites;\n"
            "                     --membership-targets: 50000 keys, 2 s baselines\n"
            "  --etcd-trials K    --compare-etcd: kills of etcd's leader (5, each on a new one)\n"
            "  --seed N           random seed (1)\n"
            "Servers run in a temp dir on free 127.0.0.1 ports and die with raft_bench (also on\n"
            "^C or kill -9); their dir goes with them (RK_KEEP_DIR=1 keeps it).\n");
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

static bool parse_op_kind(const char *s, enum bench_op_kind *out)
{
    static const char *const names[] = { "set", "cas", "scan" };
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum bench_op_kind)i;
            return true;
        }
    return false;
}

enum { OPT_NODES = 256, OPT_CLIENTS, OPT_OPS, OPT_MAXSEC, OPT_VSIZE, OPT_KEYS, OPT_READS,
       OPT_REGISTRY, OPT_CEILING, OPT_NOCEIL, OPT_FAILOVER, OPT_MATRIX, OPT_OUT, OPT_SBIN,
       OPT_SARG, OPT_PERF, OPT_QUICK, OPT_SEED, OPT_NOSESS, OPT_SNAP, OPT_MWRITES, OPT_ENGINE,
       OPT_LOOPS, OPT_ETCD, OPT_PIDFILE, OPT_COMPARE, OPT_ETRIALS, OPT_MEMBER, OPT_FBIN,
       OPT_OP, OPT_COORD, OPT_EXPIRY, OPT_WATCH, OPT_HELP };

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
    { "server-pidfile", 1, NULL, OPT_PIDFILE }, { "compare-etcd", 0, NULL, OPT_COMPARE },
    { "etcd-trials", 1, NULL, OPT_ETRIALS },    { "help", 0, NULL, OPT_HELP },
    { "membership-targets", 0, NULL, OPT_MEMBER }, { "fault-server-bin", 1, NULL, OPT_FBIN },
    { "op", 1, NULL, OPT_OP },              { "coord-targets", 0, NULL, OPT_COORD },
    { "expiry-targets", 0, NULL, OPT_EXPIRY }, { "watch-targets", 0, NULL, OPT_WATCH },
    { NULL, 0, NULL, 0 },
};

/* One option; false if its value is bad. */
static bool apply_option(struct bench_options *o, int opt, const char *arg)
{
    long v = 0;
    switch (opt) {
    case OPT_NODES: return parse_long(arg, 1, CTL_MAX_SERVERS, &v) && ((o->nodes = (int)v), true);
    case OPT_CLIENTS: return parse_long(arg, 1, 4096, &v) && ((o->clients = (int)v), true);
    case OPT_OPS: return parse_long(arg, 1, 100000000, &o->ops);
    case OPT_MAXSEC: return parse_double(arg, 0, 86400, &o->max_seconds);
    case OPT_VSIZE: return parse_long(arg, 0, 4 << 20, &v) && ((o->value_size = (int)v), true);
    case OPT_KEYS: return parse_long(arg, 1, 100000000, &v) && ((o->keys = (int)v), true);
    case OPT_READS: return parse_double(arg, 0, 1, &o->read_ratio);
    case OPT_OP: return parse_op_kind(arg, &o->op_kind);
    case OPT_REGISTRY: o->registry = arg; return true;
    case OPT_CEILING: o->ceiling_only = true; return true;
    case OPT_NOCEIL: o->no_ceiling = true; return true;
    case OPT_FAILOVER: return parse_long(arg, 1, 64, &v) && ((o->failover = (int)v), true);
    case OPT_MATRIX: o->matrix = true; return true;
    case OPT_OUT: o->out_path = arg; return true;
    case OPT_SBIN: o->server_bin = arg; return true;
    case OPT_SARG:
        if (o->n_server_args >= CTL_MAX_SERVER_ARGS)
            return false;
        o->server_args[o->n_server_args++] = arg;
        return true;
    case OPT_PERF: o->perf_path = arg; return true;
    case OPT_QUICK: o->quick = true; return true;
    case OPT_NOSESS: o->no_sessions = true; return true;
    case OPT_SNAP: o->snapshot_targets = true; return true;
    case OPT_MEMBER: o->membership_targets = true; return true;
    case OPT_COORD: o->coord_targets = true; return true;
    case OPT_EXPIRY: o->expiry_targets = true; return true;
    case OPT_WATCH: o->watch_targets = true; return true;
    case OPT_FBIN: o->fault_server_bin = arg; return true;
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
    case OPT_COMPARE: o->compare_etcd = true; return true;
    case OPT_ETRIALS:
        return parse_long(arg, 1, BENCH_MAX_TRIALS, &v) && ((o->etcd_trials = (int)v), true);
    case OPT_MWRITES:
        o->matrix = true;
        return parse_long(arg, 1, CTL_MAX_SERVERS, &v) && ((o->matrix_writes = (int)v), true);
    case OPT_SEED: return parse_long(arg, 0, 1L << 30, &v) && ((o->seed = (unsigned)v), true);
    }
    return false;
}

/* The name of option opt, for a message. */
static const char *option_name(int opt)
{
    for (const struct option *lo = long_opts; lo->name != NULL; lo++)
        if (lo->val == opt)
            return lo->name;
    return "?";
}

static void parse_args(int argc, char **argv, struct bench_options *o)
{
    *o = (struct bench_options){ .nodes = 3, .clients = 1, .value_size = 100, .keys = 1000,
                                 .ops = 10000, .max_seconds = 60, .seed = 1 };
    o->server_bin = ctl_server_bin();
    const char *fault_bin = getenv("RK_FAULT_SERVER_BIN");
    o->fault_server_bin = fault_bin != NULL && fault_bin[0] != '\0'
                              ? fault_bin : "build/default/tests/raft_server_faults";
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
                        option_name(opt));
            usage(stderr);
            exit(2);
        }
        o->clients_set |= opt == OPT_CLIENTS;
        o->keys_set |= opt == OPT_KEYS;
        o->max_seconds_set |= opt == OPT_MAXSEC;
        o->out_set |= opt == OPT_OUT;
    }
    if (optind < argc) {
        fprintf(stderr, "raft_bench: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
}


/* ---- printing ---- */

void bench_print_result(FILE *f, const char *what, const struct bench_result *r)
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

static void print_failover(FILE *f, const struct bench_failover_result *r)
{
    fprintf(f, "failover: %d kills of the leader, %d without an ack\n", r->trials, r->failed);
    fprintf(f, "  prober (a fresh connection to every server every 10 ms): "
               "median %.1f, max %.1f ms\n", r->probe_median_ms, r->probe_max_ms);
    fprintf(f, "  session (client/session.c, a kept-open connection):     "
               "median %.1f, max %.1f ms\n", r->session_median_ms, r->session_max_ms);
}

/* ---- one run ---- */

/* The highest term any server of c reports (0 if none answers, or for no cluster). */
static long long highest_term(struct ctl_cluster *c)
{
    long long term = 0;
    for (int i = 0; c != NULL && i < c->n; i++) {
        struct ctl_status st;
        if (ctl_is_running(c, i) && ctl_status_of(c, i, &st, STATUS_MS) == RK_OK &&
            st.term > term)
            term = st.term;
    }
    return term;
}

int bench_measured_load(struct ctl_cluster *c, const pid_t *pids, int n_pids,
                        const struct bench_load_opts *lo, struct bench_result *r, char *err,
                        size_t errlen)
{
    pid_t servers[CTL_MAX_SERVERS];
    for (int i = 0; c != NULL && i < c->n; i++)
        servers[i] = c->servers[i].pid;
    if (c != NULL) {
        pids = servers;
        n_pids = c->n;
    }
    struct bench_cpu a, b;
    long long term_before = highest_term(c);
    bench_cpu_sample(pids, n_pids, &a);
    int rc = bench_run_load(lo, r, err, errlen);
    bench_cpu_sample(pids, n_pids, &b);
    r->new_terms = highest_term(c) - term_before;
    bench_cpu_usage(&a, &b, &r->gen_cpu_pct, &r->server_cpu_pct, &r->other_cpu_pct,
                    &r->steal_cpu_pct);
    return rc;
}

struct bench_load_opts bench_load_opts_of(const struct bench_options *o, const char *host,
                                          uint16_t port)
{
    return (struct bench_load_opts){
        .host = host, .port = port, .clients = o->clients, .ops = o->ops,
        .max_seconds = o->max_seconds, .value_size = o->value_size, .keys = o->keys,
        .read_ratio = o->read_ratio, .warmup = 5, .seed = o->seed, .key_prefix = "k",
        .op_kind = o->op_kind,
        .sessions = !o->no_sessions, .loop_threads = o->loop_threads,
    };
}

int bench_prefill(const struct bench_options *o, const char *host, uint16_t port, char *err,
                  size_t errlen)
{
    struct bench_load_opts lo = bench_load_opts_of(o, host, port);
    lo.clients = o->keys < PREFILL_CLIENTS ? o->keys : PREFILL_CLIENTS;
    lo.ops = o->keys;
    lo.read_ratio = 0;
    lo.op_kind = BENCH_OP_SET;
    lo.sequential_keys = true;
    lo.warmup = 0;
    struct bench_result r;
    return bench_run_load(&lo, &r, err, errlen);
}

int bench_run_ceiling(const struct bench_options *o, struct bench_result *r, char *err,
                      size_t errlen)
{
    uint16_t port = 0;
    pid_t pid = bench_ceiling_start(o->value_size, &port, err, errlen);
    if (pid < 0)
        return RK_ERR_IO;
    struct bench_load_opts lo = bench_load_opts_of(o, "127.0.0.1", port);
    int rc = bench_measured_load(NULL, &pid, 1, &lo, r, err, errlen);
    ctl_end(pid, SIGKILL);
    return rc;
}

/* perf record of pid into path: the software clock works without hardware counters (as
 * in a VM), and DWARF unwinding finds callers through libc, which has no frame pointers. */
static pid_t start_perf(const char *path, pid_t pid)
{
    char pid_s[16];
    snprintf(pid_s, sizeof(pid_s), "%d", (int)pid);
    char *argv[] = { "perf", "record", "-q", "-e", "cpu-clock", "-F", "499",
                     "--call-graph", "dwarf,16384", "-p", pid_s, "-o", (char *)path, NULL };
    struct ctl_spawn sp = CTL_SPAWN(argv);
    pid_t p = ctl_spawn(&sp);
    rk_sleep_ms(300); /* let it attach */
    return p;
}

int bench_open_cluster(const struct bench_options *o, int nodes, struct ctl_cluster **cp,
                       char *err, size_t errlen)
{
    struct ctl_cluster *c = NULL;
    int rc = RK_OK;
    if (o->registry != NULL) {
        c = ctl_cluster_attach(o->registry, err, errlen);
    } else if (access(o->server_bin, X_OK) != 0) {
        snprintf(err, errlen, "%s: %s (build it with make, or set RK_SERVER_BIN)",
                 o->server_bin, strerror(errno));
    } else if ((c = ctl_cluster_new(nodes, "bench", NULL, err, errlen)) != NULL) {
        c->server_bin = o->server_bin;
        memcpy(c->server_args, o->server_args, sizeof(c->server_args));
        c->n_server_args = o->n_server_args;
        rc = ctl_start_all(c);
    }
    *cp = c;
    if (c == NULL || rc != RK_OK) {
        if (c != NULL)
            snprintf(err, errlen, "cannot start the cluster: %s", rk_strerror(rc));
        return -1;
    }
    int leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL);
    if (leader < 0) {
        snprintf(err, errlen, "no leader within %d ms", BENCH_LEADER_WAIT_MS);
        ctl_dump_logs(c, 20);
    }
    return leader;
}

/* The load of the command line on the cluster's leader (perf recording it if asked). */
static int run_cluster_load(const struct bench_options *o, struct ctl_cluster *c, int leader,
                            struct bench_result *r, char *err, size_t errlen)
{
    const struct ctl_server *ln = &c->servers[leader];
    bool prefill = o->read_ratio > 0 || o->op_kind == BENCH_OP_SCAN;
    int rc = prefill ? bench_prefill(o, ln->host, ln->port, err, errlen) : RK_OK;
    if (rc != RK_OK)
        return rc;
    leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL); /* it may have changed */
    ln = &c->servers[leader >= 0 ? leader : 0];
    pid_t perf = o->perf_path != NULL && ln->pid > 0 ? start_perf(o->perf_path, ln->pid) : 0;
    struct bench_load_opts lo = bench_load_opts_of(o, ln->host, ln->port);
    rc = bench_measured_load(c, NULL, 0, &lo, r, err, errlen);
    ctl_end(perf, SIGINT);
    return rc;
}

static int run_single(const struct bench_options *o)
{
    char err[BENCH_ERR_LEN] = "";
    struct bench_result r;
    static const char *const kinds[] = { "set", "cas", "scan (pages of 100 keys)" };
    printf("raft_bench: %d clients, %d-byte values, %d keys, %.0f%% reads, %ld ops, op %s\n",
           o->clients, o->value_size, o->keys, o->read_ratio * 100, o->ops, kinds[o->op_kind]);
    if (!o->ceiling_only) {
        struct ctl_cluster *c = NULL;
        int leader = bench_open_cluster(o, o->nodes, &c, err, sizeof(err));
        int rc = leader < 0 ? RK_ERR_TIMEOUT : run_cluster_load(o, c, leader, &r, err,
                                                                sizeof(err));
        if (rc == RK_OK) {
            char what[32];
            snprintf(what, sizeof(what), "%d nodes", c->n);
            bench_print_result(stdout, what, &r);
        } else {
            fprintf(stderr, "raft_bench: %s\n", err);
            ctl_dump_logs(c, 20);
        }
        ctl_cluster_destroy(c);
        if (rc != RK_OK)
            return 1;
    }
    if (o->no_ceiling)
        return 0;
    struct bench_result cr;
    if (bench_run_ceiling(o, &cr, err, sizeof(err)) != RK_OK) {
        fprintf(stderr, "raft_bench: ceiling: %s\n", err);
        return 1;
    }
    bench_print_result(stdout, "ceiling", &cr);
    if (!o->ceiling_only && cr.ops_per_s > 0)
        printf("the cluster ran at %.0f%% of the generator's ceiling\n",
               100 * r.ops_per_s / cr.ops_per_s);
    return 0;
}

static int run_failover(const struct bench_options *o)
{
    char err[BENCH_ERR_LEN] = "";
    struct ctl_cluster *c = NULL;
    if (o->registry != NULL) {
        fprintf(stderr, "raft_bench: --failover kills servers: it needs its own cluster, "
                        "not --registry\n");
        return 2;
    }
    int rc = bench_open_cluster(o, o->nodes, &c, err, sizeof(err)) < 0 ? RK_ERR_TIMEOUT
                                                                        : RK_OK;
    struct bench_failover_result r = { 0 };
    if (rc == RK_OK)
        rc = bench_failover(c, o->failover, &r, err, sizeof(err));
    if (rc == RK_OK || r.trials > 0)
        print_failover(stdout, &r);
    if (rc != RK_OK) {
        fprintf(stderr, "raft_bench: %s\n", err);
        ctl_dump_logs(c, 20);
    }
    ctl_cluster_destroy(c);
    return rc == RK_OK ? 0 : 1;
}

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

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], BENCH_CEILING_OPTION) == 0) /* see bench_ceiling_start */
        return bench_ceiling_serve(atoi(argv[2]), atoi(argv[3]));
    struct bench_options o;
    parse_args(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (o.compare_etcd)
        return bench_compare_etcd(&o);
    if (o.etcd_url != NULL)
        return bench_etcd_load(&o);
    if (o.matrix)
        return bench_matrix(&o);
    if (o.snapshot_targets || o.membership_targets || o.coord_targets || o.expiry_targets ||
        o.watch_targets) {
        static char command[1024];
        join_words(command, sizeof(command), argc, argv);
        return o.snapshot_targets     ? bench_snapshot_targets(&o, command)
               : o.membership_targets ? bench_membership_targets(&o, command)
               : o.coord_targets      ? bench_coord_targets(&o, command)
               : o.watch_targets      ? bench_watch_targets(&o, command)
                                      : bench_expiry_targets(&o, command);
    }
    if (o.failover > 0)
        return run_failover(&o);
    return run_single(&o);
}
