/* tests/unit_client_parse.c - client/parse.c: splitting raft_client command lines into
 * word, key and value, and the checks (and exact error texts) of each command. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/parse.h"
#include "../common/proto.h"
#include "check_main.h"

/* Parses a copy of text; the copy lives until the next call. */
static bool split(const char *text, struct client_cmd *cmd)
{
    static char line[256];
    snprintf(line, sizeof(line), "%s", text);
    return client_parse_line(line, cmd);
}

static void expect_split(const char *text, const char *word, const char *key,
                         const char *val, int n_args)
{
    struct client_cmd cmd;
    ck_assert(split(text, &cmd));
    ck_assert_str_eq(cmd.word, word);
    ck_assert_int_eq(cmd.n_args, n_args);
    if (key == NULL) {
        ck_assert_ptr_null(cmd.key);
    } else {
        ck_assert_uint_eq(cmd.key_len, strlen(key));
        ck_assert(memcmp(cmd.key, key, cmd.key_len) == 0);
    }
    if (val == NULL) {
        ck_assert_ptr_null(cmd.val);
    } else {
        ck_assert_str_eq(cmd.val, val);
        ck_assert_uint_eq(cmd.val_len, strlen(val));
    }
}

START_TEST(test_split)
{
    struct client_cmd cmd;
    ck_assert(!split("", &cmd));
    ck_assert(!split(" \t\r\n\v\f", &cmd));
    expect_split("status", "status", NULL, NULL, 0);
    expect_split("get k", "get", "k", NULL, 1);
    expect_split("  get \t key  ", "get", "key", NULL, 1);
    expect_split("set k hello world", "set", "k", "hello world", 2);
    expect_split("set k   a  value  with spaces  ", "set", "k", "a  value  with spaces  ", 2);
    expect_split("get a b", "get", "a", "b", 2);
}
END_TEST

/* The kind of text's command, and the error text when it is invalid. */
static enum client_cmd_kind check(const char *text, uint8_t *op, char *err, size_t errlen)
{
    struct client_cmd cmd;
    ck_assert(split(text, &cmd));
    err[0] = '\0';
    return client_check_command(&cmd, op, err, errlen);
}

