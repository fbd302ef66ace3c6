/* tests/integ_disk.c - disk faults (issue 7). One server's data dir is a 2 MiB tmpfs
 * mounted by the test; the cluster's writes fill it. That server must stop with a FATAL
 * line saying why (never acknowledging a write it did not persist), the other two go on,
 * and after a restart of everything with space, every acknowledged write is there.
 * Cases: the full disk under the leader, under a follower, an injected full disk under
 * a follower, and an fdatasync that fails with EIO on the leader (the fsyncgate case,
 * injected with RK_FAULT_EIO_AFTER_SYNCS). Without the right to mount (EPERM), the full
 * disk is injected with RK_FAULT_ENOSPC_AFTER_BYTES instead; the test prints which path
 * ran. Injected faults
 * need the test-only server $RK_FAULT_SERVER_BIN (tests/fault_io.c linked in place of
 * server/storage/storage_io.c; default build/default/tests/raft_server_faults): the
 * victim runs it while a fault is injected, raft_server otherwise.
 * Mount points are /tmp/rk_disk_<runner pid>: unmounted by an unchecked fixture (which
 * runs in the Check runner, so also when a test's child dies), stale ones at start. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define N_SERVERS 3
#define VICTIM 0                 /* s1: the server whose disk fills */
#define LEADER_WAIT_MS 10000
#define CALL_TIMEOUT_MS 4000
#define TMPFS_SIZE "size=2m"
#define TMPFS_BIG "size=64m"
#define INJECTED_DISK_BYTES (2 * 1024 * 1024)
#define VALUE_LEN 4000
#define MAX_WRITES 2500          /* 2 MiB holds about 520 such entries */
#define WRITES_AFTER_DOWN 20     /* the cluster must go on without the victim */
#define MNT_PREFIX "/tmp/rk_disk_"
#define CASE_TIMEOUT_S 180

/* ---- the mount point: named in the runner, cleaned up by it ---- */

static char mnt_dir[64];

static bool is_mount_point(const char *dir)
{
    FILE *f = fopen("/proc/self/mounts", "r");
    char line[1024], point[512];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
        found = sscanf(line, "%*s %511s", point) == 1 && strcmp(point, dir) == 0;
    if (f != NULL)
        fclose(f);
    return found;
}

static void remove_mount(const char *dir)
{
    if (is_mount_point(dir))
        umount2(dir, MNT_DETACH);
    rmdir(dir);
}

/* Removes the mount points of runs whose process is gone. */
static void remove_stale_mounts(void)
{
    DIR *d = opendir("/tmp");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "rk_disk_", 8) != 0)
            continue;
        long pid = strtol(e->d_name + 8, NULL, 10);
        if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char dir[300];
            snprintf(dir, sizeof(dir), "/tmp/%s", e->d_name);
            remove_mount(dir);
        }
    }
    if (d != NULL)
        closedir(d);
}

/* Unchecked fixture: runs in the Check runner process, before and after the cases. */
static void runner_setup(void)
{
    remove_stale_mounts();
    snprintf(mnt_dir, sizeof(mnt_dir), MNT_PREFIX "%ld", (long)getpid());
}

static void runner_teardown(void)
{
    remove_mount(mnt_dir);
}

/* ---- the cluster, with the victim's data dir elsewhere ---- */

enum fault { FAULT_TMPFS, FAULT_INJECT_ENOSPC, FAULT_INJECT_EIO_SYNC, FAULT_NONE };

struct disk_test {
    struct ctl_cluster *c;
    char data_dir[PATH_MAX];   /* the victim's --dir */
    bool mounted;
    enum fault fault;
    char real_bin[PATH_MAX];
    char fault_bin[PATH_MAX];  /* raft_server with tests/fault_io.c */
    int n_acked;
    bool acked[MAX_WRITES];
};

/* The harness runs $RK_SERVER_BIN NAME HOST PORT False --dir DIR ...: a script in the
 * cluster's dir passes everything on, giving the victim its own --dir and, for an
 * injected fault, the fault server and the variable that sets it off. */
