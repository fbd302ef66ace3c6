/* tools/bench_cluster.c - raft_bench's processes: a cluster of raft_server children in a temp
 * dir on free 127.0.0.1 ports (or one from a registry), STATUS polling, and the cleanup that
 * kills every child and removes every temp dir on exit, SIGINT or SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"
#include "bench.h"
#include "free_port.h"

#define MAX_CHILDREN 64
#define MAX_DIRS 4
#define MAX_FD_TO_CLOSE 4096
#define POLL_PAUSE_MS 20

/* ---- time ---- */

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- what to clean up ---- */

static pthread_mutex_t cleanup_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t children[MAX_CHILDREN];
static char temp_dirs[MAX_DIRS][128];

static void remember_child(pid_t pid)
{
    pthread_mutex_lock(&cleanup_mu);
    for (int k = 0; k < MAX_CHILDREN; k++) {
        if (children[k] == 0) {
            children[k] = pid;
            break;
        }
    }
    pthread_mutex_unlock(&cleanup_mu);
}

static void forget_child(pid_t pid)
{
    pthread_mutex_lock(&cleanup_mu);
    for (int k = 0; k < MAX_CHILDREN; k++)
        if (children[k] == pid)
            children[k] = 0;
    pthread_mutex_unlock(&cleanup_mu);
}

static void remember_dir(const char *dir)
{
    pthread_mutex_lock(&cleanup_mu);
    for (int k = 0; k < MAX_DIRS; k++) {
        if (temp_dirs[k][0] == '\0') {
            snprintf(temp_dirs[k], sizeof(temp_dirs[k]), "%s", dir);
            break;
        }
    }
    pthread_mutex_unlock(&cleanup_mu);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_dir(const char *dir)
{
    const char *keep = getenv("RK_KEEP_DIR");
    if (keep != NULL && keep[0] != '\0' && keep[0] != '0')
        fprintf(stderr, "raft_bench: keeping %s\n", dir);
    else
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void forget_dir(const char *dir)
{
    pthread_mutex_lock(&cleanup_mu);
    for (int k = 0; k < MAX_DIRS; k++)
        if (strcmp(temp_dirs[k], dir) == 0)
            temp_dirs[k][0] = '\0';
    pthread_mutex_unlock(&cleanup_mu);
}

/* Kills and reaps every child, removes every temp dir. */
static void cleanup_all(void)
{
    pthread_mutex_lock(&cleanup_mu);
    for (int k = 0; k < MAX_CHILDREN; k++) {
        if (children[k] > 0) {
            kill(children[k], SIGKILL);
            waitpid(children[k], NULL, 0);
            children[k] = 0;
        }
    }
    for (int k = 0; k < MAX_DIRS; k++) {
        if (temp_dirs[k][0] != '\0') {
            remove_dir(temp_dirs[k]);
            temp_dirs[k][0] = '\0';
        }
    }
    pthread_mutex_unlock(&cleanup_mu);
}

static sigset_t stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
}

static void *signal_thread(void *arg)
{
    (void)arg;
    sigset_t set = stop_signals();
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    fprintf(stderr, "\nraft_bench: %s: stopping every server\n", strsignal(sig));
    cleanup_all();
    _exit(130);
    return NULL;
}

void bench_install_cleanup(void)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t set = stop_signals();
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, NULL) == 0)
        pthread_detach(t);
    atexit(cleanup_all);
}

pid_t bench_fork(int (*run)(void *arg), void *arg)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* a ^C reaches raft_bench only; it kills its children itself */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        _exit(run(arg));
    }
    if (pid > 0)
        remember_child(pid);
    return pid;
}

void bench_end_child(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    waitpid(pid, NULL, 0);
    forget_child(pid);
}

/* ---- ports and the registry ---- */

static int write_registry(struct bench_cluster *c, char *err, size_t errlen)
{
    FILE *f = fopen(c->registry_path, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", c->registry_path, strerror(errno));
        return RK_ERR_IO;
    }
    fprintf(f, "# name host port (written by tools/raft_bench)\n");
    for (int i = 0; i < c->n; i++)
        fprintf(f, "%s %s %u\n", c->nodes[i].name, c->nodes[i].host, (unsigned)c->nodes[i].port);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", c->registry_path, strerror(errno));
        return RK_ERR_IO;
    }
    return RK_OK;
}

