/* common/cluster_ctl/status.c - what a cluster's servers say: one STATUS request per
 * server, the parse of its line, the waits for a leader, for agreement and for an index,
 * and the tails of the servers' logs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../clock.h"
#include "../errors.h"
#include "../net.h"
#include "../proto.h"
#include "cluster_ctl.h"

#define POLL_PAUSE_MS 20
#define STATUS_TRY_MS 300
#define LINE_MAX_LEN 512

/* ---- one STATUS ---- */

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

static bool copy_word(char *out, size_t outlen, const char *v)
{
    return snprintf(out, outlen, "%s", v) < (int)outlen;
}

/* One key=value of a STATUS line into st; *seen gets the key's bit. False if its value
 * does not fit. */
static bool parse_field(const char *k, const char *v, struct ctl_status *st, unsigned *seen)
{
    static const char *const keys[] = { "name", "role", "leader", "term", "commit",
                                        "applied", "last", "snapshot", "voters" };
    long long *nums[] = { &st->term, &st->commit, &st->applied, &st->last, &st->snapshot,
                          &st->voters };
    for (unsigned b = 0; b < sizeof(keys) / sizeof(keys[0]); b++) {
        if (strcmp(k, keys[b]) != 0)
            continue;
        *seen |= 1u << b;
        if (b == 0)
            return copy_word(st->name, sizeof(st->name), v);
        if (b == 1)
            return copy_word(st->role, sizeof(st->role), v);
        if (b == 2)
            return copy_word(st->leader, sizeof(st->leader), v);
        return parse_num(v, nums[b - 3]);
    }
    return true; /* a field we do not know */
}

int ctl_status_parse(const char *line, struct ctl_status *st)
{
    char copy[LINE_MAX_LEN], *save = NULL;
    unsigned seen = 0;
    memset(st, 0, sizeof(*st));
    st->snapshot = -1;
    st->voters = -1;
    if (snprintf(copy, sizeof(copy), "%s", line) >= (int)sizeof(copy))
        return RK_ERR_PROTO;
    for (char *tok = strtok_r(copy, " \t\r\n", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (!parse_field(tok, eq + 1, st, &seen))
            return RK_ERR_PROTO;
    }
    return (seen & 0x7f) == 0x7f ? RK_OK : RK_ERR_PROTO;
}

/* Sends HELLO_CLIENT and one STATUS request on fd; reads the answer's line into line. */
static int status_exchange(int fd, char *line, size_t linelen)
{
    struct proto_buf b = { 0 };
    struct proto_client_req req = { .op = PROTO_OP_STATUS, .key = "", .val = "" };
    int rc = proto_encode_hello_client(&b);
    if (rc == RK_OK)
        rc = proto_encode_client_req(&b, &req);
    if (rc == RK_OK)
        rc = net_write_full(fd, b.data, b.len);
    proto_buf_free(&b);
    uint8_t *payload = NULL;
    size_t len = 0;
    if (rc == RK_OK)
        rc = net_read_frame(fd, PROTO_MAX_FRAME, &payload, &len);
    struct proto_client_resp resp;
    if (rc == RK_OK && proto_frame_type(payload, len) != PROTO_CLIENT_RESP)
        rc = RK_ERR_PROTO;
    if (rc == RK_OK)
        rc = proto_decode_client_resp(payload, len, &resp);
    if (rc == RK_OK && resp.status != PROTO_ST_VALUE)
        rc = RK_ERR_PROTO;
    if (rc == RK_OK)
        snprintf(line, linelen, "%.*s", (int)(resp.body_len < linelen ? resp.body_len
                                                                       : linelen - 1),
                 resp.body);
    free(payload);
    return rc;
}

int ctl_status_of(const struct ctl_cluster *c, int i, struct ctl_status *st, int timeout_ms)
{
    char err[256], line[LINE_MAX_LEN];
    int ms = timeout_ms > 0 ? timeout_ms : 1;
    int fd = net_connect(c->servers[i].host, c->servers[i].port, ms, err, sizeof(err));
    if (fd < 0)
        return RK_ERR_IO;
    net_set_timeouts(fd, ms);
    int rc = status_exchange(fd, line, sizeof(line));
    close(fd);
    if (rc == RK_OK && (rc = ctl_status_parse(line, st)) != RK_OK)
        fprintf(stderr, "cluster_ctl: %s: cannot parse status line '%s'\n",
                c->servers[i].name, line);
    return rc;
}

/* ---- waiting ---- */

static bool is_live(struct ctl_cluster *c, int i)
{
    return ctl_is_running(c, i) && !c->servers[i].paused;
}

/* Asks every live server for its STATUS (each try bounded by the deadline); ok[i] says
 * whether st[i] holds one. */
static void poll_all(struct ctl_cluster *c, uint64_t deadline, struct ctl_status st[],
                     bool ok[])
{
    for (int i = 0; i < c->n; i++) {
        ok[i] = false;
        if (!is_live(c, i))
            continue;
        int64_t left = (int64_t)(deadline - rk_clock_ms());
        int t = left < STATUS_TRY_MS ? (int)left : STATUS_TRY_MS;
        ok[i] = t > 0 && ctl_status_of(c, i, &st[i], t) == RK_OK;
    }
}

/* The one server that says role=leader, if a majority of the cluster follows it. */
static int check_leader(const struct ctl_cluster *c, const struct ctl_status st[],
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
    int agree = 0, voters = 0;
    for (int i = 0; i < c->n; i++) {
        voters += c->servers[i].voter;
        agree += c->servers[i].voter && ok[i] && st[i].term == st[leader].term &&
                 strcmp(st[i].leader, c->servers[leader].name) == 0;
    }
    return agree >= voters / 2 + 1 ? leader : -1;
}

/* The leader every live server names, if they all name the same one in the same term
 * and it says it leads. */
static int check_agreement(struct ctl_cluster *c, const struct ctl_status st[],
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
    int leader = first < 0 ? -1 : ctl_index_of(c, st[first].leader);
    if (leader < 0 || !ok[leader] || strcmp(st[leader].role, "leader") != 0)
        return -1;
    return leader;
}

/* Polls every live server until check finds a leader (its index) or the time is up (-1). */
static int wait_for(struct ctl_cluster *c, int timeout_ms, struct ctl_status *out,
                    bool agreement)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    struct ctl_status st[CTL_MAX_SERVERS];
    bool ok[CTL_MAX_SERVERS];
    while (rk_clock_ms() < deadline) {
        poll_all(c, deadline, st, ok);
        int leader = agreement ? check_agreement(c, st, ok) : check_leader(c, st, ok);
        if (leader >= 0) {
            if (out != NULL)
                *out = st[leader];
            return leader;
        }
        rk_sleep_ms(POLL_PAUSE_MS);
    }
    return -1;
}

