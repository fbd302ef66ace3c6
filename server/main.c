/* server/main.c - raft_server: parses the command line, opens the node from this
 * server's files (node_open), starts the threads, and shuts down cleanly on SIGINT /
 * SIGTERM. Runs on the main thread, which then only waits for the stop signal. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "net/client_loop.h"
#include "net/watch_loop.h"
#include "net/listener.h"
#include "net/replicator.h"
#include "node/node.h"
#include "kv/kv_history.h"
#include "storage/snapshot.h"

#define ERR_LEN 512
#define LISTEN_BACKLOG 128

struct options {
    struct node_config cfg;      /* what node_open needs */
    bool campaign;               /* the start flag True */
};

/* A client request (key + value + the CLIENT_REQ fields) must fit in a frame. */
#define CLIENT_REQ_OVERHEAD 64u

static void print_usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s NAME HOST PORT [True|False] [--join] [--dir DIR] [--election-min-ms N]\n"
            "          [--election-max-ms N] [--heartbeat-ms N] [--cluster-id ID]\n"
            "          [--max-frame-bytes N] [--max-key-bytes N] [--max-value-bytes N]\n"
            "          [--max-clients N] [--client-idle-timeout-ms N] [--frame-timeout-ms N]\n"
            "          [--max-peer-queue-bytes N] [--snapshot-entries N] [--snapshot-bytes N]\n"
            "          [--snapshot-keep N] [--snapshot-fork True|False] [--disk-stall-ms N]\n"
            "          [--watch-history N] [--watch-history-bytes N] [--max-watchers N]\n"
            "       %s --dump-snapshot FILE\n"
            "       %s -h|--help\n"
            "  NAME must be listed in DIR/server_registry.txt (DIR defaults to logs).\n"
            "  True: start an election at once; False (default): wait for the timeout.\n"
            "  --join: a new server for a running cluster; it waits for `raft_client add`.\n"
            "  A leader whose disk does not answer for --disk-stall-ms (default %u) hands\n"
            "  leadership to a follower.\n"
            "  Election timeout defaults to 150..300 ms, heartbeat to 50 ms.\n"
            "  The limits and their defaults are in README.md (Options).\n"
            "  A snapshot is taken every --snapshot-entries applied entries (default %u) or\n"
            "  --snapshot-bytes of commands (default %llu; 0 = no limit); --snapshot-keep\n"
            "  entries (default %u) stay in memory behind it for slow followers. It is\n"
            "  written by a forked child; --snapshot-fork False serializes it in memory.\n"
            "  --dump-snapshot prints a snapshot file and exits (1 if it is corrupt).\n"
            "  Watchers resume from the last --watch-history changes (default %u), at most\n"
            "  --watch-history-bytes of them (default %llu); --max-watchers (default %u)\n"
            "  watch streams are served at once, each also a client connection.\n",
            prog, prog, prog, NODE_DISK_STALL_MS_DEFAULT, NODE_SNAPSHOT_ENTRIES_DEFAULT,
            (unsigned long long)NODE_SNAPSHOT_BYTES_DEFAULT, NODE_SNAPSHOT_KEEP_DEFAULT,
            KV_HISTORY_EVENTS_DEFAULT, (unsigned long long)KV_HISTORY_BYTES_DEFAULT,
            NODE_DEFAULT_MAX_WATCHERS);
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
    if (!strcmp(opt, "--max-watchers"))
        return parse_u32(val, 0, 1000000, &l->max_watchers);
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
        o->cfg.dir = val;
        return val[0] != '\0';
    }
    if (!strcmp(opt, "--election-min-ms"))
        return parse_u32(val, 1, 3600000, &o->cfg.election_min_ms);
    if (!strcmp(opt, "--election-max-ms"))
        return parse_u32(val, 1, 3600000, &o->cfg.election_max_ms);
    if (!strcmp(opt, "--heartbeat-ms"))
        return parse_u32(val, 1, 3600000, &o->cfg.heartbeat_ms);
    if (!strcmp(opt, "--cluster-id")) {
        o->cfg.has_cluster_id = true;
        return parse_u64(val, 0, UINT64_MAX, &o->cfg.cluster_id);
    }
    if (!strcmp(opt, "--snapshot-entries"))
        return parse_u64(val, 0, UINT64_MAX, &o->cfg.snap.entries);
    if (!strcmp(opt, "--snapshot-bytes"))
        return parse_u64(val, 0, UINT64_MAX, &o->cfg.snap.bytes);
    if (!strcmp(opt, "--snapshot-keep"))
        return parse_u64(val, 0, UINT64_MAX, &o->cfg.snap.keep);
    if (!strcmp(opt, "--snapshot-fork"))
        return parse_flag(val, &o->cfg.snap.fork);
    if (!strcmp(opt, "--disk-stall-ms"))
        return parse_u32(val, 0, 3600000, &o->cfg.disk_stall_ms);
    if (!strcmp(opt, "--watch-history"))
        return parse_u32(val, 1, 100000000, &o->cfg.watch_history);
    if (!strcmp(opt, "--watch-history-bytes"))
        return parse_u64(val, 4096, UINT64_MAX / 2, &o->cfg.watch_history_bytes);
    return parse_limit(&o->cfg.limits, opt, val);
}

