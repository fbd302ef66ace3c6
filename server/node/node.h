/* server/node/node.h - the node: the state that the server's threads share around the Raft
 * core, and what they may do with it. One mutex (mu) guards the core, the key-value map,
 * the client waiters, the peers' message queues and the snapshot bookkeeping; condition
 * variables wake the threads. Which thread runs what, and which field each may touch, is
 * in docs/architecture.md.
 *
 * node/ decides what is sent to a peer and when; the bytes go out through net/ (the
 * replicator threads of net/replicator.c, and node_transport below). node/ includes
 * nothing from net/. */
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
#include "../../common/rate_limit.h"
#include "../../common/registry.h"
#include "../core/raft.h"
#include "expiry.h"

struct client_loop;
struct kv;
struct watch_loop;
struct snapshot_meta;
struct snapshot_paths;
struct storage;

/* ---------- client requests ---------- */

/* A client request waiting for its entry to be applied (write), for a ReadIndex answer
 * plus applied >= that index (read), or for the outcome of a membership change or a
 * leadership transfer (result). Owned by the client loop's connection. */
enum node_wait_kind { NODE_WAIT_WRITE, NODE_WAIT_READ, NODE_WAIT_RESULT };

struct node_waiter;

/* Called under mu, by whichever thread finished the waiter, once its result is final. */
typedef void (*node_waiter_done_fn)(void *ctx, struct node_waiter *w);

struct node_waiter {
    struct node_waiter *prev, *next;
    enum node_wait_kind kind;
    raft_index_t index;  /* write: the entry's index; read: the read index once answered */
    raft_term_t term;    /* write: the entry's term */
    uint64_t read_id;    /* read: the id given to raft_read_index; result: the request
                            id given to raft_add_server & co */
    bool answered;       /* read: the ReadIndex answer arrived (ok) */
    bool done;           /* the result below is final */
    int result;          /* RK_OK, RK_ERR_LOST (write), RK_ERR_NOTLEADER (read), or the
                            request's outcome (result) */
    int kv_result;       /* write: what kv_apply returned (KV_APPLIED, KV_ABSENT,
                            KV_SESSION_EXPIRED, KV_STALE) */
    uint64_t kv_rev;     /* write: the revision that went with it (kv_result_rev) */
    node_waiter_done_fn on_done; /* required */
    void *on_done_ctx;
    struct node_waiter *done_next; /* for on_done's own list */
};

/* One client request being served: the decoded request (its key and value point into
 * the caller's buffer, which must stay put until it is finished) and its waiter. */
struct node_request {
    struct proto_client_req req;
    struct node_waiter w;
    bool waiting;        /* for a commit or a ReadIndex answer: node_client_finish
                            answers it */
};

/* ---------- peers: what node/ queues for them ---------- */

/* One queued message for a peer; it is encoded outside the lock (node_peer_encode). */
struct node_frame {
    struct node_frame *next;
    struct raft_msg msg;  /* owns its entries */
    size_t size;          /* approximate encoded size, for the queue bound */
};

/* Where a peer listens, as the holder of its send token copies it (node_peer_take): the
 * link reconnects when gen changes. */
struct node_peer_addr {
    char name[REGISTRY_NAME_MAX + 1];
    char host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
    uint64_t gen;
    int self_id;                  /* our own id then (-1: none yet), for HELLO_PEER */
};

/* One node id (Raft thesis §4: ids come from the configuration), and the outgoing side
 * of that peer as node/ sees it: a queue filled under mu and a send token. Whoever holds
 * the token (`sending`) takes the whole queue, encodes it and writes it to the peer's
 * link without the lock: the peer's replicator thread (net/), or a thread that has just
 * stepped the core and writes without blocking (node_outbox_flush). */
