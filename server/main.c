/* server/main.c - raft_server: parses the command line, loads the registry and this
 * server's files, starts the threads, and shuts down cleanly on SIGINT / SIGTERM. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/net.h"
#include "../common/registry.h"
#include "core/raft.h"
#include "kv/kv.h"
#include "net/client_loop.h"
#include "net/listener.h"
#include "node/node.h"
#include "storage/snapshot.h"
#include "storage/storage.h"

#define ERR_LEN 512
#define LISTEN_BACKLOG 128

struct options {
    const char *name;
    const char *host;
    uint16_t port;
    bool campaign;
    const char *dir;
    uint32_t election_min_ms, election_max_ms, heartbeat_ms;
    struct node_limits limits;
    bool has_cluster_id;
    uint64_t cluster_id;
    struct node_snap_opts snap;  /* --snapshot-entries, -bytes, -keep, -fork */
};

/* A client request (key + value + the CLIENT_REQ fields) must fit in a frame. */
#define CLIENT_REQ_OVERHEAD 64u
/* File descriptors besides the connections: files, listener, outgoing peer links... */
#define FD_RESERVE 64u

static void print_usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s NAME HOST PORT [True|False] [--dir DIR] [--election-min-ms N]\n"
            "          [--election-max-ms N] [--heartbeat-ms N] [--cluster-id ID]\n"
            "          [--max-frame-bytes N] [--max-key-bytes N] [--max-value-bytes N]\n"
            "          [--max-clients N] [--client-idle-timeout-ms N] [--frame-timeout-ms N]\n"
            "          [--max-peer-queue-bytes N] [--snapshot-entries N] [--snapshot-bytes N]\n"
            "          [--snapshot-keep N] [--snapshot-fork True|False]\n"
            "       %s --dump-snapshot FILE\n"
            "       %s -h|--help\n"
            "  NAME must be listed in DIR/server_registry.txt (DIR defaults to logs).\n"
            "  True: start an election at once; False (default): wait for the timeout.\n"
            "  Election timeout defaults to 150..300 ms, heartbeat to 50 ms.\n"
            "  The limits and their defaults are in README.md (Options).\n"
            "  A snapshot is taken every --snapshot-entries applied entries (default %u) or\n"
            "  --snapshot-bytes of commands (default %llu; 0 = no limit); --snapshot-keep\n"
            "  entries (default %u) stay in memory behind it for slow followers. It is\n"
            "  written by a forked child; --snapshot-fork False serializes it in memory.\n"
            "  --dump-snapshot prints a snapshot file and exits (1 if it is corrupt).\n",
            prog, prog, prog, NODE_SNAPSHOT_ENTRIES_DEFAULT,
            (unsigned long long)NODE_SNAPSHOT_BYTES_DEFAULT, NODE_SNAPSHOT_KEEP_DEFAULT);
}

