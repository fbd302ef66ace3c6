/* tests/integ_client_cli.c - runs the raft_client program against a real 3-server cluster
 * and checks its exact output and exit codes: one-shot commands, stdin mode, status,
 * no reachable server, and a follower's address (redirect followed). Also raft_server's
 * own command line: --help, and the refusals of bad arguments. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "check_main.h"
#include "harness.h"

#define CLI_SERVERS 3
#define RUN_TIMEOUT_MS 15000
#define OUT_MAX 8192

struct cli_result {
    char out[OUT_MAX];
    char err[OUT_MAX];
    int exit_status;
};

static struct ctl_cluster *start_cluster(void)
{
    return harness_start(CLI_SERVERS, 10000);
}

/* Runs bin with the given arguments (NULL-terminated) and stdin text: harness_run's
 * result, the output in r. */
static int run_program(const char *bin, struct cli_result *r, const char *stdin_text,
                       const char *const args[])
{
    char *argv[32];
    int a = 0;
    argv[a++] = (char *)bin;
    for (int k = 0; args[k] != NULL && a < 31; k++)
        argv[a++] = (char *)args[k];
    argv[a] = NULL;
    return harness_run(argv, stdin_text, r->out, sizeof(r->out), r->err, sizeof(r->err),
                       RUN_TIMEOUT_MS, &r->exit_status);
}

/* Runs raft_client with the given arguments (NULL-terminated) and stdin text. */
static void run_client(struct ctl_cluster *c, struct cli_result *r, const char *stdin_text,
                       const char *const args[])
{
    int rc = run_program(harness_client_bin(), r, stdin_text, args);
    HARNESS_ASSERT(c, rc == RK_OK, "running raft_client %s ...: %s",
                   args[0] != NULL ? args[0] : "", rk_strerror(rc));
    bool clean = strstr(r->err, "Sanitizer") == NULL && strstr(r->err, "runtime error:") == NULL;
    HARNESS_ASSERT(c, clean, "the client printed a sanitizer report: %s", r->err);
}

/* One-shot: raft_client --dir DIR --timeout 5 ARGS... must print want and exit 0. */
static void expect_oneshot(struct ctl_cluster *c, const char *want, const char *cmd,
                           const char *a1, const char *a2, const char *a3)
{
    const char *args[] = {"--dir", c->dir, "--timeout", "5", cmd, a1, a2, a3, NULL};
    struct cli_result r;
    run_client(c, &r, NULL, args);
    HARNESS_ASSERT(c, strcmp(r.out, want) == 0 && r.exit_status == 0,
                   "%s %s: want stdout '%s' exit 0, got '%s' exit %d (stderr: %s)", cmd,
                   a1 != NULL ? a1 : "", want, r.out, r.exit_status, r.err);
}

START_TEST(test_oneshot_commands)
{
    struct ctl_cluster *c = start_cluster();
    expect_oneshot(c, "OK\n", "set", "k", "hello", "world");
    expect_oneshot(c, "hello world\n", "get", "k", NULL, NULL);
    expect_oneshot(c, "(nil)\n", "get", "nokey", NULL, NULL);
    expect_oneshot(c, "OK\n", "delete", "k", NULL, NULL);
    expect_oneshot(c, "(nil)\n", "delete", "k", NULL, NULL);
    expect_oneshot(c, "(nil)\n", "get", "k", NULL, NULL);
    /* keys are words, in one-shot mode too (a shell passes "a b" as one argument) */
    const char *args[] = { "--dir", c->dir, "--timeout", "5", "set", "a b", "v", NULL };
    struct cli_result r;
    run_client(c, &r, NULL, args);
    HARNESS_ASSERT(c, strcmp(r.out, "ERR " PROTO_ERR_KEY_NOT_WORD "\n") == 0,
                   "set 'a b': stdout '%s' exit %d", r.out, r.exit_status);
    expect_oneshot(c, "(nil)\n", "get", "a", NULL, NULL);
    harness_finish(c);
}
END_TEST