struct node_peer {
    int id;
    bool member;                  /* in the configuration in effect */
    bool known;                   /* a member, or a server that said hello with this id
                                     while the configuration had none (a leader, to a
                                     server that joins) */
    struct node_peer_addr addr;   /* whom the id names and where it listens */
    pthread_cond_t cond;          /* wakes the peer's replicator: work, or shutdown */
    struct node_frame *head, *tail;
    size_t queued_bytes;
    bool sending;                 /* the send token is taken */
    bool inline_ok;               /* when the token was last given back, the link was up
                                     with nothing of an earlier send left over: another
                                     thread may write to it without blocking */
    bool backlog;                 /* the link holds bytes a non-blocking write left: the
                                     replicator must send them before anything else */
    uint64_t dropped_frames;      /* dropped because the queue was over its bound */
    uint64_t reported_drops;      /* dropped_frames when the last drop was logged */
    uint64_t drops_logged_ms;     /* when that was (0: never) */
};

/* The peers a thread that steps the core will write to itself once it is done stepping
 * (node_outbox_flush), instead of waking their replicators: a thread switch saved per
 * message round. Lives on the stepping thread's stack; passed to every call that may
 * queue a message. A NULL outbox means: wake the replicators. */
struct node_outbox {
    bool peers[REGISTRY_MAX_SERVERS];
    bool any;
};

/* How node/ writes to a peer's link without knowing sockets: net/replicator.c fills it
 * in before node_start. */
struct node_transport {
    /* Without mu, by the holder of the peer's send token: writes what the link takes now,
     * never blocking; the link keeps the rest for the replicator. true if all of it went. */
    bool (*send_nowait)(void *ctx, int peer, const uint8_t *data, size_t len);
    /* Under mu: peer became known, or its address changed (a replicator is started for
     * it if it has none). */
    void (*peer_changed)(void *ctx, int peer);
    void *ctx;
};

/* ---------- limits ---------- */

/* Resource limits (issue 7), each a raft_server option (server/main.c, README). Set
 * before node_start and read-only afterwards, so read without the lock. */
#define NODE_PEER_QUEUE_MAX (32u * 1024 * 1024)
#define NODE_DEFAULT_MAX_CLIENTS 1024u
#define NODE_DEFAULT_CLIENT_IDLE_MS 60000u
#define NODE_DEFAULT_FRAME_TIMEOUT_MS 5000u
#define NODE_DEFAULT_MAX_WATCHERS 10000u

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
    uint32_t max_watchers;           /* watch streams served at once (--max-watchers); each
                                        is also a client connection */
};

/* The defaults: PROTO_MAX_FRAME/KEY/VALUE, the NODE_DEFAULT_* above, NODE_PEER_QUEUE_MAX. */
void node_limits_default(struct node_limits *l);

/* ---------- snapshots (Raft paper §7), snapshotter.c ---------- */

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
    bool handed_over;         /* ... and the snapshot thread has not taken it yet */
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

/* ---------- watch (issue 17), watch.c ---------- */

/* The recent changes a watch resumes from (server/kv/kv_history.h) and the watchers'
 * count. The applying thread appends under n->mu and then mu (in that order); the watch
 * loop reads under mu alone, so a watcher's copying never holds the node's lock. */
struct node_watch {
    pthread_mutex_t mu;             /* guards history */
    struct kv_history *history;
    _Atomic uint64_t applied;       /* the history's applied index, read without mu */
    atomic_uint n_watchers;         /* watch streams open (started by the client loop,
                                       stopped by the watch loop) */
    void (*wake)(void *ctx);        /* tells the watch loop of new changes; set before
                                       the threads start */
    void *wake_ctx;
    struct node_watch_index *index; /* the watched prefixes and the answers being built
                                       (watch_index.c): the watch loop's thread only */
    struct proto_buf body, err;     /* the watch loop's: an answer's events being
                                       collected, and an ERR that ends a stream */
};

/* ---------- warnings an operator can act on (issue 18), warnings.c ---------- */

#define NODE_WARN_SYNC_MS 100          /* an fdatasync of the log slower than this */
#define NODE_WARN_APPLY_MS 100         /* applying one batch slower than this */
#define NODE_WARN_DISK_PCT 90          /* the data directory's disk fuller than this */
#define NODE_WARN_PERIOD_MS 30000u     /* at most one line of a kind this often */
#define NODE_WARN_DISK_EVERY_MS 10000u /* how often the io thread looks at the disk */
#define NODE_WARN_LAG_EVERY_MS 1000u   /* how often the leader looks at its followers */

