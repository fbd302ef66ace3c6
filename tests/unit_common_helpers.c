/* tests/unit_common_helpers.c - the small helpers of common/ every module shares:
 * rk_grow (grow.h), rk_put_be / rk_get_be (bytes.h), the clock (clock.h) and the rate
 * limit of log lines (rate_limit.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/bytes.h"
#include "../common/clock.h"
#include "../common/errors.h"
#include "../common/grow.h"
#include "../common/rate_limit.h"
#include "check_main.h"

START_TEST(test_grow_doubles_from_first)
{
    uint32_t *a = NULL;
    size_t cap = 0;
    ck_assert_int_eq(rk_grow(&a, &cap, 1, sizeof(*a), 4), RK_OK);
    ck_assert_uint_eq(cap, 4);
    ck_assert_ptr_nonnull(a);
    for (uint32_t i = 0; i < 4; i++)
        a[i] = i;
    ck_assert_int_eq(rk_grow(&a, &cap, 4, sizeof(*a), 4), RK_OK); /* fits: no change */
    ck_assert_uint_eq(cap, 4);
    ck_assert_int_eq(rk_grow(&a, &cap, 9, sizeof(*a), 4), RK_OK);
    ck_assert_uint_eq(cap, 16);
    for (uint32_t i = 0; i < 4; i++)
        ck_assert_uint_eq(a[i], i); /* kept */
    a[15] = 15;
    free(a);
}
END_TEST

START_TEST(test_grow_refuses_overflow)
{
    uint64_t *a = NULL;
    size_t cap = 0;
    ck_assert_int_eq(rk_grow(&a, &cap, 2, sizeof(*a), 2), RK_OK);
    uint64_t *before = a;
    ck_assert_int_eq(rk_grow(&a, &cap, SIZE_MAX / 4, sizeof(*a), 2), RK_ERR_NOMEM);
    ck_assert_int_eq(rk_grow(&a, &cap, SIZE_MAX, 1, 2), RK_ERR_NOMEM);
    ck_assert_ptr_eq(a, before);
    ck_assert_uint_eq(cap, 2);
    free(a);
}
END_TEST

START_TEST(test_big_endian)
{
    uint8_t b[8];
    rk_put_be(b, 0x0102030405060708ull, 8);
    const uint8_t want[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    ck_assert_mem_eq(b, want, 8);
    ck_assert_uint_eq(rk_get_be(b, 8), 0x0102030405060708ull);
    rk_put_be(b, 0xA1B2C3D4u, 4);
    ck_assert_uint_eq(rk_get_be32(b), 0xA1B2C3D4u);
    rk_put_be(b, 0x1234, 2); /* only the low bytes */
    ck_assert_uint_eq(b[0], 0x12);
    ck_assert_uint_eq(b[1], 0x34);
}
END_TEST

/* The first passes; within the period the rest are held back and counted; the next after
 * it passes and says how many were held back; the count starts again. */
START_TEST(test_rate_limit_holds_and_counts)
{
    struct rk_rate_limit r = { 0 };
    unsigned long held = 99;
    ck_assert(rk_rate_limit_pass(&r, 5000, 1000, &held));
    ck_assert_uint_eq(held, 0);
    ck_assert(!rk_rate_limit_pass(&r, 5000, 1000, &held));
    ck_assert(!rk_rate_limit_pass(&r, 5999, 1000, &held));
    ck_assert(rk_rate_limit_pass(&r, 6000, 1000, &held));
    ck_assert_uint_eq(held, 2);
    ck_assert(!rk_rate_limit_pass(&r, 6500, 1000, &held));
    ck_assert(rk_rate_limit_pass(&r, 9000, 1000, &held));
    ck_assert_uint_eq(held, 1);
    ck_assert(rk_rate_limit_pass(&r, 10000, 1000, &held));
    ck_assert_uint_eq(held, 0);
}
END_TEST

START_TEST(test_clock_units_agree)
{
    uint64_t ms = rk_clock_ms(), us = rk_clock_us(), ns = rk_clock_ns();
    ck_assert_uint_ge(us / 1000, ms);
    ck_assert_uint_ge(ns / 1000, us);
    rk_sleep_ms(20);
    uint64_t after = rk_clock_ms();
    ck_assert_uint_ge(after - ms, 20);
    rk_sleep_ms(0);
    rk_sleep_ms(-5); /* nothing */
}
END_TEST

static Suite *helpers_suite(void)
{
    Suite *s = suite_create("common_helpers");
    TCase *tc = tcase_create("helpers");
    tcase_add_test(tc, test_grow_doubles_from_first);
    tcase_add_test(tc, test_grow_refuses_overflow);
    tcase_add_test(tc, test_big_endian);
    tcase_add_test(tc, test_clock_units_agree);
    tcase_add_test(tc, test_rate_limit_holds_and_counts);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(helpers_suite)
