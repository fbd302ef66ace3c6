/* server/storage/storage.h - this server's durable files in DIR:
 *   NAME_log.txt  the Raft log, one entry per line, readable with cat:
 *                 "<index> <term> set \"<key>\" \"<value>\" <crc32 hex>", "... delete \"<key>\" <crc>",
 *                 "... noop <crc>", "... register <crc>"; keys and values C-escaped inside
 *                 the quotes. An entry of a client session (Raft thesis §6.3) has
 *                 " client=<id> seq=<n>" before the crc, e.g.
 *                 "6 2 set \"my key\" \"v\" client=5 seq=3 1a2b3c4d"; lines without
 *                 them (older logs) load with client_id = seq = 0.
 *   NAME_state    the current term and vote ("term=N vote=NAME|- crc=HEX"), replaced atomically.
 * Nothing here is durable until storage_sync() (or storage_save_hard_state()) returns. */
#ifndef RK_STORAGE_H
#define RK_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/raft_msg.h"

struct storage;

struct storage_loaded {
    raft_term_t term;
    char voted_for[64];         /* "" = no vote in this term */
    struct raft_entry *entries; /* entries[0] is index 1; the caller owns the array */
    raft_index_t n_entries;
    int dropped_torn_tail;      /* 1 if a torn last line was dropped (a warning was written to err) */
};

/* Opens (creating if missing) DIR/NAME_log.txt and DIR/NAME_state and loads them.
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
void storage_close(struct storage *s);
/* Frees loaded->entries and each entry. */
void storage_loaded_free(struct storage_loaded *loaded);

#endif
