/* tests/sim/sim.h - a deterministic cluster simulator: N Raft cores (server/core) driven as
 * the threaded server drives them, over a simulated network, clock and disk, all from one
 * seeded PRNG, with the Raft paper's Figure 3 properties checked after every step. */
#ifndef RK_SIM_H
#define RK_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "../../common/raft_msg.h"
#include "../../server/core/raft.h"

/* Two ways to use it: sim_run_seed() runs a random fault schedule for one seed (what make
 * check and the sim program do); the sim_* scenario calls below build a hand-written,
 * deterministic schedule (tests/unit_sim.c). */

#define SIM_MAX_NODES 7            /* the first configuration, and voters at any time */
#define SIM_SLOTS 8                /* node ids 0 .. SIM_SLOTS-1: servers added later take
                                      the lowest id free in the leader's configuration */
#define SIM_TRACE_TAIL 40          /* trace lines printed with a failure */
#define SIM_LIVENESS_MS 10000      /* after healing, a write must commit within this ... */
#define SIM_CONVERGE_MS 30000      /* ... and every node must apply it within this */

struct sim;

/* ---- random runs ------------------------------------------------------------------ */

struct sim_stats {
    uint64_t leaders;          /* leaderships observed (one per node and term) */
    uint64_t crashes, torn_writes, lost_writes, restarts;
    uint64_t partitions, pauses, weather_changes;
    uint64_t delivered, dropped, duplicated;
    uint64_t snap_chunks;      /* InstallSnapshot chunks delivered */
    uint64_t expiry_batches, expired_keys; /* EXPIRED entries that deleted keys, and the keys */
    uint64_t watch_events;     /* changes kv_apply reported (and Watch Events checked) */
    uint64_t writes_acked, writes_lost, reads_ok, reads_failed, rejected;
    uint64_t max_term, max_commit;
    uint64_t adds, removes, transfers;        /* membership requests a leader took ... */
    uint64_t adds_ok, removes_ok, transfers_ok; /* ... and those that succeeded */
    uint64_t liveness_ms;      /* how long the healed cluster took to commit a write */
    uint64_t sim_ms;           /* simulated time of the run */
};

struct sim_run_opts {
    int n_nodes;               /* 1 .. SIM_MAX_NODES */
    uint32_t steps;            /* events processed before healing (then the liveness check) */
    /* Optional: every trace line, as it happens (the --trace option). */
    void (*trace_fn)(void *ctx, const char *line);
    void *trace_ctx;
    const char *replay_bin;    /* named in the replay command; NULL = build/default/sim */
    uint32_t timeout_s;        /* isolated runs: a run taking longer fails as "Timeout" (0 = no limit) */
};

struct sim_result {
    bool ok;
    uint64_t seed;
    int n_nodes;
    uint64_t steps;            /* including the liveness phase */
    uint64_t sim_ms;           /* simulated time at the end */
    uint64_t trace_hash;       /* a hash of the whole trace: equal seeds, equal hashes */
    char invariant[64];        /* the invariant broken, or "" */
    char detail[320];
    char *report;              /* on failure: seed, invariant, trace tail, replay command */
    struct sim_stats stats;
};

/* Runs one seed: a random fault schedule for opts->steps events, checking every invariant
 * after each, then heals everything and checks liveness. Fills *res (free with
 * sim_result_free). Returns res->ok. */
bool sim_run_seed(uint64_t seed, const struct sim_run_opts *opts, struct sim_result *res);
/* The same in a child process, so that a crash of the core (a signal) is reported as a
 * failure of this seed, with its trace tail, instead of ending the caller. */
bool sim_run_seed_isolated(uint64_t seed, const struct sim_run_opts *opts,
                           struct sim_result *res);
void sim_result_free(struct sim_result *res);

/* ---- scenarios -------------------------------------------------------------------- */

/* A quiet, deterministic cluster: fixed 5 ms links, no loss, 1 ms disk, no jitter, no
 * random clients or faults. Change fields before sim_new. */
