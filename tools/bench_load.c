/* tools/bench_load.c - raft_bench's closed-loop load: one raw protocol connection per
 * client, each with one request outstanding, served by a thread of its own (blocking
 * calls) or by a few epoll loops (a generator that costs less CPU on the cores it shares
 * with the servers; it also drives etcd's gateway, so both stores can be measured by one
 * generator). Every operation's latency is recorded, then sorted for percentiles. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/grow.h"
#include "../common/net.h"
#include "bench.h"

#define CONNECT_MS 2000
#define IO_MS 10000
#define MAX_ERRORS_IN_A_ROW 50
#define RETRY_MAX_IN_A_ROW 300 /* with RETRY_PAUSE_MS: a few seconds without a leader */
#define RETRY_PAUSE_MS 10
#define PROGRESS_EVERY_S 15

/* ---- the client threads ---- */

struct load_shared {
    const struct bench_load_opts *o;
    pthread_barrier_t start;
    atomic_long next_op;
    atomic_long acked;   /* counted for o->progress only */
    atomic_int finished; /* client threads done */
    char *value;
};

struct client {
    struct load_shared *sh;
    int id;
    pthread_t thread;
    struct bench_op *ops; /* the measured operations */
    size_t n_ops, cap_ops;
    long errors;
    char first_failure[BENCH_FAILURE_LEN];
    uint64_t end_ns;
    int rc;
    char err[BENCH_ERR_LEN];
    int in_a_row;       /* failures in a row */
    /* per-connection state */
    struct bench_conn conn;
    char host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
    uint64_t rng;
    struct proto_buf req;
    uint64_t client_id; /* the server-side session of this client (0: none), thesis §6.3 */
    uint64_t seq;       /* the last write's number in it */
    uint64_t cas_rev;   /* BENCH_OP_CAS: its key's revision, as the last answer gave it */
    char *cas_val;      /* BENCH_OP_CAS: "REV VALUE" of the next request */
    /* event loop only: the request in flight */
    bool busy;          /* a request is out (or partly sent) */
    bool want_out;      /* waiting for EPOLLOUT to send the rest */
    bool done;          /* no more operations for this client */
    size_t sent;        /* bytes of req already sent */
    uint64_t t0;        /* when it was sent */
    long op_no;
    int warm_left;      /* warm-up operations still to do */
};

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int64_t bench_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One acknowledged operation, sent at t0 and answered at t1 (CLOCK_MONOTONIC, ns). */
static int record(struct client *cl, uint64_t t0, uint64_t t1)
{
    uint64_t lat = t1 - t0;
    if (cl->sh->o->progress != NULL)
        atomic_fetch_add(&cl->sh->acked, 1);
    if (rk_grow(&cl->ops, &cl->cap_ops, cl->n_ops + 1, sizeof(*cl->ops), 4096) != RK_OK)
        return RK_ERR_NOMEM;
    int64_t start = cl->sh->o->timeline ? bench_real_ns() - (int64_t)lat : 0;
    cl->ops[cl->n_ops++] = (struct bench_op){ start, (int64_t)lat };
    return RK_OK;
}

/* The key of operation number op_no (into key[96]; returns its length) and whether the
 * operation reads. */
static int pick_key(struct client *cl, long op_no, char *key, bool *read)
{
    const struct bench_load_opts *o = cl->sh->o;
    uint64_t k = o->sequential_keys ? (uint64_t)op_no % (uint64_t)o->keys
                                    : next_rand(&cl->rng) % (uint64_t)o->keys;
    *read = o->read_ratio > 0 &&
            (double)(next_rand(&cl->rng) >> 11) / (double)(1ull << 53) < o->read_ratio;
    return snprintf(key, 96, "%s%08llu", o->key_prefix, (unsigned long long)k);
}

/* A compare-and-set of the client's own key, comparing the revision it last saw. */
static int encode_cas(struct client *cl)
{
    const struct bench_load_opts *o = cl->sh->o;
    char key[96];
    int klen = snprintf(key, sizeof(key), "%sc%d", o->key_prefix, cl->id);
    if (cl->cas_val == NULL && (cl->cas_val = malloc((size_t)o->value_size + 32)) == NULL)
        return RK_ERR_NOMEM;
    int n = snprintf(cl->cas_val, 32, "%llu ", (unsigned long long)cl->cas_rev);
    memcpy(cl->cas_val + n, cl->sh->value, (size_t)o->value_size);
    struct proto_client_req r = {
        .op = PROTO_OP_CAS, .key = key, .key_len = (uint32_t)klen, .val = cl->cas_val,
        .val_len = (uint32_t)(n + o->value_size), .client_id = cl->client_id,
        .seq = cl->client_id == 0 ? 0 : ++cl->seq,
    };
    return proto_encode_client_req(&cl->req, &r);
}

