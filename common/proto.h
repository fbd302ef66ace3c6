/* common/proto.h - the wire protocol: length-prefixed binary frames shared by client
 * and server. Documented in docs/protocol.md.
 *
 * Frame:   u32 length (big-endian, 1..PROTO_MAX_FRAME) | payload
 * Payload: u8 frame type | body (integers big-endian; byte strings as u32 length | bytes)
 *
 * The first frame on every connection is a HELLO that says what the connection is:
 * a client (then CLIENT_REQ / CLIENT_RESP follow) or a peer server (then RAFT frames follow,
 * one way, from the connecting server to the accepting one). */
#ifndef RK_PROTO_H
#define RK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft_msg.h"

struct proto_buf;

#define PROTO_MAX_FRAME (16u * 1024 * 1024)
#define PROTO_MAX_KEY (64u * 1024)
#define PROTO_MAX_VALUE (4u * 1024 * 1024)
/* A CLIENT_RESP body: a value, or a SCAN page (which ends once it holds
 * PROTO_SCAN_PAGE_BYTES of keys and values: at most that plus one pair more). */
#define PROTO_MAX_BODY (2u * PROTO_MAX_VALUE + PROTO_MAX_KEY + 64u)
/* 2: client sessions (CLIENT_REQ and entries carry client_id, seq);
 * 3: HELLO_PEER carries the cluster id;
 * 4: membership changes: HELLO_PEER carries the sender's id and address, CONFIG entries,
 *    TIMEOUT_NOW, the VOTE transfer flag, and the ADD/REMOVE/MEMBERS/TRANSFER ops */
/* 5: revisions and compare-and-set: the REV, CAS and CAD ops, the FAILED status, CAS
 *    and CAD entries (with the revision they compare) */
/* 6: expiring keys: the SETEX, EXPIRE, TTL and CAS_TTL ops; SETEX, EXPIRE, CAS_TTL
 *    (with their ttl) and EXPIRED entries */
/* 7: watch: the WATCH op and its stream of EVENTS answers */
#define PROTO_VERSION 7
/* The oldest client protocol a server still serves: client frames are the same since 2 (a
 * client of version 3 keeps working against newer servers; peers must match). */
#define PROTO_CLIENT_MIN_VERSION 2

enum proto_frame_type {
    PROTO_HELLO_CLIENT = 1, /* u8 version */
    PROTO_HELLO_PEER = 2,   /* u8 version | u64 cluster id | bytes sender name | i32 its id
                               (-1: none yet) | bytes its host | u16 its port */
    PROTO_CLIENT_REQ = 3,
    PROTO_CLIENT_RESP = 4,
    PROTO_RAFT = 5,         /* a struct raft_msg */
};

enum proto_op {
    PROTO_OP_GET = 1,
    PROTO_OP_SET = 2,
    PROTO_OP_DELETE = 3,
    PROTO_OP_STATUS = 4,
    PROTO_OP_REGISTER = 5, /* open a client session (Raft thesis §6.3); reply VALUE "<id>" */
    PROTO_OP_ADD = 6,      /* key NAME, value "HOST PORT" or "HOST PORT learner": add a
                              server (Raft thesis §4.2.1); OK once it votes (or is a learner) */
    PROTO_OP_REMOVE = 7,   /* key NAME, value "" or "force"; OK once committed without it */
    PROTO_OP_MEMBERS = 8,  /* VALUE: one "NAME HOST PORT voter|learner\n" line per member */
    PROTO_OP_TRANSFER = 9, /* key NAME, or "" for the most up-to-date voter (thesis §3.10);
                              OK once it leads */
    PROTO_OP_REV = 10,     /* key: VALUE "REV VALUE" (its revision, a space, its value) or NIL;
                              read through ReadIndex like GET */
    PROTO_OP_CAS = 11,     /* key, value "REV VALUE": set the key if its revision is REV (0:
                              absent); OK with body NEWREV, or FAILED with body CURREV */
    PROTO_OP_CAD = 12,     /* key, value "REV": delete the key if its revision is REV; OK, or
                              FAILED with body CURREV */
    PROTO_OP_SCAN = 13,    /* key PREFIX (may be empty), value "LIMIT" or "LIMIT AFTER": VALUE
                              with a page (proto_page_*), read through ReadIndex like GET */
    PROTO_OP_SETEX = 14,   /* key, value "MS VALUE": set the key, deleted MS milliseconds
                              after (proto_parse_ttl); OK */
    PROTO_OP_EXPIRE = 15,  /* key, value "MS": the key is deleted MS ms from now; OK, or
                              NIL if it is absent */
    PROTO_OP_TTL = 16,     /* key: VALUE "SECONDS" left, rounded up ("-1": no deadline), or
                              NIL; read through ReadIndex like GET */
    PROTO_OP_CAS_TTL = 17, /* key, value "MS REV VALUE": CAS, and the key, if set, is
                              deleted MS ms after; answered like CAS */
    PROTO_OP_WATCH = 18,   /* key PREFIX (may be empty), value "" or "FROM" (a revision >=
                              1): the connection becomes a stream of EVENTS answers, the
                              changes to keys with the prefix from revision FROM on (none:
                              after the server's last applied one), until an ERR ends it
                              (proto_events_*; docs/protocol.md, "Watch") */
};
#define PROTO_OP_LAST PROTO_OP_WATCH

