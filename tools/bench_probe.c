/* tools/bench_probe.c - the failover probers: one thread per server that every 10 ms
 * starts a write on a fresh connection (raft-kv: HELLO and a SET; etcd: a put through its
 * gateway), without waiting for the ones still out (an etcd follower holds a put while
 * there is no leader; a raft-kv follower redirects at once), and notes the first write
 * acknowledged among those started after the kill. Each attempt gets 2 s. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/bytes.h"
#include "../common/clock.h"
#include "../common/errors.h"
#include "bench.h"

#define PROBE_EVERY_MS 10
#define PROBE_IO_MS 2000
#define PROBE_VALUE_SIZE 100
#define MAX_ATTEMPTS (PROBE_IO_MS / PROBE_EVERY_MS + 8) /* in flight, per server */
#define ANSWER_MAX 1024

/* One write on its own connection. */
struct attempt {
    int fd;
    bool connected;
    uint64_t start_ns;
    size_t sent, have;
    uint8_t in[ANSWER_MAX];
};

struct prober {
    struct bench_probers *all;
    struct bench_target t;
    struct sockaddr_in addr;
    struct proto_buf req; /* the bytes every attempt sends */
    struct attempt a[MAX_ATTEMPTS];
    int n;
    pthread_t thread;
};

struct bench_probers {
    atomic_bool stop;
    atomic_ullong armed_ns; /* when the kill happened; 0 while not armed */
    atomic_ullong ack_ns;   /* the first ack of a write started after armed_ns */
    int n;
    struct prober p[CTL_MAX_SERVERS];
};

/* What every attempt of prober k sends: HELLO and a SET, or an HTTP put. */
static int build_request(const struct bench_target *t, int k, struct proto_buf *req)
{
    char key[32], value[PROBE_VALUE_SIZE];
    snprintf(key, sizeof(key), "failover/probe/%d", k);
    memset(value, 'x', sizeof(value));
    if (t->etcd)
        return bench_http_encode_put(req, "/v3/kv/put", key, strlen(key), value,
                                     sizeof(value));
    struct proto_client_req r = { .op = PROTO_OP_SET, .key = key,
                                  .key_len = (uint32_t)strlen(key), .val = value,
                                  .val_len = sizeof(value) };
    int rc = proto_encode_hello_client(req);
    return rc == RK_OK ? proto_encode_client_req(req, &r) : rc;
}

/* The answer in a->in: RK_OK with *ok once it is whole, RK_ERR_AGAIN before. */
static int read_answer(const struct bench_target *t, const struct attempt *a, bool *ok)
{
    if (t->etcd) {
        struct bench_http_answer h;
        int rc = bench_http_parse_answer(a->in, a->have, &h);
        *ok = rc == RK_OK && bench_http_put_ok(&h);
        return rc == RK_ERR_AGAIN ? rc : RK_OK;
    }
    if (a->have < 4 || a->have < 4 + (size_t)rk_get_be32(a->in))
        return a->have < sizeof(a->in) ? RK_ERR_AGAIN : RK_OK; /* too long: not OK */
    struct proto_client_resp resp;
    uint32_t n = rk_get_be32(a->in);
    *ok = proto_frame_type(a->in + 4, n) == PROTO_CLIENT_RESP &&
          proto_decode_client_resp(a->in + 4, n, &resp) == RK_OK &&
          resp.status == PROTO_ST_OK;
    return RK_OK;
}

/* A new attempt: a non-blocking connect. */
static void attempt_start(struct prober *p)
{
    if (p->n == MAX_ATTEMPTS)
        return;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&p->addr, sizeof(p->addr)) != 0 &&
        errno != EINPROGRESS) {
        close(fd); /* refused (the server is down): this attempt failed at once */
        return;
    }
    struct attempt *a = &p->a[p->n++];
    a->fd = fd;
    a->connected = false;
    a->start_ns = rk_clock_ns();
    a->sent = a->have = 0;
}

