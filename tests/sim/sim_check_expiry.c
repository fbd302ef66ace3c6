/* tests/sim/sim_check_expiry.c - the invariants of expiring keys (server/kv/kv_expiry.c,
 * docs/architecture.md "Expiring keys"):
 *   Expiry Too Early: a key an EXPIRED entry deletes had its deadline set by entry s; the
 *     EXPIRED entry was proposed no earlier than ttl_ms of s after s was proposed (every
 *     server counts from its own apply of s, which comes after the proposal; a new leader
 *     may count from later, never from earlier);
 *   Expired Stays Gone: a key an EXPIRED entry at index R deleted (with the deadline of
 *     set_index s) is held with that deadline by no replica that applied R (snapshots and
 *     restarts included);
 *   Expiry Rule: each entry does to its key's deadline what kv.h says, on every replica:
 *     SET and CAS remove it, SETEX and CAS_TTL (when they hold) and EXPIRE (of a key that
 *     is there) set it to (ttl_ms, their index), counted from the replica's clock at apply;
 *     EXPIRE changes no value nor revision; EXPIRED deletes exactly the listed keys whose
 *     deadline is still the listed one, and its index becomes the revision if it deleted any.
 * The State Machine Safety digests compare replicas with each other; these compare each
 * with the rule, so that a rule broken the same way everywhere is seen too. */
#include <stdlib.h>
#include <string.h>

#include "../../common/bytes.h"
#include "sim_internal.h"

typedef unsigned long long ull;

#define EXPIRED_RECORD_FIXED 12u /* u32 key_len | key | u64 set_index */

/* ---- when each entry was proposed --------------------------------------------------- */

static size_t sim_prop_hash(raft_index_t index, raft_term_t term, size_t cap)
{
    return (size_t)(sim_check_mix(index * 0x9E3779B97F4A7C15ULL + term * 31) & (cap - 1));
}

static void sim_prop_grow(struct sim_checker *c)
{
    size_t old_cap = c->props_cap;
    struct sim_proposal *old = c->props;
    c->props_cap = old_cap ? old_cap * 2 : 1024;
    c->props = calloc(c->props_cap, sizeof(*c->props));
    if (c->props == NULL)
        abort();
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].index == 0)
            continue;
        size_t h = sim_prop_hash(old[i].index, old[i].term, c->props_cap);
        while (c->props[h].index != 0)
            h = (h + 1) & (c->props_cap - 1);
        c->props[h] = old[i];
    }
    free(old);
}

static struct sim_proposal *sim_prop_slot(struct sim_checker *c, raft_index_t index,
                                          raft_term_t term)
{
    if ((c->props_n + 1) * 2 > c->props_cap)
        sim_prop_grow(c);
    size_t h = sim_prop_hash(index, term, c->props_cap);
    while (c->props[h].index != 0 && (c->props[h].index != index || c->props[h].term != term))
        h = (h + 1) & (c->props_cap - 1);
    return &c->props[h];
}

void sim_check_proposed(struct sim *s, raft_index_t index, raft_term_t term)
{
    struct sim_proposal *p = sim_prop_slot(&s->chk, index, term);
    if (p->index != 0)
        return; /* Election Safety and Leader Append-Only make (index, term) one proposal */
    *p = (struct sim_proposal){ .index = index, .term = term, .at = s->now };
    s->chk.props_n++;
}

bool sim_check_proposed_at(struct sim *s, raft_index_t index, raft_term_t term, uint64_t *at)
{
    const struct sim_proposal *p = sim_prop_slot(&s->chk, index, term);
    *at = p->at;
    return p->index != 0;
}

void sim_check_expiry_free(struct sim_checker *c)
{
    free(c->props);
    free(c->expired);
    c->props = NULL;
    c->expired = NULL;
    c->props_cap = c->props_n = c->expired_n = c->expired_cap = 0;
}

/* ---- the rule of each entry -------------------------------------------------------- */

struct sim_key_state {
    const char *key;          /* in the entry being applied */
    uint32_t key_len;
    uint64_t listed;          /* EXPIRED: the set_index it names */
    bool present, has_ttl;
    uint64_t rev, ttl_ms, set_index, val_hash;
};

struct sim_expiry_before {
    uint64_t kv_rev;
    size_t count;
    uint32_t n;
    struct sim_key_state keys[];
};

