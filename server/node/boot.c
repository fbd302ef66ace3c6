/* server/node/boot.c - opening a node from this server's files before any thread runs:
 * the registry, the log and the hard state (storage/), the snapshot that the state
 * machine starts from (Raft paper §7), and the Raft core with the log after it. Every
 * problem is returned with its reason; the caller (server/main.c) stops on it. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../kv/kv.h"
#include "../storage/snapshot.h"
#include "../storage/storage.h"
#include "node.h"

#define BOOT_PATH_MAX 4096
/* File descriptors besides the connections: files, listener, outgoing peer links... */
#define FD_RESERVE 64u

/* Loads DIR/server_registry.txt, the first configuration of a new cluster, and finds this
 * server in it (*self: its line, or -1). */
static int load_registry(const struct node_config *cfg, struct registry *reg, int *self,
                         char *err, size_t errlen)
{
    char path[BOOT_PATH_MAX];
    snprintf(path, sizeof(path), "%s/server_registry.txt", cfg->dir);
    int rc = registry_load(path, reg, err, errlen);
    if (rc != RK_OK)
        return rc;
    *self = registry_find(reg, cfg->name);
    if (*self < 0)
        return RK_OK;
    const struct registry_server *s = &reg->servers[*self];
    if (strcmp(s->host, cfg->host) != 0 || s->port != cfg->port)
        node_log_as(cfg->name, 0, "warning: %s is %s:%u in %s, but was started on %s:%u; "
                    "listening on %s:%u", cfg->name, s->host, (unsigned)s->port, path,
                    cfg->host, (unsigned)cfg->port, cfg->host, (unsigned)cfg->port);
    return RK_OK;
}

/* The stored vote as a node id of ms (RAFT_NO_NODE if none). A vote for a server ms
 * does not know (it was removed since) still counts as cast: RAFT_VOTE_ELSEWHERE, and the
 * name is kept to be written again. */
static int vote_id(struct node *n, const struct membership *ms, const char *vote)
{
    if (vote[0] == '\0')
        return RAFT_NO_NODE;
    const struct member *m = membership_by_name(ms, vote);
    if (m != NULL)
        return m->id;
    snprintf(n->vote_elsewhere, sizeof(n->vote_elsewhere), "%s", vote);
    return RAFT_VOTE_ELSEWHERE;
}

/* DIR/NAME_joined: this server joined a running cluster (--join), so the registry is not
 * its first configuration: it knows none but what its log and snapshot say. Created once,
 * durably; true if it exists. */
static int joined_marker(const struct node_config *cfg, bool *joined, char *err, size_t errlen)
{
    char path[BOOT_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s_joined", cfg->dir, cfg->name);
    *joined = access(path, F_OK) == 0;
    if (*joined || !cfg->join)
        return RK_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || fsync(fd) != 0) {
        if (fd >= 0)
            close(fd);
        return rk_fail_io(err, errlen, path, "create");
    }
    close(fd);
    int dir = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0 || fsync(dir) != 0) {
        if (dir >= 0)
            close(dir);
        return rk_fail_io(err, errlen, cfg->dir, "fsync");
    }
    close(dir);
    *joined = true;
    return RK_OK;
}

/* Each client connection is a file descriptor, and so is each connection still waiting
 * for its HELLO (up to --max-clients of each): raise the soft limit as far as the hard
 * one allows, and if that is not enough, serve fewer clients rather than fail accept(). */
static void fit_fd_limit(struct node *n)
{
    struct node_limits *l = &n->limits;
    rlim_t need = (rlim_t)l->max_clients * 2 + (rlim_t)n->reg.n * 2 + FD_RESERVE;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rlim_t spare = rl.rlim_cur > FD_RESERVE + (rlim_t)n->reg.n * 2
                       ? rl.rlim_cur - FD_RESERVE - (rlim_t)n->reg.n * 2 : 2;
    uint32_t fit = spare / 2 > 0 ? (uint32_t)(spare / 2) : 1;
    node_log(n, "warning: the file descriptor limit (%llu) is too low for --max-clients %u; "
             "serving at most %u clients (raise ulimit -n)", (unsigned long long)rl.rlim_cur,
             (unsigned)l->max_clients, (unsigned)fit);
    l->max_clients = fit;
}

/* Raft paper §7: the state machine starts from NAME_snapshot, if there is one (a corrupt
 * one is an error: it is never used), with applied = its index; the log keeps only the
 * entries after it (Figure 13, step 7, if they do not match). Leftover temp files of an
 * interrupted snapshot write or transfer are removed first. */
