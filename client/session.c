/* client/session.c - the leader-following client session of session.h: one kept-open
 * connection, redirects followed to the leader, failover to the other servers with backoff,
 * and a server-side client session (Raft thesis §6.3) that makes retried writes safe. */
#include "session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"
#include "../common/registry.h"
#include "targets.h"

#define SESSION_CONNECT_TIMEOUT_MS 500
#define SESSION_BACKOFF_START_MS 10  /* an election here takes tens of ms */
#define SESSION_BACKOFF_MAX_MS 500
/* Redirects followed in a row before the attempt counts as failed (stops A->B->A loops). */
#define SESSION_MAX_HOPS 4
/* One server may hold a request at most this long (or timeout/3 if longer) before the
 * session tries another: a stopped or cut-off leader accepts connections but never answers. */
#define SESSION_ATTEMPT_MIN_MS 1000
/* An add waits for the new server to catch up (the server answers within 90 s). */
#define SESSION_ADD_TIMEOUT_MS 100000
/* A session that keeps running asks the leader for the members this often at most, so
 * that it finds the cluster after every server it knew was replaced. */
#define SESSION_MEMBERS_EVERY_MS 5000

struct client_session {
    struct client_targets targets;  /* the first host (if any), then the registry */
    int current;                    /* the target last connected to; failover starts after it */
    int fd;                         /* the kept-open connection, or -1 */
    struct client_target conn;      /* where fd goes */
    int timeout_ms;
    bool verbose;
    uint64_t client_id;             /* the server-side session (thesis §6.3), 0 = none yet */
    uint64_t last_seq;              /* the seq of the last SET/DELETE sent in it */
    bool learn;                     /* ask for the members now and then (stdin mode) */
    uint64_t members_ms;            /* when the members were last learned (0: never) */
};

/* The retry state of one client_session_call. */
struct call_state {
    int64_t deadline;
    int backoff_ms;
    int tried;                      /* failed attempts since the last pause */
    bool patient;                   /* one server may take the whole deadline to answer
                                       (a membership change, a transfer) */
};

