/* server/core/log.c - the core's in-memory Raft log: entries by index, what is durable,
 * what is yet to be handed out for persisting, and truncation of a conflicting suffix. */
#include <stdlib.h>

#include "../../common/errors.h"
#include "raft_internal.h"

void raft_log_init(struct raft_log *log, struct raft_entry *entries, raft_index_t n)
{
    log->entries = entries;
    log->n = n;
    log->cap = n;
    log->stable = n;          /* what storage loaded is durable */
    log->unstable_from = n + 1;
    log->truncate_from = 0;
}

void raft_log_free(struct raft_log *log)
{
    for (raft_index_t i = 0; i < log->n; i++)
        raft_entry_free(&log->entries[i]);
    free(log->entries);
    log->entries = NULL;
    log->n = log->cap = 0;
}

const struct raft_entry *raft_log_get(const struct raft_log *log, raft_index_t index)
{
    if (index == 0 || index > log->n)
        return NULL;
    return &log->entries[index - 1];
}

raft_term_t raft_log_term_at(const struct raft_log *log, raft_index_t index)
{
    const struct raft_entry *e = raft_log_get(log, index);
    return e ? e->term : 0;
}

static int log_reserve(struct raft_log *log, raft_index_t want)
{
    if (want <= log->cap)
        return RK_OK;
    raft_index_t cap = log->cap ? log->cap * 2 : 64;
    while (cap < want)
        cap *= 2;
    struct raft_entry *grown = realloc(log->entries, cap * sizeof(*grown));
    if (grown == NULL)
        return RK_ERR_NOMEM;
    log->entries = grown;
    log->cap = cap;
    return RK_OK;
}

int raft_log_append_copy(struct raft_log *log, const struct raft_entry *e)
{
    int rc = log_reserve(log, log->n + 1);
    if (rc != RK_OK)
        return rc;
    rc = raft_entry_copy(&log->entries[log->n], e);
    if (rc != RK_OK)
        return rc;
    log->n++;
    return RK_OK;
}

/* Appends *e itself: the log takes over its allocation. On failure *e is untouched. */
int raft_log_append_owned(struct raft_log *log, struct raft_entry *e)
{
    int rc = log_reserve(log, log->n + 1);
    if (rc != RK_OK)
        return rc;
    log->entries[log->n++] = *e;
    return RK_OK;
}

/* Drops every entry with index >= from (Figure 2, AppendEntries receiver, step 3).
 * If storage may hold any of them (they were handed out), the next Ready says so. */
void raft_log_truncate(struct raft_log *log, raft_index_t from)
{
    if (from == 0 || from > log->n)
        return;
    for (raft_index_t i = from; i <= log->n; i++)
        raft_entry_free(&log->entries[i - 1]);
    log->n = from - 1;
    if (log->stable >= from)
        log->stable = from - 1;
    if (log->unstable_from > from) {
        if (log->truncate_from == 0 || from < log->truncate_from)
            log->truncate_from = from;
        log->unstable_from = from;
    }
}

/* The first index of the run of entries that share the term at index. */
raft_index_t raft_log_first_of_term(const struct raft_log *log, raft_index_t index)
{
    raft_term_t term = raft_log_term_at(log, index);
    while (index > 1 && raft_log_term_at(log, index - 1) == term)
        index--;
    return index;
}

/* The last index <= at_most holding an entry of term, or 0 if there is none. Terms
 * never decrease along a log, so the scan stops at the first smaller term. */
raft_index_t raft_log_last_of_term(const struct raft_log *log, raft_term_t term,
                                   raft_index_t at_most)
{
    raft_index_t i = at_most < log->n ? at_most : log->n;
    for (; i >= 1; i--) {
        raft_term_t t = raft_log_term_at(log, i);
        if (t == term)
            return i;
        if (t < term)
            return 0;
    }
    return 0;
}
