/* server/node/logging.c - human-readable log lines on stderr, one write(2) each:
 * "2026-11-26 21:13:14.123 server4 term=3 message". Also the Raft core's log_fn. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node.h"

#define LOG_LINE_MAX 1024

/* "YYYY-MM-DD HH:MM:SS.mmm" in local time. */
static void format_now(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03ld", date, ts.tv_nsec / 1000000L);
}

/* Formats and writes one whole line with a single write(2) so threads do not interleave. */
static void write_line(const char *name, uint64_t term, const char *fmt, va_list ap)
{
    char when[48], line[LOG_LINE_MAX];
    format_now(when, sizeof(when));
    int head = snprintf(line, sizeof(line), "%s %s term=%" PRIu64 " ", when, name, term);
    if (head < 0 || (size_t)head >= sizeof(line))
        return;
    int body = vsnprintf(line + head, sizeof(line) - (size_t)head, fmt, ap);
    size_t len = (size_t)head + (body < 0 ? 0 : (size_t)body);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep room for the newline */
    line[len++] = '\n';
    ssize_t w;
    do {
        w = write(STDERR_FILENO, line, len);
    } while (w < 0 && errno == EINTR);
}

static uint64_t current_term(struct node *n)
{
    return atomic_load_explicit(&n->log_term, memory_order_relaxed);
}

void node_log(struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(n->name, current_term(n), fmt, ap);
    va_end(ap);
}

void node_log_as(const char *name, uint64_t term, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(name, term, fmt, ap);
    va_end(ap);
}

void node_log_core(void *ctx, const char *msg)
{
    struct node *n = ctx;
    /* The core calls this with mu held (or before any thread starts), so its term
     * can be read directly and is exact even mid-step. */
    uint64_t term = n->raft != NULL ? raft_term(n->raft) : current_term(n);
    node_log_as(n->name, term, "%s", msg);
}

static void fatal_line(const char *name, uint64_t term, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0), noreturn));
static void fatal_line(const char *name, uint64_t term, const char *fmt, va_list ap)
{
    char msg[LOG_LINE_MAX];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    node_log_as(name, term, "FATAL: %s", msg);
    exit(1);
}

void node_fatal(struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fatal_line(n->name, current_term(n), fmt, ap);
}

void node_fatal_as(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fatal_line(name, 0, fmt, ap);
}
