/* tests/unit_kv.c - Check tests for server/kv: set/get/overwrite/delete, binary keys,
 * growth to 100000 keys, kv_apply on each entry type, and client sessions (Raft thesis
 * §6.3): duplicates, stale and unknown sessions, LRU expiry at the bound, determinism
 * against a simple model. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"
#include "../server/kv/kv.h"
#include "check_main.h"

static void assert_value(const struct kv *kv, const char *key, uint32_t key_len,
                         const char *want, uint32_t want_len)
{
    uint32_t len = 12345;
    const char *got = kv_get(kv, key, key_len, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(len, want_len);
    ck_assert(memcmp(got, want, want_len) == 0);
    ck_assert_int_eq(got[len], '\0');
}

static void assert_absent(const struct kv *kv, const char *key, uint32_t key_len)
{
    uint32_t len = 12345;
    ck_assert_ptr_null(kv_get(kv, key, key_len, &len));
}

START_TEST(test_set_get_overwrite_delete)
{
    struct kv *kv = kv_new();
    ck_assert_ptr_nonnull(kv);
    ck_assert_uint_eq(kv_count(kv), 0);
    assert_absent(kv, "a", 1);
    ck_assert_int_eq(kv_set(kv, "a", 1, "one", 3), RK_OK);
    ck_assert_int_eq(kv_set(kv, "b", 1, "two", 3), RK_OK);
    assert_value(kv, "a", 1, "one", 3);
    assert_value(kv, "b", 1, "two", 3);
    ck_assert_uint_eq(kv_count(kv), 2);

    ck_assert_int_eq(kv_set(kv, "a", 1, "uno!", 4), RK_OK); /* overwrite */
    assert_value(kv, "a", 1, "uno!", 4);
    ck_assert_uint_eq(kv_count(kv), 2);
    ck_assert_int_eq(kv_set(kv, "a", 1, "", 0), RK_OK); /* empty value is present */
    assert_value(kv, "a", 1, "", 0);

    ck_assert(kv_delete(kv, "a", 1));
    assert_absent(kv, "a", 1);
    ck_assert(!kv_delete(kv, "a", 1));
    ck_assert(!kv_delete(kv, "zz", 2));
    ck_assert_uint_eq(kv_count(kv), 1);
    assert_value(kv, "b", 1, "two", 3);
    assert_absent(kv, "ab", 2); /* prefixes and extensions are other keys */
    assert_absent(kv, "", 0);
    kv_free(kv);
}
END_TEST

START_TEST(test_binary_keys)
{
    struct kv *kv = kv_new();
    ck_assert_ptr_nonnull(kv);
    ck_assert_int_eq(kv_set(kv, "", 0, "empty key", 9), RK_OK);
    ck_assert_int_eq(kv_set(kv, "\0", 1, "nul", 3), RK_OK);
    ck_assert_int_eq(kv_set(kv, "\0\0", 2, "two nuls", 8), RK_OK);
    ck_assert_int_eq(kv_set(kv, "a\0b", 3, "a-nul-b", 7), RK_OK);
    ck_assert_int_eq(kv_set(kv, "a\0c", 3, "\xff\0\x80", 3), RK_OK);
    ck_assert_int_eq(kv_set(kv, "\xff\xfe", 2, "high", 4), RK_OK);
    ck_assert_uint_eq(kv_count(kv), 6);
    assert_value(kv, "", 0, "empty key", 9);
    assert_value(kv, "\0", 1, "nul", 3);
    assert_value(kv, "\0\0", 2, "two nuls", 8);
    assert_value(kv, "a\0b", 3, "a-nul-b", 7);
    assert_value(kv, "a\0c", 3, "\xff\0\x80", 3);
    assert_value(kv, "\xff\xfe", 2, "high", 4);
    assert_absent(kv, "a", 1);
    ck_assert(kv_delete(kv, "\0", 1));
    assert_absent(kv, "\0", 1);
    assert_value(kv, "\0\0", 2, "two nuls", 8);
    ck_assert(kv_delete(kv, "", 0));
    assert_absent(kv, "", 0);
    ck_assert_uint_eq(kv_count(kv), 4);
    kv_free(kv);
}
END_TEST

START_TEST(test_many_keys_with_growth)
{
    enum { N = 100000 };
    char key[32], val[32];
    struct kv *kv = kv_new();
    ck_assert_ptr_nonnull(kv);
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "key-%d", i);
        int vl = snprintf(val, sizeof(val), "value-%d", i * 7);
        ck_assert_int_eq(kv_set(kv, key, (uint32_t)kl, val, (uint32_t)vl), RK_OK);
    }
    ck_assert_uint_eq(kv_count(kv), N);
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "key-%d", i);
        int vl = snprintf(val, sizeof(val), "value-%d", i * 7);
        assert_value(kv, key, (uint32_t)kl, val, (uint32_t)vl);
    }
    for (int i = 0; i < N; i += 2) {
        int kl = snprintf(key, sizeof(key), "key-%d", i);
        ck_assert(kv_delete(kv, key, (uint32_t)kl));
    }
    ck_assert_uint_eq(kv_count(kv), N / 2);
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "key-%d", i);
        uint32_t len;
        const char *got = kv_get(kv, key, (uint32_t)kl, &len);
        ck_assert_msg((got == NULL) == (i % 2 == 0), "key %d", i);
    }
    kv_free(kv);
}
END_TEST

START_TEST(test_apply_each_type)
{
    struct raft_entry noop, set, set2, del;
    ck_assert_int_eq(raft_entry_init(&noop, 1, RAFT_ENTRY_NOOP, NULL, 0, NULL, 0), RK_OK);
    ck_assert_int_eq(raft_entry_init(&set, 1, RAFT_ENTRY_SET, "k\0", 2, "v1", 2), RK_OK);
    ck_assert_int_eq(raft_entry_init(&set2, 2, RAFT_ENTRY_SET, "k\0", 2, "v22", 3), RK_OK);
    ck_assert_int_eq(raft_entry_init(&del, 2, RAFT_ENTRY_DELETE, "k\0", 2, NULL, 0), RK_OK);
    struct kv *kv = kv_new();
    ck_assert_ptr_nonnull(kv);

    ck_assert_int_eq(kv_apply(kv, 1, &noop), KV_APPLIED);
    ck_assert_uint_eq(kv_count(kv), 0);
    ck_assert_int_eq(kv_apply(kv, 2, &del), KV_ABSENT); /* delete of an absent key */
    ck_assert_int_eq(kv_apply(kv, 3, &set), KV_APPLIED);
    assert_value(kv, "k\0", 2, "v1", 2);
    ck_assert_int_eq(kv_apply(kv, 4, &set2), KV_APPLIED);
    assert_value(kv, "k\0", 2, "v22", 3);
    ck_assert_int_eq(kv_apply(kv, 5, &del), KV_APPLIED);
    assert_absent(kv, "k\0", 2);
    ck_assert_int_eq(kv_apply(kv, 6, &del), KV_ABSENT);
    ck_assert_uint_eq(kv_count(kv), 0);
    ck_assert_uint_eq(kv_last_applied(kv), 6);
    set.type = 99;
    ck_assert_int_eq(kv_apply(kv, 7, &set), RK_ERR_INVAL);
    ck_assert_uint_eq(kv_count(kv), 0);
    ck_assert_uint_eq(kv_last_applied(kv), 6);
    /* out of order: an index applied already, or a gap */
    set.type = RAFT_ENTRY_SET;
    ck_assert_int_eq(kv_apply(kv, 6, &set), RK_ERR_INVAL);
    ck_assert_int_eq(kv_apply(kv, 8, &set), RK_ERR_INVAL);
    ck_assert_int_eq(kv_apply(kv, 0, &set), RK_ERR_INVAL);
    ck_assert_uint_eq(kv_count(kv), 0);
    ck_assert_int_eq(kv_apply(kv, 7, &set), KV_APPLIED);

    kv_free(kv);
    raft_entry_free(&noop);
    raft_entry_free(&set);
    raft_entry_free(&set2);
    raft_entry_free(&del);
}
END_TEST

