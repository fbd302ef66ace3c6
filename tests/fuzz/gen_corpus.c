/* tests/fuzz/gen_corpus.c - writes the seed corpus of every fuzz target into DIR/<target>/
 * from real encoded frames (common/proto.c), real log lines, snapshots and state files
 * (written by server/storage/storage.c and snapshot.c) and real registry and client
 * lines. Run it again after a protocol or file format change: tests/fuzz/run_fuzz.sh
 * --corpus (see tests/fuzz/README.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/errors.h"
#include "../../common/proto.h"
#include "../../server/kv/kv.h"
#include "../../server/storage/snapshot.h"
#include "../../server/storage/storage.h"

static const char *out_dir;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_seed(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path);
    snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path);
}

static void text_seed(const char *target, const char *name, const char *text);

static void must(int rc, const char *what)
{
    if (rc != RK_OK) {
        fprintf(stderr, "gen_corpus: %s: %s\n", what, rk_strerror(rc));
        exit(1);
    }
}

/* ---- frames ---- */

struct named_frame {
    const char *name;
    struct proto_buf b; /* one whole frame, length prefix included */
};

#define MAX_FRAMES 40
static struct named_frame frames[MAX_FRAMES];
static int n_frames;

static struct proto_buf *new_frame(const char *name)
{
    frames[n_frames].name = name;
    return &frames[n_frames++].b;
}

static void client_frames(void)
{
    static const char bin_key[] = { 'k', 0, '\n', (char)0xff };
    must(proto_encode_hello_client(new_frame("hello_client")), "hello");
    struct proto_buf *old = new_frame("hello_client_oldest"); /* still served */
    must(proto_encode_hello_client(old), "hello");
    old->data[5] = PROTO_CLIENT_MIN_VERSION;
    must(proto_encode_hello_peer_at(new_frame("hello_peer_at"), "server7", 0x3b1f5e2a9c0d4e77ull,
                                    6, "10.0.0.7", 7000), "hello peer at");
    must(proto_encode_hello_peer(new_frame("hello_peer"), "server2", 0x3b1f5e2a9c0d4e77ull),
         "hello peer");
    must(proto_encode_hello_peer(new_frame("hello_peer_long_name"),
                                 "a-very-long-server-name.with_every.allowed-char_0123456789",
                                 1), "hello peer");
    struct proto_client_req req = { .op = PROTO_OP_SET, .key = "greeting", .key_len = 8,
                                    .val = "hello world", .val_len = 11 };
    must(proto_encode_client_req(new_frame("req_set"), &req), "set");
    req = (struct proto_client_req){ .op = PROTO_OP_SET, .key = bin_key, .key_len = 4,
                                     .val = "v", .val_len = 1, .client_id = 17, .seq = 3 };
    must(proto_encode_client_req(new_frame("req_set_session_binary"), &req), "set");
    req = (struct proto_client_req){ .op = PROTO_OP_GET, .key = "greeting", .key_len = 8 };
    must(proto_encode_client_req(new_frame("req_get"), &req), "get");
    req = (struct proto_client_req){ .op = PROTO_OP_DELETE, .key = "k", .key_len = 1,
                                     .client_id = 5, .seq = 1 };
    must(proto_encode_client_req(new_frame("req_delete"), &req), "delete");
    req = (struct proto_client_req){ .op = PROTO_OP_STATUS };
    must(proto_encode_client_req(new_frame("req_status"), &req), "status");
    req = (struct proto_client_req){ .op = PROTO_OP_REGISTER };
    must(proto_encode_client_req(new_frame("req_register"), &req), "register");
    req = (struct proto_client_req){ .op = PROTO_OP_WATCH, .key = "user/", .key_len = 5,
                                     .val = "42", .val_len = 2 };
    must(proto_encode_client_req(new_frame("req_watch"), &req), "watch");
    struct proto_client_resp resp = { .status = PROTO_ST_OK };
    must(proto_encode_client_resp(new_frame("resp_ok"), &resp), "ok");
    resp = (struct proto_client_resp){ .status = PROTO_ST_VALUE, .body = "hello world",
                                       .body_len = 11 };
    must(proto_encode_client_resp(new_frame("resp_value"), &resp), "value");
    resp = (struct proto_client_resp){ .status = PROTO_ST_VALUE, .body = "42", .body_len = 2 };
    must(proto_encode_client_resp(new_frame("resp_register_id"), &resp), "id");
    resp = (struct proto_client_resp){ .status = PROTO_ST_NIL };
    must(proto_encode_client_resp(new_frame("resp_nil"), &resp), "nil");
    resp = (struct proto_client_resp){ .status = PROTO_ST_REDIRECT, .leader_name = "server3",
                                       .leader_host = "127.0.0.1", .leader_port = 3000 };
    must(proto_encode_client_resp(new_frame("resp_redirect"), &resp), "redirect");
    resp = (struct proto_client_resp){ .status = PROTO_ST_ERR, .body = "too many connections",
                                       .body_len = 20 };
    must(proto_encode_client_resp(new_frame("resp_err"), &resp), "err");
    struct proto_buf events = { 0 };
    struct proto_event ev = { .rev = 42, .kind = PROTO_EVENT_SET, .key = "user/1", .key_len = 6,
                              .val = "alice", .val_len = 5 };
    must(proto_events_begin(&events, 43), "events");
    must(proto_events_add(&events, &ev), "event");
    ev = (struct proto_event){ .rev = 43, .kind = PROTO_EVENT_EXPIRE, .key = "user/2",
                               .key_len = 6, .val = "" };
    must(proto_events_add(&events, &ev), "event");
    resp = (struct proto_client_resp){ .status = PROTO_ST_EVENTS, .body = (char *)events.data,
                                       .body_len = (uint32_t)events.len };
    must(proto_encode_client_resp(new_frame("resp_events"), &resp), "events");
    proto_buf_free(&events);
}

