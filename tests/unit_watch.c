/* tests/unit_watch.c - watch (issue 17) without sockets, threads or a real clock: the
 * events kv_apply reports, the history's bounds (server/kv/kv_history.c), the EVENTS
 * encoding (common/proto.c), and a watch stream as the client loop drives it
 * (server/node/watch.c): resuming at, before and after the oldest revision held, whole
 * revisions per answer, heartbeats on a fake clock, and the cut-off of a watcher that
 * does not read. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errors.h"
#include "../common/proto.h"
#include "../server/kv/kv.h"
#include "../server/kv/kv_history.h"
#include "../server/node/node.h"
#include "check_main.h"

/* ---- the events kv_apply reports ---- */

#define MAX_SEEN 64
struct seen {
    int n;
    uint64_t rev[MAX_SEEN];
    int kind[MAX_SEEN];
    char key[MAX_SEEN][16], val[MAX_SEEN][16];
};

static void record(void *ctx, uint64_t rev, enum kv_event_kind kind, const char *key,
                   uint32_t key_len, const char *val, uint32_t val_len)
{
    struct seen *s = ctx;
    ck_assert_int_lt(s->n, MAX_SEEN);
    s->rev[s->n] = rev;
    s->kind[s->n] = kind;
    snprintf(s->key[s->n], sizeof(s->key[0]), "%.*s", (int)key_len, key);
    snprintf(s->val[s->n], sizeof(s->val[0]), "%.*s", (int)val_len, val);
    s->n++;
}

static int apply(struct kv *kv, uint8_t type, const char *key, const char *val, uint64_t rev,
                 uint64_t ttl_ms)
{
    struct raft_entry e = { .type = type, .key = (char *)key, .key_len = (uint32_t)strlen(key),
                            .val = (char *)val, .val_len = (uint32_t)strlen(val), .rev = rev,
                            .ttl_ms = ttl_ms };
    return kv_apply(kv, kv_last_applied(kv) + 1, &e);
}

static void expect_seen(const struct seen *s, int i, uint64_t rev, int kind, const char *key,
                        const char *val)
{
    ck_assert_uint_eq(s->rev[i], rev);
    ck_assert_int_eq(s->kind[i], kind);
    ck_assert_str_eq(s->key[i], key);
    ck_assert_str_eq(s->val[i], val);
}

/* Every change, with the entry's index as its revision; no event for what changes no
 * value (a failed compare, a delete of an absent key, an EXPIRE). */
START_TEST(test_kv_reports_changes)
{
    struct kv *kv = kv_new();
    struct seen s = { 0 };
    kv_set_event_fn(kv, record, &s);
    kv_set_now(kv, 0);
    apply(kv, RAFT_ENTRY_SET, "a", "1", 0, 0);       /* 1 */
    apply(kv, RAFT_ENTRY_CAS, "a", "2", 7, 0);       /* 2: fails */
    apply(kv, RAFT_ENTRY_CAS, "a", "2", 1, 0);       /* 3 */
    apply(kv, RAFT_ENTRY_DELETE, "zz", "", 0, 0);    /* 4: absent */
    apply(kv, RAFT_ENTRY_SETEX, "b", "x", 0, 100);   /* 5 */
    apply(kv, RAFT_ENTRY_EXPIRE, "b", "", 0, 50);    /* 6: no value changes */
    apply(kv, RAFT_ENTRY_CAD, "a", "", 3, 0);        /* 7 */
    apply(kv, RAFT_ENTRY_CAS_TTL, "c", "y", 0, 50);  /* 8 */
    struct raft_entry batch = { .type = RAFT_ENTRY_EXPIRED, .key = "" };
    uint32_t n_keys;
    ck_assert_int_eq(kv_expiry_batch(kv, 100, 10, 4096, &batch.val, &batch.val_len, &n_keys),
                     RK_OK);
    ck_assert_uint_eq(n_keys, 2);
    kv_apply(kv, 9, &batch);                         /* 9: b and c, one revision */
    free(batch.val);
    ck_assert_int_eq(s.n, 7);
    expect_seen(&s, 0, 1, KV_EVENT_SET, "a", "1");
    expect_seen(&s, 1, 3, KV_EVENT_SET, "a", "2");
    expect_seen(&s, 2, 5, KV_EVENT_SET, "b", "x");
    expect_seen(&s, 3, 7, KV_EVENT_DELETE, "a", "");
    expect_seen(&s, 4, 8, KV_EVENT_SET, "c", "y");
    ck_assert_uint_eq(s.rev[5], 9);
    ck_assert_uint_eq(s.rev[6], 9);
    ck_assert_int_eq(s.kind[5], KV_EVENT_EXPIRE);
    ck_assert_int_eq(s.kind[6], KV_EVENT_EXPIRE);
    ck_assert(strcmp(s.key[5], s.key[6]) != 0);
    kv_free(kv);
}
END_TEST