/* ---- ordered scans ---- */

struct page {
    char keys[64][16];
    int n;
    uint64_t bytes;
};

static int page_add(void *ctx, const char *key, uint32_t key_len, const char *val,
                    uint32_t val_len)
{
    struct page *p = ctx;
    (void)val;
    ck_assert_int_lt(p->n, 64);
    snprintf(p->keys[p->n++], sizeof(p->keys[0]), "%.*s", (int)key_len, key);
    p->bytes += key_len + val_len;
    return 0;
}

/* One page; asserts its keys (space-separated in want) and whether more remain. */
static void expect_page(const struct kv *kv, const char *prefix, const char *after,
                        uint32_t limit, uint64_t max_bytes, const char *want, bool want_more)
{
    struct page p = { .n = 0 };
    bool more;
    uint32_t got = kv_scan(kv, prefix, (uint32_t)strlen(prefix), after,
                           after ? (uint32_t)strlen(after) : 0, limit, max_bytes, page_add, &p,
                           &more);
    char joined[1024] = "";
    for (int i = 0; i < p.n; i++)
        snprintf(joined + strlen(joined), sizeof(joined) - strlen(joined), "%s%s",
                 i ? " " : "", p.keys[i]);
    ck_assert_uint_eq(got, (uint32_t)p.n);
    ck_assert_msg(strcmp(joined, want) == 0 && more == want_more,
                  "scan '%s' after '%s' limit %u: got '%s'%s, want '%s'%s", prefix,
                  after ? after : "-", limit, joined, more ? " more" : "", want,
                  want_more ? " more" : "");
}

/* Keys in byte order, by prefix, in pages (limit, after), and cut at a byte budget; the
 * index follows sets and deletes. */
