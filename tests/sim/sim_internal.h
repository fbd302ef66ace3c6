/* tests/sim/sim_internal.h - the simulator's private state, shared by its files: sim.c (life
 * cycle, event loop), sim_run.c (random runs), sim_node.c (driving one core), sim_net.c,
 * sim_disk.c, sim_snap.c, sim_client.c, sim_fault.c, sim_member.c (membership changes and
 * transfers), sim_check.c and sim_check_conf.c (the invariants), sim_trace.c, sim_queue.c. */
#ifndef RK_SIM_INTERNAL_H
#define RK_SIM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "../../common/membership.h"
#include "../../common/raft_msg.h"
#include "../../server/core/raft.h"
#include "../../server/kv/kv.h"
#include "../../server/node/expiry.h"
#include "sim.h"

#define SIM_TRACE_RING 64          /* trace records kept for a failure report */
#define SIM_TEXT_LEN 96
#define SIM_TIMER_MAX_SLEEP_MS 50  /* as server/node/timer.c */
#define SIM_KEYS 5                 /* random clients use keys k0 .. k4 */
#define SIM_LIVENESS_MAX_STEPS 400000
#define SIM_AUDIT_STEPS 512        /* every so many steps, re-fingerprint every log */
#define SIM_SCENARIO_MAX_STEPS 5000000  /* events one sim_run_for/until may take */

/* ---- events ------------------------------------------------------------------------ */

enum sim_ev_kind {
    SIM_EV_MSG = 1,   /* a message arrives at node */
    SIM_EV_TICK,      /* node's timer thread wakes */
    SIM_EV_IO,        /* node's fdatasync returns */
    SIM_EV_CLIENT,    /* a random client command */
    SIM_EV_FAULT,     /* a random fault */
    SIM_EV_RESTART,   /* a crashed node comes back */
    SIM_EV_HEAL,      /* a partition ends */
    SIM_EV_RESUME,    /* a paused node runs again */
    SIM_EV_CRASH,     /* node crashes while the write of io_gen is in flight */
    SIM_EV_DISCONNECT,/* node sees its connection from peer close (peer crashed) */
    SIM_EV_KILL,      /* node (incarnation gen), a new leader, crashes or is cut off */
    SIM_EV_MEMBER,    /* a random add, remove or transfer (at node, if >= 0: a new leader) */
    SIM_EV_RETIRE,    /* node (incarnation gen), removed, is stopped for good */
};

struct sim_event {
    uint64_t at;
    uint64_t seq;           /* push order: breaks ties in time deterministically */
    uint32_t gen;           /* TICK/IO/RESTART/HEAL/RESUME: stale unless it matches */
    int16_t node;
    int16_t peer;           /* SIM_EV_DISCONNECT */
    uint16_t port;          /* SIM_EV_MSG: the port the sender sent it to (0: any) */
    uint8_t kind;
    struct raft_msg msg;    /* SIM_EV_MSG: owns its entries */
};

struct sim_queue {
    struct sim_event *heap;
    size_t n, cap;
    uint64_t next_seq;
};

void sim_queue_init(struct sim_queue *q);
void sim_queue_free(struct sim_queue *q);
void sim_queue_push(struct sim_queue *q, struct sim_event *ev);  /* sets ev->seq */
bool sim_queue_pop(struct sim_queue *q, struct sim_event *out);
const struct sim_event *sim_queue_peek(const struct sim_queue *q);

/* ---- disk --------------------------------------------------------------------------- */

/* A snapshot image (see sim_snap.c) of the state machine after entry (index, term). */
struct sim_snapshot {
    raft_index_t index;      /* 0 = none */
    raft_term_t term;
    uint8_t *data;
    size_t len;
};

/* What fdatasync has made durable on one node: the hard state file, the snapshot and the
 * log file, whose entries up to offset were compacted away. The log starts from the
 * snapshot's configuration, or without one from the cluster's first configuration; a
 * server started to join a cluster (joiner) starts from none. */
struct sim_disk {
    bool joiner;
    raft_term_t term;
    int vote;
    struct sim_snapshot snap;
    raft_index_t offset;
    struct raft_entry *log;  /* log[i] is index offset + 1 + i */
    raft_index_t n, cap;
};

