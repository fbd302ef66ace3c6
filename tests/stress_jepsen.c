/* tests/stress_jepsen.c - a Jepsen-style test: 12 clients run random get/set/delete,
 * rev/cas/cad (a register with a revision) and setex/cas --ttl/expire/ttl (with times to
 * live far longer than the run: a set, a cas, a "touch" that answers whether the key
 * exists, and an existence read, for the checker) on 5
 * keys of a real 5-server cluster while faults hit it (kill -9, SIGSTOP of the leader,
 * network partitions between namespaces, a server removed, wiped and added back with
 * --join, leadership transfers); every op is recorded with its outcome, and the
 * whole history must be linearizable (tests/lincheck.c). Some ops are scans of every key,
 * each checked as a get of each key. Beside them, expiry clients time real expiry under
 * the same faults (see "expiry clients" below; RK_EXPIRY_SLACK_MS), and watchers
 * (`raft_client watch`) whose streams must equal the committed log's changes for their
 * prefixes (see "watchers" below). Env TIME: seconds
 * (default 30);
 * RK_JEPSEN_FAULTS: the fault kinds to use, e.g. "stop-leader,isolate-leader" (default
 * all; see fault_ids); RK_JEPSEN_HISTORY: a file to write the history to;
 * RK_JEPSEN_NO_NETNS=1: run on 127.0.0.1 without partitions; RK_JEPSEN_SEED: the seed of
 * the fault schedule and of the clients' choices (default: time and pid; the timing,
 * and so the history, still differ from run to run).
 *
 * Outcomes: a get that got neither a value nor nil is dropped (failed); a set or delete
 * whose reply was not OK (or nil) is "unknown": the session may have sent it, even more
 * than once, before giving up, and even an error reply (e.g. "session expired") cannot
 * tell whether an earlier attempt was applied. Only a request rejected before it was
 * sent counts as a failed write.
 * Inconclusive checks: the checker has a step budget per key. One key out of budget is
 * reported but tolerated; more than one fails the test (the run would prove too little). */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "../server/kv/kv.h"
#include "../server/storage/storage.h"
#include "check_main.h"
#include "harness.h"
#include "lincheck.h"

#define N_SERVERS 5
#define N_CLIENTS 12
#define N_KEYS 5
/* Clients differ, so that some of them talk to a deposed leader while others already use
 * the new one. Each has a home server (its id mod N_SERVERS) that it tries first; the
 * first half fall back on the whole registry, the second half know only their home (like
 * a client given one address: after a failure it goes back there and follows a redirect
 * from there). Each session gives up on an op after one of these (by client id): the
 * short ones leave a deposed leader before check-quorum demotes it (~1-2 election
 * timeouts). And some clients mostly read (READER_EVERY). */
static const int op_timeouts_ms[] = {250, 500, 1000};
#define OP_TIMEOUT_MAX_MS 1000
#define OP_HANG_MS 6000         /* an op slower than this counts as a hang */
#define THINK_MAX_MS 5
#define READER_EVERY 4          /* clients 3, 7, 11 mostly read */
#define N_OP_KINDS (LINCHECK_TTL + 1) /* get, set, delete, rev, cas, cad, expire, ttl */
#define OP_SETEX N_OP_KINDS             /* in the mix and the report: a set with a ttl */
#define OP_CAS_TTL (N_OP_KINDS + 1)     /* a cas --ttl */
#define N_MIX (N_OP_KINDS + 2)
#define LONG_TTL_MS 3600000LL           /* the checked keys' times to live: an hour */
#define SCAN_PERCENT 5          /* of ops: a scan of every key, checked as a get of each */
#define DEFAULT_TIME_S 30
#define MAX_TIME_S (24 * 3600)
#define QUIET_MIN_MS 1000       /* between faults: 1-2 s healthy, then 1-3 s of fault */
#define QUIET_SPAN_MS 1000
#define HOLD_MIN_MS 1000
#define HOLD_SPAN_MS 2000
#define LEADER_PROBE_MS 500
#define RECOVER_MS 15000
#define FINAL_TIMEOUT_MS 10000
#define CHECK_MAX_STEPS 20000000LL
#define MAX_INCONCLUSIVE_KEYS 1
#define MIN_OK_OPS_PER_S 5      /* liveness: ok ops over the run, on average */

/* ---- the history ---- */

struct client {
    int id;
    pthread_t thread;
    struct ctl_cluster *cluster; /* read-only here: the registry */
    unsigned seed;
    struct lincheck_op *ops;
    size_t n_ops, cap;
    int seq;
    uint64_t seen_rev[N_KEYS]; /* each key's revision as this client last learned it */
    int64_t max_op_ms;
    char slowest[3 * LINCHECK_VAL_MAX + 96]; /* that op, as lincheck_format_op puts it */
    bool out_of_memory, no_session;
    bool bad_ttl; /* a ttl answered something that is neither -1 nor whole seconds */
};

static atomic_bool stop_clients;

static int run_seconds(void)
{
    const char *t = getenv("TIME");
    long s = t != NULL && t[0] != '\0' ? strtol(t, NULL, 10) : DEFAULT_TIME_S;
    return s < 5 ? 5 : s > MAX_TIME_S ? MAX_TIME_S : (int)s;
}

static struct lincheck_op *next_record(struct client *cl)
{
    if (cl->n_ops == cl->cap) {
        size_t cap = cl->cap == 0 ? 1024 : cl->cap * 2;
        struct lincheck_op *ops = realloc(cl->ops, cap * sizeof(*ops));
        if (ops == NULL) {
            cl->out_of_memory = true;
            return NULL;
        }
        cl->ops = ops;
        cl->cap = cap;
    }
    struct lincheck_op *op = &cl->ops[cl->n_ops];
    memset(op, 0, sizeof(*op));
    op->client = cl->id;
    return op;
}

/* A rev, cas or cad answer: true if it is one (a rev's REV VALUE or nil; a compare's OK,
 * OK NEWREV or FAILED CURREV), with op filled. */
static bool record_rev_answer(struct lincheck_op *op, const struct client_reply *r)
{
    unsigned long long rev = 0;
    int used = 0;
    if (op->kind == LINCHECK_REV && r->status == PROTO_ST_NIL)
        return true;
    if (op->kind == LINCHECK_REV && r->status == PROTO_ST_VALUE &&
        sscanf(r->body, "%llu %n", &rev, &used) == 1 && used > 0) {
        op->found = true;
        op->rev = rev;
        snprintf(op->value, sizeof(op->value), "%.*s", (int)(sizeof(op->value) - 1),
                 r->body + used);
        return true;
    }
    bool compare = op->kind == LINCHECK_CAS || op->kind == LINCHECK_CAD;
    if (!compare || (r->status != PROTO_ST_OK && r->status != PROTO_ST_FAILED))
        return false;
    op->held = r->status == PROTO_ST_OK;
    if (op->kind == LINCHECK_CAD && op->held)
        return true;
    return sscanf(r->body, "%llu", &rev) == 1 && ((op->got_rev = rev), true);
}

/* What the reply (or the failed call) says about the op; see the file comment. */
static void record_outcome(struct lincheck_op *op, int rc, const struct client_reply *r)
{
    bool write = op->kind != LINCHECK_GET && op->kind != LINCHECK_REV && op->kind != LINCHECK_TTL;
    op->outcome = LINCHECK_FAILED;
    if (rc != RK_OK) {
        if (write && rc != RK_ERR_INVAL && rc != RK_ERR_TOOBIG)
            op->outcome = LINCHECK_UNKNOWN;
        return;
    }
    if (op->kind == LINCHECK_EXPIRE || op->kind == LINCHECK_TTL) {
        bool there = op->kind == LINCHECK_EXPIRE ? r->status == PROTO_ST_OK
                                                 : r->status == PROTO_ST_VALUE;
        if (there || r->status == PROTO_ST_NIL) {
            op->outcome = LINCHECK_OK;
            op->found = there;
        } else if (write) {
            op->outcome = LINCHECK_UNKNOWN;
        }
        return;
    }
    if (op->kind >= LINCHECK_REV) {
        if (record_rev_answer(op, r))
            op->outcome = LINCHECK_OK;
        else if (write)
            op->outcome = LINCHECK_UNKNOWN;
        return;
    }
    if (op->kind == LINCHECK_GET && (r->status == PROTO_ST_VALUE || r->status == PROTO_ST_NIL)) {
        op->outcome = LINCHECK_OK;
        op->found = r->status == PROTO_ST_VALUE;
        if (op->found)
            snprintf(op->value, sizeof(op->value), "%.*s", (int)(sizeof(op->value) - 1), r->body);
    } else if (op->kind == LINCHECK_SET && r->status == PROTO_ST_OK) {
        op->outcome = LINCHECK_OK;
    } else if (op->kind == LINCHECK_DELETE &&
               (r->status == PROTO_ST_OK || r->status == PROTO_ST_NIL)) {
        op->outcome = LINCHECK_OK;
        op->found = r->status == PROTO_ST_OK;
    } else if (write) {
        op->outcome = LINCHECK_UNKNOWN;
    }
}

/* A ttl answer of a checked key: "-1" (no deadline) or whole seconds up to an hour. */
static bool ttl_answer_ok(const struct client_reply *r)
{
    char *end;
    long v = strtol(r->body, &end, 10);
    return r->body_len > 0 && *end == '\0' && (v == -1 || (v >= 0 && v <= LONG_TTL_MS / 1000));
}

/* Runs op (kind, key, value and ttl_ms filled in) and records its times and outcome; a
 * ttl answer that is not one sets *bad_answer. */
