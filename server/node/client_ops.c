/* server/node/client_ops.c - client commands: SET/DELETE and REGISTER go through the log
 * and answer once applied, SET/DELETE within their client session (Raft thesis §6.3);
 * GET uses ReadIndex (thesis §6.4); STATUS answers from any role; a follower redirects
 * to the leader (Raft paper §8). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../kv/kv.h"
#include "node.h"

#define STATUS_LEN 512

int node_client_reply(struct proto_buf *out, uint8_t status, const char *body, uint32_t body_len)
{
    struct proto_client_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = status;
    resp.body = body;
    resp.body_len = body_len;
    return proto_encode_client_resp(out, &resp);
}

int node_client_error(struct proto_buf *out, const char *msg)
{
    return node_client_reply(out, PROTO_ST_ERR, msg, (uint32_t)strlen(msg));
}

/* Under mu: where the leader is, or empty fields if unknown. */
int node_client_redirect(struct node *n, struct proto_buf *out)
{
    struct proto_client_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = PROTO_ST_REDIRECT;
    int leader = raft_leader(n->raft);
    if (leader >= 0 && leader < REGISTRY_MAX_SERVERS && leader != raft_self(n->raft) &&
        n->peers[leader].known) {
        const struct node_peer_addr *a = &n->peers[leader].addr;
        snprintf(resp.leader_name, sizeof(resp.leader_name), "%s", a->name);
        snprintf(resp.leader_host, sizeof(resp.leader_host), "%s", a->host);
        resp.leader_port = a->port;
    }
    return proto_encode_client_resp(out, &resp);
}

/* Under mu: "name=S role=R term=N leader=S|none commit=N applied=N last=N snapshot=N
 * voters=N rev=N" (snapshot: the index of the last snapshot saved or installed, 0 if none;
 * role: leader, candidate, follower, or learner for a member that does not vote; voters:
 * of the configuration in effect; rev: the revision of the last change applied here).
 * Scripts parse these fields: new ones go at the end. */
static int reply_status(struct node *n, struct proto_buf *out)
{
    int leader = raft_leader(n->raft);
    const char *role = raft_is_learner(n->raft) ? "learner" : raft_role_name(raft_role(n->raft));
    char line[STATUS_LEN];
    int len = snprintf(line, sizeof(line),
                       "name=%s role=%s term=%" PRIu64 " leader=%s commit=%" PRIu64
                       " applied=%" PRIu64 " last=%" PRIu64 " snapshot=%" PRIu64 " voters=%d"
                       " rev=%" PRIu64,
                       n->name, role, raft_term(n->raft),
                       leader == RAFT_NO_NODE ? "none" : node_name_of(n, leader),
                       raft_commit_index(n->raft), n->applied, raft_last_index(n->raft),
                       raft_snapshot_index(n->raft),
                       membership_voters(raft_membership(n->raft, NULL)), kv_rev(n->kv));
    if (len < 0 || (size_t)len >= sizeof(line))
        return node_client_error(out, "status line too long");
    return node_client_reply(out, PROTO_ST_VALUE, line, (uint32_t)len);
}

/* REGISTER: the new session's client id is the index of its entry (thesis §6.3). */
static int reply_client_id(struct proto_buf *out, raft_index_t index)
{
    char body[PROTO_CLIENT_ID_MAX_DIGITS + 1];
    int len = proto_format_client_id(index, body);
    return node_client_reply(out, PROTO_ST_VALUE, body, (uint32_t)len);
}

/* An answer whose body is a revision in decimal. */
static int reply_rev(struct proto_buf *out, uint8_t status, uint64_t rev)
{
    char body[24];
    int len = snprintf(body, sizeof(body), "%" PRIu64, rev);
    return node_client_reply(out, status, body, (uint32_t)len);
}

