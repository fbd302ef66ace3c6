/* tools/bench_watch.c - raft_bench --watch-targets, issue 17's measurements on 3 nodes.
 *
 * 1. Watchers under writes: 64 closed-loop writers (a thread and a client session each)
 *    set random keys under "watch/" for WT_RUN_MS, with 0 watchers, with 100 raw watch
 *    connections to the leader, with 100 spread over all servers, and with 0 again. Each
 *    value starts with the writer's number and the write's sequence number, so a watcher
 *    knows which write an event is; a writer records when it sent each write and when its
 *    OK came (after the leader committed and applied it). The watchers are raw
 *    connections on WT_THREADS epoll threads of this process; an event's delivery time is
 *    when the recv() that brought it returned. Delay = delivery - the writer's OK (may be
 *    negative: the event can come first), and send -> delivery beside it. Every watcher
 *    must see every acknowledged write once, in revision order, the same sequence as the
 *    others. A diagnostic row repeats the leader's 100 with watchers that set TCP_QUICKACK
 *    after every read: the server's client sockets have no TCP_NODELAY, so on a one-way
 *    stream Nagle holds a batch until the watcher's delayed ACK (up to ~40 ms); ACKing at
 *    once shows the delay without that stall.
 * 2. Idle watchers: on a fresh cluster whose servers may serve WT_MAX_CLIENTS clients,
 *    1 and 64 writers (keys "w/...") for WT_IDLE_RUN_MS, then N watch connections to the
 *    leader on the prefix "idle/" (nothing is written there), its RSS before and after,
 *    the CPU their heartbeats cost with no writes, and the same writers again.
 * Printed, and saved as a Markdown section of --out. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "../client/session.h"
#include "../common/bytes.h"
#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/grow.h"
#include "../common/net.h"
#include "bench.h"

#define WT_SECTION_MARK "\n## Watch (issue 17)\n"
#define WT_NODES 3
#define WT_WATCHERS 100
#define WT_WRITERS 64
#define WT_RUN_MS 10000
#define WT_RUN_QUICK_MS 3000
#define WT_IDLE_RUN_MS 5000
#define WT_IDLE_RUN_QUICK_MS 2000
#define WT_BEAT_MS 5000           /* the heartbeat cost: this long with no writes */
#define WT_IDLE_DEFAULT 9880      /* what the fd limit allows: see wt_fd_limit */
#define WT_IDLE_QUICK 1000
#define WT_MAX_CLIENTS 9960
#define WT_RUNS 5                 /* none, leader, spread, leader with quick ACKs, none */
#define WT_THREADS 2              /* epoll threads of the watchers */
#define WT_KEYS 1000
#define WT_VALUE 100
#define WT_WRITE_TIMEOUT_MS 10000
#define WT_DRAIN_MS 15000         /* after the writers stop, to wait for every event */
#define WT_HIST_US 1000000        /* the delay histogram: 1 us buckets, -1 s .. +1 s */

/* ---- writers that note when each write was sent and acknowledged ---- */

struct wt_writer {
    struct wt_writers *all;
    int id;
    pthread_t thread;
    bool started;
    int64_t *send_ns, *ack_ns; /* by seq (0-based); ack 0: not acknowledged */
    size_t n, cap_s, cap_a;
    long failed;
    char err[BENCH_ERR_LEN];
};

struct wt_writers {
    const char *host, *registry, *prefix;
    uint16_t port;
    int n;
    atomic_bool stop;
    atomic_long acked;      /* while they run */
    struct wt_writer w[WT_WRITERS];
};

static uint64_t wt_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *wt_writer_main(void *arg)
{
    struct wt_writer *w = arg;
    struct wt_writers *all = w->all;
    struct client_session *s = client_session_new(all->host, all->port, all->registry,
                                                  WT_WRITE_TIMEOUT_MS, false, w->err,
                                                  sizeof(w->err));
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(w->id + 1) << 32) ^ rk_clock_ns();
    char key[64], val[WT_VALUE + 1];
    memset(val, 'x', WT_VALUE);
    while (s != NULL && !atomic_load(&all->stop)) {
        size_t seq = w->n;
        if (rk_grow(&w->send_ns, &w->cap_s, seq + 1, sizeof(int64_t), 4096) != RK_OK ||
            rk_grow(&w->ack_ns, &w->cap_a, seq + 1, sizeof(int64_t), 4096) != RK_OK) {
            snprintf(w->err, sizeof(w->err), "writer %d: out of memory", w->id);
            break;
        }
        int klen = snprintf(key, sizeof(key), "%s%04u", all->prefix,
                            (unsigned)(wt_rand(&rng) % WT_KEYS));
        char head[16];
        snprintf(head, sizeof(head), "%03d%09zu", w->id, seq);
        memcpy(val, head, 12);
        struct client_reply r;
        char err[256];
        w->send_ns[seq] = (int64_t)rk_clock_ns();
        int rc = client_session_call(s, PROTO_OP_SET, key, (uint32_t)klen, val, WT_VALUE, &r,
                                     err, sizeof(err));
        int64_t now = (int64_t)rk_clock_ns();
        bool ok = rc == RK_OK && r.status == PROTO_ST_OK;
        if (rc == RK_OK)
            client_reply_free(&r);
        w->ack_ns[seq] = ok ? now : 0;
        w->failed += !ok;
        w->n++;
        if (ok)
            atomic_fetch_add(&all->acked, 1);
    }
    client_session_free(s);
    return NULL;
}

static struct wt_writers *wt_writers_start(const char *host, uint16_t port, const char *registry,
                                           const char *prefix, int n)
{
    struct wt_writers *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return NULL;
    *ws = (struct wt_writers){ .host = host, .port = port, .registry = registry,
                               .prefix = prefix, .n = n };
    for (int i = 0; i < n; i++) {
        ws->w[i] = (struct wt_writer){ .all = ws, .id = i };
        ws->w[i].started = pthread_create(&ws->w[i].thread, NULL, wt_writer_main,
                                          &ws->w[i]) == 0;
    }
    return ws;
}

static void wt_writers_stop(struct wt_writers *ws)
{
    atomic_store(&ws->stop, true);
    for (int i = 0; i < ws->n; i++)
        if (ws->w[i].started)
            pthread_join(ws->w[i].thread, NULL);
}

static void wt_writers_free(struct wt_writers *ws)
{
    if (ws == NULL)
        return;
    for (int i = 0; i < ws->n; i++) {
        free(ws->w[i].send_ns);
        free(ws->w[i].ack_ns);
    }
    free(ws);
}

/* Acknowledged writes, failed ones, and the first writer's error. */
static long wt_writers_acked(const struct wt_writers *ws, long *failed, const char **why)
{
    long acked = 0;
    *failed = 0;
    *why = NULL;
    for (int i = 0; i < ws->n; i++) {
        acked += (long)ws->w[i].n - ws->w[i].failed;
        *failed += ws->w[i].failed;
        if (*why == NULL && ws->w[i].err[0] != '\0')
            *why = ws->w[i].err;
    }
    return acked;
}

