/* tests/harness.h - runs real raft_server processes for the integration and stress tests:
 * a temp dir with a registry, start/stop/kill/pause/wipe of each server, status polling,
 * log tails on failure, running the client program with captured output, and (in
 * tests/harness_net.c) clusters with one network namespace per server, for partitions. */
#ifndef RK_HARNESS_H
#define RK_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../client/session.h"

#define HARNESS_MAX_SERVERS 9
#define HARNESS_DIR_MAX 128

struct harness_server {
    char name[16];  /* s1 .. sN */
    char host[32];  /* its address: 127.0.0.1, or its own in its network namespace */
    uint16_t port;
    pid_t pid;      /* 0 when not running */
    bool paused;    /* SIGSTOP'ed and not yet SIGCONT'ed */
};

struct harness_netns; /* the namespaces, bridge and cuts of a cluster (harness_net.c) */

/* A cluster of n servers on 127.0.0.1 (or each in its own network namespace) sharing one
 * temp dir and one process group. Servers are started from the calling thread and get
 * PR_SET_PDEATHSIG(SIGKILL): start them only from a thread that outlives them (the test's
 * main thread). */
struct harness_cluster {
    char dir[HARNESS_DIR_MAX];
    char registry_path[HARNESS_DIR_MAX + 32];
    int n;
    struct harness_server servers[HARNESS_MAX_SERVERS];
    pid_t pgid;            /* the servers' process group, 0 when none runs */
    int election_min_ms;   /* 0 = the server's default; set before starting */
    int election_max_ms;
    int heartbeat_ms;
    int unexpected_exits;  /* servers found dead that the harness did not stop */
    pid_t janitor;         /* removes dir (and net) if this process dies without destroying c */
    int janitor_fd;        /* the write end of its pipe; closing it releases it */
    struct harness_netns *net; /* NULL: every server on 127.0.0.1 */
};

/* What a server's STATUS line says:
 * "name=s1 role=leader term=3 leader=s1 commit=7 applied=7 last=7". */
struct harness_status {
    char name[64];
    char role[16];      /* leader | follower | candidate */
    long long term;
    char leader[64];    /* a server name or "none" */
    long long commit, applied, last;
};

/* CLOCK_MONOTONIC in milliseconds, and a sleep that resumes after signals. */
int64_t harness_now_ms(void);
void harness_sleep_ms(int ms);
/* $RK_SERVER_BIN or ./server/raft_server; $RK_CLIENT_BIN or ./client/raft_client. */
const char *harness_server_bin(void);
const char *harness_client_bin(void);

/* Makes the temp dir, picks n free ports and writes server_registry.txt. No server is
 * started. Returns NULL with err set on failure. */
struct harness_cluster *harness_cluster_new(int n, char *err, size_t errlen);
/* Starts every server that is not running. */
int harness_cluster_start_all(struct harness_cluster *c);
/* SIGKILLs the process group, reaps every server, removes the dir (kept if
 * $RK_KEEP_DIR is set) and frees c. NULL is allowed. */
void harness_cluster_destroy(struct harness_cluster *c);

/* Process control of server i (0-based). Each returns RK_OK or an RK_ERR_* code. */
int harness_start(struct harness_cluster *c, int i);
/* SIGTERM, then waits up to 5 s; RK_OK only for a clean exit (status 0). A server that
 * does not exit in time is SIGKILLed (RK_ERR_TIMEOUT). */
int harness_stop(struct harness_cluster *c, int i);
int harness_kill(struct harness_cluster *c, int i);      /* SIGKILL and reap */
int harness_pause(struct harness_cluster *c, int i);     /* SIGSTOP */
int harness_resume(struct harness_cluster *c, int i);    /* SIGCONT */
int harness_restart(struct harness_cluster *c, int i);   /* stop (clean), then start */
/* Deletes NAME_log.txt and NAME_state; the server must not be running. */
int harness_wipe(struct harness_cluster *c, int i);
/* True if server i runs; reaps (and counts in unexpected_exits) one that died alone. */
bool harness_is_running(struct harness_cluster *c, int i);
/* Server index of a name, or -1. */
int harness_index_of(const struct harness_cluster *c, const char *name);
/* DIR/NAME<suffix>, e.g. suffix "_log.txt", ".err". */
void harness_server_path(const struct harness_cluster *c, int i, const char *suffix,
                         char *out, size_t outlen);

/* Asks server i for its STATUS over one raw connection (bounded by timeout_ms) and
 * parses the line. RK_OK, or an RK_ERR_* code (RK_ERR_PROTO: unparseable line). */
int harness_status(struct harness_cluster *c, int i, struct harness_status *out,
                   int timeout_ms);
/* Polls the live, unpaused servers until exactly one says role=leader and a majority of
 * the cluster (leader included) report that leader's name and term. Returns its index,
 * or -1 when timeout_ms passes first. If st is not NULL it gets the leader's status. */
