/* tests/integ_cluster.c - integration tests on real 5-server clusters: election,
 * redirects, leader crash and failover, rejoin, catch-up of a wiped follower, loss of
 * quorum, garbage on the wire, durability across a full restart or crash, and a paused
 * leader that wakes up deposed (no stale reads). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define N_SERVERS 5
#define LEADER_WAIT_MS 10000
#define CALL_TIMEOUT_MS 5000
#define CASE_TIMEOUT_S 60

/* ---- helpers ---- */

static const char *status_name(int st)
{
    switch (st) {
    case PROTO_ST_OK:
        return "OK";
    case PROTO_ST_VALUE:
        return "VALUE";
    case PROTO_ST_NIL:
        return "NIL";
    case PROTO_ST_REDIRECT:
        return "REDIRECT";
    case PROTO_ST_ERR:
        return "ERR";
    default:
        return st < 0 ? rk_strerror(st) : "?";
    }
}

static struct ctl_cluster *start_cluster(int n)
{
    return harness_start(n, 0);
}

static int wait_leader(struct ctl_cluster *c, struct ctl_status *st)
{
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, st);
    HARNESS_ASSERT(c, leader >= 0, "no leader within %d ms", LEADER_WAIT_MS);
    return leader;
}

static struct client_session *session_to(struct ctl_cluster *c, int i, bool registry)
{
    struct client_session *s = harness_session(c, i, registry, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "cannot create a client session");
    return s;
}

static void must_set(struct ctl_cluster *c, struct client_session *s, const char *key,
                     const char *val)
{
    char out[256];
    int st = harness_call(s, PROTO_OP_SET, key, val, out, sizeof(out));
    HARNESS_ASSERT(c, st == PROTO_ST_OK, "set %s=%s: %s (%s)", key, val, status_name(st),
                   out);
}

/* expect NULL: the key must be missing (NIL). */
static void must_get(struct ctl_cluster *c, struct client_session *s, const char *key,
                     const char *expect)
{
    char out[512];
    int st = harness_call(s, PROTO_OP_GET, key, NULL, out, sizeof(out));
    if (expect == NULL) {
        HARNESS_ASSERT(c, st == PROTO_ST_NIL, "get %s: want NIL, got %s (%s)", key,
                       status_name(st), out);
        return;
    }
    HARNESS_ASSERT(c, st == PROTO_ST_VALUE, "get %s: want '%s', got %s (%s)", key, expect,
                   status_name(st), out);
    HARNESS_ASSERT(c, strcmp(out, expect) == 0, "get %s: want '%s', got '%s'", key, expect,
                   out);
}

static void must_delete(struct ctl_cluster *c, struct client_session *s,
                        const char *key, int want)
{
    char out[256];
    int st = harness_call(s, PROTO_OP_DELETE, key, NULL, out, sizeof(out));
    HARNESS_ASSERT(c, st == want, "delete %s: want %s, got %s (%s)", key, status_name(want),
                   status_name(st), out);
}

static int other_than(const struct ctl_cluster *c, int not_this)
{
    return (not_this + 1) % c->n;
}

static struct ctl_status must_status(struct ctl_cluster *c, int i)
{
    struct ctl_status st;
    int rc = ctl_status_of(c, i, &st, 1000);
    HARNESS_ASSERT(c, rc == RK_OK, "status of %s: %s", c->servers[i].name, rk_strerror(rc));
    return st;
}

/* A small model of keys k0..kN-1 and their expected values ("" = deleted). */
#define MODEL_KEYS 40
struct model {
    char val[MODEL_KEYS][32];
};

static void model_key(int k, char *out, size_t outlen)
{
    snprintf(out, outlen, "key-%d", k);
}

/* Sets every key, overwrites every third and deletes every fifth, tagging values with
 * round so that two calls write different data. */
static void model_write(struct ctl_cluster *c, struct client_session *s,
                        struct model *m, int round)
{
    char key[32];
    for (int k = 0; k < MODEL_KEYS; k++) {
        model_key(k, key, sizeof(key));
        snprintf(m->val[k], sizeof(m->val[k]), "r%d v%d", round, k);
        must_set(c, s, key, m->val[k]);
        if (k % 3 == 0) {
            snprintf(m->val[k], sizeof(m->val[k]), "r%d w%d", round, k);
            must_set(c, s, key, m->val[k]);
        }
        if (k % 5 == 0) {
            must_delete(c, s, key, PROTO_ST_OK);
            m->val[k][0] = '\0';
        }
    }
}

