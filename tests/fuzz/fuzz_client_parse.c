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

static void fz_cli_check_command(const struct client_cmd *cmd)
{
    uint8_t op = 0;
    char err[128] = "";
    enum client_cmd_kind k = client_check_command(cmd, &op, err, sizeof(err));
    switch (k) {
    case CLIENT_CMD_SERVER:
        FUZZ_CHECK(op >= PROTO_OP_GET && op <= PROTO_OP_STATUS);
        FUZZ_CHECK(cmd->key_len <= PROTO_MAX_KEY && cmd->val_len <= PROTO_MAX_VALUE);
        FUZZ_CHECK((op != PROTO_OP_GET && op != PROTO_OP_SET) ||
                   proto_key_is_word(cmd->key, (uint32_t)cmd->key_len)); /* keys are words */
        FUZZ_CHECK(op == PROTO_OP_STATUS ? cmd->n_args == 0
                                         : cmd->key != NULL && cmd->key_len > 0);
        FUZZ_CHECK(op != PROTO_OP_SET || cmd->val != NULL);
        FUZZ_CHECK(op == PROTO_OP_SET || cmd->val == NULL);
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