/* Revisions and compare-and-set in one-shot mode: a FAILED is an answer (exit 0); the
 * revisions printed are the ones the status line and rev report. */
START_TEST(test_oneshot_cas)
{
    struct ctl_cluster *c = start_cluster();
    expect_oneshot(c, "(nil)\n", "rev", "lock", NULL, NULL);
    expect_oneshot(c, "FAILED 0\n", "cad", "lock", "0", NULL);
    const char *args[] = { "--dir", c->dir, "--timeout", "5", "cas", "lock", "0", "me", NULL };
    struct cli_result r;
    run_client(c, &r, NULL, args);
    unsigned long long rev = 0;
    HARNESS_ASSERT(c, sscanf(r.out, "OK %llu\n", &rev) == 1 && rev > 0 && r.exit_status == 0,
                   "cas lock 0 me: '%s' exit %d", r.out, r.exit_status);
    char want[64], rev_text[24];
    snprintf(want, sizeof(want), "%llu me\n", rev);
    snprintf(rev_text, sizeof(rev_text), "%llu", rev);
    expect_oneshot(c, want, "rev", "lock", NULL, NULL);
    snprintf(want, sizeof(want), "FAILED %llu\n", rev);
    expect_oneshot(c, want, "cas", "lock", "0", "you");      /* held: FAILED, exit 0 */
    expect_oneshot(c, want, "cad", "lock", "1", NULL);
    expect_oneshot(c, "me\n", "get", "lock", NULL, NULL);
    expect_oneshot(c, "OK\n", "cad", "lock", rev_text, NULL);
    expect_oneshot(c, "(nil)\n", "get", "lock", NULL, NULL);
    const char *bad[] = { "--dir", c->dir, "--timeout", "5", "cas", "lock", "x", "v", NULL };
    run_client(c, &r, NULL, bad);
    HARNESS_ASSERT(c, strncmp(r.out, "ERR bad revision", 16) == 0 && r.exit_status != 0,
                   "cas with a bad revision: '%s' exit %d", r.out, r.exit_status);
    harness_finish(c);
}
END_TEST

/* The first line of a one-shot command's stdout (exit 0 asked). */
static void oneshot_out(struct ctl_cluster *c, struct cli_result *r, const char *cmd,
                        const char *a1, const char *a2, const char *a3)
{
    const char *args[] = {"--dir", c->dir, "--timeout", "5", cmd, a1, a2, a3, NULL};
    run_client(c, r, NULL, args);
    HARNESS_ASSERT(c, r->exit_status == 0, "%s %s: exit %d, '%s' (stderr: %s)", cmd,
                   a1 != NULL ? a1 : "", r->exit_status, r->out, r->err);
}

/* Expiring keys: setex, ttl (rounded up; -1 without a deadline; (nil) when absent),
 * expire (a new deadline; (nil) for an absent key), cas --ttl; a plain set or cas
 * removes the deadline; an expired key is gone within its time to live and some
 * slack, never before. Stdin mode gives the same answers. */
