/* tools/test_bench_http.c - the Check test of tools/bench_http.c (`make check` runs it):
 * the etcd put raft_bench sends, byte for byte, and the parsing of etcd's answers. */
#include <stdio.h>
#include <string.h>

#include "../common/errors.h"
#include "../tests/check_main.h"
#include "bench.h"

START_TEST(test_put_request_bytes)
{
    struct proto_buf b = { 0 };
    ck_assert_int_eq(bench_http_encode_put(&b, "/v3/kv/put", "k00000001", 9, "ab", 2), RK_OK);
    /* base64("k00000001") = "azAwMDAwMDAx", base64("ab") = "YWI=" */
    const char *body = "{\"key\":\"azAwMDAwMDAx\",\"value\":\"YWI=\"}";
    char want[512];
    snprintf(want, sizeof(want),
             "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    ck_assert_uint_eq(b.len, strlen(want));
    ck_assert_int_eq(memcmp(b.data, want, b.len), 0);
    proto_buf_free(&b);
}
END_TEST

START_TEST(test_base64_padding)
{
    const char *vals[] = { "", "a", "ab", "abc", "abcd" };
    const char *want[] = { "\"value\":\"\"}", "\"value\":\"YQ==\"}", "\"value\":\"YWI=\"}",
                           "\"value\":\"YWJj\"}", "\"value\":\"YWJjZA==\"}" };
    for (int i = 0; i < 5; i++) {
        struct proto_buf b = { 0 };
        ck_assert_int_eq(bench_http_encode_put(&b, "/p", "k", 1, vals[i], strlen(vals[i])),
                         RK_OK);
        size_t n = strlen(want[i]);
        ck_assert_uint_ge(b.len, n);
        ck_assert_int_eq(memcmp(b.data + b.len - n, want[i], n), 0);
        proto_buf_free(&b);
    }
}
END_TEST

static const char ok_answer[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
    "{\"header\":{\"rev\":\"7\"}}";

START_TEST(test_answer_whole_and_in_pieces)
{
    size_t len = strlen(ok_answer);
    struct bench_http_answer a;
    ck_assert_int_eq(bench_http_parse_answer((const uint8_t *)ok_answer, len, &a), RK_OK);
    ck_assert_uint_eq(a.consumed, len);
    ck_assert_int_eq(a.status, 200);
    ck_assert_uint_eq(a.body_len, 22);
    ck_assert_int_eq(memcmp(a.body, "{\"header\"", 9), 0);
    ck_assert(bench_http_put_ok(&a));
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(bench_http_parse_answer((const uint8_t *)ok_answer, cut, &a),
                         RK_ERR_AGAIN);
    char two[256]; /* two answers in one read: the first one only */
    snprintf(two, sizeof(two), "%s%s", ok_answer, ok_answer);
    ck_assert_int_eq(bench_http_parse_answer((const uint8_t *)two, strlen(two), &a), RK_OK);
    ck_assert_uint_eq(a.consumed, len);
}
END_TEST

START_TEST(test_answer_failures)
{
    struct bench_http_answer a;
    const char *err500 = "HTTP/1.1 500 Internal\r\ncontent-length: 2\r\n\r\n{}";
    ck_assert_int_eq(bench_http_parse_answer((const uint8_t *)err500, strlen(err500), &a),
                     RK_OK);
    ck_assert_int_eq(a.status, 500);
    ck_assert(!bench_http_put_ok(&a));
    const char *not_etcd = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    ck_assert_int_eq(bench_http_parse_answer((const uint8_t *)not_etcd, strlen(not_etcd), &a),
                     RK_OK);
    ck_assert(!bench_http_put_ok(&a));
    const char *bad[] = { "SMTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" };
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(bench_http_parse_answer((const uint8_t *)bad[i], strlen(bad[i]), &a),
                         RK_ERR_PROTO);
}
END_TEST

START_TEST(test_json_string)
{
    static const char status[] =
        "{\"header\":{\"cluster_id\":\"151\",\"member_id\":\"1366\",\"revision\":\"1\"},"
        "\"version\":\"3.4.23\",\"leader\":\"1366\",\"raftTerm\":\"2\"}";
    char out[8];
    ck_assert(bench_json_string(status, strlen(status), "member_id", out, sizeof(out)));
    ck_assert_str_eq(out, "1366");
    ck_assert(bench_json_string(status, strlen(status), "leader", out, sizeof(out)));
    ck_assert_str_eq(out, "1366");
    ck_assert(!bench_json_string(status, strlen(status), "missing", out, sizeof(out)));
    ck_assert(!bench_json_string(status, strlen(status), "version", out, 6)); /* too long */
    ck_assert(!bench_json_string(status, 40, "leader", out, sizeof(out))); /* not in [0, 40) */
}
END_TEST

static Suite *bench_http_suite(void)
{
    Suite *s = suite_create("bench_http");
    TCase *tc = tcase_create("bench_http");
    tcase_add_test(tc, test_put_request_bytes);
    tcase_add_test(tc, test_base64_padding);
    tcase_add_test(tc, test_answer_whole_and_in_pieces);
    tcase_add_test(tc, test_answer_failures);
    tcase_add_test(tc, test_json_string);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(bench_http_suite)
