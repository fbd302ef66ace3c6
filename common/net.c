/* common/net.c - TCP helpers shared by client and server: listen, connect with a
 * timeout, full reads and writes, and length-prefixed frame reads (see net.h). */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"

#define NET_MAX_ADDRS 16

/* Resolves host:port into a getaddrinfo list. A NULL or empty host with passive set
 * means every local address. Returns 0 or a getaddrinfo error. */
static int resolve(const char *host, uint16_t port, int passive, struct addrinfo **res)
{
    char port_str[8];
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(port_str, sizeof(port_str), "%u", (unsigned)port);
    if (host != NULL && host[0] == '\0')
        host = NULL;
    return getaddrinfo(host, port_str, &hints, res);
}

/* Collects up to NET_MAX_ADDRS addresses of list, IPv4 ones first ("localhost" may
 * resolve to ::1 as well, and the cluster listens on IPv4). Returns the count. */
static int order_addrs(struct addrinfo *list, struct addrinfo **out)
{
    int n = 0;
    for (int want_v4 = 1; want_v4 >= 0; want_v4--)
        for (struct addrinfo *a = list; a != NULL && n < NET_MAX_ADDRS; a = a->ai_next)
            if ((a->ai_family == AF_INET) == (want_v4 == 1))
                out[n++] = a;
    return n;
}

static int listen_on(const struct addrinfo *a, int backlog)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int net_listen(const char *host, uint16_t port, int backlog, char *err, size_t errlen)
{
    struct addrinfo *list = NULL, *addrs[NET_MAX_ADDRS];
    const char *shown = host && host[0] ? host : "*";
    int gai = resolve(host, port, 1, &list);
    if (gai != 0) {
        rk_errf(err, errlen, "listen %s:%u: %s", shown, (unsigned)port, gai_strerror(gai));
        return -1;
    }
    int n = order_addrs(list, addrs);
    int fd = -1, saved = ENOENT;
    for (int i = 0; i < n && fd < 0; i++) {
        fd = listen_on(addrs[i], backlog);
        if (fd < 0)
            saved = errno;
    }
    freeaddrinfo(list);
    if (fd < 0)
        rk_errf(err, errlen, "listen %s:%u: %s", shown, (unsigned)port, strerror(saved));
    return fd;
}

/* Waits for a non-blocking connect to finish until deadline (< 0: no deadline).
 * Returns 0 or -1 with errno set (ETIMEDOUT when the deadline passed). */
static int wait_connected(int fd, int64_t deadline)
{
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - (int64_t)rk_clock_ms();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        int r = poll(&pfd, 1, wait);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            continue; /* the loop re-checks the deadline */
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -1;
        if (soerr != 0) {
            errno = soerr;
            return -1;
        }
        return 0;
    }
}

int net_set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* One connect attempt: non-blocking connect bounded by the deadline, then back to
 * blocking with TCP_NODELAY. Returns the fd or -1 with errno set. */
static int connect_to(const struct addrinfo *a, int64_t deadline)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    a->ai_protocol);
    if (fd < 0)
        return -1;
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc < 0 && (errno == EINPROGRESS || errno == EINTR))
        rc = wait_connected(fd, deadline);
    int flags = rc == 0 ? fcntl(fd, F_GETFL) : -1;
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 || net_set_nodelay(fd) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int net_connect(const char *host, uint16_t port, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo *list = NULL, *addrs[NET_MAX_ADDRS];
    if (host == NULL || host[0] == '\0' || port == 0) {
        rk_errf(err, errlen, "connect: no host or port given");
        return -1;
    }
    int gai = resolve(host, port, 0, &list);
    if (gai != 0) {
        rk_errf(err, errlen, "connect %s:%u: %s", host, (unsigned)port, gai_strerror(gai));
        return -1;
    }
    int64_t deadline = timeout_ms > 0 ? (int64_t)rk_clock_ms() + timeout_ms : -1;
    int n = order_addrs(list, addrs);
    int fd = -1, saved = ENOENT;
    for (int i = 0; i < n && fd < 0; i++) {
        fd = connect_to(addrs[i], deadline);
        if (fd < 0)
            saved = errno;
        if (fd < 0 && saved == ETIMEDOUT)
            break; /* the time is spent for every address */
    }
    freeaddrinfo(list);
    if (fd < 0)
        rk_errf(err, errlen, "connect %s:%u: %s", host, (unsigned)port, strerror(saved));
    return fd;
}

int net_set_timeouts(int fd, int timeout_ms)
{
    if (timeout_ms < 0)
        return RK_ERR_INVAL;
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return RK_ERR_IO;
    return RK_OK;
}

/* An errno from send/recv as an RK_ERR_* code. */
static int io_error(int e)
{
    return (e == EAGAIN || e == EWOULDBLOCK) ? RK_ERR_TIMEOUT : RK_ERR_IO;
}

/* send() without SIGPIPE; falls back to write() for a pipe or file (tests use them). */
static ssize_t send_some(int fd, const void *buf, size_t len)
{
    ssize_t r = send(fd, buf, len, MSG_NOSIGNAL);
    if (r < 0 && errno == ENOTSOCK)
        r = write(fd, buf, len);
    return r;
}

static ssize_t recv_some(int fd, void *buf, size_t len)
{
    ssize_t r = recv(fd, buf, len, 0);
    if (r < 0 && errno == ENOTSOCK)
        r = read(fd, buf, len);
    return r;
}

int net_write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t r = send_some(fd, p + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return io_error(errno);
        if (r == 0)
            return RK_ERR_IO;
        done += (size_t)r;
    }
    return RK_OK;
}

/* EOF before the first byte is RK_ERR_CLOSED; EOF after some bytes is RK_ERR_IO
 * (the data was cut short). */
int net_read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t r = recv_some(fd, p + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return io_error(errno);
        if (r == 0)
            return done == 0 ? RK_ERR_CLOSED : RK_ERR_IO;
        done += (size_t)r;
    }
    return RK_OK;
}

/* EOF at the very start of a frame is RK_ERR_CLOSED (a clean close between frames);
 * EOF anywhere later - inside the length or the payload - is RK_ERR_IO (a cut frame). */
int net_read_frame(int fd, size_t max_frame, uint8_t **payload, size_t *len)
{
    uint8_t hdr[4];
    *payload = NULL;
    *len = 0;
    int rc = net_read_full(fd, hdr, sizeof(hdr));
    if (rc != RK_OK)
        return rc;
    uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
                 (uint32_t)hdr[3];
    if (n == 0 || n > max_frame)
        return RK_ERR_TOOBIG;
    uint8_t *buf = malloc(n);
    if (buf == NULL)
        return RK_ERR_NOMEM;
    rc = net_read_full(fd, buf, n);
    if (rc != RK_OK) {
        free(buf);
        return rc == RK_ERR_CLOSED ? RK_ERR_IO : rc;
    }
    *payload = buf;
    *len = n;
    return RK_OK;
}