static int write_result(struct proto_buf *out, uint8_t op, int wait_rc,
                        const struct node_waiter *w)
{
    if (wait_rc == RK_ERR_TIMEOUT)
        return node_client_error(out, "timed out waiting for commit, outcome unknown");
    if (wait_rc == RK_ERR_SHUTDOWN)
        return node_client_error(out, "server shutting down, outcome unknown");
    if (w->result != RK_OK)
        return node_client_error(out, rk_strerror(w->result));
    switch (w->kv_result) {
    case KV_SESSION_EXPIRED:
        return node_client_error(out, PROTO_ERR_SESSION_EXPIRED);
    case KV_STALE:
        return node_client_error(out, "stale request: this session already applied a "
                                      "later command");
    case KV_ABSENT:
        return node_client_reply(out, PROTO_ST_NIL, NULL, 0);
    case KV_FAILED: /* a compare that did not hold: the key's revision */
        return reply_rev(out, PROTO_ST_FAILED, w->kv_rev);
    }
    if (op == PROTO_OP_REGISTER)
        return reply_client_id(out, w->index);
    if (op == PROTO_OP_CAS || op == PROTO_OP_CAS_TTL)
        return reply_rev(out, PROTO_ST_OK, w->kv_rev); /* the new revision */
    return node_client_reply(out, PROTO_ST_OK, NULL, 0);
}

/* Whether the write may or may not have taken effect: we lost leadership, or gave up
 * waiting, before its entry was applied. */
static bool outcome_unknown(int wait_rc, const struct node_waiter *w)
{
    return wait_rc == RK_ERR_TIMEOUT || wait_rc == RK_ERR_SHUTDOWN ||
           (wait_rc == RK_OK && w->result == RK_ERR_LOST);
}

/* A write in a client session is answered from the session record if it was applied
 * already (thesis §6.3), so the client may simply send it again, to the next leader: we
 * answer with a redirect, which the client follows with the same sequence number. A
 * second REGISTER is harmless too. A write with no session gets "outcome unknown". */
static bool retry_is_safe(const struct proto_client_req *req)
{
    return req->op == PROTO_OP_REGISTER || req->client_id != 0;
}

static uint8_t entry_type_of(uint8_t op)
{
    switch (op) {
    case PROTO_OP_SET: return RAFT_ENTRY_SET;
    case PROTO_OP_CAS: return RAFT_ENTRY_CAS;
    case PROTO_OP_CAD: return RAFT_ENTRY_CAD;
    case PROTO_OP_SETEX: return RAFT_ENTRY_SETEX;
    case PROTO_OP_EXPIRE: return RAFT_ENTRY_EXPIRE;
    case PROTO_OP_CAS_TTL: return RAFT_ENTRY_CAS_TTL;
    default: return RAFT_ENTRY_DELETE;
    }
}

/* The log entry for a write request (its value checked already by invalid_reason): SET
 * with its value; SETEX "MS VALUE", EXPIRE "MS" and CAS_TTL "MS REV VALUE" give the
 * entry's ttl; CAS "REV VALUE" and CAD "REV" the revision they compare; each with its
 * session. Or a REGISTER. */
static struct raft_entry command_of(const struct proto_client_req *req)
{
    struct raft_entry cmd = { .key = "", .val = "" };
    if (req->op == PROTO_OP_REGISTER) {
        cmd.type = RAFT_ENTRY_REGISTER;
        return cmd;
    }
    cmd.type = entry_type_of(req->op);
    cmd.key = (char *)req->key;
    cmd.key_len = req->key_len;
    const char *rest = req->val;
    uint32_t rest_len = req->val_len;
    if (raft_entry_has_ttl(cmd.type))
        proto_parse_ttl(rest, rest_len, &cmd.ttl_ms, &rest, &rest_len);
    if (raft_entry_has_rev(cmd.type))
        proto_parse_rev(rest, rest_len, &cmd.rev, &rest, &rest_len);
    if (cmd.type != RAFT_ENTRY_DELETE && cmd.type != RAFT_ENTRY_CAD &&
        cmd.type != RAFT_ENTRY_EXPIRE) {
        cmd.val = (char *)rest;
        cmd.val_len = rest_len;
    }
    cmd.client_id = req->client_id;
    cmd.seq = req->seq;
    return cmd;
}

/* The answer to a request the core would not start (rc): where the leader is, if we no
 * longer are, or the error. Returns false (nothing to wait for). */
static bool not_started(struct node *n, int rc, struct proto_buf *out)
{
    if (rc == RK_ERR_NOTLEADER)
        node_client_redirect(n, out);
    else
        node_client_error(out, rk_strerror(rc));
    return false;
}

/* Under mu, as leader: appends the command (Raft paper §8); the answer comes once it is
 * applied (node_client_finish). false with the answer in out if it cannot start. */
