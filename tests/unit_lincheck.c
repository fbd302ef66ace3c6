/* tests/unit_lincheck.c - self-tests of the linearizability checker (tests/lincheck.c):
 * hand-made illegal histories it must reject, legal ones it must accept, and randomized
 * histories from a sequential model (accepted) with one read corrupted (rejected). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"
#include "check_main.h"
#include "lincheck.h"

#define MAX_HIST 8192
#define MS 1000000LL /* the hand-made histories are written in milliseconds */

/* ---- building histories ---- */

static struct lincheck_op hist[MAX_HIST];
static int n_hist;

static void reset(void)
{
    memset(hist, 0, sizeof(hist));
    n_hist = 0;
}

static struct lincheck_op *add(int client, enum lincheck_kind kind, const char *key,
                               long long inv_ms, long long cmp_ms, enum lincheck_outcome o)
{
    ck_assert_int_lt(n_hist, MAX_HIST);
    struct lincheck_op *op = &hist[n_hist++];
    op->client = client;
    op->kind = kind;
    op->outcome = o;
    snprintf(op->key, sizeof(op->key), "%s", key);
    op->invoke_ns = inv_ms * MS;
    op->complete_ns = cmp_ms * MS;
    return op;
}

static void set_op(int client, const char *key, const char *val, long long inv, long long cmp,
                   enum lincheck_outcome o)
{
    struct lincheck_op *op = add(client, LINCHECK_SET, key, inv, cmp, o);
    snprintf(op->value, sizeof(op->value), "%s", val);
}

/* val NULL: the get read nil. */
static void get_op(int client, const char *key, const char *val, long long inv, long long cmp,
                   enum lincheck_outcome o)
{
    struct lincheck_op *op = add(client, LINCHECK_GET, key, inv, cmp, o);
    op->found = val != NULL;
    if (val != NULL)
        snprintf(op->value, sizeof(op->value), "%s", val);
}

/* found: the delete answered OK (the key existed); false: nil. */
static void del_op(int client, const char *key, bool found, long long inv, long long cmp,
                   enum lincheck_outcome o)
{
    add(client, LINCHECK_DELETE, key, inv, cmp, o)->found = found;
}

/* rev read: val NULL for nil. */
static void rev_op(int client, const char *key, unsigned long long rev, const char *val,
                   long long inv, long long cmp)
{
    struct lincheck_op *op = add(client, LINCHECK_REV, key, inv, cmp, LINCHECK_OK);
    op->found = val != NULL;
    op->rev = rev;
    if (val != NULL)
        snprintf(op->value, sizeof(op->value), "%s", val);
}

/* cas KEY REV VAL answered (held: OK got; else FAILED got), or of unknown outcome. */
static void cas_op(int client, const char *key, unsigned long long rev, const char *val,
                   bool held, unsigned long long got, long long inv, long long cmp,
                   enum lincheck_outcome o)
{
    struct lincheck_op *op = add(client, LINCHECK_CAS, key, inv, cmp, o);
    op->rev = rev;
    op->held = held;
    op->got_rev = got;
    snprintf(op->value, sizeof(op->value), "%s", val);
}

static void cad_op(int client, const char *key, unsigned long long rev, bool held,
                   unsigned long long got, long long inv, long long cmp, enum lincheck_outcome o)
{
    struct lincheck_op *op = add(client, LINCHECK_CAD, key, inv, cmp, o);
    op->rev = rev;
    op->held = held;
    op->got_rev = got;
}

#define LONG_TTL_MS 3600000LL /* an hour: outlasts every hand-made history */

/* setex KEY LONG_TTL VAL: a set, for the checker. */
static void setex_op(int client, const char *key, const char *val, long long inv, long long cmp,
                     enum lincheck_outcome o)
{
    struct lincheck_op *op = add(client, LINCHECK_SET, key, inv, cmp, o);
    snprintf(op->value, sizeof(op->value), "%s", val);
    op->ttl_ms = LONG_TTL_MS;
}

/* expire KEY LONG_TTL: found, it answered OK (the key existed); else nil. */
static void expire_op(int client, const char *key, bool found, long long inv, long long cmp,
                      enum lincheck_outcome o)
{
    struct lincheck_op *op = add(client, LINCHECK_EXPIRE, key, inv, cmp, o);
    op->found = found;
    op->ttl_ms = LONG_TTL_MS;
}

/* ttl KEY: found, a number of seconds; else nil. */
static void ttl_op(int client, const char *key, bool found, long long inv, long long cmp,
                   enum lincheck_outcome o)
{
    add(client, LINCHECK_TTL, key, inv, cmp, o)->found = found;
}

static enum lincheck_verdict check_with(struct lincheck_result *r, bool search_only)
{
    struct lincheck_options o = {.max_steps_per_key = 2000000, .search_only = search_only};
    int rc = lincheck_check(hist, (size_t)n_hist, &o, r);
    ck_assert_msg(rc == RK_OK, "lincheck_check: %s", rk_strerror(rc));
    return r->verdict;
}

static enum lincheck_verdict check_hist(struct lincheck_result *r)
{
    return check_with(r, false);
}

static void expect_legal(const char *what)
{
    struct lincheck_result r;
    enum lincheck_verdict v = check_hist(&r);
    ck_assert_msg(v == LINCHECK_LINEARIZABLE, "%s: expected linearizable, got %s:\n%s", what,
                  lincheck_verdict_name(v), r.explanation ? r.explanation : "");
    ck_assert_ptr_null(r.explanation);
    lincheck_result_free(&r);
}

