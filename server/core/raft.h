/* server/core/raft.h - the Raft core: every rule of the Raft paper's Figure 2, with no I/O.
 *
 * The core never reads a clock, sends a message or touches a disk. It takes events
 * (a message, a tick with the current time, a client proposal, "this batch is durable")
 * and accumulates what the caller must do, which the caller takes with raft_ready_take():
 *   1. persist the hard state (term, vote) if it changed,
 *   2. drop log entries from truncate_from on, then append the new entries,
 *   3. fdatasync, and only then
 *   4. send the messages, and call raft_ready_done().
 * The commit index (raft_commit_index) says what may be applied; ReadIndex answers come
 * from raft_take_reads(). The threaded server and the tests drive the same core. */
#ifndef RK_RAFT_H
#define RK_RAFT_H

#include <stdbool.h>
#include <stdint.h>

#include "../../common/membership.h"
#include "../../common/raft_msg.h"

#define RAFT_MAX_NODES MEMBERSHIP_MAX /* node ids are 0 .. RAFT_MAX_NODES-1 */
/* A vote cast for a server the configuration no longer knows (it was removed): it still
 * counts as cast in its term, for nobody now. */
#define RAFT_VOTE_ELSEWHERE RAFT_MAX_NODES

struct raft;

enum raft_role { RAFT_FOLLOWER = 0, RAFT_CANDIDATE = 1, RAFT_LEADER = 2 };

struct raft_config {
    /* The configuration the log starts from (Raft thesis §4): a snapshot's, or a new
     * cluster's first one; empty for a server that joins a cluster. Our id is the id of
     * the member named self_name (none: we are not a member, so we never campaign). */
    const struct membership *members;
    const char *self_name;
    /* Without members: n_nodes voters with ids 0 .. n_nodes-1 (named node_names, below),
     * and self is our id. */
    int self;
    int n_nodes;                     /* cluster size, 1 .. 64 */
    uint32_t election_timeout_min_ms;/* election timeout is uniform in [min, max) */
    uint32_t election_timeout_max_ms;
    uint32_t heartbeat_ms;
    uint32_t max_append_entries;     /* entries per AppendEntries (0 = 1024) */
    uint32_t max_append_bytes;       /* approximate bytes per AppendEntries (0 = 1 MiB) */
    uint32_t catchup_max_ms;         /* a server being added must catch up within this
                                        (0 = 60000), thesis §4.2.1 */
    uint32_t unreachable_ms;         /* ... and answer within this (0 = 10 election
                                        timeouts), or the add fails */
    uint64_t seed;                   /* seeds the core's own PRNG (timeouts) */
    bool pre_vote;                   /* thesis §9.6: win a pre-vote before raising the term */
    bool check_quorum;               /* thesis §6.2: a leader that has not heard from a
                                        majority for an election timeout steps down, and
                                        followers that hear from a leader ignore votes */
    /* Optional: node names by id, used only in notices (copied by raft_new). */
    const char *const *node_names;
    /* Optional: human-readable notices (role changes, catching up a follower). */
    void (*log_fn)(void *ctx, const char *msg);
    void *log_ctx;
};

/* Work for the caller, in order: hard state, truncation, entries, sync, then messages.
 * All pointers are deep copies owned by the ready; free with raft_ready_free(). */
struct raft_ready {
    bool hard_state_changed;
    raft_term_t term;
    int voted_for;                /* node id or RAFT_NO_NODE */

    raft_index_t truncate_from;   /* 0 = none; else drop stored entries with index >= this */
    raft_index_t first_index;     /* index of entries[0] */
    uint32_t n_entries;
    struct raft_entry *entries;

    uint32_t n_msgs;
    struct raft_msg *msgs;        /* msgs[i].to is the destination */

    /* A follower receiving a snapshot (Figure 13): chunks to write, in order, to the
     * incoming snapshot file; offset 0 starts a new file. After writing a chunk with
     * done set, the caller verifies the whole file, makes it the node's snapshot and
     * calls raft_snapshot_installed(). Done after the log steps above. */
    uint32_t n_snap_chunks;
    struct raft_snap_chunk *snap_chunks;

    /* 0 = none; else, before anything else above, drop every stored log entry: the
     * log restarts after a just-installed snapshot at index reset_log_to (Figure 13,
     * step 7). Storage's next append is then at reset_log_to + 1. */
    raft_index_t reset_log_to;
};

struct raft_snap_chunk {
    raft_index_t index;  /* the snapshot's lastIncludedIndex ... */
    raft_term_t term;    /* ... and lastIncludedTerm */
    uint64_t offset;
    uint32_t len;
    uint8_t *data;       /* owned by the ready */
    bool done;
};

/* A ReadIndex answer (Raft thesis §6.4): once applied >= index, a read for id may be
 * served. ok = false means leadership was lost and the read must fail. */