/* ---- the history's bounds ---- */

static void add(struct kv_history *h, uint64_t rev, const char *key)
{
    ck_assert_int_eq(kv_history_append(h, rev, KV_EVENT_SET, key, (uint32_t)strlen(key), "v",
                                       1), RK_OK);
}

START_TEST(test_history_bounds)
{
    struct kv_history *h = kv_history_new(4, 1u << 20, 10);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(kv_history_first_rev(h), 11);
    for (uint64_t rev = 11; rev <= 16; rev++)
        add(h, rev, "k");
    ck_assert_uint_eq(kv_history_count(h), 4); /* 13..16: 11 and 12 went */
    ck_assert_uint_eq(kv_history_first_rev(h), 13);
    ck_assert_uint_eq(kv_history_at(h, kv_history_seek(h, 13))->rev, 13);
    ck_assert_uint_eq(kv_history_seek(h, 17), kv_history_end(h));
    kv_history_free(h);
    /* by bytes: each event costs the overhead, its key and its value */
    uint64_t cost = KV_HISTORY_EVENT_OVERHEAD + 2;
    h = kv_history_new(100, 3 * cost, 0);
    add(h, 1, "a");
    add(h, 2, "b");
    add(h, 2, "c"); /* one revision, two keys */
    ck_assert_uint_eq(kv_history_bytes(h), 3 * cost);
    add(h, 3, "d");
    ck_assert_uint_eq(kv_history_count(h), 3);
    ck_assert_uint_eq(kv_history_first_rev(h), 2);
    add(h, 4, "e"); /* the first event of revision 2 goes: 2 is no longer whole */
    ck_assert_uint_eq(kv_history_first_rev(h), 3);
    ck_assert_uint_eq(kv_history_at(h, kv_history_seek(h, 3))->rev, 3);
    kv_history_reset(h, 20); /* a snapshot at 20 replaced the map */
    ck_assert_uint_eq(kv_history_count(h), 0);
    ck_assert_uint_eq(kv_history_first_rev(h), 21);
    ck_assert_uint_eq(kv_history_applied_index(h), 20);
    ck_assert_uint_eq(kv_history_bytes(h), 0);
    kv_history_free(h);
    ck_assert_ptr_null(kv_history_new(0, 100, 0));
}
END_TEST

/* ---- the EVENTS encoding ---- */