static void write_wrapper(struct disk_test *t, enum fault fault)
{
    char script[CTL_DIR_MAX + 32], env[96] = "";
    const char *victim_bin = t->real_bin;
    if (fault == FAULT_INJECT_ENOSPC)
        snprintf(env, sizeof(env), "RK_FAULT_ENOSPC_AFTER_BYTES=%d", INJECTED_DISK_BYTES);
    else if (fault == FAULT_INJECT_EIO_SYNC)
        snprintf(env, sizeof(env), "RK_FAULT_EIO_AFTER_SYNCS=40");
    if (env[0] != '\0')
        victim_bin = t->fault_bin;
    snprintf(script, sizeof(script), "%s/server_disk.sh", t->c->dir);
    FILE *f = fopen(script, "w");
    HARNESS_ASSERT(t->c, f != NULL, "cannot write %s", script);
    fprintf(f, "#!/bin/sh\nif [ \"$1\" = '%s' ]; then\n"
               "    exec env %s '%s' \"$@\" --dir '%s'\nfi\nexec '%s' \"$@\"\n",
            t->c->servers[VICTIM].name, env, victim_bin, t->data_dir, t->real_bin);
    fclose(f);
    chmod(script, 0755);
    setenv("RK_SERVER_BIN", script, 1);
}

static void copy_file(struct ctl_cluster *c, const char *from, const char *to)
{
    char buf[4096];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    HARNESS_ASSERT(c, in != NULL && out != NULL, "copy %s to %s", from, to);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        HARNESS_ASSERT(c, fwrite(buf, 1, n, out) == n, "write %s", to);
    fclose(in);
    HARNESS_ASSERT(c, fclose(out) == 0, "close %s", to);
}

/* The victim's data dir: a fresh 2 MiB tmpfs if we may mount, else a plain dir and an
 * injected ENOSPC (fault FAULT_TMPFS asks for the tmpfs). */
static void make_data_dir(struct disk_test *t)
{
    struct ctl_cluster *c = t->c;
    if (t->fault == FAULT_TMPFS) {
        remove_mount(mnt_dir);
        HARNESS_ASSERT(c, mkdir(mnt_dir, 0755) == 0, "mkdir %s: %s", mnt_dir, strerror(errno));
        if (mount("tmpfs", mnt_dir, "tmpfs", 0, TMPFS_SIZE) == 0) {
            t->mounted = true;
            snprintf(t->data_dir, sizeof(t->data_dir), "%s", mnt_dir);
            fprintf(stderr, "integ_disk: %s on a %s tmpfs at %s\n", c->servers[VICTIM].name,
                    TMPFS_SIZE, mnt_dir);
        } else {
            HARNESS_ASSERT(c, errno == EPERM || errno == EACCES, "mount tmpfs: %s",
                           strerror(errno));
            fprintf(stderr, "integ_disk: cannot mount (%s): injecting ENOSPC after %d bytes "
                            "instead\n", strerror(errno), INJECTED_DISK_BYTES);
            rmdir(mnt_dir);
            t->fault = FAULT_INJECT_ENOSPC;
        }
    }
    if (!t->mounted) {
        snprintf(t->data_dir, sizeof(t->data_dir), "%s/victim", c->dir);
        HARNESS_ASSERT(c, mkdir(t->data_dir, 0755) == 0, "mkdir %s", t->data_dir);
    }
    char reg[PATH_MAX + 32];
    snprintf(reg, sizeof(reg), "%s/server_registry.txt", t->data_dir);
    copy_file(c, c->registry_path, reg);
}

static void disk_test_start(struct disk_test *t, enum fault fault)
{
    memset(t, 0, sizeof(*t));
    char err[256];
    t->c = harness_cluster_new(N_SERVERS, err, sizeof(err));
    ck_assert_msg(t->c != NULL, "harness_cluster_new: %s", err);
    HARNESS_ASSERT(t->c, realpath(ctl_server_bin(), t->real_bin) != NULL, "no server %s",
                   ctl_server_bin());
    HARNESS_ASSERT(t->c, realpath(harness_fault_server_bin(), t->fault_bin) != NULL,
                   "no fault server %s (make builds it; RK_FAULT_SERVER_BIN names it)",
                   harness_fault_server_bin());
    t->fault = fault;
    make_data_dir(t);
    write_wrapper(t, t->fault);
    int rc = ctl_start_all(t->c);
    HARNESS_ASSERT(t->c, rc == RK_OK, "start: %s", rk_strerror(rc));
}