/* The socket is ready: connect done, send, or read. True once the attempt is over. */
static bool attempt_step(struct prober *p, struct attempt *a, short revents)
{
    if (!a->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
            return true;
        a->connected = true;
    }
    while (a->sent < p->req.len) {
        ssize_t w = send(a->fd, p->req.data + a->sent, p->req.len - a->sent, MSG_NOSIGNAL);
        if (w <= 0)
            return w < 0 && errno != EAGAIN && errno != EINTR;
        a->sent += (size_t)w;
    }
    if (!(revents & POLLIN))
        return false;
    ssize_t r = recv(a->fd, a->in + a->have, sizeof(a->in) - a->have, 0);
    if (r <= 0)
        return r == 0 || (errno != EAGAIN && errno != EINTR);
    a->have += (size_t)r;
    bool ok = false;
    if (read_answer(&p->t, a, &ok) == RK_ERR_AGAIN)
        return false;
    unsigned long long armed = atomic_load(&p->all->armed_ns), zero = 0;
    if (ok && armed != 0 && a->start_ns >= armed)
        atomic_compare_exchange_strong(&p->all->ack_ns, &zero, rk_clock_ns());
    return true;
}

/* Waits for the attempts' sockets until the next start is due, and moves them on;
 * closes those that are over or older than PROBE_IO_MS. */
static void attempts_poll(struct prober *p, int wait_ms)
{
    struct pollfd fds[MAX_ATTEMPTS];
    for (int k = 0; k < p->n; k++) {
        bool sending = !p->a[k].connected || p->a[k].sent < p->req.len;
        fds[k] = (struct pollfd){ .fd = p->a[k].fd, .events = sending ? POLLOUT : POLLIN };
    }
    if (poll(fds, (nfds_t)p->n, wait_ms) < 0 && errno != EINTR)
        return;
    uint64_t now = rk_clock_ns();
    for (int k = p->n - 1; k >= 0; k--) {
        struct attempt *a = &p->a[k];
        bool over = fds[k].revents != 0 && attempt_step(p, a, fds[k].revents);
        if (over || now - a->start_ns > (uint64_t)PROBE_IO_MS * 1000000) {
            close(a->fd);
            p->a[k] = p->a[--p->n];
        }
    }
}

static void *prober_main(void *arg)
{
    struct prober *p = arg;
    uint64_t next = rk_clock_ms();
    while (!atomic_load(&p->all->stop)) {
        uint64_t now = rk_clock_ms();
        if (now >= next) {
            attempt_start(p);
            next += PROBE_EVERY_MS;
            next = next > now ? next : now + PROBE_EVERY_MS;
        }
        now = rk_clock_ms();
        attempts_poll(p, next > now ? (int)(next - now) : 0);
    }
    for (int k = 0; k < p->n; k++)
        close(p->a[k].fd);
    return NULL;
}

/* Prober k's target address and request. */
static bool prober_init(struct prober *p, const struct bench_target *t, int k)
{
    p->t = *t;
    p->addr.sin_family = AF_INET;
    p->addr.sin_port = htons(t->port);
    return inet_pton(AF_INET, t->host, &p->addr.sin_addr) == 1 &&
           build_request(t, k, &p->req) == RK_OK;
}

struct bench_probers *bench_probers_start(const struct bench_target *t, int n)
{
    struct bench_probers *all = calloc(1, sizeof(*all));
    if (all == NULL)
        return NULL;
    for (; all->n < n && all->n < CTL_MAX_SERVERS; all->n++) {
        struct prober *p = &all->p[all->n];
        p->all = all;
        if (!prober_init(p, &t[all->n], all->n) ||
            pthread_create(&p->thread, NULL, prober_main, p) != 0) {
            proto_buf_free(&p->req);
            break;
        }
    }
    return all;
}

void bench_probers_arm(struct bench_probers *p)
{
    atomic_store(&p->ack_ns, 0);
    atomic_store(&p->armed_ns, rk_clock_ns());
}

double bench_probers_wait(struct bench_probers *p, int timeout_ms)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)timeout_ms;
    while (atomic_load(&p->ack_ns) == 0 && rk_clock_ms() < deadline)
        rk_sleep_ms(1);
    unsigned long long ack = atomic_load(&p->ack_ns), armed = atomic_load(&p->armed_ns);
    atomic_store(&p->armed_ns, 0);
    return ack == 0 ? -1 : (double)(ack - armed) / 1e6;
}

void bench_probers_stop(struct bench_probers *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stop, true);
    for (int i = 0; i < p->n; i++) {
        pthread_join(p->p[i].thread, NULL);
        proto_buf_free(&p->p[i].req);
    }
    free(p);
}