START_TEST(test_scan_pages)
{
    struct kv *kv = kv_new();
    ck_assert_ptr_nonnull(kv);
    const char *keys[] = { "b", "a", "ab", "abc", "abd", "ac", "a0", "b1", "ba", "" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_int_eq(kv_set(kv, keys[i], (uint32_t)strlen(keys[i]), "vv", 2), RK_OK);
    expect_page(kv, "", NULL, 100, 1000, " a a0 ab abc abd ac b b1 ba", false);
    expect_page(kv, "a", NULL, 100, 1000, "a a0 ab abc abd ac", false);
    expect_page(kv, "ab", NULL, 100, 1000, "ab abc abd", false);
    expect_page(kv, "abz", NULL, 100, 1000, "", false);
    expect_page(kv, "zz", NULL, 100, 1000, "", false);
    /* pages of 2 across equal prefixes, each after the last key shown */
    expect_page(kv, "a", NULL, 2, 1000, "a a0", true);
    expect_page(kv, "a", "a0", 2, 1000, "ab abc", true);
    expect_page(kv, "a", "abc", 2, 1000, "abd ac", false);
    expect_page(kv, "a", "ac", 2, 1000, "", false);
    /* after a key before the prefix, or one that is no key */
    expect_page(kv, "b", "a", 100, 1000, "b b1 ba", false);
    expect_page(kv, "a", "aa", 100, 1000, "ab abc abd ac", false);
    expect_page(kv, "a", "zzz", 100, 1000, "", false);
    /* the byte budget: a page ends once it holds max_bytes or more */
    expect_page(kv, "a", NULL, 100, 7, "a a0", true); /* 3 + 4 bytes: 7 */
    expect_page(kv, "a", NULL, 100, 8, "a a0 ab", true);
    expect_page(kv, "a", NULL, 100, 1, "a", true);
    /* the index follows deletes */
    ck_assert(kv_delete(kv, "abc", 3));
    ck_assert(kv_delete(kv, "", 0));
    expect_page(kv, "", NULL, 100, 1000, "a a0 ab abd ac b b1 ba", false);
    ck_assert_int_eq(kv_set(kv, "abc", 3, "again", 5), RK_OK);
    expect_page(kv, "ab", NULL, 100, 1000, "ab abc abd", false);
    kv_free(kv);
}
END_TEST

/* Binary keys sort by bytes (0x00 and 0xff included), a shorter key first. */
START_TEST(test_scan_binary_order)
{
    struct kv *kv = kv_new();
    ck_assert_ptr_nonnull(kv);
    const char *const keys[] = { "k\xff", "k\x01", "k", "k\x7f" };
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(kv_set(kv, keys[i], (uint32_t)strlen(keys[i]), "", 0), RK_OK);
    ck_assert_int_eq(kv_set(kv, "k\0", 2, "", 0), RK_OK);
    struct page p = { .n = 0 };
    bool more;
    ck_assert_uint_eq(kv_scan(kv, "k", 1, NULL, 0, 10, 100, page_add, &p, &more), 5);
    ck_assert_str_eq(p.keys[0], "k");
    ck_assert_int_eq(p.keys[1][1], '\0'); /* "k\0" */
    ck_assert_int_eq((unsigned char)p.keys[2][1], 0x01);
    ck_assert_int_eq((unsigned char)p.keys[3][1], 0x7f);
    ck_assert_int_eq((unsigned char)p.keys[4][1], 0xff);
    kv_free(kv);
}
END_TEST

/* ---- client sessions (Raft thesis §6.3) ---- */

/* A kv with its own next index, so each test reads like a log. */
struct log_kv {
    struct kv *kv;
    raft_index_t next;
};

static struct log_kv log_kv_new(uint32_t max_sessions)
{
    struct log_kv l = { .kv = kv_new_with_max_sessions(max_sessions), .next = 1 };
    ck_assert_ptr_nonnull(l.kv);
    return l;
}

/* Applies one entry at the next index; returns kv_apply's result. */
static int apply_at_next(struct log_kv *l, uint8_t type, uint64_t client_id, uint64_t seq,
                         const char *key, const char *val)
{
    struct raft_entry e;
    uint32_t key_len = key ? (uint32_t)strlen(key) : 0;
    uint32_t val_len = val ? (uint32_t)strlen(val) : 0;
    ck_assert_int_eq(raft_entry_init(&e, 1, type, key, key_len, val, val_len), RK_OK);
    e.client_id = client_id;
    e.seq = seq;
    int rc = kv_apply(l->kv, l->next++, &e);
    raft_entry_free(&e);
    return rc;
}

/* Registers a session; its client id is the REGISTER entry's index. */
static uint64_t do_register(struct log_kv *l)
{
    uint64_t id = l->next;
    ck_assert_int_eq(apply_at_next(l, RAFT_ENTRY_REGISTER, 0, 0, NULL, NULL), KV_APPLIED);
    return id;
}

static int do_set(struct log_kv *l, uint64_t client, uint64_t seq, const char *key,
                  const char *val)
{
    return apply_at_next(l, RAFT_ENTRY_SET, client, seq, key, val);
}

static int do_delete(struct log_kv *l, uint64_t client, uint64_t seq, const char *key)
{
    return apply_at_next(l, RAFT_ENTRY_DELETE, client, seq, key, NULL);
}

static void assert_str(const struct kv *kv, const char *key, const char *want)
{
    if (want == NULL)
        assert_absent(kv, key, (uint32_t)strlen(key));
    else
        assert_value(kv, key, (uint32_t)strlen(key), want, (uint32_t)strlen(want));
}

START_TEST(test_register_gives_index_as_id)
{
    struct log_kv l = log_kv_new(8);
    ck_assert_int_eq(apply_at_next(&l, RAFT_ENTRY_NOOP, 0, 0, NULL, NULL), KV_APPLIED);
    uint64_t a = do_register(&l), b = do_register(&l);
    ck_assert_uint_eq(a, 2);
    ck_assert_uint_eq(b, 3);
    ck_assert_uint_eq(kv_session_count(l.kv), 2);
    struct kv_session_info info;
    ck_assert(kv_session_get(l.kv, a, &info));
    ck_assert_uint_eq(info.last_seq, 0);
    ck_assert_int_eq(info.last_result, 0);
    ck_assert_uint_eq(info.last_use, 2);
    ck_assert(!kv_session_get(l.kv, 1, &info)); /* the noop opened nothing */
    ck_assert(!kv_session_get(l.kv, 4, &info));
    kv_free(l.kv);
}
END_TEST

/* Client A sets k=v1, client B sets k=v2, then A's set is applied again (its reply was
 * lost and it retried): the retry must not undo B's write. */
START_TEST(test_duplicate_set_applied_once)
{
    struct log_kv l = log_kv_new(8);
    uint64_t a = do_register(&l), b = do_register(&l);
    ck_assert_int_eq(do_set(&l, a, 1, "k", "v1"), KV_APPLIED);
    ck_assert_int_eq(do_set(&l, b, 1, "k", "v2"), KV_APPLIED);
    ck_assert_int_eq(do_set(&l, a, 1, "k", "v1"), KV_APPLIED); /* the recorded result */
    assert_str(l.kv, "k", "v2");
    struct kv_session_info info;
    ck_assert(kv_session_get(l.kv, a, &info));
    ck_assert_uint_eq(info.last_seq, 1);
    ck_assert_uint_eq(info.last_use, 5); /* the duplicate counts as a use */
    ck_assert_int_eq(do_set(&l, a, 2, "k", "v3"), KV_APPLIED); /* the next command is new */
    assert_str(l.kv, "k", "v3");
    kv_free(l.kv);
}
END_TEST

/* A delete applied once answers OK; its duplicate answers OK too (not NIL, which a second
 * application would give) and does not delete what was set in between. */
START_TEST(test_duplicate_delete_returns_recorded_result)
{
    struct log_kv l = log_kv_new(8);
    uint64_t a = do_register(&l), b = do_register(&l);
    ck_assert_int_eq(do_set(&l, 0, 0, "k", "v0"), KV_APPLIED); /* no session: plain */
    ck_assert_int_eq(do_delete(&l, a, 1, "k"), KV_APPLIED);
    ck_assert_int_eq(do_delete(&l, a, 1, "k"), KV_APPLIED);
    assert_str(l.kv, "k", NULL);
    ck_assert_int_eq(do_set(&l, b, 1, "k", "v2"), KV_APPLIED);
    ck_assert_int_eq(do_delete(&l, a, 1, "k"), KV_APPLIED);
    assert_str(l.kv, "k", "v2");
    /* a delete of a missing key records NIL, and its duplicate says NIL again */
    ck_assert_int_eq(do_delete(&l, a, 2, "nope"), KV_ABSENT);
    ck_assert_int_eq(do_set(&l, b, 2, "nope", "now here"), KV_APPLIED);
    ck_assert_int_eq(do_delete(&l, a, 2, "nope"), KV_ABSENT);
    assert_str(l.kv, "nope", "now here");
    kv_free(l.kv);
}
END_TEST

/* ---- revisions and compare-and-set ---- */

/* A CAS or CAD at the next index comparing with rev. */
static int apply_cmp(struct log_kv *l, uint8_t type, uint64_t client_id, uint64_t seq,
                     const char *key, uint64_t rev, const char *val)
{
    struct raft_entry e;
    uint32_t val_len = val ? (uint32_t)strlen(val) : 0;
    ck_assert_int_eq(raft_entry_init(&e, 1, type, key, (uint32_t)strlen(key), val, val_len),
                     RK_OK);
    e.client_id = client_id;
    e.seq = seq;
    e.rev = rev;
    int rc = kv_apply(l->kv, l->next++, &e);
    raft_entry_free(&e);
    return rc;
}

static uint64_t rev_of_key(const struct kv *kv, const char *key)
{
    uint64_t rev = 0;
    kv_get_rev(kv, key, (uint32_t)strlen(key), NULL, &rev);
    return rev;
}

/* Every change gets its entry's index as revision: the key's and the map's; a delete of
 * an absent key and a failed compare change nothing (no revision). */
START_TEST(test_revisions)
{
    struct log_kv l = log_kv_new(8);
    ck_assert_uint_eq(kv_rev(l.kv), 0);
    ck_assert_int_eq(apply_at_next(&l, RAFT_ENTRY_NOOP, 0, 0, NULL, NULL), KV_APPLIED);
    ck_assert_uint_eq(kv_rev(l.kv), 0); /* a noop is no change */
    ck_assert_int_eq(do_set(&l, 0, 0, "a", "1"), KV_APPLIED);          /* 2 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 2);
    ck_assert_int_eq(do_set(&l, 0, 0, "b", "1"), KV_APPLIED);          /* 3 */
    ck_assert_int_eq(do_set(&l, 0, 0, "a", "2"), KV_APPLIED);          /* 4 */
    ck_assert_uint_eq(rev_of_key(l.kv, "a"), 4);
    ck_assert_uint_eq(rev_of_key(l.kv, "b"), 3);
    ck_assert_uint_eq(kv_rev(l.kv), 4);
    ck_assert_int_eq(do_delete(&l, 0, 0, "nope"), KV_ABSENT);          /* 5: no change */
    ck_assert_uint_eq(kv_rev(l.kv), 4);
    ck_assert_uint_eq(kv_result_rev(l.kv), 0);
    ck_assert_int_eq(do_delete(&l, 0, 0, "b"), KV_APPLIED);            /* 6 */
    ck_assert_uint_eq(kv_rev(l.kv), 6);
    ck_assert_uint_eq(rev_of_key(l.kv, "b"), 0);
    ck_assert_uint_eq(kv_last_applied(l.kv), 6);
    kv_free(l.kv);
}
END_TEST

/* cas: rev 0 means "absent"; a wrong revision fails with the current one (0 when absent)
 * and changes nothing; cas after delete needs 0 again. cad likewise. */
START_TEST(test_cas_and_cad)
{
    struct log_kv l = log_kv_new(8);
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, 0, 0, "k", 5, "x"), KV_FAILED);   /* 1 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 0); /* absent */
    assert_str(l.kv, "k", NULL);
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, 0, 0, "k", 0, "v1"), KV_APPLIED); /* 2 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 2);
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, 0, 0, "k", 0, "again"), KV_FAILED); /* 3 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 2);
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, 0, 0, "k", 2, "v2"), KV_APPLIED); /* 4 */
    assert_str(l.kv, "k", "v2");
    ck_assert_uint_eq(kv_rev(l.kv), 4);
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, 0, 0, "k", 2, "stale"), KV_FAILED); /* 5 */
    ck_assert_uint_eq(kv_rev(l.kv), 4); /* a failed compare is no change */
    assert_str(l.kv, "k", "v2");
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAD, 0, 0, "k", 3, NULL), KV_FAILED);  /* 6 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 4);
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAD, 0, 0, "k", 4, NULL), KV_APPLIED); /* 7 */
    assert_str(l.kv, "k", NULL);
    ck_assert_uint_eq(kv_rev(l.kv), 7);
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAD, 0, 0, "k", 0, NULL), KV_FAILED);  /* 8 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 0);
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, 0, 0, "k", 4, "x"), KV_FAILED);   /* 9 */
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, 0, 0, "k", 0, ""), KV_APPLIED);   /* 10 */
    assert_str(l.kv, "k", "");
    ck_assert_uint_eq(rev_of_key(l.kv, "k"), 10);
    ck_assert_int_eq(do_set(&l, 0, 0, "other", "o"), KV_APPLIED);                  /* 11 */
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, 0, 0, "k", 3, "x"), KV_FAILED);   /* 12 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 10);
    ck_assert_uint_eq(kv_rev(l.kv), 11); /* still the last change's */
    kv_free(l.kv);
}
END_TEST