static void raft_frames(void)
{
    struct raft_msg m = { .type = RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 7,
                          .last_log_index = 40, .last_log_term = 6 };
    must(proto_encode_raft_msg(new_frame("raft_vote"), &m), "vote");
    m.type = RAFT_MSG_PREVOTE;
    must(proto_encode_raft_msg(new_frame("raft_prevote"), &m), "prevote");
    m = (struct raft_msg){ .type = RAFT_MSG_VOTE_RESP, .term = 7, .vote_granted = true };
    must(proto_encode_raft_msg(new_frame("raft_vote_resp"), &m), "vote resp");
    m.type = RAFT_MSG_PREVOTE_RESP;
    must(proto_encode_raft_msg(new_frame("raft_prevote_resp"), &m), "prevote resp");
    m = (struct raft_msg){ .type = RAFT_MSG_APPEND, .term = 3, .prev_log_index = 9,
                           .prev_log_term = 2, .leader_commit = 8, .read_ctx = 77 };
    must(proto_encode_raft_msg(new_frame("raft_heartbeat"), &m), "heartbeat");
    struct raft_entry e[4] = {
        { .term = 3, .type = RAFT_ENTRY_NOOP, .key = "", .val = "" },
        { .term = 3, .type = RAFT_ENTRY_SET, .key = "k1", .key_len = 2, .val = "value one",
          .val_len = 9, .client_id = 4, .seq = 2 },
        { .term = 3, .type = RAFT_ENTRY_DELETE, .key = "k0", .key_len = 2, .val = "" },
        { .term = 3, .type = RAFT_ENTRY_REGISTER, .key = "", .val = "" },
    };
    m.entries = e;
    m.n_entries = 4;
    must(proto_encode_raft_msg(new_frame("raft_append_4"), &m), "append");
    m.entries = &e[1];
    m.n_entries = 1;
    must(proto_encode_raft_msg(new_frame("raft_append_1"), &m), "append");
    static const char expired[] = "\0\0\0\1k\0\0\0\0\0\0\0\x07";
    struct raft_entry ex[4] = { /* expiring keys: ttl on the wire (protocol 6) */
        { .term = 3, .type = RAFT_ENTRY_SETEX, .key = "s", .key_len = 1, .val = "v",
          .val_len = 1, .ttl_ms = 1500, .client_id = 4, .seq = 3 },
        { .term = 3, .type = RAFT_ENTRY_EXPIRE, .key = "s", .key_len = 1, .val = "",
          .ttl_ms = 100 },
        { .term = 3, .type = RAFT_ENTRY_CAS_TTL, .key = "lock", .key_len = 4, .val = "me",
          .val_len = 2, .rev = 7, .ttl_ms = 2000 },
        { .term = 3, .type = RAFT_ENTRY_EXPIRED, .key = "", .val = (char *)expired,
          .val_len = sizeof(expired) - 1 },
    };
    m.entries = ex;
    m.n_entries = 4;
    must(proto_encode_raft_msg(new_frame("raft_append_expiry"), &m), "append");
    m = (struct raft_msg){ .type = RAFT_MSG_APPEND_RESP, .term = 3, .success = false,
                           .reject_index = 9, .conflict_index = 5, .conflict_term = 2,
                           .read_ctx = 77 };
    must(proto_encode_raft_msg(new_frame("raft_append_resp_reject"), &m), "append resp");
    m.success = true;
    m.match_index = 13;
    must(proto_encode_raft_msg(new_frame("raft_append_resp_ok"), &m), "append resp");
    static uint8_t chunk[] = "snapshot chunk \x01\x02";
    m = (struct raft_msg){ .type = RAFT_MSG_SNAPSHOT, .term = 4, .snap_index = 100,
                           .snap_term = 3, .snap_offset = 4096, .snap_len = sizeof(chunk),
                           .snap_data = chunk, .snap_done = true };
    must(proto_encode_raft_msg(new_frame("raft_snapshot"), &m), "snapshot");
    m = (struct raft_msg){ .type = RAFT_MSG_SNAPSHOT_RESP, .term = 4, .success = true,
                           .match_index = 100, .snap_index = 100, .snap_term = 3,
                           .snap_offset = 4115 };
    must(proto_encode_raft_msg(new_frame("raft_snapshot_resp"), &m), "snapshot resp");
}