static int pick_ports(struct bench_cluster *c, char *err, size_t errlen)
{
    uint16_t ports[BENCH_MAX_NODES];
    int rc = free_ports_pick(ports, c->n, err, errlen);
    for (int i = 0; rc == RK_OK && i < c->n; i++)
        c->nodes[i].port = ports[i];
    return rc;
}

/* Forks a process that waits for EOF on a pipe only we write to, then removes dir: the
 * temp dir goes even if raft_bench is killed with -9 (the servers die of PDEATHSIG). */
static void start_janitor(struct bench_cluster *c)
{
    int p[2];
    c->janitor_fd = -1;
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    const char *keep = getenv("RK_KEEP_DIR");
    bool keep_dir = keep != NULL && keep[0] != '\0' && keep[0] != '0';
    pid_t pid = fork();
    if (pid == 0) {
        setsid(); /* a ^C to our process group does not reach it */
        for (int fd = 0; fd < MAX_FD_TO_CLOSE; fd++)
            if (fd != p[0])
                close(fd);
        char byte;
        while (read(p[0], &byte, 1) != 0 && errno == EINTR) {
        }
        /* the servers die of PDEATHSIG at the same moment: let them go before rm */
        if (!keep_dir)
            execl("/bin/sh", "sh", "-c", "sleep 0.5; exec rm -rf \"$0\"", c->dir, (char *)NULL);
        _exit(0);
    }
    close(p[0]);
    if (pid < 0) {
        close(p[1]);
        return;
    }
    c->janitor_pid = pid;
    c->janitor_fd = p[1];
}

static void stop_janitor(struct bench_cluster *c)
{
    if (c->janitor_fd >= 0)
        close(c->janitor_fd);
    if (c->janitor_pid > 0)
        waitpid(c->janitor_pid, NULL, 0);
    c->janitor_fd = -1;
    c->janitor_pid = 0;
}

int bench_cluster_create(struct bench_cluster *c, int n, const char *server_bin, char *err,
                         size_t errlen)
{
    if (n < 1 || n > BENCH_MAX_NODES) {
        snprintf(err, errlen, "cluster size %d is not 1..%d", n, BENCH_MAX_NODES);
        return RK_ERR_INVAL;
    }
    int n_args = c->n_server_args;
    const char *args[BENCH_MAX_SERVER_ARGS];
    memcpy(args, c->server_args, sizeof(args));
    memset(c, 0, sizeof(*c));
    memcpy(c->server_args, args, sizeof(args));
    c->n_server_args = n_args;
    c->n = n;
    c->owned = true;
    c->server_bin = server_bin;
    snprintf(c->dir, sizeof(c->dir), "/tmp/rk_bench_XXXXXX");
    if (mkdtemp(c->dir) == NULL) {
        snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
        c->dir[0] = '\0';
        return RK_ERR_IO;
    }
    remember_dir(c->dir);
    start_janitor(c);
    snprintf(c->registry_path, sizeof(c->registry_path), "%s/server_registry.txt", c->dir);
    for (int i = 0; i < n; i++) {
        snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "s%d", i + 1);
        snprintf(c->nodes[i].host, sizeof(c->nodes[i].host), "127.0.0.1");
    }
    int rc = pick_ports(c, err, errlen);
    if (rc == RK_OK)
        rc = write_registry(c, err, errlen);
    return rc;
}

int bench_cluster_attach(struct bench_cluster *c, const char *registry_path, char *err,
                         size_t errlen)
{
    struct registry reg;
    int rc = registry_load(registry_path, &reg, err, errlen);
    if (rc != RK_OK)
        return rc;
    memset(c, 0, sizeof(*c));
    if (reg.n > BENCH_MAX_NODES) {
        snprintf(err, errlen, "%s: %d servers, at most %d supported", registry_path, reg.n,
                 BENCH_MAX_NODES);
        registry_free(&reg);
        return RK_ERR_INVAL;
    }
    c->n = reg.n;
    snprintf(c->registry_path, sizeof(c->registry_path), "%s", registry_path);
    for (int i = 0; i < reg.n; i++) {
        snprintf(c->nodes[i].name, sizeof(c->nodes[i].name), "%s", reg.servers[i].name);
        snprintf(c->nodes[i].host, sizeof(c->nodes[i].host), "%s", reg.servers[i].host);
        c->nodes[i].port = reg.servers[i].port;
    }
    registry_free(&reg);
    return RK_OK;
}

