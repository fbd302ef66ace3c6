/* server/node/io_thread.c - the log writer: takes the core's Ready batches, makes them
 * durable (log reset, hard state, truncation, entries, fdatasync) WITHOUT the lock,
 * writes incoming snapshot chunks and installs a complete snapshot (Raft paper Figure 13),
 * then sends the messages that waited on all that and reports the batch done. Whatever
 * accumulates during one fsync goes into the next batch (group commit). It also compacts
 * the log file once a snapshot covers its prefix (§7). It is the only thread that uses
 * n->storage, which it does without the lock. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../kv/kv.h"
#include "../storage/snapshot.h"
#include "../storage/storage.h"
#include "node.h"

#define IO_ERR_LEN 512

/* Any storage error is fatal: running on with a log in an unknown state could acknowledge
 * a write that is not durable (Raft paper Figure 2: persist before responding). */
static void persist_failed(struct node *n, const char *err)
{
    node_fatal(n, "cannot persist the log: %s; stopping so no unpersisted write is acknowledged",
               err);
}

/* The log steps of a Ready, in order: reset after an installed snapshot (Figure 13
 * step 7), hard state, truncation, entries, sync. Called without the lock. Returns how
 * long the fdatasync took, in ms (0: none). */
static uint64_t persist(struct node *n, const struct raft_ready *rd, const char *vote)
{
    uint64_t sync_start;
    char err[IO_ERR_LEN] = "";
    if (rd->reset_log_to != 0 &&
        storage_reset(n->storage, rd->reset_log_to, err, sizeof(err)) != RK_OK)
        persist_failed(n, err);
    if (rd->hard_state_changed &&
        storage_save_hard_state(n->storage, rd->term, vote, err, sizeof(err)) != RK_OK)
        persist_failed(n, err);
    if (rd->truncate_from != 0 &&
        storage_truncate(n->storage, rd->truncate_from, err, sizeof(err)) != RK_OK)
        persist_failed(n, err);
    if (rd->n_entries > 0 &&
        storage_append(n->storage, rd->first_index, rd->entries, rd->n_entries, err,
                       sizeof(err)) != RK_OK)
        persist_failed(n, err);
    if (rd->truncate_from == 0 && rd->n_entries == 0)
        return 0;
    sync_start = rk_clock_ms();
    if (storage_sync(n->storage, err, sizeof(err)) != RK_OK)
        persist_failed(n, err);
    return rk_clock_ms() - sync_start;
}

/* ---------- an incoming snapshot (Figure 13, receiver) ---------- */

/* A snapshot whose last chunk was written: verified (with its state machine) or not. */
struct received_snapshot {
    bool complete;
    raft_index_t index;
    raft_term_t term;
    bool ok;
    struct kv *kv;       /* the state machine loaded from it, when ok */
    uint64_t file_bytes; /* its size */
    uint64_t took_ms;
};

/* The last chunk is written: fdatasync, verify, build the new state machine (outside
 * the lock: it may take a while), and make the file NAME_snapshot. */
static void finish_received(struct node *n, const struct raft_snap_chunk *c,
                            struct received_snapshot *out)
{
    char err[IO_ERR_LEN] = "";
    uint64_t start = rk_clock_ms();
    struct kv *kv = NULL;
    struct snapshot_meta *m = malloc(sizeof(*m));
    int rc = m == NULL ? RK_ERR_NOMEM
                       : snapshot_recv_verify(n->snap.paths, c->index, c->term, m, &kv, err,
                                              sizeof(err));
    uint64_t file_bytes = rc == RK_OK ? m->file_len : 0;
    free(m);
    if (rc == RK_OK) {
        bool installed; /* if not, we already have a newer one on disk: that is fine */
        rc = node_snap_install_file(n, c->index, true, &installed, err, sizeof(err));
    }
    if (rc != RK_OK) {
        node_log(n, "received snapshot %" PRIu64 " is unusable: %s; asking for it again",
                 c->index, err[0] ? err : rk_strerror(rc));
        kv_free(kv);
        kv = NULL;
    }
    *out = (struct received_snapshot){ .complete = true, .index = c->index, .term = c->term,
                                       .ok = rc == RK_OK, .kv = kv, .file_bytes = file_bytes,
                                       .took_ms = rk_clock_ms() - start };
}

/* Writes the chunks in order into NAME_snapshot.recv. A chunk that cannot be written is
 * logged; the snapshot then fails verification and the leader sends it again. */
static void receive_chunks(struct node *n, const struct raft_ready *rd,
                           struct received_snapshot *out)
{
    for (uint32_t i = 0; i < rd->n_snap_chunks; i++) {
        const struct raft_snap_chunk *c = &rd->snap_chunks[i];
        char err[IO_ERR_LEN] = "";
        if (snapshot_recv_chunk(n->snap.paths, c->offset, c->data, c->len, err,
                                sizeof(err)) != RK_OK)
            node_log(n, "snapshot %" PRIu64 ": cannot write the chunk at offset %" PRIu64
                     ": %s", c->index, c->offset, err);
        if (c->done) {
            if (out->complete) /* an earlier one in this batch: this one supersedes it */
                kv_free(out->kv);
            finish_received(n, c, out);
        }
    }
}

