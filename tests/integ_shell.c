/* tests/integ_shell.c - the threaded shell's own parts in one process, on real sockets and
 * threads on 127.0.0.1 but with no cluster: the outgoing peer link (server/net/peer_link.c),
 * node_stop waiting for send tokens (server/node/node.c), and the client loop taking a
 * connection while it stops (server/net/client_loop.c). Each case is a bug that was
 * found by reading the code; each fails on the code that had it.
 *
 * This program is linked with -Wl,--wrap=pthread_mutex_lock (Makefile): a thread may arm
 * a trap that holds it just before its next lock, so a race can be played out in a fixed
 * order. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/frame_reader.h"
#include "../common/net.h"
#include "../common/proto.h"
#include "../server/net/client_loop.h"
#include "../server/net/peer_link.h"
#include "../server/node/node.h"
#include "check_main.h"

#define CASE_TIMEOUT_S 30
#define WAIT_MS 3000
#define BIG_FRAME_BYTES (8u << 20)   /* far more than loopback's socket buffers hold */

/* ---- the lock trap (see the top of the file) ---- */

int __real_pthread_mutex_lock(pthread_mutex_t *m);
int __wrap_pthread_mutex_lock(pthread_mutex_t *m);

static _Thread_local bool trap_armed;
static sem_t trap_reached, trap_release;

int __wrap_pthread_mutex_lock(pthread_mutex_t *m)
{
    if (trap_armed) {
        trap_armed = false;
        sem_post(&trap_reached);
        while (sem_wait(&trap_release) != 0)
            ;
    }
    return __real_pthread_mutex_lock(m);
}

static bool sem_wait_ms(sem_t *s, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(s, &ts) != 0)
        if (errno != EINTR)
            return false;
    return true;
}

/* ---- a node with no core, no disk and no threads of its own ---- */

static struct node node; /* static: what a case leaves allocated stays reachable */

/* A node named "self" in a registry of two: "self" and "peer" at peer_port. */
static void node_setup(uint16_t peer_port)
{
    static struct registry_server servers[2];
    memset(servers, 0, sizeof(servers));
    snprintf(servers[0].name, sizeof(servers[0].name), "self");
    snprintf(servers[0].host, sizeof(servers[0].host), "127.0.0.1");
    servers[0].port = 1;
    snprintf(servers[1].name, sizeof(servers[1].name), "peer");
    snprintf(servers[1].host, sizeof(servers[1].host), "127.0.0.1");
    servers[1].port = peer_port;
    struct registry reg = { .servers = servers, .n = 2 };
    ck_assert_int_eq(node_init(&node, &reg, "self", NULL), RK_OK);
    ck_assert_int_eq(node_snap_init(&node, "/tmp"), RK_OK);
    struct node_peer_addr *a = &node.peers[1].addr; /* as node_sync_peers would */
    node.peers[1].known = node.peers[1].member = true;
    snprintf(a->name, sizeof(a->name), "peer");
    snprintf(a->host, sizeof(a->host), "127.0.0.1");
    a->port = peer_port;
    a->gen = 1;
    a->self_id = 0;
}

