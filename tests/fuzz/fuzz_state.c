/* tests/fuzz/fuzz_state.c - fuzz target: a whole NAME_state file (currentTerm and votedFor,
 * Raft paper Figure 2) through storage_parse_state (server/storage/storage.c), the parser
 * storage_open runs on it. Input: a mode byte, then the file. Mode bit 0: the target
 * appends " crc=XXXXXXXX\n" with the right checksum itself, so the fuzzer reaches the
 * fields behind it. Oracles: the parser agrees, both ways, with a separate model of the
 * format of storage.h (what one accepts the other accepts, with the same term and vote);
 * an accepted file is byte for byte what storage_save_hard_state would write for that
 * term and vote; a refused one has a reason and leaves term and vote untouched, and is
 * never refused for its checksum when the target appended it. */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "../../common/crc32.h"
#include "../../common/errors.h"
#include "../../server/storage/storage.h"
#include "fuzz.h"

#define FZ_STATE_CRC_TAIL 14u /* " crc=" + 8 hex digits + "\n" */

/* "term=N vote=V" (V = the vote, or "-") + the checksum tail: the canonical file. */
static size_t fz_state_encode(char *out, size_t cap, raft_term_t term, const char *vote)
{
    int n = snprintf(out, cap, "term=%" PRIu64 " vote=%s", term, vote[0] ? vote : "-");
    FUZZ_CHECK(n > 0 && (size_t)n + FZ_STATE_CRC_TAIL < cap);
    uint32_t crc = crc32_update(0, out, (size_t)n);
    n += snprintf(out + n, cap - (size_t)n, " crc=%08" PRIx32 "\n", crc);
    return (size_t)n;
}

/* The model: a decimal u64 without leading zeros, from *p up to end; advances *p. */
static bool fz_state_number(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        unsigned d = (unsigned)(**p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        (*p)++;
    }
    if (*p == s || (s[0] == '0' && *p - s > 1))
        return false;
    *out = v;
    return true;
}

/* The model: a vote name is 1..STORAGE_VOTE_MAX_LEN bytes of 0x21..0x7e; "-" is none. */
static bool fz_state_vote(const char *s, size_t len, char *vote)
{
    if (len == 0 || len > STORAGE_VOTE_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    if (len == 1 && s[0] == '-')
        len = 0;
    memcpy(vote, s, len);
    vote[len] = '\0';
    return true;
}

/* The model of the whole file: "term=N vote=V crc=XXXXXXXX\n", nothing more, the CRC-32
 * (lowercase hex) of what comes before " crc=". */
static bool fz_state_model(const char *t, size_t len, raft_term_t *term, char *vote)
{
    if (len < 5 + 1 + 6 + 1 + FZ_STATE_CRC_TAIL || memcmp(t, "term=", 5) != 0)
        return false;
    const char *end = t + len - FZ_STATE_CRC_TAIL, *p = t + 5;
    if (!fz_state_number(&p, end, term) || end - p < 7 || memcmp(p, " vote=", 6) != 0)
        return false;
    if (!fz_state_vote(p + 6, (size_t)(end - (p + 6)), vote))
        return false;
    char tail[FZ_STATE_CRC_TAIL + 1];
    uint32_t crc = crc32_update(0, t, (size_t)(end - t));
    snprintf(tail, sizeof(tail), " crc=%08" PRIx32 "\n", crc);
    return memcmp(end, tail, FZ_STATE_CRC_TAIL) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    uint8_t mode = data[0];
    size_t len = size - 1;
    char *text = malloc(len + FZ_STATE_CRC_TAIL + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data + 1, len);
    if (mode & 1)
        len += (size_t)sprintf(text + len, " crc=%08" PRIx32 "\n", crc32_update(0, text, len));
    raft_term_t term = 12345, model_term = 0;
    char vote[STORAGE_VOTE_MAX_LEN + 1] = "untouched", model_vote[STORAGE_VOTE_MAX_LEN + 1];
    char why[128] = "";
    int rc = storage_parse_state(text, len, &term, vote, why, sizeof(why));
    bool model_ok = fz_state_model(text, len, &model_term, model_vote);
    FUZZ_CHECK((rc == RK_OK) == model_ok);
    if (rc == RK_OK) {
        FUZZ_CHECK(term == model_term && strcmp(vote, model_vote) == 0);
        char again[256];
        size_t n = fz_state_encode(again, sizeof(again), term, vote);
        FUZZ_CHECK(n == len && memcmp(again, text, len) == 0);
    } else {
        FUZZ_CHECK(rc == RK_ERR_CORRUPT && why[0] != '\0');
        FUZZ_CHECK(term == 12345 && strcmp(vote, "untouched") == 0);
        FUZZ_CHECK(!(mode & 1) || len > STORAGE_STATE_MAX_LEN ||
                   strstr(why, "checksum") == NULL);
    }
    free(text);
    return 0;
}