/* Latency percentiles of the acknowledged writes into r (r->seconds set by the caller). */
static void wt_writers_latency(const struct wt_writers *ws, struct bench_result *r)
{
    size_t total = 1;
    for (int i = 0; i < ws->n; i++)
        total += ws->w[i].n;
    int64_t *lat = malloc(total * sizeof(*lat));
    size_t k = 0;
    for (int i = 0; lat != NULL && i < ws->n; i++)
        for (size_t s = 0; s < ws->w[i].n; s++)
            if (ws->w[i].ack_ns[s] != 0)
                lat[k++] = ws->w[i].ack_ns[s] - ws->w[i].send_ns[s];
    if (lat != NULL)
        bench_latency_stats(lat, k, r);
    free(lat);
}

/* ---- watchers: raw watch connections on epoll threads ---- */

struct wt_watcher {
    int fd;
    int server;              /* index in the cluster */
    struct bench_conn conn;
    long answers, events, beats, out_of_order, foreign;
    uint64_t last_rev, hash;
    uint32_t *recv_us;       /* record: delivery time of each event, us after base */
    uint32_t *ids;           /* record, watcher 0 only: writer << 24 | seq of each event */
    size_t cap_r, cap_i;
    bool ended, nomem;
    char why[160];           /* how the stream ended */
};

struct wt_pool {
    struct wt_watcher *w;
    int n, opened, refused;
    char refusal[160];
    bool record;
    bool quickack;           /* ACK every segment at once (TCP_QUICKACK after each read) */
    int64_t base_ns;
    int ep[WT_THREADS];
    pthread_t th[WT_THREADS];
    bool started[WT_THREADS];
    atomic_bool stop;
    atomic_long events;      /* over all watchers */
    double thread_cpu_s[WT_THREADS], thread_wall_s[WT_THREADS]; /* each reader thread's */
};

static uint64_t wt_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* writer << 24 | seq of a bench value, or UINT32_MAX if it is not one. */
static uint32_t wt_value_id(const char *v, uint32_t len)
{
    if (len < 12)
        return UINT32_MAX;
    uint32_t writer = 0, seq = 0;
    for (int i = 0; i < 12; i++) {
        if (v[i] < '0' || v[i] > '9')
            return UINT32_MAX;
        if (i < 3)
            writer = writer * 10 + (uint32_t)(v[i] - '0');
        else
            seq = seq * 10 + (uint32_t)(v[i] - '0');
    }
    return writer < WT_WRITERS && seq < (1u << 24) ? writer << 24 | seq : UINT32_MAX;
}

static void wt_event(struct wt_pool *p, struct wt_watcher *w, const struct proto_event *ev,
                     int64_t at_ns)
{
    if (ev->rev <= w->last_rev)
        w->out_of_order++;
    w->last_rev = ev->rev;
    uint32_t id = wt_value_id(ev->val, ev->val_len);
    w->foreign += id == UINT32_MAX;
    w->hash = wt_mix(wt_mix(w->hash, ev->rev), id);
    if (p->record) {
        size_t i = (size_t)w->events;
        if (rk_grow(&w->recv_us, &w->cap_r, i + 1, sizeof(uint32_t), 65536) != RK_OK ||
            (w == &p->w[0] &&
             rk_grow(&w->ids, &w->cap_i, i + 1, sizeof(uint32_t), 65536) != RK_OK)) {
            w->nomem = true;
        } else {
            w->recv_us[i] = (uint32_t)((at_ns - p->base_ns) / 1000);
            if (w == &p->w[0])
                w->ids[i] = id;
        }
    }
    w->events++;
}

/* One whole frame (payload p, len bytes) of watcher w. */
static void wt_frame(struct wt_pool *p, struct wt_watcher *w, const uint8_t *payload,
                     uint32_t len, int64_t at_ns)
{
    struct proto_client_resp r;
    if (proto_frame_type(payload, len) != PROTO_CLIENT_RESP ||
        proto_decode_client_resp(payload, len, &r) != RK_OK) {
        w->ended = true;
        snprintf(w->why, sizeof(w->why), "an answer that is not a CLIENT_RESP");
        return;
    }
    if (r.status != PROTO_ST_EVENTS) {
        w->ended = true;
        snprintf(w->why, sizeof(w->why), "status %u: %.*s", (unsigned)r.status,
                 (int)(r.body_len < 120 ? r.body_len : 120), r.body != NULL ? r.body : "");
        return;
    }
    uint64_t progress;
    uint32_t n, off = PROTO_EVENTS_HEAD;
    if (proto_events_head(r.body, r.body_len, &progress, &n) != RK_OK) {
        w->ended = true;
        snprintf(w->why, sizeof(w->why), "a malformed EVENTS answer");
        return;
    }
    w->answers++;
    w->beats += n == 0;
    struct proto_event ev;
    int rc;
    while ((rc = proto_events_next(r.body, r.body_len, &off, &ev)) == 1)
        wt_event(p, w, &ev, at_ns);
    if (rc < 0) {
        w->ended = true;
        snprintf(w->why, sizeof(w->why), "a malformed event");
    }
    atomic_fetch_add(&p->events, (long)n);
}

/* Reads what w's socket holds and handles every whole frame. */
static void wt_readable(struct wt_pool *p, struct wt_watcher *w)
{
    struct bench_conn *c = &w->conn;
    for (;;) {
        if (bench_conn_reserve(c, c->have + 65536) != RK_OK) {
            w->ended = w->nomem = true;
            return;
        }
        ssize_t got = recv(w->fd, c->buf + c->have, c->cap - c->have, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                if (!w->ended)
                    snprintf(w->why, sizeof(w->why), "connection closed");
                w->ended = true;
            }
            return;
        }
        int64_t at = (int64_t)rk_clock_ns();
        c->have += (size_t)got;
        if (p->quickack) { /* not sticky: Linux may fall back to delayed ACKs */
            int one = 1;
            setsockopt(w->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
        }
        size_t used = 0;
        while (!w->ended && c->have - used >= 4) {
            uint32_t len = rk_get_be32(c->buf + used);
            if (len == 0 || len > PROTO_MAX_FRAME) {
                w->ended = true;
                snprintf(w->why, sizeof(w->why), "a bad frame length");
                break;
            }
            if (c->have - used < 4 + (size_t)len) {
                if (bench_conn_reserve(c, (c->have - used) + 4 + len + 65536) != RK_OK)
                    w->ended = w->nomem = true;
                break;
            }
            wt_frame(p, w, c->buf + used + 4, len, at);
            used += 4 + (size_t)len;
        }
        memmove(c->buf, c->buf + used, c->have - used);
        c->have -= used;
        if (w->ended)
            return;
    }
}

