/* server/storage/storage.h - this server's durable files in DIR:
 *   NAME_log.txt  the Raft log, one entry per line, readable with cat:
 *                 "<index> <term> set \"<key>\" \"<value>\" <crc32 hex>", "... delete \"<key>\" <crc>",
 *                 "... noop <crc>", "... register <crc>", "... config \"<configuration
 *                 text>\" <crc>" (Raft thesis §4: a restarted server takes its configuration
 *                 from its own log), "... cas \"<key>\" \"<value>\" rev=<n> <crc>",
 *                 "... cad \"<key>\" rev=<n> <crc>"; keys and values C-escaped inside the
 *                 quotes. An entry of a client session (Raft thesis §6.3) has
 *                 " client=<id> seq=<n>" before the crc, e.g.
 *                 "6 2 set \"my key\" \"v\" client=5 seq=3 1a2b3c4d"; lines without
 *                 them (older logs) load with client_id = seq = 0.
 *                 Up to 1 MiB of zero bytes follows the last line: space written ahead
 *                 so that appends do not grow the file (faster fdatasync); the log
 *                 ends at its last non-zero byte.
 *   NAME_state    the current term and vote ("term=N vote=NAME|- crc=HEX"), replaced atomically.
 * Nothing here is durable until storage_sync() (or storage_save_hard_state()) returns. */
#ifndef RK_STORAGE_H
#define RK_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/raft_msg.h"

struct storage;

#define STORAGE_VOTE_MAX_LEN 63     /* the longest vote name NAME_state holds */
#define STORAGE_STATE_MAX_LEN 256   /* a longer NAME_state is corrupt */

struct storage_loaded {
    raft_term_t term;
    char voted_for[STORAGE_VOTE_MAX_LEN + 1]; /* "" = no vote in this term */
    struct raft_entry *entries; /* entries[0] is index first_index; the caller owns the array */
    raft_index_t n_entries;
    raft_index_t first_index;   /* 1, or more when the log was compacted (Raft paper §7):
                                   the index in the file's first line */
    int dropped_torn_tail;      /* 1 if a torn last line was dropped (a warning was written to err) */
};

/* Opens (creating if missing) DIR/NAME_log.txt and DIR/NAME_state and loads them. The
 * log may start at any index (its first line's); a leftover NAME_log.txt.tmp of an
 * interrupted storage_compact is removed.
 * A torn last line (no newline, or bad checksum on the last line) is dropped and cut
 * from the file, with a warning in err and dropped_torn_tail = 1.
 * A bad line elsewhere is RK_ERR_CORRUPT with "DIR/NAME_log.txt:LINE: reason" in err.
 * A missing or empty log is an empty log. */
int storage_open(struct storage **out, const char *dir, const char *name,
                 struct storage_loaded *loaded, char *err, size_t errlen);
/* Writes term and vote ("" or NULL = none) durably (temp file, fdatasync, rename,
 * directory fsync) before returning. */
int storage_save_hard_state(struct storage *s, raft_term_t term, const char *voted_for,
                            char *err, size_t errlen);
/* Drops entries with index >= from (from >= 1). Durable after storage_sync(). */
int storage_truncate(struct storage *s, raft_index_t from, char *err, size_t errlen);
/* Appends n entries; first_index must be the current last index + 1. */
int storage_append(struct storage *s, raft_index_t first_index, const struct raft_entry *entries,
                   uint32_t n, char *err, size_t errlen);
/* fdatasync of the log. */
int storage_sync(struct storage *s, char *err, size_t errlen);
raft_index_t storage_last_index(const struct storage *s);
/* The index the log starts at (1 unless compacted or reset). */
raft_index_t storage_first_index(const struct storage *s);
/* Raft paper §7: drops entries <= index (clamped to the last index) once a snapshot
 * covering them is durable. Atomic: the kept lines go to NAME_log.txt.tmp, fdatasync,
 * rename over the log, directory fsync; a crash leaves the old or the new file. */
int storage_compact(struct storage *s, raft_index_t index, char *err, size_t errlen);
/* Raft paper Figure 13, step 7: empties the log (durably); the next append is index + 1. */
int storage_reset(struct storage *s, raft_index_t index, char *err, size_t errlen);
void storage_close(struct storage *s);
/* Parses one log line (len bytes, without its newline) into *e, which then owns a new
 * allocation (raft_entry_free). The line must carry expect_index (0: any index >= 1, for
 * the first line of a log that starts after a snapshot) and a term >= min_term
 * (the previous entry's). The loader of storage_open uses it for every line; the fuzzer
 * (tests/fuzz/fuzz_log_line.c) too. Returns RK_OK, RK_ERR_NOMEM, or RK_ERR_CORRUPT with
 * the reason in why and *torn = true when the checksum is missing or wrong (what an
 * interrupted write leaves) rather than the content. */
int storage_parse_line(const char *line, size_t len, raft_index_t expect_index,
                       raft_term_t min_term, struct raft_entry *e, bool *torn, char *why,
                       size_t whylen);
/* Parses a whole NAME_state file (len bytes): exactly "term=N vote=NAME|- crc=XXXXXXXX\n"
 * (N without leading zeros, the CRC-32 of what precedes " crc=" in lowercase hex), as
 * storage_save_hard_state writes it. On RK_OK sets *term and voted_for (at least
 * STORAGE_VOTE_MAX_LEN + 1 bytes; "" for "-", no vote). Otherwise RK_ERR_CORRUPT with the
 * reason in why, and *term and voted_for untouched. storage_open's loader uses it; the
 * fuzzer (tests/fuzz/fuzz_state.c) too. */
int storage_parse_state(const char *text, size_t len, raft_term_t *term, char *voted_for,
                        char *why, size_t whylen);
/* Frees loaded->entries and each entry. */
void storage_loaded_free(struct storage_loaded *loaded);

#endif