static uint64_t sim_val_hash(const char *val, uint32_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)val[i]) * 0x100000001b3ULL;
    return sim_check_mix(h ^ len);
}

static void sim_key_read(const struct kv *kv, struct sim_key_state *k)
{
    uint32_t len = 0;
    const char *val = kv_get_rev(kv, k->key, k->key_len, &len, &k->rev);
    k->present = val != NULL;
    k->val_hash = k->present ? sim_val_hash(val, len) : 0;
    k->has_ttl = kv_ttl_get(kv, k->key, k->key_len, &k->ttl_ms, &k->set_index);
    if (!k->has_ttl)
        k->ttl_ms = k->set_index = 0;
}

/* The records of an EXPIRED entry's value; false if it is malformed. */
static bool sim_expired_records(const struct raft_entry *e, struct sim_key_state *out,
                                uint32_t *n)
{
    uint32_t pos = 0, count = 0;
    while (pos < e->val_len) {
        if (e->val_len - pos < EXPIRED_RECORD_FIXED)
            return false;
        uint32_t key_len = rk_get_be32((const uint8_t *)e->val + pos);
        if (key_len > e->val_len - pos - EXPIRED_RECORD_FIXED)
            return false;
        if (out != NULL)
            out[count] = (struct sim_key_state){
                .key = e->val + pos + 4, .key_len = key_len,
                .listed = rk_get_be((const uint8_t *)e->val + pos + 4 + key_len, 8) };
        count++;
        pos += EXPIRED_RECORD_FIXED + key_len;
    }
    *n = count;
    return true;
}

struct sim_expiry_before *sim_check_expiry_before(struct sim *s, const struct sim_node *n,
                                                  const struct raft_entry *e)
{
    uint32_t count = 1;
    switch (e->type) {
    case RAFT_ENTRY_SET:
    case RAFT_ENTRY_DELETE:
    case RAFT_ENTRY_CAS:
    case RAFT_ENTRY_CAD:
    case RAFT_ENTRY_SETEX:
    case RAFT_ENTRY_EXPIRE:
    case RAFT_ENTRY_CAS_TTL:
        break;
    case RAFT_ENTRY_EXPIRED:
        if (!sim_expired_records(e, NULL, &count)) {
            sim_fail(s, "Expiry Rule", "n%d is to apply an EXPIRED entry (term %llu) whose "
                     "records are malformed", n->id, (ull)e->term);
            return NULL;
        }
        break;
    default:
        return NULL;
    }
    struct sim_expiry_before *b = malloc(sizeof(*b) + count * sizeof(b->keys[0]));
    if (b == NULL)
        abort();
    b->kv_rev = kv_rev(n->kv);
    b->count = kv_count(n->kv);
    b->n = count;
    if (e->type == RAFT_ENTRY_EXPIRED)
        sim_expired_records(e, b->keys, &count);
    else
        b->keys[0] = (struct sim_key_state){ .key = e->key, .key_len = e->key_len };
    for (uint32_t i = 0; i < b->n; i++)
        sim_key_read(n->kv, &b->keys[i]);
    return b;
}

/* After a SETEX, CAS_TTL or EXPIRE that held: the deadline (ttl_ms, index), counted from
 * this replica's clock now. */
static void sim_check_deadline_set(struct sim *s, const struct sim_node *n, raft_index_t index,
                                   const struct raft_entry *e, const struct sim_key_state *k)
{
    uint64_t left = 0;
    if (!k->has_ttl || k->ttl_ms != e->ttl_ms || k->set_index != index)
        sim_fail(s, "Expiry Rule", "n%d applied a %s of %.*s with ttl %llu at index %llu, but "
                 "the key's deadline is %s(ttl %llu, set at %llu)", n->id,
                 raft_entry_type_name(e->type), (int)k->key_len, k->key, (ull)e->ttl_ms,
                 (ull)index, k->has_ttl ? "" : "none ", (ull)k->ttl_ms, (ull)k->set_index);
    else if (!kv_ttl_left(n->kv, k->key, k->key_len, &left) || left != e->ttl_ms)
        sim_fail(s, "Expiry Rule", "n%d applied a %s of %.*s with ttl %llu at index %llu, but "
                 "its deadline on n%d's clock is %llu ms away", n->id,
                 raft_entry_type_name(e->type), (int)k->key_len, k->key, (ull)e->ttl_ms,
                 (ull)index, n->id, (ull)left);
}

