/* tests/unit_client.c - the client session (client/session.c) and the raft_client program
 * against fake servers: threads in this process that speak the client protocol. Includes
 * the client side of sessions (Raft thesis §6.3): lazy REGISTER, numbered writes, a retry
 * that resends the same seq, and registering anew after "session expired". */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../client/session.h"
#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"
#include "check_main.h"

/* ---- a fake server ------------------------------------------------------------------ */

enum fake_mode {
    FAKE_LEADER,            /* answers everything from a small key-value table */
    FAKE_REDIRECT,          /* REDIRECT to redirect_port for GET/SET/DELETE */
    FAKE_NO_LEADER,         /* REDIRECT with no leader known */
    FAKE_CLOSE_AFTER_REPLY, /* a leader that closes the connection after each reply */
    FAKE_SILENT,            /* reads requests, never answers */
};

#define FAKE_MAX_CONNS 8
#define FAKE_MAX_KEYS 16
#define FAKE_STR 128
#define FAKE_LOG 64
#define FAKE_FIRST_CLIENT_ID 100

/* One request as the fake server received it. */
struct fake_req {
    uint8_t op;
    uint64_t client_id, seq;
};

struct fake_conn {
    int fd;
    bool hello_seen;
    bool watching;     /* got a WATCH: a stream of EVENTS answers (fake_watch_tick) */
    bool cut;          /* the stream is over: close the connection */
    uint64_t cursor;   /* the next revision to send */
    int answers;       /* EVENTS answers sent */
    uint64_t last_ms;  /* when the last one was sent */
};

/* One change in a fake server's history (its WATCH streams send them). */
struct fake_event {
    uint64_t rev;
    uint8_t kind;
    char key[32], val[32];
};

#define FAKE_MAX_EVENTS 32
#define FAKE_MAX_FROMS 16
#define FAKE_HEARTBEAT_MS 200

struct fake_server {
    char name[32];
    enum fake_mode mode;
    uint16_t port;
    uint16_t redirect_port;
    int listen_fd;
    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below */
    bool stop;
    int accepts, requests, bad_frames;
    uint8_t last_op;
    char last_key[FAKE_STR], last_val[FAKE_STR];
    char keys[FAKE_MAX_KEYS][FAKE_STR], vals[FAKE_MAX_KEYS][FAKE_STR];
    bool used[FAKE_MAX_KEYS];
    struct fake_conn conns[FAKE_MAX_CONNS];
    int n_conns;
    struct fake_req log[FAKE_LOG];  /* the first FAKE_LOG requests */
    uint64_t next_client_id;        /* REGISTER answers this, then counts up */
    int drop_writes;                /* close without replying to this many SET/DELETEs */
    int expire_writes;              /* answer this many SET/DELETEs "session expired" */
    int fail_registers;             /* answer this many REGISTERs with an ERR */
    /* WATCH: the history, and how the streams behave */
    struct fake_event events[FAKE_MAX_EVENTS];
    int n_events;
    uint64_t head;                  /* the progress: the last revision applied */
    uint64_t oldest;                /* a FROM below it is answered "compacted" (0: none) */
    uint64_t replay_from;           /* !0: streams start here whatever the FROM (dups) */
    int close_after;                /* !0: close a stream after this many answers */
    int silent_after;               /* !0: send nothing more after this many answers */
    int behind_after;               /* !0: after this many answers, "fell behind at rev" */
    uint64_t behind_rev;            /* ... this one */
    char watch_err[FAKE_STR];       /* !"": answer every WATCH with this ERR */
    uint64_t froms[FAKE_MAX_FROMS]; /* the FROM of each WATCH (0: none) */
    int n_watches;
};