START_TEST(test_events_encoding)
{
    struct proto_buf b = { 0 };
    ck_assert_int_eq(proto_events_begin(&b, 77), RK_OK);
    static const char bin[] = { 'v', '\0', '\n' };
    struct proto_event in[3] = {
        { .rev = 5, .kind = PROTO_EVENT_SET, .key = "k", .key_len = 1, .val = bin,
          .val_len = 3 },
        { .rev = 9, .kind = PROTO_EVENT_EXPIRE, .key = "x/1", .key_len = 3, .val = "" },
        { .rev = 9, .kind = PROTO_EVENT_DELETE, .key = "", .key_len = 0, .val = "" },
    };
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(proto_events_add(&b, &in[i]), RK_OK);
    ck_assert_uint_eq(b.len, PROTO_EVENTS_HEAD + 3 * 17 + 1 + 3 + 3);
    uint64_t progress;
    uint32_t n, off = PROTO_EVENTS_HEAD;
    ck_assert_int_eq(proto_events_head((const char *)b.data, (uint32_t)b.len, &progress, &n),
                     RK_OK);
    ck_assert_uint_eq(progress, 77);
    ck_assert_uint_eq(n, 3);
    struct proto_event out;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(proto_events_next((const char *)b.data, (uint32_t)b.len, &off, &out), 1);
        ck_assert_uint_eq(out.rev, in[i].rev);
        ck_assert_uint_eq(out.kind, in[i].kind);
        ck_assert_uint_eq(out.key_len, in[i].key_len);
        ck_assert_mem_eq(out.key, in[i].key, in[i].key_len);
        ck_assert_uint_eq(out.val_len, in[i].val_len);
        ck_assert_mem_eq(out.val, in[i].val, in[i].val_len);
    }
    ck_assert_int_eq(proto_events_next((const char *)b.data, (uint32_t)b.len, &off, &out), 0);
    /* cut anywhere inside an event, or an unknown kind: refused */
    for (uint32_t cut = PROTO_EVENTS_HEAD + 1; cut < b.len; cut++) {
        off = PROTO_EVENTS_HEAD;
        int rc;
        while ((rc = proto_events_next((const char *)b.data, cut, &off, &out)) == 1)
            ;
        ck_assert_msg(rc == RK_ERR_PROTO || off == cut, "cut at %u", cut);
    }
    b.data[PROTO_EVENTS_HEAD + 8] = 4;
    off = PROTO_EVENTS_HEAD;
    ck_assert_int_eq(proto_events_next((const char *)b.data, (uint32_t)b.len, &off, &out),
                     RK_ERR_PROTO);
    ck_assert_int_eq(proto_events_head("short", 5, &progress, &n), RK_ERR_PROTO);
    proto_buf_free(&b);
    uint64_t from, rev;
    ck_assert_int_eq(proto_parse_watch("", 0, &from), RK_OK);
    ck_assert_uint_eq(from, 0);
    ck_assert_int_eq(proto_parse_watch("42", 2, &from), RK_OK);
    ck_assert_uint_eq(from, 42);
    ck_assert_int_eq(proto_parse_watch("0", 1, &from), RK_ERR_PROTO);
    ck_assert_int_eq(proto_parse_watch("4 2", 3, &from), RK_ERR_PROTO);
    const char *err = PROTO_ERR_COMPACTED "123";
    ck_assert_int_eq(proto_parse_watch_error(err, (uint32_t)strlen(err), PROTO_ERR_COMPACTED,
                                             &rev), RK_OK);
    ck_assert_uint_eq(rev, 123);
    ck_assert_int_eq(proto_parse_watch_error(err, (uint32_t)strlen(err), PROTO_ERR_FELL_BEHIND,
                                             &rev), RK_ERR_PROTO);
}
END_TEST

/* ---- a watch stream on a node with no threads ---- */

struct fake_node {
    struct node n;
    uint64_t next_index;
};

static void fake_node_init(struct fake_node *f, uint32_t max_events, uint32_t max_watchers)
{
    memset(f, 0, sizeof(*f));
    f->n.kv = kv_new();
    ck_assert_ptr_nonnull(f->n.kv);
    node_limits_default(&f->n.limits);
    f->n.limits.max_watchers = max_watchers;
    ck_assert_int_eq(node_watch_init(&f->n, max_events, 64u << 20), RK_OK);
    f->next_index = 1;
}

static void fake_node_free(struct fake_node *f)
{
    node_watch_free(&f->n);
    kv_free(f->n.kv);
    pthread_mutex_destroy(&f->n.watch.mu);
}