struct raft_read {
    uint64_t id;
    raft_index_t index;
    bool ok;
};

/* Creates a core from what storage loaded. Takes ownership of entries (entries[0] is
 * index 1; they are all durable). Returns NULL on bad config or out of memory. */
struct raft *raft_new(const struct raft_config *cfg, raft_term_t term, int voted_for,
                      struct raft_entry *entries, raft_index_t n_entries, uint64_t now_ms);
/* The same, after loading a snapshot whose last entry is (snap_index, snap_term):
 * entries[0] is then index snap_index + 1, and the commit index starts at snap_index. */
struct raft *raft_new_from_snapshot(const struct raft_config *cfg, raft_index_t snap_index,
                                    raft_term_t snap_term, raft_term_t term, int voted_for,
                                    struct raft_entry *entries, raft_index_t n_entries,
                                    uint64_t now_ms);
void raft_free(struct raft *r);

/* ---- Snapshots and log compaction (Raft paper §7, Figure 13) ----
 * The caller takes snapshots of its state machine; the core only learns that one is
 * durable, drops log entries it covers, tells a leader to send it to followers that
 * need compacted entries, and tells a follower to write and install one. */
/* A snapshot of the state machine up to index (applied, so committed), whose entry has
 * term, is durable. A leader sends it to a follower whose next entry is compacted. */
void raft_snapshot_saved(struct raft *r, raft_index_t index, raft_term_t term);
/* Drops in-memory entries up to index; clamped to the last saved snapshot and to the
 * durable index. The caller compacts its own storage separately. */
void raft_compact(struct raft *r, raft_index_t index);
/* The caller wrote the final chunk of an incoming snapshot (index, term) and verified it
 * (ok), or found it bad (!ok: the transfer restarts). On ok the core applies Figure 13
 * steps 6-8: it keeps its log after index if its entry at index has term, else discards
 * it (the next Ready has reset_log_to), and raises the commit index to index. Returns
 * true if the caller must now load the state machine from this snapshot and set its
 * applied index to index; false if the node is already past it (nothing to do). ms is
 * the snapshot's configuration (thesis §4.1; NULL: the one in effect at index stays). */
bool raft_snapshot_installed(struct raft *r, uint64_t now_ms, raft_index_t index,
                             raft_term_t term, bool ok, const struct membership *ms);
raft_index_t raft_snapshot_index(const struct raft *r); /* last saved/installed, or 0 */
raft_index_t raft_first_index(const struct raft *r);    /* first entry still in memory */

/* Time passes: election timeout (§5.2), heartbeats (§5.2). */
void raft_tick(struct raft *r, uint64_t now_ms);
/* A message from a peer. The core copies what it keeps. */
void raft_step(struct raft *r, uint64_t now_ms, const struct raft_msg *m);
/* Start an election now (the server's "True" start flag). */
void raft_campaign(struct raft *r, uint64_t now_ms);
/* The connection from peer closed (EOF or reset: its process most likely died). If it
 * was our leader, we stop counting on its lease and start a (pre-)vote after a short
 * random delay instead of a full election timeout. Pre-vote keeps a false alarm from
 * disturbing a healthy leader: servers that still hear from it deny the pre-vote. */
void raft_peer_disconnected(struct raft *r, uint64_t now_ms, int peer);
/* Leader only: append a command. Sets *index and *term of the new entry.
 * RK_ERR_NOTLEADER when not leader, or while handing leadership over (§3.10). */
int raft_propose(struct raft *r, uint8_t type, const char *key, uint32_t key_len,
                 const char *val, uint32_t val_len, raft_index_t *index, raft_term_t *term);
/* The same for a whole command: type, key, value, client_id and seq are copied from cmd
 * (its term is ignored). */
int raft_propose_entry(struct raft *r, const struct raft_entry *cmd, raft_index_t *index,
                       raft_term_t *term);
/* Leader only: ask to serve a linearizable read (ReadIndex). The answer comes from
 * raft_take_reads(). RK_ERR_NOTLEADER when not leader. */
int raft_read_index(struct raft *r, uint64_t read_id);
/* Takes up to max ReadIndex answers (ok or failed). Returns how many. */
uint32_t raft_take_reads(struct raft *r, struct raft_read *out, uint32_t max);

/* Moves out the queued messages that depend on nothing still to be persisted, so they
 * may be sent at once: a leader's AppendEntries (thesis §10.2.1: the leader writes its
 * own log in parallel with replicating it) and pre-votes. Sets *msgs to a malloc'ed
 * array (free each with raft_msg_free_entries, then free) and returns the count; the
 * rest stay for the next Ready. A caller that never calls this sends everything after
 * persisting, which is also correct. */