void sim_disk_init(struct sim_disk *d);
void sim_disk_free(struct sim_disk *d);
raft_index_t sim_disk_last(const struct sim_disk *d);
const struct raft_entry *sim_disk_entry(const struct sim_disk *d, raft_index_t index);
void sim_disk_compact(struct sim_disk *d, raft_index_t index);
void sim_disk_fit_log_to_snapshot(struct sim_disk *d);
/* The steps of persisting rd, in the order the io thread does them: hard state (its own
 * atomic rename), truncation, then each entry appended. */
uint32_t sim_disk_ready_ops(const struct raft_ready *rd);
/* Performs the first ops steps of rd. RK_OK, or RK_ERR_INVAL with why in err when rd
 * breaks the storage contract (an append that does not follow the log's end). */
int sim_disk_write(struct sim_disk *d, const struct raft_ready *rd, uint32_t ops, char *err,
                   size_t errlen);
/* A deep copy of the log after the snapshot for raft_new (NULL when empty). */
struct raft_entry *sim_disk_load(const struct sim_disk *d);
int sim_disk_append_copy(struct sim_disk *d, const struct raft_entry *e);

/* ---- invariants ----------------------------------------------------------------------- */

/* A node's log as last seen, per index (1-based; those up to base are compacted into its
 * snapshot): the entry's identity (the address of its key buffer, unique while it lives,
 * and its term) for a cheap "unchanged?" test, its fingerprint, and the hash of the log
 * prefix up to it. */
struct sim_mirror {
    raft_index_t base, n, cap;
    uintptr_t *id;
    raft_term_t *term;
    uint64_t *fp;
    uint64_t *prefix;
    raft_index_t *conf_at;  /* the latest configuration entry at or before it (<= base:
                               none in memory) */
};

/* A configuration as the checker keeps it: bit i stands for id i. */
struct sim_conf {
    uint32_t voters, members;
};

/* A configuration entry among the committed ones. */
struct sim_conf_rec {
    raft_index_t index;
    struct sim_conf conf;
};

/* One (index, term) ever seen in any log, for Log Matching. */
struct sim_lm_slot {
    raft_index_t index;      /* 0 = empty slot */
    raft_term_t term;
    uint64_t fp, prefix;
};

/* One committed index: what was applied there first, and in which leader's term. */
struct sim_committed {
    raft_term_t term;
    uint64_t fp;
    raft_term_t commit_term;
    uint64_t prefix;        /* hash of the committed log up to it */
    uint64_t digest;        /* kv_digest of the state machine after applying it */
    uint64_t events;        /* hash of the changes applying it reported (sim_check_watch.c) */
    bool events_seen;
    bool acked;
};

/* A proposal a leader made: when, and (client writes) with which time to live. */
struct sim_proposal {
    raft_index_t index;              /* 0 = empty slot */
    raft_term_t term;
    uint64_t at;
};

/* A key that the EXPIRED entry at index deleted: its deadline was set by set_index. */
struct sim_expired_rec {
    raft_index_t index, set_index;
    char key[16];
};

struct sim_checker {
    int16_t *term_leader;            /* term -> leader id + 1 (0 = none yet) */
    size_t term_cap;
    struct sim_lm_slot *lm;
    size_t lm_cap, lm_n;
    struct sim_committed *committed; /* [i] for index i, 1 .. n_committed */
    raft_index_t n_committed, committed_cap;
    raft_index_t max_acked;
    int16_t *votes[SIM_SLOTS];       /* votes[voter][term] = candidate id + 1 */
    size_t votes_cap[SIM_SLOTS];
    struct sim_conf boot;            /* the cluster's first configuration */
    struct sim_conf_rec *confs;      /* committed configuration entries, in order */
    size_t n_confs, cap_confs;
    bool conf_seen;                  /* a configuration entry was in some log */
    /* Expiring keys (sim_check_expiry.c): when each (index, term) was proposed ... */
    struct sim_proposal *props;
    size_t props_cap, props_n;
    /* ... and each key an EXPIRED entry deleted (Expired Stays Gone). */
    struct sim_expired_rec *expired;
    size_t expired_n, expired_cap;
    raft_index_t expired_upto;       /* EXPIRED entries up to here are recorded */
};

/* ---- nodes and clients -------------------------------------------------------------- */

/* A change: got (what kv_apply reported: key and val at offsets into the log's bytes) or
 * want (what the rule predicts: key and val point into the entry being applied). */
struct sim_watch_event {
    uint64_t rev;
    uint32_t kind, key_len, val_len;
    size_t key_off, val_off;
    const char *key, *val;
};

