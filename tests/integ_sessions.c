/* tests/integ_sessions.c - client sessions (Raft thesis §6.3) on real 5-server clusters,
 * over the raw client protocol: a duplicate SET/DELETE (same client id and seq) is not
 * applied twice, also after a failover and after a full restart; stale and unknown
 * sessions are refused; the KV_MAX_SESSIONS + 1st REGISTER expires the least recently
 * used session, and the client library then registers anew. */
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"
#include "../server/kv/kv.h"
#include "check_main.h"
#include "harness.h"

#define N_SERVERS 5
#define LEADER_WAIT_MS 10000
#define CALL_TIMEOUT_MS 10000
#define IO_TIMEOUT_MS 5000
#define CASE_TIMEOUT_S 120
#define BODY_MAX 256
#define PARALLEL_REGISTERS 32

/* ---- raw protocol helpers ---- */

struct reply {
    int status;          /* PROTO_ST_*, or a negative RK_ERR_* if no reply came */
    char body[BODY_MAX]; /* NUL-terminated, cut */
};

static struct ctl_cluster *start_cluster(void)
{
    return harness_start(N_SERVERS, 0);
}

/* A client connection to server i (HELLO sent), or -1. */
static int raw_open(struct ctl_cluster *c, int i)
{
    char err[256];
    int fd = net_connect("127.0.0.1", c->servers[i].port, IO_TIMEOUT_MS, err, sizeof(err));
    if (fd < 0)
        return -1;
    struct proto_buf b = { 0 };
    int rc = net_set_timeouts(fd, IO_TIMEOUT_MS);
    if (rc == RK_OK)
        rc = proto_encode_hello_client(&b);
    if (rc == RK_OK)
        rc = net_write_full(fd, b.data, b.len);
    proto_buf_free(&b);
    if (rc != RK_OK) {
        close(fd);
        return -1;
    }
    return fd;
}

static int raw_send(int fd, const struct proto_client_req *req)
{
    struct proto_buf b = { 0 };
    int rc = proto_encode_client_req(&b, req);
    if (rc == RK_OK)
        rc = net_write_full(fd, b.data, b.len);
    proto_buf_free(&b);
    return rc;
}

static void raw_receive(int fd, struct reply *out)
{
    uint8_t *payload = NULL;
    size_t len = 0;
    struct proto_client_resp resp;
    out->body[0] = '\0';
    int rc = net_read_frame(fd, PROTO_MAX_FRAME, &payload, &len);
    if (rc == RK_OK)
        rc = proto_decode_client_resp(payload, len, &resp);
    if (rc == RK_OK) {
        size_t n = resp.body_len < BODY_MAX - 1 ? resp.body_len : BODY_MAX - 1;
        memcpy(out->body, resp.body, n);
        out->body[n] = '\0';
        out->status = resp.status;
    } else {
        out->status = rc;
    }
    free(payload);
}

/* One request to whoever leads now, retried (with the same fields, so a write keeps its
 * client id and seq) after a redirect, a lost connection or an ERR ending in "outcome
 * unknown", until CALL_TIMEOUT_MS. */
static struct reply leader_call(struct ctl_cluster *c, const struct proto_client_req *req)
{
    struct reply r = { .status = RK_ERR_TIMEOUT };
    uint64_t deadline = rk_clock_ms() + CALL_TIMEOUT_MS;
    while (rk_clock_ms() < deadline) {
        int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
        int fd = leader >= 0 ? raw_open(c, leader) : -1;
        if (fd >= 0 && raw_send(fd, req) == RK_OK)
            raw_receive(fd, &r);
        if (fd >= 0)
            close(fd);
        bool retry = r.status < 0 || r.status == PROTO_ST_REDIRECT ||
                     (r.status == PROTO_ST_ERR && strstr(r.body, "outcome unknown") != NULL);
        if (!retry)
            return r;
        rk_sleep_ms(100);
    }
    return r;
}

static const char *status_name(int st)
{
    switch (st) {
    case PROTO_ST_OK: return "OK";
    case PROTO_ST_VALUE: return "VALUE";
    case PROTO_ST_NIL: return "NIL";
    case PROTO_ST_REDIRECT: return "REDIRECT";
    case PROTO_ST_ERR: return "ERR";
    default: return st < 0 ? rk_strerror(st) : "?";
    }
}

