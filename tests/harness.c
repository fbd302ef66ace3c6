/* tests/harness.c - the process harness behind the integration and stress tests: temp
 * dirs, free ports, fork+exec of raft_server, signals, STATUS polling and log tails. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"
#include "../tools/free_port.h"

#define STOP_WAIT_MS 5000
#define POLL_PAUSE_MS 30
#define STATUS_TRY_MS 300
#define MAX_FD_TO_CLOSE 4096

/* Clusters not yet destroyed, so an exit() in the middle of a test still cleans up. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct harness_cluster *live_clusters[16];
static bool atexit_registered;

/* ---- time ---- */

int64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *harness_server_bin(void)
{
    const char *p = getenv("RK_SERVER_BIN");
    return (p != NULL && p[0] != '\0') ? p : "./server/raft_server";
}

const char *harness_client_bin(void)
{
    const char *p = getenv("RK_CLIENT_BIN");
    return (p != NULL && p[0] != '\0') ? p : "./client/raft_client";
}

static bool any_running(const struct harness_cluster *c);

/* ---- the list of live clusters ---- */

static void live_remove(struct harness_cluster *c)
{
    pthread_mutex_lock(&live_mu);
    for (size_t k = 0; k < sizeof(live_clusters) / sizeof(live_clusters[0]); k++)
        if (live_clusters[k] == c)
            live_clusters[k] = NULL;
    pthread_mutex_unlock(&live_mu);
}

static void destroy_leftovers(void)
{
    for (size_t k = 0; k < sizeof(live_clusters) / sizeof(live_clusters[0]); k++) {
        if (live_clusters[k] != NULL) {
            fprintf(stderr, "harness: cluster %s was not destroyed; cleaning up\n",
                    live_clusters[k]->dir);
            harness_cluster_destroy(live_clusters[k]);
        }
    }
}

