/* tests/harness_net.c - network namespaces for the harness: one namespace per server on a
 * veth pair into a bridge in the root namespace, blackhole routes and link-down to cut
 * servers apart, and removal (also of what dead runs left behind, and by the cluster's
 * janitor). A common/cluster_ctl cluster carries them as its ext. Uses iproute2's `ip`. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/errors.h"

#define NET_PREFIX "rkj"
#define NET_PORT 7000        /* each server has its own address, so they share a port */
#define IP_TIMEOUT_MS 5000
#define IP_MAX_ARGS 16
#define NETNS_DIR "/var/run/netns"
#define SYS_NET_DIR "/sys/class/net"

struct harness_netns {
    int n;
    int subnet;                            /* X of 10.77.X.0/24 */
    char ip_bin[64];
    char bridge[16];
    char ns[CTL_MAX_SERVERS][16];
    char veth[CTL_MAX_SERVERS][16];    /* the root namespace's end, on the bridge */
    char peer[CTL_MAX_SERVERS][16];    /* the end inside ns[i] */
    char addr[CTL_MAX_SERVERS][32];
    bool cut[CTL_MAX_SERVERS][CTL_MAX_SERVERS];
    bool down[CTL_MAX_SERVERS];
};

/* ---- running ip ---- */

/* Runs `ip ARGS...` (a NULL-terminated list). RK_OK on exit status 0; otherwise
 * RK_ERR_IO with the command and its stderr in err (if not NULL). */
static int ip_cmd(const struct harness_netns *net, char *err, size_t errlen, ...)
{
    char *argv[IP_MAX_ARGS + 2];
    int a = 0;
    argv[a++] = (char *)net->ip_bin;
    va_list ap;
    va_start(ap, errlen);
    for (const char *arg; a < IP_MAX_ARGS && (arg = va_arg(ap, const char *)) != NULL;)
        argv[a++] = (char *)arg;
    va_end(ap);
    argv[a] = NULL;
    char out[512], errout[512];
    int status = -1;
    int rc = harness_run(argv, NULL, out, sizeof(out), errout, sizeof(errout), IP_TIMEOUT_MS,
                         &status);
    if (rc == RK_OK && status == 0)
        return RK_OK;
    if (err != NULL && errlen > 0) {
        size_t used = (size_t)snprintf(err, errlen, "ip");
        for (int k = 1; k < a && used < errlen; k++)
            used += (size_t)snprintf(err + used, errlen - used, " %s", argv[k]);
        if (used < errlen)
            snprintf(err + used, errlen - used, ": %s",
                     rc != RK_OK ? rk_strerror(rc) : errout[0] != '\0' ? errout : "failed");
        size_t len = strlen(err);
        while (len > 0 && err[len - 1] == '\n')
            err[--len] = '\0';
    }
    return RK_ERR_IO;
}

static bool find_ip(char *out, size_t outlen)
{
    static const char *const paths[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
        if (access(paths[k], X_OK) == 0) {
            snprintf(out, outlen, "%s", paths[k]);
            return true;
        }
    }
    return false;
}

static bool path_exists(const char *dir, const char *name)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof(path), "%.32s/%.255s", dir, name);
    return lstat(path, &st) == 0;
}

/* ---- leftovers of dead runs ---- */

/* The pid in a name "rkj<pid>...", or 0 if it is not one of ours. */
static pid_t owner_pid(const char *name)
{
    if (strncmp(name, NET_PREFIX, strlen(NET_PREFIX)) != 0)
        return 0;
    const char *p = name + strlen(NET_PREFIX);
    long pid = 0;
    for (; *p >= '0' && *p <= '9' && pid < 100000000; p++)
        pid = pid * 10 + (*p - '0');
    return p == name + strlen(NET_PREFIX) ? 0 : (pid_t)pid;
}

static bool is_leftover(const char *name)
{
    pid_t pid = owner_pid(name);
    return pid > 0 && pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH;
}

