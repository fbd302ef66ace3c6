/* server/node/watch_index.c - which watch streams a round of changes concerns, so that an
 * idle watcher costs nothing when changes it does not watch are applied. The watch loop's
 * thread alone uses it (server/net/watch_loop.c): the watched prefixes in a hash table,
 * each with its streams, and the lengths they have. A round (node_watch_scan) matches each
 * change applied since the last one against the prefixes, one lookup per distinct length,
 * and visits the streams of the prefixes it touched; each prefix remembers the last change
 * that touched it, so a stream past that moves on over the rest (node_watch_skip) without
 * copying or even reading the history. The answer built for one stream of a prefix is kept
 * for the others at the same place (encoded once for all of them). */
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
    struct node_watch_prefix *next;         /* in its bucket */
    struct node_watch_prefix *touched_next; /* in the round's touched list */
    uint64_t hash;
    uint64_t last_rev;   /* the last scanned change it matched, or the scan mark when it
                            was made: a stream whose next is past it has nothing up to
                            the index's `scanned` */
    uint64_t touched;    /* the last round a change matched it */
    uint32_t len, refs;
    struct node_watcher *watchers;
    /* The last answer built for a stream of this prefix: the others at the same place get
     * the same bytes. */
    bool cached;
    uint64_t cache_next, cache_applied;
    struct node_watch_batch cache;
    char prefix[];
};

struct node_watch_index {
    struct node_watch_prefix *buckets[INDEX_BUCKETS];
    uint32_t lens[INDEX_LENS], len_refs[INDEX_LENS];
    int n_lens;
    uint64_t round;
    uint64_t scanned;        /* the changes up to this revision were matched */
    struct node_watch_prefix *touched;  /* the last round's */
    struct node_watcher *unindexed;     /* streams of a length not indexed */
    struct node_watch_batch scratch;    /* an answer for one of those */
};

struct node_watch_index *node_watch_index_new(uint64_t applied)
{
    struct node_watch_index *x = calloc(1, sizeof(*x));
    if (x != NULL)
        x->scanned = applied;
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
            proto_buf_free(&p->cache.answer);
            free(p);
        }
    }
    proto_buf_free(&x->scratch.answer);
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

/* Links w into a list of streams (a prefix's, or the unindexed ones). */
static void peer_link(struct node_watcher **head, struct node_watcher *w)
{
    w->peer_prev = NULL;
    w->peer_next = *head;
    if (*head != NULL)
        (*head)->peer_prev = w;
    *head = w;
}

static void peer_unlink(struct node_watcher **head, struct node_watcher *w)
{
    if (w->peer_prev != NULL)
        w->peer_prev->peer_next = w->peer_next;
    else
        *head = w->peer_next;
    if (w->peer_next != NULL)
        w->peer_next->peer_prev = w->peer_prev;
    w->peer_prev = w->peer_next = NULL;
}

static struct node_watch_prefix *prefix_new(struct node_watch_index *x, const char *key,
                                            uint32_t len, uint64_t hash)
{
    struct node_watch_prefix *p = calloc(1, sizeof(*p) + len);
    if (p == NULL)
        return NULL;
    p->hash = hash;
    p->len = len;
    p->last_rev = x->scanned; /* the changes before were never matched against it */
    memcpy(p->prefix, key, len);
    p->next = x->buckets[hash & (INDEX_BUCKETS - 1)];
    x->buckets[hash & (INDEX_BUCKETS - 1)] = p;
    return p;
}

void node_watch_index_add(struct node_watch_index *x, struct node_watcher *w)
{
    w->entry = NULL;
    w->peer_prev = w->peer_next = NULL;
    if (x == NULL)
        return;
    if (!add_len(x, w->prefix_len)) {
        peer_link(&x->unindexed, w); /* visited by every round */
        return;
    }
    uint64_t hash = rk_hash_bytes(w->prefix, w->prefix_len);
    struct node_watch_prefix *p = find(x, w->prefix, w->prefix_len, hash);
    if (p == NULL && (p = prefix_new(x, w->prefix, w->prefix_len, hash)) == NULL) {
        remove_len(x, w->prefix_len);
        peer_link(&x->unindexed, w);
        return;
    }
    p->refs++;
    peer_link(&p->watchers, w);
    w->entry = p;
}