static void live_add(struct harness_cluster *c)
{
    pthread_mutex_lock(&live_mu);
    if (!atexit_registered) {
        atexit(destroy_leftovers);
        atexit_registered = true;
    }
    for (size_t k = 0; k < sizeof(live_clusters) / sizeof(live_clusters[0]); k++) {
        if (live_clusters[k] == NULL) {
            live_clusters[k] = c;
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

/* ---- ports and files ---- */

static int write_registry(struct harness_cluster *c, char *err, size_t errlen)
{
    FILE *f = fopen(c->registry_path, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", c->registry_path, strerror(errno));
        return RK_ERR_IO;
    }
    fprintf(f, "# name host port (written by tests/harness.c)\n");
    for (int i = 0; i < c->n; i++)
        fprintf(f, "%s %s %u\n", c->servers[i].name, c->servers[i].host,
                (unsigned)c->servers[i].port);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", c->registry_path, strerror(errno));
        return RK_ERR_IO;
    }
    return RK_OK;
}

static int pick_ports(struct harness_cluster *c, char *err, size_t errlen)
{
    uint16_t ports[HARNESS_MAX_SERVERS];
    int rc = free_ports_pick(ports, c->n, err, errlen);
    for (int i = 0; rc == RK_OK && i < c->n; i++)
        c->servers[i].port = ports[i];
    return rc;
}

/* Forks a process that waits for EOF on a pipe whose only write end this process holds,
 * then removes the network namespaces (if any) and the dir. If a test is killed (Check's
 * timeout sends SIGKILL), the servers die of PR_SET_PDEATHSIG and the janitor still
 * cleans up. */
static void start_janitor(struct harness_cluster *c)
{
    int p[2];
    c->janitor = 0;
    c->janitor_fd = -1;
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    const char *keep = getenv("RK_KEEP_DIR");
    bool keep_dir = keep != NULL && keep[0] != '\0' && keep[0] != '0';
    pid_t pid = fork();
    if (pid == 0) {
        setsid(); /* survives a ^C to the test's process group */
        for (int fd = 0; fd < MAX_FD_TO_CLOSE; fd++) /* incl. other janitors' pipes */
            if (fd != p[0])
                close(fd);
        for (int fd = 0; fd < 3; fd++) /* stdio for the `ip` commands it may run */
            if (open("/dev/null", O_RDWR) != fd)
                break;
        char byte;
        while (read(p[0], &byte, 1) != 0 && errno == EINTR) {
        }
        if (c->net != NULL)
            harness_net_remove(c->net, true);
        if (!keep_dir)
            execl("/bin/rm", "rm", "-rf", c->dir, (char *)NULL);
        _exit(0);
    }
    close(p[0]);
    if (pid < 0) {
        close(p[1]);
        return;
    }
    c->janitor = pid;
    c->janitor_fd = p[1];
}

static void stop_janitor(struct harness_cluster *c)
{
    if (c->janitor_fd >= 0)
        close(c->janitor_fd);
    if (c->janitor > 0)
        waitpid(c->janitor, NULL, 0);
    c->janitor_fd = -1;
    c->janitor = 0;
}

/* The two kinds of cluster: on 127.0.0.1 with free ports, or one namespace per server. */
static struct harness_cluster *cluster_create(int n, bool netns, char *err, size_t errlen)
{
    if (n < 1 || n > HARNESS_MAX_SERVERS) {
        snprintf(err, errlen, "bad cluster size %d", n);
        return NULL;
    }
    signal(SIGPIPE, SIG_IGN);
    struct harness_cluster *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->n = n;
    snprintf(c->dir, sizeof(c->dir), "/tmp/rk_integ_XXXXXX");
    if (mkdtemp(c->dir) == NULL) {
        snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
        free(c);
        return NULL;
    }
    if (netns && harness_net_alloc(c, err, errlen) != RK_OK) {
        rmdir(c->dir);
        free(c);
        return NULL;
    }
    start_janitor(c); /* after net is named, so that the janitor can remove it */
    snprintf(c->registry_path, sizeof(c->registry_path), "%s/server_registry.txt", c->dir);
    for (int i = 0; i < n; i++) {
        snprintf(c->servers[i].name, sizeof(c->servers[i].name), "s%d", i + 1);
        snprintf(c->servers[i].host, sizeof(c->servers[i].host), "127.0.0.1");
    }
    live_add(c);
    int rc = netns ? harness_net_create(c, err, errlen) : pick_ports(c, err, errlen);
    if (rc != RK_OK || write_registry(c, err, errlen) != RK_OK) {
        harness_cluster_destroy(c);
        return NULL;
    }
    return c;
}

struct harness_cluster *harness_cluster_new(int n, char *err, size_t errlen)
{
    return cluster_create(n, false, err, errlen);
}

struct harness_cluster *harness_cluster_new_netns(int n, char *err, size_t errlen)
{
    return cluster_create(n, true, err, errlen);
}

int harness_cluster_start_all(struct harness_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        if (harness_is_running(c, i))
            continue;
        int rc = harness_start(c, i);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void harness_cluster_destroy(struct harness_cluster *c)
{
    if (c == NULL)
        return;
    live_remove(c);
    /* Only while a member lives: an empty group's id may belong to someone else later. */
    if (c->pgid > 0 && any_running(c))
        kill(-c->pgid, SIGKILL);
    for (int i = 0; i < c->n; i++) {
        struct harness_server *s = &c->servers[i];
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
    }
    if (c->net != NULL) {
        harness_net_remove(c->net, false);
        harness_net_free(c);
    }
    const char *keep = getenv("RK_KEEP_DIR");
    if (keep != NULL && keep[0] != '\0' && keep[0] != '0')
        fprintf(stderr, "harness: keeping %s\n", c->dir);
    else if (c->dir[0] != '\0')
        nftw(c->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    stop_janitor(c);
    free(c);
}

/* ---- process control ---- */

void harness_server_path(const struct harness_cluster *c, int i, const char *suffix,
                         char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s%s", c->dir, c->servers[i].name, suffix);
}

int harness_index_of(const struct harness_cluster *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->servers[i].name, name) == 0)
            return i;
    return -1;
}

static bool any_running(const struct harness_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->servers[i].pid > 0)
            return true;
    return false;
}

static void describe_exit(const char *name, int status, char *out, size_t outlen)
{
    if (WIFEXITED(status))
        snprintf(out, outlen, "%s exited with status %d", name, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "%s killed by signal %d", name, WTERMSIG(status));
    else
        snprintf(out, outlen, "%s ended (wait status %#x)", name, status);
}

bool harness_is_running(struct harness_cluster *c, int i)
{
    struct harness_server *s = &c->servers[i];
    if (s->pid <= 0)
        return false;
    int status = 0;
    pid_t r = waitpid(s->pid, &status, WNOHANG);
    if (r == 0)
        return true;
    char what[128];
    describe_exit(s->name, status, what, sizeof(what));
    fprintf(stderr, "harness: %s unexpectedly\n", what);
    c->unexpected_exits++;
    s->pid = 0;
    s->paused = false;
    return false;
}

/* In the forked child, before exec: only async-signal-safe calls. netns_fd >= 0: enter
 * that network namespace first. */
static void exec_child(pid_t parent, pid_t pgid, int out_fd, int netns_fd, char *const argv[])
{
    setpgid(0, pgid);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0)
        _exit(125);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        if (devnull > 2)
            close(devnull);
    }
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    for (int fd = 3; fd < MAX_FD_TO_CLOSE; fd++)
        close(fd);
    execv(argv[0], argv);
    _exit(127);
}