/* A listener on a free 127.0.0.1 port. */
static int listen_any(uint16_t *port)
{
    char err[256];
    int fd = net_listen("127.0.0.1", 0, 4, err, sizeof(err));
    ck_assert_msg(fd >= 0, "listen: %s", err);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static int accept_within(int lfd, int ms)
{
    struct pollfd pfd = { .fd = lfd, .events = POLLIN };
    ck_assert_msg(poll(&pfd, 1, ms) == 1, "no connection came within %d ms", ms);
    int fd = accept(lfd, NULL, NULL);
    ck_assert_msg(fd >= 0, "accept: %s", strerror(errno));
    return fd;
}

/* One frame of len payload bytes, all `fill`. */
static void make_frame(struct proto_buf *b, uint32_t len, uint8_t fill)
{
    b->len = 0;
    uint8_t head[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                        (uint8_t)len };
    ck_assert_int_eq(proto_buf_append(b, head, 4), RK_OK);
    uint8_t chunk[4096];
    memset(chunk, fill, sizeof(chunk));
    for (uint32_t done = 0; done < len;) {
        uint32_t n = len - done < sizeof(chunk) ? len - done : (uint32_t)sizeof(chunk);
        ck_assert_int_eq(proto_buf_append(b, chunk, n), RK_OK);
        done += n;
    }
}

/* Reads the next frame from r (within WAIT_MS): its length and first byte. */
static int next_frame(struct frame_reader *r, size_t *len, uint8_t *first)
{
    uint64_t deadline = rk_clock_ms() + WAIT_MS;
    struct frame_reader_rules rules = { .max = PROTO_MAX_FRAME, .idle_deadline = deadline,
                                        .frame_ms = WAIT_MS, .hard_deadline = deadline };
    uint8_t *payload;
    char reason[256];
    int rc = frame_reader_read(r, &rules, &payload, len, reason, sizeof(reason));
    *first = rc == RK_OK ? payload[0] : 0;
    return rc;
}

/* ---- 1. half a frame is never sent on a new connection ---- */

/* A non-blocking write leaves the rest of a big frame; the peer then closes the
 * connection. The next send must reconnect with HELLO_PEER and then whole frames: the
 * rest of the old frame on the new connection would be read as a frame header (here a
 * length of 0xFFFFFFFF) and the peer would close it. */
START_TEST(test_half_frame_not_sent_on_new_connection)
{
    uint16_t port;
    int lfd = listen_any(&port);
    node_setup(port);
    struct peer_link l;
    peer_link_init(&l, &node, 1);
    peer_link_set_addr(&l, &node.peers[1].addr);
    struct proto_buf small = { 0 }, big = { 0 };
    make_frame(&small, 10, 's');
    ck_assert(peer_link_send(&l, small.data, small.len));
    int a = accept_within(lfd, WAIT_MS);

    make_frame(&big, BIG_FRAME_BYTES, 0xFF);
    ck_assert_msg(!peer_link_send_nowait(&l, big.data, big.len),
                  "the socket took %u bytes at once: the test needs a partial write",
                  BIG_FRAME_BYTES);
    ck_assert_msg(l.backlog.len > 0 && !l.backlog_whole, "the backlog must be the rest of "
                  "a frame (len %zu, whole %d)", l.backlog.len, l.backlog_whole);
    close(a); /* unread data: the peer's side resets the connection */
    struct pollfd pfd = { .fd = l.fd, .events = POLLIN };
    ck_assert_msg(poll(&pfd, 1, WAIT_MS) == 1, "the reset did not reach the link");

    make_frame(&small, 20, 't');
    peer_link_send(&l, small.data, small.len);
    int b = accept_within(lfd, WAIT_MS);
    struct frame_reader r;
    frame_reader_init(&r, b);
    size_t len;
    uint8_t first;
    ck_assert_int_eq(next_frame(&r, &len, &first), RK_OK);
    ck_assert_msg(first == PROTO_HELLO_PEER, "the new connection starts with frame type %d",
                  first);
    int rc = next_frame(&r, &len, &first);
    ck_assert_msg(rc == RK_OK && len == 20 && first == 't', "after the HELLO came rc %d "
                  "(%s), a frame of %zu bytes starting 0x%02x, not the 20-byte frame sent",
                  rc, rk_strerror(rc), len, first);
    frame_reader_free(&r);
    close(b);
    close(lfd);
    peer_link_close(&l);
    proto_buf_free(&small);
    proto_buf_free(&big);
}
END_TEST

/* ---- 2. node_stop waits for the send tokens without polling ---- */

#define TOKEN_HOLD_MS 300
#define STOP_SWITCHES_MAX 20 /* polling every millisecond would be about 300 */

static sem_t token_taken;

/* Holds peer 1's send token for TOKEN_HOLD_MS, as a replicator blocked in a send would. */
static void *hold_token(void *arg)
{
    (void)arg;
    struct node_peer *p = &node.peers[1];
    pthread_mutex_lock(&node.mu);
    node_peer_take(&node, p, NULL);
    pthread_mutex_unlock(&node.mu);
    sem_post(&token_taken);
    rk_sleep_ms(TOKEN_HOLD_MS);
    pthread_mutex_lock(&node.mu);
    node_peer_give_back(&node, p, false, false);
    pthread_mutex_unlock(&node.mu);
    return NULL;
}

/* The context switches this thread made of its own accord (it slept or waited). */
static long voluntary_switches(void)
{
    FILE *f = fopen("/proc/thread-self/status", "r");
    ck_assert_msg(f != NULL, "/proc/thread-self/status: %s", strerror(errno));
    char line[256];
    long v = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
            break;
    fclose(f);
    ck_assert_int_ge(v, 0);
    return v;
}

START_TEST(test_stop_waits_for_tokens_without_polling)
{
    node_setup(1);
    sem_init(&token_taken, 0, 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, hold_token, NULL), 0);
    ck_assert(sem_wait_ms(&token_taken, WAIT_MS));
    uint64_t start = rk_clock_ms();
    long before = voluntary_switches();
    node_stop(&node);
    long switches = voluntary_switches() - before;
    uint64_t took = rk_clock_ms() - start;
    pthread_join(t, NULL);
    ck_assert_msg(!node.peers[1].sending, "node_stop returned while the token was held");
    ck_assert_msg(took >= TOKEN_HOLD_MS / 2, "node_stop took %llu ms: it did not wait for "
                  "the token", (unsigned long long)took);
    ck_assert_msg(switches <= STOP_SWITCHES_MAX, "node_stop woke %ld times in %llu ms "
                  "waiting for one token: it polls", switches, (unsigned long long)took);
}
END_TEST

