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

#include "../../common/proto.h"
#include "../../common/registry.h"
#include "../core/raft.h"

struct kv;
struct storage;

/* A client request waiting for its entry to be applied (write) or for a ReadIndex
 * answer plus applied >= that index (read). Lives on the waiting thread's stack. */
enum node_wait_kind { NODE_WAIT_WRITE, NODE_WAIT_READ };

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
};

/* One queued message for a peer; the replicator encodes it outside the lock. */
struct node_frame {
    struct node_frame *next;
    struct raft_msg msg;  /* owns its entries */
    size_t size;          /* approximate encoded size, for the queue bound */
};

/* The outgoing side of one peer: a queue filled by the io thread, drained by the
 * replicator thread that owns the TCP connection. */
struct node_peer {
    struct node *node;
    int id;
    pthread_t thread;
    bool started;
    pthread_cond_t cond;          /* signalled when frames are queued or on shutdown */
    struct node_frame *head, *tail;
    size_t queued_bytes;
    uint64_t dropped_frames;      /* dropped because the queue was over its bound */
};

#define NODE_PEER_QUEUE_MAX (32u * 1024 * 1024)

struct node {
    pthread_mutex_t mu;
    pthread_cond_t state_changed; /* broadcast after every core call: client waiters */
    pthread_cond_t io_cond;       /* the io thread waits here for raft_has_ready */
    pthread_cond_t timer_cond;    /* the timer waits here for its next deadline */

    struct raft *raft;
    struct kv *kv;
    struct storage *storage;      /* used by the io thread only, without the lock */
    struct registry reg;
    int self;
    const char *name;             /* reg.servers[self].name */

    raft_index_t applied;         /* last entry applied to kv */
    struct node_waiter *waiters;  /* pending client requests */
    uint64_t next_read_id;

    /* What node_after_step last saw, to log changes and fail waiters. */
    enum raft_role seen_role;
    raft_term_t seen_term;
    int seen_leader;

    uint64_t timer_wake_ms;       /* when the timer thread will next wake */
    struct node_peer *peers;      /* reg.n entries; peers[self] unused */
    bool shutdown;

    _Atomic uint64_t log_term;    /* the term for log lines written without the lock */
    pthread_t io_thread, timer_thread;
    bool io_started, timer_started;
};

/* --- node.c --- */
/* Milliseconds from CLOCK_MONOTONIC. */
uint64_t node_now_ms(void);
/* A condition variable that waits against CLOCK_MONOTONIC. */
int node_cond_init(pthread_cond_t *cond);
/* pthread_cond_timedwait until deadline_ms (monotonic). Returns like it. */
int node_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t deadline_ms);
/* Sets up locks, the key-value map and the peers; raft is created by the caller. */
int node_init(struct node *n, struct registry *reg, int self, struct storage *st);
/* Called under mu after EVERY core call: applies committed entries, answers waiters,
 * logs role changes, wakes the io thread and broadcasts state_changed. */
void node_after_step(struct node *n);
/* Links / unlinks a waiter (under mu). */
void node_waiter_add(struct node *n, struct node_waiter *w);
void node_waiter_remove(struct node *n, struct node_waiter *w);
/* Name of a node id for logs and storage ("" for RAFT_NO_NODE or out of range). */
const char *node_name_of(const struct node *n, int id);
/* Starts io, timer and replicator threads. RK_OK or RK_ERR_NOMEM. */
int node_start(struct node *n);
/* Sets shutdown, wakes everyone, joins the io, timer and replicator threads. */
void node_stop(struct node *n);

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

/* --- io_thread.c --- */
int node_io_start(struct node *n);

/* --- timer.c --- */
int node_timer_start(struct node *n);

/* --- replicator.c --- */
int node_replicator_start(struct node_peer *p);
/* Under mu: queues m for its destination (m->to) and signals that replicator. Takes
 * ownership of m's entries (m is left with none). */
void node_replicator_push(struct node *n, struct raft_msg *m);

/* --- client_ops.c --- */
/* Handles one client request and appends one CLIENT_RESP frame to out.
 * Takes mu itself; may wait up to a few seconds for commit. */
int node_client_handle(struct node *n, const struct proto_client_req *req, struct proto_buf *out);
/* Appends an ERR response with msg. */
int node_client_error(struct proto_buf *out, const char *msg);

#endif
