/* common/cluster_ctl/cluster_ctl.h - control of local raft-kv clusters, shared by the tests'
 * harness (tests/harness.c) and the benchmark (tools/raft_bench); linked into neither
 * raft_server nor raft_client. A cluster is a temp dir with a registry of servers on free
 * 127.0.0.1 ports (cluster.c), whose raft_server processes it starts, stops, kills and
 * pauses, asks for STATUS and waits on (status.c). Underneath are the pieces other child
 * programs use too (etcd, the benchmark's ceiling server): fork+exec of a child that dies
 * with its parent (spawn.c), a janitor that removes a temp dir if this process dies
 * without doing it (janitor.c), and free ports (free_port.c). */
#ifndef RK_CLUSTER_CTL_H
#define RK_CLUSTER_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../registry.h"

#define CTL_MAX_SERVERS 9
#define CTL_MAX_SERVER_ARGS 16
#define CTL_DIR_MAX 128
#define CTL_PATH_MAX (CTL_DIR_MAX + 64)

/* ---- child processes (spawn.c) ---- */

/* How to run a program; start from CTL_SPAWN(argv): every fd -1, a new process group. */
struct ctl_spawn {
    char *const *argv; /* argv[0]: a path, or a name looked up in $PATH */
    int in_fd;         /* the child's stdin; -1: /dev/null */
    int out_fd;        /* its stdout; -1: this process's */
    int err_fd;        /* its stderr; -1: the same as stdout */
    pid_t pgid;        /* the process group to join; 0: a new one that the child leads */
    int netns_fd;      /* >= 0: setns(2) into this network namespace before exec */
    int pass_fd;       /* >= 0: given to the program as fd 3 */
};
#define CTL_SPAWN(args)                                                                 \
    ((struct ctl_spawn){ .argv = (args), .in_fd = -1, .out_fd = -1, .err_fd = -1,        \
                         .netns_fd = -1, .pass_fd = -1 })

/* Forks and execs s->argv. The child gets SIGKILL when the calling thread ends
 * (PR_SET_PDEATHSIG: start children from a thread that outlives them), runs in a process
 * group other than ours (a ^C reaches this process only), with no signal blocked, SIGPIPE
 * at its default and no descriptor of ours but those named. Returns the pid, or -1. */
pid_t ctl_spawn(const struct ctl_spawn *s);
/* Sends sig to pid (nothing if pid <= 0) and reaps it. */
void ctl_end(pid_t pid, int sig);
/* Waits up to ms for child pid to exit; true (with its wait status) once it has. */
bool ctl_wait_exit(pid_t pid, int ms, int *status);

/* ---- temp dirs and their janitor (janitor.c) ---- */

/* A process that waits for this one to end, then runs a hook and removes a dir. */
struct ctl_janitor {
    pid_t pid;
    int fd; /* the write end of its pipe: closed by our death, or told "done" */
};

/* Makes /tmp/rk_TAG_XXXXXX into dir. RK_OK, or RK_ERR_IO with err. */
int ctl_make_dir(char *dir, size_t len, const char *tag, char *err, size_t errlen);
/* Removes dir and everything in it, unless $RK_KEEP_DIR is set (not "" or "0": then it
 * says so on stderr). */
void ctl_remove_dir(const char *dir);
/* Forks the janitor of dir: if this process ends without ctl_janitor_dismiss, it waits
 * half a second (children that die with us go first), runs hook(arg) if hook is not NULL
 * (in the janitor: it may only read arg), and removes dir unless $RK_KEEP_DIR is set. On
 * failure j->pid is 0 and there is no janitor. */
void ctl_janitor_start(struct ctl_janitor *j, const char *dir, void (*hook)(void *arg),
                       void *arg);
/* We cleaned up ourselves: the janitor exits doing nothing, and is reaped. */
void ctl_janitor_dismiss(struct ctl_janitor *j);

/* ---- free ports (free_port.c) ---- */

