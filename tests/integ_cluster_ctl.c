/* tests/integ_cluster_ctl.c - common/cluster_ctl, the cluster control the tests and tools
 * share: a janitor removes its dir (and runs its hook) when its process dies, and only
 * then; a spawned child dies with its parent; free ports are free and distinct; a cluster's
 * dir and registry come and go with it; STATUS lines parse strictly. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/cluster_ctl/cluster_ctl.h"
#include "../common/errors.h"
#include "../common/net.h"
#include "check_main.h"

#define WAIT_MS 5000

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static bool gone(const void *path)
{
    return !exists(path);
}

static bool there(const void *path)
{
    return exists(path);
}

/* The first line of /proc/PID/<what> into out ("" if pid is gone). */
static void proc_line(pid_t pid, const char *what, char *out, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (f != NULL && fgets(out, (int)len, f) == NULL)
        out[0] = '\0';
    if (f != NULL)
        fclose(f);
}

/* The process has exited: gone, or a zombie waiting for init. */
static bool dead(const void *pid)
{
    char stat[256];
    proc_line(*(const pid_t *)pid, "stat", stat, sizeof(stat));
    return stat[0] == '\0' || strstr(stat, ") Z ") != NULL;
}

/* The process runs sleep: it has exec'd. */
static bool runs_sleep(const void *pid)
{
    char comm[64];
    proc_line(*(const pid_t *)pid, "comm", comm, sizeof(comm));
    return strncmp(comm, "sleep", 5) == 0;
}

/* Polls holds(arg) for up to WAIT_MS: true once it does. */
static bool eventually(bool (*holds)(const void *arg), const void *arg)
{
    uint64_t deadline = rk_clock_ms() + WAIT_MS;
    while (!holds(arg) && rk_clock_ms() < deadline)
        rk_sleep_ms(5);
    return holds(arg);
}

/* The janitor's hook: leaves a mark where arg says. */
static void mark(void *arg)
{
    int fd = open(arg, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0)
        close(fd);
}

/* In a child that then dies: a dir with a file, and its janitor. The dir's name goes up
 * the pipe. */
static void orphan_dir(int out_fd, char *marker)
{
    char dir[CTL_DIR_MAX], err[256], file[CTL_PATH_MAX];
    if (ctl_make_dir(dir, sizeof(dir), "ctltest", err, sizeof(err)) != RK_OK)
        _exit(1);
    snprintf(file, sizeof(file), "%s/data", dir);
    mark(file);
    struct ctl_janitor j;
    ctl_janitor_start(&j, dir, mark, marker);
    if (write(out_fd, dir, sizeof(dir)) != (ssize_t)sizeof(dir))
        _exit(1);
    _exit(j.pid > 0 ? 0 : 1); /* dies without dismissing it */
}

START_TEST(test_janitor_cleans_up_after_its_process)
{
    char marker[] = "/tmp/rk_ctltest_marker_XXXXXX", dir[CTL_DIR_MAX];
    int p[2], fd = mkstemp(marker);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(marker);
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0)
        orphan_dir(p[1], marker);
    close(p[1]);
    ck_assert_int_eq(read(p[0], dir, sizeof(dir)), (ssize_t)sizeof(dir));
    close(p[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(eventually(gone, dir), "the janitor did not remove %s", dir);
    ck_assert_msg(eventually(there, marker), "the janitor did not run its hook");
    unlink(marker);
}
END_TEST

START_TEST(test_dismissed_janitor_leaves_the_dir)
{
    char dir[CTL_DIR_MAX], err[256];
    ck_assert_int_eq(ctl_make_dir(dir, sizeof(dir), "ctltest", err, sizeof(err)), RK_OK);
    struct ctl_janitor j;
    ctl_janitor_start(&j, dir, NULL, NULL);
    ck_assert_int_gt(j.pid, 0);
    pid_t jpid = j.pid;
    ctl_janitor_dismiss(&j); /* reaps it: it has exited */
    ck_assert_int_eq(j.pid, 0);
    ck_assert(kill(jpid, 0) != 0 && errno == ESRCH);
    ck_assert(exists(dir));
    ctl_remove_dir(dir);
    ck_assert(!exists(dir));
}
END_TEST

START_TEST(test_spawned_child_dies_with_its_parent)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t parent = fork();
    if (parent == 0) { /* spawns sleep, and dies once it runs */
        char *argv[] = { "sleep", "30", NULL };
        struct ctl_spawn sp = CTL_SPAWN(argv);
        pid_t child = ctl_spawn(&sp);
        bool ok = child > 0 && eventually(runs_sleep, &child);
        _exit(write(p[1], &child, sizeof(child)) == sizeof(child) && ok ? 0 : 1);
    }
    close(p[1]);
    pid_t child = -1;
    ck_assert_int_eq(read(p[0], &child, sizeof(child)), (ssize_t)sizeof(child));
    close(p[0]);
    int status;
    ck_assert_int_eq(waitpid(parent, &status, 0), parent);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sleep did not start");
    ck_assert_msg(eventually(dead, &child), "sleep (pid %d) outlived its parent", (int)child);
}
END_TEST

