/* tests/fuzz/gen_corpus.c - writes the seed corpus of every fuzz target into DIR/<target>/
 * from real encoded frames (common/proto.c), real log lines (written by
 * server/storage/storage.c) and real registry and client lines. Run it again after a
 * protocol or log format change: tests/fuzz/run_fuzz.sh --corpus (see tests/fuzz/README.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/errors.h"
#include "../../common/proto.h"
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
    log_seeds();
    registry_seeds();
    client_seeds();
    for (int i = 0; i < n_frames; i++)
        proto_buf_free(&frames[i].b);
    return 0;
}