/* Applies SETs as one chunk, as node.c does. */
static void fake_apply_sets(struct fake_node *f, int count, const char *key_fmt)
{
    node_watch_chunk_begin(&f->n);
    for (int i = 0; i < count; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), key_fmt, (int)f->next_index);
        snprintf(val, sizeof(val), "v%" PRIu64, f->next_index);
        struct raft_entry e = { .type = RAFT_ENTRY_SET, .key = key,
                                .key_len = (uint32_t)strlen(key), .val = val,
                                .val_len = (uint32_t)strlen(val) };
        ck_assert_int_gt(kv_apply(f->n.kv, f->next_index, &e), 0);
        f->n.applied = f->next_index++;
    }
    node_watch_chunk_end(&f->n);
}

/* Reads the answers in out (frames of CLIENT_RESP): the events' revisions into revs (up
 * to max), the last progress, the number of EVENTS answers; an ERR's reason into err. */
struct answers {
    int frames, n_events;
    uint64_t revs[4096];
    uint64_t progress;
    char err[128];
};

static void read_answers(struct proto_buf *out, struct answers *a)
{
    memset(a, 0, sizeof(*a));
    size_t at = 0;
    while (at + 4 <= out->len) {
        uint32_t len = (uint32_t)((out->data[at] << 24) | (out->data[at + 1] << 16) |
                                  (out->data[at + 2] << 8) | out->data[at + 3]);
        struct proto_client_resp r;
        ck_assert_int_eq(proto_decode_client_resp(out->data + at + 4, len, &r), RK_OK);
        at += 4 + len;
        if (r.status == PROTO_ST_ERR) {
            snprintf(a->err, sizeof(a->err), "%.*s", (int)r.body_len, r.body);
            continue;
        }
        ck_assert_int_eq(r.status, PROTO_ST_EVENTS);
        uint32_t n, off = PROTO_EVENTS_HEAD;
        ck_assert_int_eq(proto_events_head(r.body, r.body_len, &a->progress, &n), RK_OK);
        struct proto_event ev;
        while (proto_events_next(r.body, r.body_len, &off, &ev) == 1 && a->n_events < 4096)
            a->revs[a->n_events++] = ev.rev;
        a->frames++;
    }
    ck_assert_uint_eq(at, out->len);
    out->len = 0;
}

/* node_watch_answer appended to out, as the watch loop queues it: RK_OK (also when there
 * was nothing to say) or RK_ERR_NOMEM. */
static int node_watch_fill(struct node *n, struct node_watcher *w, struct proto_buf *out,
                           size_t unsent, uint64_t now)
{
    const struct proto_buf *a = node_watch_answer(n, w, unsent, now);
    return a == NULL ? RK_OK : proto_buf_append(out, a->data, a->len);
}

static bool start(struct fake_node *f, struct node_watcher *w, const char *prefix,
                  const char *from, struct proto_buf *out, uint64_t now)
{
    struct proto_client_req req = { .op = PROTO_OP_WATCH, .key = prefix,
                                    .key_len = (uint32_t)strlen(prefix), .val = from,
                                    .val_len = (uint32_t)strlen(from) };
    if (!node_watch_check(&f->n, w, &req, out))
        return false;
    node_watch_open(&f->n, w);
    ck_assert(node_watch_due(&f->n, w, 0, now)); /* the first answer, at once */
    ck_assert_int_eq(node_watch_fill(&f->n, w, out, 0, now), RK_OK);
    return true;
}

/* From now, from a revision held, and the prefix filter; heartbeats once a second on the
 * fake clock; progress moves the stream past revisions that had nothing for it. */