START_TEST(test_expiring_keys)
{
    struct ctl_cluster *c = start_cluster();
    struct cli_result r;
    expect_oneshot(c, "OK\n", "setex", "k", "30", "hello world");
    oneshot_out(c, &r, "ttl", "k", NULL, NULL);
    HARNESS_ASSERT(c, strcmp(r.out, "30\n") == 0 || strcmp(r.out, "29\n") == 0,
                   "ttl k: '%s'", r.out);
    expect_oneshot(c, "hello world\n", "get", "k", NULL, NULL);
    expect_oneshot(c, "(nil)\n", "ttl", "nokey", NULL, NULL);
    expect_oneshot(c, "(nil)\n", "expire", "nokey", "5", NULL);
    expect_oneshot(c, "OK\n", "set", "plain", "v", NULL);
    expect_oneshot(c, "-1\n", "ttl", "plain", NULL, NULL);
    /* cas --ttl: a lock with a deadline; a plain cas removes it */
    const char *lock[] = {"--dir", c->dir, "--timeout", "5", "cas", "--ttl", "30", "lock",
                          "0", "me", NULL};
    run_client(c, &r, NULL, lock);
    unsigned long long rev = 0;
    HARNESS_ASSERT(c, sscanf(r.out, "OK %llu\n", &rev) == 1, "cas --ttl: '%s'", r.out);
    oneshot_out(c, &r, "ttl", "lock", NULL, NULL);
    HARNESS_ASSERT(c, strcmp(r.out, "30\n") == 0 || strcmp(r.out, "29\n") == 0,
                   "ttl lock: '%s'", r.out);
    char rev_text[24], want[64];
    snprintf(rev_text, sizeof(rev_text), "%llu", rev);
    snprintf(want, sizeof(want), "FAILED %llu\n", rev);
    run_client(c, &r, NULL, lock);
    HARNESS_ASSERT(c, strcmp(r.out, want) == 0, "cas --ttl on a held lock: '%s'", r.out);
    oneshot_out(c, &r, "cas", "lock", rev_text, "me again");
    HARNESS_ASSERT(c, strncmp(r.out, "OK ", 3) == 0, "cas lock: '%s'", r.out);
    expect_oneshot(c, "-1\n", "ttl", "lock", NULL, NULL);
    /* expire: the key goes at its new deadline, not before */
    uint64_t sent = rk_clock_ms();
    expect_oneshot(c, "OK\n", "expire", "k", "1", NULL);
    uint64_t gone_at = 0;
    while (gone_at == 0 && rk_clock_ms() < sent + 1000 + 5000) {
        uint64_t asked = rk_clock_ms();
        oneshot_out(c, &r, "get", "k", NULL, NULL);
        if (strcmp(r.out, "(nil)\n") == 0)
            gone_at = asked;
        else
            HARNESS_ASSERT(c, strcmp(r.out, "hello world\n") == 0, "get k: '%s'", r.out);
        rk_sleep_ms(50);
    }
    HARNESS_ASSERT(c, gone_at != 0, "k outlived its 1 s deadline by 5 s");
    HARNESS_ASSERT(c, gone_at >= sent + 1000, "k was gone %" PRIu64 " ms after its expire "
                   "was sent", gone_at - sent);
    expect_oneshot(c, "(nil)\n", "ttl", "k", NULL, NULL);
    /* bad input: ERR and exit 1, nothing written */
    const char *bad[] = { "--dir", c->dir, "--timeout", "5", "setex", "k", "0.05", "v", NULL };
    run_client(c, &r, NULL, bad);
    HARNESS_ASSERT(c, strncmp(r.out, "ERR bad SECONDS", 15) == 0 && r.exit_status == 1,
                   "setex 0.05: '%s' exit %d", r.out, r.exit_status);
    expect_oneshot(c, "(nil)\n", "get", "k", NULL, NULL);
    /* stdin mode */
    const char *args[] = {"--dir", c->dir, "--timeout", "5", NULL};
    run_client(c, &r, "setex s 20 v w\nttl s\nget s\nexpire s 40\nttl s\nset s x\nttl s\n"
               "setex s 0.01 v\n", args);
    HARNESS_ASSERT(c, strcmp(r.out, "OK\n20\nv w\nOK\n40\nOK\n-1\nERR bad SECONDS (a number "
                                    "of seconds, decimals allowed, 0.1 to 315360000); usage: "
                                    "setex KEY SECONDS VALUE\n") == 0,
                   "stdin mode: '%s' (stderr: %s)", r.out, r.err);
    harness_finish(c);
}
END_TEST

/* scan in one-shot mode: byte order, prefix, limit, after, "" for every key, and the
 * last line's count, revision and "more". */
