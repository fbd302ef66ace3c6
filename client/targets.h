/* client/targets.h - the servers a client tries, in order: the HOST PORT given first (if
 * any), then those of server_registry.txt; and opening a client connection to one of
 * them (connect, then HELLO_CLIENT). Shared by the session (session.c) and the watch
 * (watch.c). */
#ifndef RK_CLIENT_TARGETS_H
#define RK_CLIENT_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/registry.h"

struct client_target {
    char name[REGISTRY_NAME_MAX + 1]; /* the registry name, or "HOST:PORT" */
    char host[REGISTRY_HOST_MAX + 1];
    uint16_t port;
};

struct client_targets {
    struct client_target *v;
    int n, cap;
};

/* Fills out (zeroed first): host:port (host NULL = none; named after its registry entry if
 * it has one), then every other server of registry_path (NULL = none). A missing
 * registry is fine when a host is given; a bad one is then noted on stderr if verbose.
 * RK_OK, or RK_ERR_INVAL / RK_ERR_NOMEM with err set (e.g. neither a host nor a
 * readable registry: "no server to contact: ..."). */
int client_targets_load(struct client_targets *out, const char *host, uint16_t port,
                        const char *registry_path, bool verbose, char *err, size_t errlen);
void client_targets_free(struct client_targets *t);
/* Index of the target with this host:port (or, if name is non-empty, this name), or -1. */
int client_targets_find(const struct client_targets *t, const char *name, const char *host,
                        uint16_t port);
/* Appends a target (growing the array). RK_OK or RK_ERR_NOMEM. */
int client_targets_add(struct client_targets *t, const char *name, const char *host,
                       uint16_t port);
void client_target_set(struct client_target *t, const char *name, const char *host,
                       uint16_t port);

/* Connects to t within connect_ms, sets the socket's read and write timeouts to io_ms
 * (0: none) and says HELLO_CLIENT. RK_OK with *fd; RK_ERR_UNREACHABLE if the connect
 * failed (err: why), or the error of the hello (err: "hello failed: ..."). */
int client_target_connect(const struct client_target *t, int connect_ms, int io_ms, int *fd,
                          char *err, size_t errlen);

#endif
