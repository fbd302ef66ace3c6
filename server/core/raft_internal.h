/* server/core/raft_internal.h - the Raft core's private state, shared by the core's files:
 * core.c (life cycle, Ready, role changes), log.c (the in-memory log), election.c,
 * replication.c, snapshot.c and read_index.c. Nothing outside server/core includes this.
 * The functions declared here are the core's internals: each is named core_ and its
 * file's module (core_log_, core_election_, core_repl_, core_snap_, core_read_index_;
 * plain core_ for core.c), apart from the public raft_ API of raft.h. */
#ifndef RK_RAFT_INTERNAL_H
#define RK_RAFT_INTERNAL_H

#include "raft.h"

#define RAFT_MAX_NODES 64

/* The in-memory log. Entries up to offset are compacted into a snapshot (whose last
 * entry has snap_term); entries[i] holds index offset + 1 + i, up to last. Indexes up to
 * stable are durable; those from unstable_from on have not yet been handed to the
 * caller in a Ready. */
struct raft_log {
    struct raft_entry *entries;
    size_t cap;
    raft_index_t offset;
    raft_term_t snap_term;
    raft_index_t last;
    raft_index_t stable;
    raft_index_t unstable_from;
    raft_index_t truncate_from; /* 0, or the lowest index dropped that storage may hold */
};

/* A leader's view of one follower (the PROBE/REPLICATE states of etcd-io/raft). */
enum raft_progress_state { RAFT_PROBE = 0, RAFT_REPLICATE = 1, RAFT_SNAPSHOT = 2 };

struct raft_progress {
    raft_index_t next;   /* Figure 2, nextIndex */
    raft_index_t match;  /* Figure 2, matchIndex */
    enum raft_progress_state state;
    bool paused;         /* PROBE: one AppendEntries outstanding, wait for its reply */
    uint64_t acked_ctx;  /* highest heartbeat round (read_ctx) it answered this term */
    raft_index_t snap_index; /* SNAPSHOT: the snapshot being sent ... */
    uint64_t snap_offset;    /* ... and the next byte the follower expects */
};

/* A follower's snapshot being received from the leader (Figure 13). */
struct raft_incoming_snapshot {
    bool active;
    bool installing;     /* the last chunk was handed out; waiting for the caller */
    raft_index_t index;
    raft_term_t term;
    uint64_t next_offset;
    int from;
};

struct raft_pending_read {
    uint64_t id;
    uint64_t ctx;        /* heartbeat round that must reach a majority */
    raft_index_t index;  /* commit index to wait for; 0 until known */
};

struct raft {
    struct raft_config cfg;
    char names[RAFT_MAX_NODES][64]; /* for notices: cfg.node_names, or "node3" */

    /* Persistent state (Figure 2) and what of it is known durable. */
    raft_term_t term;
    int voted_for;
    bool hard_state_dirty;
    raft_term_t durable_term;
    int durable_vote;
    struct raft_log log;

    /* Volatile state. */
    enum raft_role role;
    int leader;
    raft_index_t commit;
    uint64_t now;
    uint64_t election_deadline;
    uint64_t heartbeat_deadline;
    uint64_t rng;

    /* Candidate (and pre-candidate): votes granted, by node. */
    bool granted[RAFT_MAX_NODES];
    bool pre_voting;             /* a follower running a pre-vote for term + 1 */
    uint64_t leader_contact;     /* when we last heard from the current leader */

    /* Leader, check-quorum: who answered since the last check, and when it is due. */
    bool active[RAFT_MAX_NODES];
    uint64_t quorum_deadline;

    /* Leader. */
    struct raft_progress progress[RAFT_MAX_NODES];
    uint64_t read_ctx;
    struct raft_pending_read *reads;
    uint32_t n_reads;
    size_t cap_reads;

    /* Snapshots (§7): the last one saved or installed, and one being received. */
    raft_index_t snap_index;
    raft_term_t snap_term;
    struct raft_incoming_snapshot incoming;

    /* Outputs waiting for the caller. */
    struct raft_snap_chunk *chunks;
    uint32_t n_chunks;
    size_t cap_chunks;
    raft_index_t reset_log_to;
    struct raft_msg *outbox;
    uint32_t n_out;
    size_t cap_out;
    struct raft_read *done_reads;
    uint32_t n_done_reads;
    size_t cap_done_reads;
};

/* log.c */
void core_log_init(struct raft_log *log, raft_index_t offset, raft_term_t snap_term,
                   struct raft_entry *entries, raft_index_t n);
void core_log_compact(struct raft_log *log, raft_index_t index);
void core_log_reset(struct raft_log *log, raft_index_t offset, raft_term_t snap_term);
void core_log_free(struct raft_log *log);
raft_term_t core_log_term_at(const struct raft_log *log, raft_index_t index); /* 0 if none */
const struct raft_entry *core_log_get(const struct raft_log *log, raft_index_t index);
int core_log_append_copy(struct raft_log *log, const struct raft_entry *e);
int core_log_append_owned(struct raft_log *log, struct raft_entry *e);
void core_log_truncate(struct raft_log *log, raft_index_t from);
raft_index_t core_log_first_of_term(const struct raft_log *log, raft_index_t index);
raft_index_t core_log_last_of_term(const struct raft_log *log, raft_term_t term,
                                   raft_index_t at_most);

/* core.c */
int core_majority(const struct raft *r);
const char *core_node_name(const struct raft *r, int id);
void core_notice(struct raft *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void core_send(struct raft *r, struct raft_msg *m);  /* takes ownership of m->entries */
void core_drop_acks_from(struct raft *r, raft_index_t index);
void core_reset_election_timer(struct raft *r);
void core_shorten_election_timer(struct raft *r);
void core_become_follower(struct raft *r, raft_term_t term, int leader);
void core_become_candidate(struct raft *r);
void core_become_leader(struct raft *r);

/* election.c */
void core_election_timeout(struct raft *r);
bool core_election_in_lease(const struct raft *r);
void core_election_check_leader_quorum(struct raft *r);
void core_election_recv_prevote(struct raft *r, const struct raft_msg *m);
void core_election_recv_prevote_resp(struct raft *r, const struct raft_msg *m);
void core_election_check_quorum(struct raft *r);
void core_election_recv_vote(struct raft *r, const struct raft_msg *m);
void core_election_recv_vote_resp(struct raft *r, const struct raft_msg *m);

/* replication.c */
void core_repl_broadcast(struct raft *r);
void core_repl_heartbeat(struct raft *r);
void core_repl_maybe_commit(struct raft *r);
void core_repl_recv_append(struct raft *r, const struct raft_msg *m);
void core_repl_recv_append_resp(struct raft *r, const struct raft_msg *m);
void core_repl_follow(struct raft *r, const struct raft_msg *m);
void core_repl_accepted(struct raft *r, int peer, raft_index_t match);

/* snapshot.c */
void core_snap_send(struct raft *r, int peer);
void core_snap_recv(struct raft *r, const struct raft_msg *m);
void core_snap_recv_resp(struct raft *r, const struct raft_msg *m);
void core_snap_free_chunks(struct raft *r);

/* read_index.c */
void core_read_index_on_ack(struct raft *r);
void core_read_index_fail_all(struct raft *r);

#endif