/* Under mu, but disk: the io thread's alone. */
struct node_warnings {
    struct rk_rate_limit sync, apply, disk;
    struct rk_rate_limit lag[REGISTRY_MAX_SERVERS];
    uint64_t next_lag_ms;
    uint64_t lag_commit;     /* the commit index at the last look at the lag */
};

/* ---------- what a server is started with (boot.c) ---------- */

#define NODE_DISK_STALL_MS_DEFAULT 2000u

struct node_config {
    const char *name;            /* this server */
    const char *host;            /* where it listens (a mismatch with the registry warns) */
    uint16_t port;
    const char *dir;             /* the registry and this server's files */
    bool join;                   /* --join: a new server of a running cluster; it knows no
                                  * configuration until a leader adds it (thesis §4.2.1) */
    uint32_t disk_stall_ms;      /* a leader whose fdatasync takes longer hands off */
    uint32_t election_min_ms, election_max_ms, heartbeat_ms;
    struct node_limits limits;
    bool has_cluster_id;         /* --cluster-id given; else the registry's hash */
    uint64_t cluster_id;
    struct node_snap_opts snap;  /* --snapshot-entries, -bytes, -keep, -fork */
    uint32_t watch_history;      /* --watch-history: events kept for watchers to resume */
    uint64_t watch_history_bytes;/* --watch-history-bytes: ... and about this many bytes */
};

/* ---------- the node ---------- */

struct node {
    pthread_mutex_t mu;
    pthread_cond_t io_cond;       /* the io thread waits here for raft_has_ready */
    pthread_cond_t timer_cond;    /* the timer waits here for its next deadline */
    pthread_cond_t tokens_cond;   /* node_stop waits here until no send token is held */
    pthread_cond_t role_cond;     /* broadcast when our role changes (node_hand_off) */

    struct raft *raft;
    struct kv *kv;
    struct storage *storage;      /* the io thread's only, used without the lock */
    struct registry reg;          /* server_registry.txt: the first configuration of a new
                                     cluster, and its cluster id; read-only */
    const char *name;             /* this server's name */
    char vote_elsewhere[REGISTRY_NAME_MAX + 1]; /* a loaded vote for a server no longer
                                     in the configuration (RAFT_VOTE_ELSEWHERE) */
    char listen_host[REGISTRY_HOST_MAX + 1]; /* where it listens: sent in HELLO_PEER */
    uint16_t listen_port;
    uint64_t conf_gen;            /* raft_membership_gen when peers[] was last synced */
    uint64_t cluster_id;          /* sent and checked in HELLO_PEER (registry_cluster_id
                                     or --cluster-id) */
    struct node_limits limits;    /* set before node_start, read-only afterwards */
    atomic_uint n_clients;        /* client connections being served */
    atomic_uint n_unidentified;   /* accepted connections whose HELLO has not come yet */

    raft_index_t applied;         /* last entry applied to kv */
    struct node_waiter *waiters;  /* pending client requests */
    uint64_t next_read_id;        /* also the request ids of membership changes */
    uint32_t reads_answered;      /* read waiters answered by ReadIndex, not yet done */

    /* What node_after_step last saw, to log changes and fail waiters. */
    enum raft_role seen_role;
    raft_term_t seen_term;
    int seen_leader;

    uint64_t timer_wake_ms;       /* when the timer thread will next wake */
    struct node_reaper reaper;    /* the leader's proposals of expired keys (expiry.h) */
    struct node_peer *peers;      /* REGISTRY_MAX_SERVERS entries, by node id */
    uint32_t disk_stall_ms;       /* set before node_start */
    uint64_t sync_started_ms;     /* the io thread's write in flight began (0: none) */
    bool stall_handed_off;        /* ... and took so long that we handed leadership off */
    struct node_transport transport; /* set before node_start, read-only afterwards */
    bool shutdown;

