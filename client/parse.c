/* client/parse.c - the raft_client command language (client/parse.h): line splitting and
 * command checks, shared by client/main.c and the fuzzer (tests/fuzz/fuzz_client_parse.c). */
#include "parse.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/proto.h"

/* The commands sent to a server; n_args bounds (set takes every word after KEY). */
static const struct server_command {
    const char *word, *usage;
    uint8_t op;
    int min_args, max_args;
} SERVER_COMMANDS[] = {
    { "set", "set KEY VALUE", PROTO_OP_SET, 2, INT_MAX },
    { "get", "get KEY", PROTO_OP_GET, 1, 1 },
    { "delete", "delete KEY", PROTO_OP_DELETE, 1, 1 },
    { "status", "status", PROTO_OP_STATUS, 0, 0 },
};

bool client_is_command_word(const char *w)
{
    static const char *const words[] = { "set", "get", "delete", "status", "help", "quit",
                                         "exit" };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(w, words[i]) == 0)
            return true;
    return false;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

bool client_parse_line(char *line, struct client_cmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    char *p = line;
    while (is_blank(*p))
        p++;
    if (*p == '\0')
        return false;
    cmd->word = p;
    while (*p != '\0' && !is_blank(*p))
        p++;
    if (*p != '\0')
        *p++ = '\0';
    while (is_blank(*p))
        p++;
    if (*p == '\0')
        return true;
    cmd->key = p;
    while (*p != '\0' && !is_blank(*p))
        p++;
    cmd->key_len = (size_t)(p - cmd->key);
    cmd->n_args = 1;
    while (is_blank(*p))
        p++;
    if (*p != '\0') {
        cmd->val = p;
        cmd->val_len = strlen(p);
        cmd->n_args = 2;
    }
    return true;
}

static enum client_cmd_kind invalid(char *err, size_t errlen, const char *prefix,
                                    const char *text)
{
    snprintf(err, errlen, "%s%s", prefix, text);
    return CLIENT_CMD_INVALID;
}

enum client_cmd_kind client_check_command(const struct client_cmd *cmd, uint8_t *op, char *err,
                                          size_t errlen)
{
    const char *w = cmd->word;
    if (strcasecmp(w, "quit") == 0 || strcasecmp(w, "exit") == 0)
        return CLIENT_CMD_QUIT;
    if (strcasecmp(w, "help") == 0)
        return CLIENT_CMD_HELP;
    for (size_t i = 0; i < sizeof(SERVER_COMMANDS) / sizeof(SERVER_COMMANDS[0]); i++) {
        const struct server_command *sc = &SERVER_COMMANDS[i];
        if (strcasecmp(w, sc->word) != 0)
            continue;
        if (cmd->n_args < sc->min_args || cmd->n_args > sc->max_args ||
            (cmd->key != NULL && cmd->key_len == 0))
            return invalid(err, errlen, "usage: ", sc->usage);
        if (cmd->key_len > PROTO_MAX_KEY)
            return invalid(err, errlen, "", "key too long");
        if (cmd->val_len > PROTO_MAX_VALUE)
            return invalid(err, errlen, "", "value too long");
        *op = sc->op;
        return CLIENT_CMD_SERVER;
    }
    snprintf(err, errlen, "unknown command '%.64s' (try help)", w);
    return CLIENT_CMD_INVALID;
}