struct wt_thread_arg {
    struct wt_pool *p;
    int k;
};

static void *wt_thread_main(void *arg)
{
    struct wt_thread_arg *a = arg;
    struct wt_pool *p = a->p;
    int ep = p->ep[a->k];
    int k = a->k;
    struct epoll_event evs[256];
    struct timespec c0, c1;
    uint64_t w0 = rk_clock_ns();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    while (!atomic_load(&p->stop)) {
        int n = epoll_wait(ep, evs, 256, 50);
        for (int i = 0; i < n; i++) {
            struct wt_watcher *w = evs[i].data.ptr;
            if (!w->ended)
                wt_readable(p, w);
            if (w->ended && w->fd >= 0)
                epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
        }
    }
    free(a);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    p->thread_cpu_s[k] = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    p->thread_wall_s[k] = (double)(rk_clock_ns() - w0) / 1e9;
    return NULL;
}

/* n watch connections on prefix: watcher i to server at[i % n_at]. They are served by
 * the pool's threads once opened; the first answer of each is waited for (up to
 * wait_ms). */
static struct wt_pool *wt_pool_open(struct ctl_cluster *c, const int *at, int n_at, int n,
                                    const char *prefix, bool record, bool quickack,
                                    int wait_ms)
{
    struct wt_pool *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->w = calloc((size_t)(n > 0 ? n : 1), sizeof(*p->w))) == NULL) {
        free(p);
        return NULL;
    }
    p->n = n;
    p->record = record;
    p->quickack = quickack;
    p->base_ns = (int64_t)rk_clock_ns();
    for (int k = 0; k < WT_THREADS; k++) {
        p->ep[k] = epoll_create1(EPOLL_CLOEXEC);
        struct wt_thread_arg *a = malloc(sizeof(*a));
        if (a != NULL) {
            *a = (struct wt_thread_arg){ p, k };
            p->started[k] = pthread_create(&p->th[k], NULL, wt_thread_main, a) == 0;
            if (!p->started[k])
                free(a);
        }
    }
    struct proto_client_req req = { .op = PROTO_OP_WATCH, .key = prefix,
                                    .key_len = (uint32_t)strlen(prefix), .val = "",
                                    .val_len = 0 };
    struct proto_buf frame = { 0 };
    proto_encode_client_req(&frame, &req);
    for (int i = 0; i < n; i++) {
        struct wt_watcher *w = &p->w[i];
        const struct ctl_server *s = &c->servers[at[i % n_at]];
        char err[BENCH_ERR_LEN];
        w->server = at[i % n_at];
        w->fd = -1;
        if (bench_conn_open(&w->conn, s->host, s->port, 2000, 2000, err, sizeof(err)) != RK_OK) {
            w->ended = true;
            snprintf(w->why, sizeof(w->why), "%.150s", err);
            continue;
        }
        w->fd = w->conn.fd;
        if (net_write_full(w->fd, frame.data, frame.len) != RK_OK) {
            w->ended = true;
            snprintf(w->why, sizeof(w->why), "cannot send WATCH");
            continue;
        }
        fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = w };
        epoll_ctl(p->ep[i % WT_THREADS], EPOLL_CTL_ADD, w->fd, &ev);
        p->opened++;
    }
    proto_buf_free(&frame);
    uint64_t deadline = rk_clock_ms() + (uint64_t)wait_ms;
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < n; i++)
            waiting += !p->w[i].ended && p->w[i].answers == 0;
        if (waiting == 0 || rk_clock_ms() >= deadline)
            break;
        rk_sleep_ms(20);
    }
    for (int i = 0; i < n; i++)
        if (p->w[i].ended || p->w[i].answers == 0) {
            if (p->refused++ == 0)
                snprintf(p->refusal, sizeof(p->refusal), "%s",
                         p->w[i].ended ? p->w[i].why : "no first answer");
        }
    return p;
}

static void wt_pool_stop(struct wt_pool *p)
{
    atomic_store(&p->stop, true);
    for (int k = 0; k < WT_THREADS; k++)
        if (p->started[k])
            pthread_join(p->th[k], NULL);
    for (int k = 0; k < WT_THREADS; k++)
        p->started[k] = false;
}

static void wt_pool_free(struct wt_pool *p)
{
    if (p == NULL)
        return;
    wt_pool_stop(p);
    for (int i = 0; i < p->n; i++) {
        bench_conn_close(&p->w[i].conn);
        free(p->w[i].recv_us);
        free(p->w[i].ids);
    }
    for (int k = 0; k < WT_THREADS; k++)
        if (p->ep[k] >= 0)
            close(p->ep[k]);
    free(p->w);
    free(p);
}

/* ---- one run of part 1 ---- */

struct wt_delay {
    long n;
    double p50_ms, p99_ms, p999_ms, max_ms, min_ms;
    long over;  /* beyond the histogram (> 1 s): counted at its end */
};

struct wt_run {
    const char *what;
    const char *prefix;     /* the run's own, so no event of another run is seen */
    int watchers;           /* 0: none */
    bool spread;            /* over every server, else all on the leader */
    bool quickack;          /* the watchers ACK at once: a diagnostic row (see wt_pool) */
    int rc;
    char err[BENCH_ERR_LEN];
    double seconds;
    long acked, failed;
    double writes_per_s;
    struct bench_result lat;  /* the writes' latency */
    double gen_cpu, servers_cpu, other_cpu, steal_cpu;
    /* the watchers */
    int watchers_ok;        /* saw exactly every acknowledged write, in order */
    long events_min, events_max, extra;   /* extra: events of writes not acknowledged */
    long missing, dups, out_of_order, mismatched, ended;
    char ended_why[160];
    struct wt_delay ack_delay, send_delay;
    struct wt_delay first_delay;  /* per event: the first watcher to get it, from the OK */
    struct wt_delay fanout;       /* per event: the last watcher's delivery - the first's */
    double drain_ms;        /* writers stopped -> the last watcher had everything */
    double reader_cpu[WT_THREADS]; /* % of a core, each watcher thread, whole run */
};

/* Percentiles of a histogram of n delays (1 us buckets from -WT_HIST_US). */
static void wt_hist_stats(const uint32_t *h, long n, struct wt_delay *d)
{
    d->n = n;
    long want50 = (long)(n * 0.50), want99 = (long)(n * 0.99), want999 = (long)(n * 0.999);
    long seen = 0;
    bool first = true;
    for (long b = 0; b < 2L * WT_HIST_US + 1; b++) {
        if (h[b] == 0)
            continue;
        double ms = (double)(b - WT_HIST_US) / 1000.0;
        if (first) {
            d->min_ms = ms;
            first = false;
        }
        long before = seen;
        seen += h[b];
        if (before <= want50 && seen > want50)
            d->p50_ms = ms;
        if (before <= want99 && seen > want99)
            d->p99_ms = ms;
        if (before <= want999 && seen > want999)
            d->p999_ms = ms;
        d->max_ms = ms;
    }
}