    struct node_snap snap;        /* snapshots, see snapshotter.c */
    struct node_watch watch;      /* watch.c */
    struct node_warnings warn;    /* warnings.c */
    struct client_loop *client_loop; /* serves client connections (server/net/client_loop.c);
                                        set before the listener starts */
    struct watch_loop *watch_loop;   /* serves watch streams (server/net/watch_loop.c); set
                                        before the client loop starts */

    _Atomic uint64_t log_term;    /* the term for log lines written without the lock */
    pthread_t io_thread, timer_thread;
    bool io_started, timer_started;
};

/* --- node.c --- */
/* Names the calling thread "rk-<role>" or "rk-<role>-<id>" (id >= 0), as top -H and
 * perf show it. */
void node_name_thread(const char *role, int id);
/* A condition variable that waits against CLOCK_MONOTONIC (common/clock.h). */
int node_cond_init(pthread_cond_t *cond);
/* pthread_cond_timedwait until deadline_ms (rk_clock_ms). Returns like it. */
int node_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t deadline_ms);
/* Sets up locks, the key-value map and the peers; the core is created by node_open. The
 * limits start as node_limits_default() and the cluster id as registry_cluster_id(reg).
 * Takes reg's server list; name must outlive the node. */
int node_init(struct node *n, struct registry *reg, const char *name, struct storage *st);
/* Under mu, after EVERY core call: applies committed entries, answers waiters, logs role
 * changes, queues the core's early messages (for ob to send, or for the replicators if
 * ob is NULL) and wakes the io and timer threads as needed. */
void node_after_step(struct node *n, struct node_outbox *ob);
/* Under mu: when the timer thread next has work: the core's next deadline, or the next
 * key to expire. */
uint64_t node_timer_deadline(const struct node *n);
/* Links / unlinks a waiter (under mu). */
void node_waiter_add(struct node *n, struct node_waiter *w);
void node_waiter_remove(struct node *n, struct node_waiter *w);
/* Name of a node id for logs and storage ("" for RAFT_NO_NODE, out of range, or
 * unknown). Under mu, or from the holder of the id's send token. */
const char *node_name_of(const struct node *n, int id);
/* Under mu: copies the configuration in effect into peers[] (members.c). */
void node_sync_peers(struct node *n);
/* Under mu: the id a peer that said hello speaks for, or -1 with the reason in why: its
 * name's id in the configuration in effect; else the id it claims, if no member has it
 * (a leader, to a server that joins: its address is then learned from the hello). */
int node_peer_hello(struct node *n, const struct proto_hello *h, char *why, size_t whylen);
/* Under mu: steps count Raft messages from peer into the core (the sender is the
 * handshake's peer, whatever the messages say); what they release for peers goes to ob.
 * false if the node is stopping (nothing stepped). */
bool node_step_peer_msgs(struct node *n, int peer, struct raft_msg *msgs, int count,
                         struct node_outbox *ob);
/* Under mu: the connection from peer closed: if it was our leader, elect sooner. */
void node_peer_gone(struct node *n, int peer);
/* Under mu: starts an election now (the start flag True). */
void node_campaign(struct node *n);
/* Before stopping (SIGTERM): a leader hands leadership to the most up-to-date voter
 * (Raft thesis §3.10), so that a rolling restart waits for no election timeout, and waits
 * until it no longer leads, at most wait_ms. */
void node_hand_off(struct node *n, uint32_t wait_ms);
/* Starts the io, timer and snapshot threads (n->transport must be set). RK_OK or
 * RK_ERR_NOMEM. */
int node_start(struct node *n);
/* Sets shutdown, wakes everyone, waits until no thread holds a send token, and joins the
 * io, timer and snapshot threads. The replicators (net/) stop on shutdown; join them
 * after this. */
void node_stop(struct node *n);

/* --- boot.c --- */
/* Opens the node from cfg->dir: the registry, this server's log, state and snapshot (the
 * state machine starts from the snapshot, the log after it is replayed), and the Raft
 * core. RK_OK, or an error with the reason in err (the node is then unusable). */