/* Two clients race with cas on one revision: one wins. The loser's retry (a duplicate:
 * its reply was lost) gets its recorded FAILED and revision, not a second try, and the
 * winner's duplicate gets its OK with the revision it was given. */
START_TEST(test_cas_duplicates_answer_as_recorded)
{
    struct log_kv l = log_kv_new(8);
    uint64_t a = do_register(&l), b = do_register(&l);                          /* 1, 2 */
    ck_assert_int_eq(do_set(&l, 0, 0, "lock", "free"), KV_APPLIED);             /* 3 */
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, a, 1, "lock", 3, "a"), KV_APPLIED); /* 4 */
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, b, 1, "lock", 3, "b"), KV_FAILED);  /* 5 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 4);
    ck_assert_int_eq(do_set(&l, 0, 0, "lock", "free"), KV_APPLIED);             /* 6 */
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, b, 1, "lock", 3, "b"), KV_FAILED);  /* 7 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 4); /* as recorded, though the key is at 6 now */
    ck_assert_int_eq(apply_cmp(&l, RAFT_ENTRY_CAS, a, 1, "lock", 3, "a"), KV_APPLIED); /* 8 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 4);
    assert_str(l.kv, "lock", "free");
    struct kv_session_info info;
    ck_assert(kv_session_get(l.kv, b, &info));
    ck_assert_int_eq(info.last_result, KV_FAILED);
    ck_assert_uint_eq(info.last_rev, 4);
    kv_free(l.kv);
}
END_TEST

START_TEST(test_stale_and_zero_seq)
{
    struct log_kv l = log_kv_new(8);
    uint64_t a = do_register(&l);
    ck_assert_int_eq(do_set(&l, a, 0, "k", "zero"), KV_STALE); /* seqs start at 1 */
    assert_str(l.kv, "k", NULL);
    ck_assert_int_eq(do_set(&l, a, 5, "k", "v5"), KV_APPLIED); /* gaps are fine */
    ck_assert_int_eq(do_set(&l, a, 3, "k", "v3"), KV_STALE);
    ck_assert_int_eq(do_delete(&l, a, 4, "k"), KV_STALE);
    assert_str(l.kv, "k", "v5");
    struct kv_session_info info;
    ck_assert(kv_session_get(l.kv, a, &info));
    ck_assert_uint_eq(info.last_seq, 5);
    ck_assert_int_eq(info.last_result, KV_APPLIED);
    ck_assert_int_eq(do_set(&l, a, 5, "k", "other"), KV_APPLIED); /* duplicate of 5 */
    assert_str(l.kv, "k", "v5");
    kv_free(l.kv);
}
END_TEST

START_TEST(test_unknown_session_expired)
{
    struct log_kv l = log_kv_new(8);
    ck_assert_int_eq(do_set(&l, 42, 1, "k", "v"), KV_SESSION_EXPIRED);
    ck_assert_int_eq(do_delete(&l, 42, 1, "k"), KV_SESSION_EXPIRED);
    assert_str(l.kv, "k", NULL);
    uint64_t a = do_register(&l);
    ck_assert_int_eq(do_set(&l, a + 1, 1, "k", "v"), KV_SESSION_EXPIRED);
    ck_assert_uint_eq(kv_count(l.kv), 0);
    ck_assert_uint_eq(kv_session_count(l.kv), 1);
    ck_assert_uint_eq(kv_last_applied(l.kv), 4); /* still applied, with no effect */
    kv_free(l.kv);
}
END_TEST

/* With a bound of 3: a 4th REGISTER drops the session used least recently, where a use
 * is any entry of the session (applied, duplicate or stale). */
START_TEST(test_lru_eviction_at_bound)
{
    struct log_kv l = log_kv_new(3);
    uint64_t a = do_register(&l), b = do_register(&l), c = do_register(&l);
    ck_assert_int_eq(do_set(&l, a, 1, "ka", "1"), KV_APPLIED); /* order of use: b c a */
    ck_assert_int_eq(do_set(&l, b, 1, "kb", "1"), KV_APPLIED); /* c a b */
    ck_assert_int_eq(do_set(&l, b, 1, "kb", "1"), KV_APPLIED); /* duplicate: c a b */
    uint64_t d = do_register(&l);                               /* drops c: a b d */
    struct kv_session_info info;
    ck_assert_uint_eq(kv_session_count(l.kv), 3);
    ck_assert(!kv_session_get(l.kv, c, &info));
    ck_assert(kv_session_get(l.kv, a, &info));
    ck_assert(kv_session_get(l.kv, b, &info));
    ck_assert(kv_session_get(l.kv, d, &info));
    ck_assert_int_eq(do_set(&l, c, 1, "kc", "1"), KV_SESSION_EXPIRED);
    assert_str(l.kv, "kc", NULL);
    ck_assert_int_eq(do_set(&l, a, 0, "ka", "x"), KV_STALE); /* a stale entry is a use too */
    uint64_t e = do_register(&l);                               /* order b d a: drops b */
    ck_assert(!kv_session_get(l.kv, b, &info));
    ck_assert_int_eq(do_set(&l, b, 2, "kb", "2"), KV_SESSION_EXPIRED);
    assert_str(l.kv, "kb", "1");
    uint64_t f = do_register(&l);                               /* d a e: drops d */
    ck_assert(!kv_session_get(l.kv, d, &info));
    ck_assert(kv_session_get(l.kv, a, &info));
    ck_assert(kv_session_get(l.kv, e, &info));
    ck_assert(kv_session_get(l.kv, f, &info));
    ck_assert_int_eq(do_set(&l, a, 2, "ka", "2"), KV_APPLIED); /* a's record survived */
    assert_str(l.kv, "ka", "2");
    ck_assert_uint_eq(kv_session_count(l.kv), 3);
    kv_free(l.kv);
}
END_TEST