/* A setex whose time to live ends at o->expire_at_ms (at least the protocol's minimum). */
static int encode_setex(struct client *cl, const char *key, int klen)
{
    const struct bench_load_opts *o = cl->sh->o;
    if (cl->cas_val == NULL && (cl->cas_val = malloc((size_t)o->value_size + 32)) == NULL)
        return RK_ERR_NOMEM;
    uint64_t now = rk_clock_ms();
    uint64_t ttl = o->expire_at_ms > now + PROTO_TTL_MIN_MS ? o->expire_at_ms - now
                                                            : PROTO_TTL_MIN_MS;
    int n = snprintf(cl->cas_val, 32, "%llu ", (unsigned long long)ttl);
    memcpy(cl->cas_val + n, cl->sh->value, (size_t)o->value_size);
    struct proto_client_req r = {
        .op = PROTO_OP_SETEX, .key = key, .key_len = (uint32_t)klen, .val = cl->cas_val,
        .val_len = (uint32_t)(n + o->value_size), .client_id = cl->client_id,
        .seq = cl->client_id == 0 ? 0 : ++cl->seq,
    };
    return proto_encode_client_req(&cl->req, &r);
}

/* A page of the prefilled keys. */
static int encode_scan(struct client *cl)
{
    const char *prefix = cl->sh->o->key_prefix;
    char limit[16];
    int n = snprintf(limit, sizeof(limit), "%u", BENCH_SCAN_PAGE);
    struct proto_client_req r = { .op = PROTO_OP_SCAN, .key = prefix,
                                  .key_len = (uint32_t)strlen(prefix), .val = limit,
                                  .val_len = (uint32_t)n };
    return proto_encode_client_req(&cl->req, &r);
}

/* The revision a compare-and-set answer carries (OK NEWREV, FAILED CURREV). */
static void note_answer(struct client *cl, const struct proto_client_resp *resp)
{
    char digits[24];
    if (cl->sh->o->op_kind != BENCH_OP_CAS || resp->body_len == 0 || resp->body_len >= 24)
        return;
    memcpy(digits, resp->body, resp->body_len);
    digits[resp->body_len] = '\0';
    cl->cas_rev = strtoull(digits, NULL, 10);
}

/* Encodes operation number op_no into cl->req: a CLIENT_REQ frame, or for etcd an HTTP put. */
static int encode_op(struct client *cl, long op_no)
{
    const struct bench_load_opts *o = cl->sh->o;
    char key[96];
    bool read;
    cl->req.len = 0; /* the buffer is reused: no allocation once it is big enough */
    if (o->op_kind == BENCH_OP_CAS && o->etcd_path == NULL)
        return encode_cas(cl);
    if (o->op_kind == BENCH_OP_SCAN && o->etcd_path == NULL)
        return encode_scan(cl);
    int klen = pick_key(cl, op_no, key, &read);
    if (o->etcd_path != NULL)
        return bench_http_encode_put(&cl->req, o->etcd_path, key, (size_t)klen,
                                     cl->sh->value, (size_t)o->value_size);
    if (o->op_kind == BENCH_OP_SETEX)
        return encode_setex(cl, key, klen);
    struct proto_client_req r = {
        .op = read ? PROTO_OP_GET : PROTO_OP_SET,
        .key = key,
        .key_len = (uint32_t)klen,
        .val = read ? "" : cl->sh->value,
        .val_len = read ? 0 : (uint32_t)o->value_size,
        .client_id = read ? 0 : cl->client_id,
        .seq = read || cl->client_id == 0 ? 0 : ++cl->seq,
    };
    return proto_encode_client_req(&cl->req, &r);
}

/* One REGISTER on the open connection: a client session like client/session.c opens, so
 * writes take the same exactly-once path as a real client's (Raft thesis §6.3). Returns
 * the answer's status; cl->client_id is set on VALUE, a redirect's leader copied to cl. */
static int register_once(struct client *cl)
{
    struct proto_client_req r = { .op = PROTO_OP_REGISTER, .key = "", .val = "" };
    struct proto_client_resp resp;
    cl->req.len = 0;
    int st = proto_encode_client_req(&cl->req, &r);
    if (st == RK_OK)
        st = bench_conn_call(&cl->conn, cl->req.data, cl->req.len, &resp);
    if (st == PROTO_ST_VALUE &&
        proto_parse_client_id(resp.body, resp.body_len, &cl->client_id) != RK_OK)
        st = RK_ERR_PROTO;
    if (st == PROTO_ST_REDIRECT && resp.leader_host[0] != '\0' && resp.leader_port != 0) {
        snprintf(cl->host, sizeof(cl->host), "%s", resp.leader_host);
        cl->port = resp.leader_port;
    }
    return st;
}

