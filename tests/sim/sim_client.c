/* tests/sim/sim_client.c - simulated clients, served as server/node/client_ops.c serves
 * them: set/delete and cas/cad (comparing the revision the leader's state machine holds,
 * or another), setex/expire/cas --ttl (keys that expire 100 ms .. 2 s after they are
 * applied) proposed on a leader and acknowledged when it applies them (Raft paper §8),
 * get through ReadIndex (thesis §6.4); every outcome is recorded and checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "sim_internal.h"

typedef unsigned long long ull;

#define CLIENT_READS_PER_TAKE 16

static const char *sim_client_kind_name(uint8_t kind)
{
    switch (kind) {
    case SIM_OP_SET: return "set";
    case SIM_OP_DELETE: return "delete";
    case SIM_OP_CAS: return "cas";
    case SIM_OP_CAD: return "cad";
    case SIM_OP_SETEX: return "setex";
    case SIM_OP_EXPIRE: return "expire";
    case SIM_OP_CAS_TTL: return "cas_ttl";
    default: return "get";
    }
}

static uint8_t sim_client_entry_type(uint8_t kind)
{
    switch (kind) {
    case SIM_OP_SET: return RAFT_ENTRY_SET;
    case SIM_OP_CAS: return RAFT_ENTRY_CAS;
    case SIM_OP_CAD: return RAFT_ENTRY_CAD;
    case SIM_OP_SETEX: return RAFT_ENTRY_SETEX;
    case SIM_OP_EXPIRE: return RAFT_ENTRY_EXPIRE;
    case SIM_OP_CAS_TTL: return RAFT_ENTRY_CAS_TTL;
    default: return RAFT_ENTRY_DELETE;
    }
}

/* The revision a cas or cad compares: mostly the one the node's state machine holds for
 * the key (it may be stale there: the compare then fails), else 0 or a near one. Chosen
 * by the op's id, not drawn: the random schedules (and the regression seeds) stay as
 * they were before cas existed. */
static uint64_t sim_client_expected_rev(const struct sim *s, const struct sim_node *n,
                                        const char *key)
{
    uint64_t rev = 0;
    kv_get_rev(n->kv, key, (uint32_t)strlen(key), NULL, &rev);
    uint64_t pick = s->next_op_id % 10;
    return pick < 7 ? rev : pick < 9 ? 0 : rev + 1;
}

/* Some sets and deletes are compare-and-set instead, some sets give the key a time to
 * live (setex, or cas --ttl), some deletes give one to a key that is there (expire): by op
 * id (see above). */
static uint8_t sim_client_variant(const struct sim *s, uint8_t kind)
{
    uint64_t id = s->next_op_id + 1;
    if (id % 5 == 0 && kind == SIM_OP_SET)
        return id % 15 == 0 ? SIM_OP_CAS_TTL : SIM_OP_CAS;
    if (id % 5 == 0)
        return SIM_OP_CAD;
    if (kind == SIM_OP_SET && (id % 5 == 2 || id % 5 == 4))
        return SIM_OP_SETEX;
    if (kind == SIM_OP_DELETE && id % 5 == 3)
        return SIM_OP_EXPIRE;
    return kind;
}

/* A time to live for op id: of the order of election timeouts, so that keys expire while
 * leaders change; mostly short, so that many expire before the next write to them. */
static uint64_t sim_client_ttl(uint64_t id)
{
    uint64_t h = sim_check_mix(id * 0x9E3779B97F4A7C15ULL + 0x7474);
    return h % 3 != 0 ? 100 + (h >> 8) % 401 : 100 + (h >> 8) % 1901;
}

static bool sim_client_has_ttl(uint8_t kind)
{
    return kind == SIM_OP_SETEX || kind == SIM_OP_EXPIRE || kind == SIM_OP_CAS_TTL;
}

static void sim_client_history(struct sim *s, uint64_t id, enum sim_op_state state)
{
    struct sim_history *h = &s->hist;
    if (id >= h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        while (cap <= id)
            cap *= 2;
        uint8_t *grown = realloc(h->state, cap);
        if (grown == NULL)
            abort();
        memset(grown + h->cap, 0, cap - h->cap);
        h->state = grown;
        h->cap = cap;
    }
    h->state[id] = (uint8_t)state;
    if (id >= h->n)
        h->n = id + 1;
}