static int restore_snapshot(struct node *n, const struct node_config *cfg,
                            struct storage_loaded *ld, struct snapshot_meta *m, char *err,
                            size_t errlen)
{
    if (node_snap_init(n, cfg->dir) != RK_OK)
        return rk_fail(err, errlen, RK_ERR_NOMEM, "%s/%s_snapshot: path too long, or out "
                       "of memory", cfg->dir, cfg->name);
    n->snap.opts = cfg->snap;
    snapshot_remove_leftovers(n->snap.paths);
    struct kv *kv = NULL;
    char why[BOOT_PATH_MAX / 4] = "";
    int rc = snapshot_load(n->snap.paths->file, m, &kv, why, sizeof(why));
    if (rc == RK_ERR_NOTFOUND) {
        memset(m, 0, sizeof(*m));
    } else if (rc != RK_OK) {
        return rk_fail(err, errlen, rc, "cannot load the snapshot: %s", why);
    } else {
        kv_free(node_snap_adopt(n, m->index, m->file_len, kv));
        n->snap.on_disk = m->index;
    }
    why[0] = '\0';
    rc = snapshot_align_log(n->storage, ld, m->index, m->term, why, sizeof(why));
    if (rc != RK_OK)
        return rk_fail(err, errlen, rc, "%s/%s_log.txt: %s", cfg->dir, cfg->name, why);
    if (why[0] != '\0')
        node_log(n, "%s/%s_log.txt: %s", cfg->dir, cfg->name, why);
    return RK_OK;
}

/* The configuration the log starts from (Raft thesis §4): the snapshot's, if there is
 * one; else the registry's, the first configuration of the cluster (none for a server that
 * joined a running one). Configuration entries in the log take effect after it. */
static void base_membership(const struct node *n, const struct snapshot_meta *snap,
                            bool joined, struct membership *out)
{
    if (snap->index > 0)
        *out = snap->conf;
    else if (joined)
        memset(out, 0, sizeof(*out));
    else
        membership_from_registry(&n->reg, out);
}

/* The configuration in effect once the loaded log is in: its last configuration entry's,
 * else base. RK_ERR_CORRUPT if that entry does not parse. */
static int loaded_membership(const struct storage_loaded *ld, const struct membership *base,
                             struct membership *out, char *err, size_t errlen)
{
    for (raft_index_t i = ld->n_entries; i > 0; i--) {
        const struct raft_entry *e = &ld->entries[i - 1];
        if (e->type == RAFT_ENTRY_CONFIG)
            return membership_decode(e->val, e->val_len, out, err, errlen);
    }
    *out = *base;
    return RK_OK;
}

/* The core's settings; members is the configuration the log starts from. */
static struct raft_config core_config(struct node *n, const struct node_config *cfg,
                                      const struct membership *members)
{
    struct raft_config rc = {
        .members = members,
        .self_name = n->name,
        .election_timeout_min_ms = cfg->election_min_ms,
        .election_timeout_max_ms = cfg->election_max_ms,
        .heartbeat_ms = cfg->heartbeat_ms,
        .pre_vote = true,
        .check_quorum = true,
        .seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16),
        .log_fn = node_log_core,
        .log_ctx = n,
    };
    return rc;
}

/* The core, with the log after the snapshot (which it takes from ld). */
static int create_core(struct node *n, const struct node_config *cfg,
                       struct storage_loaded *ld, const struct snapshot_meta *snap,
                       bool joined, char *err, size_t errlen)
{
    struct membership *base = malloc(sizeof(*base)), *now = malloc(sizeof(*now));
    int rc = base != NULL && now != NULL ? RK_OK : RK_ERR_NOMEM;
    if (rc == RK_OK) {
        base_membership(n, snap, joined, base);
        rc = loaded_membership(ld, base, now, err, errlen);
    }
    if (rc == RK_OK) {
        int voted_for = vote_id(n, now, ld->voted_for);
        struct raft_config cfg_core = core_config(n, cfg, base);
        n->raft = snap->index == 0
                  ? raft_new(&cfg_core, ld->term, voted_for, ld->entries, ld->n_entries,
                             rk_clock_ms())
                  : raft_new_from_snapshot(&cfg_core, snap->index, snap->term, ld->term,
                                           voted_for, ld->entries, ld->n_entries, rk_clock_ms());
    }
    free(base);
    free(now);
    if (rc != RK_OK)
        return rk_fail(err, errlen, rc, "the configuration in the log: %s",
                       rc == RK_ERR_NOMEM ? "out of memory" : err);
    if (n->raft == NULL)
        return rk_fail(err, errlen, RK_ERR_INVAL, "cannot create the Raft core (bad "
                       "configuration or out of memory)");
    ld->entries = NULL; /* owned by the core now */
    ld->n_entries = 0;
    if (snap->index > 0)
        raft_snapshot_saved(n->raft, snap->index, snap->term);
    n->seen_term = raft_term(n->raft);
    node_sync_peers(n);
    return RK_OK;
}

