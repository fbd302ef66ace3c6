/* tests/unit_proto.c - common/proto.c and common/net.c: round trips of every frame and
 * Raft message (client session fields included), the REGISTER reply's client id, rejection
 * of truncated, oversize and garbage payloads, frame I/O on sockets. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"
#include "check_main.h"

/* ---- helpers ---- */

/* The payload of the only frame in b, after checking its length prefix. */
static const uint8_t *only_payload(const struct proto_buf *b, size_t *len)
{
    ck_assert_uint_ge(b->len, 5);
    const uint8_t *p = b->data;
    uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    ck_assert_uint_eq(n, b->len - 4);
    *len = n;
    return p + 4;
}

/* Deterministic xorshift PRNG, so fuzz runs are repeatable. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Runs every decoder on payload; none may crash, leak or claim success on garbage
 * except by producing a consistent result. Returns how many accepted it. */
static int decode_all(const uint8_t *payload, size_t len)
{
    int accepted = 0, type;
    char name[64];
    struct proto_client_req req;
    struct proto_client_resp resp;
    struct raft_msg m;

    if (proto_decode_hello(payload, len, &type, name) == RK_OK) {
        ck_assert(type == PROTO_HELLO_CLIENT || type == PROTO_HELLO_PEER);
        accepted++;
    }
    if (proto_decode_client_req(payload, len, &req) == RK_OK) {
        ck_assert_uint_le(req.key_len, PROTO_MAX_KEY);
        ck_assert_uint_le(req.val_len, PROTO_MAX_VALUE);
        accepted++;
    }
    if (proto_decode_client_resp(payload, len, &resp) == RK_OK) {
        ck_assert_uint_lt(strlen(resp.leader_name), sizeof(resp.leader_name));
        accepted++;
    }
    if (proto_decode_raft_msg(payload, len, &m) == RK_OK) {
        ck_assert(m.n_entries == 0 || m.entries != NULL);
        raft_msg_free_entries(&m);
        accepted++;
    }
    return accepted;
}

static struct raft_entry make_entry(raft_term_t term, uint8_t type, const char *key,
                                    uint32_t key_len, const char *val, uint32_t val_len)
{
    struct raft_entry e;
    ck_assert_int_eq(raft_entry_init(&e, term, type, key, key_len, val, val_len), RK_OK);
    return e;
}

static void assert_entry_eq(const struct raft_entry *a, const struct raft_entry *b)
{
    ck_assert_uint_eq(a->term, b->term);
    ck_assert_uint_eq(a->type, b->type);
    ck_assert_uint_eq(a->client_id, b->client_id);
    ck_assert_uint_eq(a->seq, b->seq);
    ck_assert_uint_eq(a->rev, b->rev);
    ck_assert_uint_eq(a->ttl_ms, b->ttl_ms);
    ck_assert_uint_eq(a->key_len, b->key_len);
    ck_assert_uint_eq(a->val_len, b->val_len);
    ck_assert_mem_eq(a->key, b->key, a->key_len);
    ck_assert_mem_eq(a->val, b->val, a->val_len);
    ck_assert_int_eq(a->key[a->key_len], '\0');
    ck_assert_int_eq(a->val[a->val_len], '\0');
}

static void assert_msg_eq(const struct raft_msg *a, const struct raft_msg *b)
{
    ck_assert_uint_eq(a->type, b->type);
    ck_assert_int_eq(a->from, b->from);
    ck_assert_int_eq(a->to, b->to);
    ck_assert_uint_eq(a->term, b->term);
    ck_assert_uint_eq(a->last_log_index, b->last_log_index);
    ck_assert_uint_eq(a->last_log_term, b->last_log_term);
    ck_assert_int_eq(a->vote_granted, b->vote_granted);
    ck_assert_int_eq(a->transfer, b->transfer);
    ck_assert_uint_eq(a->prev_log_index, b->prev_log_index);
    ck_assert_uint_eq(a->prev_log_term, b->prev_log_term);
    ck_assert_uint_eq(a->leader_commit, b->leader_commit);
    ck_assert_uint_eq(a->n_entries, b->n_entries);
    for (uint32_t i = 0; i < a->n_entries; i++)
        assert_entry_eq(&a->entries[i], &b->entries[i]);
    ck_assert_int_eq(a->success, b->success);
    ck_assert_uint_eq(a->match_index, b->match_index);
    ck_assert_uint_eq(a->reject_index, b->reject_index);
    ck_assert_uint_eq(a->conflict_index, b->conflict_index);
    ck_assert_uint_eq(a->conflict_term, b->conflict_term);
    ck_assert_uint_eq(a->read_ctx, b->read_ctx);
    ck_assert_uint_eq(a->snap_index, b->snap_index);
    ck_assert_uint_eq(a->snap_term, b->snap_term);
    ck_assert_uint_eq(a->snap_offset, b->snap_offset);
    ck_assert_int_eq(a->snap_done, b->snap_done);
    ck_assert_uint_eq(a->snap_len, b->snap_len);
    if (a->snap_len > 0)
        ck_assert_mem_eq(a->snap_data, b->snap_data, a->snap_len);
}

/* Sample messages of every type; APPEND carries entries with binary and empty fields. */
static const char bin_key[] = { 'k', '\0', '\xff', '\n' };
static const char bin_val[] = { '\0', '\x01', 'v', '\0', '\x80' };
#define N_SAMPLE_MSGS 9
#define N_SAMPLE_ENTRIES 7

static void sample_msgs(struct raft_msg out[N_SAMPLE_MSGS],
                        struct raft_entry entries[N_SAMPLE_ENTRIES])
{
    memset(out, 0, sizeof(struct raft_msg) * N_SAMPLE_MSGS);
    entries[0] = make_entry(7, RAFT_ENTRY_NOOP, NULL, 0, NULL, 0);
    entries[1] = make_entry(7, RAFT_ENTRY_SET, bin_key, sizeof(bin_key), bin_val,
                            sizeof(bin_val));
    entries[1].client_id = 12345678901234ull; /* a client session (thesis §6.3) */
    entries[1].seq = 7;
    entries[2] = make_entry(UINT64_MAX, RAFT_ENTRY_SET, "", 0, "", 0);
    entries[3] = make_entry(8, RAFT_ENTRY_DELETE, "key", 3, NULL, 0);
    entries[3].client_id = UINT64_MAX;
    entries[3].seq = UINT64_MAX;
    entries[4] = make_entry(8, RAFT_ENTRY_REGISTER, NULL, 0, NULL, 0);
    entries[5] = make_entry(8, RAFT_ENTRY_CAS, "k", 1, "v", 1); /* then u64 rev */
    entries[5].rev = UINT64_MAX - 1;
    entries[6] = make_entry(8, RAFT_ENTRY_CAD, "k", 1, NULL, 0);
    entries[6].rev = 0;

    out[0] = (struct raft_msg){ .type = RAFT_MSG_VOTE, .from = 1, .to = 4, .term = 9,
                                .last_log_index = 1234567890123ull, .last_log_term = 8,
                                .transfer = true };
    out[1] = (struct raft_msg){ .type = RAFT_MSG_VOTE_RESP, .from = 4, .to = 1, .term = 9,
                                .vote_granted = true };
    out[2] = (struct raft_msg){ .type = RAFT_MSG_APPEND, .from = 0, .to = 2, .term = 9,
                                .prev_log_index = 41, .prev_log_term = 6, .leader_commit = 40,
                                .read_ctx = 77, .n_entries = N_SAMPLE_ENTRIES,
                                .entries = entries };
    out[3] = (struct raft_msg){ .type = RAFT_MSG_APPEND, .from = 0, .to = 3, .term = 9,
                                .prev_log_index = 45, .prev_log_term = 8, .leader_commit = 45,
                                .read_ctx = UINT64_MAX }; /* a heartbeat */
    out[4] = (struct raft_msg){ .type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 0, .term = 9,
                                .success = true, .match_index = 45, .read_ctx = 77 };
    out[5] = (struct raft_msg){ .type = RAFT_MSG_APPEND_RESP, .from = INT32_MAX,
                                .to = RAFT_NO_NODE, .term = UINT64_MAX, .success = false,
                                .reject_index = 41, .conflict_index = 30,
                                .conflict_term = 5, .read_ctx = 3 };
    /* InstallSnapshot (Raft paper Figure 13): a chunk with binary data, and the reply */
    out[6] = (struct raft_msg){ .type = RAFT_MSG_SNAPSHOT, .from = 0, .to = 2, .term = 9,
                                .snap_index = 40000, .snap_term = 8,
                                .snap_offset = 5ull << 32, .snap_done = true,
                                .snap_len = sizeof(bin_val),
                                .snap_data = (uint8_t *)bin_val };
    out[7] = (struct raft_msg){ .type = RAFT_MSG_SNAPSHOT_RESP, .from = 2, .to = 0, .term = 9,
                                .success = true, .match_index = 40000, .snap_index = 40000,
                                .snap_term = 8, .snap_offset = UINT64_MAX };
    /* leadership transfer (Raft thesis §3.10): the header alone */
    out[8] = (struct raft_msg){ .type = RAFT_MSG_TIMEOUT_NOW, .from = 0, .to = 3, .term = 9 };
}

