/* common/frame_reader.c - the buffered frame reader of frame_reader.h: a per-connection
 * buffer filled by non-blocking recv, poll only when the socket is empty, deadlines
 * checked on every wait (so a peer that trickles bytes is cut off too). */
#include "frame_reader.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "bytes.h"
#include "clock.h"
#include "errors.h"
#include "grow.h"

void frame_reader_init(struct frame_reader *r, int fd)
{
    *r = (struct frame_reader){ .fd = fd };
}

void frame_reader_free(struct frame_reader *r)
{
    free(r->data);
    *r = (struct frame_reader){ .fd = r->fd };
}

/* Makes room for want bytes from r->start on (compacting, or growing to want). */
static int reserve(struct frame_reader *r, size_t want, size_t initial)
{
    if (r->start + want <= r->cap)
        return RK_OK;
    if (r->start > 0) {
        memmove(r->data, r->data + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    return rk_grow(&r->data, &r->cap, want, 1, initial);
}

/* Frees a big buffer once it holds nothing (a peer's snapshot chunks were in it). */
static void trim(struct frame_reader *r)
{
    if (r->start == r->end && r->cap > FRAME_READER_KEEP_BYTES)
        frame_reader_free(r);
}

/* Waits until fd is readable or deadline passes. RK_OK, RK_ERR_TIMEOUT, RK_ERR_AGAIN
 * (FRAME_READER_NO_WAIT) or RK_ERR_IO. */
static int wait_readable(int fd, uint64_t deadline)
{
    if (deadline == FRAME_READER_NO_WAIT)
        return RK_ERR_AGAIN;
    int wait_ms = -1;
    if (deadline != FRAME_READER_NO_DEADLINE) {
        uint64_t now = rk_clock_ms();
        if (now >= deadline)
            return RK_ERR_TIMEOUT;
        wait_ms = deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
    }
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR)
        return RK_ERR_IO;
    return RK_OK;
}

/* Has at least want bytes buffered, receiving before deadline as needed. RK_OK,
 * RK_ERR_CLOSED (EOF with nothing buffered), RK_ERR_IO (EOF after some, or an error),
 * RK_ERR_TIMEOUT, RK_ERR_AGAIN, RK_ERR_NOMEM. A deadline, unlike SO_RCVTIMEO, also stops a peer that
 * trickles one byte at a time (slowloris). */
static int fill(struct frame_reader *r, size_t want, uint64_t deadline, size_t initial)
{
    if (r->end - r->start >= want)
        return RK_OK;
    if (reserve(r, want, initial) != RK_OK)
        return RK_ERR_NOMEM;
    while (r->end - r->start < want) {
        if (r->emptied) { /* the socket held no more: wait, rather than recv for EAGAIN */
            int rc = wait_readable(r->fd, deadline);
            if (rc != RK_OK)
                return rc;
        }
        size_t room = r->cap - r->end;
        ssize_t n = recv(r->fd, r->data + r->end, room, MSG_DONTWAIT);
        if (n > 0) {
            r->end += (size_t)n;
            r->emptied = (size_t)n < room;
            continue;
        }
        if (n == 0)
            return r->end == r->start ? RK_ERR_CLOSED : RK_ERR_IO;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return RK_ERR_IO;
        r->emptied = true;
    }
    return RK_OK;
}

bool frame_reader_buffered(const struct frame_reader *r)
{
    size_t have = r->end - r->start;
    return have >= 4 && have - 4 >= rk_get_be32(r->data + r->start);
}

/* The reason for a frame that failed after its first byte (none for a clean close, or
 * for RK_ERR_AGAIN: that is no failure). */
static void failure_reason(int rc, const struct frame_reader_rules *rules, uint32_t n,
                           char *reason, size_t reason_len)
{
    if (rc == RK_ERR_TIMEOUT)
        snprintf(reason, reason_len, "a frame was not complete within %" PRIu32
                 " ms (--frame-timeout-ms)", rules->frame_ms);
    else if (rc == RK_ERR_NOMEM)
        snprintf(reason, reason_len, "out of memory for a %" PRIu32 "-byte frame", n);
    else if (rc != RK_ERR_CLOSED && rc != RK_ERR_AGAIN)
        snprintf(reason, reason_len, "connection cut mid-frame (%s)", rk_strerror(rc));
}

int frame_reader_read(struct frame_reader *r, const struct frame_reader_rules *rules,
                      uint8_t **payload, size_t *len, char *reason, size_t reason_len)
{
    *payload = NULL;
    *len = 0;
    reason[0] = '\0';
    r->emptied = false;
    trim(r);
    size_t initial = rules->max > FRAME_READER_CLIENT_BYTES ? FRAME_READER_PEER_BYTES
                                                             : FRAME_READER_CLIENT_BYTES;
    int rc = fill(r, 1, rules->idle_deadline, initial);
    if (rc == RK_ERR_TIMEOUT) {
        snprintf(reason, reason_len, "%s", rules->idle_why ? rules->idle_why : "idle");
        return rc;
    }
    uint64_t deadline = rk_clock_ms() + rules->frame_ms;
    if (deadline > rules->hard_deadline)
        deadline = rules->hard_deadline;
    if (rc == RK_OK)
        rc = fill(r, 4, deadline, initial);
    uint32_t n = rc == RK_OK ? rk_get_be32(r->data + r->start) : 0;
    if (rc == RK_OK && (n == 0 || n > rules->max)) {
        *len = n;
        if (n == 0)
            snprintf(reason, reason_len, "empty frame (length 0)");
        else
            snprintf(reason, reason_len, "frame length %" PRIu32 " over the limit %" PRIu32,
                     n, rules->max);
        return RK_ERR_TOOBIG;
    }
    if (rc == RK_OK)
        rc = fill(r, 4 + (size_t)n, deadline, initial);
    if (rc == RK_OK) {
        *payload = r->data + r->start + 4;
        *len = n;
        r->start += 4 + (size_t)n;
        return RK_OK;
    }
    failure_reason(rc, rules, n, reason, reason_len);
    return rc;
}
