/* tests/integ_lock.c - the lock recipe of docs/recipes.md on a real 3-server cluster.
 * Eight contender processes (forked; each drives its own long-lived raft_client in stdin
 * mode through pipes) contend for the key "lock" following the recipe to the letter:
 * acquire with `cas --ttl T lock 0 VALUE`, refresh with `expire lock T` confirmed by
 * `rev lock`, release with `cad lock R`; each holds the lock only until the send time of
 * its last confirmed acquire or refresh plus T minus a margin. Meanwhile the leader is
 * killed (SIGKILL) and restarted, contenders are SIGKILLed while they hold the lock, and
 * the leader is stopped (SIGSTOP) for a while just after a refresh.
 *
 * Every contender reports, on one pipe, what it believed and when (CLOCK_MONOTONIC: one
 * machine, so the processes' times are comparable). The test checks that
 *   - no two believed holding intervals overlap (mutual exclusion) and the revisions of
 *     the acquisitions grow with their start;
 *   - the lock changed hands often, among several processes, also after the leader died;
 *   - a holder that died lost the lock: the next acquisition came no earlier than T after
 *     the send of its last confirmed acquire/refresh (the server counts T from when it
 *     accepted the request, which is after the send), and no later than T + 3 s after
 *     its death (a leader change may delay the reaping).
 * RK_LOCK_TRACE=1 prints the reports as they arrive. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "check_main.h"
#include "harness.h"

#define N_SERVERS 3
#define N_CONTENDERS 8
#define KEY "lock"
#define TTL_ARG "1.5"                    /* T, as the commands say it */
#define TTL_US UINT64_C(1500000)
#define MARGIN_US UINT64_C(150000)       /* 10% of T for clock-rate drift (docs/recipes.md) */
#define REFRESH_US UINT64_C(500000)      /* refresh T/3 after the last confirmed send */
#define HOLD_MIN_MS 100                  /* a holder keeps the lock this long ... */
#define HOLD_MAX_MS 1500                 /* ... to this long (refreshing), then releases */
#define POLL_MIN_MS 30                   /* a waiter looks at the lock this often */
#define POLL_MAX_MS 90
/* raft_client --timeout: one command may retry 3.5 s, and wait for one server at most a
 * third of that (client/session.c): a refresh stuck on a stopped leader reaches the next
 * one about 1.17 s after it was sent, just after the lock expired there (T - T/3 + reap). */
#define CLIENT_TIMEOUT_ARG "3.5"
#define REPLY_WAIT_MS 10000              /* a contender gives up on a silent raft_client */
#define RUN_MS 23000                     /* the contenders stop after this */
#define MAX_EVENTS 20000
#define MAX_KILLS 3
#define TAKEOVER_SLACK_US UINT64_C(3000000) /* after T, for a leader change */
/* The server counts T in whole milliseconds of the same clock from a truncated now. */
#define CLOCK_TOLERANCE_US UINT64_C(2000)

/* ---------------------------------------------------------------------------------
 * A contender (a forked process; never returns into Check, always _exit()s)
 * --------------------------------------------------------------------------------- */

struct contender {
    int id;
    int ev_fd;            /* the report pipe (writes of one line are atomic) */
    int to_client;        /* raft_client's stdin */
    int from_client;      /* its stdout */
    pid_t client_pid;
    char buf[4096];       /* what was read from raft_client and not yet consumed */
    size_t len;
    unsigned seed;
    int attempt;
};

static void report(struct contender *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct contender *k, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof(line))
        _exit(5);
    while (write(k->ev_fd, line, (size_t)n) < 0 && errno == EINTR) {
    }
}

static void quit(struct contender *k, int code)
{
    report(k, "Q %d %d\n", k->id, code);
    if (k->to_client >= 0) {
        static const char q[] = "quit\n";
        if (write(k->to_client, q, sizeof(q) - 1) < 0) {
            /* it is gone already */
        }
        close(k->to_client);
    }
    if (!ctl_wait_exit(k->client_pid, 2000, NULL))
        ctl_end(k->client_pid, SIGKILL);
    _exit(code);
}

