/* tests/sim/sim_trace.c - the simulator's trace: one record per event, kept in a ring for
 * failure reports, folded into a hash (same seed, same hash), and formatted as readable
 * lines ("  12345ms n2 recv append from n0 term=3 prev=17/2 n=4 commit=15") on demand. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

enum { DROP_LOST = 1, DROP_PARTITION, DROP_DOWN, DROP_FILTERED, DROP_REPLACED };

void sim_trace_init(struct sim_trace *t, void (*fn)(void *, const char *), void *ctx)
{
    memset(t, 0, sizeof(*t));
    t->hash = 0xcbf29ce484222325ULL;
    t->fn = fn;
    t->ctx = ctx;
}

void sim_trace_mix(struct sim_trace *t, uint64_t v)
{
    uint64_t h = (t->hash ^ v) * 0x100000001b3ULL;
    t->hash = h ^ (h >> 29);
}

static struct sim_rec *sim_trace_slot(struct sim *s, int node, uint8_t kind)
{
    struct sim_rec *r = &s->tr.ring[s->tr.count % SIM_TRACE_RING];
    memset(r, 0, offsetof(struct sim_rec, text));
    r->text[0] = '\0';
    r->t = s->now;
    r->node = (int16_t)node;
    r->kind = kind;
    return r;
}

/* Hashes the record and hands the formatted line to the trace callback, if any. */
static void sim_trace_commit(struct sim *s, const struct sim_rec *r)
{
    struct sim_trace *t = &s->tr;
    t->count++;
    sim_trace_mix(t, r->t);
    sim_trace_mix(t, ((uint64_t)r->kind << 48) | ((uint64_t)r->sub << 32) |
                  ((uint64_t)(uint16_t)r->node << 16) | (uint16_t)r->peer);
    for (int i = 0; i < 9; i++)
        sim_trace_mix(t, r->a[i]);
    for (const char *c = r->text; *c; c++)
        sim_trace_mix(t, (unsigned char)*c);
    if (t->fn != NULL) {
        char line[256];
        sim_trace_format(r, line, sizeof(line));
        t->fn(t->ctx, line);
    }
}

void sim_trace_recv(struct sim *s, int to, const struct raft_msg *m)
{
    struct sim_rec *r = sim_trace_slot(s, to, REC_RECV);
    r->sub = m->type;
    r->peer = (int16_t)m->from;
    r->a[0] = m->term;
    switch (m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        r->a[1] = m->last_log_index;
        r->a[2] = m->last_log_term;
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        r->a[5] = m->vote_granted;
        break;
    case RAFT_MSG_APPEND:
        r->a[1] = m->prev_log_index;
        r->a[2] = m->prev_log_term;
        r->a[3] = m->n_entries;
        r->a[4] = m->leader_commit;
        break;
    case RAFT_MSG_APPEND_RESP:
        r->a[1] = m->match_index;
        r->a[2] = m->reject_index;
        r->a[3] = m->conflict_index;
        r->a[4] = m->conflict_term;
        r->a[5] = m->success;
        break;
    case RAFT_MSG_SNAPSHOT:
        r->a[1] = m->snap_index;
        r->a[2] = m->snap_term;
        r->a[3] = m->snap_offset;
        r->a[4] = m->snap_len;
        r->a[5] = m->snap_done;
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        r->a[1] = m->match_index;
        r->a[2] = m->snap_index;
        r->a[3] = m->snap_offset;
        r->a[5] = m->success;
        break;
    default:
        break;
    }
    sim_trace_commit(s, r);
}

void sim_trace_drop(struct sim *s, int to, const struct raft_msg *m, const char *why)
{
    struct sim_rec *r = sim_trace_slot(s, to, REC_DROP);
    r->sub = m->type;
    r->peer = (int16_t)m->from;
    r->a[0] = m->term;
    r->a[1] = !strcmp(why, "lost") ? DROP_LOST : !strcmp(why, "partition") ? DROP_PARTITION
            : !strcmp(why, "down") ? DROP_DOWN : !strcmp(why, "replaced") ? DROP_REPLACED
            : DROP_FILTERED;
    sim_trace_commit(s, r);
}