int harness_start(struct harness_cluster *c, int i)
{
    struct harness_server *s = &c->servers[i];
    if (harness_is_running(c, i))
        return RK_ERR_INVAL;
    char port[8], emin[16], emax[16], hb[16], errpath[HARNESS_DIR_MAX + 32];
    snprintf(port, sizeof(port), "%u", (unsigned)s->port);
    snprintf(emin, sizeof(emin), "%d", c->election_min_ms);
    snprintf(emax, sizeof(emax), "%d", c->election_max_ms);
    snprintf(hb, sizeof(hb), "%d", c->heartbeat_ms);
    harness_server_path(c, i, ".err", errpath, sizeof(errpath));
    char *argv[16];
    int a = 0;
    argv[a++] = (char *)harness_server_bin();
    argv[a++] = s->name;
    argv[a++] = s->host;
    argv[a++] = port;
    argv[a++] = "False";
    argv[a++] = "--dir";
    argv[a++] = c->dir;
    if (c->election_min_ms > 0) {
        argv[a++] = "--election-min-ms";
        argv[a++] = emin;
    }
    if (c->election_max_ms > 0) {
        argv[a++] = "--election-max-ms";
        argv[a++] = emax;
    }
    if (c->heartbeat_ms > 0) {
        argv[a++] = "--heartbeat-ms";
        argv[a++] = hb;
    }
    argv[a] = NULL;

    int out_fd = open(errpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0)
        return RK_ERR_IO;
    int netns_fd = -1;
    if (c->net != NULL && (netns_fd = harness_net_open_ns(c, i)) < 0) {
        close(out_fd);
        return RK_ERR_IO;
    }
    /* Everyone joins the cluster's group; the first server of an empty cluster leads a
     * new one (a group without members cannot be joined). */
    pid_t pgid = any_running(c) ? c->pgid : 0;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        exec_child(parent, pgid, out_fd, netns_fd, argv);
    close(out_fd);
    if (netns_fd >= 0)
        close(netns_fd);
    if (pid < 0)
        return RK_ERR_IO;
    setpgid(pid, pgid); /* the same call as the child's; whoever runs first wins */
    if (pgid == 0)
        c->pgid = pid;
    s->pid = pid;
    s->paused = false;
    return RK_OK;
}

/* Waits up to ms for pid to exit; true with *status when it did. */
static bool wait_exit(pid_t pid, int ms, int *status)
{
    int64_t deadline = harness_now_ms() + ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return true;
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(5);
    }
}

int harness_stop(struct harness_cluster *c, int i)
{
    struct harness_server *s = &c->servers[i];
    if (!harness_is_running(c, i))
        return RK_ERR_INVAL;
    kill(s->pid, SIGTERM);
    if (s->paused)
        kill(s->pid, SIGCONT);
    int status = 0;
    int rc = RK_OK;
    if (!wait_exit(s->pid, STOP_WAIT_MS, &status)) {
        fprintf(stderr, "harness: %s did not exit within %d ms of SIGTERM; SIGKILL\n",
                s->name, STOP_WAIT_MS);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        rc = RK_ERR_TIMEOUT;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char what[128];
        describe_exit(s->name, status, what, sizeof(what));
        fprintf(stderr, "harness: after SIGTERM, %s\n", what);
        rc = RK_ERR_IO;
    }
    s->pid = 0;
    s->paused = false;
    return rc;
}

