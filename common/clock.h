/* common/clock.h - the one monotonic clock of the project (CLOCK_MONOTONIC) in the units
 * its callers want, and a sleep that resumes after signals. Deadlines computed by any
 * module (frame reader, node, client session, tests, tools) are comparable. */
#ifndef RK_CLOCK_H
#define RK_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds, microseconds and nanoseconds. */
uint64_t rk_clock_ms(void);
uint64_t rk_clock_us(void);
uint64_t rk_clock_ns(void);
/* Sleeps ms milliseconds (nothing if ms <= 0), resuming after a signal. */
void rk_sleep_ms(int64_t ms);

#endif
