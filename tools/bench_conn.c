/* tools/bench_conn.c - raft_bench's raw client connection: HELLO, one CLIENT_REQ frame
 * out and its answer in, through a receive buffer that is reused (the load generator, the
 * probers, the snapshot targets; the ceiling server reads its requests with it too). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/bytes.h"
#include "../common/errors.h"
#include "../common/grow.h"
#include "../common/net.h"
#include "bench.h"

#define FIRST_BUF 4096

int bench_conn_open(struct bench_conn *c, const char *host, uint16_t port, int connect_ms,
                    int io_ms, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->fd = net_connect(host, port, connect_ms, err, errlen);
    if (c->fd < 0)
        return RK_ERR_IO;
    struct proto_buf hello = { 0 };
    int rc = proto_encode_hello_client(&hello);
    if (rc == RK_OK)
        rc = net_set_timeouts(c->fd, io_ms);
    if (rc == RK_OK)
        rc = net_write_full(c->fd, hello.data, hello.len);
    proto_buf_free(&hello);
    if (rc != RK_OK) {
        snprintf(err, errlen, "%s:%u: hello: %s", host, (unsigned)port, rk_strerror(rc));
        close(c->fd);
        c->fd = -1;
    }
    return rc;
}

void bench_conn_close(struct bench_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->have = c->cap = c->consumed = 0;
}

int bench_conn_reserve(struct bench_conn *c, size_t need)
{
    return rk_grow(&c->buf, &c->cap, need, 1, FIRST_BUF);
}

int bench_conn_parse_frame(struct bench_conn *c, uint32_t *len)
{
    if (c->have < 4)
        return RK_ERR_AGAIN;
    uint32_t n = rk_get_be32(c->buf);
    if (n == 0 || n > PROTO_MAX_FRAME)
        return RK_ERR_PROTO;
    if (c->have < 4 + (size_t)n)
        return RK_ERR_AGAIN;
    *len = n;
    c->consumed = 4 + (size_t)n;
    return RK_OK;
}

int bench_conn_read_frame(struct bench_conn *c, uint32_t *len)
{
    if (c->consumed > 0) { /* drop the previous frame */
        memmove(c->buf, c->buf + c->consumed, c->have - c->consumed);
        c->have -= c->consumed;
        c->consumed = 0;
    }
    for (;;) {
        int rc = bench_conn_parse_frame(c, len);
        if (rc != RK_ERR_AGAIN)
            return rc;
        size_t need = c->have >= 4 ? 4 + (size_t)rk_get_be32(c->buf) : FIRST_BUF;
        if (bench_conn_reserve(c, need) != RK_OK)
            return RK_ERR_NOMEM;
        ssize_t r = recv(c->fd, c->buf + c->have, c->cap - c->have, 0);
        if (r == 0)
            return RK_ERR_CLOSED;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? RK_ERR_TIMEOUT : RK_ERR_IO;
        c->have += (size_t)r;
    }
}

int bench_conn_call(struct bench_conn *c, const uint8_t *req, size_t len,
                    struct proto_client_resp *resp)
{
    if (c->fd < 0)
        return RK_ERR_CLOSED;
    int rc = net_write_full(c->fd, req, len);
    uint32_t n = 0;
    if (rc == RK_OK)
        rc = bench_conn_read_frame(c, &n);
    if (rc != RK_OK)
        return rc;
    struct proto_client_resp local;
    struct proto_client_resp *r = resp != NULL ? resp : &local;
    if (proto_frame_type(c->buf + 4, n) != PROTO_CLIENT_RESP ||
        proto_decode_client_resp(c->buf + 4, n, r) != RK_OK)
        return RK_ERR_PROTO;
    return r->status;
}

int bench_set_once(const char *host, uint16_t port, const char *key, int value_size,
                   int io_ms, char *leader, size_t leaderlen)
{
    char err[BENCH_ERR_LEN], value[4096];
    struct bench_conn conn;
    if (bench_conn_open(&conn, host, port, io_ms, io_ms, err, sizeof(err)) != RK_OK)
        return RK_ERR_IO;
    int vlen = value_size < (int)sizeof(value) ? value_size : (int)sizeof(value);
    for (int k = 0; k < vlen; k++)
        value[k] = (char)('a' + k % 26);
    struct proto_client_req r = { .op = PROTO_OP_SET, .key = key,
                                  .key_len = (uint32_t)strlen(key), .val = value,
                                  .val_len = (uint32_t)vlen };
    struct proto_buf req = { 0 };
    struct proto_client_resp resp;
    int st = proto_encode_client_req(&req, &r);
    if (st == RK_OK)
        st = bench_conn_call(&conn, req.data, req.len, &resp);
    if (st == PROTO_ST_REDIRECT && leader != NULL && leaderlen > 0)
        snprintf(leader, leaderlen, "%s", resp.leader_name);
    proto_buf_free(&req);
    bench_conn_close(&conn);
    return st;
}