/* Kills every server, removes the cluster and the mount. */
static void disk_test_finish(struct disk_test *t)
{
    char first[512];
    int reports = harness_sanitizer_reports(t->c, first, sizeof(first));
    HARNESS_ASSERT(t->c, reports == 0, "%d sanitizer report line(s), first: %s", reports,
                   first);
    ctl_cluster_destroy(t->c);
    if (t->mounted)
        remove_mount(mnt_dir);
    unsetenv("RK_SERVER_BIN");
}

static int wait_leader(struct disk_test *t)
{
    int leader = ctl_wait_leader(t->c, LEADER_WAIT_MS, NULL);
    HARNESS_ASSERT(t->c, leader >= 0, "no leader within %d ms", LEADER_WAIT_MS);
    return leader;
}

/* Restarts the leader until the victim leads (or follows, if want_leader is false). */
static void arrange_victim_role(struct disk_test *t, bool want_leader)
{
    for (int tries = 0; tries < 12; tries++) {
        int leader = wait_leader(t);
        if ((leader == VICTIM) == want_leader)
            return;
        HARNESS_ASSERT(t->c, ctl_restart(t->c, leader) == RK_OK, "restart %s",
                       t->c->servers[leader].name);
    }
    HARNESS_ASSERT(t->c, false, "could not make %s the %s", t->c->servers[VICTIM].name,
                   want_leader ? "leader" : "a follower");
}

/* ---- writes ---- */

static void key_of(int i, char *key, size_t len)
{
    snprintf(key, len, "disk-%04d", i);
}

/* A distinct value per key: its number, then letters. */
static void value_of(int i, char *val)
{
    int n = snprintf(val, VALUE_LEN + 1, "%d:", i);
    memset(val + n, 'a' + i % 26, (size_t)(VALUE_LEN - n));
    val[VALUE_LEN] = '\0';
}

/* Writes until the victim has stopped and WRITES_AFTER_DOWN more were made; notes which
 * writes were acknowledged. */
static void fill_until_victim_stops(struct disk_test *t)
{
    struct ctl_cluster *c = t->c;
    struct client_session *s = harness_session(c, -1, true, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "session");
    static char val[VALUE_LEN + 1];
    int down_at = -1, acked_after_down = 0;
    for (int i = 0; i < MAX_WRITES; i++) {
        char key[32], out[128];
        key_of(i, key, sizeof(key));
        value_of(i, val);
        int st = harness_call(s, PROTO_OP_SET, key, val, out, sizeof(out));
        t->acked[i] = st == PROTO_ST_OK;
        t->n_acked += t->acked[i];
        acked_after_down += down_at >= 0 && t->acked[i];
        if (down_at < 0 && !ctl_is_running(c, VICTIM))
            down_at = i;
        if (down_at >= 0 && i >= down_at + WRITES_AFTER_DOWN)
            break;
    }
    client_session_free(s);
    HARNESS_ASSERT(c, down_at >= 0, "%s never stopped after %d writes of %d bytes (%d acked)",
                   c->servers[VICTIM].name, MAX_WRITES, VALUE_LEN, t->n_acked);
    HARNESS_ASSERT(c, acked_after_down > 0, "the two other servers acknowledged nothing");
    fprintf(stderr, "integ_disk: %s stopped at write %d; %d writes acknowledged\n",
            c->servers[VICTIM].name, down_at, t->n_acked);
}

/* The victim's log (NAME.err) must say it stopped, and why. */
static void check_fatal_line(struct disk_test *t, const char *why)
{
    char path[CTL_DIR_MAX + 32], line[2048];
    ctl_server_path(t->c, VICTIM, ".err", path, sizeof(path));
    FILE *f = fopen(path, "r");
    HARNESS_ASSERT(t->c, f != NULL, "no %s", path);
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, "FATAL: cannot persist") != NULL && strstr(line, why) != NULL;
    fclose(f);
    HARNESS_ASSERT(t->c, found, "%s has no FATAL line with '%s'", path, why);
}

/* Stops the others, gives the victim space (or takes the fault away), starts everyone
 * and reads back every acknowledged write. */