START_TEST(test_default_bound)
{
    struct kv *kv = kv_new();
    ck_assert_ptr_nonnull(kv);
    struct raft_entry reg;
    ck_assert_int_eq(raft_entry_init(&reg, 1, RAFT_ENTRY_REGISTER, NULL, 0, NULL, 0), RK_OK);
    for (raft_index_t i = 1; i <= KV_MAX_SESSIONS + 1; i++)
        ck_assert_int_eq(kv_apply(kv, i, &reg), KV_APPLIED);
    struct kv_session_info info;
    ck_assert_uint_eq(kv_session_count(kv), KV_MAX_SESSIONS);
    ck_assert(!kv_session_get(kv, 1, &info));
    ck_assert(kv_session_get(kv, 2, &info));
    ck_assert(kv_session_get(kv, KV_MAX_SESSIONS + 1, &info));
    raft_entry_free(&reg);
    kv_free(kv);
}
END_TEST

/* ---- determinism: the real state machine against a plain model ---- */

#define MODEL_MAX_SESSIONS 5
#define MODEL_KEYS 4
#define MODEL_MAX_IDS 512

/* The rules of kv.h written the slow, obvious way: an array of sessions, the LRU one
 * found by scanning for the smallest last use. */
struct model {
    struct { uint64_t id, last_seq, last_use; int result; bool open; } s[MODEL_MAX_SESSIONS];
    char val[MODEL_KEYS][16]; /* "" = absent */
    int duplicates;           /* commands answered from a session's record */
};

static int model_find(const struct model *m, uint64_t id)
{
    for (int i = 0; i < MODEL_MAX_SESSIONS; i++)
        if (m->s[i].open && m->s[i].id == id)
            return i;
    return -1;
}

static void model_register(struct model *m, uint64_t index)
{
    int slot = -1;
    for (int i = 0; i < MODEL_MAX_SESSIONS && slot < 0; i++)
        if (!m->s[i].open)
            slot = i;
    if (slot < 0) { /* full: replace the least recently used */
        slot = 0;
        for (int i = 1; i < MODEL_MAX_SESSIONS; i++)
            if (m->s[i].last_use < m->s[slot].last_use)
                slot = i;
    }
    m->s[slot].open = true;
    m->s[slot].id = index;
    m->s[slot].last_seq = 0;
    m->s[slot].last_use = index;
    m->s[slot].result = 0;
}

static int model_command(struct model *m, int key, const char *val)
{
    bool present = m->val[key][0] != '\0';
    snprintf(m->val[key], sizeof(m->val[key]), "%s", val ? val : "");
    return val != NULL || present ? KV_APPLIED : KV_ABSENT;
}

static int model_apply(struct model *m, uint64_t index, uint64_t client, uint64_t seq,
                       int key, const char *val)
{
    if (client == 0)
        return model_command(m, key, val);
    int i = model_find(m, client);
    if (i < 0)
        return KV_SESSION_EXPIRED;
    m->s[i].last_use = index;
    if (seq != 0 && seq == m->s[i].last_seq) {
        m->duplicates++;
        return m->s[i].result;
    }
    if (seq <= m->s[i].last_seq)
        return KV_STALE;
    m->s[i].last_seq = seq;
    m->s[i].result = model_command(m, key, val);
    return m->s[i].result;
}

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* One random log: registers, sets and deletes by live, expired, unknown and no
 * sessions, with new, duplicate and stale seqs. */
struct step {
    uint8_t type;
    uint64_t client, seq;
    int key;
    char val[16];
};

static void random_log(struct step *steps, int n, uint64_t seed)
{
    uint64_t ids[MODEL_MAX_IDS], next_seq[MODEL_MAX_IDS];
    int n_ids = 0;
    rng_state = seed;
    for (int i = 0; i < n; i++) {
        struct step *st = &steps[i];
        memset(st, 0, sizeof(*st));
        uint64_t r = rng() % 100;
        st->key = (int)(rng() % MODEL_KEYS);
        if (r < 12 || n_ids == 0) {
            st->type = RAFT_ENTRY_REGISTER;
            if (n_ids < MODEL_MAX_IDS) {
                ids[n_ids] = (uint64_t)i + 1;
                next_seq[n_ids++] = 1;
            }
            continue;
        }
        st->type = r < 60 ? RAFT_ENTRY_SET : RAFT_ENTRY_DELETE;
        if (st->type == RAFT_ENTRY_SET)
            snprintf(st->val, sizeof(st->val), "v%d", i);
        int who = (int)(rng() % (uint64_t)n_ids);
        uint64_t how = rng() % 10;
        st->client = how == 0 ? 0 : how == 1 ? 100000 + rng() % 5 : ids[who];
        if (how < 7)
            st->seq = next_seq[who]++;             /* a new command */
        else if (how < 9)
            st->seq = next_seq[who] - 1;           /* a retry of the last one (or 0) */
        else
            st->seq = rng() % next_seq[who];       /* a stale one, a retry, or 0 */
    }
}

static int apply_step(struct kv *kv, raft_index_t index, const struct step *st)
{
    char key[8];
    snprintf(key, sizeof(key), "k%d", st->key);
    struct raft_entry e;
    bool set = st->type == RAFT_ENTRY_SET;
    bool has_key = st->type != RAFT_ENTRY_REGISTER;
    ck_assert_int_eq(raft_entry_init(&e, 1, st->type, has_key ? key : NULL,
                                     has_key ? (uint32_t)strlen(key) : 0, set ? st->val : NULL,
                                     set ? (uint32_t)strlen(st->val) : 0), RK_OK);
    e.client_id = st->client;
    e.seq = st->seq;
    int rc = kv_apply(kv, index, &e);
    raft_entry_free(&e);
    return rc;
}

static void assert_matches_model(const struct kv *kv, const struct model *m)
{
    size_t open = 0;
    for (int i = 0; i < MODEL_MAX_SESSIONS; i++) {
        if (!m->s[i].open)
            continue;
        open++;
        struct kv_session_info info;
        ck_assert_msg(kv_session_get(kv, m->s[i].id, &info), "session %llu missing",
                      (unsigned long long)m->s[i].id);
        ck_assert_uint_eq(info.last_seq, m->s[i].last_seq);
        ck_assert_uint_eq(info.last_use, m->s[i].last_use);
        ck_assert_int_eq(info.last_result, m->s[i].result);
    }
    ck_assert_uint_eq(kv_session_count(kv), open);
    for (int k = 0; k < MODEL_KEYS; k++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", k);
        assert_str(kv, key, m->val[k][0] != '\0' ? m->val[k] : NULL);
    }
}

