/* server/storage/snapshot.h - this server's snapshot (Raft paper §7, Figure 13): the
 * state machine up to an index, in DIR/NAME_snapshot, checksummed. Layout (integers
 * big-endian):
 *   magic "RKSNAP\0\n" | u32 version (3) | u64 index | u64 term     the last included entry
 *   | u32 conf_len | conf_len bytes: the configuration as of index, in the text form of
 *     common/membership.h (Raft thesis §4.1)
 *   | u64 image_len | the key-value image (server/kv/kv_image.h)
 *   | u32 CRC-32 of every byte before it
 * Versions 1 and 2 (before revisions) are refused: their keys' revisions are lost, and
 * giving them any would make servers that started from different snapshots disagree.
 * A snapshot is written to NAME_snapshot.tmp (one received from a leader to
 * NAME_snapshot.recv), fdatasync'ed, renamed over NAME_snapshot, and the directory is
 * fsynced; only then may the log prefix it covers be dropped. */
#ifndef RK_SNAPSHOT_H
#define RK_SNAPSHOT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../../common/membership.h"
#include "../../common/raft_msg.h"
#include "../../common/registry.h"

struct kv;
struct storage;
struct storage_loaded;

#define SNAPSHOT_VERSION 4u /* 4: keys with revisions and deadlines (kv_image.h); 3 (no
                               deadlines) is read too; 1 and 2 are refused */
#define SNAPSHOT_HEADER_FIXED 28u /* magic, version, index, term: what a chunk reader checks */

struct snapshot_meta {
    raft_index_t index;    /* lastIncludedIndex */
    raft_term_t term;      /* lastIncludedTerm */
    uint32_t version;      /* of a file read */
    struct membership conf; /* the configuration as of index */
    uint32_t conf_len;     /* conf in text form, made by snapshot_meta_init before any
                              fork: the forked writer only copies bytes */
    char conf_text[MEMBERSHIP_TEXT_MAX];
    uint64_t image_len;    /* set when a snapshot is loaded */
    uint64_t file_len;     /* set when a snapshot is loaded */
    uint32_t crc;          /* set when a snapshot is loaded */
};

/* The three files of one server. */
struct snapshot_paths {
    char dir[PATH_MAX];
    char file[PATH_MAX];   /* DIR/NAME_snapshot */
    char tmp[PATH_MAX];    /* DIR/NAME_snapshot.tmp, a snapshot being written */
    char recv[PATH_MAX];   /* DIR/NAME_snapshot.recv, a snapshot being received */
};

/* RK_OK, or RK_ERR_TOOBIG if a path would not fit. */
int snapshot_paths_init(struct snapshot_paths *p, const char *dir, const char *name);
/* Removes NAME_snapshot.tmp and NAME_snapshot.recv left by a crash: never used. */
void snapshot_remove_leftovers(const struct snapshot_paths *p);
/* Fills index, term and the configuration (and its text form). */
void snapshot_meta_init(struct snapshot_meta *m, raft_index_t index, raft_term_t term,
                        const struct membership *conf);

/* ---- writing ---- */
/* Creates (or truncates) NAME_snapshot.tmp for writing. The fd, or -1 with err set. */
int snapshot_tmp_create(const struct snapshot_paths *p, char *err, size_t errlen);
/* Writes the whole file (header from m, the image of kv, the CRC) to fd through buf
 * (cap >= 64 bytes) and fdatasyncs it. Only write(2), fdatasync(2) and memory copies:
 * safe in a forked child of a threaded process, provided crc32_update() was called once
 * before the fork. Returns 0 or an errno value. */
int snapshot_write_kv(int fd, const struct snapshot_meta *m, const struct kv *kv, uint8_t *buf,
                      size_t cap);
/* The same file in memory (malloc'ed into *data): for when fork is impossible.
 * RK_OK or RK_ERR_NOMEM. */
int snapshot_serialize(const struct snapshot_meta *m, const struct kv *kv, uint8_t **data,
                       size_t *len);
