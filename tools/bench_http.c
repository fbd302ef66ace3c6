/* tools/bench_http.c - the little HTTP raft_bench needs to drive etcd's JSON gateway with
 * the same generator as raft-kv: a POST (a put: base64 key and value; a status request),
 * the parse of etcd's answer, and one request on a fresh connection. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "bench.h"

#define HTTP_MAX_HEAD 8192

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Appends the standard base64 of len bytes. */
static int append_base64(struct proto_buf *b, const uint8_t *p, size_t len)
{
    char quad[4];
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        quad[0] = b64_alphabet[(v >> 18) & 63];
        quad[1] = b64_alphabet[(v >> 12) & 63];
        quad[2] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        quad[3] = i + 2 < len ? b64_alphabet[v & 63] : '=';
        if (proto_buf_append(b, quad, 4) != RK_OK)
            return RK_ERR_NOMEM;
    }
    return RK_OK;
}

int bench_http_encode_post(struct proto_buf *b, const char *path, const char *body,
                           size_t body_len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     path, body_len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return RK_ERR_INVAL;
    int rc = proto_buf_append(b, head, (size_t)n);
    return rc == RK_OK ? proto_buf_append(b, body, body_len) : rc;
}

int bench_http_encode_put(struct proto_buf *b, const char *path, const char *key,
                          size_t key_len, const char *val, size_t val_len)
{
    struct proto_buf body = { 0 };
    int rc = proto_buf_append(&body, "{\"key\":\"", 8);
    if (rc == RK_OK)
        rc = append_base64(&body, (const uint8_t *)key, key_len);
    if (rc == RK_OK)
        rc = proto_buf_append(&body, "\",\"value\":\"", 11);
    if (rc == RK_OK)
        rc = append_base64(&body, (const uint8_t *)val, val_len);
    if (rc == RK_OK)
        rc = proto_buf_append(&body, "\"}", 2);
    if (rc == RK_OK)
        rc = bench_http_encode_post(b, path, (const char *)body.data, body.len);
    proto_buf_free(&body);
    return rc;
}

/* The value of header name (with its colon) in head[0..len), or NULL. */
static const char *find_header(const char *head, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i + 2 + nlen <= len; i++)
        if (head[i] == '\r' && head[i + 1] == '\n' &&
            strncasecmp(head + i + 2, name, nlen) == 0)
            return head + i + 2 + nlen;
    return NULL;
}

/* The Content-Length of the head s[0..head_len), or -1. */
static long content_length(const char *s, size_t head_len)
{
    const char *cl = find_header(s, head_len, "content-length:");
    if (cl == NULL) /* etcd's gateway always sends a length; chunked answers are not ours */
        return -1;
    while (*cl == ' ')
        cl++;
    long len = 0;
    int digits = 0;
    for (; *cl >= '0' && *cl <= '9' && digits < 9; cl++, digits++)
        len = len * 10 + (*cl - '0');
    return digits == 0 || (*cl != '\r' && *cl != ' ') ? -1 : len;
}

int bench_http_parse_answer(const uint8_t *buf, size_t have, struct bench_http_answer *a)
{
    const char *s = (const char *)buf;
    size_t head_len = 0;
    for (size_t i = 0; i + 4 <= have && head_len == 0; i++)
        if (memcmp(s + i, "\r\n\r\n", 4) == 0)
            head_len = i;
    if (head_len == 0)
        return have > HTTP_MAX_HEAD ? RK_ERR_PROTO : RK_ERR_AGAIN;
    if (head_len < 12 || memcmp(s, "HTTP/1.", 7) != 0)
        return RK_ERR_PROTO;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RK_ERR_PROTO;
        code = code * 10 + (s[i] - '0');
    }
    long body_len = content_length(s, head_len);
    if (body_len < 0)
        return RK_ERR_PROTO;
    if (have < head_len + 4 + (size_t)body_len)
        return RK_ERR_AGAIN;
    *a = (struct bench_http_answer){ .consumed = head_len + 4 + (size_t)body_len,
                                     .status = code, .body = s + head_len + 4,
                                     .body_len = (size_t)body_len };
    return RK_OK;
}

bool bench_http_put_ok(const struct bench_http_answer *a)
{
    return a->status == 200 && a->body_len >= 9 && memcmp(a->body, "{\"header\"", 9) == 0;
}

/* Reads the answer to one request from fd into buf. */
static int read_answer(int fd, uint8_t *buf, size_t cap, struct bench_http_answer *a)
{
    size_t have = 0;
    for (;;) {
        ssize_t r = have < cap ? recv(fd, buf + have, cap - have, 0) : -1;
        if (r <= 0)
            return r == 0 ? RK_ERR_CLOSED : RK_ERR_IO;
        have += (size_t)r;
        int rc = bench_http_parse_answer(buf, have, a);
        if (rc != RK_ERR_AGAIN)
            return rc;
    }
}

int bench_http_call(const char *host, uint16_t port, const struct proto_buf *req,
                    int timeout_ms, uint8_t *buf, size_t cap, struct bench_http_answer *a)
{
    char err[256];
    int fd = net_connect(host, port, timeout_ms, err, sizeof(err));
    if (fd < 0)
        return RK_ERR_IO;
    int rc = net_set_timeouts(fd, timeout_ms);
    if (rc == RK_OK)
        rc = net_write_full(fd, req->data, req->len);
    if (rc == RK_OK)
        rc = read_answer(fd, buf, cap, a);
    close(fd);
    return rc;
}

bool bench_json_string(const char *body, size_t len, const char *name, char *out,
                       size_t outlen)
{
    char pat[64];
    int n = snprintf(pat, sizeof(pat), "\"%s\":\"", name);
    const char *p = n > 0 && (size_t)n < sizeof(pat) ? memmem(body, len, pat, (size_t)n) : NULL;
    if (p == NULL)
        return false;
    p += n;
    const char *end = memchr(p, '"', len - (size_t)(p - body));
    if (end == NULL || (size_t)(end - p) >= outlen)
        return false;
    snprintf(out, outlen, "%.*s", (int)(end - p), p);
    return true;
}
