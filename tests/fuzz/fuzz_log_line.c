/* tests/fuzz/fuzz_log_line.c - fuzz target: one line of NAME_log.txt through
 * storage_parse_line (server/storage/storage.c), the parser the log loader runs on every
 * line. Input: a mode byte, then the line. Mode bit 0: the target appends the right
 * " crc" itself, so the fuzzer reaches the fields behind the checksum. Bit 1: the
 * expected index is the line's own leading number; else bit 2: 0 (any index, as for the
 * first line of a log that starts after a snapshot); else 1 + (mode >> 3) % 4. The
 * minimum term is mode >> 5. Oracles: an accepted line gives a valid entry within the
 * line's size, with the index and term asked for, and written back in the format of
 * storage.h it parses to the same entry; a refused line has a reason, and is "torn" only
 * when its checksum is what failed. */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "../../common/crc32.h"
#include "../../common/errors.h"
#include "../../server/storage/storage.h"
#include "fuzz.h"

/* The leading decimal number of s (saturating), or 1 if there is none. */
static uint64_t fz_log_leading_number(const char *s, size_t len)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9' && v < UINT64_MAX / 10; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    return i == 0 ? 1 : v;
}

/* Appends "\"...\"" escaped as storage.h says. out has room for 2 + 4 * len bytes. */
static size_t fz_log_quote(char *out, const char *s, uint32_t len)
{
    size_t n = 0;
    out[n++] = '"';
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '"')
            n += (size_t)sprintf(out + n, "\\%c", c);
        else if (c == '\n')
            n += (size_t)sprintf(out + n, "\\n");
        else if (c == '\r')
            n += (size_t)sprintf(out + n, "\\r");
        else if (c == '\t')
            n += (size_t)sprintf(out + n, "\\t");
        else if (c < 0x20 || c >= 0x7f)
            n += (size_t)sprintf(out + n, "\\x%02x", c);
        else
            out[n++] = (char)c;
    }
    out[n++] = '"';
    return n;
}

/* Which fields a line of each command holds (storage.h's format, written out here on its
 * own so that the oracle does not share the parser's tables). */
static bool fz_log_has_key(uint8_t t)
{
    return t == RAFT_ENTRY_SET || t == RAFT_ENTRY_DELETE || t == RAFT_ENTRY_CAS ||
           t == RAFT_ENTRY_CAD || t == RAFT_ENTRY_SETEX || t == RAFT_ENTRY_EXPIRE ||
           t == RAFT_ENTRY_CAS_TTL;
}

static bool fz_log_has_value(uint8_t t)
{
    return t == RAFT_ENTRY_SET || t == RAFT_ENTRY_CONFIG || t == RAFT_ENTRY_CAS ||
           t == RAFT_ENTRY_SETEX || t == RAFT_ENTRY_CAS_TTL || t == RAFT_ENTRY_EXPIRED;
}

static bool fz_log_has_rev(uint8_t t)
{
    return t == RAFT_ENTRY_CAS || t == RAFT_ENTRY_CAD || t == RAFT_ENTRY_CAS_TTL;
}

static bool fz_log_has_ttl(uint8_t t)
{
    return t == RAFT_ENTRY_SETEX || t == RAFT_ENTRY_EXPIRE || t == RAFT_ENTRY_CAS_TTL;
}

