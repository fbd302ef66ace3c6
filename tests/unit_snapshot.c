/* tests/unit_snapshot.c - snapshots and log compaction (Raft paper §7, Figure 13) below the
 * server: the key-value image (pairs with binary keys, client sessions and their expiry
 * order), the snapshot file (round trip, every flipped byte and every truncation detected
 * with the file named, the dump), writing it from a forked child, InstallSnapshot chunks
 * (read, receive, verify, install), storage compaction and reset with reopen, and a crash
 * at each step of taking, compacting and installing a snapshot followed by a restart. */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../server/kv/kv.h"
#include "../server/kv/kv_image.h"
#include "../server/storage/snapshot.h"
#include "../server/storage/storage.h"
#include "check_main.h"

#define NAME "s2"
#define MAX_SESSIONS 3     /* small, so REGISTERs expire sessions in the sample logs */
#define LOG_LEN 120        /* entries in the sample log */
#define ERR_LEN 512

/* ---------- temp directories (made and removed by the unchecked fixture) ---------- */

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
    snprintf(base_dir, sizeof(base_dir), "/tmp/rk_unit_snapshot_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void base_teardown(void)
{
    nftw(base_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void new_dir(char *dir, size_t len)
{
    snprintf(dir, len, "%s/t_XXXXXX", base_dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static off_t file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    *len = (size_t)file_size(path);
    uint8_t *data = malloc(*len + 1);
    ck_assert_ptr_nonnull(data);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(data, 1, *len, f), *len);
    fclose(f);
    return data;
}

static void write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* ---------- sample state machines and logs ---------- */

static const char bin_key[] = { 'k', '\0', '\xff', '\n', '"' };

/* The entry at index i of the sample log, in term `term`: SETs (binary keys, empty
 * values), DELETEs, NOOPs, REGISTERs and commands of client sessions, whose recorded
 * replies are of every kind (a SET applied, a DELETE of a key that is not there, a CAS
 * that held or failed, with its revision). */
static struct raft_entry sample_entry(raft_index_t i, raft_term_t term)
{
    char key[32], val[48];
    int key_len = snprintf(key, sizeof(key), "key%" PRIu64, i % 13);
    int val_len = snprintf(val, sizeof(val), "value %" PRIu64 " \t\x01", i);
    struct raft_entry e;
    int rc;
    switch (i % 7) {
    case 0: rc = raft_entry_init(&e, term, RAFT_ENTRY_REGISTER, NULL, 0, NULL, 0); break;
    case 4: rc = raft_entry_init(&e, term, RAFT_ENTRY_DELETE, key, (uint32_t)key_len, NULL, 0);
            break;
    case 5: rc = raft_entry_init(&e, term, RAFT_ENTRY_SET, bin_key, sizeof(bin_key), "", 0);
            break;
    case 6: rc = raft_entry_init(&e, term, RAFT_ENTRY_NOOP, NULL, 0, NULL, 0); break;
    case 1: /* a key with a deadline */
        rc = raft_entry_init(&e, term, RAFT_ENTRY_SETEX, key, (uint32_t)key_len, val,
                             (uint32_t)val_len);
        e.ttl_ms = 1000 + i;
        break;
    default:
        rc = raft_entry_init(&e, term, RAFT_ENTRY_SET, key, (uint32_t)key_len, val,
                             (uint32_t)val_len);
    }
    ck_assert_int_eq(rc, RK_OK);
    if (i % 7 == 3 && i >= 7) { /* a command of the session REGISTERed at i - 3 */
        if (i % 2 == 0) { /* every other one deletes a key never set: its reply is ABSENT */
            raft_entry_free(&e);
            key_len = snprintf(key, sizeof(key), "never set %" PRIu64, i);
            rc = raft_entry_init(&e, term, RAFT_ENTRY_DELETE, key, (uint32_t)key_len, NULL, 0);
            ck_assert_int_eq(rc, RK_OK);
        } else if (i % 4 == 1) { /* a cas expecting "cas" absent: the first one (17) holds,
                                    the later ones fail with its revision */
            raft_entry_free(&e);
            rc = raft_entry_init(&e, term, RAFT_ENTRY_CAS, "cas", 3, val, (uint32_t)val_len);
            ck_assert_int_eq(rc, RK_OK);
        }
        e.client_id = i - 3;
        e.seq = i;
    }
    return e;
}

/* The term of entry i in the sample log (terms never decrease). */
static raft_term_t sample_term(raft_index_t i)
{
    return 1 + i / 50;
}

static void apply_sample(struct kv *kv, raft_index_t from, raft_index_t to)
{
    for (raft_index_t i = from; i <= to; i++) {
        struct raft_entry e = sample_entry(i, sample_term(i));
        ck_assert_int_gt(kv_apply(kv, i, &e), 0);
        raft_entry_free(&e);
    }
}

/* The state machine after entries 1..n of the sample log. */
static struct kv *sample_kv(raft_index_t n)
{
    struct kv *kv = kv_new_with_max_sessions(MAX_SESSIONS);
    ck_assert_ptr_nonnull(kv);
    apply_sample(kv, 1, n);
    return kv;
}

static void sample_meta(struct snapshot_meta *m, raft_index_t index)
{
    struct registry_server servers[3] = { { .name = "s1", .host = "h1", .port = 1 },
                                          { .name = "s2", .host = "h2", .port = 2 },
                                          { .name = "s3", .host = "h3", .port = 3 } };
    struct registry reg = { .servers = servers, .n = 3 };
    static struct membership conf;
    membership_from_registry(&reg, &conf);
    conf.m[2].role = MEMBER_LEARNER;
    snapshot_meta_init(m, index, sample_term(index), &conf);
}

/* Saves a snapshot of the sample state at index into dir. */
static void save_sample(const struct snapshot_paths *p, raft_index_t index)
{
    struct snapshot_meta m;
    sample_meta(&m, index);
    struct kv *kv = sample_kv(index);
    char err[ERR_LEN];
    ck_assert_msg(snapshot_save(p, &m, kv, err, sizeof(err)) == RK_OK, "%s", err);
    kv_free(kv);
}

static void paths_in(struct snapshot_paths *p, const char *dir)
{
    ck_assert_int_eq(snapshot_paths_init(p, dir, NAME), RK_OK);
}

/* A storage in dir holding the sample log's entries first..last (appended and synced). */
static struct storage *sample_storage(const char *dir, raft_index_t last)
{
    struct storage *st;
    struct storage_loaded ld;
    char err[ERR_LEN];
    ck_assert_msg(storage_open(&st, dir, NAME, &ld, err, sizeof(err)) == RK_OK, "%s", err);
    storage_loaded_free(&ld);
    for (raft_index_t i = storage_last_index(st) + 1; i <= last; i++) {
        struct raft_entry e = sample_entry(i, sample_term(i));
        ck_assert_msg(storage_append(st, i, &e, 1, err, sizeof(err)) == RK_OK, "%s", err);
        raft_entry_free(&e);
    }
    ck_assert_int_eq(storage_sync(st, err, sizeof(err)), RK_OK);
    return st;
}

/* ---------- the key-value image ---------- */

static int count_session(void *ctx, uint64_t id, const struct kv_session_info *s)
{
    (void)id;
    (void)s;
    (*(int *)ctx)++;
    return 0;
}

/* Round trip through the file: pairs (binary keys, empty values), sessions, applied. */
START_TEST(test_image_round_trip)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    struct kv *kv = sample_kv(LOG_LEN);
    ck_assert_int_eq(kv_set(kv, "", 0, "empty key", 9), RK_OK);
    ck_assert_uint_eq(kv_session_count(kv), MAX_SESSIONS);
    struct snapshot_meta m, got;
    sample_meta(&m, LOG_LEN);
    ck_assert_msg(snapshot_save(&p, &m, kv, err, sizeof(err)) == RK_OK, "%s", err);
    ck_assert(!exists(p.tmp));

    struct kv *loaded = NULL;
    ck_assert_msg(snapshot_load(p.file, &got, &loaded, err, sizeof(err)) == RK_OK, "%s", err);
    ck_assert_uint_eq(got.index, LOG_LEN);
    ck_assert_uint_eq(got.term, sample_term(LOG_LEN));
    ck_assert_int_eq(got.version, SNAPSHOT_VERSION);
    ck_assert(membership_equal(&got.conf, &m.conf)); /* the configuration, addresses and roles */
    ck_assert_str_eq(got.conf.m[2].name, "s3");
    ck_assert_int_eq(got.conf.m[2].role, MEMBER_LEARNER);
    ck_assert_uint_eq(got.file_len, (uint64_t)file_size(p.file));
    ck_assert_uint_eq(got.image_len, kv_image_size(kv));
    ck_assert_uint_eq(kv_digest(loaded), kv_digest(kv));
    ck_assert_uint_eq(kv_count(loaded), kv_count(kv));
    ck_assert_uint_eq(kv_last_applied(loaded), LOG_LEN);
    uint32_t len;
    const char *v = kv_get(loaded, bin_key, sizeof(bin_key), &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(len, 0);
    int sessions = 0;
    kv_visit_sessions(loaded, count_session, &sessions);
    ck_assert_int_eq(sessions, MAX_SESSIONS);

    /* The session table keeps its bound and expiry order: both maps go on identically. */
    apply_sample(kv, LOG_LEN + 1, LOG_LEN + 40);
    apply_sample(loaded, LOG_LEN + 1, LOG_LEN + 40);
    ck_assert_uint_eq(kv_digest(loaded), kv_digest(kv));
    kv_free(kv);
    kv_free(loaded);
}
END_TEST

/* The in-memory serialization (no fork) is byte for byte the file. */
START_TEST(test_serialize_matches_file)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    save_sample(&p, 90);
    struct snapshot_meta m;
    sample_meta(&m, 90);
    struct kv *kv = sample_kv(90);
    uint8_t *mem;
    size_t mem_len, file_len;
    ck_assert_int_eq(snapshot_serialize(&m, kv, &mem, &mem_len), RK_OK);
    uint8_t *file = read_all(p.file, &file_len);
    ck_assert_uint_eq(mem_len, file_len);
    ck_assert_mem_eq(mem, file, file_len);
    (void)err;
    free(mem);
    free(file);
    kv_free(kv);
}
END_TEST

/* What the server does: a forked child writes through a small buffer and _exits. */
START_TEST(test_write_from_forked_child)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    struct snapshot_meta m, got;
    sample_meta(&m, LOG_LEN);
    struct kv *kv = sample_kv(LOG_LEN);
    uint8_t buf[64]; /* tiny: many flushes */
    int fd = snapshot_tmp_create(&p, err, sizeof(err));
    ck_assert_int_ge(fd, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(snapshot_write_kv(fd, &m, kv, buf, sizeof(buf)) == 0 ? 0 : 1);
    close(fd);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(snapshot_install_file(&p, false, err, sizeof(err)) == RK_OK, "%s", err);
    struct kv *loaded = NULL;
    ck_assert_msg(snapshot_load(p.file, &got, &loaded, err, sizeof(err)) == RK_OK, "%s", err);
    ck_assert_uint_eq(kv_digest(loaded), kv_digest(kv));
    kv_free(kv);
    kv_free(loaded);
}
END_TEST

/* A kv image in memory, for kv_image_read. */
struct mem_src {
    const uint8_t *data;
    size_t len, pos;
};

static int mem_get(void *ctx, void *buf, size_t len)
{
    struct mem_src *s = ctx;
    if (len > s->len - s->pos)
        return RK_ERR_CORRUPT;
    memcpy(buf, s->data + s->pos, len);
    s->pos += len;
    return RK_OK;
}

static int mem_put(void *ctx, const void *data, size_t len)
{
    struct { uint8_t *p; size_t len; } *d = ctx;
    memcpy(d->p + d->len, data, len);
    d->len += len;
    return 0;
}

static size_t put_u(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
    return (size_t)bytes;
}

/* last_applied 9, revision `rev`, the pairs given (key i at revision i + 1), sessions
 * (id, last_use) given, bound 4. */
/* What build_image_rev writes for each pair's deadline (version 4), or version 3 pairs
 * without one. */
static uint32_t image_version = KV_IMAGE_VERSION;
static uint64_t image_ttl_ms, image_ttl_index;

static size_t build_image_rev(uint8_t *p, uint64_t rev, const char *const *keys, int n_keys,
                              const uint64_t (*sessions)[2], int n_sessions)
{
    size_t n = put_u(p, 9, 8);
    n += put_u(p + n, rev, 8);
    n += put_u(p + n, (uint64_t)n_keys, 8);
    for (int i = 0; i < n_keys; i++) {
        n += put_u(p + n, strlen(keys[i]), 4);
        n += put_u(p + n, 1, 4);
        n += put_u(p + n, (uint64_t)i + 1, 8);
        if (image_version >= 4) {
            n += put_u(p + n, image_ttl_ms, 8);
            n += put_u(p + n, image_ttl_index, 8);
        }
        memcpy(p + n, keys[i], strlen(keys[i]));
        n += strlen(keys[i]);
        p[n++] = 'v';
    }
    n += put_u(p + n, 4, 4);
    n += put_u(p + n, (uint64_t)n_sessions, 4);
    for (int i = 0; i < n_sessions; i++) {
        n += put_u(p + n, sessions[i][0], 8);
        n += put_u(p + n, 1, 8);
        n += put_u(p + n, sessions[i][1], 8);
        p[n++] = KV_APPLIED;
        n += put_u(p + n, 2, 8);
    }
    return n;
}

static size_t build_image(uint8_t *p, const char *const *keys, int n_keys,
                          const uint64_t (*sessions)[2], int n_sessions)
{
    return build_image_rev(p, 8, keys, n_keys, sessions, n_sessions);
}

static int read_image(const uint8_t *data, size_t len, uint64_t claimed, char *err)
{
    struct mem_src src = { .data = data, .len = len };
    struct kv *kv = NULL;
    int rc = kv_image_read(&kv, image_version, claimed, mem_get, &src, err, ERR_LEN);
    kv_free(kv);
    return rc;
}

/* Images that pass the checksum but are malformed are still refused (a bug, not a
 * disk error, but never loaded). */
START_TEST(test_image_structure_checked)
{
    uint8_t img[512];
    char err[ERR_LEN];
    const char *good_keys[] = { "a", "b" }, *dup_keys[] = { "a", "a" };
    const uint64_t good_sessions[][2] = { { 3, 4 }, { 5, 6 } };
    const uint64_t bad_order[][2] = { { 3, 6 }, { 5, 4 } };
    const uint64_t too_new[][2] = { { 3, 4 }, { 5, 10 } };
    size_t n = build_image(img, good_keys, 2, good_sessions, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_OK);
    n = build_image(img, dup_keys, 2, good_sessions, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "distinct"));
    n = build_image(img, good_keys, 2, bad_order, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "out of order"));
    n = build_image(img, good_keys, 2, too_new, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_CORRUPT);
    n = build_image(img, good_keys, 2, good_sessions, 2);
    ck_assert_int_eq(read_image(img, n, n - 1, err), RK_ERR_CORRUPT); /* cut short */
    img[n] = 0;
    ck_assert_int_eq(read_image(img, n + 1, n + 1, err), RK_ERR_CORRUPT); /* a byte more */
    put_u(img + 16, UINT64_MAX, 8); /* a pair count the image cannot hold */
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "image byte"));
    /* revisions: none past the last applied index, no key's past the last one */
    n = build_image_rev(img, 10, good_keys, 2, good_sessions, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "past the last applied"));
    n = build_image_rev(img, 1, good_keys, 2, good_sessions, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "revision 2 is past the last one"));
}
END_TEST