START_TEST(test_stream_from_now_and_from_rev)
{
    struct fake_node f;
    fake_node_init(&f, 1000, 10);
    fake_apply_sets(&f, 5, "a%d"); /* 1..5 */
    struct node_watcher now_w, old_w, b_w;
    struct proto_buf out = { 0 };
    struct answers a;
    ck_assert(start(&f, &now_w, "", "", &out, 1000));
    read_answers(&out, &a);
    ck_assert_int_eq(a.frames, 1); /* the first answer at once: no events, progress 5 */
    ck_assert_int_eq(a.n_events, 0);
    ck_assert_uint_eq(a.progress, 5);
    ck_assert(start(&f, &old_w, "a", "3", &out, 1000));
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 3);
    ck_assert_uint_eq(a.revs[0], 3);
    ck_assert(start(&f, &b_w, "b", "1", &out, 1000));
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 0);
    fake_apply_sets(&f, 2, "b%d"); /* 6, 7 */
    ck_assert(node_watch_due(&f.n, &b_w, 0, 1001));
    node_watch_fill(&f.n, &b_w, &out, 0, 1001);
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 2);
    ck_assert_uint_eq(a.revs[1], 7);
    node_watch_fill(&f.n, &old_w, &out, 0, 1001); /* nothing for "a": no answer yet */
    read_answers(&out, &a);
    ck_assert_int_eq(a.frames, 0);
    ck_assert(!node_watch_due(&f.n, &old_w, 0, 1500));
    ck_assert(node_watch_due(&f.n, &old_w, 0, 2000)); /* a heartbeat is due */
    node_watch_fill(&f.n, &old_w, &out, 0, 2000);
    read_answers(&out, &a);
    ck_assert_int_eq(a.frames, 1);
    ck_assert_uint_eq(a.progress, 7);
    ck_assert_uint_eq(old_w.next, 8);
    node_watch_stop(&f.n, &now_w);
    node_watch_stop(&f.n, &old_w);
    node_watch_stop(&f.n, &b_w);
    ck_assert_uint_eq(atomic_load(&f.n.watch.n_watchers), 0);
    proto_buf_free(&out);
    fake_node_free(&f);
}
END_TEST

/* Resume before the oldest revision held: compacted, naming it; at it: every event; after
 * the newest: nothing until it comes. */
START_TEST(test_resume_at_before_after_oldest)
{
    struct fake_node f;
    fake_node_init(&f, 10, 10);
    fake_apply_sets(&f, 25, "k%d"); /* 1..25; the history holds 16..25 */
    struct node_watcher w;
    struct proto_buf out = { 0 };
    struct answers a;
    ck_assert(!start(&f, &w, "", "15", &out, 0));
    read_answers(&out, &a);
    ck_assert_str_eq(a.err, PROTO_ERR_COMPACTED "16");
    ck_assert(start(&f, &w, "", "16", &out, 0));
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 10);
    ck_assert_uint_eq(a.revs[0], 16);
    ck_assert_uint_eq(a.revs[9], 25);
    node_watch_stop(&f.n, &w);
    ck_assert(start(&f, &w, "", "40", &out, 0)); /* ahead of this server: it waits */
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 0);
    fake_apply_sets(&f, 20, "k%d"); /* 26..45 */
    node_watch_fill(&f.n, &w, &out, 0, 1);
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 6);
    ck_assert_uint_eq(a.revs[0], 40);
    node_watch_stop(&f.n, &w);
    /* a watcher whose place is trimmed away while it waits is told where it fell behind */
    ck_assert(start(&f, &w, "", "", &out, 0));
    read_answers(&out, &a);
    w.next = 30; /* as if it had stopped reading at 30 */
    node_watch_fill(&f.n, &w, &out, 0, 2);
    read_answers(&out, &a);
    ck_assert_str_eq(a.err, PROTO_ERR_FELL_BEHIND "30");
    ck_assert(w.ending);
    node_watch_stop(&f.n, &w);
    proto_buf_free(&out);
    fake_node_free(&f);
}
END_TEST

/* A watcher that does not read: once NODE_WATCH_OUT_BOUND bytes wait unsent and more
 * events come, it is cut off naming the revision to resume from. Answers hold whole
 * revisions and about NODE_WATCH_BATCH_BYTES. */
