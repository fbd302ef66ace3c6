/* common/registry.c - parser for server_registry.txt ("name host port" per line,
 * blank lines and '#' comments ignored); every error names "PATH:LINE:". */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"

/* A registry file is a few lines; anything this large is a mistake. */
#define REGISTRY_FILE_MAX (1024 * 1024)
#define REGISTRY_FIELDS 3

/* One whitespace-separated word of a line (not NUL-terminated). */
struct token {
    const char *s;
    size_t len;
};

/* The state of one registry_parse call. */
struct parser {
    const char *path;
    int line;                                /* 1-based number of the current line */
    int first_line[REGISTRY_MAX_SERVERS];    /* the line each server came from */
    struct registry *reg;
    char *err;
    size_t errlen;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* A name becomes part of file names (logs/NAME_log.txt), so keep it to safe characters. */
static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
}

bool registry_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > REGISTRY_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(name[i]))
            return false;
    return true;
}

/* Splits line[0..len) into words up to a word that starts with '#' (a comment).
 * Stores at most max words but returns how many there were. */
static int split_line(const char *line, size_t len, struct token *tok, int max)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space(line[i]))
            i++;
        if (i >= len || line[i] == '#')
            break;
        size_t start = i;
        while (i < len && !is_space(line[i]))
            i++;
        if (n < max) {
            tok[n].s = line + start;
            tok[n].len = i - start;
        }
        n++;
    }
    return n;
}

