/* tests/sim/sim_snap.c - snapshots (Raft paper §7, Figure 13): nodes snapshot and compact
 * as the server does, leaders' InstallSnapshot chunks are read from their snapshot, and
 * followers write, verify and install what they are sent. A snapshot carries the
 * configuration in effect at its index (thesis §4.1), as the server's does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "sim_internal.h"

/* A snapshot image stands for the committed log prefix it covers, so loading one means
 * replaying it into a fresh state machine (server/kv). Layout:
 *   u32 conf_len | the configuration as text (common/membership.h), then
 *   n x (u64 term | u8 type | u64 client_id | u64 seq | u64 rev | u64 ttl_ms | u32 key_len
 *   | u32 val_len | key | value), then u64 n | u64 last term | u64 FNV-1a of everything before it. */

typedef unsigned long long ull;

#define SNAP_TRAILER 24
#define SNAP_ENTRY_HEAD 49
#define SNAP_CONF_HEAD 4

void sim_snap_free(struct sim_snapshot *sn)
{
    free(sn->data);
    memset(sn, 0, sizeof(*sn));
}

static void sim_snap_put(uint8_t **p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *(*p)++ = (uint8_t)(v >> (8 * i));
}

static uint64_t sim_snap_get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t sim_snap_checksum(const uint8_t *data, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ data[i]) * 0x100000001b3ULL;
    return h;
}

/* Where an image's entries start (after its configuration), or 0 if it has none. */
static size_t sim_snap_entries_at(const uint8_t *data, size_t len)
{
    if (len < SNAP_TRAILER + SNAP_CONF_HEAD)
        return 0;
    uint64_t conf_len = sim_snap_get(data, SNAP_CONF_HEAD);
    return conf_len <= len - SNAP_TRAILER - SNAP_CONF_HEAD ? SNAP_CONF_HEAD + conf_len : 0;
}

/* The configuration at index to, as text: malloc'ed, its length in *len. */
static char *sim_snap_conf_text(const struct raft *r, raft_index_t to, size_t *len)
{
    char *text = malloc(MEMBERSHIP_TEXT_MAX);
    if (text == NULL)
        abort();
    int n = membership_encode(raft_membership_at(r, to), text, MEMBERSHIP_TEXT_MAX);
    if (n < 0)
        abort(); /* MEMBERSHIP_TEXT_MAX always fits */
    *len = (size_t)n;
    return text;
}

/* out := the configuration at to, base's entries, then r's entries base->index + 1 .. to. */
bool sim_snap_build(const struct sim_snapshot *base, const struct raft *r, raft_index_t to,
                    struct sim_snapshot *out)
{
    size_t from = sim_snap_entries_at(base->data, base->len);
    size_t body = base->len >= SNAP_TRAILER && from > 0 ? base->len - SNAP_TRAILER - from : 0;
    size_t conf_len, len = body;
    for (raft_index_t i = base->index + 1; i <= to; i++) {
        const struct raft_entry *e = raft_entry_at(r, i);
        if (e == NULL)
            return false;
        len += SNAP_ENTRY_HEAD + e->key_len + e->val_len;
    }
    char *conf = sim_snap_conf_text(r, to, &conf_len);
    len += SNAP_CONF_HEAD + conf_len;
    uint8_t *data = malloc(len + SNAP_TRAILER);
    if (data == NULL)
        abort();
    uint8_t *p = data;
    sim_snap_put(&p, conf_len, SNAP_CONF_HEAD);
    memcpy(p, conf, conf_len);
    p += conf_len;
    free(conf);
    if (body > 0)
        memcpy(p, base->data + from, body);
    p += body;
    raft_term_t last_term = base->term;
    for (raft_index_t i = base->index + 1; i <= to; i++) {
        const struct raft_entry *e = raft_entry_at(r, i);
        sim_snap_put(&p, e->term, 8);
        sim_snap_put(&p, e->type, 1);
        sim_snap_put(&p, e->client_id, 8);
        sim_snap_put(&p, e->seq, 8);
        sim_snap_put(&p, e->rev, 8);
        sim_snap_put(&p, e->ttl_ms, 8);
        sim_snap_put(&p, e->key_len, 4);
        sim_snap_put(&p, e->val_len, 4);
        memcpy(p, e->key, e->key_len);
        p += e->key_len;
        memcpy(p, e->val, e->val_len);
        p += e->val_len;
        last_term = e->term;
    }
    sim_snap_put(&p, to, 8);
    sim_snap_put(&p, last_term, 8);
    sim_snap_put(&p, sim_snap_checksum(data, len + 16), 8);
    *out = (struct sim_snapshot){ .index = to, .term = last_term, .data = data,
                                  .len = len + SNAP_TRAILER };
    return true;
}

/* Walks the image, calling fn(ctx, index, entry) for each entry (fn may be NULL).
 * False if it is not a whole, intact image of (index, term). */