START_TEST(test_slow_watcher_cut_off)
{
    struct fake_node f;
    fake_node_init(&f, 100000, 10);
    struct node_watcher w;
    struct proto_buf out = { 0 };
    struct answers a;
    ck_assert(start(&f, &w, "", "", &out, 0));
    read_answers(&out, &a);
    fake_apply_sets(&f, 5000, "key-with-some-length-%d");
    size_t unsent = 0;
    uint64_t next_before = w.next;
    node_watch_fill(&f.n, &w, &out, unsent, 1);
    ck_assert_uint_le(out.len, NODE_WATCH_BATCH_BYTES + 256);
    read_answers(&out, &a);
    ck_assert_int_gt(a.n_events, 0);
    ck_assert_uint_eq(a.revs[0], next_before);
    ck_assert_uint_eq(w.next, a.revs[a.n_events - 1] + 1); /* no gap, no repeat */
    node_watch_fill(&f.n, &w, &out, NODE_WATCH_OUT_BOUND, 2); /* the client reads nothing */
    read_answers(&out, &a);
    char want[64];
    snprintf(want, sizeof(want), PROTO_ERR_FELL_BEHIND "%" PRIu64, w.next);
    ck_assert_str_eq(a.err, want);
    ck_assert(w.ending);
    ck_assert(!node_watch_due(&f.n, &w, 0, 5000));
    node_watch_stop(&f.n, &w);
    /* the limit on watchers, and bad requests */
    struct node_watcher ws[3];
    f.n.limits.max_watchers = 2;
    ck_assert(start(&f, &ws[0], "", "", &out, 0));
    ck_assert(start(&f, &ws[1], "", "", &out, 0));
    ck_assert(!start(&f, &ws[2], "", "", &out, 0));
    read_answers(&out, &a);
    ck_assert_str_eq(a.err, "too many watchers (--max-watchers 2)");
    ck_assert(!start(&f, &ws[2], "a b", "", &out, 0) && !start(&f, &ws[2], "", "0", &out, 0));
    node_watch_stop(&f.n, &ws[0]);
    node_watch_stop(&f.n, &ws[1]);
    proto_buf_free(&out);
    fake_node_free(&f);
}
END_TEST

/* The events of one revision (an EXPIRED entry deleting 3000 keys: 140 KB of events, more
 * than an answer's 64 KiB) all go in one answer: a client resumes after the last revision
 * it printed, so a revision split across answers could lose its second half. */
START_TEST(test_revision_never_split)
{
    struct fake_node f;
    fake_node_init(&f, 100000, 10);
    struct node_watcher w;
    struct proto_buf out = { 0 };
    struct answers a;
    ck_assert(start(&f, &w, "", "", &out, 0));
    read_answers(&out, &a);
    node_watch_chunk_begin(&f.n);
    kv_set_now(f.n.kv, 0);
    char key[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "a-key-of-about-thirty-bytes-%05d", i);
        struct raft_entry e = { .type = RAFT_ENTRY_SETEX, .key = key,
                                .key_len = (uint32_t)strlen(key), .val = "v", .val_len = 1,
                                .ttl_ms = 100 };
        ck_assert_int_gt(kv_apply(f.n.kv, f.next_index, &e), 0);
        f.n.applied = f.next_index++;
    }
    struct raft_entry batch = { .type = RAFT_ENTRY_EXPIRED, .key = "" };
    uint32_t n_keys;
    ck_assert_int_eq(kv_expiry_batch(f.n.kv, 100, 5000, 1u << 20, &batch.val, &batch.val_len,
                                     &n_keys), RK_OK);
    ck_assert_uint_eq(n_keys, 3000);
    ck_assert_int_gt(kv_apply(f.n.kv, f.next_index, &batch), 0);
    f.n.applied = f.next_index++;
    free(batch.val);
    node_watch_chunk_end(&f.n);
    uint64_t expired_rev = f.n.applied, seen_expired = 0;
    for (int round = 0; round < 100 && w.next <= f.n.applied; round++) {
        node_watch_fill(&f.n, &w, &out, 0, 1);
        read_answers(&out, &a);
        int here = 0;
        for (int i = 0; i < a.n_events; i++)
            here += a.revs[i] == expired_rev;
        ck_assert(here == 0 || here == 3000); /* all of the revision, or none of it */
        seen_expired += (uint64_t)here;
    }
    ck_assert_uint_eq(seen_expired, 3000);
    node_watch_stop(&f.n, &w);
    proto_buf_free(&out);
    fake_node_free(&f);
}
END_TEST

