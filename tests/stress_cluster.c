/* tests/stress_cluster.c - 8 concurrent clients against a real 5-server cluster while
 * servers (sometimes the leader) are killed with SIGKILL and restarted. Each client owns
 * its keys and checks every reply, and the final state, against a model of its own writes. */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define N_SERVERS 5
#define N_CLIENTS 8
#define OPS_PER_CLIENT 500
#define KEYS_PER_CLIENT 8
#define OP_TIMEOUT_MS 3000
#define OP_HANG_MS (OP_TIMEOUT_MS + 3000) /* an op slower than this counts as a hang */
#define MAX_FAULTS 6
#define THINK_MAX_MS 20 /* a pause of 0..20 ms between ops spreads the run over the faults */
#define CLIENTS_DEADLINE_MS 80000
#define MAX_ALLOWED 32
#define MAX_VIOLATIONS 8
#define VAL_LEN 24

/* What a key may hold: its last acknowledged value ("" = absent) plus the values of the
 * writes since then whose outcome is unknown (error or timeout). */
struct key_model {
    char allowed[MAX_ALLOWED][VAL_LEN];
    int n_allowed;
    bool overflow; /* too many unknown outcomes: any value of this key is allowed */
};

struct client {
    int id;
    pthread_t thread;
    struct ctl_cluster *cluster; /* read-only here: the registry path */
    unsigned seed;
    struct key_model keys[KEYS_PER_CLIENT];
    int ops_done, ok_ops, failed_ops, failed_in_fault;
    int64_t max_op_ms;
    int n_violations;
    char violations[MAX_VIOLATIONS][200];
};

static atomic_bool fault_active;
static atomic_int clients_done;

/* ---- the model ---- */

static void model_reset(struct key_model *m, const char *val)
{
    snprintf(m->allowed[0], VAL_LEN, "%s", val);
    m->n_allowed = 1;
    m->overflow = false;
}

static void model_add_unknown(struct key_model *m, const char *val)
{
    if (m->n_allowed >= MAX_ALLOWED) {
        m->overflow = true;
        return;
    }
    snprintf(m->allowed[m->n_allowed++], VAL_LEN, "%s", val);
}

static bool model_allows(const struct key_model *m, const char *val)
{
    for (int k = 0; k < m->n_allowed; k++)
        if (strcmp(m->allowed[k], val) == 0)
            return true;
    return false;
}

/* True if some allowed state has the key present. */
static bool model_may_exist(const struct key_model *m)
{
    for (int k = 0; k < m->n_allowed; k++)
        if (m->allowed[k][0] != '\0')
            return true;
    return m->overflow;
}

static void violation(struct client *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records a model violation (the first few messages are kept, all are counted). */
static void violation(struct client *cl, const char *fmt, ...)
{
    if (cl->n_violations < MAX_VIOLATIONS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cl->violations[cl->n_violations], sizeof(cl->violations[0]), fmt, ap);
        va_end(ap);
    }
    cl->n_violations++;
}

/* ---- one client ---- */

static void key_name(int client, int k, char *out, size_t outlen)
{
    snprintf(out, outlen, "c%d-k%d", client, k);
}

/* A get's answer must be one of the allowed states; for an overflowed key, anything
 * this client could have written to it. */
static void check_get(struct client *cl, const struct key_model *m, const char *key, int st,
                      const char *val)
{
    if (st == PROTO_ST_NIL) {
        if (!model_allows(m, "") && !m->overflow)
            violation(cl, "client %d: get %s returned NIL, the key must exist", cl->id, key);
    } else if (st == PROTO_ST_VALUE) {
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "c%d-op", cl->id);
        bool ok = model_allows(m, val) ||
                  (m->overflow && strncmp(val, prefix, strlen(prefix)) == 0);
        if (!ok)
            violation(cl, "client %d: get %s returned '%s', not allowed by the model",
                      cl->id, key, val);
    }
}

static void count_failure(struct client *cl)
{
    cl->failed_ops++;
    if (atomic_load(&fault_active))
        cl->failed_in_fault++;
}

