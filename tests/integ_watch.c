/* tests/integ_watch.c - `raft_client watch` (issue 17) against real clusters, read through a
 * pipe: a watcher prints exactly the committed changes under its prefix, in order, with
 * their revisions (sets, deletes, cas, cad, a setex and its expire; writes outside the
 * prefix never); watchers keep exactly that sequence while a writer goes on and their
 * server is killed, the leader is killed, and (with network namespaces, else skipped) their
 * server is cut off; --from replays from a revision, and one older than the history ends
 * with "ERR compacted: oldest available revision N", exit 1. About 25 s. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define LEADER_WAIT_MS 10000
#define CALL_TIMEOUT_MS 15000
#define KEY_MAX 64
#define VAL_MAX 96

/* ---- a raft_client watch child, its stdout and stderr read through pipes ---- */

struct watcher {
    pid_t pid;
    int out_fd, err_fd; /* -1 once closed */
    char *out;          /* everything it printed on stdout, NUL-terminated */
    size_t used, cap;
    char err[16384];    /* its stderr (switch notes), truncated */
    size_t err_used;
};

#define MAX_LIVE 4
static struct watcher *live[MAX_LIVE]; /* killed before a failed check */

/* The writer thread of the failover test, stopped before a failed check too. */
static pthread_t writer_thread;
static bool writer_running;
static atomic_bool writer_stop;

static void watcher_stop(struct watcher *w)
{
    if (w->pid > 0)
        ctl_end(w->pid, SIGKILL);
    w->pid = 0;
    if (w->out_fd >= 0)
        close(w->out_fd);
    if (w->err_fd >= 0)
        close(w->err_fd);
    w->out_fd = w->err_fd = -1;
    for (int k = 0; k < MAX_LIVE; k++)
        if (live[k] == w)
            live[k] = NULL;
}

static void children_stop(void)
{
    for (int k = 0; k < MAX_LIVE; k++)
        if (live[k] != NULL)
            watcher_stop(live[k]);
    if (writer_running) {
        atomic_store(&writer_stop, true);
        pthread_join(writer_thread, NULL);
        writer_running = false;
    }
}

/* HARNESS_ASSERT, after killing the watchers and stopping the writer. */
#define CHECK(c, expr, fmt, ...)                                                   \
    do {                                                                           \
        if (!(expr)) {                                                             \
            children_stop();                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
            HARNESS_ASSERT(c, 0, fmt, ##__VA_ARGS__);                              \
        }                                                                          \
    } while (0)

/* Starts raft_client ARGS... (NULL-terminated) with its stdout and stderr on pipes. */
static void watcher_start(struct ctl_cluster *c, struct watcher *w, const char *const args[])
{
    char *argv[24];
    int a = 0;
    argv[a++] = (char *)harness_client_bin();
    for (int k = 0; args[k] != NULL && a < 23; k++)
        argv[a++] = (char *)args[k];
    argv[a] = NULL;
    memset(w, 0, sizeof(*w));
    w->out_fd = w->err_fd = -1;
    int po[2], pe[2];
    CHECK(c, pipe2(po, O_CLOEXEC) == 0, "pipe");
    if (pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        CHECK(c, 0, "pipe");
    }
    struct ctl_spawn sp = CTL_SPAWN(argv);
    sp.out_fd = po[1];
    sp.err_fd = pe[1];
    w->pid = ctl_spawn(&sp);
    close(po[1]);
    close(pe[1]);
    w->out_fd = po[0];
    w->err_fd = pe[0];
    fcntl(w->out_fd, F_SETFL, fcntl(w->out_fd, F_GETFL) | O_NONBLOCK);
    fcntl(w->err_fd, F_SETFL, fcntl(w->err_fd, F_GETFL) | O_NONBLOCK);
    w->cap = 65536;
    w->out = malloc(w->cap);
    CHECK(c, w->pid > 0 && w->out != NULL, "starting raft_client watch");
    w->out[0] = '\0';
    for (int k = 0; k < MAX_LIVE; k++)
        if (live[k] == NULL) {
            live[k] = w;
            break;
        }
}

static void watcher_free(struct watcher *w)
{
    watcher_stop(w);
    free(w->out);
    w->out = NULL;
}

/* Reads what fd has now; false at EOF or on an error. */
static bool watcher_drain(struct watcher *w, int fd)
{
    char tmp[8192];
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return true;
        if (r <= 0)
            return false;
        if (fd == w->out_fd) {
            if (w->used + (size_t)r + 1 > w->cap) {
                size_t cap = (w->used + (size_t)r + 1) * 2;
                char *p = realloc(w->out, cap);
                if (p == NULL)
                    return false;
                w->out = p;
                w->cap = cap;
            }
            memcpy(w->out + w->used, tmp, (size_t)r);
            w->used += (size_t)r;
            w->out[w->used] = '\0';
        } else {
            size_t room = sizeof(w->err) - 1 - w->err_used;
            size_t n = (size_t)r < room ? (size_t)r : room;
            memcpy(w->err + w->err_used, tmp, n);
            w->err_used += n;
            w->err[w->err_used] = '\0';
        }
    }
}

/* Collects the output of every running watcher for ms (w is one of them: the others must
 * not fill their pipes while the test waits on w); returns earlier only once none is
 * left open. */
