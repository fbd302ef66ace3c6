/* common/cluster_ctl/janitor.c - temp dirs of the tests and tools, and the janitor that
 * removes one when the process that made it dies without doing so (a test killed by
 * Check's timeout, a benchmark stopped by ^C or kill -9): a forked process waiting for
 * EOF on a pipe whose only write end that process holds. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../clock.h"
#include "../errors.h"
#include "cluster_ctl.h"

#define MAX_FD_TO_CLOSE 4096
#define GRACE_MS 500 /* for the children that die with their parent to be gone */
#define DISMISSED 'd'

int ctl_make_dir(char *dir, size_t len, const char *tag, char *err, size_t errlen)
{
    snprintf(dir, len, "/tmp/rk_%s_XXXXXX", tag);
    if (mkdtemp(dir) != NULL)
        return RK_OK;
    dir[0] = '\0';
    return rk_fail_io(err, errlen, "/tmp", "mkdtemp");
}

/* True if $RK_KEEP_DIR asks to keep temp dirs (set, not "" or "0"). */
static bool keep_dir(void)
{
    const char *keep = getenv("RK_KEEP_DIR");
    return keep != NULL && keep[0] != '\0' && strcmp(keep, "0") != 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void ctl_remove_dir(const char *dir)
{
    if (dir[0] == '\0')
        return;
    if (keep_dir())
        fprintf(stderr, "cluster_ctl: keeping %s\n", dir);
    else
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The janitor itself: no stdio of ours (a closed terminal must not stop it), no other
 * descriptor (another janitor's pipe would keep that one waiting). */
static void janitor_main(int read_fd, const char *dir, bool keep, void (*hook)(void *),
                         void *arg)
{
    setsid(); /* a ^C to our process group does not reach it */
    for (int fd = 0; fd < MAX_FD_TO_CLOSE; fd++)
        if (fd != read_fd)
            close(fd);
    for (int fd = 0; fd < 3; fd++) /* stdio for the programs a hook may run */
        if (open("/dev/null", O_RDWR) != fd)
            break;
    char byte = 0;
    ssize_t r;
    while ((r = read(read_fd, &byte, 1)) < 0 && errno == EINTR) {
    }
    if (r == 1 && byte == DISMISSED)
        _exit(0);
    rk_sleep_ms(GRACE_MS);
    if (hook != NULL)
        hook(arg);
    if (!keep)
        execl("/bin/rm", "rm", "-rf", "--", dir, (char *)NULL);
    _exit(0);
}

void ctl_janitor_start(struct ctl_janitor *j, const char *dir, void (*hook)(void *arg),
                       void *arg)
{
    int p[2];
    j->pid = 0;
    j->fd = -1;
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    bool keep = keep_dir();
    pid_t pid = fork();
    if (pid == 0)
        janitor_main(p[0], dir, keep, hook, arg);
    close(p[0]);
    if (pid < 0) {
        close(p[1]);
        return;
    }
    j->pid = pid;
    j->fd = p[1];
}

void ctl_janitor_dismiss(struct ctl_janitor *j)
{
    if (j->fd >= 0) {
        char byte = DISMISSED;
        while (write(j->fd, &byte, 1) < 0 && errno == EINTR) {
        }
        close(j->fd);
    }
    if (j->pid > 0)
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    j->fd = -1;
    j->pid = 0;
}