/* Connects to the leader (following redirects: it may have changed since it was looked
 * up) and, if asked, opens a client session there. A server that refuses sessions (ERR)
 * gets writes without one. */
static int connect_client(struct client *cl, bool sessions)
{
    int rc = RK_ERR_IO;
    for (int attempt = 0; attempt < MAX_ERRORS_IN_A_ROW; attempt++) {
        if (attempt > 0) {
            bench_conn_close(&cl->conn);
            rk_sleep_ms(RETRY_PAUSE_MS);
        }
        rc = bench_conn_open(&cl->conn, cl->host, cl->port, CONNECT_MS, IO_MS, cl->err,
                             sizeof(cl->err));
        if (rc != RK_OK)
            continue;
        if (!sessions)
            return RK_OK;
        int st = register_once(cl);
        if (st == PROTO_ST_VALUE || st == PROTO_ST_ERR)
            return RK_OK;
        rc = st < 0 ? st : RK_ERR_NOTLEADER;
        snprintf(cl->err, sizeof(cl->err), "client %d: REGISTER failed (%s)", cl->id,
                 st < 0 ? rk_strerror(st) : "no leader");
    }
    return rc;
}

static int reconnect(struct client *cl)
{
    bench_conn_close(&cl->conn);
    return bench_conn_open(&cl->conn, cl->host, cl->port, CONNECT_MS, IO_MS, cl->err,
                           sizeof(cl->err));
}

/* After a failed call: follow a redirect, else reconnect to the same server. */
static void recover(struct client *cl, int status, const struct proto_client_resp *resp)
{
    if (status == PROTO_ST_REDIRECT && resp->leader_host[0] != '\0' && resp->leader_port != 0) {
        snprintf(cl->host, sizeof(cl->host), "%s", resp->leader_host);
        cl->port = resp->leader_port;
    } else if (status == PROTO_ST_ERR) {
        return; /* the connection is fine; the server could not do it */
    }
    rk_sleep_ms(RETRY_PAUSE_MS);
    reconnect(cl);
}

/* What went wrong with one call, for the report. */
static void describe_failure(const struct client *cl, int status,
                             const struct proto_client_resp *resp, char *out, size_t outlen)
{
    if (status < 0)
        snprintf(out, outlen, "%s", rk_strerror(status));
    else if (cl->sh->o->etcd_path != NULL)
        snprintf(out, outlen, "HTTP %d", status);
    else if (status == PROTO_ST_REDIRECT)
        snprintf(out, outlen, "redirect to '%s'", resp->leader_name);
    else if (status == PROTO_ST_ERR)
        snprintf(out, outlen, "ERR %.*s", (int)(resp->body_len < 100 ? resp->body_len : 100),
                 resp->body);
    else
        snprintf(out, outlen, "unexpected status %d", status);
}

/* Counts a failed call (the first measured one is described in the report): RK_OK, or
 * RK_ERR_IO with cl->err once too many failed in a row. */
static int count_failure(struct client *cl, bool measured, int status,
                         const struct proto_client_resp *resp)
{
    char what[BENCH_FAILURE_LEN];
    describe_failure(cl, status, resp, what, sizeof(what));
    if (measured && cl->errors++ == 0)
        snprintf(cl->first_failure, sizeof(cl->first_failure), "%s", what);
    int limit = cl->sh->o->retry ? RETRY_MAX_IN_A_ROW : MAX_ERRORS_IN_A_ROW;
    if (++cl->in_a_row < limit)
        return RK_OK;
    snprintf(cl->err, sizeof(cl->err), "client %d: %d failures in a row (last: %s)", cl->id,
             cl->in_a_row, what);
    return RK_ERR_IO;
}

static bool time_is_up(uint64_t deadline_ns)
{
    return deadline_ns != 0 && rk_clock_ns() >= deadline_ns;
}

static bool acknowledged(int status)
{
    return status == PROTO_ST_OK || status == PROTO_ST_VALUE || status == PROTO_ST_NIL ||
           status == PROTO_ST_FAILED; /* a compare that did not hold: a definite answer */
}

/* One operation; its latency is recorded when measured. With o->retry a failed one is
 * sent again until acknowledged or the deadline passes. RK_OK, or an error once too many
 * calls in a row failed. */