static void proto_seeds(void)
{
    for (int i = 0; i < n_frames; i++)
        write_seed("proto", frames[i].name, frames[i].b.data + 4, frames[i].b.len - 4);
    static const char id_digits[] = "18446744073709551615";
    write_seed("proto", "client_id_max", id_digits, strlen(id_digits));
    write_seed("proto", "empty", "", 0);
}

/* A stream for fuzz_frame: 2 bytes of frame limit - 1, then the frames. */
static void stream_seed(const char *name, uint32_t max, const int *idx, int n, size_t cut)
{
    struct proto_buf s = { 0 };
    uint8_t hdr[2] = { (uint8_t)((max - 1) >> 8), (uint8_t)(max - 1) };
    size_t cap = 2;
    for (int i = 0; i < n; i++)
        cap += frames[idx[i]].b.len;
    s.data = malloc(cap);
    if (s.data == NULL)
        die("malloc");
    memcpy(s.data, hdr, 2);
    s.len = 2;
    for (int i = 0; i < n; i++) {
        memcpy(s.data + s.len, frames[idx[i]].b.data, frames[idx[i]].b.len);
        s.len += frames[idx[i]].b.len;
    }
    write_seed("frame", name, s.data, s.len > cut ? s.len - cut : s.len);
    free(s.data);
}

static int frame_index(const char *name)
{
    for (int i = 0; i < n_frames; i++)
        if (strcmp(frames[i].name, name) == 0)
            return i;
    fprintf(stderr, "gen_corpus: no frame %s\n", name);
    exit(1);
}

static void frame_seeds(void)
{
    int client[] = { frame_index("hello_client"), frame_index("req_register"),
                     frame_index("req_set_session_binary"), frame_index("req_get"),
                     frame_index("req_delete"), frame_index("req_status") };
    int server[] = { frame_index("resp_register_id"), frame_index("resp_ok"),
                     frame_index("resp_value"), frame_index("resp_nil"),
                     frame_index("resp_redirect"), frame_index("resp_err") };
    int peer[] = { frame_index("hello_peer"), frame_index("raft_prevote"),
                   frame_index("raft_vote"), frame_index("raft_heartbeat"),
                   frame_index("raft_append_4"), frame_index("raft_append_1") };
    int replies[] = { frame_index("hello_peer"), frame_index("raft_vote_resp"),
                      frame_index("raft_append_resp_ok"), frame_index("raft_append_resp_reject") };
    stream_seed("client_session", 65536, client, 6, 0);
    stream_seed("client_session_cut_mid_frame", 65536, client, 6, 3);
    stream_seed("client_session_cut_in_length", 65536, client, 2, 8);
    stream_seed("client_session_small_limit", 16, client, 6, 0);
    stream_seed("server_replies", 65536, server, 6, 0);
    stream_seed("peer_stream", 65536, peer, 6, 0);
    stream_seed("peer_stream_limit_100", 100, peer, 6, 0);
    stream_seed("peer_replies", 65536, replies, 4, 0);
    for (int i = 0; i < n_frames; i++) {
        char name[96];
        snprintf(name, sizeof(name), "one_%s", frames[i].name);
        stream_seed(name, 65536, &i, 1, 0);
    }
    static const uint8_t http[] = "\xff\xffGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    write_seed("frame", "http_request", http, sizeof(http) - 1);
    static const uint8_t zero[] = { 0xff, 0xff, 0, 0, 0, 0 };
    write_seed("frame", "zero_length", zero, sizeof(zero));
    static const uint8_t negative[] = { 0xff, 0xff, 0x80, 0, 0, 1, 1, 2 };
    write_seed("frame", "negative_length", negative, sizeof(negative));
    write_seed("frame", "empty_stream", "\xff\xff", 2);
}

/* A stream for fuzz_frame_reader: a mode byte, 3 bytes of frame limit - 1, the count of
 * write sizes and each size - 1 (2 bytes), then the frames (less cut bytes at the end). */
static void reader_seed(const char *name, uint8_t mode, uint32_t max, const uint16_t *sizes,
                        int k, const int *idx, int n, size_t cut)
{
    size_t cap = 5 + 2 * (size_t)k;
    for (int i = 0; i < n; i++)
        cap += frames[idx[i]].b.len;
    uint8_t *s = malloc(cap);
    if (s == NULL)
        die("malloc");
    size_t len = 0;
    s[len++] = mode;
    s[len++] = (uint8_t)((max - 1) >> 16);
    s[len++] = (uint8_t)((max - 1) >> 8);
    s[len++] = (uint8_t)(max - 1);
    s[len++] = (uint8_t)k;
    for (int i = 0; i < k; i++) {
        s[len++] = (uint8_t)((sizes[i] - 1) >> 8);
        s[len++] = (uint8_t)(sizes[i] - 1);
    }
    for (int i = 0; i < n; i++) {
        memcpy(s + len, frames[idx[i]].b.data, frames[idx[i]].b.len);
        len += frames[idx[i]].b.len;
    }
    write_seed("frame_reader", name, s, len - cut);
    free(s);
}