void sim_trace_sync(struct sim *s, int node, const struct raft_ready *rd)
{
    struct sim_rec *r = sim_trace_slot(s, node, REC_SYNC);
    r->a[0] = rd->hard_state_changed;
    r->a[1] = rd->term;
    r->a[2] = (uint64_t)(rd->voted_for + 1);
    r->a[3] = rd->truncate_from;
    r->a[4] = rd->first_index;
    r->a[5] = rd->n_entries;
    r->a[6] = rd->n_msgs;
    r->a[7] = rd->reset_log_to;
    r->a[8] = rd->n_snap_chunks;
    sim_trace_commit(s, r);
}

void sim_trace_role(struct sim *s, const struct sim_node *n)
{
    struct sim_rec *r = sim_trace_slot(s, n->id, REC_ROLE);
    r->sub = (uint8_t)raft_role(n->raft);
    r->a[0] = raft_term(n->raft);
    r->a[1] = raft_last_index(n->raft);
    r->a[2] = raft_last_term(n->raft);
    r->a[3] = raft_commit_index(n->raft);
    r->a[4] = (uint64_t)(raft_voted_for(n->raft) + 1);
    sim_trace_commit(s, r);
}

void sim_trace_apply(struct sim *s, int node, raft_index_t from, raft_index_t to)
{
    struct sim_rec *r = sim_trace_slot(s, node, REC_APPLY);
    r->a[0] = from;
    r->a[1] = to;
    sim_trace_commit(s, r);
}

void sim_trace_text(struct sim *s, int node, const char *fmt, ...)
{
    struct sim_rec *r = sim_trace_slot(s, node, REC_TEXT);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
    sim_trace_commit(s, r);
}

/* ---- formatting --------------------------------------------------------------------- */

typedef unsigned long long ull;

static int format_recv(const struct sim_rec *r, char *buf, size_t len)
{
    const char *type = raft_msg_type_name(r->sub);
    switch (r->sub) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        return snprintf(buf, len, "recv %s from n%d term=%llu last=%llu/%llu", type, r->peer,
                        (ull)r->a[0], (ull)r->a[1], (ull)r->a[2]);
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        return snprintf(buf, len, "recv %s from n%d term=%llu %s", type, r->peer, (ull)r->a[0],
                        r->a[5] ? "granted" : "denied");
    case RAFT_MSG_APPEND:
        return snprintf(buf, len, "recv %s from n%d term=%llu prev=%llu/%llu n=%llu commit=%llu",
                        type, r->peer, (ull)r->a[0], (ull)r->a[1], (ull)r->a[2], (ull)r->a[3],
                        (ull)r->a[4]);
    case RAFT_MSG_APPEND_RESP:
        if (r->a[5])
            return snprintf(buf, len, "recv %s from n%d term=%llu ok match=%llu", type, r->peer,
                            (ull)r->a[0], (ull)r->a[1]);
        return snprintf(buf, len, "recv %s from n%d term=%llu reject prev=%llu hint=%llu/%llu",
                        type, r->peer, (ull)r->a[0], (ull)r->a[2], (ull)r->a[3], (ull)r->a[4]);
    case RAFT_MSG_SNAPSHOT:
        return snprintf(buf, len,
                        "recv %s from n%d term=%llu snap=%llu/%llu offset=%llu len=%llu%s", type,
                        r->peer, (ull)r->a[0], (ull)r->a[1], (ull)r->a[2], (ull)r->a[3],
                        (ull)r->a[4], r->a[5] ? " done" : "");
    case RAFT_MSG_SNAPSHOT_RESP:
        if (r->a[5])
            return snprintf(buf, len, "recv %s from n%d term=%llu installed match=%llu", type,
                            r->peer, (ull)r->a[0], (ull)r->a[1]);
        return snprintf(buf, len, "recv %s from n%d term=%llu snap=%llu next=%llu", type,
                        r->peer, (ull)r->a[0], (ull)r->a[2], (ull)r->a[3]);
    }
    return snprintf(buf, len, "recv %s from n%d", type, r->peer);
}

