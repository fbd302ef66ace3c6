/* tests/unit_kv_index.c - Check tests for server/kv/kv_index (the ordered B-tree index):
 * the empty index, one item, duplicates, insertion in ascending, descending and random
 * order, removals that borrow and merge down to an empty tree, seeks with and without
 * `after`, binary and empty keys and keys that are prefixes of each other, a prefix scan,
 * and a long random run against a sorted array. */
#include <check.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../server/kv/kv_index.h"
#include "check_main.h"

/* ck_assert for the hot loops: Check records every assertion that passes (a write(2)
 * each, millions in the random run), so test first and call Check only on a failure. */
#define expect(expr)                                 \
    do {                                             \
        if (!(expr))                                 \
            ck_abort_msg("failed: %s", #expr);       \
    } while (0)

/* ---- items and helpers ---- */

struct item {
    uint32_t key_len;
    char key[16];
};

static void item_key(const void *item, const char **key, uint32_t *key_len)
{
    const struct item *it = item;
    *key = it->key;
    *key_len = it->key_len;
}

static struct item make_item(const char *key, uint32_t key_len)
{
    struct item it = { .key_len = key_len };
    ck_assert_uint_le(key_len, sizeof(it.key));
    memcpy(it.key, key, key_len);
    return it;
}

/* Items "k00000", "k00001", ... in key order. */
static struct item *numbered_items(int n)
{
    struct item *items = calloc((size_t)n, sizeof(*items));
    ck_assert_ptr_nonnull(items);
    for (int i = 0; i < n; i++)
        items[i].key_len = (uint32_t)snprintf(items[i].key, sizeof(items[i].key), "k%05d", i);
    return items;
}

static int compare_bytes(const char *a, uint32_t a_len, const char *b, uint32_t b_len)
{
    uint32_t common = a_len < b_len ? a_len : b_len;
    int c = common > 0 ? memcmp(a, b, common) : 0;
    if (c != 0)
        return c;
    return a_len < b_len ? -1 : a_len > b_len;
}

static int compare_items(const struct item *a, const struct item *b)
{
    return compare_bytes(a->key, a->key_len, b->key, b->key_len);
}

/* A small local PRNG (xorshift64*), so runs do not depend on libc's rand(). */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ULL;
}