static void free_entries(struct raft_entry entries[N_SAMPLE_ENTRIES])
{
    for (int i = 0; i < N_SAMPLE_ENTRIES; i++)
        raft_entry_free(&entries[i]);
}

/* Encodes one sample frame of every kind into b (one frame each, appended). */
static void encode_samples(struct proto_buf *b)
{
    struct raft_msg msgs[N_SAMPLE_MSGS];
    struct raft_entry entries[N_SAMPLE_ENTRIES];
    sample_msgs(msgs, entries);
    ck_assert_int_eq(proto_encode_hello_client(b), RK_OK);
    ck_assert_int_eq(proto_encode_hello_peer(b, "server2", 0x1122334455667788ull), RK_OK);
    struct proto_client_req req = { .op = PROTO_OP_SET, .key = bin_key,
                                    .key_len = sizeof(bin_key), .val = bin_val,
                                    .val_len = sizeof(bin_val), .client_id = 3, .seq = 4 };
    ck_assert_int_eq(proto_encode_client_req(b, &req), RK_OK);
    struct proto_client_resp resp = { .status = PROTO_ST_REDIRECT, .body = "x", .body_len = 1,
                                      .leader_name = "server3", .leader_host = "localhost",
                                      .leader_port = 3000 };
    ck_assert_int_eq(proto_encode_client_resp(b, &resp), RK_OK);
    for (int i = 0; i < N_SAMPLE_MSGS; i++)
        ck_assert_int_eq(proto_encode_raft_msg(b, &msgs[i]), RK_OK);
    free_entries(entries);
}

/* Calls fn(payload, len) for each frame in b. */
static void each_frame(const struct proto_buf *b, void (*fn)(const uint8_t *, size_t))
{
    size_t pos = 0;
    int frames = 0;
    while (pos < b->len) {
        ck_assert_uint_ge(b->len - pos, 4);
        const uint8_t *p = b->data + pos;
        size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        ck_assert_uint_le(n, b->len - pos - 4);
        fn(p + 4, n);
        pos += 4 + n;
        frames++;
    }
    ck_assert_int_gt(frames, 0);
}

/* ---- round trips ---- */

