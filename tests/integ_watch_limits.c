/* tests/integ_watch_limits.c - the bounds of watch (issue 17) on real 3-server clusters,
 * through raw connections: a watcher that never reads is cut off while writes go on and
 * the server's memory stays bounded; a watch connection is not idle while it waits (the
 * idle timeout does not cut it) and hears a heartbeat every second; --max-watchers;
 * followers serve watches; a watch from a revision the history no longer holds is told
 * where it starts. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define LEADER_WAIT_MS 10000
/* Memory is only measured in a plain build: a sanitizer's shadow memory and quarantine
 * make a server's RSS grow with what it frees, not with what it holds. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEASURE_MEMORY false
#else
#define MEASURE_MEMORY true
#endif
#define CALL_TIMEOUT_MS 10000


/* A raw watch of prefix from `from` ("" = now) on server i; its first answer read. */
static int raw_watch(struct ctl_cluster *c, int i, const char *prefix, const char *from,
                     uint64_t *progress)
{
    int fd = harness_raw_client(c, i);
    HARNESS_ASSERT(c, fd >= 0, "connect to %s", c->servers[i].name);
    HARNESS_ASSERT(c, harness_raw_request(fd, PROTO_OP_WATCH, prefix, from) == RK_OK,
                   "send WATCH");
    char *body;
    uint32_t len, n;
    int st = harness_raw_answer(fd, 5000, &body, &len);
    bool ok = st == PROTO_ST_EVENTS && proto_events_head(body, len, progress, &n) == RK_OK;
    free(body);
    HARNESS_ASSERT(c, ok, "WATCH on %s: status %d", c->servers[i].name, st);
    return fd;
}

/* The resident memory of server i in KiB (VmRSS), or -1. */
static long rss_kib(struct ctl_cluster *c, int i)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)c->servers[i].pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

/* Writes count values of val_bytes to key prefix/N through one session. */
static void write_values(struct ctl_cluster *c, const char *prefix, int count, size_t val_bytes)
{
    struct client_session *s = harness_session(c, -1, true, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "session");
    char *val = malloc(val_bytes + 1);
    HARNESS_ASSERT(c, val != NULL, "malloc");
    memset(val, 'v', val_bytes);
    val[val_bytes] = '\0';
    for (int i = 0; i < count; i++) {
        char key[64], out[64];
        snprintf(key, sizeof(key), "%s%d", prefix, i);
        int st = harness_call(s, PROTO_OP_SET, key, val, out, sizeof(out));
        HARNESS_ASSERT(c, st == PROTO_ST_OK, "set %s: %d %s", key, st, out);
    }
    free(val);
    client_session_free(s);
}

/* A watcher that never reads: the server cuts it off with "fell behind at rev N" once its
 * unsent answers pass the bound, writes go on, and the server's memory stays within the
 * history's bound and the watcher's. */
START_TEST(test_never_reading_watcher_cut_off)
{
    const char *args[] = { "--watch-history-bytes", "8388608" };
    struct ctl_cluster *c = harness_start_with(3, args, 2, LEADER_WAIT_MS);
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    uint64_t progress;
    int fd = raw_watch(c, leader, "", "", &progress);
    long before = rss_kib(c, leader);
    uint64_t t0 = rk_clock_ms();
    write_values(c, "big/", 3000, 8192); /* 24 MiB of changes, 3x the history */
    uint64_t took = rk_clock_ms() - t0;
    long after = rss_kib(c, leader);
    HARNESS_ASSERT(c, !MEASURE_MEMORY || (before > 0 && after > 0 && after - before < 64 * 1024),
                   "the leader's memory grew from %ld to %ld KiB", before, after);
    HARNESS_ASSERT(c, took < 60000, "3000 writes took %" PRIu64 " ms", took);
    /* now read what the server kept for it: answers, then the cut-off, then the close */
    char *body = NULL;
    uint32_t len;
    int st, frames = 0;
    while ((st = harness_raw_answer(fd, 10000, &body, &len)) == PROTO_ST_EVENTS && frames < 10000) {
        free(body);
        frames++;
    }
    /* cut off with the ERR; or, if the writes took so long (a sanitizer build) that the
     * answers waited unread for 5 s, closed (or reset) before the ERR could be sent */
    uint64_t rev = 0;
    bool cut = st == PROTO_ST_ERR &&
               proto_parse_watch_error(body, len, PROTO_ERR_FELL_BEHIND, &rev) == RK_OK;
    HARNESS_ASSERT(c, (cut && rev > progress) ||
                          ((st == RK_ERR_CLOSED || st == RK_ERR_IO) && took > 4000),
                   "after %d answers: status %d '%s'", frames, st, body != NULL ? body : "");
    free(body);
    if (cut) {
        st = harness_raw_answer(fd, 5000, &body, &len);
        free(body);
        HARNESS_ASSERT(c, st == RK_ERR_CLOSED, "after the cut-off: status %d, not closed", st);
    } else {
        rev = progress + 1;
    }
    close(fd);
    /* resuming from N: the history (8 MiB) no longer holds it, or it does */
    fd = harness_raw_client(c, leader);
    char from[24];
    snprintf(from, sizeof(from), "%" PRIu64, rev);
    harness_raw_request(fd, PROTO_OP_WATCH, "", from);
    st = harness_raw_answer(fd, 5000, &body, &len);
    uint64_t oldest = 0;
    HARNESS_ASSERT(c, st == PROTO_ST_EVENTS ||
                          (st == PROTO_ST_ERR && proto_parse_watch_error(
                               body, len, PROTO_ERR_COMPACTED, &oldest) == RK_OK &&
                           oldest > rev),
                   "resume from %s: status %d '%s'", from, st, body != NULL ? body : "");
    free(body);
    close(fd);
    harness_finish(c);
}
END_TEST