static int one_op(struct client *cl, long op_no, bool measured, uint64_t deadline)
{
    int rc = encode_op(cl, op_no);
    bool again = true;
    while (rc == RK_OK && again) {
        struct proto_client_resp resp;
        uint64_t t0 = rk_clock_ns();
        int status = bench_conn_call(&cl->conn, cl->req.data, cl->req.len, &resp);
        if (acknowledged(status)) {
            uint64_t t1 = rk_clock_ns();
            cl->in_a_row = 0;
            note_answer(cl, &resp);
            return measured ? record(cl, t0, t1) : RK_OK;
        }
        rc = count_failure(cl, measured, status, &resp);
        if (rc == RK_OK)
            recover(cl, status, &resp);
        again = cl->sh->o->retry && !time_is_up(deadline);
    }
    return rc;
}

/* A client before its connection: its random keys, where it connects. */
static void client_init(struct client *cl)
{
    const struct bench_load_opts *o = cl->sh->o;
    cl->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)o->seed << 20) ^ (uint64_t)(cl->id + 1);
    snprintf(cl->host, sizeof(cl->host), "%s", o->host);
    cl->port = o->port;
    cl->conn.fd = -1; /* calloc'ed: 0 would be a real descriptor */
}

/* When a measured phase that starts now ends (0: when the operations run out). */
static uint64_t deadline_of(const struct bench_load_opts *o)
{
    return o->max_seconds > 0 ? rk_clock_ns() + (uint64_t)(o->max_seconds * 1e9) : 0;
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct load_shared *sh = cl->sh;
    const struct bench_load_opts *o = sh->o;
    client_init(cl);
    cl->rc = connect_client(cl, o->sessions);
    for (int w = 0; cl->rc == RK_OK && w < o->warmup; w++)
        cl->rc = one_op(cl, w, false, 0);
    pthread_barrier_wait(&sh->start);
    uint64_t deadline = deadline_of(o);
    while (cl->rc == RK_OK) {
        long op_no = atomic_fetch_add(&sh->next_op, 1);
        if (op_no >= o->ops || time_is_up(deadline))
            break;
        cl->rc = one_op(cl, op_no, true, deadline);
    }
    cl->end_ns = rk_clock_ns();
    bench_conn_close(&cl->conn);
    proto_buf_free(&cl->req);
    free(cl->cas_val);
    atomic_fetch_add(&sh->finished, 1);
    return NULL;
}

/* ---- the event loops ---- */

#define LOOP_EVENTS 128
#define LOOP_WAIT_MS 50

struct loop {
    struct load_shared *sh;
    struct client **mine; /* the clients this loop serves */
    int n;
    int epfd;
    pthread_t thread;
};

static void set_failed(struct client *cl, int rc, const char *what)
{
    cl->rc = rc;
    cl->done = true;
    cl->busy = false;
    if (cl->err[0] == '\0')
        snprintf(cl->err, sizeof(cl->err), "client %d: %.400s", cl->id, what);
}

/* The connection joins the loop: non-blocking, watched for answers. */
static int loop_watch(struct loop *lp, struct client *cl)
{
    int flags = fcntl(cl->conn.fd, F_GETFL);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = cl };
    cl->want_out = false;
    if (flags < 0 || fcntl(cl->conn.fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        epoll_ctl(lp->epfd, EPOLL_CTL_ADD, cl->conn.fd, &ev) < 0)
        return RK_ERR_IO;
    return RK_OK;
}

/* Connects (blocking) to the target: raft-kv with HELLO and a session, or etcd. */
static int open_target(struct client *cl)
{
    const struct bench_load_opts *o = cl->sh->o;
    if (o->etcd_path == NULL)
        return connect_client(cl, o->sessions);
    cl->conn.fd = net_connect(cl->host, cl->port, CONNECT_MS, cl->err, sizeof(cl->err));
    return cl->conn.fd >= 0 ? RK_OK : RK_ERR_IO;
}

/* Sends what is left of the request; waits for EPOLLOUT if the socket is full. */
static int loop_send(struct loop *lp, struct client *cl)
{
    while (cl->sent < cl->req.len) {
        ssize_t w = send(cl->conn.fd, cl->req.data + cl->sent, cl->req.len - cl->sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            cl->sent += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return RK_ERR_IO;
    }
    bool want_out = cl->sent < cl->req.len;
    if (want_out != cl->want_out) {
        struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0u),
                                  .data.ptr = cl };
        if (epoll_ctl(lp->epfd, EPOLL_CTL_MOD, cl->conn.fd, &ev) < 0)
            return RK_ERR_IO;
        cl->want_out = want_out;
    }
    return RK_OK;
}

