/* common/cluster_ctl/cluster.c - a local cluster of raft_server processes: its temp dir,
 * registry and janitor, and the start, stop, kill, pause and wipe of each server. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../errors.h"
#include "cluster_ctl.h"

#define STOP_WAIT_MS 5000
#define MAX_LIVE 16

/* ---- the clusters not yet destroyed, destroyed at exit() ---- */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ctl_cluster *live[MAX_LIVE];
static bool atexit_registered;

static void destroy_leftovers(void)
{
    for (int k = 0; k < MAX_LIVE; k++) {
        if (live[k] != NULL) {
            fprintf(stderr, "cluster_ctl: cluster %s was not destroyed; cleaning up\n",
                    live[k]->dir);
            ctl_cluster_destroy(live[k]);
        }
    }
}

/* Puts c in the list (old == NULL) or takes it out (new == NULL). */
static void live_swap(struct ctl_cluster *old, struct ctl_cluster *new)
{
    pthread_mutex_lock(&live_mu);
    if (!atexit_registered && new != NULL)
        atexit_registered = atexit(destroy_leftovers) == 0;
    for (int k = 0; k < MAX_LIVE; k++) {
        if (live[k] == old) {
            live[k] = new;
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

/* ---- making and destroying ---- */

const char *ctl_server_bin(void)
{
    const char *p = getenv("RK_SERVER_BIN");
    return p != NULL && p[0] != '\0' ? p : "./server/raft_server";
}

/* server_registry.txt from c->servers. */
static int write_registry(const struct ctl_cluster *c, char *err, size_t errlen)
{
    FILE *f = fopen(c->registry_path, "w");
    if (f == NULL)
        return rk_fail_io(err, errlen, c->registry_path, "open");
    fprintf(f, "# name host port (written by common/cluster_ctl)\n");
    for (int i = 0; i < c->n; i++)
        fprintf(f, "%s %s %u\n", c->servers[i].name, c->servers[i].host,
                (unsigned)c->servers[i].port);
    if (fclose(f) != 0)
        return rk_fail_io(err, errlen, c->registry_path, "write");
    return RK_OK;
}

/* The janitor's hook: what ext made. */
static void janitor_hook(void *arg)
{
    const struct ctl_ext *ext = arg;
    if (ext->remove != NULL)
        ext->remove(ext->arg);
}

/* Names the servers s1..sN, on 127.0.0.1 with free ports unless ext places them. */
static int place_servers(struct ctl_cluster *c, char *err, size_t errlen)
{
    uint16_t ports[CTL_MAX_SERVERS];
    for (int i = 0; i < c->n; i++)
        snprintf(c->servers[i].name, sizeof(c->servers[i].name), "s%d", i + 1);
    for (int i = 0; i < c->n; i++)
        c->servers[i].voter = true;
    if (c->ext.place != NULL)
        return c->ext.place(c->ext.arg, c, err, errlen);
    int rc = ctl_free_ports(ports, c->n, err, errlen);
    for (int i = 0; rc == RK_OK && i < c->n; i++) {
        snprintf(c->servers[i].host, sizeof(c->servers[i].host), "127.0.0.1");
        c->servers[i].port = ports[i];
    }
    return rc;
}

int ctl_add_spare(struct ctl_cluster *c, char *err, size_t errlen)
{
    if (c->n >= CTL_MAX_SERVERS || c->ext.place != NULL) {
        rk_errf(err, errlen, "no room for a spare server (%d of %d, or placed servers)", c->n,
                CTL_MAX_SERVERS);
        return -1;
    }
    uint16_t port;
    if (ctl_free_ports(&port, 1, err, errlen) != RK_OK)
        return -1;
    struct ctl_server *s = &c->servers[c->n];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "s%d", c->n + 1);
    snprintf(s->host, sizeof(s->host), "127.0.0.1");
    s->port = port;
    s->join = true;
    return c->n++;
}

void ctl_set_voter(struct ctl_cluster *c, int i, bool voter)
{
    c->servers[i].voter = voter;
}

struct ctl_cluster *ctl_cluster_new(int n, const char *tag, const struct ctl_ext *ext,
                                    char *err, size_t errlen)
{
    struct ctl_cluster *c = n >= 1 && n <= CTL_MAX_SERVERS ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL) {
        rk_errf(err, errlen, "cluster of %d servers: not 1..%d, or out of memory", n,
                CTL_MAX_SERVERS);
        if (ext != NULL && ext->release != NULL)
            ext->release(ext->arg);
        return NULL;
    }
    if (ext != NULL)
        c->ext = *ext;
    c->n = n;
    c->owned = true;
    c->janitor.fd = -1;
    live_swap(NULL, c);
    int rc = ctl_make_dir(c->dir, sizeof(c->dir), tag, err, errlen);
    if (rc == RK_OK) {
        ctl_janitor_start(&c->janitor, c->dir, janitor_hook, &c->ext);
        snprintf(c->registry_path, sizeof(c->registry_path), "%s/server_registry.txt",
                 c->dir);
        rc = place_servers(c, err, errlen);
    }
    if (rc == RK_OK)
        rc = write_registry(c, err, errlen);
    if (rc != RK_OK) {
        ctl_cluster_destroy(c);
        return NULL;
    }
    return c;
}

struct ctl_cluster *ctl_cluster_attach(const char *registry_path, char *err, size_t errlen)
{
    struct registry reg;
    if (registry_load(registry_path, &reg, err, errlen) != RK_OK)
        return NULL;
    struct ctl_cluster *c = reg.n <= CTL_MAX_SERVERS ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL) {
        rk_errf(err, errlen, "%s: %d servers (at most %d), or out of memory", registry_path,
                reg.n, CTL_MAX_SERVERS);
        registry_free(&reg);
        return NULL;
    }
    c->n = reg.n;
    c->janitor.fd = -1;
    snprintf(c->registry_path, sizeof(c->registry_path), "%s", registry_path);
    for (int i = 0; i < reg.n; i++) {
        memcpy(c->servers[i].name, reg.servers[i].name, sizeof(c->servers[i].name));
        memcpy(c->servers[i].host, reg.servers[i].host, sizeof(c->servers[i].host));
        c->servers[i].port = reg.servers[i].port;
    }
    registry_free(&reg);
    return c;
}

