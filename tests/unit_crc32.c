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

/* The CRC bit by bit, straight from the definition: what the fast version must match. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 1u) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

/* Every length up to 300 at every alignment: the 8-byte steps and the byte tail agree
 * with the definition. */
START_TEST(test_matches_bitwise_at_every_length_and_alignment)
{
    uint8_t data[320];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(data); i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= 300; len++)
            ck_assert_uint_eq(crc32_update(0, data + off, len),
                              crc32_bitwise(data + off, len));
}
END_TEST

static Suite *crc32_suite(void)
{
    Suite *s = suite_create("crc32");
    TCase *tc = tcase_create("crc32");
    tcase_add_test(tc, test_check_value);
    tcase_add_test(tc, test_known_values);
    tcase_add_test(tc, test_incremental);
    tcase_add_test(tc, test_matches_bitwise_at_every_length_and_alignment);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(crc32_suite)
