/* tests/integ_membership.c - membership changes and leadership transfer on real clusters
 * on 127.0.0.1 (Raft thesis §4, §3.10): replacing every server one by one (then restarting
 * the new ones, which take their configuration from their logs), growing from 3
 * to 5 and back, adding a server that is not running, removing the leader, and a rolling
 * restart by SIGTERM under a stream of writes. Servers added here are started with --join
 * (ctl_add_spare) and added through a client session, as `raft_client add` does. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define LEADER_WAIT_MS 10000
#define CALL_TIMEOUT_MS 5000
#define ADD_TIMEOUT_MS 30000
#define CASE_TIMEOUT_S 120
#define KEYS 40

/* ---- helpers ---- */

static struct ctl_cluster *start_cluster(int n)
{
    return harness_start(n, LEADER_WAIT_MS);
}

/* A session that tries server i first (-1: none) and then the registry's servers. */
static struct client_session *session_to(struct ctl_cluster *c, int i, bool registry)
{
    struct client_session *s = harness_session(c, i, registry, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "cannot create a client session");
    return s;
}

/* One command; asserts its status (and, with want_body, its body). */
static void expect(struct ctl_cluster *c, struct client_session *s, int op, const char *key,
                   const char *val, int want, const char *want_body)
{
    char out[1024];
    int st = harness_call(s, op, key, val, out, sizeof(out));
    HARNESS_ASSERT(c, st == want && (want_body == NULL || strcmp(out, want_body) == 0),
                   "op %d %s %s: status %d '%s', want %d '%s'", op, key ? key : "",
                   val ? val : "", st, out, want, want_body ? want_body : "");
}

static void write_keys(struct ctl_cluster *c, struct client_session *s, int from, int to)
{
    char key[32], val[32];
    for (int k = from; k < to; k++) {
        snprintf(key, sizeof(key), "key%d", k);
        snprintf(val, sizeof(val), "value%d", k);
        expect(c, s, PROTO_OP_SET, key, val, PROTO_ST_OK, NULL);
    }
}

static void check_keys(struct ctl_cluster *c, struct client_session *s, int to)
{
    char key[32], val[32];
    for (int k = 0; k < to; k++) {
        snprintf(key, sizeof(key), "key%d", k);
        snprintf(val, sizeof(val), "value%d", k);
        expect(c, s, PROTO_OP_GET, key, NULL, PROTO_ST_VALUE, val);
    }
}

/* Starts a spare server with --join and adds it as a voter. Its index. */
static int add_server(struct ctl_cluster *c, struct client_session *s)
{
    char err[256], addr[64];
    int i = ctl_add_spare(c, err, sizeof(err));
    HARNESS_ASSERT(c, i >= 0, "spare: %s", err);
    HARNESS_ASSERT(c, ctl_start(c, i) == RK_OK, "start %s", c->servers[i].name);
    snprintf(addr, sizeof(addr), "127.0.0.1 %u", (unsigned)c->servers[i].port);
    expect(c, s, PROTO_OP_ADD, c->servers[i].name, addr, PROTO_ST_OK, NULL);
    ctl_set_voter(c, i, true);
    return i;
}

/* Removes server i (then stops it: it is no member any more). */
static void remove_server(struct ctl_cluster *c, struct client_session *s, int i)
{
    expect(c, s, PROTO_OP_REMOVE, c->servers[i].name, "", PROTO_ST_OK, NULL);
    ctl_set_voter(c, i, false);
    ctl_kill(c, i);
}

/* The members' lines, as MEMBERS answers them. */
static void members_are(struct ctl_cluster *c, struct client_session *s, const int *idx, int n)
{
    char want[1024] = "";
    for (int k = 0; k < n; k++) {
        const struct ctl_server *v = &c->servers[idx[k]];
        size_t len = strlen(want);
        snprintf(want + len, sizeof(want) - len, "%s %s %u voter\n", v->name, v->host,
                 (unsigned)v->port);
    }
    expect(c, s, PROTO_OP_MEMBERS, "", "", PROTO_ST_VALUE, want);
}

/* ---- cases ---- */

/* Start 3, add 3 new ones, remove the 3 originals: every key is still there, a leader
 * leads, and a client given only one new server finds it (consul#8964 is the failure of
 * this very procedure). */