static bool sim_key_same(const struct sim_key_state *a, const struct sim_key_state *b)
{
    return a->present == b->present && a->rev == b->rev && a->val_hash == b->val_hash &&
           a->has_ttl == b->has_ttl && a->ttl_ms == b->ttl_ms && a->set_index == b->set_index;
}

static void sim_check_client_entry(struct sim *s, const struct sim_node *n, raft_index_t index,
                                   const struct raft_entry *e, int result,
                                   const struct sim_expiry_before *b)
{
    struct sim_key_state now = b->keys[0];
    sim_key_read(n->kv, &now);
    bool held = result == KV_APPLIED;
    switch (e->type) {
    case RAFT_ENTRY_SET:
    case RAFT_ENTRY_CAS:
        if (held && now.has_ttl)
            sim_fail(s, "Expiry Rule", "n%d applied a %s of %.*s at index %llu, but the key "
                     "kept the deadline set at %llu", n->id, raft_entry_type_name(e->type),
                     (int)now.key_len, now.key, (ull)index, (ull)now.set_index);
        break;
    case RAFT_ENTRY_SETEX:
    case RAFT_ENTRY_CAS_TTL:
        if (held)
            sim_check_deadline_set(s, n, index, e, &now);
        else if (!sim_key_same(&b->keys[0], &now) || kv_rev(n->kv) != b->kv_rev)
            sim_fail(s, "Expiry Rule", "n%d's %s of %.*s at index %llu failed but changed the "
                     "key", n->id, raft_entry_type_name(e->type), (int)now.key_len, now.key,
                     (ull)index);
        break;
    case RAFT_ENTRY_EXPIRE:
        if (held != b->keys[0].present || (!held && result != KV_ABSENT))
            sim_fail(s, "Expiry Rule", "n%d's expire of %.*s at index %llu answered %d with "
                     "the key %s", n->id, (int)now.key_len, now.key, (ull)index, result,
                     b->keys[0].present ? "there" : "absent");
        else if (now.present != b->keys[0].present || now.rev != b->keys[0].rev ||
                 now.val_hash != b->keys[0].val_hash || kv_rev(n->kv) != b->kv_rev)
            sim_fail(s, "Expiry Rule", "n%d's expire of %.*s at index %llu changed its value or "
                     "a revision (key rev %llu -> %llu, map rev %llu -> %llu)", n->id,
                     (int)now.key_len, now.key, (ull)index, (ull)b->keys[0].rev, (ull)now.rev,
                     (ull)b->kv_rev, (ull)kv_rev(n->kv));
        else if (held)
            sim_check_deadline_set(s, n, index, e, &now);
        break;
    default:
        break;
    }
}

static void sim_expired_record(struct sim *s, raft_index_t index, const struct sim_key_state *k)
{
    struct sim_checker *c = &s->chk;
    if (c->expired_n == c->expired_cap) {
        c->expired_cap = c->expired_cap ? c->expired_cap * 2 : 64;
        c->expired = realloc(c->expired, c->expired_cap * sizeof(*c->expired));
        if (c->expired == NULL)
            abort();
    }
    struct sim_expired_rec *r = &c->expired[c->expired_n++];
    memset(r, 0, sizeof(*r));
    r->index = index;
    r->set_index = k->set_index;
    uint32_t len = k->key_len < sizeof(r->key) - 1 ? k->key_len : (uint32_t)sizeof(r->key) - 1;
    memcpy(r->key, k->key, len);
    s->stats.expired_keys++;
}

/* Expiry Too Early, for key k (as it was before) deleted by the EXPIRED entry e at index. */
static void sim_check_not_early(struct sim *s, const struct sim_node *n, raft_index_t index,
                                const struct raft_entry *e, const struct sim_key_state *k)
{
    uint64_t expired_at, set_at;
    const struct sim_checker *c = &s->chk;
    raft_term_t set_term = k->set_index <= c->n_committed ? c->committed[k->set_index].term : 0;
    if (!sim_check_proposed_at(s, index, e->term, &expired_at)) {
        sim_fail(s, "Expiry Rule", "n%d applied an EXPIRED entry at index %llu term %llu that no "
                 "leader proposed", n->id, (ull)index, (ull)e->term);
    } else if (!sim_check_proposed_at(s, k->set_index, set_term, &set_at)) {
        sim_fail(s, "Expiry Rule", "n%d's EXPIRED entry at index %llu deleted %.*s, whose "
                 "deadline was set at %llu by no setex, expire or cas --ttl", n->id, (ull)index,
                 (int)k->key_len, k->key, (ull)k->set_index);
    } else if (expired_at < set_at + k->ttl_ms) {
        sim_fail(s, "Expiry Too Early", "the EXPIRED entry at index %llu (proposed at %llu ms) "
                 "deleted %.*s, whose deadline was set by index %llu (proposed at %llu ms) with "
                 "ttl %llu ms: %llu ms early", (ull)index, (ull)expired_at, (int)k->key_len,
                 k->key, (ull)k->set_index, (ull)set_at, (ull)k->ttl_ms,
                 (ull)(set_at + k->ttl_ms - expired_at));
    }
}

