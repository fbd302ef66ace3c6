/* client/main.c - the raft_client program: runs set/get/delete/status and the cluster
 * commands (add, remove, members, transfer) against the cluster,
 * from the command line, from a script on stdin (one output line per command) or at a prompt;
 * and watch, which streams changes until interrupted (client/watch.c). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "parse.h"
#include "session.h"
#include "targets.h"
#include "watch.h"

#define CLIENT_DEFAULT_DIR "logs"
#define CLIENT_DEFAULT_TIMEOUT_MS 5000
#define CLIENT_MAX_TIMEOUT_SEC 86400.0
#define CLIENT_EXIT_USAGE 2

struct client_opts {
    const char *host;    /* NULL: the registry only */
    uint16_t port;
    const char *dir;
    int timeout_ms;
    bool verbose;        /* note redirects and retries on stderr (-q turns it off) */
    char **cmd;          /* the command words given on the command line (n_cmd of them) */
    int n_cmd;
};

/* What the program needs to run commands; the session is opened at the first command
 * that needs a server (and retried at the next one if that failed). */
struct client_ctx {
    const struct client_opts *opts;
    char registry_path[4096];
    struct client_session *session;
    bool verbose;
    bool keeps_running;  /* stdin mode: the session learns the members as they change */
};

/* CMD_WATCH_ENDED: a watch stopped (on an ERR): read no more commands, exit 1. */
enum cmd_result { CMD_OK, CMD_ERR, CMD_QUIT, CMD_WATCH_ENDED };

static const char *const USAGE_LINES[] = {
    "usage: raft_client [HOST PORT] [--dir DIR] [--timeout SEC] [-v|-q] [COMMAND ARGS...]",
    "  HOST PORT      the server to ask first; DIR/server_registry.txt gives the others",
    "  --dir DIR      where server_registry.txt is (default logs)",
    "  --timeout SEC  how long one command may retry, decimals allowed (default 5)",
    "  -v, -q         note redirects and retries on stderr (the default), or not",
    "commands:",
    "  set KEY VALUE  store VALUE (the rest of the line) under KEY; prints OK",
    "  get KEY        prints the value, or (nil)",
    "  delete KEY     prints OK if a key was removed, (nil) if there was none",
    "  status         prints the status line of the server connected to",
    "  add [--learner] NAME HOST PORT",
    "                 adds a server (started with --join); OK once it votes",
    "  remove [--force] NAME",
    "                 removes a server; OK once the configuration without it is committed",
    "  members        one line per member: NAME HOST PORT voter|learner, then (N members)",
    "  transfer [NAME]",
    "                 hands leadership to NAME (or the most up-to-date voter); OK once it leads",
    "  rev KEY        prints REV VALUE (the key's revision, then its value), or (nil)",
    "  cas KEY REV VALUE",
    "                 sets KEY to VALUE if its revision is REV (0: KEY must not exist);",
    "                 prints OK NEWREV, or FAILED CURREV (0: absent)",
    "  cas --ttl SECONDS KEY REV VALUE",
    "                 the same, and KEY is deleted SECONDS after it is set",
    "  cad KEY REV    deletes KEY if its revision is REV; prints OK, or FAILED CURREV",
    "  setex KEY SECONDS VALUE",
    "                 sets KEY to VALUE and deletes it SECONDS later (decimals allowed, at",
    "                 least 0.1); prints OK",
    "  expire KEY SECONDS",
    "                 KEY is deleted SECONDS from now; prints OK, or (nil) if it is absent",
    "  ttl KEY        prints the seconds KEY has left (rounded up), -1 if it has no deadline,",
    "                 or (nil)",
    "  scan PREFIX [LIMIT [AFTER]]",
    "                 the keys that start with PREFIX (\"\" for all), in byte order, after",
    "                 AFTER, at most LIMIT (default 100, at most 10000): KEY VALUE per line,",
    "                 then (N keys at rev R) or (N keys at rev R, more)",
    "  watch PREFIX [--from REV]",
    "                 one line per change to a key that starts with PREFIX (\"\" for all), in",
    "                 revision order, until interrupted: REV set KEY VALUE, REV delete KEY or",
    "                 REV expire KEY; from revision REV on, or from now; in a script, it must",
    "                 be the last command",
    "  help           this text",
    "  quit, exit     leave",
    "Without a command, commands are read from stdin: one output line per command line.",
};