static void shuffle(int *order, int n, uint64_t *state)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(next_random(state) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Nodes hold 10 to 30 items (the root fewer) and a node is at most 496 bytes, so a tree
 * of n items occupies at most this (and at least 248 bytes when not empty). */
static size_t max_bytes_for(size_t n)
{
    return n == 0 ? 0 : 496 * (n / 10 + 1);
}

static void assert_size_bounded(const struct kv_index *ix)
{
    size_t n = kv_index_count(ix);
    ck_assert_uint_le(kv_index_bytes(ix), max_bytes_for(n));
    if (n > 0)
        ck_assert_uint_ge(kv_index_bytes(ix), 248);
    else
        ck_assert_uint_eq(kv_index_bytes(ix), 0);
}

/* Walks the whole index: it must give exactly want[0..n) in order. */
static void assert_walk(const struct kv_index *ix, struct item **want, size_t n)
{
    struct kv_index_iter it;
    kv_index_seek(ix, "", 0, false, &it);
    for (size_t i = 0; i < n; i++)
        expect(kv_index_next(&it) == want[i]);
    ck_assert_ptr_null(kv_index_next(&it));
    ck_assert_ptr_null(kv_index_next(&it)); /* and stays at the end */
    ck_assert_uint_eq(kv_index_count(ix), n);
}

/* The same for items[0..n) of an array in key order. */
static void assert_walk_array(const struct kv_index *ix, struct item *items, size_t n)
{
    struct kv_index_iter it;
    kv_index_seek(ix, "", 0, false, &it);
    for (size_t i = 0; i < n; i++)
        expect(kv_index_next(&it) == &items[i]);
    ck_assert_ptr_null(kv_index_next(&it));
    ck_assert_uint_eq(kv_index_count(ix), n);
}

static const struct item *seek_first(const struct kv_index *ix, const char *key,
                                     uint32_t key_len, bool after)
{
    struct kv_index_iter it;
    kv_index_seek(ix, key, key_len, after, &it);
    return kv_index_next(&it);
}

static struct kv_index *new_index(void)
{
    struct kv_index *ix = kv_index_new(item_key);
    ck_assert_ptr_nonnull(ix);
    return ix;
}

/* ---- tests ---- */

START_TEST(test_empty_index)
{
    struct kv_index *ix = new_index();
    ck_assert_uint_eq(kv_index_count(ix), 0);
    ck_assert_uint_eq(kv_index_bytes(ix), 0);
    ck_assert_ptr_null(kv_index_find(ix, "a", 1));
    ck_assert_ptr_null(kv_index_find(ix, "", 0));
    ck_assert(!kv_index_remove(ix, "a", 1));
    ck_assert(!kv_index_remove(ix, "", 0));
    ck_assert_ptr_null(seek_first(ix, "", 0, false));
    ck_assert_ptr_null(seek_first(ix, "", 0, true));
    ck_assert_ptr_null(seek_first(ix, "zz", 2, false));
    kv_index_free(ix);
    kv_index_free(NULL);
}
END_TEST

START_TEST(test_one_item)
{
    struct kv_index *ix = new_index();
    struct item m = make_item("m", 1);
    ck_assert_int_eq(kv_index_insert(ix, &m), RK_OK);
    ck_assert_uint_eq(kv_index_count(ix), 1);
    ck_assert_uint_gt(kv_index_bytes(ix), 0);
    ck_assert_ptr_eq(kv_index_find(ix, "m", 1), &m);
    ck_assert_ptr_null(kv_index_find(ix, "m\0", 2));
    ck_assert_ptr_null(kv_index_find(ix, "", 0));
    ck_assert_ptr_eq(seek_first(ix, "", 0, false), &m);
    ck_assert_ptr_eq(seek_first(ix, "a", 1, true), &m);
    ck_assert_ptr_eq(seek_first(ix, "m", 1, false), &m);
    ck_assert_ptr_null(seek_first(ix, "m", 1, true));
    ck_assert_ptr_null(seek_first(ix, "n", 1, false));
    ck_assert(!kv_index_remove(ix, "n", 1));
    ck_assert(kv_index_remove(ix, "m", 1));
    ck_assert(!kv_index_remove(ix, "m", 1));
    ck_assert_uint_eq(kv_index_count(ix), 0);
    ck_assert_uint_eq(kv_index_bytes(ix), 0);
    ck_assert_ptr_null(seek_first(ix, "", 0, false));
    ck_assert_int_eq(kv_index_insert(ix, &m), RK_OK); /* usable again once empty */
    ck_assert_ptr_eq(kv_index_find(ix, "m", 1), &m);
    kv_index_free(ix);
}
END_TEST

START_TEST(test_duplicate_is_refused)
{
    enum { N = 1000 };
    struct item *items = numbered_items(N);
    struct kv_index *ix = new_index();
    for (int i = 0; i < N; i++)
        expect(kv_index_insert(ix, &items[i]) == RK_OK);
    size_t bytes = kv_index_bytes(ix);
    for (int i = 0; i < N; i += 7) {
        struct item twin = items[i]; /* another item, an equal key */
        ck_assert_int_eq(kv_index_insert(ix, &twin), RK_ERR_EXISTS);
        ck_assert_int_eq(kv_index_insert(ix, &items[i]), RK_ERR_EXISTS);
        ck_assert_ptr_eq(kv_index_find(ix, items[i].key, items[i].key_len), &items[i]);
    }
    ck_assert_uint_eq(kv_index_count(ix), N);
    ck_assert_uint_eq(kv_index_bytes(ix), bytes);
    assert_walk_array(ix, items, N);
    kv_index_free(ix);
    free(items);
}
END_TEST

/* Inserts items[0..n) (in key order) in the order given, checking as it goes and the
 * memory it takes. */
static void check_insert_order(const int *order, int n)
{
    struct item *items = numbered_items(n);
    struct kv_index *ix = new_index();
    for (int i = 0; i < n; i++) {
        expect(kv_index_insert(ix, &items[order[i]]) == RK_OK);
        expect(kv_index_count(ix) == (size_t)i + 1);
        if (i % 997 == 0)
            assert_size_bounded(ix);
    }
    assert_size_bounded(ix);
    /* about 13 bytes a key in any of these orders (in order, splits leave nodes 2/3 full) */
    ck_assert_uint_le(kv_index_bytes(ix), 14 * (size_t)n);
    assert_walk_array(ix, items, (size_t)n);
    for (int i = 0; i < n; i++)
        expect(kv_index_find(ix, items[i].key, items[i].key_len) == &items[i]);
    ck_assert_ptr_null(kv_index_find(ix, "k", 1));
    ck_assert_ptr_null(kv_index_find(ix, "k99999", 6));
    kv_index_free(ix);
    free(items);
}

enum { ORDER_N = 20000 };

START_TEST(test_insert_ascending)
{
    static int order[ORDER_N];
    for (int i = 0; i < ORDER_N; i++)
        order[i] = i;
    check_insert_order(order, ORDER_N);
}
END_TEST

START_TEST(test_insert_descending)
{
    static int order[ORDER_N];
    for (int i = 0; i < ORDER_N; i++)
        order[i] = ORDER_N - 1 - i;
    check_insert_order(order, ORDER_N);
}
END_TEST

START_TEST(test_insert_random)
{
    static int order[ORDER_N];
    uint64_t state = 0x1234567;
    for (int i = 0; i < ORDER_N; i++)
        order[i] = i;
    shuffle(order, ORDER_N, &state);
    check_insert_order(order, ORDER_N);
}
END_TEST

/* The items of items[0..n) still present, in key order, into want; their number. */
static size_t present_items(struct item *items, const bool *present, int n, struct item **want)
{
    size_t k = 0;
    for (int i = 0; i < n; i++)
        if (present[i])
            want[k++] = &items[i];
    return k;
}

/* Removes in four passes (every third from the front, every other from the back, a
 * shuffled half of the rest, then the rest), so that leaves and inner nodes run short on
 * both sides and borrow from and merge with left and right siblings; down to empty. */
START_TEST(test_remove_to_empty)
{
    enum { N = 12000 };
    struct item *items = numbered_items(N);
    bool *present = calloc(N, sizeof(*present));
    struct item **want = calloc(N, sizeof(*want));
    int *order = calloc(N, sizeof(*order));
    ck_assert(present != NULL && want != NULL && order != NULL);
    struct kv_index *ix = new_index();
    for (int i = 0; i < N; i++) {
        expect(kv_index_insert(ix, &items[i]) == RK_OK);
        present[i] = true;
    }
    size_t full_bytes = kv_index_bytes(ix);

    int n_order = 0;
    for (int i = 0; i < N; i += 3)
        order[n_order++] = i;
    for (int i = N - 1; i >= 0; i -= 2)
        if (i % 3 != 0)
            order[n_order++] = i;
    int first_rest = n_order;
    for (int i = 0; i < N; i++)
        if (i % 3 != 0 && (N - 1 - i) % 2 != 0)
            order[n_order++] = i;
    ck_assert_int_eq(n_order, N);
    uint64_t state = 42;
    shuffle(&order[first_rest], N - first_rest, &state);

    for (int k = 0; k < N; k++) {
        int i = order[k];
        expect(kv_index_remove(ix, items[i].key, items[i].key_len));
        expect(!kv_index_remove(ix, items[i].key, items[i].key_len));
        present[i] = false;
        expect(kv_index_count(ix) == (size_t)(N - k - 1));
        if (k % 1009 == 0 || N - k < 40) {
            assert_size_bounded(ix);
            size_t n = present_items(items, present, N, want);
            assert_walk(ix, want, n);
        }
    }
    ck_assert_uint_eq(kv_index_count(ix), 0);
    ck_assert_uint_eq(kv_index_bytes(ix), 0);
    ck_assert_uint_gt(full_bytes, 0);
    ck_assert_ptr_null(seek_first(ix, "", 0, false));
    kv_index_free(ix);
    free(order);
    free(want);
    free(present);
    free(items);
}
END_TEST

/* Memory follows the count down: a tree cut to a tenth shrinks with it. */
START_TEST(test_memory_follows_count)
{
    enum { N = 30000 };
    struct item *items = numbered_items(N);
    struct kv_index *ix = new_index();
    for (int i = 0; i < N; i++)
        expect(kv_index_insert(ix, &items[i]) == RK_OK);
    size_t full_bytes = kv_index_bytes(ix);
    for (int i = 0; i < N; i++)
        if (i % 10 != 0)
            expect(kv_index_remove(ix, items[i].key, items[i].key_len));
    ck_assert_uint_eq(kv_index_count(ix), N / 10);
    assert_size_bounded(ix);
    ck_assert_uint_lt(kv_index_bytes(ix), full_bytes / 4);
    kv_index_free(ix);
    free(items);
}
END_TEST

START_TEST(test_seek)
{
    struct item b = make_item("b", 1), d = make_item("d", 1), f = make_item("f", 1);
    struct kv_index *ix = new_index();
    ck_assert_int_eq(kv_index_insert(ix, &d), RK_OK);
    ck_assert_int_eq(kv_index_insert(ix, &f), RK_OK);
    ck_assert_int_eq(kv_index_insert(ix, &b), RK_OK);
    /* present */
    ck_assert_ptr_eq(seek_first(ix, "d", 1, false), &d);
    ck_assert_ptr_eq(seek_first(ix, "d", 1, true), &f);
    /* absent, between two keys */
    ck_assert_ptr_eq(seek_first(ix, "c", 1, false), &d);
    ck_assert_ptr_eq(seek_first(ix, "c", 1, true), &d);
    ck_assert_ptr_eq(seek_first(ix, "dd", 2, false), &f);
    /* before the first */
    ck_assert_ptr_eq(seek_first(ix, "a", 1, false), &b);
    ck_assert_ptr_eq(seek_first(ix, "a", 1, true), &b);
    ck_assert_ptr_eq(seek_first(ix, "", 0, true), &b);
    /* at and after the last */
    ck_assert_ptr_eq(seek_first(ix, "f", 1, false), &f);
    ck_assert_ptr_null(seek_first(ix, "f", 1, true));
    ck_assert_ptr_null(seek_first(ix, "g", 1, false));
    ck_assert_ptr_null(seek_first(ix, "\xff", 1, true));

    struct kv_index_iter it; /* a page continues in order */
    kv_index_seek(ix, "b", 1, true, &it);
    ck_assert_ptr_eq(kv_index_next(&it), &d);
    ck_assert_ptr_eq(kv_index_next(&it), &f);
    ck_assert_ptr_null(kv_index_next(&it));
    kv_index_free(ix);
}
END_TEST

/* Seeks in a deep tree: to every key and between keys, the next items in order. */
START_TEST(test_seek_many)
{
    enum { N = 5000 };
    struct item *items = numbered_items(N);
    struct kv_index *ix = new_index();
    for (int i = N - 1; i >= 0; i--)
        expect(kv_index_insert(ix, &items[i]) == RK_OK);
    for (int i = 0; i < N; i++) {
        struct kv_index_iter it;
        kv_index_seek(ix, items[i].key, items[i].key_len, i % 2 == 1, &it);
        for (int j = i + i % 2; j < i + 40 && j < N; j++)
            expect(kv_index_next(&it) == &items[j]);
        char between[16];
        memcpy(between, items[i].key, items[i].key_len);
        between[items[i].key_len] = '\0'; /* "k00012\0" sorts after "k00012" */
        expect(seek_first(ix, between, items[i].key_len + 1, false) ==
               (i + 1 < N ? &items[i + 1] : NULL));
    }
    kv_index_free(ix);
    free(items);
}
END_TEST

START_TEST(test_binary_and_empty_keys)
{
    /* In byte order: the empty key first, a key before its extensions, 0x00 lowest and
     * 0xff highest of the bytes, compared unsigned ('b' < 0x7f < 0x80). */
    struct item sorted[] = {
        make_item("", 0),         make_item("\0", 1),     make_item("\0\0", 2),
        make_item("\0\xff", 2),   make_item("\x01", 1),   make_item("a", 1),
        make_item("a\0", 2),      make_item("a\0\0", 3),  make_item("a\0b", 3),
        make_item("ab", 2),       make_item("ab\xff", 3), make_item("a\x7f", 2),
        make_item("a\x80", 2),    make_item("b", 1),      make_item("\xfe", 1),
        make_item("\xff", 1),     make_item("\xff\0", 2), make_item("\xff\xff", 2),
        make_item("\xff\xff\xff", 3),
    };
    enum { N = sizeof(sorted) / sizeof(sorted[0]) };
    struct kv_index *ix = new_index();
    static const int order[N] = { 7, 0, 18, 3, 12, 5, 15, 1, 9, 17, 2, 11, 6, 14, 4, 16,
                                  8, 13, 10 };
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(kv_index_insert(ix, &sorted[order[i]]), RK_OK);
    for (int i = 0; i + 1 < N; i++)
        ck_assert_int_lt(compare_items(&sorted[i], &sorted[i + 1]), 0);
    assert_walk_array(ix, sorted, N);
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_eq(kv_index_find(ix, sorted[i].key, sorted[i].key_len), &sorted[i]);
        ck_assert_ptr_eq(seek_first(ix, sorted[i].key, sorted[i].key_len, false), &sorted[i]);
        ck_assert_ptr_eq(seek_first(ix, sorted[i].key, sorted[i].key_len, true),
                         i + 1 < N ? &sorted[i + 1] : NULL);
    }
    ck_assert_ptr_eq(seek_first(ix, "", 0, true), &sorted[1]);
    ck_assert_ptr_null(kv_index_find(ix, "a\0b\0", 4));
    ck_assert_ptr_eq(seek_first(ix, "a\0a", 3, false), &sorted[8]); /* "a\0b" */

    ck_assert(kv_index_remove(ix, "", 0));
    ck_assert_ptr_null(kv_index_find(ix, "", 0));
    ck_assert_ptr_eq(seek_first(ix, "", 0, false), &sorted[1]);
    ck_assert(kv_index_remove(ix, "a\0", 2));
    ck_assert_ptr_eq(kv_index_find(ix, "a", 1), &sorted[5]);
    ck_assert_ptr_eq(kv_index_find(ix, "a\0\0", 3), &sorted[7]);
    ck_assert_ptr_eq(seek_first(ix, "a", 1, true), &sorted[7]);
    ck_assert_uint_eq(kv_index_count(ix), N - 2);
    kv_index_free(ix);
}
END_TEST

