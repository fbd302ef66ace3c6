/* common/rate_limit.c - at most one message of a kind per period (see rate_limit.h). */
#include "rate_limit.h"

bool rk_rate_limit_pass(struct rk_rate_limit *r, uint64_t now_ms, uint64_t period_ms,
                        unsigned long *held_back)
{
    if (r->last_ms != 0 && now_ms - r->last_ms < period_ms) {
        r->held++;
        return false;
    }
    *held_back = r->held;
    r->held = 0;
    r->last_ms = now_ms;
    return true;
}