uint32_t raft_take_early_msgs(struct raft *r, struct raft_msg **msgs);

bool raft_has_ready(const struct raft *r);
/* Moves the pending work into *rd (zeroed first). RK_OK or RK_ERR_NOMEM. */
int raft_ready_take(struct raft *r, struct raft_ready *rd);
/* The caller made rd durable and sent its messages. */
void raft_ready_done(struct raft *r, uint64_t now_ms, const struct raft_ready *rd);
void raft_ready_free(struct raft_ready *rd);

/* ---- Membership changes and leadership transfer (Raft thesis §4, §3.10) ----
 * One server at a time (§4.1); each takes effect once in the log. A request is started
 * with an id; its outcome comes from raft_take_results. Only a leader takes them; only
 * one change, or one transfer, at a time. */

/* The outcome of a request: RK_OK, or why it failed (rk_strerror: RK_ERR_UNREACHABLE,
 * RK_ERR_BEHIND, RK_ERR_LOST: leadership lost with the outcome unknown, RK_ERR_TIMEOUT:
 * a transfer that did not happen within an election timeout). */
struct raft_result {
    uint64_t id;
    int rc;
};

/* Adds a server: first as a learner (§4.2.1), which receives the log but does not vote;
 * once a round of replication to it takes less than an election timeout, it is promoted
 * to voter (unless learner_only). It fails if the server never answers (unreachable_ms)
 * or does not catch up (catchup_max_ms); the learner is then removed again. RK_OK
 * (started), or at once RK_ERR_NOTLEADER, RK_ERR_BUSY, RK_ERR_EXISTS (already a voter; a
 * learner goes on to be promoted), RK_ERR_INVAL (bad name or address), RK_ERR_TOOBIG. */
int raft_add_server(struct raft *r, uint64_t id, const char *name, const char *host,
                    uint16_t port, bool learner_only);
/* Removes a server; done once the configuration without it is committed. A leader that
 * removes itself steps down then (§4.2.2). RK_OK (started), or at once RK_ERR_NOTLEADER,
 * RK_ERR_BUSY, RK_ERR_NOTFOUND, RK_ERR_INVAL (the last voter), RK_ERR_NOQUORUM (unless
 * force: the voters left that answered within an election timeout are no majority). */
int raft_remove_server(struct raft *r, uint64_t id, const char *name, bool force);
/* Hands leadership to the voter name (NULL: the most up-to-date other voter): stops
 * taking writes, brings it up to date, sends it TimeoutNow; done once it leads. Fails
 * with RK_ERR_TIMEOUT after an election timeout, and writes are taken again. RK_OK
 * (started), or RK_ERR_NOTLEADER, RK_ERR_BUSY, RK_ERR_NOTFOUND, RK_ERR_INVAL (no other
 * voter). */
int raft_transfer_leadership(struct raft *r, uint64_t id, const char *name);
/* Takes up to max outcomes. Returns how many. */
uint32_t raft_take_results(struct raft *r, struct raft_result *out, uint32_t max);
/* false: never campaign (and hand leadership away when asked), e.g. while our disk
 * stalls; true again once it answers. */
void raft_set_campaign(struct raft *r, bool allowed);
/* The configuration in effect (the latest in the log) and the index of its entry (0:
 * the one the log started from). Valid until the next call that changes the core. */
const struct membership *raft_membership(const struct raft *r, raft_index_t *index);
/* Changes whenever the configuration in effect does (a cheap test for the caller). */
uint64_t raft_membership_gen(const struct raft *r);
/* Whether we are a learner in the configuration in effect (a member that does not vote). */
bool raft_is_learner(const struct raft *r);
/* The configuration in effect at index (>= the first index still in memory - 1), for a
 * snapshot up to index. */
const struct membership *raft_membership_at(const struct raft *r, raft_index_t index);

/* When raft_tick next has something to do. */
uint64_t raft_next_deadline(const struct raft *r);

enum raft_role raft_role(const struct raft *r);
const char *raft_role_name(enum raft_role role);
raft_term_t raft_term(const struct raft *r);
int raft_voted_for(const struct raft *r);
int raft_leader(const struct raft *r);          /* known leader id, or RAFT_NO_NODE */
int raft_self(const struct raft *r);
raft_index_t raft_commit_index(const struct raft *r);
raft_index_t raft_last_index(const struct raft *r);
raft_term_t raft_last_term(const struct raft *r);
raft_index_t raft_stable_index(const struct raft *r); /* durable up to here */
/* The entry at index (first .. last), or NULL. Valid until the next call that changes the core. */
const struct raft_entry *raft_entry_at(const struct raft *r, raft_index_t index);
/* Leader's view of a peer: match index (0 if unknown or not leader). */
raft_index_t raft_peer_match(const struct raft *r, int peer);

#endif
