/* server/node/node.h - the threaded server around the Raft core: one mutex (mu) guards the
 * core, the key-value map, the client waiters and the outgoing frame queues; threads
 * (io, timer, one replicator per peer, listener, connections) meet through condition variables. */
#ifndef RK_NODE_H
#define RK_NODE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../common/proto.h"
#include "../../common/registry.h"
#include "../core/raft.h"

struct client_loop;
struct kv;
struct snapshot_meta;
struct snapshot_paths;
struct storage;

/* A client request waiting for its entry to be applied (write) or for a ReadIndex
 * answer plus applied >= that index (read). Lives on the waiting thread's stack. */
enum node_wait_kind { NODE_WAIT_WRITE, NODE_WAIT_READ };

struct node_waiter;

/* How a waiter learns that its result is final: by default its own condition variable
 * (cond); with fn set, fn(ctx, w) is called instead, under mu (the client loop queues it
 * and wakes its thread). */
struct node_waiter_notify {
    void (*fn)(void *ctx, struct node_waiter *w);
    void *ctx;
};

struct node_waiter {
    struct node_waiter *prev, *next;
    enum node_wait_kind kind;
    raft_index_t index;  /* write: the entry's index; read: the read index once answered */
    raft_term_t term;    /* write: the entry's term */
    uint64_t read_id;    /* read: the id given to raft_read_index */
    bool answered;       /* read: the ReadIndex answer arrived (ok) */
    bool done;           /* the result below is final */
    int result;          /* RK_OK, RK_ERR_LOST (write), RK_ERR_NOTLEADER (read) */
    int kv_result;       /* write: what kv_apply returned (KV_APPLIED, KV_ABSENT,
                            KV_SESSION_EXPIRED, KV_STALE) */
    pthread_cond_t cond; /* signalled when done, or on shutdown: only this waiter wakes
                            (set up only when notify.fn is NULL) */
    struct node_waiter_notify notify;
    struct node_waiter *done_next; /* for notify.fn's own list */
};

/* One client request being served: the decoded request (its key and value point into
 * the caller's buffer, which must stay put until it is finished) and its waiter. */
struct node_request {
    struct proto_client_req req;
    struct node_waiter w;
    bool pending;        /* waiting for commit / ReadIndex: node_client_finish answers */
};

/* One queued message for a peer; the replicator encodes it outside the lock. */
struct node_frame {
    struct node_frame *next;
    struct raft_msg msg;  /* owns its entries */
    size_t size;          /* approximate encoded size, for the queue bound */
};

/* The TCP connection to a peer; used only by whoever holds the peer's send token. */
struct node_link {
    int fd;
    int state;                    /* replicator.c's link_state */
    unsigned seed;                /* for the reconnect backoff */
};

/* The outgoing side of one peer: a queue filled under the lock, drained by whoever holds
 * the send token (`sending`): the peer's replicator thread, or a thread that has just
 * stepped the core and sends inline while the replicator is idle (node_inline_finish). */
struct node_peer {
    struct node *node;
    int id;
    pthread_t thread;
    bool started;
    pthread_cond_t cond;          /* signalled when frames are queued or on shutdown */
    struct node_frame *head, *tail;
    size_t queued_bytes;
    bool sending;                 /* the send token is taken (under mu) */
    bool link_up;                 /* the link was up when the token was last given back */
    struct node_link link;        /* token holder only */
    struct proto_buf pending;     /* token holder only: encoded bytes an inline send
                                     could not write without blocking */
    bool pending_whole;           /* pending starts at a frame boundary (else it is the
                                     rest of a frame and only fits the same connection) */
    uint64_t dropped_frames;      /* dropped because the queue was over its bound */
    uint64_t reported_drops;      /* dropped_frames when the last drop was logged */
    uint64_t drops_logged_ms;     /* when that was (0: never) */
};

/* Resource limits (issue 7), each a raft_server option (server/main.c, README). Set
 * before node_start and read-only afterwards, so read without the lock. */