/* Takes a prefix no stream watches out of its bucket and the round's touched list. */
static void prefix_free(struct node_watch_index *x, struct node_watch_prefix *p)
{
    struct node_watch_prefix **link = &x->buckets[p->hash & (INDEX_BUCKETS - 1)];
    while (*link != p)
        link = &(*link)->next;
    *link = p->next;
    if (p->touched == x->round) {
        for (link = &x->touched; *link != NULL && *link != p; link = &(*link)->touched_next)
            ;
        if (*link == p)
            *link = p->touched_next;
    }
    proto_buf_free(&p->cache.answer);
    free(p);
}

void node_watch_index_remove(struct node_watch_index *x, struct node_watcher *w)
{
    struct node_watch_prefix *p = w->entry;
    w->entry = NULL;
    if (x == NULL)
        return;
    if (p == NULL) {
        peer_unlink(&x->unindexed, w);
        return;
    }
    peer_unlink(&p->watchers, w);
    remove_len(x, p->len);
    if (--p->refs == 0)
        prefix_free(x, p);
}

struct node_watch_batch *node_watch_batch(struct node_watch_index *x, const struct node_watcher *w,
                                          uint64_t applied, bool *fresh)
{
    struct node_watch_prefix *p = w->entry;
    *fresh = true;
    if (p == NULL) {
        x->scratch.answer.len = 0;
        return &x->scratch;
    }
    if (p->cached && p->cache_next == w->next && p->cache_applied == applied) {
        *fresh = false;
        return &p->cache;
    }
    p->cache.answer.len = 0;
    p->cached = true;
    p->cache_next = w->next;
    p->cache_applied = applied;
    return &p->cache;
}

void node_watch_batch_drop(const struct node_watcher *w)
{
    if (w->entry != NULL)
        w->entry->cached = false;
}

/* A change of revision rev matched p: p is touched this round. */
static void touch(struct node_watch_index *x, struct node_watch_prefix *p, uint64_t rev)
{
    p->last_rev = rev;
    if (p->touched == x->round)
        return;
    p->touched = x->round;
    p->touched_next = x->touched;
    x->touched = p;
}

/* Under the history's mutex: touches the prefixes the changes from revision `from` on
 * match. */
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
                touch(x, p, ev->rev);
        }
    }
}

/* Changes went by unmatched (a snapshot replaced the history): every prefix counts as
 * touched up to rev, and each of its streams reads for itself. */
static void touch_all(struct node_watch_index *x, uint64_t rev)
{
    for (uint32_t b = 0; b < INDEX_BUCKETS; b++)
        for (struct node_watch_prefix *p = x->buckets[b]; p != NULL; p = p->next)
            touch(x, p, rev);
}

static void visit_round(struct node_watch_index *x, void (*visit)(void *, struct node_watcher *),
                        void *ctx)
{
    if (visit == NULL)
        return;
    for (struct node_watch_prefix *p = x->touched; p != NULL; p = p->touched_next)
        for (struct node_watcher *w = p->watchers; w != NULL; w = w->peer_next)
            visit(ctx, w);
    for (struct node_watcher *w = x->unindexed; w != NULL; w = w->peer_next)
        visit(ctx, w);
}

void node_watch_scan(struct node *n, void (*visit)(void *ctx, struct node_watcher *w), void *ctx)
{
    struct node_watch_index *x = n->watch.index;
    if (x == NULL)
        return;
    x->round++;
    x->touched = NULL;
    if (atomic_load(&n->watch.applied) != x->scanned) {
        pthread_mutex_lock(&n->watch.mu);
        const struct kv_history *h = n->watch.history;
        uint64_t applied = kv_history_applied_index(h);
        if (x->scanned + 1 < kv_history_first_rev(h))
            touch_all(x, applied);
        else
            match_changes(x, h, x->scanned + 1);
        x->scanned = applied;
        pthread_mutex_unlock(&n->watch.mu);
    }
    visit_round(x, visit, ctx);
}

void node_watch_skip(struct node *n, struct node_watcher *w)
{
    const struct node_watch_index *x = n->watch.index;
    const struct node_watch_prefix *p = w->entry;
    if (x == NULL || p == NULL || !w->active || w->ending)
        return;
    if (w->next > p->last_rev && w->next <= x->scanned)
        w->next = x->scanned + 1; /* none of the changes it has not seen is for it */
}
