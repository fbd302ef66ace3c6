/* tests/unit_crc32.c - common/crc32.c against known CRC-32 (zlib) check values. */
#include <string.h>

#include "../common/crc32.h"
#include "check_main.h"

START_TEST(test_check_value)
{
    ck_assert_uint_eq(crc32_update(0, "123456789", 9), 0xCBF43926u);
}
END_TEST

START_TEST(test_known_values)
{
    ck_assert_uint_eq(crc32_update(0, "", 0), 0u);
    ck_assert_uint_eq(crc32_update(0, "a", 1), 0xE8B7BE43u);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    ck_assert_uint_eq(crc32_update(0, fox, strlen(fox)), 0x414FA339u);
    const unsigned char zeros[4] = { 0, 0, 0, 0 };
    ck_assert_uint_eq(crc32_update(0, zeros, sizeof(zeros)), 0x2144DF1Cu);
}
END_TEST

/* Feeding the data in pieces gives the same CRC as in one call. */
START_TEST(test_incremental)
{
    const char *text = "raft-kv: 1 set key value\n";
    size_t len = strlen(text);
    uint32_t whole = crc32_update(0, text, len);
    for (size_t cut = 0; cut <= len; cut++) {
        uint32_t part = crc32_update(0, text, cut);
        ck_assert_uint_eq(crc32_update(part, text + cut, len - cut), whole);
    }
    ck_assert_uint_ne(crc32_update(0, text, len - 1), whole);
}
END_TEST

static Suite *crc32_suite(void)
{
    Suite *s = suite_create("crc32");
    TCase *tc = tcase_create("crc32");
    tcase_add_test(tc, test_check_value);
    tcase_add_test(tc, test_known_values);
    tcase_add_test(tc, test_incremental);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(crc32_suite)