static void model_check(struct ctl_cluster *c, struct client_session *s,
                        const struct model *m)
{
    char key[32];
    for (int k = 0; k < MODEL_KEYS; k++) {
        model_key(k, key, sizeof(key));
        must_get(c, s, key, m->val[k][0] != '\0' ? m->val[k] : NULL);
    }
}

/* ---- 1. election ---- */

START_TEST(test_elects_one_leader)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    struct ctl_status lst;
    int leader = wait_leader(c, &lst);
    int agreed = ctl_wait_agreement(c, 5000);
    HARNESS_ASSERT(c, agreed >= 0, "the five servers did not agree on a leader in 5 s");

    /* With heartbeats flowing, leadership stays put: one leader, same term, 1 s later. */
    rk_sleep_ms(1000);
    int again = ctl_wait_agreement(c, 3000);
    HARNESS_ASSERT(c, again >= 0, "no agreement on a leader 1 s later");
    struct ctl_status st = must_status(c, again);
    HARNESS_ASSERT(c, again == leader && st.term == lst.term,
                   "leadership moved without faults: %s term %lld -> %s term %lld",
                   c->servers[leader].name, lst.term, c->servers[again].name, st.term);
    int leaders = 0;
    for (int i = 0; i < c->n; i++) {
        struct ctl_status si = must_status(c, i);
        HARNESS_ASSERT(c, strcmp(si.name, c->servers[i].name) == 0,
                       "server %s calls itself %s", c->servers[i].name, si.name);
        leaders += strcmp(si.role, "leader") == 0;
    }
    HARNESS_ASSERT(c, leaders == 1, "%d servers say role=leader", leaders);
    harness_finish(c);
}
END_TEST

/* ---- 2. requests through a follower ---- */

START_TEST(test_follower_redirect)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    int leader = wait_leader(c, NULL);
    int follower = other_than(c, leader);
    struct client_session *s = session_to(c, follower, false);

    must_set(c, s, "k1", "v1");
    must_get(c, s, "k1", "v1");
    must_set(c, s, "greeting", "hello big wide world");
    must_get(c, s, "greeting", "hello big wide world");
    must_set(c, s, "k1", "v2");
    must_get(c, s, "k1", "v2");
    must_get(c, s, "missing", NULL);
    must_delete(c, s, "k1", PROTO_ST_OK);
    must_get(c, s, "k1", NULL);
    must_delete(c, s, "k1", PROTO_ST_NIL);
    must_delete(c, s, "never-set", PROTO_ST_NIL);
    must_get(c, s, "greeting", "hello big wide world");
    client_session_free(s);

    /* A fresh session to another follower sees the same data. */
    int second = other_than(c, follower);
    if (second == leader)
        second = other_than(c, second);
    s = session_to(c, second, false);
    must_get(c, s, "greeting", "hello big wide world");
    must_get(c, s, "k1", NULL);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 3. leader crash ---- */

/* Kills the leader with SIGKILL and returns how long until a set is acknowledged. The
 * session s was already talking to the old leader. */
static int64_t kill_leader_and_write(struct ctl_cluster *c, struct client_session *s,
                                     int leader)
{
    uint64_t t0 = rk_clock_ms();
    HARNESS_ASSERT(c, ctl_kill(c, leader) == RK_OK, "cannot kill the leader");
    int st = -1;
    char out[256] = "";
    while (rk_clock_ms() - t0 < 8000) {
        st = harness_call(s, PROTO_OP_SET, "after-crash", "yes", out, sizeof(out));
        if (st == PROTO_ST_OK)
            break;
    }
    uint64_t took = rk_clock_ms() - t0;
    HARNESS_ASSERT(c, st == PROTO_ST_OK, "no write acknowledged %lld ms after the crash: %s "
                   "(%s)", (long long)took, status_name(st), out);
    return took;
}

START_TEST(test_leader_crash_failover)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    int leader = wait_leader(c, NULL);
    struct client_session *s = session_to(c, -1, true);
    struct model m;
    model_write(c, s, &m, 1);

    int64_t took = kill_leader_and_write(c, s, leader);
    fprintf(stderr, "integ: kill -9 of the leader -> first acknowledged write in %lld ms\n",
            (long long)took);
    HARNESS_ASSERT(c, took < 2000, "failover took %lld ms (limit 2000)", (long long)took);

    int next = wait_leader(c, NULL);
    HARNESS_ASSERT(c, next != leader, "the dead server is still the leader");
    model_check(c, s, &m);
    must_get(c, s, "after-crash", "yes");
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 4. the old leader rejoins ---- */