/* Prints the problem (if any) and the usage on stderr, and exits 2. */
static void usage(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static void usage(const char *prog, const char *fmt, ...)
{
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s: ", prog);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    print_usage(stderr, prog);
    exit(2);
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    int base = !strncmp(s, "0x", 2) || !strncmp(s, "0X", 2) ? 16 : 10;
    const char *digits = base == 16 ? s + 2 : s;
    unsigned long long v = strtoull(digits, &end, base);
    bool digit = (digits[0] >= '0' && digits[0] <= '9') ||
                 (base == 16 && ((digits[0] | 0x20) >= 'a' && (digits[0] | 0x20) <= 'f'));
    if (!digit || *end != '\0' || errno != 0 || v < min || v > max)
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_size(const char *s, uint64_t min, uint64_t max, size_t *out)
{
    uint64_t v;
    if (!parse_u64(s, min, max, &v))
        return false;
    *out = (size_t)v;
    return true;
}

/* The resource limits of issue 7 (node.h, README "Options"). */
static bool parse_limit(struct node_limits *l, const char *opt, const char *val)
{
    if (!strcmp(opt, "--max-frame-bytes"))
        return parse_u32(val, 1024, PROTO_MAX_FRAME, &l->max_frame_bytes);
    if (!strcmp(opt, "--max-key-bytes"))
        return parse_u32(val, 1, PROTO_MAX_KEY, &l->max_key_bytes);
    if (!strcmp(opt, "--max-value-bytes"))
        return parse_u32(val, 0, PROTO_MAX_VALUE, &l->max_value_bytes);
    if (!strcmp(opt, "--max-clients"))
        return parse_u32(val, 1, 1000000, &l->max_clients);
    if (!strcmp(opt, "--client-idle-timeout-ms"))
        return parse_u32(val, 0, 86400000, &l->client_idle_ms);
    if (!strcmp(opt, "--frame-timeout-ms"))
        return parse_u32(val, 10, 3600000, &l->frame_timeout_ms);
    if (!strcmp(opt, "--max-peer-queue-bytes"))
        return parse_size(val, 4096, (uint64_t)SIZE_MAX / 2, &l->max_peer_queue_bytes);
    return false;
}

static bool parse_flag(const char *s, bool *out)
{
    if (!strcmp(s, "True") || !strcmp(s, "true") || !strcmp(s, "1"))
        *out = true;
    else if (!strcmp(s, "False") || !strcmp(s, "false") || !strcmp(s, "0"))
        *out = false;
    else
        return false;
    return true;
}

/* One --option VALUE; returns false if unknown or bad. */
static bool parse_option(struct options *o, const char *opt, const char *val)
{
    if (!strcmp(opt, "--dir")) {
        o->dir = val;
        return val[0] != '\0';
    }
    if (!strcmp(opt, "--election-min-ms"))
        return parse_u32(val, 1, 3600000, &o->election_min_ms);
    if (!strcmp(opt, "--election-max-ms"))
        return parse_u32(val, 1, 3600000, &o->election_max_ms);
    if (!strcmp(opt, "--heartbeat-ms"))
        return parse_u32(val, 1, 3600000, &o->heartbeat_ms);
    if (!strcmp(opt, "--cluster-id")) {
        o->has_cluster_id = true;
        return parse_u64(val, 0, UINT64_MAX, &o->cluster_id);
    }
    if (!strcmp(opt, "--snapshot-entries"))
        return parse_u64(val, 0, UINT64_MAX, &o->snap.entries);
    if (!strcmp(opt, "--snapshot-bytes"))
        return parse_u64(val, 0, UINT64_MAX, &o->snap.bytes);
    if (!strcmp(opt, "--snapshot-keep"))
        return parse_u64(val, 0, UINT64_MAX, &o->snap.keep);
    if (!strcmp(opt, "--snapshot-fork"))
        return parse_flag(val, &o->snap.fork);
    return parse_limit(&o->limits, opt, val);
}

static bool parse_positional(struct options *o, int pos, const char *arg)
{
    uint32_t port;
    switch (pos) {
    case 0: o->name = arg; return arg[0] != '\0';
    case 1: o->host = arg; return arg[0] != '\0';
    case 2:
        if (!parse_u32(arg, 1, 65535, &port))
            return false;
        o->port = (uint16_t)port;
        return true;
    case 3: return parse_flag(arg, &o->campaign);
    }
    return false;
}

static const char *positional_problem(int pos)
{
    switch (pos) {
    case 0: return "empty NAME";
    case 1: return "empty HOST";
    case 2: return "PORT must be a number 1..65535, not";
    case 3: return "the start flag must be True or False, not";
    }
    return "unexpected argument";
}

static void parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){ .dir = "logs", .election_min_ms = 150, .election_max_ms = 300,
                           .heartbeat_ms = 50 };
    node_limits_default(&o->limits);
    o->snap = (struct node_snap_opts){ .entries = NODE_SNAPSHOT_ENTRIES_DEFAULT,
                                       .bytes = NODE_SNAPSHOT_BYTES_DEFAULT,
                                       .keep = NODE_SNAPSHOT_KEEP_DEFAULT, .fork = true };
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_usage(stdout, argv[0]);
            exit(0);
        }
        if (!strncmp(argv[i], "--", 2)) {
            if (i + 1 >= argc)
                usage(argv[0], "missing value for %s", argv[i]);
            if (!parse_option(o, argv[i], argv[i + 1]))
                usage(argv[0], "bad option or value: %s %s", argv[i], argv[i + 1]);
            i++;
        } else if (!parse_positional(o, pos++, argv[i])) {
            usage(argv[0], "%s '%s'", positional_problem(pos - 1), argv[i]);
        }
    }
    if (pos < 3)
        usage(argv[0], pos == 0 ? NULL : "NAME, HOST and PORT are required");
    if (o->election_min_ms >= o->election_max_ms)
        usage(argv[0], "--election-min-ms (%u) must be below --election-max-ms (%u)",
              (unsigned)o->election_min_ms, (unsigned)o->election_max_ms);
    const struct node_limits *l = &o->limits;
    if ((uint64_t)l->max_key_bytes + l->max_value_bytes + CLIENT_REQ_OVERHEAD > l->max_frame_bytes)
        usage(argv[0], "--max-frame-bytes (%u) must be at least --max-key-bytes (%u) + "
              "--max-value-bytes (%u) + %u, so that every request within them fits a frame",
              (unsigned)l->max_frame_bytes, (unsigned)l->max_key_bytes,
              (unsigned)l->max_value_bytes, CLIENT_REQ_OVERHEAD);
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