#define NODE_PEER_QUEUE_MAX (32u * 1024 * 1024)
#define NODE_DEFAULT_MAX_CLIENTS 1024u
#define NODE_DEFAULT_CLIENT_IDLE_MS 60000u
#define NODE_DEFAULT_FRAME_TIMEOUT_MS 5000u

struct node_limits {
    uint32_t max_frame_bytes;        /* a client's (or a not yet identified) frame; peers
                                        may send up to PROTO_MAX_FRAME */
    uint32_t max_key_bytes;          /* a client request's key; over it: ERR */
    uint32_t max_value_bytes;        /* a client request's value; over it: ERR */
    uint32_t max_clients;            /* client connections served at once; past it a new
                                        one gets ERR "too many connections" and is closed */
    uint32_t client_idle_ms;         /* a client connection silent this long is closed
                                        (0 = never); peers are exempt */
    uint32_t frame_timeout_ms;       /* a frame begun must be complete within this, on any
                                        connection (slowloris), and so must the HELLO */
    size_t max_peer_queue_bytes;     /* messages waiting for one slow peer; past it the
                                        oldest are dropped (Raft retries them) */
};

/* The defaults: PROTO_MAX_FRAME/KEY/VALUE, the NODE_DEFAULT_* above, NODE_PEER_QUEUE_MAX. */
void node_limits_default(struct node_limits *l);

/* Snapshots and log compaction (Raft paper §7), server/node/snapshotter.c. */
#define NODE_SNAPSHOT_ENTRIES_DEFAULT 10000u
#define NODE_SNAPSHOT_BYTES_DEFAULT (64ull << 20)
#define NODE_SNAPSHOT_KEEP_DEFAULT 1000u
#define NODE_SNAPSHOT_CHUNK_BYTES (1u << 20) /* per InstallSnapshot message */

struct node_snap_opts {
    uint64_t entries;  /* snapshot once this many entries were applied since the last
                          one (--snapshot-entries; 0: never by count) */
    uint64_t bytes;    /* ... or once their commands hold about this many bytes
                          (--snapshot-bytes; 0: never by size) */
    uint64_t keep;     /* entries kept in memory behind a snapshot for slow followers
                          (--snapshot-keep) */
    bool fork;         /* write it from a forked child (--snapshot-fork, default true);
                          false: serialize it in memory under the lock, then write it */
};

struct node_snap {
    struct node_snap_opts opts;          /* set before node_start */
    struct snapshot_paths *paths;        /* DIR/NAME_snapshot{,.tmp,.recv}; read-only */
    /* Under mu: */
    raft_index_t base;        /* index of the last snapshot taken, installed or loaded */
    uint64_t bytes_since;     /* approximate command bytes applied since base */
    uint64_t last_file_bytes; /* the size of NAME_snapshot as last written, installed or
                                 loaded (0: none): the next one waits until the log
                                 since holds a quarter or more of that (see
                                 node_snap_maybe_start) */
    bool running;             /* a snapshot is being written (one at a time) */
    bool pending;             /* ... and the snapshot thread has not picked it up yet */
    raft_index_t index;       /* the snapshot being written ... */
    raft_term_t term;         /* ... and the term of its last entry */
    uint64_t bytes_at_start;  /* bytes_since when it started */
    pid_t child;              /* its forked writer, or 0 if serialized in memory */
    int fd;                   /* the in-memory case: NAME_snapshot.tmp, to write image to */
    uint8_t *image;           /* the in-memory case: the whole file */
    size_t image_len;
    uint64_t started_ms;
    uint64_t stall_us;        /* how long the lock was held to start it */
    uint64_t retry_ms;        /* after a failure, no new snapshot before this time */
    raft_index_t compact_to;  /* storage may drop entries up to here (the io thread does) */
    raft_index_t compacted;   /* what the io thread has dropped */
    struct snapshot_meta *meta;  /* header of the snapshot being written (pre-allocated) */
    uint8_t *child_buf;       /* the forked writer's buffer, allocated before any fork */
    pthread_cond_t cond;      /* wakes the snapshot thread */
    pthread_t thread;
    bool started;
    /* NAME_snapshot is replaced by the snapshot thread (a snapshot taken) and by the io
     * thread (one received); file_mu orders them so it only moves forward. */
    pthread_mutex_t file_mu;
    raft_index_t on_disk;     /* the index of NAME_snapshot (0: none); under file_mu */
};

