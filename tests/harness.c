/* tests/harness.c - what the integration and stress tests add to common/cluster_ctl:
 * client sessions, sanitizer reports in the servers' logs, running a program with its
 * output captured, raw frames, and the cleanup before a failed assertion. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"

struct ctl_cluster *harness_cluster_new(int n, char *err, size_t errlen)
{
    signal(SIGPIPE, SIG_IGN);
    return ctl_cluster_new(n, "integ", NULL, err, errlen);
}

const char *harness_client_bin(void)
{
    const char *p = getenv("RK_CLIENT_BIN");
    return (p != NULL && p[0] != '\0') ? p : "./client/raft_client";
}

/* ---- client sessions ---- */

struct client_session *harness_session(struct ctl_cluster *c, int i, bool use_registry,
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

const char *harness_fault_server_bin(void)
{
    const char *p = getenv("RK_FAULT_SERVER_BIN");
    return p != NULL && p[0] != '\0' ? p : "build/default/tests/raft_server_faults";
}

void harness_stall_disk(struct ctl_cluster *c, int i, bool stall)
{
    char path[CTL_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/stall.%ld", c->dir, (long)c->servers[i].pid);
    if (stall) {
        FILE *f = fopen(path, "w");
        HARNESS_ASSERT(c, f != NULL, "create %s", path);
        fclose(f);
    } else {
        unlink(path);
    }
}

int harness_log_lines_with(const struct ctl_cluster *c, int i, const char *a, const char *b)
{
    char path[CTL_PATH_MAX], line[2048];
    ctl_server_path(c, i, ".err", path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL);
    fclose(f);
    return n;
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

int harness_sanitizer_reports(const struct ctl_cluster *c, char *first, size_t firstlen)
{
    int count = 0;
    if (first != NULL && firstlen > 0)
        first[0] = '\0';
    for (int i = 0; i < c->n; i++) {
        char path[CTL_PATH_MAX], line[1024];
        ctl_server_path(c, i, ".err", path, sizeof(path));
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

void harness_fail_cleanup(struct ctl_cluster *c)
{
    ctl_dump_logs(c, 25);
    ctl_cluster_destroy(c);
}

void harness_format(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
}

/* ---- running a program ---- */

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

/* The parent's side: feeds stdin, collects stdout/stderr until both close or the
 * deadline passes. Returns false on timeout. */
static bool run_pump(int in_w, int out_r, int err_r, const char *stdin_text, char *out,
                     size_t outlen, char *errout, size_t errlen, uint64_t deadline)
{
    size_t in_len = stdin_text != NULL ? strlen(stdin_text) : 0, in_off = 0;
    size_t out_used = 0, err_used = 0;
    bool out_open = true, err_open = true;
    if (in_len == 0) {
        close(in_w);
        in_w = -1;
    }
    while (out_open || err_open) {
        int64_t left = (int64_t)(deadline - rk_clock_ms());
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

/* Three pipes for a child's stdin, stdout and stderr; our ends ([0][1], [1][0], [2][0])
 * non-blocking. RK_OK, or RK_ERR_IO with none left open. */
static int open_pipes(int p[3][2])
{
    for (int k = 0; k < 3; k++) {
        if (pipe2(p[k], O_CLOEXEC) != 0) {
            for (int j = 0; j < k; j++) {
                close(p[j][0]);
                close(p[j][1]);
            }
            return RK_ERR_IO;
        }
        int ours = p[k][k == 0];
        fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK);
    }
    return RK_OK;
}

int harness_run(char *const argv[], const char *stdin_text, char *out, size_t outlen,
                char *errout, size_t errlen, int timeout_ms, int *exit_status)
{
    int p[3][2];
    out[0] = '\0';
    errout[0] = '\0';
    signal(SIGPIPE, SIG_IGN);
    if (open_pipes(p) != RK_OK)
        return RK_ERR_IO;
    struct ctl_spawn sp = CTL_SPAWN(argv);
    sp.in_fd = p[0][0];
    sp.out_fd = p[1][1];
    sp.err_fd = p[2][1];
    pid_t pid = ctl_spawn(&sp);
    for (int k = 0; k < 3; k++) /* the child's ends, and ours if there is no child */
        for (int end = 0; end < 2; end++)
            if (end == (k != 0) || pid < 0)
                close(p[k][end]);
    if (pid < 0)
        return RK_ERR_IO;
    uint64_t deadline = rk_clock_ms() + (uint64_t)timeout_ms;
    bool done = run_pump(p[0][1], p[1][0], p[2][0], stdin_text, out, outlen, errout, errlen,
                         deadline); /* closes p[0][1] */
    close(p[1][0]);
    close(p[2][0]);
    int status = 0;
    if (!done || !ctl_wait_exit(pid, (int)(int64_t)(deadline - rk_clock_ms()) + 1, &status)) {
        ctl_end(pid, SIGKILL);
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

int harness_raw_client(struct ctl_cluster *c, int i)
{
    char err[256];
    int fd = net_connect(c->servers[i].host, c->servers[i].port, 2000, err, sizeof(err));
    struct proto_buf b = { 0 };
    if (fd >= 0 && (proto_encode_hello_client(&b) != RK_OK ||
                    net_write_full(fd, b.data, b.len) != RK_OK)) {
        close(fd);
        fd = -1;
    }
    proto_buf_free(&b);
    return fd;
}

int harness_raw_request(int fd, uint8_t op, const char *key, const char *val)
{
    struct proto_client_req req = { .op = op, .key = key, .key_len = (uint32_t)strlen(key),
                                    .val = val, .val_len = (uint32_t)strlen(val) };
    struct proto_buf b = { 0 };
    int rc = proto_encode_client_req(&b, &req);
    if (rc == RK_OK)
        rc = net_write_full(fd, b.data, b.len);
    proto_buf_free(&b);
    return rc;
}

int harness_raw_answer(int fd, int ms, char **body, uint32_t *body_len)
{
    *body = NULL;
    *body_len = 0;
    net_set_timeouts(fd, ms);
    uint8_t *payload = NULL;
    size_t len = 0;
    int rc = net_read_frame(fd, PROTO_MAX_FRAME, &payload, &len);
    if (rc != RK_OK)
        return rc;
    struct proto_client_resp resp;
    rc = proto_decode_client_resp(payload, len, &resp);
    if (rc == RK_OK) {
        *body = malloc((size_t)resp.body_len + 1);
        rc = *body == NULL ? RK_ERR_NOMEM : resp.status;
    }
    if (*body != NULL) {
        memcpy(*body, resp.body, resp.body_len);
        (*body)[resp.body_len] = '\0';
        *body_len = resp.body_len;
    }
    free(payload);
    return rc;
}

struct ctl_cluster *harness_start(int n, int leader_wait_ms)
{
    return harness_start_with(n, NULL, 0, leader_wait_ms);
}

struct ctl_cluster *harness_start_with(int n, const char *const *args, int n_args,
                                       int leader_wait_ms)
{
    char err[256];
    struct ctl_cluster *c = harness_cluster_new(n, err, sizeof(err));
    ck_assert_msg(c != NULL, "harness_cluster_new: %s", err);
    for (int i = 0; i < n_args; i++)
        c->server_args[c->n_server_args++] = args[i];
    int rc = ctl_start_all(c);
    HARNESS_ASSERT(c, rc == RK_OK, "starting the servers: %s", rk_strerror(rc));
    HARNESS_ASSERT(c, leader_wait_ms <= 0 || ctl_wait_leader(c, leader_wait_ms, NULL) >= 0,
                   "no leader within %d ms", leader_wait_ms);
    return c;
}

void harness_finish(struct ctl_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        ctl_is_running(c, i);
    HARNESS_ASSERT(c, c->unexpected_exits == 0, "%d server(s) died on their own",
                   c->unexpected_exits);
    char first[512];
    int reports = harness_sanitizer_reports(c, first, sizeof(first));
    HARNESS_ASSERT(c, reports == 0, "%d sanitizer report line(s) in the server logs, first: %s",
                   reports, first);
    ctl_cluster_destroy(c);
}