static void copy_str(char *dst, const char *src, uint32_t len)
{
    uint32_t n = len < FAKE_STR - 1 ? len : FAKE_STR - 1;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static int fake_find(struct fake_server *f, const char *key)
{
    for (int i = 0; i < FAKE_MAX_KEYS; i++)
        if (f->used[i] && strcmp(f->keys[i], key) == 0)
            return i;
    return -1;
}

/* The leader's answer to req (called with f->mu held). */
static void fake_leader_answer(struct fake_server *f, const struct proto_client_req *req,
                               struct proto_client_resp *resp, char *body)
{
    char key[FAKE_STR];
    copy_str(key, req->key, req->key_len);
    int i = fake_find(f, key);
    resp->status = PROTO_ST_OK;
    if (req->op == PROTO_OP_GET && i >= 0) {
        resp->status = PROTO_ST_VALUE;
        strcpy(body, f->vals[i]);
    } else if (req->op == PROTO_OP_GET || (req->op == PROTO_OP_DELETE && i < 0)) {
        resp->status = PROTO_ST_NIL;
    } else if (req->op == PROTO_OP_DELETE) {
        f->used[i] = false;
    } else if (req->op == PROTO_OP_SET) {
        for (int j = 0; i < 0 && j < FAKE_MAX_KEYS; j++)
            if (!f->used[j])
                i = j;
        if (i < 0) {
            resp->status = PROTO_ST_ERR;
            strcpy(body, "fake server full");
            return;
        }
        f->used[i] = true;
        strcpy(f->keys[i], key);
        copy_str(f->vals[i], req->val, req->val_len);
    }
}

static bool is_write(uint8_t op)
{
    return op == PROTO_OP_SET || op == PROTO_OP_DELETE;
}

/* The leader's session answers (called with f->mu held): true if it answered. */
static bool fake_session_answer(struct fake_server *f, const struct proto_client_req *req,
                                struct proto_client_resp *resp, char *body)
{
    if (req->op == PROTO_OP_REGISTER && f->fail_registers > 0) {
        f->fail_registers--;
        resp->status = PROTO_ST_ERR;
        strcpy(body, "timed out waiting for commit, outcome unknown");
        return true;
    }
    if (req->op == PROTO_OP_REGISTER) {
        resp->status = PROTO_ST_VALUE;
        snprintf(body, FAKE_STR, "%llu", (unsigned long long)f->next_client_id++);
        return true;
    }
    if (is_write(req->op) && f->expire_writes > 0) {
        f->expire_writes--;
        resp->status = PROTO_ST_ERR;
        strcpy(body, PROTO_ERR_SESSION_EXPIRED);
        return true;
    }
    return false;
}

/* Builds the answer to one request (called with f->mu held). */
static void fake_answer(struct fake_server *f, const struct proto_client_req *req,
                        struct proto_client_resp *resp, char *body)
{
    memset(resp, 0, sizeof(*resp));
    body[0] = '\0';
    bool leader = f->mode == FAKE_LEADER || f->mode == FAKE_CLOSE_AFTER_REPLY;
    if (req->op == PROTO_OP_STATUS) {
        resp->status = PROTO_ST_VALUE;
        snprintf(body, FAKE_STR, "name=%s role=%s term=1 leader=%s commit=0 applied=0 last=0",
                 f->name, leader ? "leader" : "follower", leader ? f->name : "none");
    } else if (leader) {
        if (!fake_session_answer(f, req, resp, body))
            fake_leader_answer(f, req, resp, body);
    } else {
        resp->status = PROTO_ST_REDIRECT;
        if (f->mode == FAKE_REDIRECT) {
            strcpy(resp->leader_name, "fakeleader");
            strcpy(resp->leader_host, "127.0.0.1");
            resp->leader_port = f->redirect_port;
        }
    }
    resp->body = body;
    resp->body_len = (uint32_t)strlen(body);
}

/* Sends one CLIENT_RESP with this status and body on c; false if it failed. */
static bool fake_send(struct fake_conn *c, uint8_t status, const char *body, uint32_t len)
{
    struct proto_client_resp resp = { .status = status, .body = body, .body_len = len };
    struct proto_buf out = { 0 };
    bool ok = proto_encode_client_resp(&out, &resp) == RK_OK &&
              net_write_full(c->fd, out.data, out.len) == RK_OK;
    proto_buf_free(&out);
    return ok;
}

/* The ERR that ends c's stream: text, then the number n unless it is 0. */
static void fake_send_err(struct fake_conn *c, const char *text, uint64_t n)
{
    char body[FAKE_STR];
    if (n != 0)
        snprintf(body, sizeof(body), "%s%llu", text, (unsigned long long)n);
    else
        snprintf(body, sizeof(body), "%s", text);
    fake_send(c, PROTO_ST_ERR, body, (uint32_t)strlen(body));
    c->cut = true;
}

/* A WATCH on c (called with f->mu held): logs its FROM, refuses it (watch_err, or a FROM
 * below oldest), or starts the stream (at FROM, or after head; at replay_from if set). */
static void fake_watch_start(struct fake_server *f, struct fake_conn *c,
                             const struct proto_client_req *req)
{
    uint64_t from = 0;
    ck_assert_int_eq(proto_parse_watch(req->val, req->val_len, &from), RK_OK);
    if (f->n_watches < FAKE_MAX_FROMS)
        f->froms[f->n_watches] = from;
    f->n_watches++;
    if (f->watch_err[0] != '\0') {
        fake_send_err(c, f->watch_err, 0);
    } else if (from != 0 && from < f->oldest) {
        fake_send_err(c, PROTO_ERR_COMPACTED, f->oldest);
    } else {
        c->watching = true;
        c->cursor = from != 0 ? from : f->head + 1;
        if (f->replay_from != 0)
            c->cursor = f->replay_from;
        c->last_ms = 0; /* the first answer at once */
    }
}

/* The next answer of c's stream (called with f->mu held): the events of the next
 * revision in the history (progress: that revision, or head after the last), or a
 * heartbeat; then the scripted cut (close, silence, fell behind). */
static void fake_watch_tick(struct fake_server *f, struct fake_conn *c)
{
    uint64_t now = rk_clock_ms(), rev = 0;
    if (!c->watching || c->cut || (f->silent_after != 0 && c->answers >= f->silent_after))
        return;
    for (int i = 0; i < f->n_events; i++)
        if (f->events[i].rev >= c->cursor && f->events[i].rev <= f->head &&
            (rev == 0 || f->events[i].rev < rev))
            rev = f->events[i].rev;
    if (rev == 0 && c->last_ms != 0 && now - c->last_ms < FAKE_HEARTBEAT_MS)
        return;
    struct proto_buf b = { 0 };
    bool later = false;
    for (int i = 0; i < f->n_events; i++)
        later = later || (f->events[i].rev > rev && f->events[i].rev <= f->head);
    ck_assert_int_eq(proto_events_begin(&b, rev != 0 && later ? rev : f->head), RK_OK);
    for (int i = 0; rev != 0 && i < f->n_events; i++) {
        const struct fake_event *e = &f->events[i];
        struct proto_event ev = { .rev = e->rev, .kind = e->kind, .key = e->key,
                                  .key_len = (uint32_t)strlen(e->key), .val = e->val,
                                  .val_len = (uint32_t)strlen(e->val) };
        if (e->rev == rev) {
            ck_assert_int_eq(proto_events_add(&b, &ev), RK_OK);
        }
    }
    c->cursor = rev != 0 ? rev + 1 : f->head + 1 > c->cursor ? f->head + 1 : c->cursor;
    c->cut = !fake_send(c, PROTO_ST_EVENTS, (const char *)b.data, (uint32_t)b.len);
    proto_buf_free(&b);
    c->answers++;
    c->last_ms = now;
    if (f->close_after != 0 && c->answers >= f->close_after)
        c->cut = true;
    if (f->behind_after != 0 && c->answers >= f->behind_after)
        fake_send_err(c, PROTO_ERR_FELL_BEHIND, f->behind_rev);
}

/* Handles one frame from connection c. Returns false when the connection is to close. */
static bool fake_handle_frame(struct fake_server *f, struct fake_conn *c)
{
    uint8_t *payload = NULL;
    size_t len = 0;
    if (net_read_frame(c->fd, PROTO_MAX_FRAME, &payload, &len) != RK_OK)
        return false;
    int type = 0;
    char name[64];
    struct proto_client_req req;
    bool keep = true;
    pthread_mutex_lock(&f->mu);
    if (!c->hello_seen) {
        c->hello_seen = proto_decode_hello(payload, len, &type, name) == RK_OK &&
                        type == PROTO_HELLO_CLIENT;
        f->bad_frames += c->hello_seen ? 0 : 1;
        keep = c->hello_seen;
    } else if (proto_decode_client_req(payload, len, &req) != RK_OK) {
        f->bad_frames++;
        keep = false;
    } else {
        if (f->requests < FAKE_LOG)
            f->log[f->requests] = (struct fake_req){ req.op, req.client_id, req.seq };
        f->requests++;
        f->last_op = req.op;
        copy_str(f->last_key, req.key, req.key_len);
        copy_str(f->last_val, req.val, req.val_len);
        if (req.op == PROTO_OP_WATCH) {
            fake_watch_start(f, c, &req);
        } else if (is_write(req.op) && f->drop_writes > 0) { /* a lost reply */
            f->drop_writes--;
            keep = false;
        } else if (f->mode != FAKE_SILENT) {
            struct proto_client_resp resp;
            char body[FAKE_STR];
            struct proto_buf out = { 0 };
            fake_answer(f, &req, &resp, body);
            keep = proto_encode_client_resp(&out, &resp) == RK_OK &&
                   net_write_full(c->fd, out.data, out.len) == RK_OK &&
                   f->mode != FAKE_CLOSE_AFTER_REPLY;
            proto_buf_free(&out);
        }
    }
    pthread_mutex_unlock(&f->mu);
    free(payload);
    return keep;
}

static void fake_accept(struct fake_server *f)
{
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0)
        return;
    pthread_mutex_lock(&f->mu);
    f->accepts++;
    if (f->n_conns < FAKE_MAX_CONNS) {
        f->conns[f->n_conns++] = (struct fake_conn){ .fd = fd, .hello_seen = false };
        fd = -1;
    }
    pthread_mutex_unlock(&f->mu);
    if (fd >= 0)
        close(fd);
}

static void fake_drop_conn(struct fake_server *f, int i)
{
    pthread_mutex_lock(&f->mu);
    close(f->conns[i].fd);
    f->conns[i] = f->conns[--f->n_conns];
    pthread_mutex_unlock(&f->mu);
}

/* The server thread: polls the listener and every connection, 20 ms at a time, until stop. */
static void *fake_main(void *arg)
{
    struct fake_server *f = arg;
    for (;;) {
        struct pollfd pfd[FAKE_MAX_CONNS + 1];
        pthread_mutex_lock(&f->mu);
        bool stop = f->stop;
        int n = f->n_conns;
        for (int i = 0; i < n; i++)
            pfd[i + 1] = (struct pollfd){ .fd = f->conns[i].fd, .events = POLLIN };
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        pfd[0] = (struct pollfd){ .fd = f->listen_fd, .events = POLLIN };
        if (poll(pfd, (nfds_t)n + 1, 20) > 0) {
            for (int i = n - 1; i >= 0; i--) /* backwards: removal moves the last one in */
                if (pfd[i + 1].revents != 0 && !fake_handle_frame(f, &f->conns[i]))
                    fake_drop_conn(f, i);
            if (pfd[0].revents != 0)
                fake_accept(f);
        }
        pthread_mutex_lock(&f->mu);
        for (int i = f->n_conns - 1; i >= 0; i--) {
            fake_watch_tick(f, &f->conns[i]);
            if (f->conns[i].cut) {
                close(f->conns[i].fd);
                f->conns[i] = f->conns[--f->n_conns];
            }
        }
        pthread_mutex_unlock(&f->mu);
    }
    return NULL;
}

