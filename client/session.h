/* client/session.h - a leader-following client connection: sends one command, follows
 * redirects to the leader, and retries other servers with backoff until a timeout.
 * Writes go through a server-side client session (Raft thesis §6.3), so a retried write
 * is applied at most once. Used by the raft_client program and by the tests. */
#ifndef RK_SESSION_H
#define RK_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client_session;

/* host/port: the server to try first (host NULL = none). registry_path: servers to fall
 * back on (NULL = none). timeout_ms: how long one command may retry in total.
 * verbose: note redirects and retries on stderr. Returns NULL with err set on failure
 * (e.g. neither a host nor a readable registry). */
struct client_session *client_session_new(const char *host, uint16_t port,
                                          const char *registry_path, int timeout_ms,
                                          bool verbose, char *err, size_t errlen);
void client_session_free(struct client_session *s);

struct client_reply {
    uint8_t status;   /* enum proto_status: OK, VALUE, NIL or ERR (never REDIRECT) */
    char *body;       /* malloc'ed, NUL-terminated, body_len bytes before the NUL */
    uint32_t body_len;
};

/* Runs one command (enum proto_op: GET, SET, DELETE, STATUS, or the cluster commands ADD,
 * REMOVE, MEMBERS, TRANSFER). All but STATUS go to the leader, following redirects;
 * STATUS is answered by the server currently connected to. ADD waits up to 100 s (the new
 * server catches up) and, like REMOVE and TRANSFER, lets one server take its time.
 * SET and DELETE run in a client session: before the first one the session registers
 * (a REGISTER request, within the same timeout); each gets the next sequence number,
 * and every retry of it (after a lost reply, a timeout, a failover) resends that number,
 * so the cluster applies it at most once. A reply ERR "session expired"
 * (PROTO_ERR_SESSION_EXPIRED) means the command was not applied; the next write then
 * registers a new session.
 * Returns RK_OK with *out filled (free with client_reply_free), or RK_ERR_TIMEOUT when no
 * leader answered before the timeout (err: "no leader reachable"), or another RK_ERR_*. */
int client_session_call(struct client_session *s, uint8_t op, const char *key,
                        uint32_t key_len, const char *val, uint32_t val_len,
                        struct client_reply *out, char *err, size_t errlen);
void client_reply_free(struct client_reply *r);
/* learn: now and then (every few seconds, after a command) ask the leader for the members
 * and keep the new ones as servers to fall back on, so that a long-running session finds
 * the cluster after every server it knew at its start was replaced. Off by default. */
void client_session_learn_members(struct client_session *s, bool learn);
/* The current server-side session's client id, or 0 before the first write (or after
 * "session expired"). */
uint64_t client_session_id(const struct client_session *s);

#endif