static void run_one_op(struct client *cl, struct client_session *s, int op_no)
{
    int k = rand_r(&cl->seed) % KEYS_PER_CLIENT;
    int dice = rand_r(&cl->seed) % 100;
    struct key_model *m = &cl->keys[k];
    char key[32], val[VAL_LEN], out[256];
    key_name(cl->id, k, key, sizeof(key));
    snprintf(val, sizeof(val), "c%d-op%d", cl->id, op_no);

    uint64_t t0 = rk_clock_ms();
    int st;
    if (dice < 50) {
        st = harness_call(s, PROTO_OP_SET, key, val, out, sizeof(out));
        if (st == PROTO_ST_OK)
            model_reset(m, val);
        else
            model_add_unknown(m, val);
    } else if (dice < 85) {
        st = harness_call(s, PROTO_OP_GET, key, NULL, out, sizeof(out));
        check_get(cl, m, key, st, out);
    } else {
        st = harness_call(s, PROTO_OP_DELETE, key, NULL, out, sizeof(out));
        /* OK means the key existed. (NIL is not checked: a retried delete whose first
         * attempt was applied answers NIL.) */
        if (st == PROTO_ST_OK && !model_may_exist(m))
            violation(cl, "client %d: delete %s answered OK but the key cannot exist", cl->id,
                      key);
        if (st == PROTO_ST_OK || st == PROTO_ST_NIL)
            model_reset(m, "");
        else
            model_add_unknown(m, "");
    }
    int64_t took = (int64_t)(rk_clock_ms() - t0);
    if (took > cl->max_op_ms)
        cl->max_op_ms = took;
    bool ok = st == PROTO_ST_OK || st == PROTO_ST_VALUE || st == PROTO_ST_NIL;
    if (ok)
        cl->ok_ops++;
    else
        count_failure(cl);
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct client_session *s = harness_session(cl->cluster, -1, true, OP_TIMEOUT_MS);
    if (s == NULL) {
        violation(cl, "client %d: no session", cl->id);
    } else {
        for (int op = 0; op < OPS_PER_CLIENT; op++) {
            run_one_op(cl, s, op);
            cl->ops_done++;
            rk_sleep_ms(rand_r(&cl->seed) % (THINK_MAX_MS + 1));
        }
        client_session_free(s);
    }
    atomic_fetch_add(&clients_done, 1);
    return NULL;
}

/* ---- faults (run on the main thread, which outlives the servers it starts) ---- */

/* Every other fault hits the leader (if one is found quickly), the others a random server. */
static int pick_victim(struct ctl_cluster *c, unsigned *seed, int fault_no, bool *is_leader)
{
    int leader = ctl_wait_leader(c, 1000, NULL);
    int victim = fault_no % 2 == 0 && leader >= 0 ? leader : rand_r(seed) % c->n;
    *is_leader = victim == leader;
    return victim;
}

/* Sleeps up to ms, returning early once every client is done. */
static void sleep_while_clients_run(int ms)
{
    uint64_t until = rk_clock_ms() + ms;
    while (rk_clock_ms() < until && atomic_load(&clients_done) < N_CLIENTS)
        rk_sleep_ms(20);
}

static int run_faults(struct ctl_cluster *c, unsigned *seed)
{
    int faults = 0;
    sleep_while_clients_run(300);
    while (faults < MAX_FAULTS && atomic_load(&clients_done) < N_CLIENTS) {
        bool is_leader = false;
        int victim = pick_victim(c, seed, faults, &is_leader);
        atomic_store(&fault_active, true);
        HARNESS_ASSERT(c, ctl_kill(c, victim) == RK_OK, "cannot kill %s",
                       c->servers[victim].name);
        fprintf(stderr, "stress: fault %d: kill -9 %s%s\n", faults + 1, c->servers[victim].name,
                is_leader ? " (the leader)" : "");
        faults++;
        sleep_while_clients_run(200 + rand_r(seed) % 400);
        HARNESS_ASSERT(c, ctl_start(c, victim) == RK_OK, "cannot restart %s",
                       c->servers[victim].name);
        sleep_while_clients_run(600); /* failover and catch-up still count as the fault */
        atomic_store(&fault_active, false);
        sleep_while_clients_run(200 + rand_r(seed) % 400);
    }
    atomic_store(&fault_active, false);
    return faults;
}

/* ---- final checks ---- */