/* Deadlines survive an image: the same time to live and setting entry; a loaded key
 * counts its whole time to live from the map's first clock. */
START_TEST(test_image_keeps_deadlines)
{
    struct kv *kv = sample_kv(200);
    ck_assert_uint_ge(kv_ttl_count(kv), 5);
    uint8_t *image = malloc(kv_image_size(kv));
    ck_assert_ptr_nonnull(image);
    struct mem_dst { uint8_t *p; size_t len; } dst = { image, 0 };
    ck_assert_int_eq(kv_image_write(kv, mem_put, &dst), 0);
    struct mem_src src = { .data = image, .len = dst.len };
    struct kv *got = NULL;
    char err[ERR_LEN];
    ck_assert_int_eq(kv_image_read(&got, KV_IMAGE_VERSION, dst.len, mem_get, &src, err,
                                   ERR_LEN), RK_OK);
    ck_assert_uint_eq(kv_digest(got), kv_digest(kv));
    ck_assert_uint_eq(kv_ttl_count(got), kv_ttl_count(kv));
    kv_set_now(got, 700000);
    uint64_t ttl_ms, set_index, left, min_ttl = UINT64_MAX;
    ck_assert(kv_ttl_get(got, "key2", 4, &ttl_ms, &set_index)); /* 197 = 15 * 13 + 2 */
    ck_assert_uint_eq(ttl_ms, 1197);
    ck_assert_uint_eq(set_index, 197);
    ck_assert(kv_ttl_left(got, "key2", 4, &left));
    ck_assert_uint_eq(left, 1197);
    for (int k = 0; k < 13; k++) {
        char key[8];
        int len = snprintf(key, sizeof(key), "key%d", k);
        if (kv_ttl_get(kv, key, (uint32_t)len, &ttl_ms, &set_index) && ttl_ms < min_ttl)
            min_ttl = ttl_ms;
    }
    ck_assert_uint_eq(kv_next_deadline(got), 700000 + min_ttl);
    free(image);
    kv_free(kv);
    kv_free(got);
}
END_TEST