static bool has_prefix(const struct item *it, const char *prefix, uint32_t prefix_len)
{
    return it->key_len >= prefix_len && memcmp(it->key, prefix, prefix_len) == 0;
}

/* The pattern of a `scan PREFIX LIMIT AFTER` command: seek to the prefix (or just after
 * the last key of the previous page), then take items while they start with the prefix. */
static int scan_page(const struct kv_index *ix, const char *prefix, uint32_t prefix_len,
                     const struct item *after, int limit, const struct item **page)
{
    struct kv_index_iter it;
    if (after != NULL)
        kv_index_seek(ix, after->key, after->key_len, true, &it);
    else
        kv_index_seek(ix, prefix, prefix_len, false, &it);
    int n = 0;
    const struct item *item;
    while (n < limit && (item = kv_index_next(&it)) != NULL &&
           has_prefix(item, prefix, prefix_len))
        page[n++] = item;
    return n;
}

START_TEST(test_prefix_scan)
{
    enum { N = 3000, LIMIT = 7 };
    struct item *items = calloc(N, sizeof(*items));
    ck_assert_ptr_nonnull(items);
    static const char *const prefixes[] = { "user", "user:", "user;", "usr:", "us" };
    struct kv_index *ix = new_index();
    for (int i = 0; i < N; i++) {
        items[i].key_len = (uint32_t)snprintf(items[i].key, sizeof(items[i].key), "%s%d",
                                              prefixes[i % 5], i);
        ck_assert_int_eq(kv_index_insert(ix, &items[i]), RK_OK);
    }
    const char *prefix = "user:1";
    uint32_t prefix_len = 6;
    int want = 0;
    for (int i = 0; i < N; i++)
        want += has_prefix(&items[i], prefix, prefix_len);
    ck_assert_int_gt(want, LIMIT * 3);

    const struct item *page[LIMIT], *last = NULL;
    int got = 0, n;
    while ((n = scan_page(ix, prefix, prefix_len, last, LIMIT, page)) > 0) {
        for (int i = 0; i < n; i++) {
            ck_assert(has_prefix(page[i], prefix, prefix_len));
            if (last != NULL)
                ck_assert_int_lt(compare_items(last, page[i]), 0);
            last = page[i];
        }
        got += n;
    }
    ck_assert_int_eq(got, want);
    ck_assert_int_eq(scan_page(ix, "user:x", 6, NULL, LIMIT, page), 0);
    ck_assert_int_eq(scan_page(ix, "", 0, NULL, LIMIT, page), LIMIT); /* all keys */
    kv_index_free(ix);
    free(items);
}
END_TEST