/* Loads the registry and finds this server in it (exits 1 on error). */
static int load_registry(const struct options *o, struct registry *reg)
{
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof(path), "%s/server_registry.txt", o->dir);
    if (registry_load(path, reg, err, sizeof(err)) != RK_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    int self = registry_find(reg, o->name);
    if (self < 0) {
        fprintf(stderr, "%s: not in %s\n", o->name, path);
        exit(1);
    }
    const struct registry_server *s = &reg->servers[self];
    if (strcmp(s->host, o->host) != 0 || s->port != o->port)
        node_log_as(o->name, 0, "warning: %s is %s:%u in %s, but was started on %s:%u; "
                    "listening on %s:%u", o->name, s->host, (unsigned)s->port, path, o->host,
                    (unsigned)o->port, o->host, (unsigned)o->port);
    return self;
}

static struct storage *open_storage(const struct options *o, struct storage_loaded *loaded)
{
    struct storage *st = NULL;
    char err[ERR_LEN] = "";
    if (storage_open(&st, o->dir, o->name, loaded, err, sizeof(err)) != RK_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    if (loaded->dropped_torn_tail)
        node_log_as(o->name, loaded->term, "warning: %s", err);
    return st;
}

/* The stored vote as a node id (RAFT_NO_NODE if none); an unknown name exits 1. */
static int vote_id(const struct options *o, const struct registry *reg, const char *vote)
{
    if (vote[0] == '\0')
        return RAFT_NO_NODE;
    int id = registry_find(reg, vote);
    if (id < 0) {
        fprintf(stderr, "%s/%s_state: voted for '%s', which is not in the registry\n", o->dir,
                o->name, vote);
        exit(1);
    }
    return id;
}

static struct raft *create_core(struct node *n, const struct options *o,
                                struct storage_loaded *loaded, int voted_for,
                                const struct snapshot_meta *snap)
{
    const char *names[REGISTRY_MAX_SERVERS];
    for (int i = 0; i < n->reg.n && i < REGISTRY_MAX_SERVERS; i++)
        names[i] = n->reg.servers[i].name;
    struct raft_config cfg = {
        .node_names = names,
        .self = n->self,
        .n_nodes = n->reg.n,
        .election_timeout_min_ms = o->election_min_ms,
        .election_timeout_max_ms = o->election_max_ms,
        .heartbeat_ms = o->heartbeat_ms,
        .pre_vote = true,
        .check_quorum = true,
        .seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16),
        .log_fn = node_log_core,
        .log_ctx = n,
    };
    struct raft *r = snap->index == 0
                         ? raft_new(&cfg, loaded->term, voted_for, loaded->entries,
                                    loaded->n_entries, rk_clock_ms())
                         : raft_new_from_snapshot(&cfg, snap->index, snap->term, loaded->term,
                                                  voted_for, loaded->entries,
                                                  loaded->n_entries, rk_clock_ms());
    if (r == NULL) {
        fprintf(stderr, "cannot create the Raft core (bad configuration or out of memory)\n");
        exit(1);
    }
    loaded->entries = NULL; /* owned by the core now */
    loaded->n_entries = 0;
    return r;
}

/* Warns if the snapshot was taken with another configuration than the registry's. */
static void check_configuration(struct node *n, const struct snapshot_meta *m)
{
    bool same = m->n_servers == n->reg.n;
    for (int i = 0; same && i < m->n_servers; i++)
        same = strcmp(m->servers[i], n->reg.servers[i].name) == 0;
    if (!same)
        node_log(n, "warning: %s was taken with another server list than the registry's",
                 n->snap.paths->file);
}

/* Raft paper §7: the state machine starts from NAME_snapshot, if there is one (a corrupt
 * one stops the server: it is never used), with applied = its index; the log keeps only
 * the entries after it (Figure 13, step 7, if they do not match). Leftover temp files of
 * an interrupted snapshot write or transfer are removed first. */
static void restore_snapshot(struct node *n, const struct options *o, struct storage_loaded *ld,
                             struct snapshot_meta *m)
{
    char err[ERR_LEN] = "";
    if (node_snap_init(n, o->dir) != RK_OK) {
        fprintf(stderr, "%s/%s_snapshot: path too long, or out of memory\n", o->dir, o->name);
        exit(1);
    }
    n->snap.opts = o->snap;
    snapshot_remove_leftovers(n->snap.paths);
    struct kv *kv = NULL;
    int rc = snapshot_load(n->snap.paths->file, m, &kv, err, sizeof(err));
    if (rc == RK_ERR_NOTFOUND) {
        memset(m, 0, sizeof(*m));
    } else if (rc != RK_OK) {
        node_log(n, "FATAL: cannot load the snapshot: %s", err);
        exit(1);
    } else {
        kv_free(n->kv);
        n->kv = kv;
        n->applied = n->snap.base = n->snap.on_disk = m->index;
        n->snap.last_file_bytes = m->file_len;
        check_configuration(n, m);
    }
    if (snapshot_align_log(n->storage, ld, m->index, m->term, err, sizeof(err)) != RK_OK) {
        node_log(n, "FATAL: %s/%s_log.txt: %s", o->dir, o->name, err);
        exit(1);
    }
    if (err[0] != '\0')
        node_log(n, "%s/%s_log.txt: %s", o->dir, o->name, err);
}