static bool any_running(const struct ctl_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->servers[i].pid > 0)
            return true;
    return false;
}

void ctl_cluster_destroy(struct ctl_cluster *c)
{
    if (c == NULL)
        return;
    if (c->owned)
        live_swap(c, NULL);
    /* Only while a member lives: an empty group's id may belong to someone else later. */
    if (c->pgid > 0 && any_running(c))
        kill(-c->pgid, SIGKILL);
    for (int i = 0; i < c->n; i++)
        ctl_end(c->servers[i].pid, SIGKILL);
    if (c->ext.remove != NULL)
        c->ext.remove(c->ext.arg);
    if (c->ext.release != NULL)
        c->ext.release(c->ext.arg);
    ctl_remove_dir(c->dir);
    ctl_janitor_dismiss(&c->janitor);
    free(c);
}

/* ---- process control ---- */

void ctl_server_path(const struct ctl_cluster *c, int i, const char *suffix, char *out,
                     size_t outlen)
{
    snprintf(out, outlen, "%s/%s%s", c->dir, c->servers[i].name, suffix);
}

int ctl_index_of(const struct ctl_cluster *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->servers[i].name, name) == 0)
            return i;
    return -1;
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

/* The server is gone: no pid, not paused. */
static void forget(struct ctl_server *s)
{
    s->pid = 0;
    s->paused = false;
}

bool ctl_is_running(struct ctl_cluster *c, int i)
{
    struct ctl_server *s = &c->servers[i];
    if (!c->owned)
        return true;
    if (s->pid <= 0)
        return false;
    int status = 0;
    if (waitpid(s->pid, &status, WNOHANG) == 0)
        return true;
    char what[128];
    describe_exit(s->name, status, what, sizeof(what));
    fprintf(stderr, "cluster_ctl: %s unexpectedly\n", what);
    c->unexpected_exits++;
    forget(s);
    return false;
}

/* A server's command line, and the strings it needs. */
struct server_argv {
    char *argv[16 + CTL_MAX_SERVER_ARGS];
    char port[8], ms[3][16];
};

/* "--name VALUE" as argument n (and n + 1) when value > 0; returns the next n. */
static int add_ms(struct server_argv *a, int n, const char *name, int value, char *buf)
{
    if (value <= 0)
        return n;
    snprintf(buf, sizeof(a->ms[0]), "%d", value);
    a->argv[n++] = (char *)name;
    a->argv[n++] = buf;
    return n;
}

/* BIN NAME HOST PORT False --dir DIR [timings] [server_args] */
static void server_argv(const struct ctl_cluster *c, int i, struct server_argv *a)
{
    const struct ctl_server *s = &c->servers[i];
    int n = 0;
    snprintf(a->port, sizeof(a->port), "%u", (unsigned)s->port);
    a->argv[n++] = (char *)(c->server_bin != NULL ? c->server_bin : ctl_server_bin());
    a->argv[n++] = (char *)s->name;
    a->argv[n++] = (char *)s->host;
    a->argv[n++] = a->port;
    a->argv[n++] = "False";
    a->argv[n++] = "--dir";
    a->argv[n++] = (char *)c->dir;
    if (s->join)
        a->argv[n++] = "--join";
    n = add_ms(a, n, "--election-min-ms", c->election_min_ms, a->ms[0]);
    n = add_ms(a, n, "--election-max-ms", c->election_max_ms, a->ms[1]);
    n = add_ms(a, n, "--heartbeat-ms", c->heartbeat_ms, a->ms[2]);
    for (int k = 0; k < c->n_server_args && k < CTL_MAX_SERVER_ARGS; k++)
        a->argv[n++] = (char *)c->server_args[k];
    a->argv[n] = NULL;
}

