/* common/proto.c - encoders and strict decoders for the wire protocol of proto.h
 * (layouts in docs/protocol.md). Integers are big-endian; byte strings are u32 length | bytes. */
#include "proto.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "errors.h"
#include "grow.h"

/* The smallest encoded log entry:
 * u64 term | u8 type | u32 key_len | u32 val_len | u64 client_id | u64 seq
 * (CAS and CAD entries then carry u64 rev). */
#define ENTRY_MIN_BYTES 33u
#define NAME_MAX_BYTES 63u   /* proto_client_resp.leader_name and HELLO_PEER name */
#define HOST_MAX_BYTES 255u  /* proto_client_resp.leader_host */

/* ---- writer: appends one frame to a proto_buf; the first error sticks ---- */

struct writer {
    struct proto_buf *b;
    size_t start; /* offset of the frame's length prefix in b */
    int err;
};

static int buf_reserve(struct proto_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return RK_OK;
    if (more > SIZE_MAX - b->len)
        return RK_ERR_NOMEM;
    return rk_grow(&b->data, &b->cap, b->len + more, 1, 256);
}

int proto_buf_append(struct proto_buf *b, const void *data, size_t len)
{
    int rc = buf_reserve(b, len);
    if (rc == RK_OK && len > 0) {
        memcpy(b->data + b->len, data, len);
        b->len += len;
    }
    return rc;
}

/* Makes room for n more bytes of this frame, or sets err (TOOBIG before allocating). */
static uint8_t *w_space(struct writer *w, size_t n)
{
    if (w->err != RK_OK)
        return NULL;
    size_t payload = w->b->len - w->start - 4;
    if (n > PROTO_MAX_FRAME || payload + n > PROTO_MAX_FRAME) {
        w->err = RK_ERR_TOOBIG;
        return NULL;
    }
    w->err = buf_reserve(w->b, n);
    if (w->err != RK_OK)
        return NULL;
    uint8_t *p = w->b->data + w->b->len;
    w->b->len += n;
    return p;
}

static void w_uint(struct writer *w, uint64_t v, int bytes)
{
    uint8_t *p = w_space(w, (size_t)bytes);
    if (p != NULL)
        rk_put_be(p, v, bytes);
}

static void w_u8(struct writer *w, uint8_t v) { w_uint(w, v, 1); }
static void w_u16(struct writer *w, uint16_t v) { w_uint(w, v, 2); }
static void w_u32(struct writer *w, uint32_t v) { w_uint(w, v, 4); }
static void w_u64(struct writer *w, uint64_t v) { w_uint(w, v, 8); }

static void w_bytes(struct writer *w, const void *s, uint32_t len)
{
    w_u32(w, len);
    if (len == 0)
        return;
    uint8_t *p = w_space(w, len);
    if (p != NULL)
        memcpy(p, s, len);
}

/* Starts a frame: a length placeholder and the frame type. */
static void w_begin(struct writer *w, struct proto_buf *b, uint8_t frame_type)
{
    w->b = b;
    w->start = b->len;
    w->err = buf_reserve(b, 4);
    if (w->err != RK_OK)
        return;
    b->len += 4;
    w_u8(w, frame_type);
}

/* Fills in the length, or on error drops the partial frame so b is as before. */
static int w_end(struct writer *w)
{
    if (w->err != RK_OK) {
        w->b->len = w->start;
        return w->err;
    }
    rk_put_be(w->b->data + w->start, w->b->len - w->start - 4, 4);
    return RK_OK;
}

/* ---- reader: walks one payload; the first error sticks ---- */

struct reader {
    const uint8_t *p;
    size_t len, pos;
    int err;
};