/* Sets up the node from the registry and the stored state (exits 1 on any error). */
static void setup_node(struct node *n, const struct options *o)
{
    struct registry reg;
    int self = load_registry(o, &reg);
    struct storage_loaded loaded;
    memset(&loaded, 0, sizeof(loaded));
    struct storage *st = open_storage(o, &loaded);
    int voted_for = vote_id(o, &reg, loaded.voted_for);
    if (node_init(n, &reg, self, st) != RK_OK) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    atomic_store(&n->log_term, loaded.term);
    n->limits = o->limits;
    if (o->has_cluster_id)
        n->cluster_id = o->cluster_id;
    fit_fd_limit(n);
    struct snapshot_meta *snap = malloc(sizeof(*snap));
    if (snap == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    restore_snapshot(n, o, &loaded, snap);
    raft_index_t n_entries = loaded.n_entries;
    n->raft = create_core(n, o, &loaded, voted_for, snap);
    storage_loaded_free(&loaded);
    if (snap->index > 0)
        raft_snapshot_saved(n->raft, snap->index, snap->term);
    n->seen_term = raft_term(n->raft);
    node_log(n, "starting: %d servers in the registry, cluster id %016" PRIx64 ", snapshot "
             "at index %" PRIu64 " (%zu keys), loaded %" PRIu64 " entries after it, term %"
             PRIu64, n->reg.n, n->cluster_id, snap->index, kv_count(n->kv), n_entries,
             raft_term(n->raft));
    free(snap);
}

static int open_listener(struct node *n, const struct options *o)
{
    char err[ERR_LEN];
    int fd = net_listen(o->host, o->port, LISTEN_BACKLOG, err, sizeof(err));
    if (fd < 0) {
        node_log(n, "cannot listen on %s:%u: %s", o->host, (unsigned)o->port, err);
        exit(1);
    }
    node_log(n, "listening on %s:%u", o->host, (unsigned)o->port);
    return fd;
}

/* SIGINT/SIGTERM are taken by sigwait in main. SIGPIPE is blocked in every thread (a
 * closed socket is an error return), and so is SIGXFSZ (a file size limit makes the log
 * write fail with EFBIG, which the io thread reports, instead of killing the process). */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigset_t all = *set;
    sigaddset(&all, SIGPIPE);
    sigaddset(&all, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void wait_for_stop_signal(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
}

static void start_threads(struct node *n, struct listener *l, int listen_fd, bool campaign)
{
    if (node_start(n) != RK_OK || client_loop_start(n) != RK_OK ||
        listener_start(l, n, listen_fd) != RK_OK)
        node_fatal(n, "cannot start the server threads");
    if (!campaign)
        return;
    pthread_mutex_lock(&n->mu);
    node_log(n, "starting an election at once (start flag True)");
    raft_campaign(n->raft, rk_clock_ms());
    node_after_step(n);
    pthread_mutex_unlock(&n->mu);
}

/* raft_server --dump-snapshot FILE: prints it; exit 0, or 1 with the reason if corrupt. */
static int dump_snapshot(int argc, char **argv)
{
    if (argc != 3)
        usage(argv[0], "--dump-snapshot takes exactly one FILE");
    char err[ERR_LEN] = "";
    if (snapshot_dump(argv[2], stdout, err, sizeof(err)) != RK_OK) {
        fprintf(stderr, "%s\n", err[0] ? err : "cannot write the dump");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--dump-snapshot"))
        return dump_snapshot(argc, argv);
    struct options o;
    parse_args(argc, argv, &o);
    sigset_t stop_signals;
    block_signals(&stop_signals); /* before any thread or file write */
    static struct node node;
    setup_node(&node, &o);
    int listen_fd = open_listener(&node, &o);
    struct listener listener;
    start_threads(&node, &listener, listen_fd, o.campaign);

    wait_for_stop_signal(&stop_signals);
    node_log(&node, "shutting down");
    listener_stop(&listener);
    client_loop_stop(&node);
    node_stop(&node);
    storage_close(node.storage);
    node_snap_free(&node);
    node_log(&node, "stopped");
    return 0;
}