static struct fake_server *fake_start(const char *name, enum fake_mode mode,
                                      uint16_t redirect_port)
{
    struct fake_server *f = calloc(1, sizeof(*f));
    ck_assert_ptr_nonnull(f);
    char err[256];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->mode = mode;
    f->redirect_port = redirect_port;
    f->next_client_id = FAKE_FIRST_CLIENT_ID;
    f->listen_fd = net_listen("127.0.0.1", 0, 16, err, sizeof(err));
    ck_assert_msg(f->listen_fd >= 0, "listen: %s", err);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(f->listen_fd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    pthread_mutex_init(&f->mu, NULL);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(struct fake_server *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < f->n_conns; i++)
        close(f->conns[i].fd);
    close(f->listen_fd);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* A counter of f, read under its mutex. */
static int fake_count(struct fake_server *f, const int *counter)
{
    pthread_mutex_lock(&f->mu);
    int v = *counter;
    pthread_mutex_unlock(&f->mu);
    return v;
}

#define FAKE_COUNT(f, field) fake_count((f), &(f)->field)

/* ---- helpers ------------------------------------------------------------------------ */

/* The scratch directory of the running test case (made and removed by the parent). */
static char scratch_dir[64];

static void scratch_setup(void)
{
    snprintf(scratch_dir, sizeof(scratch_dir), "/tmp/rk_unit_client_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(scratch_dir));
}

static void scratch_teardown(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/server_registry.txt", scratch_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/stderr.txt", scratch_dir); /* the watch tests' */
    unlink(path);
    rmdir(scratch_dir);
}

static void write_registry(const struct fake_server *const *servers, int n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/server_registry.txt", scratch_dir);
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    for (int i = 0; i < n; i++)
        fprintf(fp, "%s 127.0.0.1 %u\n", servers[i]->name, (unsigned)servers[i]->port);
    ck_assert_int_eq(fclose(fp), 0);
}

static const char *registry_path(void)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/server_registry.txt", scratch_dir);
    return path;
}

/* A port nothing listens on: bound, then closed. */
static uint16_t closed_port(void)
{
    char err[256];
    int fd = net_listen("127.0.0.1", 0, 1, err, sizeof(err));
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static struct client_session *session_to(uint16_t port, const char *reg, int timeout_ms)
{
    char err[256] = "";
    struct client_session *s = client_session_new(port ? "127.0.0.1" : NULL, port, reg,
                                                  timeout_ms, false, err, sizeof(err));
    ck_assert_msg(s != NULL, "client_session_new: %s", err);
    return s;
}

/* Runs one call; checks it returns RK_OK with this status and body (NULL: any body). */
static void call_expect(struct client_session *s, uint8_t op, const char *key, const char *val,
                        uint8_t status, const char *body)
{
    struct client_reply r;
    char err[256] = "";
    int rc = client_session_call(s, op, key, key ? (uint32_t)strlen(key) : 0, val,
                                 val ? (uint32_t)strlen(val) : 0, &r, err, sizeof(err));
    ck_assert_msg(rc == RK_OK, "call op %u: %s (%s)", (unsigned)op, rk_strerror(rc), err);
    ck_assert_uint_eq(r.status, status);
    ck_assert_uint_eq(r.body_len, strlen(r.body));
    if (body != NULL)
        ck_assert_str_eq(r.body, body);
    client_reply_free(&r);
}

/* ---- session tests ------------------------------------------------------------------ */

START_TEST(test_redirect_followed_and_connection_kept)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    struct fake_server *follower = fake_start("follower", FAKE_REDIRECT, leader->port);
    struct client_session *s = session_to(follower->port, NULL, 2000);
    call_expect(s, PROTO_OP_SET, "k", "v 1", PROTO_ST_OK, "");
    call_expect(s, PROTO_OP_GET, "k", NULL, PROTO_ST_VALUE, "v 1");
    call_expect(s, PROTO_OP_DELETE, "k", NULL, PROTO_ST_OK, NULL);
    call_expect(s, PROTO_OP_DELETE, "k", NULL, PROTO_ST_NIL, NULL);
    ck_assert_int_eq(FAKE_COUNT(follower, requests), 1); /* the REGISTER, redirected */
    ck_assert_int_eq(FAKE_COUNT(leader, requests), 5);   /* REGISTER + 4 */
    ck_assert_int_eq(FAKE_COUNT(leader, accepts), 1); /* one kept-open connection */
    ck_assert_int_eq(FAKE_COUNT(leader, bad_frames), 0);
    ck_assert_int_eq(FAKE_COUNT(follower, bad_frames), 0);
    client_session_free(s);
    fake_stop(follower);
    fake_stop(leader);
}
END_TEST

START_TEST(test_request_bytes_reach_the_server)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    struct client_session *s = session_to(leader->port, NULL, 2000);
    call_expect(s, PROTO_OP_SET, "some key", "a value", PROTO_ST_OK, NULL);
    pthread_mutex_lock(&leader->mu);
    ck_assert_uint_eq(leader->last_op, PROTO_OP_SET);
    ck_assert_str_eq(leader->last_key, "some key");
    ck_assert_str_eq(leader->last_val, "a value");
    pthread_mutex_unlock(&leader->mu);
    client_session_free(s);
    fake_stop(leader);
}
END_TEST

START_TEST(test_status_is_not_redirected)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    struct fake_server *follower = fake_start("follower", FAKE_REDIRECT, leader->port);
    struct client_session *s = session_to(follower->port, NULL, 2000);
    call_expect(s, PROTO_OP_STATUS, NULL, NULL, PROTO_ST_VALUE,
                "name=follower role=follower term=1 leader=none commit=0 applied=0 last=0");
    ck_assert_int_eq(FAKE_COUNT(leader, accepts), 0);
    client_session_free(s);
    fake_stop(follower);
    fake_stop(leader);
}
END_TEST

START_TEST(test_no_leader_known_tries_next_server)
{
    struct fake_server *none = fake_start("none", FAKE_NO_LEADER, 0);
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    const struct fake_server *list[] = { none, leader };
    write_registry(list, 2);
    struct client_session *s = session_to(0, registry_path(), 2000);
    call_expect(s, PROTO_OP_GET, "missing", NULL, PROTO_ST_NIL, "");
    ck_assert_int_eq(FAKE_COUNT(none, requests), 1);
    ck_assert_int_eq(FAKE_COUNT(leader, requests), 1);
    client_session_free(s);
    fake_stop(leader);
    fake_stop(none);
}
END_TEST

START_TEST(test_dead_first_server_falls_back_on_registry)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    const struct fake_server *list[] = { leader };
    write_registry(list, 1);
    struct client_session *s = session_to(closed_port(), registry_path(), 2000);
    uint64_t t0 = rk_clock_ms();
    call_expect(s, PROTO_OP_SET, "k", "v", PROTO_ST_OK, NULL);
    ck_assert_int_lt(rk_clock_ms() - t0, 1000); /* a refused connect moves on at once */
    client_session_free(s);
    fake_stop(leader);
}
END_TEST