/* The same with raw bytes for a stream. */
static void reader_raw_seed(const char *name, uint8_t mode, uint32_t max, const void *bytes,
                            size_t len)
{
    uint8_t s[256];
    s[0] = mode;
    s[1] = (uint8_t)((max - 1) >> 16);
    s[2] = (uint8_t)((max - 1) >> 8);
    s[3] = (uint8_t)(max - 1);
    s[4] = 0;
    memcpy(s + 5, bytes, len);
    write_seed("frame_reader", name, s, 5 + len);
}

/* Seeds as the server reads: a HELLO (limit 1024, deadline from the accept), a client's
 * and a peer's frames, in one write, byte by byte and in uneven pieces; cut short; after
 * a 1 MiB frame; lengths 0 and over the limit; a small reason buffer. */
static void frame_reader_seeds(void)
{
    int client[] = { frame_index("hello_client"), frame_index("req_register"),
                     frame_index("req_set_session_binary"), frame_index("req_get"),
                     frame_index("req_delete"), frame_index("req_status") };
    int peer[] = { frame_index("hello_peer"), frame_index("raft_prevote"),
                   frame_index("raft_vote"), frame_index("raft_heartbeat"),
                   frame_index("raft_append_4"), frame_index("raft_append_1"),
                   frame_index("raft_snapshot") };
    int hello = frame_index("hello_peer_long_name");
    static const uint16_t one[] = { 1 }, uneven[] = { 3, 7, 1, 40 }, big[] = { 200 };
    const uint32_t max = PROTO_MAX_FRAME; /* a client's by default, and a peer's */
    reader_seed("hello_one_write", 0x02, 1024, NULL, 0, &hello, 1, 0);
    reader_seed("hello_byte_by_byte", 0x02, 1024, one, 1, &hello, 1, 0);
    reader_seed("hello_cut", 0x06, 1024, uneven, 4, &hello, 1, 5);
    reader_seed("hello_small_limit", 0x00, 16, NULL, 0, &hello, 1, 0);
    reader_seed("client_session", 0x00, max, NULL, 0, client, 6, 0);
    reader_seed("client_session_byte_by_byte", 0x00, max, one, 1, client, 6, 0);
    reader_seed("client_session_uneven", 0x00, max, uneven, 4, client, 6, 0);
    reader_seed("client_session_no_idle_text", 0x01, max, uneven, 4, client, 6, 0);
    reader_seed("client_session_cut_mid_frame", 0x04, max, uneven, 4, client, 6, 3);
    reader_seed("client_session_cut_in_length", 0x00, max, NULL, 0, client, 2, 8);
    reader_seed("client_session_small_limit", 0x00, 16, uneven, 4, client, 6, 0);
    reader_seed("client_session_short_reason", 0x20, 16, NULL, 0, client, 6, 0);
    reader_seed("client_session_no_reads_between", 0x10, max, one, 1, client, 6, 0);
    reader_seed("peer_stream", 0x00, max, big, 1, peer, 7, 0);
    reader_seed("peer_stream_uneven", 0x04, max, uneven, 4, peer, 7, 0);
    reader_seed("peer_stream_limit_100", 0x00, 100, uneven, 4, peer, 7, 0);
    reader_seed("peer_stream_after_big_frame", 0x08, max, big, 1, peer, 7, 0);
    reader_seed("peer_stream_after_big_frame_cut", 0x0c, max, uneven, 4, peer, 7, 9);
    reader_seed("big_frame_over_limit", 0x08, 65536, NULL, 0, peer, 1, 0);
    reader_seed("hello_polls", 0x42, 1024, uneven, 4, &hello, 1, 0);
    reader_seed("client_session_polls", 0x40, max, uneven, 4, client, 6, 0);
    int many[180]; /* over 4 KiB: the buffer is compacted on the way */
    for (int i = 0; i < 180; i++)
        many[i] = client[i % 6];
    reader_seed("client_sessions_limit_4096", 0x00, 4096, uneven, 4, many, 180, 0);
    reader_seed("client_sessions_limit_4096_cut", 0x14, 4096, big, 1, many, 180, 2);
    reader_seed("client_sessions_socket_full", 0x10, max, one, 1, many, 180, 0);
    uint32_t largest = 0; /* the limit exactly at a frame's size, and one below */
    for (int i = 0; i < 6; i++)
        if (frames[client[i]].b.len - 4 > largest)
            largest = (uint32_t)(frames[client[i]].b.len - 4);
    reader_seed("client_session_limit_exact", 0x00, largest, uneven, 4, client, 6, 0);
    reader_seed("client_session_limit_one_below", 0x00, largest - 1, uneven, 4, client, 6, 0);
    for (int i = 0; i < n_frames; i++) {
        char name[96];
        snprintf(name, sizeof(name), "one_%s", frames[i].name);
        reader_seed(name, (uint8_t)(i & 0x17), max, uneven, i % 5, &i, 1, 0);
    }
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    reader_raw_seed("http_request", 0x00, max, http, sizeof(http) - 1);
    static const uint8_t zero[] = { 0, 0, 0, 0 }, negative[] = { 0x80, 0, 0, 1, 1, 2 };
    reader_raw_seed("zero_length", 0x00, max, zero, sizeof(zero));
    reader_raw_seed("zero_length_short_reason", 0x20, max, zero, sizeof(zero));
    reader_raw_seed("negative_length", 0x00, max, negative, sizeof(negative));
    static const uint8_t huge[] = { 0x00, 0xff, 0xff, 0xff, 'x' };
    reader_raw_seed("length_16m_cut", 0x04, max, huge, sizeof(huge));
    reader_raw_seed("empty_stream", 0x00, max, "", 0);
    reader_raw_seed("empty_stream_no_idle_text", 0x05, max, "", 0);
}

