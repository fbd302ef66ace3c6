/* tests/sim/sim_check_watch.c - the changes kv_apply reports for watchers (issue 17,
 * server/kv/kv.h "Changes"), checked on every server, at every apply:
 *   Watch Events: the changes an entry reports are exactly those the rule predicts from
 *     the map as it was before the entry and the entry itself, in order:
 *       SET, SETEX          -> set(key, value), always;
 *       CAS, CAS_TTL        -> set(key, value) if the key's revision was the entry's rev
 *                              (0: absent), else nothing;
 *       DELETE              -> delete(key) if the key was there, else nothing;
 *       CAD                 -> delete(key) if the key was there with the entry's rev;
 *       EXPIRED             -> expire(key) for each listed key, in the entry's order, that
 *                              was there with a deadline set at the listed index;
 *       EXPIRE, NOOP, REGISTER, CONFIG -> nothing;
 *     a command of a client session that is not applied (no session, a duplicate, a stale
 *     seq) reports nothing; every change's revision is the entry's index, a delete and an
 *     expire carry no value, and nothing is reported outside kv_apply. This compares each
 *     server with the rule, so that a rule broken the same way everywhere is seen too.
 *   Watch Events (agreement): the changes reported at an index (their hash) are the same
 *     on every server that applies it, compared with the first one anywhere, as the State
 *     Machine Safety digests are: a history that a watcher resumes on another server
 *     (raft_client watch --from REV) continues the one it left. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/bytes.h"
#include "sim_internal.h"

typedef unsigned long long ull;

#define WATCH_RECORD_FIXED 12u /* an EXPIRED record: u32 key_len | key | u64 set_index */

static const char *sim_watch_kind_name(uint32_t kind)
{
    switch (kind) {
    case KV_EVENT_SET:
        return "set";
    case KV_EVENT_DELETE:
        return "delete";
    case KV_EVENT_EXPIRE:
        return "expire";
    default:
        return "unknown";
    }
}

static void *sim_watch_grow(void *p, size_t *cap, size_t want, size_t elem)
{
    if (want <= *cap)
        return p;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < want)
        cap2 *= 2;
    void *grown = realloc(p, cap2 * elem);
    if (grown == NULL)
        abort();
    *cap = cap2;
    return grown;
}

static char *sim_watch_copy(struct sim_watch_log *w, const char *p, uint32_t len, size_t *off)
{
    w->bytes = sim_watch_grow(w->bytes, &w->cap_bytes, w->len + len + 1, 1);
    *off = w->len;
    if (len > 0)
        memcpy(w->bytes + w->len, p, len);
    w->len += len;
    return w->bytes + *off;
}

/* The event function every node's kv gets: records the change, with copies of its bytes. */
static void sim_watch_on_event(void *ctx, uint64_t rev, enum kv_event_kind kind, const char *key,
                               uint32_t key_len, const char *val, uint32_t val_len)
{
    struct sim_node *n = ctx;
    struct sim_watch_log *w = &n->watch;
    if (!w->open) {
        sim_fail(n->sim, "Watch Events", "n%d's state machine reported a %s of %.*s (rev %llu) "
                 "outside kv_apply", n->id, sim_watch_kind_name(kind), (int)key_len, key,
                 (ull)rev);
        return;
    }
    w->got = sim_watch_grow(w->got, &w->cap_got, w->n_got + 1, sizeof(*w->got));
    struct sim_watch_event *ev = &w->got[w->n_got++];
    memset(ev, 0, sizeof(*ev));
    ev->rev = rev;
    ev->kind = (uint32_t)kind;
    ev->key_len = key_len;
    ev->val_len = val_len;
    sim_watch_copy(w, key, key_len, &ev->key_off);
    sim_watch_copy(w, val, val_len, &ev->val_off);
}

void sim_watch_attach(struct sim_node *n)
{
    n->watch.open = false;
    kv_set_event_fn(n->kv, sim_watch_on_event, n);
}

void sim_watch_free(struct sim_watch_log *w)
{
    free(w->got);
    free(w->want);
    free(w->bytes);
    memset(w, 0, sizeof(*w));
}

