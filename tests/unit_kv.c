/* tests/unit_kv.c - Check tests for server/kv: set/get/overwrite/delete, binary keys,
 * growth to 100000 keys, and kv_apply on each entry type. */
#include <check.h>
#include <stdio.h>
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

    ck_assert_int_eq(kv_apply(kv, &noop), KV_APPLIED);
    ck_assert_uint_eq(kv_count(kv), 0);
    ck_assert_int_eq(kv_apply(kv, &del), KV_ABSENT); /* delete of an absent key */
    ck_assert_int_eq(kv_apply(kv, &set), KV_APPLIED);
    assert_value(kv, "k\0", 2, "v1", 2);
    ck_assert_int_eq(kv_apply(kv, &set2), KV_APPLIED);
    assert_value(kv, "k\0", 2, "v22", 3);
    ck_assert_int_eq(kv_apply(kv, &del), KV_APPLIED);
    assert_absent(kv, "k\0", 2);
    ck_assert_int_eq(kv_apply(kv, &del), KV_ABSENT);
    ck_assert_uint_eq(kv_count(kv), 0);
    set.type = 99;
    ck_assert_int_eq(kv_apply(kv, &set), RK_ERR_INVAL);
    ck_assert_uint_eq(kv_count(kv), 0);

    kv_free(kv);
    raft_entry_free(&noop);
    raft_entry_free(&set);
    raft_entry_free(&set2);
    raft_entry_free(&del);
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
    suite_add_tcase(suite, tc);
    return suite;
}

RK_CHECK_MAIN(kv_suite)