/* Whether op changes the map through the log (in a client session), or reads it through
 * ReadIndex. */
bool proto_op_is_write(uint8_t op);
bool proto_op_is_read(uint8_t op);

/* Times to live, in milliseconds on the wire: at least 0.1 s, at most ten years. */
#define PROTO_TTL_MIN_MS 100u
#define PROTO_TTL_MAX_MS (10ull * 365 * 24 * 3600 * 1000)
/* The time to live at the start of a SETEX, EXPIRE or CAS_TTL value ("MS" or "MS REST":
 * decimal milliseconds in range); *rest points after it (past one space). RK_OK or
 * RK_ERR_PROTO. */
int proto_parse_ttl(const char *val, uint32_t len, uint64_t *ttl_ms, const char **rest,
                    uint32_t *rest_len);
/* SECONDS as a user writes it ("30", "0.5", "1.25"): milliseconds, rounded up; RK_OK, or
 * RK_ERR_PROTO if it is not such a number or out of the range above. */
int proto_parse_seconds(const char *text, size_t len, uint64_t *ttl_ms);

/* SCAN: keys per page by default and at most; a page ends once its keys and values hold
 * this many bytes (then it says more keys remain). */
#define PROTO_SCAN_LIMIT_DEFAULT 100u
#define PROTO_SCAN_LIMIT_MAX 10000u
#define PROTO_SCAN_PAGE_BYTES (4u * 1024 * 1024)

/* Keys are words: a listing prints "KEY VALUE" per line, so a key holds no whitespace or
 * control character (bytes 0x00-0x20 and 0x7f); other bytes, UTF-8 included, are fine.
 * The client refuses other keys, and the server again, with this reason (DELETE excepted,
 * so that a key stored before the rule can still be removed). */
#define PROTO_ERR_KEY_NOT_WORD "key must not contain whitespace or control characters"
bool proto_key_is_word(const char *key, uint32_t key_len);

/* The ERR body for a SET/DELETE whose client session is unknown or was expired. */
#define PROTO_ERR_SESSION_EXPIRED "session expired"

enum proto_status {
    PROTO_ST_OK = 0,       /* set done; delete removed a key */
    PROTO_ST_VALUE = 1,    /* body = the value (get) or the status line (status) */
    PROTO_ST_NIL = 2,      /* get: no such key; delete: there was none */
    PROTO_ST_REDIRECT = 3, /* not the leader; leader_* say where it is (empty if unknown) */
    PROTO_ST_ERR = 4,      /* body = a human-readable reason */
    PROTO_ST_FAILED = 5,   /* cas/cad: the compare did not hold (a definite answer, nothing
                              changed); body = the key's revision (0: absent) */
    PROTO_ST_EVENTS = 6,   /* watch: body = a batch of events (proto_events_*), maybe none
                              (a heartbeat) */
};

/* A WATCH stream (integers big-endian). Each EVENTS answer's body:
 *   u64 progress (the server has applied every entry up to this index: no event with a
 *   revision <= it is still to come on this stream) | u32 n
 *   | n x (u64 rev | u8 kind | u32 key_len | key | u32 val_len | value),
 * in revision order; the events of one revision (an EXPIRED entry deletes several keys)
 * are never split between answers. A stream sends one at least every
 * PROTO_WATCH_HEARTBEAT_MS; a client that hears nothing for PROTO_WATCH_SILENCE_MS takes
 * the server for dead. The stream ends with an ERR: PROTO_ERR_COMPACTED, or
 * PROTO_ERR_FELL_BEHIND (followed by the revision to resume from), or another reason. */