static struct sim_op *sim_client_add(struct sim *s, uint64_t id, uint8_t kind, int node,
                                     const char *key)
{
    if (s->n_ops == s->cap_ops) {
        size_t cap = s->cap_ops ? s->cap_ops * 2 : 64;
        struct sim_op *grown = realloc(s->ops, cap * sizeof(*grown));
        if (grown == NULL)
            abort();
        s->ops = grown;
        s->cap_ops = cap;
    }
    struct sim_op *op = &s->ops[s->n_ops++];
    memset(op, 0, sizeof(*op));
    op->id = id;
    op->kind = kind;
    op->node = (int8_t)node;
    op->incarnation = s->node[node].incarnation;
    snprintf(op->key, sizeof(op->key), "%s", key);
    sim_client_history(s, id, SIM_OP_PENDING);
    return op;
}

static void sim_client_remove(struct sim *s, size_t i)
{
    memmove(&s->ops[i], &s->ops[i + 1], (s->n_ops - i - 1) * sizeof(*s->ops));
    s->n_ops--;
}

int sim_client_write(struct sim *s, int node, uint8_t kind, const char *key, const char *val,
                     bool probe, uint64_t *op_id)
{
    uint64_t ttl = sim_client_has_ttl(kind) ? sim_client_ttl(s->next_op_id + 1) : 0;
    return sim_client_write_ttl(s, node, kind, key, val, ttl, probe, op_id);
}

int sim_client_write_ttl(struct sim *s, int node, uint8_t kind, const char *key,
                         const char *val, uint64_t ttl_ms, bool probe, uint64_t *op_id)
{
    struct sim_node *n = &s->node[node];
    uint64_t id = ++s->next_op_id;
    if (op_id != NULL)
        *op_id = id;
    bool has_val = kind == SIM_OP_SET || kind == SIM_OP_CAS || kind == SIM_OP_SETEX ||
                   kind == SIM_OP_CAS_TTL;
    struct raft_entry cmd = { .type = sim_client_entry_type(kind), .key = (char *)key,
                              .key_len = (uint32_t)strlen(key), .val = has_val ? (char *)val : "",
                              .val_len = has_val ? (uint32_t)strlen(val) : 0,
                              .ttl_ms = sim_client_has_ttl(kind) ? ttl_ms : 0 };
    if (raft_entry_has_rev(cmd.type))
        cmd.rev = sim_client_expected_rev(s, n, key);
    raft_index_t index = 0;
    raft_term_t term = 0;
    int rc = raft_propose_entry(n->raft, &cmd, &index, &term);
    if (rc == RK_OK && n->xfer_req != 0) /* thesis §3.10 */
        sim_fail(s, "Transfer", "n%d takes a write (index %llu) while it hands leadership over",
                 node, (ull)index);
    if (rc != RK_OK) {
        sim_trace_text(s, node, "client c%llu %s %s: %s", (ull)id, sim_client_kind_name(kind), key,
                       rk_strerror(rc));
        sim_client_history(s, id, SIM_OP_REJECTED);
        s->stats.rejected++;
        return rc;
    }
    struct sim_op *op = sim_client_add(s, id, kind, node, key);
    snprintf(op->val, sizeof(op->val), "%s", has_val ? val : "");
    op->probe = probe;
    op->index = index;
    op->term = term;
    op->ttl_ms = cmd.ttl_ms;
    op->fp = sim_check_entry_fp(raft_entry_at(n->raft, index));
    sim_check_proposed(s, index, term);
    sim_trace_text(s, node, "client c%llu %s %s%s%s (rev %llu ttl %llu) -> index %llu term %llu",
                   (ull)id, sim_client_kind_name(kind), key, has_val ? "=" : "", op->val,
                   (ull)cmd.rev, (ull)cmd.ttl_ms, (ull)index, (ull)term);
    sim_node_after_step(s, n); /* as do_write: the proposal's Ready goes to the io thread */
    return RK_OK;
}