/* Expects a violation on key, found by the search alone too; the report must name the
 * key and contain `mention`. */
static void expect_illegal(const char *what, const char *key, const char *mention)
{
    struct lincheck_result r;
    enum lincheck_verdict v = check_with(&r, true);
    ck_assert_msg(v == LINCHECK_VIOLATION, "%s: the search found %s", what,
                  lincheck_verdict_name(v));
    lincheck_result_free(&r);
    v = check_hist(&r);
    ck_assert_msg(v == LINCHECK_VIOLATION, "%s: expected a violation, got %s", what,
                  lincheck_verdict_name(v));
    ck_assert_str_eq(r.key, key);
    ck_assert_ptr_nonnull(r.explanation);
    ck_assert_msg(strstr(r.explanation, key) != NULL, "%s: report lacks the key:\n%s", what,
                  r.explanation);
    if (mention != NULL)
        ck_assert_msg(strstr(r.explanation, mention) != NULL, "%s: report lacks '%s':\n%s",
                      what, mention, r.explanation);
    lincheck_result_free(&r);
}

/* ---- registers with a revision: rev, cas, cad ---- */

START_TEST(test_accepts_cas_chain)
{
    reset();
    cas_op(1, "k", 0, "a", true, 10, 0, 1, LINCHECK_OK);
    rev_op(2, "k", 10, "a", 2, 3);
    cas_op(1, "k", 10, "b", true, 12, 4, 5, LINCHECK_OK);
    cas_op(2, "k", 10, "c", false, 12, 6, 7, LINCHECK_OK); /* too late: FAILED at 12 */
    rev_op(3, "k", 12, "b", 6, 8);
    cad_op(1, "k", 12, true, 0, 9, 10, LINCHECK_OK);
    rev_op(2, "k", 0, NULL, 11, 12);
    cad_op(3, "k", 12, false, 0, 13, 14, LINCHECK_OK);    /* absent: FAILED 0 */
    cas_op(3, "k", 0, "d", true, 20, 15, 16, LINCHECK_OK);
    get_op(1, "k", "d", 17, 18, LINCHECK_OK);
    /* two racing cas on one revision, concurrent: one wins, in either order */
    cas_op(1, "k", 20, "e", true, 22, 19, 30, LINCHECK_OK);
    cas_op(2, "k", 20, "f", false, 22, 19, 30, LINCHECK_OK);
    expect_legal("a chain of cas, failed compares and a race");
}
END_TEST

/* Two cas that held on the same revision, one after the other: a lost update. */
START_TEST(test_rejects_lost_update)
{
    reset();
    cas_op(1, "k", 0, "a", true, 10, 0, 1, LINCHECK_OK);
    cas_op(1, "k", 10, "b", true, 12, 2, 3, LINCHECK_OK);
    cas_op(2, "k", 10, "c", true, 14, 4, 5, LINCHECK_OK);
    expect_illegal("a second cas held on a revision already replaced", "k", NULL);
}
END_TEST

/* A failed compare that reports a revision the key had left before it began. */
START_TEST(test_rejects_stale_failed_compare)
{
    reset();
    cas_op(1, "k", 0, "a", true, 10, 0, 1, LINCHECK_OK);
    cas_op(1, "k", 10, "b", true, 12, 2, 3, LINCHECK_OK);
    cas_op(2, "k", 12, "c", false, 10, 4, 5, LINCHECK_OK);
    expect_illegal("a FAILED compare saw revision 10 after 12 was written", "k", NULL);
}
END_TEST

/* A cad that held though a set had replaced the value of the revision it compared. */
START_TEST(test_rejects_cad_of_replaced_value)
{
    reset();
    set_op(1, "k", "a", 0, 1, LINCHECK_OK);
    rev_op(2, "k", 3, "a", 2, 3);
    set_op(1, "k", "b", 4, 5, LINCHECK_OK);
    cad_op(2, "k", 3, true, 0, 6, 7, LINCHECK_OK);
    expect_illegal("cad held on a revision whose value was overwritten", "k", NULL);
}
END_TEST

/* One revision, two values: a revision names one write. */
START_TEST(test_rejects_revision_of_two_values)
{
    reset();
    set_op(1, "k", "a", 0, 1, LINCHECK_OK);
    rev_op(2, "k", 3, "a", 2, 3);
    set_op(1, "k", "b", 4, 5, LINCHECK_OK);
    rev_op(2, "k", 3, "b", 6, 7);
    expect_illegal("rev 3 read with two values", "k", "names two different values");
}
END_TEST

/* A cas of unknown outcome whose value was read took effect; one nobody read, comparing
 * 0, may have created the key a delete then found; one comparing a real revision and
 * never read may not have happened. */
START_TEST(test_accepts_unknown_cas)
{
    reset();
    cas_op(1, "k", 0, "a", false, 0, 0, 1, LINCHECK_UNKNOWN);
    rev_op(2, "k", 5, "a", 10, 11);
    cas_op(1, "k", 5, "x", false, 0, 12, 13, LINCHECK_UNKNOWN); /* never read */
    get_op(2, "k", "a", 20, 21, LINCHECK_OK);
    cas_op(1, "j", 0, "y", false, 0, 0, 1, LINCHECK_UNKNOWN);  /* never read... */
    del_op(2, "j", true, 10, 11, LINCHECK_OK);                 /* ...but it made j exist */
    cad_op(1, "m", 7, false, 0, 0, 1, LINCHECK_UNKNOWN);
    expect_legal("unknown cas and cad");
}
END_TEST

