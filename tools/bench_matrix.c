/* tools/bench_matrix.c - raft_bench --matrix, the standard matrix of `make bench`: 3 and 5
 * nodes, 1-64 clients, writes and 90% reads, each beside the generator's ceiling, then
 * leader failover on 5 nodes; written as Markdown to stdout and docs/benchmarks-latest.md.
 * Also the rows of one cluster size that the etcd comparison puts beside etcd's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "bench.h"

#define DISTURBED_STEAL_PCT 20 /* % of one core taken by other VMs during a row */

const int bench_matrix_clients[BENCH_MATRIX_CLIENTS] = { 1, 8, 32, 64 };
static const double matrix_reads[] = { 0, 0.9 };
#define N_READS (int)(sizeof(matrix_reads) / sizeof(matrix_reads[0]))

struct matrix {
    struct bench_row rows[2 * BENCH_MATRIX_CLIENTS * N_READS];
    int n_rows;
    struct bench_result ceiling[BENCH_MATRIX_CLIENTS][N_READS];
    struct bench_failover_result fo;
    bool fo_ran, ceiling_ran;
    int loop_threads;   /* the engine: 0 = a thread per client */
    int matrix_writes;  /* --matrix-writes N, or 0 */
    bool quick;
    int fo_rc;
    char fo_err[BENCH_ERR_LEN];
    struct bench_run_info info;
};

/* Ops per run: about what the targets need in a few seconds; runs also stop at
 * max_seconds, so a slow cluster still finishes in time. */
static long matrix_ops(const struct bench_options *o, int clients)
{
    long ops = clients == 1 ? 5000 : clients <= 8 ? 20000 : 50000;
    return o->quick ? ops / 10 : ops;
}

/* One row's run on the leader of c (which may have changed since the last row). */
static void matrix_row(const struct bench_options *base, struct ctl_cluster *c,
                       struct bench_row *row, char *err, size_t errlen)
{
    struct bench_options o = *base;
    int leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL);
    const struct ctl_server *ln = &c->servers[leader >= 0 ? leader : 0];
    o.clients = row->clients;
    o.read_ratio = row->reads;
    o.ops = matrix_ops(base, row->clients);
    struct bench_load_opts lo = bench_load_opts_of(&o, ln->host, ln->port);
    row->rc = bench_measured_load(c, NULL, 0, &lo, &row->r, err, errlen);
    fprintf(stderr, "  %d nodes, %2d clients, %2.0f%% reads: ", row->nodes, row->clients,
            row->reads * 100);
    if (row->rc == RK_OK)
        bench_print_result(stderr, "", &row->r);
    else
        fprintf(stderr, "FAILED: %s\n", err);
}

int bench_matrix_rows(const struct bench_options *base, int nodes, bool reads,
                      struct bench_row *rows)
{
    char err[BENCH_ERR_LEN] = "";
    struct ctl_cluster *c = NULL;
    struct bench_options o = *base;
    o.value_size = 100;
    o.keys = 1000;
    o.max_seconds = o.quick ? 2 : 5;
    int leader = bench_open_cluster(&o, nodes, &c, err, sizeof(err));
    const struct ctl_server *ln = leader >= 0 ? &c->servers[leader] : NULL;
    int rc = ln == NULL ? RK_ERR_TIMEOUT : bench_prefill(&o, ln->host, ln->port, err,
                                                         sizeof(err));
    if (rc != RK_OK)
        fprintf(stderr, "raft_bench: %d nodes: %s\n", nodes, err);
    int n = 0;
    for (int ci = 0; ci < BENCH_MATRIX_CLIENTS; ci++) {
        for (int ri = 0; ri < (reads ? N_READS : 1); ri++) {
            struct bench_row *row = &rows[n++];
            *row = (struct bench_row){ .nodes = nodes, .clients = bench_matrix_clients[ci],
                                       .reads = matrix_reads[ri], .rc = rc };
            if (rc == RK_OK)
                matrix_row(&o, c, row, err, sizeof(err));
        }
    }
    ctl_cluster_destroy(c);
    return n;
}