/* Removes the namespaces and links whose creating process is gone. */
static void remove_leftovers(const struct harness_netns *net)
{
    const char *dirs[] = {NETNS_DIR, SYS_NET_DIR};
    for (int d = 0; d < 2; d++) {
        DIR *dir = opendir(dirs[d]);
        if (dir == NULL)
            continue;
        char names[64][64];
        int found = 0;
        for (struct dirent *e; found < 64 && (e = readdir(dir)) != NULL;)
            if (is_leftover(e->d_name))
                snprintf(names[found++], sizeof(names[0]), "%.63s", e->d_name);
        closedir(dir);
        for (int k = 0; k < found; k++) {
            fprintf(stderr, "harness: removing %s %s left by a dead run\n",
                    d == 0 ? "namespace" : "link", names[k]);
            if (d == 0)
                ip_cmd(net, NULL, 0, "netns", "del", names[k], (char *)NULL);
            else if (path_exists(SYS_NET_DIR, names[k]))
                ip_cmd(net, NULL, 0, "link", "del", names[k], (char *)NULL);
        }
    }
}

/* ---- setup ---- */

/* The names of n servers' namespaces, links and bridge; nothing made yet. */
static struct harness_netns *net_alloc(int n, char *err, size_t errlen)
{
    static int clusters_made; /* tells apart the clusters of one process */
    if (geteuid() != 0) {
        snprintf(err, errlen, "not root (network namespaces need CAP_SYS_ADMIN)");
        return NULL;
    }
    struct harness_netns *net = n >= 1 && n <= CTL_MAX_SERVERS ? calloc(1, sizeof(*net)) : NULL;
    if (net == NULL) {
        snprintf(err, errlen, "out of memory, or a bad cluster size %d", n);
        return NULL;
    }
    if (!find_ip(net->ip_bin, sizeof(net->ip_bin))) {
        snprintf(err, errlen, "no `ip` program (iproute2) found");
        free(net);
        return NULL;
    }
    char base[16];
    snprintf(base, sizeof(base), NET_PREFIX "%d%c", (int)getpid(),
             'a' + __atomic_fetch_add(&clusters_made, 1, __ATOMIC_RELAXED) % 26);
    net->n = n;
    snprintf(net->bridge, sizeof(net->bridge), "%.12sb", base);
    for (int i = 0; i < n; i++) {
        snprintf(net->ns[i], sizeof(net->ns[i]), "%.12ss%c", base, (char)('0' + i));
        snprintf(net->veth[i], sizeof(net->veth[i]), "%.12sh%c", base, (char)('0' + i));
        snprintf(net->peer[i], sizeof(net->peer[i]), "%.12sn%c", base, (char)('0' + i));
    }
    return net;
}

/* A 10.77.X.0/24 that no interface uses yet. */
static int pick_subnet(const struct harness_netns *net, char *err, size_t errlen)
{
    char *argv[] = {(char *)net->ip_bin, "-o", "-4", "addr", "show", NULL};
    static char out[64 * 1024];
    char errout[256];
    int status = -1;
    if (harness_run(argv, NULL, out, sizeof(out), errout, sizeof(errout), IP_TIMEOUT_MS,
                    &status) != RK_OK || status != 0) {
        snprintf(err, errlen, "ip -o -4 addr show failed: %s", errout);
        return -1;
    }
    int start = (int)(getpid() % 200);
    for (int k = 0; k < 250; k++) {
        int x = 1 + (start + k) % 250;
        char pat[24];
        snprintf(pat, sizeof(pat), "10.77.%d.", x);
        if (strstr(out, pat) == NULL)
            return x;
    }
    snprintf(err, errlen, "every 10.77.X.0/24 is in use");
    return -1;
}