static void watcher_pump(struct watcher *w, int ms)
{
    (void)w;
    uint64_t deadline = rk_clock_ms() + (uint64_t)ms;
    for (;;) {
        int64_t left = (int64_t)(deadline - rk_clock_ms());
        struct pollfd p[2 * MAX_LIVE];
        int *fds[2 * MAX_LIVE];
        struct watcher *of[2 * MAX_LIVE];
        int n = 0;
        for (int k = 0; k < MAX_LIVE; k++)
            for (int j = 0; live[k] != NULL && j < 2; j++) {
                int *fd = j == 0 ? &live[k]->out_fd : &live[k]->err_fd;
                if (*fd < 0)
                    continue;
                p[n] = (struct pollfd){ *fd, POLLIN, 0 };
                fds[n] = fd;
                of[n++] = live[k];
            }
        if (left <= 0 || n == 0)
            return;
        if (poll(p, (nfds_t)n, (int)left) < 0 && errno != EINTR)
            return;
        for (int k = 0; k < n; k++)
            if (p[k].revents != 0 && !watcher_drain(of[k], *fds[k])) {
                close(*fds[k]);
                *fds[k] = -1;
            }
    }
}

/* Pumps until the output holds a line ending with `tail` (e.g. " set p/end end\n"), or
 * ms passes. True if it came. */
static bool watcher_wait_line(struct watcher *w, const char *tail, int ms)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)ms;
    while (strstr(w->out, tail) == NULL) {
        int64_t left = (int64_t)(deadline - rk_clock_ms());
        if (left <= 0)
            return false;
        watcher_pump(w, left < 50 ? (int)left : 50);
    }
    return true;
}

/* Pumps until the output holds n lines, or ms passes. */
static bool watcher_wait_lines(struct watcher *w, int n, int ms)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)ms;
    for (;;) {
        int lines = 0;
        for (const char *p = w->out; *p != '\0'; p++)
            lines += *p == '\n';
        if (lines >= n)
            return true;
        int64_t left = (int64_t)(deadline - rk_clock_ms());
        if (left <= 0)
            return false;
        watcher_pump(w, left < 50 ? (int)left : 50);
    }
}

/* ---- events: what was written, what was printed, and the comparison ---- */

enum ev_kind { EV_SET = 1, EV_DELETE, EV_EXPIRE };
static const char *const kind_names[] = { "?", "set", "delete", "expire" };

struct ev {
    enum ev_kind kind;
    char key[KEY_MAX];
    char val[VAL_MAX];
    uint64_t rev;  /* want: 0 when not known */
    bool maybe;    /* want: a write whose outcome is unknown */
};

struct evlist {
    struct ev *v;
    int n, cap;
};

static void evlist_add(struct evlist *l, enum ev_kind kind, const char *key, const char *val,
                       uint64_t rev, bool maybe)
{
    if (l->n == l->cap) {
        l->cap = l->cap == 0 ? 256 : l->cap * 2;
        struct ev *v = realloc(l->v, (size_t)l->cap * sizeof(*v));
        ck_assert_msg(v != NULL, "out of memory");
        l->v = v;
    }
    struct ev *e = &l->v[l->n++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    snprintf(e->key, sizeof(e->key), "%s", key);
    snprintf(e->val, sizeof(e->val), "%s", val != NULL ? val : "");
    e->rev = rev;
    e->maybe = maybe;
}

static void ev_format(const struct ev *e, char *out, size_t len)
{
    snprintf(out, len, "%" PRIu64 " %s %s%s%s%s", e->rev, kind_names[e->kind], e->key,
             e->kind == EV_SET ? " " : "", e->kind == EV_SET ? e->val : "",
             e->maybe ? " (maybe)" : "");
}

/* Parses the watcher's lines ("REV set KEY VALUE", "REV delete KEY", "REV expire KEY").
 * False with why (the bad line) on a line of another form or an unterminated last line. */
static bool parse_output(const char *text, struct evlist *got, char *why, size_t whylen)
{
    const char *p = text;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        if (nl == NULL) {
            snprintf(why, whylen, "an unterminated last line '%.100s'", p);
            return false;
        }
        char line[256];
        snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
        p = nl + 1;
        unsigned long long rev;
        char kind[16];
        int off = 0;
        bool ok = sscanf(line, "%llu %15s %n", &rev, kind, &off) == 2 && off > 0 && rev > 0;
        const char *key = line + off, *sp = strchr(key, ' ');
        enum ev_kind k = !ok ? 0 : strcmp(kind, "set") == 0 ? EV_SET
                               : strcmp(kind, "delete") == 0 ? EV_DELETE
                               : strcmp(kind, "expire") == 0 ? EV_EXPIRE : 0;
        char keybuf[KEY_MAX];
        if (k == EV_SET && sp != NULL) {
            snprintf(keybuf, sizeof(keybuf), "%.*s", (int)(sp - key), key);
            evlist_add(got, k, keybuf, sp + 1, rev, false);
        } else if ((k == EV_DELETE || k == EV_EXPIRE) && sp == NULL && *key != '\0') {
            evlist_add(got, k, key, NULL, rev, false);
        } else {
            snprintf(why, whylen, "a malformed line '%s'", line);
            return false;
        }
    }
    return true;
}

/* Whether got is exactly want: each wanted event in order (one marked maybe may be
 * absent, but if present it is there once and in its place), nothing else, revisions
 * strictly increasing (equal only between expires of one revision), and equal to the
 * wanted revision where that is known. why gets the first difference. */
