/* server/storage/storage_io.h - the I/O seam of storage.c: the calls a test may make
 * fail, or answer otherwise. raft_server links storage_io.c, which goes straight to libc; the test-only
 * tests/raft_server_faults links tests/fault_io.c instead, which injects a full disk or
 * a failed fdatasync (tests/integ_disk.c). The choice is made at link time, so the
 * product holds no fault code and pays no indirection. */
#ifndef RK_STORAGE_IO_H
#define RK_STORAGE_IO_H

#include <stddef.h>
#include <sys/statvfs.h>
#include <sys/types.h>

/* pwrite(2) of the bytes storage keeps (log lines, NAME_state, a compacted log): the
 * same result and errno, short writes included. */
ssize_t storage_io_pwrite(int fd, const void *data, size_t len, off_t off);

/* fdatasync(2) of the log by storage_sync: 0, or -1 with errno set. */
int storage_io_sync_log(int fd);

/* statvfs(2) of the data directory, for the disk-full warning (node/warnings.c). */
int storage_io_statvfs(const char *path, struct statvfs *st);

#endif