/* ---- the rule ------------------------------------------------------------------------ */

static bool sim_watch_same(const char *a, const char *b, uint32_t len)
{
    return len == 0 || memcmp(a, b, len) == 0;
}

static void sim_watch_want(struct sim_watch_log *w, uint32_t kind, const char *key,
                           uint32_t key_len, const char *val, uint32_t val_len)
{
    w->want = sim_watch_grow(w->want, &w->cap_want, w->n_want + 1, sizeof(*w->want));
    w->want[w->n_want++] = (struct sim_watch_event){
        .kind = kind, .key = key, .key_len = key_len, .val = val, .val_len = val_len };
}

/* Whether an earlier key of the same EXPIRED entry was this one (and so is gone). */
static bool sim_watch_wanted_before(const struct sim_watch_log *w, const char *key,
                                    uint32_t key_len)
{
    for (size_t i = 0; i < w->n_want; i++)
        if (w->want[i].key_len == key_len && sim_watch_same(w->want[i].key, key, key_len))
            return true;
    return false;
}

static void sim_watch_predict_expired(const struct kv *kv, struct sim_watch_log *w,
                                      const struct raft_entry *e)
{
    uint32_t pos = 0;
    while (pos < e->val_len && e->val_len - pos >= WATCH_RECORD_FIXED) {
        uint32_t key_len = rk_get_be32((const uint8_t *)e->val + pos);
        if (key_len > e->val_len - pos - WATCH_RECORD_FIXED)
            return; /* malformed: the Expiry Rule says so */
        const char *key = e->val + pos + 4;
        uint64_t listed = rk_get_be((const uint8_t *)key + key_len, 8), ttl_ms, set_index;
        uint32_t len;
        if (kv_get(kv, key, key_len, &len) != NULL &&
            kv_ttl_get(kv, key, key_len, &ttl_ms, &set_index) && set_index == listed &&
            !sim_watch_wanted_before(w, key, key_len))
            sim_watch_want(w, KV_EVENT_EXPIRE, key, key_len, "", 0);
        pos += WATCH_RECORD_FIXED + key_len;
    }
}

/* What applying e does, by the rule, to the map as kv holds it now (before the apply). */
static void sim_watch_predict(const struct kv *kv, struct sim_watch_log *w,
                              const struct raft_entry *e)
{
    uint32_t len;
    uint64_t rev = 0;
    bool present = false;
    switch (e->type) {
    case RAFT_ENTRY_SET:
    case RAFT_ENTRY_DELETE:
    case RAFT_ENTRY_CAS:
    case RAFT_ENTRY_CAD:
    case RAFT_ENTRY_SETEX:
    case RAFT_ENTRY_CAS_TTL:
        present = kv_get_rev(kv, e->key, e->key_len, &len, &rev) != NULL;
        if (!present)
            rev = 0;
        break;
    case RAFT_ENTRY_EXPIRED:
        sim_watch_predict_expired(kv, w, e);
        return;
    default:
        return; /* NOOP, REGISTER, CONFIG, EXPIRE: no change of a value */
    }
    if (e->client_id != 0) {
        struct kv_session_info info;
        if (!kv_session_get(kv, e->client_id, &info) || e->seq <= info.last_seq)
            return; /* not applied (no session, stale) or applied before (a duplicate) */
    }
    switch (e->type) {
    case RAFT_ENTRY_SET:
    case RAFT_ENTRY_SETEX:
        sim_watch_want(w, KV_EVENT_SET, e->key, e->key_len, e->val, e->val_len);
        break;
    case RAFT_ENTRY_CAS:
    case RAFT_ENTRY_CAS_TTL:
        if (rev == e->rev)
            sim_watch_want(w, KV_EVENT_SET, e->key, e->key_len, e->val, e->val_len);
        break;
    case RAFT_ENTRY_DELETE:
        if (present)
            sim_watch_want(w, KV_EVENT_DELETE, e->key, e->key_len, "", 0);
        break;
    case RAFT_ENTRY_CAD:
        if (present && rev == e->rev)
            sim_watch_want(w, KV_EVENT_DELETE, e->key, e->key_len, "", 0);
        break;
    default:
        break;
    }
}

