/* tests/unit_warnings.c - the operator warnings of server/node/warnings.c on a node with no
 * threads, sockets or disk: a slow apply and a slow fdatasync give one line each, saying
 * what was measured, only over 100 ms, and a second within 30 s is held back. (The
 * follower lag and the full disk need a cluster: tests/integ_warnings.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../server/node/node.h"
#include "check_main.h"

/* Runs fn(n) with stderr (where node_log writes) in a temporary file; returns what it
 * wrote, malloc'ed. */
static char *logged_by(void (*fn)(struct node *), struct node *n)
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    fn(n);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    ck_assert_int_eq(fseek(tmp, 0, SEEK_END), 0);
    long len = ftell(tmp);
    ck_assert_int_ge(len, 0);
    char *text = calloc(1, (size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    rewind(tmp);
    ck_assert_uint_eq(fread(text, 1, (size_t)len, tmp), (size_t)len);
    fclose(tmp);
    return text;
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = strstr(text, what); p != NULL; p = strstr(p + 1, what))
        n++;
    return n;
}

static void slow_applies(struct node *n)
{
    node_warn_apply(n, 10, NODE_WARN_APPLY_MS);      /* not over: nothing */
    node_warn_apply(n, 10, NODE_WARN_APPLY_MS + 1);  /* the line */
    node_warn_apply(n, 20, 5000);                    /* within 30 s: held back */
    node_warn_sync(n, NODE_WARN_SYNC_MS);            /* not over */
    node_warn_sync(n, 250);                          /* its own kind: the line */
    node_warn_sync(n, 900);                          /* held back */
}

START_TEST(test_slow_apply_and_sync_once_each)
{
    struct node *n = calloc(1, sizeof(*n));
    ck_assert_ptr_nonnull(n);
    n->name = "s9";
    char *text = logged_by(slow_applies, n);
    ck_assert_int_eq(count(text, "warning:"), 2);
    ck_assert_int_eq(count(text, "s9 term=0 warning: applying 10 entries took 101 ms (over 100 ms)"),
                     1);
    ck_assert_int_eq(count(text, "warning: an fdatasync of the log took 250 ms (over 100 ms)"), 1);
    ck_assert_uint_eq(n->warn.apply.held, 1);
    ck_assert_uint_eq(n->warn.sync.held, 1);
    free(text);
    free(n);
}
END_TEST

static Suite *warnings_suite(void)
{
    Suite *s = suite_create("warnings");
    TCase *tc = tcase_create("warnings");
    tcase_add_test(tc, test_slow_apply_and_sync_once_each);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(warnings_suite)