/* server_registry.txt is only the first configuration: once the configuration lives in
 * the log or a snapshot, say so if the registry disagrees (a server it lists that is not
 * a member, or at another address). */
static void check_registry(struct node *n, const struct membership *ms)
{
    for (int i = 0; i < n->reg.n; i++) {
        const struct registry_server *s = &n->reg.servers[i];
        const struct member *m = membership_by_name(ms, s->name);
        if (m != NULL && m->port == s->port && strcmp(m->host, s->host) == 0)
            continue;
        node_log(n, "warning: the registry lists %s at %s:%u, but the configuration in this "
                 "server's files has it %s; the configuration holds (the registry is only a "
                 "new cluster's first one)", s->name, s->host, (unsigned)s->port,
                 m == NULL ? "not as a member" : "at another address");
        return;
    }
}

/* The node's fields from cfg, then its files. */
static int open_files(struct node *n, const struct node_config *cfg, struct storage_loaded *ld,
                      struct snapshot_meta *snap, char *err, size_t errlen)
{
    atomic_store(&n->log_term, ld->term);
    n->limits = cfg->limits;
    if (cfg->has_cluster_id)
        n->cluster_id = cfg->cluster_id;
    fit_fd_limit(n);
    bool joined;
    int rc = joined_marker(cfg, &joined, err, errlen);
    if (rc == RK_OK && node_watch_init(n, cfg->watch_history, cfg->watch_history_bytes) != RK_OK)
        rc = rk_fail(err, errlen, RK_ERR_NOMEM, "out of memory for --watch-history %" PRIu32,
                     cfg->watch_history);
    if (rc == RK_OK)
        rc = restore_snapshot(n, cfg, ld, snap, err, errlen);
    if (rc == RK_OK && !joined && snap->index == 0 && ld->n_entries == 0 && ld->term == 0 &&
        registry_find(&n->reg, n->name) < 0)
        rc = rk_fail(err, errlen, RK_ERR_NOTFOUND, "%s: not in %s/server_registry.txt (to add "
                     "a server to a running cluster, start it with --join)", n->name, cfg->dir);
    raft_index_t n_entries = ld->n_entries;
    if (rc == RK_OK)
        rc = create_core(n, cfg, ld, snap, joined, err, errlen);
    if (rc != RK_OK)
        return rc;
    const struct membership *ms = raft_membership(n->raft, NULL);
    node_log(n, "starting: %d members (%d voters)%s, cluster id %016" PRIx64 ", snapshot at "
             "index %" PRIu64 " (%zu keys), loaded %" PRIu64 " entries after it, term %" PRIu64,
             ms->n, membership_voters(ms), raft_self(n->raft) == RAFT_NO_NODE
             ? ", this server not one of them (it waits for a leader to add it)" : "",
             n->cluster_id, snap->index, kv_count(n->kv), n_entries, raft_term(n->raft));
    check_registry(n, ms);
    return RK_OK;
}

int node_open(struct node *n, const struct node_config *cfg, char *err, size_t errlen)
{
    struct registry reg;
    int self;
    int rc = load_registry(cfg, &reg, &self, err, errlen);
    if (rc != RK_OK)
        return rc;
    struct storage_loaded loaded;
    memset(&loaded, 0, sizeof(loaded));
    struct storage *st = NULL;
    rc = storage_open(&st, cfg->dir, cfg->name, &loaded, err, errlen);
    if (rc != RK_OK)
        return rc;
    if (loaded.dropped_torn_tail)
        node_log_as(cfg->name, loaded.term, "warning: %s", err);
    if (node_init(n, &reg, cfg->name, st) != RK_OK)
        return rk_fail(err, errlen, RK_ERR_NOMEM, "out of memory");
    snprintf(n->listen_host, sizeof(n->listen_host), "%s", cfg->host);
    n->listen_port = cfg->port;
    n->disk_stall_ms = cfg->disk_stall_ms;
    struct snapshot_meta *snap = malloc(sizeof(*snap));
    rc = snap == NULL ? rk_fail(err, errlen, RK_ERR_NOMEM, "out of memory")
                      : open_files(n, cfg, &loaded, snap, err, errlen);
    free(snap);
    storage_loaded_free(&loaded);
    return rc;
}

void node_close(struct node *n)
{
    storage_close(n->storage);
    n->storage = NULL;
    node_snap_free(n);
    node_watch_free(n);
}
