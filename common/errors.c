/* common/errors.c - messages for the RK_ERR_* codes of errors.h. */
#include "errors.h"

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
    }
    return "unknown error";
}
