/* server/storage/storage.c - the durable Raft state of one server (Raft paper Figure 2,
 * "Persistent state on all servers"): the log as a checksummed text file NAME_log.txt
 * and currentTerm/votedFor in NAME_state, replaced atomically. See storage.h. */
#include "storage.h"
#include "storage_io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/crc32.h"
#include "../../common/errors.h"
#include "../../common/grow.h"

#define CRC_FIELD_LEN 9       /* " " + 8 hex digits, before the newline */
#define STORAGE_PREALLOC_BYTES (1u << 20) /* zeros kept written ahead of the log */

struct storage {
    char *log_path;
    char *state_path;
    char *tmp_path;
    char *dir_path;
    int log_fd;
    int dir_fd;
    char *compact_path;       /* NAME_log.txt.tmp: the kept suffix during storage_compact */
    off_t *line_start;        /* line_start[i]: byte offset of the line of index base + 1 + i */
    raft_term_t *line_term;   /* line_term[i]: term of index base + 1 + i */
    raft_index_t n_lines;     /* lines in the file; the last index is base + n_lines */
    raft_index_t base;        /* entries up to here are compacted (Raft paper §7) */
    raft_term_t base_term;    /* the term of entry base when known, else 0 */
    size_t cap;
    off_t size;               /* bytes of the log file that hold whole lines */
    off_t alloc;              /* bytes in the file: size, then zeros written ahead so
                                 that an append is an overwrite (see preallocate) */
    int broken;               /* an fdatasync or a rollback failed: refuse further use */
};

/* A growable byte buffer. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* ---------- errors ---------- */

static int check_usable(const struct storage *s, char *err, size_t errlen)
{
    if (s->broken)
        return rk_fail(err, errlen, RK_ERR_IO,
                       "%s: unusable after an earlier failed fdatasync or rollback",
                       s->log_path);
    return RK_OK;
}

/* ---------- small I/O helpers ---------- */

