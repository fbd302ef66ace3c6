/* tests/fuzz/fuzz_proto.c - fuzz target: one frame payload through proto_frame_type and
 * every decoder of common/proto.c (hello, client request and response, Raft message,
 * the REGISTER client id). Oracles: at most one decoder accepts a payload, and only the
 * one its type byte names; what a decoder accepts is within the limits and re-encodes to
 * exactly the same bytes (the encoding is canonical). */
#include <stdbool.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/proto.h"
#include "fuzz.h"

/* The payload of the one frame in b must equal data. */
static void fz_proto_same_payload(const struct proto_buf *b, const uint8_t *data, size_t size)
{
    FUZZ_CHECK(b->len == size + 4);
    uint32_t n = (uint32_t)b->data[0] << 24 | (uint32_t)b->data[1] << 16 |
                 (uint32_t)b->data[2] << 8 | b->data[3];
    FUZZ_CHECK(n == size);
    FUZZ_CHECK(memcmp(b->data + 4, data, size) == 0);
}

static int fz_proto_hello(const uint8_t *data, size_t size)
{
    struct proto_hello h;
    int rc = proto_decode_hello_msg(data, size, &h);
    int type = -1;
    char name[64];
    FUZZ_CHECK(proto_decode_hello(data, size, &type, name) == rc);
    if (rc != RK_OK) {
        FUZZ_CHECK(rc == RK_ERR_PROTO || rc == RK_ERR_TOOBIG);
        FUZZ_CHECK(h.type == 0 && h.name[0] == '\0' && h.cluster_id == 0 && type == -1);
        return 0;
    }
    FUZZ_CHECK(type == h.type && strcmp(name, h.name) == 0);
    struct proto_buf b = { 0 };
    if (h.type == PROTO_HELLO_CLIENT) {
        /* a server takes clients of older versions too; we speak only the newest */
        FUZZ_CHECK(h.name[0] == '\0' && size == 2);
        FUZZ_CHECK(data[1] >= PROTO_CLIENT_MIN_VERSION && data[1] <= PROTO_VERSION);
        FUZZ_CHECK(proto_encode_hello_client(&b) == RK_OK);
        const uint8_t newest[2] = { data[0], PROTO_VERSION };
        fz_proto_same_payload(&b, newest, sizeof(newest));
        proto_buf_free(&b);
        return 1;
    } else {
        FUZZ_CHECK(h.type == PROTO_HELLO_PEER);
        FUZZ_CHECK(strlen(h.name) >= 1 && strlen(h.name) <= 63);
        FUZZ_CHECK(h.id >= -1 && strlen(h.host) <= 255);
        FUZZ_CHECK(proto_encode_hello_peer_at(&b, h.name, h.cluster_id, h.id, h.host, h.port) ==
                   RK_OK);
    }
    fz_proto_same_payload(&b, data, size);
    proto_buf_free(&b);
    return 1;
}

static int fz_proto_client_req(const uint8_t *data, size_t size)
{
    struct proto_client_req req;
    int rc = proto_decode_client_req(data, size, &req);
    if (rc != RK_OK) {
        FUZZ_CHECK(rc == RK_ERR_PROTO || rc == RK_ERR_TOOBIG);
        FUZZ_CHECK(req.key == NULL && req.key_len == 0 && req.op == 0);
        return 0;
    }
    FUZZ_CHECK(req.op >= PROTO_OP_GET && req.op <= PROTO_OP_LAST);
    FUZZ_CHECK(req.key_len <= PROTO_MAX_KEY && req.val_len <= PROTO_MAX_VALUE);
    FUZZ_CHECK(req.key_len == 0 || ((const uint8_t *)req.key >= data &&
                                    (const uint8_t *)req.key + req.key_len <= data + size));
    FUZZ_CHECK(req.val_len == 0 || ((const uint8_t *)req.val >= data &&
                                    (const uint8_t *)req.val + req.val_len <= data + size));
    struct proto_buf b = { 0 };
    FUZZ_CHECK(proto_encode_client_req(&b, &req) == RK_OK);
    fz_proto_same_payload(&b, data, size);
    proto_buf_free(&b);
    return 1;
}

/* A watch stream's body: every event the reader gives lies within it, in order of
 * offset, of a known kind; the reader ends (0) only at the body's end. */
