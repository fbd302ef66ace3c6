/* tools/bench.h - the parts of raft_bench (the load generator of `make bench`): a cluster of
 * raft_server processes it owns (or one from a registry), closed-loop load with latency
 * statistics, the no-Raft ceiling server, the leader-failover measurement, and the snapshot
 * targets. */
#ifndef RK_BENCH_H
#define RK_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/proto.h"
#include "../common/registry.h"

#define BENCH_MAX_NODES 9
#define BENCH_MAX_SERVER_ARGS 16
#define BENCH_ERR_LEN 512
#define BENCH_FAILURE_LEN 160

/* ---- time (bench_cluster.c) ---- */

int64_t bench_now_ns(void);
void bench_sleep_ms(int ms);

/* ---- child processes and the cleanup on exit or signal (bench_cluster.c) ---- */

/* Blocks SIGINT/SIGTERM/SIGHUP in every thread and starts a thread that, on one of them,
 * SIGKILLs every child and removes every temp dir, then exits 130. Call first in main(). */
void bench_install_cleanup(void);
/* Forks a child that dies with this process (PR_SET_PDEATHSIG), in its own process group,
 * with signals unblocked. In the child, run(arg) is called and its return is the exit code.
 * Returns the pid (recorded for cleanup) or -1. Call from the main thread only. */
pid_t bench_fork(int (*run)(void *arg), void *arg);
/* Sends sig to a child started by bench_fork and reaps it. */
void bench_end_child(pid_t pid, int sig);

/* ---- the cluster (bench_cluster.c) ---- */

struct bench_node {
    char name[REGISTRY_NAME_MAX + 1];
    char host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
    pid_t pid; /* 0 when not running or not ours */
};

struct bench_cluster {
    char dir[128];          /* our temp dir, "" for a cluster from --registry */
    char registry_path[192];
    int n;
    struct bench_node nodes[BENCH_MAX_NODES];
    bool owned;             /* we start and stop the servers */
    const char *server_bin;
    const char *server_args[BENCH_MAX_SERVER_ARGS]; /* extra raft_server options */
    int n_server_args;
    pid_t janitor_pid;      /* removes dir should raft_bench die without cleaning up */
    int janitor_fd;
};

/* A parsed STATUS line of one server. */
struct bench_status {
    char name[REGISTRY_NAME_MAX + 1];
    char role[16];
    char leader[REGISTRY_NAME_MAX + 1];
    long long term, commit, applied, last;
};

/* A temp dir with a registry of n servers on free 127.0.0.1 ports; nothing started. */
int bench_cluster_create(struct bench_cluster *c, int n, const char *server_bin, char *err,
                         size_t errlen);
/* A running cluster described by a registry file (not ours: never started or killed). */
int bench_cluster_attach(struct bench_cluster *c, const char *registry_path, char *err,
                         size_t errlen);
int bench_cluster_start_node(struct bench_cluster *c, int i);
int bench_cluster_start_all(struct bench_cluster *c);
/* kill -9 of node i, and reap it. */
void bench_cluster_kill_node(struct bench_cluster *c, int i);
/* Kills every server we started and removes the temp dir. */
void bench_cluster_destroy(struct bench_cluster *c);
/* Prints the last lines of every server's output file to stderr. */
void bench_cluster_dump_logs(const struct bench_cluster *c, int lines);

/* STATUS of node i over one short connection. RK_OK or an RK_ERR_* code. */
int bench_status(const struct bench_cluster *c, int i, struct bench_status *st, int timeout_ms);
/* Polls until one server leads and a majority agree on it (all: every running or, for a
 * cluster not ours, every listed server agrees). Returns its index or -1 on timeout. */
int bench_wait_leader(const struct bench_cluster *c, bool all, int timeout_ms);
/* Polls node i until its applied index reaches index. RK_OK or RK_ERR_TIMEOUT. */
int bench_wait_applied(const struct bench_cluster *c, int i, long long index, int timeout_ms);

/* CPU use during a run, to tell a quiet machine from a shared one: whole-machine busy time,
 * this process (the generator), and the cluster's servers. */
struct bench_cpu {
    int64_t ns;                      /* CLOCK_MONOTONIC */
    double machine_busy_s, self_s, servers_s;
    double steal_s;                  /* time the hypervisor gave our vCPUs to others */
};
void bench_cpu_sample(const struct bench_cluster *c, struct bench_cpu *s);
/* Between two samples, in % of one core: the generator, the servers, and everything else
 * (other processes on the machine, kernel work not charged to ours: interrupts, softirqs,
 * and steal, which *steal_pct also gives alone). */
void bench_cpu_usage(const struct bench_cpu *a, const struct bench_cpu *b, double *gen_pct,
                     double *servers_pct, double *other_pct, double *steal_pct);

/* ---- load (bench_load.c) ---- */

struct bench_load_opts {
    const char *host;     /* where the clients connect (the leader) */
    uint16_t port;
    int clients;          /* one connection each */
    long ops;             /* total measured operations */
    double max_seconds;   /* stop earlier than ops when this passes (0: no limit) */
    int value_size;
    int keys;
    double read_ratio;    /* share of GETs, 0..1 */
    bool sequential_keys; /* op i uses key i % keys (for prefill), else uniform random */
    int warmup;           /* unmeasured ops per client before the clock starts */
    unsigned seed;
    const char *key_prefix;
    bool sessions;        /* each client opens a server-side session (REGISTER) first */
    int loop_threads;     /* 0: a thread per client; N: N epoll threads share them */
    const char *etcd_path; /* non-NULL: the target is etcd's gateway (puts to this path,
                              e.g. "/v3/kv/put"; event loop only, writes only) */
};

