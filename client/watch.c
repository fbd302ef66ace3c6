/* client/watch.c - the client side of a watch (client/watch.h): the WATCH request, the
 * stream of EVENTS answers printed line by line, and the failover between servers that
 * keeps the cursor `next` (the first revision not yet known to be delivered), so that a
 * new stream resumes exactly where the last one stopped. */
#include "watch.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/net.h"
#include "../common/proto.h"

#define WATCH_CONNECT_TIMEOUT_MS 500
#define WATCH_BACKOFF_MIN_MS 50   /* before the next server */
#define WATCH_BACKOFF_MAX_MS 1000 /* after every server failed a few times in a row */

/* How one stream ended. */
enum watch_end {
    WATCH_NEXT,      /* broken, silent, cut off or refused by this server: try the next */
    WATCH_COMPACTED, /* this server no longer has revision next */
    WATCH_REFUSED,   /* the request itself was refused: stop */
    WATCH_OUT_FAILED /* the output cannot be written: stop */
};

struct watch {
    const struct client_targets *t;
    const struct watch_opts *o;
    FILE *out;
    int current;      /* the target of this stream */
    uint64_t next;    /* the first revision not yet known delivered; 0: unknown (from now) */
    int failed;       /* streams in a row that got no EVENTS answer */
    bool answered;    /* this stream got an EVENTS answer */
    bool *compacted;  /* per target: said compacted since the last EVENTS answer */
    uint64_t oldest;  /* the smallest oldest available revision they reported */
    char reason[512]; /* why the last stream ended */
};