/* ---- 3. a connection handed to a stopping client loop is closed, never lost ---- */

struct adopter {
    struct frame_reader in;
};

/* Hands the connection over with the lock trap armed: it stops just before the client
 * loop's lock. */
static void *adopt_trapped(void *arg)
{
    struct adopter *a = arg;
    trap_armed = true;
    client_loop_adopt(&node, &a->in, "test");
    return NULL;
}

/* A connection thread has read a client's HELLO and hands the connection to the loop;
 * meanwhile the server stops the loop. Played out in the order that lost it: the hand-over
 * had decided the loop was running, then the loop stopped and took its last list, then the
 * hand-over put the connection on the list. Nobody would ever close it. */
START_TEST(test_adopt_during_stop_closes_the_connection)
{
    node_setup(1);
    sem_init(&trap_reached, 0, 0);
    sem_init(&trap_release, 0, 0);
    ck_assert_int_eq(client_loop_start(&node), RK_OK);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    atomic_fetch_add(&node.n_clients, 1); /* the slot conn.c takes before the hand-over */
    static struct adopter a;
    frame_reader_init(&a.in, sv[0]);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, adopt_trapped, &a), 0);
    ck_assert_msg(sem_wait_ms(&trap_reached, WAIT_MS), "the hand-over took no lock");
    client_loop_stop(&node);
    sem_post(&trap_release);
    pthread_join(t, NULL);

    struct pollfd pfd = { .fd = sv[1], .events = POLLIN };
    char c;
    bool closed = poll(&pfd, 1, WAIT_MS) == 1 && read(sv[1], &c, 1) == 0;
    ck_assert_msg(closed, "the connection handed over during the stop was never closed");
    ck_assert_uint_eq(atomic_load(&node.n_clients), 0);
    close(sv[1]);
}
END_TEST

static Suite *shell_suite(void)
{
    Suite *s = suite_create("integ_shell");
    TCase *tc = tcase_create("shell");
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test_half_frame_not_sent_on_new_connection);
    tcase_add_test(tc, test_stop_waits_for_tokens_without_polling);
    tcase_add_test(tc, test_adopt_during_stop_closes_the_connection);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(shell_suite)