START_TEST(test_hello_round_trip)
{
    struct proto_buf b = { 0 };
    size_t len;
    int type = 0;
    char name[64];

    ck_assert_int_eq(proto_encode_hello_client(&b), RK_OK);
    const uint8_t *p = only_payload(&b, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(p[0], PROTO_HELLO_CLIENT);
    ck_assert_int_eq(p[1], PROTO_VERSION);
    ck_assert_int_eq(proto_frame_type(p, len), PROTO_HELLO_CLIENT);
    ck_assert_int_eq(proto_decode_hello(p, len, &type, name), RK_OK);
    ck_assert_int_eq(type, PROTO_HELLO_CLIENT);
    ck_assert_str_eq(name, "");

    b.len = 0;
    char longest[64];
    memset(longest, 'n', 63);
    longest[63] = '\0';
    ck_assert_int_eq(proto_encode_hello_peer_at(&b, longest, 0x0102030405060708ull, 5, "h",
                                                7001), RK_OK);
    p = only_payload(&b, &len);
    ck_assert_uint_eq(len, 2 + 8 + 4 + 63 + 4 + 4 + 1 + 2);
    /* u8 type | u8 version | u64 cluster id (big-endian) | bytes name | i32 id | bytes host
     * | u16 port */
    const uint8_t head[] = { PROTO_HELLO_PEER, PROTO_VERSION, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 63 };
    ck_assert_mem_eq(p, head, sizeof(head));
    const uint8_t tail[] = { 0, 0, 0, 5, 0, 0, 0, 1, 'h', 7001 >> 8, 7001 & 0xff };
    ck_assert_mem_eq(p + len - sizeof(tail), tail, sizeof(tail));
    ck_assert_int_eq(proto_frame_type(p, len), PROTO_HELLO_PEER);
    ck_assert_int_eq(proto_decode_hello(p, len, &type, name), RK_OK);
    ck_assert_int_eq(type, PROTO_HELLO_PEER);
    ck_assert_str_eq(name, longest);
    struct proto_hello h;
    ck_assert_int_eq(proto_decode_hello_msg(p, len, &h), RK_OK);
    ck_assert_int_eq(h.type, PROTO_HELLO_PEER);
    ck_assert_str_eq(h.name, longest);
    ck_assert_uint_eq(h.cluster_id, 0x0102030405060708ull);
    ck_assert_int_eq(h.id, 5);
    ck_assert_str_eq(h.host, "h");
    ck_assert_uint_eq(h.port, 7001);
    b.len = 0; /* without an id or address: a server that joins */
    ck_assert_int_eq(proto_encode_hello_peer(&b, "j", 9), RK_OK);
    p = only_payload(&b, &len);
    ck_assert_int_eq(proto_decode_hello_msg(p, len, &h), RK_OK);
    ck_assert_int_eq(h.id, -1);
    ck_assert_str_eq(h.host, "");
    proto_buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(test_hello_rejects)
{
    struct proto_buf b = { 0 };
    char name[64];
    int type = -1;
    char too_long[65];
    memset(too_long, 'n', 64);
    too_long[64] = '\0';
    ck_assert_int_eq(proto_encode_hello_peer(&b, "", 1), RK_ERR_INVAL);
    ck_assert_int_eq(proto_encode_hello_peer(&b, NULL, 1), RK_ERR_INVAL);
    ck_assert_int_eq(proto_encode_hello_peer(&b, too_long, 1), RK_ERR_INVAL);
    ck_assert_int_eq(proto_encode_hello_peer_at(&b, "a", 1, -2, "", 0), RK_ERR_INVAL);
    ck_assert_uint_eq(b.len, 0);

    const uint8_t bad_version[] = { PROTO_HELLO_CLIENT, PROTO_VERSION + 1 };
    const uint8_t zero_version[] = { PROTO_HELLO_CLIENT, 0 };
    const uint8_t not_hello[] = { PROTO_CLIENT_REQ, PROTO_VERSION };
    const uint8_t client_trailing[] = { PROTO_HELLO_CLIENT, PROTO_VERSION, 0 };
#define ID8 0, 0, 0, 0, 0, 0, 0, 7 /* a cluster id */
    const uint8_t peer_empty[] = { PROTO_HELLO_PEER, PROTO_VERSION, ID8, 0, 0, 0, 0 };
    const uint8_t peer_nul[] = { PROTO_HELLO_PEER, PROTO_VERSION, ID8, 0, 0, 0, 2, 'a', 0 };
    const uint8_t peer_short[] = { PROTO_HELLO_PEER, PROTO_VERSION, ID8, 0, 0, 0, 3, 'a', 'b' };
    const uint8_t peer_huge[] = { PROTO_HELLO_PEER, PROTO_VERSION, ID8, 0xff, 0xff, 0xff, 0xff };
    const uint8_t peer_64[] = { PROTO_HELLO_PEER, PROTO_VERSION, ID8, 0, 0, 0, 64 };
    const uint8_t peer_no_id[] = { PROTO_HELLO_PEER, PROTO_VERSION, 0, 0, 0, 1, 'a' };
    const uint8_t peer_v2[] = { PROTO_HELLO_PEER, 2, 0, 0, 0, 1, 'a' }; /* before ids */
#undef ID8
    ck_assert_int_eq(proto_decode_hello(bad_version, 2, &type, name), RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_hello(zero_version, 2, &type, name), RK_ERR_PROTO);
    /* a client of an older version whose frames are unchanged is still served */
    const uint8_t client_v3[] = { PROTO_HELLO_CLIENT, PROTO_VERSION - 1 };
    const uint8_t client_v1[] = { PROTO_HELLO_CLIENT, PROTO_CLIENT_MIN_VERSION - 1 };
    ck_assert_int_eq(proto_decode_hello(client_v3, 2, &type, name), RK_OK);
    ck_assert_int_eq(type, PROTO_HELLO_CLIENT);
    type = -1;
    ck_assert_int_eq(proto_decode_hello(client_v1, 2, &type, name), RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_hello(not_hello, 2, &type, name), RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_hello(client_trailing, 3, &type, name), RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_hello(peer_empty, sizeof(peer_empty), &type, name),
                     RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_hello(peer_nul, sizeof(peer_nul), &type, name),
                     RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_hello(peer_short, sizeof(peer_short), &type, name),
                     RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_hello(peer_huge, sizeof(peer_huge), &type, name),
                     RK_ERR_TOOBIG);
    ck_assert_int_eq(proto_decode_hello(peer_64, sizeof(peer_64), &type, name),
                     RK_ERR_TOOBIG);
    ck_assert_int_eq(proto_decode_hello(peer_no_id, sizeof(peer_no_id), &type, name),
                     RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_hello(peer_v2, sizeof(peer_v2), &type, name), RK_ERR_PROTO);
    ck_assert_int_eq(type, -1); /* never set on failure */
    ck_assert_int_eq(proto_decode_hello(NULL, 0, &type, name), RK_ERR_PROTO);
    struct proto_hello h = { .type = 9, .cluster_id = 9 };
    ck_assert_int_eq(proto_decode_hello_msg(peer_nul, sizeof(peer_nul), &h), RK_ERR_PROTO);
    ck_assert_int_eq(h.type, 0); /* zeroed on failure */
    ck_assert_uint_eq(h.cluster_id, 0);
    ck_assert_str_eq(h.name, "");
}
END_TEST

START_TEST(test_frame_type)
{
    const uint8_t bytes[] = { 0, 1, 2, 3, 4, 5, 6, 255 };
    ck_assert_int_eq(proto_frame_type(bytes, 0), RK_ERR_PROTO);
    ck_assert_int_eq(proto_frame_type(NULL, 0), RK_ERR_PROTO);
    ck_assert_int_eq(proto_frame_type(&bytes[0], 1), RK_ERR_PROTO);
    for (int i = 1; i <= 5; i++)
        ck_assert_int_eq(proto_frame_type(&bytes[i], 1), i);
    ck_assert_int_eq(proto_frame_type(&bytes[6], 2), RK_ERR_PROTO);
    ck_assert_int_eq(proto_frame_type(&bytes[7], 1), RK_ERR_PROTO);
}
END_TEST

static void round_trip_req(const struct proto_client_req *in)
{
    struct proto_buf b = { 0 };
    struct proto_client_req out;
    size_t len;
    ck_assert_int_eq(proto_encode_client_req(&b, in), RK_OK);
    const uint8_t *p = only_payload(&b, &len);
    ck_assert_uint_eq(len, 1 + 1 + 4 + in->key_len + 4 + in->val_len + 8 + 8);
    ck_assert_int_eq(proto_frame_type(p, len), PROTO_CLIENT_REQ);
    ck_assert_int_eq(proto_decode_client_req(p, len, &out), RK_OK);
    ck_assert_uint_eq(out.op, in->op);
    ck_assert_uint_eq(out.client_id, in->client_id);
    ck_assert_uint_eq(out.seq, in->seq);
    ck_assert_uint_eq(out.key_len, in->key_len);
    ck_assert_uint_eq(out.val_len, in->val_len);
    ck_assert_mem_eq(out.key, in->key ? in->key : "", in->key_len);
    ck_assert_mem_eq(out.val, in->val ? in->val : "", in->val_len);
    ck_assert_ptr_nonnull(out.key);
    ck_assert_ptr_nonnull(out.val);
    if (in->key_len > 0) /* zero copy: the key points into the payload */
        ck_assert(out.key >= (const char *)p && out.key < (const char *)p + len);
    proto_buf_free(&b);
}

START_TEST(test_client_req_round_trip)
{
    struct proto_client_req reqs[] = {
        { .op = PROTO_OP_GET, .key = "alpha", .key_len = 5 },
        { .op = PROTO_OP_SET, .key = bin_key, .key_len = sizeof(bin_key), .val = bin_val,
          .val_len = sizeof(bin_val) },
        { .op = PROTO_OP_SET, .key = "", .key_len = 0, .val = "", .val_len = 0 },
        { .op = PROTO_OP_DELETE, .key = "k", .key_len = 1 },
        { .op = PROTO_OP_STATUS },
        { .op = PROTO_OP_REGISTER },
        { .op = PROTO_OP_SET, .key = "k", .key_len = 1, .val = "v", .val_len = 1,
          .client_id = 17, .seq = 3 },
        { .op = PROTO_OP_DELETE, .key = "k", .key_len = 1, .client_id = UINT64_MAX,
          .seq = UINT64_MAX },
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
        round_trip_req(&reqs[i]);
}
END_TEST

/* Exact bytes of a CLIENT_REQ with session fields (docs/protocol.md). */
START_TEST(test_client_req_layout)
{
    struct proto_client_req req = { .op = PROTO_OP_DELETE, .key = "ab", .key_len = 2,
                                    .client_id = 0x0102030405060708ull, .seq = 9 };
    const uint8_t want[] = {
        0, 0, 0, 28,                     /* frame length: 26 + 2 */
        PROTO_CLIENT_REQ, PROTO_OP_DELETE,
        0, 0, 0, 2, 'a', 'b',            /* key */
        0, 0, 0, 0,                      /* empty value */
        1, 2, 3, 4, 5, 6, 7, 8,          /* client_id */
        0, 0, 0, 0, 0, 0, 0, 9,          /* seq */
    };
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_encode_client_req(&b, &req), RK_OK);
    ck_assert_uint_eq(b.len, sizeof(want));
    ck_assert_mem_eq(b.data, want, sizeof(want));
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_client_id_text)
{
    char buf[PROTO_CLIENT_ID_MAX_DIGITS + 1];
    uint64_t id = 0;
    const uint64_t ids[] = { 1, 9, 10, 4097, 1234567890123456789ull, UINT64_MAX };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        int len = proto_format_client_id(ids[i], buf);
        ck_assert_int_eq(len, (int)strlen(buf));
        ck_assert_int_eq(proto_parse_client_id(buf, (uint32_t)len, &id), RK_OK);
        ck_assert_uint_eq(id, ids[i]);
    }
    ck_assert_str_eq(buf, "18446744073709551615");
    const char *bad[] = { "", "0", "007", "-1", "+1", "1 ", " 1", "12a", "0x10",
                          "18446744073709551616", "99999999999999999999",
                          "100000000000000000000" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        id = 42;
        ck_assert_msg(proto_parse_client_id(bad[i], (uint32_t)strlen(bad[i]), &id) ==
                          RK_ERR_PROTO, "accepted '%s'", bad[i]);
        ck_assert_uint_eq(id, 42);
    }
    ck_assert_int_eq(proto_parse_client_id(NULL, 0, &id), RK_ERR_PROTO);
    ck_assert_int_eq(proto_parse_client_id("12\0", 3, &id), RK_ERR_PROTO);
}
END_TEST

/* The revision a CAS or CAD value starts with: canonical decimal (0 allowed), then for
 * CAS one space and the value (possibly empty). */
START_TEST(test_rev_text)
{
    static const struct { const char *val; uint64_t rev; const char *rest; } good[] = {
        { "0", 0, "" }, { "0 ", 0, "" }, { "7 x", 7, "x" }, { "12 two words", 12, "two words" },
        { "18446744073709551615  y", UINT64_MAX, " y" },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t rev = 99;
        const char *rest;
        uint32_t rest_len;
        ck_assert_int_eq(proto_parse_rev(good[i].val, (uint32_t)strlen(good[i].val), &rev,
                                         &rest, &rest_len), RK_OK);
        ck_assert_uint_eq(rev, good[i].rev);
        ck_assert_uint_eq(rest_len, strlen(good[i].rest));
        ck_assert_mem_eq(rest, good[i].rest, rest_len);
    }
    static const char *const bad[] = { "", " 1", "01", "-1", "+1", "1x", "x", "0x10",
                                       "18446744073709551616", "1\t2" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t rev;
        const char *rest;
        uint32_t rest_len;
        ck_assert_msg(proto_parse_rev(bad[i], (uint32_t)strlen(bad[i]), &rev, &rest,
                                      &rest_len) == RK_ERR_PROTO, "accepted '%s'", bad[i]);
    }
}
END_TEST

/* A SCAN value: "LIMIT" or "LIMIT AFTER" (LIMIT 1..10000, AFTER one word). */
START_TEST(test_scan_text)
{
    uint32_t limit, after_len;
    const char *after;
    ck_assert_int_eq(proto_parse_scan("100", 3, &limit, &after, &after_len), RK_OK);
    ck_assert_uint_eq(limit, 100);
    ck_assert_ptr_null(after);
    ck_assert_int_eq(proto_parse_scan("10000 user/7", 12, &limit, &after, &after_len), RK_OK);
    ck_assert_uint_eq(limit, 10000);
    ck_assert_uint_eq(after_len, 6);
    ck_assert_mem_eq(after, "user/7", 6);
    static const char *const bad[] = { "", "0", "10001", "x", "1 ", "1 a b", "1  a", "1 a\t",
                                       "-1", "01", "1 a\x01" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(proto_parse_scan(bad[i], (uint32_t)strlen(bad[i]), &limit, &after,
                                       &after_len) == RK_ERR_PROTO, "accepted '%s'", bad[i]);
}
END_TEST

/* Times to live: SECONDS as users write them (rounded up to milliseconds) and the "MS"
 * prefix of SETEX, EXPIRE and CAS_TTL values, each within 0.1 s .. ten years. */
START_TEST(test_ttl_text)
{
    static const struct { const char *text; uint64_t ms; } good[] = {
        { "0.1", 100 }, { "1", 1000 }, { "1.5", 1500 }, { ".25", 250 }, { "2.", 2000 },
        { "0.1001", 101 }, { "0.1000000", 100 }, { "007", 7000 }, { "315360000", PROTO_TTL_MAX_MS },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t ms = 0;
        ck_assert_msg(proto_parse_seconds(good[i].text, strlen(good[i].text), &ms) == RK_OK,
                      "refused '%s'", good[i].text);
        ck_assert_uint_eq(ms, good[i].ms);
    }
    static const char *const bad[] = { "", ".", "0", "0.09", "0.0999", "-1", "+1", "1e3",
                                       "1.2.3", " 1", "1 ", "x", "315360000.001",
                                       "99999999999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms;
        ck_assert_msg(proto_parse_seconds(bad[i], strlen(bad[i]), &ms) == RK_ERR_PROTO,
                      "accepted '%s'", bad[i]);
    }
    uint64_t ms;
    const char *rest;
    uint32_t rest_len;
    ck_assert_int_eq(proto_parse_ttl("100 v w", 7, &ms, &rest, &rest_len), RK_OK);
    ck_assert_uint_eq(ms, 100);
    ck_assert_uint_eq(rest_len, 3);
    ck_assert_int_eq(proto_parse_ttl("99 v", 4, &ms, &rest, &rest_len), RK_ERR_PROTO);
    ck_assert_int_eq(proto_parse_ttl("315360000001", 12, &ms, &rest, &rest_len), RK_ERR_PROTO);
    ck_assert_int_eq(proto_parse_ttl("1.5 v", 5, &ms, &rest, &rest_len), RK_ERR_PROTO);
    ck_assert(proto_op_is_write(PROTO_OP_SETEX) && proto_op_is_write(PROTO_OP_EXPIRE) &&
              proto_op_is_write(PROTO_OP_CAS_TTL) && !proto_op_is_write(PROTO_OP_TTL));
    ck_assert(proto_op_is_read(PROTO_OP_TTL) && !proto_op_is_read(PROTO_OP_SETEX));
}
END_TEST

/* The expiry entries cross the wire whole: a ttl after the session fields (after the
 * revision for CAS_TTL), and an EXPIRED entry's list as its value. */
START_TEST(test_expiry_entries_round_trip)
{
    struct raft_entry e[4] = {
        make_entry(3, RAFT_ENTRY_SETEX, "k", 1, "v", 1),
        make_entry(3, RAFT_ENTRY_EXPIRE, "k", 1, NULL, 0),
        make_entry(3, RAFT_ENTRY_CAS_TTL, "k", 1, "w", 1),
        make_entry(3, RAFT_ENTRY_EXPIRED, NULL, 0, "\0\0\0\1k\0\0\0\0\0\0\0\1", 13),
    };
    e[0].ttl_ms = 100;
    e[1].ttl_ms = UINT64_MAX;
    e[2].ttl_ms = 0x0102030405060708ull;
    e[2].rev = 9;
    struct raft_msg m = { .type = RAFT_MSG_APPEND, .term = 3, .n_entries = 4, .entries = e };
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_encode_raft_msg(&b, &m), RK_OK);
    struct raft_msg got;
    size_t len;
    const uint8_t *p = only_payload(&b, &len);
    /* 4 entries of 33 bytes, their keys and values, and 8 for each ttl and rev */
    ck_assert_uint_eq(len, 54 + 4 * 33 + (1 + 1) + 1 + (1 + 1) + 13 + 3 * 8 + 8);
    ck_assert_int_eq(proto_decode_raft_msg(p, len, &got), RK_OK);
    assert_msg_eq(&got, &m);
    /* the last entry before EXPIRED, CAS_TTL: rev, then ttl */
    size_t expired_bytes = 33 + 13;
    ck_assert_mem_eq(p + len - expired_bytes - 16, "\0\0\0\0\0\0\0\x09\1\2\3\4\5\6\7\x08",
                     16);
    raft_msg_free_entries(&got);
    proto_buf_free(&b);
    for (int i = 0; i < 4; i++)
        raft_entry_free(&e[i]);
}
END_TEST

/* A page: its head, then pairs (binary and empty ones too) in order; a cut or lying page
 * is refused. */
START_TEST(test_page_round_trip)
{
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_page_begin(&b, UINT64_MAX - 3), RK_OK);
    ck_assert_int_eq(proto_page_add(&b, "a", 1, "one", 3), RK_OK);
    ck_assert_int_eq(proto_page_add(&b, bin_key, sizeof(bin_key), bin_val, sizeof(bin_val)),
                     RK_OK);
    ck_assert_int_eq(proto_page_add(&b, "z", 1, "", 0), RK_OK);
    proto_page_end(&b, true);
    uint64_t rev;
    bool more;
    uint32_t n, off = PROTO_PAGE_HEAD, klen, vlen;
    const char *key, *val, *body = (const char *)b.data;
    ck_assert_int_eq(proto_page_head(body, (uint32_t)b.len, &rev, &more, &n), RK_OK);
    ck_assert_uint_eq(rev, UINT64_MAX - 3);
    ck_assert(more);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(proto_page_next(body, (uint32_t)b.len, &off, &key, &klen, &val, &vlen), 1);
    ck_assert(klen == 1 && key[0] == 'a' && vlen == 3 && memcmp(val, "one", 3) == 0);
    ck_assert_int_eq(proto_page_next(body, (uint32_t)b.len, &off, &key, &klen, &val, &vlen), 1);
    ck_assert_uint_eq(klen, sizeof(bin_key));
    ck_assert_mem_eq(val, bin_val, sizeof(bin_val));
    ck_assert_int_eq(proto_page_next(body, (uint32_t)b.len, &off, &key, &klen, &val, &vlen), 1);
    ck_assert(klen == 1 && vlen == 0);
    ck_assert_int_eq(proto_page_next(body, (uint32_t)b.len, &off, &key, &klen, &val, &vlen), 0);
    /* cut short inside the last pair (9 bytes: u32, "z", u32): refused; without the whole
     * pair it ends cleanly, and the head's count (3) tells the reader a pair is missing */
    for (uint32_t cut = 1; cut < 9; cut++) {
        off = PROTO_PAGE_HEAD;
        int rc = 1;
        while (rc == 1)
            rc = proto_page_next(body, (uint32_t)b.len - cut, &off, &key, &klen, &val, &vlen);
        ck_assert_int_eq(rc, RK_ERR_PROTO);
    }
    ck_assert_int_eq(proto_page_head(body, PROTO_PAGE_HEAD - 1, &rev, &more, &n), RK_ERR_PROTO);
    b.data[8] = 2; /* more is 0 or 1 */
    ck_assert_int_eq(proto_page_head(body, (uint32_t)b.len, &rev, &more, &n), RK_ERR_PROTO);
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_client_resp_round_trip)
{
    struct proto_client_resp resps[] = {
        { .status = PROTO_ST_OK },
        { .status = PROTO_ST_VALUE, .body = bin_val, .body_len = sizeof(bin_val) },
        { .status = PROTO_ST_NIL },
        { .status = PROTO_ST_REDIRECT, .leader_name = "server3", .leader_host = "localhost",
          .leader_port = 65535 },
        { .status = PROTO_ST_REDIRECT }, /* leader unknown */
        { .status = PROTO_ST_ERR, .body = "key too long", .body_len = 12 },
        { .status = PROTO_ST_FAILED, .body = "42", .body_len = 2 },
    };
    memset(resps[3].leader_host, 'h', 255); /* the longest host that fits */
    for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++) {
        struct proto_buf b = { 0 };
        struct proto_client_resp out;
        size_t len;
        ck_assert_int_eq(proto_encode_client_resp(&b, &resps[i]), RK_OK);
        const uint8_t *p = only_payload(&b, &len);
        ck_assert_uint_eq(len, 16 + resps[i].body_len + strlen(resps[i].leader_name) +
                                   strlen(resps[i].leader_host));
        ck_assert_int_eq(proto_decode_client_resp(p, len, &out), RK_OK);
        ck_assert_uint_eq(out.status, resps[i].status);
        ck_assert_uint_eq(out.body_len, resps[i].body_len);
        ck_assert_mem_eq(out.body, resps[i].body ? resps[i].body : "", out.body_len);
        ck_assert_str_eq(out.leader_name, resps[i].leader_name);
        ck_assert_str_eq(out.leader_host, resps[i].leader_host);
        ck_assert_uint_eq(out.leader_port, resps[i].leader_port);
        proto_buf_free(&b);
    }
}
END_TEST

