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

#include "../common/errors.h"
#include "../common/frame_reader.h"
#include "check_main.h"

#define REASON 256

struct pair {
    int rd, wr;
    struct frame_reader r;
};

static void pair_open(struct pair *p)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
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

/* Appends a frame of len bytes of fill to buf at *at. */
static void put_frame(uint8_t *buf, size_t *at, uint32_t len, uint8_t fill)
{
    buf[(*at)++] = (uint8_t)(len >> 24);
    buf[(*at)++] = (uint8_t)(len >> 16);
    buf[(*at)++] = (uint8_t)(len >> 8);
    buf[(*at)++] = (uint8_t)len;
    memset(buf + *at, fill, len);
    *at += len;
}

static void write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        ck_assert_msg(n > 0, "write: %s", strerror(errno));
        data += n;
        len -= (size_t)n;
    }
}

/* Never waits: the client loop's rules. */
static const struct frame_reader_rules no_wait = { .max = 1u << 20, .idle_deadline = 0,
                                                   .frame_ms = 0, .hard_deadline = 0 };

static int read_frame(struct pair *p, const struct frame_reader_rules *rules, size_t *len,
                      uint8_t *first)
{
    uint8_t *payload;
    char reason[REASON];
    int rc = frame_reader_read(&p->r, rules, &payload, len, reason, sizeof(reason));
    if (rc == RK_OK)
        *first = payload[0];
    return rc;
}

START_TEST(test_one_frame_then_empty)
{
    struct pair p;
    pair_open(&p);
    uint8_t buf[64];
    size_t at = 0, len = 0;
    uint8_t first = 0;
    put_frame(buf, &at, 10, 'a');
    write_all(p.wr, buf, at);
    ck_assert_int_eq(read_frame(&p, &no_wait, &len, &first), RK_OK);
    ck_assert_uint_eq(len, 10);
    ck_assert_uint_eq(first, 'a');
    ck_assert_msg(p.r.emptied, "one recv took all there was: the socket is empty");
    ck_assert_int_eq(read_frame(&p, &no_wait, &len, &first), RK_ERR_TIMEOUT);
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
    uint8_t buf[64];
    size_t at = 0, len = 0;
    uint8_t first = 0;
    put_frame(buf, &at, 5, 'a');
    put_frame(buf, &at, 7, 'b');
    write_all(p.wr, buf, at);
    ck_assert_int_eq(read_frame(&p, &no_wait, &len, &first), RK_OK);
    ck_assert(p.r.emptied);
    ck_assert(frame_reader_buffered(&p.r));
    ck_assert_int_eq(read_frame(&p, &no_wait, &len, &first), RK_OK);
    ck_assert_uint_eq(len, 7);
    ck_assert_uint_eq(first, 'b');
    ck_assert_msg(!p.r.emptied, "no recv was made: emptiness is unknown");
    pair_close(&p);
}
END_TEST

/* A recv that fills the buffer may have left more in the socket: not emptied. */
START_TEST(test_full_recv_not_emptied)
{
    struct pair p;
    pair_open(&p);
    static uint8_t buf[16384];
    size_t at = 0, len = 0;
    uint8_t first = 0;
    put_frame(buf, &at, 100, 'a');
    put_frame(buf, &at, 8000, 'b');
    write_all(p.wr, buf, at);
    struct frame_reader_rules small = no_wait, big = no_wait;
    small.max = FRAME_READER_CLIENT_BYTES; /* so the buffer starts at 4 KiB */
    big.max = 16000;
    ck_assert_int_eq(read_frame(&p, &small, &len, &first), RK_OK);
    ck_assert_uint_eq(len, 100);
    ck_assert_msg(!p.r.emptied, "the first recv filled the buffer: the rest is unread");
    ck_assert_int_eq(read_frame(&p, &big, &len, &first), RK_OK);
    ck_assert_uint_eq(len, 8000);
    ck_assert_uint_eq(first, 'b');
    ck_assert(p.r.emptied);
    pair_close(&p);
}
END_TEST

struct late_write {
    int fd;
    const uint8_t *data;
    size_t len;
    int delay_ms;
    bool close_after;
};

static void *late_writer(void *arg)
{
    struct late_write *w = arg;
    struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)w->delay_ms * 1000000L };
    nanosleep(&ts, NULL);
    if (w->len > 0 && write(w->fd, w->data, w->len) != (ssize_t)w->len)
        abort();
    if (w->close_after)
        close(w->fd);
    return NULL;
}

static struct frame_reader_rules waiting(void)
{
    uint64_t now = frame_reader_now_ms();
    return (struct frame_reader_rules){ .max = 1u << 20, .idle_deadline = now + 3000,
                                        .frame_ms = 3000, .hard_deadline = now + 3000 };
}

/* A peer thread's read: half a frame, then the rest later. After the short read the
 * reader waits (poll) for the rest instead of failing or spinning. */
START_TEST(test_waits_for_the_rest)
{
    struct pair p;
    pair_open(&p);
    uint8_t buf[64];
    size_t at = 0, len = 0;
    uint8_t first = 0;
    put_frame(buf, &at, 20, 'c');
    write_all(p.wr, buf, 9);
    struct late_write w = { .fd = p.wr, .data = buf + 9, .len = at - 9, .delay_ms = 50 };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, late_writer, &w), 0);
    struct frame_reader_rules rules = waiting();
    int rc = read_frame(&p, &rules, &len, &first);
    pthread_join(t, NULL);
    ck_assert_int_eq(rc, RK_OK);
    ck_assert_uint_eq(len, 20);
    ck_assert_uint_eq(first, 'c');
    pair_close(&p);
}
END_TEST

/* Half a frame, then the peer closes: an error at once, not a wait until the deadline. */
START_TEST(test_eof_inside_a_frame)
{
    struct pair p;
    pair_open(&p);
    uint8_t buf[64];
    size_t at = 0, len = 0;
    uint8_t first = 0;
    put_frame(buf, &at, 20, 'd');
    write_all(p.wr, buf, 9);
    struct late_write w = { .fd = p.wr, .len = 0, .delay_ms = 30, .close_after = true };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, late_writer, &w), 0);
    struct frame_reader_rules rules = waiting();
    uint64_t t0 = frame_reader_now_ms();
    int rc = read_frame(&p, &rules, &len, &first);
    uint64_t took = frame_reader_now_ms() - t0;
    pthread_join(t, NULL);
    p.wr = -1; /* closed by the writer */
    ck_assert_int_eq(rc, RK_ERR_IO);
    ck_assert_msg(took < 2000, "EOF seen after %llu ms", (unsigned long long)took);
    pair_close(&p);
}
END_TEST

START_TEST(test_length_over_limit)
{
    struct pair p;
    pair_open(&p);
    uint8_t buf[64];
    size_t at = 0, len = 0;
    uint8_t first = 0;
    put_frame(buf, &at, 40, 'e');
    write_all(p.wr, buf, at);
    struct frame_reader_rules rules = no_wait;
    rules.max = 39;
    ck_assert_int_eq(read_frame(&p, &rules, &len, &first), RK_ERR_TOOBIG);
    ck_assert_uint_eq(len, 40);
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
    tcase_add_test(tc, test_waits_for_the_rest);
    tcase_add_test(tc, test_eof_inside_a_frame);
    tcase_add_test(tc, test_length_over_limit);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(frame_reader_suite)