enum proto_event_kind {
    PROTO_EVENT_SET = 1,    /* "REV set KEY VALUE": set, setex, cas, cas --ttl */
    PROTO_EVENT_DELETE = 2, /* "REV delete KEY": delete, cad */
    PROTO_EVENT_EXPIRE = 3, /* "REV expire KEY": its deadline passed (an EXPIRED entry) */
};
#define PROTO_WATCH_HEARTBEAT_MS 1000u
#define PROTO_WATCH_SILENCE_MS 3000u
#define PROTO_ERR_COMPACTED "compacted: oldest available revision " /* then N */
#define PROTO_ERR_FELL_BEHIND "watcher fell behind at rev "         /* then N */
#define PROTO_EVENTS_HEAD 12u
struct proto_event {
    uint64_t rev;
    uint8_t kind;
    const char *key, *val;  /* into the body */
    uint32_t key_len, val_len;
};
/* proto_events_begin writes the head (n = 0) into b (raw bytes, not a frame);
 * proto_events_add appends an event and counts it. */
int proto_events_begin(struct proto_buf *b, uint64_t progress);
int proto_events_add(struct proto_buf *b, const struct proto_event *ev);
/* Reads a body's head: RK_OK, or RK_ERR_PROTO. Then proto_events_next gives event after
 * event from *off (start at PROTO_EVENTS_HEAD): 1 with the event, 0 at the end,
 * RK_ERR_PROTO for a malformed one (an unknown kind included). */
int proto_events_head(const char *body, uint32_t len, uint64_t *progress, uint32_t *n);
int proto_events_next(const char *body, uint32_t len, uint32_t *off, struct proto_event *ev);
/* A WATCH value: "" (*from = 0: from now) or "FROM" (canonical decimal >= 1). RK_OK or
 * RK_ERR_PROTO. */
int proto_parse_watch(const char *val, uint32_t len, uint64_t *from);
/* The N after an ERR's PROTO_ERR_COMPACTED or PROTO_ERR_FELL_BEHIND text (prefix is one
 * of them): RK_OK with *rev, or RK_ERR_PROTO if body is not that error. */
int proto_parse_watch_error(const char *body, uint32_t len, const char *prefix, uint64_t *rev);

/* The revision in a CAS or CAD value ("REV VALUE" or "REV": decimal, no sign or leading
 * zero, then for CAS one space and the value, which may be empty). *rest points after
 * it (past the space). RK_OK or RK_ERR_PROTO. */
int proto_parse_rev(const char *val, uint32_t len, uint64_t *rev, const char **rest,
                    uint32_t *rest_len);

/* A SCAN value: "LIMIT" or "LIMIT AFTER" (LIMIT 1..PROTO_SCAN_LIMIT_MAX in decimal, AFTER
 * the key the page starts after, one word); *after is NULL without one. RK_OK or
 * RK_ERR_PROTO. */
int proto_parse_scan(const char *val, uint32_t len, uint32_t *limit, const char **after,
                     uint32_t *after_len);

/* A SCAN page, the body of its VALUE answer (integers big-endian):
 *   u64 rev (the map's revision it was read at) | u8 more (1: keys remain) | u32 n
 *   | n x (u32 key_len | key | u32 val_len | value), in key order.
 * proto_page_begin writes the head with n = 0 into b (raw bytes, not a frame);
 * proto_page_add appends a pair and counts it; proto_page_end sets more. */
int proto_page_begin(struct proto_buf *b, uint64_t rev);
int proto_page_add(struct proto_buf *b, const char *key, uint32_t key_len, const char *val,
                   uint32_t val_len);
void proto_page_end(struct proto_buf *b, bool more);
/* Reads a page's head: RK_OK, or RK_ERR_PROTO if body is no page. Then
 * proto_page_next gives pair after pair from *off (start at PROTO_PAGE_HEAD): 1 with the
 * pair, 0 at the end, RK_ERR_PROTO for a malformed one (pointers into body). */
#define PROTO_PAGE_HEAD 13u
int proto_page_head(const char *body, uint32_t len, uint64_t *rev, bool *more, uint32_t *n);
int proto_page_next(const char *body, uint32_t len, uint32_t *off, const char **key,
                    uint32_t *key_len, const char **val, uint32_t *val_len);

