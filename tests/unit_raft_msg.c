/* tests/unit_raft_msg.c - common/raft_msg.c: an entry's bytes are shared by its copies and
 * freed with the last one; borrowed bytes are copied. Run under ASan (make SAN=address
 * check), a free too early or a leak fails the test. */
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"
#include "../common/raft_msg.h"
#include "check_main.h"

START_TEST(test_copies_share_bytes_until_the_last_free)
{
    struct raft_entry a, b, c;
    ck_assert_int_eq(raft_entry_init(&a, 3, RAFT_ENTRY_SET, "key", 3, "value", 5), RK_OK);
    ck_assert_int_eq(raft_entry_copy(&b, &a), RK_OK);
    ck_assert_int_eq(raft_entry_copy(&c, &b), RK_OK);
    ck_assert_ptr_eq(b.key, a.key); /* shared, not copied */
    ck_assert_ptr_eq(c.val, a.val);
    raft_entry_free(&a);
    ck_assert_ptr_null(a.key);
    ck_assert_int_eq(memcmp(b.key, "key", 4), 0); /* NUL after the key */
    raft_entry_free(&b);
    ck_assert_int_eq(memcmp(c.val, "value", 6), 0);
    ck_assert_uint_eq(c.term, 3);
    ck_assert_uint_eq(c.type, RAFT_ENTRY_SET);
    raft_entry_free(&c);
    raft_entry_free(&c); /* freeing a freed entry is a no-op */
}
END_TEST

START_TEST(test_borrowed_bytes_are_copied)
{
    char key[] = "k1", val[] = "v1";
    struct raft_entry borrowed = { .term = 2, .type = RAFT_ENTRY_SET, .client_id = 7, .seq = 9,
                                   .key = key, .key_len = 2, .val = val, .val_len = 2 };
    struct raft_entry copy;
    ck_assert_int_eq(raft_entry_copy(&copy, &borrowed), RK_OK);
    ck_assert_ptr_ne(copy.key, key);
    key[0] = 'X'; /* the caller's buffer changes: the copy does not */
    ck_assert_int_eq(memcmp(copy.key, "k1", 3), 0);
    ck_assert_uint_eq(copy.client_id, 7);
    ck_assert_uint_eq(copy.seq, 9);
    raft_entry_free(&borrowed); /* leaves the caller's bytes alone */
    ck_assert_int_eq(val[0], 'v');
    raft_entry_free(&copy);
}
END_TEST

START_TEST(test_message_copies_share_entries)
{
    struct raft_msg m = { .type = RAFT_MSG_APPEND, .n_entries = 2 };
    m.entries = calloc(2, sizeof(*m.entries));
    ck_assert_ptr_nonnull(m.entries);
    ck_assert_int_eq(raft_entry_init(&m.entries[0], 1, RAFT_ENTRY_SET, "a", 1, "1", 1), RK_OK);
    ck_assert_int_eq(raft_entry_init(&m.entries[1], 1, RAFT_ENTRY_DELETE, "b", 1, "", 0), RK_OK);
    struct raft_msg copy;
    ck_assert_int_eq(raft_msg_copy(&copy, &m), RK_OK);
    raft_msg_free_entries(&m);
    ck_assert_uint_eq(copy.n_entries, 2);
    ck_assert_int_eq(memcmp(copy.entries[0].key, "a", 2), 0);
    ck_assert_int_eq(memcmp(copy.entries[1].key, "b", 2), 0);
    raft_msg_free_entries(&copy);
}
END_TEST

static Suite *raft_msg_suite(void)
{
    Suite *s = suite_create("raft_msg");
    TCase *tc = tcase_create("entries");
    tcase_add_test(tc, test_copies_share_bytes_until_the_last_free);
    tcase_add_test(tc, test_borrowed_bytes_are_copied);
    tcase_add_test(tc, test_message_copies_share_entries);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(raft_msg_suite)
