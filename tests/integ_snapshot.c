/* tests/integ_snapshot.c - snapshots and log compaction (Raft paper §7) on real 3-server
 * clusters run with a small --snapshot-entries: the log file stays bounded while 1000
 * entries are written; a restart loads the snapshot and replays only the log after it;
 * a follower whose files were wiped catches up through InstallSnapshot (Figure 13) and
 * serves the data after the leader is killed; a corrupt snapshot stops the server with
 * a message naming the file, and --dump-snapshot prints or refuses a snapshot. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define N_SERVERS 3
#define SNAPSHOT_ENTRIES 50
#define SNAPSHOT_KEEP 10
#define LEADER_WAIT_MS 10000
#define CALL_TIMEOUT_MS 10000
#define CATCH_UP_MS 20000
/* Log lines a server may hold while writes go on: the entries since its last snapshot,
 * plus what arrives while the next one is written and the log compacted (generous: a
 * loaded machine or a sanitizer build slows the writer more than the writes). Once the
 * writes stop, at most SNAPSHOT_ENTRIES (+ a few) remain. */
#define LOG_LINES_BOUND (SNAPSHOT_ENTRIES * 8)
#define LOG_LINES_QUIET (SNAPSHOT_ENTRIES + 5)

/* ---- a cluster whose servers snapshot every SNAPSHOT_ENTRIES entries ---- */

/* The server program itself (ctl_server_bin() before the wrapper below). */
static char server_bin[4096];

/* The harness starts $RK_SERVER_BIN with its own arguments; a wrapper script in the
 * cluster's dir (removed with it) adds the snapshot options, and `extra` ones. */
static void use_snapshot_options(struct ctl_cluster *c, const char *extra)
{
    snprintf(server_bin, sizeof(server_bin), "%s", ctl_server_bin());
    char wrapper[CTL_DIR_MAX + 32];
    snprintf(wrapper, sizeof(wrapper), "%s/server.sh", c->dir);
    FILE *f = fopen(wrapper, "w");
    HARNESS_ASSERT(c, f != NULL, "cannot write %s", wrapper);
    fprintf(f, "#!/bin/sh\nexec '%s' \"$@\" --snapshot-entries %d --snapshot-keep %d %s\n",
            server_bin, SNAPSHOT_ENTRIES, SNAPSHOT_KEEP, extra);
    HARNESS_ASSERT(c, fclose(f) == 0 && chmod(wrapper, 0755) == 0, "cannot write %s",
                   wrapper);
    setenv("RK_SERVER_BIN", wrapper, 1); /* this test's process only (Check forks) */
}

static struct ctl_cluster *start_cluster(const char *extra)
{
    char err[256];
    struct ctl_cluster *c = harness_cluster_new(N_SERVERS, err, sizeof(err));
    ck_assert_msg(c != NULL, "harness_cluster_new: %s", err);
    use_snapshot_options(c, extra);
    int rc = ctl_start_all(c);
    HARNESS_ASSERT(c, rc == RK_OK, "starting the servers: %s", rk_strerror(rc));
    HARNESS_ASSERT(c, ctl_wait_leader(c, LEADER_WAIT_MS, NULL) >= 0, "no leader within "
                   "%d ms", LEADER_WAIT_MS);
    return c;
}

static struct client_session *session_to(struct ctl_cluster *c, int i, bool registry)
{
    struct client_session *s = harness_session(c, i, registry, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "cannot create a client session");
    return s;
}

static void key_value(int i, char *key, size_t key_len, char *val, size_t val_len)
{
    snprintf(key, key_len, "key%d", i % 300); /* later writes overwrite earlier keys */
    snprintf(val, val_len, "value-%d", i);
}