START_TEST(test_oneshot_scan)
{
    struct ctl_cluster *c = start_cluster();
    expect_oneshot(c, "OK\n", "set", "user/2", "bob", NULL);
    expect_oneshot(c, "OK\n", "set", "user/10", "carol", NULL);
    expect_oneshot(c, "OK\n", "set", "user/1", "alice", NULL);
    expect_oneshot(c, "OK\n", "set", "group", "admins", NULL);
    /* the last change's revision is the map's: that of group (a linearizable read) */
    const char *rev_args[] = { "--dir", c->dir, "--timeout", "5", "rev", "group", NULL };
    struct cli_result r;
    run_client(c, &r, NULL, rev_args);
    unsigned long long rev = strtoull(r.out, NULL, 10);
    HARNESS_ASSERT(c, rev > 0, "rev group: %s", r.out);
    char want[256];
    snprintf(want, sizeof(want), "user/1 alice\nuser/10 carol\nuser/2 bob\n(3 keys at rev %llu)\n",
             rev);
    expect_oneshot(c, want, "scan", "user/", NULL, NULL);
    snprintf(want, sizeof(want), "user/1 alice\nuser/10 carol\n(2 keys at rev %llu, more)\n", rev);
    expect_oneshot(c, want, "scan", "user/", "2", NULL);
    snprintf(want, sizeof(want), "user/2 bob\n(1 key at rev %llu)\n", rev);
    expect_oneshot(c, want, "scan", "user/", "2", "user/10");
    snprintf(want, sizeof(want), "group admins\nuser/1 alice\n(2 keys at rev %llu, more)\n", rev);
    expect_oneshot(c, want, "scan", "", "2", NULL); /* a shell's "" */
    snprintf(want, sizeof(want), "(0 keys at rev %llu)\n", rev);
    expect_oneshot(c, want, "scan", "nothing/", NULL, NULL);
    harness_finish(c);
}
END_TEST

/* A page ends once it holds 4 MiB (PROTO_SCAN_PAGE_BYTES), saying more keys remain; the
 * next page starts after its last key. */
START_TEST(test_scan_page_cut_at_4_mib)
{
    struct ctl_cluster *c = start_cluster();
    struct client_session *s = harness_session(c, -1, true, 10000);
    HARNESS_ASSERT(c, s != NULL, "no session");
    uint32_t big = 1024 * 1024;
    char *val = malloc(big + 1);
    HARNESS_ASSERT(c, val != NULL, "malloc");
    memset(val, 'v', big);
    val[big] = '\0';
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof(key), "big/%d", i);
        HARNESS_ASSERT(c, harness_call(s, PROTO_OP_SET, key, val, NULL, 0) == PROTO_ST_OK,
                       "set %s", key);
    }
    free(val);
    const char *after = NULL;
    char last[16] = "";
    int pages[2] = { 0, 0 };
    bool more[2] = { false, false };
    for (int p = 0; p < 2; p++) {
        char arg[32];
        snprintf(arg, sizeof(arg), after ? "100 %s" : "100", after ? after : "");
        struct client_reply r;
        char err[256];
        HARNESS_ASSERT(c, client_session_call(s, PROTO_OP_SCAN, "big/", 4, arg,
                                              (uint32_t)strlen(arg), &r, err, sizeof(err)) ==
                              RK_OK && r.status == PROTO_ST_VALUE, "scan: %s", err);
        uint64_t rev;
        uint32_t n, off = PROTO_PAGE_HEAD, klen, vlen;
        const char *key, *v;
        HARNESS_ASSERT(c, proto_page_head(r.body, r.body_len, &rev, &more[p], &n) == RK_OK,
                       "a page");
        while (proto_page_next(r.body, r.body_len, &off, &key, &klen, &v, &vlen) == 1) {
            pages[p]++;
            snprintf(last, sizeof(last), "%.*s", (int)klen, key);
        }
        HARNESS_ASSERT(c, (uint32_t)pages[p] == n, "page %d: %d pairs, head says %u", p,
                       pages[p], n);
        client_reply_free(&r);
        after = last;
    }
    HARNESS_ASSERT(c, pages[0] == 4 && more[0] && pages[1] == 2 && !more[1],
                   "pages of %d%s and %d%s keys, want 4 (more) and 2", pages[0],
                   more[0] ? " (more)" : "", pages[1], more[1] ? " (more)" : "");
    client_session_free(s);
    harness_finish(c);
}
END_TEST

