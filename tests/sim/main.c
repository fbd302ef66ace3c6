/* tests/sim/main.c - the simulator's command line: runs seeds A..B on each cluster size,
 * prints a report for each failing seed (invariant, trace tail, replay command) and a
 * summary; exit status 1 if any seed failed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

/* usage: sim --seeds A..B [--nodes 3|5|3,5] [--steps N] [--trace] [--stats] [--jobs J]
 *            [--max-failures N] [--seed-timeout S]
 * --trace prints every event of each run; --stats averages counters over the runs;
 * --jobs runs that many worker processes (each seed still in its own child);
 * --max-failures stops each worker after its Nth failing run (0, the default: never);
 * --seed-timeout fails a run that takes longer than S seconds (0, the default: no limit). */

#define MAIN_MAX_SIZES 4
#define MAIN_MAX_JOBS 64

struct main_opts {
    uint64_t first, last;
    int sizes[MAIN_MAX_SIZES];
    int n_sizes;
    uint32_t steps;
    bool trace, stats;
    int jobs;
    uint64_t max_failures;
    uint32_t seed_timeout_s;
    const char *bin;
};

struct main_counts {
    uint64_t runs, passed, failed;
    struct sim_stats sum;     /* totals over every run */
};

static void main_usage(const char *prog, const char *why)
{
    fprintf(stderr, "%s: %s\nusage: %s --seeds A..B [--nodes 3|5|3,5] [--steps N] [--trace] "
            "[--stats] [--jobs J] [--max-failures N] [--seed-timeout S]\n", prog, why, prog);
    exit(2);
}

static bool main_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool main_parse_seeds(const char *arg, struct main_opts *o)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", arg);
    char *dots = strstr(buf, "..");
    if (dots == NULL)
        return main_parse_u64(buf, &o->first) && (o->last = o->first, true);
    *dots = '\0';
    return main_parse_u64(buf, &o->first) && main_parse_u64(dots + 2, &o->last) &&
           o->first <= o->last;
}

static bool main_parse_sizes(const char *arg, struct main_opts *o)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", arg);
    o->n_sizes = 0;
    for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        uint64_t v;
        if (!main_parse_u64(tok, &v) || v < 1 || v > SIM_MAX_NODES || o->n_sizes == MAIN_MAX_SIZES)
            return false;
        o->sizes[o->n_sizes++] = (int)v;
    }
    return o->n_sizes > 0;
}

static void main_parse(int argc, char **argv, struct main_opts *o)
{
    *o = (struct main_opts){ .first = 1, .last = 1, .sizes = { 3 }, .n_sizes = 1,
                             .steps = 2000, .jobs = 1, .bin = argv[0] };
    bool have_seeds = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--trace")) {
            o->trace = true;
            continue;
        }
        if (!strcmp(a, "--stats")) {
            o->stats = true;
            continue;
        }
        if (i + 1 >= argc)
            main_usage(argv[0], "missing value");
        const char *val = argv[++i];
        uint64_t v = 0;
        bool number = main_parse_u64(val, &v);
        if (!strcmp(a, "--seeds")) {
            if (!main_parse_seeds(val, o))
                main_usage(argv[0], "bad --seeds (want A..B or A)");
            have_seeds = true;
        } else if (!strcmp(a, "--nodes")) {
            if (!main_parse_sizes(val, o))
                main_usage(argv[0], "bad --nodes (want a list like 3,5)");
        } else if (!strcmp(a, "--steps")) {
            if (!number || v == 0 || v >= UINT32_MAX)
                main_usage(argv[0], "bad --steps");
            o->steps = (uint32_t)v;
        } else if (!strcmp(a, "--jobs")) {
            if (!number || v < 1 || v > MAIN_MAX_JOBS)
                main_usage(argv[0], "bad --jobs");
            o->jobs = (int)v;
        } else if (!strcmp(a, "--max-failures")) {
            if (!number)
                main_usage(argv[0], "bad --max-failures");
            o->max_failures = v;
        } else if (!strcmp(a, "--seed-timeout")) {
            if (!number || v > 86400)
                main_usage(argv[0], "bad --seed-timeout");
            o->seed_timeout_s = (uint32_t)v;
        } else {
            main_usage(argv[0], "unknown option");
        }
    }
    if (!have_seeds)
        main_usage(argv[0], "--seeds is required");
}

/* Adds every counter of b to a (struct sim_stats is all uint64_t). */
static void main_add_stats(struct sim_stats *a, const struct sim_stats *b)
{
    uint64_t *x = (uint64_t *)a;
    const uint64_t *y = (const uint64_t *)b;
    for (size_t i = 0; i < sizeof(*a) / sizeof(uint64_t); i++)
        x[i] += y[i];
}