/* Writes entries from..to-1 (each key's final value is that of its last write). */
static void write_range(struct ctl_cluster *c, struct client_session *s, int from, int to)
{
    for (int i = from; i < to; i++) {
        char key[32], val[32], out[256];
        key_value(i, key, sizeof(key), val, sizeof(val));
        int st = harness_call(s, PROTO_OP_SET, key, val, out, sizeof(out));
        HARNESS_ASSERT(c, st == PROTO_ST_OK, "write %d (%s=%s): status %d (%s)", i, key, val,
                       st, out);
    }
}

/* After writes 0..n-1, every key holds its last value. */
static void check_values(struct ctl_cluster *c, struct client_session *s, int n)
{
    for (int k = 0; k < 300 && k < n; k++) {
        int last = k + (n - 1 - k) / 300 * 300;
        char key[32], want[32], out[256];
        key_value(last, key, sizeof(key), want, sizeof(want));
        int st = harness_call(s, PROTO_OP_GET, key, NULL, out, sizeof(out));
        HARNESS_ASSERT(c, st == PROTO_ST_VALUE && strcmp(out, want) == 0,
                       "get %s: status %d '%s', want '%s'", key, st, out, want);
    }
}

/* The "snapshot=N" field of server i's status line, or -1. */
static long long status_snapshot(struct ctl_cluster *c, int i)
{
    struct client_session *s = harness_session(c, i, false, 2000);
    if (s == NULL)
        return -1;
    char line[512];
    int st = harness_call(s, PROTO_OP_STATUS, "", NULL, line, sizeof(line));
    client_session_free(s);
    const char *field = st == PROTO_ST_VALUE ? strstr(line, " snapshot=") : NULL;
    return field != NULL ? strtoll(field + 10, NULL, 10) : -1;
}

static long log_lines(struct ctl_cluster *c, int i)
{
    char path[CTL_DIR_MAX + 64];
    ctl_server_path(c, i, "_log.txt", path, sizeof(path));
    return harness_count_lines(path);
}

static bool has_file(struct ctl_cluster *c, int i, const char *suffix)
{
    char path[CTL_DIR_MAX + 64];
    struct stat st;
    ctl_server_path(c, i, suffix, path, sizeof(path));
    return stat(path, &st) == 0;
}

/* Whether server i's log output (NAME.err) holds text. */
static bool log_says(struct ctl_cluster *c, int i, const char *text)
{
    char path[CTL_DIR_MAX + 64], line[2048];
    ctl_server_path(c, i, ".err", path, sizeof(path));
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, text) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

/* The last line of server i's output holding text (copied into out), or false. */
static bool last_log_line(struct ctl_cluster *c, int i, const char *text, char *out,
                          size_t outlen)
{
    char path[CTL_DIR_MAX + 64], line[2048];
    ctl_server_path(c, i, ".err", path, sizeof(path));
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, text) != NULL) {
            snprintf(out, outlen, "%s", line);
            found = true;
        }
    }
    if (f != NULL)
        fclose(f);
    return found;
}

/* Polls until every server reports a snapshot at least at index, or timeout_ms. */
static bool wait_snapshots(struct ctl_cluster *c, long long index, int timeout_ms)
{
    uint64_t deadline = rk_clock_ms() + timeout_ms;
    for (;;) {
        bool all = true;
        for (int i = 0; i < c->n && all; i++)
            all = status_snapshot(c, i) >= index;
        if (all)
            return true;
        if (rk_clock_ms() >= deadline)
            return false;
        rk_sleep_ms(50);
    }
}

/* ---- 1. snapshots are taken and the log file stays bounded ---- */

