/* server/kv/kv_history.c - the bounded ring of recent changes (kv_history.h): one
 * allocation per event, a ring of pointers by position, trimmed from the oldest by count
 * and by bytes. */
#include "kv_history.h"

#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"

struct kv_history {
    struct kv_history_event **ring; /* position p at ring[p % cap] */
    uint32_t cap;
    uint64_t begin, end;            /* the positions held: [begin, end) */
    uint64_t bytes, max_bytes;
    uint64_t first_rev;             /* the oldest revision a reader may start from */
    uint64_t applied;
};

static uint64_t event_cost(const struct kv_history_event *ev)
{
    return KV_HISTORY_EVENT_OVERHEAD + (uint64_t)ev->key_len + ev->val_len;
}

struct kv_history *kv_history_new(uint32_t max_events, uint64_t max_bytes, uint64_t from)
{
    struct kv_history *h = calloc(1, sizeof(*h));
    if (h == NULL || max_events == 0 || max_bytes == 0) {
        free(h);
        return NULL;
    }
    h->ring = calloc(max_events, sizeof(*h->ring));
    if (h->ring == NULL) {
        free(h);
        return NULL;
    }
    h->cap = max_events;
    h->max_bytes = max_bytes;
    h->first_rev = from + 1;
    h->applied = from;
    return h;
}

/* Drops the oldest event: its revision is no longer available. */
static void drop_oldest(struct kv_history *h)
{
    struct kv_history_event *ev = h->ring[h->begin % h->cap];
    h->ring[h->begin % h->cap] = NULL;
    h->begin++;
    h->bytes -= event_cost(ev);
    if (ev->rev + 1 > h->first_rev)
        h->first_rev = ev->rev + 1;
    free(ev);
}

void kv_history_free(struct kv_history *h)
{
    if (h == NULL)
        return;
    while (h->begin < h->end)
        drop_oldest(h);
    free(h->ring);
    free(h);
}

void kv_history_reset(struct kv_history *h, uint64_t rev)
{
    while (h->begin < h->end)
        drop_oldest(h);
    if (rev + 1 > h->first_rev)
        h->first_rev = rev + 1;
    if (rev > h->applied)
        h->applied = rev;
}

static struct kv_history_event *event_new(uint64_t rev, enum kv_event_kind kind,
                                          const char *key, uint32_t key_len, const char *val,
                                          uint32_t val_len)
{
    struct kv_history_event *ev = malloc(sizeof(*ev) + (size_t)key_len + val_len + 2);
    if (ev == NULL)
        return NULL;
    ev->rev = rev;
    ev->kind = kind;
    ev->key_len = key_len;
    ev->val_len = val_len;
    ev->key = (char *)(ev + 1);
    ev->val = ev->key + key_len + 1;
    memcpy(ev->key, key, key_len);
    ev->key[key_len] = '\0';
    memcpy(ev->val, val, val_len);
    ev->val[val_len] = '\0';
    return ev;
}

int kv_history_append(struct kv_history *h, uint64_t rev, enum kv_event_kind kind,
                      const char *key, uint32_t key_len, const char *val, uint32_t val_len)
{
    struct kv_history_event *ev = event_new(rev, kind, key, key_len, val, val_len);
    if (ev == NULL) {
        kv_history_reset(h, rev);
        return RK_ERR_NOMEM;
    }
    if (h->end - h->begin == h->cap)
        drop_oldest(h);
    while (h->begin < h->end && h->bytes + event_cost(ev) > h->max_bytes)
        drop_oldest(h);
    h->ring[h->end % h->cap] = ev;
    h->end++;
    h->bytes += event_cost(ev);
    return RK_OK;
}

void kv_history_applied(struct kv_history *h, uint64_t index)
{
    if (index > h->applied)
        h->applied = index;
}

uint64_t kv_history_applied_index(const struct kv_history *h)
{
    return h->applied;
}

uint64_t kv_history_first_rev(const struct kv_history *h)
{
    return h->first_rev;
}

uint64_t kv_history_seek(const struct kv_history *h, uint64_t rev)
{
    uint64_t lo = h->begin, hi = h->end; /* the answer is in [lo, hi] */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (h->ring[mid % h->cap]->rev < rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint64_t kv_history_begin(const struct kv_history *h)
{
    return h->begin;
}

uint64_t kv_history_end(const struct kv_history *h)
{
    return h->end;
}

const struct kv_history_event *kv_history_at(const struct kv_history *h, uint64_t pos)
{
    if (pos < h->begin || pos >= h->end)
        return NULL;
    return h->ring[pos % h->cap];
}

uint32_t kv_history_count(const struct kv_history *h)
{
    return (uint32_t)(h->end - h->begin);
}

uint64_t kv_history_bytes(const struct kv_history *h)
{
    return h->bytes;
}
