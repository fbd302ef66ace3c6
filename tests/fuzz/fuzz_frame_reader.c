/* tests/fuzz/fuzz_frame_reader.c - fuzz target: the server's buffered frame reader
 * (frame_reader_read, common/frame_reader.c) on a socket pair, fed the fuzz input as a
 * byte stream in writes of fuzz-chosen sizes.
 * Input: a mode byte; 3 bytes of frame limit - 1 (so 1..16 MiB, big-endian); a count k;
 * k 2-byte write sizes - 1 (used in turn; k = 0: one write); then the stream.
 * Mode bit 0: no idle reason text (the reader says "idle"). Bit 1: between writes the
 * reader runs out of time through its hard deadline (0) rather than a frame_ms of 0.
 * Bit 2: after the last write (the writer then shuts its end) reads have generous
 * deadlines, else none. Bit 3: the stream starts with a frame of 1 MiB + 1 bytes (so the
 * buffer grows past FRAME_READER_KEEP_BYTES and must be freed once empty). Bit 4: no
 * reads between writes (only when the socket is full). Bit 5: a 16-byte reason buffer.
 * Bit 6: the first FZ_RD_POLL_ROUNDS rounds of reads between writes have deadlines 1 ms
 * away (the reader polls, then times out all the same).
 * Other reads between writes never wait: their idle deadline is FRAME_READER_NO_WAIT, so
 * they return RK_ERR_AGAIN once the socket is empty (and, inside a frame, RK_ERR_AGAIN
 * through a NO_WAIT hard deadline, or RK_ERR_TIMEOUT through a frame_ms of 0), and what
 * came stays buffered.
 * Oracles: each read returns exactly what the stream says at that place (a frame of
 * 1..max bytes equal to the bytes written there; RK_ERR_TOOBIG with the length for 0 or
 * over max; RK_ERR_AGAIN or RK_ERR_TIMEOUT only before the end, idle only with nothing
 * pending; after the end RK_ERR_CLOSED at a frame boundary, RK_ERR_IO inside a frame),
 * with the reason text the server logs; never more frames than the stream holds whole; what is buffered
 * is the stream's next bytes and frame_reader_buffered says whether a frame is whole;
 * a big buffer is freed when a read starts with it empty. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../../common/frame_reader.h"
#include "fuzz.h"

#define FZ_RD_HEADER 5                               /* mode, limit (3), k */
#define FZ_RD_BIG (FRAME_READER_KEEP_BYTES + 1u)     /* the bit 3 frame's payload */
#define FZ_RD_BIG_CHUNK (64u * 1024)                 /* it is written in pieces this big */
#define FZ_RD_SHORT_REASON 16
#define FZ_RD_REASON 256
#define FZ_RD_GENEROUS_MS 10000u
#define FZ_RD_POLL_ROUNDS 4
#define FZ_RD_IDLE_WHY "idle for 60000 ms (--client-idle-timeout-ms)"

struct fz_rd {
    uint8_t *s;             /* the whole stream (the bit 3 frame, then the input's) */
    size_t size, prefix;    /* its size; the bit 3 frame's, with its length */
    size_t written;         /* bytes sent so far */
    size_t pos;             /* bytes of the frames returned so far */
    size_t frames, whole;   /* frames returned; whole frames before the first bad one */
    uint32_t max;
    size_t reason_len;
    bool done;              /* a read returned something other than RK_OK or a timeout */
    uint8_t mode;
    int poll_rounds;        /* rounds left with deadlines 1 ms away (bit 6) */
    int rfd, wfd;
    struct frame_reader r;
};

static uint32_t fz_rd_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The whole frames at the start of the stream, up to the first refused or cut one. */
static size_t fz_rd_whole_frames(const uint8_t *s, size_t size, uint32_t max)
{
    size_t count = 0;
    for (size_t p = 0; size - p >= 4; count++) {
        uint32_t n = fz_rd_be32(s + p);
        if (n == 0 || n > max || size - p - 4 < n)
            break;
        p += 4 + (size_t)n;
    }
    return count;
}