static int create_bridge(struct harness_netns *net, char *err, size_t errlen)
{
    char cidr[32];
    snprintf(cidr, sizeof(cidr), "10.77.%d.254/24", net->subnet);
    int rc = ip_cmd(net, err, errlen, "link", "add", net->bridge, "type", "bridge",
                    (char *)NULL);
    if (rc == RK_OK)
        rc = ip_cmd(net, err, errlen, "addr", "add", cidr, "dev", net->bridge, (char *)NULL);
    if (rc == RK_OK)
        rc = ip_cmd(net, err, errlen, "link", "set", net->bridge, "up", (char *)NULL);
    return rc;
}

static int create_server_ns(struct harness_netns *net, int i, char *err, size_t errlen)
{
    char cidr[40];
    snprintf(net->addr[i], sizeof(net->addr[i]), "10.77.%d.%d", net->subnet, i + 1);
    snprintf(cidr, sizeof(cidr), "%s/24", net->addr[i]);
    const char *ns = net->ns[i];
    int rc = ip_cmd(net, err, errlen, "netns", "add", ns, (char *)NULL);
    if (rc == RK_OK)
        rc = ip_cmd(net, err, errlen, "link", "add", net->veth[i], "type", "veth", "peer",
                    "name", net->peer[i], "netns", ns, (char *)NULL);
    if (rc == RK_OK)
        rc = ip_cmd(net, err, errlen, "link", "set", net->veth[i], "master", net->bridge,
                    "up", (char *)NULL);
    if (rc == RK_OK)
        rc = ip_cmd(net, err, errlen, "-n", ns, "addr", "add", cidr, "dev", net->peer[i],
                    (char *)NULL);
    if (rc == RK_OK)
        rc = ip_cmd(net, err, errlen, "-n", ns, "link", "set", net->peer[i], "up",
                    (char *)NULL);
    if (rc == RK_OK)
        rc = ip_cmd(net, err, errlen, "-n", ns, "link", "set", "lo", "up", (char *)NULL);
    return rc;
}

/* ctl_ext.place: makes the bridge and every server's namespace, and puts the servers at
 * their addresses. */
static int net_place(void *arg, struct ctl_cluster *c, char *err, size_t errlen)
{
    struct harness_netns *net = arg;
    remove_leftovers(net);
    net->subnet = pick_subnet(net, err, errlen);
    if (net->subnet < 0)
        return RK_ERR_IO;
    int rc = create_bridge(net, err, errlen);
    for (int i = 0; rc == RK_OK && i < c->n; i++)
        rc = create_server_ns(net, i, err, errlen);
    for (int i = 0; rc == RK_OK && i < c->n; i++) {
        snprintf(c->servers[i].host, sizeof(c->servers[i].host), "%s", net->addr[i]);
        c->servers[i].port = NET_PORT;
    }
    return rc;
}