static void wt_hist_add(uint32_t *h, int64_t delay_ns, double *max_ms, long *over)
{
    int64_t us = delay_ns / 1000;
    double ms = (double)delay_ns / 1e6;
    if (ms > *max_ms)
        *max_ms = ms;
    if (us > WT_HIST_US) {
        (*over)++;
        us = WT_HIST_US;
    }
    if (us < -WT_HIST_US)
        us = -WT_HIST_US;
    h[us + WT_HIST_US]++;
}

/* Checks the watchers against the writes and fills the delays. */
static void wt_check(struct wt_pool *p, struct wt_writers *ws, struct wt_run *run)
{
    struct wt_watcher *w0 = &p->w[0];
    /* watcher 0's events against the writes: each acknowledged one exactly once */
    uint8_t *seen[WT_WRITERS] = { 0 };
    for (int i = 0; i < ws->n; i++)
        seen[i] = calloc(ws->w[i].n + 1, 1);
    for (long i = 0; i < w0->events && !w0->nomem; i++) {
        uint32_t id = w0->ids[i], wr = id >> 24, seq = id & 0xffffff;
        if (id == UINT32_MAX || (int)wr >= ws->n || seq >= ws->w[wr].n || seen[wr] == NULL)
            continue;
        if (seen[wr][seq]++ > 0)
            run->dups++;
        if (ws->w[wr].ack_ns[seq] == 0)
            run->extra++;
    }
    for (int i = 0; i < ws->n; i++)
        for (size_t s = 0; s < ws->w[i].n; s++)
            if (ws->w[i].ack_ns[s] != 0 && (seen[i] == NULL || seen[i][s] == 0))
                run->missing++;
    for (int i = 0; i < ws->n; i++)
        free(seen[i]);
    /* every watcher against watcher 0 */
    run->events_min = run->events_max = w0->events;
    for (int k = 0; k < p->n; k++) {
        const struct wt_watcher *w = &p->w[k];
        run->events_min = w->events < run->events_min ? w->events : run->events_min;
        run->events_max = w->events > run->events_max ? w->events : run->events_max;
        run->out_of_order += w->out_of_order;
        bool same = w->events == w0->events && w->hash == w0->hash && !w->nomem;
        run->mismatched += !same;
        if (w->ended && run->ended++ == 0)
            snprintf(run->ended_why, sizeof(run->ended_why), "%s", w->why);
    }
    run->watchers_ok = run->missing == 0 && run->dups == 0 && run->mismatched == 0 &&
                       run->out_of_order == 0 && run->ended == 0;
    /* the delays, over every (watcher, event) pair of an acknowledged write */
    uint32_t *ha = calloc(2 * WT_HIST_US + 1, sizeof(uint32_t));
    uint32_t *hs = calloc(2 * WT_HIST_US + 1, sizeof(uint32_t));
    long n = 0;
    run->ack_delay.max_ms = run->send_delay.max_ms = -1e9;
    double amax = -1e9, smax = -1e9;
    for (int k = 0; ha != NULL && hs != NULL && k < p->n && !w0->nomem; k++) {
        const struct wt_watcher *w = &p->w[k];
        if (w->events != w0->events || w->hash != w0->hash || w->nomem)
            continue;
        for (long i = 0; i < w->events; i++) {
            uint32_t id = w0->ids[i], wr = id >> 24, seq = id & 0xffffff;
            if (id == UINT32_MAX || (int)wr >= ws->n || seq >= ws->w[wr].n ||
                ws->w[wr].ack_ns[seq] == 0)
                continue;
            int64_t at = p->base_ns + (int64_t)w->recv_us[i] * 1000;
            wt_hist_add(ha, at - ws->w[wr].ack_ns[seq], &amax, &run->ack_delay.over);
            wt_hist_add(hs, at - ws->w[wr].send_ns[seq], &smax, &run->send_delay.over);
            n++;
        }
    }
    /* per event, over the watchers that saw the same sequence: the first delivery (from
     * the OK) and how much later the last one came */
    uint32_t *hf = calloc(2 * WT_HIST_US + 1, sizeof(uint32_t));
    uint32_t *hd = calloc(2 * WT_HIST_US + 1, sizeof(uint32_t));
    long ne = 0;
    double fmax = -1e9, dmax = -1e9;
    for (long i = 0; hf != NULL && hd != NULL && i < w0->events && !w0->nomem; i++) {
        uint32_t id = w0->ids[i], wr = id >> 24, seq = id & 0xffffff;
        if (id == UINT32_MAX || (int)wr >= ws->n || seq >= ws->w[wr].n ||
            ws->w[wr].ack_ns[seq] == 0)
            continue;
        uint32_t lo = UINT32_MAX, hi = 0;
        for (int k = 0; k < p->n; k++) {
            const struct wt_watcher *w = &p->w[k];
            if (w->events != w0->events || w->hash != w0->hash || w->nomem)
                continue;
            lo = w->recv_us[i] < lo ? w->recv_us[i] : lo;
            hi = w->recv_us[i] > hi ? w->recv_us[i] : hi;
        }
        if (lo == UINT32_MAX)
            continue;
        int64_t first = p->base_ns + (int64_t)lo * 1000;
        wt_hist_add(hf, first - ws->w[wr].ack_ns[seq], &fmax, &run->first_delay.over);
        wt_hist_add(hd, (int64_t)(hi - lo) * 1000, &dmax, &run->fanout.over);
        ne++;
    }
    if (hf != NULL && hd != NULL) {
        wt_hist_stats(hf, ne, &run->first_delay);
        wt_hist_stats(hd, ne, &run->fanout);
        run->first_delay.max_ms = fmax;
        run->fanout.max_ms = dmax;
    }
    free(hf);
    free(hd);
    /* each watcher's mean delay, in the order they were opened (a server serves its
     * connections newest first): on stderr, to tell the server's fan-out order from ours */
    fprintf(stderr, "    mean delay per watcher (ms, in the order opened; thread = i %% %d):",
            WT_THREADS);
    for (int k = 0; k < p->n && !w0->nomem; k++) {
        const struct wt_watcher *w = &p->w[k];
        double sum = 0;
        long cnt = 0;
        for (long i = 0; w->events == w0->events && w->hash == w0->hash && i < w->events; i++) {
            uint32_t id = w0->ids[i], wr = id >> 24, seq = id & 0xffffff;
            if (id == UINT32_MAX || (int)wr >= ws->n || seq >= ws->w[wr].n ||
                ws->w[wr].ack_ns[seq] == 0)
                continue;
            sum += (double)(p->base_ns + (int64_t)w->recv_us[i] * 1000 - ws->w[wr].ack_ns[seq]);
            cnt++;
        }
        fprintf(stderr, "%s%.1f", k % 20 == 0 ? "\n     " : " ", cnt ? sum / cnt / 1e6 : 0);
    }
    fprintf(stderr, "\n");
    if (ha != NULL && hs != NULL) {
        wt_hist_stats(ha, n, &run->ack_delay);
        wt_hist_stats(hs, n, &run->send_delay);
        run->ack_delay.max_ms = amax; /* exact, past the histogram too */
        run->send_delay.max_ms = smax;
    }
    free(ha);
    free(hs);
}