/* Forks server i into process group pgid, its output in NAME.err, in its network
 * namespace if ext gives one. The pid, or -1. */
static pid_t spawn_server(const struct ctl_cluster *c, int i, char *const argv[], pid_t pgid)
{
    char out_path[CTL_PATH_MAX];
    ctl_server_path(c, i, ".err", out_path, sizeof(out_path));
    struct ctl_spawn sp = CTL_SPAWN(argv);
    sp.pgid = pgid;
    sp.out_fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (c->ext.netns_fd != NULL && sp.out_fd >= 0)
        sp.netns_fd = c->ext.netns_fd(c->ext.arg, i);
    bool ready = sp.out_fd >= 0 && (c->ext.netns_fd == NULL || sp.netns_fd >= 0);
    pid_t pid = ready ? ctl_spawn(&sp) : -1;
    if (sp.out_fd >= 0)
        close(sp.out_fd);
    if (sp.netns_fd >= 0)
        close(sp.netns_fd);
    return pid;
}

int ctl_start(struct ctl_cluster *c, int i)
{
    if (!c->owned || ctl_is_running(c, i))
        return RK_ERR_INVAL;
    struct server_argv a;
    server_argv(c, i, &a);
    /* Every server joins the cluster's group; the first of an empty cluster leads a new
     * one (a group without members cannot be joined). */
    pid_t pgid = any_running(c) ? c->pgid : 0;
    pid_t pid = spawn_server(c, i, a.argv, pgid);
    if (pid < 0)
        return RK_ERR_IO;
    if (pgid == 0)
        c->pgid = pid;
    c->servers[i].pid = pid;
    c->servers[i].paused = false;
    return RK_OK;
}

int ctl_start_all(struct ctl_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        if (ctl_is_running(c, i))
            continue;
        int rc = ctl_start(c, i);
        if (rc != RK_OK)
            return rc;
    }
    return RK_OK;
}

int ctl_stop(struct ctl_cluster *c, int i)
{
    struct ctl_server *s = &c->servers[i];
    if (!c->owned || !ctl_is_running(c, i))
        return RK_ERR_INVAL;
    kill(s->pid, SIGTERM);
    if (s->paused)
        kill(s->pid, SIGCONT);
    int status = 0, rc = RK_OK;
    if (!ctl_wait_exit(s->pid, STOP_WAIT_MS, &status)) {
        fprintf(stderr, "cluster_ctl: %s did not exit within %d ms of SIGTERM; SIGKILL\n",
                s->name, STOP_WAIT_MS);
        ctl_end(s->pid, SIGKILL);
        rc = RK_ERR_TIMEOUT;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char what[128];
        describe_exit(s->name, status, what, sizeof(what));
        fprintf(stderr, "cluster_ctl: after SIGTERM, %s\n", what);
        rc = RK_ERR_IO;
    }
    forget(s);
    return rc;
}

int ctl_kill(struct ctl_cluster *c, int i)
{
    if (!c->owned || !ctl_is_running(c, i))
        return RK_ERR_INVAL;
    ctl_end(c->servers[i].pid, SIGKILL);
    forget(&c->servers[i]);
    return RK_OK;
}

/* SIGSTOP or SIGCONT of a running server. */
static int signal_server(struct ctl_cluster *c, int i, int sig)
{
    if (!c->owned || !ctl_is_running(c, i) || kill(c->servers[i].pid, sig) != 0)
        return RK_ERR_INVAL;
    c->servers[i].paused = sig == SIGSTOP;
    return RK_OK;
}

int ctl_pause(struct ctl_cluster *c, int i)
{
    return signal_server(c, i, SIGSTOP);
}

int ctl_resume(struct ctl_cluster *c, int i)
{
    return signal_server(c, i, SIGCONT);
}

int ctl_restart(struct ctl_cluster *c, int i)
{
    int rc = ctl_stop(c, i);
    return rc == RK_OK ? ctl_start(c, i) : rc;
}

int ctl_wipe(struct ctl_cluster *c, int i)
{
    if (!c->owned || ctl_is_running(c, i))
        return RK_ERR_INVAL;
    /* Every file the server keeps: log, term and vote, snapshot and its temporaries. */
    static const char *const suffixes[] = { "_log.txt", "_state", "_snapshot",
                                            "_snapshot.tmp", "_snapshot.recv" };
    for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
        char path[CTL_PATH_MAX];
        ctl_server_path(c, i, suffixes[k], path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT)
            return RK_ERR_IO;
    }
    return RK_OK;
}
