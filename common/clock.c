/* common/clock.c - see clock.h. */
#include "clock.h"

#include <errno.h>
#include <time.h>

uint64_t rk_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rk_clock_us(void)
{
    return rk_clock_ns() / 1000u;
}

uint64_t rk_clock_ms(void)
{
    return rk_clock_ns() / 1000000u;
}

void rk_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