int node_open(struct node *n, const struct node_config *cfg, char *err, size_t errlen);
/* Frees what node_open allocated (after node_stop). */
void node_close(struct node *n);

/* --- peers.c --- */
/* Under mu: queues m for its destination (m->to): ob will send it if the link is idle
 * and up, else the peer's replicator is woken. Takes ownership of m's entries (m is left
 * with none). The queue is bounded (--max-peer-queue-bytes): the oldest are dropped. */
void node_peer_push(struct node *n, struct raft_msg *m, struct node_outbox *ob);
/* Under mu: whether peer's replicator has something to do (the token is free and there
 * is a queue or a backlog). */
bool node_peer_has_work(const struct node_peer *p);
/* Under mu: takes p's send token and its whole queue; addr gets where p listens. */
struct node_frame *node_peer_take(struct node *n, struct node_peer *p,
                                  struct node_peer_addr *addr);
/* Without mu, by the token holder: encodes batch into buf (emptied first; snapshot
 * chunks are read from NAME_snapshot here) and frees the batch. A message that cannot be
 * encoded is dropped like a lost packet. */
void node_peer_encode(struct node *n, const struct node_peer *p, struct node_frame *batch,
                      struct proto_buf *buf);
/* Under mu: gives the token back: inline_ok and backlog as the link is now (node_peer).
 * Wakes the replicator if there is work left, and node_stop if it waits. */
void node_peer_give_back(struct node *n, struct node_peer *p, bool inline_ok, bool backlog);
/* Under mu: writes what was queued for ob's peers (through n->transport, never
 * blocking) and clears ob; wakes the io thread if the core has a Ready batch. Unlocks mu
 * while it writes. */
void node_outbox_flush(struct node *n, struct node_outbox *ob);

/* --- io_thread.c --- */
int node_io_start(struct node *n);

/* --- timer.c --- */
int node_timer_start(struct node *n);

/* --- watch.c: the recent changes, for watchers --- */
/* Creates the history (bounds from the config; nothing up to index `from` available). */
int node_watch_init(struct node *n, uint32_t max_events, uint64_t max_bytes);
void node_watch_free(struct node *n);
/* Under n->mu: kv (the node's map, new or replaced by a snapshot's at index) reports its
 * changes to the history; a replaced map leaves a gap up to index. */
void node_watch_attach(struct node *n, struct kv *kv, uint64_t index);
/* Under n->mu, around applying a chunk of entries: the history's mutex is held while
 * kv_apply adds events; end records the applied index and wakes the client loop. */
void node_watch_chunk_begin(struct node *n);
void node_watch_chunk_end(struct node *n);

/* One watch stream: started by the client loop (node_watch_check), then the watch
 * loop's alone (server/net/watch_loop.c). */
#define NODE_WATCH_OUT_BOUND (256u * 1024)  /* unsent bytes a watcher may have; past it, a
                                               watcher with more to come is cut off */
#define NODE_WATCH_BATCH_BYTES (64u * 1024) /* events put in one answer (whole revisions) */
struct node_watcher {
    bool active;
    bool ending;           /* the ERR that ends the stream is queued: close once sent */
    bool answered;         /* the first answer went */
    char *prefix;
    uint32_t prefix_len;
    uint64_t next;         /* the first revision not yet given to the client */
    uint64_t last_sent_ms; /* the last answer (heartbeats) */
    struct node_watch_prefix *entry; /* its prefix in the index (NULL: not indexed) */
    struct node_watcher *peer_prev, *peer_next; /* the other streams of its prefix, or
                                                   the streams not indexed */
};
/* A WATCH request: sets up the stream (true; counted among the watchers) or answers ERR
 * into out (false): a bad prefix or FROM, too many watchers, or FROM compacted away. */
bool node_watch_check(struct node *n, struct node_watcher *w, const struct proto_client_req *req,
                      struct proto_buf *out);
/* The watch loop's side of a stream checked: indexes it by prefix. Its first answer is
 * due at once (node_watch_due). */
