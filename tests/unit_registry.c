/* tests/unit_registry.c - common/registry.c: good files, every bad-line error with its
 * "file:line:" prefix, duplicates, missing files and registry_find. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/registry.h"
#include "check_main.h"

static char err[512];

static int parse(const char *text, struct registry *reg)
{
    err[0] = '\0';
    return registry_parse(text, strlen(text), "reg.txt", reg, err, sizeof(err));
}

/* Parsing text must fail with RK_ERR_INVAL and exactly the message want. */
static void expect_error(const char *text, const char *want)
{
    struct registry reg = { 0 };
    int rc = parse(text, &reg);
    ck_assert_int_eq(rc, RK_ERR_INVAL);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(reg.servers);
    ck_assert_int_eq(reg.n, 0);
}

static void expect_server(const struct registry *reg, int i, const char *name,
                          const char *host, unsigned port)
{
    ck_assert_int_lt(i, reg->n);
    ck_assert_str_eq(reg->servers[i].name, name);
    ck_assert_str_eq(reg->servers[i].host, host);
    ck_assert_uint_eq(reg->servers[i].port, port);
}

/* '#' starts a comment only at the start of a word; inside a word it is data. */
START_TEST(test_hash_inside_word)
{
    struct registry reg = { 0 };
    ck_assert_int_eq(parse("a localhost 1\n\nserver5 ::1 65535#not-a-comment-at-all\n", &reg),
                     RK_ERR_INVAL);
    ck_assert_str_eq(err, "reg.txt:3: port '65535#not-a-comment-...' is not a number 1..65535");
    ck_assert_int_eq(parse("a#b localhost 1\n", &reg), RK_ERR_INVAL);
    ck_assert_str_eq(err, "reg.txt:1: server name may hold only letters, digits, '-', '_' "
                          "and '.', got 'a#b'");
}
END_TEST

START_TEST(test_good_file_servers)
{
    const char *text = "# name host port\n"
                       "\n"
                       "server2 localhost 2000\n"
                       "   # an indented comment\n"
                       "\tserver3\t127.0.0.1   3000   # trailing comment\n"
                       "server4 localhost 4000\r\n"
                       "   \t  \n"
                       "server_5.a-b ::1 65535 #c\n"
                       "server6 localhost 1"; /* no final newline */
    struct registry reg = { 0 };
    ck_assert_int_eq(parse(text, &reg), RK_OK);
    ck_assert_int_eq(reg.n, 5);
    expect_server(&reg, 0, "server2", "localhost", 2000);
    expect_server(&reg, 1, "server3", "127.0.0.1", 3000);
    expect_server(&reg, 2, "server4", "localhost", 4000);
    expect_server(&reg, 3, "server_5.a-b", "::1", 65535);
    expect_server(&reg, 4, "server6", "localhost", 1);
    ck_assert_int_eq(registry_find(&reg, "server2"), 0);
    ck_assert_int_eq(registry_find(&reg, "server4"), 2);
    ck_assert_int_eq(registry_find(&reg, "server6"), 4);
    ck_assert_int_eq(registry_find(&reg, "server"), -1);
    ck_assert_int_eq(registry_find(&reg, "server22"), -1);
    ck_assert_int_eq(registry_find(&reg, ""), -1);
    ck_assert_int_eq(registry_find(&reg, NULL), -1);
    ck_assert_int_eq(registry_find(NULL, "server2"), -1);
    registry_free(&reg);
    ck_assert_ptr_null(reg.servers);
    ck_assert_int_eq(reg.n, 0);
    ck_assert_int_eq(registry_find(&reg, "server2"), -1);
}
END_TEST

START_TEST(test_field_count)
{
    expect_error("a localhost 1\n\nserver2 localhost\n",
                 "reg.txt:3: expected 'name host port', got 2 fields");
    expect_error("a localhost 1\n# c\nserver2\n",
                 "reg.txt:3: expected 'name host port', got 1 field");
    expect_error("a localhost 1\n\nserver2 localhost 2000 extra\n",
                 "reg.txt:3: expected 'name host port', got 4 fields");
    expect_error("a localhost 1\n\nserver2 localhost 2000 extra more # c\n",
                 "reg.txt:3: expected 'name host port', got 5 fields");
}
END_TEST

