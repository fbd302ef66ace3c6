/* tools/bench_coord.c - raft_bench --coord-targets, issue 16's measurements on 3 nodes:
 * compare-and-set beside set at 1 and 64 clients (each client a session; a cas compares
 * the revision its last answer gave, on a key of its own), and a scan page of 100 keys
 * from a store of o->keys keys (1,000,000 by default); printed, and saved as a Markdown
 * section of --out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/errors.h"
#include "bench.h"

#define CD_SECTION_MARK "\n## Revisions, compare-and-set and scans (issue 16)\n"
#define CD_NODES 3
#define CD_KEYS_DEFAULT 1000000
#define CD_RUN_S 5

struct cd_row {
    const char *op;
    enum bench_op_kind kind;
    int clients;
    int rc;
    char err[BENCH_ERR_LEN];
    struct bench_result r;
};

struct cd_run {
    const char *command;
    int keys;
    double prefill_s;
    struct cd_row rows[5];
    struct bench_run_info info;
};

/* One measured row on the cluster's leader (which may have changed). */
static void cd_row_run(const struct bench_options *base, struct ctl_cluster *c,
                       struct cd_row *row)
{
    struct bench_options o = *base;
    int leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL);
    const struct ctl_server *ln = &c->servers[leader >= 0 ? leader : 0];
    o.clients = row->clients;
    o.op_kind = row->kind;
    o.read_ratio = 0;
    o.ops = row->clients == 1 ? 5000 : 50000;
    o.max_seconds = CD_RUN_S;
    struct bench_load_opts lo = bench_load_opts_of(&o, ln->host, ln->port);
    row->rc = bench_measured_load(c, NULL, 0, &lo, &row->r, row->err, sizeof(row->err));
    fprintf(stderr, "  %s, %2d clients: ", row->op, row->clients);
    if (row->rc == RK_OK)
        bench_print_result(stderr, "", &row->r);
    else
        fprintf(stderr, "FAILED: %s\n", row->err);
}

/* The scan row: the keys written first (sequentially, by many clients), then pages. */
static void cd_scan_run(const struct bench_options *base, struct ctl_cluster *c,
                        struct cd_run *m)
{
    struct bench_options o = *base;
    o.keys = m->keys;
    o.max_seconds = 600;
    int leader = ctl_wait_leader(c, BENCH_LEADER_WAIT_MS, NULL);
    const struct ctl_server *ln = &c->servers[leader >= 0 ? leader : 0];
    struct cd_row *row = &m->rows[4];
    fprintf(stderr, "  writing %d keys\n", m->keys);
    double t0 = (double)time(NULL);
    row->rc = bench_prefill(&o, ln->host, ln->port, row->err, sizeof(row->err));
    m->prefill_s = (double)time(NULL) - t0;
    if (row->rc == RK_OK)
        cd_row_run(&o, c, row);
}

static void cd_write_row(FILE *f, const struct cd_row *row, const char *what)
{
    if (row->rc != RK_OK) {
        fprintf(f, "| %s | %d | not measured: %s | | | |\n", what, row->clients, row->err);
        return;
    }
    fprintf(f, "| %s | %d | %.0f | %.3f | %.3f | %.3f |\n", what, row->clients,
            row->r.ops_per_s, row->r.p50_ms, row->r.p99_ms, row->r.max_ms);
}

static void cd_write_section(FILE *f, void *arg)
{
    const struct cd_run *m = arg;
    char when[64], scan[96];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&m->info.started));
    fprintf(f, "%s\n", CD_SECTION_MARK);
    fprintf(f, "Run %s by `%s` in %.0f s: %d servers on 127.0.0.1 with fsync on, 100-byte "
               "values, each client a session, %d s per row. %ld CPUs; load average before "
               "%.2f %.2f %.2f, after %.2f %.2f %.2f.\n\n",
            when, m->command, m->info.seconds, CD_NODES, CD_RUN_S,
            sysconf(_SC_NPROCESSORS_ONLN), m->info.load_before[0], m->info.load_before[1],
            m->info.load_before[2], m->info.load_after[0], m->info.load_after[1],
            m->info.load_after[2]);
    fprintf(f, "| operation | clients | ops/s | p50 ms | p99 ms | max ms |\n"
               "|---|---|---|---|---|---|\n");
    for (int i = 0; i < 4; i++)
        cd_write_row(f, &m->rows[i], m->rows[i].op);
    snprintf(scan, sizeof(scan), "scan, a page of 100 of %d keys", m->keys);
    cd_write_row(f, &m->rows[4], scan);
    fprintf(f, "\nA cas compares the revision its client's last answer gave, on a key of its "
               "own, so each one holds (a FAILED answer would count too: it is definite). "
               "The %d keys were written first by %d clients in %.0f s.\n", m->keys, 32,
            m->prefill_s);
}

int bench_coord_targets(const struct bench_options *o, const char *command)
{
    struct cd_run *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 1;
    const struct cd_row rows[5] = {
        { .op = "set", .kind = BENCH_OP_SET, .clients = 1 },
        { .op = "cas", .kind = BENCH_OP_CAS, .clients = 1 },
        { .op = "set", .kind = BENCH_OP_SET, .clients = 64 },
        { .op = "cas", .kind = BENCH_OP_CAS, .clients = 64 },
        { .op = "scan", .kind = BENCH_OP_SCAN, .clients = 1 },
    };
    memcpy(m->rows, rows, sizeof(rows));
    m->command = command;
    m->keys = o->keys_set ? o->keys : o->quick ? 50000 : CD_KEYS_DEFAULT;
    bench_run_begin(&m->info);
    struct ctl_cluster *c = NULL;
    char err[BENCH_ERR_LEN] = "";
    struct bench_options base = *o;
    base.value_size = 100;
    base.keys = 1000;
    int leader = bench_open_cluster(&base, CD_NODES, &c, err, sizeof(err));
    for (int i = 0; i < 5; i++) {
        m->rows[i].rc = leader < 0 ? RK_ERR_TIMEOUT : RK_OK;
        snprintf(m->rows[i].err, sizeof(m->rows[i].err), "%s", err);
    }
    if (leader >= 0) {
        for (int i = 0; i < 4; i++)
            cd_row_run(&base, c, &m->rows[i]);
        cd_scan_run(&base, c, m);
    }
    ctl_cluster_destroy(c);
    bench_run_end(&m->info);
    bench_save_section(o->out_path, CD_SECTION_MARK, cd_write_section, m);
    bool measured = true;
    for (int i = 0; i < 5; i++)
        measured &= m->rows[i].rc == RK_OK;
    free(m);
    return measured ? 0 : 1;
}