/* ---- out of memory ---- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1 /* it reserves terabytes of address space for its shadow */
#else
#define UNDER_SANITIZER 0
#endif

/* The process's address space now, in bytes (Linux: /proc/self/statm). */
static rlim_t address_space_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    unsigned long pages = 0;
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    return (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
}

static void set_address_space_limit(rlim_t soft)
{
    struct rlimit limit;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &limit), 0);
    limit.rlim_cur = soft;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &limit), 0);
}

/* Takes every byte the heap has free, in blocks chained through their first bytes, so
 * that the next allocation needs more address space. Returns the chain. */
static void *fill_heap(void)
{
    void *chain = NULL;
    set_address_space_limit(address_space_bytes());
    for (int i = 0; i < (1 << 20); i++) {
        void **block = malloc(64);
        if (block == NULL)
            break;
        *block = chain;
        chain = block;
    }
    return chain;
}

static void free_chain(void *chain)
{
    while (chain != NULL) {
        void *next = *(void **)chain;
        free(chain);
        chain = next;
    }
}

/* Each insert runs with the address space capped at its current size, on a heap kept
 * full and not padded, so that now and then a node cannot be had, at a leaf's split or
 * further up: the insert says RK_ERR_NOMEM and the index is as it was. (Skipped under
 * the sanitizers.) */