bool sim_snap_decode(const uint8_t *data, size_t len, raft_index_t index, raft_term_t term,
                     bool (*fn)(void *ctx, raft_index_t i, const struct raft_entry *e), void *ctx)
{
    if (len < SNAP_TRAILER)
        return false;
    size_t body = len - SNAP_TRAILER;
    if (sim_snap_get(data + body, 8) != index || sim_snap_get(data + body + 8, 8) != term ||
        sim_snap_get(data + body + 16, 8) != sim_snap_checksum(data, body + 16))
        return false;
    size_t off = sim_snap_entries_at(data, len);
    if (off == 0)
        return false;
    raft_index_t n = 0;
    raft_term_t last_term = 0;
    while (off < body) {
        if (body - off < SNAP_ENTRY_HEAD)
            return false;
        const uint8_t *h = data + off;
        struct raft_entry e = { .term = sim_snap_get(h, 8), .type = h[8],
                                .client_id = sim_snap_get(h + 9, 8), .seq = sim_snap_get(h + 17, 8),
                                .rev = sim_snap_get(h + 25, 8),
                                .ttl_ms = sim_snap_get(h + 33, 8),
                                .key_len = (uint32_t)sim_snap_get(h + 41, 4),
                                .val_len = (uint32_t)sim_snap_get(h + 45, 4) };
        off += SNAP_ENTRY_HEAD;
        if (body - off < (size_t)e.key_len + e.val_len)
            return false;
        char *kv = malloc((size_t)e.key_len + e.val_len + 2);
        if (kv == NULL)
            abort();
        memcpy(kv, data + off, e.key_len);
        kv[e.key_len] = '\0';
        memcpy(kv + e.key_len + 1, data + off + e.key_len, e.val_len);
        kv[e.key_len + 1 + e.val_len] = '\0';
        e.key = kv;
        e.val = kv + e.key_len + 1;
        off += (size_t)e.key_len + e.val_len;
        n++;
        bool go_on = fn == NULL || fn(ctx, n, &e);
        last_term = e.term;
        free(kv);
        if (!go_on)
            return false;
    }
    return n == index && (index == 0 || last_term == term);
}

static bool sim_snap_apply_one(void *ctx, raft_index_t i, const struct raft_entry *e)
{
    return kv_apply(ctx, i, e) >= 0;
}

bool sim_snap_conf(const struct sim_snapshot *sn, struct membership *out)
{
    char err[160];
    size_t from = sim_snap_entries_at(sn->data, sn->len);
    return sn->index > 0 && from > 0 &&
           membership_decode((const char *)sn->data + SNAP_CONF_HEAD, from - SNAP_CONF_HEAD,
                             out, err, sizeof(err)) == RK_OK;
}

/* A state machine as of the snapshot (NULL if the image is bad). */
struct kv *sim_snap_load_kv(const struct sim_snapshot *sn)
{
    struct kv *kv = kv_new();
    if (kv == NULL)
        abort();
    if (sn->index > 0 &&
        !sim_snap_decode(sn->data, sn->len, sn->index, sn->term, sim_snap_apply_one, kv)) {
        kv_free(kv);
        return NULL;
    }
    return kv;
}

/* ---- taking snapshots ------------------------------------------------------------ */

/* As the server's snapshotter: every snap_every applied entries, a durable snapshot of
 * the state machine at the applied index, then the log compacted behind it (keeping up
 * to snap_lag entries, so slow followers can still be sent entries). */
void sim_snap_maybe_take(struct sim *s, struct sim_node *n)
{
    struct sim_disk *d = &n->disk;
    if (s->p.snap_every == 0 || n->applied < d->snap.index + s->p.snap_every)
        return;
    /* A server that joined learns the configuration only from the first configuration
     * entry it receives: of the log before it, it knows no configuration, and a snapshot
     * there would carry none (raft_membership_at answers an empty one). Wait for later. */
    if (raft_membership_at(n->raft, n->applied)->n == 0)
        return;
    struct sim_snapshot next;
    if (!sim_snap_build(&d->snap, n->raft, n->applied, &next))
        return; /* entries it needs were compacted: cannot happen, snapshots come first */
    sim_check_snapshot(s, n, &next);
    sim_snap_free(&d->snap);
    d->snap = next;
    raft_snapshot_saved(n->raft, next.index, next.term);
    uint64_t lag = sim_below(s, s->p.snap_lag + 1ull);
    raft_compact(n->raft, next.index > lag ? next.index - lag : 0);
    raft_index_t compacted = raft_first_index(n->raft) - 1;
    sim_disk_compact(d, compacted);
    sim_trace_text(s, n->id, "snapshot at %llu (term %llu, %zu bytes); log compacted to %llu",
                   (ull)next.index, (ull)next.term, next.len, (ull)compacted);
}