struct sim_params {
    int n_nodes;
    uint64_t seed;
    uint32_t election_min_ms, election_max_ms, heartbeat_ms;
    uint32_t max_append_entries;               /* 0 = the core's default */
    uint32_t max_append_bytes;                 /* 0 = the core's default */
    bool pre_vote, check_quorum;               /* the core's switches (the server: both) */
    bool early_msgs;        /* send raft_take_early_msgs() at once, as thesis §10.2.1 */
    bool disconnects;       /* a crash closes its connections: peers are told at once */
    uint32_t delay_min_ms, delay_max_ms;       /* per message, uniform */
    uint32_t loss_permille, dup_permille;
    uint32_t straggle_permille; /* a message is held back 100 ms .. 3 election timeouts */
    uint32_t trim_permille;     /* an AppendEntries arrives with only a prefix of its entries
                                   (a leader may always send fewer, down to a heartbeat) */
    uint32_t disk_min_ms, disk_max_ms;         /* Ready taken -> fdatasync returned */
    uint32_t disk_extra_ms[SIM_SLOTS];         /* a slower disk on some nodes */
    uint32_t tick_jitter_ms[SIM_SLOTS];        /* each tick is late by up to this */
    uint64_t clock_offset_ms[SIM_SLOTS];  /* a node's own clock: sim time + this (its
                                             expiring keys' deadlines count on it) */
    uint32_t expiry_batch_keys;  /* keys per EXPIRED entry (0: the server's 2000) */
    bool random_clients, random_faults, random_members;
    uint32_t client_gap_ms, fault_gap_ms;      /* mean gap between random events */
    uint32_t member_gap_ms;   /* ... between random adds, removes and transfers */
    uint32_t catchup_max_ms;  /* the core's limits for an add (0: its defaults) */
    uint32_t unreachable_ms;
    uint32_t burst_permille;  /* a random client sends 2 .. 24 writes at once ... */
    uint32_t stale_permille;  /* ... or writes to any node that thinks it leads (an old
                                 leader cut off from the rest grows a long divergent tail) */
    uint32_t leader_crash_permille;            /* a new leader crashes soon after winning */
    uint32_t snap_every;      /* a snapshot every so many applied entries (0 = never) */
    uint32_t snap_lag;        /* compaction keeps up to this many entries behind it */
    uint32_t snap_chunk;      /* bytes per InstallSnapshot chunk ... */
    uint32_t snap_max_chunks; /* ... grown so a snapshot takes at most this many (0: any) */
    void (*trace_fn)(void *ctx, const char *line);
    void *trace_ctx;
};

void sim_params_quiet(struct sim_params *p, int n_nodes, uint64_t seed);

/* How a crash treats the write that was not yet fdatasync'ed. */
enum sim_tear {
    SIM_TEAR_RANDOM = 0, /* one of the three below, drawn from the PRNG */
    SIM_TEAR_LOSE,       /* nothing of it survives */
    SIM_TEAR_PARTIAL,    /* a random prefix of (hard state, truncation, entries...) */
    SIM_TEAR_KEEP,       /* all of it reached the disk before the crash */
};

/* What became of a client command. */
enum sim_op_state { SIM_OP_UNKNOWN = 0, SIM_OP_PENDING, SIM_OP_ACKED, SIM_OP_LOST,
                    SIM_OP_REJECTED };

struct sim *sim_new(const struct sim_params *p);
void sim_free(struct sim *s);
/* Before sim_start: node's disk holds this term, vote and a log whose entry i has
 * terms[i - 1] (each a "set" of a key named after its index). */
void sim_preload(struct sim *s, int node, raft_term_t term, int vote,
                 const raft_term_t *terms, raft_index_t n);
/* Boots every node from its disk. */
void sim_start(struct sim *s);

/* Runs every event due in the next ms of simulated time. */
void sim_run_for(struct sim *s, uint64_t ms);
/* Runs until pred holds (checked after every event) or max_ms passes. */
bool sim_run_until(struct sim *s, uint64_t max_ms, bool (*pred)(struct sim *s, void *ctx),
                   void *ctx);

