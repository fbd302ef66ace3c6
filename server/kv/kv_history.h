/* server/kv/kv_history.h - the recent changes of the key-value map, for watchers (issue
 * 17): a bounded ring of the events kv_apply emits (kv.h, "Changes"), in revision order,
 * from which a watch resumes at any revision it still holds. Plain data with no lock, no
 * I/O and no clock: the threaded server guards it with its own mutex (server/node/
 * watch.c); the tests drive it directly.
 *
 * Positions: every event appended gets the next position (0, 1, 2, ...: never reused), so
 * a reader keeps its place across appends and trims, and learns when the place it kept was
 * trimmed away. */
#ifndef RK_KV_HISTORY_H
#define RK_KV_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "kv.h"

/* The defaults of --watch-history and --watch-history-bytes. */
#define KV_HISTORY_EVENTS_DEFAULT 100000u
#define KV_HISTORY_BYTES_DEFAULT (64ull << 20)
#define KV_HISTORY_EVENT_OVERHEAD 48u /* what one event costs beside its key and value */

struct kv_history_event {
    uint64_t rev;
    enum kv_event_kind kind;
    uint32_t key_len, val_len;
    char *key, *val;          /* into the event's own allocation */
};

struct kv_history;

/* A history holding at most max_events events and about max_bytes of them (keys, values
 * and KV_HISTORY_EVENT_OVERHEAD each), both >= 1; the oldest go first. Nothing before
 * revision `from` + 1 is available at first. NULL when out of memory. */
struct kv_history *kv_history_new(uint32_t max_events, uint64_t max_bytes, uint64_t from);
void kv_history_free(struct kv_history *h);

/* Appends an event (copied); revisions never decrease. Trims the oldest events past the
 * bounds. Out of memory, it forgets everything up to rev instead (a gap: a reader that
 * needed those learns it fell behind), and returns RK_ERR_NOMEM. */
int kv_history_append(struct kv_history *h, uint64_t rev, enum kv_event_kind kind,
                      const char *key, uint32_t key_len, const char *val, uint32_t val_len);
/* The map has applied every entry up to index (events or not): progress for readers. */
void kv_history_applied(struct kv_history *h, uint64_t index);
uint64_t kv_history_applied_index(const struct kv_history *h);
/* Forgets every event: nothing up to revision rev is available (the map was replaced by a
 * snapshot's at index rev, whose changes were never seen here). */
void kv_history_reset(struct kv_history *h, uint64_t rev);

/* The oldest revision a reader may start from: every event with a revision >= it that
 * the map has applied is in the history. */
uint64_t kv_history_first_rev(const struct kv_history *h);
/* The position of the first event with a revision >= rev (the end position if none yet).
 * rev must be >= kv_history_first_rev. O(log n). */
uint64_t kv_history_seek(const struct kv_history *h, uint64_t rev);
/* The first position still held, and the one the next append gets. */
uint64_t kv_history_begin(const struct kv_history *h);
uint64_t kv_history_end(const struct kv_history *h);
/* The event at pos (begin <= pos < end), or NULL. Valid until the next append, trim or
 * reset. */
const struct kv_history_event *kv_history_at(const struct kv_history *h, uint64_t pos);

uint32_t kv_history_count(const struct kv_history *h);
uint64_t kv_history_bytes(const struct kv_history *h);

#endif