/* ---- the leader's chunks ------------------------------------------------------------ */

/* Fills an InstallSnapshot's chunk from the sender's snapshot named by snap_index, as the
 * server's encoder does. False if that snapshot is gone (a newer one replaced it). */
bool sim_snap_fill_chunk(struct sim *s, int from, struct raft_msg *m)
{
    const struct sim_snapshot *sn = &s->node[from].disk.snap;
    if (sn->index != m->snap_index || sn->term != m->snap_term || m->snap_offset > sn->len)
        return false;
    size_t chunk = s->p.snap_chunk;
    if (s->p.snap_max_chunks != 0 && chunk < sn->len / s->p.snap_max_chunks)
        chunk = sn->len / s->p.snap_max_chunks; /* a transfer takes at most so many rounds */
    size_t left = sn->len - m->snap_offset;
    size_t len = left < chunk ? left : chunk;
    m->snap_data = NULL;
    m->snap_len = (uint32_t)len;
    m->snap_done = m->snap_offset + len == sn->len;
    if (len > 0) {
        m->snap_data = malloc(len);
        if (m->snap_data == NULL)
            abort();
        memcpy(m->snap_data, sn->data + m->snap_offset, len);
    }
    return true;
}

/* ---- the follower's side ------------------------------------------------------------ */

/* Writes the Ready's chunks to the incoming snapshot file, in order; after the last one,
 * verifies the image and makes it the node's durable snapshot (installed after
 * raft_ready_done, see sim_snap_install). */
void sim_snap_write_chunks(struct sim *s, struct sim_node *n, const struct raft_ready *rd)
{
    for (uint32_t i = 0; i < rd->n_snap_chunks && !s->failed; i++) {
        const struct raft_snap_chunk *c = &rd->snap_chunks[i];
        struct sim_incoming *in = &n->incoming;
        if (c->offset == 0) {
            free(in->data);
            *in = (struct sim_incoming){ .index = c->index, .term = c->term };
        } else if (in->index != c->index || in->term != c->term || in->len != c->offset) {
            sim_fail(s, "Ready Contract", "n%d is handed chunk %llu+%u of snapshot %llu, but its "
                     "file holds %zu bytes of snapshot %llu", n->id, (ull)c->offset, c->len,
                     (ull)c->index, in->len, (ull)in->index);
            return;
        }
        if (in->len + c->len > in->cap) {
            in->cap = (in->len + c->len) * 2;
            in->data = realloc(in->data, in->cap);
            if (in->data == NULL)
                abort();
        }
        if (c->len > 0)
            memcpy(in->data + in->len, c->data, c->len);
        in->len += c->len;
        if (c->done)
            in->complete = true;
    }
}

/* The last chunk is written: verify, keep as the node's snapshot, tell the core, and
 * load the state machine from it if the core says so (Figure 13, steps 5-8). As the
 * server's io thread, this runs before the batch's messages leave. */
void sim_snap_install(struct sim *s, struct sim_node *n)
{
    struct sim_incoming in = n->incoming;
    memset(&n->incoming, 0, sizeof(n->incoming));
    struct sim_snapshot sn = { .index = in.index, .term = in.term, .data = in.data, .len = in.len };
    bool ok = sim_snap_decode(sn.data, sn.len, sn.index, sn.term, NULL, NULL);
    if (!ok)
        sim_fail(s, "Snapshot Transfer", "n%d assembled snapshot %llu (term %llu, %zu bytes) "
                 "that is not the leader's image", n->id, (ull)sn.index, (ull)sn.term, sn.len);
    else
        sim_check_snapshot(s, n, &sn);
    struct membership *ms = malloc(sizeof(*ms));
    if (ms == NULL)
        abort();
    bool conf = ok && sim_snap_conf(&sn, ms); /* Figure 13 and thesis §4.1: its configuration */
    bool load = raft_snapshot_installed(n->raft, s->now, sn.index, sn.term, ok, conf ? ms : NULL);
    free(ms);
    sim_trace_text(s, n->id, "snapshot %llu (term %llu) received: %s", (ull)sn.index, (ull)sn.term,
                   load ? "installed" : "not needed");
    if (!ok || !load || sn.index <= n->disk.snap.index) {
        sim_snap_free(&sn);
        return;
    }
    sim_snap_free(&n->disk.snap);
    n->disk.snap = sn;
    struct kv *kv = sim_snap_load_kv(&sn);
    if (kv == NULL)
        abort(); /* decoded above */
    kv_free(n->kv);
    n->kv = kv;
    kv_set_now(n->kv, sim_node_clock(s, n)); /* its keys' deadlines count from now */
    sim_watch_attach(n);
    n->applied = sn.index;
    sim_client_drop_up_to(s, n->id, sn.index);
    sim_check_loaded_state(s, n);
    sim_check_expired_gone(s, n, 1);
}