static void run_op(struct client_session *s, struct lincheck_op *op, bool *bad_answer)
{
    static const uint8_t proto_ops[] = {PROTO_OP_GET, PROTO_OP_SET, PROTO_OP_DELETE,
                                        PROTO_OP_REV, PROTO_OP_CAS, PROTO_OP_CAD,
                                        PROTO_OP_EXPIRE, PROTO_OP_TTL};
    struct client_reply reply;
    char err[256], arg[LINCHECK_VAL_MAX + 64];
    const char *val = op->kind == LINCHECK_SET ? op->value : NULL;
    uint8_t proto_op = proto_ops[op->kind];
    long long ttl = (long long)op->ttl_ms;
    if (op->kind == LINCHECK_SET && ttl > 0) {
        snprintf(arg, sizeof(arg), "%lld %s", ttl, op->value);
        val = arg;
        proto_op = PROTO_OP_SETEX;
    } else if (op->kind == LINCHECK_CAS && ttl > 0) {
        snprintf(arg, sizeof(arg), "%lld %llu %s", ttl, (unsigned long long)op->rev, op->value);
        val = arg;
        proto_op = PROTO_OP_CAS_TTL;
    } else if (op->kind == LINCHECK_CAS || op->kind == LINCHECK_CAD) {
        snprintf(arg, sizeof(arg), op->kind == LINCHECK_CAS ? "%llu %s" : "%llu",
                 (unsigned long long)op->rev, op->value);
        val = arg;
    } else if (op->kind == LINCHECK_EXPIRE) {
        snprintf(arg, sizeof(arg), "%lld", ttl);
        val = arg;
    }
    op->invoke_ns = (int64_t)rk_clock_ns();
    int rc = client_session_call(s, proto_op, op->key, (uint32_t)strlen(op->key),
                                 val, val != NULL ? (uint32_t)strlen(val) : 0, &reply, err,
                                 sizeof(err));
    op->complete_ns = (int64_t)rk_clock_ns();
    record_outcome(op, rc, &reply);
    if (rc == RK_OK && op->kind == LINCHECK_TTL && reply.status == PROTO_ST_VALUE &&
        !ttl_answer_ok(&reply) && bad_answer != NULL)
        *bad_answer = true;
    if (rc == RK_OK)
        client_reply_free(&reply);
}

/* Most clients: 20% set, 30% get, 8% delete, 10% rev, 7% cas, 5% cad, 5% expire, 5% ttl,
 * 6% setex, 4% cas --ttl (every ttl LONG_TTL_MS). Every READER_EVERYth client mostly
 * reads (70% get, 10% rev, 10% ttl, 5% set, 3% cas, 2% delete): it
 * keeps talking to a deposed leader that still answers it, where the others, whose writes
 * hang there, move on to the new leader. A cas or cad compares the key's revision as the
 * client last learned it (from a rev or a compare's answer), now and then 0. */
static void random_op(struct client *cl, struct lincheck_op *op)
{
    bool reader = cl->id % READER_EVERY == READER_EVERY - 1;
    static const int normal[N_MIX] = { 30, 20, 8, 10, 7, 5, 5, 5, 6, 4 },
                     readers[N_MIX] = { 70, 5, 2, 10, 3, 0, 0, 10, 0, 0 };
    const int *mix = reader ? readers : normal;
    int dice = rand_r(&cl->seed) % 100, k = rand_r(&cl->seed) % N_KEYS, kind = 0;
    while (dice >= mix[kind])
        dice -= mix[kind++];
    snprintf(op->key, sizeof(op->key), "k%d", k);
    op->ttl_ms = kind >= N_OP_KINDS || kind == LINCHECK_EXPIRE ? LONG_TTL_MS : 0;
    kind = kind == OP_SETEX ? LINCHECK_SET : kind == OP_CAS_TTL ? LINCHECK_CAS : kind;
    op->kind = (enum lincheck_kind)kind;
    if (op->kind == LINCHECK_SET || op->kind == LINCHECK_CAS) /* unique: client and number */
        snprintf(op->value, sizeof(op->value), "c%d-%d", cl->id, cl->seq++);
    if (op->kind == LINCHECK_CAS || op->kind == LINCHECK_CAD)
        op->rev = rand_r(&cl->seed) % 8 == 0 ? 0 : cl->seen_rev[k];
}

/* What the op's answer taught the client of its key's revision. */
static void learn_rev(struct client *cl, const struct lincheck_op *op)
{
    int k = atoi(op->key + 1);
    if (op->outcome != LINCHECK_OK || k < 0 || k >= N_KEYS)
        return;
    if (op->kind == LINCHECK_REV)
        cl->seen_rev[k] = op->found ? op->rev : 0;
    else if (op->kind == LINCHECK_CAS || (op->kind == LINCHECK_CAD && !op->held))
        cl->seen_rev[k] = op->got_rev;
    else if (op->kind == LINCHECK_CAD)
        cl->seen_rev[k] = 0;
}

/* A scan of every key (prefix "k"): a page read at one point in time, so each key's part
 * of it is a get of that key (absent from the page: nil), recorded as such with the scan's
 * times; the per-key checker then checks scans like gets. A failed scan tells nothing. */
static void run_scan(struct client *cl, struct client_session *s)
{
    struct client_reply r;
    char err[256];
    int64_t invoke = (int64_t)rk_clock_ns();
    int rc = client_session_call(s, PROTO_OP_SCAN, "k", 1, "100", 3, &r, err, sizeof(err));
    int64_t complete = (int64_t)rk_clock_ns();
    if (rc != RK_OK)
        return;
    uint64_t rev;
    bool more, found[N_KEYS] = { false };
    char values[N_KEYS][LINCHECK_VAL_MAX] = { { 0 } };
    uint32_t n, off = PROTO_PAGE_HEAD, klen, vlen;
    const char *key, *val;
    bool page = r.status == PROTO_ST_VALUE &&
                proto_page_head(r.body, r.body_len, &rev, &more, &n) == RK_OK;
    while (page && proto_page_next(r.body, r.body_len, &off, &key, &klen, &val, &vlen) == 1) {
        int k = klen >= 2 && key[0] == 'k' ? atoi(key + 1) : -1;
        if (k >= 0 && k < N_KEYS) {
            found[k] = true;
            snprintf(values[k], sizeof(values[k]), "%.*s", (int)vlen, val);
        }
    }
    client_reply_free(&r);
    for (int k = 0; k < N_KEYS && page; k++) {
        struct lincheck_op *op = next_record(cl);
        if (op == NULL)
            return;
        op->kind = LINCHECK_GET;
        op->outcome = LINCHECK_OK;
        op->found = found[k];
        snprintf(op->key, sizeof(op->key), "k%d", k);
        snprintf(op->value, sizeof(op->value), "%.*s", (int)sizeof(op->value) - 1, values[k]);
        op->invoke_ns = invoke;
        op->complete_ns = complete;
        cl->n_ops++;
    }
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    int n_timeouts = (int)(sizeof(op_timeouts_ms) / sizeof(op_timeouts_ms[0]));
    bool pinned = cl->id >= N_CLIENTS / 2;
    struct client_session *s = harness_session(cl->cluster, cl->id % cl->cluster->n, !pinned,
                                               op_timeouts_ms[cl->id % n_timeouts]);
    if (s == NULL) {
        cl->no_session = true;
        return NULL;
    }
    while (!atomic_load(&stop_clients)) {
        if (rand_r(&cl->seed) % 100 < SCAN_PERCENT) {
            run_scan(cl, s);
            continue;
        }
        struct lincheck_op *op = next_record(cl);
        if (op == NULL)
            break;
        random_op(cl, op);
        run_op(s, op, &cl->bad_ttl);
        learn_rev(cl, op);
        cl->n_ops++;
        int64_t took_ms = (op->complete_ns - op->invoke_ns) / 1000000;
        if (took_ms > cl->max_op_ms) {
            cl->max_op_ms = took_ms;
            lincheck_format_op(op, op->invoke_ns, cl->slowest, sizeof(cl->slowest));
        }
        rk_sleep_ms(rand_r(&cl->seed) % (THINK_MAX_MS + 1));
    }
    client_session_free(s);
    return NULL;
}

/* ---- expiry clients: real expiry, timed ----
 *
 * Each writes keys of its own ("x<client>-<round>", a new one per round, so nobody else
 * writes or deletes them, not even a late retry of an earlier round) with setex and a
 * short time to live T (0.5-2 s), sent at t_send and acknowledged at t_ack, and then polls
 * the key (get, now and then ttl) until it sees it gone. A server counts T from when it
 * applied the write, which is after t_send, and a key is deleted only when the leader's
 * count ran out; so:
 *   - the key must not be missing before t_send + T: a nil (get, ttl or expire) that
 *     completed earlier fails the test ("vanished early"), and so does a ttl answer
 *     smaller than the time left to t_send + T at its completion, or -1;
 *   - it must be gone by t_ack + 2 T + slack (RK_EXPIRY_SLACK_MS, default 5000 ms: a
 *     failover, or a new leader that learned the key late, counts again from there): a
 *     get invoked after that which still reads the value fails ("outlived its bound").
 * Half of the rounds extend the key halfway with expire T2 (T <= T2 <= T + 1 s): answered
 * OK at [e_send, e_ack], the bounds become e_send + T2 and e_ack + 2 T2 + slack; of
 * unknown outcome, it may still take effect later, so the lower bound stays (T2 >= T:
 * it cannot bring the deadline forward) and the upper one is dropped. A setex whose answer
 * is not OK ends the round unchecked. */

#define N_EXPIRY_CLIENTS 2
#define EXPIRY_TTL_MIN_MS 500
#define EXPIRY_TTL_SPAN_MS 1500
#define EXPIRY_EXTEND_SPAN_MS 1000
#define EXPIRY_SLACK_MS 5000
#define EXPIRY_POLL_MIN_MS 20
#define EXPIRY_POLL_SPAN_MS 40
#define EXPIRY_OP_TIMEOUT_MS 1000
#define EXPIRY_TTL_EVERY 5          /* one poll in 5 is a ttl */
#define EXPIRY_MAX_ROUNDS 100000

