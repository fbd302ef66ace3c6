/* client/parse.h - the raft_client command language, with no I/O: splitting a command
 * line into the command word, the key and the value, and checking a command's words. */
#ifndef RK_CLIENT_PARSE_H
#define RK_CLIENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/proto.h"

/* One parsed command: the word, then its key and the value (the rest). n_args counts the
 * words after the command word (2 means "a value is present"). Pointers are into the
 * caller's line (or argv); key and val are NULL when absent. */
struct client_cmd {
    const char *word;
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
    int n_args;
};

enum client_cmd_kind {
    CLIENT_CMD_SERVER,  /* a request for the server: set, get, delete, status, rev, cas,
                           cad, scan, watch (a stream) and the cluster commands */
    CLIENT_CMD_HELP,
    CLIENT_CMD_QUIT,    /* quit or exit */
    CLIENT_CMD_INVALID, /* unknown word, wrong arguments, key or value too long */
};

/* The wire request of a cluster command: key NAME, and for add "HOST PORT[ learner]",
 * for remove "force" or "". */
struct client_admin {
    char key[64];
    char val[300];
};

/* The request of a checked scan (scan PREFIX [LIMIT [AFTER]]): the prefix ("" in a
 * line, or an empty argument, stands for the empty one), and the value "LIMIT [AFTER]"
 * (LIMIT PROTO_SCAN_LIMIT_DEFAULT when not given). NULL out: only check. false if
 * malformed. */
struct client_scan {
    const char *prefix;
    size_t prefix_len;
    char val[PROTO_MAX_KEY + 32];
};
bool client_scan_request(const struct client_cmd *cmd, struct client_scan *out);

/* The request of a checked watch (watch PREFIX [--from REV]): the prefix (as for scan),
 * and from = REV (0 without --from: from now). NULL out: only check. false if malformed,
 * with the reason in why (a static string to put before the usage). */
struct client_watch {
    const char *prefix;
    size_t prefix_len;
    uint64_t from;
};
bool client_watch_request(const struct client_cmd *cmd, struct client_watch *out,
                          const char **why);

/* The wire request of a checked setex KEY SECONDS VALUE, expire KEY SECONDS or
 * cas --ttl SECONDS KEY REV VALUE: op (PROTO_OP_SETEX, _EXPIRE or _CAS_TTL), the key, and
 * the value with SECONDS as milliseconds: "MS VALUE", "MS" or "MS REV VALUE" (val is
 * malloc'ed: free it). With out NULL, only checks. false if malformed, with the reason in
 * why (a static string). */
struct client_ttl_req {
    uint8_t op;
    const char *key;
    size_t key_len;
    char *val;
    size_t val_len;
};
bool client_ttl_request(const struct client_cmd *cmd, uint8_t op, struct client_ttl_req *out,
                        const char **why);
/* Whether cmd is a cas with --ttl. */
bool client_cmd_is_cas_ttl(const struct client_cmd *cmd);

/* True if w is a command word (any case): set get delete status add remove members
 * transfer rev cas cad scan setex expire ttl watch help quit exit. */
bool client_is_command_word(const char *w);

/* Splits line (NUL-terminated, newline removed) in place: the command word, the key, and
 * the value = the rest after the key and one run of blanks (space, \t, \r, \n, \v, \f).
 * Returns false for a blank line. */
bool client_parse_line(char *line, struct client_cmd *cmd);

/* What cmd is. For CLIENT_CMD_SERVER *op gets the PROTO_OP_*; for CLIENT_CMD_INVALID err
 * gets the reason printed after "ERR ", e.g. "usage: get KEY", "key too long",
 * "unknown command 'x' (try help)". Keys must be non-empty; keys and values must fit the
 * protocol's limits (PROTO_MAX_KEY, PROTO_MAX_VALUE). */
enum client_cmd_kind client_check_command(const struct client_cmd *cmd, uint8_t *op, char *err,
                                          size_t errlen);
/* The request of a checked add (add [--learner] NAME HOST PORT), remove (remove [--force]
 * NAME) or transfer ([NAME]) into out (NULL: only check). false if malformed. */
bool client_admin_request(const struct client_cmd *cmd, uint8_t op, struct client_admin *out);

#endif
