/* tests/sim/sim_net.c - the simulated network: each message gets a random delay (so
 * messages reorder), may be lost or duplicated, and is dropped if its link is cut when it
 * arrives; partitions cut links one way or both. */
#include <stdlib.h>
#include <string.h>

#include "../../common/errors.h"
#include "sim_internal.h"

/* A straggler is held back long enough to arrive after elections and term changes: a
 * stale message at a term boundary. */
static uint64_t sim_net_delay(struct sim *s, int from, int to)
{
    if (s->link_delay[from][to] != 0)
        return s->link_delay[from][to];
    uint64_t delay = sim_between(s, s->p.delay_min_ms, s->p.delay_max_ms);
    if (sim_chance(s, s->p.straggle_permille))
        delay += sim_between(s, 100, 3ull * s->p.election_max_ms);
    return delay;
}

/* Raft lets a leader send any prefix of the entries a follower lacks, down to none (a
 * heartbeat whose commit index runs ahead of what the follower has verified): with
 * trim_permille, an AppendEntries arrives with only a random prefix of its entries. */
static void sim_net_trim(struct sim *s, struct raft_msg *m)
{
    if (m->type != RAFT_MSG_APPEND || m->n_entries == 0 || !sim_chance(s, s->p.trim_permille))
        return;
    m->n_entries = (uint32_t)sim_below(s, m->n_entries);
}

/* The port the sender's configuration gives the server it sends a request to (0: any:
 * a reply goes back to whoever asked, and a server that joins answers the leader over
 * the address the leader's hello gave). */
static uint16_t sim_net_port(const struct sim *s, int from, int to, uint8_t type)
{
    if (type == RAFT_MSG_APPEND_RESP || type == RAFT_MSG_VOTE_RESP ||
        type == RAFT_MSG_PREVOTE_RESP || type == RAFT_MSG_SNAPSHOT_RESP)
        return 0;
    const struct raft *r = s->node[from].raft;
    const struct member *m = r != NULL ? membership_by_id(raft_membership(r, NULL), to) : NULL;
    return m != NULL ? m->port : 0;
}

/* Puts a message on the wire: filtered, lost, or delivered (maybe twice) after a delay.
 * m is the sender's shallow copy: the filter may shorten its entries. */
static void sim_net_queue(struct sim *s, struct raft_msg *m)
{
    int to = m->to, from = m->from;
    if (s->filter != NULL && !s->filter(s->filter_ctx, m)) {
        sim_trace_drop(s, to, m, "filtered");
        s->stats.dropped++;
        return;
    }
    if (sim_chance(s, s->p.loss_permille)) {
        sim_trace_drop(s, to, m, "lost");
        s->stats.dropped++;
        return;
    }
    sim_net_trim(s, m);
    int copies = sim_chance(s, s->p.dup_permille) ? 2 : 1;
    s->stats.duplicated += (uint64_t)(copies - 1);
    for (int i = 0; i < copies; i++) {
        struct sim_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.kind = SIM_EV_MSG;
        ev.node = (int16_t)to;
        ev.gen = s->node[from].life;
        ev.port = sim_net_port(s, from, to, m->type);
        ev.at = s->now + sim_net_delay(s, from, to);
        if (raft_msg_copy(&ev.msg, m) != RK_OK)
            abort();
        sim_queue_push(&s->q, &ev);
    }
}

/* Sends one message of a durable Ready (the io thread's push to the replicators); an
 * InstallSnapshot gets its chunk from the sender's snapshot, as the encoder does. */
void sim_net_send(struct sim *s, int from, const struct raft_msg *m)
{
    int to = m->to;
    if (to < 0 || to >= SIM_SLOTS || to == from) {
        sim_fail(s, "Ready Contract", "n%d sends a %s to node %d", from,
                 raft_msg_type_name(m->type), to);
        return;
    }
    struct raft_msg out = *m;
    out.from = from; /* as the connection handshake would */
    if (m->type != RAFT_MSG_SNAPSHOT) {
        sim_net_queue(s, &out);
        return;
    }
    if (!sim_snap_fill_chunk(s, from, &out)) {
        sim_trace_drop(s, to, &out, "filtered"); /* its snapshot was replaced meanwhile */
        s->stats.dropped++;
        return;
    }
    sim_net_queue(s, &out);
    free(out.snap_data);
}

/* A message arrives: dropped if its target is down or the link is cut now, or if its
 * sender's slot holds another server now (the old one was stopped and its disk wiped
 * before the new one was added: its connections are gone), or if it was sent to the
 * address of a server that another one replaced (at an address of its own). */
void sim_net_deliver(struct sim *s, struct sim_event *ev)
{
    struct sim_node *n = &s->node[ev->node];
    struct raft_msg *m = &ev->msg;
    if (ev->gen != s->node[m->from].life ||
        (ev->port != 0 && ev->port != sim_node_port(n->id, n->life))) {
        sim_trace_drop(s, ev->node, m, "replaced");
        s->stats.dropped++;
    } else if (n->raft == NULL) {
        sim_trace_drop(s, ev->node, m, "down");
        s->stats.dropped++;
    } else if (s->cut[m->from][ev->node]) {
        sim_trace_drop(s, ev->node, m, "partition");
        s->stats.dropped++;
    } else {
        sim_trace_recv(s, ev->node, m);
        sim_check_deliver(s, n, m);
        s->stats.delivered++;
        s->stats.snap_chunks += m->type == RAFT_MSG_SNAPSHOT;
        raft_step(n->raft, s->now, m);
        raft_msg_free_entries(m);
        sim_node_after_step(s, n);
        return;
    }
    raft_msg_free_entries(m);
}

void sim_net_isolate(struct sim *s, int node)
{
    for (int j = 0; j < SIM_SLOTS; j++) {
        if (j == node)
            continue;
        s->cut[node][j] = true;
        s->cut[j][node] = true;
    }
}

/* Cuts every link between the nodes in minority_mask and the others, both ways. */
void sim_net_split(struct sim *s, uint32_t minority_mask)
{
    for (int a = 0; a < SIM_SLOTS; a++)
        for (int b = 0; b < SIM_SLOTS; b++)
            if (((minority_mask >> a) & 1u) != ((minority_mask >> b) & 1u))
                s->cut[a][b] = true;
}

void sim_net_heal(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
}