/* ---- log lines, written by the real storage ---- */

static void log_seeds(void)
{
    char dir[] = "/tmp/rk_gen_corpus_XXXXXX";
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    struct storage *st;
    struct storage_loaded ld;
    char err[512];
    must(storage_open(&st, dir, "s1", &ld, err, sizeof(err)), err);
    static char odd[] = { 'q', '"', '\\', '\n', '\r', '\t', 0, (char)0x7f, (char)0xe9 };
    struct raft_entry e[] = {
        { .term = 1, .type = RAFT_ENTRY_NOOP, .key = "", .val = "" },
        { .term = 1, .type = RAFT_ENTRY_REGISTER, .key = "", .val = "" },
        { .term = 1, .type = RAFT_ENTRY_SET, .key = "greeting", .key_len = 8,
          .val = "hello world", .val_len = 11, .client_id = 2, .seq = 1 },
        { .term = 2, .type = RAFT_ENTRY_SET, .key = odd, .key_len = sizeof(odd), .val = odd,
          .val_len = sizeof(odd) },
        { .term = 2, .type = RAFT_ENTRY_DELETE, .key = "greeting", .key_len = 8, .val = "",
          .client_id = 2, .seq = 2 },
        { .term = 3, .type = RAFT_ENTRY_SET, .key = "k", .key_len = 1, .val = "", .val_len = 0 },
        { .term = 3, .type = RAFT_ENTRY_DELETE, .key = "k", .key_len = 1, .val = "" },
        { .term = 18446744073709551615ull, .type = RAFT_ENTRY_SET, .key = "max", .key_len = 3,
          .val = "v", .val_len = 1, .client_id = 18446744073709551615ull,
          .seq = 18446744073709551615ull },
        { .term = 18446744073709551615ull, .type = RAFT_ENTRY_SETEX, .key = "s", .key_len = 1,
          .val = "v", .val_len = 1, .ttl_ms = 100 },
        { .term = 18446744073709551615ull, .type = RAFT_ENTRY_EXPIRE, .key = "s", .key_len = 1,
          .val = "", .ttl_ms = 315360000000ull, .client_id = 2, .seq = 3 },
        { .term = 18446744073709551615ull, .type = RAFT_ENTRY_CAS_TTL, .key = "s",
          .key_len = 1, .val = "w", .val_len = 1, .rev = 9, .ttl_ms = 250 },
        { .term = 18446744073709551615ull, .type = RAFT_ENTRY_EXPIRED, .key = "",
          .val = "\0\0\0\1s\0\0\0\0\0\0\0\x0b", .val_len = 13 },
    };
    int n = (int)(sizeof(e) / sizeof(e[0]));
    must(storage_append(st, 1, e, (uint32_t)n, err, sizeof(err)), err);
    must(storage_sync(st, err, sizeof(err)), err);
    storage_close(st);
    storage_loaded_free(&ld);
    char path[256];
    snprintf(path, sizeof(path), "%s/s1_log.txt", dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die(path);
    char line[4096];
    for (int i = 1; fgets(line, sizeof(line), f) != NULL; i++) {
        size_t len = strcspn(line, "\n");
        if (line[len] != '\n')
            break; /* not a line: the zeros the storage preallocates after the log */
        char seed[4097], name[64];
        seed[0] = 0x02; /* the index from the line, min term 0, checksum as written */
        memcpy(seed + 1, line, len);
        snprintf(name, sizeof(name), "line_%d", i);
        write_seed("log_line", name, seed, len + 1);
        seed[0] = 0x03; /* the same without its checksum: the target appends it */
        snprintf(name, sizeof(name), "line_%d_body", i);
        write_seed("log_line", name, seed, len + 1 - 9);
        seed[0] = 0x08 | 0x20; /* expect index 2, min term 1: mostly refused */
        snprintf(name, sizeof(name), "line_%d_other_index", i);
        write_seed("log_line", name, seed, len + 1);
        seed[0] = 0x04; /* any index: the first line after a snapshot */
        snprintf(name, sizeof(name), "line_%d_any_index", i);
        write_seed("log_line", name, seed, len + 1);
    }
    fclose(f);
    unlink(path);
    snprintf(path, sizeof(path), "%s/s1_state", dir);
    unlink(path);
    rmdir(dir);
    static const char torn[] = "\x02" "3 1 set \"k\" \"v";
    write_seed("log_line", "torn", torn, sizeof(torn) - 1);
}

/* ---- snapshot and state files, written by the real code ---- */

static uint8_t *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = malloc(65536);
    if (f == NULL || data == NULL)
        die(path);
    *len = fread(data, 1, 65536, f);
    if (ferror(f) || !feof(f))
        die(path);
    fclose(f);
    return data;
}

