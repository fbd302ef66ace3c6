/* server/node/watch_index.c - which watch streams a round of changes concerns, so that an
 * idle watcher costs nothing when changes it does not watch are applied. The client loop's
 * thread alone uses it (the watchers are its connections'): the watched prefixes in a hash
 * table with a count of the watchers of each, and the lengths they have. A round
 * (node_watch_scan) matches each change applied since the last one against the prefixes,
 * one lookup per distinct length, and marks the prefixes it touches; a watcher that was
 * caught up and whose prefix no change touched just moves past them (node_watch_skip),
 * without copying or even reading the history. */
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/hash.h"
#include "../kv/kv_history.h"
#include "node.h"

#define INDEX_BUCKETS 4096u /* a power of two */
#define INDEX_LENS 16       /* distinct prefix lengths matched; a watcher of another length
                               counts as touched by every change */

struct node_watch_prefix {
    struct node_watch_prefix *next;
    uint64_t hash;
    uint64_t touched;    /* the last round a change matched it */
    uint32_t len, refs;
    /* The last answer built for a watcher of this prefix: the others at the same place
     * get the same bytes (encoded once for all watchers of a prefix). */
    bool cached;
    uint64_t cache_next, cache_applied, cache_progress;
    struct proto_buf cache;
    char prefix[];
};

struct node_watch_index {
    struct node_watch_prefix *buckets[INDEX_BUCKETS];
    uint32_t lens[INDEX_LENS], len_refs[INDEX_LENS];
    int n_lens;
    uint64_t round;
    uint64_t all_touched;    /* a round in which every watcher counts as touched */
    uint64_t scanned;        /* the changes up to this revision were matched ... */
    uint64_t scanned_before; /* ... and those up to this one, before the last round */
};

struct node_watch_index *node_watch_index_new(uint64_t applied)
{
    struct node_watch_index *x = calloc(1, sizeof(*x));
    if (x != NULL)
        x->scanned = x->scanned_before = applied;
    return x;
}

void node_watch_index_free(struct node_watch_index *x)
{
    if (x == NULL)
        return;
    for (uint32_t b = 0; b < INDEX_BUCKETS; b++) {
        while (x->buckets[b] != NULL) {
            struct node_watch_prefix *p = x->buckets[b];
            x->buckets[b] = p->next;
            proto_buf_free(&p->cache);
            free(p);
        }
    }
    free(x);
}

static struct node_watch_prefix *find(const struct node_watch_index *x, const char *key,
                                      uint32_t len, uint64_t hash)
{
    struct node_watch_prefix *p = x->buckets[hash & (INDEX_BUCKETS - 1)];
    while (p != NULL && (p->hash != hash || p->len != len || memcmp(p->prefix, key, len) != 0))
        p = p->next;
    return p;
}

/* Counts a watcher of a prefix of len bytes; false if INDEX_LENS lengths are in use. */
static bool add_len(struct node_watch_index *x, uint32_t len)
{
    for (int i = 0; i < x->n_lens; i++) {
        if (x->lens[i] == len) {
            x->len_refs[i]++;
            return true;
        }
    }
    if (x->n_lens == INDEX_LENS)
        return false;
    x->lens[x->n_lens] = len;
    x->len_refs[x->n_lens++] = 1;
    return true;
}

static void remove_len(struct node_watch_index *x, uint32_t len)
{
    for (int i = 0; i < x->n_lens; i++) {
        if (x->lens[i] == len && --x->len_refs[i] == 0) {
            x->n_lens--;
            x->lens[i] = x->lens[x->n_lens];
            x->len_refs[i] = x->len_refs[x->n_lens];
            return;
        }
    }
}

void node_watch_index_add(struct node_watch_index *x, struct node_watcher *w)
{
    w->entry = NULL;
    if (x == NULL || !add_len(x, w->prefix_len))
        return; /* no entry: touched by every change */
    uint64_t hash = rk_hash_bytes(w->prefix, w->prefix_len);
    struct node_watch_prefix *p = find(x, w->prefix, w->prefix_len, hash);
    if (p == NULL) {
        p = calloc(1, sizeof(*p) + w->prefix_len);
        if (p == NULL) {
            remove_len(x, w->prefix_len);
            return;
        }
        p->hash = hash;
        p->len = w->prefix_len;
        memcpy(p->prefix, w->prefix, w->prefix_len);
        p->next = x->buckets[hash & (INDEX_BUCKETS - 1)];
        x->buckets[hash & (INDEX_BUCKETS - 1)] = p;
    }
    p->refs++;
    w->entry = p;
}

void node_watch_index_remove(struct node_watch_index *x, struct node_watcher *w)
{
    struct node_watch_prefix *p = w->entry;
    w->entry = NULL;
    if (x == NULL || p == NULL)
        return;
    remove_len(x, p->len);
    if (--p->refs > 0)
        return;
    struct node_watch_prefix **link = &x->buckets[p->hash & (INDEX_BUCKETS - 1)];
    while (*link != p)
        link = &(*link)->next;
    *link = p->next;
    proto_buf_free(&p->cache);
    free(p);
}

const struct proto_buf *node_watch_cached(const struct node_watcher *w, uint64_t applied,
                                          uint64_t *progress)
{
    const struct node_watch_prefix *p = w->entry;
    if (p == NULL || !p->cached || p->cache_next != w->next || p->cache_applied != applied)
        return NULL;
    *progress = p->cache_progress;
    return &p->cache;
}

void node_watch_cache(struct node_watcher *w, uint64_t applied, const struct proto_buf *body,
                      uint64_t progress)
{
    struct node_watch_prefix *p = w->entry;
    if (p == NULL)
        return;
    p->cache.len = 0;
    p->cached = proto_buf_append(&p->cache, body->data, body->len) == RK_OK;
    p->cache_next = w->next;
    p->cache_applied = applied;
    p->cache_progress = progress;
}

/* Under the history's mutex: marks the prefixes the changes from revision `from` on touch. */
static void match_changes(struct node_watch_index *x, const struct kv_history *h, uint64_t from)
{
    uint64_t end = kv_history_end(h);
    for (uint64_t pos = kv_history_seek(h, from); pos < end; pos++) {
        const struct kv_history_event *ev = kv_history_at(h, pos);
        for (int i = 0; i < x->n_lens; i++) {
            uint32_t len = x->lens[i];
            if (len > ev->key_len)
                continue;
            struct node_watch_prefix *p = find(x, ev->key, len, rk_hash_bytes(ev->key, len));
            if (p != NULL)
                p->touched = x->round;
        }
    }
}

void node_watch_scan(struct node *n)
{
    struct node_watch_index *x = n->watch.index;
    if (x == NULL || atomic_load(&n->watch.applied) == x->scanned)
        return;
    x->round++;
    x->scanned_before = x->scanned;
    pthread_mutex_lock(&n->watch.mu);
    const struct kv_history *h = n->watch.history;
    if (x->scanned + 1 < kv_history_first_rev(h))
        x->all_touched = x->round; /* changes went unseen: everyone looks for itself */
    else
        match_changes(x, h, x->scanned + 1);
    x->scanned = kv_history_applied_index(h);
    pthread_mutex_unlock(&n->watch.mu);
}

void node_watch_skip(struct node *n, struct node_watcher *w)
{
    const struct node_watch_index *x = n->watch.index;
    if (x == NULL || w->entry == NULL || !w->active || w->ending ||
        x->all_touched == x->round || w->entry->touched == x->round ||
        w->next <= x->scanned_before || w->next > x->scanned)
        return;
    w->next = x->scanned + 1; /* none of the changes it has not seen is for it */
}