static void expect_invalid(const char *text, const char *want)
{
    uint8_t op = 0;
    char err[128];
    ck_assert_int_eq(check(text, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    ck_assert_str_eq(err, want);
}

START_TEST(test_check)
{
    uint8_t op = 0;
    char err[128];
    ck_assert_int_eq(check("SET k v", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_SET);
    ck_assert_int_eq(check("get k", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_GET);
    ck_assert_int_eq(check("Delete k", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_DELETE);
    ck_assert_int_eq(check("status", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_STATUS);
    ck_assert_int_eq(check("help me", &op, err, sizeof(err)), CLIENT_CMD_HELP);
    ck_assert_int_eq(check("quit", &op, err, sizeof(err)), CLIENT_CMD_QUIT);
    ck_assert_int_eq(check("EXIT", &op, err, sizeof(err)), CLIENT_CMD_QUIT);
    expect_invalid("set k", "usage: set KEY VALUE");
    expect_invalid("get", "usage: get KEY");
    expect_invalid("get a b", "usage: get KEY");
    expect_invalid("delete", "usage: delete KEY");
    expect_invalid("status now", "usage: status");
    expect_invalid("frobnicate x", "unknown command 'frobnicate' (try help)");
    /* revisions and compare-and-set */
    ck_assert_int_eq(check("rev k", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_REV);
    ck_assert_int_eq(check("cas k 0 hello world", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_CAS);
    ck_assert_int_eq(check("CAS k 12", &op, err, sizeof(err)), CLIENT_CMD_SERVER); /* "" */
    ck_assert_int_eq(check("cad k 12", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_CAD);
    expect_invalid("rev", "usage: rev KEY");
    expect_invalid("rev a b", "usage: rev KEY");
    expect_invalid("cas k", "usage: cas KEY REV VALUE");
    expect_invalid("cad k", "usage: cad KEY REV");
    expect_invalid("cad k 1 2", "bad revision (a number; 0: the key must be absent); usage: "
                                "cad KEY REV");
    expect_invalid("cas k x v", "bad revision (a number; 0: the key must be absent); usage: "
                                "cas KEY REV VALUE");
    expect_invalid("cas k -1 v", "bad revision (a number; 0: the key must be absent); usage: "
                                 "cas KEY REV VALUE");
    expect_invalid("cad k 01", "bad revision (a number; 0: the key must be absent); usage: "
                               "cad KEY REV");
    ck_assert(client_is_command_word("Rev") && client_is_command_word("cas") &&
              client_is_command_word("CAD") && client_is_command_word("scan"));
    /* scan PREFIX [LIMIT [AFTER]]: "" (two characters) is the empty prefix */
    ck_assert_int_eq(check("scan user/", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_SCAN);
    ck_assert_int_eq(check("scan \"\" 5 k9", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    expect_invalid("scan", "usage: scan PREFIX [LIMIT [AFTER]]");
    expect_invalid("scan p 0", "bad scan (LIMIT 1..10000, AFTER a key); usage: "
                               "scan PREFIX [LIMIT [AFTER]]");
    expect_invalid("scan p 10001", "bad scan (LIMIT 1..10000, AFTER a key); usage: "
                                   "scan PREFIX [LIMIT [AFTER]]");
    expect_invalid("scan p 5 a b", "bad scan (LIMIT 1..10000, AFTER a key); usage: "
                                   "scan PREFIX [LIMIT [AFTER]]");
    struct client_cmd sc_cmd;
    struct client_scan req;
    ck_assert(split("scan \"\"", &sc_cmd));
    ck_assert(client_scan_request(&sc_cmd, &req));
    ck_assert_uint_eq(req.prefix_len, 0);
    ck_assert_str_eq(req.val, "100");
    ck_assert(split("scan user/ 7 user/3", &sc_cmd));
    ck_assert(client_scan_request(&sc_cmd, &req));
    ck_assert_uint_eq(req.prefix_len, 5);
    ck_assert_str_eq(req.val, "7 user/3");
    /* one-shot mode: a shell passes "" as an empty argument */
    struct client_cmd empty = { .word = "scan", .key = "", .key_len = 0, .n_args = 1 };
    ck_assert_int_eq(client_check_command(&empty, &op, err, sizeof(err)), CLIENT_CMD_SERVER);
}
END_TEST

/* The wire request of a setex, expire or cas --ttl: SECONDS become "MS" at the value's
 * start; cas --ttl is CAS_TTL with its key after SECONDS. */
static void expect_ttl_request(const char *line, uint8_t want_op, const char *key,
                               const char *val)
{
    struct client_cmd cmd;
    uint8_t op = 0;
    char err[128];
    ck_assert(split(line, &cmd));
    ck_assert_msg(client_check_command(&cmd, &op, err, sizeof(err)) == CLIENT_CMD_SERVER,
                  "'%s': %s", line, err);
    ck_assert_uint_eq(op, want_op);
    struct client_ttl_req req;
    const char *why;
    ck_assert(client_ttl_request(&cmd, op == PROTO_OP_CAS_TTL ? PROTO_OP_CAS : op, &req, &why));
    ck_assert_uint_eq(req.op, want_op);
    ck_assert_uint_eq(req.key_len, strlen(key));
    ck_assert_mem_eq(req.key, key, req.key_len);
    ck_assert_uint_eq(req.val_len, strlen(val));
    ck_assert_mem_eq(req.val, val, req.val_len);
    free(req.val);
}

START_TEST(test_ttl_commands)
{
    expect_ttl_request("setex k 1.5 hello  world", PROTO_OP_SETEX, "k", "1500 hello  world");
    expect_ttl_request("SETEX k .1 v", PROTO_OP_SETEX, "k", "100 v");
    expect_ttl_request("expire k 30", PROTO_OP_EXPIRE, "k", "30000");
    expect_ttl_request("cas --ttl 2 lock 0 me and you", PROTO_OP_CAS_TTL, "lock",
                       "2000 0 me and you");
    expect_ttl_request("cas --ttl 0.25 lock 17", PROTO_OP_CAS_TTL, "lock", "250 17");
    uint8_t op = 0;
    char err[128];
    ck_assert_int_eq(check("ttl k", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(op, PROTO_OP_TTL);
    expect_invalid("ttl", "usage: ttl KEY");
    expect_invalid("setex k 5", "usage: setex KEY SECONDS VALUE");
    expect_invalid("setex k", "usage: setex KEY SECONDS VALUE");
    expect_invalid("setex k 0.05 v", "bad SECONDS (a number of seconds, decimals allowed, 0.1 "
                                     "to 315360000); usage: setex KEY SECONDS VALUE");
    expect_invalid("setex k 1h v", "bad SECONDS (a number of seconds, decimals allowed, 0.1 "
                                   "to 315360000); usage: setex KEY SECONDS VALUE");
    expect_invalid("expire k", "usage: expire KEY SECONDS");
    expect_invalid("expire k 5 6", "usage: expire KEY SECONDS");
    expect_invalid("cas --ttl 5 lock", "usage: cas --ttl SECONDS KEY REV VALUE");
    expect_invalid("cas --ttl 5 lock x v", "bad revision (a number; 0: the key must be "
                                           "absent); usage: cas --ttl SECONDS KEY REV VALUE");
    expect_invalid("cas --ttl x lock 0 v", "bad SECONDS (a number of seconds, decimals "
                                           "allowed, 0.1 to 315360000); usage: "
                                           "cas --ttl SECONDS KEY REV VALUE");
    expect_invalid("cas --ttl", "usage: cas --ttl SECONDS KEY REV VALUE");
    ck_assert(client_is_command_word("setex") && client_is_command_word("EXPIRE") &&
              client_is_command_word("ttl"));
    /* keys are words here too (one-shot mode can pass any argument as the key) */
    struct client_cmd cmd = { .word = "setex", .key = "a b", .key_len = 3, .val = "5 v",
                              .val_len = 3, .n_args = 2 };
    ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    ck_assert_str_eq(err, PROTO_ERR_KEY_NOT_WORD);
    cmd = (struct client_cmd){ .word = "cas", .key = "--ttl", .key_len = 5,
                               .val = "5 a\x01b 0 v", .val_len = 10, .n_args = 2 };
    ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    ck_assert_str_eq(err, PROTO_ERR_KEY_NOT_WORD);
}
END_TEST

/* Sizes: an empty key (possible from argv) is a usage error; over the protocol's limits
 * the command is refused before anything is sent. */
START_TEST(test_sizes)
{
    static char big[PROTO_MAX_KEY + 2];
    memset(big, 'k', sizeof(big) - 1);
    uint8_t op = 0;
    char err[128];
    struct client_cmd cmd = { .word = "get", .key = "", .key_len = 0, .n_args = 1 };
    ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    ck_assert_str_eq(err, "usage: get KEY");
    cmd = (struct client_cmd){ .word = "get", .key = big, .key_len = PROTO_MAX_KEY + 1,
                               .n_args = 1 };
    ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    ck_assert_str_eq(err, "key too long");
    cmd = (struct client_cmd){ .word = "set", .key = "k", .key_len = 1, .val = big,
                               .val_len = PROTO_MAX_VALUE + 1, .n_args = 2 };
    ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    ck_assert_str_eq(err, "value too long");
    cmd.val_len = PROTO_MAX_VALUE;
    ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert(client_is_command_word("DELETE") && !client_is_command_word("del"));
}
END_TEST

/* Keys are words: a key from argv (one-shot mode) or with a control byte (stdin mode)
 * that holds whitespace or a control character is refused for get and set; delete may
 * still name one, to remove a key stored before the rule. Other bytes (UTF-8) are fine. */
START_TEST(test_keys_are_words)
{
    static const char *const bad[] = { "a b", "a\tb", " a", "a\n", "a\x01", "a\x7f", "\x1b[0m" };
    uint8_t op = 0;
    char err[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct client_cmd cmd = { .word = "set", .key = bad[i], .key_len = strlen(bad[i]),
                                  .val = "v", .val_len = 1, .n_args = 2 };
        ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
        ck_assert_str_eq(err, PROTO_ERR_KEY_NOT_WORD);
        cmd = (struct client_cmd){ .word = "get", .key = bad[i], .key_len = strlen(bad[i]),
                                   .n_args = 1 };
        ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
        cmd.word = "delete";
        ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_SERVER);
        ck_assert(!proto_key_is_word(bad[i], (uint32_t)strlen(bad[i])));
    }
    /* rev and cas too; cad, like delete, may name such a key */
    struct client_cmd word = { .word = "cas", .key = "a b", .key_len = 3, .val = "0 v",
                               .val_len = 3, .n_args = 2 };
    ck_assert_int_eq(client_check_command(&word, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    word = (struct client_cmd){ .word = "rev", .key = "a b", .key_len = 3, .n_args = 1 };
    ck_assert_int_eq(client_check_command(&word, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    word = (struct client_cmd){ .word = "cad", .key = "a b", .key_len = 3, .val = "5",
                                .val_len = 1, .n_args = 2 };
    ck_assert_int_eq(client_check_command(&word, &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(check("set caf\xc3\xa9 x y", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert_int_eq(check("get a/b:c~!", &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert(proto_key_is_word("\x80\xff", 2) && proto_key_is_word("", 0));
}
END_TEST

/* The request of a valid watch line: its prefix and FROM (0: from now). */
static void expect_watch(const char *line, const char *prefix, uint64_t from)
{
    struct client_cmd cmd;
    uint8_t op = 0;
    char err[128];
    ck_assert(split(line, &cmd));
    ck_assert_msg(client_check_command(&cmd, &op, err, sizeof(err)) == CLIENT_CMD_SERVER,
                  "'%s': %s", line, err);
    ck_assert_uint_eq(op, PROTO_OP_WATCH);
    struct client_watch req;
    const char *why = "unset";
    ck_assert(client_watch_request(&cmd, &req, &why));
    ck_assert_ptr_null(why);
    ck_assert_uint_eq(req.prefix_len, strlen(prefix));
    ck_assert_mem_eq(req.prefix, prefix, req.prefix_len);
    ck_assert_uint_eq(req.from, from);
}

#define WATCH_USAGE "usage: watch PREFIX [--from REV]"
#define WATCH_BAD_REV "bad revision (a number >= 1); usage: watch PREFIX [--from REV]"

/* watch PREFIX [--from REV]: "" (two characters, or an empty argument) is every key. */
START_TEST(test_watch)
{
    expect_watch("watch user/", "user/", 0);
    expect_watch("WATCH \"\"", "", 0);
    expect_watch("watch user/ --from 1", "user/", 1);
    expect_watch("watch \"\"  --from   18446744073709551615 ", "", UINT64_MAX);
    expect_watch("watch --from", "--from", 0); /* a prefix like any other */
    ck_assert(client_is_command_word("watch") && client_is_command_word("Watch"));
    expect_invalid("watch", WATCH_USAGE);
    expect_invalid("watch p --from", WATCH_USAGE);
    expect_invalid("watch p --from 5 x", WATCH_USAGE);
    expect_invalid("watch p 5", WATCH_USAGE);
    expect_invalid("watch p --since 5", WATCH_USAGE);
    expect_invalid("watch --from 5", WATCH_USAGE); /* the prefix comes first */
    expect_invalid("watch p --from 0", WATCH_BAD_REV);
    expect_invalid("watch p --from x", WATCH_BAD_REV);
    expect_invalid("watch p --from 007", WATCH_BAD_REV);
    expect_invalid("watch p --from -3", WATCH_BAD_REV);
    expect_invalid("watch p --from 18446744073709551616", WATCH_BAD_REV);
    expect_invalid("watch a\x01/", PROTO_ERR_KEY_NOT_WORD);
    /* one-shot mode: an empty argument is the empty prefix; a non-word is refused */
    uint8_t op = 0;
    char err[128];
    struct client_watch req;
    const char *why;
    struct client_cmd cmd = { .word = "watch", .key = "", .key_len = 0, .n_args = 1 };
    ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_SERVER);
    ck_assert(client_watch_request(&cmd, &req, &why));
    ck_assert_uint_eq(req.prefix_len, 0);
    ck_assert_uint_eq(req.from, 0);
    cmd = (struct client_cmd){ .word = "watch", .key = "a b", .key_len = 3, .n_args = 1 };
    ck_assert_int_eq(client_check_command(&cmd, &op, err, sizeof(err)), CLIENT_CMD_INVALID);
    ck_assert_str_eq(err, PROTO_ERR_KEY_NOT_WORD);
    cmd = (struct client_cmd){ .word = "watch", .key = "", .key_len = 0, .val = "--from 42",
                               .val_len = 9, .n_args = 2 };
    ck_assert(client_watch_request(&cmd, &req, &why));
    ck_assert_uint_eq(req.from, 42);
    cmd = (struct client_cmd){ .word = "watch", .n_args = 0 };
    ck_assert(!client_watch_request(&cmd, NULL, &why));
    ck_assert_str_eq(why, "usage: ");
}
END_TEST

static Suite *client_parse_suite(void)
{
    Suite *s = suite_create("client_parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_ttl_commands);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_keys_are_words);
    tcase_add_test(tc, test_watch);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(client_parse_suite)