static void wt_cpu(const struct bench_cpu *a, const struct bench_cpu *b, struct wt_run *run)
{
    bench_cpu_usage(a, b, &run->gen_cpu, &run->servers_cpu, &run->other_cpu, &run->steal_cpu);
}

/* --perf FILE: perf record -g of pid into FILE.suffix (as raft_bench.c's start_perf). */
static const char *wt_perf_path;

static pid_t wt_perf_start(const char *suffix, pid_t pid)
{
    if (wt_perf_path == NULL || pid <= 0)
        return 0;
    static char path[512];
    char pid_s[16];
    snprintf(path, sizeof(path), "%s.%s", wt_perf_path, suffix);
    snprintf(pid_s, sizeof(pid_s), "%d", (int)pid);
    char *argv[] = { "perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "--call-graph",
                     "dwarf,16384", "-p", pid_s, "-o", path, NULL };
    struct ctl_spawn sp = CTL_SPAWN(argv);
    pid_t p = ctl_spawn(&sp);
    rk_sleep_ms(300); /* let it attach */
    return p;
}

static void wt_perf_stop(pid_t perf)
{
    if (perf > 0)
        ctl_end(perf, SIGINT);
}

/* A quiet machine before a row (this is a shared 2-CPU box): up to 20 s. */
static void wt_quiet(void)
{
    bench_wait_quiet(35, 20);
}

static void wt_run_one(struct ctl_cluster *c, int run_ms, struct wt_run *run)
{
    int leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL);
    if (leader < 0) {
        run->rc = RK_ERR_TIMEOUT;
        snprintf(run->err, sizeof(run->err), "no leader");
        return;
    }
    pid_t pids[CTL_MAX_SERVERS];
    for (int i = 0; i < c->n; i++)
        pids[i] = c->servers[i].pid;
    struct wt_pool *p = NULL;
    if (run->watchers > 0) {
        int at[CTL_MAX_SERVERS], n_at = 0;
        at[n_at++] = leader;
        for (int i = 0; run->spread && i < c->n; i++)
            if (i != leader)
                at[n_at++] = i;
        p = wt_pool_open(c, at, n_at, run->watchers, run->prefix, true, run->quickack, 5000);
        if (p == NULL || p->refused > 0) {
            run->rc = RK_ERR_IO;
            snprintf(run->err, sizeof(run->err), "%d watchers not started: %s",
                     p != NULL ? p->refused : run->watchers, p != NULL ? p->refusal : "nomem");
            wt_pool_free(p);
            return;
        }
    }
    struct bench_cpu a, b;
    const struct ctl_server *ls = &c->servers[leader];
    struct wt_writers *ws = wt_writers_start(ls->host, ls->port, c->registry_path,
                                             run->prefix, WT_WRITERS);
    if (ws == NULL) {
        run->rc = RK_ERR_NOMEM;
        wt_pool_free(p);
        return;
    }
    pid_t perf = wt_perf_start(run->spread ? "spread" : run->watchers ? "leader" : "none",
                               c->servers[leader].pid);
    bench_cpu_sample(pids, c->n, &a);
    rk_sleep_ms((unsigned)run_ms);
    wt_writers_stop(ws);
    bench_cpu_sample(pids, c->n, &b);
    wt_perf_stop(perf);
    wt_cpu(&a, &b, run);
    run->seconds = (double)(b.ns - a.ns) / 1e9;
    const char *why;
    run->acked = wt_writers_acked(ws, &run->failed, &why);
    run->writes_per_s = run->seconds > 0 ? (double)run->acked / run->seconds : 0;
    run->lat.seconds = run->seconds;
    wt_writers_latency(ws, &run->lat);
    if (why != NULL) {
        run->rc = RK_ERR_IO;
        snprintf(run->err, sizeof(run->err), "%s", why);
    }
    if (p != NULL) {
        uint64_t stopped = rk_clock_ms(), deadline = stopped + WT_DRAIN_MS;
        run->drain_ms = -1;
        for (;;) {
            long least = -1;
            bool all_ended = true;
            for (int k = 0; k < p->n; k++) {
                if (p->w[k].ended)
                    continue;
                all_ended = false;
                least = least < 0 || p->w[k].events < least ? p->w[k].events : least;
            }
            if (!all_ended && least >= run->acked) {
                run->drain_ms = (double)(rk_clock_ms() - stopped);
                break;
            }
            if (all_ended || rk_clock_ms() >= deadline)
                break;
            rk_sleep_ms(5);
        }
        rk_sleep_ms(300); /* events of writes that failed may still come */
        wt_pool_stop(p);
        for (int k = 0; k < WT_THREADS; k++)
            run->reader_cpu[k] = p->thread_wall_s[k] > 0
                                     ? 100 * p->thread_cpu_s[k] / p->thread_wall_s[k] : 0;
        wt_check(p, ws, run);
    }
    wt_writers_free(ws);
    wt_pool_free(p);
}

/* ---- part 2: idle watchers ---- */

struct wt_idle_row {
    int writers;
    int rc;
    char err[BENCH_ERR_LEN];
    double writes_per_s, seconds;
    struct bench_result lat;
    double leader_cpu, gen_cpu, other_cpu, steal_cpu;
};

struct wt_idle {
    int watchers, opened, refused;
    char refusal[160];
    long rss_before_kb, rss_after_kb, rss_end_kb;
    double beat_cpu_without, beat_cpu_with; /* the leader's % of a core, no writes */
    double beat_gen_with;
    long beats;                              /* heartbeats received meanwhile */
    double beat_s;
    struct wt_idle_row without[2], with[2];
    int rc;
    char err[BENCH_ERR_LEN];
};

static long wt_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