START_TEST(test_out_of_memory_leaves_index_unchanged)
{
    if (UNDER_SANITIZER)
        return;
    enum { N = 6000 };
    struct item *items = numbered_items(N);
    struct kv_index *ix = new_index();
    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
    ck_assert_int_eq(mallopt(M_TOP_PAD, 0), 1);
    void *filler = fill_heap();
    set_address_space_limit(saved.rlim_cur);
    int failures = 0;
    for (int i = 0; i < N; i++) {
        size_t count = kv_index_count(ix), bytes = kv_index_bytes(ix);
        set_address_space_limit(address_space_bytes());
        int rc = kv_index_insert(ix, &items[i]);
        set_address_space_limit(saved.rlim_cur);
        if (rc == RK_ERR_NOMEM) {
            failures++;
            expect(kv_index_count(ix) == count);
            expect(kv_index_bytes(ix) == bytes);
            expect(kv_index_find(ix, items[i].key, items[i].key_len) == NULL);
            rc = kv_index_insert(ix, &items[i]); /* and with memory it goes in */
        }
        expect(rc == RK_OK);
    }
    free_chain(filler);
    ck_assert_int_gt(failures, 10);
    assert_walk_array(ix, items, N);
    kv_index_free(ix);
    free(items);
}
END_TEST

