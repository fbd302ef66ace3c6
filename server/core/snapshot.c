/* server/core/snapshot.c - log compaction and InstallSnapshot (Raft paper §7, Figure 13):
 * the leader sends its latest snapshot in chunks, one at a time, to a follower whose
 * next entry is compacted; the follower hands each chunk to the caller to write and,
 * once the caller installed the whole snapshot, keeps or discards its log (step 6-7).
 * The core never holds snapshot bytes: the caller reads and writes them. */
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/grow.h"
#include "raft_internal.h"

/* ---- leader side ---------------------------------------------------------------- */

/* Sends the chunk at the follower's offset of our latest snapshot; restarts at offset 0
 * if a newer snapshot replaced the one being sent. The chunk's bytes are filled in by
 * whoever encodes the message. */
void core_snap_send(struct raft *r, int peer)
{
    struct raft_progress *pr = &r->progress[peer];
    if (r->snap_index == 0)
        return; /* nothing compacted, nothing to send */
    if (pr->state != RAFT_SNAPSHOT || pr->snap_index != r->snap_index) {
        if (pr->state != RAFT_SNAPSHOT)
            core_notice(r, "catching up follower %s with snapshot %llu (it needs index %llu)",
                        core_node_name(r, peer), (unsigned long long)r->snap_index,
                        (unsigned long long)pr->next);
        pr->state = RAFT_SNAPSHOT;
        pr->snap_index = r->snap_index;
        pr->snap_offset = 0;
    }
    struct raft_msg m = {
        .type = RAFT_MSG_SNAPSHOT,
        .to = peer,
        .term = r->term,
        .snap_index = r->snap_index,
        .snap_term = r->snap_term,
        .snap_offset = pr->snap_offset,
    };
    pr->paused = true; /* one chunk at a time; a heartbeat resends a lost one */
    core_send(r, &m);
}

void core_snap_recv_resp(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER || m->term != r->term)
        return;
    struct raft_progress *pr = &r->progress[m->from];
    if (m->success) {
        if (pr->state == RAFT_SNAPSHOT)
            core_notice(r, "follower %s installed snapshot %llu",
                        core_node_name(r, m->from), (unsigned long long)m->snap_index);
        pr->paused = false;
        core_repl_accepted(r, m->from, m->match_index);
        return;
    }
    if (pr->state != RAFT_SNAPSHOT || m->snap_index != pr->snap_index)
        return; /* stale */
    /* The same offset again answers a resent chunk: the next chunk is already on its
     * way, and sending it again for every such answer would multiply the transfer. A
     * lower offset means the follower starts over (e.g. its copy failed to verify). */
    if (m->snap_offset == pr->snap_offset && pr->paused)
        return;
    pr->snap_offset = m->snap_offset;
    pr->paused = false;
    core_snap_send(r, m->from);
}

/* ---- follower side -------------------------------------------------------------- */

static void snapshot_reply(struct raft *r, int to, const struct raft_msg *m, bool success,
                           raft_index_t match, uint64_t next_offset)
{
    struct raft_msg resp = {
        .type = RAFT_MSG_SNAPSHOT_RESP,
        .to = to,
        .term = r->term,
        .success = success,
        .match_index = match,
        .snap_index = m->snap_index,
        .snap_term = m->snap_term,
        .snap_offset = next_offset,
    };
    core_send(r, &resp);
}

static int queue_chunk(struct raft *r, const struct raft_msg *m)
{
    if (rk_grow(&r->chunks, &r->cap_chunks, (size_t)r->n_chunks + 1, sizeof(*r->chunks), 4) !=
        RK_OK)
        return RK_ERR_NOMEM;
    struct raft_snap_chunk c = {
        .index = m->snap_index, .term = m->snap_term, .offset = m->snap_offset,
        .len = m->snap_len, .done = m->snap_done,
    };
    if (m->snap_len > 0) {
        c.data = malloc(m->snap_len);
        if (c.data == NULL)
            return RK_ERR_NOMEM;
        memcpy(c.data, m->snap_data, m->snap_len);
    }
    r->chunks[r->n_chunks++] = c;
    return RK_OK;
}

