/* server/node/watch.c - the node's side of watch (issue 17): the history of recent
 * changes (server/kv/kv_history.h) that watchers resume from. kv_apply reports each change
 * as it makes it (kv.h, "Changes"); the applying thread, under n->mu, holds the history's
 * own mutex around each chunk of entries it applies, then records the applied index and
 * wakes the watch loop (server/net/watch_loop.c), which builds its streams' answers from
 * the history under that mutex alone: one per prefix and place, shared by the streams
 * there (watch_index.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/bytes.h"
#include "../../common/errors.h"
#include "../kv/kv.h"
#include "../kv/kv_history.h"
#include "node.h"

int node_watch_init(struct node *n, uint32_t max_events, uint64_t max_bytes)
{
    struct node_watch *w = &n->watch;
    if (pthread_mutex_init(&w->mu, NULL) != 0)
        return RK_ERR_NOMEM;
    w->history = kv_history_new(max_events, max_bytes, n->applied);
    w->index = node_watch_index_new(n->applied);
    if (w->history == NULL || w->index == NULL)
        return RK_ERR_NOMEM;
    atomic_init(&w->applied, n->applied);
    atomic_init(&w->n_watchers, 0);
    node_watch_attach(n, n->kv, n->applied);
    return RK_OK;
}

void node_watch_free(struct node *n)
{
    kv_history_free(n->watch.history);
    n->watch.history = NULL;
    node_watch_index_free(n->watch.index);
    n->watch.index = NULL;
    proto_buf_free(&n->watch.body);
    proto_buf_free(&n->watch.err);
}

/* kv_apply's event function: under n->mu and the history's mutex (a chunk is being
 * applied). A change the history cannot hold leaves a gap: watchers that need it learn
 * that they fell behind. */
static void on_change(void *ctx, uint64_t rev, enum kv_event_kind kind, const char *key,
                      uint32_t key_len, const char *val, uint32_t val_len)
{
    struct node *n = ctx;
    kv_history_append(n->watch.history, rev, kind, key, key_len, val, val_len);
}

void node_watch_attach(struct node *n, struct kv *kv, uint64_t index)
{
    if (n->watch.history == NULL)
        return;
    kv_set_event_fn(kv, on_change, n);
    pthread_mutex_lock(&n->watch.mu);
    kv_history_reset(n->watch.history, index);
    pthread_mutex_unlock(&n->watch.mu);
    atomic_store(&n->watch.applied, index);
}

void node_watch_chunk_begin(struct node *n)
{
    if (n->watch.history != NULL)
        pthread_mutex_lock(&n->watch.mu);
}

void node_watch_chunk_end(struct node *n)
{
    if (n->watch.history == NULL)
        return;
    kv_history_applied(n->watch.history, n->applied);
    pthread_mutex_unlock(&n->watch.mu);
    atomic_store(&n->watch.applied, n->applied);
    if (atomic_load(&n->watch.n_watchers) > 0 && n->watch.wake != NULL)
        n->watch.wake(n->watch.wake_ctx);
}

/* ---------- one watch stream ---------- */

static bool matches(const struct node_watcher *w, const struct kv_history_event *ev)
{
    return ev->key_len >= w->prefix_len &&
           (w->prefix_len == 0 || memcmp(ev->key, w->prefix, w->prefix_len) == 0);
}

static int add_event(struct proto_buf *body, const struct kv_history_event *ev)
{
    struct proto_event pe = { .rev = ev->rev, .kind = (uint8_t)ev->kind, .key = ev->key,
                              .key_len = ev->key_len, .val = ev->val, .val_len = ev->val_len };
    return proto_events_add(body, &pe);
}

/* Under the history's mutex: the events from w->next on that match into body, whole
 * revisions, until it holds about NODE_WATCH_BATCH_BYTES. Sets *progress: every event up
 * to it was looked at. false when out of memory (body is then of no use: try later). */
static bool collect(const struct kv_history *h, const struct node_watcher *w,
                    struct proto_buf *body, uint64_t *progress)
{
    uint64_t end = kv_history_end(h), last_rev = 0;
    for (uint64_t pos = kv_history_seek(h, w->next); pos < end; pos++) {
        const struct kv_history_event *ev = kv_history_at(h, pos);
        if (body->len >= NODE_WATCH_BATCH_BYTES && ev->rev != last_rev) {
            *progress = last_rev;
            return true;
        }
        last_rev = ev->rev;
        if (matches(w, ev) && add_event(body, ev) != RK_OK)
            return false;
    }
    *progress = kv_history_applied_index(h);
    return true;
}

/* The ERR that ends the stream, naming rev; the stream is closed once it is sent (or
 * once its client has taken nothing for 5 s). */
static const struct proto_buf *end_with(struct node *n, struct node_watcher *w,
                                        const char *prefix, uint64_t rev, uint64_t now)
{
    char why[128];
    snprintf(why, sizeof(why), "%s%" PRIu64, prefix, rev);
    n->watch.err.len = 0;
    if (node_client_error(&n->watch.err, why) != RK_OK)
        return NULL;
    w->ending = true;
    w->last_sent_ms = now;
    return &n->watch.err;
}

/* Builds into b the answer for w at its place: its events from the history, framed.
 * false: out of memory, or (*trimmed) its place is no longer in the history. */
