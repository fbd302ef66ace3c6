/* server/node/snapshotter.c - taking snapshots without stalling writes (Raft paper §7):
 * under the lock the node forks; the child writes the state machine (its copy-on-write
 * view of the map) to NAME_snapshot.tmp while the parent goes on serving. The snapshot
 * thread waits for the child, installs the file (rename, directory fsync) and only then
 * lets the log prefix go: storage compaction by the io thread, in-memory compaction of
 * the core. Without fork (ENOMEM) the state is serialized in memory under the lock. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../common/crc32.h"
#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../kv/kv.h"
#include "../storage/snapshot.h"
#include "node.h"

#define SNAP_ERR_LEN 512
#define SNAP_RETRY_MS 1000u           /* after a failed snapshot */
#define CHILD_BUF_BYTES (1u << 20)    /* the forked writer's output buffer */
#define CHILD_FD 3                    /* the child keeps only this fd (and 0-2) */
#define ENTRY_OVERHEAD_BYTES 64u      /* a log line's bytes besides key and value, roughly */

void node_snap_opts_default(struct node_snap_opts *o)
{
    *o = (struct node_snap_opts){ .entries = NODE_SNAPSHOT_ENTRIES_DEFAULT,
                                  .bytes = NODE_SNAPSHOT_BYTES_DEFAULT,
                                  .keep = NODE_SNAPSHOT_KEEP_DEFAULT, .fork = true };
}

int node_snap_init(struct node *n, const char *dir)
{
    struct node_snap *s = &n->snap;
    node_snap_opts_default(&s->opts);
    s->fd = -1;
    if (pthread_mutex_init(&s->file_mu, NULL) != 0 || node_cond_init(&s->cond) != RK_OK)
        return RK_ERR_NOMEM;
    s->paths = malloc(sizeof(*s->paths));
    s->meta = malloc(sizeof(*s->meta));
    s->child_buf = malloc(CHILD_BUF_BYTES);
    if (s->paths == NULL || s->meta == NULL || s->child_buf == NULL)
        return RK_ERR_NOMEM;
    return snapshot_paths_init(s->paths, dir, n->name);
}

void node_snap_free(struct node *n)
{
    free(n->snap.paths);
    free(n->snap.meta);
    free(n->snap.child_buf);
    free(n->snap.image);
    n->snap.paths = NULL;
    n->snap.meta = NULL;
    n->snap.child_buf = NULL;
    n->snap.image = NULL;
}

/* ---------- starting a snapshot (under mu) ---------- */

/* The forked child: only async-signal-safe calls. It drops every inherited fd but the
 * temp file (sockets, the log's lock), dies with its parent, writes and exits. */
static void child_main(struct node *n, int fd, pid_t parent) __attribute__((noreturn));
static void child_main(struct node *n, int fd, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(ECHILD);
    if (fd != CHILD_FD && dup2(fd, CHILD_FD) < 0)
        _exit(EBADF);
    close_range(CHILD_FD + 1, ~0u, 0);
    int rc = snapshot_write_kv(CHILD_FD, n->snap.meta, n->kv, n->snap.child_buf,
                               CHILD_BUF_BYTES);
    _exit(rc == 0 ? 0 : rc > 0 && rc < 126 ? rc : EIO);
}

/* Forks the writer (which gets fd; the parent's copy is closed). 0 or fork's errno. */
static int fork_writer(struct node *n, int fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_main(n, fd, parent);
    if (pid < 0)
        return errno;
    close(fd);
    n->snap.child = pid;
    return 0;
}

/* Without fork: the whole file in memory, under the lock (a longer stall). */
static bool serialize_in_memory(struct node *n, int fd, int fork_errno)
{
    struct node_snap *s = &n->snap;
    if (fork_errno != 0)
        node_log(n, "snapshot: fork failed (%s); serializing the state in memory under the "
                 "lock", strerror(fork_errno));
    if (snapshot_serialize(s->meta, n->kv, &s->image, &s->image_len) != RK_OK) {
        node_log(n, "snapshot: out of memory serializing the state; will retry");
        close(fd);
        return false;
    }
    s->child = 0;
    s->fd = fd;
    return true;
}