/* node_watch_scan's visit: counts the streams a round names. */
static void count_visit(void *ctx, struct node_watcher *w)
{
    struct node_watcher **seen = ctx;
    for (int i = 0; i < 8; i++) {
        if (seen[i] == NULL) {
            seen[i] = w;
            return;
        }
    }
}

static bool visited(struct node_watcher *const *seen, const struct node_watcher *w)
{
    for (int i = 0; i < 8; i++)
        if (seen[i] == w)
            return true;
    return false;
}

/* A round of changes names the streams of the prefixes they touch, and moves a caught-up
 * watcher whose prefix they do not touch past them without reading them, so it is not
 * visited: nothing is skipped that a watcher should get. */
START_TEST(test_index_skips_untouched)
{
    struct fake_node f;
    fake_node_init(&f, 1000, 10);
    struct node_watcher wa, wb, wall, wlong;
    struct proto_buf out = { 0 };
    struct answers a;
    ck_assert(start(&f, &wa, "a/", "", &out, 0));
    ck_assert(start(&f, &wb, "b/", "", &out, 0));
    ck_assert(start(&f, &wall, "", "", &out, 0));
    ck_assert(start(&f, &wlong, "a/1", "", &out, 0));
    read_answers(&out, &a);
    fake_apply_sets(&f, 5, "a/%d"); /* 1..5: a/1 .. a/5 */
    struct node_watcher *seen[8] = { NULL };
    node_watch_scan(&f.n, count_visit, seen);
    ck_assert(visited(seen, &wa) && visited(seen, &wall) && visited(seen, &wlong));
    ck_assert(!visited(seen, &wb));
    struct node_watcher *all[] = { &wa, &wb, &wall, &wlong };
    for (int i = 0; i < 4; i++)
        node_watch_skip(&f.n, all[i]);
    ck_assert_uint_eq(wb.next, 6);    /* b/: untouched, moved past */
    ck_assert_uint_eq(wa.next, 1);    /* a/: touched, reads them */
    ck_assert_uint_eq(wall.next, 1);
    ck_assert_uint_eq(wlong.next, 1); /* a/1: touched by a/1 */
    for (int i = 0; i < 4; i++)
        node_watch_fill(&f.n, all[i], &out, 0, 1);
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 5 + 5 + 1); /* a/: 5, all: 5, a/1: 1 */
    fake_apply_sets(&f, 3, "b/%d"); /* 6..8 */
    memset(seen, 0, sizeof(seen));
    node_watch_scan(&f.n, count_visit, seen);
    ck_assert(visited(seen, &wb) && visited(seen, &wall) && !visited(seen, &wa));
    node_watch_skip(&f.n, &wa);
    node_watch_skip(&f.n, &wb);
    ck_assert_uint_eq(wa.next, 9);
    ck_assert_uint_eq(wb.next, 6);
    node_watch_fill(&f.n, &wb, &out, 0, 2);
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 3);
    ck_assert_uint_eq(a.revs[0], 6);
    for (int i = 0; i < 4; i++)
        node_watch_stop(&f.n, all[i]);
    proto_buf_free(&out);
    fake_node_free(&f);
}
END_TEST

