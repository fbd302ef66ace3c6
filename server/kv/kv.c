/* server/kv/kv.c - the key-value state machine (Raft paper §2, §5.3: every server applies
 * the same committed entries in the same order): a chained hash map, FNV-1a hashed,
 * doubling its bucket count whenever it holds more keys than buckets; each key with the
 * revision (log index) of its last change and, for an expiring key, its deadline
 * (kv_expiry.c); and kv_apply, which puts client commands through their sessions
 * (sessions.c, Raft thesis §6.3) and decides compare-and-set. */
#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/hash.h"
#include "kv_internal.h"
#include "sessions.h"

#define KV_INITIAL_BUCKETS 16

/* 64-bit FNV-1a (common/hash.h). */
static uint64_t hash_key(const char *key, uint32_t len)
{
    return rk_hash_bytes(key, len);
}

static bool key_equals(const struct kv_node *n, uint64_t hash, const char *key,
                       uint32_t key_len)
{
    return n->hash == hash && n->key_len == key_len &&
           (key_len == 0 || memcmp(n->key, key, key_len) == 0);
}

/* The link that points at key's node (or the NULL link ending its chain). */
static struct kv_node **find_link(const struct kv *kv, uint64_t hash, const char *key,
                                  uint32_t key_len)
{
    struct kv_node **link = &kv->buckets[hash & (kv->n_buckets - 1)];
    while (*link != NULL && !key_equals(*link, hash, key, key_len))
        link = &(*link)->next;
    return link;
}

static char *copy_bytes(const char *bytes, uint32_t len)
{
    char *copy = malloc((size_t)len + 1);
    if (copy == NULL)
        return NULL;
    if (len > 0)
        memcpy(copy, bytes, len);
    copy[len] = '\0';
    return copy;
}

/* The key of a node, for the ordered index. */
static void node_key(const void *item, const char **key, uint32_t *key_len)
{
    const struct kv_node *n = item;
    *key = n->key;
    *key_len = n->key_len;
}

struct kv *kv_new_with_max_sessions(uint32_t max_sessions)
{
    struct kv *kv = calloc(1, sizeof(*kv));
    if (kv == NULL)
        return NULL;
    kv->buckets = calloc(KV_INITIAL_BUCKETS, sizeof(*kv->buckets));
    kv->sessions = kv_sessions_new(max_sessions);
    kv->index = kv_index_new(node_key);
    if (kv->buckets == NULL || kv->sessions == NULL || kv->index == NULL) {
        kv_free(kv);
        return NULL;
    }
    kv->n_buckets = KV_INITIAL_BUCKETS;
    return kv;
}

struct kv *kv_new(void)
{
    return kv_new_with_max_sessions(KV_MAX_SESSIONS);
}

void kv_free(struct kv *kv)
{
    if (kv == NULL)
        return;
    kv_sessions_free(kv->sessions);
    kv_index_free(kv->index);
    kv_expiry_free(kv);
    for (size_t i = 0; i < kv->n_buckets; i++) {
        struct kv_node *n = kv->buckets[i];
        while (n != NULL) {
            struct kv_node *next = n->next;
            free(n->ttl);
            free(n->val);
            free(n);
            n = next;
        }
    }
    free(kv->buckets);
    free(kv);
}

/* Doubles the bucket array; on allocation failure keeps the old one (longer chains). */
static void grow(struct kv *kv)
{
    size_t n_buckets = kv->n_buckets * 2;
    struct kv_node **buckets = calloc(n_buckets, sizeof(*buckets));
    if (buckets == NULL)
        return;
    for (size_t i = 0; i < kv->n_buckets; i++) {
        struct kv_node *n = kv->buckets[i];
        while (n != NULL) {
            struct kv_node *next = n->next;
            struct kv_node **head = &buckets[n->hash & (n_buckets - 1)];
            n->next = *head;
            *head = n;
            n = next;
        }
    }
    free(kv->buckets);
    kv->buckets = buckets;
    kv->n_buckets = n_buckets;
}

static struct kv_node *new_node(uint64_t hash, const char *key, uint32_t key_len,
                                char *val, uint32_t val_len)
{
    struct kv_node *n = malloc(sizeof(*n) + (size_t)key_len + 1);
    if (n == NULL)
        return NULL;
    n->next = NULL;
    n->ttl = NULL;
    n->hash = hash;
    n->val = val;
    n->val_len = val_len;
    n->key_len = key_len;
    if (key_len > 0)
        memcpy(n->key, key, key_len);
    n->key[key_len] = '\0';
    return n;
}