static void fz_proto_events(const char *body, uint32_t len)
{
    uint64_t progress;
    uint32_t n;
    if (proto_events_head(body, len, &progress, &n) != RK_OK) {
        FUZZ_CHECK(len < PROTO_EVENTS_HEAD);
        return;
    }
    uint32_t off = PROTO_EVENTS_HEAD, prev = off;
    struct proto_event ev;
    int rc;
    while ((rc = proto_events_next(body, len, &off, &ev)) == 1) {
        FUZZ_CHECK(off > prev && off <= len);
        FUZZ_CHECK(ev.kind >= PROTO_EVENT_SET && ev.kind <= PROTO_EVENT_EXPIRE);
        FUZZ_CHECK(ev.key >= body && ev.key + ev.key_len <= body + len);
        FUZZ_CHECK(ev.val >= body && ev.val + ev.val_len <= body + len);
        prev = off;
    }
    FUZZ_CHECK(rc == RK_ERR_PROTO || off == len);
}

static int fz_proto_client_resp(const uint8_t *data, size_t size)
{
    struct proto_client_resp resp;
    int rc = proto_decode_client_resp(data, size, &resp);
    if (rc != RK_OK) {
        FUZZ_CHECK(rc == RK_ERR_PROTO || rc == RK_ERR_TOOBIG);
        FUZZ_CHECK(resp.body == NULL && resp.leader_name[0] == '\0');
        return 0;
    }
    FUZZ_CHECK(resp.status <= PROTO_ST_EVENTS && resp.body_len <= PROTO_MAX_BODY);
    if (resp.status == PROTO_ST_EVENTS)
        fz_proto_events(resp.body, resp.body_len);
    FUZZ_CHECK(strlen(resp.leader_name) <= 63 && strlen(resp.leader_host) <= 255);
    struct proto_buf b = { 0 };
    FUZZ_CHECK(proto_encode_client_resp(&b, &resp) == RK_OK);
    fz_proto_same_payload(&b, data, size);
    proto_buf_free(&b);
    /* A REGISTER reply's id: accepted only in its one canonical form. */
    uint64_t id = 0;
    if (proto_parse_client_id(resp.body, resp.body_len, &id) == RK_OK) {
        char text[PROTO_CLIENT_ID_MAX_DIGITS + 1];
        int n = proto_format_client_id(id, text);
        FUZZ_CHECK(id >= 1 && n > 0 && (uint32_t)n == resp.body_len);
        FUZZ_CHECK(memcmp(text, resp.body, resp.body_len) == 0);
    }
    return 1;
}

static int fz_proto_raft_msg(const uint8_t *data, size_t size)
{
    struct raft_msg m;
    int rc = proto_decode_raft_msg(data, size, &m);
    if (rc != RK_OK) {
        FUZZ_CHECK(rc == RK_ERR_PROTO || rc == RK_ERR_TOOBIG || rc == RK_ERR_NOMEM);
        FUZZ_CHECK(m.entries == NULL && m.n_entries == 0 && m.snap_data == NULL);
        return 0;
    }
    FUZZ_CHECK(strcmp(raft_msg_type_name(m.type), "unknown") != 0);
    FUZZ_CHECK(m.n_entries == 0 || (m.type == RAFT_MSG_APPEND && m.entries != NULL));
    FUZZ_CHECK((size_t)m.n_entries <= size / 33);
    for (uint32_t i = 0; i < m.n_entries; i++)
        FUZZ_CHECK(m.entries[i].key_len <= PROTO_MAX_KEY &&
                   m.entries[i].val_len <= PROTO_MAX_VALUE);
    struct proto_buf b = { 0 };
    FUZZ_CHECK(proto_encode_raft_msg(&b, &m) == RK_OK);
    fz_proto_same_payload(&b, data, size);
    proto_buf_free(&b);
    raft_msg_free_entries(&m);
    FUZZ_CHECK(m.entries == NULL && m.n_entries == 0 && m.snap_data == NULL);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    int type = proto_frame_type(data, size);
    FUZZ_CHECK(type == RK_ERR_PROTO || (size > 0 && type == data[0] && type >= PROTO_HELLO_CLIENT &&
                                        type <= PROTO_RAFT));
    int hello = fz_proto_hello(data, size);
    int req = fz_proto_client_req(data, size);
    int resp = fz_proto_client_resp(data, size);
    int raft = fz_proto_raft_msg(data, size);
    FUZZ_CHECK(hello + req + resp + raft <= 1);
    FUZZ_CHECK(!hello || type == PROTO_HELLO_CLIENT || type == PROTO_HELLO_PEER);
    FUZZ_CHECK(!req || type == PROTO_CLIENT_REQ);
    FUZZ_CHECK(!resp || type == PROTO_CLIENT_RESP);
    FUZZ_CHECK(!raft || type == PROTO_RAFT);
    /* The client id parser on the raw bytes too. */
    uint64_t id;
    if (proto_parse_client_id((const char *)data, (uint32_t)size, &id) == RK_OK)
        FUZZ_CHECK(id >= 1 && size >= 1 && size <= PROTO_CLIENT_ID_MAX_DIGITS);
    return 0;
}
