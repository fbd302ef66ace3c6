/* tests/harness.h - what the integration and stress tests add to the cluster control of
 * common/cluster_ctl (clusters of real raft_server processes: start, stop, kill, pause,
 * wipe, STATUS, waits, log tails): client sessions and calls, sanitizer reports in the
 * servers' logs, running a program with captured output, raw frames, Check's assertion
 * that cleans up before it fails, and (tests/harness_net.c) clusters with one network
 * namespace per server, for partitions. */
#ifndef RK_HARNESS_H
#define RK_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../client/session.h"
#include "../common/clock.h"
#include "../common/cluster_ctl/cluster_ctl.h"

/* A cluster of n servers on 127.0.0.1 for one test (common/cluster_ctl, in /tmp/rk_integ_*);
 * nothing started. Start servers only from a thread that outlives them (the test's main
 * thread): they die with it. NULL with err set on failure. */
struct ctl_cluster *harness_cluster_new(int n, char *err, size_t errlen);
/* $RK_CLIENT_BIN or ./client/raft_client. */
const char *harness_client_bin(void);

/* A session that tries server i first (i < 0: none) and, if use_registry, falls back on
 * the cluster's registry. NULL on failure. */
struct client_session *harness_session(struct ctl_cluster *c, int i, bool use_registry,
                                       int timeout_ms);
/* One command through a session. Returns the reply status (PROTO_ST_*) or, when the
 * call itself failed, the negative RK_ERR_* code. A value is copied to val (NUL-terminated,
 * truncated to outlen-1) when out is not NULL; when the call failed, out gets why. */
int harness_call(struct client_session *s, int op, const char *key, const char *val,
                 char *out, size_t outlen);

/* The test-only server with the disk fault seam (tests/fault_io.c):
 * $RK_FAULT_SERVER_BIN or build/default/tests/raft_server_faults. */
const char *harness_fault_server_bin(void);
/* Makes server i's fdatasync of its log hang (stall) or answer again; the server runs
 * harness_fault_server_bin() with RK_FAULT_STALL_DIR set to c->dir. */
void harness_stall_disk(struct ctl_cluster *c, int i, bool stall);

/* Number of lines in a file (-1 if it cannot be read). */
long harness_count_lines(const char *path);
/* Counts the lines of server i's log (NAME.err) that hold a and (unless NULL) b. */
int harness_log_lines_with(const struct ctl_cluster *c, int i, const char *a, const char *b);
/* Counts sanitizer reports (ASan, UBSan "runtime error:", TSan, LSan) in the servers'
 * NAME.err files and copies the first such line to first (may be NULL). */
int harness_sanitizer_reports(const struct ctl_cluster *c, char *first, size_t firstlen);
/* A cluster of n servers from harness_cluster_new, every one started; with
 * leader_wait_ms > 0, also elected a leader within that time. Fails the test otherwise. */
struct ctl_cluster *harness_start(int n, int leader_wait_ms);
/* The same, every server started with the n_args extra arguments args (kept, not copied). */
struct ctl_cluster *harness_start_with(int n, const char *const *args, int n_args,
                                       int leader_wait_ms);
/* The end of an integration test: every server the test did not stop must still be
 * running, no server may have printed a sanitizer report; then destroys c. */
void harness_finish(struct ctl_cluster *c);

/* ---- network namespaces (tests/harness_net.c) ----
 * Each server runs in its own namespace, at 10.77.X.(i+1) on a veth pair whose other end
 * is on a bridge in the root namespace (10.77.X.254), so the test's clients reach every
 * server; the registry holds those addresses. Needs root and iproute2's `ip`. Traffic
 * only ever goes to these namespaces. Names carry the creating pid; leftovers of dead
 * runs are removed at the next setup, and the janitor removes them if the test dies. */

/* Like harness_cluster_new, in namespaces. NULL with err = why it cannot be done (not
 * root, no `ip`, EPERM...): the caller may fall back on harness_cluster_new. */
struct ctl_cluster *harness_cluster_new_netns(int n, char *err, size_t errlen);
/* Cuts (blackhole routes on both sides) or heals the link between servers i and j. */
int harness_net_cut(struct ctl_cluster *c, int i, int j);
int harness_net_heal(struct ctl_cluster *c, int i, int j);
bool harness_net_is_cut(const struct ctl_cluster *c, int i, int j);
/* Takes server i's veth down (cut off from everyone, clients too) or up again. */
int harness_net_link(struct ctl_cluster *c, int i, bool up);
/* Heals every cut and brings every link up. RK_OK if all of it worked. */
int harness_net_heal_all(struct ctl_cluster *c);

/* Runs argv (argv[0]: a path, or a name in $PATH) with stdin_text on its stdin (NULL:
 * /dev/null), its stdout in out and its stderr in errout (each NUL-terminated, truncated),
 * killing it after timeout_ms. *exit_status gets the exit code, or 128+signal. RK_OK or
 * RK_ERR_*. */
int harness_run(char *const argv[], const char *stdin_text, char *out, size_t outlen,
                char *errout, size_t errlen, int timeout_ms, int *exit_status);

/* Writes one raw frame (4-byte big-endian length + payload) to fd. */
int harness_send_frame(int fd, const void *payload, uint32_t len);
/* A raw client connection to server i that has sent its HELLO_CLIENT; -1 on failure. */
int harness_raw_client(struct ctl_cluster *c, int i);
/* Sends one CLIENT_REQ on a raw connection. RK_OK or RK_ERR_*. */
int harness_raw_request(int fd, uint8_t op, const char *key, const char *val);
/* Reads one CLIENT_RESP within ms: returns its status (PROTO_ST_*), its body in a malloc'ed
 * *body (NUL-terminated; free it), or a negative RK_ERR_* code (RK_ERR_CLOSED at EOF). */
int harness_raw_answer(int fd, int ms, char **body, uint32_t *body_len);

/* Prints the server logs and destroys the cluster, then fails the test. Check ends a
 * failed forked test with _exit(), so cleanup must happen before the failure. */
void harness_fail_cleanup(struct ctl_cluster *c);
/* snprintf into out; a long message is cut. */
void harness_format(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define HARNESS_ASSERT(c, expr, fmt, ...)                                          \
    do {                                                                           \
        if (!(expr)) {                                                             \
            char harness_msg_[1024]; /* formatted before c is freed */             \
            harness_format(harness_msg_, sizeof(harness_msg_), "'%s' failed: " fmt, \
                           #expr, ##__VA_ARGS__);                                  \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, harness_msg_);      \
            harness_fail_cleanup(c);                                               \
            ck_abort_msg("%s", harness_msg_);                                      \
        }                                                                          \
    } while (0)

#endif