int kv_set(struct kv *kv, const char *key, uint32_t key_len, const char *val, uint32_t val_len)
{
    return kv_set_at(kv, key, key_len, val, val_len, 0);
}

/* Sets key to val at revision rev (its deadline, if any, stays); the key's node, or NULL
 * when out of memory (nothing changed). */
static struct kv_node *put(struct kv *kv, const char *key, uint32_t key_len, const char *val,
                           uint32_t val_len, uint64_t rev)
{
    uint64_t hash = hash_key(key, key_len);
    struct kv_node **link = find_link(kv, hash, key, key_len);
    char *copy = copy_bytes(val, val_len);
    if (copy == NULL)
        return NULL;
    if (*link != NULL) {
        free((*link)->val);
        (*link)->val = copy;
        (*link)->val_len = val_len;
        (*link)->rev = rev;
        return *link;
    }
    struct kv_node *n = new_node(hash, key, key_len, copy, val_len);
    if (n == NULL || kv_index_insert(kv->index, n) != RK_OK) {
        free(n);
        free(copy);
        return NULL;
    }
    n->rev = rev;
    *link = n;
    if (++kv->count > kv->n_buckets && kv->n_buckets <= SIZE_MAX / 2 / sizeof(*link))
        grow(kv);
    return n;
}

int kv_set_at(struct kv *kv, const char *key, uint32_t key_len, const char *val,
              uint32_t val_len, uint64_t rev)
{
    return put(kv, key, key_len, val, val_len, rev) != NULL ? RK_OK : RK_ERR_NOMEM;
}

struct kv_node *kv_find(const struct kv *kv, const char *key, uint32_t key_len)
{
    return *find_link(kv, hash_key(key, key_len), key, key_len);
}

bool kv_delete(struct kv *kv, const char *key, uint32_t key_len)
{
    struct kv_node **link = find_link(kv, hash_key(key, key_len), key, key_len);
    struct kv_node *n = *link;
    if (n == NULL)
        return false;
    *link = n->next;
    kv_index_remove(kv->index, n->key, n->key_len);
    kv_ttl_clear(kv, n);
    free(n->val);
    free(n);
    kv->count--;
    return true;
}

const char *kv_get(const struct kv *kv, const char *key, uint32_t key_len, uint32_t *val_len)
{
    return kv_get_rev(kv, key, key_len, val_len, NULL);
}

const char *kv_get_rev(const struct kv *kv, const char *key, uint32_t key_len,
                       uint32_t *val_len, uint64_t *rev)
{
    struct kv_node *n = kv_find(kv, key, key_len);
    if (n == NULL)
        return NULL;
    if (val_len != NULL)
        *val_len = n->val_len;
    if (rev != NULL)
        *rev = n->rev;
    return n->val;
}

uint64_t kv_rev(const struct kv *kv)
{
    return kv->rev;
}

static bool has_prefix(const char *key, uint32_t key_len, const char *prefix,
                       uint32_t prefix_len)
{
    return key_len >= prefix_len && (prefix_len == 0 || memcmp(key, prefix, prefix_len) == 0);
}

/* Where a page starts: at the prefix, or after `after` if that comes later. */
static void scan_seek(const struct kv *kv, const char *prefix, uint32_t prefix_len,
                      const char *after, uint32_t after_len, struct kv_index_iter *it)
{
    uint32_t common = prefix_len < after_len ? prefix_len : after_len;
    int c = after == NULL ? -1 : common == 0 ? 0 : memcmp(after, prefix, common);
    bool past_prefix = after != NULL && (c > 0 || (c == 0 && after_len >= prefix_len));
    if (past_prefix)
        kv_index_seek(kv->index, after, after_len, true, it);
    else
        kv_index_seek(kv->index, prefix, prefix_len, false, it);
}

