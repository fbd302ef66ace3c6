/* tools/bench.h - the parts of raft_bench, the load generator of `make bench` and
 * `make bench-etcd`: closed-loop load with latency statistics (bench_load.c), CPU use
 * (bench_cpu.c), the no-Raft ceiling server (bench_ceiling.c), leader failover
 * (bench_failover.c), the standard matrix and its Markdown (bench_matrix.c), etcd beside
 * it (bench_etcd.c, bench_http.c), the snapshot targets (bench_snapshot.c) and the
 * membership targets (bench_membership.c, with writers through client/session.c in
 * bench_writers.c). Clusters of raft_server come from common/cluster_ctl. */
#ifndef RK_BENCH_H
#define RK_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "../common/cluster_ctl/cluster_ctl.h"
#include "../common/proto.h"

#define BENCH_ERR_LEN 512
#define BENCH_FAILURE_LEN 160
#define BENCH_LEADER_WAIT_MS 20000
#define BENCH_MAX_TRIALS 64

/* The command line (raft_bench.c). */
/* What the measured operations are: sets (and gets, by read_ratio); a compare-and-set
 * per op, each client on a key of its own, comparing the revision its last answer gave
 * (a FAILED answer counts: it is definite); or a SCAN page of up to 100 keys of the
 * key_prefix (the keys prefilled). */
/* BENCH_OP_SETEX (no --op name: --expiry-targets' load): a setex of each key, with the
 * time to live left until expire_at_ms, so that every key expires around then. */
enum bench_op_kind { BENCH_OP_SET = 0, BENCH_OP_CAS, BENCH_OP_SCAN, BENCH_OP_SETEX };
#define BENCH_SCAN_PAGE 100

struct bench_options {
    int nodes, clients, value_size, keys, failover;
    int matrix_writes;   /* --matrix-writes N: only the write rows of N nodes */
    int loop_threads;    /* 0: a thread per client; N: --engine loop with N loops */
    int etcd_trials;     /* --compare-etcd: kills of etcd's leader */
    long ops;
    double read_ratio, max_seconds;
    enum bench_op_kind op_kind; /* --op set|cas|scan */
    const char *registry, *server_bin, *out_path, *perf_path, *etcd_url, *pidfile;
    const char *fault_server_bin; /* --membership-targets: tests/raft_server_faults */
    bool ceiling_only, no_ceiling, matrix, quick, no_sessions, snapshot_targets;
    bool membership_targets;
    bool coord_targets;  /* --coord-targets */
    bool expiry_targets; /* --expiry-targets */
    bool watch_targets;  /* --watch-targets */
    bool compare_etcd;
    bool clients_set, keys_set, max_seconds_set, out_set; /* given on the command line */
    unsigned seed;
    const char *server_args[CTL_MAX_SERVER_ARGS];
    int n_server_args;
};

/* ---- CPU use, and waiting for a quiet machine (bench_cpu.c) ---- */

/* CPU use during a run, to tell a quiet machine from a shared one: whole-machine busy time,
 * this process (the generator), and the servers'. */
struct bench_cpu {
    uint64_t ns;                     /* CLOCK_MONOTONIC */
    double machine_busy_s, self_s, servers_s;
    double steal_s;                  /* time the hypervisor gave our vCPUs to others */
};
void bench_cpu_sample(const pid_t *servers, int n, struct bench_cpu *s);
/* Between two samples, in % of one core: the generator, the servers, and everything else
 * (other processes on the machine, kernel work not charged to ours: interrupts, softirqs,
 * and steal, which *steal_pct also gives alone). */
void bench_cpu_usage(const struct bench_cpu *a, const struct bench_cpu *b, double *gen_pct,
                     double *servers_pct, double *other_pct, double *steal_pct);
/* sync(2) (what one phase left dirty would slow the next one's fsyncs), then waits until
 * the machine's CPUs were less than busy_pct busy over 2 s, or max_wait_s passed. Says
 * which on stderr; true if quiet. */
bool bench_wait_quiet(double busy_pct, int max_wait_s);

/* ---- load (bench_load.c) ---- */

