/* tests/check_main.h - the main() every Check test program shares: run one suite,
 * exit non-zero on any failure. Each tests/NAME.c file is its own program. */
#ifndef RK_CHECK_MAIN_H
#define RK_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

#define RK_CHECK_MAIN(suite_fn)                                   \
    int main(void)                                                \
    {                                                             \
        SRunner *sr = srunner_create(suite_fn());                 \
        srunner_run_all(sr, CK_NORMAL);                           \
        int failed = srunner_ntests_failed(sr);                   \
        srunner_free(sr);                                         \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;         \
    }

#endif