uint32_t kv_scan(const struct kv *kv, const char *prefix, uint32_t prefix_len,
                 const char *after, uint32_t after_len, uint32_t limit, uint64_t max_bytes,
                 kv_scan_fn fn, void *ctx, bool *more)
{
    struct kv_index_iter it;
    scan_seek(kv, prefix, prefix_len, after, after_len, &it);
    uint32_t got = 0;
    uint64_t bytes = 0;
    const struct kv_node *n;
    *more = false;
    while ((n = kv_index_next(&it)) != NULL && has_prefix(n->key, n->key_len, prefix, prefix_len)) {
        if (got == limit || bytes >= max_bytes) {
            *more = true;
            break;
        }
        if (fn(ctx, n->key, n->key_len, n->val, n->val_len) != 0)
            break;
        got++;
        bytes += (uint64_t)n->key_len + n->val_len;
    }
    return got;
}

/* The revision of key (0: absent). */
static uint64_t rev_of(const struct kv *kv, const char *key, uint32_t key_len)
{
    uint64_t rev = 0;
    kv_get_rev(kv, key, key_len, NULL, &rev);
    return rev;
}

size_t kv_count(const struct kv *kv)
{
    return kv->count;
}

/* A change at revision index: it becomes the key's (for a set) and the map's. */
static int changed(struct kv *kv, raft_index_t index)
{
    kv->rev = index;
    kv->result_rev = index;
    return KV_APPLIED;
}

/* A CAS or CAD whose compare does not hold: nothing changes; the answer carries the
 * key's revision. A CAD of an absent key fails whatever it compares (0 included): it
 * deletes nothing. */
static bool compare_fails(struct kv *kv, const struct raft_entry *e)
{
    uint64_t current = rev_of(kv, e->key, e->key_len);
    if (current == e->rev && (current != 0 || e->type != RAFT_ENTRY_CAD))
        return false;
    kv->result_rev = current;
    return true;
}

/* SET, CAS (no deadline) or SETEX, CAS_TTL (a deadline ttl_ms from now) at index. */
static int apply_write(struct kv *kv, raft_index_t index, const struct raft_entry *e)
{
    struct kv_node *n = put(kv, e->key, e->key_len, e->val, e->val_len, index);
    if (n == NULL)
        return RK_ERR_NOMEM;
    if (!raft_entry_has_ttl(e->type))
        kv_ttl_clear(kv, n);
    else if (kv_ttl_set(kv, n, e->ttl_ms, index) != RK_OK)
        return RK_ERR_NOMEM;
    kv_emit(kv, index, KV_EVENT_SET, e->key, e->key_len, e->val, e->val_len);
    return changed(kv, index);
}

/* EXPIRE: a new deadline for a key that exists; its value and revision stay. */
static int apply_expire(struct kv *kv, raft_index_t index, const struct raft_entry *e)
{
    struct kv_node *n = kv_find(kv, e->key, e->key_len);
    if (n == NULL)
        return KV_ABSENT;
    return kv_ttl_set(kv, n, e->ttl_ms, index) == RK_OK ? KV_APPLIED : RK_ERR_NOMEM;
}

/* A client command without a session: SET, DELETE, CAS, CAD, SETEX, EXPIRE or CAS_TTL on
 * the map, at index. */
static int apply_command(struct kv *kv, raft_index_t index, const struct raft_entry *e)
{
    if (raft_entry_has_rev(e->type) && compare_fails(kv, e))
        return KV_FAILED;
    switch (e->type) {
    case RAFT_ENTRY_DELETE:
    case RAFT_ENTRY_CAD:
        if (!kv_delete(kv, e->key, e->key_len))
            return KV_ABSENT;
        kv_emit(kv, index, KV_EVENT_DELETE, e->key, e->key_len, "", 0);
        return changed(kv, index);
    case RAFT_ENTRY_EXPIRE:
        return apply_expire(kv, index, e);
    default:
        return apply_write(kv, index, e);
    }
}

/* Raft thesis §6.3: a command of a session is applied at most once. The state machine
 * keeps each session's last seq and result and answers a duplicate from that record. */
static int apply_in_session(struct kv *kv, raft_index_t index, const struct raft_entry *e)
{
    struct kv_session *s = kv_sessions_find(kv->sessions, e->client_id);
    if (s == NULL)
        return KV_SESSION_EXPIRED;
    kv_sessions_touch(kv->sessions, s, index);
    if (e->seq == s->last_seq && s->last_seq != 0) {
        kv->result_rev = s->last_rev;
        return s->last_result;
    }
    if (e->seq <= s->last_seq)
        return KV_STALE;
    int rc = apply_command(kv, index, e);
    if (rc < 0)
        return rc;
    s->last_seq = e->seq;
    s->last_result = rc;
    s->last_rev = kv->result_rev;
    return rc;
}

