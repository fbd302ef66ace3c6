/* common/cluster_ctl/spawn.c - child processes of the tests and tools: fork+exec of a
 * program that dies with its parent, in a process group of its own, and its end. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../clock.h"
#include "cluster_ctl.h"

#define MAX_FD_TO_CLOSE 4096
#define PASSED_FD 3

/* stdin from in_fd or /dev/null, stdout into out_fd (or ours), stderr into err_fd (or
 * wherever stdout goes). */
static void set_stdio(const struct ctl_spawn *s)
{
    int in = s->in_fd >= 0 ? s->in_fd : open("/dev/null", O_RDONLY);
    if (in >= 0 && in != 0)
        dup2(in, 0);
    if (s->out_fd >= 0)
        dup2(s->out_fd, 1);
    if (s->err_fd >= 0 || s->out_fd >= 0)
        dup2(s->err_fd >= 0 ? s->err_fd : s->out_fd, 2);
}

/* In the forked child, before exec: only async-signal-safe calls. */
static void spawn_child(pid_t parent, const struct ctl_spawn *s)
{
    setpgid(0, s->pgid);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl */
        _exit(126);
    if (s->netns_fd >= 0 && setns(s->netns_fd, CLONE_NEWNET) != 0)
        _exit(125);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL);
    set_stdio(s);
    int keep = 2;
    if (s->pass_fd >= 0) { /* dup2 onto itself would keep FD_CLOEXEC: cleared explicitly */
        if (dup2(s->pass_fd, PASSED_FD) < 0 || fcntl(PASSED_FD, F_SETFD, 0) < 0)
            _exit(124);
        keep = PASSED_FD;
    }
    for (int fd = keep + 1; fd < MAX_FD_TO_CLOSE; fd++)
        close(fd);
    execvp(s->argv[0], s->argv);
    _exit(127);
}

pid_t ctl_spawn(const struct ctl_spawn *s)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        spawn_child(parent, s);
    if (pid > 0)
        setpgid(pid, s->pgid); /* the child's own call; whoever runs first wins */
    return pid;
}

void ctl_end(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

bool ctl_wait_exit(pid_t pid, int ms, int *status)
{
    uint64_t deadline = rk_clock_ms() + (uint64_t)(ms > 0 ? ms : 0);
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return true;
        if (rk_clock_ms() >= deadline)
            return false;
        rk_sleep_ms(5);
    }
}