/* Every result and the final state match the model; a second kv that applies the same
 * log (here: after "restarting" half way, i.e. from index 1 again) ends with the same
 * digest; a different log ends with a different one. */
START_TEST(test_deterministic_against_model)
{
    enum { N = 3000 };
    struct step *steps = calloc(N, sizeof(*steps));
    ck_assert_ptr_nonnull(steps);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        random_log(steps, N, seed * 0x9E3779B97F4A7C15ULL);
        struct model m;
        memset(&m, 0, sizeof(m));
        struct kv *a = kv_new_with_max_sessions(MODEL_MAX_SESSIONS);
        struct kv *b = kv_new_with_max_sessions(MODEL_MAX_SESSIONS);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        int expired = 0, stale = 0;
        for (int i = 0; i < N; i++) {
            uint64_t index = (uint64_t)i + 1;
            int want;
            if (steps[i].type == RAFT_ENTRY_REGISTER) {
                model_register(&m, index);
                want = KV_APPLIED;
            } else {
                want = model_apply(&m, index, steps[i].client, steps[i].seq, steps[i].key,
                                   steps[i].type == RAFT_ENTRY_SET ? steps[i].val : NULL);
            }
            int got = apply_step(a, index, &steps[i]);
            ck_assert_msg(got == want, "seed %llu entry %d: got %d, model says %d",
                          (unsigned long long)seed, i + 1, got, want);
            expired += got == KV_SESSION_EXPIRED;
            stale += got == KV_STALE;
            if (i < N / 2)
                ck_assert_int_eq(apply_step(b, index, &steps[i]), got);
        }
        assert_matches_model(a, &m);
        ck_assert_int_gt(expired, 10);      /* the log did exercise expiry, */
        ck_assert_int_gt(stale, 10);        /* stale commands */
        ck_assert_int_gt(m.duplicates, 10); /* and duplicates */
        kv_free(b);                          /* restart: rebuild from index 1 */
        b = kv_new_with_max_sessions(MODEL_MAX_SESSIONS);
        ck_assert_ptr_nonnull(b);
        for (int i = 0; i < N; i++)
            apply_step(b, (uint64_t)i + 1, &steps[i]);
        ck_assert_uint_eq(kv_digest(a), kv_digest(b));
        assert_matches_model(b, &m);
        struct step change = { .type = RAFT_ENTRY_SET, .key = 0, .val = "changed" };
        ck_assert_int_eq(apply_step(a, N + 1, &change), KV_APPLIED);
        ck_assert_uint_ne(kv_digest(a), kv_digest(b));
        kv_free(a);
        kv_free(b);
    }
    free(steps);
}
END_TEST


/* ---- expiring keys (kv_expiry.c), on a fake clock ---- */

/* Applies a SETEX, EXPIRE, CAS_TTL (or any type) with its ttl at the next index. */
static int apply_ttl(struct log_kv *l, uint8_t type, const char *key, const char *val,
                     uint64_t ttl_ms, uint64_t rev)
{
    struct raft_entry e;
    uint32_t val_len = val ? (uint32_t)strlen(val) : 0;
    ck_assert_int_eq(raft_entry_init(&e, 1, type, key, (uint32_t)strlen(key), val, val_len),
                     RK_OK);
    e.ttl_ms = ttl_ms;
    e.rev = rev;
    int rc = kv_apply(l->kv, l->next++, &e);
    raft_entry_free(&e);
    return rc;
}

/* The EXPIRED entry a leader would propose at now (NULL val if nothing is due). */
static struct raft_entry expired_batch(const struct kv *kv, uint64_t now, uint32_t max_keys,
                                       uint32_t max_bytes, uint32_t *n_keys)
{
    struct raft_entry e = { .type = RAFT_ENTRY_EXPIRED, .key = "" };
    ck_assert_int_eq(kv_expiry_batch(kv, now, max_keys, max_bytes, &e.val, &e.val_len, n_keys),
                     RK_OK);
    return e;
}

/* As leader at now: proposes and applies the batch of due keys; returns how many it named. */
static uint32_t reap(struct log_kv *l, uint64_t now)
{
    uint32_t n_keys;
    struct raft_entry e = expired_batch(l->kv, now, 1000, 1u << 20, &n_keys);
    if (n_keys > 0)
        ck_assert_int_eq(kv_apply(l->kv, l->next++, &e), KV_APPLIED);
    free(e.val);
    return n_keys;
}

static uint64_t ttl_left(const struct kv *kv, const char *key)
{
    uint64_t left = 0;
    ck_assert(kv_ttl_left(kv, key, (uint32_t)strlen(key), &left));
    return left;
}

/* A deadline counts from when its entry is applied; the key goes at the deadline, through
 * an EXPIRED entry, not before. */
START_TEST(test_expiry_at_before_after_deadline)
{
    struct log_kv l = log_kv_new(8);
    kv_set_now(l.kv, 1000);
    ck_assert_int_eq(apply_ttl(&l, RAFT_ENTRY_SETEX, "k", "v", 500, 0), KV_APPLIED); /* 1 */
    ck_assert_uint_eq(rev_of_key(l.kv, "k"), 1);
    ck_assert_uint_eq(kv_next_deadline(l.kv), 1500);
    kv_set_now(l.kv, 1200);
    ck_assert_uint_eq(ttl_left(l.kv, "k"), 300);
    ck_assert_uint_eq(reap(&l, 1499), 0); /* before: nothing proposed */
    assert_str(l.kv, "k", "v");
    kv_set_now(l.kv, 1600);
    ck_assert_uint_eq(ttl_left(l.kv, "k"), 0); /* passed, not yet deleted: still there */
    assert_str(l.kv, "k", "v");
    ck_assert_uint_eq(reap(&l, 1500), 1); /* at the deadline: entry 2 deletes it */
    assert_absent(l.kv, "k", 1);
    ck_assert_uint_eq(kv_rev(l.kv), 2);
    ck_assert_uint_eq(kv_next_deadline(l.kv), UINT64_MAX);
    ck_assert_uint_eq(reap(&l, 1000000), 0); /* after: nothing left to do */
    ck_assert_uint_eq(kv_ttl_count(l.kv), 0);
    kv_free(l.kv);
}
END_TEST

/* EXPIRE moves a deadline (value and revision stay); SET and CAS remove it; a key with no
 * deadline says so; EXPIRE of an absent key does nothing. */