struct node {
    pthread_mutex_t mu;
    pthread_cond_t io_cond;       /* the io thread waits here for raft_has_ready */
    pthread_cond_t timer_cond;    /* the timer waits here for its next deadline */

    struct raft *raft;
    struct kv *kv;
    struct storage *storage;      /* used by the io thread only, without the lock */
    struct registry reg;
    int self;
    const char *name;             /* reg.servers[self].name */
    uint64_t cluster_id;          /* sent and checked in HELLO_PEER (registry_cluster_id
                                     or --cluster-id) */
    struct node_limits limits;    /* set before node_start, read-only afterwards */
    atomic_uint n_clients;        /* client connections being served */
    atomic_uint n_unidentified;   /* accepted connections whose HELLO has not come yet */

    bool io_busy;                 /* the io token: the io thread or an inline caller is
                                     persisting a Ready batch (storage is theirs) */
    raft_index_t applied;         /* last entry applied to kv */
    struct node_waiter *waiters;  /* pending client requests */
    uint64_t next_read_id;
    uint32_t reads_answered;      /* read waiters answered by ReadIndex, not yet done */

    /* What node_after_step last saw, to log changes and fail waiters. */
    enum raft_role seen_role;
    raft_term_t seen_term;
    int seen_leader;

    uint64_t timer_wake_ms;       /* when the timer thread will next wake */
    struct node_peer *peers;      /* reg.n entries; peers[self] unused */
    bool shutdown;

    struct node_snap snap;        /* snapshots, see snapshotter.c */
    struct client_loop *client_loop; /* serves client connections (server/net/client_loop.c);
                                        set before the listener starts */

    _Atomic uint64_t log_term;    /* the term for log lines written without the lock */
    pthread_t io_thread, timer_thread;
    bool io_started, timer_started;
};

/* --- node.c --- */
/* Names the calling thread "rk-<role>" or "rk-<role>-<id>" (id >= 0), as top -H and
 * perf show it. */
void node_name_thread(const char *role, int id);
/* A condition variable that waits against CLOCK_MONOTONIC. */
int node_cond_init(pthread_cond_t *cond);
/* pthread_cond_timedwait until deadline_ms (monotonic). Returns like it. */
int node_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t deadline_ms);
/* Sets up locks, the key-value map and the peers; raft is created by the caller. The
 * limits start as node_limits_default() and the cluster id as registry_cluster_id(reg). */
int node_init(struct node *n, struct registry *reg, int self, struct storage *st);
/* Called under mu after EVERY core call: applies committed entries, answers waiters,
 * logs role changes, wakes the io thread; a client waiter is woken when it is done. */
void node_after_step(struct node *n);
/* Links / unlinks a waiter (under mu); add sets up its condition variable, remove frees
 * it. */
void node_waiter_add(struct node *n, struct node_waiter *w);
void node_waiter_remove(struct node *n, struct node_waiter *w);
/* Name of a node id for logs and storage ("" for RAFT_NO_NODE or out of range). */
const char *node_name_of(const struct node *n, int id);
/* Starts io, timer and replicator threads. RK_OK or RK_ERR_NOMEM. */
int node_start(struct node *n);
/* Sets shutdown, wakes everyone, joins the io, timer and replicator threads. */
void node_stop(struct node *n);

/* Inline work: a thread that steps the core may do the follow-up itself instead of
 * waking the io thread and the replicators, saving two thread switches per round trip
 * (the leader's appends, a follower's fsync and its reply). Under mu:
 * node_inline_begin() before the core calls; node_inline_finish() after them sends what
 * was queued for peers whose replicator is idle, persists the Ready batch if the io
 * thread is idle, then sends what that produced. It unlocks mu while it writes and
 * returns with mu held. */
