/* tools/bench_ceiling.c - the generator's ceiling: a forked server that speaks the client
 * protocol and answers every request at once, with no Raft and no disk, one thread per
 * connection like raft_server. Load against it shows what the generator itself can drive.
 * (GET: a value; REGISTER: client id 1; SET/DELETE: OK; STATUS: a leader's line.) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "bench.h"

#define CEILING_STATUS "name=ceiling role=leader term=1 leader=ceiling commit=0 applied=0 last=0"

struct ceiling {
    int listen_fd;
    char *value;
    uint32_t value_len;
};

struct ceiling_conn {
    const struct ceiling *srv;
    struct bench_conn in; /* only its fd and receive buffer are used */
};

/* The immediate answer to one request. */
static int answer(const struct ceiling *srv, const struct proto_client_req *req,
                  struct proto_buf *out)
{
    struct proto_client_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = PROTO_ST_OK;
    if (req->op == PROTO_OP_GET) {
        resp.status = PROTO_ST_VALUE;
        resp.body = srv->value;
        resp.body_len = srv->value_len;
    } else if (req->op == PROTO_OP_REGISTER) {
        resp.status = PROTO_ST_VALUE;
        resp.body = "1";
        resp.body_len = 1;
    } else if (req->op == PROTO_OP_STATUS) {
        resp.status = PROTO_ST_VALUE;
        resp.body = CEILING_STATUS;
        resp.body_len = (uint32_t)strlen(CEILING_STATUS);
    }
    out->len = 0;
    return proto_encode_client_resp(out, &resp);
}

static void *serve_conn(void *arg)
{
    struct ceiling_conn *cc = arg;
    struct proto_buf out = { 0 };
    struct bench_conn *in = &cc->in;
    uint32_t len;
    int type = 0;
    char name[64];
    if (bench_conn_read_frame(in, &len) == RK_OK &&
        proto_decode_hello(in->buf + 4, len, &type, name) == RK_OK &&
        type == PROTO_HELLO_CLIENT) {
        while (bench_conn_read_frame(in, &len) == RK_OK) {
            struct proto_client_req req;
            const uint8_t *p = in->buf + 4;
            if (proto_frame_type(p, len) != PROTO_CLIENT_REQ ||
                proto_decode_client_req(p, len, &req) != RK_OK ||
                answer(cc->srv, &req, &out) != RK_OK ||
                net_write_full(cc->in.fd, out.data, out.len) != RK_OK)
                break;
        }
    }
    proto_buf_free(&out);
    bench_conn_close(&cc->in);
    free(cc);
    return NULL;
}

int bench_ceiling_serve(int listen_fd, int value_size)
{
    if (listen_fd < 0 || value_size < 0 || (uint32_t)value_size > PROTO_MAX_VALUE)
        return 2;
    struct ceiling srv = { .listen_fd = listen_fd, .value_len = (uint32_t)value_size };
    srv.value = malloc((size_t)value_size + 1);
    if (srv.value == NULL)
        return 1;
    memset(srv.value, 'v', (size_t)value_size);
    for (;;) {
        int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct ceiling_conn *cc = calloc(1, sizeof(*cc));
        pthread_t t;
        if (cc == NULL) {
            close(fd);
            continue;
        }
        cc->srv = &srv;
        cc->in.fd = fd;
        if (pthread_create(&t, NULL, serve_conn, cc) != 0) {
            close(fd);
            free(cc);
            continue;
        }
        pthread_detach(t);
    }
}

pid_t bench_ceiling_start(int value_size, uint16_t *port, char *err, size_t errlen)
{
    int fd = net_listen("127.0.0.1", 0, 256, err, errlen);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    socklen_t alen = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &alen) != 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    /* This same program, run again (a fresh process may start threads; a fork of a
     * threaded one should not), serving on the socket as its fd 3. */
    char size[16];
    snprintf(size, sizeof(size), "%d", value_size);
    char *argv[] = { "/proc/self/exe", BENCH_CEILING_OPTION, "3", size, NULL };
    struct ctl_spawn sp = CTL_SPAWN(argv);
    sp.pass_fd = fd;
    pid_t pid = ctl_spawn(&sp);
    close(fd);
    if (pid < 0)
        snprintf(err, errlen, "fork: %s", strerror(errno));
    return pid;
}