START_TEST(test_old_leader_rejoins)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    int old = wait_leader(c, NULL);
    struct client_session *s = session_to(c, -1, true);
    struct model m;
    model_write(c, s, &m, 1);
    kill_leader_and_write(c, s, old);
    wait_leader(c, NULL);
    must_set(c, s, "while-down", "1");

    HARNESS_ASSERT(c, ctl_start(c, old) == RK_OK, "cannot restart the old leader");
    must_set(c, s, "after-rejoin", "2");
    uint64_t deadline = rk_clock_ms() + 10000;
    bool rejoined = false;
    struct ctl_status ost = {0}, lst = {0};
    while (!rejoined && rk_clock_ms() < deadline) {
        int leader = ctl_wait_leader(c, 2000, &lst);
        if (leader >= 0 && leader != old && ctl_status_of(c, old, &ost, 500) == RK_OK)
            rejoined = strcmp(ost.role, "follower") == 0 && ost.term == lst.term &&
                       strcmp(ost.leader, lst.name) == 0 && ost.commit >= lst.commit;
        if (!rejoined)
            rk_sleep_ms(50);
    }
    HARNESS_ASSERT(c, rejoined,
                   "old leader: role=%s term=%lld leader=%s commit=%lld; leader %s: term=%lld "
                   "commit=%lld", ost.role, ost.term, ost.leader, ost.commit, lst.name,
                   lst.term, lst.commit);
    model_check(c, s, &m);
    must_get(c, s, "while-down", "1");
    must_get(c, s, "after-rejoin", "2");
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 5. a wiped follower catches up ---- */

START_TEST(test_wiped_follower_catches_up)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    int leader = wait_leader(c, NULL);
    int f = other_than(c, leader);
    struct client_session *s = session_to(c, -1, true);
    struct model m;
    model_write(c, s, &m, 1);

    int rc = ctl_stop(c, f);
    HARNESS_ASSERT(c, rc == RK_OK, "SIGTERM of %s: not a clean exit (%s)",
                   c->servers[f].name, rk_strerror(rc));
    HARNESS_ASSERT(c, ctl_wipe(c, f) == RK_OK, "cannot wipe %s", c->servers[f].name);
    model_write(c, s, &m, 2);
    leader = wait_leader(c, NULL);
    struct ctl_status lst = must_status(c, leader);

    HARNESS_ASSERT(c, ctl_start(c, f) == RK_OK, "cannot restart %s", c->servers[f].name);
    rc = ctl_wait_commit(c, f, lst.commit, 10000);
    struct ctl_status fst = must_status(c, f);
    HARNESS_ASSERT(c, rc == RK_OK && fst.last >= lst.commit,
                   "wiped %s: commit=%lld last=%lld, leader commit was %lld",
                   c->servers[f].name, fst.commit, fst.last, lst.commit);

    /* No writes now: wait until both logs end at the same index, then compare files. */
    uint64_t deadline = rk_clock_ms() + 5000;
    do {
        lst = must_status(c, leader);
        fst = must_status(c, f);
        if (fst.last == lst.last && fst.commit == lst.commit)
            break;
        rk_sleep_ms(50);
    } while (rk_clock_ms() < deadline);
    HARNESS_ASSERT(c, fst.last == lst.last, "logs end at %lld (%s) and %lld (leader %s)",
                   fst.last, c->servers[f].name, lst.last, c->servers[leader].name);
    char fpath[256], lpath[256];
    ctl_server_path(c, f, "_log.txt", fpath, sizeof(fpath));
    ctl_server_path(c, leader, "_log.txt", lpath, sizeof(lpath));
    long flines = harness_count_lines(fpath), llines = harness_count_lines(lpath);
    HARNESS_ASSERT(c, flines > 0 && flines == llines,
                   "%s has %ld lines, the leader's %s has %ld", fpath, flines, lpath, llines);
    model_check(c, s, &m);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 6. no quorum, no writes ---- */