int harness_kill(struct harness_cluster *c, int i)
{
    struct harness_server *s = &c->servers[i];
    if (!harness_is_running(c, i))
        return RK_ERR_INVAL;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    s->paused = false;
    return RK_OK;
}

int harness_pause(struct harness_cluster *c, int i)
{
    struct harness_server *s = &c->servers[i];
    if (!harness_is_running(c, i) || kill(s->pid, SIGSTOP) != 0)
        return RK_ERR_INVAL;
    s->paused = true;
    return RK_OK;
}

int harness_resume(struct harness_cluster *c, int i)
{
    struct harness_server *s = &c->servers[i];
    if (!harness_is_running(c, i) || kill(s->pid, SIGCONT) != 0)
        return RK_ERR_INVAL;
    s->paused = false;
    return RK_OK;
}

int harness_restart(struct harness_cluster *c, int i)
{
    int rc = harness_stop(c, i);
    if (rc != RK_OK)
        return rc;
    return harness_start(c, i);
}

int harness_wipe(struct harness_cluster *c, int i)
{
    if (harness_is_running(c, i))
        return RK_ERR_INVAL;
    /* Every file the server keeps: log, term and vote, snapshot and its temporaries. */
    const char *suffixes[] = {"_log.txt", "_state", "_snapshot", "_snapshot.tmp",
                              "_snapshot.recv"};
    for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
        char path[HARNESS_DIR_MAX + 64];
        harness_server_path(c, i, suffixes[k], path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT)
            return RK_ERR_IO;
    }
    return RK_OK;
}

/* ---- STATUS ---- */

static bool parse_num(const char *v, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < 0)
        return false;
    *out = x;
    return true;
}

/* Parses "name=.. role=.. term=.. leader=.. commit=.. applied=.. last=..". Every one of
 * the seven fields must be present; unknown fields are ignored. */
static int parse_status(char *line, struct harness_status *st)
{
    memset(st, 0, sizeof(*st));
    unsigned seen = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r\n", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        bool ok = true;
        if (strcmp(k, "name") == 0) {
            ok = snprintf(st->name, sizeof(st->name), "%s", v) < (int)sizeof(st->name);
            seen |= 1;
        } else if (strcmp(k, "role") == 0) {
            ok = snprintf(st->role, sizeof(st->role), "%s", v) < (int)sizeof(st->role);
            seen |= 2;
        } else if (strcmp(k, "term") == 0) {
            ok = parse_num(v, &st->term);
            seen |= 4;
        } else if (strcmp(k, "leader") == 0) {
            ok = snprintf(st->leader, sizeof(st->leader), "%s", v) < (int)sizeof(st->leader);
            seen |= 8;
        } else if (strcmp(k, "commit") == 0) {
            ok = parse_num(v, &st->commit);
            seen |= 16;
        } else if (strcmp(k, "applied") == 0) {
            ok = parse_num(v, &st->applied);
            seen |= 32;
        } else if (strcmp(k, "last") == 0) {
            ok = parse_num(v, &st->last);
            seen |= 64;
        }
        if (!ok)
            return RK_ERR_PROTO;
    }
    return seen == 127 ? RK_OK : RK_ERR_PROTO;
}

/* Sends HELLO_CLIENT + one STATUS request on fd and reads the response line into line. */
static int status_exchange(int fd, char *line, size_t linelen)
{
    struct proto_buf b = {0};
    struct proto_client_req req = {.op = PROTO_OP_STATUS, .key = "", .val = ""};
    int rc = proto_encode_hello_client(&b);
    if (rc == RK_OK)
        rc = proto_encode_client_req(&b, &req);
    if (rc == RK_OK)
        rc = net_write_full(fd, b.data, b.len);
    proto_buf_free(&b);
    if (rc != RK_OK)
        return rc;
    uint8_t *payload = NULL;
    size_t len = 0;
    rc = net_read_frame(fd, PROTO_MAX_FRAME, &payload, &len);
    if (rc != RK_OK)
        return rc;
    struct proto_client_resp resp;
    if (proto_frame_type(payload, len) != PROTO_CLIENT_RESP)
        rc = RK_ERR_PROTO;
    else
        rc = proto_decode_client_resp(payload, len, &resp);
    if (rc == RK_OK && resp.status != PROTO_ST_VALUE)
        rc = RK_ERR_PROTO;
    if (rc == RK_OK) {
        size_t n = resp.body_len < linelen - 1 ? resp.body_len : linelen - 1;
        memcpy(line, resp.body, n);
        line[n] = '\0';
    }
    free(payload);
    return rc;
}