/* ---- expiring keys with long times to live: setex, cas --ttl, expire, ttl ---- */

START_TEST(test_accepts_expire_and_ttl)
{
    reset();
    setex_op(1, "k", "a", 0, 1, LINCHECK_OK);
    ttl_op(2, "k", true, 2, 3, LINCHECK_OK);
    expire_op(1, "k", true, 4, 5, LINCHECK_OK);  /* a touch: the value stays */
    get_op(2, "k", "a", 6, 7, LINCHECK_OK);
    rev_op(3, "k", 9, "a", 6, 8);
    struct lincheck_op *c = add(1, LINCHECK_CAS, "k", 10, 11, LINCHECK_OK); /* cas --ttl */
    c->rev = 9; /* expire kept the revision */
    c->held = true;
    c->got_rev = 12;
    c->ttl_ms = LONG_TTL_MS;
    snprintf(c->value, sizeof(c->value), "b");
    del_op(2, "k", true, 12, 13, LINCHECK_OK);
    ttl_op(3, "k", false, 14, 15, LINCHECK_OK);
    expire_op(1, "k", false, 16, 17, LINCHECK_OK);
    /* concurrent with a set: either answer */
    setex_op(2, "k", "c", 20, 30, LINCHECK_OK);
    expire_op(1, "k", false, 21, 29, LINCHECK_OK);
    ttl_op(3, "k", true, 21, 29, LINCHECK_OK);
    /* an unknown set may have made the key exist for an expire, an unknown delete may
     * have removed it for a ttl; an unknown expire changes nothing */
    setex_op(1, "j", "x", 0, 1, LINCHECK_UNKNOWN);
    expire_op(2, "j", true, 10, 11, LINCHECK_OK);
    del_op(1, "j", false, 12, 13, LINCHECK_UNKNOWN);
    ttl_op(2, "j", false, 20, 21, LINCHECK_OK);
    expire_op(3, "j", true, 22, 23, LINCHECK_UNKNOWN);
    expect_legal("setex, cas --ttl, expire and ttl");
}
END_TEST

/* An expire that answered OK though the key had been deleted before it began. */
START_TEST(test_rejects_expire_of_absent_key)
{
    reset();
    setex_op(1, "k", "a", 0, 1, LINCHECK_OK);
    del_op(2, "k", true, 2, 3, LINCHECK_OK);
    expire_op(1, "k", true, 4, 5, LINCHECK_OK);
    expect_illegal("expire answered OK on a deleted key", "k", "the key is absent");
    reset();
    setex_op(1, "k", "a", 0, 1, LINCHECK_OK);
    expire_op(2, "k", false, 2, 3, LINCHECK_OK); /* nil, though nothing removed it */
    expect_illegal("expire answered nil on an existing key", "k", "the key exists");
}
END_TEST

/* A ttl that read nil for a key that existed throughout, and a number after a delete. */
START_TEST(test_rejects_ttl_of_wrong_existence)
{
    reset();
    setex_op(1, "k", "a", 0, 1, LINCHECK_OK);
    expire_op(1, "k", true, 2, 3, LINCHECK_OK);
    ttl_op(2, "k", false, 4, 5, LINCHECK_OK);
    get_op(3, "k", "a", 6, 7, LINCHECK_OK);
    expect_illegal("ttl read nil between reads of the value", "k", "ttl k -> nil");
    reset();
    set_op(1, "k", "a", 0, 1, LINCHECK_OK);
    del_op(2, "k", true, 2, 3, LINCHECK_OK);
    ttl_op(3, "k", true, 4, 5, LINCHECK_OK);
    expect_illegal("ttl read a number after the delete", "k", "ttl k -> (a number)");
}
END_TEST

/* The checker models no expiry: a time to live that may run out within the history is
 * refused, not checked. */
START_TEST(test_rejects_ttl_shorter_than_history)
{
    reset();
    struct lincheck_op *op = add(1, LINCHECK_SET, "k", 0, 1, LINCHECK_UNKNOWN);
    snprintf(op->value, sizeof(op->value), "a");
    op->ttl_ms = 50;
    get_op(2, "k", NULL, 60, 61, LINCHECK_OK);
    struct lincheck_result r;
    ck_assert_int_eq(lincheck_check(hist, (size_t)n_hist, NULL, &r), RK_ERR_INVAL);
    ck_assert_ptr_nonnull(r.explanation);
    ck_assert_msg(strstr(r.explanation, "models no expiry") != NULL, "%s", r.explanation);
    lincheck_result_free(&r);
    hist[0].ttl_ms = 100; /* past the end at 61 ms: fine */
    ck_assert_int_eq(lincheck_check(hist, (size_t)n_hist, NULL, &r), RK_OK);
    ck_assert_int_eq(r.verdict, LINCHECK_LINEARIZABLE);
    lincheck_result_free(&r);
    hist[1].kind = LINCHECK_EXPIRE; /* an expire without a time to live */
    hist[1].ttl_ms = 0;
    ck_assert_int_eq(lincheck_check(hist, (size_t)n_hist, NULL, &r), RK_ERR_INVAL);
    lincheck_result_free(&r);
}
END_TEST

/* An unknown set nobody read made the key exist for a failed compare (that saw a
 * revision nobody else told) or an expire; the key then holds that value, so a later
 * get cannot read nil without a delete. (The search used to place the unread set and
 * then go on from an absent key.) */