START_TEST(test_closed_port_times_out)
{
    struct client_session *s = session_to(closed_port(), NULL, 300);
    struct client_reply r;
    char err[256] = "";
    uint64_t t0 = rk_clock_ms();
    int rc = client_session_call(s, PROTO_OP_GET, "k", 1, NULL, 0, &r, err, sizeof(err));
    uint64_t took = rk_clock_ms() - t0;
    ck_assert_int_eq(rc, RK_ERR_TIMEOUT);
    ck_assert_str_eq(err, "no leader reachable");
    ck_assert_int_ge(took, 290);
    ck_assert_int_lt(took, 1500);
    client_session_free(s);
}
END_TEST

START_TEST(test_redirect_loop_is_bounded)
{
    struct fake_server *a = fake_start("a", FAKE_REDIRECT, 0);
    struct fake_server *b = fake_start("b", FAKE_REDIRECT, a->port);
    pthread_mutex_lock(&a->mu);
    a->redirect_port = b->port;
    pthread_mutex_unlock(&a->mu);
    struct client_session *s = session_to(a->port, NULL, 400);
    struct client_reply r;
    char err[256] = "";
    uint64_t t0 = rk_clock_ms();
    int rc = client_session_call(s, PROTO_OP_SET, "k", 1, "v", 1, &r, err, sizeof(err));
    ck_assert_int_eq(rc, RK_ERR_TIMEOUT);
    ck_assert_str_eq(err, "no leader reachable");
    ck_assert_int_lt(rk_clock_ms() - t0, 1500);
    /* hops are capped per attempt and attempts back off: few requests, not thousands */
    int total = FAKE_COUNT(a, requests) + FAKE_COUNT(b, requests);
    ck_assert_int_ge(total, 2);
    ck_assert_int_le(total, 40);
    client_session_free(s);
    fake_stop(b);
    fake_stop(a);
}
END_TEST

START_TEST(test_reconnects_after_server_closes)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_CLOSE_AFTER_REPLY, 0);
    struct client_session *s = session_to(leader->port, NULL, 2000);
    call_expect(s, PROTO_OP_SET, "k", "v", PROTO_ST_OK, NULL);
    call_expect(s, PROTO_OP_GET, "k", NULL, PROTO_ST_VALUE, "v");
    call_expect(s, PROTO_OP_GET, "k", NULL, PROTO_ST_VALUE, "v");
    ck_assert_int_eq(FAKE_COUNT(leader, requests), 4); /* REGISTER, SET, GET, GET */
    ck_assert_int_eq(FAKE_COUNT(leader, accepts), 4);
    client_session_free(s);
    fake_stop(leader);
}
END_TEST

START_TEST(test_silent_server_does_not_use_the_whole_timeout)
{
    struct fake_server *silent = fake_start("silent", FAKE_SILENT, 0);
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    const struct fake_server *list[] = { silent, leader };
    write_registry(list, 2);
    struct client_session *s = session_to(0, registry_path(), 3000);
    uint64_t t0 = rk_clock_ms();
    call_expect(s, PROTO_OP_SET, "k", "v", PROTO_ST_OK, NULL);
    uint64_t took = rk_clock_ms() - t0;
    ck_assert_int_ge(took, 900);  /* waited on the silent one ... */
    ck_assert_int_lt(took, 2500); /* ... but not for the whole 3 s */
    ck_assert_int_eq(FAKE_COUNT(silent, requests), 1); /* the REGISTER */
    client_session_free(s);
    fake_stop(leader);
    fake_stop(silent);
}
END_TEST

START_TEST(test_new_needs_a_server)
{
    char err[256] = "";
    struct client_session *s =
        client_session_new(NULL, 0, "/nonexistent/server_registry.txt", 1000, false, err,
                           sizeof(err));
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/server_registry.txt"));
    s = client_session_new(NULL, 0, NULL, 1000, false, err, sizeof(err));
    ck_assert_ptr_null(s);
    /* with a host, a missing registry is no error */
    s = client_session_new("127.0.0.1", 1234, "/nonexistent/server_registry.txt", 1000, false,
                           err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    client_session_free(s);
}
END_TEST

START_TEST(test_rejects_oversized_requests_locally)
{
    struct client_session *s = session_to(closed_port(), NULL, 1000);
    size_t big = PROTO_MAX_VALUE + 1;
    char *buf = calloc(1, big);
    ck_assert_ptr_nonnull(buf);
    struct client_reply r;
    char err[256] = "";
    uint64_t t0 = rk_clock_ms();
    int rc = client_session_call(s, PROTO_OP_GET, buf, PROTO_MAX_KEY + 1, NULL, 0, &r, err,
                                 sizeof(err));
    ck_assert_int_eq(rc, RK_ERR_TOOBIG);
    rc = client_session_call(s, PROTO_OP_SET, "k", 1, buf, (uint32_t)big, &r, err, sizeof(err));
    ck_assert_int_eq(rc, RK_ERR_TOOBIG);
    rc = client_session_call(s, 99, "k", 1, NULL, 0, &r, err, sizeof(err));
    ck_assert_int_eq(rc, RK_ERR_INVAL);
    ck_assert_int_lt(rk_clock_ms() - t0, 200); /* no network retries for any of these */
    free(buf);
    client_session_free(s);
}
END_TEST

/* ---- client sessions (Raft thesis §6.3) ------------------------------------------ */

/* Request number i as the fake server logged it. */
static struct fake_req fake_logged(struct fake_server *f, int i)
{
    pthread_mutex_lock(&f->mu);
    ck_assert_int_lt(i, f->requests);
    struct fake_req r = f->log[i];
    pthread_mutex_unlock(&f->mu);
    return r;
}

static void assert_logged(struct fake_server *f, int i, uint8_t op, uint64_t client_id,
                          uint64_t seq)
{
    struct fake_req r = fake_logged(f, i);
    ck_assert_msg(r.op == op && r.client_id == client_id && r.seq == seq,
                  "request %d: op %u client %llu seq %llu, want op %u client %llu seq %llu", i,
                  (unsigned)r.op, (unsigned long long)r.client_id, (unsigned long long)r.seq,
                  (unsigned)op, (unsigned long long)client_id, (unsigned long long)seq);
}

START_TEST(test_session_registers_lazily_and_numbers_writes)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    struct client_session *s = session_to(leader->port, NULL, 2000);
    call_expect(s, PROTO_OP_GET, "k", NULL, PROTO_ST_NIL, NULL); /* reads need no session */
    call_expect(s, PROTO_OP_STATUS, NULL, NULL, PROTO_ST_VALUE, NULL);
    ck_assert_uint_eq(client_session_id(s), 0);
    call_expect(s, PROTO_OP_SET, "k", "v", PROTO_ST_OK, NULL);
    ck_assert_uint_eq(client_session_id(s), FAKE_FIRST_CLIENT_ID);
    call_expect(s, PROTO_OP_GET, "k", NULL, PROTO_ST_VALUE, "v");
    call_expect(s, PROTO_OP_DELETE, "k", NULL, PROTO_ST_OK, NULL);
    call_expect(s, PROTO_OP_SET, "k", "w", PROTO_ST_OK, NULL);
    ck_assert_int_eq(FAKE_COUNT(leader, requests), 7);
    uint64_t id = FAKE_FIRST_CLIENT_ID;
    assert_logged(leader, 0, PROTO_OP_GET, 0, 0);
    assert_logged(leader, 1, PROTO_OP_STATUS, 0, 0);
    assert_logged(leader, 2, PROTO_OP_REGISTER, 0, 0);
    assert_logged(leader, 3, PROTO_OP_SET, id, 1);
    assert_logged(leader, 4, PROTO_OP_GET, 0, 0);
    assert_logged(leader, 5, PROTO_OP_DELETE, id, 2);
    assert_logged(leader, 6, PROTO_OP_SET, id, 3);
    client_session_free(s);
    fake_stop(leader);
}
END_TEST