struct expiry_client {
    int id;
    pthread_t thread;
    struct ctl_cluster *cluster;
    unsigned seed;
    int64_t slack_ms;
    int rounds, checked, unacked, cut_off, extended, extend_unknown;
    int64_t max_late_ms;   /* the longest a key was still seen after its lower bound */
    int64_t sum_late_ms;
    int64_t max_gone_ms;   /* ... and the latest it was first seen gone, after it */
    bool no_session;
    char violation[512];   /* the first one, or "" */
};

static int64_t mono_ms(void)
{
    return (int64_t)(rk_clock_ns() / 1000000);
}

static void expiry_violation(struct expiry_client *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void expiry_violation(struct expiry_client *e, const char *fmt, ...)
{
    if (e->violation[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->violation, sizeof(e->violation), fmt, ap);
    va_end(ap);
    fprintf(stderr, "jepsen: expiry client %d: %s\n", e->id, e->violation);
}

/* One key's bounds: not missing before lower, gone by upper (INT64_MAX: unbounded). */
struct expiry_key {
    char key[32], value[32];
    int64_t ttl_ms, t_send, lower, upper;
    bool extend, extended;
    int64_t extend_at;
};

/* expire key T2: true if the round goes on. */
static bool expiry_extend(struct expiry_client *e, struct client_session *s, struct expiry_key *k)
{
    char out[64], arg[32];
    int64_t t2 = k->ttl_ms + rand_r(&e->seed) % (EXPIRY_EXTEND_SPAN_MS + 1);
    snprintf(arg, sizeof(arg), "%lld", (long long)t2);
    k->extended = true;
    int64_t inv = mono_ms();
    int st = harness_call(s, PROTO_OP_EXPIRE, k->key, arg, out, sizeof(out));
    int64_t cmp = mono_ms();
    if (st == PROTO_ST_OK) {
        k->lower = inv + t2;
        k->upper = cmp + 2 * t2 + e->slack_ms;
        e->extended++;
        return true;
    }
    if (st == PROTO_ST_NIL) {
        if (cmp < k->lower)
            expiry_violation(e, "%s vanished early: expire %lld answered nil %lld ms after "
                             "setex %lld was sent, %lld ms before its time", k->key,
                             (long long)t2, (long long)(cmp - k->t_send), (long long)k->ttl_ms,
                             (long long)(k->lower - cmp));
        else
            e->checked++; /* gone, in time */
        return false;
    }
    k->upper = INT64_MAX; /* it may still take effect, later */
    e->extend_unknown++;
    return true;
}

/* One poll: true if the key is still there (the round goes on). */
static bool expiry_poll(struct expiry_client *e, struct client_session *s, struct expiry_key *k)
{
    char out[64];
    bool ttl = rand_r(&e->seed) % EXPIRY_TTL_EVERY == 0;
    int64_t inv = mono_ms();
    int st = harness_call(s, ttl ? PROTO_OP_TTL : PROTO_OP_GET, k->key, NULL, out, sizeof(out));
    int64_t cmp = mono_ms();
    if (st == PROTO_ST_NIL) {
        if (cmp < k->lower) {
            expiry_violation(e, "%s vanished early: %s answered nil %lld ms after setex %lld "
                             "was sent, %lld ms before its time%s", k->key, ttl ? "ttl" : "get",
                             (long long)(cmp - k->t_send), (long long)k->ttl_ms,
                             (long long)(k->lower - cmp), k->extended ? " (extended)" : "");
        } else {
            e->checked++;
            if (cmp - k->lower > e->max_gone_ms)
                e->max_gone_ms = cmp - k->lower;
        }
        return false;
    }
    if (st != PROTO_ST_VALUE)
        return true; /* no answer: nothing learned */
    if (ttl) {
        char *end;
        long long secs = strtoll(out, &end, 10);
        if (*end != '\0' || secs < 0 || secs * 1000 < k->lower - cmp)
            expiry_violation(e, "%s: ttl answered \"%s\" %lld ms after setex %lld was sent, "
                             "%lld ms before its time", k->key, out,
                             (long long)(cmp - k->t_send), (long long)k->ttl_ms,
                             (long long)(k->lower - cmp));
    } else if (strcmp(out, k->value) != 0) {
        expiry_violation(e, "%s: get read \"%s\", not \"%s\"", k->key, out, k->value);
    }
    if (k->upper != INT64_MAX && inv > k->upper)
        expiry_violation(e, "%s outlived its bound: still there %lld ms after setex %lld was "
                         "sent, %lld ms past t_ack + 2 T + %lld ms%s", k->key,
                         (long long)(inv - k->t_send), (long long)k->ttl_ms,
                         (long long)(inv - k->upper), (long long)e->slack_ms,
                         k->extended ? " (extended)" : "");
    if (inv > k->lower) {
        if (inv - k->lower > e->max_late_ms)
            e->max_late_ms = inv - k->lower;
    }
    return true;
}

static void expiry_round(struct expiry_client *e, struct client_session *s)
{
    struct expiry_key k;
    memset(&k, 0, sizeof(k));
    char arg[64];
    snprintf(k.key, sizeof(k.key), "x%d-%d", e->id, e->rounds);
    snprintf(k.value, sizeof(k.value), "v%d-%d", e->id, e->rounds);
    e->rounds++;
    k.ttl_ms = EXPIRY_TTL_MIN_MS + rand_r(&e->seed) % (EXPIRY_TTL_SPAN_MS + 1);
    snprintf(arg, sizeof(arg), "%lld %s", (long long)k.ttl_ms, k.value);
    k.t_send = mono_ms();
    int st = harness_call(s, PROTO_OP_SETEX, k.key, arg, NULL, 0);
    int64_t t_ack = mono_ms();
    if (st != PROTO_ST_OK) {
        e->unacked++;
        return;
    }
    k.lower = k.t_send + k.ttl_ms;
    k.upper = t_ack + 2 * k.ttl_ms + e->slack_ms;
    k.extend = rand_r(&e->seed) % 2 == 0;
    k.extend_at = k.t_send + k.ttl_ms / 2;
    bool there = true;
    while (there && e->violation[0] == '\0') {
        if (atomic_load(&stop_clients)) {
            e->cut_off++;
            return;
        }
        rk_sleep_ms(EXPIRY_POLL_MIN_MS + rand_r(&e->seed) % (EXPIRY_POLL_SPAN_MS + 1));
        if (k.extend && !k.extended && mono_ms() >= k.extend_at)
            there = expiry_extend(e, s, &k);
        else
            there = expiry_poll(e, s, &k);
    }
}

static void *expiry_main(void *arg)
{
    struct expiry_client *e = arg;
    struct client_session *s = harness_session(e->cluster, e->id % e->cluster->n, true,
                                               EXPIRY_OP_TIMEOUT_MS);
    if (s == NULL) {
        e->no_session = true;
        return NULL;
    }
    while (!atomic_load(&stop_clients) && e->violation[0] == '\0' &&
           e->rounds < EXPIRY_MAX_ROUNDS)
        expiry_round(e, s);
    client_session_free(s);
    return NULL;
}

static int64_t expiry_slack_ms(void)
{
    const char *v = getenv("RK_EXPIRY_SLACK_MS");
    long long ms = v != NULL && v[0] != '\0' ? strtoll(v, NULL, 10) : EXPIRY_SLACK_MS;
    return ms < 0 ? 0 : ms;
}

static void start_expiry_clients(struct ctl_cluster *c, struct expiry_client ex[], unsigned seed)
{
    for (int i = 0; i < N_EXPIRY_CLIENTS; i++) {
        ex[i].id = i;
        ex[i].cluster = c;
        ex[i].seed = seed * 17u + 1000u + (unsigned)i;
        ex[i].slack_ms = expiry_slack_ms();
        HARNESS_ASSERT(c, pthread_create(&ex[i].thread, NULL, expiry_main, &ex[i]) == 0,
                       "pthread_create");
    }
}

/* The report, then the verdict: no violation, and enough keys seen to expire. */
static void check_expiry_clients(struct ctl_cluster *c, struct expiry_client ex[], int seconds)
{
    int checked = 0;
    for (int i = 0; i < N_EXPIRY_CLIENTS; i++) {
        struct expiry_client *e = &ex[i];
        checked += e->checked;
        fprintf(stderr, "jepsen: expiry client %d: %d keys, %d seen to expire in their "
                        "bounds (%d extended by expire, %d expires of unknown outcome), %d "
                        "setex not acknowledged, %d cut off by the end; a key was seen at "
                        "most %lld ms past its earliest end, first seen gone at most %lld "
                        "ms past it (slack %lld ms)\n",
                i, e->rounds, e->checked, e->extended, e->extend_unknown, e->unacked,
                e->cut_off, (long long)e->max_late_ms, (long long)e->max_gone_ms,
                (long long)e->slack_ms);
    }
    for (int i = 0; i < N_EXPIRY_CLIENTS; i++) {
        HARNESS_ASSERT(c, !ex[i].no_session, "expiry client %d: no session", i);
        HARNESS_ASSERT(c, ex[i].violation[0] == '\0', "expiry client %d: %s", i,
                       ex[i].violation);
    }
    int want = seconds / 15 > 2 ? seconds / 15 : 2;
    HARNESS_ASSERT(c, checked >= want, "only %d keys seen to expire in %d s (want %d)", checked,
                   seconds, want);
}

/* ---- watchers (issue 17) ----
 *
 * N_WATCHERS `raft_client watch PREFIX` processes (what a user runs: client/watch.c
 * behind the real command line) run beside the clients from before the first op to the
 * end, under every fault, each with its stdout in DIR/watch_NAME.out and its stderr (-v:
 * every switch of server) in DIR/watch_NAME.err; each asks another server first. Two
 * start with --from 1, one from now.
 *
 * The reference is the committed log, replayed through the state machine: kv_apply with
 * an event function is the very code that makes the servers' events, but here it runs on
 * entries read from the servers' log files, not on anything a server says about its
 * history. A log file is compacted at every snapshot (every 10000 entries by default, a
 * few times in a 30 s run) by renaming a shorter copy over it, so an archivist thread
 * keeps a hard link to each version of each server's NAME_log.txt (DIR/NAME_log.keep.K):
 * their inodes outlive the renames (and wipes), and an in-place truncation drops only
 * entries that were not committed. At the end, with the leader's commit index C, the
 * line for each index up to C is the one found in the most servers' files, at least
 * ARCHIVE_CONFIRM of them (a committed entry was persisted by a majority before it
 * counted; a stale line can survive in a file kept before its truncation, but in fewer
 * servers). Two different lines in as many servers fail the test, as does an index no
 * line reaches. Lines 1..C are then parsed (storage_parse_line: checksums too) and
 * applied in order to a fresh map.
 *
 * Each watcher's lines with revisions <= C must then be exactly the events of its prefix
 * from its first revision (1 for --from 1) up to C: same order, same values, no gap, no
 * duplicate; it must have printed the last of them within WATCH_CATCH_UP_MS, and must
 * still be running (a watch that ended said ERR). Its lines past C are not checked. */

#define N_WATCHERS 3
#define ARCHIVE_TICK_MS 250
#define ARCHIVE_CONFIRM 2
#define ARCHIVE_SETTLE_MS 5000
#define WATCH_CATCH_UP_MS 15000

struct watcher {
    const char *name, *prefix;
    bool from_start;                   /* --from 1; else from now */
    pid_t pid;
    char out_path[CTL_PATH_MAX + 32], err_path[CTL_PATH_MAX + 32];
    char **want;                       /* the expected lines (the replay's), in order */
    uint64_t *want_rev;
    size_t n_want, cap_want;
};

static struct watcher watchers[N_WATCHERS] = {
    { .name = "all", .prefix = "", .from_start = true },   /* every key, expiry too */
    { .name = "k", .prefix = "k", .from_start = true },    /* the checked keys only */
    { .name = "x", .prefix = "x", .from_start = false },   /* the expiry keys, from now */
};

static void start_watchers(struct ctl_cluster *c)
{
    for (int i = 0; i < N_WATCHERS; i++) {
        struct watcher *w = &watchers[i];
        char *argv[12], port[8];
        int a = 0, first = (i + 1) % c->n; /* each asks another server first */
        snprintf(port, sizeof(port), "%u", (unsigned)c->servers[first].port);
        argv[a++] = (char *)harness_client_bin();
        argv[a++] = c->servers[first].host;
        argv[a++] = port;
        argv[a++] = "--dir";
        argv[a++] = c->dir;
        argv[a++] = "-v";
        argv[a++] = "watch";
        argv[a++] = (char *)w->prefix;
        if (w->from_start) {
            argv[a++] = "--from";
            argv[a++] = "1";
        }
        argv[a] = NULL;
        snprintf(w->out_path, sizeof(w->out_path), "%s/watch_%s.out", c->dir, w->name);
        snprintf(w->err_path, sizeof(w->err_path), "%s/watch_%s.err", c->dir, w->name);
        int out = open(w->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int err = open(w->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        struct ctl_spawn sp = CTL_SPAWN(argv);
        sp.out_fd = out;
        sp.err_fd = err;
        w->pid = out >= 0 && err >= 0 ? ctl_spawn(&sp) : -1;
        if (out >= 0)
            close(out);
        if (err >= 0)
            close(err);
        HARNESS_ASSERT(c, w->pid > 0, "cannot start watcher %s", w->name);
    }
}

/* A whole file, NUL-terminated (NULL if it cannot be read); *len its length. */
static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *more = realloc(buf, cap * 2 + 1);
        if (more == NULL) {
            free(buf);
            buf = NULL;
        }
        buf = more;
        cap *= 2;
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* ---- the archive of the committed log ---- */

#define ARCHIVE_MAX_FILES 4096

struct archived {
    char *line[2];      /* the lines seen for this index: the first two that differ */
    unsigned seen[2];   /* by which servers (bit i: server i) */
};

struct archive {
    /* The servers' files, copied from the cluster at the start: the thread never reads the
     * cluster, which a failing assertion destroys while the thread still runs. */
    int n;
    char dir[CTL_DIR_MAX];
    char names[CTL_MAX_SERVERS][REGISTRY_NAME_MAX + 1];
    pthread_t thread;
    atomic_bool stop;
    ino_t ino[CTL_MAX_SERVERS]; /* each server's log file as last linked (0: none yet) */
    char *kept[ARCHIVE_MAX_FILES]; /* the links: DIR/NAME_log.keep.K */
    int kept_server[ARCHIVE_MAX_FILES];
    int n_kept;
    bool link_failed;
    struct archived *at; /* at[index]; at[0] unused */
    size_t cap;
    long long odd_lines; /* a third different line for an index (not kept) */
    bool out_of_memory;
};

/* Each server's NAME_log.txt that is not linked yet gets a link (its inode survives the
 * rename of a compaction, or a wipe). */
static void archive_link(struct archive *ar)
{
    for (int i = 0; i < ar->n && ar->n_kept < ARCHIVE_MAX_FILES; i++) {
        char path[CTL_PATH_MAX], keep[CTL_PATH_MAX + 32];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s_log.txt", ar->dir, ar->names[i]);
        if (stat(path, &st) != 0 || st.st_ino == ar->ino[i])
            continue;
        snprintf(keep, sizeof(keep), "%s/%s_log.keep.%d", ar->dir, ar->names[i], ar->n_kept);
        if (link(path, keep) != 0) {
            if (errno != ENOENT) /* not just wiped meanwhile */
                ar->link_failed = true;
            continue;
        }
        if (stat(keep, &st) != 0 || (ar->kept[ar->n_kept] = strdup(keep)) == NULL) {
            ar->link_failed = true;
            continue;
        }
        ar->kept_server[ar->n_kept++] = i;
        ar->ino[i] = st.st_ino;
    }
}

static void *archive_main(void *arg)
{
    struct archive *ar = arg;
    while (!atomic_load(&ar->stop)) {
        archive_link(ar);
        rk_sleep_ms(ARCHIVE_TICK_MS);
    }
    return NULL;
}

static void archive_offer(struct archive *ar, size_t index, const char *line, size_t len,
                          int server)
{
    if (index >= ar->cap) {
        size_t cap = ar->cap == 0 ? 65536 : ar->cap;
        while (cap <= index)
            cap *= 2;
        struct archived *at = realloc(ar->at, cap * sizeof(*at));
        if (at == NULL) {
            ar->out_of_memory = true;
            return;
        }
        memset(at + ar->cap, 0, (cap - ar->cap) * sizeof(*at));
        ar->at = at;
        ar->cap = cap;
    }
    struct archived *a = &ar->at[index];
    for (int k = 0; k < 2; k++) {
        if (a->line[k] == NULL) {
            a->line[k] = strndup(line, len);
            if (a->line[k] == NULL) {
                ar->out_of_memory = true;
                return;
            }
            a->seen[k] = 1u << server;
            return;
        }
        if (strlen(a->line[k]) == len && memcmp(a->line[k], line, len) == 0) {
            a->seen[k] |= 1u << server;
            return;
        }
    }
    ar->odd_lines++;
}

/* Every kept file's lines up to index upto (a torn last line is left out). */
static void archive_read_all(struct archive *ar, uint64_t upto)
{
    for (int f = 0; f < ar->n_kept && !ar->out_of_memory; f++) {
        size_t len;
        char *text = read_whole(ar->kept[f], &len);
        for (char *p = text, *nl; p != NULL && *p != '\0' && (nl = strchr(p, '\n')) != NULL;
             p = nl + 1) {
            unsigned long long index = strtoull(p, NULL, 10);
            if (index > upto)
                break; /* and so are the lines after it */
            if (index > 0)
                archive_offer(ar, (size_t)index, p, (size_t)(nl - p), ar->kept_server[f]);
        }
        free(text);
    }
}

/* The line taken for index: the one more servers had, if at least ARCHIVE_CONFIRM did;
 * NULL if none, or if both lines were in as many servers (*tie then). */
static const char *archive_known(const struct archive *ar, size_t index, bool *tie)
{
    *tie = false;
    if (index >= ar->cap)
        return NULL;
    const struct archived *a = &ar->at[index];
    int n0 = a->line[0] != NULL ? __builtin_popcount(a->seen[0]) : 0;
    int n1 = a->line[1] != NULL ? __builtin_popcount(a->seen[1]) : 0;
    *tie = n0 == n1 && n1 >= ARCHIVE_CONFIRM;
    int best = n0 >= n1 ? 0 : 1, n = n0 >= n1 ? n0 : n1;
    return n >= ARCHIVE_CONFIRM && !*tie ? a->line[best] : NULL;
}

static void archive_free(struct archive *ar)
{
    for (size_t i = 0; i < ar->cap; i++) {
        free(ar->at[i].line[0]);
        free(ar->at[i].line[1]);
    }
    free(ar->at);
    for (int f = 0; f < ar->n_kept; f++)
        free(ar->kept[f]);
}

/* ---- the replay, and the check ---- */

static void want_line(struct watcher *w, uint64_t rev, const char *line)
{
    if (w->n_want == w->cap_want) {
        size_t cap = w->cap_want == 0 ? 4096 : w->cap_want * 2;
        char **lines = realloc(w->want, cap * sizeof(*lines));
        uint64_t *revs = lines != NULL ? realloc(w->want_rev, cap * sizeof(*revs)) : NULL;
        if (lines != NULL)
            w->want = lines;
        if (revs == NULL)
            return; /* noticed: n_want stays short of the events (checked) */
        w->want_rev = revs;
        w->cap_want = cap;
    }
    w->want[w->n_want] = strdup(line);
    w->want_rev[w->n_want] = rev;
    if (w->want[w->n_want] != NULL)
        w->n_want++;
}

struct replay {
    size_t events, lost;
};

/* kv_apply's event function: the line `raft_client watch` prints for it (client/watch.c,
 * watch_print_event), for every watcher whose prefix the key has. */
static void replay_event(void *ctx, uint64_t rev, enum kv_event_kind kind, const char *key,
                         uint32_t key_len, const char *val, uint32_t val_len)
{
    static const char *const kinds[] = { "", "set", "delete", "expire" };
    struct replay *rp = ctx;
    char line[2 * LINCHECK_VAL_MAX + 128];
    int n = snprintf(line, sizeof(line), "%llu %s %.*s", (unsigned long long)rev,
                     kind <= KV_EVENT_EXPIRE ? kinds[kind] : "?", (int)key_len, key);
    if (kind == KV_EVENT_SET && n > 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, " %.*s", (int)val_len, val);
    rp->events++;
    for (int i = 0; i < N_WATCHERS; i++) {
        struct watcher *w = &watchers[i];
        size_t plen = strlen(w->prefix);
        if (key_len >= plen && memcmp(key, w->prefix, plen) == 0) {
            size_t before = w->n_want;
            want_line(w, rev, line);
            rp->lost += w->n_want == before;
        }
    }
}

/* Applies archived entries 1..upto to a fresh map: each watcher's expected lines. */
static void replay_log(struct ctl_cluster *c, const struct archive *ar, uint64_t upto)
{
    struct replay rp = { 0 };
    struct kv *kv = kv_new();
    HARNESS_ASSERT(c, kv != NULL, "out of memory");
    kv_set_event_fn(kv, replay_event, &rp);
    raft_term_t min_term = 0;
    for (uint64_t i = 1; i <= upto; i++) {
        bool tie;
        const char *line = archive_known(ar, (size_t)i, &tie);
        struct raft_entry e;
        bool torn = false;
        char why[256] = "";
        int rc = storage_parse_line(line, strlen(line), i, min_term, &e, &torn, why,
                                    sizeof(why));
        HARNESS_ASSERT(c, rc == RK_OK, "archived entry %llu: %s: %s", (unsigned long long)i,
                       why, line);
        min_term = e.term;
        rc = kv_apply(kv, i, &e);
        raft_entry_free(&e);
        HARNESS_ASSERT(c, rc > 0, "archived entry %llu does not apply: %s",
                       (unsigned long long)i, rk_strerror(rc));
    }
    kv_free(kv);
    HARNESS_ASSERT(c, rp.lost == 0, "out of memory");
    fprintf(stderr, "jepsen: watch: the committed log 1..%llu replayed: %zu changes\n",
            (unsigned long long)upto, rp.events);
}

/* A watcher's output, one line each (a last line without its newline is left out: the
 * watcher may be writing it). */
struct got_lines {
    char *text;
    char **line;
    uint64_t *rev;
    size_t n;
    char bad[256]; /* the first line that is not an event, or "" */
};

static void got_free(struct got_lines *g)
{
    free(g->text);
    free(g->line);
    free(g->rev);
    memset(g, 0, sizeof(*g));
}

/* "REV set KEY VALUE", "REV delete KEY" or "REV expire KEY". */
static bool event_line_ok(const char *s, uint64_t *rev)
{
    char *end;
    if (*s < '1' || *s > '9')
        return false;
    *rev = strtoull(s, &end, 10);
    if (*end != ' ')
        return false;
    end++;
    size_t kw = strcspn(end, " ");
    bool set = kw == 3 && strncmp(end, "set", 3) == 0;
    if (!set && !(kw == 6 && (strncmp(end, "delete", 6) == 0 || strncmp(end, "expire", 6) == 0)))
        return false;
    return end[kw] == ' ' && (!set || strchr(end + kw + 1, ' ') != NULL);
}

static bool read_got(const struct watcher *w, struct got_lines *g)
{
    size_t len, n = 0;
    memset(g, 0, sizeof(*g));
    g->text = read_whole(w->out_path, &len);
    if (g->text == NULL)
        return false;
    for (size_t i = 0; i < len; i++)
        n += g->text[i] == '\n';
    g->line = malloc((n + 1) * sizeof(*g->line));
    g->rev = malloc((n + 1) * sizeof(*g->rev));
    if (g->line == NULL || g->rev == NULL) {
        got_free(g);
        return false;
    }
    for (char *p = g->text, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        *nl = '\0';
        if (!event_line_ok(p, &g->rev[g->n])) {
            if (g->bad[0] == '\0')
                snprintf(g->bad, sizeof(g->bad), "%s", p);
            continue;
        }
        g->line[g->n++] = p;
    }
    return true;
}

/* How many times the watcher switched servers (its -v notes). */
static int count_switches(const struct watcher *w)
{
    size_t len;
    char *text = read_whole(w->err_path, &len);
    int n = 0;
    for (char *p = text; p != NULL && (p = strstr(p, "; resuming from ")) != NULL; p++)
        n++;
    free(text);
    return n;
}

/* Its last line of stderr, for a report. */
static void last_err_line(const struct watcher *w, char *out, size_t outlen)
{
    size_t len;
    char *text = read_whole(w->err_path, &len);
    out[0] = '\0';
    if (text == NULL)
        return;
    while (len > 0 && text[len - 1] == '\n')
        text[--len] = '\0';
    char *last = strrchr(text, '\n');
    snprintf(out, outlen, "%s", last != NULL ? last + 1 : text);
    free(text);
}

/* Waits until the watcher printed the last expected line (the replay's last revision for
 * its prefix), then reads its output. Fails the test if it ended or never got there. */
static void await_watcher(struct ctl_cluster *c, struct watcher *w, struct got_lines *g)
{
    uint64_t last = w->n_want > 0 ? w->want_rev[w->n_want - 1] : 0;
    uint64_t deadline = rk_clock_ms() + WATCH_CATCH_UP_MS;
    for (;;) {
        int status;
        char err[256];
        if (ctl_wait_exit(w->pid, 0, &status)) {
            w->pid = 0;
            last_err_line(w, err, sizeof(err));
            HARNESS_ASSERT(c, false, "watcher %s (prefix \"%s\") ended (status %d): %s",
                           w->name, w->prefix, status, err);
        }
        HARNESS_ASSERT(c, read_got(w, g), "cannot read %s", w->out_path);
        if (g->n > 0 && g->rev[g->n - 1] >= last)
            return;
        if (rk_clock_ms() >= deadline)
            break;
        got_free(g);
        rk_sleep_ms(100);
    }
    HARNESS_ASSERT(c, false, "watcher %s (prefix \"%s\") did not print revision %llu within "
                   "%d ms of the end (its last: %s)", w->name, w->prefix,
                   (unsigned long long)last, WATCH_CATCH_UP_MS,
                   g->n > 0 ? g->line[g->n - 1] : "none");
}

/* Compares the watcher's lines with revisions <= upto to its expected lines from its
 * first revision on. */
static void check_watcher(struct ctl_cluster *c, struct watcher *w, uint64_t upto)
{
    struct got_lines g;
    await_watcher(c, w, &g);
    int switches = count_switches(w);
    HARNESS_ASSERT(c, g.bad[0] == '\0', "watcher %s printed a line that is no event: %s",
                   w->name, g.bad);
    size_t n_got = 0;
    while (n_got < g.n && g.rev[n_got] <= upto)
        n_got++;
    uint64_t from = w->from_start ? 1 : g.n > 0 ? g.rev[0] : UINT64_MAX;
    size_t first = 0; /* the first expected line at or after from */
    while (first < w->n_want && w->want_rev[first] < from)
        first++;
    size_t n_want = w->n_want - first, i = 0;
    while (i < n_got && i < n_want && strcmp(g.line[i], w->want[first + i]) == 0)
        i++;
    fprintf(stderr, "jepsen: watcher %-3s (prefix \"%s\", %s): %zu events, revisions %llu..%llu "
                    "checked against the log (%zu expected), %zu later ones unchecked; %d "
                    "switches of server\n",
            w->name, w->prefix, w->from_start ? "--from 1" : "from now", n_got,
            (unsigned long long)from, (unsigned long long)upto, n_want, g.n - n_got,
            switches);
    if (i < n_got || i < n_want) {
        const char *got = i < n_got ? g.line[i] : "(nothing)";
        const char *want = i < n_want ? w->want[first + i] : "(nothing)";
        uint64_t grev = i < n_got ? g.rev[i] : UINT64_MAX;
        uint64_t wrev = i < n_want ? w->want_rev[first + i] : UINT64_MAX;
        const char *what = grev > wrev   ? "an event is missing (a gap)"
                           : grev < wrev ? "an event too many (a duplicate, or one not in the log)"
                                         : "a different event";
        fprintf(stderr, "jepsen: watcher %s: line %zu: %s:\n", w->name, i + 1, what);
        for (size_t k = i >= 3 ? i - 3 : 0; k < i + 4 && (k < n_got || k < n_want); k++)
            fprintf(stderr, "jepsen:   %s %-40s | log: %s\n", k == i ? ">" : " ",
                    k < n_got ? g.line[k] : "", k < n_want ? w->want[first + k] : "");
        char msg[512];
        snprintf(msg, sizeof(msg), "watcher %s (prefix \"%s\"), line %zu: %s: printed "
                 "\"%s\", the committed log has \"%s\"", w->name, w->prefix, i + 1, what,
                 got, want);
        got_free(&g);
        HARNESS_ASSERT(c, false, "%s", msg);
    }
    got_free(&g);
}

static void start_archive(struct ctl_cluster *c, struct archive *ar)
{
    memset(ar, 0, sizeof(*ar));
    ar->n = c->n;
    snprintf(ar->dir, sizeof(ar->dir), "%s", c->dir);
    for (int i = 0; i < c->n; i++)
        snprintf(ar->names[i], sizeof(ar->names[i]), "%s", c->servers[i].name);
    atomic_store(&ar->stop, false);
    HARNESS_ASSERT(c, pthread_create(&ar->thread, NULL, archive_main, ar) == 0,
                   "pthread_create");
}

/* After recover: the archive up to the leader's commit index, the replay, each watcher
 * checked, then stopped. */
static void check_watchers(struct ctl_cluster *c, struct archive *ar)
{
    atomic_store(&ar->stop, true);
    pthread_join(ar->thread, NULL);
    struct ctl_status st;
    HARNESS_ASSERT(c, ctl_wait_leader(c, RECOVER_MS, &st) >= 0, "no leader");
    uint64_t upto = (uint64_t)st.commit;
    uint64_t known = 0, deadline = rk_clock_ms() + ARCHIVE_SETTLE_MS;
    bool tie = false;
    for (;;) { /* the followers' files may lag their commit index a moment */
        archive_link(ar);
        HARNESS_ASSERT(c, !ar->link_failed && ar->n_kept < ARCHIVE_MAX_FILES,
                       "cannot keep the log files (link: %s)", strerror(errno));
        archive_read_all(ar, upto);
        HARNESS_ASSERT(c, !ar->out_of_memory, "out of memory");
        while (known < upto && archive_known(ar, (size_t)known + 1, &tie) != NULL)
            known++;
        if (known == upto || tie || rk_clock_ms() >= deadline)
            break;
        rk_sleep_ms(200);
    }
    fprintf(stderr, "jepsen: watch: %d versions of the servers' log files kept; entries "
                    "1..%llu known, leader's commit index %llu; %lld odd lines\n",
            ar->n_kept, (unsigned long long)known, (unsigned long long)upto, ar->odd_lines);
    if (known < upto) {
        const struct archived *a = (size_t)known + 1 < ar->cap ? &ar->at[known + 1] : NULL;
        HARNESS_ASSERT(c, false, "committed entry %llu: %s: \"%s\" (%d servers), \"%s\" "
                       "(%d servers)", (unsigned long long)known + 1,
                       tie ? "servers disagree" : "not in enough servers' log files",
                       a != NULL && a->line[0] != NULL ? a->line[0] : "-",
                       a != NULL ? __builtin_popcount(a->seen[0]) : 0,
                       a != NULL && a->line[1] != NULL ? a->line[1] : "-",
                       a != NULL ? __builtin_popcount(a->seen[1]) : 0);
    }
    replay_log(c, ar, upto);
    for (int i = 0; i < N_WATCHERS; i++)
        check_watcher(c, &watchers[i], upto);
    for (int i = 0; i < N_WATCHERS; i++) {
        ctl_end(watchers[i].pid, SIGTERM);
        watchers[i].pid = 0;
        for (size_t k = 0; k < watchers[i].n_want; k++)
            free(watchers[i].want[k]);
        free(watchers[i].want);
        free(watchers[i].want_rev);
        watchers[i].want = NULL;
        watchers[i].want_rev = NULL;
        watchers[i].n_want = watchers[i].cap_want = 0;
    }
    archive_free(ar);
}

/* ---- faults (on the main thread, which outlives the servers it starts) ---- */

enum fault_kind {
    F_KILL_ANY,
    F_KILL_LEADER,
    F_STOP_LEADER,
    F_ISOLATE_LEADER,
    F_SPLIT,
    F_BRIDGE,
    F_LINK_DOWN,
    F_REPLACE,
    F_TRANSFER,
    N_FAULT_KINDS
};

static const char *const fault_names[N_FAULT_KINDS] = {
    "kill -9 of a random server", "kill -9 of the leader", "SIGSTOP of the leader",
    "partition: leader cut off",  "partition: 2 | 3",       "partition: bridge (2 | 1 | 2)",
    "link down of one server",
    "membership: a server removed, wiped, started with --join and added back",
    "leadership transfer to a random server",
};

/* Names for RK_JEPSEN_FAULTS. */
static const char *const fault_ids[N_FAULT_KINDS] = {
    "kill-any", "kill-leader", "stop-leader", "isolate-leader", "split", "bridge", "link-down",
    "replace", "transfer",
};

static bool is_partition(enum fault_kind k)
{
    return k >= F_ISOLATE_LEADER && k <= F_LINK_DOWN;
}

struct fault {
    enum fault_kind kind;
    int victim;        /* the server killed, stopped or cut off, or -1 */
    bool was_leader;
};

#define MAX_EVENTS 4096

/* A fault starting or healing, for the saved history. */
struct event {
    int64_t t_ns;
    char what[96];
};

struct nemesis {
    struct ctl_cluster *c;
    struct client_session *admin; /* the cluster commands of the membership faults */
    int transfers_missed;         /* transfers whose target did not take over in time */
    uint64_t t0_ms;
    unsigned seed;
    struct event events[MAX_EVENTS];
    int n_events;
    int counts[N_FAULT_KINDS];
    int total;
    bool partitions;
    enum fault_kind kinds[N_FAULT_KINDS]; /* the ones in use */
    int n_kinds;
};

/* The kinds named in $RK_JEPSEN_FAULTS (all if unset), minus partitions if there is no
 * network to cut. Returns false on an unknown name (err says which). */
static bool choose_kinds(struct nemesis *nm, char *err, size_t errlen)
{
    const char *env = getenv("RK_JEPSEN_FAULTS");
    nm->n_kinds = 0;
    for (int k = 0; k < N_FAULT_KINDS; k++) {
        bool wanted = env == NULL || env[0] == '\0';
        for (const char *p = env; !wanted && p != NULL && *p != '\0';) {
            size_t len = strcspn(p, ",");
            wanted = len == strlen(fault_ids[k]) && strncmp(p, fault_ids[k], len) == 0;
            p = p[len] == ',' ? p + len + 1 : p + len;
        }
        if (wanted && (nm->partitions || !is_partition((enum fault_kind)k)))
            nm->kinds[nm->n_kinds++] = (enum fault_kind)k;
    }
    for (const char *p = env; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ","), k = 0;
        while (k < N_FAULT_KINDS && !(len == strlen(fault_ids[k]) && strncmp(p, fault_ids[k], len) == 0))
            k++;
        if (k == N_FAULT_KINDS) {
            snprintf(err, errlen, "RK_JEPSEN_FAULTS: unknown fault '%.*s'", (int)len, p);
            return false;
        }
        p = p[len] == ',' ? p + len + 1 : p + len;
    }
    return true;
}

static enum fault_kind pick_kind(struct nemesis *nm)
{
    return nm->kinds[rand_r(&nm->seed) % (unsigned)nm->n_kinds];
}

/* A random order of the servers, the leader (if any) first when lead_first. */
static void shuffle(struct nemesis *nm, int order[], int leader, bool lead_first)
{
    int n = nm->c->n;
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = rand_r(&nm->seed) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; lead_first && leader >= 0 && i < n; i++) {
        if (order[i] == leader) {
            order[i] = order[0];
            order[0] = leader;
        }
    }
}

/* Cuts every link between the servers order[0..a) and order[b..n). */
static void cut_groups(struct nemesis *nm, const int order[], int a, int b)
{
    for (int i = 0; i < a; i++)
        for (int j = b; j < nm->c->n; j++)
            harness_net_cut(nm->c, order[i], order[j]);
}

/* A cluster command through the nemesis' own session: its reply status (-rc if none),
 * the body in out. */
static int admin(struct nemesis *nm, int op, const char *key, const char *val, char *out,
                 size_t outlen)
{
    if (nm->admin == NULL)
        nm->admin = harness_session(nm->c, -1, true, RECOVER_MS);
    HARNESS_ASSERT(nm->c, nm->admin != NULL, "no session for the cluster commands");
    return harness_call(nm->admin, op, key, val, out, outlen);
}

/* Whether a MEMBERS answer ("NAME HOST PORT voter|learner" lines) lists name. */
static bool is_member(const char *members, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = members; *line != '\0';) {
        if (strncmp(line, name, len) == 0 && line[len] == ' ')
            return true;
        const char *nl = strchr(line, '\n');
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    return false;
}

/* Membership: the victim leaves the configuration (forced: it is alive, the guard is for
 * a cluster in trouble), is killed and wiped; heal_fault adds it back with --join. */
static int start_replace(struct nemesis *nm, struct fault *f, int any)
{
    struct ctl_cluster *c = nm->c;
    char out[256];
    f->victim = any;
    int st = admin(nm, PROTO_OP_REMOVE, c->servers[any].name, "force", out, sizeof(out));
    /* A leader change during the removal leaves its outcome unknown (ERR "leadership
     * lost"): the members say whether it happened; if not, it is asked again. */
    for (int tries = 0; st != PROTO_ST_OK && tries < 5; tries++) {
        char members[1024];
        rk_sleep_ms(200);
        int ms = admin(nm, PROTO_OP_MEMBERS, "", "", members, sizeof(members));
        if (ms == PROTO_ST_VALUE && !is_member(members, c->servers[any].name))
            st = PROTO_ST_OK;
        else
            st = admin(nm, PROTO_OP_REMOVE, c->servers[any].name, "force", out, sizeof(out));
    }
    HARNESS_ASSERT(c, st == PROTO_ST_OK, "remove %s: status %d %s", c->servers[any].name, st,
                   out);
    ctl_set_voter(c, any, false);
    int rc = ctl_kill(c, any);
    return rc == RK_OK ? ctl_wipe(c, any) : rc;
}

static int heal_replace(struct nemesis *nm, const struct fault *f)
{
    struct ctl_cluster *c = nm->c;
    struct ctl_server *s = &c->servers[f->victim];
    char addr[REGISTRY_HOST_MAX + 16], out[256];
    s->join = true;
    int rc = ctl_start(c, f->victim);
    if (rc != RK_OK)
        return rc;
    snprintf(addr, sizeof(addr), "%s %u", s->host, (unsigned)s->port);
    int st = admin(nm, PROTO_OP_ADD, s->name, addr, out, sizeof(out));
    HARNESS_ASSERT(c, st == PROTO_ST_OK, "add %s back: status %d %s", s->name, st, out);
    ctl_set_voter(c, f->victim, true);
    return RK_OK;
}

/* A transfer to a random other server (thesis §3.10). One that does not happen in time
 * is counted, not failed: the history must be linearizable either way. */
static int start_transfer(struct nemesis *nm, struct fault *f, int leader, int any)
{
    char out[256];
    f->victim = any != leader ? any : (any + 1) % nm->c->n;
    int st = admin(nm, PROTO_OP_TRANSFER, nm->c->servers[f->victim].name, "", out, sizeof(out));
    if (st != PROTO_ST_OK)
        nm->transfers_missed++;
    return st == PROTO_ST_OK || st == PROTO_ST_ERR ? RK_OK : RK_ERR_IO;
}

static int start_fault(struct nemesis *nm, struct fault *f)
{
    struct ctl_cluster *c = nm->c;
    int leader = ctl_wait_leader(c, LEADER_PROBE_MS, NULL);
    int any = rand_r(&nm->seed) % c->n;
    bool leader_first = rand_r(&nm->seed) % 2 == 0;
    int order[CTL_MAX_SERVERS];
    shuffle(nm, order, leader, leader_first);
    f->victim = -1;
    switch (f->kind) {
    case F_KILL_ANY:
    case F_KILL_LEADER:
        f->victim = f->kind == F_KILL_LEADER && leader >= 0 ? leader : any;
        return ctl_kill(c, f->victim);
    case F_STOP_LEADER:
        f->victim = leader >= 0 ? leader : any;
        return ctl_pause(c, f->victim);
    case F_ISOLATE_LEADER:
        f->victim = leader >= 0 ? leader : any;
        shuffle(nm, order, f->victim, true);
        cut_groups(nm, order, 1, 1);
        return RK_OK;
    case F_SPLIT:
        cut_groups(nm, order, 2, 2);
        return RK_OK;
    case F_BRIDGE:
        cut_groups(nm, order, 2, 3); /* order[2] talks to both sides */
        return RK_OK;
    case F_LINK_DOWN:
        f->victim = leader_first && leader >= 0 ? leader : any;
        return harness_net_link(c, f->victim, false);
    case F_REPLACE:
        return start_replace(nm, f, any);
    case F_TRANSFER:
        return start_transfer(nm, f, leader, any);
    case N_FAULT_KINDS:
        break;
    }
    return RK_ERR_INVAL;
}

static int heal_fault(struct nemesis *nm, const struct fault *f)
{
    struct ctl_cluster *c = nm->c;
    switch (f->kind) {
    case F_KILL_ANY:
    case F_KILL_LEADER:
        return ctl_start(c, f->victim);
    case F_STOP_LEADER:
        return ctl_resume(c, f->victim);
    case F_REPLACE:
        return heal_replace(nm, f);
    case F_TRANSFER:
        return RK_OK;
    default:
        return harness_net_heal_all(c);
    }
}

static void note_event(struct nemesis *nm, const char *what, const struct fault *f)
{
    if (nm->n_events >= MAX_EVENTS)
        return;
    struct event *e = &nm->events[nm->n_events++];
    e->t_ns = (int64_t)rk_clock_ns();
    snprintf(e->what, sizeof(e->what), "%s %s%s%s", what, fault_names[f->kind],
             f->victim >= 0 ? ": " : "", f->victim >= 0 ? nm->c->servers[f->victim].name : "");
}

static void sleep_until(uint64_t deadline_ms, int ms)
{
    uint64_t until = rk_clock_ms() + ms;
    if (until > deadline_ms)
        until = deadline_ms;
    while (rk_clock_ms() < until)
        rk_sleep_ms(20);
}

/* One fault every 2-5 s (1-2 s quiet, then 1-3 s of fault), healed each time. */
static void run_nemesis(struct nemesis *nm, uint64_t end_ms)
{
    while (nm->n_kinds > 0 && rk_clock_ms() + QUIET_MIN_MS + HOLD_MIN_MS < end_ms) {
        sleep_until(end_ms, QUIET_MIN_MS + rand_r(&nm->seed) % QUIET_SPAN_MS);
        struct fault f = {.kind = pick_kind(nm)};
        int rc = start_fault(nm, &f);
        note_event(nm, "start", &f);
        int hold = HOLD_MIN_MS + rand_r(&nm->seed) % HOLD_SPAN_MS;
        fprintf(stderr, "jepsen: %6.1f s: fault %d: %s%s%s for %d ms%s\n",
                (double)(rk_clock_ms() - nm->t0_ms) / 1000.0, nm->total + 1,
                fault_names[f.kind], f.victim >= 0 ? ": " : "",
                f.victim >= 0 ? nm->c->servers[f.victim].name : "", hold,
                rc == RK_OK ? "" : " (could not inject it)");
        HARNESS_ASSERT(nm->c, rc == RK_OK, "cannot inject %s: %s", fault_names[f.kind],
                       rk_strerror(rc));
        nm->counts[f.kind]++;
        nm->total++;
        sleep_until(end_ms + HOLD_MIN_MS + HOLD_SPAN_MS, hold);
        rc = heal_fault(nm, &f);
        note_event(nm, "healed", &f);
        HARNESS_ASSERT(nm->c, rc == RK_OK, "cannot heal %s: %s", fault_names[f.kind],
                       rk_strerror(rc));
    }
}

/* Every server up, unpaused and connected again, and a leader elected. */
static void recover(struct ctl_cluster *c)
{
    HARNESS_ASSERT(c, harness_net_heal_all(c) == RK_OK, "cannot heal the network");
    for (int i = 0; i < c->n; i++) {
        if (c->servers[i].paused)
            HARNESS_ASSERT(c, ctl_resume(c, i) == RK_OK, "cannot resume %s",
                           c->servers[i].name);
        if (!ctl_is_running(c, i))
            HARNESS_ASSERT(c, ctl_start(c, i) == RK_OK, "cannot restart %s",
                           c->servers[i].name);
    }
    HARNESS_ASSERT(c, ctl_wait_leader(c, RECOVER_MS, NULL) >= 0,
                   "no leader within %d ms of the last fault", RECOVER_MS);
}

/* After the faults: one more get of every key, recorded as client N_CLIENTS. */
static void final_reads(struct ctl_cluster *c, struct client *cl)
{
    struct client_session *s = harness_session(c, -1, true, FINAL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "no session for the final reads");
    for (int k = 0; k < N_KEYS; k++) {
        struct lincheck_op *op = next_record(cl);
        HARNESS_ASSERT(c, op != NULL, "out of memory");
        op->kind = LINCHECK_GET;
        snprintf(op->key, sizeof(op->key), "k%d", k);
        run_op(s, op, NULL);
        cl->n_ops++;
        HARNESS_ASSERT(c, op->outcome == LINCHECK_OK, "the final get of %s failed", op->key);
    }
    client_session_free(s);
}

/* ---- the report ---- */

struct totals {
    size_t ops, ok, unknown, failed;
    size_t by_kind[N_MIX][3]; /* [kind, or OP_SETEX / OP_CAS_TTL][outcome] */
    int64_t max_op_ms;
    char slowest[3 * LINCHECK_VAL_MAX + 96];
};

static struct lincheck_op *gather(struct client cl[], int n, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < n; i++) {
        t->ops += cl[i].n_ops;
        if (cl[i].max_op_ms > t->max_op_ms) {
            t->max_op_ms = cl[i].max_op_ms;
            snprintf(t->slowest, sizeof(t->slowest), "%s", cl[i].slowest);
        }
    }
    struct lincheck_op *all = malloc((t->ops + 1) * sizeof(*all));
    if (all == NULL)
        return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < cl[i].n_ops; k++) {
            const struct lincheck_op *op = &cl[i].ops[k];
            all[at++] = *op;
            int k = op->ttl_ms > 0 && op->kind == LINCHECK_SET   ? OP_SETEX
                    : op->ttl_ms > 0 && op->kind == LINCHECK_CAS ? OP_CAS_TTL
                                                                 : (int)op->kind;
            t->by_kind[k][op->outcome]++;
            if (op->outcome == LINCHECK_OK)
                t->ok++;
            else if (op->outcome == LINCHECK_UNKNOWN)
                t->unknown++;
            else
                t->failed++;
        }
    }
    return all;
}