int ctl_wait_leader(struct ctl_cluster *c, int timeout_ms, struct ctl_status *st)
{
    return wait_for(c, timeout_ms, st, false);
}

int ctl_wait_agreement(struct ctl_cluster *c, int timeout_ms)
{
    return wait_for(c, timeout_ms, NULL, true);
}

/* Polls server i until its commit (or applied) index reaches index. */
static int wait_index(const struct ctl_cluster *c, int i, long long index, int timeout_ms,
                      bool applied)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = (int64_t)(deadline - rk_clock_ms());
        if (left <= 0)
            return RK_ERR_TIMEOUT;
        struct ctl_status st;
        int t = left < STATUS_TRY_MS ? (int)left : STATUS_TRY_MS;
        if (ctl_status_of(c, i, &st, t) == RK_OK && (applied ? st.applied : st.commit) >= index)
            return RK_OK;
        rk_sleep_ms(POLL_PAUSE_MS);
    }
}

int ctl_wait_commit(const struct ctl_cluster *c, int i, long long index, int timeout_ms)
{
    return wait_index(c, i, index, timeout_ms, false);
}

int ctl_wait_applied(const struct ctl_cluster *c, int i, long long index, int timeout_ms)
{
    return wait_index(c, i, index, timeout_ms, true);
}

/* ---- logs ---- */

/* Prints the last `lines` lines of path (looking at most at its last 64 KiB). */
static void dump_tail(const char *path, int lines)
{
    enum { TAIL_BYTES = 64 * 1024 };
    static char buf[TAIL_BYTES + 1];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "  (no %s)\n", path);
        return;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > TAIL_BYTES ? size - TAIL_BYTES : 0, SEEK_SET);
    size_t n = fread(buf, 1, TAIL_BYTES, f);
    fclose(f);
    buf[n] = '\0';
    size_t start = n;
    for (int seen = 0; start > 0; start--)
        if (buf[start - 1] == '\n' && start != n && ++seen >= lines)
            break;
    fputs(buf + start, stderr);
    if (n > 0 && buf[n - 1] != '\n')
        fputc('\n', stderr);
}

void ctl_dump_logs(const struct ctl_cluster *c, int lines)
{
    if (c == NULL || c->dir[0] == '\0')
        return;
    for (int i = 0; i < c->n; i++) {
        char path[CTL_PATH_MAX];
        ctl_server_path(c, i, ".err", path, sizeof(path));
        fprintf(stderr, "---- %s (port %u, %s): last %d lines of %s ----\n",
                c->servers[i].name, (unsigned)c->servers[i].port,
                c->servers[i].pid > 0 ? "running" : "down", lines, path);
        dump_tail(path, lines);
    }
    fprintf(stderr, "---- end of server logs ----\n");
}
