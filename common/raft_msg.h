/* common/raft_msg.h - Raft log entries and peer messages as plain data.
 * The Raft core (server/core) produces and consumes these; common/proto.c puts them on the wire. */
#ifndef RK_RAFT_MSG_H
#define RK_RAFT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_index_t;
typedef uint64_t raft_term_t;

#define RAFT_NO_NODE (-1)

enum raft_entry_type {
    RAFT_ENTRY_NOOP = 0,   /* appended by a new leader (Raft paper §5.4.2, §8) */
    RAFT_ENTRY_SET = 1,    /* key := value */
    RAFT_ENTRY_DELETE = 2, /* remove key */
    RAFT_ENTRY_REGISTER = 3, /* open a client session; its index is the client id
                                (Raft thesis §6.3) */
    RAFT_ENTRY_CONFIG = 4, /* a new configuration (Raft thesis §4), val in the text form
                              of common/membership.h; in effect once in the log */
    RAFT_ENTRY_CAS = 5,    /* key := value, if the key's revision is `rev` (0: absent) */
    RAFT_ENTRY_CAD = 6,    /* remove key, if its revision is `rev` */
    RAFT_ENTRY_SETEX = 7,  /* key := value, deleted `ttl_ms` after it is applied */
    RAFT_ENTRY_EXPIRE = 8, /* the key (if present) is deleted `ttl_ms` after this is applied */
    RAFT_ENTRY_CAS_TTL = 9,/* a CAS whose key, if set, is deleted `ttl_ms` after */
    RAFT_ENTRY_EXPIRED = 10, /* the leader's deletion of keys whose deadline passed: val is
                                a list of (key, deadline index) records (server/kv/kv.h) */
};

/* Whether entries of this type carry `rev` (on the wire and in the log file). */
bool raft_entry_has_rev(uint8_t type);
/* Whether entries of this type carry `ttl_ms` (on the wire and in the log file). */
bool raft_entry_has_ttl(uint8_t type);

/* The bytes of an entry's key and value, shared by all its copies: the log, the
 * AppendEntries to each follower and the batch being persisted hold one allocation
 * (freed by the last raft_entry_free), so a copy costs no malloc. Never written once the
 * entry is built. */
struct raft_entry_bytes;

/* One log entry. key and val point into `bytes`; each is followed by a NUL byte for
 * convenience, but may itself hold any bytes. An entry with bytes == NULL borrows its
 * key and val (a command being proposed): raft_entry_copy copies them, and
 * raft_entry_free leaves them alone. */
struct raft_entry {
    raft_term_t term;
    uint8_t type;
    uint64_t client_id;  /* SET/DELETE: the client session (0 = none), thesis §6.3 */
    uint64_t seq;        /* SET/DELETE: the client's command number in that session */
    uint64_t rev;        /* CAS/CAD: the revision the key must have (0: it must be absent) */
    uint64_t ttl_ms;     /* SETEX/EXPIRE/CAS_TTL: the key lives this long once applied */
    uint32_t key_len;
    uint32_t val_len;
    char *key;
    char *val;
    struct raft_entry_bytes *bytes;
};

/* Fills *e with a copy of key and val (client_id and seq zero). RK_OK or RK_ERR_NOMEM. */
int raft_entry_init(struct raft_entry *e, raft_term_t term, uint8_t type,
                    const char *key, uint32_t key_len, const char *val, uint32_t val_len);
/* Gives *e a new allocation of size bytes (zeroed) and points key and val at its start;
 * the caller fills it, then sets key/val and their lengths. RK_OK or RK_ERR_NOMEM. */
int raft_entry_alloc(struct raft_entry *e, size_t size);
/* *dst becomes a copy of src: sharing src's bytes, or copying borrowed ones. */
int raft_entry_copy(struct raft_entry *dst, const struct raft_entry *src);
void raft_entry_free(struct raft_entry *e);
/* "noop", "set", "delete", "register", "config", "cas", "cad", "setex", "expire",
 * "cas_ttl", "expired", or NULL for an unknown type. */
const char *raft_entry_type_name(uint8_t type);