/* The changes of the entry a node is applying (sim_check_watch.c). */
struct sim_watch_log {
    struct sim_watch_event *got, *want;
    size_t n_got, cap_got, n_want, cap_want;
    char *bytes;
    size_t len, cap_bytes;
    bool open;                /* a kv_apply is under way */
};

/* A snapshot being received (the incoming snapshot file). */
struct sim_incoming {
    raft_index_t index;
    raft_term_t term;
    uint8_t *data;
    size_t len, cap;
    bool complete;            /* the last chunk is written */
};

struct sim_node {
    int id;
    char name[16];            /* "node<id>": the name the configurations give it */
    bool present;             /* the slot holds a server (it may be down) */
    bool retired;             /* removed, then stopped for good */
    uint32_t life;            /* servers this slot held so far (wiped, it holds a new one) */
    struct sim *sim;
    struct raft *raft;        /* NULL while crashed */
    struct kv *kv;            /* the applied state machine (server/kv) */
    raft_index_t applied;
    struct sim_disk disk;
    bool io_busy;             /* one Ready in flight, as with the io thread */
    struct raft_ready rd;
    struct sim_incoming incoming;
    uint64_t tick_at;
    uint32_t tick_gen, io_gen, restart_gen, pause_gen;
    uint32_t incarnation;     /* boots so far */
    uint64_t paused_until;    /* > now: paused (no ticks, deliveries or io) */
    bool ticking;
    /* What the checker saw after the previous step (reset by a crash). */
    enum raft_role seen_role;
    raft_term_t seen_term;
    raft_index_t seen_last, seen_commit;
    bool ever_leader;
    uint64_t leader_since;    /* when it became leader of seen_term */
    uint64_t last_tick;       /* its previous timer wake-up (0: none since it booted) */
    uint64_t ticking_since;   /* since when no two wake-ups were further apart than the
                                 timer allows (a pause, or ticks deferred past one, ends it) */
    struct sim_mirror mirror;
    /* What it was sent, for the checker (reset by a crash): when each peer last reached it
     * with a message of its own current term (check-quorum), and the pre-votes granted to
     * it for the highest term it asked (pre-vote). */
    uint64_t heard_at[SIM_SLOTS];
    raft_term_t heard_term[SIM_SLOTS];
    raft_term_t prevote_term;
    uint32_t prevote_grants;  /* bit i: node i granted */
    raft_term_t vote_term;    /* the votes granted to it for the highest term it asked */
    uint32_t vote_grants;
    raft_term_t tn_term;      /* a TimeoutNow from the leader of this term reached it ... */
    uint64_t tn_step;         /* ... in this step */
    int seen_vote;
    /* Its configuration as the checker saw it after the previous step. */
    struct sim_conf seen_conf, conf_before; /* conf_before: seen_conf as this step began */
    uint64_t conf_since;      /* when its voters last changed */
    uint64_t seen_conf_gen;
    raft_index_t seen_conf_want, seen_conf_base;
    /* The requests it took whose outcome has not come (0: none). */
    uint64_t conf_req, xfer_req;
    uint8_t conf_kind;        /* SIM_REQ_ADD, SIM_REQ_ADD_LEARNER or SIM_REQ_REMOVE */
    int8_t conf_target;
    uint64_t xfer_at;         /* when the transfer was asked for */
    struct node_reaper reaper; /* its proposals of expired keys (server/node/expiry.h) */
    struct sim_watch_log watch; /* what its kv reports to watchers (sim_check_watch.c) */
};

enum sim_req_kind { SIM_REQ_ADD = 1, SIM_REQ_ADD_LEARNER, SIM_REQ_REMOVE };

enum sim_op_kind { SIM_OP_SET = 1, SIM_OP_DELETE = 2, SIM_OP_GET = 3, SIM_OP_CAS = 4,
                   SIM_OP_CAD = 5, SIM_OP_SETEX = 6, SIM_OP_EXPIRE = 7, SIM_OP_CAS_TTL = 8 };

struct sim_op {
    uint64_t id;
    uint8_t kind;
    int8_t node;
    bool probe;               /* the liveness check's write */
    uint32_t incarnation;
    char key[16], val[16];
    /* writes */
    uint64_t ttl_ms;          /* setex, expire, cas_ttl */
    raft_index_t index;
    raft_term_t term;
    uint64_t fp;
    /* reads */
    uint64_t read_id;
    bool read_ready;
    raft_index_t read_index;
    raft_index_t must_see;    /* highest acknowledged index when the read was sent */
};