/* The line of storage.h for entry e at index, without its newline; malloc'ed. */
static char *fz_log_encode(uint64_t index, const struct raft_entry *e, size_t *len)
{
    char *line = malloc(128 + 4 * (size_t)e->key_len + 4 * (size_t)e->val_len);
    FUZZ_CHECK(line != NULL);
    size_t n = (size_t)sprintf(line, "%" PRIu64 " %" PRIu64 " %s", index, e->term,
                               raft_entry_type_name(e->type));
    if (fz_log_has_key(e->type)) {
        line[n++] = ' ';
        n += fz_log_quote(line + n, e->key, e->key_len);
    }
    if (fz_log_has_value(e->type)) {
        line[n++] = ' ';
        n += fz_log_quote(line + n, e->val, e->val_len);
    }
    if (fz_log_has_rev(e->type))
        n += (size_t)sprintf(line + n, " rev=%" PRIu64, e->rev);
    if (fz_log_has_ttl(e->type))
        n += (size_t)sprintf(line + n, " ttl=%" PRIu64, e->ttl_ms);
    if (e->client_id != 0 || e->seq != 0)
        n += (size_t)sprintf(line + n, " client=%" PRIu64 " seq=%" PRIu64, e->client_id,
                             e->seq);
    n += (size_t)sprintf(line + n, " %08" PRIx32, crc32_update(0, line, n));
    *len = n;
    return line;
}

static bool fz_log_same_entry(const struct raft_entry *a, const struct raft_entry *b)
{
    return a->term == b->term && a->type == b->type && a->key_len == b->key_len &&
           a->val_len == b->val_len && a->client_id == b->client_id && a->seq == b->seq &&
           a->rev == b->rev && a->ttl_ms == b->ttl_ms &&
           memcmp(a->key, b->key, a->key_len) == 0 && memcmp(a->val, b->val, a->val_len) == 0;
}

static void fz_log_check_entry(const struct raft_entry *e, size_t line_len, uint64_t index,
                               uint64_t min_term)
{
    FUZZ_CHECK(raft_entry_type_name(e->type) != NULL && e->term >= min_term);
    FUZZ_CHECK(e->key != NULL && e->val != NULL);
    FUZZ_CHECK(e->key_len < line_len && e->val_len < line_len);
    FUZZ_CHECK(e->key[e->key_len] == '\0' && e->val[e->val_len] == '\0');
    FUZZ_CHECK(fz_log_has_value(e->type) || e->val_len == 0);
    FUZZ_CHECK(fz_log_has_key(e->type) || e->key_len == 0);
    FUZZ_CHECK(fz_log_has_rev(e->type) || e->rev == 0);
    FUZZ_CHECK(fz_log_has_ttl(e->type) || e->ttl_ms == 0);
    size_t len;
    char *again = fz_log_encode(index, e, &len);
    struct raft_entry e2;
    bool torn = true;
    char why[160];
    FUZZ_CHECK(storage_parse_line(again, len, index, min_term, &e2, &torn, why,
                                  sizeof(why)) == RK_OK);
    FUZZ_CHECK(fz_log_same_entry(e, &e2));
    raft_entry_free(&e2);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    uint8_t mode = data[0];
    size_t len = size - 1;
    char *line = malloc(len + 16);
    FUZZ_CHECK(line != NULL);
    memcpy(line, data + 1, len);
    if (mode & 1)
        len += (size_t)sprintf(line + len, " %08" PRIx32, crc32_update(0, line, len));
    uint64_t index = mode & 2 ? fz_log_leading_number(line, len)
                     : mode & 4 ? 0 : 1u + (mode >> 3) % 4u;
    uint64_t min_term = mode >> 5;
    struct raft_entry e;
    bool torn = false;
    char why[160] = "";
    int rc = storage_parse_line(line, len, index, min_term, &e, &torn, why, sizeof(why));
    if (rc == RK_OK) {
        FUZZ_CHECK(!torn);
        FUZZ_CHECK(index == 0 || index == fz_log_leading_number(line, len));
        fz_log_check_entry(&e, len, fz_log_leading_number(line, len), min_term);
        raft_entry_free(&e);
    } else {
        FUZZ_CHECK(rc == RK_ERR_CORRUPT || rc == RK_ERR_NOMEM);
        FUZZ_CHECK(why[0] != '\0');
        /* The checksum we appended is right (but it needs a line before it). */
        FUZZ_CHECK(!(mode & 1) || !torn || size == 1);
    }
    free(line);
    return 0;
}
