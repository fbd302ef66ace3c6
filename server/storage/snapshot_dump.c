/* server/storage/snapshot_dump.c - `raft_server --dump-snapshot FILE`: a verified snapshot
 * in human-readable form: its header, every pair sorted by key (escaped like the log,
 * see storage.h) and every client session. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "../../common/grow.h"
#include "../kv/kv.h"
#include "../kv/kv_image.h"
#include "snapshot.h"

struct pair_ref {
    const char *key, *val;
    uint32_t key_len, val_len;
};

struct pair_list {
    struct pair_ref *items;
    size_t n, cap;
};

/* "\"...\"" with the escapes of the log file (storage.h). */
static void print_quoted(FILE *out, const char *bytes, uint32_t len)
{
    fputc('"', out);
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        switch (c) {
        case '\\': fputs("\\\\", out); break;
        case '"': fputs("\\\"", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (c < 0x20 || c >= 0x7f)
                fprintf(out, "\\x%02x", c);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
}

static int collect_pair(void *ctx, const char *key, uint32_t key_len, const char *val,
                        uint32_t val_len)
{
    struct pair_list *l = ctx;
    if (rk_grow(&l->items, &l->cap, l->n + 1, sizeof(*l->items), 1024) != RK_OK)
        return RK_ERR_NOMEM;
    l->items[l->n++] = (struct pair_ref){ key, val, key_len, val_len };
    return 0;
}

/* Byte order, shorter first on a common prefix. */
static int compare_keys(const void *a, const void *b)
{
    const struct pair_ref *x = a, *y = b;
    uint32_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = n > 0 ? memcmp(x->key, y->key, n) : 0;
    if (c != 0)
        return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static const char *result_name(int result)
{
    switch (result) {
    case KV_APPLIED: return "applied";
    case KV_ABSENT: return "absent";
    case KV_FAILED: return "failed";
    }
    return "none";
}

static int print_session(void *ctx, uint64_t client_id, const struct kv_session_info *s)
{
    fprintf(ctx, "session client=%" PRIu64 " last_seq=%" PRIu64 " last_result=%s last_use=%"
            PRIu64 "\n", client_id, s->last_seq, result_name(s->last_result), s->last_use);
    return 0;
}

static void print_header(FILE *out, const char *path, const struct snapshot_meta *m,
                         const struct kv *kv)
{
    fprintf(out, "snapshot %s\n", path);
    fprintf(out, "version %u\n", (unsigned)m->version);
    fprintf(out, "index %" PRIu64 "\nterm %" PRIu64 "\n", m->index, m->term);
    fprintf(out, "configuration");
    for (int i = 0; i < m->conf.n; i++)
        fprintf(out, " %s", m->conf.m[i].name);
    fprintf(out, "\n");
    for (int i = 0; m->version > 1 && i < m->conf.n; i++) {
        const struct member *s = &m->conf.m[i];
        fprintf(out, "member %d %s %s %s %u\n", s->id, s->role == MEMBER_VOTER ? "voter"
                : "learner", s->name, s->host, (unsigned)s->port);
    }
    fprintf(out, "image_bytes %" PRIu64 "\nfile_bytes %" PRIu64 "\ncrc32 %08" PRIx32
            " ok\n", m->image_len, m->file_len, m->crc);
    fprintf(out, "last_applied %" PRIu64 "\npairs %zu\nsessions %zu\n", kv_last_applied(kv),
            kv_count(kv), kv_session_count(kv));
}

/* A key with a deadline gets a line of its own after its set line:
 * deadline "KEY" ttl_ms=N set_at=INDEX. */
static void print_deadline(FILE *out, const struct kv *kv, const struct pair_ref *p)
{
    uint64_t ttl_ms, set_index;
    if (!kv_ttl_get(kv, p->key, p->key_len, &ttl_ms, &set_index))
        return;
    fputs("deadline ", out);
    print_quoted(out, p->key, p->key_len);
    fprintf(out, " ttl_ms=%" PRIu64 " set_at=%" PRIu64 "\n", ttl_ms, set_index);
}

static int print_pairs(FILE *out, const struct kv *kv)
{
    struct pair_list l = { 0 };
    int rc = kv_visit_pairs(kv, collect_pair, &l);
    if (rc == RK_OK) {
        if (l.n > 1)
            qsort(l.items, l.n, sizeof(*l.items), compare_keys);
        for (size_t i = 0; i < l.n; i++) {
            fputs("set ", out);
            print_quoted(out, l.items[i].key, l.items[i].key_len);
            fputc(' ', out);
            print_quoted(out, l.items[i].val, l.items[i].val_len);
            fputc('\n', out);
            print_deadline(out, kv, &l.items[i]);
        }
    }
    free(l.items);
    return rc;
}

int snapshot_dump(const char *path, FILE *out, char *err, size_t errlen)
{
    struct snapshot_meta *m = malloc(sizeof(*m));
    if (m == NULL)
        return RK_ERR_NOMEM;
    struct kv *kv = NULL;
    int rc = snapshot_load(path, m, &kv, err, errlen);
    if (rc == RK_OK) {
        print_header(out, path, m, kv);
        rc = print_pairs(out, kv);
        if (rc == RK_OK)
            kv_visit_sessions(kv, print_session, out);
        if (rc != RK_OK)
            snprintf(err, errlen, "%s: out of memory", path);
    }
    if (rc == RK_OK && (fflush(out) != 0 || ferror(out)))
        rc = RK_ERR_IO;
    kv_free(kv);
    free(m);
    return rc;
}