static void print_totals(const struct totals *t, int seconds, const struct nemesis *nm)
{
    static const char *const kinds[N_MIX] = {"get", "set", "delete", "rev", "cas", "cad",
                                             "expire", "ttl", "setex", "cas --ttl"};
    fprintf(stderr, "jepsen: %d s, %d clients, %d keys: %zu ops: ok %zu, unknown %zu, "
                    "failed %zu; slowest op %lld ms\n",
            seconds, N_CLIENTS, N_KEYS, t->ops, t->ok, t->unknown, t->failed,
            (long long)t->max_op_ms);
    for (int k = 0; k < N_MIX; k++)
        fprintf(stderr, "jepsen:   %-9s ok %zu, unknown %zu, failed %zu\n", kinds[k],
                t->by_kind[k][LINCHECK_OK], t->by_kind[k][LINCHECK_UNKNOWN],
                t->by_kind[k][LINCHECK_FAILED]);
    fprintf(stderr, "jepsen: %d faults%s:\n", nm->total,
            nm->partitions ? "" : " (no partitions)");
    for (int k = 0; k < nm->n_kinds; k++)
        fprintf(stderr, "jepsen:   %-30s %d\n", fault_names[nm->kinds[k]],
                nm->counts[nm->kinds[k]]);
    if (nm->counts[F_TRANSFER] > 0)
        fprintf(stderr, "jepsen:   (transfers that did not take place in time: %d)\n",
                nm->transfers_missed);
}

