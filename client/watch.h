/* client/watch.h - the client side of a watch (issue 17): one WATCH stream at a time to
 * one of the servers, its events printed one line each, and on a broken, silent or cut
 * stream a new one at the next server from the first revision not yet printed, so that
 * nothing is printed twice and nothing is skipped. Used by raft_client's watch command. */
#ifndef RK_CLIENT_WATCH_H
#define RK_CLIENT_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "targets.h"

struct watch_opts {
    const char *prefix;  /* the keys to watch start with it; may be empty (every key) */
    size_t prefix_len;
    uint64_t from;       /* the first revision to print; 0: after the server's current one */
    bool verbose;        /* note every switch of server on stderr */
};

/* Prints to out, in revision order, one line per change to a key with the prefix:
 * "REV set KEY VALUE", "REV delete KEY" or "REV expire KEY", flushed after each answer.
 * Tries the targets round-robin (from the first), with a backoff that grows to about a
 * second while every server fails; a watch with no server reachable goes on trying.
 * Returns only when it cannot go on, with err set: RK_ERR_NOTFOUND when every server
 * said the revision to resume from was compacted (err "compacted: oldest available
 * revision N", N the smallest reported), RK_ERR_INVAL when a server refused the request
 * itself (err: its reason), RK_ERR_IO when out cannot be written. */
int watch_run(const struct client_targets *targets, const struct watch_opts *o, FILE *out,
              char *err, size_t errlen);

#endif