/* Picks n different TCP ports of 127.0.0.1 that are free now: below the kernel's ephemeral
 * range where it can (a restarted server must be able to bind its port again, and an
 * ephemeral port may meanwhile become the source port of some outgoing connection), else
 * any the kernel gives. RK_OK, or RK_ERR_IO / RK_ERR_INVAL with the reason in err. */
int ctl_free_ports(uint16_t *ports, int n, char *err, size_t errlen);

/* ---- a cluster of raft_server processes (cluster.c) ---- */

struct ctl_cluster;

struct ctl_server {
    char name[REGISTRY_NAME_MAX + 1]; /* s1 .. sN, or a registry's */
    char host[REGISTRY_HOST_MAX + 1]; /* 127.0.0.1, or as the registry or ext say */
    uint16_t port;
    pid_t pid;   /* 0 when not running (always, for a cluster that is not ours) */
    bool paused; /* SIGSTOP'ed and not yet SIGCONT'ed */
    bool join;   /* started with --join (a server added with ctl_add_spare) */
    bool voter;  /* counts toward the majority ctl_wait_leader looks for: the registry's
                    servers; a spare once the test made it a voter (ctl_set_voter) */
};

/* What a caller adds to a cluster: the tests put each server in a network namespace. */
struct ctl_ext {
    void *arg;
    /* Makes what the servers need and sets their hosts and ports (instead of 127.0.0.1
     * and free ports). RK_OK, or an RK_ERR_* code with err. */
    int (*place)(void *arg, struct ctl_cluster *c, char *err, size_t errlen);
    /* An fd of the network namespace server i is started in (closed after), or -1. */
    int (*netns_fd)(void *arg, int i);
    /* Removes what the caller made; also run by the janitor (so it only reads arg). */
    void (*remove)(void *arg);
    void (*release)(void *arg); /* frees arg */
};

/* A cluster of n servers that share a temp dir and one process group. */
struct ctl_cluster {
    char dir[CTL_DIR_MAX]; /* "" for a cluster from a registry (not ours) */
    char registry_path[CTL_PATH_MAX];
    int n;
    struct ctl_server servers[CTL_MAX_SERVERS];
    bool owned;             /* we start and stop its servers */
    const char *server_bin; /* NULL: ctl_server_bin(), read at each start */
    int election_min_ms;    /* 0 = the server's default; set before starting */
    int election_max_ms;
    int heartbeat_ms;
    const char *server_args[CTL_MAX_SERVER_ARGS]; /* more options for every server */
    int n_server_args;
    pid_t pgid;            /* the servers' process group, 0 when none runs */
    int unexpected_exits;  /* servers found dead that we did not stop */
    struct ctl_janitor janitor;
    struct ctl_ext ext;
};

/* $RK_SERVER_BIN or ./server/raft_server. */
const char *ctl_server_bin(void);
/* Makes /tmp/rk_TAG_XXXXXX with its janitor, names servers s1..sN on 127.0.0.1 with free
 * ports (or where ext->place puts them) and writes server_registry.txt; starts nothing.
 * ext (may be NULL) is the cluster's from now on, also on failure. A cluster not destroyed
 * when the program exits is destroyed then. Returns NULL with err set on failure. */
struct ctl_cluster *ctl_cluster_new(int n, const char *tag, const struct ctl_ext *ext,
                                    char *err, size_t errlen);
/* A running cluster described by a registry file: queried, never started or killed. */
struct ctl_cluster *ctl_cluster_attach(const char *registry_path, char *err, size_t errlen);
/* Kills every server, undoes ext, removes the dir (kept if $RK_KEEP_DIR is set) and frees
 * c. NULL is allowed. */
void ctl_cluster_destroy(struct ctl_cluster *c);

/* A server more, not in the registry: s<N+1> on a free port, started with --join (it waits
 * to be added, Raft thesis §4.2.1). Its index, or -1 with err. */