static int format_sync(const struct sim_rec *r, char *buf, size_t len)
{
    int off = snprintf(buf, len, "sync");
    if (r->a[7] && off >= 0 && (size_t)off < len)
        off += snprintf(buf + off, len - (size_t)off, " reset>%llu", (ull)r->a[7]);
    if (r->a[0] && off >= 0 && (size_t)off < len) {
        if (r->a[2] == 0)
            off += snprintf(buf + off, len - (size_t)off, " hs=%llu/-", (ull)r->a[1]);
        else
            off += snprintf(buf + off, len - (size_t)off, " hs=%llu/n%llu", (ull)r->a[1],
                            (ull)r->a[2] - 1);
    }
    if (r->a[3] && off >= 0 && (size_t)off < len)
        off += snprintf(buf + off, len - (size_t)off, " trunc>=%llu", (ull)r->a[3]);
    if (r->a[5] && off >= 0 && (size_t)off < len)
        off += snprintf(buf + off, len - (size_t)off, " append=%llu..%llu", (ull)r->a[4],
                        (ull)(r->a[4] + r->a[5] - 1));
    if (r->a[8] && off >= 0 && (size_t)off < len)
        off += snprintf(buf + off, len - (size_t)off, " chunks=%llu", (ull)r->a[8]);
    if (off >= 0 && (size_t)off < len)
        off += snprintf(buf + off, len - (size_t)off, " msgs=%llu", (ull)r->a[6]);
    return off;
}

static int format_role(const struct sim_rec *r, char *buf, size_t len)
{
    int off = snprintf(buf, len, "%s term=%llu last=%llu/%llu commit=%llu",
                       raft_role_name((enum raft_role)r->sub), (ull)r->a[0], (ull)r->a[1],
                       (ull)r->a[2], (ull)r->a[3]);
    if (r->sub != RAFT_LEADER && r->a[4] != 0 && off >= 0 && (size_t)off < len)
        off += snprintf(buf + off, len - (size_t)off, " voted=n%llu", (ull)r->a[4] - 1);
    return off;
}

static const char *drop_reason(uint64_t code)
{
    switch (code) {
    case DROP_LOST: return "lost";
    case DROP_PARTITION: return "partition";
    case DROP_DOWN: return "node down";
    case DROP_REPLACED: return "a server replaced";
    }
    return "filtered";
}

void sim_trace_format(const struct sim_rec *r, char *buf, size_t len)
{
    int off;
    if (r->node >= 0)
        off = snprintf(buf, len, "%7llums n%d ", (ull)r->t, r->node);
    else
        off = snprintf(buf, len, "%7llums -- ", (ull)r->t);
    if (off < 0 || (size_t)off >= len)
        return;
    buf += off;
    len -= (size_t)off;
    switch (r->kind) {
    case REC_RECV: format_recv(r, buf, len); break;
    case REC_DROP:
        snprintf(buf, len, "drop %s from n%d term=%llu (%s)", raft_msg_type_name(r->sub),
                 r->peer, (ull)r->a[0], drop_reason(r->a[1]));
        break;
    case REC_SYNC: format_sync(r, buf, len); break;
    case REC_ROLE: format_role(r, buf, len); break;
    case REC_APPLY:
        if (r->a[0] == r->a[1])
            snprintf(buf, len, "apply %llu", (ull)r->a[0]);
        else
            snprintf(buf, len, "apply %llu..%llu", (ull)r->a[0], (ull)r->a[1]);
        break;
    default: snprintf(buf, len, "%s", r->text); break;
    }
}

char *sim_trace_ring_tail(const struct sim_trace *t, int n)
{
    uint64_t kept = t->count < SIM_TRACE_RING ? t->count : SIM_TRACE_RING;
    if ((uint64_t)n > kept)
        n = (int)kept;
    size_t cap = (size_t)n * 260 + 1;
    char *out = malloc(cap);
    if (out == NULL)
        abort();
    size_t off = 0;
    out[0] = '\0';
    for (uint64_t i = t->count - (uint64_t)n; i < t->count; i++) {
        char line[256];
        sim_trace_format(&t->ring[i % SIM_TRACE_RING], line, sizeof(line));
        off += (size_t)snprintf(out + off, cap - off, "%s\n", line);
    }
    return out;
}
