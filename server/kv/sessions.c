/* server/kv/sessions.c - the client session table (Raft thesis §6.3): a hash map from
 * client id to session plus a list in use order. Entries are applied in index order, so
 * moving a used session to the end keeps the list sorted by last-use index, and the
 * least recently used session is always the first: dropping it is O(1). */
#include "sessions.h"

#include <stdlib.h>

#include "../../common/errors.h"

#define SESSIONS_MIN_BUCKETS 16

struct kv_sessions {
    struct kv_session **buckets;
    size_t n_buckets;                 /* a power of two, >= max: chains stay short */
    struct kv_session *oldest, *newest;
    size_t count;
    uint32_t max;
};

/* Client ids are log indexes, mostly consecutive; mix them anyway (splitmix64 finalizer). */
static size_t bucket_of(const struct kv_sessions *t, uint64_t id)
{
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (size_t)(id & (t->n_buckets - 1));
}

struct kv_sessions *kv_sessions_new(uint32_t max)
{
    if (max == 0)
        return NULL;
    struct kv_sessions *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->max = max;
    t->n_buckets = SESSIONS_MIN_BUCKETS;
    while (t->n_buckets < max)
        t->n_buckets *= 2;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void kv_sessions_free(struct kv_sessions *t)
{
    if (t == NULL)
        return;
    struct kv_session *s = t->oldest;
    while (s != NULL) {
        struct kv_session *next = s->newer;
        free(s);
        s = next;
    }
    free(t->buckets);
    free(t);
}

struct kv_session *kv_sessions_find(const struct kv_sessions *t, uint64_t id)
{
    struct kv_session *s = t->buckets[bucket_of(t, id)];
    while (s != NULL && s->id != id)
        s = s->hash_next;
    return s;
}

static void list_unlink(struct kv_sessions *t, struct kv_session *s)
{
    if (s->older != NULL)
        s->older->newer = s->newer;
    else
        t->oldest = s->newer;
    if (s->newer != NULL)
        s->newer->older = s->older;
    else
        t->newest = s->older;
    s->older = s->newer = NULL;
}

static void list_append(struct kv_sessions *t, struct kv_session *s)
{
    s->older = t->newest;
    s->newer = NULL;
    if (t->newest != NULL)
        t->newest->newer = s;
    else
        t->oldest = s;
    t->newest = s;
}

static void hash_unlink(struct kv_sessions *t, struct kv_session *s)
{
    struct kv_session **link = &t->buckets[bucket_of(t, s->id)];
    while (*link != s)
        link = &(*link)->hash_next;
    *link = s->hash_next;
}

/* Expiry (thesis §6.3): drop the session with the smallest last-use index. It depends
 * only on the applied log, so every server drops the same one. */
static void drop_oldest(struct kv_sessions *t)
{
    struct kv_session *s = t->oldest;
    hash_unlink(t, s);
    list_unlink(t, s);
    free(s);
    t->count--;
}

int kv_sessions_open(struct kv_sessions *t, uint64_t id, raft_index_t index)
{
    if (kv_sessions_find(t, id) != NULL)
        return RK_ERR_INVAL;
    struct kv_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return RK_ERR_NOMEM;
    if (t->count == t->max)
        drop_oldest(t);
    s->id = id;
    s->last_use = index;
    size_t b = bucket_of(t, id);
    s->hash_next = t->buckets[b];
    t->buckets[b] = s;
    list_append(t, s);
    t->count++;
    return RK_OK;
}

void kv_sessions_touch(struct kv_sessions *t, struct kv_session *s, raft_index_t index)
{
    s->last_use = index;
    if (t->newest == s)
        return;
    list_unlink(t, s);
    list_append(t, s);
}

size_t kv_sessions_count(const struct kv_sessions *t)
{
    return t->count;
}

uint32_t kv_sessions_max(const struct kv_sessions *t)
{
    return t->max;
}

const struct kv_session *kv_sessions_next(const struct kv_sessions *t,
                                          const struct kv_session *prev)
{
    return prev == NULL ? t->oldest : prev->newer;
}