struct bench_result {
    long ops;             /* acknowledged, measured operations */
    long errors;          /* ERR / REDIRECT replies and broken connections */
    double seconds;
    double ops_per_s;
    double p50_ms, p90_ms, p99_ms, p999_ms, max_ms;
    double gen_cpu_pct, server_cpu_pct, other_cpu_pct; /* % of one core, see bench_cpu */
    double steal_cpu_pct;                             /* the part of other that is steal */
    char first_failure[BENCH_FAILURE_LEN];            /* what the first error was */
    long long new_terms;  /* terms begun during the run (> 0: there was an election) */
};

/* Runs closed-loop load: each client sends one request and waits for its answer, on a
 * thread of its own or on one of o->loop_threads event loops. */
int bench_run_load(const struct bench_load_opts *o, struct bench_result *r, char *err,
                   size_t errlen);

/* A raw client connection (HELLO sent) with a reusable receive buffer. */
struct bench_conn {
    int fd;
    uint8_t *buf;
    size_t have, cap;
    size_t consumed; /* bytes of the last answer, dropped at the next call */
};
int bench_conn_open(struct bench_conn *c, const char *host, uint16_t port, int connect_ms,
                    int io_ms, char *err, size_t errlen);
void bench_conn_close(struct bench_conn *c);
/* Sends one encoded CLIENT_REQ frame and reads the answer: returns its status (PROTO_ST_*)
 * or a negative RK_ERR_* code. resp (if not NULL) gets the decoded answer, which points into
 * c->buf until the next call. */
int bench_conn_call(struct bench_conn *c, const uint8_t *req, size_t len,
                    struct proto_client_resp *resp);

/* ---- etcd's JSON gateway (bench_http.c) ---- */

/* Appends an HTTP/1.1 request putting key := val through etcd's gateway at path
 * (e.g. "/v3/kv/put"), as ../shared/bench/kvload.py's raw mode sends it. */
int bench_http_encode_put(struct proto_buf *b, const char *path, const char *key,
                          size_t key_len, const char *val, size_t val_len);
/* Parses the HTTP answer at the start of buf[0..have): RK_OK with *consumed (its bytes),
 * *status (the HTTP code) and *put_ok (200 with etcd's {"header"... body); RK_ERR_AGAIN
 * if it is not all there yet; RK_ERR_PROTO if it is not an answer we can read. */
int bench_http_parse_answer(const uint8_t *buf, size_t have, size_t *consumed, int *status,
                            bool *put_ok);

/* ---- the ceiling server (bench_ceiling.c) ---- */

/* Starts a server on 127.0.0.1 that answers every CLIENT_REQ at once (SET/DELETE: OK, GET:
 * a value_size-byte value, STATUS: a leader's status line), with no Raft and no disk, one
 * thread per connection like raft_server. It is this program run again as
 * `raft_bench --serve-ceiling FD VALUE_SIZE`. *port gets its port; returns the pid or -1. */
pid_t bench_ceiling_start(int value_size, uint16_t *port, char *err, size_t errlen);
#define BENCH_CEILING_OPTION "--serve-ceiling"
#define BENCH_CEILING_FD 3
/* The ceiling server's accept loop on listen_fd; returns only on an accept error. */
int bench_ceiling_serve(int listen_fd, int value_size);

/* ---- failover (bench_failover.c) ---- */

struct bench_failover_result {
    int trials;                    /* kills done */
    int failed;                    /* trials with no acknowledged write within the limit */
    double probe_ms[64];           /* per trial: kill to first ack, fresh-connection prober */
    double session_ms[64];         /* the same through client/session.c */
    double probe_median_ms, probe_max_ms, session_median_ms, session_max_ms;
};

/* kill -9 of the leader `trials` times (restarting it and waiting until the cluster is
 * whole again each time); measures kill -> first acknowledged write. */
int bench_failover(struct bench_cluster *c, int trials, struct bench_failover_result *r,
                   char *err, size_t errlen);

/* Median of n values (sorted in place). */
double bench_median(double *v, int n);

/* ---- the snapshot targets of issue 6 (bench_snapshot.c) ---- */

struct bench_snapshot_opts {
    const char *server_bin;
    const char *server_args[BENCH_MAX_SERVER_ARGS]; /* extra raft_server options */
    int n_server_args;
    const char *server_args_text; /* the same, for the report ("none" if none) */
    int nodes, clients, keys, value_size;
    double steady_seconds;        /* the overwrite phase of target 4 */
    const char *out_path;         /* the section goes there too ("-": stdout only) */
    const char *command;          /* the command line, for the report */
};

/* Writes o->keys keys into a new cluster, overwrites random ones for steady_seconds, restarts a
 * follower and the leader, wipes and restarts a follower, and prints (and saves into
 * out_path, replacing an earlier such section) a Markdown section: disk use against live
 * data, restart to serving, the wiped follower's catch-up, write latency during snapshots.
 * RK_OK when every measurement was made (whether or not the targets were met). */
int bench_snapshot_targets(const struct bench_snapshot_opts *o);

#endif
