/* client/targets.c - the list of servers a client tries (client/targets.h): the first
 * HOST PORT and the registry, and a client connection to one of them. */
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/errors.h"
#include "../common/grow.h"
#include "../common/net.h"
#include "../common/proto.h"

void client_target_set(struct client_target *t, const char *name, const char *host,
                       uint16_t port)
{
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->port = port;
}

int client_targets_find(const struct client_targets *t, const char *name, const char *host,
                        uint16_t port)
{
    for (int i = 0; i < t->n; i++) {
        const struct client_target *c = &t->v[i];
        if (c->port == port && strcmp(c->host, host) == 0)
            return i;
        if (name[0] != '\0' && strcmp(c->name, name) == 0)
            return i;
    }
    return -1;
}

int client_targets_add(struct client_targets *t, const char *name, const char *host,
                       uint16_t port)
{
    if (t->n == t->cap) {
        size_t cap = (size_t)t->cap;
        int rc = rk_grow(&t->v, &cap, cap + 1, sizeof(*t->v), 8);
        if (rc != RK_OK)
            return rc;
        t->cap = (int)cap;
    }
    client_target_set(&t->v[t->n++], name, host, port);
    return RK_OK;
}

void client_targets_free(struct client_targets *t)
{
    if (t == NULL)
        return;
    free(t->v);
    memset(t, 0, sizeof(*t));
}

/* host:port first (named after its registry entry if it has one), then every other
 * registry server. */
static int build_targets(struct client_targets *t, const char *host, uint16_t port,
                         const struct registry *reg)
{
    int rc = RK_OK;
    if (host != NULL) {
        char name[REGISTRY_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%.50s:%u", host, (unsigned)port);
        for (int i = 0; reg != NULL && i < reg->n; i++)
            if (reg->servers[i].port == port && strcmp(reg->servers[i].host, host) == 0)
                snprintf(name, sizeof(name), "%s", reg->servers[i].name);
        rc = client_targets_add(t, name, host, port);
    }
    for (int i = 0; rc == RK_OK && reg != NULL && i < reg->n; i++) {
        const struct registry_server *r = &reg->servers[i];
        if (client_targets_find(t, "", r->host, r->port) < 0)
            rc = client_targets_add(t, r->name, r->host, r->port);
    }
    return rc;
}

int client_targets_load(struct client_targets *out, const char *host, uint16_t port,
                        const char *registry_path, bool verbose, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (host != NULL && (host[0] == '\0' || strlen(host) > REGISTRY_HOST_MAX || port == 0))
        return rk_fail(err, errlen, RK_ERR_INVAL, "bad server address '%s' port %u", host,
                       (unsigned)port);
    struct registry reg = { 0 };
    char rerr[512] = "no registry given";
    int reg_rc = registry_path != NULL ? registry_load(registry_path, &reg, rerr, sizeof(rerr))
                                       : RK_ERR_NOTFOUND;
    bool have_reg = reg_rc == RK_OK;
    if (!have_reg && host == NULL)
        return rk_fail(err, errlen, RK_ERR_INVAL, "no server to contact: %s", rerr);
    int rc = build_targets(out, host, port, have_reg ? &reg : NULL);
    if (have_reg)
        registry_free(&reg);
    else if (reg_rc != RK_ERR_NOTFOUND && verbose) /* a missing one is fine; a bad one is noted */
        fprintf(stderr, "note: no registry fallback: %s\n", rerr);
    if (rc != RK_OK) {
        client_targets_free(out);
        return rk_fail(err, errlen, rc, "out of memory");
    }
    return RK_OK;
}

int client_target_connect(const struct client_target *t, int connect_ms, int io_ms, int *fd,
                          char *err, size_t errlen)
{
    *fd = net_connect(t->host, t->port, connect_ms, err, errlen);
    if (*fd < 0)
        return RK_ERR_UNREACHABLE;
    struct proto_buf hello = { 0 };
    int rc = proto_encode_hello_client(&hello);
    if (rc == RK_OK)
        rc = net_set_timeouts(*fd, io_ms);
    if (rc == RK_OK)
        rc = net_write_full(*fd, hello.data, hello.len);
    proto_buf_free(&hello);
    if (rc != RK_OK) {
        rk_errf(err, errlen, "hello failed: %s", rk_strerror(rc));
        close(*fd);
        *fd = -1;
    }
    return rc;
}