START_TEST(test_expire_set_and_cas_change_deadlines)
{
    struct log_kv l = log_kv_new(8);
    kv_set_now(l.kv, 0);
    ck_assert_int_eq(apply_ttl(&l, RAFT_ENTRY_EXPIRE, "k", NULL, 500, 0), KV_ABSENT); /* 1 */
    ck_assert_uint_eq(kv_ttl_count(l.kv), 0);
    ck_assert_int_eq(apply_ttl(&l, RAFT_ENTRY_SETEX, "k", "v", 500, 0), KV_APPLIED); /* 2 */
    kv_set_now(l.kv, 400);
    ck_assert_int_eq(apply_ttl(&l, RAFT_ENTRY_EXPIRE, "k", NULL, 1000, 0), KV_APPLIED); /* 3 */
    ck_assert_uint_eq(rev_of_key(l.kv, "k"), 2);
    ck_assert_uint_eq(kv_rev(l.kv), 2);
    ck_assert_uint_eq(kv_next_deadline(l.kv), 1400);
    uint64_t ttl_ms, set_index;
    ck_assert(kv_ttl_get(l.kv, "k", 1, &ttl_ms, &set_index));
    ck_assert_uint_eq(ttl_ms, 1000);
    ck_assert_uint_eq(set_index, 3);
    ck_assert_uint_eq(reap(&l, 1399), 0);
    ck_assert_int_eq(do_set(&l, 0, 0, "k", "plain"), KV_APPLIED); /* 4: no deadline now */
    ck_assert_uint_eq(ttl_left(l.kv, "k"), UINT64_MAX);
    ck_assert(!kv_ttl_get(l.kv, "k", 1, &ttl_ms, &set_index));
    ck_assert_uint_eq(reap(&l, 10000), 0);
    assert_str(l.kv, "k", "plain");
    /* CAS_TTL: a failed compare leaves the deadline alone; one that holds sets it; a
     * plain CAS removes it */
    ck_assert_int_eq(apply_ttl(&l, RAFT_ENTRY_CAS_TTL, "k", "x", 50, 3), KV_FAILED); /* 5 */
    ck_assert_uint_eq(kv_ttl_count(l.kv), 0);
    ck_assert_int_eq(apply_ttl(&l, RAFT_ENTRY_CAS_TTL, "k", "x", 50, 4), KV_APPLIED); /* 6 */
    ck_assert_uint_eq(kv_result_rev(l.kv), 6);
    ck_assert_uint_eq(kv_next_deadline(l.kv), 450);
    ck_assert_int_eq(apply_ttl(&l, RAFT_ENTRY_CAS_TTL, "new", "y", 70, 0), KV_APPLIED); /* 7 */
    ck_assert_int_eq(apply_ttl(&l, RAFT_ENTRY_CAS, "k", "z", 0, 6), KV_APPLIED); /* 8 */
    ck_assert_uint_eq(ttl_left(l.kv, "k"), UINT64_MAX);
    ck_assert_uint_eq(kv_next_deadline(l.kv), 470);
    ck_assert_uint_eq(reap(&l, 470), 1); /* 9: "new" only */
    assert_absent(l.kv, "new", 3);
    assert_str(l.kv, "k", "z");
    kv_free(l.kv);
}
END_TEST

/* An EXPIRED entry deletes a key only if its deadline is still the one it names: a key
 * given a new deadline, rewritten, or deleted and written again meanwhile stays. */
START_TEST(test_stale_batch_deletes_nothing)
{
    struct log_kv l = log_kv_new(8);
    kv_set_now(l.kv, 0);
    apply_ttl(&l, RAFT_ENTRY_SETEX, "a", "1", 100, 0); /* 1 */
    apply_ttl(&l, RAFT_ENTRY_SETEX, "b", "1", 100, 0); /* 2 */
    apply_ttl(&l, RAFT_ENTRY_SETEX, "c", "1", 100, 0); /* 3 */
    uint32_t n_keys;
    struct raft_entry batch = expired_batch(l.kv, 100, 10, 4096, &n_keys);
    ck_assert_uint_eq(n_keys, 3);
    apply_ttl(&l, RAFT_ENTRY_EXPIRE, "a", NULL, 1000, 0);    /* 4: a new deadline */
    ck_assert_int_eq(do_set(&l, 0, 0, "b", "2"), KV_APPLIED); /* 5: rewritten */
    ck_assert_int_eq(do_delete(&l, 0, 0, "c"), KV_APPLIED);   /* 6 */
    apply_ttl(&l, RAFT_ENTRY_SETEX, "c", "again", 100, 0);    /* 7: written again */
    ck_assert_int_eq(kv_apply(l.kv, l.next++, &batch), KV_APPLIED); /* 8 */
    assert_str(l.kv, "a", "1");
    assert_str(l.kv, "b", "2");
    assert_str(l.kv, "c", "again");
    ck_assert_uint_eq(kv_rev(l.kv), 7); /* nothing deleted: no new revision */
    ck_assert_int_eq(kv_apply(l.kv, l.next++, &batch), KV_APPLIED); /* twice: still nothing */
    ck_assert_uint_eq(kv_count(l.kv), 3);
    free(batch.val);
    kv_free(l.kv);
}
END_TEST

/* The leader that accepted a write dies between the write and the deadline. The new
 * leader learned of the key later and counts from then: the key lives longer, never
 * shorter. The replicated state stays equal whatever the local clocks say. */
START_TEST(test_leader_change_between_write_and_deadline)
{
    struct log_kv a = log_kv_new(8), b = log_kv_new(8);
    kv_set_now(a.kv, 1000);
    kv_set_now(b.kv, 1200); /* b applies the write 200 ms after the leader a */
    ck_assert_int_eq(apply_ttl(&a, RAFT_ENTRY_SETEX, "lease", "a", 500, 0), KV_APPLIED);
    ck_assert_int_eq(apply_ttl(&b, RAFT_ENTRY_SETEX, "lease", "a", 500, 0), KV_APPLIED);
    ck_assert_uint_eq(kv_digest(a.kv), kv_digest(b.kv));
    /* a dies at 1300, before its deadline 1500; b leads from 1400 */
    ck_assert_uint_eq(reap(&b, 1500), 0); /* a's deadline: not b's */
    ck_assert_uint_eq(reap(&b, 1699), 0);
    ck_assert_uint_eq(reap(&b, 1700), 1);
    assert_absent(b.kv, "lease", 5);
    kv_free(a.kv);
    kv_free(b.kv);
}
END_TEST

/* A retried SETEX in a session is answered from the record and does not restart the
 * deadline. */
START_TEST(test_setex_duplicate_keeps_deadline)
{
    struct log_kv l = log_kv_new(8);
    kv_set_now(l.kv, 0);
    uint64_t c = do_register(&l); /* 1 */
    struct raft_entry e;
    ck_assert_int_eq(raft_entry_init(&e, 1, RAFT_ENTRY_SETEX, "k", 1, "v", 1), RK_OK);
    e.client_id = c;
    e.seq = 1;
    e.ttl_ms = 300;
    ck_assert_int_eq(kv_apply(l.kv, l.next++, &e), KV_APPLIED); /* 2 */
    kv_set_now(l.kv, 200);
    ck_assert_int_eq(kv_apply(l.kv, l.next++, &e), KV_APPLIED); /* 3: the duplicate */
    raft_entry_free(&e);
    ck_assert_uint_eq(kv_next_deadline(l.kv), 300);
    ck_assert_uint_eq(rev_of_key(l.kv, "k"), 2);
    kv_free(l.kv);
}
END_TEST

/* Batches are bounded in keys and bytes (at least one key each), name only due keys, and
 * repeated they delete every due key. */