int sim_client_read(struct sim *s, int node, const char *key, uint64_t *op_id)
{
    struct sim_node *n = &s->node[node];
    uint64_t id = ++s->next_op_id;
    if (op_id != NULL)
        *op_id = id;
    uint64_t read_id = ++s->next_read_id;
    struct sim_op *op = sim_client_add(s, id, SIM_OP_GET, node, key);
    op->read_id = read_id;
    op->must_see = s->chk.max_acked;
    int rc = raft_read_index(n->raft, read_id);
    if (rc != RK_OK) {
        sim_trace_text(s, node, "client c%llu get %s: %s", (ull)id, key, rk_strerror(rc));
        sim_client_remove(s, s->n_ops - 1);
        sim_client_history(s, id, SIM_OP_REJECTED);
        s->stats.rejected++;
        return rc;
    }
    sim_trace_text(s, node, "client c%llu get %s (must see index %llu)", (ull)id, key,
                   (ull)op->must_see);
    sim_node_after_step(s, n);
    return RK_OK;
}

/* n applied index: acknowledge its own proposals there, or report them lost. */
void sim_client_on_apply(struct sim *s, struct sim_node *n, raft_index_t index,
                         const struct raft_entry *e)
{
    for (size_t i = 0; i < s->n_ops && !s->failed;) {
        struct sim_op *op = &s->ops[i];
        if (op->kind == SIM_OP_GET || op->node != n->id || op->index != index ||
            op->incarnation != n->incarnation) {
            i++;
            continue;
        }
        if (e->term != op->term) {
            sim_trace_text(s, n->id, "lost c%llu: index %llu now holds term %llu, not %llu",
                           (ull)op->id, (ull)index, (ull)e->term, (ull)op->term);
            sim_client_history(s, op->id, SIM_OP_LOST);
            s->stats.writes_lost++;
            if (op->probe && s->probe_id == op->id)
                s->probe_id = 0;
        } else if (sim_check_entry_fp(e) != op->fp) {
            sim_fail(s, "Leader Append-Only", "n%d proposed c%llu at index %llu term %llu but "
                     "applied another command there", n->id, (ull)op->id, (ull)index,
                     (ull)op->term);
        } else {
            sim_trace_text(s, n->id, "ack c%llu %s %s at index %llu", (ull)op->id,
                           sim_client_kind_name(op->kind), op->key, (ull)index);
            sim_check_ack(s, index, op->fp);
            sim_client_history(s, op->id, SIM_OP_ACKED);
            s->stats.writes_acked++;
            if (op->probe)
                s->probe_acked = index;
        }
        sim_client_remove(s, i);
    }
}

static struct sim_op *sim_client_find_read(struct sim *s, int node, uint64_t read_id)
{
    for (size_t i = 0; i < s->n_ops; i++)
        if (s->ops[i].kind == SIM_OP_GET && s->ops[i].node == node &&
            s->ops[i].read_id == read_id)
            return &s->ops[i];
    return NULL;
}

/* Answers the reads whose read index n has applied, from n's state machine. */
static void sim_client_finish_reads(struct sim *s, struct sim_node *n)
{
    for (size_t i = 0; i < s->n_ops && !s->failed;) {
        struct sim_op *op = &s->ops[i];
        if (op->kind != SIM_OP_GET || op->node != n->id || !op->read_ready ||
            n->applied < op->read_index) {
            i++;
            continue;
        }
        uint32_t len = 0;
        const char *val = kv_get(n->kv, op->key, (uint32_t)strlen(op->key), &len);
        sim_trace_text(s, n->id, "read c%llu %s = %.*s (read index %llu, applied %llu)",
                       (ull)op->id, op->key, val ? (int)len : 3, val ? val : "nil",
                       (ull)op->read_index, (ull)n->applied);
        sim_check_read(s, n, op);
        sim_client_history(s, op->id, SIM_OP_ACKED);
        s->stats.reads_ok++;
        sim_client_remove(s, i);
    }
}