void node_watch_open(struct node *n, struct node_watcher *w);
/* Whether node_watch_answer has something to say now (cheap: no lock). */
bool node_watch_due(struct node *n, const struct node_watcher *w, size_t unsent, uint64_t now);
/* What the stream has to say now, as a whole framed answer, or NULL (nothing, or out of
 * memory: try later): its next events (while fewer than NODE_WATCH_OUT_BOUND bytes wait
 * unsent), a heartbeat, or the ERR that cuts off a watcher that does not read
 * (PROTO_ERR_FELL_BEHIND) or whose place was trimmed away. The stream counts it as sent:
 * the caller must send all of it. The bytes are valid until the next call for any stream
 * (the streams of a prefix at the same place share them). */
const struct proto_buf *node_watch_answer(struct node *n, struct node_watcher *w, size_t unsent,
                                          uint64_t now);
void node_watch_stop(struct node *n, struct node_watcher *w);

/* --- watch_index.c: which streams a round of changes concerns (watch loop thread) --- */
struct node_watch_index *node_watch_index_new(uint64_t applied);
void node_watch_index_free(struct node_watch_index *x);
void node_watch_index_add(struct node_watch_index *x, struct node_watcher *w);
void node_watch_index_remove(struct node_watch_index *x, struct node_watcher *w);
/* A round: matches the changes applied since the last one against the watched prefixes
 * (one hash lookup per change and distinct prefix length), then calls visit (if not NULL)
 * for each stream of a prefix they touched and each stream not indexed. visit must not
 * stop streams. The others are not visited: node_watch_skip moves them on later. */
void node_watch_scan(struct node *n, void (*visit)(void *ctx, struct node_watcher *w),
                     void *ctx);
/* A stream none of whose unseen changes up to the last round's are for it (no change
 * scanned since its place touched its prefix) moves past them without reading them. */
void node_watch_skip(struct node *n, struct node_watcher *w);
/* A batch of events for the streams of a prefix at one place, framed as an answer. */
struct node_watch_batch {
    struct proto_buf answer;
    uint32_t count;        /* events in it */
    uint64_t progress;     /* every event up to it was looked at */
};
/* The batch of w's prefix for w's place while `applied` is the applied index: one already
 * built (*fresh false) or an empty one to build into (*fresh true; the index's own for a
 * stream not indexed). NULL when out of memory. A batch whose building failed is dropped
 * with node_watch_batch_drop. */
struct node_watch_batch *node_watch_batch(struct node_watch_index *x, const struct node_watcher *w,
                                          uint64_t applied, bool *fresh);
void node_watch_batch_drop(const struct node_watcher *w);

/* --- warnings.c: rate-limited log lines on what an operator should look at --- */
/* Under mu: the log's last fdatasync took took_ms (io thread). */
void node_warn_sync(struct node *n, uint64_t took_ms);
/* Under mu: applying entries took took_ms. */
void node_warn_apply(struct node *n, uint64_t entries, uint64_t took_ms);
/* Under mu, the timer, once a second: as leader, a follower that has not reached, less
 * --snapshot-keep, what was committed a second ago. */
void node_warn_lag(struct node *n, uint64_t now);
/* Without mu (it may wait on the disk), the io thread: how full the data directory's
 * disk is. */
void node_warn_disk(struct node *n);

/* --- expiry.c: the leader proposes the deletion of keys whose deadline passed --- */
/* Under mu: when node_expiry_run has work (UINT64_MAX: none; not the leader, or its last
 * EXPIRED entry is not applied yet). */
uint64_t node_expiry_next(const struct node *n);
/* Under mu, by the timer thread: as leader, proposes an EXPIRED entry for keys due at
 * now_ms on this server's clock. */
void node_expiry_run(struct node *n, uint64_t now_ms);
/* Under mu, by the io thread: the write in flight is done (the disk answers). */
void node_disk_answered(struct node *n);