static void wt_idle_writes(struct ctl_cluster *c, int leader, int run_ms, bool with,
                           struct wt_idle_row *row)
{
    wt_quiet();
    const struct ctl_server *ls = &c->servers[leader];
    pid_t pid = ls->pid;
    struct bench_cpu a, b;
    struct wt_writers *ws = wt_writers_start(ls->host, ls->port, c->registry_path, "w/",
                                             row->writers);
    if (ws == NULL) {
        row->rc = RK_ERR_NOMEM;
        return;
    }
    rk_sleep_ms(300); /* sessions registered */
    char what[32];
    snprintf(what, sizeof(what), "idle%d-%s", row->writers, with ? "with" : "without");
    pid_t perf = wt_perf_start(what, pid);
    long base = atomic_load(&ws->acked);
    bench_cpu_sample(&pid, 1, &a);
    rk_sleep_ms((unsigned)run_ms);
    long acked = atomic_load(&ws->acked) - base;
    bench_cpu_sample(&pid, 1, &b);
    wt_perf_stop(perf);
    wt_writers_stop(ws);
    long failed;
    const char *why;
    row->seconds = (double)(b.ns - a.ns) / 1e9;
    row->writes_per_s = (double)acked / row->seconds;
    bench_cpu_usage(&a, &b, &row->gen_cpu, &row->leader_cpu, &row->other_cpu, &row->steal_cpu);
    row->lat.seconds = row->seconds;
    wt_writers_latency(ws, &row->lat);
    wt_writers_acked(ws, &failed, &why);
    if (why != NULL || failed > 0) {
        row->rc = RK_ERR_IO;
        snprintf(row->err, sizeof(row->err), "%ld failed writes %s", failed, why ? why : "");
    }
    wt_writers_free(ws);
    fprintf(stderr, "    %2d writers: %.0f writes/s, p50 %.3f p99 %.3f ms; leader CPU %.0f%%, "
                    "generator %.0f%%, other %.0f%% (steal %.0f%%)\n",
            row->writers, row->writes_per_s, row->lat.p50_ms, row->lat.p99_ms, row->leader_cpu,
            row->gen_cpu, row->other_cpu, row->steal_cpu);
}

/* The leader's CPU over WT_BEAT_MS with no writes. */
static double wt_quiet_cpu(pid_t pid, double *gen)
{
    struct bench_cpu a, b;
    double g, s, o, st;
    bench_cpu_sample(&pid, 1, &a);
    rk_sleep_ms(WT_BEAT_MS);
    bench_cpu_sample(&pid, 1, &b);
    bench_cpu_usage(&a, &b, &g, &s, &o, &st);
    if (gen != NULL)
        *gen = g;
    return s;
}

static void wt_idle_run(struct ctl_cluster *c, int run_ms, struct wt_idle *m)
{
    int leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL);
    if (leader < 0) {
        m->rc = RK_ERR_TIMEOUT;
        snprintf(m->err, sizeof(m->err), "no leader");
        return;
    }
    pid_t pid = c->servers[leader].pid;
    fprintf(stderr, "  idle watchers: without them\n");
    for (int i = 0; i < 2; i++)
        wt_idle_writes(c, leader, run_ms, false, &m->without[i]);
    wt_quiet();
    m->beat_cpu_without = wt_quiet_cpu(pid, NULL);
    m->rss_before_kb = wt_rss_kb(pid);
    fprintf(stderr, "  opening %d watchers on %s (RSS %ld kB)\n", m->watchers,
            c->servers[leader].name, m->rss_before_kb);
    struct wt_pool *p = wt_pool_open(c, &leader, 1, m->watchers, "idle/", false, false, 30000);
    if (p == NULL) {
        m->rc = RK_ERR_NOMEM;
        return;
    }
    m->opened = p->opened;
    m->refused = p->refused;
    snprintf(m->refusal, sizeof(m->refusal), "%s", p->refusal);
    rk_sleep_ms(1500);
    m->rss_after_kb = wt_rss_kb(pid);
    fprintf(stderr, "  %d opened, %d refused or silent (%s); RSS %ld kB\n", m->opened,
            m->refused, m->refusal, m->rss_after_kb);
    long answers0 = 0, answers1 = 0;
    wt_quiet();
    for (int i = 0; i < p->n; i++)
        answers0 += p->w[i].answers;
    uint64_t t0 = rk_clock_ns();
    m->beat_cpu_with = wt_quiet_cpu(pid, &m->beat_gen_with);
    for (int i = 0; i < p->n; i++)
        answers1 += p->w[i].answers;
    m->beats = answers1 - answers0;
    m->beat_s = (double)(rk_clock_ns() - t0) / 1e9;
    fprintf(stderr, "  heartbeats: %.0f/s; leader CPU %.1f%% (without watchers %.1f%%)\n",
            (double)m->beats / m->beat_s, m->beat_cpu_with, m->beat_cpu_without);
    fprintf(stderr, "  idle watchers: with them\n");
    for (int i = 0; i < 2; i++)
        wt_idle_writes(c, leader, run_ms, true, &m->with[i]);
    m->rss_end_kb = wt_rss_kb(pid);
    int ended = 0;
    for (int i = 0; i < p->n; i++)
        ended += p->w[i].ended;
    if (ended > m->refused)
        fprintf(stderr, "  %d watchers ended during the writes\n", ended - m->refused);
    wt_pool_free(p);
}

/* ---- the report ---- */

struct wt_report {
    const char *command;
    int run_ms, idle_run_ms;
    struct wt_run runs[WT_RUNS];
    struct wt_idle idle;
    struct bench_run_info info;
    rlim_t nofile;
};

static void wt_print_run(FILE *f, const struct wt_run *r)
{
    fprintf(f, "  %s: %.0f writes/s (%ld acked, %ld failed), p50 %.3f p99 %.3f ms; CPU gen %.0f "
               "servers %.0f other %.0f (steal %.0f)%s%s\n",
            r->what, r->writes_per_s, r->acked, r->failed, r->lat.p50_ms, r->lat.p99_ms,
            r->gen_cpu, r->servers_cpu, r->other_cpu, r->steal_cpu, r->rc ? ": " : "",
            r->rc ? r->err : "");
    if (r->watchers > 0)
        fprintf(f, "    watchers: events %ld..%ld, missing %ld, dups %ld, extra %ld, "
                   "mismatched %ld, out of order %ld, ended %ld (%s); delay ack->delivery "
                   "p50 %.3f p99 %.3f p99.9 %.3f max %.3f min %.3f ms; send->delivery p50 %.3f "
                   "p99 %.3f max %.3f ms; %ld pairs; drained %.0f ms after the writers\n",
                r->events_min, r->events_max, r->missing, r->dups, r->extra, r->mismatched,
                r->out_of_order, r->ended, r->ended_why, r->ack_delay.p50_ms,
                r->ack_delay.p99_ms, r->ack_delay.p999_ms, r->ack_delay.max_ms,
                r->ack_delay.min_ms, r->send_delay.p50_ms, r->send_delay.p99_ms,
                r->send_delay.max_ms, r->ack_delay.n, r->drain_ms);
    if (r->watchers > 0)
        fprintf(f, "    watcher threads of raft_bench: %.0f%% and %.0f%% of a core\n",
                r->reader_cpu[0], r->reader_cpu[WT_THREADS - 1]);
    if (r->watchers > 0)
        fprintf(f, "    per event: first watcher p50 %.3f p99 %.3f max %.3f ms after the OK; "
                   "last - first watcher p50 %.3f p99 %.3f max %.3f ms\n",
                r->first_delay.p50_ms, r->first_delay.p99_ms, r->first_delay.max_ms,
                r->fanout.p50_ms, r->fanout.p99_ms, r->fanout.max_ms);
}