void node_inline_begin(struct node *n);
void node_inline_finish(struct node *n);
/* The same, but node_inline_finish only sends: a thread that must not block on the disk
 * (the client loop) leaves the Ready batch to the io thread. */
void node_inline_begin_sends(struct node *n);
/* Inside node_inline_begin/finish: notes that this thread will send peer's queue
 * itself, and returns true; false outside (the caller then wakes the replicator). */
bool node_inline_mark(int peer);

/* --- log.c --- */
/* One line on stderr: "YYYY-MM-DD HH:MM:SS.mmm NAME term=N message". */
void node_log(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same line for a given name and term, before the node exists. */
void node_log_as(const char *name, uint64_t term, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* raft_config.log_fn: ctx is the node; called with mu held. */
void node_log_core(void *ctx, const char *msg);
/* Writes a FATAL line and exits with status 1. */
void node_fatal(struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* --- snapshotter.c (Raft paper §7) --- */
/* After node_init, before node_start: the snapshot files are DIR/NAME_snapshot*; the
 * options start at their defaults. RK_OK or RK_ERR_NOMEM / RK_ERR_TOOBIG. */
int node_snap_init(struct node *n, const char *dir);
/* Under mu (node_after_step): starts a snapshot of the state machine at the applied
 * index if the thresholds are passed and none is running: forks a child that writes it
 * while the parent goes on. */
void node_snap_maybe_start(struct node *n);
/* Starts the snapshot thread, which finishes what node_snap_maybe_start began. */
int node_snap_start_thread(struct node *n);
/* Under mu: stops a running snapshot writer (shutdown). */
void node_snap_cancel(struct node *n);
/* Replaces NAME_snapshot with the written (from_recv: received) file if index is newer
 * than the one on disk, in file order. RK_OK; RK_ERR_INVAL if it was not newer (the file
 * is removed); or an I/O error in err. */
int node_snap_install_file(struct node *n, raft_index_t index, bool from_recv, char *err,
                           size_t errlen);
/* Frees what node_snap_init allocated (after node_stop). */
void node_snap_free(struct node *n);

/* --- io_thread.c --- */
int node_io_start(struct node *n);
/* Under mu: if the io token is free and the core has a Ready batch, takes the token and
 * persists the batch in this thread (unlocking while it writes). true if it did. */
bool node_io_run_inline(struct node *n);

/* --- timer.c --- */
int node_timer_start(struct node *n);

/* --- replicator.c --- */
int node_replicator_start(struct node_peer *p);
/* Under mu: queues m for its destination (m->to) and signals that replicator, or,
 * inside node_inline_begin/finish with the replicator idle and the link up, leaves it
 * for this thread to send. Takes ownership of m's entries (m is left with none). */
void node_replicator_push(struct node *n, struct raft_msg *m);
/* Under mu: sends inline what was queued for the peers in *mask (bits by peer id), or
 * hands it to their replicators; clears *mask. Unlocks mu while it writes. */
void node_replicator_flush(struct node *n, uint64_t *mask);

/* --- client_ops.c --- */
/* Under mu: starts serving r->req (r->w.notify is kept, the rest of r->w is reset).
 * Either appends the CLIENT_RESP frame to out at once and returns false, or returns
 * true: r->pending, the answer waits for r->w to be done (a write applied, a read's
 * ReadIndex answered and applied); call node_client_finish then, or on giving up. */
bool node_client_start(struct node *n, struct node_request *r, struct proto_buf *out);
/* Under mu: appends the answer of a pending request to out and unlinks its waiter.
 * wait_rc: RK_OK when r->w.done, else RK_ERR_TIMEOUT (gave up) or RK_ERR_SHUTDOWN; a
 * write whose outcome is unknown is answered with a redirect if retrying it is safe. */
int node_client_finish(struct node *n, struct node_request *r, int wait_rc, struct proto_buf *out);
/* Appends an ERR response with msg. */
int node_client_error(struct proto_buf *out, const char *msg);

#endif