/* The outcome of every command, by id (1-based), for sim_op_state. */
struct sim_history {
    uint8_t *state;
    size_t n, cap;
};

/* ---- trace ------------------------------------------------------------------------- */

enum sim_rec_kind { REC_RECV = 1, REC_DROP, REC_SYNC, REC_ROLE, REC_APPLY, REC_TEXT };

struct sim_rec {
    uint64_t t;
    uint64_t a[9];
    int16_t node, peer;
    uint8_t kind, sub;
    char text[SIM_TEXT_LEN];
};

struct sim_trace {
    struct sim_rec ring[SIM_TRACE_RING];
    uint64_t count;
    uint64_t hash;
    void (*fn)(void *ctx, const char *line);
    void *ctx;
};

/* ---- the simulator -------------------------------------------------------------------- */

struct sim {
    struct sim_params p;
    uint64_t rng;
    uint64_t now;
    uint64_t steps;
    struct sim_queue q;
    struct sim_node node[SIM_SLOTS];
    int n_slots;              /* slots 0 .. n_slots-1 have held a server */
    bool cut[SIM_SLOTS][SIM_SLOTS];           /* cut[a][b]: a -> b is lost */
    uint32_t link_delay[SIM_SLOTS][SIM_SLOTS]; /* 0 = random */
    uint32_t partition_gen;
    bool (*filter)(void *ctx, struct raft_msg *m);
    void *filter_ctx;
    bool started, clients_on, faults_on, members_on;
    bool crash_next_write;    /* the next node to start writing crashes before it syncs */
    struct sim_checker chk;
    struct sim_trace tr;
    struct sim_op *ops;       /* pending client commands */
    size_t n_ops, cap_ops;
    uint64_t next_op_id, next_read_id;
    struct sim_history hist;
    uint64_t next_req;        /* membership and transfer requests: ids ... */
    int8_t *req_rc;           /* ... and outcomes (1: none yet) */
    size_t cap_req;
    uint64_t probe_id;        /* liveness: the probe write in flight, or 0 */
    raft_index_t probe_acked; /* its index once acknowledged */
    struct sim_stats stats;
    bool failed;
    char fail_text[400];
    char fail_inv[64];
    char fail_detail[320];
};