/* Writes all len bytes at offset off, retrying short writes and EINTR. */
static int pwrite_all(int fd, const char *data, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = storage_io_pwrite(fd, data, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        data += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Reads a whole file from fd into a malloc'd buffer (*out, NUL-terminated). */
static int read_whole_fd(int fd, char **out, size_t *out_len)
{
    size_t cap = 4096, len = 0;
    char *data = malloc(cap + 1);
    if (data == NULL)
        return RK_ERR_NOMEM;
    for (;;) {
        if (len == cap) {
            char *bigger = realloc(data, cap * 2 + 1);
            if (bigger == NULL) {
                free(data);
                return RK_ERR_NOMEM;
            }
            data = bigger;
            cap *= 2;
        }
        ssize_t n = pread(fd, data + len, cap - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            free(data);
            errno = saved;
            return RK_ERR_IO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    data[len] = '\0';
    *out = data;
    *out_len = len;
    return RK_OK;
}

static char *join_path(const char *dir, const char *name, const char *suffix)
{
    size_t len = strlen(dir) + 1 + strlen(name) + strlen(suffix) + 1;
    char *path = malloc(len);
    if (path != NULL)
        snprintf(path, len, "%s/%s%s", dir, name, suffix);
    return path;
}

/* ---------- growable buffer ---------- */

static int buf_reserve(struct buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return RK_ERR_NOMEM;
    return rk_grow(&b->data, &b->cap, b->len + extra, 1, 256);
}

/* ---------- writing a log line ---------- */

static const char hex_digits[] = "0123456789abcdef";

/* The escape a byte needs inside quotes (storage.h): 0 for none, 'x' for \\xHH, else the
 * letter after the backslash. */
static char escape_of(unsigned char c)
{
    switch (c) {
    case '\\': return '\\';
    case '"':  return '"';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    default:   return (c < 0x20 || c >= 0x7f) ? 'x' : 0;
    }
}

/* A byte copied as is inside quotes (the test of escape_of, in short). */
static bool is_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '\\' && c != '"';
}

/* Appends "\"...\"" with the escapes of storage.h; needs 2 + 4 * len reserved bytes.
 * Runs of plain bytes are copied whole. */
static void put_quoted(struct buf *b, const char *bytes, uint32_t len)
{
    char *out = b->data + b->len;
    *out++ = '"';
    uint32_t i = 0;
    while (i < len) {
        uint32_t run = i;
        while (run < len && is_plain((unsigned char)bytes[run]))
            run++;
        memcpy(out, bytes + i, run - i);
        out += run - i;
        if (run == len)
            break;
        unsigned char c = (unsigned char)bytes[run];
        char esc = escape_of(c);
        *out++ = '\\';
        *out++ = esc;
        if (esc == 'x') {
            *out++ = hex_digits[c >> 4];
            *out++ = hex_digits[c & 0xf];
        }
        i = run + 1;
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
}

/* Appends v in decimal (at most 20 digits; the caller has reserved them). */
static void put_uint(struct buf *b, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        b->data[b->len++] = digits[--n];
}

static void put_text(struct buf *b, const char *text)
{
    size_t len = strlen(text);
    memcpy(b->data + b->len, text, len);
    b->len += len;
}

static bool has_key(uint8_t type)
{
    return type == RAFT_ENTRY_SET || type == RAFT_ENTRY_DELETE || raft_entry_has_rev(type) ||
           raft_entry_has_ttl(type);
}

/* A SET's value, or a CONFIG's configuration text (Raft thesis §4.1: a server that
 * restarts takes the configuration in effect from its own log). */
static bool has_value(uint8_t type)
{
    return type == RAFT_ENTRY_SET || type == RAFT_ENTRY_CONFIG || type == RAFT_ENTRY_CAS ||
           type == RAFT_ENTRY_SETEX || type == RAFT_ENTRY_CAS_TTL || type == RAFT_ENTRY_EXPIRED;
}

/* Appends one whole line
 * "INDEX TERM CMD [\"key\"] [\"value\"] [rev=N] [ttl=MS] [client=ID seq=N] CRC\n" (set,
 * cas, setex and cas_ttl: key and value; delete, cad and expire: key; config: the
 * configuration as its value; expired: its list of keys as its value; cas, cad and
 * cas_ttl then the revision they compare; setex, expire and cas_ttl their ttl); the session fields
 * (Raft thesis §6.3) only when the entry has them. e's type is a known one (check_batch
 * refused the others). RK_OK or RK_ERR_NOMEM. */
static int encode_line(struct buf *b, raft_index_t index, const struct raft_entry *e)
{
    size_t key_len = has_key(e->type) ? e->key_len : 0;
    size_t val_len = has_value(e->type) ? e->val_len : 0;
    if (buf_reserve(b, 128 + 4 * key_len + 4 * val_len) != RK_OK)
        return RK_ERR_NOMEM;
    size_t start = b->len;
    put_uint(b, index);
    b->data[b->len++] = ' ';
    put_uint(b, e->term);
    b->data[b->len++] = ' ';
    put_text(b, raft_entry_type_name(e->type));
    if (has_key(e->type)) {
        b->data[b->len++] = ' ';
        put_quoted(b, e->key, e->key_len);
    }
    if (has_value(e->type)) {
        b->data[b->len++] = ' ';
        put_quoted(b, e->val, e->val_len);
    }
    if (raft_entry_has_rev(e->type)) {
        put_text(b, " rev=");
        put_uint(b, e->rev);
    }
    if (raft_entry_has_ttl(e->type)) {
        put_text(b, " ttl=");
        put_uint(b, e->ttl_ms);
    }
    if (e->client_id != 0 || e->seq != 0) {
        put_text(b, " client=");
        put_uint(b, e->client_id);
        put_text(b, " seq=");
        put_uint(b, e->seq);
    }
    uint32_t crc = crc32_update(0, b->data + start, b->len - start);
    b->data[b->len++] = ' ';
    for (int shift = 28; shift >= 0; shift -= 4)
        b->data[b->len++] = hex_digits[(crc >> shift) & 0xfu];
    b->data[b->len++] = '\n';
    return RK_OK;
}

/* ---------- the in-memory line index ---------- */

static int reserve_lines(struct storage *s, raft_index_t need)
{
    /* Two arrays of one capacity: both grow the same way from s->cap. */
    size_t starts_cap = s->cap, terms_cap = s->cap;
    if (rk_grow(&s->line_start, &starts_cap, (size_t)need, sizeof(*s->line_start), 1024) != RK_OK ||
        rk_grow(&s->line_term, &terms_cap, (size_t)need, sizeof(*s->line_term), 1024) != RK_OK)
        return RK_ERR_NOMEM;
    s->cap = starts_cap;
    return RK_OK;
}

static raft_term_t last_term(const struct storage *s)
{
    return s->n_lines ? s->line_term[s->n_lines - 1] : s->base_term;
}

/* ---------- parsing a log line ---------- */

enum line_status {
    LINE_OK,
    LINE_TORN,  /* no valid checksum: an incomplete write (fine only as the last line) */
    LINE_BAD,   /* checksum fine but content wrong: never a torn write */
    LINE_NOMEM,
};

struct line_ctx {
    raft_index_t expect_index; /* 0 for the first line, which may hold any index >= 1:
                                  the log may start after a snapshot (Raft paper §7) */
    raft_term_t min_term;
    char why[160];
};

static int parse_u64(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end && p[1] >= '0' &&
                                             p[1] <= '9'))
        return -1;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *pp = p;
    *out = v;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one escape after a backslash at *pp; returns the byte or -1. */
static int unescape_one(const char **pp, const char *end)
{
    const char *p = *pp;
    if (p >= end)
        return -1;
    char c = *p++;
    int byte;
    switch (c) {
    case '\\': byte = '\\'; break;
    case '"':  byte = '"'; break;
    case 'n':  byte = '\n'; break;
    case 'r':  byte = '\r'; break;
    case 't':  byte = '\t'; break;
    case 'x': {
        int hi = p < end ? hex_value(p[0]) : -1;
        int lo = p + 1 < end ? hex_value(p[1]) : -1;
        if (hi < 0 || lo < 0)
            return -1;
        byte = hi * 16 + lo;
        p += 2;
        break;
    }
    default: return -1;
    }
    *pp = p;
    return byte;
}

/* Decodes "\"...\"" at *pp into out; out has room for end - *pp bytes. */
static int unquote(const char **pp, const char *end, char *out, uint32_t *out_len,
                   const char **why)
{
    const char *p = *pp;
    size_t n = 0;
    if (p >= end || *p != '"') {
        *why = "expected a '\"'";
        return -1;
    }
    for (p++; p < end && *p != '"'; n++) {
        unsigned char c = (unsigned char)*p++;
        int byte = c;
        if (c == '\\')
            byte = unescape_one(&p, end);
        if (byte < 0 || c < 0x20 || c >= 0x7f) {
            *why = byte < 0 ? "bad escape inside quotes" : "raw control or non-ASCII byte "
                                                           "inside quotes";
            return -1;
        }
        out[n] = (char)byte;
    }
    if (p >= end || n > UINT32_MAX) {
        *why = p >= end ? "unterminated quote" : "string longer than 4 GiB";
        return -1;
    }
    *pp = p + 1;
    *out_len = (uint32_t)n;
    return 0;
}

static int parse_command(const char **pp, const char *end, uint8_t *type)
{
    static const uint8_t types[] = { RAFT_ENTRY_NOOP, RAFT_ENTRY_SET, RAFT_ENTRY_DELETE,
                                     RAFT_ENTRY_REGISTER, RAFT_ENTRY_CONFIG, RAFT_ENTRY_CAS,
                                     RAFT_ENTRY_CAD, RAFT_ENTRY_SETEX, RAFT_ENTRY_EXPIRE,
                                     RAFT_ENTRY_CAS_TTL, RAFT_ENTRY_EXPIRED };
    const char *word_end = memchr(*pp, ' ', (size_t)(end - *pp));
    if (word_end == NULL)
        word_end = end;
    size_t len = (size_t)(word_end - *pp);
    for (size_t i = 0; i < sizeof(types); i++) {
        const char *name = raft_entry_type_name(types[i]);
        if (strlen(name) == len && memcmp(*pp, name, len) == 0) {
            *type = types[i];
            *pp = word_end;
            return 0;
        }
    }
    return -1;
}

/* Checks the " crc" field at the end of a line of len bytes (newline excluded). */
static enum line_status check_crc(const char *line, size_t len, struct line_ctx *ctx)
{
    uint32_t stored = 0;
    if (len < CRC_FIELD_LEN + 1 || line[len - CRC_FIELD_LEN] != ' ') {
        snprintf(ctx->why, sizeof(ctx->why), "missing checksum field");
        return LINE_TORN;
    }
    for (size_t i = len - CRC_FIELD_LEN + 1; i < len; i++) {
        int v = hex_value(line[i]);
        if (v < 0 || (line[i] >= 'A' && line[i] <= 'F')) {
            snprintf(ctx->why, sizeof(ctx->why), "checksum is not 8 lowercase hex digits");
            return LINE_TORN;
        }
        stored = stored << 4 | (uint32_t)v;
    }
    uint32_t computed = crc32_update(0, line, len - CRC_FIELD_LEN);
    if (stored != computed) {
        snprintf(ctx->why, sizeof(ctx->why),
                 "checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")",
                 stored, computed);
        return LINE_TORN;
    }
    return LINE_OK;
}

static enum line_status bad_line(struct line_ctx *ctx, const char *why)
{
    snprintf(ctx->why, sizeof(ctx->why), "%s", why);
    return LINE_BAD;
}

/* Parses "INDEX TERM " and checks them against the previous line (Figure 2: the log's
 * indexes are consecutive and its terms never decrease). */
static enum line_status parse_index_term(const char **pp, const char *end,
                                         struct line_ctx *ctx, raft_term_t *term)
{
    uint64_t index;
    if (parse_u64(pp, end, &index) != 0 || *pp >= end || *(*pp)++ != ' ')
        return bad_line(ctx, "bad index field");
    if (parse_u64(pp, end, term) != 0 || *pp >= end || *(*pp)++ != ' ')
        return bad_line(ctx, "bad term field");
    if (ctx->expect_index == 0 ? index == 0 : index != ctx->expect_index) {
        snprintf(ctx->why, sizeof(ctx->why), "index %" PRIu64 " where %" PRIu64
                 " was expected", index, ctx->expect_index);
        return LINE_BAD;
    }
    if (*term < ctx->min_term) {
        snprintf(ctx->why, sizeof(ctx->why), "term %" PRIu64 " is lower than the previous "
                 "entry's term %" PRIu64, *term, ctx->min_term);
        return LINE_BAD;
    }
    return LINE_OK;
}

/* Parses "WORD=N" at *pp (after the caller's space). */
static int parse_named_u64(const char **pp, const char *end, const char *word, uint64_t *out)
{
    size_t n = strlen(word);
    if ((size_t)(end - *pp) <= n || memcmp(*pp, word, n) != 0 || (*pp)[n] != '=')
        return -1;
    *pp += n + 1;
    return parse_u64(pp, end, out);
}

/* The optional " client=ID seq=N" after the arguments (absent in older logs). */
static enum line_status parse_session(const char **pp, const char *end, struct raft_entry *e,
                                      struct line_ctx *ctx)
{
    e->client_id = 0;
    e->seq = 0;
    if (*pp == end)
        return LINE_OK;
    if (*(*pp)++ != ' ' || parse_named_u64(pp, end, "client", &e->client_id) != 0 ||
        *pp >= end || *(*pp)++ != ' ' || parse_named_u64(pp, end, "seq", &e->seq) != 0)
        return bad_line(ctx, "unexpected text after the last field (expected "
                             "\"client=ID seq=N\" or the checksum)");
    if (*pp != end)
        return bad_line(ctx, "unexpected text after the session fields");
    return LINE_OK;
}

/* Parses the key and value that follow the command, decoding into buf, then the
 * session fields. */
static enum line_status parse_args(const char **pp, const char *end, uint8_t type,
                                   char *buf, struct raft_entry *e, struct line_ctx *ctx)
{
    const char *why = NULL;
    uint32_t key_len = 0, val_len = 0;
    char *val = buf + 1;
    if (has_key(type)) {
        if (*pp >= end || *(*pp)++ != ' ' || unquote(pp, end, buf, &key_len, &why) != 0)
            return bad_line(ctx, why ? why : "expected a key after the command");
        val = buf + key_len + 1;
    }
    if (has_value(type)) {
        if (*pp >= end || *(*pp)++ != ' ' || unquote(pp, end, val, &val_len, &why) != 0)
            return bad_line(ctx, why ? why : type == RAFT_ENTRY_CONFIG
                                                 ? "expected the configuration after the command"
                                                 : "expected a value after the key");
    }
    e->rev = 0;
    if (raft_entry_has_rev(type) &&
        (*pp >= end || *(*pp)++ != ' ' || parse_named_u64(pp, end, "rev", &e->rev) != 0))
        return bad_line(ctx, "expected \"rev=N\" after the arguments of cas or cad");
    e->ttl_ms = 0;
    if (raft_entry_has_ttl(type) &&
        (*pp >= end || *(*pp)++ != ' ' || parse_named_u64(pp, end, "ttl", &e->ttl_ms) != 0))
        return bad_line(ctx, "expected \"ttl=MS\" after the arguments of setex, expire or "
                             "cas_ttl");
    enum line_status st = parse_session(pp, end, e, ctx);
    if (st != LINE_OK)
        return st;
    buf[key_len] = '\0';
    val[val_len] = '\0';
    e->type = type;
    e->key = buf;
    e->key_len = key_len;
    e->val = val;
    e->val_len = val_len;
    return LINE_OK;
}

/* Parses one line (without its newline) into *e, which then owns new bytes. */
static enum line_status parse_line(const char *line, size_t len, struct raft_entry *e,
                                   struct line_ctx *ctx)
{
    enum line_status st = check_crc(line, len, ctx);
    if (st != LINE_OK)
        return st;
    const char *p = line, *end = line + len - CRC_FIELD_LEN;
    raft_term_t term;
    uint8_t type;
    st = parse_index_term(&p, end, ctx, &term);
    if (st != LINE_OK)
        return st;
    if (parse_command(&p, end, &type) != 0)
        return bad_line(ctx, "unknown command (expected noop, set, delete, register, config, "
                             "cas, cad, setex, expire, cas_ttl or expired)");
    if (raft_entry_alloc(e, (size_t)(end - p) + 2) != RK_OK)
        return LINE_NOMEM;
    st = parse_args(&p, end, type, e->key, e, ctx);
    if (st != LINE_OK) {
        raft_entry_free(e);
        return st;
    }
    e->term = term;
    return LINE_OK;
}

int storage_parse_line(const char *line, size_t len, raft_index_t expect_index,
                       raft_term_t min_term, struct raft_entry *e, bool *torn, char *why,
                       size_t whylen)
{
    struct line_ctx ctx = { .expect_index = expect_index, .min_term = min_term };
    enum line_status st = parse_line(line, len, e, &ctx);
    *torn = st == LINE_TORN;
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", st == LINE_NOMEM ? "out of memory" : ctx.why);
    if (st == LINE_OK)
        return RK_OK;
    return st == LINE_NOMEM ? RK_ERR_NOMEM : RK_ERR_CORRUPT;
}

/* ---------- loading the log ---------- */

struct loader {
    struct storage *s;
    struct storage_loaded *ld;
    size_t entries_cap;
};

static int keep_entry(struct loader *l, const struct raft_entry *e, off_t start)
{
    struct storage_loaded *ld = l->ld;
    if (rk_grow(&ld->entries, &l->entries_cap, (size_t)ld->n_entries + 1, sizeof(*ld->entries),
                1024) != RK_OK)
        return RK_ERR_NOMEM;
    if (reserve_lines(l->s, ld->n_entries + 1) != RK_OK)
        return RK_ERR_NOMEM;
    ld->entries[ld->n_entries++] = *e;
    l->s->line_start[l->s->n_lines] = start;
    l->s->line_term[l->s->n_lines++] = e->term;
    return RK_OK;
}

/* Cuts a torn last line (a write interrupted by a crash) off the file. */
static int drop_torn_tail(struct storage *s, struct storage_loaded *ld, off_t start,
                          const char *why, char *err, size_t errlen)
{
    if (ftruncate(s->log_fd, start) != 0)
        return rk_fail_io(err, errlen, s->log_path, "ftruncate");
    if (fdatasync(s->log_fd) != 0)
        return rk_fail_io(err, errlen, s->log_path, "fdatasync");
    s->alloc = start;
    ld->dropped_torn_tail = 1;
    return rk_fail(err, errlen, RK_OK, "%s:%" PRIu64 ": dropped torn last line (crash "
                   "during write): %s at byte offset %jd", s->log_path, s->n_lines + 1,
                   why, (intmax_t)start);
}

static int corrupt_line(const struct storage *s, const char *why, off_t start, char *err,
                        size_t errlen)
{
    return rk_fail(err, errlen, RK_ERR_CORRUPT, "%s:%" PRIu64 ": %s (byte offset %jd)",
                   s->log_path, s->n_lines + 1, why, (intmax_t)start);
}

/* Parses every line of data; a bad last line is torn, a bad earlier line corrupt. */
static int parse_log(struct loader *l, const char *data, size_t size, char *err,
                     size_t errlen)
{
    struct storage *s = l->s;
    size_t pos = 0;
    while (pos < size) {
        const char *nl = memchr(data + pos, '\n', size - pos);
        if (nl == NULL)
            return drop_torn_tail(s, l->ld, (off_t)pos, "no newline at the end", err,
                                  errlen);
        struct raft_entry e;
        bool torn;
        char why[160];
        size_t len = (size_t)(nl - (data + pos));
        /* The first line may hold any index: the log may start after a snapshot (§7). */
        raft_index_t expect = s->n_lines ? s->base + s->n_lines + 1 : 0;
        int rc = storage_parse_line(data + pos, len, expect, last_term(s), &e, &torn, why,
                                    sizeof(why));
        if (rc == RK_ERR_CORRUPT && torn && pos + len + 1 == size)
            return drop_torn_tail(s, l->ld, (off_t)pos, why, err, errlen);
        if (rc == RK_ERR_CORRUPT)
            return corrupt_line(s, why, (off_t)pos, err, errlen);
        if (rc == RK_OK && s->n_lines == 0)
            s->base = strtoull(data + pos, NULL, 10) - 1; /* a valid line starts with it */
        if (rc != RK_OK || keep_entry(l, &e, (off_t)pos) != RK_OK) {
            if (rc == RK_OK)
                raft_entry_free(&e);
            return rk_fail(err, errlen, RK_ERR_NOMEM, "%s: out of memory", s->log_path);
        }
        pos += len + 1;
        s->size = (off_t)pos;
    }
    return RK_OK;
}

/* The log ends at its last non-zero byte: what follows is preallocated space. A line
 * always ends with a newline, so no entry ends in a zero byte. */
static size_t data_end(const char *data, size_t size)
{
    while (size > 0 && data[size - 1] == '\0')
        size--;
    return size;
}

static int load_log(struct storage *s, struct storage_loaded *ld, char *err, size_t errlen)
{
    char *data;
    size_t size;
    int rc = read_whole_fd(s->log_fd, &data, &size);
    if (rc == RK_ERR_IO)
        return rk_fail_io(err, errlen, s->log_path, "read");
    if (rc != RK_OK)
        return rk_fail(err, errlen, rc, "%s: out of memory", s->log_path);
    s->alloc = (off_t)size;
    size = data_end(data, size);
    struct loader l = { .s = s, .ld = ld };
    rc = parse_log(&l, data, size, err, errlen);
    free(data);
    ld->first_index = s->base + 1;
    return rc;
}

/* ---------- the hard state file ---------- */

static bool valid_vote_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > STORAGE_VOTE_MAX_LEN || strcmp(name, "-") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* The reason "term=N vote=NAME|- crc=XXXXXXXX\n" (exactly that, nothing more) does not
 * parse, or NULL with *term and vote (STORAGE_VOTE_MAX_LEN + 1 bytes) set. */
static const char *parse_state(const char *text, size_t len, raft_term_t *term, char *vote)
{
    if (len > STORAGE_STATE_MAX_LEN)
        return "file too long";
    const char *crc_at = len > 14 ? text + len - 14 : NULL;
    if (crc_at == NULL || memcmp(crc_at, " crc=", 5) != 0 || text[len - 1] != '\n')
        return "missing \" crc=XXXXXXXX\" and newline at the end";
    uint32_t stored = 0;
    for (int i = 5; i < 13; i++) {
        int v = hex_value(crc_at[i]);
        if (v < 0 || (crc_at[i] >= 'A' && crc_at[i] <= 'F'))
            return "checksum is not 8 lowercase hex digits";
        stored = stored << 4 | (uint32_t)v;
    }
    if (stored != crc32_update(0, text, (size_t)(crc_at - text)))
        return "checksum mismatch";
    const char *p = text + 5;
    if (strncmp(text, "term=", 5) != 0 || parse_u64(&p, crc_at, term) != 0 ||
        crc_at - p < 7 || strncmp(p, " vote=", 6) != 0)
        return "expected \"term=N vote=NAME\"";
    size_t vote_len = (size_t)(crc_at - (p + 6));
    if (vote_len > STORAGE_VOTE_MAX_LEN)
        return "bad vote name";
    memcpy(vote, p + 6, vote_len);
    vote[vote_len] = '\0';
    if (strlen(vote) != vote_len)
        return "NUL byte in the vote name";
    if (strcmp(vote, "-") == 0)
        vote[0] = '\0';
    else if (!valid_vote_name(vote))
        return "bad vote name";
    return NULL;
}

int storage_parse_state(const char *text, size_t len, raft_term_t *term, char *voted_for,
                        char *why, size_t whylen)
{
    raft_term_t t = 0;
    char vote[STORAGE_VOTE_MAX_LEN + 1];
    const char *bad = parse_state(text, len, &t, vote);
    if (bad != NULL)
        return rk_fail(why, whylen, RK_ERR_CORRUPT, "%s", bad);
    *term = t;
    memcpy(voted_for, vote, strlen(vote) + 1);
    return RK_OK;
}

static int load_state(struct storage *s, struct storage_loaded *ld, char *err, size_t errlen)
{
    int fd = open(s->state_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return RK_OK; /* a fresh server: term 0, no vote */
    if (fd < 0)
        return rk_fail_io(err, errlen, s->state_path, "open");
    char *text;
    size_t len;
    int rc = read_whole_fd(fd, &text, &len);
    if (rc == RK_ERR_IO)
        rc = rk_fail_io(err, errlen, s->state_path, "read");
    close(fd);
    if (rc != RK_OK)
        return rc == RK_ERR_NOMEM ? rk_fail(err, errlen, rc, "out of memory") : rc;
    char why[64];
    rc = storage_parse_state(text, len, &ld->term, ld->voted_for, why, sizeof(why));
    free(text);
    if (rc != RK_OK)
        return rk_fail(err, errlen, rc, "%s: %s", s->state_path, why);
    return RK_OK;
}

/* Writes text to the temp file and makes it durable. */
static int write_tmp_file(const struct storage *s, const char *text, size_t len, char *err,
                          size_t errlen)
{
    int fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rk_fail_io(err, errlen, s->tmp_path, "open");
    int rc = RK_OK;
    if (pwrite_all(fd, text, len, 0) != 0)
        rc = rk_fail_io(err, errlen, s->tmp_path, "write");
    else if (fdatasync(fd) != 0)
        rc = rk_fail_io(err, errlen, s->tmp_path, "fdatasync");
    if (close(fd) != 0 && rc == RK_OK)
        rc = rk_fail_io(err, errlen, s->tmp_path, "close");
    return rc;
}

/* Raft paper Figure 2: currentTerm and votedFor are persisted before responding to RPCs.
 * Write a temp file, fdatasync it, rename it over the old one, fsync the directory. */
int storage_save_hard_state(struct storage *s, raft_term_t term, const char *voted_for,
                            char *err, size_t errlen)
{
    if (voted_for == NULL || voted_for[0] == '\0')
        voted_for = "-";
    else if (!valid_vote_name(voted_for))
        return rk_fail(err, errlen, RK_ERR_INVAL, "bad vote name (1..%d printable "
                       "characters, no spaces, not \"-\")", STORAGE_VOTE_MAX_LEN);
    char text[STORAGE_STATE_MAX_LEN];
    int len = snprintf(text, sizeof(text), "term=%" PRIu64 " vote=%s", term, voted_for);
    uint32_t crc = crc32_update(0, text, (size_t)len);
    len += snprintf(text + len, sizeof(text) - (size_t)len, " crc=%08" PRIx32 "\n", crc);
    int rc = write_tmp_file(s, text, (size_t)len, err, errlen);
    if (rc == RK_OK && rename(s->tmp_path, s->state_path) != 0)
        rc = rk_fail_io(err, errlen, s->state_path, "rename");
    if (rc != RK_OK) {
        unlink(s->tmp_path);
        return rc;
    }
    if (fsync(s->dir_fd) != 0)
        return rk_fail_io(err, errlen, s->dir_path, "fsync");
    return RK_OK;
}

/* ---------- open and close ---------- */

static int make_paths(struct storage *s, const char *dir, const char *name)
{
    s->dir_path = strdup(dir);
    s->log_path = join_path(dir, name, "_log.txt");
    s->state_path = join_path(dir, name, "_state");
    s->tmp_path = join_path(dir, name, "_state.tmp");
    s->compact_path = join_path(dir, name, "_log.txt.tmp");
    if (!s->dir_path || !s->log_path || !s->state_path || !s->tmp_path || !s->compact_path)
        return RK_ERR_NOMEM;
    return RK_OK;
}

static int open_log_file(struct storage *s, char *err, size_t errlen)
{
    s->log_fd = open(s->log_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->log_fd < 0)
        return rk_fail_io(err, errlen, s->log_path, "open");
    if (flock(s->log_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return rk_fail(err, errlen, RK_ERR_IO, "%s: in use by another process (is "
                           "this server already running?)", s->log_path);
        return rk_fail_io(err, errlen, s->log_path, "flock");
    }
    return RK_OK;
}

static int open_files(struct storage *s, struct storage_loaded *ld, char *err,
                      size_t errlen)
{
    s->dir_fd = open(s->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd < 0)
        return rk_fail_io(err, errlen, s->dir_path, "open");
    int rc = open_log_file(s, err, errlen);
    if (rc != RK_OK)
        return rc;
    unlink(s->tmp_path); /* a state write interrupted by a crash; the old state stands */
    unlink(s->compact_path); /* the same for a compaction: the old log stands */
    rc = load_state(s, ld, err, errlen);
    if (rc == RK_OK)
        rc = load_log(s, ld, err, errlen);
    if (rc == RK_OK && fsync(s->dir_fd) != 0) /* a newly created log file's name */
        rc = rk_fail_io(err, errlen, s->dir_path, "fsync");
    return rc;
}

int storage_open(struct storage **out, const char *dir, const char *name,
                 struct storage_loaded *loaded, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL || dir == NULL || name == NULL || loaded == NULL || name[0] == '\0' ||
        strchr(name, '/') != NULL)
        return rk_fail(err, errlen, RK_ERR_INVAL, "storage_open: bad arguments");
    *out = NULL;
    memset(loaded, 0, sizeof(*loaded));
    struct storage *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return rk_fail(err, errlen, RK_ERR_NOMEM, "out of memory");
    s->log_fd = s->dir_fd = -1;
    int rc = make_paths(s, dir, name);
    if (rc != RK_OK)
        rk_fail(err, errlen, rc, "out of memory");
    else
        rc = open_files(s, loaded, err, errlen);
    if (rc != RK_OK) {
        storage_close(s);
        storage_loaded_free(loaded);
        return rc;
    }
    *out = s;
    return RK_OK;
}

void storage_close(struct storage *s)
{
    if (s == NULL)
        return;
    if (s->log_fd >= 0)
        close(s->log_fd);
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    free(s->line_start);
    free(s->line_term);
    free(s->log_path);
    free(s->state_path);
    free(s->tmp_path);
    free(s->compact_path);
    free(s->dir_path);
    free(s);
}

void storage_loaded_free(struct storage_loaded *loaded)
{
    if (loaded == NULL)
        return;
    for (raft_index_t i = 0; i < loaded->n_entries; i++)
        raft_entry_free(&loaded->entries[i]);
    free(loaded->entries);
    loaded->entries = NULL;
    loaded->n_entries = 0;
}

/* ---------- changing the log ---------- */

/* Raft paper §5.3: a follower deletes a conflicting entry and all that follow it. */
int storage_truncate(struct storage *s, raft_index_t from, char *err, size_t errlen)
{
    int rc = check_usable(s, err, errlen);
    if (rc != RK_OK)
        return rc;
    if (from < 1)
        return rk_fail(err, errlen, RK_ERR_INVAL, "storage_truncate: index 0");
    if (from > s->base + s->n_lines)
        return RK_OK;
    if (from <= s->base)
        return rk_fail(err, errlen, RK_ERR_INVAL, "storage_truncate: index %" PRIu64
                       " is compacted (the log starts at %" PRIu64 ")", from, s->base + 1);
    off_t cut = s->line_start[from - s->base - 1];
    if (ftruncate(s->log_fd, cut) != 0)
        return rk_fail_io(err, errlen, s->log_path, "ftruncate");
    s->n_lines = from - s->base - 1;
    s->size = cut;
    s->alloc = cut;
    return RK_OK;
}

/* Refuses entries that could not be loaded back: a gap, an unknown type, a lower term. */
static int check_batch(const struct storage *s, raft_index_t first_index,
                       const struct raft_entry *entries, uint32_t n, char *err,
                       size_t errlen)
{
    if (first_index != s->base + s->n_lines + 1)
        return rk_fail(err, errlen, RK_ERR_INVAL, "storage_append: first index %" PRIu64
                       " but the log ends at %" PRIu64, first_index, s->base + s->n_lines);
    if (n > 0 && entries == NULL)
        return rk_fail(err, errlen, RK_ERR_INVAL, "storage_append: no entries");
    raft_term_t prev = last_term(s);
    for (uint32_t i = 0; i < n; i++) {
        if (raft_entry_type_name(entries[i].type) == NULL)
            return rk_fail(err, errlen, RK_ERR_INVAL, "storage_append: entry %" PRIu64
                           " has unknown type %u", first_index + i,
                           (unsigned)entries[i].type);
        if (entries[i].term < prev)
            return rk_fail(err, errlen, RK_ERR_INVAL, "storage_append: entry %" PRIu64
                           " has term %" PRIu64 " below the previous %" PRIu64,
                           first_index + i, entries[i].term, prev);
        prev = entries[i].term;
    }
    return RK_OK;
}

/* Encodes the batch into b, noting each line's offset (relative to the batch start). */
static int encode_batch(struct storage *s, const struct raft_entry *entries, uint32_t n,
                        struct buf *b)
{
    if (reserve_lines(s, s->n_lines + n) != RK_OK)
        return RK_ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        s->line_start[s->n_lines + i] = s->size + (off_t)b->len;
        s->line_term[s->n_lines + i] = entries[i].term;
        if (encode_line(b, s->base + s->n_lines + i + 1, &entries[i]) != RK_OK)
            return RK_ERR_NOMEM;
    }
    return RK_OK;
}

/* Writes b at the end of the file; on failure cuts the file back to its old size. */
static int write_batch(struct storage *s, const struct buf *b, char *err, size_t errlen)
{
    if (pwrite_all(s->log_fd, b->data, b->len, s->size) == 0)
        return RK_OK;
    int rc = rk_fail_io(err, errlen, s->log_path, "write");
    if (ftruncate(s->log_fd, s->size) != 0)
        s->broken = 1; /* the file may now hold a partial line we cannot remove */
    s->alloc = s->size;
    return rc;
}

/* Keeps at least STORAGE_PREALLOC_BYTES / 2 of zeros written past the end of the log,
 * so that appends overwrite blocks the file already has: their fdatasync then flushes
 * data only, with no journal commit for a new size or new blocks. That halves the sync
 * time here (etcd's WAL preallocates its segments for the same reason). Best effort: if
 * the disk is full, appends just extend the file as they would anyway. The zeros are not
 * log data: they go to pwrite itself, not through storage_io_pwrite, so an injected
 * ENOSPC (tests/fault_io.c) does not count them. */
static void preallocate(struct storage *s)
{
    if (s->alloc - s->size >= (off_t)(STORAGE_PREALLOC_BYTES / 2))
        return;
    static const char zeros[65536];
    off_t want = s->size + (off_t)STORAGE_PREALLOC_BYTES;
    while (s->alloc < want) {
        size_t len = (size_t)(want - s->alloc) < sizeof(zeros) ? (size_t)(want - s->alloc)
                                                                : sizeof(zeros);
        ssize_t n = pwrite(s->log_fd, zeros, len, s->alloc);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s->alloc += n;
    }
}

int storage_append(struct storage *s, raft_index_t first_index,
                   const struct raft_entry *entries, uint32_t n, char *err, size_t errlen)
{
    int rc = check_usable(s, err, errlen);
    if (rc == RK_OK)
        rc = check_batch(s, first_index, entries, n, err, errlen);
    if (rc != RK_OK || n == 0)
        return rc;
    struct buf b = { 0 };
    rc = encode_batch(s, entries, n, &b);
    if (rc != RK_OK)
        rk_fail(err, errlen, rc, "%s: out of memory", s->log_path);
    else
        rc = write_batch(s, &b, err, errlen);
    if (rc == RK_OK) {
        s->n_lines += n;
        s->size += (off_t)b.len;
        if (s->size > s->alloc)
            s->alloc = s->size;
        preallocate(s);
    }
    free(b.data);
    return rc;
}

/* After a failed fdatasync the kernel may have dropped the dirty pages, so a later
 * success would lie: the storage refuses all further writes. */
int storage_sync(struct storage *s, char *err, size_t errlen)
{
    int rc = check_usable(s, err, errlen);
    if (rc != RK_OK)
        return rc;
    if (storage_io_sync_log(s->log_fd) != 0) {
        s->broken = 1;
        return rk_fail_io(err, errlen, s->log_path, "fdatasync");
    }
    return RK_OK;
}

raft_index_t storage_last_index(const struct storage *s)
{
    return s->base + s->n_lines;
}

/* ---------- compaction (Raft paper §7) ---------- */

raft_index_t storage_first_index(const struct storage *s)
{
    return s->base + 1;
}

#define COPY_CHUNK (1u << 20)

/* Copies bytes [from, s->size) of the log to fd, at offset 0. */
static int copy_suffix(const struct storage *s, int fd, off_t from, char *err, size_t errlen)
{
    char *chunk = malloc(COPY_CHUNK);
    if (chunk == NULL)
        return rk_fail(err, errlen, RK_ERR_NOMEM, "%s: out of memory", s->compact_path);
    int rc = RK_OK;
    for (off_t pos = from; pos < s->size && rc == RK_OK;) {
        size_t want = (size_t)(s->size - pos) < COPY_CHUNK ? (size_t)(s->size - pos)
                                                            : COPY_CHUNK;
        ssize_t n = pread(s->log_fd, chunk, want, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* the file is shorter than the lines we know of */
            rc = rk_fail_io(err, errlen, s->log_path, "read");
        } else if (pwrite_all(fd, chunk, (size_t)n, pos - from) != 0) {
            rc = rk_fail_io(err, errlen, s->compact_path, "write");
        }
        pos += n > 0 ? n : 0;
    }
    free(chunk);
    return rc;
}

/* Writes the kept suffix to NAME_log.txt.tmp, durably and locked; returns its fd or -1. */
static int write_kept_suffix(const struct storage *s, off_t from, char *err, size_t errlen)
{
    int fd = open(s->compact_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rk_fail_io(err, errlen, s->compact_path, "open");
        return -1;
    }
    /* Locked before it gets the log's name, so no second server can take it over. */
    int rc = flock(fd, LOCK_EX | LOCK_NB) == 0 ? RK_OK
                                              : rk_fail_io(err, errlen, s->compact_path, "flock");
    if (rc == RK_OK)
        rc = copy_suffix(s, fd, from, err, errlen);
    if (rc == RK_OK && fdatasync(fd) != 0)
        rc = rk_fail_io(err, errlen, s->compact_path, "fdatasync");
    if (rc != RK_OK) {
        close(fd);
        unlink(s->compact_path);
        return -1;
    }
    return fd;
}

/* The in-memory line index after dropping the first `drop` lines, which end at `from`. */
static void drop_prefix_lines(struct storage *s, raft_index_t drop, off_t from)
{
    s->base_term = s->line_term[drop - 1];
    s->n_lines -= drop;
    memmove(s->line_term, s->line_term + drop, s->n_lines * sizeof(*s->line_term));
    memmove(s->line_start, s->line_start + drop, s->n_lines * sizeof(*s->line_start));
    for (raft_index_t i = 0; i < s->n_lines; i++)
        s->line_start[i] -= from;
    s->base += drop;
    s->size -= from;
}

/* Raft paper §7: once a snapshot covering index is durable, the log up to index goes.
 * The kept lines (unchanged: they hold absolute indexes) are written to a temp file,
 * fdatasync'ed, renamed over the log, and the directory is fsynced, so a crash leaves
 * either the old or the new file, and both load. */
int storage_compact(struct storage *s, raft_index_t index, char *err, size_t errlen)
{
    int rc = check_usable(s, err, errlen);
    if (rc != RK_OK)
        return rc;
    if (index > s->base + s->n_lines)
        index = s->base + s->n_lines;
    if (index <= s->base)
        return RK_OK;
    raft_index_t drop = index - s->base;
    off_t from = drop < s->n_lines ? s->line_start[drop] : s->size;
    int fd = write_kept_suffix(s, from, err, errlen);
    if (fd < 0)
        return RK_ERR_IO;
    if (rename(s->compact_path, s->log_path) != 0) {
        rc = rk_fail_io(err, errlen, s->log_path, "rename");
        close(fd);
        unlink(s->compact_path);
        return rc;
    }
    close(s->log_fd); /* the old file: its name now belongs to the new one */
    s->log_fd = fd;
    drop_prefix_lines(s, drop, from);
    s->alloc = s->size; /* the copy holds no preallocated zeros */
    if (fsync(s->dir_fd) != 0)
        return rk_fail_io(err, errlen, s->dir_path, "fsync");
    return RK_OK;
}

/* Raft paper Figure 13, step 7: the log is discarded after installing a snapshot that
 * ends at index; the next append is index + 1. Durable on return. */
int storage_reset(struct storage *s, raft_index_t index, char *err, size_t errlen)
{
    int rc = check_usable(s, err, errlen);
    if (rc != RK_OK)
        return rc;
    if (ftruncate(s->log_fd, 0) != 0)
        return rk_fail_io(err, errlen, s->log_path, "ftruncate");
    if (fdatasync(s->log_fd) != 0) {
        s->broken = 1;
        return rk_fail_io(err, errlen, s->log_path, "fdatasync");
    }
    s->n_lines = 0;
    s->size = 0;
    s->alloc = 0;
    s->base = index;
    s->base_term = 0;
    return RK_OK;
}