START_TEST(test_raft_round_trip)
{
    struct raft_msg msgs[N_SAMPLE_MSGS];
    struct raft_entry entries[N_SAMPLE_ENTRIES];
    /* payload sizes as documented in docs/protocol.md; the entries take 33+0, 33+4+5,
     * 33+0, 33+3, 33, 33+1+1+8 (cas: its rev) and 33+1+8 bytes */
    const size_t want_len[N_SAMPLE_MSGS] = { 35, 19, 54 + 262, 54, 59, 59, 47 + 5, 51, 18 };
    sample_msgs(msgs, entries);
    for (int i = 0; i < N_SAMPLE_MSGS; i++) {
        struct proto_buf b = { 0 };
        struct raft_msg out;
        size_t len;
        ck_assert_int_eq(proto_encode_raft_msg(&b, &msgs[i]), RK_OK);
        const uint8_t *p = only_payload(&b, &len);
        ck_assert_uint_eq(len, want_len[i]);
        ck_assert_int_eq(proto_frame_type(p, len), PROTO_RAFT);
        ck_assert_int_eq(proto_decode_raft_msg(p, len, &out), RK_OK);
        assert_msg_eq(&out, &msgs[i]);
        if (out.n_entries > 0) /* deep copy, not pointers into the payload */
            ck_assert(out.entries[1].key < (char *)p || out.entries[1].key >= (char *)p + len);
        raft_msg_free_entries(&out);
        proto_buf_free(&b);
    }
    free_entries(entries);
}
END_TEST