START_TEST(test_rejects_nil_after_unread_set_made_key_exist)
{
    reset();
    set_op(1, "k", "a", 0, 1, LINCHECK_UNKNOWN);
    cas_op(2, "k", 3, "b", false, 7, 10, 11, LINCHECK_OK); /* FAILED 7: the key exists */
    get_op(2, "k", NULL, 12, 13, LINCHECK_OK);
    expect_illegal("nil after a failed compare found the key", "k", NULL);
    reset();
    setex_op(1, "k", "a", 0, 1, LINCHECK_UNKNOWN);
    expire_op(2, "k", true, 10, 11, LINCHECK_OK);
    ttl_op(2, "k", false, 12, 13, LINCHECK_OK);
    expect_illegal("ttl nil after an expire found the key", "k", NULL);
}
END_TEST

/* ---- illegal histories ---- */

START_TEST(test_rejects_stale_read)
{
    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    set_op(2, "x", "b", 20, 30, LINCHECK_OK);
    get_op(3, "x", "a", 40, 50, LINCHECK_OK); /* b completed before this began */
    expect_illegal("stale read", "x", "get x -> \"a\"");
}
END_TEST

START_TEST(test_rejects_stale_read_among_concurrent_ops)
{
    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    set_op(2, "x", "b", 20, 60, LINCHECK_OK);
    get_op(3, "x", "b", 25, 35, LINCHECK_OK); /* b is visible from here on */
    get_op(4, "x", "a", 40, 50, LINCHECK_OK); /* ...so a is stale, though b is still running */
    get_op(5, "x", "b", 70, 80, LINCHECK_OK);
    expect_illegal("stale read after a newer read", "x", NULL);
}
END_TEST

START_TEST(test_rejects_lost_acknowledged_write)
{
    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    get_op(2, "x", NULL, 20, 30, LINCHECK_OK);
    expect_illegal("lost write (nil read)", "x", "get x -> nil");

    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    set_op(2, "x", "b", 20, 0, LINCHECK_UNKNOWN);
    get_op(3, "x", "b", 30, 35, LINCHECK_OK); /* b took effect by 35 ... */
    set_op(4, "x", "c", 40, 50, LINCHECK_OK);
    get_op(3, "x", "b", 60, 70, LINCHECK_OK); /* ... so c was lost */
    expect_illegal("lost write (c, after an unknown set was seen)", "x", NULL);
}
END_TEST

START_TEST(test_rejects_value_never_written)
{
    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    get_op(2, "x", "zzz", 20, 30, LINCHECK_OK);
    expect_illegal("value never written", "x", "no set of this key wrote");

    reset(); /* a failed set definitely did not happen */
    set_op(1, "x", "a", 0, 10, LINCHECK_FAILED);
    get_op(2, "x", "a", 20, 30, LINCHECK_OK);
    expect_illegal("value of a failed set", "x", "only this failed set wrote it");

    reset(); /* a value written to another key */
    set_op(1, "y", "a", 0, 10, LINCHECK_OK);
    get_op(2, "x", "a", 20, 30, LINCHECK_OK);
    expect_illegal("value of another key", "x", NULL);
}
END_TEST

START_TEST(test_rejects_write_applied_twice)
{
    reset();
    set_op(1, "x", "v1", 0, 10, LINCHECK_OK);
    get_op(2, "x", "v1", 12, 14, LINCHECK_OK);
    set_op(3, "x", "v2", 20, 30, LINCHECK_OK);
    get_op(2, "x", "v2", 32, 34, LINCHECK_OK);
    get_op(2, "x", "v1", 40, 50, LINCHECK_OK); /* v1 again: applied a second time */
    expect_illegal("write applied twice", "x", "get x -> \"v1\"");

    /* The same when the first set's reply was lost (a retry applied twice): its one
     * application must precede the first read of v1. */
    reset();
    set_op(1, "x", "v1", 0, 0, LINCHECK_UNKNOWN);
    get_op(2, "x", "v1", 12, 14, LINCHECK_OK);
    set_op(3, "x", "v2", 20, 30, LINCHECK_OK);
    get_op(2, "x", "v2", 32, 34, LINCHECK_OK);
    get_op(2, "x", "v1", 40, 50, LINCHECK_OK);
    expect_illegal("unknown write applied twice", "x", NULL);
}
END_TEST

START_TEST(test_rejects_bad_delete_answers)
{
    reset();
    del_op(1, "x", true, 0, 10, LINCHECK_OK); /* OK: but the key never existed */
    expect_illegal("delete OK of an absent key", "x", "delete x -> OK");

    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    del_op(2, "x", false, 20, 30, LINCHECK_OK); /* nil: but a was there */
    expect_illegal("delete nil of a present key", "x", NULL);

    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    del_op(2, "x", true, 20, 30, LINCHECK_OK);
    get_op(3, "x", "a", 40, 50, LINCHECK_OK); /* the delete was acknowledged */
    expect_illegal("read after an acknowledged delete", "x", NULL);

    reset(); /* an unknown set cannot explain a delete that finished before it began */
    del_op(1, "x", true, 0, 10, LINCHECK_OK);
    set_op(2, "x", "a", 20, 0, LINCHECK_UNKNOWN);
    expect_illegal("delete OK before the only unknown set", "x", NULL);
}
END_TEST

START_TEST(test_rejects_read_before_unknown_write)
{
    reset();
    get_op(1, "x", "a", 0, 10, LINCHECK_OK);
    set_op(2, "x", "a", 20, 0, LINCHECK_UNKNOWN);
    expect_illegal("read from the future", "x", "before the only set that wrote it began");
}
END_TEST