/* CLIENT_REQ: u8 op | bytes key | bytes value | u64 client_id | u64 seq */
struct proto_client_req {
    uint8_t op;
    const char *key; /* decode: points into the payload */
    uint32_t key_len;
    const char *val;
    uint32_t val_len;
    uint64_t client_id; /* SET/DELETE: the session from REGISTER (0 = none), thesis §6.3 */
    uint64_t seq;       /* SET/DELETE: 1, 2, 3... per session; a retry repeats its seq */
};

/* CLIENT_RESP: u8 status | bytes body | bytes leader_name | bytes leader_host | u16 port */
struct proto_client_resp {
    uint8_t status;
    const char *body; /* decode: points into the payload */
    uint32_t body_len;
    char leader_name[64]; /* "" if unknown */
    char leader_host[256];
    uint16_t leader_port;
};

/* A growable output buffer; each proto_encode_* appends one whole frame. */
struct proto_buf {
    uint8_t *data;
    size_t len, cap;
};
void proto_buf_free(struct proto_buf *b);
/* Appends len raw bytes (already encoded frames). RK_OK or RK_ERR_NOMEM. */
int proto_buf_append(struct proto_buf *b, const void *data, size_t len);

int proto_encode_hello_client(struct proto_buf *b);
/* name: the sender's registry name (1..63 bytes); cluster_id: see registry_cluster_id. */
int proto_encode_hello_peer(struct proto_buf *b, const char *name, uint64_t cluster_id);
/* The same with the sender's id in its configuration (-1: none yet, a server joining) and
 * the address it listens on ("" and 0: not given). */
int proto_encode_hello_peer_at(struct proto_buf *b, const char *name, uint64_t cluster_id,
                               int32_t id, const char *host, uint16_t port);
int proto_encode_client_req(struct proto_buf *b, const struct proto_client_req *req);
int proto_encode_client_resp(struct proto_buf *b, const struct proto_client_resp *resp);
int proto_encode_raft_msg(struct proto_buf *b, const struct raft_msg *m);

/* Decoders take one frame's payload (without the length prefix). They check every
 * length against the payload and the limits above and return RK_OK, or RK_ERR_PROTO /
 * RK_ERR_TOOBIG; on error nothing needs freeing. */
/* The frame type (payload[0]), or RK_ERR_PROTO for an empty payload. */
int proto_frame_type(const uint8_t *payload, size_t len);
/* A decoded HELLO: what the connection says it is. */
struct proto_hello {
    int type;            /* PROTO_HELLO_CLIENT or PROTO_HELLO_PEER */
    char name[64];       /* peer: the sender's name (NUL-terminated); client: "" */
    uint64_t cluster_id; /* peer: the sender's cluster id; client: 0 */
    int32_t id;          /* peer: the sender's id in its configuration, or -1 */
    char host[256];      /* peer: where it listens ("" if not given) */
    uint16_t port;
};
/* HELLO_CLIENT or HELLO_PEER into out (zeroed on error). */
int proto_decode_hello_msg(const uint8_t *payload, size_t len, struct proto_hello *out);
/* The same, for callers that need only the type and a peer's name (NUL-terminated). */
int proto_decode_hello(const uint8_t *payload, size_t len, int *type, char name[64]);
int proto_decode_client_req(const uint8_t *payload, size_t len, struct proto_client_req *out);
/* The length a CLIENT_REQ's key field declares, read without decoding the rest (0 if the
 * frame is too short to hold it): for the answer to a request refused as RK_ERR_TOOBIG,
 * which must say whether the key or the value was too long. */
uint32_t proto_client_req_key_len(const uint8_t *payload, size_t len);
int proto_decode_client_resp(const uint8_t *payload, size_t len, struct proto_client_resp *out);
/* The REGISTER reply body: the client id in decimal, 1..20 digits, no sign or leading
 * zero. proto_format_client_id writes it NUL-terminated and returns its length;
 * proto_parse_client_id accepts exactly that form (id >= 1) or returns RK_ERR_PROTO. */
#define PROTO_CLIENT_ID_MAX_DIGITS 20
int proto_format_client_id(uint64_t id, char out[PROTO_CLIENT_ID_MAX_DIGITS + 1]);
int proto_parse_client_id(const char *body, uint32_t len, uint64_t *id);
/* Allocates out->entries (free with raft_msg_free_entries). Rejects unknown types and
 * entry counts the payload cannot hold. */
int proto_decode_raft_msg(const uint8_t *payload, size_t len, struct raft_msg *out);

#endif