/* Figure 13, InstallSnapshot receiver, steps 1-5: chunks must come in order; a chunk at
 * offset 0 of another snapshot starts over. (A higher term was adopted by raft_step.) */
void core_snap_recv(struct raft *r, const struct raft_msg *m)
{
    struct raft_incoming_snapshot *in = &r->incoming;
    if (m->term < r->term) { /* step 1 */
        snapshot_reply(r, m->from, m, false, 0, 0);
        return;
    }
    if (r->role == RAFT_LEADER)
        return;
    core_repl_follow(r, m);
    if (m->snap_index <= r->commit) { /* we already have all it holds */
        snapshot_reply(r, m->from, m, true, r->commit, 0);
        return;
    }
    bool same = in->active && in->index == m->snap_index && in->term == m->snap_term;
    if (in->installing) {
        snapshot_reply(r, m->from, m, false, 0, same ? in->next_offset : 0);
        return;
    }
    if (!same) {
        if (m->snap_offset != 0) {
            snapshot_reply(r, m->from, m, false, 0, 0);
            return;
        }
        *in = (struct raft_incoming_snapshot){
            .active = true, .index = m->snap_index, .term = m->snap_term, .from = m->from,
        };
    }
    if (m->snap_offset != in->next_offset || queue_chunk(r, m) != RK_OK) {
        snapshot_reply(r, m->from, m, false, 0, in->next_offset);
        return;
    }
    in->next_offset += m->snap_len;
    in->from = m->from;
    if (m->snap_done)
        in->installing = true; /* answered from raft_snapshot_installed */
    else
        snapshot_reply(r, m->from, m, false, 0, in->next_offset);
}

bool raft_snapshot_installed(struct raft *r, uint64_t now_ms, raft_index_t index,
                             raft_term_t term, bool ok, const struct membership *ms)
{
    if (now_ms > r->now)
        r->now = now_ms;
    struct raft_incoming_snapshot *in = &r->incoming;
    if (!in->installing || in->index != index || in->term != term)
        return false;
    struct raft_msg m = { .snap_index = index, .snap_term = term };
    int to = in->from;
    memset(in, 0, sizeof(*in));
    if (!ok) {
        core_notice(r, "snapshot %llu failed verification; asking for it again",
                    (unsigned long long)index);
        snapshot_reply(r, to, &m, false, 0, 0);
        return false;
    }
    if (index <= r->commit) {
        snapshot_reply(r, to, &m, true, r->commit, 0);
        return false;
    }
    if (core_log_term_at(&r->log, index) == term && index <= r->log.last) {
        core_log_compact(&r->log, index); /* step 6: keep what follows it */
    } else {
        core_log_reset(&r->log, index, term); /* step 7: discard the whole log */
        core_conf_truncated(r, 1); /* its configurations went with it */
        r->reset_log_to = index;
    }
    core_conf_installed(r, index, ms); /* its configuration, as of index (§4.1) */
    r->commit = index; /* step 8: the state machine is loaded from the snapshot */
    if (index > r->snap_index) {
        r->snap_index = index;
        r->snap_term = term;
    }
    core_notice(r, "installed snapshot %llu (term %llu)", (unsigned long long)index,
                (unsigned long long)term);
    snapshot_reply(r, to, &m, true, index, 0);
    return true;
}

/* ---- the caller's snapshots -------------------------------------------------------- */

void raft_snapshot_saved(struct raft *r, raft_index_t index, raft_term_t term)
{
    if (index <= r->snap_index)
        return;
    r->snap_index = index;
    r->snap_term = term;
}

void raft_compact(struct raft *r, raft_index_t index)
{
    if (index > r->snap_index)
        index = r->snap_index;
    core_log_compact(&r->log, index);
    core_conf_compacted(r, r->log.offset);
}

void core_snap_free_chunks(struct raft *r)
{
    for (uint32_t i = 0; i < r->n_chunks; i++)
        free(r->chunks[i].data);
    r->n_chunks = 0;
}

raft_index_t raft_snapshot_index(const struct raft *r) { return r->snap_index; }
raft_index_t raft_first_index(const struct raft *r) { return r->log.offset + 1; }