START_TEST(test_bad_port)
{
    expect_error("a localhost 1\n\nserver2 localhost abc\n",
                 "reg.txt:3: port 'abc' is not a number 1..65535");
    expect_error("a localhost 1\n\nb localhost 0\n",
                 "reg.txt:3: port '0' is not a number 1..65535");
    expect_error("a localhost 1\n\nb localhost 65536\n",
                 "reg.txt:3: port '65536' is not a number 1..65535");
    expect_error("a localhost 1\n\nb localhost -1\n",
                 "reg.txt:3: port '-1' is not a number 1..65535");
    expect_error("a localhost 1\n\nb localhost +80\n",
                 "reg.txt:3: port '+80' is not a number 1..65535");
    expect_error("a localhost 1\n\nb localhost 99999999999999999999\n",
                 "reg.txt:3: port '99999999999999999999' is not a number 1..65535");
    expect_error("a localhost 1\n\nb localhost 12x\n",
                 "reg.txt:3: port '12x' is not a number 1..65535");
}
END_TEST

START_TEST(test_bad_name_and_host)
{
    char text[1024];
    char long_name[REGISTRY_NAME_MAX + 2];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    snprintf(text, sizeof(text), "a localhost 1\n\n%s localhost 2\n", long_name);
    expect_error(text, "reg.txt:3: server name 'nnnnnnnnnnnnnnnnnnnn...' is longer than 63 bytes");

    long_name[REGISTRY_NAME_MAX] = '\0'; /* exactly the maximum is fine */
    snprintf(text, sizeof(text), "%s localhost 2\n", long_name);
    struct registry reg = { 0 };
    ck_assert_int_eq(parse(text, &reg), RK_OK);
    ck_assert_str_eq(reg.servers[0].name, long_name);
    registry_free(&reg);

    char long_host[REGISTRY_HOST_MAX + 2];
    memset(long_host, 'h', sizeof(long_host) - 1);
    long_host[sizeof(long_host) - 1] = '\0';
    snprintf(text, sizeof(text), "a localhost 1\n\nb %s 2\n", long_host);
    expect_error(text, "reg.txt:3: host 'hhhhhhhhhhhhhhhhhhhh...' is longer than 255 bytes");

    expect_error("a localhost 1\n\n../x localhost 2\n",
                 "reg.txt:3: server name may hold only letters, digits, '-', '_' and '.', "
                 "got '../x'");
}
END_TEST

START_TEST(test_nul_byte)
{
    static const char text[] = "a localhost 1\n\nb loc\0lhost 2\n";
    struct registry reg = { 0 };
    int rc = registry_parse(text, sizeof(text) - 1, "reg.txt", &reg, err, sizeof(err));
    ck_assert_int_eq(rc, RK_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(err, "reg.txt:3:"));
}
END_TEST

START_TEST(test_duplicates)
{
    expect_error("server2 localhost 2000\nserver3 localhost 3000\nserver2 localhost 4000\n",
                 "reg.txt:3: duplicate server name 'server2' (first on line 1)");
    expect_error("server2 localhost 2000\n#\nserver3 localhost 2000\n",
                 "reg.txt:3: duplicate address 'localhost:2000' (first on line 1, "
                 "server 'server2')");
    expect_error("# header\nx localhost 1\nserver2 localhost 2000\n\nserver2 h 5\n",
                 "reg.txt:5: duplicate server name 'server2' (first on line 3)");
    /* the same port on another host is fine */
    struct registry reg = { 0 };
    ck_assert_int_eq(parse("a localhost 2000\nb 127.0.0.2 2000\n", &reg), RK_OK);
    ck_assert_int_eq(reg.n, 2);
    registry_free(&reg);
}
END_TEST

START_TEST(test_empty)
{
    expect_error("", "reg.txt: no servers listed");
    expect_error("# only a comment\n\n   \n", "reg.txt: no servers listed");
}
END_TEST

START_TEST(test_too_many)
{
    size_t cap = (REGISTRY_MAX_SERVERS + 1) * 32;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    size_t len = 0;
    for (int i = 0; i < REGISTRY_MAX_SERVERS + 1; i++)
        len += (size_t)snprintf(text + len, cap - len, "s%d localhost %d\n", i, 1000 + i);
    struct registry reg = { 0 };
    ck_assert_int_eq(registry_parse(text, len, "reg.txt", &reg, err, sizeof(err)),
                     RK_ERR_INVAL);
    ck_assert_str_eq(err, "reg.txt:65: too many servers (at most 64)");
    /* exactly the maximum is fine */
    const char *last = strstr(text, "s64 ");
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(registry_parse(text, (size_t)(last - text), "reg.txt", &reg, err,
                                    sizeof(err)), RK_OK);
    ck_assert_int_eq(reg.n, REGISTRY_MAX_SERVERS);
    ck_assert_int_eq(registry_find(&reg, "s63"), 63);
    registry_free(&reg);
    free(text);
}
END_TEST