static void start_snapshot(struct node *n, raft_index_t index, raft_term_t term)
{
    struct node_snap *s = &n->snap;
    uint64_t t0 = rk_clock_us();
    char err[SNAP_ERR_LEN];
    snapshot_meta_init(s->meta, index, term, raft_membership_at(n->raft, index));
    int fd = snapshot_tmp_create(s->paths, err, sizeof(err));
    crc32_update(0, NULL, 0); /* the CRC table exists before the fork: the child uses it */
    int fork_errno = fd >= 0 && s->opts.fork ? fork_writer(n, fd) : 0;
    bool forked = fd >= 0 && s->opts.fork && fork_errno == 0;
    if (fd < 0 || (!forked && !serialize_in_memory(n, fd, fork_errno))) {
        if (fd < 0)
            node_log(n, "snapshot: %s; will retry", err);
        unlink(s->paths->tmp);
        s->retry_ms = rk_clock_ms() + SNAP_RETRY_MS;
        return;
    }
    s->stall_us = rk_clock_us() - t0;
    s->running = s->handed_over = true;
    s->index = index;
    s->term = term;
    s->bytes_at_start = s->bytes_since;
    s->started_ms = rk_clock_ms();
    node_log(n, "snapshot at index %" PRIu64 " (term %" PRIu64 ", %zu keys) started; the "
             "lock was held %" PRIu64 " us to %s", index, term, kv_count(n->kv), s->stall_us,
             s->child > 0 ? "fork the writer" : "serialize the state");
    pthread_cond_signal(&s->cond);
}

/* 0..3, the same for a server at every start, differing between most servers. */
static uint64_t spread_of(const char *name)
{
    uint64_t sum = 0;
    for (const char *c = name; *c != '\0'; c++)
        sum += (unsigned char)*c;
    return sum % 4;
}

void node_snap_maybe_start(struct node *n)
{
    struct node_snap *s = &n->snap;
    if (!s->started || s->running || n->shutdown || n->applied <= s->base)
        return;
    uint64_t since = n->applied - s->base;
    bool due = (s->opts.entries > 0 && since >= s->opts.entries) ||
               (s->opts.bytes > 0 && s->bytes_since >= s->opts.bytes);
    /* A big state and few changes: rewriting the whole state every opts.entries would
     * write far more than the log it replaces (1M keys: a 111 MB file per 10,000
     * entries). So wait until the log since the last snapshot holds a share of its size:
     * the disk then holds about two snapshots plus under half of one in log, under 3x
     * the live data, and the write cost per entry stays bounded (etcd and Redis bound it
     * the same way). The share is 1/4..7/16 by server, so that servers applying the same
     * entries do not all flush a snapshot at once on a shared disk. */
    uint64_t share = s->last_file_bytes / 4 + s->last_file_bytes / 16 * spread_of(n->name);
    if (due && s->bytes_since < share)
        due = false;
    if (!due || rk_clock_ms() < s->retry_ms)
        return;
    const struct raft_entry *e = raft_entry_at(n->raft, n->applied);
    if (e == NULL)
        return; /* applied came from an installed snapshot: nothing new to save */
    start_snapshot(n, n->applied, e->term);
}

void node_snap_cancel(struct node *n)
{
    if (n->snap.running && n->snap.child > 0)
        kill(n->snap.child, SIGKILL); /* not reaped yet, so the pid is still ours */
}

/* ---------- finishing it (snapshot thread, without mu) ---------- */

int node_snap_install_file(struct node *n, raft_index_t index, bool from_recv,
                           bool *installed, char *err, size_t errlen)
{
    struct node_snap *s = &n->snap;
    pthread_mutex_lock(&s->file_mu);
    *installed = index > s->on_disk;
    int rc = RK_OK;
    if (*installed) {
        rc = snapshot_install_file(s->paths, from_recv, err, errlen);
        if (rc == RK_OK)
            s->on_disk = index;
    } else {
        snprintf(err, errlen, "snapshot %" PRIu64 " is not newer than the one on disk (%"
                 PRIu64 ")", index, s->on_disk);
    }
    if (rc != RK_OK || !*installed)
        unlink(from_recv ? s->paths->recv : s->paths->tmp);
    pthread_mutex_unlock(&s->file_mu);
    return rc;
}

struct kv *node_snap_adopt(struct node *n, raft_index_t index, uint64_t file_bytes,
                           struct kv *kv)
{
    struct kv *old = n->kv;
    n->kv = kv;
    kv_set_now(kv, rk_clock_ms()); /* its keys' deadlines count from now (kv.h) */
    node_watch_attach(n, kv, index); /* its changes up to index were never seen here */
    n->applied = index;
    n->snap.base = index;
    n->snap.bytes_since = 0;
    n->snap.last_file_bytes = file_bytes;
    return old;
}

/* What the snapshot thread took over from start_snapshot. */
struct snap_job {
    raft_index_t index;
    raft_term_t term;
    pid_t child;
    int fd;
    uint8_t *image;
    size_t image_len;
    uint64_t file_bytes;   /* the size of the written snapshot */
};

