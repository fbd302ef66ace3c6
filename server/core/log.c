/* server/core/log.c - the core's in-memory Raft log: entries by index after the last
 * snapshot, what is durable, what is yet to be handed out for persisting, truncation of
 * a conflicting suffix, and compaction of a prefix into a snapshot (Raft paper §7). */
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/grow.h"
#include "raft_internal.h"

void core_log_init(struct raft_log *log, raft_index_t offset, raft_term_t snap_term,
                   struct raft_entry *entries, raft_index_t n)
{
    log->entries = entries;
    log->cap = n;
    log->offset = offset;
    log->snap_term = snap_term;
    log->last = offset + n;
    log->stable = log->last;   /* what storage loaded is durable */
    log->unstable_from = log->last + 1;
    log->truncate_from = 0;
}

static raft_index_t log_count(const struct raft_log *log)
{
    return log->last - log->offset;
}

void core_log_free(struct raft_log *log)
{
    for (raft_index_t i = 0; i < log_count(log); i++)
        raft_entry_free(&log->entries[i]);
    free(log->entries);
    log->entries = NULL;
    log->cap = 0;
    log->last = log->offset;
}

const struct raft_entry *core_log_get(const struct raft_log *log, raft_index_t index)
{
    if (index <= log->offset || index > log->last)
        return NULL;
    return &log->entries[index - log->offset - 1];
}

/* The term of the entry at index; the snapshot's term at its last index; 0 if unknown
 * (compacted away, or past the end). */
raft_term_t core_log_term_at(const struct raft_log *log, raft_index_t index)
{
    if (index == log->offset)
        return log->snap_term;
    const struct raft_entry *e = core_log_get(log, index);
    return e ? e->term : 0;
}

static int log_reserve(struct raft_log *log, raft_index_t want)
{
    return rk_grow(&log->entries, &log->cap, (size_t)want, sizeof(*log->entries), 64);
}

int core_log_append_copy(struct raft_log *log, const struct raft_entry *e)
{
    int rc = log_reserve(log, log_count(log) + 1);
    if (rc != RK_OK)
        return rc;
    rc = raft_entry_copy(&log->entries[log_count(log)], e);
    if (rc != RK_OK)
        return rc;
    log->last++;
    return RK_OK;
}

/* Appends *e itself: the log takes over its allocation. On failure *e is untouched. */
int core_log_append_owned(struct raft_log *log, struct raft_entry *e)
{
    int rc = log_reserve(log, log_count(log) + 1);
    if (rc != RK_OK)
        return rc;
    log->entries[log_count(log)] = *e;
    log->last++;
    return RK_OK;
}

/* Drops every entry with index >= from (Figure 2, AppendEntries receiver, step 3).
 * If storage may hold any of them (they were handed out), the next Ready says so. */
void core_log_truncate(struct raft_log *log, raft_index_t from)
{
    if (from <= log->offset || from > log->last)
        return;
    for (raft_index_t i = from; i <= log->last; i++)
        raft_entry_free(&log->entries[i - log->offset - 1]);
    log->last = from - 1;
    if (log->stable >= from)
        log->stable = from - 1;
    if (log->unstable_from > from) {
        if (log->truncate_from == 0 || from < log->truncate_from)
            log->truncate_from = from;
        log->unstable_from = from;
    }
}

/* Drops entries up to index, which a durable snapshot covers (§7). Only durable entries
 * are dropped, so what is still to be persisted is never lost. */
void core_log_compact(struct raft_log *log, raft_index_t index)
{
    if (index > log->stable)
        index = log->stable;
    if (index <= log->offset)
        return;
    raft_term_t term = core_log_term_at(log, index);
    raft_index_t drop = index - log->offset;
    for (raft_index_t i = 0; i < drop; i++)
        raft_entry_free(&log->entries[i]);
    memmove(log->entries, log->entries + drop, (log_count(log) - drop) * sizeof(*log->entries));
    log->offset = index;
    log->snap_term = term;
}

/* Discards the whole log: it restarts after a snapshot at offset (Figure 13, step 7). */
void core_log_reset(struct raft_log *log, raft_index_t offset, raft_term_t snap_term)
{
    for (raft_index_t i = 0; i < log_count(log); i++)
        raft_entry_free(&log->entries[i]);
    log->offset = offset;
    log->snap_term = snap_term;
    log->last = offset;
    log->stable = offset;
    log->unstable_from = offset + 1;
    log->truncate_from = 0;
}

/* The first index of the run of entries that share the term at index (not before the
 * first entry in memory). */
raft_index_t core_log_first_of_term(const struct raft_log *log, raft_index_t index)
{
    raft_term_t term = core_log_term_at(log, index);
    while (index > log->offset + 1 && core_log_term_at(log, index - 1) == term)
        index--;
    return index;
}

/* The last index <= at_most holding an entry of term, or 0 if there is none in memory.
 * Terms never decrease along a log, so the scan stops at the first smaller term. */
raft_index_t core_log_last_of_term(const struct raft_log *log, raft_term_t term,
                                   raft_index_t at_most)
{
    raft_index_t i = at_most < log->last ? at_most : log->last;
    for (; i >= log->offset && i >= 1; i--) {
        raft_term_t t = core_log_term_at(log, i);
        if (t == term)
            return i;
        if (t < term)
            return 0;
    }
    return 0;
}