static void matrix_ceilings(const struct bench_options *base, struct matrix *m)
{
    char err[BENCH_ERR_LEN];
    for (int ci = 0; ci < BENCH_MATRIX_CLIENTS; ci++) {
        for (int ri = 0; ri < N_READS; ri++) {
            struct bench_options o = *base;
            o.value_size = 100;
            o.keys = 1000;
            o.clients = bench_matrix_clients[ci];
            o.read_ratio = matrix_reads[ri];
            o.ops = base->quick ? 5000 : 100000; /* short runs are at the mercy of noise */
            o.max_seconds = base->quick ? 1 : 2;
            if (bench_run_ceiling(&o, &m->ceiling[ci][ri], err, sizeof(err)) != RK_OK)
                fprintf(stderr, "raft_bench: ceiling: %s\n", err);
            fprintf(stderr, "  ceiling, %2d clients, %2.0f%% reads: ", o.clients,
                    o.read_ratio * 100);
            bench_print_result(stderr, "", &m->ceiling[ci][ri]);
        }
    }
}

int bench_failover_run(const struct bench_options *o, struct bench_failover_result *r,
                       char *err, size_t errlen)
{
    struct ctl_cluster *c = NULL;
    int kills = o->failover > 0 ? o->failover : o->quick ? 3 : 10;
    int rc = bench_open_cluster(o, 5, &c, err, errlen) < 0 ? RK_ERR_TIMEOUT : RK_OK;
    memset(r, 0, sizeof(*r));
    if (rc == RK_OK)
        rc = bench_failover(c, kills, r, err, errlen);
    if (rc != RK_OK)
        fprintf(stderr, "raft_bench: failover: %s\n", err);
    ctl_cluster_destroy(c);
    return rc;
}

/* ---- the report ---- */

void bench_run_begin(struct bench_run_info *info)
{
    info->started = time(NULL);
    info->t0_ms = rk_clock_ms();
    getloadavg(info->load_before, 3);
}

void bench_run_end(struct bench_run_info *info)
{
    getloadavg(info->load_after, 3);
    info->seconds = (double)(rk_clock_ms() - info->t0_ms) / 1e3;
}

/* The model name of the first CPU, into out. */
static void cpu_model(char *out, size_t len)
{
    FILE *ci = fopen("/proc/cpuinfo", "r");
    char line[256];
    snprintf(out, len, "unknown CPU");
    while (ci != NULL && fgets(line, sizeof(line), ci) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            snprintf(out, len, "%.*s", (int)strcspn(colon + 2, "\n"), colon + 2);
            break;
        }
    }
    if (ci != NULL)
        fclose(ci);
}

void bench_write_run_line(FILE *f, const struct bench_run_info *info, const char *command)
{
    char when[64], cpu[128];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&info->started));
    cpu_model(cpu, sizeof(cpu));
    struct utsname u;
    uname(&u);
    fprintf(f, "Run %s by `tools/raft_bench %s` in %.0f s on %ld CPUs (%s), Linux %s.\n", when,
            command, info->seconds, sysconf(_SC_NPROCESSORS_ONLN), cpu, u.release);
    fprintf(f, "Load average before: %.2f %.2f %.2f; after: %.2f %.2f %.2f.\n\n",
            info->load_before[0], info->load_before[1], info->load_before[2],
            info->load_after[0], info->load_after[1], info->load_after[2]);
}