static int by_invocation(const void *a, const void *b)
{
    const struct lincheck_op *x = a, *y = b;
    return x->invoke_ns < y->invoke_ns ? -1 : x->invoke_ns > y->invoke_ns;
}

/* Writes the history to $RK_JEPSEN_HISTORY, if set: one op per line in order of
 * invocation, with the faults as '#' lines. Times are ms since the first invocation. */
static void save_history(const struct lincheck_op *ops, size_t n, const struct nemesis *nm)
{
    const char *path = getenv("RK_JEPSEN_HISTORY");
    if (path == NULL || path[0] == '\0' || n == 0)
        return;
    struct lincheck_op *sorted = malloc(n * sizeof(*sorted));
    FILE *f = sorted != NULL ? fopen(path, "w") : NULL;
    if (f == NULL) {
        fprintf(stderr, "jepsen: cannot write %s\n", path);
        free(sorted);
        return;
    }
    memcpy(sorted, ops, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), by_invocation);
    int64_t t0 = sorted[0].invoke_ns;
    int e = 0;
    for (size_t i = 0; i < n; i++) {
        for (; e < nm->n_events && nm->events[e].t_ns <= sorted[i].invoke_ns; e++)
            fprintf(f, "# %.3f ms: %s\n", (double)(nm->events[e].t_ns - t0) / 1e6,
                    nm->events[e].what);
        char line[256];
        lincheck_format_op(&sorted[i], t0, line, sizeof(line));
        fprintf(f, "%s\n", line);
    }
    fclose(f);
    free(sorted);
    fprintf(stderr, "jepsen: history written to %s\n", path);
}