START_TEST(test_no_quorum_no_writes)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    int leader = wait_leader(c, NULL);
    struct client_session *s = session_to(c, -1, true);
    struct model m;
    model_write(c, s, &m, 1);
    struct ctl_status before = must_status(c, leader);

    /* Three followers down: the leader alone with one follower cannot commit. */
    int down[3], nd = 0;
    for (int i = 0; i < c->n && nd < 3; i++)
        if (i != leader)
            down[nd++] = i;
    for (int k = 0; k < 3; k++)
        HARNESS_ASSERT(c, ctl_kill(c, down[k]) == RK_OK, "cannot kill %d", down[k]);

    struct client_session *quick = harness_session(c, -1, true, 1500);
    HARNESS_ASSERT(c, quick != NULL, "no session");
    char out[256] = "";
    uint64_t t0 = rk_clock_ms();
    int st = harness_call(quick, PROTO_OP_SET, "no-quorum", "must-not-ack", out, sizeof(out));
    uint64_t took = rk_clock_ms() - t0;
    client_session_free(quick);
    HARNESS_ASSERT(c, st != PROTO_ST_OK, "a set was acknowledged with 3 of 5 servers down");
    HARNESS_ASSERT(c, took < 5000, "a set with a 1.5 s timeout took %lld ms",
                   (long long)took);
    struct ctl_status during = must_status(c, leader);
    HARNESS_ASSERT(c, during.commit == before.commit,
                   "commit index moved from %lld to %lld without a quorum", before.commit,
                   during.commit);

    for (int k = 0; k < 3; k++)
        HARNESS_ASSERT(c, ctl_start(c, down[k]) == RK_OK, "cannot restart %d", down[k]);
    wait_leader(c, NULL);
    must_set(c, s, "quorum-back", "yes");
    must_get(c, s, "quorum-back", "yes");
    model_check(c, s, &m);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 7. garbage on the wire ---- */

static int raw_connect(struct ctl_cluster *c, int i)
{
    char err[256];
    int fd = net_connect("127.0.0.1", c->servers[i].port, 2000, err, sizeof(err));
    HARNESS_ASSERT(c, fd >= 0, "connect to %s: %s", c->servers[i].name, err);
    net_set_timeouts(fd, 2000);
    return fd;
}

static void fill_random(uint8_t *buf, size_t len, unsigned *seed)
{
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)rand_r(seed);
}

/* Sends each kind of junk on its own connection; write errors are fine (the server may
 * close early), a crash or a stuck server is not. */
static void send_garbage(struct ctl_cluster *c, int i, unsigned *seed)
{
    uint8_t junk[4096];
    int fd = raw_connect(c, i); /* random bytes from the first byte on */
    fill_random(junk, sizeof(junk), seed);
    (void)net_write_full(fd, junk, sizeof(junk));
    close(fd);

    fd = raw_connect(c, i); /* a huge length prefix */
    uint8_t huge[8] = {0xFF, 0xFF, 0xFF, 0xF0, 1, 2, 3, 4};
    (void)net_write_full(fd, huge, sizeof(huge));
    close(fd);

    fd = raw_connect(c, i); /* a good client hello, then bad frames */
    struct proto_buf b = {0};
    HARNESS_ASSERT(c, proto_encode_hello_client(&b) == RK_OK, "encode hello");
    (void)net_write_full(fd, b.data, b.len);
    proto_buf_free(&b);
    uint8_t short_req[3] = {PROTO_CLIENT_REQ, PROTO_OP_SET, 0xFF};
    uint8_t bad_type[5] = {99, 1, 2, 3, 4};
    uint8_t lying_key[10] = {PROTO_CLIENT_REQ, PROTO_OP_GET, 0x7F, 0xFF, 0xFF, 0xFF, 'a'};
    (void)harness_send_frame(fd, short_req, sizeof(short_req));
    (void)harness_send_frame(fd, bad_type, sizeof(bad_type));
    (void)harness_send_frame(fd, lying_key, sizeof(lying_key));
    fill_random(junk, sizeof(junk), seed);
    (void)net_write_full(fd, junk, sizeof(junk));
    close(fd);

    fd = raw_connect(c, i); /* a peer hello from a stranger, then a random RAFT frame */
    HARNESS_ASSERT(c, proto_encode_hello_peer(&b, "intruder", 0) == RK_OK, "encode hello");
    (void)net_write_full(fd, b.data, b.len);
    proto_buf_free(&b);
    fill_random(junk, 512, seed);
    junk[0] = PROTO_RAFT;
    (void)harness_send_frame(fd, junk, 512);
    close(fd);
}

START_TEST(test_garbage_does_not_hurt)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    int leader = wait_leader(c, NULL);
    int follower = other_than(c, leader);
    unsigned seed = 12345;
    int idle = raw_connect(c, leader); /* an idle connection stays open throughout */
    for (int round = 0; round < 3; round++) {
        send_garbage(c, leader, &seed);
        send_garbage(c, follower, &seed);
    }
    rk_sleep_ms(200);
    HARNESS_ASSERT(c, ctl_is_running(c, leader) && ctl_is_running(c, follower),
                   "a server died after garbage input");
    must_status(c, leader);
    must_status(c, follower);
    int now_leader = wait_leader(c, NULL);
    struct client_session *s = session_to(c, follower, false);
    must_set(c, s, "after-garbage", "still fine");
    must_get(c, s, "after-garbage", "still fine");
    client_session_free(s);
    s = session_to(c, now_leader, false);
    must_get(c, s, "after-garbage", "still fine");
    client_session_free(s);
    close(idle);
    harness_finish(c);
}
END_TEST

