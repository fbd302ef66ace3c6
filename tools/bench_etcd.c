/* tools/bench_etcd.c - raft_bench --etcd URL: the same closed-loop load as raft-kv's,
 * puts through the JSON gateway of an etcd cluster someone else started, with the CPU use
 * of its servers if their pids are given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"
#include "bench.h"

#define ETCD_PUT_PATH "/v3/kv/put"

/* ================= load ================= */

/* The load of o (writes, on the event loop) against etcd's gateway at host:port. */
static int etcd_load(const struct bench_options *o, const char *host, uint16_t port,
                     const pid_t *pids, int n_pids, struct bench_result *r, char *err,
                     size_t errlen)
{
    struct bench_options eo = *o;
    eo.loop_threads = o->loop_threads > 0 ? o->loop_threads : 1;
    eo.read_ratio = 0;
    struct bench_load_opts lo = bench_load_opts_of(&eo, host, port);
    lo.etcd_path = ETCD_PUT_PATH;
    lo.sessions = false;
    return bench_measured_load(NULL, pids, n_pids, &lo, r, err, errlen);
}

/* HOST and PORT of http://HOST:PORT[/] (or HOST:PORT). */
static bool parse_url(const char *url, char *host, size_t hostlen, uint16_t *port)
{
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    const char *colon = strrchr(url, ':');
    if (colon == NULL || colon == url || (size_t)(colon - url) >= hostlen)
        return false;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || (*end != '\0' && *end != '/') || p < 1 || p > 65535)
        return false;
    snprintf(host, hostlen, "%.*s", (int)(colon - url), url);
    *port = (uint16_t)p;
    return true;
}

/* The pids in a file of one pid per line, for the CPU columns; returns how many. */
static int read_pids(const char *path, pid_t *pids, int max)
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    long pid;
    int n = 0;
    while (f != NULL && n < max && fscanf(f, "%ld", &pid) == 1)
        if (pid > 0)
            pids[n++] = (pid_t)pid;
    if (f != NULL)
        fclose(f);
    return n;
}

int bench_etcd_load(const struct bench_options *o)
{
    char err[BENCH_ERR_LEN] = "", host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
    if (!parse_url(o->etcd_url, host, sizeof(host), &port)) {
        fprintf(stderr, "raft_bench: --etcd %s: expected http://HOST:PORT\n", o->etcd_url);
        return 2;
    }
    pid_t pids[CTL_MAX_SERVERS];
    int n_pids = read_pids(o->pidfile, pids, CTL_MAX_SERVERS);
    printf("raft_bench: etcd at %s:%u, %d clients, %d-byte values, %d keys, %ld puts\n", host,
           (unsigned)port, o->clients, o->value_size, o->keys, o->ops);
    struct bench_result r;
    if (etcd_load(o, host, port, pids, n_pids, &r, err, sizeof(err)) != RK_OK) {
        fprintf(stderr, "raft_bench: etcd: %s\n", err);
        return 1;
    }
    bench_print_result(stdout, "etcd", &r);
    return 0;
}