/* sim.c */
bool sim_step(struct sim *s);     /* runs the next event; false if there is none */
uint64_t sim_rand(struct sim *s);
uint64_t sim_below(struct sim *s, uint64_t n);                  /* 0 .. n-1 (0 if n == 0) */
uint64_t sim_between(struct sim *s, uint64_t lo, uint64_t hi);  /* lo .. hi */
bool sim_chance(struct sim *s, uint32_t permille);
void sim_fail(struct sim *s, const char *invariant, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_push(struct sim *s, uint64_t at, uint8_t kind, int node, uint32_t gen);
int sim_pick_up_node(struct sim *s, bool unpaused);             /* random, or -1 */
int sim_current_leader(const struct sim *s);

/* sim_node.c */
uint16_t sim_node_port(int id, uint32_t life); /* where the server of that life listens */
void sim_node_boot(struct sim *s, struct sim_node *n);
void sim_node_after_step(struct sim *s, struct sim_node *n);
void sim_node_tick(struct sim *s, struct sim_node *n);
void sim_node_io_done(struct sim *s, struct sim_node *n);
void sim_node_disconnected(struct sim *s, struct sim_node *n, int peer);
void sim_node_crash(struct sim *s, struct sim_node *n, enum sim_tear tear);
void sim_node_pause(struct sim *s, struct sim_node *n, uint64_t ms);
void sim_node_schedule_tick(struct sim *s, struct sim_node *n);
void sim_node_free(struct sim_node *n);
bool sim_node_paused(const struct sim *s, const struct sim_node *n);

/* sim_net.c */
void sim_net_send(struct sim *s, int from, const struct raft_msg *m);
void sim_net_deliver(struct sim *s, struct sim_event *ev);
void sim_net_isolate(struct sim *s, int node);
void sim_net_split(struct sim *s, uint32_t minority_mask);
void sim_net_heal(struct sim *s);

/* sim_client.c */
void sim_client_random(struct sim *s);
int sim_client_write(struct sim *s, int node, uint8_t kind, const char *key, const char *val,
                     bool probe, uint64_t *op_id);
int sim_client_write_ttl(struct sim *s, int node, uint8_t kind, const char *key,
                         const char *val, uint64_t ttl_ms, bool probe, uint64_t *op_id);
int sim_client_read(struct sim *s, int node, const char *key, uint64_t *op_id);
void sim_client_on_apply(struct sim *s, struct sim_node *n, raft_index_t index,
                         const struct raft_entry *e);
void sim_client_take_reads(struct sim *s, struct sim_node *n);
void sim_client_drop_node(struct sim *s, int node);
void sim_client_drop_up_to(struct sim *s, int node, raft_index_t index);
void sim_client_free(struct sim *s);

/* sim_snap.c */
void sim_snap_free(struct sim_snapshot *sn);
bool sim_snap_build(const struct sim_snapshot *base, const struct raft *r, raft_index_t to,
                    struct sim_snapshot *out);
bool sim_snap_decode(const uint8_t *data, size_t len, raft_index_t index, raft_term_t term,
                     bool (*fn)(void *ctx, raft_index_t i, const struct raft_entry *e), void *ctx);
struct kv *sim_snap_load_kv(const struct sim_snapshot *sn);
/* The configuration an image holds (false if none can be read). */
bool sim_snap_conf(const struct sim_snapshot *sn, struct membership *out);
void sim_snap_maybe_take(struct sim *s, struct sim_node *n);
bool sim_snap_fill_chunk(struct sim *s, int from, struct raft_msg *m);
void sim_snap_write_chunks(struct sim *s, struct sim_node *n, const struct raft_ready *rd);
void sim_snap_install(struct sim *s, struct sim_node *n);

/* sim_member.c */
void sim_member_random(struct sim *s, int node);
void sim_member_take_results(struct sim *s, struct sim_node *n);
void sim_member_drop_node(struct sim *s, struct sim_node *n);
void sim_member_retire(struct sim *s, int node);
void sim_member_new_leader(struct sim *s, struct sim_node *n);
void sim_member_after_tick(struct sim *s, const struct sim_node *n);
void sim_member_heal(struct sim *s);
bool sim_member_counts(const struct sim *s, int node); /* in the liveness check */
void sim_member_free(struct sim *s);

/* sim_fault.c */
void sim_fault_random(struct sim *s);
void sim_fault_crash_writer(struct sim *s, int node);
void sim_fault_new_leader(struct sim *s, struct sim_node *n);
void sim_fault_kill(struct sim *s, int node);
void sim_fault_weather(struct sim *s);

/* sim_check.c */
void sim_check_init(struct sim_checker *c);
void sim_check_free(struct sim_checker *c);
uint64_t sim_check_entry_fp(const struct raft_entry *e);
void sim_check_observe(struct sim *s, struct sim_node *n);
void sim_check_deliver(struct sim *s, struct sim_node *n, const struct raft_msg *m);
void sim_check_leader_quorum(struct sim *s, const struct sim_node *n);
void sim_check_apply(struct sim *s, struct sim_node *n, raft_index_t index,
                     const struct raft_entry *e);
void sim_check_ack(struct sim *s, raft_index_t index, uint64_t fp);
void sim_check_read(struct sim *s, const struct sim_node *n, const struct sim_op *op);
void sim_check_sync_before(struct sim *s, const struct sim_node *n, const struct raft_ready *rd,
                           uint32_t ops);
void sim_check_sync_after(struct sim *s, const struct sim_node *n, const struct raft_ready *rd);
void sim_check_early_msg(struct sim *s, const struct sim_node *n, const struct raft_msg *m);
void sim_check_durable_majority(struct sim *s);
void sim_check_audit_logs(struct sim *s);
void sim_check_snapshot(struct sim *s, const struct sim_node *n, const struct sim_snapshot *sn);
void sim_check_loaded_state(struct sim *s, const struct sim_node *n);
void sim_mirror_free(struct sim_mirror *m);
uint64_t sim_check_mix(uint64_t x);
bool sim_check_disk_holds(const struct sim_disk *d, raft_index_t index, uint64_t fp);

/* sim_check_expiry.c: expiring keys */
void sim_check_proposed(struct sim *s, raft_index_t index, raft_term_t term);
/* When (index, term) was proposed: false if no leader of the simulation proposed it. */
bool sim_check_proposed_at(struct sim *s, raft_index_t index, raft_term_t term, uint64_t *at);
/* Around kv_apply of e at index on n: what the entry's keys held before, then the rules
 * of expiry checked against what they hold after (result: kv_apply's). */
struct sim_expiry_before;
struct sim_expiry_before *sim_check_expiry_before(struct sim *s, const struct sim_node *n,
                                                  const struct raft_entry *e);
void sim_check_expiry_after(struct sim *s, const struct sim_node *n, raft_index_t index,
                            const struct raft_entry *e, int result,
                            struct sim_expiry_before *before);
/* Expired Stays Gone: n (applied up to n->applied) holds no key an EXPIRED entry up to
 * there deleted, with the deadline it deleted (only of EXPIRED entries at from .. applied). */
void sim_check_expired_gone(struct sim *s, const struct sim_node *n, raft_index_t from);
void sim_check_expiry_free(struct sim_checker *c);

/* sim_check_watch.c: the changes kv_apply reports for watchers (Watch Events) */
void sim_watch_attach(struct sim_node *n); /* n->kv reports its changes to n->watch */
void sim_watch_free(struct sim_watch_log *w);
/* Around kv_apply of e at index on n: the rule's changes predicted from the map before,
 * then compared with those reported, and with what other servers reported there (after
 * sim_check_apply). */
void sim_check_watch_before(struct sim *s, struct sim_node *n, const struct raft_entry *e);
void sim_check_watch_after(struct sim *s, struct sim_node *n, raft_index_t index,
                           const struct raft_entry *e);

/* sim_expiry.c: the leader's reaper (server/node/expiry.c) */
uint64_t sim_node_clock(const struct sim *s, const struct sim_node *n); /* its clock, ms */
uint64_t sim_expiry_next(const struct sim *s, const struct sim_node *n); /* sim time */
void sim_expiry_run(struct sim *s, struct sim_node *n);

/* sim_check_conf.c: the configuration invariants (thesis §4) */
struct sim_conf sim_conf_of(struct sim *s, const struct membership *ms);
struct sim_conf sim_conf_of_node(struct sim *s, const struct sim_node *n);
bool sim_conf_of_entry(struct sim *s, const struct raft_entry *e, struct sim_conf *out);
int sim_conf_majority(uint32_t voters);
struct sim_conf sim_conf_committed_at(const struct sim_checker *c, raft_index_t index);
struct sim_conf sim_conf_latest_committed(const struct sim_checker *c);
void sim_conf_boot(struct sim *s, struct membership *out); /* the first configuration */
void sim_conf_committed(struct sim *s, raft_index_t index, const struct raft_entry *e);
void sim_conf_entry_seen(struct sim *s, struct sim_node *n, raft_index_t index,
                         const struct raft_entry *e);
void sim_conf_observe(struct sim *s, struct sim_node *n, raft_index_t from);
void sim_conf_check_commit(struct sim *s, struct sim_node *n);
void sim_conf_check_elected(struct sim *s, const struct sim_node *n);
void sim_conf_check_vote(struct sim *s, const struct sim_node *n);
void sim_conf_check_snapshot(struct sim *s, const struct sim_node *n,
                             const struct sim_snapshot *sn);
void sim_conf_deliver(struct sim *s, struct sim_node *n, const struct raft_msg *m);
void sim_conf_check_sent(struct sim *s, const struct sim_node *n, const struct raft_msg *m,
                         bool early);
/* n's core gave out the Ready rd (its messages leave once it is durable). */
void sim_conf_check_taken(struct sim *s, const struct sim_node *n, const struct raft_ready *rd);

/* sim_trace.c */
void sim_trace_init(struct sim_trace *t, void (*fn)(void *, const char *), void *ctx);
void sim_trace_mix(struct sim_trace *t, uint64_t v);
void sim_trace_recv(struct sim *s, int to, const struct raft_msg *m);
void sim_trace_drop(struct sim *s, int to, const struct raft_msg *m, const char *why);
void sim_trace_sync(struct sim *s, int node, const struct raft_ready *rd);
void sim_trace_role(struct sim *s, const struct sim_node *n);
void sim_trace_apply(struct sim *s, int node, raft_index_t from, raft_index_t to);
void sim_trace_text(struct sim *s, int node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Formats record i (0 = oldest kept) into buf. */
void sim_trace_format(const struct sim_rec *r, char *buf, size_t len);
char *sim_trace_ring_tail(const struct sim_trace *t, int n);

#endif