int ctl_add_spare(struct ctl_cluster *c, char *err, size_t errlen);
/* Whether server i counts toward the majority of ctl_wait_leader (after an add or a
 * remove). */
void ctl_set_voter(struct ctl_cluster *c, int i, bool voter);

/* Process control of server i (0-based). Each returns RK_OK or an RK_ERR_* code. */
int ctl_start(struct ctl_cluster *c, int i);
int ctl_start_all(struct ctl_cluster *c); /* every server that is not running */
/* SIGTERM, then waits up to 5 s; RK_OK only for a clean exit (status 0). A server that
 * does not exit in time is SIGKILLed (RK_ERR_TIMEOUT). */
int ctl_stop(struct ctl_cluster *c, int i);
int ctl_kill(struct ctl_cluster *c, int i);    /* SIGKILL and reap */
int ctl_pause(struct ctl_cluster *c, int i);   /* SIGSTOP */
int ctl_resume(struct ctl_cluster *c, int i);  /* SIGCONT */
int ctl_restart(struct ctl_cluster *c, int i); /* stop (clean), then start */
/* Deletes the server's files (log, state, snapshot and its temporaries); it must not run. */
int ctl_wipe(struct ctl_cluster *c, int i);
/* True if server i runs (for a cluster not ours: always); reaps one that died alone and
 * counts it in unexpected_exits. */
bool ctl_is_running(struct ctl_cluster *c, int i);
/* Server index of a name, or -1. */
int ctl_index_of(const struct ctl_cluster *c, const char *name);
/* DIR/NAME<suffix>, e.g. suffix "_log.txt", ".err" (the server's stdout and stderr). */
void ctl_server_path(const struct ctl_cluster *c, int i, const char *suffix, char *out,
                     size_t outlen);

/* ---- STATUS and waiting (status.c) ---- */

/* A server's STATUS line: "name=s1 role=leader term=3 leader=s1 commit=7 applied=7
 * last=7 snapshot=0". */
struct ctl_status {
    char name[REGISTRY_NAME_MAX + 1];
    char role[16];                      /* leader | follower | candidate | learner */
    long long term;
    char leader[REGISTRY_NAME_MAX + 1]; /* a server name or "none" */
    long long commit, applied, last;
    long long snapshot;                 /* -1 if the line has none */
    long long voters;                   /* -1 if the line has none */
};

/* Parses a STATUS line (the seven fields before snapshot are required; unknown fields
 * are ignored). RK_OK or RK_ERR_PROTO. */
int ctl_status_parse(const char *line, struct ctl_status *st);
/* Asks server i for its STATUS over one connection bounded by timeout_ms. RK_OK, or an
 * RK_ERR_* code (RK_ERR_PROTO: an unparseable answer). */
int ctl_status_of(const struct ctl_cluster *c, int i, struct ctl_status *st, int timeout_ms);
/* Polls the running, unpaused servers until exactly one says role=leader and a majority of
 * the voters (ctl_server.voter; leader included) name it in its term. Returns its index, or -1 when
 * timeout_ms passes first; st (if not NULL) gets its status. */
int ctl_wait_leader(struct ctl_cluster *c, int timeout_ms, struct ctl_status *st);
/* Polls until every running, unpaused server names the same leader in the same term, and
 * that server says it leads. Returns its index, or -1 on timeout. */
int ctl_wait_agreement(struct ctl_cluster *c, int timeout_ms);
/* Polls server i until its commit (or applied) index is >= index. RK_OK or RK_ERR_TIMEOUT. */
int ctl_wait_commit(const struct ctl_cluster *c, int i, long long index, int timeout_ms);
int ctl_wait_applied(const struct ctl_cluster *c, int i, long long index, int timeout_ms);
/* Prints the last `lines` lines of every server's NAME.err to stderr. */
void ctl_dump_logs(const struct ctl_cluster *c, int lines);

#endif
