/* common/cluster_ctl/free_port.c - free TCP ports on 127.0.0.1 for the clusters of the
 * tests and tools (see ctl_free_ports). Each port picked is held bound until all are
 * picked, so that no two are the same. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../clock.h"
#include "../errors.h"
#include "cluster_ctl.h"

#define MAX_PORTS 64
#define LOW_PORT 10000
#define ATTEMPTS 200

/* True if 127.0.0.1:port can be bound now; the socket is left open in *fd. */
static bool try_bind(uint16_t port, int *fd)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(s);
        return false;
    }
    *fd = s;
    return true;
}

/* Lowest port of the kernel's ephemeral range (32768 if unknown). */
static int ephemeral_low(void)
{
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

/* One free port, held open in *held_fd; -1 if none. */
static int pick_port(unsigned *seed, int *held_fd)
{
    int lo = ephemeral_low();
    for (int attempt = 0; lo > LOW_PORT + 2000 && attempt < ATTEMPTS; attempt++) {
        uint16_t port = (uint16_t)(LOW_PORT + rand_r(seed) % (unsigned)(lo - LOW_PORT));
        if (try_bind(port, held_fd))
            return port;
    }
    if (!try_bind(0, held_fd))
        return -1;
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    if (getsockname(*held_fd, (struct sockaddr *)&a, &alen) != 0) {
        close(*held_fd);
        return -1;
    }
    return ntohs(a.sin_port);
}

int ctl_free_ports(uint16_t *ports, int n, char *err, size_t errlen)
{
    if (n < 0 || n > MAX_PORTS) {
        snprintf(err, errlen, "cannot pick %d ports (at most %d)", n, MAX_PORTS);
        return RK_ERR_INVAL;
    }
    int held[MAX_PORTS];
    unsigned seed = (unsigned)getpid() ^ (unsigned)rk_clock_ns();
    int rc = RK_OK, got = 0;
    for (; got < n; got++) {
        int port = pick_port(&seed, &held[got]);
        if (port < 0) {
            snprintf(err, errlen, "no free port on 127.0.0.1: %s", strerror(errno));
            rc = RK_ERR_IO;
            break;
        }
        ports[got] = (uint16_t)port;
    }
    for (int k = 0; k < got; k++)
        close(held[k]);
    return rc;
}
