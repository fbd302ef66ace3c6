/* server/node/admin_ops.c - the cluster commands of clients: MEMBERS lists the
 * configuration in effect; ADD, REMOVE and TRANSFER start a membership change (Raft thesis
 * §4) or a leadership transfer (§3.10) in the core and are answered with its outcome,
 * which can take a while (an add waits for the new server to catch up). Leader only; a
 * follower redirects (client_ops.c). Under mu throughout. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "node.h"

#define ADDRESS_LEN (REGISTRY_HOST_MAX + 32)

/* "NAME HOST PORT voter|learner\n" per member. */
static int reply_members(struct node *n, struct proto_buf *out)
{
    const struct membership *ms = raft_membership(n->raft, NULL);
    size_t cap = (size_t)ms->n * (REGISTRY_NAME_MAX + REGISTRY_HOST_MAX + 24) + 1;
    char *body = malloc(cap);
    if (body == NULL)
        return node_client_error(out, rk_strerror(RK_ERR_NOMEM));
    size_t len = 0;
    for (int i = 0; i < ms->n; i++) {
        const struct member *m = &ms->m[i];
        len += (size_t)snprintf(body + len, cap - len, "%s %s %u %s\n", m->name, m->host,
                                (unsigned)m->port, m->role == MEMBER_VOTER ? "voter" : "learner");
    }
    int rc = node_client_reply(out, PROTO_ST_VALUE, body, (uint32_t)len);
    free(body);
    return rc;
}

/* The key as a C string (a server name). */
static void name_of(const struct proto_client_req *req, char *name, size_t len)
{
    size_t n = req->key_len < len - 1 ? req->key_len : len - 1;
    memcpy(name, req->key, n);
    name[n] = '\0';
}

/* ADD's value: "HOST PORT" or "HOST PORT learner". false if it is not that. */
static bool parse_address(const struct proto_client_req *req, char *host, uint16_t *port,
                          bool *learner)
{
    char text[ADDRESS_LEN], word[16] = "", extra[2];
    unsigned p;
    if (req->val_len == 0 || req->val_len >= sizeof(text))
        return false;
    memcpy(text, req->val, req->val_len);
    text[req->val_len] = '\0';
    int got = sscanf(text, "%255s %u %15s %1s", host, &p, word, extra);
    if (got < 2 || got > 3 || p == 0 || p > 65535 || (got == 3 && strcmp(word, "learner") != 0))
        return false;
    *port = (uint16_t)p;
    *learner = got == 3;
    return true;
}

/* Starts the core's request for r; RK_OK, RK_ERR_INVAL for a malformed command, or the
 * core's refusal. */
static int start_in_core(struct node *n, struct node_request *r, uint64_t id)
{
    char name[REGISTRY_NAME_MAX + 1], host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
    bool learner;
    name_of(&r->req, name, sizeof(name));
    switch (r->req.op) {
    case PROTO_OP_ADD:
        if (!parse_address(&r->req, host, &port, &learner))
            return RK_ERR_INVAL;
        return raft_add_server(n->raft, id, name, host, port, learner);
    case PROTO_OP_REMOVE:
        return raft_remove_server(n->raft, id, name,
                                  r->req.val_len == 5 && memcmp(r->req.val, "force", 5) == 0);
    default: /* PROTO_OP_TRANSFER */
        return raft_transfer_leadership(n->raft, id, r->req.key_len > 0 ? name : NULL);
    }
}

bool node_admin_start(struct node *n, struct node_request *r, struct proto_buf *out,
                      struct node_outbox *ob)
{
    if (r->req.op == PROTO_OP_MEMBERS) {
        reply_members(n, out);
        return false;
    }
    uint64_t id = n->next_read_id++;
    int rc = start_in_core(n, r, id);
    if (rc == RK_OK) {
        r->w.kind = NODE_WAIT_RESULT;
        r->w.read_id = id;
        node_waiter_add(n, &r->w);
    }
    node_after_step(n, ob);
    if (rc == RK_OK)
        return true;
    if (rc == RK_ERR_INVAL && r->req.op == PROTO_OP_ADD)
        node_client_error(out, "bad address (want HOST PORT, or HOST PORT learner) or name");
    else if (rc == RK_ERR_INVAL && r->req.op == PROTO_OP_REMOVE)
        node_client_error(out, "cannot remove the last voter");
    else if (rc == RK_ERR_INVAL)
        node_client_error(out, "no other voter to hand leadership to");
    else if (rc == RK_ERR_NOTFOUND)
        node_client_error(out, "not a member");
    else if (rc == RK_ERR_NOTLEADER)
        node_client_redirect(n, out);
    else
        node_client_error(out, rk_strerror(rc));
    return false;
}

int node_admin_finish(struct node *n, const struct node_request *r, int wait_rc,
                      struct proto_buf *out)
{
    int rc = wait_rc != RK_OK ? wait_rc : r->w.result;
    switch (rc) {
    case RK_OK:
        return node_client_reply(out, PROTO_ST_OK, NULL, 0);
    case RK_ERR_NOTLEADER:
        return node_client_redirect(n, out);
    case RK_ERR_TIMEOUT:
        return node_client_error(out, r->req.op == PROTO_OP_TRANSFER && wait_rc == RK_OK
                                          ? "the target did not take over within an election "
                                            "timeout"
                                          : "timed out, outcome unknown");
    case RK_ERR_SHUTDOWN:
        return node_client_error(out, "server shutting down, outcome unknown");
    default:
        return node_client_error(out, rk_strerror(rc));
    }
}
