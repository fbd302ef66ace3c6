/* common/raft_msg.c - allocation helpers for Raft entries and messages (see raft_msg.h). */
#include "raft_msg.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

struct raft_entry_bytes {
    atomic_uint refs;
    char data[];
};

int raft_entry_alloc(struct raft_entry *e, size_t size)
{
    struct raft_entry_bytes *b = calloc(1, sizeof(*b) + size);
    if (b == NULL)
        return RK_ERR_NOMEM;
    atomic_init(&b->refs, 1);
    e->bytes = b;
    e->key = e->val = b->data;
    return RK_OK;
}

int raft_entry_init(struct raft_entry *e, raft_term_t term, uint8_t type,
                    const char *key, uint32_t key_len, const char *val, uint32_t val_len)
{
    if (raft_entry_alloc(e, (size_t)key_len + val_len + 2) != RK_OK)
        return RK_ERR_NOMEM;
    char *buf = e->bytes->data;
    if (key_len > 0)
        memcpy(buf, key, key_len);
    if (val_len > 0)
        memcpy(buf + key_len + 1, val, val_len);
    e->term = term;
    e->type = type;
    e->client_id = 0;
    e->seq = 0;
    e->rev = 0;
    e->ttl_ms = 0;
    e->key_len = key_len;
    e->val_len = val_len;
    e->key = buf;
    e->val = buf + key_len + 1;
    return RK_OK;
}

int raft_entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
    if (src->bytes != NULL) {
        atomic_fetch_add_explicit(&src->bytes->refs, 1, memory_order_relaxed);
        *dst = *src;
        return RK_OK;
    }
    int rc = raft_entry_init(dst, src->term, src->type, src->key, src->key_len,
                             src->val, src->val_len);
    dst->client_id = src->client_id;
    dst->seq = src->seq;
    dst->rev = src->rev;
    dst->ttl_ms = src->ttl_ms;
    return rc;
}

void raft_entry_free(struct raft_entry *e)
{
    /* acq_rel: the last owner sees every write made before the others let go */
    if (e->bytes != NULL &&
        atomic_fetch_sub_explicit(&e->bytes->refs, 1, memory_order_acq_rel) == 1)
        free(e->bytes);
    e->bytes = NULL;
    e->key = NULL;
    e->val = NULL;
    e->key_len = e->val_len = 0;
}

bool raft_entry_has_rev(uint8_t type)
{
    return type == RAFT_ENTRY_CAS || type == RAFT_ENTRY_CAD || type == RAFT_ENTRY_CAS_TTL;
}

bool raft_entry_has_ttl(uint8_t type)
{
    return type == RAFT_ENTRY_SETEX || type == RAFT_ENTRY_EXPIRE || type == RAFT_ENTRY_CAS_TTL;
}

const char *raft_entry_type_name(uint8_t type)
{
    switch (type) {
    case RAFT_ENTRY_NOOP: return "noop";
    case RAFT_ENTRY_SET: return "set";
    case RAFT_ENTRY_DELETE: return "delete";
    case RAFT_ENTRY_REGISTER: return "register";
    case RAFT_ENTRY_CONFIG: return "config";
    case RAFT_ENTRY_CAS: return "cas";
    case RAFT_ENTRY_CAD: return "cad";
    case RAFT_ENTRY_SETEX: return "setex";
    case RAFT_ENTRY_EXPIRE: return "expire";
    case RAFT_ENTRY_CAS_TTL: return "cas_ttl";
    case RAFT_ENTRY_EXPIRED: return "expired";
    }
    return NULL;
}

void raft_msg_free_entries(struct raft_msg *m)
{
    for (uint32_t i = 0; i < m->n_entries; i++)
        raft_entry_free(&m->entries[i]);
    free(m->entries);
    m->entries = NULL;
    m->n_entries = 0;
    free(m->snap_data);
    m->snap_data = NULL;
    m->snap_len = 0;
}

int raft_msg_copy(struct raft_msg *dst, const struct raft_msg *src)
{
    *dst = *src;
    dst->entries = NULL;
    dst->n_entries = 0;
    dst->snap_data = NULL;
    dst->snap_len = 0;
    if (src->snap_len > 0) {
        dst->snap_data = malloc(src->snap_len);
        if (dst->snap_data == NULL)
            return RK_ERR_NOMEM;
        memcpy(dst->snap_data, src->snap_data, src->snap_len);
        dst->snap_len = src->snap_len;
    }
    if (src->n_entries == 0)
        return RK_OK;
    dst->entries = calloc(src->n_entries, sizeof(*dst->entries));
    if (dst->entries == NULL)
        return RK_ERR_NOMEM;
    for (uint32_t i = 0; i < src->n_entries; i++) {
        if (raft_entry_copy(&dst->entries[i], &src->entries[i]) != RK_OK) {
            raft_msg_free_entries(dst);
            return RK_ERR_NOMEM;
        }
        dst->n_entries = i + 1;
    }
    return RK_OK;
}

const char *raft_msg_type_name(uint8_t type)
{
    switch (type) {
    case RAFT_MSG_VOTE: return "vote";
    case RAFT_MSG_VOTE_RESP: return "vote_resp";
    case RAFT_MSG_APPEND: return "append";
    case RAFT_MSG_APPEND_RESP: return "append_resp";
    case RAFT_MSG_PREVOTE: return "prevote";
    case RAFT_MSG_PREVOTE_RESP: return "prevote_resp";
    case RAFT_MSG_SNAPSHOT: return "snapshot";
    case RAFT_MSG_SNAPSHOT_RESP: return "snapshot_resp";
    case RAFT_MSG_TIMEOUT_NOW: return "timeout_now";
    }
    return "unknown";
}