static bool start_write(struct node *n, struct node_request *r, struct proto_buf *out,
                        struct node_outbox *ob)
{
    struct raft_entry cmd = command_of(&r->req);
    raft_index_t index = 0;
    raft_term_t term = 0;
    int rc = raft_propose_entry(n->raft, &cmd, &index, &term);
    r->w.kind = NODE_WAIT_WRITE;
    r->w.index = index;
    r->w.term = term;
    if (rc == RK_OK)
        node_waiter_add(n, &r->w); /* before after_step, so no completion is missed */
    node_after_step(n, ob);
    return rc == RK_OK || not_started(n, rc, out);
}

static int finish_write(struct node *n, const struct node_request *r, int wait_rc,
                        struct proto_buf *out)
{
    if (outcome_unknown(wait_rc, &r->w) && retry_is_safe(&r->req))
        return node_client_redirect(n, out);
    return write_result(out, r->req.op, wait_rc, &r->w);
}

static int page_pair(void *ctx, const char *key, uint32_t key_len, const char *val,
                     uint32_t val_len)
{
    return proto_page_add(ctx, key, key_len, val, val_len);
}

/* Under mu: a SCAN page as of the read index (copied into out before the lock goes): at
 * most LIMIT keys, cut once it holds PROTO_SCAN_PAGE_BYTES. */
static int reply_page(struct node *n, const struct proto_client_req *req, struct proto_buf *out)
{
    uint32_t limit, after_len;
    const char *after;
    proto_parse_scan(req->val, req->val_len, &limit, &after, &after_len); /* checked */
    struct proto_buf page = { 0 };
    bool more = false;
    int rc = proto_page_begin(&page, kv_rev(n->kv));
    if (rc == RK_OK) {
        kv_scan(n->kv, req->key, req->key_len, after, after_len, limit, PROTO_SCAN_PAGE_BYTES,
                page_pair, &page, &more);
        proto_page_end(&page, more);
        rc = node_client_reply(out, PROTO_ST_VALUE, (const char *)page.data,
                               (uint32_t)page.len);
    } else {
        rc = node_client_error(out, rk_strerror(rc));
    }
    proto_buf_free(&page);
    return rc;
}

/* Under mu: TTL, the seconds left to the key's deadline on this server's clock, rounded
 * up (0 once it passed and until the EXPIRED entry is applied), or -1 without one. */
static int reply_ttl(struct node *n, const struct proto_client_req *req, struct proto_buf *out)
{
    uint64_t left_ms;
    kv_set_now(n->kv, rk_clock_ms());
    if (!kv_ttl_left(n->kv, req->key, req->key_len, &left_ms))
        return node_client_reply(out, PROTO_ST_NIL, NULL, 0);
    char body[24];
    int len = left_ms == UINT64_MAX
                  ? snprintf(body, sizeof(body), "-1")
                  : snprintf(body, sizeof(body), "%" PRIu64, left_ms / 1000 + (left_ms % 1000 != 0));
    return node_client_reply(out, PROTO_ST_VALUE, body, (uint32_t)len);
}

/* Under mu: the value as of the read index (copied into out before the lock goes); for
 * REV, "REV VALUE"; for SCAN, a page; for TTL, the seconds left. */
static int reply_value(struct node *n, const struct proto_client_req *req, struct proto_buf *out)
{
    if (req->op == PROTO_OP_SCAN)
        return reply_page(n, req, out);
    if (req->op == PROTO_OP_TTL)
        return reply_ttl(n, req, out);
    uint32_t len = 0;
    uint64_t rev = 0;
    const char *val = kv_get_rev(n->kv, req->key, req->key_len, &len, &rev);
    if (val == NULL)
        return node_client_reply(out, PROTO_ST_NIL, NULL, 0);
    if (req->op != PROTO_OP_REV)
        return node_client_reply(out, PROTO_ST_VALUE, val, len);
    char head[24];
    int head_len = snprintf(head, sizeof(head), "%" PRIu64 " ", rev);
    char *body = malloc((size_t)head_len + len);
    if (body == NULL)
        return node_client_error(out, rk_strerror(RK_ERR_NOMEM));
    memcpy(body, head, (size_t)head_len);
    memcpy(body + head_len, val, len);
    int rc = node_client_reply(out, PROTO_ST_VALUE, body, (uint32_t)head_len + len);
    free(body);
    return rc;
}