/* --- logging.c --- */
/* One line on stderr: "YYYY-MM-DD HH:MM:SS.mmm NAME term=N message". */
void node_log(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same line for a given name and term, before the node exists. */
void node_log_as(const char *name, uint64_t term, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* raft_config.log_fn: ctx is the node; called with mu held. */
void node_log_core(void *ctx, const char *msg);
/* Writes a FATAL line and exits with status 1: the one way a server stops on an error. */
void node_fatal(struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
/* The same, before the node exists. */
void node_fatal_as(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* --- snapshotter.c (Raft paper §7) --- */
/* The defaults: every NODE_SNAPSHOT_*_DEFAULT entries or bytes, forked. */
void node_snap_opts_default(struct node_snap_opts *o);
/* After node_init: the snapshot files are DIR/NAME_snapshot*; the options start at their
 * defaults. RK_OK or RK_ERR_NOMEM / RK_ERR_TOOBIG. */
int node_snap_init(struct node *n, const char *dir);
/* Under mu (or before node_start): the state machine becomes kv, the map of a snapshot
 * at index whose file is file_bytes long (loaded at start, or received from the leader).
 * Returns the old map, for the caller to free (outside the lock). */
struct kv *node_snap_adopt(struct node *n, raft_index_t index, uint64_t file_bytes,
                           struct kv *kv);
/* Under mu (node_after_step): starts a snapshot of the state machine at the applied
 * index if the thresholds are passed and none is running: forks a child that writes it
 * while the parent goes on. */
void node_snap_maybe_start(struct node *n);
/* Starts the snapshot thread, which finishes what node_snap_maybe_start began. */
int node_snap_start_thread(struct node *n);
/* Under mu: stops a running snapshot writer (shutdown). */
void node_snap_cancel(struct node *n);
/* Replaces NAME_snapshot with the written (from_recv: received) file if index is newer
 * than the one on disk, in file order. RK_OK with *installed true, or false if it was
 * not newer (the file is removed); or an I/O error in err. */
int node_snap_install_file(struct node *n, raft_index_t index, bool from_recv,
                           bool *installed, char *err, size_t errlen);
/* Frees what node_snap_init allocated (after node_stop). */
void node_snap_free(struct node *n);

/* --- client_ops.c --- */
/* Under mu: starts serving r->req (r->w.on_done is kept, the rest of r->w is reset).
 * Either appends the CLIENT_RESP frame to out at once and returns false, or returns
 * true: r->waiting, the answer waits for r->w to be done (a write applied, a read's
 * ReadIndex answered and applied); call node_client_finish then, or on giving up. What
 * the request releases for peers goes to ob. */
bool node_client_start(struct node *n, struct node_request *r, struct proto_buf *out,
                       struct node_outbox *ob);
/* Under mu: appends the answer of a waiting request to out and unlinks its waiter.
 * wait_rc: RK_OK when r->w.done, else RK_ERR_TIMEOUT (gave up) or RK_ERR_SHUTDOWN; a
 * write whose outcome is unknown is answered with a redirect if retrying it is safe. */
int node_client_finish(struct node *n, struct node_request *r, int wait_rc, struct proto_buf *out);
/* Appends an ERR response with msg. */
int node_client_error(struct proto_buf *out, const char *msg);
/* Appends a response of status with body. */
int node_client_reply(struct proto_buf *out, uint8_t status, const char *body, uint32_t body_len);
/* Under mu: appends a REDIRECT naming the leader (empty if unknown). */
int node_client_redirect(struct node *n, struct proto_buf *out);
/* How long a request may wait for its answer: a write's commit or a read's ReadIndex
 * round, or far longer for a membership change (an add waits for a catch-up). */
#define NODE_CLIENT_WAIT_MS 3000u
#define NODE_ADMIN_WAIT_MS 90000u
uint32_t node_client_wait_ms(const struct node_request *r);

/* --- admin_ops.c --- */
/* Under mu, as leader: MEMBERS (answered at once), ADD, REMOVE, TRANSFER. Like
 * node_client_start. */
bool node_admin_start(struct node *n, struct node_request *r, struct proto_buf *out,
                      struct node_outbox *ob);
/* Under mu: the answer of a waiting ADD, REMOVE or TRANSFER. */
int node_admin_finish(struct node *n, const struct node_request *r, int wait_rc,
                      struct proto_buf *out);

#endif