void sim_check_watch_before(struct sim *s, struct sim_node *n, const struct raft_entry *e)
{
    struct sim_watch_log *w = &n->watch;
    (void)s;
    w->n_got = w->n_want = 0;
    w->len = 0;
    sim_watch_predict(n->kv, w, e);
    w->open = true;
}

/* ---- the check ----------------------------------------------------------------------- */

static int sim_watch_fmt(char *buf, size_t size, uint32_t kind, const char *key,
                         uint32_t key_len, const char *val, uint32_t val_len, uint64_t rev)
{
    int k = key_len > 24 ? 24 : (int)key_len, v = val_len > 24 ? 24 : (int)val_len;
    if (val_len == 0)
        return snprintf(buf, size, "%s %.*s @%llu", sim_watch_kind_name(kind), k, key, (ull)rev);
    return snprintf(buf, size, "%s %.*s=%.*s @%llu", sim_watch_kind_name(kind), k, key, v, val,
                    (ull)rev);
}

static uint64_t sim_watch_bytes_hash(uint64_t h, const char *p, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return sim_check_mix(h ^ len);
}

void sim_check_watch_after(struct sim *s, struct sim_node *n, raft_index_t index,
                           const struct raft_entry *e)
{
    struct sim_watch_log *w = &n->watch;
    w->open = false;
    if (s->failed)
        return;
    s->stats.watch_events += w->n_got;
    uint64_t h = sim_check_mix(index ^ 0x77617463ULL);
    size_t i = 0;
    for (; i < w->n_got; i++) {
        const struct sim_watch_event *g = &w->got[i], *x = i < w->n_want ? &w->want[i] : NULL;
        const char *gk = w->bytes + g->key_off, *gv = w->bytes + g->val_off;
        if (x == NULL || g->kind != x->kind || g->rev != index || g->key_len != x->key_len ||
            g->val_len != x->val_len || !sim_watch_same(gk, x->key, g->key_len) ||
            !sim_watch_same(gv, x->val, g->val_len))
            break;
        h = sim_check_mix(h * 31 + g->kind);
        h = sim_watch_bytes_hash(h, gk, g->key_len);
        h = sim_watch_bytes_hash(h ^ 0x5bd1e995ULL, gv, g->val_len);
    }
    if (i < w->n_got || i < w->n_want) {
        char got[80] = "nothing", want[80] = "nothing";
        if (i < w->n_got) {
            const struct sim_watch_event *g = &w->got[i];
            sim_watch_fmt(got, sizeof(got), g->kind, w->bytes + g->key_off, g->key_len,
                          w->bytes + g->val_off, g->val_len, g->rev);
        }
        if (i < w->n_want) {
            const struct sim_watch_event *x = &w->want[i];
            sim_watch_fmt(want, sizeof(want), x->kind, x->key, x->key_len, x->val, x->val_len,
                          index);
        }
        char cmp[40] = "";
        if (raft_entry_has_rev(e->type))
            snprintf(cmp, sizeof(cmp), " (if rev %llu)", (ull)e->rev);
        sim_fail(s, "Watch Events", "n%d's %s%s at index %llu reported %zu changes where the "
                 "rule wants %zu: change %zu is [%s], the rule's [%s]", n->id,
                 raft_entry_type_name(e->type), cmp, (ull)index, w->n_got, w->n_want, i + 1,
                 got, want);
        return;
    }
    h = sim_check_mix(h ^ w->n_got);
    struct sim_checker *c = &s->chk;
    if (index > c->n_committed)
        return; /* State Machine Safety failed */
    struct sim_committed *k = &c->committed[index];
    if (!k->events_seen) {
        k->events = h;
        k->events_seen = true;
    } else if (k->events != h) {
        sim_fail(s, "Watch Events", "n%d reported other changes (%zu) for index %llu than "
                 "another server reported there", n->id, w->n_got, (ull)index);
    }
}