START_TEST(test_rejects_flip_flop_under_concurrency)
{
    /* While set a runs, one reader sees a and a later one nil again. */
    reset();
    set_op(1, "x", "a", 0, 100, LINCHECK_OK);
    get_op(2, "x", "a", 10, 20, LINCHECK_OK);
    get_op(3, "x", NULL, 30, 40, LINCHECK_OK);
    expect_illegal("a then nil", "x", NULL);
}
END_TEST

/* ---- legal histories ---- */

START_TEST(test_accepts_concurrent_ops_in_either_order)
{
    for (int order = 0; order < 2; order++) {
        reset();
        set_op(1, "x", "a", 0, 10, LINCHECK_OK);
        set_op(2, "x", "b", 5, 15, LINCHECK_OK);
        get_op(3, "x", order == 0 ? "a" : "b", 20, 30, LINCHECK_OK);
        expect_legal(order == 0 ? "a after b" : "b after a");
    }
    reset(); /* a read overlapping a write sees either side of it */
    set_op(1, "x", "a", 0, 100, LINCHECK_OK);
    get_op(2, "x", NULL, 10, 20, LINCHECK_OK);
    get_op(3, "x", "a", 30, 40, LINCHECK_OK);
    get_op(4, "x", "a", 50, 60, LINCHECK_OK);
    expect_legal("reads during a write");

    reset(); /* two readers that overlap each other see the write in either order */
    set_op(1, "x", "a", 0, 100, LINCHECK_OK);
    get_op(2, "x", "a", 10, 50, LINCHECK_OK);
    get_op(3, "x", NULL, 20, 60, LINCHECK_OK);
    expect_legal("overlapping readers");
}
END_TEST

START_TEST(test_accepts_unknown_write_that_took_effect)
{
    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    set_op(2, "x", "b", 20, 0, LINCHECK_UNKNOWN);
    get_op(3, "x", "a", 30, 40, LINCHECK_OK);
    get_op(3, "x", "b", 5000, 5010, LINCHECK_OK); /* took effect long after its timeout */
    get_op(4, "x", "b", 6000, 6010, LINCHECK_OK);
    expect_legal("unknown set seen late");

    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    del_op(2, "x", false, 20, 0, LINCHECK_UNKNOWN);
    get_op(3, "x", "a", 30, 40, LINCHECK_OK);
    get_op(3, "x", NULL, 50, 60, LINCHECK_OK);
    del_op(4, "x", false, 70, 80, LINCHECK_OK);
    expect_legal("unknown delete seen");

    reset(); /* a delete that found the key explained by a set nobody read */
    set_op(1, "x", "a", 0, 0, LINCHECK_UNKNOWN);
    del_op(2, "x", true, 10, 20, LINCHECK_OK);
    get_op(3, "x", NULL, 30, 40, LINCHECK_OK);
    expect_legal("unknown set before a delete OK");
}
END_TEST

START_TEST(test_accepts_unknown_write_that_never_happened)
{
    reset();
    set_op(1, "x", "a", 0, 10, LINCHECK_OK);
    set_op(2, "x", "b", 20, 0, LINCHECK_UNKNOWN);
    del_op(2, "x", false, 25, 0, LINCHECK_UNKNOWN);
    get_op(3, "x", "a", 30, 40, LINCHECK_OK);
    get_op(3, "x", "a", 9000, 9010, LINCHECK_OK);
    expect_legal("unknown writes never seen");

    reset(); /* failed ops and unknown reads are dropped */
    set_op(1, "x", "a", 0, 10, LINCHECK_FAILED);
    del_op(1, "x", true, 5, 15, LINCHECK_FAILED);
    get_op(2, "x", "garbage", 20, 30, LINCHECK_FAILED);
    get_op(2, "x", "more garbage", 40, 0, LINCHECK_UNKNOWN);
    get_op(3, "x", NULL, 50, 60, LINCHECK_OK);
    expect_legal("failed ops dropped");
}
END_TEST

START_TEST(test_accepts_reads_of_nil)
{
    reset();
    get_op(1, "x", NULL, 0, 10, LINCHECK_OK);
    del_op(2, "x", false, 20, 30, LINCHECK_OK);
    set_op(3, "x", "a", 40, 50, LINCHECK_OK);
    del_op(3, "x", true, 60, 70, LINCHECK_OK);
    get_op(4, "x", NULL, 80, 90, LINCHECK_OK);
    get_op(4, "y", NULL, 80, 90, LINCHECK_OK);
    expect_legal("nil reads");
}
END_TEST

START_TEST(test_keys_are_checked_apart)
{
    reset();
    for (int k = 0; k < 5; k++) {
        char key[8], val[8];
        snprintf(key, sizeof(key), "k%d", k);
        snprintf(val, sizeof(val), "v%d", k);
        set_op(k, key, val, 0, 10, LINCHECK_OK);
        get_op(k, key, val, 20, 30, LINCHECK_OK);
    }
    set_op(9, "k3", "late", 40, 50, LINCHECK_OK);
    get_op(9, "k3", "v3", 60, 70, LINCHECK_OK);
    struct lincheck_result r;
    ck_assert_int_eq(check_hist(&r), LINCHECK_VIOLATION);
    ck_assert_int_eq(r.keys, 5);
    ck_assert_int_eq(r.keys_violating, 1);
    ck_assert_str_eq(r.key, "k3");
    lincheck_result_free(&r);
}
END_TEST

