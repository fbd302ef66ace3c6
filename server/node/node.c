/* server/node/node.c - the node's shared state: setting it up, starting and stopping its
 * threads, the events net/ brings in (a peer's messages, a lost peer), and
 * node_after_step(), the one place that applies committed entries, answers client
 * waiters and reacts to role changes. Every function here runs under mu unless it says
 * otherwise. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../common/clock.h"
#include "../../common/errors.h"
#include "../kv/kv.h"
#include "node.h"

#define READS_PER_TAKE 64

void node_name_thread(const char *role, int id)
{
    char name[16]; /* the kernel keeps 15 characters */
    if (id >= 0)
        snprintf(name, sizeof(name), "rk-%s-%d", role, id);
    else
        snprintf(name, sizeof(name), "rk-%s", role);
    pthread_setname_np(pthread_self(), name);
}

int node_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return RK_ERR_NOMEM;
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? RK_OK : RK_ERR_NOMEM;
}

int node_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t deadline_ms)
{
    struct timespec ts = {
        .tv_sec = (time_t)(deadline_ms / 1000u),
        .tv_nsec = (long)(deadline_ms % 1000u) * 1000000L,
    };
    return pthread_cond_timedwait(cond, mu, &ts);
}

static int init_peers(struct node *n)
{
    n->peers = calloc(REGISTRY_MAX_SERVERS, sizeof(*n->peers));
    if (n->peers == NULL)
        return RK_ERR_NOMEM;
    for (int i = 0; i < REGISTRY_MAX_SERVERS; i++) {
        n->peers[i].id = i;
        if (node_cond_init(&n->peers[i].cond) != RK_OK)
            return RK_ERR_NOMEM;
    }
    return RK_OK;
}

void node_limits_default(struct node_limits *l)
{
    *l = (struct node_limits){
        .max_frame_bytes = PROTO_MAX_FRAME,
        .max_key_bytes = PROTO_MAX_KEY,
        .max_value_bytes = PROTO_MAX_VALUE,
        .max_clients = NODE_DEFAULT_MAX_CLIENTS,
        .client_idle_ms = NODE_DEFAULT_CLIENT_IDLE_MS,
        .frame_timeout_ms = NODE_DEFAULT_FRAME_TIMEOUT_MS,
        .max_peer_queue_bytes = NODE_PEER_QUEUE_MAX,
        .max_watchers = NODE_DEFAULT_MAX_WATCHERS,
    };
}

int node_init(struct node *n, struct registry *reg, const char *name, struct storage *st)
{
    memset(n, 0, sizeof(*n));
    n->reg = *reg;
    n->cluster_id = registry_cluster_id(reg);
    node_limits_default(&n->limits);
    atomic_init(&n->n_clients, 0);
    atomic_init(&n->n_unidentified, 0);
    n->name = name;
    n->storage = st;
    n->seen_role = RAFT_FOLLOWER;
    n->seen_leader = RAFT_NO_NODE;
    n->next_read_id = 1;
    if (pthread_mutex_init(&n->mu, NULL) != 0)
        return RK_ERR_NOMEM;
    if (node_cond_init(&n->io_cond) != RK_OK || node_cond_init(&n->timer_cond) != RK_OK ||
        node_cond_init(&n->tokens_cond) != RK_OK || node_cond_init(&n->role_cond) != RK_OK)
        return RK_ERR_NOMEM;
    n->kv = kv_new();
    if (n->kv == NULL)
        return RK_ERR_NOMEM;
    return init_peers(n);
}

void node_waiter_add(struct node *n, struct node_waiter *w)
{
    w->prev = NULL;
    w->next = n->waiters;
    if (n->waiters != NULL)
        n->waiters->prev = w;
    n->waiters = w;
}