/* Under mu, as leader: a linearizable read through ReadIndex (Raft thesis §6.4). */
static bool start_get(struct node *n, struct node_request *r, struct proto_buf *out,
                      struct node_outbox *ob)
{
    r->w.kind = NODE_WAIT_READ;
    r->w.read_id = n->next_read_id++;
    node_waiter_add(n, &r->w); /* the answer may come inside raft_read_index */
    int rc = raft_read_index(n->raft, r->w.read_id);
    node_after_step(n, ob);
    if (rc == RK_OK)
        return true;
    node_waiter_remove(n, &r->w);
    return not_started(n, rc, out);
}

static int finish_get(struct node *n, const struct node_request *r, int wait_rc,
                      struct proto_buf *out)
{
    if (wait_rc == RK_OK && r->w.result == RK_OK)
        return reply_value(n, &r->req, out);
    /* A read changes nothing, so whatever went wrong, the client may try the leader
     * (or whoever is leader next) again. */
    if (wait_rc == RK_ERR_TIMEOUT || wait_rc == RK_ERR_SHUTDOWN ||
        (wait_rc == RK_OK && r->w.result == RK_ERR_NOTLEADER))
        return node_client_redirect(n, out);
    return node_client_error(out, rk_strerror(wait_rc != RK_OK ? wait_rc : r->w.result));
}

/* The commands answered from the state machine through ReadIndex (Raft thesis §6.4). */
static bool is_read(uint8_t op)
{
    return proto_op_is_read(op);
}

/* The commands whose key must be a word (DELETE and CAD may name a key stored before the
 * rule, to remove it). */
static bool names_new_key(uint8_t op)
{
    return op != PROTO_OP_DELETE && op != PROTO_OP_CAD;
}

/* A SCAN value "LIMIT [AFTER]" (proto_parse_scan). */
static bool scan_ok(const struct proto_client_req *req)
{
    uint32_t limit, after_len;
    const char *after;
    return proto_parse_scan(req->val, req->val_len, &limit, &after, &after_len) == RK_OK;
}

/* Whether val[0..len) is exactly one number (no space after it). */
static bool lone_number(const char *val, uint32_t len, uint32_t rest_len)
{
    return rest_len == 0 && val[len - 1] != ' ';
}

/* A SETEX, EXPIRE or CAS_TTL value that does not start with a time to live in range, or
 * an EXPIRE value with more. */
static bool bad_ttl(const struct proto_client_req *req)
{
    if (req->op != PROTO_OP_SETEX && req->op != PROTO_OP_EXPIRE && req->op != PROTO_OP_CAS_TTL)
        return false;
    uint64_t ttl_ms;
    const char *rest;
    uint32_t rest_len;
    if (proto_parse_ttl(req->val, req->val_len, &ttl_ms, &rest, &rest_len) != RK_OK)
        return true;
    return req->op == PROTO_OP_EXPIRE && !lone_number(req->val, req->val_len, rest_len);
}

/* A CAS value that is not "REV VALUE", or a CAD value that is not "REV" (for CAS_TTL,
 * after its time to live). */
static bool bad_rev(const struct proto_client_req *req)
{
    if (req->op != PROTO_OP_CAS && req->op != PROTO_OP_CAD && req->op != PROTO_OP_CAS_TTL)
        return false;
    uint64_t n;
    const char *rest = req->val;
    uint32_t rest_len = req->val_len;
    if (req->op == PROTO_OP_CAS_TTL)
        proto_parse_ttl(req->val, req->val_len, &n, &rest, &rest_len); /* bad_ttl checked it */
    if (proto_parse_rev(rest, rest_len, &n, &rest, &rest_len) != RK_OK)
        return true;
    if (req->op != PROTO_OP_CAD)
        return false; /* the value after "REV " may be empty */
    return !lone_number(req->val, req->val_len, rest_len);
}

/* A reason the request is invalid (written into why), or NULL. Keys and values are
 * bounded by this server's limits (--max-key-bytes, --max-value-bytes). */