static void watch_note(const struct watch *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void watch_note(const struct watch *w, const char *fmt, ...)
{
    if (!w->o->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("watch: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void watch_reason(struct watch *w, const char *text, size_t len)
{
    snprintf(w->reason, sizeof(w->reason), "%.*s", (int)len, text);
    for (char *p = w->reason; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* Sends the WATCH request: the prefix, and FROM = next (none while next is unknown). */
static int watch_send(const struct watch *w, int fd)
{
    char from[24] = "";
    if (w->next != 0)
        snprintf(from, sizeof(from), "%" PRIu64, w->next);
    struct proto_client_req req = {
        .op = PROTO_OP_WATCH, .key = w->o->prefix, .key_len = (uint32_t)w->o->prefix_len,
        .val = from, .val_len = (uint32_t)strlen(from),
    };
    struct proto_buf b = { 0 };
    int rc = proto_encode_client_req(&b, &req);
    if (rc == RK_OK)
        rc = net_write_full(fd, b.data, b.len);
    proto_buf_free(&b);
    return rc;
}

/* Whether body is a well-formed EVENTS body: its n events, each of a known kind. */
static bool watch_body_ok(const char *body, uint32_t len)
{
    uint64_t progress;
    uint32_t n, off = PROTO_EVENTS_HEAD, seen = 0;
    struct proto_event ev;
    int rc;
    if (proto_events_head(body, len, &progress, &n) != RK_OK)
        return false;
    while ((rc = proto_events_next(body, len, &off, &ev)) == 1)
        seen++;
    return rc == 0 && seen == n;
}

static void watch_print_event(FILE *out, const struct proto_event *ev)
{
    static const char *const kinds[] = { "", "set", "delete", "expire" };
    fprintf(out, "%" PRIu64 " %s ", ev->rev, kinds[ev->kind]);
    fwrite(ev->key, 1, ev->key_len, out);
    if (ev->kind == PROTO_EVENT_SET) {
        fputc(' ', out);
        fwrite(ev->val, 1, ev->val_len, out);
    }
    fputc('\n', out);
}

/* The marks of servers that said compacted hold while next stays (a server's history
 * only shrinks from below); an answer or a new next clears them. */
static void watch_forget_compacted(struct watch *w)
{
    memset(w->compacted, 0, (size_t)w->t->n * sizeof(*w->compacted));
    w->oldest = 0;
}

/* Prints an answer's events that are not yet delivered (rev >= next as the answer
 * began: the events of one revision come together), then moves next past them and
 * past the answer's progress. RK_OK, RK_ERR_PROTO for a malformed body, RK_ERR_IO if the
 * output failed. */
static int watch_deliver(struct watch *w, const char *body, uint32_t len)
{
    if (!watch_body_ok(body, len))
        return RK_ERR_PROTO;
    uint64_t progress, floor = w->next, last = 0;
    uint32_t n, off = PROTO_EVENTS_HEAD;
    struct proto_event ev;
    proto_events_head(body, len, &progress, &n);
    while (proto_events_next(body, len, &off, &ev) == 1) {
        if (ev.rev < floor || ev.rev < last) /* delivered already, or out of order */
            continue;
        watch_print_event(w->out, &ev);
        last = ev.rev;
    }
    if (last != 0 && last + 1 > w->next)
        w->next = last + 1;
    if (progress + 1 > w->next)
        w->next = progress + 1;
    w->answered = true;
    watch_forget_compacted(w);
    return fflush(w->out) == 0 && !ferror(w->out) ? RK_OK : RK_ERR_IO;
}

/* Whether an ERR is about the request rather than this server (the client checked the
 * prefix and FROM already, so a server should never say so). */
static bool watch_err_is_request(const char *body, uint32_t len)
{
    static const char *const starts[] = { PROTO_ERR_KEY_NOT_WORD, "key too long", "bad ",
                                          "usage" };
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        size_t n = strlen(starts[i]);
        if (len >= n && memcmp(body, starts[i], n) == 0)
            return true;
    }
    return false;
}

/* The ERR that ends a stream: compacted, fell behind (resume from its N), refused. */
static enum watch_end watch_on_err(struct watch *w, const char *body, uint32_t len)
{
    uint64_t rev;
    watch_reason(w, body, len);
    if (proto_parse_watch_error(body, len, PROTO_ERR_COMPACTED, &rev) == RK_OK) {
        w->compacted[w->current] = true;
        if (w->oldest == 0 || rev < w->oldest)
            w->oldest = rev;
        return WATCH_COMPACTED;
    }
    if (proto_parse_watch_error(body, len, PROTO_ERR_FELL_BEHIND, &rev) == RK_OK) {
        if (rev > w->next) /* never back: what is below next was printed */
            w->next = rev;
        watch_forget_compacted(w);
        return WATCH_NEXT;
    }
    return watch_err_is_request(body, len) ? WATCH_REFUSED : WATCH_NEXT;
}

/* Acts on one answer: 1 to read on, or 0 with *end set (and w->reason). */
static int watch_on_answer(struct watch *w, const uint8_t *payload, size_t len,
                           enum watch_end *end)
{
    struct proto_client_resp resp;
    *end = WATCH_NEXT;
    if (proto_frame_type(payload, len) != PROTO_CLIENT_RESP ||
        proto_decode_client_resp(payload, len, &resp) != RK_OK) {
        snprintf(w->reason, sizeof(w->reason), "malformed answer");
        return 0;
    }
    if (resp.status == PROTO_ST_ERR) {
        *end = watch_on_err(w, resp.body, resp.body_len);
        return 0;
    }
    if (resp.status != PROTO_ST_EVENTS) {
        snprintf(w->reason, sizeof(w->reason), "unexpected answer (status %u)",
                 (unsigned)resp.status);
        return 0;
    }
    int rc = watch_deliver(w, resp.body, resp.body_len);
    if (rc == RK_ERR_IO)
        *end = WATCH_OUT_FAILED;
    else if (rc != RK_OK)
        snprintf(w->reason, sizeof(w->reason), "malformed events");
    return rc == RK_OK ? 1 : 0;
}

/* Reads one answer (silence for PROTO_WATCH_SILENCE_MS ends the stream) and acts on it:
 * 1 to read on, or 0 with *end set. */
static int watch_read_one(struct watch *w, int fd, enum watch_end *end)
{
    uint8_t *payload = NULL;
    size_t len = 0;
    int rc = net_read_frame(fd, PROTO_MAX_FRAME, &payload, &len);
    if (rc != RK_OK) {
        *end = WATCH_NEXT;
        if (rc == RK_ERR_TIMEOUT)
            snprintf(w->reason, sizeof(w->reason), "no answer for %u ms",
                     PROTO_WATCH_SILENCE_MS);
        else
            snprintf(w->reason, sizeof(w->reason), "%s", rk_strerror(rc));
        return 0;
    }
    int more = watch_on_answer(w, payload, len, end);
    free(payload);
    return more;
}

/* One stream: connect to the current target, send WATCH, print answers until it ends. */
static enum watch_end watch_stream(struct watch *w)
{
    const struct client_target *t = &w->t->v[w->current];
    char err[512];
    int fd;
    w->answered = false;
    int rc = client_target_connect(t, WATCH_CONNECT_TIMEOUT_MS, (int)PROTO_WATCH_SILENCE_MS,
                                   &fd, err, sizeof(err));
    if (rc == RK_OK && (rc = watch_send(w, fd)) != RK_OK) {
        snprintf(err, sizeof(err), "cannot send the request: %s", rk_strerror(rc));
        close(fd);
    }
    if (rc != RK_OK) {
        snprintf(w->reason, sizeof(w->reason), "%s", err);
        return WATCH_NEXT;
    }
    enum watch_end end;
    while (watch_read_one(w, fd, &end) == 1)
        continue;
    close(fd);
    return end;
}

/* Moves on to the next target after a pause: WATCH_BACKOFF_MIN_MS, doubled after each
 * pass in which every server failed, up to WATCH_BACKOFF_MAX_MS. */
static void watch_switch(struct watch *w)
{
    const struct client_target *from = &w->t->v[w->current];
    w->failed = w->answered ? 0 : w->failed + 1;
    int passes = w->failed / w->t->n;
    int64_t pause = passes >= 5 ? WATCH_BACKOFF_MAX_MS : (int64_t)WATCH_BACKOFF_MIN_MS << passes;
    if (pause > WATCH_BACKOFF_MAX_MS)
        pause = WATCH_BACKOFF_MAX_MS;
    w->current = (w->current + 1) % w->t->n;
    const struct client_target *to = &w->t->v[w->current];
    char at[32] = "now";
    if (w->next != 0)
        snprintf(at, sizeof(at), "rev %" PRIu64, w->next);
    watch_note(w, "server %s (%s:%u): %s; resuming from %s at %s (%s:%u) in %lld ms",
               from->name, from->host, (unsigned)from->port, w->reason, at, to->name,
               to->host, (unsigned)to->port, (long long)pause);
    rk_sleep_ms(pause);
}

static bool watch_all_compacted(const struct watch *w)
{
    for (int i = 0; i < w->t->n; i++)
        if (!w->compacted[i])
            return false;
    return true;
}

int watch_run(const struct client_targets *targets, const struct watch_opts *o, FILE *out,
              char *err, size_t errlen)
{
    if (targets->n <= 0)
        return rk_fail(err, errlen, RK_ERR_INVAL, "no server to contact");
    struct watch w = { .t = targets, .o = o, .out = out, .next = o->from };
    w.compacted = calloc((size_t)targets->n, sizeof(*w.compacted));
    if (w.compacted == NULL)
        return rk_fail(err, errlen, RK_ERR_NOMEM, "out of memory");
    int rc = RK_OK;
    while (rc == RK_OK) {
        enum watch_end end = watch_stream(&w);
        if (end == WATCH_REFUSED)
            rc = rk_fail(err, errlen, RK_ERR_INVAL, "%s", w.reason);
        else if (end == WATCH_OUT_FAILED)
            rc = rk_fail(err, errlen, RK_ERR_IO, "cannot write the output");
        else if (end == WATCH_COMPACTED && watch_all_compacted(&w))
            rc = rk_fail(err, errlen, RK_ERR_NOTFOUND, "%s%" PRIu64, PROTO_ERR_COMPACTED,
                         w.oldest);
        else
            watch_switch(&w);
    }
    free(w.compacted);
    return rc;
}