/* Deadlines in an image: a time to live with the entry that set it (at or before the last
 * applied index); a version 3 image has none and still loads. */
START_TEST(test_image_deadlines_checked)
{
    uint8_t img[512];
    char err[ERR_LEN];
    const char *keys[] = { "a", "b" };
    const uint64_t sessions[][2] = { { 3, 4 }, { 5, 6 } };
    image_ttl_ms = 5000;
    image_ttl_index = 9;
    size_t n = build_image(img, keys, 2, sessions, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_OK);
    image_ttl_index = 10; /* past the last applied index, 9 */
    n = build_image(img, keys, 2, sessions, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "deadline was set at 10"));
    image_ttl_index = 0; /* a time to live that no entry set */
    n = build_image(img, keys, 2, sessions, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "no entry set it"));
    image_ttl_ms = 0;
    image_version = 3;
    n = build_image(img, keys, 2, sessions, 2);
    ck_assert_int_eq(read_image(img, n, n, err), RK_OK);
    image_version = 2;
    ck_assert_int_eq(read_image(img, n, n, err), RK_ERR_INVAL);
    image_version = KV_IMAGE_VERSION;
}
END_TEST

/* ---------- corruption of the file ---------- */

static void assert_load_fails(const char *path, const char *why)
{
    char err[ERR_LEN] = "";
    struct snapshot_meta m;
    struct kv *kv = NULL;
    int rc = snapshot_load(path, &m, &kv, err, sizeof(err));
    ck_assert_msg(rc == RK_ERR_CORRUPT, "%s: load returned %d (%s)", why, rc, err);
    ck_assert_ptr_null(kv);
    ck_assert_msg(strstr(err, path) != NULL, "%s: the error does not name the file: %s", why,
                  err);
    rc = snapshot_load(path, &m, NULL, err, sizeof(err)); /* verification only */
    ck_assert_msg(rc == RK_ERR_CORRUPT, "%s: verify returned %d", why, rc);
}