/* Decimal 1..65535, digits only. */
static bool parse_port(const struct token *t, uint16_t *port)
{
    unsigned long v = 0;
    if (t->len == 0 || t->len > 5)
        return false;
    for (size_t i = 0; i < t->len; i++) {
        if (t->s[i] < '0' || t->s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(t->s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* "PATH:LINE: <what> '<token>'", the token cut to 80 bytes. */
static int line_error(struct parser *p, const char *what, const struct token *t)
{
    rk_errf(p->err, p->errlen, "%s:%d: %s '%.*s%s'", p->path, p->line, what,
            (int)(t->len > 80 ? 80 : t->len), t->s, t->len > 80 ? "..." : "");
    return RK_ERR_INVAL;
}

static int check_name(struct parser *p, const struct token *t)
{
    if (t->len > REGISTRY_NAME_MAX) {
        rk_errf(p->err, p->errlen, "%s:%d: server name '%.20s...' is longer than %d bytes",
                p->path, p->line, t->s, REGISTRY_NAME_MAX);
        return RK_ERR_INVAL;
    }
    for (size_t i = 0; i < t->len; i++)
        if (!is_name_char(t->s[i]))
            return line_error(p, "server name may hold only letters, digits, '-', '_' "
                                 "and '.', got", t);
    return RK_OK;
}

static int check_host(struct parser *p, const struct token *t)
{
    if (t->len > REGISTRY_HOST_MAX) {
        rk_errf(p->err, p->errlen, "%s:%d: host '%.20s...' is longer than %d bytes",
                p->path, p->line, t->s, REGISTRY_HOST_MAX);
        return RK_ERR_INVAL;
    }
    for (size_t i = 0; i < t->len; i++)
        if (t->s[i] == '\0')
            return line_error(p, "host holds a NUL byte:", t);
    return RK_OK;
}

/* Rejects a name or a host:port pair already listed. */
static int check_duplicates(struct parser *p, const struct registry_server *s)
{
    for (int i = 0; i < p->reg->n; i++) {
        const struct registry_server *o = &p->reg->servers[i];
        if (strcmp(o->name, s->name) == 0) {
            rk_errf(p->err, p->errlen, "%s:%d: duplicate server name '%s' (first on line %d)",
                    p->path, p->line, s->name, p->first_line[i]);
            return RK_ERR_INVAL;
        }
        if (strcmp(o->host, s->host) == 0 && o->port == s->port) {
            rk_errf(p->err, p->errlen,
                    "%s:%d: duplicate address '%s:%u' (first on line %d, server '%s')",
                    p->path, p->line, s->host, (unsigned)s->port, p->first_line[i], o->name);
            return RK_ERR_INVAL;
        }
    }
    return RK_OK;
}

/* Parses one line (without its '\n'); adds a server unless it is blank or a comment. */
static int parse_line(struct parser *p, const char *line, size_t len)
{
    struct token tok[REGISTRY_FIELDS];
    int n = split_line(line, len, tok, REGISTRY_FIELDS);
    if (n == 0)
        return RK_OK;
    if (n != REGISTRY_FIELDS) {
        rk_errf(p->err, p->errlen, "%s:%d: expected 'name host port', got %d field%s",
                p->path, p->line, n, n == 1 ? "" : "s");
        return RK_ERR_INVAL;
    }
    struct registry_server s;
    memset(&s, 0, sizeof(s));
    int rc = check_name(p, &tok[0]);
    if (rc == RK_OK)
        rc = check_host(p, &tok[1]);
    if (rc != RK_OK)
        return rc;
    if (!parse_port(&tok[2], &s.port)) {
        rk_errf(p->err, p->errlen, "%s:%d: port '%.*s%s' is not a number 1..65535", p->path,
                p->line, (int)(tok[2].len > 20 ? 20 : tok[2].len), tok[2].s,
                tok[2].len > 20 ? "..." : "");
        return RK_ERR_INVAL;
    }
    memcpy(s.name, tok[0].s, tok[0].len);
    memcpy(s.host, tok[1].s, tok[1].len);
    rc = check_duplicates(p, &s);
    if (rc != RK_OK)
        return rc;
    if (p->reg->n >= REGISTRY_MAX_SERVERS) {
        rk_errf(p->err, p->errlen, "%s:%d: too many servers (at most %d)", p->path, p->line,
                REGISTRY_MAX_SERVERS);
        return RK_ERR_INVAL;
    }
    p->first_line[p->reg->n] = p->line;
    p->reg->servers[p->reg->n++] = s;
    return RK_OK;
}

int registry_parse(const char *text, size_t len, const char *path, struct registry *out,
                   char *err, size_t errlen)
{
    struct parser p = { .path = path ? path : "(registry)", .reg = out, .err = err,
                        .errlen = errlen };
    out->n = 0;
    out->servers = calloc(REGISTRY_MAX_SERVERS, sizeof(*out->servers));
    if (out->servers == NULL) {
        rk_errf(err, errlen, "%s: out of memory", p.path);
        return RK_ERR_NOMEM;
    }
    int rc = RK_OK;
    size_t pos = 0;
    while (rc == RK_OK && pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - (text + pos)) : len - pos;
        p.line++;
        rc = parse_line(&p, text + pos, line_len);
        pos += line_len + 1;
    }
    if (rc == RK_OK && out->n == 0) {
        rk_errf(err, errlen, "%s: no servers listed", p.path);
        rc = RK_ERR_INVAL;
    }
    if (rc != RK_OK)
        registry_free(out);
    return rc;
}

/* Reads the whole file into a malloc'ed buffer. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rk_errf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? RK_ERR_NOTFOUND : RK_ERR_IO;
    }
    char *buf = malloc(REGISTRY_FILE_MAX + 1);
    size_t got = 0;
    int rc = buf ? RK_OK : RK_ERR_NOMEM;
    while (rc == RK_OK) {
        ssize_t r = read(fd, buf + got, REGISTRY_FILE_MAX + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rk_errf(err, errlen, "%s: %s", path, strerror(errno));
            rc = RK_ERR_IO;
        } else if (r == 0) {
            break;
        } else if ((got += (size_t)r) > REGISTRY_FILE_MAX) {
            rk_errf(err, errlen, "%s: file is larger than %d bytes", path, REGISTRY_FILE_MAX);
            rc = RK_ERR_INVAL;
        }
    }
    if (rc == RK_ERR_NOMEM)
        rk_errf(err, errlen, "%s: out of memory", path);
    close(fd);
    if (rc != RK_OK) {
        free(buf);
        return rc;
    }
    *text = buf;
    *len = got;
    return RK_OK;
}

int registry_load(const char *path, struct registry *out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    out->servers = NULL;
    out->n = 0;
    int rc = read_file(path, &text, &len, err, errlen);
    if (rc != RK_OK)
        return rc;
    rc = registry_parse(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

int registry_find(const struct registry *reg, const char *name)
{
    if (reg == NULL || name == NULL)
        return -1;
    for (int i = 0; i < reg->n; i++)
        if (strcmp(reg->servers[i].name, name) == 0)
            return i;
    return -1;
}

void registry_free(struct registry *reg)
{
    if (reg == NULL)
        return;
    free(reg->servers);
    reg->servers = NULL;
    reg->n = 0;
}

/* ---- the cluster id ---- */

#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= FNV64_PRIME;
    }
    return h;
}

uint64_t registry_cluster_id(const struct registry *reg)
{
    int order[REGISTRY_MAX_SERVERS];
    int n = reg->n < REGISTRY_MAX_SERVERS ? reg->n : REGISTRY_MAX_SERVERS;
    for (int i = 0; i < n; i++) { /* insertion sort by name: at most 64 servers */
        int j = i;
        while (j > 0 && strcmp(reg->servers[order[j - 1]].name, reg->servers[i].name) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    uint64_t h = FNV64_OFFSET;
    for (int i = 0; i < n; i++) {
        const struct registry_server *s = &reg->servers[order[i]];
        char line[REGISTRY_NAME_MAX + REGISTRY_HOST_MAX + 16];
        int len = snprintf(line, sizeof(line), "%s %s %u\n", s->name, s->host,
                           (unsigned)s->port);
        h = fnv1a(h, line, (size_t)len);
    }
    return h;
}