static bool same_events(const struct evlist *got, const struct evlist *want, char *why,
                        size_t whylen)
{
    char g[200], w[200];
    for (int i = 1; i < got->n; i++) {
        const struct ev *a = &got->v[i - 1], *b = &got->v[i];
        bool ok = b->rev > a->rev ||
                  (b->rev == a->rev && a->kind == EV_EXPIRE && b->kind == EV_EXPIRE);
        if (!ok) {
            ev_format(a, g, sizeof(g));
            ev_format(b, w, sizeof(w));
            snprintf(why, whylen, "line %d '%s' after line %d '%s': revisions not increasing",
                     i + 1, w, i, g);
            return false;
        }
    }
    int gi = 0, wi = 0;
    while (wi < want->n) {
        const struct ev *e = &want->v[wi];
        const struct ev *o = gi < got->n ? &got->v[gi] : NULL;
        bool match = o != NULL && o->kind == e->kind && strcmp(o->key, e->key) == 0 &&
                     strcmp(o->val, e->val) == 0;
        if (match && e->rev != 0 && o->rev != e->rev) {
            ev_format(o, g, sizeof(g));
            ev_format(e, w, sizeof(w));
            snprintf(why, whylen, "line %d is '%s', the write had revision: '%s'", gi + 1, g,
                     w);
            return false;
        }
        if (match) {
            gi++;
            wi++;
        } else if (e->maybe) {
            wi++;
        } else {
            ev_format(e, w, sizeof(w));
            if (o != NULL)
                ev_format(o, g, sizeof(g));
            snprintf(why, whylen, "line %d: want '%s' (change %d of %d), got %s%s%s", gi + 1,
                     w, wi + 1, want->n, o != NULL ? "'" : "", o != NULL ? g : "the end",
                     o != NULL ? "'" : "");
            return false;
        }
    }
    if (gi < got->n) {
        ev_format(&got->v[gi], g, sizeof(g));
        snprintf(why, whylen, "line %d '%s' after all %d wanted changes", gi + 1, g, want->n);
        return false;
    }
    return true;
}

/* Whether a client's stderr holds a sanitizer's report. */
static bool sanitizer_report(const char *err)
{
    return strstr(err, "Sanitizer") != NULL || strstr(err, "runtime error:") != NULL;
}

/* Stops the watcher, then checks its whole output against want (and its stderr for a
 * sanitizer's report). */
static void check_output(struct ctl_cluster *c, struct watcher *w, const struct evlist *want,
                         const char *what)
{
    char why[512] = "";
    struct evlist got = { 0 };
    watcher_stop(w);
    bool ok = parse_output(w->out, &got, why, sizeof(why)) &&
              same_events(&got, want, why, sizeof(why));
    if (!ok)
        fprintf(stderr, "%s: the watcher printed %d line(s):\n%s\nits stderr:\n%s\n", what,
                got.n, w->out, w->err);
    free(got.v);
    CHECK(c, ok, "%s: %s", what, why);
    CHECK(c, !sanitizer_report(w->err), "%s: the client printed a sanitizer report: %s", what,
          w->err);
}

/* ---- writes through one session ---- */

static int call(struct client_session *s, int op, const char *key, const char *val, char *out,
                size_t outlen)
{
    return harness_call(s, op, key, val, out, outlen);
}

/* cas KEY REV VAL; the new revision (OK NEWREV), or 0 with the answer in out. */
static uint64_t cas(struct client_session *s, const char *key, uint64_t rev, const char *val,
                    int *st, char *out, size_t outlen)
{
    char arg[VAL_MAX + 32];
    snprintf(arg, sizeof(arg), "%" PRIu64 " %s", rev, val);
    *st = call(s, PROTO_OP_CAS, key, arg, out, outlen);
    unsigned long long newrev = 0;
    if (*st == PROTO_ST_OK && sscanf(out, "%llu", &newrev) == 1)
        return newrev;
    return 0;
}

/* The revision of key (rev KEY: "REV VALUE"), checking its value; 0 if not as wanted. */
static uint64_t rev_of(struct client_session *s, const char *key, const char *val)
{
    char out[256];
    unsigned long long rev = 0;
    int off = 0;
    if (call(s, PROTO_OP_REV, key, "", out, sizeof(out)) != PROTO_ST_VALUE ||
        sscanf(out, "%llu %n", &rev, &off) != 1 || strcmp(out + off, val) != 0)
        return 0;
    return rev;
}


/* ---- 1: exactly the committed changes under the prefix ---- */

struct seq {
    struct ctl_cluster *c;
    struct client_session *s;
    struct evlist want;
};

static bool in_prefix(const char *key, const char *prefix)
{
    return strncmp(key, prefix, strlen(prefix)) == 0;
}

/* set KEY VAL; an event (with the revision `rev KEY` reads) if KEY is under a/. */
static uint64_t seq_set(struct seq *q, const char *key, const char *val)
{
    char out[256];
    int st = call(q->s, PROTO_OP_SET, key, val, out, sizeof(out));
    CHECK(q->c, st == PROTO_ST_OK, "set %s: %d %s", key, st, out);
    uint64_t rev = rev_of(q->s, key, val);
    CHECK(q->c, rev > 0, "rev %s after set", key);
    if (in_prefix(key, "a/"))
        evlist_add(&q->want, EV_SET, key, val, rev, false);
    return rev;
}