static uint64_t must_register(struct ctl_cluster *c)
{
    struct proto_client_req req = { .op = PROTO_OP_REGISTER };
    struct reply r = leader_call(c, &req);
    uint64_t id = 0;
    HARNESS_ASSERT(c, r.status == PROTO_ST_VALUE, "register: %s (%s)", status_name(r.status),
                   r.body);
    HARNESS_ASSERT(c, proto_parse_client_id(r.body, (uint32_t)strlen(r.body), &id) == RK_OK,
                   "register: bad client id '%s'", r.body);
    return id;
}

/* A SET (val != NULL) or DELETE in session (client, seq); checks the reply's status and,
 * for ERR, that the body contains want_err. */
static void must_write(struct ctl_cluster *c, uint64_t client, uint64_t seq,
                       const char *key, const char *val, int want, const char *want_err)
{
    struct proto_client_req req = {
        .op = val != NULL ? PROTO_OP_SET : PROTO_OP_DELETE, .key = key,
        .key_len = (uint32_t)strlen(key), .val = val ? val : "",
        .val_len = val ? (uint32_t)strlen(val) : 0, .client_id = client, .seq = seq,
    };
    struct reply r = leader_call(c, &req);
    HARNESS_ASSERT(c, r.status == want, "%s %s (client %llu seq %llu): want %s, got %s (%s)",
                   val ? "set" : "delete", key, (unsigned long long)client,
                   (unsigned long long)seq, status_name(want), status_name(r.status), r.body);
    if (want_err != NULL)
        HARNESS_ASSERT(c, strstr(r.body, want_err) != NULL, "want an error with '%s', got '%s'",
                       want_err, r.body);
}

/* expect NULL: the key must be missing. */
static void must_get(struct ctl_cluster *c, const char *key, const char *expect)
{
    struct proto_client_req req = { .op = PROTO_OP_GET, .key = key,
                                    .key_len = (uint32_t)strlen(key), .val = "" };
    struct reply r = leader_call(c, &req);
    if (expect == NULL) {
        HARNESS_ASSERT(c, r.status == PROTO_ST_NIL, "get %s: want NIL, got %s (%s)", key,
                       status_name(r.status), r.body);
        return;
    }
    HARNESS_ASSERT(c, r.status == PROTO_ST_VALUE && strcmp(r.body, expect) == 0,
                   "get %s: want '%s', got %s '%s'", key, expect, status_name(r.status),
                   r.body);
}

/* ---- 1. duplicates are not applied twice, also at a new leader ---- */

START_TEST(test_duplicate_not_applied_twice)
{
    struct ctl_cluster *c = start_cluster();
    ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    uint64_t a = must_register(c), b = must_register(c);
    HARNESS_ASSERT(c, a >= 1 && b > a, "client ids %llu then %llu", (unsigned long long)a,
                   (unsigned long long)b);

    /* A's set is re-sent after B overwrote the key: applying it again would undo B's. */
    must_write(c, a, 1, "k", "v1", PROTO_ST_OK, NULL);
    must_write(c, b, 1, "k", "v2", PROTO_ST_OK, NULL);
    must_write(c, a, 1, "k", "v1", PROTO_ST_OK, NULL);
    must_get(c, "k", "v2");

    /* A's delete, re-sent after B set the key again, must not delete B's value. */
    must_write(c, a, 2, "k", NULL, PROTO_ST_OK, NULL);
    must_write(c, b, 2, "k", "v3", PROTO_ST_OK, NULL);
    must_write(c, a, 2, "k", NULL, PROTO_ST_OK, NULL);
    must_get(c, "k", "v3");

    /* A delete that removed a key answers OK again, not NIL (a second application's answer). */
    must_write(c, a, 3, "k", NULL, PROTO_ST_OK, NULL);
    must_write(c, a, 3, "k", NULL, PROTO_ST_OK, NULL);
    must_get(c, "k", NULL);

    /* Stale, unknown and malformed commands are refused and change nothing. */
    must_write(c, a, 1, "k", "stale", PROTO_ST_ERR, "stale");
    must_write(c, a + b + 1000, 1, "k", "nobody", PROTO_ST_ERR, PROTO_ERR_SESSION_EXPIRED);
    must_write(c, a, 0, "k", "zero", PROTO_ST_ERR, "sequence number");
    must_get(c, "k", NULL);

    /* The leader dies; A retries its last command at the new leader after B wrote. */
    int old = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    HARNESS_ASSERT(c, old >= 0 && ctl_kill(c, old) == RK_OK, "cannot kill the leader");
    must_write(c, b, 3, "k", "v4", PROTO_ST_OK, NULL);
    must_write(c, a, 3, "k", NULL, PROTO_ST_OK, NULL);
    must_get(c, "k", "v4");
    must_write(c, a, 4, "k", "v5", PROTO_ST_OK, NULL); /* A's next command is applied */
    must_get(c, "k", "v5");
    HARNESS_ASSERT(c, ctl_start(c, old) == RK_OK, "cannot restart the old leader");
    harness_finish(c);
}
END_TEST