/* The leader closes the connection instead of replying to a write (its reply was lost):
 * the session retries with the same seq, so the cluster can tell it is a duplicate. */
START_TEST(test_retry_after_lost_reply_reuses_seq)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    struct client_session *s = session_to(leader->port, NULL, 2000);
    call_expect(s, PROTO_OP_SET, "k", "v1", PROTO_ST_OK, NULL);
    pthread_mutex_lock(&leader->mu);
    leader->drop_writes = 1;
    pthread_mutex_unlock(&leader->mu);
    call_expect(s, PROTO_OP_DELETE, "k", NULL, PROTO_ST_OK, NULL);
    pthread_mutex_lock(&leader->mu);
    leader->drop_writes = 2; /* twice in a row, the second time after a reconnect */
    pthread_mutex_unlock(&leader->mu);
    call_expect(s, PROTO_OP_SET, "k", "v2", PROTO_ST_OK, NULL);
    call_expect(s, PROTO_OP_SET, "k", "v3", PROTO_ST_OK, NULL);
    uint64_t id = FAKE_FIRST_CLIENT_ID;
    ck_assert_int_eq(FAKE_COUNT(leader, requests), 8);
    assert_logged(leader, 0, PROTO_OP_REGISTER, 0, 0);
    assert_logged(leader, 1, PROTO_OP_SET, id, 1);
    assert_logged(leader, 2, PROTO_OP_DELETE, id, 2); /* dropped */
    assert_logged(leader, 3, PROTO_OP_DELETE, id, 2); /* the retry: same seq */
    assert_logged(leader, 4, PROTO_OP_SET, id, 3);
    assert_logged(leader, 5, PROTO_OP_SET, id, 3);
    assert_logged(leader, 6, PROTO_OP_SET, id, 3);
    assert_logged(leader, 7, PROTO_OP_SET, id, 4);    /* the next command moves on */
    client_session_free(s);
    fake_stop(leader);
}
END_TEST

START_TEST(test_session_expired_then_registers_anew)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    struct client_session *s = session_to(leader->port, NULL, 2000);
    call_expect(s, PROTO_OP_SET, "k", "v1", PROTO_ST_OK, NULL);
    pthread_mutex_lock(&leader->mu);
    leader->expire_writes = 1;
    pthread_mutex_unlock(&leader->mu);
    call_expect(s, PROTO_OP_SET, "k", "v2", PROTO_ST_ERR, PROTO_ERR_SESSION_EXPIRED);
    ck_assert_uint_eq(client_session_id(s), 0);
    call_expect(s, PROTO_OP_DELETE, "k", NULL, PROTO_ST_OK, NULL);
    ck_assert_uint_eq(client_session_id(s), FAKE_FIRST_CLIENT_ID + 1);
    ck_assert_int_eq(FAKE_COUNT(leader, requests), 5);
    assert_logged(leader, 0, PROTO_OP_REGISTER, 0, 0);
    assert_logged(leader, 1, PROTO_OP_SET, FAKE_FIRST_CLIENT_ID, 1);
    assert_logged(leader, 2, PROTO_OP_SET, FAKE_FIRST_CLIENT_ID, 2); /* expired */
    assert_logged(leader, 3, PROTO_OP_REGISTER, 0, 0);
    assert_logged(leader, 4, PROTO_OP_DELETE, FAKE_FIRST_CLIENT_ID + 1, 1);
    client_session_free(s);
    fake_stop(leader);
}
END_TEST

/* A REGISTER that gets an ERR (e.g. a commit timeout) is tried again, within the same
 * timeout; one that never succeeds ends in a timeout that says why. */
START_TEST(test_register_error_is_retried)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    pthread_mutex_lock(&leader->mu);
    leader->fail_registers = 2;
    pthread_mutex_unlock(&leader->mu);
    struct client_session *s = session_to(leader->port, NULL, 2000);
    call_expect(s, PROTO_OP_SET, "k", "v", PROTO_ST_OK, NULL);
    ck_assert_int_eq(FAKE_COUNT(leader, requests), 4);
    assert_logged(leader, 2, PROTO_OP_REGISTER, 0, 0);
    assert_logged(leader, 3, PROTO_OP_SET, FAKE_FIRST_CLIENT_ID, 1);
    client_session_free(s);

    pthread_mutex_lock(&leader->mu);
    leader->fail_registers = 1000;
    pthread_mutex_unlock(&leader->mu);
    s = session_to(leader->port, NULL, 400);
    struct client_reply r;
    char err[256] = "";
    uint64_t t0 = rk_clock_ms();
    int rc = client_session_call(s, PROTO_OP_SET, "k", 1, "v", 1, &r, err, sizeof(err));
    ck_assert_int_eq(rc, RK_ERR_TIMEOUT);
    ck_assert_str_eq(err, "no leader reachable (cannot open a client session: timed out "
                          "waiting for commit, outcome unknown)");
    ck_assert_int_lt(rk_clock_ms() - t0, 1500);
    ck_assert_int_le(FAKE_COUNT(leader, requests), 4 + 20); /* with backoff, not a spin */
    ck_assert_uint_eq(client_session_id(s), 0);
    client_session_free(s);
    fake_stop(leader);
}
END_TEST

/* ---- raft_client program tests ------------------------------------------------------ */

static const char *client_bin(void)
{
    const char *bin = getenv("RK_CLIENT_BIN");
    if (bin == NULL || bin[0] == '\0')
        bin = "./client/raft_client";
    ck_assert_msg(access(bin, X_OK) == 0, "%s is not built (make, or set RK_CLIENT_BIN)", bin);
    return bin;
}

/* Runs "sh -c cmd" and returns its stdout (malloc'ed) and exit code. */
static char *run_shell(const char *cmd, int *exit_code)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    size_t n;
    while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            out = realloc(out, cap);
            ck_assert_ptr_nonnull(out);
        }
    }
    out[len] = '\0';
    int st = pclose(p);
    *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

/* Runs raft_client with args (stderr dropped), stdin from the shell text input (NULL:
 * /dev/null); checks the exact stdout and the exit code. */
static void client_expect(const char *input, const char *args, const char *want_out,
                          int want_exit)
{
    char cmd[2048];
    if (input != NULL)
        snprintf(cmd, sizeof(cmd), "printf '%s' | %s %s 2>/dev/null", input, client_bin(), args);
    else
        snprintf(cmd, sizeof(cmd), "%s %s </dev/null 2>/dev/null", client_bin(), args);
    int code = -1;
    char *out = run_shell(cmd, &code);
    ck_assert_msg(strcmp(out, want_out) == 0, "'%s': stdout '%s', want '%s'", cmd, out,
                  want_out);
    ck_assert_msg(code == want_exit, "'%s': exit %d, want %d", cmd, code, want_exit);
    free(out);
}

/* "127.0.0.1 PORT --dir SCRATCH --timeout 2 " + rest */
static const char *args_for(uint16_t port, const char *rest)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf), "127.0.0.1 %u --dir %s --timeout 2 %s", (unsigned)port,
             scratch_dir, rest);
    return buf;
}

