/* common/errors.h - error codes shared by every module, and their messages.
 * Functions return RK_OK (0) or a negative RK_ERR_* code; rk_strerror() names it. */
#ifndef RK_ERRORS_H
#define RK_ERRORS_H

#include <stddef.h>

enum rk_err {
    RK_OK = 0,
    RK_ERR_NOMEM = -1,      /* out of memory */
    RK_ERR_IO = -2,         /* a read, write, fsync or socket call failed */
    RK_ERR_CORRUPT = -3,    /* a file holds data that fails its checksum or format */
    RK_ERR_PROTO = -4,      /* a malformed frame or message */
    RK_ERR_TOOBIG = -5,     /* a length over the allowed maximum */
    RK_ERR_CLOSED = -6,     /* the peer closed the connection */
    RK_ERR_TIMEOUT = -7,    /* a deadline passed */
    RK_ERR_NOTLEADER = -8,  /* this node is not the leader */
    RK_ERR_INVAL = -9,      /* a bad argument or configuration */
    RK_ERR_NOTFOUND = -10,  /* a name or key that does not exist */
    RK_ERR_SHUTDOWN = -11,  /* the node is stopping */
    RK_ERR_LOST = -12,      /* leadership was lost; the outcome is unknown */
    RK_ERR_AGAIN = -13,     /* nothing is ready yet and the caller asked not to wait */
    RK_ERR_BUSY = -14,      /* a membership change or a leadership transfer is in progress */
    RK_ERR_EXISTS = -15,    /* already a member */
    RK_ERR_UNREACHABLE = -16, /* a server never answered */
    RK_ERR_BEHIND = -17,    /* a server could not catch up */
    RK_ERR_NOQUORUM = -18,  /* the change would leave no majority of reachable voters */
};

/* A short, static, human-readable message for an RK_ERR_* code. */
const char *rk_strerror(int err);

/* The detail a caller asked for: formats into err[0..errlen) unless err is NULL. */
void rk_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* rk_errf, then returns code: `return rk_fail(err, errlen, RK_ERR_CORRUPT, "...", ...);` */
int rk_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "path: op: strerror(errno)" into err, and RK_ERR_IO. */
int rk_fail_io(char *err, size_t errlen, const char *path, const char *op);

#endif