/* Starts the client's next operation, or marks it done. */
static void loop_issue(struct loop *lp, struct client *cl, bool measured, uint64_t deadline)
{
    const struct bench_load_opts *o = lp->sh->o;
    cl->busy = false;
    if (cl->done || cl->rc != RK_OK)
        return;
    if (measured) {
        cl->op_no = atomic_fetch_add(&lp->sh->next_op, 1);
        if (cl->op_no >= o->ops || time_is_up(deadline)) {
            cl->done = true;
            cl->end_ns = rk_clock_ns();
            return;
        }
    } else {
        if (cl->warm_left <= 0)
            return;
        cl->op_no = o->warmup - cl->warm_left--;
    }
    int rc = encode_op(cl, cl->op_no);
    if (rc != RK_OK) {
        set_failed(cl, rc, "cannot encode a request");
        return;
    }
    cl->busy = true;
    cl->sent = 0;
    cl->t0 = rk_clock_ns();
    rc = loop_send(lp, cl);
    if (rc != RK_OK)
        set_failed(cl, rc, "send failed");
}

/* A failed operation: counted; then a redirect is followed or the connection remade
 * (blocking, as in the threads' recover), unless too many failed in a row. */
static void loop_failed(struct loop *lp, struct client *cl, bool measured, int status,
                        const struct proto_client_resp *resp)
{
    char what[BENCH_FAILURE_LEN];
    describe_failure(cl, status, resp, what, sizeof(what));
    if (count_failure(cl, measured, status, resp) != RK_OK) {
        set_failed(cl, RK_ERR_IO, "too many failures"); /* cl->err says which */
        return;
    }
    if (status == PROTO_ST_ERR && lp->sh->o->etcd_path == NULL)
        return; /* the connection is fine */
    if (lp->sh->o->etcd_path == NULL) {
        recover(cl, status, resp); /* closes the old socket: epoll forgets it */
    } else {
        bench_conn_close(&cl->conn);
        rk_sleep_ms(RETRY_PAUSE_MS);
        open_target(cl);
    }
    /* A server that refuses (restarting, say) is retried like the threads retry a call:
     * each failed attempt counts, up to MAX_ERRORS_IN_A_ROW in a row. */
    while (cl->conn.fd < 0 && ++cl->in_a_row < MAX_ERRORS_IN_A_ROW) {
        rk_sleep_ms(RETRY_PAUSE_MS);
        if (lp->sh->o->etcd_path == NULL)
            reconnect(cl);
        else
            open_target(cl);
    }
    if (cl->conn.fd < 0 || loop_watch(lp, cl) != RK_OK) {
        char msg[BENCH_ERR_LEN];
        snprintf(msg, sizeof(msg), "cannot reconnect after %.150s (%.200s)", what,
                 cl->err[0] ? cl->err : "no detail");
        cl->err[0] = '\0';
        set_failed(cl, RK_ERR_IO, msg);
    }
}

/* The connection failed (rc): the answer so far is dropped, the failure counted and the
 * connection remade (loop_failed), then the client's next operation starts. */
static void loop_broken(struct loop *lp, struct client *cl, bool measured, int rc,
                        uint64_t deadline)
{
    struct proto_client_resp resp;
    memset(&resp, 0, sizeof(resp));
    cl->conn.have = cl->conn.consumed = 0;
    loop_failed(lp, cl, measured, rc, &resp);
    loop_issue(lp, cl, measured, deadline);
}

/* Reads what came; RK_OK with *status once the whole answer is there (drop_answer takes
 * it out of the buffer once handled), RK_ERR_AGAIN if more is to come. */
static int loop_take_answer(struct client *cl, int *status, struct proto_client_resp *resp,
                            bool etcd)
{
    struct bench_conn *c = &cl->conn;
    for (;;) {
        if (c->have > 4 + (size_t)PROTO_MAX_FRAME)
            return RK_ERR_PROTO; /* more than one answer can hold: not a server we know */
        if (bench_conn_reserve(c, c->have + 4096) != RK_OK)
            return RK_ERR_NOMEM;
        size_t room = c->cap - c->have;
        ssize_t r = recv(c->fd, c->buf + c->have, room, MSG_DONTWAIT);
        if (r > 0) {
            c->have += (size_t)r;
            if ((size_t)r < room)
                break; /* the socket is empty: no recv just to hear EAGAIN (epoll is
                          level-triggered, so anything that comes later is reported) */
            continue;
        }
        if (r == 0)
            return RK_ERR_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        return RK_ERR_IO;
    }
    if (etcd) {
        struct bench_http_answer a;
        int rc = bench_http_parse_answer(c->buf, c->have, &a);
        c->consumed = rc == RK_OK ? a.consumed : 0;
        *status = rc == RK_OK && bench_http_put_ok(&a) ? PROTO_ST_OK : a.status;
        return rc;
    }
    uint32_t n = 0;
    int rc = bench_conn_parse_frame(c, &n);
    if (rc != RK_OK)
        return rc;
    if (proto_frame_type(c->buf + 4, n) != PROTO_CLIENT_RESP ||
        proto_decode_client_resp(c->buf + 4, n, resp) != RK_OK)
        return RK_ERR_PROTO;
    *status = resp->status;
    return RK_OK;
}