int harness_status(struct harness_cluster *c, int i, struct harness_status *out,
                   int timeout_ms)
{
    char err[256], line[512];
    if (timeout_ms < 1)
        timeout_ms = 1;
    int fd = net_connect(c->servers[i].host, c->servers[i].port, timeout_ms, err, sizeof(err));
    if (fd < 0)
        return RK_ERR_IO;
    net_set_timeouts(fd, timeout_ms);
    int rc = status_exchange(fd, line, sizeof(line));
    close(fd);
    if (rc != RK_OK)
        return rc;
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", line);
    rc = parse_status(copy, out);
    if (rc != RK_OK)
        fprintf(stderr, "harness: %s: cannot parse status line '%s'\n", c->servers[i].name,
                line);
    return rc;
}

static bool is_live(struct harness_cluster *c, int i)
{
    return harness_is_running(c, i) && !c->servers[i].paused;
}

/* Gets the status of every live server; ok[i] says whether st[i] holds one. */
static void poll_all(struct harness_cluster *c, int64_t deadline,
                     struct harness_status st[], bool ok[])
{
    for (int i = 0; i < c->n; i++) {
        ok[i] = false;
        if (!is_live(c, i))
            continue;
        int64_t left = deadline - harness_now_ms();
        int t = left < STATUS_TRY_MS ? (int)left : STATUS_TRY_MS;
        ok[i] = t > 0 && harness_status(c, i, &st[i], t) == RK_OK;
    }
}

/* The one server that says role=leader, if a majority of the cluster follows it. */
static int check_leader(const struct harness_cluster *c, const struct harness_status st[],
                        const bool ok[])
{
    int leader = -1, leaders = 0;
    for (int i = 0; i < c->n; i++) {
        if (ok[i] && strcmp(st[i].role, "leader") == 0) {
            leader = i;
            leaders++;
        }
    }
    if (leaders != 1)
        return -1;
    int agree = 0;
    for (int i = 0; i < c->n; i++)
        if (ok[i] && st[i].term == st[leader].term &&
            strcmp(st[i].leader, c->servers[leader].name) == 0)
            agree++;
    return agree >= c->n / 2 + 1 ? leader : -1;
}

int harness_wait_leader(struct harness_cluster *c, int timeout_ms, struct harness_status *out)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    struct harness_status st[HARNESS_MAX_SERVERS];
    bool ok[HARNESS_MAX_SERVERS];
    while (harness_now_ms() < deadline) {
        poll_all(c, deadline, st, ok);
        int leader = check_leader(c, st, ok);
        if (leader >= 0) {
            if (out != NULL)
                *out = st[leader];
            return leader;
        }
        harness_sleep_ms(POLL_PAUSE_MS);
    }
    return -1;
}

/* The leader every live server names, if they all name the same one in the same term
 * and that server says it is the leader. */
static int check_agreement(struct harness_cluster *c, const struct harness_status st[],
                           const bool ok[])
{
    int first = -1;
    for (int i = 0; i < c->n; i++) {
        if (!is_live(c, i))
            continue;
        if (!ok[i])
            return -1;
        if (first < 0)
            first = i;
        else if (st[i].term != st[first].term || strcmp(st[i].leader, st[first].leader) != 0)
            return -1;
    }
    if (first < 0)
        return -1;
    int leader = harness_index_of(c, st[first].leader);
    if (leader < 0 || !ok[leader] || strcmp(st[leader].role, "leader") != 0)
        return -1;
    return leader;
}

int harness_wait_agreement(struct harness_cluster *c, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    struct harness_status st[HARNESS_MAX_SERVERS];
    bool ok[HARNESS_MAX_SERVERS];
    while (harness_now_ms() < deadline) {
        poll_all(c, deadline, st, ok);
        int leader = check_agreement(c, st, ok);
        if (leader >= 0)
            return leader;
        harness_sleep_ms(POLL_PAUSE_MS);
    }
    return -1;
}