START_TEST(test_rejects_malformed_ops)
{
    reset();
    set_op(1, "x", "a", 10, 5, LINCHECK_OK); /* completes before it starts */
    struct lincheck_result r;
    ck_assert_int_eq(lincheck_check(hist, 1, NULL, &r), RK_ERR_INVAL);
    ck_assert_ptr_nonnull(r.explanation);
    lincheck_result_free(&r);
    reset();
    set_op(1, "x", "a", 0, 5, LINCHECK_OK);
    memset(hist[0].key, 'k', sizeof(hist[0].key)); /* no NUL */
    ck_assert_int_eq(lincheck_check(hist, 1, NULL, &r), RK_ERR_INVAL);
    lincheck_result_free(&r);
    ck_assert_int_eq(lincheck_check(hist, 0, NULL, &r), RK_OK); /* empty: fine */
    ck_assert_int_eq(r.verdict, LINCHECK_LINEARIZABLE);
    lincheck_result_free(&r);
}
END_TEST

/* ---- randomized histories from a sequential model ---- */

#define R_CLIENTS 8
#define R_KEYS 3
#define R_OPS 2000

/* One generated op and the point where it takes effect (in the model's order). */
struct gen {
    struct lincheck_op op;
    long long lin;      /* linearization point; -1: never takes effect */
};

static struct gen gens[R_OPS];

static int by_lin(const void *a, const void *b)
{
    const struct gen *x = a, *y = b;
    return x->lin < y->lin ? -1 : x->lin > y->lin;
}

/* Times for one client's next op: invoke after its previous completion, a point inside
 * the window, and a completion; each up to a few "us" apart so ops overlap a lot. */
static void gen_times(unsigned *seed, long long *clock, struct gen *g)
{
    long long inv = *clock + rand_r(seed) % 40;
    long long lin = inv + 1 + rand_r(seed) % 60;
    long long cmp = lin + 1 + rand_r(seed) % 60;
    g->op.invoke_ns = inv;
    g->op.complete_ns = cmp;
    g->lin = lin;
    *clock = cmp + 1;
}

/* Kind, key, value and outcome (but not the reply) of each op. */
static void gen_ops(unsigned seed)
{
    long long clock[R_CLIENTS] = {0};
    int seq[R_CLIENTS] = {0};
    for (int i = 0; i < R_OPS; i++) {
        struct gen *g = &gens[i];
        memset(g, 0, sizeof(*g));
        int c = rand_r(&seed) % R_CLIENTS;
        g->op.client = c;
        snprintf(g->op.key, sizeof(g->op.key), "k%d", rand_r(&seed) % R_KEYS);
        gen_times(&seed, &clock[c], g);
        int dice = rand_r(&seed) % 100;
        g->op.kind = dice < 40 ? LINCHECK_SET : dice < 85 ? LINCHECK_GET : LINCHECK_DELETE;
        if (g->op.kind == LINCHECK_SET)
            snprintf(g->op.value, sizeof(g->op.value), "c%d-%d", c, seq[c]++);
        int o = rand_r(&seed) % 100;
        g->op.outcome = o < 85 ? LINCHECK_OK : o < 95 ? LINCHECK_UNKNOWN : LINCHECK_FAILED;
        /* failed ops never take effect; half of the unknown ones do not either, and the
         * others may take effect long after their client moved on */
        if (g->op.outcome == LINCHECK_FAILED ||
            (g->op.outcome == LINCHECK_UNKNOWN && rand_r(&seed) % 2 == 0))
            g->lin = -1;
        else if (g->op.outcome == LINCHECK_UNKNOWN)
            g->lin += rand_r(&seed) % 2000;
    }
}

/* Applies the ops in linearization order to a map and fills in each reply. */
static void run_model(void)
{
    char state[R_KEYS][LINCHECK_VAL_MAX];
    bool present[R_KEYS] = {false};
    qsort(gens, R_OPS, sizeof(gens[0]), by_lin);
    for (int i = 0; i < R_OPS; i++) {
        struct lincheck_op *op = &gens[i].op;
        if (gens[i].lin < 0)
            continue;
        int k = op->key[1] - '0';
        if (op->kind == LINCHECK_SET) {
            snprintf(state[k], sizeof(state[k]), "%s", op->value);
            present[k] = true;
        } else if (op->kind == LINCHECK_GET) {
            op->found = present[k];
            snprintf(op->value, sizeof(op->value), "%s", present[k] ? state[k] : "");
        } else {
            op->found = present[k];
            present[k] = false;
        }
    }
    for (int i = 0; i < R_OPS; i++)
        hist[i] = gens[i].op;
    n_hist = R_OPS;
}

/* Makes one ok get read a value that was certainly overwritten before it began: a set
 * that completed before some other acknowledged write of the key, which itself completed
 * before the get was invoked. Returns false if the history has no such pair. */
static bool corrupt_one_read(unsigned seed)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        struct lincheck_op *r = &hist[rand_r(&seed) % n_hist];
        if (r->kind != LINCHECK_GET || r->outcome != LINCHECK_OK)
            continue;
        for (int i = 0; i < n_hist; i++) {
            const struct lincheck_op *w = &hist[i];
            if (w->kind != LINCHECK_SET || w->outcome != LINCHECK_OK ||
                strcmp(w->key, r->key) != 0 || (r->found && strcmp(w->value, r->value) == 0))
                continue;
            for (int j = 0; j < n_hist; j++) {
                const struct lincheck_op *w2 = &hist[j];
                if (w2->kind != LINCHECK_GET && w2->outcome == LINCHECK_OK &&
                    strcmp(w2->key, r->key) == 0 && w2->invoke_ns > w->complete_ns &&
                    w2->complete_ns < r->invoke_ns) {
                    char stale[LINCHECK_VAL_MAX];
                    memcpy(stale, w->value, sizeof(stale));
                    r->found = true;
                    memcpy(r->value, stale, sizeof(stale));
                    return true;
                }
            }
        }
    }
    return false;
}

