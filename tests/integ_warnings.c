/* tests/integ_warnings.c - the warnings an operator can act on (issue 18, part 5), on real
 * processes: a disk over 90% full, an fdatasync of the log over 100 ms, and a follower
 * further behind than --snapshot-keep each give their log line, and a lasting condition
 * is not logged again within 30 s. The servers run the test-only server with the disk
 * fault seam (tests/fault_io.c), which reports their disk 95% full
 * (RK_FAULT_DISK_USE_PCT) and stalls a server's fdatasync while a file exists
 * (RK_FAULT_STALL_DIR). A slow apply (the fourth warning) has no seam to cause it here. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define N_SERVERS 3
#define LEADER_WAIT_MS 10000
#define LINE_WAIT_MS 4000
#define STALL_MS 300          /* the leader's fdatasync hangs this long */
#define KEEP "50"             /* --snapshot-keep */
#define LAG_WRITES 120        /* > KEEP: the paused follower falls this far behind */
#define CASE_TIMEOUT_S 60

/* Waits up to LINE_WAIT_MS for server i's log to hold a line with a and b. */
static bool wait_line(const struct ctl_cluster *c, int i, const char *a, const char *b)
{
    uint64_t t0 = rk_clock_ms();
    while (harness_log_lines_with(c, i, a, b) == 0) {
        if (rk_clock_ms() - t0 >= LINE_WAIT_MS)
            return false;
        rk_sleep_ms(20);
    }
    return true;
}

/* One write through a raw connection to the leader while its disk stalls STALL_MS. */
static void write_through_stall(struct ctl_cluster *c, int leader)
{
    int fd = harness_raw_client(c, leader);
    harness_stall_disk(c, leader, true);
    HARNESS_ASSERT(c, harness_raw_request(fd, PROTO_OP_SET, "stalled", "v") == RK_OK,
                   "cannot send the write");
    rk_sleep_ms(STALL_MS);
    harness_stall_disk(c, leader, false);
    char *body = NULL;
    uint32_t len;
    int st = harness_raw_answer(fd, 5000, &body, &len);
    free(body);
    close(fd);
    HARNESS_ASSERT(c, st == PROTO_ST_OK, "the write through the stall: status %d", st);
}

START_TEST(test_warnings)
{
    char err[256];
    struct ctl_cluster *c = harness_cluster_new(N_SERVERS, err, sizeof(err));
    ck_assert_msg(c != NULL, "harness_cluster_new: %s", err);
    c->server_bin = harness_fault_server_bin();
    c->server_args[c->n_server_args++] = "--snapshot-keep";
    c->server_args[c->n_server_args++] = KEEP;
    setenv("RK_FAULT_STALL_DIR", c->dir, 1);
    setenv("RK_FAULT_DISK_USE_PCT", "95", 1);
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "starting the servers");
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    HARNESS_ASSERT(c, leader >= 0, "no leader");
    for (int i = 0; i < N_SERVERS; i++)
        HARNESS_ASSERT(c, wait_line(c, i, "warning: the disk of", "is 95% full (over 90%)"),
                       "%s did not warn of its disk", c->servers[i].name);

    write_through_stall(c, leader);
    HARNESS_ASSERT(c, wait_line(c, leader, "warning: an fdatasync of the log took", "ms"),
                   "%s did not warn of its slow fdatasync", c->servers[leader].name);

    int behind = (leader + 1) % N_SERVERS;
    HARNESS_ASSERT(c, ctl_pause(c, behind) == RK_OK, "pausing %s", c->servers[behind].name);
    struct client_session *s = harness_session(c, leader, true, 4000);
    HARNESS_ASSERT(c, s != NULL, "no session");
    for (int k = 0; k < LAG_WRITES; k++)
        HARNESS_ASSERT(c, harness_call(s, PROTO_OP_SET, "lag", "v", NULL, 0) == PROTO_ST_OK,
                       "write %d", k);
    client_session_free(s);
    HARNESS_ASSERT(c, wait_line(c, leader, "warning: follower", c->servers[behind].name),
                   "%s did not warn that %s is behind", c->servers[leader].name,
                   c->servers[behind].name);
    rk_sleep_ms(2500); /* two more looks at the lag, both held back */
    int lag_lines = harness_log_lines_with(c, leader, "warning: follower", NULL);
    HARNESS_ASSERT(c, ctl_resume(c, behind) == RK_OK, "resuming");
    HARNESS_ASSERT(c, lag_lines == 1, "%d lag warnings within 3 s (one per 30 s)", lag_lines);
    HARNESS_ASSERT(c, harness_log_lines_with(c, leader, "warning: the disk of", NULL) == 1,
                   "the disk warning repeated within 30 s");
    harness_finish(c);
}
END_TEST

static Suite *warnings_suite(void)
{
    Suite *s = suite_create("integ_warnings");
    TCase *tc = tcase_create("warnings");
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test_warnings);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(warnings_suite)