START_TEST(test_program_set_get_delete)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    client_expect(NULL, args_for(leader->port, "set k hello world"), "OK\n", 0);
    client_expect(NULL, args_for(leader->port, "get k"), "hello world\n", 0);
    client_expect(NULL, args_for(leader->port, "delete k"), "OK\n", 0);
    client_expect(NULL, args_for(leader->port, "delete k"), "(nil)\n", 0);
    client_expect(NULL, args_for(leader->port, "get k"), "(nil)\n", 0);
    fake_stop(leader);
}
END_TEST

START_TEST(test_program_stdin_one_line_per_command)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    struct fake_server *follower = fake_start("follower", FAKE_REDIRECT, leader->port);
    client_expect("set a one two  three\\n\\n   \\nget a\\nget nope\\n",
                  args_for(follower->port, ""), "OK\none two  three\n(nil)\n", 0);
    client_expect("help\\nfoo\\nset k\\nget\\n", args_for(follower->port, ""),
                  "commands: set KEY VALUE | get KEY | delete KEY | status | rev KEY | "
                  "cas KEY REV VALUE | cas --ttl SECONDS KEY REV VALUE | cad KEY REV | "
                  "scan PREFIX [LIMIT [AFTER]] | watch PREFIX [--from REV] | "
                  "setex KEY SECONDS VALUE | expire KEY SECONDS | ttl KEY | "
                  "add [--learner] NAME HOST PORT | remove [--force] NAME | members | "
                  "transfer [NAME] | help | quit\n"
                  "ERR unknown command 'foo' (try help)\n"
                  "ERR usage: set KEY VALUE\n"
                  "ERR usage: get KEY\n",
                  0);
    client_expect("get a\\nquit\\nget a\\n", args_for(follower->port, ""), "one two  three\n",
                  0);
    /* the fake leader holds 16 keys: the 17th set gets its ERR body */
    char input[512] = "delete a\\n", want[256] = "OK\n";
    for (int i = 0; i < 16; i++) {
        snprintf(input + strlen(input), sizeof(input) - strlen(input), "set k%d v\\n", i);
        strcat(want, "OK\n");
    }
    strcat(input, "set k16 v\\n");
    strcat(want, "ERR fake server full\n");
    client_expect(input, args_for(follower->port, ""), want, 0);
    ck_assert_int_eq(FAKE_COUNT(leader, bad_frames), 0);
    fake_stop(follower);
    fake_stop(leader);
}
END_TEST

START_TEST(test_program_no_leader_reachable)
{
    char args[256];
    snprintf(args, sizeof(args), "127.0.0.1 %u --dir %s --timeout 0.5 get k",
             (unsigned)closed_port(), scratch_dir);
    uint64_t t0 = rk_clock_ms();
    client_expect(NULL, args, "ERR no leader reachable\n", 1);
    ck_assert_int_lt(rk_clock_ms() - t0, 3000);
}
END_TEST

START_TEST(test_program_errors_and_usage)
{
    client_expect(NULL, args_for(1, "foo"), "ERR unknown command 'foo' (try help)\n", 1);
    client_expect(NULL, args_for(1, "set k"), "ERR usage: set KEY VALUE\n", 1);
    client_expect(NULL, args_for(1, "get a b"), "ERR usage: get KEY\n", 1);
    client_expect(NULL, "--bogus get k", "", 2);
    client_expect(NULL, "--timeout -1 get k", "", 2);
    client_expect(NULL, "127.0.0.1 70000 get k", "", 2);
    client_expect(NULL, "--dir /nonexistent/dir --timeout 0.2 get k",
                  "ERR no server to contact: /nonexistent/dir/server_registry.txt: "
                  "No such file or directory\n",
                  1);
}
END_TEST

START_TEST(test_program_session_expired)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    pthread_mutex_lock(&leader->mu);
    leader->expire_writes = 1;
    pthread_mutex_unlock(&leader->mu);
    client_expect(NULL, args_for(leader->port, "set k v"), "ERR session expired\n", 1);
    /* in one script: the next write opens a new session and succeeds */
    pthread_mutex_lock(&leader->mu);
    leader->expire_writes = 1;
    pthread_mutex_unlock(&leader->mu);
    client_expect("set k v\nset k w\nget k\n", args_for(leader->port, ""),
                  "ERR session expired\nOK\nw\n", 0);
    /* 2 + 5 commands, and the script's session asks once for the members */
    ck_assert_int_eq(FAKE_COUNT(leader, requests), 2 + 5 + 1);
    fake_stop(leader);
}
END_TEST

START_TEST(test_program_status_and_registry)
{
    struct fake_server *leader = fake_start("fakeleader", FAKE_LEADER, 0);
    struct fake_server *follower = fake_start("follower", FAKE_REDIRECT, leader->port);
    client_expect(NULL, args_for(follower->port, "status"),
                  "name=follower role=follower term=1 leader=none commit=0 applied=0 last=0\n",
                  0);
    /* no HOST PORT: the servers of the registry in --dir */
    const struct fake_server *list[] = { leader };
    write_registry(list, 1);
    char args[256];
    snprintf(args, sizeof(args), "--dir %s --timeout 2 status", scratch_dir);
    client_expect(NULL, args,
                  "name=fakeleader role=leader term=1 leader=fakeleader commit=0 applied=0 "
                  "last=0\n",
                  0);
    fake_stop(follower);
    fake_stop(leader);
}
END_TEST

/* ---- raft_client watch against fake servers ------------------------------------------ */

/* A raft_client running in the background, its stdout read through a pipe, its stderr
 * in SCRATCH/stderr.txt. */
struct watch_proc {
    pid_t pid;
    int out;
    char buf[8192];
    size_t len;
};

static void watch_spawn(struct watch_proc *p, const char *input, const char *args)
{
    char cmd[2048], err_path[128];
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", scratch_dir);
    if (input != NULL)
        snprintf(cmd, sizeof(cmd), "printf '%s' | %s %s 2>%s", input, client_bin(), args,
                 err_path);
    else
        snprintf(cmd, sizeof(cmd), "exec %s %s </dev/null 2>%s", client_bin(), args, err_path);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    memset(p, 0, sizeof(*p));
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        setpgid(0, 0); /* its own group: the shell and the client are killed together */
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(p->pid, p->pid);
    close(fds[1]);
    p->out = fds[0];
}

/* Reads p's stdout for up to ms (or until it closes); true once it is exactly want. */
static bool watch_read_until(struct watch_proc *p, const char *want, int ms)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)ms;
    while (strcmp(p->buf, want) != 0 && rk_clock_ms() < deadline) {
        struct pollfd pfd = { .fd = p->out, .events = POLLIN };
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = read(p->out, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
        if (n <= 0)
            break;
        p->len += (size_t)n;
        p->buf[p->len] = '\0';
    }
    return strcmp(p->buf, want) == 0;
}

static void watch_expect(struct watch_proc *p, const char *want, int ms)
{
    ck_assert_msg(watch_read_until(p, want, ms), "stdout '%s', want '%s'", p->buf, want);
}

/* Waits up to ms for p to exit by itself: its exit code, or -1 if it did not. */
static int watch_exit_code(struct watch_proc *p, int ms)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)ms;
    int st;
    while (rk_clock_ms() < deadline) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        }
        rk_sleep_ms(20);
    }
    return -1;
}