/* ctl_ext.netns_fd: an fd of server i's namespace. */
static int net_open_ns(void *arg, int i)
{
    const struct harness_netns *net = arg;
    char path[64];
    snprintf(path, sizeof(path), NETNS_DIR "/%s", net->ns[i]);
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* ---- teardown ---- */

/* ctl_ext.remove: deletes what exists of it (also in the janitor: reads net only). */
static void net_remove(void *arg)
{
    const struct harness_netns *net = arg;
    char err[512];
    for (int i = 0; i < net->n; i++) {
        /* deleting one end of a veth pair deletes both */
        if (path_exists(SYS_NET_DIR, net->veth[i]) &&
            ip_cmd(net, err, sizeof(err), "link", "del", net->veth[i], (char *)NULL) != RK_OK)
            fprintf(stderr, "harness: %s\n", err);
        if (path_exists(NETNS_DIR, net->ns[i]) &&
            ip_cmd(net, err, sizeof(err), "netns", "del", net->ns[i], (char *)NULL) != RK_OK)
            fprintf(stderr, "harness: %s\n", err);
    }
    if (path_exists(SYS_NET_DIR, net->bridge) &&
        ip_cmd(net, err, sizeof(err), "link", "del", net->bridge, (char *)NULL) != RK_OK)
        fprintf(stderr, "harness: %s\n", err);
}

struct ctl_cluster *harness_cluster_new_netns(int n, char *err, size_t errlen)
{
    struct harness_netns *net = net_alloc(n, err, errlen);
    if (net == NULL)
        return NULL;
    struct ctl_ext ext = { .arg = net, .place = net_place, .netns_fd = net_open_ns,
                           .remove = net_remove, .release = free };
    signal(SIGPIPE, SIG_IGN);
    return ctl_cluster_new(n, "integ", &ext, err, errlen);
}

/* The namespaces of c, or NULL if it has none. */
static struct harness_netns *net_of(const struct ctl_cluster *c)
{
    return c->ext.remove == net_remove ? c->ext.arg : NULL;
}

/* ---- faults ---- */

static int blackhole(struct harness_netns *net, int from, int to, bool add, char *err,
                     size_t errlen)
{
    char dst[40];
    snprintf(dst, sizeof(dst), "%s/32", net->addr[to]);
    return ip_cmd(net, err, errlen, "-n", net->ns[from], "route", add ? "add" : "del",
                  "blackhole", dst, (char *)NULL);
}

/* The namespaces of c, if servers i and j are two of them. */
static struct harness_netns *pair_net(const struct ctl_cluster *c, int i, int j)
{
    bool ok = i >= 0 && j >= 0 && i < c->n && j < c->n && i != j;
    return ok ? net_of(c) : NULL;
}

int harness_net_cut(struct ctl_cluster *c, int i, int j)
{
    struct harness_netns *net = pair_net(c, i, j);
    if (net == NULL)
        return RK_ERR_INVAL;
    if (net->cut[i][j])
        return RK_OK;
    char err[512];
    int rc = blackhole(net, i, j, true, err, sizeof(err));
    if (rc == RK_OK)
        rc = blackhole(net, j, i, true, err, sizeof(err));
    if (rc != RK_OK)
        fprintf(stderr, "harness: %s\n", err);
    net->cut[i][j] = net->cut[j][i] = true; /* heal removes whatever half exists */
    return rc;
}

int harness_net_heal(struct ctl_cluster *c, int i, int j)
{
    struct harness_netns *net = pair_net(c, i, j);
    if (net == NULL)
        return RK_ERR_INVAL;
    if (!net->cut[i][j])
        return RK_OK;
    char err[512];
    int rc = RK_OK;
    for (int side = 0; side < 2; side++) {
        int from = side == 0 ? i : j, to = side == 0 ? j : i;
        if (blackhole(net, from, to, false, err, sizeof(err)) != RK_OK) {
            fprintf(stderr, "harness: %s\n", err);
            rc = RK_ERR_IO;
        }
    }
    net->cut[i][j] = net->cut[j][i] = false;
    return rc;
}

bool harness_net_is_cut(const struct ctl_cluster *c, int i, int j)
{
    const struct harness_netns *net = pair_net(c, i, j);
    return net != NULL && net->cut[i][j];
}

int harness_net_link(struct ctl_cluster *c, int i, bool up)
{
    struct harness_netns *net = net_of(c);
    if (net == NULL || i < 0 || i >= c->n)
        return RK_ERR_INVAL;
    char err[512];
    int rc = ip_cmd(net, err, sizeof(err), "link", "set", net->veth[i], up ? "up" : "down",
                    (char *)NULL);
    if (rc != RK_OK)
        fprintf(stderr, "harness: %s\n", err);
    else
        net->down[i] = !up;
    return rc;
}

int harness_net_heal_all(struct ctl_cluster *c)
{
    struct harness_netns *net = net_of(c);
    int rc = RK_OK;
    for (int i = 0; net != NULL && i < c->n; i++) {
        for (int j = i + 1; j < c->n; j++)
            if (net->cut[i][j] && harness_net_heal(c, i, j) != RK_OK)
                rc = RK_ERR_IO;
        if (net->down[i] && harness_net_link(c, i, true) != RK_OK)
            rc = RK_ERR_IO;
    }
    return rc;
}