static const char *yes_no(bool v)
{
    return v ? "**yes**" : "**no**";
}

static void wt_write_section(FILE *f, void *arg)
{
    const struct wt_report *m = arg;
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&m->info.started));
    fprintf(f, "%s\n", WT_SECTION_MARK);
    fprintf(f, "Run %s by `%s` in %.0f s: %d servers on 127.0.0.1 with fsync on, "
               "`--max-clients %d`; %d closed-loop writers, each a thread with a client "
               "session, setting random keys of %d under one prefix per row (`watch1/`..., 100-byte values that "
               "name the writer and the write) for %.0f s per row; watchers are raw "
               "WATCH connections on %d epoll threads of raft_bench. %ld CPUs; load average "
               "before %.2f %.2f %.2f, after %.2f %.2f %.2f.\n\n",
            when, m->command, m->info.seconds, WT_NODES, WT_MAX_CLIENTS, WT_WRITERS, WT_KEYS,
            m->run_ms / 1000.0, WT_THREADS, sysconf(_SC_NPROCESSORS_ONLN),
            m->info.load_before[0], m->info.load_before[1], m->info.load_before[2],
            m->info.load_after[0], m->info.load_after[1], m->info.load_after[2]);
    const struct wt_run *base0 = &m->runs[0], *base1 = &m->runs[WT_RUNS - 1];
    double base = (base0->writes_per_s + base1->writes_per_s) / 2;
    fprintf(f, "| watchers | writes/s | vs no watchers | write p50 ms | write p99 ms | "
               "every event to every watcher | delay p50 ms | p99 ms | p99.9 ms | max ms | "
               "send → delivery p50 / p99 ms | CPU gen / servers / other (steal) |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < WT_RUNS; i++) {
        const struct wt_run *r = &m->runs[i];
        if (r->rc != RK_OK && r->acked == 0) {
            fprintf(f, "| %s | not measured: %s | | | | | | | | | | |\n", r->what, r->err);
            continue;
        }
        fprintf(f, "| %s | %.0f | %s%.0f%% | %.3f | %.3f | ", r->what, r->writes_per_s,
                r->writes_per_s >= base ? "+" : "", base > 0 ? 100 * (r->writes_per_s / base - 1) : 0,
                r->lat.p50_ms, r->lat.p99_ms);
        if (r->watchers == 0)
            fprintf(f, "– | – | – | – | – | – |");
        else
            fprintf(f, "%s: %ld events each%s | %.3f | %.3f | %.3f | %.3f | %.3f / %.3f |",
                    r->watchers_ok ? "yes" : "**no**", r->events_min,
                    r->watchers_ok ? "" : " (see below)", r->ack_delay.p50_ms,
                    r->ack_delay.p99_ms, r->ack_delay.p999_ms, r->ack_delay.max_ms,
                    r->send_delay.p50_ms, r->send_delay.p99_ms);
        fprintf(f, " %.0f / %.0f / %.0f (%.0f)%% |\n", r->gen_cpu, r->servers_cpu, r->other_cpu,
                r->steal_cpu);
    }
    fprintf(f, "\n*Delay*: the time a watcher's recv() returned the event minus the time the "
               "writer's OK came back (the leader answers after it committed and applied the "
               "write), over every (watcher, event) pair; negative when the event came first "
               "(the smallest: ");
    for (int i = 1; i < WT_RUNS - 1; i++)
        fprintf(f, "%s%.3f ms", i > 1 ? ", " : "", m->runs[i].ack_delay.min_ms);
    fprintf(f, "). *send → delivery*: from the writer's call instead. *vs no watchers*: "
               "against the mean of the two rows without watchers (%.0f writes/s).\n\n", base);
    for (int i = 1; i < WT_RUNS - 1; i++) {
        const struct wt_run *r = &m->runs[i];
        if (r->watchers == 0)
            continue;
        fprintf(f, "%s: %ld acknowledged writes, %ld failed; each watcher saw %ld..%ld "
                   "events: missing %ld, duplicated %ld, out of order %ld, not the same "
                   "sequence as the first watcher %ld, streams ended %ld%s%s%s, events of "
                   "writes not acknowledged %ld; %ld pairs; the last watcher had every event "
                   "%.0f ms after the writers stopped. ",
                r->what, r->acked, r->failed, r->events_min, r->events_max, r->missing,
                r->dups, r->out_of_order, r->mismatched, r->ended, r->ended ? " (" : "",
                r->ended ? r->ended_why : "", r->ended ? ")" : "", r->extra, r->ack_delay.n,
                r->drain_ms);
        fprintf(f, "Per event (where the delay comes from): the first watcher to get it had "
                   "it p50 %.3f / p99 %.3f / max %.3f ms after the OK; the last watcher got it "
                   "p50 %.3f / p99 %.3f / max %.3f ms after the first. raft_bench's %d "
                   "watcher threads used %.0f%% and %.0f%% of a core (from the watchers' "
                   "start to their end).\n\n",
                r->first_delay.p50_ms, r->first_delay.p99_ms, r->first_delay.max_ms,
                r->fanout.p50_ms, r->fanout.p99_ms, r->fanout.max_ms, WT_THREADS,
                r->reader_cpu[0], r->reader_cpu[WT_THREADS - 1]);
    }
    const struct wt_idle *id = &m->idle;
    fprintf(f, "\n**Idle watchers.** A fresh cluster; %d watch connections to the leader on "
               "`idle/` (nothing is written there), not %d: the container's hard limit on "
               "open files is %llu, and a server reserves two descriptors per client "
               "(`--max-clients %d` is the most it takes without lowering it); the writers "
               "set keys under `w/`, %.0f s per row. %d watchers opened, %d refused or "
               "silent%s%s.\n\n",
            id->watchers, 10000, (unsigned long long)m->nofile, WT_MAX_CLIENTS,
            m->idle_run_ms / 1000.0, id->opened, id->refused, id->refused ? ": " : "",
            id->refused ? id->refusal : "");
    fprintf(f, "| writers | writes/s without | with %d idle watchers | change | p99 ms without "
               "/ with | leader CPU without / with | other CPU (steal) without / with |\n"
               "|---|---|---|---|---|---|---|\n",
            id->watchers);
    for (int i = 0; i < 2; i++) {
        const struct wt_idle_row *a = &id->without[i], *b = &id->with[i];
        fprintf(f, "| %d | %.0f | %.0f | %+.0f%% | %.3f / %.3f | %.0f / %.0f%% | %.0f (%.0f) / "
                   "%.0f (%.0f)%% |\n", a->writers,
                a->writes_per_s, b->writes_per_s,
                a->writes_per_s > 0 ? 100 * (b->writes_per_s / a->writes_per_s - 1) : 0,
                a->lat.p99_ms, b->lat.p99_ms, a->leader_cpu, b->leader_cpu, a->other_cpu,
                a->steal_cpu, b->other_cpu, b->steal_cpu);
    }
    fprintf(f, "\nThe leader's resident memory: %.1f MB before the watchers, %.1f MB with them "
               "(%+.1f MB, %.1f kB per watcher), %.1f MB after the writes. Heartbeats: %.0f "
               "answers/s reached the watchers with no writes; the leader used %.1f%% of a "
               "core meanwhile (%.1f%% without watchers), raft_bench's reading %.1f%%.\n",
            id->rss_before_kb / 1024.0, id->rss_after_kb / 1024.0,
            (id->rss_after_kb - id->rss_before_kb) / 1024.0,
            id->watchers > 0 ? (double)(id->rss_after_kb - id->rss_before_kb) / id->watchers : 0,
            id->rss_end_kb / 1024.0, id->beat_s > 0 ? id->beats / id->beat_s : 0,
            id->beat_cpu_with, id->beat_cpu_without, id->beat_gen_with);
    if (id->rc != RK_OK)
        fprintf(f, "\nIdle watchers: %s\n", id->err);
    fprintf(f, "\n");
    const struct wt_run *lr = &m->runs[1];
    double loss = base > 0 ? 100 * (1 - lr->writes_per_s / base) : 0;
    fprintf(f, "| target | measured | met? |\n|---|---|---|\n");
    fprintf(f, "| 100 watchers on one prefix, 64 writers: every event reaches every watcher | "
               "%s | %s |\n", lr->watchers_ok ? "yes" : "no", yes_no(lr->watchers_ok));
    fprintf(f, "| writers lose at most 30%% | %.0f → %.0f writes/s: %.0f%% lost | %s |\n",
            base, lr->writes_per_s, loss, yes_no(loss <= 30));
    fprintf(f, "| p99 delay commit → delivery ≤ 10 ms | %.3f ms (p50 %.3f ms) | %s |\n",
            lr->ack_delay.p99_ms, lr->ack_delay.p50_ms, yes_no(lr->ack_delay.p99_ms <= 10));
    for (int i = 0; i < 2; i++) {
        const struct wt_idle_row *a = &id->without[i], *b = &id->with[i];
        double ch = a->writes_per_s > 0 ? 100 * (b->writes_per_s / a->writes_per_s - 1) : 0;
        fprintf(f, "| %d idle watchers: write throughput within noise of none (%d writer%s) | "
                   "%.0f → %.0f writes/s (%+.0f%%) | %s |\n", id->watchers, a->writers,
                a->writers > 1 ? "s" : "", a->writes_per_s, b->writes_per_s, ch,
                yes_no(ch >= -15));
    }
    fprintf(f, "| %d idle watchers: the server's memory | %+.1f MB (%.1f kB a watcher) | "
               "no number set |\n", id->watchers,
            (id->rss_after_kb - id->rss_before_kb) / 1024.0,
            id->watchers > 0 ? (double)(id->rss_after_kb - id->rss_before_kb) / id->watchers : 0);
    fprintf(f, "\n*Within noise*: a change of at most 15%%, what two runs of the same build "
               "differ by on this machine.\n");
}