static void apply(struct kv *kv, const struct raft_entry *e)
{
    if (kv_apply(kv, kv_last_applied(kv) + 1, e) < 0) {
        fprintf(stderr, "gen_corpus: kv_apply failed\n");
        exit(1);
    }
}

static void apply_set(struct kv *kv, char *key, uint32_t key_len, char *val,
                      uint32_t val_len, uint64_t client_id, uint64_t seq)
{
    struct raft_entry e = { .type = RAFT_ENTRY_SET, .key = key, .key_len = key_len,
                            .val = val, .val_len = val_len, .client_id = client_id,
                            .seq = seq };
    apply(kv, &e);
}

/* One snapshot seed under several modes (fuzz_snapshot.c): as written; with the target
 * fixing the length and CRC; verification only; in 3-byte pieces; also through
 * snapshot_load. */
static void snapshot_seed(const char *name, const uint8_t *file, size_t len)
{
    static const struct { const char *suffix; uint8_t mode; } modes[] = {
        { "", 0x00 }, { "_fixed", 0x03 }, { "_verify_only", 0x04 },
        { "_pieces_3", 0x10 }, { "_via_load", 0x40 },
    };
    uint8_t *seed = malloc(len + 1);
    if (seed == NULL)
        die("malloc");
    memcpy(seed + 1, file, len);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char full[128];
        snprintf(full, sizeof(full), "%s%s", name, modes[i].suffix);
        seed[0] = modes[i].mode;
        write_seed("snapshot", full, seed, len + 1);
    }
    free(seed);
}

/* Saves kv as a snapshot with snapshot_save and returns the file's bytes. */
static uint8_t *saved_snapshot(const char *dir, raft_index_t index, raft_term_t term,
                               const char *const *servers, int n, const struct kv *kv,
                               size_t *len)
{
    struct snapshot_paths p;
    static struct snapshot_meta m;
    static struct membership conf;
    char err[512];
    memset(&conf, 0, sizeof(conf));
    for (int i = 0; i < n; i++) {
        struct member s = { .id = i, .role = i < 3 ? MEMBER_VOTER : MEMBER_LEARNER,
                            .port = (uint16_t)(2000 + i) };
        snprintf(s.name, sizeof(s.name), "%s", servers[i]);
        snprintf(s.host, sizeof(s.host), "127.0.0.%d", 1 + i);
        membership_add(&conf, &s);
    }
    snapshot_meta_init(&m, index, term, &conf);
    must(snapshot_paths_init(&p, dir, "s1"), "snapshot paths");
    must(snapshot_save(&p, &m, kv, err, sizeof(err)), err);
    uint8_t *data = read_whole(p.file, len);
    unlink(p.file);
    return data;
}