/* Sends one command line to raft_client and reads its one output line into out. */
static void command(struct contender *k, const char *cmd, char *out, size_t outlen)
{
    size_t cl = strlen(cmd);
    char line[256];
    memcpy(line, cmd, cl);
    line[cl] = '\n';
    if (write(k->to_client, line, cl + 1) != (ssize_t)(cl + 1))
        quit(k, 3);
    uint64_t deadline = rk_clock_ms() + REPLY_WAIT_MS;
    for (;;) {
        char *nl = memchr(k->buf, '\n', k->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - k->buf);
            size_t m = n < outlen - 1 ? n : outlen - 1;
            memcpy(out, k->buf, m);
            out[m] = '\0';
            k->len -= n + 1;
            memmove(k->buf, nl + 1, k->len);
            return;
        }
        uint64_t now = rk_clock_ms();
        if (now >= deadline || k->len == sizeof(k->buf))
            quit(k, 4);
        struct pollfd p = { .fd = k->from_client, .events = POLLIN };
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            quit(k, 4);
        ssize_t got = read(k->from_client, k->buf + k->len, sizeof(k->buf) - k->len);
        if (got <= 0)
            quit(k, 3);
        k->len += (size_t)got;
    }
}

static void sleep_random(struct contender *k, int min_ms, int max_ms)
{
    rk_sleep_ms(min_ms + (int)(rand_r(&k->seed) % (unsigned)(max_ms - min_ms + 1)));
}

/* The release: stop believing (at end_us), then `cad lock R` (OK, or FAILED: it had
 * expired or is someone else's). */
static void release(struct contender *k, uint64_t rev, char why, uint64_t end_us)
{
    report(k, "L %d %" PRIu64 " %" PRIu64 " %c\n", k->id, rev, end_us, why);
    char cmd[64], out[256];
    snprintf(cmd, sizeof(cmd), "cad " KEY " %" PRIu64, rev);
    command(k, cmd, out, sizeof(out));
}

/* Holds the lock acquired at rev (the cas sent at send_us) for a while, refreshing it,
 * then releases it. */