struct bench_load_opts {
    const char *host;     /* where the clients connect (the leader) */
    enum bench_op_kind op_kind;
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
    bool retry;           /* threads: a failed write is retried until acknowledged (or
                             too many fail in a row), so every op_no is written once */
    bool timeline;        /* keep each operation's start (CLOCK_REALTIME) beside its
                             latency, in bench_result.timeline */
    const char *progress; /* threads: name the run in a progress line every 15 s */
    uint64_t expire_at_ms; /* BENCH_OP_SETEX: when (CLOCK_MONOTONIC ms) the keys expire */
};

/* One acknowledged operation. */
struct bench_op {
    int64_t start_ns; /* CLOCK_REALTIME, to line up with the servers' log lines */
    int64_t lat_ns;
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
    struct bench_op *timeline; /* o->timeline: every acknowledged operation (free it) */
    int64_t t0_ns, t1_ns;      /* o->timeline: the run's start and end, CLOCK_REALTIME */
};

/* CLOCK_REALTIME in ns (the servers' log lines carry wall-clock times). */
int64_t bench_real_ns(void);
/* Sorts the n latencies lat (ns) and fills r's count, rate (from r->seconds) and
 * percentiles (ms, nearest rank). */
void bench_latency_stats(int64_t *lat, size_t n, struct bench_result *r);
/* Runs closed-loop load: each client sends one request and waits for its answer, on a
 * thread of its own or on one of o->loop_threads event loops. */
int bench_run_load(const struct bench_load_opts *o, struct bench_result *r, char *err,
                   size_t errlen);

/* A raw client connection (HELLO sent) with a reusable receive buffer. */
struct bench_conn {
    int fd;
    uint8_t *buf;
    size_t have, cap;
    size_t consumed; /* bytes of the last frame, dropped at the next read */
};
int bench_conn_open(struct bench_conn *c, const char *host, uint16_t port, int connect_ms,
                    int io_ms, char *err, size_t errlen);
void bench_conn_close(struct bench_conn *c);
/* Room for need bytes in c->buf. RK_OK or RK_ERR_NOMEM. */
int bench_conn_reserve(struct bench_conn *c, size_t need);
/* If c->buf starts with one whole frame: RK_OK with its payload length (c->buf + 4,
 * *len bytes; c->consumed covers it); RK_ERR_AGAIN if not all of it is there;
 * RK_ERR_PROTO for a length no server sends. */
int bench_conn_parse_frame(struct bench_conn *c, uint32_t *len);
/* Reads until c->buf holds one whole frame (after dropping the one before): its payload
 * is c->buf + 4, *len bytes, until the next read. */
int bench_conn_read_frame(struct bench_conn *c, uint32_t *len);
/* Sends one encoded CLIENT_REQ frame and reads the answer: returns its status (PROTO_ST_*)
 * or a negative RK_ERR_* code. resp (if not NULL) gets the decoded answer, which points into
 * c->buf until the next call. */
int bench_conn_call(struct bench_conn *c, const uint8_t *req, size_t len,
                    struct proto_client_resp *resp);
/* One SET of key to a value_size-byte value on a fresh connection to host:port: the
 * answer's status or a negative RK_ERR_* code; a redirect's leader in *resp_leader (may be
 * NULL). */
int bench_set_once(const char *host, uint16_t port, const char *key, int value_size,
                   int io_ms, char *leader, size_t leaderlen);
/* Median of n values (sorted in place). */
double bench_median(double *v, int n);

/* ---- etcd's JSON gateway (bench_http.c) ---- */

/* An etcd answer, parsed. */
struct bench_http_answer {
    size_t consumed;  /* its bytes, head and body */
    int status;       /* the HTTP code */
    const char *body; /* points into the buffer parsed */
    size_t body_len;
};

/* Appends an HTTP/1.1 POST of body (JSON) to path on etcd's gateway. */
int bench_http_encode_post(struct proto_buf *b, const char *path, const char *body,
                           size_t body_len);
/* Appends the POST putting key := val through etcd's gateway at path (e.g. "/v3/kv/put"):
 * {"key":"<base64>","value":"<base64>"}. */