/* cas KEY REV VAL that must apply; its event with the revision it answered. */
static uint64_t seq_cas(struct seq *q, const char *key, uint64_t rev, const char *val)
{
    char out[256];
    int st;
    uint64_t newrev = cas(q->s, key, rev, val, &st, out, sizeof(out));
    CHECK(q->c, newrev > 0, "cas %s %" PRIu64 " %s: %d '%s'", key, rev, val, st, out);
    if (in_prefix(key, "a/"))
        evlist_add(&q->want, EV_SET, key, val, newrev, false);
    return newrev;
}

/* The watcher of `prefix` from now: writes PREFIX+ready N until it prints the last one
 * written, so that it is known to stream; its output so far is then dropped. */
static void watch_from_now(struct seq *q, struct watcher *w, const char *prefix)
{
    const char *args[] = { "--dir", q->c->dir, "-v", "watch", prefix, NULL };
    watcher_start(q->c, w, args);
    char key[KEY_MAX], val[32], tail[128];
    snprintf(key, sizeof(key), "%sready", prefix);
    bool seen = false;
    for (int i = 0; i < 40 && !seen; i++) {
        snprintf(val, sizeof(val), "r%d", i);
        char out[256];
        int st = call(q->s, PROTO_OP_SET, key, val, out, sizeof(out));
        CHECK(q->c, st == PROTO_ST_OK, "set %s: %d %s", key, st, out);
        snprintf(tail, sizeof(tail), " set %s %s\n", key, val);
        seen = watcher_wait_line(w, tail, 250);
    }
    CHECK(q->c, seen, "the watcher printed nothing of 40 writes (stdout '%s', stderr '%s')",
          w->out, w->err);
    w->used = 0;
    w->out[0] = '\0';
}

/* Sets, deletes, cas, cad, writes outside the prefix (b/, ab/, "a" itself), a delete of an
 * absent key and a failed cas (no events), a value with spaces, a setex whose expire comes
 * after its TTL and before the next write: the watcher's lines are exactly these changes
 * with their revisions. */