/* ---- server processes ---- */

struct exec_args {
    char *argv[8 + BENCH_MAX_SERVER_ARGS];
    int out_fd;
};

static int exec_server(void *arg)
{
    struct exec_args *a = arg;
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        if (devnull > 2)
            close(devnull);
    }
    dup2(a->out_fd, 1);
    dup2(a->out_fd, 2);
    for (int fd = 3; fd < MAX_FD_TO_CLOSE; fd++)
        close(fd);
    execv(a->argv[0], a->argv);
    return 127;
}

int bench_cluster_start_node(struct bench_cluster *c, int i)
{
    struct bench_node *s = &c->nodes[i];
    if (!c->owned || s->pid > 0)
        return RK_ERR_INVAL;
    char port[8], out_path[256];
    snprintf(port, sizeof(port), "%u", (unsigned)s->port);
    snprintf(out_path, sizeof(out_path), "%s/%s.err", c->dir, s->name);
    struct exec_args a;
    int k = 0;
    a.argv[k++] = (char *)c->server_bin;
    a.argv[k++] = s->name;
    a.argv[k++] = s->host;
    a.argv[k++] = port;
    a.argv[k++] = "False";
    a.argv[k++] = "--dir";
    a.argv[k++] = c->dir;
    for (int j = 0; j < c->n_server_args; j++)
        a.argv[k++] = (char *)c->server_args[j];
    a.argv[k] = NULL;
    a.out_fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (a.out_fd < 0)
        return RK_ERR_IO;
    pid_t pid = bench_fork(exec_server, &a);
    close(a.out_fd);
    if (pid < 0)
        return RK_ERR_IO;
    s->pid = pid;
    return RK_OK;
}

int bench_cluster_start_all(struct bench_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        if (c->nodes[i].pid > 0)
            continue;
        int rc = bench_cluster_start_node(c, i);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

void bench_cluster_kill_node(struct bench_cluster *c, int i)
{
    bench_end_child(c->nodes[i].pid, SIGKILL);
    c->nodes[i].pid = 0;
}

void bench_cluster_destroy(struct bench_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->owned)
            bench_cluster_kill_node(c, i);
    if (c->dir[0] != '\0') {
        remove_dir(c->dir);
        forget_dir(c->dir);
        stop_janitor(c);
        c->dir[0] = '\0';
    }
}

void bench_cluster_dump_logs(const struct bench_cluster *c, int lines)
{
    for (int i = 0; c->owned && i < c->n; i++) {
        char cmd[512];
        fprintf(stderr, "---- %s (last %d lines) ----\n", c->nodes[i].name, lines);
        snprintf(cmd, sizeof(cmd), "tail -n %d '%s/%s.err' >&2", lines, c->dir,
                 c->nodes[i].name);
        if (system(cmd) != 0)
            fprintf(stderr, "(no output)\n");
    }
}

/* ---- STATUS ---- */