/* Exact bytes of a VOTE frame, so the layout in docs/protocol.md is pinned down. */
START_TEST(test_raft_vote_layout)
{
    struct raft_msg m = { .type = RAFT_MSG_VOTE, .from = 1, .to = -1, .term = 0x0102,
                          .last_log_index = 3, .last_log_term = 4 };
    const uint8_t want[] = {
        0, 0, 0, 35,                  /* frame length */
        PROTO_RAFT, RAFT_MSG_VOTE,    /* frame type, message type */
        0, 0, 0, 1,                   /* from */
        0xff, 0xff, 0xff, 0xff,       /* to = -1 */
        0, 0, 0, 0, 0, 0, 1, 2,       /* term */
        0, 0, 0, 0, 0, 0, 0, 3,       /* last_log_index */
        0, 0, 0, 0, 0, 0, 0, 4,       /* last_log_term */
        0,                            /* transfer */
    };
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_encode_raft_msg(&b, &m), RK_OK);
    ck_assert_uint_eq(b.len, sizeof(want));
    ck_assert_mem_eq(b.data, want, sizeof(want));
    proto_buf_free(&b);
}
END_TEST

/* Exact bytes of a SNAPSHOT chunk (docs/protocol.md); its data is copied on decode; a
 * done flag other than 0/1 and data without a pointer are refused. */
START_TEST(test_raft_snapshot_layout)
{
    const uint8_t chunk[] = { 0xAA, 0x00, 0xBB };
    struct raft_msg m = { .type = RAFT_MSG_SNAPSHOT, .from = 0, .to = 1, .term = 2,
                          .snap_index = 3, .snap_term = 4, .snap_offset = 5,
                          .snap_done = true, .snap_len = sizeof(chunk),
                          .snap_data = (uint8_t *)chunk };
    const uint8_t want[] = {
        0, 0, 0, 50,                  /* frame length */
        PROTO_RAFT, RAFT_MSG_SNAPSHOT,
        0, 0, 0, 0,                   /* from */
        0, 0, 0, 1,                   /* to */
        0, 0, 0, 0, 0, 0, 0, 2,       /* term */
        0, 0, 0, 0, 0, 0, 0, 3,       /* snap_index (lastIncludedIndex) */
        0, 0, 0, 0, 0, 0, 0, 4,       /* snap_term (lastIncludedTerm) */
        0, 0, 0, 0, 0, 0, 0, 5,       /* snap_offset */
        1,                            /* done */
        0, 0, 0, 3, 0xAA, 0x00, 0xBB, /* data */
    };
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_encode_raft_msg(&b, &m), RK_OK);
    ck_assert_uint_eq(b.len, sizeof(want));
    ck_assert_mem_eq(b.data, want, sizeof(want));
    struct raft_msg out;
    ck_assert_int_eq(proto_decode_raft_msg(b.data + 4, b.len - 4, &out), RK_OK);
    ck_assert_ptr_nonnull(out.snap_data);
    ck_assert(out.snap_data < b.data || out.snap_data >= b.data + b.len);
    assert_msg_eq(&out, &m);
    raft_msg_free_entries(&out);
    ck_assert_ptr_null(out.snap_data);

    b.data[4 + 42] = 2; /* done must be 0 or 1 */
    ck_assert_int_eq(proto_decode_raft_msg(b.data + 4, b.len - 4, &out), RK_ERR_PROTO);
    ck_assert_ptr_null(out.snap_data);
    b.data[4 + 42] = 0;
    b.data[4 + 46] = 4; /* a data length past the payload */
    ck_assert_int_eq(proto_decode_raft_msg(b.data + 4, b.len - 4, &out), RK_ERR_PROTO);
    proto_buf_free(&b);

    m.snap_data = NULL;
    ck_assert_int_eq(proto_encode_raft_msg(&b, &m), RK_ERR_INVAL);
    m.snap_len = 0; /* an empty chunk is fine */
    ck_assert_int_eq(proto_encode_raft_msg(&b, &m), RK_OK);
    ck_assert_int_eq(proto_decode_raft_msg(b.data + 4, b.len - 4, &out), RK_OK);
    ck_assert_uint_eq(out.snap_len, 0);
    ck_assert_ptr_null(out.snap_data);
    proto_buf_free(&b);
}
END_TEST