START_TEST(test_exact_sequence)
{
    struct seq q = { .c = harness_start(3, LEADER_WAIT_MS) };
    q.s = harness_session(q.c, -1, true, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(q.c, q.s != NULL, "session");
    struct watcher w;
    watch_from_now(&q, &w, "a/");
    char out[256];
    int st;

    seq_set(&q, "a/1", "v1");
    seq_set(&q, "b/1", "outside");
    uint64_t r2 = seq_cas(&q, "a/2", 0, "v2");
    seq_set(&q, "a", "not/under/a/");
    seq_set(&q, "a/1", "v1 again, with spaces");
    seq_set(&q, "ab/1", "outside too");
    st = call(q.s, PROTO_OP_DELETE, "a/1", NULL, out, sizeof(out));
    CHECK(q.c, st == PROTO_ST_OK, "delete a/1: %d %s", st, out);
    evlist_add(&q.want, EV_DELETE, "a/1", NULL, 0, false);
    st = call(q.s, PROTO_OP_DELETE, "a/none", NULL, out, sizeof(out)); /* no event */
    CHECK(q.c, st == PROTO_ST_NIL, "delete a/none: %d %s", st, out);
    uint64_t failed = cas(q.s, "a/2", r2 + 1000, "never", &st, out, sizeof(out));
    CHECK(q.c, failed == 0 && st == PROTO_ST_FAILED, "cas a/2 with a wrong revision: %d %s",
          st, out); /* no event */
    uint64_t r2b = seq_cas(&q, "a/2", r2, "v2b");
    CHECK(q.c, r2b > r2, "cas a/2: revision %" PRIu64 " after %" PRIu64, r2b, r2);
    seq_set(&q, "b/2", "outside");

    /* setex: its set, then its expire, not before the TTL */
    uint64_t sent = rk_clock_ms();
    st = call(q.s, PROTO_OP_SETEX, "a/t", "1000 short lived", out, sizeof(out));
    CHECK(q.c, st == PROTO_ST_OK, "setex a/t: %d %s", st, out);
    uint64_t rt = rev_of(q.s, "a/t", "short lived");
    CHECK(q.c, rt > 0, "rev a/t after setex");
    evlist_add(&q.want, EV_SET, "a/t", "short lived", rt, false);
    evlist_add(&q.want, EV_EXPIRE, "a/t", NULL, 0, false);
    bool expired = watcher_wait_line(&w, " expire a/t\n", 1000 + 8000);
    uint64_t took = rk_clock_ms() - sent;
    CHECK(q.c, expired, "no expire of a/t %" PRIu64 " ms after its setex (1 s)", took);
    CHECK(q.c, took >= 1000, "the expire of a/t came %" PRIu64 " ms after its setex (1 s)",
          took);

    char rev_text[24];
    snprintf(rev_text, sizeof(rev_text), "%" PRIu64, r2b);
    st = call(q.s, PROTO_OP_CAD, "a/2", rev_text, out, sizeof(out));
    CHECK(q.c, st == PROTO_ST_OK, "cad a/2 %s: %d %s", rev_text, st, out);
    evlist_add(&q.want, EV_DELETE, "a/2", NULL, 0, false);
    seq_set(&q, "a/3", "v3");
    uint64_t rend = seq_set(&q, "a/end", "end");
    CHECK(q.c, watcher_wait_line(&w, " set a/end end\n", 5000), "no a/end line: '%s'", w.out);
    watcher_pump(&w, 1200); /* anything printed after the last change (a heartbeat's worth) */
    check_output(q.c, &w, &q.want, "watch a/");
    fprintf(stderr, "integ_watch: exact sequence: %d changes, up to rev %" PRIu64
            ", expire %" PRIu64 " ms after its setex (TTL 1 s)\n", q.want.n, rend, took);
    watcher_free(&w);
    free(q.want.v);
    client_session_free(q.s);
    harness_finish(q.c);
}
END_TEST

/* ---- 2: failover ---- */

#define MAX_WRITES 5000
#define MIN_WRITES 300
#define WRITE_PAUSE_MS 8

struct writer {
    struct ctl_cluster *c;
    struct client_session *s;
    struct evlist want;     /* the changes under p/, in acknowledgment order */
    struct evlist want_all; /* every change */
    atomic_int writes; /* done so far (the main thread reads it) */
    int unknown, wrong;
    char first_unknown[512], first_wrong[512];
};

static void record(struct writer *wr, enum ev_kind kind, const char *key, const char *val,
                   uint64_t rev, bool maybe)
{
    evlist_add(&wr->want_all, kind, key, val, rev, maybe);
    if (in_prefix(key, "p/"))
        evlist_add(&wr->want, kind, key, val, rev, maybe);
}

/* Sequential writes until told to stop (and MIN_WRITES done), MAX_WRITES at most. By i % 10:
 * 0 set p/i; 5 set q/i or pp/i (outside p/: i % 20 is 5 or 15); 7 delete p/(i-1); 9 cad
 * p/(i-1) at the revision its cas answered; otherwise cas p/i 0 (a new key: OK NEWREV).
 * Nine writes in ten are changes under p/ (so that a p/ watcher resuming one revision off
 * after a switch likely shows it; the watcher of every key always does). A write with no
 * answer in CALL_TIMEOUT_MS (or an unexpected one) has an unknown outcome: maybe. */
static void *writer_main(void *arg)
{
    struct writer *wr = arg;
    uint64_t last_rev = 0; /* of the cas at i - 1, 0 if it was not acknowledged */
    for (int i = 1; i <= MAX_WRITES; i++) {
        if (atomic_load(&writer_stop) && i > MIN_WRITES)
            break;
        char key[KEY_MAX], val[VAL_MAX], out[256], prev[KEY_MAX], arg2[32];
        int st, m = i % 10;
        uint64_t rev = 0;
        bool ok;
        snprintf(prev, sizeof(prev), "p/%d", i - 1);
        if (m == 0 || m == 5) {
            snprintf(key, sizeof(key), "%s%d", m == 0 ? "p/" : i % 20 == 5 ? "q/" : "pp/", i);
            snprintf(val, sizeof(val), "v%d set", i);
            st = call(wr->s, PROTO_OP_SET, key, val, out, sizeof(out));
            ok = st == PROTO_ST_OK;
            record(wr, EV_SET, key, val, 0, !ok);
        } else if (m == 7 || (m == 9 && last_rev != 0)) {
            snprintf(key, sizeof(key), "%s", prev);
            snprintf(arg2, sizeof(arg2), "%" PRIu64, last_rev);
            st = m == 7 ? call(wr->s, PROTO_OP_DELETE, key, NULL, out, sizeof(out))
                        : call(wr->s, PROTO_OP_CAD, key, arg2, out, sizeof(out));
            /* a delete of a key whose cas was not acknowledged may find nothing; of one
             * that was acknowledged, it must not */
            ok = st == PROTO_ST_OK || (st == PROTO_ST_NIL && last_rev == 0);
            if ((st == PROTO_ST_NIL || st == PROTO_ST_FAILED) && last_rev != 0 &&
                wr->wrong++ == 0)
                snprintf(wr->first_wrong, sizeof(wr->first_wrong), "%s: status %d '%.200s'",
                         key, st, out);
            if (st != PROTO_ST_NIL)
                record(wr, EV_DELETE, key, NULL, 0, !ok || last_rev == 0);
        } else {
            snprintf(key, sizeof(key), "p/%d", i);
            snprintf(val, sizeof(val), "v%d", i);
            rev = cas(wr->s, key, 0, val, &st, out, sizeof(out));
            ok = rev > 0;
            if (st == PROTO_ST_FAILED && wr->wrong++ == 0) /* a new key */
                snprintf(wr->first_wrong, sizeof(wr->first_wrong), "cas %s 0: '%.200s'", key,
                         out);
            record(wr, EV_SET, key, val, rev, !ok);
        }
        if (!ok && wr->unknown++ == 0)
            snprintf(wr->first_unknown, sizeof(wr->first_unknown), "%s: status %d '%.200s'",
                     key, st, out);
        last_rev = rev;
        atomic_store(&wr->writes, i);
        rk_sleep_ms(WRITE_PAUSE_MS);
    }
    return NULL;
}

/* The server the watcher streams from now: the one its last switch note names ("...;
 * resuming from rev N at NAME (HOST:PORT) in M ms"), or first if there is none. */
static int watcher_server(const struct ctl_cluster *c, const struct watcher *w, int first)
{
    const char *p = w->err, *last = NULL;
    while ((p = strstr(p, "; resuming from ")) != NULL) {
        last = p;
        p++;
    }
    const char *at = last != NULL ? strstr(last, " at ") : NULL;
    if (at == NULL)
        return first;
    at += 4;
    if (strncmp(at, "rev ", 4) == 0 && (at = strstr(at, " at ")) != NULL)
        at += 4;
    char name[64];
    const char *end = at != NULL ? strchr(at, ' ') : NULL;
    if (end == NULL || end - at >= (long)sizeof(name))
        return first;
    snprintf(name, sizeof(name), "%.*s", (int)(end - at), at);
    int i = ctl_index_of(c, name);
    return i >= 0 ? i : first;
}

static int count_notes(const struct watcher *w)
{
    int n = 0;
    for (const char *p = w->err; (p = strstr(p, "; resuming from ")) != NULL; p++)
        n++;
    return n;
}

/* A cluster in network namespaces, or on 127.0.0.1 without the partition if that cannot be
 * done (not root, no `ip`) or RK_WATCH_NO_NETNS is set. */
static struct ctl_cluster *make_cluster(bool *partitions)
{
    char err[512], err2[256];
    const char *no = getenv("RK_WATCH_NO_NETNS");
    struct ctl_cluster *c = NULL;
    if (no != NULL && no[0] != '\0' && no[0] != '0')
        snprintf(err, sizeof(err), "RK_WATCH_NO_NETNS is set");
    else
        c = harness_cluster_new_netns(3, err, sizeof(err));
    *partitions = c != NULL;
    if (c == NULL) {
        fprintf(stderr, "integ_watch: the partition is skipped: %s\n", err);
        c = harness_cluster_new(3, err2, sizeof(err2));
        ck_assert_msg(c != NULL, "harness_cluster_new: %s", err2);
    }
    return c;
}

static int wait_leader(struct ctl_cluster *c, struct watcher *w)
{
    int l = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    CHECK(c, l >= 0, "no leader within %d ms", LEADER_WAIT_MS);
    watcher_pump(w, 1);
    return l;
}

/* SIGKILLs the server the watcher streams from, restarts it 0.8 s later, waits for a
 * leader and 1.2 s more; the watcher must have moved. Returns the server's index. */
static int kill_watchers_server(struct ctl_cluster *c, struct watcher *w, int first)
{
    int ws = watcher_server(c, w, first);
    int notes = count_notes(w);
    CHECK(c, ctl_kill(c, ws) == RK_OK, "kill the watcher's server %s", c->servers[ws].name);
    watcher_pump(w, 800);
    CHECK(c, ctl_start(c, ws) == RK_OK, "restart %s", c->servers[ws].name);
    wait_leader(c, w);
    watcher_pump(w, 1200);
    CHECK(c, count_notes(w) > notes, "the watcher did not leave %s when it was killed "
          "(stderr '%s')", c->servers[ws].name, w->err);
    return ws;
}

/* A writer writes a long sequence (one session, ~100 writes a second) while the watchers'
 * server (a follower) is killed (SIGKILL) and restarted, then the leader, then the
 * watchers' server again, and (in namespaces) the watchers' server is cut off for 4.5 s
 * (past the 3 s of silence) and healed. Two watchers, started on a follower from the
 * revision of a first write, one of p/ and one of every key, print exactly the
 * acknowledged changes: nothing missing, nothing twice, revisions increasing and equal to
 * those the cas writes were answered. */
START_TEST(test_failover)
{
    bool partitions;
    struct ctl_cluster *c = make_cluster(&partitions);
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "starting the servers");
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    HARNESS_ASSERT(c, leader >= 0, "no leader");
    static struct writer wr; /* the thread reads it; static keeps it off a short stack */
    memset(&wr, 0, sizeof(wr));
    wr.c = c;
    wr.s = harness_session(c, -1, true, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, wr.s != NULL, "session");
    char out[256];
    int st;
    uint64_t r0 = cas(wr.s, "p/0", 0, "start", &st, out, sizeof(out));
    HARNESS_ASSERT(c, r0 > 0, "cas p/0 0 start: %d %s", st, out);
    record(&wr, EV_SET, "p/0", "start", r0, false);

    /* the watcher, on a follower, from the first write's revision */
    int first = (leader + 1) % c->n;
    char port[8], from[24];
    snprintf(port, sizeof(port), "%u", (unsigned)c->servers[first].port);
    snprintf(from, sizeof(from), "%" PRIu64, r0);
    const char *args[] = { c->servers[first].host, port, "--dir", c->dir, "-v", "watch",
                           "p/", "--from", from, NULL };
    struct watcher w, wa; /* wa: every key (an empty prefix), on the same server */
    watcher_start(c, &w, args);
    args[6] = "";
    watcher_start(c, &wa, args);
    CHECK(c, watcher_wait_line(&w, " set p/0 start\n", 5000), "the watch from %s printed "
          "'%s' (stderr '%s')", from, w.out, w.err);
    CHECK(c, watcher_wait_line(&wa, " set p/0 start\n", 5000), "the watch of every key "
          "from %s printed '%s' (stderr '%s')", from, wa.out, wa.err);

    atomic_store(&writer_stop, false);
    CHECK(c, pthread_create(&writer_thread, NULL, writer_main, &wr) == 0, "pthread_create");
    writer_running = true;
    watcher_pump(&w, 1500);

    /* the watcher's server (a follower: the writes go on) dies and comes back; then the
     * leader; then the watcher's server again (it may lead by now) */
    int killed[3];
    killed[0] = kill_watchers_server(c, &w, first);
    int at_kill = wr.writes;
    int leader_killed = killed[1] = wait_leader(c, &w);
    CHECK(c, ctl_kill(c, leader_killed) == RK_OK, "kill the leader %s",
          c->servers[leader_killed].name);
    watcher_pump(&w, 800);
    CHECK(c, ctl_start(c, leader_killed) == RK_OK, "restart %s",
          c->servers[leader_killed].name);
    wait_leader(c, &w);
    watcher_pump(&w, 1200);
    killed[2] = kill_watchers_server(c, &w, first);

    /* the watcher's server is cut off from everyone, past the watcher's silence timeout */
    int cut = -1;
    if (partitions) {
        cut = watcher_server(c, &w, first);
        int notes = count_notes(&w);
        CHECK(c, harness_net_link(c, cut, false) == RK_OK, "link down %s",
              c->servers[cut].name);
        watcher_pump(&w, 4500);
        CHECK(c, harness_net_link(c, cut, true) == RK_OK, "link up %s", c->servers[cut].name);
        CHECK(c, count_notes(&w) > notes, "the watcher did not leave %s when it was cut off "
              "(stderr '%s')", c->servers[cut].name, w.err);
        wait_leader(c, &w);
        watcher_pump(&w, 1500);
    }

    /* the writer stops; a last write; the watcher must print it, then nothing more */
    atomic_store(&writer_stop, true);
    uint64_t stop_at = rk_clock_ms();
    while (wr.writes < MIN_WRITES && rk_clock_ms() - stop_at < 60000)
        watcher_pump(&w, 100);
    pthread_join(writer_thread, NULL);
    writer_running = false;
    uint64_t rend = cas(wr.s, "p/end", 0, "end", &st, out, sizeof(out));
    CHECK(c, rend > 0, "cas p/end 0 end: %d %s", st, out);
    record(&wr, EV_SET, "p/end", "end", rend, false);
    CHECK(c, watcher_wait_line(&w, " set p/end end\n", 15000), "the watcher did not print "
          "the last write, p/end at %" PRIu64 " (stderr '%s')", rend, w.err);
    CHECK(c, watcher_wait_line(&wa, " set p/end end\n", 5000), "the watcher of every key "
          "did not print the last write, p/end at %" PRIu64 " (stderr '%s')", rend, wa.err);
    watcher_pump(&w, 1200);
    CHECK(c, at_kill > 0 && wr.writes >= MIN_WRITES, "%d writes before the leader was killed, "
          "%d in all", at_kill, wr.writes);
    CHECK(c, wr.wrong == 0, "%d writes answered wrong; first: %s", wr.wrong, wr.first_wrong);
    CHECK(c, wr.unknown <= wr.writes / 20, "%d of %d writes had no answer; first: %s",
          wr.unknown, wr.writes, wr.first_unknown);
    int switches = count_notes(&w);
    fprintf(stderr, "integ_watch: the watcher's notes:\n%s", w.err);
    fprintf(stderr, "integ_watch: the notes of the watcher of every key:\n%s", wa.err);
    check_output(c, &w, &wr.want, "watch p/ through failovers");
    check_output(c, &wa, &wr.want_all, "watch \"\" (every key) through failovers");
    fprintf(stderr, "integ_watch: failover: %d writes (%d under p/, %d unknown), last rev %"
            PRIu64 ", the watcher switched servers %d times; killed: watcher's "
            "server %s, leader %s, watcher's server %s%s%s\n", wr.writes + 2,
            wr.want.n, wr.unknown, rend, switches, c->servers[killed[0]].name,
            c->servers[killed[1]].name, c->servers[killed[2]].name,
            cut >= 0 ? ", cut off: " : ", no partition (no namespaces)",
            cut >= 0 ? c->servers[cut].name : "");
    watcher_free(&w);
    watcher_free(&wa);
    free(wr.want.v);
    free(wr.want_all.v);
    client_session_free(wr.s);
    if (partitions)
        HARNESS_ASSERT(c, harness_net_heal_all(c) == RK_OK, "heal");
    harness_finish(c);
}
END_TEST