/* Every single flipped byte, anywhere in the file, is detected. */
START_TEST(test_every_flipped_byte_detected)
{
    char dir[128];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    save_sample(&p, 40);
    size_t len;
    uint8_t *good = read_all(p.file, &len);
    ck_assert_uint_gt(len, 100);
    for (size_t i = 0; i < len; i++) {
        good[i] ^= (uint8_t)(1u << (i % 8));
        write_all(p.file, good, len);
        char why[64];
        snprintf(why, sizeof(why), "byte %zu flipped", i);
        assert_load_fails(p.file, why);
        good[i] ^= (uint8_t)(1u << (i % 8));
    }
    free(good);
}
END_TEST

/* Every truncation, and a trailing extra byte, is detected (with the offset). */
START_TEST(test_truncation_detected)
{
    char dir[128];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    save_sample(&p, 40);
    size_t len;
    uint8_t *good = read_all(p.file, &len);
    for (size_t cut = 0; cut < len; cut++) {
        write_all(p.file, good, cut);
        char why[64];
        snprintf(why, sizeof(why), "cut to %zu bytes", cut);
        assert_load_fails(p.file, why);
    }
    uint8_t *longer = malloc(len + 1);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, good, len);
    longer[len] = 0;
    write_all(p.file, longer, len + 1);
    assert_load_fails(p.file, "one byte appended");
    char err[ERR_LEN];
    struct snapshot_meta m;
    write_all(p.file, good, len - 1);
    ck_assert_int_eq(snapshot_load(p.file, &m, NULL, err, sizeof(err)), RK_ERR_CORRUPT);
    ck_assert_msg(strstr(err, "truncated") != NULL, "%s", err);
    free(longer);
    free(good);
}
END_TEST

START_TEST(test_wrong_magic_and_missing)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    save_sample(&p, 40);
    size_t len;
    uint8_t *data = read_all(p.file, &len);
    memcpy(data, "RKLOG\0\0\n", 8);
    write_all(p.file, data, len);
    assert_load_fails(p.file, "wrong magic");
    struct snapshot_meta m;
    ck_assert_int_eq(snapshot_load(p.file, &m, NULL, err, sizeof(err)), RK_ERR_CORRUPT);
    ck_assert_msg(strstr(err, "magic") != NULL && strstr(err, "offset 0") != NULL, "%s", err);
    write_all(p.file, "hello", 5);
    assert_load_fails(p.file, "not a snapshot at all");
    unlink(p.file);
    ck_assert_int_eq(snapshot_load(p.file, &m, NULL, err, sizeof(err)), RK_ERR_NOTFOUND);
    free(data);
}
END_TEST

/* ---------- the dump ---------- */

static char *dump_to_string(const char *path, int *rc, char *err)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    *rc = snapshot_dump(path, f, err, ERR_LEN);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    char *text = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(text);
    rewind(f);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

START_TEST(test_dump)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    save_sample(&p, 40);
    int rc;
    char *text = dump_to_string(p.file, &rc, err);
    ck_assert_int_eq(rc, RK_OK);
    ck_assert_ptr_nonnull(strstr(text, "index 40\n"));
    ck_assert_ptr_nonnull(strstr(text, "term 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "configuration s1 s2 s3\n"));
    ck_assert_ptr_nonnull(strstr(text, " ok\n"));
    /* escaped like the log: NUL, 0xff, newline and quote in the key */
    ck_assert_ptr_nonnull(strstr(text, "set \"k\\x00\\xff\\n\\\"\" \"\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "set \"key1\" \"value 1 \\t\\x01\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "session client=28 last_seq=31 last_result=applied "
                                       "last_use=31\n"));
    ck_assert_ptr_nonnull(strstr(text, "session client=35 last_seq=38 last_result=absent "
                                       "last_use=38\n"));
    /* sorted by key */
    const char *key1 = strstr(text, "\"key1\""), *key2 = strstr(text, "\"key2\"");
    ck_assert(key1 != NULL && key2 != NULL && key1 < key2);
    free(text);

    size_t len;
    uint8_t *data = read_all(p.file, &len);
    data[len / 2] ^= 0x40;
    write_all(p.file, data, len);
    text = dump_to_string(p.file, &rc, err);
    ck_assert_int_eq(rc, RK_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err, p.file));
    ck_assert_str_eq(text, ""); /* nothing printed from a corrupt file */
    free(text);
    free(data);
}
END_TEST