START_TEST(test_stdin_mode_and_status)
{
    struct ctl_cluster *c = start_cluster();
    const char *args[] = {"--dir", c->dir, "--timeout", "5", NULL};
    struct cli_result r;
    run_client(c, &r, "set a 1\nget a\n\ndelete a\nget a\n", args);
    HARNESS_ASSERT(c, strcmp(r.out, "OK\n1\nOK\n(nil)\n") == 0 && r.exit_status == 0,
                   "stdin mode: got '%s' exit %d (stderr: %s)", r.out, r.exit_status, r.err);

    const char *status_args[] = {"--dir", c->dir, "--timeout", "5", "status", NULL};
    run_client(c, &r, NULL, status_args);
    regex_t re;
    int rc = regcomp(&re,
                     "^name=s[0-9]+ role=(leader|follower|candidate|learner) term=[0-9]+ "
                     "leader=(s[0-9]+|none) commit=[0-9]+ applied=[0-9]+ last=[0-9]+ "
                     "snapshot=[0-9]+ voters=3 rev=[0-9]+\n$",
                     REG_EXTENDED | REG_NOSUB);
    HARNESS_ASSERT(c, rc == 0, "regcomp");
    bool match = regexec(&re, r.out, 0, NULL, 0) == 0;
    regfree(&re);
    HARNESS_ASSERT(c, match && r.exit_status == 0, "status: got '%s' exit %d", r.out,
                   r.exit_status);
    harness_finish(c);
}
END_TEST

/* A port on 127.0.0.1 where nothing listens (bound once, then closed). */
static uint16_t dead_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(s >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t alen = sizeof(a);
    ck_assert(getsockname(s, (struct sockaddr *)&a, &alen) == 0);
    close(s);
    return ntohs(a.sin_port);
}

START_TEST(test_no_server_reachable)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)dead_port());
    const char *args[] = {"127.0.0.1", port, "--timeout", "0.5", "get", "k", NULL};
    struct cli_result r;
    uint64_t t0 = rk_clock_ms();
    run_client(NULL, &r, NULL, args);
    uint64_t took = rk_clock_ms() - t0;
    ck_assert_msg(strcmp(r.out, "ERR no leader reachable\n") == 0,
                  "want 'ERR no leader reachable', got '%s' (stderr: %s)", r.out, r.err);
    ck_assert_msg(r.exit_status != 0, "exit status 0 after an error");
    ck_assert_msg(took < 5000, "--timeout 0.5 took %lld ms", (long long)took);
}
END_TEST

START_TEST(test_follower_address)
{
    struct ctl_cluster *c = start_cluster();
    int leader = ctl_wait_leader(c, 10000, NULL);
    HARNESS_ASSERT(c, leader >= 0, "no leader");
    int follower = (leader + 1) % c->n;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)c->servers[follower].port);
    const char *args[] = {"127.0.0.1", port, "--timeout", "5", "set", "f", "via", "follower",
                          NULL};
    struct cli_result r;
    run_client(c, &r, NULL, args);
    HARNESS_ASSERT(c, strcmp(r.out, "OK\n") == 0 && r.exit_status == 0,
                   "set through follower %s: got '%s' exit %d (stderr: %s)",
                   c->servers[follower].name, r.out, r.exit_status, r.err);
    fprintf(stderr, "integ_client_cli: stderr of the redirected set: %s", r.err);

    const char *get_args[] = {"127.0.0.1", port, "--timeout", "5", "get", "f", NULL};
    run_client(c, &r, NULL, get_args);
    HARNESS_ASSERT(c, strcmp(r.out, "via follower\n") == 0 && r.exit_status == 0,
                   "get through follower: got '%s' exit %d (stderr: %s)", r.out,
                   r.exit_status, r.err);
    harness_finish(c);
}
END_TEST