/* Writes text to a fresh temporary file; returns its path (static buffer). */
static const char *write_temp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/rk_unit_registry_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

START_TEST(test_load_file)
{
    const char *path = write_temp("# name host port\nserver2 localhost 2000\n"
                                  "server3 localhost 3000\n");
    struct registry reg = { 0 };
    int rc = registry_load(path, &reg, err, sizeof(err));
    unlink(path);
    ck_assert_int_eq(rc, RK_OK);
    ck_assert_int_eq(reg.n, 2);
    expect_server(&reg, 1, "server3", "localhost", 3000);
    registry_free(&reg);
}
END_TEST

START_TEST(test_load_bad_file_names_path)
{
    const char *path = write_temp("server2 localhost 2000\n\nserver3 localhost\n");
    char want[128];
    snprintf(want, sizeof(want), "%s:3: expected 'name host port', got 2 fields", path);
    struct registry reg = { 0 };
    int rc = registry_load(path, &reg, err, sizeof(err));
    unlink(path);
    ck_assert_int_eq(rc, RK_ERR_INVAL);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(reg.servers);
}
END_TEST

START_TEST(test_load_missing)
{
    struct registry reg = { 0 };
    const char *path = "/tmp/rk_unit_registry_does_not_exist/reg.txt";
    int rc = registry_load(path, &reg, err, sizeof(err));
    ck_assert_int_eq(rc, RK_ERR_NOTFOUND);
    char want[128];
    snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(reg.servers);
    ck_assert_int_eq(reg.n, 0);
}
END_TEST

/* The registry shipped in logs/ parses (tests run from the repository root). */
START_TEST(test_shipped_registry)
{
    struct registry reg = { 0 };
    if (access("logs/server_registry.txt", R_OK) != 0)
        return; /* not run from the repository root */
    ck_assert_int_eq(registry_load("logs/server_registry.txt", &reg, err, sizeof(err)), RK_OK);
    ck_assert_int_ge(reg.n, 1);
    registry_free(&reg);
}
END_TEST

/* The cluster id of a registry text (which must parse). */
static uint64_t cluster_id_of(const char *text)
{
    struct registry reg = { 0 };
    ck_assert_int_eq(parse(text, &reg), RK_OK);
    uint64_t id = registry_cluster_id(&reg);
    registry_free(&reg);
    return id;
}

/* The same servers give the same id whatever the order, spacing and comments; any change
 * to a name, host or port gives another. */
START_TEST(test_cluster_id)
{
    uint64_t id = cluster_id_of("a 127.0.0.1 2000\nb 127.0.0.1 3000\nc 10.0.0.1 4000\n");
    ck_assert_uint_ne(id, 0);
    ck_assert_uint_eq(cluster_id_of("# cluster\nc  10.0.0.1\t4000\n\nb 127.0.0.1 3000 # me\n"
                                    "a 127.0.0.1 2000"),
                      id);
    ck_assert_uint_ne(cluster_id_of("a 127.0.0.1 2000\nb 127.0.0.1 3000\nc 10.0.0.1 4001\n"),
                      id);
    ck_assert_uint_ne(cluster_id_of("a 127.0.0.1 2000\nb 127.0.0.1 3000\nd 10.0.0.1 4000\n"),
                      id);
    ck_assert_uint_ne(cluster_id_of("a 127.0.0.1 2000\nb 127.0.0.1 3000\nc 10.0.0.2 4000\n"),
                      id);
    ck_assert_uint_ne(cluster_id_of("a 127.0.0.1 2000\nb 127.0.0.1 3000\n"), id);
    /* fields are not simply concatenated: "a1 2" + "3" differs from "a 12" + "3" */
    ck_assert_uint_ne(cluster_id_of("ab 1 2\n"), cluster_id_of("a b1 2\n"));
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_hash_inside_word);
    tcase_add_test(tc, test_good_file_servers);
    tcase_add_test(tc, test_field_count);
    tcase_add_test(tc, test_bad_port);
    tcase_add_test(tc, test_bad_name_and_host);
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_duplicates);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_too_many);
    tcase_add_test(tc, test_cluster_id);
    suite_add_tcase(s, tc);
    TCase *tf = tcase_create("load");
    tcase_add_test(tf, test_load_file);
    tcase_add_test(tf, test_load_bad_file_names_path);
    tcase_add_test(tf, test_load_missing);
    tcase_add_test(tf, test_shipped_registry);
    suite_add_tcase(s, tf);
    return s;
}

RK_CHECK_MAIN(registry_suite)