static void write_header(FILE *f, const struct matrix *m)
{
    char cmd[64];
    if (m->matrix_writes > 0)
        snprintf(cmd, sizeof(cmd), "--matrix-writes %d", m->matrix_writes);
    else
        snprintf(cmd, sizeof(cmd), "--matrix");
    if (m->loop_threads > 0)
        strcat(cmd, " --engine loop");
    if (m->quick)
        strcat(cmd, " --quick");
    fprintf(f, "# raft-kv benchmark (`make bench`)\n\n");
    bench_write_run_line(f, &m->info, cmd);
    if (m->loop_threads > 0)
        fprintf(f, "Closed loop: each client (one TCP connection to the leader, all of them "
                   "served by %d epoll thread%s: `--engine loop`) sends a ", m->loop_threads,
                m->loop_threads > 1 ? "s" : "");
    else
        fprintf(f, "Closed loop: each client (one thread, one TCP connection to the leader) "
                   "sends a ");
    fprintf(f, "request and waits for its answer. 100-byte values, 1000 keys (written once "
               "before the runs), servers on 127.0.0.1 with fsync on, in a temp dir. Latency "
               "in ms, every operation recorded. *Ceiling*: the same load against a server in "
               "raft_bench that answers at once, without Raft or disk. *CPU*: %% of one core "
               "used by the generator, by the servers, and by everything else on the machine "
               "during the run: interrupts and softirqs not charged to a process, other "
               "processes, and *steal* (in brackets), the time the hypervisor gave our vCPUs "
               "to other machines. A row with %d%% or more steal is marked **disturbed**: "
               "the host, not the cluster, set its pace.\n\n", DISTURBED_STEAL_PCT);
}

const char *bench_disturbed(const struct bench_result *r)
{
    return r->steal_cpu_pct >= DISTURBED_STEAL_PCT ? " **disturbed**" : "";
}

static void write_table(FILE *f, const struct matrix *m)
{
    fprintf(f, "| nodes | clients | reads | ops | ops/s | p50 | p90 | p99 | p99.9 | max | "
               "errors | ceiling ops/s | of ceiling | CPU gen / servers / other (steal) |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < m->n_rows; k++) {
        const struct bench_row *row = &m->rows[k];
        int ci = 0, ri = row->reads > 0;
        while (bench_matrix_clients[ci] != row->clients)
            ci++;
        const struct bench_result *r = &row->r, *c = &m->ceiling[ci][ri];
        fprintf(f, "| %d | %d | %.0f%% | ", row->nodes, row->clients, row->reads * 100);
        if (row->rc != RK_OK) {
            fprintf(f, "failed: %s | | | | | | | | | | | |\n", rk_strerror(row->rc));
            continue;
        }
        fprintf(f, "%ld | %.0f | %.3f | %.3f | %.3f | %.3f | %.3f | %ld%s | ", r->ops,
                r->ops_per_s, r->p50_ms, r->p90_ms, r->p99_ms, r->p999_ms, r->max_ms,
                r->errors, r->new_terms > 0 ? " (election)" : "");
        if (m->ceiling_ran)
            fprintf(f, "%.0f | %.0f%% | ", c->ops_per_s,
                    c->ops_per_s > 0 ? 100 * r->ops_per_s / c->ops_per_s : 0);
        else
            fprintf(f, "- | - | ");
        fprintf(f, "%.0f / %.0f / %.0f (%.0f)%%%s |\n", r->gen_cpu_pct, r->server_cpu_pct,
                r->other_cpu_pct, r->steal_cpu_pct, bench_disturbed(r));
    }
}

static void write_failover(FILE *f, const struct matrix *m)
{
    const struct bench_failover_result *r = &m->fo;
    fprintf(f, "\n## Failover: 5 nodes, `kill -9` of the leader to the first acknowledged "
               "write\n\n");
    if (m->fo_rc != RK_OK)
        fprintf(f, "**Failed**: %s (after %d kills).\n\n", m->fo_err, r->trials);
    fprintf(f, "| measured by | kills | no ack | median ms | max ms |\n|---|---|---|---|---|\n");
    fprintf(f, "| prober: a write to every server on a fresh connection every 10 ms | %d | %d "
               "| %.1f | %.1f |\n", r->trials, r->failed, r->probe_median_ms, r->probe_max_ms);
    fprintf(f, "| client session (`client/session.c`, kept-open connection, retries) | %d | %d "
               "| %.1f | %.1f |\n", r->trials, r->failed, r->session_median_ms,
            r->session_max_ms);
    fprintf(f, "\nPer kill (prober / session, ms):");
    for (int t = 0; t < r->trials; t++)
        fprintf(f, "%s %.0f / %.0f", t ? "," : "", r->probe_ms[t], r->session_ms[t]);
    fprintf(f, "\n");
}

