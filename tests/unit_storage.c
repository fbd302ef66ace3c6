/* tests/unit_storage.c - Check tests for server/storage: the text log (round trips,
 * escapes, client session fields and older lines without them, truncation, torn tails,
 * corruption) and the hard state file. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/crc32.h"
#include "../common/errors.h"
#include "../server/storage/storage.h"
#include "check_main.h"

#define NAME "server4"

/* One temp directory per test case, made and removed by the (unchecked) fixture in the
 * parent process, so it is cleaned up even when a forked test fails. */
static char base_dir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void base_setup(void)
{
    snprintf(base_dir, sizeof(base_dir), "/tmp/rk_unit_storage_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void base_teardown(void)
{
    nftw(base_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory for one test, under base_dir. */
static void new_dir(char *dir, size_t len)
{
    snprintf(dir, len, "%s/t_XXXXXX", base_dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    ck_assert_int_eq(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void path_of(char *out, size_t len, const char *dir, const char *suffix)
{
    snprintf(out, len, "%s/%s%s", dir, NAME, suffix);
}

/* Reads a file's text (NUL-terminated): its bytes up to the last non-zero one, since a
 * log is followed by preallocated zeros (storage.h). *len gets the text's length. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t cap = 4u << 20;
    char *data = malloc(cap);
    ck_assert_ptr_nonnull(data);
    *len = fread(data, 1, cap - 1, f);
    ck_assert_uint_lt(*len, cap - 1);
    while (*len > 0 && data[*len - 1] == '\0')
        (*len)--;
    data[*len] = '\0';
    fclose(f);
    return data;
}

static off_t text_size(const char *path)
{
    size_t len;
    free(read_file(path, &len));
    return (off_t)len;
}

static void write_file(const char *path, const char *mode, const char *data, size_t len)
{
    FILE *f = fopen(path, mode);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static off_t file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

static struct raft_entry entry(raft_term_t term, uint8_t type, const char *key,
                               uint32_t key_len, const char *val, uint32_t val_len)
{
    struct raft_entry e;
    ck_assert_int_eq(raft_entry_init(&e, term, type, key, key_len, val, val_len), RK_OK);
    return e;
}

static struct raft_entry set_entry(raft_term_t term, const char *key, const char *val)
{
    return entry(term, RAFT_ENTRY_SET, key, (uint32_t)strlen(key), val,
                 (uint32_t)strlen(val));
}

static void free_entries(struct raft_entry *es, int n)
{
    for (int i = 0; i < n; i++)
        raft_entry_free(&es[i]);
}

static struct storage *open_ok(const char *dir, struct storage_loaded *ld, char *err,
                               size_t errlen)
{
    struct storage *s = NULL;
    int rc = storage_open(&s, dir, NAME, ld, err, errlen);
    ck_assert_msg(rc == RK_OK, "storage_open: %d %s", rc, err);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void append_ok(struct storage *s, raft_index_t first, const struct raft_entry *es,
                      uint32_t n)
{
    char err[256];
    int rc = storage_append(s, first, es, n, err, sizeof(err));
    ck_assert_msg(rc == RK_OK, "storage_append: %d %s", rc, err);
    ck_assert_int_eq(storage_sync(s, err, sizeof(err)), RK_OK);
}

/* Appends "set kI vI" entries first..last in term `term`, one batch. */
static void append_sets(struct storage *s, raft_index_t first, raft_index_t last,
                        raft_term_t term)
{
    struct raft_entry es[64] = { { 0 } };
    int n = 0;
    ck_assert(last >= first && last - first < 64);
    for (raft_index_t i = first; i <= last; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "k%" PRIu64, i);
        snprintf(val, sizeof(val), "v%" PRIu64 " t%" PRIu64, i, term);
        es[n++] = set_entry(term, key, val);
    }
    append_ok(s, first, es, (uint32_t)n);
    free_entries(es, n);
}

static void assert_entry_eq(const struct raft_entry *got, const struct raft_entry *want)
{
    ck_assert_uint_eq(got->term, want->term);
    ck_assert_uint_eq(got->type, want->type);
    ck_assert_uint_eq(got->client_id, want->client_id);
    ck_assert_uint_eq(got->seq, want->seq);
    ck_assert_uint_eq(got->rev, want->rev);
    ck_assert_uint_eq(got->ttl_ms, want->ttl_ms);
    ck_assert_uint_eq(got->key_len, want->key_len);
    ck_assert_uint_eq(got->val_len, want->val_len);
    ck_assert(memcmp(got->key, want->key, want->key_len) == 0);
    ck_assert(memcmp(got->val, want->val, want->val_len) == 0);
    ck_assert_int_eq(got->key[got->key_len], '\0');
    ck_assert_int_eq(got->val[got->val_len], '\0');
}

/* prefix + " " + its CRC-32 in 8 lowercase hex digits: a line as storage writes it. */
static void line_with_crc(char *out, size_t len, const char *prefix)
{
    snprintf(out, len, "%s %08" PRIx32, prefix, crc32_update(0, prefix, strlen(prefix)));
}

/* prefix + " crc=" + its CRC-32 + newline: a state file as storage writes it. */
static void state_text(char *out, size_t len, const char *prefix)
{
    snprintf(out, len, "%s crc=%08" PRIx32 "\n", prefix,
             crc32_update(0, prefix, strlen(prefix)));
}

/* ---------- the log ---------- */

START_TEST(test_fresh_server)
{
    char dir[128], err[256], path[256];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(ld.term, 0);
    ck_assert_str_eq(ld.voted_for, "");
    ck_assert_uint_eq(ld.n_entries, 0);
    ck_assert_int_eq(ld.dropped_torn_tail, 0);
    ck_assert_uint_eq(storage_last_index(s), 0);
    path_of(path, sizeof(path), dir, "_log.txt");
    ck_assert_int_eq(file_size(path), 0);
    storage_loaded_free(&ld);
    storage_close(s);
    s = open_ok(dir, &ld, err, sizeof(err)); /* an empty existing log */
    ck_assert_uint_eq(ld.n_entries, 0);
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

/* An entry of a type the log has no name for is refused before anything is written: the
 * batch with it leaves the file as it was. */
START_TEST(test_unknown_type_refused)
{
    char dir[128], err[256];
    struct raft_entry es[] = { set_entry(1, "a", "1"), entry(1, 99, "b", 1, "2", 1) };
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    storage_loaded_free(&ld);
    append_ok(s, 1, es, 1);
    ck_assert_int_eq(storage_append(s, 2, es + 1, 1, err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_msg(strstr(err, "unknown type") != NULL, "err: %s", err);
    ck_assert_uint_eq(storage_last_index(s), 1);
    storage_close(s);
    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, 1);
    storage_loaded_free(&ld);
    storage_close(s);
    free_entries(es, 2);
    remove_dir(dir);
}
END_TEST

/* A configuration entry's value: the text form of common/membership.h. */
#define CONFIG_TEXT "0 voter server2 127.0.0.1 2000\n1 learner server7 10.0.0.7 7000\n"

START_TEST(test_round_trip_binary)
{
    char dir[128], err[256], all[256], rev[256];
    for (int i = 0; i < 256; i++) {
        all[i] = (char)i;
        rev[i] = (char)(255 - i);
    }
    struct raft_entry es[] = {
        entry(1, RAFT_ENTRY_NOOP, NULL, 0, NULL, 0),
        set_entry(1, "my key", "hello world"),
        entry(1, RAFT_ENTRY_SET, "a\"b\\c\nd\re\tf", 11, "\0\x01\x7f\x80\xff z\"", 8),
        entry(2, RAFT_ENTRY_SET, "", 0, "", 0),
        entry(2, RAFT_ENTRY_DELETE, "my key", 6, NULL, 0),
        entry(3, RAFT_ENTRY_SET, all, 256, rev, 256),
        entry(3, RAFT_ENTRY_DELETE, "", 0, NULL, 0),
        entry(9, RAFT_ENTRY_SET, "\\x41", 4, "\\", 1),
        /* a configuration entry keeps its text (thesis §4.1: a restarted server takes its
         * configuration from its own log) */
        entry(9, RAFT_ENTRY_CONFIG, "", 0, CONFIG_TEXT, (uint32_t)strlen(CONFIG_TEXT)),
        /* compare-and-set entries keep the revision they compare */
        entry(9, RAFT_ENTRY_CAS, "lock", 4, "me \"x\"", 6),
        entry(9, RAFT_ENTRY_CAS, "lock", 4, "", 0),
        entry(10, RAFT_ENTRY_CAD, "lock", 4, NULL, 0),
        /* expiring keys keep their time to live; the leader's EXPIRED entry its list */
        entry(10, RAFT_ENTRY_SETEX, "lease", 5, "me", 2),
        entry(10, RAFT_ENTRY_EXPIRE, "lease", 5, NULL, 0),
        entry(10, RAFT_ENTRY_CAS_TTL, "lock", 4, "you", 3),
        entry(11, RAFT_ENTRY_EXPIRED, "", 0, "\0\0\0\4lock\0\0\0\0\0\0\0\x11", 16),
    };
    int n = (int)(sizeof(es) / sizeof(es[0]));
    es[n - 7].rev = 18446744073709551615ull;
    es[n - 6].rev = 0;
    es[n - 5].rev = 12;
    es[n - 5].client_id = 7;
    es[n - 5].seq = 3;
    es[n - 4].ttl_ms = 100;
    es[n - 3].ttl_ms = 18446744073709551615ull;
    es[n - 3].client_id = 7;
    es[n - 3].seq = 4;
    es[n - 2].ttl_ms = 2500;
    es[n - 2].rev = 16;
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    append_ok(s, 1, es, 3);
    append_ok(s, 4, es + 3, (uint32_t)n - 3);
    ck_assert_uint_eq(storage_last_index(s), (raft_index_t)n);
    storage_close(s);
    storage_loaded_free(&ld);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, (raft_index_t)n);
    ck_assert_int_eq(ld.dropped_torn_tail, 0);
    for (int i = 0; i < n; i++)
        assert_entry_eq(&ld.entries[i], &es[i]);
    ck_assert_uint_eq(storage_last_index(s), (raft_index_t)n);
    storage_loaded_free(&ld);
    ck_assert_ptr_null(ld.entries);
    storage_close(s);
    free_entries(es, n);
    remove_dir(dir);
}
END_TEST

START_TEST(test_file_is_readable_text)
{
    char dir[128], err[256], path[256], want[512];
    struct raft_entry es[] = {
        entry(1, RAFT_ENTRY_NOOP, NULL, 0, NULL, 0),
        set_entry(1, "my key", "hello world"),
        entry(2, RAFT_ENTRY_DELETE, "my key", 6, NULL, 0),
        entry(2, RAFT_ENTRY_SET, "q\"\\\n\x01\xff\x7f", 7, "tab\there\0.", 10),
        entry(2, RAFT_ENTRY_SETEX, "lease", 5, "me", 2),
        entry(2, RAFT_ENTRY_CAS_TTL, "lock", 4, "", 0),
        entry(2, RAFT_ENTRY_EXPIRED, "", 0, "\0\0\0\1k\0\0\0\0\0\0\0\x05", 13),
    };
    es[4].ttl_ms = 1500;
    es[5].ttl_ms = 100;
    es[5].rev = 5;
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    append_ok(s, 1, es, 7);
    storage_close(s);
    storage_loaded_free(&ld);

    size_t len;
    path_of(path, sizeof(path), dir, "_log.txt");
    char *text = read_file(path, &len);
    const char *lines[] = {
        "1 1 noop",
        "2 1 set \"my key\" \"hello world\"",
        "3 2 delete \"my key\"",
        "4 2 set \"q\\\"\\\\\\n\\x01\\xff\\x7f\" \"tab\\there\\x00.\"",
        "5 2 setex \"lease\" \"me\" ttl=1500",
        "6 2 cas_ttl \"lock\" \"\" rev=5 ttl=100",
        "7 2 expired \"\\x00\\x00\\x00\\x01k\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x05\"",
    };
    char *p = text;
    for (int i = 0; i < 7; i++) {
        line_with_crc(want, sizeof(want), lines[i]);
        char *nl = strchr(p, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        ck_assert_str_eq(p, want);
        p = nl + 1;
    }
    ck_assert_str_eq(p, "");
    free(text);
    free_entries(es, 7);
    remove_dir(dir);
}
END_TEST

/* An entry of a client session (Raft thesis §6.3). */
static struct raft_entry session_entry(struct raft_entry e, uint64_t client_id, uint64_t seq)
{
    e.client_id = client_id;
    e.seq = seq;
    return e;
}

/* The lines of path, each checked against lines[i] + " " + its crc. */
static void assert_log_lines(const char *path, const char *const *lines, int n)
{
    char want[512];
    size_t len;
    char *text = read_file(path, &len);
    char *p = text;
    for (int i = 0; i < n; i++) {
        line_with_crc(want, sizeof(want), lines[i]);
        char *nl = strchr(p, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        ck_assert_str_eq(p, want);
        p = nl + 1;
    }
    ck_assert_str_eq(p, "");
    free(text);
}

START_TEST(test_round_trip_sessions)
{
    char dir[128], err[256], path[256];
    struct raft_entry es[] = {
        entry(1, RAFT_ENTRY_NOOP, NULL, 0, NULL, 0),
        entry(2, RAFT_ENTRY_REGISTER, NULL, 0, NULL, 0),
        session_entry(set_entry(2, "my key", "v"), 2, 1),
        session_entry(entry(2, RAFT_ENTRY_DELETE, "my key", 6, NULL, 0), 2, 2),
        set_entry(3, "no session", "x"),
        session_entry(set_entry(3, "k", "seq=1 client=2"), UINT64_MAX, UINT64_MAX),
        session_entry(entry(3, RAFT_ENTRY_DELETE, "", 0, NULL, 0), 7, 0),
    };
    const char *lines[] = {
        "1 1 noop",
        "2 2 register",
        "3 2 set \"my key\" \"v\" client=2 seq=1",
        "4 2 delete \"my key\" client=2 seq=2",
        "5 3 set \"no session\" \"x\"",
        "6 3 set \"k\" \"seq=1 client=2\" client=18446744073709551615 seq=18446744073709551615",
        "7 3 delete \"\" client=7 seq=0",
    };
    int n = (int)(sizeof(es) / sizeof(es[0]));
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    append_ok(s, 1, es, (uint32_t)n);
    storage_close(s);
    storage_loaded_free(&ld);
    path_of(path, sizeof(path), dir, "_log.txt");
    assert_log_lines(path, lines, n);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, (raft_index_t)n);
    for (int i = 0; i < n; i++)
        assert_entry_eq(&ld.entries[i], &es[i]);
    storage_loaded_free(&ld);
    storage_close(s);
    free_entries(es, n);
    remove_dir(dir);
}
END_TEST

/* A log written before sessions existed loads, with client_id = seq = 0, and new
 * lines with session fields can follow it. */
START_TEST(test_old_format_lines_load)
{
    char dir[128], err[256], path[256], line[512];
    const char *old[] = { "1 1 noop", "2 1 set \"a\" \"b\"", "3 2 delete \"a\"" };
    new_dir(dir, sizeof(dir));
    path_of(path, sizeof(path), dir, "_log.txt");
    for (int i = 0; i < 3; i++) {
        line_with_crc(line, sizeof(line) - 1, old[i]);
        strcat(line, "\n");
        write_file(path, "ab", line, strlen(line));
    }
    struct storage_loaded ld;
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, 3);
    ck_assert_int_eq(ld.dropped_torn_tail, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(ld.entries[i].client_id, 0);
        ck_assert_uint_eq(ld.entries[i].seq, 0);
    }
    ck_assert_uint_eq(ld.entries[1].type, RAFT_ENTRY_SET);
    ck_assert_str_eq(ld.entries[1].val, "b");
    ck_assert_uint_eq(ld.entries[2].type, RAFT_ENTRY_DELETE);
    struct raft_entry more[] = {
        entry(2, RAFT_ENTRY_REGISTER, NULL, 0, NULL, 0),
        session_entry(set_entry(2, "a", "c"), 4, 1),
    };
    append_ok(s, 4, more, 2);
    storage_loaded_free(&ld);
    storage_close(s);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, 5);
    assert_entry_eq(&ld.entries[3], &more[0]);
    assert_entry_eq(&ld.entries[4], &more[1]);
    ck_assert_uint_eq(ld.entries[1].client_id, 0);
    storage_loaded_free(&ld);
    storage_close(s);
    free_entries(more, 2);
    remove_dir(dir);
}
END_TEST

START_TEST(test_truncate_append_reopen)
{
    char dir[128], err[256];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    append_sets(s, 1, 5, 1);
    ck_assert_int_eq(storage_truncate(s, 0, err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_int_eq(storage_truncate(s, 9, err, sizeof(err)), RK_OK); /* beyond: no-op */
    ck_assert_uint_eq(storage_last_index(s), 5);
    ck_assert_int_eq(storage_truncate(s, 3, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(storage_last_index(s), 2);
    struct raft_entry e = set_entry(2, "x", "y");
    ck_assert_int_eq(storage_append(s, 4, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    raft_entry_free(&e);
    append_sets(s, 3, 4, 2);
    storage_close(s);
    storage_loaded_free(&ld);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, 4);
    ck_assert_str_eq(ld.entries[1].val, "v2 t1");
    ck_assert_str_eq(ld.entries[2].val, "v3 t2");
    ck_assert_str_eq(ld.entries[3].val, "v4 t2");
    ck_assert_uint_eq(ld.entries[3].term, 2);
    /* truncate everything, then start again at 1 */
    ck_assert_int_eq(storage_truncate(s, 1, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(storage_last_index(s), 0);
    append_sets(s, 1, 1, 3);
    storage_close(s);
    storage_loaded_free(&ld);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, 1);
    ck_assert_str_eq(ld.entries[0].val, "v1 t3");
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

START_TEST(test_append_rejects_bad_batches)
{
    char dir[128], err[256], path[256];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    struct raft_entry e = set_entry(2, "k", "v");
    ck_assert_int_eq(storage_append(s, 2, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(err, "first index 2"));
    ck_assert_int_eq(storage_append(s, 0, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    append_ok(s, 1, &e, 1);
    ck_assert_int_eq(storage_append(s, 1, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_int_eq(storage_append(s, 3, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    e.term = 1; /* lower than the last entry's term 2 */
    ck_assert_int_eq(storage_append(s, 2, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    e.term = 2;
    e.type = RAFT_ENTRY_EXPIRED + 1;
    ck_assert_int_eq(storage_append(s, 2, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_int_eq(storage_append(s, 2, NULL, 0, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(storage_last_index(s), 1);
    path_of(path, sizeof(path), dir, "_log.txt");
    size_t len;
    char *text = read_file(path, &len);
    ck_assert_ptr_eq(strchr(text, '\n'), text + len - 1); /* still one line */
    free(text);
    raft_entry_free(&e);
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

/* Writes entries 1..n, closes, and returns the log's path and each line's offset. */
static void make_log(const char *dir, int n, char *path, size_t path_len, off_t *starts)
{
    char err[256];
    struct storage_loaded ld;
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    append_sets(s, 1, (raft_index_t)n, 1);
    storage_close(s);
    storage_loaded_free(&ld);
    path_of(path, path_len, dir, "_log.txt");
    size_t len;
    char *text = read_file(path, &len);
    int line = 0;
    starts[line++] = 0;
    for (size_t i = 0; i < len && line <= n; i++)
        if (text[i] == '\n')
            starts[line++] = (off_t)i + 1;
    ck_assert_int_eq(line, n + 1);
    free(text);
}

START_TEST(test_torn_tail_without_newline)
{
    char dir[128], err[256], path[256];
    off_t starts[8];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    make_log(dir, 3, path, sizeof(path), starts);
    const char partial[] = "4 1 set \"k4\" \"v4 t";
    write_file(path, "ab", partial, sizeof(partial) - 1);

    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_int_eq(ld.dropped_torn_tail, 1);
    ck_assert_uint_eq(ld.n_entries, 3);
    ck_assert_msg(strstr(err, NAME "_log.txt:4: dropped torn last line") != NULL, "%s", err);
    ck_assert_int_eq(file_size(path), starts[3]);
    append_sets(s, 4, 4, 1); /* the log goes on after the cut */
    storage_close(s);
    storage_loaded_free(&ld);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_int_eq(ld.dropped_torn_tail, 0);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(ld.n_entries, 4);
    ck_assert_str_eq(ld.entries[3].val, "v4 t1");
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

/* The log file keeps zeros written ahead of its last line (storage.h). A crash while an
 * append overwrote them leaves part of a line before the zeros: a torn tail, dropped.
 * Zeros followed by more lines are not a tail: that is corruption, reported with the
 * byte offset. */
START_TEST(test_preallocated_tail)
{
    char dir[128], err[256], path[256], want[64];
    off_t starts[8];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    make_log(dir, 3, path, sizeof(path), starts);
    size_t len;
    char *text = read_file(path, &len);
    ck_assert_int_gt(file_size(path), (off_t)len); /* preallocated */
    free(text);

    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    const char partial[] = "4 1 set \"k4\" \"v4";
    ck_assert_int_eq(pwrite(fd, partial, sizeof(partial) - 1, starts[3]),
                     (ssize_t)sizeof(partial) - 1);
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_int_eq(ld.dropped_torn_tail, 1);
    ck_assert_uint_eq(ld.n_entries, 3);
    append_sets(s, 4, 5, 1); /* the log goes on where the torn line was */
    storage_loaded_free(&ld);
    storage_close(s);
    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, 5);
    ck_assert_int_eq(ld.dropped_torn_tail, 0);
    storage_loaded_free(&ld);
    storage_close(s);

    /* a hole of zeros, then lines further on: not a torn last line */
    text = read_file(path, &len);
    const char line5[] = "5 1 noop 00000000\n6 1 noop 00000000\n";
    ck_assert_int_eq(pwrite(fd, line5, sizeof(line5) - 1, (off_t)len + 100),
                     (ssize_t)sizeof(line5) - 1);
    close(fd);
    free(text);
    s = (struct storage *)&ld;
    ck_assert_int_eq(storage_open(&s, dir, NAME, &ld, err, sizeof(err)), RK_ERR_CORRUPT);
    ck_assert_ptr_null(s);
    snprintf(want, sizeof(want), "(byte offset %zu)", len);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    remove_dir(dir);
}
END_TEST

START_TEST(test_torn_tail_bad_crc)
{
    char dir[128], err[256], path[256];
    off_t starts[8];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    make_log(dir, 3, path, sizeof(path), starts);
    size_t len;
    char *text = read_file(path, &len);
    text[len - 2] = text[len - 2] == '0' ? '1' : '0'; /* last hex digit of line 3's crc */
    write_file(path, "wb", text, len);
    free(text);

    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_int_eq(ld.dropped_torn_tail, 1);
    ck_assert_uint_eq(ld.n_entries, 2);
    ck_assert_msg(strstr(err, NAME "_log.txt:3: dropped torn last line") != NULL, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "checksum"));
    ck_assert_int_eq(file_size(path), starts[2]);
    ck_assert_uint_eq(storage_last_index(s), 2);
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

START_TEST(test_corrupt_middle_line)
{
    char dir[128], err[256], path[256], want[64];
    off_t starts[8];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    make_log(dir, 3, path, sizeof(path), starts);
    size_t len;
    char *text = read_file(path, &len);
    text[starts[1] + 10] ^= 0x01; /* a byte of line 2's key */
    write_file(path, "wb", text, len);
    free(text);

    struct storage *s = (struct storage *)&ld; /* must be reset to NULL */
    ck_assert_int_eq(storage_open(&s, dir, NAME, &ld, err, sizeof(err)), RK_ERR_CORRUPT);
    ck_assert_ptr_null(s);
    ck_assert_ptr_null(ld.entries);
    ck_assert_msg(strstr(err, NAME "_log.txt:2: ") != NULL, "%s", err);
    snprintf(want, sizeof(want), "(byte offset %jd)", (intmax_t)starts[1]);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    ck_assert_int_eq(file_size(path), (off_t)len); /* a corrupt log is left alone */
    remove_dir(dir);
}
END_TEST

/* Writes the given lines (each gets its crc) as the log, and opens it. */
static int open_handmade(const char *dir, const char *const *lines, int n, char *err,
                         size_t errlen, struct storage_loaded *ld)
{
    char path[256], line[512];
    path_of(path, sizeof(path), dir, "_log.txt");
    write_file(path, "wb", "", 0);
    for (int i = 0; i < n; i++) {
        line_with_crc(line, sizeof(line) - 1, lines[i]);
        strcat(line, "\n");
        write_file(path, "ab", line, strlen(line));
    }
    struct storage *s = NULL;
    int rc = storage_open(&s, dir, NAME, ld, err, errlen);
    storage_close(s);
    storage_loaded_free(ld);
    return rc;
}

START_TEST(test_checksummed_bad_lines_are_corrupt)
{
    static const struct {
        const char *lines[3];
        const char *want;
    } cases[] = {
        { { "1 1 noop", "3 1 noop", "4 1 noop" }, ":2: index 3 where 2 was expected" },
        { { "1 2 noop", "2 1 noop", "3 2 noop" }, ":2: term 1 is lower" },
        { { "1 1 noop", "2 1 set \"a\\q\" \"b\"", "3 1 noop" }, ":2: bad escape" },
        { { "1 1 noop", "2 1 put \"a\" \"b\"", "3 1 noop" }, ":2: unknown command" },
        { { "1 1 noop", "2 1 set \"a\" \"b", "3 1 noop" }, ":2: unterminated quote" },
        { { "1 1 noop", "2 1 delete \"a\" \"b\"", "3 1 noop" }, ":2: unexpected text" },
        { { "1 1 noop", "02 1 noop", "3 1 noop" }, ":2: bad index" },
        { { "1 1 noop", "2 1 set \"\xc3\xa9\" \"b\"", "3 1 noop" }, ":2: raw control" },
        /* a checksummed last line was written whole: bad content is not a torn write */
        /* session fields: both, in this order, decimal, nothing after them */
        { { "1 1 noop", "2 1 set \"a\" \"b\" client=1", "3 1 noop" }, ":2: unexpected text" },
        { { "1 1 noop", "2 1 set \"a\" \"b\" seq=1 client=1", "3 1 noop" },
          ":2: unexpected text" },
        { { "1 1 noop", "2 1 delete \"a\" client=x seq=1", "3 1 noop" }, ":2: unexpected text" },
        { { "1 1 noop", "2 1 delete \"a\" client=01 seq=1", "3 1 noop" },
          ":2: unexpected text" },
        { { "1 1 noop", "2 1 delete \"a\" client=1 seq=2 x", "3 1 noop" },
          ":2: unexpected text after the session fields" },
        { { "1 1 noop", "2 1 delete \"a\" client=1  seq=2", "3 1 noop" }, ":2: unexpected text" },
        { { "1 1 noop", "2 1 register \"a\"", "3 1 noop" }, ":2: unexpected text" },
        { { "1 1 noop", "2 1 config", "3 1 noop" }, ":2: expected the configuration" },
        { { "1 1 noop", "2 1 cas \"k\" \"v\"", "3 1 noop" }, ":2: expected \"rev=N\"" },
        { { "1 1 noop", "2 1 cad \"k\" client=1 seq=1", "3 1 noop" }, ":2: expected \"rev=N\"" },
        { { "1 1 noop", "2 1 cad \"k\" rev=x", "3 1 noop" }, ":2: expected \"rev=N\"" },
        { { "1 1 noop", "2 1 set \"k\" \"v\" rev=1", "3 1 noop" }, ":2: unexpected text" },
        { { "1 1 noop", "2 1 noop", "5 1 noop" }, ":3: index 5 where 3 was expected" },
        { { "1 1 noop", "2 3 noop", "3 2 noop" }, ":3: term 2 is lower" },
    };
    char dir[128], err[256];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = open_handmade(dir, cases[i].lines, 3, err, sizeof(err), &ld);
        ck_assert_msg(rc == RK_ERR_CORRUPT, "case %zu: rc %d %s", i, rc, err);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
    }
    const char *good[] = { "1 1 noop", "2 1 set \"\\x41\\\"\" \"\"",
                           "3 4 delete \"A\" client=2 seq=9" };
    ck_assert_int_eq(open_handmade(dir, good, 3, err, sizeof(err), &ld), RK_OK);
    remove_dir(dir);
}
END_TEST

START_TEST(test_many_entries)
{
    char dir[128], err[256];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    for (raft_index_t i = 1; i <= 5000; i += 50)
        append_sets(s, i, i + 49, 1 + i / 1000);
    ck_assert_int_eq(storage_truncate(s, 2500, err, sizeof(err)), RK_OK);
    storage_close(s);
    storage_loaded_free(&ld);
    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, 2499);
    ck_assert_str_eq(ld.entries[2498].key, "k2499");
    ck_assert_uint_eq(ld.entries[2498].term, 3);
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

/* A write that fails half-way (here: RLIMIT_FSIZE, like a full disk) is an error and
 * leaves the file and the in-memory index as they were. */
START_TEST(test_failed_write_rolls_back)
{
    char dir[128], err[256], path[256], big[2000];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    append_sets(s, 1, 2, 1);
    path_of(path, sizeof(path), dir, "_log.txt");
    off_t size = text_size(path);

    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 100;
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct raft_entry e = set_entry(1, "big", big);
    int rc = storage_append(s, 3, &e, 1, err, sizeof(err));
    raft_entry_free(&e);
    ck_assert_int_eq(rc, RK_ERR_IO);
    ck_assert_msg(strstr(err, NAME "_log.txt: write: ") != NULL, "%s", err);
    ck_assert_uint_eq(storage_last_index(s), 2);
    ck_assert_int_eq(text_size(path), size);
    append_sets(s, 3, 3, 1); /* a small entry still fits */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    storage_close(s);
    storage_loaded_free(&ld);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.n_entries, 3);
    ck_assert_int_eq(ld.dropped_torn_tail, 0);
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

START_TEST(test_open_errors)
{
    char dir[128], missing[256], err[256];
    struct storage_loaded ld;
    struct storage *s = NULL;
    new_dir(dir, sizeof(dir));
    snprintf(missing, sizeof(missing), "%s/no_such_dir", dir);
    ck_assert_int_eq(storage_open(&s, missing, NAME, &ld, err, sizeof(err)), RK_ERR_IO);
    ck_assert_msg(strstr(err, "no_such_dir") && strstr(err, "No such file"), "%s", err);
    ck_assert_int_eq(storage_open(&s, dir, "", &ld, err, sizeof(err)), RK_ERR_INVAL);

    struct storage *first = open_ok(dir, &ld, err, sizeof(err));
    storage_loaded_free(&ld);
    ck_assert_int_eq(storage_open(&s, dir, NAME, &ld, err, sizeof(err)), RK_ERR_IO);
    ck_assert_msg(strstr(err, "in use") != NULL, "%s", err);
    storage_close(first);
    remove_dir(dir);
}
END_TEST

/* ---------- the hard state ---------- */

START_TEST(test_hard_state_survives_reopen)
{
    char dir[128], err[256], path[256], want[128];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_int_eq(storage_save_hard_state(s, 5, "server3", err, sizeof(err)), RK_OK);
    storage_close(s);
    storage_loaded_free(&ld);

    path_of(path, sizeof(path), dir, "_state");
    size_t len;
    char *text = read_file(path, &len);
    state_text(want, sizeof(want), "term=5 vote=server3");
    ck_assert_str_eq(text, want);
    free(text);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.term, 5);
    ck_assert_str_eq(ld.voted_for, "server3");
    ck_assert_int_eq(storage_save_hard_state(s, 6, NULL, err, sizeof(err)), RK_OK);
    storage_close(s);
    storage_loaded_free(&ld);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.term, 6);
    ck_assert_str_eq(ld.voted_for, "");
    ck_assert_int_eq(storage_save_hard_state(s, 7, "", err, sizeof(err)), RK_OK);
    ck_assert_int_eq(storage_save_hard_state(s, 8, "a b", err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_int_eq(storage_save_hard_state(s, 8, "-", err, sizeof(err)), RK_ERR_INVAL);
    storage_close(s);
    storage_loaded_free(&ld);

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.term, 7);
    ck_assert_str_eq(ld.voted_for, "");
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

START_TEST(test_partial_tmp_state_ignored)
{
    char dir[128], err[256], tmp[256];
    struct storage_loaded ld;
    new_dir(dir, sizeof(dir));
    struct storage *s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_int_eq(storage_save_hard_state(s, 4, "s1", err, sizeof(err)), RK_OK);
    storage_close(s);
    storage_loaded_free(&ld);
    path_of(tmp, sizeof(tmp), dir, "_state.tmp");
    write_file(tmp, "wb", "term=9 vo", 9); /* a crash in the middle of a save */

    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.term, 4);
    ck_assert_str_eq(ld.voted_for, "s1");
    ck_assert_int_eq(access(tmp, F_OK), -1);
    storage_loaded_free(&ld);
    storage_close(s);
    remove_dir(dir);
}
END_TEST

START_TEST(test_corrupt_state_file)
{
    static const char *bad[] = {
        "term=5 vote=s1 crc=00000000\n",
        "term=5 vote=s1\n",
        "",
        "garbage",
    };
    char dir[128], err[256], path[256];
    struct storage_loaded ld;
    struct storage *s = NULL;
    new_dir(dir, sizeof(dir));
    path_of(path, sizeof(path), dir, "_state");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(path, "wb", bad[i], strlen(bad[i]));
        int rc = storage_open(&s, dir, NAME, &ld, err, sizeof(err));
        ck_assert_msg(rc == RK_ERR_CORRUPT, "case %zu: %d %s", i, rc, err);
        ck_assert_msg(strstr(err, NAME "_state: ") != NULL, "case %zu: %s", i, err);
        ck_assert_ptr_null(s);
    }
    char good[128];
    state_text(good, sizeof(good), "term=12 vote=-"); /* a valid hand-written one */
    write_file(path, "wb", good, strlen(good));
    s = open_ok(dir, &ld, err, sizeof(err));
    ck_assert_uint_eq(ld.term, 12);
    ck_assert_str_eq(ld.voted_for, "");
    storage_close(s);
    storage_loaded_free(&ld);
    remove_dir(dir);
}
END_TEST

static Suite *storage_suite(void)
{
    Suite *suite = suite_create("storage");
    TCase *log = tcase_create("log");
    tcase_add_unchecked_fixture(log, base_setup, base_teardown);
    tcase_add_test(log, test_fresh_server);
    tcase_add_test(log, test_round_trip_binary);
    tcase_add_test(log, test_unknown_type_refused);
    tcase_add_test(log, test_file_is_readable_text);
    tcase_add_test(log, test_round_trip_sessions);
    tcase_add_test(log, test_old_format_lines_load);
    tcase_add_test(log, test_truncate_append_reopen);
    tcase_add_test(log, test_append_rejects_bad_batches);
    tcase_add_test(log, test_torn_tail_without_newline);
    tcase_add_test(log, test_torn_tail_bad_crc);
    tcase_add_test(log, test_preallocated_tail);
    tcase_add_test(log, test_corrupt_middle_line);
    tcase_add_test(log, test_checksummed_bad_lines_are_corrupt);
    tcase_add_test(log, test_many_entries);
    tcase_add_test(log, test_failed_write_rolls_back);
    tcase_add_test(log, test_open_errors);
    suite_add_tcase(suite, log);
    TCase *state = tcase_create("hard_state");
    tcase_add_unchecked_fixture(state, base_setup, base_teardown);
    tcase_add_test(state, test_hard_state_survives_reopen);
    tcase_add_test(state, test_partial_tmp_state_ignored);
    tcase_add_test(state, test_corrupt_state_file);
    suite_add_tcase(suite, state);
    return suite;
}

RK_CHECK_MAIN(storage_suite)
