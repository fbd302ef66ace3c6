/* tests/sim/sim_fault.c - the random fault schedule: crashes (any node, the leader, one in
 * mid-write, all), partitions (isolate the leader, minority/majority, one-way), pauses
 * longer than the election timeout, and network weather; each fault is healed later. */
#include <stdio.h>

#include "sim_internal.h"

typedef unsigned long long ull;

#define FAULT_RESTART_MIN_MS 10
#define FAULT_RESTART_MAX_MS 1500
#define FAULT_PARTITION_MIN_MS 100
#define FAULT_PARTITION_MAX_MS 2500

static void sim_fault_crash(struct sim *s, int node)
{
    struct sim_node *n = &s->node[node];
    sim_node_crash(s, n, SIM_TEAR_RANDOM);
    uint64_t down = sim_between(s, FAULT_RESTART_MIN_MS, FAULT_RESTART_MAX_MS);
    sim_push(s, s->now + down, SIM_EV_RESTART, node, ++n->restart_gen);
}

/* A running node with a Ready in flight (a crash there loses or tears a write). */
static int sim_fault_pick_writer(struct sim *s)
{
    int picked = -1, seen = 0;
    for (int i = 0; i < s->n_slots; i++) {
        if (s->node[i].raft == NULL || !s->node[i].io_busy)
            continue;
        if (sim_below(s, (uint64_t)++seen) == 0)
            picked = i;
    }
    return picked;
}

static int sim_fault_pick_leader_or_any(struct sim *s)
{
    int node = sim_current_leader(s);
    return node >= 0 ? node : sim_pick_up_node(s, false);
}

/* Replaces any partition in force by new cuts, healed after a random time. */
static void sim_fault_begin_partition(struct sim *s)
{
    sim_net_heal(s);
    uint64_t ms = sim_between(s, FAULT_PARTITION_MIN_MS, FAULT_PARTITION_MAX_MS);
    sim_push(s, s->now + ms, SIM_EV_HEAL, -1, ++s->partition_gen);
    s->stats.partitions++;
}

static void sim_fault_isolate_leader(struct sim *s)
{
    int node = sim_fault_pick_leader_or_any(s);
    if (node < 0)
        node = (int)sim_below(s, (uint64_t)s->n_slots);
    sim_fault_begin_partition(s);
    sim_net_isolate(s, node);
    sim_trace_text(s, -1, "partition: n%d isolated", node);
}

/* A minority (1 .. (n-1)/2 nodes, the leader among them half the time) cut off. */
static void sim_fault_split(struct sim *s)
{
    int n = s->n_slots;
    int size = n > 2 ? (int)sim_between(s, 1, (uint64_t)(n - 1) / 2) : 1;
    uint32_t mask = 0;
    int leader = sim_current_leader(s);
    if (leader >= 0 && sim_chance(s, 500))
        mask |= 1u << leader;
    while (__builtin_popcount(mask) < size)
        mask |= 1u << sim_below(s, (uint64_t)n);
    sim_fault_begin_partition(s);
    sim_net_split(s, mask);
    char list[64] = "";
    int off = 0;
    for (int i = 0; i < n; i++)
        if ((mask >> i) & 1u)
            off += snprintf(list + off, sizeof(list) - (size_t)off, "%sn%d", off ? "," : "", i);
    sim_trace_text(s, -1, "partition: {%s} cut from the rest", list);
}

/* Asymmetric: some links fail in one direction only, often the leader's. */
static void sim_fault_one_way(struct sim *s)
{
    int n = s->n_slots;
    sim_fault_begin_partition(s);
    int leader = sim_current_leader(s);
    int links = (int)sim_between(s, 1, (uint64_t)n);
    char list[160] = "";
    int off = 0;
    for (int k = 0; k < links; k++) {
        int a = (int)sim_below(s, (uint64_t)n), b = (int)sim_below(s, (uint64_t)n);
        if (leader >= 0 && sim_chance(s, 500)) {
            if (sim_chance(s, 500))
                a = leader;
            else
                b = leader;
        }
        if (a == b || s->cut[a][b])
            continue;
        s->cut[a][b] = true;
        if ((size_t)off < sizeof(list))
            off += snprintf(list + off, sizeof(list) - (size_t)off, " n%d->n%d", a, b);
    }
    sim_trace_text(s, -1, "partition: one-way cuts%s", off ? list : " (none)");
}