static void sim_check_expired_entry(struct sim *s, const struct sim_node *n, raft_index_t index,
                                    const struct raft_entry *e, int result,
                                    const struct sim_expiry_before *b)
{
    size_t deleted = 0;
    bool record = index > s->chk.expired_upto;
    for (uint32_t i = 0; i < b->n && !s->failed; i++) {
        const struct sim_key_state *was = &b->keys[i];
        struct sim_key_state now = *was;
        sim_key_read(n->kv, &now);
        bool due = was->present && was->has_ttl && was->set_index == was->listed;
        if (due && now.present) {
            sim_fail(s, "Expiry Rule", "n%d applied the EXPIRED entry at index %llu, naming %.*s "
                     "with the deadline set at %llu, which the key still had, but kept it",
                     n->id, (ull)index, (int)was->key_len, was->key, (ull)was->listed);
        } else if (!due && !sim_key_same(was, &now)) {
            sim_fail(s, "Expiry Rule", "n%d applied the EXPIRED entry at index %llu, naming %.*s "
                     "with the deadline set at %llu, and changed the key, whose deadline was "
                     "%s%llu", n->id, (ull)index, (int)was->key_len, was->key, (ull)was->listed,
                     was->has_ttl ? "set at " : "none: ", (ull)was->set_index);
        } else if (due) {
            deleted++;
            sim_check_not_early(s, n, index, e, was);
            if (record)
                sim_expired_record(s, index, was);
        }
    }
    if (s->failed)
        return;
    uint64_t want_rev = deleted > 0 ? index : b->kv_rev;
    if (result != KV_APPLIED || kv_count(n->kv) != b->count - deleted || kv_rev(n->kv) != want_rev)
        sim_fail(s, "Expiry Rule", "n%d applied the EXPIRED entry at index %llu (answer %d): "
                 "%zu of its keys were due, the map went from %zu to %zu keys and its revision "
                 "from %llu to %llu (want %llu)", n->id, (ull)index, result, deleted, b->count,
                 kv_count(n->kv), (ull)b->kv_rev, (ull)kv_rev(n->kv), (ull)want_rev);
    if (record) {
        s->chk.expired_upto = index;
        s->stats.expiry_batches++;
    }
    sim_check_expired_gone(s, n, index);
}

void sim_check_expiry_after(struct sim *s, const struct sim_node *n, raft_index_t index,
                            const struct raft_entry *e, int result,
                            struct sim_expiry_before *before)
{
    if (before == NULL || s->failed) {
        free(before);
        return;
    }
    if (e->type == RAFT_ENTRY_EXPIRED)
        sim_check_expired_entry(s, n, index, e, result, before);
    else
        sim_check_client_entry(s, n, index, e, result, before);
    free(before);
}

/* ---- Expired Stays Gone --------------------------------------------------------------- */

void sim_check_expired_gone(struct sim *s, const struct sim_node *n, raft_index_t from)
{
    const struct sim_checker *c = &s->chk;
    if (n->kv == NULL)
        return;
    for (size_t i = 0; i < c->expired_n && !s->failed; i++) {
        const struct sim_expired_rec *r = &c->expired[i];
        uint64_t ttl_ms, set_index;
        if (r->index < from || r->index > n->applied)
            continue;
        if (kv_ttl_get(n->kv, r->key, (uint32_t)strlen(r->key), &ttl_ms, &set_index) &&
            set_index == r->set_index)
            sim_fail(s, "Expired Stays Gone", "n%d (applied up to %llu) holds %s with the "
                     "deadline set at %llu, which the EXPIRED entry at index %llu deleted",
                     n->id, (ull)n->applied, r->key, (ull)set_index, (ull)r->index);
    }
}
