/* tests/fuzz/fuzz_client_parse.c - fuzz target: one line of raft_client input through
 * client_parse_line and client_check_command (client/parse.c), as client/main.c runs a
 * script line (trailing newlines cut, the line ends at a NUL). Oracles: a line is blank
 * exactly when it holds only blanks; the word and key are non-empty runs of non-blanks
 * inside the line, the value starts with a non-blank and runs to the end; a command is
 * sent to the server only with the right number of arguments and sizes in the limits. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "../../client/parse.h"
#include "../../common/proto.h"
#include "fuzz.h"

static bool fz_cli_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* s[0..len) is inside [line, end) and holds no blank and no NUL. */
static bool fz_cli_word_in(const char *s, size_t len, const char *line, const char *end)
{
    if (s < line || s + len > end || len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (fz_cli_blank(s[i]) || s[i] == '\0')
            return false;
    return true;
}

static void fz_cli_check_split(const struct client_cmd *cmd, const char *line,
                               const char *end)
{
    FUZZ_CHECK(fz_cli_word_in(cmd->word, strlen(cmd->word), line, end));
    FUZZ_CHECK(cmd->n_args >= 0 && cmd->n_args <= 2);
    FUZZ_CHECK((cmd->key != NULL) == (cmd->n_args >= 1));
    FUZZ_CHECK((cmd->val != NULL) == (cmd->n_args == 2));
    if (cmd->key != NULL) {
        FUZZ_CHECK(fz_cli_word_in(cmd->key, cmd->key_len, line, end));
        FUZZ_CHECK(cmd->key > cmd->word + strlen(cmd->word));
    }
    if (cmd->val != NULL) {
        FUZZ_CHECK(cmd->val >= cmd->key + cmd->key_len && cmd->val + cmd->val_len == end);
        FUZZ_CHECK(cmd->val_len == strlen(cmd->val) && !fz_cli_blank(cmd->val[0]));
    }
}

static bool fz_cli_op_in(uint8_t op, const uint8_t *ops, size_t n)
{
    return memchr(ops, op, n) != NULL;
}

/* A command sent to the server: a known op, the sizes in the limits, the right arguments,
 * and a key that is a word where the key names a key to read or write. */
static void fz_cli_check_server_command(const struct client_cmd *cmd, uint8_t op)
{
    static const uint8_t word_key[] = { PROTO_OP_GET, PROTO_OP_SET, PROTO_OP_REV,
                                        PROTO_OP_CAS, PROTO_OP_SCAN };
    static const uint8_t no_args[] = { PROTO_OP_STATUS, PROTO_OP_MEMBERS };
    static const uint8_t with_val[] = { PROTO_OP_SET, PROTO_OP_CAS, PROTO_OP_CAD, PROTO_OP_ADD };
    static const uint8_t no_val[] = { PROTO_OP_GET, PROTO_OP_DELETE, PROTO_OP_REV,
                                      PROTO_OP_STATUS, PROTO_OP_MEMBERS, PROTO_OP_TRANSFER };
    FUZZ_CHECK(op >= PROTO_OP_GET && op <= PROTO_OP_LAST && op != PROTO_OP_REGISTER);
    FUZZ_CHECK(cmd->key_len <= PROTO_MAX_KEY && cmd->val_len <= PROTO_MAX_VALUE);
    FUZZ_CHECK(!fz_cli_op_in(op, word_key, sizeof(word_key)) ||
               proto_key_is_word(cmd->key, (uint32_t)cmd->key_len)); /* keys are words */
    if (fz_cli_op_in(op, no_args, sizeof(no_args)))
        FUZZ_CHECK(cmd->n_args == 0);
    else if (op != PROTO_OP_TRANSFER)
        FUZZ_CHECK(cmd->key != NULL && cmd->key_len > 0);
    FUZZ_CHECK(!fz_cli_op_in(op, with_val, sizeof(with_val)) || cmd->val != NULL);
    FUZZ_CHECK(!fz_cli_op_in(op, no_val, sizeof(no_val)) || cmd->val == NULL);
}

static void fz_cli_check_command(const struct client_cmd *cmd)
{
    uint8_t op = 0;
    char err[128] = "";
    enum client_cmd_kind k = client_check_command(cmd, &op, err, sizeof(err));
    switch (k) {
    case CLIENT_CMD_SERVER:
        fz_cli_check_server_command(cmd, op);
        break;
    case CLIENT_CMD_HELP:
        FUZZ_CHECK(strcasecmp(cmd->word, "help") == 0);
        break;
    case CLIENT_CMD_QUIT:
        FUZZ_CHECK(strcasecmp(cmd->word, "quit") == 0 || strcasecmp(cmd->word, "exit") == 0);
        break;
    case CLIENT_CMD_INVALID:
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        break;
    default:
        FUZZ_CHECK(!"unknown kind");
    }
    FUZZ_CHECK(client_is_command_word(cmd->word) == (k != CLIENT_CMD_INVALID ||
                                                     strncmp(err, "unknown", 7) != 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char *line = malloc(size + 1);
    FUZZ_CHECK(line != NULL);
    memcpy(line, data, size);
    line[size] = '\0';
    size_t n = strlen(line); /* like a C string from getline: it ends at a NUL */
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    bool blank = true;
    for (size_t i = 0; i < n; i++)
        blank = blank && fz_cli_blank(line[i]);
    struct client_cmd cmd;
    bool got = client_parse_line(line, &cmd);
    FUZZ_CHECK(got == !blank);
    if (got) {
        fz_cli_check_split(&cmd, line, line + n);
        fz_cli_check_command(&cmd);
    }
    free(line);
    return 0;
}