START_TEST(test_random_legal_histories_accepted)
{
    for (unsigned seed = 1; seed <= 20; seed++) {
        reset();
        gen_ops(seed * 7919u);
        run_model();
        struct lincheck_result r;
        enum lincheck_verdict v = check_hist(&r);
        ck_assert_msg(v == LINCHECK_LINEARIZABLE, "seed %u: %s\n%s", seed,
                      lincheck_verdict_name(v), r.explanation ? r.explanation : "");
        ck_assert_int_eq(r.keys, R_KEYS);
        ck_assert_int_gt((int)r.ops_open, 0);
        ck_assert_int_gt((int)r.ops_dropped, 0);
        lincheck_result_free(&r);
    }
}
END_TEST

START_TEST(test_random_history_with_a_corrupted_read_rejected)
{
    for (unsigned seed = 1; seed <= 20; seed++) {
        reset();
        gen_ops(seed * 7919u);
        run_model();
        ck_assert_msg(corrupt_one_read(seed), "seed %u: nothing to corrupt", seed);
        for (int search_only = 0; search_only < 2; search_only++) {
            struct lincheck_result r;
            enum lincheck_verdict v = check_with(&r, search_only);
            ck_assert_msg(v == LINCHECK_VIOLATION, "seed %u%s: %s", seed,
                          search_only ? " (search only)" : "", lincheck_verdict_name(v));
            ck_assert_int_eq(r.keys_violating, 1);
            lincheck_result_free(&r);
        }
    }
}
END_TEST

/* ---- small random histories against a brute-force search ---- */

#define B_OPS 7

/* True if ops[0..n) minus those in `placed` can follow state: an op may go next if no
 * op still to place completed before it began; an unknown write may also never happen;
 * every ok op must be placed. */
static bool brute(const struct lincheck_op *ops, int n, unsigned placed, bool present,
                  const char *value)
{
    bool all_done = true;
    for (int i = 0; i < n; i++)
        if (!(placed & (1u << i)) && ops[i].outcome == LINCHECK_OK)
            all_done = false;
    if (all_done)
        return true;
    for (int i = 0; i < n; i++) {
        const struct lincheck_op *x = &ops[i];
        if (placed & (1u << i))
            continue;
        bool blocked = false;
        for (int j = 0; j < n && !blocked; j++)
            blocked = !(placed & (1u << j)) && ops[j].outcome == LINCHECK_OK &&
                      ops[j].complete_ns < x->invoke_ns;
        if (blocked)
            continue;
        bool ok = x->outcome != LINCHECK_OK ||
                  (x->kind == LINCHECK_SET) ||
                  (x->kind == LINCHECK_GET && x->found == present &&
                   (!present || strcmp(x->value, value) == 0)) ||
                  ((x->kind == LINCHECK_DELETE || x->kind == LINCHECK_EXPIRE ||
                    x->kind == LINCHECK_TTL) && x->found == present);
        if (!ok)
            continue;
        bool now_present = x->kind == LINCHECK_SET ? true
                           : x->kind == LINCHECK_DELETE ? false : present;
        const char *now_value = x->kind == LINCHECK_SET ? x->value : value;
        if (brute(ops, n, placed | (1u << i), now_present, now_value))
            return true;
    }
    return false;
}

/* Random ops on one key with values from a pool of three (so values repeat), random
 * overlapping windows and random outcomes; kinds: get, set, delete, and with `touch`
 * also expire and ttl (with setex for half the sets). */
static int gen_small(unsigned *seed, struct lincheck_op *ops, bool touch)
{
    static const char *const pool[] = {"a", "b", "c"};
    int n = 1 + rand_r(seed) % B_OPS;
    for (int i = 0; i < n; i++) {
        struct lincheck_op *op = &ops[i];
        memset(op, 0, sizeof(*op));
        op->client = i;
        snprintf(op->key, sizeof(op->key), "x");
        op->kind = (enum lincheck_kind)(rand_r(seed) % 3);
        if (touch && rand_r(seed) % 5 < 2)
            op->kind = rand_r(seed) % 2 == 0 ? LINCHECK_EXPIRE : LINCHECK_TTL;
        if (touch && (op->kind == LINCHECK_EXPIRE ||
                      (op->kind == LINCHECK_SET && rand_r(seed) % 2 == 0)))
            op->ttl_ms = LONG_TTL_MS;
        int o = rand_r(seed) % 10;
        op->outcome = o < 7 ? LINCHECK_OK : o < 9 ? LINCHECK_UNKNOWN : LINCHECK_FAILED;
        op->found = rand_r(seed) % 3 != 0;
        if (op->kind == LINCHECK_SET || op->found)
            snprintf(op->value, sizeof(op->value), "%s", pool[rand_r(seed) % 3]);
        op->invoke_ns = rand_r(seed) % 20;
        op->complete_ns = op->invoke_ns + rand_r(seed) % 8;
    }
    return n;
}