/* What a read must return that runs out of bytes before the stream's end: before the
 * first byte the idle deadline decides, inside a frame the frame's (the earlier of
 * now + frame_ms, never 0, and the hard deadline). */
static int fz_rd_out_of_bytes(const struct frame_reader_rules *rules, bool first_byte)
{
    uint64_t deadline = first_byte ? rules->idle_deadline : rules->hard_deadline;
    return deadline == FRAME_READER_NO_WAIT ? RK_ERR_AGAIN : RK_ERR_TIMEOUT;
}

/* What frame_reader_read must return at t->pos when avail bytes of the stream were
 * sent (and the writer's end is shut if eof); *n: the length prefix, if there is one. */
static int fz_rd_expect(const struct fz_rd *t, const struct frame_reader_rules *rules,
                        size_t avail, bool eof, uint32_t *n)
{
    size_t have = avail - t->pos;
    *n = 0;
    if (have < 4)
        return have == 0 && eof ? RK_ERR_CLOSED : eof ? RK_ERR_IO
                                                      : fz_rd_out_of_bytes(rules, have == 0);
    *n = fz_rd_be32(t->s + t->pos);
    if (*n == 0 || *n > t->max)
        return RK_ERR_TOOBIG;
    if (have - 4 < *n)
        return eof ? RK_ERR_IO : fz_rd_out_of_bytes(rules, false);
    return RK_OK;
}

/* The reason the server's log gets for rc (conn.c passes it on unchanged). */
static void fz_rd_reason(const struct fz_rd *t, const struct frame_reader_rules *rules, int rc,
                         uint32_t n, size_t avail, char *out)
{
    out[0] = '\0';
    if (rc == RK_ERR_TIMEOUT && avail == t->pos)
        snprintf(out, t->reason_len, "%s", rules->idle_why ? rules->idle_why : "idle");
    else if (rc == RK_ERR_TIMEOUT)
        snprintf(out, t->reason_len, "a frame was not complete within %" PRIu32
                 " ms (--frame-timeout-ms)", rules->frame_ms);
    else if (rc == RK_ERR_TOOBIG && n == 0)
        snprintf(out, t->reason_len, "empty frame (length 0)");
    else if (rc == RK_ERR_TOOBIG)
        snprintf(out, t->reason_len, "frame length %" PRIu32 " over the limit %" PRIu32, n,
                 t->max);
    else if (rc == RK_ERR_IO)
        snprintf(out, t->reason_len, "connection cut mid-frame (%s)", rk_strerror(RK_ERR_IO));
}

/* What the reader holds is the stream's next bytes, and it knows whether they make a
 * whole frame. */
static void fz_rd_check_buffer(const struct fz_rd *t, size_t avail)
{
    const struct frame_reader *r = &t->r;
    FUZZ_CHECK(r->start <= r->end && r->end <= r->cap);
    size_t have = r->end - r->start;
    FUZZ_CHECK(have <= avail - t->pos);
    if (have > 0)
        FUZZ_CHECK(memcmp(r->data + r->start, t->s + t->pos, have) == 0);
    bool whole = have >= 4 && have - 4 >= fz_rd_be32(t->s + t->pos);
    FUZZ_CHECK(frame_reader_buffered(r) == whole);
}

/* A read that began with a big, empty buffer freed it: it holds no more than the
 * frame at pos needs (the initial size, doubled until the frame fits). */
static void fz_rd_check_trimmed(const struct fz_rd *t, int rc, uint32_t n)
{
    size_t initial = t->max > FRAME_READER_CLIENT_BYTES ? FRAME_READER_PEER_BYTES
                                                        : FRAME_READER_CLIENT_BYTES;
    size_t need = rc == RK_ERR_TOOBIG ? 0 : 4 + (size_t)n;
    FUZZ_CHECK(t->r.cap <= initial || t->r.cap < 2 * need);
}