int harness_wait_commit(struct harness_cluster *c, int i, long long index, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - harness_now_ms();
        if (left <= 0)
            return RK_ERR_TIMEOUT;
        struct harness_status st;
        int t = left < STATUS_TRY_MS ? (int)left : STATUS_TRY_MS;
        if (harness_status(c, i, &st, t) == RK_OK && st.commit >= index)
            return RK_OK;
        harness_sleep_ms(POLL_PAUSE_MS);
    }
}

/* ---- client sessions ---- */

struct client_session *harness_session(struct harness_cluster *c, int i, bool use_registry,
                                       int timeout_ms)
{
    char err[256];
    struct client_session *s = client_session_new(
        i >= 0 ? c->servers[i].host : NULL, i >= 0 ? c->servers[i].port : 0,
        use_registry ? c->registry_path : NULL, timeout_ms, false, err, sizeof(err));
    if (s == NULL)
        fprintf(stderr, "harness: client_session_new: %s\n", err);
    return s;
}

int harness_call(struct client_session *s, int op, const char *key, const char *val,
                 char *out, size_t outlen)
{
    char err[256];
    struct client_reply reply;
    memset(&reply, 0, sizeof(reply));
    int rc = client_session_call(s, (uint8_t)op, key, (uint32_t)strlen(key), val,
                                 val != NULL ? (uint32_t)strlen(val) : 0, &reply, err,
                                 sizeof(err));
    if (rc != RK_OK) {
        if (out != NULL && outlen > 0)
            snprintf(out, outlen, "%s", err);
        return rc < 0 ? rc : RK_ERR_IO;
    }
    if (out != NULL && outlen > 0) {
        size_t n = reply.body_len < outlen - 1 ? reply.body_len : outlen - 1;
        if (n > 0)
            memcpy(out, reply.body, n);
        out[n] = '\0';
    }
    int status = reply.status;
    client_reply_free(&reply);
    return status;
}

/* ---- files and logs ---- */

long harness_count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long lines = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF)
        if (ch == '\n')
            lines++;
    fclose(f);
    return lines;
}

static bool is_sanitizer_line(const char *line)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "runtime error:",
                                        "WARNING: ThreadSanitizer", "ERROR: LeakSanitizer"};
    for (size_t k = 0; k < sizeof(marks) / sizeof(marks[0]); k++)
        if (strstr(line, marks[k]) != NULL)
            return true;
    return false;
}

int harness_sanitizer_reports(const struct harness_cluster *c, char *first, size_t firstlen)
{
    int count = 0;
    if (first != NULL && firstlen > 0)
        first[0] = '\0';
    for (int i = 0; i < c->n; i++) {
        char path[HARNESS_DIR_MAX + 32], line[1024];
        harness_server_path(c, i, ".err", path, sizeof(path));
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (!is_sanitizer_line(line))
                continue;
            if (count++ == 0 && first != NULL && firstlen > 0)
                snprintf(first, firstlen, "%s: %s", c->servers[i].name, line);
        }
        fclose(f);
    }
    return count;
}

/* Prints the last `lines` lines of path (looking at most at its last 64 KiB). */
static void dump_tail(const char *path, int lines)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "  (no %s)\n", path);
        return;
    }
    enum { TAIL_BYTES = 64 * 1024 };
    static char buf[TAIL_BYTES + 1];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(buf, 1, TAIL_BYTES, f);
    fclose(f);
    buf[n] = '\0';
    size_t start = n;
    int seen = 0;
    while (start > 0) {
        if (buf[start - 1] == '\n' && start != n && ++seen >= lines)
            break;
        start--;
    }
    fputs(buf + start, stderr);
    if (n > 0 && buf[n - 1] != '\n')
        fputc('\n', stderr);
}

void harness_dump_logs(const struct harness_cluster *c, int lines)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->n; i++) {
        char path[HARNESS_DIR_MAX + 32];
        harness_server_path(c, i, ".err", path, sizeof(path));
        fprintf(stderr, "---- %s (port %u, %s): last %d lines of %s ----\n",
                c->servers[i].name, (unsigned)c->servers[i].port,
                c->servers[i].pid > 0 ? "running" : "down", lines, path);
        dump_tail(path, lines);
    }
    fprintf(stderr, "---- end of server logs ----\n");
}