static void drop_answer(struct bench_conn *c)
{
    if (c->have == 0) {
        c->consumed = 0;
        return;
    }
    size_t k = c->consumed < c->have ? c->consumed : c->have;
    memmove(c->buf, c->buf + k, c->have - k);
    c->have -= k;
    c->consumed = 0;
}

/* The socket is readable: if the answer is whole, record it and start the next one. */
static void loop_readable(struct loop *lp, struct client *cl, bool measured,
                          uint64_t deadline)
{
    struct proto_client_resp resp;
    memset(&resp, 0, sizeof(resp));
    int status = 0;
    int rc = loop_take_answer(cl, &status, &resp, lp->sh->o->etcd_path != NULL);
    if (rc == RK_ERR_AGAIN)
        return;
    uint64_t t1 = rk_clock_ns();
    if (!cl->busy) { /* nothing was asked: the server spoke out of turn or closed */
        set_failed(cl, RK_ERR_PROTO, "an answer to no request");
        return;
    }
    if (rc != RK_OK) {
        loop_broken(lp, cl, measured, rc, deadline);
        return;
    }
    if (acknowledged(status)) {
        cl->in_a_row = 0;
        if (lp->sh->o->etcd_path == NULL)
            note_answer(cl, &resp);
        if (measured && record(cl, cl->t0, t1) != RK_OK)
            set_failed(cl, RK_ERR_NOMEM, "out of memory");
        drop_answer(&cl->conn);
    } else {
        loop_failed(lp, cl, measured, status, &resp);
        drop_answer(&cl->conn);
    }
    loop_issue(lp, cl, measured, deadline);
}

/* A request unanswered for IO_MS fails like a timed-out read in the threads. */
static void loop_check_timeouts(struct loop *lp, bool measured, uint64_t deadline)
{
    uint64_t now = rk_clock_ns();
    for (int i = 0; i < lp->n; i++) {
        struct client *cl = lp->mine[i];
        if (cl->busy && now - cl->t0 > (uint64_t)IO_MS * 1000000)
            loop_broken(lp, cl, measured, RK_ERR_TIMEOUT, deadline);
    }
}

static int busy_clients(const struct loop *lp)
{
    int busy = 0;
    for (int i = 0; i < lp->n; i++)
        busy += lp->mine[i]->busy;
    return busy;
}

/* Every client does its warm-up operations (measured false) or takes operation numbers
 * until they run out or the deadline passes (measured true). */
static void loop_phase(struct loop *lp, bool measured, uint64_t deadline)
{
    struct epoll_event evs[LOOP_EVENTS];
    for (int i = 0; i < lp->n; i++)
        loop_issue(lp, lp->mine[i], measured, deadline);
    uint64_t next_check = rk_clock_ns() + 100000000;
    while (busy_clients(lp) > 0) {
        if (measured && time_is_up(deadline))
            break;
        int k = epoll_wait(lp->epfd, evs, LOOP_EVENTS, LOOP_WAIT_MS);
        for (int e = 0; e < k; e++) {
            struct client *cl = evs[e].data.ptr;
            if (cl->done || cl->rc != RK_OK)
                continue;
            if ((evs[e].events & EPOLLOUT) && loop_send(lp, cl) != RK_OK) {
                loop_broken(lp, cl, measured, RK_ERR_IO, deadline);
                continue;
            }
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                loop_readable(lp, cl, measured, deadline);
        }
        if (rk_clock_ns() >= next_check) {
            loop_check_timeouts(lp, measured, deadline);
            next_check = rk_clock_ns() + 100000000;
        }
    }
    uint64_t end = rk_clock_ns();
    for (int i = 0; measured && i < lp->n; i++)
        if (lp->mine[i]->end_ns == 0)
            lp->mine[i]->end_ns = end;
}

