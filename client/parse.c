/* client/parse.c - the raft_client command language (client/parse.h): line splitting and
 * command checks, shared by client/main.c and the fuzzer (tests/fuzz/fuzz_client_parse.c). */
#include "parse.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/errors.h"
#include "../common/proto.h"

#define WATCH_USAGE "watch PREFIX [--from REV]"

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
    { "setex", "setex KEY SECONDS VALUE", PROTO_OP_SETEX, 2, INT_MAX },
    { "expire", "expire KEY SECONDS", PROTO_OP_EXPIRE, 2, 2 },
    { "ttl", "ttl KEY", PROTO_OP_TTL, 1, 1 },
    { "watch", WATCH_USAGE, PROTO_OP_WATCH, 1, INT_MAX },
};

#define CAS_TTL_USAGE "cas --ttl SECONDS KEY REV VALUE"

bool client_is_command_word(const char *w)
{
    static const char *const words[] = { "set", "get", "delete", "status", "add", "remove",
                                         "members", "transfer", "rev", "cas", "cad", "scan",
                                         "setex", "expire", "ttl", "watch", "help", "quit",
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
           op == PROTO_OP_CAS || op == PROTO_OP_SCAN || op == PROTO_OP_SETEX ||
           op == PROTO_OP_EXPIRE || op == PROTO_OP_TTL || op == PROTO_OP_WATCH;
}

bool client_cmd_is_cas_ttl(const struct client_cmd *cmd)
{
    return strcasecmp(cmd->word, "cas") == 0 && cmd->key != NULL &&
           word_is(cmd->key, cmd->key_len, "--ttl");
}

/* What follows one run of blanks from s (to end). */
static const char *skip_blanks(const char *s, const char *end)
{
    while (s < end && is_blank(*s))
        s++;
    return s;
}

/* The parts of a setex, expire or cas --ttl: SECONDS, the key and the rest after them. */
struct ttl_parts {
    const char *secs, *key, *rest;
    size_t secs_len, key_len, rest_len;
};

static void split_ttl(const struct client_cmd *cmd, uint8_t op, struct ttl_parts *p)
{
    const char *end = cmd->val + cmd->val_len, *after;
    after = next_word(cmd->val, cmd->val_len, &p->secs, &p->secs_len);
    p->key = cmd->key;
    p->key_len = cmd->key_len;
    if (op == PROTO_OP_CAS) /* --ttl SECONDS KEY REV VALUE */
        after = next_word(after, (size_t)(end - after), &p->key, &p->key_len);
    p->rest = skip_blanks(after, end);
    p->rest_len = (size_t)(end - p->rest);
}

/* Why the parts do not make a request of op, or NULL. */
static const char *ttl_parts_bad(const struct ttl_parts *p, uint8_t op, uint64_t *ms)
{
    uint64_t rev;
    const char *after;
    uint32_t after_len;
    if (proto_parse_seconds(p->secs, p->secs_len, ms) != RK_OK)
        return "bad SECONDS (a number of seconds, decimals allowed, 0.1 to 315360000); usage: ";
    if (p->key_len == 0 || (op == PROTO_OP_EXPIRE) != (p->rest_len == 0))
        return "usage: ";
    if (p->key_len > PROTO_MAX_KEY)
        return "key too long";
    if (!proto_key_is_word(p->key, (uint32_t)p->key_len))
        return PROTO_ERR_KEY_NOT_WORD;
    if (op == PROTO_OP_CAS &&
        proto_parse_rev(p->rest, (uint32_t)p->rest_len, &rev, &after, &after_len) != RK_OK)
        return "bad revision (a number; 0: the key must be absent); usage: ";
    return NULL;
}

bool client_ttl_request(const struct client_cmd *cmd, uint8_t op, struct client_ttl_req *out,
                        const char **why)
{
    struct ttl_parts p;
    uint64_t ms = 0;
    if (cmd->val == NULL) {
        *why = "usage: ";
        return false;
    }
    split_ttl(cmd, op, &p);
    *why = ttl_parts_bad(&p, op, &ms);
    if (*why != NULL || out == NULL)
        return *why == NULL;
    out->op = op == PROTO_OP_CAS ? PROTO_OP_CAS_TTL : op;
    out->key = p.key;
    out->key_len = p.key_len;
    out->val = malloc(24 + p.rest_len);
    if (out->val == NULL) {
        *why = "out of memory";
        return false;
    }
    int n = snprintf(out->val, 24, "%llu%s", (unsigned long long)ms, p.rest_len > 0 ? " " : "");
    memcpy(out->val + n, p.rest, p.rest_len);
    out->val_len = (size_t)n + p.rest_len;
    return true;
}

/* The checks of a setex, expire or cas --ttl (whose words are not in the usual places). */
static enum client_cmd_kind check_ttl_command(const struct client_cmd *cmd, uint8_t op,
                                              const char *usage, uint8_t *out_op, char *err,
                                              size_t errlen)
{
    const char *why;
    if (!client_ttl_request(cmd, op, NULL, &why)) { /* "...usage: " gets the usage */
        size_t len = strlen(why);
        bool with_usage = len >= 2 && strcmp(why + len - 2, ": ") == 0;
        snprintf(err, errlen, "%s%s", why, with_usage ? usage : "");
        return CLIENT_CMD_INVALID;
    }
    if (cmd->val_len > PROTO_MAX_VALUE) {
        snprintf(err, errlen, "value too long");
        return CLIENT_CMD_INVALID;
    }
    *out_op = op == PROTO_OP_CAS ? PROTO_OP_CAS_TTL : op;
    return CLIENT_CMD_SERVER;
}

/* Commands whose key is a prefix, which may be empty (an empty argument, or "" in a line). */
static bool takes_prefix(uint8_t op)
{
    return op == PROTO_OP_SCAN || op == PROTO_OP_WATCH;
}

static bool is_empty_prefix(const struct client_cmd *cmd)
{
    return cmd->key_len == 2 && memcmp(cmd->key, "\"\"", 2) == 0;
}

bool client_scan_request(const struct client_cmd *cmd, struct client_scan *out)
{
    uint32_t limit = PROTO_SCAN_LIMIT_DEFAULT, after_len = 0;
    const char *after = NULL;
    if (cmd->val != NULL &&
        proto_parse_scan(cmd->val, (uint32_t)cmd->val_len, &limit, &after, &after_len) != RK_OK)
        return false;
    bool empty = is_empty_prefix(cmd);
    if (out == NULL)
        return true;
    out->prefix = cmd->key;
    out->prefix_len = empty ? 0 : cmd->key_len;
    int n = after == NULL ? snprintf(out->val, sizeof(out->val), "%u", limit)
                          : snprintf(out->val, sizeof(out->val), "%u %.*s", limit,
                                     (int)after_len, after);
    return n > 0 && (size_t)n < sizeof(out->val);
}

/* A watch's words after the prefix: none, or "--from REV" (REV >= 1). NULL if fine. */
static const char *watch_from(const char *val, size_t len, uint64_t *from)
{
    const char *w[3], *rest = val, *end = val + len;
    size_t wl[3];
    for (int i = 0; i < 3; i++)
        rest = next_word(rest, (size_t)(end - rest), &w[i], &wl[i]);
    if (!word_is(w[0], wl[0], "--from") || wl[1] == 0 || wl[2] != 0)
        return "usage: ";
    if (proto_parse_watch(w[1], (uint32_t)wl[1], from) != RK_OK)
        return "bad revision (a number >= 1); usage: ";
    return NULL;
}

bool client_watch_request(const struct client_cmd *cmd, struct client_watch *out,
                          const char **why)
{
    uint64_t from = 0;
    *why = cmd->key == NULL ? "usage: " : NULL;
    if (*why == NULL && cmd->val != NULL)
        *why = watch_from(cmd->val, cmd->val_len, &from);
    if (*why != NULL || out == NULL)
        return *why == NULL;
    out->prefix = cmd->key;
    out->prefix_len = is_empty_prefix(cmd) ? 0 : cmd->key_len;
    out->from = from;
    return true;
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
    const char *w = cmd->word, *why;
    if (strcasecmp(w, "quit") == 0 || strcasecmp(w, "exit") == 0)
        return CLIENT_CMD_QUIT;
    if (strcasecmp(w, "help") == 0)
        return CLIENT_CMD_HELP;
    for (size_t i = 0; i < sizeof(SERVER_COMMANDS) / sizeof(SERVER_COMMANDS[0]); i++) {
        const struct server_command *sc = &SERVER_COMMANDS[i];
        if (strcasecmp(w, sc->word) != 0)
            continue;
        if (sc->op == PROTO_OP_CAS && client_cmd_is_cas_ttl(cmd))
            return check_ttl_command(cmd, sc->op, CAS_TTL_USAGE, op, err, errlen);
        if (cmd->n_args < sc->min_args || cmd->n_args > sc->max_args ||
            (cmd->key != NULL && cmd->key_len == 0 && !takes_prefix(sc->op)))
            return invalid(err, errlen, "usage: ", sc->usage);
        if (sc->op == PROTO_OP_SETEX || sc->op == PROTO_OP_EXPIRE)
            return check_ttl_command(cmd, sc->op, sc->usage, op, err, errlen);
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
        if (sc->op == PROTO_OP_WATCH && !client_watch_request(cmd, NULL, &why))
            return invalid(err, errlen, why, sc->usage);
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