/* Every descriptor the hard limit allows, for this process and the servers it starts. */
static rlim_t wt_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

static int wt_cluster(const struct bench_options *o, struct ctl_cluster **c, char *err,
                      size_t errlen)
{
    static char max_clients[16];
    struct bench_options base = *o;
    snprintf(max_clients, sizeof(max_clients), "%d", WT_MAX_CLIENTS);
    if (base.n_server_args + 2 <= CTL_MAX_SERVER_ARGS) {
        base.server_args[base.n_server_args++] = "--max-clients";
        base.server_args[base.n_server_args++] = max_clients;
    }
    return bench_open_cluster(&base, WT_NODES, c, err, errlen);
}

int bench_watch_targets(const struct bench_options *o, const char *command)
{
    struct wt_report *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 1;
    m->command = command;
    wt_perf_path = o->perf_path;
    m->nofile = wt_fd_limit();
    m->run_ms = o->quick ? WT_RUN_QUICK_MS : WT_RUN_MS;
    m->idle_run_ms = o->quick ? WT_IDLE_RUN_QUICK_MS : WT_IDLE_RUN_MS;
    int idle = o->quick ? WT_IDLE_QUICK : WT_IDLE_DEFAULT;
    if ((rlim_t)idle + 200 > m->nofile)
        idle = m->nofile > 400 ? (int)m->nofile - 400 : 100;
    m->idle.watchers = o->clients_set ? o->clients : idle;
    const struct wt_run runs[WT_RUNS] = {
        { .what = "none", .prefix = "watch1/", .watchers = 0 },
        { .what = "100 on the leader", .prefix = "watch2/", .watchers = WT_WATCHERS },
        { .what = "100 over the 3 servers", .prefix = "watch3/", .watchers = WT_WATCHERS,
          .spread = true },
        { .what = "100 on the leader, watchers ACK at once (TCP_QUICKACK; diagnostic)",
          .prefix = "watch5/", .watchers = WT_WATCHERS, .quickack = true },
        { .what = "none, again", .prefix = "watch4/", .watchers = 0 },
    };
    memcpy(m->runs, runs, sizeof(runs));
    bench_run_begin(&m->info);
    char err[BENCH_ERR_LEN] = "";
    struct ctl_cluster *c = NULL;
    int leader = wt_cluster(o, &c, err, sizeof(err));
    fprintf(stderr, "watch: 64 writers, 0 / 100 / 100 spread / 100 quick ACKs / 0 watchers\n");
    for (int i = 0; i < WT_RUNS; i++) {
        struct wt_run *r = &m->runs[i];
        if (leader < 0) {
            r->rc = RK_ERR_TIMEOUT;
            snprintf(r->err, sizeof(r->err), "%s", err);
            continue;
        }
        rk_sleep_ms(1000); /* the last run's writes applied everywhere */
        wt_quiet();
        wt_run_one(c, m->run_ms, r);
        wt_print_run(stderr, r);
    }
    ctl_cluster_destroy(c);
    c = NULL;
    leader = wt_cluster(o, &c, err, sizeof(err));
    m->idle.without[0].writers = m->idle.with[0].writers = 1;
    m->idle.without[1].writers = m->idle.with[1].writers = WT_WRITERS;
    if (leader < 0) {
        m->idle.rc = RK_ERR_TIMEOUT;
        snprintf(m->idle.err, sizeof(m->idle.err), "%s", err);
    } else {
        wt_idle_run(c, m->idle_run_ms, &m->idle);
    }
    ctl_cluster_destroy(c);
    bench_run_end(&m->info);
    bench_save_section(o->out_path, WT_SECTION_MARK, wt_write_section, m);
    bool measured = m->idle.rc == RK_OK;
    for (int i = 0; i < WT_RUNS; i++)
        measured &= m->runs[i].acked > 0;
    free(m);
    return measured ? 0 : 1;
}