void harness_fail_cleanup(struct harness_cluster *c)
{
    harness_dump_logs(c, 25);
    harness_cluster_destroy(c);
}

void harness_format(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
}

/* ---- running a program ---- */

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Appends what fd has to buf (kept NUL-terminated); false at EOF or error. */
static bool drain(int fd, char *buf, size_t cap, size_t *used)
{
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof(tmp));
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (r <= 0)
        return false;
    size_t room = cap > *used + 1 ? cap - *used - 1 : 0;
    size_t n = (size_t)r < room ? (size_t)r : room;
    memcpy(buf + *used, tmp, n);
    *used += n;
    buf[*used] = '\0';
    return true;
}

static void run_child(pid_t parent, int in_fd, int out_fd, int err_fd, char *const argv[])
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL);
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    for (int fd = 3; fd < MAX_FD_TO_CLOSE; fd++)
        close(fd);
    execv(argv[0], argv);
    _exit(127);
}

/* The parent's side: feeds stdin, collects stdout/stderr until both close or the
 * deadline passes. Returns false on timeout. */
static bool run_pump(int in_w, int out_r, int err_r, const char *stdin_text, char *out,
                     size_t outlen, char *errout, size_t errlen, int64_t deadline)
{
    size_t in_len = stdin_text != NULL ? strlen(stdin_text) : 0, in_off = 0;
    size_t out_used = 0, err_used = 0;
    bool out_open = true, err_open = true;
    if (in_len == 0) {
        close(in_w);
        in_w = -1;
    }
    while (out_open || err_open) {
        int64_t left = deadline - harness_now_ms();
        if (left <= 0)
            break;
        struct pollfd p[3] = {{out_open ? out_r : -1, POLLIN, 0},
                              {err_open ? err_r : -1, POLLIN, 0},
                              {in_w, POLLOUT, 0}};
        if (poll(p, 3, (int)left) < 0 && errno != EINTR)
            break;
        if (p[0].revents != 0)
            out_open = drain(out_r, out, outlen, &out_used);
        if (p[1].revents != 0)
            err_open = drain(err_r, errout, errlen, &err_used);
        if (in_w >= 0 && p[2].revents != 0) {
            ssize_t w = write(in_w, stdin_text + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
                close(in_w);
                in_w = -1;
            }
        }
    }
    if (in_w >= 0)
        close(in_w);
    return !out_open && !err_open;
}

int harness_run(char *const argv[], const char *stdin_text, char *out, size_t outlen,
                char *errout, size_t errlen, int timeout_ms, int *exit_status)
{
    int in_p[2], out_p[2], err_p[2];
    out[0] = '\0';
    errout[0] = '\0';
    signal(SIGPIPE, SIG_IGN);
    if (pipe2(in_p, O_CLOEXEC) != 0)
        return RK_ERR_IO;
    if (pipe2(out_p, O_CLOEXEC) != 0 || pipe2(err_p, O_CLOEXEC) != 0) {
        close(in_p[0]);
        close(in_p[1]);
        return RK_ERR_IO;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        run_child(parent, in_p[0], out_p[1], err_p[1], argv);
    close(in_p[0]);
    close(out_p[1]);
    close(err_p[1]);
    if (pid < 0) {
        close(in_p[1]);
        close(out_p[0]);
        close(err_p[0]);
        return RK_ERR_IO;
    }
    set_nonblock(in_p[1]);
    set_nonblock(out_p[0]);
    set_nonblock(err_p[0]);
    int64_t deadline = harness_now_ms() + timeout_ms;
    bool done = run_pump(in_p[1], out_p[0], err_p[0], stdin_text, out, outlen, errout,
                         errlen, deadline);
    close(out_p[0]);
    close(err_p[0]);
    int status = 0;
    if (!done || !wait_exit(pid, (int)(deadline - harness_now_ms()) + 1, &status)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return RK_ERR_TIMEOUT;
    }
    *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return RK_OK;
}

int harness_send_frame(int fd, const void *payload, uint32_t len)
{
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
    int rc = net_write_full(fd, hdr, sizeof(hdr));
    if (rc == RK_OK && len > 0)
        rc = net_write_full(fd, payload, len);
    return rc;
}
