/* tests/fault_io.c - storage's I/O seam (server/storage/storage_io.h) with injected disk
 * faults, for the test-only server build/.../tests/raft_server_faults (tests/integ_disk.c).
 * Linked in place of server/storage/storage_io.c; the product never contains it.
 *   RK_FAULT_ENOSPC_AFTER_BYTES=N  once N bytes went through storage_io_pwrite, writes
 *                                  fail with ENOSPC (the write that crosses N writes its
 *                                  first bytes and comes back short, as on a full disk)
 *   RK_FAULT_EIO_AFTER_SYNCS=N     the log's fdatasync fails with EIO after N successes
 *   RK_FAULT_STALL_DIR=DIR         while DIR/stall.<pid> exists, the log's fdatasync hangs
 *                                  (a stalled disk, up to 60 s; tests/integ_membership.c,
 *                                  tests/integ_warnings.c)
 *   RK_FAULT_DISK_USE_PCT=P        statvfs of the data directory says the disk is P% full
 *                                  (tests/integ_warnings.c)
 * Without these variables each call is the libc call. */
#include "../server/storage/storage_io.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STALL_POLL_NS 10000000L /* 10 ms */
#define STALL_MAX_POLLS 6000    /* 60 s */

static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static bool fault_on;              /* set once, read-only afterwards */
static long long fault_bytes_left = -1, fault_syncs_left = -1; /* -1: no fault; under fault_mu */

static long long fault_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] >= '0' && v[0] <= '9' ? strtoll(v, NULL, 10) : -1;
}

static void fault_read_env(void)
{
    fault_bytes_left = fault_env("RK_FAULT_ENOSPC_AFTER_BYTES");
    fault_syncs_left = fault_env("RK_FAULT_EIO_AFTER_SYNCS");
    fault_on = fault_bytes_left >= 0 || fault_syncs_left >= 0;
}

/* How many of len bytes may be written before the injected ENOSPC (len if none). */
static size_t fault_write_allowance(size_t len)
{
    pthread_once(&fault_once, fault_read_env);
    if (!fault_on)
        return len;
    pthread_mutex_lock(&fault_mu);
    size_t allowed = len;
    if (fault_bytes_left >= 0) {
        allowed = (unsigned long long)fault_bytes_left < len ? (size_t)fault_bytes_left : len;
        fault_bytes_left -= (long long)allowed;
    }
    pthread_mutex_unlock(&fault_mu);
    return allowed;
}

/* True when this fdatasync of the log must fail. */
static bool fault_sync_fails(void)
{
    pthread_once(&fault_once, fault_read_env);
    if (!fault_on)
        return false;
    pthread_mutex_lock(&fault_mu);
    bool fail = fault_syncs_left == 0;
    if (fault_syncs_left > 0)
        fault_syncs_left--;
    pthread_mutex_unlock(&fault_mu);
    return fail;
}

ssize_t storage_io_pwrite(int fd, const void *data, size_t len, off_t off)
{
    size_t allowed = fault_write_allowance(len);
    if (allowed == 0 && len > 0) {
        errno = ENOSPC;
        return -1;
    }
    return pwrite(fd, data, allowed, off);
}

/* While DIR/stall.<pid> exists (RK_FAULT_STALL_DIR), wait: the disk does not answer. */
static void fault_stall(void)
{
    const char *dir = getenv("RK_FAULT_STALL_DIR");
    if (dir == NULL)
        return;
    char path[4096];
    snprintf(path, sizeof(path), "%s/stall.%ld", dir, (long)getpid());
    struct timespec ts = { .tv_sec = 0, .tv_nsec = STALL_POLL_NS };
    for (int i = 0; i < STALL_MAX_POLLS && access(path, F_OK) == 0; i++)
        nanosleep(&ts, NULL);
}

int storage_io_sync_log(int fd)
{
    fault_stall();
    if (fault_sync_fails()) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

int storage_io_statvfs(const char *path, struct statvfs *st)
{
    long long pct = fault_env("RK_FAULT_DISK_USE_PCT");
    if (pct < 0 || pct > 100)
        return statvfs(path, st);
    memset(st, 0, sizeof(*st));
    st->f_bsize = st->f_frsize = 4096;
    st->f_blocks = 1000;
    st->f_bfree = st->f_bavail = (fsblkcnt_t)(1000 - pct * 10);
    return 0;
}