int bench_http_encode_put(struct proto_buf *b, const char *path, const char *key,
                          size_t key_len, const char *val, size_t val_len);
/* Parses the HTTP answer at the start of buf[0..have): RK_OK with *a; RK_ERR_AGAIN if it is
 * not all there yet; RK_ERR_PROTO if it is not an answer we can read. */
int bench_http_parse_answer(const uint8_t *buf, size_t have, struct bench_http_answer *a);
/* A put etcd acknowledged: 200 with etcd's {"header"... body. */
bool bench_http_put_ok(const struct bench_http_answer *a);
/* The string value of "name":"..." in the JSON body[0..len) into out; false if there is
 * none or it does not fit. */
bool bench_json_string(const char *body, size_t len, const char *name, char *out,
                       size_t outlen);
/* One request on a fresh connection to host:port, bounded by timeout_ms: RK_OK with the
 * answer in *a, read into buf[0..cap) (a->body points there). */
int bench_http_call(const char *host, uint16_t port, const struct proto_buf *req,
                    int timeout_ms, uint8_t *buf, size_t cap, struct bench_http_answer *a);

/* ---- the ceiling server (bench_ceiling.c) ---- */

/* Starts a server on 127.0.0.1 that answers every CLIENT_REQ at once (SET/DELETE: OK, GET:
 * a value_size-byte value, STATUS: a leader's status line), with no Raft and no disk, one
 * thread per connection like raft_server. It is this program run again as
 * `raft_bench --serve-ceiling FD VALUE_SIZE`. *port gets its port; returns the pid or -1. */
pid_t bench_ceiling_start(int value_size, uint16_t *port, char *err, size_t errlen);
#define BENCH_CEILING_OPTION "--serve-ceiling"
/* The ceiling server's accept loop on listen_fd; returns only on an accept error. */
int bench_ceiling_serve(int listen_fd, int value_size);

/* ---- failover (bench_probe.c, bench_failover.c) ---- */

/* Where probers write: raft-kv servers, or etcd members (HTTP puts). */
struct bench_target {
    char host[REGISTRY_HOST_MAX + 1]; /* an IPv4 address */
    uint16_t port;
    bool etcd;
};

/* One prober thread per target: a write on a fresh connection every 10 ms, each given
 * 2 s, not waiting for those still out. */
struct bench_probers;
struct bench_probers *bench_probers_start(const struct bench_target *t, int n);
/* The kill happens now: only acks of writes sent from now on count. */
void bench_probers_arm(struct bench_probers *p);
/* Milliseconds from the arming to the first acknowledged write sent after it, waiting at
 * most timeout_ms; -1 if none. */
double bench_probers_wait(struct bench_probers *p, int timeout_ms);
void bench_probers_stop(struct bench_probers *p);

struct bench_failover_result {
    int trials;                    /* kills done */
    int failed;                    /* trials with no acknowledged write within the limit */
    double probe_ms[BENCH_MAX_TRIALS];   /* per trial: kill to first ack, probers */
    double session_ms[BENCH_MAX_TRIALS]; /* the same through client/session.c (raft-kv) */
    double probe_median_ms, probe_max_ms, session_median_ms, session_max_ms;
};

/* kill -9 of the leader `trials` times (restarting it and waiting until the cluster is
 * whole again each time); measures kill -> first acknowledged write. */
int bench_failover(struct ctl_cluster *c, int trials, struct bench_failover_result *r,
                   char *err, size_t errlen);
/* Median and max over the values >= 0 of ms[0..n). */
void bench_failover_summary(const double *ms, int n, double *median, double *max);

/* ---- the matrix and the comparison with etcd (bench_matrix.c, bench_etcd.c) ---- */

#define BENCH_MATRIX_CLIENTS 4
extern const int bench_matrix_clients[BENCH_MATRIX_CLIENTS]; /* 1, 8, 32, 64 */

/* One row of the matrix: a run on `nodes` servers. */
struct bench_row {
    int nodes, clients;
    double reads;
    struct bench_result r;
    int rc;
};