static void *loop_main(void *arg)
{
    struct loop *lp = arg;
    struct load_shared *sh = lp->sh;
    const struct bench_load_opts *o = sh->o;
    for (int i = 0; i < lp->n; i++) {
        struct client *cl = lp->mine[i];
        client_init(cl);
        cl->warm_left = o->warmup;
        cl->rc = open_target(cl);
        if (cl->rc == RK_OK && loop_watch(lp, cl) != RK_OK)
            set_failed(cl, RK_ERR_IO, "cannot watch the connection");
        if (cl->rc != RK_OK)
            cl->done = true;
    }
    loop_phase(lp, false, 0);
    pthread_barrier_wait(&sh->start);
    loop_phase(lp, true, deadline_of(o));
    for (int i = 0; i < lp->n; i++) {
        bench_conn_close(&lp->mine[i]->conn);
        proto_buf_free(&lp->mine[i]->req);
        free(lp->mine[i]->cas_val);
    }
    return NULL;
}

/* Starts the loops, each with every loop_threads-th client; false if one could not start
 * (the started ones then wait on the barrier forever: the caller exits). */
static bool start_loops(struct load_shared *sh, struct client *cls, struct loop *loops,
                        int n_loops)
{
    const struct bench_load_opts *o = sh->o;
    for (int t = 0; t < n_loops; t++) {
        struct loop *lp = &loops[t];
        lp->sh = sh;
        lp->epfd = epoll_create1(EPOLL_CLOEXEC);
        lp->mine = calloc((size_t)o->clients / (size_t)n_loops + 1, sizeof(*lp->mine));
        if (lp->epfd < 0 || lp->mine == NULL)
            return false;
        for (int i = t; i < o->clients; i += n_loops)
            lp->mine[lp->n++] = &cls[i];
        if (pthread_create(&lp->thread, NULL, loop_main, lp) != 0)
            return false;
    }
    return true;
}

/* ---- statistics ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values, in ms. */
static double pct_ms(const int64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(q * (double)n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return (double)v[rank - 1] / 1e6;
}

void bench_latency_stats(int64_t *lat, size_t n, struct bench_result *r)
{
    qsort(lat, n, sizeof(*lat), cmp_i64);
    r->ops = (long)n;
    r->ops_per_s = r->seconds > 0 ? (double)n / r->seconds : 0;
    r->p50_ms = pct_ms(lat, n, 0.50);
    r->p90_ms = pct_ms(lat, n, 0.90);
    r->p99_ms = pct_ms(lat, n, 0.99);
    r->p999_ms = pct_ms(lat, n, 0.999);
    r->max_ms = n ? (double)lat[n - 1] / 1e6 : 0;
}

/* Rate and latency percentiles of the n_ops operations in ops. */
static int latency_stats(const struct bench_op *ops, size_t n_ops, struct bench_result *r)
{
    int64_t *lat = malloc((n_ops ? n_ops : 1) * sizeof(*lat));
    if (lat == NULL)
        return RK_ERR_NOMEM;
    for (size_t k = 0; k < n_ops; k++)
        lat[k] = ops[k].lat_ns;
    bench_latency_stats(lat, n_ops, r);
    free(lat);
    return RK_OK;
}

/* Every client's operations and errors into r; the operations stay in r->timeline if
 * asked for. */
static int summarize(struct client *cls, int n, uint64_t t0, bool timeline,
                     struct bench_result *r)
{
    size_t total = 0;
    uint64_t t_end = t0;
    for (int i = 0; i < n; i++) {
        total += cls[i].n_ops;
        if (r->errors == 0 && cls[i].errors > 0)
            snprintf(r->first_failure, sizeof(r->first_failure), "%s", cls[i].first_failure);
        r->errors += cls[i].errors;
        t_end = cls[i].end_ns > t_end ? cls[i].end_ns : t_end;
    }
    struct bench_op *all = malloc((total ? total : 1) * sizeof(*all));
    if (all == NULL)
        return RK_ERR_NOMEM;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, cls[i].ops, cls[i].n_ops * sizeof(*all));
        k += cls[i].n_ops;
    }
    r->seconds = (double)(t_end - t0) / 1e9;
    int rc = latency_stats(all, total, r);
    if (timeline)
        r->timeline = all;
    else
        free(all);
    return rc;
}

/* ---- the run ---- */

static int check_opts(const struct bench_load_opts *o, char *err, size_t errlen)
{
    if (o->etcd_path != NULL && (o->loop_threads < 1 || o->read_ratio > 0)) {
        snprintf(err, errlen, "etcd is driven by the event loop, with writes only");
        return RK_ERR_INVAL;
    }
    if (o->loop_threads > 0 && (o->retry || o->progress != NULL)) {
        snprintf(err, errlen, "retries and progress lines are for the threads engine only");
        return RK_ERR_INVAL;
    }
    if (o->clients < 1 || o->clients > 4096 || o->ops < 1 || o->keys < 1 ||
        o->value_size < 0 || (uint32_t)o->value_size > PROTO_MAX_VALUE || o->read_ratio < 0 ||
        o->read_ratio > 1 || o->loop_threads < 0) {
        snprintf(err, errlen, "bad load options (clients 1..4096, ops >= 1, keys >= 1, "
                              "value size 0..%u, read ratio 0..1)",
                 PROTO_MAX_VALUE);
        return RK_ERR_INVAL;
    }
    return RK_OK;
}