/* Runs the checker over the whole history and fails the test on a violation. */
static void check_history(struct ctl_cluster *c, const struct lincheck_op *ops, size_t n,
                          const struct nemesis *nm)
{
    struct lincheck_options o = {.max_steps_per_key = CHECK_MAX_STEPS};
    struct lincheck_result r;
    int64_t t0 = (int64_t)rk_clock_ns();
    int rc = lincheck_check(ops, n, &o, &r);
    double secs = (double)((int64_t)rk_clock_ns() - t0) / 1e9;
    fprintf(stderr, "jepsen: checker: %s; %d keys (%d inconclusive), %zu ops searched, %zu "
                    "open unknown writes, %zu dropped; %lld steps (most for one key %lld); "
                    "%.3f s\n",
            rc == RK_OK ? lincheck_verdict_name(r.verdict) : rk_strerror(rc), r.keys,
            r.keys_inconclusive, r.ops_searched, r.ops_open, r.ops_dropped, r.steps,
            r.max_key_steps, secs);
    if (r.explanation != NULL)
        fprintf(stderr, "jepsen: %s", r.explanation);
    enum lincheck_verdict v = r.verdict;
    int inconclusive = r.keys_inconclusive;
    char key[LINCHECK_KEY_MAX];
    snprintf(key, sizeof(key), "%s", r.key);
    lincheck_result_free(&r);
    save_history(ops, n, nm);
    HARNESS_ASSERT(c, rc == RK_OK, "the checker failed: %s", rk_strerror(rc));
    HARNESS_ASSERT(c, v != LINCHECK_VIOLATION,
                   "the history is NOT linearizable (key %s; see the explanation above)", key);
    HARNESS_ASSERT(c, inconclusive <= MAX_INCONCLUSIVE_KEYS,
                   "%d keys inconclusive (the checker's budget ran out)", inconclusive);
}