static void final_check(struct ctl_cluster *c, struct client *cl)
{
    struct client_session *s = harness_session(c, -1, true, 10000);
    HARNESS_ASSERT(c, s != NULL, "no session for the final reads");
    for (int k = 0; k < KEYS_PER_CLIENT; k++) {
        char key[32], out[256];
        key_name(cl->id, k, key, sizeof(key));
        int st = harness_call(s, PROTO_OP_GET, key, NULL, out, sizeof(out));
        HARNESS_ASSERT(c, st == PROTO_ST_VALUE || st == PROTO_ST_NIL,
                       "final get %s failed: %d (%s)", key, st, out);
        check_get(cl, &cl->keys[k], key, st, out);
    }
    client_session_free(s);
}

static void report_violations(struct ctl_cluster *c, struct client cl[])
{
    int total = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        for (int v = 0; v < cl[i].n_violations && v < MAX_VIOLATIONS; v++)
            fprintf(stderr, "stress: VIOLATION %s\n", cl[i].violations[v]);
        total += cl[i].n_violations;
    }
    HARNESS_ASSERT(c, total == 0, "%d model violations (see stderr)", total);
}

START_TEST(test_stress_with_faults)
{
    struct ctl_cluster *c = harness_start(N_SERVERS, 10000);

    static struct client cl[N_CLIENTS];
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "stress: seed %u\n", seed);
    memset(cl, 0, sizeof(cl));
    atomic_store(&clients_done, 0);
    atomic_store(&fault_active, false);
    uint64_t t0 = rk_clock_ms();
    for (int i = 0; i < N_CLIENTS; i++) {
        cl[i].id = i;
        cl[i].cluster = c;
        cl[i].seed = seed * 31 + (unsigned)i;
        for (int k = 0; k < KEYS_PER_CLIENT; k++)
            model_reset(&cl[i].keys[k], "");
        HARNESS_ASSERT(c, pthread_create(&cl[i].thread, NULL, client_main, &cl[i]) == 0,
                       "pthread_create");
    }

    int faults = run_faults(c, &seed);
    while (atomic_load(&clients_done) < N_CLIENTS &&
           rk_clock_ms() - t0 < CLIENTS_DEADLINE_MS)
        rk_sleep_ms(50);
    uint64_t took = rk_clock_ms() - t0;
    HARNESS_ASSERT(c, atomic_load(&clients_done) == N_CLIENTS,
                   "clients still running after %lld ms (a hang?)", (long long)took);
    int ok = 0, failed = 0, failed_in_fault = 0;
    int64_t max_op = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        pthread_join(cl[i].thread, NULL);
        ok += cl[i].ok_ops;
        failed += cl[i].failed_ops;
        failed_in_fault += cl[i].failed_in_fault;
        if (cl[i].max_op_ms > max_op)
            max_op = cl[i].max_op_ms;
    }
    fprintf(stderr,
            "stress: %d clients x %d ops (0-%d ms pauses) in %lld ms = %.0f ops/s; "
            "%d faults; %d ok, %d failed (%d during faults); slowest op %lld ms\n",
            N_CLIENTS, OPS_PER_CLIENT, THINK_MAX_MS, (long long)took,
            (ok + failed) * 1000.0 / (double)(took > 0 ? took : 1), faults, ok, failed,
            failed_in_fault, (long long)max_op);
    HARNESS_ASSERT(c, max_op <= OP_HANG_MS, "an op took %lld ms (timeout %d ms)",
                   (long long)max_op, OP_TIMEOUT_MS);

    /* Faults are over: every server runs again; the data must match the models. */
    for (int i = 0; i < c->n; i++)
        HARNESS_ASSERT(c, ctl_is_running(c, i), "%s is not running", c->servers[i].name);
    struct ctl_status lst;
    int leader = ctl_wait_leader(c, 10000, &lst);
    HARNESS_ASSERT(c, leader >= 0, "no leader after the faults");
    for (int i = 0; i < N_CLIENTS; i++)
        final_check(c, &cl[i]);
    report_violations(c, cl);
    for (int i = 0; i < c->n; i++)
        HARNESS_ASSERT(c, ctl_wait_commit(c, i, lst.commit, 10000) == RK_OK,
                       "%s did not reach commit %lld", c->servers[i].name, lst.commit);
    harness_finish(c);
}
END_TEST

static Suite *stress_cluster_suite(void)
{
    Suite *s = suite_create("stress_cluster");
    TCase *tc = tcase_create("stress");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stress_with_faults);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(stress_cluster_suite)