void node_waiter_remove(struct node *n, struct node_waiter *w)
{
    if (w->kind == NODE_WAIT_READ && w->answered && !w->done)
        n->reads_answered--;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        n->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

/* A waiter's result is final: tell its owner. */
static void finish(struct node *n, struct node_waiter *w, int result)
{
    if (w->kind == NODE_WAIT_READ && w->answered)
        n->reads_answered--;
    w->done = true;
    w->result = result;
    w->on_done(w->on_done_ctx, w);
}

/* What applying one chunk of committed entries gave, for the write waiters. */
#define APPLY_CHUNK 256
struct applied_chunk {
    raft_index_t first;               /* index of terms[0] */
    uint32_t count;
    raft_term_t terms[APPLY_CHUNK];
    int kv_rc[APPLY_CHUNK];
    uint64_t kv_rev[APPLY_CHUNK]; /* kv_result_rev of each */
};

/* The write waiters for the entries of the chunk: theirs if the term matches, else their
 * entry was overwritten by another leader's (Raft paper §5.3). One pass over the waiters
 * per chunk, not per entry. */
static void complete_writes(struct node *n, const struct applied_chunk *c)
{
    for (struct node_waiter *w = n->waiters; w != NULL; w = w->next) {
        if (w->done || w->kind != NODE_WAIT_WRITE || w->index < c->first ||
            w->index - c->first >= c->count)
            continue;
        uint32_t i = (uint32_t)(w->index - c->first);
        if (w->term == c->terms[i]) {
            w->kv_result = c->kv_rc[i];
            w->kv_rev = c->kv_rev[i];
            finish(n, w, RK_OK);
        } else {
            finish(n, w, RK_ERR_LOST);
        }
    }
}

/* Applies committed entries in log order, each exactly once (Figure 2, "All Servers":
 * if commitIndex > lastApplied, apply log[lastApplied+1]). */
static void apply_committed(struct node *n)
{
    raft_index_t commit = raft_commit_index(n->raft), first = n->applied + 1;
    struct applied_chunk c;
    if (n->applied >= commit)
        return;
    uint64_t start_ms = rk_clock_ms();
    kv_set_now(n->kv, start_ms); /* deadlines count from here (kv.h) */
    while (n->applied < commit) {
        c.first = n->applied + 1;
        c.count = 0;
        node_watch_chunk_begin(n);
        while (n->applied < commit && c.count < APPLY_CHUNK) {
            const struct raft_entry *e = raft_entry_at(n->raft, n->applied + 1);
            if (e == NULL)
                node_fatal(n, "committed entry %" PRIu64 " missing from the log",
                           n->applied + 1);
            int rc = kv_apply(n->kv, n->applied + 1, e);
            if (rc < 0)
                node_fatal(n, "cannot apply entry %" PRIu64 ": %s", n->applied + 1,
                           rk_strerror(rc));
            n->applied++;
            n->snap.bytes_since += 64u + e->key_len + e->val_len; /* about a log line */
            c.terms[c.count] = e->term;
            c.kv_rc[c.count] = rc;
            c.kv_rev[c.count] = kv_result_rev(n->kv);
            c.count++;
        }
        node_watch_chunk_end(n);
        if (n->waiters != NULL)
            complete_writes(n, &c);
    }
    node_warn_apply(n, n->applied + 1 - first, rk_clock_ms() - start_ms);
}

static struct node_waiter *find_read(struct node *n, uint64_t id)
{
    for (struct node_waiter *w = n->waiters; w != NULL; w = w->next)
        if (w->kind == NODE_WAIT_READ && w->read_id == id)
            return w;
    return NULL;
}

/* ReadIndex answers (Raft thesis §6.4): ok ones wait for applied >= index. */
static void take_reads(struct node *n)
{
    struct raft_read reads[READS_PER_TAKE];
    uint32_t got;
    do {
        got = raft_take_reads(n->raft, reads, READS_PER_TAKE);
        for (uint32_t i = 0; i < got; i++) {
            struct node_waiter *w = find_read(n, reads[i].id);
            if (w == NULL || w->done)
                continue;
            if (!reads[i].ok) {
                finish(n, w, RK_ERR_NOTLEADER);
                continue;
            }
            if (!w->answered)
                n->reads_answered++;
            w->answered = true;
            w->index = reads[i].index;
        }
    } while (got == READS_PER_TAKE);
}

/* Outcomes of membership changes and transfers (Raft thesis §4, §3.10). An id no waiter
 * has (0: the server's own hand-off) is dropped. */
static void take_results(struct node *n)
{
    struct raft_result res[READS_PER_TAKE];
    uint32_t got;
    do {
        got = raft_take_results(n->raft, res, READS_PER_TAKE);
        for (uint32_t i = 0; i < got; i++) {
            struct node_waiter *w = n->waiters;
            while (w != NULL && !(w->kind == NODE_WAIT_RESULT && w->read_id == res[i].id))
                w = w->next;
            if (w != NULL && !w->done)
                finish(n, w, res[i].rc);
        }
    } while (got == READS_PER_TAKE);
}

static void finish_ready_reads(struct node *n)
{
    if (n->reads_answered == 0)
        return; /* the usual case under writes: no walk over every waiter */
    for (struct node_waiter *w = n->waiters; w != NULL; w = w->next)
        if (w->kind == NODE_WAIT_READ && !w->done && w->answered && n->applied >= w->index)
            finish(n, w, RK_OK);
}

/* A result waiter is not failed here: the core reports the outcome of its request
 * (a transfer succeeds precisely by our stepping down). */
static void fail_all_waiters(struct node *n)
{
    for (struct node_waiter *w = n->waiters; w != NULL; w = w->next) {
        if (w->done || w->kind == NODE_WAIT_RESULT)
            continue;
        finish(n, w, w->kind == NODE_WAIT_WRITE ? RK_ERR_LOST : RK_ERR_NOTLEADER);
    }
}

static void log_role(struct node *n, enum raft_role role, int leader)
{
    if (role == RAFT_LEADER)
        node_log(n, "became leader");
    else if (role == RAFT_CANDIDATE)
        node_log(n, "became candidate");
    else if (leader != RAFT_NO_NODE)
        node_log(n, "became follower, leader is %s", node_name_of(n, leader));
    else
        node_log(n, "became follower, leader unknown");
}

/* Logs role / leader changes; a leader that stepped down or moved to a new term can no
 * longer promise anything about its pending requests (Raft paper §8). */
static void notice_role_change(struct node *n)
{
    enum raft_role role = raft_role(n->raft);
    raft_term_t term = raft_term(n->raft);
    int leader = raft_leader(n->raft);
    atomic_store_explicit(&n->log_term, term, memory_order_relaxed);
    if (role == n->seen_role && term == n->seen_term && leader == n->seen_leader)
        return;
    bool was_leader = n->seen_role == RAFT_LEADER;
    if (role != n->seen_role || (role == RAFT_FOLLOWER && leader != n->seen_leader &&
                                 leader != RAFT_NO_NODE))
        log_role(n, role, leader);
    if (role != n->seen_role)
        pthread_cond_broadcast(&n->role_cond);
    if (was_leader && (role != RAFT_LEADER || term != n->seen_term))
        fail_all_waiters(n);
    n->seen_role = role;
    n->seen_term = term;
    n->seen_leader = leader;
}

/* Messages that need nothing persisted first (a leader's appends) are queued now, so the
 * followers write while our own fsync runs (Raft thesis §10.2.1). */
static void queue_early_messages(struct node *n, struct node_outbox *ob)
{
    struct raft_msg *msgs = NULL;
    uint32_t count = raft_take_early_msgs(n->raft, &msgs);
    for (uint32_t i = 0; i < count; i++)
        node_peer_push(n, &msgs[i], ob);
    free(msgs);
}

void node_after_step(struct node *n, struct node_outbox *ob)
{
    if (raft_membership_gen(n->raft) != n->conf_gen)
        node_sync_peers(n); /* before queueing: a new member gets its first messages */
    queue_early_messages(n, ob);
    apply_committed(n);
    node_snap_maybe_start(n); /* Raft paper §7: a snapshot once the log grew enough */
    take_reads(n);
    finish_ready_reads(n);
    take_results(n);
    notice_role_change(n);
    if (ob == NULL && raft_has_ready(n->raft))
        pthread_cond_signal(&n->io_cond); /* with an outbox: node_outbox_flush does */
    if (node_timer_deadline(n) < n->timer_wake_ms)
        pthread_cond_signal(&n->timer_cond);
}

uint64_t node_timer_deadline(const struct node *n)
{
    uint64_t core = raft_next_deadline(n->raft), expiry = node_expiry_next(n);
    return core < expiry ? core : expiry;
}

bool node_step_peer_msgs(struct node *n, int peer, struct raft_msg *msgs, int count,
                         struct node_outbox *ob)
{
    if (n->shutdown)
        return false;
    for (int i = 0; i < count; i++) {
        msgs[i].from = peer;
        msgs[i].to = raft_self(n->raft);
        raft_step(n->raft, rk_clock_ms(), &msgs[i]);
        node_after_step(n, ob);
    }
    return true;
}

void node_peer_gone(struct node *n, int peer)
{
    if (n->shutdown)
        return;
    raft_peer_disconnected(n->raft, rk_clock_ms(), peer);
    node_after_step(n, NULL);
}

void node_campaign(struct node *n)
{
    node_log(n, "starting an election at once (start flag True)");
    raft_campaign(n->raft, rk_clock_ms());
    node_after_step(n, NULL);
}

void node_hand_off(struct node *n, uint32_t wait_ms)
{
    pthread_mutex_lock(&n->mu);
    if (raft_role(n->raft) == RAFT_LEADER && raft_transfer_leadership(n->raft, 0, NULL) == RK_OK) {
        node_log(n, "handing leadership off before stopping");
        node_after_step(n, NULL);
        uint64_t deadline = rk_clock_ms() + wait_ms;
        while (raft_role(n->raft) == RAFT_LEADER && rk_clock_ms() < deadline)
            node_cond_wait_until(&n->role_cond, &n->mu, deadline);
    }
    pthread_mutex_unlock(&n->mu);
}

int node_start(struct node *n)
{
    int rc = node_snap_start_thread(n); /* first: the others may start snapshots */
    if (rc == RK_OK)
        rc = node_io_start(n);
    if (rc == RK_OK)
        rc = node_timer_start(n);
    return rc;
}

static bool tokens_held(const struct node *n)
{
    for (int i = 0; i < REGISTRY_MAX_SERVERS; i++)
        if (n->peers[i].sending)
            return true;
    return false;
}

void node_stop(struct node *n)
{
    pthread_mutex_lock(&n->mu);
    n->shutdown = true;
    pthread_cond_broadcast(&n->io_cond);
    pthread_cond_broadcast(&n->timer_cond);
    for (int i = 0; i < REGISTRY_MAX_SERVERS; i++)
        pthread_cond_broadcast(&n->peers[i].cond);
    pthread_cond_broadcast(&n->snap.cond);
    node_snap_cancel(n);
    /* No token is taken after shutdown; once the held ones are back, nobody writes to a
     * link, and net/ may close them. A holder gives its token back within a send timeout
     * (node_peer_give_back signals tokens_cond). */
    while (tokens_held(n))
        pthread_cond_wait(&n->tokens_cond, &n->mu);
    pthread_mutex_unlock(&n->mu);
    if (n->io_started)
        pthread_join(n->io_thread, NULL);
    if (n->snap.started)
        pthread_join(n->snap.thread, NULL);
    if (n->timer_started)
        pthread_join(n->timer_thread, NULL);
}
