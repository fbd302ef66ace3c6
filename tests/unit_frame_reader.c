/* tests/unit_frame_reader.c - common/frame_reader.c over a socketpair: frames split and
 * batched, the size limit, EOF inside a frame, and the `emptied` flag the client loop
 * relies on to skip a recv that could only say EAGAIN. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/frame_reader.h"
#include "check_main.h"

#define REASON 256

struct pair {
    int rd, wr;
    struct frame_reader r;
    uint8_t out[16384]; /* frames to send: bytes [0, queued) */
    size_t queued;
    size_t len;         /* the last frame read: its length and first byte */
    uint8_t first;
};

static void pair_open(struct pair *p)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    memset(p, 0, sizeof(*p));
    p->rd = sv[0];
    p->wr = sv[1];
    frame_reader_init(&p->r, p->rd);
}

static void pair_close(struct pair *p)
{
    frame_reader_free(&p->r);
    close(p->rd);
    if (p->wr >= 0)
        close(p->wr);
}

/* Queues a frame of len bytes of fill. */
static void queue_frame(struct pair *p, uint32_t len, uint8_t fill)
{
    ck_assert_uint_le(p->queued + 4 + len, sizeof(p->out));
    uint8_t *o = p->out + p->queued;
    o[0] = (uint8_t)(len >> 24);
    o[1] = (uint8_t)(len >> 16);
    o[2] = (uint8_t)(len >> 8);
    o[3] = (uint8_t)len;
    memset(o + 4, fill, len);
    p->queued += 4 + len;
}

/* Sends the queued bytes [from, to). */
static void send_queued(struct pair *p, size_t from, size_t to)
{
    while (from < to) {
        ssize_t n = write(p->wr, p->out + from, to - from);
        ck_assert_msg(n > 0, "write: %s", strerror(errno));
        from += (size_t)n;
    }
}

/* Never waits: the client loop's rules. */
static const struct frame_reader_rules no_wait = {
    .max = 1u << 20, .idle_deadline = FRAME_READER_NO_WAIT, .frame_ms = 0,
    .hard_deadline = FRAME_READER_NO_WAIT };

static struct frame_reader_rules with_max(uint32_t max)
{
    struct frame_reader_rules rules = no_wait;
    rules.max = max;
    return rules;
}

static int read_one(struct pair *p, const struct frame_reader_rules *rules)
{
    uint8_t *payload;
    char reason[REASON];
    int rc = frame_reader_read(&p->r, rules, &payload, &p->len, reason, sizeof(reason));
    p->first = rc == RK_OK ? payload[0] : 0;
    return rc;
}

START_TEST(test_one_frame_then_empty)
{
    struct pair p;
    pair_open(&p);
    queue_frame(&p, 10, 'a');
    send_queued(&p, 0, p.queued);
    ck_assert_int_eq(read_one(&p, &no_wait), RK_OK);
    ck_assert_uint_eq(p.len, 10);
    ck_assert_uint_eq(p.first, 'a');
    ck_assert_msg(p.r.emptied, "one recv took all there was: the socket is empty");
    ck_assert_int_eq(read_one(&p, &no_wait), RK_ERR_AGAIN);
    ck_assert(p.r.emptied);
    pair_close(&p);
}
END_TEST

/* Two frames in one recv: the second is served from the buffer, with no recv, so the
 * reader cannot say the socket is empty (more may have come since). */
START_TEST(test_buffered_frame_says_nothing)
{
    struct pair p;
    pair_open(&p);
    queue_frame(&p, 5, 'a');
    queue_frame(&p, 7, 'b');
    send_queued(&p, 0, p.queued);
    ck_assert_int_eq(read_one(&p, &no_wait), RK_OK);
    ck_assert(p.r.emptied);
    ck_assert(frame_reader_buffered(&p.r));
    ck_assert_int_eq(read_one(&p, &no_wait), RK_OK);
    ck_assert_uint_eq(p.len, 7);
    ck_assert_uint_eq(p.first, 'b');
    ck_assert_msg(!p.r.emptied, "no recv was made: emptiness is unknown");
    pair_close(&p);
}
END_TEST

/* A recv that fills the buffer may have left more in the socket: not emptied. */
START_TEST(test_full_recv_not_emptied)
{
    struct pair p;
    pair_open(&p);
    queue_frame(&p, 100, 'a');
    queue_frame(&p, 8000, 'b');
    send_queued(&p, 0, p.queued);
    struct frame_reader_rules small = with_max(FRAME_READER_CLIENT_BYTES); /* a 4 KiB buffer */
    struct frame_reader_rules big = with_max(16000);
    ck_assert_int_eq(read_one(&p, &small), RK_OK);
    ck_assert_uint_eq(p.len, 100);
    ck_assert_msg(!p.r.emptied, "the first recv filled the buffer: the rest is unread");
    ck_assert_int_eq(read_one(&p, &big), RK_OK);
    ck_assert_uint_eq(p.len, 8000);
    ck_assert_uint_eq(p.first, 'b');
    ck_assert(p.r.emptied);
    pair_close(&p);
}
END_TEST