START_TEST(test_replace_every_server)
{
    struct ctl_cluster *c = start_cluster(3);
    struct client_session *s = session_to(c, -1, true);
    write_keys(c, s, 0, KEYS / 2);
    int added[3];
    for (int k = 0; k < 3; k++)
        added[k] = add_server(c, s);
    write_keys(c, s, KEYS / 2, KEYS);
    for (int k = 0; k < 3; k++)
        remove_server(c, s, k);
    client_session_free(s);
    HARNESS_ASSERT(c, ctl_wait_leader(c, LEADER_WAIT_MS, NULL) >= added[0], "no new leader");
    s = session_to(c, added[1], false); /* one current member, no registry */
    check_keys(c, s, KEYS);
    members_are(c, s, added, 3);
    client_session_free(s);
    /* Restarted, the new servers take their configuration from their own files (thesis
     * §4.1), not from the registry, which does not list them: their logs hold it. */
    for (int k = 0; k < 3; k++)
        HARNESS_ASSERT(c, ctl_restart(c, added[k]) == RK_OK, "restart %s",
                       c->servers[added[k]].name);
    HARNESS_ASSERT(c, ctl_wait_leader(c, LEADER_WAIT_MS, NULL) >= added[0],
                   "no leader after restarting the new servers");
    s = session_to(c, added[2], false);
    check_keys(c, s, KEYS);
    members_are(c, s, added, 3);
    write_keys(c, s, KEYS, KEYS + 5);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* 3 -> 5 -> 3, writing all along; the status line says how many vote. */
START_TEST(test_grow_and_shrink)
{
    struct ctl_cluster *c = start_cluster(3);
    struct client_session *s = session_to(c, -1, true);
    write_keys(c, s, 0, 10);
    int a = add_server(c, s), b = add_server(c, s);
    struct ctl_status st;
    HARNESS_ASSERT(c, ctl_status_of(c, b, &st, 2000) == RK_OK && st.voters == 5,
                   "%s says voters=%lld", c->servers[b].name, st.voters);
    write_keys(c, s, 10, 20);
    remove_server(c, s, a);
    remove_server(c, s, b);
    HARNESS_ASSERT(c, ctl_status_of(c, 0, &st, 2000) == RK_OK && st.voters == 3,
                   "s1 says voters=%lld", st.voters);
    write_keys(c, s, 20, 30);
    check_keys(c, s, 30);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* Adding a server that is not running fails ("not reachable") and leaves the cluster as
 * it was: it keeps its quorum and takes writes (etcd#6420 is the failure of this). */
START_TEST(test_add_server_not_running)
{
    struct ctl_cluster *c = start_cluster(3);
    struct client_session *s = session_to(c, -1, true);
    write_keys(c, s, 0, 5);
    char err[256], addr[64];
    int i = ctl_add_spare(c, err, sizeof(err));
    HARNESS_ASSERT(c, i >= 0, "spare: %s", err);
    snprintf(addr, sizeof(addr), "127.0.0.1 %u", (unsigned)c->servers[i].port);
    expect(c, s, PROTO_OP_ADD, c->servers[i].name, addr, PROTO_ST_ERR, "not reachable");
    int members[] = { 0, 1, 2 };
    members_are(c, s, members, 3);
    write_keys(c, s, 5, 10);
    check_keys(c, s, 10);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* Removing the leader: it leads until the configuration without it is committed, then
 * steps down (thesis §4.2.2); the others elect a leader and take writes. */
START_TEST(test_remove_leader)
{
    struct ctl_cluster *c = start_cluster(3);
    struct client_session *s = session_to(c, -1, true);
    write_keys(c, s, 0, 5);
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    remove_server(c, s, leader);
    int next = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    HARNESS_ASSERT(c, next >= 0 && next != leader, "no new leader (got %d)", next);
    write_keys(c, s, 5, 10);
    check_keys(c, s, 10);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- a rolling restart under writes ---- */

struct writer {
    struct ctl_cluster *c;
    atomic_bool stop;
    long ok, failed;
    uint64_t longest_ms;
    char first_failure[320];
};

static void *write_loop(void *arg)
{
    struct writer *w = arg;
    struct client_session *s = harness_session(w->c, -1, true, CALL_TIMEOUT_MS);
    char out[200], key[32];
    for (long k = 0; s != NULL && !atomic_load(&w->stop) && k < 1000000; k++) {
        snprintf(key, sizeof(key), "w%ld", k % 100);
        uint64_t t0 = rk_clock_ms();
        int st = harness_call(s, PROTO_OP_SET, key, "v", out, sizeof(out));
        uint64_t took = rk_clock_ms() - t0;
        if (took > w->longest_ms)
            w->longest_ms = took;
        if (st == PROTO_ST_OK) {
            w->ok++;
        } else if (w->failed++ == 0) {
            snprintf(w->first_failure, sizeof(w->first_failure), "status %d: %s", st, out);
        }
    }
    client_session_free(s);
    return NULL;
}

/* Every server of 5 restarted by SIGTERM, one at a time, while a client writes: a leader
 * hands leadership off before it stops, so no write fails. (The longest write is printed;
 * `make bench` measures it.) */
START_TEST(test_rolling_restart_under_writes)
{
    struct ctl_cluster *c = start_cluster(5);
    struct writer w = { .c = c };
    atomic_init(&w.stop, false);
    pthread_t t;
    HARNESS_ASSERT(c, pthread_create(&t, NULL, write_loop, &w) == 0, "writer thread");
    rk_sleep_ms(300);
    for (int i = 0; i < 5; i++) {
        HARNESS_ASSERT(c, ctl_restart(c, i) == RK_OK, "restart %s", c->servers[i].name);
        HARNESS_ASSERT(c, ctl_wait_agreement(c, LEADER_WAIT_MS) >= 0, "no agreement after "
                       "restarting %s", c->servers[i].name);
        rk_sleep_ms(200);
    }
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    fprintf(stderr, "integ_membership: rolling restart: %ld writes, %ld failed, longest %llu "
            "ms\n", w.ok, w.failed, (unsigned long long)w.longest_ms);
    HARNESS_ASSERT(c, w.ok > 0 && w.failed == 0, "%ld writes failed during the rolling "
                   "restart (first: %s)", w.failed, w.first_failure);
    harness_finish(c);
}
END_TEST

/* ---- a leader whose disk stalls ---- */

/* A leader whose fdatasync hangs longer than --disk-stall-ms hands leadership to an
 * up-to-date follower and campaigns no more until its disk answers (hashicorp/raft#503
 * is the failure of this): writes go on through the new leader, and the old one catches
 * up once its disk answers again. */
START_TEST(test_leader_disk_stall_hands_off)
{
    char err[256];
    struct ctl_cluster *c = harness_cluster_new(3, err, sizeof(err));
    ck_assert_msg(c != NULL, "harness_cluster_new: %s", err);
    c->server_bin = harness_fault_server_bin();
    c->server_args[c->n_server_args++] = "--disk-stall-ms";
    c->server_args[c->n_server_args++] = "400";
    setenv("RK_FAULT_STALL_DIR", c->dir, 1);
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "starting the servers");
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    HARNESS_ASSERT(c, leader >= 0, "no first leader");
    struct client_session *s = session_to(c, -1, true);
    write_keys(c, s, 0, 10);
    harness_stall_disk(c, leader, true);
    uint64_t t0 = rk_clock_ms();
    write_keys(c, s, 10, 20); /* the followers' disks still commit them */
    struct ctl_status st;
    int next = leader;
    while (next == leader && rk_clock_ms() - t0 < LEADER_WAIT_MS) {
        next = ctl_wait_leader(c, LEADER_WAIT_MS, &st);
        rk_sleep_ms(next == leader ? 50 : 0);
    }
    HARNESS_ASSERT(c, next >= 0 && next != leader, "no new leader (got %d)", next);
    fprintf(stderr, "integ_membership: disk stall: %s leads %llu ms after %s's disk stalled\n",
            c->servers[next].name, (unsigned long long)(rk_clock_ms() - t0),
            c->servers[leader].name);
    write_keys(c, s, 20, 30);
    harness_stall_disk(c, leader, false);
    HARNESS_ASSERT(c, ctl_wait_applied(c, leader, st.commit, LEADER_WAIT_MS) == RK_OK,
                   "%s did not catch up once its disk answered", c->servers[leader].name);
    check_keys(c, s, 30);
    client_session_free(s);
    HARNESS_ASSERT(c, harness_log_lines_with(c, leader, "the disk has not answered", NULL) >= 1 &&
                      harness_log_lines_with(c, leader, "campaigning again", NULL) >= 1,
                   "%s does not log the stall and its end", c->servers[leader].name);
    harness_finish(c);
}
END_TEST

static Suite *membership_suite(void)
{
    Suite *s = suite_create("integ_membership");
    TCase *tc = tcase_create("membership");
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test_add_server_not_running);
    tcase_add_test(tc, test_remove_leader);
    tcase_add_test(tc, test_grow_and_shrink);
    tcase_add_test(tc, test_replace_every_server);
    tcase_add_test(tc, test_rolling_restart_under_writes);
    tcase_add_test(tc, test_leader_disk_stall_hands_off);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(membership_suite)