/* Writes len bytes to fd and fdatasyncs. 0 or an errno value. */
int snapshot_write_bytes(int fd, const uint8_t *data, size_t len);
/* Renames NAME_snapshot.tmp (from_recv: NAME_snapshot.recv) over NAME_snapshot and
 * fsyncs the directory. Only after this is the snapshot durable. */
int snapshot_install_file(const struct snapshot_paths *p, bool from_recv, char *err,
                          size_t errlen);
/* All of it: tmp, write, close, install. */
int snapshot_save(const struct snapshot_paths *p, const struct snapshot_meta *m,
                  const struct kv *kv, char *err, size_t errlen);

/* ---- loading ---- */
/* Reads and verifies path (magic, version, lengths, CRC) and, if kv is not NULL, builds
 * the state machine from it. RK_ERR_NOTFOUND if the file does not exist; RK_ERR_CORRUPT
 * with "PATH: reason" (and the byte offset where one applies) in err if it is bad: a
 * corrupt snapshot is never used. *kv is set only on RK_OK. */
int snapshot_load(const char *path, struct snapshot_meta *m, struct kv **kv, char *err,
                  size_t errlen);
/* The same checks and results for a whole snapshot file already in memory (len bytes at
 * data), named path in err. snapshot_load (and so snapshot_recv_verify and snapshot_dump)
 * runs this very parser on the bytes it reads, up to 1 MiB at a time; piece > 0 hands
 * them to it at most piece bytes at a time instead of all at once, so a test (the
 * fuzzer, tests/fuzz/fuzz_snapshot.c) can reach reads that straddle two pieces. */
int snapshot_parse(const uint8_t *data, size_t len, size_t piece, const char *path,
                   struct snapshot_meta *m, struct kv **kv, char *err, size_t errlen);

/* ---- InstallSnapshot chunks (Figure 13) ---- */
/* Up to max bytes of the snapshot file at path from offset, malloc'ed into *data; *done
 * if they reach the end. RK_ERR_NOTFOUND if the file does not hold the snapshot ending at
 * expect_index (missing, or replaced by a newer one); RK_ERR_INVAL for an offset past
 * its end. */
int snapshot_read_chunk(const char *path, raft_index_t expect_index, uint64_t offset,
                        uint32_t max, uint8_t **data, uint32_t *len, bool *done, char *err,
                        size_t errlen);
/* Writes a received chunk at offset into NAME_snapshot.recv; offset 0 starts a new file.
 * RK_ERR_INVAL for an offset past what was received (a lost chunk). */
int snapshot_recv_chunk(const struct snapshot_paths *p, uint64_t offset, const uint8_t *data,
                        uint32_t len, char *err, size_t errlen);
/* The last chunk is written: fdatasync NAME_snapshot.recv, verify it fully and check it
 * ends at (index, term); builds the state machine into *kv if kv is not NULL. Does not
 * install it (snapshot_install_file with from_recv does). */
int snapshot_recv_verify(const struct snapshot_paths *p, raft_index_t index, raft_term_t term,
                         struct snapshot_meta *m, struct kv **kv, char *err, size_t errlen);

/* ---- restart ---- */
/* Fits the loaded log to a snapshot ending at (index, term) (index 0: none): entries
 * the snapshot covers are dropped from ld; if the log has an entry at index with another
 * term, or ends before index, the whole log is discarded (Raft paper Figure 13, step 7)
 * and storage is reset so the next append is index + 1. Afterwards ld holds exactly the
 * entries after index (ld->first_index = index + 1). A log that starts past index + 1
 * (entries missing) is RK_ERR_CORRUPT. On RK_OK, err holds a note of what was dropped
 * ("" if nothing). */
int snapshot_align_log(struct storage *s, struct storage_loaded *ld, raft_index_t index,
                       raft_term_t term, char *err, size_t errlen);

/* ---- operator tool ---- */
/* Prints the header, every pair (sorted by key, escaped like the log) and every session
 * of the snapshot at path to out. RK_OK, or the load error with its message in err. */
int snapshot_dump(const char *path, FILE *out, char *err, size_t errlen);

#endif