/* Runs raft_server with args (no cluster: each of these exits before it starts). */
static void run_server_args(struct cli_result *r, const char *const args[])
{
    int rc = run_program(ctl_server_bin(), r, NULL, args);
    ck_assert_msg(rc == RK_OK, "running raft_server: %s", rk_strerror(rc));
}

/* A refused command line: exit 2, nothing on stdout, the problem then the usage on
 * stderr. */
static void expect_refused(const char *const args[], const char *problem)
{
    struct cli_result r;
    run_server_args(&r, args);
    ck_assert_msg(r.exit_status == 2 && r.out[0] == '\0' && strstr(r.err, problem) != NULL &&
                      strstr(r.err, "usage: ") != NULL,
                  "want exit 2 and '%s' then the usage on stderr, got exit %d, stdout '%s', "
                  "stderr '%s'", problem, r.exit_status, r.out, r.err);
}

START_TEST(test_server_command_line)
{
    for (int k = 0; k < 2; k++) {
        const char *args[] = {k == 0 ? "--help" : "-h", NULL};
        struct cli_result r;
        run_server_args(&r, args);
        ck_assert_msg(r.exit_status == 0 && strncmp(r.out, "usage: ", 7) == 0 &&
                          strstr(r.out, "--election-min-ms") != NULL && r.err[0] == '\0',
                      "%s: want the usage on stdout and exit 0, got exit %d, stdout '%s', "
                      "stderr '%s'", args[0], r.exit_status, r.out, r.err);
    }
    const char *none[] = {NULL};
    expect_refused(none, "usage: ");
    const char *two[] = {"s1", "127.0.0.1", NULL};
    expect_refused(two, "NAME, HOST and PORT are required");
    const char *port[] = {"s1", "127.0.0.1", "99999", NULL};
    expect_refused(port, "PORT must be a number 1..65535, not '99999'");
    const char *flag[] = {"s1", "127.0.0.1", "4000", "yes", NULL};
    expect_refused(flag, "the start flag must be True or False, not 'yes'");
    const char *bogus[] = {"s1", "127.0.0.1", "4000", "--bogus", "3", NULL};
    expect_refused(bogus, "bad option or value: --bogus 3");
    const char *bad_value[] = {"s1", "127.0.0.1", "4000", "--heartbeat-ms", "x", NULL};
    expect_refused(bad_value, "bad option or value: --heartbeat-ms x");
    const char *missing[] = {"s1", "127.0.0.1", "4000", "--dir", NULL};
    expect_refused(missing, "missing value for --dir");
    const char *order[] = {"s1", "127.0.0.1", "4000", "--election-min-ms", "300",
                           "--election-max-ms", "200", NULL};
    expect_refused(order, "--election-min-ms (300) must be below --election-max-ms (200)");
}
END_TEST

static Suite *integ_client_cli_suite(void)
{
    Suite *s = suite_create("integ_client_cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_oneshot_commands);
    tcase_add_test(tc, test_oneshot_cas);
    tcase_add_test(tc, test_oneshot_scan);
    tcase_add_test(tc, test_expiring_keys);
    tcase_add_test(tc, test_scan_page_cut_at_4_mib);
    tcase_add_test(tc, test_stdin_mode_and_status);
    tcase_add_test(tc, test_no_server_reachable);
    tcase_add_test(tc, test_follower_address);
    tcase_add_test(tc, test_server_command_line);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(integ_client_cli_suite)