static void sim_fault_pause(struct sim *s)
{
    int node = sim_chance(s, 500) ? sim_current_leader(s) : -1;
    if (node < 0)
        node = sim_pick_up_node(s, true);
    if (node < 0)
        return;
    uint64_t ms = sim_between(s, s->p.election_max_ms + 10, 4ull * s->p.election_max_ms + 200);
    sim_node_pause(s, &s->node[node], ms);
}

/* New loss, duplication and delay for the whole network. */
void sim_fault_weather(struct sim *s)
{
    s->p.loss_permille = sim_chance(s, 300) ? 0 : (uint32_t)sim_between(s, 1, 100);
    s->p.dup_permille = sim_chance(s, 500) ? 0 : (uint32_t)sim_between(s, 1, 50);
    s->p.delay_min_ms = (uint32_t)sim_between(s, 0, 3);
    s->p.delay_max_ms = s->p.delay_min_ms + (uint32_t)sim_between(s, 1, 40);
    s->p.straggle_permille = sim_chance(s, 600) ? 0 : (uint32_t)sim_between(s, 1, 30);
    s->stats.weather_changes++;
    sim_trace_text(s, -1, "weather: loss %u/1000, duplicates %u/1000, delay %u..%u ms, "
                   "stragglers %u/1000", s->p.loss_permille, s->p.dup_permille,
                   s->p.delay_min_ms, s->p.delay_max_ms, s->p.straggle_permille);
}

static void sim_fault_crash_all(struct sim *s)
{
    sim_trace_text(s, -1, "every node crashes");
    for (int i = 0; i < s->n_slots; i++)
        if (s->node[i].raft != NULL)
            sim_fault_crash(s, i);
}

/* A crash of a random node (roll < 20), of the leader (< 32), or of a node in the middle
 * of a write (< 42: if none is writing now, the next one to start writing). */
static void sim_fault_random_crash(struct sim *s, uint64_t roll)
{
    int node;
    if (roll < 20) {
        node = sim_pick_up_node(s, false);
    } else if (roll < 32) {
        node = sim_current_leader(s);
    } else {
        node = sim_fault_pick_writer(s);
        if (node < 0) {
            s->crash_next_write = true;
            return;
        }
    }
    if (node < 0)
        node = sim_pick_up_node(s, false);
    if (node >= 0)
        sim_fault_crash(s, node);
}

/* One random fault. */
void sim_fault_random(struct sim *s)
{
    uint64_t roll = sim_below(s, 100);
    if (roll < 42)
        sim_fault_random_crash(s, roll);
    else if (roll < 54)
        sim_fault_isolate_leader(s);
    else if (roll < 66)
        sim_fault_split(s);
    else if (roll < 76)
        sim_fault_one_way(s);
    else if (roll < 88)
        sim_fault_pause(s);
    else if (roll < 96)
        sim_fault_weather(s);
    else
        sim_fault_crash_all(s);
}

/* Figure 8's schedules need leaders that fail early, before their own entries spread:
 * some new leaders crash, or are cut off, within a few heartbeats. */
void sim_fault_new_leader(struct sim *s, struct sim_node *n)
{
    if (!s->faults_on || !sim_chance(s, s->p.leader_crash_permille))
        return;
    uint64_t at = s->now + sim_between(s, 1, 3ull * s->p.heartbeat_ms);
    sim_push(s, at, SIM_EV_KILL, n->id, n->incarnation);
}

void sim_fault_kill(struct sim *s, int node)
{
    if (sim_chance(s, 500)) {
        sim_trace_text(s, node, "crash soon after winning an election");
        sim_fault_crash(s, node);
        return;
    }
    sim_fault_begin_partition(s);
    sim_net_isolate(s, node);
    sim_trace_text(s, -1, "partition: n%d isolated soon after winning an election", node);
}

/* The crash planned by crash_next_write: the node is still in the middle of its write. */
void sim_fault_crash_writer(struct sim *s, int node)
{
    sim_trace_text(s, node, "crash in the middle of a write");
    sim_fault_crash(s, node);
}