static bool build(struct node *n, const struct node_watcher *w, struct node_watch_batch *b,
                  bool *trimmed)
{
    struct proto_buf *body = &n->watch.body;
    body->len = 0;
    if (proto_events_begin(body, 0) != RK_OK)
        return false;
    pthread_mutex_lock(&n->watch.mu);
    *trimmed = w->next < kv_history_first_rev(n->watch.history);
    bool ok = !*trimmed && collect(n->watch.history, w, body, &b->progress);
    pthread_mutex_unlock(&n->watch.mu);
    if (!ok)
        return false;
    rk_put_be(body->data, b->progress, 8);
    b->count = (uint32_t)rk_get_be(body->data + 8, 4);
    return node_client_reply(&b->answer, PROTO_ST_EVENTS, (const char *)body->data,
                             (uint32_t)body->len) == RK_OK;
}

/* The batch, if it holds events or a heartbeat is due; either way w moves past its
 * progress. */
static const struct proto_buf *take(struct node_watcher *w, const struct node_watch_batch *b,
                                    bool beat, uint64_t now)
{
    if (b->progress + 1 > w->next)
        w->next = b->progress + 1;
    if (b->count == 0 && !beat)
        return NULL;
    w->answered = true;
    w->last_sent_ms = now;
    return &b->answer;
}

bool node_watch_due(struct node *n, const struct node_watcher *w, size_t unsent, uint64_t now)
{
    if (!w->active || w->ending)
        return false;
    if (!w->answered || now - w->last_sent_ms >= PROTO_WATCH_HEARTBEAT_MS)
        return true;
    return w->next <= atomic_load(&n->watch.applied) && unsent < NODE_WATCH_OUT_BOUND;
}

const struct proto_buf *node_watch_answer(struct node *n, struct node_watcher *w, size_t unsent,
                                          uint64_t now)
{
    bool beat = !w->answered || now - w->last_sent_ms >= PROTO_WATCH_HEARTBEAT_MS;
    uint64_t applied = atomic_load(&n->watch.applied);
    bool news = w->next <= applied;
    if (!w->active || w->ending || (!news && !beat))
        return NULL;
    if (news && unsent >= NODE_WATCH_OUT_BOUND) /* it does not read what it has */
        return end_with(n, w, PROTO_ERR_FELL_BEHIND, w->next, now);
    bool fresh, trimmed = false;
    struct node_watch_batch *b = node_watch_batch(n->watch.index, w, applied, &fresh);
    if (b == NULL)
        return NULL;
    if (fresh && !build(n, w, b, &trimmed)) {
        node_watch_batch_drop(w);
        return trimmed ? end_with(n, w, PROTO_ERR_FELL_BEHIND, w->next, now) : NULL;
    }
    return take(w, b, beat, now);
}

/* Why a WATCH cannot start (into why), or NULL; *from is where it starts. */
static const char *refusal(struct node *n, const struct proto_client_req *req, uint64_t *from,
                           char *why, size_t len)
{
    if (req->key_len > n->limits.max_key_bytes)
        return "bad watch: prefix too long";
    if (!proto_key_is_word(req->key, req->key_len))
        return PROTO_ERR_KEY_NOT_WORD;
    if (proto_parse_watch(req->val, req->val_len, from) != RK_OK)
        return "bad watch: want \"\" or \"FROM\" (a revision >= 1)";
    if (atomic_load(&n->watch.n_watchers) >= n->limits.max_watchers) {
        snprintf(why, len, "too many watchers (--max-watchers %" PRIu32 ")",
                 n->limits.max_watchers);
        return why;
    }
    pthread_mutex_lock(&n->watch.mu);
    uint64_t first = kv_history_first_rev(n->watch.history);
    if (*from == 0)
        *from = kv_history_applied_index(n->watch.history) + 1;
    pthread_mutex_unlock(&n->watch.mu);
    if (*from >= first)
        return NULL;
    snprintf(why, len, PROTO_ERR_COMPACTED "%" PRIu64, first);
    return why;
}

bool node_watch_check(struct node *n, struct node_watcher *w, const struct proto_client_req *req,
                      struct proto_buf *out)
{
    char why[128];
    uint64_t from = 0;
    const char *bad = refusal(n, req, &from, why, sizeof(why));
    char *prefix = bad == NULL ? malloc((size_t)req->key_len + 1) : NULL;
    if (bad == NULL && prefix == NULL)
        bad = "out of memory";
    if (bad != NULL) {
        node_client_error(out, bad);
        return false;
    }
    memcpy(prefix, req->key, req->key_len);
    *w = (struct node_watcher){ .active = true, .prefix = prefix, .prefix_len = req->key_len,
                                .next = from };
    atomic_fetch_add(&n->watch.n_watchers, 1);
    return true;
}

void node_watch_open(struct node *n, struct node_watcher *w)
{
    node_watch_index_add(n->watch.index, w);
}

void node_watch_stop(struct node *n, struct node_watcher *w)
{
    if (!w->active)
        return;
    node_watch_index_remove(n->watch.index, w);
    free(w->prefix);
    w->prefix = NULL;
    w->active = false;
    atomic_fetch_sub(&n->watch.n_watchers, 1);
}