/* A prefix first watched after changes were matched without it: a stream resuming from
 * before them is not moved past them (they were never matched against its prefix). Two
 * streams of a prefix at one place get the same answer, built once. After a snapshot
 * replaced the history, a round names every stream, and one whose place went is told. */
START_TEST(test_index_new_prefix_shared_answer_reset)
{
    struct fake_node f;
    fake_node_init(&f, 1000, 10);
    struct node_watcher wd, wc1, wc2;
    struct proto_buf out = { 0 };
    struct answers a;
    ck_assert(start(&f, &wd, "d/", "", &out, 0));
    fake_apply_sets(&f, 5, "c/%d"); /* 1..5 */
    node_watch_scan(&f.n, NULL, NULL); /* matched against d/ only */
    struct proto_client_req req = { .op = PROTO_OP_WATCH, .key = "c/", .key_len = 2,
                                    .val = "1", .val_len = 1 };
    ck_assert(node_watch_check(&f.n, &wc1, &req, &out));
    node_watch_open(&f.n, &wc1);
    node_watch_skip(&f.n, &wc1); /* as a heartbeat would, before its first answer */
    ck_assert_uint_eq(wc1.next, 1);
    ck_assert_int_eq(node_watch_fill(&f.n, &wc1, &out, 0, 0), RK_OK);
    ck_assert(start(&f, &wc2, "c/", "1", &out, 0));
    read_answers(&out, &a);
    ck_assert_int_eq(a.n_events, 10); /* 1..5 each */
    node_watch_skip(&f.n, &wc1);
    ck_assert_uint_eq(wc1.next, 6);
    fake_apply_sets(&f, 2, "c/%d"); /* 6, 7 */
    node_watch_scan(&f.n, NULL, NULL);
    node_watch_skip(&f.n, &wc1);
    ck_assert_uint_eq(wc1.next, 6); /* touched: not moved */
    const struct proto_buf *a1 = node_watch_answer(&f.n, &wc1, 0, 1);
    ck_assert_ptr_nonnull(a1);
    const uint8_t *bytes = a1->data;
    size_t len = a1->len;
    const struct proto_buf *a2 = node_watch_answer(&f.n, &wc2, 0, 1);
    ck_assert(a2 == a1 && a2->data == bytes && a2->len == len); /* the same bytes */
    ck_assert_uint_eq(wc1.next, 8);
    ck_assert_uint_eq(wc2.next, 8);
    wd.next = 3; /* as if it lagged, then the history went */
    node_watch_attach(&f.n, f.n.kv, 100);
    struct node_watcher *seen[8] = { NULL };
    node_watch_scan(&f.n, count_visit, seen);
    ck_assert(visited(seen, &wd) && visited(seen, &wc1) && visited(seen, &wc2));
    ck_assert_int_eq(node_watch_fill(&f.n, &wd, &out, 0, 2), RK_OK);
    read_answers(&out, &a);
    ck_assert_str_eq(a.err, PROTO_ERR_FELL_BEHIND "3");
    node_watch_stop(&f.n, &wd);
    node_watch_stop(&f.n, &wc1);
    node_watch_stop(&f.n, &wc2);
    proto_buf_free(&out);
    fake_node_free(&f);
}
END_TEST

static Suite *watch_suite(void)
{
    Suite *s = suite_create("watch");
    TCase *tc = tcase_create("watch");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_kv_reports_changes);
    tcase_add_test(tc, test_history_bounds);
    tcase_add_test(tc, test_events_encoding);
    tcase_add_test(tc, test_stream_from_now_and_from_rev);
    tcase_add_test(tc, test_resume_at_before_after_oldest);
    tcase_add_test(tc, test_slow_watcher_cut_off);
    tcase_add_test(tc, test_revision_never_split);
    tcase_add_test(tc, test_index_skips_untouched);
    tcase_add_test(tc, test_index_new_prefix_shared_answer_reset);
    suite_add_tcase(s, tc);
    return s;
}

RK_CHECK_MAIN(watch_suite)