/* Under mu: tell the core (Figure 13 steps 6-8); if it says so, the new state machine
 * replaces ours. Returns the map to free (outside the lock). */
static struct kv *install_received(struct node *n, struct received_snapshot *rs)
{
    if (!raft_snapshot_installed(n->raft, rk_clock_ms(), rs->index, rs->term, rs->ok,
                                 NULL))
        return rs->kv;
    struct kv *old = node_snap_adopt(n, rs->index, rs->file_bytes, rs->kv);
    node_log(n, "installed snapshot %" PRIu64 " (term %" PRIu64 ", %zu keys) from the "
             "leader; loading and verifying it took %" PRIu64 " ms", rs->index, rs->term,
             kv_count(n->kv), rs->took_ms);
    return old;
}

/* ---------- the loop ---------- */

/* One batch: take under the lock, persist outside it, then under it queue the messages
 * (for ob) and report the batch durable. Entered and left with the lock held. */
static void run_batch(struct node *n, struct node_outbox *ob)
{
    struct raft_ready rd;
    int rc = raft_ready_take(n->raft, &rd);
    if (rc != RK_OK)
        node_fatal(n, "cannot take the next batch: %s", rk_strerror(rc));
    char vote[REGISTRY_NAME_MAX + 1];
    snprintf(vote, sizeof(vote), "%s", rd.voted_for == RAFT_VOTE_ELSEWHERE
                                           ? n->vote_elsewhere : node_name_of(n, rd.voted_for));
    bool writes = rd.hard_state_changed || rd.n_entries > 0 || rd.truncate_from != 0;
    if (writes)
        n->sync_started_ms = rk_clock_ms(); /* the timer watches for a stalled disk */
    pthread_mutex_unlock(&n->mu);

    uint64_t sync_ms = persist(n, &rd, vote);
    struct received_snapshot rs = { 0 };
    receive_chunks(n, &rd, &rs);

    pthread_mutex_lock(&n->mu);
    if (writes)
        node_disk_answered(n);
    node_warn_sync(n, sync_ms);
    struct kv *unused = rs.complete ? install_received(n, &rs) : NULL;
    for (uint32_t i = 0; i < rd.n_msgs; i++)
        node_peer_push(n, &rd.msgs[i], ob);
    raft_ready_done(n->raft, rk_clock_ms(), &rd);
    node_after_step(n, ob);
    pthread_mutex_unlock(&n->mu);
    kv_free(unused);
    raft_ready_free(&rd);
    pthread_mutex_lock(&n->mu);
}

static bool compaction_due(const struct node *n)
{
    return n->snap.compact_to > n->snap.compacted;
}

/* Raft paper §7: NAME_snapshot covers the log up to compact_to, so storage drops that
 * prefix. Entered and left with the lock held. */
static void compact_storage(struct node *n)
{
    raft_index_t to = n->snap.compact_to;
    pthread_mutex_unlock(&n->mu);
    char err[IO_ERR_LEN] = "";
    uint64_t start = rk_clock_ms();
    if (storage_compact(n->storage, to, err, sizeof(err)) != RK_OK)
        persist_failed(n, err);
    node_log(n, "compacted the log file up to index %" PRIu64 " in %" PRIu64 " ms; it now "
             "holds %" PRIu64 "..%" PRIu64, to, rk_clock_ms() - start,
             storage_first_index(n->storage), storage_last_index(n->storage));
    pthread_mutex_lock(&n->mu);
    n->snap.compacted = to;
}

/* The only thread that writes the log. Whatever the stepping threads produced while it
 * wrote the last batch is the next batch (group commit); the messages a batch releases
 * (a follower's acknowledgements, a candidate's votes) it sends itself when their links
 * are idle, saving the replicators' thread switch. */
static void *io_main(void *arg)
{
    struct node *n = arg;
    node_name_thread("io", -1);
    uint64_t next_disk_ms = 0; /* when to look at the disk's free space (warnings.c) */
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->shutdown && !raft_has_ready(n->raft) && !compaction_due(n) &&
               rk_clock_ms() < next_disk_ms)
            node_cond_wait_until(&n->io_cond, &n->mu, next_disk_ms);
        if (n->shutdown)
            break;
        if (rk_clock_ms() >= next_disk_ms) { /* statvfs may wait on the disk: no lock */
            next_disk_ms = rk_clock_ms() + NODE_WARN_DISK_EVERY_MS;
            pthread_mutex_unlock(&n->mu);
            node_warn_disk(n);
            pthread_mutex_lock(&n->mu);
        }
        if (compaction_due(n))
            compact_storage(n);
        if (!raft_has_ready(n->raft))
            continue;
        struct node_outbox ob = { .any = false };
        run_batch(n, &ob);
        node_outbox_flush(n, &ob);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int node_io_start(struct node *n)
{
    if (pthread_create(&n->io_thread, NULL, io_main, n) != 0)
        return RK_ERR_NOMEM;
    n->io_started = true;
    return RK_OK;
}
