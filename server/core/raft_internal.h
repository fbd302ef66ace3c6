/* server/core/raft_internal.h - the Raft core's private state, shared by the core's files:
 * core.c (life cycle, Ready, role changes), log.c (the in-memory log), election.c,
 * replication.c, snapshot.c and read_index.c. Nothing outside server/core includes this.
 * The functions declared here are the core's internals: each is named core_ and its
 * file's module (core_log_, core_election_, core_repl_, core_snap_, core_read_index_;
 * plain core_ for core.c), apart from the public raft_ API of raft.h. */
#ifndef RK_RAFT_INTERNAL_H
#define RK_RAFT_INTERNAL_H

#include "raft.h"


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

/* A membership request in progress (reconfig.c): adding a server (as a learner that
 * catches up, then promoted: thesis §4.2.1), undoing a failed add, or removing one. */
enum raft_reconfig_phase {
    RECONFIG_NONE = 0,
    RECONFIG_ADDING,      /* the learner's entry is proposed; it catches up meanwhile */
    RECONFIG_CATCHING_UP, /* the learner is a member; rounds of replication until one is
                             shorter than an election timeout */
    RECONFIG_PROMOTING,   /* the entry making it a voter is proposed */
    RECONFIG_REMOVING,    /* the entry without the server is proposed */
    RECONFIG_UNDOING,     /* the add failed: the learner is to be removed again */
};

struct raft_reconfig {
    enum raft_reconfig_phase phase;
    bool has_req;             /* a caller waits for the outcome of req */
    uint64_t req;
    int id;                   /* the server being added or removed */
    bool learner_only;
    raft_index_t index;       /* the configuration entry proposed last (0: none yet) */
    uint64_t started_ms;
    uint64_t round_start_ms;  /* the current round of catch-up replication ... */
    raft_index_t round_target; /* ... ends when the learner holds this index */
    bool caught_up;           /* a round took less than an election timeout */
    bool heard;               /* the learner answered at least once */
};

/* A leadership transfer in progress (transfer.c, thesis §3.10). */
struct raft_transfer {
    bool active;
    uint64_t req;
    int target;
    uint64_t deadline;
    bool sent;                /* TimeoutNow is on its way */
};

/* A configuration entry still in the in-memory log (membership.c). */
struct raft_conf_entry {
    raft_index_t index;
    struct membership *ms;
};

struct raft {
    struct raft_config cfg;         /* members and names are not kept: see conf */

    /* Membership (thesis §4.1): the configuration in effect is the latest in the log. */
    char self_name[REGISTRY_NAME_MAX + 1];
    int self;                       /* our id in conf, or RAFT_NO_NODE (not a member) */
    struct membership conf;         /* in effect */
    raft_index_t conf_index;        /* the entry it comes from; 0: the base */
    uint64_t conf_gen;              /* counts the changes of conf */
    struct membership base_conf;    /* as of the log's offset (snapshot or bootstrap) */
    struct raft_conf_entry *confs;  /* configuration entries above the offset, in order */
    uint32_t n_confs;
    size_t cap_confs;
    bool is_member[RAFT_MAX_NODES], is_voter[RAFT_MAX_NODES];
    int n_voters;
    uint64_t heard_ms[RAFT_MAX_NODES]; /* leader: when each member last answered us */

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
    raft_term_t prevote_noticed; /* the term of the last pre-vote noticed (logged) */
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

    /* Requests (reconfig.c, transfer.c) and their outcomes. */
    struct raft_reconfig reconfig;
    struct raft_transfer transfer;
    struct raft_result *results;
    uint32_t n_results;
    size_t cap_results;
    bool no_campaign;         /* raft_set_campaign(false) */

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

/* membership.c */
void core_conf_init(struct raft *r, const struct membership *base);
/* An entry was appended at index: a configuration entry takes effect at once. */
int core_conf_appended(struct raft *r, raft_index_t index, const struct raft_entry *e);
/* Entries from index from on were dropped (a conflict, §5.3). */
void core_conf_truncated(struct raft *r, raft_index_t from);
/* Entries up to upto were compacted into a snapshot (§7). */
void core_conf_compacted(struct raft *r, raft_index_t upto);
/* A snapshot up to index was installed (Figure 13); ms is its configuration (NULL: the
 * one in effect at index). */
void core_conf_installed(struct raft *r, raft_index_t index, const struct membership *ms);
void core_conf_free(struct raft *r);
/* A majority of the voters in effect. */
int core_majority(const struct raft *r);
/* Whether we are a voter in the configuration in effect. */
bool core_self_votes(const struct raft *r);

/* reconfig.c */
/* Leader: may a configuration change be proposed now? (One at a time, and only once
 * this leader committed an entry of its own term.) */
bool core_reconfig_allowed(const struct raft *r);
void core_reconfig_committed(struct raft *r);  /* the commit index advanced */
void core_reconfig_progress(struct raft *r, int peer); /* peer acknowledged entries */
void core_reconfig_tick(struct raft *r);
void core_reconfig_lost(struct raft *r);       /* we stopped leading */
void core_result(struct raft *r, uint64_t id, int rc);

/* transfer.c */
void core_transfer_check(struct raft *r);      /* the target may be up to date now */
void core_transfer_tick(struct raft *r);
void core_transfer_leader_known(struct raft *r); /* we follow r->leader now */
void core_transfer_recv_timeout_now(struct raft *r, const struct raft_msg *m);

/* core.c */
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
/* §5.2: become a candidate now; transfer: the election a TimeoutNow asked for. */
void core_election_start(struct raft *r, bool transfer);
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