/* ---- 3: --from, and a history that no longer reaches back ---- */

#define HISTORY 50

/* Runs raft_client --dir DIR -q watch PREFIX --from FROM until it printed want->n lines,
 * then a heartbeat's worth more, and compares. */
static void check_replay(struct ctl_cluster *c, const char *prefix, uint64_t from,
                         const struct evlist *want, const char *what)
{
    char from_text[24];
    snprintf(from_text, sizeof(from_text), "%" PRIu64, from);
    const char *args[] = { "--dir", c->dir, "-q", "watch", prefix, "--from", from_text, NULL };
    struct watcher w;
    watcher_start(c, &w, args);
    watcher_wait_lines(&w, want->n, 5000);
    watcher_pump(&w, 1200);
    check_output(c, &w, want, what);
    watcher_free(&w);
}

/* The wanted events of l whose write came after the write at position `after`, under
 * prefix. */
static void suffix_of(const struct evlist *all, const int *pos, int after, const char *prefix,
                      struct evlist *out)
{
    for (int k = 0; k < all->n; k++)
        if (pos[k] > after && in_prefix(all->v[k].key, prefix))
            evlist_add(out, all->v[k].kind, all->v[k].key, all->v[k].val, all->v[k].rev,
                       false);
}

/* Changes under f/ and elsewhere; watches --from the revision of a write outside f/ replay
 * exactly what came after it, for f/ and for every key (""). Then more changes than the
 * history holds (--watch-history 50): --from the revision just below the oldest kept
 * ends with "ERR compacted: oldest available revision N" (N one past the last change
 * dropped), exit 1; --from N replays the 50 kept. */
