/* common/errors.c - messages for the RK_ERR_* codes of errors.h, and the helpers that
 * fill a caller's error buffer. */
#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rk_strerror(int err)
{
    switch (err) {
    case RK_OK: return "ok";
    case RK_ERR_NOMEM: return "out of memory";
    case RK_ERR_IO: return "I/O error";
    case RK_ERR_CORRUPT: return "corrupt data";
    case RK_ERR_PROTO: return "malformed message";
    case RK_ERR_TOOBIG: return "length over the maximum";
    case RK_ERR_CLOSED: return "connection closed";
    case RK_ERR_TIMEOUT: return "timed out";
    case RK_ERR_NOTLEADER: return "not the leader";
    case RK_ERR_INVAL: return "invalid argument";
    case RK_ERR_NOTFOUND: return "not found";
    case RK_ERR_SHUTDOWN: return "shutting down";
    case RK_ERR_LOST: return "leadership lost, outcome unknown";
    case RK_ERR_AGAIN: return "nothing ready yet";
    case RK_ERR_BUSY: return "a membership change is in progress";
    case RK_ERR_EXISTS: return "already a member";
    case RK_ERR_UNREACHABLE: return "not reachable";
    case RK_ERR_BEHIND: return "could not catch up";
    case RK_ERR_NOQUORUM: return "the voters left would not be a majority of reachable "
                                 "servers (remove --force overrides)";
    }
    return "unknown error";
}

static void format_into(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err != NULL && errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
}

void rk_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    format_into(err, errlen, fmt, ap);
    va_end(ap);
}

int rk_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    format_into(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

int rk_fail_io(char *err, size_t errlen, const char *path, const char *op)
{
    int saved = errno;
    return rk_fail(err, errlen, RK_ERR_IO, "%s: %s: %s", path, op, strerror(saved));
}