START_TEST(test_free_ports_are_free_and_distinct)
{
    uint16_t ports[8];
    char err[256];
    ck_assert_int_eq(ctl_free_ports(ports, 8, err, sizeof(err)), RK_OK);
    for (int i = 0; i < 8; i++) {
        for (int j = 0; j < i; j++)
            ck_assert_uint_ne(ports[i], ports[j]);
        int fd = net_listen("127.0.0.1", ports[i], 1, err, sizeof(err));
        ck_assert_msg(fd >= 0, "port %u: %s", (unsigned)ports[i], err);
        close(fd);
    }
    ck_assert_int_eq(ctl_free_ports(ports, 65, err, sizeof(err)), RK_ERR_INVAL);
}
END_TEST

START_TEST(test_cluster_dir_and_registry)
{
    char err[256];
    struct ctl_cluster *c = ctl_cluster_new(3, "ctltest", NULL, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    char dir[CTL_DIR_MAX];
    snprintf(dir, sizeof(dir), "%s", c->dir);
    struct registry reg;
    ck_assert_int_eq(registry_load(c->registry_path, &reg, err, sizeof(err)), RK_OK);
    ck_assert_int_eq(reg.n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(reg.servers[i].name, c->servers[i].name);
        ck_assert_uint_eq(reg.servers[i].port, c->servers[i].port);
        ck_assert(!ctl_is_running(c, i));
    }
    registry_free(&reg);
    ck_assert_int_eq(ctl_index_of(c, "s2"), 1);
    ck_assert_int_eq(ctl_index_of(c, "s4"), -1);
    ck_assert_int_eq(ctl_kill(c, 0), RK_ERR_INVAL); /* not running */
    ctl_cluster_destroy(c);
    ck_assert(!exists(dir));
    ck_assert(ctl_cluster_new(CTL_MAX_SERVERS + 1, "ctltest", NULL, err, sizeof(err)) == NULL);
}
END_TEST

START_TEST(test_status_lines)
{
    struct ctl_status st;
    ck_assert_int_eq(ctl_status_parse("name=s1 role=leader term=3 leader=s1 commit=7 applied=6 "
                                      "last=8 snapshot=5 future=x", &st), RK_OK);
    ck_assert_str_eq(st.name, "s1");
    ck_assert_str_eq(st.role, "leader");
    ck_assert_str_eq(st.leader, "s1");
    ck_assert(st.term == 3 && st.commit == 7 && st.applied == 6 && st.last == 8 &&
              st.snapshot == 5);
    ck_assert_int_eq(ctl_status_parse("name=s2 role=follower term=3 leader=none commit=7 "
                                      "applied=7 last=7", &st), RK_OK);
    ck_assert(st.snapshot == -1);
    const char *bad[] = { "name=s2 role=follower term=3 leader=none commit=7 applied=7",
                          "name=s2 role=follower term=x leader=none commit=7 applied=7 last=7",
                          "name=s2 role=follower term=-1 leader=s1 commit=7 applied=7 last=7",
                          "" };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        ck_assert_msg(ctl_status_parse(bad[k], &st) == RK_ERR_PROTO, "accepted '%s'", bad[k]);
}
END_TEST

static Suite *cluster_ctl_suite(void)
{
    Suite *s = suite_create("integ_cluster_ctl");
    TCase *tc = tcase_create("cluster_ctl");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_janitor_cleans_up_after_its_process);
    tcase_add_test(tc, test_dismissed_janitor_leaves_the_dir);
    tcase_add_test(tc, test_spawned_child_dies_with_its_parent);
    tcase_add_test(tc, test_free_ports_are_free_and_distinct);
    tcase_add_test(tc, test_cluster_dir_and_registry);
    tcase_add_test(tc, test_status_lines);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(cluster_ctl_suite)
