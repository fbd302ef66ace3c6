/* server/storage/storage_io.c - storage's I/O seam (storage_io.h) as the product runs
 * it: each call is the libc call, nothing more. */
#include "storage_io.h"

#include <unistd.h>

ssize_t storage_io_pwrite(int fd, const void *data, size_t len, off_t off)
{
    return pwrite(fd, data, len, off);
}

int storage_io_sync_log(int fd)
{
    return fdatasync(fd);
}

int storage_io_statvfs(const char *path, struct statvfs *st)
{
    return statvfs(path, st);
}