enum raft_msg_type {
    RAFT_MSG_VOTE = 1,        /* RequestVote RPC, Figure 2 */
    RAFT_MSG_VOTE_RESP = 2,
    RAFT_MSG_APPEND = 3,      /* AppendEntries RPC, Figure 2; empty = heartbeat */
    RAFT_MSG_APPEND_RESP = 4,
    RAFT_MSG_PREVOTE = 5,      /* Raft thesis §9.6: "would you vote for me in term T?";
                                  same fields as VOTE, term = the proposed term */
    RAFT_MSG_PREVOTE_RESP = 6, /* same fields as VOTE_RESP */
    RAFT_MSG_SNAPSHOT = 7,     /* InstallSnapshot RPC, Raft paper Figure 13: one chunk */
    RAFT_MSG_SNAPSHOT_RESP = 8,
    RAFT_MSG_TIMEOUT_NOW = 9,  /* Raft thesis §3.10: the leader hands over leadership:
                                  "start an election now" (no other field) */
};

/* A peer message. Fields not used by a type are zero. */
struct raft_msg {
    uint8_t type;
    int32_t from, to;          /* node ids (of the configuration, membership.h); the
                                  receiver sets from from the connection's handshake */
    raft_term_t term;

    /* RAFT_MSG_VOTE, RAFT_MSG_PREVOTE */
    raft_index_t last_log_index;
    raft_term_t last_log_term;
    bool transfer;             /* VOTE: the election of a leadership transfer (thesis
                                  §3.10): voters grant it even while they hear from the
                                  leader, who asked for it */

    /* RAFT_MSG_VOTE_RESP, RAFT_MSG_PREVOTE_RESP */
    bool vote_granted;

    /* RAFT_MSG_APPEND */
    raft_index_t prev_log_index;
    raft_term_t prev_log_term;
    raft_index_t leader_commit;
    uint32_t n_entries;
    struct raft_entry *entries;

    /* RAFT_MSG_APPEND_RESP */
    bool success;
    raft_index_t match_index;    /* success: the follower's log matches up to here */
    raft_index_t reject_index;   /* failure: the prev_log_index that was rejected */
    raft_index_t conflict_index; /* failure hint: first index of conflict_term, or
                                    the follower's last index + 1 if its log is short */
    raft_term_t conflict_term;   /* failure hint: term at reject_index, or 0 */

    /* RAFT_MSG_APPEND and RAFT_MSG_APPEND_RESP: heartbeat round, echoed (ReadIndex) */
    uint64_t read_ctx;

    /* RAFT_MSG_SNAPSHOT (Figure 13) and RAFT_MSG_SNAPSHOT_RESP */
    raft_index_t snap_index;   /* lastIncludedIndex of the snapshot being sent */
    raft_term_t snap_term;     /* lastIncludedTerm */
    uint64_t snap_offset;      /* SNAPSHOT: byte offset of this chunk;
                                  SNAPSHOT_RESP: the next offset the follower expects */
    uint32_t snap_len;         /* SNAPSHOT: bytes in snap_data */
    uint8_t *snap_data;        /* SNAPSHOT: the chunk; owned by the message. The core
                                  sends it NULL: whoever encodes the message reads the
                                  chunk from the snapshot named by snap_index */
    bool snap_done;            /* SNAPSHOT: the last chunk (set with the data) */
    /* SNAPSHOT_RESP: success = installed (match_index = snap_index, or the follower's
     * commit index if it already had everything); otherwise still receiving. */
};

/* Frees m->entries and each entry in it, and m->snap_data (for messages that own them). */
void raft_msg_free_entries(struct raft_msg *m);
/* Deep copy, entries included. Returns RK_OK or RK_ERR_NOMEM. */
int raft_msg_copy(struct raft_msg *dst, const struct raft_msg *src);
/* "vote", "vote_resp", "append", "append_resp", "prevote", "prevote_resp", "snapshot",
 * "snapshot_resp", "timeout_now" or "unknown". */
const char *raft_msg_type_name(uint8_t type);

#endif