/* ---- 2. sessions survive a full restart (rebuilt from the log) ---- */

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

START_TEST(test_sessions_survive_full_restart)
{
    struct ctl_cluster *c = start_cluster();
    ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    uint64_t a = must_register(c), b = must_register(c);
    must_write(c, a, 1, "k", "v1", PROTO_ST_OK, NULL);
    must_write(c, b, 1, "k", "v2", PROTO_ST_OK, NULL);
    must_write(c, a, 2, "gone", "x", PROTO_ST_OK, NULL);
    must_write(c, a, 3, "gone", NULL, PROTO_ST_OK, NULL);

    for (int i = 0; i < c->n; i++) {
        int rc = ctl_stop(c, i);
        HARNESS_ASSERT(c, rc == RK_OK, "SIGTERM of %s: not a clean exit (%s)",
                       c->servers[i].name, rk_strerror(rc));
    }
    char path[256], needle[64];
    ctl_server_path(c, 0, "_log.txt", path, sizeof(path));
    snprintf(needle, sizeof(needle), " client=%llu seq=3 ", (unsigned long long)a);
    HARNESS_ASSERT(c, file_contains(path, " register ") && file_contains(path, needle),
                   "%s has no register line or no '%s'", path, needle);
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "cannot restart the cluster");
    ctl_wait_leader(c, LEADER_WAIT_MS, NULL);

    must_write(c, a, 1, "k", "v1", PROTO_ST_ERR, "stale"); /* seq 1 is behind now */
    must_write(c, a, 3, "gone", NULL, PROTO_ST_OK, NULL);  /* recorded OK, not NIL */
    must_write(c, b, 1, "k", "v2-again", PROTO_ST_OK, NULL);
    must_get(c, "k", "v2");
    must_write(c, a, 4, "k", "v3", PROTO_ST_OK, NULL);
    must_get(c, "k", "v3");
    harness_finish(c);
}
END_TEST

/* ---- 3. expiry: the bound and the client library's recovery ---- */

/* Sends n REGISTERs to the leader over PARALLEL_REGISTERS connections (so that commits
 * share fsyncs) and stores the ids in order of reply. Every one must succeed. */
static void register_many(struct ctl_cluster *c, int n, uint64_t *ids)
{
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    HARNESS_ASSERT(c, leader >= 0, "no leader");
    struct pollfd pfd[PARALLEL_REGISTERS];
    struct proto_client_req req = { .op = PROTO_OP_REGISTER };
    int sent = 0, done = 0;
    for (int k = 0; k < PARALLEL_REGISTERS; k++) {
        pfd[k] = (struct pollfd){ .fd = raw_open(c, leader), .events = POLLIN };
        HARNESS_ASSERT(c, pfd[k].fd >= 0, "cannot connect to the leader");
        if (sent < n && raw_send(pfd[k].fd, &req) == RK_OK)
            sent++;
    }
    uint64_t deadline = rk_clock_ms() + 60000;
    while (done < sent && rk_clock_ms() < deadline) {
        if (poll(pfd, PARALLEL_REGISTERS, 1000) <= 0)
            continue;
        for (int k = 0; k < PARALLEL_REGISTERS; k++) {
            if (pfd[k].revents == 0)
                continue;
            struct reply r;
            raw_receive(pfd[k].fd, &r);
            uint64_t id = 0;
            bool ok = r.status == PROTO_ST_VALUE &&
                      proto_parse_client_id(r.body, (uint32_t)strlen(r.body), &id) == RK_OK;
            if (!ok)
                for (int j = 0; j < PARALLEL_REGISTERS; j++)
                    close(pfd[j].fd);
            HARNESS_ASSERT(c, ok, "register %d of %d: %s (%s)", done + 1, n,
                           status_name(r.status), r.body);
            ids[done++] = id;
            if (sent < n && raw_send(pfd[k].fd, &req) == RK_OK)
                sent++;
        }
    }
    for (int k = 0; k < PARALLEL_REGISTERS; k++)
        close(pfd[k].fd);
    HARNESS_ASSERT(c, done == n, "only %d of %d registers answered", done, n);
}