/* ---- 8. durability across a full restart ---- */

START_TEST(test_full_restart_keeps_data)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    wait_leader(c, NULL);
    struct client_session *s = session_to(c, -1, true);
    struct model m;
    model_write(c, s, &m, 1);
    client_session_free(s);

    for (int i = 0; i < c->n; i++) {
        int rc = ctl_stop(c, i);
        HARNESS_ASSERT(c, rc == RK_OK, "SIGTERM of %s: not a clean exit (%s)",
                       c->servers[i].name, rk_strerror(rc));
    }
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "cannot restart the cluster");
    wait_leader(c, NULL);
    s = session_to(c, -1, true);
    model_check(c, s, &m);
    model_write(c, s, &m, 2);
    model_check(c, s, &m);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 9. durability across a crash of every server ---- */

START_TEST(test_full_crash_keeps_acknowledged_data)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    wait_leader(c, NULL);
    struct client_session *s = session_to(c, -1, true);
    struct model m;
    model_write(c, s, &m, 1);
    client_session_free(s);

    for (int i = 0; i < c->n; i++)
        HARNESS_ASSERT(c, ctl_kill(c, i) == RK_OK, "cannot kill %s", c->servers[i].name);
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "cannot restart the cluster");
    wait_leader(c, NULL);
    s = session_to(c, -1, true);
    model_check(c, s, &m);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 10. a paused (partitioned) leader comes back ---- */

START_TEST(test_paused_leader_no_stale_read)
{
    struct ctl_cluster *c = start_cluster(N_SERVERS);
    int old = wait_leader(c, NULL);
    struct client_session *to_old = session_to(c, old, false);
    must_set(c, to_old, "x", "before-pause");
    struct ctl_status ost = must_status(c, old);

    HARNESS_ASSERT(c, ctl_pause(c, old) == RK_OK, "cannot SIGSTOP the leader");
    struct ctl_status nst;
    int next = ctl_wait_leader(c, LEADER_WAIT_MS, &nst);
    HARNESS_ASSERT(c, next >= 0 && next != old, "no new leader while the old one is paused");
    HARNESS_ASSERT(c, nst.term > ost.term, "new leader's term %lld is not above %lld",
                   nst.term, ost.term);
    struct client_session *to_new = session_to(c, next, false);
    must_set(c, to_new, "x", "after-pause");

    /* The old leader wakes up believing it leads: a read through it must not be stale
     * (§8: a leader must check it has not been deposed before answering a read). */
    HARNESS_ASSERT(c, ctl_resume(c, old) == RK_OK, "cannot SIGCONT the old leader");
    must_get(c, to_old, "x", "after-pause");
    must_set(c, to_old, "y", "via-old-address");
    uint64_t deadline = rk_clock_ms() + 3000;
    bool stepped_down = false;
    while (!stepped_down && rk_clock_ms() < deadline) {
        if (ctl_status_of(c, old, &ost, 500) == RK_OK)
            stepped_down = strcmp(ost.role, "leader") != 0 && ost.term >= nst.term;
        if (!stepped_down)
            rk_sleep_ms(30);
    }
    HARNESS_ASSERT(c, stepped_down, "old leader after SIGCONT: role=%s term=%lld", ost.role,
                   ost.term);
    must_get(c, to_new, "y", "via-old-address");
    must_get(c, to_new, "x", "after-pause");
    client_session_free(to_old);
    client_session_free(to_new);
    harness_finish(c);
}
END_TEST

/* One TCase per test, so that one can run alone: CK_RUN_CASE=failover build/.../integ_cluster */
static void add_case(Suite *s, const char *name, const TTest *test)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

static Suite *integ_cluster_suite(void)
{
    Suite *s = suite_create("integ_cluster");
    add_case(s, "election", test_elects_one_leader);
    add_case(s, "redirect", test_follower_redirect);
    add_case(s, "failover", test_leader_crash_failover);
    add_case(s, "rejoin", test_old_leader_rejoins);
    add_case(s, "wipe", test_wiped_follower_catches_up);
    add_case(s, "quorum", test_no_quorum_no_writes);
    add_case(s, "garbage", test_garbage_does_not_hurt);
    add_case(s, "restart", test_full_restart_keeps_data);
    add_case(s, "crash", test_full_crash_keeps_acknowledged_data);
    add_case(s, "pause", test_paused_leader_no_stale_read);
    return s;
}

RK_CHECK_MAIN(integ_cluster_suite)