/* ---- the test ---- */

/* A cluster in namespaces, or on 127.0.0.1 without partitions if that cannot be done. */
static struct ctl_cluster *make_cluster(bool *partitions)
{
    char err[512], err2[256];
    const char *no_netns = getenv("RK_JEPSEN_NO_NETNS");
    struct ctl_cluster *c = NULL;
    if (no_netns != NULL && no_netns[0] != '\0' && no_netns[0] != '0')
        snprintf(err, sizeof(err), "RK_JEPSEN_NO_NETNS is set");
    else
        c = harness_cluster_new_netns(N_SERVERS, err, sizeof(err));
    *partitions = c != NULL;
    if (c == NULL) {
        fprintf(stderr, "jepsen: partitions skipped: %s\n", err);
        c = harness_cluster_new(N_SERVERS, err2, sizeof(err2));
        ck_assert_msg(c != NULL, "harness_cluster_new: %s", err2);
    }
    return c;
}

static void start_clients(struct ctl_cluster *c, struct client cl[], unsigned seed)
{
    atomic_store(&stop_clients, false);
    for (int i = 0; i < N_CLIENTS; i++) {
        cl[i].id = i;
        cl[i].cluster = c;
        cl[i].seed = seed * 31u + (unsigned)i;
        HARNESS_ASSERT(c, pthread_create(&cl[i].thread, NULL, client_main, &cl[i]) == 0,
                       "pthread_create");
    }
}