static void restart_and_verify(struct disk_test *t)
{
    struct ctl_cluster *c = t->c;
    for (int i = 0; i < c->n; i++)
        if (i != VICTIM)
            HARNESS_ASSERT(c, ctl_stop(c, i) == RK_OK, "clean stop of %s",
                           c->servers[i].name);
    if (t->mounted)
        HARNESS_ASSERT(c, mount("tmpfs", mnt_dir, "tmpfs", MS_REMOUNT, TMPFS_BIG) == 0,
                       "remount %s: %s", mnt_dir, strerror(errno));
    write_wrapper(t, FAULT_NONE);
    HARNESS_ASSERT(c, ctl_start_all(c) == RK_OK, "restart");
    int leader = wait_leader(t);
    struct ctl_status st;
    HARNESS_ASSERT(c, ctl_status_of(c, leader, &st, 2000) == RK_OK, "status");
    HARNESS_ASSERT(c, ctl_wait_commit(c, VICTIM, st.commit, 20000) == RK_OK,
                   "%s did not catch up to %lld after the restart", c->servers[VICTIM].name,
                   st.commit);
    struct client_session *s = harness_session(c, -1, true, CALL_TIMEOUT_MS);
    HARNESS_ASSERT(c, s != NULL, "session");
    static char val[VALUE_LEN + 1], out[VALUE_LEN + 64];
    int checked = 0;
    for (int i = 0; i < MAX_WRITES; i++) {
        if (!t->acked[i])
            continue;
        char key[32];
        key_of(i, key, sizeof(key));
        value_of(i, val);
        int got = harness_call(s, PROTO_OP_GET, key, NULL, out, sizeof(out));
        HARNESS_ASSERT(c, got == PROTO_ST_VALUE && strcmp(out, val) == 0,
                       "acknowledged write %s lost: status %d, %.40s...", key, got, out);
        checked++;
    }
    client_session_free(s);
    HARNESS_ASSERT(c, checked == t->n_acked && checked > 0, "checked %d of %d", checked,
                   t->n_acked);
    for (int i = 0; i < c->n; i++)
        HARNESS_ASSERT(c, ctl_is_running(c, i), "%s died after the restart",
                       c->servers[i].name);
}

/* ---- the cases ---- */

START_TEST(test_full_disk_on_leader)
{
    struct disk_test t;
    disk_test_start(&t, FAULT_TMPFS);
    arrange_victim_role(&t, true);
    fill_until_victim_stops(&t);
    check_fatal_line(&t, "No space left on device");
    restart_and_verify(&t);
    disk_test_finish(&t);
}
END_TEST

START_TEST(test_full_disk_on_follower)
{
    struct disk_test t;
    disk_test_start(&t, FAULT_TMPFS);
    arrange_victim_role(&t, false);
    fill_until_victim_stops(&t);
    check_fatal_line(&t, "No space left on device");
    restart_and_verify(&t);
    disk_test_finish(&t);
}
END_TEST

/* The injected full disk, which runs in place of the tmpfs where mounting is refused;
 * run here as well so that it is tested where mounting is allowed too. */
START_TEST(test_injected_full_disk_on_follower)
{
    struct disk_test t;
    disk_test_start(&t, FAULT_INJECT_ENOSPC);
    arrange_victim_role(&t, false);
    fill_until_victim_stops(&t);
    check_fatal_line(&t, "No space left on device");
    restart_and_verify(&t);
    disk_test_finish(&t);
}
END_TEST

/* fsyncgate: after a failed fdatasync the dirty pages may be gone; the server must not
 * retry and carry on as if the data were safe. It stops; the log is re-read on restart. */
START_TEST(test_fsync_eio_on_leader)
{
    struct disk_test t;
    disk_test_start(&t, FAULT_INJECT_EIO_SYNC);
    arrange_victim_role(&t, true);
    fill_until_victim_stops(&t);
    check_fatal_line(&t, "fdatasync: Input/output error");
    restart_and_verify(&t);
    disk_test_finish(&t);
}
END_TEST

static Suite *disk_suite(void)
{
    Suite *s = suite_create("disk");
    TCase *tc = tcase_create("disk");
    tcase_add_unchecked_fixture(tc, runner_setup, runner_teardown);
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_test(tc, test_full_disk_on_leader);
    tcase_add_test(tc, test_full_disk_on_follower);
    tcase_add_test(tc, test_injected_full_disk_on_follower);
    tcase_add_test(tc, test_fsync_eio_on_leader);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(disk_suite)