START_TEST(test_log_stays_bounded)
{
    struct ctl_cluster *c = start_cluster("");
    struct client_session *s = session_to(c, -1, true);
    long most = 0;
    for (int batch = 0; batch < 10; batch++) {
        write_range(c, s, batch * 100, batch * 100 + 100);
        for (int i = 0; i < c->n; i++) {
            long lines = log_lines(c, i);
            most = lines > most ? lines : most;
            HARNESS_ASSERT(c, lines >= 0 && lines <= LOG_LINES_BOUND,
                           "%s's log has %ld lines after %d writes (bound %d)",
                           c->servers[i].name, lines, batch * 100 + 100, LOG_LINES_BOUND);
        }
    }
    HARNESS_ASSERT(c, wait_snapshots(c, 950, 5000), "not every server snapshotted past 950");
    uint64_t deadline = rk_clock_ms() + 5000;
    for (int i = 0; i < c->n; i++) {
        long lines;
        while ((lines = log_lines(c, i)) > LOG_LINES_QUIET && rk_clock_ms() < deadline)
            rk_sleep_ms(50);
        HARNESS_ASSERT(c, lines >= 0 && lines <= LOG_LINES_QUIET, "%s's log has %ld lines "
                       "once the writes stopped (bound %d)", c->servers[i].name, lines,
                       LOG_LINES_QUIET);
    }
    for (int i = 0; i < c->n; i++) {
        HARNESS_ASSERT(c, has_file(c, i, "_snapshot"), "%s: no snapshot file",
                       c->servers[i].name);
        HARNESS_ASSERT(c, log_says(c, i, "snapshot at index") &&
                          log_says(c, i, "lock was held") && log_says(c, i, " done in "),
                       "%s does not log its snapshots", c->servers[i].name);
        HARNESS_ASSERT(c, log_says(c, i, "compacted the log file"),
                       "%s never compacted its log", c->servers[i].name);
    }
    fprintf(stderr, "integ_snapshot: at most %ld log lines while writing 1000 entries\n", most);
    check_values(c, s, 1000);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 2. a restart loads the snapshot and replays only the suffix ---- */

START_TEST(test_restart_replays_suffix)
{
    struct ctl_cluster *c = start_cluster("");
    struct client_session *s = session_to(c, -1, true);
    write_range(c, s, 0, 230);
    HARNESS_ASSERT(c, wait_snapshots(c, 200, 5000), "no snapshot past 200 everywhere");
    client_session_free(s);
    for (int i = 0; i < c->n; i++) {
        int rc = ctl_stop(c, i);
        HARNESS_ASSERT(c, rc == RK_OK, "stop %s: %s", c->servers[i].name, rk_strerror(rc));
    }
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "restart failed");
    HARNESS_ASSERT(c, ctl_wait_leader(c, LEADER_WAIT_MS, NULL) >= 0, "no leader");
    for (int i = 0; i < c->n; i++) {
        char line[2048];
        HARNESS_ASSERT(c, ctl_wait_commit(c, i, 230, 10000) == RK_OK,
                       "%s did not come back", c->servers[i].name);
        HARNESS_ASSERT(c, last_log_line(c, i, "starting:", line, sizeof(line)),
                       "%s: no start line", c->servers[i].name);
        const char *at = strstr(line, "snapshot at index ");
        const char *loaded = strstr(line, "), loaded ");
        HARNESS_ASSERT(c, at != NULL && loaded != NULL, "%s: start line '%s'",
                       c->servers[i].name, line);
        long long snap = strtoll(at + 18, NULL, 10), replayed = strtoll(loaded + 10, NULL, 10);
        HARNESS_ASSERT(c, snap >= 200 && replayed < SNAPSHOT_ENTRIES + 10,
                       "%s restarted from snapshot %lld replaying %lld entries: '%s'",
                       c->servers[i].name, snap, replayed, line);
    }
    s = session_to(c, -1, true);
    check_values(c, s, 230);
    write_range(c, s, 230, 300); /* and it goes on */
    check_values(c, s, 300);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 2b. without fork: serialized in memory under the lock, same results ---- */

/* ---- 2b. deadlines survive snapshots and restarts ---- */

static void run_dump(struct ctl_cluster *c, const char *path, char *out, size_t outlen,
                     char *errout, size_t errlen, int *status);

/* GET key: its value in out, or NULL-status. */
static int get_key(struct client_session *s, const char *key, char *out, size_t len)
{
    return harness_call(s, PROTO_OP_GET, key, NULL, out, len);
}

/* A key written with setex before a snapshot and a restart of every server keeps its
 * deadline: it is still there right after (counted again from the load, a key may live
 * longer, never shorter) and is deleted within its time to live of the restart; a key
 * with a long one reports it through ttl. */
START_TEST(test_deadlines_survive_restart)
{
    struct ctl_cluster *c = start_cluster("");
    struct client_session *s = session_to(c, -1, true);
    char out[256];
    uint64_t sent = rk_clock_ms();
    int st = harness_call(s, PROTO_OP_SETEX, "short", "4000 soon gone", out, sizeof(out));
    HARNESS_ASSERT(c, st == PROTO_ST_OK, "setex short: status %d (%s)", st, out);
    st = harness_call(s, PROTO_OP_SETEX, "long", "600000 stays", out, sizeof(out));
    HARNESS_ASSERT(c, st == PROTO_ST_OK, "setex long: status %d (%s)", st, out);
    write_range(c, s, 0, 120);
    HARNESS_ASSERT(c, wait_snapshots(c, 100, 5000), "no snapshot past 100 everywhere");
    client_session_free(s);
    for (int i = 0; i < c->n; i++)
        HARNESS_ASSERT(c, ctl_stop(c, i) == RK_OK, "stop %s", c->servers[i].name);
    char path[CTL_DIR_MAX + 64];
    static char dump[1 << 16], dump_err[4096];
    int status = -1;
    ctl_server_path(c, 0, "_snapshot", path, sizeof(path));
    run_dump(c, path, dump, sizeof(dump), dump_err, sizeof(dump_err), &status);
    HARNESS_ASSERT(c, status == 0 && strstr(dump, "\ndeadline \"long\" ttl_ms=600000 set_at=")
                          != NULL && strstr(dump, "\ndeadline \"short\" ttl_ms=4000 set_at=")
                          != NULL, "--dump-snapshot shows no deadlines: %.400s", dump);
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "restart failed");
    uint64_t restarted = rk_clock_ms();
    HARNESS_ASSERT(c, ctl_wait_leader(c, LEADER_WAIT_MS, NULL) >= 0, "no leader");
    s = session_to(c, -1, true);
    st = harness_call(s, PROTO_OP_TTL, "long", NULL, out, sizeof(out));
    long left = st == PROTO_ST_VALUE ? strtol(out, NULL, 10) : -2;
    HARNESS_ASSERT(c, left > 590 && left <= 600, "ttl long after the restart: status %d '%s'",
                   st, out);
    uint64_t gone_at = 0, bound = restarted + 4000 + 5000;
    while (gone_at == 0 && rk_clock_ms() < bound) {
        uint64_t asked = rk_clock_ms();
        st = get_key(s, "short", out, sizeof(out));
        if (st == PROTO_ST_NIL)
            gone_at = asked;
        else
            HARNESS_ASSERT(c, st == PROTO_ST_VALUE && strcmp(out, "soon gone") == 0,
                           "get short: status %d '%s'", st, out);
        rk_sleep_ms(50);
    }
    HARNESS_ASSERT(c, gone_at != 0, "short outlived its deadline after the restart by 5 s");
    HARNESS_ASSERT(c, gone_at >= sent + 4000, "short was gone %" PRIu64 " ms after its setex "
                   "was sent, before its 4 s", gone_at - sent);
    st = get_key(s, "long", out, sizeof(out));
    HARNESS_ASSERT(c, st == PROTO_ST_VALUE && strcmp(out, "stays") == 0, "get long: %d '%s'",
                   st, out);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

START_TEST(test_snapshots_without_fork)
{
    struct ctl_cluster *c = start_cluster("--snapshot-fork False");
    struct client_session *s = session_to(c, -1, true);
    write_range(c, s, 0, 300);
    HARNESS_ASSERT(c, wait_snapshots(c, 250, 5000), "no snapshot past 250 everywhere");
    for (int i = 0; i < c->n; i++) {
        HARNESS_ASSERT(c, log_says(c, i, "to serialize the state") &&
                          !log_says(c, i, "fork the writer"),
                       "%s did not serialize in memory", c->servers[i].name);
        long lines = log_lines(c, i);
        HARNESS_ASSERT(c, lines >= 0 && lines <= LOG_LINES_BOUND, "%s: %ld log lines",
                       c->servers[i].name, lines);
    }
    client_session_free(s);
    int v = 1;
    HARNESS_ASSERT(c, ctl_restart(c, v) == RK_OK, "restart %s", c->servers[v].name);
    HARNESS_ASSERT(c, ctl_wait_commit(c, v, 300, 10000) == RK_OK, "%s did not come back",
                   c->servers[v].name);
    char line[2048];
    HARNESS_ASSERT(c, last_log_line(c, v, "starting:", line, sizeof(line)) &&
                      strstr(line, "snapshot at index 0 ") == NULL,
                   "%s did not restart from its snapshot: '%s'", c->servers[v].name, line);
    HARNESS_ASSERT(c, ctl_wait_leader(c, LEADER_WAIT_MS, NULL) >= 0, "no leader");
    s = session_to(c, -1, true);
    check_values(c, s, 300);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 2b. a big state is not rewritten for a few small changes ---- */

#define BIG_VALUE_BYTES 8000

/* Sets keys big0..big(n-1) to values of BIG_VALUE_BYTES bytes holding tag. */
static void write_big(struct ctl_cluster *c, struct client_session *s, int n, char tag)
{
    static char val[BIG_VALUE_BYTES + 1];
    memset(val, tag, BIG_VALUE_BYTES);
    val[BIG_VALUE_BYTES] = '\0';
    for (int i = 0; i < n; i++) {
        char key[32], out[256];
        snprintf(key, sizeof(key), "big%d", i);
        int st = harness_call(s, PROTO_OP_SET, key, val, out, sizeof(out));
        HARNESS_ASSERT(c, st == PROTO_ST_OK, "set %s: status %d (%s)", key, st, out);
    }
}

/* The entry count passes --snapshot-entries three times over, but the commands since
 * the last snapshot hold far less than a quarter of it: no new snapshot. Once they hold
 * more, there is one. */
START_TEST(test_big_state_waits_for_a_share_of_its_size)
{
    struct ctl_cluster *c = start_cluster("");
    struct client_session *s = session_to(c, -1, true);
    write_big(c, s, SNAPSHOT_ENTRIES, 'a'); /* ~400 KB of state */
    HARNESS_ASSERT(c, wait_snapshots(c, SNAPSHOT_ENTRIES, 10000), "no first snapshot");
    rk_sleep_ms(500); /* a snapshot started just now has finished */
    long long first[N_SERVERS];
    for (int i = 0; i < c->n; i++)
        first[i] = status_snapshot(c, i);
    write_range(c, s, 0, 3 * SNAPSHOT_ENTRIES); /* small values: ~12 KB of commands */
    rk_sleep_ms(1000);
    for (int i = 0; i < c->n; i++)
        HARNESS_ASSERT(c, status_snapshot(c, i) == first[i], "%s took a snapshot of %d KB of "
                       "state for a few KB of changes: snapshot=%lld, was %lld",
                       c->servers[i].name, SNAPSHOT_ENTRIES * BIG_VALUE_BYTES / 1000,
                       status_snapshot(c, i), first[i]);
    write_big(c, s, SNAPSHOT_ENTRIES / 2 + 5, 'b'); /* now over 7/16 of the snapshot */
    long long after = first[0];
    for (int i = 1; i < c->n; i++)
        after = first[i] > after ? first[i] : after;
    HARNESS_ASSERT(c, wait_snapshots(c, after + 1, 10000),
                   "no snapshot once the changes held over 7/16 of the state");
    check_values(c, s, 3 * SNAPSHOT_ENTRIES);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 3. a wiped follower catches up through InstallSnapshot ---- */

static void wipe_all(struct ctl_cluster *c, int i)
{
    HARNESS_ASSERT(c, ctl_wipe(c, i) == RK_OK, "cannot wipe %s", c->servers[i].name);
    const char *more[] = { "_snapshot", "_snapshot.tmp", "_snapshot.recv" };
    for (size_t k = 0; k < sizeof(more) / sizeof(more[0]); k++) {
        char path[CTL_DIR_MAX + 64];
        ctl_server_path(c, i, more[k], path, sizeof(path));
        unlink(path);
    }
    HARNESS_ASSERT(c, !has_file(c, i, "_snapshot") && !has_file(c, i, "_log.txt"),
                   "%s not wiped", c->servers[i].name);
}

START_TEST(test_wiped_follower_installs_snapshot)
{
    struct ctl_cluster *c = start_cluster("");
    struct client_session *s = session_to(c, -1, true);
    write_range(c, s, 0, 300);
    int leader = ctl_wait_leader(c, LEADER_WAIT_MS, NULL);
    HARNESS_ASSERT(c, leader >= 0, "no leader");
    int f = (leader + 1) % c->n;
    HARNESS_ASSERT(c, ctl_stop(c, f) == RK_OK, "stop %s", c->servers[f].name);
    wipe_all(c, f);
    write_range(c, s, 300, 400); /* the leader compacts past everything f could ask for */
    struct ctl_status lst;
    HARNESS_ASSERT(c, ctl_status_of(c, leader, &lst, 1000) == RK_OK, "leader status");

    HARNESS_ASSERT(c, ctl_start(c, f) == RK_OK, "cannot restart %s", c->servers[f].name);
    int rc = ctl_wait_commit(c, f, lst.commit, CATCH_UP_MS);
    HARNESS_ASSERT(c, rc == RK_OK, "wiped %s did not reach commit %lld within %d ms",
                   c->servers[f].name, lst.commit, CATCH_UP_MS);
    HARNESS_ASSERT(c, has_file(c, f, "_snapshot") && has_file(c, f, "_log.txt") &&
                      !has_file(c, f, "_snapshot.recv"),
                   "%s: snapshot or log missing after the catch-up", c->servers[f].name);
    HARNESS_ASSERT(c, log_says(c, f, "installed snapshot"), "%s did not install a snapshot",
                   c->servers[f].name);
    HARNESS_ASSERT(c, log_says(c, leader, "catching up follower"), "the leader did not send "
                   "a snapshot");
    HARNESS_ASSERT(c, status_snapshot(c, f) >= 300, "%s reports snapshot=%lld",
                   c->servers[f].name, status_snapshot(c, f));
    struct ctl_status fst;
    HARNESS_ASSERT(c, ctl_status_of(c, f, &fst, 1000) == RK_OK && fst.applied >= lst.commit,
                   "%s applied %lld, leader commit %lld", c->servers[f].name, fst.applied,
                   lst.commit);

    /* The data lives on f now: without the old leader, f and the third server serve it. */
    client_session_free(s);
    HARNESS_ASSERT(c, ctl_kill(c, leader) == RK_OK, "kill the leader");
    HARNESS_ASSERT(c, ctl_wait_leader(c, LEADER_WAIT_MS, NULL) >= 0, "no new leader");
    s = session_to(c, -1, true);
    check_values(c, s, 400);
    client_session_free(s);
    harness_finish(c);
}
END_TEST

/* ---- 4. a corrupt snapshot stops the server; --dump-snapshot ---- */

static void run_dump(struct ctl_cluster *c, const char *path, char *out, size_t outlen,
                     char *errout, size_t errlen, int *status)
{
    char *argv[] = { server_bin, "--dump-snapshot", (char *)path, NULL };
    int rc = harness_run(argv, NULL, out, outlen, errout, errlen, 10000, status);
    HARNESS_ASSERT(c, rc == RK_OK, "running --dump-snapshot: %s", rk_strerror(rc));
}

START_TEST(test_corrupt_snapshot_stops_server)
{
    struct ctl_cluster *c = start_cluster("");
    struct client_session *s = session_to(c, -1, true);
    write_range(c, s, 0, 120);
    HARNESS_ASSERT(c, wait_snapshots(c, 100, 5000), "no snapshot past 100 everywhere");
    client_session_free(s);
    int v = 0;
    HARNESS_ASSERT(c, ctl_stop(c, v) == RK_OK, "stop %s", c->servers[v].name);
    char path[CTL_DIR_MAX + 64];
    ctl_server_path(c, v, "_snapshot", path, sizeof(path));

    static char out[1 << 16], errout[4096];
    int status = -1;
    run_dump(c, path, out, sizeof(out), errout, sizeof(errout), &status);
    HARNESS_ASSERT(c, status == 0 && strstr(out, "crc32 ") != NULL &&
                      strstr(out, "set \"key7\" \"value-") != NULL,
                   "dump of a good snapshot: exit %d, out '%.200s', err '%s'", status, out,
                   errout);

    FILE *f = fopen(path, "r+b");
    HARNESS_ASSERT(c, f != NULL, "open %s", path);
    fseek(f, 60, SEEK_SET);
    int byte = fgetc(f);
    fseek(f, 60, SEEK_SET);
    fputc(byte ^ 0x20, f);
    fclose(f);

    run_dump(c, path, out, sizeof(out), errout, sizeof(errout), &status);
    HARNESS_ASSERT(c, status == 1 && strstr(errout, path) != NULL && out[0] == '\0',
                   "dump of a corrupt snapshot: exit %d, err '%s'", status, errout);

    HARNESS_ASSERT(c, ctl_start(c, v) == RK_OK, "start %s", c->servers[v].name);
    uint64_t deadline = rk_clock_ms() + 10000;
    while (ctl_is_running(c, v) && rk_clock_ms() < deadline)
        rk_sleep_ms(50);
    HARNESS_ASSERT(c, !ctl_is_running(c, v), "%s runs on a corrupt snapshot",
                   c->servers[v].name);
    c->unexpected_exits--; /* that exit was the point */
    char line[2048];
    HARNESS_ASSERT(c, last_log_line(c, v, "FATAL", line, sizeof(line)) &&
                      strstr(line, path) != NULL && strstr(line, "checksum") != NULL,
                   "%s's last words do not name %s: '%s'", c->servers[v].name, path, line);
    HARNESS_ASSERT(c, has_file(c, v, "_snapshot"), "the corrupt snapshot must stay for "
                   "inspection");
    harness_finish(c);
}
END_TEST

static TCase *one_case(Suite *s, const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *snapshot_suite(void)
{
    Suite *s = suite_create("integ_snapshot");
    tcase_add_test(one_case(s, "log_bounded", 120), test_log_stays_bounded);
    tcase_add_test(one_case(s, "restart", 90), test_restart_replays_suffix);
    tcase_add_test(one_case(s, "deadlines", 90), test_deadlines_survive_restart);
    tcase_add_test(one_case(s, "no_fork", 90), test_snapshots_without_fork);
    tcase_add_test(one_case(s, "big_state", 90), test_big_state_waits_for_a_share_of_its_size);
    tcase_add_test(one_case(s, "install", 120), test_wiped_follower_installs_snapshot);
    tcase_add_test(one_case(s, "corrupt", 60), test_corrupt_snapshot_stops_server);
    return s;
}

RK_CHECK_MAIN(snapshot_suite)