int harness_wait_leader(struct harness_cluster *c, int timeout_ms, struct harness_status *st);
/* Polls until every live, unpaused server names the same leader in the same term.
 * Returns the leader's index or -1 on timeout. */
int harness_wait_agreement(struct harness_cluster *c, int timeout_ms);
/* Polls server i until its commit index is >= index. RK_OK or RK_ERR_TIMEOUT. */
int harness_wait_commit(struct harness_cluster *c, int i, long long index, int timeout_ms);

/* A session that tries server i first (i < 0: none) and, if use_registry, falls back on
 * the cluster's registry. NULL on failure. */
struct client_session *harness_session(struct harness_cluster *c, int i, bool use_registry,
                                       int timeout_ms);
/* One command through a session. Returns the reply status (PROTO_ST_*) or, when the
 * call itself failed, the negative RK_ERR_* code. A value is copied to val (NUL-terminated,
 * truncated to vallen-1) when val is not NULL. */
int harness_call(struct client_session *s, int op, const char *key, const char *val,
                 char *out, size_t outlen);

/* Number of lines in a file (-1 if it cannot be read). */
long harness_count_lines(const char *path);
/* Counts sanitizer reports (ASan, UBSan "runtime error:", TSan, LSan) in the servers'
 * NAME.err files and copies the first such line to first (may be NULL). */
int harness_sanitizer_reports(const struct harness_cluster *c, char *first, size_t firstlen);
/* Prints the last `lines` lines of every server's NAME.err to stderr. */
void harness_dump_logs(const struct harness_cluster *c, int lines);

/* ---- network namespaces (tests/harness_net.c) ----
 * Each server runs in its own namespace, at 10.77.X.(i+1) on a veth pair whose other end
 * is on a bridge in the root namespace (10.77.X.254), so the test's clients reach every
 * server; the registry holds those addresses. Needs root and iproute2's `ip`. Traffic
 * only ever goes to these namespaces. Names carry the creating pid; leftovers of dead
 * runs are removed at the next setup, and the janitor removes them if the test dies. */

/* Like harness_cluster_new, in namespaces. NULL with err = why it cannot be done (not
 * root, no `ip`, EPERM...): the caller may fall back on harness_cluster_new. */
struct harness_cluster *harness_cluster_new_netns(int n, char *err, size_t errlen);
/* Cuts (blackhole routes on both sides) or heals the link between servers i and j. */
int harness_net_cut(struct harness_cluster *c, int i, int j);
int harness_net_heal(struct harness_cluster *c, int i, int j);
bool harness_net_is_cut(const struct harness_cluster *c, int i, int j);
/* Takes server i's veth down (cut off from everyone, clients too) or up again. */
int harness_net_link(struct harness_cluster *c, int i, bool up);
/* Heals every cut and brings every link up. RK_OK if all of it worked. */
int harness_net_heal_all(struct harness_cluster *c);
/* For harness.c: allocate c->net (names, subnet) without touching the system; create
 * it all (sets each server's host); remove it (idempotent, also run by the janitor, so
 * it must not touch c->net's memory beyond reading it); free it. An fd of server i's
 * namespace for setns(2) (close it), or -1. */
int harness_net_alloc(struct harness_cluster *c, char *err, size_t errlen);
int harness_net_create(struct harness_cluster *c, char *err, size_t errlen);
void harness_net_remove(const struct harness_netns *net, bool quiet_exec);
void harness_net_free(struct harness_cluster *c);
int harness_net_open_ns(const struct harness_cluster *c, int i);

/* Runs argv (argv[0] is a path) with stdin_text on its stdin (NULL: /dev/null), its stdout
 * in out and its stderr in errout (each NUL-terminated, truncated), killing it after
 * timeout_ms. *exit_status gets the exit code, or 128+signal. RK_OK or RK_ERR_*. */
int harness_run(char *const argv[], const char *stdin_text, char *out, size_t outlen,
                char *errout, size_t errlen, int timeout_ms, int *exit_status);

/* Writes one raw frame (4-byte big-endian length + payload) to fd. */
int harness_send_frame(int fd, const void *payload, uint32_t len);

/* Prints the server logs and destroys the cluster, then fails the test. Check ends a
 * failed forked test with _exit(), so cleanup must happen before the failure. */
void harness_fail_cleanup(struct harness_cluster *c);
/* snprintf into out; a long message is cut. */
void harness_format(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define HARNESS_ASSERT(c, expr, fmt, ...)                                          \
    do {                                                                           \
        if (!(expr)) {                                                             \
            char harness_msg_[1024]; /* formatted before c is freed */             \
            harness_format(harness_msg_, sizeof(harness_msg_), "'%s' failed: " fmt, \
                           #expr, ##__VA_ARGS__);                                  \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, harness_msg_);      \
            harness_fail_cleanup(c);                                               \
            ck_abort_msg("%s", harness_msg_);                                      \
        }                                                                          \
    } while (0)

#endif