static int apply_entry(struct kv *kv, raft_index_t index, const struct raft_entry *e)
{
    switch (e->type) {
    case RAFT_ENTRY_NOOP:
    case RAFT_ENTRY_CONFIG: /* the core acts on it; the map has nothing to do */
        return KV_APPLIED;
    case RAFT_ENTRY_REGISTER: { /* thesis §6.3: the client id is the entry's index */
        int rc = kv_sessions_open(kv->sessions, index, index);
        return rc == RK_OK ? KV_APPLIED : rc;
    }
    case RAFT_ENTRY_EXPIRED: /* the leader's: no session */
        if (kv_expiry_apply(kv, index, e->val, e->val_len) > 0)
            changed(kv, index);
        return KV_APPLIED;
    case RAFT_ENTRY_SET:
    case RAFT_ENTRY_DELETE:
    case RAFT_ENTRY_CAS:
    case RAFT_ENTRY_CAD:
    case RAFT_ENTRY_SETEX:
    case RAFT_ENTRY_EXPIRE:
    case RAFT_ENTRY_CAS_TTL:
        if (e->client_id == 0)
            return apply_command(kv, index, e);
        return apply_in_session(kv, index, e);
    }
    return RK_ERR_INVAL;
}

/* Applies one committed entry (Raft paper §5.3: in log order, once per index). */
int kv_apply(struct kv *kv, raft_index_t index, const struct raft_entry *e)
{
    if (index != kv->last_applied + 1)
        return RK_ERR_INVAL;
    kv->result_rev = 0;
    int rc = apply_entry(kv, index, e);
    if (rc > 0)
        kv->last_applied = index;
    return rc;
}

void kv_set_event_fn(struct kv *kv, kv_event_fn fn, void *ctx)
{
    kv->event_fn = fn;
    kv->event_ctx = ctx;
}

void kv_emit(const struct kv *kv, uint64_t rev, enum kv_event_kind kind, const char *key,
             uint32_t key_len, const char *val, uint32_t val_len)
{
    if (kv->event_fn != NULL)
        kv->event_fn(kv->event_ctx, rev, kind, key, key_len, val, val_len);
}

raft_index_t kv_last_applied(const struct kv *kv)
{
    return kv->last_applied;
}

uint64_t kv_result_rev(const struct kv *kv)
{
    return kv->result_rev;
}

bool kv_session_get(const struct kv *kv, uint64_t client_id, struct kv_session_info *out)
{
    const struct kv_session *s = kv_sessions_find(kv->sessions, client_id);
    if (s == NULL)
        return false;
    out->last_seq = s->last_seq;
    out->last_result = s->last_result;
    out->last_rev = s->last_rev;
    out->last_use = s->last_use;
    return true;
}

size_t kv_session_count(const struct kv *kv)
{
    return kv_sessions_count(kv->sessions);
}

/* splitmix64's finalizer: spreads each part before the parts are summed. */
static uint64_t mix(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* A key's deadline as replicated (its local deadline differs from server to server). */
static uint64_t ttl_digest(const struct kv_node *n)
{
    return n->ttl == NULL ? 0 : mix(mix(n->ttl->ttl_ms ^ 0x7474ULL) + n->ttl->set_index);
}

/* Sums of mixed per-item hashes: independent of bucket order and table size. */
uint64_t kv_digest(const struct kv *kv)
{
    uint64_t sum = mix(kv->last_applied) + mix(kv->count ^ 0x6b76ULL) + mix(kv->rev ^ 0x72ULL);
    for (size_t i = 0; i < kv->n_buckets; i++)
        for (const struct kv_node *n = kv->buckets[i]; n != NULL; n = n->next)
            sum += mix(n->hash ^ mix(hash_key(n->val, n->val_len) + n->val_len) ^
                       mix(n->rev + 0x9e37ULL) ^ ttl_digest(n));
    const struct kv_session *s = NULL;
    while ((s = kv_sessions_next(kv->sessions, s)) != NULL)
        sum += mix(mix(mix(s->id) ^ s->last_seq) ^ ((uint64_t)s->last_result << 56) ^
                   s->last_use ^ mix(s->last_rev + 0x5bULL));
    return sum;
}