/* As take_reads in server/node/node.c: ReadIndex answers, ok or failed. */
void sim_client_take_reads(struct sim *s, struct sim_node *n)
{
    struct raft_read reads[CLIENT_READS_PER_TAKE];
    uint32_t got;
    while ((got = raft_take_reads(n->raft, reads, CLIENT_READS_PER_TAKE)) > 0) {
        for (uint32_t i = 0; i < got; i++) {
            struct sim_op *op = sim_client_find_read(s, n->id, reads[i].id);
            if (op == NULL)
                continue;
            if (reads[i].ok) {
                op->read_ready = true;
                op->read_index = reads[i].index;
                continue;
            }
            sim_trace_text(s, n->id, "read c%llu failed: leadership lost", (ull)op->id);
            sim_client_history(s, op->id, SIM_OP_REJECTED);
            s->stats.reads_failed++;
            sim_client_remove(s, (size_t)(op - s->ops));
        }
    }
    sim_client_finish_reads(s, n);
}

/* The node crashed: its clients never learn what became of their commands. */
void sim_client_drop_node(struct sim *s, int node)
{
    for (size_t i = 0; i < s->n_ops;) {
        if (s->ops[i].node != node) {
            i++;
            continue;
        }
        sim_client_history(s, s->ops[i].id, SIM_OP_UNKNOWN);
        if (s->ops[i].id == s->probe_id)
            s->probe_id = 0;
        sim_client_remove(s, i);
    }
}

/* The node installed a snapshot up to index: its waiting writes there are never applied
 * one by one, so their clients get no answer. */
void sim_client_drop_up_to(struct sim *s, int node, raft_index_t index)
{
    for (size_t i = 0; i < s->n_ops;) {
        const struct sim_op *op = &s->ops[i];
        if (op->node != node || op->kind == SIM_OP_GET || op->index > index) {
            i++;
            continue;
        }
        sim_client_history(s, op->id, SIM_OP_UNKNOWN);
        if (op->id == s->probe_id)
            s->probe_id = 0;
        sim_client_remove(s, i);
    }
}

/* A running node that believes it leads, of any term (a client that has not yet heard
 * of the new leader keeps writing to the old one), or -1. */
static int sim_client_any_leader(struct sim *s)
{
    int picked = -1, seen = 0;
    for (int i = 0; i < s->n_slots; i++) {
        const struct sim_node *n = &s->node[i];
        if (n->raft == NULL || sim_node_paused(s, n) || raft_role(n->raft) != RAFT_LEADER)
            continue;
        if (sim_below(s, (uint64_t)++seen) == 0)
            picked = i;
    }
    return picked;
}

static void sim_client_one(struct sim *s, int node, uint64_t roll)
{
    char key[16], val[24];
    snprintf(key, sizeof(key), "k%u", (unsigned)sim_below(s, SIM_KEYS));
    if (roll < 50) {
        snprintf(val, sizeof(val), "v%llu", (ull)(s->next_op_id + 1));
        sim_client_write(s, node, sim_client_variant(s, SIM_OP_SET), key, val, false, NULL);
    } else if (roll < 65) {
        sim_client_write(s, node, sim_client_variant(s, SIM_OP_DELETE), key, "", false, NULL);
    } else {
        sim_client_read(s, node, key, NULL);
    }
}

/* A random command, sent to the leader most of the time, else to any running node, or
 * (stale_permille) to any node that thinks it leads; sometimes (burst_permille) a burst of
 * writes at once, so a leader cut off from the rest grows a long divergent tail. */
void sim_client_random(struct sim *s)
{
    int node = sim_chance(s, s->p.stale_permille) ? sim_client_any_leader(s) : -1;
    if (node < 0 && sim_chance(s, 750))
        node = sim_current_leader(s);
    if (node < 0)
        node = sim_pick_up_node(s, true);
    if (node < 0)
        return;
    if (!sim_chance(s, s->p.burst_permille)) {
        sim_client_one(s, node, sim_below(s, 100));
        return;
    }
    uint64_t writes = sim_between(s, 2, 24);
    sim_trace_text(s, node, "client burst of %llu writes", (ull)writes);
    for (uint64_t i = 0; i < writes && s->node[node].raft != NULL && !s->failed; i++)
        sim_client_one(s, node, sim_below(s, 65));
}

void sim_client_free(struct sim *s)
{
    free(s->ops);
    free(s->hist.state);
    s->ops = NULL;
    s->hist.state = NULL;
    s->n_ops = s->cap_ops = 0;
    s->hist.n = s->hist.cap = 0;
}