void sim_campaign(struct sim *s, int node);               /* raft_campaign now */
void sim_set_ticking(struct sim *s, int node, bool on);   /* off: no timeouts at all */
void sim_crash(struct sim *s, int node, enum sim_tear tear);
void sim_restart(struct sim *s, int node);
void sim_isolate(struct sim *s, int node);                /* both directions */
void sim_cut(struct sim *s, int from, int to, bool cut);  /* one direction */
void sim_heal(struct sim *s);                             /* every cut */
void sim_set_link_delay(struct sim *s, int from, int to, uint32_t ms);  /* 0 = random */
void sim_set_disk_extra(struct sim *s, int node, uint32_t ms);         /* a slower disk */
/* Called for each message sent: returning false drops it; lowering m->n_entries delivers
 * an AppendEntries without its last entries (as if the leader had sent fewer). */
void sim_set_filter(struct sim *s, bool (*keep)(void *ctx, struct raft_msg *m), void *ctx);

/* A client "set" sent to node: RK_OK (then *op_id names it) or RK_ERR_NOTLEADER. */
int sim_client_set(struct sim *s, int node, const char *key, const char *val,
                   uint64_t *op_id);
/* A client "get" (ReadIndex) sent to node: the same. Its answer is checked to reflect
 * every write acknowledged before it was sent. */
int sim_client_get(struct sim *s, int node, const char *key, uint64_t *op_id);
enum sim_op_state sim_op_state(const struct sim *s, uint64_t op_id);
/* Expiring keys: a "setex" (key := val, deleted ttl_ms after it is applied) and an
 * "expire" (a new time to live for a key that is there) sent to node, as sim_client_set. */
int sim_client_setex(struct sim *s, int node, const char *key, const char *val,
                     uint64_t ttl_ms, uint64_t *op_id);
int sim_client_expire(struct sim *s, int node, const char *key, uint64_t ttl_ms,
                      uint64_t *op_id);
/* Whether node (up) holds key in its state machine. */
bool sim_has_key(const struct sim *s, int node, const char *key);
/* The time from now to key's deadline on node's clock (false: node down or key absent;
 * UINT64_MAX: no deadline). */
bool sim_ttl_left(struct sim *s, int node, const char *key, uint64_t *left_ms);
/* When the EXPIRED entry that last deleted key was proposed (sim time), or 0 if none did. */
uint64_t sim_expired_at(struct sim *s, const char *key);

/* Membership changes and leadership transfer (Raft thesis §4, §3.10), asked of node (a
 * leader). Each returns the core's answer (RK_OK: started; *req then names the request,
 * whose outcome sim_outcome gives once the core reports it). An add puts a new server
 * in the lowest id the leader's configuration has free (*slot): whatever ran there is
 * stopped and its disk wiped; the new server starts with no configuration after
 * boot_after_ms (0: at once; < 0: not until sim_restart). */
int sim_add_server(struct sim *s, int node, bool learner_only, int64_t boot_after_ms,
                   int *slot, uint64_t *req);
int sim_remove_server(struct sim *s, int node, int target, bool force, uint64_t *req);
int sim_transfer(struct sim *s, int node, int target, uint64_t *req); /* -1: any voter */
/* The outcome of request req: an RK_* code, or 1 while none came (yet). */
int sim_outcome(const struct sim *s, uint64_t req);
/* The voters and members (bit i: id i) of node's configuration in effect (0 if down). */
uint32_t sim_voters(const struct sim *s, int node);
uint32_t sim_members(const struct sim *s, int node);

/* Queries. */
const struct raft *sim_core(const struct sim *s, int node);   /* NULL while down */
raft_index_t sim_applied(const struct sim *s, int node);
int sim_leader(const struct sim *s);             /* the up leader of the highest term, or -1 */
int sim_term_leader(const struct sim *s, raft_term_t term);  /* who led term, or -1 */
bool sim_ever_leader(const struct sim *s, int node);
raft_index_t sim_max_applied(const struct sim *s);  /* highest index applied anywhere */
uint64_t sim_now(const struct sim *s);
/* Do the in-memory logs of a and b end at the same index and hold the same entries
 * where neither is compacted? */
bool sim_logs_equal(const struct sim *s, int a, int b);
/* NULL while every invariant holds; else "Invariant: detail". */
const char *sim_failure(const struct sim *s);
/* The last n trace lines, one per line, in a malloc'ed string. */
char *sim_trace_tail(const struct sim *s, int n);
const struct sim_stats *sim_stats(const struct sim *s);

#endif