static bool parse_positional(struct options *o, int pos, const char *arg)
{
    uint32_t port;
    switch (pos) {
    case 0: o->cfg.name = arg; return arg[0] != '\0';
    case 1: o->cfg.host = arg; return arg[0] != '\0';
    case 2:
        if (!parse_u32(arg, 1, 65535, &port))
            return false;
        o->cfg.port = (uint16_t)port;
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
    *o = (struct options){ .cfg = { .dir = "logs", .election_min_ms = 150,
                                    .election_max_ms = 300, .heartbeat_ms = 50,
                                    .disk_stall_ms = NODE_DISK_STALL_MS_DEFAULT,
                                    .watch_history = KV_HISTORY_EVENTS_DEFAULT,
                                    .watch_history_bytes = KV_HISTORY_BYTES_DEFAULT } };
    node_limits_default(&o->cfg.limits);
    node_snap_opts_default(&o->cfg.snap);
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_usage(stdout, argv[0]);
            exit(0);
        }
        if (!strcmp(argv[i], "--join")) {
            o->cfg.join = true;
        } else if (!strncmp(argv[i], "--", 2)) {
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
    if (o->cfg.election_min_ms >= o->cfg.election_max_ms)
        usage(argv[0], "--election-min-ms (%u) must be below --election-max-ms (%u)",
              (unsigned)o->cfg.election_min_ms, (unsigned)o->cfg.election_max_ms);
    const struct node_limits *l = &o->cfg.limits;
    if ((uint64_t)l->max_key_bytes + l->max_value_bytes + CLIENT_REQ_OVERHEAD > l->max_frame_bytes)
        usage(argv[0], "--max-frame-bytes (%u) must be at least --max-key-bytes (%u) + "
              "--max-value-bytes (%u) + %u, so that every request within them fits a frame",
              (unsigned)l->max_frame_bytes, (unsigned)l->max_key_bytes,
              (unsigned)l->max_value_bytes, CLIENT_REQ_OVERHEAD);
}

static int open_listener(struct node *n, const struct node_config *cfg)
{
    char err[ERR_LEN];
    int fd = net_listen(cfg->host, cfg->port, LISTEN_BACKLOG, err, sizeof(err));
    if (fd < 0)
        node_fatal(n, "cannot listen on %s:%u: %s", cfg->host, (unsigned)cfg->port, err);
    node_log(n, "listening on %s:%u", cfg->host, (unsigned)cfg->port);
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

/* The replicators first (they fill in n->transport), then the node's own threads, then
 * the watch loop, the client loop and the listener that feed it. */
static void start_threads(struct node *n, struct listener *l, int listen_fd, bool campaign)
{
    if (replicators_start(n) != RK_OK || node_start(n) != RK_OK ||
        watch_loop_start(n) != RK_OK || client_loop_start(n) != RK_OK ||
        listener_start(l, n, listen_fd) != RK_OK)
        node_fatal(n, "cannot start the server threads");
    if (!campaign)
        return;
    pthread_mutex_lock(&n->mu);
    node_campaign(n);
    pthread_mutex_unlock(&n->mu);
}

/* In the reverse order: nothing new comes in, clients are answered, the node stops (no
 * send token is held after it), then the replicators close the peer links. */
static void stop_threads(struct node *n, struct listener *l)
{
    listener_stop(l);
    client_loop_stop(n);
    watch_loop_stop(n);
    node_stop(n);
    replicators_stop(n);
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
    char err[ERR_LEN] = "";
    if (node_open(&node, &o.cfg, err, sizeof(err)) != RK_OK)
        node_fatal_as(o.cfg.name, "%s", err);
    int listen_fd = open_listener(&node, &o.cfg);
    struct listener listener;
    start_threads(&node, &listener, listen_fd, o.campaign);

    wait_for_stop_signal(&stop_signals);
    node_hand_off(&node, o.cfg.election_max_ms);
    node_log(&node, "shutting down");
    stop_threads(&node, &listener);
    node_close(&node);
    node_log(&node, "stopped");
    return 0;
}