START_TEST(test_from_and_compacted)
{
    char hist[16];
    snprintf(hist, sizeof(hist), "%d", HISTORY);
    const char *sargs[] = { "--watch-history", hist };
    struct ctl_cluster *c = harness_start_with(3, sargs, 2, LEADER_WAIT_MS);
    struct client_session *s = harness_session(c, -1, true, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "session");
    struct evlist all = { 0 }; /* every change, each write exactly one */
    int pos[200];              /* the write each change came from */
    uint64_t frev[40] = { 0 };
    char key[KEY_MAX], val[VAL_MAX], out[256];
    int st, mark = -1;
    uint64_t mark_rev = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(val, sizeof(val), "v%d", i);
        if (i % 4 == 3) { /* outside f/ */
            snprintf(key, sizeof(key), "g/%d", i);
            uint64_t r = cas(s, key, 0, val, &st, out, sizeof(out));
            HARNESS_ASSERT(c, r > 0, "cas %s: %d %s", key, st, out);
            evlist_add(&all, EV_SET, key, val, r, false);
            if (i == 15) {
                mark = i;
                mark_rev = r;
            }
        } else if (i % 4 == 2) { /* cad the previous one, at the revision it got */
            snprintf(key, sizeof(key), "f/%d", i - 1);
            char rt[24];
            snprintf(rt, sizeof(rt), "%" PRIu64, frev[i - 1]);
            st = call(s, PROTO_OP_CAD, key, rt, out, sizeof(out));
            HARNESS_ASSERT(c, st == PROTO_ST_OK, "cad %s %s: %d %s", key, rt, st, out);
            evlist_add(&all, EV_DELETE, key, NULL, 0, false);
        } else {
            snprintf(key, sizeof(key), "f/%d", i);
            frev[i] = cas(s, key, 0, val, &st, out, sizeof(out));
            HARNESS_ASSERT(c, frev[i] > 0, "cas %s: %d %s", key, st, out);
            evlist_add(&all, EV_SET, key, val, frev[i], false);
        }
        pos[all.n - 1] = i;
    }
    struct evlist want = { 0 };
    suffix_of(&all, pos, mark, "f/", &want);
    check_replay(c, "f/", mark_rev, &want, "watch f/ --from (a write outside f/)");
    int replayed_f = want.n;
    want.n = 0;
    suffix_of(&all, pos, mark - 1, "", &want);
    check_replay(c, "", mark_rev, &want, "watch \"\" --from");
    int replayed_all = want.n;

    /* more than the history holds */
    uint64_t hrev[100];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "h/%d", i);
        snprintf(val, sizeof(val), "w%d", i);
        hrev[i] = cas(s, key, 0, val, &st, out, sizeof(out));
        HARNESS_ASSERT(c, hrev[i] > 0, "cas %s: %d %s", key, st, out);
    }
    for (int i = 0; i < c->n; i++) /* every server's history as full as the leader's */
        HARNESS_ASSERT(c, ctl_wait_applied(c, i, (long long)hrev[99], 10000) == RK_OK,
                       "%s did not apply %" PRIu64, c->servers[i].name, hrev[99]);
    uint64_t oldest = hrev[100 - HISTORY - 1] + 1; /* one past the last change dropped */
    char from_text[24], want_text[128];
    snprintf(from_text, sizeof(from_text), "%" PRIu64, oldest - 1);
    snprintf(want_text, sizeof(want_text), "ERR compacted: oldest available revision %" PRIu64
             "\n", oldest);
    const char *args[] = { harness_client_bin(), "--dir", c->dir, "-q", "watch", "f/",
                           "--from", from_text, NULL };
    char rout[512], rerr[2048];
    int exit_status = -1;
    int rc = harness_run((char *const *)args, NULL, rout, sizeof(rout), rerr, sizeof(rerr),
                         10000, &exit_status);
    HARNESS_ASSERT(c, rc == RK_OK && exit_status == 1 && strcmp(rout, want_text) == 0 &&
                          !sanitizer_report(rerr),
                   "watch f/ --from %s: %s, exit %d, stdout '%s' (want '%.*s'), stderr '%s'",
                   from_text, rk_strerror(rc), exit_status, rout, (int)strlen(want_text) - 1,
                   want_text, rerr);
    want.n = 0;
    for (int i = 100 - HISTORY; i < 100; i++) {
        snprintf(key, sizeof(key), "h/%d", i);
        snprintf(val, sizeof(val), "w%d", i);
        evlist_add(&want, EV_SET, key, val, hrev[i], false);
    }
    check_replay(c, "h/", oldest, &want, "watch h/ --from the oldest kept");
    fprintf(stderr, "integ_watch: --from %" PRIu64 ": %d changes under f/, %d in all; "
            "history %d: --from %" PRIu64 " compacted (oldest %" PRIu64 "), --from %" PRIu64
            " replays %d\n", mark_rev, replayed_f, replayed_all, HISTORY, oldest - 1, oldest,
            oldest, want.n);
    free(want.v);
    free(all.v);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

static Suite *watch_suite(void)
{
    Suite *s = suite_create("integ_watch");
    TCase *tc = tcase_create("watch");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_exact_sequence);
    tcase_add_test(tc, test_failover);
    tcase_add_test(tc, test_from_and_compacted);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(watch_suite)