static void hold(struct contender *k, uint64_t rev, uint64_t send_us, uint64_t hold_until)
{
    uint64_t end = send_us + TTL_US - MARGIN_US; /* the hold period, on our clock */
    uint64_t last_send = send_us;
    char out[256];
    for (;;) {
        uint64_t now = rk_clock_us();
        if (now >= end) { /* no refresh got through in time: no longer the holder */
            release(k, rev, 'l', end);
            return;
        }
        if (now >= hold_until) {
            release(k, rev, 'r', now);
            return;
        }
        if (now >= last_send + REFRESH_US) {
            uint64_t s = rk_clock_us();
            report(k, "X %d %" PRIu64 " %" PRIu64 "\n", k->id, rev, s);
            command(k, "expire " KEY " " TTL_ARG, out, sizeof(out));
            uint64_t t = rk_clock_us();
            if (strcmp(out, "OK") != 0) { /* (nil): it expired; ERR: unknown, stop too */
                release(k, rev, 'n', t < end ? t : end);
                return;
            }
            /* expire has no compare: confirm it extended OUR lock (revision still rev) */
            command(k, "rev " KEY, out, sizeof(out));
            t = rk_clock_us();
            uint64_t cur = 0;
            if (sscanf(out, "%" SCNu64 " ", &cur) != 1 || cur != rev) {
                release(k, rev, 'w', t < end ? t : end); /* (nil), or someone else's */
                return;
            }
            uint64_t new_end = s + TTL_US - MARGIN_US;
            if (t >= new_end) { /* confirmed too late to be of use */
                release(k, rev, 'l', t < end ? t : end);
                return;
            }
            last_send = s;
            if (t < end) { /* held all along: the hold period grows */
                end = new_end;
                report(k, "E %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", k->id, rev,
                       s, t, end);
            } else { /* it had lapsed meanwhile: held again from now (docs/recipes.md) */
                report(k, "L %d %" PRIu64 " %" PRIu64 " g\n", k->id, rev, end);
                end = new_end;
                report(k, "B %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                       k->id, rev, t, s, end, hold_until);
            }
            continue;
        }
        uint64_t next = end < hold_until ? end : hold_until;
        if (last_send + REFRESH_US < next)
            next = last_send + REFRESH_US;
        int64_t ms = (int64_t)(next - now) / 1000;
        rk_sleep_ms(ms < 1 ? 1 : ms > 20 ? 20 : ms);
    }
}

static void contend(struct contender *k, uint64_t stop_us)
{
    char out[256], cmd[128];
    while (rk_clock_us() < stop_us) {
        command(k, "rev " KEY, out, sizeof(out)); /* wait until it looks free */
        if (strcmp(out, "(nil)") != 0) {
            sleep_random(k, POLL_MIN_MS, POLL_MAX_MS);
            continue;
        }
        snprintf(cmd, sizeof(cmd), "cas --ttl " TTL_ARG " " KEY " 0 c%d-%d", k->id,
                 ++k->attempt);
        uint64_t send = rk_clock_us();
        command(k, cmd, out, sizeof(out));
        uint64_t reply = rk_clock_us(), rev = 0;
        if (sscanf(out, "OK %" SCNu64, &rev) != 1) { /* FAILED, or ERR (unknown) */
            if (strncmp(out, "FAILED ", 7) != 0)
                report(k, "U %d\n", k->id);
            sleep_random(k, POLL_MIN_MS, POLL_MAX_MS);
            continue;
        }
        if (reply >= send + TTL_US - MARGIN_US) { /* answered too late to be of use */
            report(k, "Z %d %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", k->id, rev, reply, send);
            release(k, rev, 'z', reply);
            continue;
        }
        uint64_t hold_until = reply + 1000ULL * (uint64_t)(HOLD_MIN_MS +
                              (int)(rand_r(&k->seed) % (HOLD_MAX_MS - HOLD_MIN_MS + 1)));
        report(k, "A %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", k->id,
               rev, reply, send, send + TTL_US - MARGIN_US, hold_until);
        hold(k, rev, send, hold_until);
        sleep_random(k, POLL_MIN_MS, POLL_MAX_MS); /* let the others have a go */
    }
}

static void contender_main(int id, const char *dir, int ev_fd, uint64_t stop_us, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(6);
    struct contender k = { .id = id, .ev_fd = ev_fd, .to_client = -1,
                           .seed = (unsigned)(rk_clock_ns() ^ (uint64_t)id * 7919u) };
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        _exit(7);
    char err_path[CTL_PATH_MAX];
    snprintf(err_path, sizeof(err_path), "%s/contender%d.err", dir, id);
    int err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *argv[] = { (char *)harness_client_bin(), "--dir", (char *)dir, "--timeout",
                     CLIENT_TIMEOUT_ARG, "-q", NULL };
    struct ctl_spawn sp = CTL_SPAWN(argv);
    sp.in_fd = in[0];
    sp.out_fd = out[1];
    sp.err_fd = err_fd;
    k.client_pid = ctl_spawn(&sp);
    if (k.client_pid < 0)
        _exit(8);
    close(in[0]);
    close(out[1]);
    close(err_fd);
    k.to_client = in[1];
    k.from_client = out[0];
    contend(&k, stop_us);
    quit(&k, 0);
}

/* ---------------------------------------------------------------------------------
 * The test: reports, faults, checks
 * --------------------------------------------------------------------------------- */

struct event {
    char kind;            /* A B Z X E L U Q */
    int id;
    uint64_t rev;
    uint64_t a, b, c, d;  /* A (acquired), B (held again after a lapse): reply send end
                             and in d when it means to release it |
                             Z (acquired too late): reply send | X (expire sent): send |
                             E (refreshed): send confirm end | L (no longer held): end |
                             U (an acquire's outcome unknown) | Q (quit): exit code in a */
    char why;             /* L: r released, l lapsed, n expire said (nil) or ERR, w rev
                             said (nil) or another revision, g lapsed before a confirmed
                             refresh (a B follows), z acquired too late */
};

static struct event ev[MAX_EVENTS];
static int n_ev;
static char ev_buf[8192];
static size_t ev_len;
static int ev_read_fd = -1;
static uint64_t trace_t0;
static pid_t contender_pid[N_CONTENDERS];
static bool contender_killed[N_CONTENDERS];

struct holder_kill {
    int id;
    uint64_t rev;         /* the acquisition it held */
    uint64_t kill_us;
};
static struct holder_kill kills[MAX_KILLS];
static int n_kills;

static void kill_contenders(void)
{
    for (int i = 0; i < N_CONTENDERS; i++)
        if (contender_pid[i] > 0) {
            ctl_end(contender_pid[i], SIGKILL);
            contender_pid[i] = 0;
        }
}

/* HARNESS_ASSERT after the contenders are gone. */
#define LOCK_ASSERT(c, expr, fmt, ...)                                   \
    do {                                                                 \
        bool lock_ok_ = (expr); /* evaluated once */                     \
        if (!lock_ok_)                                                   \
            kill_contenders();                                           \
        HARNESS_ASSERT(c, lock_ok_, "%s: " fmt, #expr, ##__VA_ARGS__);   \
    } while (0)

static void parse_event(const char *line)
{
    struct event e = { .kind = line[0] };
    int n = 0;
    switch (e.kind) {
    case 'A':
    case 'B':
        n = sscanf(line + 1, "%d %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
                   &e.id, &e.rev, &e.a, &e.b, &e.c, &e.d) == 6;
        break;
    case 'E':
        n = sscanf(line + 1, "%d %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &e.id, &e.rev,
                   &e.a, &e.b, &e.c) == 5;
        break;
    case 'Z':
        n = sscanf(line + 1, "%d %" SCNu64 " %" SCNu64 " %" SCNu64, &e.id, &e.rev, &e.a,
                   &e.b) == 4;
        break;
    case 'X':
        n = sscanf(line + 1, "%d %" SCNu64 " %" SCNu64, &e.id, &e.rev, &e.a) == 3;
        break;
    case 'L':
        n = sscanf(line + 1, "%d %" SCNu64 " %" SCNu64 " %c", &e.id, &e.rev, &e.a, &e.why) == 4;
        break;
    case 'U':
        n = sscanf(line + 1, "%d", &e.id) == 1;
        break;
    case 'Q':
        n = sscanf(line + 1, "%d %" SCNu64, &e.id, &e.a) == 2;
        break;
    }
    if (n && e.id >= 0 && e.id < N_CONTENDERS && n_ev < MAX_EVENTS) {
        ev[n_ev++] = e;
        if (getenv("RK_LOCK_TRACE") != NULL) /* the reports as they come, times in us */
            fprintf(stderr, "integ_lock: +%" PRIu64 " ms: %s\n",
                    (rk_clock_us() - trace_t0) / 1000, line);
    } else {
        fprintf(stderr, "integ_lock: bad or too many reports: %s\n", line);
    }
}

/* Reads every report available now (the pipe is non-blocking). */
static void pump(void)
{
    for (;;) {
        ssize_t got = read(ev_read_fd, ev_buf + ev_len, sizeof(ev_buf) - 1 - ev_len);
        if (got <= 0)
            return;
        ev_len += (size_t)got;
        char *start = ev_buf, *nl;
        while ((nl = memchr(start, '\n', ev_len - (size_t)(start - ev_buf))) != NULL) {
            *nl = '\0';
            parse_event(start);
            start = nl + 1;
        }
        ev_len -= (size_t)(start - ev_buf);
        memmove(ev_buf, start, ev_len);
    }
}

/* Pumps the reports for ms. */
static void pump_for(int ms)
{
    uint64_t until = rk_clock_ms() + (uint64_t)ms;
    while (rk_clock_ms() < until) {
        struct pollfd p = { .fd = ev_read_fd, .events = POLLIN };
        poll(&p, 1, 5);
        pump();
    }
}

/* The acquisition contender id believes it holds now (its last A, B or E not yet
 * followed by an L), with its believed end: rev, or 0. */
static uint64_t held_by(int id, uint64_t *end)
{
    uint64_t rev = 0;
    for (int i = 0; i < n_ev; i++) {
        if (ev[i].id != id)
            continue;
        if (ev[i].kind == 'A' || ev[i].kind == 'B' || ev[i].kind == 'E') {
            rev = ev[i].rev;
            *end = ev[i].c;
        } else if (ev[i].kind == 'L' && ev[i].rev == rev) {
            rev = 0;
        }
    }
    return rev;
}

/* Waits up to ms for a contender that has just acquired or refreshed the lock and still
 * holds it for a while, and SIGKILLs it. Returns whether it did. */
static bool kill_a_holder(int ms)
{
    uint64_t until = rk_clock_ms() + (uint64_t)ms;
    int seen = n_ev;
    while (rk_clock_ms() < until && n_kills < MAX_KILLS) {
        pump_for(2);
        for (; seen < n_ev; seen++) {
            const struct event *e = &ev[seen];
            if ((e->kind != 'A' && e->kind != 'B' && e->kind != 'E') ||
                contender_killed[e->id])
                continue;
            uint64_t end = 0, rev = held_by(e->id, &end);
            if (rev == 0 || end < rk_clock_us() + 300000)
                continue;
            int id = e->id;
            ctl_end(contender_pid[id], SIGKILL);
            uint64_t kill_us = rk_clock_us();
            contender_pid[id] = 0;
            contender_killed[id] = true;
            pump_for(50); /* what it wrote before it died */
            if (held_by(id, &end) != rev) {
                fprintf(stderr, "integ_lock: c%d had released before its death\n", id);
                continue;
            }
            kills[n_kills++] = (struct holder_kill){ .id = id, .rev = rev, .kill_us = kill_us };
            fprintf(stderr, "integ_lock: SIGKILLed c%d holding the lock at revision %" PRIu64
                    "\n", id, rev);
            return true;
        }
    }
    return false;
}

static int kill_leader(struct ctl_cluster *c)
{
    int leader = ctl_wait_leader(c, 3000, NULL);
    LOCK_ASSERT(c, leader >= 0, "no leader to kill");
    LOCK_ASSERT(c, ctl_kill(c, leader) == RK_OK, "killing %s", c->servers[leader].name);
    fprintf(stderr, "integ_lock: SIGKILLed the leader %s\n", c->servers[leader].name);
    return leader;
}

/* When contender id means to release the lock it holds (0: unknown). */
static uint64_t release_plan(int id)
{
    for (int i = n_ev - 1; i >= 0; i--)
        if (ev[i].id == id && (ev[i].kind == 'A' || ev[i].kind == 'B'))
            return ev[i].d;
    return 0;
}

/* Waits up to ms for a refresh (or acquire) of a holder that means to keep the lock for
 * a while, then stops the leader (SIGSTOP) for stop_ms: the holder's next refresh goes to
 * the stopped leader and is retried elsewhere only after the session's per-server cap
 * (--timeout / 3), by when the lock may have expired and been taken: the case the `rev`
 * confirmation of the recipe is for. */
static void stop_leader_after_refresh(struct ctl_cluster *c, int ms, int stop_ms)
{
    uint64_t until = rk_clock_ms() + (uint64_t)ms;
    int seen = n_ev;
    bool found = false;
    while (!found && rk_clock_ms() < until) {
        pump_for(2);
        for (; !found && seen < n_ev; seen++)
            found = (ev[seen].kind == 'E' || ev[seen].kind == 'A') &&
                    release_plan(ev[seen].id) > rk_clock_us() + 800000;
    }
    int leader = ctl_wait_leader(c, 3000, NULL);
    LOCK_ASSERT(c, leader >= 0, "no leader to stop");
    LOCK_ASSERT(c, ctl_pause(c, leader) == RK_OK, "stopping %s", c->servers[leader].name);
    fprintf(stderr, "integ_lock: +%" PRIu64 " ms: SIGSTOPped the leader %s\n",
            (rk_clock_us() - trace_t0) / 1000, c->servers[leader].name);
    pump_for(stop_ms);
    LOCK_ASSERT(c, ctl_resume(c, leader) == RK_OK, "resuming %s", c->servers[leader].name);
}

/* ---- checks ---- */

struct interval {
    int id;
    uint64_t rev, start, end, last_send;
};
static struct interval iv[MAX_EVENTS];
static int n_iv;

/* The believed holding intervals: from each A's (or B's) reply to the last believed end
 * of that hold (A, B or E), cut at its L. A killed holder's interval ends at its last
 * reported end. */
static void build_intervals(void)
{
    n_iv = 0;
    for (int i = 0; i < n_ev; i++) {
        const struct event *e = &ev[i];
        if (e->kind == 'A' || e->kind == 'B') {
            iv[n_iv++] = (struct interval){ .id = e->id, .rev = e->rev, .start = e->a,
                                            .end = e->c, .last_send = e->b };
            continue;
        }
        if (e->kind != 'E' && e->kind != 'L')
            continue;
        for (int j = n_iv - 1; j >= 0; j--) {
            if (iv[j].id != e->id || iv[j].rev != e->rev)
                continue;
            if (e->kind == 'E') {
                iv[j].end = e->c;
                iv[j].last_send = e->a;
            } else if (e->a < iv[j].end) {
                iv[j].end = e->a;
            }
            break;
        }
    }
}

static int by_start(const void *a, const void *b)
{
    const struct interval *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* A holder that died lost the lock: the next acquisition (answered in time or not) came
 * no earlier than T after its last confirmed send and within T + 3 s of its death. */
static void check_dead_holder(struct ctl_cluster *c, const struct holder_kill *k)
{
    const struct interval *dead = NULL, *next = NULL;
    for (int i = 0; i < n_iv; i++) {
        if (iv[i].id == k->id && iv[i].rev == k->rev)
            dead = &iv[i];
        else if (iv[i].rev > k->rev && (next == NULL || iv[i].rev < next->rev))
            next = &iv[i];
    }
    uint64_t next_us = next != NULL ? next->start : UINT64_MAX;
    for (int i = 0; i < n_ev; i++)
        if (ev[i].kind == 'Z' && ev[i].rev > k->rev && ev[i].a < next_us)
            next_us = ev[i].a;
    LOCK_ASSERT(c, dead != NULL, "no record of c%d's hold", k->id);
    LOCK_ASSERT(c, next_us != UINT64_MAX, "nobody acquired the lock after c%d died", k->id);
    uint64_t earliest = dead->last_send + TTL_US - CLOCK_TOLERANCE_US;
    uint64_t latest = k->kill_us + TTL_US + TAKEOVER_SLACK_US;
    fprintf(stderr, "integ_lock: c%d died holding revision %" PRIu64 "; taken over %" PRIu64
            " ms after its last confirmed send (%" PRIu64 " ms after its death)\n", k->id,
            k->rev, (next_us - dead->last_send) / 1000, (next_us - k->kill_us) / 1000);
    LOCK_ASSERT(c, next_us >= earliest, "c%d's lock was taken %" PRId64 " us after its last "
                "confirmed send, before T", k->id, (int64_t)(next_us - dead->last_send));
    LOCK_ASSERT(c, next_us <= latest, "c%d's lock was taken only %" PRIu64 " ms after its "
                "death", k->id, (next_us - k->kill_us) / 1000);
}

/* Waits for the contenders still running to stop by themselves (a command retries up to
 * 3.5 s); the number that did not end cleanly. */
static int reap_contenders(void)
{
    int bad = 0;
    for (int i = 0; i < N_CONTENDERS; i++) {
        if (contender_pid[i] == 0)
            continue;
        int status = 0;
        uint64_t until = rk_clock_ms() + 8000;
        bool done = false;
        while (!done && rk_clock_ms() < until) {
            pump_for(20);
            done = ctl_wait_exit(contender_pid[i], 0, &status);
        }
        if (!done) {
            ctl_end(contender_pid[i], SIGKILL);
            status = -1;
        }
        contender_pid[i] = 0;
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            fprintf(stderr, "integ_lock: c%d ended with status %d\n", i, status);
            bad++;
        }
    }
    pump();
    return bad;
}

START_TEST(test_lock_under_faults)
{
    struct ctl_cluster *c = harness_start(N_SERVERS, 10000);
    int fds[2];
    LOCK_ASSERT(c, pipe(fds) == 0, "pipe: %s", strerror(errno));
    ev_read_fd = fds[0];
    fcntl(ev_read_fd, F_SETFL, O_NONBLOCK);
    uint64_t t0 = rk_clock_us(), stop_us = t0 + RUN_MS * 1000ULL;
    trace_t0 = t0;
    pid_t me = getpid();
    for (int i = 0; i < N_CONTENDERS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            contender_main(i, c->dir, fds[1], stop_us, me);
            _exit(9);
        }
        LOCK_ASSERT(c, pid > 0, "fork: %s", strerror(errno));
        contender_pid[i] = pid;
    }
    close(fds[1]);

    /* the faults: the leader dies and comes back; a holder dies; a holder and then the
     * leader die together; twice, the leader stops for a while just after a refresh */
    pump_for(3000);
    int l1 = kill_leader(c);
    uint64_t leader_kill_us = rk_clock_us();
    pump_for(1500);
    LOCK_ASSERT(c, ctl_start(c, l1) == RK_OK, "restarting %s", c->servers[l1].name);
    pump_for(1500);
    kill_a_holder(2500);
    pump_for(2000);
    if (kill_a_holder(2500)) {
        int l2 = kill_leader(c);
        pump_for(1500);
        LOCK_ASSERT(c, ctl_start(c, l2) == RK_OK, "restarting %s", c->servers[l2].name);
    }
    for (int i = 0; i < 2; i++) { /* twice: each time, the race is run once */
        pump_for(1000);
        stop_leader_after_refresh(c, 2500, 2500);
    }
    while (rk_clock_us() < stop_us)
        pump_for(50);
    int bad_exits = reap_contenders();
    close(ev_read_fd);
    LOCK_ASSERT(c, bad_exits == 0, "%d contender(s) did not end cleanly (a raft_client that "
                "died or stayed silent for %d ms)", bad_exits, REPLY_WAIT_MS);

    /* mutual exclusion: no two believed intervals overlap; revisions grow with time */
    build_intervals();
    qsort(iv, (size_t)n_iv, sizeof(iv[0]), by_start);
    int acquisitions = 0, refreshes = 0, unknown = 0, late = 0, lapsed = 0, lost = 0;
    int wrong = 0, resumed = 0;
    for (int i = 0; i < n_ev; i++) {
        acquisitions += ev[i].kind == 'A';
        resumed += ev[i].kind == 'B';
        refreshes += ev[i].kind == 'E';
        unknown += ev[i].kind == 'U';
        late += ev[i].kind == 'Z';
        lapsed += ev[i].kind == 'L' && ev[i].why == 'l';
        lost += ev[i].kind == 'L' && ev[i].why == 'n';
        wrong += ev[i].kind == 'L' && ev[i].why == 'w';
    }
    bool holder[N_CONTENDERS] = { false };
    int distinct = 0, after_leader_kill = 0;
    for (int i = 0; i < n_iv; i++) {
        if (!holder[iv[i].id])
            distinct++;
        holder[iv[i].id] = true;
        after_leader_kill += iv[i].start > leader_kill_us;
        LOCK_ASSERT(c, iv[i].start < iv[i].end, "c%d's hold of revision %" PRIu64
                    " ends (%" PRIu64 ") before it starts (%" PRIu64 ")", iv[i].id, iv[i].rev,
                    iv[i].end, iv[i].start);
        if (i == 0)
            continue;
        const struct interval *p = &iv[i - 1], *q = &iv[i];
        LOCK_ASSERT(c, p->end <= q->start,
                    "two holders at once: c%d held revision %" PRIu64 " from +%" PRIu64
                    " ms to +%" PRIu64 " ms, c%d revision %" PRIu64 " from +%" PRIu64 " ms",
                    p->id, p->rev, (p->start - t0) / 1000, (p->end - t0) / 1000, q->id,
                    q->rev, (q->start - t0) / 1000);
        LOCK_ASSERT(c, p->rev < q->rev || (p->rev == q->rev && p->id == q->id),
                    "c%d held revision %" PRIu64 " after c%d held %" PRIu64, q->id, q->rev,
                    p->id, p->rev);
    }
    fprintf(stderr, "integ_lock: %d acquisitions by %d contenders (%d holds began after the "
            "first leader kill); refreshes: %d confirmed, %d confirmed after the hold "
            "lapsed (held again), %d found the lock gone, %d found another revision; %d "
            "holds lapsed, %d acquires answered too late, %d unknown\n", acquisitions,
            distinct, after_leader_kill, refreshes, resumed, lost, wrong, lapsed, late,
            unknown);
    LOCK_ASSERT(c, acquisitions >= 10 && distinct >= 4, "little progress: %d acquisitions by "
                "%d contenders", acquisitions, distinct);
    LOCK_ASSERT(c, after_leader_kill >= 5, "only %d holds after the leader's death",
                after_leader_kill);
    LOCK_ASSERT(c, refreshes >= 5, "only %d confirmed refreshes", refreshes);

    /* a dead holder loses the lock */
    LOCK_ASSERT(c, n_kills >= 1, "no contender was killed while holding the lock");
    for (int k = 0; k < n_kills; k++)
        check_dead_holder(c, &kills[k]);

    /* the clients printed no sanitizer report */
    for (int i = 0; i < N_CONTENDERS; i++) {
        char path[CTL_PATH_MAX], line[512];
        snprintf(path, sizeof(path), "%s/contender%d.err", c->dir, i);
        FILE *f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
            LOCK_ASSERT(c, strstr(line, "Sanitizer") == NULL &&
                               strstr(line, "runtime error:") == NULL,
                        "c%d's raft_client: %s", i, line);
        if (f != NULL)
            fclose(f);
    }
    harness_finish(c);
}
END_TEST

static Suite *integ_lock_suite(void)
{
    Suite *s = suite_create("integ_lock");
    TCase *tc = tcase_create("lock");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_lock_under_faults);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(integ_lock_suite)