static void main_print_stats(const struct main_counts *c)
{
    const struct sim_stats *t = &c->sum;
    const struct { const char *name; uint64_t total; } rows[] = {
        { "ms simulated", t->sim_ms }, { "leaders", t->leaders }, { "max term", t->max_term },
        { "max commit", t->max_commit }, { "crashes", t->crashes },
        { "torn writes", t->torn_writes }, { "lost writes", t->lost_writes },
        { "restarts", t->restarts }, { "partitions", t->partitions }, { "pauses", t->pauses },
        { "weather changes", t->weather_changes }, { "delivered", t->delivered },
        { "dropped", t->dropped }, { "duplicated", t->duplicated },
        { "snapshot chunks", t->snap_chunks },
        { "expiry batches", t->expiry_batches }, { "keys expired", t->expired_keys },
        { "watch events", t->watch_events },
        { "writes acked", t->writes_acked }, { "writes lost", t->writes_lost },
        { "reads ok", t->reads_ok }, { "reads failed", t->reads_failed },
        { "rejected", t->rejected }, { "ms to liveness", t->liveness_ms },
        { "adds", t->adds }, { "adds ok", t->adds_ok }, { "removes", t->removes },
        { "removes ok", t->removes_ok }, { "transfers", t->transfers },
        { "transfers ok", t->transfers_ok },
    };
    double runs = c->runs ? (double)c->runs : 1.0;
    printf("per run (average):");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        printf("%s %.1f %s", i ? "," : "", (double)rows[i].total / runs, rows[i].name);
    printf("\n");
}

static void main_print_line(void *ctx, const char *line)
{
    (void)ctx;
    puts(line);
}

/* Runs the seeds with (seed - first) % jobs == worker. */
static struct main_counts main_run_share(const struct main_opts *o, int worker)
{
    struct main_counts c = { 0 };
    for (uint64_t seed = o->first + (uint64_t)worker; seed <= o->last && seed >= o->first;
         seed += (uint64_t)o->jobs) {
        for (int k = 0; k < o->n_sizes; k++) {
            if (o->max_failures != 0 && c.failed >= o->max_failures)
                return c;
            struct sim_run_opts ro = { .n_nodes = o->sizes[k], .steps = o->steps,
                                       .replay_bin = o->bin, .timeout_s = o->seed_timeout_s };
            if (o->trace) {
                ro.trace_fn = main_print_line;
                printf("== seed %" PRIu64 ", %d nodes\n", seed, o->sizes[k]);
            }
            struct sim_result res;
            bool ok = sim_run_seed_isolated(seed, &ro, &res);
            c.runs++;
            main_add_stats(&c.sum, &res.stats);
            if (ok) {
                c.passed++;
            } else {
                c.failed++;
                fputs(res.report ? res.report : res.detail, stdout);
                fflush(stdout);
            }
            if (o->trace)
                printf("== seed %" PRIu64 ": %s, trace hash %016" PRIx64 "\n", seed,
                       ok ? "ok" : "FAILED", res.trace_hash);
            sim_result_free(&res);
        }
    }
    return c;
}

/* Forks one worker per job; each sends its counts back through a pipe. */
static struct main_counts main_run_jobs(const struct main_opts *o)
{
    if (o->jobs == 1)
        return main_run_share(o, 0);
    int fds[MAIN_MAX_JOBS];
    pid_t pids[MAIN_MAX_JOBS];
    fflush(stdout);
    for (int w = 0; w < o->jobs; w++) {
        int p[2];
        if (pipe(p) != 0) {
            perror("pipe");
            exit(2);
        }
        pids[w] = fork();
        if (pids[w] < 0) {
            perror("fork");
            exit(2);
        }
        if (pids[w] == 0) {
            close(p[0]);
            struct main_counts c = main_run_share(o, w);
            ssize_t wr = write(p[1], &c, sizeof(c));
            _exit(wr == (ssize_t)sizeof(c) ? 0 : 2);
        }
        close(p[1]);
        fds[w] = p[0];
    }
    struct main_counts total = { 0 };
    for (int w = 0; w < o->jobs; w++) {
        struct main_counts c = { 0 };
        if (read(fds[w], &c, sizeof(c)) != (ssize_t)sizeof(c))
            c.failed++; /* a worker that died counts as a failure */
        close(fds[w]);
        waitpid(pids[w], NULL, 0);
        total.runs += c.runs;
        total.passed += c.passed;
        total.failed += c.failed;
        main_add_stats(&total.sum, &c.sum);
    }
    return total;
}

int main(int argc, char **argv)
{
    struct main_opts o;
    main_parse(argc, argv, &o);
    if (o.trace)
        setvbuf(stdout, NULL, _IOLBF, 0); /* a crash loses no trace line */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct main_counts c = main_run_jobs(&o);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char sizes[32] = "";
    for (int k = 0, off = 0; k < o.n_sizes; k++)
        off += snprintf(sizes + off, sizeof(sizes) - (size_t)off, "%s%d", k ? "," : "", o.sizes[k]);
    printf("sim: seeds %" PRIu64 "..%" PRIu64 " x nodes %s x %u steps: %" PRIu64 " runs, %" PRIu64
           " passed, %" PRIu64 " failed, %.1f s\n", o.first, o.last, sizes, o.steps, c.runs,
           c.passed, c.failed, secs);
    if (o.stats)
        main_print_stats(&c);
    return c.failed == 0 ? 0 : 1;
}