static const char *invalid_reason(const struct node_limits *lim,
                                  const struct proto_client_req *req, char *why, size_t len)
{
    if (req->op < PROTO_OP_GET || req->op > PROTO_OP_LAST)
        return "unknown command";
    if (req->op == PROTO_OP_STATUS || req->op == PROTO_OP_REGISTER ||
        req->op == PROTO_OP_MEMBERS || req->op == PROTO_OP_TRANSFER)
        return NULL;
    if (req->key_len == 0 && req->op != PROTO_OP_SCAN) /* a scan's prefix may be empty */
        return "empty key";
    if (req->key_len > lim->max_key_bytes) {
        snprintf(why, len, "key too long (%" PRIu32 " bytes; the limit is %" PRIu32 ")",
                 req->key_len, lim->max_key_bytes);
        return why;
    }
    if (names_new_key(req->op) && !proto_key_is_word(req->key, req->key_len))
        return PROTO_ERR_KEY_NOT_WORD;
    if (req->op == PROTO_OP_SCAN && !scan_ok(req)) {
        snprintf(why, len, "bad scan: want \"LIMIT [AFTER]\" (LIMIT 1..%u, AFTER a key)",
                 PROTO_SCAN_LIMIT_MAX);
        return why;
    }
    if (bad_ttl(req)) {
        snprintf(why, len, "bad time to live: want %s (MS milliseconds, %u..%llu)",
                 req->op == PROTO_OP_SETEX ? "\"MS VALUE\"" : req->op == PROTO_OP_EXPIRE
                                                               ? "\"MS\"" : "\"MS REV VALUE\"",
                 PROTO_TTL_MIN_MS, PROTO_TTL_MAX_MS);
        return why;
    }
    if (bad_rev(req))
        return req->op != PROTO_OP_CAD ? "bad revision: want \"REV VALUE\" (REV a number, "
                                         "0: the key must be absent)"
                                       : "bad revision: want \"REV\" (a number)";
    if (req->val_len > lim->max_value_bytes) {
        snprintf(why, len, "value too long (%" PRIu32 " bytes; the limit is %" PRIu32 ")",
                 req->val_len, lim->max_value_bytes);
        return why;
    }
    if (!is_read(req->op) && req->client_id != 0 && req->seq == 0)
        return "bad sequence number 0 (a session numbers its commands from 1)";
    return NULL;
}

/* The cluster commands (admin_ops.c). */
static bool is_admin(uint8_t op)
{
    return op == PROTO_OP_ADD || op == PROTO_OP_REMOVE || op == PROTO_OP_MEMBERS ||
           op == PROTO_OP_TRANSFER;
}

bool node_client_start(struct node *n, struct node_request *r, struct proto_buf *out,
                       struct node_outbox *ob)
{
    char why[128];
    const char *bad = invalid_reason(&n->limits, &r->req, why, sizeof(why));
    node_waiter_done_fn on_done = r->w.on_done;
    void *on_done_ctx = r->w.on_done_ctx;
    memset(&r->w, 0, sizeof(r->w));
    r->w.on_done = on_done;
    r->w.on_done_ctx = on_done_ctx;
    r->waiting = false;
    if (bad != NULL)
        node_client_error(out, bad);
    else if (n->shutdown)
        node_client_error(out, "server shutting down");
    else if (r->req.op == PROTO_OP_STATUS)
        reply_status(n, out);
    else if (raft_role(n->raft) != RAFT_LEADER)
        node_client_redirect(n, out);
    else if (is_read(r->req.op))
        r->waiting = start_get(n, r, out, ob);
    else if (is_admin(r->req.op))
        r->waiting = node_admin_start(n, r, out, ob);
    else
        r->waiting = start_write(n, r, out, ob);
    return r->waiting;
}

int node_client_finish(struct node *n, struct node_request *r, int wait_rc, struct proto_buf *out)
{
    if (!r->waiting)
        return RK_OK;
    if (wait_rc == RK_OK && !r->w.done)
        wait_rc = n->shutdown ? RK_ERR_SHUTDOWN : RK_ERR_TIMEOUT;
    node_waiter_remove(n, &r->w);
    r->waiting = false;
    if (is_read(r->req.op))
        return finish_get(n, r, wait_rc, out);
    if (is_admin(r->req.op))
        return node_admin_finish(n, r, wait_rc, out);
    return finish_write(n, r, wait_rc, out);
}

uint32_t node_client_wait_ms(const struct node_request *r)
{
    return is_admin(r->req.op) ? NODE_ADMIN_WAIT_MS : NODE_CLIENT_WAIT_MS;
}