static int wait_child(pid_t child, char *err, size_t errlen)
{
    int status = 0;
    pid_t r;
    do {
        r = waitpid(child, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        snprintf(err, errlen, "waitpid: %s", strerror(errno));
        return RK_ERR_IO;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return RK_OK;
    if (WIFEXITED(status))
        snprintf(err, errlen, "the writer failed: %s", strerror(WEXITSTATUS(status)));
    else
        snprintf(err, errlen, "the writer was killed by signal %d", WTERMSIG(status));
    return RK_ERR_IO;
}

static int write_image(struct snap_job *j, char *err, size_t errlen)
{
    int e = snapshot_write_bytes(j->fd, j->image, j->image_len);
    close(j->fd);
    if (e != 0)
        snprintf(err, errlen, "writing the snapshot: %s", strerror(e));
    return e == 0 ? RK_OK : RK_ERR_IO;
}

/* The file is complete and synced: make it NAME_snapshot (*installed: unless the one
 * there is newer). */
static int finish_job(struct node *n, struct snap_job *j, bool *installed, char *err,
                      size_t errlen)
{
    *installed = false;
    int rc = j->child > 0 ? wait_child(j->child, err, errlen) : write_image(j, err, errlen);
    struct stat st;
    if (rc == RK_OK && stat(n->snap.paths->tmp, &st) == 0)
        j->file_bytes = (uint64_t)st.st_size;
    if (rc != RK_OK) {
        unlink(n->snap.paths->tmp);
        return rc;
    }
    return node_snap_install_file(n, j->index, false, installed, err, errlen);
}

/* Under mu, once NAME_snapshot holds the new snapshot: only now may the log prefix go
 * (§7). Storage is compacted by the io thread (which owns it); the core drops its
 * in-memory prefix but keeps opts.keep entries for followers that are slightly behind. */
static void snapshot_durable(struct node *n, const struct snap_job *j)
{
    struct node_snap *s = &n->snap;
    if (j->index > s->compact_to)
        s->compact_to = j->index;
    pthread_cond_signal(&n->io_cond);
    raft_snapshot_saved(n->raft, j->index, j->term);
    raft_compact(n->raft, j->index > s->opts.keep ? j->index - s->opts.keep : 0);
    s->last_file_bytes = j->file_bytes;
    if (j->index > s->base) {
        s->base = j->index;
        s->bytes_since -= s->bytes_at_start < s->bytes_since ? s->bytes_at_start
                                                              : s->bytes_since;
    }
    node_log(n, "snapshot at index %" PRIu64 " done in %" PRIu64 " ms: %" PRIu64 " bytes "
             "(lock held %" PRIu64 " us to start it); the log up to %" PRIu64 " will be "
             "dropped", j->index, rk_clock_ms() - s->started_ms, j->file_bytes, s->stall_us,
             j->index);
    node_after_step(n, NULL);
}

/* Under mu: takes the started snapshot over from start_snapshot. */
static struct snap_job take_job(struct node_snap *s)
{
    struct snap_job j = { .index = s->index, .term = s->term, .child = s->child,
                          .fd = s->fd, .image = s->image, .image_len = s->image_len };
    s->image = NULL;
    s->fd = -1;
    s->handed_over = false;
    return j;
}

/* Called with mu held; returns with it held. */
static void run_job(struct node *n)
{
    struct node_snap *s = &n->snap;
    struct snap_job j = take_job(s);
    pthread_mutex_unlock(&n->mu);
    char err[SNAP_ERR_LEN] = "";
    bool installed;
    int rc = finish_job(n, &j, &installed, err, sizeof(err));
    free(j.image);
    pthread_mutex_lock(&n->mu);
    s->running = false;
    s->child = 0;
    if (rc == RK_OK && installed) {
        snapshot_durable(n, &j);
    } else if (rc == RK_OK) {
        node_log(n, "snapshot at index %" PRIu64 " dropped: %s", j.index, err);
    } else if (!n->shutdown) {
        node_log(n, "snapshot at index %" PRIu64 " failed: %s; retrying in %u ms", j.index,
                 err, SNAP_RETRY_MS);
        s->retry_ms = rk_clock_ms() + SNAP_RETRY_MS;
    }
}

static void *snap_main(void *arg)
{
    struct node *n = arg;
    node_name_thread("snap", -1);
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->shutdown && !n->snap.handed_over)
            pthread_cond_wait(&n->snap.cond, &n->mu);
        if (n->snap.handed_over)
            run_job(n); /* even at shutdown: the child (killed) must be reaped */
        else if (n->shutdown)
            break;
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int node_snap_start_thread(struct node *n)
{
    if (pthread_create(&n->snap.thread, NULL, snap_main, n) != 0)
        return RK_ERR_NOMEM;
    n->snap.started = true;
    return RK_OK;
}