/* Several frames append to one buffer, each with its own length prefix. */
START_TEST(test_frames_append)
{
    struct proto_buf b = { 0 };
    encode_samples(&b);
    int count = 0;
    size_t pos = 0;
    while (pos < b.len) {
        size_t n = (size_t)b.data[pos] << 24 | (size_t)b.data[pos + 1] << 16 |
                   (size_t)b.data[pos + 2] << 8 | b.data[pos + 3];
        ck_assert_int_eq(decode_all(b.data + pos + 4, n), 1);
        pos += 4 + n;
        count++;
    }
    ck_assert_uint_eq(pos, b.len);
    ck_assert_int_eq(count, 4 + N_SAMPLE_MSGS);
    proto_buf_free(&b);
}
END_TEST

/* ---- rejection ---- */

static void check_truncations(const uint8_t *payload, size_t len)
{
    ck_assert_int_eq(decode_all(payload, len), 1);
    uint8_t *copy = malloc(len + 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, payload, len);
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(decode_all(copy, cut), 0);
    copy[len] = 0; /* one trailing byte */
    ck_assert_int_eq(decode_all(copy, len + 1), 0);
    free(copy);
}

START_TEST(test_truncated_rejected)
{
    struct proto_buf b = { 0 };
    encode_samples(&b);
    each_frame(&b, check_truncations);
    proto_buf_free(&b);
}
END_TEST

/* Builds a CLIENT_REQ payload with the given lengths but no bytes behind them. */
static size_t req_header(uint8_t *p, uint8_t op, uint32_t key_len)
{
    p[0] = PROTO_CLIENT_REQ;
    p[1] = op;
    p[2] = (uint8_t)(key_len >> 24);
    p[3] = (uint8_t)(key_len >> 16);
    p[4] = (uint8_t)(key_len >> 8);
    p[5] = (uint8_t)key_len;
    return 6;
}

START_TEST(test_oversize_rejected)
{
    struct proto_buf b = { 0 };
    uint8_t p[64];
    struct proto_client_req req;

    size_t n = req_header(p, PROTO_OP_GET, PROTO_MAX_KEY + 1);
    ck_assert_int_eq(proto_decode_client_req(p, n, &req), RK_ERR_TOOBIG);
    n = req_header(p, PROTO_OP_GET, UINT32_MAX);
    ck_assert_int_eq(proto_decode_client_req(p, n, &req), RK_ERR_TOOBIG);
    n = req_header(p, PROTO_OP_GET, PROTO_MAX_KEY); /* allowed but missing */
    ck_assert_int_eq(proto_decode_client_req(p, n, &req), RK_ERR_PROTO);
    /* what the server's answer to a refused request names: the key's declared length */
    n = req_header(p, PROTO_OP_SET, PROTO_MAX_KEY + 7);
    ck_assert_uint_eq(proto_client_req_key_len(p, n), PROTO_MAX_KEY + 7);
    ck_assert_uint_eq(proto_client_req_key_len(p, 5), 0); /* too short to hold it */
    p[0] = PROTO_CLIENT_RESP;
    ck_assert_uint_eq(proto_client_req_key_len(p, n), 0); /* not a request */

    /* value over PROTO_MAX_VALUE after an empty key */
    n = req_header(p, PROTO_OP_SET, 0);
    uint32_t v = PROTO_MAX_VALUE + 1;
    p[n++] = (uint8_t)(v >> 24), p[n++] = (uint8_t)(v >> 16);
    p[n++] = (uint8_t)(v >> 8), p[n++] = (uint8_t)v;
    ck_assert_int_eq(proto_decode_client_req(p, n, &req), RK_ERR_TOOBIG);

    /* encoders refuse what decoders would reject, leaving the buffer untouched */
    char *big = calloc(1, PROTO_MAX_VALUE + 1);
    ck_assert_ptr_nonnull(big);
    req = (struct proto_client_req){ .op = PROTO_OP_GET, .key = big,
                                     .key_len = PROTO_MAX_KEY + 1 };
    ck_assert_int_eq(proto_encode_client_req(&b, &req), RK_ERR_TOOBIG);
    req = (struct proto_client_req){ .op = PROTO_OP_SET, .key = "k", .key_len = 1,
                                     .val = big, .val_len = PROTO_MAX_VALUE + 1 };
    ck_assert_int_eq(proto_encode_client_req(&b, &req), RK_ERR_TOOBIG);
    ck_assert_uint_eq(b.len, 0);

    /* the largest value is fine */
    req.val_len = PROTO_MAX_VALUE;
    ck_assert_int_eq(proto_encode_client_req(&b, &req), RK_OK);
    size_t len;
    const uint8_t *pl = only_payload(&b, &len);
    ck_assert_int_eq(proto_decode_client_req(pl, len, &req), RK_OK);
    ck_assert_uint_eq(req.val_len, PROTO_MAX_VALUE);

    /* an APPEND whose entries add up to more than PROTO_MAX_FRAME */
    size_t before = b.len;
    struct raft_entry e[5];
    for (int i = 0; i < 5; i++)
        e[i] = (struct raft_entry){ .term = 1, .type = RAFT_ENTRY_SET, .key = "k",
                                    .key_len = 1, .val = big, .val_len = PROTO_MAX_VALUE };
    struct raft_msg m = { .type = RAFT_MSG_APPEND, .n_entries = 5, .entries = e };
    ck_assert_int_eq(proto_encode_raft_msg(&b, &m), RK_ERR_TOOBIG);
    ck_assert_uint_eq(b.len, before);
    m.n_entries = 3; /* about 12 MiB fits */
    ck_assert_int_eq(proto_encode_raft_msg(&b, &m), RK_OK);
    ck_assert_uint_gt(b.len, before + 3 * (size_t)PROTO_MAX_VALUE);
    free(big);
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_resp_leader_too_long)
{
    uint8_t p[32] = { PROTO_CLIENT_RESP, PROTO_ST_REDIRECT, 0, 0, 0, 0, /* empty body */
                      0, 0, 0, 64 };                                  /* name: 64 bytes */
    struct proto_client_resp resp;
    ck_assert_int_eq(proto_decode_client_resp(p, 10, &resp), RK_ERR_TOOBIG);
    p[9] = 0; /* empty name, then a 256-byte host */
    p[10] = 0, p[11] = 0, p[12] = 1, p[13] = 0;
    ck_assert_int_eq(proto_decode_client_resp(p, 14, &resp), RK_ERR_TOOBIG);
    /* the encoder refuses a leader_name without a NUL in its array */
    struct proto_client_resp bad = { .status = PROTO_ST_REDIRECT };
    memset(bad.leader_name, 'x', sizeof(bad.leader_name));
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_encode_client_resp(&b, &bad), RK_ERR_INVAL);
    ck_assert_uint_eq(b.len, 0);
    proto_buf_free(&b);
}
END_TEST

/* The APPEND payload prefix up to and including n_entries. */
static size_t append_header(uint8_t *p, uint32_t n_entries)
{
    struct raft_msg m = { .type = RAFT_MSG_APPEND, .term = 1 };
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_encode_raft_msg(&b, &m), RK_OK);
    size_t len = b.len - 4;
    memcpy(p, b.data + 4, len);
    proto_buf_free(&b);
    p[len - 4] = (uint8_t)(n_entries >> 24);
    p[len - 3] = (uint8_t)(n_entries >> 16);
    p[len - 2] = (uint8_t)(n_entries >> 8);
    p[len - 1] = (uint8_t)n_entries;
    return len;
}