/* A watch connection waits for events as long as it takes: the idle timeout does not cut
 * it, and a heartbeat comes every second. Followers serve watches. --max-watchers. What a
 * watcher sends on its stream is dropped, and the stream goes on. */
START_TEST(test_watch_not_idle_heartbeats_limit)
{
    const char *args[] = { "--client-idle-timeout-ms", "500", "--max-watchers", "2" };
    struct ctl_cluster *c = harness_start_with(3, args, 4, LEADER_WAIT_MS);
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    int follower = (leader + 1) % c->n;
    uint64_t progress;
    int fd = raw_watch(c, follower, "k/", "", &progress);
    static const char stray[] = "not a frame: a watch stream takes no requests";
    HARNESS_ASSERT(c, send(fd, stray, sizeof(stray), MSG_NOSIGNAL) == (ssize_t)sizeof(stray),
                   "cannot send stray bytes on the stream");
    int fd2 = raw_watch(c, follower, "", "", &progress);
    int fd3 = harness_raw_client(c, follower);
    harness_raw_request(fd3, PROTO_OP_WATCH, "", "");
    char *body;
    uint32_t len;
    int st = harness_raw_answer(fd3, 5000, &body, &len);
    HARNESS_ASSERT(c, st == PROTO_ST_ERR && strcmp(body, "too many watchers (--max-watchers 2)")
                          == 0, "a third watcher: %d '%s'", st, body != NULL ? body : "");
    free(body);
    close(fd3);
    close(fd2);
    uint64_t t0 = rk_clock_ms();
    int beats = 0;
    while (rk_clock_ms() - t0 < 3500) {
        st = harness_raw_answer(fd, 2000, &body, &len);
        free(body);
        HARNESS_ASSERT(c, st == PROTO_ST_EVENTS, "waiting on a follower: status %d after %d "
                       "heartbeats", st, beats);
        beats++;
    }
    HARNESS_ASSERT(c, beats >= 3 && beats <= 5, "%d answers in 3.5 s", beats);
    write_values(c, "k/", 3, 10);
    bool got = false;
    for (int i = 0; i < 5 && !got; i++) {
        st = harness_raw_answer(fd, 2000, &body, &len);
        uint32_t n = 0;
        got = st == PROTO_ST_EVENTS && proto_events_head(body, len, &progress, &n) == RK_OK &&
              n > 0;
        free(body);
    }
    HARNESS_ASSERT(c, got, "no event on the follower's stream");
    close(fd);
    harness_finish(c);
}
END_TEST

/* A watch from a revision the history no longer holds: compacted, naming the oldest. */
START_TEST(test_compacted_history)
{
    const char *args[] = { "--watch-history", "100" };
    struct ctl_cluster *c = harness_start_with(3, args, 2, LEADER_WAIT_MS);
    write_values(c, "h/", 300, 10);
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    int fd = harness_raw_client(c, leader);
    harness_raw_request(fd, PROTO_OP_WATCH, "", "1");
    char *body;
    uint32_t len;
    uint64_t oldest = 0;
    int st = harness_raw_answer(fd, 5000, &body, &len);
    HARNESS_ASSERT(c, st == PROTO_ST_ERR && proto_parse_watch_error(body, len,
                          PROTO_ERR_COMPACTED, &oldest) == RK_OK && oldest > 200,
                   "watch from 1: %d '%s'", st, body != NULL ? body : "");
    free(body);
    close(fd);
    harness_finish(c);
}
END_TEST

static Suite *watch_limits_suite(void)
{
    Suite *s = suite_create("integ_watch_limits");
    TCase *slow = tcase_create("slow_reader");
    tcase_set_timeout(slow, 120);
    tcase_add_test(slow, test_never_reading_watcher_cut_off);
    suite_add_tcase(s, slow);
    TCase *idle = tcase_create("idle");
    tcase_set_timeout(idle, 60);
    tcase_add_test(idle, test_watch_not_idle_heartbeats_limit);
    suite_add_tcase(s, idle);
    TCase *compacted = tcase_create("compacted");
    tcase_set_timeout(compacted, 60);
    tcase_add_test(compacted, test_compacted_history);
    suite_add_tcase(s, compacted);
    return s;
}

RK_CHECK_MAIN(watch_limits_suite)