/* A brute-force verdict with the failed ops and unknown gets left out. */
static bool brute_verdict(const struct lincheck_op *ops, int n)
{
    struct lincheck_op kept[B_OPS];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (ops[i].outcome != LINCHECK_FAILED &&
            !(ops[i].kind == LINCHECK_GET && ops[i].outcome != LINCHECK_OK))
            kept[k++] = ops[i];
    return brute(kept, k, 0, false, "");
}

static void match_brute_force(bool touch)
{
    unsigned seed = touch ? 54321 : 12345;
    int legal = 0, illegal = 0;
    for (int round = 0; round < 20000; round++) {
        struct lincheck_op ops[B_OPS];
        int n = gen_small(&seed, ops, touch);
        bool want = brute_verdict(ops, n);
        for (int search_only = 0; search_only < 2; search_only++) {
            struct lincheck_options o = {.search_only = search_only};
            struct lincheck_result r;
            ck_assert_int_eq(lincheck_check(ops, (size_t)n, &o, &r), RK_OK);
            if ((r.verdict == LINCHECK_LINEARIZABLE) != want) {
                for (int i = 0; i < n; i++) {
                    char line[256];
                    lincheck_format_op(&ops[i], 0, line, sizeof(line));
                    fprintf(stderr, "  %s\n", line);
                }
            }
            ck_assert_msg((r.verdict == LINCHECK_LINEARIZABLE) == want,
                          "round %d%s: brute force says %s, the checker %s", round,
                          search_only ? " (search only)" : "", want ? "legal" : "illegal",
                          lincheck_verdict_name(r.verdict));
            lincheck_result_free(&r);
        }
        if (want)
            legal++;
        else
            illegal++;
    }
    ck_assert_int_gt(legal, 1000); /* both kinds were tried often */
    ck_assert_int_gt(illegal, 1000);
}

START_TEST(test_small_histories_match_brute_force)
{
    match_brute_force(false);
}
END_TEST

/* The same with expire and ttl (existence checks that change nothing) and setex. */
START_TEST(test_small_histories_with_expire_and_ttl_match_brute_force)
{
    match_brute_force(true);
}
END_TEST

START_TEST(test_budget_gives_inconclusive)
{
    reset();
    gen_ops(4242u);
    run_model();
    struct lincheck_options o = {.max_steps_per_key = 10};
    struct lincheck_result r;
    ck_assert_int_eq(lincheck_check(hist, (size_t)n_hist, &o, &r), RK_OK);
    ck_assert_int_eq(r.verdict, LINCHECK_INCONCLUSIVE);
    ck_assert_int_eq(r.keys_inconclusive, R_KEYS);
    ck_assert_ptr_nonnull(r.explanation);
    ck_assert_msg(strstr(r.explanation, "inconclusive") != NULL, "%s", r.explanation);
    lincheck_result_free(&r);
}
END_TEST

static Suite *lincheck_suite(void)
{
    Suite *s = suite_create("lincheck");
    TCase *bad = tcase_create("illegal");
    tcase_add_test(bad, test_rejects_stale_read);
    tcase_add_test(bad, test_rejects_stale_read_among_concurrent_ops);
    tcase_add_test(bad, test_rejects_lost_acknowledged_write);
    tcase_add_test(bad, test_rejects_value_never_written);
    tcase_add_test(bad, test_rejects_write_applied_twice);
    tcase_add_test(bad, test_rejects_bad_delete_answers);
    tcase_add_test(bad, test_rejects_read_before_unknown_write);
    tcase_add_test(bad, test_rejects_flip_flop_under_concurrency);
    tcase_add_test(bad, test_rejects_lost_update);
    tcase_add_test(bad, test_rejects_stale_failed_compare);
    tcase_add_test(bad, test_rejects_cad_of_replaced_value);
    tcase_add_test(bad, test_rejects_revision_of_two_values);
    tcase_add_test(bad, test_rejects_expire_of_absent_key);
    tcase_add_test(bad, test_rejects_ttl_of_wrong_existence);
    tcase_add_test(bad, test_rejects_ttl_shorter_than_history);
    tcase_add_test(bad, test_rejects_nil_after_unread_set_made_key_exist);
    suite_add_tcase(s, bad);
    TCase *good = tcase_create("legal");
    tcase_add_test(good, test_accepts_concurrent_ops_in_either_order);
    tcase_add_test(good, test_accepts_unknown_write_that_took_effect);
    tcase_add_test(good, test_accepts_unknown_write_that_never_happened);
    tcase_add_test(good, test_accepts_reads_of_nil);
    tcase_add_test(good, test_keys_are_checked_apart);
    tcase_add_test(good, test_rejects_malformed_ops);
    tcase_add_test(good, test_accepts_cas_chain);
    tcase_add_test(good, test_accepts_unknown_cas);
    tcase_add_test(good, test_accepts_expire_and_ttl);
    suite_add_tcase(s, good);
    TCase *rnd = tcase_create("random");
    tcase_set_timeout(rnd, 60);
    tcase_add_test(rnd, test_random_legal_histories_accepted);
    tcase_add_test(rnd, test_random_history_with_a_corrupted_read_rejected);
    tcase_add_test(rnd, test_budget_gives_inconclusive);
    tcase_add_test(rnd, test_small_histories_match_brute_force);
    tcase_add_test(rnd, test_small_histories_with_expire_and_ttl_match_brute_force);
    suite_add_tcase(s, rnd);
    return s;
}

RK_CHECK_MAIN(lincheck_suite)