static void snapshot_seeds(void)
{
    char dir[] = "/tmp/rk_gen_corpus_XXXXXX";
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    static const char *const three[] = { "server2", "server3", "server4" };
    static const char *const one[] = { "s1" };
    struct kv *kv = kv_new_with_max_sessions(4);
    if (kv == NULL)
        die("kv_new");
    size_t len;
    uint8_t *file = saved_snapshot(dir, 0, 0, one, 1, kv, &len);
    snapshot_seed("empty_kv", file, len);
    free(file);

    struct raft_entry noop = { .type = RAFT_ENTRY_NOOP, .key = "", .val = "" };
    apply(kv, &noop);
    apply_set(kv, "greeting", 8, "hello world", 11, 0, 0);
    file = saved_snapshot(dir, 2, 1, three, 3, kv, &len);
    snapshot_seed("one_key", file, len);
    free(file);

    static char odd[] = { 'q', '"', '\\', '\n', 0, (char)0x7f, (char)0xe9 };
    apply_set(kv, odd, sizeof(odd), odd, sizeof(odd), 0, 0);
    apply_set(kv, "empty", 5, "", 0, 0, 0);
    struct raft_entry del = { .type = RAFT_ENTRY_DELETE, .key = "greeting", .key_len = 8,
                              .val = "" };
    apply(kv, &del);
    apply_set(kv, "k", 1, "v", 1, 0, 0);
    file = saved_snapshot(dir, 6, 2, three, 3, kv, &len);
    snapshot_seed("three_keys", file, len);
    uint8_t *bad = malloc(len + 1);
    if (bad == NULL)
        die("malloc");
    bad[0] = 0x00; /* as is: the checksum catches the damage */
    memcpy(bad + 1, file, len);
    bad[1 + len - 12] ^= 0x20;
    write_seed("snapshot", "flipped_image_byte", bad, len + 1);
    memcpy(bad + 1, file, len);
    bad[1 + len - 1] ^= 0x01;
    write_seed("snapshot", "flipped_checksum_byte", bad, len + 1);
    free(bad);
    free(file);

    struct raft_entry reg = { .type = RAFT_ENTRY_REGISTER, .key = "", .val = "" };
    for (int i = 0; i < 5; i++) /* the bound is 4: the first session expires */
        apply(kv, &reg);
    raft_index_t client = kv_last_applied(kv);
    apply_set(kv, "counter", 7, "1", 1, client, 1);
    apply_set(kv, "counter", 7, "2", 1, client, 2);
    struct raft_entry del_absent = { .type = RAFT_ENTRY_DELETE, .key = "none", .key_len = 4,
                                     .val = "", .client_id = client - 1, .seq = 1 };
    apply(kv, &del_absent);
    file = saved_snapshot(dir, kv_last_applied(kv), 3, three, 3, kv, &len);
    snapshot_seed("sessions", file, len);
    free(file);
    struct raft_entry setex = { .type = RAFT_ENTRY_SETEX, .key = "lease", .key_len = 5,
                                .val = "me", .val_len = 2, .ttl_ms = 30000 };
    apply(kv, &setex);
    struct raft_entry expire = { .type = RAFT_ENTRY_EXPIRE, .key = "counter", .key_len = 7,
                                 .val = "", .ttl_ms = 100 };
    apply(kv, &expire);
    file = saved_snapshot(dir, kv_last_applied(kv), 3, three, 3, kv, &len);
    snapshot_seed("deadlines", file, len);
    free(file);
    kv_free(kv);

    static const char *const long_names[] = {
        "a-very-long-server-name.with_every.allowed-char_0123456789-abcd", "b", "c", "d", "e"
    };
    kv = kv_new();
    if (kv == NULL)
        die("kv_new");
    apply(kv, &reg);
    file = saved_snapshot(dir, UINT64_MAX, UINT64_MAX, long_names, 5, kv, &len);
    snapshot_seed("long_names_max_index", file, len);
    static const uint8_t mode_plain = 0x00;
    uint8_t *cut = malloc(len + 1);
    if (cut == NULL)
        die("malloc");
    cut[0] = mode_plain;
    memcpy(cut + 1, file, len);
    write_seed("snapshot", "truncated", cut, len + 1 - 7);
    write_seed("snapshot", "header_only", cut, 1 + 28);
    cut[1 + 8 + 3] = 2; /* version 2 */
    write_seed("snapshot", "version_2", cut, len + 1);
    free(cut);
    free(file);
    kv_free(kv);
    rmdir(dir);
    write_seed("snapshot", "not_a_snapshot", "\x03term=1 vote=- crc=00000000\n", 29);
}

static void state_seeds(void)
{
    char dir[] = "/tmp/rk_gen_corpus_XXXXXX";
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    static const struct { const char *name; raft_term_t term; const char *vote; } states[] = {
        { "term_0_no_vote", 0, NULL },
        { "term_5_vote", 5, "server3" },
        { "term_max_long_vote", UINT64_MAX,
          "a-very-long-server-name.with_every.allowed-char_0123456789-abcd" },
        { "term_10_odd_vote", 10, "~!\"#$%&'()*+,./:;<=>?@[\\]^_`{|}" },
    };
    struct storage *st;
    struct storage_loaded ld;
    char err[512], path[256];
    must(storage_open(&st, dir, "s1", &ld, err, sizeof(err)), err);
    storage_loaded_free(&ld);
    snprintf(path, sizeof(path), "%s/s1_state", dir);
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        must(storage_save_hard_state(st, states[i].term, states[i].vote, err, sizeof(err)),
             err);
        size_t len;
        uint8_t *file = read_whole(path, &len);
        uint8_t seed[300];
        char name[96];
        seed[0] = 0x00; /* as written */
        memcpy(seed + 1, file, len);
        write_seed("state", states[i].name, seed, len + 1);
        seed[0] = 0x01; /* without its checksum: the target appends it */
        snprintf(name, sizeof(name), "%s_body", states[i].name);
        write_seed("state", name, seed, len + 1 - 14);
        free(file);
    }
    storage_close(st);
    unlink(path);
    snprintf(path, sizeof(path), "%s/s1_log.txt", dir);
    unlink(path);
    rmdir(dir);
    text_seed("state", "leading_zero", "\x01term=05 vote=s1");
    text_seed("state", "vote_too_long", "\x01term=1 vote="
              "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm");
    text_seed("state", "term_overflow", "\x01term=18446744073709551616 vote=-");
    text_seed("state", "space_in_vote", "\x01term=1 vote=a b");
    static const char upper[] = "\0term=5 vote=server3 crc=3A1B2C4D\n";
    write_seed("state", "uppercase_crc", upper, sizeof(upper) - 1);
    static const char no_newline[] = "\0term=1 vote=- crc=00000000";
    write_seed("state", "no_newline", no_newline, sizeof(no_newline) - 1);
    write_seed("state", "empty", "", 1);
}