/* Starts the threads (a thread per client, or the loops); exits the program if one could
 * not start (the started ones would wait on the barrier forever). */
static struct loop *start_threads(struct load_shared *sh, struct client *cls, int n_loops)
{
    const struct bench_load_opts *o = sh->o;
    struct loop *loops = NULL;
    if (n_loops > 0) {
        loops = calloc((size_t)n_loops, sizeof(*loops));
        if (loops != NULL && start_loops(sh, cls, loops, n_loops))
            return loops;
        fprintf(stderr, "raft_bench: cannot start %d event loops\n", n_loops);
        exit(1);
    }
    for (int i = 0; i < o->clients; i++) {
        if (pthread_create(&cls[i].thread, NULL, client_main, &cls[i]) != 0) {
            fprintf(stderr, "raft_bench: could only start %d of %d client threads\n", i,
                    o->clients);
            exit(1);
        }
    }
    return NULL;
}

/* With o->progress: a line every PROGRESS_EVERY_S until every client thread is done. */
static void watch_progress(struct load_shared *sh, uint64_t t0)
{
    uint64_t last = t0;
    while (sh->o->progress != NULL && atomic_load(&sh->finished) < sh->o->clients) {
        rk_sleep_ms(100);
        uint64_t now = rk_clock_ns();
        if (now - last < (uint64_t)PROGRESS_EVERY_S * 1000000000)
            continue;
        last = now;
        double secs = (double)(now - t0) / 1e9;
        long acked = atomic_load(&sh->acked);
        fprintf(stderr, "  %s: %ld writes acknowledged in %.0f s (%.0f/s)\n", sh->o->progress,
                acked, secs, (double)acked / secs);
    }
}

/* Waits for the threads, then gathers the results. */
static int finish_run(struct load_shared *sh, struct client *cls, struct loop *loops,
                      int n_loops, struct bench_result *r, char *err, size_t errlen)
{
    const struct bench_load_opts *o = sh->o;
    uint64_t t0 = rk_clock_ns();
    r->t0_ns = bench_real_ns();
    watch_progress(sh, t0);
    for (int t = 0; t < n_loops; t++) {
        pthread_join(loops[t].thread, NULL);
        close(loops[t].epfd);
        free(loops[t].mine);
    }
    for (int i = 0; n_loops == 0 && i < o->clients; i++)
        pthread_join(cls[i].thread, NULL);
    r->t1_ns = bench_real_ns();
    int rc = summarize(cls, o->clients, t0, o->timeline, r);
    for (int i = 0; i < o->clients; i++) {
        if (cls[i].rc != RK_OK && rc == RK_OK) {
            rc = cls[i].rc;
            snprintf(err, errlen, "%s", cls[i].err[0] ? cls[i].err : rk_strerror(cls[i].rc));
        }
        free(cls[i].ops);
    }
    return rc;
}

int bench_run_load(const struct bench_load_opts *o, struct bench_result *r, char *err,
                   size_t errlen)
{
    memset(r, 0, sizeof(*r));
    int rc = check_opts(o, err, errlen);
    if (rc != RK_OK)
        return rc;
    struct load_shared sh = { .o = o };
    struct client *cls = calloc((size_t)o->clients, sizeof(*cls));
    sh.value = malloc((size_t)o->value_size + 1);
    if (cls == NULL || sh.value == NULL) {
        free(cls);
        free(sh.value);
        snprintf(err, errlen, "out of memory");
        return RK_ERR_NOMEM;
    }
    for (int i = 0; i < o->value_size; i++)
        sh.value[i] = (char)('a' + i % 26);
    for (int i = 0; i < o->clients; i++)
        cls[i] = (struct client){ .sh = &sh, .id = i };
    int n_loops = o->loop_threads > o->clients ? o->clients : o->loop_threads;
    pthread_barrier_init(&sh.start, NULL, (unsigned)(n_loops > 0 ? n_loops : o->clients) + 1);
    struct loop *loops = start_threads(&sh, cls, n_loops);
    /* the clock starts once every client is connected and warmed up */
    pthread_barrier_wait(&sh.start);
    rc = finish_run(&sh, cls, loops, n_loops, r, err, errlen);
    free(loops);
    pthread_barrier_destroy(&sh.start);
    free(cls);
    free(sh.value);
    return rc;
}