/* One frame_reader_read, checked against the stream. */
static int fz_rd_read_one(struct fz_rd *t, const struct frame_reader_rules *rules,
                          size_t avail, bool eof)
{
    fz_rd_check_buffer(t, avail);
    bool trim_due = t->r.start == t->r.end && t->r.cap > FRAME_READER_KEEP_BYTES;
    uint8_t *payload = t->s;
    size_t len = SIZE_MAX;
    char reason[FZ_RD_REASON], want_reason[FZ_RD_REASON];
    memset(reason, 'x', sizeof(reason));
    int rc = frame_reader_read(&t->r, rules, &payload, &len, reason, t->reason_len);
    uint32_t n;
    int want = fz_rd_expect(t, rules, avail, eof, &n);
    FUZZ_CHECK(rc == want);
    fz_rd_reason(t, rules, rc, n, avail, want_reason);
    FUZZ_CHECK(strcmp(reason, want_reason) == 0);
    if (trim_due)
        fz_rd_check_trimmed(t, rc, n);
    if (rc != RK_OK) {
        FUZZ_CHECK(payload == NULL && len == (rc == RK_ERR_TOOBIG ? n : 0));
        return rc;
    }
    FUZZ_CHECK(len >= 1 && len <= t->max && len == n);
    FUZZ_CHECK(memcmp(payload, t->s + t->pos + 4, len) == 0);
    t->pos += 4 + len;
    t->frames++;
    FUZZ_CHECK(t->frames <= t->whole);
    return rc;
}

/* Reads until the reader must wait for more (timeout) or the stream is over for it. */
static void fz_rd_read_round(struct fz_rd *t, const struct frame_reader_rules *rules, bool eof)
{
    size_t avail = t->written;
    while (!t->done) {
        int rc = fz_rd_read_one(t, rules, avail, eof);
        if (rc == RK_ERR_TIMEOUT || rc == RK_ERR_AGAIN)
            return;
        if (rc != RK_OK)
            t->done = true;
    }
}

/* The rules between writes: deadlines that have passed (or, bit 6, are 1 ms away), the
 * frame's through frame_ms or (bit 1) through the hard deadline. */
static struct frame_reader_rules fz_rd_wait_rules(struct fz_rd *t)
{
    uint64_t away = t->poll_rounds > 0 ? 1 : 0;
    if (away > 0)
        t->poll_rounds--;
    uint64_t deadline = away > 0 ? rk_clock_ms() + away : FRAME_READER_NO_WAIT;
    struct frame_reader_rules rules = {
        .max = t->max, .idle_deadline = deadline,
        .idle_why = t->mode & 0x01 ? NULL : FZ_RD_IDLE_WHY,
        .frame_ms = t->mode & 0x02 ? 5000 : (uint32_t)away,
        .hard_deadline = t->mode & 0x02 ? deadline : FRAME_READER_NO_DEADLINE,
    };
    return rules;
}

/* Reads until the reader would wait, with the rules between writes. */
static void fz_rd_wait_round(struct fz_rd *t)
{
    struct frame_reader_rules rules = fz_rd_wait_rules(t);
    fz_rd_read_round(t, &rules, false);
}

/* Sends len bytes of the stream. When the socket is full, the reader empties it (it
 * reads until it would wait, so the next send makes progress). */
static void fz_rd_send(struct fz_rd *t, size_t len)
{
    size_t end = t->written + len;
    bool drained = false;
    while (t->written < end && !t->done) {
        ssize_t w = send(t->wfd, t->s + t->written, end - t->written,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            t->written += (size_t)w;
            drained = false;
            continue;
        }
        FUZZ_CHECK(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !drained);
        fz_rd_wait_round(t);
        drained = true;
    }
}

/* The size of the next write: the bit 3 frame in big pieces, then sizes[i] in turn. */
static size_t fz_rd_next_write(const struct fz_rd *t, const uint8_t *sizes, size_t k,
                               size_t i)
{
    size_t left = t->size - t->written;
    if (t->written < t->prefix)
        left = t->prefix - t->written;
    else if (k == 0)
        return left;
    size_t want = t->written < t->prefix
                      ? FZ_RD_BIG_CHUNK
                      : ((size_t)sizes[2 * (i % k)] << 8 | sizes[2 * (i % k) + 1]) + 1;
    return want < left ? want : left;
}