/* ---- registry files and client command lines ---- */

static void text_seed(const char *target, const char *name, const char *text)
{
    write_seed(target, name, text, strlen(text));
}

static void registry_seeds(void)
{
    text_seed("registry", "shipped", "# name host port\nserver2 localhost 2000\n"
              "server3 localhost 3000\nserver4 localhost 4000\nserver5 localhost 5000\n"
              "server6 localhost 6000\n");
    text_seed("registry", "one", "s1 127.0.0.1 7001");
    text_seed("registry", "comments_and_blanks",
              "\n# cluster a\n  s1\t10.0.0.1  7001   # first\n\n\r\ns2 10.0.0.2 7002 #\n#end");
    text_seed("registry", "ipv6_and_names", "a-1 ::1 1\nb_2 fe80::1%eth0 65535\nc.3 host.example.org 80\n");
    text_seed("registry", "duplicate_name", "s1 h 1\ns1 h 2\n");
    text_seed("registry", "duplicate_address", "s1 h 1\ns2 h 1\n");
    text_seed("registry", "bad_port", "s1 h 0\ns2 h 65536\ns3 h x1\n");
    text_seed("registry", "two_fields", "s1 h\n");
    text_seed("registry", "four_fields", "s1 h 1 extra\n");
    text_seed("registry", "bad_name", "s/1 h 1\n");
    text_seed("registry", "hash_in_word", "s1 h#x 1\n");
    text_seed("registry", "empty", "");
    text_seed("registry", "only_comments", "# nothing\n   \n");
    char many[4096];
    size_t len = 0;
    for (int i = 0; i < 65; i++)
        len += (size_t)snprintf(many + len, sizeof(many) - len, "n%d h %d\n", i, i + 1);
    text_seed("registry", "too_many", many);
    write_seed("registry", "nul_byte", "s1 h\0x 1\n", 9);
}

static void client_seeds(void)
{
    static const char *const lines[][2] = {
        { "set", "set greeting hello world" }, { "get", "get greeting" },
        { "delete", "delete greeting" },       { "status", "status" },
        { "help", "help" },                    { "quit", "quit" },
        { "exit", "EXIT" },                    { "set_upper", "SET Key Value" },
        { "blanks", " \t get \t  key \r\n" },  { "set_spaces", "set k   a  value  with spaces  " },
        { "set_no_value", "set k" },           { "get_two_keys", "get a b" },
        { "status_arg", "status now" },        { "unknown", "frobnicate x y" },
        { "empty", "" },                       { "blank", " \t\r\n\v\f" },
        { "get_no_key", "get" },               { "crlf", "get k\r\n" },
        { "nul_inside", "get k" },             { "binaryish", "set \x01\x02 \xff\xfe" },
        { "rev", "rev k" },                    { "cas", "cas lock 0 me and you" },
        { "cas_bad_rev", "cas lock 01 x" },    { "cad", "cad lock 12" },
        { "cad_extra", "cad lock 12 x" },      { "scan", "scan user/ 10 user/3" },
        { "scan_all", "scan \"\"" },           { "scan_bad_limit", "scan p 0" },
        { "add", "add --learner s9 10.0.0.9 9000" }, { "remove", "remove --force s9" },
        { "members", "members" },              { "transfer", "transfer" },
        { "setex", "setex lease 1.5 me and you" }, { "setex_bad", "setex k .x v" },
        { "expire", "expire lease 30" },       { "expire_extra", "expire lease 30 x" },
        { "ttl", "ttl lease" },                { "cas_ttl", "cas --ttl 0.1 lock 0 me" },
        { "cas_ttl_short", "cas --ttl 0.05 lock 0 me" },
        { "watch", "watch user/" },            { "watch_all_from", "watch \"\" --from 42" },
        { "watch_from_zero", "watch p --from 0" }, { "watch_extra", "watch p --from 5 x" },
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        text_seed("client_parse", lines[i][0], lines[i][1]);
    write_seed("client_parse", "nul_cut", "get k\0 more", 11);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        die(out_dir);
    client_frames();
    raft_frames();
    proto_seeds();
    frame_seeds();
    frame_reader_seeds();
    log_seeds();
    snapshot_seeds();
    state_seeds();
    registry_seeds();
    client_seeds();
    for (int i = 0; i < n_frames; i++)
        proto_buf_free(&frames[i].b);
    return 0;
}
