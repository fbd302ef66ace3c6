/* server/node/members.c - who each node id is and where it listens (Raft thesis §4: ids
 * come from the configuration in effect, which changes at runtime). node_sync_peers
 * copies the configuration into peers[] whenever the core's changes, and tells net/ of a
 * new or moved peer; node_peer_hello gives the id a peer's connection speaks for. A server
 * that joins a running cluster knows no configuration at first: it learns its leader's id
 * and address from the leader's hello, so that it can answer. */
#include <stdio.h>
#include <string.h>

#include "../../common/errors.h"
#include "node.h"

const char *node_name_of(const struct node *n, int id)
{
    if (id < 0 || id >= REGISTRY_MAX_SERVERS || !n->peers[id].known)
        return "";
    return n->peers[id].addr.name;
}

/* Sets where peer id is (name, host, port); a change bumps its generation, so that its
 * link reconnects, and nobody writes to the old link meanwhile. */
static void set_addr(struct node *n, int id, const char *name, const char *host, uint16_t port)
{
    struct node_peer *p = &n->peers[id];
    bool same = p->known && p->addr.port == port && strcmp(p->addr.name, name) == 0 &&
                strcmp(p->addr.host, host) == 0;
    p->known = true;
    if (same)
        return;
    snprintf(p->addr.name, sizeof(p->addr.name), "%s", name);
    snprintf(p->addr.host, sizeof(p->addr.host), "%s", host);
    p->addr.port = port;
    p->addr.gen++;
    p->inline_ok = false;
    if (n->transport.peer_changed != NULL)
        n->transport.peer_changed(n->transport.ctx, id);
}

void node_sync_peers(struct node *n)
{
    const struct membership *ms = raft_membership(n->raft, NULL);
    n->conf_gen = raft_membership_gen(n->raft);
    bool member[REGISTRY_MAX_SERVERS] = { false };
    for (int i = 0; i < ms->n; i++) {
        const struct member *m = &ms->m[i];
        member[m->id] = true;
        set_addr(n, m->id, m->name, m->host, m->port);
    }
    for (int id = 0; id < REGISTRY_MAX_SERVERS; id++)
        n->peers[id].member = member[id];
}

int node_peer_hello(struct node *n, const struct proto_hello *h, char *why, size_t whylen)
{
    const struct membership *ms = raft_membership(n->raft, NULL);
    const struct member *m = membership_by_name(ms, h->name);
    int self = raft_self(n->raft);
    if (strcmp(h->name, n->name) == 0)
        snprintf(why, whylen, "peer hello with this server's own name '%s'", h->name);
    else if (m != NULL)
        return m->id;
    else if (h->id < 0 || h->id >= REGISTRY_MAX_SERVERS || h->id == self ||
             n->peers[h->id].member)
        snprintf(why, whylen, "peer hello from '%s', which is not a member (and claims id "
                 "%d, which is taken or none)", h->name, (int)h->id);
    else if (h->host[0] == '\0' || h->port == 0)
        snprintf(why, whylen, "peer hello from '%s', which is not a member and gives no "
                 "address", h->name);
    else {
        set_addr(n, h->id, h->name, h->host, h->port); /* a leader to a joining server */
        return h->id;
    }
    return -1;
}