START_TEST(test_entry_count_rejected)
{
    uint8_t p[256];
    struct raft_msg m;
    /* 4 billion entries in a few bytes: rejected before any allocation */
    size_t n = append_header(p, UINT32_MAX);
    ck_assert_int_eq(proto_decode_raft_msg(p, n, &m), RK_ERR_PROTO);
    ck_assert_ptr_null(m.entries);
    /* 2 entries claimed, room for only one minimal (33-byte) entry */
    n = append_header(p, 2);
    memset(p + n, 0, 33 + 32);
    p[n + 8] = RAFT_ENTRY_NOOP;
    ck_assert_int_eq(proto_decode_raft_msg(p, n + 33 + 32, &m), RK_ERR_PROTO);
    /* one minimal entry: accepted */
    n = append_header(p, 1);
    memset(p + n, 0, 33);
    p[n + 24] = 5; /* client_id = 5 (after term, type and two empty strings) */
    p[n + 32] = 6; /* seq = 6 */
    ck_assert_int_eq(proto_decode_raft_msg(p, n + 33, &m), RK_OK);
    ck_assert_uint_eq(m.n_entries, 1);
    ck_assert_uint_eq(m.entries[0].type, RAFT_ENTRY_NOOP);
    ck_assert_uint_eq(m.entries[0].client_id, 5);
    ck_assert_uint_eq(m.entries[0].seq, 6);
    raft_msg_free_entries(&m);
    /* an entry without its session fields (the version 1 layout) is cut short */
    ck_assert_int_eq(proto_decode_raft_msg(p, n + 17, &m), RK_ERR_PROTO);
    ck_assert_ptr_null(m.entries);
    /* an entry key over PROTO_MAX_KEY */
    p[n + 9] = 0, p[n + 10] = 1, p[n + 11] = 0, p[n + 12] = 1; /* 65537 */
    ck_assert_int_eq(proto_decode_raft_msg(p, n + 33, &m), RK_ERR_TOOBIG);
    ck_assert_ptr_null(m.entries);
}
END_TEST

START_TEST(test_unknown_types_rejected)
{
    struct proto_buf b = { 0 };
    encode_samples(&b);
    /* payload offsets: frames 0..3 are hello client, hello peer, req, resp */
    size_t off[4 + N_SAMPLE_MSGS], len[4 + N_SAMPLE_MSGS], pos = 0;
    for (int i = 0; i < 4 + N_SAMPLE_MSGS; i++) {
        len[i] = (size_t)b.data[pos] << 24 | (size_t)b.data[pos + 1] << 16 |
                 (size_t)b.data[pos + 2] << 8 | b.data[pos + 3];
        off[i] = pos + 4;
        pos += 4 + len[i];
    }
    struct proto_client_req req;
    struct proto_client_resp resp;
    struct raft_msg m;
    uint8_t *d = b.data;
    const uint8_t bad_ops[] = { 0, PROTO_OP_LAST + 1, 255 };
    for (size_t i = 0; i < sizeof(bad_ops); i++) {
        d[off[2] + 1] = bad_ops[i];
        ck_assert_int_eq(proto_decode_client_req(d + off[2], len[2], &req), RK_ERR_PROTO);
    }
    d[off[3] + 1] = PROTO_ST_EVENTS + 1;
    ck_assert_int_eq(proto_decode_client_resp(d + off[3], len[3], &resp), RK_ERR_PROTO);
    const uint8_t bad_msgs[] = { 0, RAFT_MSG_TIMEOUT_NOW + 1, 255 };
    for (size_t i = 0; i < sizeof(bad_msgs); i++) {
        d[off[4] + 1] = bad_msgs[i];
        ck_assert_int_eq(proto_decode_raft_msg(d + off[4], len[4], &m), RK_ERR_PROTO);
    }
    /* VOTE_RESP granted must be 0 or 1 */
    d[off[5] + len[5] - 1] = 2;
    ck_assert_int_eq(proto_decode_raft_msg(d + off[5], len[5], &m), RK_ERR_PROTO);
    /* APPEND: entry 0's type byte follows the 54-byte header and the entry's term */
    d[off[6] + 54 + 8] = RAFT_ENTRY_CAD + 1;
    ck_assert_int_eq(proto_decode_raft_msg(d + off[6], len[6], &m), RK_ERR_PROTO);
    ck_assert_ptr_null(m.entries);
    /* APPEND_RESP success must be 0 or 1 */
    d[off[8] + 18] = 7;
    ck_assert_int_eq(proto_decode_raft_msg(d + off[8], len[8], &m), RK_ERR_PROTO);
    /* a frame of another type given to each decoder */
    ck_assert_int_eq(proto_decode_raft_msg(d + off[0], len[0], &m), RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_client_req(d + off[9], len[9], &req), RK_ERR_PROTO);
    ck_assert_int_eq(proto_decode_client_resp(d + off[1], len[1], &resp), RK_ERR_PROTO);
    proto_buf_free(&b);

    struct raft_msg bad = { .type = RAFT_MSG_TIMEOUT_NOW + 1 };
    ck_assert_int_eq(proto_encode_raft_msg(&b, &bad), RK_ERR_INVAL);
    struct raft_entry e = { .type = RAFT_ENTRY_EXPIRED + 1 };
    bad = (struct raft_msg){ .type = RAFT_MSG_APPEND, .n_entries = 1, .entries = &e };
    ck_assert_int_eq(proto_encode_raft_msg(&b, &bad), RK_ERR_INVAL);
    struct proto_client_req bad_req = { .op = 0 };
    ck_assert_int_eq(proto_encode_client_req(&b, &bad_req), RK_ERR_INVAL);
    ck_assert_uint_eq(b.len, 0);
    proto_buf_free(&b);
}
END_TEST

/* Random bytes and randomly mutated valid frames never crash a decoder. */
START_TEST(test_garbage_never_crashes)
{
    uint8_t buf[96];
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = rng() % sizeof(buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rng();
        if (len > 0 && (i & 1)) /* half start with a valid frame type */
            buf[0] = (uint8_t)(1 + rng() % 5);
        accepted += decode_all(buf, len);
    }

    struct proto_buf b = { 0 };
    encode_samples(&b);
    uint8_t *copy = malloc(b.len);
    ck_assert_ptr_nonnull(copy);
    for (int i = 0; i < 20000; i++) {
        memcpy(copy, b.data, b.len);
        size_t pos = 0, frame = rng() % (4 + N_SAMPLE_MSGS), n = 0;
        for (size_t f = 0; f <= frame; f++) {
            n = (size_t)copy[pos] << 24 | (size_t)copy[pos + 1] << 16 |
                (size_t)copy[pos + 2] << 8 | copy[pos + 3];
            if (f < frame)
                pos += 4 + n;
        }
        uint8_t *p = copy + pos + 4;
        for (int flips = 1 + (int)(rng() % 3); flips > 0; flips--)
            p[rng() % n] = (uint8_t)rng();
        accepted += decode_all(p, n);
    }
    free(copy);
    proto_buf_free(&b);
    ck_assert_int_gt(accepted, 0); /* some mutations stay valid (e.g. a changed term) */
}
END_TEST

/* ---- frame I/O over sockets ---- */

static void make_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

