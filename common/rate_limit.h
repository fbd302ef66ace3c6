/* common/rate_limit.h - one kind of message let through at most once per period; those
 * held back meanwhile are counted, so the next line can say how many. No clock or lock of
 * its own: the caller passes the time and guards the struct. */
#ifndef RK_RATE_LIMIT_H
#define RK_RATE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct rk_rate_limit {
    uint64_t last_ms;   /* when one last went through (0: never) */
    unsigned long held; /* held back since */
};

/* true: let this one through; *held_back is how many were held back since the last one
 * (and the count starts again). false: held back, and counted. */
bool rk_rate_limit_pass(struct rk_rate_limit *r, uint64_t now_ms, uint64_t period_ms,
                        unsigned long *held_back);

#endif