static const uint8_t *r_take(struct reader *r, size_t n)
{
    if (r->err != RK_OK)
        return NULL;
    if (r->len - r->pos < n) {
        r->err = RK_ERR_PROTO;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

static uint64_t r_uint(struct reader *r, int bytes)
{
    const uint8_t *p = r_take(r, (size_t)bytes);
    return p != NULL ? rk_get_be(p, bytes) : 0;
}

static uint8_t r_u8(struct reader *r) { return (uint8_t)r_uint(r, 1); }
static uint16_t r_u16(struct reader *r) { return (uint16_t)r_uint(r, 2); }
static uint32_t r_u32(struct reader *r) { return (uint32_t)r_uint(r, 4); }
static uint64_t r_u64(struct reader *r) { return r_uint(r, 8); }

/* A u8 that must be 0 or 1. */
static bool r_bool(struct reader *r)
{
    uint8_t v = r_u8(r);
    if (v > 1 && r->err == RK_OK)
        r->err = RK_ERR_PROTO;
    return v == 1;
}

/* A byte string of at most max bytes, pointing into the payload ("" when empty). */
static const char *r_bytes(struct reader *r, uint32_t max, uint32_t *len)
{
    uint32_t n = r_u32(r);
    *len = 0;
    if (r->err == RK_OK && n > max)
        r->err = RK_ERR_TOOBIG;
    const uint8_t *p = r_take(r, n);
    if (p == NULL)
        return "";
    *len = n;
    return n == 0 ? "" : (const char *)p;
}

/* A byte string of 0..max bytes without NUL, copied NUL-terminated into out. */
static void r_cstr(struct reader *r, uint32_t max, char *out)
{
    uint32_t n;
    const char *s = r_bytes(r, max, &n);
    out[0] = '\0';
    if (r->err != RK_OK)
        return;
    if (memchr(s, '\0', n) != NULL) {
        r->err = RK_ERR_PROTO;
        return;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Starts reading a payload that must be of the given frame type. */
static void r_begin(struct reader *r, const uint8_t *payload, size_t len, uint8_t frame_type)
{
    r->p = payload;
    r->len = payload ? len : 0;
    r->pos = 0;
    r->err = RK_OK;
    if (r_u8(r) != frame_type && r->err == RK_OK)
        r->err = RK_ERR_PROTO;
}

/* The result of a decode: the first error, or RK_ERR_PROTO for trailing bytes. */
static int r_end(struct reader *r)
{
    if (r->err == RK_OK && r->pos != r->len)
        r->err = RK_ERR_PROTO;
    return r->err;
}

/* ---- shared checks ---- */

static bool op_valid(uint8_t op)
{
    return op >= PROTO_OP_GET && op <= PROTO_OP_LAST;
}

static bool status_valid(uint8_t st)
{
    return st <= PROTO_ST_EVENTS;
}

static bool msg_type_valid(uint8_t t)
{
    return t >= RAFT_MSG_VOTE && t <= RAFT_MSG_TIMEOUT_NOW;
}

static bool entry_type_valid(uint8_t t)
{
    return raft_entry_type_name(t) != NULL;
}

/* A string field of an encoder: NULL is only allowed when empty. */
static int check_field(const void *s, uint32_t len, uint32_t max)
{
    if (s == NULL && len > 0)
        return RK_ERR_INVAL;
    return len > max ? RK_ERR_TOOBIG : RK_OK;
}

/* A NUL-terminated string inside a char array of size cap: its length, or -1. */
static long array_strlen(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    return n == cap ? -1 : (long)n;
}

/* ---- proto_buf ---- */

void proto_buf_free(struct proto_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- HELLO ---- */

int proto_encode_hello_client(struct proto_buf *b)
{
    struct writer w;
    w_begin(&w, b, PROTO_HELLO_CLIENT);
    w_u8(&w, PROTO_VERSION);
    return w_end(&w);
}

int proto_encode_hello_peer_at(struct proto_buf *b, const char *name, uint64_t cluster_id,
                               int32_t id, const char *host, uint16_t port)
{
    size_t n = name ? strnlen(name, NAME_MAX_BYTES + 1) : 0;
    size_t h = host ? strnlen(host, HOST_MAX_BYTES + 1) : 0;
    if (n == 0 || n > NAME_MAX_BYTES || h > HOST_MAX_BYTES || id < -1)
        return RK_ERR_INVAL;
    struct writer w;
    w_begin(&w, b, PROTO_HELLO_PEER);
    w_u8(&w, PROTO_VERSION);
    w_u64(&w, cluster_id);
    w_bytes(&w, name, (uint32_t)n);
    w_u32(&w, (uint32_t)id);
    w_bytes(&w, host, (uint32_t)h);
    w_u16(&w, port);
    return w_end(&w);
}

int proto_encode_hello_peer(struct proto_buf *b, const char *name, uint64_t cluster_id)
{
    return proto_encode_hello_peer_at(b, name, cluster_id, -1, "", 0);
}

int proto_frame_type(const uint8_t *payload, size_t len)
{
    if (payload == NULL || len == 0)
        return RK_ERR_PROTO;
    if (payload[0] < PROTO_HELLO_CLIENT || payload[0] > PROTO_RAFT)
        return RK_ERR_PROTO;
    return payload[0];
}

int proto_decode_hello_msg(const uint8_t *payload, size_t len, struct proto_hello *out)
{
    struct reader r = { .p = payload, .len = payload ? len : 0 };
    memset(out, 0, sizeof(*out));
    int t = r_u8(&r);
    if (r.err == RK_OK && t != PROTO_HELLO_CLIENT && t != PROTO_HELLO_PEER)
        r.err = RK_ERR_PROTO;
    int version = r_u8(&r);
    int oldest = t == PROTO_HELLO_CLIENT ? PROTO_CLIENT_MIN_VERSION : PROTO_VERSION;
    if (r.err == RK_OK && (version < oldest || version > PROTO_VERSION))
        r.err = RK_ERR_PROTO;
    if (t == PROTO_HELLO_PEER) {
        out->cluster_id = r_u64(&r);
        r_cstr(&r, NAME_MAX_BYTES, out->name);
        if (r.err == RK_OK && out->name[0] == '\0')
            r.err = RK_ERR_PROTO;
        out->id = (int32_t)r_u32(&r);
        if (r.err == RK_OK && out->id < -1)
            r.err = RK_ERR_PROTO;
        r_cstr(&r, HOST_MAX_BYTES, out->host);
        out->port = r_u16(&r);
    }
    int rc = r_end(&r);
    if (rc != RK_OK) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->type = t;
    return RK_OK;
}

int proto_decode_hello(const uint8_t *payload, size_t len, int *type, char name[64])
{
    struct proto_hello h;
    int rc = proto_decode_hello_msg(payload, len, &h);
    memcpy(name, h.name, sizeof(h.name));
    if (rc == RK_OK)
        *type = h.type;
    return rc;
}

/* ---- CLIENT_REQ / CLIENT_RESP ---- */

int proto_encode_client_req(struct proto_buf *b, const struct proto_client_req *req)
{
    if (!op_valid(req->op))
        return RK_ERR_INVAL;
    int rc = check_field(req->key, req->key_len, PROTO_MAX_KEY);
    if (rc == RK_OK)
        rc = check_field(req->val, req->val_len, PROTO_MAX_VALUE);
    if (rc != RK_OK)
        return rc;
    struct writer w;
    w_begin(&w, b, PROTO_CLIENT_REQ);
    w_u8(&w, req->op);
    w_bytes(&w, req->key, req->key_len);
    w_bytes(&w, req->val, req->val_len);
    w_u64(&w, req->client_id);
    w_u64(&w, req->seq);
    return w_end(&w);
}

int proto_decode_client_req(const uint8_t *payload, size_t len, struct proto_client_req *out)
{
    struct reader r;
    r_begin(&r, payload, len, PROTO_CLIENT_REQ);
    memset(out, 0, sizeof(*out));
    out->op = r_u8(&r);
    if (r.err == RK_OK && !op_valid(out->op))
        r.err = RK_ERR_PROTO;
    out->key = r_bytes(&r, PROTO_MAX_KEY, &out->key_len);
    out->val = r_bytes(&r, PROTO_MAX_VALUE, &out->val_len);
    out->client_id = r_u64(&r);
    out->seq = r_u64(&r);
    int rc = r_end(&r);
    if (rc != RK_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

bool proto_key_is_word(const char *key, uint32_t key_len)
{
    for (uint32_t i = 0; i < key_len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

uint32_t proto_client_req_key_len(const uint8_t *payload, size_t len)
{
    struct reader r;
    r_begin(&r, payload, len, PROTO_CLIENT_REQ);
    r_u8(&r); /* op */
    uint32_t key_len = r_u32(&r);
    return r.err == RK_OK ? key_len : 0;
}

int proto_encode_client_resp(struct proto_buf *b, const struct proto_client_resp *resp)
{
    if (!status_valid(resp->status))
        return RK_ERR_INVAL;
    int rc = check_field(resp->body, resp->body_len, PROTO_MAX_BODY);
    if (rc != RK_OK)
        return rc;
    long name_len = array_strlen(resp->leader_name, sizeof(resp->leader_name));
    long host_len = array_strlen(resp->leader_host, sizeof(resp->leader_host));
    if (name_len < 0 || host_len < 0)
        return RK_ERR_INVAL;
    struct writer w;
    w_begin(&w, b, PROTO_CLIENT_RESP);
    w_u8(&w, resp->status);
    w_bytes(&w, resp->body, resp->body_len);
    w_bytes(&w, resp->leader_name, (uint32_t)name_len);
    w_bytes(&w, resp->leader_host, (uint32_t)host_len);
    w_u16(&w, resp->leader_port);
    return w_end(&w);
}

int proto_decode_client_resp(const uint8_t *payload, size_t len, struct proto_client_resp *out)
{
    struct reader r;
    r_begin(&r, payload, len, PROTO_CLIENT_RESP);
    memset(out, 0, sizeof(*out));
    out->status = r_u8(&r);
    if (r.err == RK_OK && !status_valid(out->status))
        r.err = RK_ERR_PROTO;
    out->body = r_bytes(&r, PROTO_MAX_BODY, &out->body_len);
    r_cstr(&r, NAME_MAX_BYTES, out->leader_name);
    r_cstr(&r, HOST_MAX_BYTES, out->leader_host);
    out->leader_port = r_u16(&r);
    int rc = r_end(&r);
    if (rc != RK_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- the REGISTER reply ---- */

int proto_format_client_id(uint64_t id, char out[PROTO_CLIENT_ID_MAX_DIGITS + 1])
{
    return snprintf(out, PROTO_CLIENT_ID_MAX_DIGITS + 1, "%" PRIu64, id);
}

/* A u64 in canonical decimal: 1..20 digits, no sign, no leading zero but "0" itself. */
static int parse_decimal(const char *text, uint32_t len, uint64_t *out)
{
    if (text == NULL || len == 0 || len > PROTO_CLIENT_ID_MAX_DIGITS ||
        (text[0] == '0' && len > 1))
        return RK_ERR_PROTO;
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return RK_ERR_PROTO;
        uint64_t d = (uint64_t)(text[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RK_ERR_PROTO;
        v = v * 10 + d;
    }
    *out = v;
    return RK_OK;
}

int proto_parse_scan(const char *val, uint32_t len, uint32_t *limit, const char **after,
                     uint32_t *after_len)
{
    uint64_t n;
    const char *rest;
    uint32_t rest_len;
    if (proto_parse_rev(val, len, &n, &rest, &rest_len) != RK_OK || n == 0 ||
        n > PROTO_SCAN_LIMIT_MAX || (rest_len == 0 && len > 0 && val[len - 1] == ' ') ||
        !proto_key_is_word(rest, rest_len))
        return RK_ERR_PROTO;
    *limit = (uint32_t)n;
    *after = rest_len > 0 ? rest : NULL;
    *after_len = rest_len;
    return RK_OK;
}

int proto_page_begin(struct proto_buf *b, uint64_t rev)
{
    uint8_t head[PROTO_PAGE_HEAD] = { 0 };
    rk_put_be(head, rev, 8);
    return proto_buf_append(b, head, sizeof(head));
}

/* Appends u32 key_len | key | u32 val_len | value (a page's pair, an event's key and
 * value), and counts it in the u32 at count_at of b. */
static int append_pair(struct proto_buf *b, const char *key, uint32_t key_len, const char *val,
                       uint32_t val_len, size_t count_at)
{
    uint8_t len[4];
    rk_put_be(len, key_len, 4);
    int rc = proto_buf_append(b, len, 4);
    if (rc == RK_OK)
        rc = proto_buf_append(b, key, key_len);
    rk_put_be(len, val_len, 4);
    if (rc == RK_OK)
        rc = proto_buf_append(b, len, 4);
    if (rc == RK_OK)
        rc = proto_buf_append(b, val, val_len);
    if (rc == RK_OK)
        rk_put_be(b->data + count_at, rk_get_be(b->data + count_at, 4) + 1, 4);
    return rc;
}

int proto_page_add(struct proto_buf *b, const char *key, uint32_t key_len, const char *val,
                   uint32_t val_len)
{
    return append_pair(b, key, key_len, val, val_len, 9);
}

void proto_page_end(struct proto_buf *b, bool more)
{
    b->data[8] = more ? 1 : 0;
}

int proto_page_head(const char *body, uint32_t len, uint64_t *rev, bool *more, uint32_t *n)
{
    const uint8_t *p = (const uint8_t *)body;
    if (len < PROTO_PAGE_HEAD || p[8] > 1)
        return RK_ERR_PROTO;
    *rev = rk_get_be(p, 8);
    *more = p[8] == 1;
    *n = (uint32_t)rk_get_be(p + 9, 4);
    return RK_OK;
}

/* A u32 length at *off and that many bytes after it, within len. */
static int page_field(const char *body, uint32_t len, uint32_t *off, const char **at,
                      uint32_t *n)
{
    if (len - *off < 4)
        return RK_ERR_PROTO;
    *n = (uint32_t)rk_get_be((const uint8_t *)body + *off, 4);
    *off += 4;
    if (*n > len - *off)
        return RK_ERR_PROTO;
    *at = body + *off;
    *off += *n;
    return RK_OK;
}

int proto_page_next(const char *body, uint32_t len, uint32_t *off, const char **key,
                    uint32_t *key_len, const char **val, uint32_t *val_len)
{
    if (*off == len)
        return 0;
    if (*off > len || page_field(body, len, off, key, key_len) != RK_OK ||
        page_field(body, len, off, val, val_len) != RK_OK)
        return RK_ERR_PROTO;
    return 1;
}

int proto_events_begin(struct proto_buf *b, uint64_t progress)
{
    uint8_t head[PROTO_EVENTS_HEAD] = { 0 };
    rk_put_be(head, progress, 8);
    return proto_buf_append(b, head, sizeof(head));
}

int proto_events_add(struct proto_buf *b, const struct proto_event *ev)
{
    uint8_t head[9];
    rk_put_be(head, ev->rev, 8);
    head[8] = ev->kind;
    int rc = proto_buf_append(b, head, sizeof(head));
    if (rc == RK_OK)
        rc = append_pair(b, ev->key, ev->key_len, ev->val, ev->val_len, 8);
    return rc;
}

int proto_events_head(const char *body, uint32_t len, uint64_t *progress, uint32_t *n)
{
    const uint8_t *p = (const uint8_t *)body;
    if (len < PROTO_EVENTS_HEAD)
        return RK_ERR_PROTO;
    *progress = rk_get_be(p, 8);
    *n = (uint32_t)rk_get_be(p + 8, 4);
    return RK_OK;
}

int proto_events_next(const char *body, uint32_t len, uint32_t *off, struct proto_event *ev)
{
    if (*off == len)
        return 0;
    if (*off > len || len - *off < 9)
        return RK_ERR_PROTO;
    const uint8_t *p = (const uint8_t *)body + *off;
    ev->rev = rk_get_be(p, 8);
    ev->kind = p[8];
    *off += 9;
    if (ev->kind < PROTO_EVENT_SET || ev->kind > PROTO_EVENT_EXPIRE ||
        page_field(body, len, off, &ev->key, &ev->key_len) != RK_OK ||
        page_field(body, len, off, &ev->val, &ev->val_len) != RK_OK)
        return RK_ERR_PROTO;
    return 1;
}

int proto_parse_watch(const char *val, uint32_t len, uint64_t *from)
{
    *from = 0;
    if (len == 0)
        return RK_OK;
    return parse_decimal(val, len, from) == RK_OK && *from >= 1 ? RK_OK : RK_ERR_PROTO;
}

int proto_parse_watch_error(const char *body, uint32_t len, const char *prefix, uint64_t *rev)
{
    size_t plen = strlen(prefix);
    if (len <= plen || memcmp(body, prefix, plen) != 0)
        return RK_ERR_PROTO;
    return parse_decimal(body + plen, len - (uint32_t)plen, rev);
}

int proto_parse_client_id(const char *body, uint32_t len, uint64_t *id)
{
    uint64_t v;
    if (parse_decimal(body, len, &v) != RK_OK || v == 0)
        return RK_ERR_PROTO;
    *id = v;
    return RK_OK;
}

bool proto_op_is_write(uint8_t op)
{
    return op == PROTO_OP_SET || op == PROTO_OP_DELETE || op == PROTO_OP_CAS ||
           op == PROTO_OP_CAD || op == PROTO_OP_SETEX || op == PROTO_OP_EXPIRE ||
           op == PROTO_OP_CAS_TTL;
}

bool proto_op_is_read(uint8_t op)
{
    return op == PROTO_OP_GET || op == PROTO_OP_REV || op == PROTO_OP_SCAN || op == PROTO_OP_TTL;
}

int proto_parse_ttl(const char *val, uint32_t len, uint64_t *ttl_ms, const char **rest,
                    uint32_t *rest_len)
{
    if (proto_parse_rev(val, len, ttl_ms, rest, rest_len) != RK_OK ||
        *ttl_ms < PROTO_TTL_MIN_MS || *ttl_ms > PROTO_TTL_MAX_MS)
        return RK_ERR_PROTO;
    return RK_OK;
}

int proto_parse_seconds(const char *text, size_t len, uint64_t *ttl_ms)
{
    uint64_t whole = 0, frac_ms = 0, scale = 100;
    size_t i = 0;
    bool frac_rest = false; /* digits past the third decimal, other than 0 */
    for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
        if (whole > PROTO_TTL_MAX_MS / 1000)
            return RK_ERR_PROTO;
        whole = whole * 10 + (uint64_t)(text[i] - '0');
    }
    if (i == 0 && (len == 0 || text[0] != '.'))
        return RK_ERR_PROTO;
    if (i < len && text[i] == '.') {
        size_t start = ++i;
        for (; i < len && text[i] >= '0' && text[i] <= '9'; i++, scale /= 10) {
            if (scale > 0)
                frac_ms += (uint64_t)(text[i] - '0') * scale;
            else if (text[i] != '0')
                frac_rest = true;
        }
        if (i == start && start == 1) /* "." alone */
            return RK_ERR_PROTO;
    }
    if (i != len || whole > PROTO_TTL_MAX_MS / 1000)
        return RK_ERR_PROTO;
    uint64_t ms = whole * 1000 + frac_ms; /* then up to the next ms if digits remain */
    if (ms < PROTO_TTL_MIN_MS || ms + (frac_rest ? 1 : 0) > PROTO_TTL_MAX_MS)
        return RK_ERR_PROTO;
    ms += frac_rest ? 1 : 0;
    *ttl_ms = ms;
    return RK_OK;
}

int proto_parse_rev(const char *val, uint32_t len, uint64_t *rev, const char **rest,
                    uint32_t *rest_len)
{
    uint32_t digits = 0;
    while (digits < len && val[digits] != ' ')
        digits++;
    if (parse_decimal(val, digits, rev) != RK_OK)
        return RK_ERR_PROTO;
    uint32_t skip = digits < len ? digits + 1 : digits;
    *rest = val + skip;
    *rest_len = len - skip;
    return RK_OK;
}

/* ---- RAFT ---- */

static int check_entries(const struct raft_msg *m)
{
    if (m->n_entries > 0 && m->entries == NULL)
        return RK_ERR_INVAL;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (!entry_type_valid(e->type))
            return RK_ERR_INVAL;
        int rc = check_field(e->key, e->key_len, PROTO_MAX_KEY);
        if (rc == RK_OK)
            rc = check_field(e->val, e->val_len, PROTO_MAX_VALUE);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

/* AppendEntries arguments (Raft paper Figure 2) plus the ReadIndex round. */
static void w_append(struct writer *w, const struct raft_msg *m)
{
    w_u64(w, m->prev_log_index);
    w_u64(w, m->prev_log_term);
    w_u64(w, m->leader_commit);
    w_u64(w, m->read_ctx);
    w_u32(w, m->n_entries);
    for (uint32_t i = 0; i < m->n_entries && w->err == RK_OK; i++) {
        const struct raft_entry *e = &m->entries[i];
        w_u64(w, e->term);
        w_u8(w, e->type);
        w_bytes(w, e->key, e->key_len);
        w_bytes(w, e->val, e->val_len);
        w_u64(w, e->client_id); /* client session, Raft thesis §6.3 */
        w_u64(w, e->seq);
        if (raft_entry_has_rev(e->type))
            w_u64(w, e->rev);
        if (raft_entry_has_ttl(e->type))
            w_u64(w, e->ttl_ms);
    }
}

static void w_append_resp(struct writer *w, const struct raft_msg *m)
{
    w_u8(w, m->success ? 1 : 0);
    w_u64(w, m->match_index);
    w_u64(w, m->reject_index);
    w_u64(w, m->conflict_index);
    w_u64(w, m->conflict_term);
    w_u64(w, m->read_ctx);
}

/* InstallSnapshot arguments (Raft paper Figure 13): one chunk of the snapshot file. */
static void w_snapshot(struct writer *w, const struct raft_msg *m)
{
    w_u64(w, m->snap_index);
    w_u64(w, m->snap_term);
    w_u64(w, m->snap_offset);
    w_u8(w, m->snap_done ? 1 : 0);
    w_bytes(w, m->snap_data, m->snap_len);
}

static void w_snapshot_resp(struct writer *w, const struct raft_msg *m)
{
    w_u8(w, m->success ? 1 : 0);
    w_u64(w, m->match_index);
    w_u64(w, m->snap_index);
    w_u64(w, m->snap_term);
    w_u64(w, m->snap_offset);
}

int proto_encode_raft_msg(struct proto_buf *b, const struct raft_msg *m)
{
    if (!msg_type_valid(m->type))
        return RK_ERR_INVAL;
    if (m->type == RAFT_MSG_SNAPSHOT && m->snap_len > 0 && m->snap_data == NULL)
        return RK_ERR_INVAL;
    if (m->type == RAFT_MSG_APPEND) {
        int rc = check_entries(m);
        if (rc != RK_OK)
            return rc;
    }
    struct writer w;
    w_begin(&w, b, PROTO_RAFT);
    w_u8(&w, m->type);
    w_u32(&w, (uint32_t)m->from);
    w_u32(&w, (uint32_t)m->to);
    w_u64(&w, m->term);
    switch (m->type) {
    case RAFT_MSG_VOTE: /* RequestVote arguments, Figure 2 */
    case RAFT_MSG_PREVOTE:
        w_u64(&w, m->last_log_index);
        w_u64(&w, m->last_log_term);
        w_u8(&w, m->transfer ? 1 : 0);
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        w_u8(&w, m->vote_granted ? 1 : 0);
        break;
    case RAFT_MSG_APPEND:
        w_append(&w, m);
        break;
    case RAFT_MSG_APPEND_RESP:
        w_append_resp(&w, m);
        break;
    case RAFT_MSG_SNAPSHOT:
        w_snapshot(&w, m);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        w_snapshot_resp(&w, m);
        break;
    }
    return w_end(&w);
}

/* Reads n_entries and the entries, deep-copied. The count is checked against what the
 * rest of the payload could hold before anything is allocated. */
static void r_entries(struct reader *r, struct raft_msg *out)
{
    uint32_t n = r_u32(r);
    if (r->err != RK_OK || n == 0)
        return;
    if (n > (r->len - r->pos) / ENTRY_MIN_BYTES) {
        r->err = RK_ERR_PROTO;
        return;
    }
    out->entries = calloc(n, sizeof(*out->entries));
    if (out->entries == NULL) {
        r->err = RK_ERR_NOMEM;
        return;
    }
    for (uint32_t i = 0; i < n && r->err == RK_OK; i++) {
        uint32_t key_len, val_len;
        raft_term_t term = r_u64(r);
        uint8_t type = r_u8(r);
        if (r->err == RK_OK && !entry_type_valid(type))
            r->err = RK_ERR_PROTO;
        const char *key = r_bytes(r, PROTO_MAX_KEY, &key_len);
        const char *val = r_bytes(r, PROTO_MAX_VALUE, &val_len);
        uint64_t client_id = r_u64(r);
        uint64_t seq = r_u64(r);
        uint64_t rev = raft_entry_has_rev(type) ? r_u64(r) : 0;
        uint64_t ttl_ms = raft_entry_has_ttl(type) ? r_u64(r) : 0;
        if (r->err != RK_OK)
            break;
        r->err = raft_entry_init(&out->entries[i], term, type, key, key_len, val, val_len);
        if (r->err != RK_OK)
            break;
        out->entries[i].client_id = client_id;
        out->entries[i].seq = seq;
        out->entries[i].rev = rev;
        out->entries[i].ttl_ms = ttl_ms;
        out->n_entries = i + 1;
    }
}

static void r_append(struct reader *r, struct raft_msg *out)
{
    out->prev_log_index = r_u64(r);
    out->prev_log_term = r_u64(r);
    out->leader_commit = r_u64(r);
    out->read_ctx = r_u64(r);
    r_entries(r, out);
}

static void r_append_resp(struct reader *r, struct raft_msg *out)
{
    out->success = r_bool(r);
    out->match_index = r_u64(r);
    out->reject_index = r_u64(r);
    out->conflict_index = r_u64(r);
    out->conflict_term = r_u64(r);
    out->read_ctx = r_u64(r);
}

/* One snapshot chunk, copied out of the payload (the frame limit bounds its size). */
static void r_snapshot(struct reader *r, struct raft_msg *out)
{
    out->snap_index = r_u64(r);
    out->snap_term = r_u64(r);
    out->snap_offset = r_u64(r);
    out->snap_done = r_bool(r);
    uint32_t len;
    const char *data = r_bytes(r, PROTO_MAX_FRAME, &len);
    if (r->err != RK_OK || len == 0)
        return;
    out->snap_data = malloc(len);
    if (out->snap_data == NULL) {
        r->err = RK_ERR_NOMEM;
        return;
    }
    memcpy(out->snap_data, data, len);
    out->snap_len = len;
}

static void r_snapshot_resp(struct reader *r, struct raft_msg *out)
{
    out->success = r_bool(r);
    out->match_index = r_u64(r);
    out->snap_index = r_u64(r);
    out->snap_term = r_u64(r);
    out->snap_offset = r_u64(r);
}

int proto_decode_raft_msg(const uint8_t *payload, size_t len, struct raft_msg *out)
{
    struct reader r;
    r_begin(&r, payload, len, PROTO_RAFT);
    memset(out, 0, sizeof(*out));
    out->type = r_u8(&r);
    if (r.err == RK_OK && !msg_type_valid(out->type))
        r.err = RK_ERR_PROTO;
    out->from = (int32_t)r_u32(&r);
    out->to = (int32_t)r_u32(&r);
    out->term = r_u64(&r);
    if (r.err == RK_OK) {
        switch (out->type) {
        case RAFT_MSG_VOTE:
        case RAFT_MSG_PREVOTE:
            out->last_log_index = r_u64(&r);
            out->last_log_term = r_u64(&r);
            out->transfer = r_bool(&r);
            break;
        case RAFT_MSG_VOTE_RESP:
        case RAFT_MSG_PREVOTE_RESP:
            out->vote_granted = r_bool(&r);
            break;
        case RAFT_MSG_APPEND:
            r_append(&r, out);
            break;
        case RAFT_MSG_APPEND_RESP:
            r_append_resp(&r, out);
            break;
        case RAFT_MSG_SNAPSHOT:
            r_snapshot(&r, out);
            break;
        case RAFT_MSG_SNAPSHOT_RESP:
            r_snapshot_resp(&r, out);
            break;
        }
    }
    int rc = r_end(&r);
    if (rc != RK_OK) {
        raft_msg_free_entries(out);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}