static void copy_word(char *out, size_t outlen, const char *v)
{
    size_t n = strcspn(v, " \t\r\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

/* Parses "name=.. role=.. term=.. leader=.. commit=.. applied=.. last=..". */
static int parse_status(const char *line, struct bench_status *st)
{
    memset(st, 0, sizeof(*st));
    unsigned seen = 0;
    const char *keys[] = { "name=", "role=", "leader=", "term=", "commit=", "applied=", "last=" };
    long long *nums[] = { &st->term, &st->commit, &st->applied, &st->last };
    for (unsigned k = 0; k < 7; k++) {
        const char *p = strstr(line, keys[k]);
        if (p == NULL || (p != line && p[-1] != ' '))
            continue;
        p += strlen(keys[k]);
        if (k == 0)
            copy_word(st->name, sizeof(st->name), p);
        else if (k == 1)
            copy_word(st->role, sizeof(st->role), p);
        else if (k == 2)
            copy_word(st->leader, sizeof(st->leader), p);
        else
            *nums[k - 3] = strtoll(p, NULL, 10);
        seen |= 1u << k;
    }
    return seen == 0x7f ? RK_OK : RK_ERR_PROTO;
}

int bench_status(const struct bench_cluster *c, int i, struct bench_status *st, int timeout_ms)
{
    struct bench_conn conn;
    char err[BENCH_ERR_LEN];
    int rc = bench_conn_open(&conn, c->nodes[i].host, c->nodes[i].port, timeout_ms, timeout_ms,
                             err, sizeof(err));
    if (rc != RK_OK)
        return rc;
    struct proto_buf req = { 0 };
    struct proto_client_req r = { .op = PROTO_OP_STATUS, .key = "", .val = "" };
    rc = proto_encode_client_req(&req, &r);
    struct proto_client_resp resp;
    int status = rc == RK_OK ? bench_conn_call(&conn, req.data, req.len, &resp) : rc;
    proto_buf_free(&req);
    if (status == PROTO_ST_VALUE) {
        char line[512];
        uint32_t n = resp.body_len < sizeof(line) ? resp.body_len : sizeof(line) - 1;
        memcpy(line, resp.body, n);
        line[n] = '\0';
        rc = parse_status(line, st);
    } else {
        rc = status < 0 ? status : RK_ERR_PROTO;
    }
    bench_conn_close(&conn);
    return rc;
}

/* One poll: the index of a leader that enough servers name in its term, or -1. */
static int agreed_leader(const struct bench_cluster *c, bool all)
{
    struct bench_status st[BENCH_MAX_NODES];
    bool ok[BENCH_MAX_NODES];
    int live = 0;
    for (int i = 0; i < c->n; i++) {
        bool running = !c->owned || c->nodes[i].pid > 0;
        ok[i] = running && bench_status(c, i, &st[i], 300) == RK_OK;
        live += running;
    }
    for (int i = 0; i < c->n; i++) {
        if (!ok[i] || strcmp(st[i].role, "leader") != 0)
            continue;
        int agree = 0;
        for (int j = 0; j < c->n; j++)
            agree += ok[j] && st[j].term == st[i].term && strcmp(st[j].leader, st[i].name) == 0;
        if (agree >= (all ? live : c->n / 2 + 1))
            return i;
    }
    return -1;
}

int bench_wait_leader(const struct bench_cluster *c, bool all, int timeout_ms)
{
    int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int leader = agreed_leader(c, all);
        if (leader >= 0 || bench_now_ns() >= deadline)
            return leader;
        bench_sleep_ms(POLL_PAUSE_MS);
    }
}

int bench_wait_applied(const struct bench_cluster *c, int i, long long index, int timeout_ms)
{
    int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        struct bench_status st;
        if (bench_status(c, i, &st, 300) == RK_OK && st.applied >= index)
            return RK_OK;
        if (bench_now_ns() >= deadline)
            return RK_ERR_TIMEOUT;
        bench_sleep_ms(POLL_PAUSE_MS);
    }
}

/* ---- CPU accounting ---- */

/* Busy (non-idle, non-iowait) seconds of the whole machine, from /proc/stat. */
/* Busy time of the whole machine (user, nice, system, irq, softirq, steal), and *steal. */
static double machine_busy_seconds(double *steal)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = { 0 };
    int got = f != NULL ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
                        : 0;
    if (f != NULL)
        fclose(f);
    *steal = 0;
    if (got != 8)
        return 0;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *steal = (double)v[7] / (double)sysconf(_SC_CLK_TCK);
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

/* utime + stime of a process (all its threads), from /proc/PID/stat. */
static double process_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces; fields follow the last ')' */
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void bench_cpu_sample(const struct bench_cluster *c, struct bench_cpu *s)
{
    memset(s, 0, sizeof(*s));
    s->ns = bench_now_ns();
    s->machine_busy_s = machine_busy_seconds(&s->steal_s);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->self_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    for (int i = 0; c != NULL && i < c->n; i++)
        if (c->nodes[i].pid > 0)
            s->servers_s += process_seconds(c->nodes[i].pid);
}

void bench_cpu_usage(const struct bench_cpu *a, const struct bench_cpu *b, double *gen_pct,
                     double *servers_pct, double *other_pct, double *steal_pct)
{
    double wall = (double)(b->ns - a->ns) / 1e9;
    if (wall <= 0)
        wall = 1e-9;
    *gen_pct = 100 * (b->self_s - a->self_s) / wall;
    *servers_pct = 100 * (b->servers_s - a->servers_s) / wall;
    *other_pct = 100 * (b->machine_busy_s - a->machine_busy_s) / wall - *gen_pct - *servers_pct;
    *steal_pct = 100 * (b->steal_s - a->steal_s) / wall;
}