/* Kills p (a watch never ends by itself) and closes its pipe. */
static void watch_stop(struct watch_proc *p)
{
    if (p->pid > 0) {
        kill(-p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    p->pid = 0;
    close(p->out);
}

/* SCRATCH/stderr.txt (what the client noted), malloc'ed. */
static char *watch_stderr(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/stderr.txt", scratch_dir);
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    char *text = calloc(1, 65536);
    ck_assert_ptr_nonnull(text);
    size_t n = fread(text, 1, 65535, fp);
    text[n] = '\0';
    fclose(fp);
    unlink(path);
    return text;
}

static void fake_add_event(struct fake_server *f, uint64_t rev, uint8_t kind, const char *key,
                           const char *val)
{
    pthread_mutex_lock(&f->mu);
    ck_assert_int_lt(f->n_events, FAKE_MAX_EVENTS);
    struct fake_event *e = &f->events[f->n_events++];
    e->rev = rev;
    e->kind = kind;
    snprintf(e->key, sizeof(e->key), "%s", key);
    snprintf(e->val, sizeof(e->val), "%s", val);
    if (rev > f->head)
        f->head = rev;
    pthread_mutex_unlock(&f->mu);
}

/* The history 3 set a/x 1, 5 delete a/x, 7 expire a/y and a/z (one revision), head 8. */
static void fake_add_history(struct fake_server *f)
{
    fake_add_event(f, 3, PROTO_EVENT_SET, "a/x", "1");
    fake_add_event(f, 5, PROTO_EVENT_DELETE, "a/x", "");
    fake_add_event(f, 7, PROTO_EVENT_EXPIRE, "a/y", "");
    fake_add_event(f, 7, PROTO_EVENT_EXPIRE, "a/z", "");
    pthread_mutex_lock(&f->mu);
    f->head = 8;
    pthread_mutex_unlock(&f->mu);
}

#define HISTORY_LINES "3 set a/x 1\n5 delete a/x\n7 expire a/y\n7 expire a/z\n"

static uint64_t fake_from(struct fake_server *f, int i)
{
    pthread_mutex_lock(&f->mu);
    ck_assert_int_lt(i, f->n_watches);
    uint64_t from = f->froms[i];
    pthread_mutex_unlock(&f->mu);
    return from;
}

/* "127.0.0.1 PORT --dir SCRATCH " + rest: the servers of the registry after PORT. */
static const char *watch_args(uint16_t port, const char *rest)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf), "127.0.0.1 %u --dir %s %s", (unsigned)port, scratch_dir, rest);
    return buf;
}

START_TEST(test_watch_prints_events_in_order)
{
    struct fake_server *a = fake_start("a", FAKE_LEADER, 0);
    fake_add_history(a);
    struct watch_proc p;
    watch_spawn(&p, NULL, watch_args(a->port, "watch a/ --from 1"));
    watch_expect(&p, HISTORY_LINES, 3000);
    fake_add_event(a, 9, PROTO_EVENT_SET, "a/q", "v  w"); /* while it streams */
    watch_expect(&p, HISTORY_LINES "9 set a/q v  w\n", 3000);
    ck_assert_uint_eq(fake_from(a, 0), 1);
    pthread_mutex_lock(&a->mu);
    ck_assert_str_eq(a->last_key, "a/");
    pthread_mutex_unlock(&a->mu);
    watch_stop(&p);
    /* from now (no FROM: the stream starts after head), every key (an empty argument) */
    watch_spawn(&p, NULL, watch_args(a->port, "watch ''"));
    rk_sleep_ms(500);
    fake_add_event(a, 10, PROTO_EVENT_DELETE, "b", "");
    watch_expect(&p, "10 delete b\n", 3000);
    ck_assert_uint_eq(fake_from(a, 1), 0);
    pthread_mutex_lock(&a->mu);
    ck_assert_str_eq(a->last_key, "");
    ck_assert_int_eq(a->bad_frames, 0);
    pthread_mutex_unlock(&a->mu);
    watch_stop(&p);
    fake_stop(a);
}
END_TEST

/* A stream that closes after two answers: the client goes on at the next server with
 * FROM = the first revision not yet printed; what that server sends again is dropped. */
START_TEST(test_watch_resumes_at_next_server)
{
    struct fake_server *a = fake_start("a", FAKE_LEADER, 0);
    struct fake_server *b = fake_start("b", FAKE_LEADER, 0);
    fake_add_history(a);
    fake_add_history(b);
    pthread_mutex_lock(&a->mu);
    a->close_after = 2;
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_lock(&b->mu);
    b->replay_from = 1; /* a careless server: sends revisions 3 and 5 again */
    pthread_mutex_unlock(&b->mu);
    const struct fake_server *list[] = { a, b };
    write_registry(list, 2);
    struct watch_proc p;
    watch_spawn(&p, NULL, watch_args(a->port, "-v watch a/ --from 2"));
    watch_expect(&p, HISTORY_LINES, 3000);
    ck_assert(!watch_read_until(&p, HISTORY_LINES "x", 500)); /* nothing more */
    ck_assert_str_eq(p.buf, HISTORY_LINES);
    ck_assert_uint_eq(fake_from(a, 0), 2);
    ck_assert_uint_eq(fake_from(b, 0), 6); /* after the answer of revision 5 */
    watch_stop(&p);
    char *err = watch_stderr();
    ck_assert_msg(strstr(err, "watch: server a (127.0.0.1:") != NULL &&
                  strstr(err, "connection closed; resuming from rev 6 at b (127.0.0.1:") != NULL,
                  "stderr: %s", err);
    free(err);
    fake_stop(b);
    fake_stop(a);
}
END_TEST

/* A server that stops answering (no heartbeat for PROTO_WATCH_SILENCE_MS): the next one. */
START_TEST(test_watch_silent_server_is_left)
{
    struct fake_server *a = fake_start("a", FAKE_LEADER, 0);
    struct fake_server *b = fake_start("b", FAKE_LEADER, 0);
    fake_add_history(a);
    fake_add_history(b);
    pthread_mutex_lock(&a->mu);
    a->silent_after = 1;
    pthread_mutex_unlock(&a->mu);
    const struct fake_server *list[] = { a, b };
    write_registry(list, 2);
    struct watch_proc p;
    uint64_t t0 = rk_clock_ms();
    watch_spawn(&p, NULL, watch_args(a->port, "-q watch a/ --from 1"));
    watch_expect(&p, "3 set a/x 1\n", 2000);
    watch_expect(&p, HISTORY_LINES, 6000);
    ck_assert_int_ge(rk_clock_ms() - t0, PROTO_WATCH_SILENCE_MS - 100);
    ck_assert_uint_eq(fake_from(b, 0), 4);
    watch_stop(&p);
    char *err = watch_stderr();
    ck_assert_str_eq(err, ""); /* -q */
    free(err);
    fake_stop(b);
    fake_stop(a);
}
END_TEST

/* "watcher fell behind at rev N": resume from N (here past the progress seen). */
START_TEST(test_watch_fell_behind_resumes_there)
{
    struct fake_server *a = fake_start("a", FAKE_LEADER, 0);
    struct fake_server *b = fake_start("b", FAKE_LEADER, 0);
    fake_add_history(a);
    fake_add_history(b);
    pthread_mutex_lock(&a->mu);
    a->behind_after = 1;
    a->behind_rev = 6;
    pthread_mutex_unlock(&a->mu);
    const struct fake_server *list[] = { a, b };
    write_registry(list, 2);
    struct watch_proc p;
    watch_spawn(&p, NULL, watch_args(a->port, "watch a/ --from 1"));
    watch_expect(&p, "3 set a/x 1\n7 expire a/y\n7 expire a/z\n", 3000);
    ck_assert_uint_eq(fake_from(b, 0), 6);
    watch_stop(&p);
    char *err = watch_stderr();
    ck_assert_msg(strstr(err, "watcher fell behind at rev 6; resuming from rev 6 at b") != NULL,
                  "stderr: %s", err);
    free(err);
    fake_stop(b);
    fake_stop(a);
}
END_TEST