static void fz_rd_write_all(struct fz_rd *t, const uint8_t *sizes, size_t k)
{
    for (size_t i = 0; t->written < t->size && !t->done; i++) {
        bool in_prefix = t->written < t->prefix;
        fz_rd_send(t, fz_rd_next_write(t, sizes, k, in_prefix ? 0 : i));
        if (!(t->mode & 0x10) || in_prefix)
            fz_rd_wait_round(t);
    }
}

/* The stream: the bit 3 frame (if asked), then the input's bytes. */
static int fz_rd_make_stream(struct fz_rd *t, bool big, const uint8_t *in, size_t len)
{
    t->prefix = big ? 4 + (size_t)FZ_RD_BIG : 0;
    t->size = t->prefix + len;
    t->s = malloc(t->size > 0 ? t->size : 1);
    if (t->s == NULL)
        return -1;
    if (big) {
        uint8_t hdr[4] = { FZ_RD_BIG >> 24, (uint8_t)(FZ_RD_BIG >> 16),
                           (uint8_t)(FZ_RD_BIG >> 8), (uint8_t)FZ_RD_BIG };
        memcpy(t->s, hdr, 4);
        for (size_t i = 0; i < FZ_RD_BIG; i++)
            t->s[4 + i] = (uint8_t)(i * 131 + 17);
    }
    if (len > 0)
        memcpy(t->s + t->prefix, in, len);
    return 0;
}

/* Writes the stream (reading in between), shuts the writer's end, reads the rest. */
static void fz_rd_run(struct fz_rd *t, const uint8_t *sizes, size_t k)
{
    fz_rd_write_all(t, sizes, k);
    FUZZ_CHECK(shutdown(t->wfd, SHUT_WR) == 0);
    uint64_t soon = rk_clock_ms() + FZ_RD_GENEROUS_MS;
    struct frame_reader_rules end_rules = {
        .max = t->max, .idle_why = t->mode & 0x01 ? NULL : FZ_RD_IDLE_WHY,
        .frame_ms = FZ_RD_GENEROUS_MS,
        .idle_deadline = t->mode & 0x04 ? soon : FRAME_READER_NO_DEADLINE,
        .hard_deadline = t->mode & 0x04 ? soon : FRAME_READER_NO_DEADLINE,
    };
    if (!t->done && t->written == t->size)
        fz_rd_read_round(t, &end_rules, true);
    FUZZ_CHECK(t->done);
    FUZZ_CHECK(t->frames == t->whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FZ_RD_HEADER || size > FUZZ_MAX_INPUT)
        return 0;
    uint8_t mode = data[0];
    size_t k = data[4];
    if (size < FZ_RD_HEADER + 2 * k)
        return 0;
    struct fz_rd t = { .max = ((uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3]) + 1,
                       .reason_len = mode & 0x20 ? FZ_RD_SHORT_REASON : FZ_RD_REASON,
                       .mode = mode, .poll_rounds = mode & 0x40 ? FZ_RD_POLL_ROUNDS : 0 };
    const uint8_t *sizes = data + FZ_RD_HEADER;
    const uint8_t *stream = sizes + 2 * k;
    FUZZ_CHECK(fz_rd_make_stream(&t, mode & 0x08, stream, size - FZ_RD_HEADER - 2 * k) == 0);
    t.whole = fz_rd_whole_frames(t.s, t.size, t.max);
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int buf = (int)(4 * FUZZ_MAX_INPUT);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    t.wfd = sv[0];
    t.rfd = sv[1];
    frame_reader_init(&t.r, t.rfd);
    fz_rd_run(&t, sizes, k);
    frame_reader_free(&t.r);
    close(sv[0]);
    close(sv[1]);
    free(t.s);
    return 0;
}
