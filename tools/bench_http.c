/* tools/bench_http.c - the little HTTP raft_bench needs to drive etcd with the same
 * generator as raft-kv: a put through etcd's JSON gateway (POST /v3/kv/put, base64 key and
 * value, the request ../shared/bench/kvload.py's raw mode sends) and its answer. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/errors.h"
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
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     path, body.len);
    if (rc == RK_OK && (n < 0 || (size_t)n >= sizeof(head)))
        rc = RK_ERR_INVAL;
    if (rc == RK_OK)
        rc = proto_buf_append(b, head, (size_t)n);
    if (rc == RK_OK)
        rc = proto_buf_append(b, body.data, body.len);
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

int bench_http_parse_answer(const uint8_t *buf, size_t have, size_t *consumed, int *status,
                            bool *put_ok)
{
    const char *s = (const char *)buf;
    size_t head_len = 0;
    for (size_t i = 0; i + 4 <= have; i++)
        if (memcmp(s + i, "\r\n\r\n", 4) == 0) {
            head_len = i;
            break;
        }
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
    const char *cl = find_header(s, head_len, "content-length:");
    if (cl == NULL) /* etcd's gateway always sends a length; chunked answers are not ours */
        return RK_ERR_PROTO;
    while (*cl == ' ')
        cl++;
    size_t body_len = 0;
    int digits = 0;
    for (; *cl >= '0' && *cl <= '9' && digits < 9; cl++, digits++)
        body_len = body_len * 10 + (size_t)(*cl - '0');
    if (digits == 0 || (*cl != '\r' && *cl != ' '))
        return RK_ERR_PROTO;
    size_t total = head_len + 4 + body_len;
    if (have < total)
        return RK_ERR_AGAIN;
    *consumed = total;
    *status = code;
    *put_ok = code == 200 && body_len >= 9 && memcmp(s + head_len + 4, "{\"header\"", 9) == 0;
    return RK_OK;
}