START_TEST(test_expiry_batches_bounded)
{
    struct log_kv l = log_kv_new(8);
    kv_set_now(l.kv, 0);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key%04d", i);
        apply_ttl(&l, RAFT_ENTRY_SETEX, key, "v", i < 4500 ? 1000 : 5000, 0);
    }
    uint32_t n_keys;
    struct raft_entry e = expired_batch(l.kv, 1000, 2000, 1u << 20, &n_keys);
    ck_assert_uint_eq(n_keys, 2000);
    ck_assert_uint_eq(e.val_len, 2000u * (12 + 7));
    free(e.val);
    e = expired_batch(l.kv, 1000, 2000, 100, &n_keys); /* 100 bytes: 5 records of 19 */
    ck_assert_uint_eq(n_keys, 5);
    free(e.val);
    e = expired_batch(l.kv, 1000, 2000, 1, &n_keys); /* one key, whatever its size */
    ck_assert_uint_eq(n_keys, 1);
    free(e.val);
    int rounds = 0;
    while (reap(&l, 1000) > 0 && rounds < 100)
        rounds++;
    ck_assert_int_eq(rounds, 5); /* 4500 keys, 1000 a batch */
    ck_assert_uint_eq(kv_count(l.kv), 500);
    ck_assert_uint_eq(kv_ttl_count(l.kv), 500);
    ck_assert_uint_eq(kv_next_deadline(l.kv), 5000);
    kv_free(l.kv);
}
END_TEST

/* A malformed EXPIRED list (only a faulty leader could write one) is read up to its first
 * bad record, the same way everywhere, and nothing fails. */
START_TEST(test_malformed_expired_list)
{
    struct log_kv l = log_kv_new(8);
    kv_set_now(l.kv, 0);
    apply_ttl(&l, RAFT_ENTRY_SETEX, "a", "1", 100, 0); /* 1 */
    apply_ttl(&l, RAFT_ENTRY_SETEX, "b", "1", 100, 0); /* 2 */
    static const char list[] = "\0\0\0\1a\0\0\0\0\0\0\0\1" /* a, set at 1 */
                               "\0\0\0\x7f" "b\0\0\0\0\0\0\0\2"; /* a key length too long */
    struct raft_entry e = { .type = RAFT_ENTRY_EXPIRED, .key = "", .val = (char *)list,
                            .val_len = sizeof(list) - 1 };
    ck_assert_int_eq(kv_apply(l.kv, l.next++, &e), KV_APPLIED);
    assert_absent(l.kv, "a", 1);
    assert_str(l.kv, "b", "1");
    e.val_len = 11; /* a record cut short */
    ck_assert_int_eq(kv_apply(l.kv, l.next++, &e), KV_APPLIED);
    ck_assert_uint_eq(kv_count(l.kv), 1);
    kv_free(l.kv);
}
END_TEST

/* The deadline heap against a brute-force model: random writes, deadlines, deletes and
 * reaps at random times; the next deadline and every batch must match the model. */
#define TTL_KEYS 40
struct ttl_model {
    bool present[TTL_KEYS], timed[TTL_KEYS];
    uint64_t deadline[TTL_KEYS];
};

static uint64_t model_next_deadline(const struct ttl_model *m)
{
    uint64_t next = UINT64_MAX;
    for (int k = 0; k < TTL_KEYS; k++)
        if (m->present[k] && m->timed[k] && m->deadline[k] < next)
            next = m->deadline[k];
    return next;
}

static void model_reap(struct log_kv *l, struct ttl_model *m, uint64_t now)
{
    int due = 0;
    for (int k = 0; k < TTL_KEYS; k++)
        if (m->present[k] && m->timed[k] && m->deadline[k] <= now) {
            m->present[k] = false;
            due++;
        }
    ck_assert_uint_eq(reap(l, now), (uint32_t)due); /* all fit in one batch of 1000 */
}

static void model_step(struct log_kv *l, struct ttl_model *m, uint64_t now)
{
    int k = (int)(rng() % TTL_KEYS), what = (int)(rng() % 6);
    uint64_t ttl = 1 + rng() % 500;
    char key[8];
    snprintf(key, sizeof(key), "k%d", k);
    kv_set_now(l->kv, now);
    if (what == 0) {
        do_set(l, 0, 0, key, "v");
        m->present[k] = true;
        m->timed[k] = false;
    } else if (what == 1) {
        do_delete(l, 0, 0, key);
        m->present[k] = false;
    } else if (what == 2) {
        ck_assert_int_eq(apply_ttl(l, RAFT_ENTRY_EXPIRE, key, NULL, ttl, 0),
                         m->present[k] ? KV_APPLIED : KV_ABSENT);
        m->timed[k] = m->timed[k] || m->present[k];
        m->deadline[k] = now + ttl;
    } else if (what == 3) {
        model_reap(l, m, now);
    } else {
        apply_ttl(l, RAFT_ENTRY_SETEX, key, "v", ttl, 0);
        m->present[k] = m->timed[k] = true;
        m->deadline[k] = now + ttl;
    }
}

START_TEST(test_deadline_heap_against_model)
{
    rng_state = 0x5eedULL + (uint64_t)_i;
    struct log_kv l = log_kv_new(8);
    struct ttl_model m = { 0 };
    uint64_t now = 0;
    for (int step = 0; step < 20000; step++) {
        now += rng() % 20;
        model_step(&l, &m, now);
        ck_assert_uint_eq(kv_next_deadline(l.kv), model_next_deadline(&m));
    }
    model_reap(&l, &m, UINT64_MAX - 1);
    ck_assert_uint_eq(kv_ttl_count(l.kv), 0);
    kv_free(l.kv);
}
END_TEST

static Suite *kv_suite(void)
{
    Suite *suite = suite_create("kv");
    TCase *tc = tcase_create("map");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_set_get_overwrite_delete);
    tcase_add_test(tc, test_binary_keys);
    tcase_add_test(tc, test_many_keys_with_growth);
    tcase_add_test(tc, test_apply_each_type);
    tcase_add_test(tc, test_scan_pages);
    tcase_add_test(tc, test_scan_binary_order);
    suite_add_tcase(suite, tc);
    TCase *ts = tcase_create("sessions");
    tcase_set_timeout(ts, 20);
    tcase_add_test(ts, test_register_gives_index_as_id);
    tcase_add_test(ts, test_duplicate_set_applied_once);
    tcase_add_test(ts, test_duplicate_delete_returns_recorded_result);
    tcase_add_test(ts, test_stale_and_zero_seq);
    tcase_add_test(ts, test_revisions);
    tcase_add_test(ts, test_cas_and_cad);
    tcase_add_test(ts, test_cas_duplicates_answer_as_recorded);
    tcase_add_test(ts, test_unknown_session_expired);
    tcase_add_test(ts, test_lru_eviction_at_bound);
    tcase_add_test(ts, test_default_bound);
    tcase_add_test(ts, test_deterministic_against_model);
    suite_add_tcase(suite, ts);
    TCase *te = tcase_create("expiry");
    tcase_set_timeout(te, 20);
    tcase_add_test(te, test_expiry_at_before_after_deadline);
    tcase_add_test(te, test_expire_set_and_cas_change_deadlines);
    tcase_add_test(te, test_stale_batch_deletes_nothing);
    tcase_add_test(te, test_leader_change_between_write_and_deadline);
    tcase_add_test(te, test_setex_duplicate_keeps_deadline);
    tcase_add_test(te, test_expiry_batches_bounded);
    tcase_add_test(te, test_malformed_expired_list);
    tcase_add_loop_test(te, test_deadline_heap_against_model, 0, 4);
    suite_add_tcase(suite, te);
    return suite;
}

RK_CHECK_MAIN(kv_suite)
