/* server/kv/kv_image.c - the key-value state as a byte stream (layout in kv_image.h), so a
 * snapshot can hold it (Raft paper §7), and visitors over pairs and sessions. */
#include "kv_image.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/bytes.h"
#include "../../common/errors.h"
#include "../../common/grow.h"
#include "kv_internal.h"

#define IMAGE_HEAD_BYTES 24u      /* u64 last_applied | u64 rev | u64 n_pairs */
#define PAIR_HEADER_BYTES 32u     /* u32 key_len | u32 val_len | u64 rev | u64 ttl_ms |
                                     u64 ttl_index */
#define PAIR_HEADER_BYTES_V3 16u  /* without the deadline */
#define SESSION_BYTES 33u         /* u64 id | u64 last_seq | u64 last_use | u8 result |
                                     u64 last_rev */
#define MAX_SESSIONS_LIMIT (1u << 24) /* a larger bound in an image is corrupt */


/* ---------- visitors ---------- */

int kv_visit_pairs(const struct kv *kv, kv_pair_fn fn, void *ctx)
{
    for (size_t i = 0; i < kv->n_buckets; i++) {
        for (const struct kv_node *n = kv->buckets[i]; n != NULL; n = n->next) {
            int rc = fn(ctx, n->key, n->key_len, n->val, n->val_len);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

int kv_visit_sessions(const struct kv *kv, kv_session_fn fn, void *ctx)
{
    const struct kv_session *s = NULL;
    while ((s = kv_sessions_next(kv->sessions, s)) != NULL) {
        struct kv_session_info info = { .last_seq = s->last_seq,
                                        .last_result = s->last_result,
                                        .last_use = s->last_use, .last_rev = s->last_rev };
        int rc = fn(ctx, s->id, &info);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---------- writing ---------- */

struct image_writer {
    kv_image_put_fn put;
    void *ctx;
};

static int write_pair(const struct image_writer *w, const struct kv_node *n)
{
    uint8_t head[PAIR_HEADER_BYTES];
    rk_put_be(head, n->key_len, 4);
    rk_put_be(head + 4, n->val_len, 4);
    rk_put_be(head + 8, n->rev, 8);
    rk_put_be(head + 16, n->ttl != NULL ? n->ttl->ttl_ms : 0, 8);
    rk_put_be(head + 24, n->ttl != NULL ? n->ttl->set_index : 0, 8);
    int rc = w->put(w->ctx, head, sizeof(head));
    if (rc == 0 && n->key_len > 0)
        rc = w->put(w->ctx, n->key, n->key_len);
    if (rc == 0 && n->val_len > 0)
        rc = w->put(w->ctx, n->val, n->val_len);
    return rc;
}

static int write_pairs(const struct kv *kv, const struct image_writer *w)
{
    for (size_t i = 0; i < kv->n_buckets; i++) {
        for (const struct kv_node *n = kv->buckets[i]; n != NULL; n = n->next) {
            int rc = write_pair(w, n);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static int write_session(void *ctx, uint64_t id, const struct kv_session_info *s)
{
    struct image_writer *w = ctx;
    uint8_t rec[SESSION_BYTES];
    rk_put_be(rec, id, 8);
    rk_put_be(rec + 8, s->last_seq, 8);
    rk_put_be(rec + 16, s->last_use, 8);
    rec[24] = (uint8_t)s->last_result;
    rk_put_be(rec + 25, s->last_rev, 8);
    return w->put(w->ctx, rec, sizeof(rec));
}

int kv_image_write(const struct kv *kv, kv_image_put_fn put, void *ctx)
{
    struct image_writer w = { .put = put, .ctx = ctx };
    uint8_t head[IMAGE_HEAD_BYTES];
    rk_put_be(head, kv->last_applied, 8);
    rk_put_be(head + 8, kv->rev, 8);
    rk_put_be(head + 16, kv->count, 8);
    int rc = put(ctx, head, sizeof(head));
    if (rc == 0)
        rc = write_pairs(kv, &w);
    if (rc != 0)
        return rc;
    uint8_t sessions_head[8];
    rk_put_be(sessions_head, kv_sessions_max(kv->sessions), 4);
    rk_put_be(sessions_head + 4, kv_sessions_count(kv->sessions), 4);
    rc = put(ctx, sessions_head, sizeof(sessions_head));
    if (rc == 0)
        rc = kv_visit_sessions(kv, write_session, &w);
    return rc;
}

uint64_t kv_image_size(const struct kv *kv)
{
    uint64_t size = IMAGE_HEAD_BYTES + 8 +
                    (uint64_t)kv_sessions_count(kv->sessions) * SESSION_BYTES;
    for (size_t i = 0; i < kv->n_buckets; i++)
        for (const struct kv_node *n = kv->buckets[i]; n != NULL; n = n->next)
            size += PAIR_HEADER_BYTES + (uint64_t)n->key_len + n->val_len;
    return size;
}

/* ---------- reading ---------- */

struct image_reader {
    kv_image_get_fn get;
    void *ctx;
    uint64_t len, pos;   /* the image's length and how much was read */
    uint32_t pair_header;/* PAIR_HEADER_BYTES, or _V3 in a version 3 image */
    char *scratch;       /* one pair's key and value */
    size_t scratch_cap;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int corrupt(struct image_reader *r, const char *fmt, ...)
{
    if (r->err == NULL || r->errlen == 0)
        return RK_ERR_CORRUPT;
    int n = snprintf(r->err, r->errlen, "image byte %" PRIu64 ": ", r->pos);
    if (n >= 0 && (size_t)n < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return RK_ERR_CORRUPT;
}

/* Reads n bytes, refusing to go past the image's end. */
static int take(struct image_reader *r, void *buf, size_t n, const char *what)
{
    if (n > r->len - r->pos)
        return corrupt(r, "%s (%zu bytes) runs past the end of the image (%" PRIu64
                       " bytes)", what, n, r->len);
    int rc = r->get(r->ctx, buf, n);
    if (rc != RK_OK)
        return rc;
    r->pos += n;
    return RK_OK;
}

static int take_u64(struct image_reader *r, uint64_t *v, const char *what)
{
    uint8_t b[8];
    int rc = take(r, b, sizeof(b), what);
    if (rc == RK_OK)
        *v = rk_get_be(b, 8);
    return rc;
}

static int grow_scratch(struct image_reader *r, size_t need)
{
    return rk_grow(&r->scratch, &r->scratch_cap, need, 1, 256);
}

/* A key's deadline (ttl_ms from the entry at set_index; set_index 0: none). */
static int read_ttl(struct image_reader *r, struct kv *kv, const char *key, uint32_t key_len,
                    uint64_t ttl_ms, uint64_t set_index)
{
    if (set_index == 0)
        return ttl_ms == 0 ? RK_OK : corrupt(r, "a key has a time to live but no entry set it");
    if (set_index > kv->last_applied)
        return corrupt(r, "a key's deadline was set at %" PRIu64 ", past the last applied "
                       "index %" PRIu64, set_index, kv->last_applied);
    return kv_ttl_set(kv, kv_find(kv, key, key_len), ttl_ms, set_index);
}

static int read_pair(struct image_reader *r, struct kv *kv)
{
    uint8_t head[PAIR_HEADER_BYTES] = { 0 };
    int rc = take(r, head, r->pair_header, "a pair's lengths");
    if (rc != RK_OK)
        return rc;
    uint32_t key_len = (uint32_t)rk_get_be(head, 4), val_len = (uint32_t)rk_get_be(head + 4, 4);
    uint64_t rev = rk_get_be(head + 8, 8);
    uint64_t both = (uint64_t)key_len + val_len;
    if (rev > kv->rev)
        return corrupt(r, "a key's revision %" PRIu64 " is past the last one, %" PRIu64, rev,
                       kv->rev);
    if (both > r->len - r->pos)
        return corrupt(r, "a key of %" PRIu32 " and a value of %" PRIu32 " bytes run past "
                       "the end of the image", key_len, val_len);
    rc = grow_scratch(r, (size_t)both + 1);
    if (rc == RK_OK)
        rc = take(r, r->scratch, (size_t)both, "a pair");
    if (rc == RK_OK)
        rc = kv_set_at(kv, r->scratch, key_len, r->scratch + key_len, val_len, rev);
    if (rc == RK_OK)
        rc = read_ttl(r, kv, r->scratch, key_len, rk_get_be(head + 16, 8),
                      rk_get_be(head + 24, 8));
    return rc;
}

static int read_pairs(struct image_reader *r, struct kv *kv)
{
    uint64_t n_pairs;
    int rc = take_u64(r, &n_pairs, "the pair count");
    if (rc != RK_OK)
        return rc;
    if (n_pairs > (r->len - r->pos) / r->pair_header)
        return corrupt(r, "%" PRIu64 " pairs cannot fit in the rest of the image", n_pairs);
    for (uint64_t i = 0; i < n_pairs && rc == RK_OK; i++)
        rc = read_pair(r, kv);
    if (rc == RK_OK && kv_count(kv) != n_pairs)
        return corrupt(r, "%" PRIu64 " pairs but only %zu distinct keys", n_pairs,
                       kv_count(kv));
    return rc;
}

/* One session record; they come least recently used first, so last_use increases. */
static int read_session(struct image_reader *r, struct kv *kv, raft_index_t *prev_use)
{
    uint8_t rec[SESSION_BYTES];
    int rc = take(r, rec, sizeof(rec), "a session");
    if (rc != RK_OK)
        return rc;
    uint64_t id = rk_get_be(rec, 8), last_seq = rk_get_be(rec + 8, 8);
    raft_index_t last_use = rk_get_be(rec + 16, 8);
    int result = rec[24];
    uint64_t last_rev = rk_get_be(rec + 25, 8);
    if (id == 0 || last_use <= *prev_use || last_use > kv->last_applied)
        return corrupt(r, "session %" PRIu64 " last used at %" PRIu64 " is out of order",
                       id, last_use);
    if (result != 0 && result != KV_APPLIED && result != KV_ABSENT && result != KV_FAILED)
        return corrupt(r, "session %" PRIu64 " has an unknown last result %d", id, result);
    rc = kv_sessions_open(kv->sessions, id, last_use);
    if (rc == RK_ERR_INVAL)
        return corrupt(r, "session %" PRIu64 " appears twice", id);
    if (rc != RK_OK)
        return rc;
    struct kv_session *s = kv_sessions_find(kv->sessions, id);
    s->last_seq = last_seq;
    s->last_result = result;
    s->last_rev = last_rev;
    *prev_use = last_use;
    return RK_OK;
}

/* The session table's bound and count; creates the map with that bound. */
static int read_sessions_head(struct image_reader *r, uint32_t *max, uint32_t *count)
{
    uint8_t head[8];
    int rc = take(r, head, sizeof(head), "the session counts");
    if (rc != RK_OK)
        return rc;
    *max = (uint32_t)rk_get_be(head, 4);
    *count = (uint32_t)rk_get_be(head + 4, 4);
    if (*max == 0 || *max > MAX_SESSIONS_LIMIT || *count > *max)
        return corrupt(r, "%" PRIu32 " sessions with a bound of %" PRIu32, *count, *max);
    if ((uint64_t)*count * SESSION_BYTES != r->len - r->pos)
        return corrupt(r, "%" PRIu32 " sessions need %" PRIu64 " bytes, %" PRIu64 " are left",
                       *count, (uint64_t)*count * SESSION_BYTES, r->len - r->pos);
    return RK_OK;
}

/* Pairs first, into a map with the default bound; sessions follow, so the map is
 * rebuilt with the image's bound once that is known: cheap, only the empty table. */
static int read_image(struct image_reader *r, struct kv *kv)
{
    int rc = take_u64(r, &kv->last_applied, "the last applied index");
    if (rc == RK_OK)
        rc = take_u64(r, &kv->rev, "the last revision");
    if (rc == RK_OK && kv->rev > kv->last_applied)
        return corrupt(r, "the last revision %" PRIu64 " is past the last applied index %" PRIu64,
                       kv->rev, kv->last_applied);
    if (rc == RK_OK)
        rc = read_pairs(r, kv);
    uint32_t max = 0, count = 0;
    if (rc == RK_OK)
        rc = read_sessions_head(r, &max, &count);
    if (rc != RK_OK)
        return rc;
    struct kv_sessions *table = kv_sessions_new(max);
    if (table == NULL)
        return RK_ERR_NOMEM;
    kv_sessions_free(kv->sessions);
    kv->sessions = table;
    raft_index_t prev_use = 0;
    for (uint32_t i = 0; i < count && rc == RK_OK; i++)
        rc = read_session(r, kv, &prev_use);
    return rc;
}

int kv_image_read(struct kv **out, uint32_t version, uint64_t len, kv_image_get_fn get,
                  void *ctx, char *err, size_t errlen)
{
    struct image_reader r = { .get = get, .ctx = ctx, .len = len, .err = err,
                              .errlen = errlen,
                              .pair_header = version == 3 ? PAIR_HEADER_BYTES_V3
                                                          : PAIR_HEADER_BYTES };
    if (version != 3 && version != KV_IMAGE_VERSION)
        return RK_ERR_INVAL;
    struct kv *kv = kv_new();
    if (kv == NULL)
        return RK_ERR_NOMEM;
    int rc = read_image(&r, kv);
    free(r.scratch);
    if (rc == RK_ERR_NOMEM && err != NULL && errlen > 0)
        snprintf(err, errlen, "out of memory");
    if (rc != RK_OK) {
        kv_free(kv);
        return rc;
    }
    *out = kv;
    return RK_OK;
}
