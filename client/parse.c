/* client/parse.c - the raft_client command language (client/parse.h): line splitting and
 * command checks, shared by client/main.c and the fuzzer (tests/fuzz/fuzz_client_parse.c). */
#include "parse.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../common/errors.h"
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
    { "add", "add [--learner] NAME HOST PORT", PROTO_OP_ADD, 2, INT_MAX },
    { "remove", "remove [--force] NAME", PROTO_OP_REMOVE, 1, 2 },
    { "members", "members", PROTO_OP_MEMBERS, 0, 0 },
    { "transfer", "transfer [NAME]", PROTO_OP_TRANSFER, 0, 1 },
    { "rev", "rev KEY", PROTO_OP_REV, 1, 1 },
    { "cas", "cas KEY REV VALUE", PROTO_OP_CAS, 2, INT_MAX },
    { "cad", "cad KEY REV", PROTO_OP_CAD, 2, 2 },
    { "scan", "scan PREFIX [LIMIT [AFTER]]", PROTO_OP_SCAN, 1, INT_MAX },
};

bool client_is_command_word(const char *w)
{
    static const char *const words[] = { "set", "get", "delete", "status", "add", "remove",
                                         "members", "transfer", "rev", "cas", "cad", "scan",
                                         "help", "quit", "exit" };
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

/* The next word of s[0..len) (blanks skipped): *w, *wlen; returns what follows it. */
static const char *next_word(const char *s, size_t len, const char **w, size_t *wlen)
{
    const char *end = s + len;
    while (s < end && is_blank(*s))
        s++;
    *w = s;
    while (s < end && !is_blank(*s))
        s++;
    *wlen = (size_t)(s - *w);
    return s;
}

static bool word_is(const char *w, size_t len, const char *text)
{
    return len == strlen(text) && strncmp(w, text, len) == 0;
}

/* add [--learner] NAME HOST PORT: the value holds "HOST PORT[ learner]". */
static bool admin_add(const struct client_cmd *cmd, struct client_admin *out)
{
    const char *rest = cmd->val, *w[4];
    size_t len = cmd->val_len, wl[4];
    bool learner = word_is(cmd->key, cmd->key_len, "--learner");
    int want = learner ? 3 : 2, n = 0;
    while (n < 4) {
        rest = next_word(rest, len - (size_t)(rest - cmd->val), &w[n], &wl[n]);
        if (wl[n] == 0)
            break;
        n++;
    }
    if (n != want)
        return false;
    const char *name = learner ? w[0] : cmd->key;
    size_t name_len = learner ? wl[0] : cmd->key_len;
    int host = learner ? 1 : 0;
    if (out == NULL)
        return true;
    return snprintf(out->key, sizeof(out->key), "%.*s", (int)name_len, name) < (int)sizeof(out->key) &&
           snprintf(out->val, sizeof(out->val), "%.*s %.*s%s", (int)wl[host], w[host],
                    (int)wl[host + 1], w[host + 1], learner ? " learner" : "") <
               (int)sizeof(out->val);
}

/* remove [--force] NAME. */
static bool admin_remove(const struct client_cmd *cmd, struct client_admin *out)
{
    bool force = word_is(cmd->key, cmd->key_len, "--force");
    const char *name = force ? cmd->val : cmd->key;
    size_t name_len = force ? cmd->val_len : cmd->key_len;
    if (name == NULL || name_len == 0 || (force != (cmd->n_args == 2)) ||
        memchr(name, ' ', name_len) != NULL)
        return false;
    if (out == NULL)
        return true;
    snprintf(out->val, sizeof(out->val), "%s", force ? "force" : "");
    return snprintf(out->key, sizeof(out->key), "%.*s", (int)name_len, name) <
           (int)sizeof(out->key);
}

bool client_admin_request(const struct client_cmd *cmd, uint8_t op, struct client_admin *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (op == PROTO_OP_ADD)
        return cmd->n_args >= 2 && admin_add(cmd, out);
    if (op == PROTO_OP_REMOVE)
        return admin_remove(cmd, out);
    if (out != NULL && cmd->key != NULL) /* transfer [NAME] */
        snprintf(out->key, sizeof(out->key), "%.*s", (int)cmd->key_len, cmd->key);
    return true;
}

static enum client_cmd_kind invalid(char *err, size_t errlen, const char *prefix,
                                    const char *text)
{
    snprintf(err, errlen, "%s%s", prefix, text);
    return CLIENT_CMD_INVALID;
}

/* Commands whose key is a key of the map that must be a word (delete may still name a
 * key stored before the rule, to remove it). */
static bool names_key(uint8_t op)
{
    return op == PROTO_OP_GET || op == PROTO_OP_SET || op == PROTO_OP_REV ||
           op == PROTO_OP_CAS || op == PROTO_OP_SCAN;
}

bool client_scan_request(const struct client_cmd *cmd, struct client_scan *out)
{
    uint32_t limit = PROTO_SCAN_LIMIT_DEFAULT, after_len = 0;
    const char *after = NULL;
    if (cmd->val != NULL &&
        proto_parse_scan(cmd->val, (uint32_t)cmd->val_len, &limit, &after, &after_len) != RK_OK)
        return false;
    bool empty = cmd->key_len == 2 && memcmp(cmd->key, "\"\"", 2) == 0; /* "" */
    if (out == NULL)
        return true;
    out->prefix = cmd->key;
    out->prefix_len = empty ? 0 : cmd->key_len;
    int n = after == NULL ? snprintf(out->val, sizeof(out->val), "%u", limit)
                          : snprintf(out->val, sizeof(out->val), "%u %.*s", limit,
                                     (int)after_len, after);
    return n > 0 && (size_t)n < sizeof(out->val);
}

/* A cas value "REV VALUE" or a cad value "REV" whose REV is a revision (a number). */
static bool rev_ok(uint8_t op, const struct client_cmd *cmd)
{
    uint64_t rev;
    const char *rest;
    uint32_t rest_len;
    if (op != PROTO_OP_CAS && op != PROTO_OP_CAD)
        return true;
    if (proto_parse_rev(cmd->val, (uint32_t)cmd->val_len, &rev, &rest, &rest_len) != RK_OK)
        return false;
    return op == PROTO_OP_CAS || rest == cmd->val + cmd->val_len;
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
            (cmd->key != NULL && cmd->key_len == 0 && sc->op != PROTO_OP_SCAN))
            return invalid(err, errlen, "usage: ", sc->usage);
        if (cmd->key_len > PROTO_MAX_KEY)
            return invalid(err, errlen, "", "key too long");
        if (names_key(sc->op) && !proto_key_is_word(cmd->key, (uint32_t)cmd->key_len))
            return invalid(err, errlen, "", PROTO_ERR_KEY_NOT_WORD);
        if (!rev_ok(sc->op, cmd))
            return invalid(err, errlen, "bad revision (a number; 0: the key must be absent); "
                           "usage: ", sc->usage);
        if (sc->op == PROTO_OP_SCAN && !client_scan_request(cmd, NULL))
            return invalid(err, errlen, "bad scan (LIMIT 1..10000, AFTER a key); usage: ",
                           sc->usage);
        if (cmd->val_len > PROTO_MAX_VALUE)
            return invalid(err, errlen, "", "value too long");
        *op = sc->op;
        if ((sc->op == PROTO_OP_ADD || sc->op == PROTO_OP_REMOVE) &&
            !client_admin_request(cmd, sc->op, NULL))
            return invalid(err, errlen, "usage: ", sc->usage);
        return CLIENT_CMD_SERVER;
    }
    snprintf(err, errlen, "unknown command '%.64s' (try help)", w);
    return CLIENT_CMD_INVALID;
}