static const char HELP_ONE_LINE[] =
    "commands: set KEY VALUE | get KEY | delete KEY | status | rev KEY | cas KEY REV VALUE | "
    "cas --ttl SECONDS KEY REV VALUE | cad KEY REV | scan PREFIX [LIMIT [AFTER]] | "
    "watch PREFIX [--from REV] | "
    "setex KEY SECONDS VALUE | expire KEY SECONDS | ttl KEY | add [--learner] NAME HOST PORT | "
    "remove [--force] NAME | members | transfer [NAME] | help | quit";

static void print_usage(FILE *f)
{
    for (size_t i = 0; i < sizeof(USAGE_LINES) / sizeof(USAGE_LINES[0]); i++)
        fprintf(f, "%s\n", USAGE_LINES[i]);
    fflush(f);
}

/* Writes len raw bytes and a newline to stdout, flushed (scripts read through pipes). */
static void print_line(const char *text, size_t len)
{
    if (len > 0)
        fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

/* "ERR reason" on one line: newlines in the reason become spaces. */
static void print_err(const char *reason, size_t len)
{
    fputs("ERR ", stdout);
    for (size_t i = 0; i < len; i++)
        fputc(reason[i] == '\n' || reason[i] == '\r' ? ' ' : reason[i], stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void print_errf(const char *reason)
{
    print_err(reason, strlen(reason));
}

/* A port number 1..65535 made of digits only. */
static bool parse_port(const char *s, uint16_t *port)
{
    if (s[0] == '\0' || strlen(s) > 5)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    long v = strtol(s, NULL, 10);
    if (v < 1 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool is_number(const char *s)
{
    if (s[0] == '\0')
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

/* Seconds, decimals allowed, > 0. */
static bool parse_timeout(const char *s, int *ms)
{
    char *end = NULL;
    errno = 0;
    double sec = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(sec) || sec <= 0 ||
        sec > CLIENT_MAX_TIMEOUT_SEC)
        return false;
    double v = sec * 1000.0 + 0.5;
    *ms = v < 1.0 ? 1 : (int)v;
    return true;
}

/* The value of an option given as "--opt VALUE" or "--opt=VALUE"; NULL if arg is not it.
 * *i moves past a separate VALUE. *missing is set when VALUE is absent. */
static const char *option_value(const char *name, int argc, char **argv, int *i, bool *missing)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "raft_client: %s%s%s\n", what, arg ? " " : "", arg ? arg : "");
    print_usage(stderr);
    return CLIENT_EXIT_USAGE;
}

/* Handles the option at argv[*i]. Returns 0 if it was one, 1 if argv[*i] is not an
 * option, or an exit code (2 for a bad option, -1 after --help). */
static int parse_option(int argc, char **argv, int *i, struct client_opts *o)
{
    const char *arg = argv[*i];
    bool missing = false;
    const char *v;
    if (arg[0] != '-' || arg[1] == '\0' || is_number(arg + 1))
        return 1;
    if ((v = option_value("--dir", argc, argv, i, &missing)) != NULL) {
        if (v[0] == '\0')
            return usage_error("empty --dir", NULL);
        o->dir = v;
    } else if ((v = option_value("--timeout", argc, argv, i, &missing)) != NULL) {
        if (!parse_timeout(v, &o->timeout_ms))
            return usage_error("bad --timeout (seconds > 0):", v);
    } else if (missing) {
        return usage_error("missing the value of", arg);
    } else if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
        o->verbose = true;
    } else if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0) {
        o->verbose = false;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        print_usage(stdout);
        return -1;
    } else {
        return usage_error("unknown option", arg);
    }
    return 0;
}

/* Parses argv into o. HOST PORT are taken when the first non-option word is not a
 * command word and the second is a number. Options stop at the command word: what
 * follows belongs to the command. Returns 0 to go on, -1 after --help, or an exit code. */
static int parse_args(int argc, char **argv, struct client_opts *o)
{
    const char *first = NULL;
    o->cmd = calloc((size_t)argc + 1, sizeof(*o->cmd));
    if (o->cmd == NULL) {
        fprintf(stderr, "raft_client: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (o->n_cmd > 0) {
            o->cmd[o->n_cmd++] = argv[i];
            continue;
        }
        int r = parse_option(argc, argv, &i, o);
        if (r != 1) {
            if (r != 0)
                return r; /* -1 after --help, or the exit code of a bad option */
            continue;
        }
        if (first == NULL && o->host == NULL && !client_is_command_word(argv[i])) {
            first = argv[i];
        } else if (first != NULL && is_number(argv[i])) {
            if (!parse_port(argv[i], &o->port))
                return usage_error("bad port (1..65535):", argv[i]);
            o->host = first;
            first = NULL;
        } else {
            if (first != NULL)
                o->cmd[o->n_cmd++] = (char *)first;
            first = NULL;
            o->cmd[o->n_cmd++] = argv[i];
        }
    }
    if (first != NULL)
        o->cmd[o->n_cmd++] = (char *)first;
    return 0;
}

/* The session, opened now if it is not yet; prints ERR and returns NULL on failure. */
static struct client_session *ctx_session(struct client_ctx *c)
{
    if (c->session != NULL)
        return c->session;
    char err[1024];
    const struct client_opts *o = c->opts;
    c->session = client_session_new(o->host, o->port, c->registry_path, o->timeout_ms,
                                    c->verbose, err, sizeof(err));
    if (c->session == NULL)
        print_errf(err);
    else
        client_session_learn_members(c->session, c->keeps_running);
    return c->session;
}

/* "WORD BODY" (OK NEWREV, FAILED CURREV): a word, then the revision the server sent. */
static void print_word_and(const struct client_reply *r, const char *word)
{
    printf("%s %.*s\n", word, (int)r->body_len, r->body);
    fflush(stdout);
}

/* SCAN: "KEY VALUE" per key, then "(N keys at rev R)" or "(N keys at rev R, more)". */
static enum cmd_result print_page(const struct client_reply *r)
{
    uint64_t rev;
    bool more;
    uint32_t n, off = PROTO_PAGE_HEAD, key_len, val_len, shown = 0;
    const char *key, *val;
    if (proto_page_head(r->body, r->body_len, &rev, &more, &n) != RK_OK) {
        print_errf("malformed scan answer");
        return CMD_ERR;
    }
    int rc;
    while ((rc = proto_page_next(r->body, r->body_len, &off, &key, &key_len, &val,
                                 &val_len)) == 1) {
        fwrite(key, 1, key_len, stdout);
        putchar(' ');
        fwrite(val, 1, val_len, stdout);
        putchar('\n');
        shown++;
    }
    if (rc != 0 || shown != n) {
        print_errf("malformed scan answer");
        return CMD_ERR;
    }
    printf("(%u key%s at rev %llu%s)\n", n, n == 1 ? "" : "s", (unsigned long long)rev,
           more ? ", more" : "");
    fflush(stdout);
    return CMD_OK;
}

/* MEMBERS: the lines, then "(N members)". */
static void print_members(const struct client_reply *r)
{
    int n = 0;
    for (uint32_t i = 0; i < r->body_len; i++)
        n += r->body[i] == '\n';
    if (r->body_len > 0)
        fwrite(r->body, 1, r->body_len, stdout);
    printf("(%d member%s)\n", n, n == 1 ? "" : "s");
    fflush(stdout);
}

/* The request's key and value: the command's words, or for a cluster command what
 * client_admin_request makes of them. */
static int call(struct client_session *s, uint8_t op, const struct client_cmd *cmd,
                struct client_reply *r, char *err, size_t errlen)
{
    struct client_admin a;
    if (op == PROTO_OP_SETEX || op == PROTO_OP_EXPIRE || op == PROTO_OP_CAS_TTL) {
        struct client_ttl_req t;
        const char *why;
        if (!client_ttl_request(cmd, op == PROTO_OP_CAS_TTL ? PROTO_OP_CAS : op, &t, &why)) {
            snprintf(err, errlen, "%s", why); /* checked already: out of memory */
            return RK_ERR_NOMEM;
        }
        int rc = client_session_call(s, t.op, t.key, (uint32_t)t.key_len, t.val,
                                     (uint32_t)t.val_len, r, err, errlen);
        free(t.val);
        return rc;
    }
    if (op == PROTO_OP_SCAN) {
        static struct client_scan sc; /* large: not on the stack */
        client_scan_request(cmd, &sc); /* checked by client_check_command */
        return client_session_call(s, op, sc.prefix, (uint32_t)sc.prefix_len, sc.val,
                                   (uint32_t)strlen(sc.val), r, err, errlen);
    }
    if (op != PROTO_OP_ADD && op != PROTO_OP_REMOVE && op != PROTO_OP_TRANSFER)
        return client_session_call(s, op, cmd->key, (uint32_t)cmd->key_len, cmd->val,
                                   (uint32_t)cmd->val_len, r, err, errlen);
    client_admin_request(cmd, op, &a); /* checked by client_check_command */
    return client_session_call(s, op, a.key, (uint32_t)strlen(a.key), a.val,
                               (uint32_t)strlen(a.val), r, err, errlen);
}

/* Sends the request and prints the one result line. */
static enum cmd_result run_request(struct client_ctx *c, uint8_t op, const struct client_cmd *cmd)
{
    struct client_session *s = ctx_session(c);
    if (s == NULL)
        return CMD_ERR;
    struct client_reply r;
    char err[512];
    int rc = call(s, op, cmd, &r, err, sizeof(err));
    if (rc != RK_OK) {
        print_errf(err);
        return CMD_ERR;
    }
    enum cmd_result res = CMD_OK;
    switch (r.status) {
    case PROTO_ST_OK:
        if (op == PROTO_OP_STATUS && r.body_len > 0)
            print_line(r.body, r.body_len); /* a status line sent as OK */
        else if (op == PROTO_OP_CAS || op == PROTO_OP_CAS_TTL)
            print_word_and(&r, "OK"); /* OK NEWREV */
        else
            print_line("OK", 2);
        break;
    case PROTO_ST_FAILED: /* a compare that did not hold: an answer, not an error */
        print_word_and(&r, "FAILED");
        break;
    case PROTO_ST_VALUE:
        if (op == PROTO_OP_MEMBERS)
            print_members(&r);
        else if (op == PROTO_OP_SCAN)
            res = print_page(&r);
        else
            print_line(r.body, r.body_len);
        break;
    case PROTO_ST_NIL:
        print_line("(nil)", 5);
        break;
    default:
        if (r.body_len > 0)
            print_err(r.body, r.body_len);
        else
            print_errf("server error");
        res = CMD_ERR;
        break;
    }
    client_reply_free(&r);
    return res;
}

/* watch: streams the changes until interrupted; returns only after an ERR (printed). The
 * servers: HOST PORT first (if given), then the registry's. */
static enum cmd_result run_watch(struct client_ctx *c, const struct client_cmd *cmd)
{
    const struct client_opts *o = c->opts;
    struct client_watch req;
    struct client_targets targets;
    const char *why;
    char err[1024];
    client_watch_request(cmd, &req, &why); /* checked by client_check_command */
    client_session_free(c->session);       /* no more commands after a watch */
    c->session = NULL;
    if (client_targets_load(&targets, o->host, o->port, c->registry_path, c->verbose, err,
                            sizeof(err)) != RK_OK) {
        print_errf(err);
        return CMD_WATCH_ENDED;
    }
    struct watch_opts wo = { .prefix = req.prefix, .prefix_len = req.prefix_len,
                             .from = req.from, .verbose = c->verbose };
    watch_run(&targets, &wo, stdout, err, sizeof(err));
    client_targets_free(&targets);
    print_errf(err);
    return CMD_WATCH_ENDED;
}

/* Runs one command and prints its one line (help at a prompt or on the command line
 * prints the full usage instead). */
static enum cmd_result run_command(struct client_ctx *c, const struct client_cmd *cmd,
                                   bool full_help)
{
    uint8_t op = 0;
    char err[128];
    switch (client_check_command(cmd, &op, err, sizeof(err))) {
    case CLIENT_CMD_QUIT:
        return CMD_QUIT;
    case CLIENT_CMD_HELP:
        if (full_help)
            print_usage(stdout);
        else
            print_line(HELP_ONE_LINE, strlen(HELP_ONE_LINE));
        return CMD_OK;
    case CLIENT_CMD_SERVER:
        return op == PROTO_OP_WATCH ? run_watch(c, cmd) : run_request(c, op, cmd);
    case CLIENT_CMD_INVALID:
        break;
    }
    print_errf(err);
    return CMD_ERR;
}

/* Reads commands from stdin until EOF or quit (or a watch, the last command: exit 1 if
 * it ends). At a terminal it prompts "raft> ". */
static int run_stdin(struct client_ctx *c, bool interactive)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        if (interactive) {
            fputs("raft> ", stdout);
            fflush(stdout);
        }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0)
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        struct client_cmd cmd;
        if (!client_parse_line(line, &cmd))
            continue;
        enum cmd_result r = run_command(c, &cmd, interactive);
        if (r == CMD_WATCH_ENDED)
            rc = 1;
        if (r == CMD_QUIT || r == CMD_WATCH_ENDED)
            break;
    }
    if (interactive && feof(stdin))
        print_line("", 0);
    free(line);
    return rc;
}