static void write_matrix(FILE *f, void *arg)
{
    const struct matrix *m = arg;
    write_header(f, m);
    write_table(f, m);
    if (m->fo_ran)
        write_failover(f, m);
}

int bench_write_report(const char *path, void (*write)(FILE *f, void *arg), void *arg)
{
    write(stdout, arg);
    if (strcmp(path, "-") == 0)
        return 0;
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "raft_bench: %s: %s\n", path, strerror(errno));
        return 1;
    }
    write(f, arg);
    if (fclose(f) != 0) {
        fprintf(stderr, "raft_bench: %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(stderr, "raft_bench: wrote %s\n", path);
    return 0;
}

/* The whole of path into a malloc'ed string (NULL if it cannot be read). */
static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *text = NULL, buf[8192];
    size_t len = 0, n;
    FILE *mem = open_memstream(&text, &len);
    while (mem != NULL && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, mem);
    if (mem != NULL)
        fclose(mem);
    fclose(f);
    return text;
}

int bench_save_section(const char *path, const char *mark, void (*write)(FILE *f, void *arg),
                       void *arg)
{
    write(stdout, arg);
    if (strcmp(path, "-") == 0)
        return RK_OK;
    char *old = read_whole(path);
    char *at = old != NULL ? strstr(old, mark) : NULL;
    const char *rest = at != NULL ? strstr(at + strlen(mark), "\n## ") : NULL;
    if (at != NULL)
        *at = '\0';
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "raft_bench: %s: %s\n", path, strerror(errno));
        free(old);
        return RK_ERR_IO;
    }
    if (old != NULL)
        fputs(old, f);
    write(f, arg);
    if (rest != NULL)
        fputs(rest, f);
    free(old);
    if (fclose(f) != 0) {
        fprintf(stderr, "raft_bench: %s: %s\n", path, strerror(errno));
        return RK_ERR_IO;
    }
    fprintf(stderr, "raft_bench: wrote its section of %s\n", path);
    return RK_OK;
}

/* The whole matrix, or only the write rows of --matrix-writes N. */
static void run_parts(const struct bench_options *o, struct matrix *m)
{
    if (o->matrix_writes > 0) {
        fprintf(stderr, "raft_bench --matrix-writes: %d nodes\n", o->matrix_writes);
        m->n_rows = bench_matrix_rows(o, o->matrix_writes, false, m->rows);
        return;
    }
    fprintf(stderr, "raft_bench --matrix: generator ceiling\n");
    matrix_ceilings(o, m);
    m->ceiling_ran = true;
    for (int nodes = 3; nodes <= 5; nodes += 2) {
        fprintf(stderr, "raft_bench --matrix: %d nodes\n", nodes);
        m->n_rows += bench_matrix_rows(o, nodes, true, m->rows + m->n_rows);
    }
    fprintf(stderr, "raft_bench --matrix: failover, 5 nodes\n");
    m->fo_ran = true;
    m->fo_rc = bench_failover_run(o, &m->fo, m->fo_err, sizeof(m->fo_err));
}

int bench_matrix(const struct bench_options *o)
{
    struct matrix *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 1;
    m->loop_threads = o->loop_threads;
    m->matrix_writes = o->matrix_writes;
    m->quick = o->quick;
    bench_run_begin(&m->info);
    run_parts(o, m);
    bench_run_end(&m->info);
    int rc = bench_write_report(o->out_path, write_matrix, m);
    for (int k = 0; k < m->n_rows; k++)
        rc |= m->rows[k].rc != RK_OK;
    rc |= m->fo_ran && m->fo_rc != RK_OK;
    free(m);
    return rc;
}
