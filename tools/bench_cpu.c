/* tools/bench_cpu.c - CPU use during a run, to tell a quiet machine from a shared one
 * (the whole machine's busy and steal time, the generator's, the servers'), and the wait
 * for a quiet machine before a phase of the etcd comparison. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../common/clock.h"
#include "bench.h"

#define QUIET_WINDOW_MS 2000
#define QUIET_STEP_MS 500

/* Busy time of the whole machine (user, nice, system, irq, softirq, steal: all but idle
 * and iowait), from /proc/stat, and *steal. */
static double machine_busy_seconds(double *steal)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = { 0 };
    int got = f != NULL ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
                        : 0;
    if (f != NULL)
        fclose(f);
    *steal = 0;
    if (got != 8)
        return 0;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *steal = (double)v[7] / (double)sysconf(_SC_CLK_TCK);
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

/* utime + stime of a process (all its threads), from /proc/PID/stat. */
static double process_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces; fields follow the last ')' */
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void bench_cpu_sample(const pid_t *servers, int n, struct bench_cpu *s)
{
    memset(s, 0, sizeof(*s));
    s->ns = rk_clock_ns();
    s->machine_busy_s = machine_busy_seconds(&s->steal_s);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->self_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    for (int i = 0; i < n; i++)
        if (servers[i] > 0)
            s->servers_s += process_seconds(servers[i]);
}

void bench_cpu_usage(const struct bench_cpu *a, const struct bench_cpu *b, double *gen_pct,
                     double *servers_pct, double *other_pct, double *steal_pct)
{
    double wall = (double)(b->ns - a->ns) / 1e9;
    if (wall <= 0)
        wall = 1e-9;
    *gen_pct = 100 * (b->self_s - a->self_s) / wall;
    *servers_pct = 100 * (b->servers_s - a->servers_s) / wall;
    *other_pct = 100 * (b->machine_busy_s - a->machine_busy_s) / wall - *gen_pct - *servers_pct;
    *steal_pct = 100 * (b->steal_s - a->steal_s) / wall;
}

/* % of all CPUs busy between two samples. */
static double busy_pct(const struct bench_cpu *a, const struct bench_cpu *b)
{
    double wall = (double)(b->ns - a->ns) / 1e9;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return wall > 0 && cpus > 0 ? 100 * (b->machine_busy_s - a->machine_busy_s) / wall / cpus
                                : 100;
}

bool bench_wait_quiet(double threshold_pct, int max_wait_s)
{
    sync();
    uint64_t t0 = rk_clock_ms();
    struct bench_cpu window[QUIET_WINDOW_MS / QUIET_STEP_MS + 1];
    int n = 0, k = (int)(sizeof(window) / sizeof(window[0]));
    double busy = 100;
    for (;;) {
        bench_cpu_sample(NULL, 0, &window[n % k]);
        if (n >= k - 1)
            busy = busy_pct(&window[(n + 1) % k], &window[n % k]);
        n++;
        double waited = (double)(rk_clock_ms() - t0) / 1e3;
        if ((n >= k && busy < threshold_pct) || waited >= max_wait_s) {
            fprintf(stderr, "  quiet gate: %s after %.1f s (CPUs %.0f%% busy over the last "
                    "%d s, threshold %.0f%%)\n", busy < threshold_pct ? "quiet" : "NOT quiet",
                    waited, busy, QUIET_WINDOW_MS / 1000, threshold_pct);
            return busy < threshold_pct;
        }
        rk_sleep_ms(QUIET_STEP_MS);
    }
}