/* Half a frame: never waiting is "not yet" (RK_ERR_AGAIN, no reason to log), while a
 * deadline that has passed is a timeout with its reason; either way what came stays. */
START_TEST(test_no_wait_is_again_not_timeout)
{
    struct pair p;
    pair_open(&p);
    queue_frame(&p, 100, 'a');
    send_queued(&p, 0, 50);
    uint8_t *payload;
    char reason[REASON];
    int rc = frame_reader_read(&p.r, &no_wait, &payload, &p.len, reason, sizeof(reason));
    ck_assert_int_eq(rc, RK_ERR_AGAIN);
    ck_assert_str_eq(reason, "");
    struct frame_reader_rules passed = { .max = 1u << 20, .idle_deadline = 1, .frame_ms = 0,
                                         .hard_deadline = 1 };
    rc = frame_reader_read(&p.r, &passed, &payload, &p.len, reason, sizeof(reason));
    ck_assert_int_eq(rc, RK_ERR_TIMEOUT);
    ck_assert_msg(strstr(reason, "not complete") != NULL, "reason '%s'", reason);
    send_queued(&p, 50, p.queued);
    ck_assert_int_eq(read_one(&p, &no_wait), RK_OK);
    ck_assert_uint_eq(p.len, 100);
    pair_close(&p);
}
END_TEST

/* After delay_ms, sends the queued bytes from `from` on, then closes if asked. */
struct late_write {
    struct pair *p;
    size_t from;
    int delay_ms;
    bool close_after;
};

static void *late_writer(void *arg)
{
    struct late_write *w = arg;
    struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)w->delay_ms * 1000000L };
    nanosleep(&ts, NULL);
    size_t from = w->from;
    while (from < w->p->queued) {
        ssize_t n = write(w->p->wr, w->p->out + from, w->p->queued - from);
        if (n <= 0)
            abort();
        from += (size_t)n;
    }
    if (w->close_after)
        close(w->p->wr);
    return NULL;
}

/* A peer thread's read (waits up to 3 s) while w writes; *took_ms: how long it took. */
static int read_during(struct pair *p, struct late_write *w, uint64_t *took_ms)
{
    uint64_t t0 = rk_clock_ms();
    struct frame_reader_rules rules = { .max = 1u << 20, .idle_deadline = t0 + 3000,
                                        .frame_ms = 3000, .hard_deadline = t0 + 3000 };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, late_writer, w), 0);
    int rc = read_one(p, &rules);
    *took_ms = rk_clock_ms() - t0;
    pthread_join(t, NULL);
    if (w->close_after)
        p->wr = -1;
    return rc;
}

/* Half a frame, then the rest later. After the short read the reader waits (poll) for
 * the rest instead of failing or spinning. */
START_TEST(test_waits_for_the_rest)
{
    struct pair p;
    pair_open(&p);
    queue_frame(&p, 20, 'c');
    send_queued(&p, 0, 9);
    struct late_write w = { .p = &p, .from = 9, .delay_ms = 50 };
    uint64_t took;
    ck_assert_int_eq(read_during(&p, &w, &took), RK_OK);
    ck_assert_uint_eq(p.len, 20);
    ck_assert_uint_eq(p.first, 'c');
    pair_close(&p);
}
END_TEST

/* Half a frame, then the peer closes: an error at once, not a wait until the deadline. */
START_TEST(test_eof_inside_a_frame)
{
    struct pair p;
    pair_open(&p);
    queue_frame(&p, 20, 'd');
    send_queued(&p, 0, 9);
    p.queued = 9; /* the rest never comes */
    struct late_write w = { .p = &p, .from = 9, .delay_ms = 30, .close_after = true };
    uint64_t took;
    ck_assert_int_eq(read_during(&p, &w, &took), RK_ERR_IO);
    ck_assert_msg(took < 2000, "EOF seen after %llu ms", (unsigned long long)took);
    pair_close(&p);
}
END_TEST

START_TEST(test_length_over_limit)
{
    struct pair p;
    pair_open(&p);
    queue_frame(&p, 40, 'e');
    send_queued(&p, 0, p.queued);
    struct frame_reader_rules rules = with_max(39);
    ck_assert_int_eq(read_one(&p, &rules), RK_ERR_TOOBIG);
    ck_assert_uint_eq(p.len, 40);
    pair_close(&p);
}
END_TEST

static Suite *frame_reader_suite(void)
{
    Suite *s = suite_create("frame_reader");
    TCase *tc = tcase_create("frame_reader");
    tcase_add_test(tc, test_one_frame_then_empty);
    tcase_add_test(tc, test_buffered_frame_says_nothing);
    tcase_add_test(tc, test_full_recv_not_emptied);
    tcase_add_test(tc, test_no_wait_is_again_not_timeout);
    tcase_add_test(tc, test_waits_for_the_rest);
    tcase_add_test(tc, test_eof_inside_a_frame);
    tcase_add_test(tc, test_length_over_limit);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(frame_reader_suite)
