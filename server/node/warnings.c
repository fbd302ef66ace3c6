/* server/node/warnings.c - log lines an operator can act on (issue 18): an fdatasync of
 * the log slower than 100 ms, applying one batch slower than 100 ms, a follower further
 * behind than --snapshot-keep, the data directory's disk over 90% full. Each says what was
 * measured and what it likely means, at most once per kind (per follower for the lag)
 * every 30 s, with the count of those held back meanwhile. Which thread measures what:
 * the io thread the fdatasync and the disk, whichever thread applies the batch, the timer
 * the lag. */
#include <inttypes.h>
#include <stdio.h>

#include "../../common/clock.h"
#include "../storage/snapshot.h"
#include "../storage/storage_io.h"
#include "node.h"

/* " (N more since the last such line)", or "" when none was held back. */
static const char *held_note(unsigned long held, char *buf, size_t len)
{
    if (held == 0)
        return "";
    snprintf(buf, len, " (%lu more since the last such line)", held);
    return buf;
}

void node_warn_sync(struct node *n, uint64_t took_ms)
{
    unsigned long held;
    char note[64];
    if (took_ms <= NODE_WARN_SYNC_MS ||
        !rk_rate_limit_pass(&n->warn.sync, rk_clock_ms(), NODE_WARN_PERIOD_MS, &held))
        return;
    node_log(n, "warning: an fdatasync of the log took %" PRIu64 " ms (over %d ms): the disk "
             "is slow or overloaded, and every write waits for it; check the disk's latency "
             "(iostat) and what else writes to it%s", took_ms, NODE_WARN_SYNC_MS,
             held_note(held, note, sizeof(note)));
}

void node_warn_apply(struct node *n, uint64_t entries, uint64_t took_ms)
{
    unsigned long held;
    char note[64];
    if (took_ms <= NODE_WARN_APPLY_MS ||
        !rk_rate_limit_pass(&n->warn.apply, rk_clock_ms(), NODE_WARN_PERIOD_MS, &held))
        return;
    node_log(n, "warning: applying %" PRIu64 " entries took %" PRIu64 " ms (over %d ms): the "
             "machine is short of CPU or memory (swapping?), or the values are very large; "
             "every client waits meanwhile%s", entries, took_ms, NODE_WARN_APPLY_MS,
             held_note(held, note, sizeof(note)));
}

/* One follower's lag, if it has not reached, less --snapshot-keep, what was committed a
 * look ago (so that entries merely in flight never count). */
static void warn_lag_of(struct node *n, int id, raft_index_t was_committed, uint64_t now)
{
    raft_index_t match = raft_peer_match(n->raft, id);
    uint64_t keep = n->snap.opts.keep;
    unsigned long held;
    char note[64];
    if (match + keep >= was_committed ||
        !rk_rate_limit_pass(&n->warn.lag[id], now, NODE_WARN_PERIOD_MS, &held))
        return;
    node_log(n, "warning: follower %s is %" PRIu64 " entries behind (it has %" PRIu64 " of %"
             PRIu64 " committed a second ago; over --snapshot-keep %" PRIu64 "): it will need "
             "a snapshot to catch up; check that it runs, and that its disk and network keep "
             "up%s", node_name_of(n, id), was_committed - match, match, was_committed, keep,
             held_note(held, note, sizeof(note)));
}

void node_warn_lag(struct node *n, uint64_t now)
{
    if (now < n->warn.next_lag_ms)
        return;
    n->warn.next_lag_ms = now + NODE_WARN_LAG_EVERY_MS;
    raft_index_t was_committed = n->warn.lag_commit;
    n->warn.lag_commit = raft_commit_index(n->raft);
    if (raft_role(n->raft) != RAFT_LEADER)
        return;
    for (int id = 0; id < REGISTRY_MAX_SERVERS; id++)
        if (n->peers[id].member && id != raft_self(n->raft))
            warn_lag_of(n, id, was_committed, now);
}

/* How full the disk holding dir is, in percent as df counts it (of what an unprivileged
 * writer may use); -1 if unknown. */
static int disk_use_pct(const char *dir)
{
    struct statvfs st;
    if (storage_io_statvfs(dir, &st) != 0)
        return -1;
    uint64_t used = (uint64_t)st.f_blocks - st.f_bfree, usable = used + st.f_bavail;
    return usable == 0 ? -1 : (int)(used * 100 / usable + (used * 100 % usable != 0));
}

void node_warn_disk(struct node *n)
{
    int pct = disk_use_pct(n->snap.paths->dir);
    unsigned long held;
    char note[64];
    if (pct <= NODE_WARN_DISK_PCT ||
        !rk_rate_limit_pass(&n->warn.disk, rk_clock_ms(), NODE_WARN_PERIOD_MS, &held))
        return;
    node_log(n, "warning: the disk of %s is %d%% full (over %d%%): free space soon; on a full "
             "disk this server cannot persist its log, and stops rather than acknowledge a "
             "write it has not kept%s",
             n->snap.paths->dir, pct, NODE_WARN_DISK_PCT, held_note(held, note, sizeof(note)));
}