/* When and where a report's runs ran. */
struct bench_run_info {
    time_t started;
    uint64_t t0_ms;
    double seconds;
    double load_before[3], load_after[3];
};
void bench_run_begin(struct bench_run_info *info);
void bench_run_end(struct bench_run_info *info);
/* "Run DATE by `tools/raft_bench COMMAND` in N s on N CPUs (...), Linux ..." and the load
 * averages. */
void bench_write_run_line(FILE *f, const struct bench_run_info *info, const char *command);
/* " **disturbed**" for a run with much steal, else "". */
const char *bench_disturbed(const struct bench_result *r);
/* write(f, arg) to stdout and, unless path is "-", into path. Returns the exit status. */
int bench_write_report(const char *path, void (*write)(FILE *f, void *arg), void *arg);
/* A section of a report file: write(f, arg) to stdout and, unless path is "-", into path
 * in place of the section that starts with the line `mark` (up to the next "## " heading)
 * or, if there is none, at the end; the rest of the file is kept. RK_OK or RK_ERR_IO. */
int bench_save_section(const char *path, const char *mark, void (*write)(FILE *f, void *arg),
                       void *arg);

/* The matrix's rows on a new cluster of `nodes` servers (each client count; with reads,
 * also 90% reads) into rows; returns how many. */
int bench_matrix_rows(const struct bench_options *o, int nodes, bool reads,
                      struct bench_row *rows);
/* Failover on a new 5-node cluster: o->failover kills (else 10, or 3 --quick). */
int bench_failover_run(const struct bench_options *o, struct bench_failover_result *r,
                       char *err, size_t errlen);

/* raft_bench --matrix / --matrix-writes N: writes Markdown to stdout and o->out_path.
 * Returns the exit status. */
int bench_matrix(const struct bench_options *o);
/* raft_bench --compare-etcd: etcd and raft-kv back to back, side by side. */
int bench_compare_etcd(const struct bench_options *o);
/* raft_bench --etcd URL: the closed loop against a running etcd. */
int bench_etcd_load(const struct bench_options *o);
/* The load of one run as the command line asks, to host:port. */
struct bench_load_opts bench_load_opts_of(const struct bench_options *o, const char *host,
                                          uint16_t port);
/* bench_run_load with the CPU use of the generator, the servers (pids) and the rest of the
 * machine, and (c not NULL) the terms begun meanwhile. */
int bench_measured_load(struct ctl_cluster *c, const pid_t *pids, int n_pids,
                        const struct bench_load_opts *lo, struct bench_result *r, char *err,
                        size_t errlen);
/* A cluster of `nodes` servers started as o asks (or o->registry's), and its leader's index;
 * -1 with err on failure (*c is then NULL or to be destroyed). */
int bench_open_cluster(const struct bench_options *o, int nodes, struct ctl_cluster **c,
                       char *err, size_t errlen);
/* Writes every key of o once through the leader at host:port, so that reads find values. */
int bench_prefill(const struct bench_options *o, const char *host, uint16_t port, char *err,
                  size_t errlen);
/* The load of o against the ceiling server (bench_ceiling.c). */
int bench_run_ceiling(const struct bench_options *o, struct bench_result *r, char *err,
                      size_t errlen);
/* One line: rate, latency percentiles, errors, CPU. */
void bench_print_result(FILE *f, const char *what, const struct bench_result *r);

/* ---- the snapshot targets of issue 6 (bench_snapshot.c) ---- */

/* Writes o->keys keys into a new cluster, overwrites random ones for a while, restarts a
 * follower and the leader, wipes and restarts a follower, and prints (and saves into
 * o->out_path, replacing an earlier such section) a Markdown section: disk use against
 * live data, restart to serving, the wiped follower's catch-up, write latency during
 * snapshots. command is the command line, for the report. Returns the exit status: 0 when
 * every measurement was made (whether or not the targets were met). */
int bench_snapshot_targets(const struct bench_options *o, const char *command);

/* ---- closed-loop writers through client/session.c (bench_writers.c) ---- */

#define BENCH_WRITERS_MAX 256