static void check_clients(struct ctl_cluster *c, struct client cl[])
{
    for (int i = 0; i < N_CLIENTS; i++) {
        HARNESS_ASSERT(c, !cl[i].no_session, "client %d: no session", i);
        HARNESS_ASSERT(c, !cl[i].out_of_memory, "client %d: out of memory", i);
        HARNESS_ASSERT(c, !cl[i].bad_ttl, "client %d: a ttl answer that is not -1 or 0..%lld",
                       i, LONG_TTL_MS / 1000);
    }
}

START_TEST(test_jepsen)
{
    int seconds = run_seconds();
    static struct nemesis nm; /* large: its event log */
    memset(&nm, 0, sizeof(nm));
    struct ctl_cluster *c = make_cluster(&nm.partitions);
    nm.c = c;
    const char *seed = getenv("RK_JEPSEN_SEED");
    nm.seed = seed != NULL && seed[0] != '\0' ? (unsigned)strtoul(seed, NULL, 10)
                                              : (unsigned)time(NULL) ^ (unsigned)getpid();
    char err[256];
    HARNESS_ASSERT(c, choose_kinds(&nm, err, sizeof(err)), "%s", err);
    fprintf(stderr, "jepsen: seed %u, %d s, servers:", nm.seed, seconds);
    for (int i = 0; i < c->n; i++)
        fprintf(stderr, " %s=%s:%u", c->servers[i].name, c->servers[i].host,
                (unsigned)c->servers[i].port);
    fprintf(stderr, "\n");
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "cannot start the servers");
    HARNESS_ASSERT(c, ctl_wait_leader(c, RECOVER_MS, NULL) >= 0, "no leader");

    static struct client cl[N_CLIENTS + 1]; /* the last one: the final reads */
    memset(cl, 0, sizeof(cl));
    cl[N_CLIENTS].id = N_CLIENTS;
    nm.t0_ms = rk_clock_ms();
    static struct expiry_client ex[N_EXPIRY_CLIENTS];
    memset(ex, 0, sizeof(ex));
    static struct archive ar;
    start_archive(c, &ar);
    start_watchers(c);
    start_clients(c, cl, nm.seed);
    start_expiry_clients(c, ex, nm.seed);
    run_nemesis(&nm, nm.t0_ms + (uint64_t)seconds * 1000);
    atomic_store(&stop_clients, true);
    for (int i = 0; i < N_CLIENTS; i++)
        pthread_join(cl[i].thread, NULL); /* each op ends within its timeout */
    for (int i = 0; i < N_EXPIRY_CLIENTS; i++)
        pthread_join(ex[i].thread, NULL);
    check_clients(c, cl);
    check_expiry_clients(c, ex, seconds);
    recover(c);
    final_reads(c, &cl[N_CLIENTS]);
    check_watchers(c, &ar);

    struct totals t;
    struct lincheck_op *all = gather(cl, N_CLIENTS + 1, &t);
    for (int i = 0; i <= N_CLIENTS; i++)
        free(cl[i].ops);
    HARNESS_ASSERT(c, all != NULL, "out of memory");
    print_totals(&t, seconds, &nm);
    check_history(c, all, t.ops, &nm);
    free(all);
    HARNESS_ASSERT(c, t.max_op_ms <= OP_HANG_MS, "an op took %lld ms (timeout %d ms): %s",
                   (long long)t.max_op_ms, OP_TIMEOUT_MAX_MS, t.slowest);
    HARNESS_ASSERT(c, t.ok >= (size_t)seconds * MIN_OK_OPS_PER_S,
                   "only %zu ok ops in %d s", t.ok, seconds);
    client_session_free(nm.admin);
    harness_finish(c);
}
END_TEST

static Suite *stress_jepsen_suite(void)
{
    Suite *s = suite_create("stress_jepsen");
    TCase *tc = tcase_create("jepsen");
    tcase_set_timeout(tc, run_seconds() + 180);
    tcase_add_test(tc, test_jepsen);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(stress_jepsen_suite)