/* compacted: the other servers are tried first; when all say so, ERR with the oldest. */
START_TEST(test_watch_compacted)
{
    struct fake_server *a = fake_start("a", FAKE_LEADER, 0);
    struct fake_server *b = fake_start("b", FAKE_LEADER, 0);
    fake_add_history(a);
    fake_add_history(b);
    pthread_mutex_lock(&a->mu);
    a->oldest = 5;
    pthread_mutex_unlock(&a->mu);
    const struct fake_server *list[] = { a, b };
    write_registry(list, 2);
    struct watch_proc p;
    watch_spawn(&p, NULL, watch_args(a->port, "watch a/ --from 2"));
    watch_expect(&p, HISTORY_LINES, 3000); /* from b */
    watch_stop(&p);
    pthread_mutex_lock(&b->mu);
    b->oldest = 4;
    pthread_mutex_unlock(&b->mu);
    watch_spawn(&p, NULL, watch_args(a->port, "watch a/ --from 2"));
    watch_expect(&p, "ERR compacted: oldest available revision 4\n", 3000);
    ck_assert_int_eq(watch_exit_code(&p, 2000), 1);
    watch_stop(&p);
    /* in a script too: the watch is the last command */
    watch_spawn(&p, "watch a/ --from 3\nget k\n", watch_args(a->port, ""));
    watch_expect(&p, "ERR compacted: oldest available revision 4\n", 3000);
    ck_assert_int_eq(watch_exit_code(&p, 2000), 1);
    watch_stop(&p);
    ck_assert_int_eq(FAKE_COUNT(a, requests) + FAKE_COUNT(b, requests), 6); /* no GET */
    fake_stop(b);
    fake_stop(a);
}
END_TEST

/* An ERR about the server (too many watchers): the next one; about the request: ERR. */
START_TEST(test_watch_refused)
{
    struct fake_server *a = fake_start("a", FAKE_LEADER, 0);
    struct fake_server *b = fake_start("b", FAKE_LEADER, 0);
    fake_add_history(b);
    pthread_mutex_lock(&a->mu);
    snprintf(a->watch_err, sizeof(a->watch_err), "too many watchers (1024)");
    pthread_mutex_unlock(&a->mu);
    const struct fake_server *list[] = { a, b };
    write_registry(list, 2);
    struct watch_proc p;
    watch_spawn(&p, NULL, watch_args(a->port, "watch a/ --from 1"));
    watch_expect(&p, HISTORY_LINES, 3000);
    watch_stop(&p);
    pthread_mutex_lock(&a->mu);
    snprintf(a->watch_err, sizeof(a->watch_err), "%s", PROTO_ERR_KEY_NOT_WORD);
    pthread_mutex_unlock(&a->mu);
    watch_spawn(&p, NULL, watch_args(a->port, "watch a/ --from 1"));
    watch_expect(&p, "ERR " PROTO_ERR_KEY_NOT_WORD "\n", 3000);
    ck_assert_int_eq(watch_exit_code(&p, 2000), 1);
    watch_stop(&p);
    fake_stop(b);
    fake_stop(a);
}
END_TEST

/* In a script, commands before the watch run; none after it. With no server reachable
 * the watch keeps trying (noted on stderr). */
START_TEST(test_watch_in_script_and_unreachable)
{
    struct fake_server *a = fake_start("a", FAKE_LEADER, 0);
    fake_add_history(a);
    struct watch_proc p;
    watch_spawn(&p, "get k\nwatch \"\" --from 5\nget k\n", watch_args(a->port, ""));
    watch_expect(&p, "(nil)\n5 delete a/x\n7 expire a/y\n7 expire a/z\n", 3000);
    ck_assert(!watch_read_until(&p, "x", 500));
    ck_assert_int_eq(watch_exit_code(&p, 1), -1); /* still watching */
    watch_stop(&p);
    pthread_mutex_lock(&a->mu);
    ck_assert_uint_eq(a->froms[0], 5);
    ck_assert_str_eq(a->last_key, "");
    ck_assert_uint_eq(a->log[0].op, PROTO_OP_GET);
    for (int i = 1; i < a->requests; i++) /* then MEMBERS (learning), then the WATCH */
        ck_assert_uint_ne(a->log[i].op, PROTO_OP_GET);
    pthread_mutex_unlock(&a->mu);
    fake_stop(a);
    watch_spawn(&p, NULL, watch_args(closed_port(), "watch a/ --from 7"));
    ck_assert_int_eq(watch_exit_code(&p, 1500), -1);
    watch_stop(&p);
    ck_assert_str_eq(p.buf, "");
    char *err = watch_stderr();
    ck_assert_msg(strstr(err, "resuming from rev 7 at 127.0.0.1:") != NULL, "stderr: %s", err);
    free(err);
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *ts = tcase_create("session");
    tcase_add_unchecked_fixture(ts, scratch_setup, scratch_teardown);
    tcase_set_timeout(ts, 10);
    tcase_add_test(ts, test_redirect_followed_and_connection_kept);
    tcase_add_test(ts, test_request_bytes_reach_the_server);
    tcase_add_test(ts, test_status_is_not_redirected);
    tcase_add_test(ts, test_no_leader_known_tries_next_server);
    tcase_add_test(ts, test_dead_first_server_falls_back_on_registry);
    tcase_add_test(ts, test_closed_port_times_out);
    tcase_add_test(ts, test_redirect_loop_is_bounded);
    tcase_add_test(ts, test_reconnects_after_server_closes);
    tcase_add_test(ts, test_silent_server_does_not_use_the_whole_timeout);
    tcase_add_test(ts, test_new_needs_a_server);
    tcase_add_test(ts, test_rejects_oversized_requests_locally);
    tcase_add_test(ts, test_session_registers_lazily_and_numbers_writes);
    tcase_add_test(ts, test_retry_after_lost_reply_reuses_seq);
    tcase_add_test(ts, test_session_expired_then_registers_anew);
    tcase_add_test(ts, test_register_error_is_retried);
    suite_add_tcase(s, ts);

    TCase *tp = tcase_create("program");
    tcase_add_unchecked_fixture(tp, scratch_setup, scratch_teardown);
    tcase_set_timeout(tp, 30);
    tcase_add_test(tp, test_program_set_get_delete);
    tcase_add_test(tp, test_program_stdin_one_line_per_command);
    tcase_add_test(tp, test_program_no_leader_reachable);
    tcase_add_test(tp, test_program_errors_and_usage);
    tcase_add_test(tp, test_program_session_expired);
    tcase_add_test(tp, test_program_status_and_registry);
    suite_add_tcase(s, tp);

    TCase *tw = tcase_create("watch");
    tcase_add_unchecked_fixture(tw, scratch_setup, scratch_teardown);
    tcase_set_timeout(tw, 20);
    tcase_add_test(tw, test_watch_prints_events_in_order);
    tcase_add_test(tw, test_watch_resumes_at_next_server);
    tcase_add_test(tw, test_watch_silent_server_is_left);
    tcase_add_test(tw, test_watch_fell_behind_resumes_there);
    tcase_add_test(tw, test_watch_compacted);
    tcase_add_test(tw, test_watch_refused);
    tcase_add_test(tw, test_watch_in_script_and_unreachable);
    suite_add_tcase(s, tw);
    return s;
}

RK_CHECK_MAIN(client_suite)