/* Runs the command given on the command line; its value is the remaining words joined
 * by single spaces. Exit 0 on success, 1 on ERR (a watch returns only on one). */
static int run_argv(struct client_ctx *c, char **words, int n)
{
    struct client_cmd cmd = { .word = words[0], .n_args = n - 1 };
    char *joined = NULL;
    if (n >= 2) {
        cmd.key = words[1];
        cmd.key_len = strlen(words[1]);
    }
    if (n >= 3) {
        size_t len = 0;
        for (int i = 2; i < n; i++)
            len += strlen(words[i]) + 1;
        joined = malloc(len);
        if (joined == NULL) {
            print_errf("out of memory");
            return 1;
        }
        joined[0] = '\0';
        for (int i = 2; i < n; i++) {
            if (i > 2)
                strcat(joined, " ");
            strcat(joined, words[i]);
        }
        cmd.val = joined;
        cmd.val_len = strlen(joined);
    }
    enum cmd_result r = run_command(c, &cmd, true);
    free(joined);
    return r == CMD_ERR || r == CMD_WATCH_ENDED ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct client_opts o = {
        .dir = CLIENT_DEFAULT_DIR, .timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS, .verbose = true,
    };
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        free(o.cmd);
        return rc < 0 ? 0 : rc;
    }
    bool interactive = o.n_cmd == 0 && isatty(STDIN_FILENO);
    struct client_ctx c = { .opts = &o, .verbose = o.verbose, .keeps_running = o.n_cmd == 0 };
    snprintf(c.registry_path, sizeof(c.registry_path), "%s/server_registry.txt", o.dir);
    if (o.n_cmd > 0)
        rc = run_argv(&c, o.cmd, o.n_cmd);
    else
        rc = run_stdin(&c, interactive);
    client_session_free(c.session);
    free(o.cmd);
    return rc;
}