/* ---------- InstallSnapshot chunks ---------- */

/* Copies the snapshot of `from` to `to` in chunks of `chunk` bytes, as leader and follower
 * do. Returns the number of chunks. */
static int transfer(const struct snapshot_paths *from, const struct snapshot_paths *to,
                    raft_index_t index, uint32_t chunk)
{
    char err[ERR_LEN];
    uint64_t offset = 0;
    bool done = false;
    int chunks = 0;
    while (!done) {
        ck_assert_int_lt(chunks, 100000);
        uint8_t *data;
        uint32_t len;
        ck_assert_msg(snapshot_read_chunk(from->file, index, offset, chunk, &data, &len, &done,
                                          err, sizeof(err)) == RK_OK, "%s", err);
        ck_assert_msg(snapshot_recv_chunk(to, offset, data, len, err, sizeof(err)) == RK_OK,
                      "%s", err);
        free(data);
        offset += len;
        chunks++;
    }
    return chunks;
}

START_TEST(test_chunks_round_trip)
{
    char dir_a[128], dir_b[128], err[ERR_LEN];
    new_dir(dir_a, sizeof(dir_a));
    new_dir(dir_b, sizeof(dir_b));
    struct snapshot_paths a, b;
    paths_in(&a, dir_a);
    paths_in(&b, dir_b);
    save_sample(&a, 100);
    off_t size = file_size(a.file);
    int chunks = transfer(&a, &b, 100, 97);
    ck_assert_int_eq(chunks, (int)((size + 96) / 97));
    ck_assert_int_eq(file_size(b.recv), size);

    struct snapshot_meta m;
    struct kv *kv = NULL;
    ck_assert_msg(snapshot_recv_verify(&b, 100, sample_term(100), &m, &kv, err,
                                       sizeof(err)) == RK_OK, "%s", err);
    struct kv *want = sample_kv(100);
    ck_assert_uint_eq(kv_digest(kv), kv_digest(want));
    ck_assert(!exists(b.file)); /* verified, not installed yet */
    ck_assert_int_eq(snapshot_install_file(&b, true, err, sizeof(err)), RK_OK);
    ck_assert(exists(b.file) && !exists(b.recv));
    kv_free(kv);
    kv = NULL;
    ck_assert_int_eq(snapshot_load(b.file, &m, &kv, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(kv_digest(kv), kv_digest(want));
    kv_free(kv);
    kv_free(want);
}
END_TEST

START_TEST(test_chunk_errors)
{
    char dir_a[128], dir_b[128], err[ERR_LEN];
    new_dir(dir_a, sizeof(dir_a));
    new_dir(dir_b, sizeof(dir_b));
    struct snapshot_paths a, b;
    paths_in(&a, dir_a);
    paths_in(&b, dir_b);
    uint8_t *data;
    uint32_t len;
    bool done;
    ck_assert_int_eq(snapshot_read_chunk(a.file, 100, 0, 64, &data, &len, &done, err,
                                         sizeof(err)), RK_ERR_NOTFOUND); /* no file */
    save_sample(&a, 100);
    uint64_t size = (uint64_t)file_size(a.file);
    /* replaced by a newer snapshot: the core's request for index 99 is stale */
    ck_assert_int_eq(snapshot_read_chunk(a.file, 99, 0, 64, &data, &len, &done, err,
                                         sizeof(err)), RK_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, a.file));
    ck_assert_int_eq(snapshot_read_chunk(a.file, 100, size + 1, 64, &data, &len, &done, err,
                                         sizeof(err)), RK_ERR_INVAL);
    ck_assert_int_eq(snapshot_read_chunk(a.file, 100, size - 10, 64, &data, &len, &done, err,
                                         sizeof(err)), RK_OK);
    ck_assert(done && len == 10);
    free(data);

    /* receiving: a gap (a lost chunk) is refused; offset 0 starts over */
    ck_assert_int_eq(snapshot_recv_chunk(&b, 0, (const uint8_t *)"0123456789", 10, err,
                                         sizeof(err)), RK_OK);
    ck_assert_int_eq(snapshot_recv_chunk(&b, 20, (const uint8_t *)"x", 1, err, sizeof(err)),
                     RK_ERR_INVAL);
    ck_assert_int_eq(snapshot_recv_chunk(&b, 10, (const uint8_t *)"ab", 2, err, sizeof(err)),
                     RK_OK);
    ck_assert_int_eq(file_size(b.recv), 12);
    ck_assert_int_eq(snapshot_recv_chunk(&b, 0, (const uint8_t *)"xyz", 3, err, sizeof(err)),
                     RK_OK);
    ck_assert_int_eq(file_size(b.recv), 3);

    /* a complete transfer, but announced with another term, or damaged on the way */
    struct snapshot_meta m;
    struct kv *kv = NULL;
    transfer(&a, &b, 100, 50);
    ck_assert_int_eq(snapshot_recv_verify(&b, 100, sample_term(100) + 1, &m, &kv, err,
                                          sizeof(err)), RK_ERR_CORRUPT);
    ck_assert_ptr_null(kv);
    ck_assert_msg(strstr(err, b.recv) != NULL, "%s", err);
    ck_assert_int_eq(snapshot_recv_chunk(&b, 60, (const uint8_t *)"!", 1, err, sizeof(err)),
                     RK_OK);
    ck_assert_int_eq(snapshot_recv_verify(&b, 100, sample_term(100), &m, &kv, err,
                                          sizeof(err)), RK_ERR_CORRUPT);
    ck_assert_ptr_null(kv);
    ck_assert(!exists(b.file));
}
END_TEST

/* ---------- storage: compaction and reset ---------- */

static void open_loaded(const char *dir, struct storage **st, struct storage_loaded *ld)
{
    char err[ERR_LEN] = "";
    ck_assert_msg(storage_open(st, dir, NAME, ld, err, sizeof(err)) == RK_OK, "%s", err);
}

static void assert_loaded_sample(const struct storage_loaded *ld, raft_index_t first,
                                 raft_index_t last)
{
    ck_assert_uint_eq(ld->first_index, first);
    ck_assert_uint_eq(ld->n_entries, last - first + 1);
    for (raft_index_t i = first; i <= last; i++) {
        struct raft_entry want = sample_entry(i, sample_term(i));
        const struct raft_entry *got = &ld->entries[i - first];
        ck_assert_uint_eq(got->term, want.term);
        ck_assert_uint_eq(got->type, want.type);
        ck_assert_uint_eq(got->key_len, want.key_len);
        ck_assert_mem_eq(got->key, want.key, want.key_len);
        ck_assert_uint_eq(got->client_id, want.client_id);
        raft_entry_free(&want);
    }
}

START_TEST(test_storage_compact)
{
    char dir[128], err[ERR_LEN], log[PATH_MAX];
    new_dir(dir, sizeof(dir));
    snprintf(log, sizeof(log), "%s/%s_log.txt", dir, NAME);
    struct storage *st = sample_storage(dir, 100);
    ck_assert_int_eq(storage_compact(st, 60, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(storage_first_index(st), 61);
    ck_assert_uint_eq(storage_last_index(st), 100);
    size_t len;
    uint8_t *text = read_all(log, &len);
    ck_assert_mem_eq(text, "61 2 ", 5); /* absolute indexes stay in the lines */
    free(text);
    ck_assert_int_eq(storage_compact(st, 30, err, sizeof(err)), RK_OK); /* already gone */
    ck_assert_uint_eq(storage_first_index(st), 61);
    ck_assert_int_eq(storage_truncate(st, 60, err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_int_eq(storage_truncate(st, 91, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(storage_last_index(st), 90);
    storage_close(st);

    struct storage_loaded ld;
    open_loaded(dir, &st, &ld);
    assert_loaded_sample(&ld, 61, 90);
    storage_loaded_free(&ld);
    storage_close(st);
    st = sample_storage(dir, 110); /* appends 91..110 after the reopen */
    /* past the end: clamped; the file is empty but the next append continues */
    ck_assert_int_eq(storage_compact(st, 500, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(storage_first_index(st), 111);
    ck_assert_int_eq(file_size(log), 0);
    struct raft_entry e = sample_entry(111, sample_term(111));
    ck_assert_int_eq(storage_append(st, 112, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_int_eq(storage_append(st, 111, &e, 1, err, sizeof(err)), RK_OK);
    ck_assert_int_eq(storage_sync(st, err, sizeof(err)), RK_OK);
    raft_entry_free(&e);
    storage_close(st);
    open_loaded(dir, &st, &ld);
    assert_loaded_sample(&ld, 111, 111);
    storage_loaded_free(&ld);
    storage_close(st);
}
END_TEST

START_TEST(test_storage_reset)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct storage *st = sample_storage(dir, 10);
    ck_assert_int_eq(storage_reset(st, 500, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(storage_last_index(st), 500);
    ck_assert_uint_eq(storage_first_index(st), 501);
    struct raft_entry e = sample_entry(501, 3);
    ck_assert_int_eq(storage_append(st, 11, &e, 1, err, sizeof(err)), RK_ERR_INVAL);
    ck_assert_int_eq(storage_append(st, 501, &e, 1, err, sizeof(err)), RK_OK);
    ck_assert_int_eq(storage_sync(st, err, sizeof(err)), RK_OK);
    raft_entry_free(&e);
    storage_close(st);
    struct storage_loaded ld;
    open_loaded(dir, &st, &ld);
    ck_assert_uint_eq(ld.first_index, 501);
    ck_assert_uint_eq(ld.n_entries, 1);
    ck_assert_uint_eq(ld.entries[0].term, 3);
    storage_loaded_free(&ld);
    /* an empty log says nothing of where it starts: restart aligns it with the snapshot */
    ck_assert_int_eq(storage_reset(st, 700, err, sizeof(err)), RK_OK);
    storage_close(st);
    open_loaded(dir, &st, &ld);
    ck_assert_uint_eq(ld.first_index, 1);
    ck_assert_uint_eq(ld.n_entries, 0);
    ck_assert_int_eq(snapshot_align_log(st, &ld, 700, 3, err, sizeof(err)), RK_OK);
    ck_assert_uint_eq(storage_last_index(st), 700);
    storage_loaded_free(&ld);
    storage_close(st);
}
END_TEST

/* ---------- crashes at each step, then a restart ---------- */

/* What raft_server does at start (server/main.c): leftovers go, the snapshot (if any)
 * gives the state machine, the log is fitted to it, the entries after it are applied.
 * Checks the result against the sample state at want_applied. */
static void restart_and_check(const char *dir, raft_index_t want_snapshot,
                              const struct kv *want)
{
    char err[ERR_LEN] = "";
    struct storage *st;
    struct storage_loaded ld;
    open_loaded(dir, &st, &ld);
    struct snapshot_paths p;
    paths_in(&p, dir);
    snapshot_remove_leftovers(&p);
    struct snapshot_meta m;
    struct kv *kv = NULL;
    int rc = snapshot_load(p.file, &m, &kv, err, sizeof(err));
    ck_assert_msg(rc == RK_OK || rc == RK_ERR_NOTFOUND, "%s", err);
    if (rc == RK_ERR_NOTFOUND) {
        memset(&m, 0, sizeof(m));
        kv = kv_new_with_max_sessions(MAX_SESSIONS);
    }
    ck_assert_uint_eq(m.index, want_snapshot);
    ck_assert_msg(snapshot_align_log(st, &ld, m.index, m.term, err, sizeof(err)) == RK_OK,
                  "%s", err);
    ck_assert_uint_eq(ld.first_index, m.index + 1);
    for (raft_index_t i = 0; i < ld.n_entries; i++)
        ck_assert_int_gt(kv_apply(kv, ld.first_index + i, &ld.entries[i]), 0);
    ck_assert_uint_eq(kv_last_applied(kv), kv_last_applied(want));
    ck_assert_uint_eq(kv_digest(kv), kv_digest(want));
    ck_assert(!exists(p.tmp) && !exists(p.recv));
    char log_tmp[PATH_MAX];
    snprintf(log_tmp, sizeof(log_tmp), "%s/%s_log.txt.tmp", dir, NAME);
    ck_assert(!exists(log_tmp));
    kv_free(kv);
    storage_loaded_free(&ld);
    storage_close(st);
}

/* The steps of taking a snapshot, in the server's order (snapshotter.c, io_thread.c). */
enum save_step {
    SAVE_TMP_PARTIAL,   /* the writer died mid-file */
    SAVE_TMP_WRITTEN,   /* the temp file is complete and synced, not renamed */
    SAVE_RENAMED,       /* NAME_snapshot replaced, directory synced; log untouched */
    SAVE_COMPACT_TMP,   /* storage_compact wrote the kept suffix, not renamed yet */
    SAVE_COMPACTED,     /* the log prefix is gone */
    SAVE_STEPS
};

/* State before: snapshot 40, log 41..LOG_LEN. The crash interrupts a snapshot at 80. */
static void crash_during_save(enum save_step step)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    struct storage *st = sample_storage(dir, LOG_LEN);
    save_sample(&p, 40);
    ck_assert_int_eq(storage_compact(st, 40, err, sizeof(err)), RK_OK);

    struct snapshot_meta m;
    sample_meta(&m, 80);
    struct kv *kv = sample_kv(80);
    uint8_t *file;
    size_t len;
    ck_assert_int_eq(snapshot_serialize(&m, kv, &file, &len), RK_OK);
    write_all(p.tmp, file, step == SAVE_TMP_PARTIAL ? len / 2 : len);
    if (step >= SAVE_RENAMED)
        ck_assert_int_eq(snapshot_install_file(&p, false, err, sizeof(err)), RK_OK);
    if (step == SAVE_COMPACT_TMP) {
        char log_tmp[PATH_MAX];
        snprintf(log_tmp, sizeof(log_tmp), "%s/%s_log.txt.tmp", dir, NAME);
        write_all(log_tmp, "81 2 noop", 9);
    }
    if (step == SAVE_COMPACTED)
        ck_assert_int_eq(storage_compact(st, 80, err, sizeof(err)), RK_OK);
    storage_close(st); /* the crash: nothing else reaches the disk */
    kv_free(kv);
    kv = sample_kv(LOG_LEN);
    restart_and_check(dir, step >= SAVE_RENAMED ? 80 : 40, kv);
    free(file);
    kv_free(kv);
}

START_TEST(test_crash_at_each_save_step)
{
    crash_during_save((enum save_step)_i);
}
END_TEST

/* The order is what makes the steps above safe: the log prefix is never dropped before
 * the snapshot covering it is durable. Were it (a compacted log with an older snapshot),
 * restart refuses it instead of silently losing entries 41..80. */
START_TEST(test_compaction_before_snapshot_is_detected)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    struct storage *st = sample_storage(dir, LOG_LEN);
    save_sample(&p, 40);
    ck_assert_int_eq(storage_compact(st, 80, err, sizeof(err)), RK_OK);
    storage_close(st);
    struct storage_loaded ld;
    open_loaded(dir, &st, &ld);
    ck_assert_int_eq(snapshot_align_log(st, &ld, 40, sample_term(40), err, sizeof(err)),
                     RK_ERR_CORRUPT);
    ck_assert_msg(strstr(err, "41..80") != NULL, "%s", err);
    storage_loaded_free(&ld);
    storage_close(st);
    /* and without any snapshot, a log that does not start at 1 is refused too */
    open_loaded(dir, &st, &ld);
    ck_assert_int_eq(snapshot_align_log(st, &ld, 0, 0, err, sizeof(err)), RK_ERR_CORRUPT);
    storage_loaded_free(&ld);
    storage_close(st);
}
END_TEST

/* A follower installing the leader's snapshot at 100 (Figure 13), crashed at each step.
 * Its own log: entries 1..60 (behind), 1..LOG_LEN with entry 100 of another term
 * (conflicting), or 1..LOG_LEN identical to the leader's (ahead). */
enum install_step { INSTALL_RECV_PARTIAL, INSTALL_RENAMED, INSTALL_RESET, INSTALL_STEPS };
enum follower_log { LOG_BEHIND, LOG_CONFLICTING, LOG_MATCHING, LOG_KINDS };

/* The deposed leader's entry at index i of the conflicting log. */
static struct raft_entry conflicting_entry(raft_index_t i)
{
    return sample_entry(i + 1, sample_term(LOG_LEN) + 5);
}

static struct storage *follower_storage(const char *dir, enum follower_log kind)
{
    if (kind == LOG_BEHIND)
        return sample_storage(dir, 60);
    if (kind == LOG_MATCHING)
        return sample_storage(dir, LOG_LEN);
    struct storage *st = sample_storage(dir, 99);
    char err[ERR_LEN];
    for (raft_index_t i = 100; i <= LOG_LEN; i++) {
        struct raft_entry e = conflicting_entry(i);
        ck_assert_int_eq(storage_append(st, i, &e, 1, err, sizeof(err)), RK_OK);
        raft_entry_free(&e);
    }
    ck_assert_int_eq(storage_sync(st, err, sizeof(err)), RK_OK);
    return st;
}

/* The follower's own state: its whole log applied. */
static struct kv *follower_kv(enum follower_log kind)
{
    if (kind != LOG_CONFLICTING)
        return sample_kv(kind == LOG_BEHIND ? 60 : LOG_LEN);
    struct kv *kv = sample_kv(99);
    for (raft_index_t i = 100; i <= LOG_LEN; i++) {
        struct raft_entry e = conflicting_entry(i);
        ck_assert_int_gt(kv_apply(kv, i, &e), 0);
        raft_entry_free(&e);
    }
    return kv;
}

static void crash_during_install(enum install_step step, enum follower_log kind)
{
    char leader_dir[128], dir[128], err[ERR_LEN];
    new_dir(leader_dir, sizeof(leader_dir));
    new_dir(dir, sizeof(dir));
    struct snapshot_paths lp, p;
    paths_in(&lp, leader_dir);
    paths_in(&p, dir);
    save_sample(&lp, 100);
    struct storage *st = follower_storage(dir, kind);
    transfer(&lp, &p, 100, 64);
    if (step == INSTALL_RECV_PARTIAL)
        ck_assert_int_eq(truncate(p.recv, file_size(p.recv) / 2), 0);
    struct snapshot_meta m;
    if (step >= INSTALL_RENAMED) {
        ck_assert_int_eq(snapshot_recv_verify(&p, 100, sample_term(100), &m, NULL, err,
                                              sizeof(err)), RK_OK);
        ck_assert_int_eq(snapshot_install_file(&p, true, err, sizeof(err)), RK_OK);
    }
    if (step == INSTALL_RESET && kind != LOG_MATCHING) /* the core's reset_log_to */
        ck_assert_int_eq(storage_reset(st, 100, err, sizeof(err)), RK_OK);
    storage_close(st);
    /* Before the rename the follower restarts as it was; after it, from the leader's
     * snapshot plus whatever of its log matches it (step 6) or nothing (step 7). */
    struct kv *want = step == INSTALL_RECV_PARTIAL ? follower_kv(kind)
                      : kind == LOG_MATCHING      ? sample_kv(LOG_LEN)
                                                  : sample_kv(100);
    restart_and_check(dir, step == INSTALL_RECV_PARTIAL ? 0 : 100, want);
    kv_free(want);
}

START_TEST(test_crash_at_each_install_step)
{
    crash_during_install((enum install_step)(_i / LOG_KINDS), (enum follower_log)(_i % LOG_KINDS));
}
END_TEST

/* After the log is discarded (Figure 13, step 7) the next append is snapshot + 1, and a
 * restart keeps it. */
START_TEST(test_discarded_log_continues_after_snapshot)
{
    char dir[128], err[ERR_LEN];
    new_dir(dir, sizeof(dir));
    struct snapshot_paths p;
    paths_in(&p, dir);
    save_sample(&p, 100);
    struct storage *st = follower_storage(dir, LOG_CONFLICTING);
    storage_close(st);
    struct storage_loaded ld;
    open_loaded(dir, &st, &ld);
    ck_assert_int_eq(snapshot_align_log(st, &ld, 100, sample_term(100), err, sizeof(err)),
                     RK_OK);
    ck_assert_msg(strstr(err, "discarded") != NULL, "%s", err);
    ck_assert_uint_eq(ld.n_entries, 0);
    ck_assert_uint_eq(storage_last_index(st), 100);
    for (raft_index_t i = 101; i <= LOG_LEN; i++) {
        struct raft_entry e = sample_entry(i, sample_term(i));
        ck_assert_int_eq(storage_append(st, i, &e, 1, err, sizeof(err)), RK_OK);
        raft_entry_free(&e);
    }
    ck_assert_int_eq(storage_sync(st, err, sizeof(err)), RK_OK);
    storage_loaded_free(&ld);
    storage_close(st);
    struct kv *want = sample_kv(LOG_LEN);
    restart_and_check(dir, 100, want);
    kv_free(want);
}
END_TEST

static Suite *snapshot_suite(void)
{
    Suite *s = suite_create("snapshot");
    TCase *image = tcase_create("image");
    tcase_add_unchecked_fixture(image, base_setup, base_teardown);
    tcase_set_timeout(image, 20);
    tcase_add_test(image, test_image_round_trip);
    tcase_add_test(image, test_serialize_matches_file);
    tcase_add_test(image, test_write_from_forked_child);
    tcase_add_test(image, test_image_structure_checked);
    tcase_add_test(image, test_image_deadlines_checked);
    tcase_add_test(image, test_image_keeps_deadlines);
    suite_add_tcase(s, image);

    TCase *corrupt = tcase_create("corruption");
    tcase_add_unchecked_fixture(corrupt, base_setup, base_teardown);
    tcase_set_timeout(corrupt, 60);
    tcase_add_test(corrupt, test_every_flipped_byte_detected);
    tcase_add_test(corrupt, test_truncation_detected);
    tcase_add_test(corrupt, test_wrong_magic_and_missing);
    tcase_add_test(corrupt, test_dump);
    suite_add_tcase(s, corrupt);

    TCase *chunks = tcase_create("chunks");
    tcase_add_unchecked_fixture(chunks, base_setup, base_teardown);
    tcase_set_timeout(chunks, 20);
    tcase_add_test(chunks, test_chunks_round_trip);
    tcase_add_test(chunks, test_chunk_errors);
    suite_add_tcase(s, chunks);

    TCase *storage = tcase_create("storage");
    tcase_add_unchecked_fixture(storage, base_setup, base_teardown);
    tcase_set_timeout(storage, 20);
    tcase_add_test(storage, test_storage_compact);
    tcase_add_test(storage, test_storage_reset);
    suite_add_tcase(s, storage);

    TCase *crash = tcase_create("crash");
    tcase_add_unchecked_fixture(crash, base_setup, base_teardown);
    tcase_set_timeout(crash, 30);
    tcase_add_loop_test(crash, test_crash_at_each_save_step, 0, SAVE_STEPS);
    tcase_add_test(crash, test_compaction_before_snapshot_is_detected);
    tcase_add_loop_test(crash, test_crash_at_each_install_step, 0, INSTALL_STEPS * LOG_KINDS);
    tcase_add_test(crash, test_discarded_log_continues_after_snapshot);
    suite_add_tcase(s, crash);
    return s;
}

RK_CHECK_MAIN(snapshot_suite)