struct bench_writers_opts {
    const char *host;          /* the server tried first (the leader); NULL: none */
    uint16_t port;
    const char *registry_path; /* the servers to fall back on */
    int clients;               /* threads, one client session each */
    int keys, value_size;      /* random keys key_prefix%08d of the key space */
    const char *key_prefix;
    int timeout_ms;            /* how long one write may retry before it fails */
    double max_seconds;        /* the writers stop by themselves after this */
};

/* What the writers saw in a window [from, to] (CLOCK_REALTIME ns). */
struct bench_window {
    struct bench_result r;  /* latency of every acknowledged write in flight at some point
                               of the window; r.seconds is the window's length */
    long acks;              /* acknowledgements inside the window */
    double acks_per_s;      /* of them, per second */
    double longest_gap_ms;  /* the longest time between two acknowledgements inside it */
    int64_t first_ack_ns;   /* the first acknowledgement inside it (0: none) */
    long failed;            /* writes that failed inside it (the first 256 per client) */
    int64_t first_failure_ns;
    char first_failure[BENCH_FAILURE_LEN];
};

struct bench_writers;
/* Starts o->clients writer threads; NULL with err on failure. */
struct bench_writers *bench_writers_start(const struct bench_writers_opts *o, char *err,
                                          size_t errlen);
long bench_writers_acked(const struct bench_writers *ws);
/* Waits until `more` further writes are acknowledged; false after timeout_ms. */
bool bench_writers_wait_acks(const struct bench_writers *ws, long more, int timeout_ms);
/* Stops the writers (each finishes its write in flight) and joins them. */
void bench_writers_stop(struct bench_writers *ws);
void bench_writers_free(struct bench_writers *ws);
/* After bench_writers_stop: the window [from, to]. RK_OK or RK_ERR_NOMEM. */
int bench_writers_window(const struct bench_writers *ws, int64_t from, int64_t to,
                         struct bench_window *out);
/* Every failed write, and the first one's description into first. */
long bench_writers_failed(const struct bench_writers *ws, char *first, size_t len);
/* Why a writer stopped early (no session, out of memory), or NULL. */
const char *bench_writers_error(const struct bench_writers *ws);

/* ---- the membership targets of issue 15 (bench_membership.c) ---- */

/* A rolling restart of 5 servers by SIGTERM under writes, a server added to a cluster
 * holding o->keys keys (1,000,000 by default) under writes, and a leader's disk stall
 * (the test-only server o->fault_server_bin); prints (and saves into o->out_path,
 * replacing an earlier such section) a Markdown section. Returns the exit status: 0 when
 * every measurement was made (whether or not the targets were met). */
int bench_membership_targets(const struct bench_options *o, const char *command);

/* ---- issue 16's measurements (bench_coord.c) ---- */

/* On 3 nodes: cas beside set at 1 and 64 clients, and a scan page of 100 keys from a
 * store of o->keys keys (1,000,000 by default; 50,000 with --quick); prints (and saves
 * into o->out_path, replacing an earlier such section) a Markdown section. Returns 0
 * when every row was measured. */
int bench_coord_targets(const struct bench_options *o, const char *command);

/* ---- expiring keys (bench_expiry.c) ---- */

/* On 3 nodes: o->keys keys (100,000 by default) written with setex so that they all
 * expire in the same second, under 1 and then 64 writers through client sessions: writes
 * per second and latency before, while and after the keys go, how long until all are
 * gone, and the same writers with nothing expiring; prints (and saves into o->out_path,
 * replacing an earlier such section) a Markdown section. Returns 0 when every row was
 * measured. */
int bench_expiry_targets(const struct bench_options *o, const char *command);

/* ---- watch (bench_watch.c) ---- */

/* Issue 17's measurements on 3 nodes: 64 writers with 0, 100 (on the leader), 100 (over
 * every server) and again 0 watchers on their prefix: throughput, whether every watcher
 * saw every write, the delay from the writer's OK to delivery; then on a fresh cluster
 * the leader's memory and CPU with ~10,000 idle watchers, and 1 and 64 writers with and
 * without them. Prints (and saves into o->out_path, replacing an earlier such section) a
 * Markdown section. Returns 0 when every row was measured. */
int bench_watch_targets(const struct bench_options *o, const char *command);

#endif