/* ---- a random run against a sorted array ---- */

struct reference {
    struct item **items; /* in key order */
    size_t count;
};

/* The position of key in ref, or where it would go; *found when there. */
static size_t reference_search(const struct reference *ref, const char *key,
                               uint32_t key_len, bool *found)
{
    size_t lo = 0, hi = ref->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_bytes(ref->items[mid]->key, ref->items[mid]->key_len, key, key_len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* A key of 0 to 10 bytes over a small alphabet with 0x00 and 0xff, so that many keys are
 * prefixes of others (and the short ones repeat: RK_ERR_EXISTS). */
static void random_key(uint64_t *state, char *key, uint32_t *key_len)
{
    static const char alphabet[] = { '\0', '\x01', 'a', 'b', '\xfe', '\xff' };
    *key_len = (uint32_t)(next_random(state) % 11);
    for (uint32_t i = 0; i < *key_len; i++)
        key[i] = alphabet[next_random(state) % sizeof(alphabet)];
}

static void random_insert(struct kv_index *ix, struct reference *ref, struct item *item)
{
    bool found;
    size_t pos = reference_search(ref, item->key, item->key_len, &found);
    int rc = kv_index_insert(ix, item);
    if (found) {
        expect(rc == RK_ERR_EXISTS);
        expect(kv_index_find(ix, item->key, item->key_len) == ref->items[pos]);
        return;
    }
    expect(rc == RK_OK);
    memmove(&ref->items[pos + 1], &ref->items[pos],
            (ref->count - pos) * sizeof(ref->items[0]));
    ref->items[pos] = item;
    ref->count++;
    expect(kv_index_find(ix, item->key, item->key_len) == item);
}

static void random_remove(struct kv_index *ix, struct reference *ref, const char *key,
                          uint32_t key_len)
{
    bool found;
    size_t pos = reference_search(ref, key, key_len, &found);
    expect(kv_index_remove(ix, key, key_len) == found);
    expect(kv_index_find(ix, key, key_len) == NULL);
    if (!found)
        return;
    memmove(&ref->items[pos], &ref->items[pos + 1],
            (ref->count - pos - 1) * sizeof(ref->items[0]));
    ref->count--;
}

static void random_seek(const struct kv_index *ix, const struct reference *ref,
                        const char *key, uint32_t key_len, bool after)
{
    bool found;
    size_t pos = reference_search(ref, key, key_len, &found);
    if (found && after)
        pos++;
    struct kv_index_iter it;
    kv_index_seek(ix, key, key_len, after, &it);
    for (size_t i = pos; i < pos + 20; i++)
        expect(kv_index_next(&it) == (i < ref->count ? ref->items[i] : NULL));
}

/* Items are drawn from a pool of random keys; phases that
 * mostly insert alternate with phases that mostly remove, so the tree grows to thousands
 * of items, three levels deep, and shrinks back, many times over. */
START_TEST(test_random_against_reference)
{
    enum { POOL = 30000, OPS = 200000, PHASE = 20000 };
    struct item *pool = calloc(POOL, sizeof(*pool));
    struct reference ref = { .items = calloc(POOL, sizeof(struct item *)) };
    ck_assert(pool != NULL && ref.items != NULL);
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < POOL; i++)
        random_key(&state, pool[i].key, &pool[i].key_len);
    struct kv_index *ix = new_index();
    size_t max_count = 0;
    for (int op = 0; op < OPS; op++) {
        uint64_t r = next_random(&state) % 100;
        int insert_share = (op / PHASE) % 2 == 0 ? 65 : 25;
        struct item *item = &pool[next_random(&state) % POOL];
        if (r < (uint64_t)insert_share) {
            random_insert(ix, &ref, item);
        } else if (r < 85) {
            random_remove(ix, &ref, item->key, item->key_len);
        } else {
            char key[16];
            uint32_t key_len;
            random_key(&state, key, &key_len);
            bool after = next_random(&state) % 2;
            if (r < 92)
                random_seek(ix, &ref, item->key, item->key_len, after);
            else
                random_seek(ix, &ref, key, key_len, after);
        }
        expect(kv_index_count(ix) == ref.count);
        if (ref.count > max_count)
            max_count = ref.count;
        if (op % 5000 == 0)
            assert_size_bounded(ix);
    }
    ck_assert_uint_gt(max_count, 3000);
    assert_walk(ix, ref.items, ref.count);
    while (ref.count > 0) { /* and down to empty */
        const struct item *middle = ref.items[ref.count / 2];
        random_remove(ix, &ref, middle->key, middle->key_len);
    }
    ck_assert_uint_eq(kv_index_bytes(ix), 0);
    kv_index_free(ix);
    free(ref.items);
    free(pool);
}
END_TEST

static Suite *kv_index_suite(void)
{
    Suite *suite = suite_create("kv_index");
    TCase *tc = tcase_create("index");
    tcase_set_timeout(tc, 30); /* the random run under a sanitizer */
    tcase_add_test(tc, test_empty_index);
    tcase_add_test(tc, test_one_item);
    tcase_add_test(tc, test_duplicate_is_refused);
    tcase_add_test(tc, test_insert_ascending);
    tcase_add_test(tc, test_insert_descending);
    tcase_add_test(tc, test_insert_random);
    tcase_add_test(tc, test_remove_to_empty);
    tcase_add_test(tc, test_memory_follows_count);
    tcase_add_test(tc, test_seek);
    tcase_add_test(tc, test_seek_many);
    tcase_add_test(tc, test_binary_and_empty_keys);
    tcase_add_test(tc, test_prefix_scan);
    tcase_add_test(tc, test_random_against_reference);
    tcase_add_test(tc, test_out_of_memory_leaves_index_unchanged);
    suite_add_tcase(suite, tc);
    return suite;
}

RK_CHECK_MAIN(kv_index_suite)