START_TEST(test_read_frame_good)
{
    int sv[2];
    make_pair(sv);
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_encode_hello_peer(&b, "server4", 42), RK_OK);
    ck_assert_int_eq(proto_encode_hello_client(&b), RK_OK);
    ck_assert_int_eq(net_write_full(sv[0], b.data, b.len), RK_OK);
    uint8_t *payload = NULL;
    size_t len = 0;
    ck_assert_int_eq(net_read_frame(sv[1], PROTO_MAX_FRAME, &payload, &len), RK_OK);
    ck_assert_uint_eq(len, b.len - 4 - 6); /* the client hello is 4 + 2 bytes */
    ck_assert_mem_eq(payload, b.data + 4, len);
    int type;
    char name[64];
    ck_assert_int_eq(proto_decode_hello(payload, len, &type, name), RK_OK);
    ck_assert_str_eq(name, "server4");
    free(payload);
    ck_assert_int_eq(net_read_frame(sv[1], PROTO_MAX_FRAME, &payload, &len), RK_OK);
    ck_assert_uint_eq(len, 2);
    free(payload);
    close(sv[0]);
    ck_assert_int_eq(net_read_frame(sv[1], PROTO_MAX_FRAME, &payload, &len), RK_ERR_CLOSED);
    ck_assert_ptr_null(payload);
    close(sv[1]);
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_read_frame_bad_length)
{
    int sv[2];
    make_pair(sv);
    uint8_t *payload = (uint8_t *)"x";
    size_t len = 99;
    const uint8_t zero[] = { 0, 0, 0, 0, 'A' };
    ck_assert_int_eq(net_write_full(sv[0], zero, sizeof(zero)), RK_OK);
    ck_assert_int_eq(net_read_frame(sv[1], 1024, &payload, &len), RK_ERR_TOOBIG);
    ck_assert_ptr_null(payload);
    ck_assert_uint_eq(len, 0);
    uint8_t next;
    ck_assert_int_eq(net_read_full(sv[1], &next, 1), RK_OK);
    ck_assert_int_eq(next, 'A'); /* nothing past the length was read */

    const uint8_t big[] = { 0, 0, 4, 1, 'B' }; /* 1025 > 1024 */
    ck_assert_int_eq(net_write_full(sv[0], big, sizeof(big)), RK_OK);
    ck_assert_int_eq(net_read_frame(sv[1], 1024, &payload, &len), RK_ERR_TOOBIG);
    ck_assert_int_eq(net_read_full(sv[1], &next, 1), RK_OK);
    ck_assert_int_eq(next, 'B');

    const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'C' };
    ck_assert_int_eq(net_write_full(sv[0], huge, sizeof(huge)), RK_OK);
    ck_assert_int_eq(net_read_frame(sv[1], PROTO_MAX_FRAME, &payload, &len), RK_ERR_TOOBIG);
    ck_assert_int_eq(net_read_full(sv[1], &next, 1), RK_OK);
    ck_assert_int_eq(next, 'C');
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(test_read_frame_eof)
{
    int sv[2];
    uint8_t *payload;
    size_t len;
    /* EOF inside the length prefix */
    make_pair(sv);
    ck_assert_int_eq(net_write_full(sv[0], "\0\0", 2), RK_OK);
    close(sv[0]);
    ck_assert_int_eq(net_read_frame(sv[1], 1024, &payload, &len), RK_ERR_IO);
    close(sv[1]);
    /* EOF inside the payload */
    make_pair(sv);
    ck_assert_int_eq(net_write_full(sv[0], "\0\0\0\5abc", 7), RK_OK);
    close(sv[0]);
    ck_assert_int_eq(net_read_frame(sv[1], 1024, &payload, &len), RK_ERR_IO);
    ck_assert_ptr_null(payload);
    close(sv[1]);
    /* EOF right after the length prefix */
    make_pair(sv);
    ck_assert_int_eq(net_write_full(sv[0], "\0\0\0\5", 4), RK_OK);
    close(sv[0]);
    ck_assert_int_eq(net_read_frame(sv[1], 1024, &payload, &len), RK_ERR_IO);
    close(sv[1]);
}
END_TEST

START_TEST(test_timeouts)
{
    int sv[2];
    make_pair(sv);
    ck_assert_int_eq(net_set_timeouts(sv[1], 100), RK_OK);
    uint8_t *payload;
    size_t len;
    ck_assert_int_eq(net_read_frame(sv[1], 1024, &payload, &len), RK_ERR_TIMEOUT);
    ck_assert_int_eq(net_set_timeouts(sv[1], -1), RK_ERR_INVAL);
    /* a writer whose reader never reads times out instead of blocking forever */
    ck_assert_int_eq(net_set_timeouts(sv[0], 100), RK_OK);
    size_t big_len = 8u * 1024 * 1024;
    uint8_t *big = calloc(1, big_len);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(net_write_full(sv[0], big, big_len), RK_ERR_TIMEOUT);
    free(big);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(test_write_to_closed_peer)
{
    int sv[2];
    make_pair(sv);
    close(sv[1]);
    /* MSG_NOSIGNAL: an error, not a SIGPIPE that kills the test */
    ck_assert_int_eq(net_write_full(sv[0], "abcd", 4), RK_ERR_IO);
    close(sv[0]);
}
END_TEST

static uint16_t local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    ck_assert_int_eq(sa.sin_family, AF_INET);
    return ntohs(sa.sin_port);
}

START_TEST(test_listen_connect)
{
    char err[256] = "";
    int lfd = net_listen("127.0.0.1", 0, 8, err, sizeof(err));
    ck_assert_msg(lfd >= 0, "%s", err);
    uint16_t port = local_port(lfd);
    const char *hosts[] = { "localhost", "127.0.0.1" };
    for (int i = 0; i < 2; i++) {
        int cfd = net_connect(hosts[i], port, 2000, err, sizeof(err));
        ck_assert_msg(cfd >= 0, "%s", err);
        int one = 0;
        socklen_t sl = sizeof(one);
        ck_assert_int_eq(getsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, &sl), 0);
        ck_assert_int_ne(one, 0);
        ck_assert_int_eq(fcntl(cfd, F_GETFL) & O_NONBLOCK, 0);
        int afd = accept(lfd, NULL, NULL);
        ck_assert_int_ge(afd, 0);
        struct proto_buf b = { 0 };
        ck_assert_int_eq(proto_encode_hello_client(&b), RK_OK);
        ck_assert_int_eq(net_write_full(cfd, b.data, b.len), RK_OK);
        uint8_t *payload;
        size_t len;
        ck_assert_int_eq(net_read_frame(afd, PROTO_MAX_FRAME, &payload, &len), RK_OK);
        ck_assert_int_eq(proto_frame_type(payload, len), PROTO_HELLO_CLIENT);
        free(payload);
        proto_buf_free(&b);
        close(cfd);
        ck_assert_int_eq(net_read_frame(afd, PROTO_MAX_FRAME, &payload, &len),
                         RK_ERR_CLOSED);
        close(afd);
    }
    /* a port nobody listens on: refused with a message */
    close(lfd);
    err[0] = '\0';
    ck_assert_int_eq(net_connect("127.0.0.1", port, 1000, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "127.0.0.1"));
    ck_assert_int_eq(net_connect("", port, 1000, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_listen_in_use)
{
    char err[256] = "";
    int a = net_listen("127.0.0.1", 0, 8, err, sizeof(err));
    ck_assert_msg(a >= 0, "%s", err);
    uint16_t port = local_port(a);
    err[0] = '\0';
    ck_assert_int_eq(net_listen("127.0.0.1", port, 8, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, strerror(EADDRINUSE)));
    close(a);
}
END_TEST

static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("encode_decode");
    tcase_add_test(tc, test_hello_round_trip);
    tcase_add_test(tc, test_hello_rejects);
    tcase_add_test(tc, test_frame_type);
    tcase_add_test(tc, test_client_req_round_trip);
    tcase_add_test(tc, test_client_req_layout);
    tcase_add_test(tc, test_client_id_text);
    tcase_add_test(tc, test_rev_text);
    tcase_add_test(tc, test_scan_text);
    tcase_add_test(tc, test_ttl_text);
    tcase_add_test(tc, test_expiry_entries_round_trip);
    tcase_add_test(tc, test_page_round_trip);
    tcase_add_test(tc, test_client_resp_round_trip);
    tcase_add_test(tc, test_raft_round_trip);
    tcase_add_test(tc, test_raft_vote_layout);
    tcase_add_test(tc, test_raft_snapshot_layout);
    tcase_add_test(tc, test_frames_append);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("reject");
    tcase_set_timeout(tr, 30);
    tcase_add_test(tr, test_truncated_rejected);
    tcase_add_test(tr, test_oversize_rejected);
    tcase_add_test(tr, test_resp_leader_too_long);
    tcase_add_test(tr, test_entry_count_rejected);
    tcase_add_test(tr, test_unknown_types_rejected);
    tcase_add_test(tr, test_garbage_never_crashes);
    suite_add_tcase(s, tr);
    TCase *tn = tcase_create("net");
    tcase_set_timeout(tn, 10);
    tcase_add_test(tn, test_read_frame_good);
    tcase_add_test(tn, test_read_frame_bad_length);
    tcase_add_test(tn, test_read_frame_eof);
    tcase_add_test(tn, test_timeouts);
    tcase_add_test(tn, test_write_to_closed_peer);
    tcase_add_test(tn, test_listen_connect);
    tcase_add_test(tn, test_listen_in_use);
    suite_add_tcase(s, tn);
    return s;
}

RK_CHECK_MAIN(proto_suite)