static int compare_ids(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

START_TEST(test_expired_session)
{
    struct ctl_cluster *c = start_cluster();
    ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    uint64_t a = must_register(c);
    must_write(c, a, 1, "k", "a1", PROTO_ST_OK, NULL);

    /* KV_MAX_SESSIONS more sessions: the table is full one REGISTER after the last, and
     * that one drops A, the least recently used. */
    uint64_t *ids = calloc(KV_MAX_SESSIONS, sizeof(*ids));
    HARNESS_ASSERT(c, ids != NULL, "out of memory");
    uint64_t t0 = rk_clock_ms();
    register_many(c, KV_MAX_SESSIONS, ids);
    fprintf(stderr, "integ_sessions: %u registers took %lld ms\n", KV_MAX_SESSIONS,
            (long long)(rk_clock_ms() - t0));
    qsort(ids, KV_MAX_SESSIONS, sizeof(*ids), compare_ids);
    for (unsigned i = 1; i < KV_MAX_SESSIONS; i++)
        HARNESS_ASSERT(c, ids[i] > ids[i - 1], "client id %llu given twice",
                       (unsigned long long)ids[i]);
    HARNESS_ASSERT(c, ids[0] > a, "a new client id %llu below A's %llu",
                   (unsigned long long)ids[0], (unsigned long long)a);
    uint64_t oldest_new = ids[0], newest = ids[KV_MAX_SESSIONS - 1];
    free(ids);

    must_write(c, a, 2, "k", "a2", PROTO_ST_ERR, PROTO_ERR_SESSION_EXPIRED);
    must_write(c, a, 1, "k", "a1", PROTO_ST_ERR, PROTO_ERR_SESSION_EXPIRED);
    must_get(c, "k", "a1");
    /* exactly one was dropped: the oldest new session is still there */
    must_write(c, oldest_new, 1, "k", "n1", PROTO_ST_OK, NULL);
    must_write(c, newest, 1, "k", "n2", PROTO_ST_OK, NULL);
    must_get(c, "k", "n2");

    /* The client library: its session expires, the write says so, the next one works. */
    struct client_session *s = harness_session(c, -1, true, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "no client session");
    char out[BODY_MAX];
    int st = harness_call(s, PROTO_OP_SET, "lib", "1", out, sizeof(out));
    uint64_t first_id = client_session_id(s);
    HARNESS_ASSERT(c, st == PROTO_ST_OK && first_id != 0, "library set: %s (%s)",
                   status_name(st), out);
    ids = calloc(KV_MAX_SESSIONS, sizeof(*ids));
    HARNESS_ASSERT(c, ids != NULL, "out of memory");
    register_many(c, KV_MAX_SESSIONS, ids);
    free(ids);
    st = harness_call(s, PROTO_OP_SET, "lib", "2", out, sizeof(out));
    bool expired = st == PROTO_ST_ERR && strcmp(out, PROTO_ERR_SESSION_EXPIRED) == 0;
    if (!expired)
        client_session_free(s);
    HARNESS_ASSERT(c, expired, "library set after expiry: %s (%s)", status_name(st), out);
    st = harness_call(s, PROTO_OP_SET, "lib", "3", out, sizeof(out));
    uint64_t second_id = client_session_id(s);
    client_session_free(s);
    HARNESS_ASSERT(c, st == PROTO_ST_OK && second_id > first_id,
                   "library set after re-registering: %s (%s), ids %llu then %llu",
                   status_name(st), out, (unsigned long long)first_id,
                   (unsigned long long)second_id);
    must_get(c, "lib", "3");
    harness_finish(c);
}
END_TEST

/* One TCase per test, so that one can run alone: CK_RUN_CASE=expiry build/.../integ_sessions */
static void add_case(Suite *s, const char *name, const TTest *test)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

static Suite *integ_sessions_suite(void)
{
    Suite *s = suite_create("integ_sessions");
    add_case(s, "duplicate", test_duplicate_not_applied_twice);
    add_case(s, "restart", test_sessions_survive_full_restart);
    add_case(s, "expiry", test_expired_session);
    return s;
}

RK_CHECK_MAIN(integ_sessions_suite)