static void note(const struct client_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note(const struct client_session *s, const char *fmt, ...)
{
    if (!s->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

struct client_session *client_session_new(const char *host, uint16_t port,
                                          const char *registry_path, int timeout_ms,
                                          bool verbose, char *err, size_t errlen)
{
    if (timeout_ms <= 0) {
        rk_errf(err, errlen, "timeout must be positive");
        return NULL;
    }
    struct client_session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rk_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (client_targets_load(&s->targets, host, port, registry_path, verbose, err, errlen) !=
        RK_OK) {
        free(s);
        return NULL;
    }
    s->fd = -1;
    s->timeout_ms = timeout_ms;
    s->verbose = verbose;
    return s;
}

static void session_close(struct client_session *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

void client_session_free(struct client_session *s)
{
    if (s == NULL)
        return;
    session_close(s);
    client_targets_free(&s->targets);
    free(s);
}

void client_reply_free(struct client_reply *r)
{
    if (r == NULL)
        return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* Milliseconds a single read or write may block: what is left of the command, capped so
 * that one silent server does not use up the whole timeout. At least 1 (0 means none). */
static int io_budget_ms(const struct client_session *s, int64_t deadline, bool patient)
{
    int64_t left = deadline - (int64_t)rk_clock_ms();
    if (patient)
        return left < 1 ? 1 : (int)left;
    int64_t cap = s->timeout_ms / 3 > SESSION_ATTEMPT_MIN_MS ? s->timeout_ms / 3
                                                             : SESSION_ATTEMPT_MIN_MS;
    if (left > cap)
        left = cap;
    return left < 1 ? 1 : (int)left;
}

/* Opens the connection to t and says HELLO_CLIENT. RK_OK, or an error noted on stderr. */
static int session_connect(struct client_session *s, const struct client_target *t,
                           int64_t deadline)
{
    char cerr[512];
    int64_t left = deadline - (int64_t)rk_clock_ms();
    if (left <= 0)
        return RK_ERR_TIMEOUT;
    int fd;
    int rc = client_target_connect(t, left < SESSION_CONNECT_TIMEOUT_MS
                                          ? (int)left : SESSION_CONNECT_TIMEOUT_MS,
                                   io_budget_ms(s, deadline, false), &fd, cerr, sizeof(cerr));
    if (rc == RK_ERR_UNREACHABLE) {
        note(s, "cannot reach %s: %s", t->name, cerr);
        return RK_ERR_IO;
    }
    if (rc != RK_OK) {
        note(s, "%s (%s:%u): %s", t->name, t->host, (unsigned)t->port, cerr);
        return rc;
    }
    s->fd = fd;
    s->conn = *t;
    int idx = client_targets_find(&s->targets, t->name, t->host, t->port);
    if (idx >= 0)
        s->current = idx;
    return RK_OK;
}

/* Sends one encoded CLIENT_REQ frame and reads the CLIENT_RESP. On RK_OK *payload holds
 * the frame (free it) and resp points into it. */
static int session_exchange(struct client_session *s, const struct proto_buf *req,
                            const struct call_state *st, uint8_t **payload,
                            struct proto_client_resp *resp)
{
    size_t len = 0;
    *payload = NULL;
    int rc = net_set_timeouts(s->fd, io_budget_ms(s, st->deadline, st->patient));
    if (rc == RK_OK)
        rc = net_write_full(s->fd, req->data, req->len);
    if (rc == RK_OK)
        rc = net_read_frame(s->fd, PROTO_MAX_FRAME, payload, &len);
    if (rc == RK_OK && proto_frame_type(*payload, len) != PROTO_CLIENT_RESP)
        rc = RK_ERR_PROTO;
    if (rc == RK_OK)
        rc = proto_decode_client_resp(*payload, len, resp);
    if (rc == RK_OK && resp->status > PROTO_ST_FAILED)
        rc = RK_ERR_PROTO;
    if (rc != RK_OK) {
        free(*payload);
        *payload = NULL;
    }
    return rc;
}

/* After a failed attempt: move on to the next server and, once every server was tried
 * (or one said no leader is known yet, e.g. during an election), pause with a doubling
 * backoff, never past the deadline. */
static void session_failover(struct client_session *s, struct call_state *st, bool pause_now)
{
    session_close(s);
    s->current = (s->current + 1) % s->targets.n;
    st->tried++;
    if (!pause_now && st->tried < s->targets.n)
        return;
    int64_t left = st->deadline - (int64_t)rk_clock_ms();
    int64_t wait = st->backoff_ms < left ? st->backoff_ms : left;
    if (wait > 0)
        note(s, "no leader reachable yet; retrying in %lld ms", (long long)wait);
    rk_sleep_ms(wait);
    st->tried = 0;
    st->backoff_ms = st->backoff_ms * 2 > SESSION_BACKOFF_MAX_MS ? SESSION_BACKOFF_MAX_MS
                                                                 : st->backoff_ms * 2;
}

/* Where a REDIRECT points: its host:port, or the registry entry of its leader name.
 * Returns false when the server does not know the leader. */
static bool redirect_target(const struct client_session *s, const struct proto_client_resp *r,
                            struct client_target *out)
{
    if (r->leader_host[0] != '\0' && r->leader_port != 0) {
        char name[REGISTRY_NAME_MAX + 1];
        if (r->leader_name[0] != '\0')
            snprintf(name, sizeof(name), "%s", r->leader_name);
        else
            snprintf(name, sizeof(name), "%.50s:%u", r->leader_host, (unsigned)r->leader_port);
        client_target_set(out, name, r->leader_host, r->leader_port);
        return true;
    }
    int idx = r->leader_name[0] != '\0' ? client_targets_find(&s->targets, r->leader_name, "", 0)
                                          : -1;
    if (idx < 0)
        return false;
    *out = s->targets.v[idx];
    return true;
}

static int copy_reply(const struct proto_client_resp *resp, struct client_reply *out)
{
    out->body = malloc((size_t)resp->body_len + 1);
    if (out->body == NULL)
        return RK_ERR_NOMEM;
    if (resp->body_len > 0)
        memcpy(out->body, resp->body, resp->body_len);
    out->body[resp->body_len] = '\0';
    out->body_len = resp->body_len;
    out->status = resp->status;
    return RK_OK;
}

static int check_request(uint8_t op, const char *key, uint32_t key_len, const char *val,
                         uint32_t val_len, char *err, size_t errlen)
{
    if (op < PROTO_OP_GET || op > PROTO_OP_LAST || op == PROTO_OP_REGISTER) {
        rk_errf(err, errlen, "unknown operation %u", (unsigned)op);
        return RK_ERR_INVAL;
    }
    if ((key == NULL && key_len > 0) || (val == NULL && val_len > 0)) {
        rk_errf(err, errlen, "missing key or value bytes");
        return RK_ERR_INVAL;
    }
    if (key_len > PROTO_MAX_KEY) {
        rk_errf(err, errlen, "key longer than %u bytes", PROTO_MAX_KEY);
        return RK_ERR_TOOBIG;
    }
    if (val_len > PROTO_MAX_VALUE) {
        rk_errf(err, errlen, "value longer than %u bytes", PROTO_MAX_VALUE);
        return RK_ERR_TOOBIG;
    }
    return RK_OK;
}

/* The retry loop: connect (to the current server or where a redirect pointed), send,
 * read; follow a REDIRECT up to SESSION_MAX_HOPS times; otherwise fail over. A kept-open
 * connection that turns out broken is reopened once before failing over (the server may
 * have restarted since the last command). */
static int session_run(struct client_session *s, const struct proto_buf *req,
                       struct call_state *st, struct client_reply *out)
{
    struct client_target next;
    bool have_next = false, reopened = false;
    int hops = 0;
    while ((int64_t)rk_clock_ms() < st->deadline) {
        bool fresh = s->fd < 0;
        if (fresh) {
            const struct client_target *t = have_next ? &next : &s->targets.v[s->current];
            have_next = false;
            if (session_connect(s, t, st->deadline) != RK_OK) {
                hops = 0;
                session_failover(s, st, false);
                continue;
            }
        }
        uint8_t *payload;
        struct proto_client_resp resp;
        int rc = session_exchange(s, req, st, &payload, &resp);
        if (rc != RK_OK) {
            note(s, "%s (%s:%u): %s", s->conn.name, s->conn.host, (unsigned)s->conn.port,
                 rk_strerror(rc));
            session_close(s);
            if (!fresh && !reopened && rc != RK_ERR_TIMEOUT) {
                reopened = true;
                next = s->conn;
                have_next = true;
                continue;
            }
            hops = 0;
            session_failover(s, st, false);
            continue;
        }
        if (resp.status != PROTO_ST_REDIRECT) {
            rc = copy_reply(&resp, out);
            free(payload);
            return rc;
        }
        bool known = redirect_target(s, &resp, &next);
        free(payload);
        if (known && hops < SESSION_MAX_HOPS) {
            hops++;
            note(s, "redirected to leader %s (%s:%u)", next.name, next.host, (unsigned)next.port);
            session_close(s);
            have_next = true;
            continue;
        }
        note(s, "%s (%s:%u): %s", s->conn.name, s->conn.host, (unsigned)s->conn.port,
             known ? "too many redirects" : "no leader known");
        hops = 0;
        session_failover(s, st, true);
    }
    return RK_ERR_TIMEOUT;
}

/* Sends one encoded request through session_run; on failure says why in err. */
static int run_request(struct client_session *s, const struct proto_client_req *r,
                       struct call_state *st, struct client_reply *out, char *err,
                       size_t errlen)
{
    struct proto_buf req = { 0 };
    int rc = proto_encode_client_req(&req, r);
    if (rc != RK_OK) {
        proto_buf_free(&req);
        rk_errf(err, errlen, "cannot encode the request: %s", rk_strerror(rc));
        return rc;
    }
    rc = session_run(s, &req, st, out);
    proto_buf_free(&req);
    if (rc == RK_ERR_TIMEOUT)
        rk_errf(err, errlen, "no leader reachable");
    else if (rc != RK_OK)
        rk_errf(err, errlen, "%s", rk_strerror(rc));
    return rc;
}

/* Takes the client id from a REGISTER reply (VALUE "<id>"). */
static int take_client_id(struct client_session *s, struct client_reply *reply, char *err,
                          size_t errlen)
{
    uint64_t id = 0;
    bool ok = reply->status == PROTO_ST_VALUE &&
              proto_parse_client_id(reply->body, reply->body_len, &id) == RK_OK;
    client_reply_free(reply);
    if (!ok) {
        rk_errf(err, errlen, "bad reply to REGISTER (expected a client id)");
        return RK_ERR_PROTO;
    }
    s->client_id = id;
    s->last_seq = 0;
    note(s, "opened client session %llu", (unsigned long long)id);
    return RK_OK;
}

/* Opens a server-side session (thesis §6.3) with a REGISTER, retried like any command and
 * also after an ERR reply (e.g. a commit timeout): registering twice is harmless, the
 * extra session is never used and expires. RK_OK with s->client_id set, or an error. */
static int session_register(struct client_session *s, struct call_state *st, char *err,
                            size_t errlen)
{
    struct proto_client_req r = { .op = PROTO_OP_REGISTER };
    char reason[256] = "";
    for (;;) { /* bounded by st->deadline: run_request then fails with RK_ERR_TIMEOUT */
        struct client_reply reply;
        int rc = run_request(s, &r, st, &reply, err, errlen);
        if (rc == RK_ERR_TIMEOUT && reason[0] != '\0')
            rk_errf(err, errlen, "no leader reachable (cannot open a client session: %s)",
                    reason);
        if (rc != RK_OK)
            return rc;
        if (reply.status != PROTO_ST_ERR)
            return take_client_id(s, &reply, err, errlen);
        snprintf(reason, sizeof(reason), "%s", reply.body);
        client_reply_free(&reply);
        note(s, "%s (%s:%u): cannot open a client session: %s", s->conn.name, s->conn.host,
             (unsigned)s->conn.port, reason);
        session_failover(s, st, true);
    }
}

/* An ERR "session expired": the command was not applied, and the server has forgotten
 * this session; the next write registers a new one. */
static void forget_expired_session(struct client_session *s, const struct client_reply *r)
{
    if (r->status == PROTO_ST_ERR && strcmp(r->body, PROTO_ERR_SESSION_EXPIRED) == 0) {
        note(s, "client session %llu expired", (unsigned long long)s->client_id);
        s->client_id = 0;
        s->last_seq = 0;
    }
}

/* Adds a target for each line "NAME HOST PORT ROLE" of a MEMBERS reply not yet known. */
static void add_members(struct client_session *s, const char *body)
{
    char name[REGISTRY_NAME_MAX + 1], host[REGISTRY_HOST_MAX + 1];
    unsigned port;
    for (const char *line = body; line != NULL && *line != '\0';) {
        if (sscanf(line, "%63s %255s %u", name, host, &port) == 3 && port > 0 && port < 65536 &&
            client_targets_find(&s->targets, name, host, (uint16_t)port) < 0 &&
            client_targets_add(&s->targets, name, host, (uint16_t)port) == RK_OK) {
            note(s, "learned of member %s (%s:%u)", name, host, port);
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
}

/* Every SESSION_MEMBERS_EVERY_MS at most: asks the leader for the members and adds those
 * it does not know, so that a session outlives every server it knew at its start (Raft
 * thesis §4). Best effort, within a short deadline. */
static void learn_members(struct client_session *s)
{
    uint64_t now = rk_clock_ms();
    if (!s->learn || (s->members_ms != 0 && now - s->members_ms < SESSION_MEMBERS_EVERY_MS))
        return;
    s->members_ms = now;
    struct proto_client_req r = { .op = PROTO_OP_MEMBERS };
    struct call_state st = { .deadline = (int64_t)now + SESSION_ATTEMPT_MIN_MS,
                             .backoff_ms = SESSION_BACKOFF_START_MS };
    struct client_reply reply;
    char err[256];
    if (run_request(s, &r, &st, &reply, err, sizeof(err)) != RK_OK)
        return;
    if (reply.status == PROTO_ST_VALUE)
        add_members(s, reply.body);
    client_reply_free(&reply);
}

void client_session_learn_members(struct client_session *s, bool learn)
{
    s->learn = learn;
}

uint64_t client_session_id(const struct client_session *s)
{
    return s->client_id;
}

int client_session_call(struct client_session *s, uint8_t op, const char *key,
                        uint32_t key_len, const char *val, uint32_t val_len,
                        struct client_reply *out, char *err, size_t errlen)
{
    if (s == NULL || out == NULL) {
        rk_errf(err, errlen, "no session or reply");
        return RK_ERR_INVAL;
    }
    memset(out, 0, sizeof(*out));
    int rc = check_request(op, key, key_len, val, val_len, err, errlen);
    if (rc != RK_OK)
        return rc;
    bool admin = op == PROTO_OP_ADD || op == PROTO_OP_REMOVE || op == PROTO_OP_TRANSFER;
    int timeout = op == PROTO_OP_ADD && s->timeout_ms < SESSION_ADD_TIMEOUT_MS
                      ? SESSION_ADD_TIMEOUT_MS : s->timeout_ms;
    struct call_state st = {
        .deadline = (int64_t)rk_clock_ms() + timeout, .backoff_ms = SESSION_BACKOFF_START_MS,
        .patient = admin,
    };
    struct proto_client_req r = {
        .op = op, .key = key, .key_len = key_len, .val = val, .val_len = val_len,
    };
    bool is_write = proto_op_is_write(op);
    if (is_write && s->client_id == 0) { /* lazily, before the first write */
        rc = session_register(s, &st, err, errlen);
        if (rc != RK_OK)
            return rc;
    }
    if (is_write) { /* numbered in the session; every retry below resends this seq */
        r.client_id = s->client_id;
        r.seq = ++s->last_seq;
    }
    rc = run_request(s, &r, &st, out, err, errlen);
    if (rc == RK_OK && is_write)
        forget_expired_session(s, out);
    if (rc == RK_OK && op != PROTO_OP_MEMBERS)
        learn_members(s);
    return rc;
}
